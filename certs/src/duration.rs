//! Durations as operators write them (`90s`, `30m`, `720h`, `365d`, `1h30m`).

use std::time::Duration;

use crate::CertsError;

/// Parses a duration made of `<number><unit>` parts, units `s`, `m`, `h`, `d`.
pub fn parse_duration(text: &str) -> Result<Duration, CertsError> {
    let bad = || CertsError::InvalidDuration(text.to_string());
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Whole seconds of `d` as `i64` (saturating), for arithmetic with Unix times.
pub fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// [`format_secs`] for a [`Duration`].
pub fn format_duration(d: Duration) -> String {
    format_secs(secs(d))
}

/// Formats seconds compactly for people: `29d23h`, `5m0s`, `42s`.
pub fn format_secs(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (d, h, m, r) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60, s % 60);
    if d > 0 {
        format!("{sign}{d}d{h}h")
    } else if h > 0 {
        format!("{sign}{h}h{m}m")
    } else if m > 0 {
        format!("{sign}{m}m{r}s")
    } else {
        format!("{sign}{r}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        let table: &[(&str, Option<u64>)] = &[
            ("90s", Some(90)),
            ("30m", Some(1800)),
            ("720h", Some(2_592_000)),
            ("365d", Some(31_536_000)),
            ("1h30m", Some(5400)),
            ("1d2h3m4s", Some(93_784)),
            (" 10m ", Some(600)),
            ("0s", Some(0)),
            ("", None),
            ("10", None),
            ("h", None),
            ("10x", None),
            ("-5m", None),
            ("1.5h", None),
            ("99999999999999999999d", None),
        ];
        for (text, want) in table {
            let got = parse_duration(text).ok().map(|d| d.as_secs());
            assert_eq!(got, *want, "{text:?}");
        }
    }

    #[test]
    fn formats_seconds() {
        let table: &[(i64, &str)] = &[
            (42, "42s"),
            (300, "5m0s"),
            (5400, "1h30m"),
            (2_591_940, "29d23h"),
            (-90, "-1m30s"),
        ];
        for (secs, want) in table {
            assert_eq!(format_secs(*secs), *want);
        }
    }
}
