//! The real binary: started the way the reference chart starts it (env `TLS_CRT`, `TLS_KEY`,
//! `HTTPS_PORT`, `LOG_LEVEL`, `QPS`, `BURST`, `RANDOM_HOSTNAME` and `--cert-reload`), then
//! SIGTERM with reviews in flight over HTTP/1.1 and HTTP/2: every one completes, new
//! connections are refused, and the process exits 0 well within the grace period. Also:
//! startup failures name the file, `--version`.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Ca;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;

use common::{sigterm, wait_exit, Process, BIN};

/// Starts the binary the way the reference chart does: env vars and `--cert-reload`.
fn spawn(cert: &std::path::Path, key: &std::path::Path) -> Process {
    let envs = [
        ("TLS_CRT", cert.display().to_string()),
        ("TLS_KEY", key.display().to_string()),
        ("HTTPS_PORT", "0".to_string()),
        ("LOG_LEVEL", "debug".to_string()),
        ("QPS", "5".to_string()),
        ("BURST", "10".to_string()),
        ("RANDOM_HOSTNAME", "true".to_string()),
    ];
    // HTTPS_PORT comes from the environment here.
    let mut args = common::args(&[
        "--cert-reload",
        "--bind-address",
        "127.0.0.1",
        "--admin-port",
        "0",
        "--shutdown-grace",
        "10s",
        "--allow-all-use",
        "--credspecs-dir",
    ]);
    args.push(common::examples_dir().display().to_string());
    let process = common::spawn_binary(&envs, &args);
    let serving = process.startup.last().expect("serving line");
    assert_eq!(serving["cert_reload"], true, "--cert-reload taken");
    assert_eq!(serving["random_hostname"], true, "RANDOM_HOSTNAME taken");
    process
}

type Sender = futures::channel::mpsc::UnboundedSender<Result<Frame<Bytes>, std::io::Error>>;

/// An HTTP/2 request whose body is still being sent: returns the body sender and the
/// response future.
async fn h2_in_flight(
    addr: SocketAddr,
    ca: &str,
    body_len: usize,
) -> (
    Sender,
    tokio::task::JoinHandle<Result<(u16, Vec<u8>), String>>,
) {
    let config = common::client_config(
        ca,
        &[b"h2"],
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    );
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let request = hyper::Request::post("https://localhost/validate")
        .header("content-type", "application/json")
        .header("content-length", body_len)
        .body(StreamBody::new(rx))
        .expect("request");
    let response = tokio::spawn(async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes()
            .to_vec();
        Ok((status, body))
    });
    (tx, response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_reviews_in_flight_loses_none() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = common::write_leaf(dir.path(), &ca.leaf(3));
    let mut process = spawn(&cert, &key);
    let addr = process.https;

    // Reviews whose bodies are half sent when SIGTERM arrives.
    let mut h1 = Vec::new();
    for i in 0..10 {
        let body = common::review_plain_pod(&format!("h1-{i}"));
        let mut stream = common::raw_tls(addr, &ca.pem).await;
        let head = format!(
            "POST /validate?timeout=10s HTTP/1.1\r\nHost: localhost\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("write head");
        let (first, rest) = body.split_at(body.len() / 2);
        stream
            .write_all(first.as_bytes())
            .await
            .expect("write half");
        h1.push((stream, rest.to_string()));
    }
    let mut h2 = Vec::new();
    for i in 0..10 {
        // webapp02 carries HostAccountConfig.PluginInput: it must never reach the logs.
        let spec = if i % 2 == 0 { "webapp01" } else { "webapp02" };
        let body = common::review_gmsa_pod(&format!("h2-{i}"), spec);
        let (tx, response) = h2_in_flight(addr, &ca.pem, body.len()).await;
        let (first, rest) = body.split_at(body.len() / 2);
        tx.unbounded_send(Ok(Frame::data(Bytes::from(first.to_string()))))
            .expect("send half");
        h2.push((tx, rest.to_string(), response));
    }
    // Let the server start handling them.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let signalled = Instant::now();
    sigterm(&process.child.0);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // No new connections once the listener is closed.
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener still accepting after SIGTERM"
    );

    // Finish every in-flight request: all are answered.
    let mut answered = 0;
    for (mut stream, rest) in h1 {
        stream.write_all(rest.as_bytes()).await.expect("write rest");
        let head = tokio::time::timeout(Duration::from_secs(5), common::read_head(&mut stream))
            .await
            .expect("h1 answered in time")
            .expect("h1 response");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        answered += 1;
    }
    for (tx, rest, response) in h2 {
        tx.unbounded_send(Ok(Frame::data(Bytes::from(rest))))
            .expect("send rest");
        drop(tx);
        let (status, body) = tokio::time::timeout(Duration::from_secs(5), response)
            .await
            .expect("h2 answered in time")
            .expect("task")
            .expect("h2 response");
        assert_eq!(status, 200);
        let review: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(review["response"]["allowed"], true, "{review}");
        answered += 1;
    }
    assert_eq!(answered, 20);

    let status = wait_exit(&mut process.child.0, Duration::from_secs(5))
        .expect("exited after the in-flight requests finished");
    assert!(status.success(), "exit status {status:?}");
    let took = signalled.elapsed();
    eprintln!("SIGTERM to exit with 20 reviews in flight: {took:?}");
    assert!(took < Duration::from_secs(8), "took {took:?}");

    // Request logs carry no bodies; the shutdown is logged.
    let logs: Vec<String> = process.logs.try_iter().collect();
    assert!(
        logs.iter().any(|l| l.contains("shutting down")),
        "shutdown logged"
    );
    assert!(
        !logs.iter().any(|l| l.contains("busybox")),
        "a request body reached the logs"
    );
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("gmsa-plugin-input") || l.contains("PluginInput")),
        "PluginInput reached the logs"
    );
    assert!(
        logs.iter().any(|l| l.contains(r#""route":"validate""#)),
        "debug request lines were captured (else the checks above prove nothing)"
    );
}

#[test]
fn startup_with_a_missing_certificate_fails_naming_the_file() {
    let output = Command::new(BIN)
        .env("TLS_CRT", "/nonexistent/tls.crt")
        .env("TLS_KEY", "/nonexistent/tls.key")
        .args([
            "--https-port",
            "0",
            "--admin-port",
            "0",
            "--allow-all-use",
            "--credspecs-dir",
        ])
        .arg(common::examples_dir())
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read the certificate file /nonexistent/tls.crt"),
        "{stderr}"
    );
}

#[test]
fn invalid_values_stop_startup() {
    for (env, value, needle) in [
        ("QPS", "fast", "--qps"),
        ("BURST", "-1", "--burst"),
        ("RANDOM_HOSTNAME", "yes please", "--random-hostname"),
        ("HTTPS_PORT", "https", "--https-port"),
    ] {
        let output = Command::new(BIN)
            .env(env, value)
            .arg("--self-signed")
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2), "{env}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{env}={value}: {stderr}");
    }
}

#[test]
fn version_flag() {
    let output = Command::new(BIN).arg("--version").output().expect("run");
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("gmsa-webhook {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_standalone_serves() {
    let mut args = common::loopback_args();
    args.extend(common::args(&[
        "--self-signed",
        "--allow-all-use",
        "--credspecs-dir",
    ]));
    args.push(common::examples_dir().display().to_string());
    let mut process = common::spawn_binary(&[], &args);
    let warned = |needle: &str| {
        process.startup.iter().any(|l| {
            l["level"] == "WARN" && l["message"].as_str().is_some_and(|m| m.contains(needle))
        })
    };
    assert!(warned("standalone mode: not for production"));
    assert!(warned("self-signed"));
    let pem = process
        .startup
        .iter()
        .find_map(|l| l["certificate_pem"].as_str())
        .expect("certificate logged")
        .to_string();
    let mut conn = common::Conn::open(process.https, &pem, common::Proto::H2).await;
    let reply = conn
        .send(common::request("GET", "/health", None, ""))
        .await
        .expect("reply");
    assert_eq!(reply.status, 204);
    sigterm(&process.child.0);
    let status = wait_exit(&mut process.child.0, Duration::from_secs(5)).expect("exits");
    assert!(status.success());
}
