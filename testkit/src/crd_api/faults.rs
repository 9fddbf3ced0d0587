//! Injected faults: the Status an error fault answers, a response closed half-way, applying a
//! fault to a call.

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::*;

pub(super) fn reason_for(code: u16) -> &'static str {
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
pub(super) fn fault_response(route: Route, code: u16, name: Option<&str>) -> Response {
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
pub(super) fn close_mid_response(full: &Value) -> Response {
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
pub(super) async fn apply_fault(
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
