//! Faults of the API server, seen through whole admission reviews: the real `Admitter` over
//! the Kubernetes backend, a real `kube::Client`, and testkit's fake API server (`CrdApi`)
//! refusing connections, answering 500, hanging, closing mid-response, answering slower than
//! our deadline, breaking the watch (with and without 410 Gone), and changing or deleting a
//! spec while pods are admitted.
//!
//! Expected everywhere: GMSA pods denied with a clear 5xx message within our deadline (far
//! below the API server's 10 s webhook timeout), pods without GMSA unaffected, recovery
//! without a restart, and no stale spec once the watch caught up.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use gmsa_testkit::crd_api::{captured_credspec, AuthzAnswer, CrdApi, Fault, Route};
use gmsa_testkit::{fixture, FakeApiServer};
use gmsa_webhook::admission::Hook;
use gmsa_webhook::admission_review::{Admitter, Options};
use gmsa_webhook::kube_backend::{
    AuthorizerConfig, KubeAuthorizer, KubeSpecStore, SpecStoreConfig,
};
use gmsa_webhook::lookup::SpecStore;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};

/// Our per-call API deadline in these tests.
const DEADLINE: Duration = Duration::from_millis(300);
/// The most one review may take while the API server misbehaves (a few calls, each bounded
/// by [`DEADLINE`]); the API server's own webhook timeout is 10 s.
const REVIEW_BOUND: Duration = Duration::from_secs(2);
const MUTATE: &str = "k8s-1.32/admission/00-mutate-create-pod-iis-gmsa.json";
const VALIDATE: &str = "k8s-1.32/admission/01-validate-create-pod-iis-gmsa.json";

struct Rig {
    _server: Option<FakeApiServer>,
    store: Arc<KubeSpecStore>,
    task: tokio::task::JoinHandle<()>,
    admitter: Admitter,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn rig_with_client(client: kube::Client, server: Option<FakeApiServer>) -> Rig {
    rig_with_store_config(
        client,
        server,
        SpecStoreConfig {
            timeout: DEADLINE,
            ..SpecStoreConfig::default()
        },
    )
}

fn rig_with_store_config(
    client: kube::Client,
    server: Option<FakeApiServer>,
    config: SpecStoreConfig,
) -> Rig {
    let mut registry = Registry::default();
    let (store, task) = KubeSpecStore::start(client.clone(), config, &mut registry);
    let authz = KubeAuthorizer::new(
        client,
        AuthorizerConfig {
            allowed_ttl: Duration::from_secs(30),
            denied_ttl: Duration::from_secs(5),
            max_entries: 1000,
            timeout: DEADLINE,
        },
        &mut registry,
    );
    let admitter = Admitter::new(store.clone(), Arc::new(authz), Options::default());
    Rig {
        _server: server,
        store,
        task,
        admitter,
    }
}

/// The captured collection, `webapp` in `demo` may use `webapp01`.
fn captured_api() -> CrdApi {
    let api = CrdApi::from_capture();
    api.set_authz(
        "demo",
        "webapp",
        "webapp01",
        AuthzAnswer::allowed("RBAC: allowed"),
    );
    api
}

async fn rig(api: &CrdApi) -> Rig {
    let server = FakeApiServer::start(api.router()).await;
    rig_with_client(server.client(), Some(server))
}

async fn synced_rig(api: &CrdApi) -> Rig {
    let r = rig(api).await;
    eventually("the cache syncs", || async { r.store.ready().is_ok() }).await;
    r
}

async fn eventually<F, Fut>(what: &str, cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    gmsa_testkit::eventually(what, Duration::from_secs(8), cond).await
}

fn body(rel: &str) -> Vec<u8> {
    serde_json::to_vec(&fixture(rel)["body"]).expect("serialize review")
}

/// The same review with every `windowsOptions` (and the managedFields that mention them)
/// removed from the pod.
fn without_gmsa(rel: &str) -> Vec<u8> {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("windowsOptions");
                m.remove("managedFields");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut review = fixture(rel)["body"].clone();
    strip(&mut review["request"]["object"]);
    let text = review.to_string();
    assert!(!text.contains("gmsaCredentialSpec"), "stripped");
    text.into_bytes()
}

/// The review's `response` and how long it took.
async fn review(rig: &Rig, kind: Hook, body: &[u8]) -> (Value, Duration) {
    let start = Instant::now();
    let handled = rig.admitter.handle(kind, body).await;
    let took = start.elapsed();
    let v: Value = serde_json::from_slice(&handled.body).expect("response JSON");
    (v["response"].clone(), took)
}

/// The credspec contents the mutate response inlines into the first patched place.
fn inlined(response: &Value) -> Option<Value> {
    let patch = response["patch"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .expect("base64 patch");
    let ops: Vec<Value> = serde_json::from_slice(&bytes).expect("patch JSON");
    let op = ops.iter().find(|o| {
        o["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("gmsaCredentialSpec"))
    })?;
    serde_json::from_str(op["value"].as_str()?).ok()
}

/// GMSA pods are denied with a 5xx saying the API server could not answer, in time; pods
/// without GMSA are admitted at once.
async fn assert_fails_closed(rig: &Rig, fault: &str) {
    for (kind, rel) in [(Hook::Mutate, MUTATE), (Hook::Validate, VALIDATE)] {
        let (resp, took) = review(rig, kind, &body(rel)).await;
        assert_eq!(resp["allowed"], false, "{fault} {kind:?}: {resp}");
        let code = resp["status"]["code"].as_u64().unwrap_or_default();
        assert!(
            (500..600).contains(&code),
            "{fault} {kind:?}: code {code}: {resp}"
        );
        let message = resp["status"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("webapp01") && message.to_lowercase().contains("api server"),
            "{fault} {kind:?}: message should name the spec and the API server: {message}"
        );
        assert!(took < REVIEW_BOUND, "{fault} {kind:?}: took {took:?}");

        let (resp, took) = review(rig, kind, &without_gmsa(rel)).await;
        assert_eq!(
            resp["allowed"], true,
            "{fault} {kind:?} without GMSA: {resp}"
        );
        assert!(
            took < DEADLINE,
            "{fault} {kind:?} without GMSA took {took:?}"
        );
    }
}

async fn assert_admits(rig: &Rig) {
    let (resp, _) = review(rig, Hook::Mutate, &body(MUTATE)).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    assert_eq!(inlined(&resp), Some(captured_credspec()), "{resp}");
    let (resp, _) = review(rig, Hook::Validate, &body(VALIDATE)).await;
    assert_eq!(resp["allowed"], true, "{resp}");
}

#[tokio::test]
async fn healthy_api_admits_the_captured_pods() {
    let api = captured_api();
    let r = synced_rig(&api).await;
    assert_admits(&r).await;
}

#[tokio::test]
async fn api_server_refusing_connections_fails_closed() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let uri = format!("http://{addr}").parse().expect("uri");
    let client = kube::Client::try_from(kube::Config::new(uri)).expect("client");
    let r = rig_with_client(client, None);
    eventually("the list error is reported", || async {
        r.store
            .ready()
            .is_err_and(|e| e.contains("list of gmsacredentialspecs failed"))
    })
    .await;
    assert_fails_closed(&r, "connection refused").await;
}

#[tokio::test]
async fn api_server_answering_500_fails_closed_then_recovers_without_restart() {
    let api = captured_api();
    for route in [Route::List, Route::Get, Route::Lsar] {
        api.fail_always(route, Fault::Status(500));
    }
    let r = rig(&api).await;
    assert_fails_closed(&r, "500").await;
    assert!(r.store.ready().is_err());
    api.clear_faults();
    eventually("the cache syncs after the outage", || async {
        r.store.ready().is_ok()
    })
    .await;
    assert_admits(&r).await;
}

#[tokio::test]
async fn hanging_api_server_fails_closed_within_the_deadline() {
    let api = captured_api();
    let r = synced_rig(&api).await;
    // Synced, but the spec is not in memory (created a moment ago) and every call hangs.
    api.apply_unwatched("webapp01-new", Some(json!({"x": 1})));
    for route in [Route::Get, Route::Lsar] {
        api.fail_always(route, Fault::Hang);
    }
    // The cached spec still serves mutate; validate needs the (hanging) access review.
    let (resp, _) = review(&r, Hook::Mutate, &body(MUTATE)).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    let (resp, took) = review(&r, Hook::Validate, &body(VALIDATE)).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert!(took >= DEADLINE && took < REVIEW_BOUND, "{took:?}");
    // And a spec that needs a live GET is denied in time too.
    api.delete("webapp01");
    eventually("the deletion is seen", || async { r.store.is_empty() }).await;
    assert_fails_closed(&r, "hang").await;
}

#[tokio::test]
async fn responses_closed_midway_fail_closed() {
    let api = captured_api();
    for route in [Route::List, Route::Get, Route::Lsar] {
        api.fail_always(route, Fault::CloseMidResponse);
    }
    let r = rig(&api).await;
    assert_fails_closed(&r, "closed mid-response").await;
    api.clear_faults();
    eventually("the cache syncs", || async { r.store.ready().is_ok() }).await;
    assert_admits(&r).await;
}

#[tokio::test]
async fn an_api_server_slower_than_our_deadline_fails_closed_a_slow_one_within_it_admits() {
    let api = captured_api();
    let r = synced_rig(&api).await;
    api.fail_always(Route::Lsar, Fault::Delay(DEADLINE * 2));
    let (resp, took) = review(&r, Hook::Validate, &body(VALIDATE)).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert!(took < REVIEW_BOUND, "{took:?}");
    api.fail_always(Route::Lsar, Fault::Delay(DEADLINE / 4));
    let (resp, _) = review(&r, Hook::Validate, &body(VALIDATE)).await;
    assert_eq!(resp["allowed"], true, "{resp}");
}

#[tokio::test]
async fn reviews_keep_succeeding_while_the_watch_breaks_with_and_without_410() {
    let api = captured_api();
    let r = synced_rig(&api).await;
    let mut served = 0;
    // Round 0: a clean break, the watch resumes from its resourceVersion. Round 1: the watch
    // comes back late, after a change it missed and a compaction: 410 Gone, then a re-list.
    for round in 0..2 {
        eventually("a watch is open", || async { api.open_watches() == 1 }).await;
        if round == 1 {
            api.fail_next(Route::Watch, 1, Fault::Delay(Duration::from_millis(200)));
        }
        api.break_watches();
        if round == 1 {
            eventually("the watch is down", || async { api.open_watches() == 0 }).await;
            api.apply("webapp01", Some(captured_credspec()));
            api.compact();
        }
        let until = Instant::now() + Duration::from_millis(400);
        while Instant::now() < until {
            assert_admits(&r).await;
            served += 1;
        }
    }
    eventually("the re-list after 410", || async {
        api.calls(Route::List) == 2
    })
    .await;
    eventually("the watch is back", || async { api.open_watches() == 1 }).await;
    assert_admits(&r).await;
    assert!(served > 10, "{served}");
}

#[tokio::test]
async fn a_changed_spec_is_inlined_and_never_the_old_one_once_caught_up() {
    let api = captured_api();
    let r = synced_rig(&api).await;
    assert_admits(&r).await;
    let mut changed = captured_credspec();
    changed["DomainJoinConfig"]["NetBiosName"] = json!("CONTOSO2");
    api.apply("webapp01", Some(changed.clone()));
    eventually("the change is inlined", || async {
        let (resp, _) = review(&r, Hook::Mutate, &body(MUTATE)).await;
        inlined(&resp) == Some(changed.clone())
    })
    .await;
    for _ in 0..50 {
        let (resp, _) = review(&r, Hook::Mutate, &body(MUTATE)).await;
        assert_eq!(inlined(&resp), Some(changed.clone()), "stale spec served");
    }
}

#[tokio::test]
async fn a_deleted_spec_is_denied_404_once_the_watch_caught_up() {
    let api = captured_api();
    let r = synced_rig(&api).await;
    assert_admits(&r).await;
    api.delete("webapp01");
    eventually("the deletion is seen", || async { r.store.is_empty() }).await;
    let (resp, _) = review(&r, Hook::Mutate, &body(MUTATE)).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], 404, "{resp}");
    // Re-created: admitted again (the live re-check before denying would catch even a lag).
    api.apply("webapp01", Some(captured_credspec()));
    let (resp, _) = review(&r, Hook::Mutate, &body(MUTATE)).await;
    assert_eq!(resp["allowed"], true, "{resp}");
}

/// An authorizer that failed while evaluating (`allowed: false` with `evaluationError`) is a
/// denial (403) whose message carries the evaluation error; an access review answered with no
/// status decided nothing: 503 "could not be determined", never "not authorized".
#[tokio::test]
async fn authorizer_failures_are_not_dressed_as_plain_denials() {
    let api = captured_api();
    api.set_authz(
        "demo",
        "webapp",
        "webapp01",
        AuthzAnswer::evaluation_failed("webhook authorizer: connection refused"),
    );
    let r = synced_rig(&api).await;
    let (resp, _) = review(&r, Hook::Validate, &body(VALIDATE)).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], 403, "{resp}");
    let message = resp["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("evaluation error: webhook authorizer: connection refused"),
        "the denial carries the evaluation error: {message}"
    );

    api.set_authz("demo", "webapp", "webapp02", AuthzAnswer::without_status());
    let body = String::from_utf8(body(VALIDATE))
        .expect("utf-8")
        .replace("webapp01", "webapp02");
    api.apply("webapp02", Some(captured_credspec()));
    let (resp, _) = review(&r, Hook::Validate, body.as_bytes()).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], 503, "{resp}");
    let message = resp["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("could not be determined") && !message.contains("not authorized"),
        "no status is undetermined, not a denial: {message}"
    );
}

/// The watch breaks and stays broken (every re-watch and re-list fails), then the spec is
/// deleted: once the outage is older than --max-cache-staleness, cached lookups are read live,
/// so no pod gets the deleted spec inlined; /ready's store says why; recovery goes back to
/// memory.
#[tokio::test]
async fn a_spec_deleted_while_the_watch_is_broken_is_not_inlined_past_the_staleness_bound() {
    let bound = Duration::from_millis(500);
    let api = captured_api();
    let server = FakeApiServer::start(api.router()).await;
    let r = rig_with_store_config(
        server.client(),
        Some(server),
        SpecStoreConfig {
            timeout: DEADLINE,
            max_staleness: bound,
        },
    );
    eventually("the cache syncs", || async { r.store.ready().is_ok() }).await;
    assert_admits(&r).await;
    assert!(r.store.degraded().is_none());

    api.fail_always(Route::Watch, Fault::Status(500));
    api.fail_always(Route::List, Fault::Status(500));
    api.break_watches();
    eventually("the watch is down", || async {
        r.store.watch_error().is_some()
    })
    .await;
    let broke = Instant::now();
    api.delete("webapp01");
    eventually("the store says it is stale", || async {
        r.store.degraded().is_some()
    })
    .await;
    assert!(
        broke.elapsed() < bound + Duration::from_secs(2),
        "stale only after the bound, and soon after it: {:?}",
        broke.elapsed()
    );
    let why = r.store.degraded().unwrap_or_default();
    assert!(why.contains("read live") && why.contains("500"), "{why}");
    assert!(r.store.ready().is_ok(), "stale is degraded, not unready");
    // (Validate compares with the spec only when contents are pre-set; mutate inlines.)
    let (resp, _) = review(&r, Hook::Mutate, &body(MUTATE)).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], 404, "{resp}");
    assert_eq!(inlined(&resp), None, "{resp}");

    // Recovery: a completed re-list makes the cache current and used again.
    api.apply("webapp01", Some(captured_credspec()));
    api.clear_faults();
    eventually("the watch recovers", || async {
        r.store.degraded().is_none() && r.store.watch_error().is_none()
    })
    .await;
    assert_admits(&r).await;
}
