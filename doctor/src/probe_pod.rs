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

/// `pod` (a Pod, or the pod a workload's template creates) made the probe: named
/// [`PROBE_NAME`] in `namespace`; also its service account (`default` when unset) and the
/// first spec it names.
pub fn probe_from(mut pod: Value, namespace: &str) -> (Value, String, Option<String>) {
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
    (pod, sa, spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_becomes_the_probe_in_the_namespace() {
        let pod = json!({"kind": "Pod", "metadata": {"generateName": "web-", "uid": "u", "labels": {"app": "web"}},
            "spec": {"serviceAccountName": "webapp", "containers": [{"name": "c", "image": "i",
                "securityContext": {"windowsOptions": {"gmsaCredentialSpecName": "webapp01"}}}]}});
        let (pod, sa, spec) = probe_from(pod, "apps");
        assert_eq!(pod["metadata"]["name"], PROBE_NAME);
        assert_eq!(pod["metadata"]["namespace"], "apps");
        assert!(pod["metadata"].get("generateName").is_none());
        assert!(pod["metadata"].get("uid").is_none());
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert_eq!(sa, "webapp");
        assert_eq!(spec.as_deref(), Some("webapp01"));
        let (_, sa, spec) = probe_from(json!({"kind": "Pod", "spec": {"containers": []}}), "x");
        assert_eq!((sa.as_str(), spec), ("default", None));
    }
}
