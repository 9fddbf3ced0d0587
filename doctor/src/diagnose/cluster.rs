//! The API server (reachable, version, matchConditions) and the CRD.

use gmsa_crd::{GROUP, PLURAL, VERSION, VERSION_V1ALPHA1};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use super::unanswered;
use crate::facts::{Facts, Fetched};
use crate::report::{Check, Group, Status};

/// The first Kubernetes minor version where `matchConditions` are GA.
pub const MATCH_CONDITIONS_MINOR: u32 = 30;

const APPLY_CRD: &str = "gmsa crd | kubectl apply --server-side -f -   (or helm upgrade --install the chart, which carries it)";

/// `cluster.*`; returns whether the API server answered.
pub(super) fn checks(f: &Facts, out: &mut Vec<Check>) -> bool {
    let info = match &f.version {
        Fetched::Got(info) => info,
        Fetched::Forbidden(right) => {
            out.push(
                Check::new(
                    "cluster.reachable",
                    Group::Cluster,
                    Status::Fail,
                    format!("the API server refused doctor's credentials ({right})"),
                )
                .fix("check the user of --kubeconfig/--context: kubectl version"),
            );
            return false;
        }
        Fetched::Failed(why) | Fetched::NotAsked(why) => {
            out.push(
                Check::new(
                    "cluster.reachable",
                    Group::Cluster,
                    Status::Fail,
                    format!("the API server did not answer: {why}"),
                )
                .fix("check --kubeconfig/--context and that the cluster is up: kubectl version"),
            );
            return false;
        }
    };
    out.push(Check::new(
        "cluster.reachable",
        Group::Cluster,
        Status::Ok,
        format!("Kubernetes {}", info.git_version),
    ));
    out.push(match minor(&info.major, &info.minor) {
        Some(m) if m >= MATCH_CONDITIONS_MINOR => Check::new(
            "cluster.match-conditions",
            Group::Cluster,
            Status::Ok,
            format!("matchConditions apply (1.{m}): the webhooks see only pods that mention GMSA, so the use check can cover every namespace"),
        ),
        Some(m) => Check::new(
            "cluster.match-conditions",
            Group::Cluster,
            Status::Warn,
            format!("Kubernetes 1.{m} has no matchConditions: the webhooks see every pod, and the chart keeps its own namespace and kube-system out of the use check so the webhook can start"),
        )
        .fix("upgrade the cluster to 1.30 or later, then helm upgrade the chart (the use check then covers every namespace)"),
        None => Check::new(
            "cluster.match-conditions",
            Group::Cluster,
            Status::Warn,
            format!("cannot tell the version from major {:?} minor {:?}", info.major, info.minor),
        ),
    });
    true
}

/// The minor version of Kubernetes 1.x (`"32+"` counts as 32).
pub(super) fn minor(major: &str, minor: &str) -> Option<u32> {
    let digits = |s: &str| -> Option<u32> {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    };
    (digits(major)? == 1).then_some(())?;
    digits(minor)
}

/// `crd.*`.
pub(super) fn crd(f: &Facts, out: &mut Vec<Check>) {
    let name = format!("{PLURAL}.{GROUP}");
    if let Some(c) = unanswered(&f.crd, "crd.installed", Group::Crd, &name) {
        out.push(c);
        return;
    }
    let Some(Some(crd)) = f.crd.got() else {
        out.push(
            Check::new(
                "crd.installed",
                Group::Crd,
                Status::Fail,
                format!("CustomResourceDefinition {name} is not installed: the API server refuses GMSACredentialSpecs and the webhook cannot start"),
            )
            .fix(APPLY_CRD),
        );
        return;
    };
    let established = crd
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Established"));
    out.push(match established {
        Some(c) if c.status == "True" => Check::new(
            "crd.installed",
            Group::Crd,
            Status::Ok,
            format!("{name} is established"),
        ),
        Some(c) => Check::new(
            "crd.installed",
            Group::Crd,
            Status::Fail,
            format!(
                "{name} is not established: {}",
                c.message.as_deref().unwrap_or("no message")
            ),
        )
        .fix(format!("kubectl describe crd {name}; then {APPLY_CRD}")),
        None => Check::new(
            "crd.installed",
            Group::Crd,
            Status::Fail,
            format!("{name} has no Established condition yet"),
        )
        .fix(format!(
            "kubectl wait --for condition=established crd/{name}"
        )),
    });
    out.push(versions(crd));
    out.push(schema(crd));
}

fn versions(crd: &CustomResourceDefinition) -> Check {
    let find = |v: &str| crd.spec.versions.iter().find(|x| x.name == v);
    let mut problems = Vec::new();
    match find(VERSION) {
        Some(v) if v.served && v.storage => {}
        Some(v) if v.served => problems.push(format!("{VERSION} is served but not the storage version (an older CRD that stores {}): upgrading it later needs a storage migration", crd.spec.versions.iter().find(|x| x.storage).map_or("nothing", |x| x.name.as_str()))),
        Some(_) => problems.push(format!("{VERSION} is not served")),
        None => problems.push(format!("{VERSION} is missing")),
    }
    if crd.spec.scope != "Cluster" {
        problems.push(format!(
            "scope is {} (GMSACredentialSpecs are cluster scoped)",
            crd.spec.scope
        ));
    }
    let served: Vec<&str> = crd
        .spec
        .versions
        .iter()
        .filter(|v| v.served)
        .map(|v| v.name.as_str())
        .collect();
    if problems.is_empty() {
        Check::new(
            "crd.versions",
            Group::Crd,
            Status::Ok,
            format!(
                "{VERSION} served and storage; served: {}{}",
                served.join(", "),
                if served.contains(&VERSION_V1ALPHA1) {
                    format!(" ({VERSION_V1ALPHA1} deprecated)")
                } else {
                    String::new()
                }
            ),
        )
    } else {
        Check::new(
            "crd.versions",
            Group::Crd,
            Status::Fail,
            problems.join("; "),
        )
        .fix(APPLY_CRD)
    }
}

fn schema(crd: &CustomResourceDefinition) -> Check {
    let theirs = version_schema(&serde_json::to_value(crd).unwrap_or_default());
    let ours = version_schema(&gmsa_crd::crd_value());
    let mut diffs = Vec::new();
    diff("", &ours, &theirs, &mut diffs);
    if diffs.is_empty() {
        return Check::new(
            "crd.schema",
            Group::Crd,
            Status::Ok,
            "the v1 schema is the one this gmsa generates",
        );
    }
    let n = diffs.len();
    diffs.truncate(8);
    Check::new(
        "crd.schema",
        Group::Crd,
        Status::Warn,
        format!("the v1 schema differs from the one this gmsa generates in {n} place(s) (an older or hand-made CRD)"),
    )
    .details(diffs)
    .fix(APPLY_CRD)
}

fn version_schema(crd: &Value) -> Value {
    crd["spec"]["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == VERSION))
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
        .unwrap_or(Value::Null)
}

/// The JSON paths where `ours` and `theirs` differ: `ours has X, the cluster Y`.
fn diff(path: &str, ours: &Value, theirs: &Value, out: &mut Vec<String>) {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = format!("{path}.{k}");
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff(&p, x, y, out),
                    (Some(x), None) => {
                        out.push(format!("{p}: the cluster lacks it (ours: {})", short(x)))
                    }
                    (None, Some(y)) => out.push(format!("{p}: only in the cluster ({})", short(y))),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!(
            "{path}: ours {}, the cluster {}",
            short(a),
            short(b)
        )),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fixture::check;
    use crate::diagnose::{diagnose, fixture};

    #[test]
    fn minor_versions() {
        for (major, m, want) in [
            ("1", "32", Some(32)),
            ("1", "28+", Some(28)),
            ("2", "1", None),
            ("1", "", None),
        ] {
            assert_eq!(minor(major, m), want, "{major}.{m}");
        }
    }

    #[test]
    fn match_conditions_by_version() {
        for (m, status) in [
            ("30", Status::Ok),
            ("35", Status::Ok),
            ("29", Status::Warn),
            ("28+", Status::Warn),
        ] {
            let mut f = fixture::healthy();
            if let Fetched::Got(info) = &mut f.version {
                info.minor = m.into();
            }
            let r = diagnose(&f);
            assert_eq!(
                check(&r, "cluster.match-conditions").status,
                status,
                "1.{m}"
            );
        }
    }

    #[test]
    fn crd_outcomes() {
        type Edit = fn(&mut CustomResourceDefinition);
        let cases: [(&str, Edit, &str, Status, &str); 5] = [
            (
                "not established",
                |c| {
                    if let Some(cs) = c.status.as_mut().and_then(|s| s.conditions.as_mut()) {
                        cs[0].status = "False".into();
                        cs[0].message = Some("names conflict".into());
                    }
                },
                "crd.installed",
                Status::Fail,
                "not established: names conflict",
            ),
            (
                "v1 not storage",
                |c| {
                    c.spec.versions[0].storage = false;
                    c.spec.versions[1].storage = true;
                },
                "crd.versions",
                Status::Fail,
                "not the storage version (an older CRD that stores v1alpha1)",
            ),
            (
                "namespaced",
                |c| c.spec.scope = "Namespaced".into(),
                "crd.versions",
                Status::Fail,
                "scope is Namespaced",
            ),
            (
                "no v1",
                |c| c.spec.versions.retain(|v| v.name != "v1"),
                "crd.versions",
                Status::Fail,
                "v1 is missing",
            ),
            (
                "old schema",
                |c| {
                    if let Some(s) = c.spec.versions[0]
                        .schema
                        .as_mut()
                        .and_then(|s| s.open_api_v3_schema.as_mut())
                    {
                        s.properties = None;
                    }
                },
                "crd.schema",
                Status::Warn,
                ".properties: the cluster lacks it",
            ),
        ];
        for (name, edit, id, status, text) in cases {
            let mut f = fixture::healthy();
            if let Fetched::Got(Some(crd)) = &mut f.crd {
                edit(crd);
            }
            let r = diagnose(&f);
            let c = check(&r, id);
            assert_eq!(c.status, status, "{name}: {c:?}");
            let all = format!("{} {}", c.message, c.details.join(" "));
            assert!(all.contains(text), "{name}: {all}");
            assert!(
                c.fix
                    .as_deref()
                    .is_some_and(|f| f.contains("gmsa crd") || f.contains("kubectl")),
                "{name}: {c:?}"
            );
        }
    }

    #[test]
    fn a_missing_crd_fails_with_the_apply_command_and_skips_nothing_else_silently() {
        let mut f = fixture::healthy();
        f.crd = Fetched::Got(None);
        let r = diagnose(&f);
        let c = check(&r, "crd.installed");
        assert_eq!(c.status, Status::Fail);
        assert_eq!(c.fix.as_deref(), Some(APPLY_CRD));
        assert!(r.get("crd.versions").is_none());
    }
}
