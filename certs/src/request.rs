//! What to ask for: the names for a service, the signer profile, and the PKCS#10 request.
//!
//! Signer profiles:
//! - `kubernetes.io/kubelet-serving` (the built-in signer every cluster runs): subject
//!   `O=system:nodes, CN=system:node:<S>.<N>.svc`, DNS/IP SANs only, usages
//!   `digital signature`, `server auth` (plus `key encipherment` for RSA keys, as the kubelet
//!   itself does), never a CA. The controller-manager fails anything else with
//!   `SignerValidationFailure`.
//! - any other (custom) signer that issues serving certificates: subject `CN=<S>.<N>.svc`, same
//!   SANs and usages.
//!
//! The other `kubernetes.io/*` signers issue client certificates and are refused.

use std::net::IpAddr;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::keys::{key_family, KeyFamily};
use crate::CertsError;

/// The built-in signer for serving certificates.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";

/// How the request must look for a signer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignerProfile {
    /// `kubernetes.io/kubelet-serving`.
    KubeletServing,
    /// A custom signer (any name outside `kubernetes.io/`).
    Custom,
}

impl SignerProfile {
    /// The profile for a signer name; refuses signers that cannot issue serving certificates.
    pub fn for_signer(signer: &str) -> Result<Self, CertsError> {
        let unsupported = |reason: &str| CertsError::UnsupportedSigner {
            signer: signer.to_string(),
            reason: reason.to_string(),
        };
        match signer {
            KUBELET_SERVING => Ok(Self::KubeletServing),
            "kubernetes.io/kube-apiserver-client" | "kubernetes.io/kube-apiserver-client-kubelet" => {
                Err(unsupported(
                    "it issues client certificates; use kubernetes.io/kubelet-serving or your own serving signer",
                ))
            }
            "kubernetes.io/legacy-unknown" => Err(unsupported(
                "it only exists in certificates.k8s.io/v1beta1, removed in Kubernetes 1.22; use kubernetes.io/kubelet-serving",
            )),
            s if s.starts_with("kubernetes.io/") => Err(unsupported(
                "it is not a known kubernetes.io signer; use kubernetes.io/kubelet-serving or your own signer's name",
            )),
            s if !s.contains('/') || s.starts_with('/') || s.ends_with('/') => Err(unsupported(
                "a signer name is a domain-qualified path such as example.com/serving",
            )),
            _ => Ok(Self::Custom),
        }
    }
}

/// A serving certificate request for service `S` in namespace `N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRequest {
    /// Service name `S`.
    pub service: String,
    /// Namespace `N`.
    pub namespace: String,
    /// Cluster DNS domain (`cluster.local`).
    pub cluster_domain: String,
    /// Extra DNS names (`--dns-name`).
    pub extra_dns: Vec<String>,
    /// IP SANs (`--ip`).
    pub ips: Vec<IpAddr>,
    /// Signer name.
    pub signer: String,
}

/// A built PKCS#10 request and the `spec.usages` to send with it.
#[derive(Clone, Debug)]
pub struct BuiltCsr {
    /// PEM `CERTIFICATE REQUEST`.
    pub pem: String,
    /// `spec.usages`, e.g. `["digital signature", "server auth"]`.
    pub usages: Vec<String>,
}

/// Checks a DNS-1123 label (service and namespace names).
fn check_label(what: &'static str, value: &str) -> Result<(), CertsError> {
    let invalid = |reason: &str| CertsError::InvalidName {
        what,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if value.is_empty() || value.len() > 63 {
        return Err(invalid("must be 1-63 characters"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid(
            "only lowercase letters, digits and '-' are allowed",
        ));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(invalid("must start and end with a letter or digit"));
    }
    Ok(())
}

/// Checks a DNS name (dot-separated labels; a leading `*.` wildcard is allowed).
fn check_dns_name(value: &str) -> Result<(), CertsError> {
    let rest = value.strip_prefix("*.").unwrap_or(value);
    if value.len() > 253 {
        return Err(CertsError::InvalidName {
            what: "DNS name",
            value: value.to_string(),
            reason: "longer than 253 characters".to_string(),
        });
    }
    for label in rest.split('.') {
        check_label("DNS name", label).map_err(|_| CertsError::InvalidName {
            what: "DNS name",
            value: value.to_string(),
            reason: format!("label {label:?} is not a lowercase DNS label"),
        })?;
    }
    Ok(())
}

impl CertRequest {
    /// A request for service `S` in namespace `N` with the default domain and signer.
    pub fn new(service: &str, namespace: &str) -> Result<Self, CertsError> {
        check_label("service name", service)?;
        check_label("namespace", namespace)?;
        Ok(Self {
            service: service.to_string(),
            namespace: namespace.to_string(),
            cluster_domain: "cluster.local".to_string(),
            extra_dns: Vec::new(),
            ips: Vec::new(),
            signer: KUBELET_SERVING.to_string(),
        })
    }

    /// Checks every field (names, signer).
    pub fn validate(&self) -> Result<SignerProfile, CertsError> {
        check_label("service name", &self.service)?;
        check_label("namespace", &self.namespace)?;
        check_dns_name(&self.cluster_domain)?;
        for name in &self.extra_dns {
            check_dns_name(name)?;
        }
        SignerProfile::for_signer(&self.signer)
    }

    /// `S.N.svc`: the name the API server dials.
    pub fn service_host(&self) -> String {
        format!("{}.{}.svc", self.service, self.namespace)
    }

    /// The CSR object name by default: `S.N`.
    pub fn default_csr_name(&self) -> String {
        format!("{}.{}", self.service, self.namespace)
    }

    /// DNS SANs: `S`, `S.N`, `S.N.svc`, `S.N.svc.<domain>`, then the extras, without repeats.
    pub fn dns_names(&self) -> Vec<String> {
        let mut names = vec![
            self.service.clone(),
            self.default_csr_name(),
            self.service_host(),
            format!("{}.{}", self.service_host(), self.cluster_domain),
        ];
        for extra in &self.extra_dns {
            if !names.contains(extra) {
                names.push(extra.clone());
            }
        }
        names
    }

    /// The subject for the profile.
    pub fn subject(&self, profile: SignerProfile) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        match profile {
            SignerProfile::KubeletServing => {
                dn.push(DnType::OrganizationName, "system:nodes");
                dn.push(
                    DnType::CommonName,
                    format!("system:node:{}", self.service_host()),
                );
            }
            SignerProfile::Custom => dn.push(DnType::CommonName, self.service_host()),
        }
        dn
    }
}

/// `spec.usages` for a key: `digital signature`, `server auth`, and `key encipherment` for RSA.
pub fn usages_for(family: KeyFamily) -> Vec<String> {
    let mut usages = vec!["digital signature".to_string()];
    if family == KeyFamily::Rsa {
        usages.push("key encipherment".to_string());
    }
    usages.push("server auth".to_string());
    usages
}

/// Builds and signs the PKCS#10 request for `req` with `key`.
pub fn build_csr(req: &CertRequest, key: &KeyPair) -> Result<BuiltCsr, CertsError> {
    let profile = req.validate()?;
    let family = key_family(key);
    let mut params = CertificateParams::default();
    params.distinguished_name = req.subject(profile);
    let mut sans = Vec::new();
    for name in req.dns_names() {
        let ia5 = name
            .clone()
            .try_into()
            .map_err(|e| CertsError::Csr(format!("DNS name {name:?}: {e}")))?;
        sans.push(SanType::DnsName(ia5));
    }
    sans.extend(req.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if family == KeyFamily::Rsa {
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let csr = params
        .serialize_request(key)
        .map_err(|e| CertsError::Csr(e.to_string()))?;
    let pem = csr.pem().map_err(|e| CertsError::Csr(e.to_string()))?;
    Ok(BuiltCsr {
        pem,
        usages: usages_for(family),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate_key, load_key, KeyType};
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;

    const RSA_KEY: &str = include_str!("../tests/data/rsa2048-pkcs8.pem");

    #[test]
    fn signer_profiles() {
        let table: &[(&str, Option<SignerProfile>)] = &[
            (
                "kubernetes.io/kubelet-serving",
                Some(SignerProfile::KubeletServing),
            ),
            ("example.com/serving", Some(SignerProfile::Custom)),
            (
                "cert-manager.io/clusterissuers.ca",
                Some(SignerProfile::Custom),
            ),
            ("kubernetes.io/kube-apiserver-client", None),
            ("kubernetes.io/kube-apiserver-client-kubelet", None),
            ("kubernetes.io/legacy-unknown", None),
            ("kubernetes.io/other", None),
            ("serving", None),
            ("example.com/", None),
        ];
        for (signer, want) in table {
            assert_eq!(SignerProfile::for_signer(signer).ok(), *want, "{signer}");
        }
    }

    #[test]
    fn names_are_validated() {
        let table: &[(&str, &str, bool)] = &[
            ("gmsa-webhook", "gmsa", true),
            ("a", "b1", true),
            ("Gmsa", "gmsa", false),
            ("gmsa_webhook", "gmsa", false),
            ("-x", "gmsa", false),
            ("x", "", false),
            ("x", "ns.dot", false),
        ];
        for (svc, ns, ok) in table {
            assert_eq!(CertRequest::new(svc, ns).is_ok(), *ok, "{svc} {ns}");
        }
        let mut req = CertRequest::new("s", "n").expect("valid");
        req.extra_dns = vec!["webhook.example.com".into(), "*.n.svc".into()];
        assert!(req.validate().is_ok());
        req.extra_dns = vec!["bad_name.example.com".into()];
        assert!(req.validate().is_err());
    }

    #[test]
    fn dns_names_in_order_without_repeats() {
        let mut req = CertRequest::new("gmsa-webhook", "gmsa").expect("valid");
        req.extra_dns = vec!["gmsa-webhook.gmsa.svc".into(), "extra.example.com".into()];
        assert_eq!(
            req.dns_names(),
            vec![
                "gmsa-webhook",
                "gmsa-webhook.gmsa",
                "gmsa-webhook.gmsa.svc",
                "gmsa-webhook.gmsa.svc.cluster.local",
                "extra.example.com"
            ]
        );
        assert_eq!(req.default_csr_name(), "gmsa-webhook.gmsa");
    }

    struct Parsed {
        subject: Vec<(String, String)>,
        dns: Vec<String>,
        ips: Vec<IpAddr>,
        other_sans: usize,
        key_usage: (bool, bool, bool),
        server_auth_only: bool,
        ca: Option<bool>,
    }

    fn parse(pem_text: &str) -> Parsed {
        let block = pem::parse(pem_text).expect("pem");
        assert_eq!(block.tag(), "CERTIFICATE REQUEST");
        let (_, csr) = X509CertificationRequest::from_der(block.contents()).expect("CSR DER");
        csr.verify_signature().expect("CSR self-signature verifies");
        let info = &csr.certification_request_info;
        let subject = info
            .subject
            .iter_attributes()
            .map(|a| {
                let oid = if a.attr_type() == &x509_parser::oid_registry::OID_X509_COMMON_NAME {
                    "CN"
                } else if a.attr_type() == &x509_parser::oid_registry::OID_X509_ORGANIZATION_NAME {
                    "O"
                } else {
                    "?"
                };
                (oid.to_string(), a.as_str().expect("utf8").to_string())
            })
            .collect();
        let mut parsed = Parsed {
            subject,
            dns: vec![],
            ips: vec![],
            other_sans: 0,
            key_usage: (false, false, false),
            server_auth_only: false,
            ca: None,
        };
        for ext in csr.requested_extensions().expect("extension request") {
            match ext {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        match name {
                            GeneralName::DNSName(d) => parsed.dns.push(d.to_string()),
                            GeneralName::IPAddress(b) => parsed.ips.push(match b.len() {
                                4 => IpAddr::from(<[u8; 4]>::try_from(*b).expect("v4")),
                                _ => IpAddr::from(<[u8; 16]>::try_from(*b).expect("v6")),
                            }),
                            _ => parsed.other_sans += 1,
                        }
                    }
                }
                ParsedExtension::KeyUsage(ku) => {
                    parsed.key_usage = (
                        ku.digital_signature(),
                        ku.key_encipherment(),
                        ku.key_cert_sign(),
                    );
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    parsed.server_auth_only = eku.server_auth
                        && !eku.client_auth
                        && !eku.any
                        && eku.other.is_empty()
                        && !eku.code_signing;
                }
                ParsedExtension::BasicConstraints(bc) => parsed.ca = Some(bc.ca),
                _ => {}
            }
        }
        parsed
    }

    #[test]
    fn csr_fits_each_signer_profile() {
        let p256 = generate_key(KeyType::EcdsaP256).expect("p256");
        let rsa = load_key(RSA_KEY, "test rsa key").expect("rsa");
        struct Case<'a> {
            signer: &'a str,
            key: &'a KeyPair,
            subject: Vec<(&'a str, &'a str)>,
            key_encipherment: bool,
            usages: Vec<&'a str>,
        }
        let cases = [
            Case {
                signer: KUBELET_SERVING,
                key: &p256,
                subject: vec![
                    ("O", "system:nodes"),
                    ("CN", "system:node:gmsa-webhook.gmsa.svc"),
                ],
                key_encipherment: false,
                usages: vec!["digital signature", "server auth"],
            },
            Case {
                signer: KUBELET_SERVING,
                key: &rsa,
                subject: vec![
                    ("O", "system:nodes"),
                    ("CN", "system:node:gmsa-webhook.gmsa.svc"),
                ],
                key_encipherment: true,
                usages: vec!["digital signature", "key encipherment", "server auth"],
            },
            Case {
                signer: "example.com/serving",
                key: &p256,
                subject: vec![("CN", "gmsa-webhook.gmsa.svc")],
                key_encipherment: false,
                usages: vec!["digital signature", "server auth"],
            },
        ];
        for case in cases {
            let mut req = CertRequest::new("gmsa-webhook", "gmsa").expect("valid");
            req.signer = case.signer.to_string();
            req.extra_dns = vec!["webhook.example.com".into()];
            req.ips = vec!["127.0.0.1".parse().expect("ip"), "::1".parse().expect("ip")];
            let built = build_csr(&req, case.key).expect("build");
            assert_eq!(built.usages, case.usages, "{}", case.signer);
            let parsed = parse(&built.pem);
            let subject: Vec<(&str, &str)> = parsed
                .subject
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            assert_eq!(subject, case.subject, "{}", case.signer);
            assert_eq!(parsed.dns, req.dns_names());
            assert_eq!(parsed.ips, req.ips);
            assert_eq!(parsed.other_sans, 0, "DNS/IP SANs only");
            assert_eq!(parsed.key_usage, (true, case.key_encipherment, false));
            assert!(parsed.server_auth_only, "EKU is server auth only");
            assert_eq!(parsed.ca, Some(false), "never a CA");
        }
    }

    #[test]
    fn refuses_client_signers_before_building() {
        let key = generate_key(KeyType::EcdsaP256).expect("p256");
        let mut req = CertRequest::new("s", "n").expect("valid");
        req.signer = "kubernetes.io/kube-apiserver-client".into();
        let err = build_csr(&req, &key).expect_err("client signer");
        assert!(err.to_string().contains("client certificates"), "{err}");
    }
}
