//! `gmsa-doctor`: finds why a gMSA pod does not work on a cluster, and says how to fix it.
//!
//! Reads the set-up (API server, CRD, webhook configurations, Service and endpoints,
//! certificates, the webhook's Deployment, the spec, the service account's `use` grant, the
//! Windows nodes and, with LDAP options, the domain), sends a probe pod through the real
//! admission path as a server-side dry run, and turns what it saw into grouped checks, each
//! `ok`/`warn`/`fail`/`skip` with what was seen and the exact fix.
//!
//! # Public API
//!
//! - [`gather()`](fn@gather) (module [`gather`](mod@gather), the only I/O):
//!   `gather(kube::Client, &Options) -> Facts`. Only reads, plus one `dryRun=All` pod create
//!   and one SubjectAccessReview; a read doctor's user may not make becomes
//!   [`Fetched::Forbidden`] (a `skip` naming the right), never a pass.
//! - [`Facts`] ([`facts`]): plain data, [`Fetched`] per read, [`Target`] (namespace, service
//!   account, spec, configuration name, renewal window, node accounts).
//! - [`diagnose()`](fn@diagnose) (module [`diagnose`](mod@diagnose)): pure, `&Facts -> Report`,
//!   table-tested per group. [`probe_pod`] / [`probe_from`]: the probe pod, built or from a given pod (pure).
//! - [`Report`] ([`report`]): [`Check`] `{id, group, status, message, details, fix}`,
//!   [`Report::to_text`], [`Report::to_json`] (stable, for scripts), [`Report::exit_code`]
//!   (0: nothing failed, 1: a check failed; the binary uses 2 when doctor could not run).

pub mod diagnose;
pub mod facts;
pub mod gather;
mod probe_pod;
pub mod report;

pub use diagnose::diagnose;
pub use facts::{Facts, Fetched, ProbeAnswer, Target, WebhookAnswer, WEBHOOK_ENTRY};
pub use gather::{gather, Options};
pub use probe_pod::{probe_from, probe_pod, PROBE_NAME};
pub use report::{Check, Group, Report, Status, Summary};
