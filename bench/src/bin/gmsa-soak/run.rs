//! One soak run: the webhook started with its specs, policy and certificate (and the fake API
//! server for the kube backend), load at a fixed rate then at saturation, the events spread
//! over the duration (rotations and broken pairs, idle connections, oversized bodies, old
//! TLS), SIGTERM under saturation; what was seen goes into a [`report::Observations`].

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gmsa_bench::bodies::{spec_object, NAMESPACE, SPEC_NAMES};

use crate::adversary::{idle_connections, openssl_handshake, oversized, slow_client, SlowStats};
use crate::certs::{install, Ca};
use crate::client::{client_config, Client};
use crate::load::{load_worker, mix, start_saturation, Ctx, Log, Phase};
use crate::report::{self, Observations};
use crate::server::{count_lines, established, fds, http_get, proc_status_kib, Sample, Server};
use crate::{lock, Args, Backend, RELOAD_INTERVAL, SHUTDOWN_DELAY, SHUTDOWN_GRACE};

/// Runs the soak; returns the report (markdown) and how many checks failed.
pub async fn soak(args: &Args) -> anyhow::Result<(String, usize)> {
    let webhook = match &args.webhook {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this program has no directory")?
            .join("gmsa-webhook"),
    };
    if !webhook.exists() {
        bail!(
            "{} not found: build it (cargo build -p gmsa-webhook) or pass --webhook",
            webhook.display()
        );
    }
    let work = tempfile::Builder::new().prefix("gmsa-soak-").tempdir()?;
    let root = work.path().to_path_buf();

    // Specs, policy, certificate.
    let specs = root.join("credspecs");
    std::fs::create_dir(&specs)?;
    for (i, name) in SPEC_NAMES.iter().enumerate() {
        std::fs::write(
            specs.join(format!("{name}.json")),
            serde_json::to_vec_pretty(&spec_object(name, i))?,
        )?;
    }
    let policy = root.join("policy.yaml");
    std::fs::write(
        &policy,
        format!("- namespace: {NAMESPACE}\n  serviceAccount: webapp\n  credspecs: [\"*\"]\n"),
    )?;
    let ca = Ca::new()?;
    let mut serial = 1000u64;
    let mut current = ca.leaf(serial)?;
    let secret = root.join("tls");
    install(
        &secret,
        current.cert_pem.as_bytes(),
        current.key_pem.as_bytes(),
    )?;

    // The fake API server (kube backend) lives in this process; it stops with it.
    let mut _api = None;
    let (backend_args, backend_env): (Vec<std::ffi::OsString>, Vec<(&str, PathBuf)>) =
        match args.backend {
            Backend::Standalone => (
                vec![
                    "--credspecs-dir".into(),
                    specs.clone().into(),
                    "--authz-policy".into(),
                    policy.clone().into(),
                ],
                Vec::new(),
            ),
            Backend::Kube => {
                let api = gmsa_testkit::FakeApiServer::start(gmsa_bench::fake_api::router(
                    gmsa_bench::fake_api::FakeConfig {
                        delay: Duration::ZERO,
                        specs: 100,
                        service_accounts: 1,
                    },
                ))
                .await;
                let kubeconfig = api.write_kubeconfig(&root);
                _api = Some(api);
                (Vec::new(), vec![("KUBECONFIG", kubeconfig)])
            }
        };
    let mut server = Server::start(&webhook, &root, &secret, backend_args, backend_env).await?;
    let pid = server.child.id();
    let https_port = server.https.port();

    let ctx = Arc::new(Ctx {
        client: Client {
            addr: server.https,
            h1: client_config(&ca.der, b"http/1.1")?,
            h2: client_config(&ca.der, b"h2")?,
        },
        templates: mix(),
        t0: Instant::now(),
        counter: AtomicU64::new(0),
        log: Mutex::new(Log::default()),
        stop_fixed: AtomicBool::new(false),
        stop_all: AtomicBool::new(false),
        sigterm_at: Mutex::new(None),
    });
    let duration = Duration::from_secs(args.duration);
    let fixed_for = duration.mul_f64(args.fixed_fraction.clamp(0.0, 1.0));

    // Sampler.
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampler = {
        let samples = samples.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(rss_kib) = proc_status_kib(pid, "VmRSS") else {
                    break;
                };
                let (fds, sockets) = fds(pid);
                lock(&samples).push(Sample {
                    at: ctx.now(),
                    rss_kib,
                    fds,
                    sockets,
                    connections: established(https_port),
                });
            }
        })
    };

    // Load: fixed rate, then saturation.
    let per_conn = Duration::from_secs_f64(args.connections as f64 / args.rate.max(1) as f64);
    let mut fixed = Vec::new();
    for id in 0..args.connections {
        fixed.push(tokio::spawn(load_worker(
            ctx.clone(),
            id,
            Phase::Fixed,
            Some(per_conn),
        )));
    }
    let slow_stats = Arc::new(Mutex::new(SlowStats::default()));
    let trickle_stats = Arc::new(Mutex::new(SlowStats::default()));
    let mut slow = Vec::new();
    for _ in 0..args.slowloris {
        slow.push(tokio::spawn(slow_client(
            ctx.clone(),
            false,
            slow_stats.clone(),
        )));
    }
    for _ in 0..args.tricklers {
        slow.push(tokio::spawn(slow_client(
            ctx.clone(),
            true,
            trickle_stats.clone(),
        )));
    }

    // Events: rotations with broken pairs between them, idle connections, oversized bodies,
    // old TLS versions; spread over the duration.
    let rotations = args.rotations;
    let broken_kinds = ["key of another certificate", "garbage", "empty files"];
    let mut rotation_delays = Vec::new();
    let mut broken_results = Vec::new();
    let probes = {
        let ctx = ctx.clone();
        let at = duration.mul_f64(0.3);
        tokio::spawn(async move {
            tokio::time::sleep(at.saturating_sub(ctx.now())).await;
            let idle = idle_connections(&ctx, 3).await;
            let mut oversized_results = Vec::new();
            for chunked in [false, true] {
                oversized_results.push((chunked, oversized(&ctx, chunked).await));
            }
            let mut old_tls = Vec::new();
            for flag in ["-tls1", "-tls1_1"] {
                let result =
                    tokio::task::spawn_blocking(move || openssl_handshake(https_port, flag)).await;
                old_tls.push((flag, result.ok().flatten()));
            }
            (idle, oversized_results, old_tls)
        })
    };
    let slots = rotations + 1;
    for slot in 0..slots {
        let due = duration.mul_f64((slot + 1) as f64 / (slots + 1) as f64);
        let wait = due.saturating_sub(ctx.now());
        tokio::time::sleep(wait).await;
        if slot == rotations {
            break;
        }
        // A broken pair first (three times), then a good rotation.
        if let Some(kind) = broken_kinds.get(slot / 3).filter(|_| slot % 3 == 1) {
            let refused_before = count_lines(&server.log, "new certificate/key refused");
            let (cert, key): (Vec<u8>, Vec<u8>) = match *kind {
                "key of another certificate" => {
                    let other = ca.leaf(serial + 500)?;
                    let mine = ca.leaf(serial + 501)?;
                    (mine.cert_pem.into_bytes(), other.key_pem.into_bytes())
                }
                "garbage" => (b"\x00\x01garbage\xff".to_vec(), b"-----BEGIN junk".to_vec()),
                _ => (Vec::new(), Vec::new()),
            };
            install(&secret, &cert, &key)?;
            tokio::time::sleep(RELOAD_INTERVAL * 6).await;
            let still_old = ctx
                .client
                .tls(false)
                .await
                .map(|(_, peer)| peer == current.der);
            let logged = count_lines(&server.log, "new certificate/key refused") > refused_before;
            broken_results.push((*kind, matches!(still_old, Ok(true)), logged));
        }
        serial += 1;
        let next = ca.leaf(serial)?;
        let swapped = Instant::now();
        install(&secret, next.cert_pem.as_bytes(), next.key_pem.as_bytes())?;
        let mut seen = None;
        while swapped.elapsed() < Duration::from_secs(10) {
            if let Ok((_, peer)) = ctx.client.tls(false).await {
                if peer == next.der {
                    seen = Some(swapped.elapsed());
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        rotation_delays.push(seen);
        current = next;
        if ctx.now() >= fixed_for && !ctx.stop_fixed.load(Ordering::Relaxed) {
            start_saturation(&ctx, args.saturation);
        }
    }
    if !ctx.stop_fixed.load(Ordering::Relaxed) {
        tokio::time::sleep(fixed_for.saturating_sub(ctx.now())).await;
        start_saturation(&ctx, args.saturation);
    }
    tokio::time::sleep(duration.saturating_sub(ctx.now())).await;
    for task in fixed {
        let _ = task.await;
    }
    let (idle, oversized_results, old_tls) = probes.await?;

    // SIGTERM during saturation.
    let before_sigterm = lock(&samples).last().copied();
    let sigterm_at = ctx.now();
    *lock(&ctx.sigterm_at) = Some(sigterm_at);
    // The shell's builtin `kill`: no procps needed, no unsafe signal code.
    let kill = Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()?;
    if !kill.success() {
        bail!("kill -TERM {pid} failed");
    }
    let sent = Instant::now();
    let mut not_ready_after = None;
    while sent.elapsed() < SHUTDOWN_DELAY {
        match http_get(server.admin, "/ready") {
            Some(code) if (200..300).contains(&code) => {}
            _ => {
                not_ready_after = Some(sent.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut exit = None;
    while sent.elapsed() < SHUTDOWN_DELAY + SHUTDOWN_GRACE + Duration::from_secs(5) {
        if let Some(status) = server.child.try_wait()? {
            exit = Some((sent.elapsed(), status));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ctx.stop_all.store(true, Ordering::Relaxed);
    sampler.abort();
    for task in slow {
        task.abort();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let observed = Observations {
        webhook,
        fixed_for,
        log_data: std::mem::take(&mut *lock(&ctx.log)),
        samples: lock(&samples).clone(),
        sigterm_at,
        before_sigterm,
        pid,
        rotation_delays,
        broken_results,
        slow_stats,
        trickle_stats,
        idle,
        oversized_results,
        old_tls,
        not_ready_after,
        exit,
        server_log: server.log.clone(),
    };
    let (mut out, failed) = report::report(args, &observed)?;
    if args.keep {
        let kept = work.keep();
        use std::fmt::Write as _;
        writeln!(out, "\nWork directory kept: {}", kept.display())?;
    }
    drop(server);
    Ok((out, failed))
}
