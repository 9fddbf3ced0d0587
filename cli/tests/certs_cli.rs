//! `gmsa certs` run as a binary against the testkit fake API server, through a generated
//! kubeconfig file pointing at the fake's URL.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use gmsa_testkit::csr::{CsrApi, SignerMode};
use gmsa_testkit::FakeApiServer;
use serde_json::{json, Value};

struct Env {
    api: CsrApi,
    server: FakeApiServer,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

async fn fake() -> Env {
    let api = CsrApi::new();
    let server = FakeApiServer::start(api.router()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: tester\n  user:\n    token: not-a-secret\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: gmsa\ncurrent-context: fake\n",
        server.url()
    );
    std::fs::write(&kubeconfig, text).expect("write kubeconfig");
    Env {
        api,
        server,
        dir,
        kubeconfig,
    }
}

async fn gmsa(env: &Env, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gmsa"));
    cmd.arg("certs")
        .args(args)
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .env_remove("KUBECONFIG")
        .env("HOME", env.dir.path());
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("gmsa finished within 60s")
        .expect("run gmsa")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `gmsa certs` with the arguments of `line` split at whitespace (none of them hold spaces).
async fn gmsa_line(env: &Env, line: &str) -> Output {
    gmsa(env, &line.split_whitespace().collect::<Vec<_>>()).await
}

/// The output of a run that must have succeeded.
fn succeeded(out: &Output) -> (String, String) {
    let (stdout, stderr) = text(out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

fn writes(env: &Env) -> usize {
    env.server
        .requests()
        .iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        .count()
}

fn webhook(name: &str) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{"name": "m.gmsa.k8s.io", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"name": "gmsa-webhook", "namespace": "gmsa"}}}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_hook_and_cronjob_commands_work_as_written() {
    let env = fake().await;
    env.api.insert_webhook("mutating", webhook("gmsa-webhook"));
    // The hook Job.
    let hook = [
        "issue",
        "--service",
        "gmsa-webhook",
        "--namespace",
        "gmsa",
        "--secret",
        "gmsa-webhook-tls",
        "--approve",
        "--patch-webhook",
        "gmsa-webhook",
    ];
    let out = gmsa(&env, &hook).await;
    let (stdout, stderr) = succeeded(&out);
    assert!(
        stdout.contains("Issued a certificate for gmsa-webhook.gmsa.svc"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Secret:     gmsa/gmsa-webhook-tls"),
        "{stdout}"
    );
    assert!(
        stdout.contains("mutatingwebhookconfiguration/gmsa-webhook"),
        "{stdout}"
    );
    assert!(
        stderr.contains("gmsa: waiting for CertificateSigningRequest gmsa-webhook.gmsa"),
        "{stderr}"
    );
    assert!(env.api.secret("gmsa", "gmsa-webhook-tls").is_some());

    // Re-running the hook changes nothing.
    let before = writes(&env);
    let out = gmsa(&env, &hook).await;
    let (stdout, _) = succeeded(&out);
    assert!(stdout.contains("Nothing to do"), "{stdout}");
    assert_eq!(writes(&env), before);

    // The CronJob.
    let cron = [
        "renew",
        "--service",
        "gmsa-webhook",
        "--namespace",
        "gmsa",
        "--secret",
        "gmsa-webhook-tls",
        "--renew-before",
        "720h",
        "--patch-webhook",
        "gmsa-webhook",
        "-o",
        "json",
    ];
    let out = gmsa(&env, &cron).await;
    let (stdout, _) = succeeded(&out);
    let summary: Value = serde_json::from_str(&stdout).expect("JSON summary");
    assert_eq!(summary["action"], "unchanged");
    assert_eq!(summary["secret"], "gmsa/gmsa-webhook-tls");
    assert_eq!(writes(&env), before);

    // Inside the renewal window (a 9000h window is longer than the 1-year certificate).
    let mut due = cron.to_vec();
    due[8] = "9000h";
    let out = gmsa(&env, &due).await;
    let (stdout, _) = succeeded(&out);
    let summary: Value = serde_json::from_str(&stdout).expect("JSON summary");
    assert_eq!(summary["action"], "issued");
    assert!(
        summary["certificate"]["dnsNames"]
            .as_array()
            .is_some_and(|a| a.len() == 4),
        "{summary}"
    );
    assert!(
        env.server
            .count("PUT", "/api/v1/namespaces/gmsa/secrets/gmsa-webhook-tls")
            == 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_csr_and_calls_and_writes_nothing() {
    let env = fake().await;
    let out = gmsa_line(&env, "issue --service gmsa-webhook --secret tls --dry-run").await;
    let (stdout, _) = succeeded(&out);
    assert!(
        stdout.contains("kind: CertificateSigningRequest"),
        "{stdout}"
    );
    assert!(
        stdout.contains("signerName: kubernetes.io/kubelet-serving"),
        "{stdout}"
    );
    assert!(
        stdout.contains("POST /apis/certificates.k8s.io/v1/certificatesigningrequests"),
        "{stdout}"
    );
    assert!(
        stdout.contains("POST /api/v1/namespaces/gmsa/secrets"),
        "namespace from the context: {stdout}"
    );
    assert_eq!(writes(&env), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certs_dir_then_inspect_the_file_and_the_secret() {
    let env = fake().await;
    let dir = env.dir.path().join("certs");
    let dir_s = dir.to_str().expect("utf8 path");
    let out = gmsa(
        &env,
        &[
            "issue",
            "--service",
            "w",
            "--secret",
            "w-tls",
            "--certs-dir",
            dir_s,
            "--duration",
            "48h",
        ],
    )
    .await;
    succeeded(&out);

    let cert = dir.join("tls.crt");
    let out = gmsa(
        &env,
        &[
            "inspect",
            "--cert",
            cert.to_str().expect("utf8"),
            "--warn-before",
            "24h",
        ],
    )
    .await;
    let (stdout, _) = succeeded(&out);
    assert!(
        stdout.contains("w.gmsa.svc.cluster.local") && stdout.contains("Key:        matches"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Issuer:     CN=gmsa-testkit-ca"),
        "{stdout}"
    );

    let out = gmsa_line(&env, "inspect --secret w-tls --warn-before 72h -o json").await;
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expires within 72h: {stdout}\n{stderr}"
    );
    let report: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["expiresWithinWarnWindow"], true);
    assert_eq!(report["keyMatches"], true);
    assert!(stderr.contains("expires within 3d0h"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_fix() {
    let env = fake().await;
    env.api.set_signer_mode(SignerMode::Never);
    // (arguments, exit code when checked, what stderr must say)
    let table: &[(&str, Option<i32>, &[&str])] = &[
        (
            "issue --service w --secret t --timeout 1s",
            Some(1),
            &["timed out after 1s", "--signer"],
        ),
        (
            "issue --service w --secret t --key-type rsa2048",
            Some(1),
            &["--key-file"],
        ),
        (
            "issue --service w --secret t --duration 5m",
            None,
            &["minimum for spec.expirationSeconds is 10m"],
        ),
        (
            "issue --service w",
            None,
            &["--secret NAME and/or --certs-dir DIR"],
        ),
        (
            "issue --service W_bad --secret t",
            None,
            &["invalid service name"],
        ),
    ];
    for (line, code, needles) in table {
        let out = gmsa_line(&env, line).await;
        let (_, stderr) = text(&out);
        if let Some(code) = code {
            assert_eq!(out.status.code(), Some(*code), "{line}");
        }
        for needle in *needles {
            assert!(stderr.contains(needle), "{line}: {stderr}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_key_file_is_used_with_key_encipherment() {
    let env = fake().await;
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs/tests/data/rsa2048-pkcs8.pem");
    let out = gmsa(
        &env,
        &[
            "issue",
            "--service",
            "w",
            "--secret",
            "t",
            "--key-type",
            "rsa2048",
            "--key-file",
            key.to_str().expect("utf8"),
        ],
    )
    .await;
    succeeded(&out);
    let csr = env.api.csr("w.gmsa").expect("csr");
    assert_eq!(
        csr["spec"]["usages"],
        json!(["digital signature", "key encipherment", "server auth"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_midway_leaves_the_secret_and_files_as_they_were() {
    let env = fake().await;
    let dir = env.dir.path().join("certs");
    let dir_s = dir.to_str().expect("utf8 path");
    let base = [
        "issue",
        "--service",
        "w",
        "--secret",
        "w-tls",
        "--certs-dir",
        dir_s,
    ];
    let out = gmsa(&env, &base).await;
    succeeded(&out);
    let secret_before = env.api.secret("gmsa", "w-tls").expect("secret")["data"].clone();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("read");
    let files_before = (read("tls.crt"), read("tls.key"), read("ca.crt"));
    let first_csr_uid = env.api.csr("w.gmsa").expect("csr")["metadata"]["uid"].clone();

    // A second run that will wait forever for its certificate; kill it (SIGKILL) once its
    // new CSR exists, i.e. between creating the CSR and writing anything.
    env.api.set_signer_mode(SignerMode::Never);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gmsa"))
        .arg("certs")
        .args(base)
        .args(["--overwrite", "--timeout", "60s", "--kubeconfig"])
        .arg(&env.kubeconfig)
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn gmsa");
    let mut replaced = false;
    for _ in 0..200 {
        let csr = env.api.csr("w.gmsa");
        if csr.is_some_and(|c| {
            c["metadata"]["uid"] != first_csr_uid && c["status"]["conditions"].is_array()
        }) {
            replaced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        replaced,
        "the second run never created and approved its CSR"
    );
    child.kill().await.expect("kill gmsa");

    assert_eq!(
        env.api.secret("gmsa", "w-tls").expect("secret")["data"],
        secret_before
    );
    assert_eq!(
        (read("tls.crt"), read("tls.key"), read("ca.crt")),
        files_before
    );
    let out = gmsa(
        &env,
        &[
            "inspect",
            "--cert",
            dir.join("tls.crt").to_str().expect("utf8"),
            "--warn-before",
            "1h",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "the pair in place still matches: {:?}",
        text(&out)
    );
}
