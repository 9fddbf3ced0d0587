//! The API routes of the fake cluster.

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use gmsa_testkit::crd_api::SPECS_PATH;
use gmsa_testkit::json;
use serde_json::{json, Value};

use super::{created, not_found, Store, MUTATING, VALIDATING};

/// The CRD this build generates, as an API server shows it once established.
fn established_crd() -> Value {
    let mut crd = gmsa_crd::crd_value();
    crd["status"] = json!({"conditions": [
        {"type": "NamesAccepted", "status": "True"},
        {"type": "Established", "status": "True"},
    ]});
    crd
}

/// A `…List` of `items`.
fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({"kind": format!("{kind}List"), "apiVersion": api_version,
        "metadata": {"resourceVersion": "1"}, "items": items})
}

/// `MutatingWebhookConfiguration` for `mutatingwebhookconfigurations`, and so on.
fn configuration_kind(plural: &str) -> String {
    match plural {
        MUTATING => "MutatingWebhookConfiguration".into(),
        VALIDATING => "ValidatingWebhookConfiguration".into(),
        other => other.into(),
    }
}

/// A strategic-merge patch of a webhook configuration's `webhooks` (merged by `name`, as the
/// API server merges them), the one kind of patch the harness sends.
fn patch_entries(config: &mut Value, patch: &Value) {
    for change in patch["webhooks"].as_array().into_iter().flatten() {
        let entries = config["webhooks"].as_array_mut();
        if let Some(entry) = entries
            .into_iter()
            .flatten()
            .find(|e| e["name"] == change["name"])
        {
            json_patch::merge(entry, change);
        }
    }
}

fn namespace_object(name: &str, labels: &Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

pub(super) fn routes(store: Store) -> Router {
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
                let mut labels = ns["metadata"]["labels"].clone();
                if !labels.is_object() {
                    labels = json!({});
                }
                // Set on every namespace by the API server (since 1.21).
                labels["kubernetes.io/metadata.name"] = json!(name);
                s.lock().namespaces.insert(name.clone(), labels.clone());
                created(&namespace_object(&name, &labels))
            }),
        )
        .route(
            "/api/v1/nodes",
            get(|| async { json(&list("Node", "v1", Vec::new())) }),
        )
        .route(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            post(|State(s): State<Store>, Json(r): Json<Value>| async move {
                created(&s.subject_access_review(r))
            }),
        )
        .route(
            "/api/v1/namespaces/{ns}",
            get(|State(s): State<Store>, UrlPath(ns): UrlPath<String>| async move {
                match s.lock().namespaces.get(&ns) {
                    Some(labels) => json(&namespace_object(&ns, labels)),
                    None => not_found(&format!("namespaces \"{ns}\"")),
                }
            })
            .patch(
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
            )
            .get(|State(s): State<Store>, UrlPath(kind): UrlPath<String>| async move {
                let items: Vec<Value> = s
                    .lock()
                    .hooks
                    .iter()
                    .filter(|((k, _), _)| *k == kind)
                    .map(|(_, c)| c.clone())
                    .collect();
                json(&list(&configuration_kind(&kind), "admissionregistration.k8s.io/v1", items))
            }),
        )
        .route(
            &format!("{admission}/{{kind}}/{{name}}"),
            axum::routing::patch(
                |State(s): State<Store>,
                 UrlPath((kind, name)): UrlPath<(String, String)>,
                 Json(p): Json<Value>| async move {
                    let mut objects = s.lock();
                    match objects.hooks.get_mut(&(kind, name.clone())) {
                        Some(c) => {
                            patch_entries(c, &p);
                            json(c)
                        }
                        None => not_found(&name),
                    }
                },
            )
            .delete(
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
