//! `probe.dry-run`: what the API server answered to a server-side dry-run create of the probe
//! pod, and what that means.

use k8s_openapi::api::core::v1::Pod;

use super::unanswered;
use crate::facts::{Facts, ProbeAnswer};
use crate::report::{Check, Group, Status};

/// What went wrong between the API server and the webhook, read off its error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallFailure {
    /// `x509: certificate signed by unknown authority`: caBundle does not hold the CA.
    UnknownAuthority,
    /// `certificate has expired or is not yet valid`.
    Expired,
    /// `x509: certificate is valid for …, not …`: the names do not cover the service.
    WrongName,
    /// Nothing listens: connection refused, no endpoints, service missing.
    NotRunning,
    /// `context deadline exceeded`, timeouts.
    Timeout,
    /// The path answered 404.
    WrongPath,
    /// Anything else.
    Other,
}

/// Reads the cause of a `failed calling webhook` error.
pub fn call_failure(message: &str) -> CallFailure {
    // `… failed to call webhook: Post "https://…?timeout=10s": CAUSE`: read the cause only
    // (the URL holds words like "timeout").
    let cause = message
        .find("Post \"")
        .and_then(|i| message[i..].find("\": ").map(|j| &message[i + j + 3..]))
        .unwrap_or(message);
    let m = cause.to_ascii_lowercase();
    if m.contains("signed by unknown authority") {
        CallFailure::UnknownAuthority
    } else if m.contains("has expired or is not yet valid") {
        CallFailure::Expired
    } else if m.contains("certificate is valid for") || m.contains("certificate is not valid for") {
        CallFailure::WrongName
    } else if m.contains("connection refused")
        || m.contains("no endpoints available")
        || m.contains("not found")
        || m.contains("no route to host")
        || m.contains("no such host")
    {
        CallFailure::NotRunning
    } else if m.contains("deadline exceeded") || m.contains("timeout") || m.contains("timed out") {
        CallFailure::Timeout
    } else if m.contains("404") || m.contains("could not find the requested resource") {
        CallFailure::WrongPath
    } else {
        CallFailure::Other
    }
}

impl CallFailure {
    fn explain(self) -> (&'static str, &'static str) {
        match self {
            Self::UnknownAuthority => ("the webhook's certificate is not signed by a CA in the configurations' caBundle", "see certs.ca-bundle and certs.serving; re-issue with gmsa certs issue --overwrite … --patch-webhook NAME"),
            Self::Expired => ("the webhook's certificate has expired", "see certs.serving; gmsa certs renew (or helm upgrade the release)"),
            Self::WrongName => ("the webhook's certificate does not name the service the API server calls", "see certs.serving; re-issue for NAME.NAMESPACE.svc with gmsa certs issue --overwrite"),
            Self::NotRunning => ("nothing answers where the webhook configuration points", "see webhooks.service and webhook.deployment: kubectl -n NS get pods,endpointslices"),
            Self::Timeout => ("the webhook did not answer within timeoutSeconds", "see webhook.deployment (restarts, readiness); check network policies between the API server and the webhook's pods"),
            Self::WrongPath => ("the webhook answered 404: the configuration calls a path it does not serve (/mutate, /validate)", "helm upgrade the release (the chart sets the paths)"),
            Self::Other => ("the API server could not call the webhook", "read the message above and the webhook's log"),
        }
    }
}

/// Whether `pod` carries inlined contents for every place that names a spec.
fn inlined(pod: &Pod) -> Option<bool> {
    let spec = pod.spec.as_ref()?;
    let pod_level = spec
        .security_context
        .as_ref()
        .and_then(|s| s.windows_options.as_ref());
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter_map(|c| c.security_context.as_ref()?.windows_options.as_ref());
    let named: Vec<_> = pod_level
        .into_iter()
        .chain(containers)
        .filter(|w| w.gmsa_credential_spec_name.is_some())
        .collect();
    if named.is_empty() {
        return None;
    }
    Some(named.iter().all(|w| {
        w.gmsa_credential_spec
            .as_deref()
            .is_some_and(|s| !s.is_empty())
    }))
}

/// `probe.dry-run`.
pub(super) fn checks(f: &Facts, out: &mut Vec<Check>) {
    let id = "probe.dry-run";
    let ns = &f.target.namespace;
    if let Some(c) = unanswered(
        &f.probe,
        id,
        Group::Probe,
        &format!("a dry-run pod create in {ns}"),
    ) {
        out.push(c);
        return;
    }
    let Some(answer) = f.probe.got() else { return };
    out.push(match answer {
        ProbeAnswer::Admitted(pod) => match inlined(pod) {
            Some(true) => Check::new(
                id,
                Group::Probe,
                Status::Ok,
                format!("a pod in {ns} under service account {} naming the spec is admitted with the spec's contents inlined: the API server called both webhooks and they agreed", f.target.service_account),
            ),
            Some(false) => Check::new(
                id,
                Group::Probe,
                Status::Fail,
                format!("a pod in {ns} naming the spec is admitted WITHOUT the spec's contents: the mutating webhook was not called for it (the node will not get the credential)"),
            )
            .fix("see webhooks.mutating and webhooks.namespaces: the namespace or the pod is excluded, or no configuration is installed"),
            None => Check::new(id, Group::Probe, Status::Warn, "the probe pod names no credential spec: nothing was proved")
                .fix("give --spec NAME, or a --pod whose securityContext.windowsOptions names one"),
        },
        ProbeAnswer::Refused { code, reason, message } => refused(f, *code, reason, message),
    });
}

fn refused(f: &Facts, code: u16, reason: &str, message: &str) -> Check {
    let id = "probe.dry-run";
    let ns = &f.target.namespace;
    let sa = &f.target.service_account;
    let seen = format!("the API server refused the probe pod ({code} {reason}): {message}");
    let lower = message.to_ascii_lowercase();
    let (why, fix): (String, String) = if lower.contains("failed calling webhook") {
        let (why, fix) = call_failure(message).explain();
        (why.to_string(), fix.to_string())
    } else if lower.contains("error looking up service account")
        || (lower.contains("serviceaccount") && lower.contains("not found"))
    {
        (
            format!("service account {sa} does not exist in {ns}"),
            format!("kubectl -n {ns} create serviceaccount {sa}"),
        )
    } else if lower.contains("denied the request") {
        denial(f, &lower)
    } else if code == 404 && lower.contains("namespaces") {
        (
            format!("namespace {ns} does not exist"),
            format!("kubectl create namespace {ns}"),
        )
    } else {
        (
            "another admission check refused the pod".into(),
            "read the message: it names the admission plugin or webhook that refused".into(),
        )
    };
    Check::new(id, Group::Probe, Status::Fail, seen)
        .details([format!("meaning: {why}")])
        .fix(fix)
}

/// A denial by the gmsa webhook: which of its rules, and where the fix is.
fn denial(f: &Facts, lower: &str) -> (String, String) {
    let spec = f.target.spec.as_deref().unwrap_or("SPEC");
    if lower.contains("not authorized") {
        (
            format!(
                "service account {} may not use the spec",
                f.target.service_account
            ),
            "see rbac.use: it prints the Role and RoleBinding to apply".into(),
        )
    } else if lower.contains("not found") || lower.contains("does not exist") {
        (
            format!("GMSACredentialSpec {spec} does not exist"),
            format!(
                "gmsa spec from-file gmsa-cred-spec.txt --name {spec} --apply   (see spec.found)"
            ),
        )
    } else {
        (
            "the gmsa webhook refused the pod's GMSA settings".into(),
            "read the denial: it names the container and the field".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::{diagnose, fixture};
    use crate::facts::Fetched;

    #[test]
    fn webhook_call_failures_are_read_from_the_api_servers_message() {
        let call = |tail: &str| {
            format!("Internal error occurred: failed calling webhook \"admission-webhook.windows-gmsa.sigs.k8s.io\": failed to call webhook: Post \"https://gmsa.gmsa.svc:443/mutate?timeout=10s\": {tail}")
        };
        for (tail, want) in [
            ("tls: failed to verify certificate: x509: certificate signed by unknown authority", CallFailure::UnknownAuthority),
            ("tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 2026-12-03T06:00:00Z is after 2026-01-01T00:00:00Z", CallFailure::Expired),
            ("tls: failed to verify certificate: x509: certificate is valid for other.gmsa.svc, not gmsa.gmsa.svc", CallFailure::WrongName),
            ("dial tcp 10.96.0.12:443: connect: connection refused", CallFailure::NotRunning),
            ("no endpoints available for service \"gmsa\"", CallFailure::NotRunning),
            ("service \"gmsa\" not found", CallFailure::NotRunning),
            ("context deadline exceeded", CallFailure::Timeout),
            ("net/http: request canceled (Client.Timeout exceeded while awaiting headers)", CallFailure::Timeout),
            ("the server responded with the status code 404", CallFailure::WrongPath),
            ("EOF", CallFailure::Other),
        ] {
            assert_eq!(call_failure(&call(tail)), want, "{tail}");
        }
    }

    #[test]
    fn probe_outcomes() {
        let refuse = |code: u16, reason: &str, message: &str| {
            Fetched::Got(ProbeAnswer::Refused {
                code,
                reason: reason.into(),
                message: message.into(),
            })
        };
        let cases = [
            (refuse(500, "InternalError", "Internal error occurred: failed calling webhook \"x\": failed to call webhook: Post \"https://gmsa.gmsa.svc:443/mutate?timeout=10s\": tls: failed to verify certificate: x509: certificate signed by unknown authority"), "caBundle", "certs.ca-bundle"),
            (refuse(403, "Forbidden", "admission webhook \"admission-webhook.windows-gmsa.sigs.k8s.io\" denied the request: service account webapp is not authorized to use gMSA cred spec webapp01"), "may not use the spec", "rbac.use"),
            (refuse(403, "Forbidden", "admission webhook \"admission-webhook.windows-gmsa.sigs.k8s.io\" denied the request: cred spec webapp01 does not exist"), "does not exist", "gmsa spec from-file"),
            (refuse(403, "Forbidden", "pods \"gmsa-doctor-probe\" is forbidden: error looking up service account apps/webapp: serviceaccount \"webapp\" not found"), "service account webapp does not exist in apps", "kubectl -n apps create serviceaccount webapp"),
            (refuse(403, "Forbidden", "pods \"p\" is forbidden: violates PodSecurity \"restricted:latest\""), "another admission check", "read the message"),
        ];
        for (answer, meaning, fix) in cases {
            let mut f = fixture::healthy();
            f.probe = answer;
            let r = diagnose(&f);
            let c = r.get("probe.dry-run").expect("ran");
            assert_eq!(c.status, Status::Fail, "{c:#?}");
            assert!(c.details[0].contains(meaning), "{c:#?}");
            assert!(c.fix.as_deref().unwrap_or_default().contains(fix), "{c:#?}");
        }
    }

    #[test]
    fn admitted_without_contents_means_the_mutating_webhook_was_not_called() {
        let mut f = fixture::healthy();
        if let Fetched::Got(ProbeAnswer::Admitted(pod)) = &mut f.probe {
            if let Some(w) = pod
                .spec
                .as_mut()
                .and_then(|s| s.security_context.as_mut())
                .and_then(|s| s.windows_options.as_mut())
            {
                w.gmsa_credential_spec = None;
            }
        }
        let r = diagnose(&f);
        let c = r.get("probe.dry-run").expect("ran");
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.contains("WITHOUT the spec's contents"), "{c:?}");
    }
}
