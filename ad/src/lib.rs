//! `gmsa-ad`: reads an Active Directory domain over LDAP (domain identity, gMSA accounts,
//! who may retrieve their passwords) and the binary decoders (SID, GUID, security descriptor).
//!
//! # Public API
//!
//! - Decoders (pure, no I/O): [`Sid`] (`objectSid`, `S-1-5-21-…`), [`Guid`] (`objectGUID`,
//!   mixed-endian), [`SecurityDescriptor`] (self-relative, as in `msDS-GroupMSAMembership`)
//!   with [`SecurityDescriptor::access_check`].
//! - [`Directory`]: an LDAP connection (LDAPS or StartTLS, rustls with ring; simple bind, or
//!   a Kerberos SASL GSSAPI bind with the `kerberos` feature, see [`KERBEROS_SUPPORTED`])
//!   made from [`ConnectOptions`]; reads the [`Domain`], [`Account`]s, node [`Principal`]s and
//!   SID names. Every failure is an [`AdError`] that says what to do.
//! - [`facts_for`]: reads everything [`verify`] needs for a spec; [`verify`] (pure) checks a
//!   [`gmsa_crd::CredSpec`] against those [`Facts`] and returns a [`Report`] (problems with
//!   their fixes, and who may retrieve each gMSA's password).

mod directory;
mod error;
mod guid;
mod sd;
mod sid;
mod verify;

pub use directory::{
    Account, ConnectOptions, Credentials, Directory, Domain, Principal, KERBEROS_SUPPORTED,
};
pub use error::{AdError, DecodeError};
pub use guid::Guid;
pub use sd::{
    Access, Ace, AceKind, Acl, SecurityDescriptor, GENERIC_ALL, GENERIC_READ, READ_PROPERTY,
};
pub use sid::{Sid, SidParseError};
pub use verify::{facts_for, verify, AccountReaders, Facts, Problem, Reader, Report};
