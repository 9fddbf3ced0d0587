//! The benchmark's fake Kubernetes API server: testkit's [`CrdApi`] (paginated list, watch,
//! spec GET, LocalSubjectAccessReview) filled with realistic specs, every answer but the watch
//! stream after a configurable delay, plus `/version` and discovery. Counts every call;
//! `GET /_bench/counters` returns the counts as JSON ([`Counters`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use gmsa_testkit::crd_api::{AuthzAnswer, CrdApi, Fault, Route};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::bodies::{service_account, spec_name, spec_object, NAMESPACE, SPEC_NAMES};

/// How the fake behaves.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// Added before every answer except the watch stream.
    pub delay: Duration,
    /// How many specs it holds (at least the three the bodies name).
    pub specs: usize,
    /// Service accounts allowed to `use` the specs the bodies name (see
    /// [`service_account`]); any other review answers "not allowed".
    pub service_accounts: usize,
}

/// Calls received, by kind. `lsar_per_key` counts reviews per `namespace/user/spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Every API call (everything but `/_bench/*`).
    pub total: u64,
    /// GETs of one spec.
    pub get: u64,
    /// List pages.
    pub list: u64,
    /// Watch requests.
    pub watch: u64,
    /// LocalSubjectAccessReviews.
    pub lsar: u64,
    /// Anything else (discovery, version, unknown paths).
    pub other: u64,
    /// LocalSubjectAccessReviews per `namespace/user/spec`.
    pub lsar_per_key: HashMap<String, u64>,
}

impl Counters {
    /// The largest number of reviews for one (service account, spec).
    pub fn lsar_max_per_key(&self) -> u64 {
        self.lsar_per_key.values().copied().max().unwrap_or(0)
    }
}

struct Fake {
    api: CrdApi,
    delay: Duration,
    other_calls: AtomicU64,
}

impl Fake {
    async fn other_call(&self) {
        self.other_calls.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }

    fn counters(&self) -> Counters {
        let mut lsar_per_key: HashMap<String, u64> = HashMap::new();
        for review in self.api.lsar_requests() {
            let attrs = &review["spec"]["resourceAttributes"];
            let key = format!(
                "{}/{}/{}",
                attrs["namespace"].as_str().unwrap_or_default(),
                review["spec"]["user"].as_str().unwrap_or_default(),
                attrs["name"].as_str().unwrap_or_default()
            );
            *lsar_per_key.entry(key).or_default() += 1;
        }
        let calls = |route| self.api.calls(route) as u64;
        let mut c = Counters {
            total: 0,
            get: calls(Route::Get),
            list: calls(Route::List),
            watch: calls(Route::Watch),
            lsar: calls(Route::Lsar),
            other: self.other_calls.load(Ordering::SeqCst),
            lsar_per_key,
        };
        c.total = c.get + c.list + c.watch + c.lsar + c.other;
        c
    }
}

/// The fake's routes over `config`.
pub fn router(config: FakeConfig) -> Router {
    let api = CrdApi::empty();
    for i in 0..config.specs.max(SPEC_NAMES.len()) {
        api.apply_object(spec_object(&spec_name(i), i));
    }
    for i in 0..config.service_accounts.max(1) {
        let sa = service_account(i, config.service_accounts);
        for spec in SPEC_NAMES {
            api.set_authz(
                NAMESPACE,
                &sa,
                spec,
                AuthzAnswer::allowed(
                    "RBAC: allowed by RoleBinding \"use-gmsa/demo\" of ClusterRole \"use-gmsa\"",
                ),
            );
        }
    }
    if !config.delay.is_zero() {
        for route in [Route::List, Route::Get, Route::Lsar] {
            api.fail_always(route, Fault::Delay(config.delay));
        }
    }
    let fake = Arc::new(Fake {
        api: api.clone(),
        delay: config.delay,
        other_calls: AtomicU64::new(0),
    });
    let extra = Router::new()
        .route("/version", get(version))
        .route("/apis/windows.k8s.io/v1", get(discovery))
        .route("/_bench/counters", get(counters))
        .fallback(unknown)
        .with_state(fake);
    api.router().merge(extra)
}

async fn counters(State(fake): State<Arc<Fake>>) -> Response {
    gmsa_testkit::json(&json!(fake.counters()))
}

async fn version(State(fake): State<Arc<Fake>>) -> Response {
    fake.other_call().await;
    gmsa_testkit::json(&gmsa_testkit::fixture("k8s-1.32/api/version.json"))
}

async fn discovery(State(fake): State<Arc<Fake>>) -> Response {
    fake.other_call().await;
    gmsa_testkit::json(&gmsa_testkit::fixture(
        "k8s-1.32/api/discovery-windows.k8s.io-v1.json",
    ))
}

async fn unknown(State(fake): State<Arc<Fake>>, uri: Uri) -> Response {
    fake.other_call().await;
    eprintln!("fake API server: no route for {uri}");
    gmsa_testkit::status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmsa_testkit::crd_api::SPECS_PATH;
    use gmsa_testkit::FakeApiServer;
    use serde_json::Value;

    async fn call(server: &FakeApiServer, req: axum::http::Request<Vec<u8>>) -> Value {
        server
            .client()
            .request::<Value>(req)
            .await
            .expect("call the fake")
    }

    #[tokio::test]
    async fn lists_in_pages_gets_and_reviews_like_the_api_server_and_counts_each_call() {
        let server = FakeApiServer::start(router(FakeConfig {
            delay: Duration::ZERO,
            specs: 5,
            service_accounts: 1,
        }))
        .await;
        let page = call(
            &server,
            axum::http::Request::get(format!("{SPECS_PATH}?limit=2"))
                .body(Vec::new())
                .expect("req"),
        )
        .await;
        assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
        let token = page["metadata"]["continue"]
            .as_str()
            .expect("a continue token")
            .to_string();
        let last = call(
            &server,
            axum::http::Request::get(format!("{SPECS_PATH}?limit=10&continue={token}"))
                .body(Vec::new())
                .expect("req"),
        )
        .await;
        assert_eq!(
            last["items"].as_array().map(Vec::len),
            Some(3),
            "5 specs in all"
        );
        assert_eq!(last["items"][2]["metadata"]["name"], "webapp03");
        assert_eq!(last["metadata"]["continue"], "");

        let spec = call(
            &server,
            axum::http::Request::get(format!("{SPECS_PATH}/webapp02"))
                .body(Vec::new())
                .expect("req"),
        )
        .await;
        assert_eq!(
            spec["credspec"]["DomainJoinConfig"]["MachineAccountName"],
            "webapp02"
        );

        let request = gmsa_testkit::fixture_text("k8s-1.32/api/lsar-request-webapp.json");
        let review = call(
            &server,
            axum::http::Request::post(
                "/apis/authorization.k8s.io/v1/namespaces/demo/localsubjectaccessreviews",
            )
            .header("content-type", "application/json")
            .body(request.into_bytes())
            .expect("req"),
        )
        .await;
        assert_eq!(review["status"]["allowed"], true);
        assert_eq!(review["spec"]["user"], "system:serviceaccount:demo:webapp");

        let counters: Counters = serde_json::from_value(
            call(
                &server,
                axum::http::Request::get("/_bench/counters")
                    .body(Vec::new())
                    .expect("req"),
            )
            .await,
        )
        .expect("counters JSON");
        assert_eq!(
            (counters.total, counters.list, counters.get, counters.lsar),
            (4, 2, 1, 1)
        );
        assert_eq!(counters.lsar_max_per_key(), 1);
        assert!(counters
            .lsar_per_key
            .contains_key("demo/system:serviceaccount:demo:webapp/webapp01"));
    }

    #[tokio::test]
    async fn a_missing_spec_is_a_not_found_status() {
        let server = FakeApiServer::start(router(FakeConfig {
            delay: Duration::from_millis(1),
            specs: 3,
            service_accounts: 1,
        }))
        .await;
        let err = server
            .client()
            .request::<Value>(
                axum::http::Request::get(format!("{SPECS_PATH}/nope"))
                    .body(Vec::new())
                    .expect("req"),
            )
            .await
            .expect_err("404");
        assert!(err.to_string().contains("not found"), "{err}");
    }
}
