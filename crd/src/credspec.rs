//! The credential-spec model: the JSON `New-CredentialSpec` writes and Windows reads, with
//! its exact PascalCase field names, and a builder that makes the same spec without Windows.
//!
//! Every field is optional in the model so that an incomplete spec can still be read and
//! [validated](fn@crate::validate) with a precise message, and every object keeps the fields the
//! model does not know (`extra`), so parse → emit → parse loses nothing.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Unknown fields of an object, kept verbatim.
pub type Extra = BTreeMap<String, Value>;

/// A credential spec (the value of a `GMSACredentialSpec`'s `credspec`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CredSpec {
    /// `CmsPlugins`: must contain `ActiveDirectory`.
    #[serde(
        rename = "CmsPlugins",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cms_plugins: Option<Vec<String>>,
    /// `DomainJoinConfig`: the domain the gMSA lives in.
    #[serde(
        rename = "DomainJoinConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub domain_join_config: Option<DomainJoinConfig>,
    /// `ActiveDirectoryConfig`: the accounts, and the plugin for non-domain-joined hosts.
    #[serde(
        rename = "ActiveDirectoryConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub active_directory_config: Option<ActiveDirectoryConfig>,
    /// Fields the model does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `DomainJoinConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DomainJoinConfig {
    /// `Sid`: the domain SID, `S-1-5-21-N-N-N`.
    #[serde(rename = "Sid", default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// `MachineAccountName`: the gMSA's name (without `$`).
    #[serde(
        rename = "MachineAccountName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub machine_account_name: Option<String>,
    /// `Guid`: the domain's objectGUID, unbraced.
    #[serde(rename = "Guid", default, skip_serializing_if = "Option::is_none")]
    pub guid: Option<String>,
    /// `DnsTreeName`: the forest's DNS name.
    #[serde(
        rename = "DnsTreeName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dns_tree_name: Option<String>,
    /// `DnsName`: the domain's DNS name.
    #[serde(rename = "DnsName", default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// `NetBiosName`: the domain's NetBIOS name.
    #[serde(
        rename = "NetBiosName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub net_bios_name: Option<String>,
    /// Fields the model does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ActiveDirectoryConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActiveDirectoryConfig {
    /// `GroupManagedServiceAccounts`: one entry per (account, scope).
    #[serde(
        rename = "GroupManagedServiceAccounts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub group_managed_service_accounts: Option<Vec<GroupManagedServiceAccount>>,
    /// `HostAccountConfig`: the CCG plugin used on hosts that are not domain joined.
    #[serde(
        rename = "HostAccountConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub host_account_config: Option<HostAccountConfig>,
    /// Fields the model does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One `GroupManagedServiceAccounts` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupManagedServiceAccount {
    /// `Name`: the gMSA's name (without `$`).
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `Scope`: the domain's DNS or NetBIOS name.
    #[serde(rename = "Scope", default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Fields the model does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `HostAccountConfig`. Its `Debug` output hides `PluginInput`, which can hold a password.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostAccountConfig {
    /// `PortableCcgVersion`: `"1"`.
    #[serde(
        rename = "PortableCcgVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub portable_ccg_version: Option<String>,
    /// `PluginGUID`: the CCG plugin's COM class id, braced (`{...}`).
    #[serde(
        rename = "PluginGUID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub plugin_guid: Option<String>,
    /// `PluginInput`: opaque input for the plugin (may be a secret; never log it).
    #[serde(
        rename = "PluginInput",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub plugin_input: Option<String>,
    /// Fields the model does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

impl fmt::Debug for HostAccountConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostAccountConfig")
            .field("portable_ccg_version", &self.portable_ccg_version)
            .field("plugin_guid", &self.plugin_guid)
            .field(
                "plugin_input",
                &self.plugin_input.as_ref().map(|_| "<redacted>"),
            )
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a `credspec` value could not be read into the model.
#[derive(Debug, thiserror::Error)]
pub enum CredSpecError {
    /// The object has no `credspec` (or it is `null`).
    #[error("has no `credspec`")]
    Missing,
    /// A value has the wrong JSON type (e.g. a number where a string belongs).
    #[error("`{path}`: {message}")]
    Shape {
        /// Dotted JSON path inside the credspec, e.g. `DomainJoinConfig.Sid` (`.` is the root).
        path: String,
        /// What is wrong, e.g. `invalid type: integer `5`, expected a string`.
        message: String,
    },
}

impl CredSpec {
    /// Reads a credspec from a JSON value; the error names the path of the offending value.
    pub fn from_value(value: &Value) -> Result<Self, CredSpecError> {
        serde_path_to_error::deserialize(value).map_err(|err| {
            let path = err.path().to_string();
            CredSpecError::Shape {
                path,
                message: err.into_inner().to_string(),
            }
        })
    }

    /// The credspec as a JSON value (object keys sorted, as the webhook inlines them).
    pub fn to_value(&self) -> Value {
        // Serializing plain strings, vectors and maps into a Value cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The first gMSA's name (`ActiveDirectoryConfig.GroupManagedServiceAccounts[0].Name`).
    pub fn account_name(&self) -> Option<&str> {
        self.active_directory_config
            .as_ref()?
            .group_managed_service_accounts
            .as_ref()?
            .first()?
            .name
            .as_deref()
    }

    /// `DomainJoinConfig.MachineAccountName`.
    pub fn machine_account_name(&self) -> Option<&str> {
        self.domain_join_config
            .as_ref()?
            .machine_account_name
            .as_deref()
    }

    /// Builds the spec `New-CredentialSpec` would write for `params` (see [`NewCredSpec`]).
    pub fn build(params: &NewCredSpec) -> Self {
        let d = &params.domain;
        let entry = |name: &str, scope: &str| GroupManagedServiceAccount {
            name: Some(name.to_string()),
            scope: Some(scope.to_string()),
            extra: Extra::new(),
        };
        let mut accounts = Vec::new();
        for name in std::iter::once(params.account.as_str())
            .chain(params.additional_accounts.iter().map(String::as_str))
        {
            match name.split_once('@') {
                Some((name, domain)) if !d.is_named(domain) => accounts.push(entry(name, domain)),
                split => {
                    let name = split.map_or(name, |(name, _)| name);
                    accounts.push(entry(name, &d.dns_name));
                    accounts.push(entry(name, &d.net_bios_name));
                }
            }
        }
        CredSpec {
            cms_plugins: Some(vec![ACTIVE_DIRECTORY_PLUGIN.to_string()]),
            domain_join_config: Some(DomainJoinConfig {
                sid: Some(d.sid.clone()),
                machine_account_name: Some(params.account.clone()),
                guid: Some(d.guid.clone()),
                dns_tree_name: Some(
                    d.dns_tree_name
                        .clone()
                        .unwrap_or_else(|| d.dns_name.clone()),
                ),
                dns_name: Some(d.dns_name.clone()),
                net_bios_name: Some(d.net_bios_name.clone()),
                extra: Extra::new(),
            }),
            active_directory_config: Some(ActiveDirectoryConfig {
                group_managed_service_accounts: Some(accounts),
                host_account_config: params.host_account.as_ref().map(|h| HostAccountConfig {
                    portable_ccg_version: Some(PORTABLE_CCG_VERSION.to_string()),
                    plugin_guid: Some(braced(&h.plugin_guid)),
                    plugin_input: Some(h.plugin_input.clone()),
                    extra: Extra::new(),
                }),
                extra: Extra::new(),
            }),
            extra: Extra::new(),
        }
    }
}

/// The only CMS plugin Windows knows: `ActiveDirectory`.
pub const ACTIVE_DIRECTORY_PLUGIN: &str = "ActiveDirectory";
/// `HostAccountConfig.PortableCcgVersion` as Windows expects it.
pub const PORTABLE_CCG_VERSION: &str = "1";

/// The domain facts a credspec records (what `Get-ADDomain` reports).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainInfo {
    /// The domain's DNS name, e.g. `contoso.com`.
    pub dns_name: String,
    /// The domain's NetBIOS name, e.g. `CONTOSO`.
    pub net_bios_name: String,
    /// The domain SID, `S-1-5-21-N-N-N`.
    pub sid: String,
    /// The domain's objectGUID, unbraced.
    pub guid: String,
    /// The forest's DNS name; `None` means the same as `dns_name`.
    pub dns_tree_name: Option<String>,
}

impl DomainInfo {
    /// Whether `domain` is this domain's DNS or NetBIOS name (case-insensitive).
    pub fn is_named(&self, domain: &str) -> bool {
        let domain = domain.trim().trim_end_matches('.');
        domain.eq_ignore_ascii_case(&self.dns_name)
            || domain.eq_ignore_ascii_case(&self.net_bios_name)
    }
}

/// The CCG plugin for hosts that are not domain joined.
#[derive(Clone, PartialEq, Eq)]
pub struct HostAccount {
    /// The plugin's COM class id, braced or not (it is written braced).
    pub plugin_guid: String,
    /// The plugin's input (may be a secret).
    pub plugin_input: String,
}

impl fmt::Debug for HostAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostAccount")
            .field("plugin_guid", &self.plugin_guid)
            .field("plugin_input", &"<redacted>")
            .finish()
    }
}

/// What [`CredSpec::build`] needs: the equivalent of `New-CredentialSpec`'s parameters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewCredSpec {
    /// The gMSA (`-AccountName`), without `$`.
    pub account: String,
    /// The domain it lives in.
    pub domain: DomainInfo,
    /// More gMSAs (`-AdditionalAccounts`): `NAME` or `NAME@DOMAIN` naming this domain (by DNS
    /// or NetBIOS name): both scope entries; `NAME@OTHER` (another domain): one entry with
    /// that scope.
    pub additional_accounts: Vec<String>,
    /// The CCG plugin, for hosts that are not domain joined.
    pub host_account: Option<HostAccount>,
}

fn braced(guid: &str) -> String {
    let inner = guid.trim().trim_start_matches('{').trim_end_matches('}');
    format!("{{{inner}}}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// The captured contoso.com spec (as `New-CredentialSpec` orders it); shared by the
    /// crate's unit tests.
    pub(crate) fn contoso() -> Value {
        json!({
            "CmsPlugins": ["ActiveDirectory"],
            "DomainJoinConfig": {
                "Sid": "S-1-5-21-2126729477-2524075714-3094792973",
                "MachineAccountName": "WebApp01",
                "Guid": "244818ae-87ca-4fcd-92ec-e79e5252348a",
                "DnsTreeName": "contoso.com",
                "DnsName": "contoso.com",
                "NetBiosName": "CONTOSO"
            },
            "ActiveDirectoryConfig": {
                "GroupManagedServiceAccounts": [
                    {"Name": "WebApp01", "Scope": "contoso.com"},
                    {"Name": "WebApp01", "Scope": "CONTOSO"}
                ]
            }
        })
    }

    #[test]
    fn reads_pascal_case_names() {
        let spec = CredSpec::from_value(&contoso()).expect("parse");
        let d = spec.domain_join_config.as_ref().expect("DomainJoinConfig");
        assert_eq!(d.net_bios_name.as_deref(), Some("CONTOSO"));
        assert_eq!(spec.account_name(), Some("WebApp01"));
        assert_eq!(spec.machine_account_name(), Some("WebApp01"));
    }

    #[test]
    fn unknown_fields_survive_a_round_trip_at_every_level() {
        let mut value = contoso();
        value["Future"] = json!({"x": [1, 2]});
        value["DomainJoinConfig"]["Extra"] = json!(true);
        value["ActiveDirectoryConfig"]["Other"] = json!("y");
        value["ActiveDirectoryConfig"]["GroupManagedServiceAccounts"][0]["Note"] = json!(null);
        value["ActiveDirectoryConfig"]["HostAccountConfig"] = json!({
            "PortableCcgVersion": "1", "PluginGUID": "{859E1386-BDB4-49E8-85C7-3070B13920E1}",
            "PluginInput": "secret", "New": 3
        });
        let spec = CredSpec::from_value(&value).expect("parse");
        assert_eq!(spec.to_value(), value);
    }

    #[test]
    fn wrong_type_names_the_path() {
        let mut value = contoso();
        value["DomainJoinConfig"]["Sid"] = json!(5);
        let err = CredSpec::from_value(&value).expect_err("number is not a string");
        let CredSpecError::Shape { path, message } = err else {
            panic!("expected a shape error")
        };
        assert_eq!(path, "DomainJoinConfig.Sid");
        assert!(message.contains("expected a string"), "{message}");

        value = contoso();
        value["ActiveDirectoryConfig"]["GroupManagedServiceAccounts"][1]["Scope"] = json!([]);
        let CredSpecError::Shape { path, .. } = CredSpec::from_value(&value).expect_err("array")
        else {
            panic!("expected a shape error")
        };
        assert_eq!(
            path,
            "ActiveDirectoryConfig.GroupManagedServiceAccounts[1].Scope"
        );
    }

    #[test]
    fn build_matches_new_credentialspec_output() {
        let params = NewCredSpec {
            account: "WebApp01".into(),
            domain: DomainInfo {
                dns_name: "contoso.com".into(),
                net_bios_name: "CONTOSO".into(),
                sid: "S-1-5-21-2126729477-2524075714-3094792973".into(),
                guid: "244818ae-87ca-4fcd-92ec-e79e5252348a".into(),
                dns_tree_name: None,
            },
            ..NewCredSpec::default()
        };
        assert_eq!(CredSpec::build(&params).to_value(), contoso());
    }

    #[test]
    fn build_adds_additional_accounts_and_host_account_config() {
        let params = NewCredSpec {
            account: "WebApp01".into(),
            domain: DomainInfo {
                dns_name: "contoso.com".into(),
                net_bios_name: "CONTOSO".into(),
                sid: "S-1-5-21-1-2-3".into(),
                guid: "244818ae-87ca-4fcd-92ec-e79e5252348a".into(),
                dns_tree_name: Some("root.contoso.com".into()),
            },
            additional_accounts: vec![
                "Batch".into(),
                "Ext@fabrikam.com".into(),
                "Same@contoso".into(),
            ],
            host_account: Some(HostAccount {
                plugin_guid: "859E1386-BDB4-49E8-85C7-3070B13920E1".into(),
                plugin_input: "contoso.com:gmsa-reader:secret".into(),
            }),
        };
        let v = CredSpec::build(&params).to_value();
        let accounts = &v["ActiveDirectoryConfig"]["GroupManagedServiceAccounts"];
        assert_eq!(
            accounts,
            &json!([
                {"Name": "WebApp01", "Scope": "contoso.com"},
                {"Name": "WebApp01", "Scope": "CONTOSO"},
                {"Name": "Batch", "Scope": "contoso.com"},
                {"Name": "Batch", "Scope": "CONTOSO"},
                {"Name": "Ext", "Scope": "fabrikam.com"},
                {"Name": "Same", "Scope": "contoso.com"},
                {"Name": "Same", "Scope": "CONTOSO"}
            ])
        );
        assert_eq!(v["DomainJoinConfig"]["DnsTreeName"], "root.contoso.com");
        assert_eq!(
            v["ActiveDirectoryConfig"]["HostAccountConfig"],
            json!({"PortableCcgVersion": "1",
                   "PluginGUID": "{859E1386-BDB4-49E8-85C7-3070B13920E1}",
                   "PluginInput": "contoso.com:gmsa-reader:secret"})
        );
    }

    #[test]
    fn debug_hides_plugin_input() {
        let h = HostAccountConfig {
            plugin_input: Some("hunter2".into()),
            ..HostAccountConfig::default()
        };
        assert!(!format!("{h:?}").contains("hunter2"));
        let h = HostAccount {
            plugin_guid: "g".into(),
            plugin_input: "hunter2".into(),
        };
        assert!(!format!("{h:?}").contains("hunter2"));
    }
}
