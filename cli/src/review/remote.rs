//! A minimal HTTPS/HTTP client for one webhook (HTTP/1.1, rustls with ring): `gmsa review
//! --webhook URL`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// Posts AdmissionReviews to one webhook base URL.
pub struct Client {
    uri: Uri,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
}

impl Client {
    /// A client for `url` (`https://host:port[/prefix]` or `http://...`), trusting the
    /// certificates in `ca` (PEM) or, without it, the system's trust store.
    pub fn new(url: &str, ca: Option<&Path>, timeout: Duration) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("--webhook {url:?} is not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("https") => Some(tokio_rustls::TlsConnector::from(Arc::new(tls_config(ca)?))),
            Some("http") => None,
            _ => bail!("--webhook {url:?} must start with https:// (or http://)"),
        };
        if uri.host().is_none() {
            bail!("--webhook {url:?} has no host");
        }
        Ok(Self { uri, tls, timeout })
    }

    /// POSTs `body` as JSON to `path` under the base URL; returns the 200 answer's body.
    pub async fn post(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        tokio::time::timeout(self.timeout, self.post_inner(path, body))
            .await
            .with_context(|| format!("the webhook did not answer within {:?}", self.timeout))?
    }

    async fn post_inner(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let host = self.uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = self
            .uri
            .port_u16()
            .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let base = self.uri.path().trim_end_matches('/');
        let authority = self
            .uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let request = Request::post(format!("{base}{path}"))
            .header(HOST, authority)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .context("building the request")?;
        let tcp = TcpStream::connect((host, port))
            .await
            .with_context(|| format!("cannot connect to {host}:{port}"))?;
        let response = match &self.tls {
            Some(connector) => {
                let name = ServerName::try_from(host.to_string())
                    .with_context(|| format!("{host:?} is not a valid TLS server name"))?;
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .with_context(|| format!("TLS handshake with {host}:{port} failed"))?;
                send(TokioIo::new(stream), request).await?
            }
            None => send(TokioIo::new(tcp), request).await?,
        };
        Ok(response)
    }
}

async fn send<IO>(io: IO, request: Request<Full<Bytes>>) -> anyhow::Result<Vec<u8>>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .context("HTTP handshake with the webhook")?;
    let driver = tokio::spawn(connection);
    let path = request.uri().path().to_string();
    let response = sender
        .send_request(request)
        .await
        .context("sending the review to the webhook")?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the webhook's answer")?
        .to_bytes()
        .to_vec();
    driver.abort();
    if !status.is_success() {
        bail!(
            "the webhook answered {status} on {path}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(body)
}

fn tls_config(ca: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let text = std::fs::read(path)
                .with_context(|| format!("cannot read --ca {}", path.display()))?;
            let blocks = pem::parse_many(&text)
                .with_context(|| format!("--ca {} is not PEM", path.display()))?;
            for block in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
                roots
                    .add(CertificateDer::from(block.contents().to_vec()))
                    .with_context(|| {
                        format!("--ca {}: a certificate is invalid", path.display())
                    })?;
            }
            if roots.is_empty() {
                bail!("--ca {} holds no CERTIFICATE block", path.display());
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                bail!("no system CA certificates found; pass --ca FILE with the webhook's CA");
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
