//! `gmsa spec from-file | new | validate` and `gmsa crd`.
//!
//! Every command that produces a spec (here and `from-dc` in [`crate::ad`]) names, validates,
//! prints and applies it through [`crate::output`].

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use gmsa_crd::{has_errors, validate, CredSpec, DomainInfo, GMSACredentialSpec, NewCredSpec};

use crate::ccg::CcgArgs;
use crate::output::{display, emit, read, report, write_stdout, OutputArgs};

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
  # Two more accounts, one of them in a trusted domain, and the AWS CCG plugin for EKS
  # nodes that are not domain joined (the secret holds username, password, domainName):
  gmsa spec new --account WebApp01 --dns-name contoso.com --netbios-name CONTOSO \\
    --sid S-1-5-21-2126729477-2524075714-3094792973 \\
    --guid 244818ae-87ca-4fcd-92ec-e79e5252348a \\
    --additional-account Batch01 --additional-account Reports@fabrikam.com \\
    --ccg aws --credential-arn arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-reader
  # AKS (Azure Key Vault plugin) and Rancher nodes:
  gmsa spec new ... --ccg azure-key-vault --object-id 244818ae-87ca-4fcd-92ec-e79e5252348a \\
    --secret-uri https://myvault.vault.azure.net/secrets/gmsa-reader
  gmsa spec new ... --ccg rancher --account-provider-namespace cattle-windows-gmsa-system \\
    --reader-secret gmsa-reader
  # Any other plugin, by class id and raw input:
  gmsa spec new ... --ccg-plugin-guid '{GUID}' --ccg-plugin-input 'INPUT'";

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
    /// Explain what a Windows node will do with a spec: domain-joined or which CCG plugin,
    /// what it fetches from where, the accounts, and what must be true on the node.
    #[command(after_help = crate::explain::EXPLAIN_HELP)]
    Explain(crate::explain::ExplainArgs),
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
    /// Another gMSA: NAME or NAME@THIS-DOMAIN (both scopes), or NAME@OTHER-DOMAIN (one entry
    /// with that scope). Repeatable.
    #[arg(long = "additional-account", value_name = "NAME[@DOMAIN]")]
    pub additional_accounts: Vec<String>,
    #[command(flatten)]
    pub ccg: CcgArgs,
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
        SpecCommand::Explain(args) => crate::explain::run(&args),
    }
}

/// `gmsa crd`: prints the CustomResourceDefinition.
pub fn print_crd() -> anyhow::Result<ExitCode> {
    let yaml = gmsa_crd::crd_yaml().context("rendering the CRD as YAML")?;
    write_stdout(&yaml)?;
    Ok(ExitCode::SUCCESS)
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
        host_account: args.ccg.host_account()?,
    };
    let spec = CredSpec::build(&params);
    let resource = |name: &str| GMSACredentialSpec::new(name, &spec);
    emit("gmsa spec new", "", &spec, None, &resource, &args.output)
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
