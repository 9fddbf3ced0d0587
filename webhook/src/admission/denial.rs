//! Why a review is denied: the `status.code` the user sees (the reference's codes) and a
//! message that names the pod, the container, the spec and what to do.

use std::borrow::Cow;
use std::fmt;

use crate::lookup::LookupError;

/// How messages name a pod: by `metadata.name`, or by `generateName` when the name is empty
/// (every ReplicaSet pod at mutate time), so they never read `pod ""`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef<'a> {
    /// `metadata.name` (may be empty).
    pub name: Cow<'a, str>,
    /// `metadata.generateName` (may be empty).
    pub generate_name: Cow<'a, str>,
}

impl<'a> PodRef<'a> {
    /// A pod reference.
    pub fn new(name: Cow<'a, str>, generate_name: Cow<'a, str>) -> Self {
        Self {
            name,
            generate_name,
        }
    }

    /// The name shown: `name`, else `generateName`, else empty.
    pub fn shown(&self) -> &str {
        if self.name.is_empty() {
            &self.generate_name
        } else {
            &self.name
        }
    }

    /// An owned copy (for denials that outlive the request body).
    pub fn to_owned_ref(&self) -> PodRef<'static> {
        PodRef {
            name: Cow::Owned(self.name.to_string()),
            generate_name: Cow::Owned(self.generate_name.to_string()),
        }
    }
}

impl fmt::Display for PodRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.shown();
        if shown.is_empty() {
            f.write_str("the pod (no name or generateName)")
        } else {
            write!(f, "pod {shown:?}")
        }
    }
}

/// Which pod and where in it a denial applies; displays as `container "c" in pod "web"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Where {
    /// The pod.
    pub pod: PodRef<'static>,
    /// Where in it: `the pod's securityContext` or `container "c"` (see `Location`).
    pub place: String,
}

impl fmt::Display for Where {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}", self.place, self.pod)
    }
}

/// A reason to deny a review. [`Denial::code`] is the `status.code` sent back (the API server
/// shows it as the HTTP status of the user's request); `Display` is the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// The review could not be read at all (400).
    MalformedReview {
        /// The parse error.
        error: String,
    },
    /// The review has no `request` (400).
    NoRequest,
    /// The object is not a Pod (400).
    NotAPod {
        /// The kind received.
        kind: String,
    },
    /// An operation other than CREATE or UPDATE (400).
    UnexpectedOperation {
        /// The operation received.
        operation: String,
    },
    /// `object` or `oldObject` is not a pod (400).
    MalformedPod {
        /// `object` or `oldObject`.
        which: String,
        /// The parse error.
        error: String,
    },
    /// `gmsaCredentialSpecName` is the empty string (422).
    EmptyName {
        /// Which pod and where in it.
        at: Box<Where>,
    },
    /// The named spec does not exist (404).
    SpecNotFound {
        /// Which pod and where in it.
        at: Box<Where>,
        /// The spec.
        spec: String,
    },
    /// The spec's `credspec` is longer than the API server accepts in a pod (422).
    SpecTooLarge {
        /// Which pod and where in it.
        at: Box<Where>,
        /// The spec.
        spec: String,
        /// Its size as inlined (compact JSON).
        bytes: usize,
    },
    /// The named spec has no (or an empty) `credspec` (417).
    NoCredSpec {
        /// Which pod and where in it.
        at: Box<Where>,
        /// The spec.
        spec: String,
    },
    /// The spec could not be read: the API server could not answer (503) or the webhook may
    /// not read it (500).
    SpecLookupFailed {
        /// Which pod and where in it.
        at: Box<Where>,
        /// The spec.
        spec: String,
        /// What went wrong.
        error: LookupError,
    },
    /// The service account may not `use` the spec (403).
    Unauthorized {
        /// Which pod and where in it.
        at: Box<Where>,
        /// The spec.
        spec: String,
        /// The pod's namespace.
        namespace: String,
        /// The pod's service account.
        service_account: String,
        /// The authorizer's reason, if it gave one.
        reason: Option<String>,
    },
    /// The `use` check could not be made (503 when the API server could not answer, 500 when
    /// the webhook lacks a permission). Not a permission denial.
    AuthzFailed {
        /// Which pod and where in it.
        at: Box<Where>,
        /// The spec.
        spec: String,
        /// The pod's service account.
        service_account: String,
        /// What went wrong.
        error: LookupError,
    },
    /// Pre-set contents differ from the named spec's (422).
    ContentsMismatch {
        /// Which pod and where in it.
        at: Box<Where>,
        /// The spec.
        spec: String,
    },
    /// Contents set without a name (422).
    ContentsWithoutName {
        /// Which pod and where in it.
        at: Box<Where>,
    },
    /// An UPDATE changes, adds or removes GMSA settings of an existing pod or container (403).
    UpdateForbidden {
        /// Which pod and where in it.
        at: Box<Where>,
        /// What changed, e.g. `GMSA name and contents modified`.
        change: String,
    },
}

fn lookup_code(error: &LookupError) -> u16 {
    match error {
        LookupError::Unavailable(_) => 503,
        LookupError::Forbidden(_) => 500,
    }
}

impl Denial {
    /// The `status.code` of the denial.
    pub fn code(&self) -> u16 {
        match self {
            Self::MalformedReview { .. }
            | Self::NoRequest
            | Self::NotAPod { .. }
            | Self::UnexpectedOperation { .. }
            | Self::MalformedPod { .. } => 400,
            Self::SpecNotFound { .. } => 404,
            Self::NoCredSpec { .. } => 417,
            Self::SpecLookupFailed { error, .. } | Self::AuthzFailed { error, .. } => {
                lookup_code(error)
            }
            Self::Unauthorized { .. } | Self::UpdateForbidden { .. } => 403,
            Self::EmptyName { .. }
            | Self::ContentsMismatch { .. }
            | Self::ContentsWithoutName { .. }
            | Self::SpecTooLarge { .. } => 422,
        }
    }

    /// The `status.reason` matching [`Denial::code`] (as Kubernetes spells it).
    pub fn reason(&self) -> &'static str {
        match self.code() {
            400 => "BadRequest",
            403 => "Forbidden",
            404 => "NotFound",
            417 => "ExpectationFailed",
            422 => "Invalid",
            503 => "ServiceUnavailable",
            _ => "InternalError",
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedReview { error } => write!(
                f,
                "unable to unmarshall JSON body as an admission review: {error}"
            ),
            Self::NoRequest => f.write_str("no 'Request' field in JSON body"),
            Self::NotAPod { kind } => write!(
                f,
                "expected a Pod object, got a {kind}: this webhook only admits pods; \
                 restrict its rules to resources [\"pods\"]"
            ),
            Self::UnexpectedOperation { operation } => write!(
                f,
                "unexpected operation {operation}: this webhook only handles CREATE and \
                 UPDATE; restrict its rules' operations"
            ),
            Self::MalformedPod { which, error } => {
                write!(f, "unable to unmarshall pod JSON object ({which}): {error}")
            }
            Self::EmptyName { at } => write!(
                f,
                "{at} has an empty gmsaCredentialSpecName: set it to the name of \
                 a GMSACredentialSpec or remove it"
            ),
            Self::SpecNotFound { at, spec } => write!(
                f,
                "cred spec {spec} does not exist (named by {at}): create the \
                 GMSACredentialSpec {spec:?} (kubectl get gmsacredentialspecs lists the \
                 existing ones) or correct gmsaCredentialSpecName"
            ),
            Self::NoCredSpec { at, spec } => write!(
                f,
                "cred spec {spec} does not have a credspec key (named by {at}): \
                 put the credential spec document under credspec in the GMSACredentialSpec \
                 {spec:?}"
            ),
            Self::SpecTooLarge { at, spec, bytes } => write!(
                f,
                "cred spec {spec} is {bytes} bytes as inlined JSON (named by {at}); the API \
                 server refuses a pod whose gmsaCredentialSpec is over {} bytes: shrink the \
                 GMSACredentialSpec {spec:?} (`gmsa spec validate` shows the same limit)",
                gmsa_crd::MAX_INLINED_BYTES
            ),
            Self::SpecLookupFailed { at, spec, error } => write!(
                f,
                "unable to retrieve the contents of cred spec {spec} (named by {at}): \
                 {error}; the pod was not admitted, retry once the webhook can read \
                 GMSACredentialSpecs"
            ),
            Self::Unauthorized {
                at,
                spec,
                namespace,
                service_account,
                reason,
            } => {
                write!(
                    f,
                    "service account {service_account:?} is not authorized to `use` GMSA cred \
                     spec {spec:?} (named by {at})"
                )?;
                if let Some(reason) = reason.as_deref().filter(|r| !r.is_empty()) {
                    write!(f, ", reason: {reason:?}")?;
                }
                write!(
                    f,
                    ": grant it with a Role or ClusterRole allowing verb use on resource \
                     gmsacredentialspecs (apiGroup windows.k8s.io) with resourceNames \
                     [{spec:?}], bound to serviceaccount {namespace}:{service_account}"
                )
            }
            Self::AuthzFailed {
                at,
                spec,
                service_account,
                error,
            } => write!(
                f,
                "could not check whether service account {service_account:?} may `use` GMSA \
                 cred spec {spec:?} (named by {at}): {error}; this is not a \
                 permission denial, retry later"
            ),
            Self::ContentsMismatch { at, spec } => write!(
                f,
                "the GMSA cred spec contents for {at} does not match the contents \
                 of GMSA resource {spec:?}: remove gmsaCredentialSpec and let the webhook \
                 fill it in from gmsaCredentialSpecName"
            ),
            Self::ContentsWithoutName { at } => write!(
                f,
                "{at} has a GMSA cred spec set, but does not define the name of \
                 the corresponding resource: set gmsaCredentialSpecName to the \
                 GMSACredentialSpec it comes from"
            ),
            Self::UpdateForbidden { at, change } => write!(
                f,
                "cannot update an existing pod's GMSA settings ({change} on {at}): \
                 GMSA settings are fixed at creation; delete and re-create the pod to change \
                 them"
            ),
        }
    }
}
