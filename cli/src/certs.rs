//! `gmsa certs issue|renew|inspect`: the webhook's serving certificate through the
//! certificates.k8s.io/v1 CSR API (see the `gmsa-certs` crate for the flow).

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use gmsa_certs::cert::{inspect, key_matches, now_unix, parse_pem_chain, rfc3339, CertInfo};
use gmsa_certs::duration::{format_duration, format_secs, parse_duration, secs};
use gmsa_certs::flow::{issue, Action, IssueOptions, IssueReport, Progress};
use gmsa_certs::keys::{load_key, KeyType};
use gmsa_certs::request::{CertRequest, KUBELET_SERVING};
use gmsa_certs::write::secret_texts;
use k8s_openapi::api::core::v1::Secret;

use crate::cluster::ClusterArgs;

/// `gmsa certs` subcommands.
#[derive(clap::Subcommand)]
pub enum CertsCommand {
    /// Issue the webhook's serving certificate through a CertificateSigningRequest and write it
    /// to a kubernetes.io/tls Secret and/or a directory; set caBundle on webhook configurations.
    /// Does nothing when a valid certificate is already in place (see --renew-before).
    Issue(IssueArgs),
    /// Re-issue when the certificate in place expires within --renew-before (for a CronJob);
    /// otherwise do nothing. Same flags as `issue`.
    Renew(IssueArgs),
    /// Show a certificate's subject, SANs, issuer and validity; exit code 1 if it expires
    /// within --warn-before (or its key does not match).
    Inspect(InspectArgs),
}

/// How to reach the cluster (like kubectl).
#[derive(clap::Args, Clone, Debug)]
pub struct KubeArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Namespace of the service and Secret (default: the context's namespace).
    #[arg(short = 'n', long, value_name = "NS")]
    namespace: Option<String>,
}

/// Output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// For people.
    #[default]
    Text,
    /// A machine-readable summary.
    Json,
}

/// Flags of `gmsa certs issue` and `gmsa certs renew`.
#[derive(clap::Args, Clone, Debug)]
pub struct IssueArgs {
    #[command(flatten)]
    kube: KubeArgs,
    /// The webhook's Service name S; the certificate covers S, S.N, S.N.svc, S.N.svc.<domain>.
    #[arg(long, value_name = "S")]
    service: String,
    /// Write a kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt) of this name in the namespace.
    #[arg(long, value_name = "NAME")]
    secret: Option<String>,
    /// Write tls.crt, tls.key (0600) and ca.crt into this directory (atomically).
    #[arg(long, value_name = "DIR")]
    certs_dir: Option<PathBuf>,
    /// The CSR signer.
    #[arg(long, value_name = "NAME", default_value = KUBELET_SERVING)]
    signer: String,
    /// Approve the CSR (needs approve on signers/NAME and update on
    /// certificatesigningrequests/approval). The default.
    #[arg(long, overrides_with = "no_approve")]
    approve: bool,
    /// Do not approve the CSR; wait for someone else to (kubectl certificate approve).
    #[arg(long, overrides_with = "approve")]
    no_approve: bool,
    /// Requested lifetime (spec.expirationSeconds); the signer may cap it.
    #[arg(long, value_name = "D", default_value = "8760h", value_parser = duration_arg)]
    duration: Duration,
    /// How long to wait for approval and signing.
    #[arg(long, value_name = "D", default_value = "5m", value_parser = duration_arg)]
    timeout: Duration,
    /// Re-issue when the certificate in place expires within this window.
    #[arg(long, value_name = "D", default_value = "720h", value_parser = duration_arg)]
    renew_before: Duration,
    /// Set caBundle on every webhook of the Mutating- and/or ValidatingWebhookConfiguration of
    /// this name (repeatable).
    #[arg(long, value_name = "NAME")]
    patch_webhook: Vec<String>,
    /// Print the CSR object and the API calls it would make; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Issue a new certificate even if the one in place is valid.
    #[arg(long)]
    overwrite: bool,
    /// The CSR object's name (default S.N).
    #[arg(long, value_name = "NAME")]
    csr_name: Option<String>,
    /// An extra DNS name for the certificate (repeatable).
    #[arg(long, value_name = "NAME")]
    dns_name: Vec<String>,
    /// An IP address for the certificate (repeatable).
    #[arg(long, value_name = "IP")]
    ip: Vec<IpAddr>,
    /// The cluster's DNS domain.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    cluster_domain: String,
    /// Key to generate: ecdsa-p256 or rsa2048 (rsa2048 needs --key-file: ring cannot
    /// generate RSA keys).
    #[arg(long, value_name = "TYPE", default_value = "ecdsa-p256")]
    key_type: KeyType,
    /// Use this existing private key (unencrypted PKCS#8 PEM) instead of generating one.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// The CA bundle that signs the certificate (default: ConfigMap kube-root-ca.crt in the
    /// namespace, else the kubeconfig's cluster CA).
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// Flags of `gmsa certs inspect`.
#[derive(clap::Args, Clone, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    kube: KubeArgs,
    /// Read tls.crt (and tls.key, to check the pair) from this kubernetes.io/tls Secret.
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "cert",
        required_unless_present = "cert"
    )]
    secret: Option<String>,
    /// Read this PEM certificate file.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Exit with code 1 if the certificate expires within this window.
    #[arg(long, value_name = "D", default_value = "720h", value_parser = duration_arg)]
    warn_before: Duration,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// Runs a `gmsa certs` subcommand.
pub fn run(cmd: CertsCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    match cmd {
        CertsCommand::Issue(args) => runtime.block_on(run_issue(args, false)),
        CertsCommand::Renew(args) => runtime.block_on(run_issue(args, true)),
        CertsCommand::Inspect(args) => runtime.block_on(run_inspect(args)),
    }
}

fn progress(p: &Progress) {
    let mut err = std::io::stderr().lock();
    let _ = match p {
        Progress::Step(msg) => writeln!(err, "gmsa: {msg}"),
        Progress::Waiting { what, elapsed } => writeln!(
            err,
            "gmsa: waiting for {what} ({} elapsed)",
            format_duration(*elapsed)
        ),
        Progress::Warning(msg) => writeln!(err, "warning: {msg}"),
    };
}

async fn run_issue(args: IssueArgs, renew: bool) -> anyhow::Result<ExitCode> {
    let verb = if renew { "renew" } else { "issue" };
    if args.secret.is_none() && args.certs_dir.is_none() && !args.dry_run {
        bail!(
            "gmsa certs {verb}: say where the certificate goes: --secret NAME and/or --certs-dir DIR \
             (without either the new private key would be lost)"
        );
    }
    if args.duration < Duration::from_secs(600) {
        bail!(
            "--duration {} is too short: the API server's minimum for spec.expirationSeconds is 10m",
            format_duration(args.duration)
        );
    }
    if args.key_type == KeyType::Rsa2048 && args.key_file.is_none() {
        return Err(gmsa_certs::CertsError::RsaGenerationUnavailable.into());
    }
    let config = args.kube.cluster.config().await?;
    let namespace = args
        .kube
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let kubeconfig_ca = config.root_cert.clone();
    let client = kube::Client::try_from(config).context("build the Kubernetes client")?;

    let mut request = CertRequest::new(&args.service, &namespace)?;
    request.signer = args.signer.clone();
    request.extra_dns = args.dns_name.clone();
    request.ips = args.ip.clone();
    request.cluster_domain = args.cluster_domain.clone();
    let mut opts = IssueOptions::new(request);
    opts.csr_name = args.csr_name.clone();
    opts.key_type = args.key_type;
    if let Some(path) = &args.key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read --key-file {}", path.display()))?;
        // Fail on a bad key before talking to the cluster.
        let key = load_key(&text, &path.display().to_string())?;
        let family = gmsa_certs::keys::key_family(&key);
        if args.key_type == KeyType::Rsa2048 && family != gmsa_certs::keys::KeyFamily::Rsa {
            bail!(
                "--key-type rsa2048 but --key-file {} is not an RSA key",
                path.display()
            );
        }
        opts.key_pem = Some((path.display().to_string(), text));
    }
    opts.approve = !args.no_approve;
    opts.duration = Some(args.duration);
    opts.timeout = args.timeout;
    opts.secret = args.secret.clone();
    opts.certs_dir = args.certs_dir.clone();
    opts.patch_webhooks = args.patch_webhook.clone();
    if let Some(path) = &args.ca_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read --ca-file {}", path.display()))?;
        opts.ca_file = Some((path.clone(), text));
    }
    opts.kubeconfig_ca = kubeconfig_ca;
    opts.overwrite = args.overwrite;
    opts.renew_before = args.renew_before;
    opts.dry_run = args.dry_run;

    let report = issue(client, &opts, &progress).await?;
    match args.output {
        Output::Json => {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Output::Text => print_report(&report, &opts)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn print_cert(out: &mut impl std::io::Write, info: &CertInfo) -> std::io::Result<()> {
    let left = info.not_after - now_unix();
    writeln!(out, "  Subject:    {}", info.subject)?;
    writeln!(out, "  Issuer:     {}", info.issuer)?;
    let mut sans: Vec<String> = info.dns_names.clone();
    sans.extend(info.ip_addresses.iter().map(IpAddr::to_string));
    writeln!(out, "  SANs:       {}", sans.join(", "))?;
    writeln!(out, "  Not before: {}", rfc3339(info.not_before))?;
    if left > 0 {
        writeln!(
            out,
            "  Not after:  {} (in {})",
            rfc3339(info.not_after),
            format_secs(left)
        )?;
    } else {
        writeln!(
            out,
            "  Not after:  {} (expired {} ago)",
            rfc3339(info.not_after),
            format_secs(-left)
        )?;
    }
    writeln!(out, "  Serial:     {}", info.serial)
}

fn print_report(report: &IssueReport, opts: &IssueOptions) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match report.action {
        Action::Issued => writeln!(
            out,
            "Issued a certificate for {} (CSR {}, signer {}): {}",
            opts.request.service_host(),
            report.csr_name,
            report.signer,
            report.reason
        )?,
        Action::Unchanged => writeln!(
            out,
            "Nothing to do: the certificate in place is valid beyond the renewal window ({}); use --overwrite to issue anyway",
            format_duration(opts.renew_before)
        )?,
        Action::DryRun => {
            writeln!(out, "Dry run: nothing was changed.")?;
            if let Some(csr) = &report.csr_object {
                writeln!(out, "Would create this CertificateSigningRequest:")?;
                writeln!(out, "---")?;
                write!(out, "{}", serde_norway::to_string(csr)?)?;
            } else {
                writeln!(out, "No certificate would be issued: {}.", report.reason)?;
            }
            writeln!(out, "API calls (reads were made; writes were not):")?;
            for call in &report.calls {
                writeln!(out, "  {} {}  # {}", call.method, call.path, call.what)?;
            }
            return Ok(());
        }
    }
    if let Some(secret) = &report.secret {
        writeln!(out, "  Secret:     {secret}")?;
    }
    if let Some(dir) = &report.certs_dir {
        writeln!(out, "  Directory:  {}", dir.display())?;
    }
    if let Some(info) = &report.certificate {
        print_cert(&mut out, info)?;
    }
    writeln!(out, "  CA bundle:  {}", report.ca_source)?;
    if !report.webhooks_patched.is_empty() {
        writeln!(
            out,
            "  caBundle set in: {}",
            report.webhooks_patched.join(", ")
        )?;
    }
    Ok(())
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct InspectReport {
    source: String,
    #[serde(flatten)]
    certificate: CertInfo,
    expires_in_seconds: i64,
    key_matches: Option<bool>,
    expires_within_warn_window: bool,
}

async fn run_inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let (source, cert_pem, key_pem) = match (&args.secret, &args.cert) {
        (Some(name), _) => {
            let config = args.kube.cluster.config().await?;
            let ns = args
                .kube
                .namespace
                .clone()
                .unwrap_or_else(|| config.default_namespace.clone());
            let client = kube::Client::try_from(config).context("build the Kubernetes client")?;
            let api: kube::Api<Secret> = kube::Api::namespaced(client, &ns);
            let secret = api.get(name).await.with_context(|| {
                format!("get Secret {ns}/{name} (needs verb \"get\" on secrets in namespace {ns})")
            })?;
            let [c, k, _] = secret_texts(&secret);
            let c = c.with_context(|| format!("Secret {ns}/{name} has no tls.crt"))?;
            (format!("Secret {ns}/{name}"), c, k)
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read {}", path.display()))?;
            // tls.key next to tls.crt (a --certs-dir) is checked too.
            let key = path
                .parent()
                .map(|d| d.join("tls.key"))
                .filter(|_| path.file_name().is_some_and(|n| n == "tls.crt"))
                .and_then(|k| std::fs::read_to_string(k).ok());
            (path.display().to_string(), text, key)
        }
        (None, None) => bail!("say which certificate: --secret NAME or --cert FILE"),
    };
    let chain = parse_pem_chain(&cert_pem, &source)?;
    let info = inspect(&chain[0], &source)?;
    let key_ok = match &key_pem {
        Some(k) => Some(key_matches(&chain[0], &load_key(k, &source)?, &source)?),
        None => None,
    };
    let left = info.not_after - now_unix();
    let warn = secs(args.warn_before);
    let expiring = left <= warn;
    let report = InspectReport {
        source,
        certificate: info,
        expires_in_seconds: left,
        key_matches: key_ok,
        expires_within_warn_window: expiring,
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Text => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}:", report.source)?;
            print_cert(&mut out, &report.certificate)?;
            if let Some(ok) = key_ok {
                writeln!(
                    out,
                    "  Key:        {}",
                    if ok {
                        "matches the certificate"
                    } else {
                        "DOES NOT match the certificate"
                    }
                )?;
            }
        }
    }
    if expiring {
        eprintln!(
            "warning: {} expires within {} ({})",
            report.source,
            format_secs(warn),
            if left > 0 {
                format!("in {}", format_secs(left))
            } else {
                "already expired".to_string()
            }
        );
    }
    if key_ok == Some(false) {
        eprintln!("warning: {}: tls.key does not match tls.crt", report.source);
    }
    Ok(if expiring || key_ok == Some(false) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
