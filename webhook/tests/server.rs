//! The HTTPS and admin ports, served for real on loopback with real TLS (rcgen CA + leaf)
//! and driven by a real client (tokio-rustls + hyper, HTTP/1.1 and HTTP/2): routes and
//! status codes, body limit, timeouts against slow clients, idle connections, TLS versions,
//! metrics and readiness.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Ca, Conn, Proto};
use tokio::io::AsyncWriteExt;

struct Fixture {
    _dir: tempfile::TempDir,
    ca: Ca,
    webhook: gmsa_webhook::Webhook,
}

async fn fixture(extra: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new();
    let (cert, key) = common::write_leaf(dir.path(), &ca.leaf(7));
    let webhook = common::start(&common::config(&cert, &key, extra)).await;
    Fixture {
        _dir: dir,
        ca,
        webhook,
    }
}

impl Fixture {
    async fn conn(&self, proto: Proto) -> Conn {
        Conn::open(self.webhook.https_addr(), &self.ca.pem, proto).await
    }
}

#[tokio::test]
async fn routes_and_status_codes_over_http1_and_http2() {
    let f = fixture(&[]).await;
    for proto in [Proto::H1, Proto::H2] {
        let mut conn = f.conn(proto).await;
        let want_alpn: &[u8] = match proto {
            Proto::H1 => b"http/1.1",
            Proto::H2 => b"h2",
        };
        assert_eq!(conn.alpn.as_deref(), Some(want_alpn), "{proto:?}");
        assert_eq!(conn.serial, 7);
        let json = Some("application/json");
        let cases: Vec<(&str, String, Option<&str>, String, u16)> = vec![
            (
                "POST",
                "/validate?timeout=10s".into(),
                json,
                common::review_plain_pod("u1"),
                200,
            ),
            (
                "POST",
                "/mutate".into(),
                Some("application/json; charset=utf-8"),
                common::review_plain_pod("u2"),
                200,
            ),
            (
                "POST",
                "/validate".into(),
                Some("text/plain"),
                "{}".into(),
                415,
            ),
            ("POST", "/mutate".into(), None, "{}".into(), 415),
            (
                "POST",
                "/mutate".into(),
                Some("application/json; charset=latin1"),
                "{}".into(),
                415,
            ),
            ("GET", "/validate".into(), None, String::new(), 405),
            ("PUT", "/mutate".into(), json, "{}".into(), 405),
            ("GET", "/health".into(), None, String::new(), 204),
            ("GET", "/health?x=1".into(), None, String::new(), 204),
            ("GET", "/info".into(), None, String::new(), 200),
            ("GET", "/nope".into(), None, String::new(), 404),
            ("POST", "/validate/extra".into(), json, "{}".into(), 404),
            ("GET", "/metrics".into(), None, String::new(), 404),
        ];
        for (method, path, ct, body, want) in cases {
            let reply = conn
                .send(common::request(method, &path, ct, body))
                .await
                .expect("reply");
            assert_eq!(reply.status, want, "{proto:?} {method} {path} {ct:?}");
            if want == 415 || want == 405 || want == 404 {
                assert!(
                    reply.body.is_empty(),
                    "{proto:?} {method} {path}: empty body"
                );
            }
        }

        // A review is answered in kind, echoing the UID.
        let reply = conn
            .send(common::request(
                "POST",
                "/validate",
                json,
                common::review_plain_pod("uid-plain"),
            ))
            .await
            .expect("reply");
        let review = reply.json();
        assert_eq!(review["response"]["uid"], "uid-plain");
        assert_eq!(review["response"]["allowed"], true);
        assert_eq!(
            reply
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );

        // A GMSA pod naming an example spec gets the spec inlined by /mutate.
        let reply = conn
            .send(common::request(
                "POST",
                "/mutate",
                json,
                common::review_gmsa_pod("uid-gmsa", "webapp01"),
            ))
            .await
            .expect("reply");
        let review = reply.json();
        assert_eq!(review["response"]["allowed"], true, "{review}");
        assert_eq!(review["response"]["patchType"], "JSONPatch", "{review}");

        // Malformed JSON: 200 with a denial carrying code 400.
        let reply = conn
            .send(common::request("POST", "/validate", json, "{not json"))
            .await
            .expect("reply");
        assert_eq!(reply.status, 200);
        let review = reply.json();
        assert_eq!(review["response"]["allowed"], false);
        assert_eq!(review["response"]["status"]["code"], 400);

        // /info names the version.
        let reply = conn
            .send(common::request("GET", "/info", None, ""))
            .await
            .expect("reply");
        assert_eq!(reply.json()["version"], env!("CARGO_PKG_VERSION"));
    }
    f.webhook.shutdown().await;
}

#[tokio::test]
async fn body_over_the_limit_gets_413_without_being_read() {
    let f = fixture(&["--max-body-bytes", "1KiB"]).await;
    let addr = f.webhook.https_addr();

    // Declared length over the limit, body never sent: answered at once.
    let mut stream = common::raw_tls(addr, &f.ca.pem).await;
    stream
        .write_all(
            b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 100000000\r\n\r\n{\"a\":",
        )
        .await
        .expect("write");
    let started = Instant::now();
    let head = tokio::time::timeout(Duration::from_secs(2), common::read_head(&mut stream))
        .await
        .expect("answered without waiting for the body")
        .expect("a response");
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(started.elapsed() < Duration::from_secs(1));

    // Chunked (no length): read only up to the limit, then 413.
    let mut stream = common::raw_tls(addr, &f.ca.pem).await;
    stream
        .write_all(
            b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .expect("write");
    let chunk = format!("800\r\n{}\r\n", "x".repeat(0x800));
    stream.write_all(chunk.as_bytes()).await.expect("write");
    let head = tokio::time::timeout(Duration::from_secs(2), common::read_head(&mut stream))
        .await
        .expect("answered before the body ended")
        .expect("a response");
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");

    // HTTP/2 too; and a body at the limit is fine.
    let mut conn = f.conn(Proto::H2).await;
    let big = "x".repeat(2048);
    let reply = conn.post_json("/validate", big).await;
    assert_eq!(reply.status, 413);
    let reply = conn
        .post_json("/validate", common::review_plain_pod("small"))
        .await;
    assert_eq!(reply.status, 200);
    f.webhook.shutdown().await;
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_do_not_block_others() {
    let f = fixture(&[
        "--header-read-timeout",
        "500ms",
        "--request-timeout",
        "1500ms",
        "--api-timeout",
        "1s",
    ])
    .await;
    let addr = f.webhook.https_addr();

    // Slowloris: headers never finished.
    let mut partial = common::raw_tls(addr, &f.ca.pem).await;
    partial
        .write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("write");
    // No TLS handshake at all.
    let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // Body trickled byte by byte.
    let body = common::review_plain_pod("trickle");
    let mut trickle = common::raw_tls(addr, &f.ca.pem).await;
    trickle
        .write_all(
            format!(
                "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    let trickler = tokio::spawn(async move {
        for byte in body.as_bytes() {
            if trickle.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        trickle
    });

    // Meanwhile other clients are served promptly.
    let mut conn = f.conn(Proto::H2).await;
    for i in 0..5 {
        let started = Instant::now();
        let reply = conn
            .post_json("/validate", common::review_plain_pod(&format!("other-{i}")))
            .await;
        assert_eq!(reply.status, 200);
        // Blocked behind a slow client would mean waiting out a 500 ms timeout.
        assert!(started.elapsed() < Duration::from_millis(450));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert!(
        common::closed_within(&mut partial, Duration::from_secs(2)).await,
        "partial headers: connection closed after --header-read-timeout"
    );
    assert!(
        common::closed_within(&mut silent, Duration::from_secs(2)).await,
        "no handshake: connection closed after --header-read-timeout"
    );
    let mut trickle = trickler.await.expect("trickler");
    // The trickled body is cut at --request-timeout with 408 (the writer may or may not
    // have noticed yet).
    let head = tokio::time::timeout(Duration::from_secs(3), common::read_head(&mut trickle))
        .await
        .expect("answered");
    assert!(
        head.as_deref()
            .is_some_and(|h| h.starts_with("HTTP/1.1 408")),
        "{head:?}"
    );
    f.webhook.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let f = fixture(&["--idle-timeout", "400ms", "--header-read-timeout", "400ms"]).await;
    for proto in [Proto::H1, Proto::H2] {
        let mut conn = f.conn(proto).await;
        let reply = conn
            .send(common::request("GET", "/health", None, ""))
            .await
            .expect("first request");
        assert_eq!(reply.status, 204);
        // Busy connections stay open past the idle timeout.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            conn.send(common::request("GET", "/health", None, ""))
                .await
                .expect("connection in use stays open");
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let after = conn.send(common::request("GET", "/health", None, "")).await;
        assert!(after.is_err(), "{proto:?}: idle connection still open");
    }

    // An HTTP/2 client that never answers (no SETTINGS ack, no PING answer) cannot hold
    // the connection open through the graceful close either.
    let config = common::client_config(
        &f.ca.pem,
        &[b"h2"],
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    );
    let tcp = tokio::net::TcpStream::connect(f.webhook.https_addr())
        .await
        .expect("connect");
    let mut stuck = tokio_rustls::TlsConnector::from(config)
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").expect("name"),
            tcp,
        )
        .await
        .expect("handshake");
    stuck
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("preface");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        common::closed_within(&mut stuck, Duration::from_secs(2)).await,
        "an unresponsive HTTP/2 client kept its idle connection"
    );
    f.webhook.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let f = fixture(&["--max-connections", "2"]).await;
    let addr = f.webhook.https_addr();
    let first = f.conn(Proto::H1).await;
    let mut second = f.conn(Proto::H2).await;
    // The third TCP connection sits in the backlog: no handshake until a slot frees.
    let third = tokio::spawn({
        let ca = f.ca.pem.clone();
        async move { Conn::open(addr, &ca, Proto::H2).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served beyond the limit"
    );
    // Open connections keep working meanwhile.
    let reply = second
        .send(common::request("GET", "/health", None, ""))
        .await
        .expect("reply");
    assert_eq!(reply.status, 204);
    drop(first);
    let mut third = tokio::time::timeout(Duration::from_secs(3), third)
        .await
        .expect("served once a slot is free")
        .expect("task");
    let reply = third
        .send(common::request("GET", "/health", None, ""))
        .await
        .expect("reply");
    assert_eq!(reply.status, 204);
    f.webhook.shutdown().await;
}

#[tokio::test]
async fn tls_versions_12_and_13_only() {
    let f = fixture(&[]).await;
    let addr = f.webhook.https_addr();
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = common::client_config(&f.ca.pem, &[b"h2"], &[version]);
        let conn = Conn::open_with(addr, config, Proto::H2)
            .await
            .expect("handshake");
        assert_eq!(conn.version, Some(version.version));
    }
    // rustls has no TLS 1.0/1.1 client; openssl does, when installed.
    let port = addr.port().to_string();
    let openssl = |flag: &'static str| {
        let target = format!("127.0.0.1:{port}");
        async move {
            tokio::process::Command::new("openssl")
                .args([
                    "s_client",
                    "-connect",
                    &target,
                    flag,
                    "-cipher",
                    "DEFAULT@SECLEVEL=0",
                ])
                .stdin(std::process::Stdio::null())
                .output()
                .await
        }
    };
    match openssl("-tls1_2").await {
        Ok(out) => {
            assert!(
                out.status.success(),
                "openssl TLS 1.2 handshake should work: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            for old in ["-tls1", "-tls1_1"] {
                let out = openssl(old).await.expect("openssl runs");
                assert!(!out.status.success(), "{old} accepted");
                let text = String::from_utf8_lossy(&out.stdout).to_string()
                    + &String::from_utf8_lossy(&out.stderr);
                // rustls answers an unsupported version with a handshake_failure alert; an openssl
                // built without the old versions refuses locally.
                assert!(
                    text.contains("Cipher is (NONE)")
                        && (text.contains("alert") || text.contains("no protocols available")),
                    "{old}: {text}"
                );
            }
        }
        Err(e) => eprintln!("openssl not installed ({e}): TLS 1.0/1.1 refusal not exercised"),
    }
    f.webhook.shutdown().await;
}

#[tokio::test]
async fn metrics_ready_and_live_on_the_admin_port() {
    let f = fixture(&[]).await;
    let mut conn = f.conn(Proto::H2).await;
    for (path, body) in [
        ("/validate", common::review_plain_pod("m1")),
        ("/mutate", common::review_gmsa_pod("m2", "webapp01")),
        ("/mutate", common::review_gmsa_pod("m3", "no-such-spec")),
    ] {
        let reply = conn.post_json(path, body).await;
        assert_eq!(reply.status, 200);
    }
    conn.send(common::request(
        "POST",
        "/validate",
        Some("text/plain"),
        "x",
    ))
    .await
    .expect("reply");
    let admin = f.webhook.admin_addr();
    let metrics = common::admin_get(admin, "/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.body).expect("utf-8");
    for needle in [
        r#"gmsa_webhook_requests_total{route="validate",outcome="no_gmsa",code="200"} 1"#,
        r#"gmsa_webhook_requests_total{route="mutate",outcome="patched",code="200"} 1"#,
        r#"gmsa_webhook_requests_total{route="mutate",outcome="denied",code="404"} 1"#,
        r#"gmsa_webhook_requests_total{route="validate",outcome="unsupported_media_type",code="415"} 1"#,
        r#"gmsa_webhook_request_duration_seconds_count{route="mutate"} 2"#,
        // webapp01 is domain-joined; the missing spec has no plugin to count.
        r#"gmsa_webhook_admissions_by_plugin_total{route="mutate",plugin="none"} 1"#,
        "gmsa_webhook_credspecs ",
        "gmsa_webhook_connections 1",
        "gmsa_webhook_requests_in_flight 0",
        "gmsa_webhook_certificate_not_after_seconds ",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert_eq!(common::admin_get(admin, "/ready").await.status, 204);
    assert_eq!(common::admin_get(admin, "/live").await.status, 204);
    assert_eq!(common::admin_get(admin, "/nope").await.status, 404);
    f.webhook.shutdown().await;
}

/// A spec store that has not synced.
struct NotSynced;

#[async_trait::async_trait]
impl gmsa_webhook::lookup::SpecStore for NotSynced {
    async fn get(
        &self,
        _name: &str,
        _freshness: gmsa_webhook::lookup::Freshness,
    ) -> Result<gmsa_webhook::lookup::SpecLookup, gmsa_webhook::lookup::LookupError> {
        Err(gmsa_webhook::lookup::LookupError::Unavailable(
            "not synced".into(),
        ))
    }
    fn ready(&self) -> Result<(), String> {
        Err("initial list of gmsacredentialspecs not done".into())
    }
    fn len(&self) -> usize {
        0
    }
}

#[tokio::test]
async fn health_says_why_not_ready() {
    use gmsa_webhook::server::{self, Limits, Readiness};
    use tower::ServiceExt;
    let admitter = gmsa_webhook::admission_review::Admitter::new(
        Arc::new(NotSynced),
        Arc::new(gmsa_webhook::standalone::AllowAll),
        Default::default(),
    );
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = gmsa_webhook::metrics::Metrics::register(&mut registry);
    let readiness = Readiness::new(admitter.clone());
    let limits = Limits {
        max_body_bytes: 1024,
        request_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(1),
        max_connections: 8,
    };
    let app = server::webhook_router(admitter, readiness.clone(), metrics.clone(), limits);
    let admin = server::admin_router(Arc::new(registry), readiness.clone(), metrics);
    for router in [app, admin] {
        for path in ["/health", "/ready"] {
            let response = router
                .clone()
                .oneshot(
                    axum::http::Request::get(path)
                        .body(axum::body::Body::empty())
                        .expect("request"),
                )
                .await
                .expect("infallible");
            if response.status() == 404 {
                continue; // /ready is on the admin port, /health on the HTTPS port
            }
            assert_eq!(response.status(), 503, "{path}");
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .expect("body")
                .to_bytes();
            let text = String::from_utf8_lossy(&body);
            assert!(text.contains("initial list"), "{path}: {text}");
        }
    }
}
