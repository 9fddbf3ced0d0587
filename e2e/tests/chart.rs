//! The Helm chart (`charts/gmsa`): `helm lint --strict` and `helm template` with Helm 3 and
//! Helm 4 over a matrix of values (certificate modes, namespace modes, failure policy,
//! matchConditions) at the oldest and newest supported Kubernetes versions; the rendered
//! manifests are parsed with serde_norway and checked field by field, Helm 3 and Helm 4 must
//! render the same objects, and every object is validated against the Kubernetes API schemas
//! with `kubernetes-validate --strict -k VERSION`.
//!
//! The tools come from `.ci/install.d/30-helm` (pinned, in `./.tools/`). Without them a test
//! prints "skipped: helm not installed (run .ci/install.d/30-helm)" and returns, except when
//! the environment variable `CI` is set: then it fails. Tests that need no tool (versions,
//! schema and README coverage of the values, the Dockerfile) always run.

use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Oldest and newest Kubernetes versions the chart supports (Chart.yaml `kubeVersion`).
const OLDEST: &str = "1.28.0";
const NEWEST: &str = "1.35.0";
const RELEASE: &str = "gmsa";
const NS: &str = "gmsa-system";
/// Kinds the offline validator has no schema for (CRDs of other projects, and ours).
const KINDS_WITHOUT_SCHEMA: &[&str] = &[
    "ServiceMonitor",
    "Issuer",
    "Certificate",
    "GMSACredentialSpec",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ is inside the workspace")
        .to_path_buf()
}

fn chart_dir() -> PathBuf {
    repo().join("charts/gmsa")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

struct Tools {
    helms: Vec<(&'static str, PathBuf)>,
    validator: PathBuf,
    /// The venv's python, with cel-python (`celpy`) installed.
    python: PathBuf,
}

/// The pinned tools, or None (test skipped) when they are missing outside CI.
fn tools() -> Option<Tools> {
    let dir = repo().join(".tools");
    let helms = vec![
        ("helm3", dir.join("helm3/helm")),
        ("helm4", dir.join("helm4/helm")),
    ];
    let validator = dir.join("venv/bin/kubernetes-validate");
    let python = dir.join("venv/bin/python");
    let celpy = dir
        .join("venv/lib")
        .read_dir()
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.path().join("site-packages/celpy/__init__.py"))
        .unwrap_or_else(|| dir.join("venv/lib/python3/site-packages/celpy/__init__.py"));
    let missing: Vec<&PathBuf> = helms
        .iter()
        .map(|(_, p)| p)
        .chain([&validator, &python, &celpy])
        .filter(|p| !p.is_file())
        .collect();
    if missing.is_empty() {
        return Some(Tools {
            helms,
            validator,
            python,
        });
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "chart test tools missing ({missing:?}): .ci/run must run .ci/install.d/30-helm first"
    );
    eprintln!("skipped: helm not installed (run .ci/install.d/30-helm)");
    None
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// `helm ARGS --kube-version K --set S...` for one Helm binary.
/// `sets` items are `key=value` (`--set`) or `@path` (a values file, `-f path`).
fn helm(bin: &Path, verb: &[&str], kube: &str, sets: &[&str]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(verb).arg("--kube-version").arg(kube);
    for s in sets {
        match s.strip_prefix('@') {
            Some(file) => cmd.arg("-f").arg(file),
            None => cmd.arg("--set").arg(s),
        };
    }
    run(&mut cmd)
}

fn template_args(chart: &str) -> Vec<&str> {
    vec![
        "template",
        RELEASE,
        chart,
        "--namespace",
        NS,
        "--include-crds",
    ]
}

/// The objects of one `helm template` run.
#[derive(Debug)]
struct Rendered {
    docs: Vec<Value>,
}

fn parse_docs(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| {
            Value::deserialize(d)
                .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{yaml}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

impl Rendered {
    fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.find(kind, name)
            .unwrap_or_else(|| panic!("no {kind}/{name} among {:?}", self.ids()))
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    fn ids(&self) -> Vec<String> {
        self.docs
            .iter()
            .map(|d| {
                format!(
                    "{}/{}",
                    d["kind"].as_str().unwrap_or("?"),
                    d["metadata"]["name"].as_str().unwrap_or("?")
                )
            })
            .collect()
    }

    fn webhook(&self, kind: &str) -> &Value {
        let cfg = self.get(kind, RELEASE);
        let hooks = cfg["webhooks"].as_array().expect("webhooks is a list");
        assert_eq!(hooks.len(), 1, "{kind} has one webhook");
        &hooks[0]
    }

    fn webhooks(&self) -> [&Value; 2] {
        [
            self.webhook("MutatingWebhookConfiguration"),
            self.webhook("ValidatingWebhookConfiguration"),
        ]
    }

    /// Every pod spec in the output (Deployment, Jobs, CronJobs).
    fn pod_specs(&self) -> Vec<(String, &Value)> {
        let mut out = Vec::new();
        for d in &self.docs {
            let spec = match d["kind"].as_str() {
                Some("Deployment" | "Job") => &d["spec"]["template"]["spec"],
                Some("CronJob") => &d["spec"]["jobTemplate"]["spec"]["template"]["spec"],
                _ => continue,
            };
            out.push((
                d["metadata"]["name"].as_str().unwrap_or("?").to_string(),
                spec,
            ));
        }
        out
    }

    fn deployment_container(&self) -> &Value {
        &self.get("Deployment", RELEASE)["spec"]["template"]["spec"]["containers"][0]
    }

    fn env(&self, name: &str) -> &Value {
        let env = self.deployment_container()["env"]
            .as_array()
            .expect("env is a list");
        &env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no env {name} in {env:?}"))["value"]
    }
}

/// Lint and render one case with both Helm versions, check they agree, validate the output
/// against the Kubernetes schemas and check the invariants that hold for every values set.
fn render(kube: &str, sets: &[&str]) -> Option<Rendered> {
    let tools = tools()?;
    let chart = chart_dir();
    let chart = chart.to_str().expect("utf-8 path");
    let mut results = Vec::new();
    for (label, bin) in &tools.helms {
        let lint = helm(bin, &["lint", "--strict", chart], kube, sets);
        assert!(
            lint.status.success(),
            "{label} lint --strict {sets:?} at {kube}:\n{}{}",
            text(&lint.stdout),
            text(&lint.stderr)
        );
        let out = helm(bin, &template_args(chart), kube, sets);
        assert!(
            out.status.success(),
            "{label} template {sets:?} at {kube}:\n{}",
            text(&out.stderr)
        );
        let yaml = text(&out.stdout);
        results.push((label, yaml));
    }
    let (_, yaml) = &results[0];
    let rendered = Rendered {
        docs: parse_docs(yaml),
    };
    for (label, other) in &results[1..] {
        same_objects(
            &rendered,
            &Rendered {
                docs: parse_docs(other),
            },
            &format!("{label} vs helm3 for {sets:?}"),
        );
    }
    validate(&tools, yaml, kube, &rendered);
    invariants(&rendered, yaml);
    Some(rendered)
}

/// The same objects, in any order (Helm 3 and 4 order documents differently); on a mismatch
/// the message names the object that differs.
fn same_objects(a: &Rendered, b: &Rendered, what: &str) {
    let (mut ids_a, mut ids_b) = (a.ids(), b.ids());
    ids_a.sort();
    ids_b.sort();
    assert_eq!(ids_a, ids_b, "{what}: different objects");
    for doc in &a.docs {
        let (kind, name) = (
            doc["kind"].as_str().expect("kind"),
            doc["metadata"]["name"].as_str().expect("name"),
        );
        let other = b.get(kind, name);
        assert!(
            doc == other,
            "{what}: {kind}/{name} differs:\n{}\n---\n{}",
            serde_json::to_string_pretty(doc).expect("json"),
            serde_json::to_string_pretty(other).expect("json")
        );
    }
}

/// `kubernetes-validate --strict`: every object passes, and only kinds without a published
/// schema are skipped.
fn validate(tools: &Tools, yaml: &str, kube: &str, rendered: &Rendered) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, yaml).expect("write rendered.yaml");
    let out = run(Command::new(&tools.validator)
        .arg("--strict")
        .arg("-k")
        .arg(kube)
        .arg(&file));
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "kubernetes-validate --strict -k {kube} failed:\n{report}"
    );
    for doc in &rendered.docs {
        let kind = doc["kind"].as_str().expect("kind");
        let name = doc["metadata"]["name"].as_str().expect("name");
        if KINDS_WITHOUT_SCHEMA.contains(&kind) {
            continue;
        }
        let passed = format!("passed for resource {}/{name} ", kind.to_lowercase());
        assert!(
            report.contains(&passed),
            "{kind}/{name} was not validated at {kube}:\n{report}"
        );
    }
    for line in report
        .lines()
        .filter(|l| l.contains("Couldn't find schema"))
    {
        assert!(
            KINDS_WITHOUT_SCHEMA
                .iter()
                .any(|k| line.contains(&format!("kind {k} "))),
            "unexpected kind without schema: {line}"
        );
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string"))
        .collect()
}

/// What every rendering must satisfy, whatever the values.
fn invariants(r: &Rendered, yaml: &str) {
    for bad in [
        "INSERT_CERTIFICATE",
        "CA_BUNDLE",
        "PLACEHOLDER",
        "<no value>",
        "%!",
    ] {
        assert!(
            !yaml.contains(bad),
            "rendered output contains the placeholder {bad:?}"
        );
    }
    const CLUSTER_SCOPED: &[&str] = &[
        "ClusterRole",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "CustomResourceDefinition",
        "GMSACredentialSpec",
    ];
    for d in &r.docs {
        let kind = d["kind"].as_str().expect("every object has a kind");
        if CLUSTER_SCOPED.contains(&kind) {
            assert!(
                d["metadata"].get("namespace").is_none(),
                "{kind} is cluster-scoped: {d}"
            );
        } else {
            assert_eq!(
                d["metadata"]["namespace"], NS,
                "{kind}/{} is in the release namespace",
                d["metadata"]["name"]
            );
        }
    }
    for hook in r.webhooks() {
        assert_eq!(hook["name"], "admission-webhook.windows-gmsa.sigs.k8s.io");
        assert_eq!(hook["sideEffects"], "None");
        assert_eq!(strings(&hook["admissionReviewVersions"]), ["v1", "v1beta1"]);
        assert_eq!(
            hook["clientConfig"]["service"],
            json!({"name": RELEASE, "namespace": NS, "path": hook["clientConfig"]["service"]["path"], "port": 443})
        );
        if let Some(bundle) = hook["clientConfig"].get("caBundle") {
            let pem = base64_decode(bundle.as_str().expect("caBundle is a string"));
            assert!(
                pem.contains("-----BEGIN CERTIFICATE-----"),
                "caBundle is not a base64 PEM bundle: {bundle}"
            );
        }
    }
    // The release namespace never goes through the mutating webhook; the `use` check (the
    // validating one) covers it too once matchConditions keep the webhook's own pods out.
    let first =
        &r.webhook("MutatingWebhookConfiguration")["namespaceSelector"]["matchExpressions"][0];
    assert_eq!(first["key"], "kubernetes.io/metadata.name");
    assert_eq!(first["operator"], "NotIn");
    assert!(
        strings(&first["values"]).contains(&NS),
        "the release namespace never goes through the mutating webhook: {first}"
    );
    let validating = &r.webhook("ValidatingWebhookConfiguration")["namespaceSelector"];
    if has_match_conditions(r) {
        // Every namespace, or only the explicit holes of unsafeExcludeNamespaces.
        let holes = &validating["matchExpressions"];
        assert!(
            validating == &json!({})
                || (holes.as_array().is_some_and(|e| e.len() == 1)
                    && holes[0]["key"] == "kubernetes.io/metadata.name"
                    && holes[0]["operator"] == "NotIn"),
            "with matchConditions the `use` check covers every namespace but explicit holes: {validating}"
        );
    } else {
        assert_eq!(
            validating,
            &r.webhook("MutatingWebhookConfiguration")["namespaceSelector"],
            "before matchConditions both webhooks skip the same namespaces"
        );
    }
    let pods = r.pod_specs();
    assert!(!pods.is_empty());
    for (name, pod) in pods {
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux", "{name}");
        for c in pod["containers"].as_array().expect("containers") {
            let sc = &c["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"], "{name}");
            assert!(
                sc["capabilities"].get("add").is_none(),
                "{name} adds no capability"
            );
            assert!(
                c["resources"]["requests"].is_object() && c["resources"]["limits"].is_object(),
                "{name} has requests and limits"
            );
        }
    }
}

fn base64_decode(s: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for b in s.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b'=') {
        let v = ALPHABET
            .iter()
            .position(|a| *a == b)
            .unwrap_or_else(|| panic!("not base64: {s}"));
        bits = (bits << 6) | u32::try_from(v).expect("small");
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push(u8::try_from((bits >> n) & 0xff).expect("byte"));
        }
    }
    String::from_utf8(out).expect("utf-8 PEM")
}

/// A syntactically valid base64 PEM bundle for the secret-mode cases.
const TEST_CA_BUNDLE: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJmVENDQVNPZ0F3SUJBZ0lVWjZ0ZXN0Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K";

fn rules_of(role: &Value) -> Vec<Value> {
    role["rules"].as_array().expect("rules").clone()
}

fn annotation<'a>(obj: &'a Value, key: &str) -> &'a Value {
    &obj["metadata"]["annotations"][key]
}

fn args(pod: &Value) -> Vec<&str> {
    strings(&pod["containers"][0]["args"])
}

fn has_match_conditions(r: &Rendered) -> bool {
    let [m, v] = r.webhooks();
    assert_eq!(
        m.get("matchConditions").is_some(),
        v.get("matchConditions").is_some(),
        "both webhooks agree"
    );
    m.get("matchConditions").is_some()
}

#[test]
fn default_values_render_a_hardened_highly_available_webhook() {
    let Some(r) = render(NEWEST, &[]) else { return };
    let deploy = r.get("Deployment", RELEASE);
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        deploy["spec"]["selector"]["matchLabels"],
        json!({"app": RELEASE})
    );
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], RELEASE);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert!(
        pod["securityContext"].get("sysctls").is_none(),
        "8443 needs no sysctl"
    );
    assert_eq!(pod["os"]["name"], "linux");
    assert_eq!(
        pod["topologySpreadConstraints"],
        json!([{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": RELEASE}}}])
    );
    assert!(pod.get("priorityClassName").is_none());
    let c = r.deployment_container();
    assert_eq!(c["image"], "gmsa/gmsa:0.1.0");
    assert_eq!(
        c["ports"],
        json!([
        {"name": "https", "containerPort": 8443, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}])
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"scheme": "HTTPS", "path": "/health", "port": "https"})
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"scheme": "HTTP", "path": "/live", "port": "metrics"})
    );
    for (name, value) in [
        ("TLS_CRT", "/tls/crt"),
        ("TLS_KEY", "/tls/key"),
        ("HTTPS_PORT", "8443"),
        ("ADMIN_PORT", "9090"),
        ("LOG_LEVEL", "info"),
        ("LOG_FORMAT", "json"),
        ("QPS", "30"),
        ("BURST", "50"),
        ("RANDOM_HOSTNAME", "false"),
        ("CERT_RELOAD", "true"),
        ("REQUEST_TIMEOUT", "4000ms"),
        ("API_TIMEOUT", "3000ms"),
        ("SHUTDOWN_DELAY", "5s"),
    ] {
        assert_eq!(r.env(name), value, "env {name}");
    }
    assert_eq!(
        pod["volumes"][0],
        json!({"name": "tls", "secret": {"secretName": "gmsa-server-cert",
               "items": [{"key": "tls.key", "path": "key"}, {"key": "tls.crt", "path": "crt"}]}})
    );
    let pdb = r.get("PodDisruptionBudget", RELEASE);
    assert_eq!(
        pdb["spec"],
        json!({"selector": {"matchLabels": {"app": RELEASE}}, "maxUnavailable": 1})
    );
    let svc = r.get("Service", RELEASE);
    assert_eq!(
        svc["spec"]["ports"][0],
        json!({"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"})
    );
    assert_eq!(svc["spec"]["ports"][1]["name"], "metrics");
    // The webhook's RBAC: exactly read specs and create access reviews.
    assert_eq!(
        rules_of(r.get("ClusterRole", RELEASE)),
        vec![
            json!({"apiGroups": ["windows.k8s.io"], "resources": ["gmsacredentialspecs"], "verbs": ["get", "list", "watch"]}),
            json!({"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]}),
        ]
    );
    let [m, v] = r.webhooks();
    assert_eq!(
        m["rules"],
        json!([
        {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["*"], "resources": ["pods"], "scope": "Namespaced"},
        {"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["*"], "resources": ["pods/ephemeralcontainers"], "scope": "Namespaced"}])
    );
    assert_eq!(
        v["rules"],
        json!([
        {"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["*"], "resources": ["pods"], "scope": "Namespaced"},
        {"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["*"], "resources": ["pods/ephemeralcontainers"], "scope": "Namespaced"}])
    );
    assert_eq!(m["clientConfig"]["service"]["path"], "/mutate");
    assert_eq!(v["clientConfig"]["service"]["path"], "/validate");
    for hook in [m, v] {
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["timeoutSeconds"], 5);
    }
    assert_eq!(
        m["namespaceSelector"],
        json!({"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [NS, "kube-system"]},
            {"key": "windows.k8s.io/disabled", "operator": "NotIn", "values": ["true"]}]})
    );
    assert_eq!(
        v["namespaceSelector"],
        json!({}),
        "the `use` check has no namespace hole at {NEWEST}: release namespace, kube-system and disabled namespaces included"
    );
    assert!(
        has_match_conditions(&r),
        "matchConditions are on by default at {NEWEST}"
    );
    for kind in [
        "ServiceMonitor",
        "GMSACredentialSpec",
        "Certificate",
        "Issuer",
    ] {
        assert!(r.of_kind(kind).is_empty(), "no {kind} by default");
    }
    assert!(r
        .find("ClusterRole", &format!("{RELEASE}-viewer"))
        .is_none());
    // The CRD ships in crds/ once it is generated; when present it validates too.
    if chart_dir()
        .join("crds")
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
    {
        assert_eq!(r.of_kind("CustomResourceDefinition").len(), 1);
    }
}

#[test]
fn csr_mode_issues_before_install_patches_after_and_renews_on_upgrade_or_a_schedule() {
    let Some(r) = render(NEWEST, &["certificates.mode=csr"]) else {
        return;
    };
    let scheduled = render(
        NEWEST,
        &[
            "certificates.mode=csr",
            "certificates.csr.renew.enabled=true",
        ],
    )
    .expect("tools present");
    same_objects(
        &r,
        &render(NEWEST, &[]).expect("tools present"),
        "csr is the default mode",
    );
    for hook in r.webhooks() {
        assert!(
            hook["clientConfig"].get("caBundle").is_none(),
            "the patch Job owns caBundle in csr mode"
        );
    }
    assert!(annotation(
        r.get("MutatingWebhookConfiguration", RELEASE),
        "cert-manager.io/inject-ca-from"
    )
    .is_null());
    // What `certs issue` and `certs renew` are both told.
    let target = [
        "--service",
        RELEASE,
        "--namespace",
        NS,
        "--secret",
        "gmsa-server-cert",
        "--signer",
        "kubernetes.io/kubelet-serving",
        "--approve",
    ];
    let common = [&["certs", "issue"][..], &target].concat();

    let issue = r.get("Job", "gmsa-certs-issue");
    assert_eq!(annotation(issue, "helm.sh/hook"), "pre-install,pre-upgrade");
    let issue_pod = &issue["spec"]["template"]["spec"];
    assert_eq!(issue_pod["serviceAccountName"], "gmsa-certs-hook");
    assert_eq!(
        strings(&issue_pod["containers"][0]["command"]),
        ["/usr/local/bin/gmsa"]
    );
    assert_eq!(args(issue_pod), common);

    let patch = r.get("Job", "gmsa-certs-patch");
    assert_eq!(
        annotation(patch, "helm.sh/hook"),
        "post-install,post-upgrade"
    );
    let patch_pod = &patch["spec"]["template"]["spec"];
    assert_eq!(patch_pod["serviceAccountName"], "gmsa-certs-patch");
    assert_eq!(
        args(patch_pod),
        [&common[..], &["--patch-webhook", RELEASE]].concat()
    );

    assert!(
        r.of_kind("CronJob").is_empty() && r.find("ServiceAccount", "gmsa-certs").is_none(),
        "no standing renewal (and no standing CSR rights) by default"
    );
    let cron = scheduled.get("CronJob", "gmsa-certs-renew");
    assert!(
        annotation(cron, "helm.sh/hook").is_null(),
        "the CronJob is a release resource"
    );
    let cron_pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(cron_pod["serviceAccountName"], "gmsa-certs");
    assert_eq!(
        args(cron_pod),
        [
            &["certs", "renew"][..],
            &target,
            &["--renew-before", "720h", "--patch-webhook", RELEASE],
        ]
        .concat()
    );

    // Hook RBAC (deleted once the hooks of its event succeed) and, only with the CronJob, the
    // same issuing rights as standing release resources. The patch hook gets no CSR right.
    let issue_cluster_rules = vec![
        json!({"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"], "verbs": ["create", "get", "list", "watch", "delete"]}),
        json!({"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/approval"], "verbs": ["update"]}),
        json!({"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "resourceNames": ["kubernetes.io/kubelet-serving"], "verbs": ["approve"]}),
        json!({"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"], "resourceNames": [RELEASE], "verbs": ["get", "patch"]}),
    ];
    let issue_rules = vec![
        json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}),
        json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["gmsa-server-cert"], "verbs": ["get", "update", "patch"]}),
        json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kube-root-ca.crt"], "verbs": ["get"]}),
    ];
    let patch_cluster_rules = vec![
        json!({"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"], "resourceNames": [RELEASE], "verbs": ["get", "patch"]}),
    ];
    let patch_rules = vec![
        json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["gmsa-server-cert"], "verbs": ["get"]}),
        json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kube-root-ca.crt"], "verbs": ["get"]}),
    ];
    let sets = [
        (
            &r,
            "gmsa-certs-hook",
            Some("pre-install,pre-upgrade"),
            &issue_cluster_rules,
            &issue_rules,
        ),
        (
            &r,
            "gmsa-certs-patch",
            Some("post-install,post-upgrade"),
            &patch_cluster_rules,
            &patch_rules,
        ),
        (
            &scheduled,
            "gmsa-certs",
            None,
            &issue_cluster_rules,
            &issue_rules,
        ),
    ];
    for (r, name, events, cluster_rules, rules) in sets {
        for kind in [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
        ] {
            let obj = r.get(kind, name);
            if let Some(events) = events {
                assert_eq!(annotation(obj, "helm.sh/hook"), events, "{kind}/{name}");
                assert_eq!(
                    annotation(obj, "helm.sh/hook-weight"),
                    "-10",
                    "{kind}/{name} precedes the Job"
                );
                assert_eq!(
                    annotation(obj, "helm.sh/hook-delete-policy"),
                    "before-hook-creation,hook-succeeded"
                );
            } else {
                assert!(annotation(obj, "helm.sh/hook").is_null(), "{kind}/{name}");
            }
        }
        assert_eq!(
            &rules_of(r.get("ClusterRole", name)),
            cluster_rules,
            "{name}"
        );
        assert_eq!(&rules_of(r.get("Role", name)), rules, "{name}");
        assert_eq!(
            r.get("RoleBinding", name)["subjects"],
            json!([{"kind": "ServiceAccount", "name": name, "namespace": NS}])
        );
        assert_eq!(r.get("ClusterRoleBinding", name)["roleRef"]["name"], name);
    }
}

#[test]
fn csr_mode_without_approval_or_renewal_asks_for_less() {
    let Some(r) = render(
        OLDEST,
        &[
            "certificates.csr.renew.enabled=true",
            "certificates.csr.approve=false",
            "certificates.csr.signerName=example.com/serving",
            "certificates.csr.duration=2160h",
        ],
    ) else {
        return;
    };
    let cron =
        &r.get("CronJob", "gmsa-certs-renew")["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    for pod in [
        &r.get("Job", "gmsa-certs-issue")["spec"]["template"]["spec"],
        &r.get("Job", "gmsa-certs-patch")["spec"]["template"]["spec"],
        cron,
    ] {
        let a = args(pod);
        assert!(
            a.contains(&"--no-approve") && !a.contains(&"--approve"),
            "{a:?}"
        );
        assert!(
            a.windows(2)
                .any(|w| w == ["--signer", "example.com/serving"]),
            "{a:?}"
        );
        assert!(a.windows(2).any(|w| w == ["--duration", "2160h"]), "{a:?}");
    }
    let no_renew =
        render(OLDEST, &["certificates.csr.renew.enabled=false"]).expect("tools present");
    assert!(no_renew.of_kind("CronJob").is_empty());
    assert!(
        no_renew.find("Job", "gmsa-certs-patch").is_some(),
        "the caBundle patch does not depend on renewal"
    );
    let rules = rules_of(r.get("ClusterRole", "gmsa-certs"));
    assert!(
        !rules
            .iter()
            .any(|rule| rule["resources"] == json!(["signers"])),
        "no approve permission without approve: {rules:?}"
    );
}

#[test]
fn cert_manager_mode_from_the_reference_values_injects_the_ca() {
    let Some(r) = render(NEWEST, &["certificates.certManager.enabled=true"]) else {
        return;
    };
    same_objects(
        &r,
        &render(NEWEST, &["certificates.mode=certManager"]).expect("tools present"),
        "mode from certManager.enabled",
    );
    assert!(
        r.of_kind("Job").is_empty() && r.of_kind("CronJob").is_empty(),
        "cert-manager renews"
    );
    assert!(r.find("ClusterRole", "gmsa-certs").is_none());
    assert_eq!(
        r.get("Issuer", "gmsa-selfsigned")["spec"],
        json!({"selfSigned": {}})
    );
    let ca = r.get("Certificate", "gmsa-ca");
    assert_eq!(ca["spec"]["isCA"], true);
    assert_eq!(
        ca["spec"]["issuerRef"],
        json!({"kind": "Issuer", "name": "gmsa-selfsigned"})
    );
    assert_eq!(
        r.get("Issuer", "gmsa-ca")["spec"],
        json!({"ca": {"secretName": "gmsa-ca"}})
    );
    let serving = &r.get("Certificate", RELEASE)["spec"];
    assert_eq!(serving["secretName"], "gmsa-server-cert");
    assert_eq!(
        serving["issuerRef"],
        json!({"kind": "Issuer", "name": "gmsa-ca"})
    );
    assert_eq!(
        strings(&serving["dnsNames"]),
        [
            "gmsa",
            "gmsa.gmsa-system",
            "gmsa.gmsa-system.svc",
            "gmsa.gmsa-system.svc.cluster.local"
        ]
    );
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let cfg = r.get(kind, RELEASE);
        assert_eq!(
            annotation(cfg, "cert-manager.io/inject-ca-from"),
            "gmsa-system/gmsa"
        );
        assert!(cfg["webhooks"][0]["clientConfig"].get("caBundle").is_none());
    }
}

#[test]
fn secret_mode_puts_the_given_ca_bundle_in_both_webhooks() {
    let bundle = format!("certificates.caBundle={TEST_CA_BUNDLE}");
    // The reference chart's way (certManager off, caBundle given) selects secret mode.
    let Some(r) = render(
        OLDEST,
        &[
            "certificates.certManager.enabled=false",
            &bundle,
            "certificates.secretName=my-cert",
        ],
    ) else {
        return;
    };
    same_objects(
        &r,
        &render(
            OLDEST,
            &[
                "certificates.mode=secret",
                &bundle,
                "certificates.secretName=my-cert",
            ],
        )
        .expect("tools present"),
        "mode from caBundle",
    );
    for hook in r.webhooks() {
        assert_eq!(hook["clientConfig"]["caBundle"], TEST_CA_BUNDLE);
    }
    assert!(r.of_kind("Job").is_empty() && r.of_kind("Certificate").is_empty());
    assert_eq!(
        r.get("Deployment", RELEASE)["spec"]["template"]["spec"]["volumes"][0]["secret"]
            ["secretName"],
        "my-cert"
    );
}

#[test]
fn secret_mode_without_a_ca_bundle_fails_with_a_clear_message() {
    let Some(tools) = tools() else { return };
    let chart = chart_dir();
    for (label, bin) in &tools.helms {
        let out = helm(
            bin,
            &template_args(chart.to_str().expect("utf-8")),
            NEWEST,
            &["certificates.mode=secret"],
        );
        assert!(
            !out.status.success(),
            "{label} must refuse to render a webhook without a caBundle"
        );
        let err = text(&out.stderr);
        assert!(
            err.contains("certificates.mode=secret needs the CA")
                && err.contains("certificates.caBundle"),
            "{label}: {err}"
        );
    }
}

#[test]
fn opt_in_mode_selects_only_labelled_namespaces() {
    let Some(r) = render(
        NEWEST,
        &[
            "webhook.namespaceSelector.mode=optIn",
            "webhook.namespaceSelector.excludeNamespaces=null",
        ],
    ) else {
        return;
    };
    assert_eq!(
        r.webhook("MutatingWebhookConfiguration")["namespaceSelector"],
        json!({"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [NS]},
            {"key": "windows.k8s.io/gmsa", "operator": "In", "values": ["enabled"]}]})
    );
    assert_eq!(
        r.webhook("ValidatingWebhookConfiguration")["namespaceSelector"],
        json!({}),
        "opting in selects what is mutated; the `use` check still covers every namespace"
    );
    let Some(custom) = render(
        NEWEST,
        &[
            "webhook.namespaceSelector.mode=optIn",
            "webhook.namespaceSelector.optInLabel=example.com/gmsa",
            "webhook.namespaceSelector.optInValue=yes",
        ],
    ) else {
        return;
    };
    assert_eq!(
        custom.webhook("MutatingWebhookConfiguration")["namespaceSelector"]["matchExpressions"][1],
        json!({"key": "example.com/gmsa", "operator": "In", "values": ["yes"]})
    );
}

#[test]
fn validation_namespace_holes_are_explicit_and_only_before_1_30_implied() {
    let Some(holes) = render(
        NEWEST,
        &["webhook.validation.unsafeExcludeNamespaces={legacy,lab}"],
    ) else {
        return;
    };
    assert_eq!(
        holes.webhook("ValidatingWebhookConfiguration")["namespaceSelector"],
        json!({"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["legacy", "lab"]}]})
    );
    assert_eq!(
        holes.webhook("MutatingWebhookConfiguration")["namespaceSelector"]["matchExpressions"][0]
            ["values"],
        json!([NS, "kube-system"]),
        "mutation exclusions are unchanged"
    );
    // Before 1.30 (no matchConditions) every pod of a selected namespace is sent, so the
    // webhook's own namespace and kube-system stay out of both.
    let old = render(OLDEST, &[]).expect("tools present");
    assert!(!has_match_conditions(&old));
    assert_eq!(
        old.webhook("ValidatingWebhookConfiguration")["namespaceSelector"],
        old.webhook("MutatingWebhookConfiguration")["namespaceSelector"]
    );
    // Forced on at 1.28 (beta): the same as 1.30+.
    let forced = render(OLDEST, &["webhook.matchConditions.enabled=true"]).expect("tools present");
    assert_eq!(
        forced.webhook("ValidatingWebhookConfiguration")["namespaceSelector"],
        json!({})
    );
}

#[test]
fn failure_policy_and_timeout_come_from_values() {
    let Some(r) = render(
        OLDEST,
        &["webhook.failurePolicy=Ignore", "webhook.timeoutSeconds=10"],
    ) else {
        return;
    };
    for hook in r.webhooks() {
        assert_eq!(hook["failurePolicy"], "Ignore");
        assert_eq!(hook["timeoutSeconds"], 10);
    }
    assert_eq!(
        r.env("REQUEST_TIMEOUT"),
        "8000ms",
        "the webhook answers before the API server gives up"
    );
    assert_eq!(r.env("API_TIMEOUT"), "6000ms");
}

#[test]
fn match_conditions_follow_the_kubernetes_version_unless_forced() {
    let Some(oldest) = render(OLDEST, &[]) else {
        return;
    };
    assert!(!has_match_conditions(&oldest), "auto: off before 1.30");
    assert!(
        has_match_conditions(&render("1.30.0", &[]).expect("tools present")),
        "auto: on from 1.30 (GA)"
    );
    assert!(
        has_match_conditions(
            &render(OLDEST, &["webhook.matchConditions.enabled=true"]).expect("tools present")
        ),
        "forced on (beta in 1.28)"
    );
    assert!(
        !has_match_conditions(
            &render(NEWEST, &["webhook.matchConditions.enabled=false"]).expect("tools present")
        ),
        "forced off"
    );
}

#[test]
fn cel_match_condition_looks_at_the_pod_and_every_container_list_of_object_and_old_object() {
    let Some(r) = render(NEWEST, &[]) else { return };
    for hook in r.webhooks() {
        let conds = hook["matchConditions"].as_array().expect("matchConditions");
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0]["name"], "pod-mentions-gmsa");
        let expr = conds[0]["expression"].as_str().expect("expression");
        for var in ["object", "oldObject"] {
            for place in [
                format!("has({var}.spec.securityContext.windowsOptions.gmsaCredentialSpecName)"),
                format!("has({var}.spec.securityContext.windowsOptions.gmsaCredentialSpec)"),
                format!("has({var}.spec.containers) && {var}.spec.containers.exists(c,"),
                format!("has({var}.spec.initContainers) && {var}.spec.initContainers.exists(c,"),
                format!("has({var}.spec.ephemeralContainers) && {var}.spec.ephemeralContainers.exists(c,"),
            ] {
                assert!(expr.contains(&place), "expression lacks {place}:\n{expr}");
            }
        }
        assert!(
            expr.contains("|| (request.operation == \"UPDATE\" && ("),
            "oldObject (null on CREATE) is only read on UPDATE:\n{expr}"
        );
        assert_eq!(
            expr.matches("has(c.securityContext.windowsOptions.gmsaCredentialSpecName)")
                .count(),
            6
        );
        assert_eq!(
            expr.matches('(').count(),
            expr.matches(')').count(),
            "balanced parentheses:\n{expr}"
        );
    }
}

#[test]
fn every_optional_feature_renders_valid_manifests() {
    let sets = [
        "credential.enabled=true",
        "credential.domainJoinConfig.machineAccountName=WebApp_01",
        "credential.domainJoinConfig.dnsName=contoso.com",
        "credential.domainJoinConfig.netBiosName=CONTOSO",
        "credential.domainJoinConfig.guid=244818ae-87ac-4fcd-92ec-e79e5252348a",
        "credential.domainJoinConfig.sid=S-1-5-21-2126449477-2524075714-3094792973",
        "credential.hostAccountConfig.pluginGUID=CCC2A336-D7F3-4818-A213-272B7924213E",
        "credential.hostAccountConfig.pluginInput=ObjectId=x;SecretUri=y",
        "viewerRole=true",
        "metrics.serviceMonitor.enabled=true",
        "priorityClassName=system-cluster-critical",
        "podDisruptionBudget.minAvailable=1",
        "nodeselector.pool=system",
        "global.systemDefaultRegistry=mirror.example.com",
        "image.tag=v9",
        "containerPort=443",
        "replicaCount=3",
        "topologySpread.enabled=false",
        "randomHostname=true",
        "qps=12.5",
        "logFormat=text",
        "extraEnv[0].name=AUTHZ_CACHE_TTL",
        "extraEnv[0].value=30",
    ];
    let Some(r) = render(OLDEST, &sets) else {
        return;
    };
    let spec = r.get("GMSACredentialSpec", "webapp-01");
    let ad = &spec["credspec"]["ActiveDirectoryConfig"];
    assert_eq!(
        ad["GroupManagedServiceAccounts"],
        json!([{"Name": "WebApp_01", "Scope": "CONTOSO"}, {"Name": "WebApp_01", "Scope": "contoso.com"}])
    );
    assert_eq!(
        ad["HostAccountConfig"],
        json!({"PortableCcgVersion": "1", "PluginGUID": "{CCC2A336-D7F3-4818-A213-272B7924213E}", "PluginInput": "ObjectId=x;SecretUri=y"})
    );
    assert_eq!(
        spec["credspec"]["DomainJoinConfig"]["DnsTreeName"],
        "contoso.com"
    );
    assert_eq!(spec["credspec"]["CmsPlugins"], json!(["ActiveDirectory"]));
    let viewer = r.get("ClusterRole", "gmsa-viewer");
    assert_eq!(
        viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    assert_eq!(
        r.get("ServiceMonitor", RELEASE)["spec"]["endpoints"][0]["port"],
        "metrics"
    );
    let deploy = r.get("Deployment", RELEASE);
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(deploy["spec"]["replicas"], 3);
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert!(pod.get("topologySpreadConstraints").is_none());
    assert_eq!(
        pod["nodeSelector"],
        json!({"kubernetes.io/os": "linux", "pool": "system"})
    );
    assert_eq!(
        r.deployment_container()["image"],
        "mirror.example.com/gmsa/gmsa:v9"
    );
    assert_eq!(r.deployment_container()["ports"][0]["containerPort"], 443);
    assert_eq!(r.env("HTTPS_PORT"), "443");
    assert_eq!(r.env("RANDOM_HOSTNAME"), "true");
    assert_eq!(r.env("QPS"), "12.5");
    assert_eq!(r.env("LOG_FORMAT"), "text");
    assert_eq!(r.env("AUTHZ_CACHE_TTL"), "30");
    assert_eq!(
        r.get("PodDisruptionBudget", RELEASE)["spec"]["minAvailable"],
        1
    );
}

#[test]
fn wrong_values_are_rejected_naming_the_value() {
    let Some(tools) = tools() else { return };
    let chart = chart_dir();
    let chart = chart.to_str().expect("utf-8");
    for (set, names) in [
        ("webhook.failurePolicy=Never", "failurePolicy"),
        ("webhook.timeoutSeconds=60", "timeoutSeconds"),
        ("certificates.mode=vault", "mode"),
        ("webhook.namespaceSelector.mode=all", "mode"),
        ("containerPort=http", "containerPort"),
        ("replicaCount=two", "replicaCount"),
        ("certificates.csr.renew.renewBefore=30 days", "renewBefore"),
        ("webhook.matchConditions.enabled=maybe", "enabled"),
        ("unknownTopLevel=1", "unknownTopLevel"),
    ] {
        for (label, bin) in &tools.helms {
            let out = helm(bin, &template_args(chart), NEWEST, &[set]);
            let err = text(&out.stderr);
            assert!(!out.status.success(), "{label} accepted {set}");
            assert!(
                err.contains(names),
                "{label} rejects {set} without naming {names}: {err}"
            );
        }
    }
}

#[test]
fn kubernetes_validate_rejects_unknown_fields() {
    // The validator must be able to fail, or the checks above prove nothing.
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  portz: []\n",
    )
    .expect("write");
    let out = run(Command::new(&tools.validator)
        .arg("--strict")
        .arg("-k")
        .arg(NEWEST)
        .arg(&file));
    assert!(
        !out.status.success(),
        "kubernetes-validate --strict accepted an unknown field"
    );
}

#[test]
fn chart_version_and_app_version_follow_the_workspace_version() {
    let chart: Value =
        serde_norway::from_str(&read(&chart_dir().join("Chart.yaml"))).expect("Chart.yaml parses");
    let workspace = env!("CARGO_PKG_VERSION");
    assert_eq!(chart["appVersion"], workspace, "Chart.yaml appVersion");
    assert_eq!(chart["version"], workspace, "Chart.yaml version");
    assert_eq!(
        chart["kubeVersion"],
        format!(">={}-0", OLDEST),
        "kubeVersion matches the oldest version tested"
    );
}

/// Dotted paths of the values in values.yaml (maps are descended, anything else is a value).
fn value_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v.as_object() {
        Some(map) if !map.is_empty() => {
            for (k, child) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                value_paths(child, &path, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

fn values() -> Vec<String> {
    let values: Value = serde_norway::from_str(&read(&chart_dir().join("values.yaml")))
        .expect("values.yaml parses");
    let mut paths = Vec::new();
    value_paths(&values, "", &mut paths);
    paths
}

#[test]
fn values_schema_types_every_value() {
    let schema: Value = serde_json::from_str(&read(&chart_dir().join("values.schema.json")))
        .expect("values.schema.json parses");
    for path in values() {
        let mut node = &schema;
        for part in path.split('.') {
            if node.get("properties").is_none() && node.get("type") == Some(&json!("object")) {
                break; // a free-form map (resources requests/limits) types its contents itself
            }
            node = &node["properties"][part];
        }
        assert!(
            node.get("type").is_some() || node.get("anyOf").is_some() || node.get("enum").is_some(),
            "values.schema.json does not type {path}"
        );
    }
}

#[test]
fn readme_lists_every_value_and_no_stale_one() {
    let readme = read(&chart_dir().join("README.md"));
    let table = readme
        .split("\n## Values\n")
        .nth(1)
        .expect("README has a ## Values section");
    let listed: BTreeSet<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    let values = values();
    for path in &values {
        // A free-form map (resources) is listed as a whole.
        let covered = listed
            .iter()
            .any(|l| path == l || path.starts_with(&format!("{l}.")));
        assert!(covered, "charts/gmsa/README.md does not list `{path}`");
    }
    let schema: Value = serde_json::from_str(&read(&chart_dir().join("values.schema.json")))
        .expect("schema parses");
    for path in listed {
        let mut node = &schema;
        for part in path.split('.') {
            node = &node["properties"][part];
        }
        assert!(
            !node.is_null() || values.iter().any(|v| v == path),
            "README lists `{path}`, which the chart does not have"
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

/// Evaluates the rendered CEL with cel-python for each (operation, object, oldObject).
fn eval_cel(tools: &Tools, expr: &str, cases: &[(&str, Value, Value)]) -> Vec<bool> {
    const SCRIPT: &str = r#"
import json, sys, celpy
expr, cases = json.load(sys.stdin)
env = celpy.Environment()
prog = env.program(env.compile(expr))
out = []
for op, obj, old in cases:
    result = prog.evaluate({"request": celpy.json_to_cel({"operation": op}),
                            "object": celpy.json_to_cel(obj), "oldObject": celpy.json_to_cel(old)})
    if not isinstance(result, celpy.celtypes.BoolType):
        sys.exit(f"not a bool: {result!r} for {op} {obj} {old}")
    out.append(bool(result))
print(json.dumps(out))
"#;
    use std::io::Write;
    let mut child = Command::new(&tools.python)
        .arg("-c")
        .arg(SCRIPT)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start python");
    let input = json!([
        expr,
        cases
            .iter()
            .map(|(op, o, old)| json!([op, o, old]))
            .collect::<Vec<_>>()
    ]);
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write cases");
    let out = child.wait_with_output().expect("python runs");
    assert!(
        out.status.success(),
        "CEL evaluation failed:\n{}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON list of booleans")
}

/// A pod whose `place` ("pod", "containers", "initContainers", "ephemeralContainers") carries
/// `windows_options`; the other places have none. The GMSA container is the second one.
fn pod_with(place: &str, windows_options: &Value) -> Value {
    let sc = json!({"windowsOptions": windows_options});
    let plain = json!({"name": "plain", "image": "x"});
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"containers": [plain.clone()]}});
    match place {
        "pod" => pod["spec"]["securityContext"] = sc,
        list => {
            let mut c = json!({"name": "gmsa", "image": "x"});
            c["securityContext"] = sc;
            let items = pod["spec"]
                .get(list)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            pod["spec"][list] = Value::Array(items.into_iter().chain([c]).collect());
        }
    }
    pod
}

#[test]
fn cel_match_condition_passes_exactly_the_pods_that_mention_gmsa() {
    let Some(tools) = tools() else { return };
    let Some(r) = render(NEWEST, &[]) else { return };
    let places = ["pod", "containers", "initContainers", "ephemeralContainers"];
    let gmsa = [
        json!({"gmsaCredentialSpecName": "webapp01"}),
        json!({"gmsaCredentialSpec": "{}"}),
        json!({"gmsaCredentialSpecName": "a", "gmsaCredentialSpec": "{}"}),
    ];
    let other = [
        json!({"runAsUserName": "ContainerUser"}),
        json!({"hostProcess": false}),
    ];
    let none = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"runAsNonRoot": true}}]}});
    let mut cases: Vec<(&str, Value, Value, bool)> = vec![
        ("CREATE", none.clone(), Value::Null, false),
        ("UPDATE", none.clone(), none.clone(), false),
    ];
    for place in places {
        for w in &gmsa {
            cases.push(("CREATE", pod_with(place, w), Value::Null, true));
            cases.push(("UPDATE", pod_with(place, w), none.clone(), true));
            // UPDATE that removes GMSA: the old pod mentions it, so the webhook must see it.
            cases.push(("UPDATE", none.clone(), pod_with(place, w), true));
        }
        for w in &other {
            cases.push(("CREATE", pod_with(place, w), Value::Null, false));
            cases.push(("UPDATE", pod_with(place, w), pod_with(place, w), false));
        }
        cases.push(("CREATE", pod_with(place, &json!({})), Value::Null, false));
    }
    let input: Vec<(&str, Value, Value)> = cases
        .iter()
        .map(|(op, o, old, _)| (*op, o.clone(), old.clone()))
        .collect();
    for hook in r.webhooks() {
        let expr = hook["matchConditions"][0]["expression"]
            .as_str()
            .expect("expression");
        let got = eval_cel(&tools, expr, &input);
        assert_eq!(got.len(), cases.len());
        for ((op, obj, old, want), got) in cases.iter().zip(got) {
            assert_eq!(got, *want, "{op}\nobject: {obj}\noldObject: {old}");
        }
    }
}

#[test]
fn kubernetes_older_than_the_oldest_supported_is_refused() {
    let Some(tools) = tools() else { return };
    let chart = chart_dir();
    for (label, bin) in &tools.helms {
        let out = helm(
            bin,
            &template_args(chart.to_str().expect("utf-8")),
            "1.27.9",
            &[],
        );
        assert!(!out.status.success(), "{label} rendered for 1.27");
        let err = text(&out.stderr);
        assert!(err.contains("kubeVersion"), "{label}: {err}");
    }
}

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
            ],
            1,
        ),
        (NEWEST, &["webhook.timeoutSeconds=30"], 30),
    ];
    for (kube, sets, timeout) in cases {
        let Some(r) = render(kube, sets) else { return };
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
/// built, as in CI); None (skipped) outside CI when it is missing.
fn gmsa_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("gmsa"))?;
    if bin.is_file() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} missing: build the workspace (cargo nextest run --workspace builds it)",
        bin.display()
    );
    eprintln!("skipped: {} not built (cargo build -p gmsa)", bin.display());
    None
}

#[test]
fn the_gmsa_cli_accepts_the_arguments_the_cert_jobs_give_it() {
    let Some(r) = render(
        NEWEST,
        &[
            "certificates.csr.duration=2160h",
            "certificates.csr.approve=false",
            "certificates.csr.renew.enabled=true",
        ],
    ) else {
        return;
    };
    let Some(gmsa) = gmsa_binary() else { return };
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

/// A values file written for the reference chart (kubernetes-sigs/windows-gmsa): every key it
/// knows, spelled as it spells them (`nodeselector` included), with a Secret + caBundle setup.
const REFERENCE_VALUES: &str = r#"
certificates:
  certManager:
    enabled: false
    version: "v1.10.1"
  caBundle: "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJmVENDQVNPZ0F3SUJBZ0lVWjZ0ZXN0Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K"
  secretName: gmsa-server-cert
  certReload:
    enabled: false
credential:
  enabled: true
  hostAccountConfig:
    pluginGUID: "{CCC2A336-D7F3-4818-A213-272B7924213E}"
    portableCcgVersion: "1"
    pluginInput: "ObjectId=x;SecretUri=y"
  domainJoinConfig:
    dnsName: contoso.com
    dnsTreeName: contoso.com
    guid: 244818ae-87ac-4fcd-92ec-e79e5252348a
    machineAccountName: WebApp01
    netBiosName: CONTOSO
    sid: S-1-5-21-2126449477-2524075714-3094792973
containerPort: "443"
image:
  repository: registry.k8s.io/gmsa-webhook/k8s-gmsa-webhook
  tag: v0.6.1
  imagePullPolicy: IfNotPresent
setPodOs: true
global:
  systemDefaultRegistry: ""
affinity: {}
nodeselector: {}
nodeSelector: {}
podDisruptionBudget:
  enabled: false
podSecurityContext: {}
replicaCount: 2
securityContext: {}
tolerations: []
viewerRole: false
qps: 30.0
burst: 50
randomHostname: false
"#;

#[test]
fn a_values_file_written_for_the_reference_chart_still_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("reference-values.yaml");
    std::fs::write(&file, REFERENCE_VALUES).expect("write values");
    let arg = format!("@{}", file.display());
    let Some(r) = render(OLDEST, &[&arg]) else {
        return;
    };
    for hook in r.webhooks() {
        assert_eq!(
            hook["clientConfig"]["caBundle"], TEST_CA_BUNDLE,
            "secret mode, as before"
        );
    }
    assert!(r.of_kind("Job").is_empty() && r.of_kind("Certificate").is_empty());
    assert!(r.find("PodDisruptionBudget", RELEASE).is_none());
    assert_eq!(r.env("HTTPS_PORT"), "443");
    assert_eq!(r.env("CERT_RELOAD"), "false");
    assert_eq!(
        r.get("Deployment", RELEASE)["spec"]["template"]["spec"]["securityContext"]["sysctls"],
        json!([{"name": "net.ipv4.ip_unprivileged_port_start", "value": "443"}]),
        "non-root binds 443 through the safe sysctl, with no capability"
    );
    assert_eq!(
        r.deployment_container()["image"],
        "registry.k8s.io/gmsa-webhook/k8s-gmsa-webhook:v0.6.1"
    );
    assert_eq!(
        r.get("GMSACredentialSpec", "webapp01")["credspec"]["ActiveDirectoryConfig"]
            ["HostAccountConfig"]["PluginGUID"],
        "{CCC2A336-D7F3-4818-A213-272B7924213E}"
    );
    let pod = &r.get("Deployment", RELEASE)["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"]["runAsNonRoot"], true,
        "hardened even with the reference's empty contexts"
    );
}

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

/// One `helm upgrade --install` (Helm 3, then Helm 4) into the configured cluster gives a
/// webhook the API server trusts and calls, with no manual step; an upgrade keeps the
/// certificate; uninstall removes the release. Needs a cluster (`GMSA_E2E_KUBECONFIG` or
/// `KUBECONFIG`) and `GMSA_E2E_IMAGE` (REPO:TAG of an image built from ./Dockerfile that the
/// cluster can pull); otherwise it says why it is skipped.
#[tokio::test]
async fn helm_install_gives_a_working_webhook_with_no_manual_step() {
    use gmsa_e2e::cluster::{windows_pod, Cluster};
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::rbac::v1::ClusterRole;
    const TEST: &str = "helm_install_gives_a_working_webhook_with_no_manual_step";
    let Some(cluster) = Cluster::connect_or_skip(TEST).await else {
        return;
    };
    let Ok(image) = std::env::var("GMSA_E2E_IMAGE") else {
        eprintln!(
            "{TEST}: SKIPPED: set GMSA_E2E_IMAGE to REPO:TAG of an image built from ./Dockerfile \
             that the cluster can pull"
        );
        return;
    };
    let Some(tools) = tools() else { return };
    let (repo, tag) = image.rsplit_once(':').expect("GMSA_E2E_IMAGE is REPO:TAG");
    let kubeconfig = std::env::var_os("GMSA_E2E_KUBECONFIG")
        .or_else(|| std::env::var_os("KUBECONFIG"))
        .expect("a cluster is configured");
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

/// What is left after a successful install: every object but hooks deleted on success.
fn persistent(r: &Rendered) -> Vec<Value> {
    r.docs
        .iter()
        .filter(|d| {
            !annotation(d, "helm.sh/hook-delete-policy")
                .as_str()
                .is_some_and(|p| p.contains("hook-succeeded"))
        })
        .cloned()
        .collect()
}

/// Issue 11's "no standing power over the cluster's signers", evaluated on the persistent RBAC
/// of each certificate mode: no ServiceAccount of the release may approve CSRs for any signer,
/// update any CSR's approval, or list or delete CSRs; the webhook keeps exactly what it needs
/// and cannot `use` a spec itself. Only the opt-in renewal CronJob's account keeps CSR rights.
#[test]
fn after_install_no_account_of_the_release_can_approve_list_or_delete_csrs() {
    use gmsa_e2e::rbac::{allows, Request};
    let csr = "certificates.k8s.io";
    let forbidden = [
        Request {
            verb: "approve",
            group: csr,
            resource: "signers",
            name: Some("kubernetes.io/kubelet-serving"),
            namespace: None,
        },
        Request {
            verb: "approve",
            group: csr,
            resource: "signers",
            name: Some("example.com/any"),
            namespace: None,
        },
        Request {
            verb: "update",
            group: csr,
            resource: "certificatesigningrequests/approval",
            name: Some("node-csr-x"),
            namespace: None,
        },
        Request {
            verb: "list",
            group: csr,
            resource: "certificatesigningrequests",
            name: None,
            namespace: None,
        },
        Request {
            verb: "delete",
            group: csr,
            resource: "certificatesigningrequests",
            name: Some("node-csr-x"),
            namespace: None,
        },
        Request {
            verb: "use",
            group: "windows.k8s.io",
            resource: "gmsacredentialspecs",
            name: Some("webapp01"),
            namespace: Some("demo"),
        },
    ];
    let webhook_needs = [
        Request {
            verb: "get",
            group: "windows.k8s.io",
            resource: "gmsacredentialspecs",
            name: Some("webapp01"),
            namespace: None,
        },
        Request {
            verb: "list",
            group: "windows.k8s.io",
            resource: "gmsacredentialspecs",
            name: None,
            namespace: None,
        },
        Request {
            verb: "watch",
            group: "windows.k8s.io",
            resource: "gmsacredentialspecs",
            name: None,
            namespace: None,
        },
        Request {
            verb: "create",
            group: "authorization.k8s.io",
            resource: "localsubjectaccessreviews",
            name: None,
            namespace: Some("demo"),
        },
    ];
    let ca_set = format!("certificates.caBundle={TEST_CA_BUNDLE}");
    let modes: [(&str, Vec<&str>); 5] = [
        ("csr", vec![]),
        (
            "csr without approval",
            vec!["certificates.csr.approve=false"],
        ),
        ("csr with viewer role", vec!["viewerRole=true"]),
        ("certManager", vec!["certificates.mode=certManager"]),
        ("secret", vec!["certificates.mode=secret", ca_set.as_str()]),
    ];
    for (mode, sets) in &modes {
        let Some(r) = render(NEWEST, sets) else {
            return;
        };
        let docs = persistent(&r);
        let accounts: Vec<String> = docs
            .iter()
            .filter(|d| d["kind"] == "ServiceAccount")
            .filter_map(|d| d["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        assert!(
            accounts.contains(&RELEASE.to_string()),
            "{mode}: {accounts:?}"
        );
        for sa in &accounts {
            for req in &forbidden {
                assert!(!allows(&docs, NS, sa, req), "{mode}: {sa} may {req:?}");
            }
        }
        for req in &webhook_needs {
            assert!(
                allows(&docs, NS, RELEASE, req),
                "{mode}: the webhook lacks {req:?}"
            );
        }
        // The hook accounts are gone after a successful install.
        assert!(
            !accounts
                .iter()
                .any(|a| a.ends_with("-hook") || a.ends_with("-patch")),
            "{mode}: {accounts:?}"
        );
    }
    // Opt-in standing renewal: its account, and only it, holds the rights (as documented).
    let scheduled =
        render(NEWEST, &["certificates.csr.renew.enabled=true"]).expect("tools present");
    let docs = persistent(&scheduled);
    assert!(allows(&docs, NS, "gmsa-certs", &forbidden[0]));
    assert!(
        !allows(&docs, NS, "gmsa-certs", &forbidden[1]),
        "only the configured signer"
    );
    assert!(!allows(&docs, NS, RELEASE, &forbidden[0]));
    // During the pre-install hook the hook account can approve (the right exists only then).
    let all = render(NEWEST, &[]).expect("tools present").docs;
    assert!(allows(&all, NS, "gmsa-certs-hook", &forbidden[0]));
    assert!(!allows(&all, NS, "gmsa-certs-patch", &forbidden[0]));
}
