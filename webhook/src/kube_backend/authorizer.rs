//! [`KubeAuthorizer`]: "may this service account `use` this spec?" by LocalSubjectAccessReview,
//! cached and coalesced.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::authorization::v1::{
    LocalSubjectAccessReview, ResourceAttributes, SubjectAccessReviewSpec,
};
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use moka::future::Cache;
use moka::Expiry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{api_status, describe, is_dns_label};
use crate::lookup::{Authorizer, LookupError, UseDecision};

/// Settings of [`KubeAuthorizer`].
#[derive(Clone, Debug)]
pub struct AuthorizerConfig {
    /// How long an "allowed" answer is reused (0: not cached). Revoking a service account's
    /// `use` takes up to this long to apply to new pods.
    pub allowed_ttl: Duration,
    /// How long a "not allowed" answer is reused (0: not cached). Granting `use` takes up to
    /// this long to apply.
    pub denied_ttl: Duration,
    /// Most (namespace, service account, spec) answers kept; the least useful are evicted
    /// beyond it.
    pub max_entries: u64,
    /// Deadline of one access review call (answered [`LookupError::Unavailable`] beyond it).
    pub timeout: Duration,
}

/// How long an "allowed" answer is reused by default: 10 s, also the default of
/// `--authz-cache-ttl` (the one place this default is set; config tests hold the flag to it).
pub const DEFAULT_ALLOWED_TTL: Duration = Duration::from_secs(10);

/// How long a "not allowed" answer is reused at most: 5 s (`--authz-cache-ttl` shorter than
/// this shortens it too).
pub const MAX_DENIED_TTL: Duration = Duration::from_secs(5);

impl Default for AuthorizerConfig {
    /// Allowed [`DEFAULT_ALLOWED_TTL`], denied [`MAX_DENIED_TTL`], 10,000 entries, 3 s per call.
    fn default() -> Self {
        Self {
            allowed_ttl: DEFAULT_ALLOWED_TTL,
            denied_ttl: MAX_DENIED_TTL,
            max_entries: 10_000,
            timeout: Duration::from_secs(3),
        }
    }
}

/// (namespace, service account, spec).
type Key = (String, String, String);

/// Per-entry lifetime: allowed and denied answers expire separately.
struct Ttl {
    allowed: Duration,
    denied: Duration,
}

impl Expiry<Key, UseDecision> for Ttl {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &UseDecision,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(if value.allowed {
            self.allowed
        } else {
            self.denied
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Default)]
struct Metrics {
    calls: Family<ResultLabel, Counter>,
    cache_hits: Counter,
    cache_misses: Counter,
}

impl Metrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "gmsa_webhook_authz_calls",
            "LocalSubjectAccessReview calls to the API server by result: allowed, denied, error",
            m.calls.clone(),
        );
        registry.register(
            "gmsa_webhook_authz_cache_hits",
            "Authorization lookups answered without an API call of their own (cached or coalesced)",
            m.cache_hits.clone(),
        );
        registry.register(
            "gmsa_webhook_authz_cache_misses",
            "Authorization lookups that made an API call",
            m.cache_misses.clone(),
        );
        m
    }
}

/// Authorization by LocalSubjectAccessReview in the pod's namespace, as a real service account
/// token would be checked: user `system:serviceaccount:NS:SA`, groups `system:serviceaccounts`,
/// `system:serviceaccounts:NS`, `system:authenticated`; verb `use` on
/// `gmsacredentialspecs.windows.k8s.io/v1` named SPEC. Allowed = `allowed && !denied`.
///
/// Answers are cached per (namespace, service account, spec) with [`AuthorizerConfig`]'s TTLs and
/// size bound; concurrent identical lookups share one in-flight call. Errors are never
/// cached.
pub struct KubeAuthorizer {
    client: kube::Client,
    cache: Cache<Key, UseDecision>,
    timeout: Duration,
    metrics: Metrics,
}

impl KubeAuthorizer {
    /// An authorizer calling the API server through `client`; registers its metrics
    /// (`gmsa_webhook_authz_*`) in `registry`.
    pub fn new(client: kube::Client, config: AuthorizerConfig, registry: &mut Registry) -> Self {
        let cache = Cache::builder()
            .max_capacity(config.max_entries)
            .expire_after(Ttl {
                allowed: config.allowed_ttl,
                denied: config.denied_ttl,
            })
            .build();
        Self {
            client,
            cache,
            timeout: config.timeout,
            metrics: Metrics::register(registry),
        }
    }

    /// How many answers are cached now (approximate: expired entries are dropped lazily).
    pub fn cached_entries(&self) -> u64 {
        self.cache.entry_count()
    }

    /// One access review call, with the deadline.
    async fn call_access_review(
        &self,
        namespace: &str,
        service_account: &str,
        spec: &str,
    ) -> Result<UseDecision, LookupError> {
        if !is_dns_label(namespace) {
            // The namespace goes into the URL path (kube-rs does not escape it); a real
            // admission request always carries a valid one.
            return Err(LookupError::Unavailable(format!(
                "cannot review access in namespace {namespace:?}: not a valid namespace name"
            )));
        }
        let request = access_review(namespace, service_account, spec);
        let api: Api<LocalSubjectAccessReview> = Api::namespaced(self.client.clone(), namespace);
        let what = format!(
            "LocalSubjectAccessReview for service account \"{service_account}\" in namespace \
             \"{namespace}\" using credspec \"{spec}\""
        );
        let result =
            match tokio::time::timeout(self.timeout, api.create(&PostParams::default(), &request))
                .await
            {
                Ok(Ok(answer)) => decision(&answer).ok_or_else(|| {
                    LookupError::Unavailable(format!(
                        "{what} came back without a status: whether it is allowed could not be \
                         determined"
                    ))
                }),
                Ok(Err(e)) if api_status(&e) == Some(403) => Err(LookupError::Forbidden(format!(
                    "create localsubjectaccessreviews in namespace \"{namespace}\" (grant its \
                 service account `create` on localsubjectaccessreviews.authorization.k8s.io): {}",
                    describe(&e)
                ))),
                Ok(Err(e)) => Err(LookupError::Unavailable(format!(
                    "{what} failed: {}",
                    describe(&e)
                ))),
                Err(_) => Err(LookupError::Unavailable(format!(
                    "{what} did not answer within {:?}",
                    self.timeout
                ))),
            };
        let label = match &result {
            Ok(d) if d.allowed => "allowed",
            Ok(_) => "denied",
            Err(_) => "error",
        };
        self.metrics
            .calls
            .get_or_create(&ResultLabel { result: label })
            .inc();
        if let Err(e) = &result {
            tracing::warn!(
                namespace,
                service_account,
                spec,
                "authorization failed: {e}"
            );
        }
        result
    }
}

/// What the authorizer is asked for a request by service account `namespace/service_account`
/// with these `attributes`: the user and groups its token carries. The one home of that
/// identity: the webhook's access review, `gmsa doctor`'s and the e2e RBAC checks use it.
pub fn service_account_review(
    namespace: &str,
    service_account: &str,
    attributes: ResourceAttributes,
) -> SubjectAccessReviewSpec {
    SubjectAccessReviewSpec {
        user: Some(format!(
            "system:serviceaccount:{namespace}:{service_account}"
        )),
        groups: Some(vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".to_string(),
        ]),
        resource_attributes: Some(attributes),
        ..SubjectAccessReviewSpec::default()
    }
}

/// The `use` check's attributes: verb `use` on `gmsacredentialspecs.windows.k8s.io/v1` named
/// `spec`, in the pod's namespace.
pub fn use_attributes(namespace: &str, spec: &str) -> ResourceAttributes {
    ResourceAttributes {
        namespace: Some(namespace.to_string()),
        verb: Some("use".to_string()),
        group: Some(gmsa_crd::GROUP.to_string()),
        version: Some(gmsa_crd::VERSION.to_string()),
        resource: Some(gmsa_crd::PLURAL.to_string()),
        name: Some(spec.to_string()),
        ..ResourceAttributes::default()
    }
}

/// The review as a real service account token would be checked.
fn access_review(namespace: &str, service_account: &str, spec: &str) -> LocalSubjectAccessReview {
    LocalSubjectAccessReview {
        metadata: ObjectMeta {
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        spec: service_account_review(namespace, service_account, use_attributes(namespace, spec)),
        status: None,
    }
}

/// `allowed && !denied`, with the reason and any evaluation error (a denial then says the
/// authorizer failed while evaluating). `None` when the answer has no status at all: nothing
/// was decided, which is not a denial (the caller answers 503).
fn decision(answer: &LocalSubjectAccessReview) -> Option<UseDecision> {
    let status = answer.status.as_ref()?;
    let reason = status.reason.as_deref().filter(|r| !r.is_empty());
    let error = status.evaluation_error.as_deref().filter(|r| !r.is_empty());
    let reason = match (reason, error) {
        (Some(r), Some(e)) => Some(format!("{r}; evaluation error: {e}")),
        (Some(r), None) => Some(r.to_string()),
        (None, Some(e)) => Some(format!("evaluation error: {e}")),
        (None, None) => None,
    };
    Some(UseDecision {
        allowed: status.allowed && !status.denied.unwrap_or(false),
        reason,
    })
}

#[async_trait]
impl Authorizer for KubeAuthorizer {
    async fn may_use(
        &self,
        namespace: &str,
        service_account: &str,
        spec: &str,
    ) -> Result<UseDecision, LookupError> {
        let key = (
            namespace.to_string(),
            service_account.to_string(),
            spec.to_string(),
        );
        let entry = self
            .cache
            .entry(key)
            .or_try_insert_with(async {
                self.metrics.cache_misses.inc();
                self.call_access_review(namespace, service_account, spec)
                    .await
            })
            .await
            .map_err(|e: Arc<LookupError>| (*e).clone())?;
        if !entry.is_fresh() {
            self.metrics.cache_hits.inc();
        }
        Ok(entry.into_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authorization::v1::SubjectAccessReviewStatus;

    #[test]
    fn the_review_matches_the_captured_request() {
        let want = gmsa_testkit::fixture("k8s-1.32/api/lsar-request-default.json");
        let got =
            serde_json::to_value(access_review("demo", "default", "webapp01")).expect("serialize");
        assert_eq!(got["spec"], want["spec"]);
        assert_eq!(got["metadata"]["namespace"], "demo");
    }

    #[test]
    fn decision_is_allowed_and_not_denied_with_reasons() {
        let status = |allowed, denied: Option<bool>, reason: Option<&str>, err: Option<&str>| {
            LocalSubjectAccessReview {
                status: Some(SubjectAccessReviewStatus {
                    allowed,
                    denied,
                    reason: reason.map(str::to_string),
                    evaluation_error: err.map(str::to_string),
                }),
                ..Default::default()
            }
        };
        let cases = [
            (
                status(true, None, Some("RBAC: ok"), None),
                true,
                Some("RBAC: ok"),
            ),
            (
                status(true, Some(true), Some("deny"), None),
                false,
                Some("deny"),
            ),
            (status(false, None, None, None), false, None),
            (status(false, Some(false), Some(""), None), false, None),
            (
                status(false, None, None, Some("webhook down")),
                false,
                Some("evaluation error: webhook down"),
            ),
            (
                status(false, None, Some("no"), Some("x")),
                false,
                Some("no; evaluation error: x"),
            ),
        ];
        for (review, allowed, reason) in cases {
            let d = decision(&review).expect("a status decides");
            assert_eq!(d.allowed, allowed, "{review:?}");
            assert_eq!(d.reason.as_deref(), reason, "{review:?}");
        }
        // No status: undetermined, not a denial.
        assert_eq!(decision(&LocalSubjectAccessReview::default()), None);
    }
}
