//! The two lookups admission needs, as traits with a Kubernetes implementation
//! (`kube_backend`) and a standalone one (`standalone`).
//!
//! Admission decision code never calls these itself: the async glue in `admission_review` resolves
//! what a request needs, then hands plain data to the pure decision functions.

use std::sync::Arc;

use async_trait::async_trait;

/// A credential spec as admission sees it.
///
/// Only the compact text is kept (about 0.5 KB a spec): the parsed form is needed only on the
/// rare slow path of the contents check, which parses it then (see
/// `admission::contents_match`). Keeping a `serde_json::Value` beside it cost ~4.8 KB a spec.
#[derive(Clone, Debug, PartialEq)]
pub struct CredSpecEntry {
    /// The spec's `credspec` object as compact JSON with keys sorted: what mutate inlines and
    /// what the byte-equal fast path of the contents check compares against.
    pub json: Arc<str>,
    /// The CCG plugin label of the spec (`gmsa_crd::ccg::label`: a catalogue key, `other`
    /// or `none`), for the audit annotation and the metrics.
    pub plugin: &'static str,
}

impl CredSpecEntry {
    /// Builds an entry from a `credspec` value (keys are sorted by `serde_json::Value`).
    pub fn new(value: serde_json::Value) -> Self {
        Self::of(&value)
    }

    fn of(value: &serde_json::Value) -> Self {
        Self {
            json: value.to_string().into(),
            plugin: gmsa_crd::ccg::label(value),
        }
    }
}

/// What a spec lookup found.
#[derive(Clone, Debug, PartialEq)]
pub enum SpecLookup {
    /// The spec exists and has a non-empty `credspec`.
    Found(CredSpecEntry),
    /// The spec exists but its `credspec` is missing or empty (denied with 417).
    NoCredSpec,
    /// No spec of that name (denied with 404).
    NotFound,
}

impl SpecLookup {
    /// What admission makes of a spec object's `credspec` field: missing, `null`, `{}` or `""`
    /// is [`SpecLookup::NoCredSpec`] (denied with 417), anything else is inlined as it is.
    pub fn of_credspec(credspec: Option<&serde_json::Value>) -> Self {
        match credspec {
            None | Some(serde_json::Value::Null) => Self::NoCredSpec,
            Some(serde_json::Value::Object(m)) if m.is_empty() => Self::NoCredSpec,
            Some(serde_json::Value::String(s)) if s.is_empty() => Self::NoCredSpec,
            Some(v) => Self::Found(CredSpecEntry::of(v)),
        }
    }
}

/// How fresh a lookup must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Memory is fine (the watch-fed cache).
    Cached,
    /// Ask the source of truth (one live GET): used before denying on a cache miss or a
    /// contents mismatch, since the cache may lag a spec created or changed a moment ago.
    Live,
}

/// A lookup that could not be answered (not a "no": the source could not say).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The API server (or other source) could not be reached or did not answer in time, or
    /// answered with a server error. Admission fails closed with a 500-class denial.
    #[error("the Kubernetes API server could not be reached: {0}")]
    Unavailable(String),
    /// The webhook's own identity lacks a permission it needs (e.g. `get` on
    /// gmsacredentialspecs); the message names it.
    #[error("the webhook is not allowed to {0}")]
    Forbidden(String),
}

/// Source of credential specs by name.
#[async_trait]
pub trait SpecStore: Send + Sync + 'static {
    /// Looks a spec up by its (cluster-scoped) name.
    async fn get(&self, name: &str, freshness: Freshness) -> Result<SpecLookup, LookupError>;
    /// `Ok(())` once the store can answer (the cache has synced), else why not.
    fn ready(&self) -> Result<(), String>;
    /// Why the store, though ready, does not answer from memory now (e.g. its watch has been
    /// broken for too long and lookups are read live), if so. Shown on `/ready`.
    fn degraded(&self) -> Option<String> {
        None
    }
    /// How many specs are held in memory (for `/metrics`).
    fn len(&self) -> usize;
    /// Whether no spec is held in memory.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The answer to "may this service account `use` this spec?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UseDecision {
    /// `allowed && !denied` of the access review.
    pub allowed: bool,
    /// The authorizer's reason or evaluation error, when it gave one.
    pub reason: Option<String>,
}

/// Decides whether a service account may `use` a credential spec.
#[async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// May `system:serviceaccount:{namespace}:{service_account}` `use` the
    /// `gmsacredentialspecs` named `spec` (group `windows.k8s.io`)?
    async fn may_use(
        &self,
        namespace: &str,
        service_account: &str,
        spec: &str,
    ) -> Result<UseDecision, LookupError>;
}
