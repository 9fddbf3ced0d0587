//! Is the material already in place (Secret or files) good enough to keep? Pure.

use crate::ca::{verify_chain, CaBundle};
use crate::cert::{
    inspect, key_matches, missing_sans, parse_pem_chain, validity, CertInfo, Validity,
};
use crate::duration::format_secs;
use crate::keys::load_key;
use crate::request::CertRequest;

/// PEM texts found in one place (`None` when the entry is absent).
#[derive(Clone, Copy, Debug, Default)]
pub struct Material<'a> {
    /// `tls.crt`.
    pub cert_pem: Option<&'a str>,
    /// `tls.key`.
    pub key_pem: Option<&'a str>,
    /// `ca.crt`.
    pub ca_pem: Option<&'a str>,
}

/// The verdict on existing material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Assessment {
    /// Nothing (or part of a pair) is there.
    Missing(String),
    /// Something is there but unusable; says why.
    Invalid(String),
    /// Usable but inside the renewal window.
    Renew(CertInfo, String),
    /// Usable and not due for renewal.
    Valid(CertInfo),
}

impl Assessment {
    /// Whether it can be kept as is.
    pub fn is_valid(&self) -> bool {
        matches!(self, Self::Valid(_))
    }

    /// A sentence for people.
    pub fn describe(&self) -> String {
        match self {
            Self::Missing(why) | Self::Invalid(why) | Self::Renew(_, why) => why.clone(),
            Self::Valid(_) => "valid".to_string(),
        }
    }
}

/// Judges `m` (found at `what`) against the request and CA bundle at `now` with a renewal
/// window of `renew_before` seconds.
pub fn assess(
    what: &str,
    m: &Material<'_>,
    req: &CertRequest,
    bundle: &CaBundle,
    now: i64,
    renew_before: i64,
) -> Assessment {
    let (Some(cert_pem), Some(key_pem)) = (m.cert_pem, m.key_pem) else {
        return Assessment::Missing(format!("{what} has no certificate and key"));
    };
    let chain = match parse_pem_chain(cert_pem, what) {
        Ok(c) => c,
        Err(e) => return Assessment::Invalid(e.to_string()),
    };
    let key = match load_key(key_pem, what) {
        Ok(k) => k,
        Err(e) => return Assessment::Invalid(e.to_string()),
    };
    let info = match inspect(&chain[0], what) {
        Ok(i) => i,
        Err(e) => return Assessment::Invalid(e.to_string()),
    };
    match key_matches(&chain[0], &key, what) {
        Ok(true) => {}
        Ok(false) => {
            return Assessment::Invalid(format!("{what}: certificate and key do not match"))
        }
        Err(e) => return Assessment::Invalid(e.to_string()),
    }
    let missing = missing_sans(&info, &req.dns_names(), &req.ips);
    if !missing.is_empty() {
        return Assessment::Invalid(format!("{what}: certificate lacks the names {missing:?}"));
    }
    if verify_chain(&chain, bundle, now).is_err() {
        return Assessment::Invalid(format!(
            "{what}: certificate does not chain to the CA bundle from {}",
            bundle.source
        ));
    }
    match m.ca_pem {
        Some(ca) if bundle.same_certs(ca) => {}
        Some(_) => {
            return Assessment::Invalid(format!(
                "{what}: ca.crt differs from the CA bundle from {}",
                bundle.source
            ))
        }
        None => return Assessment::Invalid(format!("{what}: ca.crt is missing")),
    }
    match validity(&info, now, renew_before) {
        Validity::NotYetValid => {
            Assessment::Invalid(format!("{what}: certificate is not valid yet"))
        }
        Validity::Expired => Assessment::Invalid(format!("{what}: certificate expired")),
        Validity::ExpiresSoon(left) => {
            let why = format!(
                "{what}: certificate expires in {}, within the renewal window of {}",
                format_secs(left),
                format_secs(renew_before)
            );
            Assessment::Renew(info, why)
        }
        Validity::Valid(_) => Assessment::Valid(info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::CaSource;
    use crate::cert::now_unix;
    use crate::cert::test_ca::{ca, leaf};
    use rcgen::KeyPair;

    const DAY: i64 = 86_400;

    #[test]
    fn assessment_table() {
        let now = now_unix();
        let root = ca("root");
        let other = ca("other");
        let req = CertRequest::new("s", "n").expect("req");
        let names: Vec<String> = req.dns_names();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let key = KeyPair::generate().expect("key");
        let key_pem = key.serialize_pem();
        let wrong_key = KeyPair::generate().expect("key").serialize_pem();
        let good = leaf(&root, &key, &names, now - DAY, now + 60 * DAY);
        let soon = leaf(&root, &key, &names, now - DAY, now + 10 * DAY);
        let expired = leaf(&root, &key, &names, now - 2 * DAY, now - DAY);
        let few_names = leaf(&root, &key, &["s"], now - DAY, now + 60 * DAY);
        let foreign = leaf(&other, &key, &names, now - DAY, now + 60 * DAY);
        let bundle = CaBundle::from_pem(&root.cert_pem, CaSource::Kubeconfig).expect("bundle");
        let other_ca = other.cert_pem.as_str();
        let ca_pem = Some(root.cert_pem.as_str());
        let m = |c: &str,
                 k: Option<&str>,
                 a: Option<&str>|
         -> (Option<String>, Option<String>, Option<String>) {
            (
                Some(c.to_string()).filter(|c| !c.is_empty()),
                k.map(str::to_string),
                a.map(str::to_string),
            )
        };
        let table = vec![
            ("valid", m(&good, Some(&key_pem), ca_pem), "valid"),
            ("renew", m(&soon, Some(&key_pem), ca_pem), "renewal window"),
            ("no key", m(&good, None, ca_pem), "no certificate and key"),
            ("empty", m("", None, None), "no certificate and key"),
            (
                "wrong key",
                m(&good, Some(&wrong_key), ca_pem),
                "do not match",
            ),
            (
                "garbage cert",
                m("junk", Some(&key_pem), ca_pem),
                "cannot parse",
            ),
            ("garbage key", m(&good, Some("junk"), ca_pem), "private key"),
            ("expired", m(&expired, Some(&key_pem), ca_pem), "expired"),
            (
                "names",
                m(&few_names, Some(&key_pem), ca_pem),
                "lacks the names",
            ),
            (
                "other CA",
                m(&foreign, Some(&key_pem), ca_pem),
                "does not chain",
            ),
            (
                "no ca.crt",
                m(&good, Some(&key_pem), None),
                "ca.crt is missing",
            ),
            (
                "stale ca.crt",
                m(&good, Some(&key_pem), Some(other_ca)),
                "differs",
            ),
        ];
        for (name, (c, k, a), want) in table {
            let material = Material {
                cert_pem: c.as_deref(),
                key_pem: k.as_deref(),
                ca_pem: a.as_deref(),
            };
            let got = assess("Secret n/x", &material, &req, &bundle, now, 30 * DAY);
            assert!(got.describe().contains(want), "{name}: {got:?}");
            assert_eq!(got.is_valid(), name == "valid", "{name}");
        }
    }
}
