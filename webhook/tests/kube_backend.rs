//! The Kubernetes backend (`KubeSpecStore`, `KubeAuthorizer`) through a real `kube::Client`
//! against testkit's fake API server (`CrdApi`, answering like the captured kube-apiserver).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gmsa_testkit::crd_api::{
    captured_credspec, lsar_path, spec_path, AuthzAnswer, CrdApi, Fault, Route, SPECS_PATH,
};
use gmsa_testkit::{fixture, FakeApiServer};
use gmsa_webhook::kube_backend::{
    AuthorizerConfig, KubeAuthorizer, KubeSpecStore, SpecStoreConfig,
};
use gmsa_webhook::lookup::{
    Authorizer, CredSpecEntry, Freshness, LookupError, SpecLookup, SpecStore,
};
use prometheus_client::registry::Registry;
use serde_json::{json, Value};

/// Upper bound for a condition to hold (tests normally finish in well under a second or
/// two; this only bounds a failing one).
const WAIT: Duration = Duration::from_secs(8);

struct Store {
    server: FakeApiServer,
    store: Arc<KubeSpecStore>,
    task: tokio::task::JoinHandle<()>,
    registry: Registry,
}

impl Drop for Store {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_store(api: &CrdApi, timeout: Duration) -> Store {
    let server = FakeApiServer::start(api.router()).await;
    let mut registry = Registry::default();
    let (store, task) = KubeSpecStore::start(
        server.client(),
        SpecStoreConfig {
            timeout,
            ..SpecStoreConfig::default()
        },
        &mut registry,
    );
    Store {
        server,
        store,
        task,
        registry,
    }
}

async fn synced_store(api: &CrdApi) -> Store {
    let s = start_store(api, Duration::from_secs(2)).await;
    eventually("the cache syncs", || async { s.store.ready().is_ok() }).await;
    s
}

/// Polls `cond` until it holds, failing after [`WAIT`].
async fn eventually<F, Fut>(what: &str, cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    gmsa_testkit::eventually(what, WAIT, cond).await
}

/// Asserts the registry's text exposition has this exact sample line.
fn assert_metric(registry: &Registry, sample: &str) {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode metrics");
    assert!(
        text.lines().any(|l| l == sample),
        "no {sample:?} in:\n{text}"
    );
}

fn found(value: Value) -> SpecLookup {
    SpecLookup::Found(CredSpecEntry::new(value))
}

async fn cached(store: &KubeSpecStore, name: &str) -> SpecLookup {
    store
        .get(name, Freshness::Cached)
        .await
        .expect("cached lookup")
}

// ---- credspec cache ----------------------------------------------------------------------

#[tokio::test]
async fn cache_syncs_from_the_captured_list_and_answers_from_memory() {
    let api = CrdApi::from_capture();
    let s = start_store(&api, Duration::from_secs(2)).await;
    eventually("the cache syncs", || async { s.store.ready().is_ok() }).await;
    assert_eq!(s.store.len(), 1);
    for _ in 0..100 {
        assert_eq!(
            cached(&s.store, "webapp01").await,
            found(captured_credspec())
        );
    }
    assert_eq!(cached(&s.store, "nope").await, SpecLookup::NotFound);
    assert_eq!(s.server.count("GET", &spec_path("webapp01")), 0);
    assert_eq!(s.server.count("GET", &spec_path("nope")), 0);
    assert_eq!(api.calls(Route::List), 1);
    assert_metric(
        &s.registry,
        "gmsa_webhook_spec_watch_events_total{event=\"listed\"} 1",
    );
}

#[tokio::test]
async fn a_large_collection_syncs_page_by_page() {
    let api = CrdApi::empty();
    for i in 0..1200 {
        api.apply(&format!("spec{i:04}"), Some(json!({"n": i})));
    }
    let s = synced_store(&api).await;
    assert_eq!(s.store.len(), 1200);
    assert_eq!(api.calls(Route::List), 3, "pages of 500");
    assert_eq!(
        cached(&s.store, "spec1199").await,
        found(json!({"n": 1199}))
    );
}

#[tokio::test]
async fn not_ready_says_why_and_only_live_lookups_answer_until_synced() {
    let api = CrdApi::from_capture();
    api.fail_always(Route::List, Fault::Status(403));
    let s = start_store(&api, Duration::from_secs(2)).await;
    eventually("the list error is reported", || async {
        s.store.ready().is_err_and(|e| e.contains("403 forbidden"))
    })
    .await;
    let why = s.store.ready().expect_err("not synced");
    assert!(
        why.starts_with("credspec cache has not synced yet: list failed: 403 forbidden: grant list/watch on gmsacredentialspecs"),
        "{why}"
    );
    // Before the sync a cached lookup cannot say "not found" (and does no I/O); a live one
    // asks the API server.
    for name in ["webapp01", "nope"] {
        match s.store.get(name, Freshness::Cached).await {
            Err(LookupError::Unavailable(m)) => {
                assert!(
                    m.starts_with("credspec cache has not synced yet (list failed: 403"),
                    "{m}"
                )
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(s.server.count("GET", &spec_path("webapp01")), 0);
    let live = |name: &'static str| s.store.get(name, Freshness::Live);
    assert_eq!(live("webapp01").await, Ok(found(captured_credspec())));
    assert_eq!(live("nope").await, Ok(SpecLookup::NotFound));
    assert_eq!(s.server.count("GET", &spec_path("webapp01")), 1);
    assert_eq!(s.server.count("GET", &spec_path("nope")), 1);

    // The permission is granted: the watch recovers by itself (backoff), no restart.
    api.clear_faults();
    eventually("the cache syncs after the fault", || async {
        s.store.ready().is_ok()
    })
    .await;
    assert_eq!(s.store.watch_error(), None);
    assert_eq!(cached(&s.store, "nope").await, SpecLookup::NotFound);
    assert_eq!(s.server.count("GET", &spec_path("nope")), 1);
}

#[tokio::test]
async fn captured_watch_events_add_change_and_delete_a_spec() {
    let api = CrdApi::from_capture();
    let s = synced_store(&api).await;
    let events: Vec<Value> =
        gmsa_testkit::fixture_text("k8s-1.32/api/gmsacredentialspecs-watch.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).expect("watch line"))
            .collect();
    for event in &events {
        let object = event["object"].clone();
        match event["type"].as_str() {
            Some("ADDED" | "MODIFIED") => {
                api.apply_object(object.clone());
                let want = found(object["credspec"].clone());
                eventually("the cache has the new contents", || async {
                    cached(&s.store, "webapp02").await == want
                })
                .await;
            }
            Some("DELETED") => {
                api.delete("webapp02").expect("webapp02 exists");
                eventually("the cache forgets the spec", || async {
                    cached(&s.store, "webapp02").await == SpecLookup::NotFound
                })
                .await;
            }
            Some("BOOKMARK") => api.bookmark(),
            other => panic!("unexpected event type {other:?}"),
        }
    }
    // The change is the capture's: NetBiosName CONTOSO -> CONTOSO2 (seen above), then gone.
    assert_eq!(
        events[1]["object"]["credspec"]["DomainJoinConfig"]["NetBiosName"],
        "CONTOSO2"
    );
    assert_eq!(s.store.len(), 1);
    assert_eq!(
        cached(&s.store, "webapp01").await,
        found(captured_credspec())
    );
    assert_eq!(
        s.server.count("GET", &spec_path("webapp02")),
        0,
        "no live GET"
    );
    assert_eq!(api.calls(Route::List), 1, "no re-list");
}

#[tokio::test]
async fn a_spec_without_credspec_is_no_credspec() {
    let api = CrdApi::from_capture();
    let s = synced_store(&api).await;
    api.apply("empty", Some(json!({})));
    api.apply("missing", None);
    api.apply("null", Some(Value::Null));
    eventually("the three specs are cached", || async {
        s.store.len() == 4
    })
    .await;
    for name in ["empty", "missing", "null"] {
        assert_eq!(
            cached(&s.store, name).await,
            SpecLookup::NoCredSpec,
            "{name}"
        );
    }
}

#[tokio::test]
async fn live_lookup_sees_a_spec_the_watch_has_not_delivered() {
    let api = CrdApi::from_capture();
    let s = synced_store(&api).await;
    api.apply_unwatched("fresh", Some(json!({"CmsPlugins": ["ActiveDirectory"]})));
    assert_eq!(cached(&s.store, "fresh").await, SpecLookup::NotFound);
    let live = s
        .store
        .get("fresh", Freshness::Live)
        .await
        .expect("live lookup");
    assert_eq!(live, found(json!({"CmsPlugins": ["ActiveDirectory"]})));
    assert_eq!(s.server.count("GET", &spec_path("fresh")), 1);
    // A live answer does not write the cache: the watch stays its only writer.
    assert_eq!(cached(&s.store, "fresh").await, SpecLookup::NotFound);
}

#[tokio::test]
async fn live_lookup_of_a_missing_spec_is_not_found() {
    let api = CrdApi::from_capture();
    let s = synced_store(&api).await;
    let got = s.store.get("nope", Freshness::Live).await;
    assert_eq!(got, Ok(SpecLookup::NotFound));
    assert_eq!(s.server.count("GET", &spec_path("nope")), 1);
}

#[tokio::test]
async fn live_lookup_errors_are_unavailable_or_forbidden_never_not_found() {
    let api = CrdApi::from_capture();
    let s = start_store(&api, Duration::from_millis(300)).await;
    eventually("the cache syncs", || async { s.store.ready().is_ok() }).await;

    api.fail_next(Route::Get, 1, Fault::Status(403));
    match s.store.get("webapp01", Freshness::Live).await {
        Err(LookupError::Forbidden(m)) => {
            assert!(m.starts_with("get gmsacredentialspecs \"webapp01\""), "{m}")
        }
        other => panic!("403: {other:?}"),
    }
    for fault in [Fault::Status(500), Fault::CloseMidResponse] {
        api.fail_next(Route::Get, 1, fault.clone());
        match s.store.get("webapp01", Freshness::Live).await {
            Err(LookupError::Unavailable(m)) => {
                assert!(
                    m.contains("gmsacredentialspecs \"webapp01\""),
                    "{fault:?}: {m}"
                )
            }
            other => panic!("{fault:?}: {other:?}"),
        }
    }
    // 429/503/504 are retried by kube's client (with backoff) inside our deadline: one 503
    // is invisible, a lasting one ends at the deadline.
    let before = s.server.count("GET", &spec_path("webapp01"));
    api.fail_next(Route::Get, 1, Fault::Status(503));
    assert_eq!(
        s.store.get("webapp01", Freshness::Live).await,
        Ok(found(captured_credspec()))
    );
    assert_eq!(s.server.count("GET", &spec_path("webapp01")), before + 2);
    api.fail_always(Route::Get, Fault::Status(503));
    match s.store.get("webapp01", Freshness::Live).await {
        Err(LookupError::Unavailable(m)) => assert!(m.contains("did not answer within"), "{m}"),
        other => panic!("lasting 503: {other:?}"),
    }
    api.clear_faults();
    api.fail_next(Route::Get, 1, Fault::Hang);
    let start = Instant::now();
    match s.store.get("webapp01", Freshness::Live).await {
        Err(LookupError::Unavailable(m)) => assert!(m.contains("did not answer within"), "{m}"),
        other => panic!("hang: {other:?}"),
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    // Recovered: the next call answers.
    assert_eq!(
        s.store.get("webapp01", Freshness::Live).await,
        Ok(found(captured_credspec()))
    );
    assert_metric(
        &s.registry,
        "gmsa_webhook_spec_live_gets_total{result=\"error\"} 5",
    );
    assert_metric(
        &s.registry,
        "gmsa_webhook_spec_live_gets_total{result=\"found\"} 2",
    );
}

#[tokio::test]
async fn names_no_object_can_have_never_reach_the_api_server() {
    let api = CrdApi::from_capture();
    let s = synced_store(&api).await;
    let before = s.server.requests().len();
    for name in [
        "",
        "WebApp01",
        "a/b",
        "webapp01/../../../api/v1/namespaces/kube-system/secrets/x",
        "x?watch=true",
        "a b",
    ] {
        assert_eq!(
            s.store.get(name, Freshness::Live).await,
            Ok(SpecLookup::NotFound),
            "{name:?}"
        );
        assert_eq!(
            s.store.get(name, Freshness::Cached).await,
            Ok(SpecLookup::NotFound),
            "{name:?}"
        );
    }
    let after: Vec<_> = s
        .server
        .requests()
        .into_iter()
        .skip(before)
        .filter(|r| r.query.as_deref().is_none_or(|q| !q.contains("watch")))
        .collect();
    assert!(after.is_empty(), "{after:?}");
}

#[tokio::test]
async fn concurrent_live_lookups_of_one_name_share_one_get() {
    let api = CrdApi::from_capture();
    let s = synced_store(&api).await;
    api.fail_next(Route::Get, 1, Fault::Delay(Duration::from_millis(300)));
    let lookups = (0..50).map(|_| s.store.get("webapp01", Freshness::Live));
    let results = futures::future::join_all(lookups).await;
    assert!(results.iter().all(|r| *r == Ok(found(captured_credspec()))));
    assert_eq!(s.server.count("GET", &spec_path("webapp01")), 1);
    // Once answered, a new live lookup makes a new call.
    s.store
        .get("webapp01", Freshness::Live)
        .await
        .expect("second");
    assert_eq!(s.server.count("GET", &spec_path("webapp01")), 2);
}

/// A live lookup whose only caller is dropped mid-GET (its review was abandoned) must not
/// leave behind a shared future that answers the next caller with an expired deadline.
#[tokio::test]
async fn a_dropped_caller_leaves_no_expired_lookup_for_the_next() {
    let api = CrdApi::from_capture();
    let s = start_store(&api, Duration::from_millis(300)).await;
    eventually("the cache syncs", || async { s.store.ready().is_ok() }).await;
    api.fail_next(Route::Get, 1, Fault::Delay(Duration::from_millis(1000)));
    let first = tokio::time::timeout(
        Duration::from_millis(50),
        s.store.get("webapp01", Freshness::Live),
    )
    .await;
    assert!(first.is_err(), "the first caller is dropped mid-lookup");
    // Past the abandoned GET's deadline (its answer, delayed 1 s, has not come).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = s.store.get("webapp01", Freshness::Live).await;
    assert_eq!(second, Ok(found(captured_credspec())));
}

#[tokio::test]
async fn watch_resumes_after_a_clean_break_without_relisting() {
    let api = CrdApi::from_capture();
    let s = synced_store(&api).await;
    eventually("a watch is open", || async { api.open_watches() == 1 }).await;
    // The watch ends cleanly and comes back a moment later; the change made while no watch
    // was open is replayed from the resourceVersion the watcher resumes at.
    api.fail_next(Route::Watch, 1, Fault::Delay(Duration::from_millis(200)));
    api.break_watches();
    eventually("the watch is down", || async { api.open_watches() == 0 }).await;
    api.apply("after-break", Some(json!({"a": 1})));
    eventually("the change arrives through the resumed watch", || async {
        cached(&s.store, "after-break").await == found(json!({"a": 1}))
    })
    .await;
    assert_eq!(
        api.calls(Route::List),
        1,
        "resumed from its resourceVersion"
    );
    assert!(api.calls(Route::Watch) >= 2);
    assert!(s.store.ready().is_ok());
}

#[tokio::test]
async fn watch_relists_after_410_gone_and_drops_what_was_deleted_meanwhile() {
    let api = CrdApi::from_capture();
    api.apply("doomed", Some(json!({"a": 1})));
    let s = synced_store(&api).await;
    assert_eq!(s.store.len(), 2);
    eventually("a watch is open", || async { api.open_watches() == 1 }).await;
    // The watch drops and takes a moment to come back; meanwhile a spec changes, another is
    // deleted and the history is compacted: resuming gets 410 Expired (one error, one
    // backoff), so the watcher must list again.
    api.fail_next(Route::Watch, 1, Fault::Delay(Duration::from_millis(300)));
    api.break_watches();
    eventually("the watch is down", || async { api.open_watches() == 0 }).await;
    api.apply("webapp01", Some(json!({"changed": true})));
    api.delete("doomed");
    api.compact();
    eventually("the cache shows the re-listed state", || async {
        cached(&s.store, "webapp01").await == found(json!({"changed": true}))
            && cached(&s.store, "doomed").await == SpecLookup::NotFound
    })
    .await;
    assert_eq!(api.calls(Route::List), 2, "exactly one re-list");
    assert!(s.store.ready().is_ok(), "stays ready through the re-list");
    assert_metric(&s.registry, "gmsa_webhook_spec_watch_restarts_total 1");
}

#[tokio::test]
async fn no_stale_spec_once_the_watch_caught_up_after_an_outage() {
    let api = CrdApi::from_capture();
    let s = synced_store(&api).await;
    eventually("a watch is open", || async { api.open_watches() == 1 }).await;
    api.fail_always(Route::Watch, Fault::Status(500));
    api.break_watches();
    eventually("the watch is down", || async { api.open_watches() == 0 }).await;
    api.apply("webapp01", Some(json!({"v": 2})));
    // During the outage the cache keeps its last state (and stays ready); a live lookup
    // already sees the change.
    assert_eq!(
        cached(&s.store, "webapp01").await,
        found(captured_credspec())
    );
    assert_eq!(
        s.store.get("webapp01", Freshness::Live).await,
        Ok(found(json!({"v": 2})))
    );
    eventually("the watch error is recorded", || async {
        s.store.watch_error().is_some()
    })
    .await;
    api.clear_faults();
    eventually("the watch caught up", || async {
        cached(&s.store, "webapp01").await == found(json!({"v": 2}))
    })
    .await;
    assert_eq!(s.store.watch_error(), None, "recovered");
    for _ in 0..20 {
        assert_eq!(cached(&s.store, "webapp01").await, found(json!({"v": 2})));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---- authorization -------------------------------------------------------------------------

struct Authz {
    server: FakeApiServer,
    authz: KubeAuthorizer,
    registry: Registry,
}

impl Authz {
    /// Whether the lookup answers "allowed" (failing the test on a lookup error).
    async fn allowed(&self, namespace: &str, service_account: &str, spec: &str) -> bool {
        self.authz
            .may_use(namespace, service_account, spec)
            .await
            .expect("ok")
            .allowed
    }
}

async fn start_authz(api: &CrdApi, config: AuthorizerConfig) -> Authz {
    let server = FakeApiServer::start(api.router()).await;
    let mut registry = Registry::default();
    let authz = KubeAuthorizer::new(server.client(), config, &mut registry);
    Authz {
        server,
        authz,
        registry,
    }
}

fn config(allowed_ttl: u64, denied_ttl: u64, timeout_ms: u64) -> AuthorizerConfig {
    AuthorizerConfig {
        allowed_ttl: Duration::from_millis(allowed_ttl),
        denied_ttl: Duration::from_millis(denied_ttl),
        max_entries: 1000,
        timeout: Duration::from_millis(timeout_ms),
    }
}

fn captured_webapp_reason() -> String {
    fixture("k8s-1.32/api/lsar-response-webapp.json")["status"]["reason"]
        .as_str()
        .expect("captured reason")
        .to_string()
}

#[tokio::test]
async fn authorization_asks_as_the_service_account_and_reports_allowed_with_reason() {
    let api = CrdApi::empty();
    api.set_authz(
        "demo",
        "webapp",
        "webapp01",
        AuthzAnswer::allowed(&captured_webapp_reason()),
    );
    let a = start_authz(&api, AuthorizerConfig::default()).await;
    let d = a
        .authz
        .may_use("demo", "webapp", "webapp01")
        .await
        .expect("review");
    assert!(d.allowed);
    assert_eq!(d.reason, Some(captured_webapp_reason()));
    let sent = api.lsar_requests();
    assert_eq!(sent.len(), 1);
    let want = fixture("k8s-1.32/api/lsar-request-webapp.json");
    assert_eq!(sent[0]["spec"], want["spec"]);
    assert_eq!(sent[0]["kind"], "LocalSubjectAccessReview");
    assert_eq!(a.server.count("POST", &lsar_path("demo")), 1);
}

#[tokio::test]
async fn authorization_not_allowed_and_explicitly_denied() {
    let api = CrdApi::empty();
    api.set_authz(
        "demo",
        "evil",
        "webapp01",
        AuthzAnswer::denied("webhook authorizer: no"),
    );
    let a = start_authz(&api, AuthorizerConfig::default()).await;
    // Default: as captured for `default` (allowed false, no reason).
    let d = a
        .authz
        .may_use("demo", "default", "webapp01")
        .await
        .expect("review");
    assert!(!d.allowed);
    assert_eq!(d.reason, None);
    let d = a
        .authz
        .may_use("demo", "evil", "webapp01")
        .await
        .expect("review");
    assert!(!d.allowed);
    assert_eq!(d.reason.as_deref(), Some("webhook authorizer: no"));
    // allowed && denied is not allowed.
    api.set_authz(
        "demo",
        "both",
        "webapp01",
        AuthzAnswer {
            allowed: true,
            denied: true,
            ..AuthzAnswer::default()
        },
    );
    assert!(
        !a.authz
            .may_use("demo", "both", "webapp01")
            .await
            .expect("review")
            .allowed
    );
}

#[tokio::test]
async fn authorization_call_failures_are_unavailable_not_denials() {
    let api = CrdApi::empty();
    api.set_authz("demo", "webapp", "webapp01", AuthzAnswer::allowed("ok"));
    let a = start_authz(&api, config(10_000, 10_000, 300)).await;
    api.fail_always(Route::Lsar, Fault::Status(429));
    match a.authz.may_use("demo", "webapp", "webapp01").await {
        Err(LookupError::Unavailable(m)) => assert!(m.contains("did not answer within"), "{m}"),
        other => panic!("lasting 429: {other:?}"),
    }
    api.clear_faults();
    let retried = api.calls(Route::Lsar);
    assert!(retried > 1, "429 is retried by the client: {retried}");
    for fault in [Fault::Status(500), Fault::CloseMidResponse] {
        api.fail_next(Route::Lsar, 1, fault.clone());
        match a.authz.may_use("demo", "webapp", "webapp01").await {
            Err(LookupError::Unavailable(m)) => assert!(
                m.contains(
                    "service account \"webapp\" in namespace \"demo\" using credspec \"webapp01\""
                ),
                "{fault:?}: {m}"
            ),
            other => panic!("{fault:?}: {other:?}"),
        }
    }
    api.fail_next(Route::Lsar, 1, Fault::Status(403));
    match a.authz.may_use("demo", "webapp", "webapp01").await {
        Err(LookupError::Forbidden(m)) => {
            assert!(m.starts_with("create localsubjectaccessreviews"), "{m}")
        }
        other => panic!("403: {other:?}"),
    }
    // Errors are not cached: the next lookup asks again and succeeds.
    let d = a
        .authz
        .may_use("demo", "webapp", "webapp01")
        .await
        .expect("recovered");
    assert!(d.allowed);
    assert_eq!(api.calls(Route::Lsar), retried + 4);
    assert_metric(
        &a.registry,
        "gmsa_webhook_authz_calls_total{result=\"error\"} 4",
    );
    assert_metric(
        &a.registry,
        "gmsa_webhook_authz_calls_total{result=\"allowed\"} 1",
    );
}

#[tokio::test]
async fn an_invalid_namespace_never_reaches_the_api_server() {
    let api = CrdApi::empty();
    let a = start_authz(&api, AuthorizerConfig::default()).await;
    for ns in ["", "Demo", "a/../../x", "a.b"] {
        match a.authz.may_use(ns, "webapp", "webapp01").await {
            Err(LookupError::Unavailable(m)) => {
                assert!(m.contains("not a valid namespace name"), "{m}")
            }
            other => panic!("{ns:?}: {other:?}"),
        }
    }
    assert!(a.server.requests().is_empty());
}

#[tokio::test]
async fn a_hanging_authorization_call_is_unavailable_within_the_deadline() {
    let api = CrdApi::empty();
    api.fail_always(Route::Lsar, Fault::Hang);
    let a = start_authz(&api, config(10_000, 10_000, 250)).await;
    let start = Instant::now();
    let got = a.authz.may_use("demo", "webapp", "webapp01").await;
    let took = start.elapsed();
    match got {
        Err(LookupError::Unavailable(m)) => {
            assert!(m.contains("did not answer within 250ms"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn answers_are_reused_within_their_ttl_and_asked_again_after() {
    let api = CrdApi::empty();
    api.set_authz("demo", "webapp", "webapp01", AuthzAnswer::allowed("ok"));
    let a = start_authz(&api, config(400, 0, 1000)).await;
    for _ in 0..10 {
        assert!(a.allowed("demo", "webapp", "webapp01").await);
    }
    assert_eq!(api.calls(Route::Lsar), 1, "allowed answer cached");
    // Denied TTL 0: every lookup of a denied answer asks again.
    for _ in 0..3 {
        assert!(!a.allowed("demo", "default", "webapp01").await);
    }
    assert_eq!(api.calls(Route::Lsar), 4, "denied answers not cached");
    // Other keys are separate entries.
    a.authz
        .may_use("other", "webapp", "webapp01")
        .await
        .expect("ok");
    a.authz
        .may_use("demo", "webapp", "webapp02")
        .await
        .expect("ok");
    assert_eq!(api.calls(Route::Lsar), 6);
    // After the TTL the answer is asked again (and a revoked permission is seen).
    api.set_authz("demo", "webapp", "webapp01", AuthzAnswer::no_opinion());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(!a.allowed("demo", "webapp", "webapp01").await);
    assert_eq!(api.calls(Route::Lsar), 7);
    assert_metric(&a.registry, "gmsa_webhook_authz_cache_hits_total 9");
    assert_metric(&a.registry, "gmsa_webhook_authz_cache_misses_total 7");
}

#[tokio::test]
async fn denied_answers_have_their_own_ttl() {
    let api = CrdApi::empty();
    let a = start_authz(&api, config(0, 300, 1000)).await;
    for _ in 0..5 {
        assert!(!a.allowed("demo", "default", "webapp01").await);
    }
    assert_eq!(api.calls(Route::Lsar), 1);
    // Granted meanwhile: seen once the denied TTL is over.
    api.set_authz(
        "demo",
        "default",
        "webapp01",
        AuthzAnswer::allowed("granted"),
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(a.allowed("demo", "default", "webapp01").await);
    // Allowed TTL 0: asked again every time.
    assert!(a.allowed("demo", "default", "webapp01").await);
    assert_eq!(api.calls(Route::Lsar), 3);
}

#[tokio::test]
async fn fifty_concurrent_identical_lookups_make_one_call() {
    let api = CrdApi::empty();
    api.set_authz("demo", "webapp", "webapp01", AuthzAnswer::allowed("ok"));
    api.fail_next(Route::Lsar, 1, Fault::Delay(Duration::from_millis(300)));
    // TTL 0: the sharing comes from coalescing alone, not from the cache.
    let a = start_authz(&api, config(0, 0, 2000)).await;
    let lookups = (0..50).map(|_| a.authz.may_use("demo", "webapp", "webapp01"));
    let results = futures::future::join_all(lookups).await;
    assert!(results.iter().all(|r| r.as_ref().is_ok_and(|d| d.allowed)));
    assert_eq!(api.calls(Route::Lsar), 1);
}

/// The same for access reviews: the first caller dropped mid-call, the next gets a real
/// answer, not an instant error from an abandoned call.
#[tokio::test]
async fn a_dropped_access_review_caller_leaves_no_expired_lookup() {
    let api = CrdApi::empty();
    api.set_authz("demo", "webapp", "webapp01", AuthzAnswer::allowed("ok"));
    api.fail_next(Route::Lsar, 1, Fault::Delay(Duration::from_millis(1000)));
    let a = start_authz(&api, config(0, 0, 300)).await;
    let first = tokio::time::timeout(
        Duration::from_millis(50),
        a.authz.may_use("demo", "webapp", "webapp01"),
    )
    .await;
    assert!(first.is_err(), "the first caller is dropped mid-call");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = a.authz.may_use("demo", "webapp", "webapp01").await;
    assert!(second.is_ok_and(|d| d.allowed));
}

#[tokio::test]
async fn a_cold_burst_across_100_service_accounts_makes_one_call_each() {
    let api = CrdApi::empty();
    for i in 0..100 {
        api.set_authz(
            "demo",
            &format!("sa{i}"),
            "webapp01",
            AuthzAnswer::allowed("ok"),
        );
    }
    // Every call takes 20 ms: the burst's lookups of one key all land while its call runs.
    api.fail_always(Route::Lsar, Fault::Delay(Duration::from_millis(20)));
    let a = start_authz(&api, AuthorizerConfig::default()).await;
    let start = Instant::now();
    let lookups = (0..2000).map(|i| {
        let sa = format!("sa{}", i % 100);
        let authz = &a.authz;
        async move { authz.may_use("demo", &sa, "webapp01").await }
    });
    let results = futures::future::join_all(lookups).await;
    let took = start.elapsed();
    assert!(results.iter().all(|r| r.as_ref().is_ok_and(|d| d.allowed)));
    assert_eq!(
        api.calls(Route::Lsar),
        100,
        "one access review per service account"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_metric(&a.registry, "gmsa_webhook_authz_cache_misses_total 100");
    assert_metric(&a.registry, "gmsa_webhook_authz_cache_hits_total 1900");
}

#[tokio::test]
async fn concurrent_lookups_share_a_failure_too() {
    let api = CrdApi::empty();
    api.fail_next(Route::Lsar, 1, Fault::Delay(Duration::from_millis(200)));
    api.fail_next(Route::Lsar, 1, Fault::Status(500));
    let a = start_authz(&api, config(10_000, 10_000, 2000)).await;
    // The first (delayed) call answers the default "not allowed"; the 20 concurrent lookups
    // of another key then share the one call that fails.
    let d = a.authz.may_use("demo", "x", "s").await.expect("first");
    assert!(!d.allowed);
    let lookups = (0..20).map(|_| a.authz.may_use("demo", "y", "s"));
    let results = futures::future::join_all(lookups).await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(LookupError::Unavailable(_)))));
    assert_eq!(api.calls(Route::Lsar), 2);
}

#[tokio::test]
async fn an_empty_collection_syncs_to_an_empty_cache() {
    // The path the fake serves is the one kube builds for the CRD type.
    assert_eq!(SPECS_PATH, "/apis/windows.k8s.io/v1/gmsacredentialspecs");
    let api = CrdApi::empty();
    let s = synced_store(&api).await;
    assert_eq!(s.store.len(), 0);
    assert!(s.server.count("GET", SPECS_PATH) >= 1);
}
