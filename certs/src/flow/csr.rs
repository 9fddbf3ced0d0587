//! The CertificateSigningRequest object gmsa sends, where a CSR stands, and what to say when
//! the signer fails it or nothing happens in time. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

use crate::duration::format_duration;
use crate::request::{CertRequest, KUBELET_SERVING};
use crate::write::MANAGED_BY;
use crate::CertsError;

/// Annotation on CSRs gmsa creates: the service it is for.
pub const SERVICE_ANNOTATION: &str = "gmsa.k8s.io/service";

/// API path of the CSR collection, or of one CSR.
pub fn api_path_csr(name: Option<&str>) -> String {
    let base = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    match name {
        Some(n) => format!("{base}/{n}"),
        None => base.to_string(),
    }
}

/// Where a CSR stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CsrState {
    /// No decision yet.
    Pending,
    /// Approved, not signed yet.
    Approved,
    /// Signed: the PEM bytes of `status.certificate`.
    Issued(Vec<u8>),
    /// Denied (reason, message).
    Denied(String, String),
    /// Failed (reason, message).
    Failed(String, String),
}

/// Where `csr` stands (pure).
pub fn csr_state(csr: &CertificateSigningRequest) -> CsrState {
    let status = csr.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let find = |ty: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == ty && c.status != "False")
            .map(|c| {
                (
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default(),
                )
            })
    };
    if let Some((r, m)) = find("Denied") {
        return CsrState::Denied(r, m);
    }
    if let Some((r, m)) = find("Failed") {
        return CsrState::Failed(r, m);
    }
    if let Some(cert) = status
        .and_then(|s| s.certificate.as_ref())
        .filter(|c| !c.0.is_empty())
    {
        return CsrState::Issued(cert.0.clone());
    }
    if find("Approved").is_some() {
        CsrState::Approved
    } else {
        CsrState::Pending
    }
}

/// Whether gmsa created this CSR (its label).
pub fn is_ours(csr: &CertificateSigningRequest) -> bool {
    csr.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY.0))
        .is_some_and(|v| v == MANAGED_BY.1)
}

/// The CSR object for a request.
pub fn csr_object(
    name: &str,
    req: &CertRequest,
    pem: &str,
    usages: &[String],
    duration: Option<Duration>,
) -> CertificateSigningRequest {
    CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_string(),
                MANAGED_BY.1.to_string(),
            )])),
            annotations: Some(BTreeMap::from([(
                SERVICE_ANNOTATION.to_string(),
                format!("{}/{}", req.namespace, req.service),
            )])),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(pem.as_bytes().to_vec()),
            signer_name: req.signer.clone(),
            expiration_seconds: duration.map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX)),
            usages: Some(usages.to_vec()),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    }
}

pub(crate) fn failed(name: &str, signer: &str, reason: &str, message: &str) -> CertsError {
    let hint = if reason == "SignerValidationFailure" && signer == KUBELET_SERVING {
        "; kubernetes.io/kubelet-serving only signs O=system:nodes, CN=system:node:<name> requests with DNS/IP names and server-auth usages: let gmsa build the request (no --key-file of another kind) or use a signer of your own with --signer".to_string()
    } else if reason == "SignerValidationFailure" {
        format!("; the signer {signer} refused the request: check its policy")
    } else {
        String::new()
    };
    CertsError::Failed {
        name: name.to_string(),
        signer: signer.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        hint,
    }
}

pub(crate) fn timeout(
    name: &str,
    signer: &str,
    state: &CsrState,
    approve: bool,
    waited: Duration,
) -> CertsError {
    let waited = format_duration(waited);
    let (what, hint) = match state {
        CsrState::Approved => (
            format!("to be signed by {signer:?}"),
            format!(
                "it is approved but no controller signs for {signer:?}: check that signer runs \
                 (kubectl describe csr {name}), or choose one that does with --signer \
                 (kubernetes.io/kubelet-serving is built into kube-controller-manager), or \
                 wait longer with --timeout"
            ),
        ),
        _ if approve => (
            "to be approved".to_string(),
            format!("it is still pending; check kubectl describe csr {name}, or wait longer with --timeout"),
        ),
        _ => (
            "to be approved".to_string(),
            format!(
                "nobody approved it: approve it with `kubectl certificate approve {name}`, or pass \
                 --approve; then the signer {signer:?} must sign it (choose another with --signer)"
            ),
        ),
    };
    CertsError::Timeout {
        name: name.to_string(),
        what,
        waited,
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmsa_testkit::fixture;

    fn csr(rel: &str) -> CertificateSigningRequest {
        serde_json::from_value(fixture(rel)).expect("captured CSR")
    }

    #[test]
    fn states_of_the_captured_csrs() {
        for v in ["k8s-1.32", "k8s-1.28"] {
            assert_eq!(
                csr(&format!("{v}/api/csr-create-response.json")).pipe(csr_state),
                CsrState::Pending
            );
            assert_eq!(
                csr(&format!("{v}/api/csr-approval-response.json")).pipe(csr_state),
                CsrState::Approved
            );
            assert!(
                matches!(csr_state(&csr(&format!("{v}/api/csr-issued.json"))), CsrState::Issued(p) if p.starts_with(b"-----BEGIN CERTIFICATE"))
            );
            assert_eq!(
                csr_state(&csr(&format!("{v}/api/csr-failed-bad-subject.json"))),
                CsrState::Failed(
                    "SignerValidationFailure".into(),
                    "subject organization is not system:nodes".into()
                )
            );
        }
    }

    trait Pipe: Sized {
        fn pipe<T>(self, f: impl FnOnce(&Self) -> T) -> T {
            f(&self)
        }
    }
    impl Pipe for CertificateSigningRequest {}

    #[test]
    fn csr_object_matches_the_captured_request_shape() {
        let req = CertRequest::new("gmsa-webhook", "gmsa").expect("req");
        let usages = vec![
            "digital signature".to_string(),
            "key encipherment".to_string(),
            "server auth".to_string(),
        ];
        let obj = csr_object(
            "gmsa-webhook.gmsa",
            &req,
            "PEM",
            &usages,
            Some(Duration::from_secs(86_400)),
        );
        let got = serde_json::to_value(&obj).expect("json");
        let want = fixture("k8s-1.32/api/csr-create-request.json");
        assert_eq!(got["metadata"]["name"], want["metadata"]["name"]);
        for field in ["signerName", "expirationSeconds", "usages"] {
            assert_eq!(got["spec"][field], want["spec"][field], "{field}");
        }
        assert!(is_ours(&obj));
        assert!(!is_ours(&csr("k8s-1.32/api/csr-issued.json")));
    }

    #[test]
    fn failure_and_timeout_messages_name_the_fix() {
        let e = failed(
            "s.n",
            KUBELET_SERVING,
            "SignerValidationFailure",
            "subject organization is not system:nodes",
        )
        .to_string();
        assert!(
            e.contains("subject organization is not system:nodes") && e.contains("--signer"),
            "{e}"
        );
        let e = timeout(
            "s.n",
            "example.com/x",
            &CsrState::Approved,
            true,
            Duration::from_secs(2),
        )
        .to_string();
        assert!(
            e.contains("example.com/x") && e.contains("--signer") && e.contains("2s"),
            "{e}"
        );
        let e = timeout(
            "s.n",
            KUBELET_SERVING,
            &CsrState::Pending,
            false,
            Duration::from_secs(2),
        )
        .to_string();
        assert!(
            e.contains("kubectl certificate approve s.n") && e.contains("--approve"),
            "{e}"
        );
    }
}
