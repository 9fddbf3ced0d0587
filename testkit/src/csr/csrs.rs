//! The `certificates.k8s.io/v1` CertificateSigningRequest routes: create, get, delete, list
//! and watch (`fieldSelector=metadata.name=...`, `resourceVersion`), and `PUT .../approval`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::api::{json_body, json_status, not_found, now_rfc3339, stale, CsrApi, SignerMode};
use super::rbac::{Call, USER};
use super::signer::{has_condition, push_condition};
use crate::status;

fn query_param(query: &Option<String>, key: &str) -> Option<String> {
    query.as_deref()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The name a `fieldSelector=metadata.name=X` asks for.
fn selected_name(query: &Option<String>) -> Option<String> {
    query_param(query, "fieldSelector")?
        .split(',')
        .find_map(|s| s.strip_prefix("metadata.name=").map(str::to_string))
}

pub(super) async fn list_or_watch_csrs(
    State(api): State<CsrApi>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(r) = api.check(Call::ListCsr) {
        return r;
    }
    let name = selected_name(&query);
    let matches = move |n: &str| name.as_deref().is_none_or(|want| want == n);
    if query_param(&query, "watch").as_deref() == Some("true") {
        let since: u64 = query_param(&query, "resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (backlog, rx) = {
            let st = api.state();
            let backlog: Vec<String> = st
                .log
                .iter()
                .filter(|(rv, n, _)| *rv > since && matches(n))
                .map(|(_, _, line)| line.clone())
                .collect();
            (backlog, api.inner.events.subscribe())
        };
        let live = futures::stream::unfold((rx, matches), move |(mut rx, matches)| async move {
            loop {
                match rx.recv().await {
                    Ok((rv, n, line)) if rv > since && matches(&n) => {
                        return Some((line, (rx, matches)));
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        use futures::StreamExt as _;
        let stream = futures::stream::iter(backlog)
            .chain(live)
            .map(|line| Ok::<Bytes, std::convert::Infallible>(Bytes::from(line)));
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            Body::from_stream(stream),
        )
            .into_response();
    }
    let st = api.state();
    let items: Vec<Value> = st
        .csrs
        .iter()
        .filter(|(n, _)| matches(n))
        .map(|(_, v)| v.clone())
        .collect();
    json_status(
        StatusCode::OK,
        &json!({
            "kind": "CertificateSigningRequestList",
            "apiVersion": "certificates.k8s.io/v1",
            "metadata": {"resourceVersion": st.rv.to_string()},
            "items": items,
        }),
    )
}

pub(super) async fn create_csr(State(api): State<CsrApi>, body: Bytes) -> Response {
    if let Some(r) = api.check(Call::CreateCsr) {
        return r;
    }
    let mut csr = match json_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let name = csr["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "CertificateSigningRequest.certificates.k8s.io \"\" is invalid: metadata.name: Required value: name or generateName is required",
        );
    }
    let mut st = api.state();
    if st.csrs.contains_key(&name) {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("certificatesigningrequests.certificates.k8s.io \"{name}\" already exists"),
        );
    }
    csr["kind"] = json!("CertificateSigningRequest");
    csr["apiVersion"] = json!("certificates.k8s.io/v1");
    csr["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", st.rv));
    csr["metadata"]["creationTimestamp"] = json!(now_rfc3339());
    csr["spec"]["username"] = json!(USER);
    csr["spec"]["groups"] = json!([
        "system:serviceaccounts",
        "system:serviceaccounts:gmsa",
        "system:authenticated"
    ]);
    csr["status"] = json!({});
    let created = api.store_csr(&mut st, csr, "ADDED");
    if let SignerMode::Deny { reason, message } = st.mode.clone() {
        // An approver policy denies it right away; the create response predates that.
        let mut denied = created.clone();
        push_condition(&mut denied, "Denied", &reason, &message);
        api.store_csr(&mut st, denied, "MODIFIED");
    }
    json_status(StatusCode::CREATED, &created)
}

pub(super) async fn get_csr(State(api): State<CsrApi>, Path(name): Path<String>) -> Response {
    if let Some(r) = api.check(Call::GetCsr) {
        return r;
    }
    match api.csr(&name) {
        Some(csr) => json_status(StatusCode::OK, &csr),
        None => not_found("certificatesigningrequests.certificates.k8s.io", &name),
    }
}

pub(super) async fn delete_csr(State(api): State<CsrApi>, Path(name): Path<String>) -> Response {
    if let Some(r) = api.check(Call::DeleteCsr) {
        return r;
    }
    let mut st = api.state();
    match st.csrs.remove(&name) {
        Some(csr) => {
            st.rv += 1;
            api.emit(&mut st, &name, "DELETED", &csr);
            json_status(StatusCode::OK, &csr)
        }
        None => not_found("certificatesigningrequests.certificates.k8s.io", &name),
    }
}

pub(super) async fn approve_csr(
    State(api): State<CsrApi>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = api
        .check(Call::Approve)
        .or_else(|| api.check(Call::ApproveSigner))
    {
        return r;
    }
    let sent = match json_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut st = api.state();
    let Some(stored) = st.csrs.get(&name).cloned() else {
        return not_found("certificatesigningrequests.certificates.k8s.io", &name);
    };
    if let Some(r) = stale(
        "certificatesigningrequests.certificates.k8s.io",
        &name,
        &sent,
        &stored,
    ) {
        return r;
    }
    let conditions = sent["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let approving = conditions.iter().any(|c| c["type"] == "Approved");
    let denying =
        conditions.iter().any(|c| c["type"] == "Denied") || has_condition(&stored, "Denied");
    if approving && denying {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            &format!("CertificateSigningRequest.certificates.k8s.io \"{name}\" is invalid: status.conditions[1].type: Invalid value: \"Approved\": Approved and Denied conditions are mutually exclusive"),
        );
    }
    // The API server keeps only the conditions from the request, filling in the times.
    let now = now_rfc3339();
    let mut updated = stored;
    let filled: Vec<Value> = conditions
        .into_iter()
        .map(|mut c| {
            if c.get("lastUpdateTime").is_none_or(Value::is_null) {
                c["lastUpdateTime"] = json!(now);
            }
            if c.get("lastTransitionTime").is_none_or(Value::is_null) {
                c["lastTransitionTime"] = json!(now);
            }
            c
        })
        .collect();
    updated["status"]["conditions"] = json!(filled);
    let stored = api.store_csr(&mut st, updated, "MODIFIED");
    drop(st);
    if approving {
        api.schedule_signer(name);
    }
    json_status(StatusCode::OK, &stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("metadata.name%3Ds.n"), "metadata.name=s.n");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(
            selected_name(&Some("watch=true&fieldSelector=metadata.name%3Dx.y".into())),
            Some("x.y".to_string())
        );
    }
}
