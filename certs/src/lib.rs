//! `gmsa-certs`: serving certificates for the webhook: key pairs and PKCS#10 requests (rcgen),
//! the certificates.k8s.io/v1 CertificateSigningRequest flow, CA bundles, and writers for
//! Secrets, files and webhook `caBundle`s.
