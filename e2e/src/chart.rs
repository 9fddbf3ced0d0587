//! The Helm chart (`charts/gmsa`) as the chart tests see it (`e2e/tests/chart_*.rs`): the
//! pinned tools ([`tools`]: Helm 3 and Helm 4, `kubernetes-validate`, cel-python, installed
//! by `.ci/install.d/30-helm` into `./.tools/`; a missing tool fails the test with that
//! advice, never skips it), and [`render`]: `helm lint --strict` and `helm template` with both
//! Helms at a Kubernetes version, the two outputs compared object by object, every object
//! validated with `kubernetes-validate --strict -k VERSION`, and the invariants that hold for
//! every values set checked (no placeholder left, namespaces, hardened pods, webhook names,
//! paths and namespace holes); the result is a [`Rendered`] to query.

use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The oldest supported Kubernetes version (Chart.yaml `kubeVersion`).
pub const OLDEST: &str = "1.28.0";
/// The newest supported Kubernetes version.
pub const NEWEST: &str = "1.35.0";
/// The release name the tests render with.
pub const RELEASE: &str = "gmsa";
/// The release namespace the tests render with.
pub const NS: &str = "gmsa-system";
/// Kinds the offline validator has no schema for (CRDs of other projects, and ours).
const KINDS_WITHOUT_SCHEMA: &[&str] = &[
    "ServiceMonitor",
    "Issuer",
    "Certificate",
    "GMSACredentialSpec",
];

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ is inside the workspace")
        .to_path_buf()
}

/// `charts/gmsa`.
pub fn chart_dir() -> PathBuf {
    repo().join("charts/gmsa")
}

/// The text of a file of the repository (panics naming the file).
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The pinned tools of `.ci/install.d/30-helm`, in `./.tools/`.
pub struct Tools {
    /// `("helm3", path)` and `("helm4", path)`.
    pub helms: Vec<(&'static str, PathBuf)>,
    /// `kubernetes-validate` (in the venv).
    pub validator: PathBuf,
    /// The venv's python, with cel-python (`celpy`) installed.
    pub python: PathBuf,
}

impl Tools {
    /// Helm 3 (the first of [`Tools::helms`]).
    pub fn helm3(&self) -> &Path {
        &self.helms[0].1
    }
}

/// The pinned tools; panics when one is missing, saying how to install them (a chart test
/// never passes by skipping).
pub fn tools() -> Tools {
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
        return Tools {
            helms,
            validator,
            python,
        };
    }
    panic!(
        "chart test tools missing ({missing:?}): run .ci/install.d/30-helm (or .ci/run), \
         which installs the pinned Helm 3, Helm 4, kubernetes-validate and cel-python into .tools/"
    );
}

/// Runs `cmd` to completion (panics when it cannot start).
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

/// Bytes of an output as text (lossy).
pub fn text(out: &[u8]) -> String {
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

/// `template RELEASE CHART --namespace NS --include-crds`.
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

/// `helm template` of the chart with each Helm at `kube` (no lint, no checks: for the cases
/// that must fail): (label, output).
pub fn template_each(kube: &str, sets: &[&str]) -> Vec<(&'static str, Output)> {
    let chart = chart_dir();
    let chart = chart.to_str().expect("utf-8 path");
    tools()
        .helms
        .iter()
        .map(|(label, bin)| (*label, helm(bin, &template_args(chart), kube, sets)))
        .collect()
}

/// The objects of one `helm template` run.
#[derive(Debug)]
pub struct Rendered {
    /// The documents, in output order (empty ones dropped).
    pub docs: Vec<Value>,
}

/// The YAML documents of `yaml` as JSON values (empty ones dropped).
pub fn parse_docs(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| {
            Value::deserialize(d)
                .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{yaml}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

impl Rendered {
    /// The object `kind/name`, if rendered.
    pub fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
    }

    /// The object `kind/name` (panics listing what was rendered).
    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.find(kind, name)
            .unwrap_or_else(|| panic!("no {kind}/{name} among {:?}", self.ids()))
    }

    /// Every object of `kind`.
    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    /// `kind/name` of every object.
    pub fn ids(&self) -> Vec<String> {
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

    /// The one webhook of the `kind` configuration of the release.
    pub fn webhook(&self, kind: &str) -> &Value {
        let cfg = self.get(kind, RELEASE);
        let hooks = cfg["webhooks"].as_array().expect("webhooks is a list");
        assert_eq!(hooks.len(), 1, "{kind} has one webhook");
        &hooks[0]
    }

    /// The mutating and the validating webhook.
    pub fn webhooks(&self) -> [&Value; 2] {
        [
            self.webhook("MutatingWebhookConfiguration"),
            self.webhook("ValidatingWebhookConfiguration"),
        ]
    }

    /// Every pod spec in the output (Deployment, Jobs, CronJobs).
    pub fn pod_specs(&self) -> Vec<(String, &Value)> {
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

    /// The webhook Deployment's container.
    pub fn deployment_container(&self) -> &Value {
        &self.get("Deployment", RELEASE)["spec"]["template"]["spec"]["containers"][0]
    }

    /// The value of the webhook container's environment variable `name`.
    pub fn env(&self, name: &str) -> &Value {
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
pub fn render(kube: &str, sets: &[&str]) -> Rendered {
    let tools = tools();
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
    rendered
}

/// The same objects, in any order (Helm 3 and 4 order documents differently); on a mismatch
/// the message names the object that differs.
pub fn same_objects(a: &Rendered, b: &Rendered, what: &str) {
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

/// The strings of a JSON list (panics on anything else).
pub fn strings(v: &Value) -> Vec<&str> {
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
pub const TEST_CA_BUNDLE: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJmVENDQVNPZ0F3SUJBZ0lVWjZ0ZXN0Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K";

/// The rules of a Role or ClusterRole.
pub fn rules_of(role: &Value) -> Vec<Value> {
    role["rules"].as_array().expect("rules").clone()
}

/// The annotation `key` of an object (`Null` when absent).
pub fn annotation<'a>(obj: &'a Value, key: &str) -> &'a Value {
    &obj["metadata"]["annotations"][key]
}

/// The first container's `args` of a pod spec.
pub fn args(pod: &Value) -> Vec<&str> {
    strings(&pod["containers"][0]["args"])
}

/// Whether the webhooks carry matchConditions (asserting both agree).
pub fn has_match_conditions(r: &Rendered) -> bool {
    let [m, v] = r.webhooks();
    assert_eq!(
        m.get("matchConditions").is_some(),
        v.get("matchConditions").is_some(),
        "both webhooks agree"
    );
    m.get("matchConditions").is_some()
}
