//! The installed webhook and the API-server-only scenarios against a real cluster.
//!
//! Every test needs a real cluster (`GMSA_E2E_KUBECONFIG`; see `gmsa_e2e::cluster`): they are
//! `#[ignore]`d in the normal run and run by scripts/e2e-cluster; run without a cluster, they fail.
//! The harness installs the GMSACredentialSpec CRD when the cluster has none.
//!
//! - `webhook_*`: the installed chart's webhook (under `GMSA_E2E_KUBECONFIG` they fail without
//!   it). Pods are created with server-side dry-run: they pass through the webhooks but are
//!   never stored or scheduled, so no Windows node is needed.
//! - `backend_*` and `local_*`: the scenarios of [`webhook_scenarios`], which CI also runs against the
//!   harness's fake cluster (`fake_cluster_webhook.rs`).

mod webhook_scenarios;

use gmsa_e2e::cluster::{wait_for, windows_pod, Cluster};
use serde_json::Value;
use webhook_scenarios::{credspec, webhook_scenarios, with_crd, WAIT};

webhook_scenarios!(before: (), #[ignore = "real cluster: scripts/e2e-cluster"]);

/// Runs `body` against the installed webhook with a spec `webapp` may use.
macro_rules! with_webhook {
    ($test:expr, |$ns:ident, $spec:ident| $body:block) => {{
        let cluster = Cluster::for_test($test).await;
        with_crd($test, &cluster).await;
        cluster.require_webhook($test).await;
        cluster
            .with_namespace("webhook", async |$ns| {
                $ns.service_account("webapp").await?;
                let $spec = $ns.create_spec("webapp", credspec("CONTOSO")).await?;
                $ns.grant_use("webapp", &$spec).await?;
                $body
            })
            .await
            .expect($test);
    }};
}

#[tokio::test]
#[ignore = "real cluster: scripts/e2e-cluster"]
async fn webhook_inlines_the_spec_for_an_authorized_service_account() {
    with_webhook!(
        "webhook_inlines_the_spec_for_an_authorized_service_account",
        |ns, spec| {
            // The webhook's cache and authorization cache may lag the objects just created.
            let pod_json = windows_pod("p", "webapp", Some(&spec));
            wait_for(WAIT, "the pod to be admitted", || async {
                Ok(ns.accepts(&pod_json).await.is_ok())
            })
            .await?;
            let pod = ns.accepts(&pod_json).await?;
            let inlined = pod
                .spec
                .and_then(|s| s.security_context)
                .and_then(|c| c.windows_options)
                .and_then(|w| w.gmsa_credential_spec)
                .expect("contents inlined");
            let inlined: Value = serde_json::from_str(&inlined)?;
            assert_eq!(inlined, credspec("CONTOSO"));
            Ok(())
        }
    );
}

#[tokio::test]
#[ignore = "real cluster: scripts/e2e-cluster"]
async fn webhook_rejects_an_unauthorized_service_account() {
    with_webhook!(
        "webhook_rejects_an_unauthorized_service_account",
        |ns, spec| {
            let (code, message) = ns
                .rejects(&windows_pod("p", "default", Some(&spec)))
                .await?;
            assert_eq!(code, 403, "{message}");
            assert!(
                message.contains("default") && message.contains(&spec),
                "{message}"
            );
            Ok(())
        }
    );
}

#[tokio::test]
#[ignore = "real cluster: scripts/e2e-cluster"]
async fn webhook_rejects_an_unknown_spec() {
    with_webhook!("webhook_rejects_an_unknown_spec", |ns, _spec| {
        let (code, message) = ns
            .rejects(&windows_pod("p", "webapp", Some("gmsa-e2e-does-not-exist")))
            .await?;
        assert!(code == 404 || code == 403, "{code}: {message}");
        assert!(message.contains("gmsa-e2e-does-not-exist"), "{message}");
        Ok(())
    });
}

#[tokio::test]
#[ignore = "real cluster: scripts/e2e-cluster"]
async fn webhook_admits_pods_without_gmsa() {
    with_webhook!("webhook_admits_pods_without_gmsa", |ns, _spec| {
        let pod = ns.accepts(&windows_pod("plain", "default", None)).await?;
        assert!(pod.spec.and_then(|s| s.security_context).is_none());
        Ok(())
    });
}

#[tokio::test]
#[ignore = "real cluster: scripts/e2e-cluster"]
async fn webhook_inlines_the_new_contents_after_a_change() {
    with_webhook!(
        "webhook_inlines_the_new_contents_after_a_change",
        |ns, spec| {
            ns.put_spec(&spec, credspec("CONTOSO2")).await?;
            wait_for(WAIT, "the new contents to be inlined", || async {
                let Ok(pod) = ns.accepts(&windows_pod("p", "webapp", Some(&spec))).await else {
                    return Ok(false);
                };
                let inlined = pod
                    .spec
                    .and_then(|s| s.security_context)
                    .and_then(|c| c.windows_options)
                    .and_then(|w| w.gmsa_credential_spec)
                    .unwrap_or_default();
                Ok(serde_json::from_str::<Value>(&inlined).ok() == Some(credspec("CONTOSO2")))
            })
            .await?;
            Ok(())
        }
    );
}
