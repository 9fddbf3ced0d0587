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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use gmsa_bench::bodies::{review, service_account, Case, Kind};
use gmsa_bench::fake_api::Counters;
use gmsa_bench::measure::{
    fmt_ms, parse_stat_cpu_ticks, parse_status_kib, parse_wrk_output, render_table,
    render_verdicts, Row, Verdict, WrkResult,
};

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

/// A child process killed (and reaped) when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let args = Args::parse();
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

/// Runs one cell; returns its row, the fake's counters over the measured window and how long
/// the server took to become ready.
fn run_cell(env: &Env, cell: &Cell) -> anyhow::Result<(Row, Counters, Duration)> {
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

fn diff(before: &Counters, after: &Counters) -> Counters {
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

fn wrk_script(files: &[PathBuf], limit: u64, stop_file: &Path, expect_patch: bool) -> String {
    let list: Vec<String> = files
        .iter()
        .map(|f| format!("{:?}", f.display().to_string()))
        .collect();
    format!(
        r#"-- generated by gmsa-bench: POST AdmissionReviews, check each answer, report as JSON
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local files = {{ {files} }}
local limit = {limit}
local stop_file = {stop_file:?}
local expect_patch = {expect_patch}
local reqs = {{}}
local threads = {{}}
completed = 0
not_allowed = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for i, name in ipairs(files) do
    local f = assert(io.open(name, "rb"))
    local body = f:read("*a")
    f:close()
    reqs[i] = wrk.format(nil, nil, nil, body)
  end
end

local n = 0
function request()
  n = n + 1
  if n > #reqs then n = 1 end
  return reqs[n]
end

function response(status, headers, body)
  completed = completed + 1
  if status == 200 and (not string.find(body, '"allowed":true', 1, true)
      or (expect_patch and not string.find(body, '"patch":', 1, true))) then
    not_allowed = not_allowed + 1
  end
  if limit > 0 and completed == limit then
    -- wrk's main thread sleeps for the whole duration: tell the driver, which sends SIGINT
    -- (wrk then stops and reports at once).
    local f = io.open(stop_file, "w")
    if f then f:write("done") f:close() end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("not_allowed") or 0)
  end
  local e = summary.errors
  io.write(string.format('{mark}{{"requests":%d,"duration_us":%d,"p50_us":%.1f,"p99_us":%.1f,"max_us":%.1f,"transport_errors":%d,"not_allowed":%d,"cpu_s":%.3f}}\n',
    summary.requests, summary.duration, latency:percentile(50.0), latency:percentile(99.0), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout, bad, os.clock()))
end
"#,
        files = list.join(", "),
        stop_file = stop_file.display().to_string(),
        mark = gmsa_bench::measure::WRK_MARK,
    )
}

/// Runs wrk for `seconds`, or until its script creates `stop_file` (a response limit was
/// reached): then wrk gets SIGINT, which makes it stop and report at once.
fn run_wrk(
    env: &Env,
    script: &Path,
    concurrency: u32,
    seconds: u64,
    url: &str,
    stop_file: Option<&Path>,
) -> anyhow::Result<WrkResult> {
    let mut child = pinned(env, env.args.load_core)
        .arg(&env.args.wrk)
        .arg("-t1")
        .arg(format!("-c{concurrency}"))
        .arg(format!("-d{seconds}s"))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(script)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", env.args.wrk))?;
    let pid = child.id();
    let mut stdout = child.stdout.take().context("wrk's stdout")?;
    let mut stderr = child.stderr.take().context("wrk's stderr")?;
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut interrupted = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if !interrupted && stop_file.is_some_and(Path::exists) {
            Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status()
                .context("send SIGINT to wrk")?;
            interrupted = true;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    parse_wrk_output(&stdout).with_context(|| {
        format!("no result line in wrk's output (exit {status}):\n{stdout}\n{stderr}")
    })
}

/// `taskset -c CORE ...`, under `nice -n N` when `--nice` was given (both exec the program:
/// the child's pid is the program's).
fn pinned(env: &Env, core: u32) -> Command {
    let mut cmd = match env.args.nice {
        Some(n) => {
            let mut cmd = Command::new("nice");
            cmd.arg("-n").arg(n.to_string()).arg("taskset");
            cmd
        }
        None => Command::new("taskset"),
    };
    cmd.arg("-c").arg(core.to_string());
    cmd
}

fn spawn_pinned(
    env: &Env,
    core: u32,
    program: &Path,
    args: &[String],
    envs: &[(&str, String)],
    log: Option<&Path>,
) -> anyhow::Result<Proc> {
    let mut cmd = pinned(env, core);
    cmd.arg(program).args(args);
    // Never let an in-cluster configuration win over the fake's kubeconfig.
    cmd.env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    match log {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("create {}", path.display()))?;
            cmd.stdout(file.try_clone()?).stderr(file);
        }
        None => {
            cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        }
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("start {} pinned to core {core}", program.display()))?;
    Ok(Proc { child })
}

fn read_ready_line(proc: &mut Proc, what: &str) -> anyhow::Result<String> {
    let stdout = proc
        .child
        .stdout
        .take()
        .with_context(|| format!("{what}: no stdout"))?;
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    reader
        .read_line(&mut line)
        .with_context(|| format!("read the READY line of the {what}"))?;
    let url = line
        .trim()
        .strip_prefix("READY ")
        .with_context(|| format!("the {what} did not start (said {line:?})"))?
        .to_string();
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    Ok(url)
}

fn wait_ready(proc: &mut Proc, admin_port: u16, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = proc.exited() {
            bail!(
                "the webhook exited ({status}) before it was ready:\n{}",
                tail(log)
            );
        }
        if let Ok((200..=299, _)) = http_get(&format!("127.0.0.1:{admin_port}"), "/ready") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the webhook was not ready after 120 s:\n{}", tail(log));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn fake_counters(url: Option<&str>) -> anyhow::Result<Counters> {
    let Some(url) = url else {
        return Ok(Counters::default());
    };
    let addr = url.trim_start_matches("http://");
    let (status, body) = http_get(addr, "/_bench/counters")?;
    if status != 200 {
        bail!("fake API server counters: HTTP {status}");
    }
    serde_json::from_str(&body).context("parse the fake API server's counters")
}

/// A plain HTTP/1.0 GET on loopback: (status, body).
fn http_get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad HTTP answer from {addr}{path}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?.port())
}

fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    parse_stat_cpu_ticks(&stat).with_context(|| format!("parse /proc/{pid}/stat"))
}

fn status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    parse_status_kib(&status, key).with_context(|| format!("{key} in /proc/{pid}/status"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_string())
}

fn chrono_like_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn command_text(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "?".to_string())
}

/// wrk prints its version in its usage text (and exits 1).
fn wrk_version(wrk: &str) -> String {
    Command::new(wrk)
        .arg("-v")
        .output()
        .ok()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("wrk "))
                .map(|l| l.split(" Copyright").next().unwrap_or(l).trim().to_string())
        })
        .unwrap_or_else(|| wrk.to_string())
}

fn cpu_model() -> String {
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

fn report(
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

fn verdicts(rows: &[Row], burst: Option<&Burst>, memory: &[Memory]) -> Vec<Verdict> {
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

fn update_doc(doc: &Path, report: &str) -> anyhow::Result<()> {
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
