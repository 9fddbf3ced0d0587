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

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch};

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

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        410 => "Expired",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

/// The `metav1.Status` an injected status fault answers with.
fn fault_response(route: Route, code: u16, name: Option<&str>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let sa = "User \"system:serviceaccount:gmsa:gmsa-webhook\"";
    let message = match (code, route) {
        (403, Route::Get) => format!(
            "gmsacredentialspecs.windows.k8s.io \"{}\" is forbidden: {sa} cannot get resource \"gmsacredentialspecs\" in API group \"windows.k8s.io\" at the cluster scope",
            name.unwrap_or_default()
        ),
        (403, Route::List | Route::Watch) => format!(
            "gmsacredentialspecs.windows.k8s.io is forbidden: {sa} cannot {} resource \"gmsacredentialspecs\" in API group \"windows.k8s.io\" at the cluster scope",
            if route == Route::List { "list" } else { "watch" }
        ),
        (403, Route::Lsar) => format!(
            "localsubjectaccessreviews.authorization.k8s.io is forbidden: {sa} cannot create resource \"localsubjectaccessreviews\" in API group \"authorization.k8s.io\" in the namespace \"{}\"",
            name.unwrap_or_default()
        ),
        _ => format!("fault injected by the fake API server: {code}"),
    };
    crate::status(status, reason_for(code), &message)
}

/// A 200 response whose body stops half-way with an error: hyper aborts the connection.
fn close_mid_response(full: &Value) -> Response {
    let text = full.to_string();
    let half = Bytes::from(text[..text.len() / 2].to_string());
    let stream = futures::stream::iter(vec![
        Ok(half),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "fault: connection closed mid-response",
        )),
    ]);
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Applies a fault: `Ok(response)` to send instead, `Err(())` to go on normally (after any
/// delay). `full` builds the normal body for `CloseMidResponse`.
async fn apply_fault(
    fault: Option<Fault>,
    route: Route,
    name: Option<&str>,
    full: impl FnOnce() -> Value,
) -> Option<Response> {
    match fault? {
        Fault::Status(code) => Some(fault_response(route, code, name)),
        Fault::Hang => {
            futures::future::pending::<()>().await;
            None
        }
        Fault::CloseMidResponse => Some(close_mid_response(&full())),
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            None
        }
    }
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// One page of the list: `limit` objects (all when absent or 0) after the `continue` token,
/// which is the name of the last object of the previous page. Later pages see the collection
/// as it is when they are asked for (the real API server serves them from one snapshot).
fn list_value(inner: &Inner, query: &HashMap<String, String>) -> Value {
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|&l| l > 0)
        .unwrap_or(usize::MAX);
    let after = query.get("continue").filter(|c| !c.is_empty());
    let mut rest = inner
        .objects
        .iter()
        .filter(|(name, _)| after.is_none_or(|a| name.as_str() > a.as_str()));
    let page: Vec<(&String, &Value)> = rest.by_ref().take(limit).collect();
    let next = match (page.last(), rest.next()) {
        (Some((last, _)), Some(_)) => last.to_string(),
        _ => String::new(),
    };
    json!({
        "apiVersion": "windows.k8s.io/v1",
        "kind": "GMSACredentialSpecList",
        "metadata": {"continue": next, "resourceVersion": inner.rv.to_string()},
        "items": page.into_iter().map(|(_, o)| o.clone()).collect::<Vec<_>>(),
    })
}

async fn collection(State(api): State<CrdApi>, RawQuery(q): RawQuery) -> Response {
    let query = query_map(q.as_deref());
    let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    if !watching {
        let fault = api.begin(Route::List);
        let snapshot = list_value(&api.lock(), &query);
        if let Some(r) = apply_fault(fault, Route::List, None, || snapshot).await {
            return r;
        }
        return crate::json(&list_value(&api.lock(), &query));
    }
    let fault = api.begin(Route::Watch);
    if let Some(r) = apply_fault(
        fault,
        Route::Watch,
        None,
        || json!({"type": "ADDED", "object": {}}),
    )
    .await
    {
        return r;
    }
    let from: Option<u64> = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && v.as_str() != "0")
        .and_then(|v| v.parse().ok());
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs);
    let bookmarks = query.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    watch_stream(&api, from, timeout, bookmarks)
}

/// Starts a watch from resourceVersion `from` (`None`: "any", i.e. the current objects as
/// ADDED first).
fn watch_stream(
    api: &CrdApi,
    from: Option<u64>,
    timeout: Option<Duration>,
    bookmarks: bool,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    let mut live = api.shared.events.subscribe();
    let mut breaker = api.shared.breaker.subscribe();
    let (backlog, mut last_rv, expired) = {
        let inner = api.lock();
        match from {
            Some(rv) if rv < inner.oldest_rv => {
                let event = json!({"type": "ERROR", "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure",
                    "message": format!("too old resource version: {rv} ({})", inner.oldest_rv),
                    "reason": "Expired", "code": 410,
                }});
                (vec![line(rv, &event)], rv, true)
            }
            Some(rv) => (
                inner
                    .history
                    .iter()
                    .filter(|l| l.rv > rv)
                    .cloned()
                    .collect(),
                rv,
                false,
            ),
            None => {
                let added = inner
                    .objects
                    .values()
                    .map(|o| line(inner.rv, &json!({"type": "ADDED", "object": o})))
                    .collect();
                (added, inner.rv, false)
            }
        }
    };
    let shared = api.shared.clone();
    shared.open_watches.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(3600)));
        tokio::pin!(deadline);
        'out: {
            for l in backlog {
                last_rv = last_rv.max(l.rv);
                if tx.send(l.text).await.is_err() {
                    break 'out;
                }
            }
            if expired {
                break 'out;
            }
            loop {
                tokio::select! {
                    // Checked first: once `break_watches` returned, no later event goes out
                    // on a stream it broke.
                    biased;
                    _ = breaker.changed() => break 'out,
                    _ = &mut deadline => break 'out,
                    _ = tx.closed() => break 'out,
                    ev = live.recv() => match ev {
                        Ok(l) => {
                            if l.bookmark && !bookmarks {
                                continue;
                            }
                            if l.rv <= last_rv && !l.bookmark {
                                continue;
                            }
                            last_rv = last_rv.max(l.rv);
                            if tx.send(l.text).await.is_err() {
                                break 'out;
                            }
                        }
                        // Lagged or closed: end the stream; the client resumes from its last
                        // resourceVersion and gets the history replayed.
                        Err(_) => break 'out,
                    },
                }
            }
        }
        shared.open_watches.fetch_sub(1, Ordering::SeqCst);
    });
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<_, std::io::Error>))
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn by_name(State(api): State<CrdApi>, Path(name): Path<String>) -> Response {
    let fault = api.begin(Route::Get);
    let current = api.lock().objects.get(&name).cloned();
    let full = current.clone().unwrap_or(Value::Null);
    if let Some(r) = apply_fault(fault, Route::Get, Some(&name), || full).await {
        return r;
    }
    match current {
        Some(o) => crate::json(&o),
        None => {
            let body = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("gmsacredentialspecs.windows.k8s.io \"{name}\" not found"),
                "reason": "NotFound",
                "details": {"name": name, "group": "windows.k8s.io", "kind": "gmsacredentialspecs"},
                "code": 404,
            });
            (
                StatusCode::NOT_FOUND,
                [("content-type", "application/json")],
                Body::from(body.to_string()),
            )
                .into_response()
        }
    }
}

async fn lsar(State(api): State<CrdApi>, Path(ns): Path<String>, body: Bytes) -> Response {
    let fault = api.begin(Route::Lsar);
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return crate::status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("the body of the request was in an unknown format: {e}"),
            )
        }
    };
    api.lock().lsar_requests.push(request.clone());
    let spec = request["spec"].clone();
    let attrs = &spec["resourceAttributes"];
    let full = json!({"kind": "LocalSubjectAccessReview", "spec": spec});
    if let Some(r) = apply_fault(fault, Route::Lsar, Some(&ns), || full).await {
        return r;
    }
    if attrs["namespace"].as_str() != Some(ns.as_str()) {
        return crate::status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "spec.resourceAttributes.namespace must match metadata.namespace: {:?} != {ns:?}",
                attrs["namespace"].as_str().unwrap_or_default()
            ),
        );
    }
    let user = spec["user"].as_str().unwrap_or_default();
    let sa = user
        .strip_prefix(&format!("system:serviceaccount:{ns}:"))
        .unwrap_or_default()
        .to_string();
    let name = attrs["name"].as_str().unwrap_or_default().to_string();
    let answer = api
        .lock()
        .authz
        .get(&(ns.clone(), sa, name))
        .cloned()
        .unwrap_or_default();
    let mut status = json!({"allowed": answer.allowed});
    if answer.denied {
        status["denied"] = json!(true);
    }
    if let Some(r) = answer.reason {
        status["reason"] = json!(r);
    }
    if let Some(e) = answer.evaluation_error {
        status["evaluationError"] = json!(e);
    }
    let mut review = json!({
        "kind": "LocalSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"namespace": ns, "creationTimestamp": null},
        "spec": spec,
        "status": status,
    });
    if let Some(object) = review.as_object_mut().filter(|_| answer.no_status) {
        object.remove("status");
    }
    (
        StatusCode::CREATED,
        [("content-type", "application/json")],
        Body::from(review.to_string()),
    )
        .into_response()
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
