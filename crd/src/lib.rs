//! `gmsa-crd`: the `GMSACredentialSpec` custom resource (`windows.k8s.io`), its Rust types,
//! the credential-spec model (`CredSpec`) and its validation, and readers that turn Active
//! Directory output (any encoding) into a spec.
//!
//! # Public API
//!
//! - [`GMSACredentialSpec`] `{ metadata: ObjectMeta, credspec: Option<serde_json::Value> }`:
//!   the resource, implementing [`kube::Resource`] (cluster scoped, `windows.k8s.io/v1`,
//!   plural `gmsacredentialspecs`), so `kube::Api::<GMSACredentialSpec>::all(client)`,
//!   reflectors and watchers work. `credspec` is the raw JSON exactly as stored;
//!   [`GMSACredentialSpec::typed`] parses it into a [`CredSpec`];
//!   [`GMSACredentialSpec::new`] builds one from a name and a [`CredSpec`].
//! - [`CredSpec`] (with [`DomainJoinConfig`], [`ActiveDirectoryConfig`],
//!   [`GroupManagedServiceAccount`], [`HostAccountConfig`]): the credential-spec model with
//!   the exact PascalCase JSON names; unknown fields are kept (`extra`).
//!   [`CredSpec::from_value`] / [`CredSpec::to_value`]; [`CredSpec::build`] makes what
//!   `New-CredentialSpec` would from a [`NewCredSpec`].
//! - Constants: [`GROUP`], [`VERSION`], [`API_VERSION`], [`KIND`], [`PLURAL`].
pub mod credspec;
pub mod resource;

pub use credspec::{
    ActiveDirectoryConfig, CredSpec, CredSpecError, DomainInfo, DomainJoinConfig, Extra,
    GroupManagedServiceAccount, HostAccount, HostAccountConfig, NewCredSpec,
    ACTIVE_DIRECTORY_PLUGIN, PORTABLE_CCG_VERSION,
};
pub use resource::{
    GMSACredentialSpec, API_VERSION, GROUP, KIND, PLURAL, SINGULAR, VERSION, VERSION_V1ALPHA1,
};
