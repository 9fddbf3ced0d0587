//! AdmissionReview wire format in and out, and the async glue that resolves lookups before the
//! pure decision code runs.
//!
//! CONTRACT (used by `server`): [`Admitter::handle`] takes the raw request body of `/mutate` or
//! `/validate` and returns the response body plus a [`Verdict`] for metrics and logs.
//!
//! Reviews are read with a minimal borrowed struct: the pod stays a raw JSON slice until the
//! cheap [`admission::mentions_gmsa`] gate says it may carry GMSA fields, so a pod without
//! GMSA costs one pass over the body and no lookup. The response is written in the request's
//! AdmissionReview version (`admission.k8s.io/v1`, or `v1beta1` for older API servers).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::Instrument as _;

use crate::admission::{
    self, contents_match, DecideOptions, Decision, Denial, Hook, Needs, Resolved, Scan, SpecNeed,
};
use crate::lookup::{Authorizer, Freshness, LookupError, SpecLookup, SpecStore};

/// `apiVersion` of v1 AdmissionReviews.
pub const ADMISSION_V1: &str = "admission.k8s.io/v1";
/// `apiVersion` of v1beta1 AdmissionReviews (Kubernetes before 1.16 defaults; still sent when
/// a webhook configuration lists it first).
pub const ADMISSION_V1BETA1: &str = "admission.k8s.io/v1beta1";

/// Behaviour switches.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Give GMSA pods without `spec.hostname` a random one (`RANDOM_HOSTNAME`).
    pub random_hostname: bool,
}

/// How a review ended (the admission verdict), for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
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

impl Verdict {
    /// A short label for metrics: `no_gmsa`, `allowed`, `patched`, `denied`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NoGmsa => "no_gmsa",
            Self::Allowed => "allowed",
            Self::Patched => "patched",
            Self::Denied { .. } => "denied",
        }
    }
}

/// A handled review: the HTTP response body (an AdmissionReview) and its verdict.
#[derive(Debug)]
pub struct Handled {
    /// The serialized AdmissionReview response.
    pub body: Vec<u8>,
    /// What happened.
    pub verdict: Verdict,
    /// The CCG plugin labels of the specs looked up (for the metrics).
    pub plugins: std::collections::BTreeSet<&'static str>,
}

/// Answers AdmissionReviews using a spec store and an authorizer.
#[derive(Clone)]
pub struct Admitter {
    specs: Arc<dyn SpecStore>,
    authorizer: Arc<dyn Authorizer>,
    options: Options,
}

// ---- wire format in ----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn<'a> {
    #[serde(borrow, default)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    request: Option<RequestIn<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GroupVersionKindIn<'a> {
    #[serde(borrow, default)]
    group: Cow<'a, str>,
    #[serde(borrow, default)]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn<'a> {
    #[serde(borrow, default)]
    uid: Cow<'a, str>,
    #[serde(borrow, default)]
    kind: Option<GroupVersionKindIn<'a>>,
    #[serde(borrow, default)]
    sub_resource: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    operation: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    old_object: Option<&'a RawValue>,
}

// ---- wire format out ---------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'a str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    audit_annotations: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
}

/// A `metav1.Status` as admission responses carry it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusOut {
    status: &'static str,
    message: String,
    reason: &'static str,
    code: u16,
}

fn wire_version(api_version: Option<&str>) -> &'static str {
    if api_version == Some(ADMISSION_V1BETA1) {
        ADMISSION_V1BETA1
    } else {
        ADMISSION_V1
    }
}

/// Serializes a decision as an AdmissionReview response; returns the body and its verdict.
fn respond(api_version: &str, uid: &str, decision: &Decision, no_gmsa: bool) -> Handled {
    let (patch, patch_type) = if decision.patch.is_empty() || !decision.allowed() {
        (None, None)
    } else {
        match serde_json::to_vec(&decision.patch) {
            Ok(json) => (
                Some(base64::engine::general_purpose::STANDARD.encode(json)),
                Some("JSONPatch"),
            ),
            // A patch made of strings and pointers always serializes; deny if it ever does not.
            Err(e) => {
                let denial = Denial::MalformedReview {
                    error: format!("internal error: the JSON patch did not serialize: {e}"),
                };
                return respond(api_version, uid, &Decision::deny(denial), false);
            }
        }
    };
    let status = decision.denial.as_ref().map(|d| StatusOut {
        status: "Failure",
        message: d.to_string(),
        reason: d.reason(),
        code: d.code(),
    });
    let verdict = match &decision.denial {
        Some(d) => Verdict::Denied { code: d.code() },
        None if no_gmsa => Verdict::NoGmsa,
        None if patch.is_some() => Verdict::Patched,
        None => Verdict::Allowed,
    };
    let review = ReviewOut {
        api_version,
        kind: "AdmissionReview",
        response: ResponseOut {
            uid,
            allowed: decision.allowed(),
            status,
            patch,
            patch_type,
            audit_annotations: &decision.audit_annotations,
            warnings: &decision.warnings,
        },
    };
    // Serializing plain strings, bools and maps of strings cannot fail.
    let body = serde_json::to_vec(&review).unwrap_or_default();
    Handled {
        body,
        verdict,
        plugins: decision.plugins.clone(),
    }
}

fn log_denial(denial: &Denial, namespace: &str, pod: &str) {
    tracing::info!(
        namespace,
        pod,
        code = denial.code(),
        reason = %denial,
        "admission denied"
    );
}

impl Admitter {
    /// An admitter over these lookups.
    pub fn new(
        specs: Arc<dyn SpecStore>,
        authorizer: Arc<dyn Authorizer>,
        options: Options,
    ) -> Self {
        Self {
            specs,
            authorizer,
            options,
        }
    }

    /// The spec store (readiness and cache size come from it).
    pub fn specs(&self) -> &Arc<dyn SpecStore> {
        &self.specs
    }

    /// Handles one review body for `kind`. Never fails: malformed input becomes a denial.
    pub async fn handle(&self, kind: Hook, body: &[u8]) -> Handled {
        let review: ReviewIn<'_> = match serde_json::from_slice(body) {
            Ok(review) => review,
            Err(e) => {
                // Echo what can still be read (valid JSON of the wrong shape): a lenient parse,
                // only on this error path.
                let envelope = serde_json::from_slice::<serde_json::Value>(body).ok();
                let field = |pointer: &str| {
                    envelope
                        .as_ref()
                        .and_then(|v| v.pointer(pointer))
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_string)
                };
                let version = wire_version(field("/apiVersion").as_deref());
                let uid = field("/request/uid").unwrap_or_default();
                let denial = Denial::MalformedReview {
                    error: e.to_string(),
                };
                log_denial(&denial, "", "");
                return respond(version, &uid, &Decision::deny(denial), false);
            }
        };
        let version = wire_version(review.api_version.as_deref());
        let Some(request) = review.request else {
            let denial = Denial::NoRequest;
            log_denial(&denial, "", "");
            return respond(version, "", &Decision::deny(denial), false);
        };
        let span = tracing::info_span!(
            "review",
            kind = ?kind,
            uid = %request.uid,
            namespace = request.namespace.as_deref().unwrap_or_default(),
            pod = tracing::field::Empty,
        );
        self.handle_request(kind, version, &request)
            .instrument(span)
            .await
    }

    async fn handle_request(&self, kind: Hook, version: &str, request: &RequestIn<'_>) -> Handled {
        let uid = request.uid.as_ref();
        let namespace = request.namespace.as_deref();
        let deny = |denial: Denial, pod: &str| {
            log_denial(&denial, namespace.unwrap_or_default(), pod);
            respond(version, uid, &Decision::deny(denial), false)
        };
        let gvk = request.kind.as_ref();
        let operation = match admission::check_request(
            gvk.map(|k| k.group.as_ref()).unwrap_or_default(),
            gvk.map(|k| k.kind.as_ref()).unwrap_or_default(),
            request.operation.as_deref().unwrap_or_default(),
        ) {
            Ok(op) => op,
            Err(denial) => return deny(denial, ""),
        };
        let object = request.object.map(RawValue::get);
        let old_object = request.old_object.map(RawValue::get);
        // Fast gate: a pod object (and old pod) without any GMSA field needs nothing more.
        let plain = |raw: &str| raw.starts_with('{') && !admission::mentions_gmsa(raw);
        if object.is_some_and(plain) && old_object.is_none_or(plain) {
            return respond(version, uid, &Decision::allow(), true);
        }
        let scan = match admission::scan(
            operation,
            namespace,
            request.sub_resource.as_deref(),
            object,
            old_object,
        ) {
            Ok(scan) => scan,
            Err(denial) => return deny(denial, ""),
        };
        let pod = scan.pod.shown();
        tracing::Span::current().record("pod", pod);
        let needs = scan.needs(kind);
        let resolved = self.resolve(&scan, &needs).await;
        let options = DecideOptions {
            random_hostname: self.options.random_hostname,
            hostname_seed: if self.options.random_hostname {
                uuid::Uuid::new_v4().as_u128()
            } else {
                0
            },
        };
        let decision = admission::decide(kind, &scan, &resolved, &options);
        match &decision.denial {
            Some(denial) => log_denial(denial, &scan.namespace, pod),
            None => tracing::debug!(
                patch_ops = decision.patch.len(),
                warnings = decision.warnings.len(),
                "admission allowed"
            ),
        }
        respond(version, uid, &decision, false)
    }

    /// Resolves a scan's needs: spec lookups (memory first, one live re-check before a
    /// denial) and `use` checks, all concurrently.
    async fn resolve(&self, scan: &Scan<'_>, needs: &Needs<'_>) -> Resolved {
        let specs = join_all(needs.specs.iter().map(|need| self.lookup_spec(need)));
        let uses = join_all(needs.uses.iter().map(|spec| {
            self.authorizer
                .may_use(&scan.namespace, &scan.service_account, spec)
        }));
        let (specs, uses) = futures::join!(specs, uses);
        Resolved {
            specs: needs
                .specs
                .iter()
                .map(|n| n.name.to_string())
                .zip(specs)
                .collect(),
            uses: needs.uses.iter().map(|n| n.to_string()).zip(uses).collect(),
        }
    }

    async fn lookup_spec(&self, need: &SpecNeed<'_>) -> Result<SpecLookup, LookupError> {
        let cached = self.specs.get(need.name, Freshness::Cached).await;
        if let Ok(SpecLookup::Found(entry)) = &cached {
            if need.presets.iter().all(|p| contents_match(p, entry)) {
                return cached;
            }
        }
        tracing::debug!(
            spec = need.name,
            "cred spec missing, empty or different in memory; reading it live"
        );
        self.specs.get(need.name, Freshness::Live).await
    }
}

#[cfg(test)]
mod tests {
    //! The exact wire format of answers (the server and the API server depend on it).

    use async_trait::async_trait;
    use serde_json::{json, Value};

    use super::*;
    use crate::lookup::{CredSpecEntry, UseDecision};

    struct OneSpec;

    #[async_trait]
    impl SpecStore for OneSpec {
        async fn get(&self, name: &str, _: Freshness) -> Result<SpecLookup, LookupError> {
            Ok(if name == "s1" {
                SpecLookup::Found(CredSpecEntry::new(json!({"b": 1, "a": "<x>"})))
            } else {
                SpecLookup::NotFound
            })
        }
        fn ready(&self) -> Result<(), String> {
            Ok(())
        }
        fn len(&self) -> usize {
            1
        }
    }

    struct Nobody;

    #[async_trait]
    impl Authorizer for Nobody {
        async fn may_use(&self, _: &str, _: &str, _: &str) -> Result<UseDecision, LookupError> {
            Ok(UseDecision {
                allowed: false,
                reason: None,
            })
        }
    }

    fn body(version: &str, pod: Value) -> Vec<u8> {
        json!({
            "apiVersion": version,
            "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "namespace": "ns",
                "operation": "CREATE",
                "object": pod,
            }
        })
        .to_string()
        .into_bytes()
    }

    fn handle(kind: Hook, body: &[u8]) -> (Value, Verdict) {
        let admitter = Admitter::new(Arc::new(OneSpec), Arc::new(Nobody), Options::default());
        let handled = futures::executor::block_on(admitter.handle(kind, body));
        (
            serde_json::from_slice(&handled.body).expect("answer is JSON"),
            handled.verdict,
        )
    }

    fn gmsa_pod() -> Value {
        json!({"metadata": {"generateName": "g-"}, "spec": {"containers": [
            {"name": "c", "securityContext": {"windowsOptions": {"gmsaCredentialSpecName": "s1"}}}
        ]}})
    }

    #[test]
    fn allowed_without_gmsa_is_minimal() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        let (answer, verdict) = handle(Hook::Mutate, &body(ADMISSION_V1, pod));
        assert_eq!(verdict, Verdict::NoGmsa);
        assert_eq!(
            answer,
            json!({"apiVersion": ADMISSION_V1, "kind": "AdmissionReview",
                   "response": {"uid": "u-1", "allowed": true}})
        );
    }

    #[test]
    fn patch_is_base64_json_patch_with_audit_annotation() {
        let (answer, verdict) = handle(Hook::Mutate, &body(ADMISSION_V1BETA1, gmsa_pod()));
        assert_eq!(verdict, Verdict::Patched);
        let patch = base64::engine::general_purpose::STANDARD
            .decode(answer["response"]["patch"].as_str().expect("patch"))
            .expect("base64");
        let patch: Value = serde_json::from_slice(&patch).expect("JSON");
        assert_eq!(
            patch,
            json!([{"op": "add",
                    "path": "/spec/containers/0/securityContext/windowsOptions/gmsaCredentialSpec",
                    "value": "{\"a\":\"<x>\",\"b\":1}"}])
        );
        assert_eq!(
            answer,
            json!({"apiVersion": ADMISSION_V1BETA1, "kind": "AdmissionReview",
                   "response": {"uid": "u-1", "allowed": true,
                                "patch": answer["response"]["patch"], "patchType": "JSONPatch",
                                "auditAnnotations": {"credspec-plugins": "none", "credspecs": "s1"}}})
        );
    }

    #[test]
    fn denial_carries_a_full_status() {
        let (answer, verdict) = handle(Hook::Validate, &body(ADMISSION_V1, gmsa_pod()));
        assert_eq!(verdict, Verdict::Denied { code: 403 });
        let status = &answer["response"]["status"];
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(status["code"], 403);
        assert!(status["message"]
            .as_str()
            .is_some_and(|m| m.contains("container \"c\" in pod \"g-\"")));
        assert_eq!(answer["response"]["allowed"], false);
        assert_eq!(answer["response"]["uid"], "u-1");
        assert!(answer["response"].get("patch").is_none());
    }

    #[test]
    fn verdict_labels() {
        assert_eq!(Verdict::NoGmsa.label(), "no_gmsa");
        assert_eq!(Verdict::Denied { code: 400 }.label(), "denied");
    }
}
