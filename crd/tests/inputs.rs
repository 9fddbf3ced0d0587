//! Every input form `gmsa spec from-file` accepts (fixtures in `tests/fixtures/`, one per
//! encoding and format), the bad inputs it refuses, and round trips.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use gmsa_crd::{
    default_name, read_document, validate, CredSpec, Document, Encoding, Format, InputError,
    MAX_INPUT_BYTES,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read(name: &str) -> Result<Document, InputError> {
    read_document(File::open(fixture(name)).expect("open fixture"))
}

fn contoso() -> CredSpec {
    read("credspec-utf8.json")
        .expect("the plain fixture reads")
        .typed()
        .expect("typed")
}

#[test]
fn every_encoding_and_format_reads_to_the_same_spec() {
    let v1 = Format::Manifest {
        api_version: "windows.k8s.io/v1".into(),
    };
    let v1alpha1 = Format::Manifest {
        api_version: "windows.k8s.io/v1alpha1".into(),
    };
    let rows = [
        ("credspec-utf8.json", Format::CredSpecJson, Encoding::Utf8),
        (
            "credspec-utf8-crlf.json",
            Format::CredSpecJson,
            Encoding::Utf8,
        ),
        (
            "credspec-utf8-bom.json",
            Format::CredSpecJson,
            Encoding::Utf8Bom,
        ),
        (
            "credspec-utf16le-bom-crlf.json",
            Format::CredSpecJson,
            Encoding::Utf16Le,
        ),
        (
            "credspec-utf16be-bom.json",
            Format::CredSpecJson,
            Encoding::Utf16Be,
        ),
        (
            "credspec-compact.json",
            Format::CredSpecJson,
            Encoding::Utf8,
        ),
        ("manifest-v1.yaml", v1.clone(), Encoding::Utf8),
        ("manifest-v1alpha1.yaml", v1alpha1, Encoding::Utf8),
        ("manifest-v1-utf16le-crlf.yaml", v1, Encoding::Utf16Le),
    ];
    let want = contoso();
    for (name, format, encoding) in rows {
        let doc = read(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(doc.format, format, "{name}");
        assert_eq!(doc.encoding, encoding, "{name}");
        assert_eq!(doc.typed().expect("typed"), want, "{name}");
        assert_eq!(doc.raw, want.to_value(), "{name}: raw credspec");
        if matches!(doc.format, Format::Manifest { .. }) {
            assert_eq!(doc.name(), Some("webapp01"), "{name}");
        }
        assert_eq!(validate(&want), vec![], "{name}");
    }
}

#[test]
fn a_manifest_as_the_api_server_returns_it_reads_without_server_fields() {
    let doc = read("manifest-v1-from-server.json").expect("reads");
    let meta = doc.metadata.as_ref().expect("metadata");
    assert_eq!(meta.name.as_deref(), Some("webapp01"));
    assert!(meta.managed_fields.is_none() && meta.uid.is_none());
    assert!(
        meta.annotations.is_none(),
        "last-applied-configuration dropped"
    );
    let spec = doc.typed().expect("typed");
    assert_eq!(validate(&spec), vec![]);
    assert_eq!(default_name(&spec).expect("name"), "webapp01");
}

#[test]
fn bad_inputs_are_refused_with_a_clear_message() {
    let rows = [
        ("bad-empty.txt", "is empty"),
        ("bad-truncated.json", "is not valid JSON: EOF while parsing"),
        (
            "bad-configmap.yaml",
            "is a ConfigMap (v1), not a GMSACredentialSpec",
        ),
        ("bad-manifest-no-credspec.yaml", "without `credspec`"),
        ("bad-garbage.bin", "is not text (invalid UTF-8 at byte 32)"),
        (
            "bad-utf16le-no-bom.json",
            "UTF-16 without a byte-order mark",
        ),
    ];
    for (name, fragment) in rows {
        let err = read(name).expect_err(name);
        assert!(err.to_string().contains(fragment), "{name}: {err}");
    }
    let err = read("bad-wrong-type.json")
        .expect("syntax is fine")
        .typed()
        .expect_err("Sid is a number");
    assert_eq!(
        err.to_string(),
        "`DomainJoinConfig.Sid`: invalid type: integer `21`, expected a string"
    );
}

#[test]
fn a_50_mb_file_is_refused_without_reading_it_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.json");
    let mut file = File::create(&path).expect("create");
    let chunk = vec![b' '; 1024 * 1024];
    for _ in 0..50 {
        file.write_all(&chunk).expect("write");
    }
    file.write_all(b"{}").expect("write");
    drop(file);

    let mut file = File::open(&path).expect("open");
    let err = read_document(&mut file).expect_err("too large");
    assert!(
        matches!(err, InputError::TooLarge { limit } if limit == MAX_INPUT_BYTES),
        "{err}"
    );
    assert!(
        err.to_string().contains("is larger than 1048576 bytes"),
        "{err}"
    );
    // The reader stopped one byte past the limit instead of reading 50 MB.
    let position = std::io::Seek::stream_position(&mut file).expect("position");
    assert_eq!(position, MAX_INPUT_BYTES + 1);
}

#[test]
fn invalid_spec_reads_but_validation_names_each_problem() {
    let spec = read("invalid-spec.json")
        .expect("reads")
        .typed()
        .expect("typed");
    let found: Vec<(String, String)> = validate(&spec)
        .into_iter()
        .map(|p| (p.severity.to_string(), p.path))
        .collect();
    assert_eq!(
        found,
        [
            ("error".to_string(), "DomainJoinConfig.Sid".to_string()),
            ("error".to_string(), "DomainJoinConfig.Guid".to_string()),
            (
                "warning".to_string(),
                "ActiveDirectoryConfig.GroupManagedServiceAccounts[1].Scope".to_string()
            ),
        ]
    );
}

#[test]
fn round_trip_parse_emit_parse_is_identical() {
    for name in [
        "credspec-utf8.json",
        "credspec-utf16le-bom-crlf.json",
        "manifest-v1alpha1.yaml",
        "manifest-v1-from-server.json",
        "invalid-spec.json",
    ] {
        let first = read(name).expect("reads");
        let resource = first.to_resource("webapp01");
        for text in [
            resource.to_yaml().expect("yaml"),
            resource.to_json_pretty().expect("json"),
        ] {
            let second = read_document(text.as_bytes()).expect("emitted text reads back");
            assert_eq!(second.raw, first.raw, "{name}");
            assert_eq!(second.name(), Some("webapp01"), "{name}");
            assert_eq!(
                second.format,
                Format::Manifest {
                    api_version: "windows.k8s.io/v1".into()
                }
            );
            // Emitting again gives the same bytes: the output is stable.
            assert_eq!(
                second.to_resource("webapp01").to_yaml().expect("yaml"),
                resource.to_yaml().expect("yaml")
            );
        }
    }
}

#[test]
fn unknown_fields_survive_reading_and_emitting() {
    let text = r#"{"CmsPlugins":["ActiveDirectory"],"FutureSection":{"a":[1,{"b":null}]},
        "DomainJoinConfig":{"Sid":"S-1-5-21-1-2-3","Extra":"x"}}"#;
    let doc = read_document(text.as_bytes()).expect("reads");
    let yaml = doc.to_resource("x").to_yaml().expect("yaml");
    let back = read_document(yaml.as_bytes()).expect("reads back");
    assert_eq!(back.raw, doc.raw);
    assert_eq!(
        back.raw["FutureSection"]["a"][1]["b"],
        serde_json::Value::Null
    );
}

#[test]
fn yaml_alias_bombs_and_deep_nesting_are_refused() {
    let err = read("bad-yaml-alias-bomb.yaml").expect_err("alias bomb");
    assert!(err.to_string().contains("YAML aliases"), "{err}");
    // A partial bomb: small enough that serde_norway would expand it (10^4 nodes here; the
    // fuzzer found 5 KB inputs reaching ~320 MB), refused for its first alias all the same.
    let partial = "CmsPlugins: [ActiveDirectory]\n\
                   a: &a [x, x, x, x, x, x, x, x, x, x]\n\
                   b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                   c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n\
                   d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n";
    let err = read_document(partial.as_bytes()).expect_err("partial alias bomb");
    assert!(err.to_string().contains("YAML aliases"), "{err}");
    // Anchors are refused only when used: a plain `*` inside a quoted value is text.
    let starred = "CmsPlugins: ['*ActiveDirectory']\nActiveDirectoryConfig: {}\n";
    let doc = read_document(starred.as_bytes()).expect("a quoted star is not an alias");
    assert_eq!(doc.raw["CmsPlugins"][0], "*ActiveDirectory");
    let deep_json = format!("{{\"a\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let err = read_document(deep_json.as_bytes()).expect_err("deep JSON");
    assert!(
        err.to_string().contains("recursion limit exceeded"),
        "{err}"
    );
    let deep_yaml = format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let err = read_document(deep_yaml.as_bytes()).expect_err("deep YAML");
    assert!(
        err.to_string().contains("recursion limit exceeded"),
        "{err}"
    );
}

/// A small fuzz harness that runs under `cargo test`: thousands of deterministic mutants
/// (byte flips, insertions, deletions, truncations) of every good fixture go through the whole
/// read → typed → validate → name → emit path. Any panic fails the test.
#[test]
fn mutated_inputs_never_panic() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let seeds = [
        "credspec-utf8.json",
        "credspec-utf16le-bom-crlf.json",
        "manifest-v1.yaml",
        "manifest-v1-from-server.json",
    ];
    let mut outcomes = [0usize; 2];
    for seed in seeds {
        let original = std::fs::read(fixture(seed)).expect("read seed");
        for _ in 0..1500 {
            let mut bytes = original.clone();
            for _ in 0..(1 + next() % 4) {
                let len = bytes.len().max(1);
                let at = (next() as usize) % len;
                match next() % 4 {
                    0 if !bytes.is_empty() => bytes[at] ^= 1 << (next() % 8),
                    1 => bytes.insert(
                        at.min(bytes.len()),
                        b"{}[]:\"-\n\x00\xff"[(next() % 10) as usize],
                    ),
                    2 if !bytes.is_empty() => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
            }
            match read_document(bytes.as_slice()) {
                Err(err) => {
                    assert!(!err.to_string().is_empty());
                    outcomes[0] += 1;
                }
                Ok(doc) => {
                    outcomes[1] += 1;
                    if let Ok(spec) = doc.typed() {
                        let _ = validate(&spec);
                        let _ = default_name(&spec);
                    }
                    let yaml = doc.to_resource("x").to_yaml().expect("emit YAML");
                    let back = read_document(yaml.as_bytes()).expect("emitted YAML reads back");
                    assert_eq!(back.raw, doc.raw, "round trip of a mutant");
                }
            }
        }
    }
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "both outcomes exercised: {outcomes:?}"
    );
}
