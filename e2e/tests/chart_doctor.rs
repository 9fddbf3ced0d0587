//! `gmsa doctor` reads what the chart really installs: the rendered webhook configurations,
//! Service and Deployment (default values, the newest Kubernetes) replace the hand-written
//! ones of testkit's healthy set-up, and every check that applies passes. A chart change that
//! doctor does not follow (the entry name, the Service's selector or port, the Secret volume,
//! the namespace selectors) fails here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use gmsa_doctor::{diagnose, gather, Options, Status, Target};
use gmsa_e2e::chart::{render, NEWEST, NS, RELEASE};
use gmsa_testkit::setup::Setup;
use gmsa_testkit::FakeApiServer;
use serde_json::{json, Value};

/// The chart's objects in testkit's set-up, as the API server would show them once installed:
/// caBundle set by the patch hook, the Secret the issue hook wrote, the replicas ready.
fn installed_chart() -> Setup {
    let rendered = render(NEWEST, &[]);
    let mut setup = Setup::healthy(gmsa_crd::crd_value());
    let ca = base64::engine::general_purpose::STANDARD.encode(&setup.pki.ca_pem);
    let with_ca = |mut config: Value| {
        for w in config["webhooks"].as_array_mut().into_iter().flatten() {
            w["clientConfig"]["caBundle"] = ca.clone().into();
        }
        config
    };
    setup.mutating = vec![with_ca(
        rendered
            .get("MutatingWebhookConfiguration", RELEASE)
            .clone(),
    )];
    setup.validating = vec![with_ca(
        rendered
            .get("ValidatingWebhookConfiguration", RELEASE)
            .clone(),
    )];
    let mut service = rendered.get("Service", RELEASE).clone();
    service["metadata"]["namespace"] = NS.into();
    let mut deployment = rendered.get("Deployment", RELEASE).clone();
    deployment["metadata"]["namespace"] = NS.into();
    let replicas = deployment["spec"]["replicas"].clone();
    deployment["status"] = json!({"replicas": replicas, "readyReplicas": replicas});
    let labels = deployment["spec"]["template"]["metadata"]["labels"].clone();
    let secret_name = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .and_then(|v| v.iter().find_map(|v| v["secret"]["secretName"].as_str()))
        .expect("the Deployment mounts the serving Secret")
        .to_string();
    setup.services = vec![service];
    setup.deployments = vec![deployment];
    let (cert, key) = setup.pki.leaf_for(&[
        &format!("{RELEASE}.{NS}.svc"),
        &format!("{RELEASE}.{NS}.svc.cluster.local"),
    ]);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    setup.secrets = vec![
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": secret_name, "namespace": NS},
        "data": {"tls.crt": b64(&cert), "tls.key": b64(&key), "ca.crt": b64(&setup.pki.ca_pem)}}),
    ];
    setup.endpoint_slices = vec![
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{RELEASE}-x1"), "namespace": NS, "labels": {"kubernetes.io/service-name": RELEASE}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.244.0.9"], "conditions": {"ready": true}}]}),
    ];
    setup.pods = (0..2)
        .map(|i| json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{RELEASE}-{i}"), "namespace": NS, "labels": labels},
            "spec": {"containers": [{"name": "webhook", "image": "x"}]},
            "status": {"containerStatuses": [{"name": "webhook", "image": "x", "imageID": "", "ready": true, "restartCount": 0}]}}))
        .collect();
    setup
        .namespaces
        .push(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NS, "labels": {"kubernetes.io/metadata.name": NS}}}));
    setup
}

#[tokio::test]
async fn doctor_passes_the_chart_as_installed() {
    let server = FakeApiServer::start(Setup::router(Arc::new(Mutex::new(installed_chart())))).await;
    let mut config = kube::Config::new(server.url().parse().expect("URL"));
    config.default_retry = false;
    let client = kube::Client::try_from(config).expect("client");
    let opts = Options {
        target: Target {
            release_namespace: Some(NS.into()),
            ..Target::new("apps", "webapp", Some("webapp01"))
        },
        probe_pod: None,
        ldap: None,
        timeout: Duration::from_secs(5),
    };
    let r = diagnose(&gather(client, &opts).await);
    let not_ok: Vec<(&str, Status)> = r
        .checks
        .iter()
        .filter(|c| c.status != Status::Ok)
        .map(|c| (c.id, c.status))
        .collect();
    assert_eq!(
        not_ok,
        [("spec.domain", Status::Skip), ("spec.nodes", Status::Skip)],
        "{}",
        r.to_text()
    );
    let service = r.get("webhooks.service").expect("ran");
    assert!(
        service
            .message
            .contains(&format!("Service {NS}/{RELEASE} port 443")),
        "{service:?}"
    );
    let serving = r.get("certs.serving").expect("ran");
    assert!(
        serving.message.contains(&format!("{RELEASE}.{NS}.svc")),
        "{serving:?}"
    );
}
