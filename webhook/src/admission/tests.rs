//! Table tests for the admission rules: every reference behaviour and every new one of
//! issue 3, through the same three phases `admission_review` runs (scan, needs, decide), with
//! lookups answered from in-test tables.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::*;
use crate::lookup::{CredSpecEntry, LookupError, SpecLookup, UseDecision};

// ---- pods --------------------------------------------------------------------------------

type Gmsa = (Option<&'static str>, Option<&'static str>);
const NONE: Gmsa = (None, None);

#[derive(Clone)]
struct C {
    name: &'static str,
    gmsa: Option<Gmsa>,
}

fn c(name: &'static str, gmsa: Gmsa) -> C {
    C {
        name,
        gmsa: Some(gmsa),
    }
}

/// A container without a securityContext at all.
fn plain(name: &'static str) -> C {
    C { name, gmsa: None }
}

#[derive(Clone)]
struct P {
    name: &'static str,
    generate_name: &'static str,
    service_account: &'static str,
    hostname: &'static str,
    pod: Option<Gmsa>,
    containers: Vec<C>,
    init: Vec<C>,
    ephemeral: Vec<C>,
}

fn p() -> P {
    P {
        name: "web",
        generate_name: "",
        service_account: "webapp",
        hostname: "",
        pod: None,
        containers: vec![plain("main")],
        init: Vec::new(),
        ephemeral: Vec::new(),
    }
}

fn security_context(gmsa: Gmsa) -> Value {
    let mut w = serde_json::Map::new();
    if let Some(n) = gmsa.0 {
        w.insert("gmsaCredentialSpecName".into(), n.into());
    }
    if let Some(c) = gmsa.1 {
        w.insert("gmsaCredentialSpec".into(), c.into());
    }
    json!({ "windowsOptions": w, "runAsNonRoot": false })
}

fn containers(list: &[C]) -> Value {
    list.iter()
        .map(|c| {
            let mut v =
                json!({ "name": c.name, "image": "mcr.microsoft.com/windows/nanoserver:ltsc2022" });
            if let Some(g) = c.gmsa {
                v["securityContext"] = security_context(g);
            }
            v
        })
        .collect()
}

impl P {
    fn json(&self) -> String {
        let mut meta = json!({ "namespace": "demo", "labels": { "app": "web" } });
        if !self.name.is_empty() {
            meta["name"] = self.name.into();
        }
        if !self.generate_name.is_empty() {
            meta["generateName"] = self.generate_name.into();
        }
        let mut spec = json!({ "containers": containers(&self.containers) });
        if !self.service_account.is_empty() {
            spec["serviceAccountName"] = self.service_account.into();
        }
        if !self.hostname.is_empty() {
            spec["hostname"] = self.hostname.into();
        }
        if let Some(g) = self.pod {
            spec["securityContext"] = security_context(g);
        }
        if !self.init.is_empty() {
            spec["initContainers"] = containers(&self.init);
        }
        if !self.ephemeral.is_empty() {
            spec["ephemeralContainers"] = containers(&self.ephemeral);
        }
        json!({ "apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec }).to_string()
    }
    fn with_pod(mut self, g: Gmsa) -> Self {
        self.pod = Some(g);
        self
    }
    fn with_containers(mut self, cs: Vec<C>) -> Self {
        self.containers = cs;
        self
    }
    fn with_init(mut self, cs: Vec<C>) -> Self {
        self.init = cs;
        self
    }
    fn with_ephemeral(mut self, cs: Vec<C>) -> Self {
        self.ephemeral = cs;
        self
    }
}

// ---- specs and authorization ----------------------------------------------------------------

fn webapp01() -> Value {
    json!({
        "CmsPlugins": ["ActiveDirectory"],
        "DomainJoinConfig": {
            "Sid": "S-1-5-21-2126729477-2524075714-3094792973",
            "MachineAccountName": "WebApp01",
            "Guid": "244818ae-87ca-4fcd-92ec-e79e5252348a",
            "DnsTreeName": "contoso.com",
            "DnsName": "contoso.com",
            "NetBiosName": "CONTOSO"
        },
        "ActiveDirectoryConfig": {
            "GroupManagedServiceAccounts": [
                { "Name": "WebApp01", "Scope": "CONTOSO" },
                { "Name": "WebApp01", "Scope": "contoso.com" }
            ]
        }
    })
}

fn other() -> Value {
    let mut v = webapp01();
    v["DomainJoinConfig"]["MachineAccountName"] = "Other".into();
    v
}

/// `webapp01`'s contents exactly as mutate inlines them (compact, keys sorted).
fn compact() -> &'static str {
    Box::leak(
        CredSpecEntry::new(webapp01())
            .json
            .to_string()
            .into_boxed_str(),
    )
}

/// The same contents, formatted differently (semantically equal).
fn pretty() -> &'static str {
    Box::leak(
        serde_json::to_string_pretty(&webapp01())
            .expect("serialize")
            .into_boxed_str(),
    )
}

fn other_contents() -> &'static str {
    Box::leak(other().to_string().into_boxed_str())
}

/// What the lookups answer. Unlisted specs are not found; unlisted `use` checks are denied.
#[derive(Clone)]
struct Env {
    specs: HashMap<&'static str, Result<SpecLookup, LookupError>>,
    authz: HashMap<&'static str, Result<UseDecision, LookupError>>,
    options: DecideOptions,
}

fn env() -> Env {
    let mut specs = HashMap::new();
    specs.insert(
        "webapp01",
        Ok(SpecLookup::Found(CredSpecEntry::new(webapp01()))),
    );
    specs.insert("other", Ok(SpecLookup::Found(CredSpecEntry::new(other()))));
    specs.insert("empty", Ok(SpecLookup::NoCredSpec));
    let mut authz = HashMap::new();
    for name in ["webapp01", "other", "empty", "missing"] {
        authz.insert(
            name,
            Ok(UseDecision {
                allowed: true,
                reason: None,
            }),
        );
    }
    Env {
        specs,
        authz,
        options: DecideOptions::default(),
    }
}

impl Env {
    fn deny_use(mut self, name: &'static str, reason: &str) -> Self {
        self.authz.insert(
            name,
            Ok(UseDecision {
                allowed: false,
                reason: Some(reason.to_string()),
            }),
        );
        self
    }
    fn authz_error(mut self, name: &'static str, err: LookupError) -> Self {
        self.authz.insert(name, Err(err));
        self
    }
    fn spec_error(mut self, name: &'static str, err: LookupError) -> Self {
        self.specs.insert(name, Err(err));
        self
    }
    fn random_hostname(mut self, seed: u128) -> Self {
        self.options = DecideOptions {
            random_hostname: true,
            hostname_seed: seed,
        };
        self
    }

    fn resolve(&self, needs: &Needs<'_>) -> Resolved {
        let mut r = Resolved::default();
        for need in &needs.specs {
            let answer = self
                .specs
                .get(need.name)
                .cloned()
                .unwrap_or(Ok(SpecLookup::NotFound));
            r.specs.insert(need.name.to_string(), answer);
        }
        for name in &needs.uses {
            let answer = self.authz.get(name).cloned().unwrap_or(Ok(UseDecision {
                allowed: false,
                reason: None,
            }));
            r.uses.insert(name.to_string(), answer);
        }
        r
    }
}

// ---- running a review ----------------------------------------------------------------------

struct Req {
    kind: Hook,
    operation: &'static str,
    sub_resource: Option<&'static str>,
    object: String,
    old: Option<String>,
}

fn create(kind: Hook, pod: &P) -> Req {
    Req {
        kind,
        operation: "CREATE",
        sub_resource: None,
        object: pod.json(),
        old: None,
    }
}

fn update(kind: Hook, old: &P, new: &P) -> Req {
    Req {
        kind,
        operation: "UPDATE",
        sub_resource: None,
        object: new.json(),
        old: Some(old.json()),
    }
}

fn ephemeral_update(kind: Hook, old: &P, new: &P) -> Req {
    Req {
        sub_resource: Some("ephemeralcontainers"),
        ..update(kind, old, new)
    }
}

fn run(req: &Req, env: &Env) -> Decision {
    let op = match check_request("", "Pod", req.operation) {
        Ok(op) => op,
        Err(d) => return Decision::deny(d),
    };
    let scan = match scan(
        op,
        Some("demo"),
        req.sub_resource,
        Some(&req.object),
        req.old.as_deref(),
    ) {
        Ok(s) => s,
        Err(d) => return Decision::deny(d),
    };
    let needs = scan.needs(req.kind);
    let resolved = env.resolve(&needs);
    decide(req.kind, &scan, &resolved, &env.options)
}

/// What a case expects.
enum Want {
    /// Allowed with these patch ops `(path, value)` in order.
    Allow(Vec<(&'static str, String)>),
    /// Denied with this code and a message containing each of these.
    Deny(u16, Vec<&'static str>),
}

fn allow() -> Want {
    Want::Allow(Vec::new())
}

fn inline(path: &'static str) -> (&'static str, String) {
    (path, compact().to_string())
}

fn check(case: &str, req: Req, env: &Env, want: Want) -> Decision {
    let d = run(&req, env);
    match want {
        Want::Allow(ops) => {
            assert!(
                d.allowed(),
                "{case}: denied: {:?}",
                d.denial.map(|d| d.to_string())
            );
            let got: Vec<(String, Value)> = d
                .patch
                .iter()
                .map(|op| match op {
                    json_patch::PatchOperation::Add(a) => (a.path.to_string(), a.value.clone()),
                    other => panic!("{case}: unexpected op {other:?}"),
                })
                .collect();
            let want: Vec<(String, Value)> = ops
                .into_iter()
                .map(|(p, v)| (p.to_string(), Value::String(v)))
                .collect();
            assert_eq!(got, want, "{case}: patch");
        }
        Want::Deny(code, parts) => {
            let denial = d
                .denial
                .clone()
                .unwrap_or_else(|| panic!("{case}: allowed, expected {code}"));
            let msg = denial.to_string();
            assert_eq!(denial.code(), code, "{case}: code; message: {msg}");
            for part in parts {
                assert!(msg.contains(part), "{case}: {msg:?} lacks {part:?}");
            }
            assert!(d.patch.is_empty(), "{case}: a denial carries no patch");
        }
    }
    d
}

use Hook::{Mutate, Validate};

// ---- mutate --------------------------------------------------------------------------------

#[test]
fn mutate_create_table() {
    let e = env();
    let cases: Vec<(&str, P, Want)> = vec![
        ("no GMSA at all", p(), allow()),
        (
            "pod level name is inlined",
            p().with_pod((Some("webapp01"), None)),
            Want::Allow(vec![inline(
                "/spec/securityContext/windowsOptions/gmsaCredentialSpec",
            )]),
        ),
        (
            "container level name is inlined",
            p().with_containers(vec![plain("a"), c("iis", (Some("webapp01"), None))]),
            Want::Allow(vec![inline(
                "/spec/containers/1/securityContext/windowsOptions/gmsaCredentialSpec",
            )]),
        ),
        (
            "several containers, pod first then containers, init, ephemeral",
            p().with_pod((Some("webapp01"), None))
                .with_containers(vec![
                    c("a", (Some("webapp01"), None)),
                    c("b", NONE),
                    c("c", (Some("webapp01"), None)),
                ])
                .with_init(vec![c("init", (Some("webapp01"), None))])
                .with_ephemeral(vec![c("dbg", (Some("webapp01"), None))]),
            Want::Allow(vec![
                inline("/spec/securityContext/windowsOptions/gmsaCredentialSpec"),
                inline("/spec/containers/0/securityContext/windowsOptions/gmsaCredentialSpec"),
                inline("/spec/containers/2/securityContext/windowsOptions/gmsaCredentialSpec"),
                inline("/spec/initContainers/0/securityContext/windowsOptions/gmsaCredentialSpec"),
                inline(
                    "/spec/ephemeralContainers/0/securityContext/windowsOptions/gmsaCredentialSpec",
                ),
            ]),
        ),
        (
            "init container (the reference skips it)",
            p().with_init(vec![c("init", (Some("webapp01"), None))]),
            Want::Allow(vec![inline(
                "/spec/initContainers/0/securityContext/windowsOptions/gmsaCredentialSpec",
            )]),
        ),
        (
            "pre-set matching contents are left alone",
            p().with_pod((Some("webapp01"), Some(compact()))),
            allow(),
        ),
        (
            "pre-set different contents are left alone (validation denies)",
            p().with_pod((Some("webapp01"), Some(other_contents()))),
            allow(),
        ),
        (
            "contents without a name are left alone (validation denies)",
            p().with_containers(vec![c("a", (None, Some(compact())))]),
            allow(),
        ),
        (
            "unknown spec is 404",
            p().with_containers(vec![c("iis", (Some("missing"), None))]),
            Want::Deny(
                404,
                vec![
                    "cred spec missing does not exist",
                    "container \"iis\"",
                    "pod \"web\"",
                ],
            ),
        ),
        (
            "spec without credspec is 417",
            p().with_pod((Some("empty"), None)),
            Want::Deny(
                417,
                vec![
                    "cred spec empty does not have a credspec key",
                    "the pod's securityContext",
                ],
            ),
        ),
        (
            "empty name is 422",
            p().with_containers(vec![c("a", (Some(""), None))]),
            Want::Deny(422, vec!["empty gmsaCredentialSpecName", "container \"a\""]),
        ),
        (
            "first problem wins: pod level before containers",
            p().with_pod((Some("empty"), None))
                .with_containers(vec![c("a", (Some("missing"), None))]),
            Want::Deny(417, vec!["empty"]),
        ),
        (
            "generateName names the pod when name is empty",
            P {
                name: "",
                generate_name: "web-65d846d465-",
                ..p().with_containers(vec![c("nginx", (Some("missing"), None))])
            },
            Want::Deny(404, vec!["pod \"web-65d846d465-\""]),
        ),
    ];
    for (case, pod, want) in cases {
        let d = check(case, create(Mutate, &pod), &e, want);
        assert!(
            d.warnings.is_empty(),
            "{case}: no warnings without randomization"
        );
    }
}

#[test]
fn mutate_never_asks_for_authorization_and_validate_never_for_specs_it_does_not_compare() {
    let pod = p()
        .with_pod((Some("webapp01"), None))
        .with_containers(vec![c("a", (Some("other"), Some(compact())))]);
    let raw = pod.json();
    let s = scan(Operation::Create, Some("demo"), None, Some(&raw), None).expect("scan");
    let m = s.needs(Mutate);
    assert!(m.uses.is_empty());
    assert_eq!(
        m.specs,
        vec![SpecNeed {
            name: "webapp01",
            presets: vec![]
        }]
    );
    let v = s.needs(Validate);
    assert_eq!(v.uses, vec!["webapp01", "other"]);
    assert_eq!(
        v.specs,
        vec![SpecNeed {
            name: "other",
            presets: vec![compact()]
        }]
    );
}

#[test]
fn distinct_spec_names_are_looked_up_once() {
    let pod = p().with_pod((Some("webapp01"), None)).with_containers(vec![
        c("a", (Some("webapp01"), None)),
        c("b", (Some("webapp01"), None)),
    ]);
    let raw = pod.json();
    let s = scan(Operation::Create, Some("demo"), None, Some(&raw), None).expect("scan");
    assert_eq!(s.needs(Mutate).specs.len(), 1);
    assert_eq!(s.needs(Validate).uses, vec!["webapp01"]);
}

#[test]
fn hostname_randomization_table() {
    let gmsa = p().with_pod((Some("webapp01"), None));
    let random = random_hostname(7);
    let pod_inline = inline("/spec/securityContext/windowsOptions/gmsaCredentialSpec");
    // (case, env, pod, expected patch, expected warning fragment)
    type Case = (
        &'static str,
        Env,
        P,
        Vec<(&'static str, String)>,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "off: no hostname added",
            env(),
            gmsa.clone(),
            vec![pod_inline.clone()],
            None,
        ),
        (
            "on: random hostname added after the contents",
            env().random_hostname(7),
            gmsa.clone(),
            vec![pod_inline.clone(), ("/spec/hostname", random.clone())],
            None,
        ),
        (
            "on, preset hostname kept with a warning",
            env().random_hostname(7),
            P {
                hostname: "fixed",
                ..gmsa.clone()
            },
            vec![pod_inline.clone()],
            Some("keeps its spec.hostname \"fixed\""),
        ),
        (
            "on, but no GMSA: nothing",
            env().random_hostname(7),
            p(),
            vec![],
            None,
        ),
        (
            "on, name with pre-set contents still counts as GMSA",
            env().random_hostname(7),
            p().with_containers(vec![c("a", (Some("webapp01"), Some(compact())))]),
            vec![("/spec/hostname", random.clone())],
            None,
        ),
    ];
    for (case, e, pod, ops, warning) in cases {
        let d = check(case, create(Mutate, &pod), &e, Want::Allow(ops));
        match warning {
            Some(w) => {
                assert_eq!(d.warnings.len(), 1, "{case}");
                assert!(d.warnings[0].contains(w), "{case}: {:?}", d.warnings);
                assert!(
                    d.warnings[0].contains("pod \"web\""),
                    "{case}: {:?}",
                    d.warnings
                );
            }
            None => assert!(d.warnings.is_empty(), "{case}: {:?}", d.warnings),
        }
    }
    // Randomization never applies to validation or updates.
    let e = env().random_hostname(7);
    check(
        "validate ignores randomization",
        create(Validate, &gmsa),
        &e,
        allow(),
    );
    check(
        "update: no hostname",
        update(Mutate, &gmsa, &gmsa),
        &e,
        allow(),
    );
}

#[test]
fn random_hostnames_depend_on_the_seed() {
    let pod = p().with_pod((Some("webapp01"), None));
    let hostname = |seed| {
        let d = run(&create(Mutate, &pod), &env().random_hostname(seed));
        match d.patch.last() {
            Some(json_patch::PatchOperation::Add(a)) => a.value.as_str().map(str::to_string),
            _ => None,
        }
    };
    let (a, b) = (hostname(1), hostname(2));
    assert!(a.is_some() && b.is_some());
    assert_ne!(a, b);
    let a = a.unwrap_or_default();
    assert!(a.len() <= 15 && a == a.to_lowercase(), "{a}");
}

// ---- validate CREATE -----------------------------------------------------------------------

#[test]
fn validate_create_table() {
    let cases: Vec<(&str, Env, P, Want)> = vec![
        ("no GMSA", env(), p(), allow()),
        (
            "authorized name at pod level",
            env(),
            p().with_pod((Some("webapp01"), None)),
            allow(),
        ),
        (
            "authorized, contents byte-equal",
            env(),
            p().with_containers(vec![c("iis", (Some("webapp01"), Some(compact())))]),
            allow(),
        ),
        (
            "authorized, contents semantically equal",
            env(),
            p().with_containers(vec![c("iis", (Some("webapp01"), Some(pretty())))]),
            allow(),
        ),
        (
            "contents differ: 422",
            env(),
            p().with_containers(vec![plain("a"), c("iis", (Some("webapp01"), Some(other_contents())))]),
            Want::Deny(
                422,
                vec![
                    "contents for container \"iis\" in pod \"web\" does not match",
                    "GMSA resource \"webapp01\"",
                ],
            ),
        ),
        (
            "contents that are not JSON: 422",
            env(),
            p().with_pod((Some("webapp01"), Some("not json"))),
            Want::Deny(422, vec!["the pod's securityContext", "does not match"]),
        ),
        (
            "contents without a name: 422",
            env(),
            p().with_containers(vec![c("iis", (None, Some(compact())))]),
            Want::Deny(
                422,
                vec![
                    "container \"iis\" in pod \"web\" has a GMSA cred spec set, but does not define the name",
                ],
            ),
        ),
        (
            "unauthorized service account: 403 naming SA, spec, reason and the fix",
            env().deny_use("webapp01", "no RBAC policy matched"),
            p().with_containers(vec![c("iis", (Some("webapp01"), None))]),
            Want::Deny(
                403,
                vec![
                    "service account \"webapp\" is not authorized to `use` GMSA cred spec \"webapp01\"",
                    "reason: \"no RBAC policy matched\"",
                    "container \"iis\"",
                    "verb use",
                    "resourceNames [\"webapp01\"]",
                    "serviceaccount demo:webapp",
                ],
            ),
        ),
        (
            "empty serviceAccountName means default",
            env().deny_use("webapp01", ""),
            P {
                service_account: "",
                ..p().with_pod((Some("webapp01"), None))
            },
            Want::Deny(403, vec!["service account \"default\""]),
        ),
        (
            "authorization is checked before contents",
            env().deny_use("webapp01", "nope"),
            p().with_pod((Some("webapp01"), Some(other_contents()))),
            Want::Deny(403, vec!["not authorized"]),
        ),
        (
            "authorization call failed: 503, not a permission denial",
            env().authz_error("webapp01", LookupError::Unavailable("timed out".into())),
            p().with_pod((Some("webapp01"), None)),
            Want::Deny(
                503,
                vec![
                    "could not check whether service account \"webapp\"",
                    "could not be reached: timed out",
                    "not a permission denial",
                ],
            ),
        ),
        (
            "authorization call forbidden to the webhook: 500",
            env().authz_error(
                "webapp01",
                LookupError::Forbidden("create localsubjectaccessreviews".into()),
            ),
            p().with_pod((Some("webapp01"), None)),
            Want::Deny(500, vec!["webhook is not allowed to create localsubjectaccessreviews"]),
        ),
        (
            "pre-set contents of an unknown spec: 404",
            env(),
            p().with_pod((Some("missing"), Some(compact()))),
            Want::Deny(404, vec!["cred spec missing does not exist"]),
        ),
        (
            "pre-set contents of a spec without credspec: 417",
            env(),
            p().with_pod((Some("empty"), Some(compact()))),
            Want::Deny(417, vec!["does not have a credspec key"]),
        ),
        (
            "spec read failed: 503 saying the API server could not answer",
            env().spec_error("webapp01", LookupError::Unavailable("connection refused".into())),
            p().with_pod((Some("webapp01"), Some(compact()))),
            Want::Deny(
                503,
                vec![
                    "unable to retrieve the contents of cred spec webapp01",
                    "API server could not be reached",
                ],
            ),
        ),
        (
            "init container is checked (the reference skips it)",
            env().deny_use("other", "nope"),
            p().with_init(vec![c("init", (Some("other"), None))]),
            Want::Deny(403, vec!["init container \"init\""]),
        ),
        (
            "ephemeral container in a create is checked",
            env(),
            p().with_ephemeral(vec![c("dbg", (Some("webapp01"), Some(other_contents())))]),
            Want::Deny(422, vec!["ephemeral container \"dbg\""]),
        ),
        (
            "several containers: the first problem in order wins",
            env().deny_use("other", "nope"),
            p().with_containers(vec![
                c("a", (Some("webapp01"), Some(compact()))),
                c("b", (None, Some(compact()))),
                c("c", (Some("other"), None)),
            ]),
            Want::Deny(422, vec!["container \"b\""]),
        ),
        (
            "generateName in messages",
            env().deny_use("webapp01", ""),
            P {
                name: "",
                generate_name: "gen-",
                ..p().with_pod((Some("webapp01"), None))
            },
            Want::Deny(403, vec!["pod \"gen-\""]),
        ),
    ];
    for (case, e, pod, want) in cases {
        check(case, create(Validate, &pod), &e, want);
    }
}

// ---- validate UPDATE -----------------------------------------------------------------------

#[test]
fn validate_update_table() {
    let base = p()
        .with_pod((Some("webapp01"), Some(compact())))
        .with_containers(vec![
            c("iis", (Some("webapp01"), Some(compact()))),
            plain("side"),
        ])
        .with_init(vec![c("init", (Some("webapp01"), Some(compact())))]);
    let with_pod = |g: Gmsa| base.clone().with_pod(g);
    let with_iis = |g: Gmsa| {
        base.clone()
            .with_containers(vec![c("iis", g), plain("side")])
    };
    let cases: Vec<(&str, P, P, Want)> = vec![
        ("update that keeps GMSA settings", base.clone(), base.clone(), allow()),
        (
            "update of a pod without GMSA",
            p(),
            P {
                hostname: "x",
                ..p()
            },
            allow(),
        ),
        (
            "pod level name changed",
            base.clone(),
            with_pod((Some("other"), Some(compact()))),
            Want::Deny(
                403,
                vec!["cannot update an existing pod's GMSA settings (GMSA name modified on the pod's securityContext in pod \"web\")"],
            ),
        ),
        (
            "pod level contents changed",
            base.clone(),
            with_pod((Some("webapp01"), Some(pretty()))),
            Want::Deny(403, vec!["GMSA contents modified on the pod's securityContext"]),
        ),
        (
            "container name and contents changed",
            base.clone(),
            with_iis((Some("other"), Some(other_contents()))),
            Want::Deny(403, vec!["GMSA name and contents modified on container \"iis\""]),
        ),
        (
            "container contents changed",
            base.clone(),
            with_iis((Some("webapp01"), Some(other_contents()))),
            Want::Deny(403, vec!["GMSA contents modified on container \"iis\""]),
        ),
        (
            "container settings removed",
            base.clone(),
            with_iis(NONE),
            Want::Deny(403, vec!["GMSA name and contents removed on container \"iis\""]),
        ),
        (
            "whole securityContext removed from a container",
            base.clone(),
            base.clone().with_containers(vec![plain("iis"), plain("side")]),
            Want::Deny(403, vec!["removed on container \"iis\""]),
        ),
        (
            "settings appear on a container",
            base.clone(),
            base.clone()
                .with_containers(vec![c("iis", (Some("webapp01"), Some(compact()))), c("side", (Some("webapp01"), None))]),
            Want::Deny(403, vec!["GMSA name added on container \"side\""]),
        ),
        (
            "pod level settings removed",
            base.clone(),
            with_pod(NONE),
            Want::Deny(403, vec!["GMSA name and contents removed on the pod's securityContext"]),
        ),
        (
            "init container contents removed, name kept",
            base.clone(),
            base.clone()
                .with_init(vec![c("init", (Some("webapp01"), None))]),
            Want::Deny(403, vec!["GMSA contents removed on init container \"init\""]),
        ),
        (
            "GMSA settings appear on a pod that had none",
            p(),
            p().with_pod((Some("webapp01"), None)),
            Want::Deny(403, vec!["GMSA name added"]),
        ),
    ];
    for (case, old, new, want) in cases {
        check(case, update(Validate, &old, &new), &env(), want);
        // Mutate never patches an update of existing containers.
        let d = run(&update(Mutate, &old, &new), &env());
        assert!(d.allowed() && d.patch.is_empty(), "{case}: mutate update");
    }
}

// ---- pods/ephemeralcontainers ----------------------------------------------------------------

#[test]
fn ephemeral_containers_subresource_table() {
    let old = p()
        .with_pod((Some("webapp01"), Some(compact())))
        .with_containers(vec![c("iis", (Some("webapp01"), Some(compact())))]);
    let added = |g: Gmsa| old.clone().with_ephemeral(vec![c("debug", g)]);
    let path = "/spec/ephemeralContainers/0/securityContext/windowsOptions/gmsaCredentialSpec";
    // Mutate: a new ephemeral container naming a spec gets its contents inlined.
    check(
        "mutate inlines for the added container",
        ephemeral_update(Mutate, &old, &added((Some("webapp01"), None))),
        &env(),
        Want::Allow(vec![inline(path)]),
    );
    check(
        "mutate: unknown spec on the added container is 404",
        ephemeral_update(Mutate, &old, &added((Some("missing"), None))),
        &env(),
        Want::Deny(404, vec!["ephemeral container \"debug\""]),
    );
    check(
        "mutate: added container without GMSA",
        ephemeral_update(Mutate, &old, &added(NONE)),
        &env(),
        allow(),
    );
    // Validate: the added container goes through the create rules.
    let cases: Vec<(&str, Env, P, Want)> = vec![
        (
            "authorized, inlined",
            env(),
            added((Some("webapp01"), Some(compact()))),
            allow(),
        ),
        (
            "contents copied from another container without use permission",
            env().deny_use("webapp01", "no RBAC policy matched"),
            added((Some("webapp01"), Some(compact()))),
            Want::Deny(403, vec!["not authorized", "ephemeral container \"debug\""]),
        ),
        (
            "contents copied without a name",
            env(),
            added((None, Some(compact()))),
            Want::Deny(
                422,
                vec!["ephemeral container \"debug\" in pod \"web\" has a GMSA cred spec set"],
            ),
        ),
        (
            "contents that do not match",
            env(),
            added((Some("webapp01"), Some(other_contents()))),
            Want::Deny(422, vec!["does not match"]),
        ),
    ];
    for (case, e, new, want) in cases {
        check(case, ephemeral_update(Validate, &old, &new), &e, want);
    }
    // Existing ephemeral containers are immutable.
    let existing = added((Some("webapp01"), Some(compact())));
    let mut changed = existing.clone();
    changed.ephemeral.push(c("debug2", NONE));
    changed.ephemeral[0] = c("debug", (Some("other"), Some(compact())));
    check(
        "existing ephemeral container changed",
        ephemeral_update(Validate, &existing, &changed),
        &env(),
        Want::Deny(
            403,
            vec!["GMSA name modified on ephemeral container \"debug\""],
        ),
    );
}

// ---- the request itself ----------------------------------------------------------------------

#[test]
fn request_checks_table() {
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Result<Operation, (u16, &'static str)>,
    );
    let cases: Vec<Case> = vec![
        ("", "Pod", "CREATE", Ok(Operation::Create)),
        ("", "Pod", "UPDATE", Ok(Operation::Update)),
        (
            "apps",
            "Deployment",
            "CREATE",
            Err((400, "expected a Pod object, got a Deployment.apps")),
        ),
        ("", "ConfigMap", "CREATE", Err((400, "got a ConfigMap"))),
        ("", "", "CREATE", Err((400, "got a request without kind"))),
        (
            "",
            "Pod",
            "DELETE",
            Err((400, "unexpected operation DELETE")),
        ),
        (
            "",
            "Pod",
            "CONNECT",
            Err((400, "unexpected operation CONNECT")),
        ),
    ];
    for (group, kind, op, want) in cases {
        match (check_request(group, kind, op), want) {
            (Ok(got), Ok(w)) => assert_eq!(got, w),
            (Err(d), Err((code, part))) => {
                assert_eq!(d.code(), code, "{kind} {op}");
                assert!(d.to_string().contains(part), "{d}");
            }
            (got, want) => panic!("{group}/{kind} {op}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn malformed_pods_are_400_with_the_parse_error() {
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Operation,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "not an object",
            Some("5"),
            None,
            Operation::Create,
            "expected a JSON object",
        ),
        (
            "an array is not a pod",
            Some("[]"),
            None,
            Operation::Create,
            "expected a JSON object, got '['",
        ),
        (
            "containers not a list",
            Some(r#"{"spec":{"containers":{}}}"#),
            None,
            Operation::Create,
            "invalid type: map",
        ),
        (
            "name not a string",
            Some(r#"{"spec":{"securityContext":{"windowsOptions":{"gmsaCredentialSpecName":1}}}}"#),
            None,
            Operation::Create,
            "invalid type: integer",
        ),
        ("no object", None, None, Operation::Create, "has no object"),
        ("null object", Some("null"), None, Operation::Create, "null"),
        (
            "update without oldObject",
            Some("{}"),
            None,
            Operation::Update,
            "no oldObject",
        ),
        (
            "bad oldObject",
            Some("{}"),
            Some("[]"),
            Operation::Update,
            "oldObject",
        ),
    ];
    for (case, object, old, op, part) in cases {
        match scan(op, Some("demo"), None, object, old) {
            Ok(_) => panic!("{case}: parsed"),
            Err(d) => {
                assert_eq!(d.code(), 400, "{case}");
                let msg = d.to_string();
                assert!(
                    msg.starts_with("unable to unmarshall pod JSON object"),
                    "{case}: {msg}"
                );
                assert!(msg.contains(part), "{case}: {msg}");
            }
        }
    }
}

#[test]
fn scan_reads_names_namespace_service_account_and_hostname() {
    let raw = r#"{"metadata":{"generateName":"web-1-","namespace":"fromobj"},
        "spec":{"serviceAccount":"legacy","hostname":"","securityContext":{"windowsOptions":{"gmsaCredentialSpec":"{\"a\":\"\u0041\"}"}},
        "containers":[{"name":"c"}]}}"#;
    let s = scan(Operation::Create, None, None, Some(raw), None).expect("scan");
    assert_eq!(s.namespace, "fromobj");
    assert_eq!(s.pod.shown(), "web-1-");
    assert_eq!(s.service_account, "legacy");
    assert_eq!(s.hostname, None);
    assert_eq!(s.options.len(), 2);
    // Escaped contents are unescaped.
    assert_eq!(s.options[0].contents.as_deref(), Some(r#"{"a":"A"}"#));
    assert!(!s.options[1].has_gmsa());
    let s = scan(Operation::Create, Some("demo"), Some(""), Some(raw), None).expect("scan");
    assert_eq!(s.namespace, "demo");
    assert_eq!(s.sub_resource, None);
}

#[test]
fn container_names_are_escaped_nowhere_but_pointers_use_indexes() {
    let pod = p().with_containers(vec![plain("a"), c("x/y~z", (Some("webapp01"), None))]);
    let d = run(&create(Mutate, &pod), &env());
    assert!(d.allowed());
    match d.patch.first() {
        Some(json_patch::PatchOperation::Add(a)) => assert_eq!(
            a.path.to_string(),
            "/spec/containers/1/securityContext/windowsOptions/gmsaCredentialSpec"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn audit_annotations_name_the_specs() {
    let pod = p().with_pod((Some("webapp01"), None)).with_containers(vec![
        c("a", (Some("other"), None)),
        c("b", (Some("webapp01"), None)),
    ]);
    for kind in [Mutate, Validate] {
        let d = run(&create(kind, &pod), &env());
        assert_eq!(
            d.audit_annotations.get(AUDIT_CREDSPECS).map(String::as_str),
            Some("other,webapp01"),
            "{kind:?}"
        );
    }
    let d = run(&create(Validate, &p()), &env());
    assert!(d.audit_annotations.is_empty());
}

/// `credspec-plugins` names the CCG plugins of the specs looked up (bounded labels), for
/// mutate (specs inlined) and validate (specs compared with preset contents).
#[test]
fn audit_annotations_name_the_plugins() {
    let mut env = env();
    let mut aws = webapp01();
    aws["ActiveDirectoryConfig"]["HostAccountConfig"] = json!({
        "PortableCcgVersion": "1", "PluginGUID": "{859e1386-bdb4-49e8-85c7-3070b13920e1}",
        "PluginInput": "{}"});
    let aws_json = aws.to_string();
    env.specs
        .insert("aws", Ok(SpecLookup::Found(CredSpecEntry::new(aws))));
    env.authz.insert(
        "aws",
        Ok(UseDecision {
            allowed: true,
            reason: None,
        }),
    );
    let pod = p()
        .with_pod((Some("webapp01"), None))
        .with_containers(vec![c("a", (Some("aws"), None))]);
    let d = run(&create(Mutate, &pod), &env);
    assert!(d.allowed(), "{d:?}");
    assert_eq!(
        d.audit_annotations
            .get(AUDIT_CREDSPEC_PLUGINS)
            .map(String::as_str),
        Some("aws,none")
    );
    assert_eq!(
        d.plugins.iter().copied().collect::<Vec<_>>(),
        ["aws", "none"]
    );
    let json: &'static str = Box::leak(aws_json.into_boxed_str());
    let pod = p().with_containers(vec![c("a", (Some("aws"), Some(json)))]);
    let d = run(&create(Validate, &pod), &env);
    assert!(d.allowed(), "{d:?}");
    assert_eq!(
        d.audit_annotations
            .get(AUDIT_CREDSPEC_PLUGINS)
            .map(String::as_str),
        Some("aws")
    );
    let d = run(&create(Validate, &p()), &env);
    assert!(d.plugins.is_empty() && d.audit_annotations.is_empty());
}

/// A spec over the API server's 64 KiB limit is denied at mutate with a clear message,
/// instead of the API server refusing the pod later.
#[test]
fn a_spec_too_large_to_inline_is_denied() {
    let mut env = env();
    let mut big = webapp01();
    big["Padding"] = json!("x".repeat(gmsa_crd::MAX_INLINED_BYTES));
    env.specs
        .insert("webapp01", Ok(SpecLookup::Found(CredSpecEntry::new(big))));
    let pod = p().with_pod((Some("webapp01"), None));
    let d = run(&create(Mutate, &pod), &env);
    let denial = d.denial.expect("denied");
    assert_eq!(denial.code(), 422);
    let message = denial.to_string();
    assert!(
        message.contains("cred spec webapp01 is ")
            && message.contains("over 65536 bytes")
            && message.contains("pod \"web\""),
        "{message}"
    );
    assert!(d.patch.is_empty());
}

#[test]
fn the_fast_gate_sees_both_fields() {
    assert!(mentions_gmsa(r#"{"gmsaCredentialSpecName":"x"}"#));
    assert!(mentions_gmsa(r#"{"gmsaCredentialSpec":"x"}"#));
    assert!(!mentions_gmsa(r#"{"spec":{"containers":[{"name":"c"}]}}"#));
}

#[test]
fn contents_match_is_semantic() {
    let e = CredSpecEntry::new(webapp01());
    assert!(contents_match(compact(), &e));
    assert!(contents_match(pretty(), &e));
    assert!(!contents_match(other_contents(), &e));
    assert!(!contents_match("", &e));
    assert!(!contents_match("{", &e));
}

/// The GMSACredentialSpec served as v1 and as v1alpha1 (captured from a real API server) give
/// the same `credspec`, so the same patch and the same contents check.
#[test]
fn v1_and_v1alpha1_specs_decide_alike() {
    let pod = p().with_containers(vec![c("iis", (Some("webapp01"), None))]);
    let mut patches = Vec::new();
    for file in [
        "k8s-1.32/api/gmsacredentialspec-get.json",
        "k8s-1.32/api/gmsacredentialspec-get-v1alpha1.json",
        "k8s-1.28/api/gmsacredentialspec-get-v1alpha1.json",
    ] {
        let doc = gmsa_testkit::fixture(file);
        let entry = CredSpecEntry::new(doc["credspec"].clone());
        let mut e = env();
        e.specs
            .insert("webapp01", Ok(SpecLookup::Found(entry.clone())));
        let d = run(&create(Mutate, &pod), &e);
        assert!(d.allowed(), "{file}");
        patches.push(d.patch);
        // What mutate inlined passes validation against the same spec.
        let leaked: &'static str = Box::leak(entry.json.to_string().into_boxed_str());
        let inlined = p().with_containers(vec![c("iis", (Some("webapp01"), Some(leaked)))]);
        check(file, create(Validate, &inlined), &e, allow());
        // ...and so does the reference's inlined form (Go escapes `<>&`, keys sorted).
        assert!(contents_match(&entry.json.replace('<', "\\u003c"), &entry));
    }
    assert_eq!(patches[0], patches[1]);
    assert_eq!(patches[0], patches[2]);
    assert_eq!(patches[0].len(), 1);
}
