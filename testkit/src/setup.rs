//! A healthy gMSA set-up as the API server would show it (the chart installed in `gmsa`, a
//! spec `webapp01`, a service account `apps/webapp` allowed to use it, one Windows node), as
//! JSON objects a test breaks one at a time, and a [`Setup::router`] serving them to a
//! [`crate::FakeApiServer`] for `gmsa doctor`'s reads.
//!
//! The probe pod's server-side dry-run create is answered as the API server would after
//! calling the webhooks: [`Setup::probe_refusal`] when set (a test words the API server's
//! message, e.g. a TLS failure); else, when a mutating configuration holds the chart's entry
//! and the namespace is not labelled `windows.k8s.io/disabled=true`, a missing spec is denied
//! and the spec's JSON is inlined wherever the pod names it; when a validating configuration
//! holds the entry, a service account without the `use` grant is denied. The messages are
//! the webhook's.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use rcgen::{CertificateParams, KeyPair, SanType};
use serde_json::{json, Value};

use crate::ca::TestCa;
use crate::{json, status};

/// The chart's webhook entry name.
pub const ENTRY: &str = "admission-webhook.windows-gmsa.sigs.k8s.io";

/// A CA and what it signs, plus a second CA for "caBundle from another CA".
pub struct Pki {
    /// The CA in caBundle (PEM).
    pub ca_pem: String,
    /// Another CA (PEM).
    pub other_ca_pem: String,
    ca: TestCa,
    /// `now`, Unix seconds, that the leaves are made around.
    pub now: i64,
}

impl Pki {
    /// Two fresh CAs.
    pub fn new() -> Self {
        let ca = TestCa::new("test cluster CA");
        let other_ca_pem = TestCa::new("another CA").pem;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Self {
            ca_pem: ca.pem.clone(),
            other_ca_pem,
            ca,
            now,
        }
    }

    /// A serving certificate for `dns` (and IP SANs for names that parse as IPs), valid from a
    /// day ago for a year, signed by the CA: `(cert PEM, key PEM)`.
    pub fn leaf_for(&self, dns: &[&str]) -> (String, String) {
        self.leaf(dns, self.now - 86_400, self.now + 365 * 86_400)
    }

    /// Like [`Pki::leaf_for`] with the validity given (Unix seconds).
    pub fn leaf(&self, dns: &[&str], from: i64, to: i64) -> (String, String) {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::default();
        params.subject_alt_names = dns
            .iter()
            .map(|d| match d.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*d).try_into().expect("IA5 DNS name")),
            })
            .collect();
        params.not_before = time::OffsetDateTime::from_unix_timestamp(from).expect("from");
        params.not_after = time::OffsetDateTime::from_unix_timestamp(to).expect("to");
        let cert = params
            .signed_by(&key, &self.ca.issuer())
            .expect("leaf")
            .pem();
        (cert, key.serialize_pem())
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// The objects of a set-up; `None`/empty means absent. Edit any of them before serving.
pub struct Setup {
    /// The certificates.
    pub pki: Pki,
    /// `/version`.
    pub version: Value,
    /// The CRD (the caller's generated one, with an `Established` status).
    pub crd: Option<Value>,
    /// MutatingWebhookConfigurations.
    pub mutating: Vec<Value>,
    /// ValidatingWebhookConfigurations.
    pub validating: Vec<Value>,
    /// Namespaces.
    pub namespaces: Vec<Value>,
    /// Services.
    pub services: Vec<Value>,
    /// EndpointSlices.
    pub endpoint_slices: Vec<Value>,
    /// Deployments.
    pub deployments: Vec<Value>,
    /// Pods (the webhook's).
    pub pods: Vec<Value>,
    /// Secrets.
    pub secrets: Vec<Value>,
    /// ServiceAccounts.
    pub service_accounts: Vec<Value>,
    /// GMSACredentialSpecs.
    pub specs: Vec<Value>,
    /// Nodes.
    pub nodes: Vec<Value>,
    /// `(namespace, service account, spec)` triples that may `use`.
    pub grants: Vec<(String, String, String)>,
    /// When set, the probe pod's dry-run create is refused with `(code, reason, message)`.
    pub probe_refusal: Option<(u16, String, String)>,
    /// When set, every read of this resource plural (e.g. `secrets`) answers 403.
    pub forbidden: Vec<String>,
}

/// The example spec's credspec.
pub fn credspec() -> Value {
    json!({
        "CmsPlugins": ["ActiveDirectory"],
        "DomainJoinConfig": {
            "Sid": "S-1-5-21-2126729477-2524075714-3094792973", "MachineAccountName": "WebApp01",
            "Guid": "244818ae-87ca-4fcd-92ec-e79e5252348a", "DnsTreeName": "contoso.com",
            "DnsName": "contoso.com", "NetBiosName": "CONTOSO"
        },
        "ActiveDirectoryConfig": {"GroupManagedServiceAccounts": [
            {"Name": "WebApp01", "Scope": "contoso.com"}, {"Name": "WebApp01", "Scope": "CONTOSO"}
        ]}
    })
}

fn webhook_entry(ca_pem: &str, path: &str, validating: bool) -> Value {
    let mut rules = vec![
        json!({"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["*"], "resources": ["pods"], "scope": "Namespaced"}),
    ];
    if validating {
        rules[0]["operations"] = json!(["CREATE", "UPDATE"]);
    }
    rules.push(json!({"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["*"], "resources": ["pods/ephemeralcontainers"], "scope": "Namespaced"}));
    let selector = if validating {
        json!({})
    } else {
        json!({"matchExpressions": [{"key": "windows.k8s.io/disabled", "operator": "NotIn", "values": ["true"]}]})
    };
    json!({
        "name": ENTRY,
        "clientConfig": {
            "service": {"name": "gmsa", "namespace": "gmsa", "path": path, "port": 443},
            "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
        },
        "rules": rules,
        "failurePolicy": "Fail",
        "timeoutSeconds": 10,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1", "v1beta1"],
        "namespaceSelector": selector,
        "matchConditions": [{"name": "mentions-gmsa", "expression": "true"}],
    })
}

fn meta(name: &str, namespace: Option<&str>) -> Value {
    let mut m = json!({"name": name, "uid": format!("uid-{name}"), "resourceVersion": "1"});
    if let Some(ns) = namespace {
        m["namespace"] = ns.into();
    }
    m
}

impl Setup {
    /// The healthy set-up, with `crd` (the generated CRD manifest) installed and established.
    pub fn healthy(mut crd: Value) -> Self {
        let pki = Pki::new();
        let (cert, key) = pki.leaf_for(&[
            "gmsa",
            "gmsa.gmsa",
            "gmsa.gmsa.svc",
            "gmsa.gmsa.svc.cluster.local",
        ]);
        crd["metadata"]["uid"] = "uid-crd".into();
        crd["status"] = json!({"conditions": [
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"}
        ]});
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let labels = json!({"app": "gmsa"});
        let webhook_pod = |name: &str| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "gmsa", "labels": labels},
                "spec": {"containers": [{"name": "webhook", "image": "gmsa-webhook"}]},
                "status": {"phase": "Running", "containerStatuses": [{"name": "webhook", "image": "gmsa-webhook", "imageID": "", "ready": true, "restartCount": 0}]}})
        };
        Self {
            version: json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "x", "gitTreeState": "clean",
                "buildDate": "2024-12-11T18:04:20Z", "goVersion": "go1.23.3", "compiler": "gc", "platform": "linux/amd64"}),
            crd: Some(crd),
            mutating: vec![
                json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                "metadata": meta("gmsa", None), "webhooks": [webhook_entry(&pki.ca_pem, "/mutate", false)]}),
            ],
            validating: vec![
                json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                "metadata": meta("gmsa", None), "webhooks": [webhook_entry(&pki.ca_pem, "/validate", true)]}),
            ],
            namespaces: ["gmsa", "apps"]
                .iter()
                .map(|n| {
                    let mut m = meta(n, None);
                    m["labels"] = json!({"kubernetes.io/metadata.name": n});
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": m})
                })
                .collect(),
            services: vec![
                json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("gmsa", Some("gmsa")),
                "spec": {"selector": labels, "ports": [{"name": "https", "port": 443, "targetPort": 8443}]}}),
            ],
            endpoint_slices: vec![
                json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "gmsa-abcde", "namespace": "gmsa", "labels": {"kubernetes.io/service-name": "gmsa"}},
                "addressType": "IPv4", "ports": [{"name": "https", "port": 8443}],
                "endpoints": [{"addresses": ["10.244.0.7"], "conditions": {"ready": true}}]}),
            ],
            deployments: vec![
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("gmsa", Some("gmsa")),
                "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "webhook", "image": "gmsa-webhook"}],
                        "volumes": [{"name": "tls", "secret": {"secretName": "gmsa-tls"}}]}}},
                "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}}),
            ],
            pods: vec![webhook_pod("gmsa-7d9c-a"), webhook_pod("gmsa-7d9c-b")],
            secrets: vec![
                json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": meta("gmsa-tls", Some("gmsa")),
                "data": {"tls.crt": b64(&cert), "tls.key": b64(&key), "ca.crt": b64(&pki.ca_pem)}}),
            ],
            service_accounts: vec![
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("webapp", Some("apps"))}),
            ],
            specs: vec![
                json!({"apiVersion": "windows.k8s.io/v1", "kind": "GMSACredentialSpec", "metadata": meta("webapp01", None), "credspec": credspec()}),
            ],
            nodes: vec![json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "winnode1", "labels": {"kubernetes.io/os": "windows"}}})],
            grants: vec![("apps".into(), "webapp".into(), "webapp01".into())],
            probe_refusal: None,
            forbidden: Vec::new(),
            pki,
        }
    }

    /// Sets `caBundle` of every webhook entry to `pem`.
    pub fn set_ca_bundle(&mut self, pem: &str) {
        let b = base64::engine::general_purpose::STANDARD.encode(pem);
        for c in self.mutating.iter_mut().chain(self.validating.iter_mut()) {
            for w in c["webhooks"].as_array_mut().into_iter().flatten() {
                w["clientConfig"]["caBundle"] = b.clone().into();
            }
        }
    }

    /// Replaces the serving Secret's certificate and key.
    pub fn set_serving(&mut self, (cert, key): (String, String)) {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for s in &mut self.secrets {
            s["data"]["tls.crt"] = b64(&cert).into();
            s["data"]["tls.key"] = b64(&key).into();
        }
    }

    /// Serves the set-up (shared, so a test may break it between runs).
    pub fn router(setup: Arc<Mutex<Setup>>) -> Router {
        Router::new()
            .route("/version", get(version))
            .route(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
                get(crd),
            )
            .route(
                "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
                get(mutating),
            )
            .route(
                "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
                get(validating),
            )
            .route("/api/v1/namespaces/{name}", get(namespace))
            .route("/api/v1/namespaces/{ns}/services/{name}", get(service))
            .route(
                "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                get(endpoint_slices),
            )
            .route(
                "/apis/apps/v1/namespaces/{ns}/deployments",
                get(deployments),
            )
            .route("/api/v1/namespaces/{ns}/pods", get(pods).post(probe))
            .route("/api/v1/namespaces/{ns}/secrets/{name}", get(secret))
            .route(
                "/apis/windows.k8s.io/v1/gmsacredentialspecs/{name}",
                get(spec),
            )
            .route("/api/v1/nodes", get(nodes))
            .route(
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                post(access_review),
            )
            .route(
                "/api/v1/namespaces/{ns}/services/{proxy}/proxy/{path}",
                get(proxy),
            )
            .with_state(setup)
    }
}

type Shared = State<Arc<Mutex<Setup>>>;

fn with<T>(s: &Arc<Mutex<Setup>>, f: impl FnOnce(&Setup) -> T) -> T {
    f(&s.lock().unwrap_or_else(PoisonError::into_inner))
}

fn forbidden(s: &Setup, plural: &str) -> Option<Response> {
    s.forbidden.iter().any(|p| p == plural).then(|| {
        status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!("{plural} is forbidden: User \"doctor\" cannot get resource \"{plural}\""),
        )
    })
}

fn list(kind: &str, items: Vec<Value>) -> Response {
    json(
        &json!({"apiVersion": "v1", "kind": format!("{kind}List"), "metadata": {"resourceVersion": "1"}, "items": items}),
    )
}

/// The items of `namespace` matching the query's `labelSelector`, as a list.
fn list_in(
    kind: &str,
    items: &[Value],
    namespace: &str,
    q: &std::collections::HashMap<String, String>,
) -> Response {
    let selected = items
        .iter()
        .filter(|v| {
            v["metadata"]["namespace"] == namespace && labels_match(v, q.get("labelSelector"))
        })
        .cloned()
        .collect();
    list(kind, selected)
}

fn one(found: Option<&Value>, what: &str, name: &str) -> Response {
    match found {
        Some(v) => json(v),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{what} \"{name}\" not found"),
        ),
    }
}

fn named<'a>(items: &'a [Value], ns: Option<&str>, name: &str) -> Option<&'a Value> {
    items.iter().find(|v| {
        v["metadata"]["name"] == name && ns.is_none_or(|ns| v["metadata"]["namespace"] == ns)
    })
}

fn labels_match(v: &Value, selector: Option<&String>) -> bool {
    let Some(sel) = selector else { return true };
    sel.split(',')
        .filter(|s| !s.is_empty())
        .all(|kv| match kv.split_once('=') {
            Some((k, want)) => v["metadata"]["labels"][k] == want,
            None => true,
        })
}

type Params = Query<std::collections::HashMap<String, String>>;

async fn version(State(s): Shared) -> Response {
    with(&s, |s| json(&s.version))
}
async fn crd(State(s): Shared, Path(name): Path<String>) -> Response {
    with(&s, |s| {
        forbidden(s, "customresourcedefinitions").unwrap_or_else(|| {
            one(
                s.crd
                    .as_ref()
                    .filter(|c| c["metadata"]["name"] == name.as_str()),
                "customresourcedefinitions.apiextensions.k8s.io",
                &name,
            )
        })
    })
}
async fn mutating(State(s): Shared) -> Response {
    with(&s, |s| {
        forbidden(s, "mutatingwebhookconfigurations")
            .unwrap_or_else(|| list("MutatingWebhookConfiguration", s.mutating.clone()))
    })
}
async fn validating(State(s): Shared) -> Response {
    with(&s, |s| {
        forbidden(s, "validatingwebhookconfigurations")
            .unwrap_or_else(|| list("ValidatingWebhookConfiguration", s.validating.clone()))
    })
}
async fn namespace(State(s): Shared, Path(name): Path<String>) -> Response {
    with(&s, |s| {
        forbidden(s, "namespaces")
            .unwrap_or_else(|| one(named(&s.namespaces, None, &name), "namespaces", &name))
    })
}
async fn service(State(s): Shared, Path((ns, name)): Path<(String, String)>) -> Response {
    with(&s, |s| {
        forbidden(s, "services")
            .unwrap_or_else(|| one(named(&s.services, Some(&ns), &name), "services", &name))
    })
}
async fn endpoint_slices(State(s): Shared, Path(ns): Path<String>, Query(q): Params) -> Response {
    with(&s, |s| {
        forbidden(s, "endpointslices")
            .unwrap_or_else(|| list_in("EndpointSlice", &s.endpoint_slices, &ns, &q))
    })
}
async fn deployments(State(s): Shared, Path(ns): Path<String>, Query(q): Params) -> Response {
    with(&s, |s| {
        forbidden(s, "deployments")
            .unwrap_or_else(|| list_in("Deployment", &s.deployments, &ns, &q))
    })
}
async fn pods(State(s): Shared, Path(ns): Path<String>, Query(q): Params) -> Response {
    with(&s, |s| {
        forbidden(s, "pods").unwrap_or_else(|| list_in("Pod", &s.pods, &ns, &q))
    })
}
async fn secret(State(s): Shared, Path((ns, name)): Path<(String, String)>) -> Response {
    with(&s, |s| {
        forbidden(s, "secrets")
            .unwrap_or_else(|| one(named(&s.secrets, Some(&ns), &name), "secrets", &name))
    })
}
async fn spec(State(s): Shared, Path(name): Path<String>) -> Response {
    with(&s, |s| {
        forbidden(s, "gmsacredentialspecs").unwrap_or_else(|| {
            one(
                named(&s.specs, None, &name),
                "gmsacredentialspecs.windows.k8s.io",
                &name,
            )
        })
    })
}
async fn nodes(State(s): Shared, Query(q): Params) -> Response {
    with(&s, |s| {
        forbidden(s, "nodes").unwrap_or_else(|| {
            list(
                "Node",
                s.nodes
                    .iter()
                    .filter(|v| labels_match(v, q.get("labelSelector")))
                    .cloned()
                    .collect(),
            )
        })
    })
}

async fn access_review(State(s): Shared, body: bytes::Bytes) -> Response {
    let mut review: Value = serde_json::from_slice(&body).unwrap_or_default();
    with(&s, |s| {
        if let Some(r) = forbidden(s, "subjectaccessreviews") {
            return r;
        }
        let attrs = &review["spec"]["resourceAttributes"];
        let user = review["spec"]["user"].as_str().unwrap_or("");
        let allowed = attrs["verb"] == "use"
            && attrs["group"] == "windows.k8s.io"
            && attrs["resource"] == "gmsacredentialspecs"
            && s.grants.iter().any(|(ns, sa, spec)| {
                attrs["namespace"] == ns.as_str()
                    && user == format!("system:serviceaccount:{ns}:{sa}")
                    && attrs["name"] == spec.as_str()
            });
        review["status"] = if allowed {
            json!({"allowed": true, "reason": "RBAC: allowed by RoleBinding \"webapp-use-gmsa-webapp01/apps\""})
        } else {
            json!({"allowed": false})
        };
        (
            StatusCode::CREATED,
            [("content-type", "application/json")],
            review.to_string(),
        )
            .into_response()
    })
}

async fn probe(
    State(s): Shared,
    Path(ns): Path<String>,
    Query(q): Params,
    body: bytes::Bytes,
) -> Response {
    let mut pod: Value = serde_json::from_slice(&body).unwrap_or_default();
    with(&s, |s| {
        if q.get("dryRun").map(String::as_str) != Some("All") {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "this fake only answers dry-run creates",
            );
        }
        if let Some((code, reason, message)) = &s.probe_refusal {
            return status(
                StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                reason,
                message,
            );
        }
        if named(&s.namespaces, None, &ns).is_none() {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("namespaces \"{ns}\" not found"),
            );
        }
        let sa = pod["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        if named(&s.service_accounts, Some(&ns), &sa).is_none() {
            return status(StatusCode::FORBIDDEN, "Forbidden", &format!(
                "pods \"{}\" is forbidden: error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found",
                pod["metadata"]["name"].as_str().unwrap_or("")));
        }
        let has_entry = |configs: &[Value]| {
            configs.iter().any(|c| {
                c["webhooks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|w| w["name"] == ENTRY)
            })
        };
        let opted_out = named(&s.namespaces, None, &ns)
            .is_some_and(|n| n["metadata"]["labels"]["windows.k8s.io/disabled"] == "true");
        if has_entry(&s.mutating) && !opted_out {
            let names = spec_names(&pod);
            if let Some(missing) = names.iter().find(|n| named(&s.specs, None, n).is_none()) {
                return status(StatusCode::FORBIDDEN, "Forbidden", &format!(
                    "admission webhook \"{ENTRY}\" denied the request: cred spec {missing} does not exist (named by pod-level securityContext): create the GMSACredentialSpec \"{missing}\""));
            }
            for list in ["containers", "initContainers"] {
                for c in pod["spec"][list].as_array_mut().into_iter().flatten() {
                    inline(&mut c["securityContext"]["windowsOptions"], s);
                }
            }
            inline(&mut pod["spec"]["securityContext"]["windowsOptions"], s);
        }
        if has_entry(&s.validating) {
            for spec in spec_names(&pod) {
                if !s
                    .grants
                    .iter()
                    .any(|(gns, gsa, gspec)| *gns == ns && *gsa == sa && *gspec == spec)
                {
                    return status(StatusCode::FORBIDDEN, "Forbidden", &format!(
                        "admission webhook \"{ENTRY}\" denied the request: service account \"{sa}\" is not authorized to `use` GMSA cred spec \"{spec}\" (named by pod-level securityContext)"));
                }
            }
        }
        pod["metadata"]["uid"] = "uid-probe".into();
        (
            StatusCode::CREATED,
            [("content-type", "application/json")],
            pod.to_string(),
        )
            .into_response()
    })
}

/// Every `gmsaCredentialSpecName` of a pod.
fn spec_names(pod: &Value) -> Vec<String> {
    let mut places = vec![&pod["spec"]["securityContext"]["windowsOptions"]];
    for list in ["containers", "initContainers"] {
        places.extend(
            pod["spec"][list]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| &c["securityContext"]["windowsOptions"]),
        );
    }
    places
        .iter()
        .filter_map(|w| w["gmsaCredentialSpecName"].as_str().map(str::to_string))
        .collect()
}

fn inline(w: &mut Value, s: &Setup) {
    if let Some(name) = w["gmsaCredentialSpecName"].as_str() {
        if let Some(spec) = named(&s.specs, None, name) {
            w["gmsaCredentialSpec"] = spec["credspec"].to_string().into();
        }
    }
}

/// `GET …/services/https:gmsa:443/proxy/{info,health}`: the webhook's own answers, when its
/// Deployment has a ready replica.
async fn proxy(
    State(s): Shared,
    Path((_ns, _proxy, path)): Path<(String, String, String)>,
) -> Response {
    with(&s, |s| {
        if let Some(r) = forbidden(s, "services/proxy") {
            return r;
        }
        let ready = s
            .deployments
            .iter()
            .any(|d| d["status"]["readyReplicas"].as_i64().unwrap_or(0) > 0);
        if !ready {
            return status(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "no endpoints available for service \"https:gmsa:443\"",
            );
        }
        match path.as_str() {
            "info" => json(&json!({"version": "0.1.0"})),
            "health" => (
                StatusCode::NO_CONTENT,
                [("content-type", "text/plain")],
                String::new(),
            )
                .into_response(),
            _ => status(StatusCode::NOT_FOUND, "NotFound", "404 page not found"),
        }
    })
}
