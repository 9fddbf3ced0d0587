//! Readers: bytes → text (UTF-8 with or without BOM, UTF-16 LE/BE with BOM, CRLF or LF) →
//! either a credential-spec JSON (as `New-CredentialSpec` writes it) or a
//! `GMSACredentialSpec` manifest (YAML or JSON, `windows.k8s.io/v1` or `v1alpha1`).
//!
//! Input is read through [`Read::take`], so an oversized file is refused after
//! [`MAX_INPUT_BYTES`] + 1 bytes without reading the rest.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::credspec::{CredSpec, CredSpecError};
use crate::resource::{GMSACredentialSpec, API_VERSION, GROUP, KIND, VERSION_V1ALPHA1};

/// The largest input accepted: 1 MiB (a credential spec is about 1 KB).
pub const MAX_INPUT_BYTES: u64 = 1024 * 1024;

/// How the input text was encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 without a byte-order mark.
    Utf8,
    /// UTF-8 with a byte-order mark (`EF BB BF`).
    Utf8Bom,
    /// UTF-16 little endian with a byte-order mark (what Windows PowerShell's `>` writes).
    Utf16Le,
    /// UTF-16 big endian with a byte-order mark.
    Utf16Be,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf8Bom => "UTF-8 with BOM",
            Encoding::Utf16Le => "UTF-16 LE",
            Encoding::Utf16Be => "UTF-16 BE",
        })
    }
}

/// What kind of document the input was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// A bare credential spec (JSON).
    CredSpecJson,
    /// A `GMSACredentialSpec` manifest.
    Manifest {
        /// Its `apiVersion` (`windows.k8s.io/v1` or `windows.k8s.io/v1alpha1`).
        api_version: String,
    },
}

/// Why an input could not be read. The messages say what is wrong and what to give instead;
/// callers prefix them with the file name.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Reading failed.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// More than the limit.
    #[error("is larger than {limit} bytes; a credential spec is about 1 KB: check that this is the right file")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// Nothing (or only white space) in it.
    #[error("is empty; expected a credential spec (JSON) or a GMSACredentialSpec manifest")]
    Empty,
    /// Not text in a supported encoding.
    #[error("is not text ({detail}); expected UTF-8, or UTF-16 with a byte-order mark")]
    NotText {
        /// What was found, e.g. `invalid UTF-8 at byte 3`.
        detail: String,
    },
    /// UTF-16 without a byte-order mark cannot be told apart reliably.
    #[error("looks like UTF-16 without a byte-order mark; save it as UTF-8 (e.g. `Get-Content F | Set-Content -Encoding utf8 F2`)")]
    Utf16WithoutBom,
    /// JSON or YAML syntax error.
    #[error("is not valid {syntax}: {message}")]
    Syntax {
        /// `JSON` or `YAML`.
        syntax: &'static str,
        /// The parser's message (with line and column).
        message: String,
    },
    /// The document is not a JSON/YAML object.
    #[error("holds a {found}, not an object; expected a credential spec (JSON) or a GMSACredentialSpec manifest")]
    NotAnObject {
        /// The JSON type found, e.g. `string`.
        found: &'static str,
    },
    /// A Kubernetes object of another kind.
    #[error("is a {kind} ({api_version}), not a GMSACredentialSpec; give one GMSACredentialSpec manifest or a credential spec JSON")]
    WrongKind {
        /// Its `kind`.
        kind: String,
        /// Its `apiVersion`.
        api_version: String,
    },
    /// A `GMSACredentialSpec` of an unknown `apiVersion`.
    #[error(
        "has apiVersion \"{api_version}\"; expected windows.k8s.io/v1 or windows.k8s.io/v1alpha1"
    )]
    UnsupportedVersion {
        /// The `apiVersion` found.
        api_version: String,
    },
    /// A manifest without a `credspec`.
    #[error("is a GMSACredentialSpec manifest without `credspec` (or it is null); add the credential spec under the top-level key `credspec`")]
    NoCredspec,
    /// An object that is neither a manifest nor a credential spec.
    #[error("is neither a credential spec (no CmsPlugins, DomainJoinConfig or ActiveDirectoryConfig) nor a GMSACredentialSpec manifest (no apiVersion/kind); found keys: {keys}")]
    Unrecognized {
        /// The top-level keys found (at most a few).
        keys: String,
    },
    /// A value of the wrong type inside the credential spec.
    #[error("`{path}`: {message}")]
    Shape {
        /// The path from the document's root, e.g. `credspec.DomainJoinConfig.Sid`.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// A parsed input.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Credential spec JSON or manifest.
    pub format: Format,
    /// The text encoding found.
    pub encoding: Encoding,
    /// For a manifest: `metadata.name`, `labels` and `annotations` (server-set fields and
    /// `kubectl.kubernetes.io/last-applied-configuration` dropped). `None` for a bare spec.
    pub metadata: Option<ObjectMeta>,
    /// The credential spec, verbatim.
    pub raw: Value,
}

impl Document {
    /// `"credspec."` for a manifest, `""` for a bare spec: the prefix that turns a path inside
    /// the credspec into a path inside this document.
    pub fn path_prefix(&self) -> &'static str {
        match self.format {
            Format::CredSpecJson => "",
            Format::Manifest { .. } => "credspec.",
        }
    }

    /// `metadata.name` of a manifest.
    pub fn name(&self) -> Option<&str> {
        self.metadata.as_ref()?.name.as_deref()
    }

    /// The typed credential spec; the error's path starts at the document root.
    pub fn typed(&self) -> Result<CredSpec, InputError> {
        CredSpec::from_value(&self.raw).map_err(|err| match err {
            CredSpecError::Shape { path, message } => InputError::Shape {
                path: if path == "." {
                    self.path_prefix().trim_end_matches('.').to_string()
                } else {
                    format!("{}{path}", self.path_prefix())
                },
                message,
            },
            CredSpecError::Missing => InputError::NoCredspec,
        })
    }

    /// The `GMSACredentialSpec` this document describes, named `name`, with the credspec
    /// verbatim and (for a manifest) its labels and annotations.
    pub fn to_resource(&self, name: &str) -> GMSACredentialSpec {
        let mut metadata = self.metadata.clone().unwrap_or_default();
        metadata.name = Some(name.to_string());
        GMSACredentialSpec {
            metadata,
            credspec: Some(self.raw.clone()),
        }
    }
}

/// Reads at most `limit` bytes; refuses more without reading past `limit + 1`.
pub fn read_limited<R: Read>(reader: R, limit: u64) -> Result<Vec<u8>, InputError> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge { limit });
    }
    Ok(bytes)
}

/// Decodes text: UTF-8 (a BOM is removed) or UTF-16 with a BOM. Refuses NUL characters and
/// invalid sequences.
pub fn decode(bytes: &[u8]) -> Result<(String, Encoding), InputError> {
    let (text, encoding) = if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        (utf8(rest, 3)?, Encoding::Utf8Bom)
    } else if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        (utf16(rest, u16::from_le_bytes)?, Encoding::Utf16Le)
    } else if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        (utf16(rest, u16::from_be_bytes)?, Encoding::Utf16Be)
    } else {
        if looks_like_utf16(bytes) {
            return Err(InputError::Utf16WithoutBom);
        }
        (utf8(bytes, 0)?, Encoding::Utf8)
    };
    if let Some(pos) = text.find('\0') {
        return Err(InputError::NotText {
            detail: format!("NUL character at character {pos}"),
        });
    }
    Ok((text, encoding))
}

fn utf8(bytes: &[u8], offset: usize) -> Result<String, InputError> {
    String::from_utf8(bytes.to_vec()).map_err(|err| InputError::NotText {
        detail: format!(
            "invalid UTF-8 at byte {}",
            err.utf8_error().valid_up_to() + offset
        ),
    })
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, InputError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(InputError::NotText {
            detail: "UTF-16 with an odd number of bytes (truncated?)".to_string(),
        });
    }
    let units = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|err| InputError::NotText {
            detail: format!(
                "invalid UTF-16 (unpaired surrogate {:#06x})",
                err.unpaired_surrogate()
            ),
        })
}

/// ASCII text in UTF-16 has a NUL in every other byte.
fn looks_like_utf16(bytes: &[u8]) -> bool {
    let sample = &bytes[..bytes.len().min(64)];
    if sample.len() < 4 {
        return false;
    }
    let even_nul = sample.iter().step_by(2).all(|b| *b == 0);
    let odd_nul = sample.iter().skip(1).step_by(2).all(|b| *b == 0);
    even_nul || odd_nul
}

/// Credential specs never need YAML anchors, and a few kilobytes of nested aliases expand to
/// hundreds of megabytes in serde_norway (it refuses only the extreme bombs; the fuzzer found
/// 5 KB inputs that took ~320 MB). So any alias is refused before the real parse: a pass with
/// serde-saphyr's event budget set to zero aliases, deserializing into nothing. Any other
/// complaint of that pass is left to the real parser, which reports it in its own words.
fn refuse_yaml_aliases(text: &str) -> Result<(), InputError> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_aliases: 0 },
    };
    match serde_saphyr::from_str_with_options::<serde::de::IgnoredAny>(text, options) {
        Err(err) if is_alias_breach(&err) => Err(InputError::Syntax {
            syntax: "YAML",
            message: "YAML aliases (`*name`) are not accepted in a credential spec: write the \
                      aliased values out in full"
                .into(),
        }),
        _ => Ok(()),
    }
}

/// Whether serde-saphyr stopped at the alias budget (under any snippet or alias wrappers).
fn is_alias_breach(mut err: &serde_saphyr::Error) -> bool {
    loop {
        match err {
            serde_saphyr::Error::WithSnippet { error, .. }
            | serde_saphyr::Error::AliasError { error, .. } => err = error,
            serde_saphyr::Error::Budget {
                breach: serde_saphyr::budget::BudgetBreach::Aliases { .. },
                ..
            } => return true,
            _ => return false,
        }
    }
}

/// Parses decoded text into a [`Document`] (with `encoding` recorded).
pub fn parse(text: &str, encoding: Encoding) -> Result<Document, InputError> {
    let trimmed = text.trim_start();
    if trimmed.trim_end().is_empty() {
        return Err(InputError::Empty);
    }
    let value: Value = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|err| InputError::Syntax {
            syntax: "JSON",
            message: err.to_string(),
        })?
    } else {
        refuse_yaml_aliases(text)?;
        serde_norway::from_str(text).map_err(|err| InputError::Syntax {
            syntax: "YAML",
            message: err.to_string(),
        })?
    };
    let Value::Object(mut object) = value else {
        return Err(InputError::NotAnObject {
            found: json_type(&value),
        });
    };
    if object.contains_key("apiVersion") || object.contains_key("kind") {
        let field = |o: &serde_json::Map<String, Value>, k: &str| {
            o.get(k).and_then(Value::as_str).unwrap_or("").to_string()
        };
        let api_version = field(&object, "apiVersion");
        let kind = field(&object, "kind");
        let (group, _) = api_version.split_once('/').unwrap_or(("", ""));
        if kind != KIND || group != GROUP {
            return Err(InputError::WrongKind {
                kind: if kind.is_empty() {
                    "<no kind>".into()
                } else {
                    kind
                },
                api_version: if api_version.is_empty() {
                    "<no apiVersion>".into()
                } else {
                    api_version
                },
            });
        }
        if api_version != API_VERSION && api_version != format!("{GROUP}/{VERSION_V1ALPHA1}") {
            return Err(InputError::UnsupportedVersion { api_version });
        }
        let raw = match object.remove("credspec") {
            None | Some(Value::Null) => return Err(InputError::NoCredspec),
            Some(raw) => raw,
        };
        let metadata = match object.remove("metadata") {
            None | Some(Value::Null) => ObjectMeta::default(),
            Some(meta) => {
                serde_path_to_error::deserialize::<_, ObjectMeta>(meta).map_err(|err| {
                    InputError::Shape {
                        path: format!("metadata.{}", err.path()),
                        message: err.into_inner().to_string(),
                    }
                })?
            }
        };
        Ok(Document {
            format: Format::Manifest { api_version },
            encoding,
            metadata: Some(portable_metadata(metadata)),
            raw,
        })
    } else if ["CmsPlugins", "DomainJoinConfig", "ActiveDirectoryConfig"]
        .iter()
        .any(|k| object.contains_key(*k))
    {
        Ok(Document {
            format: Format::CredSpecJson,
            encoding,
            metadata: None,
            raw: Value::Object(object),
        })
    } else {
        let mut keys: Vec<&str> = object.keys().map(String::as_str).take(5).collect();
        if object.len() > keys.len() {
            keys.push("...");
        }
        Err(InputError::Unrecognized {
            keys: if keys.is_empty() {
                "none".to_string()
            } else {
                keys.join(", ")
            },
        })
    }
}

/// Reads, decodes and parses one input of at most [`MAX_INPUT_BYTES`].
pub fn read_document<R: Read>(reader: R) -> Result<Document, InputError> {
    let bytes = read_limited(reader, MAX_INPUT_BYTES)?;
    let (text, encoding) = decode(&bytes)?;
    parse(&text, encoding)
}

/// Keeps what a user wrote (name, labels, annotations) and drops what the server set.
fn portable_metadata(meta: ObjectMeta) -> ObjectMeta {
    let annotations: Option<BTreeMap<String, String>> = meta.annotations.map(|a| {
        a.into_iter()
            .filter(|(k, _)| k != "kubectl.kubernetes.io/last-applied-configuration")
            .collect()
    });
    ObjectMeta {
        name: meta.name,
        labels: meta.labels.filter(|l| !l.is_empty()),
        annotations: annotations.filter(|a| !a.is_empty()),
        ..ObjectMeta::default()
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_limited_stops_after_the_limit() {
        struct Endless(u64);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.0 += buf.len() as u64;
                buf.fill(b' ');
                Ok(buf.len())
            }
        }
        let mut source = Endless(0);
        let err = read_limited(&mut source, 10).expect_err("too large");
        assert!(matches!(err, InputError::TooLarge { limit: 10 }));
        assert!(source.0 < 1024, "read {} bytes", source.0);
        assert_eq!(
            read_limited(&b"0123456789"[..], 10)
                .expect("at the limit")
                .len(),
            10
        );
    }

    #[test]
    fn decode_table() {
        let utf16le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("{\"a\":1}".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let utf16be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("{\"é\":1}".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        type Row = (Vec<u8>, Result<(&'static str, Encoding), &'static str>);
        let rows: Vec<Row> = vec![
            (b"{}".to_vec(), Ok(("{}", Encoding::Utf8))),
            (b"\xEF\xBB\xBF{}".to_vec(), Ok(("{}", Encoding::Utf8Bom))),
            (utf16le, Ok(("{\"a\":1}", Encoding::Utf16Le))),
            (utf16be, Ok(("{\"é\":1}", Encoding::Utf16Be))),
            (b"\xFF\xFE{\x00}".to_vec(), Err("odd number")),
            (b"\xFF\xFE\x00\xD8".to_vec(), Err("unpaired surrogate")),
            (
                b"{\x00\"\x00a\x00\"\x00".to_vec(),
                Err("UTF-16 without a byte-order mark"),
            ),
            (
                b"{\"a\": \"\xC3\x28\"}".to_vec(),
                Err("invalid UTF-8 at byte 7"),
            ),
            (
                b"\xEF\xBB\xBF\xC3\x28".to_vec(),
                Err("invalid UTF-8 at byte 3"),
            ),
            (b"{}\x00".to_vec(), Err("NUL")),
        ];
        for (bytes, want) in rows {
            match (decode(&bytes), want) {
                (Ok((text, enc)), Ok((t, e))) => assert_eq!((text.as_str(), enc), (t, e)),
                (Err(err), Err(fragment)) => {
                    assert!(err.to_string().contains(fragment), "{bytes:?}: {err}")
                }
                (got, want) => panic!("{bytes:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn parse_errors_table() {
        let rows = [
            ("", "is empty"),
            (" \r\n\t", "is empty"),
            ("{\"CmsPlugins\": [", "is not valid JSON"),
            ("\"just a string\"", "holds a string"),
            ("[1, 2]", "holds a list"),
            ("a: [b", "is not valid YAML"),
            ("hello", "holds a string"),
            ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "is a ConfigMap (v1)"),
            ("apiVersion: windows.k8s.io/v2\nkind: GMSACredentialSpec\ncredspec: {}\n", "has apiVersion \"windows.k8s.io/v2\""),
            ("apiVersion: windows.k8s.io/v1\nkind: GMSACredentialSpec\nmetadata: {name: x}\n", "without `credspec`"),
            ("apiVersion: windows.k8s.io/v1\nkind: GMSACredentialSpec\ncredspec: ~\n", "without `credspec`"),
            ("{\"Sid\": \"S-1-5-21-1-2-3\"}", "found keys: Sid"),
            ("apiVersion: windows.k8s.io/v1\nkind: GMSACredentialSpec\nmetadata: {name: 5}\ncredspec: {}\n", "`metadata.name`"),
            ("a: 1\n---\nb: 2\n", "more than one document"),
        ];
        for (text, fragment) in rows {
            let err = parse(text, Encoding::Utf8).expect_err(text);
            assert!(err.to_string().contains(fragment), "{text:?}: {err}");
        }
    }

    #[test]
    fn shape_errors_carry_the_document_path() {
        let doc = parse(
            "apiVersion: windows.k8s.io/v1\nkind: GMSACredentialSpec\ncredspec:\n  DomainJoinConfig:\n    Sid: [1]\n",
            Encoding::Utf8,
        )
        .expect("parse");
        let err = doc.typed().expect_err("wrong type");
        assert!(
            err.to_string()
                .starts_with("`credspec.DomainJoinConfig.Sid`: invalid type"),
            "{err}"
        );
        let doc = parse(
            "apiVersion: windows.k8s.io/v1\nkind: GMSACredentialSpec\ncredspec: 7\n",
            Encoding::Utf8,
        )
        .expect("parse");
        assert!(doc
            .typed()
            .expect_err("not an object")
            .to_string()
            .starts_with("`credspec`"));
    }

    #[test]
    fn manifest_metadata_keeps_only_what_a_user_wrote() {
        let doc = parse(
            r#"{"apiVersion": "windows.k8s.io/v1alpha1", "kind": "GMSACredentialSpec",
                "metadata": {"name": "webapp01", "uid": "u", "resourceVersion": "5",
                  "labels": {"team": "web"},
                  "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
                "credspec": {"CmsPlugins": ["ActiveDirectory"]}}"#,
            Encoding::Utf8,
        )
        .expect("parse");
        assert_eq!(
            doc.format,
            Format::Manifest {
                api_version: "windows.k8s.io/v1alpha1".into()
            }
        );
        let meta = doc.metadata.as_ref().expect("metadata");
        assert_eq!(meta.name.as_deref(), Some("webapp01"));
        assert_eq!(meta.uid, None);
        assert_eq!(meta.resource_version, None);
        assert_eq!(meta.annotations, None);
        assert_eq!(
            meta.labels.as_ref().map(|l| l["team"].as_str()),
            Some("web")
        );
        let resource = doc.to_resource("other");
        assert_eq!(resource.name(), "other");
        assert_eq!(resource.credspec, Some(doc.raw.clone()));
    }
}
