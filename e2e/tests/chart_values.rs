//! The chart's values: every optional feature renders valid manifests, wrong values are
//! rejected naming the value, the schema types every value and the README lists every value
//! (and no stale one), the chart follows the workspace version, the webhook flags with chart
//! values render, and a values file written for the reference chart still works. Also proves
//! `kubernetes-validate --strict` can fail.

use gmsa_e2e::chart::{
    chart_dir, read, render, run, template_each, text, tools, NEWEST, OLDEST, RELEASE,
    TEST_CA_BUNDLE,
};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn every_optional_feature_renders_valid_manifests() {
    let sets = [
        "credential.enabled=true",
        "credential.domainJoinConfig.machineAccountName=WebApp_01",
        "credential.domainJoinConfig.dnsName=contoso.com",
        "credential.domainJoinConfig.netBiosName=CONTOSO",
        "credential.domainJoinConfig.guid=244818ae-87ac-4fcd-92ec-e79e5252348a",
        "credential.domainJoinConfig.sid=S-1-5-21-2126449477-2524075714-3094792973",
        "credential.hostAccountConfig.pluginGUID=CCC2A336-D7F3-4818-A213-272B7924213E",
        "credential.hostAccountConfig.pluginInput=ObjectId=x;SecretUri=y",
        "viewerRole=true",
        "metrics.serviceMonitor.enabled=true",
        "priorityClassName=system-cluster-critical",
        "podDisruptionBudget.minAvailable=1",
        "nodeselector.pool=system",
        "global.systemDefaultRegistry=mirror.example.com",
        "image.tag=v9",
        "containerPort=443",
        "replicaCount=3",
        "topologySpread.enabled=false",
        "randomHostname=true",
        "qps=12.5",
        "logFormat=text",
        "extraEnv[0].name=AUTHZ_CACHE_TTL",
        "extraEnv[0].value=30",
    ];
    let r = render(OLDEST, &sets);
    let spec = r.get("GMSACredentialSpec", "webapp-01");
    let ad = &spec["credspec"]["ActiveDirectoryConfig"];
    assert_eq!(
        ad["GroupManagedServiceAccounts"],
        json!([{"Name": "WebApp_01", "Scope": "CONTOSO"}, {"Name": "WebApp_01", "Scope": "contoso.com"}])
    );
    assert_eq!(
        ad["HostAccountConfig"],
        json!({"PortableCcgVersion": "1", "PluginGUID": "{CCC2A336-D7F3-4818-A213-272B7924213E}", "PluginInput": "ObjectId=x;SecretUri=y"})
    );
    assert_eq!(
        spec["credspec"]["DomainJoinConfig"]["DnsTreeName"],
        "contoso.com"
    );
    assert_eq!(spec["credspec"]["CmsPlugins"], json!(["ActiveDirectory"]));
    let viewer = r.get("ClusterRole", "gmsa-viewer");
    assert_eq!(
        viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    assert_eq!(
        r.get("ServiceMonitor", RELEASE)["spec"]["endpoints"][0]["port"],
        "metrics"
    );
    let deploy = r.get("Deployment", RELEASE);
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(deploy["spec"]["replicas"], 3);
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert!(pod.get("topologySpreadConstraints").is_none());
    assert_eq!(
        pod["nodeSelector"],
        json!({"kubernetes.io/os": "linux", "pool": "system"})
    );
    assert_eq!(
        r.deployment_container()["image"],
        "mirror.example.com/gmsa/gmsa:v9"
    );
    assert_eq!(r.deployment_container()["ports"][0]["containerPort"], 443);
    assert_eq!(r.env("HTTPS_PORT"), "443");
    assert_eq!(r.env("RANDOM_HOSTNAME"), "true");
    assert_eq!(r.env("QPS"), "12.5");
    assert_eq!(r.env("LOG_FORMAT"), "text");
    assert_eq!(r.env("AUTHZ_CACHE_TTL"), "30");
    assert_eq!(
        r.get("PodDisruptionBudget", RELEASE)["spec"]["minAvailable"],
        1
    );
}

#[test]
fn wrong_values_are_rejected_naming_the_value() {
    for (set, names) in [
        ("webhook.failurePolicy=Never", "failurePolicy"),
        ("webhook.timeoutSeconds=60", "timeoutSeconds"),
        ("certificates.mode=vault", "mode"),
        ("webhook.namespaceSelector.mode=all", "mode"),
        ("containerPort=http", "containerPort"),
        ("replicaCount=two", "replicaCount"),
        ("certificates.csr.renew.renewBefore=30 days", "renewBefore"),
        ("certificates.csr.renew.renewBefore=1h30m", "renewBefore"),
        ("webhook.maxCacheStaleness=0s", "maxCacheStaleness"),
        ("webhook.maxCacheStaleness=30", "maxCacheStaleness"),
        ("webhook.matchConditions.enabled=maybe", "enabled"),
        ("unknownTopLevel=1", "unknownTopLevel"),
    ] {
        for (label, out) in template_each(NEWEST, &[set]) {
            let err = text(&out.stderr);
            assert!(!out.status.success(), "{label} accepted {set}");
            assert!(
                err.contains(names),
                "{label} rejects {set} without naming {names}: {err}"
            );
        }
    }
}

/// The webhook flags that come from chart values (issue 11): `--cert-expiry-warning` from the
/// renewal threshold, `--max-cache-staleness` from `webhook.maxCacheStaleness`, in every
/// certificate mode.
#[test]
fn webhook_flags_follow_their_values() {
    let ca_set = format!("certificates.caBundle={TEST_CA_BUNDLE}");
    for mode in [
        vec![],
        vec!["certificates.mode=certManager"],
        vec!["certificates.mode=secret", ca_set.as_str()],
    ] {
        let r = render(NEWEST, &mode);
        assert_eq!(r.env("CERT_EXPIRY_WARNING"), "720h", "{mode:?}");
        assert_eq!(r.env("MAX_CACHE_STALENESS"), "30s", "{mode:?}");
        let sets: Vec<&str> = mode
            .iter()
            .copied()
            .chain([
                "certificates.csr.renew.renewBefore=240h",
                "webhook.maxCacheStaleness=2m",
            ])
            .collect();
        let r = render(NEWEST, &sets);
        assert_eq!(r.env("CERT_EXPIRY_WARNING"), "240h", "{sets:?}");
        assert_eq!(r.env("MAX_CACHE_STALENESS"), "2m", "{sets:?}");
    }
}

#[test]
fn kubernetes_validate_rejects_unknown_fields() {
    // The validator must be able to fail, or the checks above prove nothing.
    let tools = tools();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  portz: []\n",
    )
    .expect("write");
    let out = run(Command::new(&tools.validator)
        .arg("--strict")
        .arg("-k")
        .arg(NEWEST)
        .arg(&file));
    assert!(
        !out.status.success(),
        "kubernetes-validate --strict accepted an unknown field"
    );
}

#[test]
fn chart_version_and_app_version_follow_the_workspace_version() {
    let chart: Value =
        serde_norway::from_str(&read(&chart_dir().join("Chart.yaml"))).expect("Chart.yaml parses");
    let workspace = env!("CARGO_PKG_VERSION");
    assert_eq!(chart["appVersion"], workspace, "Chart.yaml appVersion");
    assert_eq!(chart["version"], workspace, "Chart.yaml version");
    assert_eq!(
        chart["kubeVersion"],
        format!(">={}-0", OLDEST),
        "kubeVersion matches the oldest version tested"
    );
}

/// Dotted paths of the values in values.yaml (maps are descended, anything else is a value).
fn value_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v.as_object() {
        Some(map) if !map.is_empty() => {
            for (k, child) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                value_paths(child, &path, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

fn values() -> Vec<String> {
    let values: Value = serde_norway::from_str(&read(&chart_dir().join("values.yaml")))
        .expect("values.yaml parses");
    let mut paths = Vec::new();
    value_paths(&values, "", &mut paths);
    paths
}

#[test]
fn values_schema_types_every_value() {
    let schema: Value = serde_json::from_str(&read(&chart_dir().join("values.schema.json")))
        .expect("values.schema.json parses");
    for path in values() {
        let mut node = &schema;
        for part in path.split('.') {
            if node.get("properties").is_none() && node.get("type") == Some(&json!("object")) {
                break; // a free-form map (resources requests/limits) types its contents itself
            }
            node = &node["properties"][part];
        }
        assert!(
            node.get("type").is_some() || node.get("anyOf").is_some() || node.get("enum").is_some(),
            "values.schema.json does not type {path}"
        );
    }
}

#[test]
fn readme_lists_every_value_and_no_stale_one() {
    let readme = read(&chart_dir().join("README.md"));
    let table = readme
        .split("\n## Values\n")
        .nth(1)
        .expect("README has a ## Values section");
    let listed: BTreeSet<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    let values = values();
    for path in &values {
        // A free-form map (resources) is listed as a whole.
        let covered = listed
            .iter()
            .any(|l| path == l || path.starts_with(&format!("{l}.")));
        assert!(covered, "charts/gmsa/README.md does not list `{path}`");
    }
    let schema: Value = serde_json::from_str(&read(&chart_dir().join("values.schema.json")))
        .expect("schema parses");
    for path in listed {
        let mut node = &schema;
        for part in path.split('.') {
            node = &node["properties"][part];
        }
        assert!(
            !node.is_null() || values.iter().any(|v| v == path),
            "README lists `{path}`, which the chart does not have"
        );
    }
}

/// A values file written for the reference chart (kubernetes-sigs/windows-gmsa): every key it
/// knows, spelled as it spells them (`nodeselector` included), with a Secret + caBundle setup.
const REFERENCE_VALUES: &str = r#"
certificates:
  certManager:
    enabled: false
    version: "v1.10.1"
  caBundle: "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJmVENDQVNPZ0F3SUJBZ0lVWjZ0ZXN0Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K"
  secretName: gmsa-server-cert
  certReload:
    enabled: false
credential:
  enabled: true
  hostAccountConfig:
    pluginGUID: "{CCC2A336-D7F3-4818-A213-272B7924213E}"
    portableCcgVersion: "1"
    pluginInput: "ObjectId=x;SecretUri=y"
  domainJoinConfig:
    dnsName: contoso.com
    dnsTreeName: contoso.com
    guid: 244818ae-87ac-4fcd-92ec-e79e5252348a
    machineAccountName: WebApp01
    netBiosName: CONTOSO
    sid: S-1-5-21-2126449477-2524075714-3094792973
containerPort: "443"
image:
  repository: registry.k8s.io/gmsa-webhook/k8s-gmsa-webhook
  tag: v0.6.1
  imagePullPolicy: IfNotPresent
setPodOs: true
global:
  systemDefaultRegistry: ""
affinity: {}
nodeselector: {}
nodeSelector: {}
podDisruptionBudget:
  enabled: false
podSecurityContext: {}
replicaCount: 2
securityContext: {}
tolerations: []
viewerRole: false
qps: 30.0
burst: 50
randomHostname: false
"#;

#[test]
fn a_values_file_written_for_the_reference_chart_still_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("reference-values.yaml");
    std::fs::write(&file, REFERENCE_VALUES).expect("write values");
    let arg = format!("@{}", file.display());
    let r = render(OLDEST, &[&arg]);
    for hook in r.webhooks() {
        assert_eq!(
            hook["clientConfig"]["caBundle"], TEST_CA_BUNDLE,
            "secret mode, as before"
        );
    }
    assert!(r.of_kind("Job").is_empty() && r.of_kind("Certificate").is_empty());
    assert!(r.find("PodDisruptionBudget", RELEASE).is_none());
    assert_eq!(r.env("HTTPS_PORT"), "443");
    assert_eq!(r.env("CERT_RELOAD"), "false");
    assert_eq!(
        r.get("Deployment", RELEASE)["spec"]["template"]["spec"]["securityContext"]["sysctls"],
        json!([{"name": "net.ipv4.ip_unprivileged_port_start", "value": "443"}]),
        "non-root binds 443 through the safe sysctl, with no capability"
    );
    assert_eq!(
        r.deployment_container()["image"],
        "registry.k8s.io/gmsa-webhook/k8s-gmsa-webhook:v0.6.1"
    );
    assert_eq!(
        r.get("GMSACredentialSpec", "webapp01")["credspec"]["ActiveDirectoryConfig"]
            ["HostAccountConfig"]["PluginGUID"],
        "{CCC2A336-D7F3-4818-A213-272B7924213E}"
    );
    let pod = &r.get("Deployment", RELEASE)["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"]["runAsNonRoot"], true,
        "hardened even with the reference's empty contexts"
    );
}
