//! The soak's report: markdown figures and the checks, from what the run observed.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gmsa_bench::bodies::SPEC_NAMES;

use crate::adversary::SlowStats;
use crate::load::{Log, Phase, Record};
use crate::server::{count_lines, proc_status_kib, Sample};
use crate::{
    lock, Args, Backend, HEADER_READ_TIMEOUT, IDLE_TIMEOUT, MAX_BODY, REQUEST_TIMEOUT,
    SHUTDOWN_DELAY, SHUTDOWN_GRACE,
};

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub struct Checks {
    pub lines: Vec<(bool, String)>,
}

impl Checks {
    pub fn check(&mut self, ok: bool, what: String) {
        self.lines.push((ok, what));
    }
    pub fn failed(&self) -> usize {
        self.lines.iter().filter(|(ok, _)| !ok).count()
    }
}

/// What a soak run observed (the input of [`report`], which turns it into checks).
pub struct Observations {
    /// The webhook binary.
    pub webhook: PathBuf,
    /// How long the fixed-rate part lasted.
    pub fixed_for: Duration,
    /// Every review's result.
    pub log_data: Log,
    /// The server's resources, every second.
    pub samples: Vec<Sample>,
    /// When SIGTERM was sent (since the start of the load).
    pub sigterm_at: Duration,
    /// The last sample before SIGTERM.
    pub before_sigterm: Option<Sample>,
    /// The webhook's process id.
    pub pid: u32,
    /// Per rotation: how long until a new handshake saw the new certificate.
    pub rotation_delays: Vec<Option<Duration>>,
    /// Per broken pair: (kind, previous pair kept serving, refusal logged).
    pub broken_results: Vec<(&'static str, bool, bool)>,
    /// Slowloris connections.
    pub slow_stats: Arc<Mutex<SlowStats>>,
    /// Body-trickling connections.
    pub trickle_stats: Arc<Mutex<SlowStats>>,
    /// Idle connections: (HTTP/2, closed by the server after).
    pub idle: Vec<(bool, Option<Duration>)>,
    /// Bodies over the limit: (chunked, status line and bytes sent).
    pub oversized_results: Vec<(bool, anyhow::Result<(String, usize)>)>,
    /// Old TLS versions: (openssl flag, handshake succeeded; None without openssl).
    pub old_tls: Vec<(&'static str, Option<bool>)>,
    /// How long after SIGTERM `/ready` failed.
    pub not_ready_after: Option<Duration>,
    /// How long after SIGTERM the process exited, and how.
    pub exit: Option<(Duration, ExitStatus)>,
    /// The webhook's log file.
    pub server_log: PathBuf,
}

/// The markdown report of a run and how many checks failed.
pub fn report(args: &Args, observed: &Observations) -> anyhow::Result<(String, usize)> {
    let rotations = args.rotations;
    let mut checks = Checks { lines: Vec::new() };
    let mut out = String::new();
    use std::fmt::Write as _;
    writeln!(out, "### Soak run")?;
    writeln!(out)?;
    if let Some(note) = &args.note {
        writeln!(out, "Conditions: {note}")?;
        writeln!(out)?;
    }
    writeln!(
        out,
        "Webhook `{}` ({}), TLS on loopback, {} s of load: {} s at \
         {} reviews/s over {} connections (HTTP/1.1 and HTTP/2), then saturation with {} clients; \
         {} slowloris and {} body-trickling connections held open throughout.",
        observed.webhook.display(),
        match args.backend {
            Backend::Kube => "Kubernetes backend against a fake API server in the soak process: \
                              100 specs watched, LocalSubjectAccessReviews, authz cache 10 s"
                .to_string(),
            Backend::Standalone => format!(
                "standalone: {} specs from a directory, a policy file",
                SPEC_NAMES.len()
            ),
        },
        args.duration,
        observed.fixed_for.as_secs(),
        args.rate,
        args.connections,
        args.saturation,
        args.slowloris,
        args.tricklers
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "| phase | reviews | failed | rate | p50 | p99 | max |\n|---|---:|---:|---:|---:|---:|---:|"
    )?;
    let before = |r: &Record| r.start < observed.sigterm_at;
    for phase in [Phase::Fixed, Phase::Saturation] {
        let rs: Vec<&Record> = observed
            .log_data
            .records
            .iter()
            .filter(|r| r.phase == phase && before(r))
            .collect();
        let mut took: Vec<Duration> = rs.iter().filter(|r| r.ok).map(|r| r.took).collect();
        took.sort();
        let failed = rs.iter().filter(|r| !r.ok).count();
        let span = match (rs.first(), rs.last()) {
            (Some(a), Some(b)) => (b.start.saturating_sub(a.start)).as_secs_f64().max(1.0),
            _ => 1.0,
        };
        writeln!(
            out,
            "| {:?} | {} | {} | {:.0}/s | {} | {} | {} |",
            phase,
            rs.len(),
            failed,
            rs.len() as f64 / span,
            ms(percentile(&took, 0.5)),
            ms(percentile(&took, 0.99)),
            ms(percentile(&took, 1.0)),
        )?;
        checks.check(
            failed == 0,
            format!("{phase:?}: {failed} failed reviews of {}", rs.len()),
        );
    }
    let served: u64 = observed.log_data.records.iter().filter(|r| r.ok).count() as u64;
    writeln!(out)?;
    writeln!(
        out,
        "Reviews answered correctly in total: {served} ({})",
        observed
            .log_data
            .served_by_label
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    for (after, title) in [
        (false, "Errors before SIGTERM"),
        (
            true,
            "Errors of reviews started after SIGTERM (listener closing: expected)",
        ),
    ] {
        let errors: Vec<_> = observed
            .log_data
            .errors
            .iter()
            .filter(|((a, _), _)| *a == after)
            .collect();
        writeln!(
            out,
            "\n{title}: {}",
            if errors.is_empty() { "none" } else { "" }
        )?;
        for ((_, e), n) in errors {
            writeln!(out, "- {n} × {e}")?;
        }
    }

    // Resources.
    writeln!(out, "\n#### Server resources (sampled every second)\n")?;
    writeln!(
        out,
        "| phase | samples | RSS first | RSS max | RSS last | fds max | sockets max | established max |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    let warmup = Duration::from_secs(5).min(observed.fixed_for / 2);
    for (name, from, to) in [
        ("fixed rate", warmup, observed.fixed_for),
        (
            "saturation",
            observed.fixed_for + warmup.min(Duration::from_secs(2)),
            observed.sigterm_at,
        ),
    ] {
        let ss: Vec<&Sample> = observed
            .samples
            .iter()
            .filter(|s| s.at >= from && s.at < to)
            .collect();
        if ss.is_empty() {
            continue;
        }
        let max = |f: fn(&Sample) -> u64| ss.iter().map(|s| f(s)).max().unwrap_or(0);
        writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            ss.len(),
            mib(ss[0].rss_kib),
            mib(max(|s| s.rss_kib)),
            mib(ss[ss.len() - 1].rss_kib),
            max(|s| s.fds),
            max(|s| s.sockets),
            max(|s| s.connections),
        )?;
        // No growth after warm-up: the second half never exceeds the first half's peak by
        // more than 10% + 8 MiB (RSS) or 25% + 16 (fds).
        let half = ss.len() / 2;
        if half >= 2 {
            let peak =
                |v: &[&Sample], f: fn(&Sample) -> u64| v.iter().map(|s| f(s)).max().unwrap_or(0);
            let (a, b) = ss.split_at(half);
            let rss_ok = peak(b, |s| s.rss_kib) <= peak(a, |s| s.rss_kib) * 11 / 10 + 8 * 1024;
            let fds_ok = peak(b, |s| s.fds) <= peak(a, |s| s.fds) * 5 / 4 + 16;
            checks.check(
                rss_ok,
                format!(
                    "{name}: RSS peak {} in the second half vs {} in the first",
                    mib(peak(b, |s| s.rss_kib)),
                    mib(peak(a, |s| s.rss_kib))
                ),
            );
            checks.check(
                fds_ok,
                format!(
                    "{name}: fds peak {} in the second half vs {} in the first",
                    peak(b, |s| s.fds),
                    peak(a, |s| s.fds)
                ),
            );
        }
    }
    if let Some(s) = observed.before_sigterm {
        writeln!(
            out,
            "\nLast sample before SIGTERM: RSS {}, {} fds ({} sockets), {} established connections.",
            mib(s.rss_kib),
            s.fds,
            s.sockets,
            s.connections
        )?;
    }
    if let Some(peak) = proc_status_kib(observed.pid, "VmHWM") {
        writeln!(out, "Peak RSS (VmHWM): {}", mib(peak))?;
    }

    // Certificates.
    writeln!(out, "\n#### Certificates\n")?;
    let seen: Vec<Duration> = observed.rotation_delays.iter().flatten().copied().collect();
    writeln!(
        out,
        "- {} rotations through the `..data` swap; new certificate served after {} (max {}); {} not seen within 10 s",
        observed.rotation_delays.len(),
        seen.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", "),
        ms(seen.iter().max().copied().unwrap_or_default()),
        observed.rotation_delays.len() - seen.len()
    )?;
    checks.check(
        observed.rotation_delays.len() == rotations && seen.len() == rotations,
        format!("{} of {rotations} rotations served", seen.len()),
    );
    for (kind, kept, logged) in &observed.broken_results {
        writeln!(
            out,
            "- broken pair ({kind}): previous pair kept serving: {kept}; refusal logged: {logged}"
        )?;
        checks.check(*kept && *logged, format!("broken pair ({kind}) refused"));
    }

    // Slow and idle clients, limits.
    writeln!(out, "\n#### Slow, idle and oversized clients\n")?;
    for (name, stats, limit) in [
        (
            "slowloris (partial headers)",
            &observed.slow_stats,
            HEADER_READ_TIMEOUT,
        ),
        (
            "body trickled 1 byte/200 ms",
            &observed.trickle_stats,
            REQUEST_TIMEOUT,
        ),
    ] {
        let s = lock(stats);
        writeln!(
            out,
            "- {name}: {} connections opened, {} cut by the server ({} with 408), longest held {} (limit {})",
            s.opened,
            s.cut,
            s.answered_408,
            ms(s.longest_held),
            ms(limit)
        )?;
        checks.check(
            s.opened > 0 && s.longest_held <= limit + Duration::from_secs(2),
            format!("{name}: longest held {}", ms(s.longest_held)),
        );
    }
    for h2 in [false, true] {
        let waits: Vec<&Option<Duration>> = observed
            .idle
            .iter()
            .filter(|(p, _)| *p == h2)
            .map(|(_, w)| w)
            .collect();
        let closed: Vec<Duration> = waits.iter().filter_map(|w| **w).collect();
        let proto = if h2 { "HTTP/2" } else { "HTTP/1.1" };
        let limit = if h2 {
            IDLE_TIMEOUT
        } else {
            HEADER_READ_TIMEOUT.max(IDLE_TIMEOUT)
        };
        writeln!(
            out,
            "- idle {proto} connections: {} of {} closed by the server, after {}",
            closed.len(),
            waits.len(),
            closed.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ")
        )?;
        checks.check(
            !waits.is_empty()
                && closed.len() == waits.len()
                && closed.iter().all(|d| *d <= limit + Duration::from_secs(2)),
            format!("idle {proto} connections closed"),
        );
    }
    for (chunked, result) in &observed.oversized_results {
        let how = if *chunked {
            "chunked"
        } else {
            "Content-Length 16 MiB"
        };
        match result {
            Ok((status, at)) => {
                writeln!(
                    out,
                    "- body over the {} limit ({how}): `{status}` after {} KiB sent of 16384",
                    mib((MAX_BODY / 1024) as u64),
                    at / 1024
                )?;
                checks.check(
                    status.contains(" 413 ") && *at < 4 * MAX_BODY,
                    format!("oversized ({how}) refused with 413 early"),
                );
            }
            Err(e) => {
                writeln!(out, "- body over the limit ({how}): {e:#}")?;
                checks.check(false, format!("oversized ({how}): {e:#}"));
            }
        }
    }
    for (flag, result) in &observed.old_tls {
        match result {
            Some(ok) => {
                writeln!(
                    out,
                    "- `openssl s_client {flag}`: handshake succeeded: {ok}"
                )?;
                checks.check(!ok, format!("{flag} refused"));
            }
            None => writeln!(
                out,
                "- `openssl s_client {flag}`: openssl not installed, not checked"
            )?,
        }
    }

    // Shutdown.
    writeln!(out, "\n#### SIGTERM during saturation\n")?;
    let inflight = observed
        .log_data
        .records
        .iter()
        .filter(|r| r.start < observed.sigterm_at && r.start + r.took > observed.sigterm_at)
        .count();
    let failed_before = observed
        .log_data
        .records
        .iter()
        .filter(|r| r.start < observed.sigterm_at && !r.ok)
        .count();
    let after: Vec<&Record> = observed
        .log_data
        .records
        .iter()
        .filter(|r| r.start >= observed.sigterm_at)
        .collect();
    let after_ok = after.iter().filter(|r| r.ok).count();
    writeln!(
        out,
        "- reviews in flight at SIGTERM: {inflight}; reviews started before SIGTERM that failed: {failed_before}"
    )?;
    writeln!(
        out,
        "- after SIGTERM: {after_ok} reviews still answered (during the {} shutdown delay), {} refused or cut once the listener closed (expected)",
        ms(SHUTDOWN_DELAY),
        after.len() - after_ok
    )?;
    match observed.not_ready_after {
        Some(d) => writeln!(out, "- /ready failed {} after SIGTERM", ms(d))?,
        None => writeln!(out, "- /ready kept answering 2xx during the shutdown delay")?,
    }
    checks.check(
        observed.not_ready_after.is_some(),
        "readiness fails after SIGTERM".into(),
    );
    checks.check(
        failed_before == 0,
        format!("{failed_before} reviews started before SIGTERM failed"),
    );
    match observed.exit {
        Some((took, status)) => {
            writeln!(
                out,
                "- exited {} after SIGTERM ({status}); limit {} (delay + grace)",
                ms(took),
                ms(SHUTDOWN_DELAY + SHUTDOWN_GRACE)
            )?;
            checks.check(
                status.success() && took <= SHUTDOWN_DELAY + SHUTDOWN_GRACE,
                "exit within the grace period".into(),
            );
        }
        None => {
            writeln!(out, "- did NOT exit within delay + grace + 5 s")?;
            checks.check(false, "exit within the grace period".into());
        }
    }
    let reloaded = count_lines(&observed.server_log, "certificate reloaded");
    let refused = count_lines(&observed.server_log, "new certificate/key refused");
    writeln!(
        out,
        "- webhook log: {reloaded} `certificate reloaded`, {refused} `new certificate/key refused` lines"
    )?;
    writeln!(
        out,
        "\nFaults injected: {} certificate rotations, {} broken pairs, {} slowloris and {} \
         body-trickling connections, {} idle connections, {} oversized bodies, {} old-TLS \
         handshakes, 1 SIGTERM under saturation; reviews served: {served}.",
        observed.rotation_delays.len(),
        observed.broken_results.len(),
        lock(&observed.slow_stats).opened,
        lock(&observed.trickle_stats).opened,
        observed.idle.len(),
        observed.oversized_results.len(),
        observed.old_tls.iter().filter(|(_, r)| r.is_some()).count(),
    )?;

    writeln!(out, "\n#### Checks\n")?;
    for (ok, what) in &checks.lines {
        writeln!(out, "- [{}] {what}", if *ok { "x" } else { " " })?;
    }
    writeln!(
        out,
        "\n{} of {} checks passed.",
        checks.lines.len() - checks.failed(),
        checks.lines.len()
    )?;
    Ok((out, checks.failed()))
}
