//! Self-relative security descriptors (MS-DTYP 2.4.6) as stored in
//! `msDS-GroupMSAMembership`, and the access check that decides who may retrieve a gMSA's
//! managed password.
//!
//! The check follows Windows' DACL evaluation for one right: ACEs are read in order; an
//! inherit-only ACE is skipped; an object ACE that names an object type applies to that
//! property or extended right only and is skipped (the password check asks for the object
//! right); a deny ACE for a SID in the token that covers a still-missing bit denies; allow ACEs
//! add bits until the right is granted. A descriptor without a DACL grants everything.

use crate::guid::Guid;
use crate::sid::Sid;
use crate::DecodeError;

/// `ADS_RIGHT_DS_READ_PROP`: the right a principal needs in `msDS-GroupMSAMembership` to read
/// `msDS-ManagedPassword` (the default descriptor grants far more, including this bit).
pub const READ_PROPERTY: u32 = 0x0000_0010;
/// `GENERIC_ALL`: maps to every object right.
pub const GENERIC_ALL: u32 = 0x1000_0000;
/// `GENERIC_READ`: maps to read rights (including read property).
pub const GENERIC_READ: u32 = 0x8000_0000;

const SE_DACL_PRESENT: u16 = 0x0004;
const SE_SELF_RELATIVE: u16 = 0x8000;
const INHERIT_ONLY_ACE: u8 = 0x08;
const ACE_OBJECT_TYPE_PRESENT: u32 = 0x1;
const ACE_INHERITED_OBJECT_TYPE_PRESENT: u32 = 0x2;

/// A decoded security descriptor (owner, group and DACL; the SACL is not needed and skipped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityDescriptor {
    /// The control flags (`SE_*`).
    pub control: u16,
    /// The owner, if present.
    pub owner: Option<Sid>,
    /// The primary group, if present.
    pub group: Option<Sid>,
    /// The DACL; `None` when the descriptor has none (which grants everyone everything).
    pub dacl: Option<Acl>,
}

/// An access control list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    /// The ACL revision (2, or 4 when it holds object ACEs).
    pub revision: u8,
    /// The entries, in evaluation order.
    pub aces: Vec<Ace>,
}

/// Whether an ACE allows or denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AceKind {
    /// `ACCESS_ALLOWED_ACE` (0) or `ACCESS_ALLOWED_OBJECT_ACE` (5).
    Allow,
    /// `ACCESS_DENIED_ACE` (1) or `ACCESS_DENIED_OBJECT_ACE` (6).
    Deny,
    /// Any other type (audit, alarm, callback, …): kept but never grants or denies.
    Other(u8),
}

/// One access control entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ace {
    /// The raw ACE type byte.
    pub ace_type: u8,
    /// Allow, deny or other.
    pub kind: AceKind,
    /// The ACE flags (inheritance).
    pub flags: u8,
    /// The access mask; 0 for ACE types this decoder does not know.
    pub mask: u32,
    /// For object ACEs, the property / property set / extended right it is limited to.
    pub object_type: Option<Guid>,
    /// For object ACEs, the child object class it is inherited by.
    pub inherited_object_type: Option<Guid>,
    /// The trustee; `None` for ACE types this decoder does not know.
    pub sid: Option<Sid>,
}

impl Ace {
    /// Whether this ACE takes part in a check of `right` on the object itself.
    fn applies_to_object(&self) -> bool {
        self.flags & INHERIT_ONLY_ACE == 0 && self.object_type.is_none()
    }

    /// The rights this ACE's mask covers out of `wanted` (generic rights mapped).
    fn covers(&self, wanted: u32) -> u32 {
        let mut mask = self.mask;
        if mask & GENERIC_ALL != 0 {
            mask |= wanted;
        }
        if mask & GENERIC_READ != 0 {
            mask |= READ_PROPERTY;
        }
        mask & wanted
    }
}

/// The outcome of [`SecurityDescriptor::access_check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Granted; the SIDs of the allow ACEs that granted it (empty for a missing DACL).
    Granted(Vec<Sid>),
    /// Denied by a deny ACE for this SID.
    Denied(Sid),
    /// No ACE granted it.
    NotGranted,
}

impl SecurityDescriptor {
    /// Decodes a self-relative security descriptor.
    pub fn decode(bytes: &[u8]) -> Result<SecurityDescriptor, DecodeError> {
        if bytes.len() < 20 {
            return Err(DecodeError::new(
                "security descriptor",
                0,
                format!("{} bytes, shorter than its 20-byte header", bytes.len()),
            ));
        }
        if bytes[0] != 1 {
            return Err(DecodeError::new(
                "security descriptor",
                0,
                format!("revision {}, expected 1", bytes[0]),
            ));
        }
        let control = u16_at(bytes, 2);
        if control & SE_SELF_RELATIVE == 0 {
            return Err(DecodeError::new(
                "security descriptor",
                2,
                "not self-relative (SE_SELF_RELATIVE is not set)",
            ));
        }
        let sid_at = |field: usize| -> Result<Option<Sid>, DecodeError> {
            let offset = offset_at(bytes, field);
            if offset == 0 {
                return Ok(None);
            }
            let tail = bytes.get(offset..).ok_or_else(|| {
                DecodeError::new("security descriptor", field, "SID offset past the end")
            })?;
            let (sid, _) = Sid::decode_prefix(tail).map_err(|e| e.at(offset))?;
            Ok(Some(sid))
        };
        let owner = sid_at(4)?;
        let group = sid_at(8)?;
        let dacl_offset = offset_at(bytes, 16);
        let dacl = if control & SE_DACL_PRESENT != 0 && dacl_offset != 0 {
            Some(Acl::decode(bytes, dacl_offset)?)
        } else {
            None
        };
        Ok(SecurityDescriptor {
            control,
            owner,
            group,
            dacl,
        })
    }

    /// Checks whether a token (a principal's SID and the SIDs of all its groups) holds
    /// `right` (e.g. [`READ_PROPERTY`]) under this descriptor's DACL.
    pub fn access_check(&self, token: &[Sid], right: u32) -> Access {
        let Some(dacl) = &self.dacl else {
            return Access::Granted(Vec::new());
        };
        let mut granted = 0u32;
        let mut by = Vec::new();
        for ace in dacl.aces.iter().filter(|a| a.applies_to_object()) {
            let Some(sid) = &ace.sid else { continue };
            if !token.contains(sid) {
                continue;
            }
            let covered = ace.covers(right) & !granted;
            if covered == 0 {
                continue;
            }
            match ace.kind {
                AceKind::Deny => return Access::Denied(sid.clone()),
                AceKind::Allow => {
                    granted |= covered;
                    by.push(sid.clone());
                    if granted == right {
                        return Access::Granted(by);
                    }
                }
                AceKind::Other(_) => {}
            }
        }
        Access::NotGranted
    }

    /// The trustees of allow ACEs that grant `right` on the object (who may retrieve the
    /// password when the descriptor is `msDS-GroupMSAMembership`), in ACE order, without
    /// duplicates. Deny ACEs are listed by [`SecurityDescriptor::denied`].
    pub fn allowed(&self, right: u32) -> Vec<Sid> {
        self.trustees(AceKind::Allow, right)
    }

    /// The trustees of deny ACEs that cover `right`.
    pub fn denied(&self, right: u32) -> Vec<Sid> {
        self.trustees(AceKind::Deny, right)
    }

    fn trustees(&self, kind: AceKind, right: u32) -> Vec<Sid> {
        let mut out: Vec<Sid> = Vec::new();
        let aces = self.dacl.iter().flat_map(|d| d.aces.iter());
        for ace in aces.filter(|a| a.kind == kind && a.applies_to_object()) {
            if let Some(sid) = &ace.sid {
                if ace.covers(right) != 0 && !out.contains(sid) {
                    out.push(sid.clone());
                }
            }
        }
        out
    }
}

impl Acl {
    fn decode(sd: &[u8], offset: usize) -> Result<Acl, DecodeError> {
        let header = sd
            .get(offset..offset + 8)
            .ok_or_else(|| DecodeError::new("ACL", offset, "header past the end"))?;
        let revision = header[0];
        let size = usize::from(u16_at(header, 2));
        let count = usize::from(u16_at(header, 4));
        let acl = sd.get(offset..offset + size).ok_or_else(|| {
            DecodeError::new(
                "ACL",
                offset,
                format!("size {size} runs past the end of the descriptor"),
            )
        })?;
        let mut aces = Vec::with_capacity(count.min(64));
        let mut at = 8;
        for index in 0..count {
            let ace = acl.get(at..at + 4).ok_or_else(|| {
                DecodeError::new(
                    "ACL",
                    offset + at,
                    format!("ACE {index} header past the end"),
                )
            })?;
            let ace_size = usize::from(u16_at(ace, 2));
            let body = acl.get(at..at + ace_size).filter(|_| ace_size >= 4);
            let body = body.ok_or_else(|| {
                DecodeError::new(
                    "ACL",
                    offset + at,
                    format!("ACE {index} size {ace_size} is invalid or runs past the ACL"),
                )
            })?;
            aces.push(decode_ace(body).map_err(|e| e.at(offset + at))?);
            at += ace_size;
        }
        Ok(Acl { revision, aces })
    }
}

fn decode_ace(body: &[u8]) -> Result<Ace, DecodeError> {
    let ace_type = body[0];
    let flags = body[1];
    let (kind, object) = match ace_type {
        0 => (AceKind::Allow, false),
        1 => (AceKind::Deny, false),
        5 => (AceKind::Allow, true),
        6 => (AceKind::Deny, true),
        other => {
            return Ok(Ace {
                ace_type,
                kind: AceKind::Other(other),
                flags,
                mask: 0,
                object_type: None,
                inherited_object_type: None,
                sid: None,
            })
        }
    };
    let short = |what: &str| DecodeError::new("ACE", 0, format!("too short for its {what}"));
    let mask = body.get(4..8).ok_or_else(|| short("access mask"))?;
    let mask = u32::from_le_bytes([mask[0], mask[1], mask[2], mask[3]]);
    let mut at = 8;
    let mut object_type = None;
    let mut inherited_object_type = None;
    if object {
        let f = body.get(8..12).ok_or_else(|| short("object flags"))?;
        let object_flags = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
        at = 12;
        if object_flags & ACE_OBJECT_TYPE_PRESENT != 0 {
            let g = body.get(at..at + 16).ok_or_else(|| short("object type"))?;
            object_type = Some(Guid::decode(g)?);
            at += 16;
        }
        if object_flags & ACE_INHERITED_OBJECT_TYPE_PRESENT != 0 {
            let g = body
                .get(at..at + 16)
                .ok_or_else(|| short("inherited object type"))?;
            inherited_object_type = Some(Guid::decode(g)?);
            at += 16;
        }
    }
    let (sid, _) = Sid::decode_prefix(body.get(at..).unwrap_or_default()).map_err(|e| e.at(at))?;
    Ok(Ace {
        ace_type,
        kind,
        flags,
        mask,
        object_type,
        inherited_object_type,
        sid: Some(sid),
    })
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn offset_at(bytes: &[u8], at: usize) -> usize {
    let v = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    usize::try_from(v).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `msDS-GroupMSAMembership` of a gMSA on a Samba 4.22 DC after `samba-tool
    /// service-account group-msa-membership add` of a computer (RID 1104) and a group (RID
    /// 1107): `O:BAD:(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;<dom>-500)(A;;…;;;<dom>-1104)(A;;…;;;<dom>-1107)`.
    const SAMBA_MEMBERSHIP: [u8; 0x98] = [
        0x01, 0x00, 0x04, 0x80, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x24, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x20, 0x00,
        0x00, 0x00, 0x20, 0x02, 0x00, 0x00, 0x04, 0x00, 0x74, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x24, 0x00, 0xff, 0x01, 0x0f, 0x00, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
        0x15, 0x00, 0x00, 0x00, 0x86, 0x6a, 0x0e, 0xf1, 0x8c, 0x13, 0xcb, 0x82, 0xa6, 0x01, 0x95,
        0x39, 0xf4, 0x01, 0x00, 0x00, 0x00, 0x00, 0x24, 0x00, 0xff, 0x01, 0x0f, 0x00, 0x01, 0x05,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00, 0x86, 0x6a, 0x0e, 0xf1, 0x8c,
        0x13, 0xcb, 0x82, 0xa6, 0x01, 0x95, 0x39, 0x50, 0x04, 0x00, 0x00, 0x00, 0x00, 0x24, 0x00,
        0xff, 0x01, 0x0f, 0x00, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00,
        0x00, 0x86, 0x6a, 0x0e, 0xf1, 0x8c, 0x13, 0xcb, 0x82, 0xa6, 0x01, 0x95, 0x39, 0x53, 0x04,
        0x00, 0x00,
    ];
    const DOM: &str = "S-1-5-21-4044253830-2194346892-966066598";

    fn sid(text: &str) -> Sid {
        text.parse().expect("test SID parses")
    }
    fn dom(rid: u32) -> Sid {
        sid(DOM).child(rid)
    }

    #[test]
    fn decodes_a_samba_membership_descriptor() {
        let sd = SecurityDescriptor::decode(&SAMBA_MEMBERSHIP).expect("decodes");
        assert_eq!(sd.control, 0x8004);
        assert_eq!(sd.owner, Some(sid("S-1-5-32-544")));
        assert_eq!(sd.group, None);
        let dacl = sd.dacl.as_ref().expect("has a DACL");
        assert_eq!(dacl.revision, 4);
        let got: Vec<(AceKind, u32, Option<Sid>)> = dacl
            .aces
            .iter()
            .map(|a| (a.kind, a.mask, a.sid.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (AceKind::Allow, 0x000f_01ff, Some(dom(500))),
                (AceKind::Allow, 0x000f_01ff, Some(dom(1104))),
                (AceKind::Allow, 0x000f_01ff, Some(dom(1107))),
            ]
        );
        assert_eq!(
            sd.allowed(READ_PROPERTY),
            vec![dom(500), dom(1104), dom(1107)]
        );
        assert!(sd.denied(READ_PROPERTY).is_empty());
    }

    #[test]
    fn access_check_on_the_samba_descriptor() {
        let sd = SecurityDescriptor::decode(&SAMBA_MEMBERSHIP).expect("decodes");
        let everyone = sid("S-1-1-0");
        // (token, expected) — a computer directly, one through its group, one not listed.
        let table = vec![
            (
                vec![dom(1104), dom(515), everyone.clone()],
                Access::Granted(vec![dom(1104)]),
            ),
            (
                vec![dom(1105), dom(1107), dom(515)],
                Access::Granted(vec![dom(1107)]),
            ),
            (vec![dom(1106), dom(515), everyone], Access::NotGranted),
            (vec![], Access::NotGranted),
        ];
        for (token, want) in table {
            assert_eq!(sd.access_check(&token, READ_PROPERTY), want, "{token:?}");
        }
    }

    /// Builds a self-relative descriptor (owner BA, no group) with the given raw ACEs.
    fn build(aces: &[Vec<u8>]) -> Vec<u8> {
        let owner = sid("S-1-5-32-544").encode();
        let acl_len: usize = 8 + aces.iter().map(Vec::len).sum::<usize>();
        let mut out = vec![1, 0, 0x04, 0x80];
        out.extend_from_slice(&20u32.to_le_bytes()); // owner
        out.extend_from_slice(&0u32.to_le_bytes()); // group
        out.extend_from_slice(&0u32.to_le_bytes()); // sacl
        let dacl_at = u32::try_from(20 + owner.len()).expect("small");
        out.extend_from_slice(&dacl_at.to_le_bytes());
        out.extend_from_slice(&owner);
        out.extend_from_slice(&[4, 0]);
        out.extend_from_slice(&u16::try_from(acl_len).expect("small").to_le_bytes());
        out.extend_from_slice(&u16::try_from(aces.len()).expect("small").to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        for ace in aces {
            out.extend_from_slice(ace);
        }
        out
    }

    fn ace(
        ace_type: u8,
        flags: u8,
        mask: u32,
        object: Option<(u32, Vec<Guid>)>,
        who: &Sid,
    ) -> Vec<u8> {
        let mut body = mask.to_le_bytes().to_vec();
        if let Some((object_flags, guids)) = object {
            body.extend_from_slice(&object_flags.to_le_bytes());
            for g in guids {
                body.extend_from_slice(&g.0);
            }
        }
        body.extend_from_slice(&who.encode());
        let size = u16::try_from(4 + body.len()).expect("small");
        let mut out = vec![ace_type, flags];
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn object_aces_deny_and_inherit_only() {
        let property = Guid::parse("e48d0154-bcf8-11d1-8702-00c04fb96050").expect("guid");
        let class = Guid::parse("bf967a86-0de6-11d0-a285-00aa003049e2").expect("guid");
        let bytes = build(&[
            // Deny READ_PROPERTY to 1200 first (canonical order).
            ace(1, 0, READ_PROPERTY, None, &dom(1200)),
            // Object ACE limited to one property: does not grant the object right.
            ace(5, 0, READ_PROPERTY, Some((1, vec![property])), &dom(1300)),
            // Object ACE with only an inherited object type: applies to the object.
            ace(5, 0, READ_PROPERTY, Some((2, vec![class])), &dom(1400)),
            // Both GUIDs present.
            ace(
                6,
                0,
                READ_PROPERTY,
                Some((3, vec![property, class])),
                &dom(1500),
            ),
            // Inherit-only: skipped for this object.
            ace(0, INHERIT_ONLY_ACE, READ_PROPERTY, None, &dom(1600)),
            // Generic read grants read property.
            ace(0, 0, GENERIC_READ, None, &dom(1700)),
            // A mask without the right grants nothing.
            ace(0, 0, 0x20, None, &dom(1800)),
            // Everyone (also in 1200's token).
            ace(0, 0, GENERIC_ALL, None, &sid("S-1-1-0")),
        ]);
        let sd = SecurityDescriptor::decode(&bytes).expect("decodes");
        let aces = &sd.dacl.as_ref().expect("dacl").aces;
        assert_eq!(aces.len(), 8);
        assert_eq!(aces[1].object_type, Some(property));
        assert_eq!(aces[1].inherited_object_type, None);
        assert_eq!(aces[2].object_type, None);
        assert_eq!(aces[2].inherited_object_type, Some(class));
        assert_eq!(aces[3].object_type, Some(property));
        assert_eq!(aces[3].inherited_object_type, Some(class));
        assert_eq!(aces[3].kind, AceKind::Deny);
        assert_eq!(aces[3].sid, Some(dom(1500)));

        let everyone = sid("S-1-1-0");
        let table = vec![
            (vec![dom(1200), everyone.clone()], Access::Denied(dom(1200))),
            (vec![dom(1300)], Access::NotGranted),
            (vec![dom(1400)], Access::Granted(vec![dom(1400)])),
            (vec![dom(1600)], Access::NotGranted),
            (vec![dom(1700)], Access::Granted(vec![dom(1700)])),
            (vec![dom(1800)], Access::NotGranted),
            (
                vec![dom(1800), everyone.clone()],
                Access::Granted(vec![everyone.clone()]),
            ),
        ];
        for (token, want) in table {
            assert_eq!(sd.access_check(&token, READ_PROPERTY), want, "{token:?}");
        }
        assert_eq!(
            sd.allowed(READ_PROPERTY),
            vec![dom(1400), dom(1700), everyone]
        );
        assert_eq!(sd.denied(READ_PROPERTY), vec![dom(1200)]);
    }

    #[test]
    fn unknown_ace_types_are_kept_but_inert() {
        // A system-audit ACE (type 2) followed by an allow.
        let mut audit = ace(2, 0, READ_PROPERTY, None, &dom(1900));
        audit[0] = 2;
        let bytes = build(&[audit, ace(0, 0, READ_PROPERTY, None, &dom(2000))]);
        let sd = SecurityDescriptor::decode(&bytes).expect("decodes");
        let aces = &sd.dacl.as_ref().expect("dacl").aces;
        assert_eq!(aces[0].kind, AceKind::Other(2));
        assert_eq!(
            sd.access_check(&[dom(1900)], READ_PROPERTY),
            Access::NotGranted
        );
        assert_eq!(
            sd.access_check(&[dom(2000)], READ_PROPERTY),
            Access::Granted(vec![dom(2000)])
        );
    }

    #[test]
    fn no_dacl_grants_everyone() {
        let mut bytes = build(&[]);
        bytes[2] = 0; // clear SE_DACL_PRESENT
        let sd = SecurityDescriptor::decode(&bytes).expect("decodes");
        assert_eq!(sd.dacl, None);
        assert_eq!(
            sd.access_check(&[dom(1)], READ_PROPERTY),
            Access::Granted(vec![])
        );
    }

    #[test]
    fn rejects_malformed_descriptors() {
        let good = SAMBA_MEMBERSHIP.to_vec();
        let mut not_relative = good.clone();
        not_relative[3] = 0;
        let mut bad_revision = good.clone();
        bad_revision[0] = 2;
        let mut owner_past_end = good.clone();
        owner_past_end[4] = 0xf0;
        let mut acl_too_big = good.clone();
        acl_too_big[0x26] = 0xff;
        let mut ace_size_zero = good.clone();
        ace_size_zero[0x2e] = 0;
        let mut ace_count_high = good.clone();
        ace_count_high[0x28] = 4;
        let table: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "short",
                good[..10].to_vec(),
                "shorter than its 20-byte header",
            ),
            ("revision", bad_revision, "revision 2"),
            ("absolute", not_relative, "not self-relative"),
            ("owner offset", owner_past_end, "SID offset past the end"),
            (
                "acl size",
                acl_too_big,
                "runs past the end of the descriptor",
            ),
            ("ace size", ace_size_zero, "ACE 0 size 0 is invalid"),
            ("ace count", ace_count_high, "ACE 3 header past the end"),
            (
                "truncated",
                good[..good.len() - 2].to_vec(),
                "runs past the end",
            ),
        ];
        for (name, bytes, want) in table {
            let err = SecurityDescriptor::decode(&bytes)
                .expect_err(name)
                .to_string();
            assert!(err.contains(want), "{name}: {err} should contain {want}");
        }
    }
}
