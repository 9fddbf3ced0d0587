//! Fuzzing the Active Directory binary decoders (SID, GUID, self-relative security
//! descriptor as in `msDS-GroupMSAMembership`) and their text forms, on stable under
//! `cargo test` (engine: fuzz/engine.rs; seeds: fuzz/corpus/ad/, a descriptor captured from a
//! Samba DC and hand-built SIDs, GUIDs and a descriptor with deny and allow ACEs).
//!
//! Every input goes to every decoder. Invariants: no panic; errors say where (a message);
//! a decoded SID encodes back to the bytes it consumed and its text parses back to it; a
//! decoded GUID's text parses back to it; an access check over a decoded descriptor names
//! only SIDs of the token that appear in its ACEs, and `allowed`/`denied` list only ACE SIDs.

#[path = "../../fuzz/engine.rs"]
mod engine;

use gmsa_ad::{Access, Guid, SecurityDescriptor, Sid, GENERIC_ALL, READ_PROPERTY};

use engine::Target;

const DICTIONARY: &[&[u8]] = &[
    b"\x01\x05\x00\x00\x00\x00\x00\x05\x15\x00\x00\x00",
    b"\x01\x02\x00\x00\x00\x00\x00\x05\x20\x00\x00\x00\x20\x02\x00\x00",
    b"\x01\x00\x04\x80",
    b"\x02\x00\xff\xff\x01\x00\x00\x00",
    b"\x00\x00\x24\x00\xff\x01\x0f\x00",
    b"\x01\x00\x14\x00\x10\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"S-1-5-21-",
    b"-4294967295",
    b"S-1-0x123456789ABC-",
    b"{",
];

#[test]
fn ad_decoders_survive_mutants() {
    let target = Target::new("ad", DICTIONARY);
    let mut decoded = [0u64; 3];
    engine::run(&target, |input| {
        let bytes = input.bytes;
        match Sid::decode_prefix(bytes) {
            Ok((sid, used)) => {
                decoded[0] += 1;
                assert!(used <= bytes.len());
                assert_eq!(
                    sid.encode(),
                    bytes[..used],
                    "SID re-encodes to what it read"
                );
                let text = sid.to_string();
                let back: Sid = text.parse().expect("a SID's text parses");
                assert_eq!(back, sid, "{text}");
                if let Some(parent) = sid.parent() {
                    assert_eq!(Some(parent.child(sid.rid().expect("has a RID"))), Some(sid));
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        let _ = Sid::decode(bytes);
        if let Ok(guid) = Guid::decode(bytes) {
            decoded[1] += 1;
            assert_eq!(Guid::parse(&guid.to_string()), Some(guid));
        }
        let text = String::from_utf8_lossy(bytes);
        if let Ok(sid) = text.parse::<Sid>() {
            let again: Sid = sid.to_string().parse().expect("canonical text parses");
            assert_eq!(again, sid);
        }
        if let Some(guid) = Guid::parse(&text) {
            assert_eq!(Guid::parse(&guid.to_string()), Some(guid));
        }
        match SecurityDescriptor::decode(bytes) {
            Ok(sd) => {
                decoded[2] += 1;
                let ace_sids: Vec<Sid> = sd
                    .dacl
                    .iter()
                    .flat_map(|d| d.aces.iter().filter_map(|a| a.sid.clone()))
                    .collect();
                let token: Vec<Sid> = ace_sids.iter().take(3).cloned().collect();
                for right in [READ_PROPERTY, GENERIC_ALL, 0x8000_0000] {
                    match sd.access_check(&token, right) {
                        Access::Granted(by) => {
                            for s in &by {
                                assert!(token.contains(s), "granted by {s}, not in the token");
                            }
                        }
                        Access::Denied(s) => assert!(token.contains(&s), "denied by {s}"),
                        Access::NotGranted => {}
                    }
                    for s in sd.allowed(right).iter().chain(sd.denied(right).iter()) {
                        assert!(ace_sids.contains(s), "{s} is in no ACE");
                    }
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    });
    eprintln!("decoded (sid, guid, sd): {decoded:?}");
    assert!(
        decoded.iter().all(|n| *n > 0),
        "every decoder succeeded sometimes: {decoded:?}"
    );
}
