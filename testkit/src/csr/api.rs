//! The fake's state ([`CsrApi`]: CSRs and their watch log, Secrets, webhook configurations,
//! the signing CA, the knobs) and the replies its handlers share.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rcgen::{CertificateParams, IsCa, KeyPair};

pub(super) use crate::ca::TestCa;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::rbac::{forbidden, forbidden_message, Call};
use crate::status;

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

pub(super) struct Store {
    pub(super) rv: u64,
    pub(super) csrs: BTreeMap<String, Value>,
    /// CSR watch events after creation of the fake: (resourceVersion, JSON line).
    pub(super) log: Vec<(u64, String, String)>,
    pub(super) secrets: BTreeMap<(String, String), Value>,
    pub(super) webhooks: BTreeMap<(String, String), Value>,
    pub(super) forbidden: HashSet<Call>,
    pub(super) mode: SignerMode,
    pub(super) root_ca: bool,
    pub(super) max_duration: u64,
    pub(super) sign_delay: Duration,
    /// The CA that signs (replaced by [`CsrApi::rotate_ca`]) and how many came before it.
    pub(super) ca: TestCa,
    pub(super) rotations: u32,
    /// JSON bodies of webhook configuration patches: (kind, name, body).
    pub(super) patches: Vec<(String, String, Value)>,
}

pub(super) struct Inner {
    pub(super) state: Mutex<Store>,
    /// (resourceVersion, CSR name, JSON line) for open watches.
    pub(super) events: broadcast::Sender<(u64, String, String)>,
}

/// The fake; cheap to clone (shared state).
#[derive(Clone)]
pub struct CsrApi {
    pub(super) inner: Arc<Inner>,
}

impl Default for CsrApi {
    fn default() -> Self {
        Self::new()
    }
}

impl CsrApi {
    /// A fake with a fresh test CA, signer mode [`SignerMode::Sign`], the `kube-root-ca.crt`
    /// ConfigMap present, and no CSRs, Secrets or webhook configurations.
    pub fn new() -> Self {
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
                    ca: TestCa::new("gmsa-testkit-ca"),
                    rotations: 0,
                    patches: Vec::new(),
                }),
                events,
            }),
        }
    }

    pub(super) fn state(&self) -> MutexGuard<'_, Store> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The test CA certificate (PEM) that signs approved CSRs (and is in `kube-root-ca.crt`).
    pub fn ca_pem(&self) -> String {
        self.state().ca.pem.clone()
    }

    /// Replaces the signing CA with a new one, as a cluster CA rotation does: approved CSRs are
    /// signed by it from now on and `kube-root-ca.crt` holds it alone.
    pub fn rotate_ca(&self) {
        let mut st = self.state();
        st.rotations += 1;
        st.ca = TestCa::new(&format!("gmsa-testkit-ca-{}", st.rotations + 1));
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
        let st = self.state();
        let issuer = st.ca.issuer();
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

    /// The JSON bodies of the patches applied to a webhook configuration, oldest first.
    pub fn webhook_patches(&self, kind: &str, name: &str) -> Vec<Value> {
        self.state()
            .patches
            .iter()
            .filter(|(k, n, _)| k == kind && n == name)
            .map(|(_, _, body)| body.clone())
            .collect()
    }
    /// Stores `csr` with a new resourceVersion and tells watches (`ADDED`/`MODIFIED`).
    pub(super) fn store_csr(&self, st: &mut Store, mut csr: Value, event: &str) -> Value {
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

    pub(super) fn emit(&self, st: &mut Store, name: &str, event: &str, object: &Value) {
        let line = format!("{}\n", json!({"type": event, "object": object}));
        st.log.push((st.rv, name.to_string(), line.clone()));
        let _ = self.inner.events.send((st.rv, name.to_string(), line));
    }

    pub(super) fn check(&self, call: Call) -> Option<Response> {
        if self.state().forbidden.contains(&call) {
            return Some(forbidden(forbidden_message(call)));
        }
        None
    }
}

pub(super) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub(super) fn json_status(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [("content-type", "application/json")],
        Body::from(value.to_string()),
    )
        .into_response()
}

pub(super) fn not_found(resource: &str, name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
    )
}

/// 400 as the API server answers a request body that is not JSON.
#[allow(clippy::result_large_err)] // the Err is the handler's own early return
pub(super) fn json_body(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|_| {
        status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the body is not JSON",
        )
    })
}

/// 409 when `sent` names a resourceVersion other than the stored one (optimistic concurrency).
pub(super) fn stale(resource: &str, name: &str, sent: &Value, stored: &Value) -> Option<Response> {
    let rv = sent["metadata"]["resourceVersion"].as_str()?;
    (Some(rv) != stored["metadata"]["resourceVersion"].as_str()).then(|| {
        status(
            StatusCode::CONFLICT,
            "Conflict",
            &format!("Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
        )
    })
}
