//! The `issue`/`renew` run against the API server:
//!
//! 1. find the CA bundle (`--ca-file`, else ConfigMap `kube-root-ca.crt`, else the kubeconfig's
//!    cluster CA);
//! 2. judge what is in place (Secret, files); keep it when valid and not due ([`Action::Unchanged`]);
//! 3. make a key and a PKCS#10 request for the signer;
//! 4. replace a stale CSR of the same name if gmsa made it; create the CSR;
//! 5. approve it through `/approval` (with `approve`);
//! 6. watch until `status.certificate`, `Denied` or `Failed`, up to the timeout;
//! 7. check the certificate (key, names, validity, chain to the CA bundle) before writing
//!    anything;
//! 8. write the Secret (one request), the files (atomic), and patch webhook `caBundle`s.
//!
//! With `dry_run` only reads are sent; the writes are returned as [`PlannedCall`]s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::Client;
use serde::Serialize;

use crate::assess::{assess, Assessment, Material};
use crate::ca::{verify_chain, CaBundle, CaSource};
use crate::cert::{
    check_valid_now, inspect, key_matches, missing_sans, now_unix, parse_pem_chain, CertInfo,
};
use crate::duration::{format_duration, format_secs, secs};
use crate::keys::{generate_key, load_key, KeyType};
use crate::request::{build_csr, CertRequest, SignerProfile, KUBELET_SERVING};
use crate::write::{
    ca_bundle_patch, read_dir_texts, secret_texts, tls_secret, write_dir, Issued, MANAGED_BY,
};
use crate::CertsError;

/// Annotation on CSRs gmsa creates: the service it is for.
pub const SERVICE_ANNOTATION: &str = "gmsa.k8s.io/service";

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
        }
    }

    fn csr_name(&self) -> String {
        self.csr_name
            .clone()
            .unwrap_or_else(|| self.request.default_csr_name())
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

/// The result of a run (`-o json` prints it).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
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
    /// Webhook configurations patched (`mutatingwebhookconfiguration/NAME`).
    pub webhooks_patched: Vec<String>,
    /// Writes made, or in a dry run, the calls that would be made (reads included).
    pub calls: Vec<PlannedCall>,
    /// The CSR object that was (or would be) created.
    pub csr_object: Option<serde_json::Value>,
    /// Warnings.
    pub warnings: Vec<String>,
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

/// Turns a client error into ours; a 403 names the RBAC rule to grant.
fn api_error(action: String, grant: &str, err: kube::Error) -> CertsError {
    match err {
        kube::Error::Api(status) if status.code == 403 => CertsError::Forbidden {
            action,
            grant: grant.to_string(),
            message: status.message,
        },
        source => CertsError::Kube { action, source },
    }
}

fn is_status(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == code)
}

const CSR_GROUP: &str = "(API group certificates.k8s.io)";

fn grant_approve(signer: &str, name: &str) -> String {
    format!(
        "verb \"update\" on certificatesigningrequests/approval and verb \"approve\" on signers \
         with resourceNames [\"{signer}\"] {CSR_GROUP}, or run without --approve and approve it \
         yourself: kubectl certificate approve {name}"
    )
}

struct Run<'a> {
    client: Client,
    opts: &'a IssueOptions,
    progress: &'a (dyn Fn(&Progress) + Sync),
    calls: Vec<PlannedCall>,
    warnings: Vec<String>,
}

impl Run<'_> {
    fn step(&self, msg: String) {
        (self.progress)(&Progress::Step(msg));
    }

    fn warn(&mut self, msg: String) {
        (self.progress)(&Progress::Warning(msg.clone()));
        self.warnings.push(msg);
    }

    fn call(&mut self, method: &str, path: String, what: String) {
        self.calls.push(PlannedCall {
            method: method.to_string(),
            path,
            what,
        });
    }

    fn ns(&self) -> &str {
        &self.opts.request.namespace
    }

    async fn ca_bundle(&mut self) -> Result<CaBundle, CertsError> {
        if let Some((path, text)) = &self.opts.ca_file {
            return CaBundle::from_pem(text, CaSource::File(path.clone()));
        }
        let ns = self.ns().to_string();
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
        self.call(
            "GET",
            format!("/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt"),
            "read the cluster CA bundle".into(),
        );
        match api.get_opt("kube-root-ca.crt").await {
            Ok(Some(cm)) => {
                if let Some(text) = cm.data.as_ref().and_then(|d| d.get("ca.crt")) {
                    return CaBundle::from_pem(text, CaSource::ConfigMap { namespace: ns });
                }
                self.warn(format!("ConfigMap {ns}/kube-root-ca.crt has no ca.crt"));
            }
            Ok(None) => {}
            Err(e) if is_status(&e, 403) => self.warn(format!(
                "not allowed to read ConfigMap {ns}/kube-root-ca.crt (grant verb \"get\" on configmaps in namespace {ns}); using the kubeconfig's cluster CA"
            )),
            Err(e) => {
                return Err(api_error(
                    format!("get ConfigMap {ns}/kube-root-ca.crt"),
                    "verb \"get\" on configmaps",
                    e,
                ))
            }
        }
        match &self.opts.kubeconfig_ca {
            Some(ders) if !ders.is_empty() => Ok(CaBundle::from_ders(ders.clone(), CaSource::Kubeconfig)),
            _ => Err(CertsError::NoCaBundle(format!(
                "no --ca-file, no ConfigMap {ns}/kube-root-ca.crt, and the kubeconfig has no cluster CA"
            ))),
        }
    }

    async fn existing_secret(&mut self, name: &str) -> Result<Option<Secret>, CertsError> {
        let ns = self.ns().to_string();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        self.call(
            "GET",
            format!("/api/v1/namespaces/{ns}/secrets/{name}"),
            "read the Secret in place".into(),
        );
        let secret = api.get_opt(name).await.map_err(|e| {
            api_error(
                format!("get Secret {ns}/{name}"),
                &format!("verbs \"get\", \"create\", \"update\" on secrets in namespace {ns}"),
                e,
            )
        })?;
        if let Some(s) = &secret {
            let ty = s.type_.clone().unwrap_or_else(|| "Opaque".to_string());
            if ty != "kubernetes.io/tls" {
                return Err(CertsError::SecretType {
                    namespace: ns,
                    name: name.to_string(),
                    found: ty,
                });
            }
        }
        Ok(secret)
    }

    /// Judges every output; `Ok(None)` if all are valid (the kept certificate in `kept`).
    fn judge(
        &self,
        places: &[(String, [Option<String>; 3])],
        bundle: &CaBundle,
    ) -> (Option<String>, Option<CertInfo>) {
        let now = now_unix();
        let renew = secs(self.opts.renew_before);
        let mut kept = None;
        for (what, [c, k, a]) in places {
            let m = Material {
                cert_pem: c.as_deref(),
                key_pem: k.as_deref(),
                ca_pem: a.as_deref(),
            };
            match assess(what, &m, &self.opts.request, bundle, now, renew) {
                Assessment::Valid(info) => kept = Some(info),
                other => return (Some(other.describe()), None),
            }
        }
        (None, kept)
    }

    async fn wait(
        &mut self,
        api: &Api<CertificateSigningRequest>,
        name: &str,
    ) -> Result<Vec<u8>, CertsError> {
        let signer = self.opts.request.signer.clone();
        let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut stream = watcher(api.clone(), cfg).boxed();
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + self.opts.timeout;
        let mut ticker = tokio::time::interval(self.opts.progress_every);
        let mut state = CsrState::Pending;
        loop {
            tokio::select! {
                event = stream.next() => match event {
                    Some(Ok(watcher::Event::Apply(csr) | watcher::Event::InitApply(csr))) => {
                        state = csr_state(&csr);
                        match &state {
                            CsrState::Issued(pem) => return Ok(pem.clone()),
                            CsrState::Denied(reason, message) => return Err(CertsError::Denied {
                                name: name.to_string(), reason: reason.clone(), message: message.clone(),
                            }),
                            CsrState::Failed(reason, message) => return Err(failed(name, &signer, reason, message)),
                            CsrState::Pending | CsrState::Approved => {}
                        }
                    }
                    Some(Ok(watcher::Event::Delete(_))) => {
                        return Err(CertsError::CsrDeleted(name.to_string()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        let source = match e {
                            watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => Some(e),
                            _ => None,
                        };
                        match source {
                            Some(e) if is_status(&e, 403) => return Err(api_error(
                                format!("watch CertificateSigningRequest {name:?}"),
                                &format!("verbs \"list\" and \"watch\" on certificatesigningrequests {CSR_GROUP}"),
                                e,
                            )),
                            other => {
                                tracing::debug!(error = ?other, "CSR watch error; retrying");
                                tokio::time::sleep(Duration::from_millis(300)).await;
                            }
                        }
                    }
                    None => tokio::time::sleep(Duration::from_millis(300)).await,
                },
                _ = ticker.tick() => {
                    let what = match state {
                        CsrState::Approved => format!("CertificateSigningRequest {name} to be signed by {signer}"),
                        _ => format!("CertificateSigningRequest {name} to be approved and signed by {signer}"),
                    };
                    (self.progress)(&Progress::Waiting { what, elapsed: start.elapsed() });
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(timeout(name, &signer, &state, self.opts.approve, start.elapsed()));
                }
            }
        }
    }
}

fn failed(name: &str, signer: &str, reason: &str, message: &str) -> CertsError {
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

fn timeout(
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

fn api_path_csr(name: Option<&str>) -> String {
    let base = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    match name {
        Some(n) => format!("{base}/{n}"),
        None => base.to_string(),
    }
}

/// Issues (or keeps) the serving certificate as `opts` say; progress goes to `progress`.
pub async fn issue(
    client: Client,
    opts: &IssueOptions,
    progress: &(dyn Fn(&Progress) + Sync),
) -> Result<Outcome, CertsError> {
    let profile = opts.request.validate()?;
    let mut run = Run {
        client: client.clone(),
        opts,
        progress,
        calls: Vec::new(),
        warnings: Vec::new(),
    };
    let ns = opts.request.namespace.clone();
    let name = opts.csr_name();
    let signer = opts.request.signer.clone();
    let bundle = run.ca_bundle().await?;
    run.step(format!("CA bundle from {}", bundle.source));
    check_webhooks_exist(&mut run).await?;

    // 2. What is in place.
    let mut places = Vec::new();
    let mut existing_secret = None;
    if let Some(secret) = &opts.secret {
        existing_secret = run.existing_secret(secret).await?;
        let texts = existing_secret
            .as_ref()
            .map(secret_texts)
            .unwrap_or_default();
        places.push((format!("Secret {ns}/{secret}"), texts));
    }
    if let Some(dir) = &opts.certs_dir {
        places.push((format!("directory {}", dir.display()), read_dir_texts(dir)?));
    }
    let (why_issue, kept) = if places.is_empty() {
        (Some("no Secret or directory to check".to_string()), None)
    } else {
        run.judge(&places, &bundle)
    };
    let mut outcome = Outcome {
        action: Action::Issued,
        reason: String::new(),
        csr_name: name.clone(),
        signer: signer.clone(),
        secret: opts.secret.as_ref().map(|s| format!("{ns}/{s}")),
        certs_dir: opts.certs_dir.clone(),
        certificate: None,
        ca_source: bundle.source.to_string(),
        webhooks_patched: Vec::new(),
        calls: Vec::new(),
        csr_object: None,
        warnings: Vec::new(),
    };
    if let (None, Some(info)) = (&why_issue, &kept) {
        if !opts.overwrite {
            run.step(format!(
                "the certificate in place is valid until {} and covers {:?}: nothing to issue",
                crate::cert::rfc3339(info.not_after),
                info.dns_names
            ));
            outcome.action = if opts.dry_run {
                Action::DryRun
            } else {
                Action::Unchanged
            };
            outcome.reason = "the certificate in place is valid".into();
            outcome.certificate = kept.clone();
            outcome.webhooks_patched = patch_webhooks(&mut run, &bundle.pem).await?;
            outcome.calls = run.calls;
            outcome.warnings = run.warnings;
            return Ok(outcome);
        }
    }
    outcome.reason = match why_issue {
        _ if opts.overwrite => "--overwrite".to_string(),
        Some(why) => why,
        None => "re-issue".to_string(),
    };
    run.step(format!("issuing a new certificate: {}", outcome.reason));

    // 3. Key and request.
    let key = match &opts.key_pem {
        Some((what, pem)) => load_key(pem, what)?,
        None => generate_key(opts.key_type)?,
    };
    let built = build_csr(&opts.request, &key)?;
    let csr = csr_object(
        &name,
        &opts.request,
        &built.pem,
        &built.usages,
        opts.duration,
    );
    outcome.csr_object = serde_json::to_value(&csr).ok();

    // 4. Replace a stale CSR of ours; refuse someone else's.
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    run.call(
        "GET",
        api_path_csr(Some(&name)),
        "look for a CSR of the same name".into(),
    );
    let old = api.get_opt(&name).await.map_err(|e| {
        api_error(
            format!("get CertificateSigningRequest {name:?}"),
            &format!("verb \"get\" on certificatesigningrequests {CSR_GROUP}"),
            e,
        )
    })?;
    if let Some(old) = old {
        if !is_ours(&old) {
            return Err(CertsError::ForeignCsr {
                name,
                label: format!("{}={}", MANAGED_BY.0, MANAGED_BY.1),
            });
        }
        run.call(
            "DELETE",
            api_path_csr(Some(&name)),
            "delete the stale CSR gmsa made earlier".into(),
        );
        if !opts.dry_run {
            run.step(format!(
                "deleting the stale CertificateSigningRequest {name} (made by gmsa earlier)"
            ));
            api.delete(&name, &DeleteParams::default())
                .await
                .map_err(|e| {
                    api_error(
                        format!("delete CertificateSigningRequest {name:?}"),
                        &format!("verb \"delete\" on certificatesigningrequests {CSR_GROUP}"),
                        e,
                    )
                })?;
        }
    }
    run.call(
        "POST",
        api_path_csr(None),
        format!("create CSR {name} for signer {signer}"),
    );
    if opts.approve {
        run.call(
            "PUT",
            format!("{}/approval", api_path_csr(Some(&name))),
            "approve the CSR (condition Approved, reason GmsaApproved)".into(),
        );
    }
    run.call(
        "GET",
        format!(
            "{}?fieldSelector=metadata.name%3D{name}&watch=true",
            api_path_csr(None)
        ),
        "watch for the certificate".into(),
    );
    if opts.dry_run {
        if let Some(secret) = &opts.secret {
            let method = if existing_secret.is_some() {
                "PUT"
            } else {
                "POST"
            };
            let path = match method {
                "PUT" => format!("/api/v1/namespaces/{ns}/secrets/{secret}"),
                _ => format!("/api/v1/namespaces/{ns}/secrets"),
            };
            run.call(
                method,
                path,
                format!("write Secret {ns}/{secret} (tls.crt, tls.key, ca.crt)"),
            );
        }
        if let Some(dir) = &opts.certs_dir {
            run.call(
                "WRITE",
                dir.display().to_string(),
                "write tls.crt, tls.key (0600), ca.crt".into(),
            );
        }
        patch_webhooks(&mut run, &bundle.pem).await?;
        outcome.action = Action::DryRun;
        outcome.calls = run.calls;
        outcome.warnings = run.warnings;
        return Ok(outcome);
    }

    run.step(format!(
        "creating CertificateSigningRequest {name} for signer {signer}"
    ));
    let created = api
        .create(&PostParams::default(), &csr)
        .await
        .map_err(|e| {
            api_error(
                format!("create CertificateSigningRequest {name:?}"),
                &format!("verb \"create\" on certificatesigningrequests {CSR_GROUP}"),
                e,
            )
        })?;

    // 5. Approve.
    if opts.approve {
        approve(&mut run, &api, created, &name).await?;
    }

    // 6. Wait.
    let cert_bytes = run.wait(&api, &name).await?;
    run.step(format!("CertificateSigningRequest {name} signed"));

    // 7. Check before writing anything.
    let cert_pem = String::from_utf8(cert_bytes).map_err(|_| CertsError::InvalidCertificate {
        what: format!("CertificateSigningRequest {name} status.certificate"),
        detail: "not UTF-8 PEM".into(),
    })?;
    let what = format!("CertificateSigningRequest {name}");
    let chain = parse_pem_chain(&cert_pem, &what)?;
    let info = inspect(&chain[0], &what)?;
    if !key_matches(&chain[0], &key, &what)? {
        return Err(CertsError::KeyMismatch { what });
    }
    let missing = missing_sans(&info, &opts.request.dns_names(), &opts.request.ips);
    if !missing.is_empty() {
        return Err(CertsError::MissingSans { what, missing });
    }
    let now = now_unix();
    check_valid_now(&info, now, &what)?;
    verify_chain(&chain, &bundle, now)?;
    let lifetime = info.not_after - now;
    if lifetime <= secs(opts.renew_before) {
        run.warn(format!(
            "the signer issued a certificate valid for only {}, not more than the renewal window {}: every renew will issue again (lower --renew-before, or raise the signer's maximum duration)",
            format_secs(lifetime),
            format_duration(opts.renew_before)
        ));
    }
    if profile == SignerProfile::Custom
        && matches!(
            bundle.source,
            CaSource::ConfigMap { .. } | CaSource::Kubeconfig
        )
    {
        tracing::debug!("custom signer verified against the cluster CA");
    }
    let issued = Issued {
        cert_pem,
        key_pem: key.serialize_pem(),
        ca_pem: bundle.pem.clone(),
    };

    // 8. Write.
    if let Some(secret) = &opts.secret {
        write_secret(&mut run, secret, &issued, existing_secret).await?;
    }
    if let Some(dir) = &opts.certs_dir {
        run.step(format!(
            "writing {}/tls.crt, tls.key, ca.crt",
            dir.display()
        ));
        write_dir(dir, &issued)?;
        run.call(
            "WRITE",
            dir.display().to_string(),
            "tls.crt, tls.key (0600), ca.crt".into(),
        );
    }
    outcome.webhooks_patched = patch_webhooks(&mut run, &bundle.pem).await?;
    outcome.certificate = Some(info);
    outcome.calls = run.calls;
    outcome.warnings = run.warnings;
    Ok(outcome)
}

async fn approve(
    run: &mut Run<'_>,
    api: &Api<CertificateSigningRequest>,
    mut csr: CertificateSigningRequest,
    name: &str,
) -> Result<(), CertsError> {
    let signer = run.opts.request.signer.clone();
    for attempt in 0..3 {
        match csr_state(&csr) {
            CsrState::Pending => {}
            CsrState::Denied(reason, message) => {
                return Err(CertsError::Denied {
                    name: name.to_string(),
                    reason,
                    message,
                })
            }
            CsrState::Failed(reason, message) => {
                return Err(failed(name, &signer, &reason, &message))
            }
            CsrState::Approved | CsrState::Issued(_) => return Ok(()),
        }
        run.step(format!("approving CertificateSigningRequest {name}"));
        let status = csr.status.get_or_insert_with(Default::default);
        status
            .conditions
            .get_or_insert_with(Vec::new)
            .push(CertificateSigningRequestCondition {
                type_: "Approved".to_string(),
                status: "True".to_string(),
                reason: Some("GmsaApproved".to_string()),
                message: Some("approved by gmsa certs issue".to_string()),
                ..CertificateSigningRequestCondition::default()
            });
        match api
            .replace_subresource("approval", name, &PostParams::default(), &csr)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if (is_status(&e, 409) || is_status(&e, 422)) && attempt < 2 => {
                // Changed meanwhile (e.g. denied by someone else): look again.
                csr = api.get(name).await.map_err(|e| {
                    api_error(
                        format!("get CertificateSigningRequest {name:?}"),
                        &format!("verb \"get\" on certificatesigningrequests {CSR_GROUP}"),
                        e,
                    )
                })?;
            }
            Err(e) => {
                return Err(api_error(
                    format!("approve CertificateSigningRequest {name:?}"),
                    &grant_approve(&signer, name),
                    e,
                ))
            }
        }
    }
    Err(CertsError::Conflict(format!(
        "CertificateSigningRequest {name:?}"
    )))
}

async fn write_secret(
    run: &mut Run<'_>,
    name: &str,
    issued: &Issued,
    mut existing: Option<Secret>,
) -> Result<(), CertsError> {
    let ns = run.ns().to_string();
    let api: Api<Secret> = Api::namespaced(run.client.clone(), &ns);
    let grant = format!("verbs \"get\", \"create\", \"update\" on secrets in namespace {ns}");
    for attempt in 0..2 {
        let secret = tls_secret(&ns, name, issued, existing.as_ref());
        let result = match &existing {
            Some(_) => {
                run.step(format!("replacing Secret {ns}/{name}"));
                run.call(
                    "PUT",
                    format!("/api/v1/namespaces/{ns}/secrets/{name}"),
                    "replace the Secret".into(),
                );
                api.replace(name, &PostParams::default(), &secret).await
            }
            None => {
                run.step(format!("creating Secret {ns}/{name}"));
                run.call(
                    "POST",
                    format!("/api/v1/namespaces/{ns}/secrets"),
                    "create the Secret".into(),
                );
                api.create(&PostParams::default(), &secret).await
            }
        };
        match result {
            Ok(_) => return Ok(()),
            Err(e) if attempt == 0 && (is_status(&e, 409)) => {
                // Created or changed by someone else meanwhile: read it and replace once more.
                existing = api
                    .get_opt(name)
                    .await
                    .map_err(|e| api_error(format!("get Secret {ns}/{name}"), &grant, e))?;
            }
            Err(e) => {
                let verb = if existing.is_some() {
                    "update"
                } else {
                    "create"
                };
                return Err(api_error(format!("{verb} Secret {ns}/{name}"), &grant, e));
            }
        }
    }
    Err(CertsError::Conflict(format!("Secret {ns}/{name}")))
}

async fn patch_one<K>(
    run: &mut Run<'_>,
    kind: &str,
    name: &str,
    ca_pem: &str,
) -> Result<Option<bool>, CertsError>
where
    K: kube::Resource<Scope = kube::core::ClusterResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::all(run.client.clone());
    let plural = format!("{kind}webhookconfigurations");
    let path = format!("/apis/admissionregistration.k8s.io/v1/{plural}/{name}");
    let grant =
        format!("verbs \"get\" and \"patch\" on {plural} (API group admissionregistration.k8s.io)");
    run.call(
        "GET",
        path.clone(),
        format!("read {kind} webhook configuration {name}"),
    );
    let Some(config) = api
        .get_opt(name)
        .await
        .map_err(|e| api_error(format!("get {plural} {name:?}"), &grant, e))?
    else {
        return Ok(None);
    };
    let value = serde_json::to_value(&config).unwrap_or_default();
    let Some(patch) = ca_bundle_patch(&value, ca_pem) else {
        return Ok(Some(false));
    };
    run.call(
        "PATCH",
        path,
        format!("set caBundle on every webhook of {name}"),
    );
    if run.opts.dry_run {
        return Ok(Some(true));
    }
    run.step(format!(
        "setting caBundle in {kind}webhookconfiguration {name}"
    ));
    let patch: json_patch::Patch = serde_json::from_value(patch).map_err(|e| CertsError::Kube {
        action: format!("build the caBundle patch for {name}"),
        source: kube::Error::SerdeError(e),
    })?;
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .map_err(|e| api_error(format!("patch {plural} {name:?}"), &grant, e))?;
    Ok(Some(true))
}

async fn exists<K>(run: &mut Run<'_>, kind: &str, name: &str) -> Result<bool, CertsError>
where
    K: kube::Resource<Scope = kube::core::ClusterResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::all(run.client.clone());
    let plural = format!("{kind}webhookconfigurations");
    run.call(
        "GET",
        format!("/apis/admissionregistration.k8s.io/v1/{plural}/{name}"),
        format!("check that {kind} webhook configuration {name} exists"),
    );
    let grant =
        format!("verbs \"get\" and \"patch\" on {plural} (API group admissionregistration.k8s.io)");
    api.get_opt(name)
        .await
        .map(|o| o.is_some())
        .map_err(|e| api_error(format!("get {plural} {name:?}"), &grant, e))
}

/// Fails early (before any write) when a `--patch-webhook` name matches nothing.
async fn check_webhooks_exist(run: &mut Run<'_>) -> Result<(), CertsError> {
    for name in run.opts.patch_webhooks.clone() {
        let m = exists::<MutatingWebhookConfiguration>(run, "mutating", &name).await?;
        let v = exists::<ValidatingWebhookConfiguration>(run, "validating", &name).await?;
        if !m && !v {
            return Err(CertsError::WebhookNotFound(name));
        }
    }
    Ok(())
}

async fn patch_webhooks(run: &mut Run<'_>, ca_pem: &str) -> Result<Vec<String>, CertsError> {
    let mut patched = Vec::new();
    for name in run.opts.patch_webhooks.clone() {
        let m = patch_one::<MutatingWebhookConfiguration>(run, "mutating", &name, ca_pem).await?;
        let v =
            patch_one::<ValidatingWebhookConfiguration>(run, "validating", &name, ca_pem).await?;
        if m.is_none() && v.is_none() {
            return Err(CertsError::WebhookNotFound(name));
        }
        if m == Some(true) {
            patched.push(format!("mutatingwebhookconfiguration/{name}"));
        }
        if v == Some(true) {
            patched.push(format!("validatingwebhookconfiguration/{name}"));
        }
    }
    Ok(patched)
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
