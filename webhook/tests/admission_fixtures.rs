//! Every AdmissionReview a real kube-apiserver (1.32 and 1.28) sent to a webhook, run through
//! [`Admitter::handle`] with in-test spec store and authorizer: the answers, their UIDs and
//! versions, the patches (applied to the pod, then validated), and which lookups were made.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine as _;
use gmsa_webhook::admission::Hook;
use gmsa_webhook::admission_review::{Admitter, Options, Verdict};
use gmsa_webhook::lookup::{
    Authorizer, CredSpecEntry, Freshness, LookupError, SpecLookup, SpecStore, UseDecision,
};
use serde_json::Value;

/// Specs by name; `cached_misses` are not in memory yet (only a live read finds them).
#[derive(Default)]
struct Specs {
    specs: HashMap<String, SpecLookup>,
    cached_misses: Vec<String>,
    fail: Option<LookupError>,
    cached_calls: AtomicUsize,
    live_calls: AtomicUsize,
}

#[async_trait]
impl SpecStore for Specs {
    async fn get(&self, name: &str, freshness: Freshness) -> Result<SpecLookup, LookupError> {
        match freshness {
            Freshness::Cached => self.cached_calls.fetch_add(1, Ordering::SeqCst),
            Freshness::Live => self.live_calls.fetch_add(1, Ordering::SeqCst),
        };
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        if freshness == Freshness::Cached && self.cached_misses.iter().any(|m| m == name) {
            return Ok(SpecLookup::NotFound);
        }
        Ok(self
            .specs
            .get(name)
            .cloned()
            .unwrap_or(SpecLookup::NotFound))
    }
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }
    fn len(&self) -> usize {
        self.specs.len()
    }
}

/// Allowed `(namespace, service account, spec)` triples, as the captured RBAC: `webapp` may use
/// `webapp01` in `demo`, `default` may not.
#[derive(Default)]
struct Rbac {
    allowed: Vec<(String, String, String)>,
    fail: Option<LookupError>,
    calls: Mutex<Vec<(String, String, String)>>,
}

#[async_trait]
impl Authorizer for Rbac {
    async fn may_use(
        &self,
        namespace: &str,
        service_account: &str,
        spec: &str,
    ) -> Result<UseDecision, LookupError> {
        let key = (
            namespace.to_string(),
            service_account.to_string(),
            spec.to_string(),
        );
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(key.clone());
        }
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        let allowed = self.allowed.contains(&key);
        Ok(UseDecision {
            allowed,
            reason: (!allowed).then(|| "no RBAC policy matched".to_string()),
        })
    }
}

fn webapp01(version: &str) -> CredSpecEntry {
    let doc = gmsa_testkit::fixture(&format!("{version}/api/gmsacredentialspec-get.json"));
    CredSpecEntry::new(doc["credspec"].clone())
}

fn specs(version: &str) -> Specs {
    let mut s = Specs::default();
    s.specs
        .insert("webapp01".into(), SpecLookup::Found(webapp01(version)));
    s
}

fn rbac() -> Rbac {
    Rbac {
        allowed: vec![("demo".into(), "webapp".into(), "webapp01".into())],
        ..Rbac::default()
    }
}

struct Capture {
    file: String,
    kind: Hook,
    body: Vec<u8>,
    review: Value,
}

fn captures(version: &str) -> Vec<Capture> {
    let dir: PathBuf = gmsa_testkit::fixtures_dir().join(version).join("admission");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("admission fixtures dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{version}: {files:?}");
    files
        .into_iter()
        .map(|file| {
            let doc = gmsa_testkit::fixture(&format!("{version}/admission/{file}"));
            let path = doc["http"]["path"].as_str().expect("http.path").to_string();
            // Route on the path alone (it carries `?timeout=10s`).
            let route = path.split('?').next().unwrap_or_default();
            let kind = if route.starts_with("/mutate") {
                Hook::Mutate
            } else {
                assert!(route.starts_with("/validate"), "{file}: {route}");
                Hook::Validate
            };
            let review = doc["body"].clone();
            Capture {
                file,
                kind,
                body: serde_json::to_vec(&review).expect("serialize review"),
                review,
            }
        })
        .collect()
}

fn response(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("response is JSON")
}

fn patch_of(resp: &Value) -> Option<json_patch::Patch> {
    let b64 = resp["response"]["patch"].as_str()?;
    assert_eq!(resp["response"]["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("patch is base64");
    Some(serde_json::from_slice(&bytes).expect("patch is a JSON patch"))
}

fn patch_paths(patch: &json_patch::Patch) -> Vec<String> {
    patch
        .0
        .iter()
        .map(|op| match op {
            json_patch::PatchOperation::Add(a) => a.path.to_string(),
            other => panic!("unexpected op {other:?}"),
        })
        .collect()
}

const CONTENTS: &str = "/securityContext/windowsOptions/gmsaCredentialSpec";

/// What each captured review must give with the captured RBAC and the real spec.
fn expected(file: &str) -> (Verdict, Vec<String>) {
    let p = |s: &str| format!("/spec{s}{CONTENTS}");
    if file.contains("-mutate-create-pod-iis-gmsa") {
        (
            Verdict::Patched,
            vec![p(""), p("/containers/0"), p("/initContainers/0")],
        )
    } else if file.starts_with("02-") {
        (Verdict::NoGmsa, vec![])
    } else if file.starts_with("04-") {
        (Verdict::Patched, vec![p("/containers/0")])
    } else if file.contains("mutate-update-ephemeralcontainers") {
        (Verdict::Patched, vec![p("/ephemeralContainers/0")])
    } else if file.starts_with("03-") {
        (Verdict::NoGmsa, vec![])
    } else {
        (Verdict::Allowed, vec![])
    }
}

#[tokio::test]
async fn every_captured_review_gets_the_right_answer() {
    for version in ["k8s-1.32", "k8s-1.28"] {
        let store = Arc::new(specs(version));
        let authz = Arc::new(rbac());
        let admitter = Admitter::new(store.clone(), authz.clone(), Options::default());
        for cap in captures(version) {
            let handled = admitter.handle(cap.kind, &cap.body).await;
            let resp = response(&handled.body);
            let case = format!("{version}/{}", cap.file);
            let (outcome, paths) = expected(&cap.file);
            assert_eq!(handled.verdict, outcome, "{case}: {resp}");
            assert_eq!(
                resp["response"]["uid"], cap.review["request"]["uid"],
                "{case}: uid echoed"
            );
            assert_eq!(
                resp["apiVersion"], cap.review["apiVersion"],
                "{case}: answered in the request's version"
            );
            assert_eq!(resp["kind"], "AdmissionReview");
            assert_eq!(resp["response"]["allowed"], true, "{case}: {resp}");
            let got = patch_of(&resp).map(|p| patch_paths(&p)).unwrap_or_default();
            assert_eq!(got, paths, "{case}");
            if outcome != Verdict::NoGmsa {
                assert_eq!(
                    resp["response"]["auditAnnotations"]["credspecs"], "webapp01",
                    "{case}"
                );
            }
        }
    }
}

#[tokio::test]
async fn v1beta1_review_is_answered_as_v1beta1() {
    let caps = captures("k8s-1.32");
    let cap = caps
        .iter()
        .find(|c| c.file.contains("v1beta1"))
        .expect("a v1beta1 capture");
    assert_eq!(cap.review["apiVersion"], "admission.k8s.io/v1beta1");
    let admitter = Admitter::new(
        Arc::new(specs("k8s-1.32")),
        Arc::new(rbac()),
        Options::default(),
    );
    let resp = response(&admitter.handle(cap.kind, &cap.body).await.body);
    assert_eq!(resp["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(
        resp["response"]["uid"],
        "b30084bd-d685-4d0b-9270-97cd9b22afde"
    );
}

/// Mutate's patch applied to the pod, then validated: what the API server would do next.
#[tokio::test]
async fn mutated_pods_pass_validation() {
    for version in ["k8s-1.32", "k8s-1.28"] {
        let admitter = Admitter::new(
            Arc::new(specs(version)),
            Arc::new(rbac()),
            Options::default(),
        );
        for cap in captures(version)
            .into_iter()
            .filter(|c| c.kind == Hook::Mutate)
        {
            let resp = response(&admitter.handle(cap.kind, &cap.body).await.body);
            let Some(patch) = patch_of(&resp) else {
                continue;
            };
            let mut review = cap.review.clone();
            json_patch::patch(&mut review["request"]["object"], &patch.0)
                .unwrap_or_else(|e| panic!("{version}/{}: patch applies: {e}", cap.file));
            let contents = review["request"]["object"]["spec"]["containers"]
                .as_array()
                .and_then(|cs| {
                    cs.iter()
                        .find_map(|c| c.pointer("/securityContext/windowsOptions/gmsaCredentialSpec"))
                })
                .or_else(|| {
                    review["request"]["object"]
                        .pointer("/spec/ephemeralContainers/0/securityContext/windowsOptions/gmsaCredentialSpec")
                })
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| panic!("{}: contents inlined", cap.file));
            let inlined: Value = serde_json::from_str(&contents).expect("inlined JSON");
            assert_eq!(
                inlined["DomainJoinConfig"]["MachineAccountName"],
                "WebApp01"
            );
            let body = serde_json::to_vec(&review).expect("serialize");
            let handled = admitter.handle(Hook::Validate, &body).await;
            assert_eq!(
                handled.verdict,
                Verdict::Allowed,
                "{version}/{}: {}",
                cap.file,
                String::from_utf8_lossy(&handled.body)
            );
        }
    }
}

#[tokio::test]
async fn unauthorized_service_accounts_are_denied_403_with_names() {
    let caps = captures("k8s-1.32");
    let admitter = Admitter::new(
        Arc::new(specs("k8s-1.32")),
        Arc::new(Rbac::default()),
        Options::default(),
    );
    for (prefix, fragments) in [
        (
            "01-",
            vec![
                "service account \"webapp\" is not authorized to `use` GMSA cred spec \"webapp01\"",
                "the pod's securityContext in pod \"iis-gmsa\"",
                "reason: \"no RBAC policy matched\"",
            ],
        ),
        ("05-", vec!["container \"c\" in pod \"gen-8ddnv\""]),
        // The ephemeral container added by `kubectl debug` is the only new block: the one
        // checked (the pod's existing settings are unchanged).
        (
            "09-",
            vec!["ephemeral container \"debug\" in pod \"iis-gmsa\""],
        ),
    ] {
        let cap = caps
            .iter()
            .find(|c| c.file.starts_with(prefix))
            .expect("capture");
        let handled = admitter.handle(cap.kind, &cap.body).await;
        let resp = response(&handled.body);
        assert_eq!(
            handled.verdict,
            Verdict::Denied { code: 403 },
            "{}",
            cap.file
        );
        assert_eq!(resp["response"]["allowed"], false);
        assert_eq!(resp["response"]["status"]["code"], 403);
        assert_eq!(resp["response"]["status"]["reason"], "Forbidden");
        let msg = resp["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default();
        for f in fragments {
            assert!(msg.contains(f), "{}: {msg:?} lacks {f:?}", cap.file);
        }
        assert!(resp["response"].get("patch").is_none());
    }
}

#[tokio::test]
async fn unknown_spec_in_a_replicaset_pod_names_the_generate_name() {
    let caps = captures("k8s-1.32");
    let cap = caps.iter().find(|c| c.file.starts_with("04-")).expect("04");
    let admitter = Admitter::new(
        Arc::new(Specs::default()),
        Arc::new(rbac()),
        Options::default(),
    );
    let resp = response(&admitter.handle(cap.kind, &cap.body).await.body);
    assert_eq!(resp["response"]["status"]["code"], 404);
    let msg = resp["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(msg.contains("cred spec webapp01 does not exist"), "{msg}");
    assert!(msg.contains("pod \"gen-\""), "{msg}");
}

#[tokio::test]
async fn a_cache_miss_is_rechecked_live_once() {
    let caps = captures("k8s-1.32");
    let cap = caps.iter().find(|c| c.file.starts_with("00-")).expect("00");
    let mut store = specs("k8s-1.32");
    store.cached_misses.push("webapp01".into());
    let store = Arc::new(store);
    let admitter = Admitter::new(store.clone(), Arc::new(rbac()), Options::default());
    let handled = admitter.handle(cap.kind, &cap.body).await;
    assert_eq!(handled.verdict, Verdict::Patched);
    // Three blocks name webapp01: one cached lookup, one live re-check.
    assert_eq!(store.cached_calls.load(Ordering::SeqCst), 1);
    assert_eq!(store.live_calls.load(Ordering::SeqCst), 1);

    // A spec found in memory needs no live read.
    let store = Arc::new(specs("k8s-1.32"));
    let admitter = Admitter::new(store.clone(), Arc::new(rbac()), Options::default());
    admitter.handle(cap.kind, &cap.body).await;
    assert_eq!(store.live_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn lookups_that_fail_are_503_never_403() {
    let caps = captures("k8s-1.32");
    let validate = caps.iter().find(|c| c.file.starts_with("01-")).expect("01");
    let authz = Rbac {
        fail: Some(LookupError::Unavailable("timed out after 5s".into())),
        ..Rbac::default()
    };
    let admitter = Admitter::new(
        Arc::new(specs("k8s-1.32")),
        Arc::new(authz),
        Options::default(),
    );
    let handled = admitter.handle(validate.kind, &validate.body).await;
    assert_eq!(handled.verdict, Verdict::Denied { code: 503 });
    let resp = response(&handled.body);
    let msg = resp["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(msg.contains("API server could not be reached"), "{msg}");
    assert!(msg.contains("not a permission denial"), "{msg}");

    let mutate = caps.iter().find(|c| c.file.starts_with("00-")).expect("00");
    let store = Specs {
        fail: Some(LookupError::Unavailable("connection refused".into())),
        ..Specs::default()
    };
    let admitter = Admitter::new(Arc::new(store), Arc::new(rbac()), Options::default());
    let handled = admitter.handle(mutate.kind, &mutate.body).await;
    assert_eq!(handled.verdict, Verdict::Denied { code: 503 });
}

#[tokio::test]
async fn pods_without_gmsa_make_no_lookup() {
    let store = Arc::new(specs("k8s-1.32"));
    let authz = Arc::new(rbac());
    let admitter = Admitter::new(store.clone(), authz.clone(), Options::default());
    for cap in captures("k8s-1.32")
        .into_iter()
        .filter(|c| c.file.starts_with("02-") || c.file.starts_with("03-"))
    {
        let handled = admitter.handle(cap.kind, &cap.body).await;
        assert_eq!(handled.verdict, Verdict::NoGmsa, "{}", cap.file);
    }
    assert_eq!(store.cached_calls.load(Ordering::SeqCst), 0);
    assert_eq!(store.live_calls.load(Ordering::SeqCst), 0);
    assert!(authz.calls.lock().map(|c| c.is_empty()).unwrap_or(false));
}

#[tokio::test]
async fn validation_asks_the_pods_service_account_in_the_requests_namespace() {
    let caps = captures("k8s-1.32");
    let cap = caps.iter().find(|c| c.file.starts_with("01-")).expect("01");
    let authz = Arc::new(rbac());
    let admitter = Admitter::new(
        Arc::new(specs("k8s-1.32")),
        authz.clone(),
        Options::default(),
    );
    admitter.handle(cap.kind, &cap.body).await;
    let calls = authz.calls.lock().map(|c| c.clone()).unwrap_or_default();
    // Three blocks name webapp01: one check.
    assert_eq!(
        calls,
        vec![(
            "demo".to_string(),
            "webapp".to_string(),
            "webapp01".to_string()
        )]
    );
}

#[tokio::test]
async fn random_hostname_is_added_last() {
    let caps = captures("k8s-1.32");
    let cap = caps.iter().find(|c| c.file.starts_with("04-")).expect("04");
    let admitter = Admitter::new(
        Arc::new(specs("k8s-1.32")),
        Arc::new(rbac()),
        Options {
            random_hostname: true,
        },
    );
    let resp = response(&admitter.handle(cap.kind, &cap.body).await.body);
    let patch = patch_of(&resp).expect("patch");
    let paths = patch_paths(&patch);
    assert_eq!(paths.last().map(String::as_str), Some("/spec/hostname"));
    match patch.0.last() {
        Some(json_patch::PatchOperation::Add(a)) => {
            let h = a.value.as_str().expect("hostname string");
            assert!(
                h.len() <= 15 && h == h.to_lowercase() && !h.is_empty(),
                "{h}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn malformed_reviews_are_400_and_echo_what_they_can() {
    let admitter = Admitter::new(
        Arc::new(specs("k8s-1.32")),
        Arc::new(rbac()),
        Options::default(),
    );
    let cases: Vec<(&str, &[u8], u16, &str, &str)> = vec![
        ("not JSON", b"{not json", 400, "", "unable to unmarshall JSON body as an admission review"),
        ("empty", b"", 400, "", "unable to unmarshall JSON body"),
        ("no request", br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#, 400, "", "no 'Request' field"),
        (
            "object of the wrong type, uid still echoed",
            br#"{"apiVersion":"admission.k8s.io/v1","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":7},"x":"gmsaCredentialSpecName"}}}"#,
            400,
            "u1",
            "unable to unmarshall pod JSON object",
        ),
        (
            "wrong shape elsewhere, uid still echoed",
            br#"{"apiVersion":"admission.k8s.io/v1beta1","request":{"uid":"u4","operation":5}}"#,
            400,
            "u4",
            "unable to unmarshall JSON body as an admission review: invalid type: integer",
        ),
        (
            "not a pod",
            br#"{"apiVersion":"admission.k8s.io/v1","request":{"uid":"u2","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"CREATE","object":{}}}"#,
            400,
            "u2",
            "expected a Pod object, got a Deployment",
        ),
        (
            "delete",
            br#"{"apiVersion":"admission.k8s.io/v1","request":{"uid":"u3","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"DELETE","oldObject":{}}}"#,
            400,
            "u3",
            "unexpected operation DELETE",
        ),
        (
            "uid of the wrong type in an otherwise good envelope",
            br#"{"apiVersion":"admission.k8s.io/v1beta1","request":{"uid":5}}"#,
            400,
            "",
            "unable to unmarshall JSON body",
        ),
    ];
    for (case, body, code, uid, fragment) in cases {
        let handled = admitter.handle(Hook::Validate, body).await;
        assert_eq!(handled.verdict, Verdict::Denied { code }, "{case}");
        let resp = response(&handled.body);
        assert_eq!(resp["response"]["uid"], uid, "{case}");
        assert_eq!(resp["response"]["allowed"], false, "{case}");
        assert_eq!(resp["response"]["status"]["code"], code, "{case}");
        let msg = resp["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(msg.contains(fragment), "{case}: {msg}");
        let want_version =
            if case.starts_with("wrong shape") || case.starts_with("uid of the wrong type") {
                "admission.k8s.io/v1beta1"
            } else {
                "admission.k8s.io/v1"
            };
        assert_eq!(resp["apiVersion"], want_version, "{case}");
    }
}
