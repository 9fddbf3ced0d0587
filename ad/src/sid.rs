//! Security identifiers (MS-DTYP 2.4.2): the binary form AD stores in `objectSid` and inside
//! security descriptors, and the `S-1-5-21-…` text form credential specs use.

use std::fmt;
use std::str::FromStr;

use crate::DecodeError;

/// A security identifier.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sid {
    /// The revision (always 1 in practice).
    pub revision: u8,
    /// The 48-bit identifier authority (5 = NT authority).
    pub authority: u64,
    /// The sub-authorities; for an account, the last one is its relative id (RID).
    pub sub_authorities: Vec<u32>,
}

/// At most 15 sub-authorities (MS-DTYP `SID_MAX_SUB_AUTHORITIES`).
const MAX_SUB_AUTHORITIES: usize = 15;

impl Sid {
    /// Decodes a SID at the start of `bytes`; returns it and the number of bytes it used.
    pub fn decode_prefix(bytes: &[u8]) -> Result<(Sid, usize), DecodeError> {
        if bytes.len() < 8 {
            return Err(DecodeError::new("SID", 0, "shorter than its 8-byte header"));
        }
        let revision = bytes[0];
        if revision != 1 {
            return Err(DecodeError::new(
                "SID",
                0,
                format!("revision {revision}, expected 1"),
            ));
        }
        let count = usize::from(bytes[1]);
        if count > MAX_SUB_AUTHORITIES {
            return Err(DecodeError::new(
                "SID",
                1,
                format!("{count} sub-authorities, at most {MAX_SUB_AUTHORITIES} allowed"),
            ));
        }
        let len = 8 + 4 * count;
        if bytes.len() < len {
            return Err(DecodeError::new(
                "SID",
                8,
                format!(
                    "{count} sub-authorities need {len} bytes, only {} present",
                    bytes.len()
                ),
            ));
        }
        // The authority is a 48-bit big-endian number.
        let authority = bytes[2..8]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let sub_authorities = bytes[8..len]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((
            Sid {
                revision,
                authority,
                sub_authorities,
            },
            len,
        ))
    }

    /// Decodes a SID that fills `bytes` exactly (the `objectSid` attribute).
    pub fn decode(bytes: &[u8]) -> Result<Sid, DecodeError> {
        let (sid, used) = Sid::decode_prefix(bytes)?;
        if used != bytes.len() {
            return Err(DecodeError::new(
                "SID",
                used,
                format!("{} trailing bytes", bytes.len() - used),
            ));
        }
        Ok(sid)
    }

    /// The binary form (for LDAP filters such as `(objectSid=\01\05…)`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 4 * self.sub_authorities.len());
        out.push(self.revision);
        // Sids built by decode/parse have at most 15 sub-authorities.
        out.push(u8::try_from(self.sub_authorities.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&self.authority.to_be_bytes()[2..]);
        for sub in &self.sub_authorities {
            out.extend_from_slice(&sub.to_le_bytes());
        }
        out
    }

    /// The relative id: the last sub-authority.
    pub fn rid(&self) -> Option<u32> {
        self.sub_authorities.last().copied()
    }

    /// The SID without its last sub-authority (an account's domain SID).
    pub fn parent(&self) -> Option<Sid> {
        let (_, rest) = self.sub_authorities.split_last()?;
        Some(Sid {
            revision: self.revision,
            authority: self.authority,
            sub_authorities: rest.to_vec(),
        })
    }

    /// This SID with `rid` appended (e.g. a domain SID + 515 = Domain Computers).
    pub fn child(&self, rid: u32) -> Sid {
        let mut sid = self.clone();
        sid.sub_authorities.push(rid);
        sid
    }

    /// The name of a well-known SID that is the same in every domain, if this is one.
    pub fn well_known_name(&self) -> Option<&'static str> {
        Some(match (self.authority, self.sub_authorities.as_slice()) {
            (1, [0]) => "Everyone",
            (3, [0]) => "CREATOR OWNER",
            (5, [7]) => "NT AUTHORITY\\ANONYMOUS LOGON",
            (5, [9]) => "NT AUTHORITY\\ENTERPRISE DOMAIN CONTROLLERS",
            (5, [10]) => "NT AUTHORITY\\SELF",
            (5, [11]) => "NT AUTHORITY\\Authenticated Users",
            (5, [18]) => "NT AUTHORITY\\SYSTEM",
            (5, [32, 544]) => "BUILTIN\\Administrators",
            (5, [32, 545]) => "BUILTIN\\Users",
            _ => return None,
        })
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S-{}-", self.revision)?;
        // MS-DTYP: authorities >= 2^32 are written in hex.
        if self.authority >= 1 << 32 {
            write!(f, "0x{:012X}", self.authority)?;
        } else {
            write!(f, "{}", self.authority)?;
        }
        for sub in &self.sub_authorities {
            write!(f, "-{sub}")?;
        }
        Ok(())
    }
}

/// Why a `S-…` string is not a SID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a SID (expected S-1-<authority>-<n>-…): {reason}")]
pub struct SidParseError {
    text: String,
    reason: &'static str,
}

impl FromStr for Sid {
    type Err = SidParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason| SidParseError {
            text: text.to_string(),
            reason,
        };
        let trimmed = text.trim();
        let rest = trimmed
            .strip_prefix("S-")
            .or_else(|| trimmed.strip_prefix("s-"))
            .ok_or_else(|| err("does not start with S-"))?;
        let mut parts = rest.split('-');
        let revision = parts
            .next()
            .and_then(|p| p.parse::<u8>().ok())
            .filter(|r| *r == 1)
            .ok_or_else(|| err("revision must be 1"))?;
        let authority_text = parts.next().ok_or_else(|| err("no authority"))?;
        let authority = match authority_text
            .strip_prefix("0x")
            .or_else(|| authority_text.strip_prefix("0X"))
        {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => authority_text.parse::<u64>().ok(),
        }
        .filter(|a| *a < 1 << 48)
        .ok_or_else(|| err("authority is not a 48-bit number"))?;
        let sub_authorities = parts
            .map(|p| p.parse::<u32>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| err("a sub-authority is not a 32-bit number"))?;
        if sub_authorities.len() > MAX_SUB_AUTHORITIES {
            return Err(err("more than 15 sub-authorities"));
        }
        Ok(Sid {
            revision,
            authority,
            sub_authorities,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// objectSid of the domain `test.example` as a Samba DC returned it
    /// (base64 `AQQAAAAAAAUVAAAAhmoO8YwTy4KmAZU5`).
    const DOMAIN_SID: [u8; 24] = [
        0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00, 0x86, 0x6a, 0x0e,
        0xf1, 0x8c, 0x13, 0xcb, 0x82, 0xa6, 0x01, 0x95, 0x39,
    ];

    #[test]
    fn decodes_a_domain_sid() {
        let sid = Sid::decode(&DOMAIN_SID).expect("decodes");
        assert_eq!(sid.to_string(), "S-1-5-21-4044253830-2194346892-966066598");
        assert_eq!(sid.encode(), DOMAIN_SID);
    }

    #[test]
    fn decodes_well_known_sids() {
        let table: &[(&[u8], &str, Option<&str>)] = &[
            (
                &[1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
                "S-1-1-0",
                Some("Everyone"),
            ),
            (
                &[1, 1, 0, 0, 0, 0, 0, 5, 11, 0, 0, 0],
                "S-1-5-11",
                Some("NT AUTHORITY\\Authenticated Users"),
            ),
            (
                &[1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0],
                "S-1-5-32-544",
                Some("BUILTIN\\Administrators"),
            ),
            (&[1, 0, 0, 0, 0, 0, 0, 5], "S-1-5", None),
        ];
        for (bytes, text, name) in table {
            let sid = Sid::decode(bytes).expect("decodes");
            assert_eq!(sid.to_string(), *text);
            assert_eq!(sid.well_known_name(), *name, "{text}");
            assert_eq!(text.parse::<Sid>().expect("parses"), sid);
            assert_eq!(sid.encode(), *bytes);
        }
    }

    #[test]
    fn large_authorities_are_hex() {
        let bytes = [1, 1, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 7, 0, 0, 0];
        let sid = Sid::decode(&bytes).expect("decodes");
        assert_eq!(sid.to_string(), "S-1-0x123456789ABC-7");
        assert_eq!(sid.to_string().parse::<Sid>().expect("parses"), sid);
    }

    #[test]
    fn rejects_malformed_bytes() {
        let table: &[(&[u8], &str)] = &[
            (&[1, 1, 0], "shorter than its 8-byte header"),
            (&[2, 0, 0, 0, 0, 0, 0, 5], "revision 2"),
            (&[1, 16, 0, 0, 0, 0, 0, 5], "16 sub-authorities"),
            (&[1, 2, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0], "need 16 bytes"),
            (&[1, 0, 0, 0, 0, 0, 0, 5, 9], "1 trailing bytes"),
        ];
        for (bytes, want) in table {
            let err = Sid::decode(bytes).expect_err("must fail").to_string();
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }

    #[test]
    fn rejects_malformed_text() {
        for text in [
            "",
            "X-1-5",
            "S-2-5-21",
            "S-1",
            "S-1-5-abc",
            "S-1-5-4294967296",
        ] {
            assert!(text.parse::<Sid>().is_err(), "{text} must not parse");
        }
    }

    #[test]
    fn parent_child_and_rid() {
        let user: Sid = "S-1-5-21-1-2-3-1103".parse().expect("parses");
        assert_eq!(user.rid(), Some(1103));
        let domain = user.parent().expect("has a parent");
        assert_eq!(domain.to_string(), "S-1-5-21-1-2-3");
        assert_eq!(domain.child(1103), user);
    }
}
