//! `gmsa-testkit`: test support shared by the crates' tests.
//!
//! - [`FakeApiServer`]: an in-process HTTP server on `127.0.0.1` that plays a Kubernetes API
//!   server. Tests give it an axum `Router` with the routes they need (answering like the real
//!   captures in `fixtures/apiserver/`) and talk to it through a real [`kube::Client`]
//!   ([`FakeApiServer::client`]). Every request is recorded ([`FakeApiServer::requests`]) so a
//!   test can assert which API calls were made. Dropping the server stops it.
//! - [`fixture`] / [`fixture_text`]: the captures from real kube-apiserver 1.32 and 1.28
//!   (copied from `shared/fixtures/apiserver`, see `fixtures/apiserver/README.md`).
//! - [`status`]: a `metav1.Status` body as the API server sends it with an error code.
//! - [`eventually`]: polls a condition until it holds, with a limit.
//! - [`apply_recorder`]: a route answering server-side-apply PATCHes of `gmsacredentialspecs`,
//!   recording each one.
//! - [`setup::Setup`]: a healthy gMSA set-up (chart, spec, grant, Windows node) as objects a
//!   test breaks one at a time, served by [`setup::Setup::router`] (what `gmsa doctor` reads,
//!   and the probe pod's dry-run create).
//! - [`crd_api::CrdApi`]: a stateful fake of the `gmsacredentialspecs` collection (list, watch,
//!   GET) and of LocalSubjectAccessReviews, with fault injection.
//! - [`csr::CsrApi`]: a stateful fake of what `gmsa certs` uses (CertificateSigningRequests with
//!   a signer and a test CA that can be rotated, the `kube-root-ca.crt` ConfigMap, Secrets,
//!   webhook configurations with their patches recorded), with 403s on chosen calls
//!   ([`csr::Call`]); its files split by job under `csr/`.

mod ca;
pub mod crd_api;
pub mod csr;
pub mod setup;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// One request the fake API server received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Path without the query, e.g. `/apis/windows.k8s.io/v1/gmsacredentialspecs/webapp01`.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
}

/// A fake Kubernetes API server on loopback. Stops when dropped.
pub struct FakeApiServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeApiServer {
    /// Serves `router` on `127.0.0.1` at a free port, recording every request.
    pub async fn start(router: Router) -> Self {
        let requests: Arc<Mutex<Vec<RecordedRequest>>> = Arc::default();
        let log = requests.clone();
        let router = router.layer(middleware::from_fn(move |req: Request, next: Next| {
            let log = log.clone();
            async move {
                if let Ok(mut log) = log.lock() {
                    log.push(RecordedRequest {
                        method: req.method().to_string(),
                        path: req.uri().path().to_string(),
                        query: req.uri().query().map(str::to_string),
                    });
                }
                next.run(req).await
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the fake API server");
        let addr = listener
            .local_addr()
            .expect("local address of the fake API server");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A real `kube::Client` pointed at this server (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        let uri = self
            .url()
            .parse()
            .expect("fake API server URL is a valid URI");
        let config = kube::Config::new(uri);
        kube::Client::try_from(config).expect("kube client for the fake API server")
    }

    /// Writes a kubeconfig for this server (context `fake`, no credentials) to
    /// `dir/kubeconfig` and returns its path: for code under test that reads `KUBECONFIG`.
    pub fn write_kubeconfig(&self, dir: &std::path::Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  \
             cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    \
             user: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url()
        );
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// How many requests had this method and path.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `cond` every 10 ms until it holds; panics naming `what` after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: std::time::Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Directory holding the captured API server fixtures.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/apiserver")
}

/// The text of a fixture, e.g. `fixture_text("k8s-1.32/api/gmsacredentialspec-get.json")`.
pub fn fixture_text(rel: &str) -> String {
    let path = fixtures_dir().join(rel);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read fixture {}: {e}", path.display()))
}

/// A JSON fixture, parsed.
pub fn fixture(rel: &str) -> serde_json::Value {
    serde_json::from_str(&fixture_text(rel)).unwrap_or_else(|e| panic!("parse fixture {rel}: {e}"))
}

/// A `metav1.Status` failure response as the API server sends it, e.g.
/// `status(StatusCode::NOT_FOUND, "NotFound", "gmsacredentialspecs.windows.k8s.io \"x\" not found")`.
pub fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    (
        code,
        [("content-type", "application/json")],
        Body::from(body.to_string()),
    )
        .into_response()
}

/// A JSON response with status 200.
pub fn json(value: &serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        Body::from(value.to_string()),
    )
        .into_response()
}

/// One PATCH received by [`apply_recorder`].
#[derive(Clone, Debug, Default)]
pub struct AppliedPatch {
    /// The `content-type` header (`application/apply-patch+yaml` for a server-side apply).
    pub content_type: String,
    /// The query string, e.g. `fieldManager=gmsa&force=true`.
    pub query: String,
    /// The request body as sent.
    pub body: Vec<u8>,
}

/// A router answering `PATCH /apis/windows.k8s.io/v1/gmsacredentialspecs/{name}` like a
/// server-side apply: the body echoed back with `metadata.uid` and `metadata.resourceVersion`
/// (`"300"`) set. Every PATCH is appended to the returned log.
pub fn apply_recorder() -> (Router, Arc<Mutex<Vec<AppliedPatch>>>) {
    let seen: Arc<Mutex<Vec<AppliedPatch>>> = Arc::default();
    let sink = seen.clone();
    let route = axum::routing::patch(
        move |headers: axum::http::HeaderMap,
              axum::extract::RawQuery(query): axum::extract::RawQuery,
              body: bytes::Bytes| {
            let sink = sink.clone();
            async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                if let Ok(mut s) = sink.lock() {
                    s.push(AppliedPatch {
                        content_type,
                        query: query.unwrap_or_default(),
                        body: body.to_vec(),
                    });
                }
                let mut stored: serde_json::Value =
                    serde_json::from_slice(&body).unwrap_or_default();
                stored["metadata"]["uid"] = "16216da0-6959-478c-a050-2700c5d705a1".into();
                stored["metadata"]["resourceVersion"] = "300".into();
                json(&stored)
            }
        },
    );
    let router = Router::new().route(&crd_api::spec_path("{name}"), route);
    (router, seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    #[tokio::test]
    async fn kube_client_reads_a_captured_spec_and_the_call_is_recorded() {
        let router = Router::new().route(
            "/apis/windows.k8s.io/v1/gmsacredentialspecs/webapp01",
            get(|| async { json(&fixture("k8s-1.32/api/gmsacredentialspec-get.json")) }),
        );
        let server = FakeApiServer::start(router).await;
        let req = axum::http::Request::get("/apis/windows.k8s.io/v1/gmsacredentialspecs/webapp01")
            .body(Vec::new())
            .expect("request");
        let got: serde_json::Value = server
            .client()
            .request(req)
            .await
            .expect("GET through kube");
        assert_eq!(
            got["credspec"]["DomainJoinConfig"]["NetBiosName"],
            "CONTOSO"
        );
        assert_eq!(
            server.count(
                "GET",
                "/apis/windows.k8s.io/v1/gmsacredentialspecs/webapp01"
            ),
            1
        );
    }

    #[tokio::test]
    async fn unknown_routes_answer_404() {
        let server = FakeApiServer::start(Router::new()).await;
        let req = axum::http::Request::get("/api/v1/nothing")
            .body(Vec::new())
            .expect("request");
        let err = server
            .client()
            .request::<serde_json::Value>(req)
            .await
            .expect_err("404 is an error");
        assert!(err.to_string().contains("404"), "{err}");
    }
}
