//! Errors: decoding failures and what went wrong talking to the domain controller.

use std::fmt;

/// A binary value from the directory could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    what: &'static str,
    offset: usize,
    reason: String,
}

impl DecodeError {
    pub(crate) fn new(what: &'static str, offset: usize, reason: impl Into<String>) -> Self {
        DecodeError {
            what,
            offset,
            reason: reason.into(),
        }
    }

    /// The same error, with `base` added to its offset (for nested structures).
    pub(crate) fn at(mut self, base: usize) -> Self {
        self.offset += base;
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed {} at byte {}: {}",
            self.what, self.offset, self.reason
        )
    }
}

impl std::error::Error for DecodeError {}

/// What went wrong reading the domain. Each message names the server or object and says
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum AdError {
    /// The `--server` value is not an `ldaps://` or `ldap://` URL.
    #[error("--server `{server}`: {reason} (use ldaps://HOST[:PORT], or ldap://HOST[:PORT] for StartTLS)")]
    InvalidServer {
        /// The value given.
        server: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA file could not be read or holds no certificate.
    #[error("--ca-file {path}: {reason}")]
    CaFile {
        /// The path given.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// No TCP connection (refused, timed out, name not resolved).
    #[error("cannot reach the domain controller at {server}: {reason}; check the host and port (LDAPS is 636) and that the DC is running")]
    Unreachable {
        /// The server URL.
        server: String,
        /// The underlying error.
        reason: String,
    },
    /// The TLS handshake failed (certificate not trusted, wrong name, protocol).
    #[error("TLS with {server} failed: {reason}; pass the CA that issued the DC's certificate with --ca-file FILE (PEM), and use the host name or IP address the certificate is issued for")]
    Tls {
        /// The server URL.
        server: String,
        /// The TLS error.
        reason: String,
    },
    /// The simple bind was rejected.
    #[error("{server} rejected the bind as `{bind_dn}`: invalid credentials; check --bind-dn (a DN or user@REALM) and the password in --password-file")]
    BadCredentials {
        /// The server URL.
        server: String,
        /// The bind DN used.
        bind_dn: String,
    },
    /// `--kerberos` in a build without the `kerberos` feature.
    #[error("this gmsa was built without Kerberos support; rebuild with `--features kerberos` (needs libkrb5-dev)")]
    KerberosUnsupported,
    /// The SASL GSSAPI (Kerberos) bind failed: no ticket, no such service principal, or the
    /// server refused it.
    #[error("Kerberos (GSSAPI) bind to {server} for the service principal {spn} failed: {reason}; get a ticket first (`kinit user@REALM`, with KRB5CCNAME pointing at that credential cache if it is not the default), and check that {spn} is the DC's service principal (pass the DC's DNS host name with --server-name)")]
    Kerberos {
        /// The server URL.
        server: String,
        /// The service principal asked for, `ldap/HOST`.
        spn: String,
        /// What GSSAPI or the server said.
        reason: String,
    },
    /// The bound user may not read something that is needed.
    #[error("insufficient rights: {what}; bind as a user that may read it (e.g. a member of Domain Admins, or one granted Read on the object)")]
    InsufficientRights {
        /// What could not be read, e.g. "`msDS-GroupMSAMembership` of CN=…".
        what: String,
    },
    /// An account named on the command line does not exist.
    #[error("account `{name}` not found in domain {domain}; check the name (the sAMAccountName without `$`), or create the gMSA first (New-ADServiceAccount / samba-tool service-account create)")]
    AccountNotFound {
        /// The name given.
        name: String,
        /// The domain searched.
        domain: String,
    },
    /// The account exists but is not a gMSA.
    #[error("account `{name}` ({dn}) is not a group managed service account (objectClass {classes}); a credential spec needs a gMSA")]
    NotGmsa {
        /// The name given.
        name: String,
        /// Its DN.
        dn: String,
        /// Its object classes.
        classes: String,
    },
    /// The gMSA exists but is disabled.
    #[error("gMSA `{name}` ({dn}) is disabled; enable it (Enable-ADAccount / samba-tool user enable '{name}$')")]
    Disabled {
        /// The name given.
        name: String,
        /// Its DN.
        dn: String,
    },
    /// The server answered in a way we did not expect.
    #[error("{server}: {what}: {reason}")]
    Protocol {
        /// The server URL.
        server: String,
        /// What we were doing.
        what: String,
        /// The LDAP result or error.
        reason: String,
    },
    /// A binary attribute could not be decoded.
    #[error("`{attribute}` of {dn}: {source}")]
    Decode {
        /// The attribute.
        attribute: String,
        /// The object.
        dn: String,
        /// The decoding error.
        source: DecodeError,
    },
}
