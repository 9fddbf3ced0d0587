//! `validate(&CredSpec) -> Vec<Problem>`: what would make Windows refuse the spec (errors) or
//! what is probably a mistake (warnings), each with its JSON path and a fix.
//!
//! The CRD schema stays lenient (it must never reject a spec Windows accepts); the strict
//! checks live here, where the user can see them before applying.

use std::fmt;

use crate::ccg;
use crate::credspec::{
    CredSpec, DomainJoinConfig, HostAccountConfig, ACTIVE_DIRECTORY_PLUGIN, PORTABLE_CCG_VERSION,
};
use crate::guid::{is_braced_guid, is_guid};

/// How bad a [`Problem`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Probably a mistake, but Windows may accept the spec.
    Warning,
    /// Windows will not be able to use the spec.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One finding of [`validate()`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted JSON path inside the credspec, e.g. `DomainJoinConfig.Sid` or
    /// `ActiveDirectoryConfig.GroupManagedServiceAccounts[0].Scope`; `""` for the root.
    pub path: String,
    /// Error (refused) or warning (allowed).
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl Problem {
    fn new(severity: Severity, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            severity,
            message: message.into(),
            hint: String::new(),
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }

    /// Whether this is an [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "."
        } else {
            &self.path
        };
        write!(f, "{}: {}: {}", self.severity, path, self.message)?;
        if !self.hint.is_empty() {
            write!(f, " (fix: {})", self.hint)?;
        }
        Ok(())
    }
}

/// Whether any problem is an error.
pub fn has_errors(problems: &[Problem]) -> bool {
    problems.iter().any(Problem::is_error)
}

const REGENERATE: &str =
    "regenerate the spec with `gmsa spec new` or `New-CredentialSpec` on a domain-joined host";

/// Checks a credspec; returns every problem found (empty when the spec looks right), errors
/// and warnings in document order.
pub fn validate(spec: &CredSpec) -> Vec<Problem> {
    let mut out = Vec::new();
    use Severity::{Error, Warning};
    check_size(spec, &mut out);

    match &spec.cms_plugins {
        None => out.push(
            Problem::new(Error, "CmsPlugins", "missing")
                .hint("add \"CmsPlugins\": [\"ActiveDirectory\"]"),
        ),
        Some(plugins) if !plugins.iter().any(|p| p == ACTIVE_DIRECTORY_PLUGIN) => out.push(
            Problem::new(
                Error,
                "CmsPlugins",
                format!("does not contain \"{ACTIVE_DIRECTORY_PLUGIN}\" (has {plugins:?})"),
            )
            .hint("set \"CmsPlugins\": [\"ActiveDirectory\"] (the name is case-sensitive)"),
        ),
        Some(_) => {}
    }

    let domain = spec.domain_join_config.as_ref();
    match domain {
        None => out.push(
            Problem::new(Error, "DomainJoinConfig", "missing").hint(format!(
                "add the domain's Sid, Guid, DnsName, NetBiosName; {REGENERATE}"
            )),
        ),
        Some(d) => check_domain(d, &mut out),
    }

    let Some(ad) = &spec.active_directory_config else {
        out.push(Problem::new(Error, "ActiveDirectoryConfig", "missing").hint(format!(
            "add \"ActiveDirectoryConfig\": {{\"GroupManagedServiceAccounts\": [{{\"Name\": ..., \"Scope\": ...}}]}}; {REGENERATE}"
        )));
        return out;
    };
    let base = "ActiveDirectoryConfig.GroupManagedServiceAccounts";
    match ad.group_managed_service_accounts.as_deref() {
        None => out.push(
            Problem::new(Error, base, "missing")
                .hint("list the gMSA once per scope: {\"Name\": \"<account>\", \"Scope\": \"<DnsName>\"} and the same with \"<NetBiosName>\""),
        ),
        Some([]) => out.push(
            Problem::new(Error, base, "is empty").hint("list at least one gMSA with its Name and Scope"),
        ),
        Some(accounts) => {
            for (i, account) in accounts.iter().enumerate() {
                let at = format!("{base}[{i}]");
                match account.name.as_deref().map(str::trim) {
                    None | Some("") => out.push(
                        Problem::new(Error, format!("{at}.Name"), "missing or empty")
                            .hint("set the gMSA's account name (without the trailing $)"),
                    ),
                    Some(name) => check_account_name(name, &format!("{at}.Name"), &mut out),
                }
                match account.scope.as_deref().map(str::trim) {
                    None | Some("") => out.push(
                        Problem::new(Error, format!("{at}.Scope"), "missing or empty")
                            .hint("set the domain's DNS name or NetBIOS name"),
                    ),
                    Some(scope) => {
                        if let Some(d) = domain {
                            let matches = |v: &Option<String>| {
                                v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(scope))
                            };
                            if !matches(&d.dns_name) && !matches(&d.net_bios_name) {
                                out.push(
                                    Problem::new(
                                        Warning,
                                        format!("{at}.Scope"),
                                        format!(
                                            "\"{scope}\" matches neither DomainJoinConfig.DnsName ({}) nor DomainJoinConfig.NetBiosName ({})",
                                            d.dns_name.as_deref().unwrap_or("missing"),
                                            d.net_bios_name.as_deref().unwrap_or("missing")
                                        ),
                                    )
                                    .hint("use the domain's DNS or NetBIOS name (fine only for an account in a trusted domain)"),
                                );
                            }
                        }
                    }
                }
            }
            if let Some(machine) = domain.and_then(|d| d.machine_account_name.as_deref()) {
                let listed = accounts
                    .iter()
                    .any(|a| a.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(machine)));
                if !listed && !machine.trim().is_empty() {
                    out.push(
                        Problem::new(
                            Warning,
                            base,
                            format!("DomainJoinConfig.MachineAccountName \"{machine}\" is not listed"),
                        )
                        .hint("list the account named in MachineAccountName, once per scope"),
                    );
                }
            }
        }
    }
    if let Some(host) = &ad.host_account_config {
        check_host_account(host, &mut out);
    }
    out
}

fn check_domain(d: &DomainJoinConfig, out: &mut Vec<Problem>) {
    use Severity::{Error, Warning};
    let field = |name: &str| format!("DomainJoinConfig.{name}");
    let required = [
        (
            "Sid",
            &d.sid,
            "the domain SID (Get-ADDomain).DomainSID, S-1-5-21-N-N-N",
        ),
        (
            "MachineAccountName",
            &d.machine_account_name,
            "the gMSA's name, without the trailing $",
        ),
        (
            "Guid",
            &d.guid,
            "the domain's objectGUID (Get-ADDomain).ObjectGUID",
        ),
        (
            "DnsName",
            &d.dns_name,
            "the domain's DNS name, e.g. contoso.com",
        ),
        (
            "NetBiosName",
            &d.net_bios_name,
            "the domain's NetBIOS name, e.g. CONTOSO",
        ),
    ];
    for (name, value, what) in required {
        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            out.push(
                Problem::new(Error, field(name), "missing or empty").hint(format!("set {what}")),
            );
        }
    }
    if d.dns_tree_name
        .as_deref()
        .is_none_or(|v| v.trim().is_empty())
    {
        out.push(
            Problem::new(Warning, field("DnsTreeName"), "missing or empty")
                .hint("set the forest's DNS name (usually the same as DnsName)"),
        );
    }
    if let Some(sid) = d.sid.as_deref().filter(|s| !s.trim().is_empty()) {
        match sid_shape(sid) {
            SidShape::Domain => {}
            SidShape::Account => out.push(
                Problem::new(
                    Error,
                    field("Sid"),
                    format!("\"{sid}\" is an account SID, not the domain's"),
                )
                .hint("drop the last -N (the account's RID): the domain SID is S-1-5-21-N-N-N"),
            ),
            SidShape::Other => out.push(
                Problem::new(
                    Error,
                    field("Sid"),
                    format!("\"{sid}\" is not a domain SID of the form S-1-5-21-N-N-N"),
                )
                .hint("use (Get-ADDomain).DomainSID.Value"),
            ),
        }
    }
    if let Some(guid) = d.guid.as_deref().filter(|s| !s.trim().is_empty()) {
        if is_guid(guid) {
        } else if is_braced_guid(guid) {
            out.push(
                Problem::new(Warning, field("Guid"), format!("\"{guid}\" is braced"))
                    .hint("write the GUID without braces, as New-CredentialSpec does"),
            );
        } else {
            out.push(
                Problem::new(Error, field("Guid"), format!("\"{guid}\" is not a GUID")).hint(
                    "use (Get-ADDomain).ObjectGUID, e.g. 244818ae-87ca-4fcd-92ec-e79e5252348a",
                ),
            );
        }
    }
    if let Some(dns) = d.dns_name.as_deref().filter(|s| !s.trim().is_empty()) {
        if !is_dns_name(dns) {
            out.push(
                Problem::new(
                    Error,
                    field("DnsName"),
                    format!("\"{dns}\" is not a DNS name"),
                )
                .hint("use the domain's DNS name, e.g. contoso.com (not a NetBIOS name or URL)"),
            );
        }
    }
    if let Some(tree) = d.dns_tree_name.as_deref().filter(|s| !s.trim().is_empty()) {
        if !is_dns_name(tree) {
            out.push(
                Problem::new(
                    Error,
                    field("DnsTreeName"),
                    format!("\"{tree}\" is not a DNS name"),
                )
                .hint("use the forest's DNS name, e.g. contoso.com"),
            );
        }
    }
    if let Some(nb) = d.net_bios_name.as_deref().filter(|s| !s.trim().is_empty()) {
        if nb.len() > 15 || nb.contains('.') || nb.contains('\\') {
            out.push(
                Problem::new(
                    Error,
                    field("NetBiosName"),
                    format!(
                        "\"{nb}\" is not a NetBIOS domain name (at most 15 characters, no dots)"
                    ),
                )
                .hint("use (Get-ADDomain).NetBIOSName, e.g. CONTOSO"),
            );
        }
    }
    if let Some(name) = d
        .machine_account_name
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        check_account_name(name, &field("MachineAccountName"), out);
    }
}

fn check_account_name(name: &str, path: &str, out: &mut Vec<Problem>) {
    if name.contains('\\') || name.contains('@') {
        out.push(
            Problem::new(
                Severity::Error,
                path,
                format!("\"{name}\" includes a domain"),
            )
            .hint("give the bare account name; the domain goes in Scope"),
        );
    } else if name.ends_with('$') {
        out.push(
            Problem::new(Severity::Warning, path, format!("\"{name}\" ends with $"))
                .hint("write the gMSA name without the trailing $, as New-CredentialSpec does"),
        );
    } else if name.len() > 15 {
        out.push(
            Problem::new(
                Severity::Warning,
                path,
                format!("\"{name}\" is longer than 15 characters"),
            )
            .hint("gMSA account names (sAMAccountName without $) have at most 15 characters; check the name"),
        );
    }
}

fn check_host_account(h: &HostAccountConfig, out: &mut Vec<Problem>) {
    let base = "ActiveDirectoryConfig.HostAccountConfig";
    let fields = [
        (
            "PortableCcgVersion",
            &h.portable_ccg_version,
            "set \"PortableCcgVersion\": \"1\"",
        ),
        (
            "PluginGUID",
            &h.plugin_guid,
            "set the CCG plugin's class id, e.g. \"{859E1386-BDB4-49E8-85C7-3070B13920E1}\"",
        ),
        (
            "PluginInput",
            &h.plugin_input,
            "set the input the CCG plugin expects (e.g. where to read the account's credentials)",
        ),
    ];
    for (name, value, hint) in fields {
        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            out.push(
                Problem::new(
                    Severity::Error,
                    format!("{base}.{name}"),
                    "missing or empty",
                )
                .hint(hint),
            );
        }
    }
    if let Some(version) = h
        .portable_ccg_version
        .as_deref()
        .filter(|v| !v.trim().is_empty())
    {
        if version != PORTABLE_CCG_VERSION {
            out.push(
                Problem::new(
                    Severity::Error,
                    format!("{base}.PortableCcgVersion"),
                    format!("\"{version}\" is not the only version ccg.exe knows, \"1\""),
                )
                .hint("set \"PortableCcgVersion\": \"1\""),
            );
        }
    }
    if let Some(guid) = h.plugin_guid.as_deref().filter(|v| !v.trim().is_empty()) {
        if !is_braced_guid(guid) {
            let hint = if is_guid(guid) {
                format!("wrap it in braces: \"{{{guid}}}\"")
            } else {
                "use the plugin's COM class id in braces, e.g. {859E1386-BDB4-49E8-85C7-3070B13920E1}".to_string()
            };
            out.push(
                Problem::new(
                    Severity::Error,
                    format!("{base}.PluginGUID"),
                    format!("\"{guid}\" is not a braced GUID"),
                )
                .hint(hint),
            );
        }
        check_plugin(guid, h.plugin_input.as_deref(), out);
    }
}

/// A known plugin's input must parse as that plugin reads it; an unknown plugin is a warning.
/// Messages never repeat the input (it may be a secret).
fn check_plugin(guid: &str, input: Option<&str>, out: &mut Vec<Problem>) {
    let base = "ActiveDirectoryConfig.HostAccountConfig";
    let Some(plugin) = ccg::by_guid(guid) else {
        if is_guid(guid.trim_start_matches('{').trim_end_matches('}')) {
            out.push(
                Problem::new(
                    Severity::Warning,
                    format!("{base}.PluginGUID"),
                    format!("\"{guid}\" is not a CCG plugin gmsa knows, so its PluginInput is not checked"),
                )
                .hint(format!(
                    "check the class id with the plugin's vendor; known plugins: {}",
                    ccg::known_list()
                )),
            );
        }
        return;
    };
    let Some(input) = input.filter(|i| !i.trim().is_empty()) else {
        return;
    };
    if let Err(why) = plugin.parse(input) {
        out.push(
            Problem::new(
                Severity::Error,
                format!("{base}.PluginInput"),
                format!(
                    "is not what the {} (--ccg {}) reads: {why}",
                    plugin.name, plugin.key
                ),
            )
            .hint(format!("write {}", plugin.input_form)),
        );
    }
}

/// What the API server accepts in a pod's `gmsaCredentialSpec`: 64 KiB.
pub const MAX_INLINED_BYTES: usize = 64 * 1024;

/// The size of `spec` as the webhook inlines it (compact JSON), in bytes.
pub fn inlined_len(spec: &CredSpec) -> usize {
    serde_json::to_vec(&spec.to_value()).map_or(0, |v| v.len())
}

fn check_size(spec: &CredSpec, out: &mut Vec<Problem>) {
    let len = inlined_len(spec);
    if len > MAX_INLINED_BYTES {
        out.push(
            Problem::new(
                Severity::Error,
                "",
                format!("the spec is {len} bytes as inlined JSON; the API server refuses a pod's gmsaCredentialSpec over {MAX_INLINED_BYTES} bytes"),
            )
            .hint("drop unknown fields and extra accounts until it fits"),
        );
    }
}

#[derive(Debug, PartialEq, Eq)]
enum SidShape {
    /// `S-1-5-21-N-N-N`
    Domain,
    /// `S-1-5-21-N-N-N-RID`
    Account,
    Other,
}

fn sid_shape(sid: &str) -> SidShape {
    let Some(rest) = sid.strip_prefix("S-1-5-21-") else {
        return SidShape::Other;
    };
    let parts: Vec<&str> = rest.split('-').collect();
    let numeric = parts.iter().all(|p| {
        !p.is_empty()
            && p.len() <= 10
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok()
    });
    match (numeric, parts.len()) {
        (true, 3) => SidShape::Domain,
        (true, 4) => SidShape::Account,
        _ => SidShape::Other,
    }
}

fn is_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn good() -> Value {
        crate::credspec::tests::contoso()
    }

    const AWS_INPUT: &str =
        r#"{"credentialArn":"arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-reader"}"#;

    #[test]
    fn a_known_plugin_input_is_checked_without_repeating_it() {
        let mut v = good();
        v["ActiveDirectoryConfig"]["HostAccountConfig"] = json!({
            "PortableCcgVersion": "1",
            "PluginGUID": "{859E1386-BDB4-49E8-85C7-3070B13920E1}",
            "PluginInput": "hunter2-password"
        });
        let found = problems(&v);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].hint.contains("credentialArn"), "{}", found[0]);
        assert!(!found[0].to_string().contains("hunter2"), "{}", found[0]);
        v["ActiveDirectoryConfig"]["HostAccountConfig"]["PluginGUID"] =
            json!("{00000000-1111-2222-3333-444444444444}");
        let found = problems(&v);
        assert!(found[0].hint.contains("aws {859E1386"), "{}", found[0]);
        assert!(!has_errors(&found));
    }

    fn problems(value: &Value) -> Vec<Problem> {
        validate(&CredSpec::from_value(value).expect("model accepts it"))
    }

    /// Applies `edit` at the JSON pointer (`None` removes the key) and returns the problems.
    fn with(pointer: &str, edit: Option<Value>) -> Vec<Problem> {
        let mut value = good();
        let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
        let target = value.pointer_mut(parent).expect("parent exists");
        match (edit, target) {
            (Some(v), Value::Object(map)) => {
                map.insert(key.to_string(), v);
            }
            (Some(v), Value::Array(items)) => {
                items[key.parse::<usize>().expect("index")] = v;
            }
            (None, Value::Object(map)) => {
                map.remove(key);
            }
            _ => panic!("cannot edit {pointer}"),
        }
        problems(&value)
    }

    #[test]
    fn a_correct_spec_has_no_problems() {
        assert_eq!(problems(&good()), vec![]);
    }

    #[test]
    fn a_correct_spec_with_host_account_config_has_no_problems() {
        let mut v = good();
        v["ActiveDirectoryConfig"]["HostAccountConfig"] = json!({
            "PortableCcgVersion": "1",
            "PluginGUID": "{859E1386-BDB4-49E8-85C7-3070B13920E1}",
            "PluginInput": AWS_INPUT
        });
        assert_eq!(problems(&v), vec![]);
    }

    /// Each row: JSON pointer, the new value (`None` removes it), expected path, severity,
    /// and a fragment of the message.
    #[test]
    fn each_problem_is_found_with_its_path_and_severity() {
        use Severity::{Error, Warning};
        let hac = |v: Value| {
            let mut h = json!({
                "PortableCcgVersion": "1",
                "PluginGUID": "{859E1386-BDB4-49E8-85C7-3070B13920E1}",
                "PluginInput": AWS_INPUT
            });
            if let (Value::Object(h), Value::Object(v)) = (&mut h, v) {
                for (k, v) in v {
                    if v.is_null() {
                        h.remove(&k);
                    } else {
                        h.insert(k, v);
                    }
                }
            }
            Some(h)
        };
        let gmsa = "ActiveDirectoryConfig.GroupManagedServiceAccounts";
        let rows: Vec<(&str, Option<Value>, &str, Severity, &str)> = vec![
            ("/CmsPlugins", None, "CmsPlugins", Error, "missing"),
            (
                "/CmsPlugins",
                Some(json!([])),
                "CmsPlugins",
                Error,
                "does not contain",
            ),
            (
                "/CmsPlugins",
                Some(json!(["activedirectory"])),
                "CmsPlugins",
                Error,
                "does not contain",
            ),
            (
                "/DomainJoinConfig",
                None,
                "DomainJoinConfig",
                Error,
                "missing",
            ),
            (
                "/ActiveDirectoryConfig",
                None,
                "ActiveDirectoryConfig",
                Error,
                "missing",
            ),
            (
                "/ActiveDirectoryConfig/GroupManagedServiceAccounts",
                None,
                gmsa,
                Error,
                "missing",
            ),
            (
                "/ActiveDirectoryConfig/GroupManagedServiceAccounts",
                Some(json!([])),
                gmsa,
                Error,
                "empty",
            ),
            (
                "/ActiveDirectoryConfig/GroupManagedServiceAccounts/0",
                Some(json!({"Scope": "contoso.com"})),
                "ActiveDirectoryConfig.GroupManagedServiceAccounts[0].Name",
                Error,
                "missing",
            ),
            (
                "/ActiveDirectoryConfig/GroupManagedServiceAccounts/1",
                Some(json!({"Name": "WebApp01", "Scope": " "})),
                "ActiveDirectoryConfig.GroupManagedServiceAccounts[1].Scope",
                Error,
                "missing or empty",
            ),
            (
                "/ActiveDirectoryConfig/GroupManagedServiceAccounts/1",
                Some(json!({"Name": "CONTOSO\\WebApp01", "Scope": "CONTOSO"})),
                "ActiveDirectoryConfig.GroupManagedServiceAccounts[1].Name",
                Error,
                "includes a domain",
            ),
            (
                "/ActiveDirectoryConfig/GroupManagedServiceAccounts/1",
                Some(json!({"Name": "WebApp01$", "Scope": "CONTOSO"})),
                "ActiveDirectoryConfig.GroupManagedServiceAccounts[1].Name",
                Warning,
                "ends with $",
            ),
            (
                "/ActiveDirectoryConfig/GroupManagedServiceAccounts/1",
                Some(json!({"Name": "WebApp01", "Scope": "fabrikam"})),
                "ActiveDirectoryConfig.GroupManagedServiceAccounts[1].Scope",
                Warning,
                "matches neither",
            ),
            (
                "/DomainJoinConfig/MachineAccountName",
                Some(json!("Other01")),
                gmsa,
                Warning,
                "is not listed",
            ),
            (
                "/DomainJoinConfig/MachineAccountName",
                None,
                "DomainJoinConfig.MachineAccountName",
                Error,
                "missing",
            ),
            (
                "/DomainJoinConfig/Sid",
                None,
                "DomainJoinConfig.Sid",
                Error,
                "missing",
            ),
            (
                "/DomainJoinConfig/Sid",
                Some(json!("S-1-5-21-1-2")),
                "DomainJoinConfig.Sid",
                Error,
                "not a domain SID",
            ),
            (
                "/DomainJoinConfig/Sid",
                Some(json!("S-1-5-32-544")),
                "DomainJoinConfig.Sid",
                Error,
                "not a domain SID",
            ),
            (
                "/DomainJoinConfig/Sid",
                Some(json!("S-1-5-21-1-2-x")),
                "DomainJoinConfig.Sid",
                Error,
                "not a domain SID",
            ),
            (
                "/DomainJoinConfig/Sid",
                Some(json!("S-1-5-21-2126729477-2524075714-3094792973-1104")),
                "DomainJoinConfig.Sid",
                Error,
                "account SID",
            ),
            (
                "/DomainJoinConfig/Guid",
                Some(json!("not-a-guid")),
                "DomainJoinConfig.Guid",
                Error,
                "not a GUID",
            ),
            (
                "/DomainJoinConfig/Guid",
                Some(json!("244818ae-87ca-4fcd-92ec-e79e5252348")),
                "DomainJoinConfig.Guid",
                Error,
                "not a GUID",
            ),
            (
                "/DomainJoinConfig/Guid",
                Some(json!("{244818ae-87ca-4fcd-92ec-e79e5252348a}")),
                "DomainJoinConfig.Guid",
                Warning,
                "braced",
            ),
            (
                "/DomainJoinConfig/Guid",
                None,
                "DomainJoinConfig.Guid",
                Error,
                "missing",
            ),
            (
                "/DomainJoinConfig/DnsName",
                Some(json!("https://contoso.com")),
                "DomainJoinConfig.DnsName",
                Error,
                "not a DNS name",
            ),
            (
                "/DomainJoinConfig/DnsTreeName",
                None,
                "DomainJoinConfig.DnsTreeName",
                Warning,
                "missing",
            ),
            (
                "/DomainJoinConfig/NetBiosName",
                Some(json!("CONTOSO.COM")),
                "DomainJoinConfig.NetBiosName",
                Error,
                "not a NetBIOS",
            ),
            (
                "/ActiveDirectoryConfig/HostAccountConfig",
                hac(json!({"PluginGUID": null})),
                "ActiveDirectoryConfig.HostAccountConfig.PluginGUID",
                Error,
                "missing",
            ),
            (
                "/ActiveDirectoryConfig/HostAccountConfig",
                hac(json!({"PluginInput": ""})),
                "ActiveDirectoryConfig.HostAccountConfig.PluginInput",
                Error,
                "missing",
            ),
            (
                "/ActiveDirectoryConfig/HostAccountConfig",
                hac(json!({"PortableCcgVersion": null})),
                "ActiveDirectoryConfig.HostAccountConfig.PortableCcgVersion",
                Error,
                "missing",
            ),
            (
                "/ActiveDirectoryConfig/HostAccountConfig",
                hac(json!({"PortableCcgVersion": "2"})),
                "ActiveDirectoryConfig.HostAccountConfig.PortableCcgVersion",
                Error,
                "only version",
            ),
            (
                "/ActiveDirectoryConfig/HostAccountConfig",
                hac(json!({"PluginInput": "not json"})),
                "ActiveDirectoryConfig.HostAccountConfig.PluginInput",
                Error,
                "AWS CCG plugin",
            ),
            (
                "/ActiveDirectoryConfig/HostAccountConfig",
                hac(json!({"PluginGUID": "{CCC2A336-D7F3-4818-A213-272B7924213E}"})),
                "ActiveDirectoryConfig.HostAccountConfig.PluginInput",
                Error,
                "Azure Key Vault CCG plugin",
            ),
            (
                "/ActiveDirectoryConfig/HostAccountConfig",
                hac(json!({"PluginGUID": "{e4781092-f116-4b79-b55e-28eb6a224e26}"})),
                "ActiveDirectoryConfig.HostAccountConfig.PluginInput",
                Error,
                "Rancher CCG plugin",
            ),
            (
                "/ActiveDirectoryConfig/HostAccountConfig",
                hac(json!({"PluginGUID": "{00000000-1111-2222-3333-444444444444}"})),
                "ActiveDirectoryConfig.HostAccountConfig.PluginGUID",
                Warning,
                "not a CCG plugin gmsa knows",
            ),
            (
                "/Padding",
                Some(json!("x".repeat(MAX_INLINED_BYTES))),
                "",
                Error,
                "over 65536 bytes",
            ),
            (
                "/ActiveDirectoryConfig/HostAccountConfig",
                hac(json!({"PluginGUID": "859E1386-BDB4-49E8-85C7-3070B13920E1"})),
                "ActiveDirectoryConfig.HostAccountConfig.PluginGUID",
                Error,
                "not a braced GUID",
            ),
            (
                "/ActiveDirectoryConfig/HostAccountConfig",
                hac(json!({"PluginGUID": "{nope}"})),
                "ActiveDirectoryConfig.HostAccountConfig.PluginGUID",
                Error,
                "not a braced GUID",
            ),
        ];
        for (pointer, edit, path, severity, fragment) in rows {
            let found = with(pointer, edit.clone());
            let hit = found
                .iter()
                .find(|p| p.path == path && p.message.contains(fragment));
            let Some(hit) = hit else {
                panic!("{pointer} = {edit:?}: expected {severity} at {path} containing {fragment:?}, got {found:#?}");
            };
            assert_eq!(hit.severity, severity, "{pointer} = {edit:?}: {hit}");
            assert!(!hit.hint.is_empty(), "{pointer}: every problem has a hint");
        }
    }

    #[test]
    fn scopes_compare_case_insensitively() {
        let found = with(
            "/ActiveDirectoryConfig/GroupManagedServiceAccounts/1",
            Some(json!({"Name": "webapp01", "Scope": "contoso"})),
        );
        assert_eq!(found, vec![]);
    }

    #[test]
    fn an_empty_object_reports_each_missing_section_as_an_error() {
        let found = problems(&json!({}));
        let paths: Vec<&str> = found.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            ["CmsPlugins", "DomainJoinConfig", "ActiveDirectoryConfig"]
        );
        assert!(has_errors(&found));
    }

    #[test]
    fn display_names_severity_path_and_fix() {
        let p = Problem::new(Severity::Error, "DomainJoinConfig.Sid", "bad").hint("fix it");
        assert_eq!(
            p.to_string(),
            "error: DomainJoinConfig.Sid: bad (fix: fix it)"
        );
    }
}
