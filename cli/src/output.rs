//! What every spec-producing command shares: the output options ([`OutputArgs`], flattened
//! into each command's clap args), [`emit`] (validate, report, name, print or apply), and
//! reading a spec file ([`read`], [`display`]).

use std::fs::File;
use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};
use gmsa_crd::{
    check_name, default_name, read_document, validate, CredSpec, Document, GMSACredentialSpec,
    Problem,
};

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

pub(crate) fn report(
    w: &mut dyn Write,
    source: &str,
    prefix: &str,
    problems: &[Problem],
) -> io::Result<()> {
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

pub(crate) fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to standard output")
}

/// Reads the GMSACredentialSpec `name` from the cluster of the current kubeconfig.
pub(crate) fn fetch_spec(name: &str) -> anyhow::Result<CredSpec> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let resource = runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .context("connecting to the cluster of the current kubeconfig")?;
        let api: kube::Api<GMSACredentialSpec> = kube::Api::all(client);
        api.get(name)
            .await
            .with_context(|| format!("reading GMSACredentialSpec {name} from the cluster"))
    })?;
    resource
        .typed()
        .with_context(|| format!("GMSACredentialSpec {name}: credspec"))
}
