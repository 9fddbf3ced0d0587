//! [`PolicyAuthorizer`]: who may `use` which spec, from a small policy file, re-read when it
//! changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Stamp, StandaloneError};
use crate::lookup::{Authorizer, LookupError, UseDecision};

/// One rule of a policy file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRule {
    /// Namespace, or `*` for any.
    pub namespace: String,
    /// Service account name, or `*` for any.
    pub service_account: String,
    /// Spec names this service account may `use` (`*` for any).
    pub credspecs: Vec<String>,
}

impl PolicyRule {
    fn allows(&self, namespace: &str, service_account: &str, spec: &str) -> bool {
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        matches(&self.namespace, namespace)
            && matches(&self.service_account, service_account)
            && self.credspecs.iter().any(|c| matches(c, spec))
    }
}

fn parse_rules(text: &str) -> Result<Vec<PolicyRule>, String> {
    let file: PolicyFile = serde_norway::from_str(text).map_err(|e| {
        format!("{e} (expected a list of {{namespace, serviceAccount, credspecs: [names]}})")
    })?;
    let rules = match file {
        PolicyFile::List(rules) | PolicyFile::Rules { rules } => rules,
    };
    for (i, rule) in rules.iter().enumerate() {
        if rule.namespace.is_empty() || rule.service_account.is_empty() {
            return Err(format!(
                "rule {} has an empty namespace or serviceAccount (use \"*\" for any)",
                i + 1
            ));
        }
    }
    Ok(rules)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PolicyFile {
    List(Vec<PolicyRule>),
    Rules {
        #[serde(rename = "rules")]
        rules: Vec<PolicyRule>,
    },
}

/// Authorization from a YAML policy file: a list of
/// `{namespace, serviceAccount, credspecs: [names]}` (`*` matches anything in each field).
/// Anything not listed is denied.
///
/// ```yaml
/// - namespace: web
///   serviceAccount: frontend
///   credspecs: [webapp01]
/// - namespace: "*"
///   serviceAccount: gmsa-tester
///   credspecs: ["*"]
/// ```
///
/// Re-read by [`PolicyAuthorizer::watch`] when the file changes; a new version that does not
/// parse is logged and the previous rules are kept.
#[derive(Debug)]
pub struct PolicyAuthorizer {
    source: String,
    path: Option<PathBuf>,
    rules: RwLock<Arc<Vec<PolicyRule>>>,
    /// Version of the file last read (good or bad), so each version is read once.
    stamp: std::sync::Mutex<Option<Stamp>>,
}

impl PolicyAuthorizer {
    /// Reads and checks a policy file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, StandaloneError> {
        let path = path.as_ref();
        let (rules, stamp) = Self::read(path)?;
        Ok(Self {
            source: path.display().to_string(),
            path: Some(path.to_path_buf()),
            rules: RwLock::new(Arc::new(rules)),
            stamp: std::sync::Mutex::new(Some(stamp)),
        })
    }

    fn read(path: &Path) -> Result<(Vec<PolicyRule>, Stamp), StandaloneError> {
        let io = |error| StandaloneError::Io {
            path: path.to_path_buf(),
            error,
        };
        let stamp = Stamp::of(&std::fs::metadata(path).map_err(io)?);
        let text = std::fs::read_to_string(path).map_err(io)?;
        let rules = parse_rules(&text).map_err(|message| StandaloneError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        Ok((rules, stamp))
    }

    /// Parses policy text; `source` names it in reasons.
    pub fn parse(text: &str, source: &str) -> Result<Self, String> {
        Ok(Self {
            source: source.to_string(),
            path: None,
            rules: RwLock::new(Arc::new(parse_rules(text)?)),
            stamp: std::sync::Mutex::new(None),
        })
    }

    /// The rules, in file order.
    pub fn rules(&self) -> Arc<Vec<PolicyRule>> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the file if it changed (by mtime, size, inode). `Ok(true)` when new rules
    /// apply; on an unreadable or invalid new version the previous rules are kept and the
    /// error returned (once per version: later calls see the same version and return
    /// `Ok(false)`).
    pub fn refresh(&self) -> Result<bool, StandaloneError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let current = std::fs::metadata(path).ok().map(|m| Stamp::of(&m));
        let mut stamp = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        if current == *stamp {
            return Ok(false);
        }
        *stamp = current;
        let (rules, read_stamp) = Self::read(path)?;
        *stamp = Some(read_stamp);
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
        tracing::info!(policy = %path.display(), "authorization policy reloaded");
        Ok(true)
    }

    /// Polls the file every `interval` and applies changes; runs until dropped.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        crate::poll_blocking(self, interval, "authorization policy", |policy| {
            if let Err(e) = policy.refresh() {
                tracing::error!(
                    error = %e,
                    "authorization policy not reloaded: fix the file; the previous rules still apply"
                );
            }
        })
        .await
    }

    /// The decision, without I/O.
    pub fn decide(&self, namespace: &str, service_account: &str, spec: &str) -> UseDecision {
        match self
            .rules()
            .iter()
            .position(|r| r.allows(namespace, service_account, spec))
        {
            Some(i) => UseDecision {
                allowed: true,
                reason: Some(format!(
                    "allowed by rule {} of policy {}",
                    i + 1,
                    self.source
                )),
            },
            None => UseDecision {
                allowed: false,
                reason: Some(format!("no rule of policy {} allows it", self.source)),
            },
        }
    }
}

#[async_trait]
impl Authorizer for PolicyAuthorizer {
    async fn may_use(
        &self,
        namespace: &str,
        service_account: &str,
        spec: &str,
    ) -> Result<UseDecision, LookupError> {
        Ok(self.decide(namespace, service_account, spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_decisions_table() {
        let policy = PolicyAuthorizer::parse(
            r#"
- namespace: web
  serviceAccount: frontend
  credspecs: [webapp01]
- namespace: "*"
  serviceAccount: tester
  credspecs: ["*"]
- namespace: ops
  serviceAccount: "*"
  credspecs: [ops01, ops02]
"#,
            "policy.yaml",
        )
        .expect("parses");
        let cases = [
            ("web", "frontend", "webapp01", true),
            ("web", "frontend", "ops01", false),
            ("web", "default", "webapp01", false),
            ("other", "frontend", "webapp01", false),
            ("anything", "tester", "whatever", true),
            ("ops", "x", "ops02", true),
            ("ops", "x", "webapp01", false),
            ("web", "frontend", "WebApp01", false),
        ];
        for (ns, sa, spec, want) in cases {
            let decision = policy.decide(ns, sa, spec);
            assert_eq!(decision.allowed, want, "{ns}/{sa} use {spec}");
            assert!(decision
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("policy.yaml")));
        }
    }

    #[test]
    fn policy_rejects_typos_and_empties() {
        for text in [
            "- namespace: a\n  serviceaccount: b\n  credspecs: [c]\n",
            "- namespace: ''\n  serviceAccount: b\n  credspecs: [c]\n",
            "namespace: a\n",
            "rules:\n- namespace: a\n",
        ] {
            assert!(
                PolicyAuthorizer::parse(text, "p").is_err(),
                "should reject {text:?}"
            );
        }
        let ok = PolicyAuthorizer::parse(
            "rules:\n- {namespace: a, serviceAccount: b, credspecs: [c]}\n",
            "p",
        )
        .expect("rules: form");
        assert_eq!(ok.rules().len(), 1);
    }

    #[test]
    fn policy_reload_applies_good_versions_and_keeps_rules_on_bad_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("policy.yaml");
        let rule = |spec: &str| {
            format!("- {{namespace: web, serviceAccount: frontend, credspecs: [{spec}]}}\n")
        };
        std::fs::write(&path, rule("webapp01")).expect("write");
        let policy = PolicyAuthorizer::load(&path).expect("load");
        assert!(policy.decide("web", "frontend", "webapp01").allowed);
        assert!(!policy.refresh().expect("unchanged"));

        // Replaced by a new file (new inode): the new rules apply.
        let next = dir.path().join("next.yaml");
        std::fs::write(&next, rule("webapp02")).expect("write");
        std::fs::rename(&next, &path).expect("rename");
        assert!(policy.refresh().expect("reloaded"));
        assert!(!policy.decide("web", "frontend", "webapp01").allowed);
        assert!(policy.decide("web", "frontend", "webapp02").allowed);

        // A broken version is refused once; the previous rules stay.
        std::fs::write(&next, "- {namespace: web, serviceaccount: typo}\n").expect("write");
        std::fs::rename(&next, &path).expect("rename");
        let err = policy.refresh().expect_err("refused");
        assert!(err.to_string().contains("policy.yaml"), "{err}");
        assert!(!policy.refresh().expect("same bad version not re-read"));
        assert!(policy.decide("web", "frontend", "webapp02").allowed);

        // Deleted: reported once, rules kept.
        std::fs::remove_file(&path).expect("remove");
        assert!(policy.refresh().is_err());
        assert!(!policy.refresh().expect("still gone"));
        assert!(policy.decide("web", "frontend", "webapp02").allowed);
    }
}
