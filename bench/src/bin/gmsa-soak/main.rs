//! `gmsa-soak`: a bounded soak of the real `gmsa-webhook` binary over TLS on loopback, run by
//! `scripts/soak` (see docs/reliability.md).
//!
//! The webhook runs standalone (specs from a directory, a policy file) with its certificate in
//! a Kubernetes-Secret-volume layout (`tls.crt -> ..data/tls.crt`, `..data -> ..<generation>`).
//! For `--duration` seconds it gets mixed AdmissionReviews (mutate and validate, pods with and
//! without GMSA, allowed and denied), first at a fixed rate, then at saturation, and meanwhile:
//!
//! - every second: the server's RSS, open fds and established connections on its port;
//! - `--rotations` certificate rotations through the `..data` symlink swap, each proven by a
//!   fresh handshake seeing the new certificate; between them three broken pairs (key of
//!   another certificate, garbage, empty files) that must be refused (logged) while the
//!   previous pair keeps serving;
//! - slowloris clients (headers never finished) and bodies trickled byte by byte, reopened as
//!   soon as the server cuts them, the whole time;
//! - idle HTTP/1.1 and HTTP/2 connections, which must be closed by the server;
//! - a body over the limit, which must get 413 without being read whole (Content-Length and
//!   chunked);
//! - TLS 1.0/1.1 handshakes (with `openssl`, when installed), which must be refused;
//! - finally SIGTERM during saturation: every review started before the signal must succeed,
//!   readiness must fail at once, and the process must exit within the grace period.
//!
//! Every review's answer is checked (HTTP 200, UID echoed, the expected verdict). It prints the
//! figures as markdown and exits 1 when a check failed.
//!
//! Modules: `run` (the run, step by step), `server` (the webhook process and `/proc`), `certs`
//! (CA and Secret-volume writes), `client` (TLS connections), `load` (the review mix and the
//! load workers), `adversary` (slow, idle, oversized and old-TLS clients), `report` (figures
//! and checks).

mod adversary;
mod certs;
mod client;
mod load;
mod report;
mod run;
mod server;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;

/// Soak the webhook binary and print the figures.
#[derive(Parser, Debug)]
#[command(name = "gmsa-soak")]
struct Args {
    /// Seconds of load in total (fixed rate, then saturation).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Part of the duration at the fixed rate (the rest is saturation).
    #[arg(long, default_value_t = 0.5)]
    fixed_fraction: f64,
    /// Reviews per second in the fixed-rate part.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Client connections in the fixed-rate part (half HTTP/1.1, half HTTP/2).
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Concurrent clients in the saturation part.
    #[arg(long, default_value_t = 32)]
    saturation: usize,
    /// Certificate rotations during the soak.
    #[arg(long, default_value_t = 10)]
    rotations: usize,
    /// Slowloris connections held open at all times (partial headers).
    #[arg(long, default_value_t = 20)]
    slowloris: usize,
    /// Connections trickling a body byte by byte at all times.
    #[arg(long, default_value_t = 5)]
    tricklers: usize,
    /// Where the webhook gets specs and `use` answers: `kube` (the Kubernetes backend against
    /// an in-process fake API server: watch-fed cache, LocalSubjectAccessReviews) or
    /// `standalone` (a specs directory and a policy file).
    #[arg(long, value_enum, default_value_t = Backend::Kube)]
    backend: Backend,
    /// The webhook binary (default: `gmsa-webhook` next to this program).
    #[arg(long)]
    webhook: Option<PathBuf>,
    /// Also write the report (markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A line about the machine conditions, printed in the report.
    #[arg(long)]
    note: Option<String>,
    /// Keep the work directory (certificates, specs, the webhook's log) and print where.
    #[arg(long)]
    keep: bool,
}

/// The webhook's lookups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    /// Kubernetes backend against the fake API server.
    Kube,
    /// Specs directory and policy file.
    Standalone,
}

// Server settings the checks depend on.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
const SHUTDOWN_DELAY: Duration = Duration::from_secs(1);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
const RELOAD_INTERVAL: Duration = Duration::from_millis(250);
const MAX_BODY: usize = 1024 * 1024;

/// The guarded value, even when a panicking holder poisoned the lock.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = runtime.block_on(run::soak(&args))?;
    print!("{}", report.0);
    if let Some(out) = &args.out {
        std::fs::write(out, &report.0).with_context(|| format!("writing {}", out.display()))?;
    }
    if report.1 > 0 {
        bail!("{} soak check(s) failed", report.1);
    }
    Ok(())
}
