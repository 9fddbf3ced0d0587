//! The `GMSACredentialSpec` resource (`windows.k8s.io`, cluster scoped) and its
//! `kube::Resource` implementation.
//!
//! The spec sits in the top-level field `credspec` (not under `.spec`), so kube's
//! `CustomResource` derive does not fit; [`kube::Resource`] is implemented by hand.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use crate::credspec::{CredSpec, CredSpecError};

/// API group of the resource.
pub const GROUP: &str = "windows.k8s.io";
/// Storage version of the resource.
pub const VERSION: &str = "v1";
/// The older version, still served (deprecated), same schema.
pub const VERSION_V1ALPHA1: &str = "v1alpha1";
/// `apiVersion` of what this crate writes: `windows.k8s.io/v1`.
pub const API_VERSION: &str = "windows.k8s.io/v1";
/// Kind of the resource.
pub const KIND: &str = "GMSACredentialSpec";
/// Plural (the resource name in URLs and RBAC rules).
pub const PLURAL: &str = "gmsacredentialspecs";
/// Singular name.
pub const SINGULAR: &str = "gmsacredentialspec";

/// A `GMSACredentialSpec` object as the API server stores it.
///
/// `credspec` is kept as raw JSON exactly as stored, so a spec that the typed [`CredSpec`]
/// model would refuse can still be read and inlined verbatim (the webhook does that). Use
/// [`GMSACredentialSpec::typed`] for the typed view.
///
/// Serializes with `apiVersion: windows.k8s.io/v1` and `kind: GMSACredentialSpec` (so it can
/// be sent as a server-side apply body); deserializes from `v1` or `v1alpha1` (the schemas are
/// the same) and ignores `apiVersion`/`kind`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct GMSACredentialSpec {
    /// Standard object metadata (`metadata.name` is the name pods refer to).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The credential spec JSON, verbatim; `None` when the object has no `credspec` key.
    #[serde(default)]
    pub credspec: Option<serde_json::Value>,
}

impl GMSACredentialSpec {
    /// A new object named `name` holding `credspec`.
    pub fn new(name: &str, credspec: &CredSpec) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            credspec: Some(credspec.to_value()),
        }
    }

    /// `metadata.name`, or `""` when unset.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// The typed view of `credspec`. Errors when `credspec` is missing, `null`, or does not
    /// fit the model (the error names the JSON path).
    pub fn typed(&self) -> Result<CredSpec, CredSpecError> {
        match &self.credspec {
            None | Some(serde_json::Value::Null) => Err(CredSpecError::Missing),
            Some(value) => CredSpec::from_value(value),
        }
    }
}

impl GMSACredentialSpec {
    /// The object as reviewable YAML: `apiVersion`, `kind`, `metadata`, `credspec`, with the
    /// credspec's keys in the order `New-CredentialSpec` writes them (unknown keys after the
    /// known ones). The credspec's content is always exactly the stored JSON: when the typed
    /// model cannot represent it losslessly, it is written as stored (keys sorted).
    pub fn to_yaml(&self) -> Result<String, serde_norway::Error> {
        serde_norway::to_string(&self.ordered())
    }

    /// The object as pretty JSON, in the same order as [`GMSACredentialSpec::to_yaml`].
    pub fn to_json_pretty(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(&self.ordered())
    }

    /// Only the credspec, as pretty JSON in the same order (what `New-CredentialSpec` writes);
    /// `null` when the object has none.
    pub fn credspec_to_json_pretty(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(&self.ordered().credspec)
    }

    fn ordered(&self) -> Ordered<'_> {
        // The typed order only when it is lossless (e.g. an explicit `null` for a known
        // field would be dropped by the model); otherwise the stored JSON as it is.
        let credspec = self
            .credspec
            .as_ref()
            .map(|raw| match CredSpec::from_value(raw) {
                Ok(typed) if typed.to_value() == *raw => OrderedCredSpec::Typed(Box::new(typed)),
                _ => OrderedCredSpec::Raw(raw),
            });
        Ordered {
            api_version: API_VERSION,
            kind: KIND,
            metadata: &self.metadata,
            credspec,
        }
    }
}

#[derive(Serialize)]
struct Ordered<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    metadata: &'a ObjectMeta,
    #[serde(skip_serializing_if = "Option::is_none")]
    credspec: Option<OrderedCredSpec<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OrderedCredSpec<'a> {
    Typed(Box<CredSpec>),
    Raw(&'a serde_json::Value),
}

impl Serialize for GMSACredentialSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("apiVersion", API_VERSION)?;
        map.serialize_entry("kind", KIND)?;
        map.serialize_entry("metadata", &self.metadata)?;
        if let Some(credspec) = &self.credspec {
            map.serialize_entry("credspec", credspec)?;
        }
        map.end()
    }
}

impl kube::Resource for GMSACredentialSpec {
    type DynamicType = ();
    type Scope = k8s_openapi::ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(KIND)
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(GROUP)
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(VERSION)
    }
    fn api_version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(API_VERSION)
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(PLURAL)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    #[test]
    fn url_is_cluster_scoped_under_windows_k8s_io_v1() {
        assert_eq!(
            GMSACredentialSpec::url_path(&(), None),
            "/apis/windows.k8s.io/v1/gmsacredentialspecs"
        );
    }

    #[test]
    fn serializes_api_version_and_kind_first_and_skips_missing_credspec() {
        let spec = GMSACredentialSpec {
            metadata: ObjectMeta {
                name: Some("x".into()),
                ..ObjectMeta::default()
            },
            credspec: None,
        };
        let text = serde_json::to_string(&spec).expect("serialize");
        assert_eq!(
            text,
            r#"{"apiVersion":"windows.k8s.io/v1","kind":"GMSACredentialSpec","metadata":{"name":"x"}}"#
        );
    }

    #[test]
    fn missing_and_null_credspec_are_reported_as_missing() {
        for body in [
            r#"{"metadata":{"name":"x"}}"#,
            r#"{"metadata":{"name":"x"},"credspec":null}"#,
        ] {
            let spec: GMSACredentialSpec = serde_json::from_str(body).expect("parse");
            assert!(
                matches!(spec.typed(), Err(CredSpecError::Missing)),
                "{body}"
            );
        }
    }
}
