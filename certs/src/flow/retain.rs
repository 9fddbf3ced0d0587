//! Which CA certificates a webhook configuration's `caBundle` keeps when the CA changes. Pure.
//!
//! After a CA change (a cluster CA rotation, another `--ca-file` or signer) the webhook's pods
//! serve the old certificate until they load the new Secret, and a `caBundle` without the old
//! CA would make the API server refuse every pod meanwhile. So the `caBundle` is the new CA
//! bundle, then each CA certificate of the current `caBundle` that is still needed: it
//! verifies a serving certificate in place (being replaced, or kept) that has not expired, or
//! [`RETAINED_CA_ANNOTATION`] keeps it until a time still to come. The annotation, written in
//! the same patch, maps `ISSUER/SERIAL` of each retained CA to an RFC 3339 time (the expiry of
//! the certificate it verified): a later run, when the Secret already holds the new
//! certificate, still knows how long the old one may be served. Expired CA certificates are
//! never kept; unreadable ones are ignored with a warning.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;
use x509_parser::prelude::X509Certificate;

use crate::ca::{verify_chain, CaBundle};
use crate::cert::{inspect, parse_der, rfc3339};

/// The annotation on a webhook configuration recording the CAs kept in its `caBundle`.
pub const RETAINED_CA_ANNOTATION: &str = "gmsa.k8s.io/retained-ca-until";

/// A CA certificate kept in a `caBundle` after the new bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetainedCa {
    /// `ISSUER/SERIAL`: its key in the annotation.
    pub id: String,
    /// Its subject DN, for people.
    pub subject: String,
    /// Kept until then (Unix seconds).
    pub until: i64,
}

/// The `caBundle` to publish on one webhook configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    /// PEM: the new bundle, then the retained CA certificates in the current `caBundle`'s order.
    pub pem: String,
    /// The retained CA certificates.
    pub retained: Vec<RetainedCa>,
    /// The annotation's value (`None`: nothing retained, the annotation goes).
    pub annotation: Option<String>,
    /// What could not be read and was ignored.
    pub warnings: Vec<String>,
}

/// The `caBundle` for `config` (a webhook configuration as JSON, named `what` in warnings)
/// when `bundle` is published, given the certificate chains in place (`serving`) at `now`.
pub fn merge(
    what: &str,
    config: &Value,
    bundle: &CaBundle,
    serving: &[Vec<Vec<u8>>],
    now: i64,
) -> Merged {
    let mut warnings = Vec::new();
    let current = current_cas(what, config, &mut warnings);
    let recorded = recorded(what, config, &mut warnings);
    let mut pem = bundle.pem.clone();
    let mut retained = Vec::new();
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for der in current {
        if bundle.ders.contains(&der) || kept.contains(&der) {
            continue;
        }
        let Ok(ca) = parse_der(&der, what) else {
            continue;
        };
        if !valid_at(&ca, now) {
            continue;
        }
        let id = format!("{}/{}", ca.issuer(), ca.raw_serial_as_string());
        let by_record = recorded.get(&id).copied().filter(|until| *until > now);
        let anchor = CaBundle::from_ders(vec![der.clone()], bundle.source.clone());
        let by_certificate = serving
            .iter()
            .filter_map(|chain| {
                let leaf = inspect(chain.first()?, what).ok()?;
                (leaf.not_after > now && verify_chain(chain, &anchor, now).is_ok())
                    .then_some(leaf.not_after)
            })
            .max();
        if let Some(until) = by_record.max(by_certificate) {
            retained.push(RetainedCa {
                id,
                subject: ca.subject().to_string(),
                until,
            });
            pem.push_str(&anchor.pem);
            kept.push(der);
        }
    }
    let annotation = (!retained.is_empty()).then(|| {
        let map: BTreeMap<&str, String> = retained
            .iter()
            .map(|r| (r.id.as_str(), rfc3339(r.until)))
            .collect();
        serde_json::to_string(&map).unwrap_or_default()
    });
    Merged {
        pem,
        retained,
        annotation,
        warnings,
    }
}

fn valid_at(cert: &X509Certificate<'_>, now: i64) -> bool {
    let v = cert.validity();
    v.not_before.timestamp() <= now && now < v.not_after.timestamp()
}

/// The CA certificates (DER) in every webhook's `caBundle`, first seen first, without repeats.
fn current_cas(what: &str, config: &Value, warnings: &mut Vec<String>) -> Vec<Vec<u8>> {
    let mut ders: Vec<Vec<u8>> = Vec::new();
    for hook in config["webhooks"].as_array().into_iter().flatten() {
        let b64 = hook["clientConfig"]["caBundle"]
            .as_str()
            .unwrap_or_default();
        if b64.is_empty() {
            continue;
        }
        let place = format!("{what}, webhook {}", hook["name"].as_str().unwrap_or("?"));
        let text = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let blocks = text
            .and_then(|t| pem::parse_many(t).ok())
            .unwrap_or_default();
        let certs: Vec<_> = blocks
            .into_iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .collect();
        if certs.is_empty() {
            warnings.push(format!(
                "{place}: the caBundle holds no PEM certificate; ignored"
            ));
        }
        for block in certs {
            let der = block.into_contents();
            match parse_der(&der, &format!("the caBundle of {place}")) {
                Ok(_) if ders.contains(&der) => {}
                Ok(_) => ders.push(der),
                Err(e) => warnings.push(format!("{e}; ignored")),
            }
        }
    }
    ders
}

/// [`RETAINED_CA_ANNOTATION`] as `ISSUER/SERIAL` → Unix seconds.
fn recorded(what: &str, config: &Value, warnings: &mut Vec<String>) -> BTreeMap<String, i64> {
    let Some(text) = config["metadata"]["annotations"][RETAINED_CA_ANNOTATION].as_str() else {
        return BTreeMap::new();
    };
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(time::OffsetDateTime::unix_timestamp)
    };
    let map = serde_json::from_str::<BTreeMap<String, String>>(text)
        .ok()
        .and_then(|m| {
            m.into_iter()
                .map(|(id, until)| Some((id, parse(&until)?)))
                .collect::<Option<BTreeMap<_, _>>>()
        });
    map.unwrap_or_else(|| {
        warnings.push(format!(
            "{what}: annotation {RETAINED_CA_ANNOTATION} is not a JSON object of RFC 3339 times; ignored"
        ));
        BTreeMap::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::CaSource;
    use crate::cert::parse_pem_chain;
    use crate::cert::test_ca::{ca, leaf, TestCa};
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    type Chain = Vec<Vec<u8>>;
    /// (name, configuration, serving chains, until of each CA kept besides the new one,
    /// warnings)
    type Row = (&'static str, Value, Vec<Chain>, Vec<i64>, usize);

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn der(pem_text: &str) -> Vec<u8> {
        parse_pem_chain(pem_text, "t").expect("pem").remove(0)
    }

    fn config(bundles: &[&str], annotation: Option<&str>) -> Value {
        let hooks: Vec<Value> = bundles
            .iter()
            .enumerate()
            .map(|(i, b)| json!({"name": format!("h{i}"), "clientConfig": {"caBundle": b}}))
            .collect();
        let mut c = json!({"metadata": {"name": "gmsa-webhook"}, "webhooks": hooks});
        if let Some(a) = annotation {
            c["metadata"]["annotations"] = json!({ RETAINED_CA_ANNOTATION: a });
        }
        c
    }

    fn expired_ca() -> TestCa {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "expired");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = time::OffsetDateTime::from_unix_timestamp(NOW - 9 * DAY).expect("t");
        params.not_after = time::OffsetDateTime::from_unix_timestamp(NOW - DAY).expect("t");
        let cert_pem = params.self_signed(&key).expect("CA").pem();
        TestCa {
            cert_pem,
            key,
            params,
        }
    }

    #[test]
    fn merge_table() {
        let old = ca("old");
        let new = ca("new");
        let gone = expired_ca();
        let key = KeyPair::generate().expect("key");
        let chain = |ca: &TestCa, to: i64| {
            parse_pem_chain(&leaf(ca, &key, &["s"], NOW - DAY, to), "t").expect("leaf")
        };
        let old_cert = chain(&old, NOW + 10 * DAY);
        let old_expired = chain(&old, NOW - 1);
        let new_cert = chain(&new, NOW + 300 * DAY);
        let by_gone = chain(&gone, NOW + 10 * DAY);
        let bundle = CaBundle::from_pem(&new.cert_pem, CaSource::Kubeconfig).expect("bundle");
        let old_id = {
            let d = der(&old.cert_pem);
            let c = parse_der(&d, "t").expect("ca");
            format!("{}/{}", c.issuer(), c.raw_serial_as_string())
        };
        let both = format!("{}{}", new.cert_pem, old.cert_pem);
        let record = |until: i64| format!("{{\"{old_id}\":\"{}\"}}", rfc3339(until));
        let junk_der = b64("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let table: Vec<Row> = vec![
            (
                "same CA",
                config(&[&b64(&new.cert_pem)], None),
                vec![new_cert.clone()],
                vec![],
                0,
            ),
            ("first install", config(&[""], None), vec![], vec![], 0),
            (
                "new CA, old certificate valid",
                config(&[&b64(&old.cert_pem), &b64(&old.cert_pem)], None),
                vec![old_cert.clone()],
                vec![NOW + 10 * DAY],
                0,
            ),
            (
                "recorded, not yet due",
                config(&[&b64(&both)], Some(&record(NOW + DAY))),
                vec![new_cert.clone()],
                vec![NOW + DAY],
                0,
            ),
            (
                "recorded, past its time",
                config(&[&b64(&both)], Some(&record(NOW - 1))),
                vec![new_cert.clone()],
                vec![],
                0,
            ),
            (
                "old certificate expired",
                config(&[&b64(&old.cert_pem)], None),
                vec![old_expired],
                vec![],
                0,
            ),
            (
                "expired CA",
                config(&[&b64(&gone.cert_pem)], None),
                vec![by_gone],
                vec![],
                0,
            ),
            (
                "unrelated CA",
                config(&[&b64(&old.cert_pem)], None),
                vec![new_cert.clone()],
                vec![],
                0,
            ),
            (
                "garbage beside the old CA",
                config(
                    &["!!not base64", &b64("junk"), &junk_der, &b64(&old.cert_pem)],
                    Some("not JSON"),
                ),
                vec![old_cert],
                vec![NOW + 10 * DAY],
                4,
            ),
        ];
        for (name, config, serving, want, warnings) in table {
            let got = merge(
                "mutatingwebhookconfiguration x",
                &config,
                &bundle,
                &serving,
                NOW,
            );
            let untils: Vec<i64> = got.retained.iter().map(|r| r.until).collect();
            assert_eq!(untils, want, "{name}: {got:?}");
            assert_eq!(got.warnings.len(), warnings, "{name}: {:?}", got.warnings);
            let cas = parse_pem_chain(&got.pem, "merged").expect("merged PEM");
            assert_eq!(cas[0], bundle.ders[0], "{name}: the new CA first");
            assert_eq!(cas.len(), 1 + want.len(), "{name}: no repeats");
            match want.first() {
                Some(until) => {
                    assert_eq!(cas[1], der(&old.cert_pem), "{name}");
                    assert_eq!(got.retained[0].subject, "CN=old", "{name}");
                    assert_eq!(got.annotation, Some(record(*until)), "{name}");
                }
                None => {
                    assert_eq!(got.pem, bundle.pem, "{name}: exactly the new bundle");
                    assert_eq!(got.annotation, None, "{name}");
                }
            }
        }
    }
}
