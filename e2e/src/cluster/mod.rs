//! A real Kubernetes cluster for end-to-end tests.
//!
//! The scenarios that need one are `#[ignore = "real cluster: scripts/e2e-cluster"]`: the
//! normal run (no cluster) reports them as skipped, never as passed, and `scripts/e2e-cluster`
//! runs them (`--run-ignored all`) against `GMSA_E2E_KUBECONFIG`.
//!
//! - [`Cluster::for_test`]: the cluster named by `GMSA_E2E_KUBECONFIG` (a kubeconfig path; an
//!   ambient `KUBECONFIG` is never used). Unset, or a cluster that cannot be used, fails the
//!   scenario with what to set.
//! - [`Cluster::ensure_crd`]: installs the CRD this build generates when the cluster has none
//!   (so every scenario runs on a bare API server); [`Cluster::require_webhook`]: scenarios of
//!   the installed chart fail when it is missing, saying what to install.
//! - [`Cluster::with_namespace`]: runs a test body in a fresh namespace `gmsa-e2e-…`, deleting
//!   it (and every credspec, pod and webhook configuration the body created) afterwards,
//!   whether the body passed, failed or panicked.
//! - [`TestNamespace`]: service accounts, `use` grants (Role + RoleBinding with
//!   `resourceNames`), credspecs (cluster-scoped, names prefixed `gmsa-e2e-`), and
//!   [`TestNamespace::accepts`] / [`TestNamespace::rejects`]: a server-side dry-run pod create,
//!   which goes through the installed webhooks without scheduling anything.
//! - [`TestNamespace::revoke_use`] / [`TestNamespace::set_ca_bundle`]: break a grant or the
//!   registration's trust, for the doctor scenarios.
//! - [`TestNamespace::register_webhook`]: registers a [`LocalWebhook`] (the webhook running in
//!   this process) by `url` with its `caBundle`, for this namespace only, with the chart's
//!   rules (mutate: pods CREATE, pods/ephemeralcontainers UPDATE; validate: pods CREATE and
//!   UPDATE, pods/ephemeralcontainers UPDATE); removed at cleanup.
//! - Pods for real: [`TestNamespace::create_pod`], [`TestNamespace::get_pod`],
//!   [`TestNamespace::update_pod`], [`TestNamespace::add_ephemeral_container`] (the
//!   `pods/ephemeralcontainers` subresource), [`TestNamespace::admit`] (a dry-run create that
//!   also returns the admission warnings). Without Windows nodes such pods stay Pending; they
//!   are deleted at cleanup.
//!
//! Everything created is named `gmsa-e2e-*`; nothing else in the cluster is touched.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{json, Value};

mod namespace;

pub use crate::local_webhook::{LocalWebhook, LocalWebhookOptions};
pub use namespace::{denial, Admitted, TestNamespace};

/// Name of the webhook entries the chart installs (mutating and validating).
pub const WEBHOOK_NAME: &str = "admission-webhook.windows-gmsa.sigs.k8s.io";

/// The label on a CRD the harness installed (and `scripts/e2e-cluster` removes).
pub const CRD_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "gmsa-e2e");

/// Prefix of everything the harness creates.
pub const PREFIX: &str = "gmsa-e2e-";

/// Name of the mutating webhook entry [`TestNamespace::register_webhook`] registers.
pub const LOCAL_MUTATE_HOOK: &str = "mutate.gmsa-e2e.windows.k8s.io";

/// Name of the validating webhook entry [`TestNamespace::register_webhook`] registers.
pub const LOCAL_VALIDATE_HOOK: &str = "validate.gmsa-e2e.windows.k8s.io";

/// A reachable cluster.
pub struct Cluster {
    client: Client,
    server: String,
}

impl Cluster {
    /// The cluster of `GMSA_E2E_KUBECONFIG`, for scenario `test`. The scenarios that need one
    /// are `#[ignore]`d, so the normal run reports them as skipped instead of passing them;
    /// `scripts/e2e-cluster` runs them. A scenario run without `GMSA_E2E_KUBECONFIG`, or with
    /// a cluster that cannot be used, fails here saying what to set: nothing passes without
    /// having run.
    pub async fn for_test(test: &str) -> Self {
        match Self::connect().await {
            Ok(c) => {
                eprintln!("{test}: running against the cluster at {}", c.server);
                c
            }
            Err(e) => panic!("{test}: {e:#}"),
        }
    }

    /// The cluster of `GMSA_E2E_KUBECONFIG` (an explicit path: an ambient `KUBECONFIG` is never
    /// used, so a test cannot touch a cluster nobody named for testing).
    pub async fn connect() -> Result<Self> {
        let Some(path) = std::env::var_os("GMSA_E2E_KUBECONFIG") else {
            bail!(
                "this scenario needs a real cluster: set GMSA_E2E_KUBECONFIG to the kubeconfig of a \
                 disposable test cluster and run scripts/e2e-cluster (docs/e2e-cluster.md)"
            );
        };
        let path = std::path::PathBuf::from(path);
        point_kubeconfig_at(&path);
        let kubeconfig = Kubeconfig::read_from(&path)
            .with_context(|| format!("reading kubeconfig {}", path.display()))?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("using kubeconfig {}", path.display()))?;
        Self::reach(config).await.with_context(|| {
            format!(
                "GMSA_E2E_KUBECONFIG={} is set but the cluster cannot be used",
                path.display()
            )
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
        Ok(self.crd().await?.is_some())
    }

    async fn crd(&self) -> Result<Option<CustomResourceDefinition>> {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client());
        crds.get_opt(&format!("{}.{}", gmsa_crd::PLURAL, gmsa_crd::GROUP))
            .await
            .context("reading the GMSACredentialSpec CRD")
    }

    /// Installs the GMSACredentialSpec CRD this build generates (server-side apply, field
    /// manager `gmsa-e2e`, labelled [`CRD_LABEL`]) when the cluster has none, and waits until
    /// it is established, so every scenario runs on a bare API server. An installed CRD is left
    /// as it is. The CRD stays after the run: each test is its own process (nextest), and
    /// deleting a CRD deletes every GMSACredentialSpec, those of scenarios still running in
    /// other processes included; `scripts/e2e-cluster` removes it once every scenario ended
    /// (`kubectl delete crd -l app.kubernetes.io/managed-by=gmsa-e2e`).
    pub async fn ensure_crd(&self) -> Result<()> {
        let established = |crd: &Option<CustomResourceDefinition>| {
            crd.as_ref()
                .and_then(|c| c.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        };
        let crd = self.crd().await?;
        if established(&crd) {
            return Ok(());
        }
        if crd.is_none() {
            let mut manifest = gmsa_crd::crd().context("generating the CRD")?;
            manifest
                .metadata
                .labels
                .get_or_insert_default()
                .insert(CRD_LABEL.0.into(), CRD_LABEL.1.into());
            let name = format!("{}.{}", gmsa_crd::PLURAL, gmsa_crd::GROUP);
            Api::<CustomResourceDefinition>::all(self.client())
                .patch(&name, &PatchParams::apply("gmsa-e2e").force(), &Patch::Apply(&manifest))
                .await
                .context("installing the GMSACredentialSpec CRD (needs create on customresourcedefinitions)")?;
            eprintln!(
                "cluster {}: installed the GMSACredentialSpec CRD (it stays)",
                self.server
            );
        }
        wait_for(
            Duration::from_secs(30),
            "the GMSACredentialSpec CRD to be established",
            || async { Ok(established(&self.crd().await?)) },
        )
        .await
    }

    /// Fails scenario `test` unless the chart's webhook is installed, saying what to install.
    pub async fn require_webhook(&self, test: &str) {
        let installed = self
            .has_webhook()
            .await
            .unwrap_or_else(|e| panic!("{test}: {e:#}"));
        assert!(
            installed,
            "{test}: the gmsa chart is not installed (helm install gmsa charts/gmsa -n gmsa \
             --create-namespace), or leave the webhook_* scenarios out: \
             scripts/e2e-cluster -E 'not test(/^webhook_/)'"
        );
    }

    /// What the cluster's authorizer answers (a SubjectAccessReview) for service account
    /// `namespace/name` making `req`.
    pub async fn allows(
        &self,
        namespace: &str,
        name: &str,
        req: &crate::rbac::Request<'_>,
    ) -> Result<bool> {
        use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview};
        let (resource, subresource) = match req.resource.split_once('/') {
            Some((r, s)) => (r, Some(s.to_string())),
            None => (req.resource, None),
        };
        let review = SubjectAccessReview {
            spec: gmsa_webhook::kube_backend::service_account_review(
                namespace,
                name,
                ResourceAttributes {
                    verb: Some(req.verb.into()),
                    group: Some(req.group.into()),
                    resource: Some(resource.into()),
                    subresource,
                    name: req.name.map(str::to_string),
                    namespace: req.namespace.map(str::to_string),
                    ..ResourceAttributes::default()
                },
            ),
            ..SubjectAccessReview::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client())
            .create(&PostParams::default(), &review)
            .await
            .with_context(|| format!("a SubjectAccessReview for {namespace}/{name}: {req:?}"))?;
        Ok(answer.status.is_some_and(|s| s.allowed))
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

    /// Runs `body` in a fresh namespace `gmsa-e2e-{label}-…`, then deletes what the body
    /// registered or created (webhook configurations, pods, credspecs) and the namespace, also
    /// when the body failed or panicked (a failed assertion); the panic then continues.
    pub async fn with_namespace<T>(
        &self,
        label: &str,
        body: impl AsyncFnOnce(&mut TestNamespace) -> Result<T>,
    ) -> Result<T> {
        let mut ns = TestNamespace::create(self.client(), label).await?;
        let result = CatchUnwind(Box::pin(body(&mut ns))).await;
        let cleaned = ns.cleanup().await;
        let value = match result {
            Ok(value) => value,
            Err(panic) => {
                if let Err(e) = cleaned {
                    eprintln!("{e:#}");
                }
                std::panic::resume_unwind(panic)
            }
        }?;
        cleaned?;
        Ok(value)
    }
}

/// A future's output, or the panic it raised while polled.
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

/// Makes `KUBECONFIG` name the cluster chosen by `GMSA_E2E_KUBECONFIG`, once per process, so
/// a [`LocalWebhook`] (whose Kubernetes backend finds its cluster through `KUBECONFIG`) talks
/// to the same cluster as the harness. It runs first thing in [`Cluster::connect`], which
/// every cluster test calls before doing anything else, and every caller waits for it: no
/// other thread of the test process reads the environment meanwhile.
fn point_kubeconfig_at(path: &std::path::Path) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("KUBECONFIG").as_deref() != Some(path.as_os_str()) {
            std::env::set_var("KUBECONFIG", path);
        }
    });
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
    use k8s_openapi::api::core::v1::Pod;

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
