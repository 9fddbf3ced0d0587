//! The I/O: reads [`Facts`] from the cluster, the webhook and the domain. Each read is bounded
//! by [`Options::timeout`]; a 403 is [`Fetched::Forbidden`] with the right it lacked. Writes
//! nothing: the probe pod is a `dryRun=All` create and the access check a
//! SubjectAccessReview (neither is stored).

use std::sync::Arc;
use std::time::Duration;

use gmsa_crd::{GMSACredentialSpec, GROUP, PLURAL};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::facts::{Facts, Fetched, ProbeAnswer, Target, WebhookAnswer, WEBHOOK_ENTRY};
use crate::probe_pod::probe_pod;

/// What to read, beyond the [`Target`].
#[derive(Clone, Debug)]
pub struct Options {
    /// The pod's side and the webhook's side.
    pub target: Target,
    /// The probe pod (from `--pod`), else one is built from the target.
    pub probe_pod: Option<Value>,
    /// How to reach the domain controller (the LDAP flags), if given.
    pub ldap: Option<gmsa_ad::ConnectOptions>,
    /// The bound on each read.
    pub timeout: Duration,
}

fn fetched<T>(
    r: Result<Result<T, kube::Error>, tokio::time::error::Elapsed>,
    right: &str,
    timeout: Duration,
) -> Fetched<T> {
    match r {
        Err(_) => Fetched::Failed(format!("no answer within {}s", timeout.as_secs())),
        Ok(Ok(t)) => Fetched::Got(t),
        Ok(Err(kube::Error::Api(s))) if s.code == 403 => Fetched::Forbidden(right.to_string()),
        Ok(Err(kube::Error::Api(s))) => {
            Fetched::Failed(format!("{} {}: {}", s.code, s.reason, s.message))
        }
        Ok(Err(e)) => Fetched::Failed(e.to_string()),
    }
}

struct Reader {
    client: Client,
    timeout: Duration,
}

impl Reader {
    async fn read<T>(
        &self,
        right: &str,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Fetched<T> {
        fetched(
            tokio::time::timeout(self.timeout, call).await,
            right,
            self.timeout,
        )
    }

    async fn list<K>(&self, api: Api<K>, lp: ListParams, right: &str) -> Fetched<Vec<K>>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        match self.read(right, api.list(&lp)).await {
            Fetched::Got(l) => Fetched::Got(l.items),
            Fetched::Forbidden(r) => Fetched::Forbidden(r),
            Fetched::Failed(r) => Fetched::Failed(r),
            Fetched::NotAsked(r) => Fetched::NotAsked(r),
        }
    }
}

/// Reads everything [`crate::diagnose()`] needs.
pub async fn gather(client: Client, opts: &Options) -> Facts {
    let t = &opts.target;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut f = Facts::unread(t.clone(), now, "the API server did not answer");
    let r = Reader {
        client: client.clone(),
        timeout: opts.timeout,
    };
    f.version = r.read("get /version", client.apiserver_version()).await;
    if f.version.got().is_none() {
        return f;
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    f.crd = r
        .read(
            "get customresourcedefinitions",
            crds.get_opt(&format!("{PLURAL}.{GROUP}")),
        )
        .await;
    f.mutating = r
        .list(
            Api::<MutatingWebhookConfiguration>::all(client.clone()),
            ListParams::default(),
            "list mutatingwebhookconfigurations",
        )
        .await;
    f.validating = r
        .list(
            Api::<ValidatingWebhookConfiguration>::all(client.clone()),
            ListParams::default(),
            "list validatingwebhookconfigurations",
        )
        .await;
    keep_ours(&mut f);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    f.namespace = r
        .read("get namespaces", namespaces.get_opt(&t.namespace))
        .await;

    let client_config = first_client_config(&f);
    let why_not = "the webhook configuration calls a URL, not a Service".to_string();
    match client_config.as_ref().and_then(|c| c.service.clone()) {
        Some(svc) => {
            f.handshake = Fetched::NotAsked(
                "the webhook is called through a Service (its certificate is read from the Secret)"
                    .into(),
            );
            webhook_side(
                &r,
                &mut f,
                &svc.namespace,
                &svc.name,
                svc.port.unwrap_or(443),
            )
            .await;
        }
        None => {
            f.service = Fetched::NotAsked(why_not.clone());
            f.deployment = Fetched::NotAsked(why_not.clone());
            f.endpoints = Fetched::NotAsked(why_not.clone());
            f.webhook_pods = Fetched::NotAsked(why_not.clone());
            f.serving_secret = Fetched::NotAsked(why_not.clone());
            match client_config.as_ref().and_then(|c| c.url.clone()) {
                Some(url) => {
                    // The first connection records the chain and asks /info; a webhook that
                    // does not complete a handshake is not called again for /health.
                    let info = get_over_tls(&url, "/info", opts.timeout).await;
                    let health = match &info {
                        Ok(_) => get_over_tls(&url, "/health", opts.timeout)
                            .await
                            .and_then(|(_, answer)| answer),
                        Err(why) => Err(why.clone()),
                    };
                    f.handshake = match &info {
                        Ok((chain, _)) => Fetched::Got(chain.clone()),
                        Err(why) => Fetched::Failed(why.clone()),
                    };
                    f.webhook = Fetched::Got(WebhookAnswer {
                        via: format!("at {url}"),
                        info: info.and_then(|(_, answer)| answer).map(|(_, body)| body),
                        health,
                    });
                }
                None => {
                    f.handshake = Fetched::NotAsked("no webhook configuration".into());
                    f.webhook = Fetched::NotAsked("no webhook configuration".into());
                }
            }
        }
    }

    spec_side(&r, &mut f, opts).await;
    f
}

/// Keeps the configurations holding the chart's entry (or named by `--webhook-config`).
fn keep_ours(f: &mut Facts) {
    let name = f.target.webhook_config.clone();
    let ours = |meta: &kube::api::ObjectMeta, entries: Vec<&str>| match &name {
        Some(n) => meta.name.as_deref() == Some(n.as_str()),
        None => entries.contains(&WEBHOOK_ENTRY),
    };
    if let Fetched::Got(list) = &mut f.mutating {
        list.retain(|c| {
            ours(
                &c.metadata,
                c.webhooks
                    .iter()
                    .flatten()
                    .map(|w| w.name.as_str())
                    .collect(),
            )
        });
    }
    if let Fetched::Got(list) = &mut f.validating {
        list.retain(|c| {
            ours(
                &c.metadata,
                c.webhooks
                    .iter()
                    .flatten()
                    .map(|w| w.name.as_str())
                    .collect(),
            )
        });
    }
}

fn first_client_config(f: &Facts) -> Option<WebhookClientConfig> {
    let m = f
        .mutating
        .got()
        .into_iter()
        .flatten()
        .flat_map(|c| c.webhooks.iter().flatten().map(|w| w.client_config.clone()));
    let v = f
        .validating
        .got()
        .into_iter()
        .flatten()
        .flat_map(|c| c.webhooks.iter().flatten().map(|w| w.client_config.clone()));
    m.chain(v).next()
}

async fn webhook_side(r: &Reader, f: &mut Facts, ns: &str, name: &str, port: i32) {
    let c = r.client.clone();
    let services: Api<Service> = Api::namespaced(c.clone(), ns);
    f.service = r
        .read(
            &format!("get services in namespace {ns}"),
            services.get_opt(name),
        )
        .await;
    f.endpoints = r
        .list(
            Api::<EndpointSlice>::namespaced(c.clone(), ns),
            ListParams::default().labels(&format!("kubernetes.io/service-name={name}")),
            &format!("list endpointslices in namespace {ns}"),
        )
        .await;
    let selector = f
        .service
        .got()
        .and_then(Option::as_ref)
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.selector.clone());
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        let why = format!("Service {ns}/{name} is missing or selects no pods");
        f.deployment = Fetched::NotAsked(why.clone());
        f.webhook_pods = Fetched::NotAsked(why.clone());
        f.serving_secret = Fetched::NotAsked(why.clone());
        f.webhook = Fetched::NotAsked(why);
        return;
    };
    let labels = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let deployments = r
        .list(
            Api::<Deployment>::namespaced(c.clone(), ns),
            ListParams::default(),
            &format!("list deployments in namespace {ns}"),
        )
        .await;
    f.deployment = match deployments {
        Fetched::Got(ds) => Fetched::Got(ds.into_iter().find(|d| {
            let tl = d
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            selector.iter().all(|(k, v)| tl.get(k) == Some(v))
        })),
        Fetched::Forbidden(x) => Fetched::Forbidden(x),
        Fetched::Failed(x) => Fetched::Failed(x),
        Fetched::NotAsked(x) => Fetched::NotAsked(x),
    };
    f.webhook_pods = r
        .list(
            Api::<Pod>::namespaced(c.clone(), ns),
            ListParams::default().labels(&labels),
            &format!("list pods in namespace {ns}"),
        )
        .await;
    f.serving_secret = match &f.serving_secret_name() {
        Some(s) => {
            let secrets: Api<Secret> = Api::namespaced(c.clone(), ns);
            let mut read = r
                .read(
                    &format!("get secrets in namespace {ns}"),
                    secrets.get_opt(s),
                )
                .await;
            // Only the certificates are checked: the private key is dropped at once, so no
            // later print of the facts can show it.
            if let Fetched::Got(Some(secret)) = &mut read {
                if let Some(data) = secret.data.as_mut() {
                    data.retain(|k, _| k == "tls.crt" || k == "ca.crt");
                }
                secret.string_data = None;
                secret.metadata.managed_fields = None;
            }
            read
        }
        None => Fetched::NotAsked("the webhook's Deployment mounts no Secret".into()),
    };
    let proxy =
        |path: &str| format!("/api/v1/namespaces/{ns}/services/https:{name}:{port}/proxy{path}");
    let right = format!("get services/proxy in namespace {ns}");
    let info = r.read(&right, proxied_get(c.clone(), proxy("/info"))).await;
    let health = r
        .read(&right, proxied_get(c.clone(), proxy("/health")))
        .await;
    f.webhook = match (info, health) {
        (Fetched::Forbidden(x), _) | (_, Fetched::Forbidden(x)) => Fetched::Forbidden(x),
        (info, health) => Fetched::Got(WebhookAnswer {
            via: "through the API server's service proxy".into(),
            info: answer(info).map(|(_, b)| b),
            health: answer(health),
        }),
    };
}

/// The webhook's own `(status, body)`, or why the proxy could not get one.
fn answer(f: Fetched<Proxied>) -> Proxied {
    match f {
        Fetched::Got(r) => r,
        Fetched::Failed(why) | Fetched::Forbidden(why) | Fetched::NotAsked(why) => Err(why),
    }
}

/// A GET through the API server's service proxy: `Ok((status, body))` is the webhook's
/// answer; `Err` is the API server's own refusal (no endpoints, …). A 403 of doctor's user
/// is a `kube::Error::Api` with code 403.
/// The webhook's answer `(status, body)`, or the API server's refusal to proxy.
type Proxied = Result<(u16, String), String>;

async fn proxied_get(c: Client, path: String) -> Result<Proxied, kube::Error> {
    let req = http::Request::get(path)
        .body(kube::client::Body::empty())
        .map_err(kube::Error::HttpError)?;
    let res = c.send(req).await?;
    let code = res.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await?
        .to_bytes();
    let body = String::from_utf8_lossy(&bytes).into_owned();
    // The API server's own errors are a metav1.Status; the webhook answers text or JSON
    // of its own.
    match serde_json::from_str::<kube::core::Status>(&body) {
        Ok(s) if code == 403 && !s.message.is_empty() => Err(kube::Error::Api(s.boxed())),
        Ok(s) if !s.message.is_empty() => Ok(Err(format!("{code} {}", s.message))),
        _ => Ok(Ok((code, body))),
    }
}

async fn spec_side(r: &Reader, f: &mut Facts, opts: &Options) {
    let t = &opts.target;
    let c = r.client.clone();
    let nodes: Api<Node> = Api::all(c.clone());
    f.nodes = r
        .list(
            nodes,
            ListParams::default().labels("kubernetes.io/os=windows"),
            "list nodes",
        )
        .await;
    let Some(spec_name) = t.spec.clone() else {
        let why = "no --spec (or a --pod naming one)".to_string();
        f.access = Fetched::NotAsked(why.clone());
        f.spec = Fetched::NotAsked(why.clone());
        f.probe = Fetched::NotAsked(why.clone());
        f.domain = Fetched::NotAsked(why);
        return;
    };
    let specs: Api<GMSACredentialSpec> = Api::all(c.clone());
    f.spec = r
        .read("get gmsacredentialspecs", specs.get_opt(&spec_name))
        .await;
    // Exactly what the webhook asks, as a cluster-wide review (same answer as its
    // LocalSubjectAccessReview: the namespace is in the attributes).
    let sar = SubjectAccessReview {
        spec: gmsa_webhook::kube_backend::service_account_review(
            &t.namespace,
            &t.service_account,
            gmsa_webhook::kube_backend::use_attributes(&t.namespace, &spec_name),
        ),
        ..Default::default()
    };
    let reviews: Api<SubjectAccessReview> = Api::all(c.clone());
    f.access = match r
        .read(
            "create subjectaccessreviews",
            reviews.create(&PostParams::default(), &sar),
        )
        .await
    {
        Fetched::Got(s) => s.status.map_or_else(
            || Fetched::Failed("the access review came back with no status".into()),
            Fetched::Got,
        ),
        Fetched::Forbidden(x) => Fetched::Forbidden(x),
        Fetched::Failed(x) => Fetched::Failed(x),
        Fetched::NotAsked(x) => Fetched::NotAsked(x),
    };
    f.probe = probe(r, opts, &spec_name).await;
    f.domain = domain(f, opts).await;
}

async fn probe(r: &Reader, opts: &Options, spec: &str) -> Fetched<ProbeAnswer> {
    let t = &opts.target;
    let pod = opts
        .probe_pod
        .clone()
        .unwrap_or_else(|| probe_pod(&t.namespace, &t.service_account, spec));
    let pod: Pod = match serde_json::from_value(pod) {
        Ok(p) => p,
        Err(e) => return Fetched::Failed(format!("the probe pod is not a Pod: {e}")),
    };
    let pods: Api<Pod> = Api::namespaced(r.client.clone(), &t.namespace);
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match tokio::time::timeout(r.timeout, pods.create(&pp, &pod)).await {
        Err(_) => Fetched::Failed(format!("no answer within {}s", r.timeout.as_secs())),
        Ok(Ok(p)) => Fetched::Got(ProbeAnswer::Admitted(Box::new(p))),
        // A webhook's denial is also a 403: tell it from RBAC refusing doctor itself.
        Ok(Err(kube::Error::Api(s)))
            if s.code == 403 && s.message.contains("cannot create resource") =>
        {
            Fetched::Forbidden(format!(
                "create pods in namespace {} (a dry run: nothing is stored)",
                t.namespace
            ))
        }
        Ok(Err(kube::Error::Api(s))) => Fetched::Got(ProbeAnswer::Refused {
            code: s.code,
            reason: s.reason.clone(),
            message: s.message.clone(),
        }),
        Ok(Err(e)) => Fetched::Failed(e.to_string()),
    }
}

async fn domain(f: &Facts, opts: &Options) -> Fetched<gmsa_ad::Report> {
    let Some(ldap) = opts.ldap.clone() else {
        return Fetched::NotAsked("no --server given (the LDAP flags of gmsa spec verify)".into());
    };
    let Some(Some(resource)) = f.spec.got() else {
        return Fetched::NotAsked("the spec could not be read".into());
    };
    let spec = match resource.typed() {
        Ok(s) => s,
        Err(e) => return Fetched::NotAsked(format!("the spec does not parse: {e}")),
    };
    let nodes: Vec<String> = f
        .nodes
        .got()
        .into_iter()
        .flatten()
        .filter_map(|n| n.metadata.name.as_deref())
        .map(|n| opts.target.node_account(n))
        .collect();
    let spec = Arc::new(spec);
    let work = tokio::task::spawn_blocking(move || -> Result<gmsa_ad::Report, gmsa_ad::AdError> {
        let mut dir = gmsa_ad::Directory::connect(&ldap)?;
        let facts = gmsa_ad::facts_for(&mut dir, &spec, &nodes)?;
        Ok(gmsa_ad::verify(&spec, &facts))
    });
    match work.await {
        Ok(Ok(report)) => Fetched::Got(report),
        Ok(Err(e)) => Fetched::Failed(e.to_string()),
        Err(e) => Fetched::Failed(format!("the LDAP task failed: {e}")),
    }
}

/// Accepts any certificate: doctor only records the chain here; [`crate::diagnose()`] checks
/// it against caBundle. No request carrying anything secret is sent over such a connection.
#[derive(Debug)]
struct RecordOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for RecordOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

type TlsStream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// TLS to the webhook URL's host: the chain it presented (DER) and the stream.
async fn handshake(url: &str, timeout: Duration) -> Result<(Vec<Vec<u8>>, TlsStream), String> {
    let (host, port) = crate::diagnose::url_host_port(url);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordOnly(provider)))
        .with_no_client_auth();
    let name =
        rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))?;
        let chain = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.to_vec()).collect())
            .unwrap_or_default();
        Ok((chain, tls))
    };
    tokio::time::timeout(timeout, connect).await.map_err(|_| {
        format!(
            "no TLS handshake with {host}:{port} within {}s",
            timeout.as_secs()
        )
    })?
}

/// `GET path` over HTTP/1.1 on a fresh TLS connection to the URL's host: the chain the
/// webhook presented and its answer `(status, body)`; `Err` when no handshake completed.
type TlsAnswer = (Vec<Vec<u8>>, Result<(u16, String), String>);

async fn get_over_tls(url: &str, path: &str, timeout: Duration) -> Result<TlsAnswer, String> {
    let (chain, mut tls) = handshake(url, timeout).await?;
    let (host, _) = crate::diagnose::url_host_port(url);
    let exchange = async {
        tls.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        // The webhook's answers here are a few bytes; cap what is read anyway.
        (&mut tls)
            .take(64 * 1024)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let code = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP answer: {:.80}", text))?;
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        Ok((code, body))
    };
    let answer = tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer to GET {path} within {}s",
                timeout.as_secs()
            ))
        });
    Ok((chain, answer))
}
