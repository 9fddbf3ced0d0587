//! [`TestNamespace`]: one test's namespace and what the test made in it (service accounts,
//! `use` grants, specs, webhook registrations, pods), removed at cleanup by
//! [`super::Cluster::with_namespace`].

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use gmsa_crd::GMSACredentialSpec;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use serde_json::{json, Value};

use super::{wait_for, windows_pod, LocalWebhook, LOCAL_MUTATE_HOOK, LOCAL_VALIDATE_HOOK, PREFIX};

/// A namespace created for one test, and what the test created in the cluster.
pub struct TestNamespace {
    client: Client,
    name: String,
    specs: Vec<String>,
    pods: Vec<String>,
    webhooks: Vec<String>,
}

/// A pod create the API server admitted, with the warnings it sent back (`Warning` headers,
/// where webhooks' `warnings` end up).
#[derive(Debug)]
pub struct Admitted {
    /// The pod as admitted (mutations applied).
    pub pod: Pod,
    /// The warning texts.
    pub warnings: Vec<String>,
}

/// The status code and message of an API error (a denial), or an error when `result` was a
/// success or failed without an answer from the API server.
pub fn denial<T>(result: std::result::Result<T, kube::Error>, what: &str) -> Result<(u16, String)> {
    match result {
        Ok(_) => bail!("expected {what} to be refused, it was allowed"),
        Err(kube::Error::Api(status)) => Ok((status.code, status.message)),
        Err(e) => Err(e).with_context(|| format!("{what} failed without an API answer")),
    }
}

/// The text of a `Warning` header value (`299 - "text"`).
fn warning_text(header: &str) -> String {
    let text = header
        .split_once(' ')
        .and_then(|(_, rest)| rest.split_once(' '))
        .map(|(_, text)| text)
        .unwrap_or(header);
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .map(|t| t.replace("\\\"", "\"").replace("\\\\", "\\"))
        .unwrap_or_else(|| text.to_string())
}

fn unique(label: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{PREFIX}{label}-{:x}{:x}",
        std::process::id() % 0xfff,
        nanos
    )
}

impl TestNamespace {
    pub(super) async fn create(client: Client, label: &str) -> Result<Self> {
        let name = unique(label);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("app.kubernetes.io/managed-by".into(), "gmsa-e2e".into())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        // The `default` service account appears shortly after the namespace.
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        wait_for(
            Duration::from_secs(30),
            "the default service account",
            || async { Ok(accounts.get_opt("default").await?.is_some()) },
        )
        .await?;
        Ok(Self {
            client,
            name,
            specs: Vec::new(),
            pods: Vec::new(),
            webhooks: Vec::new(),
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates a service account.
    pub async fn service_account(&self, name: &str) -> Result<()> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.name);
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        api.create(&PostParams::default(), &sa)
            .await
            .with_context(|| format!("creating service account {}/{name}", self.name))?;
        Ok(())
    }

    /// Lets `service_account` `use` the credspec `spec` (a Role with `resourceNames` and a
    /// RoleBinding, as the chart documents).
    pub async fn grant_use(&self, service_account: &str, spec: &str) -> Result<()> {
        let role_name = format!("use-{spec}");
        let roles: Api<Role> = Api::namespaced(self.client.clone(), &self.name);
        let role = Role {
            metadata: ObjectMeta {
                name: Some(role_name.clone()),
                ..ObjectMeta::default()
            },
            rules: Some(vec![PolicyRule {
                api_groups: Some(vec![gmsa_crd::GROUP.into()]),
                resources: Some(vec![gmsa_crd::PLURAL.into()]),
                verbs: vec!["use".into()],
                resource_names: Some(vec![spec.into()]),
                ..PolicyRule::default()
            }]),
        };
        if roles.get_opt(&role_name).await?.is_none() {
            roles
                .create(&PostParams::default(), &role)
                .await
                .with_context(|| format!("creating role {role_name}"))?;
        }
        let bindings: Api<RoleBinding> = Api::namespaced(self.client.clone(), &self.name);
        let binding = RoleBinding {
            metadata: ObjectMeta {
                name: Some(format!("{service_account}-{role_name}")),
                ..ObjectMeta::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: role_name,
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: service_account.into(),
                namespace: Some(self.name.clone()),
                ..Subject::default()
            }]),
        };
        bindings
            .create(&PostParams::default(), &binding)
            .await
            .with_context(|| format!("binding {service_account} to use {spec}"))?;
        Ok(())
    }

    /// Takes back what [`TestNamespace::grant_use`] gave `service_account` (deletes its
    /// RoleBinding; the Role stays for other accounts).
    pub async fn revoke_use(&self, service_account: &str, spec: &str) -> Result<()> {
        let name = format!("{service_account}-use-{spec}");
        Api::<RoleBinding>::namespaced(self.client.clone(), &self.name)
            .delete(&name, &DeleteParams::default())
            .await
            .with_context(|| format!("deleting RoleBinding {}/{name}", self.name))?;
        Ok(())
    }

    /// Sets `caBundle` of every entry of the webhook configurations
    /// [`TestNamespace::register_webhook`] made to `ca_pem` (e.g. another CA's, to break trust).
    pub async fn set_ca_bundle(&self, ca_pem: &str) -> Result<()> {
        use base64::Engine as _;
        let bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
        let patch = |entries: Vec<String>| json!({"webhooks": entries.iter().map(|name| json!({"name": name, "clientConfig": {"caBundle": bundle}})).collect::<Vec<_>>()});
        Api::<MutatingWebhookConfiguration>::all(self.client.clone())
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Strategic(patch(vec![LOCAL_MUTATE_HOOK.into()])),
            )
            .await
            .context("patching the mutating caBundle")?;
        Api::<ValidatingWebhookConfiguration>::all(self.client.clone())
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Strategic(patch(vec![LOCAL_VALIDATE_HOOK.into()])),
            )
            .await
            .context("patching the validating caBundle")?;
        Ok(())
    }

    /// Creates (or replaces) the cluster-scoped credspec `gmsa-e2e-{label}-…` holding
    /// `credspec`, returns its name; it is deleted at cleanup.
    pub async fn create_spec(&mut self, label: &str, credspec: Value) -> Result<String> {
        let name = unique(label);
        self.put_spec(&name, credspec).await?;
        self.specs.push(name.clone());
        Ok(name)
    }

    /// Creates the credspec `gmsa-e2e-{label}-…` through the deprecated `v1alpha1` version of
    /// the API, returns its name; it is deleted at cleanup.
    pub async fn create_spec_v1alpha1(&mut self, label: &str, credspec: Value) -> Result<String> {
        let name = unique(label);
        let resource = ApiResource {
            group: gmsa_crd::GROUP.into(),
            version: "v1alpha1".into(),
            api_version: format!("{}/v1alpha1", gmsa_crd::GROUP),
            kind: gmsa_crd::KIND.into(),
            plural: gmsa_crd::PLURAL.into(),
        };
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": name},
            "credspec": credspec,
        }))?;
        api.create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating credspec {name} through v1alpha1"))?;
        self.specs.push(name.clone());
        Ok(name)
    }

    /// Reads a credspec through `v1`.
    pub async fn get_spec(&self, name: &str) -> Result<GMSACredentialSpec> {
        let api: Api<GMSACredentialSpec> = Api::all(self.client.clone());
        api.get(name)
            .await
            .with_context(|| format!("reading credspec {name} through v1"))
    }

    /// Replaces the contents of a credspec this namespace created.
    pub async fn put_spec(&self, name: &str, credspec: Value) -> Result<()> {
        if !name.starts_with(PREFIX) {
            bail!("refusing to write credspec {name}: not created by the e2e harness");
        }
        let api: Api<GMSACredentialSpec> = Api::all(self.client.clone());
        let mut spec = GMSACredentialSpec {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            credspec: Some(credspec),
        };
        match api.get_opt(name).await? {
            Some(existing) => {
                spec.metadata.resource_version = existing.metadata.resource_version;
                api.replace(name, &PostParams::default(), &spec)
                    .await
                    .with_context(|| format!("replacing credspec {name}"))?;
            }
            None => {
                api.create(&PostParams::default(), &spec)
                    .await
                    .with_context(|| format!("creating credspec {name}"))?;
            }
        }
        Ok(())
    }

    /// Deletes a credspec this namespace created.
    pub async fn delete_spec(&mut self, name: &str) -> Result<()> {
        if !self.specs.iter().any(|s| s == name) {
            bail!("refusing to delete credspec {name}: not created by this test");
        }
        let api: Api<GMSACredentialSpec> = Api::all(self.client.clone());
        api.delete(name, &DeleteParams::default())
            .await
            .with_context(|| format!("deleting credspec {name}"))?;
        self.specs.retain(|s| s != name);
        Ok(())
    }

    /// Registers `hook` for this namespace only: a MutatingWebhookConfiguration and a
    /// ValidatingWebhookConfiguration named after the namespace, calling `hook` by `url` with
    /// its `caBundle`, with the chart's rules and `failurePolicy: Fail`. The namespace is
    /// labelled `windows.k8s.io/disabled=true` so an installed chart's webhook leaves it
    /// alone. Returns once the API server calls both (a pod naming a missing spec is denied by
    /// the mutating one, a pod with contents and no name by the validating one).
    pub async fn register_webhook(&mut self, hook: &LocalWebhook) -> Result<()> {
        use base64::Engine as _;
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"windows.k8s.io/disabled": "true"}}})),
            )
            .await
            .with_context(|| format!("labelling namespace {}", self.name))?;
        let ca_bundle = base64::engine::general_purpose::STANDARD.encode(hook.ca_pem());
        let entry = |name: &str, path: &str, pod_ops: &[&str]| {
            json!({
                "name": name,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
                "clientConfig": {"url": hook.url(path), "caBundle": ca_bundle},
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.name}},
                "rules": [
                    {"operations": pod_ops, "apiGroups": [""], "apiVersions": ["*"],
                     "resources": ["pods"], "scope": "Namespaced"},
                    {"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["*"],
                     "resources": ["pods/ephemeralcontainers"], "scope": "Namespaced"},
                ],
            })
        };
        let metadata = json!({"name": self.name,
            "labels": {"app.kubernetes.io/managed-by": "gmsa-e2e"}});
        let mutating: MutatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": metadata,
            "webhooks": [entry(LOCAL_MUTATE_HOOK, "/mutate", &["CREATE"])],
        }))?;
        let validating: ValidatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": metadata,
            "webhooks": [entry(LOCAL_VALIDATE_HOOK, "/validate", &["CREATE", "UPDATE"])],
        }))?;
        // Recorded first: cleanup deletes whatever exists under this name.
        self.webhooks.push(self.name.clone());
        Api::<MutatingWebhookConfiguration>::all(self.client.clone())
            .create(&PostParams::default(), &mutating)
            .await
            .context("registering the local mutating webhook")?;
        Api::<ValidatingWebhookConfiguration>::all(self.client.clone())
            .create(&PostParams::default(), &validating)
            .await
            .context("registering the local validating webhook")?;
        // The API server picks configurations up within a few seconds.
        let missing = windows_pod("probe-mutate", "default", Some("gmsa-e2e-probe-missing"));
        let mut nameless = windows_pod("probe-validate", "default", None);
        nameless["spec"]["containers"][0]["securityContext"] =
            json!({"windowsOptions": {"gmsaCredentialSpec": "{}"}});
        for (pod, hook_name) in [
            (missing, LOCAL_MUTATE_HOOK),
            (nameless, LOCAL_VALIDATE_HOOK),
        ] {
            let expected = format!("admission webhook \"{hook_name}\" denied the request");
            let start = Instant::now();
            loop {
                let last = match self.dry_run_create(&pod).await {
                    Err(kube::Error::Api(s)) if s.message.contains(&expected) => break,
                    Err(e) => e.to_string(),
                    Ok(_) => "admitted".into(),
                };
                if start.elapsed() > Duration::from_secs(30) {
                    bail!(
                        "the API server did not call {hook_name} at {} within 30 s (can it \
                         reach this machine? set GMSA_E2E_WEBHOOK_HOST); last answer: {last}",
                        hook.url("")
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// Creates `pod` for real (no dry-run) and returns it as stored. Deleted at cleanup.
    pub async fn create_pod(&mut self, pod: &Value) -> Result<Pod> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.name);
        let name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let pod: Pod = serde_json::from_value(pod.clone())?;
        let created = api
            .create(&PostParams::default(), &pod)
            .await
            .with_context(|| format!("creating pod {name}"))?;
        self.pods.push(name);
        Ok(created)
    }

    /// Reads a pod back.
    pub async fn get_pod(&self, name: &str) -> Result<Pod> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.name);
        api.get(name)
            .await
            .with_context(|| format!("reading pod {}/{name}", self.name))
    }

    /// Reads pod `name`, applies `change` to its JSON and sends the update (`PUT`); the API
    /// error (a denial) is returned as is.
    pub async fn update_pod(
        &self,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<std::result::Result<Pod, kube::Error>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.name);
        let mut pod = serde_json::to_value(self.get_pod(name).await?)?;
        change(&mut pod);
        let pod: Pod = serde_json::from_value(pod)?;
        Ok(api.replace(name, &PostParams::default(), &pod).await)
    }

    /// Adds `container` to pod `name`'s ephemeral containers through the
    /// `pods/ephemeralcontainers` subresource (what `kubectl debug` does); the API error (a
    /// denial) is returned as is.
    pub async fn add_ephemeral_container(
        &self,
        name: &str,
        container: Value,
    ) -> Result<std::result::Result<Pod, kube::Error>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.name);
        let mut pod = serde_json::to_value(self.get_pod(name).await?)?;
        match pod["spec"]["ephemeralContainers"].as_array_mut() {
            Some(list) => list.push(container),
            None => pod["spec"]["ephemeralContainers"] = json!([container]),
        }
        let pod: Pod = serde_json::from_value(pod)?;
        Ok(api
            .replace_ephemeral_containers(name, &PostParams::default(), &pod)
            .await)
    }

    /// A dry-run create of `pod` that also returns the admission warnings.
    pub async fn admit(&self, pod: &Value) -> Result<Admitted> {
        use kube::core::Resource as _;
        let what = format!("pod {}", pod["metadata"]["name"]);
        let params = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let request = kube::core::Request::new(Pod::url_path(&(), Some(&self.name)))
            .create(&params, serde_json::to_vec(pod)?)
            .context("building the create request")?;
        let response = self
            .client
            .send(request.map(kube::client::Body::from))
            .await
            .with_context(|| format!("sending {what}"))?;
        let status = response.status().as_u16();
        let warnings = response
            .headers()
            .get_all("warning")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(warning_text)
            .collect();
        let body = response
            .into_body()
            .collect_bytes()
            .await
            .with_context(|| format!("reading the answer to {what}"))?;
        if !(200..300).contains(&status) {
            bail!(
                "expected {what} to be admitted, got {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let pod = serde_json::from_slice(&body)
            .with_context(|| format!("the answer to {what} is not a Pod"))?;
        Ok(Admitted { pod, warnings })
    }

    async fn dry_run_create(&self, pod: &Value) -> std::result::Result<Pod, kube::Error> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.name);
        let pod: Pod = serde_json::from_value(pod.clone()).map_err(kube::Error::SerdeError)?;
        let params = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        api.create(&params, &pod).await
    }

    /// The pod as admitted (mutations applied), or an error carrying the denial.
    pub async fn accepts(&self, pod: &Value) -> Result<Pod> {
        self.dry_run_create(pod)
            .await
            .with_context(|| format!("expected pod {} to be admitted", pod["metadata"]["name"]))
    }

    /// The denial's status code and message, or an error when the pod was admitted.
    pub async fn rejects(&self, pod: &Value) -> Result<(u16, String)> {
        denial(
            self.dry_run_create(pod).await,
            &format!("pod {}", pod["metadata"]["name"]),
        )
    }

    pub(super) async fn cleanup(self) -> Result<()> {
        let mut problems = Vec::new();
        // Webhooks first: nothing else in the cluster may call a webhook that is going away.
        for name in &self.webhooks {
            let mutating: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
            let validating: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
            for result in [
                mutating
                    .delete(name, &DeleteParams::default())
                    .await
                    .map(|_| ()),
                validating
                    .delete(name, &DeleteParams::default())
                    .await
                    .map(|_| ()),
            ] {
                match result {
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Ok(()) => {}
                    Err(e) => problems.push(format!("webhook configuration {name}: {e}")),
                }
            }
        }
        // Unscheduled pods go at once; the namespace deletion would remove them too.
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.name);
        for name in &self.pods {
            match pods.delete(name, &DeleteParams::default()).await {
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Ok(_) => {}
                Err(e) => problems.push(format!("pod {name}: {e}")),
            }
        }
        let specs: Api<GMSACredentialSpec> = Api::all(self.client.clone());
        for name in &self.specs {
            if let Err(e) = specs.delete(name, &DeleteParams::default()).await {
                problems.push(format!("credspec {name}: {e}"));
            }
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        if let Err(e) = namespaces
            .delete(&self.name, &DeleteParams::background())
            .await
        {
            problems.push(format!("namespace {}: {e}", self.name));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("cleanup left objects behind: {}", problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_valid_dns_labels() {
        let n = unique("authz");
        assert!(n.starts_with("gmsa-e2e-authz-"), "{n}");
        assert!(n.len() <= 63, "{n}");
        assert!(n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }
}
