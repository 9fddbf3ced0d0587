//! The binaries the chart runs accept what it gives them: `gmsa-webhook` parses the
//! Deployment's environment and arguments into the intended configuration, `gmsa` accepts the
//! arguments of the certificate Jobs (the CLI's view of the hook Jobs), and the Dockerfile
//! builds both for a non-root user.

use gmsa_e2e::chart::{args, read, render, repo, run, strings, text, Rendered, NEWEST, OLDEST};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Deployment's environment and arguments, as the container would see them.
fn webhook_invocation(r: &Rendered) -> (Vec<(String, String)>, Vec<String>) {
    let c = r.deployment_container();
    let env = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect();
    let args = c
        .get("args")
        .map(|a| strings(a).into_iter().map(String::from).collect())
        .unwrap_or_default();
    (env, args)
}

#[test]
fn the_webhook_accepts_the_environment_the_chart_gives_it() {
    use clap::Parser as _;
    use gmsa_webhook::config::Config;
    use std::time::Duration;
    let cases: [(&str, &[&str], u64); 3] = [
        (NEWEST, &[], 5),
        (
            OLDEST,
            &[
                "webhook.timeoutSeconds=1",
                "containerPort=443",
                "qps=12.5",
                "burst=7",
                "randomHostname=true",
                "logFormat=text",
                "logLevel=debug",
                "certificates.certReload.enabled=false",
                "extraArgs[0]=--authz-cache-ttl=30",
                "certificates.csr.renew.renewBefore=240h",
                "webhook.maxCacheStaleness=500ms",
            ],
            1,
        ),
        (NEWEST, &["webhook.timeoutSeconds=30"], 30),
    ];
    for (kube, sets, timeout) in cases {
        let r = render(kube, sets);
        let (env, args) = webhook_invocation(&r);
        // One test parses at a time (this one), so the process environment is ours.
        for (k, v) in &env {
            std::env::set_var(k, v);
        }
        let parsed =
            Config::try_parse_from(std::iter::once("gmsa-webhook".to_string()).chain(args.clone()));
        for (k, _) in &env {
            std::env::remove_var(k);
        }
        let config =
            parsed.unwrap_or_else(|e| panic!("gmsa-webhook rejects {env:?} {args:?}: {e}"));
        config
            .check()
            .unwrap_or_else(|e| panic!("gmsa-webhook rejects {env:?}: {e}"));
        let ports = &r.deployment_container()["ports"];
        assert_eq!(
            json!(config.https_port),
            ports[0]["containerPort"],
            "{sets:?}"
        );
        assert_eq!(
            json!(config.admin_port),
            ports[1]["containerPort"],
            "{sets:?}"
        );
        assert_eq!(config.tls_crt.as_deref(), Some(Path::new("/tls/crt")));
        assert_eq!(config.tls_key.as_deref(), Some(Path::new("/tls/key")));
        assert!(
            config.request_timeout < Duration::from_secs(timeout),
            "answers before the API server's {timeout}s timeout"
        );
        assert!(!config.standalone(), "reads specs from the cluster");
        let expect_set = |name: &str| sets.iter().any(|s| s.starts_with(name));
        assert_eq!(
            config.cert_reload,
            !expect_set("certificates.certReload"),
            "{sets:?}"
        );
        assert_eq!(
            config.random_hostname,
            expect_set("randomHostname"),
            "{sets:?}"
        );
        if expect_set("webhook.maxCacheStaleness") {
            assert_eq!(config.cert_expiry_warning, Duration::from_secs(240 * 3600));
            assert_eq!(config.max_cache_staleness, Duration::from_millis(500));
        } else {
            assert_eq!(
                config.cert_expiry_warning,
                Duration::from_secs(720 * 3600),
                "the chart's renewBefore"
            );
            assert_eq!(config.max_cache_staleness, Duration::from_secs(30));
        }
        if expect_set("qps") {
            assert!((config.qps - 12.5).abs() < f64::EPSILON);
            assert_eq!(config.burst, 7);
            assert_eq!(config.authz_cache_ttl, Duration::from_secs(30));
        } else {
            assert!(
                (config.qps - 30.0).abs() < f64::EPSILON,
                "the chart's qps: {}",
                config.qps
            );
            assert_eq!(config.burst, 50);
        }
    }
}

/// The `gmsa` binary cargo built next to this test (present when the workspace's tests are
/// built, as in CI); panics saying how to build it when it is missing (never skips).
fn gmsa_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("gmsa"))
        .expect("the test executable is in target/<profile>/deps");
    assert!(
        bin.is_file(),
        "{} missing: build it (cargo build --all-features --locked -p gmsa; \
         cargo nextest run --workspace builds it too)",
        bin.display()
    );
    bin
}

#[test]
fn the_gmsa_cli_accepts_the_arguments_the_cert_jobs_give_it() {
    let r = render(
        NEWEST,
        &[
            "certificates.csr.duration=2160h",
            "certificates.csr.approve=false",
            "certificates.csr.renew.enabled=true",
        ],
    );
    let gmsa = gmsa_binary();
    let pods = r.pod_specs();
    let jobs: Vec<_> = pods
        .iter()
        .filter(|(name, _)| name.starts_with("gmsa-certs"))
        .collect();
    assert_eq!(jobs.len(), 3, "issue, patch and renew: {:?}", r.ids());
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, pod) in jobs {
        // No cluster: a parsed command line gets as far as looking for one (exit 1); a
        // rejected one is a usage error (exit 2).
        let out = run(Command::new(&gmsa)
            .args(args(pod))
            .env("KUBECONFIG", dir.path().join("none"))
            .env_remove("KUBERNETES_SERVICE_HOST"));
        let err = text(&out.stderr);
        assert!(
            out.status.code() == Some(1) && !err.contains("Usage:"),
            "gmsa rejects the arguments of {name} ({:?}): {err}",
            out.status
        );
    }
}

#[test]
fn dockerfile_builds_both_binaries_for_a_non_root_user() {
    let dockerfile = read(&repo().join("Dockerfile"));
    assert!(
        dockerfile.contains("cargo build --release --locked -p gmsa-webhook -p gmsa"),
        "builds both packages"
    );
    for bin in ["gmsa-webhook", "gmsa"] {
        assert!(
            dockerfile.contains(&format!("/usr/local/bin/{bin}")),
            "installs {bin} in /usr/local/bin"
        );
    }
    let last_user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("USER "))
        .expect("a USER line");
    assert_eq!(
        last_user.trim(),
        "65532:65532",
        "the final image runs as non-root"
    );
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/gmsa-webhook\"]"));
}
