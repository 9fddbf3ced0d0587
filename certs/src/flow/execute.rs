//! The executor: reads what is in place ([`Observed`]), asks [`plan`] what to do, and runs the
//! steps against the API server (a dry run returns them as calls instead).

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::Client;
use rcgen::KeyPair;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::csr::{csr_object, csr_state, failed, is_ours, timeout, CsrState};
use super::plan::{decide, plan, CsrSeen, Decision, Found, Observed, SecretSeen, WebhookSeen};
use super::report::{Action, IssueOptions, IssueReport, PlannedCall, Progress};
use super::step::{Step, WebhookKind};
use crate::ca::{verify_chain, CaBundle, CaSource};
use crate::cert::{
    check_valid_now, inspect, key_matches, missing_sans, parse_pem_chain, rfc3339, CertInfo,
};
use crate::duration::{format_duration, format_secs, secs};
use crate::keys::{generate_key, load_key};
use crate::request::build_csr;
use crate::write::{read_dir_texts, secret_texts, tls_secret, write_dir, Issued};
use crate::CertsError;

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

fn grant_secrets(ns: &str) -> String {
    format!("verbs \"get\", \"create\", \"update\" on secrets in namespace {ns}")
}

fn grant_webhooks(kind: WebhookKind) -> String {
    format!(
        "verbs \"get\" and \"patch\" on {} (API group admissionregistration.k8s.io)",
        kind.plural()
    )
}

/// The certificate being issued: the key and CSR made for it, then what the API server said.
struct Issuing {
    key: KeyPair,
    csr: CertificateSigningRequest,
    created: Option<CertificateSigningRequest>,
    issued: Option<(Issued, CertInfo)>,
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
        self.calls.push(PlannedCall::new(method, path, what));
    }

    fn ns(&self) -> &str {
        &self.opts.request.namespace
    }

    fn csrs(&self) -> Api<CertificateSigningRequest> {
        Api::all(self.client.clone())
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

    /// Every read, before any write: the CA bundle, the webhook configurations, the Secret, the
    /// directory, and (when a certificate is to be issued) a CSR of the same name.
    async fn observe(&mut self, now: i64) -> Result<(Observed, Option<Secret>), CertsError> {
        let bundle = self.ca_bundle().await?;
        self.step(format!("CA bundle from {}", bundle.source));
        let mut webhooks = Vec::new();
        for name in self.opts.patch_webhooks.clone() {
            webhooks.push(WebhookSeen {
                mutating: self
                    .webhook::<MutatingWebhookConfiguration>(WebhookKind::Mutating, &name)
                    .await?,
                validating: self
                    .webhook::<ValidatingWebhookConfiguration>(WebhookKind::Validating, &name)
                    .await?,
                name,
            });
        }
        let ns = self.ns().to_string();
        let mut places = Vec::new();
        let mut secret = None;
        let mut existing = None;
        if let Some(name) = &self.opts.secret {
            existing = self.existing_secret(name).await?;
            let texts = existing.as_ref().map(secret_texts).unwrap_or_default();
            places.push(Found::judge(
                format!("Secret {ns}/{name}"),
                &texts,
                self.opts,
                &bundle,
                now,
            ));
            secret = Some(match &existing {
                None => SecretSeen::Absent,
                Some(s) => SecretSeen::Present {
                    type_: s.type_.clone().unwrap_or_else(|| "Opaque".to_string()),
                },
            });
        }
        if let Some(dir) = &self.opts.certs_dir {
            let texts = read_dir_texts(dir)?;
            let what = format!("directory {}", dir.display());
            places.push(Found::judge(what, &texts, self.opts, &bundle, now));
        }
        let csr = match decide(&places, self.opts.overwrite) {
            Decision::Keep(_) => None,
            Decision::Issue(_) => Some(self.csr_seen().await?),
        };
        let seen = Observed {
            bundle,
            secret,
            places,
            csr,
            webhooks,
        };
        Ok((seen, existing))
    }

    async fn existing_secret(&mut self, name: &str) -> Result<Option<Secret>, CertsError> {
        let ns = self.ns().to_string();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        self.call(
            "GET",
            format!("/api/v1/namespaces/{ns}/secrets/{name}"),
            "read the Secret in place".into(),
        );
        api.get_opt(name)
            .await
            .map_err(|e| api_error(format!("get Secret {ns}/{name}"), &grant_secrets(&ns), e))
    }

    async fn csr_seen(&mut self) -> Result<CsrSeen, CertsError> {
        let name = self.opts.csr_name();
        self.call(
            "GET",
            super::csr::api_path_csr(Some(&name)),
            "look for a CSR of the same name".into(),
        );
        let old = self.csrs().get_opt(&name).await.map_err(|e| {
            api_error(
                format!("get CertificateSigningRequest {name:?}"),
                &format!("verb \"get\" on certificatesigningrequests {CSR_GROUP}"),
                e,
            )
        })?;
        Ok(match old {
            None => CsrSeen::Absent,
            Some(csr) if is_ours(&csr) => CsrSeen::Ours,
            Some(_) => CsrSeen::Foreign,
        })
    }

    async fn webhook<K>(
        &mut self,
        kind: WebhookKind,
        name: &str,
    ) -> Result<Option<Value>, CertsError>
    where
        K: kube::Resource<Scope = kube::core::ClusterResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::all(self.client.clone());
        self.call(
            "GET",
            kind.path(name),
            format!("read {} webhook configuration {name}", kind.name()),
        );
        let config = api.get_opt(name).await.map_err(|e| {
            api_error(
                format!("get {} {name:?}", kind.plural()),
                &grant_webhooks(kind),
                e,
            )
        })?;
        Ok(config.map(|c| serde_json::to_value(&c).unwrap_or_default()))
    }

    /// Runs one step (its call recorded as it is made).
    async fn execute(
        &mut self,
        step: &Step,
        issuing: &mut Option<Issuing>,
        existing: &mut Option<Secret>,
        bundle: &CaBundle,
    ) -> Result<(), CertsError> {
        self.calls.push(step.call());
        match step {
            Step::DeleteStaleCsr { name } => {
                self.step(format!(
                    "deleting the stale CertificateSigningRequest {name} (made by gmsa earlier)"
                ));
                self.csrs()
                    .delete(name, &DeleteParams::default())
                    .await
                    .map_err(|e| {
                        api_error(
                            format!("delete CertificateSigningRequest {name:?}"),
                            &format!("verb \"delete\" on certificatesigningrequests {CSR_GROUP}"),
                            e,
                        )
                    })?;
            }
            Step::CreateCsr { name, signer } => {
                let state = out_of_order(issuing.as_mut(), step)?;
                self.step(format!(
                    "creating CertificateSigningRequest {name} for signer {signer}"
                ));
                let created = self
                    .csrs()
                    .create(&PostParams::default(), &state.csr)
                    .await
                    .map_err(|e| {
                        api_error(
                            format!("create CertificateSigningRequest {name:?}"),
                            &format!("verb \"create\" on certificatesigningrequests {CSR_GROUP}"),
                            e,
                        )
                    })?;
                state.created = Some(created);
            }
            Step::Approve { name } => {
                let state = out_of_order(issuing.as_mut(), step)?;
                let created = out_of_order(state.created.clone(), step)?;
                approve(self, created, name).await?;
            }
            Step::WaitForCertificate { name } => {
                let state = out_of_order(issuing.as_mut(), step)?;
                let cert_bytes = self.wait(name).await?;
                self.step(format!("CertificateSigningRequest {name} signed"));
                state.issued = Some(self.check(name, cert_bytes, &state.key, bundle)?);
            }
            Step::WriteSecret { name, .. } => {
                let state = out_of_order(issuing.as_ref(), step)?;
                let (issued, _) = out_of_order(state.issued.as_ref(), step)?;
                write_secret(self, name, issued, existing.take()).await?;
            }
            Step::WriteDir { dir } => {
                let state = out_of_order(issuing.as_ref(), step)?;
                let (issued, _) = out_of_order(state.issued.as_ref(), step)?;
                self.step(format!(
                    "writing {}/tls.crt, tls.key, ca.crt",
                    dir.display()
                ));
                write_dir(dir, issued)?;
            }
            Step::PatchCaBundle {
                kind,
                config,
                retained,
                patch,
                ..
            } => {
                let also = match retained.len() {
                    0 => String::new(),
                    n => format!(" (keeping {n} CA certificate(s) of the current caBundle the webhook may still be serving under)"),
                };
                self.step(format!(
                    "setting caBundle in {}webhookconfiguration {config}{also}",
                    kind.name()
                ));
                match kind {
                    WebhookKind::Mutating => {
                        self.patch::<MutatingWebhookConfiguration>(*kind, config, patch)
                            .await?
                    }
                    WebhookKind::Validating => {
                        self.patch::<ValidatingWebhookConfiguration>(*kind, config, patch)
                            .await?
                    }
                }
            }
        }
        Ok(())
    }

    async fn patch<K>(&self, kind: WebhookKind, name: &str, patch: &Value) -> Result<(), CertsError>
    where
        K: kube::Resource<Scope = kube::core::ClusterResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::all(self.client.clone());
        let patch: json_patch::Patch =
            serde_json::from_value(patch.clone()).map_err(|e| CertsError::Kube {
                action: format!("build the caBundle patch for {name}"),
                source: kube::Error::SerdeError(e),
            })?;
        api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
            .map(|_| ())
            .map_err(|e| {
                api_error(
                    format!("patch {} {name:?}", kind.plural()),
                    &grant_webhooks(kind),
                    e,
                )
            })
    }

    /// Checks the signed certificate before anything is written: key, names, validity, chain.
    fn check(
        &mut self,
        name: &str,
        cert_bytes: Vec<u8>,
        key: &KeyPair,
        bundle: &CaBundle,
    ) -> Result<(Issued, CertInfo), CertsError> {
        let opts = self.opts;
        let cert_pem =
            String::from_utf8(cert_bytes).map_err(|_| CertsError::InvalidCertificate {
                what: format!("CertificateSigningRequest {name} status.certificate"),
                detail: "not UTF-8 PEM".into(),
            })?;
        let what = format!("CertificateSigningRequest {name}");
        let chain = parse_pem_chain(&cert_pem, &what)?;
        let info = inspect(&chain[0], &what)?;
        if !key_matches(&chain[0], key, &what)? {
            return Err(CertsError::KeyMismatch { what });
        }
        let missing = missing_sans(&info, &opts.request.dns_names(), &opts.request.ips);
        if !missing.is_empty() {
            return Err(CertsError::MissingSans { what, missing });
        }
        let now = opts.now();
        check_valid_now(&info, now, &what)?;
        verify_chain(&chain, bundle, now)?;
        let lifetime = info.not_after - now;
        if lifetime <= secs(opts.renew_before) {
            self.warn(format!(
                "the signer issued a certificate valid for only {}, not more than the renewal window {}: every renew will issue again (lower --renew-before, or raise the signer's maximum duration)",
                format_secs(lifetime),
                format_duration(opts.renew_before)
            ));
        }
        let issued = Issued {
            cert_pem,
            key_pem: key.serialize_pem(),
            ca_pem: bundle.pem.clone(),
        };
        Ok((issued, info))
    }

    async fn wait(&mut self, name: &str) -> Result<Vec<u8>, CertsError> {
        let api = self.csrs();
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

async fn approve(
    run: &mut Run<'_>,
    mut csr: CertificateSigningRequest,
    name: &str,
) -> Result<(), CertsError> {
    let api = run.csrs();
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

/// A step whose input an earlier step makes; [`plan`] orders them so that this never fails.
fn out_of_order<T>(value: Option<T>, step: &Step) -> Result<T, CertsError> {
    value.ok_or_else(|| {
        CertsError::Internal(format!("{:?} before the steps it needs", step.call().what))
    })
}

/// Issues (or keeps) the serving certificate as `opts` say; progress goes to `progress`.
pub async fn issue(
    client: Client,
    opts: &IssueOptions,
    progress: &(dyn Fn(&Progress) + Sync),
) -> Result<IssueReport, CertsError> {
    opts.request.validate()?;
    let now = opts.now();
    let mut run = Run {
        client,
        opts,
        progress,
        calls: Vec::new(),
        warnings: Vec::new(),
    };
    let (seen, mut existing) = run.observe(now).await?;
    let plan = plan(&seen, opts, now)?;
    for warning in &plan.warnings {
        run.warn(warning.clone());
    }
    let ns = &opts.request.namespace;
    let mut report = IssueReport {
        action: Action::Issued,
        reason: String::new(),
        csr_name: opts.csr_name(),
        signer: opts.request.signer.clone(),
        secret: opts.secret.as_ref().map(|s| format!("{ns}/{s}")),
        certs_dir: opts.certs_dir.clone(),
        certificate: None,
        ca_source: seen.bundle.source.to_string(),
        webhooks_patched: plan.steps.iter().filter_map(Step::patched).collect(),
        calls: Vec::new(),
        csr_object: None,
        warnings: Vec::new(),
    };
    let mut issuing = None;
    match &plan.decision {
        Decision::Keep(info) => {
            run.step(format!(
                "the certificate in place is valid until {} and covers {:?}: nothing to issue",
                rfc3339(info.not_after),
                info.dns_names
            ));
            report.action = Action::Unchanged;
            report.reason = "the certificate in place is valid".into();
            report.certificate = Some(info.clone());
        }
        Decision::Issue(why) => {
            run.step(format!("issuing a new certificate: {why}"));
            report.reason = why.clone();
            let key = match &opts.key_pem {
                Some((what, pem)) => load_key(pem, what)?,
                None => generate_key(opts.key_type)?,
            };
            let built = build_csr(&opts.request, &key)?;
            let csr = csr_object(
                &opts.csr_name(),
                &opts.request,
                &built.pem,
                &built.usages,
                opts.duration,
            );
            report.csr_object = serde_json::to_value(&csr).ok();
            issuing = Some(Issuing {
                key,
                csr,
                created: None,
                issued: None,
            });
        }
    }
    if opts.dry_run {
        run.calls.extend(plan.steps.iter().map(Step::call));
        report.action = Action::DryRun;
    } else {
        for step in &plan.steps {
            run.execute(step, &mut issuing, &mut existing, &seen.bundle)
                .await?;
        }
        if let Some((_, info)) = issuing.and_then(|i| i.issued) {
            report.certificate = Some(info);
        }
    }
    report.calls = run.calls;
    report.warnings = run.warnings;
    Ok(report)
}

async fn write_secret(
    run: &mut Run<'_>,
    name: &str,
    issued: &Issued,
    mut existing: Option<Secret>,
) -> Result<(), CertsError> {
    let ns = run.ns().to_string();
    let api: Api<Secret> = Api::namespaced(run.client.clone(), &ns);
    let grant = grant_secrets(&ns);
    for attempt in 0..2 {
        let secret = tls_secret(&ns, name, issued, existing.as_ref());
        if attempt > 0 {
            let again = Step::WriteSecret {
                namespace: ns.clone(),
                name: name.to_string(),
                replace: existing.is_some(),
            };
            run.calls.push(again.call());
        }
        let result = match &existing {
            Some(_) => {
                run.step(format!("replacing Secret {ns}/{name}"));
                api.replace(name, &PostParams::default(), &secret).await
            }
            None => {
                run.step(format!("creating Secret {ns}/{name}"));
                api.create(&PostParams::default(), &secret).await
            }
        };
        match result {
            Ok(_) => return Ok(()),
            Err(e) if attempt == 0 && (is_status(&e, 409)) => {
                // Created or changed by someone else meanwhile: read it and replace once more.
                existing = run.existing_secret(name).await?;
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
