//! TLS for the HTTPS port: rustls (ring provider) with TLS 1.2 and 1.3 only, ALPN `h2` and
//! `http/1.1`, and a certificate that can be replaced while serving.
//!
//! Reload ([`CertReloader`]): every interval the certificate and key files are read again
//! through their paths (so a Kubernetes Secret volume's `..data` symlink swap is seen: the
//! paths resolve to the new files) and compared with the pair being served. A changed pair
//! is parsed and checked (PEM present, certificate parses, key loads, key matches the
//! certificate); if good it is swapped into the [`CertResolver`] and new handshakes use it,
//! while open connections keep theirs. A bad pair is refused with a log line naming the file
//! and the old pair keeps serving. A pair must look the same on two consecutive checks
//! before it is refused, so a non-atomic update (certificate written before key) is not
//! reported as an error.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::metrics::{CertMetrics, ReloadLabels, ReloadResult};

/// Which file of a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The certificate (chain).
    Certificate,
    /// The private key.
    PrivateKey,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Certificate => "certificate",
            Role::PrivateKey => "private key",
        })
    }
}

/// A certificate/key problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read the {role} file {path}: {error}")]
    Read {
        /// Which file.
        role: Role,
        /// Its path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file is empty.
    #[error("the {role} file {path} is empty")]
    Empty {
        /// Which file.
        role: Role,
        /// Its path.
        path: PathBuf,
    },
    /// A file has no usable PEM content.
    #[error("the {role} file {path} is not usable: {reason}")]
    Invalid {
        /// Which file.
        role: Role,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key does not belong to the certificate.
    #[error("the private key in {key} does not match the certificate in {cert}")]
    Mismatch {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
    },
    /// Generating a self-signed certificate failed.
    #[error("cannot generate a self-signed certificate: {0}")]
    SelfSigned(String),
    /// The rustls configuration could not be built.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The certificate and key paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPaths {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// A checked certificate/key pair ready to serve.
#[derive(Clone, Debug)]
pub struct LoadedPair {
    /// What rustls serves.
    pub key: Arc<CertifiedKey>,
    /// The leaf's serial number (hex, `:`-separated), for logs.
    pub serial: String,
    /// The leaf's notAfter, Unix seconds.
    pub not_after: i64,
}

/// The crypto provider used for serving: ring, whatever the process default is.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(role: Role, path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|error| TlsError::Read {
        role,
        path: path.to_path_buf(),
        error,
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(TlsError::Empty {
            role,
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// Parses and checks a pair from PEM bytes; `paths` name the files in errors.
pub fn parse_pair(
    paths: &CertPaths,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<LoadedPair, TlsError> {
    let invalid = |role: Role, reason: String| TlsError::Invalid {
        role,
        path: match role {
            Role::Certificate => paths.cert.clone(),
            Role::PrivateKey => paths.key.clone(),
        },
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(Role::Certificate, format!("bad PEM: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(invalid(
            Role::Certificate,
            "no PEM CERTIFICATE block found".to_string(),
        ));
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).map_err(|e| {
        invalid(
            Role::Certificate,
            format!("the first certificate does not parse: {e}"),
        )
    })?;
    let serial = parsed.raw_serial_as_string();
    let not_after = parsed.validity().not_after.timestamp();
    let key_der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        invalid(
            Role::PrivateKey,
            format!("no PEM private key block (PKCS#8, PKCS#1 or SEC1) found: {e}"),
        )
    })?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| invalid(Role::PrivateKey, format!("unsupported key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::Mismatch {
                cert: paths.cert.clone(),
                key: paths.key.clone(),
            })
        }
        Err(e) => return Err(invalid(Role::Certificate, e.to_string())),
    }
    Ok(LoadedPair {
        key: Arc::new(certified),
        serial,
        not_after,
    })
}

/// Reads and checks a pair from files.
pub fn load_pair(paths: &CertPaths) -> Result<LoadedPair, TlsError> {
    let (cert, key) = read_pair(paths)?;
    parse_pair(paths, &cert, &key)
}

/// Reads the certificate file, then the key file (an error names the file).
fn read_pair(paths: &CertPaths) -> Result<PairBytes, TlsError> {
    Ok((
        read(Role::Certificate, &paths.cert)?,
        read(Role::PrivateKey, &paths.key)?,
    ))
}

/// A self-signed pair for `localhost`, `127.0.0.1`, `::1` and `$HOSTNAME` (not for
/// production), with the certificate's PEM (to give a client as its CA).
pub fn self_signed() -> Result<(LoadedPair, String), TlsError> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(host) = std::env::var("HOSTNAME") {
        if !host.is_empty() && !names.contains(&host) {
            names.push(host);
        }
    }
    let generated = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let cert_pem = generated.cert.pem();
    let key_pem = generated.signing_key.serialize_pem();
    let paths = CertPaths {
        cert: PathBuf::from("<self-signed certificate>"),
        key: PathBuf::from("<self-signed key>"),
    };
    let pair = parse_pair(&paths, cert_pem.as_bytes(), key_pem.as_bytes())?;
    Ok((pair, cert_pem))
}

/// Serves whatever pair it currently holds (swapped by [`CertReloader`]).
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    /// A resolver serving `key`.
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        Self {
            current: RwLock::new(key),
        }
    }

    /// The pair served to new handshakes.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls server configuration: TLS 1.2 and 1.3 only, ALPN `h2` then `http/1.1`.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What one [`CertReloader::check`] did.
#[derive(Debug)]
pub enum ReloadStatus {
    /// The files hold the pair being served.
    Unchanged,
    /// A new pair is served.
    Reloaded {
        /// Serial of the new certificate.
        serial: String,
    },
    /// The files changed but are not (yet) a good pair; seen once, not refused yet.
    Pending,
    /// The files hold a bad pair (seen twice): refused, the old pair keeps serving.
    Refused(TlsError),
}

/// The bytes of a certificate file and a key file.
type PairBytes = (Vec<u8>, Vec<u8>);

#[derive(Default)]
struct ReloadState {
    /// Contents of the pair being served.
    served: PairBytes,
    /// Contents of a bad pair seen once, or already refused (`true`).
    bad: Option<(PairBytes, bool)>,
}

/// Re-reads the certificate files and swaps good new pairs into a [`CertResolver`].
pub struct CertReloader {
    paths: CertPaths,
    resolver: Arc<CertResolver>,
    state: Mutex<ReloadState>,
    metrics: CertMetrics,
}

impl CertReloader {
    /// Loads the pair (failing with a message naming the file) and returns the reloader
    /// with its resolver serving that pair.
    pub fn start(paths: CertPaths, metrics: CertMetrics) -> Result<Self, TlsError> {
        let (cert, key) = read_pair(&paths)?;
        let pair = parse_pair(&paths, &cert, &key)?;
        log_served(&pair, &paths, "serving certificate");
        metrics.not_after_seconds.set(pair.not_after);
        Ok(Self {
            resolver: Arc::new(CertResolver::new(pair.key)),
            paths,
            state: Mutex::new(ReloadState {
                served: (cert, key),
                bad: None,
            }),
            metrics,
        })
    }

    /// The resolver to put in the server configuration.
    pub fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// Reads the files once and swaps in a changed good pair.
    pub fn check(&self) -> ReloadStatus {
        let contents = read_pair(&self.paths);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (cert, key) = match contents {
            Ok(pair) if pair == state.served => {
                state.bad = None;
                return ReloadStatus::Unchanged;
            }
            Ok(pair) => pair,
            Err(error) => {
                // Unreadable (mid-swap, or deleted): key the "bad" state on empty contents.
                return self.refuse(&mut state, (Vec::new(), Vec::new()), error);
            }
        };
        match parse_pair(&self.paths, &cert, &key) {
            Ok(pair) => {
                log_served(&pair, &self.paths, "certificate reloaded");
                self.metrics.not_after_seconds.set(pair.not_after);
                self.metrics
                    .reloads
                    .get_or_create(&ReloadLabels {
                        result: ReloadResult::Success,
                    })
                    .inc();
                self.resolver.set(pair.key);
                state.served = (cert, key);
                state.bad = None;
                ReloadStatus::Reloaded {
                    serial: pair.serial,
                }
            }
            Err(error) => self.refuse(&mut state, (cert, key), error),
        }
    }

    fn refuse(
        &self,
        state: &mut ReloadState,
        contents: PairBytes,
        error: TlsError,
    ) -> ReloadStatus {
        match &mut state.bad {
            Some((seen, refused)) if *seen == contents => {
                if !*refused {
                    *refused = true;
                    tracing::error!(
                        error = %error,
                        "new certificate/key refused; still serving the previous pair: fix the Secret"
                    );
                    self.metrics
                        .reloads
                        .get_or_create(&ReloadLabels {
                            result: ReloadResult::Refused,
                        })
                        .inc();
                }
                ReloadStatus::Refused(error)
            }
            _ => {
                state.bad = Some((contents, false));
                ReloadStatus::Pending
            }
        }
    }

    /// Checks every `interval` until dropped.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        crate::poll_blocking(self, interval, "certificate", |reloader| {
            reloader.check();
        })
        .await
    }
}

/// How often [`warn_before_expiry`] looks at the served certificate.
const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// The warning to log when the served certificate (notAfter `not_after`, Unix seconds) is
/// inside the renewal `window` at `now`, or has expired; `None` while it is outside the window
/// (or unknown: 0).
pub fn expiry_warning(not_after: i64, now: i64, window: Duration) -> Option<String> {
    if not_after <= 0 {
        return None;
    }
    let left = not_after - now;
    let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
    if left < 0 {
        Some(format!(
            "the serving certificate expired {}s ago: the API server refuses every pod that \
             names a GMSA spec; renew it now (helm upgrade, or gmsa certs renew)",
            -left
        ))
    } else if left <= window {
        Some(format!(
            "the serving certificate expires in {}h (within --cert-expiry-warning): renew it \
             (helm upgrade re-issues it within renewBefore, or gmsa certs renew)",
            left / 3600
        ))
    } else {
        None
    }
}

/// Logs [`expiry_warning`] for the served certificate (as the `not_after_seconds` gauge holds
/// it, so reloads are followed) now and then every hour. Runs until aborted.
pub async fn warn_before_expiry(metrics: CertMetrics, window: Duration) {
    let mut tick = tokio::time::interval(EXPIRY_CHECK_INTERVAL);
    loop {
        tick.tick().await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if let Some(warning) = expiry_warning(metrics.not_after_seconds.get(), now, window) {
            tracing::warn!(not_after = metrics.not_after_seconds.get(), "{warning}");
        }
    }
}

fn log_served(pair: &LoadedPair, paths: &CertPaths, what: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    tracing::info!(
        cert = %paths.cert.display(),
        serial = %pair.serial,
        not_after = pair.not_after,
        "{what}"
    );
    if pair.not_after < now {
        tracing::warn!(cert = %paths.cert.display(), serial = %pair.serial, "the certificate has expired: clients will refuse it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_warning_table() {
        let day = 86_400;
        let window = Duration::from_secs(30 * day as u64);
        let now = 1_800_000_000;
        for (not_after, want) in [
            (0, None),              // unknown
            (now + 31 * day, None), // outside the window
            (now + 30 * day, Some("expires in 720h")),
            (now + day, Some("expires in 24h")),
            (now, Some("expires in 0h")),
            (now - 10, Some("expired 10s ago")),
        ] {
            let got = expiry_warning(not_after, now, window);
            match want {
                None => assert_eq!(got, None, "{not_after}"),
                Some(needle) => assert!(
                    got.as_deref().is_some_and(|w| w.contains(needle)),
                    "{not_after}: {got:?}"
                ),
            }
        }
        assert_eq!(expiry_warning(now + day, now, Duration::ZERO), None);
    }

    struct Pair {
        cert: String,
        key: String,
    }

    fn generate(name: &str) -> Pair {
        let g = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
        Pair {
            cert: g.cert.pem(),
            key: g.signing_key.serialize_pem(),
        }
    }

    fn paths() -> CertPaths {
        CertPaths {
            cert: "/tls/crt".into(),
            key: "/tls/key".into(),
        }
    }

    #[test]
    fn parse_pair_table() {
        let a = generate("a");
        let b = generate("b");
        let cases: Vec<(&str, &str, &str, Option<&str>)> = vec![
            ("good", &a.cert, &a.key, None),
            (
                "key of another cert",
                &a.cert,
                &b.key,
                Some("does not match"),
            ),
            ("garbage cert", "hello", &a.key, Some("/tls/crt")),
            ("garbage key", &a.cert, "hello", Some("/tls/key")),
            ("key in cert file", &a.key, &a.key, Some("/tls/crt")),
            (
                "broken base64",
                "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
                &a.key,
                Some("/tls/crt"),
            ),
        ];
        for (what, cert, key, want_err) in cases {
            let got = parse_pair(&paths(), cert.as_bytes(), key.as_bytes());
            match (got, want_err) {
                (Ok(pair), None) => assert!(!pair.serial.is_empty(), "{what}"),
                (Err(e), Some(needle)) => {
                    assert!(e.to_string().contains(needle), "{what}: {e}")
                }
                (got, want) => panic!("{what}: got {got:?}, want error {want:?}"),
            }
        }
    }

    #[test]
    fn startup_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = generate("a");
        let cert = dir.path().join("crt");
        let key = dir.path().join("key");
        let paths = CertPaths {
            cert: cert.clone(),
            key: key.clone(),
        };
        let err = CertReloader::start(paths.clone(), CertMetrics::default())
            .err()
            .expect("missing");
        assert!(
            err.to_string().contains("cannot read the certificate file"),
            "{err}"
        );
        std::fs::write(&cert, "\n").expect("write");
        std::fs::write(&key, &a.key).expect("write");
        let err = CertReloader::start(paths.clone(), CertMetrics::default())
            .err()
            .expect("empty");
        assert!(err.to_string().contains("is empty"), "{err}");
        assert!(
            err.to_string().contains(&cert.display().to_string()),
            "{err}"
        );
        std::fs::write(&cert, &a.cert).expect("write");
        CertReloader::start(paths, CertMetrics::default()).expect("good pair");
    }

    #[test]
    fn reload_swaps_good_pairs_and_refuses_bad_ones_after_two_looks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (generate("a"), generate("b"));
        let paths = CertPaths {
            cert: dir.path().join("crt"),
            key: dir.path().join("key"),
        };
        std::fs::write(&paths.cert, &a.cert).expect("write");
        std::fs::write(&paths.key, &a.key).expect("write");
        let metrics = CertMetrics::default();
        let reloader = CertReloader::start(paths.clone(), metrics.clone()).expect("start");
        let served_a = reloader.resolver().current();
        assert!(matches!(reloader.check(), ReloadStatus::Unchanged));

        // Certificate replaced before the key: pending, then refused if it stays that way.
        std::fs::write(&paths.cert, &b.cert).expect("write");
        assert!(matches!(reloader.check(), ReloadStatus::Pending));
        assert!(matches!(
            reloader.check(),
            ReloadStatus::Refused(TlsError::Mismatch { .. })
        ));
        assert!(Arc::ptr_eq(&served_a, &reloader.resolver().current()));
        let refused = metrics
            .reloads
            .get_or_create(&ReloadLabels {
                result: ReloadResult::Refused,
            })
            .get();
        assert_eq!(refused, 1);

        // The key arrives: the new pair is served.
        std::fs::write(&paths.key, &b.key).expect("write");
        assert!(matches!(reloader.check(), ReloadStatus::Reloaded { .. }));
        assert!(!Arc::ptr_eq(&served_a, &reloader.resolver().current()));

        // Garbage and empty files keep the served pair.
        let served_b = reloader.resolver().current();
        for bad in ["garbage", ""] {
            std::fs::write(&paths.cert, bad).expect("write");
            assert!(matches!(reloader.check(), ReloadStatus::Pending));
            assert!(matches!(reloader.check(), ReloadStatus::Refused(_)));
            assert!(Arc::ptr_eq(&served_b, &reloader.resolver().current()));
        }
    }

    #[test]
    fn self_signed_pair_is_valid() {
        let (pair, pem) = self_signed().expect("self-signed");
        assert!(pem.contains("BEGIN CERTIFICATE"));
        assert!(pair.key.keys_match().is_ok());
    }
}
