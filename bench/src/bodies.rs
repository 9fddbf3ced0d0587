//! Realistic AdmissionReview bodies (3-9 KB) built from the captures of a real kube-apiserver
//! 1.32 (`testkit/fixtures/apiserver/k8s-1.32/admission/`), and the credential specs the fake
//! API server holds, so that what the bodies name and inline matches what the API serves.

use serde_json::{json, Value};

/// The spec names the benchmark bodies refer to; the fake API server always holds them.
pub const SPEC_NAMES: [&str; 3] = ["webapp01", "webapp02", "webapp03"];

/// Namespace of every generated review.
pub const NAMESPACE: &str = "demo";

/// Which pod a review carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Case {
    /// A Linux pod from a Deployment, no GMSA field anywhere.
    NoGmsa,
    /// `spec.securityContext.windowsOptions.gmsaCredentialSpecName` set.
    PodGmsa,
    /// Three containers, each naming a different spec.
    ThreeContainers,
    /// UPDATE of a GMSA pod (pod level, an init container and a container) adding a label:
    /// `object` and `oldObject`.
    Update,
}

impl Case {
    /// Every case, in table order.
    pub const ALL: [Case; 4] = [
        Case::NoGmsa,
        Case::PodGmsa,
        Case::ThreeContainers,
        Case::Update,
    ];

    /// Short label for tables and `--only` filters.
    pub fn label(self) -> &'static str {
        match self {
            Case::NoGmsa => "no-gmsa",
            Case::PodGmsa => "pod-gmsa",
            Case::ThreeContainers => "3-containers",
            Case::Update => "update",
        }
    }

    /// Whether the pod names a GMSA spec.
    pub fn has_gmsa(self) -> bool {
        self != Case::NoGmsa
    }
}

/// Which webhook path a review goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `/mutate`: bodies name specs without contents (as the API server sends them first).
    Mutate,
    /// `/validate`: bodies carry the contents mutate inlined.
    Validate,
}

impl Kind {
    /// Both kinds.
    pub const ALL: [Kind; 2] = [Kind::Mutate, Kind::Validate];

    /// Short label.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Mutate => "mutate",
            Kind::Validate => "validate",
        }
    }

    /// The request path, as the API server calls it.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Mutate => "/mutate?timeout=10s",
            Kind::Validate => "/validate?timeout=10s",
        }
    }
}

/// The `credspec` object of the spec `name`: the captured `webapp01` for `webapp01`, the same
/// document with the account renamed for any other name.
pub fn credspec_for(name: &str) -> Value {
    let mut credspec =
        gmsa_testkit::fixture("k8s-1.32/api/gmsacredentialspec-get.json")["credspec"].take();
    if name != "webapp01" {
        credspec["DomainJoinConfig"]["MachineAccountName"] = json!(name);
        if let Some(accounts) =
            credspec["ActiveDirectoryConfig"]["GroupManagedServiceAccounts"].as_array_mut()
        {
            for account in accounts {
                account["Name"] = json!(name);
            }
        }
    }
    credspec
}

/// The full GMSACredentialSpec object `name` as the API server returns it (from the captured
/// GET, with the name, uid and resourceVersion changed).
pub fn spec_object(name: &str, serial: usize) -> Value {
    let mut object = gmsa_testkit::fixture("k8s-1.32/api/gmsacredentialspec-get.json");
    object["credspec"] = credspec_for(name);
    let meta = &mut object["metadata"];
    meta["name"] = json!(name);
    meta["uid"] = json!(format!("00000000-0000-4000-8000-{serial:012}"));
    meta["resourceVersion"] = json!((1000 + serial).to_string());
    if let Some(annotations) = meta["annotations"].as_object_mut() {
        // Keep the last-applied annotation (a realistic size) but make it name this spec.
        for value in annotations.values_mut() {
            if let Some(text) = value.as_str() {
                *value = json!(text.replace("webapp01", name).replace("webapp02", name));
            }
        }
    }
    object
}

/// The name of the `index`-th spec the fake API server holds: the [`SPEC_NAMES`] first, then
/// generated fillers.
pub fn spec_name(index: usize) -> String {
    match SPEC_NAMES.get(index) {
        Some(name) => (*name).to_string(),
        None => format!("bench-spec-{index:05}"),
    }
}

/// The service account of the `index`-th pod when reviews spread over `count` accounts:
/// `webapp` when there is one, else `sa-000`, `sa-001`, ...
pub fn service_account(index: usize, count: usize) -> String {
    if count <= 1 {
        "webapp".to_string()
    } else {
        format!("sa-{index:03}")
    }
}

/// The AdmissionReview body for `case` sent to `kind`, for a pod running as `service_account`
/// in [`NAMESPACE`].
pub fn review(case: Case, kind: Kind, service_account: &str) -> Vec<u8> {
    let fixture = match (case, kind) {
        (Case::Update, _) => "07-validate-update-pod-iis-gmsa.json",
        (_, Kind::Mutate) => "02-mutate-create-pod-noname.json",
        (_, Kind::Validate) => "03-validate-create-pod-web-65d846d465-p78xz.json",
    };
    let mut review = gmsa_testkit::fixture(&format!("k8s-1.32/admission/{fixture}"))["body"].take();
    let request = &mut review["request"];
    request["namespace"] = json!(NAMESPACE);
    let inline = kind == Kind::Validate;
    match case {
        Case::NoGmsa => {}
        Case::PodGmsa => {
            let spec = &mut request["object"]["spec"];
            spec["securityContext"] =
                json!({"windowsOptions": windows_options(SPEC_NAMES[0], inline)});
        }
        Case::ThreeContainers => {
            let spec = &mut request["object"]["spec"];
            let template = spec["containers"][0].clone();
            let containers: Vec<Value> = ["app", "sidecar", "logger"]
                .iter()
                .zip(SPEC_NAMES)
                .map(|(container, spec_name)| {
                    let mut c = template.clone();
                    c["name"] = json!(container);
                    c["securityContext"] =
                        json!({"windowsOptions": windows_options(spec_name, inline)});
                    c
                })
                .collect();
            spec["containers"] = Value::Array(containers);
        }
        Case::Update => {
            // The captured UPDATE already names webapp01 at pod level, on the init container
            // and on one container; inline the contents in both objects as mutate did at
            // creation, so the UPDATE carries what a real pod carries.
            for object in ["object", "oldObject"] {
                inline_everywhere(&mut request[object]["spec"]);
            }
        }
    }
    for object in ["object", "oldObject"] {
        let spec = &mut request[object]["spec"];
        if spec.is_object() {
            spec["serviceAccountName"] = json!(service_account);
            spec["serviceAccount"] = json!(service_account);
        }
    }
    review.to_string().into_bytes()
}

fn windows_options(spec_name: &str, inline: bool) -> Value {
    if inline {
        json!({
            "gmsaCredentialSpecName": spec_name,
            "gmsaCredentialSpec": credspec_for(spec_name).to_string(),
        })
    } else {
        json!({"gmsaCredentialSpecName": spec_name})
    }
}

fn inline_everywhere(spec: &mut Value) {
    let fill = |options: &mut Value| {
        if let Some(name) = options["gmsaCredentialSpecName"].as_str() {
            let contents = credspec_for(name).to_string();
            options["gmsaCredentialSpec"] = json!(contents);
        }
    };
    if spec["securityContext"]["windowsOptions"].is_object() {
        fill(&mut spec["securityContext"]["windowsOptions"]);
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(containers) = spec[list].as_array_mut() {
            for c in containers {
                if c["securityContext"]["windowsOptions"].is_object() {
                    fill(&mut c["securityContext"]["windowsOptions"]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(body: &[u8]) -> usize {
        let text = String::from_utf8_lossy(body);
        text.matches("\"gmsaCredentialSpecName\"").count()
    }

    #[test]
    fn bodies_have_realistic_sizes_and_the_expected_gmsa_fields() {
        for kind in Kind::ALL {
            let no = review(Case::NoGmsa, kind, "default");
            assert!(
                (3_000..6_500).contains(&no.len()),
                "{kind:?} no-gmsa: {}",
                no.len()
            );
            assert_eq!(names_in(&no), 0);
            let pod = review(Case::PodGmsa, kind, "webapp");
            assert!(
                (3_000..6_500).contains(&pod.len()),
                "{kind:?} pod: {}",
                pod.len()
            );
            assert_eq!(names_in(&pod), 1);
            let three = review(Case::ThreeContainers, kind, "webapp");
            assert!(
                (3_000..6_500).contains(&three.len()),
                "{kind:?} three: {}",
                three.len()
            );
            assert_eq!(names_in(&three), 3);
            let update = review(Case::Update, kind, "webapp");
            assert_eq!(
                names_in(&update),
                6,
                "pod, init and container in object and oldObject"
            );
        }
    }

    #[test]
    fn validate_bodies_inline_the_contents_the_fake_serves() {
        let body: Value =
            serde_json::from_slice(&review(Case::ThreeContainers, Kind::Validate, "sa-7"))
                .expect("generated body is JSON");
        let request = &body["request"];
        assert_eq!(request["object"]["spec"]["serviceAccountName"], "sa-7");
        let options =
            &request["object"]["spec"]["containers"][2]["securityContext"]["windowsOptions"];
        assert_eq!(options["gmsaCredentialSpecName"], "webapp03");
        let inlined: Value = serde_json::from_str(
            options["gmsaCredentialSpec"]
                .as_str()
                .expect("contents are a string"),
        )
        .expect("contents are JSON");
        assert_eq!(inlined, spec_object("webapp03", 2)["credspec"]);
        let mutate: Value =
            serde_json::from_slice(&review(Case::PodGmsa, Kind::Mutate, "webapp")).expect("JSON");
        assert!(
            mutate["request"]["object"]["spec"]["securityContext"]["windowsOptions"]
                .get("gmsaCredentialSpec")
                .is_none()
        );
    }

    #[test]
    fn spec_objects_are_named_and_distinct() {
        let a = spec_object(&spec_name(0), 0);
        let b = spec_object(&spec_name(5), 5);
        assert_eq!(a["metadata"]["name"], "webapp01");
        assert_eq!(b["metadata"]["name"], "bench-spec-00005");
        assert_ne!(a["metadata"]["uid"], b["metadata"]["uid"]);
        assert_eq!(
            b["credspec"]["DomainJoinConfig"]["MachineAccountName"],
            "bench-spec-00005"
        );
    }
}
