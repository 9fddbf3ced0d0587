//! From [`Facts`] to a [`Report`]: every check, its status, what was seen and the fix. Pure:
//! no I/O, no clock (the time is [`Facts::now`]); tested with tables beside each group.

mod certs;
mod cluster;
mod probe;
mod spec;
mod webhooks;

pub(crate) use certs::url_host_port;

use crate::facts::{Facts, Fetched};
use crate::report::{Check, Group, Report, Status};

/// Runs every check on `facts`.
pub fn diagnose(facts: &Facts) -> Report {
    let mut checks = Vec::new();
    let reachable = cluster::checks(facts, &mut checks);
    if reachable {
        cluster_checks(facts, &mut checks);
    }
    Report { checks }
}

fn cluster_checks(f: &Facts, out: &mut Vec<Check>) {
    cluster::crd(f, out);
    webhooks::checks(f, out);
    certs::checks(f, out);
    probe::checks(f, out);
    spec::rbac(f, out);
    spec::checks(f, out);
    webhooks::deployment(f, out);
}

/// The check for a read that brought no answer: `skip` with the missing right or the reason,
/// `fail` only when `failed_is_fail` (the read itself is what is checked).
fn unanswered<T>(
    fetched: &Fetched<T>,
    id: &'static str,
    group: Group,
    what: &str,
) -> Option<Check> {
    match fetched {
        Fetched::Got(_) => None,
        Fetched::Forbidden(right) => Some(
            Check::new(
                id,
                group,
                Status::Skip,
                format!("not checked: doctor's user may not {right} ({what})"),
            )
            .fix(format!(
                "run doctor as a user who may {right} (kubectl auth can-i {})",
                can_i(right)
            )),
        ),
        Fetched::Failed(why) => Some(Check::new(
            id,
            group,
            Status::Skip,
            format!("not checked: reading {what} failed: {why}"),
        )),
        Fetched::NotAsked(why) => Some(Check::new(
            id,
            group,
            Status::Skip,
            format!("not checked: {why}"),
        )),
    }
}

/// `get secrets in namespace gmsa` → `get secrets -n gmsa`.
fn can_i(right: &str) -> String {
    match right.split_once(" in namespace ") {
        Some((verb_resource, ns)) => format!("{verb_resource} -n {ns}"),
        None => right.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod fixture;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Fetched;

    #[test]
    fn an_unreachable_cluster_stops_after_the_first_check() {
        let mut f = fixture::healthy();
        f.version = Fetched::Failed("connection refused".into());
        let r = diagnose(&f);
        assert_eq!(r.checks.len(), 1, "{r:#?}");
        assert_eq!(r.checks[0].id, "cluster.reachable");
        assert_eq!(r.checks[0].status, Status::Fail);
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn the_healthy_set_up_passes_every_check() {
        let r = diagnose(&fixture::healthy());
        let bad: Vec<_> = r.checks.iter().filter(|c| c.status != Status::Ok).collect();
        assert!(bad.is_empty(), "{bad:#?}");
        let ids: Vec<_> = r.checks.iter().map(|c| c.id).collect();
        assert_eq!(
            ids,
            [
                "cluster.reachable",
                "cluster.match-conditions",
                "crd.installed",
                "crd.versions",
                "crd.schema",
                "webhooks.mutating",
                "webhooks.validating",
                "webhooks.namespaces",
                "webhooks.service",
                "certs.ca-bundle",
                "certs.serving",
                "probe.dry-run",
                "rbac.use",
                "spec.found",
                "spec.valid",
                "spec.domain",
                "spec.nodes",
                "webhook.deployment",
                "webhook.info",
            ]
        );
    }

    #[test]
    fn a_missing_right_is_a_skip_naming_it_never_a_pass() {
        let mut f = fixture::healthy();
        f.serving_secret = Fetched::Forbidden("get secrets in namespace gmsa".into());
        let c = diagnose(&f);
        let c = c.get("certs.serving").expect("check ran");
        assert_eq!(c.status, Status::Skip);
        assert!(
            c.message.contains("may not get secrets in namespace gmsa"),
            "{c:?}"
        );
        assert_eq!(
            c.fix.as_deref(),
            Some("run doctor as a user who may get secrets in namespace gmsa (kubectl auth can-i get secrets -n gmsa)")
        );
    }
}
