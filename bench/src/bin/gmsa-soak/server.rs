//! The webhook process under soak and what is read from outside it: `/proc` (RSS, fds),
//! established connections, admin endpoints, log lines.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::{
    HEADER_READ_TIMEOUT, IDLE_TIMEOUT, MAX_BODY, RELOAD_INTERVAL, REQUEST_TIMEOUT, SHUTDOWN_DELAY,
    SHUTDOWN_GRACE,
};

pub struct Server {
    pub child: Child,
    pub https: SocketAddr,
    pub admin: SocketAddr,
    pub log: PathBuf,
}

impl Server {
    /// Starts `webhook` on free loopback ports with the soak's settings, its certificate from
    /// `secret` (a Secret-volume directory) and its log in `root/webhook.log`, and waits until
    /// `/ready` answers 2xx (30 s at most).
    pub async fn start(
        webhook: &Path,
        root: &Path,
        secret: &Path,
        backend_args: Vec<OsString>,
        backend_env: Vec<(&str, PathBuf)>,
    ) -> anyhow::Result<Self> {
        let (https_port, admin_port) = (free_port()?, free_port()?);
        let log = root.join("webhook.log");
        let log_file = std::fs::File::create(&log)?;
        let secs = |d: Duration| format!("{}ms", d.as_millis());
        let child = Command::new(webhook)
            .args(["--bind-address", "127.0.0.1"])
            .args(["--https-port", &https_port.to_string()])
            .args(["--admin-port", &admin_port.to_string()])
            .arg("--tls-crt")
            .arg(secret.join("tls.crt"))
            .arg("--tls-key")
            .arg(secret.join("tls.key"))
            .args(["--cert-reload", "--reload-interval", &secs(RELOAD_INTERVAL)])
            .args(["--header-read-timeout", &secs(HEADER_READ_TIMEOUT)])
            .args(["--request-timeout", &secs(REQUEST_TIMEOUT)])
            .args(["--idle-timeout", &secs(IDLE_TIMEOUT)])
            .args(["--max-body-bytes", &MAX_BODY.to_string()])
            .args(["--shutdown-delay", &secs(SHUTDOWN_DELAY)])
            .args(["--shutdown-grace", &secs(SHUTDOWN_GRACE)])
            .args(["--log-format", "json", "--log-level", "info"])
            .args(backend_args)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("RUST_LOG")
            .envs(backend_env)
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", webhook.display()))?;
        let mut server = Server {
            child,
            https: SocketAddr::from(([127, 0, 0, 1], https_port)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            log: log.clone(),
        };
        let ready_by = Instant::now() + Duration::from_secs(30);
        while !http_get(server.admin, "/ready").is_some_and(|c| (200..300).contains(&c)) {
            if Instant::now() > ready_by || server.child.try_wait()?.is_some() {
                bail!(
                    "the webhook did not become ready; its log:\n{}",
                    std::fs::read_to_string(&server.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    gmsa_bench::measure::parse_status_kib(&status, key)
}

/// Open fds of `pid` and how many are sockets.
pub fn fds(pid: u32) -> (u64, u64) {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return (0, 0);
    };
    let mut all = 0;
    let mut sockets = 0;
    for entry in entries.flatten() {
        all += 1;
        if std::fs::read_link(entry.path())
            .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
        {
            sockets += 1;
        }
    }
    (all, sockets)
}

/// Established TCP connections whose local port is `port` (the server side).
pub fn established(port: u16) -> u64 {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return 0;
    };
    let want = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 3 && cols[1].ends_with(&want) && cols[3] == "01"
        })
        .count() as u64
}

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at: Duration,
    pub rss_kib: u64,
    pub fds: u64,
    pub sockets: u64,
    pub connections: u64,
}

pub fn http_get(addr: SocketAddr, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head).ok()?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn count_lines(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().filter(|l| l.contains(needle)).count())
        .unwrap_or(0)
}
