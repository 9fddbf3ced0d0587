//! [`CrdApi`]: a stateful fake of the `gmsacredentialspecs` collection and of
//! `localsubjectaccessreviews`, answering like the captures in `fixtures/apiserver/k8s-1.32/api/`.
//!
//! Mount [`CrdApi::router`] in a [`crate::FakeApiServer`] (merge it with other routes if a test
//! needs more) and drive it from the test:
//! - the collection: list with `metadata.resourceVersion` (pages by `limit`/`continue`); watch
//!   from a resourceVersion streaming `ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK` lines;
//!   `ERROR 410 Expired` for a resourceVersion older than the last [`CrdApi::compact`]; GET by
//!   name (200, 404 like the capture);
//! - mutations ([`CrdApi::apply`], [`CrdApi::delete`], [`CrdApi::bookmark`]) reach open watches;
//!   [`CrdApi::break_watches`] ends every open watch stream cleanly;
//! - access reviews answered per (namespace, service account, spec) ([`CrdApi::set_authz`]),
//!   not allowed by default (like `lsar-response-default.json`), every request body recorded;
//! - faults per route ([`Route`], [`Fault`]): an error status, a hang, a response closed
//!   half-way, a delay; for the next N calls or until cleared.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch};

mod faults;
mod routes;

use routes::{by_name, collection, lsar};

/// Path of the `gmsacredentialspecs` collection (cluster-scoped, `windows.k8s.io/v1`).
pub const SPECS_PATH: &str = "/apis/windows.k8s.io/v1/gmsacredentialspecs";

/// Path of one spec, e.g. `/apis/windows.k8s.io/v1/gmsacredentialspecs/webapp01`.
pub fn spec_path(name: &str) -> String {
    format!("{SPECS_PATH}/{name}")
}

/// Path of the LocalSubjectAccessReview collection of a namespace.
pub fn lsar_path(namespace: &str) -> String {
    format!("/apis/authorization.k8s.io/v1/namespaces/{namespace}/localsubjectaccessreviews")
}

/// The API calls [`CrdApi`] serves, for faults and call counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET` of the collection without `watch`.
    List,
    /// `GET` of the collection with `watch=true`.
    Watch,
    /// `GET` of one spec by name.
    Get,
    /// `POST` of a LocalSubjectAccessReview.
    Lsar,
}

/// A fault injected into a route.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Answer with this HTTP status and a `metav1.Status` body (e.g. 403, 500, 503).
    Status(u16),
    /// Never answer (the connection stays open).
    Hang,
    /// Send the status line and half of the body, then abort the connection.
    CloseMidResponse,
    /// Wait this long, then answer normally (a slow API server).
    Delay(Duration),
}

/// How the fake authorizer answers one access review.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuthzAnswer {
    /// `status.allowed`.
    pub allowed: bool,
    /// `status.denied` (an explicit deny from an authorizer).
    pub denied: bool,
    /// `status.reason`, if any.
    pub reason: Option<String>,
    /// `status.evaluationError`, if any.
    pub evaluation_error: Option<String>,
    /// Answer with no `status` at all (an authorizer chain that decided nothing).
    pub no_status: bool,
}

impl AuthzAnswer {
    /// Allowed with an RBAC-style reason, like `lsar-response-webapp.json`.
    pub fn allowed(reason: &str) -> Self {
        Self {
            allowed: true,
            reason: Some(reason.to_string()),
            ..Self::default()
        }
    }

    /// Not allowed, no opinion and no reason, like `lsar-response-default.json`.
    pub fn no_opinion() -> Self {
        Self::default()
    }

    /// Explicitly denied with a reason.
    pub fn denied(reason: &str) -> Self {
        Self {
            denied: true,
            reason: Some(reason.to_string()),
            ..Self::default()
        }
    }

    /// Not allowed because an authorizer failed while evaluating (`evaluationError`).
    pub fn evaluation_failed(error: &str) -> Self {
        Self {
            evaluation_error: Some(error.to_string()),
            ..Self::default()
        }
    }

    /// A 201 answer whose body has no `status`.
    pub fn without_status() -> Self {
        Self {
            no_status: true,
            ..Self::default()
        }
    }
}

/// One event kept for watches: its resourceVersion and the JSON line sent.
#[derive(Clone, Debug)]
struct Line {
    rv: u64,
    bookmark: bool,
    text: Bytes,
}

#[derive(Default)]
struct Faults {
    /// Faults for the next calls, consumed in order.
    next: VecDeque<Fault>,
    /// A fault for every call once `next` is empty, until cleared.
    always: Option<Fault>,
}

struct Inner {
    rv: u64,
    objects: BTreeMap<String, Value>,
    /// Events after the initial state, for watches that start at an older resourceVersion.
    history: Vec<Line>,
    /// Watches from a resourceVersion below this answer `410 Expired`.
    oldest_rv: u64,
    faults: HashMap<Route, Faults>,
    authz: HashMap<(String, String, String), AuthzAnswer>,
    lsar_requests: Vec<Value>,
}

struct Shared {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Line>,
    breaker: watch::Sender<u64>,
    calls: HashMap<Route, AtomicUsize>,
    open_watches: AtomicUsize,
}

/// A fake `gmsacredentialspecs` collection and access-review endpoint (cheap to clone; clones
/// share state).
#[derive(Clone)]
pub struct CrdApi {
    shared: Arc<Shared>,
}

impl CrdApi {
    /// An empty collection at resourceVersion 100.
    pub fn empty() -> Self {
        Self::with_objects(100, Vec::new())
    }

    /// The collection as captured (`k8s-1.32/api/gmsacredentialspecs-list.json`: `webapp01` at
    /// list resourceVersion 232).
    pub fn from_capture() -> Self {
        let list = crate::fixture("k8s-1.32/api/gmsacredentialspecs-list.json");
        let rv = list["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        let items = list["items"].as_array().cloned().unwrap_or_default();
        Self::with_objects(rv, items)
    }

    fn with_objects(rv: u64, items: Vec<Value>) -> Self {
        let objects = items
            .into_iter()
            .filter_map(|o| Some((o["metadata"]["name"].as_str()?.to_string(), o)))
            .collect();
        let (events, _) = broadcast::channel(1024);
        let (breaker, _) = watch::channel(0);
        let calls = [Route::List, Route::Watch, Route::Get, Route::Lsar]
            .into_iter()
            .map(|r| (r, AtomicUsize::new(0)))
            .collect();
        Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    rv,
                    objects,
                    history: Vec::new(),
                    oldest_rv: rv,
                    faults: HashMap::new(),
                    authz: HashMap::new(),
                    lsar_requests: Vec::new(),
                }),
                events,
                breaker,
                calls,
                open_watches: AtomicUsize::new(0),
            }),
        }
    }

    /// The routes: the collection, specs by name, and LocalSubjectAccessReviews.
    pub fn router(&self) -> Router {
        Router::new()
            .route(SPECS_PATH, get(collection))
            .route(&format!("{SPECS_PATH}/{{name}}"), get(by_name))
            .route(
                "/apis/authorization.k8s.io/v1/namespaces/{ns}/localsubjectaccessreviews",
                post(lsar),
            )
            .with_state(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates or replaces the spec `name` with this `credspec` (`None`: no `credspec` key),
    /// sending `ADDED` or `MODIFIED` to open watches. Returns the new resourceVersion.
    pub fn apply(&self, name: &str, credspec: Option<Value>) -> u64 {
        self.apply_object(spec_object(name, credspec))
    }

    /// Creates or replaces a raw object (its `metadata.name` names it); the fake sets
    /// `metadata.resourceVersion`. Returns the new resourceVersion.
    pub fn apply_object(&self, mut object: Value) -> u64 {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut inner = self.lock();
        inner.rv += 1;
        let rv = inner.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let kind = if inner.objects.contains_key(&name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        inner.objects.insert(name, object.clone());
        self.emit(&mut inner, rv, json!({"type": kind, "object": object}));
        rv
    }

    /// Creates or replaces the spec `name` in the collection (list and GET see it) without
    /// telling open watches: a watch that lags behind. Returns the new resourceVersion.
    pub fn apply_unwatched(&self, name: &str, credspec: Option<Value>) -> u64 {
        let mut object = spec_object(name, credspec);
        let mut inner = self.lock();
        inner.rv += 1;
        let rv = inner.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        inner.objects.insert(name.to_string(), object);
        rv
    }

    /// Deletes the spec `name` (sending `DELETED`); `None` when there was none.
    pub fn delete(&self, name: &str) -> Option<u64> {
        let mut inner = self.lock();
        let mut object = inner.objects.remove(name)?;
        inner.rv += 1;
        let rv = inner.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.emit(&mut inner, rv, json!({"type": "DELETED", "object": object}));
        Some(rv)
    }

    /// Sends a `BOOKMARK` at the current resourceVersion, as in the capture.
    pub fn bookmark(&self) {
        let inner = self.lock();
        let rv = inner.rv;
        let event = json!({"type": "BOOKMARK", "object": {
            "apiVersion": "windows.k8s.io/v1",
            "kind": "GMSACredentialSpec",
            "metadata": {"resourceVersion": rv.to_string()},
        }});
        // Not kept in history: a bookmark only matters to the watches open now.
        let _ = self.shared.events.send(line(rv, &event));
        drop(inner);
    }

    fn emit(&self, inner: &mut Inner, rv: u64, event: Value) {
        let l = line(rv, &event);
        inner.history.push(l.clone());
        let _ = self.shared.events.send(l);
    }

    /// Forgets the event history: a watch from any resourceVersion older than the current one
    /// gets `410 Expired` (as after etcd compaction).
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.oldest_rv = inner.rv;
    }

    /// Ends every open watch stream cleanly (as the API server does at its timeout or on
    /// restart).
    pub fn break_watches(&self) {
        self.shared.breaker.send_modify(|g| *g += 1);
    }

    /// How many watch streams are open now.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Injects `fault` into the next `times` calls of `route` (queued after earlier ones).
    pub fn fail_next(&self, route: Route, times: usize, fault: Fault) {
        let mut inner = self.lock();
        let f = inner.faults.entry(route).or_default();
        f.next.extend(std::iter::repeat_n(fault, times));
    }

    /// Injects `fault` into every call of `route` until [`CrdApi::clear_faults`].
    pub fn fail_always(&self, route: Route, fault: Fault) {
        self.lock().faults.entry(route).or_default().always = Some(fault);
    }

    /// Removes every fault of every route.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Sets how the access review for `system:serviceaccount:{namespace}:{service_account}`
    /// using `spec` is answered (default: not allowed, no reason).
    pub fn set_authz(
        &self,
        namespace: &str,
        service_account: &str,
        spec: &str,
        answer: AuthzAnswer,
    ) {
        self.lock().authz.insert(
            (namespace.into(), service_account.into(), spec.into()),
            answer,
        );
    }

    /// Every LocalSubjectAccessReview body received, in order.
    pub fn lsar_requests(&self) -> Vec<Value> {
        self.lock().lsar_requests.clone()
    }

    /// How many calls `route` received (faulted ones included).
    pub fn calls(&self, route: Route) -> usize {
        self.shared
            .calls
            .get(&route)
            .map(|c| c.load(Ordering::SeqCst))
            .unwrap_or(0)
    }

    /// Counts the call and returns the fault to apply to it, if any.
    fn begin(&self, route: Route) -> Option<Fault> {
        if let Some(c) = self.shared.calls.get(&route) {
            c.fetch_add(1, Ordering::SeqCst);
        }
        let mut inner = self.lock();
        let f = inner.faults.get_mut(&route)?;
        f.next.pop_front().or_else(|| f.always.clone())
    }
}

fn line(rv: u64, event: &Value) -> Line {
    let mut text = event.to_string();
    text.push('\n');
    Line {
        rv,
        bookmark: event["type"] == "BOOKMARK",
        text: Bytes::from(text),
    }
}

/// A `GMSACredentialSpec` object like the captured `webapp01` (no managedFields), with this
/// name and `credspec` (`None`: no `credspec` key). `metadata.resourceVersion` is set by
/// [`CrdApi::apply`].
pub fn spec_object(name: &str, credspec: Option<Value>) -> Value {
    let mut object = json!({
        "apiVersion": "windows.k8s.io/v1",
        "kind": "GMSACredentialSpec",
        "metadata": {
            "name": name,
            "uid": format!("00000000-0000-4000-8000-{:012x}", fnv(name)),
            "generation": 1,
            "creationTimestamp": "2026-11-24T13:14:40Z",
        },
    });
    if let Some(c) = credspec {
        object["credspec"] = c;
    }
    object
}

/// The `credspec` of the captured `webapp01`.
pub fn captured_credspec() -> Value {
    crate::fixture("k8s-1.32/api/gmsacredentialspec-get.json")["credspec"].clone()
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3) & 0xffff_ffff_ffff
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{fixture, fixture_text, FakeApiServer};

    async fn get_text(server: &FakeApiServer, uri: &str) -> Result<String, kube::Error> {
        let req = axum::http::Request::get(uri)
            .body(Vec::new())
            .expect("request");
        server.client().request_text(req).await
    }

    fn keys(v: &Value) -> Vec<String> {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn list_answers_the_captured_collection() {
        let api = CrdApi::from_capture();
        let server = FakeApiServer::start(api.router()).await;
        let got: Value = serde_json::from_str(&get_text(&server, SPECS_PATH).await.expect("list"))
            .expect("JSON");
        let want = fixture("k8s-1.32/api/gmsacredentialspecs-list.json");
        assert_eq!(got["metadata"], want["metadata"]);
        assert_eq!(got["items"], want["items"]);
        assert_eq!(got["kind"], "GMSACredentialSpecList");
        assert_eq!(api.calls(Route::List), 1);
    }

    #[tokio::test]
    async fn watch_lines_have_the_captured_shape_and_old_versions_expire() {
        let api = CrdApi::from_capture();
        let server = FakeApiServer::start(api.router()).await;
        let captured: Vec<Value> = fixture_text("k8s-1.32/api/gmsacredentialspecs-watch.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).expect("line"))
            .collect();
        api.apply_object(captured[0]["object"].clone());
        api.apply_object(captured[1]["object"].clone());
        api.delete("webapp02");
        api.bookmark(); // only for open watches: not replayed below
        let text = get_text(
            &server,
            &format!("{SPECS_PATH}?watch=true&resourceVersion=232&allowWatchBookmarks=true&timeoutSeconds=1"),
        )
        .await
        .expect("watch");
        let got: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("line"))
            .collect();
        let types: Vec<&str> = got.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"]);
        for (g, c) in got.iter().zip(&captured) {
            assert_eq!(keys(g), keys(c));
            assert_eq!(g["object"]["credspec"], c["object"]["credspec"]);
        }
        let rvs: Vec<&str> = got
            .iter()
            .filter_map(|e| e["object"]["metadata"]["resourceVersion"].as_str())
            .collect();
        assert_eq!(rvs, ["233", "234", "235"]);

        api.compact();
        let text = get_text(
            &server,
            &format!("{SPECS_PATH}?watch=true&resourceVersion=1"),
        )
        .await
        .expect("watch");
        let got: Value = serde_json::from_str(text.trim()).expect("one line");
        let want: Value = serde_json::from_str(
            fixture_text("k8s-1.32/api/gmsacredentialspecs-watch-too-old.jsonl").trim(),
        )
        .expect("capture");
        assert_eq!(got["type"], want["type"]);
        assert_eq!(keys(&got["object"]), keys(&want["object"]));
        assert_eq!(got["object"]["code"], 410);
        assert_eq!(
            got["object"]["message"],
            "too old resource version: 1 (235)"
        );
    }

    #[tokio::test]
    async fn get_by_name_and_faults() {
        let api = CrdApi::from_capture();
        let server = FakeApiServer::start(api.router()).await;
        let got: Value = serde_json::from_str(
            &get_text(&server, &spec_path("webapp01"))
                .await
                .expect("get"),
        )
        .expect("JSON");
        assert_eq!(got["credspec"], captured_credspec());
        let err = get_text(&server, &spec_path("nope"))
            .await
            .expect_err("404");
        match err {
            kube::Error::Api(s) => {
                let want = fixture("k8s-1.32/api/gmsacredentialspec-get-404.json");
                assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
                assert_eq!(s.message, want["message"].as_str().unwrap_or_default());
            }
            other => panic!("{other}"),
        }
        api.fail_next(Route::Get, 1, Fault::Status(403));
        match get_text(&server, &spec_path("webapp01")).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 403);
                assert!(s
                    .message
                    .contains("cannot get resource \"gmsacredentialspecs\""));
            }
            other => panic!("{other:?}"),
        }
        api.fail_next(Route::Get, 1, Fault::CloseMidResponse);
        assert!(get_text(&server, &spec_path("webapp01")).await.is_err());
        assert!(get_text(&server, &spec_path("webapp01")).await.is_ok());
        assert_eq!(api.calls(Route::Get), 5);
    }

    #[tokio::test]
    async fn access_reviews_are_answered_like_the_capture() {
        let api = CrdApi::empty();
        let server = FakeApiServer::start(api.router()).await;
        let post = |body: &Value| {
            axum::http::Request::post(lsar_path("demo"))
                .header("content-type", "application/json")
                .body(body.to_string().into_bytes())
                .expect("request")
        };
        let request = fixture("k8s-1.32/api/lsar-request-default.json");
        let got: Value = server
            .client()
            .request(post(&request))
            .await
            .expect("review");
        let want = fixture("k8s-1.32/api/lsar-response-default.json");
        assert_eq!(got["status"], want["status"]);
        assert_eq!(got["spec"], want["spec"]);
        assert_eq!(got["kind"], want["kind"]);

        let reason = fixture("k8s-1.32/api/lsar-response-webapp.json")["status"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        api.set_authz("demo", "webapp", "webapp01", AuthzAnswer::allowed(&reason));
        let request = fixture("k8s-1.32/api/lsar-request-webapp.json");
        let got: Value = server
            .client()
            .request(post(&request))
            .await
            .expect("review");
        let want = fixture("k8s-1.32/api/lsar-response-webapp.json");
        assert_eq!(got["status"], want["status"]);
        assert_eq!(
            api.lsar_requests(),
            vec![fixture("k8s-1.32/api/lsar-request-default.json"), request]
        );
    }
}
