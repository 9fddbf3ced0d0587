//! The benchmark driver behind `scripts/bench`: runs the matrix of cells (the real webhook over
//! TLS against the fake API server, and the null server), plus the cold-cache burst and the
//! 10,000-spec memory cell, with `wrk` as the load generator; prints the table and the target
//! verdicts, and optionally writes them into docs/performance.md.
//!
//! Each cell starts a fresh fake API server and a fresh server process, pins the server to one
//! core and the load generator (and the fake) to another with `taskset`, warms up, then
//! measures: wrk's throughput and latency, the server's CPU (`/proc/PID/stat` utime+stime
//! before/after the measured window), its peak RSS (`VmHWM`), the API calls it made (the fake's
//! counters) and wrk's own CPU.
//!
//! Modules: `matrix` (the whole run), `cell` (one cell), `wrk` (the load generator), `procs`
//! (pinned processes and `/proc`), `report` (tables, verdicts, `--update-doc`).

mod cell;
mod matrix;
mod procs;
mod report;
mod wrk;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use gmsa_bench::bodies::{Case, Kind};
use gmsa_bench::fake_api::Counters;
use gmsa_bench::measure::Row;

/// Runs the webhook benchmark matrix and prints the table.
#[derive(Parser, Debug)]
#[command(name = "gmsa-bench")]
struct Args {
    /// Measured seconds per cell.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Warm-up seconds per cell before measuring (fills the caches).
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Directory holding gmsa-webhook, gmsa-bench-fakeapi and gmsa-bench-null (default: the
    /// directory of this program).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The load generator.
    #[arg(long, default_value = "wrk")]
    wrk: String,
    /// Run only the cells whose name contains one of these (e.g. `null`, `pod-gmsa`, `burst`,
    /// `memory`, `/c1/`, `/d2`). Cell names look like `webhook/pod-gmsa/validate/c32/d2`.
    #[arg(long)]
    only: Vec<String>,
    /// Core the server under test is pinned to.
    #[arg(long, default_value_t = 0)]
    server_core: u32,
    /// Core the load generator and the fake API server are pinned to.
    #[arg(long, default_value_t = 1)]
    load_core: u32,
    /// Reviews in the cold-cache burst.
    #[arg(long, default_value_t = 10_000)]
    burst_reviews: u64,
    /// Service accounts the burst spreads over.
    #[arg(long, default_value_t = 100)]
    burst_service_accounts: usize,
    /// Specs in the fake for the large-cache memory cell.
    #[arg(long, default_value_t = 10_000)]
    memory_specs: usize,
    /// Extra argument for the webhook (repeat), e.g. `--webhook-arg=--authz-cache-ttl=5m`.
    #[arg(long = "webhook-arg", allow_hyphen_values = true)]
    webhook_args: Vec<String>,
    /// Log level given to the webhook.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Write the report (markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace the text between `<!-- bench:begin -->` and `<!-- bench:end -->` in this file
    /// with the report (docs/performance.md).
    #[arg(long)]
    update_doc: Option<PathBuf>,
    /// A line about the conditions, printed in the report (e.g. "measured while other builds ran").
    #[arg(long)]
    note: Option<String>,
    /// Run the server, the fake API server and wrk at this niceness (e.g. -19, as root) so
    /// that other work on a shared machine preempts them less; said in the report.
    #[arg(long, allow_hyphen_values = true)]
    nice: Option<i32>,
    /// Keep the work directory (bodies, scripts, server logs) and print where it is.
    #[arg(long)]
    keep: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Server {
    Webhook,
    Null,
}

#[derive(Clone, Debug)]
struct Cell {
    name: String,
    server: Server,
    case: Case,
    kind: Kind,
    concurrency: u32,
    delay_ms: f64,
    specs: usize,
    service_accounts: usize,
    /// Stop after this many responses (0: run for the duration).
    limit: u64,
    warmup: bool,
}

impl Cell {
    fn new(server: Server, case: Case, kind: Kind, concurrency: u32, delay_ms: f64) -> Self {
        let server_label = match server {
            Server::Webhook => "webhook",
            Server::Null => "null",
        };
        let mut name = format!(
            "{server_label}/{}/{}/c{concurrency}",
            case.label(),
            kind.label()
        );
        if server == Server::Webhook {
            name.push_str(&format!("/d{delay_ms}"));
        }
        Self {
            name,
            server,
            case,
            kind,
            concurrency,
            delay_ms,
            specs: 100,
            service_accounts: 1,
            limit: 0,
            warmup: true,
        }
    }
}

struct Burst {
    row: Row,
    counters: Counters,
}

struct Memory {
    specs: usize,
    row: Row,
    ready_after: Duration,
}

struct Env {
    args: Args,
    webhook: PathBuf,
    fakeapi: PathBuf,
    null: PathBuf,
    work: PathBuf,
    crt: PathBuf,
    key: PathBuf,
    clk_tck: f64,
}

fn main() -> anyhow::Result<()> {
    matrix::run(Args::parse())
}
