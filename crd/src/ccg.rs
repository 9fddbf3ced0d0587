//! The catalogue of Container Credential Guard (CCG) plugins gmsa knows: for each, its COM
//! class id (`HostAccountConfig.PluginGUID`), who ships it, the `PluginInput` it reads (with a
//! parser), what it fetches from where, and what must be true on the node. Sources are cited
//! in docs/ccg.md.
//!
//! Pure data and parsing, no I/O. A `PluginInput` can hold a secret (for plugins gmsa does not
//! know), so no error here ever repeats any part of it.

use std::fmt;

use crate::guid::is_guid;
use crate::name::{is_label, is_subdomain};

/// One CCG plugin.
#[derive(Debug)]
pub struct Plugin {
    /// Short name used by `--ccg`, the chart (`hostAccountConfig.plugin`) and metrics labels.
    pub key: &'static str,
    /// What the vendor calls it.
    pub name: &'static str,
    /// Who ships it and where it runs.
    pub vendor: &'static str,
    /// The COM class id, braced, as the vendor writes it.
    pub guid: &'static str,
    /// The `PluginInput` it reads, as a template.
    pub input_form: &'static str,
    /// What it fetches, from where, and what that holds.
    pub fetches: &'static str,
    /// What must be true on the node for it to work, beyond reaching the domain.
    pub node_needs: &'static [&'static str],
    parse: fn(&str) -> Result<PluginInput, InputError>,
}

/// A `PluginInput` a known plugin can read, split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginInput {
    /// AWS: a JSON document (as a string) `{"credentialArn": ARN}`.
    Aws {
        /// Secrets Manager secret or SSM parameter holding username, password, domainName.
        credential_arn: String,
    },
    /// Azure Key Vault: `ObjectId=ID;SecretUri=URI`.
    AzureKeyVault {
        /// Object id of the managed identity the node uses to read the secret.
        object_id: String,
        /// `https://VAULT.vault.azure.net/secrets/NAME[/VERSION]`.
        secret_uri: String,
    },
    /// Rancher: `ACCOUNT_PROVIDER_NAMESPACE:SECRET_NAME`.
    Rancher {
        /// The namespace of the Rancher gMSA account provider (also the node directory
        /// `/var/lib/rancher/gmsa/<namespace>`).
        namespace: String,
        /// The Kubernetes Secret holding the reader account's credentials.
        secret_name: String,
    },
}

/// Why a `PluginInput` is not what its plugin reads. Never contains the input itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

fn fail<T>(why: impl Into<String>) -> Result<T, InputError> {
    Err(InputError(why.into()))
}

/// The AWS plugin (EKS and ECS Windows AMIs).
pub const AWS: Plugin = Plugin {
    key: "aws",
    name: "AWS CCG plugin",
    vendor: "Amazon Web Services, preinstalled on the EKS/ECS optimized Windows AMIs",
    guid: "{859E1386-BDB4-49E8-85C7-3070B13920E1}",
    input_form: r#"a JSON document as a string: {"credentialArn": "arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME"} (or arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)"#,
    fetches: "the Secrets Manager secret or SSM parameter named by credentialArn, holding {\"username\", \"password\", \"domainName\"} of an account allowed to retrieve the gMSA's password",
    node_needs: &[
        "the plugin registered under HKLM\\SYSTEM\\CurrentControlSet\\Control\\CCG\\COMClasses\\{859E1386-BDB4-49E8-85C7-3070B13920E1} (EKS/ECS optimized Windows AMI)",
        "the node's IAM role may call secretsmanager:GetSecretValue (or ssm:GetParameter) on that ARN, and KMS decrypt for its key",
    ],
    parse: parse_aws,
};

/// The Azure Key Vault plugin (AKS).
pub const AZURE_KEY_VAULT: Plugin = Plugin {
    key: "azure-key-vault",
    name: "Azure Key Vault CCG plugin (CCGAKVPlugin.dll)",
    vendor: "Microsoft, installed on AKS Windows nodes when gMSA is enabled",
    guid: "{CCC2A336-D7F3-4818-A213-272B7924213E}",
    input_form: "ObjectId=MANAGED_IDENTITY_OBJECT_ID;SecretUri=https://VAULT.vault.azure.net/secrets/NAME",
    fetches: "the Key Vault secret at SecretUri, read with the node's managed identity ObjectId, holding DOMAIN\\user:password of an account allowed to retrieve the gMSA's password",
    node_needs: &[
        "the plugin registered under HKLM\\SYSTEM\\CurrentControlSet\\Control\\CCG\\COMClasses\\{CCC2A336-D7F3-4818-A213-272B7924213E} (AKS with --enable-windows-gmsa)",
        "the managed identity ObjectId is assigned to the node pool's VMs and may get the secret (Key Vault Secrets User, or a get-secret access policy)",
    ],
    parse: parse_azure_key_vault,
};

/// The Rancher plugin (rancher/Rancher-Plugin-gMSA).
pub const RANCHER: Plugin = Plugin {
    key: "rancher",
    name: "Rancher CCG plugin (RanchergMSACredentialProvider.dll)",
    vendor: "SUSE Rancher, installed by the rancher-gmsa-plugin-installer chart",
    guid: "{E4781092-F116-4B79-B55E-28EB6A224E26}",
    input_form: "ACCOUNT_PROVIDER_NAMESPACE:SECRET_NAME",
    fetches: "the Kubernetes Secret SECRET_NAME, served over mTLS by the Rancher gMSA account provider running in ACCOUNT_PROVIDER_NAMESPACE, holding the username, password and domain of an account allowed to retrieve the gMSA's password",
    node_needs: &[
        "the plugin registered under HKLM\\SYSTEM\\CurrentControlSet\\Control\\CCG\\COMClasses\\{e4781092-f116-4b79-b55e-28eb6a224e26} (rancher-gmsa-plugin-installer)",
        "the account provider (rancher-gmsa-account-provider) runs in ACCOUNT_PROVIDER_NAMESPACE and wrote /var/lib/rancher/gmsa/ACCOUNT_PROVIDER_NAMESPACE/port.txt and ssl/client/tls.pfx on the node",
    ],
    parse: parse_rancher,
};

/// Every plugin gmsa knows, in the order they are listed to users.
pub const PLUGINS: [&Plugin; 3] = [&AWS, &AZURE_KEY_VAULT, &RANCHER];

impl Plugin {
    /// Parses `input` as this plugin reads it.
    pub fn parse(&self, input: &str) -> Result<PluginInput, InputError> {
        (self.parse)(input)
    }
}

impl fmt::Display for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key, self.guid)
    }
}

/// The plugin whose class id is `guid`: case-insensitive, braces optional.
pub fn by_guid(guid: &str) -> Option<&'static Plugin> {
    let bare = |g: &str| {
        g.trim()
            .trim_start_matches('{')
            .trim_end_matches('}')
            .to_ascii_lowercase()
    };
    let wanted = bare(guid);
    PLUGINS.into_iter().find(|p| bare(p.guid) == wanted)
}

/// The plugin named `key` (`aws`, `azure-key-vault`, `rancher`).
pub fn by_key(key: &str) -> Option<&'static Plugin> {
    PLUGINS.into_iter().find(|p| p.key == key)
}

/// `aws (…GUID…), azure-key-vault (…), rancher (…)`, for messages.
pub fn known_list() -> String {
    PLUGINS
        .iter()
        .map(|p| format!("{} {}", p.key, p.guid))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Label for a `credspec` value's plugin, bounded for metrics and annotations: a catalogue
/// key, `other` (a plugin gmsa does not know), or `none` (no HostAccountConfig: domain-joined
/// nodes). Reads only `ActiveDirectoryConfig.HostAccountConfig.PluginGUID`.
pub fn label(credspec: &serde_json::Value) -> &'static str {
    let host = &credspec["ActiveDirectoryConfig"]["HostAccountConfig"];
    if host.is_null() {
        return NONE_LABEL;
    }
    host["PluginGUID"]
        .as_str()
        .and_then(by_guid)
        .map_or(OTHER_LABEL, |p| p.key)
}

/// [`label`] of a spec without HostAccountConfig.
pub const NONE_LABEL: &str = "none";
/// [`label`] of a plugin outside the catalogue.
pub const OTHER_LABEL: &str = "other";

impl PluginInput {
    /// The plugin that reads this input.
    pub fn plugin(&self) -> &'static Plugin {
        match self {
            PluginInput::Aws { .. } => &AWS,
            PluginInput::AzureKeyVault { .. } => &AZURE_KEY_VAULT,
            PluginInput::Rancher { .. } => &RANCHER,
        }
    }

    /// The `PluginInput` string exactly as the plugin reads it.
    pub fn to_plugin_input(&self) -> String {
        match self {
            PluginInput::Aws { credential_arn } => {
                serde_json::json!({ "credentialArn": credential_arn }).to_string()
            }
            PluginInput::AzureKeyVault {
                object_id,
                secret_uri,
            } => format!("ObjectId={object_id};SecretUri={secret_uri}"),
            PluginInput::Rancher {
                namespace,
                secret_name,
            } => format!("{namespace}:{secret_name}"),
        }
    }

    /// Builds the input and checks it through the plugin's own parser, so a builder can
    /// never write what [`crate::validate()`] would refuse.
    pub fn checked(self) -> Result<Self, InputError> {
        self.plugin().parse(&self.to_plugin_input())
    }
}

fn parse_aws(input: &str) -> Result<PluginInput, InputError> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(input)
    else {
        return fail(
            "it is not a JSON object (the plugin reads a JSON document serialized into the string)",
        );
    };
    let mut arns = map
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("credentialArn"));
    let (Some((_, arn)), None) = (arns.next(), arns.next()) else {
        return fail("it has no single \"credentialArn\" key");
    };
    let Some(arn) = arn.as_str() else {
        return fail("\"credentialArn\" is not a string");
    };
    check_arn(arn)?;
    Ok(PluginInput::Aws {
        credential_arn: arn.to_string(),
    })
}

/// `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME` or
/// `arn:PARTITION:ssm:REGION:ACCOUNT:parameter/NAME`.
fn check_arn(arn: &str) -> Result<(), InputError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [arn_, partition, service, region, account, resource] = parts[..] else {
        return fail("credentialArn is not an ARN (arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE)");
    };
    if arn_ != "arn" || !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
        return fail(
            "credentialArn does not start with arn:aws: (or arn:aws-cn:, arn:aws-us-gov:)",
        );
    }
    let resource_ok = match service {
        "secretsmanager" => resource.strip_prefix("secret:").is_some_and(|n| !n.is_empty()),
        "ssm" => resource.strip_prefix("parameter/").is_some_and(|n| !n.is_empty()),
        _ => {
            return fail(
                "credentialArn names neither Secrets Manager (arn:aws:secretsmanager:…) nor SSM Parameter Store (arn:aws:ssm:…)",
            )
        }
    };
    if !is_region(region) {
        return fail("credentialArn's region is not a region like us-east-1");
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return fail("credentialArn's account is not a 12-digit AWS account id");
    }
    if !resource_ok {
        return fail(
            "credentialArn's resource is not secret:NAME (Secrets Manager) or parameter/NAME (SSM)",
        );
    }
    Ok(())
}

/// `us-east-1`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-2`, `eu-isoe-west-1`.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    (2..=3).contains(&words.len())
        && words[0].len() == 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

fn parse_azure_key_vault(input: &str) -> Result<PluginInput, InputError> {
    let (mut object_id, mut secret_uri) = (None, None);
    for pair in input.split(';').filter(|p| !p.trim().is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return fail("a part is not KEY=VALUE");
        };
        let slot = match key.trim() {
            k if k.eq_ignore_ascii_case("ObjectId") => &mut object_id,
            k if k.eq_ignore_ascii_case("SecretUri") => &mut secret_uri,
            _ => return fail("it has a key other than ObjectId and SecretUri"),
        };
        if slot.replace(value.trim().to_string()).is_some() {
            return fail("a key is given twice");
        }
    }
    let (Some(object_id), Some(secret_uri)) = (object_id, secret_uri) else {
        return fail("it lacks ObjectId or SecretUri");
    };
    if !is_guid(&object_id) {
        return fail("ObjectId is not a GUID (the managed identity's object id, unbraced)");
    }
    if !is_key_vault_secret_uri(&secret_uri) {
        return fail(
            "SecretUri is not an https Key Vault secret URL (https://VAULT.vault.azure.net/secrets/NAME)",
        );
    }
    Ok(PluginInput::AzureKeyVault {
        object_id,
        secret_uri,
    })
}

/// `https://VAULT.vault.azure.net/secrets/NAME[/VERSION]` (and the sovereign clouds' suffixes).
fn is_key_vault_secret_uri(uri: &str) -> bool {
    const SUFFIXES: [&str; 3] = [
        ".vault.azure.net",
        ".vault.azure.cn",
        ".vault.usgovcloudapi.net",
    ];
    let Some(rest) = uri.strip_prefix("https://") else {
        return false;
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.to_ascii_lowercase();
    let Some(vault) = SUFFIXES.iter().find_map(|s| host.strip_suffix(s)) else {
        return false;
    };
    let vault_ok = (3..=24).contains(&vault.len())
        && vault
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let name_ok = |s: &str| {
        (1..=127).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    vault_ok
        && match segments[..] {
            ["secrets", name] => name_ok(name),
            ["secrets", name, version] => {
                name_ok(name)
                    && !version.is_empty()
                    && version.bytes().all(|b| b.is_ascii_hexdigit())
            }
            _ => false,
        }
}

fn parse_rancher(input: &str) -> Result<PluginInput, InputError> {
    // The plugin splits on ':' and wants exactly two parts (CcgCredentialsProvider.cs).
    let parts: Vec<&str> = input.split(':').collect();
    let [namespace, secret_name] = parts[..] else {
        return fail("it is not exactly two parts separated by one ':'");
    };
    if !is_label(namespace) {
        return fail("the first part is not a namespace name (RFC 1123 label)");
    }
    if !is_subdomain(secret_name) {
        return fail("the second part is not a Secret name (RFC 1123 subdomain)");
    }
    Ok(PluginInput::Rancher {
        namespace: namespace.to_string(),
        secret_name: secret_name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        let mut v = crate::credspec::tests::contoso();
        assert_eq!(label(&v), "none");
        v["ActiveDirectoryConfig"]["HostAccountConfig"] =
            serde_json::json!({"PluginGUID": "{ccc2a336-d7f3-4818-a213-272b7924213e}"});
        assert_eq!(label(&v), "azure-key-vault");
        v["ActiveDirectoryConfig"]["HostAccountConfig"] = serde_json::json!({});
        assert_eq!(label(&v), "other");
    }

    #[test]
    fn lookups_ignore_case_and_braces() {
        for g in [
            "{859E1386-BDB4-49E8-85C7-3070B13920E1}",
            "859e1386-bdb4-49e8-85c7-3070b13920e1",
            " {859e1386-BDB4-49e8-85c7-3070b13920e1} ",
        ] {
            assert_eq!(by_guid(g).map(|p| p.key), Some("aws"), "{g}");
        }
        assert_eq!(
            by_guid("e4781092-f116-4b79-b55e-28eb6a224e26").map(|p| p.key),
            Some("rancher")
        );
        assert_eq!(
            by_guid("{CCC2A336-D7F3-4818-A213-272B7924213E}").map(|p| p.key),
            Some("azure-key-vault")
        );
        assert!(by_guid("{00000000-0000-0000-0000-000000000000}").is_none());
        for p in PLUGINS {
            assert_eq!(by_key(p.key).map(|q| q.guid), Some(p.guid));
        }
    }

    const ARN: &str = "arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-plugin-input";

    /// Each row: plugin, input, expected outcome (`Ok` or a fragment of the error).
    #[test]
    fn each_plugin_accepts_its_form_and_refuses_each_kind_of_mistake() {
        let rows: &[(&Plugin, &str, Result<(), &str>)] = &[
            // AWS: the form of the ECS developer guide, and SSM.
            (&AWS, &format!(r#"{{"credentialArn": "{ARN}"}}"#), Ok(())),
            (&AWS, r#"{"CredentialArn": "arn:aws:ssm:eu-central-1:123456789012:parameter/gmsa"}"#, Ok(())),
            (&AWS, r#"{"credentialArn": "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x"}"#, Ok(())),
            (&AWS, "not json", Err("not a JSON object")),
            (&AWS, "contoso.com:gmsa-cred-reader:secret-name", Err("not a JSON object")),
            (&AWS, r#"{"arn": "x"}"#, Err("no single \"credentialArn\"")),
            (&AWS, r#"{"credentialArn": 5}"#, Err("not a string")),
            (&AWS, r#"{"credentialArn": "arn:aws:s3:::bucket/key"}"#, Err("neither Secrets Manager")),
            (&AWS, r#"{"credentialArn": "arn:aws:secretsmanager:uswest2:123456789012:secret:x"}"#, Err("region")),
            (&AWS, r#"{"credentialArn": "arn:aws:secretsmanager:us-west-2:1234:secret:x"}"#, Err("12-digit")),
            (&AWS, r#"{"credentialArn": "arn:aws:ssm:us-west-2:123456789012:secret:x"}"#, Err("resource")),
            (&AWS, r#"{"credentialArn": "secret-name"}"#, Err("not an ARN")),
            // Azure Key Vault: the form of the AKS gMSA docs; keys in any case.
            (&AZURE_KEY_VAULT, "ObjectId=244818ae-87ca-4fcd-92ec-e79e5252348a;SecretUri=https://mygmsavault.vault.azure.net/secrets/GMSADomainUserCred", Ok(())),
            (&AZURE_KEY_VAULT, "objectid=244818ae-87ca-4fcd-92ec-e79e5252348a;SECRETURI=https://v-1.vault.azure.net/secrets/s/0123abcd", Ok(())),
            (&AZURE_KEY_VAULT, "ObjectId=me;SecretUri=https://v12.vault.azure.net/secrets/s", Err("ObjectId is not a GUID")),
            (&AZURE_KEY_VAULT, "ObjectId=244818ae-87ca-4fcd-92ec-e79e5252348a;SecretUri=http://v12.vault.azure.net/secrets/s", Err("https Key Vault")),
            (&AZURE_KEY_VAULT, "ObjectId=244818ae-87ca-4fcd-92ec-e79e5252348a;SecretUri=https://example.com/secrets/s", Err("https Key Vault")),
            (&AZURE_KEY_VAULT, "ObjectId=244818ae-87ca-4fcd-92ec-e79e5252348a;SecretUri=https://v12.vault.azure.net/keys/s", Err("https Key Vault")),
            (&AZURE_KEY_VAULT, "ObjectId=244818ae-87ca-4fcd-92ec-e79e5252348a", Err("lacks")),
            (&AZURE_KEY_VAULT, "ObjectId=244818ae-87ca-4fcd-92ec-e79e5252348a;Password=x", Err("other than")),
            (&AZURE_KEY_VAULT, "just text", Err("KEY=VALUE")),
            // Rancher: NAMESPACE:SECRET as CcgCredentialsProvider.cs splits it.
            (&RANCHER, "cattle-windows-gmsa-system:gmsa-reader", Ok(())),
            (&RANCHER, "a:b:c", Err("exactly two parts")),
            (&RANCHER, "just-one", Err("exactly two parts")),
            (&RANCHER, "Bad_NS:secret", Err("namespace")),
            (&RANCHER, "ns:Bad_Secret", Err("Secret name")),
        ];
        for (plugin, input, want) in rows {
            let got = plugin.parse(input);
            match (want, &got) {
                (Ok(()), Ok(parsed)) => {
                    assert_eq!(parsed.plugin().key, plugin.key);
                    assert_eq!(plugin.parse(&parsed.to_plugin_input()).as_ref(), Ok(parsed));
                }
                (Err(fragment), Err(InputError(message))) => {
                    assert!(
                        message.contains(fragment),
                        "{}: {input}: {message}",
                        plugin.key
                    );
                }
                _ => panic!("{}: {input}: expected {want:?}, got {got:?}", plugin.key),
            }
        }
    }

    #[test]
    fn errors_never_repeat_the_input() {
        let secret = "hunter2-SECRET";
        for plugin in PLUGINS {
            for input in [
                secret.to_string(),
                format!("{{\"credentialArn\": \"{secret}\"}}"),
                format!("ObjectId={secret};SecretUri={secret}"),
                format!("{secret}:{secret}:x"),
            ] {
                if let Err(InputError(m)) = plugin.parse(&input) {
                    assert!(!m.contains(secret), "{}: {m}", plugin.key);
                }
            }
        }
    }

    #[test]
    fn builders_write_the_vendor_forms() {
        // docs.aws.amazon.com ECS guide: "{\"credentialArn\": \"arn:...\"}" as a string.
        let aws = PluginInput::Aws {
            credential_arn: ARN.into(),
        };
        assert_eq!(
            aws.checked().map(|i| i.to_plugin_input()),
            Ok(format!(r#"{{"credentialArn":"{ARN}"}}"#))
        );
        // learn.microsoft.com AKS gMSA: ObjectId=...;SecretUri=https://...
        let akv = PluginInput::AzureKeyVault {
            object_id: "244818ae-87ca-4fcd-92ec-e79e5252348a".into(),
            secret_uri: "https://mygmsavault.vault.azure.net/secrets/GMSADomainUserCred".into(),
        };
        assert_eq!(
            akv.checked().map(|i| i.to_plugin_input()),
            Ok("ObjectId=244818ae-87ca-4fcd-92ec-e79e5252348a;SecretUri=https://mygmsavault.vault.azure.net/secrets/GMSADomainUserCred".to_string())
        );
        let rancher = PluginInput::Rancher {
            namespace: "cattle-windows-gmsa-system".into(),
            secret_name: "reader".into(),
        };
        assert_eq!(
            rancher.checked().map(|i| i.to_plugin_input()),
            Ok("cattle-windows-gmsa-system:reader".to_string())
        );
        let bad = PluginInput::Aws {
            credential_arn: "nope".into(),
        };
        assert!(bad.checked().is_err());
    }
}
