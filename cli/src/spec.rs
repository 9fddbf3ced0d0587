//! `gmsa spec from-file | new | validate` and `gmsa crd`.
//!
//! Other spec commands (e.g. `from-dc`) reuse [`OutputArgs`] (flattened into their clap args)
//! and [`emit`] so every command that produces a spec names, validates, prints and applies it
//! the same way.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use gmsa_crd::{
    check_name, default_name, has_errors, read_document, validate, CredSpec, Document, DomainInfo,
    GMSACredentialSpec, HostAccount, NewCredSpec, Problem,
};

const FROM_FILE_EXAMPLES: &str = "\
Examples:
  # The file New-CredentialSpec wrote (UTF-8 or UTF-16, as PowerShell's > writes it):
  gmsa spec from-file gmsa-cred-spec.txt
  # Name the resource and print JSON:
  gmsa spec from-file gmsa-cred-spec.txt --name webapp01 -o json
  # Upgrade a windows.k8s.io/v1alpha1 manifest to v1 and apply it to the current cluster:
  gmsa spec from-file old-spec.yaml --apply
  # From standard input:
  cat gmsa-cred-spec.txt | gmsa spec from-file -";

const NEW_EXAMPLES: &str = "\
Examples:
  gmsa spec new --account WebApp01 --dns-name contoso.com --netbios-name CONTOSO \\
    --sid S-1-5-21-2126729477-2524075714-3094792973 \\
    --guid 244818ae-87ca-4fcd-92ec-e79e5252348a
  # Two more accounts, one of them in a trusted domain, and the CCG plugin for hosts that
  # are not domain joined:
  gmsa spec new --account WebApp01 --dns-name contoso.com --netbios-name CONTOSO \\
    --sid S-1-5-21-2126729477-2524075714-3094792973 \\
    --guid 244818ae-87ca-4fcd-92ec-e79e5252348a \\
    --additional-account Batch01 --additional-account Reports@fabrikam.com \\
    --ccg-plugin-guid 859E1386-BDB4-49E8-85C7-3070B13920E1 \\
    --ccg-plugin-input contoso.com:gmsa-cred-reader:secret-name";

const VALIDATE_EXAMPLES: &str = "\
Examples:
  gmsa spec validate gmsa-cred-spec.txt
  gmsa spec validate examples/*.yaml
Exit code: 0 when no file has errors (warnings allowed), 1 otherwise.";

/// `gmsa spec` subcommands.
#[derive(clap::Subcommand)]
pub enum SpecCommand {
    /// Turn a credential spec file (New-CredentialSpec output) or a GMSACredentialSpec
    /// manifest (v1 or v1alpha1, YAML or JSON) into a windows.k8s.io/v1 manifest.
    ///
    /// Reads UTF-8 (with or without BOM) and UTF-16 with BOM, CRLF or LF. The spec is
    /// validated first; on errors nothing is printed or applied (exit code 1).
    #[command(after_help = FROM_FILE_EXAMPLES)]
    FromFile(FromFileArgs),
    /// Build the credential spec New-CredentialSpec would, without Windows.
    #[command(after_help = NEW_EXAMPLES)]
    New(NewArgs),
    /// Check credential specs or GMSACredentialSpec manifests and print every problem with
    /// its JSON path and a fix.
    #[command(after_help = VALIDATE_EXAMPLES)]
    Validate(ValidateArgs),
    /// Build the credential spec New-CredentialSpec would, reading the domain over LDAP
    /// (LDAPS or StartTLS): names, SID and GUID; each gMSA must exist and be enabled.
    #[command(after_help = crate::ad::FROM_DC_HELP)]
    FromDc(crate::ad::FromDcArgs),
    /// Check a credential spec against the domain: Sid, Guid, NetBiosName, DnsName,
    /// DnsTreeName; every gMSA exists and is enabled; who may retrieve each password and
    /// whether each --node may.
    #[command(after_help = crate::ad::VERIFY_HELP)]
    Verify(crate::ad::VerifyArgs),
}

/// Output options shared by every command that produces a spec.
#[derive(clap::Args, Clone, Debug)]
pub struct OutputArgs {
    /// Resource name. Default: a manifest's own name, else the lower-cased
    /// DomainJoinConfig.MachineAccountName with `_` turned into `-`.
    #[arg(long)]
    pub name: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
    /// Server-side apply the manifest to the cluster of the current kubeconfig (field
    /// manager `gmsa`) instead of printing it.
    #[arg(long)]
    pub apply: bool,
    /// Go on although validation found errors; with --apply, also take over fields that
    /// another field manager owns.
    #[arg(long)]
    pub force: bool,
}

/// `-o` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// A GMSACredentialSpec manifest as YAML.
    Yaml,
    /// A GMSACredentialSpec manifest as JSON.
    Json,
    /// Only the credential spec JSON (what New-CredentialSpec writes).
    CredspecJson,
}

/// `gmsa spec from-file`.
#[derive(clap::Args)]
pub struct FromFileArgs {
    /// The file to read, or `-` for standard input.
    pub file: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `gmsa spec new`.
#[derive(clap::Args)]
pub struct NewArgs {
    /// The gMSA's account name, without the trailing $.
    #[arg(long)]
    pub account: String,
    /// The domain's DNS name, e.g. contoso.com.
    #[arg(long)]
    pub dns_name: String,
    /// The domain's NetBIOS name, e.g. CONTOSO.
    #[arg(long = "netbios-name")]
    pub netbios_name: String,
    /// The domain SID, S-1-5-21-N-N-N ((Get-ADDomain).DomainSID).
    #[arg(long)]
    pub sid: String,
    /// The domain's objectGUID ((Get-ADDomain).ObjectGUID).
    #[arg(long)]
    pub guid: String,
    /// The forest's DNS name. Default: --dns-name.
    #[arg(long)]
    pub tree_name: Option<String>,
    /// Another gMSA: NAME (same domain, both scopes) or NAME@DOMAIN. Repeatable.
    #[arg(long = "additional-account", value_name = "NAME[@DOMAIN]")]
    pub additional_accounts: Vec<String>,
    /// COM class id of the CCG plugin (HostAccountConfig), braced or not.
    #[arg(long, requires = "ccg_plugin_input")]
    pub ccg_plugin_guid: Option<String>,
    /// Input for the CCG plugin (HostAccountConfig.PluginInput).
    #[arg(long, requires = "ccg_plugin_guid")]
    pub ccg_plugin_input: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `gmsa spec validate`.
#[derive(clap::Args)]
pub struct ValidateArgs {
    /// Files to check (`-` for standard input).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Runs a `gmsa spec` subcommand.
pub fn run(cmd: SpecCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SpecCommand::FromFile(args) => from_file(&args),
        SpecCommand::New(args) => new(&args),
        SpecCommand::Validate(args) => validate_files(&args.files),
        SpecCommand::FromDc(args) => crate::ad::run_from_dc(args),
        SpecCommand::Verify(args) => crate::ad::run_verify(args),
    }
}

/// `gmsa crd`: prints the CustomResourceDefinition.
pub fn print_crd() -> anyhow::Result<ExitCode> {
    let yaml = gmsa_crd::crd_yaml().context("rendering the CRD as YAML")?;
    write_stdout(&yaml)?;
    Ok(ExitCode::SUCCESS)
}

/// How `path` is named in messages (`-` is `<stdin>`).
pub(crate) fn display(path: &std::path::Path) -> String {
    if path.as_os_str() == "-" {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    }
}

/// Reads a credential spec or manifest from `path` (`-` for standard input), errors naming it.
pub(crate) fn read(path: &std::path::Path) -> anyhow::Result<Document> {
    let shown = display(path);
    let doc = if path.as_os_str() == "-" {
        read_document(io::stdin().lock())
    } else {
        let file = File::open(path).with_context(|| format!("{shown}: cannot open"))?;
        read_document(file)
    };
    doc.with_context(|| shown.clone())
}

fn from_file(args: &FromFileArgs) -> anyhow::Result<ExitCode> {
    let shown = display(&args.file);
    let doc = read(&args.file)?;
    let spec = doc.typed().with_context(|| shown.clone())?;
    let resource = |name: &str| doc.to_resource(name);
    emit(
        &shown,
        doc.path_prefix(),
        &spec,
        doc.name(),
        &resource,
        &args.output,
    )
}

fn new(args: &NewArgs) -> anyhow::Result<ExitCode> {
    let params = NewCredSpec {
        account: args.account.clone(),
        domain: DomainInfo {
            dns_name: args.dns_name.clone(),
            net_bios_name: args.netbios_name.clone(),
            sid: args.sid.clone(),
            guid: args.guid.clone(),
            dns_tree_name: args.tree_name.clone(),
        },
        additional_accounts: args.additional_accounts.clone(),
        host_account: match (&args.ccg_plugin_guid, &args.ccg_plugin_input) {
            (Some(plugin_guid), Some(plugin_input)) => Some(HostAccount {
                plugin_guid: plugin_guid.clone(),
                plugin_input: plugin_input.clone(),
            }),
            _ => None,
        },
    };
    let spec = CredSpec::build(&params);
    let resource = |name: &str| GMSACredentialSpec::new(name, &spec);
    emit("gmsa spec new", "", &spec, None, &resource, &args.output)
}

/// Validates `spec`, reports problems on stderr as `SOURCE: severity: PREFIX+path: message
/// (fix: hint)`, refuses on errors (unless `--force`), picks the name (`--name`, else
/// `manifest_name`, else [`default_name`]), then prints or applies `resource(name)`.
/// Nothing goes to stdout (or to the cluster) when it fails.
pub fn emit(
    source: &str,
    path_prefix: &str,
    spec: &CredSpec,
    manifest_name: Option<&str>,
    resource: &dyn Fn(&str) -> GMSACredentialSpec,
    out: &OutputArgs,
) -> anyhow::Result<ExitCode> {
    let problems = validate(spec);
    report(&mut io::stderr().lock(), source, path_prefix, &problems)?;
    let errors = problems.iter().filter(|p| p.is_error()).count();
    if errors > 0 && !out.force {
        bail!(
            "{source}: {errors} error(s) in the credential spec; nothing written (fix them, or pass --force to go on anyway)"
        );
    }
    let name = match (&out.name, manifest_name) {
        (Some(name), _) => {
            check_name(name).context("--name")?;
            name.clone()
        }
        (None, Some(name)) => {
            check_name(name).with_context(|| format!("{source}: metadata.name"))?;
            name.to_string()
        }
        (None, None) => default_name(spec).with_context(|| source.to_string())?,
    };
    let resource = resource(&name);
    if out.apply {
        let applied = apply(&resource, out.force)?;
        write_stdout(&format!(
            "{}.{}/{} serverside-applied\n",
            gmsa_crd::SINGULAR,
            gmsa_crd::GROUP,
            applied.name()
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let text = match out.output {
        OutputFormat::Yaml => resource.to_yaml().context("rendering YAML")?,
        OutputFormat::Json => resource.to_json_pretty().context("rendering JSON")? + "\n",
        OutputFormat::CredspecJson => {
            resource
                .credspec_to_json_pretty()
                .context("rendering JSON")?
                + "\n"
        }
    };
    write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn apply(resource: &GMSACredentialSpec, force: bool) -> anyhow::Result<GMSACredentialSpec> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // kube's errors repeat their sources in their own text: show them once, not as a chain.
        let client = kube::Client::try_default().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot use the cluster of the current kubeconfig ($KUBECONFIG or ~/.kube/config): {e}"
            )
        })?;
        gmsa_crd::apply(client, resource, force).await.map_err(|e| {
            anyhow::anyhow!(
                "server-side applying GMSACredentialSpec {} (is the CRD installed? `gmsa crd | kubectl apply -f -`): {e}",
                resource.name()
            )
        })
    })
}

fn report(w: &mut dyn Write, source: &str, prefix: &str, problems: &[Problem]) -> io::Result<()> {
    for p in problems {
        let path = format!("{prefix}{}", p.path);
        let path = if path.is_empty() {
            "."
        } else {
            path.trim_end_matches('.')
        };
        write!(w, "{source}: {}: {path}: {}", p.severity, p.message)?;
        if !p.hint.is_empty() {
            write!(w, " (fix: {})", p.hint)?;
        }
        writeln!(w)?;
    }
    Ok(())
}

fn validate_files(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut stdout = io::stdout().lock();
    let mut failed = 0usize;
    for file in files {
        let shown = display(file);
        let checked = read(file).and_then(|doc| {
            let spec = doc.typed().with_context(|| shown.clone())?;
            Ok((doc.path_prefix(), validate(&spec)))
        });
        match checked {
            Err(err) => {
                failed += 1;
                writeln!(stdout, "error: {err:#}")?;
            }
            Ok((prefix, problems)) => {
                report(&mut stdout, &shown, prefix, &problems)?;
                if has_errors(&problems) {
                    failed += 1;
                } else {
                    let warnings = problems.len();
                    let note = if warnings == 0 {
                        String::new()
                    } else {
                        format!(" ({warnings} warning(s))")
                    };
                    writeln!(stdout, "{shown}: ok{note}")?;
                }
            }
        }
    }
    stdout.flush()?;
    if failed > 0 {
        eprintln!("{failed} of {} file(s) have errors", files.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to standard output")
}
