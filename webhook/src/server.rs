//! HTTP serving: the webhook routes over TLS and the plain-HTTP admin routes.
//!
//! HTTPS port (routes on the path only; the API server adds `?timeout=10s`):
//! - `POST /mutate`, `POST /validate`: `Content-Type: application/json` (optionally
//!   `; charset=utf-8`) else 415; other methods 405; the body is read up to
//!   `max_body_bytes` (a larger `Content-Length` gets 413 before any body byte is read, a
//!   larger chunked body gets 413 as soon as the limit is crossed); reading and answering
//!   must finish within `request_timeout` (else 408 while reading, 503 while answering).
//! - Early answers (413, 415, 405, 404, ...) go out at once; what the handler left of the
//!   body is then read and discarded, up to twice `max_body_bytes` and until the request's
//!   `request_timeout` runs out, so the client finishes sending and reads the answer (see
//!   `drain`). A longer remainder is cut: HTTP/2 resets the stream (`NO_ERROR`, after the
//!   answer), HTTP/1.1 closes the connection.
//! - `/health`: 204 when the spec store is ready and the process is not shutting down, else
//!   503 with the reason. `GET /info`: `{"version": "..."}`. Anything else: 404.
//!
//! Admin port: `GET /metrics` (Prometheus text), `GET /ready` (like `/health`), `GET /live`
//! (204 while the process runs).
//!
//! Connections: the TLS handshake and each request's headers must arrive within
//! `header_read_timeout`; a connection with no request in flight for `idle_timeout` is
//! closed; on shutdown, accepting stops, in-flight requests finish (HTTP/1.1 keep-alive
//! is turned off, HTTP/2 gets GOAWAY) and whatever is left after the grace period is dropped.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::admission::Hook;
use crate::admission_review::{Admitter, Verdict};
use crate::metrics::{self, Metrics, RequestOutcome, Route};

/// Limits and timeouts of the HTTPS port.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Deadline for reading a request's body and answering it.
    pub request_timeout: Duration,
    /// Deadline for the TLS handshake and for each request's headers (HTTP/1.1: also the
    /// keep-alive idle limit).
    pub header_read_timeout: Duration,
    /// Close a connection with no request in flight for this long.
    pub idle_timeout: Duration,
    /// How long in-flight requests may take after shutdown starts.
    pub shutdown_grace: Duration,
    /// Most client connections open at once; beyond it the listener stops accepting until
    /// one closes (slow or idle clients are cut by the timeouts above).
    pub max_connections: usize,
}

/// Whether the process can serve reviews: the spec store is ready and no shutdown started.
#[derive(Clone)]
pub struct Readiness {
    admitter: Admitter,
    shutting_down: Arc<AtomicBool>,
}

impl Readiness {
    /// Readiness over this admitter's spec store.
    pub fn new(admitter: Admitter) -> Self {
        Self {
            admitter,
            shutting_down: Arc::default(),
        }
    }

    /// `Ok` when ready, else why not.
    pub fn check(&self) -> Result<(), String> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err("shutting down".to_string());
        }
        self.admitter
            .specs()
            .ready()
            .map_err(|e| format!("credspec store not ready: {e}"))
    }

    /// Marks the process as shutting down (readiness fails from now on).
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    fn response(&self) -> Response {
        match self.check() {
            // Ready, but answering from live reads: still ready (every replica shares the
            // API server, so all would turn unready at once and, with failurePolicy Fail,
            // every GMSA pod would fail instead of being answered live), and it says so.
            Ok(()) => match self.admitter.specs().degraded() {
                Some(why) => (StatusCode::OK, format!("ready, degraded: {why}")).into_response(),
                None => StatusCode::NO_CONTENT.into_response(),
            },
            Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
        }
    }
}

#[derive(Clone)]
struct AppState {
    admitter: Admitter,
    readiness: Readiness,
    limits: Arc<Limits>,
}

/// What a handler recorded for the metrics middleware.
#[derive(Clone, Copy)]
struct Recorded {
    outcome: RequestOutcome,
    code: u16,
}

/// The CCG plugin labels of an admission, for the metrics middleware.
#[derive(Clone)]
struct Plugins(std::collections::BTreeSet<&'static str>);

fn with_outcome(mut response: Response, outcome: RequestOutcome, code: u16) -> Response {
    response.extensions_mut().insert(Recorded { outcome, code });
    response
}

/// The HTTPS routes.
pub fn webhook_router(
    admitter: Admitter,
    readiness: Readiness,
    metrics: Metrics,
    limits: Limits,
) -> Router {
    let state = AppState {
        admitter,
        readiness,
        limits: Arc::new(limits),
    };
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .route("/health", any(health))
        .route("/info", get(info))
        .with_state(state)
        .layer(middleware::from_fn_with_state(metrics, track))
}

/// The admin routes (plain HTTP).
pub fn admin_router(registry: Arc<Registry>, readiness: Readiness, metrics: Metrics) -> Router {
    let specs = readiness.admitter.specs().clone();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                let gauge = metrics.credspecs.clone();
                let specs = specs.clone();
                async move {
                    gauge.set(i64::try_from(specs.len()).unwrap_or(i64::MAX));
                    (
                        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
                        metrics::encode(&registry),
                    )
                }
            }),
        )
        .route(
            "/ready",
            get(move || {
                let readiness = readiness.clone();
                async move { readiness.response() }
            }),
        )
        .route("/live", get(|| async { StatusCode::NO_CONTENT }))
}

fn route_of(path: &str) -> Route {
    match path {
        "/mutate" => Route::Mutate,
        "/validate" => Route::Validate,
        "/health" => Route::Health,
        "/info" => Route::Info,
        _ => Route::Other,
    }
}

/// Counts and times every request; logs it at debug (never the body).
async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = route_of(request.uri().path());
    let method = request.method().clone();
    let version = request.version();
    let response = {
        // A guard, so a request dropped mid-way (client gone) is still subtracted.
        let _in_flight = GaugeGuard::hold(&metrics.in_flight);
        next.run(request).await
    };
    let status = response.status().as_u16();
    let recorded = response
        .extensions()
        .get::<Recorded>()
        .copied()
        .unwrap_or(Recorded {
            outcome: RequestOutcome::Ok,
            code: status,
        });
    if let Some(Plugins(plugins)) = response.extensions().get::<Plugins>() {
        metrics.observe_plugins(route, plugins);
    }
    let elapsed = start.elapsed();
    metrics.observe(
        route,
        recorded.outcome,
        recorded.code,
        elapsed.as_secs_f64(),
    );
    tracing::debug!(
        %method,
        route = route.as_str(),
        ?version,
        status,
        outcome = recorded.outcome.as_str(),
        code = recorded.code,
        elapsed_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

async fn health(State(state): State<AppState>) -> Response {
    state.readiness.response()
}

async fn info() -> Response {
    axum::Json(serde_json::json!({ "version": env!("CARGO_PKG_VERSION") })).into_response()
}

async fn mutate(State(state): State<AppState>, request: Request) -> Response {
    admit(state, Hook::Mutate, request).await
}

async fn validate(State(state): State<AppState>, request: Request) -> Response {
    admit(state, Hook::Validate, request).await
}

/// `application/json`, optionally with `charset=utf-8` (any case, any spacing).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|m| m.eq_ignore_ascii_case("application/json"))
    {
        return false;
    }
    parts.all(|param| {
        let Some((name, value)) = param.split_once('=') else {
            return false;
        };
        name.trim().eq_ignore_ascii_case("charset")
            && value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
    })
}

fn status_only(status: StatusCode, outcome: RequestOutcome) -> Response {
    with_outcome(status.into_response(), outcome, status.as_u16())
}

async fn admit(state: AppState, kind: Hook, request: Request) -> Response {
    let limits = &state.limits;
    let deadline = tokio::time::Instant::now() + limits.request_timeout;
    if !is_json(request.headers()) {
        return status_only(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RequestOutcome::UnsupportedMediaType,
        );
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_body_bytes as u64) {
        return too_large(limits.max_body_bytes);
    }
    let body = Limited::new(request.into_body(), limits.max_body_bytes);
    let bytes = match tokio::time::timeout_at(deadline, body.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return too_large(limits.max_body_bytes)
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "request body could not be read");
            return status_only(StatusCode::BAD_REQUEST, RequestOutcome::BadBody);
        }
        Err(_) => {
            tracing::warn!(
                timeout = ?limits.request_timeout,
                "request body not received in time"
            );
            return status_only(StatusCode::REQUEST_TIMEOUT, RequestOutcome::Timeout);
        }
    };
    let handled = match tokio::time::timeout_at(deadline, state.admitter.handle(kind, &bytes)).await
    {
        Ok(handled) => handled,
        Err(_) => {
            tracing::error!(
                timeout = ?limits.request_timeout,
                "review not answered in time"
            );
            return status_only(StatusCode::SERVICE_UNAVAILABLE, RequestOutcome::Timeout);
        }
    };
    let (outcome, code) = match handled.verdict {
        Verdict::NoGmsa => (RequestOutcome::NoGmsa, 200),
        Verdict::Allowed => (RequestOutcome::Allowed, 200),
        Verdict::Patched => (RequestOutcome::Patched, 200),
        Verdict::Denied { code } => (RequestOutcome::Denied, code),
    };
    let response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        handled.body,
    )
        .into_response();
    let mut response = with_outcome(response, outcome, code);
    response.extensions_mut().insert(Plugins(handled.plugins));
    response
}

/// 413, saying which limit (the reference has no limit, so no empty body to match).
fn too_large(limit: usize) -> Response {
    let text = format!("request body larger than --max-body-bytes ({limit} bytes)\n");
    with_outcome(
        (StatusCode::PAYLOAD_TOO_LARGE, text).into_response(),
        RequestOutcome::TooLarge,
        StatusCode::PAYLOAD_TOO_LARGE.as_u16(),
    )
}

/// A request body shared by the handler, which reads what it needs, and the connection,
/// which drains what is left once the answer is out.
#[derive(Clone)]
struct SharedBody(Arc<Mutex<Option<Incoming>>>);

impl SharedBody {
    fn new(body: Incoming) -> Self {
        Self(Arc::new(Mutex::new(Some(body))))
    }

    /// What is left unread: `None` once the body ended or failed.
    fn take(&self) -> Option<Incoming> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl hyper::body::Body for SharedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(body) = slot.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            *slot = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}

/// Reads and discards the rest of a request body after its answer went out: at most `budget`
/// bytes, until `deadline`. A client still sending when the server resets the HTTP/2 stream
/// (even with `NO_ERROR`, as RFC 9113 §8.1 allows) or closes the HTTP/1.1 connection may
/// lose the answer: curl 7.88 reports the reset as a failure with no status, and a TCP reset
/// over unread data can discard the answer before the client reads it. Reading costs only
/// bandwidth (nothing is kept); a body declared longer than the budget is not read at all.
/// Returns whether the body reached its end.
async fn drain(mut body: Incoming, budget: u64, deadline: tokio::time::Instant) -> bool {
    if body.size_hint().lower() > budget {
        return false;
    }
    let mut left = budget;
    let read = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return false;
            };
            let len = frame.data_ref().map_or(0, |data| data.len() as u64);
            match left.checked_sub(len) {
                Some(rest) => left = rest,
                None => return false,
            }
        }
        true
    };
    tokio::time::timeout_at(deadline, read)
        .await
        .unwrap_or(false)
}

/// Tracks whether a connection has requests in flight, and since when it is idle.
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    last: Mutex<Option<tokio::time::Instant>>,
}

impl Activity {
    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(tokio::time::Instant::now());
    }

    fn begin(self: &Arc<Self>) -> ActivityGuard {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch();
        ActivityGuard(self.clone())
    }

    /// Resolves once no request has been in flight for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self
                .last
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(tokio::time::Instant::now);
            let busy = self.in_flight.load(Ordering::SeqCst) > 0;
            let deadline = last + idle;
            let now = tokio::time::Instant::now();
            if !busy && now >= deadline {
                return;
            }
            tokio::time::sleep_until(if busy { now + idle } else { deadline }).await;
        }
    }
}

struct ActivityGuard(Arc<Activity>);

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` turns true, then drains for at most
/// `limits.shutdown_grace`.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: Limits,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut connections = JoinSet::new();
    let limits = Arc::new(limits);
    let mut saturated = false;
    loop {
        let room = connections.len() < limits.max_connections;
        if room == saturated {
            saturated = !room;
            if saturated {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection limit reached; new connections wait in the listen backlog"
                );
            }
        }
        tokio::select! {
            accepted = listener.accept(), if room => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(
                        stream,
                        peer,
                        acceptor.clone(),
                        app.clone(),
                        limits.clone(),
                        metrics.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = wait_true(&mut shutdown) => break,
        }
    }
    drop(listener);
    let open = connections.len();
    tracing::info!(
        open_connections = open,
        grace = ?limits.shutdown_grace,
        "HTTPS listener closed; finishing in-flight requests"
    );
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            dropped_connections = connections.len(),
            "grace period over; dropping the remaining connections"
        );
        connections.abort_all();
    }
}

/// Resolves once the watch holds `true` (or its sender is gone).
async fn wait_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    limits: Arc<Limits>,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let _open = GaugeGuard::hold(&metrics.connections);
    let tls = tokio::select! {
        handshake = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)) => {
            match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    metrics.handshake_failures.inc();
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    metrics.handshake_failures.inc();
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            }
        }
        _ = wait_true(&mut shutdown) => return,
    };
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let activity = Arc::new(Activity::default());
    activity.touch();
    let service_activity = activity.clone();
    let service_limits = limits.clone();
    let service_shutdown = shutdown.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let guard = service_activity.begin();
        let deadline = tokio::time::Instant::now() + service_limits.request_timeout;
        let budget = 2 * service_limits.max_body_bytes as u64;
        let app = app.clone();
        let mut shutdown = service_shutdown.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = SharedBody::new(body);
            let request = hyper::Request::from_parts(parts, Body::new(body.clone()));
            let response = app.oneshot(request).await;
            if let Some(rest) = body.take().filter(|rest| !rest.is_end_stream()) {
                // The connection stays busy (not idle) while draining.
                // Shutdown stops the draining: the process is going away anyway.
                tokio::spawn(async move {
                    let ended = tokio::select! {
                        ended = drain(rest, budget, deadline) => ended,
                        _ = wait_true(&mut shutdown) => false,
                    };
                    tracing::debug!(%peer, ended, "drained the unread rest of a request body");
                    drop(guard);
                });
            }
            response
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    // ALPN decides the protocol; without ALPN the builder sniffs the HTTP/2 preface.
    let builder = match alpn.as_deref() {
        Some(b"h2") => builder.http2_only(),
        Some(b"http/1.1") => builder.http1_only(),
        _ => builder,
    };
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    let mut closing = false;
    if *shutdown.borrow() {
        connection.as_mut().graceful_shutdown();
        closing = true;
    }
    // After an idle close starts, a client that does not cooperate (HTTP/2 graceful close
    // waits for a PING answer) is dropped at this deadline. Shutdown has its own bound.
    let mut hard_close: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = wait_true(&mut shutdown), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = activity.idle_for(limits.idle_timeout), if !closing => {
                tracing::debug!(%peer, "closing idle connection");
                connection.as_mut().graceful_shutdown();
                closing = true;
                hard_close = Some(tokio::time::Instant::now() + limits.header_read_timeout);
            }
            _ = sleep_until_some(hard_close) => {
                tracing::debug!(%peer, "idle connection did not close in time; dropping it");
                break;
            }
        }
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Counts one in a gauge while alive.
struct GaugeGuard(prometheus_client::metrics::gauge::Gauge);

impl GaugeGuard {
    fn hold(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Serves `app` over plain HTTP until `shutdown` turns true, draining for at most `grace`.
pub async fn serve_plain(
    listener: TcpListener,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async {
        let _ = stop_rx.await;
    });
    let mut server = std::pin::pin!(std::future::IntoFuture::into_future(server));
    tokio::select! {
        result = &mut server => {
            if let Err(e) = result {
                tracing::error!(error = %e, "admin server stopped");
            }
            return;
        }
        _ = wait_true(&mut shutdown) => {}
    }
    let _ = stop_tx.send(());
    if tokio::time::timeout(grace, server).await.is_err() {
        tracing::warn!("admin server did not drain within the grace period");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let cases = [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON;charset=UTF-8", true),
            ("application/json; charset=\"utf-8\"", true),
            ("application/json; charset=latin1", false),
            ("application/json; boundary=x", false),
            ("application/jsonx", false),
            ("text/plain", false),
            ("application/yaml", false),
            ("", false),
        ];
        for (value, want) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(value).expect("header value"),
            );
            assert_eq!(is_json(&headers), want, "{value:?}");
        }
        assert!(!is_json(&HeaderMap::new()), "missing header");
    }

    #[test]
    fn routes_by_path() {
        assert_eq!(route_of("/mutate"), Route::Mutate);
        assert_eq!(route_of("/validate"), Route::Validate);
        assert_eq!(route_of("/validate/"), Route::Other);
        assert_eq!(route_of("/health"), Route::Health);
    }

    #[tokio::test]
    async fn idle_tracking() {
        let activity = Arc::new(Activity::default());
        activity.touch();
        let guard = activity.begin();
        // Busy: not idle even after the timeout.
        let idle = tokio::time::timeout(
            Duration::from_millis(300),
            activity.idle_for(Duration::from_millis(100)),
        )
        .await;
        assert!(idle.is_err(), "busy connection reported idle");
        drop(guard);
        let idle = tokio::time::timeout(
            Duration::from_millis(300),
            activity.idle_for(Duration::from_millis(100)),
        )
        .await;
        assert!(idle.is_ok(), "idle connection not reported idle");
    }
}
