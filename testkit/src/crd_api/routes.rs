//! The routes: the collection (list, watch), GET by name, LocalSubjectAccessReviews.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::faults::*;
use super::*;

pub(super) fn query_map(q: Option<&str>) -> HashMap<String, String> {
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
pub(super) fn list_value(inner: &Inner, query: &HashMap<String, String>) -> Value {
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

pub(super) async fn collection(State(api): State<CrdApi>, RawQuery(q): RawQuery) -> Response {
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
pub(super) fn watch_stream(
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

pub(super) async fn by_name(State(api): State<CrdApi>, Path(name): Path<String>) -> Response {
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

pub(super) async fn lsar(
    State(api): State<CrdApi>,
    Path(ns): Path<String>,
    body: Bytes,
) -> Response {
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
