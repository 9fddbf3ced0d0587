//! The Kubernetes implementation of the two lookups (see `docs/design.md`, "kubernetes
//! backend"):
//! - [`KubeSpecStore`]: credential specs from a watch (kube-runtime `watcher`), answered from
//!   memory; live GETs (coalesced per name) when admission asks for [`Freshness::Live`] or
//!   before the first sync.
//! - [`KubeAuthorizer`]: LocalSubjectAccessReview per (namespace, service account, spec),
//!   cached with separate TTLs for allowed and denied answers, concurrent identical lookups
//!   coalesced into one API call. What it asks is built by [`service_account_review`] (a
//!   service account's user and groups) with [`use_attributes`]; `gmsa doctor` and the e2e
//!   RBAC checks ask the same way.
//! - [`client`]: a `kube::Client` from in-cluster config or kubeconfig.
//!
//! API errors and timeouts are [`LookupError::Unavailable`] (admission fails closed with a
//! 500-class denial), never a "no".
//!
//! [`Freshness::Live`]: crate::lookup::Freshness::Live
//! [`LookupError::Unavailable`]: crate::lookup::LookupError::Unavailable

mod authorizer;
mod specs;

use std::time::Duration;

pub use authorizer::{
    service_account_review, use_attributes, AuthorizerConfig, KubeAuthorizer, DEFAULT_ALLOWED_TTL,
    MAX_DENIED_TTL,
};
pub use specs::{KubeSpecStore, SpecStoreConfig, DEFAULT_MAX_STALENESS};

/// Why no Kubernetes client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Neither in-cluster configuration nor a kubeconfig was usable.
    #[error(
        "no Kubernetes configuration found: not running in a pod (in-cluster service account) \
         and no usable kubeconfig (KUBECONFIG or ~/.kube/config): {0}"
    )]
    Config(#[from] kube::config::InferConfigError),
    /// The configuration was found but a client could not be built from it (e.g. a bad
    /// certificate in the kubeconfig).
    #[error("cannot build a Kubernetes client from the configuration: {0}")]
    Build(#[from] kube::Error),
    /// `qps` or `burst` is not a positive number.
    #[error("invalid client rate limit: {0}")]
    RateLimit(String),
}

/// A `kube::Client` from the in-cluster service account, or from the kubeconfig when run
/// outside a cluster (`kube::Config::infer`).
///
/// `timeout` bounds connecting to the API server. Per-call deadlines are applied by
/// [`KubeSpecStore`] and [`KubeAuthorizer`] themselves (their `timeout` settings): a client
/// read timeout would also cut the long-lived watch.
///
/// `qps` and `burst` are the reference webhook's client-side rate limit (`QPS`, `BURST`).
/// They are validated (both must be positive) and accepted for compatibility, but not applied:
/// kube-rs has no client-side limiter, and this webhook makes API calls only on cache misses
/// (at most one access review per (namespace, service account, spec) per TTL, one GET per
/// name in flight, coalesced), so a token bucket would only add the queueing delay that made
/// the reference fail pod creations under bursts. The API server's own priority and fairness
/// protects it.
pub async fn client(qps: f32, burst: u32, timeout: Duration) -> Result<kube::Client, ClientError> {
    if !(qps.is_finite() && qps > 0.0) {
        return Err(ClientError::RateLimit(format!(
            "QPS must be a positive number, got {qps}"
        )));
    }
    if burst == 0 {
        return Err(ClientError::RateLimit(
            "BURST must be at least 1, got 0".into(),
        ));
    }
    let mut config = kube::Config::infer().await?;
    config.connect_timeout = Some(timeout);
    tracing::debug!(
        qps,
        burst,
        cluster_url = %config.cluster_url,
        "Kubernetes client configured; QPS/BURST are accepted for compatibility and not applied \
         (API calls happen only on cache misses and are coalesced)"
    );
    Ok(kube::Client::try_from(config)?)
}

/// Whether `name` can be the name of a cluster-scoped custom resource (an RFC 1123 subdomain).
fn is_object_name(name: &str) -> bool {
    gmsa_crd::name::is_subdomain(name)
}

/// Whether `name` can be a namespace name (an RFC 1123 label).
fn is_dns_label(name: &str) -> bool {
    gmsa_crd::name::is_label(name)
}

/// The HTTP status of an API error, if the API server answered with one.
fn api_status(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// A short description of a client error: `403 Forbidden: <message>` for API errors, the
/// error chain otherwise.
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            format!("{} {}: {}", status.code, status.reason, status.message)
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                let s_text = s.to_string();
                if !text.contains(&s_text) {
                    text.push_str(": ");
                    text.push_str(&s_text);
                }
                source = s.source();
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rate_limit_values_are_validated() {
        for (qps, burst, want) in [
            (0.0, 10, "QPS must be a positive number, got 0"),
            (-1.0, 10, "QPS must be a positive number, got -1"),
            (f32::NAN, 10, "QPS must be a positive number, got NaN"),
            (5.0, 0, "BURST must be at least 1, got 0"),
        ] {
            let Err(err) = client(qps, burst, Duration::from_secs(1)).await else {
                panic!("{qps}/{burst} accepted");
            };
            assert!(err.to_string().contains(want), "{qps}/{burst}: {err}");
        }
    }

    #[test]
    fn api_errors_are_described_by_code_reason_and_message() {
        let status = kube::core::Status {
            code: 403,
            reason: "Forbidden".into(),
            message: "nope".into(),
            ..Default::default()
        };
        let e = kube::Error::Api(Box::new(status));
        assert_eq!(describe(&e), "403 Forbidden: nope");
        assert_eq!(api_status(&e), Some(403));
    }
}
