//! The soak's TLS client: HTTP/1.1 or HTTP/2 connections to the webhook, one review a POST.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

pub type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

pub struct Client {
    pub addr: SocketAddr,
    pub h1: Arc<ClientConfig>,
    pub h2: Arc<ClientConfig>,
}

pub enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// One open connection: its sender, and a flag set when the server closed it.
pub struct Conn {
    pub sender: Sender,
    pub closed: tokio::sync::watch::Receiver<bool>,
}

pub fn client_config(ca_der: &[u8], alpn: &[u8]) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(ca_der.to_vec()))?;
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

impl Client {
    pub async fn tls(&self, h2: bool) -> anyhow::Result<(Tls, Vec<u8>)> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        let config = if h2 { &self.h2 } else { &self.h1 };
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default();
        Ok((tls, peer))
    }

    pub async fn connect(&self, h2: bool) -> anyhow::Result<Conn> {
        let (tls, _) = self.tls(h2).await?;
        let io = TokioIo::new(tls);
        let (done, closed) = tokio::sync::watch::channel(false);
        let sender = if h2 {
            let (sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(async move {
                let _ = conn.await;
                let _ = done.send(true);
            });
            Sender::H2(sender)
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(async move {
                let _ = conn.await;
                let _ = done.send(true);
            });
            Sender::H1(sender)
        };
        Ok(Conn { sender, closed })
    }
}

impl Conn {
    pub async fn post(&mut self, path: &str, body: Vec<u8>) -> anyhow::Result<(u16, Bytes)> {
        let request = hyper::Request::builder()
            .method("POST")
            .uri(format!("https://localhost{path}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
        };
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
