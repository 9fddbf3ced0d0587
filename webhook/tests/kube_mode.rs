//! The real binary in Kubernetes mode (no --credspecs-dir), pointed by KUBECONFIG at
//! testkit's fake API server: not ready until the credspec watch synced, then specs come from
//! the watch (including one created after start), authorization from
//! LocalSubjectAccessReviews, and the Kubernetes backend's metrics are served on the admin
//! port next to the serving metrics.

mod common;

use std::time::Duration;

use common::{Ca, Conn, Proto};
use gmsa_testkit::crd_api::{captured_credspec, AuthzAnswer, CrdApi};
use gmsa_testkit::FakeApiServer;

async fn send(conn: &mut Conn, path: &str, body: String) -> serde_json::Value {
    conn.post_json(path, body).await.json()
}

fn kubeconfig(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\n\
             contexts:\n- name: fake\n  context: {{cluster: fake, user: fake}}\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n"
        ),
    )
    .expect("write kubeconfig");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_mode_serves_from_the_watch_and_access_reviews() {
    let api = CrdApi::from_capture();
    api.set_authz(
        "default",
        "default",
        "webapp01",
        AuthzAnswer::allowed("RBAC: allowed by RoleBinding"),
    );
    let server = FakeApiServer::start(api.router()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new();
    let (cert, key) = common::write_leaf(dir.path(), &ca.leaf(5));
    let envs = [
        (
            "KUBECONFIG",
            kubeconfig(dir.path(), &server.url()).display().to_string(),
        ),
        ("TLS_CRT", cert.display().to_string()),
        ("TLS_KEY", key.display().to_string()),
    ];
    let args = common::loopback_args();
    let mut process = common::spawn_binary(&envs, &args);
    assert!(
        !process.startup.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("standalone"))),
        "Kubernetes mode must not log standalone mode"
    );

    let mut ready = false;
    for _ in 0..100 {
        if common::admin_get(process.admin, "/ready").await.status == 204 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "ready once the credspec watch synced");

    // A spec created after start arrives through the watch.
    api.apply("webapp02", Some(captured_credspec()));

    let mut conn = Conn::open(process.https, &ca.pem, Proto::H2).await;
    let mutated = send(
        &mut conn,
        "/mutate",
        common::review_gmsa_pod("k1", "webapp01"),
    )
    .await;
    assert_eq!(mutated["response"]["allowed"], true, "{mutated}");
    assert_eq!(mutated["response"]["patchType"], "JSONPatch", "{mutated}");
    let allowed = send(
        &mut conn,
        "/validate",
        common::review_gmsa_pod("k2", "webapp01"),
    )
    .await;
    assert_eq!(allowed["response"]["allowed"], true, "{allowed}");
    let mut denied = serde_json::Value::Null;
    for _ in 0..50 {
        denied = send(
            &mut conn,
            "/validate",
            common::review_gmsa_pod("k3", "webapp02"),
        )
        .await;
        if denied["response"]["status"]["code"] == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(denied["response"]["allowed"], false, "{denied}");
    assert_eq!(denied["response"]["status"]["code"], 403, "{denied}");

    let metrics = common::admin_get(process.admin, "/metrics").await;
    let text = String::from_utf8(metrics.body).expect("utf-8");
    for needle in [
        "gmsa_webhook_credspecs 2",
        "gmsa_webhook_authz_calls_total",
        "gmsa_webhook_spec_watch_events_total",
        r#"gmsa_webhook_requests_total{route="validate",outcome="denied",code="403"} 1"#,
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(api.lsar_requests().len() >= 2, "access reviews were asked");

    common::sigterm(&process.child.0);
    let status = common::wait_exit(&mut process.child.0, Duration::from_secs(5)).expect("exits");
    assert!(status.success(), "{status:?}");
}
