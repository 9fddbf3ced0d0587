//! [`CsrApi`]: a stateful fake of the parts of the API server that `gmsa certs` uses, answering
//! like the captures in `fixtures/apiserver/k8s-1.32/api/` (`csr-*.json`, `configmap-*.json`):
//!
//! - `certificates.k8s.io/v1` CertificateSigningRequests: create (201; 409 AlreadyExists), get,
//!   delete, list and watch (with `fieldSelector=metadata.name=...` and `resourceVersion`),
//!   `PUT .../{name}/approval`;
//! - a signer with a test CA ([`CsrApi::ca_pem`]) that acts on approved CSRs like the
//!   controller-manager: for `kubernetes.io/kubelet-serving` it first validates the request
//!   (`Failed: SignerValidationFailure` as in `csr-failed-bad-subject.json`), then sets
//!   `status.certificate`; knobs make it deny, fail or never sign ([`SignerMode`]);
//! - the `kube-root-ca.crt` ConfigMap in every namespace (holding the test CA; can be removed);
//! - Secrets: create, get, replace (409 on a stale `resourceVersion`, 422 on a type change);
//! - Mutating/ValidatingWebhookConfigurations: get, patch (JSON patch and merge patch);
//! - `403 Forbidden` on any chosen call ([`Call`], [`CsrApi::forbid`]), with the API server's
//!   wording.
//!
//! Mount [`CsrApi::router`] in a [`crate::FakeApiServer`].

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::{fixture, status};

/// Path of the CSR collection (cluster-scoped).
pub const CSRS_PATH: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

/// Path of one CSR.
pub fn csr_path(name: &str) -> String {
    format!("{CSRS_PATH}/{name}")
}

/// Path of a Secret.
pub fn secret_path(namespace: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/secrets/{name}")
}

/// Path of a webhook configuration; `kind` is `mutating` or `validating`.
pub fn webhook_path(kind: &str, name: &str) -> String {
    format!("/apis/admissionregistration.k8s.io/v1/{kind}webhookconfigurations/{name}")
}

/// The calls the fake serves, for [`CsrApi::forbid`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// `POST` a CSR.
    CreateCsr,
    /// `GET` a CSR by name.
    GetCsr,
    /// List or watch CSRs.
    ListCsr,
    /// `DELETE` a CSR.
    DeleteCsr,
    /// `PUT .../approval` refused by RBAC (no `update` on `certificatesigningrequests/approval`).
    Approve,
    /// `PUT .../approval` refused by the CertificateApproval admission plugin (no `approve` on
    /// `signers`).
    ApproveSigner,
    /// `GET` the `kube-root-ca.crt` ConfigMap.
    GetConfigMap,
    /// `GET` a Secret.
    GetSecret,
    /// `POST` a Secret.
    CreateSecret,
    /// `PUT` a Secret.
    ReplaceSecret,
    /// `GET` a webhook configuration.
    GetWebhook,
    /// `PATCH` a webhook configuration.
    PatchWebhook,
}

/// What the signer does with CSRs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerMode {
    /// Validate (for kubelet-serving) and sign approved CSRs (the default).
    Sign,
    /// An approver denies every new CSR right after it is created.
    Deny {
        /// Condition reason.
        reason: String,
        /// Condition message.
        message: String,
    },
    /// The signer fails approved CSRs with this reason and message.
    Fail {
        /// Condition reason.
        reason: String,
        /// Condition message.
        message: String,
    },
    /// Nothing ever signs (a signer nobody runs).
    Never,
}

/// The user the fake pretends made the calls (in 403 messages and `spec.username`).
pub const USER: &str = "system:serviceaccount:gmsa:gmsa-certs";

struct Store {
    rv: u64,
    csrs: BTreeMap<String, Value>,
    /// CSR watch events after creation of the fake: (resourceVersion, JSON line).
    log: Vec<(u64, String, String)>,
    secrets: BTreeMap<(String, String), Value>,
    webhooks: BTreeMap<(String, String), Value>,
    forbidden: HashSet<Call>,
    mode: SignerMode,
    root_ca: bool,
    max_duration: u64,
    sign_delay: Duration,
}

struct Inner {
    state: Mutex<Store>,
    /// (resourceVersion, CSR name, JSON line) for open watches.
    events: broadcast::Sender<(u64, String, String)>,
    ca_key: KeyPair,
    ca_params: CertificateParams,
    ca_pem: String,
}

/// The fake; cheap to clone (shared state).
#[derive(Clone)]
pub struct CsrApi {
    inner: Arc<Inner>,
}

impl Default for CsrApi {
    fn default() -> Self {
        Self::new()
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn json_status(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [("content-type", "application/json")],
        Body::from(value.to_string()),
    )
        .into_response()
}

fn forbidden(message: String) -> Response {
    status(StatusCode::FORBIDDEN, "Forbidden", &message)
}

fn not_found(resource: &str, name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
    )
}

/// 400 as the API server answers a request body that is not JSON.
#[allow(clippy::result_large_err)] // the Err is the handler's own early return
fn json_body(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|_| {
        status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the body is not JSON",
        )
    })
}

/// 409 when `sent` names a resourceVersion other than the stored one (optimistic concurrency).
fn stale(resource: &str, name: &str, sent: &Value, stored: &Value) -> Option<Response> {
    let rv = sent["metadata"]["resourceVersion"].as_str()?;
    (Some(rv) != stored["metadata"]["resourceVersion"].as_str()).then(|| {
        status(
            StatusCode::CONFLICT,
            "Conflict",
            &format!("Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
        )
    })
}

impl CsrApi {
    /// A fake with a fresh test CA, signer mode [`SignerMode::Sign`], the `kube-root-ca.crt`
    /// ConfigMap present, and no CSRs, Secrets or webhook configurations.
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().expect("test CA key");
        let mut ca_params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "gmsa-testkit-ca");
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_pem = ca_params
            .self_signed(&ca_key)
            .expect("self-signed test CA")
            .pem();
        let (events, _) = broadcast::channel(256);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(Store {
                    rv: 1000,
                    csrs: BTreeMap::new(),
                    log: Vec::new(),
                    secrets: BTreeMap::new(),
                    webhooks: BTreeMap::new(),
                    forbidden: HashSet::new(),
                    mode: SignerMode::Sign,
                    root_ca: true,
                    max_duration: 365 * 86_400,
                    sign_delay: Duration::from_millis(30),
                }),
                events,
                ca_key,
                ca_params,
                ca_pem,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, Store> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The test CA certificate (PEM) that signs approved CSRs.
    pub fn ca_pem(&self) -> String {
        self.inner.ca_pem.clone()
    }

    /// Signs a certificate for `key` with the test CA (for tests that pre-seed a Secret).
    pub fn sign_for_key(&self, key: &KeyPair, dns: &[String], not_after_secs: i64) -> String {
        let mut params = CertificateParams::default();
        params.subject_alt_names = dns
            .iter()
            .map(|d| rcgen::SanType::DnsName(d.clone().try_into().expect("DNS name")))
            .collect();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::seconds(not_after_secs);
        params.is_ca = IsCa::ExplicitNoCa;
        let issuer = Issuer::from_params(&self.inner.ca_params, &self.inner.ca_key);
        params
            .signed_by(key, &issuer)
            .expect("sign test certificate")
            .pem()
    }

    /// Sets what the signer does from now on.
    pub fn set_signer_mode(&self, mode: SignerMode) {
        self.state().mode = mode;
    }

    /// The longest certificate the signer issues (like `--cluster-signing-duration`).
    pub fn set_max_duration(&self, secs: u64) {
        self.state().max_duration = secs;
    }

    /// Answers 403 Forbidden to `call` from now on.
    pub fn forbid(&self, call: Call) {
        self.state().forbidden.insert(call);
    }

    /// Removes (or restores) the `kube-root-ca.crt` ConfigMap in every namespace.
    pub fn set_root_ca_configmap(&self, present: bool) {
        self.state().root_ca = present;
    }

    /// A CSR as stored.
    pub fn csr(&self, name: &str) -> Option<Value> {
        self.state().csrs.get(name).cloned()
    }

    /// Stores a CSR as is (resourceVersion assigned).
    pub fn insert_csr(&self, mut csr: Value) {
        let name = csr["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut st = self.state();
        st.rv += 1;
        csr["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        st.csrs.insert(name, csr);
    }

    /// A Secret as stored.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<Value> {
        self.state()
            .secrets
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Stores a Secret as is (resourceVersion assigned).
    pub fn insert_secret(&self, mut secret: Value) {
        let ns = secret["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = secret["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut st = self.state();
        st.rv += 1;
        secret["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        st.secrets.insert((ns, name), secret);
    }

    /// Stores a webhook configuration; `kind` is `mutating` or `validating`.
    pub fn insert_webhook(&self, kind: &str, mut config: Value) {
        let name = config["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut st = self.state();
        st.rv += 1;
        config["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        st.webhooks.insert((kind.to_string(), name), config);
    }

    /// A webhook configuration as stored.
    pub fn webhook(&self, kind: &str, name: &str) -> Option<Value> {
        self.state()
            .webhooks
            .get(&(kind.to_string(), name.to_string()))
            .cloned()
    }

    /// The routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route(CSRS_PATH, get(list_or_watch_csrs).post(create_csr))
            .route(
                &format!("{CSRS_PATH}/{{name}}"),
                get(get_csr).delete(delete_csr),
            )
            .route(
                &format!("{CSRS_PATH}/{{name}}/approval"),
                axum::routing::put(approve_csr),
            )
            .route(
                "/api/v1/namespaces/{ns}/configmaps/{name}",
                get(get_configmap),
            )
            .route(
                "/api/v1/namespaces/{ns}/secrets",
                axum::routing::post(create_secret),
            )
            .route(
                "/api/v1/namespaces/{ns}/secrets/{name}",
                get(get_secret).put(replace_secret),
            )
            .route(
                "/apis/admissionregistration.k8s.io/v1/{kind}/{name}",
                get(get_webhook).patch(patch_webhook),
            )
            .with_state(self.clone())
    }

    /// Stores `csr` with a new resourceVersion and tells watches (`ADDED`/`MODIFIED`).
    fn store_csr(&self, st: &mut Store, mut csr: Value, event: &str) -> Value {
        st.rv += 1;
        csr["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        let name = csr["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        st.csrs.insert(name.clone(), csr.clone());
        self.emit(st, &name, event, &csr);
        csr
    }

    fn emit(&self, st: &mut Store, name: &str, event: &str, object: &Value) {
        let line = format!("{}\n", json!({"type": event, "object": object}));
        st.log.push((st.rv, name.to_string(), line.clone()));
        let _ = self.inner.events.send((st.rv, name.to_string(), line));
    }

    /// Acts as the signer on an approved CSR, after the configured delay.
    fn schedule_signer(&self, name: String) {
        let api = self.clone();
        let delay = self.state().sign_delay;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut st = api.state();
            let Some(csr) = st.csrs.get(&name).cloned() else {
                return;
            };
            let mode = st.mode.clone();
            let result = match mode {
                SignerMode::Never | SignerMode::Deny { .. } => return,
                SignerMode::Fail { reason, message } => Err((reason, message)),
                SignerMode::Sign => api.sign(&csr, st.max_duration),
            };
            let mut csr = csr;
            match result {
                Ok(pem) => {
                    csr["status"]["certificate"] =
                        json!(base64::engine::general_purpose::STANDARD.encode(pem));
                }
                Err((reason, message)) => push_condition(&mut csr, "Failed", &reason, &message),
            }
            api.store_csr(&mut st, csr, "MODIFIED");
        });
    }

    /// Signs like the controller-manager: validation for kubelet-serving, then the usages from
    /// `spec.usages`, `expirationSeconds` capped by the maximum duration, backdated 5 minutes.
    fn sign(&self, csr: &Value, max_duration: u64) -> Result<String, (String, String)> {
        let fail = |m: &str| ("SignerValidationFailure".to_string(), m.to_string());
        let request = csr["spec"]["request"].as_str().unwrap_or_default();
        let pem_bytes = base64::engine::general_purpose::STANDARD
            .decode(request)
            .map_err(|_| fail("request is not base64"))?;
        let pem_text = String::from_utf8(pem_bytes).map_err(|_| fail("request is not PEM"))?;
        let mut req = CertificateSigningRequestParams::from_pem(&pem_text)
            .map_err(|e| fail(&format!("cannot parse the request: {e}")))?;
        let usages: Vec<String> = csr["spec"]["usages"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if csr["spec"]["signerName"] == "kubernetes.io/kubelet-serving" {
            validate_kubelet_serving(&req.params, &usages).map_err(|m| fail(&m))?;
        }
        let params = &mut req.params;
        params.key_usages = Vec::new();
        params.extended_key_usages = Vec::new();
        for usage in &usages {
            match usage.as_str() {
                "digital signature" => params.key_usages.push(KeyUsagePurpose::DigitalSignature),
                "key encipherment" => params.key_usages.push(KeyUsagePurpose::KeyEncipherment),
                "server auth" => params
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ServerAuth),
                "client auth" => params
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ClientAuth),
                _ => {}
            }
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        let wanted = csr["spec"]["expirationSeconds"]
            .as_u64()
            .unwrap_or(max_duration);
        let secs = wanted.min(max_duration) as i64;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::seconds(secs);
        let issuer = Issuer::from_params(&self.inner.ca_params, &self.inner.ca_key);
        let cert = req
            .signed_by(&issuer)
            .map_err(|e| ("SigningError".to_string(), e.to_string()))?;
        Ok(cert.pem())
    }

    fn check(&self, call: Call) -> Option<Response> {
        if self.state().forbidden.contains(&call) {
            return Some(forbidden(forbidden_message(call)));
        }
        None
    }
}

/// The message the API server gives for each refused call.
fn forbidden_message(call: Call) -> String {
    const CSRS: &str = "certificatesigningrequests";
    const CERTS: &str = "certificates.k8s.io";
    const HOOKS: &str = "mutatingwebhookconfigurations";
    const ADMISSION: &str = "admissionregistration.k8s.io";
    // (verb, resource, API group, namespaced)
    let (verb, resource, group, namespaced) = match call {
        Call::CreateCsr => ("create", CSRS, CERTS, false),
        Call::GetCsr => ("get", CSRS, CERTS, false),
        Call::ListCsr => ("list", CSRS, CERTS, false),
        Call::DeleteCsr => ("delete", CSRS, CERTS, false),
        Call::Approve => (
            "update",
            "certificatesigningrequests/approval",
            CERTS,
            false,
        ),
        Call::ApproveSigner => {
            // Not RBAC: the CertificateApproval admission plugin.
            return format!("{CSRS}.{CERTS} is forbidden: user not permitted to approve requests with signerName \"kubernetes.io/kubelet-serving\"");
        }
        Call::GetConfigMap => ("get", "configmaps", "", true),
        Call::GetSecret => ("get", "secrets", "", true),
        Call::CreateSecret => ("create", "secrets", "", true),
        Call::ReplaceSecret => ("update", "secrets", "", true),
        Call::GetWebhook => ("get", HOOKS, ADMISSION, false),
        Call::PatchWebhook => ("patch", HOOKS, ADMISSION, false),
    };
    let base = resource.split('/').next().unwrap_or(resource);
    let qualified = if group.is_empty() {
        base.to_string()
    } else {
        format!("{base}.{group}")
    };
    let scope = if namespaced {
        "in the namespace \"gmsa\""
    } else {
        "at the cluster scope"
    };
    format!(
        "{qualified} is forbidden: User \"{USER}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
    )
}

/// The kube-controller-manager's checks for `kubernetes.io/kubelet-serving`.
fn validate_kubelet_serving(params: &CertificateParams, usages: &[String]) -> Result<(), String> {
    let mut orgs = Vec::new();
    let mut cn = String::new();
    for (ty, value) in params.distinguished_name.iter() {
        let text = match value {
            rcgen::DnValue::Utf8String(s) => s.clone(),
            rcgen::DnValue::PrintableString(s) => s.to_string(),
            other => format!("{other:?}"),
        };
        match ty {
            DnType::OrganizationName => orgs.push(text),
            DnType::CommonName => cn = text,
            _ => {}
        }
    }
    if orgs != ["system:nodes"] {
        return Err("subject organization is not system:nodes".to_string());
    }
    if !cn.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".to_string());
    }
    let mut has_dns_or_ip = false;
    for san in &params.subject_alt_names {
        match san {
            rcgen::SanType::DnsName(_) | rcgen::SanType::IpAddress(_) => has_dns_or_ip = true,
            rcgen::SanType::Rfc822Name(_) => {
                return Err("email subjectAltNames are not allowed".to_string())
            }
            rcgen::SanType::URI(_) => return Err("URI subjectAltNames are not allowed".to_string()),
            _ => return Err("unsupported subjectAltName".to_string()),
        }
    }
    if !has_dns_or_ip {
        return Err("DNS or IP subjectAltName is required".to_string());
    }
    let required = ["digital signature", "server auth"];
    let allowed = ["digital signature", "server auth", "key encipherment"];
    if required.iter().any(|r| !usages.iter().any(|u| u == r))
        || usages.iter().any(|u| !allowed.contains(&u.as_str()))
    {
        return Err(format!(
            "usages did not match [digital signature key encipherment server auth]: {usages:?}"
        ));
    }
    Ok(())
}

fn push_condition(csr: &mut Value, ty: &str, reason: &str, message: &str) {
    let now = now_rfc3339();
    let cond = json!({
        "type": ty, "status": "True", "reason": reason, "message": message,
        "lastUpdateTime": now, "lastTransitionTime": now,
    });
    match csr["status"]["conditions"].as_array_mut() {
        Some(list) => list.push(cond),
        None => csr["status"]["conditions"] = json!([cond]),
    }
}

fn has_condition(csr: &Value, ty: &str) -> bool {
    csr["status"]["conditions"]
        .as_array()
        .is_some_and(|l| l.iter().any(|c| c["type"] == ty))
}

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

async fn list_or_watch_csrs(State(api): State<CsrApi>, RawQuery(query): RawQuery) -> Response {
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

async fn create_csr(State(api): State<CsrApi>, body: Bytes) -> Response {
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

async fn get_csr(State(api): State<CsrApi>, Path(name): Path<String>) -> Response {
    if let Some(r) = api.check(Call::GetCsr) {
        return r;
    }
    match api.csr(&name) {
        Some(csr) => json_status(StatusCode::OK, &csr),
        None => not_found("certificatesigningrequests.certificates.k8s.io", &name),
    }
}

async fn delete_csr(State(api): State<CsrApi>, Path(name): Path<String>) -> Response {
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

async fn approve_csr(State(api): State<CsrApi>, Path(name): Path<String>, body: Bytes) -> Response {
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

async fn get_configmap(
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

async fn get_secret(
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

async fn create_secret(State(api): State<CsrApi>, Path(ns): Path<String>, body: Bytes) -> Response {
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

async fn replace_secret(
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

async fn get_webhook(
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

async fn patch_webhook(
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
    st.webhooks.insert(key, doc.clone());
    json_status(StatusCode::OK, &doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FakeApiServer;

    #[test]
    fn kubelet_serving_validation_rejects_the_captured_bad_subject() {
        let captured = fixture("k8s-1.32/api/csr-failed-bad-subject.json");
        let request = captured["spec"]["request"].as_str().expect("request");
        let pem_text = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(request)
                .expect("b64"),
        )
        .expect("utf8");
        let params = CertificateSigningRequestParams::from_pem(&pem_text).expect("parse");
        let usages = vec!["digital signature".to_string(), "server auth".to_string()];
        let err = validate_kubelet_serving(&params.params, &usages).expect_err("bad subject");
        let want = captured["status"]["conditions"][1]["message"]
            .as_str()
            .expect("message");
        assert_eq!(err, want);

        let good = fixture("k8s-1.32/api/csr-create-request.json");
        let pem_text = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(good["spec"]["request"].as_str().expect("request"))
                .expect("b64"),
        )
        .expect("utf8");
        let params = CertificateSigningRequestParams::from_pem(&pem_text).expect("parse");
        let usages: Vec<String> = ["digital signature", "key encipherment", "server auth"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        validate_kubelet_serving(&params.params, &usages).expect("the captured request is valid");
        assert!(validate_kubelet_serving(&params.params, &["client auth".to_string()]).is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("metadata.name%3Ds.n"), "metadata.name=s.n");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(
            selected_name(&Some("watch=true&fieldSelector=metadata.name%3Dx.y".into())),
            Some("x.y".to_string())
        );
    }

    #[tokio::test]
    async fn captured_request_is_created_approved_and_signed() {
        let api = CsrApi::new();
        let server = FakeApiServer::start(api.router()).await;
        let client = server.client();
        let body = fixture("k8s-1.32/api/csr-create-request.json");
        let req = axum::http::Request::post(CSRS_PATH)
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes())
            .expect("request");
        let created: Value = client.request(req).await.expect("create");
        assert_eq!(created["status"], json!({}));
        assert_eq!(created["metadata"]["name"], "gmsa-webhook.gmsa");

        let mut approval = fixture("k8s-1.32/api/csr-approval-request.json");
        approval["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"].clone();
        let req = axum::http::Request::put(format!("{}/approval", csr_path("gmsa-webhook.gmsa")))
            .header("content-type", "application/json")
            .body(approval.to_string().into_bytes())
            .expect("request");
        let approved: Value = client.request(req).await.expect("approve");
        assert_eq!(
            approved["status"]["conditions"][0]["reason"],
            "GmsaApproved"
        );

        for _ in 0..100 {
            if api
                .csr("gmsa-webhook.gmsa")
                .is_some_and(|c| c["status"]["certificate"].is_string())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the fake signer never signed: {:?}",
            api.csr("gmsa-webhook.gmsa")
        );
    }
}
