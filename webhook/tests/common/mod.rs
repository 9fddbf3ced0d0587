//! Test support for the serving tests: a CA and leaf certificates made with rcgen, a real
//! TLS + HTTP/1.1 or HTTP/2 client (tokio-rustls + hyper), and a webhook started in-process
//! on loopback with real TLS.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use gmsa_webhook::config::Config;
use gmsa_webhook::Webhook;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;

/// A test CA that signs leaf certificates for `localhost` / `127.0.0.1`.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM), for clients to trust.
    pub pem: String,
}

/// A leaf certificate and its key (PEM), and its serial as rustls/x509 print it.
pub struct Leaf {
    pub cert: String,
    pub key: String,
    pub serial: u64,
}

impl Ca {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "gmsa test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA cert");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for localhost/127.0.0.1 with this serial number.
    pub fn leaf(&self, serial: u64) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("leaf params");
        params.serial_number = Some(serial.into());
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            serial,
        }
    }
}

/// Serial number of a DER certificate, as an integer.
pub fn serial_of(der: &CertificateDer<'_>) -> u64 {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("server cert parses");
    let bytes = cert.raw_serial();
    bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// TLS client configuration trusting `ca_pem`, offering `alpn`, limited to `versions`.
pub fn client_config(
    ca_pem: &str,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// HTTP protocol to speak (offered through ALPN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// One client connection (TLS + HTTP), reusable for several requests.
pub struct Conn {
    sender: Sender,
    /// The ALPN protocol the server chose.
    pub alpn: Option<Vec<u8>>,
    /// The serial of the certificate the server presented.
    pub serial: u64,
    /// The TLS version negotiated.
    pub version: Option<rustls::ProtocolVersion>,
}

impl Conn {
    pub async fn open(addr: SocketAddr, ca_pem: &str, proto: Proto) -> Self {
        let alpn: &[&[u8]] = match proto {
            Proto::H1 => &[b"http/1.1"],
            Proto::H2 => &[b"h2"],
        };
        let config = client_config(
            ca_pem,
            alpn,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
        );
        Self::open_with(addr, config, proto)
            .await
            .expect("TLS connection")
    }

    pub async fn open_with(
        addr: SocketAddr,
        config: Arc<ClientConfig>,
        proto: Proto,
    ) -> std::io::Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = ServerName::try_from("localhost").expect("server name");
        let tls = connector.connect(name, tcp).await?;
        let (_, session) = tls.get_ref();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let version = session.protocol_version();
        let serial = session
            .peer_certificates()
            .and_then(|c| c.first())
            .map(serial_of)
            .unwrap_or(0);
        let io = TokioIo::new(tls);
        let sender = match proto {
            Proto::H1 => {
                let (sender, conn) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(std::io::Error::other)?;
                tokio::spawn(conn);
                Sender::H1(sender)
            }
            Proto::H2 => {
                let (sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                        .await
                        .map_err(std::io::Error::other)?;
                tokio::spawn(conn);
                Sender::H2(sender)
            }
        };
        Ok(Self {
            sender,
            alpn,
            serial,
            version,
        })
    }

    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Reply, hyper::Error> {
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
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes().to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// POSTs `body` as `application/json` to `path` (failing the test if no reply comes).
    pub async fn post_json(&mut self, path: &str, body: impl Into<Bytes>) -> Reply {
        self.send(request("POST", path, Some("application/json"), body))
            .await
            .expect("reply")
    }
}

/// A request with `Host`, optional content type and body.
pub fn request(
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("https://localhost{path}"));
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(Full::new(body.into())).expect("request")
}

/// An AdmissionReview (v1) creating pod `pod` in `default` with this `spec`.
fn review(uid: &str, pod: &str, spec: serde_json::Value) -> String {
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "tester"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "namespace": "default"},
                "spec": spec
            }
        }
    })
    .to_string()
}

/// An AdmissionReview (v1) for a pod without GMSA settings.
pub fn review_plain_pod(uid: &str) -> String {
    review(
        uid,
        "plain",
        serde_json::json!({"containers": [{"name": "c", "image": "busybox"}]}),
    )
}

/// An AdmissionReview (v1) for a pod naming credspec `name` at pod level.
pub fn review_gmsa_pod(uid: &str, name: &str) -> String {
    review(
        uid,
        "gmsa",
        serde_json::json!({
            "securityContext": {"windowsOptions": {"gmsaCredentialSpecName": name}},
            "containers": [{"name": "c", "image": "busybox"}]
        }),
    )
}

/// Owned arguments for a command line.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Arguments every spawned test binary gets: loopback, free ports.
pub fn loopback_args() -> Vec<String> {
    args(&[
        "--bind-address",
        "127.0.0.1",
        "--https-port",
        "0",
        "--admin-port",
        "0",
    ])
}

/// The repository's `examples/credspecs` directory.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
        .join("credspecs")
}

/// Writes a leaf's files into `dir` as `tls.crt` / `tls.key`.
pub fn write_leaf(dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    std::fs::write(&cert, &leaf.cert).expect("write cert");
    std::fs::write(&key, &leaf.key).expect("write key");
    (cert, key)
}

/// Config for an in-process webhook on loopback (free ports) with these cert files and
/// extra flags.
pub fn config(cert: &Path, key: &Path, extra: &[&str]) -> Config {
    let mut args: Vec<String> = [
        "gmsa-webhook",
        "--bind-address",
        "127.0.0.1",
        "--https-port",
        "0",
        "--admin-port",
        "0",
        "--allow-all-use",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push("--credspecs-dir".into());
    args.push(examples_dir().display().to_string());
    args.push("--tls-crt".into());
    args.push(cert.display().to_string());
    args.push("--tls-key".into());
    args.push(key.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    Config::try_parse_from(args).expect("test config parses")
}

/// Starts a webhook in-process.
pub async fn start(config: &Config) -> Webhook {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Webhook::start(config).await.expect("webhook starts")
}

/// Plain HTTP GET on the admin port (HTTP/1.1, no TLS).
pub async fn admin_get(addr: SocketAddr, path: &str) -> Reply {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect admin");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("admin handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .uri(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = sender.send_request(req).await.expect("admin request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("admin body")
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// Polls `check` every 50 ms until it is true or `within` passes.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

/// A raw TLS stream (ALPN http/1.1) for hand-written HTTP/1.1.
pub async fn raw_tls(
    addr: SocketAddr,
    ca_pem: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let config = client_config(
        ca_pem,
        &[b"http/1.1"],
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    );
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake")
}

/// Reads an HTTP/1.1 response head (status line and headers) from `stream`; `None` if the
/// connection closed (or failed) first.
pub async fn read_head<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// Reads until the peer closes; true if it closed (EOF or reset) within `within`.
pub async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    within: Duration,
) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let result = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    result.is_ok()
}

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_gmsa-webhook");

/// A child process that is killed and reaped if a test fails before it exits.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The binary, started and serving.
pub struct Process {
    pub child: Reaped,
    pub https: SocketAddr,
    pub admin: SocketAddr,
    /// JSON log lines up to and including "gmsa-webhook serving".
    pub startup: Vec<serde_json::Value>,
    /// Later log lines.
    pub logs: std::sync::mpsc::Receiver<String>,
}

/// Starts the binary with JSON logs on stderr and waits for its "serving" line (which gives
/// the bound ports).
pub fn spawn_binary(envs: &[(&str, String)], args: &[String]) -> Process {
    use std::io::BufRead;
    let mut command = std::process::Command::new(BIN);
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = Reaped(
        command
            .args(args)
            .env("LOG_FORMAT", "json")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn gmsa-webhook"),
    );
    let stderr = child.0.stderr.take().expect("stderr");
    let (tx, logs) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            // Keep reading after the receiver is gone so the process never hits a closed pipe.
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut startup = Vec::new();
    loop {
        let line = logs
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or_else(|e| {
                panic!("gmsa-webhook did not log that it serves ({e}): {startup:?}")
            });
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("log line is not JSON: {line}"));
        let serving = value["message"] == "gmsa-webhook serving";
        startup.push(value);
        if serving {
            let addr = |field: &str| -> SocketAddr {
                startup
                    .last()
                    .and_then(|v| v[field].as_str())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("{field} address in the serving line"))
            };
            let (https, admin) = (addr("https"), addr("admin"));
            return Process {
                child,
                https,
                admin,
                startup,
                logs,
            };
        }
    }
}

/// Sends SIGTERM through the `kill` command.
pub fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
}

/// Waits up to `within` for the process to exit.
pub fn wait_exit(
    child: &mut std::process::Child,
    within: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}
