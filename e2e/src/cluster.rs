//! A real Kubernetes cluster for end-to-end tests, when one is configured.
//!
//! - [`Cluster::connect_or_skip`]: the cluster named by `GMSA_E2E_KUBECONFIG` (a kubeconfig
//!   path; an explicit opt-in, so an unreachable cluster fails the test) or else by
//!   `KUBECONFIG` (ambient; an unreachable cluster skips). With neither set the test prints
//!   that it was skipped and why, and returns.
//! - [`Cluster::with_namespace`]: runs a test body in a fresh namespace `gmsa-e2e-…`, deleting
//!   it (and every credspec the body created) afterwards, whether the body passed or not.
//! - [`TestNamespace`]: service accounts, `use` grants (Role + RoleBinding with
//!   `resourceNames`), credspecs (cluster-scoped, names prefixed `gmsa-e2e-`), and
//!   [`TestNamespace::accepts`] / [`TestNamespace::rejects`]: a server-side dry-run pod create,
//!   which goes through the installed webhooks without scheduling anything.
//!
//! Everything created is named `gmsa-e2e-*`; nothing else in the cluster is touched.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use gmsa_crd::GMSACredentialSpec;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{json, Value};

/// Name of the webhook entries the chart installs (mutating and validating).
pub const WEBHOOK_NAME: &str = "admission-webhook.windows-gmsa.sigs.k8s.io";

/// Prefix of everything the harness creates.
pub const PREFIX: &str = "gmsa-e2e-";

/// A reachable cluster.
pub struct Cluster {
    client: Client,
    server: String,
}

/// Why a cluster test did not run.
#[derive(Debug)]
pub struct Skip(pub String);

impl Cluster {
    /// The configured cluster, or `None` after printing why the test `test` is skipped.
    /// Panics when `GMSA_E2E_KUBECONFIG` is set but the cluster cannot be used: an explicit
    /// opt-in must not pass silently.
    pub async fn connect_or_skip(test: &str) -> Option<Self> {
        match Self::connect().await {
            Ok(c) => {
                eprintln!("{test}: running against the cluster at {}", c.server);
                Some(c)
            }
            Err(Skip(why)) => {
                eprintln!("{test}: SKIPPED: {why}");
                None
            }
        }
    }

    /// The configured cluster, or why there is none to use.
    pub async fn connect() -> std::result::Result<Self, Skip> {
        if let Some(path) = std::env::var_os("GMSA_E2E_KUBECONFIG") {
            let path = std::path::PathBuf::from(path);
            let connected = async {
                let kubeconfig = Kubeconfig::read_from(&path)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                let config =
                    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                        .await
                        .with_context(|| format!("using kubeconfig {}", path.display()))?;
                Self::reach(config).await
            }
            .await;
            return match connected {
                Ok(c) => Ok(c),
                Err(e) => panic!(
                    "GMSA_E2E_KUBECONFIG={} is set but the cluster cannot be used: {e:#}",
                    path.display()
                ),
            };
        }
        if std::env::var_os("KUBECONFIG").is_none() {
            return Err(Skip(
                "no cluster configured: set GMSA_E2E_KUBECONFIG (or KUBECONFIG) to a kubeconfig \
                 of a disposable test cluster"
                    .into(),
            ));
        }
        let config = kube::Config::from_kubeconfig(&KubeConfigOptions::default())
            .await
            .map_err(|e| Skip(format!("KUBECONFIG is set but unusable: {e}")))?;
        Self::reach(config).await.map_err(|e| {
            Skip(format!(
                "KUBECONFIG is set but the cluster is unreachable: {e:#}"
            ))
        })
    }

    async fn reach(config: kube::Config) -> Result<Self> {
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).context("building a client")?;
        let version = tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
            .await
            .with_context(|| format!("{server} did not answer within 10 s"))?
            .with_context(|| format!("asking {server} for its version"))?;
        eprintln!("cluster {server}: Kubernetes {}", version.git_version);
        Ok(Self { client, server })
    }

    /// A client for the cluster.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Whether the `gmsacredentialspecs.windows.k8s.io` CRD is installed.
    pub async fn has_crd(&self) -> Result<bool> {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client());
        Ok(crds
            .get_opt(&format!("{}.{}", gmsa_crd::PLURAL, gmsa_crd::GROUP))
            .await
            .context("reading the GMSACredentialSpec CRD")?
            .is_some())
    }

    /// Whether a mutating webhook configuration has an entry named [`WEBHOOK_NAME`] (the chart
    /// is installed).
    pub async fn has_webhook(&self) -> Result<bool> {
        let hooks: Api<MutatingWebhookConfiguration> = Api::all(self.client());
        let list = hooks
            .list(&Default::default())
            .await
            .context("listing mutating webhook configurations")?;
        Ok(list
            .items
            .iter()
            .any(|c| c.webhooks.iter().flatten().any(|w| w.name == WEBHOOK_NAME)))
    }

    /// Runs `body` in a fresh namespace `gmsa-e2e-{label}-…`, then deletes the namespace and
    /// every credspec the body created, also when the body failed.
    pub async fn with_namespace<T>(
        &self,
        label: &str,
        body: impl AsyncFnOnce(&mut TestNamespace) -> Result<T>,
    ) -> Result<T> {
        let mut ns = TestNamespace::create(self.client(), label).await?;
        let result = body(&mut ns).await;
        let cleaned = ns.cleanup().await;
        let value = result?;
        cleaned?;
        Ok(value)
    }
}

/// A namespace created for one test, and what the test created in the cluster.
pub struct TestNamespace {
    client: Client,
    name: String,
    specs: Vec<String>,
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
    async fn create(client: Client, label: &str) -> Result<Self> {
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

    /// Creates (or replaces) the cluster-scoped credspec `gmsa-e2e-{label}-…` holding
    /// `credspec`, returns its name; it is deleted at cleanup.
    pub async fn create_spec(&mut self, label: &str, credspec: Value) -> Result<String> {
        let name = unique(label);
        self.put_spec(&name, credspec).await?;
        self.specs.push(name.clone());
        Ok(name)
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
        match self.dry_run_create(pod).await {
            Ok(_) => bail!(
                "expected pod {} to be rejected, it was admitted",
                pod["metadata"]["name"]
            ),
            Err(kube::Error::Api(status)) => Ok((status.code, status.message)),
            Err(e) => Err(e).context("creating the pod failed without an API answer"),
        }
    }

    async fn cleanup(self) -> Result<()> {
        let specs: Api<GMSACredentialSpec> = Api::all(self.client.clone());
        let mut problems = Vec::new();
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

/// A Windows pod whose pod-level `windowsOptions` names `spec` (`None`: no GMSA at all),
/// running as `service_account`.
pub fn windows_pod(name: &str, service_account: &str, spec: Option<&str>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "serviceAccountName": service_account,
            "nodeSelector": {"kubernetes.io/os": "windows"},
            "containers": [{
                "name": "iis",
                "image": "mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022",
            }],
        },
    });
    if let Some(spec) = spec {
        pod["spec"]["securityContext"] =
            json!({"windowsOptions": {"gmsaCredentialSpecName": spec}});
    }
    pod
}

/// Polls `cond` every 200 ms until it is `Ok(true)`, failing after `limit`.
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, mut cond: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let start = Instant::now();
    loop {
        if cond().await? {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
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

    #[test]
    fn windows_pod_names_the_spec_at_pod_level_only_when_asked() {
        let p = windows_pod("p", "sa", Some("s"));
        assert_eq!(
            p["spec"]["securityContext"]["windowsOptions"]["gmsaCredentialSpecName"],
            "s"
        );
        assert!(windows_pod("p", "sa", None)["spec"]
            .get("securityContext")
            .is_none());
        let _: Pod = serde_json::from_value(p).expect("a valid Pod");
    }
}
