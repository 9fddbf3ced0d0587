//! The probe pod doctor sends through the admission path. Pure.

use serde_json::{json, Value};

/// The probe pod's name.
pub const PROBE_NAME: &str = "gmsa-doctor-probe";

/// A Windows pod in `namespace` under `service_account` naming `spec` at pod level.
pub fn probe_pod(namespace: &str, service_account: &str, spec: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": PROBE_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/created-by": "gmsa-doctor"},
        },
        "spec": {
            "serviceAccountName": service_account,
            "nodeSelector": {"kubernetes.io/os": "windows"},
            "securityContext": {"windowsOptions": {"gmsaCredentialSpecName": spec}},
            "containers": [{"name": "probe", "image": "mcr.microsoft.com/windows/nanoserver:ltsc2022"}],
        },
    })
}

/// The pod a manifest would create: a Pod as is, or the pod template of a Deployment,
/// ReplicaSet, StatefulSet, DaemonSet, Job or CronJob, named [`PROBE_NAME`] in `namespace`.
/// Also returns the service account (`default` when unset) and the first spec it names.
pub fn pod_template(
    doc: &Value,
    namespace: &str,
) -> Result<(Value, String, Option<String>), String> {
    let kind = doc["kind"].as_str().unwrap_or("");
    let template = match kind {
        "Pod" => doc.clone(),
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" => doc["spec"]["template"].clone(),
        "CronJob" => doc["spec"]["jobTemplate"]["spec"]["template"].clone(),
        other => return Err(format!("--pod: kind {other:?} has no pod (give a Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job or CronJob)")),
    };
    if !template["spec"].is_object() {
        return Err(format!("--pod: the {kind} has no pod spec"));
    }
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": template["metadata"].clone(), "spec": template["spec"].clone()});
    if !pod["metadata"].is_object() {
        pod["metadata"] = json!({});
    }
    let meta = &mut pod["metadata"];
    if let Some(m) = meta.as_object_mut() {
        m.remove("generateName");
        m.remove("resourceVersion");
        m.remove("uid");
    }
    meta["name"] = PROBE_NAME.into();
    meta["namespace"] = namespace.into();
    let sa = pod["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let spec = std::iter::once(
        &pod["spec"]["securityContext"]["windowsOptions"]["gmsaCredentialSpecName"],
    )
    .chain(["initContainers", "containers"].iter().flat_map(|l| {
        pod["spec"][l]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| &c["securityContext"]["windowsOptions"]["gmsaCredentialSpecName"])
    }))
    .find_map(|v| v.as_str().map(str::to_string));
    Ok((pod, sa, spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_of_workloads() {
        let tmpl = json!({"metadata": {"labels": {"app": "web"}}, "spec": {
            "serviceAccountName": "webapp",
            "containers": [{"name": "c", "image": "i", "securityContext": {"windowsOptions": {"gmsaCredentialSpecName": "webapp01"}}}]}});
        let cases = [
            json!({"kind": "Deployment", "spec": {"template": tmpl}}),
            json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": tmpl}}}}),
            json!({"kind": "Pod", "metadata": {"generateName": "web-", "labels": {"app": "web"}}, "spec": tmpl["spec"]}),
        ];
        for doc in cases {
            let (pod, sa, spec) = pod_template(&doc, "apps").expect("a pod");
            assert_eq!(pod["metadata"]["name"], PROBE_NAME);
            assert_eq!(pod["metadata"]["namespace"], "apps");
            assert!(pod["metadata"].get("generateName").is_none());
            assert_eq!(pod["metadata"]["labels"]["app"], "web");
            assert_eq!(sa, "webapp");
            assert_eq!(spec.as_deref(), Some("webapp01"));
        }
        let (_, sa, spec) =
            pod_template(&json!({"kind": "Pod", "spec": {"containers": []}}), "x").expect("pod");
        assert_eq!((sa.as_str(), spec), ("default", None));
        assert!(pod_template(&json!({"kind": "Service", "spec": {}}), "x")
            .expect_err("refused")
            .contains("has no pod"));
        assert!(
            pod_template(&json!({"kind": "Deployment", "spec": {}}), "x")
                .expect_err("refused")
                .contains("no pod spec")
        );
    }
}
