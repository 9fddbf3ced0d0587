//! What one benchmark cell measured, how it is read from `/proc` and from the load generator,
//! and how rows become the printed table and the target verdicts.

use serde::Deserialize;

/// CPU time (user + system, in clock ticks) of a process from the text of `/proc/PID/stat`.
/// Includes threads that have already exited.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is index 0 here; utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` line of `/proc/PID/status` (e.g. `VmHWM`, `VmRSS`), in KiB.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// What the wrk script prints in `done()` on a line starting with [`WRK_MARK`].
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct WrkResult {
    /// Completed requests.
    pub requests: u64,
    /// Run time in microseconds.
    pub duration_us: u64,
    /// Latency percentiles and maximum, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// Slowest request, microseconds.
    pub max_us: f64,
    /// Socket errors (connect, read, write), HTTP statuses above 399 and timeouts.
    pub transport_errors: u64,
    /// 200 answers whose review was not `"allowed":true` (or, for a mutate of a GMSA pod at
    /// creation, had no `"patch"`).
    pub not_allowed: u64,
    /// CPU seconds wrk itself used (`os.clock()`), to see a saturated load generator.
    pub cpu_s: f64,
}

/// Prefix of the result line the wrk script prints.
pub const WRK_MARK: &str = "BENCH_JSON ";

/// Finds and parses the result line in wrk's output.
pub fn parse_wrk_output(output: &str) -> Option<WrkResult> {
    output
        .lines()
        .find_map(|line| line.strip_prefix(WRK_MARK))
        .and_then(|json| serde_json::from_str(json).ok())
}

/// One row of the table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    /// Which server answered: `webhook` or `null`.
    pub server: String,
    /// Case label (`no-gmsa`, `pod-gmsa`, ...).
    pub case: String,
    /// `mutate` or `validate`.
    pub kind: String,
    /// Concurrent connections.
    pub concurrency: u32,
    /// API delay in milliseconds (none for the null server).
    pub api_delay_ms: Option<f64>,
    /// Body size in bytes.
    pub body_bytes: usize,
    /// What wrk measured.
    pub wrk: WrkResult,
    /// Server CPU seconds over the measured window.
    pub server_cpu_s: f64,
    /// Peak RSS of the server (VmHWM), KiB.
    pub peak_rss_kib: u64,
    /// RSS of the server at the end of the run (VmRSS), KiB.
    pub rss_kib: u64,
    /// API calls during the measured window.
    pub api_calls: u64,
}

impl Row {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        if self.wrk.duration_us == 0 {
            return 0.0;
        }
        self.wrk.requests as f64 / (self.wrk.duration_us as f64 / 1e6)
    }

    /// Server CPU microseconds per review.
    pub fn cpu_us_per_review(&self) -> f64 {
        if self.wrk.requests == 0 {
            return f64::NAN;
        }
        self.server_cpu_s * 1e6 / self.wrk.requests as f64
    }

    /// API calls per review.
    pub fn api_calls_per_review(&self) -> f64 {
        if self.wrk.requests == 0 {
            return f64::NAN;
        }
        self.api_calls as f64 / self.wrk.requests as f64
    }

    /// Errors of any kind (transport, HTTP status, not allowed).
    pub fn errors(&self) -> u64 {
        self.wrk.transport_errors + self.wrk.not_allowed
    }

    /// Load generator CPU as a percentage of one core over the run.
    pub fn load_cpu_pct(&self) -> f64 {
        if self.wrk.duration_us == 0 {
            return 0.0;
        }
        self.wrk.cpu_s * 100.0 / (self.wrk.duration_us as f64 / 1e6)
    }
}

/// A latency in microseconds as milliseconds with a precision that suits its size.
pub fn fmt_ms(us: f64) -> String {
    let ms = us / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// The markdown table of `rows`.
pub fn render_table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| server | case | path | conc | API delay | body | req/s | p50 | p99 | max | errors | webhook CPU s/10k (µs/review) | peak RSS | API calls/review | load CPU |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let delay = match r.api_delay_ms {
            Some(d) => format!("{d} ms"),
            None => "-".to_string(),
        };
        let calls = if r.server == "null" {
            "-".to_string()
        } else {
            format!("{:.3}", r.api_calls_per_review())
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} KB | {:.0} | {} | {} | {} | {} | {:.3} ({:.1}) | {:.1} MiB | {} | {:.0}% |\n",
            r.server,
            r.case,
            r.kind,
            r.concurrency,
            delay,
            r.body_bytes as f64 / 1000.0,
            r.rate(),
            fmt_ms(r.wrk.p50_us),
            fmt_ms(r.wrk.p99_us),
            fmt_ms(r.wrk.max_us),
            r.errors(),
            r.cpu_us_per_review() / 100.0,
            r.cpu_us_per_review(),
            r.peak_rss_kib as f64 / 1024.0,
            calls,
            r.load_cpu_pct(),
        ));
    }
    out
}

/// One target of issue 7 and whether the measurement meets it.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// What the target says.
    pub target: String,
    /// What was measured, in words.
    pub measured: String,
    /// Met or not.
    pub met: bool,
    /// `measured / limit` for "at most" targets, `limit / measured` for "at least" targets:
    /// above 1 means missed by that factor.
    pub ratio: f64,
}

impl Verdict {
    /// Checks `measured <= limit`.
    pub fn at_most(target: &str, measured: f64, limit: f64, unit: &str) -> Self {
        Self {
            target: target.to_string(),
            measured: format!("{} {unit}", round(measured)),
            met: measured <= limit,
            ratio: if limit > 0.0 {
                measured / limit
            } else {
                f64::INFINITY
            },
        }
    }

    /// Adds a note in brackets after the measured value (e.g. which cell was the worst).
    pub fn noted(mut self, note: &str) -> Self {
        self.measured.push_str(&format!(" ({note})"));
        self
    }

    /// Checks `measured >= limit`.
    pub fn at_least(target: &str, measured: f64, limit: f64, unit: &str) -> Self {
        Self {
            target: target.to_string(),
            measured: format!("{} {unit}", round(measured)),
            met: measured >= limit,
            ratio: if measured > 0.0 {
                limit / measured
            } else {
                f64::INFINITY
            },
        }
    }
}

fn round(v: f64) -> String {
    if v.fract() == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The markdown table of verdicts.
pub fn render_verdicts(verdicts: &[Verdict]) -> String {
    let mut out = String::from("| target | measured | verdict |\n|---|---:|---|\n");
    for v in verdicts {
        let verdict = if v.met {
            "met".to_string()
        } else if !v.ratio.is_finite() {
            "**missed**".to_string()
        } else {
            format!("**missed** by {:.1}x", v.ratio)
        };
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            v.target, v.measured, verdict
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_is_utime_plus_stime_even_with_odd_process_names() {
        let stat = "4242 (gmsa (web) hook) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 3 0 100 1000 200";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(287));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn status_lines_are_read_in_kib() {
        let status =
            "Name:\tgmsa-webhook\nVmPeak:\t  100000 kB\nVmHWM:\t   17408 kB\nVmRSS:\t   15000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(17408));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(15000));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn the_wrk_result_line_is_found_among_wrk_output() {
        let out = "Running 5s test @ https://127.0.0.1:1/validate\n  1 threads and 32 connections\n\
                   BENCH_JSON {\"requests\":100000,\"duration_us\":5000000,\"p50_us\":300.0,\"p99_us\":900.5,\"max_us\":2000,\"transport_errors\":1,\"not_allowed\":2,\"cpu_s\":1.5}\n";
        let r = parse_wrk_output(out).expect("found");
        assert_eq!(r.requests, 100_000);
        assert_eq!(r.p99_us, 900.5);
        assert_eq!(parse_wrk_output("Running 5s test\n"), None);
    }

    #[test]
    fn rows_derive_rates_costs_and_render_in_the_table() {
        let row = Row {
            server: "webhook".into(),
            case: "no-gmsa".into(),
            kind: "validate".into(),
            concurrency: 32,
            api_delay_ms: Some(2.0),
            body_bytes: 3430,
            wrk: WrkResult {
                requests: 100_000,
                duration_us: 5_000_000,
                p50_us: 210.0,
                p99_us: 12_345.0,
                max_us: 150_000.0,
                transport_errors: 1,
                not_allowed: 2,
                cpu_s: 2.5,
            },
            server_cpu_s: 2.0,
            peak_rss_kib: 10 * 1024,
            rss_kib: 9 * 1024,
            api_calls: 5,
        };
        assert_eq!(row.rate(), 20_000.0);
        assert_eq!(row.cpu_us_per_review(), 20.0);
        assert_eq!(row.api_calls_per_review(), 0.00005);
        assert_eq!(row.errors(), 3);
        assert_eq!(row.load_cpu_pct(), 50.0);
        let table = render_table(&[row]);
        let line = table.lines().nth(2).expect("a data line");
        assert_eq!(
            line,
            "| webhook | no-gmsa | validate | 32 | 2 ms | 3.4 KB | 20000 | 0.21 ms | 12.3 ms | 150 ms | 3 | 0.200 (20.0) | 10.0 MiB | 0.000 | 50% |"
        );
    }

    #[test]
    fn verdicts_say_by_how_much_a_target_is_missed() {
        let ok = Verdict::at_most("CPU per review <= 25 µs", 20.5, 25.0, "µs").noted("worst: a");
        assert!(ok.met);
        let slow = Verdict::at_least(">= 20000 req/s", 5000.0, 20000.0, "req/s");
        assert!(!slow.met);
        assert_eq!(slow.ratio, 4.0);
        let table = render_verdicts(&[ok, slow]);
        assert!(
            table.contains("| CPU per review <= 25 µs | 20.50 µs (worst: a) | met |"),
            "{table}"
        );
        assert!(
            table.contains("| >= 20000 req/s | 5000 req/s | **missed** by 4.0x |"),
            "{table}"
        );
    }
}
