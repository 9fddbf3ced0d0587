//! The cluster scenarios of [`webhook_scenarios`] against the harness's fake cluster
//! ([`gmsa_e2e::fake_cluster`]), in CI: the same code `cluster_webhook.rs` runs against a real
//! cluster. Plus the harness itself (`gmsa_e2e::cluster::LocalWebhook`,
//! `TestNamespace::register_webhook`, real pods, updates, ephemeral containers, warnings):
//! the local webhook starts in Kubernetes mode against the cluster the harness chose
//! (`GMSA_E2E_KUBECONFIG` -> `KUBECONFIG`), the registration is callable and trusted, the
//! harness reads admitted pods, denials and warnings correctly, certificate rotation is seen,
//! and cleanup removes the configurations, the pods and the namespace.

mod webhook_scenarios;

use std::time::Duration;

use gmsa_e2e::cluster::{
    denial, windows_pod, Cluster, LocalWebhook, LocalWebhookOptions, LOCAL_MUTATE_HOOK,
    LOCAL_VALIDATE_HOOK,
};
use gmsa_e2e::fake_cluster::{matches_rule, FakeCluster, MUTATING, VALIDATING};
use serde_json::{json, Value};
use webhook_scenarios::webhook_scenarios;

webhook_scenarios!(before: FakeCluster::for_this_process());

fn inlined(pod: &k8s_openapi::api::core::v1::Pod, pointer: &str) -> Option<Value> {
    let pod = serde_json::to_value(pod).expect("pod JSON");
    let text = pod.pointer(pointer)?.as_str()?;
    serde_json::from_str(text).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_webhook_is_registered_called_and_cleaned_up() {
    let fake = FakeCluster::for_this_process();
    let kubeconfig = fake.kubeconfig();

    let cluster = Cluster::for_test("local webhook harness").await;
    assert_eq!(
        std::env::var_os("KUBECONFIG").as_deref(),
        Some(kubeconfig.as_os_str()),
        "the local webhook finds the harness's cluster"
    );
    assert!(cluster.has_crd().await.expect("probe CRD"));
    let mut hook = LocalWebhook::start(&LocalWebhookOptions {
        random_hostname: true,
    })
    .await
    .expect("the local webhook starts against the fake and gets ready");
    assert!(hook.url("/mutate").starts_with("https://127.0.0.1:"));
    let credspec =
        json!({"CmsPlugins": ["ActiveDirectory"], "DomainJoinConfig": {"NetBiosName": "CONTOSO"}});

    let ns_name = cluster
        .with_namespace("localhook", async |ns| {
            ns.service_account("webapp").await?;
            let spec = ns.create_spec("webapp", credspec.clone()).await?;
            ns.grant_use("webapp", &spec).await?;
            ns.register_webhook(&hook).await?;
            let name = ns.name().to_string();
            assert_eq!(
                fake.namespace_labels(&name)["windows.k8s.io/disabled"],
                "true"
            );
            for kind in [MUTATING, VALIDATING] {
                let config = fake
                    .webhook_configuration(kind, &name)
                    .expect("the configuration is registered");
                let entry = &config["webhooks"][0];
                assert_eq!(entry["failurePolicy"], "Fail");
                assert!(matches_rule(entry, "UPDATE", "pods/ephemeralcontainers"));
                assert_eq!(matches_rule(entry, "UPDATE", "pods"), kind == VALIDATING);
            }

            // Inlined and a random hostname, through the harness's dry-run.
            let pod = windows_pod("p", "webapp", Some(&spec));
            let admitted = ns.accepts(&pod).await?;
            assert_eq!(
                inlined(
                    &admitted,
                    "/spec/securityContext/windowsOptions/gmsaCredentialSpec"
                ),
                Some(credspec.clone())
            );
            let hostname = admitted.spec.as_ref().and_then(|s| s.hostname.clone());
            assert!(hostname.is_some_and(|h| h.len() == 15));

            // Warnings are read from the API server's Warning headers.
            let mut preset = pod.clone();
            preset["spec"]["hostname"] = json!("web-1");
            let kept = ns.admit(&preset).await?;
            assert!(
                kept.warnings.iter().any(|w| w.contains("\"web-1\"")),
                "{:?}",
                kept.warnings
            );
            assert!(ns.admit(&pod).await?.warnings.is_empty());

            // Denials from both webhooks.
            let (code, message) = ns
                .rejects(&windows_pod("p", "default", Some(&spec)))
                .await?;
            assert_eq!(code, 403, "{message}");
            assert!(
                message.contains(&format!(
                    "admission webhook \"{LOCAL_VALIDATE_HOOK}\" denied"
                )),
                "{message}"
            );
            let (code, message) = ns
                .rejects(&windows_pod("p", "webapp", Some("gmsa-e2e-missing")))
                .await?;
            assert_eq!(code, 404, "{message}");
            assert!(message.contains(LOCAL_MUTATE_HOOK), "{message}");

            // A real pod, updated, and given ephemeral containers.
            ns.create_pod(&pod).await?;
            let stored = ns.get_pod("p").await?;
            assert!(inlined(
                &stored,
                "/spec/securityContext/windowsOptions/gmsaCredentialSpec"
            )
            .is_some());
            ns.update_pod("p", |p| p["metadata"]["labels"] = json!({"touched": "yes"}))
                .await?
                .map_err(|e| anyhow::anyhow!("benign update refused: {e}"))?;
            let renamed = ns
                .update_pod("p", |p| {
                    p["spec"]["securityContext"]["windowsOptions"]["gmsaCredentialSpecName"] =
                        json!("other")
                })
                .await?;
            let (code, message) = denial(renamed, "renaming")?;
            assert_eq!(code, 403, "{message}");
            assert!(message.contains("cannot update"), "{message}");

            let mut debug = json!({"name": "debug", "image": "busybox"});
            debug["securityContext"] = json!({"windowsOptions": {"gmsaCredentialSpecName": spec}});
            ns.add_ephemeral_container("p", debug)
                .await?
                .map_err(|e| anyhow::anyhow!("allowed debug container refused: {e}"))?;
            let stored = ns.get_pod("p").await?;
            assert_eq!(
                inlined(
                    &stored,
                    "/spec/ephemeralContainers/0/securityContext/windowsOptions/gmsaCredentialSpec"
                ),
                Some(credspec.clone())
            );
            let mut forbidden = json!({"name": "debug2", "image": "busybox"});
            forbidden["securityContext"] =
                json!({"windowsOptions": {"gmsaCredentialSpecName": "gmsa-e2e-missing"}});
            let refused = ns.add_ephemeral_container("p", forbidden).await?;
            assert!(denial(refused, "unknown spec in a debug container").is_ok());

            // Rotation: the new certificate is served and pods keep being admitted.
            let before = hook.served_not_after().await?;
            let expected = hook.rotate()?;
            assert!(expected > before);
            let start = std::time::Instant::now();
            while hook.served_not_after().await? != expected {
                assert!(start.elapsed() < Duration::from_secs(20), "not reloaded");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            ns.accepts(&pod).await?;
            assert!(
                hook.metric("gmsa_webhook_certificate_reloads_total{result=\"success\"}")
                    .await?
                    >= 1.0
            );
            Ok(name)
        })
        .await
        .expect("local webhook scenario");
    hook.shutdown().await;

    for kind in [MUTATING, VALIDATING] {
        assert_eq!(
            fake.webhook_configuration(kind, &ns_name),
            None,
            "{kind} deleted"
        );
    }
    assert_eq!(fake.pods_in(&ns_name), 0, "pods deleted");
    assert_eq!(
        fake.namespace_labels(&ns_name),
        Value::Null,
        "namespace deleted"
    );
    assert_eq!(
        fake.count("DELETE", &format!("/api/v1/namespaces/{ns_name}")),
        1
    );
    assert_eq!(
        fake.count("DELETE", &format!("/api/v1/namespaces/{ns_name}/pods/p")),
        1
    );
}
