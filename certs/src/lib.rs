//! `gmsa-certs`: serving certificates for the webhook: key pairs and PKCS#10 requests (rcgen),
//! the certificates.k8s.io/v1 CertificateSigningRequest flow, CA bundles, and writers for
//! Secrets, files and webhook `caBundle`s.
//!
//! Pure parts (no I/O, table-tested): [`keys`] (generate/load keys), [`request`] (names, signer
//! profiles, the PKCS#10 request), [`cert`] (inspect, key match, SANs, expiry), [`ca`] (CA
//! bundles and chain verification), [`duration`].
//! I/O: [`flow`] (the whole `issue`/`renew` run against the API server), [`write`] (Secret,
//! files in a directory, webhook `caBundle` patches).

pub mod assess;
pub mod ca;
pub mod cert;
pub mod duration;
mod error;
pub mod flow;
pub mod keys;
pub mod request;
pub mod write;

pub use error::CertsError;
