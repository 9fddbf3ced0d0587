//! The report: the machine and conditions, the tables, the target verdicts, and
//! `--update-doc`.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use gmsa_bench::measure::{fmt_ms, render_table, render_verdicts, Row, Verdict};

use crate::wrk::wrk_version;
use crate::{Burst, Env, Memory};

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_string())
}

pub fn chrono_like_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn command_text(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "?".to_string())
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".to_string())
}

pub fn report(
    env: &Env,
    rows: &[Row],
    burst: Option<&Burst>,
    memory: &[Memory],
    started: &str,
    load_before: &str,
    load_after: &str,
) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Run {started}, commit {}, {} ({} cores), load average {load_before} before / {load_after} after; \
         {} s per cell after {} s warm-up; webhook on core {}, wrk and the fake API server on core {}; {}.\n",
        command_text("git", &["rev-parse", "--short", "HEAD"]),
        cpu_model(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        env.args.duration,
        env.args.warmup,
        env.args.server_core,
        env.args.load_core,
        wrk_version(&env.args.wrk),
    ));
    if let Some(n) = env.args.nice {
        out.push_str(&format!(
            "\nServer, fake API server and wrk ran at niceness {n} (`--nice {n}`) to be preempted less by other work.\n"
        ));
    }
    if let Some(note) = &env.args.note {
        out.push_str(&format!("\n**Conditions: {note}.**\n"));
    }
    out.push_str("\n### Matrix\n\n");
    out.push_str(&render_table(rows));
    if let Some(b) = burst {
        out.push_str(&format!(
            "\n### Cold-cache burst\n\n| reviews | service accounts | conc | API delay | req/s | p50 | p99 | max | errors | SubjectAccessReviews | max per (SA, spec) | spec GETs | peak RSS |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} ms | {:.0} | {} | {} | {} | {} | {} | {} | {} | {:.1} MiB |\n",
            b.row.wrk.requests,
            env.args.burst_service_accounts,
            b.row.concurrency,
            b.row.api_delay_ms.unwrap_or(0.0),
            b.row.rate(),
            fmt_ms(b.row.wrk.p50_us),
            fmt_ms(b.row.wrk.p99_us),
            fmt_ms(b.row.wrk.max_us),
            b.row.errors(),
            b.counters.lsar,
            b.counters.lsar_max_per_key(),
            b.counters.get,
            b.row.peak_rss_kib as f64 / 1024.0,
        ));
    }
    if !memory.is_empty() {
        out.push_str("\n### Memory with a large cache\n\n| specs | ready after | req/s | p99 | errors | peak RSS | RSS at the end |\n|---:|---:|---:|---:|---:|---:|---:|\n");
        for m in memory {
            out.push_str(&format!(
                "| {} | {:.2} s | {:.0} | {} | {} | {:.1} MiB | {:.1} MiB |\n",
                m.specs,
                m.ready_after.as_secs_f64(),
                m.row.rate(),
                fmt_ms(m.row.wrk.p99_us),
                m.row.errors(),
                m.row.peak_rss_kib as f64 / 1024.0,
                m.row.rss_kib as f64 / 1024.0
            ));
        }
    }
    out.push_str("\n### Targets (issue 7)\n\n");
    out.push_str(&render_verdicts(&verdicts(rows, burst, memory)));
    out
}

pub fn verdicts(rows: &[Row], burst: Option<&Burst>, memory: &[Memory]) -> Vec<Verdict> {
    let mut v = Vec::new();
    let webhook = |r: &&Row| r.server == "webhook";
    let worst = |rows: Vec<&Row>, key: &dyn Fn(&Row) -> f64, max: bool| -> Option<(f64, String)> {
        rows.into_iter()
            .map(|r| {
                (
                    key(r),
                    format!(
                        "{} {} c{} d{}",
                        r.case,
                        r.kind,
                        r.concurrency,
                        r.api_delay_ms.unwrap_or(0.0)
                    ),
                )
            })
            .filter(|(x, _)| x.is_finite())
            .reduce(|a, b| if (b.0 > a.0) == max { b } else { a })
    };
    let no_gmsa: Vec<&Row> = rows
        .iter()
        .filter(webhook)
        .filter(|r| r.case == "no-gmsa" && r.concurrency == 32)
        .collect();
    let null_cpu = rows
        .iter()
        .find(|r| r.server == "null" && r.concurrency == 32)
        .map(Row::cpu_us_per_review);
    if let Some((cpu, at)) = worst(no_gmsa.clone(), &Row::cpu_us_per_review, true) {
        v.push(
            Verdict::at_most(
                "pod without GMSA: webhook CPU <= 25 µs/review",
                cpu,
                25.0,
                "µs",
            )
            .noted(&format!("worst: {at}")),
        );
        if let Some(null) = null_cpu {
            v.push(
                Verdict::at_most(
                    "pod without GMSA: CPU within 2x of the null server",
                    cpu / null,
                    2.0,
                    "x",
                )
                .noted(&format!("{cpu:.1} vs {null:.1} µs")),
            );
        }
    }
    let gmsa: Vec<&Row> = rows
        .iter()
        .filter(webhook)
        .filter(|r| r.case != "no-gmsa")
        .collect();
    if let Some((calls, at)) = worst(gmsa.clone(), &Row::api_calls_per_review, true) {
        v.push(
            Verdict::at_most(
                "GMSA pods, steady state: 0 API calls/review",
                calls,
                0.0,
                "calls/review",
            )
            .noted(&format!("worst: {at}")),
        );
    }
    let c1_d2: Vec<&Row> = gmsa
        .iter()
        .copied()
        .filter(|r| r.concurrency == 1 && r.api_delay_ms == Some(2.0))
        .collect();
    if let Some((p99, at)) = worst(c1_d2, &|r: &Row| r.wrk.p99_us / 1000.0, true) {
        v.push(
            Verdict::at_most(
                "GMSA pods: p99 <= 0.5 ms at 1 concurrent, API 2 ms away",
                p99,
                0.5,
                "ms",
            )
            .noted(&format!("worst: {at}")),
        );
    }
    for case in ["pod-gmsa", "3-containers", "update"] {
        let c32: Vec<&Row> = gmsa
            .iter()
            .copied()
            .filter(|r| r.case == case && r.concurrency == 32)
            .collect();
        if let Some((rate, at)) = worst(c32, &Row::rate, false) {
            v.push(
                Verdict::at_least(
                    &format!("{case}: >= 20,000 reviews/s at 32 concurrent"),
                    rate,
                    20_000.0,
                    "req/s",
                )
                .noted(&format!("lowest: {at}")),
            );
        }
    }
    let errors: u64 = rows.iter().map(Row::errors).sum();
    if !rows.is_empty() {
        v.push(Verdict::at_most(
            "no errors in the matrix",
            errors as f64,
            0.0,
            "errors",
        ));
    }
    if let Some(b) = burst {
        v.push(Verdict::at_most(
            "cold burst: no review over 1 s",
            b.row.wrk.max_us / 1e6,
            1.0,
            "s (max)",
        ));
        v.push(Verdict::at_most(
            "cold burst: <= 1 SubjectAccessReview per (SA, spec)",
            b.counters.lsar_max_per_key() as f64,
            1.0,
            "",
        ));
        v.push(Verdict::at_most(
            "cold burst: no errors",
            b.row.errors() as f64,
            0.0,
            "errors",
        ));
    }
    if let Some((rss, at)) = worst(
        rows.iter().filter(webhook).collect(),
        &|r: &Row| r.peak_rss_kib as f64 / 1024.0,
        true,
    ) {
        v.push(
            Verdict::at_most(
                "memory: <= 20 MiB RSS under load with 100 specs",
                rss,
                20.0,
                "MiB",
            )
            .noted(&format!("largest: {at}")),
        );
    }
    for m in memory {
        v.push(Verdict::at_most(
            &format!("memory: <= 64 MiB RSS with {} specs", m.specs),
            m.row.peak_rss_kib as f64 / 1024.0,
            64.0,
            "MiB",
        ));
    }
    v
}

pub fn update_doc(doc: &Path, report: &str) -> anyhow::Result<()> {
    const BEGIN: &str = "<!-- bench:begin -->";
    const END: &str = "<!-- bench:end -->";
    let text = std::fs::read_to_string(doc).with_context(|| format!("read {}", doc.display()))?;
    let (Some(start), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        bail!(
            "{} has no {BEGIN} ... {END} markers to replace",
            doc.display()
        );
    };
    if end < start {
        bail!("{}: {END} comes before {BEGIN}", doc.display());
    }
    let updated = format!("{}{BEGIN}\n{report}\n{}", &text[..start], &text[end..]);
    std::fs::write(doc, updated).with_context(|| format!("write {}", doc.display()))
}
