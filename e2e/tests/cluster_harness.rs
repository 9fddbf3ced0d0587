//! The real-cluster harness (`gmsa_e2e::cluster`) itself, against testkit's fake API server:
//! connecting through `GMSA_E2E_KUBECONFIG`, probing for the CRD and the webhook, a namespace
//! per test that is deleted afterwards (also when the body panics), and `accepts`/`rejects`
//! reading a dry-run pod create.
//!
//! One test in its own file (its own process): it sets `GMSA_E2E_KUBECONFIG`.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use gmsa_e2e::cluster::{windows_pod, Cluster};
use gmsa_testkit::{fixture, json, status, FakeApiServer};
use serde_json::Value;

#[tokio::test]
async fn harness_connects_probes_and_cleans_up() {
    let dry_runs: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = dry_runs.clone();
    let crd: Arc<Mutex<Option<Value>>> = Arc::default();
    let (crd_get, crd_apply) = (crd.clone(), crd.clone());
    let router = Router::new()
        .route(
            "/version",
            get(|| async { json(&fixture("k8s-1.32/api/version.json")["serverVersion"]) }),
        )
        .route(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
            get(move |Path(name): Path<String>| {
                let crd = crd_get.clone();
                async move {
                    match crd.lock().expect("lock").clone() {
                        Some(c) => json(&c),
                        None => status(
                            StatusCode::NOT_FOUND,
                            "NotFound",
                            &format!("customresourcedefinitions.apiextensions.k8s.io \"{name}\" not found"),
                        ),
                    }
                }
            })
            .patch(move |RawQuery(q): RawQuery, body: axum::body::Bytes| {
                let crd = crd_apply.clone();
                async move {
                    // application/apply-patch+yaml; kube sends it as JSON (YAML's subset).
                    let mut applied: Value = serde_json::from_slice(&body).expect("an apply body");
                    assert_eq!(q.as_deref(), Some("&force=true&fieldManager=gmsa-e2e"), "a server-side apply");
                    applied["status"] = serde_json::json!({"conditions": [{"type": "Established", "status": "True"}]});
                    *crd.lock().expect("lock") = Some(applied.clone());
                    json(&applied)
                }
            }),
        )
        .route(
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            get(|| async {
                json(&serde_json::json!({
                    "apiVersion": "admissionregistration.k8s.io/v1",
                    "kind": "MutatingWebhookConfigurationList",
                    "metadata": {"resourceVersion": "1"},
                    "items": [{"metadata": {"name": "gmsa"}, "webhooks": [{
                        "name": "admission-webhook.windows-gmsa.sigs.k8s.io",
                        "clientConfig": {}, "sideEffects": "None",
                        "admissionReviewVersions": ["v1"],
                    }]}],
                }))
            }),
        )
        .route(
            "/api/v1/namespaces",
            post(|Json(ns): Json<Value>| async move { (StatusCode::CREATED, json(&ns)) }),
        )
        .route(
            "/api/v1/namespaces/{ns}",
            axum::routing::delete(|Path(ns): Path<String>| async move {
                json(&serde_json::json!({"kind": "Namespace", "apiVersion": "v1",
                    "metadata": {"name": ns}, "status": {"phase": "Terminating"}}))
            }),
        )
        .route(
            "/api/v1/namespaces/{ns}/serviceaccounts/{name}",
            get(|Path((ns, name)): Path<(String, String)>| async move {
                json(&serde_json::json!({"kind": "ServiceAccount", "apiVersion": "v1",
                    "metadata": {"name": name, "namespace": ns}}))
            }),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods",
            post(move |RawQuery(q): RawQuery, Json(pod): Json<Value>| {
                let seen = seen.clone();
                async move {
                    seen.lock()
                        .expect("lock")
                        .push(q.clone().unwrap_or_default());
                    if pod["spec"]["serviceAccountName"] == "default" {
                        return status(
                            StatusCode::FORBIDDEN,
                            "Forbidden",
                            "admission webhook \"admission-webhook.windows-gmsa.sigs.k8s.io\" denied the request: service account \"default\" is not authorized to `use` GMSA cred spec \"s\"",
                        );
                    }
                    json(&pod)
                }
            }),
        );
    // Without GMSA_E2E_KUBECONFIG a scenario fails (it is #[ignore]d in the normal run, so it
    // only runs when asked for), saying what to set; an ambient KUBECONFIG is not used.
    std::env::remove_var("GMSA_E2E_KUBECONFIG");
    std::env::set_var("KUBECONFIG", "/nonexistent/ambient-kubeconfig");
    let message = panic_message(tokio::spawn(Cluster::for_test("unset")).await);
    assert!(
        message.contains("unset: this scenario needs a real cluster: set GMSA_E2E_KUBECONFIG")
            && message.contains("scripts/e2e-cluster"),
        "{message}"
    );

    let server = FakeApiServer::start(router).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = server.write_kubeconfig(dir.path());
    // This test is alone in its process (its own test file).
    std::env::set_var("GMSA_E2E_KUBECONFIG", &kubeconfig);

    let cluster = Cluster::for_test("harness").await;
    assert!(!cluster.has_crd().await.expect("probe CRD"));
    // A bare cluster gets the CRD this build generates, once.
    cluster.ensure_crd().await.expect("install the CRD");
    assert!(cluster.has_crd().await.expect("probe CRD"));
    cluster.ensure_crd().await.expect("already there");
    let name = format!(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{}.{}",
        gmsa_crd::PLURAL,
        gmsa_crd::GROUP
    );
    assert_eq!(server.count("PATCH", &name), 1);
    assert_eq!(
        crd.lock()
            .expect("lock")
            .as_ref()
            .map(|c| c["spec"]["names"]["kind"].clone()),
        Some("GMSACredentialSpec".into())
    );
    assert_eq!(
        crd.lock()
            .expect("lock")
            .as_ref()
            .map(|c| c["metadata"]["labels"]["app.kubernetes.io/managed-by"].clone()),
        Some("gmsa-e2e".into()),
        "labelled for removal by scripts/e2e-cluster"
    );
    assert!(cluster.has_webhook().await.expect("probe webhook"));
    cluster.require_webhook("harness").await;
    let ns_name = cluster
        .with_namespace("harness", async |ns| {
            assert!(ns.name().starts_with("gmsa-e2e-harness-"), "{}", ns.name());
            let pod = ns.accepts(&windows_pod("p", "webapp", Some("s"))).await?;
            assert_eq!(pod.metadata.name.as_deref(), Some("p"));
            let (code, message) = ns.rejects(&windows_pod("p", "default", Some("s"))).await?;
            assert_eq!(code, 403);
            assert!(message.contains("not authorized"), "{message}");
            assert!(ns
                .accepts(&windows_pod("p", "default", Some("s")))
                .await
                .is_err());
            assert!(ns
                .rejects(&windows_pod("p", "webapp", Some("s")))
                .await
                .is_err());
            Ok(ns.name().to_string())
        })
        .await
        .expect("namespace scenario");
    assert_eq!(server.count("POST", "/api/v1/namespaces"), 1);
    assert_eq!(
        server.count("DELETE", &format!("/api/v1/namespaces/{ns_name}")),
        1
    );
    let dry_runs = dry_runs.lock().expect("lock").clone();
    assert_eq!(dry_runs.len(), 4);

    // A body that panics (a failed assertion) still has its namespace deleted; the panic
    // reaches the test.
    let panicked = tokio::spawn(async {
        let cluster = Cluster::for_test("harness").await;
        cluster
            .with_namespace("panics", async |_| -> anyhow::Result<()> {
                panic!("an assertion failed")
            })
            .await
    })
    .await;
    assert!(panicked.is_err_and(|e| e.is_panic()));
    let deleted: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "DELETE" && r.path.starts_with("/api/v1/namespaces/gmsa-e2e-panics-")
        })
        .map(|r| r.path)
        .collect();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert!(
        dry_runs.iter().all(|q| q.contains("dryRun=All")),
        "{dry_runs:?}"
    );

    // An explicit run against a cluster without the chart fails the scenarios that need it.
    let bare = FakeApiServer::start(
        Router::new()
            .route(
                "/version",
                get(|| async { json(&fixture("k8s-1.32/api/version.json")["serverVersion"]) }),
            )
            .route(
                "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
                get(|| async {
                    json(
                        &serde_json::json!({"apiVersion": "admissionregistration.k8s.io/v1",
                        "kind": "MutatingWebhookConfigurationList", "metadata": {}, "items": []}),
                    )
                }),
            ),
    )
    .await;
    std::env::set_var("GMSA_E2E_KUBECONFIG", bare.write_kubeconfig(dir.path()));
    let refused = tokio::spawn(async {
        let cluster = Cluster::for_test("bare").await;
        cluster.require_webhook("bare").await
    })
    .await;
    let message = panic_message(refused);
    assert!(
        message.contains("bare: the gmsa chart is not installed"),
        "{message}"
    );
}

/// The message a spawned task panicked with (the test fails if it did not panic).
fn panic_message<T>(joined: Result<T, tokio::task::JoinError>) -> String {
    joined
        .err()
        .expect("a scenario that cannot run fails, it does not skip")
        .into_panic()
        .downcast::<String>()
        .map(|m| *m)
        .unwrap_or_default()
}
