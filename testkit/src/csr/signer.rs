//! The signer and approver: what the controller-manager does with approved
//! `kubernetes.io/kubelet-serving` CSRs (validate, then sign with the test CA), and the
//! conditions it sets.

use base64::Engine as _;
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose,
};
use serde_json::{json, Value};

use super::api::{now_rfc3339, CsrApi, SignerMode, TestCa};

impl CsrApi {
    /// Acts as the signer on an approved CSR, after the configured delay.
    pub(super) fn schedule_signer(&self, name: String) {
        let api = self.clone();
        let delay = self.state().sign_delay;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut st = api.state();
            let Some(csr) = st.csrs.get(&name).cloned() else {
                return;
            };
            let mode = st.mode.clone();
            let result = match mode {
                SignerMode::Never | SignerMode::Deny { .. } => return,
                SignerMode::Fail { reason, message } => Err((reason, message)),
                SignerMode::Sign => sign(&st.ca, &csr, st.max_duration),
            };
            let mut csr = csr;
            match result {
                Ok(pem) => {
                    csr["status"]["certificate"] =
                        json!(base64::engine::general_purpose::STANDARD.encode(pem));
                }
                Err((reason, message)) => push_condition(&mut csr, "Failed", &reason, &message),
            }
            api.store_csr(&mut st, csr, "MODIFIED");
        });
    }
}

/// Signs like the controller-manager: validation for kubelet-serving, then the usages from
/// `spec.usages`, `expirationSeconds` capped by the maximum duration, backdated 5 minutes.
fn sign(ca: &TestCa, csr: &Value, max_duration: u64) -> Result<String, (String, String)> {
    let fail = |m: &str| ("SignerValidationFailure".to_string(), m.to_string());
    let request = csr["spec"]["request"].as_str().unwrap_or_default();
    let pem_bytes = base64::engine::general_purpose::STANDARD
        .decode(request)
        .map_err(|_| fail("request is not base64"))?;
    let pem_text = String::from_utf8(pem_bytes).map_err(|_| fail("request is not PEM"))?;
    let mut req = CertificateSigningRequestParams::from_pem(&pem_text)
        .map_err(|e| fail(&format!("cannot parse the request: {e}")))?;
    let usages: Vec<String> = csr["spec"]["usages"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if csr["spec"]["signerName"] == "kubernetes.io/kubelet-serving" {
        validate_kubelet_serving(&req.params, &usages).map_err(|m| fail(&m))?;
    }
    let params = &mut req.params;
    params.key_usages = Vec::new();
    params.extended_key_usages = Vec::new();
    for usage in &usages {
        match usage.as_str() {
            "digital signature" => params.key_usages.push(KeyUsagePurpose::DigitalSignature),
            "key encipherment" => params.key_usages.push(KeyUsagePurpose::KeyEncipherment),
            "server auth" => params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth),
            "client auth" => params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth),
            _ => {}
        }
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    let wanted = csr["spec"]["expirationSeconds"]
        .as_u64()
        .unwrap_or(max_duration);
    let secs = wanted.min(max_duration) as i64;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::seconds(secs);
    let issuer = ca.issuer();
    let cert = req
        .signed_by(&issuer)
        .map_err(|e| ("SigningError".to_string(), e.to_string()))?;
    Ok(cert.pem())
}

/// The kube-controller-manager's checks for `kubernetes.io/kubelet-serving`.
fn validate_kubelet_serving(params: &CertificateParams, usages: &[String]) -> Result<(), String> {
    let mut orgs = Vec::new();
    let mut cn = String::new();
    for (ty, value) in params.distinguished_name.iter() {
        let text = match value {
            rcgen::DnValue::Utf8String(s) => s.clone(),
            rcgen::DnValue::PrintableString(s) => s.to_string(),
            other => format!("{other:?}"),
        };
        match ty {
            DnType::OrganizationName => orgs.push(text),
            DnType::CommonName => cn = text,
            _ => {}
        }
    }
    if orgs != ["system:nodes"] {
        return Err("subject organization is not system:nodes".to_string());
    }
    if !cn.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".to_string());
    }
    let mut has_dns_or_ip = false;
    for san in &params.subject_alt_names {
        match san {
            rcgen::SanType::DnsName(_) | rcgen::SanType::IpAddress(_) => has_dns_or_ip = true,
            rcgen::SanType::Rfc822Name(_) => {
                return Err("email subjectAltNames are not allowed".to_string())
            }
            rcgen::SanType::URI(_) => return Err("URI subjectAltNames are not allowed".to_string()),
            _ => return Err("unsupported subjectAltName".to_string()),
        }
    }
    if !has_dns_or_ip {
        return Err("DNS or IP subjectAltName is required".to_string());
    }
    let required = ["digital signature", "server auth"];
    let allowed = ["digital signature", "server auth", "key encipherment"];
    if required.iter().any(|r| !usages.iter().any(|u| u == r))
        || usages.iter().any(|u| !allowed.contains(&u.as_str()))
    {
        return Err(format!(
            "usages did not match [digital signature key encipherment server auth]: {usages:?}"
        ));
    }
    Ok(())
}

pub(super) fn push_condition(csr: &mut Value, ty: &str, reason: &str, message: &str) {
    let now = now_rfc3339();
    let cond = json!({
        "type": ty, "status": "True", "reason": reason, "message": message,
        "lastUpdateTime": now, "lastTransitionTime": now,
    });
    match csr["status"]["conditions"].as_array_mut() {
        Some(list) => list.push(cond),
        None => csr["status"]["conditions"] = json!([cond]),
    }
}

pub(super) fn has_condition(csr: &Value, ty: &str) -> bool {
    csr["status"]["conditions"]
        .as_array()
        .is_some_and(|l| l.iter().any(|c| c["type"] == ty))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    #[test]
    fn kubelet_serving_validation_rejects_the_captured_bad_subject() {
        let captured = fixture("k8s-1.32/api/csr-failed-bad-subject.json");
        let request = captured["spec"]["request"].as_str().expect("request");
        let pem_text = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(request)
                .expect("b64"),
        )
        .expect("utf8");
        let params = CertificateSigningRequestParams::from_pem(&pem_text).expect("parse");
        let usages = vec!["digital signature".to_string(), "server auth".to_string()];
        let err = validate_kubelet_serving(&params.params, &usages).expect_err("bad subject");
        let want = captured["status"]["conditions"][1]["message"]
            .as_str()
            .expect("message");
        assert_eq!(err, want);

        let good = fixture("k8s-1.32/api/csr-create-request.json");
        let pem_text = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(good["spec"]["request"].as_str().expect("request"))
                .expect("b64"),
        )
        .expect("utf8");
        let params = CertificateSigningRequestParams::from_pem(&pem_text).expect("parse");
        let usages: Vec<String> = ["digital signature", "key encipherment", "server auth"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        validate_kubelet_serving(&params.params, &usages).expect("the captured request is valid");
        assert!(validate_kubelet_serving(&params.params, &["client auth".to_string()]).is_err());
    }
}
