//! Fuzzing the certificate, key and CA parsing of `gmsa certs` (the material `issue`/`renew`
//! reads back from a Secret, a directory, a CSR's `status.certificate` and the CA bundle), on
//! stable under `cargo test` (engine: fuzz/engine.rs; seeds: fuzz/corpus/certs/).
//!
//! An input is three PEM texts separated by `----8<----` lines: `tls.crt`, `tls.key`,
//! `ca.crt`. Byte mutants, plus DER-level mutants (a PEM block decoded, its DER mutated,
//! encoded again, so x509 parsing is reached), go through [`assess`] (parse chain, inspect,
//! load key, key match, SANs, chain verification, validity) and the parsers on their own.
//! Invariants: no panic; a verdict or error always says why; `Valid` only for a certificate
//! whose key matches and that chains to the CA.

#[path = "../../fuzz/engine.rs"]
mod engine;

use gmsa_certs::assess::{assess, Assessment, Material};
use gmsa_certs::ca::{verify_chain, CaBundle, CaSource};
use gmsa_certs::cert::{inspect, parse_pem_chain};
use gmsa_certs::duration::parse_duration;
use gmsa_certs::keys::load_key;
use gmsa_certs::request::CertRequest;

use engine::{Rng, Target};

const SEPARATOR: &str = "----8<----\n";

const DICTIONARY: &[&[u8]] = &[
    b"-----BEGIN CERTIFICATE-----\n",
    b"-----END CERTIFICATE-----\n",
    b"-----BEGIN PRIVATE KEY-----\n",
    b"-----END PRIVATE KEY-----\n",
    b"-----BEGIN EC PRIVATE KEY-----\n",
    b"-----BEGIN CERTIFICATE REQUEST-----\n",
    b"----8<----\n",
    b"\x30\x82\xff\xff",
    b"\x30\x80",
    b"\x06\x03\x55\x1d\x11",
    b"====",
];

/// Decodes one PEM block of `text`, mutates its DER, and puts it back.
fn mutate_der(rng: &mut Rng, text: &str) -> String {
    let Ok(blocks) = pem::parse_many(text) else {
        return text.to_string();
    };
    if blocks.is_empty() {
        return text.to_string();
    }
    let mut out = String::new();
    let chosen = rng.below(blocks.len());
    for (i, block) in blocks.into_iter().enumerate() {
        let mut der = block.contents().to_vec();
        if i == chosen {
            let len = der.len();
            match rng.below(4) {
                0 if len > 0 => {
                    let at = rng.below(len);
                    der[at] ^= 1 << rng.below(8);
                }
                1 if len > 0 => {
                    let at = rng.below(len);
                    der[at] = *rng.pick(&[0x00, 0x30, 0x80, 0x81, 0x82, 0xff]);
                }
                2 => der.truncate(rng.below(len + 1)),
                _ => {
                    let at = rng.below(len + 1);
                    der.splice(at..at, [0x30, 0x82, 0x01, 0x00]);
                }
            }
        }
        out.push_str(&pem::encode(&pem::Pem::new(block.tag().to_string(), der)));
    }
    out
}

#[test]
fn certificate_and_key_parsing_survives_mutants() {
    let target = Target::new("certs", DICTIONARY);
    let request = CertRequest::new("gmsa-webhook", "gmsa").expect("request");
    let now = gmsa_certs::cert::now_unix();
    let mut verdicts = [0u64; 4];
    engine::run(&target, |input| {
        let text = String::from_utf8_lossy(input.bytes).into_owned();
        let mut parts: Vec<String> = text.split(SEPARATOR).map(str::to_string).collect();
        parts.resize(3, String::new());
        if !input.from_corpus && input.rng.one_in(2) {
            let i = input.rng.below(3);
            parts[i] = mutate_der(input.rng, &parts[i]);
        }
        let (cert, key, ca) = (&parts[0], &parts[1], &parts[2]);

        let _ = parse_duration(&text);
        if let Ok(ders) = parse_pem_chain(cert, "tls.crt") {
            for der in &ders {
                inspect(der, "tls.crt").expect("a parsed chain inspects");
            }
            if let Ok(bundle) = CaBundle::from_pem(ca, CaSource::Kubeconfig) {
                if let Err(e) = verify_chain(&ders, &bundle, now) {
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        if let Err(e) = load_key(key, "tls.key") {
            assert!(!e.to_string().is_empty());
        }
        let Ok(bundle) = CaBundle::from_pem(ca, CaSource::Kubeconfig) else {
            return;
        };
        let material = Material {
            cert_pem: Some(cert),
            key_pem: Some(key),
            ca_pem: Some(ca),
        };
        let verdict = assess("fuzz", &material, &request, &bundle, now, 3600);
        assert!(!verdict.describe().is_empty(), "a verdict without a reason");
        let slot = match &verdict {
            Assessment::Missing(_) => 0,
            Assessment::Invalid(_) => 1,
            Assessment::Renew(..) => 2,
            Assessment::Valid(_) => 3,
        };
        verdicts[slot] += 1;
        if verdict.is_valid() {
            // Valid means: the key loads and matches, and the chain verifies.
            let key = load_key(key, "tls.key").expect("a Valid pair's key loads");
            let ders = parse_pem_chain(cert, "tls.crt").expect("a Valid pair's chain parses");
            assert!(gmsa_certs::cert::key_matches(&ders[0], &key, "tls.crt").expect("parses"));
            verify_chain(&ders, &bundle, now).expect("a Valid pair chains to the CA");
        }
    });
    eprintln!("verdicts (missing, invalid, renew, valid): {verdicts:?}");
    assert!(
        verdicts[1] > 0 && verdicts[3] > 0,
        "invalid and valid material were seen: {verdicts:?}"
    );
}
