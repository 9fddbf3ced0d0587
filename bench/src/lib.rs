//! `gmsa-bench`: the load benchmark of the admission webhook (issue 7), run by `scripts/bench`.
//!
//! - [`bodies`]: realistic AdmissionReview bodies built from the captures of a real API server.
//! - [`fake_api`]: a fake Kubernetes API server (specs list/watch/get, LocalSubjectAccessReview)
//!   with a per-response delay and call counters (binary `gmsa-bench-fakeapi`).
//! - [`tls`]: a throwaway serving certificate and the rustls config of the null server
//!   (binary `gmsa-bench-null`: reads the body, answers a fixed allowed review; the ceiling).
//! - [`measure`]: `/proc` readings, the load generator's result, the table and target verdicts.
//!
//! The driver (binary `gmsa-bench`) runs the matrix with `wrk` and prints the table; see
//! docs/performance.md.

pub mod bodies;
pub mod fake_api;
pub mod measure;
pub mod tls;
