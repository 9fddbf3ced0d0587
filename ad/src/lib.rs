//! `gmsa-ad`: reads an Active Directory domain over LDAP (domain identity, gMSA accounts,
//! who may retrieve their passwords) and the binary decoders (SID, GUID, security descriptor).
