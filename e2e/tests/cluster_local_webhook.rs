//! The local-webhook half of the real-cluster harness (`gmsa_e2e::cluster::LocalWebhook`,
//! `TestNamespace::register_webhook`, real pods, updates, ephemeral containers, warnings),
//! against testkit's fake API server extended into a small admission chain: pod writes are
//! sent to the webhook configurations the harness registered (by their `url`, trusting only
//! their `caBundle`, honouring their rules and namespace selector), patches are applied,
//! denials and warnings are passed back as a real API server does. What this proves without a
//! cluster: the local webhook starts in Kubernetes mode against the cluster the harness chose
//! (`GMSA_E2E_KUBECONFIG` -> `KUBECONFIG`), the registration is callable and trusted, the
//! harness reads admitted pods, denials and warnings correctly, certificate rotation is seen,
//! and cleanup removes the configurations, the pods and the namespace.
//!
//! One test in its own file (its own process): it sets `GMSA_E2E_KUBECONFIG`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use gmsa_e2e::cluster::{
    denial, windows_pod, Cluster, LocalWebhook, LocalWebhookOptions, LOCAL_MUTATE_HOOK,
    LOCAL_VALIDATE_HOOK,
};
use gmsa_testkit::crd_api::{AuthzAnswer, CrdApi, SPECS_PATH};
use gmsa_testkit::{fixture, json, status, FakeApiServer};
use serde_json::{json, Value};

const MUTATING: &str = "mutatingwebhookconfigurations";
const VALIDATING: &str = "validatingwebhookconfigurations";

#[derive(Clone)]
struct Fake {
    crd: CrdApi,
    /// (kind plural, name) -> configuration.
    hooks: Arc<Mutex<HashMap<(String, String), Value>>>,
    /// (namespace, name) -> stored pod.
    pods: Arc<Mutex<HashMap<(String, String), Value>>>,
    /// Namespace labels as patched.
    labels: Arc<Mutex<HashMap<String, Value>>>,
}

/// What the admission chain decided.
enum Outcome {
    Admitted { pod: Value, warnings: Vec<String> },
    Denied(Response),
}

fn matches_rule(hook: &Value, operation: &str, resource: &str) -> bool {
    hook["rules"].as_array().into_iter().flatten().any(|r| {
        r["operations"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o == operation))
            && r["resources"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o == resource))
    })
}

/// POSTs `review` to the webhook at `url`, trusting only `ca_bundle` (base64 PEM).
async fn call(url: &str, ca_bundle: &str, review: &Value) -> Result<Value, String> {
    let pem = base64::engine::general_purpose::STANDARD
        .decode(ca_bundle)
        .map_err(|e| format!("caBundle is not base64: {e}"))?;
    let pem = String::from_utf8(pem).map_err(|e| e.to_string())?;
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| format!("caBundle is not a PEM certificate: {e}"))?;
    let (base, path) = url
        .strip_prefix("https://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(host, path)| (format!("https://{host}"), format!("/{path}")))
        .ok_or_else(|| format!("not an https URL with a path: {url}"))?;
    let mut config = kube::Config::new(base.parse().map_err(|e| format!("{e}"))?);
    config.root_cert = Some(vec![der]);
    let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
    let request = kube::core::Request::new(path)
        .create(
            &Default::default(),
            serde_json::to_vec(review).expect("JSON"),
        )
        .map_err(|e| e.to_string())?;
    let text = client
        .request_text(request)
        .await
        .map_err(|e| format!("failed calling webhook {url}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

impl Fake {
    /// Runs the registered webhooks (mutating, then validating) for a pod write.
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
            let configs: Vec<Value> = self
                .hooks
                .lock()
                .expect("lock")
                .iter()
                .filter(|((k, _), _)| k == kind)
                .map(|(_, v)| v.clone())
                .collect();
            for config in configs {
                for hook in config["webhooks"].as_array().into_iter().flatten() {
                    let selected = hook["namespaceSelector"]["matchLabels"]
                        ["kubernetes.io/metadata.name"]
                        == ns;
                    if !selected || !matches_rule(hook, operation, resource) {
                        continue;
                    }
                    let review = json!({
                        "apiVersion": "admission.k8s.io/v1",
                        "kind": "AdmissionReview",
                        "request": {
                            "uid": "e2e-fake",
                            "kind": {"group": "", "version": "v1", "kind": "Pod"},
                            "resource": {"group": "", "version": "v1", "resource": "pods"},
                            "subResource": resource.strip_prefix("pods/"),
                            "name": pod["metadata"]["name"],
                            "namespace": ns,
                            "operation": operation,
                            "userInfo": {"username": "e2e"},
                            "object": pod,
                            "oldObject": old,
                            "dryRun": false,
                        },
                    });
                    let url = hook["clientConfig"]["url"].as_str().unwrap_or_default();
                    let ca = hook["clientConfig"]["caBundle"]
                        .as_str()
                        .unwrap_or_default();
                    let name = hook["name"].as_str().unwrap_or_default();
                    let answer = match call(url, ca, &review).await {
                        Ok(a) => a,
                        Err(e) => {
                            return Outcome::Denied(status(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "InternalError",
                                &format!(
                                "Internal error occurred: failed calling webhook \"{name}\": {e}"
                            ),
                            ))
                        }
                    };
                    let response = &answer["response"];
                    for w in response["warnings"].as_array().into_iter().flatten() {
                        warnings.push(w.as_str().unwrap_or_default().to_string());
                    }
                    if response["allowed"] != true {
                        let code = response["status"]["code"].as_u64().unwrap_or(400) as u16;
                        return Outcome::Denied(status(
                            StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
                            "Denied",
                            &format!(
                                "admission webhook \"{name}\" denied the request: {}",
                                response["status"]["message"].as_str().unwrap_or_default()
                            ),
                        ));
                    }
                    if let Some(patch) = response["patch"].as_str() {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(patch)
                            .expect("patch is base64");
                        let patch: json_patch::Patch =
                            serde_json::from_slice(&bytes).expect("patch is a JSON Patch");
                        json_patch::patch(&mut pod, &patch).expect("patch applies");
                    }
                }
            }
        }
        Outcome::Admitted { pod, warnings }
    }

    async fn write_pod(
        &self,
        ns: String,
        name: String,
        operation: &str,
        resource: &str,
        pod: Value,
        query: Option<String>,
    ) -> Response {
        let old = self
            .pods
            .lock()
            .expect("lock")
            .get(&(ns.clone(), name.clone()))
            .cloned();
        match self.admit(&ns, operation, resource, pod, old).await {
            Outcome::Denied(r) => r,
            Outcome::Admitted { mut pod, warnings } => {
                pod["metadata"]["namespace"] = json!(ns);
                pod["metadata"]["resourceVersion"] = json!("7");
                if !query.unwrap_or_default().contains("dryRun=All") {
                    self.pods
                        .lock()
                        .expect("lock")
                        .insert((ns, name), pod.clone());
                }
                let mut headers = HeaderMap::new();
                for w in warnings {
                    let value = format!("299 - \"{}\"", w.replace('"', "\\\""));
                    headers.append(
                        "warning",
                        HeaderValue::from_str(&value).expect("header value"),
                    );
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

fn not_found(what: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{what} not found"),
    )
}

fn router(fake: Fake) -> Router {
    let admission = "/apis/admissionregistration.k8s.io/v1";
    let rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}";
    let app = Router::new()
        .route(
            "/version",
            get(|| async { json(&fixture("k8s-1.32/api/version.json")["serverVersion"]) }),
        )
        .route(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
            get(|Path(name): Path<String>| async move {
                json(&json!({
                    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                    "metadata": {"name": name},
                    "spec": {"group": "windows.k8s.io", "scope": "Cluster", "versions": [],
                             "names": {"kind": "GMSACredentialSpec", "plural": "gmsacredentialspecs"}},
                }))
            }),
        )
        .route(
            "/api/v1/namespaces",
            post(|Json(ns): Json<Value>| async move { (StatusCode::CREATED, json(&ns)) }),
        )
        .route(
            "/api/v1/namespaces/{ns}",
            axum::routing::patch(
                |State(f): State<Fake>, Path(ns): Path<String>, Json(p): Json<Value>| async move {
                    let labels = p["metadata"]["labels"].clone();
                    f.labels.lock().expect("lock").insert(ns.clone(), labels.clone());
                    json(&json!({"kind": "Namespace", "apiVersion": "v1",
                        "metadata": {"name": ns, "labels": labels}}))
                },
            )
            .delete(|Path(ns): Path<String>| async move {
                json(&json!({"kind": "Namespace", "apiVersion": "v1",
                    "metadata": {"name": ns}, "status": {"phase": "Terminating"}}))
            }),
        )
        .route(
            "/api/v1/namespaces/{ns}/serviceaccounts",
            post(|Json(sa): Json<Value>| async move { (StatusCode::CREATED, json(&sa)) }),
        )
        .route(
            "/api/v1/namespaces/{ns}/serviceaccounts/{name}",
            get(|Path((ns, name)): Path<(String, String)>| async move {
                json(&json!({"kind": "ServiceAccount", "apiVersion": "v1",
                    "metadata": {"name": name, "namespace": ns}}))
            }),
        )
        .route(
            &format!("{rbac}/roles/{{name}}"),
            get(|Path((_, name)): Path<(String, String)>| async move {
                not_found(&format!("roles.rbac.authorization.k8s.io \"{name}\""))
            }),
        )
        .route(
            &format!("{rbac}/roles"),
            post(|Json(r): Json<Value>| async move { (StatusCode::CREATED, json(&r)) }),
        )
        .route(
            &format!("{rbac}/rolebindings"),
            // A binding of role `use-SPEC` lets its service account use SPEC (what RBAC does).
            post(
                |State(f): State<Fake>, Path(ns): Path<String>, Json(b): Json<Value>| async move {
                    let role = b["roleRef"]["name"].as_str().unwrap_or_default();
                    if let Some(spec) = role.strip_prefix("use-") {
                        for s in b["subjects"].as_array().into_iter().flatten() {
                            let sa = s["name"].as_str().unwrap_or_default();
                            f.crd
                                .set_authz(&ns, sa, spec, AuthzAnswer::allowed("RBAC: fake binding"));
                        }
                    }
                    (StatusCode::CREATED, json(&b))
                },
            ),
        )
        .route(
            SPECS_PATH,
            post(|State(f): State<Fake>, Json(o): Json<Value>| async move {
                let name = o["metadata"]["name"].as_str().unwrap_or_default();
                f.crd.apply(name, o.get("credspec").cloned());
                (StatusCode::CREATED, json(&o))
            }),
        )
        .route(
            &format!("{SPECS_PATH}/{{name}}"),
            axum::routing::delete(|State(f): State<Fake>, Path(name): Path<String>| async move {
                match f.crd.delete(&name) {
                    Some(_) => json(&json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
                    None => not_found(&name),
                }
            }),
        )
        .route(
            &format!("{admission}/{{kind}}"),
            post(
                |State(f): State<Fake>, Path(kind): Path<String>, Json(c): Json<Value>| async move {
                    let name = c["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    f.hooks.lock().expect("lock").insert((kind, name), c.clone());
                    (StatusCode::CREATED, json(&c))
                },
            ),
        )
        .route(
            &format!("{admission}/{{kind}}/{{name}}"),
            axum::routing::delete(
                |State(f): State<Fake>, Path((kind, name)): Path<(String, String)>| async move {
                    match f.hooks.lock().expect("lock").remove(&(kind, name.clone())) {
                        Some(c) => json(&c),
                        None => not_found(&name),
                    }
                },
            ),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods",
            post(
                |State(f): State<Fake>,
                 Path(ns): Path<String>,
                 RawQuery(q): RawQuery,
                 Json(pod): Json<Value>| async move {
                    let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    f.write_pod(ns, name, "CREATE", "pods", pod, q).await
                },
            ),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            get(
                |State(f): State<Fake>, Path((ns, name)): Path<(String, String)>| async move {
                    match f.pods.lock().expect("lock").get(&(ns, name.clone())) {
                        Some(p) => json(p),
                        None => not_found(&format!("pods \"{name}\"")),
                    }
                },
            )
            .put(
                |State(f): State<Fake>,
                 Path((ns, name)): Path<(String, String)>,
                 Json(pod): Json<Value>| async move {
                    f.write_pod(ns, name, "UPDATE", "pods", pod, None).await
                },
            )
            .delete(
                |State(f): State<Fake>, Path((ns, name)): Path<(String, String)>| async move {
                    match f.pods.lock().expect("lock").remove(&(ns, name.clone())) {
                        Some(p) => json(&p),
                        None => not_found(&format!("pods \"{name}\"")),
                    }
                },
            ),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/ephemeralcontainers",
            put(
                |State(f): State<Fake>,
                 Path((ns, name)): Path<(String, String)>,
                 Json(pod): Json<Value>| async move {
                    f.write_pod(ns, name, "UPDATE", "pods/ephemeralcontainers", pod, None)
                        .await
                },
            ),
        )
        .with_state(fake.clone());
    app.merge(fake.crd.router())
}

fn inlined(pod: &k8s_openapi::api::core::v1::Pod, pointer: &str) -> Option<Value> {
    let pod = serde_json::to_value(pod).expect("pod JSON");
    let text = pod.pointer(pointer)?.as_str()?;
    serde_json::from_str(text).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_webhook_is_registered_called_and_cleaned_up() {
    let fake = Fake {
        crd: CrdApi::empty(),
        hooks: Arc::default(),
        pods: Arc::default(),
        labels: Arc::default(),
    };
    let server = FakeApiServer::start(router(fake.clone())).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = server.write_kubeconfig(dir.path());
    // This test is alone in its process (its own test file).
    std::env::set_var("GMSA_E2E_KUBECONFIG", &kubeconfig);

    let cluster = Cluster::for_test("local webhook harness").await;
    assert_eq!(
        std::env::var_os("KUBECONFIG").as_deref(),
        Some(kubeconfig.as_os_str()),
        "the local webhook finds the harness's cluster"
    );
    assert!(cluster.has_crd().await.expect("probe CRD"));
    let mut hook = LocalWebhook::start(&LocalWebhookOptions {
        random_hostname: true,
    })
    .await
    .expect("the local webhook starts against the fake and gets ready");
    assert!(hook.url("/mutate").starts_with("https://127.0.0.1:"));
    let credspec =
        json!({"CmsPlugins": ["ActiveDirectory"], "DomainJoinConfig": {"NetBiosName": "CONTOSO"}});

    let ns_name = cluster
        .with_namespace("localhook", async |ns| {
            ns.service_account("webapp").await?;
            let spec = ns.create_spec("webapp", credspec.clone()).await?;
            ns.grant_use("webapp", &spec).await?;
            ns.register_webhook(&hook).await?;
            let name = ns.name().to_string();
            assert_eq!(
                fake.labels.lock().expect("lock")[&name]["windows.k8s.io/disabled"],
                "true"
            );
            for kind in [MUTATING, VALIDATING] {
                let config =
                    fake.hooks.lock().expect("lock")[&(kind.to_string(), name.clone())].clone();
                let entry = &config["webhooks"][0];
                assert_eq!(entry["failurePolicy"], "Fail");
                assert!(matches_rule(entry, "UPDATE", "pods/ephemeralcontainers"));
                assert_eq!(matches_rule(entry, "UPDATE", "pods"), kind == VALIDATING);
            }

            // Inlined and a random hostname, through the harness's dry-run.
            let pod = windows_pod("p", "webapp", Some(&spec));
            let admitted = ns.accepts(&pod).await?;
            assert_eq!(
                inlined(
                    &admitted,
                    "/spec/securityContext/windowsOptions/gmsaCredentialSpec"
                ),
                Some(credspec.clone())
            );
            let hostname = admitted.spec.as_ref().and_then(|s| s.hostname.clone());
            assert!(hostname.is_some_and(|h| h.len() == 15));

            // Warnings are read from the API server's Warning headers.
            let mut preset = pod.clone();
            preset["spec"]["hostname"] = json!("web-1");
            let kept = ns.admit(&preset).await?;
            assert!(
                kept.warnings.iter().any(|w| w.contains("\"web-1\"")),
                "{:?}",
                kept.warnings
            );
            assert!(ns.admit(&pod).await?.warnings.is_empty());

            // Denials from both webhooks.
            let (code, message) = ns
                .rejects(&windows_pod("p", "default", Some(&spec)))
                .await?;
            assert_eq!(code, 403, "{message}");
            assert!(
                message.contains(&format!(
                    "admission webhook \"{LOCAL_VALIDATE_HOOK}\" denied"
                )),
                "{message}"
            );
            let (code, message) = ns
                .rejects(&windows_pod("p", "webapp", Some("gmsa-e2e-missing")))
                .await?;
            assert_eq!(code, 404, "{message}");
            assert!(message.contains(LOCAL_MUTATE_HOOK), "{message}");

            // A real pod, updated, and given ephemeral containers.
            ns.create_pod(&pod).await?;
            let stored = ns.get_pod("p").await?;
            assert!(inlined(
                &stored,
                "/spec/securityContext/windowsOptions/gmsaCredentialSpec"
            )
            .is_some());
            ns.update_pod("p", |p| p["metadata"]["labels"] = json!({"touched": "yes"}))
                .await?
                .map_err(|e| anyhow::anyhow!("benign update refused: {e}"))?;
            let renamed = ns
                .update_pod("p", |p| {
                    p["spec"]["securityContext"]["windowsOptions"]["gmsaCredentialSpecName"] =
                        json!("other")
                })
                .await?;
            let (code, message) = denial(renamed, "renaming")?;
            assert_eq!(code, 403, "{message}");
            assert!(message.contains("cannot update"), "{message}");

            let mut debug = json!({"name": "debug", "image": "busybox"});
            debug["securityContext"] = json!({"windowsOptions": {"gmsaCredentialSpecName": spec}});
            ns.add_ephemeral_container("p", debug)
                .await?
                .map_err(|e| anyhow::anyhow!("allowed debug container refused: {e}"))?;
            let stored = ns.get_pod("p").await?;
            assert_eq!(
                inlined(
                    &stored,
                    "/spec/ephemeralContainers/0/securityContext/windowsOptions/gmsaCredentialSpec"
                ),
                Some(credspec.clone())
            );
            let mut forbidden = json!({"name": "debug2", "image": "busybox"});
            forbidden["securityContext"] =
                json!({"windowsOptions": {"gmsaCredentialSpecName": "gmsa-e2e-missing"}});
            let refused = ns.add_ephemeral_container("p", forbidden).await?;
            assert!(denial(refused, "unknown spec in a debug container").is_ok());

            // Rotation: the new certificate is served and pods keep being admitted.
            let before = hook.served_not_after().await?;
            let expected = hook.rotate()?;
            assert!(expected > before);
            let start = std::time::Instant::now();
            while hook.served_not_after().await? != expected {
                assert!(start.elapsed() < Duration::from_secs(20), "not reloaded");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            ns.accepts(&pod).await?;
            assert!(
                hook.metric("gmsa_webhook_certificate_reloads_total{result=\"success\"}")
                    .await?
                    >= 1.0
            );
            Ok(name)
        })
        .await
        .expect("local webhook scenario");
    hook.shutdown().await;

    assert!(
        fake.hooks.lock().expect("lock").is_empty(),
        "configurations deleted"
    );
    assert!(fake.pods.lock().expect("lock").is_empty(), "pods deleted");
    assert_eq!(
        server.count("DELETE", &format!("/api/v1/namespaces/{ns_name}")),
        1
    );
    assert_eq!(
        server.count("DELETE", &format!("/api/v1/namespaces/{ns_name}/pods/p")),
        1
    );
}
