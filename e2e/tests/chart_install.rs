//! The real `helm upgrade --install` (Helm 3, then Helm 4) into the cluster of
//! `GMSA_E2E_KUBECONFIG` with an image (`GMSA_E2E_IMAGE`): `#[ignore]`d in the normal run,
//! run by scripts/e2e-cluster.

use gmsa_e2e::chart::{chart_dir, run, text, tools};
use std::process::Command;

/// What `helm install` left in the cluster, checked: the Secret the issue Job wrote, the
/// caBundle the patch Job copied from it into both webhook configurations, the hook RBAC gone,
/// both replicas ready. Returns the CA bundle.
async fn check_installed(client: kube::Client, release: &str, ns: &str) -> Vec<u8> {
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
    };
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::api::rbac::v1::ClusterRole;
    use kube::Api;
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get("gmsa-server-cert")
        .await
        .expect("the issue Job wrote Secret gmsa-server-cert");
    let data = secret.data.unwrap_or_default();
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(
            data.get(key).is_some_and(|v| !v.0.is_empty()),
            "Secret lacks {key}"
        );
    }
    let ca = data["ca.crt"].0.clone();
    let trimmed = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get(release)
        .await
        .expect("MutatingWebhookConfiguration");
    let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(release)
        .await
        .expect("ValidatingWebhookConfiguration");
    let bundles = [
        mutating.webhooks.unwrap_or_default()[0]
            .client_config
            .ca_bundle
            .clone(),
        validating.webhooks.unwrap_or_default()[0]
            .client_config
            .ca_bundle
            .clone(),
    ];
    for bundle in bundles {
        let bundle = bundle.expect("the patch Job set caBundle").0;
        assert_eq!(
            trimmed(&bundle),
            trimmed(&ca),
            "caBundle is the Secret's ca.crt"
        );
    }
    let hook_role = Api::<ClusterRole>::all(client.clone())
        .get_opt(&format!("{release}-certs-hook"))
        .await
        .expect("reading ClusterRoles");
    assert!(
        hook_role.is_none(),
        "the hook RBAC is deleted once the hooks succeeded"
    );
    let deploy = Api::<Deployment>::namespaced(client, ns)
        .get(release)
        .await
        .expect("the Deployment");
    assert_eq!(deploy.status.and_then(|s| s.ready_replicas), Some(2));
    ca
}

/// The cluster's own authorizer agrees with `chart_rbac.rs`'s offline evaluation: after the
/// install, no ServiceAccount of the release may do any of `rbac::FORBIDDEN`; the webhook's may
/// do each of `rbac::WEBHOOK_NEEDS`.
async fn least_privilege(cluster: &gmsa_e2e::cluster::Cluster, release: &str, ns: &str) {
    use gmsa_e2e::rbac::{FORBIDDEN, WEBHOOK_NEEDS};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let accounts = kube::Api::<ServiceAccount>::namespaced(cluster.client(), ns)
        .list(
            &kube::api::ListParams::default()
                .labels(&format!("app.kubernetes.io/instance={release}")),
        )
        .await
        .expect("listing the release's ServiceAccounts");
    let names: Vec<String> = accounts
        .items
        .iter()
        .filter_map(|a| a.metadata.name.clone())
        .collect();
    assert!(
        names.iter().any(|n| n == release),
        "the webhook's account is there: {names:?}"
    );
    for name in &names {
        for req in &FORBIDDEN {
            assert!(
                !cluster.allows(ns, name, req).await.expect("access review"),
                "{ns}/{name} may {req:?} after install"
            );
        }
    }
    for req in &WEBHOOK_NEEDS {
        assert!(
            cluster
                .allows(ns, release, req)
                .await
                .expect("access review"),
            "the webhook ({ns}/{release}) may not {req:?}"
        );
    }
}

/// One `helm upgrade --install` (Helm 3, then Helm 4) into the configured cluster gives a
/// webhook the API server trusts and calls, with no manual step; an upgrade keeps the
/// certificate; uninstall removes the release. Needs a cluster (`GMSA_E2E_KUBECONFIG`) and
/// `GMSA_E2E_IMAGE` (REPO:TAG of an image built from ./Dockerfile that the cluster can pull);
/// fails without either (run by scripts/e2e-cluster, skipped in the normal run).
#[tokio::test]
#[ignore = "real cluster: scripts/e2e-cluster"]
async fn helm_install_gives_a_working_webhook_with_no_manual_step() {
    use gmsa_e2e::cluster::{windows_pod, Cluster};
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::rbac::v1::ClusterRole;
    const TEST: &str = "helm_install_gives_a_working_webhook_with_no_manual_step";
    let cluster = Cluster::for_test(TEST).await;
    let image = std::env::var("GMSA_E2E_IMAGE").unwrap_or_else(|_| {
        panic!(
            "{TEST}: set GMSA_E2E_IMAGE to REPO:TAG of an image built from ./Dockerfile that the \
             cluster can pull, or leave this scenario out: scripts/e2e-cluster -E 'not test(/^helm_install/)'"
        )
    });
    let tools = tools();
    let (repo, tag) = image.rsplit_once(':').expect("GMSA_E2E_IMAGE is REPO:TAG");
    let kubeconfig = std::env::var_os("GMSA_E2E_KUBECONFIG").expect("a cluster is configured");
    let (release, ns) = ("gmsa-e2e-chart", "gmsa-e2e-chart");
    let chart = chart_dir();
    let (repo_set, tag_set) = (
        format!("image.repository={repo}"),
        format!("image.tag={tag}"),
    );
    let install = [
        "upgrade",
        "--install",
        release,
        chart.to_str().expect("utf-8"),
        "--namespace",
        ns,
        "--create-namespace",
        "--wait",
        "--timeout",
        "5m",
        "--set",
        &repo_set,
        "--set",
        &tag_set,
    ];
    for (label, bin) in &tools.helms {
        let helm_ok = |args: &[&str]| {
            let out = run(Command::new(bin).args(args).env("KUBECONFIG", &kubeconfig));
            assert!(
                out.status.success(),
                "{label} {args:?}:\n{}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        };
        let started = std::time::Instant::now();
        helm_ok(&install);
        eprintln!("{TEST}: {label} install took {:?}", started.elapsed());
        let ca = check_installed(cluster.client(), release, ns).await;
        least_privilege(&cluster, release, ns).await;
        cluster
            .with_namespace("chart", async |t| {
                t.service_account("webapp").await?;
                // Only a webhook the API server reached (so trusted the caBundle) names the spec.
                let missing = "gmsa-e2e-does-not-exist";
                let (code, message) = t
                    .rejects(&windows_pod("p", "webapp", Some(missing)))
                    .await?;
                assert!(code == 404 || code == 403, "{code}: {message}");
                assert!(message.contains(missing), "{message}");
                t.accepts(&windows_pod("plain", "default", None)).await?;
                Ok(())
            })
            .await
            .expect(TEST);
        helm_ok(&install);
        assert_eq!(
            check_installed(cluster.client(), release, ns).await,
            ca,
            "upgrade keeps the CA"
        );
        helm_ok(&["uninstall", release, "--namespace", ns, "--wait"]);
        let roles: kube::Api<ClusterRole> = kube::Api::all(cluster.client());
        assert!(roles
            .get_opt(release)
            .await
            .expect("reading ClusterRoles")
            .is_none());
    }
    let namespaces: kube::Api<Namespace> = kube::Api::all(cluster.client());
    namespaces
        .delete(ns, &kube::api::DeleteParams::background())
        .await
        .expect("deleting the release namespace");
}
