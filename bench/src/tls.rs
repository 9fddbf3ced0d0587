//! A throwaway serving certificate for `127.0.0.1`, and the rustls server config (ring) the
//! null server uses.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Writes a self-signed certificate for `127.0.0.1` and `localhost` and its key into `dir` as
/// `tls.crt` and `tls.key`; returns both paths.
pub fn write_self_signed(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .context("generate a self-signed certificate for the benchmark")?;
    let crt = dir.join("tls.crt");
    let key = dir.join("tls.key");
    std::fs::write(&crt, certified.cert.pem())
        .with_context(|| format!("write {}", crt.display()))?;
    std::fs::write(&key, certified.signing_key.serialize_pem())
        .with_context(|| format!("write {}", key.display()))?;
    Ok((crt, key))
}

/// A rustls server config (ring provider, HTTP/1.1) from PEM files.
pub fn server_config(crt: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(crt)
        .with_context(|| format!("open certificate {}", crt.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("read certificate {}", crt.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("read key {}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_certificate_loads_into_a_server_config() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (crt, key) = write_self_signed(dir.path()).expect("write");
        server_config(&crt, &key).expect("load");
    }
}
