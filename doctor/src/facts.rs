//! What doctor reads from the cluster (and the domain), as plain data: the input of
//! [`crate::diagnose()`]. [`crate::gather()`] fills it; tests build it by hand.

use std::collections::BTreeMap;

use gmsa_crd::GMSACredentialSpec;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::SubjectAccessReviewStatus;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::version::Info;

/// The name of the webhook entries the chart installs (mutating and validating), as the
/// reference chart names them.
pub const WEBHOOK_ENTRY: &str = "admission-webhook.windows-gmsa.sigs.k8s.io";

/// One read: what came back, or why nothing did.
#[derive(Clone, Debug, PartialEq)]
pub enum Fetched<T> {
    /// The answer.
    Got(T),
    /// The API server refused doctor's user (403): the right it lacks, e.g.
    /// `get secrets in namespace gmsa`.
    Forbidden(String),
    /// Any other failure, said for people.
    Failed(String),
    /// Not read, and why (an input is missing, or an earlier answer made it pointless).
    NotAsked(String),
}

impl<T> Fetched<T> {
    /// The answer, if there is one.
    pub fn got(&self) -> Option<&T> {
        match self {
            Self::Got(t) => Some(t),
            _ => None,
        }
    }
}

/// What to diagnose: the pod's side and the webhook's side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The namespace the gMSA pod runs in.
    pub namespace: String,
    /// Its service account.
    pub service_account: String,
    /// The GMSACredentialSpec the pod names (`None`: spec and probe checks are skipped).
    pub spec: Option<String>,
    /// The webhook configurations' name (`None`: those holding an entry named
    /// [`WEBHOOK_ENTRY`]).
    pub webhook_config: Option<String>,
    /// The namespace the chart was installed in, when known: a configuration calling a
    /// Service elsewhere is a warning.
    pub release_namespace: Option<String>,
    /// The renewal window for the serving certificate, in seconds (a certificate ending
    /// within it is a `warn`).
    pub renew_before_secs: i64,
    /// Windows node name → its computer account (default: see
    /// [`Target::node_account`]).
    pub node_accounts: BTreeMap<String, String>,
    /// Appended to a node name to make its computer account (default `$`).
    pub node_account_suffix: String,
}

impl Target {
    /// The target of a pod in `namespace` under `service_account` naming `spec`, with the
    /// defaults of `gmsa doctor`: the chart's webhook entry, a 720h renewal window, node
    /// accounts `NAME$`.
    pub fn new(namespace: &str, service_account: &str, spec: Option<&str>) -> Self {
        Self {
            namespace: namespace.into(),
            service_account: service_account.into(),
            spec: spec.map(str::to_string),
            webhook_config: None,
            release_namespace: None,
            renew_before_secs: 720 * 3600,
            node_accounts: BTreeMap::new(),
            node_account_suffix: "$".into(),
        }
    }

    /// The computer account of `node`: the mapping, else the node's first DNS label cut to
    /// 15 characters (a computer's NetBIOS name, which its `sAMAccountName` carries) in
    /// upper case, plus the suffix.
    pub fn node_account(&self, node: &str) -> String {
        if let Some(a) = self.node_accounts.get(node) {
            return a.clone();
        }
        let host: String = node
            .split('.')
            .next()
            .unwrap_or(node)
            .chars()
            .take(15)
            .collect();
        format!("{}{}", host.to_ascii_uppercase(), self.node_account_suffix)
    }
}

/// The answer to the probe pod's server-side dry-run create.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeAnswer {
    /// Accepted; the pod as the API server would store it (after every mutating webhook).
    Admitted(Box<Pod>),
    /// Refused: the API server's Status.
    Refused {
        /// HTTP code.
        code: u16,
        /// `reason`, e.g. `Forbidden`, `InternalError`.
        reason: String,
        /// `message`.
        message: String,
    },
}

/// What the webhook answered on its own endpoints (`/info`, `/health`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookAnswer {
    /// How it was reached, e.g. `through the API server's service proxy`.
    pub via: String,
    /// `/info`'s body (`{"version": "..."}`), or why it failed.
    pub info: Result<String, String>,
    /// `/health`'s status code and body, or why it failed.
    pub health: Result<(u16, String), String>,
}

/// Everything doctor read.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    /// What was asked.
    pub target: Target,
    /// When, Unix seconds.
    pub now: i64,
    /// `/version`.
    pub version: Fetched<Info>,
    /// `gmsacredentialspecs.windows.k8s.io` (`None`: not there).
    pub crd: Fetched<Option<CustomResourceDefinition>>,
    /// The mutating configurations found (see [`Target::webhook_config`]).
    pub mutating: Fetched<Vec<MutatingWebhookConfiguration>>,
    /// The validating configurations found.
    pub validating: Fetched<Vec<ValidatingWebhookConfiguration>>,
    /// The pod's namespace (`None`: it does not exist).
    pub namespace: Fetched<Option<Namespace>>,
    /// The Service the mutating entry calls (`NotAsked` when it calls a URL).
    pub service: Fetched<Option<Service>>,
    /// That Service's EndpointSlices.
    pub endpoints: Fetched<Vec<EndpointSlice>>,
    /// The Deployment whose pods the Service selects.
    pub deployment: Fetched<Option<Deployment>>,
    /// Those pods.
    pub webhook_pods: Fetched<Vec<Pod>>,
    /// The Secret the Deployment mounts (its name: [`Facts::serving_secret_name`]).
    pub serving_secret: Fetched<Option<Secret>>,
    /// The certificate chain (DER) the webhook presented in a TLS handshake from here
    /// (webhooks registered by URL).
    pub handshake: Fetched<Vec<Vec<u8>>>,
    /// The webhook's `/info` and `/health`.
    pub webhook: Fetched<WebhookAnswer>,
    /// The probe pod's dry-run create.
    pub probe: Fetched<ProbeAnswer>,
    /// SubjectAccessReview: may the service account `use` the spec?
    pub access: Fetched<SubjectAccessReviewStatus>,
    /// The spec (`None`: not there).
    pub spec: Fetched<Option<GMSACredentialSpec>>,
    /// The Windows nodes (`kubernetes.io/os=windows`).
    pub nodes: Fetched<Vec<Node>>,
    /// The spec against the domain (with the LDAP flags): gmsa-ad's report for the nodes'
    /// computer accounts.
    pub domain: Fetched<gmsa_ad::Report>,
}

impl Facts {
    /// The Secret the webhook's Deployment mounts for its certificate: the volume named
    /// `tls` (the chart's), else the first Secret volume.
    pub fn serving_secret_name(&self) -> Option<String> {
        let d = self.deployment.got()?.as_ref()?;
        let volumes = d.spec.as_ref()?.template.spec.as_ref()?.volumes.as_ref()?;
        let secret_of = |v: &k8s_openapi::api::core::v1::Volume| {
            v.secret.as_ref().and_then(|s| s.secret_name.clone())
        };
        volumes
            .iter()
            .find(|v| v.name == "tls")
            .and_then(secret_of)
            .or_else(|| volumes.iter().find_map(secret_of))
    }

    /// Facts with nothing read yet (every field `NotAsked(why)`), for `target` at `now`.
    pub fn unread(target: Target, now: i64, why: &str) -> Self {
        fn n<T>(why: &str) -> Fetched<T> {
            Fetched::NotAsked(why.to_string())
        }
        Self {
            target,
            now,
            version: n(why),
            crd: n(why),
            mutating: n(why),
            validating: n(why),
            namespace: n(why),
            service: n(why),
            endpoints: n(why),
            deployment: n(why),
            webhook_pods: n(why),
            serving_secret: n(why),
            handshake: n(why),
            webhook: n(why),
            probe: n(why),
            access: n(why),
            spec: n(why),
            nodes: n(why),
            domain: n(why),
        }
    }
}
