//! [`TestCa`]: a throwaway CA the fakes sign with (the CSR signer, testkit's set-up).

use rcgen::{CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A CA that signs: its key, parameters and certificate.
pub(crate) struct TestCa {
    key: KeyPair,
    params: CertificateParams,
    /// Its certificate (PEM).
    pub(crate) pem: String,
}

impl TestCa {
    /// A fresh self-signed CA named `common_name`.
    pub(crate) fn new(common_name: &str) -> Self {
        let key = KeyPair::generate().expect("test CA key");
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).expect("self-signed test CA").pem();
        Self { key, params, pem }
    }

    /// What signs with it.
    pub(crate) fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}
