//! The healthy set-up of testkit's [`Setup`] as [`Facts`], and edits the tables use.

use gmsa_testkit::setup::Setup;
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhook, ValidatingWebhook};
use k8s_openapi::ByteString;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::facts::{Facts, Fetched, ProbeAnswer, Target, WebhookAnswer};
use crate::report::Report;

use gmsa_testkit::setup::Pki as TestPki;

/// The certificates of a set-up, with the helpers the tables use.
pub struct Pki(TestPki);

impl std::ops::Deref for Pki {
    type Target = TestPki;
    fn deref(&self) -> &TestPki {
        &self.0
    }
}

fn from<T: DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("fixture object: {e}: {v}"))
}

pub fn target() -> Target {
    Target {
        release_namespace: Some("gmsa".into()),
        renew_before_secs: 30 * 86_400,
        ..Target::new("apps", "webapp", Some("webapp01"))
    }
}

/// The check `id` of `r` (panics, showing the report, when it did not run).
pub fn check<'a>(r: &'a Report, id: &str) -> &'a crate::report::Check {
    r.get(id)
        .unwrap_or_else(|| panic!("no check {id} in {r:#?}"))
}

/// Facts as [`crate::gather()`] reads them from `s` (with the domain's report for the node).
pub fn facts_of(s: &Setup) -> Facts {
    let mut f = Facts::unread(target(), s.pki.now, "unused");
    f.version = Fetched::Got(from(&s.version));
    f.crd = Fetched::Got(s.crd.as_ref().map(from));
    f.mutating = Fetched::Got(s.mutating.iter().map(from).collect());
    f.validating = Fetched::Got(s.validating.iter().map(from).collect());
    f.namespace = Fetched::Got(
        s.namespaces
            .iter()
            .find(|n| n["metadata"]["name"] == "apps")
            .map(from),
    );
    f.service = Fetched::Got(s.services.first().map(from));
    f.endpoints = Fetched::Got(s.endpoint_slices.iter().map(from).collect());
    f.deployment = Fetched::Got(s.deployments.first().map(from));
    f.webhook_pods = Fetched::Got(s.pods.iter().map(from).collect());
    f.serving_secret = Fetched::Got(s.secrets.first().map(from));
    f.handshake = Fetched::NotAsked("the webhook is called through a Service".into());
    f.webhook = Fetched::Got(WebhookAnswer {
        via: "through the API server's service proxy".into(),
        info: Ok(r#"{"version":"0.1.0"}"#.into()),
        health: Ok((204, String::new())),
    });
    let mut pod = crate::probe_pod("apps", "webapp", "webapp01");
    pod["spec"]["securityContext"]["windowsOptions"]["gmsaCredentialSpec"] =
        s.specs[0]["credspec"].to_string().into();
    f.probe = Fetched::Got(ProbeAnswer::Admitted(Box::new(from(&pod))));
    f.access = Fetched::Got(from(
        &serde_json::json!({"allowed": true, "reason": "RBAC: allowed by RoleBinding"}),
    ));
    f.spec = Fetched::Got(s.specs.first().map(from));
    f.nodes = Fetched::Got(s.nodes.iter().map(from).collect());
    f.domain = Fetched::Got(gmsa_ad::Report {
        problems: vec![],
        readers: vec![gmsa_ad::AccountReaders {
            account: "WebApp01".into(),
            readers: vec![],
            nodes: vec![("WINNODE1$".into(), true)],
        }],
        notes: vec![],
    });
    f
}

fn setup() -> Setup {
    Setup::healthy(gmsa_crd::crd_value())
}

/// The healthy set-up's facts.
pub fn healthy() -> Facts {
    facts_of(&setup())
}

/// The healthy facts and their certificates.
pub fn healthy_with_pki() -> (Facts, Pki) {
    let s = setup();
    (facts_of(&s), Pki(s.pki))
}

/// The first mutating webhook entry.
pub fn mutating_entry(f: &mut Facts) -> &mut MutatingWebhook {
    match &mut f.mutating {
        Fetched::Got(v) => &mut v[0].webhooks.get_or_insert_default()[0],
        _ => panic!("no mutating configurations"),
    }
}

/// The first validating webhook entry.
pub fn validating_entry(f: &mut Facts) -> &mut ValidatingWebhook {
    match &mut f.validating {
        Fetched::Got(v) => &mut v[0].webhooks.get_or_insert_default()[0],
        _ => panic!("no validating configurations"),
    }
}

/// Sets caBundle on every entry.
pub fn set_ca_bundle(f: &mut Facts, pem: &str) {
    mutating_entry(f).client_config.ca_bundle = Some(ByteString(pem.as_bytes().to_vec()));
    validating_entry(f).client_config.ca_bundle = Some(ByteString(pem.as_bytes().to_vec()));
}

/// Replaces the serving Secret's tls.crt and tls.key.
pub fn set_serving(f: &mut Facts, (cert, key): &(String, String)) {
    if let Fetched::Got(Some(s)) = &mut f.serving_secret {
        let data = s.data.get_or_insert_default();
        data.insert("tls.crt".into(), ByteString(cert.as_bytes().to_vec()));
        data.insert("tls.key".into(), ByteString(key.as_bytes().to_vec()));
    }
}

/// Edits the spec's credspec JSON.
pub fn edit_credspec(f: &mut Facts, edit: impl FnOnce(&mut Value)) {
    if let Fetched::Got(Some(spec)) = &mut f.spec {
        if let Some(c) = spec.credspec.as_mut() {
            edit(c);
        }
    }
}
