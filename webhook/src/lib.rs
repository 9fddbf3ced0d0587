//! `gmsa-webhook`: the admission webhook that inlines and guards GMSA credential specs in pods.
//!
//! Entry points: [`run`] (the binary: serve until SIGTERM/SIGINT) and [`Webhook`] (start
//! and stop in-process, for tests and embedding), both driven by [`config::Config`].
//!
//! Flow of one admission review (see docs/design.md): bytes in (`server`, `tls`) → wire
//! format (`admission_review`) → lookups resolved through [`lookup::SpecStore`] and
//! [`lookup::Authorizer`] → pure decision (`admission`) → wire format → bytes out.

pub mod admission;
pub mod admission_review;
pub mod config;
pub mod kube_backend;
pub mod logging;
pub mod lookup;
pub mod metrics;
pub mod server;
pub mod standalone;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admission_review::{Admitter, Options};
use crate::config::Config;
use crate::lookup::{Authorizer, SpecStore};
use crate::metrics::Metrics;
use crate::server::{Limits, Readiness};

/// A started webhook: both listeners bound and serving, background tasks running.
/// [`Webhook::shutdown`] stops it gracefully; [`run`] does that on SIGTERM/SIGINT.
pub struct Webhook {
    https_addr: SocketAddr,
    admin_addr: SocketAddr,
    readiness: Readiness,
    shutdown: watch::Sender<bool>,
    shutdown_delay: Duration,
    servers: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
}

impl Webhook {
    /// Builds the lookups (standalone or Kubernetes), loads the certificate, binds both
    /// ports and starts serving. Fails with a message naming what is wrong (a file, a port,
    /// the Kubernetes configuration).
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        config.check().map_err(anyhow::Error::msg)?;
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let mut background = Vec::new();

        let (specs, authz) = lookups(config, &mut registry, &mut background).await?;
        let admitter = Admitter::new(
            specs,
            authz,
            Options {
                random_hostname: config.random_hostname,
            },
        );

        let resolver = if config.self_signed {
            let (pair, pem) = tls::self_signed()?;
            tracing::warn!(
                serial = %pair.serial,
                certificate_pem = %pem,
                "serving a self-signed certificate generated at start: not for production"
            );
            metrics.cert.not_after_seconds.set(pair.not_after);
            Arc::new(tls::CertResolver::new(pair.key))
        } else {
            let (Some(cert), Some(key)) = (&config.tls_crt, &config.tls_key) else {
                anyhow::bail!("--tls-crt and --tls-key are required unless --self-signed");
            };
            let paths = tls::CertPaths {
                cert: cert.clone(),
                key: key.clone(),
            };
            let reloader = Arc::new(tls::CertReloader::start(paths, metrics.cert.clone())?);
            let resolver = reloader.resolver();
            if config.cert_reload {
                background.push(tokio::spawn(reloader.watch(config.reload_interval)));
            }
            resolver
        };
        background.push(tokio::spawn(tls::warn_before_expiry(
            metrics.cert.clone(),
            config.cert_expiry_warning,
        )));
        let tls_config = tls::server_config(resolver)?;

        let https = bind(config, config.https_port, "--https-port").await?;
        let admin = bind(config, config.admin_port, "--admin-port").await?;
        let https_addr = https.local_addr().context("reading the HTTPS address")?;
        let admin_addr = admin.local_addr().context("reading the admin address")?;

        let limits = Limits {
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout,
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            shutdown_grace: config.shutdown_grace,
            max_connections: config.max_connections as usize,
        };
        let readiness = Readiness::new(admitter.clone());
        let registry = Arc::new(registry);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let app =
            server::webhook_router(admitter, readiness.clone(), metrics.clone(), limits.clone());
        let admin_app = server::admin_router(registry, readiness.clone(), metrics.clone());
        let servers = vec![
            tokio::spawn(server::serve_tls(
                https,
                tls_config,
                app,
                limits,
                metrics,
                shutdown_rx.clone(),
            )),
            tokio::spawn(server::serve_plain(
                admin,
                admin_app,
                shutdown_rx,
                config.shutdown_grace,
            )),
        ];
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            https = %https_addr,
            admin = %admin_addr,
            cert_reload = config.cert_reload,
            random_hostname = config.random_hostname,
            "gmsa-webhook serving"
        );
        Ok(Self {
            https_addr,
            admin_addr,
            readiness,
            shutdown,
            shutdown_delay: config.shutdown_delay,
            servers,
            background,
        })
    }

    /// The bound HTTPS address (useful with `--https-port 0`).
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Graceful stop: readiness fails at once; after `--shutdown-delay` the listeners close,
    /// in-flight requests finish within `--shutdown-grace`, then background tasks stop.
    pub async fn shutdown(self) {
        self.readiness.begin_shutdown();
        if !self.shutdown_delay.is_zero() {
            tracing::info!(delay = ?self.shutdown_delay, "not ready; still serving before closing the listeners");
            tokio::time::sleep(self.shutdown_delay).await;
        }
        let _ = self.shutdown.send(true);
        for server in self.servers {
            let _ = server.await;
        }
        for task in self.background {
            task.abort();
        }
        tracing::info!("gmsa-webhook stopped");
    }
}

/// Runs the blocking `check` on tokio's blocking pool every `interval`, forever (abort the
/// task to stop). Used by the file watchers: certificates, credspec directory, policy file.
pub(crate) async fn poll_blocking<T, F>(
    target: Arc<T>,
    interval: Duration,
    what: &'static str,
    check: F,
) where
    T: Send + Sync + 'static,
    F: Fn(&T) + Copy + Send + 'static,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let target = target.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || check(&target)).await {
            tracing::error!(error = %e, "{what} check failed");
        }
    }
}

async fn bind(config: &Config, port: u16, flag: &str) -> anyhow::Result<TcpListener> {
    let addr = SocketAddr::new(config.bind_address, port);
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({flag}, --bind-address)"))
}

/// The spec store and authorizer for `config`: standalone (directory + policy) when
/// `--credspecs-dir` is set, else the Kubernetes backend.
async fn lookups(
    config: &Config,
    registry: &mut Registry,
    background: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<(Arc<dyn SpecStore>, Arc<dyn Authorizer>)> {
    if let Some(dir) = &config.credspecs_dir {
        tracing::warn!(
            credspecs_dir = %dir.display(),
            "standalone mode: not for production (specs from files, authorization from {})",
            match &config.authz_policy {
                Some(p) => format!("policy file {}", p.display()),
                None => "--allow-all-use: every service account may use every spec".to_string(),
            }
        );
        let store = Arc::new(standalone::DirSpecStore::load(dir)?);
        tracing::info!(credspecs = ?store.names(), "credspecs loaded");
        background.push(tokio::spawn(store.clone().watch(config.reload_interval)));
        let authz: Arc<dyn Authorizer> = match &config.authz_policy {
            Some(path) => {
                let policy = Arc::new(standalone::PolicyAuthorizer::load(path)?);
                background.push(tokio::spawn(policy.clone().watch(config.reload_interval)));
                policy
            }
            None if config.allow_all_use => Arc::new(standalone::AllowAll),
            None => anyhow::bail!("standalone mode needs --authz-policy FILE or --allow-all-use"),
        };
        return Ok((store, authz));
    }
    let client = kube_backend::client(config.qps as f32, config.burst, config.api_timeout).await?;
    let (store, task) = kube_backend::KubeSpecStore::start(
        client.clone(),
        kube_backend::SpecStoreConfig {
            timeout: config.api_timeout,
            max_staleness: config.max_cache_staleness,
        },
        registry,
    );
    background.push(task);
    let authz = kube_backend::KubeAuthorizer::new(
        client,
        kube_backend::AuthorizerConfig {
            allowed_ttl: config.authz_cache_ttl,
            denied_ttl: config.authz_cache_ttl.min(kube_backend::MAX_DENIED_TTL),
            timeout: config.api_timeout,
            ..kube_backend::AuthorizerConfig::default()
        },
        registry,
    );
    Ok((store, Arc::new(authz)))
}

/// Runs the webhook until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let webhook = Webhook::start(&config).await?;
    let signal = wait_for_signal().await?;
    tracing::info!(signal, "shutting down");
    webhook.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        Ok("Ctrl-C")
    }
}
