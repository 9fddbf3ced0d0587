//! The `issue`/`renew` run against the API server, as plan, then act:
//!
//! 1. read (`execute`): the CA bundle (`--ca-file`, else ConfigMap `kube-root-ca.crt`, else
//!    the kubeconfig's cluster CA), each `--patch-webhook` configuration, the Secret and the
//!    directory (judged by [`crate::assess`]), and, when a certificate is to be issued, a CSR of
//!    the same name;
//! 2. plan ([`plan::plan`], pure): keep what is in place when valid and not due
//!    ([`Action::Unchanged`]) or issue; stop on a foreign CSR, a Secret of another type or an
//!    unknown webhook configuration; the [`step::Step`]s: replace our stale CSR, create the
//!    CSR, approve it, wait for the certificate and check it (key, names, validity, chain),
//!    write the Secret and the directory, patch each webhook configuration whose `caBundle`
//!    differs (the new CA bundle plus the CAs [`retain`] keeps through a CA change);
//! 3. act (`execute`): run the steps in order. With `dry_run` the steps are returned as
//!    [`PlannedCall`]s instead (after the reads), from the same list.
//!
//! [`csr`] holds the CSR object and the CSR states (pure); [`report`] options in, report out.

pub mod csr;
mod execute;
pub mod plan;
pub mod report;
pub mod retain;
pub mod step;

pub use csr::{csr_object, csr_state, is_ours, CsrState, SERVICE_ANNOTATION};
pub use execute::issue;
pub use report::{Action, IssueOptions, IssueReport, PlannedCall, Progress};
