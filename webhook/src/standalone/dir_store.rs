//! [`DirSpecStore`]: credential specs from the manifest files of a directory, re-read when
//! they change.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Stamp, StandaloneError};
use crate::lookup::{Freshness, LookupError, SpecLookup, SpecStore};

/// The GMSACredentialSpec kind as it appears in manifests.
const SPEC_KIND: &str = gmsa_crd::resource::KIND;
/// The API group of GMSACredentialSpec.
const SPEC_GROUP: &str = gmsa_crd::resource::GROUP;

/// One spec read from a manifest: its name and what a lookup answers.
#[derive(Clone, Debug, PartialEq)]
struct ManifestSpec {
    name: String,
    lookup: SpecLookup,
}

/// Reads every `GMSACredentialSpec` in a YAML or JSON text (one or many documents; a `List`
/// is expanded). Documents of other kinds are skipped: a file may also hold RBAC objects.
fn parse_manifests(text: &str) -> Result<Vec<ManifestSpec>, String> {
    let mut out = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(document).map_err(|e| e.to_string())?;
        collect_specs(value, &mut out)?;
    }
    Ok(out)
}

fn collect_specs(value: serde_json::Value, out: &mut Vec<ManifestSpec>) -> Result<(), String> {
    let serde_json::Value::Object(mut object) = value else {
        // Empty documents (`---` at the end) parse as null.
        return Ok(());
    };
    let kind = object.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    if kind == "List" || kind.ends_with("List") && object.contains_key("items") {
        if let Some(serde_json::Value::Array(items)) = object.remove("items") {
            for item in items {
                collect_specs(item, out)?;
            }
        }
        return Ok(());
    }
    let api_version = object
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if kind != SPEC_KIND || api_version.split('/').next() != Some(SPEC_GROUP) {
        return Ok(());
    }
    let spec: gmsa_crd::GMSACredentialSpec =
        serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| format!("a {SPEC_KIND} does not parse: {e}"))?;
    let name = spec.name().to_string();
    if name.is_empty() {
        return Err(format!("a {SPEC_KIND} has no metadata.name"));
    }
    if matches!(&spec.credspec, Some(v) if !(v.is_object() || v.is_null())) {
        return Err(format!("{SPEC_KIND} {name}: credspec is not an object"));
    }
    let lookup = SpecLookup::of_credspec(spec.credspec.as_ref());
    out.push(ManifestSpec { name, lookup });
    Ok(())
}

/// The last good reading of one file.
#[derive(Clone, Debug)]
struct FileState {
    stamp: Stamp,
    specs: Vec<ManifestSpec>,
}

#[derive(Default)]
struct DirState {
    files: BTreeMap<PathBuf, FileState>,
    specs: HashMap<String, SpecLookup>,
    /// Files whose current version failed to parse (stamp of that version), so each bad
    /// version is logged once, not every poll.
    bad: HashMap<PathBuf, Stamp>,
}

/// Credential specs from the manifests (`*.yaml`, `*.yml`, `*.json`) in one directory,
/// re-read when a file changes ([`DirSpecStore::refresh`], or [`DirSpecStore::watch`] which
/// polls). A file that fails to parse is logged and skipped; its last good version (if any)
/// is kept, as are all other files. Hidden entries (`.x`, `..data`) are skipped, so a
/// ConfigMap mount works.
pub struct DirSpecStore {
    dir: PathBuf,
    state: RwLock<DirState>,
}

/// What a [`DirSpecStore::refresh`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefreshReport {
    /// Files read again (new or changed) and parsed.
    pub reloaded: Vec<PathBuf>,
    /// Files that vanished.
    pub removed: Vec<PathBuf>,
    /// Files that failed to parse, with the error.
    pub failed: Vec<(PathBuf, String)>,
}

impl RefreshReport {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.reloaded.is_empty() && self.removed.is_empty() && self.failed.is_empty()
    }
}

impl DirSpecStore {
    /// Reads every manifest in `dir`. Fails only when the directory itself cannot be read;
    /// bad files are logged and skipped.
    pub fn load(dir: impl Into<PathBuf>) -> Result<Self, StandaloneError> {
        let store = Self {
            dir: dir.into(),
            state: RwLock::default(),
        };
        store.refresh()?;
        Ok(store)
    }

    /// The directory read.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The names of the specs held, sorted.
    pub fn names(&self) -> Vec<String> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = state.specs.keys().cloned().collect();
        names.sort();
        names
    }

    fn manifest_files(&self) -> Result<Vec<(PathBuf, Stamp)>, StandaloneError> {
        let io = |error| StandaloneError::Io {
            path: self.dir.clone(),
            error,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let is_manifest = [".yaml", ".yml", ".json"]
                .iter()
                .any(|ext| name.to_ascii_lowercase().ends_with(ext));
            if name.starts_with('.') || !is_manifest {
                continue;
            }
            // Follows symlinks (ConfigMap mounts link name -> ..data/name).
            match std::fs::metadata(&path) {
                Ok(metadata) if metadata.is_file() => files.push((path, Stamp::of(&metadata))),
                Ok(_) => {}
                // Vanished between listing and stat, or a dangling link: treated as absent.
                Err(_) => {}
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(files)
    }

    /// Re-reads the files that changed since the last call (by mtime, size, inode).
    pub fn refresh(&self) -> Result<RefreshReport, StandaloneError> {
        let files = self.manifest_files()?;
        let mut report = RefreshReport::default();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let present: Vec<&PathBuf> = files.iter().map(|(p, _)| p).collect();
        let gone: Vec<PathBuf> = state
            .files
            .keys()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        for path in gone {
            state.files.remove(&path);
            tracing::info!(file = %path.display(), "credspec manifest removed");
            report.removed.push(path);
        }
        state.bad.retain(|p, _| present.contains(&p));
        for (path, stamp) in files {
            let known = state.files.get(&path).map(|f| f.stamp) == Some(stamp)
                || state.bad.get(&path) == Some(&stamp);
            if known {
                continue;
            }
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| parse_manifests(&text));
            match parsed {
                Ok(specs) => {
                    tracing::info!(file = %path.display(), specs = specs.len(), "credspec manifest read");
                    state.bad.remove(&path);
                    state.files.insert(path.clone(), FileState { stamp, specs });
                    report.reloaded.push(path);
                }
                Err(message) => {
                    tracing::warn!(
                        file = %path.display(),
                        error = %message,
                        "credspec manifest skipped: fix the file; its last good version (if any) is kept"
                    );
                    state.bad.insert(path.clone(), stamp);
                    report.failed.push((path, message));
                }
            }
        }
        if !report.reloaded.is_empty() || !report.removed.is_empty() {
            let mut specs = HashMap::new();
            for (path, file) in &state.files {
                for spec in &file.specs {
                    if specs.contains_key(&spec.name) {
                        tracing::warn!(
                            file = %path.display(),
                            credspec = %spec.name,
                            "duplicate credspec name ignored: the first file (sorted by name) wins"
                        );
                        continue;
                    }
                    specs.insert(spec.name.clone(), spec.lookup.clone());
                }
            }
            state.specs = specs;
        }
        Ok(report)
    }

    /// Polls the directory every `interval` and applies changes; runs until dropped.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        crate::poll_blocking(self, interval, "credspec directory", |store| {
            if let Err(e) = store.refresh() {
                tracing::warn!(error = %e, "credspec directory not readable; specs kept");
            }
        })
        .await
    }
}

#[async_trait]
impl SpecStore for DirSpecStore {
    async fn get(&self, name: &str, freshness: Freshness) -> Result<SpecLookup, LookupError> {
        if freshness == Freshness::Live {
            // A cheap re-scan (stat only unless something changed).
            if let Err(e) = self.refresh() {
                return Err(LookupError::Unavailable(e.to_string()));
            }
        }
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        Ok(state
            .specs
            .get(name)
            .cloned()
            .unwrap_or(SpecLookup::NotFound))
    }

    fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .specs
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEBAPP: &str = r#"
apiVersion: windows.k8s.io/v1
kind: GMSACredentialSpec
metadata:
  name: webapp01
credspec:
  ActiveDirectoryConfig:
    GroupManagedServiceAccounts:
    - Name: WebApp01
      Scope: CONTOSO
  CmsPlugins: [ActiveDirectory]
  DomainJoinConfig:
    DnsName: contoso.com
    Sid: S-1-5-21-1
"#;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write test file");
    }

    async fn lookup(store: &DirSpecStore, name: &str) -> SpecLookup {
        store
            .get(name, Freshness::Cached)
            .await
            .expect("dir store answers")
    }

    #[test]
    fn parse_manifests_table() {
        let json_doc = r#"{"apiVersion":"windows.k8s.io/v1alpha1","kind":"GMSACredentialSpec","metadata":{"name":"j"},"credspec":{"A":1}}"#;
        let list = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"windows.k8s.io/v1","kind":"GMSACredentialSpec","metadata":{"name":"l"},"credspec":{"B":2}}]}"#;
        // (what, text, Ok(specs as (name, has contents)) or Err when the file is refused)
        type Want = Result<Vec<(&'static str, bool)>, ()>;
        let cases: Vec<(&str, String, Want)> = vec![
            ("one yaml doc", WEBAPP.to_string(), Ok(vec![("webapp01", true)])),
            ("json, v1alpha1", json_doc.to_string(), Ok(vec![("j", true)])),
            ("list expanded", list.to_string(), Ok(vec![("l", true)])),
            (
                "many docs, other kinds skipped",
                format!("{WEBAPP}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: r}}\n---\n"),
                Ok(vec![("webapp01", true)]),
            ),
            (
                "empty credspec",
                "apiVersion: windows.k8s.io/v1\nkind: GMSACredentialSpec\nmetadata: {name: e}\ncredspec: {}\n".into(),
                Ok(vec![("e", false)]),
            ),
            (
                "missing credspec",
                "apiVersion: windows.k8s.io/v1\nkind: GMSACredentialSpec\nmetadata: {name: m}\n".into(),
                Ok(vec![("m", false)]),
            ),
            (
                "other group ignored",
                "apiVersion: example.com/v1\nkind: GMSACredentialSpec\nmetadata: {name: x}\n".into(),
                Ok(vec![]),
            ),
            ("empty file", String::new(), Ok(vec![])),
            (
                "no name",
                "apiVersion: windows.k8s.io/v1\nkind: GMSACredentialSpec\ncredspec: {A: 1}\n".into(),
                Err(()),
            ),
            (
                "credspec not an object",
                "apiVersion: windows.k8s.io/v1\nkind: GMSACredentialSpec\nmetadata: {name: s}\ncredspec: hello\n".into(),
                Err(()),
            ),
            ("not yaml", "key: [unclosed".into(), Err(())),
        ];
        for (what, text, want) in cases {
            let got = parse_manifests(&text)
                .map(|specs| {
                    specs
                        .iter()
                        .map(|s| (s.name.clone(), matches!(s.lookup, SpecLookup::Found(_))))
                        .collect::<Vec<_>>()
                })
                .map_err(|_| ());
            let want = want.map(|v| {
                v.into_iter()
                    .map(|(n, f)| (n.to_string(), f))
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn found_spec_is_compact_sorted_json() {
        let specs = parse_manifests(WEBAPP).expect("parses");
        let SpecLookup::Found(entry) = &specs[0].lookup else {
            panic!("webapp01 has contents");
        };
        assert!(entry.json.starts_with(r#"{"ActiveDirectoryConfig":{"#));
        assert!(!entry.json.contains(' '));
    }

    #[tokio::test]
    async fn dir_store_reads_skips_bad_and_follows_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "webapp.yaml", WEBAPP);
        write(dir.path(), "bad.yaml", "key: [unclosed");
        write(dir.path(), "notes.txt", "not a manifest");
        write(
            dir.path(),
            ".hidden.yaml",
            &WEBAPP.replace("webapp01", "hidden"),
        );
        let store = DirSpecStore::load(dir.path()).expect("load");
        assert_eq!(store.names(), vec!["webapp01".to_string()]);
        assert_eq!(store.len(), 1);
        assert!(store.ready().is_ok());
        assert!(matches!(
            lookup(&store, "webapp01").await,
            SpecLookup::Found(_)
        ));
        assert_eq!(lookup(&store, "nope").await, SpecLookup::NotFound);

        // Nothing changed: nothing re-read, the bad file is not reported again.
        assert!(store.refresh().expect("refresh").is_empty());

        // Fixing the bad file adds its spec; a new file is picked up.
        write(
            dir.path(),
            "bad.yaml",
            &WEBAPP.replace("webapp01", "second"),
        );
        write(
            dir.path(),
            "third.json",
            r#"{"apiVersion":"windows.k8s.io/v1","kind":"GMSACredentialSpec","metadata":{"name":"third"},"credspec":{}}"#,
        );
        let report = store.refresh().expect("refresh");
        assert_eq!(report.reloaded.len(), 2, "{report:?}");
        assert_eq!(store.names(), vec!["second", "third", "webapp01"]);
        assert_eq!(lookup(&store, "third").await, SpecLookup::NoCredSpec);

        // Breaking a good file keeps its last good version.
        write(dir.path(), "bad.yaml", "{{{{");
        let report = store.refresh().expect("refresh");
        assert_eq!(report.failed.len(), 1);
        assert!(matches!(
            lookup(&store, "second").await,
            SpecLookup::Found(_)
        ));

        // Removing a file removes its specs.
        std::fs::remove_file(dir.path().join("webapp.yaml")).expect("remove");
        let report = store.refresh().expect("refresh");
        assert_eq!(report.removed.len(), 1);
        assert_eq!(lookup(&store, "webapp01").await, SpecLookup::NotFound);
    }

    #[tokio::test]
    async fn live_lookup_rescans() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DirSpecStore::load(dir.path()).expect("load");
        write(dir.path(), "webapp.yml", WEBAPP);
        assert_eq!(lookup(&store, "webapp01").await, SpecLookup::NotFound);
        let live = store
            .get("webapp01", Freshness::Live)
            .await
            .expect("answers");
        assert!(matches!(live, SpecLookup::Found(_)));
    }

    #[test]
    fn duplicate_names_first_file_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "a.yaml", WEBAPP);
        write(dir.path(), "b.yaml", &WEBAPP.replace("WebApp01", "Other"));
        let store = DirSpecStore::load(dir.path()).expect("load");
        let state = store.state.read().expect("lock");
        let Some(SpecLookup::Found(entry)) = state.specs.get("webapp01") else {
            panic!("webapp01 present");
        };
        assert!(entry.json.contains("WebApp01"));
    }

    #[test]
    fn missing_dir_is_an_error_naming_it() {
        let err = DirSpecStore::load("/nonexistent/credspecs")
            .err()
            .expect("fails");
        assert!(err.to_string().contains("/nonexistent/credspecs"), "{err}");
    }
}
