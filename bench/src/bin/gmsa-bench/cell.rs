//! One cell of the matrix: fresh fake API server and server process, warm-up, the measured
//! `wrk` run, and the server's CPU, memory and API calls over the measured window.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gmsa_bench::bodies::{review, service_account, Case, Kind};
use gmsa_bench::fake_api::Counters;
use gmsa_bench::measure::Row;

use crate::procs::{
    cpu_ticks, fake_counters, free_port, read_ready_line, spawn_pinned, status_kib, wait_ready,
};
use crate::wrk::{run_wrk, wrk_script};
use crate::{Cell, Env, Server};

/// Runs one cell; returns its row, the fake's counters over the measured window and how long
/// the server took to become ready.
pub fn run_cell(env: &Env, cell: &Cell) -> anyhow::Result<(Row, Counters, Duration)> {
    let dir = env.work.join(cell.name.replace('/', "_"));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let mut files = Vec::new();
    let mut body_bytes = 0;
    for i in 0..cell.service_accounts.max(1) {
        let body = review(
            cell.case,
            cell.kind,
            &service_account(i, cell.service_accounts),
        );
        body_bytes = body.len();
        let path = dir.join(format!("body-{i}.json"));
        std::fs::write(&path, &body).with_context(|| format!("write {}", path.display()))?;
        files.push(path);
    }
    let script = dir.join("load.lua");
    let stop_file = dir.join("limit-reached");
    // A mutate of a GMSA pod at creation must come back with a patch, not just "allowed".
    let expect_patch =
        cell.kind == Kind::Mutate && matches!(cell.case, Case::PodGmsa | Case::ThreeContainers);
    let expect_patch = expect_patch && cell.server == Server::Webhook;
    std::fs::write(
        &script,
        wrk_script(&files, cell.limit, &stop_file, expect_patch),
    )
    .context("write the wrk script")?;

    let https_port = free_port()?;
    let (fake, fake_url) = match cell.server {
        Server::Webhook => {
            let kubeconfig = dir.join("kubeconfig");
            let mut fake = spawn_pinned(
                env,
                env.args.load_core,
                &env.fakeapi,
                &[
                    "--delay-ms".to_string(),
                    cell.delay_ms.to_string(),
                    "--specs".to_string(),
                    cell.specs.to_string(),
                    "--service-accounts".to_string(),
                    cell.service_accounts.to_string(),
                    "--kubeconfig-dir".to_string(),
                    dir.display().to_string(),
                ],
                &[],
                None,
            )?;
            let url = read_ready_line(&mut fake, "fake API server")?;
            (Some(fake), Some((url, kubeconfig)))
        }
        Server::Null => (None, None),
    };
    let started = Instant::now();
    let mut server = match cell.server {
        Server::Webhook => {
            let (_, kubeconfig) = fake_url.as_ref().context("fake API server URL")?;
            let admin_port = free_port()?;
            let mut args = vec![
                "--tls-crt".to_string(),
                env.crt.display().to_string(),
                "--tls-key".to_string(),
                env.key.display().to_string(),
                "--https-port".to_string(),
                https_port.to_string(),
                "--admin-port".to_string(),
                admin_port.to_string(),
                "--log-level".to_string(),
                env.args.log_level.clone(),
                "--log-format".to_string(),
                "json".to_string(),
            ];
            args.extend(env.args.webhook_args.iter().cloned());
            let log = dir.join("webhook.log");
            let mut proc = spawn_pinned(
                env,
                env.args.server_core,
                &env.webhook,
                &args,
                &[("KUBECONFIG", kubeconfig.display().to_string())],
                Some(&log),
            )?;
            wait_ready(&mut proc, admin_port, &log)?;
            proc
        }
        Server::Null => {
            let mut proc = spawn_pinned(
                env,
                env.args.server_core,
                &env.null,
                &[
                    "--tls-crt".to_string(),
                    env.crt.display().to_string(),
                    "--tls-key".to_string(),
                    env.key.display().to_string(),
                    "--https-port".to_string(),
                    https_port.to_string(),
                ],
                &[],
                None,
            )?;
            read_ready_line(&mut proc, "null server")?;
            proc
        }
    };
    let ready_after = started.elapsed();
    let url = format!("https://127.0.0.1:{https_port}{}", cell.kind.path());

    if cell.warmup && env.args.warmup > 0 {
        let warm = run_wrk(env, &script, cell.concurrency, env.args.warmup, &url, None)?;
        if warm.requests == 0 {
            bail!("no request completed during the warm-up of {}", cell.name);
        }
    }
    let counters_before = fake_counters(fake_url.as_ref().map(|(u, _)| u.as_str()))?;
    let cpu_before = cpu_ticks(server.pid())?;
    let duration = if cell.limit > 0 {
        600
    } else {
        env.args.duration
    };
    let wrk = run_wrk(
        env,
        &script,
        cell.concurrency,
        duration,
        &url,
        Some(&stop_file),
    )?;
    let cpu_after = cpu_ticks(server.pid())?;
    let counters_after = fake_counters(fake_url.as_ref().map(|(u, _)| u.as_str()))?;
    let peak_rss_kib = status_kib(server.pid(), "VmHWM")?;
    let rss_kib = status_kib(server.pid(), "VmRSS")?;
    if let Some(status) = server.exited() {
        bail!("the server exited during the run ({status})");
    }
    drop(server);
    drop(fake);

    let window = diff(&counters_before, &counters_after);
    let row = Row {
        server: match cell.server {
            Server::Webhook => "webhook".to_string(),
            Server::Null => "null".to_string(),
        },
        case: cell.case.label().to_string(),
        kind: cell.kind.label().to_string(),
        concurrency: cell.concurrency,
        api_delay_ms: (cell.server == Server::Webhook).then_some(cell.delay_ms),
        body_bytes,
        wrk,
        server_cpu_s: cpu_after.saturating_sub(cpu_before) as f64 / env.clk_tck,
        peak_rss_kib,
        rss_kib,
        api_calls: window.total,
    };
    Ok((row, window, ready_after))
}

pub fn diff(before: &Counters, after: &Counters) -> Counters {
    let mut per_key = after.lsar_per_key.clone();
    for (key, n) in &before.lsar_per_key {
        if let Some(v) = per_key.get_mut(key) {
            *v = v.saturating_sub(*n);
        }
    }
    per_key.retain(|_, v| *v > 0);
    Counters {
        total: after.total - before.total.min(after.total),
        get: after.get.saturating_sub(before.get),
        list: after.list.saturating_sub(before.list),
        watch: after.watch.saturating_sub(before.watch),
        lsar: after.lsar.saturating_sub(before.lsar),
        other: after.other.saturating_sub(before.other),
        lsar_per_key: per_key,
    }
}
