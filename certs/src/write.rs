//! Writers: the `kubernetes.io/tls` Secret (one write, never a mismatched pair), files in a
//! directory (a new timestamped directory swapped in through a `..data` symlink, as the kubelet
//! does for mounted Secrets, so readers see the old pair or the new pair and never a mix; key
//! 0600), and `caBundle` patches on webhook configurations.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use serde_json::{json, Value};

use crate::CertsError;

/// The label that marks objects gmsa created.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "gmsa");

/// A certificate, its key and the CA bundle, as PEM.
#[derive(Clone)]
pub struct Issued {
    /// `tls.crt`: the certificate (and any intermediates).
    pub cert_pem: String,
    /// `tls.key`: the private key (PKCS#8).
    pub key_pem: String,
    /// `ca.crt`: the CA bundle.
    pub ca_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The Secret to write: `existing` keeps its metadata (labels, annotations, owner references,
/// resourceVersion for an optimistic replace); data is exactly `tls.crt`, `tls.key`, `ca.crt`.
pub fn tls_secret(
    namespace: &str,
    name: &str,
    issued: &Issued,
    existing: Option<&Secret>,
) -> Secret {
    let mut metadata = existing
        .map(|s| s.metadata.clone())
        .unwrap_or_else(|| ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        });
    metadata.managed_fields = None;
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .entry(MANAGED_BY.0.to_string())
        .or_insert_with(|| MANAGED_BY.1.to_string());
    let data = BTreeMap::from([
        (
            "tls.crt".to_string(),
            ByteString(issued.cert_pem.clone().into_bytes()),
        ),
        (
            "tls.key".to_string(),
            ByteString(issued.key_pem.clone().into_bytes()),
        ),
        (
            "ca.crt".to_string(),
            ByteString(issued.ca_pem.clone().into_bytes()),
        ),
    ]);
    Secret {
        metadata,
        type_: Some("kubernetes.io/tls".to_string()),
        data: Some(data),
        ..Secret::default()
    }
}

/// `tls.crt`, `tls.key`, `ca.crt` of a Secret as text (absent or non-UTF-8 entries are `None`).
pub fn secret_texts(secret: &Secret) -> [Option<String>; 3] {
    let get = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    [get("tls.crt"), get("tls.key"), get("ca.crt")]
}

/// The file names written into a certificate directory.
pub const FILES: [&str; 3] = ["tls.crt", "tls.key", "ca.crt"];

/// Reads `tls.crt`, `tls.key`, `ca.crt` from `dir` (absent files are `None`).
pub fn read_dir_texts(dir: &Path) -> Result<[Option<String>; 3], CertsError> {
    let read = |name: &str| -> Result<Option<String>, CertsError> {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CertsError::io("read", &path, e)),
        }
    };
    Ok([read(FILES[0])?, read(FILES[1])?, read(FILES[2])?])
}

/// One file of a directory version: its name, its contents and its mode (`0o600` for a key).
pub type DirFile<'a> = (&'a str, &'a [u8], u32);

/// A new version written to a timestamped directory, not yet visible.
#[derive(Debug)]
struct Staged {
    dir: PathBuf,
    version: String,
    names: Vec<String>,
}

fn fsync_dir(dir: &Path) -> Result<(), CertsError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CertsError::io("sync directory", dir, e))
}

/// Step 1: writes `files` to `DIR/..<timestamp>/` (each with its exact mode), fsynced.
fn stage_dir(dir: &Path, files: &[DirFile<'_>]) -> Result<Staged, CertsError> {
    std::fs::create_dir_all(dir).map_err(|e| CertsError::io("create directory", dir, e))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let version = format!(
        "..{}.{:09}_{}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    );
    let vdir = dir.join(&version);
    std::fs::create_dir(&vdir).map_err(|e| CertsError::io("create directory", &vdir, e))?;
    std::fs::set_permissions(&vdir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| CertsError::io("set permissions on", &vdir, e))?;
    for &(name, bytes, mode) in files {
        let path = vdir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| CertsError::io("create", &path, e))?;
        // The mode given to open() is filtered by the umask; set it exactly.
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| CertsError::io("set permissions on", &path, e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| CertsError::io("write", &path, e))?;
    }
    fsync_dir(&vdir)?;
    Ok(Staged {
        dir: dir.to_path_buf(),
        version,
        names: files.iter().map(|(name, _, _)| name.to_string()).collect(),
    })
}

fn replace_symlink(dir: &Path, name: &str, target: &str) -> Result<(), CertsError> {
    let link = dir.join(name);
    if std::fs::read_link(&link).is_ok_and(|t| t == Path::new(target)) {
        return Ok(());
    }
    let tmp = dir.join(format!("{name}.gmsa-tmp"));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .map_err(|e| CertsError::io("create symlink", &tmp, e))?;
    std::fs::rename(&tmp, &link).map_err(|e| CertsError::io("rename symlink onto", &link, e))
}

/// Step 2: makes the staged version current with one atomic rename of `..data`, points each
/// file (`tls.crt` etc.) at `..data/`, and removes older versions.
fn commit_dir(staged: Staged) -> Result<(), CertsError> {
    let dir = &staged.dir;
    replace_symlink(dir, "..data", &staged.version)?;
    for name in &staged.names {
        replace_symlink(dir, name, &format!("..data/{name}"))?;
    }
    fsync_dir(dir)?;
    // Old versions (and versions staged by an interrupted run) are no longer referenced.
    let entries = std::fs::read_dir(dir).map_err(|e| CertsError::io("list", dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_version = name.starts_with("..") && name != "..data" && name != staged.version;
        if is_version && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

/// Writes `files` into `dir` the way the kubelet updates a mounted Secret: a new timestamped
/// directory `..<timestamp>` (fsynced, each file with its exact mode), then one atomic rename
/// of the `..data` symlink onto it, `NAME -> ..data/NAME` for each file (plain files in the
/// way are replaced), and older versions removed. Readers opening `dir/NAME` see the old set
/// or the new set, never a mix.
pub fn swap_dir(dir: &Path, files: &[DirFile<'_>]) -> Result<(), CertsError> {
    commit_dir(stage_dir(dir, files)?)
}

/// `tls.crt`, `tls.key` (0600), `ca.crt` of `issued`, as [`swap_dir`] writes them.
fn issued_files(issued: &Issued) -> [DirFile<'_>; 3] {
    [
        (FILES[0], issued.cert_pem.as_bytes(), 0o644),
        (FILES[1], issued.key_pem.as_bytes(), 0o600),
        (FILES[2], issued.ca_pem.as_bytes(), 0o644),
    ]
}

/// Writes `issued` into `dir` atomically ([`swap_dir`]).
pub fn write_dir(dir: &Path, issued: &Issued) -> Result<(), CertsError> {
    swap_dir(dir, &issued_files(issued))
}

/// The JSON patch that sets `caBundle` (base64 of `ca_pem`) on every webhook in a webhook
/// configuration, guarded by `test` operations on each webhook's name so a concurrent change
/// to the list fails the patch instead of patching the wrong entry, and that sets annotation
/// `key` to `value` (`None`: removes it) in the same request. `None` when every webhook already
/// has the bundle and the annotation is as wanted.
pub fn ca_bundle_patch(
    config: &Value,
    ca_pem: &str,
    (key, value): (&str, Option<&str>),
) -> Option<Value> {
    let want = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let webhooks = config["webhooks"].as_array()?;
    let mut ops = Vec::new();
    for (i, hook) in webhooks.iter().enumerate() {
        if hook["clientConfig"]["caBundle"].as_str() == Some(want.as_str()) {
            continue;
        }
        ops.push(
            json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": hook["name"]}),
        );
        if hook.get("clientConfig").is_none_or(Value::is_null) {
            ops.push(
                json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig"), "value": {}}),
            );
        }
        ops.push(json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": want}));
    }
    let annotations = &config["metadata"]["annotations"];
    let path = format!(
        "/metadata/annotations/{}",
        key.replace('~', "~0").replace('/', "~1")
    );
    match (annotations[key].as_str(), value) {
        (have, Some(v)) if have != Some(v) => ops.push(if annotations.is_object() {
            json!({"op": "add", "path": path, "value": v})
        } else {
            let one = serde_json::Map::from_iter([(key.to_string(), json!(v))]);
            json!({"op": "add", "path": "/metadata/annotations", "value": one})
        }),
        (Some(_), None) => ops.push(json!({"op": "remove", "path": path})),
        _ => {}
    }
    (!ops.is_empty()).then_some(Value::Array(ops))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(tag: &str) -> Issued {
        Issued {
            cert_pem: format!("cert {tag}"),
            key_pem: format!("key {tag}"),
            ca_pem: format!("ca {tag}"),
        }
    }

    fn texts(dir: &Path) -> [Option<String>; 3] {
        read_dir_texts(dir).expect("read")
    }

    #[test]
    fn dir_writes_are_atomic_and_the_key_is_private() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("certs");
        write_dir(&dir, &issued("1")).expect("first");
        assert_eq!(texts(&dir)[1].as_deref(), Some("key 1"));
        let mode = std::fs::metadata(dir.join("tls.key"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(dir.join("tls.crt"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);

        // Interrupted between staging and commit: readers still see the old, matching pair.
        let staged = stage_dir(&dir, &issued_files(&issued("2"))).expect("stage");
        assert_eq!(
            texts(&dir),
            [
                Some("cert 1".into()),
                Some("key 1".into()),
                Some("ca 1".into())
            ]
        );
        drop(staged);
        // The next run commits its own version and removes the leftovers.
        write_dir(&dir, &issued("3")).expect("third");
        assert_eq!(
            texts(&dir),
            [
                Some("cert 3".into()),
                Some("key 3".into()),
                Some("ca 3".into())
            ]
        );
        let versions: Vec<String> = std::fs::read_dir(&dir)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != "..data")
            .collect();
        assert_eq!(versions.len(), 1, "{versions:?}");
        assert!(
            std::fs::read_link(dir.join("tls.key")).is_ok(),
            "tls.key goes through ..data"
        );
    }

    #[test]
    fn swap_links_each_file_given_and_drops_the_old_version() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        swap_dir(dir, &[("tls.crt", b"one", 0o644)]).expect("first");
        assert_eq!(
            std::fs::read_to_string(dir.join("tls.crt")).expect("read"),
            "one"
        );
        let first = std::fs::read_link(dir.join("..data")).expect("..data");
        swap_dir(dir, &[("tls.crt", b"two", 0o644)]).expect("second");
        assert_eq!(
            std::fs::read_to_string(dir.join("tls.crt")).expect("read"),
            "two"
        );
        assert!(!dir.join(first).exists(), "old generation removed");
        assert!(std::fs::symlink_metadata(dir.join("tls.crt"))
            .expect("link")
            .file_type()
            .is_symlink());
        assert!(
            std::fs::symlink_metadata(dir.join("tls.key")).is_err(),
            "only the files given are linked"
        );
    }

    #[test]
    fn replaces_plain_files_left_by_other_tools() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for name in FILES {
            std::fs::write(tmp.path().join(name), "old").expect("write");
        }
        write_dir(tmp.path(), &issued("new")).expect("write");
        assert_eq!(texts(tmp.path())[0].as_deref(), Some("cert new"));
    }

    #[test]
    fn secret_keeps_metadata_and_holds_exactly_the_pair() {
        let existing = Secret {
            metadata: ObjectMeta {
                name: Some("s".into()),
                namespace: Some("n".into()),
                resource_version: Some("42".into()),
                labels: Some(BTreeMap::from([("team".to_string(), "x".to_string())])),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(BTreeMap::from([(
                "extra".to_string(),
                ByteString(b"x".to_vec()),
            )])),
            ..Secret::default()
        };
        let s = tls_secret("n", "s", &issued("1"), Some(&existing));
        assert_eq!(s.metadata.resource_version.as_deref(), Some("42"));
        let labels = s.metadata.labels.clone().expect("labels");
        assert_eq!(labels.get("team").map(String::as_str), Some("x"));
        assert_eq!(labels.get(MANAGED_BY.0).map(String::as_str), Some("gmsa"));
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(
            secret_texts(&s),
            [
                Some("cert 1".into()),
                Some("key 1".into()),
                Some("ca 1".into())
            ]
        );
        assert_eq!(s.data.as_ref().map(BTreeMap::len), Some(3));
        let fresh = tls_secret("n", "s", &issued("1"), None);
        assert_eq!(fresh.metadata.namespace.as_deref(), Some("n"));
        assert!(fresh.metadata.resource_version.is_none());
        assert!(
            !format!("{:?}", issued("secret")).contains("key secret"),
            "Debug redacts the key"
        );
    }

    const NO_NOTE: (&str, Option<&str>) = ("gmsa.k8s.io/note", None);

    #[test]
    fn ca_bundle_patch_table() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("CA");
        let config = json!({"webhooks": [
            {"name": "a", "clientConfig": {"service": {"name": "s"}}},
            {"name": "b", "clientConfig": {"caBundle": b64}},
            {"name": "c", "clientConfig": {"caBundle": "b2xk"}},
        ]});
        let patch = ca_bundle_patch(&config, "CA", NO_NOTE).expect("a and c need it");
        let mut patched = config.clone();
        json_patch::patch(
            &mut patched,
            &serde_json::from_value::<json_patch::Patch>(patch).expect("patch"),
        )
        .expect("applies");
        for i in 0..3 {
            assert_eq!(patched["webhooks"][i]["clientConfig"]["caBundle"], b64);
        }
        assert_eq!(
            patched["webhooks"][0]["clientConfig"]["service"]["name"],
            "s"
        );
        assert!(
            ca_bundle_patch(&patched, "CA", NO_NOTE).is_none(),
            "idempotent"
        );
        assert!(ca_bundle_patch(&json!({"webhooks": []}), "CA", NO_NOTE).is_none());
        // A reordered list fails the test operation instead of patching the wrong webhook.
        let patch = ca_bundle_patch(&config, "CA", NO_NOTE).expect("patch");
        let mut reordered = json!({"webhooks": [config["webhooks"][2], config["webhooks"][1], config["webhooks"][0]]});
        assert!(json_patch::patch(
            &mut reordered,
            &serde_json::from_value::<json_patch::Patch>(patch).expect("patch")
        )
        .is_err());
    }

    #[test]
    fn the_annotation_is_set_changed_and_removed_in_the_same_patch() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("CA");
        let hooks = json!([{"name": "a", "clientConfig": {"caBundle": b64}}]);
        let bare = json!({"metadata": {"name": "x"}, "webhooks": hooks});
        let other =
            json!({"metadata": {"name": "x", "annotations": {"team": "t"}}, "webhooks": hooks});
        let apply = |config: &Value, value: Option<&str>| {
            let mut doc = config.clone();
            let patch = ca_bundle_patch(config, "CA", ("gmsa.k8s.io/until", value))?;
            json_patch::patch(
                &mut doc,
                &serde_json::from_value::<json_patch::Patch>(patch).expect("patch"),
            )
            .expect("applies");
            Some(doc)
        };
        // (configuration, wanted value, annotations afterwards; None: no patch)
        let set = apply(&bare, Some("v1")).expect("set on a bare configuration");
        let table: Vec<(&str, &Value, Option<&str>, Option<Value>)> = vec![
            (
                "set",
                &bare,
                Some("v1"),
                Some(json!({"gmsa.k8s.io/until": "v1"})),
            ),
            (
                "beside others",
                &other,
                Some("v1"),
                Some(json!({"team": "t", "gmsa.k8s.io/until": "v1"})),
            ),
            ("unchanged", &set, Some("v1"), None),
            (
                "changed",
                &set,
                Some("v2"),
                Some(json!({"gmsa.k8s.io/until": "v2"})),
            ),
            ("removed", &set, None, Some(json!({}))),
            ("nothing to remove", &other, None, None),
        ];
        for (name, config, value, want) in table {
            let got = apply(config, value).map(|d| d["metadata"]["annotations"].clone());
            assert_eq!(got, want, "{name}");
        }
    }
}
