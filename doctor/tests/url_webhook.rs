//! Doctor's path for a webhook registered by URL, against the real `gmsa-webhook` serving TLS
//! on loopback (standalone mode) and testkit's fake API server holding configurations that
//! call it: the TLS handshake's chain is checked against caBundle and the URL's IP, `/info`
//! and `/health` are read over that TLS; a foreign caBundle, an expired certificate and a
//! stopped webhook each fail exactly their checks.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser as _;
use gmsa_doctor::{diagnose, gather, Options, Report, Status, Target};
use gmsa_testkit::setup::Setup;
use gmsa_testkit::FakeApiServer;

/// The real webhook on 127.0.0.1 serving `(cert, key)`.
async fn webhook(dir: &Path, (cert, key): &(String, String)) -> gmsa_webhook::Webhook {
    std::fs::write(dir.join("tls.crt"), cert).expect("write cert");
    std::fs::write(dir.join("tls.key"), key).expect("write key");
    let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/credspecs");
    let p = |name: &str| dir.join(name).display().to_string();
    let config = gmsa_webhook::config::Config::try_parse_from([
        "gmsa-webhook".to_string(),
        "--credspecs-dir".into(),
        specs.display().to_string(),
        "--allow-all-use".into(),
        "--tls-crt".into(),
        p("tls.crt"),
        "--tls-key".into(),
        p("tls.key"),
        "--bind-address".into(),
        "127.0.0.1".into(),
        "--https-port".into(),
        "0".into(),
        "--admin-port".into(),
        "0".into(),
    ])
    .expect("webhook flags");
    gmsa_webhook::Webhook::start(&config)
        .await
        .expect("the webhook starts")
}

/// Points every webhook entry of `setup` at `url` (no Service).
fn register_by_url(setup: &mut Setup, base: &str) {
    for (configs, path) in [
        (&mut setup.mutating, "/mutate"),
        (&mut setup.validating, "/validate"),
    ] {
        for c in configs.iter_mut() {
            for w in c["webhooks"].as_array_mut().into_iter().flatten() {
                w["clientConfig"]["url"] = format!("{base}{path}").into();
                if let Some(cc) = w["clientConfig"].as_object_mut() {
                    cc.remove("service");
                }
            }
        }
    }
}

async fn doctor(setup: Setup) -> Report {
    let server = FakeApiServer::start(Setup::router(Arc::new(Mutex::new(setup)))).await;
    let mut config = kube::Config::new(server.url().parse().expect("URL"));
    config.default_retry = false;
    let client = kube::Client::try_from(config).expect("client");
    let opts = Options {
        target: Target::new("apps", "webapp", Some("webapp01")),
        probe_pod: None,
        ldap: None,
        timeout: Duration::from_secs(5),
    };
    diagnose(&gather(client, &opts).await)
}

fn status_of(r: &Report, id: &str) -> Status {
    r.get(id)
        .unwrap_or_else(|| panic!("no {id}: {}", r.to_text()))
        .status
}

/// The certificate-related checks' statuses, for comparing scenarios.
fn url_checks(r: &Report) -> [(&'static str, Status); 4] {
    [
        "webhooks.service",
        "certs.ca-bundle",
        "certs.serving",
        "webhook.info",
    ]
    .map(|id| (id, status_of(r, id)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_webhook_is_checked_through_its_own_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut setup = Setup::healthy(gmsa_crd::crd_value());
    let hook = webhook(dir.path(), &setup.pki.leaf_for(&["127.0.0.1"])).await;
    let base = format!("https://127.0.0.1:{}", hook.https_addr().port());
    register_by_url(&mut setup, &base);

    // Healthy: the chain verifies against caBundle and names the URL's IP; /info and /health
    // answer over the same TLS.
    let ca_pem = setup.pki.ca_pem.clone();
    let other_ca = setup.pki.other_ca_pem.clone();
    let now = setup.pki.now;
    let expired = setup
        .pki
        .leaf(&["127.0.0.1"], now - 400 * 86_400, now - 86_400);
    let wrong_ip = setup.pki.leaf_for(&["127.0.0.2"]);
    let r = doctor(setup).await;
    assert_eq!(
        url_checks(&r),
        [
            ("webhooks.service", Status::Ok),
            ("certs.ca-bundle", Status::Ok),
            ("certs.serving", Status::Ok),
            ("webhook.info", Status::Ok),
        ],
        "{}",
        r.to_text()
    );
    assert_eq!(
        status_of(&r, "webhook.deployment"),
        Status::Skip,
        "no Deployment behind a URL"
    );
    let info = r.get("webhook.info").expect("info");
    assert!(
        info.message
            .contains(&format!("version {}", env!("CARGO_PKG_VERSION"))),
        "{info:?}"
    );
    assert!(
        info.message.contains(&format!("at {base}/mutate")),
        "{info:?}"
    );

    // caBundle from another CA: the handshake's chain no longer verifies.
    let mut foreign = Setup::healthy(gmsa_crd::crd_value());
    register_by_url(&mut foreign, &base);
    foreign.set_ca_bundle(&other_ca);
    let r = doctor(foreign).await;
    assert_eq!(
        status_of(&r, "certs.serving"),
        Status::Fail,
        "{}",
        r.to_text()
    );
    assert!(r
        .get("certs.serving")
        .is_some_and(|c| c.message.contains("not signed by a CA in caBundle")));
    hook.shutdown().await;

    // The webhook serves an expired certificate, or one for another address.
    for (name, pair, text) in [
        ("expired", &expired, "expired"),
        ("wrong IP", &wrong_ip, "does not cover 127.0.0.1"),
    ] {
        let hook = webhook(dir.path(), pair).await;
        let base = format!("https://127.0.0.1:{}", hook.https_addr().port());
        let mut s = Setup::healthy(gmsa_crd::crd_value());
        register_by_url(&mut s, &base);
        s.set_ca_bundle(&ca_pem);
        let r = doctor(s).await;
        let c = r.get("certs.serving").expect("ran");
        assert_eq!(c.status, Status::Fail, "{name}: {}", r.to_text());
        assert!(c.message.contains(text), "{name}: {c:?}");
        hook.shutdown().await;
    }

    // Stopped: nothing answers at the URL.
    let mut stopped = Setup::healthy(gmsa_crd::crd_value());
    register_by_url(&mut stopped, &base);
    let r = doctor(stopped).await;
    assert_eq!(
        url_checks(&r),
        [
            ("webhooks.service", Status::Fail),
            ("certs.ca-bundle", Status::Ok),
            ("certs.serving", Status::Skip),
            ("webhook.info", Status::Fail),
        ],
        "{}",
        r.to_text()
    );
}
