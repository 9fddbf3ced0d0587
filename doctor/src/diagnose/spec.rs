//! `rbac.use` and `spec.*`: the service account's grant, the spec, the domain and the
//! Windows nodes.

use gmsa_crd::{validate, CredSpec, Severity};

use super::unanswered;
use crate::facts::{Facts, Fetched};
use crate::report::{Check, Group, Status};

/// The Role and RoleBinding that grant exactly `use` on one spec to one service account.
pub fn grant_manifest(namespace: &str, service_account: &str, spec: &str) -> String {
    format!(
        "kubectl apply -f - <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: use-gmsa-{spec}
  namespace: {namespace}
rules:
  - apiGroups: [\"windows.k8s.io\"]
    resources: [\"gmsacredentialspecs\"]
    resourceNames: [\"{spec}\"]
    verbs: [\"use\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {service_account}-use-gmsa-{spec}
  namespace: {namespace}
subjects:
  - kind: ServiceAccount
    name: {service_account}
    namespace: {namespace}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: use-gmsa-{spec}
EOF"
    )
}

/// `rbac.use`.
pub(super) fn rbac(f: &Facts, out: &mut Vec<Check>) {
    let id = "rbac.use";
    let t = &f.target;
    let Some(spec) = &t.spec else {
        out.push(Check::new(
            id,
            Group::Rbac,
            Status::Skip,
            "not checked: no --spec (or a --pod naming one)",
        ));
        return;
    };
    let who = format!(
        "system:serviceaccount:{}:{}",
        t.namespace, t.service_account
    );
    if let Some(c) = unanswered(&f.access, id, Group::Rbac, "a SubjectAccessReview") {
        out.push(c);
        return;
    }
    let Some(status) = f.access.got() else { return };
    let reason = status.reason.as_deref().filter(|r| !r.is_empty());
    if let Some(err) = status.evaluation_error.as_deref().filter(|e| !e.is_empty()) {
        out.push(
            Check::new(
                id,
                Group::Rbac,
                if status.allowed {
                    Status::Warn
                } else {
                    Status::Fail
                },
                format!(
                    "the authorizer could not fully evaluate whether {who} may use {spec}: {err}"
                ),
            )
            .fix(
                "read the API server's authorizer configuration (webhook authorizers) and its log",
            ),
        );
        return;
    }
    out.push(if status.allowed {
        Check::new(
            id,
            Group::Rbac,
            Status::Ok,
            format!(
                "{who} may use GMSACredentialSpec {spec}{}",
                reason.map(|r| format!(" ({r})")).unwrap_or_default()
            ),
        )
    } else {
        Check::new(
            id,
            Group::Rbac,
            Status::Fail,
            format!("{who} may not use GMSACredentialSpec {spec}: the webhook denies its pods"),
        )
        .fix(grant_manifest(&t.namespace, &t.service_account, spec))
    });
}

/// `spec.*`.
pub(super) fn checks(f: &Facts, out: &mut Vec<Check>) {
    let Some(name) = &f.target.spec else {
        out.push(Check::new(
            "spec.found",
            Group::Spec,
            Status::Skip,
            "not checked: no --spec (or a --pod naming one)",
        ));
        return;
    };
    if let Some(c) = unanswered(
        &f.spec,
        "spec.found",
        Group::Spec,
        &format!("GMSACredentialSpec {name}"),
    ) {
        out.push(c);
        return;
    }
    let Some(Some(resource)) = f.spec.got() else {
        out.push(
            Check::new("spec.found", Group::Spec, Status::Fail, format!("GMSACredentialSpec {name} does not exist: pods naming it are denied"))
                .fix(format!("gmsa spec from-file gmsa-cred-spec.txt --name {name} --apply   (kubectl get gmsacredentialspecs lists the existing ones)")),
        );
        return;
    };
    out.push(Check::new(
        "spec.found",
        Group::Spec,
        Status::Ok,
        format!("GMSACredentialSpec {name} exists"),
    ));
    let spec = match resource.typed() {
        Ok(s) => s,
        Err(e) => {
            out.push(
                Check::new("spec.valid", Group::Spec, Status::Fail, format!("GMSACredentialSpec {name}: {e}"))
                    .fix(format!("kubectl edit gmsacredentialspec {name}, or rebuild it: gmsa spec from-dc --account ACCOUNT … --name {name} --apply")),
            );
            return;
        }
    };
    out.push(valid(name, &spec));
    out.push(domain(f, name));
    out.push(nodes(f, &spec));
}

fn valid(name: &str, spec: &CredSpec) -> Check {
    let problems = validate(spec);
    let lines: Vec<String> = problems
        .iter()
        .map(|p| {
            format!(
                "{}: {}{}",
                p.path,
                p.message,
                if p.hint.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", p.hint)
                }
            )
        })
        .collect();
    let status = if problems.iter().any(|p| p.severity == Severity::Error) {
        Status::Fail
    } else if problems.is_empty() {
        Status::Ok
    } else {
        Status::Warn
    };
    let message = match status {
        Status::Ok => format!("GMSACredentialSpec {name} passes gmsa spec validate"),
        _ => format!(
            "GMSACredentialSpec {name}: {} problem(s) (gmsa spec validate)",
            problems.len()
        ),
    };
    let check = Check::new("spec.valid", Group::Spec, status, message).details(lines);
    if status == Status::Ok {
        check
    } else {
        check.fix(format!("kubectl get gmsacredentialspec {name} -o yaml > spec.yaml; fix the fields above; gmsa spec validate spec.yaml && kubectl apply -f spec.yaml"))
    }
}

/// `spec.domain`: gmsa-ad's problems with the spec; those about a node
/// ([`gmsa_ad::Problem::node`]) are `spec.nodes`'.
fn domain(f: &Facts, name: &str) -> Check {
    let id = "spec.domain";
    match &f.domain {
        Fetched::Got(report) => {
            let problems: Vec<&gmsa_ad::Problem> =
                report.problems.iter().filter(|p| p.node().is_none()).collect();
            match problems.first() {
                None => Check::new(
                    id,
                    Group::Spec,
                    Status::Ok,
                    format!("GMSACredentialSpec {name} matches the domain (SID, GUID, names, accounts)"),
                )
                .details(report.notes.clone()),
                Some(first) => Check::new(
                    id,
                    Group::Spec,
                    Status::Fail,
                    format!("GMSACredentialSpec {name} does not match the domain: {} problem(s)", problems.len()),
                )
                .details(problems.iter().map(ToString::to_string))
                .fix(first.fix.clone()),
            }
        }
        Fetched::Failed(why) => Check::new(id, Group::Spec, Status::Fail, format!("reading the domain failed: {why}"))
            .fix("check --server, --ca-file and the bind credentials (gmsa spec verify takes the same flags)"),
        other => unanswered(other, id, Group::Spec, "the domain")
            .unwrap_or_else(|| Check::new(id, Group::Spec, Status::Skip, "not checked")),
    }
}

fn nodes(f: &Facts, spec: &CredSpec) -> Check {
    let id = "spec.nodes";
    if let Some(hac) = spec
        .active_directory_config
        .as_ref()
        .and_then(|a| a.host_account_config.as_ref())
    {
        let plugin = hac
            .plugin_guid
            .as_deref()
            .and_then(gmsa_crd::ccg::by_guid)
            .map_or_else(
                || "an unknown CCG plugin".to_string(),
                |p| format!("the {}", p.name),
            );
        return Check::new(
            id,
            Group::Spec,
            Status::Skip,
            format!("not checked: a domainless (CCG) spec: nodes need not be in the domain; {plugin} fetches a reader account's credentials (gmsa spec explain lists what each node needs)"),
        );
    }
    if let Some(c) = unanswered(&f.nodes, id, Group::Spec, "the Windows nodes") {
        return c;
    }
    let nodes = f.nodes.got().map(Vec::as_slice).unwrap_or_default();
    if nodes.is_empty() {
        return Check::new(
            id,
            Group::Spec,
            Status::Warn,
            "no node is labelled kubernetes.io/os=windows: gMSA pods cannot be scheduled",
        )
        .fix("add a Windows node pool (its nodes join the domain, or use a CCG spec)");
    }
    let accounts: Vec<(String, String)> = nodes
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .map(|n| {
            let a = f.target.node_account(&n);
            (n, a)
        })
        .collect();
    let Some(report) = f.domain.got() else {
        return Check::new(
            id,
            Group::Spec,
            Status::Skip,
            format!("not checked: {} Windows node(s) ({}); give the LDAP flags of gmsa spec verify (--server …) to check that their computer accounts may retrieve the gMSA password", accounts.len(), accounts.iter().map(|(_, a)| a.as_str()).collect::<Vec<_>>().join(", ")),
        );
    };
    let allowed: Vec<String> = report
        .readers
        .iter()
        .flat_map(|r| {
            r.nodes
                .iter()
                .filter(|(_, may)| *may)
                .map(move |(node, _)| format!("{node} may retrieve the password of {}", r.account))
        })
        .collect();
    let problems: Vec<&gmsa_ad::Problem> = report
        .problems
        .iter()
        .filter(|p| p.node().is_some())
        .collect();
    match problems.first() {
        Some(first) => Check::new(
            id,
            Group::Spec,
            Status::Fail,
            format!(
                "{} Windows node account(s) cannot use the gMSA: {}",
                problems.len(),
                problems.iter().map(|p| format!("{}: {}", p.node().unwrap_or_default(), p.message)).collect::<Vec<_>>().join("; ")
            ),
        )
        .details(allowed)
        .fix(format!("{} (then restart the node or run klist purge -li 0x3e7 on it; a node whose computer name differs from its Kubernetes name: --node-account NODE=ACCOUNT$)", first.fix)),
        None => Check::new(
            id,
            Group::Spec,
            Status::Ok,
            format!(
                "every Windows node's computer account may retrieve the gMSA password ({})",
                accounts.iter().map(|(_, a)| a.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )
        .details(allowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fixture::check;
    use crate::diagnose::{diagnose, fixture};

    #[test]
    fn the_grant_is_exact() {
        let m = grant_manifest("apps", "webapp", "webapp01");
        assert!(
            m.contains("resourceNames: [\"webapp01\"]\n    verbs: [\"use\"]"),
            "{m}"
        );
        assert!(
            m.contains("  - kind: ServiceAccount\n    name: webapp\n    namespace: apps"),
            "{m}"
        );
    }

    #[test]
    fn spec_and_rbac_outcomes() {
        type Edit = fn(&mut Facts);
        let cases: [(&str, Edit, &str, Status, &str, &str); 8] = [
            (
                "use not granted",
                |f| {
                    if let Fetched::Got(s) = &mut f.access {
                        s.allowed = false;
                        s.reason = None;
                    }
                },
                "rbac.use",
                Status::Fail,
                "may not use GMSACredentialSpec webapp01",
                "kind: RoleBinding",
            ),
            (
                "authorizer error",
                |f| {
                    if let Fetched::Got(s) = &mut f.access {
                        s.allowed = false;
                        s.evaluation_error = Some("webhook authorizer timed out".into());
                    }
                },
                "rbac.use",
                Status::Fail,
                "could not fully evaluate",
                "authorizer",
            ),
            (
                "spec gone",
                |f| f.spec = Fetched::Got(None),
                "spec.found",
                Status::Fail,
                "does not exist",
                "gmsa spec from-file",
            ),
            (
                "spec invalid",
                |f| {
                    fixture::edit_credspec(f, |v| {
                        v["DomainJoinConfig"]["Sid"] = "S-1-2-bogus".into()
                    })
                },
                "spec.valid",
                Status::Fail,
                "problem(s)",
                "gmsa spec validate",
            ),
            (
                "wrong SID in the domain",
                |f| {
                    if let Fetched::Got(r) = &mut f.domain {
                        r.problems.push(gmsa_ad::Problem {
                            field: "DomainJoinConfig.Sid".into(),
                            message: "S-1-5-21-1 is not the domain's SID S-1-5-21-2".into(),
                            fix: "set DomainJoinConfig.Sid to S-1-5-21-2".into(),
                        });
                    }
                },
                "spec.domain",
                Status::Fail,
                "does not match the domain",
                "set DomainJoinConfig.Sid",
            ),
            (
                "node not allowed",
                |f| {
                    if let Fetched::Got(r) = &mut f.domain {
                        r.readers[0].nodes[0].1 = false;
                        r.problems.push(gmsa_ad::Problem {
                            field: "node WINNODE1$".into(),
                            message: "may not retrieve the password of gMSA WebApp01: neither it nor any of its groups is in msDS-GroupMSAMembership".into(),
                            fix: "add the node or a group it is in: Set-ADServiceAccount WebApp01 -PrincipalsAllowedToRetrieveManagedPassword <group>".into(),
                        });
                    }
                },
                "spec.nodes",
                Status::Fail,
                "WINNODE1$: may not retrieve the password of gMSA WebApp01",
                "PrincipalsAllowedToRetrieveManagedPassword",
            ),
            (
                "node not in the domain",
                |f| {
                    if let Fetched::Got(r) = &mut f.domain {
                        r.readers[0].nodes.clear();
                        r.problems.push(gmsa_ad::Problem {
                            field: "node WINNODE1$".into(),
                            message: "no computer account `WINNODE1$` in contoso.com".into(),
                            fix: "check the node's computer name".into(),
                        });
                    }
                },
                "spec.nodes",
                Status::Fail,
                "no computer account `WINNODE1$`",
                "--node-account NODE=ACCOUNT$",
            ),
            (
                "no windows nodes",
                |f| f.nodes = Fetched::Got(vec![]),
                "spec.nodes",
                Status::Warn,
                "no node is labelled",
                "Windows node pool",
            ),
        ];
        for (name, edit, id, status, text, fix) in cases {
            let mut f = fixture::healthy();
            edit(&mut f);
            let r = diagnose(&f);
            let c = check(&r, id);
            assert_eq!(c.status, status, "{name}: {c:#?}");
            assert!(c.message.contains(text), "{name}: {}", c.message);
            assert!(
                c.fix.as_deref().unwrap_or_default().contains(fix),
                "{name}: {c:#?}"
            );
        }
    }

    #[test]
    fn ccg_specs_skip_the_node_check_and_say_why() {
        let mut f = fixture::healthy();
        fixture::edit_credspec(&mut f, |v| {
            v["ActiveDirectoryConfig"]["HostAccountConfig"] = serde_json::json!({
                "PortableCcgVersion": "1",
                "PluginGUID": "{859E1386-BDB4-49E8-85C7-3070B13920E1}",
                "PluginInput": "{\"credentialArn\": \"arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-reader\"}"
            });
        });
        let r = diagnose(&f);
        let c = check(&r, "spec.nodes");
        assert_eq!(c.status, Status::Skip);
        assert!(
            c.message.contains("domainless (CCG) spec") && c.message.contains("AWS"),
            "{c:?}"
        );
    }

    #[test]
    fn without_ldap_flags_the_domain_checks_are_skipped_with_the_accounts_they_would_check() {
        let mut f = fixture::healthy();
        f.domain =
            Fetched::NotAsked("no --server given (the LDAP flags of gmsa spec verify)".into());
        let r = diagnose(&f);
        assert_eq!(check(&r, "spec.domain").status, Status::Skip);
        let c = check(&r, "spec.nodes");
        assert_eq!(c.status, Status::Skip);
        assert!(c.message.contains("WINNODE1$"), "{c:?}");
    }
}
