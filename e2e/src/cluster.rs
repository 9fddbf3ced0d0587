//! A real Kubernetes cluster for end-to-end tests, when one is configured.
//!
//! - [`Cluster::connect_or_skip`]: the cluster named by `GMSA_E2E_KUBECONFIG` (a kubeconfig
//!   path; an explicit opt-in, so an unreachable cluster fails the test) or else by
//!   `KUBECONFIG` (ambient; an unreachable cluster skips). With neither set the test prints
//!   that it was skipped and why, and returns.
//! - [`Cluster::ensure_crd`]: installs the CRD this build generates when the cluster has none
//!   (so every scenario runs on a bare API server); [`Cluster::require_webhook`]: scenarios of
//!   the installed chart fail under `GMSA_E2E_KUBECONFIG` when it is missing, never skip.
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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use gmsa_crd::GMSACredentialSpec;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{json, Value};

pub use crate::local_webhook::{LocalWebhook, LocalWebhookOptions};

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
            point_kubeconfig_at(&path);
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

    /// Whether a scenario needing the chart's webhook can run: `true` when it is installed.
    /// When it is not, an explicit run (`GMSA_E2E_KUBECONFIG`) fails here with what to install;
    /// an ambient one (`KUBECONFIG`) prints that `test` is skipped and returns `false`.
    pub async fn require_webhook(&self, test: &str) -> bool {
        let installed = self
            .has_webhook()
            .await
            .unwrap_or_else(|e| panic!("{test}: {e:#}"));
        if !installed {
            let why = "the gmsa chart is not installed (helm install gmsa charts/gmsa -n gmsa --create-namespace)";
            assert!(
                std::env::var_os("GMSA_E2E_KUBECONFIG").is_none(),
                "{test}: GMSA_E2E_KUBECONFIG is set but {why}: an explicit run does not skip"
            );
            eprintln!("{test}: SKIPPED: {why}");
        }
        installed
    }

    /// What the cluster's authorizer answers (a SubjectAccessReview) for service account
    /// `namespace/name` making `req`.
    pub async fn allows(
        &self,
        namespace: &str,
        name: &str,
        req: &crate::rbac::Request<'_>,
    ) -> Result<bool> {
        use k8s_openapi::api::authorization::v1::{
            ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
        };
        let (resource, subresource) = match req.resource.split_once('/') {
            Some((r, s)) => (r, Some(s.to_string())),
            None => (req.resource, None),
        };
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(format!("system:serviceaccount:{namespace}:{name}")),
                groups: Some(vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{namespace}"),
                    "system:authenticated".into(),
                ]),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(req.verb.into()),
                    group: Some(req.group.into()),
                    resource: Some(resource.into()),
                    subresource,
                    name: req.name.map(str::to_string),
                    namespace: req.namespace.map(str::to_string),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
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

    async fn cleanup(self) -> Result<()> {
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
