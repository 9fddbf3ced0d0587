//! Fuzzing the credential-spec readers behind `gmsa spec from-file` (every encoding), on
//! stable under `cargo test` (engine: fuzz/engine.rs; seeds: fuzz/corpus/credspec/, the
//! reader fixtures and the examples).
//!
//! Byte mutants and structure-aware mutants (a parsed document changed at random nodes, then
//! written as JSON or YAML in UTF-8, UTF-8 with BOM, UTF-16 LE or BE with BOM, LF or CRLF) go
//! through read → typed → validate → name → emit. Invariants: no panic; every error has a
//! message; a document that reads back reads the same in every other BOM'd encoding; the
//! emitted manifest reads back to the same `credspec`, with a bounded size.

#[path = "../../fuzz/engine.rs"]
mod engine;

use gmsa_crd::input::decode;
use gmsa_crd::{default_name, read_document, validate, Document};
use serde_json::Value;

use engine::{Rng, Target};

const DICTIONARY: &[&[u8]] = &[
    b"\"CmsPlugins\":",
    b"\"DomainJoinConfig\":{",
    b"\"ActiveDirectoryConfig\":{",
    b"\"GroupManagedServiceAccounts\":[",
    b"\"HostAccountConfig\":{",
    b"\"PluginInput\":",
    b"apiVersion: windows.k8s.io/v1\n",
    b"kind: GMSACredentialSpec\n",
    b"credspec:\n  ",
    b"&a [*a,*a]",
    b"!!binary ",
    b"\xEF\xBB\xBF",
    b"\xFF\xFE",
    b"\xFE\xFF",
    b"\r\n",
    b"\\ud800",
];

fn encode(rng: &mut Rng, text: &str) -> Vec<u8> {
    let text = if rng.one_in(3) {
        text.replace('\n', "\r\n")
    } else {
        text.to_string()
    };
    match rng.below(4) {
        0 => text.into_bytes(),
        n => with_bom(n, &text),
    }
}

/// `text` with a byte-order mark: 1 UTF-8, 2 UTF-16 LE, 3 UTF-16 BE.
fn with_bom(which: usize, text: &str) -> Vec<u8> {
    match which {
        1 => [&[0xEF, 0xBB, 0xBF][..], text.as_bytes()].concat(),
        2 => [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect(),
        _ => [0xFE, 0xFF]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
            .collect(),
    }
}

fn check(bytes: &[u8]) -> Option<Document> {
    let doc = match read_document(bytes) {
        Ok(doc) => doc,
        Err(err) => {
            assert!(!err.to_string().is_empty(), "an error without a message");
            return None;
        }
    };
    if let Ok(spec) = doc.typed() {
        for problem in validate(&spec) {
            assert!(!problem.message.is_empty());
        }
        let _ = default_name(&spec);
    }
    // The same text in every BOM'd encoding reads the same.
    let (text, _) = decode(bytes).expect("read_document decoded it");
    for which in 1..=3 {
        let again = read_document(with_bom(which, &text).as_slice())
            .unwrap_or_else(|e| panic!("re-encoded ({which}) input fails: {e}"));
        assert_eq!(again.raw, doc.raw, "encoding {which} changes the spec");
        assert_eq!(again.format, doc.format);
    }
    let yaml = doc.to_resource("fuzzed").to_yaml().expect("emit YAML");
    assert!(
        yaml.len() <= 64 * bytes.len() + 64 * 1024,
        "emitted {} bytes from {}",
        yaml.len(),
        bytes.len()
    );
    let back = read_document(yaml.as_bytes()).expect("emitted YAML reads back");
    assert_eq!(back.raw, doc.raw, "round trip");
    Some(doc)
}

#[test]
fn credspec_readers_survive_mutants_in_every_encoding() {
    let target = Target::new("credspec", DICTIONARY);
    let keys = [
        "CmsPlugins",
        "DomainJoinConfig",
        "Sid",
        "Guid",
        "MachineAccountName",
        "PluginInput",
        "apiVersion",
        "kind",
        "credspec",
        "metadata",
        "name",
    ];
    let values: Vec<Value> = [
        "ActiveDirectory",
        "windows.k8s.io/v1alpha1",
        "GMSACredentialSpec",
        "S-1-5-21-1-2-3",
        "{859E1386-BDB4-49E8-85C7-3070B13920E1}",
        "UPPER_case.Name",
        "",
    ]
    .into_iter()
    .map(Value::from)
    .collect();
    let mut read = [0u64; 2];
    engine::run(&target, |input| {
        let bytes = if input.from_corpus || input.rng.one_in(2) {
            input.bytes.to_vec()
        } else {
            // Structure-aware: parse (any encoding), mutate the tree, write it out again.
            let Ok((text, _)) = decode(input.bytes) else {
                return;
            };
            let parsed: Option<Value> = serde_json::from_str(&text)
                .ok()
                .or_else(|| serde_norway::from_str(&text).ok());
            let Some(mut value) = parsed else { return };
            engine::mutate_json(input.rng, &mut value, &keys, &values);
            let text = if input.rng.one_in(2) {
                serde_json::to_string_pretty(&value).expect("JSON")
            } else {
                match serde_norway::to_string(&value) {
                    Ok(yaml) => yaml,
                    Err(_) => return,
                }
            };
            encode(input.rng, &text)
        };
        let started = std::time::Instant::now();
        read[usize::from(check(&bytes).is_some())] += 1;
        if started.elapsed() > std::time::Duration::from_millis(500) {
            // Kept for looking into (the engine only sees the unmutated seed).
            let dir = engine::fuzz_dir().join("../target/fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(
                dir.join(format!(
                    "credspec-slow-{}ms.bin",
                    started.elapsed().as_millis()
                )),
                &bytes,
            );
        }
    });
    assert!(read[0] > 0 && read[1] > 0, "both outcomes seen: {read:?}");
}
