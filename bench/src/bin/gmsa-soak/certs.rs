//! The soak's throwaway CA and serving certificates, written as a Kubernetes Secret volume.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

pub struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    pub der: Vec<u8>,
}

/// A certificate (PEM and DER) and its key (PEM).
#[derive(Clone)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Ca {
    pub fn new() -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "gmsa soak CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        })
    }

    pub fn leaf(&self, serial: u64) -> anyhow::Result<Pair> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        params.serial_number = Some(serial.into());
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        })
    }
}

/// Writes the pair into `dir` the way the kubelet updates a Secret volume: a new generation
/// directory, `..data` swapped to it atomically, the previous generation removed.
pub fn install(dir: &Path, cert: &[u8], key: &[u8]) -> anyhow::Result<()> {
    Ok(gmsa_certs::write::swap_dir(
        dir,
        &[("tls.crt", cert, 0o644), ("tls.key", key, 0o600)],
    )?)
}
