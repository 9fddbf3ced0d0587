//! The gmsa webhook running in this test process, in Kubernetes mode, for a cluster whose API
//! server can reach this machine: what [`crate::cluster::TestNamespace::register_webhook`]
//! registers by `url` (with its `caBundle`), so the suite also runs against a bare API server
//! with no chart installed.
//!
//! - [`LocalWebhook::start`]: a throwaway CA and a serving certificate for the host the API
//!   server calls (`GMSA_E2E_WEBHOOK_HOST`, default `127.0.0.1`), written as a Kubernetes
//!   Secret volume writes them (`tls.crt -> ..data/tls.crt`, `..data -> ..<stamp>`), and
//!   [`gmsa_webhook::Webhook`] started on a free port with `--cert-reload`; it returns once
//!   the webhook is ready (credspec watch synced). Its Kubernetes backend finds the cluster
//!   through `KUBECONFIG`, which [`crate::cluster::Cluster::connect`] points at the cluster the
//!   harness uses.
//! - [`LocalWebhook::rotate`]: a new serving certificate from the same CA, swapped in through
//!   the `..data` symlink as the kubelet does when a Secret changes.
//! - [`LocalWebhook::serve_expired`]: an expired serving certificate, for the doctor
//!   scenarios.
//! - [`LocalWebhook::metric`]: a value from the admin port's `/metrics`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::cluster::wait_for;

/// How the local webhook is started.
#[derive(Clone, Debug, Default)]
pub struct LocalWebhookOptions {
    /// `--random-hostname`: GMSA pods without `spec.hostname` get a random one.
    pub random_hostname: bool,
}

/// The host the API server calls the local webhook at (`GMSA_E2E_WEBHOOK_HOST`, default
/// `127.0.0.1`: an API server running on this machine).
pub fn webhook_host() -> String {
    std::env::var("GMSA_E2E_WEBHOOK_HOST").unwrap_or_else(|_| "127.0.0.1".into())
}

/// Writes the serving pair into `dir` as the kubelet updates a Secret volume (a timestamped
/// directory, `..data` renamed onto it, `tls.crt -> ..data/tls.crt`).
fn write_pair(dir: &Path, cert: &str, key: &str) -> Result<()> {
    gmsa_certs::write::swap_dir(
        dir,
        &[
            ("tls.crt", cert.as_bytes(), 0o644),
            ("tls.key", key.as_bytes(), 0o600),
        ],
    )
    .context("writing the serving certificate")
}

/// A CA for the local webhook's serving certificates.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl TestCa {
    fn new() -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "gmsa-e2e local webhook CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A serving certificate for `host` (an IP SAN for an address, else a DNS SAN), valid
    /// until January 1st of `until_year`; returns (certificate PEM, key PEM).
    fn leaf(&self, host: &str, until_year: i32) -> Result<(String, String)> {
        self.leaf_between(host, None, until_year)
    }

    /// Like [`TestCa::leaf`], valid from January 1st of `from_year` when given.
    fn leaf_between(
        &self,
        host: &str,
        from_year: Option<i32>,
        until_year: i32,
    ) -> Result<(String, String)> {
        let mut params = CertificateParams::new(vec![host.to_string()])?;
        if let Some(from) = from_year {
            params.not_before = rcgen::date_time_ymd(from, 1, 1);
        }
        params
            .distinguished_name
            .push(DnType::CommonName, "gmsa-e2e local webhook");
        params.not_after = rcgen::date_time_ymd(until_year, 1, 1);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// The webhook running in this process (see the module documentation).
pub struct LocalWebhook {
    webhook: gmsa_webhook::Webhook,
    host: String,
    ca: TestCa,
    certs: tempfile::TempDir,
    until_year: i32,
}

impl LocalWebhook {
    /// Starts the webhook in Kubernetes mode and waits until it is ready.
    pub async fn start(options: &LocalWebhookOptions) -> Result<Self> {
        let host = webhook_host();
        let ca = TestCa::new().context("making the test CA")?;
        let until_year = 2030;
        let (cert, key) = ca.leaf(&host, until_year)?;
        let certs = tempfile::tempdir().context("creating the certificate directory")?;
        write_pair(certs.path(), &cert, &key)?;
        let bind: IpAddr = host
            .parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let path = |name: &str| certs.path().join(name).display().to_string();
        let config = gmsa_webhook::config::Config::try_parse_from([
            "gmsa-webhook".to_string(),
            "--tls-crt".into(),
            path("tls.crt"),
            "--tls-key".into(),
            path("tls.key"),
            "--bind-address".into(),
            bind.to_string(),
            "--https-port".into(),
            "0".into(),
            "--admin-port".into(),
            "0".into(),
            "--cert-reload".into(),
            "--reload-interval".into(),
            "200ms".into(),
            // Grants made by a test apply at once.
            "--authz-cache-ttl".into(),
            "0".into(),
            "--random-hostname".into(),
            options.random_hostname.to_string(),
        ])
        .context("webhook arguments")?;
        let webhook = gmsa_webhook::Webhook::start(&config)
            .await
            .context("starting the local webhook (Kubernetes mode, KUBECONFIG)")?;
        let admin = webhook.admin_addr();
        let ready = wait_for(
            Duration::from_secs(60),
            "the local webhook to be ready (credspec watch synced)",
            || async { Ok(matches!(admin_get(admin, "/ready").await, Ok((204, _)))) },
        )
        .await;
        let hook = Self {
            webhook,
            host,
            ca,
            certs,
            until_year,
        };
        if let Err(e) = ready {
            hook.shutdown().await;
            return Err(e);
        }
        Ok(hook)
    }

    /// `https://HOST:PORT{path}`: what the API server calls.
    pub fn url(&self, path: &str) -> String {
        let port = self.webhook.https_addr().port();
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("https://[{ip}]:{port}{path}"),
            _ => format!("https://{}:{port}{path}", self.host),
        }
    }

    /// The CA (PEM) that signed the serving certificates: the webhooks' `caBundle`.
    pub fn ca_pem(&self) -> &str {
        &self.ca.pem
    }

    /// Swaps in a new serving certificate from the same CA (valid one year longer than the
    /// current one) through the `..data` symlink; returns its notAfter in Unix seconds as
    /// `gmsa_webhook_certificate_not_after_seconds` will show it once reloaded.
    pub fn rotate(&mut self) -> Result<i64> {
        self.until_year += 1;
        let (cert, key) = self.ca.leaf(&self.host, self.until_year)?;
        write_pair(self.certs.path(), &cert, &key)?;
        Ok(rcgen::date_time_ymd(self.until_year, 1, 1).unix_timestamp())
    }

    /// Swaps in a serving certificate from the same CA that expired on January 1st, 2021, and
    /// returns once the webhook serves it (it loads an expired pair, with a warning: the API
    /// server then refuses to call it).
    pub async fn serve_expired(&mut self) -> Result<()> {
        let (cert, key) = self.ca.leaf_between(&self.host, Some(2020), 2021)?;
        write_pair(self.certs.path(), &cert, &key)?;
        let want = rcgen::date_time_ymd(2021, 1, 1).unix_timestamp();
        wait_for(
            Duration::from_secs(30),
            "the webhook to serve the expired certificate",
            || async { Ok(self.served_not_after().await? == want) },
        )
        .await
    }

    /// notAfter (Unix seconds) of the certificate the webhook serves now.
    pub async fn served_not_after(&self) -> Result<i64> {
        let value = self
            .metric("gmsa_webhook_certificate_not_after_seconds")
            .await?;
        Ok(value as i64)
    }

    /// The value of the sample `name` (with its labels, exactly as exposed, e.g.
    /// `gmsa_webhook_certificate_reloads_total{result="success"}`) on `/metrics`; 0 when absent.
    pub async fn metric(&self, name: &str) -> Result<f64> {
        let (status, body) = admin_get(self.webhook.admin_addr(), "/metrics").await?;
        if status != 200 {
            bail!("GET /metrics answered {status}");
        }
        Ok(metric_value(&body, name).unwrap_or(0.0))
    }

    /// Stops the webhook.
    pub async fn shutdown(self) {
        self.webhook.shutdown().await;
    }
}

/// The value of the sample `name` in a Prometheus text exposition.
fn metric_value(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A plain HTTP/1.0 GET on the admin port: (status, body).
async fn admin_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to the admin port {addr}"))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut reply))
        .await
        .with_context(|| format!("GET {path}: no answer within 10 s"))??;
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("GET {path}: not an HTTP answer: {reply:.80}"))?;
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values_are_read_by_exact_sample_name() {
        let text = "# HELP x y\ngmsa_webhook_certificate_not_after_seconds 1893456000\n\
                    gmsa_webhook_certificate_reloads_total{result=\"success\"} 2\n";
        assert_eq!(
            metric_value(text, "gmsa_webhook_certificate_not_after_seconds"),
            Some(1893456000.0)
        );
        assert_eq!(
            metric_value(
                text,
                "gmsa_webhook_certificate_reloads_total{result=\"success\"}"
            ),
            Some(2.0)
        );
        assert_eq!(metric_value(text, "gmsa_webhook_certificate"), None);
    }

    #[test]
    fn leaf_certificates_name_the_host_and_chain_to_the_ca() {
        let ca = TestCa::new().expect("ca");
        let (cert, key) = ca.leaf("127.0.0.1", 2030).expect("leaf");
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
        // The webhook's own loader accepts the pair.
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("c"), &cert).expect("write");
        std::fs::write(dir.path().join("k"), &key).expect("write");
        let pair = gmsa_webhook::tls::load_pair(&gmsa_webhook::tls::CertPaths {
            cert: dir.path().join("c"),
            key: dir.path().join("k"),
        })
        .expect("the webhook loads the pair");
        assert_eq!(
            pair.not_after,
            rcgen::date_time_ymd(2030, 1, 1).unix_timestamp()
        );
    }
}
