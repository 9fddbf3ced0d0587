//! The whole run: the binaries found, the matrix of cells built from the arguments, each cell
//! run, then the cold-cache burst and the large-cache memory cell, and the report printed,
//! written (`--out`) and put into the doc (`--update-doc`).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use gmsa_bench::bodies::{Case, Kind};
use gmsa_bench::measure::fmt_ms;

use crate::cell::run_cell;
use crate::report::{chrono_like_now, loadavg, report, update_doc};

use crate::{Args, Burst, Cell, Env, Memory, Server};

/// Runs the cells `args` selects, the burst and the memory cell; prints (and writes) the report.
pub fn run(args: Args) -> anyhow::Result<()> {
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .context("find this program's path")?
            .parent()
            .map(Path::to_path_buf)
            .context("this program's directory")?,
    };
    let webhook = bin_dir.join("gmsa-webhook");
    let fakeapi = bin_dir.join("gmsa-bench-fakeapi");
    let null = bin_dir.join("gmsa-bench-null");
    let wants_webhook =
        args.only.is_empty() || args.only.iter().any(|f| !"null".contains(f.as_str()));
    for bin in [&fakeapi, &null]
        .into_iter()
        .chain(wants_webhook.then_some(&webhook))
    {
        if !bin.exists() {
            bail!(
                "{} is missing: build it first (`cargo build --release -p gmsa-webhook -p gmsa-bench`, or run scripts/bench)",
                bin.display()
            );
        }
    }
    Command::new(&args.wrk)
        .arg("--version")
        .output()
        .with_context(|| {
            format!(
                "run the load generator `{}` (install wrk: apt-get install wrk)",
                args.wrk
            )
        })?;
    Command::new("taskset")
        .arg("--version")
        .output()
        .context("run taskset (util-linux) to pin processes to cores")?;
    let workdir = tempfile::Builder::new()
        .prefix("gmsa-bench-")
        .tempdir()
        .context("create a work directory")?;
    let work = workdir.path().to_path_buf();
    let (crt, key) = gmsa_bench::tls::write_self_signed(&work)?;
    let clk_tck = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    let env = Env {
        args,
        webhook,
        fakeapi,
        null,
        work,
        crt,
        key,
        clk_tck,
    };
    let started = chrono_like_now();
    let load_before = loadavg();

    let mut cells = vec![
        Cell::new(Server::Null, Case::NoGmsa, Kind::Validate, 1, 0.0),
        Cell::new(Server::Null, Case::NoGmsa, Kind::Validate, 32, 0.0),
    ];
    for delay in [0.0, 2.0] {
        for case in Case::ALL {
            for kind in Kind::ALL {
                for concurrency in [1, 32] {
                    cells.push(Cell::new(Server::Webhook, case, kind, concurrency, delay));
                }
            }
        }
    }
    let wanted = |name: &str| {
        env.args.only.is_empty() || env.args.only.iter().any(|f| name.contains(f.as_str()))
    };

    let mut rows = Vec::new();
    for cell in cells.iter().filter(|c| wanted(&c.name)) {
        eprintln!("== {}", cell.name);
        match run_cell(&env, cell) {
            Ok((row, _, _)) => {
                eprintln!(
                    "   {:.0} req/s, p50 {}, p99 {}, {} errors, {:.1} µs CPU/review, {:.3} API calls/review",
                    row.rate(),
                    fmt_ms(row.wrk.p50_us),
                    fmt_ms(row.wrk.p99_us),
                    row.errors(),
                    row.cpu_us_per_review(),
                    row.api_calls_per_review()
                );
                rows.push(row);
            }
            Err(e) => eprintln!("   FAILED: {e:#}"),
        }
    }

    let mut burst = None;
    let burst_name = "burst/pod-gmsa/validate/c32/d2";
    if wanted(burst_name) {
        eprintln!(
            "== {burst_name} ({} reviews, {} service accounts, cold cache)",
            env.args.burst_reviews, env.args.burst_service_accounts
        );
        let mut cell = Cell::new(Server::Webhook, Case::PodGmsa, Kind::Validate, 32, 2.0);
        cell.name = burst_name.to_string();
        cell.service_accounts = env.args.burst_service_accounts;
        cell.limit = env.args.burst_reviews;
        cell.warmup = false;
        match run_cell(&env, &cell) {
            Ok((row, counters, _)) => {
                eprintln!(
                    "   max {}, {} SubjectAccessReviews, at most {} per (SA, spec)",
                    fmt_ms(row.wrk.max_us),
                    counters.lsar,
                    counters.lsar_max_per_key()
                );
                burst = Some(Burst { row, counters });
            }
            Err(e) => eprintln!("   FAILED: {e:#}"),
        }
    }

    let mut memory = Vec::new();
    let memory_name = format!(
        "memory/{}-specs/pod-gmsa/validate/c32/d0",
        env.args.memory_specs
    );
    if wanted(&memory_name) {
        eprintln!("== {memory_name}");
        let mut cell = Cell::new(Server::Webhook, Case::PodGmsa, Kind::Validate, 32, 0.0);
        cell.name = memory_name.clone();
        cell.specs = env.args.memory_specs;
        match run_cell(&env, &cell) {
            Ok((row, _, ready_after)) => {
                eprintln!("   peak RSS {:.1} MiB", row.peak_rss_kib as f64 / 1024.0);
                memory.push(Memory {
                    specs: cell.specs,
                    row,
                    ready_after,
                });
            }
            Err(e) => eprintln!("   FAILED: {e:#}"),
        }
    }

    let load_after = loadavg();
    let report = report(
        &env,
        &rows,
        burst.as_ref(),
        &memory,
        &started,
        &load_before,
        &load_after,
    );
    println!("{report}");
    if let Some(out) = &env.args.out {
        std::fs::write(out, &report).with_context(|| format!("write {}", out.display()))?;
    }
    if let Some(doc) = &env.args.update_doc {
        update_doc(doc, &report)?;
        eprintln!("updated {}", doc.display());
    }
    if env.args.keep {
        let kept = workdir.keep();
        eprintln!("work directory kept: {}", kept.display());
    }
    Ok(())
}
