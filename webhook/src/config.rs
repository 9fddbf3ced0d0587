//! Command-line flags, each with an environment twin (the reference's names where it has one:
//! `TLS_CRT`, `TLS_KEY`, `HTTPS_PORT`, `LOG_LEVEL`, `QPS`, `BURST`, `RANDOM_HOSTNAME`,
//! `--cert-reload`). Invalid values stop startup with a message naming the flag; the
//! reference silently fell back to defaults.
//!
//! These names are a contract with the Helm chart: do not rename them.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, ArgGroup, CommandFactory, Parser, ValueEnum};

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for log collectors).
    Json,
    /// Human-readable lines (for local runs).
    Text,
}

/// The webhook's configuration.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "gmsa-webhook",
    version,
    about = "Admission webhook that inlines and guards Windows GMSA credential specs in pods",
    group(ArgGroup::new("standalone_authz").args(["authz_policy", "allow_all_use"]))
)]
pub struct Config {
    /// PEM certificate (chain) served on the HTTPS port. Required unless --self-signed.
    #[arg(
        long,
        env = "TLS_CRT",
        value_name = "FILE",
        required_unless_present = "self_signed"
    )]
    pub tls_crt: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-crt. Required unless --self-signed.
    #[arg(
        long,
        env = "TLS_KEY",
        value_name = "FILE",
        required_unless_present = "self_signed"
    )]
    pub tls_key: Option<PathBuf>,

    /// HTTPS port for /mutate, /validate, /health, /info (0 picks a free port).
    #[arg(long, env = "HTTPS_PORT", default_value_t = 443)]
    pub https_port: u16,

    /// Address both listeners bind to.
    #[arg(long, env = "BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,

    /// Plain-HTTP admin port: GET /metrics, /ready, /live (0 picks a free port).
    #[arg(long, env = "ADMIN_PORT", default_value_t = 9090)]
    pub admin_port: u16,

    /// error|warn|info|debug|trace (also the reference's warning|fatal|panic), or a tracing
    /// EnvFilter directive such as `info,gmsa_webhook=debug`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info", value_parser = parse_log_level)]
    pub log_level: String,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Accepted for compatibility with the reference's QPS (validated, not applied: kube-rs has
    /// no client-side limiter, and reviews are served from caches with ~0 API calls).
    #[arg(long, env = "QPS", default_value_t = 50.0, value_parser = parse_qps)]
    pub qps: f64,

    /// Accepted for compatibility with the reference's BURST (validated, not applied).
    #[arg(long, env = "BURST", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub burst: u32,

    /// Give GMSA pods without spec.hostname a random one (true|false).
    #[arg(
        long,
        env = "RANDOM_HOSTNAME",
        value_parser = BoolishValueParser::new(),
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub random_hostname: bool,

    /// Re-read --tls-crt/--tls-key when their content changes (also through a Kubernetes
    /// Secret's `..data` symlink swap). Cheap (two small reads per interval) and safe: a
    /// broken or mismatched new pair is refused and the old one kept.
    #[arg(long, env = "CERT_RELOAD", value_parser = BoolishValueParser::new(), action = ArgAction::SetTrue)]
    pub cert_reload: bool,

    /// Log a warning every hour once the served certificate expires within this (the chart's
    /// renewBefore, 720h, by default); its notAfter is also the gauge
    /// gmsa_webhook_certificate_not_after_seconds.
    #[arg(long, env = "CERT_EXPIRY_WARNING", default_value = "720h", value_parser = parse_duration)]
    pub cert_expiry_warning: Duration,

    /// How often --cert-reload and --credspecs-dir look for changes.
    #[arg(long, env = "RELOAD_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub reload_interval: Duration,

    /// How long authorization answers are cached (seconds, or with a unit: 500ms, 1m);
    /// "not allowed" answers for at most 5s; 0 disables the cache. The default is
    /// `kube_backend::DEFAULT_ALLOWED_TTL` (a test holds the two together).
    #[arg(long, env = "AUTHZ_CACHE_TTL", default_value = "10", value_parser = parse_duration)]
    pub authz_cache_ttl: Duration,

    /// Deadline for each Kubernetes API call made while admitting a pod, so a GMSA pod is
    /// denied well inside the API server's webhook timeout (10s by default).
    #[arg(long, env = "API_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub api_timeout: Duration,

    /// How long the credspec watch may stay broken before cached specs stop being used:
    /// past it, GMSA lookups read live from the API server (coalesced) until the watch
    /// recovers, and `/ready` says so (it stays ready). A spec deleted or changed during a
    /// watch outage is served from memory for at most this long.
    #[arg(long, env = "MAX_CACHE_STALENESS", default_value = "30s", value_parser = parse_duration)]
    pub max_cache_staleness: Duration,

    /// Deadline for a whole request (reading the body and answering).
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "8s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Largest accepted request body (bytes, or with KiB/MiB); larger gets 413 without the
    /// body being read. The default admits the largest UPDATE review an API server sends for
    /// objects etcd can store (arithmetic in docs/reliability.md, "Body limit").
    #[arg(long, env = "MAX_BODY_BYTES", default_value = "32MiB", value_parser = parse_bytes)]
    pub max_body_bytes: usize,

    /// Deadline for a TLS handshake and for a request's headers; on HTTP/1.1 it also closes
    /// a keep-alive connection idle for that long (slow clients cannot hold connections).
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// Most client connections open at once on the HTTPS port; beyond it new connections
    /// wait in the listen backlog until one closes.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// A connection with no request in flight for this long is closed (HTTP/2 and HTTP/1.1).
    #[arg(long, env = "IDLE_TIMEOUT", default_value = "90s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// On SIGTERM/SIGINT: how long in-flight requests may take before connections are
    /// dropped. Keep it below the pod's terminationGracePeriodSeconds (30s by default).
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// On SIGTERM/SIGINT: keep serving (with readiness failing) this long before closing
    /// the listeners, so endpoints stop routing here first. 0 closes at once.
    #[arg(long, env = "SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,

    /// Standalone mode (not for production): read GMSACredentialSpec manifests from this
    /// directory instead of the cluster. Needs --authz-policy or --allow-all-use.
    #[arg(
        long,
        env = "CREDSPECS_DIR",
        value_name = "DIR",
        requires = "standalone_authz"
    )]
    pub credspecs_dir: Option<PathBuf>,

    /// Standalone mode: YAML list of {namespace, serviceAccount, credspecs} (credspecs: a list
    /// of spec names) saying who may `use` which spec (`*` matches any).
    #[arg(
        long,
        env = "AUTHZ_POLICY",
        value_name = "FILE",
        requires = "credspecs_dir"
    )]
    pub authz_policy: Option<PathBuf>,

    /// Standalone mode: every service account may use every spec.
    #[arg(long, env = "ALLOW_ALL_USE", value_parser = BoolishValueParser::new(), action = ArgAction::SetTrue, requires = "credspecs_dir")]
    pub allow_all_use: bool,

    /// Serve a self-signed certificate generated at start (not for production).
    #[arg(long, env = "SELF_SIGNED", value_parser = BoolishValueParser::new(), action = ArgAction::SetTrue, conflicts_with_all = ["tls_crt", "tls_key"])]
    pub self_signed: bool,
}

impl Config {
    /// Parses the process arguments and environment; on an invalid combination prints the
    /// problem and exits with status 2, like any other usage error.
    pub fn parse_checked() -> Self {
        let config = Self::parse();
        if let Err(message) = config.check() {
            Self::command()
                .error(clap::error::ErrorKind::ArgumentConflict, message)
                .exit();
        }
        config
    }

    /// Cross-field checks clap cannot express.
    pub fn check(&self) -> Result<(), String> {
        for (name, value) in [
            ("--request-timeout", self.request_timeout),
            ("--api-timeout", self.api_timeout),
            ("--header-read-timeout", self.header_read_timeout),
            ("--idle-timeout", self.idle_timeout),
            ("--reload-interval", self.reload_interval),
            ("--max-cache-staleness", self.max_cache_staleness),
        ] {
            if value.is_zero() {
                return Err(format!("{name} must be greater than 0"));
            }
        }
        if self.api_timeout >= self.request_timeout {
            return Err(format!(
                "--api-timeout ({:?}) must be shorter than --request-timeout ({:?}) so an API \
                 failure is answered as a denial before the request times out",
                self.api_timeout, self.request_timeout
            ));
        }
        if self.max_body_bytes == 0 {
            return Err("--max-body-bytes must be greater than 0".to_string());
        }
        Ok(())
    }

    /// Whether the specs come from a directory instead of the cluster.
    pub fn standalone(&self) -> bool {
        self.credspecs_dir.is_some()
    }

    /// The tracing filter directive for --log-level. A bare level applies to this program;
    /// the HTTP/TLS libraries stay at `info` unless named in a full directive.
    pub fn log_directive(&self) -> String {
        log_directive(&self.log_level)
    }
}

const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

fn log_directive(level: &str) -> String {
    let lower = match level.to_ascii_lowercase().as_str() {
        // The reference's logrus names.
        "warning" => "warn".to_string(),
        "fatal" | "panic" => "error".to_string(),
        other => other.to_string(),
    };
    // rustls logs what a client sent wrong (e.g. an IP address as SNI) at warn, once per
    // handshake: any client could flood the log with it. Handshake failures are counted in
    // `/metrics` instead; a full EnvFilter directive can still turn rustls logs on.
    match lower.as_str() {
        "debug" | "trace" => {
            format!("{lower},hyper=info,hyper_util=info,h2=info,rustls=error,tower=info")
        }
        l if LEVELS.contains(&l) => format!("{lower},rustls=error"),
        _ => level.to_string(),
    }
}

fn parse_log_level(value: &str) -> Result<String, String> {
    let directive = log_directive(value);
    tracing_subscriber::EnvFilter::try_new(&directive)
        .map(|_| value.to_string())
        .map_err(|e| format!("{e}: expected error|warn|info|debug|trace or an EnvFilter directive"))
}

fn parse_qps(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(q) if q.is_finite() && q > 0.0 => Ok(q),
        _ => Err("expected a number greater than 0, e.g. 50 or 12.5".to_string()),
    }
}

/// Parses `3s`, `500ms`, `1m`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{value:?} is not a duration: expected e.g. 3s, 500ms, 1m or 10"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?}: use ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{value:?}: {e}"))
}

/// Parses `3145728`, `512KiB`, `3MiB`, `1KB`, `3MB`.
pub fn parse_bytes(value: &str) -> Result<usize, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{value:?} is not a size: expected e.g. 3145728, 512KiB or 3MiB"))?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "Ki" => 1024,
        "MiB" | "Mi" => 1024 * 1024,
        "KB" | "K" => 1000,
        "MB" | "M" => 1000 * 1000,
        other => return Err(format!("unknown size unit {other:?}: use KiB or MiB")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{value:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut all = vec!["gmsa-webhook"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).map_err(|e| e.to_string())
    }

    #[test]
    fn durations() {
        let cases = [
            ("3s", Some(3000)),
            ("500ms", Some(500)),
            ("1m", Some(60_000)),
            ("10", Some(10_000)),
            ("1.5s", Some(1500)),
            ("0", Some(0)),
            ("3 s", Some(3000)),
            ("s", None),
            ("3x", None),
            ("-1s", None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = parse_duration(text).ok().map(|d| d.as_millis() as u64);
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn sizes() {
        let cases = [
            ("3MiB", Some(3 * 1024 * 1024)),
            ("512KiB", Some(512 * 1024)),
            ("100", Some(100)),
            ("1MB", Some(1_000_000)),
            ("3GiB", None),
            ("x", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_bytes(text).ok(), want, "{text:?}");
        }
    }

    #[test]
    fn defaults() {
        let c = parse(&["--tls-crt", "c", "--tls-key", "k"]).expect("parses");
        assert_eq!(c.https_port, 443);
        assert_eq!(c.admin_port, 9090);
        assert_eq!(c.bind_address.to_string(), "0.0.0.0");
        assert_eq!(c.qps, 50.0);
        assert_eq!(c.burst, 100);
        assert!(!c.random_hostname);
        assert!(!c.cert_reload);
        assert_eq!(c.authz_cache_ttl, crate::kube_backend::DEFAULT_ALLOWED_TTL);
        assert_eq!(c.authz_cache_ttl, Duration::from_secs(10));
        assert_eq!(c.api_timeout, Duration::from_secs(3));
        assert_eq!(
            c.max_cache_staleness,
            crate::kube_backend::DEFAULT_MAX_STALENESS,
            "one default: the flag's and SpecStoreConfig's"
        );
        assert_eq!(c.request_timeout, Duration::from_secs(8));
        assert_eq!(c.max_body_bytes, 32 * 1024 * 1024);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.log_level, "info");
        assert!(!c.standalone());
        assert!(c.check().is_ok());
    }

    #[test]
    fn flag_combinations() {
        let ok: &[&[&str]] = &[
            &["--self-signed"],
            &["--tls-crt", "c", "--tls-key", "k", "--cert-reload"],
            &["--self-signed", "--credspecs-dir", "d", "--allow-all-use"],
            &[
                "--self-signed",
                "--credspecs-dir",
                "d",
                "--authz-policy",
                "p",
            ],
            &["--self-signed", "--random-hostname"],
            &["--self-signed", "--random-hostname", "false"],
            &["--self-signed", "--log-level", "info,gmsa_webhook=debug"],
            &[
                "--self-signed",
                "--log-level",
                "DEBUG",
                "--log-format",
                "text",
            ],
        ];
        for args in ok {
            parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
        let bad: &[(&[&str], &str)] = &[
            (&[], "--tls-crt"),
            (&["--tls-crt", "c"], "--tls-key"),
            (&["--self-signed", "--tls-crt", "c"], "cannot be used"),
            (&["--self-signed", "--credspecs-dir", "d"], "--authz-policy"),
            (&["--self-signed", "--allow-all-use"], "--credspecs-dir"),
            (
                &[
                    "--self-signed",
                    "--credspecs-dir",
                    "d",
                    "--allow-all-use",
                    "--authz-policy",
                    "p",
                ],
                "cannot be used",
            ),
            (&["--self-signed", "--https-port", "70000"], "70000"),
            (&["--self-signed", "--qps", "0"], "greater than 0"),
            (&["--self-signed", "--qps", "fast"], "greater than 0"),
            (&["--self-signed", "--burst", "0"], "--burst"),
            (&["--self-signed", "--random-hostname", "maybe"], "maybe"),
            (&["--self-signed", "--log-level", "loud=="], "EnvFilter"),
            (&["--self-signed", "--log-format", "xml"], "xml"),
            (&["--self-signed", "--api-timeout", "3 parsecs"], "unit"),
            (
                &["--self-signed", "--bind-address", "localhost"],
                "localhost",
            ),
        ];
        for (args, needle) in bad {
            let err = parse(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} should fail"));
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn cross_field_checks() {
        let c = parse(&["--self-signed", "--api-timeout", "9s"]).expect("parses");
        assert!(c.check().expect_err("invalid").contains("--api-timeout"));
        let c = parse(&["--self-signed", "--request-timeout", "0"]).expect("parses");
        assert!(c
            .check()
            .expect_err("invalid")
            .contains("--request-timeout"));
    }

    #[test]
    fn log_directives() {
        assert_eq!(log_directive("info"), "info,rustls=error");
        assert_eq!(log_directive("WARN"), "warn,rustls=error");
        assert_eq!(log_directive("warning"), "warn,rustls=error");
        assert_eq!(log_directive("fatal"), "error,rustls=error");
        assert!(log_directive("debug").starts_with("debug,hyper=info"));
        assert!(log_directive("debug").contains("rustls=error"));
        assert_eq!(log_directive("gmsa_webhook=trace"), "gmsa_webhook=trace");
    }
}
