//! The crate's error type. Every message says what failed, on which object, and what to do.

use std::path::PathBuf;

/// Everything that can go wrong while issuing, checking or writing a serving certificate.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// `--key-type rsa2048` without an existing key: ring cannot generate RSA keys.
    #[error(
        "RSA key generation is not available (the ring crypto provider only signs with RSA keys, \
         it cannot make them): use the default --key-type ecdsa-p256, which every supported \
         Kubernetes version accepts, or create an RSA key yourself (PKCS#8 PEM, e.g. \
         `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`) and pass it with --key-file"
    )]
    RsaGenerationUnavailable,
    /// Key generation failed in the crypto library.
    #[error("generating a private key failed: {0}")]
    KeyGeneration(String),
    /// A private key could not be read.
    #[error("cannot use the private key from {what}: {detail} (expected an unencrypted PKCS#8 PEM \"PRIVATE KEY\" holding an ECDSA P-256/P-384 or RSA 2048-8192 bit key)")]
    InvalidKey {
        /// Where the key came from.
        what: String,
        /// Why it failed.
        detail: String,
    },
    /// A service, namespace or DNS name that cannot appear in a certificate.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// Which input (service, namespace, DNS name, ...).
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A signer that cannot issue serving certificates.
    #[error("signer {signer:?} cannot issue a serving certificate: {reason}")]
    UnsupportedSigner {
        /// The signer name.
        signer: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// Building or signing the PKCS#10 request failed.
    #[error("building the certificate signing request failed: {0}")]
    Csr(String),
    /// A PEM/DER input is not a certificate.
    #[error("cannot parse the certificate from {what}: {detail}")]
    InvalidCertificate {
        /// Where it came from.
        what: String,
        /// Why it failed.
        detail: String,
    },
    /// The certificate's public key is not the private key's.
    #[error("the certificate from {what} does not match its private key (different public key)")]
    KeyMismatch {
        /// Where the pair came from.
        what: String,
    },
    /// The certificate lacks names we asked for.
    #[error("the certificate from {what} lacks the subject alternative names {missing:?}; the signer dropped them: check the signer's policy or pick another with --signer")]
    MissingSans {
        /// Where it came from.
        what: String,
        /// The names not present.
        missing: Vec<String>,
    },
    /// The certificate is outside its validity period.
    #[error("the certificate from {what} is not valid now: {detail}")]
    NotValidNow {
        /// Where it came from.
        what: String,
        /// Expired at / not valid before.
        detail: String,
    },
    /// The certificate does not chain to the CA bundle we are about to publish.
    #[error("the issued certificate (issuer {issuer:?}) does not chain to the CA bundle from {source_desc}: a caBundle that cannot verify the webhook would make the API server reject every pod; pass the signer's CA certificate with --ca-file")]
    UntrustedChain {
        /// The certificate's issuer DN.
        issuer: String,
        /// Where the bundle came from.
        source_desc: String,
    },
    /// No CA bundle could be found.
    #[error("no CA bundle found: {0}; pass the signer's CA certificate with --ca-file")]
    NoCaBundle(String),
    /// The API server refused an operation for lack of RBAC permission.
    #[error("forbidden: {action}: the caller lacks permission; grant {grant} (API server said: {message})")]
    Forbidden {
        /// What we tried to do, e.g. `create CertificateSigningRequest "svc.ns"`.
        action: String,
        /// The RBAC rule(s) to grant.
        grant: String,
        /// The API server's message.
        message: String,
    },
    /// The CSR was denied.
    #[error("CertificateSigningRequest {name:?} was denied: {reason}: {message} (see `kubectl get csr {name} -o yaml`)")]
    Denied {
        /// CSR name.
        name: String,
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// The signer failed the CSR.
    #[error(
        "CertificateSigningRequest {name:?} failed in signer {signer:?}: {reason}: {message}{hint}"
    )]
    Failed {
        /// CSR name.
        name: String,
        /// Signer name.
        signer: String,
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
        /// A suggestion, possibly empty.
        hint: String,
    },
    /// No certificate within the timeout.
    #[error(
        "timed out after {waited} waiting for CertificateSigningRequest {name:?} {what}: {hint}"
    )]
    Timeout {
        /// CSR name.
        name: String,
        /// What we were waiting for.
        what: String,
        /// How long we waited.
        waited: String,
        /// What to do.
        hint: String,
    },
    /// A CSR of the chosen name exists and was not made by gmsa.
    #[error("a CertificateSigningRequest named {name:?} already exists and was not created by gmsa (no label {label}); delete it (`kubectl delete csr {name}`) or choose another name with --csr-name")]
    ForeignCsr {
        /// CSR name.
        name: String,
        /// The ownership label.
        label: String,
    },
    /// The target Secret exists with another type.
    #[error("Secret {namespace}/{name} exists with type {found:?}, not kubernetes.io/tls; a Secret's type cannot change: delete it or choose another --secret")]
    SecretType {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The type found.
        found: String,
    },
    /// A `--patch-webhook` name matches no webhook configuration.
    #[error("no MutatingWebhookConfiguration or ValidatingWebhookConfiguration named {0:?} exists; check the name (`kubectl get mutatingwebhookconfigurations,validatingwebhookconfigurations`)")]
    WebhookNotFound(String),
    /// Any other API error.
    #[error("{action} failed: {source}")]
    Kube {
        /// What we tried to do.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The CSR disappeared while we waited.
    #[error("CertificateSigningRequest {0:?} was deleted while waiting for its certificate (by another run or an administrator); run again")]
    CsrDeleted(String),
    /// An object kept changing under us.
    #[error("{0} kept changing while gmsa tried to update it (another run at the same time?); run again")]
    Conflict(String),
    /// A file operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What we tried to do.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A bug: the run's steps came in an order the executor cannot follow.
    #[error("internal error: {0}; this is a bug in gmsa, please report it")]
    Internal(String),
    /// A duration that cannot be parsed.
    #[error("invalid duration {0:?}: use a number with a unit, e.g. 90s, 30m, 720h, 365d, 1h30m")]
    InvalidDuration(String),
}

impl CertsError {
    /// An I/O error on `path`.
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}
