//! Fuzzing the AdmissionReview handler (`Admitter::handle`, mutate and validate) on stable,
//! under `cargo test` (engine: fuzz/engine.rs; seeds: fuzz/corpus/review/, the API server's
//! captured reviews plus hand-made ones).
//!
//! Two targets share the corpus:
//! - `any_bytes_get_a_well_formed_answer`: raw byte mutants. Whatever comes in, the answer is an
//!   AdmissionReview in JSON, `allowed` xor a failure status with a 4xx/5xx code and a message,
//!   no patch on validate or on a denial, a bounded size, within the per-input limit.
//! - `structurally_valid_reviews_keep_the_invariants`: JSON-level mutants (random nodes, and
//!   GMSA names/contents/service accounts/operations planted at every place a pod can carry
//!   them). On top of the above: the answer echoes the request's UID and version; a mutate
//!   patch applies to the object and only inlines a known spec's exact JSON; and, against an
//!   independent oracle, validate allows a CREATE exactly when every named spec may be used by
//!   the pod's service account and all contents have a name and equal their spec, and an
//!   UPDATE exactly when no existing block changed and every new block (ephemeral container)
//!   passes the CREATE rules; a pod mutate patched passes validate exactly when the oracle
//!   allows it.

#[path = "../../fuzz/engine.rs"]
mod engine;

use std::sync::Arc;

use base64::Engine as _;
use gmsa_webhook::admission::Hook;
use gmsa_webhook::admission_review::{Admitter, Options};
use gmsa_webhook::lookup::{Freshness, SpecLookup, SpecStore};
use gmsa_webhook::standalone::{DirSpecStore, PolicyAuthorizer};
use serde_json::{json, Value};

use engine::{Rng, Target};

/// Only `webapp` in `demo` may use `webapp01`; `webapp02` exists but nobody may use it.
const POLICY: &str = "- namespace: demo\n  serviceAccount: webapp\n  credspecs: [webapp01]\n";
const MAY_USE: (&str, &str, &str) = ("demo", "webapp", "webapp01");

struct Rig {
    admitter: Admitter,
    runtime: tokio::runtime::Runtime,
    /// Stored JSON of each known spec.
    specs: Vec<(String, Value)>,
}

impl Rig {
    fn new() -> Self {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/credspecs");
        let store = Arc::new(DirSpecStore::load(dir).expect("example specs load"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut specs = Vec::new();
        for name in ["webapp01", "webapp02"] {
            let found = runtime.block_on(store.get(name, Freshness::Cached));
            match found {
                Ok(SpecLookup::Found(entry)) => specs.push((
                    name.to_string(),
                    serde_json::from_str(&entry.json).expect("stored credspec is JSON"),
                )),
                other => panic!("example spec {name}: {other:?}"),
            }
        }
        let authz = Arc::new(PolicyAuthorizer::parse(POLICY, "fuzz-policy").expect("policy"));
        Self {
            admitter: Admitter::new(store, authz, Options::default()),
            runtime,
            specs,
        }
    }

    fn handle(&self, kind: Hook, body: &[u8]) -> Value {
        let handled = self.runtime.block_on(self.admitter.handle(kind, body));
        assert!(
            handled.body.len() <= 16 * body.len() + 64 * 1024,
            "answer of {} bytes for a body of {}",
            handled.body.len(),
            body.len()
        );
        let answer: Value = serde_json::from_slice(&handled.body).expect("the answer is JSON");
        well_formed(kind, &answer);
        answer
    }

    fn spec(&self, name: &str) -> Option<&Value> {
        self.specs.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// The invariants every answer keeps, whatever the input.
fn well_formed(kind: Hook, answer: &Value) {
    assert_eq!(answer["kind"], "AdmissionReview", "{answer}");
    let version = answer["apiVersion"].as_str().expect("apiVersion");
    assert!(
        version == "admission.k8s.io/v1" || version == "admission.k8s.io/v1beta1",
        "{version}"
    );
    let response = &answer["response"];
    assert!(response["uid"].is_string(), "uid always present: {answer}");
    let allowed = response["allowed"].as_bool().expect("allowed is a bool");
    if allowed {
        assert!(
            response.get("status").is_none(),
            "allowed with a status: {answer}"
        );
    } else {
        let code = response["status"]["code"].as_u64().expect("denial code");
        assert!((400..600).contains(&code), "denial code {code}");
        assert_eq!(response["status"]["status"], "Failure");
        assert!(
            response["status"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "denial without a message: {answer}"
        );
        assert!(response["status"]["reason"].is_string());
        assert!(response.get("patch").is_none(), "patch on a denial");
    }
    if kind == Hook::Validate {
        assert!(response.get("patch").is_none(), "patch from validate");
        assert!(
            response.get("patchType").is_none(),
            "patchType from validate"
        );
    }
    if response.get("patch").is_some() {
        assert_eq!(response["patchType"], "JSONPatch");
    }
}

const DICTIONARY: &[&[u8]] = &[
    b"\"gmsaCredentialSpecName\":",
    b"\"gmsaCredentialSpec\":",
    b"\"windowsOptions\":{",
    b"\"securityContext\":{",
    b"\"initContainers\":[",
    b"\"ephemeralContainers\":[",
    b"\"oldObject\":",
    b"\"operation\":\"UPDATE\"",
    b"\"subResource\":\"ephemeralcontainers\"",
    b"\"webapp01\"",
    b"\"webapp02\"",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"1e999",
    b"-0",
];

#[test]
fn any_bytes_get_a_well_formed_answer() {
    let rig = Rig::new();
    let target = Target::new("review", DICTIONARY);
    let stats = engine::run(&target, |input| {
        for kind in [Hook::Mutate, Hook::Validate] {
            let answer = rig.handle(kind, input.bytes);
            // Valid JSON with a string uid at /request/uid: echoed even when the shape is bad.
            if let Ok(request) = serde_json::from_slice::<Value>(input.bytes) {
                if let Some(uid) = request.pointer("/request/uid").and_then(Value::as_str) {
                    assert_eq!(answer["response"]["uid"], uid);
                }
            }
        }
    });
    assert!(stats.inputs as usize >= stats.corpus);
}

// ---- structure-aware -------------------------------------------------------------------------

const NAMES: &[&str] = &[
    "webapp01",
    "webapp02",
    "WebApp01",
    "webapp01 ",
    " webapp01",
    "webapp01\u{0}",
    "webapp0١",
    "web app01",
    "../webapp01",
    "webapp01,webapp02",
    "*",
    "",
    "missing",
];

fn contents_pool(rig: &Rig) -> Vec<String> {
    let w1 = rig.spec("webapp01").expect("webapp01");
    let w2 = rig.spec("webapp02").expect("webapp02");
    let mut changed = w1.clone();
    changed["DomainJoinConfig"]["MachineAccountName"] = json!("Intruder");
    vec![
        w1.to_string(),
        serde_json::to_string_pretty(w1).expect("pretty"),
        format!("  {}\n", w1),
        w2.to_string(),
        changed.to_string(),
        "{}".to_string(),
        "not json".to_string(),
        String::new(),
    ]
}

/// Plants GMSA settings, service accounts, namespaces and operations at random places.
fn plant(rng: &mut Rng, review: &mut Value, contents: &[String]) {
    let Some(request) = review.get_mut("request").and_then(Value::as_object_mut) else {
        return;
    };
    match rng.below(10) {
        0 => {
            request.insert(
                "operation".into(),
                json!(rng.pick(&["CREATE", "UPDATE", "DELETE", "CONNECT", "create"])),
            );
        }
        1 => {
            request.insert(
                "namespace".into(),
                json!(rng.pick(&["demo", "other", "", "Demo"])),
            );
        }
        2 => {
            if let Some(object) = request.get("object").cloned() {
                if !request.contains_key("oldObject") {
                    request.insert("oldObject".into(), object);
                    request.insert("operation".into(), json!("UPDATE"));
                }
            }
        }
        _ => {}
    }
    let Some(spec) = request
        .get_mut("object")
        .and_then(|o| o.get_mut("spec"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if rng.one_in(4) {
        let field = *rng.pick(&["serviceAccountName", "serviceAccount"]);
        spec.insert(
            field.into(),
            json!(rng.pick(&["webapp", "default", "other", "", "Webapp"])),
        );
    }
    let windows = match rng.below(4) {
        0 => spec
            .entry("securityContext")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|sc| sc.entry("windowsOptions").or_insert_with(|| json!({}))),
        n => {
            let list = ["containers", "initContainers", "ephemeralContainers"][n - 1];
            let containers = spec.entry(list).or_insert_with(|| json!([]));
            match containers.as_array_mut() {
                Some(list) => {
                    if list.is_empty() || rng.one_in(3) {
                        list.push(json!({"name": format!("c{}", rng.below(100))}));
                    }
                    let i = rng.below(list.len());
                    list[i].as_object_mut().and_then(|c| {
                        c.entry("securityContext")
                            .or_insert_with(|| json!({}))
                            .as_object_mut()
                            .map(|sc| sc.entry("windowsOptions").or_insert_with(|| json!({})))
                    })
                }
                None => None,
            }
        }
    };
    if let Some(Value::Object(w)) = windows {
        if !rng.one_in(4) {
            w.insert("gmsaCredentialSpecName".into(), json!(rng.pick(NAMES)));
        }
        if rng.one_in(2) {
            w.insert("gmsaCredentialSpec".into(), json!(rng.pick(contents)));
        }
    }
}

/// Where a windows options block sits: `("pod", "")` or `(list, container name)`.
type Place = (&'static str, String);
/// A block: its place, `gmsaCredentialSpecName`, `gmsaCredentialSpec`.
type Block = (Place, Option<String>, Option<String>);

/// Every windows options block of a pod, or `None` when the pod has a shape the handler
/// rejects anyway (wrong types). A pod without `spec` has no block when it is the old object,
/// and an empty pod-level block when it is the new one (as the handler reads them).
fn blocks(pod: &Value, new: bool) -> Option<Vec<Block>> {
    fn text(v: Option<&Value>) -> Option<Option<String>> {
        match v {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => None,
        }
    }
    fn fields(holder: &Value) -> Option<(Option<String>, Option<String>)> {
        let sc = match holder.get("securityContext") {
            None | Some(Value::Null) => return Some((None, None)),
            Some(sc @ Value::Object(_)) => sc,
            Some(_) => return None,
        };
        match sc.get("windowsOptions") {
            None | Some(Value::Null) => Some((None, None)),
            Some(w @ Value::Object(_)) => Some((
                text(w.get("gmsaCredentialSpecName"))?,
                text(w.get("gmsaCredentialSpec"))?,
            )),
            Some(_) => None,
        }
    }
    let pod_level = ("pod", String::new());
    let spec = match pod.get("spec") {
        None | Some(Value::Null) if new => return Some(vec![(pod_level, None, None)]),
        None | Some(Value::Null) => return Some(Vec::new()),
        Some(s @ Value::Object(_)) => s,
        Some(_) => return None,
    };
    let (name, contents) = fields(spec)?;
    let mut out = vec![(pod_level, name, contents)];
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        match spec.get(list) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for c in items {
                    if !c.is_object() {
                        return None;
                    }
                    // `name` is a plain string to the handler: absent is "", null is an error.
                    let container = match c.get("name") {
                        None => String::new(),
                        Some(Value::String(n)) => n.clone(),
                        Some(_) => return None,
                    };
                    let (name, contents) = fields(c)?;
                    out.push(((list, container), name, contents));
                }
            }
            Some(_) => return None,
        }
    }
    Some(out)
}

fn non_empty_str(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Whether the fields the handler reads from a pod have the types it expects.
fn pod_shape_ok(pod: &Value) -> Option<()> {
    if !pod.is_object() {
        return None;
    }
    let is_text =
        |v: Option<&Value>| matches!(v, None | Some(Value::Null) | Some(Value::String(_)));
    let spec = pod.get("spec");
    for key in ["serviceAccountName", "serviceAccount", "hostname"] {
        if !is_text(spec.and_then(|s| s.get(key))) {
            return None;
        }
    }
    if let Some(m) = pod.get("metadata") {
        if !m.is_object() && !m.is_null() {
            return None;
        }
        for key in ["name", "generateName", "namespace"] {
            if !is_text(m.get(key)) {
                return None;
            }
        }
    }
    Some(())
}

/// The oracle for validate: `Some(true)` when the pod must be denied, `Some(false)` when it
/// must be allowed, `None` when the request is outside what it models.
///
/// CREATE: every block naming a spec must name one the pod's service account may use, in the
/// request's namespace (else the pod's); contents need a name and must equal that spec.
/// UPDATE: a block at the same place in `oldObject` (pod level, or the first container of the
/// same list with the same name) must keep both fields exactly; any other block (an ephemeral
/// container added, a renamed container) follows the CREATE rules.
fn oracle(rig: &Rig, review: &Value) -> Option<bool> {
    if !matches!(
        review.get("apiVersion"),
        None | Some(Value::Null) | Some(Value::String(_))
    ) {
        return None;
    }
    let request = review.get("request")?;
    let kind = request.get("kind")?;
    if kind.get("group").and_then(Value::as_str) != Some("")
        || kind.get("kind").and_then(Value::as_str) != Some("Pod")
        || !request.get("uid").is_some_and(Value::is_string)
    {
        return None;
    }
    let update = match request.get("operation").and_then(Value::as_str)? {
        "CREATE" => false,
        "UPDATE" => true,
        _ => return None,
    };
    for key in ["namespace", "subResource"] {
        if !matches!(
            request.get(key),
            None | Some(Value::Null) | Some(Value::String(_))
        ) {
            return None;
        }
    }
    let pod = request.get("object")?;
    pod_shape_ok(pod)?;
    let old = if update {
        let old = request.get("oldObject")?;
        pod_shape_ok(old)?;
        Some(blocks(old, false)?)
    } else {
        None
    };
    let namespace = non_empty_str(request.get("namespace"))
        .or_else(|| {
            pod.get("metadata")
                .and_then(|m| m.get("namespace"))
                .and_then(Value::as_str)
        })
        .unwrap_or("");
    let spec = pod.get("spec");
    let service_account = non_empty_str(spec.and_then(|s| s.get("serviceAccountName")))
        .or_else(|| non_empty_str(spec.and_then(|s| s.get("serviceAccount"))))
        .unwrap_or("default");
    let mut deny = false;
    for (place, name, contents) in blocks(pod, true)? {
        if let Some(old) = &old {
            if let Some((_, old_name, old_contents)) = old.iter().find(|(p, _, _)| *p == place) {
                if (old_name, old_contents) != (&name, &contents) {
                    deny = true;
                }
                continue;
            }
        }
        match (name, contents) {
            (None, None) => {}
            (None, Some(_)) => deny = true,
            (Some(name), contents) => {
                let may = (namespace, service_account, name.as_str()) == MAY_USE;
                if !may {
                    deny = true;
                } else if let Some(text) = contents {
                    let spec = rig.spec(&name)?;
                    let parsed: Option<Value> = serde_json::from_str(&text).ok();
                    if parsed.as_ref() != Some(spec) {
                        deny = true;
                    }
                }
            }
        }
    }
    Some(deny)
}

/// Applies a mutate answer's patch to the review's object; checks what it adds.
fn apply_patch(rig: &Rig, review: &Value, answer: &Value) -> Option<Value> {
    let patch = answer["response"]
        .get("patch")?
        .as_str()
        .expect("patch is a string");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .expect("patch is base64");
    let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("patch is a JSON patch");
    let known: Vec<String> = rig.specs.iter().map(|(_, v)| v.to_string()).collect();
    for op in &patch.0 {
        let json_patch::PatchOperation::Add(add) = op else {
            panic!("only add operations: {op:?}");
        };
        let path = add.path.to_string();
        assert!(
            path.ends_with("/securityContext/windowsOptions/gmsaCredentialSpec"),
            "patch touches {path}"
        );
        let inlined = add.value.as_str().expect("inlined contents are a string");
        assert!(
            known.iter().any(|k| k == inlined),
            "inlined contents are not a known spec's stored JSON: {inlined}"
        );
    }
    let mut object = review["request"]["object"].clone();
    json_patch::patch(&mut object, &patch).expect("the patch applies to the object");
    Some(object)
}

#[test]
fn structurally_valid_reviews_keep_the_invariants() {
    let rig = Rig::new();
    let contents = contents_pool(&rig);
    let values: Vec<Value> = NAMES
        .iter()
        .map(|n| json!(n))
        .chain(contents.iter().map(|c| json!(c)))
        .collect();
    let keys = [
        "gmsaCredentialSpecName",
        "gmsaCredentialSpec",
        "serviceAccountName",
        "namespace",
        "uid",
        "apiVersion",
        "subResource",
    ];
    let target = Target::new("review", DICTIONARY);
    // Oracle-checked reviews: [CREATE allowed, CREATE denied, UPDATE allowed, UPDATE denied].
    let mut modelled = [0u64; 4];
    let stats = engine::run(&target, |input| {
        let Ok(mut review) = serde_json::from_slice::<Value>(input.bytes) else {
            return;
        };
        if !input.from_corpus {
            if input.rng.one_in(2) {
                engine::mutate_json(input.rng, &mut review, &keys, &values);
            }
            for _ in 0..1 + input.rng.below(4) {
                plant(input.rng, &mut review, &contents);
            }
        }
        let body = serde_json::to_vec(&review).expect("serializes");
        let want_version = if review.get("apiVersion").and_then(Value::as_str)
            == Some("admission.k8s.io/v1beta1")
        {
            "admission.k8s.io/v1beta1"
        } else {
            "admission.k8s.io/v1"
        };
        let uid = review.pointer("/request/uid").and_then(Value::as_str);
        let mut answers = Vec::new();
        for kind in [Hook::Mutate, Hook::Validate] {
            let answer = rig.handle(kind, &body);
            assert_eq!(answer["apiVersion"], want_version);
            if let Some(uid) = uid {
                assert_eq!(answer["response"]["uid"], uid, "UID echoed");
            }
            answers.push(answer);
        }
        let validate_allowed = answers[1]["response"]["allowed"] == true;
        if let Some(must_deny) = oracle(&rig, &review) {
            let update = review.pointer("/request/operation") == Some(&json!("UPDATE"));
            modelled[2 * usize::from(update) + usize::from(must_deny)] += 1;
            assert_eq!(
                validate_allowed, !must_deny,
                "validate answer {} for {}",
                answers[1], review["request"]["object"]
            );
        }
        // A mutated pod: the patch applies, and validate of the result agrees with the oracle.
        if let Some(patched) = apply_patch(&rig, &review, &answers[0]) {
            let mut again = review.clone();
            again["request"]["object"] = patched;
            let answer = rig.handle(
                Hook::Validate,
                &serde_json::to_vec(&again).expect("serializes"),
            );
            if let Some(must_deny) = oracle(&rig, &again) {
                assert_eq!(
                    answer["response"]["allowed"] == true,
                    !must_deny,
                    "validate of the mutated pod: {answer}"
                );
            }
        }
    });
    eprintln!(
        "oracle-checked reviews: CREATE {} must-allow, {} must-deny; UPDATE {} must-allow, {} \
         must-deny ({} inputs)",
        modelled[0], modelled[1], modelled[2], modelled[3], stats.inputs
    );
    assert!(
        modelled.iter().all(|n| *n > 0),
        "the oracle saw every outcome: {modelled:?}"
    );
}
