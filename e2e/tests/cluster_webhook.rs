//! The Kubernetes backend and the installed webhook against a real cluster: the scenarios of
//! `webhook/tests/kube_backend.rs` with the real API server instead of the fake.
//!
//! Runs only when a cluster is configured (`GMSA_E2E_KUBECONFIG`, or `KUBECONFIG`; see
//! `gmsa_e2e::cluster`); otherwise every test prints why it was skipped and returns.
//! The backend tests need the GMSACredentialSpec CRD (`gmsa crd | kubectl apply -f -`); the
//! webhook tests also need the chart installed. Pods are created with server-side dry-run:
//! they pass through the webhooks but are never stored or scheduled, so no Windows node is
//! needed.

use std::sync::Arc;
use std::time::Duration;

use gmsa_e2e::cluster::{wait_for, windows_pod, Cluster};
use gmsa_webhook::kube_backend::{AuthzConfig, KubeAuthorizer, KubeSpecStore, SpecStoreConfig};
use gmsa_webhook::lookup::{Authorizer, CredSpecEntry, Freshness, SpecLookup, SpecStore};
use prometheus_client::registry::Registry;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// The cluster, or return from the test (skipped, reason printed).
macro_rules! cluster_or_skip {
    ($test:expr) => {
        match Cluster::connect_or_skip($test).await {
            Some(c) => c,
            None => return,
        }
    };
}

/// Return from the test (skipped, reason printed) unless `$cond` holds.
macro_rules! require {
    ($test:expr, $cond:expr, $why:expr) => {
        if !$cond.expect("probing the cluster") {
            eprintln!("{}: SKIPPED: {}", $test, $why);
            return;
        }
    };
}

fn credspec(netbios: &str) -> Value {
    json!({
        "CmsPlugins": ["ActiveDirectory"],
        "DomainJoinConfig": {
            "DnsName": "contoso.com", "DnsTreeName": "contoso.com",
            "Guid": "244818ae-87ca-4fcd-92ec-e79e5252348a", "MachineAccountName": "WebApp01",
            "NetBiosName": netbios, "Sid": "S-1-5-21-2126729477-2524075714-3094792973",
        },
        "ActiveDirectoryConfig": {
            "GroupManagedServiceAccounts": [{"Name": "WebApp01", "Scope": "CONTOSO"}],
        },
    })
}

fn found(v: Value) -> SpecLookup {
    SpecLookup::Found(CredSpecEntry::new(v))
}

#[tokio::test]
async fn backend_cache_follows_spec_changes() {
    let test = "backend_cache_follows_spec_changes";
    let cluster = cluster_or_skip!(test);
    require!(
        test,
        cluster.has_crd().await,
        "the GMSACredentialSpec CRD is not installed"
    );
    let mut registry = Registry::default();
    let (store, task) =
        KubeSpecStore::start(cluster.client(), SpecStoreConfig::default(), &mut registry);
    let result = cluster
        .with_namespace("cache", async |ns| {
            let store: Arc<KubeSpecStore> = store.clone();
            wait_for(WAIT, "the cache to sync", || async {
                Ok(store.ready().is_ok())
            })
            .await?;
            let name = ns.create_spec("cache", credspec("CONTOSO")).await?;
            wait_for(WAIT, "the new spec in the cache", || async {
                Ok(store.get(&name, Freshness::Cached).await == Ok(found(credspec("CONTOSO"))))
            })
            .await?;
            ns.put_spec(&name, credspec("CONTOSO2")).await?;
            wait_for(WAIT, "the changed spec in the cache", || async {
                Ok(store.get(&name, Freshness::Cached).await == Ok(found(credspec("CONTOSO2"))))
            })
            .await?;
            assert_eq!(
                store.get(&name, Freshness::Live).await,
                Ok(found(credspec("CONTOSO2")))
            );
            ns.delete_spec(&name).await?;
            wait_for(WAIT, "the deleted spec to leave the cache", || async {
                Ok(store.get(&name, Freshness::Cached).await == Ok(SpecLookup::NotFound))
            })
            .await?;
            assert_eq!(
                store.get(&name, Freshness::Live).await,
                Ok(SpecLookup::NotFound)
            );
            Ok(())
        })
        .await;
    task.abort();
    result.expect("cache scenario");
}

#[tokio::test]
async fn backend_authorizer_follows_rbac() {
    let test = "backend_authorizer_follows_rbac";
    let cluster = cluster_or_skip!(test);
    let mut registry = Registry::default();
    let authz = KubeAuthorizer::new(
        cluster.client(),
        AuthzConfig {
            allowed_ttl: Duration::ZERO,
            denied_ttl: Duration::ZERO,
            ..AuthzConfig::default()
        },
        &mut registry,
    );
    cluster
        .with_namespace("authz", async |ns| {
            ns.service_account("webapp").await?;
            let d = authz
                .may_use(ns.name(), "webapp", "gmsa-e2e-webapp01")
                .await?;
            assert!(!d.allowed, "not granted yet: {d:?}");
            ns.grant_use("webapp", "gmsa-e2e-webapp01").await?;
            wait_for(WAIT, "the grant to apply", || async {
                Ok(authz
                    .may_use(ns.name(), "webapp", "gmsa-e2e-webapp01")
                    .await?
                    .allowed)
            })
            .await?;
            let d = authz
                .may_use(ns.name(), "webapp", "gmsa-e2e-webapp01")
                .await?;
            assert!(
                d.reason.is_some_and(|r| r.contains("RBAC")),
                "the authorizer says why"
            );
            // Another spec, and another service account, stay denied.
            assert!(
                !authz
                    .may_use(ns.name(), "webapp", "gmsa-e2e-other")
                    .await?
                    .allowed
            );
            assert!(
                !authz
                    .may_use(ns.name(), "default", "gmsa-e2e-webapp01")
                    .await?
                    .allowed
            );
            Ok(())
        })
        .await
        .expect("authorization scenario");
}

/// Runs `body` against the installed webhook with a spec `webapp` may use.
macro_rules! with_webhook {
    ($test:expr, |$ns:ident, $spec:ident| $body:block) => {{
        let cluster = cluster_or_skip!($test);
        require!(
            $test,
            cluster.has_crd().await,
            "the GMSACredentialSpec CRD is not installed"
        );
        require!(
            $test,
            cluster.has_webhook().await,
            "the gmsa webhook is not installed (helm install gmsa charts/gmsa)"
        );
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
async fn webhook_admits_pods_without_gmsa() {
    with_webhook!("webhook_admits_pods_without_gmsa", |ns, _spec| {
        let pod = ns.accepts(&windows_pod("plain", "default", None)).await?;
        assert!(pod.spec.and_then(|s| s.security_context).is_none());
        Ok(())
    });
}

#[tokio::test]
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
