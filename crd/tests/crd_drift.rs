//! The checked-in CRD (`charts/gmsa/crds/gmsa-credentialspec-crd.yaml`) is exactly what the
//! code generates. On failure, regenerate it:
//! `cargo run -q -p gmsa -- crd > charts/gmsa/crds/gmsa-credentialspec-crd.yaml`

use std::path::PathBuf;

#[test]
fn checked_in_crd_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(gmsa_crd::CRD_PATH);
    let checked_in =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let generated = gmsa_crd::crd_yaml().expect("generate");
    assert!(
        checked_in == generated,
        "{} differs from the generated CRD; regenerate it with\n  cargo run -q -p gmsa -- crd > {}",
        path.display(),
        gmsa_crd::CRD_PATH
    );
}

#[test]
fn the_examples_read_and_validate_cleanly() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for name in [
        "gmsa-cred-spec.txt",
        "gmsa-cred-spec-ccg.txt",
        "credspecs/webapp01.yaml",
        "credspecs/webapp02.yaml",
    ] {
        let file = std::fs::File::open(root.join(name)).expect("open example");
        let doc = gmsa_crd::read_document(file).unwrap_or_else(|e| panic!("{name}: {e}"));
        let spec = doc.typed().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(gmsa_crd::validate(&spec), vec![], "{name}");
    }
}
