//! Nothing leaked in logs: the real `gmsa-webhook` binary at `--log-level trace` (JSON and
//! text), standalone and with the Kubernetes backend against the fake API server, answers
//! reviews (allowed, patched, denied for every reason, malformed) for specs whose
//! `HostAccountConfig.PluginInput` holds a sentinel and pods whose env vars, args and
//! annotations hold other sentinels. Not one captured log line may contain a sentinel (the
//! answers themselves do carry the inlined spec: that is the product).

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use common::{Ca, Conn, Proto};
use gmsa_testkit::crd_api::{AuthzAnswer, CrdApi};
use gmsa_testkit::FakeApiServer;
use serde_json::{json, Value};

const PLUGIN_SECRET: &str = "contoso.com:gmsa-reader:PLUGIN-SENTINEL-7f3a9";
const OTHER_PLUGIN_SECRET: &str = "PLUGIN-SENTINEL-OTHER-22b1";
const ENV_SECRET: &str = "ENV-SENTINEL-91c2d";
const ARG_SECRET: &str = "ARG-SENTINEL-5e0f1";
const ANNOTATION_SECRET: &str = "ANNOTATION-SENTINEL-c4d8e";
const SENTINELS: [&str; 5] = [
    "PLUGIN-SENTINEL",
    ENV_SECRET,
    ARG_SECRET,
    ANNOTATION_SECRET,
    // A whole pod would carry its image name.
    "leak-check-image",
];

fn credspec(plugin_input: &str) -> Value {
    let mut spec = gmsa_testkit::crd_api::captured_credspec();
    spec["ActiveDirectoryConfig"]["HostAccountConfig"] = json!({
        "PortableCcgVersion": "1",
        "PluginGUID": "{859E1386-BDB4-49E8-85C7-3070B13920E1}",
        "PluginInput": plugin_input,
    });
    spec
}

fn pod(sa: &str, windows_options: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "leaky", "namespace": "demo",
                     "annotations": {"secret-note": ANNOTATION_SECRET}},
        "spec": {
            "serviceAccountName": sa,
            "containers": [{
                "name": "app", "image": "leak-check-image",
                "args": ["--password", ARG_SECRET],
                "env": [{"name": "DB_PASSWORD", "value": ENV_SECRET}],
                "securityContext": {"windowsOptions": windows_options},
            }],
        }
    })
}

fn review(uid: &str, operation: &str, object: Value, old: Option<Value>) -> String {
    let mut review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "demo", "operation": operation, "object": object,
            "userInfo": {"username": "someone", "extra": {"token": [ENV_SECRET]}},
        }
    });
    if let Some(old) = old {
        review["request"]["oldObject"] = old;
    }
    review.to_string()
}

/// Every kind of answer: patched, allowed, denied (unauthorized, mismatch, update, not found,
/// empty name, contents without name), malformed.
fn reviews(spec_json: &str) -> Vec<(&'static str, String)> {
    let named = json!({"gmsaCredentialSpecName": "webapp01"});
    let inlined = json!({"gmsaCredentialSpecName": "webapp01", "gmsaCredentialSpec": spec_json});
    let mut other: Value = serde_json::from_str(spec_json).expect("spec JSON");
    other["ActiveDirectoryConfig"]["HostAccountConfig"]["PluginInput"] = json!(OTHER_PLUGIN_SECRET);
    let mismatched =
        json!({"gmsaCredentialSpecName": "webapp01", "gmsaCredentialSpec": other.to_string()});
    vec![
        (
            "/mutate",
            review("m1", "CREATE", pod("webapp", named.clone()), None),
        ),
        (
            "/validate",
            review("v1", "CREATE", pod("webapp", inlined.clone()), None),
        ),
        (
            "/validate",
            review("v2", "CREATE", pod("intruder", inlined.clone()), None),
        ),
        (
            "/validate",
            review("v3", "CREATE", pod("webapp", mismatched.clone()), None),
        ),
        (
            "/validate",
            review(
                "v4",
                "UPDATE",
                pod("webapp", mismatched),
                Some(pod("webapp", inlined.clone())),
            ),
        ),
        (
            "/mutate",
            review(
                "m2",
                "CREATE",
                pod("webapp", json!({"gmsaCredentialSpecName": "nope"})),
                None,
            ),
        ),
        (
            "/mutate",
            review(
                "m3",
                "CREATE",
                pod("webapp", json!({"gmsaCredentialSpecName": ""})),
                None,
            ),
        ),
        (
            "/validate",
            review(
                "v5",
                "CREATE",
                pod("webapp", json!({"gmsaCredentialSpec": other.to_string()})),
                None,
            ),
        ),
        (
            "/validate",
            review(
                "v6",
                "CREATE",
                json!(format!("{ENV_SECRET} not a pod")),
                None,
            ),
        ),
        (
            "/validate",
            format!("{{\"request\": {{\"uid\": \"{ENV_SECRET}"),
        ),
    ]
}

struct Process {
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Runs the binary with `args` at trace level, sends every review, stops it with SIGTERM and
/// returns its log.
async fn run_webhook(
    dir: &Path,
    format: &str,
    args: &[String],
    env: &[(&str, &Path)],
    spec_json: &str,
) -> String {
    let ca = Ca::new();
    let (cert, key) = common::write_leaf(dir, &ca.leaf(7));
    let (https, admin) = (free_port(), free_port());
    let log = dir.join(format!("webhook-{format}.log"));
    let file = std::fs::File::create(&log).expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gmsa-webhook"));
    cmd.args(["--bind-address", "127.0.0.1", "--log-level", "trace"])
        .args(["--log-format", format])
        .args(["--https-port", &https.to_string()])
        .args(["--admin-port", &admin.to_string()])
        .arg("--tls-crt")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("RUST_LOG")
        .stdout(file.try_clone().expect("log file"))
        .stderr(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut process = Process {
        child: cmd.spawn().expect("start gmsa-webhook"),
    };
    let admin_addr = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
    let https_addr = std::net::SocketAddr::from(([127, 0, 0, 1], https));
    let mut ready = false;
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(admin_addr).await.is_ok()
            && common::admin_get(admin_addr, "/ready").await.status < 300
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        ready,
        "webhook not ready: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let mut answers = Vec::new();
    for proto in [Proto::H1, Proto::H2] {
        let mut conn = Conn::open(https_addr, &ca.pem, proto).await;
        for (path, body) in reviews(spec_json) {
            let reply = conn.post_json(path, body).await;
            answers.push((path, reply.status, reply.json()));
        }
    }
    // The answers are right (so the paths above were really taken).
    let verdicts: Vec<bool> = answers
        .iter()
        .take(10)
        .map(|(_, _, a)| a["response"]["allowed"] == true)
        .collect();
    assert_eq!(
        verdicts,
        [true, true, false, false, false, false, false, false, false, false],
        "{answers:#?}"
    );
    // The shell's builtin `kill` (no procps needed; no unsafe signal code in tests).
    let status = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", process.child.id())])
        .status()
        .expect("kill");
    assert!(status.success());
    for _ in 0..200 {
        if process.child.try_wait().expect("wait").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::read_to_string(&log).expect("read log")
}

#[track_caller]
fn assert_clean(log: &str, what: &str) {
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("TRACE") || l.contains("DEBUG")),
        "{what}: trace/debug lines were captured (the level was on): {log}"
    );
    assert!(
        lines.iter().any(|l| l.contains("admission denied")),
        "{what}: denials were logged"
    );
    for sentinel in SENTINELS {
        let leaks: Vec<&&str> = lines.iter().filter(|l| l.contains(sentinel)).collect();
        assert!(
            leaks.is_empty(),
            "{what}: {} log line(s) contain {sentinel:?}:\n{}",
            leaks.len(),
            leaks
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_webhook_at_trace_logs_no_secret_and_no_pod() {
    let dir = tempfile::tempdir().expect("temp dir");
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).expect("specs dir");
    let manifest = json!({"apiVersion": "windows.k8s.io/v1", "kind": "GMSACredentialSpec",
                          "metadata": {"name": "webapp01"}, "credspec": credspec(PLUGIN_SECRET)});
    std::fs::write(specs.join("webapp01.json"), manifest.to_string()).expect("write spec");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "- namespace: demo\n  serviceAccount: webapp\n  credspecs: [webapp01]\n",
    )
    .expect("write policy");
    let spec_json = credspec(PLUGIN_SECRET).to_string();
    for format in ["json", "text"] {
        let args = vec![
            "--credspecs-dir".to_string(),
            specs.display().to_string(),
            "--authz-policy".to_string(),
            policy.display().to_string(),
        ];
        let log = run_webhook(dir.path(), format, &args, &[], &spec_json).await;
        assert_clean(&log, &format!("standalone, {format}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_backend_at_trace_logs_no_secret_and_no_pod() {
    let api = CrdApi::empty();
    api.apply("webapp01", Some(credspec(PLUGIN_SECRET)));
    api.set_authz(
        "demo",
        "webapp",
        "webapp01",
        AuthzAnswer::allowed("RBAC: allowed"),
    );
    let server = FakeApiServer::start(api.router()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\n\
             users:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context: {{cluster: fake, user: u}}\n\
             current-context: c\n",
            server.url()
        ),
    )
    .expect("write kubeconfig");
    let spec_json = credspec(PLUGIN_SECRET).to_string();
    for format in ["json", "text"] {
        let log = run_webhook(
            dir.path(),
            format,
            &[],
            &[("KUBECONFIG", kubeconfig.as_path())],
            &spec_json,
        )
        .await;
        assert_clean(&log, &format!("kubernetes backend, {format}"));
    }
}
