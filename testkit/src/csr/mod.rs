//! [`CsrApi`]: a stateful fake of the parts of the API server that `gmsa certs` uses, answering
//! like the captures in `fixtures/apiserver/k8s-1.32/api/` (`csr-*.json`, `configmap-*.json`):
//!
//! - `certificates.k8s.io/v1` CertificateSigningRequests: create (201; 409 AlreadyExists), get,
//!   delete, list and watch (with `fieldSelector=metadata.name=...` and `resourceVersion`),
//!   `PUT .../{name}/approval`;
//! - a signer with a test CA ([`CsrApi::ca_pem`]) that acts on approved CSRs like the
//!   controller-manager: for `kubernetes.io/kubelet-serving` it first validates the request
//!   (`Failed: SignerValidationFailure` as in `csr-failed-bad-subject.json`), then sets
//!   `status.certificate`; knobs make it deny, fail or never sign ([`SignerMode`]);
//! - the `kube-root-ca.crt` ConfigMap in every namespace (holding the signing CA; can be
//!   removed);
//! - Secrets: create, get, replace (409 on a stale `resourceVersion`, 422 on a type change);
//! - Mutating/ValidatingWebhookConfigurations: get, patch (JSON patch and merge patch);
//! - `403 Forbidden` on any chosen call ([`Call`], [`CsrApi::forbid`]), with the API server's
//!   wording;
//! - [`CsrApi::rotate_ca`]: a new signing CA, as in a cluster CA rotation;
//!   [`CsrApi::webhook_patches`]: the bodies of the webhook configuration patches.
//!
//! Mount [`CsrApi::router`] in a [`crate::FakeApiServer`].
//!
//! Files by job: `api` (state, knobs, shared replies), `rbac` ([`Call`], the 403 wording),
//! `signer` (validation and signing), `csrs` (the CSR routes), `objects` (ConfigMap, Secrets,
//! webhook configurations).

mod api;
mod csrs;
mod objects;
mod rbac;
mod signer;

use axum::routing::get;
use axum::Router;

pub use api::{CsrApi, SignerMode};
pub use rbac::{Call, USER};

use csrs::{approve_csr, create_csr, delete_csr, get_csr, list_or_watch_csrs};
use objects::{
    create_secret, get_configmap, get_secret, get_webhook, patch_webhook, replace_secret,
};

/// Path of the CSR collection (cluster-scoped).
pub const CSRS_PATH: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

/// Path of one CSR.
pub fn csr_path(name: &str) -> String {
    format!("{CSRS_PATH}/{name}")
}

/// Path of a Secret.
pub fn secret_path(namespace: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/secrets/{name}")
}

/// Path of a webhook configuration; `kind` is `mutating` or `validating`.
pub fn webhook_path(kind: &str, name: &str) -> String {
    format!("/apis/admissionregistration.k8s.io/v1/{kind}webhookconfigurations/{name}")
}

impl CsrApi {
    /// The routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route(CSRS_PATH, get(list_or_watch_csrs).post(create_csr))
            .route(
                &format!("{CSRS_PATH}/{{name}}"),
                get(get_csr).delete(delete_csr),
            )
            .route(
                &format!("{CSRS_PATH}/{{name}}/approval"),
                axum::routing::put(approve_csr),
            )
            .route(
                "/api/v1/namespaces/{ns}/configmaps/{name}",
                get(get_configmap),
            )
            .route(
                "/api/v1/namespaces/{ns}/secrets",
                axum::routing::post(create_secret),
            )
            .route(
                "/api/v1/namespaces/{ns}/secrets/{name}",
                get(get_secret).put(replace_secret),
            )
            .route(
                "/apis/admissionregistration.k8s.io/v1/{kind}/{name}",
                get(get_webhook).patch(patch_webhook),
            )
            .with_state(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{fixture, FakeApiServer};
    use serde_json::{json, Value};
    use std::time::Duration;

    #[tokio::test]
    async fn captured_request_is_created_approved_and_signed() {
        let api = CsrApi::new();
        let server = FakeApiServer::start(api.router()).await;
        let client = server.client();
        let body = fixture("k8s-1.32/api/csr-create-request.json");
        let req = axum::http::Request::post(CSRS_PATH)
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes())
            .expect("request");
        let created: Value = client.request(req).await.expect("create");
        assert_eq!(created["status"], json!({}));
        assert_eq!(created["metadata"]["name"], "gmsa-webhook.gmsa");

        let mut approval = fixture("k8s-1.32/api/csr-approval-request.json");
        approval["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"].clone();
        let req = axum::http::Request::put(format!("{}/approval", csr_path("gmsa-webhook.gmsa")))
            .header("content-type", "application/json")
            .body(approval.to_string().into_bytes())
            .expect("request");
        let approved: Value = client.request(req).await.expect("approve");
        assert_eq!(
            approved["status"]["conditions"][0]["reason"],
            "GmsaApproved"
        );

        for _ in 0..100 {
            if api
                .csr("gmsa-webhook.gmsa")
                .is_some_and(|c| c["status"]["certificate"].is_string())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the fake signer never signed: {:?}",
            api.csr("gmsa-webhook.gmsa")
        );
    }
}
