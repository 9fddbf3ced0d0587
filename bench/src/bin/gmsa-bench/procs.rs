//! The processes of a cell: pinned with `taskset`, ready lines and `/ready`, `/proc` readings,
//! the fake API server's counters.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gmsa_bench::fake_api::Counters;
use gmsa_bench::measure::{parse_stat_cpu_ticks, parse_status_kib};

use crate::Env;

/// A child process killed (and reaped) when dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `taskset -c CORE ...`, under `nice -n N` when `--nice` was given (both exec the program:
/// the child's pid is the program's).
pub fn pinned(env: &Env, core: u32) -> Command {
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

pub fn spawn_pinned(
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

pub fn read_ready_line(proc: &mut Proc, what: &str) -> anyhow::Result<String> {
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

pub fn wait_ready(proc: &mut Proc, admin_port: u16, log: &Path) -> anyhow::Result<()> {
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

pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

pub fn fake_counters(url: Option<&str>) -> anyhow::Result<Counters> {
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
pub fn http_get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
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

pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?.port())
}

pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    parse_stat_cpu_ticks(&stat).with_context(|| format!("parse /proc/{pid}/stat"))
}

pub fn status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    parse_status_kib(&status, key).with_context(|| format!("{key} in /proc/{pid}/status"))
}
