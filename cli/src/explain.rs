//! `gmsa spec explain FILE|NAME`: what a Windows node will do with a credential spec —
//! domain-joined or which CCG plugin, what that plugin fetches from where, the accounts and
//! scopes, and the checklist of what must be true on the node. The explanation is a pure
//! function of the spec ([`explain`]); `-o json` prints it as is (stable field names).
//! PluginInput is shown only as the parts a known plugin's parser read (locators, not
//! secrets); an unknown plugin's input is never printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use gmsa_crd::ccg::{self, PluginInput};
use gmsa_crd::{has_errors, validate, CredSpec};
use serde::Serialize;

use crate::output::{display, fetch_spec, read, write_stdout};

/// Examples shown after `gmsa spec explain --help`.
pub const EXPLAIN_HELP: &str = "\
Examples:
  gmsa spec explain examples/gmsa-cred-spec-ccg.txt
  # The GMSACredentialSpec webapp01 of the current kubeconfig's cluster, as JSON:
  gmsa spec explain webapp01 -o json
TARGET is read as a file when it is `-` or an existing path, else as a GMSACredentialSpec name.
Exit code: 0 when the spec validates, 1 when it has errors (printed under \"problems\").";

/// `gmsa spec explain`.
#[derive(clap::Args)]
pub struct ExplainArgs {
    /// A credential spec file or manifest (`-` for standard input), or the name of a
    /// GMSACredentialSpec in the cluster of the current kubeconfig.
    #[arg(value_name = "FILE|NAME")]
    pub target: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

/// `-o` values of `explain`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// For people.
    Text,
    /// The same, as a JSON object with stable field names.
    Json,
}

/// What the node does with a spec.
#[derive(Debug, Serialize, PartialEq)]
pub struct Explanation {
    /// Where the spec came from.
    pub source: String,
    /// `domain-joined` (no HostAccountConfig) or `ccg-plugin`.
    pub mode: &'static str,
    /// The domain the spec names.
    pub domain: Domain,
    /// Each (gMSA, scope) entry.
    pub accounts: Vec<Account>,
    /// The CCG plugin, for `ccg-plugin`.
    pub plugin: Option<Plugin>,
    /// What must be true on the node.
    pub node_checklist: Vec<String>,
    /// How to see what happened on the node.
    pub check_on_node: String,
    /// Validation findings, `severity: path: message (fix: ...)`.
    pub problems: Vec<String>,
    /// Whether validation found no errors (warnings allowed).
    pub valid: bool,
}

/// `DomainJoinConfig`.
#[derive(Debug, Serialize, PartialEq)]
pub struct Domain {
    /// DnsName.
    pub dns_name: Option<String>,
    /// NetBiosName.
    pub netbios_name: Option<String>,
    /// DnsTreeName.
    pub forest: Option<String>,
    /// Sid.
    pub sid: Option<String>,
    /// Guid.
    pub guid: Option<String>,
}

/// A `GroupManagedServiceAccounts` entry.
#[derive(Debug, Serialize, PartialEq)]
pub struct Account {
    /// Name.
    pub name: Option<String>,
    /// Scope.
    pub scope: Option<String>,
}

/// The plugin a spec names.
#[derive(Debug, Serialize, PartialEq)]
pub struct Plugin {
    /// Catalogue key, or `other`.
    pub key: &'static str,
    /// PluginGUID as written.
    pub guid: Option<String>,
    /// The catalogue's name (absent for `other`).
    pub name: Option<&'static str>,
    /// Who ships it.
    pub vendor: Option<&'static str>,
    /// What it fetches.
    pub fetches: Option<&'static str>,
    /// The parts of PluginInput the plugin reads, when it parses (e.g. `credentialArn`).
    pub input: BTreeMap<String, String>,
}

const CCG_LOG: &str = "Get-WinEvent -LogName 'Microsoft-Windows-Containers-CCG/Admin' on the node (events from ccg.exe: plugin load and credential fetch failures name the cause)";

/// Explains `spec` (pure).
pub fn explain(source: &str, spec: &CredSpec) -> Explanation {
    let problems = validate(spec);
    let d = spec.domain_join_config.as_ref();
    let field =
        |f: fn(&gmsa_crd::DomainJoinConfig) -> &Option<String>| d.and_then(|d| f(d).clone());
    let domain = Domain {
        dns_name: field(|d| &d.dns_name),
        netbios_name: field(|d| &d.net_bios_name),
        forest: field(|d| &d.dns_tree_name),
        sid: field(|d| &d.sid),
        guid: field(|d| &d.guid),
    };
    let ad = spec.active_directory_config.as_ref();
    let accounts = ad
        .and_then(|ad| ad.group_managed_service_accounts.as_ref())
        .map(|list| {
            list.iter()
                .map(|a| Account {
                    name: a.name.clone(),
                    scope: a.scope.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let dns = domain
        .dns_name
        .clone()
        .unwrap_or_else(|| "the domain".into());
    let reach_dc = format!(
        "the node resolves {dns} in DNS (_ldap._tcp.dc._msdcs.{dns}, UDP and TCP 53) and reaches a domain controller (Kerberos 88, LDAP 389)"
    );
    let host = ad.and_then(|ad| ad.host_account_config.as_ref());
    let (mode, plugin, checklist) = match host {
        None => (
            "domain-joined",
            None,
            vec![
                format!("the node is joined to {dns} (or to a domain it trusts)"),
                "the node's computer account is in each gMSA's PrincipalsAllowedToRetrieveManagedPassword (check with `gmsa spec verify --node NAME$`)".to_string(),
                reach_dc,
            ],
        ),
        Some(h) => {
            let known = h.plugin_guid.as_deref().and_then(ccg::by_guid);
            let input = match (known, h.plugin_input.as_deref()) {
                (Some(p), Some(i)) => p.parse(i).map(|i| parts(&i)).unwrap_or_default(),
                _ => BTreeMap::new(),
            };
            let mut checklist: Vec<String> = match known {
                Some(p) => p.node_needs.iter().map(|s| s.to_string()).collect(),
                None => vec![format!(
                    "the plugin {} is registered under HKLM\\SYSTEM\\CurrentControlSet\\Control\\CCG\\COMClasses (gmsa does not know this plugin; see its vendor)",
                    h.plugin_guid.as_deref().unwrap_or("(no PluginGUID)")
                )],
            };
            checklist.push("the account whose credentials the plugin fetches is in each gMSA's PrincipalsAllowedToRetrieveManagedPassword".into());
            checklist.push(reach_dc);
            (
                "ccg-plugin",
                Some(Plugin {
                    key: known.map_or(ccg::OTHER_LABEL, |p| p.key),
                    guid: h.plugin_guid.clone(),
                    name: known.map(|p| p.name),
                    vendor: known.map(|p| p.vendor),
                    fetches: known.map(|p| p.fetches),
                    input,
                }),
                checklist,
            )
        }
    };
    Explanation {
        source: source.to_string(),
        mode,
        domain,
        accounts,
        plugin,
        node_checklist: checklist,
        check_on_node: CCG_LOG.to_string(),
        problems: problems.iter().map(|p| p.to_string()).collect(),
        valid: !has_errors(&problems),
    }
}

fn parts(input: &PluginInput) -> BTreeMap<String, String> {
    let pairs: Vec<(&str, &str)> = match input {
        PluginInput::Aws { credential_arn } => vec![("credentialArn", credential_arn)],
        PluginInput::AzureKeyVault {
            object_id,
            secret_uri,
        } => vec![("ObjectId", object_id), ("SecretUri", secret_uri)],
        PluginInput::Rancher {
            namespace,
            secret_name,
        } => vec![("namespace", namespace), ("secret", secret_name)],
    };
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn text(e: &Explanation) -> String {
    let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "(missing)".into());
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    match &e.plugin {
        None => line(format!(
            "{}: domain-joined: the node's own domain membership gets the gMSA's password",
            e.source
        )),
        Some(p) => {
            line(format!(
                "{}: not domain-joined: ccg.exe loads CCG plugin {} ({})",
                e.source,
                or(&p.guid),
                p.name.unwrap_or("not in gmsa's catalogue")
            ));
            if let Some(vendor) = p.vendor {
                line(format!("  vendor: {vendor}"));
            }
            if let Some(fetches) = p.fetches {
                line(format!("  fetches: {fetches}"));
            }
            for (k, v) in &p.input {
                line(format!("  {k}: {v}"));
            }
        }
    }
    line(format!(
        "  domain: {} ({}), forest {}, SID {}, GUID {}",
        or(&e.domain.dns_name),
        or(&e.domain.netbios_name),
        or(&e.domain.forest),
        or(&e.domain.sid),
        or(&e.domain.guid)
    ));
    for a in &e.accounts {
        line(format!("  gMSA: {} (scope {})", or(&a.name), or(&a.scope)));
    }
    line("  the node needs:".into());
    for item in &e.node_checklist {
        line(format!("    [ ] {item}"));
    }
    line(format!("  check: {}", e.check_on_node));
    for p in &e.problems {
        line(format!("  {p}"));
    }
    out
}

/// `gmsa spec explain`.
pub fn run(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let (source, spec) = load(&args.target)?;
    let e = explain(&source, &spec);
    let rendered = match args.output {
        Format::Text => text(&e),
        Format::Json => serde_json::to_string_pretty(&e).context("rendering JSON")? + "\n",
    };
    write_stdout(&rendered)?;
    Ok(if e.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn load(target: &Path) -> anyhow::Result<(String, CredSpec)> {
    if target.as_os_str() == "-" || target.exists() {
        let shown = display(target);
        let spec = read(target)?.typed().with_context(|| shown.clone())?;
        return Ok((shown, spec));
    }
    let name = target.to_string_lossy().to_string();
    let spec = fetch_spec(&name)?;
    Ok((format!("GMSACredentialSpec {name}"), spec))
}
