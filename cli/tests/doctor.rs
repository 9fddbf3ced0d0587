//! `gmsa doctor` run as a binary (and as the kubectl plugin `kubectl-gmsa`) against testkit's
//! fake API server serving a gMSA set-up, through a generated kubeconfig: text and `-o json`
//! output, exit codes 0/1/2, `--pod` with a workload.

use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gmsa_testkit::setup::Setup;
use gmsa_testkit::FakeApiServer;
use serde_json::Value;

struct Env {
    setup: Arc<Mutex<Setup>>,
    _server: FakeApiServer,
    dir: tempfile::TempDir,
    kubeconfig: std::path::PathBuf,
}

async fn fake() -> Env {
    let setup = Arc::new(Mutex::new(Setup::healthy(gmsa_crd::crd_value())));
    let server = FakeApiServer::start(Setup::router(setup.clone())).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = server.write_kubeconfig(dir.path());
    Env {
        setup,
        _server: server,
        dir,
        kubeconfig,
    }
}

async fn run(bin: &Path, env: &Env, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .env_remove("KUBECONFIG")
        .env("HOME", env.dir.path());
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("doctor finished within 60s")
        .expect("run gmsa")
}

async fn doctor(env: &Env, args: &[&str]) -> Output {
    let mut all = vec!["doctor", "-n", "apps"];
    all.extend_from_slice(args);
    run(Path::new(env!("CARGO_BIN_EXE_gmsa")), env, &all).await
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_healthy_set_up_exits_0_and_prints_grouped_checks() {
    let env = fake().await;
    let out = doctor(&env, &["--service-account", "webapp", "--spec", "webapp01"]).await;
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "Cluster\n-------\n[  ok] cluster.reachable: Kubernetes v1.32.0",
        "[  ok] probe.dry-run: a pod in apps under service account webapp naming the spec is admitted with the spec's contents inlined",
        "[  ok] rbac.use: system:serviceaccount:apps:webapp may use GMSACredentialSpec webapp01",
        "[skip] spec.domain: not checked: no --server given",
        "0 fail, 2 skipped: gMSA pods should work",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn a_broken_set_up_exits_1_and_json_names_the_check_and_its_fix() {
    let env = fake().await;
    env.setup.lock().expect("setup").grants.clear();
    let out = doctor(
        &env,
        &[
            "--service-account",
            "webapp",
            "--spec",
            "webapp01",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let rbac = report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "rbac.use"))
        .expect("rbac.use");
    assert_eq!(rbac["status"], "fail");
    assert_eq!(rbac["group"], "rbac");
    assert!(rbac["fix"]
        .as_str()
        .is_some_and(|f| f.contains("resourceNames: [\"webapp01\"]")));
    assert_eq!(
        report["summary"]["fail"], 2,
        "rbac.use and probe.dry-run: {report:#}"
    );
    assert!(
        out.stderr.is_empty(),
        "-o json prints no progress: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_pod_of_a_workload_is_the_probe_and_gives_the_account_and_spec() {
    let env = fake().await;
    let manifest = env.dir.path().join("deployment.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      serviceAccountName: webapp\n      containers:\n      - name: web\n        image: iis\n        securityContext:\n          windowsOptions: {gmsaCredentialSpecName: webapp01}\n",
    )
    .expect("write manifest");
    let out = doctor(
        &env,
        &[
            "--pod",
            manifest.to_str().expect("utf-8 path"),
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rbac = report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "rbac.use"))
        .expect("rbac.use");
    assert!(
        rbac["message"]
            .as_str()
            .is_some_and(|m| m
                .contains("system:serviceaccount:apps:webapp may use GMSACredentialSpec webapp01")),
        "{rbac}"
    );
}

#[tokio::test]
async fn doctor_that_cannot_run_exits_2() {
    let env = fake().await;
    let bad_pod = env.dir.path().join("svc.yaml");
    std::fs::write(&bad_pod, "kind: Service\nspec: {}\n").expect("write");
    for args in [
        vec!["--pod", bad_pod.to_str().expect("utf-8")],
        vec!["--node-account", "no-equals-sign"],
    ] {
        let out = doctor(&env, &args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error: gmsa doctor could not run:"),
            "{err}"
        );
    }
    // LDAP flags without --server are a usage error (exit 2 too), not silently ignored.
    let out = doctor(&env, &["--bind-dn", "reader@CONTOSO.COM"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--server <URL>"));
}

#[tokio::test]
async fn as_kubectl_gmsa_it_names_itself_so_and_runs_the_same() {
    let env = fake().await;
    let plugin = env.dir.path().join("kubectl-gmsa");
    std::fs::copy(env!("CARGO_BIN_EXE_gmsa"), &plugin).expect("install as kubectl-gmsa");
    let help = tokio::process::Command::new(&plugin)
        .args(["doctor", "--help"])
        .output()
        .await
        .expect("run kubectl-gmsa");
    let help = stdout(&help);
    assert!(
        help.contains("Usage: kubectl gmsa doctor [OPTIONS]"),
        "{help}"
    );
    let out = run(
        &plugin,
        &env,
        &[
            "doctor",
            "-n",
            "apps",
            "--service-account",
            "webapp",
            "--spec",
            "webapp01",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // Under its own name, usage says gmsa.
    let own = tokio::process::Command::new(env!("CARGO_BIN_EXE_gmsa"))
        .args(["doctor", "--help"])
        .output()
        .await
        .expect("run gmsa");
    assert!(stdout(&own).contains("Usage: gmsa doctor [OPTIONS]"));
}
