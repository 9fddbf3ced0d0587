//! CA bundles: where they come from, and whether an issued certificate chains to them.

use std::path::PathBuf;

use x509_parser::prelude::X509Certificate;

use crate::cert::{parse_der, parse_pem_chain};
use crate::CertsError;

/// Where a CA bundle came from (for messages and the summary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaSource {
    /// `--ca-file PATH`.
    File(PathBuf),
    /// The `kube-root-ca.crt` ConfigMap in a namespace.
    ConfigMap {
        /// Namespace.
        namespace: String,
    },
    /// The kubeconfig's (or in-cluster service account's) cluster CA.
    Kubeconfig,
}

impl std::fmt::Display for CaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "--ca-file {}", p.display()),
            Self::ConfigMap { namespace } => write!(f, "ConfigMap {namespace}/kube-root-ca.crt"),
            Self::Kubeconfig => f.write_str("the kubeconfig's cluster CA"),
        }
    }
}

/// A set of trusted CA certificates.
#[derive(Clone, Debug)]
pub struct CaBundle {
    /// PEM text of all certificates (what goes into `ca.crt` and `caBundle`).
    pub pem: String,
    /// The same certificates, DER.
    pub ders: Vec<Vec<u8>>,
    /// Where it came from.
    pub source: CaSource,
}

impl CaBundle {
    /// A bundle from PEM text.
    pub fn from_pem(pem_text: &str, source: CaSource) -> Result<Self, CertsError> {
        let ders = parse_pem_chain(pem_text, &source.to_string())?;
        Ok(Self::from_ders(ders, source))
    }

    /// A bundle from DER certificates (re-encoded as PEM).
    pub fn from_ders(ders: Vec<Vec<u8>>, source: CaSource) -> Self {
        let pem = ders
            .iter()
            .map(|d| {
                pem::encode_config(
                    &pem::Pem::new("CERTIFICATE", d.clone()),
                    pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
                )
            })
            .collect::<String>();
        Self { pem, ders, source }
    }

    /// Whether another bundle holds the same certificates (order and formatting ignored).
    pub fn same_certs(&self, other_pem: &str) -> bool {
        let Ok(mut theirs) = parse_pem_chain(other_pem, "caBundle") else {
            return false;
        };
        let mut ours = self.ders.clone();
        theirs.sort();
        ours.sort();
        theirs == ours
    }
}

fn signed_by(child: &X509Certificate<'_>, parent: &X509Certificate<'_>) -> bool {
    child.issuer() == parent.subject() && child.verify_signature(Some(parent.public_key())).is_ok()
}

/// Checks that `chain[0]` (the leaf) chains, possibly through `chain[1..]`, to a certificate in
/// `bundle` whose validity covers `now`.
pub fn verify_chain(chain: &[Vec<u8>], bundle: &CaBundle, now: i64) -> Result<(), CertsError> {
    let what = "the issued certificate";
    let leaf_der = chain
        .first()
        .ok_or_else(|| CertsError::InvalidCertificate {
            what: what.to_string(),
            detail: "empty".to_string(),
        })?;
    let leaf = parse_der(leaf_der, what)?;
    let anchors: Vec<X509Certificate<'_>> = bundle
        .ders
        .iter()
        .filter_map(|d| parse_der(d, "CA bundle").ok())
        .filter(|c| {
            let v = c.validity();
            v.not_before.timestamp() <= now && now < v.not_after.timestamp()
        })
        .collect();
    let intermediates: Vec<X509Certificate<'_>> = chain[1..]
        .iter()
        .filter_map(|d| parse_der(d, "the issued chain").ok())
        .collect();
    let mut current = leaf.clone();
    // A chain longer than the certificates we hold cannot be valid: bound the walk.
    for _ in 0..=intermediates.len() {
        if anchors.iter().any(|a| signed_by(&current, a)) {
            return Ok(());
        }
        match intermediates
            .iter()
            .find(|i| i.is_ca() && signed_by(&current, i))
        {
            Some(next) => current = next.clone(),
            None => break,
        }
    }
    Err(CertsError::UntrustedChain {
        issuer: leaf.issuer().to_string(),
        source_desc: bundle.source.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::test_ca::{ca, leaf};
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    fn chain(pem_text: &str) -> Vec<Vec<u8>> {
        parse_pem_chain(pem_text, "t").expect("pem")
    }

    #[test]
    fn chain_verification_table() {
        let root = ca("root");
        let other = ca("other");
        // An intermediate signed by root.
        let inter_key = KeyPair::generate().expect("key");
        let mut inter_params = CertificateParams::default();
        inter_params
            .distinguished_name
            .push(DnType::CommonName, "intermediate");
        inter_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let inter_pem = inter_params
            .signed_by(&inter_key, &Issuer::from_params(&root.params, &root.key))
            .expect("intermediate")
            .pem();
        let inter = crate::cert::test_ca::TestCa {
            cert_pem: inter_pem.clone(),
            key: inter_key,
            params: inter_params,
        };
        let key = KeyPair::generate().expect("leaf key");
        let direct = leaf(&root, &key, &["s"], NOW - DAY, NOW + DAY);
        let via_inter = leaf(&inter, &key, &["s"], NOW - DAY, NOW + DAY);
        let by_other = leaf(&other, &key, &["s"], NOW - DAY, NOW + DAY);
        let root_bundle = CaBundle::from_pem(&root.cert_pem, CaSource::Kubeconfig).expect("ca");
        let both = CaBundle::from_pem(
            &format!("{}{}", other.cert_pem, root.cert_pem),
            CaSource::ConfigMap {
                namespace: "n".into(),
            },
        )
        .expect("ca");
        let table: Vec<(&str, String, &CaBundle, bool)> = vec![
            ("direct", direct.clone(), &root_bundle, true),
            (
                "through an intermediate",
                format!("{via_inter}{inter_pem}"),
                &root_bundle,
                true,
            ),
            (
                "intermediate missing",
                via_inter.clone(),
                &root_bundle,
                false,
            ),
            ("other CA", by_other.clone(), &root_bundle, false),
            ("bundle of two", by_other, &both, true),
            ("bundle of two, root", direct, &both, true),
        ];
        for (name, pem_text, bundle, ok) in table {
            let got = verify_chain(&chain(&pem_text), bundle, NOW);
            assert_eq!(got.is_ok(), ok, "{name}: {got:?}");
        }
        let err = verify_chain(&chain(&via_inter), &root_bundle, NOW).expect_err("untrusted");
        let text = err.to_string();
        assert!(
            text.contains("--ca-file") && text.contains("kubeconfig"),
            "{text}"
        );
    }

    #[test]
    fn a_forged_issuer_name_does_not_pass() {
        // Same subject name as the trusted CA, different key.
        let trusted = ca("local-k8s-ca");
        let forger = ca("local-k8s-ca");
        let key = KeyPair::generate().expect("key");
        let forged = leaf(&forger, &key, &["s"], NOW - DAY, NOW + DAY);
        let bundle = CaBundle::from_pem(&trusted.cert_pem, CaSource::Kubeconfig).expect("ca");
        assert!(verify_chain(&chain(&forged), &bundle, NOW).is_err());
    }

    #[test]
    fn same_certs_ignores_formatting() {
        let a = ca("a");
        let b = ca("b");
        let bundle = CaBundle::from_pem(
            &format!("{}{}", a.cert_pem, b.cert_pem),
            CaSource::Kubeconfig,
        )
        .expect("ca");
        assert!(bundle.same_certs(&format!("{}\n{}", b.cert_pem, a.cert_pem)));
        assert!(!bundle.same_certs(&a.cert_pem));
        assert!(!bundle.same_certs("junk"));
    }
}
