//! Private keys: generation (ECDSA P-256 with ring) and loading an existing PKCS#8 key.
//!
//! RSA: ring can sign with RSA keys but cannot generate them, and we keep ring as the only
//! crypto provider, so `rsa2048` works only with an existing key (`--key-file`). An RSA key is
//! never needed by Kubernetes: the API server and every signer accept ECDSA P-256.

use std::str::FromStr;

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384};

use crate::CertsError;

/// The kind of private key to generate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on NIST P-256 with SHA-256 (the default).
    #[default]
    EcdsaP256,
    /// RSA 2048 bits: only with an existing key (see the module docs).
    Rsa2048,
}

impl FromStr for KeyType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ecdsa-p256" | "ecdsa" | "p256" | "ec" => Ok(Self::EcdsaP256),
            "rsa2048" | "rsa-2048" | "rsa" => Ok(Self::Rsa2048),
            other => Err(format!(
                "unknown key type {other:?}: use ecdsa-p256 or rsa2048"
            )),
        }
    }
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Rsa2048 => "rsa2048",
        })
    }
}

/// The family of an existing key, which decides the CSR's key usages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFamily {
    /// ECDSA (or EdDSA): signs only.
    Ecdsa,
    /// RSA: signs and, in TLS 1.2 RSA key exchange, encrypts.
    Rsa,
}

/// Generates a new private key.
pub fn generate_key(key_type: KeyType) -> Result<KeyPair, CertsError> {
    match key_type {
        KeyType::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| CertsError::KeyGeneration(e.to_string())),
        KeyType::Rsa2048 => Err(CertsError::RsaGenerationUnavailable),
    }
}

/// Loads an unencrypted PKCS#8 PEM private key (ECDSA P-256/P-384 or RSA); `what` names its
/// origin for error messages.
pub fn load_key(pem_text: &str, what: &str) -> Result<KeyPair, CertsError> {
    let invalid = |detail: String| CertsError::InvalidKey {
        what: what.to_string(),
        detail,
    };
    let block = pem::parse(pem_text).map_err(|e| invalid(format!("not PEM: {e}")))?;
    if block.tag() != "PRIVATE KEY" {
        return Err(invalid(format!(
            "PEM block is {:?}; convert it with `openssl pkcs8 -topk8 -nocrypt`",
            block.tag()
        )));
    }
    KeyPair::try_from(block.contents()).map_err(|e| invalid(e.to_string()))
}

/// The key's family.
pub fn key_family(key: &KeyPair) -> KeyFamily {
    let alg = key.algorithm();
    if alg == &PKCS_ECDSA_P256_SHA256
        || alg == &PKCS_ECDSA_P384_SHA384
        || alg == &rcgen::PKCS_ED25519
    {
        KeyFamily::Ecdsa
    } else {
        KeyFamily::Rsa
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_names() {
        let table: &[(&str, Option<KeyType>)] = &[
            ("ecdsa-p256", Some(KeyType::EcdsaP256)),
            ("ECDSA", Some(KeyType::EcdsaP256)),
            ("rsa2048", Some(KeyType::Rsa2048)),
            ("rsa", Some(KeyType::Rsa2048)),
            ("ed25519", None),
            ("", None),
        ];
        for (text, want) in table {
            assert_eq!(text.parse::<KeyType>().ok(), *want, "{text:?}");
        }
        assert_eq!(KeyType::Rsa2048.to_string(), "rsa2048");
    }

    #[test]
    fn generates_p256_and_refuses_rsa_generation_with_the_fix() {
        let key = generate_key(KeyType::EcdsaP256).expect("p256");
        assert_eq!(key.algorithm(), &PKCS_ECDSA_P256_SHA256);
        assert_eq!(key_family(&key), KeyFamily::Ecdsa);
        let err = generate_key(KeyType::Rsa2048).expect_err("ring cannot make RSA keys");
        assert!(err.to_string().contains("--key-file"), "{err}");
    }

    #[test]
    fn loads_a_generated_key_back_and_rejects_other_pem() {
        let key = generate_key(KeyType::EcdsaP256).expect("p256");
        let again = load_key(&key.serialize_pem(), "test").expect("reload");
        assert_eq!(again.public_key_raw(), key.public_key_raw());

        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        let err = load_key(sec1, "tls.key").expect_err("SEC1 is not PKCS#8");
        assert!(err.to_string().contains("openssl pkcs8"), "{err}");
        let err = load_key("garbage", "tls.key").expect_err("not PEM");
        assert!(err.to_string().contains("tls.key"), "{err}");
        let junk = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        load_key(junk, "tls.key").expect_err("not a key");
    }
}
