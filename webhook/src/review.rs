//! AdmissionReview wire format in and out, and the async glue that resolves lookups before the
//! pure decision code runs.
//!
//! CONTRACT (used by `server`): [`Admitter::handle`] takes the raw request body of `/mutate` or
//! `/validate` and returns the response body plus an [`Outcome`] for metrics and logs.

use std::sync::Arc;

use crate::lookup::{Authorizer, SpecStore};

/// Which webhook path was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReviewKind {
    /// `/mutate`: inline the named specs' contents.
    Mutate,
    /// `/validate`: authorization and contents checks.
    Validate,
}

/// Behaviour switches.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Give GMSA pods without `spec.hostname` a random one (`RANDOM_HOSTNAME`).
    pub random_hostname: bool,
}

/// How a review ended, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No GMSA field anywhere in the pod: allowed without lookups.
    NoGmsa,
    /// Allowed without changes.
    Allowed,
    /// Allowed with a JSON patch.
    Patched,
    /// Denied; `code` is the `status.code` sent back.
    Denied {
        /// The denial's `status.code`.
        code: u16,
    },
}

/// A handled review: the HTTP response body (an AdmissionReview) and its outcome.
#[derive(Debug)]
pub struct Handled {
    /// The serialized AdmissionReview response.
    pub body: Vec<u8>,
    /// What happened.
    pub outcome: Outcome,
}

/// Answers AdmissionReviews using a spec store and an authorizer.
#[derive(Clone)]
pub struct Admitter {
    specs: Arc<dyn SpecStore>,
    authz: Arc<dyn Authorizer>,
    options: Options,
}

impl Admitter {
    /// An admitter over these lookups.
    pub fn new(specs: Arc<dyn SpecStore>, authz: Arc<dyn Authorizer>, options: Options) -> Self {
        Self {
            specs,
            authz,
            options,
        }
    }

    /// The spec store (readiness and cache size come from it).
    pub fn specs(&self) -> &Arc<dyn SpecStore> {
        &self.specs
    }

    /// Handles one review body for `kind`. Never fails: malformed input becomes a denial.
    pub async fn handle(&self, kind: ReviewKind, body: &[u8]) -> Handled {
        // Placeholder until the admission rules land (see issue 3); denies everything.
        let _ = (kind, body, &self.authz, &self.options);
        Handled {
            body: br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"","allowed":false,"status":{"code":500,"message":"admission rules not built yet"}}}"#.to_vec(),
            outcome: Outcome::Denied { code: 500 },
        }
    }
}
