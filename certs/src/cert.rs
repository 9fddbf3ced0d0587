//! Reading certificates: PEM chains, what a certificate says, whether it matches a key, covers
//! the names we need, and is valid long enough.

use std::net::IpAddr;

use rcgen::KeyPair;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::duration::format_secs;
use crate::CertsError;

/// What a certificate says, in plain data.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertInfo {
    /// Subject DN, e.g. `O=system:nodes, CN=system:node:s.n.svc`.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// IP SANs.
    pub ip_addresses: Vec<IpAddr>,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// Serial number in hex.
    pub serial: String,
    /// Whether basicConstraints says CA.
    pub is_ca: bool,
}

/// The DER certificates in a PEM text, in order; `what` names the origin for errors.
pub fn parse_pem_chain(pem_text: &str, what: &str) -> Result<Vec<Vec<u8>>, CertsError> {
    let invalid = |detail: String| CertsError::InvalidCertificate {
        what: what.to_string(),
        detail,
    };
    let blocks = pem::parse_many(pem_text).map_err(|e| invalid(format!("not PEM: {e}")))?;
    let ders: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect();
    if ders.is_empty() {
        return Err(invalid("no CERTIFICATE block".to_string()));
    }
    for der in &ders {
        parse_der(der, what)?;
    }
    Ok(ders)
}

/// Parses one DER certificate.
pub(crate) fn parse_der<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, CertsError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(CertsError::InvalidCertificate {
            what: what.to_string(),
            detail: "trailing bytes after the certificate".to_string(),
        }),
        Err(e) => Err(CertsError::InvalidCertificate {
            what: what.to_string(),
            detail: e.to_string(),
        }),
    }
}

/// What the DER certificate says.
pub fn inspect(der: &[u8], what: &str) -> Result<CertInfo, CertsError> {
    let cert = parse_der(der, what)?;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns_names.push(d.to_string()),
                GeneralName::IPAddress(b) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                        ip_addresses.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                        ip_addresses.push(IpAddr::from(v6));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        dns_names,
        ip_addresses,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        serial: cert.raw_serial_as_string(),
        is_ca: cert.is_ca(),
    })
}

/// Whether the certificate's public key is `key`'s.
pub fn key_matches(der: &[u8], key: &KeyPair, what: &str) -> Result<bool, CertsError> {
    let cert = parse_der(der, what)?;
    Ok(cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw())
}

/// The wanted names the certificate does not carry.
pub fn missing_sans(info: &CertInfo, dns: &[String], ips: &[IpAddr]) -> Vec<String> {
    let mut missing: Vec<String> = dns
        .iter()
        .filter(|d| {
            !info
                .dns_names
                .iter()
                .any(|have| have.eq_ignore_ascii_case(d))
        })
        .cloned()
        .collect();
    missing.extend(
        ips.iter()
            .filter(|ip| !info.ip_addresses.contains(ip))
            .map(|ip| ip.to_string()),
    );
    missing
}

/// Where a certificate stands in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// Before `notBefore`.
    NotYetValid,
    /// Past `notAfter`.
    Expired,
    /// Valid but ends within the renewal window; seconds left.
    ExpiresSoon(i64),
    /// Valid beyond the renewal window; seconds left.
    Valid(i64),
}

/// Where `info` stands at `now` (Unix seconds) with a renewal window of `renew_before` seconds.
pub fn validity(info: &CertInfo, now: i64, renew_before: i64) -> Validity {
    if now < info.not_before {
        Validity::NotYetValid
    } else if now >= info.not_after {
        Validity::Expired
    } else if info.not_after - now <= renew_before {
        Validity::ExpiresSoon(info.not_after - now)
    } else {
        Validity::Valid(info.not_after - now)
    }
}

/// Fails unless the certificate is within its validity period at `now`.
pub fn check_valid_now(info: &CertInfo, now: i64, what: &str) -> Result<(), CertsError> {
    match validity(info, now, 0) {
        Validity::NotYetValid => Err(CertsError::NotValidNow {
            what: what.to_string(),
            detail: format!(
                "not valid for another {} (check the clocks)",
                format_secs(info.not_before - now)
            ),
        }),
        Validity::Expired => Err(CertsError::NotValidNow {
            what: what.to_string(),
            detail: format!("expired {} ago", format_secs(now - info.not_after)),
        }),
        _ => Ok(()),
    }
}

/// Current Unix time in seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// RFC 3339 text for Unix seconds.
pub fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
pub(crate) mod test_ca {
    //! A CA and leaf certificates made in the test.
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        KeyUsagePurpose, SanType,
    };

    pub struct TestCa {
        pub cert_pem: String,
        pub key: KeyPair,
        pub params: CertificateParams,
    }

    pub fn ca(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-signed CA");
        TestCa {
            cert_pem: cert.pem(),
            key,
            params,
        }
    }

    /// A leaf for `key` with `dns` names valid from `from` to `to` (Unix seconds), signed by `ca`.
    pub fn leaf(ca: &TestCa, key: &KeyPair, dns: &[&str], from: i64, to: i64) -> String {
        let mut params = CertificateParams::default();
        params.subject_alt_names = dns
            .iter()
            .map(|d| SanType::DnsName((*d).try_into().expect("ia5")))
            .collect();
        params.not_before = time::OffsetDateTime::from_unix_timestamp(from).expect("from");
        params.not_after = time::OffsetDateTime::from_unix_timestamp(to).expect("to");
        let issuer = Issuer::from_params(&ca.params, &ca.key);
        params.signed_by(key, &issuer).expect("leaf").pem()
    }
}

#[cfg(test)]
mod tests {
    use super::test_ca::{ca, leaf};
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    #[test]
    fn parses_chains_and_rejects_garbage() {
        let ca = ca("test-ca");
        let key = KeyPair::generate().expect("key");
        let pem_text = format!("{}{}", leaf(&ca, &key, &["a"], NOW, NOW + DAY), ca.cert_pem);
        assert_eq!(parse_pem_chain(&pem_text, "t").expect("two").len(), 2);
        let table = [
            "",
            "garbage",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ];
        for bad in table {
            let err = parse_pem_chain(bad, "tls.crt").expect_err(bad);
            assert!(err.to_string().contains("tls.crt"), "{err}");
        }
    }

    #[test]
    fn inspects_names_and_dates() {
        let ca = ca("test-ca");
        let key = KeyPair::generate().expect("key");
        let pem_text = leaf(&ca, &key, &["s", "s.n.svc"], NOW - DAY, NOW + DAY);
        let der = &parse_pem_chain(&pem_text, "t").expect("pem")[0];
        let info = inspect(der, "t").expect("inspect");
        assert_eq!(info.dns_names, vec!["s", "s.n.svc"]);
        assert_eq!(info.issuer, "CN=test-ca");
        assert_eq!((info.not_before, info.not_after), (NOW - DAY, NOW + DAY));
        assert!(!info.is_ca);
        let ca_der = &parse_pem_chain(&ca.cert_pem, "ca").expect("pem")[0];
        assert!(inspect(ca_der, "ca").expect("ca").is_ca);
    }

    #[test]
    fn key_matching() {
        let ca = ca("test-ca");
        let key = KeyPair::generate().expect("key");
        let other = KeyPair::generate().expect("other");
        let der = parse_pem_chain(&leaf(&ca, &key, &["a"], NOW, NOW + DAY), "t").expect("pem");
        assert!(key_matches(&der[0], &key, "t").expect("parse"));
        assert!(!key_matches(&der[0], &other, "t").expect("parse"));
    }

    #[test]
    fn missing_names() {
        let info = CertInfo {
            subject: String::new(),
            issuer: String::new(),
            dns_names: vec!["s".into(), "S.N.svc".into()],
            ip_addresses: vec!["10.0.0.1".parse().expect("ip")],
            not_before: 0,
            not_after: 0,
            serial: String::new(),
            is_ca: false,
        };
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let table: &[(&[&str], &[&str], &[&str])] = &[
            (&["s"], &[], &[]),
            (&["s", "s.n.svc"], &["10.0.0.1"], &[]),
            (&["s", "s.n"], &[], &["s.n"]),
            (&[], &["10.0.0.2"], &["10.0.0.2"]),
        ];
        for (dns, ips, want) in table {
            let dns: Vec<String> = dns.iter().map(|s| s.to_string()).collect();
            let ips: Vec<IpAddr> = ips.iter().map(|s| ip(s)).collect();
            assert_eq!(missing_sans(&info, &dns, &ips), *want);
        }
    }

    #[test]
    fn validity_windows() {
        let info = |nb: i64, na: i64| CertInfo {
            subject: String::new(),
            issuer: String::new(),
            dns_names: vec![],
            ip_addresses: vec![],
            not_before: nb,
            not_after: na,
            serial: String::new(),
            is_ca: false,
        };
        let table = [
            (info(NOW + 10, NOW + DAY), 0, Validity::NotYetValid),
            (info(NOW - DAY, NOW), 0, Validity::Expired),
            (info(NOW - DAY, NOW - 1), 0, Validity::Expired),
            (
                info(NOW - DAY, NOW + 10 * DAY),
                30 * DAY,
                Validity::ExpiresSoon(10 * DAY),
            ),
            (
                info(NOW - DAY, NOW + 30 * DAY),
                30 * DAY,
                Validity::ExpiresSoon(30 * DAY),
            ),
            (
                info(NOW - DAY, NOW + 31 * DAY),
                30 * DAY,
                Validity::Valid(31 * DAY),
            ),
            (info(NOW, NOW + DAY), 0, Validity::Valid(DAY)),
        ];
        for (i, (info, renew, want)) in table.into_iter().enumerate() {
            assert_eq!(validity(&info, NOW, renew), want, "case {i}");
        }
        let expired = info(NOW - 2 * DAY, NOW - DAY);
        let err = check_valid_now(&expired, NOW, "Secret n/s").expect_err("expired");
        assert!(err.to_string().contains("expired 1d0h ago"), "{err}");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
