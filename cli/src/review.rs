//! `gmsa review POD.yaml`: runs the webhook's admission rules on a pod (mutate, then validate
//! on the mutated pod, as the API server does) and prints the decisions, the warnings and the
//! patched pod. Answers "why was my pod denied?" before `kubectl apply`.
//!
//! The rules run in-process (`gmsa_webhook::admission_review::Admitter`) over a directory of
//! spec manifests or the cluster from the kubeconfig, or remotely by POSTing the same
//! AdmissionReviews to a running webhook. Output is YAML: decisions as `#` comments, then the
//! patched pod, so `gmsa review pod.yaml > patched.yaml` works. Exit status 1 when denied.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine as _;
use gmsa_webhook::admission::Hook;
use gmsa_webhook::admission_review::{Admitter, Options};
use gmsa_webhook::lookup::{Authorizer, SpecStore};
use serde::Deserialize as _;
use serde_json::{json, Value};

mod remote;

/// Arguments of `gmsa review`.
#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("source")
        .required(true)
        .args(["credspecs_dir", "webhook", "kubeconfig"])
))]
pub struct ReviewArgs {
    /// Pod manifest (YAML or JSON; `-` reads stdin). A Deployment, ReplicaSet, StatefulSet,
    /// DaemonSet, Job or CronJob is reviewed as the pod its template creates. Every document
    /// of a multi-document file is reviewed.
    #[arg(value_name = "POD.yaml")]
    pub file: PathBuf,
    /// Namespace of the pod (default: its metadata.namespace, else `default`).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Service account the pod runs as (default: its spec.serviceAccountName, else `default`).
    #[arg(long)]
    pub service_account: Option<String>,
    /// Read GMSACredentialSpec manifests from this directory (no cluster needed).
    #[arg(long, value_name = "DIR")]
    pub credspecs_dir: Option<PathBuf>,
    /// With --credspecs-dir: every service account may use every spec (the default when no
    /// --authz-policy is given).
    #[arg(long, requires = "credspecs_dir", conflicts_with = "authz_policy")]
    pub allow_all_use: bool,
    /// With --credspecs-dir: who may use which spec, from a policy file (a list of
    /// `{namespace, serviceAccount, credspecs: [..]}`, `*` matches anything).
    #[arg(long, value_name = "FILE", requires = "credspecs_dir")]
    pub authz_policy: Option<PathBuf>,
    /// Send the reviews to a running webhook, e.g. `https://127.0.0.1:8443`.
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// With --webhook: CA certificate(s) (PEM) to trust for the webhook's certificate
    /// (default: the system's trust store).
    #[arg(long, value_name = "FILE", requires = "webhook")]
    pub ca: Option<PathBuf>,
    /// Use the cluster of the current kubeconfig (KUBECONFIG or ~/.kube/config): specs and
    /// `use` permissions as the webhook would see them (needs get on gmsacredentialspecs and
    /// create on localsubjectaccessreviews).
    #[arg(long)]
    pub kubeconfig: bool,
    /// Give the pod a random hostname as the webhook does with RANDOM_HOSTNAME=true (local
    /// modes only; a remote webhook uses its own setting).
    #[arg(long, conflicts_with = "webhook")]
    pub random_hostname: bool,
    /// Timeout for each call to the webhook or the API server.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub timeout: u64,
}

/// Where reviews are answered.
enum Backend {
    /// In-process admission rules.
    Local(Admitter),
    /// A webhook over HTTPS (or HTTP).
    Remote(remote::Client),
}

impl Backend {
    async fn review(&self, kind: Hook, body: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        match self {
            Self::Local(admitter) => Ok(admitter.handle(kind, &body).await.body),
            Self::Remote(client) => {
                let path = match kind {
                    Hook::Mutate => "/mutate",
                    Hook::Validate => "/validate",
                };
                client.post(path, body).await
            }
        }
    }
}

/// Runs `gmsa review`.
pub fn run(args: ReviewArgs) -> anyhow::Result<ExitCode> {
    let text = read_input(&args.file)?;
    let pods = pods_in(&text).with_context(|| format!("reading {}", args.file.display()))?;
    if pods.is_empty() {
        bail!(
            "{} holds no Pod (nor a Deployment, ReplicaSet, StatefulSet, DaemonSet, Job or \
             CronJob with a pod template)",
            args.file.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let (backend, notes, _tasks) = backend(&args).await?;
        let mut out = String::new();
        for note in notes {
            out.push_str(&format!("# {note}\n"));
        }
        let mut denied = false;
        for (i, pod) in pods.into_iter().enumerate() {
            if i > 0 {
                out.push_str("---\n");
            }
            let report = review_pod(&backend, &args, pod, i).await?;
            denied |= report.denied;
            out.push_str(&report.text);
        }
        print!("{out}");
        Ok(if denied {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}

/// The text of `file`, or standard input for `-` (shared with `gmsa doctor --pod`).
pub(crate) fn read_input(file: &Path) -> anyhow::Result<String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the pod from stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

/// Every pod in a (multi-document) YAML or JSON text: Pods as they are, workloads as the pod
/// their template creates (`generateName: NAME-`).
pub(crate) fn pods_in(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut pods = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).with_context(|| format!("document {}", i + 1))?;
        if value.is_null() {
            continue;
        }
        if let Some(pod) = pod_of(&value)? {
            pods.push(pod);
        }
    }
    Ok(pods)
}

fn pod_of(doc: &Value) -> anyhow::Result<Option<Value>> {
    let kind = doc["kind"].as_str().unwrap_or_default();
    let template = match kind {
        "Pod" => return Ok(Some(doc.clone())),
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" => {
            doc.pointer("/spec/template")
        }
        "CronJob" => doc.pointer("/spec/jobTemplate/spec/template"),
        "List" => bail!("a List is not supported: put each object in its own YAML document"),
        _ => return Ok(None),
    };
    let name = doc["metadata"]["name"].as_str().unwrap_or_default();
    let Some(template) = template else {
        bail!("{kind} {name:?} has no pod template");
    };
    let mut metadata = template
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if !name.is_empty() {
        metadata["generateName"] = format!("{name}-").into();
    }
    if let Some(ns) = doc["metadata"]["namespace"].as_str() {
        metadata["namespace"] = ns.into();
    }
    Ok(Some(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })))
}

/// The backend, lines describing it, and background tasks to keep alive.
async fn backend(
    args: &ReviewArgs,
) -> anyhow::Result<(Backend, Vec<String>, Vec<tokio::task::JoinHandle<()>>)> {
    let options = Options {
        random_hostname: args.random_hostname,
    };
    let timeout = Duration::from_secs(args.timeout.max(1));
    if let Some(dir) = &args.credspecs_dir {
        let store = gmsa_webhook::standalone::DirSpecStore::load(dir)
            .with_context(|| format!("loading credential specs from {}", dir.display()))?;
        let mut notes = vec![format!(
            "credspecs: {} from {}",
            describe_names(&store.names()),
            dir.display()
        )];
        let authz: Arc<dyn Authorizer> = match &args.authz_policy {
            Some(path) => {
                notes.push(format!("authorization: policy file {}", path.display()));
                Arc::new(
                    gmsa_webhook::standalone::PolicyAuthorizer::load(path)
                        .with_context(|| format!("loading {}", path.display()))?,
                )
            }
            None => {
                notes.push(if args.allow_all_use {
                    "authorization: not checked (--allow-all-use)".to_string()
                } else {
                    "authorization: not checked (no --authz-policy; pass one to check `use` \
                     permissions)"
                        .to_string()
                });
                Arc::new(gmsa_webhook::standalone::AllowAll)
            }
        };
        let store: Arc<dyn SpecStore> = Arc::new(store);
        return Ok((
            Backend::Local(Admitter::new(store, authz, options)),
            notes,
            Vec::new(),
        ));
    }
    if let Some(url) = &args.webhook {
        let client = remote::Client::new(url, args.ca.as_deref(), timeout)?;
        return Ok((
            Backend::Remote(client),
            vec![format!("webhook: {url}")],
            Vec::new(),
        ));
    }
    // --kubeconfig: the Kubernetes backend. Lookups before the watch has synced are live GETs.
    let client = gmsa_webhook::kube_backend::client(1000.0, 1000, timeout)
        .await
        .context("connecting to the cluster of the current kubeconfig")?;
    let mut registry = prometheus_client::registry::Registry::default();
    let (store, task) = gmsa_webhook::kube_backend::KubeSpecStore::start(
        client.clone(),
        gmsa_webhook::kube_backend::SpecStoreConfig {
            timeout,
            ..Default::default()
        },
        &mut registry,
    );
    let authz = gmsa_webhook::kube_backend::KubeAuthorizer::new(
        client,
        gmsa_webhook::kube_backend::AuthorizerConfig {
            timeout,
            ..Default::default()
        },
        &mut registry,
    );
    Ok((
        Backend::Local(Admitter::new(store, Arc::new(authz), options)),
        vec!["cluster: the current kubeconfig context".to_string()],
        vec![task],
    ))
}

fn describe_names(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// The printed result of one pod.
struct Report {
    text: String,
    denied: bool,
}

/// One admission answer, read from an AdmissionReview response.
struct Answer {
    allowed: bool,
    code: u64,
    message: String,
    warnings: Vec<String>,
    patch: Option<json_patch::Patch>,
}

fn answer_of(body: &[u8], uid: &str) -> anyhow::Result<Answer> {
    let review: Value =
        serde_json::from_slice(body).context("the answer is not an AdmissionReview (not JSON)")?;
    let response = &review["response"];
    if response.is_null() {
        bail!("the answer is not an AdmissionReview response: {review}");
    }
    if response["uid"].as_str() != Some(uid) {
        bail!(
            "the answer's uid {} does not echo the request's {uid:?}",
            response["uid"]
        );
    }
    let patch = match response["patch"].as_str() {
        None => None,
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .context("the answer's patch is not base64")?;
            Some(serde_json::from_slice(&bytes).context("the answer's patch is not a JSON patch")?)
        }
    };
    Ok(Answer {
        allowed: response["allowed"].as_bool().unwrap_or(false),
        code: response["status"]["code"].as_u64().unwrap_or(0),
        message: response["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        warnings: response["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        patch,
    })
}

fn review_body(uid: &str, namespace: &str, pod: &Value) -> anyhow::Result<Vec<u8>> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": { "group": "", "version": "v1", "kind": "Pod" },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "requestKind": { "group": "", "version": "v1", "kind": "Pod" },
            "requestResource": { "group": "", "version": "v1", "resource": "pods" },
            "name": name,
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": { "username": "gmsa-review" },
            "object": pod,
            "oldObject": null,
            "dryRun": true,
        }
    });
    serde_json::to_vec(&review).context("serializing the AdmissionReview")
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

async fn review_pod(
    backend: &Backend,
    args: &ReviewArgs,
    mut pod: Value,
    index: usize,
) -> anyhow::Result<Report> {
    if !pod["metadata"].is_object() {
        pod["metadata"] = json!({});
    }
    if !pod["spec"].is_object() {
        bail!("the pod has no spec");
    }
    let namespace = args
        .namespace
        .clone()
        .or_else(|| pod["metadata"]["namespace"].as_str().map(str::to_string))
        .unwrap_or_else(|| "default".to_string());
    pod["metadata"]["namespace"] = namespace.clone().into();
    if let Some(sa) = &args.service_account {
        pod["spec"]["serviceAccountName"] = sa.clone().into();
    }
    let service_account = pod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    let shown = [
        pod["metadata"]["name"].as_str(),
        pod["metadata"]["generateName"].as_str(),
    ]
    .into_iter()
    .flatten()
    .find(|s| !s.is_empty())
    .unwrap_or("")
    .to_string();
    let mut text = format!(
        "# pod {shown:?} in namespace {namespace:?}, service account {service_account:?}\n"
    );

    for kind in [Hook::Mutate, Hook::Validate] {
        let label = match kind {
            Hook::Mutate => "mutate",
            Hook::Validate => "validate",
        };
        let uid = format!("gmsa-review-{}-{index}-{label}", std::process::id());
        let body = review_body(&uid, &namespace, &pod)?;
        let reply = backend
            .review(kind, body)
            .await
            .with_context(|| format!("{label} review of pod {shown:?}"))?;
        let answer = answer_of(&reply, &uid).with_context(|| format!("{label} review"))?;
        for w in &answer.warnings {
            text.push_str(&format!("# {label}: warning: {}\n", one_line(w)));
        }
        if !answer.allowed {
            text.push_str(&format!(
                "# {label}: DENIED ({}): {}\n",
                answer.code,
                one_line(&answer.message)
            ));
            return Ok(Report { text, denied: true });
        }
        match &answer.patch {
            Some(patch) if !patch.0.is_empty() => {
                text.push_str(&format!(
                    "# {label}: allowed with {} patch operation(s):\n",
                    patch.0.len()
                ));
                for op in &patch.0 {
                    text.push_str(&format!("#   {}\n", describe_op(op)));
                }
                json_patch::patch(&mut pod, &patch.0)
                    .with_context(|| format!("applying the {label} patch to the pod"))?;
            }
            _ => text.push_str(&format!("# {label}: allowed\n")),
        }
    }
    text.push_str(&serde_norway::to_string(&pod).context("printing the pod as YAML")?);
    Ok(Report {
        text,
        denied: false,
    })
}

fn describe_op(op: &json_patch::PatchOperation) -> String {
    match op {
        json_patch::PatchOperation::Add(a) => {
            let value = match &a.value {
                Value::String(s) if s.len() > 60 => format!("({} characters)", s.len()),
                v => v.to_string(),
            };
            format!("add {} {value}", a.path)
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_from_workloads_table() {
        let template =
            json!({"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}});
        let with = |kind: &str, spec: Value| json!({"kind": kind, "metadata": {"name": "w", "namespace": "ns"}, "spec": spec});
        // (case, document, generateName expected, or None when skipped)
        let cases: Vec<(&str, Value, Option<&str>)> = vec![
            (
                "Deployment",
                with("Deployment", json!({"template": template})),
                Some("w-"),
            ),
            (
                "StatefulSet",
                with("StatefulSet", json!({"template": template})),
                Some("w-"),
            ),
            (
                "DaemonSet",
                with("DaemonSet", json!({"template": template})),
                Some("w-"),
            ),
            (
                "Job",
                with("Job", json!({"template": template})),
                Some("w-"),
            ),
            (
                "CronJob",
                with(
                    "CronJob",
                    json!({"jobTemplate": {"spec": {"template": template}}}),
                ),
                Some("w-"),
            ),
            ("ConfigMap is skipped", json!({"kind": "ConfigMap"}), None),
        ];
        for (case, doc, generate_name) in cases {
            let pod = pod_of(&doc).unwrap_or_else(|e| panic!("{case}: {e}"));
            match generate_name {
                None => assert!(pod.is_none(), "{case}"),
                Some(g) => {
                    let pod = pod.unwrap_or_else(|| panic!("{case}: no pod"));
                    assert_eq!(pod["kind"], "Pod", "{case}");
                    assert_eq!(pod["metadata"]["generateName"], g, "{case}");
                    assert_eq!(pod["metadata"]["namespace"], "ns", "{case}");
                    assert_eq!(pod["metadata"]["labels"]["a"], "b", "{case}");
                    assert_eq!(pod["spec"]["containers"][0]["name"], "c", "{case}");
                }
            }
        }
        let pod = json!({"kind": "Pod", "metadata": {"name": "p"}});
        assert_eq!(pod_of(&pod).ok().flatten(), Some(pod));
        assert!(pod_of(&json!({"kind": "List"})).is_err());
        let err = pod_of(&with("Deployment", json!({}))).expect_err("no template");
        assert!(err
            .to_string()
            .contains("Deployment \"w\" has no pod template"));
    }

    #[test]
    fn multi_document_input() {
        let pods = pods_in("kind: Pod\nmetadata: {name: a}\n---\n---\nkind: Secret\n---\nkind: Pod\nmetadata: {name: b}\n")
            .expect("parses");
        let names: Vec<&str> = pods
            .iter()
            .filter_map(|p| p["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert!(pods_in("kind: [").is_err());
    }

    #[test]
    fn answers_must_echo_the_uid() {
        let body = br#"{"response":{"uid":"x","allowed":true}}"#;
        assert!(answer_of(body, "x").is_ok_and(|a| a.allowed && a.patch.is_none()));
        let err = answer_of(body, "y")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("does not echo"), "{err}");
        assert!(answer_of(b"{}", "x").is_err());
    }
}
