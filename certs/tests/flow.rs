//! The whole `issue`/`renew` flow through a real `kube::Client` against the testkit fake API
//! server, whose signer signs approved CSRs with a test CA.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use gmsa_certs::assess::{assess, Material};
use gmsa_certs::ca::{CaBundle, CaSource};
use gmsa_certs::cert::{inspect, now_unix, parse_pem_chain, rfc3339};
use gmsa_certs::flow::{issue, Action, IssueOptions, IssueReport, Progress};
use gmsa_certs::request::CertRequest;
use gmsa_certs::CertsError;
use gmsa_testkit::csr::{Call, CsrApi, SignerMode};
use gmsa_testkit::{FakeApiServer, RecordedRequest};
use serde_json::{json, Value};

const NS: &str = "gmsa";
const SVC: &str = "gmsa-webhook";
const SECRET: &str = "gmsa-webhook-tls";
const CSR: &str = "gmsa-webhook.gmsa";

struct Env {
    api: CsrApi,
    server: FakeApiServer,
}

async fn fake() -> Env {
    let api = CsrApi::new();
    let server = FakeApiServer::start(api.router()).await;
    Env { api, server }
}

/// A fake holding MutatingWebhookConfiguration `gmsa-webhook` with one webhook.
async fn fake_with_webhook() -> Env {
    let env = fake().await;
    env.api.insert_webhook(
        "mutating",
        webhook_config("gmsa-webhook", &["a.gmsa.k8s.io"]),
    );
    env
}

fn opts() -> IssueOptions {
    let mut o = IssueOptions::new(CertRequest::new(SVC, NS).expect("request"));
    o.secret = Some(SECRET.to_string());
    o.timeout = Duration::from_secs(10);
    o.progress_every = Duration::from_millis(200);
    o
}

fn is_write(r: &RecordedRequest) -> bool {
    matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
}

fn writes(env: &Env) -> Vec<String> {
    env.server
        .requests()
        .iter()
        .filter(|r| is_write(r))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

async fn run(env: &Env, o: &IssueOptions) -> (Result<IssueReport, CertsError>, Vec<Progress>) {
    let events = Mutex::new(Vec::new());
    let record = |p: &Progress| events.lock().expect("lock").push(p.clone());
    let result = issue(env.server.client(), o, &record).await;
    (result, events.into_inner().expect("events"))
}

fn webhook_config(name: &str, hooks: &[&str]) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": hooks.iter().map(|h| json!({
            "name": h,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "clientConfig": {"service": {"name": SVC, "namespace": NS, "path": "/mutate"}},
        })).collect::<Vec<_>>(),
    })
}

fn secret_pem(env: &Env, key: &str) -> Option<String> {
    let s = env.api.secret(NS, SECRET)?;
    let b64 = s["data"][key].as_str()?;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?).ok()
}

fn assert_secret_valid(env: &Env) {
    let bundle = CaBundle::from_pem(&env.api.ca_pem(), CaSource::Kubeconfig).expect("bundle");
    let (c, k, a) = (
        secret_pem(env, "tls.crt"),
        secret_pem(env, "tls.key"),
        secret_pem(env, "ca.crt"),
    );
    let m = Material {
        cert_pem: c.as_deref(),
        key_pem: k.as_deref(),
        ca_pem: a.as_deref(),
    };
    let req = CertRequest::new(SVC, NS).expect("request");
    let got = assess("Secret", &m, &req, &bundle, now_unix(), 0);
    assert!(got.is_valid(), "{got:?}");
    assert_eq!(
        env.api.secret(NS, SECRET).expect("secret")["type"],
        "kubernetes.io/tls"
    );
}

#[tokio::test]
async fn issues_writes_the_secret_and_files_and_patches_webhooks() {
    let env = fake().await;
    env.api.insert_webhook(
        "mutating",
        webhook_config("gmsa-webhook", &["a.gmsa.k8s.io", "b.gmsa.k8s.io"]),
    );
    let mut validating = webhook_config("gmsa-webhook", &["v.gmsa.k8s.io"]);
    validating["kind"] = json!("ValidatingWebhookConfiguration");
    env.api.insert_webhook("validating", validating);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = opts();
    o.patch_webhooks = vec!["gmsa-webhook".into()];
    o.certs_dir = Some(dir.path().join("certs"));
    let (result, events) = run(&env, &o).await;
    let out = result.expect("issued");
    assert_eq!(out.action, Action::Issued);
    assert_eq!(out.csr_name, CSR);
    assert_eq!(
        out.webhooks_patched,
        vec![
            "mutatingwebhookconfiguration/gmsa-webhook",
            "validatingwebhookconfiguration/gmsa-webhook"
        ]
    );
    let cert = out.certificate.expect("certificate");
    assert!(cert
        .dns_names
        .contains(&"gmsa-webhook.gmsa.svc".to_string()));
    assert_eq!(out.ca_source, "ConfigMap gmsa/kube-root-ca.crt");
    assert_secret_valid(&env);

    // The CSR: ours, approved by gmsa, with the requested duration.
    let csr = env.api.csr(CSR).expect("CSR stored");
    assert_eq!(
        csr["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "gmsa"
    );
    assert_eq!(csr["spec"]["expirationSeconds"], 365 * 86_400);
    assert_eq!(csr["spec"]["signerName"], "kubernetes.io/kubelet-serving");
    let approved = &csr["status"]["conditions"][0];
    assert_eq!(
        (approved["type"].as_str(), approved["reason"].as_str()),
        (Some("Approved"), Some("GmsaApproved"))
    );

    // Every webhook in both configurations carries the CA.
    let b64 = base64::engine::general_purpose::STANDARD.encode(env.api.ca_pem());
    for kind in ["mutating", "validating"] {
        let cfg = env.api.webhook(kind, "gmsa-webhook").expect("config");
        for hook in cfg["webhooks"].as_array().expect("webhooks") {
            assert_eq!(hook["clientConfig"]["caBundle"], b64, "{kind}");
            assert_eq!(
                hook["clientConfig"]["service"]["name"], SVC,
                "rest of clientConfig kept"
            );
        }
    }

    // The files: same pair as the Secret, key 0600.
    use std::os::unix::fs::PermissionsExt as _;
    let files = dir.path().join("certs");
    assert_eq!(
        std::fs::read_to_string(files.join("tls.crt")).ok(),
        secret_pem(&env, "tls.crt")
    );
    assert_eq!(
        std::fs::read_to_string(files.join("tls.key")).ok(),
        secret_pem(&env, "tls.key")
    );
    let mode = std::fs::metadata(files.join("tls.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Exactly one write to the Secret; progress reported while waiting.
    let w = writes(&env);
    assert_eq!(
        w.iter().filter(|c| c.contains("/secrets")).count(),
        1,
        "{w:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Progress::Waiting { what, .. } if what.contains(CSR))),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_second_run_with_a_valid_certificate_writes_nothing() {
    let env = fake_with_webhook().await;
    let mut o = opts();
    o.patch_webhooks = vec!["gmsa-webhook".into()];
    run(&env, &o).await.0.expect("first run");
    let before = writes(&env).len();
    let serial = secret_pem(&env, "tls.crt");
    let out = run(&env, &o).await.0.expect("second run");
    assert_eq!(out.action, Action::Unchanged);
    assert!(out.webhooks_patched.is_empty());
    assert_eq!(writes(&env).len(), before, "{:?}", writes(&env));
    assert_eq!(secret_pem(&env, "tls.crt"), serial);
}

#[tokio::test]
async fn overwrite_and_renewal_replace_the_secret_in_one_write() {
    let env = fake().await;
    let mut existing = opts();
    existing.secret = Some(SECRET.into());
    run(&env, &existing).await.0.expect("first run");
    let first = secret_pem(&env, "tls.crt");
    env.api.insert_secret({
        let mut s = env.api.secret(NS, SECRET).expect("secret");
        s["metadata"]["labels"]["team"] = json!("platform");
        s
    });

    let mut o = opts();
    o.overwrite = true;
    let out = run(&env, &o).await.0.expect("overwrite");
    assert_eq!(
        (out.action, out.reason.as_str()),
        (Action::Issued, "--overwrite")
    );
    assert_ne!(secret_pem(&env, "tls.crt"), first);
    assert_secret_valid(&env);
    assert_eq!(
        env.api.secret(NS, SECRET).expect("secret")["metadata"]["labels"]["team"],
        "platform"
    );

    // The signer caps certificates at 2 hours: renewal with a 720h window re-issues each time
    // and warns about it.
    env.api.set_max_duration(7200);
    let mut renew = opts();
    renew.renew_before = Duration::from_secs(720 * 3600);
    renew.overwrite = true;
    let out = run(&env, &renew).await.0.expect("renew");
    renew.overwrite = false;
    assert_eq!(out.action, Action::Issued, "{}", out.reason);
    assert!(
        out.warnings.iter().any(|w| w.contains("renewal window")),
        "{:?}",
        out.warnings
    );
    let before = writes(&env);
    let out = run(&env, &renew).await.0.expect("renew again");
    assert_eq!(out.action, Action::Issued);
    assert!(
        out.reason.contains("within the renewal window"),
        "{}",
        out.reason
    );
    let after = writes(&env);
    let secret_writes: Vec<&String> = after[before.len()..]
        .iter()
        .filter(|c| c.contains("/secrets"))
        .collect();
    assert_eq!(
        secret_writes,
        vec![&format!("PUT /api/v1/namespaces/{NS}/secrets/{SECRET}")]
    );
    // Shorter window: the 2-hour certificate is kept.
    renew.renew_before = Duration::from_secs(3600);
    assert_eq!(
        run(&env, &renew).await.0.expect("no-op").action,
        Action::Unchanged
    );
}

#[tokio::test]
async fn denied_csr_reports_the_reason_and_writes_no_secret() {
    let env = fake().await;
    env.api.set_signer_mode(SignerMode::Deny {
        reason: "PolicyDenied".into(),
        message: "serving certificates for gmsa are not allowed here".into(),
    });
    for approve in [true, false] {
        let mut o = opts();
        o.approve = approve;
        let err = run(&env, &o).await.0.expect_err("denied");
        let text = err.to_string();
        assert!(matches!(err, CertsError::Denied { .. }), "{text}");
        assert!(
            text.contains("PolicyDenied") && text.contains("not allowed here"),
            "{text}"
        );
    }
    assert!(env.api.secret(NS, SECRET).is_none());
}

#[tokio::test]
async fn failed_csr_reports_the_signers_condition() {
    let env = fake().await;
    let captured = gmsa_testkit::fixture("k8s-1.32/api/csr-failed-bad-subject.json");
    let cond = &captured["status"]["conditions"][1];
    env.api.set_signer_mode(SignerMode::Fail {
        reason: cond["reason"].as_str().expect("reason").into(),
        message: cond["message"].as_str().expect("message").into(),
    });
    let err = run(&env, &opts()).await.0.expect_err("failed");
    let text = err.to_string();
    assert!(
        text.contains("SignerValidationFailure: subject organization is not system:nodes"),
        "{text}"
    );
    assert!(text.contains("--signer"), "{text}");
    assert!(env.api.secret(NS, SECRET).is_none());
}

#[tokio::test]
async fn a_signer_that_never_signs_times_out_naming_it() {
    let env = fake().await;
    env.api.set_signer_mode(SignerMode::Never);
    let mut o = opts();
    o.request.signer = "example.com/nobody-runs-this".into();
    o.timeout = Duration::from_millis(1200);
    let start = Instant::now();
    let err = run(&env, &o).await.0.expect_err("timeout");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1200) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("example.com/nobody-runs-this") && text.contains("--signer"),
        "{text}"
    );
    assert!(text.contains("approved but no controller signs"), "{text}");

    // Not approved at all: the message says how to approve.
    let env = env_with(SignerMode::Sign).await;
    let mut o = opts();
    o.approve = false;
    o.timeout = Duration::from_millis(800);
    let text = run(&env, &o).await.0.expect_err("timeout").to_string();
    assert!(
        text.contains("kubectl certificate approve gmsa-webhook.gmsa")
            && text.contains("--approve"),
        "{text}"
    );
}

async fn env_with(mode: SignerMode) -> Env {
    let env = fake().await;
    env.api.set_signer_mode(mode);
    env
}

#[tokio::test]
async fn forbidden_calls_name_the_rbac_rule() {
    // (call, setup, expected text in the error)
    let table: &[(Call, &str, &str)] = &[
        (
            Call::CreateCsr,
            "",
            "verb \"create\" on certificatesigningrequests",
        ),
        (
            Call::GetCsr,
            "",
            "verb \"get\" on certificatesigningrequests",
        ),
        (
            Call::ListCsr,
            "",
            "verbs \"list\" and \"watch\" on certificatesigningrequests",
        ),
        (
            Call::DeleteCsr,
            "stale-csr",
            "verb \"delete\" on certificatesigningrequests",
        ),
        (
            Call::Approve,
            "",
            "\"update\" on certificatesigningrequests/approval",
        ),
        (
            Call::ApproveSigner,
            "",
            "verb \"approve\" on signers with resourceNames [\"kubernetes.io/kubelet-serving\"]",
        ),
        (
            Call::GetSecret,
            "",
            "\"get\", \"create\", \"update\" on secrets in namespace gmsa",
        ),
        (
            Call::CreateSecret,
            "",
            "\"get\", \"create\", \"update\" on secrets in namespace gmsa",
        ),
        (
            Call::ReplaceSecret,
            "secret",
            "\"get\", \"create\", \"update\" on secrets in namespace gmsa",
        ),
        (
            Call::GetWebhook,
            "",
            "\"get\" and \"patch\" on mutatingwebhookconfigurations",
        ),
        (
            Call::PatchWebhook,
            "",
            "\"get\" and \"patch\" on mutatingwebhookconfigurations",
        ),
    ];
    for (call, setup, want) in table {
        let env = fake_with_webhook().await;
        let mut o = opts();
        o.patch_webhooks = vec!["gmsa-webhook".into()];
        match *setup {
            "stale-csr" => {
                run(&env, &o).await.0.expect("first run");
                o.overwrite = true;
            }
            "secret" => {
                run(&env, &o).await.0.expect("first run");
                o.overwrite = true;
            }
            _ => {}
        }
        env.api.forbid(*call);
        let err = run(&env, &o).await.0.expect_err("forbidden");
        let text = err.to_string();
        assert!(
            matches!(err, CertsError::Forbidden { .. }),
            "{call:?}: {text}"
        );
        assert!(text.contains(want), "{call:?}: {text}");
        assert!(
            text.contains("is forbidden"),
            "{call:?}: the API server's message is kept: {text}"
        );
    }
}

#[tokio::test]
async fn without_the_configmap_the_kubeconfig_ca_is_used() {
    for forbid in [false, true] {
        let env = fake().await;
        if forbid {
            env.api.forbid(Call::GetConfigMap);
        } else {
            env.api.set_root_ca_configmap(false);
        }
        let mut o = opts();
        o.kubeconfig_ca = Some(parse_pem_chain(&env.api.ca_pem(), "ca").expect("ca"));
        let out = run(&env, &o).await.0.expect("issued");
        assert_eq!(out.ca_source, "the kubeconfig's cluster CA");
        assert_eq!(
            out.warnings
                .iter()
                .any(|w| w.contains("not allowed to read ConfigMap")),
            forbid,
            "{:?}",
            out.warnings
        );
        assert_secret_valid(&env);
    }
    // Neither: a clear error.
    let env = fake().await;
    env.api.set_root_ca_configmap(false);
    let err = run(&env, &opts()).await.0.expect_err("no CA");
    assert!(err.to_string().contains("--ca-file"), "{err}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_before_writing() {
    let env = fake().await;
    let other = CsrApi::new();
    let mut o = opts();
    o.ca_file = Some(("other-ca.crt".into(), other.ca_pem()));
    let err = run(&env, &o).await.0.expect_err("untrusted");
    let text = err.to_string();
    assert!(matches!(err, CertsError::UntrustedChain { .. }), "{text}");
    assert!(text.contains("--ca-file other-ca.crt"), "{text}");
    assert!(env.api.secret(NS, SECRET).is_none(), "nothing written");
}

#[tokio::test]
async fn dry_run_sends_no_writes_and_prints_the_plan() {
    let env = fake_with_webhook().await;
    let mut o = opts();
    o.dry_run = true;
    o.patch_webhooks = vec!["gmsa-webhook".into()];
    let dir = tempfile::tempdir().expect("tempdir");
    o.certs_dir = Some(dir.path().join("out"));
    let out = run(&env, &o).await.0.expect("dry run");
    assert_eq!(out.action, Action::DryRun);
    assert!(
        env.server.requests().iter().all(|r| !is_write(r)),
        "{:?}",
        env.server.requests()
    );
    assert!(env.api.csr(CSR).is_none() && env.api.secret(NS, SECRET).is_none());
    assert!(!dir.path().join("out").exists(), "no files");
    let planned: Vec<String> = out
        .calls
        .iter()
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    for want in [
        "POST /apis/certificates.k8s.io/v1/certificatesigningrequests",
        "PUT /apis/certificates.k8s.io/v1/certificatesigningrequests/gmsa-webhook.gmsa/approval",
        "POST /api/v1/namespaces/gmsa/secrets",
        "PATCH /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/gmsa-webhook",
    ] {
        assert!(
            planned.iter().any(|p| p == want),
            "{want} not in {planned:?}"
        );
    }
    let csr = out.csr_object.expect("CSR object");
    assert_eq!(csr["spec"]["signerName"], "kubernetes.io/kubelet-serving");
    assert_eq!(csr["metadata"]["name"], CSR);
}

#[tokio::test]
async fn stale_csrs_are_replaced_only_when_ours() {
    let env = fake().await;
    // Ours from an earlier run: replaced.
    run(&env, &opts()).await.0.expect("first");
    let mut o = opts();
    o.overwrite = true;
    run(&env, &o).await.0.expect("second");
    let deletes = env
        .server
        .count("DELETE", &gmsa_testkit::csr::csr_path(CSR));
    assert_eq!(deletes, 1);

    // Someone else's: refused with the fix.
    let env = fake().await;
    let mut foreign = gmsa_testkit::fixture("k8s-1.32/api/csr-issued.json");
    foreign["metadata"]["name"] = json!(CSR);
    env.api.insert_csr(foreign);
    let err = run(&env, &opts()).await.0.expect_err("foreign");
    let text = err.to_string();
    assert!(
        text.contains("kubectl delete csr gmsa-webhook.gmsa") && text.contains("--csr-name"),
        "{text}"
    );
    assert_eq!(
        env.server
            .count("DELETE", &gmsa_testkit::csr::csr_path(CSR)),
        0
    );
}

#[tokio::test]
async fn wrong_secret_type_and_unknown_webhook_are_clear_errors() {
    let env = fake().await;
    env.api.insert_secret(
        json!({"metadata": {"name": SECRET, "namespace": NS}, "type": "Opaque", "data": {}}),
    );
    let text = run(&env, &opts()).await.0.expect_err("type").to_string();
    assert!(
        text.contains("type \"Opaque\"") && text.contains("delete it"),
        "{text}"
    );

    let env = fake().await;
    let mut o = opts();
    o.patch_webhooks = vec!["nope".into()];
    let text = run(&env, &o).await.0.expect_err("no webhook").to_string();
    assert!(
        text.contains("\"nope\"") && text.contains("kubectl get mutatingwebhookconfigurations"),
        "{text}"
    );
    assert!(
        env.api.csr(CSR).is_none() && env.api.secret(NS, SECRET).is_none(),
        "checked before issuing"
    );
}

/// The `caBundle` (decoded, as DER certificates) and the retained-CA annotation op of the last
/// patch sent to MutatingWebhookConfiguration `gmsa-webhook`.
fn last_patch(env: &Env) -> (Vec<Vec<u8>>, Option<Value>) {
    let patches = env.api.webhook_patches("mutating", "gmsa-webhook");
    let ops = patches
        .last()
        .and_then(Value::as_array)
        .expect("a JSON patch");
    let b64 = ops
        .iter()
        .find(|op| op["path"] == "/webhooks/0/clientConfig/caBundle")
        .and_then(|op| op["value"].as_str())
        .expect("caBundle set");
    let pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64"),
    )
    .expect("PEM");
    let note = ops
        .iter()
        .find(|op| {
            op["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/metadata/annotations"))
        })
        .cloned();
    (
        parse_pem_chain(&pem, "caBundle").expect("certificates"),
        note,
    )
}

#[tokio::test]
async fn a_ca_change_keeps_the_old_ca_until_the_old_certificate_expires() {
    let env = fake_with_webhook().await;
    let mut o = opts();
    o.patch_webhooks = vec!["gmsa-webhook".into()];
    o.renew_before = Duration::from_secs(600);
    // A 2-hour certificate from the first CA.
    env.api.set_max_duration(7200);
    run(&env, &o).await.0.expect("first run");
    let old_ca = parse_pem_chain(&env.api.ca_pem(), "old CA").expect("old CA");
    let old_cert = secret_pem(&env, "tls.crt").expect("tls.crt");
    let old_until = inspect(&parse_pem_chain(&old_cert, "t").expect("cert")[0], "t")
        .expect("inspect")
        .not_after;
    let (bundle, _) = last_patch(&env);
    assert_eq!(bundle, old_ca, "first run: the CA alone");

    // The cluster CA rotates: the signer and kube-root-ca.crt hold a new CA.
    env.api.rotate_ca();
    env.api.set_max_duration(365 * 86_400);
    let new_ca = parse_pem_chain(&env.api.ca_pem(), "new CA").expect("new CA");
    let out = run(&env, &o).await.0.expect("second run");
    assert_eq!(out.action, Action::Issued);
    assert!(out.reason.contains("does not chain"), "{}", out.reason);
    assert_secret_valid(&env);
    let (bundle, note) = last_patch(&env);
    assert_eq!(
        bundle,
        [new_ca.clone(), old_ca].concat(),
        "the new CA, then the old one the pods still serve under"
    );
    let note = note.expect("annotation written in the same patch");
    assert!(
        note.to_string().contains(&rfc3339(old_until))
            && note.to_string().contains("retained-ca-until"),
        "{note}"
    );
    let patch_call = out
        .calls
        .iter()
        .find(|c| c.method == "PATCH")
        .expect("PATCH call");
    assert!(
        patch_call.what.contains("CN=gmsa-testkit-ca until"),
        "{}",
        patch_call.what
    );

    // Again before the old certificate expires: the Secret holds the new certificate, yet the
    // annotation keeps the old CA: nothing to write.
    let before = writes(&env);
    let out = run(&env, &o).await.0.expect("third run");
    assert_eq!(out.action, Action::Unchanged);
    assert_eq!(writes(&env), before);

    // After it expired (the clock injected): the old CA and the annotation go.
    o.now = Some(old_until + 60);
    let out = run(&env, &o).await.0.expect("fourth run");
    assert_eq!(out.action, Action::Unchanged, "{}", out.reason);
    assert_eq!(
        out.webhooks_patched,
        vec!["mutatingwebhookconfiguration/gmsa-webhook"]
    );
    let (bundle, note) = last_patch(&env);
    assert_eq!(bundle, new_ca, "only the new CA");
    assert_eq!(note.map(|n| n["op"].clone()), Some(json!("remove")));
    let stored = env.api.webhook("mutating", "gmsa-webhook").expect("config");
    assert!(
        stored["metadata"]["annotations"]
            .as_object()
            .is_none_or(|a| a.is_empty()),
        "{stored}"
    );
}
