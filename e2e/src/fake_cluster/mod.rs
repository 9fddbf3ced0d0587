//! A fake cluster the harness ([`crate::cluster`]) runs its scenarios against in CI: testkit's
//! fake API server ([`FakeApiServer`], with [`CrdApi`] for the credspecs and their watch)
//! extended into a small admission chain, so the scenarios that a real cluster runs
//! (`e2e/tests/cluster_webhook.rs`, `cluster_doctor.rs`) run unchanged without one
//! (`e2e/tests/fake_cluster_webhook.rs`, `fake_cluster_doctor.rs`).
//!
//! What it does as kube-apiserver does:
//! - pod writes (create, dry-run create, update, `pods/ephemeralcontainers`) go through the
//!   registered webhook configurations, mutating then validating. Each entry is called by its
//!   `url` over TLS trusting only its `caBundle`, when its rules (operation, resource) and its
//!   `namespaceSelector` (`matchLabels`, against the namespace's labels, which include
//!   `kubernetes.io/metadata.name` as on a real API server) select the write. Patches are
//!   applied, warnings come back as `Warning` headers, a denial is worded as the API server
//!   words it (`admission webhook "NAME" denied the request: …`), and a webhook that cannot be
//!   called as `failed calling webhook … Post "URL": …` in Go's words (`x509: certificate
//!   signed by unknown authority`, `… has expired or is not yet valid`, `connect: connection
//!   refused`), the text `gmsa doctor` reads causes from (every entry is `failurePolicy: Fail`,
//!   as the harness registers them);
//! - access reviews (LocalSubjectAccessReviews of the webhook, SubjectAccessReviews of doctor)
//!   are answered by RBAC: the Roles and RoleBindings created in a namespace, evaluated with
//!   [`crate::rbac::allows`]; a grant or a revocation applies at once;
//! - the CRD is the one this build generates, `Established`; credspecs created through `v1` or
//!   `v1alpha1` are read through `v1`; namespaces, service accounts, pods and configurations
//!   are stored until deleted (a namespace's pods and RBAC with it); configurations are listed
//!   and patched by entry `name` (as a strategic-merge patch does); nodes: none.
//!
//! Not modelled (no scenario of the fake needs it): the API server's own pod validation,
//! `matchExpressions`, `objectSelector`, `matchConditions`, Services and Deployments (the
//! harness registers its webhook by `url`).
//!
//! [`FakeCluster::for_this_process`] is the one a test process shares, as the scenarios of a
//! real run share one cluster: each scenario works in its own namespace.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use anyhow::{Context, Result};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gmsa_testkit::crd_api::{AuthzAnswer, CrdApi};
use gmsa_testkit::{json, status, FakeApiServer};
use serde_json::{json, Value};

use crate::rbac;

mod admission;
mod routes;

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
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        objects.rbac.retain(|o| !is(o, kind, ns, &name));
        objects.rbac.push(object);
        self.reauthorize(&mut objects, ns);
    }

    fn delete_rbac(&self, ns: &str, kind: &str, name: &str) -> Option<Value> {
        let mut objects = self.lock();
        let at = objects.rbac.iter().position(|o| is(o, kind, ns, name))?;
        let removed = objects.rbac.remove(at);
        self.reauthorize(&mut objects, ns);
        Some(removed)
    }

    fn rbac_object(&self, ns: &str, kind: &str, name: &str) -> Option<Value> {
        self.lock()
            .rbac
            .iter()
            .find(|o| is(o, kind, ns, name))
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
            let answer = authorize(&objects.rbac, grant_ns, sa, &request);
            self.crd.set_authz(grant_ns, sa, spec, answer);
        }
    }

    /// A SubjectAccessReview answered by RBAC (service accounts only; any other user is not
    /// allowed).
    fn subject_access_review(&self, mut review: Value) -> Value {
        let spec = &review["spec"];
        let attrs = &spec["resourceAttributes"];
        let user = spec["user"].as_str().unwrap_or_default();
        let account = user
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'));
        let resource = match attrs["subresource"].as_str() {
            Some(sub) if !sub.is_empty() => {
                format!("{}/{sub}", attrs["resource"].as_str().unwrap_or_default())
            }
            _ => attrs["resource"].as_str().unwrap_or_default().to_string(),
        };
        let answer = match account {
            Some((ns, sa)) => {
                let request = rbac::Request {
                    verb: attrs["verb"].as_str().unwrap_or_default(),
                    group: attrs["group"].as_str().unwrap_or_default(),
                    resource: &resource,
                    name: attrs["name"].as_str(),
                    namespace: attrs["namespace"].as_str(),
                };
                authorize(&self.lock().rbac, ns, sa, &request)
            }
            None => AuthzAnswer::no_opinion(),
        };
        let mut status = json!({"allowed": answer.allowed});
        if let Some(reason) = answer.reason {
            status["reason"] = json!(reason);
        }
        review["status"] = status;
        review
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
        let labels = objects.namespaces.get(ns).cloned().unwrap_or_default();
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

/// A 404 as the API server words it: `{what} not found`.
fn not_found(what: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{what} not found"),
    )
}

/// A 201 with the object created.
fn created(object: &Value) -> Response {
    (StatusCode::CREATED, json(object)).into_response()
}

/// Whether `object` is the `kind` named `name` in namespace `ns`.
fn is(object: &Value, kind: &str, ns: &str, name: &str) -> bool {
    object["kind"] == kind
        && object["metadata"]["namespace"] == ns
        && object["metadata"]["name"] == name
}

/// What RBAC answers for service account `ns/sa` making `request`, from `objects`.
fn authorize(objects: &[Value], ns: &str, sa: &str, request: &rbac::Request<'_>) -> AuthzAnswer {
    if rbac::allows(objects, ns, sa, request) {
        AuthzAnswer::allowed(&format!(
            "RBAC: allowed by a RoleBinding of namespace {ns:?} (fake cluster)"
        ))
    } else {
        AuthzAnswer::no_opinion()
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
        let server = FakeApiServer::start(routes::routes(store.clone())).await;
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
