//! `gmsa spec from-dc` and `gmsa spec verify`: read the domain over LDAP (gmsa-ad) to build a
//! credential spec the way `New-CredentialSpec` does, or to check one before pods use it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use gmsa_ad::{facts_for, verify, AdError, ConnectOptions, Credentials, Directory};
use gmsa_crd::{CredSpec, GMSACredentialSpec, NewCredSpec};

use crate::ccg::CcgArgs;
use crate::output::{display, emit, fetch_spec, read, OutputArgs};

/// Examples shown after `gmsa spec from-dc --help`.
pub const FROM_DC_HELP: &str = "\
Examples:
  gmsa spec from-dc --account WebApp01 --server ldaps://dc1.contoso.com \\
    --ca-file contoso-ca.pem --bind-dn 'reader@CONTOSO.COM' --password-file reader.pw
  # Two more gMSAs (one in a trusted domain, written with that scope, not checked here),
  # applied to the cluster:
  gmsa spec from-dc --account WebApp01 --additional-account Batch01 \\
    --additional-account Reports@fabrikam.com --server ldap://dc1.contoso.com \\
    --bind-dn 'CN=reader,CN=Users,DC=contoso,DC=com' --password-file reader.pw --apply
  # For EKS nodes that are not domain joined (AWS CCG plugin):
  gmsa spec from-dc --account WebApp01 --server ldaps://dc1.contoso.com --ca-file ca.pem \\
    --bind-dn 'reader@CONTOSO.COM' --password-file reader.pw \\
    --ccg aws --credential-arn arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-reader
  # With your Kerberos ticket instead of a password (gmsa built with --features kerberos):
  kinit reader@CONTOSO.COM
  gmsa spec from-dc --account WebApp01 --server ldaps://dc1.contoso.com --kerberos";

/// Examples shown after `gmsa spec verify --help`.
pub const VERIFY_HELP: &str = "\
Examples:
  gmsa spec verify gmsa-cred-spec.txt --server ldaps://dc1.contoso.com --ca-file ca.pem \\
    --bind-dn 'reader@CONTOSO.COM' --password-file reader.pw --node 'WINNODE1$'
  # The spec stored in the cluster:
  gmsa spec verify --name webapp01 --server ldaps://dc1.contoso.com ...
Exit code: 0 when the spec matches the domain, 1 with one line per problem and its fix.";

/// How to reach and bind to the domain controller.
#[derive(clap::Args, Clone, Debug)]
pub struct DcArgs {
    /// The domain controller: ldaps://HOST[:PORT], or ldap://HOST[:PORT] (StartTLS). The
    /// certificate is checked against the system CAs or --ca-file.
    #[arg(long, value_name = "URL")]
    pub server: String,
    #[command(flatten)]
    pub bind: DcBind,
}

/// How to trust and bind to the domain controller (with `--server`: [`DcArgs`], or
/// `gmsa doctor`'s optional `--server`).
#[derive(clap::Args, Clone, Debug)]
pub struct DcBind {
    /// PEM file with the CA that issued the domain controller's certificate.
    #[arg(long, value_name = "FILE", requires = "server")]
    pub ca_file: Option<PathBuf>,
    /// The DN (or user@REALM) to bind as; any domain user can read what is needed.
    #[arg(long, value_name = "DN", requires = "server")]
    pub bind_dn: Option<String>,
    /// A file holding the bind password (first line; keeps it out of the process list).
    #[arg(long, value_name = "FILE", requires = "server")]
    pub password_file: Option<PathBuf>,
    /// Bind with Kerberos (SASL GSSAPI) as the principal of your credential cache (kinit
    /// first; KRB5CCNAME selects the cache) instead of --bind-dn/--password-file. Needs a
    /// gmsa built with `--features kerberos`.
    #[arg(long, conflicts_with_all = ["bind_dn", "password_file"], requires = "server")]
    pub kerberos: bool,
    /// With --kerberos: the DC's DNS host name, for its service principal ldap/FQDN
    /// (default: the --server host, or the DC's dnsHostName when --server is an IP address).
    #[arg(long, value_name = "FQDN", requires = "kerberos")]
    pub server_name: Option<String>,
}

/// `--timeout` of the commands that only talk to the domain controller.
#[derive(clap::Args, Clone, Debug)]
pub struct DcTimeout {
    /// Connect and operation timeout in seconds.
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    pub timeout: u64,
}

/// `gmsa spec from-dc`.
#[derive(clap::Args)]
pub struct FromDcArgs {
    /// The gMSA (sAMAccountName without the trailing $).
    #[arg(long)]
    pub account: String,
    /// Another gMSA: NAME or NAME@THIS-DOMAIN (checked, both scopes) or NAME@DOMAIN (another
    /// domain: written with that scope, not checked). Repeatable.
    #[arg(long = "additional-account", value_name = "NAME[@DOMAIN]")]
    pub additional_accounts: Vec<String>,
    #[command(flatten)]
    pub dc: DcArgs,
    #[command(flatten)]
    pub dc_timeout: DcTimeout,
    #[command(flatten)]
    pub ccg: CcgArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `gmsa spec verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// A credential spec file or GMSACredentialSpec manifest (`-` for standard input).
    #[arg(required_unless_present = "name", conflicts_with = "name")]
    pub file: Option<PathBuf>,
    /// Verify the GMSACredentialSpec of this name from the cluster of the current kubeconfig.
    #[arg(long)]
    pub name: Option<String>,
    /// A node's computer account (NAME$) that must be able to retrieve every gMSA's password.
    /// Repeatable.
    #[arg(long = "node", value_name = "COMPUTER$")]
    pub nodes: Vec<String>,
    #[command(flatten)]
    pub dc: DcArgs,
    #[command(flatten)]
    pub dc_timeout: DcTimeout,
}

fn connect(args: &DcArgs, timeout: &DcTimeout) -> anyhow::Result<Directory> {
    let timeout = Duration::from_secs(timeout.timeout.max(1));
    Ok(Directory::connect(&connect_options(
        &args.server,
        &args.bind,
        timeout,
    )?)?)
}

/// The connection to `server` that `args` describe, each operation bounded by `timeout`
/// (reads the password file).
pub fn connect_options(
    server: &str,
    args: &DcBind,
    timeout: Duration,
) -> anyhow::Result<ConnectOptions> {
    let credentials = match (&args.bind_dn, &args.password_file) {
        _ if args.kerberos => Credentials::Kerberos {
            server_name: args.server_name.clone(),
        },
        (Some(bind_dn), Some(password_file)) => {
            let password = std::fs::read_to_string(password_file).with_context(|| {
                format!("--password-file {}: cannot read", password_file.display())
            })?;
            let password = password.lines().next().unwrap_or("").to_string();
            if password.is_empty() {
                bail!(
                    "--password-file {}: empty; put the bind password on its first line",
                    password_file.display()
                );
            }
            Credentials::Simple {
                bind_dn: bind_dn.clone(),
                password,
            }
        }
        _ => bail!("give --bind-dn DN and --password-file FILE, or --kerberos"),
    };
    let options = ConnectOptions {
        server: server.to_string(),
        ca_file: args.ca_file.clone(),
        credentials,
        timeout,
    };
    Ok(options)
}

/// Reads one gMSA and refuses what `New-CredentialSpec` would refuse.
fn require_gmsa(dir: &mut Directory, name: &str, domain: &str) -> Result<(), AdError> {
    let account = dir.account(name)?.ok_or_else(|| AdError::AccountNotFound {
        name: name.to_string(),
        domain: domain.to_string(),
    })?;
    if !account.is_gmsa() {
        return Err(AdError::NotGmsa {
            name: name.to_string(),
            dn: account.dn,
            classes: account.object_classes.join(", "),
        });
    }
    if !account.enabled() {
        return Err(AdError::Disabled {
            name: name.to_string(),
            dn: account.dn,
        });
    }
    Ok(())
}

/// `gmsa spec from-dc`.
pub fn run_from_dc(args: FromDcArgs) -> anyhow::Result<ExitCode> {
    let account = args.account.trim().trim_end_matches('$').to_string();
    let host_account = args.ccg.host_account()?;
    let mut dir = connect(&args.dc, &args.dc_timeout)?;
    let domain = dir.domain()?;
    require_gmsa(&mut dir, &account, &domain.dns_name)?;
    let mut additional = Vec::new();
    for extra in &args.additional_accounts {
        let extra = extra.trim();
        match extra.split_once('@') {
            Some((name, scope)) if !domain.is_named(scope) => {
                eprintln!("note: {name}@{scope} is in another domain; written with scope {scope}, not checked against {}", domain.dns_name);
                additional.push(extra.to_string());
            }
            Some((name, _)) => {
                require_gmsa(&mut dir, name.trim_end_matches('$'), &domain.dns_name)?;
                additional.push(extra.to_string());
            }
            None => {
                let name = extra.trim_end_matches('$');
                require_gmsa(&mut dir, name, &domain.dns_name)?;
                additional.push(name.to_string());
            }
        }
    }
    drop(dir);
    let spec = CredSpec::build(&NewCredSpec {
        account,
        domain: domain.info(),
        additional_accounts: additional,
        host_account,
    });
    let resource = |name: &str| GMSACredentialSpec::new(name, &spec);
    emit(&args.dc.server, "", &spec, None, &resource, &args.output)
}

/// `gmsa spec verify`.
pub fn run_verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (source, spec) = match (&args.file, &args.name) {
        (Some(file), _) => read_spec_file(file)?,
        (None, Some(name)) => (format!("GMSACredentialSpec {name}"), fetch_spec(name)?),
        (None, None) => bail!("give a FILE or --name NAME"),
    };
    let mut dir = connect(&args.dc, &args.dc_timeout)?;
    let facts = facts_for(&mut dir, &spec, &args.nodes)?;
    drop(dir);
    let report = verify(&spec, &facts);
    let mut out = std::io::stdout().lock();
    for note in &report.notes {
        writeln!(out, "{source}: note: {note}")?;
    }
    for readers in &report.readers {
        let listed: Vec<String> = readers
            .readers
            .iter()
            .map(|r| {
                if r.denied {
                    format!("{} (deny)", r.name)
                } else {
                    r.name.clone()
                }
            })
            .collect();
        let listed = if listed.is_empty() {
            "nobody".to_string()
        } else {
            listed.join(", ")
        };
        writeln!(
            out,
            "{source}: gMSA {}: may retrieve the password: {listed}",
            readers.account
        )?;
        for (node, allowed) in &readers.nodes {
            let verdict = if *allowed { "may" } else { "may NOT" };
            writeln!(
                out,
                "{source}: gMSA {}: node {node} {verdict} retrieve the password",
                readers.account
            )?;
        }
    }
    for problem in &report.problems {
        writeln!(out, "{source}: error: {problem}")?;
    }
    out.flush()?;
    if report.problems.is_empty() {
        writeln!(
            out,
            "{source}: ok: matches {} ({})",
            facts.domain.dns_name, facts.domain.netbios_name
        )?;
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{source}: {} problem(s) against {}",
            report.problems.len(),
            facts.domain.dns_name
        );
        Ok(ExitCode::FAILURE)
    }
}

fn read_spec_file(file: &std::path::Path) -> anyhow::Result<(String, CredSpec)> {
    let shown = display(file);
    let spec = read(file)?.typed().with_context(|| shown.clone())?;
    Ok((shown, spec))
}
