//! A small, pure RBAC evaluator over rendered manifests: "may this ServiceAccount do this?",
//! as the API server's RBAC authorizer would answer from these Roles, ClusterRoles (with
//! aggregation) and bindings alone. The chart tests use it to prove, offline, which rights
//! the chart's accounts hold after an install; e2e/ asks a real API server the same questions.
//!
//! Covered: RoleBinding (to a Role of its namespace or a ClusterRole, granting in its
//! namespace) and ClusterRoleBinding (cluster-wide); subjects by ServiceAccount, by the
//! service-account user name and by the groups a service-account token carries; `*` in
//! apiGroups, resources (subresources included) and verbs; subresources (`res/sub`, `*/sub`); resourceNames (a rule
//! with names never matches a request without a name, such as list); ClusterRole
//! aggregationRule by matchLabels. Not covered (not used by the chart): nonResourceURLs,
//! matchExpressions in aggregation selectors.

use serde_json::Value;

/// One request to authorize.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// `get`, `list`, `approve`, …
    pub verb: &'a str,
    /// API group (`""` for the core group).
    pub group: &'a str,
    /// Resource, with `/subresource` when there is one.
    pub resource: &'a str,
    /// The object's name, if the request names one.
    pub name: Option<&'a str>,
    /// The namespace, for namespaced resources; `None` for cluster-scoped ones.
    pub namespace: Option<&'a str>,
}

/// What no ServiceAccount of the release may do once an install or upgrade has succeeded
/// (issue 11: no standing power over the cluster's signers, no `use` of a spec).
pub const FORBIDDEN: [Request<'static>; 6] = [
    Request {
        verb: "approve",
        group: "certificates.k8s.io",
        resource: "signers",
        name: Some("kubernetes.io/kubelet-serving"),
        namespace: None,
    },
    Request {
        verb: "approve",
        group: "certificates.k8s.io",
        resource: "signers",
        name: Some("example.com/any"),
        namespace: None,
    },
    Request {
        verb: "update",
        group: "certificates.k8s.io",
        resource: "certificatesigningrequests/approval",
        name: Some("node-csr-x"),
        namespace: None,
    },
    Request {
        verb: "list",
        group: "certificates.k8s.io",
        resource: "certificatesigningrequests",
        name: None,
        namespace: None,
    },
    Request {
        verb: "delete",
        group: "certificates.k8s.io",
        resource: "certificatesigningrequests",
        name: Some("node-csr-x"),
        namespace: None,
    },
    Request {
        verb: "use",
        group: "windows.k8s.io",
        resource: "gmsacredentialspecs",
        name: Some("webapp01"),
        namespace: Some("demo"),
    },
];
/// What the webhook's own ServiceAccount needs (read specs, ask access reviews).
pub const WEBHOOK_NEEDS: [Request<'static>; 4] = [
    Request {
        verb: "get",
        group: "windows.k8s.io",
        resource: "gmsacredentialspecs",
        name: Some("webapp01"),
        namespace: None,
    },
    Request {
        verb: "list",
        group: "windows.k8s.io",
        resource: "gmsacredentialspecs",
        name: None,
        namespace: None,
    },
    Request {
        verb: "watch",
        group: "windows.k8s.io",
        resource: "gmsacredentialspecs",
        name: None,
        namespace: None,
    },
    Request {
        verb: "create",
        group: "authorization.k8s.io",
        resource: "localsubjectaccessreviews",
        name: None,
        namespace: Some("demo"),
    },
];

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn rule_allows(rule: &Value, req: &Request<'_>) -> bool {
    let groups = strings(&rule["apiGroups"]);
    let resources = strings(&rule["resources"]);
    let verbs = strings(&rule["verbs"]);
    let names = strings(&rule["resourceNames"]);
    // As the API server's RBAC: `*` matches every resource and subresource, `*/sub` every
    // resource's `sub`.
    let sub = req.resource.split_once('/').map(|(_, s)| s);
    let resource_ok = resources
        .iter()
        .any(|r| *r == req.resource || *r == "*" || sub.is_some_and(|s| *r == format!("*/{s}")));
    (groups.contains(&"*") || groups.contains(&req.group))
        && resource_ok
        && (verbs.contains(&"*") || verbs.contains(&req.verb))
        && (names.is_empty() || req.name.is_some_and(|n| names.contains(&n)))
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str, ns: Option<&str>) -> Option<&'a Value> {
    docs.iter().find(|d| {
        d["kind"] == kind
            && d["metadata"]["name"] == name
            && ns.is_none_or(|ns| d["metadata"]["namespace"] == ns)
    })
}

/// The rules of a ClusterRole, with those of the ClusterRoles its aggregationRule selects.
fn cluster_role_rules<'a>(docs: &'a [Value], role: &'a Value) -> Vec<&'a Value> {
    let mut rules: Vec<&Value> = role["rules"]
        .as_array()
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    for selector in role["aggregationRule"]["clusterRoleSelectors"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(want) = selector["matchLabels"].as_object() else {
            continue;
        };
        for other in docs.iter().filter(|d| d["kind"] == "ClusterRole") {
            let labels = &other["metadata"]["labels"];
            if want.iter().all(|(k, v)| &labels[k] == v) {
                rules.extend(other["rules"].as_array().into_iter().flatten());
            }
        }
    }
    rules
}

fn subject_is(subject: &Value, ns: &str, sa: &str) -> bool {
    match subject["kind"].as_str() {
        Some("ServiceAccount") => subject["name"] == sa && subject["namespace"] == ns,
        Some("User") => subject["name"] == format!("system:serviceaccount:{ns}:{sa}"),
        Some("Group") => {
            let g = subject["name"].as_str().unwrap_or_default();
            g == "system:serviceaccounts"
                || g == format!("system:serviceaccounts:{ns}")
                || g == "system:authenticated"
        }
        _ => false,
    }
}

/// Whether ServiceAccount `ns/sa` may make `req`, by the RBAC objects in `docs`.
pub fn allows(docs: &[Value], ns: &str, sa: &str, req: &Request<'_>) -> bool {
    docs.iter().any(|binding| {
        let kind = binding["kind"].as_str();
        let bound = binding["subjects"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| subject_is(s, ns, sa)));
        if !bound {
            return false;
        }
        let role_ref = &binding["roleRef"];
        let role_name = role_ref["name"].as_str().unwrap_or_default();
        let rules: Vec<&Value> = match (kind, role_ref["kind"].as_str()) {
            (Some("ClusterRoleBinding"), Some("ClusterRole")) => {
                find(docs, "ClusterRole", role_name, None)
                    .map(|r| cluster_role_rules(docs, r))
                    .unwrap_or_default()
            }
            (Some("RoleBinding"), role_kind) => {
                let binding_ns = binding["metadata"]["namespace"].as_str();
                if req.namespace.is_none() || req.namespace != binding_ns {
                    return false;
                }
                match role_kind {
                    Some("Role") => find(docs, "Role", role_name, binding_ns)
                        .and_then(|r| r["rules"].as_array())
                        .map(|r| r.iter().collect())
                        .unwrap_or_default(),
                    Some("ClusterRole") => find(docs, "ClusterRole", role_name, None)
                        .map(|r| cluster_role_rules(docs, r))
                        .unwrap_or_default(),
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        };
        rules.iter().any(|rule| rule_allows(rule, req))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req<'a>(
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        name: Option<&'a str>,
        ns: Option<&'a str>,
    ) -> Request<'a> {
        Request {
            verb,
            group,
            resource,
            name,
            namespace: ns,
        }
    }

    fn crb(name: &str, role: &str, subject: Value) -> Value {
        json!({"kind": "ClusterRoleBinding", "metadata": {"name": name},
               "roleRef": {"kind": "ClusterRole", "name": role}, "subjects": [subject]})
    }

    #[test]
    fn rbac_evaluation_table() {
        let sa = json!({"kind": "ServiceAccount", "name": "a", "namespace": "n"});
        let docs = vec![
            json!({"kind": "ClusterRole", "metadata": {"name": "csr"}, "rules": [
                {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"], "verbs": ["create", "get"]},
                {"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "resourceNames": ["kubernetes.io/kubelet-serving"], "verbs": ["approve"]}]}),
            crb("csr", "csr", sa.clone()),
            json!({"kind": "Role", "metadata": {"name": "sec", "namespace": "n"}, "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s"], "verbs": ["get"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "sec", "namespace": "n"},
                   "roleRef": {"kind": "Role", "name": "sec"}, "subjects": [sa.clone()]}),
            // A wildcard role bound to a group every service account is in.
            json!({"kind": "ClusterRole", "metadata": {"name": "all"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "yes"}}]}}),
            json!({"kind": "ClusterRole", "metadata": {"name": "part", "labels": {"agg": "yes"}}, "rules": [
                {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]}]}),
            crb(
                "all",
                "all",
                json!({"kind": "Group", "name": "system:serviceaccounts:n"}),
            ),
        ];
        let cases = [
            (
                req(
                    "create",
                    "certificates.k8s.io",
                    "certificatesigningrequests",
                    None,
                    None,
                ),
                true,
            ),
            (
                req(
                    "list",
                    "certificates.k8s.io",
                    "certificatesigningrequests",
                    None,
                    None,
                ),
                false,
            ),
            (
                req(
                    "approve",
                    "certificates.k8s.io",
                    "signers",
                    Some("kubernetes.io/kubelet-serving"),
                    None,
                ),
                true,
            ),
            (
                req(
                    "approve",
                    "certificates.k8s.io",
                    "signers",
                    Some("example.com/other"),
                    None,
                ),
                false,
            ),
            (
                req("approve", "certificates.k8s.io", "signers", None, None),
                false,
            ),
            (
                req(
                    "update",
                    "certificates.k8s.io",
                    "certificatesigningrequests/approval",
                    None,
                    None,
                ),
                false,
            ),
            (req("get", "", "secrets", Some("s"), Some("n")), true),
            (req("get", "", "secrets", Some("s"), Some("other")), false),
            (req("get", "", "secrets", Some("t"), Some("n")), false),
            (
                req("patch", "apps", "deployments/status", Some("x"), Some("n")),
                true,
            ), // via aggregation + group
            (
                req("patch", "apps", "deployments", Some("x"), Some("n")),
                false,
            ),
        ];
        for (r, want) in &cases {
            assert_eq!(allows(&docs, "n", "a", r), *want, "{r:?}");
        }
        // Another account gets nothing from the ServiceAccount bindings, nor from the group of
        // another namespace.
        assert!(!allows(&docs, "n", "b", &cases[0].0));
        assert!(!allows(&docs, "m", "a", &cases[9].0));
        // A `*` verb rule is caught.
        let star = vec![
            json!({"kind": "ClusterRole", "metadata": {"name": "star"}, "rules": [
                {"apiGroups": ["certificates.k8s.io"], "resources": ["*"], "verbs": ["*"]}]}),
            crb("star", "star", sa),
        ];
        assert!(allows(&star, "n", "a", &cases[1].0));
        assert!(allows(&star, "n", "a", &cases[5].0));
    }
}
