//! `gmsa certs issue` against a real cluster, ending with the API server trusting the result.
//!
//! Needs a real cluster (`GMSA_E2E_KUBECONFIG`; see `gmsa_e2e::cluster`): `#[ignore]`d in the
//! normal run, run by scripts/e2e-cluster, and failing when run without one. Needs: the
//! built-in `kubernetes.io/kubelet-serving` signer (kube-controller-manager's csrsigning
//! controller, on by default with kubeadm/kind), RBAC to create/approve CSRs, and an API server
//! that can reach this machine at `GMSA_E2E_WEBHOOK_HOST` (default `127.0.0.1`: an API server
//! running on this host, like the one the captures were taken from).
//!
//! What it does, in a fresh namespace `gmsa-e2e-certs-…`:
//! 1. registers a MutatingWebhookConfiguration (pods, CREATE, only that namespace,
//!    `failurePolicy: Fail`) whose URL is `https://HOST:PORT/mutate` on this machine, with a
//!    `caBundle` of an unrelated CA;
//! 2. runs the issue flow (`gmsa_certs::flow::issue`, what `gmsa certs issue --service
//!    gmsa-e2e-webhook --secret … --certs-dir … --ip HOST --duration 1h --approve` runs):
//!    CSR created and approved, signed by the controller-manager's kubelet-serving signer,
//!    checked (key, names, chain to the namespace's `kube-root-ca.crt`), written to a Secret and
//!    a directory;
//! 3. starts the gmsa webhook in-process in standalone mode (empty credspecs directory,
//!    `--allow-all-use`) serving the issued `tls.crt`/`tls.key` from that directory on PORT;
//! 4. control: with the unrelated CA still registered, a dry-run pod create fails with
//!    "failed calling webhook" (the API server does not trust the server);
//! 5. runs issue again with `--patch-webhook`: the valid certificate is kept and the
//!    `caBundle` is set; then a pod naming a missing credspec is denied *by our webhook*
//!    (`admission webhook "…" denied the request`) and a pod without GMSA is admitted: the API
//!    server called the webhook over TLS, trusting the patched `caBundle`;
//! 6. a third run changes nothing (no new certificate, no patch).
//!
//! The webhook configuration and the CSR are deleted afterwards; the namespace by the harness.

use std::time::Duration;

use clap::Parser as _;
use gmsa_certs::flow::{issue, Action, IssueOptions, Progress};
use gmsa_certs::request::CertRequest;
use gmsa_e2e::cluster::{windows_pod, Cluster};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use serde_json::json;

const SERVICE: &str = "gmsa-e2e-webhook";
const HOOK: &str = "certs.gmsa-e2e.k8s.io";

fn progress(p: &Progress) {
    eprintln!("certs e2e: {p:?}");
}

fn webhook_config(name: &str, ns: &str, url: &str, ca_pem: &str) -> MutatingWebhookConfiguration {
    use base64::Engine as _;
    serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "gmsa-e2e"}},
        "webhooks": [{
            "name": HOOK,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
            "clientConfig": {
                "url": url,
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            },
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
        }],
    }))
    .expect("webhook configuration")
}

#[tokio::test]
#[ignore = "real cluster: scripts/e2e-cluster"]
async fn issued_certificate_is_trusted_by_the_api_server() {
    let test = "issued_certificate_is_trusted_by_the_api_server";
    let cluster = Cluster::for_test(test).await;
    let client = cluster.client();
    let host = gmsa_e2e::local_webhook::webhook_host();
    let result = cluster
        .with_namespace("certs", async |ns| {
            let ns_name = ns.name().to_string();
            let tmp = tempfile::tempdir()?;
            let certs_dir = tmp.path().join("certs");
            let credspecs = tmp.path().join("credspecs");
            std::fs::create_dir_all(&credspecs)?;
            // A free port for the webhook, known before the configuration is registered.
            let port = std::net::TcpListener::bind((host.as_str(), 0))?
                .local_addr()?
                .port();
            let url = format!("https://{host}:{port}/mutate");
            let config_name = ns_name.clone();

            // The namespace's kube-root-ca.crt appears shortly after the namespace.
            let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns_name);
            gmsa_e2e::cluster::wait_for(Duration::from_secs(30), "kube-root-ca.crt", || async {
                Ok(cms.get_opt("kube-root-ca.crt").await?.is_some())
            })
            .await?;

            // 1. Registered with an unrelated CA.
            let bogus = rcgen::generate_simple_self_signed(vec!["bogus".to_string()])?;
            let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
            configs
                .create(
                    &PostParams::default(),
                    &webhook_config(&config_name, &ns_name, &url, &bogus.cert.pem()),
                )
                .await?;
            let outcome = async {
                // 3. The webhook, serving the issued pair from the directory (started after
                // issuing, below); 2. issue.
                let mut request = CertRequest::new(SERVICE, &ns_name)?;
                match host.parse() {
                    Ok(ip) => request.ips = vec![ip],
                    Err(_) => request.extra_dns = vec![host.clone()],
                }
                let mut opts = IssueOptions::new(request);
                opts.secret = Some("gmsa-e2e-webhook-tls".into());
                opts.certs_dir = Some(certs_dir.clone());
                opts.duration = Some(Duration::from_secs(3600));
                opts.renew_before = Duration::from_secs(600);
                opts.timeout = Duration::from_secs(120);

                let issued = issue(client.clone(), &opts, &progress).await?;
                anyhow::ensure!(
                    issued.action == Action::Issued,
                    "first run: {:?}",
                    issued.action
                );

                let webhook_config = gmsa_webhook::config::Config::try_parse_from([
                    "gmsa-webhook".to_string(),
                    "--tls-crt".into(),
                    certs_dir.join("tls.crt").display().to_string(),
                    "--tls-key".into(),
                    certs_dir.join("tls.key").display().to_string(),
                    "--bind-address".into(),
                    host.parse::<std::net::IpAddr>()
                        .map(|ip| ip.to_string())
                        .unwrap_or_else(|_| "127.0.0.1".into()),
                    "--https-port".into(),
                    port.to_string(),
                    "--admin-port".into(),
                    "0".into(),
                    "--credspecs-dir".into(),
                    credspecs.display().to_string(),
                    "--allow-all-use".into(),
                ])?;
                let webhook = gmsa_webhook::Webhook::start(&webhook_config).await?;

                // 4. Control: the webhook serves the issued certificate, but the configuration
                // still holds the unrelated CA: the API server cannot call it.
                let mut control = String::new();
                for _ in 0..50 {
                    match ns.rejects(&windows_pod("control", "default", None)).await {
                        Ok((_, message)) if message.contains("failed calling webhook") => {
                            control = message;
                            break;
                        }
                        Ok((code, message)) => control = format!("unexpected {code}: {message}"),
                        Err(e) => {
                            control = format!("admitted (configuration not active yet?): {e:#}")
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                anyhow::ensure!(
                    control.contains("failed calling webhook"),
                    "control: {control}"
                );

                // 2b. The same issue run with --patch-webhook: the certificate in place is kept,
                // the caBundle is set.
                opts.patch_webhooks = vec![config_name.clone()];
                let patched = issue(client.clone(), &opts, &progress).await?;
                anyhow::ensure!(
                    patched.action == Action::Unchanged,
                    "second run: {:?}",
                    patched.action
                );
                anyhow::ensure!(
                    patched.webhooks_patched
                        == vec![format!("mutatingwebhookconfiguration/{config_name}")],
                    "patched: {:?}",
                    patched.webhooks_patched
                );

                // 5. The API server calls it over TLS, trusting the patched caBundle. The
                // configuration change reaches the API server's webhook cache within seconds.
                let mut last = String::new();
                let mut trusted = false;
                for _ in 0..50 {
                    match ns
                        .rejects(&windows_pod(
                            "gmsa-missing",
                            "default",
                            Some("gmsa-e2e-missing"),
                        ))
                        .await
                    {
                        Ok((_, message))
                            if message.contains(&format!(
                                "admission webhook \"{HOOK}\" denied the request"
                            )) =>
                        {
                            trusted = true;
                            break;
                        }
                        Ok((code, message)) => last = format!("{code}: {message}"),
                        Err(e) => last = format!("{e:#}"),
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let admitted = ns.accepts(&windows_pod("plain", "default", None)).await;
                webhook.shutdown().await;
                anyhow::ensure!(
                    trusted,
                    "the API server never got a denial from our webhook; last answer: {last}"
                );
                admitted?;

                // 6. Idempotent: nothing left to do.
                let again = issue(client.clone(), &opts, &progress).await?;
                anyhow::ensure!(
                    again.action == Action::Unchanged && again.webhooks_patched.is_empty(),
                    "third run: {:?} ({}), patched {:?}",
                    again.action,
                    again.reason,
                    again.webhooks_patched
                );
                anyhow::Ok(())
            }
            .await;
            let _ = configs.delete(&config_name, &DeleteParams::default()).await;
            let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
            let _ = csrs
                .delete(&format!("{SERVICE}.{ns_name}"), &DeleteParams::default())
                .await;
            outcome
        })
        .await;
    if let Err(e) = result {
        panic!("{test}: {e:#}");
    }
}
