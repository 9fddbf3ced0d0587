//! The other objects `gmsa certs` reads and writes: the `kube-root-ca.crt` ConfigMap, Secrets
//! (create, get, replace), and Mutating/ValidatingWebhookConfigurations (get, JSON and merge
//! patches, each body recorded).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::api::{json_body, json_status, not_found, now_rfc3339, stale, CsrApi, Store};
use super::rbac::Call;
use crate::{fixture, status};

pub(super) async fn get_configmap(
    State(api): State<CsrApi>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    if let Some(r) = api.check(Call::GetConfigMap) {
        return r;
    }
    if name != "kube-root-ca.crt" || !api.state().root_ca {
        return not_found("configmaps", &name);
    }
    let mut cm = fixture("k8s-1.32/api/configmap-kube-root-ca.crt.json");
    cm["data"]["ca.crt"] = json!(api.ca_pem());
    cm["metadata"]["namespace"] = json!(ns);
    json_status(StatusCode::OK, &cm)
}

pub(super) async fn get_secret(
    State(api): State<CsrApi>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    if let Some(r) = api.check(Call::GetSecret) {
        return r;
    }
    match api.secret(&ns, &name) {
        Some(s) => json_status(StatusCode::OK, &s),
        None => not_found("secrets", &name),
    }
}

fn finish_secret(st: &mut Store, ns: &str, mut secret: Value) -> Value {
    st.rv += 1;
    secret["kind"] = json!("Secret");
    secret["apiVersion"] = json!("v1");
    secret["metadata"]["namespace"] = json!(ns);
    secret["metadata"]["resourceVersion"] = json!(st.rv.to_string());
    if secret["metadata"]
        .get("creationTimestamp")
        .is_none_or(Value::is_null)
    {
        secret["metadata"]["creationTimestamp"] = json!(now_rfc3339());
    }
    if secret.get("type").is_none_or(Value::is_null) {
        secret["type"] = json!("Opaque");
    }
    secret
}

pub(super) async fn create_secret(
    State(api): State<CsrApi>,
    Path(ns): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = api.check(Call::CreateSecret) {
        return r;
    }
    let secret = match json_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let name = secret["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut st = api.state();
    let key = (ns.clone(), name.clone());
    if st.secrets.contains_key(&key) {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("secrets \"{name}\" already exists"),
        );
    }
    let secret = finish_secret(&mut st, &ns, secret);
    st.secrets.insert(key, secret.clone());
    json_status(StatusCode::CREATED, &secret)
}

pub(super) async fn replace_secret(
    State(api): State<CsrApi>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Some(r) = api.check(Call::ReplaceSecret) {
        return r;
    }
    let secret = match json_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut st = api.state();
    let key = (ns.clone(), name.clone());
    let Some(stored) = st.secrets.get(&key) else {
        return not_found("secrets", &name);
    };
    if let Some(r) = stale("secrets", &name, &secret, stored) {
        return r;
    }
    let stored_type = stored["type"].as_str().unwrap_or("Opaque");
    if secret["type"].as_str().unwrap_or("Opaque") != stored_type {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            &format!(
                "Secret \"{name}\" is invalid: type: Invalid value: \"{}\": field is immutable",
                secret["type"].as_str().unwrap_or("Opaque")
            ),
        );
    }
    let secret = finish_secret(&mut st, &ns, secret);
    st.secrets.insert(key, secret.clone());
    json_status(StatusCode::OK, &secret)
}

fn webhook_kind(segment: &str) -> Option<&'static str> {
    match segment {
        "mutatingwebhookconfigurations" => Some("mutating"),
        "validatingwebhookconfigurations" => Some("validating"),
        _ => None,
    }
}

pub(super) async fn get_webhook(
    State(api): State<CsrApi>,
    Path((kind, name)): Path<(String, String)>,
) -> Response {
    if let Some(r) = api.check(Call::GetWebhook) {
        return r;
    }
    let Some(k) = webhook_kind(&kind) else {
        return not_found(&kind, &name);
    };
    match api.webhook(k, &name) {
        Some(w) => json_status(StatusCode::OK, &w),
        None => not_found(&format!("{kind}.admissionregistration.k8s.io"), &name),
    }
}

pub(super) async fn patch_webhook(
    State(api): State<CsrApi>,
    Path((kind, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = api.check(Call::PatchWebhook) {
        return r;
    }
    let Some(k) = webhook_kind(&kind) else {
        return not_found(&kind, &name);
    };
    let mut st = api.state();
    let key = (k.to_string(), name.clone());
    let Some(mut doc) = st.webhooks.get(&key).cloned() else {
        return not_found(&format!("{kind}.admissionregistration.k8s.io"), &name);
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let invalid = |m: String| status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &m);
    if content_type.starts_with("application/json-patch+json") {
        let patch: json_patch::Patch = match serde_json::from_slice(&body) {
            Ok(p) => p,
            Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string()),
        };
        if let Err(e) = json_patch::patch(&mut doc, &patch) {
            return invalid(format!("the JSON patch does not apply: {e}"));
        }
    } else if content_type.starts_with("application/merge-patch+json") {
        let patch = match json_body(&body) {
            Ok(v) => v,
            Err(r) => return r,
        };
        json_patch::merge(&mut doc, &patch);
    } else {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &format!("the fake only supports JSON and merge patches, not {content_type:?}"),
        );
    }
    st.rv += 1;
    doc["metadata"]["resourceVersion"] = json!(st.rv.to_string());
    let sent = serde_json::from_slice(&body).unwrap_or(Value::Null);
    st.patches.push((k.to_string(), name, sent));
    st.webhooks.insert(key, doc.clone());
    json_status(StatusCode::OK, &doc)
}
