//! What a run is asked ([`IssueOptions`]), what it tells on the way ([`Progress`]) and what it
//! answers ([`IssueReport`], the `-o json` of `gmsa certs issue`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::cert::{now_unix, CertInfo};
use crate::keys::KeyType;
use crate::request::CertRequest;

/// Everything `issue` needs.
#[derive(Clone, Debug)]
pub struct IssueOptions {
    /// Service, namespace, names, signer.
    pub request: CertRequest,
    /// CSR object name (default `S.N`).
    pub csr_name: Option<String>,
    /// Key to generate.
    pub key_type: KeyType,
    /// An existing PKCS#8 PEM key to use instead (`--key-file`), with its origin.
    pub key_pem: Option<(String, String)>,
    /// Approve the CSR ourselves.
    pub approve: bool,
    /// `spec.expirationSeconds`.
    pub duration: Option<Duration>,
    /// How long to wait for the certificate.
    pub timeout: Duration,
    /// Target Secret name in the request's namespace.
    pub secret: Option<String>,
    /// Target directory.
    pub certs_dir: Option<PathBuf>,
    /// Webhook configurations whose `caBundle` to set.
    pub patch_webhooks: Vec<String>,
    /// `--ca-file` contents and path.
    pub ca_file: Option<(PathBuf, String)>,
    /// The kubeconfig's cluster CA (DER), the last fallback.
    pub kubeconfig_ca: Option<Vec<Vec<u8>>>,
    /// Re-issue even if valid.
    pub overwrite: bool,
    /// Re-issue when the certificate ends within this window.
    pub renew_before: Duration,
    /// Send no writes.
    pub dry_run: bool,
    /// How often to report progress while waiting.
    pub progress_every: Duration,
    /// The time to judge certificates and retained CAs by (Unix seconds); `None` is the system
    /// clock (tests set it).
    pub now: Option<i64>,
}

impl IssueOptions {
    /// Options with the defaults for `request`: approve, 1 year, 5 minute timeout, renew
    /// within 30 days.
    pub fn new(request: CertRequest) -> Self {
        Self {
            request,
            csr_name: None,
            key_type: KeyType::EcdsaP256,
            key_pem: None,
            approve: true,
            duration: Some(Duration::from_secs(365 * 86_400)),
            timeout: Duration::from_secs(300),
            secret: None,
            certs_dir: None,
            patch_webhooks: Vec::new(),
            ca_file: None,
            kubeconfig_ca: None,
            overwrite: false,
            renew_before: Duration::from_secs(30 * 86_400),
            dry_run: false,
            progress_every: Duration::from_secs(5),
            now: None,
        }
    }

    /// The CSR object's name.
    pub fn csr_name(&self) -> String {
        self.csr_name
            .clone()
            .unwrap_or_else(|| self.request.default_csr_name())
    }

    /// Now, by [`IssueOptions::now`] or the system clock (Unix seconds).
    pub fn now(&self) -> i64 {
        self.now.unwrap_or_else(now_unix)
    }
}

/// Progress reports for people (the CLI prints them on stderr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A step starts or ends.
    Step(String),
    /// Still waiting for something.
    Waiting {
        /// What for.
        what: String,
        /// Since when.
        elapsed: Duration,
    },
    /// Worth telling, not fatal.
    Warning(String),
}

/// What the run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// A certificate was issued and written.
    Issued,
    /// What was in place is valid; nothing (beyond `caBundle` convergence) was written.
    Unchanged,
    /// Dry run: nothing was written.
    DryRun,
}

/// An API call (or file write) the run made or, in a dry run, would make.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlannedCall {
    /// HTTP method, or `WRITE` for files.
    pub method: String,
    /// API path or file path.
    pub path: String,
    /// What for.
    pub what: String,
}

impl PlannedCall {
    /// A call of `method` on `path` for `what`.
    pub fn new(method: &str, path: String, what: String) -> Self {
        Self {
            method: method.to_string(),
            path,
            what,
        }
    }
}

/// The result of a run (`-o json` prints it).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueReport {
    /// What happened.
    pub action: Action,
    /// Why (e.g. why it was re-issued or left alone).
    pub reason: String,
    /// The CSR name.
    pub csr_name: String,
    /// The signer.
    pub signer: String,
    /// `namespace/name` of the Secret, if any.
    pub secret: Option<String>,
    /// The directory, if any.
    pub certs_dir: Option<PathBuf>,
    /// The certificate in place afterwards (issued or kept); absent in a dry run that would issue.
    pub certificate: Option<CertInfo>,
    /// Where the CA bundle came from.
    pub ca_source: String,
    /// Webhook configurations patched (`mutatingwebhookconfiguration/NAME`); in a dry run, those
    /// that would be.
    pub webhooks_patched: Vec<String>,
    /// The reads made and the writes made, or in a dry run, that would be made.
    pub calls: Vec<PlannedCall>,
    /// The CSR object that was (or would be) created.
    pub csr_object: Option<serde_json::Value>,
    /// Warnings.
    pub warnings: Vec<String>,
}
