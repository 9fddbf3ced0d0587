//! The admission chain: a pod write through the selected webhooks, each called over TLS as
//! kube-apiserver calls it, and the answer the API server gives.

use anyhow::{anyhow, Context, Result};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use gmsa_testkit::{json, status};
use serde_json::{json, Value};

use super::{not_found, Store, MUTATING, VALIDATING};

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
    // Every CA of the bundle, as the API server trusts them.
    let cas = gmsa_certs::cert::parse_pem_chain(&String::from_utf8_lossy(&pem), "caBundle")?;
    let (base, path) = url
        .strip_prefix("https://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(host, path)| (format!("https://{host}"), format!("/{path}")))
        .ok_or_else(|| anyhow!("not an https URL with a path: {url}"))?;
    let mut config = kube::Config::new(base.parse()?);
    config.root_cert = Some(cas);
    let client = kube::Client::try_from(config)?;
    let request =
        kube::core::Request::new(path).create(&Default::default(), serde_json::to_vec(review)?)?;
    let text = client.request_text(request).await?;
    Ok(serde_json::from_str(&text)?)
}

/// A failed webhook call as kube-apiserver words it (Go's `net` and `crypto/x509`), for the
/// failures a broken set-up causes; any other error in its own words.
fn go_wording(e: &anyhow::Error, url: &str) -> String {
    use rustls::CertificateError as C;
    let host = url
        .strip_prefix("https://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or(url);
    for cause in e.chain() {
        let io = cause.downcast_ref::<std::io::Error>();
        if io.is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return format!("dial tcp {host}: connect: connection refused");
        }
        if let Some(rustls::Error::InvalidCertificate(c)) = tls_error(cause) {
            let why = match c {
                C::UnknownIssuer | C::BadSignature => {
                    "certificate signed by unknown authority".to_string()
                }
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. } => {
                    "certificate has expired or is not yet valid".to_string()
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    format!("certificate is not valid for {host}")
                }
                other => format!("{other:?}"),
            };
            return format!("tls: failed to verify certificate: x509: {why}");
        }
    }
    format!("{e:#}")
}

/// The TLS error in `cause`: tokio-rustls and hyper wrap it in `io::Error`s, whose `source()`
/// skips the error they hold.
fn tls_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner: &(dyn std::error::Error + 'static) =
        cause.downcast_ref::<std::io::Error>()?.get_ref()?;
    tls_error(inner)
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
                                 failed to call webhook: Post \"{url}\": {}",
                                go_wording(&e, url)
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
    pub(super) async fn write_pod(
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
