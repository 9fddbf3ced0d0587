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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use gmsa_bench::bodies::{review, spec_object, Case, Kind, NAMESPACE, SPEC_NAMES};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

// ---- certificates in a Secret-volume layout ------------------------------------------------

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
}

/// A certificate (PEM and DER) and its key (PEM).
#[derive(Clone)]
struct Pair {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new() -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "gmsa soak CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        })
    }

    fn leaf(&self, serial: u64) -> anyhow::Result<Pair> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        params.serial_number = Some(serial.into());
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        })
    }
}

/// Writes the pair into `dir` the way the kubelet updates a Secret volume: a new generation
/// directory, `..data` swapped to it atomically, the previous generation removed.
fn install(dir: &Path, cert: &[u8], key: &[u8]) -> anyhow::Result<()> {
    Ok(gmsa_certs::write::swap_dir(
        dir,
        &[("tls.crt", cert, 0o644), ("tls.key", key, 0o600)],
    )?)
}

// ---- client ----------------------------------------------------------------------------------

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

struct Client {
    addr: SocketAddr,
    h1: Arc<ClientConfig>,
    h2: Arc<ClientConfig>,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// One open connection: its sender, and a flag set when the server closed it.
struct Conn {
    sender: Sender,
    closed: tokio::sync::watch::Receiver<bool>,
}

fn client_config(ca_der: &[u8], alpn: &[u8]) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(ca_der.to_vec()))?;
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

impl Client {
    async fn tls(&self, h2: bool) -> anyhow::Result<(Tls, Vec<u8>)> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        let config = if h2 { &self.h2 } else { &self.h1 };
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default();
        Ok((tls, peer))
    }

    async fn connect(&self, h2: bool) -> anyhow::Result<Conn> {
        let (tls, _) = self.tls(h2).await?;
        let io = TokioIo::new(tls);
        let (done, closed) = tokio::sync::watch::channel(false);
        let sender = if h2 {
            let (sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(async move {
                let _ = conn.await;
                let _ = done.send(true);
            });
            Sender::H2(sender)
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(async move {
                let _ = conn.await;
                let _ = done.send(true);
            });
            Sender::H1(sender)
        };
        Ok(Conn { sender, closed })
    }
}

impl Conn {
    async fn post(&mut self, path: &str, body: Vec<u8>) -> anyhow::Result<(u16, Bytes)> {
        let request = hyper::Request::builder()
            .method("POST")
            .uri(format!("https://localhost{path}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
        };
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

// ---- the review mix ----------------------------------------------------------------------------

/// A review body split around its UID, the path, and the verdict it must get.
struct Template {
    label: &'static str,
    path: &'static str,
    head: Vec<u8>,
    tail: Vec<u8>,
    allowed: bool,
}

impl Template {
    fn new(label: &'static str, case: Case, kind: Kind, sa: &str, allowed: bool) -> Self {
        let body = review(case, kind, sa);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let uid = value["request"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let needle = format!("\"uid\":\"{uid}\"");
        let at = body
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap_or(0);
        let split = at + "\"uid\":\"".len();
        Self {
            label,
            path: kind.path(),
            head: body[..split].to_vec(),
            tail: body[split + uid.len()..].to_vec(),
            allowed,
        }
    }

    fn body(&self, uid: &str) -> Vec<u8> {
        [&self.head[..], uid.as_bytes(), &self.tail[..]].concat()
    }
}

fn mix() -> Vec<Template> {
    vec![
        Template::new("mutate/no-gmsa", Case::NoGmsa, Kind::Mutate, "webapp", true),
        Template::new(
            "mutate/pod-gmsa",
            Case::PodGmsa,
            Kind::Mutate,
            "webapp",
            true,
        ),
        Template::new(
            "validate/pod-gmsa",
            Case::PodGmsa,
            Kind::Validate,
            "webapp",
            true,
        ),
        Template::new(
            "mutate/3-containers",
            Case::ThreeContainers,
            Kind::Mutate,
            "webapp",
            true,
        ),
        Template::new(
            "validate/3-containers",
            Case::ThreeContainers,
            Kind::Validate,
            "webapp",
            true,
        ),
        Template::new(
            "validate/update",
            Case::Update,
            Kind::Validate,
            "webapp",
            true,
        ),
        Template::new(
            "validate/denied",
            Case::PodGmsa,
            Kind::Validate,
            "intruder",
            false,
        ),
    ]
}

// ---- records ---------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Phase {
    Fixed,
    Saturation,
}

struct Record {
    phase: Phase,
    start: Duration,
    took: Duration,
    ok: bool,
}

#[derive(Default)]
struct Log {
    records: Vec<Record>,
    /// Errors by (started after SIGTERM, message).
    errors: BTreeMap<(bool, String), u64>,
    served_by_label: BTreeMap<&'static str, u64>,
}

struct Ctx {
    client: Client,
    templates: Vec<Template>,
    t0: Instant,
    counter: AtomicU64,
    log: Mutex<Log>,
    stop_fixed: AtomicBool,
    stop_all: AtomicBool,
    sigterm_at: Mutex<Option<Duration>>,
}

impl Ctx {
    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    fn record(&self, phase: Phase, start: Duration, outcome: Result<&'static str, String>) {
        let took = self.now().saturating_sub(start);
        let after_sigterm = lock(&self.sigterm_at).is_some_and(|at| start >= at);
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let ok = outcome.is_ok();
        match outcome {
            Ok(label) => *log.served_by_label.entry(label).or_default() += 1,
            Err(e) => *log.errors.entry((after_sigterm, e)).or_default() += 1,
        }
        log.records.push(Record {
            phase,
            start,
            took,
            ok,
        });
    }

    /// Sends the next review of the mix on `conn`; checks the answer.
    async fn one(&self, conn: &mut Conn, phase: Phase) -> bool {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let template = &self.templates[(n as usize) % self.templates.len()];
        let uid = format!("soak-{n:012}");
        let start = self.now();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            conn.post(template.path, template.body(&uid)),
        )
        .await;
        let outcome = match result {
            Err(_) => Err("no answer within 10s".to_string()),
            Ok(Err(e)) => Err(format!("request failed: {}", short(&e))),
            Ok(Ok((status, body))) => {
                check_answer(status, &body, &uid, template.allowed).map(|()| template.label)
            }
        };
        let ok = outcome.is_ok();
        self.record(phase, start, outcome);
        ok
    }
}

fn short(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    text.chars().take(160).collect()
}

fn check_answer(status: u16, body: &[u8], uid: &str, allowed: bool) -> Result<(), String> {
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    let answer: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("answer is not JSON: {e}"))?;
    let response = &answer["response"];
    if response["uid"] != uid {
        return Err("UID not echoed".to_string());
    }
    if response["allowed"] != allowed {
        return Err(format!(
            "expected allowed={allowed}, got {}",
            response["status"]["message"]
        ));
    }
    Ok(())
}

/// A load client: keeps one connection (reopened after a failure) and sends reviews, at
/// `interval` (fixed rate) or back to back (saturation).
async fn load_worker(ctx: Arc<Ctx>, id: usize, phase: Phase, interval: Option<Duration>) {
    let h2 = id % 2 == 1;
    let mut conn: Option<Conn> = None;
    let started = Instant::now();
    let mut sent: u32 = 0;
    loop {
        let stop = match phase {
            Phase::Fixed => ctx.stop_fixed.load(Ordering::Relaxed),
            Phase::Saturation => ctx.stop_all.load(Ordering::Relaxed),
        };
        if stop {
            break;
        }
        if let Some(interval) = interval {
            // Spread the workers over the interval; no catching up after a slow answer.
            let due = started + interval * sent + interval * (id as u32) / 16;
            tokio::time::sleep_until(due.into()).await;
        }
        sent += 1;
        if conn.is_none() {
            let start = ctx.now();
            match ctx.client.connect(h2).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    ctx.record(phase, start, Err(format!("connect: {}", short(&e))));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        if let Some(c) = conn.as_mut() {
            if !ctx.one(c, phase).await {
                conn = None;
            }
        }
    }
}

// ---- adversarial clients ---------------------------------------------------------------------

#[derive(Default)]
struct SlowStats {
    opened: u64,
    cut: u64,
    longest_held: Duration,
    answered_408: u64,
}

/// Keeps one slow client alive at all times: partial headers (`trickle_body == false`) or a
/// body trickled one byte per 200 ms. Records how long the server let each one hold on.
async fn slow_client(ctx: Arc<Ctx>, trickle_body: bool, stats: Arc<Mutex<SlowStats>>) {
    while !ctx.stop_all.load(Ordering::Relaxed) {
        let Ok((mut tls, _)) = ctx.client.tls(false).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let opened = Instant::now();
        lock(&stats).opened += 1;
        let head = if trickle_body {
            "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: 5000\r\n\r\n"
        } else {
            "POST /validate HTTP/1.1\r\nHost: localhost\r\n"
        };
        if tls.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        let mut buf = [0u8; 512];
        let mut got = Vec::new();
        let cut = loop {
            tokio::select! {
                read = tls.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break true,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                },
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    let byte: &[u8] = if trickle_body { b" " } else { b"X" };
                    if tls.write_all(byte).await.is_err() {
                        break true;
                    }
                }
            }
            if opened.elapsed() > Duration::from_secs(30) {
                break false;
            }
        };
        let mut s = lock(&stats);
        if cut {
            s.cut += 1;
        }
        if got.starts_with(b"HTTP/1.1 408") {
            s.answered_408 += 1;
        }
        s.longest_held = s.longest_held.max(opened.elapsed());
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens HTTP/1.1 and HTTP/2 connections, sends one review on each, then waits for the server
/// to close them; returns the close delays after the last answer.
async fn idle_connections(ctx: &Ctx, each: usize) -> Vec<(bool, Option<Duration>)> {
    let mut waits = Vec::new();
    for i in 0..2 * each {
        let h2 = i % 2 == 1;
        let ctx_ok = match ctx.client.connect(h2).await {
            Ok(mut conn) => {
                if ctx.one(&mut conn, Phase::Fixed).await {
                    Some(conn)
                } else {
                    None
                }
            }
            Err(_) => None,
        };
        waits.push((h2, ctx_ok, Instant::now()));
    }
    let mut out = Vec::new();
    for (h2, conn, answered) in waits {
        let Some(conn) = conn else {
            out.push((h2, None));
            continue;
        };
        let mut closed = conn.closed.clone();
        let limit = IDLE_TIMEOUT + Duration::from_secs(5);
        let result = tokio::time::timeout(limit, closed.wait_for(|c| *c)).await;
        out.push((h2, result.ok().map(|_| answered.elapsed())));
        drop(conn);
    }
    out
}

/// Sends the head of a request over the limit and up to `send_at_most` body bytes; returns
/// the status line and how many body bytes were written when it came.
async fn oversized(ctx: &Ctx, chunked: bool) -> anyhow::Result<(String, usize)> {
    let (tls, _) = ctx.client.tls(false).await?;
    let (mut read, mut write) = tokio::io::split(tls);
    let declared = 16 * MAX_BODY;
    let head = if chunked {
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
            .to_string()
    } else {
        format!(
            "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {declared}\r\n\r\n"
        )
    };
    write.write_all(head.as_bytes()).await?;
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    let writer = tokio::spawn(async move {
        let chunk = vec![b' '; 16 * 1024];
        let mut sent = 0usize;
        while sent < declared {
            let frame = if chunked {
                [
                    format!("{:x}\r\n", chunk.len()).as_bytes(),
                    &chunk[..],
                    b"\r\n",
                ]
                .concat()
            } else {
                chunk.clone()
            };
            if write.write_all(&frame).await.is_err() {
                break;
            }
            sent += chunk.len();
            counter.store(sent as u64, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(20), read.read(&mut buf))
        .await
        .context("no answer to the oversized body within 20s")??;
    let at = written.load(Ordering::Relaxed) as usize;
    writer.abort();
    let status = String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    Ok((status, at))
}

/// `openssl s_client` with `flag` (`-tls1`, `-tls1_1`): whether the handshake succeeded.
/// `None` when openssl is not installed.
fn openssl_handshake(port: u16, flag: &str) -> Option<bool> {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            flag,
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(out.status.success() && text.contains("Cipher is") && !text.contains("Cipher is (NONE)"))
}

// ---- the server process ------------------------------------------------------------------------

struct Server {
    child: Child,
    https: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    gmsa_bench::measure::parse_status_kib(&status, key)
}

/// Open fds of `pid` and how many are sockets.
fn fds(pid: u32) -> (u64, u64) {
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
fn established(port: u16) -> u64 {
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
struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: u64,
    sockets: u64,
    connections: u64,
}

fn http_get(addr: SocketAddr, path: &str) -> Option<u16> {
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

fn count_lines(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().filter(|l| l.contains(needle)).count())
        .unwrap_or(0)
}

// ---- main ------------------------------------------------------------------------------------

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

struct Checks {
    lines: Vec<(bool, String)>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: String) {
        self.lines.push((ok, what));
    }
    fn failed(&self) -> usize {
        self.lines.iter().filter(|(ok, _)| !ok).count()
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = runtime.block_on(soak(&args))?;
    print!("{}", report.0);
    if let Some(out) = &args.out {
        std::fs::write(out, &report.0).with_context(|| format!("writing {}", out.display()))?;
    }
    if report.1 > 0 {
        bail!("{} soak check(s) failed", report.1);
    }
    Ok(())
}

async fn soak(args: &Args) -> anyhow::Result<(String, usize)> {
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
    let (https_port, admin_port) = (free_port()?, free_port()?);
    let log = root.join("webhook.log");
    let log_file = std::fs::File::create(&log)?;
    let secs = |d: Duration| format!("{}ms", d.as_millis());
    let child = Command::new(&webhook)
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
    let pid = server.child.id();
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
    let mut checks = Checks { lines: Vec::new() };

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

    // ---- figures -----------------------------------------------------------------------------
    let log_data = std::mem::take(&mut *lock(&ctx.log));
    let samples = lock(&samples).clone();
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
        webhook.display(),
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
        fixed_for.as_secs(),
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
    let before = |r: &Record| r.start < sigterm_at;
    for phase in [Phase::Fixed, Phase::Saturation] {
        let rs: Vec<&Record> = log_data
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
    let served: u64 = log_data.records.iter().filter(|r| r.ok).count() as u64;
    writeln!(out)?;
    writeln!(
        out,
        "Reviews answered correctly in total: {served} ({})",
        log_data
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
        let errors: Vec<_> = log_data
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
    let warmup = Duration::from_secs(5).min(fixed_for / 2);
    for (name, from, to) in [
        ("fixed rate", warmup, fixed_for),
        (
            "saturation",
            fixed_for + warmup.min(Duration::from_secs(2)),
            sigterm_at,
        ),
    ] {
        let ss: Vec<&Sample> = samples
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
    if let Some(s) = before_sigterm {
        writeln!(
            out,
            "\nLast sample before SIGTERM: RSS {}, {} fds ({} sockets), {} established connections.",
            mib(s.rss_kib),
            s.fds,
            s.sockets,
            s.connections
        )?;
    }
    if let Some(peak) = proc_status_kib(pid, "VmHWM") {
        writeln!(out, "Peak RSS (VmHWM): {}", mib(peak))?;
    }

    // Certificates.
    writeln!(out, "\n#### Certificates\n")?;
    let seen: Vec<Duration> = rotation_delays.iter().flatten().copied().collect();
    writeln!(
        out,
        "- {} rotations through the `..data` swap; new certificate served after {} (max {}); {} not seen within 10 s",
        rotation_delays.len(),
        seen.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", "),
        ms(seen.iter().max().copied().unwrap_or_default()),
        rotation_delays.len() - seen.len()
    )?;
    checks.check(
        rotation_delays.len() == rotations && seen.len() == rotations,
        format!("{} of {rotations} rotations served", seen.len()),
    );
    for (kind, kept, logged) in &broken_results {
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
            &slow_stats,
            HEADER_READ_TIMEOUT,
        ),
        (
            "body trickled 1 byte/200 ms",
            &trickle_stats,
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
        let waits: Vec<&Option<Duration>> = idle
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
    for (chunked, result) in &oversized_results {
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
    for (flag, result) in &old_tls {
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
    let inflight = log_data
        .records
        .iter()
        .filter(|r| r.start < sigterm_at && r.start + r.took > sigterm_at)
        .count();
    let failed_before = log_data
        .records
        .iter()
        .filter(|r| r.start < sigterm_at && !r.ok)
        .count();
    let after: Vec<&Record> = log_data
        .records
        .iter()
        .filter(|r| r.start >= sigterm_at)
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
    match not_ready_after {
        Some(d) => writeln!(out, "- /ready failed {} after SIGTERM", ms(d))?,
        None => writeln!(out, "- /ready kept answering 2xx during the shutdown delay")?,
    }
    checks.check(
        not_ready_after.is_some(),
        "readiness fails after SIGTERM".into(),
    );
    checks.check(
        failed_before == 0,
        format!("{failed_before} reviews started before SIGTERM failed"),
    );
    match exit {
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
    let reloaded = count_lines(&server.log, "certificate reloaded");
    let refused = count_lines(&server.log, "new certificate/key refused");
    writeln!(
        out,
        "- webhook log: {reloaded} `certificate reloaded`, {refused} `new certificate/key refused` lines"
    )?;
    writeln!(
        out,
        "\nFaults injected: {} certificate rotations, {} broken pairs, {} slowloris and {} \
         body-trickling connections, {} idle connections, {} oversized bodies, {} old-TLS \
         handshakes, 1 SIGTERM under saturation; reviews served: {served}.",
        rotation_delays.len(),
        broken_results.len(),
        lock(&slow_stats).opened,
        lock(&trickle_stats).opened,
        idle.len(),
        oversized_results.len(),
        old_tls.iter().filter(|(_, r)| r.is_some()).count(),
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
    if args.keep {
        let kept = work.keep();
        writeln!(out, "\nWork directory kept: {}", kept.display())?;
    }
    drop(server);
    Ok((out, checks.failed()))
}

fn start_saturation(ctx: &Arc<Ctx>, workers: usize) {
    ctx.stop_fixed.store(true, Ordering::Relaxed);
    for id in 0..workers {
        tokio::spawn(load_worker(ctx.clone(), id, Phase::Saturation, None));
    }
}
