//! The admission rules, as pure code: no I/O, no async, no HTTP or Kubernetes client.
//!
//! A review is decided in two pure phases around one async step done by `admission_review`:
//! 1. [`check_request`] + [`scan`]: what the request is and every windows options it carries
//!    (pod level, `containers`, `initContainers`, `ephemeralContainers`), each with its JSON
//!    pointer; [`Scan::needs`] says which spec lookups and authorization checks the decision
//!    will need.
//! 2. (`admission_review` resolves those lookups through [`crate::lookup`] into a [`Resolved`].)
//! 3. [`decide`]: the rules, giving a [`Decision`] (allowed or a [`Denial`] with its code, JSON
//!    patch operations, warnings, audit annotations).
//!
//! [`mentions_gmsa`] is the fast gate: a pod whose JSON never contains `gmsaCredentialSpec`
//! needs no parse and no lookup at all.

mod denial;
mod hostname;
mod rules;
mod scan;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use denial::{Denial, PodRef, Where};
pub use hostname::random_hostname;
pub use rules::{contents_match, decide};
pub use scan::scan;

use crate::lookup::{LookupError, SpecLookup, UseDecision};

/// The substring every GMSA field of a pod contains (`gmsaCredentialSpecName` and
/// `gmsaCredentialSpec`).
pub const GMSA_FIELD_PREFIX: &str = "gmsaCredentialSpec";

/// The audit annotation key (the API server prefixes it with the webhook's name) whose value
/// lists, comma-separated and sorted, the credential specs a pod names.
pub const AUDIT_CREDSPECS: &str = "credspecs";

/// The audit annotation key whose value lists, comma-separated and sorted, the CCG plugins
/// (`gmsa_crd::ccg::label`) of the specs the review looked up.
pub const AUDIT_CREDSPEC_PLUGINS: &str = "credspec-plugins";

/// Which of the two hooks was called (`/mutate` or `/validate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `/mutate`: inline the named specs' contents.
    Mutate,
    /// `/validate`: authorization and contents checks.
    Validate,
}

/// The admission operation of the request (only these two are handled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A pod is created.
    Create,
    /// A pod (or its `ephemeralcontainers` subresource) is updated.
    Update,
}

/// Cheap first gate: whether a raw JSON object may contain a GMSA field at all.
///
/// The API server serializes objects itself (Go's encoder never escapes ASCII letters in
/// keys), so a pod without this substring has no GMSA field. Other writers may spell a key
/// with `\uXXXX` escapes (`"\u0067msaCredentialSpecName"` is the same field to any JSON
/// parser; `gmsa review` reads user files), so text with any `\u` escape also goes to the full
/// scan. A false positive (the text in an annotation, an escaped `<`) only costs that scan.
pub fn mentions_gmsa(raw_json: &str) -> bool {
    raw_json.contains(GMSA_FIELD_PREFIX) || raw_json.contains("\\u")
}

/// Checks the request's object kind and operation (reference order: kind first).
///
/// `group` and `kind` are the request's `kind.group` / `kind.kind`; `operation` its
/// `operation` (`CREATE`, `UPDATE`, `DELETE`, `CONNECT`).
pub fn check_request(group: &str, kind: &str, operation: &str) -> Result<Operation, Denial> {
    if !group.is_empty() || kind != "Pod" {
        let shown = if kind.is_empty() {
            "request without kind".to_string()
        } else if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        return Err(Denial::NotAPod { kind: shown });
    }
    match operation {
        "CREATE" => Ok(Operation::Create),
        "UPDATE" => Ok(Operation::Update),
        other => Err(Denial::UnexpectedOperation {
            operation: other.to_string(),
        }),
    }
}

/// Where a windows options block sits in the pod.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Location<'a> {
    /// `spec.securityContext.windowsOptions`.
    Pod,
    /// `spec.<list>[index].securityContext.windowsOptions`.
    Container {
        /// Which container list.
        list: ContainerList,
        /// Index in that list.
        index: usize,
        /// The container's name.
        name: Cow<'a, str>,
    },
}

/// The three container lists of a pod spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContainerList {
    /// `spec.containers`.
    Containers,
    /// `spec.initContainers`.
    InitContainers,
    /// `spec.ephemeralContainers`.
    EphemeralContainers,
}

impl ContainerList {
    /// The field name in the pod spec (a JSON pointer token).
    pub fn field(self) -> &'static str {
        match self {
            Self::Containers => "containers",
            Self::InitContainers => "initContainers",
            Self::EphemeralContainers => "ephemeralContainers",
        }
    }

    /// How messages call a container of this list.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Containers => "container",
            Self::InitContainers => "init container",
            Self::EphemeralContainers => "ephemeral container",
        }
    }
}

impl std::fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pod => f.write_str("the pod's securityContext"),
            Self::Container { list, name, .. } => write!(f, "{} {name:?}", list.noun()),
        }
    }
}

/// One windows options block (or a container without one, so updates can see GMSA settings
/// appear and disappear).
#[derive(Clone, Debug, PartialEq)]
pub struct WindowsOptions<'a> {
    /// Where it is.
    pub location: Location<'a>,
    /// `gmsaCredentialSpecName`, when set.
    pub name: Option<Cow<'a, str>>,
    /// `gmsaCredentialSpec` (the contents, a JSON text), when set.
    pub contents: Option<Cow<'a, str>>,
}

impl WindowsOptions<'_> {
    /// Whether either GMSA field is set.
    pub fn has_gmsa(&self) -> bool {
        self.name.is_some() || self.contents.is_some()
    }

    /// JSON pointer of this block's `gmsaCredentialSpec` (where mutate adds the contents).
    pub fn contents_pointer(&self) -> json_patch::jsonptr::PointerBuf {
        use json_patch::jsonptr::PointerBuf;
        let tail = ["securityContext", "windowsOptions", "gmsaCredentialSpec"];
        match &self.location {
            Location::Pod => PointerBuf::from_tokens(std::iter::once("spec").chain(tail)),
            Location::Container { list, index, .. } => {
                let index = index.to_string();
                PointerBuf::from_tokens(
                    ["spec", list.field(), index.as_str()]
                        .into_iter()
                        .chain(tail),
                )
            }
        }
    }
}

/// What [`scan`] found in a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Scan<'a> {
    /// CREATE or UPDATE.
    pub operation: Operation,
    /// The request's subresource (`ephemeralcontainers`), if any.
    pub sub_resource: Option<Cow<'a, str>>,
    /// The request's namespace (the pod's when the request has none).
    pub namespace: Cow<'a, str>,
    /// The pod, as messages name it.
    pub pod: PodRef<'a>,
    /// `spec.serviceAccountName` (`default` when empty).
    pub service_account: Cow<'a, str>,
    /// `spec.hostname`, when set and non-empty.
    pub hostname: Option<Cow<'a, str>>,
    /// Every windows options block of the new object: the pod's, then `containers`,
    /// `initContainers`, `ephemeralContainers` in order (containers without windows options
    /// are listed with no fields set).
    pub options: Vec<WindowsOptions<'a>>,
    /// The same for `oldObject` (UPDATE only).
    pub old_options: Option<Vec<WindowsOptions<'a>>>,
}

/// A spec the decision needs, and the pre-set contents it will be compared against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecNeed<'s> {
    /// The spec name.
    pub name: &'s str,
    /// Pre-set `gmsaCredentialSpec` texts that will be compared with the spec (a mismatch
    /// against a cached spec is worth one live re-check before denying).
    pub presets: Vec<&'s str>,
}

/// The lookups [`decide`] will need for a scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs<'s> {
    /// Distinct spec names to look up, in first-use order.
    pub specs: Vec<SpecNeed<'s>>,
    /// Distinct spec names the service account must be allowed to `use`, in first-use order.
    pub uses: Vec<&'s str>,
}

/// The answers to [`Needs`], keyed by spec name.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// Spec lookups.
    pub specs: HashMap<String, Result<SpecLookup, LookupError>>,
    /// `use` checks for the scan's service account in its namespace.
    pub uses: HashMap<String, Result<UseDecision, LookupError>>,
}

/// Switches and injected randomness for [`decide`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecideOptions {
    /// Give GMSA pods without `spec.hostname` a random one (mutate, CREATE).
    pub random_hostname: bool,
    /// Randomness for that hostname (see [`random_hostname`]); injected so tests are
    /// deterministic.
    pub hostname_seed: u128,
}

/// The outcome of the rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// `None` when allowed.
    pub denial: Option<Denial>,
    /// JSON patch operations (mutate only; empty when denied).
    pub patch: Vec<json_patch::PatchOperation>,
    /// Admission warnings shown to the user (kubectl prints them).
    pub warnings: Vec<String>,
    /// Audit annotations (keys without the webhook-name prefix).
    pub audit_annotations: BTreeMap<String, String>,
    /// The CCG plugin labels of the specs looked up (bounded: catalogue keys, `other`,
    /// `none`), for the metrics.
    pub plugins: BTreeSet<&'static str>,
}

impl Decision {
    /// An allowed decision with nothing attached.
    pub fn allow() -> Self {
        Self {
            denial: None,
            patch: Vec::new(),
            warnings: Vec::new(),
            audit_annotations: BTreeMap::new(),
            plugins: BTreeSet::new(),
        }
    }

    /// A denial with nothing attached.
    pub fn deny(denial: Denial) -> Self {
        Self {
            denial: Some(denial),
            ..Self::allow()
        }
    }

    /// Whether the request is allowed.
    pub fn allowed(&self) -> bool {
        self.denial.is_none()
    }
}
