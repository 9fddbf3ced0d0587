//! 403 Forbidden on chosen calls, worded as the API server words it.

use axum::http::StatusCode;
use axum::response::Response;

use crate::status;

/// The calls the fake serves, for [`super::CsrApi::forbid`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// `POST` a CSR.
    CreateCsr,
    /// `GET` a CSR by name.
    GetCsr,
    /// List or watch CSRs.
    ListCsr,
    /// `DELETE` a CSR.
    DeleteCsr,
    /// `PUT .../approval` refused by RBAC (no `update` on `certificatesigningrequests/approval`).
    Approve,
    /// `PUT .../approval` refused by the CertificateApproval admission plugin (no `approve` on
    /// `signers`).
    ApproveSigner,
    /// `GET` the `kube-root-ca.crt` ConfigMap.
    GetConfigMap,
    /// `GET` a Secret.
    GetSecret,
    /// `POST` a Secret.
    CreateSecret,
    /// `PUT` a Secret.
    ReplaceSecret,
    /// `GET` a webhook configuration.
    GetWebhook,
    /// `PATCH` a webhook configuration.
    PatchWebhook,
}

/// The user the fake pretends made the calls (in 403 messages and `spec.username`).
pub const USER: &str = "system:serviceaccount:gmsa:gmsa-certs";

pub(super) fn forbidden(message: String) -> Response {
    status(StatusCode::FORBIDDEN, "Forbidden", &message)
}

/// The message the API server gives for each refused call.
pub(super) fn forbidden_message(call: Call) -> String {
    const CSRS: &str = "certificatesigningrequests";
    const CERTS: &str = "certificates.k8s.io";
    const HOOKS: &str = "mutatingwebhookconfigurations";
    const ADMISSION: &str = "admissionregistration.k8s.io";
    // (verb, resource, API group, namespaced)
    let (verb, resource, group, namespaced) = match call {
        Call::CreateCsr => ("create", CSRS, CERTS, false),
        Call::GetCsr => ("get", CSRS, CERTS, false),
        Call::ListCsr => ("list", CSRS, CERTS, false),
        Call::DeleteCsr => ("delete", CSRS, CERTS, false),
        Call::Approve => (
            "update",
            "certificatesigningrequests/approval",
            CERTS,
            false,
        ),
        Call::ApproveSigner => {
            // Not RBAC: the CertificateApproval admission plugin.
            return format!("{CSRS}.{CERTS} is forbidden: user not permitted to approve requests with signerName \"kubernetes.io/kubelet-serving\"");
        }
        Call::GetConfigMap => ("get", "configmaps", "", true),
        Call::GetSecret => ("get", "secrets", "", true),
        Call::CreateSecret => ("create", "secrets", "", true),
        Call::ReplaceSecret => ("update", "secrets", "", true),
        Call::GetWebhook => ("get", HOOKS, ADMISSION, false),
        Call::PatchWebhook => ("patch", HOOKS, ADMISSION, false),
    };
    let base = resource.split('/').next().unwrap_or(resource);
    let qualified = if group.is_empty() {
        base.to_string()
    } else {
        format!("{base}.{group}")
    };
    let scope = if namespaced {
        "in the namespace \"gmsa\""
    } else {
        "at the cluster scope"
    };
    format!(
        "{qualified} is forbidden: User \"{USER}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
    )
}
