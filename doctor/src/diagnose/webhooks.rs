//! The webhook configurations (rules, failure policy, namespaces covered), the Service and its
//! endpoints, and the webhook's Deployment, pods and own answers.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{RuleWithOperations, WebhookClientConfig};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::unanswered;
use crate::facts::{Facts, Fetched, WEBHOOK_ENTRY};
use crate::report::{Check, Group, Status};

const INSTALL: &str = "helm upgrade --install gmsa charts/gmsa -n gmsa --create-namespace   (or name the configurations with --webhook-config NAME)";

const MUTATING: &str = "MutatingWebhookConfiguration";
const VALIDATING: &str = "ValidatingWebhookConfiguration";

/// One webhook entry, whichever kind, with what the checks need.
pub(super) struct Entry<'a> {
    pub kind: &'static str,
    pub config: &'a str,
    pub name: &'a str,
    pub client: &'a WebhookClientConfig,
    pub rules: &'a [RuleWithOperations],
    pub failure_policy: Option<&'a str>,
    pub timeout: Option<i32>,
    pub namespace_selector: Option<&'a LabelSelector>,
    pub has_match_conditions: bool,
}

impl Entry<'_> {
    fn what(&self) -> String {
        format!("{} {} entry {}", self.kind, self.config, self.name)
    }
}

/// The entries of `configs` doctor looks at: those named [`WEBHOOK_ENTRY`], or every entry of
/// the configurations named by `--webhook-config`. A macro because the mutating and validating
/// entry types share these fields but no trait.
macro_rules! entries {
    ($f:expr, $configs:expr, $kind:expr) => {
        $configs
            .got()
            .into_iter()
            .flatten()
            .flat_map(|c| {
                let config = c.metadata.name.as_deref().unwrap_or("");
                c.webhooks.iter().flatten().map(move |w| Entry {
                    kind: $kind,
                    config,
                    name: &w.name,
                    client: &w.client_config,
                    rules: w.rules.as_deref().unwrap_or_default(),
                    failure_policy: w.failure_policy.as_deref(),
                    timeout: w.timeout_seconds,
                    namespace_selector: w.namespace_selector.as_ref(),
                    has_match_conditions: w
                        .match_conditions
                        .as_ref()
                        .is_some_and(|m| !m.is_empty()),
                })
            })
            .filter(|e| $f.target.webhook_config.is_some() || e.name == WEBHOOK_ENTRY)
            .collect()
    };
}

/// The mutating entries doctor looks at (see [`entries!`]).
pub(super) fn mutating(f: &Facts) -> Vec<Entry<'_>> {
    entries!(f, f.mutating, MUTATING)
}

/// The validating entries doctor looks at.
pub(super) fn validating(f: &Facts) -> Vec<Entry<'_>> {
    entries!(f, f.validating, VALIDATING)
}

/// `webhooks.*`.
pub(super) fn checks(f: &Facts, out: &mut Vec<Check>) {
    let muts = mutating(f);
    let vals = validating(f);
    out.push(entries_check(
        &f.mutating,
        "webhooks.mutating",
        MUTATING,
        &muts,
        &[("CREATE", "pods"), ("UPDATE", "pods/ephemeralcontainers")],
        "a pod is created without its spec's contents when the webhook is down",
    ));
    out.push(entries_check(
        &f.validating,
        "webhooks.validating",
        VALIDATING,
        &vals,
        &[
            ("CREATE", "pods"),
            ("UPDATE", "pods"),
            ("UPDATE", "pods/ephemeralcontainers"),
        ],
        "a pod is admitted with no use check when the webhook is down",
    ));
    out.push(namespaces(f, &muts, &vals));
    out.push(service(f, muts.first().or(vals.first())));
}

fn entries_check(
    fetched: &Fetched<Vec<impl Sized>>,
    id: &'static str,
    kind: &str,
    entries: &[Entry<'_>],
    needed: &[(&str, &str)],
    fail_open: &str,
) -> Check {
    if let Some(c) = unanswered(fetched, id, Group::Webhooks, &format!("{kind}s")) {
        return c;
    }
    let Some(first) = entries.first() else {
        return Check::new(
            id,
            Group::Webhooks,
            Status::Fail,
            format!("no {kind} has an entry named {WEBHOOK_ENTRY}: the API server never calls the webhook"),
        )
        .fix(INSTALL);
    };
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for e in entries {
        let missing: Vec<String> = needed
            .iter()
            .filter(|(op, res)| !covers(e.rules, op, res))
            .map(|(op, res)| format!("{op} {res}"))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{}: its rules miss {}",
                e.what(),
                missing.join(", ")
            ));
        }
        if e.failure_policy == Some("Ignore") {
            warnings.push(format!("{}: failurePolicy Ignore: {fail_open}", e.what()));
        }
        if e.timeout.is_some_and(|t| t < 5) {
            warnings.push(format!(
                "{}: timeoutSeconds {} leaves no time for a live lookup (the chart uses 10)",
                e.what(),
                e.timeout.unwrap_or_default()
            ));
        }
    }
    let summary = format!(
        "{} (failurePolicy {}, timeoutSeconds {}, {})",
        first.what(),
        first.failure_policy.unwrap_or("Fail"),
        first.timeout.unwrap_or(10),
        target_of(first.client)
    );
    if !problems.is_empty() {
        return Check::new(id, Group::Webhooks, Status::Fail, problems.join("; "))
            .details(warnings)
            .fix(INSTALL);
    }
    if !warnings.is_empty() {
        return Check::new(id, Group::Webhooks, Status::Warn, summary)
            .details(warnings)
            .fix("set webhook.failurePolicy=Fail and webhook.timeoutSeconds=10 (the chart's defaults) and helm upgrade");
    }
    Check::new(id, Group::Webhooks, Status::Ok, summary)
}

/// Where an entry sends reviews, for people.
pub(super) fn target_of(c: &WebhookClientConfig) -> String {
    match (&c.service, &c.url) {
        (Some(s), _) => format!(
            "Service {}/{} port {} path {}",
            s.namespace,
            s.name,
            s.port.unwrap_or(443),
            s.path.as_deref().unwrap_or("/")
        ),
        (None, Some(url)) => format!("URL {url}"),
        (None, None) => "no service and no URL".into(),
    }
}

/// Whether the rules send `op` on `resource` (`pods` or `pods/ephemeralcontainers`) of the
/// core group, v1, namespaced.
pub(super) fn covers(rules: &[RuleWithOperations], op: &str, resource: &str) -> bool {
    let has = |list: &Option<Vec<String>>, want: &str| {
        list.iter().flatten().any(|x| x == "*" || x == want)
    };
    // `*` is every resource but no subresource; `*/*` every resource and subresource;
    // `pods/*` every subresource of pods.
    let has_resource = |list: &Option<Vec<String>>| {
        let (main, sub) = resource
            .split_once('/')
            .map_or((resource, None), |(m, s)| (m, Some(s)));
        list.iter().flatten().any(|x| {
            x == resource
                || x == "*/*"
                || (sub.is_none() && x == "*")
                || (sub.is_some() && x == &format!("{main}/*"))
                || (sub.is_some_and(|s| x == &format!("*/{s}")))
        })
    };
    rules.iter().any(|r| {
        has(&r.operations, op)
            && has(&r.api_groups, "")
            && has(&r.api_versions, "v1")
            && has_resource(&r.resources)
            && r.scope
                .as_deref()
                .is_none_or(|s| s == "*" || s == "Namespaced")
    })
}

/// Whether `selector` selects an object with `labels` (Kubernetes label-selector rules; a
/// missing selector selects everything).
pub(super) fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(s) = selector else { return true };
    let by_labels = s
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_exprs = s.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_exprs
}

/// A selector for people: `windows.k8s.io/disabled NotIn [true]`.
fn describe(s: &LabelSelector) -> Vec<String> {
    let mut out: Vec<String> = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    out.extend(s.match_expressions.iter().flatten().map(|e| {
        format!(
            "{} {} [{}]",
            e.key,
            e.operator,
            e.values.as_deref().unwrap_or_default().join(", ")
        )
    }));
    out
}

fn is_empty(s: Option<&LabelSelector>) -> bool {
    s.is_none_or(|s| {
        s.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
    })
}

fn namespaces(f: &Facts, muts: &[Entry<'_>], vals: &[Entry<'_>]) -> Check {
    let ns = &f.target.namespace;
    let id = "webhooks.namespaces";
    if let Some(c) = unanswered(
        &f.namespace,
        id,
        Group::Webhooks,
        &format!("namespace {ns}"),
    ) {
        return c;
    }
    let Some(Some(namespace)) = f.namespace.got() else {
        return Check::new(
            id,
            Group::Webhooks,
            Status::Fail,
            format!("namespace {ns} does not exist"),
        )
        .fix(format!(
            "kubectl create namespace {ns}   (or give the pod's namespace with -n)"
        ));
    };
    let labels = namespace.metadata.labels.clone().unwrap_or_default();
    let mut fails = Vec::new();
    let mut warns = Vec::new();
    for e in muts {
        if !selects(e.namespace_selector, &labels) {
            fails.push(format!(
                "{}: its namespaceSelector ({}) excludes namespace {ns}: pods there get no spec contents",
                e.what(),
                e.namespace_selector.map(describe).unwrap_or_default().join(", ")
            ));
        }
    }
    for e in vals {
        if !selects(e.namespace_selector, &labels) {
            fails.push(format!(
                "{}: its namespaceSelector excludes namespace {ns}: pods there are not use-checked",
                e.what()
            ));
        } else if !is_empty(e.namespace_selector) {
            warns.push(format!(
                "{}: the use check skips namespaces matching NOT ({}){}",
                e.what(),
                e.namespace_selector.map(describe).unwrap_or_default().join(", "),
                if e.has_match_conditions {
                    " — with matchConditions there is no need: remove webhook.validation.unsafeExcludeNamespaces"
                } else {
                    " — before 1.30 the chart keeps its own namespace and kube-system out so the webhook can start"
                }
            ));
        }
    }
    if !fails.is_empty() {
        return Check::new(id, Group::Webhooks, Status::Fail, fails.join("; "))
            .details(warns)
            .fix(format!(
                "kubectl label namespace {ns} windows.k8s.io/disabled-   (and remove {ns} from the chart's excludeNamespaces / webhook.validation.unsafeExcludeNamespaces, then helm upgrade)"
            ));
    }
    if !warns.is_empty() {
        return Check::new(
            id,
            Group::Webhooks,
            Status::Warn,
            format!("namespace {ns} is covered, but the use check has holes"),
        )
        .details(warns)
        .fix("on 1.30+: helm upgrade with webhook.validation.unsafeExcludeNamespaces unset");
    }
    Check::new(
        id,
        Group::Webhooks,
        Status::Ok,
        format!("namespace {ns} is mutated and use-checked; the use check covers every namespace"),
    )
}

fn service(f: &Facts, entry: Option<&Entry<'_>>) -> Check {
    let id = "webhooks.service";
    let Some(entry) = entry else {
        return Check::new(
            id,
            Group::Webhooks,
            Status::Skip,
            "not checked: no webhook entry",
        );
    };
    let Some(svc) = &entry.client.service else {
        return match &f.handshake {
            Fetched::Got(_) => Check::new(
                id,
                Group::Webhooks,
                Status::Ok,
                format!(
                    "the webhook answers a TLS handshake at {}",
                    target_of(entry.client)
                ),
            ),
            Fetched::Failed(why) => Check::new(
                id,
                Group::Webhooks,
                Status::Fail,
                format!(
                    "the webhook at {} does not answer: {why}",
                    target_of(entry.client)
                ),
            )
            .fix("start the webhook (gmsa-webhook) where the URL points, or fix clientConfig.url"),
            other => unanswered(other, id, Group::Webhooks, "the webhook URL")
                .unwrap_or_else(|| Check::new(id, Group::Webhooks, Status::Skip, "not checked")),
        };
    };
    let what = format!("Service {}/{}", svc.namespace, svc.name);
    if let Some(c) = unanswered(&f.service, id, Group::Webhooks, &what) {
        return c;
    }
    let Some(Some(service)) = f.service.got() else {
        return Check::new(
            id,
            Group::Webhooks,
            Status::Fail,
            format!("{what} does not exist: the API server cannot reach the webhook"),
        )
        .fix(INSTALL);
    };
    let port = svc.port.unwrap_or(443);
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_ref());
    if !ports.iter().flat_map(|p| p.iter()).any(|p| p.port == port) {
        return Check::new(
            id,
            Group::Webhooks,
            Status::Fail,
            format!("{what} has no port {port}, which the webhook configuration calls"),
        )
        .fix(format!(
            "kubectl -n {} get service {} -o yaml; helm upgrade the chart",
            svc.namespace, svc.name
        ));
    }
    if let Some(c) = unanswered(
        &f.endpoints,
        id,
        Group::Webhooks,
        &format!("EndpointSlices of {what}"),
    ) {
        return c;
    }
    let slices = f.endpoints.got().map(Vec::as_slice).unwrap_or_default();
    let ready = slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .count();
    let total: usize = slices.iter().map(|s| s.endpoints.len()).sum();
    if ready == 0 {
        return Check::new(
            id,
            Group::Webhooks,
            Status::Fail,
            format!("{what} has no ready endpoint ({total} not ready): no webhook pod is ready, so every pod create in a covered namespace fails"),
        )
        .fix(format!(
            "kubectl -n {ns} get pods -o wide; kubectl -n {ns} describe deployment {name}; kubectl -n {ns} logs deployment/{name}",
            ns = svc.namespace,
            name = svc.name
        ));
    }
    let seen = format!("{what} port {port} has {ready} ready endpoint(s)");
    match &f.target.release_namespace {
        Some(rn) if *rn != svc.namespace => Check::new(
            id,
            Group::Webhooks,
            Status::Warn,
            format!("{seen}, but it is not in the release namespace {rn}: another install answers"),
        )
        .fix(format!("helm list -A | grep gmsa; uninstall the release you do not want, or pass --release-namespace {}", svc.namespace)),
        _ => Check::new(id, Group::Webhooks, Status::Ok, seen),
    }
}

/// `webhook.deployment` and `webhook.info`.
pub(super) fn deployment(f: &Facts, out: &mut Vec<Check>) {
    let id = "webhook.deployment";
    out.push(
        match unanswered(
            &f.deployment,
            id,
            Group::Webhook,
            "the webhook's Deployment",
        ) {
            Some(c) => c,
            None => match f.deployment.got() {
                Some(Some(d)) => replicas(f, d),
                _ => Check::new(
                    id,
                    Group::Webhook,
                    Status::Fail,
                    "no Deployment's pods are selected by the webhook's Service",
                )
                .fix(INSTALL),
            },
        },
    );
    let id = "webhook.info";
    out.push(match unanswered(&f.webhook, id, Group::Webhook, "the webhook's /info and /health") {
        Some(c) => c,
        None => match f.webhook.got() {
            Some(a) => match (&a.info, &a.health) {
                (Ok(info), Ok((204, _))) => Check::new(
                    id,
                    Group::Webhook,
                    Status::Ok,
                    format!("the webhook answers {via}: {version}, ready (its spec cache is synced)", via = a.via, version = version_of(info)),
                ),
                (info, Ok((code, body))) => Check::new(
                    id,
                    Group::Webhook,
                    Status::Fail,
                    format!("the webhook answers {} but is not ready ({code}): {}{}", a.via, body.trim(), info.as_ref().map(|i| format!("; {}", version_of(i))).unwrap_or_default()),
                )
                .fix("read its log (kubectl logs deployment/NAME -n NS): it says why its spec cache is not synced, usually the CRD or its RBAC"),
                (_, Err(why)) => Check::new(id, Group::Webhook, Status::Fail, format!("the webhook does not answer {}: {why}", a.via))
                    .fix("kubectl -n NS get pods; kubectl -n NS logs deployment/NAME"),
            },
            None => Check::new(id, Group::Webhook, Status::Skip, "not checked"),
        },
    });
}

fn version_of(info: &str) -> String {
    serde_json::from_str::<serde_json::Value>(info)
        .ok()
        .and_then(|v| v["version"].as_str().map(|s| format!("version {s}")))
        .unwrap_or_else(|| format!("/info said {}", info.trim()))
}

fn replicas(f: &Facts, d: &k8s_openapi::api::apps::v1::Deployment) -> Check {
    let id = "webhook.deployment";
    let name = format!(
        "Deployment {}/{}",
        d.metadata.namespace.as_deref().unwrap_or(""),
        d.metadata.name.as_deref().unwrap_or("")
    );
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = d
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let mut details = Vec::new();
    let mut restarts = 0;
    for p in f.webhook_pods.got().into_iter().flatten() {
        for cs in p
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
        {
            if cs.restart_count > 0 {
                restarts += cs.restart_count;
                let last = cs
                    .last_state
                    .as_ref()
                    .and_then(|l| l.terminated.as_ref())
                    .map(|t| {
                        format!(
                            ", last ended {} (exit {})",
                            t.reason.as_deref().unwrap_or("?"),
                            t.exit_code
                        )
                    })
                    .unwrap_or_default();
                details.push(format!(
                    "pod {} container {}: {} restart(s){last}",
                    p.metadata.name.as_deref().unwrap_or(""),
                    cs.name,
                    cs.restart_count
                ));
            }
        }
    }
    let seen = format!("{name}: {ready}/{want} ready, {restarts} restart(s)");
    if ready == 0 {
        Check::new(id, Group::Webhook, Status::Fail, seen)
            .details(details)
            .fix(format!(
                "kubectl -n {ns} describe deployment {n}; kubectl -n {ns} logs deployment/{n}",
                ns = d.metadata.namespace.as_deref().unwrap_or(""),
                n = d.metadata.name.as_deref().unwrap_or("")
            ))
    } else if ready < want || restarts > 0 {
        Check::new(id, Group::Webhook, Status::Warn, seen)
            .details(details)
            .fix(format!(
                "kubectl -n {ns} logs deployment/{n} --previous",
                ns = d.metadata.namespace.as_deref().unwrap_or(""),
                n = d.metadata.name.as_deref().unwrap_or("")
            ))
    } else {
        Check::new(id, Group::Webhook, Status::Ok, seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fixture::check;
    use crate::diagnose::{diagnose, fixture};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn label_selector_rules() {
        let labels: BTreeMap<String, String> = [("team".to_string(), "web".to_string())].into();
        let sel = |exprs: Vec<LabelSelectorRequirement>| LabelSelector {
            match_expressions: Some(exprs),
            match_labels: None,
        };
        let cases = [
            (sel(vec![req("team", "In", &["web"])]), true),
            (sel(vec![req("team", "In", &["db"])]), false),
            (sel(vec![req("team", "NotIn", &["web"])]), false),
            (sel(vec![req("other", "NotIn", &["x"])]), true),
            (sel(vec![req("team", "Exists", &[])]), true),
            (sel(vec![req("team", "DoesNotExist", &[])]), false),
            (sel(vec![req("team", "Bogus", &[])]), false),
            (LabelSelector::default(), true),
            (
                LabelSelector {
                    match_labels: Some([("team".to_string(), "db".to_string())].into()),
                    match_expressions: None,
                },
                false,
            ),
        ];
        for (s, want) in cases {
            assert_eq!(selects(Some(&s), &labels), want, "{s:?}");
        }
        assert!(selects(None, &labels));
    }

    #[test]
    fn rules_coverage() {
        let rule = |ops: &[&str], res: &[&str]| RuleWithOperations {
            operations: Some(ops.iter().map(|s| s.to_string()).collect()),
            api_groups: Some(vec!["".into()]),
            api_versions: Some(vec!["*".into()]),
            resources: Some(res.iter().map(|s| s.to_string()).collect()),
            scope: Some("Namespaced".into()),
        };
        let rules = [rule(&["CREATE"], &["pods"]), rule(&["UPDATE"], &["pods/*"])];
        assert!(covers(&rules, "CREATE", "pods"));
        assert!(covers(&rules, "UPDATE", "pods/ephemeralcontainers"));
        assert!(!covers(&rules, "UPDATE", "pods"));
        assert!(covers(&[rule(&["*"], &["*"])], "UPDATE", "pods"));
        assert!(!covers(
            &[rule(&["*"], &["*"])],
            "UPDATE",
            "pods/ephemeralcontainers"
        ));
        assert!(covers(
            &[rule(&["*"], &["*/*"])],
            "UPDATE",
            "pods/ephemeralcontainers"
        ));
    }

    #[test]
    fn configuration_outcomes() {
        type Edit = fn(&mut Facts);
        let cases: [(&str, Edit, &str, Status, &str); 10] = [
            ("no mutating config", |f| f.mutating = Fetched::Got(vec![]), "webhooks.mutating", Status::Fail, "no MutatingWebhookConfiguration has an entry named admission-webhook.windows-gmsa.sigs.k8s.io"),
            ("no validating config", |f| f.validating = Fetched::Got(vec![]), "webhooks.validating", Status::Fail, "the API server never calls the webhook"),
            ("ephemeral rule missing", |f| fixture::mutating_entry(f).rules.as_mut().map(|r| r.truncate(1)).unwrap_or_default(), "webhooks.mutating", Status::Fail, "its rules miss UPDATE pods/ephemeralcontainers"),
            ("fail open", |f| fixture::validating_entry(f).failure_policy = Some("Ignore".into()), "webhooks.validating", Status::Warn, "failurePolicy Ignore: a pod is admitted with no use check"),
            ("namespace gone", |f| f.namespace = Fetched::Got(None), "webhooks.namespaces", Status::Fail, "namespace apps does not exist"),
            ("namespace disabled", |f| {
                if let Fetched::Got(Some(ns)) = &mut f.namespace {
                    ns.metadata.labels.get_or_insert_default().insert("windows.k8s.io/disabled".into(), "true".into());
                }
            }, "webhooks.namespaces", Status::Fail, "excludes namespace apps: pods there get no spec contents"),
            ("validation hole elsewhere", |f| {
                fixture::validating_entry(f).namespace_selector = Some(LabelSelector { match_expressions: Some(vec![req("kubernetes.io/metadata.name", "NotIn", &["kube-system"])]), match_labels: None });
            }, "webhooks.namespaces", Status::Warn, "the use check skips namespaces matching NOT (kubernetes.io/metadata.name NotIn [kube-system])"),
            ("no endpoints", |f| {
                if let Fetched::Got(slices) = &mut f.endpoints {
                    for s in slices { for e in &mut s.endpoints { e.conditions.get_or_insert_default().ready = Some(false); } }
                }
            }, "webhooks.service", Status::Fail, "has no ready endpoint (1 not ready)"),
            ("service gone", |f| f.service = Fetched::Got(None), "webhooks.service", Status::Fail, "Service gmsa/gmsa does not exist"),
            ("another release", |f| f.target.release_namespace = Some("other".into()), "webhooks.service", Status::Warn, "not in the release namespace other"),
        ];
        for (name, edit, id, status, text) in cases {
            let mut f = fixture::healthy();
            edit(&mut f);
            let r = diagnose(&f);
            let c = check(&r, id);
            assert_eq!(c.status, status, "{name}: {c:#?}");
            let all = format!("{} {}", c.message, c.details.join(" "));
            assert!(all.contains(text), "{name}: {all}");
            assert!(c.fix.is_some(), "{name}: a fix");
        }
    }

    #[test]
    fn webhook_outcomes() {
        type Edit = fn(&mut Facts);
        let cases: [(&str, Edit, &str, Status, &str); 4] = [
            (
                "not ready",
                |f| {
                    if let Fetched::Got(Some(d)) = &mut f.deployment {
                        d.status.get_or_insert_default().ready_replicas = Some(0);
                    }
                },
                "webhook.deployment",
                Status::Fail,
                "0/2 ready",
            ),
            (
                "restarts",
                |f| {
                    if let Fetched::Got(pods) = &mut f.webhook_pods {
                        if let Some(cs) = pods[0]
                            .status
                            .as_mut()
                            .and_then(|s| s.container_statuses.as_mut())
                        {
                            cs[0].restart_count = 3;
                        }
                    }
                },
                "webhook.deployment",
                Status::Warn,
                "3 restart(s)",
            ),
            (
                "cache not synced",
                |f| {
                    if let Fetched::Got(a) = &mut f.webhook {
                        a.health = Ok((503, "spec cache not synced".into()));
                    }
                },
                "webhook.info",
                Status::Fail,
                "not ready (503): spec cache not synced; version 0.1.0",
            ),
            (
                "unreachable",
                |f| {
                    if let Fetched::Got(a) = &mut f.webhook {
                        a.health = Err("503 Service Unavailable: no endpoints".into());
                    }
                },
                "webhook.info",
                Status::Fail,
                "does not answer",
            ),
        ];
        for (name, edit, id, status, text) in cases {
            let mut f = fixture::healthy();
            edit(&mut f);
            let r = diagnose(&f);
            let c = check(&r, id);
            assert_eq!(c.status, status, "{name}: {c:#?}");
            let all = format!("{} {}", c.message, c.details.join(" "));
            assert!(all.contains(text), "{name}: {all}");
        }
    }
}
