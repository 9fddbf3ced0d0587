//! `gmsa-certs`: serving certificates for the webhook: key pairs and PKCS#10 requests (rcgen),
//! the certificates.k8s.io/v1 CertificateSigningRequest flow, CA bundles, and writers for
//! Secrets, files and webhook `caBundle`s.
//!
//! Pure parts (no I/O, table-tested): [`keys`] (generate/load keys), [`request`] (names, signer
//! profiles, the PKCS#10 request), [`cert`] (inspect, key match, SANs, expiry), [`ca`] (CA
//! bundles and chain verification), [`duration`].
//! [`flow`] is the `issue`/`renew` run as plan, then act: its planning is pure too
//! ([`flow::plan`] from what was read to [`flow::step::Step`]s; [`flow::retain`], which CA
//! certificates a `caBundle` keeps through a CA change; [`flow::csr`], the CSR object and
//! states), and [`flow::issue`] reads, plans and runs the steps against the API server.
//! I/O: [`flow::issue`], [`mod@write`] (Secret, files in a directory; the `caBundle` and
//! annotation JSON patch is pure).

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
