//! The webhook's cluster scenarios that need only an API server (no chart installed), written
//! once and run twice: against a real cluster by `cluster_webhook.rs` (`#[ignore]`d, run by
//! scripts/e2e-cluster) and, in CI, against the harness's fake cluster by
//! `fake_cluster_webhook.rs` ([`gmsa_e2e::fake_cluster`]). [`webhook_scenarios!`] declares one
//! test per scenario in the file that includes this module.
//!
//! - `backend_*`: the webhook's Kubernetes backend (spec cache, authorizer) against the
//!   cluster, as `webhook/tests/kube_backend.rs` runs it against testkit's fake.
//! - `local_*`: the reference project's integration scenarios plus ours (init and ephemeral
//!   containers, certificate rotation through a `..data` swap): the webhook runs in this
//!   process in Kubernetes mode ([`LocalWebhook`]) and is registered by `url` for the test's
//!   namespace only, so they need only the CRD (installed when missing) and an API server that
//!   can reach this machine (`GMSA_E2E_WEBHOOK_HOST`, default `127.0.0.1`). Pods are created
//!   with server-side dry-run: they pass through the webhooks but are never stored or
//!   scheduled, so no Windows node is needed. Where a pod must exist (updates, ephemeral
//!   containers) it is created for real; with no Windows node it stays Pending, and it is
//!   deleted at cleanup.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use gmsa_e2e::cluster::{
    denial, wait_for, windows_pod, Cluster, LocalWebhook, LocalWebhookOptions, TestNamespace,
};
use gmsa_webhook::kube_backend::{
    AuthorizerConfig, KubeAuthorizer, KubeSpecStore, SpecStoreConfig,
};
use gmsa_webhook::lookup::{Authorizer, CredSpecEntry, Freshness, SpecLookup, SpecStore};
use k8s_openapi::api::core::v1::Pod;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};

/// How long a scenario waits for the cluster (caches, RBAC) to catch up.
pub const WAIT: Duration = Duration::from_secs(30);

/// Declares one test per scenario of this module (see [`gmsa_e2e::scenario_tests!`]), each
/// with the given attributes (e.g. `#[ignore = "…"]`), each evaluating `before` first (e.g.
/// choosing the fake cluster).
macro_rules! webhook_scenarios {
    (before: $before:expr $(, #[$attr:meta])* $(,)?) => {
        gmsa_e2e::scenario_tests!([flavor = "current_thread"] webhook_scenarios ($before) [$(#[$attr])*]
            backend_cache_follows_spec_changes,
            backend_authorizer_follows_rbac,
            local_pod_level_spec_name_gets_the_contents_inlined_and_stored,
            local_container_level_spec_name_gets_the_contents_inlined,
            local_several_containers_each_get_the_contents_they_name,
            local_preset_contents_matching_the_spec_are_admitted_unchanged,
            local_preset_contents_differing_from_the_spec_are_refused,
            local_unauthorized_service_account_is_refused,
            local_unknown_spec_is_refused,
            local_contents_without_a_name_are_refused_at_pod_and_container_level,
            local_updates_changing_the_spec_name_or_contents_are_refused,
            local_benign_update_of_a_gmsa_pod_is_allowed,
            local_host_account_config_spec_is_inlined_whole,
            local_spec_created_through_v1alpha1_is_read_as_v1_and_admitted,
            local_certificate_rotation_through_a_data_swap_keeps_pods_admitted,
            local_random_hostname_fills_a_missing_hostname_and_warns_about_a_preset_one,
            local_init_containers_get_contents_and_need_use_permission,
            local_ephemeral_container_naming_a_spec_needs_use_permission,
        );
    };
}
pub(crate) use webhook_scenarios;

/// Installs the CRD when the cluster has none (see `Cluster::ensure_crd`), failing `test` when
/// it cannot.
pub async fn with_crd(test: &str, cluster: &Cluster) {
    if let Err(e) = cluster.ensure_crd().await {
        panic!("{test}: {e:#}");
    }
}

/// A domain-joined spec of `WebApp01` in the domain whose NetBIOS name is `netbios`.
pub fn credspec(netbios: &str) -> Value {
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

pub async fn backend_cache_follows_spec_changes(test: &str) {
    let cluster = Cluster::for_test(test).await;
    with_crd(test, &cluster).await;
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

pub async fn backend_authorizer_follows_rbac(test: &str) {
    let cluster = Cluster::for_test(test).await;
    let mut registry = Registry::default();
    let authz = KubeAuthorizer::new(
        cluster.client(),
        AuthorizerConfig {
            allowed_ttl: Duration::ZERO,
            denied_ttl: Duration::ZERO,
            ..AuthorizerConfig::default()
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

/// A CCG (non-domain-joined) spec: `HostAccountConfig` with a plugin and its input.
fn ccg_credspec() -> Value {
    let mut spec = credspec("CONTOSO");
    spec["ActiveDirectoryConfig"]["HostAccountConfig"] = json!({
        "PortableCcgVersion": "1",
        "PluginGUID": "{859E1386-BDB4-49E8-85C7-3070B13920E1}",
        "PluginInput": "contoso.com:gmsa-e2e-vault:secret/ccg-user",
    });
    spec
}

/// `windowsOptions` naming `name` and/or carrying `contents`.
fn gmsa(name: Option<&str>, contents: Option<&Value>) -> Value {
    let mut options = json!({});
    if let Some(name) = name {
        options["gmsaCredentialSpecName"] = json!(name);
    }
    if let Some(contents) = contents {
        options["gmsaCredentialSpec"] = json!(contents.to_string());
    }
    options
}

/// Sets `windowsOptions` at `place`: `""` (the pod's securityContext) or a container such as
/// `containers/1` or `initContainers/0`.
fn set(pod: &mut Value, place: &str, options: Value) {
    let target = if place.is_empty() {
        &mut pod["spec"]
    } else {
        pod.pointer_mut(&format!("/spec/{place}"))
            .unwrap_or_else(|| panic!("no {place} in the pod"))
    };
    target["securityContext"] = json!({ "windowsOptions": options });
}

/// A container of the test pods.
fn container(name: &str) -> Value {
    json!({"name": name, "image": "mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022"})
}

/// The contents inlined at `place` (see [`set`]), parsed.
fn contents(pod: &Pod, place: &str) -> Option<Value> {
    let pod = serde_json::to_value(pod).expect("pod to JSON");
    let base = if place.is_empty() {
        "/spec".to_string()
    } else {
        format!("/spec/{place}")
    };
    let text = pod
        .pointer(&format!(
            "{base}/securityContext/windowsOptions/gmsaCredentialSpec"
        ))?
        .as_str()?;
    Some(serde_json::from_str(text).expect("inlined contents are JSON"))
}

/// Admitted once the webhook's spec cache and the API server's RBAC have caught up with what
/// the test just created.
async fn admitted(ns: &TestNamespace, pod: &Value) -> Result<Pod> {
    let start = std::time::Instant::now();
    loop {
        match ns.accepts(pod).await {
            Ok(admitted) => return Ok(admitted),
            Err(e) if start.elapsed() > WAIT => return Err(e.context(format!("after {WAIT:?}"))),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Runs `body` with the local webhook started with `options` and registered for a fresh
/// namespace `gmsa-e2e-{label}-…` in which service account `webapp` may use the spec passed
/// to `body` (holding `credspec("CONTOSO")`). The CRD is installed when missing.
async fn with_local_webhook(
    test: &str,
    options: LocalWebhookOptions,
    body: impl AsyncFnOnce(&mut TestNamespace, &str, &mut LocalWebhook) -> Result<()>,
) {
    let cluster = Cluster::for_test(test).await;
    with_crd(test, &cluster).await;
    let mut hook = LocalWebhook::start(&options)
        .await
        .unwrap_or_else(|e| panic!("{test}: {e:#}"));
    let label: String = test
        .chars()
        .filter(|c| c.is_ascii_lowercase())
        .take(12)
        .collect();
    let result = cluster
        .with_namespace(&label, async |ns| {
            ns.service_account("webapp").await?;
            let spec = ns.create_spec("webapp", credspec("CONTOSO")).await?;
            ns.grant_use("webapp", &spec).await?;
            ns.register_webhook(&hook).await?;
            body(ns, &spec, &mut hook).await
        })
        .await;
    hook.shutdown().await;
    if let Err(e) = result {
        panic!("{test}: {e:#}");
    }
}

pub async fn local_pod_level_spec_name_gets_the_contents_inlined_and_stored(test: &str) {
    with_local_webhook(test, LocalWebhookOptions::default(), async |ns, spec, _| {
        let pod = windows_pod("pod-level", "webapp", Some(spec));
        let dry = admitted(ns, &pod).await?;
        assert_eq!(contents(&dry, ""), Some(credspec("CONTOSO")));
        ns.create_pod(&pod).await?;
        let stored = ns.get_pod("pod-level").await?;
        assert_eq!(contents(&stored, ""), Some(credspec("CONTOSO")));
        assert_eq!(contents(&stored, "containers/0"), None, "only where named");
        Ok(())
    })
    .await;
}

pub async fn local_container_level_spec_name_gets_the_contents_inlined(test: &str) {
    with_local_webhook(test, LocalWebhookOptions::default(), async |ns, spec, _| {
        let mut pod = windows_pod("container-level", "webapp", None);
        set(&mut pod, "containers/0", gmsa(Some(spec), None));
        let admitted = admitted(ns, &pod).await?;
        assert_eq!(
            contents(&admitted, "containers/0"),
            Some(credspec("CONTOSO"))
        );
        assert_eq!(contents(&admitted, ""), None);
        Ok(())
    })
    .await;
}

pub async fn local_several_containers_each_get_the_contents_they_name(test: &str) {
    with_local_webhook(test, LocalWebhookOptions::default(), async |ns, spec, _| {
        let other = ns.create_spec("other", credspec("OTHER")).await?;
        ns.grant_use("webapp", &other).await?;
        let mut pod = windows_pod("several", "webapp", Some(spec));
        pod["spec"]["containers"] = json!([container("a"), container("b"), container("c")]);
        set(&mut pod, "containers/0", gmsa(Some(&other), None));
        set(&mut pod, "containers/2", gmsa(Some(spec), None));
        let admitted = admitted(ns, &pod).await?;
        assert_eq!(contents(&admitted, ""), Some(credspec("CONTOSO")));
        assert_eq!(contents(&admitted, "containers/0"), Some(credspec("OTHER")));
        assert_eq!(contents(&admitted, "containers/1"), None);
        assert_eq!(
            contents(&admitted, "containers/2"),
            Some(credspec("CONTOSO"))
        );
        Ok(())
    })
    .await;
}

pub async fn local_preset_contents_matching_the_spec_are_admitted_unchanged(test: &str) {
    with_local_webhook(test, LocalWebhookOptions::default(), async |ns, spec, _| {
        // Same JSON, other formatting: equal after parsing.
        let preset = serde_json::to_string_pretty(&credspec("CONTOSO"))?;
        let mut pod = windows_pod("preset", "webapp", None);
        pod["spec"]["securityContext"] = json!({"windowsOptions": {
                "gmsaCredentialSpecName": spec, "gmsaCredentialSpec": preset}});
        set(
            &mut pod,
            "containers/0",
            gmsa(Some(spec), Some(&credspec("CONTOSO"))),
        );
        let admitted = admitted(ns, &pod).await?;
        let text = admitted
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref())
            .and_then(|c| c.windows_options.as_ref())
            .and_then(|w| w.gmsa_credential_spec.clone());
        assert_eq!(text.as_deref(), Some(preset.as_str()), "left as written");
        assert_eq!(
            contents(&admitted, "containers/0"),
            Some(credspec("CONTOSO"))
        );
        Ok(())
    })
    .await;
}

pub async fn local_preset_contents_differing_from_the_spec_are_refused(test: &str) {
    with_local_webhook(test, LocalWebhookOptions::default(), async |ns, spec, _| {
        admitted(ns, &windows_pod("warm", "webapp", Some(spec))).await?;
        for place in ["", "containers/0"] {
            let mut pod = windows_pod("mismatch", "webapp", None);
            set(&mut pod, place, gmsa(Some(spec), Some(&credspec("EVIL"))));
            let (code, message) = ns.rejects(&pod).await?;
            assert_eq!(code, 422, "{place}: {message}");
            assert!(
                message.contains("does not match") && message.contains(spec),
                "{place}: {message}"
            );
        }
        Ok(())
    })
    .await;
}

pub async fn local_unauthorized_service_account_is_refused(test: &str) {
    with_local_webhook(test, LocalWebhookOptions::default(), async |ns, spec, _| {
        for place in ["", "containers/0"] {
            let mut pod = windows_pod("unauthorized", "default", None);
            set(&mut pod, place, gmsa(Some(spec), None));
            let (code, message) = ns.rejects(&pod).await?;
            assert_eq!(code, 403, "{place}: {message}");
            assert!(
                message.contains("\"default\"")
                    && message.contains(spec)
                    && message.contains("not authorized"),
                "{place}: {message}"
            );
        }
        Ok(())
    })
    .await;
}

pub async fn local_unknown_spec_is_refused(test: &str) {
    with_local_webhook(
        test,
        LocalWebhookOptions::default(),
        async |ns, _spec, _| {
            let missing = "gmsa-e2e-does-not-exist";
            ns.grant_use("webapp", missing).await?;
            for place in ["", "containers/0"] {
                let mut pod = windows_pod("unknown", "webapp", None);
                set(&mut pod, place, gmsa(Some(missing), None));
                let (code, message) = ns.rejects(&pod).await?;
                assert_eq!(code, 404, "{place}: {message}");
                assert!(
                    message.contains(missing) && message.contains("does not exist"),
                    "{place}: {message}"
                );
            }
            Ok(())
        },
    )
    .await;
}

pub async fn local_contents_without_a_name_are_refused_at_pod_and_container_level(test: &str) {
    with_local_webhook(
        test,
        LocalWebhookOptions::default(),
        async |ns, _spec, _| {
            for (place, shown) in [
                ("", "the pod's securityContext"),
                ("containers/0", "\"iis\""),
            ] {
                let mut pod = windows_pod("nameless", "webapp", None);
                set(&mut pod, place, gmsa(None, Some(&credspec("CONTOSO"))));
                let (code, message) = ns.rejects(&pod).await?;
                assert_eq!(code, 422, "{place}: {message}");
                assert!(
                    message.contains("does not define the name") && message.contains(shown),
                    "{place}: {message}"
                );
            }
            Ok(())
        },
    )
    .await;
}

/// The API server's own pod-update validation forbids most securityContext changes before the
/// validating webhooks run, so either refusal may come first; both keep the pod as it was.
fn assert_update_refused(refusal: (u16, String), what: &str) {
    let (code, message) = refusal;
    assert!(
        (code == 403 && message.contains("cannot update an existing pod's GMSA settings"))
            || (code == 422 && message.contains("pod updates may not change fields")),
        "{what}: {code}: {message}"
    );
}

pub async fn local_updates_changing_the_spec_name_or_contents_are_refused(test: &str) {
    with_local_webhook(test, LocalWebhookOptions::default(), async |ns, spec, _| {
        let other = ns.create_spec("other", credspec("OTHER")).await?;
        ns.grant_use("webapp", &other).await?;
        let mut pod = windows_pod("update", "webapp", Some(spec));
        set(&mut pod, "containers/0", gmsa(Some(spec), None));
        admitted(ns, &pod).await?;
        ns.create_pod(&pod).await?;
        let other_name = other.clone();
        let renamed = ns
            .update_pod("update", move |p| {
                p["spec"]["securityContext"]["windowsOptions"]["gmsaCredentialSpecName"] =
                    json!(other_name);
            })
            .await?;
        assert_update_refused(denial(renamed, "renaming the spec")?, "name");
        let rewritten = ns
            .update_pod("update", |p| {
                p["spec"]["containers"][0]["securityContext"]["windowsOptions"]
                    ["gmsaCredentialSpec"] = json!(credspec("OTHER").to_string());
            })
            .await?;
        assert_update_refused(denial(rewritten, "rewriting the contents")?, "contents");
        let stored = ns.get_pod("update").await?;
        let options = stored
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref())
            .and_then(|c| c.windows_options.as_ref())
            .and_then(|w| w.gmsa_credential_spec_name.clone());
        assert_eq!(options.as_deref(), Some(spec));
        assert_eq!(contents(&stored, "containers/0"), Some(credspec("CONTOSO")));
        Ok(())
    })
    .await;
}

pub async fn local_benign_update_of_a_gmsa_pod_is_allowed(test: &str) {
    with_local_webhook(test, LocalWebhookOptions::default(), async |ns, spec, _| {
        let pod = windows_pod("benign", "webapp", Some(spec));
        admitted(ns, &pod).await?;
        ns.create_pod(&pod).await?;
        let updated = ns
            .update_pod("benign", |p| {
                p["metadata"]["labels"] = json!({"gmsa-e2e/touched": "yes"});
            })
            .await?
            .map_err(|e| anyhow::anyhow!("a label change was refused: {e}"))?;
        assert_eq!(
            updated
                .metadata
                .labels
                .unwrap_or_default()
                .get("gmsa-e2e/touched"),
            Some(&"yes".to_string())
        );
        let stored = ns.get_pod("benign").await?;
        assert_eq!(contents(&stored, ""), Some(credspec("CONTOSO")));
        Ok(())
    })
    .await;
}

pub async fn local_host_account_config_spec_is_inlined_whole(test: &str) {
    with_local_webhook(
        test,
        LocalWebhookOptions::default(),
        async |ns, _spec, _| {
            let ccg = ns.create_spec("ccg", ccg_credspec()).await?;
            ns.grant_use("webapp", &ccg).await?;
            let admitted = admitted(ns, &windows_pod("ccg", "webapp", Some(&ccg))).await?;
            let inlined = contents(&admitted, "").expect("contents inlined");
            assert_eq!(inlined, ccg_credspec());
            assert_eq!(
                inlined["ActiveDirectoryConfig"]["HostAccountConfig"]["PluginInput"],
                "contoso.com:gmsa-e2e-vault:secret/ccg-user"
            );
            Ok(())
        },
    )
    .await;
}

pub async fn local_spec_created_through_v1alpha1_is_read_as_v1_and_admitted(test: &str) {
    with_local_webhook(
        test,
        LocalWebhookOptions::default(),
        async |ns, _spec, _| {
            let alpha = ns.create_spec_v1alpha1("alpha", credspec("ALPHA")).await?;
            let v1 = ns.get_spec(&alpha).await?;
            assert_eq!(v1.credspec, Some(credspec("ALPHA")));
            ns.grant_use("webapp", &alpha).await?;
            let admitted = admitted(ns, &windows_pod("alpha", "webapp", Some(&alpha))).await?;
            assert_eq!(contents(&admitted, ""), Some(credspec("ALPHA")));
            Ok(())
        },
    )
    .await;
}

pub async fn local_certificate_rotation_through_a_data_swap_keeps_pods_admitted(test: &str) {
    with_local_webhook(
        test,
        LocalWebhookOptions::default(),
        async |ns, spec, hook| {
            let pod = windows_pod("rotation", "webapp", Some(spec));
            admitted(ns, &pod).await?;
            let mut count = 0;
            // Twice: the watch must survive the first swap (the reference's did not).
            for round in 1..=2 {
                let before = hook.served_not_after().await?;
                let expected = hook.rotate()?;
                assert!(expected > before, "round {round}: a later notAfter");
                let start = std::time::Instant::now();
                loop {
                    let admitted = ns.accepts(&pod).await?;
                    assert_eq!(contents(&admitted, ""), Some(credspec("CONTOSO")));
                    count += 1;
                    if hook.served_not_after().await? == expected {
                        break;
                    }
                    assert!(
                        start.elapsed() < WAIT,
                        "round {round}: the new certificate was not served within {WAIT:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                for _ in 0..5 {
                    let admitted = ns.accepts(&pod).await?;
                    assert_eq!(contents(&admitted, ""), Some(credspec("CONTOSO")));
                    count += 1;
                }
            }
            let reloads = hook
                .metric("gmsa_webhook_certificate_reloads_total{result=\"success\"}")
                .await?;
            assert!(reloads >= 2.0, "reloads: {reloads}");
            let refused = hook
                .metric("gmsa_webhook_certificate_reloads_total{result=\"refused\"}")
                .await?;
            assert_eq!(refused, 0.0, "no half-written pair was ever read");
            eprintln!("certificate rotation: {count} pods admitted across 2 rotations");
            Ok(())
        },
    )
    .await;
}

pub async fn local_random_hostname_fills_a_missing_hostname_and_warns_about_a_preset_one(
    test: &str,
) {
    with_local_webhook(
        test,
        LocalWebhookOptions {
            random_hostname: true,
        },
        async |ns, spec, _| {
            let pod = windows_pod("random", "webapp", Some(spec));
            admitted(ns, &pod).await?;
            let first = ns.admit(&pod).await?;
            let hostname = first
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.hostname.clone())
                .expect("a hostname was set");
            assert!(
                !hostname.is_empty()
                    && hostname.len() <= 15
                    && hostname
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{hostname:?}"
            );
            assert!(first.warnings.is_empty(), "{:?}", first.warnings);
            let second = ns.admit(&pod).await?;
            assert_ne!(
                second.pod.spec.and_then(|s| s.hostname),
                Some(hostname),
                "random per pod"
            );

            let mut preset = pod.clone();
            preset["spec"]["hostname"] = json!("web-1");
            let kept = ns.admit(&preset).await?;
            assert_eq!(
                kept.pod.spec.and_then(|s| s.hostname).as_deref(),
                Some("web-1")
            );
            assert!(
                kept.warnings
                    .iter()
                    .any(|w| w.contains("web-1") && w.contains("hostname")),
                "{:?}",
                kept.warnings
            );

            let plain = ns.admit(&windows_pod("plain", "webapp", None)).await?;
            assert_eq!(
                plain.pod.spec.and_then(|s| s.hostname),
                None,
                "only GMSA pods"
            );
            Ok(())
        },
    )
    .await;
}

pub async fn local_init_containers_get_contents_and_need_use_permission(test: &str) {
    with_local_webhook(test, LocalWebhookOptions::default(), async |ns, spec, _| {
        let forbidden = ns.create_spec("forbidden", credspec("FORBIDDEN")).await?;
        let mut pod = windows_pod("init", "webapp", None);
        pod["spec"]["initContainers"] = json!([container("setup")]);
        set(&mut pod, "initContainers/0", gmsa(Some(spec), None));
        let admitted = admitted(ns, &pod).await?;
        assert_eq!(
            contents(&admitted, "initContainers/0"),
            Some(credspec("CONTOSO"))
        );

        set(&mut pod, "initContainers/0", gmsa(Some(&forbidden), None));
        let (code, message) = ns.rejects(&pod).await?;
        assert_eq!(code, 403, "{message}");
        assert!(
            message.contains(&forbidden) && message.contains("\"setup\""),
            "{message}"
        );

        // Copied contents do not get around the check.
        set(
            &mut pod,
            "initContainers/0",
            gmsa(Some(&forbidden), Some(&credspec("FORBIDDEN"))),
        );
        let (code, message) = ns.rejects(&pod).await?;
        assert_eq!(code, 403, "{message}");
        Ok(())
    })
    .await;
}

pub async fn local_ephemeral_container_naming_a_spec_needs_use_permission(test: &str) {
    with_local_webhook(test, LocalWebhookOptions::default(), async |ns, spec, _| {
        let forbidden = ns.create_spec("forbidden", credspec("FORBIDDEN")).await?;
        let pod = windows_pod("debugged", "webapp", None);
        admitted(ns, &pod).await?;
        ns.create_pod(&pod).await?;

        // The reference admitted this (kubectl debug with copied contents, no `use`).
        let mut sneaky = container("debug-forbidden");
        sneaky["securityContext"] = json!({"windowsOptions":
                gmsa(Some(&forbidden), Some(&credspec("FORBIDDEN")))});
        let refused = ns.add_ephemeral_container("debugged", sneaky).await?;
        let (code, message) = denial(refused, "a debug container naming a forbidden spec")?;
        assert_eq!(code, 403, "{message}");
        assert!(
            message.contains(&forbidden) && message.contains("debug-forbidden"),
            "{message}"
        );

        let mut debug = container("debug");
        debug["securityContext"] = json!({"windowsOptions": gmsa(Some(spec), None)});
        ns.add_ephemeral_container("debugged", debug)
            .await?
            .map_err(|e| anyhow::anyhow!("the allowed debug container was refused: {e}"))?;
        let stored = ns.get_pod("debugged").await?;
        assert_eq!(
            contents(&stored, "ephemeralContainers/0"),
            Some(credspec("CONTOSO"))
        );
        let names: Vec<String> = stored
            .spec
            .and_then(|s| s.ephemeral_containers)
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["debug"], "the refused one was not added");
        Ok(())
    })
    .await;
}
