//! Prometheus metrics of the serving side (requests, latency, connections, certificates,
//! spec cache size) and their text encoding for the admin port's `/metrics`.
//!
//! Everything is registered under the prefix `gmsa_webhook`; the Kubernetes backend
//! registers its own metrics (authorization calls, cache) in the same registry.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The registry prefix of every metric here.
pub const PREFIX: &str = "gmsa_webhook";

/// Content type of [`encode`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Which endpoint a request hit.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Route {
    /// POST /mutate.
    Mutate,
    /// POST /validate.
    Validate,
    /// /health.
    Health,
    /// /info.
    Info,
    /// Anything else (404).
    Other,
}

/// How a request ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The pod has no GMSA settings: allowed without lookups.
    NoGmsa,
    /// Allowed unchanged.
    Allowed,
    /// Allowed with a patch.
    Patched,
    /// Denied (the `code` label carries `status.code`).
    Denied,
    /// Answered without a review: health, info, 404, 405.
    Ok,
    /// 415: wrong Content-Type.
    UnsupportedMediaType,
    /// 413: body over --max-body-bytes.
    TooLarge,
    /// 408/503: the request did not finish within --request-timeout.
    Timeout,
    /// 400: the body could not be read (client went away, bad framing).
    BadBody,
}

/// Label values in snake case (`no_gmsa`, `too_large`, ...).
macro_rules! label_values {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }
        impl EncodeLabelValue for $ty {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
    };
}

label_values!(Route {
    Mutate => "mutate",
    Validate => "validate",
    Health => "health",
    Info => "info",
    Other => "other",
});

label_values!(RequestOutcome {
    NoGmsa => "no_gmsa",
    Allowed => "allowed",
    Patched => "patched",
    Denied => "denied",
    Ok => "ok",
    UnsupportedMediaType => "unsupported_media_type",
    TooLarge => "too_large",
    Timeout => "timeout",
    BadBody => "bad_body",
});

label_values!(ReloadResult {
    Success => "success",
    Refused => "refused",
});

/// Labels of `gmsa_webhook_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Endpoint.
    pub route: Route,
    /// What happened to the request (the `outcome` label).
    pub outcome: RequestOutcome,
    /// HTTP status sent, or the denial's `status.code` for denied reviews.
    pub code: u16,
}

/// Labels of `gmsa_webhook_admissions_by_plugin_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    /// Endpoint.
    pub route: Route,
    /// `gmsa_crd::ccg::label`: a catalogue key, `other` or `none` (a bounded set).
    pub plugin: &'static str,
}

/// Labels of `gmsa_webhook_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Endpoint.
    pub route: Route,
}

/// Result of a certificate reload attempt.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReloadResult {
    /// A new pair is served.
    Success,
    /// The new pair was refused; the old one is still served.
    Refused,
}

/// Labels of `gmsa_webhook_certificate_reloads_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// Result.
    pub result: ReloadResult,
}

/// Certificate metrics (used by `tls`).
#[derive(Clone, Debug, Default)]
pub struct CertMetrics {
    /// Reload attempts by result.
    pub reloads: Family<ReloadLabels, Counter>,
    /// notAfter of the served certificate, seconds since the Unix epoch.
    pub not_after_seconds: Gauge,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~8 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// The serving metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Requests by route, outcome and code.
    pub requests: Family<RequestLabels, Counter>,
    /// Admissions that looked up a spec, by route and the spec's CCG plugin.
    pub plugins: Family<PluginLabels, Counter>,
    /// Request latency by route (from headers received to response ready).
    pub duration: HistogramFamily,
    /// Requests being handled.
    pub in_flight: Gauge,
    /// Open client connections on the HTTPS port.
    pub connections: Gauge,
    /// TLS handshakes that failed or timed out.
    pub handshake_failures: Counter,
    /// Specs held by the spec store, refreshed at each scrape.
    pub credspecs: Gauge,
    /// Certificate metrics.
    pub cert: CertMetrics,
}

impl Metrics {
    /// Creates the metrics and registers them under [`PREFIX`] in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            plugins: Family::default(),
            duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            in_flight: Gauge::default(),
            connections: Gauge::default(),
            handshake_failures: Counter::default(),
            credspecs: Gauge::default(),
            cert: CertMetrics::default(),
        };
        let r = registry.sub_registry_with_prefix(PREFIX);
        r.register(
            "requests",
            "HTTP requests by route, outcome and code (status.code for denied reviews)",
            metrics.requests.clone(),
        );
        r.register(
            "admissions_by_plugin",
            "Admission reviews that looked up a spec, by route and CCG plugin (catalogue name, other, none)",
            metrics.plugins.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time to answer a request, by route",
            metrics.duration.clone(),
        );
        r.register(
            "requests_in_flight",
            "Requests being handled",
            metrics.in_flight.clone(),
        );
        r.register(
            "connections",
            "Open client connections on the HTTPS port",
            metrics.connections.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            metrics.handshake_failures.clone(),
        );
        r.register(
            "credspecs",
            "GMSACredentialSpecs held in memory",
            metrics.credspecs.clone(),
        );
        r.register(
            "certificate_reloads",
            "Certificate reload attempts by result (refused: the old pair is kept)",
            metrics.cert.reloads.clone(),
        );
        r.register(
            "certificate_not_after_seconds",
            "notAfter of the served certificate (Unix seconds)",
            metrics.cert.not_after_seconds.clone(),
        );
        metrics
    }

    /// Counts one finished request.
    pub fn observe(&self, route: Route, outcome: RequestOutcome, code: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                outcome,
                code,
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels { route })
            .observe(seconds);
    }

    /// Counts one admission under each CCG plugin label its specs have.
    pub fn observe_plugins(
        &self,
        route: Route,
        plugins: &std::collections::BTreeSet<&'static str>,
    ) {
        for &plugin in plugins {
            self.plugins
                .get_or_create(&PluginLabels { route, plugin })
                .inc();
        }
    }
}

/// Encodes `registry` in the Prometheus text format.
pub fn encode(registry: &Arc<Registry>) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; an encoder error would be a bug in a metric's labels.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, registry) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_requests_and_histogram() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.observe(Route::Validate, RequestOutcome::Denied, 403, 0.002);
        metrics.observe(Route::Mutate, RequestOutcome::Patched, 200, 0.001);
        metrics.credspecs.set(3);
        metrics.observe_plugins(Route::Mutate, &["aws", "none"].into_iter().collect());
        let text = encode(&Arc::new(registry));
        assert!(
            text.contains(
                r#"gmsa_webhook_requests_total{route="validate",outcome="denied",code="403"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("gmsa_webhook_request_duration_seconds_bucket"));
        assert!(text.contains("gmsa_webhook_credspecs 3"));
        assert!(
            text.contains(
                r#"gmsa_webhook_admissions_by_plugin_total{route="mutate",plugin="aws"} 1"#
            ),
            "{text}"
        );
    }
}
