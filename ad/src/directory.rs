//! The LDAP adapter: connects (LDAPS or StartTLS; rustls with ring), binds, and reads the
//! domain, accounts and principals. Everything it returns is plain data for the pure code.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{ldap_escape, LdapConn, LdapConnSettings, LdapError, Scope, SearchEntry};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::{AdError, Guid, SecurityDescriptor, Sid};

/// How to authenticate.
#[derive(Clone)]
pub enum Credentials {
    /// LDAP simple bind (over TLS only) with a DN or `user@REALM` and a password.
    Simple {
        /// The bind DN or user principal name.
        bind_dn: String,
        /// The password (never logged).
        password: String,
    },
    /// SASL GSSAPI (Kerberos) bind with the caller's credential cache (`KRB5CCNAME`, or the
    /// default cache; `kinit` first), on the TLS connection (no extra security layer; the
    /// TLS channel binding is sent). Needs the `kerberos` feature ([`KERBEROS_SUPPORTED`]).
    Kerberos {
        /// The DC's DNS host name for its service principal `ldap/HOST`. `None`: the host of
        /// the server URL, or the DC's `dnsHostName` (rootDSE) when that is an IP address.
        server_name: Option<String>,
    },
}

/// Whether this build can do [`Credentials::Kerberos`] binds (the `kerberos` feature).
pub const KERBEROS_SUPPORTED: bool = cfg!(feature = "kerberos");

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Simple { bind_dn, .. } => f
                .debug_struct("Simple")
                .field("bind_dn", bind_dn)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::Kerberos { server_name } => f
                .debug_struct("Kerberos")
                .field("server_name", server_name)
                .finish(),
        }
    }
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `ldaps://HOST[:PORT]` (TLS from the start) or `ldap://HOST[:PORT]` (StartTLS).
    pub server: String,
    /// PEM file with the CA certificate(s) to trust; the system's roots when `None`.
    pub ca_file: Option<PathBuf>,
    /// The bind.
    pub credentials: Credentials,
    /// Connect and per-operation timeout.
    pub timeout: Duration,
}

/// The domain the server serves (what `Get-ADDomain` reports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    /// The naming context, e.g. `DC=contoso,DC=com`.
    pub dn: String,
    /// The DNS name (`dnsRoot` of its crossRef), e.g. `contoso.com`.
    pub dns_name: String,
    /// The forest root domain's DNS name (the spec's `DnsTreeName`).
    pub forest_dns_name: String,
    /// The NetBIOS name (`nETBIOSName` of its crossRef), e.g. `CONTOSO`.
    pub netbios_name: String,
    /// The domain SID (`objectSid` of the naming context head).
    pub sid: Sid,
    /// The domain GUID (`objectGUID` of the naming context head).
    pub guid: Guid,
}

impl Domain {
    /// The facts a credential spec records, in the crd crate's form.
    pub fn info(&self) -> gmsa_crd::DomainInfo {
        gmsa_crd::DomainInfo {
            dns_name: self.dns_name.clone(),
            net_bios_name: self.netbios_name.clone(),
            sid: self.sid.to_string(),
            guid: self.guid.to_string(),
            dns_tree_name: Some(self.forest_dns_name.clone()),
        }
    }

    /// Whether a spec scope (DNS or NetBIOS name) names this domain.
    pub fn is_named(&self, scope: &str) -> bool {
        self.info().is_named(scope)
    }
}

/// An account found by its sAMAccountName.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The name it was looked up by, without `$`.
    pub name: String,
    /// Its DN.
    pub dn: String,
    /// `sAMAccountName` as stored (with `$` for gMSAs and computers).
    pub sam_account_name: String,
    /// `objectSid`.
    pub sid: Sid,
    /// `objectClass` values.
    pub object_classes: Vec<String>,
    /// `userAccountControl` (bit 0x2 = disabled).
    pub user_account_control: u32,
    /// `msDS-GroupMSAMembership`, when present and readable.
    pub membership: Option<SecurityDescriptor>,
}

impl Account {
    /// Whether the object is a `msDS-GroupManagedServiceAccount`.
    pub fn is_gmsa(&self) -> bool {
        self.object_classes
            .iter()
            .any(|c| c.eq_ignore_ascii_case("msDS-GroupManagedServiceAccount"))
    }

    /// Whether the account is enabled (`ACCOUNTDISABLE` not set).
    pub fn enabled(&self) -> bool {
        self.user_account_control & 0x2 == 0
    }
}

/// A security principal (a node's computer account) with its token: its own SID, all its
/// groups transitively (`tokenGroups`), Everyone and Authenticated Users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The name it was looked up by, without `$`.
    pub name: String,
    /// Its DN.
    pub dn: String,
    /// `objectSid`.
    pub sid: Sid,
    /// The SIDs an access check sees.
    pub token: Vec<Sid>,
}

/// An open, bound connection to a domain controller.
pub struct Directory {
    conn: LdapConn,
    server: String,
    bind_dn: String,
    default_nc: String,
    config_nc: String,
    root_nc: String,
    netbios: Option<String>,
}

impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Directory")
            .field("server", &self.server)
            .field("bind_dn", &self.bind_dn)
            .finish_non_exhaustive()
    }
}

const GMSA_ATTRS: [&str; 6] = [
    "sAMAccountName",
    "objectSid",
    "objectClass",
    "userAccountControl",
    "msDS-GroupMSAMembership",
    "distinguishedName",
];

impl Directory {
    /// Connects, verifies the server certificate, binds and reads the rootDSE.
    pub fn connect(options: &ConnectOptions) -> Result<Directory, AdError> {
        let server = options.server.trim().to_string();
        let starttls = check_server_url(&server)?;
        if matches!(options.credentials, Credentials::Kerberos { .. }) && !KERBEROS_SUPPORTED {
            return Err(AdError::KerberosUnsupported);
        }
        let config = tls_config(options)?;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(options.timeout)
            .set_starttls(starttls)
            .set_config(config);
        tracing::debug!(%server, starttls, "connecting to the domain controller");
        let mut conn =
            LdapConn::with_settings(settings, &server).map_err(|e| connect_error(&server, e))?;
        conn.with_timeout(options.timeout);
        let bind_dn = match &options.credentials {
            Credentials::Simple { bind_dn, password } => {
                simple_bind(&mut conn, &server, bind_dn, password, options.timeout)?;
                bind_dn.clone()
            }
            #[cfg(feature = "kerberos")]
            Credentials::Kerberos { server_name } => {
                kerberos_bind(&mut conn, &server, server_name.as_deref(), options.timeout)?
            }
            #[cfg(not(feature = "kerberos"))]
            Credentials::Kerberos { .. } => return Err(AdError::KerberosUnsupported),
        };
        let mut dir = Directory {
            conn,
            server,
            bind_dn,
            default_nc: String::new(),
            config_nc: String::new(),
            root_nc: String::new(),
            netbios: None,
        };
        let root = dir
            .search(
                "",
                Scope::Base,
                "(objectClass=*)",
                &[
                    "defaultNamingContext",
                    "configurationNamingContext",
                    "rootDomainNamingContext",
                ],
                "the rootDSE",
            )?
            .into_iter()
            .next()
            .ok_or_else(|| dir.protocol("reading the rootDSE", "no entry returned"))?;
        let get = |name: &str| first_str(&root, name).unwrap_or_default();
        dir.default_nc = get("defaultNamingContext");
        dir.config_nc = get("configurationNamingContext");
        dir.root_nc = get("rootDomainNamingContext");
        if dir.default_nc.is_empty() || dir.config_nc.is_empty() {
            return Err(dir.protocol(
                "reading the rootDSE",
                "no defaultNamingContext/configurationNamingContext: is this an Active Directory domain controller?",
            ));
        }
        Ok(dir)
    }

    /// The server URL this connection talks to.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Reads the domain's names, SID and GUID.
    pub fn domain(&mut self) -> Result<Domain, AdError> {
        let dn = self.default_nc.clone();
        let head = self
            .search(
                &dn,
                Scope::Base,
                "(objectClass=*)",
                &["objectSid", "objectGUID"],
                "the domain object",
            )?
            .into_iter()
            .next()
            .ok_or_else(|| AdError::InsufficientRights {
                what: format!(
                    "the domain object {dn} is not visible to `{}`",
                    self.bind_dn
                ),
            })?;
        let sid_bytes =
            first_bytes(&head, "objectSid").ok_or_else(|| AdError::InsufficientRights {
                what: format!("`objectSid` of {dn}"),
            })?;
        let guid_bytes =
            first_bytes(&head, "objectGUID").ok_or_else(|| AdError::InsufficientRights {
                what: format!("`objectGUID` of {dn}"),
            })?;
        let sid =
            Sid::decode(&sid_bytes).map_err(|source| decode_error("objectSid", &dn, source))?;
        let guid =
            Guid::decode(&guid_bytes).map_err(|source| decode_error("objectGUID", &dn, source))?;
        let (dns_name, netbios_name) = self.cross_ref(&dn)?;
        let forest_dns_name = if self.root_nc.is_empty() || self.root_nc.eq_ignore_ascii_case(&dn) {
            dns_name.clone()
        } else {
            let root = self.root_nc.clone();
            self.cross_ref(&root)?.0
        };
        self.netbios = Some(netbios_name.clone());
        Ok(Domain {
            dn,
            dns_name,
            forest_dns_name,
            netbios_name,
            sid,
            guid,
        })
    }

    /// Looks up an account by sAMAccountName (`name` with or without the trailing `$`; gMSAs
    /// and computers are stored with it). `None` when no such account is visible.
    pub fn account(&mut self, name: &str) -> Result<Option<Account>, AdError> {
        let name = bare(name);
        let Some(entry) = self.find_sam(&name, &GMSA_ATTRS)? else {
            return Ok(None);
        };
        let dn = entry.dn.clone();
        let sid = self.entry_sid(&entry)?;
        let membership = match first_bytes(&entry, "msDS-GroupMSAMembership") {
            Some(bytes) => Some(
                SecurityDescriptor::decode(&bytes)
                    .map_err(|source| decode_error("msDS-GroupMSAMembership", &dn, source))?,
            ),
            None => None,
        };
        Ok(Some(Account {
            name,
            sam_account_name: first_str(&entry, "sAMAccountName").unwrap_or_default(),
            sid,
            object_classes: all_str(&entry, "objectClass"),
            user_account_control: first_str(&entry, "userAccountControl")
                .and_then(|v| v.parse::<i64>().ok())
                // Stored as a signed 32-bit integer.
                .map(|v| (v & 0xffff_ffff) as u32)
                .unwrap_or(0),
            membership,
            dn,
        }))
    }

    /// Looks up a principal (a node's computer account, `NAME$` or `NAME`) and its token.
    pub fn principal(&mut self, name: &str) -> Result<Option<Principal>, AdError> {
        let name = bare(name);
        let Some(entry) = self.find_sam(&name, &["objectSid"])? else {
            return Ok(None);
        };
        let dn = entry.dn.clone();
        let sid = self.entry_sid(&entry)?;
        let groups = self
            .search(
                &dn,
                Scope::Base,
                "(objectClass=*)",
                &["tokenGroups"],
                "tokenGroups",
            )?
            .into_iter()
            .next()
            .map(|e| all_bytes(&e, "tokenGroups"))
            .unwrap_or_default();
        if groups.is_empty() {
            // Every account is at least in its primary group; nothing means we may not read it.
            return Err(AdError::InsufficientRights {
                what: format!("`tokenGroups` of {dn} (needed to expand its group memberships)"),
            });
        }
        let mut token = vec![sid.clone()];
        for bytes in groups {
            token.push(
                Sid::decode(&bytes).map_err(|source| decode_error("tokenGroups", &dn, source))?,
            );
        }
        token.push(Sid {
            revision: 1,
            authority: 1,
            sub_authorities: vec![0],
        });
        token.push(Sid {
            revision: 1,
            authority: 5,
            sub_authorities: vec![11],
        });
        Ok(Some(Principal {
            name,
            dn,
            sid,
            token,
        }))
    }

    /// A readable name for a SID: a well-known name, `NETBIOS\sAMAccountName`, or the SID
    /// itself when it is not found.
    pub fn sid_name(&mut self, sid: &Sid) -> Result<String, AdError> {
        if let Some(name) = sid.well_known_name() {
            return Ok(name.to_string());
        }
        let filter = format!("(objectSid={})", escape_bytes(&sid.encode()));
        let base = self.default_nc.clone();
        let found = self.search(
            &base,
            Scope::Subtree,
            &filter,
            &["sAMAccountName"],
            "a SID's name",
        )?;
        Ok(
            match found.first().and_then(|e| first_str(e, "sAMAccountName")) {
                Some(sam) => match &self.netbios {
                    Some(netbios) => format!("{netbios}\\{sam}"),
                    None => sam,
                },
                None => sid.to_string(),
            },
        )
    }

    fn find_sam(&mut self, name: &str, attrs: &[&str]) -> Result<Option<SearchEntry>, AdError> {
        let base = self.default_nc.clone();
        let filter = format!(
            "(|(sAMAccountName={0})(sAMAccountName={0}$))",
            ldap_escape(name)
        );
        let found = self.search(
            &base,
            Scope::Subtree,
            &filter,
            attrs,
            &format!("account `{name}`"),
        )?;
        // Prefer the `$` form (gMSAs and computers) when both exist.
        let dollar = format!("{name}$");
        let pick = found
            .iter()
            .position(|e| {
                first_str(e, "sAMAccountName").is_some_and(|s| s.eq_ignore_ascii_case(&dollar))
            })
            .unwrap_or(0);
        Ok(found.into_iter().nth(pick))
    }

    fn entry_sid(&self, entry: &SearchEntry) -> Result<Sid, AdError> {
        let bytes = first_bytes(entry, "objectSid").ok_or_else(|| AdError::InsufficientRights {
            what: format!("`objectSid` of {}", entry.dn),
        })?;
        Sid::decode(&bytes).map_err(|source| decode_error("objectSid", &entry.dn, source))
    }

    fn cross_ref(&mut self, nc: &str) -> Result<(String, String), AdError> {
        let base = format!("CN=Partitions,{}", self.config_nc);
        let filter = format!("(&(objectClass=crossRef)(nCName={}))", ldap_escape(nc));
        let entry = self
            .search(
                &base,
                Scope::OneLevel,
                &filter,
                &["dnsRoot", "nETBIOSName"],
                "the crossRef",
            )?
            .into_iter()
            .next()
            .ok_or_else(|| AdError::InsufficientRights {
                what: format!("the crossRef of {nc} under {base} (DNS and NetBIOS names)"),
            })?;
        let dns = first_str(&entry, "dnsRoot").unwrap_or_default();
        let netbios = first_str(&entry, "nETBIOSName").unwrap_or_default();
        if dns.is_empty() || netbios.is_empty() {
            return Err(AdError::InsufficientRights {
                what: format!("`dnsRoot`/`nETBIOSName` of {}", entry.dn),
            });
        }
        Ok((dns, netbios))
    }

    fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        what: &str,
    ) -> Result<Vec<SearchEntry>, AdError> {
        let result = self
            .conn
            .search(base, scope, filter, attrs.to_vec())
            .map_err(|e| connect_error(&self.server, e))?;
        let (entries, res) = (result.0, result.1);
        match res.rc {
            0 | 4 => {}
            32 => return Ok(Vec::new()),
            50 => {
                return Err(AdError::InsufficientRights {
                    what: format!(
                        "reading {what} under {base} as `{}` ({})",
                        self.bind_dn, res.text
                    ),
                })
            }
            1 if res.text.contains("successful bind") => {
                return Err(AdError::InsufficientRights {
                    what: format!("reading {what}: the server requires a bind ({})", res.text),
                })
            }
            rc => {
                return Err(self.protocol(
                    &format!("searching {what} under `{base}`"),
                    &format!("result code {rc}: {}", res.text),
                ))
            }
        }
        // Skip referrals (entries from other domains), keep real entries.
        Ok(entries
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct)
            .collect())
    }

    fn protocol(&self, what: &str, reason: &str) -> AdError {
        AdError::Protocol {
            server: self.server.clone(),
            what: what.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// LDAP simple bind; an empty password is refused (AD would treat it as anonymous).
fn simple_bind(
    conn: &mut LdapConn,
    server: &str,
    bind_dn: &str,
    password: &str,
    timeout: Duration,
) -> Result<(), AdError> {
    let server = server.to_string();
    let bad = |server: String| AdError::BadCredentials {
        server,
        bind_dn: bind_dn.to_string(),
    };
    if password.is_empty() {
        // AD treats a simple bind with an empty password as an anonymous bind that
        // "succeeds"; refuse it rather than read the domain anonymously.
        return Err(bad(server));
    }
    let bound = conn
        .with_timeout(timeout)
        .simple_bind(bind_dn, password)
        .map_err(|e| connect_error(&server, e))?;
    match bound.rc {
        0 => Ok(()),
        49 => Err(bad(server)),
        8 => Err(AdError::Protocol {
            server,
            what: "bind".into(),
            reason: format!("strong authentication required: {}", bound.text),
        }),
        rc => Err(AdError::Protocol {
            server,
            what: format!("bind as `{bind_dn}`"),
            reason: format!("result code {rc}: {}", bound.text),
        }),
    }
}

/// SASL GSSAPI bind with the caller's Kerberos credential cache, for the service principal
/// `ldap/HOST`; returns who the server says we are (WhoAmI), for messages.
#[cfg(feature = "kerberos")]
fn kerberos_bind(
    conn: &mut LdapConn,
    server: &str,
    server_name: Option<&str>,
    timeout: Duration,
) -> Result<String, AdError> {
    let host = match server_name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => name.trim_end_matches('.').to_string(),
        None => match url_host_name(server) {
            Some(name) => name,
            None => dns_host_name(conn, server, timeout)?,
        },
    };
    let spn = format!("ldap/{host}");
    let failed = |reason: String| AdError::Kerberos {
        server: server.to_string(),
        spn: spn.clone(),
        reason,
    };
    tracing::debug!(%server, %spn, "SASL GSSAPI bind");
    let bound = conn
        .with_timeout(timeout)
        .sasl_gssapi_bind(&host)
        .map_err(|e| match e {
            LdapError::GssapiOperationError(reason) => failed(reason),
            LdapError::NoGssapiToken => failed("the server sent no GSSAPI token".into()),
            other => connect_error(server, other),
        })?;
    match bound.rc {
        0 => {}
        49 => {
            return Err(failed(format!(
                "the server rejected the Kerberos authentication: {}",
                bound.text
            )))
        }
        rc => {
            return Err(AdError::Protocol {
                server: server.to_string(),
                what: format!("SASL GSSAPI bind for {spn}"),
                reason: format!("result code {rc}: {}", bound.text),
            })
        }
    }
    // Who the ticket made us, for messages ("u:DOMAIN\\user"); not essential.
    let who = conn
        .with_timeout(timeout)
        .extended(ldap3::exop::WhoAmI)
        .ok()
        .and_then(|r| r.success().ok())
        .filter(|(exop, _)| exop.val.is_some())
        .map(|(exop, _)| exop.parse::<ldap3::exop::WhoAmIResp>().authzid)
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| "the Kerberos principal of the credential cache".to_string());
    tracing::debug!(%server, %who, "bound with Kerberos");
    Ok(who)
}

/// The DC's own DNS host name (rootDSE `dnsHostName`, readable before any bind), for the
/// service principal when `--server` is an IP address.
#[cfg(feature = "kerberos")]
fn dns_host_name(conn: &mut LdapConn, server: &str, timeout: Duration) -> Result<String, AdError> {
    let (entries, _) = conn
        .with_timeout(timeout)
        .search("", Scope::Base, "(objectClass=*)", vec!["dnsHostName"])
        .map_err(|e| connect_error(server, e))?
        .success()
        .map_err(|e| connect_error(server, e))?;
    entries
        .into_iter()
        .map(SearchEntry::construct)
        .find_map(|e| first_str(&e, "dnsHostName"))
        .filter(|name| !name.is_empty())
        .ok_or_else(|| AdError::Kerberos {
            server: server.to_string(),
            spn: "ldap/?".into(),
            reason: "--server is an IP address and the rootDSE has no dnsHostName to name the service principal; pass the DC's DNS name with --server-name".into(),
        })
}

/// The host of an `ldap[s]://HOST[:PORT]` URL when it is a DNS name (not an IP address).
#[cfg_attr(not(feature = "kerberos"), allow(dead_code))]
fn url_host_name(server: &str) -> Option<String> {
    let rest = server
        .strip_prefix("ldaps://")
        .or_else(|| server.strip_prefix("ldap://"))?
        .trim_end_matches('/');
    if rest.starts_with('[') {
        return None; // [IPv6]
    }
    let host = rest.split(':').next()?.trim_end_matches('.');
    if host.is_empty() || host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    Some(host.to_string())
}

impl Drop for Directory {
    fn drop(&mut self) {
        let _ = self.conn.unbind();
    }
}

/// The account name without a trailing `$`.
fn bare(name: &str) -> String {
    name.trim().trim_end_matches('$').to_string()
}

/// Checks the URL's shape; returns whether it needs StartTLS (`ldap://`).
fn check_server_url(server: &str) -> Result<bool, AdError> {
    let invalid = |reason: &str| AdError::InvalidServer {
        server: server.to_string(),
        reason: reason.to_string(),
    };
    let (starttls, rest) = if let Some(rest) = server.strip_prefix("ldaps://") {
        (false, rest)
    } else if let Some(rest) = server.strip_prefix("ldap://") {
        (true, rest)
    } else {
        return Err(invalid("unsupported scheme"));
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.starts_with(':') {
        return Err(invalid("no host"));
    }
    if host.contains('/') || host.contains('?') {
        return Err(invalid("only HOST[:PORT] may follow the scheme"));
    }
    Ok(starttls)
}

fn tls_config(options: &ConnectOptions) -> Result<Arc<rustls::ClientConfig>, AdError> {
    let mut roots = rustls::RootCertStore::empty();
    match &options.ca_file {
        Some(path) => {
            let shown = path.display().to_string();
            let ca_error = |reason: String| AdError::CaFile {
                path: shown.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(format!("cannot read: {e}")))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| ca_error(format!("not PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| ca_error(format!("not a usable CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(ca_error("holds no CERTIFICATE block".into()));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for error in &native.errors {
                tracing::debug!(%error, "skipping a system CA certificate");
            }
            let (added, _) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, "trusting the system CA certificates");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AdError::Tls {
            server: options.server.clone(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Maps a connection-level ldap3 error to what the user should do.
fn connect_error(server: &str, err: LdapError) -> AdError {
    match err {
        LdapError::Io { source } => {
            let tls = source
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .map(|e| e.to_string());
            match tls {
                Some(reason) => AdError::Tls {
                    server: server.to_string(),
                    reason,
                },
                None => AdError::Unreachable {
                    server: server.to_string(),
                    reason: source.to_string(),
                },
            }
        }
        LdapError::Timeout { .. } => AdError::Unreachable {
            server: server.to_string(),
            reason: "timed out".into(),
        },
        LdapError::Rustls { source } => AdError::Tls {
            server: server.to_string(),
            reason: source.to_string(),
        },
        LdapError::LdapResult { result } if result.rc == 49 => AdError::BadCredentials {
            server: server.to_string(),
            bind_dn: String::new(),
        },
        LdapError::LdapResult { result } => AdError::Protocol {
            server: server.to_string(),
            what: "StartTLS".into(),
            reason: format!("result code {}: {}", result.rc, result.text),
        },
        LdapError::UrlParsing { source } => AdError::InvalidServer {
            server: server.to_string(),
            reason: source.to_string(),
        },
        other => AdError::Protocol {
            server: server.to_string(),
            what: "LDAP".into(),
            reason: other.to_string(),
        },
    }
}

fn decode_error(attribute: &str, dn: &str, source: crate::DecodeError) -> AdError {
    AdError::Decode {
        attribute: attribute.to_string(),
        dn: dn.to_string(),
        source,
    }
}

/// Filter escaping for binary values: every byte as `\xx`.
fn escape_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

fn find<'a, V>(map: &'a HashMap<String, Vec<V>>, name: &str) -> Option<&'a Vec<V>> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn all_str(entry: &SearchEntry, name: &str) -> Vec<String> {
    find(&entry.attrs, name).cloned().unwrap_or_default()
}

fn first_str(entry: &SearchEntry, name: &str) -> Option<String> {
    find(&entry.attrs, name).and_then(|v| v.first().cloned())
}

/// Binary values: ldap3 puts values that happen to be valid UTF-8 under `attrs`, the rest
/// under `bin_attrs`; a binary attribute can land in either.
fn all_bytes(entry: &SearchEntry, name: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = find(&entry.bin_attrs, name).cloned().unwrap_or_default();
    if let Some(text) = find(&entry.attrs, name) {
        out.extend(text.iter().map(|s| s.as_bytes().to_vec()));
    }
    out
}

fn first_bytes(entry: &SearchEntry, name: &str) -> Option<Vec<u8>> {
    all_bytes(entry, name).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let table = [
            ("ldaps://dc1.contoso.com", Some(false)),
            ("ldaps://127.0.0.1:1636/", Some(false)),
            ("ldap://dc1", Some(true)),
            ("https://dc1", None),
            ("dc1.contoso.com", None),
            ("ldaps://", None),
            ("ldaps://:636", None),
            ("ldaps://dc1/DC=x", None),
        ];
        for (url, want) in table {
            assert_eq!(check_server_url(url).ok(), want, "{url}");
        }
    }

    #[test]
    fn service_principal_host_from_the_url() {
        let table = [
            ("ldaps://dc1.contoso.com", Some("dc1.contoso.com")),
            ("ldap://dc1.contoso.com.:389/", Some("dc1.contoso.com")),
            ("ldaps://DC1:636", Some("DC1")),
            ("ldaps://127.0.0.53", None),
            ("ldap://127.0.0.53:389", None),
            ("ldaps://[::1]:636", None),
            ("https://dc1", None),
        ];
        for (url, want) in table {
            assert_eq!(url_host_name(url).as_deref(), want, "{url}");
        }
    }

    #[cfg(not(feature = "kerberos"))]
    #[test]
    fn kerberos_without_the_feature_says_how_to_rebuild() {
        let options = ConnectOptions {
            // Nothing listens here; the error must come before any connection attempt.
            server: "ldaps://127.0.0.1:1".into(),
            ca_file: None,
            credentials: Credentials::Kerberos { server_name: None },
            timeout: Duration::from_secs(1),
        };
        let err = Directory::connect(&options).expect_err("no kerberos support");
        assert!(matches!(err, AdError::KerberosUnsupported), "{err}");
        assert!(err.to_string().contains("--features kerberos"), "{err}");
    }

    #[test]
    fn binary_filter_escaping() {
        let sid: Sid = "S-1-5-21-1-2-3-500".parse().expect("sid");
        let escaped = escape_bytes(&sid.encode());
        assert!(
            escaped.starts_with("\\01\\05\\00\\00\\00\\00\\00\\05\\15\\00"),
            "{escaped}"
        );
        assert!(escaped.ends_with("\\f4\\01\\00\\00"), "{escaped}");
    }

    #[test]
    fn binary_attributes_in_either_map() {
        let mut entry = SearchEntry {
            dn: "CN=x".into(),
            attrs: HashMap::new(),
            bin_attrs: HashMap::new(),
        };
        entry
            .attrs
            .insert("objectGUID".into(), vec!["abcdefghijklmnop".into()]);
        entry
            .bin_attrs
            .insert("objectSid".into(), vec![vec![1, 0, 0, 0, 0, 0, 0, 5]]);
        assert_eq!(
            first_bytes(&entry, "objectguid"),
            Some(b"abcdefghijklmnop".to_vec())
        );
        assert_eq!(
            first_bytes(&entry, "OBJECTSID"),
            Some(vec![1, 0, 0, 0, 0, 0, 0, 5])
        );
        assert_eq!(first_bytes(&entry, "missing"), None);
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let creds = Credentials::Simple {
            bind_dn: "CN=a".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{creds:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn unreachable_and_tls_errors_name_the_fix() {
        let refused = connect_error(
            "ldaps://127.0.0.1:1",
            LdapError::Io {
                source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            },
        );
        assert!(matches!(refused, AdError::Unreachable { .. }));
        assert!(refused.to_string().contains("cannot reach"), "{refused}");
        let tls = connect_error(
            "ldaps://dc1",
            LdapError::Io {
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                ),
            },
        );
        assert!(matches!(tls, AdError::Tls { .. }));
        assert!(tls.to_string().contains("--ca-file"), "{tls}");
    }

    #[test]
    fn ca_file_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem at all\n").expect("write");
        let options = |path: PathBuf| ConnectOptions {
            server: "ldaps://127.0.0.1".into(),
            ca_file: Some(path),
            credentials: Credentials::Simple {
                bind_dn: "x".into(),
                password: "y".into(),
            },
            timeout: Duration::from_secs(1),
        };
        let err = tls_config(&options(empty))
            .expect_err("no certs")
            .to_string();
        assert!(
            err.contains("--ca-file") && err.contains("no CERTIFICATE"),
            "{err}"
        );
        let err = tls_config(&options(dir.path().join("missing.pem")))
            .expect_err("missing")
            .to_string();
        assert!(err.contains("cannot read"), "{err}");
    }
}
