//! A fake cluster the harness ([`crate::cluster`]) runs its scenarios against in CI: testkit's
//! fake API server ([`FakeApiServer`], with [`CrdApi`] for the credspecs and their watch)
//! extended into a small admission chain, so the `local_*` scenarios that a real cluster runs
//! (`e2e/tests/cluster_webhook.rs`) run unchanged without one (`e2e/tests/fake_cluster_webhook.rs`).
//!
//! What it does as kube-apiserver does:
//! - pod writes (create, dry-run create, update, `pods/ephemeralcontainers`) go through the
//!   registered webhook configurations, mutating then validating, each entry called by its
//!   `url` over TLS trusting only its `caBundle`, when its rules (operation, resource) and its
//!   `namespaceSelector` (`matchLabels`, against the namespace's labels and
//!   `kubernetes.io/metadata.name`) select the write; patches are applied, warnings come back
//!   as `Warning` headers, a denial as the API server words it (`admission webhook "NAME"
//!   denied the request: …`), a webhook that cannot be called as `failed calling webhook`
//!   (every entry is `failurePolicy: Fail`, as the harness registers them);
//! - access reviews are answered by RBAC: the Roles and RoleBindings created in a namespace are
//!   evaluated with [`crate::rbac::allows`] (verb `use`, `resourceNames`), after every change;
//! - the CRD is the one this build generates, `Established`; credspecs created through `v1` or
//!   `v1alpha1` are read through `v1`; namespaces, service accounts, pods, configurations are
//!   stored until deleted (a namespace's pods with it).
//!
//! Not modelled (no scenario of the fake needs it): the API server's own pod validation,
//! `matchExpressions`, `objectSelector`, `matchConditions`, patches of configurations, lists.
//!
//! [`FakeCluster::for_this_process`] is the one a test process shares, as the scenarios of a
//! real run share one cluster: each scenario works in its own namespace.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use anyhow::{anyhow, Context, Result};
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use gmsa_testkit::crd_api::{AuthzAnswer, CrdApi, SPECS_PATH};
use gmsa_testkit::{json, status, FakeApiServer};
use serde_json::{json, Value};

use crate::rbac;

/// Kind (plural) of the mutating webhook configurations.
pub const MUTATING: &str = "mutatingwebhookconfigurations";
/// Kind (plural) of the validating webhook configurations.
pub const VALIDATING: &str = "validatingwebhookconfigurations";

/// What the fake cluster stores (cheap to clone; clones share it).
#[derive(Clone)]
struct Store {
    crd: CrdApi,
    inner: Arc<Mutex<Objects>>,
}

#[derive(Default)]
struct Objects {
    /// (kind plural, name) -> webhook configuration.
    hooks: HashMap<(String, String), Value>,
    /// (namespace, name) -> stored pod.
    pods: HashMap<(String, String), Value>,
    /// Namespace -> its labels.
    namespaces: HashMap<String, Value>,
    /// Roles and RoleBindings as created (`kind`, `metadata.namespace` set).
    rbac: Vec<Value>,
    /// Every (namespace, service account, spec) a binding ever named: re-evaluated on change.
    grants: BTreeSet<(String, String, String)>,
}

impl Store {
    fn new() -> Self {
        Self {
            crd: CrdApi::empty(),
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Objects> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a Role or RoleBinding of `ns` and answers every access review it may change.
    fn put_rbac(&self, ns: &str, kind: &str, mut object: Value) {
        object["kind"] = json!(kind);
        object["metadata"]["namespace"] = json!(ns);
        let mut objects = self.lock();
        let name = object["metadata"]["name"].clone();
        objects.rbac.retain(|o| {
            !(o["kind"] == kind
                && o["metadata"]["namespace"] == ns
                && o["metadata"]["name"] == name)
        });
        objects.rbac.push(object);
        self.reauthorize(&mut objects, ns);
    }

    fn delete_rbac(&self, ns: &str, kind: &str, name: &str) -> Option<Value> {
        let mut objects = self.lock();
        let at = objects.rbac.iter().position(|o| {
            o["kind"] == kind && o["metadata"]["namespace"] == ns && o["metadata"]["name"] == name
        })?;
        let removed = objects.rbac.remove(at);
        self.reauthorize(&mut objects, ns);
        Some(removed)
    }

    fn rbac_object(&self, ns: &str, kind: &str, name: &str) -> Option<Value> {
        self.lock()
            .rbac
            .iter()
            .find(|o| {
                o["kind"] == kind
                    && o["metadata"]["namespace"] == ns
                    && o["metadata"]["name"] == name
            })
            .cloned()
    }

    /// Re-evaluates, by RBAC, the `use` of every spec a Role of `ns` names for every service
    /// account a binding of `ns` names (and every pair evaluated before), and tells the access
    /// review endpoint.
    fn reauthorize(&self, objects: &mut Objects, ns: &str) {
        let in_ns = |o: &&Value| o["metadata"]["namespace"] == ns;
        let accounts: Vec<String> = objects
            .rbac
            .iter()
            .filter(in_ns)
            .filter(|o| o["kind"] == "RoleBinding")
            .flat_map(|b| b["subjects"].as_array().cloned().unwrap_or_default())
            .filter(|s| s["kind"] == "ServiceAccount")
            .filter_map(|s| s["name"].as_str().map(str::to_string))
            .collect();
        let specs: Vec<String> = objects
            .rbac
            .iter()
            .filter(in_ns)
            .filter(|o| o["kind"] == "Role")
            .flat_map(|r| r["rules"].as_array().cloned().unwrap_or_default())
            .flat_map(|r| r["resourceNames"].as_array().cloned().unwrap_or_default())
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect();
        for sa in &accounts {
            for spec in &specs {
                objects.grants.insert((ns.into(), sa.clone(), spec.clone()));
            }
        }
        for (grant_ns, sa, spec) in objects.grants.iter().filter(|g| g.0 == ns) {
            let request = rbac::Request {
                verb: "use",
                group: gmsa_crd::GROUP,
                resource: gmsa_crd::PLURAL,
                name: Some(spec),
                namespace: Some(grant_ns),
            };
            let answer = if rbac::allows(&objects.rbac, grant_ns, sa, &request) {
                AuthzAnswer::allowed(&format!(
                    "RBAC: allowed by a RoleBinding of namespace {grant_ns:?} (fake cluster)"
                ))
            } else {
                AuthzAnswer::no_opinion()
            };
            self.crd.set_authz(grant_ns, sa, spec, answer);
        }
    }

    /// The entries of the registered configurations of `kind` that select a write of
    /// `resource` with `operation` in namespace `ns`.
    fn selected_entries(
        &self,
        kind: &str,
        ns: &str,
        operation: &str,
        resource: &str,
    ) -> Vec<Value> {
        let objects = self.lock();
        let mut labels = objects
            .namespaces
            .get(ns)
            .cloned()
            .unwrap_or_else(|| json!({}));
        labels["kubernetes.io/metadata.name"] = json!(ns);
        let mut configs: Vec<(&String, &Value)> = objects
            .hooks
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|((_, name), config)| (name, config))
            .collect();
        // The API server calls configurations in name order.
        configs.sort_by_key(|(name, _)| name.as_str());
        configs
            .into_iter()
            .flat_map(|(_, c)| c["webhooks"].as_array().cloned().unwrap_or_default())
            .filter(|hook| selects(&hook["namespaceSelector"], &labels))
            .filter(|hook| matches_rule(hook, operation, resource))
            .collect()
    }
}

/// Whether a `namespaceSelector` (its `matchLabels`; no selector selects all) selects a
/// namespace with these labels.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(key, value)| &labels[key] == value)
}

/// Whether one of a webhook entry's rules covers `operation` on `resource` (e.g.
/// `pods/ephemeralcontainers`).
pub fn matches_rule(hook: &Value, operation: &str, resource: &str) -> bool {
    let has = |list: &Value, item: &str| {
        list.as_array()
            .is_some_and(|l| l.iter().any(|v| v == item || v == "*"))
    };
    hook["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| has(&r["operations"], operation) && has(&r["resources"], resource))
}

/// What the admission chain decided.
enum Outcome {
    Admitted { pod: Value, warnings: Vec<String> },
    Denied(Response),
}

/// POSTs `review` to the webhook at `url`, trusting only `ca_bundle` (base64 PEM).
async fn call(url: &str, ca_bundle: &str, review: &Value) -> Result<Value> {
    let pem = base64::engine::general_purpose::STANDARD
        .decode(ca_bundle)
        .context("caBundle is not base64")?;
    let der = pem_body(&String::from_utf8_lossy(&pem))?;
    let (base, path) = url
        .strip_prefix("https://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(host, path)| (format!("https://{host}"), format!("/{path}")))
        .ok_or_else(|| anyhow!("not an https URL with a path: {url}"))?;
    let mut config = kube::Config::new(base.parse()?);
    config.root_cert = Some(vec![der]);
    let client = kube::Client::try_from(config)?;
    let request =
        kube::core::Request::new(path).create(&Default::default(), serde_json::to_vec(review)?)?;
    let text = client.request_text(request).await?;
    Ok(serde_json::from_str(&text)?)
}

/// The DER bytes of the first certificate of a PEM text.
fn pem_body(pem: &str) -> Result<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .context("caBundle holds no PEM certificate")
}

impl Store {
    /// Runs the webhooks (mutating, then validating) selected for a pod write.
    async fn admit(
        &self,
        ns: &str,
        operation: &str,
        resource: &str,
        mut pod: Value,
        old: Option<Value>,
    ) -> Outcome {
        let mut warnings = Vec::new();
        for kind in [MUTATING, VALIDATING] {
            for hook in self.selected_entries(kind, ns, operation, resource) {
                let name = hook["name"].as_str().unwrap_or_default();
                let review = json!({
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "request": {
                        "uid": "e2e-fake-cluster",
                        "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "subResource": resource.strip_prefix("pods/"),
                        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                        "name": pod["metadata"]["name"],
                        "namespace": ns,
                        "operation": operation,
                        "userInfo": {"username": "gmsa-e2e"},
                        "object": pod,
                        "oldObject": old,
                        "dryRun": false,
                    },
                });
                let client = &hook["clientConfig"];
                let url = client["url"].as_str().unwrap_or_default();
                let ca = client["caBundle"].as_str().unwrap_or_default();
                let answer = match call(url, ca, &review).await {
                    Ok(answer) => answer,
                    Err(e) => {
                        return Outcome::Denied(status(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "InternalError",
                            &format!(
                                "Internal error occurred: failed calling webhook \"{name}\": \
                                 failed to call webhook: Post \"{url}\": {e:#}"
                            ),
                        ))
                    }
                };
                let response = &answer["response"];
                for w in response["warnings"].as_array().into_iter().flatten() {
                    warnings.push(w.as_str().unwrap_or_default().to_string());
                }
                if response["allowed"] != true {
                    let code = response["status"]["code"].as_u64().unwrap_or(400);
                    let code = u16::try_from(code)
                        .ok()
                        .and_then(|c| StatusCode::from_u16(c).ok())
                        .unwrap_or(StatusCode::BAD_REQUEST);
                    return Outcome::Denied(status(
                        code,
                        response["status"]["reason"].as_str().unwrap_or_default(),
                        &format!(
                            "admission webhook \"{name}\" denied the request: {}",
                            response["status"]["message"].as_str().unwrap_or_default()
                        ),
                    ));
                }
                if let Some(patch) = response["patch"].as_str() {
                    if let Err(e) = apply_patch(&mut pod, patch) {
                        return Outcome::Denied(status(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "InternalError",
                            &format!("Internal error occurred: webhook \"{name}\": {e:#}"),
                        ));
                    }
                }
            }
        }
        Outcome::Admitted { pod, warnings }
    }

    /// A pod write as the API server answers it: admitted (stored unless `dryRun=All`, with
    /// the webhooks' warnings) or the denial.
    async fn write_pod(
        &self,
        (ns, name): (String, String),
        operation: &str,
        resource: &str,
        pod: Value,
        query: Option<String>,
    ) -> Response {
        let old = self.lock().pods.get(&(ns.clone(), name.clone())).cloned();
        if operation == "UPDATE" && old.is_none() {
            return not_found(&format!("pods \"{name}\""));
        }
        match self.admit(&ns, operation, resource, pod, old).await {
            Outcome::Denied(r) => r,
            Outcome::Admitted { mut pod, warnings } => {
                pod["metadata"]["namespace"] = json!(ns);
                pod["metadata"]["resourceVersion"] = json!("1");
                if !query.unwrap_or_default().contains("dryRun=All") {
                    self.lock().pods.insert((ns, name), pod.clone());
                }
                let mut headers = HeaderMap::new();
                for w in warnings {
                    let value =
                        format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
                    if let Ok(value) = HeaderValue::from_str(&value) {
                        headers.append("warning", value);
                    }
                }
                let code = if operation == "CREATE" {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                (code, headers, json(&pod)).into_response()
            }
        }
    }
}

/// Applies a base64 JSON Patch to `pod`.
fn apply_patch(pod: &mut Value, patch: &str) -> Result<()> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .context("the patch is not base64")?;
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).context("not a JSON Patch")?;
    json_patch::patch(pod, &patch).context("the patch does not apply")?;
    Ok(())
}

fn not_found(what: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{what} not found"),
    )
}

fn created(object: &Value) -> Response {
    (StatusCode::CREATED, json(object)).into_response()
}

/// The CRD this build generates, as an API server shows it once established.
fn established_crd() -> Value {
    let mut crd = gmsa_crd::crd_value();
    crd["status"] = json!({"conditions": [
        {"type": "NamesAccepted", "status": "True"},
        {"type": "Established", "status": "True"},
    ]});
    crd
}

fn namespace_object(name: &str, labels: &Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn routes(store: Store) -> Router {
    let admission = "/apis/admissionregistration.k8s.io/v1";
    let rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}";
    let app = Router::new()
        .route(
            "/version",
            get(|| async { json(&gmsa_testkit::fixture("k8s-1.32/api/version.json")["serverVersion"]) }),
        )
        .route(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
            get(|UrlPath(name): UrlPath<String>| async move {
                let crd = established_crd();
                if crd["metadata"]["name"] == name.as_str() {
                    json(&crd)
                } else {
                    not_found(&format!("customresourcedefinitions.apiextensions.k8s.io \"{name}\""))
                }
            }),
        )
        .route(
            "/api/v1/namespaces",
            post(|State(s): State<Store>, Json(ns): Json<Value>| async move {
                let name = ns["metadata"]["name"].as_str().unwrap_or_default().to_string();
                let labels = ns["metadata"]["labels"].clone();
                s.lock().namespaces.insert(name.clone(), labels.clone());
                created(&namespace_object(&name, &labels))
            }),
        )
        .route(
            "/api/v1/namespaces/{ns}",
            axum::routing::patch(
                |State(s): State<Store>, UrlPath(ns): UrlPath<String>, Json(p): Json<Value>| async move {
                    let mut objects = s.lock();
                    let Some(labels) = objects.namespaces.get_mut(&ns) else {
                        return not_found(&format!("namespaces \"{ns}\""));
                    };
                    if !labels.is_object() {
                        *labels = json!({});
                    }
                    for (k, v) in p["metadata"]["labels"].as_object().into_iter().flatten() {
                        labels[k] = v.clone();
                    }
                    json(&namespace_object(&ns, labels))
                },
            )
            .delete(|State(s): State<Store>, UrlPath(ns): UrlPath<String>| async move {
                let mut objects = s.lock();
                let Some(labels) = objects.namespaces.remove(&ns) else {
                    return not_found(&format!("namespaces \"{ns}\""));
                };
                objects.pods.retain(|(pod_ns, _), _| *pod_ns != ns);
                objects.rbac.retain(|o| o["metadata"]["namespace"] != ns.as_str());
                let mut object = namespace_object(&ns, &labels);
                object["status"] = json!({"phase": "Terminating"});
                json(&object)
            }),
        )
        .route(
            "/api/v1/namespaces/{ns}/serviceaccounts",
            post(|Json(sa): Json<Value>| async move { created(&sa) }),
        )
        .route(
            // Every namespace has every service account (the `default` one at once).
            "/api/v1/namespaces/{ns}/serviceaccounts/{name}",
            get(|UrlPath((ns, name)): UrlPath<(String, String)>| async move {
                json(&json!({"kind": "ServiceAccount", "apiVersion": "v1",
                    "metadata": {"name": name, "namespace": ns}}))
            }),
        )
        .route(
            &format!("{rbac}/roles"),
            post(|State(s): State<Store>, UrlPath(ns): UrlPath<String>, Json(r): Json<Value>| async move {
                s.put_rbac(&ns, "Role", r.clone());
                created(&r)
            }),
        )
        .route(
            &format!("{rbac}/roles/{{name}}"),
            get(|State(s): State<Store>, UrlPath((ns, name)): UrlPath<(String, String)>| async move {
                match s.rbac_object(&ns, "Role", &name) {
                    Some(r) => json(&r),
                    None => not_found(&format!("roles.rbac.authorization.k8s.io \"{name}\"")),
                }
            }),
        )
        .route(
            &format!("{rbac}/rolebindings"),
            post(|State(s): State<Store>, UrlPath(ns): UrlPath<String>, Json(b): Json<Value>| async move {
                s.put_rbac(&ns, "RoleBinding", b.clone());
                created(&b)
            }),
        )
        .route(
            &format!("{rbac}/rolebindings/{{name}}"),
            axum::routing::delete(
                |State(s): State<Store>, UrlPath((ns, name)): UrlPath<(String, String)>| async move {
                    match s.delete_rbac(&ns, "RoleBinding", &name) {
                        Some(b) => json(&b),
                        None => not_found(&format!("rolebindings.rbac.authorization.k8s.io \"{name}\"")),
                    }
                },
            ),
        )
        .route(
            SPECS_PATH,
            post(|State(s): State<Store>, Json(o): Json<Value>| async move {
                s.crd.apply_object(o.clone());
                created(&o)
            }),
        )
        .route(
            // Stored as v1 (the storage version), read back through v1.
            "/apis/windows.k8s.io/v1alpha1/gmsacredentialspecs",
            post(|State(s): State<Store>, Json(mut o): Json<Value>| async move {
                let answer = o.clone();
                o["apiVersion"] = json!("windows.k8s.io/v1");
                s.crd.apply_object(o);
                created(&answer)
            }),
        )
        .route(
            &format!("{SPECS_PATH}/{{name}}"),
            put(|State(s): State<Store>, Json(o): Json<Value>| async move {
                s.crd.apply_object(o.clone());
                json(&o)
            })
            .delete(|State(s): State<Store>, UrlPath(name): UrlPath<String>| async move {
                match s.crd.delete(&name) {
                    Some(_) => json(&json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
                    None => not_found(&format!("gmsacredentialspecs.windows.k8s.io \"{name}\"")),
                }
            }),
        )
        .route(
            &format!("{admission}/{{kind}}"),
            post(
                |State(s): State<Store>, UrlPath(kind): UrlPath<String>, Json(c): Json<Value>| async move {
                    let name = c["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    s.lock().hooks.insert((kind, name), c.clone());
                    created(&c)
                },
            ),
        )
        .route(
            &format!("{admission}/{{kind}}/{{name}}"),
            axum::routing::delete(
                |State(s): State<Store>, UrlPath((kind, name)): UrlPath<(String, String)>| async move {
                    match s.lock().hooks.remove(&(kind, name.clone())) {
                        Some(c) => json(&c),
                        None => not_found(&name),
                    }
                },
            ),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods",
            post(
                |State(s): State<Store>,
                 UrlPath(ns): UrlPath<String>,
                 RawQuery(q): RawQuery,
                 Json(pod): Json<Value>| async move {
                    let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    s.write_pod((ns, name), "CREATE", "pods", pod, q).await
                },
            ),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            get(|State(s): State<Store>, UrlPath((ns, name)): UrlPath<(String, String)>| async move {
                match s.lock().pods.get(&(ns, name.clone())) {
                    Some(p) => json(p),
                    None => not_found(&format!("pods \"{name}\"")),
                }
            })
            .put(
                |State(s): State<Store>,
                 UrlPath(key): UrlPath<(String, String)>,
                 RawQuery(q): RawQuery,
                 Json(pod): Json<Value>| async move { s.write_pod(key, "UPDATE", "pods", pod, q).await },
            )
            .delete(|State(s): State<Store>, UrlPath((ns, name)): UrlPath<(String, String)>| async move {
                match s.lock().pods.remove(&(ns, name.clone())) {
                    Some(p) => json(&p),
                    None => not_found(&format!("pods \"{name}\"")),
                }
            }),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/ephemeralcontainers",
            put(
                |State(s): State<Store>,
                 UrlPath(key): UrlPath<(String, String)>,
                 RawQuery(q): RawQuery,
                 Json(pod): Json<Value>| async move {
                    s.write_pod(key, "UPDATE", "pods/ephemeralcontainers", pod, q).await
                },
            ),
        )
        .with_state(store.clone());
    app.merge(store.crd.router())
}

/// A fake cluster on loopback (see the module documentation). Stops when dropped.
pub struct FakeCluster {
    store: Store,
    server: FakeApiServer,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeCluster {
    /// Starts an empty fake cluster (no credspecs, no grants) on `127.0.0.1`, with a
    /// kubeconfig for it.
    pub async fn start() -> Result<Self> {
        let store = Store::new();
        let server = FakeApiServer::start(routes(store.clone())).await;
        let dir = tempfile::tempdir().context("a directory for the fake cluster's kubeconfig")?;
        let kubeconfig = server.write_kubeconfig(dir.path());
        Ok(Self {
            store,
            server,
            kubeconfig,
            _dir: dir,
        })
    }

    /// The fake cluster of this test process, started on first use on a thread of its own (so
    /// it outlives each test's runtime; it ends with the process, which under nextest is the
    /// test), and named by `GMSA_E2E_KUBECONFIG` before any scenario connects: the harness
    /// ([`crate::cluster::Cluster::for_test`]) and the [`crate::local_webhook::LocalWebhook`]
    /// then use it as they would use a real cluster.
    pub fn for_this_process() -> &'static FakeCluster {
        static CLUSTER: OnceLock<FakeCluster> = OnceLock::new();
        CLUSTER.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("fake-cluster".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .enable_all()
                        .build()
                        .expect("a runtime for the fake cluster");
                    // The runtime serves the cluster until the process ends.
                    runtime.block_on(async move {
                        let _ = tx.send(FakeCluster::start().await);
                        std::future::pending::<()>().await;
                    });
                })
                .expect("a thread for the fake cluster");
            let cluster = rx
                .recv()
                .expect("the fake cluster's thread answers")
                .expect("the fake cluster starts");
            std::env::set_var("GMSA_E2E_KUBECONFIG", cluster.kubeconfig());
            cluster
        })
    }

    /// Path of a kubeconfig for this cluster (context `fake`, no credentials).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// How many requests had this method and path.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.server.count(method, path)
    }

    /// The webhook configuration of `kind` ([`MUTATING`], [`VALIDATING`]) named `name`.
    pub fn webhook_configuration(&self, kind: &str, name: &str) -> Option<Value> {
        self.store
            .lock()
            .hooks
            .get(&(kind.into(), name.into()))
            .cloned()
    }

    /// How many pods are stored in namespace `ns`.
    pub fn pods_in(&self, ns: &str) -> usize {
        self.store
            .lock()
            .pods
            .keys()
            .filter(|(pod_ns, _)| pod_ns == ns)
            .count()
    }

    /// The labels of namespace `ns` (`Null` when there is no such namespace).
    pub fn namespace_labels(&self, ns: &str) -> Value {
        self.store
            .lock()
            .namespaces
            .get(ns)
            .cloned()
            .unwrap_or_default()
    }
}
