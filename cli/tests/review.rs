//! `gmsa review`: the real binary against a directory of specs (with and without a policy
//! file) and against a real webhook served over TLS on loopback.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap::Parser as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::Value;

struct Setup {
    _dir: tempfile::TempDir,
    specs: PathBuf,
    policy: PathBuf,
    root: PathBuf,
}

/// A spec directory holding `webapp01` (the captured v1 spec, as a manifest), a policy letting
/// `demo/webapp` use it, and pods.
fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).expect("mkdir");
    let mut spec = gmsa_testkit::fixture("k8s-1.32/api/gmsacredentialspec-get.json");
    spec["metadata"] = serde_json::json!({ "name": "webapp01" });
    std::fs::write(
        specs.join("webapp01.yaml"),
        serde_norway::to_string(&spec).expect("yaml"),
    )
    .expect("write spec");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "- namespace: demo\n  serviceAccount: webapp\n  credspecs: [webapp01]\n",
    )
    .expect("write policy");
    Setup {
        root: dir.path().to_path_buf(),
        _dir: dir,
        specs,
        policy,
    }
}

fn write(root: &Path, name: &str, text: &str) -> PathBuf {
    let path = root.join(name);
    std::fs::write(&path, text).expect("write file");
    path
}

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: iis
  namespace: demo
spec:
  serviceAccountName: webapp
  containers:
  - name: iis
    image: mcr.microsoft.com/windows/servercore/iis
    securityContext:
      windowsOptions:
        gmsaCredentialSpecName: webapp01
  - name: sidecar
    image: mcr.microsoft.com/windows/nanoserver
"#;

fn gmsa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gmsa"))
        .arg("review")
        .args(args)
        .output()
        .expect("run gmsa")
}

/// `gmsa review FILE --credspecs-dir <specs> --authz-policy <policy> EXTRA...`.
fn with_policy(s: &Setup, file: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        file.to_str().expect("path"),
        "--credspecs-dir",
        s.specs.to_str().expect("path"),
        "--authz-policy",
        s.policy.to_str().expect("path"),
    ];
    args.extend_from_slice(extra);
    gmsa(&args)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The pod printed after the `#` decision lines.
fn printed_pod(stdout: &str) -> Value {
    serde_norway::from_str(stdout).expect("stdout is YAML (comments, then the pod)")
}

fn inlined(pod: &Value) -> Value {
    let contents = pod
        .pointer("/spec/containers/0/securityContext/windowsOptions/gmsaCredentialSpec")
        .and_then(Value::as_str)
        .expect("contents inlined");
    serde_json::from_str(contents).expect("contents are JSON")
}

fn assert_allowed_output(stdout: &str) {
    assert!(
        stdout.contains("# pod \"iis\" in namespace \"demo\", service account \"webapp\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("# mutate: allowed with 1 patch operation(s):"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "#   add /spec/containers/0/securityContext/windowsOptions/gmsaCredentialSpec"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("# validate: allowed"), "{stdout}");
    let pod = printed_pod(stdout);
    assert_eq!(
        inlined(&pod)["DomainJoinConfig"]["MachineAccountName"],
        "WebApp01"
    );
    assert!(
        pod.pointer("/spec/containers/1/securityContext").is_none(),
        "the sidecar is untouched"
    );
}

#[test]
fn directory_with_policy_allows_and_prints_the_patched_pod() {
    let s = setup();
    let pod = write(&s.root, "pod.yaml", POD);
    let out = with_policy(&s, &pod, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("# credspecs: webapp01 from"), "{stdout}");
    assert_allowed_output(&stdout);
}

#[test]
fn unauthorized_service_account_is_denied_with_exit_1() {
    let s = setup();
    let pod = write(&s.root, "pod.yaml", POD);
    let out = with_policy(&s, &pod, &["--service-account", "intruder"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("# mutate: allowed with 1 patch"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "# validate: DENIED (403): service account \"intruder\" is not authorized to `use` GMSA cred spec \"webapp01\""
        ),
        "{stdout}"
    );
    assert!(
        !stdout.contains("kind: Pod"),
        "no pod printed when denied: {stdout}"
    );
}

#[test]
fn unknown_spec_in_a_deployment_names_the_generate_name() {
    let s = setup();
    let deployment = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  template:
    spec:
      serviceAccountName: webapp
      containers:
      - name: web
        image: x
        securityContext:
          windowsOptions: {gmsaCredentialSpecName: nosuchspec}
"#;
    let file = write(&s.root, "deploy.yaml", deployment);
    let out = gmsa(&[
        file.to_str().expect("path"),
        "--credspecs-dir",
        s.specs.to_str().expect("path"),
        "--allow-all-use",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("# mutate: DENIED (404): cred spec nosuchspec does not exist (named by container \"web\" in pod \"web-\")"),
        "{stdout}"
    );
}

#[test]
fn several_documents_and_random_hostname() {
    let s = setup();
    let plain = "apiVersion: v1\nkind: Pod\nmetadata: {name: plain}\nspec:\n  containers: [{name: c, image: x}]\n";
    let file = write(
        &s.root,
        "two.yaml",
        &format!("{POD}\n---\n{plain}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: skipped}}\n"),
    );
    let out = gmsa(&[
        file.to_str().expect("path"),
        "--credspecs-dir",
        s.specs.to_str().expect("path"),
        "--random-hostname",
        "-n",
        "demo",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("authorization: not checked"),
        "says that use was not checked: {stdout}"
    );
    assert!(stdout.contains("#   add /spec/hostname \""), "{stdout}");
    assert!(
        stdout.contains("# pod \"plain\" in namespace \"demo\", service account \"default\""),
        "{stdout}"
    );
    let docs: Vec<&str> = stdout.split("\n---\n").collect();
    assert_eq!(docs.len(), 2, "{stdout}");
    let first = printed_pod(docs[0]);
    let hostname = first["spec"]["hostname"].as_str().expect("hostname");
    assert!(hostname.len() <= 15 && hostname == hostname.to_lowercase());
}

#[test]
fn a_source_is_required_and_bad_input_is_an_error() {
    let s = setup();
    let pod = write(&s.root, "pod.yaml", POD);
    let out = gmsa(&[pod.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    let cm = write(&s.root, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\n");
    let out = gmsa(&[
        cm.to_str().expect("path"),
        "--credspecs-dir",
        s.specs.to_str().expect("path"),
    ]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("holds no Pod"), "{stderr}");
}

// ---- against a running webhook ----------------------------------------------------------------

struct Tls {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn tls() -> Tls {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "gmsa review test CA");
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca, ca_key);
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("leaf params");
    let key = KeyPair::generate().expect("leaf key");
    let cert = leaf.signed_by(&key, &issuer).expect("leaf cert");
    Tls {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_running_webhook_over_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let s = setup();
    let t = tls();
    let cert = write(&s.root, "tls.crt", &t.cert_pem);
    let key = write(&s.root, "tls.key", &t.key_pem);
    let ca = write(&s.root, "ca.crt", &t.ca_pem);
    let other_ca = write(&s.root, "other-ca.crt", &tls().ca_pem);
    let pod = write(&s.root, "pod.yaml", POD);
    let config = gmsa_webhook::config::Config::try_parse_from([
        "gmsa-webhook",
        "--bind-address",
        "127.0.0.1",
        "--https-port",
        "0",
        "--admin-port",
        "0",
        "--credspecs-dir",
        s.specs.to_str().expect("path"),
        "--authz-policy",
        s.policy.to_str().expect("path"),
        "--tls-crt",
        cert.to_str().expect("path"),
        "--tls-key",
        key.to_str().expect("path"),
    ])
    .expect("webhook config");
    let webhook = gmsa_webhook::Webhook::start(&config)
        .await
        .expect("webhook starts");
    let url = format!("https://127.0.0.1:{}", webhook.https_addr().port());

    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            gmsa(&args)
        })
    };
    let pod_arg = pod.to_str().expect("path").to_string();
    let base = |ca: &Path| {
        vec![
            pod_arg.clone(),
            "--webhook".to_string(),
            url.clone(),
            "--ca".to_string(),
            ca.to_str().expect("path").to_string(),
        ]
    };

    let out = run(base(&ca)).await.expect("join");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("# webhook: {url}")), "{stdout}");
    assert_allowed_output(&stdout);

    let mut args = base(&ca);
    args.extend(["--service-account".to_string(), "intruder".to_string()]);
    let out = run(args).await.expect("join");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("# validate: DENIED (403)"), "{stdout}");

    // A certificate not signed by --ca is refused.
    let out = run(base(&other_ca)).await.expect("join");
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("TLS handshake"), "{stderr}");

    webhook.shutdown().await;
}

// ---- against a cluster (kubeconfig) --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_the_cluster_of_the_kubeconfig() {
    use gmsa_testkit::crd_api::{AuthzAnswer, CrdApi, Route};
    let api = CrdApi::from_capture();
    api.set_authz(
        "demo",
        "webapp",
        "webapp01",
        AuthzAnswer::allowed("RBAC: allowed by RoleBinding"),
    );
    let server = gmsa_testkit::FakeApiServer::start(api.router()).await;
    let s = setup();
    let kubeconfig = write(
        &s.root,
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\n\
             users:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context: {{cluster: fake, user: u}}\n\
             current-context: c\n",
            server.url()
        ),
    );
    let pod = write(&s.root, "pod.yaml", POD);
    let run = |extra: &'static [&'static str]| {
        let kubeconfig = kubeconfig.clone();
        let pod = pod.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_gmsa"))
                .arg("review")
                .arg(&pod)
                .arg("--kubeconfig")
                .args(extra)
                .env("KUBECONFIG", &kubeconfig)
                .env_remove("KUBERNETES_SERVICE_HOST")
                .output()
                .expect("run gmsa")
        })
    };

    let out = run(&[]).await.expect("join");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("# cluster: the current kubeconfig context"),
        "{stdout}"
    );
    assert_allowed_output(&stdout);
    assert!(api.calls(Route::Lsar) >= 1);
    let lsar = api.lsar_requests();
    assert_eq!(
        lsar.last().map(|r| r["spec"]["user"].clone()),
        Some(Value::from("system:serviceaccount:demo:webapp"))
    );

    let out = run(&["--service-account", "intruder"]).await.expect("join");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("# validate: DENIED (403): service account \"intruder\""),
        "{stdout}"
    );
}
