//! No way around the `use` check: one test per path a pod could take to a GMSA identity its
//! service account may not use, through the real `Admitter` (wire format in and out) with a
//! policy where `webapp` in `demo` may use `webapp01` only; `webapp02` exists and nobody may
//! use it.
//!
//! Paths: init containers; ephemeral containers added through `pods/ephemeralcontainers`;
//! pre-set contents copied from a forbidden spec; contents differing only in key order or
//! white space (allowed) vs in one value (denied); names and identities with odd case or
//! characters; the spec deleted or changed between mutate and validate; an update that adds
//! GMSA to a running pod; the deprecated `serviceAccount` field; keys spelled with JSON escapes
//! and repeated keys.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use gmsa_webhook::admission::Hook;
use gmsa_webhook::admission_review::{Admitter, Options};
use gmsa_webhook::standalone::{DirSpecStore, PolicyAuthorizer};
use serde_json::{json, Value};

const POLICY: &str = "- namespace: demo\n  serviceAccount: webapp\n  credspecs: [webapp01]\n";

struct Rig {
    admitter: Admitter,
    store: Arc<DirSpecStore>,
    dir: tempfile::TempDir,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().expect("temp dir");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/credspecs");
    for name in ["webapp01.yaml", "webapp02.yaml"] {
        std::fs::copy(examples.join(name), dir.path().join(name)).expect("copy spec");
    }
    let store = Arc::new(DirSpecStore::load(dir.path()).expect("specs load"));
    let authz = Arc::new(PolicyAuthorizer::parse(POLICY, "bypass-policy").expect("policy"));
    Rig {
        admitter: Admitter::new(store.clone(), authz, Options::default()),
        store,
        dir,
    }
}

impl Rig {
    async fn raw(&self, kind: Hook, body: &[u8]) -> Value {
        let handled = self.admitter.handle(kind, body).await;
        serde_json::from_slice(&handled.body).expect("answer is JSON")
    }

    async fn review(&self, kind: Hook, review: &Value) -> Value {
        let answer = self
            .raw(kind, &serde_json::to_vec(review).expect("serializes"))
            .await;
        assert_eq!(answer["response"]["uid"], review["request"]["uid"]);
        answer["response"].clone()
    }

    /// Mutate, apply the patch, then validate the result (what the API server does).
    async fn admit(&self, review: &Value) -> (Value, Value) {
        let mutated = self.review(Hook::Mutate, review).await;
        let mut after = review.clone();
        if let Some(patch) = mutated.get("patch").and_then(Value::as_str) {
            let patch = base64::engine::general_purpose::STANDARD
                .decode(patch)
                .expect("base64");
            let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("patch");
            json_patch::patch(&mut after["request"]["object"], &patch).expect("patch applies");
        }
        let validated = self.review(Hook::Validate, &after).await;
        (after["request"]["object"].clone(), validated)
    }

    /// The stored JSON of a spec (what mutate inlines).
    async fn contents(&self, name: &str) -> String {
        let review = create(pod(
            json!({"windowsOptions": {"gmsaCredentialSpecName": name}}),
            &[],
        ));
        let mutated = self.review(Hook::Mutate, &review).await;
        let patch = base64::engine::general_purpose::STANDARD
            .decode(mutated["patch"].as_str().expect("patch"))
            .expect("base64");
        let patch: Value = serde_json::from_slice(&patch).expect("JSON");
        patch[0]["value"].as_str().expect("contents").to_string()
    }
}

/// A pod of `webapp` in `demo` with this pod-level securityContext and these containers
/// (`(list, container)` pairs).
fn pod(security_context: Value, containers: &[(&str, Value)]) -> Value {
    let mut spec = json!({
        "serviceAccountName": "webapp",
        "securityContext": security_context,
        "containers": [{"name": "app", "image": "iis"}],
    });
    for (list, container) in containers {
        let entry = spec
            .as_object_mut()
            .expect("object")
            .entry(list.to_string())
            .or_insert_with(|| json!([]));
        entry.as_array_mut().expect("array").push(container.clone());
    }
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "namespace": "demo"}, "spec": spec})
}

fn gmsa(name: &str) -> Value {
    json!({"windowsOptions": {"gmsaCredentialSpecName": name}})
}

fn container(name: &str, security_context: Value) -> Value {
    json!({"name": name, "image": "iis", "securityContext": security_context})
}

fn create(object: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-create",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "demo",
            "operation": "CREATE",
            "object": object,
        }
    })
}

fn update(old: Value, new: Value, sub_resource: Option<&str>) -> Value {
    let mut review = create(new);
    review["request"]["uid"] = json!("u-update");
    review["request"]["operation"] = json!("UPDATE");
    review["request"]["oldObject"] = old;
    if let Some(s) = sub_resource {
        review["request"]["subResource"] = json!(s);
    }
    review
}

#[track_caller]
fn assert_denied(response: &Value, code: u64, needle: &str) {
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(response["status"]["code"], code, "{response}");
    let message = response["status"]["message"].as_str().expect("message");
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    assert!(response.get("patch").is_none());
}

#[track_caller]
fn assert_allowed(response: &Value) {
    assert_eq!(response["allowed"], true, "{response}");
}

#[tokio::test]
async fn control_the_allowed_spec_is_admitted_at_every_place() {
    let rig = rig();
    for list in ["containers", "initContainers"] {
        let object = pod(json!({}), &[(list, container("x", gmsa("webapp01")))]);
        let (patched, validated) = rig.admit(&create(object)).await;
        assert_allowed(&validated);
        let x = patched["spec"][list]
            .as_array()
            .and_then(|l| l.iter().find(|c| c["name"] == "x"))
            .expect("container x");
        assert!(x["securityContext"]["windowsOptions"]["gmsaCredentialSpec"].is_string());
    }
    let (_, validated) = rig.admit(&create(pod(gmsa("webapp01"), &[]))).await;
    assert_allowed(&validated);
}

#[tokio::test]
async fn an_init_container_naming_a_forbidden_spec_is_denied() {
    let rig = rig();
    // Everything else allowed: only the init container names webapp02.
    let object = pod(
        gmsa("webapp01"),
        &[("initContainers", container("init", gmsa("webapp02")))],
    );
    let (patched, validated) = rig.admit(&create(object)).await;
    // Mutate inlined it (mutate never authorizes) ...
    assert!(
        patched["spec"]["initContainers"][0]["securityContext"]["windowsOptions"]
            ["gmsaCredentialSpec"]
            .is_string()
    );
    // ... and validate refuses the pod, naming the init container.
    assert_denied(&validated, 403, "init container \"init\"");
    assert_denied(&validated, 403, "webapp02");
}

#[tokio::test]
async fn ephemeral_containers_added_through_the_subresource_are_authorized() {
    let rig = rig();
    let running = pod(gmsa("webapp01"), &[]);
    let with = |security_context: Value| {
        let mut new = running.clone();
        new["spec"]["ephemeralContainers"] = json!([container("debug", security_context)]);
        new
    };
    // Forbidden spec: denied, whether the debug container names it or also carries contents.
    let forbidden = update(
        running.clone(),
        with(gmsa("webapp02")),
        Some("ephemeralcontainers"),
    );
    let (_, validated) = rig.admit(&forbidden).await;
    assert_denied(&validated, 403, "ephemeral container \"debug\"");
    let webapp02 = rig.contents("webapp02").await;
    let preset = json!({"windowsOptions": {"gmsaCredentialSpecName": "webapp02",
                                           "gmsaCredentialSpec": webapp02}});
    let review = update(running.clone(), with(preset), Some("ephemeralcontainers"));
    assert_denied(&rig.review(Hook::Validate, &review).await, 403, "webapp02");
    // Contents without a name on an ephemeral container: denied too.
    let nameless = json!({"windowsOptions": {"gmsaCredentialSpec": webapp02}});
    let review = update(running.clone(), with(nameless), Some("ephemeralcontainers"));
    assert_denied(&rig.review(Hook::Validate, &review).await, 422, "");
    // The allowed spec through the same path: admitted (the check is not a blanket refusal).
    let allowed = update(
        running.clone(),
        with(gmsa("webapp01")),
        Some("ephemeralcontainers"),
    );
    let (patched, validated) = rig.admit(&allowed).await;
    assert_allowed(&validated);
    assert!(
        patched["spec"]["ephemeralContainers"][0]["securityContext"]["windowsOptions"]
            ["gmsaCredentialSpec"]
            .is_string()
    );
    // And a service account that may use nothing is denied the allowed spec.
    let mut other_sa = allowed.clone();
    for key in ["object", "oldObject"] {
        other_sa["request"][key]["spec"]["serviceAccountName"] = json!("default");
    }
    let (_, validated) = rig.admit(&other_sa).await;
    assert_denied(&validated, 403, "default");
}

#[tokio::test]
async fn contents_copied_from_a_forbidden_spec_are_denied() {
    let rig = rig();
    let webapp02 = rig.contents("webapp02").await;
    // Allowed name, forbidden contents: the contents do not match the named spec.
    let object = pod(
        json!({"windowsOptions": {"gmsaCredentialSpecName": "webapp01",
                                  "gmsaCredentialSpec": webapp02}}),
        &[],
    );
    let (patched, validated) = rig.admit(&create(object)).await;
    // Mutate leaves pre-set contents alone (validate is the check).
    assert_eq!(
        patched["spec"]["securityContext"]["windowsOptions"]["gmsaCredentialSpec"],
        webapp02
    );
    assert_denied(&validated, 422, "webapp01");
    // The forbidden name with its own exact contents: 403.
    let object = pod(
        json!({"windowsOptions": {"gmsaCredentialSpecName": "webapp02",
                                  "gmsaCredentialSpec": webapp02}}),
        &[],
    );
    assert_denied(&rig.admit(&create(object)).await.1, 403, "webapp02");
    // Contents alone, in a container: 422 (contents need a name).
    let object = pod(
        json!({}),
        &[(
            "containers",
            container(
                "c2",
                json!({"windowsOptions": {"gmsaCredentialSpec": webapp02}}),
            ),
        )],
    );
    assert_denied(&rig.admit(&create(object)).await.1, 422, "container \"c2\"");
}

#[tokio::test]
async fn contents_differing_only_in_key_order_or_white_space_pass_one_value_does_not() {
    let rig = rig();
    let stored = rig.contents("webapp01").await;
    let value: Value = serde_json::from_str(&stored).expect("stored contents are JSON");
    let with_contents = |text: String| {
        create(pod(
            json!({"windowsOptions": {"gmsaCredentialSpecName": "webapp01",
                                      "gmsaCredentialSpec": text}}),
            &[],
        ))
    };
    // Keys in reverse order, at every level, written by hand.
    fn reversed(v: &Value) -> String {
        match v {
            Value::Object(o) => {
                let parts: Vec<String> = o
                    .iter()
                    .rev()
                    .map(|(k, v)| format!("{}:{}", json!(k), reversed(v)))
                    .collect();
                format!("{{{}}}", parts.join(","))
            }
            Value::Array(a) => {
                format!("[{}]", a.iter().map(reversed).collect::<Vec<_>>().join(","))
            }
            other => other.to_string(),
        }
    }
    let reordered = reversed(&value);
    assert_ne!(reordered, stored, "the test reorders keys");
    let pretty = serde_json::to_string_pretty(&value).expect("pretty");
    let padded = format!("\r\n\t {stored} \n");
    for text in [stored.clone(), reordered, pretty, padded] {
        let response = rig
            .review(Hook::Validate, &with_contents(text.clone()))
            .await;
        assert_allowed(&response);
    }
    // One value different, anywhere: denied.
    let mut changes = Vec::new();
    let mut v = value.clone();
    v["DomainJoinConfig"]["MachineAccountName"] = json!("WebApp02");
    changes.push(v);
    let mut v = value.clone();
    v["DomainJoinConfig"]["DnsName"] = json!("CONTOSO.COM");
    changes.push(v);
    let mut v = value.clone();
    v["ActiveDirectoryConfig"]["GroupManagedServiceAccounts"][1]["Scope"] = json!("contoso.com");
    changes.push(v);
    let mut v = value.clone();
    v["CmsPlugins"] = json!(["ActiveDirectory", "ActiveDirectory"]);
    changes.push(v);
    let mut v = value.clone();
    v["Extra"] = json!(null);
    changes.push(v);
    for changed in changes {
        let response = rig
            .review(Hook::Validate, &with_contents(changed.to_string()))
            .await;
        assert_denied(&response, 422, "webapp01");
    }
    // Not JSON at all, or a JSON string holding the JSON: denied.
    for text in [
        format!("{stored},"),
        json!(stored).to_string(),
        String::new(),
    ] {
        let response = rig.review(Hook::Validate, &with_contents(text)).await;
        assert_eq!(response["allowed"], false, "{response}");
    }
}

#[tokio::test]
async fn names_and_identities_with_odd_case_or_characters_are_not_the_allowed_ones() {
    let rig = rig();
    let names = [
        "WebApp01",
        "WEBAPP01",
        "webapp01 ",
        " webapp01",
        "webapp01\u{0}",
        "webapp01\n",
        "w\u{435}bapp01", // Cyrillic e
        "webapp0\u{661}", // Arabic-Indic one
        "webapp01\u{200b}",
        "../webapp01",
        "webapp01/..",
        "webapp01,webapp02",
        "*",
        "webapp0*",
    ];
    for name in names {
        let (_, validated) = rig.admit(&create(pod(gmsa(name), &[]))).await;
        assert_eq!(validated["allowed"], false, "{name:?}: {validated}");
        let code = validated["status"]["code"].as_u64().expect("code");
        assert!(code == 403 || code == 404, "{name:?}: {validated}");
    }
    // An empty name is refused before any lookup.
    let (_, validated) = rig.admit(&create(pod(gmsa(""), &[]))).await;
    assert_denied(&validated, 422, "");
    // The right name for the wrong identity: service account or namespace in another case.
    let mut review = create(pod(gmsa("webapp01"), &[]));
    review["request"]["object"]["spec"]["serviceAccountName"] = json!("Webapp");
    assert_denied(&rig.admit(&review).await.1, 403, "Webapp");
    let mut review = create(pod(gmsa("webapp01"), &[]));
    review["request"]["namespace"] = json!("Demo");
    assert_denied(&rig.admit(&review).await.1, 403, "webapp01");
    // The request's namespace wins over the one the pod claims.
    let mut review = create(pod(gmsa("webapp01"), &[]));
    review["request"]["namespace"] = json!("other");
    assert_denied(&rig.admit(&review).await.1, 403, "webapp01");
}

#[tokio::test]
async fn the_deprecated_service_account_field_cannot_stand_in_for_the_real_one() {
    let rig = rig();
    // The API server fills serviceAccountName; a pod cannot claim another identity through
    // the deprecated serviceAccount field.
    let mut review = create(pod(gmsa("webapp01"), &[]));
    review["request"]["object"]["spec"]["serviceAccountName"] = json!("default");
    review["request"]["object"]["spec"]["serviceAccount"] = json!("webapp");
    assert_denied(&rig.admit(&review).await.1, 403, "default");
    // Only when serviceAccountName is empty is the deprecated field used.
    review["request"]["object"]["spec"]["serviceAccountName"] = json!("");
    assert_allowed(&rig.admit(&review).await.1);
    // No service account at all is `default`, which may use nothing.
    let mut review = create(pod(gmsa("webapp01"), &[]));
    let spec = review["request"]["object"]["spec"]
        .as_object_mut()
        .expect("spec");
    spec.remove("serviceAccountName");
    assert_denied(&rig.admit(&review).await.1, 403, "default");
}

#[tokio::test]
async fn a_spec_deleted_or_changed_between_mutate_and_validate_is_not_admitted() {
    let rig = rig();
    let review = create(pod(gmsa("webapp01"), &[]));
    let mutated = rig.review(Hook::Mutate, &review).await;
    let patch = base64::engine::general_purpose::STANDARD
        .decode(mutated["patch"].as_str().expect("patch"))
        .expect("base64");
    let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("patch");
    let mut after = review.clone();
    json_patch::patch(&mut after["request"]["object"], &patch).expect("applies");
    assert_allowed(&rig.review(Hook::Validate, &after).await);

    // Changed: the inlined contents no longer match the spec.
    let path = rig.dir.path().join("webapp01.yaml");
    let text = std::fs::read_to_string(&path).expect("read spec");
    std::fs::write(
        &path,
        text.replace("NetBiosName: CONTOSO", "NetBiosName: OTHER"),
    )
    .expect("change spec");
    rig.store.refresh().expect("refresh");
    assert_denied(&rig.review(Hook::Validate, &after).await, 422, "webapp01");

    // Deleted: the pod carries contents of a spec that no longer exists.
    std::fs::remove_file(&path).expect("delete spec");
    rig.store.refresh().expect("refresh");
    assert_denied(&rig.review(Hook::Validate, &after).await, 404, "webapp01");
    // And a new pod naming it is not mutated into anything.
    let mutated = rig.review(Hook::Mutate, &review).await;
    assert_denied(&mutated, 404, "webapp01");
}

#[tokio::test]
async fn an_update_that_adds_or_changes_gmsa_on_a_running_pod_is_denied() {
    let rig = rig();
    let running = pod(json!({}), &[]);
    let stored = rig.contents("webapp01").await;
    // Adding GMSA to an existing container, even the allowed spec with exact contents.
    let mut new = running.clone();
    new["spec"]["containers"][0]["securityContext"] = json!({"windowsOptions": {
        "gmsaCredentialSpecName": "webapp01", "gmsaCredentialSpec": stored}});
    let (_, validated) = rig.admit(&update(running.clone(), new, None)).await;
    assert_denied(&validated, 403, "container \"app\"");
    // Adding it at pod level.
    let mut new = running.clone();
    new["spec"]["securityContext"] = gmsa("webapp01");
    assert_denied(
        &rig.admit(&update(running.clone(), new, None)).await.1,
        403,
        "added",
    );
    // Switching the spec of a running GMSA pod.
    let gmsa_pod = pod(gmsa("webapp01"), &[]);
    let mut new = gmsa_pod.clone();
    new["spec"]["securityContext"] = gmsa("webapp02");
    assert_denied(
        &rig.admit(&update(gmsa_pod.clone(), new, None)).await.1,
        403,
        "modified",
    );
    // A container renamed on update counts as new: create rules, so the forbidden spec is 403.
    let mut new = running.clone();
    new["spec"]["containers"][0] = container("renamed", gmsa("webapp02"));
    assert_denied(
        &rig.admit(&update(running.clone(), new, None)).await.1,
        403,
        "webapp02",
    );
    // An unrelated update of a running GMSA pod (a label) is allowed.
    let mut new = gmsa_pod.clone();
    new["metadata"]["labels"] = json!({"a": "b"});
    assert_allowed(&rig.admit(&update(gmsa_pod, new, None)).await.1);
}

#[tokio::test]
async fn escaped_and_repeated_keys_do_not_hide_a_forbidden_spec() {
    let rig = rig();
    let base = serde_json::to_string(&create(pod(json!({}), &[]))).expect("serializes");
    // `gmsaCredentialSpecName` with JSON escapes in the key: the same field to any JSON
    // parser. kube-apiserver never sends this (Go writes keys verbatim), but `gmsa review`
    // reads user files and anything may call the webhook.
    for key in [
        r"\u0067msaCredentialSpecName",
        r"gmsaCredentialSpec\u004eame",
        r"\u0067\u006d\u0073\u0061CredentialSpecName",
    ] {
        let body = base.replace(
            r#""securityContext":{}"#,
            &format!(r#""securityContext":{{"windowsOptions":{{"{key}":"webapp02"}}}}"#),
        );
        assert!(body.contains(key), "the test planted the key");
        for kind in [Hook::Mutate, Hook::Validate] {
            let answer = rig.raw(kind, body.as_bytes()).await;
            let response = &answer["response"];
            match kind {
                Hook::Validate => assert_denied(response, 403, "webapp02"),
                Hook::Mutate => assert!(
                    response.get("patch").is_some(),
                    "mutate sees the escaped name: {answer}"
                ),
            }
        }
    }
    // The same field twice (allowed, then forbidden): refused, never read as the first one.
    let body = base.replace(
        r#""securityContext":{}"#,
        r#""securityContext":{"windowsOptions":{"gmsaCredentialSpecName":"webapp01","gmsaCredentialSpecName":"webapp02"}}"#,
    );
    let answer = rig.raw(Hook::Validate, body.as_bytes()).await;
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
}
