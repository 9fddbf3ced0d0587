//! The steps a run is made of, each with the API call (or file write) it makes: what a dry run
//! prints and what the executor records as it goes.

use std::path::PathBuf;

use serde_json::Value;

use super::csr::api_path_csr;
use super::report::PlannedCall;
use super::retain::RetainedCa;
use crate::cert::rfc3339;

/// The two kinds of webhook configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookKind {
    /// `MutatingWebhookConfiguration`.
    Mutating,
    /// `ValidatingWebhookConfiguration`.
    Validating,
}

impl WebhookKind {
    /// `mutating` or `validating`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mutating => "mutating",
            Self::Validating => "validating",
        }
    }

    /// The resource, e.g. `mutatingwebhookconfigurations`.
    pub fn plural(self) -> String {
        format!("{}webhookconfigurations", self.name())
    }

    /// The API path of configuration `name`.
    pub fn path(self, name: &str) -> String {
        format!(
            "/apis/admissionregistration.k8s.io/v1/{}/{name}",
            self.plural()
        )
    }
}

/// One thing the run does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Delete the stale CSR gmsa made earlier.
    DeleteStaleCsr {
        /// CSR name.
        name: String,
    },
    /// Create the CSR (key and request made by the executor).
    CreateCsr {
        /// CSR name.
        name: String,
        /// Signer.
        signer: String,
    },
    /// Approve it.
    Approve {
        /// CSR name.
        name: String,
    },
    /// Wait for `status.certificate` and check it (key, names, validity, chain) before any
    /// write.
    WaitForCertificate {
        /// CSR name.
        name: String,
    },
    /// Write the Secret in one request.
    WriteSecret {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Replace the one there (else create).
        replace: bool,
    },
    /// Write the directory (atomically).
    WriteDir {
        /// The directory.
        dir: PathBuf,
    },
    /// Patch a webhook configuration's `caBundle`s (and
    /// [`super::retain::RETAINED_CA_ANNOTATION`]).
    PatchCaBundle {
        /// Which kind.
        kind: WebhookKind,
        /// Its name.
        config: String,
        /// The PEM bundle set on every webhook: the new CA bundle, then the retained CAs.
        bundle: String,
        /// The CAs kept from the current `caBundle`.
        retained: Vec<RetainedCa>,
        /// The JSON patch.
        patch: Value,
    },
}

impl Step {
    /// The API call (or file write) this step makes.
    pub fn call(&self) -> PlannedCall {
        match self {
            Self::DeleteStaleCsr { name } => PlannedCall::new(
                "DELETE",
                api_path_csr(Some(name)),
                "delete the stale CSR gmsa made earlier".into(),
            ),
            Self::CreateCsr { name, signer } => PlannedCall::new(
                "POST",
                api_path_csr(None),
                format!("create CSR {name} for signer {signer}"),
            ),
            Self::Approve { name } => PlannedCall::new(
                "PUT",
                format!("{}/approval", api_path_csr(Some(name))),
                "approve the CSR (condition Approved, reason GmsaApproved)".into(),
            ),
            Self::WaitForCertificate { name } => PlannedCall::new(
                "GET",
                format!(
                    "{}?fieldSelector=metadata.name%3D{name}&watch=true",
                    api_path_csr(None)
                ),
                "watch for the certificate".into(),
            ),
            Self::WriteSecret {
                namespace,
                name,
                replace,
            } => {
                let (method, path, verb) = match replace {
                    true => (
                        "PUT",
                        format!("/api/v1/namespaces/{namespace}/secrets/{name}"),
                        "replace",
                    ),
                    false => (
                        "POST",
                        format!("/api/v1/namespaces/{namespace}/secrets"),
                        "create",
                    ),
                };
                PlannedCall::new(
                    method,
                    path,
                    format!("{verb} Secret {namespace}/{name} (tls.crt, tls.key, ca.crt)"),
                )
            }
            Self::WriteDir { dir } => PlannedCall::new(
                "WRITE",
                dir.display().to_string(),
                "write tls.crt, tls.key (0600), ca.crt".into(),
            ),
            Self::PatchCaBundle {
                kind,
                config,
                retained,
                ..
            } => {
                let mut what = format!("set caBundle on every webhook of {config}");
                if !retained.is_empty() {
                    let kept: Vec<String> = retained
                        .iter()
                        .map(|r| format!("{} until {}", r.subject, rfc3339(r.until)))
                        .collect();
                    what.push_str(&format!(
                        " (the new CA bundle, then the CA certificates the webhook may still \
                         be serving under: {})",
                        kept.join(", ")
                    ));
                }
                PlannedCall::new("PATCH", kind.path(config), what)
            }
        }
    }

    /// `mutatingwebhookconfiguration/NAME` for a patch.
    pub fn patched(&self) -> Option<String> {
        match self {
            Self::PatchCaBundle { kind, config, .. } => {
                Some(format!("{}webhookconfiguration/{config}", kind.name()))
            }
            _ => None,
        }
    }
}
