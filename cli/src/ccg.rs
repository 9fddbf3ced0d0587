//! The `--ccg` options `gmsa spec new` and `gmsa spec from-dc` share: a known CCG plugin with
//! its own inputs (built and checked by `gmsa_crd::ccg`), or any plugin by GUID and raw input.

use anyhow::bail;
use gmsa_crd::ccg::{PluginInput, AWS, AZURE_KEY_VAULT, RANCHER};
use gmsa_crd::HostAccount;

/// `--ccg` values: the plugins of the catalogue (docs/ccg.md).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CcgPlugin {
    /// AWS (EKS/ECS Windows AMIs): credentials in Secrets Manager or SSM; needs --credential-arn.
    Aws,
    /// Azure Key Vault (AKS): needs --object-id and --secret-uri.
    AzureKeyVault,
    /// Rancher (rancher/Rancher-Plugin-gMSA): needs --account-provider-namespace and
    /// --reader-secret.
    Rancher,
}

/// HostAccountConfig for nodes that are not domain joined.
#[derive(clap::Args, Clone, Debug)]
pub struct CcgArgs {
    /// Write HostAccountConfig for this CCG plugin, its PluginInput built from the plugin's
    /// own flags below exactly as the plugin reads it.
    #[arg(long, value_enum, conflicts_with_all = ["ccg_plugin_guid", "ccg_plugin_input"])]
    pub ccg: Option<CcgPlugin>,
    /// --ccg aws: ARN of the Secrets Manager secret or SSM parameter holding the reader
    /// account's {"username", "password", "domainName"}.
    #[arg(
        long,
        value_name = "ARN",
        requires = "ccg",
        required_if_eq("ccg", "aws")
    )]
    pub credential_arn: Option<String>,
    /// --ccg azure-key-vault: object id of the managed identity the nodes use.
    #[arg(
        long,
        value_name = "GUID",
        requires = "ccg",
        required_if_eq("ccg", "azure-key-vault")
    )]
    pub object_id: Option<String>,
    /// --ccg azure-key-vault: https://VAULT.vault.azure.net/secrets/NAME holding
    /// DOMAIN\user:password of the reader account.
    #[arg(
        long,
        value_name = "URI",
        requires = "ccg",
        required_if_eq("ccg", "azure-key-vault")
    )]
    pub secret_uri: Option<String>,
    /// --ccg rancher: namespace of the Rancher gMSA account provider.
    #[arg(
        long,
        value_name = "NAMESPACE",
        requires = "ccg",
        required_if_eq("ccg", "rancher")
    )]
    pub account_provider_namespace: Option<String>,
    /// --ccg rancher: the Secret (in that namespace) with the reader account's credentials.
    #[arg(
        long,
        value_name = "NAME",
        requires = "ccg",
        required_if_eq("ccg", "rancher")
    )]
    pub reader_secret: Option<String>,
    /// Any other CCG plugin: its COM class id, braced or not.
    #[arg(long, requires = "ccg_plugin_input")]
    pub ccg_plugin_guid: Option<String>,
    /// Any other CCG plugin: its input (HostAccountConfig.PluginInput), written as given.
    #[arg(long, requires = "ccg_plugin_guid")]
    pub ccg_plugin_input: Option<String>,
}

impl CcgArgs {
    /// The HostAccountConfig to write, if any; a known plugin's input is checked by its parser.
    pub fn host_account(&self) -> anyhow::Result<Option<HostAccount>> {
        let given = |v: &Option<String>| v.clone().unwrap_or_default();
        let foreign = |key: &str, flags: &[(&str, &Option<String>)]| -> anyhow::Result<()> {
            match flags.iter().find(|(_, v)| v.is_some()) {
                Some((flag, _)) => bail!("--{flag} does not apply to --ccg {key}"),
                None => Ok(()),
            }
        };
        let input = match self.ccg {
            None => {
                return Ok(match (&self.ccg_plugin_guid, &self.ccg_plugin_input) {
                    (Some(guid), Some(input)) => Some(HostAccount {
                        plugin_guid: guid.clone(),
                        plugin_input: input.clone(),
                    }),
                    _ => None,
                })
            }
            Some(CcgPlugin::Aws) => {
                foreign(
                    AWS.key,
                    &[
                        ("object-id", &self.object_id),
                        ("secret-uri", &self.secret_uri),
                        (
                            "account-provider-namespace",
                            &self.account_provider_namespace,
                        ),
                        ("reader-secret", &self.reader_secret),
                    ],
                )?;
                PluginInput::Aws {
                    credential_arn: given(&self.credential_arn),
                }
            }
            Some(CcgPlugin::AzureKeyVault) => {
                foreign(
                    AZURE_KEY_VAULT.key,
                    &[
                        ("credential-arn", &self.credential_arn),
                        (
                            "account-provider-namespace",
                            &self.account_provider_namespace,
                        ),
                        ("reader-secret", &self.reader_secret),
                    ],
                )?;
                PluginInput::AzureKeyVault {
                    object_id: given(&self.object_id),
                    secret_uri: given(&self.secret_uri),
                }
            }
            Some(CcgPlugin::Rancher) => {
                foreign(
                    RANCHER.key,
                    &[
                        ("credential-arn", &self.credential_arn),
                        ("object-id", &self.object_id),
                        ("secret-uri", &self.secret_uri),
                    ],
                )?;
                PluginInput::Rancher {
                    namespace: given(&self.account_provider_namespace),
                    secret_name: given(&self.reader_secret),
                }
            }
        };
        let plugin = input.plugin();
        let input = input.checked().map_err(|why| {
            anyhow::anyhow!(
                "--ccg {}: {why}; the {} reads {}",
                plugin.key,
                plugin.name,
                plugin.input_form
            )
        })?;
        Ok(Some(HostAccount {
            plugin_guid: plugin.guid.to_string(),
            plugin_input: input.to_plugin_input(),
        }))
    }
}
