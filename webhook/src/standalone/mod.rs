//! Standalone lookups: credential specs from manifest files in a directory
//! ([`DirSpecStore`], `dir_store.rs`), authorization from a small policy file
//! ([`PolicyAuthorizer`], `policy.rs`) or [`AllowAll`] (here). Used by `gmsa-webhook
//! --credspecs-dir` (local debugging, the README's embedded default, process-level tests) and by
//! `gmsa review --credspecs-dir`.
//!
//! Not for production: nothing here asks the API server, so RBAC on `use` is not enforced
//! unless the policy file says the same thing as the cluster's RBAC.

use std::path::PathBuf;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::lookup::{Authorizer, LookupError, UseDecision};

mod dir_store;
mod policy;

pub use dir_store::{DirSpecStore, RefreshReport};
pub use policy::{PolicyAuthorizer, PolicyRule};

/// What went wrong reading a standalone source.
#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A file could not be parsed.
    #[error("cannot parse {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with position when the parser gave one.
        message: String,
    },
}

/// What identifies a file version cheaply (no read): modification time, size and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    pub(crate) fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(metadata);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            inode,
        }
    }
}

/// Allows every service account to use every spec (`--allow-all-use`; debugging only).
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

#[async_trait]
impl Authorizer for AllowAll {
    async fn may_use(
        &self,
        _namespace: &str,
        _service_account: &str,
        _spec: &str,
    ) -> Result<UseDecision, LookupError> {
        Ok(UseDecision {
            allowed: true,
            reason: Some("standalone mode with --allow-all-use".to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn allow_all_allows() {
        let decision = AllowAll.may_use("ns", "sa", "spec").await.expect("answers");
        assert!(decision.allowed);
    }
}
