//! GUIDs as AD stores them (`objectGUID`, object types in object ACEs): 16 bytes in the
//! Windows mixed-endian layout (the first three fields little-endian, the last 8 bytes as is).

use std::fmt;

use crate::DecodeError;

/// A GUID in its 16-byte wire form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Decodes a GUID that fills `bytes` exactly.
    pub fn decode(bytes: &[u8]) -> Result<Guid, DecodeError> {
        let array: [u8; 16] = bytes.try_into().map_err(|_| {
            DecodeError::new("GUID", 0, format!("{} bytes, expected 16", bytes.len()))
        })?;
        Ok(Guid(array))
    }

    /// Parses the text form, with or without braces, any case.
    pub fn parse(text: &str) -> Option<Guid> {
        let inner = text.trim().trim_start_matches('{').trim_end_matches('}');
        let groups: Vec<&str> = inner.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        if groups.len() != 5
            || groups.iter().zip(lens).any(|(g, l)| g.len() != l)
            // from_str_radix would take a sign: "+0" parses as 0.
            || !groups.iter().all(|g| g.bytes().all(|c| c.is_ascii_hexdigit()))
        {
            return None;
        }
        let hex: String = groups.concat();
        let mut big_endian = [0u8; 16];
        for (i, byte) in big_endian.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        let b = big_endian;
        Some(Guid([
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13],
            b[14], b[15],
        ]))
    }
}

impl fmt::Display for Guid {
    /// Lower-case, unbraced, as `New-CredentialSpec` writes `DomainJoinConfig.Guid`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        let data1 = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let data2 = u16::from_le_bytes([b[4], b[5]]);
        let data3 = u16::from_le_bytes([b[6], b[7]]);
        write!(
            f,
            "{data1:08x}-{data2:04x}-{data3:04x}-{:02x}{:02x}-",
            b[8], b[9]
        )?;
        for byte in &b[10..] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_mixed_endian() {
        // objectGUID of a Samba domain (base64 `Lwfi8RDbcUymlrx+rEYacA==`).
        let bytes = [
            0x2f, 0x07, 0xe2, 0xf1, 0x10, 0xdb, 0x71, 0x4c, 0xa6, 0x96, 0xbc, 0x7e, 0xac, 0x46,
            0x1a, 0x70,
        ];
        let guid = Guid::decode(&bytes).expect("decodes");
        assert_eq!(guid.to_string(), "f1e2072f-db10-4c71-a696-bc7eac461a70");
        assert_eq!(
            Guid::parse("{F1E2072F-DB10-4C71-A696-BC7EAC461A70}"),
            Some(guid)
        );
    }

    #[test]
    fn every_byte_lands_in_its_place() {
        let bytes: [u8; 16] = std::array::from_fn(|i| u8::try_from(i).unwrap_or(0));
        let guid = Guid::decode(&bytes).expect("decodes");
        assert_eq!(guid.to_string(), "03020100-0504-0706-0809-0a0b0c0d0e0f");
        assert_eq!(Guid::parse(&guid.to_string()), Some(guid));
    }

    #[test]
    fn rejects_wrong_lengths_and_text() {
        let err = Guid::decode(&[0; 15]).expect_err("15 bytes").to_string();
        assert!(err.contains("15 bytes, expected 16"), "{err}");
        assert!(Guid::decode(&[0; 17]).is_err());
        for text in [
            "",
            "not-a-guid",
            "f1e2072f-db10-4c71-a696-bc7eac461a7",
            "f1e2072fdb104c71a696bc7eac461a70",
            "g1e2072f-db10-4c71-a696-bc7eac461a70",
        ] {
            assert_eq!(Guid::parse(text), None, "{text}");
        }
    }
}
