//! Certificate hot reload through a Kubernetes Secret volume's `..data` symlink swap, under
//! load: ten rotations with zero failed reviews, new handshakes see the new serial, an open
//! connection keeps working, and broken new pairs (mismatched key, garbage, empty files)
//! are refused while the old pair keeps serving.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Ca, Conn, Proto};

/// A Secret volume as the kubelet writes it: `NAME -> ..data/NAME`, `..data -> ..<stamp>`.
struct SecretVolume {
    dir: tempfile::TempDir,
}

impl SecretVolume {
    fn new(cert: &str, key: &str) -> Self {
        let mut volume = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        volume.swap(cert, key);
        volume
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a new timestamped directory and atomically repoints `..data` at it.
    fn swap(&mut self, cert: &str, key: &str) {
        gmsa_certs::write::swap_dir(
            self.dir.path(),
            &[
                ("tls.crt", cert.as_bytes(), 0o644),
                ("tls.key", key.as_bytes(), 0o600),
            ],
        )
        .expect("swap ..data");
    }
}

async fn fresh_serial(addr: std::net::SocketAddr, ca: &str) -> u64 {
    Conn::open(addr, ca, Proto::H1).await.serial
}

async fn metric(admin: std::net::SocketAddr, needle: &str) -> Option<u64> {
    let text = String::from_utf8(common::admin_get(admin, "/metrics").await.body).ok()?;
    text.lines()
        .find(|l| l.starts_with(needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_under_load_fail_no_review_and_broken_pairs_are_refused() {
    let ca = Ca::new();
    let first = ca.leaf(1);
    let mut volume = SecretVolume::new(&first.cert, &first.key);
    let config = common::config(
        &volume.path("tls.crt"),
        &volume.path("tls.key"),
        &["--cert-reload", "--reload-interval", "100ms"],
    );
    let webhook = common::start(&config).await;
    let addr = webhook.https_addr();
    let admin = webhook.admin_addr();
    assert_eq!(fresh_serial(addr, &ca.pem).await, 1);

    // Load: workers opening a new connection per review (new handshakes), plus one
    // long-lived HTTP/2 connection that must survive every rotation.
    let stop = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for worker in 0..3 {
        let (stop, served, failures, ca) = (
            stop.clone(),
            served.clone(),
            failures.clone(),
            ca.pem.clone(),
        );
        workers.push(tokio::spawn(async move {
            let proto = if worker % 2 == 0 {
                Proto::H1
            } else {
                Proto::H2
            };
            let mut i = 0;
            while stop.load(Ordering::Relaxed) == 0 {
                i += 1;
                let mut conn = match Conn::open_with(
                    addr,
                    common::client_config(
                        &ca,
                        &[match proto {
                            Proto::H1 => b"http/1.1".as_slice(),
                            Proto::H2 => b"h2".as_slice(),
                        }],
                        &[&rustls::version::TLS13, &rustls::version::TLS12],
                    ),
                    proto,
                )
                .await
                {
                    Ok(conn) => conn,
                    Err(e) => {
                        failures.lock().expect("lock").push(format!("connect: {e}"));
                        continue;
                    }
                };
                let body = common::review_gmsa_pod(&format!("w{worker}-{i}"), "webapp01");
                match conn
                    .send(common::request(
                        "POST",
                        "/mutate",
                        Some("application/json"),
                        body,
                    ))
                    .await
                {
                    Ok(r) if r.status == 200 && r.json()["response"]["allowed"] == true => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.lock().expect("lock").push(format!(
                        "status {} {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    )),
                    Err(e) => failures.lock().expect("lock").push(format!("request: {e}")),
                }
            }
        }));
    }
    let long_lived = {
        let (stop, served, failures) = (stop.clone(), served.clone(), failures.clone());
        let mut conn = Conn::open(addr, &ca.pem, Proto::H2).await;
        tokio::spawn(async move {
            let mut i = 0;
            while stop.load(Ordering::Relaxed) == 0 {
                i += 1;
                let body = common::review_plain_pod(&format!("long-{i}"));
                match conn
                    .send(common::request(
                        "POST",
                        "/validate",
                        Some("application/json"),
                        body,
                    ))
                    .await
                {
                    Ok(r) if r.status == 200 => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures
                        .lock()
                        .expect("lock")
                        .push(format!("long-lived status {}", r.status)),
                    Err(e) => failures
                        .lock()
                        .expect("lock")
                        .push(format!("long-lived connection: {e}")),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            conn.serial
        })
    };

    // Ten rotations; each is visible to new handshakes within a few reload intervals.
    for serial in 2..=11u64 {
        let leaf = ca.leaf(serial);
        volume.swap(&leaf.cert, &leaf.key);
        let mut seen = 0;
        for _ in 0..60 {
            seen = fresh_serial(addr, &ca.pem).await;
            if seen == serial {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen, serial, "rotation to serial {serial} not served");
    }
    assert_eq!(
        metric(
            admin,
            r#"gmsa_webhook_certificate_reloads_total{result="success"}"#
        )
        .await,
        Some(10)
    );

    // Broken new pairs: refused, serial 11 keeps serving.
    let (a, b) = (ca.leaf(12), ca.leaf(13));
    let broken: [(&str, &str, &str); 3] = [
        ("mismatched key", &a.cert, &b.key),
        ("garbage", "garbage", "garbage"),
        ("empty", "", ""),
    ];
    for (i, (what, cert, key)) in broken.iter().enumerate() {
        volume.swap(cert, key);
        let mut count = None;
        for _ in 0..60 {
            count = metric(
                admin,
                r#"gmsa_webhook_certificate_reloads_total{result="refused"}"#,
            )
            .await;
            if count == Some(i as u64 + 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(count, Some(i as u64 + 1), "{what}: refusal counted");
        assert_eq!(
            fresh_serial(addr, &ca.pem).await,
            11,
            "{what}: old pair kept"
        );
    }

    // A good pair after broken ones is taken.
    let good = ca.leaf(14);
    volume.swap(&good.cert, &good.key);
    let mut seen = 0;
    for _ in 0..60 {
        seen = fresh_serial(addr, &ca.pem).await;
        if seen == 14 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, 14);

    stop.store(1, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let long_serial = long_lived.await.expect("long-lived");
    assert_eq!(
        long_serial, 1,
        "the long-lived connection kept its handshake"
    );
    let failures = failures.lock().expect("lock").clone();
    let served = served.load(Ordering::Relaxed);
    eprintln!(
        "reviews served during 10 rotations + 3 refused pairs: {served}, failures: {}",
        failures.len()
    );
    assert!(failures.is_empty(), "failed reviews: {failures:?}");
    assert!(served > 50, "too little load to mean anything: {served}");
    webhook.shutdown().await;
}

#[test]
fn startup_refuses_broken_files_naming_them() {
    let ca = Ca::new();
    let (a, b) = (ca.leaf(1), ca.leaf(2));
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: [(&str, &str, &str, &str); 4] = [
        ("empty cert", "", &a.key, "tls.crt is empty"),
        ("garbage key", &a.cert, "nope", "tls.key is not usable"),
        ("mismatch", &a.cert, &b.key, "does not match"),
        ("key as cert", &a.key, &a.key, "tls.crt is not usable"),
    ];
    for (what, cert, key, needle) in cases {
        let (cert_path, key_path) = write(dir.path(), cert, key);
        let err = gmsa_webhook::tls::CertReloader::start(
            gmsa_webhook::tls::CertPaths {
                cert: cert_path,
                key: key_path,
            },
            Default::default(),
        )
        .err()
        .unwrap_or_else(|| panic!("{what} accepted"));
        assert!(err.to_string().contains(needle), "{what}: {err}");
    }
}

fn write(dir: &Path, cert: &str, key: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&c, cert).expect("write");
    std::fs::write(&k, key).expect("write");
    (c, k)
}

#[test]
fn a_refused_pair_is_logged_naming_the_file() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = common::write_leaf(dir.path(), &ca.leaf(1));
    let mut args = common::loopback_args();
    args.extend(common::args(&[
        "--cert-reload",
        "--reload-interval",
        "100ms",
        "--allow-all-use",
        "--credspecs-dir",
    ]));
    args.push(common::examples_dir().display().to_string());
    let envs = [
        ("TLS_CRT", cert.display().to_string()),
        ("TLS_KEY", key.display().to_string()),
    ];
    let mut process = common::spawn_binary(&envs, &args);
    std::fs::write(&cert, "not a certificate").expect("write garbage");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut refused = None;
    while refused.is_none() && std::time::Instant::now() < deadline {
        if let Ok(line) = process.logs.recv_timeout(Duration::from_millis(200)) {
            let value: serde_json::Value = serde_json::from_str(&line).expect("JSON log");
            if value["level"] == "ERROR" {
                refused = Some(value);
            }
        }
    }
    let refused = refused.expect("the refusal is logged");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("still serving the previous pair")),
        "{refused}"
    );
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(error.contains(&cert.display().to_string()), "{refused}");
    common::sigterm(&process.child.0);
    let status = common::wait_exit(&mut process.child.0, Duration::from_secs(5)).expect("exits");
    assert!(status.success());
}
