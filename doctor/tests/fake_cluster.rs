//! `gather` + `diagnose` against testkit's fake API server serving a gMSA set-up: the healthy
//! set-up passes every check, and each broken set-up makes exactly the expected check fail
//! (or skip, for a right doctor's user lacks) with its fix. The same scenarios run against a
//! real cluster in `e2e/tests/cluster_doctor.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gmsa_doctor::{diagnose, gather, Options, Report, Status, Target};
use gmsa_testkit::setup::Setup;
use gmsa_testkit::FakeApiServer;
use serde_json::json;

fn target() -> Target {
    Target {
        release_namespace: Some("gmsa".into()),
        renew_before_secs: 30 * 86_400,
        ..Target::new("apps", "webapp", Some("webapp01"))
    }
}

fn options(probe_pod: Option<serde_json::Value>) -> Options {
    Options {
        target: target(),
        probe_pod,
        ldap: None,
        timeout: Duration::from_secs(5),
    }
}

/// A client as `gmsa doctor` makes it: no automatic retries (each answer is what a pod would
/// meet now; a 503 from the service proxy is a finding, not a reason to wait).
fn client(server: &FakeApiServer) -> kube::Client {
    let mut config = kube::Config::new(server.url().parse().expect("URL"));
    config.default_retry = false;
    kube::Client::try_from(config).expect("client")
}

async fn run(setup: Setup) -> (Report, Vec<gmsa_testkit::RecordedRequest>) {
    let shared = Arc::new(Mutex::new(setup));
    let server = FakeApiServer::start(Setup::router(shared)).await;
    let opts = options(None);
    let report = diagnose(&gather(client(&server), &opts).await);
    (report, server.requests())
}

fn healthy() -> Setup {
    Setup::healthy(gmsa_crd::crd_value())
}

/// The statuses that are not `ok`, by id.
fn not_ok(r: &Report) -> Vec<(&'static str, Status)> {
    r.checks
        .iter()
        .filter(|c| c.status != Status::Ok)
        .map(|c| (c.id, c.status))
        .collect()
}

#[tokio::test]
async fn the_healthy_set_up_passes_every_cluster_check_and_writes_nothing() {
    let (r, requests) = run(healthy()).await;
    // Without LDAP flags the domain checks are skipped, saying which flags to give.
    assert_eq!(
        not_ok(&r),
        [("spec.domain", Status::Skip), ("spec.nodes", Status::Skip)],
        "{}",
        r.to_text()
    );
    assert_eq!(r.exit_code(), 0);
    let writes: Vec<_> = requests
        .iter()
        .filter(|q| q.method != "GET")
        .map(|q| format!("{} {} {:?}", q.method, q.path, q.query))
        .collect();
    assert_eq!(
        writes,
        [
            "POST /apis/authorization.k8s.io/v1/subjectaccessreviews Some(\"\")".to_string(),
            "POST /api/v1/namespaces/apps/pods Some(\"&dryRun=All\")".to_string(),
        ],
        "only an access review and a dry-run create"
    );
}

type Break = fn(&mut Setup);
/// A broken set-up: name, how to break it, the checks not ok, the first one's fix.
type Case = (
    &'static str,
    Break,
    Vec<(&'static str, Status)>,
    &'static str,
);

#[tokio::test]
async fn each_broken_set_up_fails_exactly_its_check() {
    let cases: Vec<Case> = vec![
        (
            "CRD deleted",
            |s| s.crd = None,
            vec![("crd.installed", Status::Fail)],
            "gmsa crd | kubectl apply",
        ),
        (
            "webhook stopped",
            |s| {
                s.deployments[0]["status"]["readyReplicas"] = 0.into();
                s.endpoint_slices[0]["endpoints"][0]["conditions"]["ready"] = false.into();
                s.probe_refusal = Some((500, "InternalError".into(), "Internal error occurred: failed calling webhook \"admission-webhook.windows-gmsa.sigs.k8s.io\": failed to call webhook: Post \"https://gmsa.gmsa.svc:443/mutate?timeout=10s\": no endpoints available for service \"gmsa\"".into()));
            },
            vec![
                ("webhooks.service", Status::Fail),
                ("probe.dry-run", Status::Fail),
                ("webhook.deployment", Status::Fail),
                ("webhook.info", Status::Fail),
            ],
            "kubectl -n gmsa",
        ),
        (
            "caBundle from another CA",
            |s| {
                let other = s.pki.other_ca_pem.clone();
                s.set_ca_bundle(&other);
                s.probe_refusal = Some((500, "InternalError".into(), "Internal error occurred: failed calling webhook \"admission-webhook.windows-gmsa.sigs.k8s.io\": failed to call webhook: Post \"https://gmsa.gmsa.svc:443/mutate?timeout=10s\": tls: failed to verify certificate: x509: certificate signed by unknown authority".into()));
            },
            vec![
                ("certs.serving", Status::Fail),
                ("probe.dry-run", Status::Fail),
            ],
            "gmsa certs issue --overwrite",
        ),
        (
            "expired certificate",
            |s| {
                let now = s.pki.now;
                let leaf = s
                    .pki
                    .leaf(&["gmsa.gmsa.svc"], now - 400 * 86_400, now - 86_400);
                s.set_serving(leaf);
            },
            vec![("certs.serving", Status::Fail)],
            "gmsa certs issue --overwrite",
        ),
        (
            "use grant removed",
            |s| s.grants.clear(),
            vec![("probe.dry-run", Status::Fail), ("rbac.use", Status::Fail)],
            "see rbac.use",
        ),
        (
            "spec deleted",
            |s| s.specs.clear(),
            vec![
                ("probe.dry-run", Status::Fail),
                ("spec.found", Status::Fail),
            ],
            "gmsa spec from-file",
        ),
        (
            "service account missing",
            |s| s.service_accounts.clear(),
            vec![("probe.dry-run", Status::Fail)],
            "kubectl -n apps create serviceaccount webapp",
        ),
        (
            "namespace opted out",
            |s| {
                s.namespaces[1]["metadata"]["labels"]["windows.k8s.io/disabled"] = "true".into();
            },
            vec![
                ("webhooks.namespaces", Status::Fail),
                ("probe.dry-run", Status::Fail),
            ],
            "kubectl label namespace apps windows.k8s.io/disabled-",
        ),
        (
            "no mutating configuration",
            |s| s.mutating.clear(),
            vec![
                ("webhooks.mutating", Status::Fail),
                ("probe.dry-run", Status::Fail),
            ],
            "helm upgrade --install",
        ),
        (
            "no Windows node",
            |s| s.nodes.clear(),
            vec![("spec.nodes", Status::Warn)],
            "Windows node pool",
        ),
        (
            "doctor may not read Secrets",
            |s| s.forbidden.push("secrets".into()),
            vec![("certs.serving", Status::Skip)],
            "kubectl auth can-i get secrets -n gmsa",
        ),
    ];
    for (name, broken, expected, fix) in cases {
        let mut s = healthy();
        broken(&mut s);
        let (r, _) = run(s).await;
        let mut got = not_ok(&r);
        got.retain(|(id, _)| {
            *id != "spec.domain" && !(*id == "spec.nodes" && name != "no Windows node")
        });
        assert_eq!(got, expected, "{name}:\n{}", r.to_text());
        let first = r.get(expected[0].0).expect("the check ran");
        assert!(
            first.fix.as_deref().unwrap_or_default().contains(fix),
            "{name}: fix {:?}",
            first.fix
        );
    }
}

#[tokio::test]
async fn the_serving_key_is_dropped_as_soon_as_it_is_read() {
    let shared = Arc::new(Mutex::new(healthy()));
    let server = FakeApiServer::start(Setup::router(shared)).await;
    let opts = options(None);
    let facts = gather(client(&server), &opts).await;
    let Some(Some(secret)) = facts.serving_secret.got() else {
        panic!("the Secret was read: {:?}", facts.serving_secret);
    };
    let keys: Vec<&String> = secret.data.iter().flat_map(|d| d.keys()).collect();
    assert_eq!(keys, ["ca.crt", "tls.crt"]);
    assert!(!format!("{facts:?}").contains("PRIVATE KEY"));
}

#[tokio::test]
async fn the_probe_pod_is_a_windows_pod_naming_the_spec_under_the_service_account() {
    let shared = Arc::new(Mutex::new(healthy()));
    let server = FakeApiServer::start(Setup::router(shared)).await;
    let pod = gmsa_doctor::probe_pod("apps", "webapp", "webapp01");
    assert_eq!(pod["spec"]["serviceAccountName"], "webapp");
    assert_eq!(
        pod["spec"]["nodeSelector"],
        json!({"kubernetes.io/os": "windows"})
    );
    let opts = options(Some(pod));
    let facts = gather(client(&server), &opts).await;
    let Some(gmsa_doctor::ProbeAnswer::Admitted(p)) = facts.probe.got() else {
        panic!("admitted: {:?}", facts.probe);
    };
    let w = p
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.windows_options.as_ref())
        .expect("windowsOptions");
    assert!(w
        .gmsa_credential_spec
        .as_deref()
        .is_some_and(|c| c.contains("WebApp01")));
}
