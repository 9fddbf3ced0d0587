//! `gmsa-crd`: the `GMSACredentialSpec` custom resource (`windows.k8s.io`), its Rust types,
//! the credential-spec model (`CredSpec`) and its validation, and readers that turn Active
//! Directory output (any encoding) into a spec.
//!
//! # Public API
//!
//! - [`GMSACredentialSpec`] `{ metadata: ObjectMeta, credspec: Option<serde_json::Value> }`
//!   ([`resource`]): the resource, implementing [`kube::Resource`] (cluster scoped,
//!   `windows.k8s.io/v1`, plural `gmsacredentialspecs`), so
//!   `kube::Api::<GMSACredentialSpec>::all(client)`, reflectors and watchers work.
//!   `credspec` is the raw JSON exactly as stored; [`GMSACredentialSpec::typed`] parses it
//!   into a [`CredSpec`]; [`GMSACredentialSpec::new`] builds one from a name and a
//!   [`CredSpec`]; [`GMSACredentialSpec::to_yaml`] / [`GMSACredentialSpec::to_json_pretty`]
//!   print it in a stable, reviewable order. Serializing always writes
//!   `apiVersion: windows.k8s.io/v1` and `kind` (a valid server-side apply body).
//! - [`CredSpec`] ([`credspec`], with [`DomainJoinConfig`], [`ActiveDirectoryConfig`],
//!   [`GroupManagedServiceAccount`], [`HostAccountConfig`]): the credential-spec model with
//!   the exact PascalCase JSON names; every field optional; unknown fields kept (`extra`).
//!   [`CredSpec::from_value`] (errors name the JSON path) / [`CredSpec::to_value`];
//!   [`CredSpec::build`] makes what `New-CredentialSpec` would from a [`NewCredSpec`].
//! - [`validate()`](fn@validate) (module [`validate`](mod@validate)): `validate(&CredSpec) -> Vec<Problem>`; [`Problem`]
//!   `{ path, severity, message, hint }`, [`Severity`] `Error | Warning`, [`has_errors`].
//! - module [`ccg`]: the catalogue of CCG plugins ([`ccg::PLUGINS`]: AWS, Azure Key Vault,
//!   Rancher; [`ccg::by_guid`], [`ccg::by_key`]) with a parser per plugin
//!   ([`ccg::Plugin::parse`] → [`ccg::PluginInput`], whose `to_plugin_input` writes exactly
//!   what the plugin reads). `validate` checks known plugins' inputs with it;
//!   [`MAX_INLINED_BYTES`] / [`inlined_len`] are the API server's 64 KiB limit.
//! - module [`input`]: [`read_document`]`(impl Read) -> Result<Document, InputError>` reads at most
//!   [`MAX_INPUT_BYTES`], decodes UTF-8 / UTF-8 BOM / UTF-16 LE/BE with BOM, and recognises a
//!   credential-spec JSON or a `GMSACredentialSpec` manifest (YAML or JSON, v1 or v1alpha1).
//!   [`Document`] `{ format, encoding, metadata, raw }` with `typed()`, `to_resource(name)`.
//! - module [`name`]: [`default_name`]`(&CredSpec)` (lower-cased `MachineAccountName`, `_` → `-`)
//!   and [`check_name`] (RFC 1123 subdomain).
//! - module [`crd_manifest`]: [`crd_yaml`], [`crd_value`], [`crd()`] — the CRD generated from code
//!   (v1 storage, v1alpha1 served and deprecated), checked in at [`CRD_PATH`].
//! - module [`apply`](mod@apply): [`apply()`](fn@apply)`(kube::Client, &GMSACredentialSpec, force: bool)` server-side
//!   applies (field manager [`FIELD_MANAGER`] = `gmsa`) and returns the stored object.
//! - Constants: [`GROUP`], [`VERSION`], [`VERSION_V1ALPHA1`], [`API_VERSION`], [`KIND`],
//!   [`PLURAL`], [`SINGULAR`].
//!
//! # Examples
//!
//! From a file's bytes to a manifest, as `gmsa spec from-file` does:
//!
//! ```
//! use gmsa_crd::{default_name, has_errors, read_document, validate};
//!
//! let bytes = br#"{
//!   "CmsPlugins": ["ActiveDirectory"],
//!   "DomainJoinConfig": {"Sid": "S-1-5-21-2126729477-2524075714-3094792973",
//!     "MachineAccountName": "WebApp01", "Guid": "244818ae-87ca-4fcd-92ec-e79e5252348a",
//!     "DnsTreeName": "contoso.com", "DnsName": "contoso.com", "NetBiosName": "CONTOSO"},
//!   "ActiveDirectoryConfig": {"GroupManagedServiceAccounts": [
//!     {"Name": "WebApp01", "Scope": "contoso.com"}, {"Name": "WebApp01", "Scope": "CONTOSO"}]}
//! }"#;
//! let doc = read_document(&bytes[..])?;
//! let spec = doc.typed()?;
//! assert!(!has_errors(&validate(&spec)));
//! let name = default_name(&spec)?;
//! assert_eq!(name, "webapp01");
//! let yaml = doc.to_resource(&name).to_yaml()?;
//! assert!(yaml.starts_with("apiVersion: windows.k8s.io/v1\nkind: GMSACredentialSpec\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Reading specs from the cluster (the raw `credspec` is what a pod gets inlined):
//!
//! ```no_run
//! # async fn run(client: kube::Client) -> Result<(), kube::Error> {
//! use gmsa_crd::GMSACredentialSpec;
//! let api: kube::Api<GMSACredentialSpec> = kube::Api::all(client);
//! let spec = api.get("webapp01").await?;
//! let verbatim: Option<&serde_json::Value> = spec.credspec.as_ref();
//! # let _ = verbatim;
//! # Ok(())
//! # }
//! ```
pub mod apply;
pub mod ccg;
pub mod crd_manifest;
pub mod credspec;
mod guid;
pub mod input;
pub mod name;
pub mod resource;
pub mod validate;

pub use apply::{apply, FIELD_MANAGER};
pub use crd_manifest::{crd, crd_value, crd_yaml, CRD_PATH};
pub use credspec::{
    ActiveDirectoryConfig, CredSpec, CredSpecError, DomainInfo, DomainJoinConfig, Extra,
    GroupManagedServiceAccount, HostAccount, HostAccountConfig, NewCredSpec,
    ACTIVE_DIRECTORY_PLUGIN, PORTABLE_CCG_VERSION,
};
pub use input::{read_document, Document, Encoding, Format, InputError, MAX_INPUT_BYTES};
pub use name::{check_name, default_name, NameError};
pub use resource::{
    GMSACredentialSpec, API_VERSION, GROUP, KIND, PLURAL, SINGULAR, VERSION, VERSION_V1ALPHA1,
};
pub use validate::{has_errors, inlined_len, validate, Problem, Severity, MAX_INLINED_BYTES};
