//! `caBundle` and the serving certificate: parses, chains, names the API server uses, validity.

use gmsa_certs::ca::{verify_chain, CaBundle, CaSource};
use gmsa_certs::cert::{inspect, missing_sans, parse_pem_chain, rfc3339, validity, Validity};
use gmsa_certs::duration::format_secs;

use super::unanswered;
use super::webhooks::{mutating, validating, Entry};
use crate::facts::Facts;
use crate::report::{Check, Group, Status};

/// The command that re-issues the serving certificate and re-patches both caBundles.
fn reissue(f: &Facts, entry: &Entry<'_>) -> String {
    match &entry.client.service {
        Some(s) => format!(
            "gmsa certs issue --overwrite -n {ns} --service {name} --secret {secret} --patch-webhook {config}   (or helm upgrade the release: its hook re-issues)",
            ns = s.namespace,
            name = s.name,
            secret = f.serving_secret_name().as_deref().unwrap_or(&s.name),
            config = entry.config
        ),
        None => format!(
            "issue the webhook a certificate for its URL's host and put its CA in caBundle of {}",
            entry.config
        ),
    }
}

/// `certs.*`.
pub(super) fn checks(f: &Facts, out: &mut Vec<Check>) {
    let entries: Vec<Entry<'_>> = mutating(f).into_iter().chain(validating(f)).collect();
    let Some(first) = entries.first() else {
        out.push(Check::new(
            "certs.ca-bundle",
            Group::Certificates,
            Status::Skip,
            "not checked: no webhook entry",
        ));
        return;
    };
    let bundle = match ca_bundle(f, &entries) {
        Ok((bundle, check)) => {
            out.push(check);
            bundle
        }
        Err(check) => {
            out.push(check);
            return;
        }
    };
    out.push(serving(f, first, &bundle));
}

fn ca_bundle(f: &Facts, entries: &[Entry<'_>]) -> Result<(CaBundle, Check), Check> {
    let id = "certs.ca-bundle";
    let mut bundles: Vec<(String, CaBundle)> = Vec::new();
    for e in entries {
        let pem = e
            .client
            .ca_bundle
            .as_ref()
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_default();
        if pem.trim().is_empty() {
            return Err(Check::new(
                id,
                Group::Certificates,
                Status::Fail,
                format!("{}: caBundle is empty: the API server cannot verify the webhook (x509: certificate signed by unknown authority)", e.what_short()),
            )
            .fix(reissue(f, e)));
        }
        // The source is only shown by chain errors, which doctor words itself.
        match parse_pem_chain(&pem, &format!("caBundle of {}", e.what_short())) {
            Ok(ders) => bundles.push((
                e.what_short(),
                CaBundle::from_ders(ders, CaSource::Kubeconfig),
            )),
            Err(err) => {
                return Err(Check::new(
                    id,
                    Group::Certificates,
                    Status::Fail,
                    format!("{}: caBundle does not parse: {err}", e.what_short()),
                )
                .fix(reissue(f, e)))
            }
        }
    }
    let (first_what, first) = bundles.remove(0);
    let differing: Vec<String> = bundles
        .iter()
        .filter(|(_, b)| !first.same_certs(&b.pem))
        .map(|(w, _)| format!("{w} holds other CA certificates than {first_what}"))
        .collect();
    let expired: Vec<String> = first
        .ders
        .iter()
        .filter_map(|d| inspect(d, "caBundle").ok())
        .filter(|i| i.not_after <= f.now)
        .map(|i| format!("CA {} expired {}", i.subject, rfc3339(i.not_after)))
        .collect();
    let seen = format!(
        "{} CA certificate(s) in caBundle ({})",
        first.ders.len(),
        first
            .ders
            .iter()
            .filter_map(|d| inspect(d, "caBundle").ok())
            .map(|i| i.subject)
            .collect::<Vec<_>>()
            .join("; ")
    );
    let check = if !differing.is_empty() {
        Check::new(
            id,
            Group::Certificates,
            Status::Warn,
            format!("{seen}; the configurations disagree"),
        )
        .details(differing)
        .fix(reissue(f, &entries[0]))
    } else if !expired.is_empty() {
        Check::new(id, Group::Certificates, Status::Warn, seen)
            .details(expired)
            .fix(reissue(f, &entries[0]))
    } else {
        Check::new(id, Group::Certificates, Status::Ok, seen)
    };
    Ok((first, check))
}

impl Entry<'_> {
    fn what_short(&self) -> String {
        let kind = self.kind.trim_end_matches("WebhookConfiguration");
        format!("{kind} {}", self.config)
    }
}

fn serving(f: &Facts, entry: &Entry<'_>, bundle: &CaBundle) -> Check {
    let id = "certs.serving";
    let (what, chain, names, ips) = match &entry.client.service {
        Some(s) => {
            let Some(secret_name) = f.serving_secret_name() else {
                return unanswered(&f.deployment, id, Group::Certificates, "the webhook's Deployment")
                    .unwrap_or_else(|| Check::new(id, Group::Certificates, Status::Skip, "not checked: the webhook's Deployment mounts no Secret (certificates from elsewhere)"));
            };
            let what = format!("Secret {}/{secret_name}", s.namespace);
            if let Some(c) = unanswered(&f.serving_secret, id, Group::Certificates, &what) {
                return c;
            }
            let Some(Some(secret)) = f.serving_secret.got() else {
                return Check::new(id, Group::Certificates, Status::Fail, format!("{what}, which the webhook's Deployment mounts, does not exist: its pods cannot start"))
                    .fix(reissue(f, entry));
            };
            let crt = secret
                .data
                .as_ref()
                .and_then(|d| d.get("tls.crt"))
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                .unwrap_or_default();
            let chain = match parse_pem_chain(&crt, &format!("{what} tls.crt")) {
                Ok(c) => c,
                Err(e) => {
                    return Check::new(id, Group::Certificates, Status::Fail, e.to_string())
                        .fix(reissue(f, entry))
                }
            };
            // The API server calls a service webhook at NAME.NAMESPACE.svc.
            (
                what,
                chain,
                vec![format!("{}.{}.svc", s.name, s.namespace)],
                vec![],
            )
        }
        None => {
            let url = entry.client.url.as_deref().unwrap_or("");
            let what = format!("the certificate {url} presents");
            if let Some(c) = unanswered(&f.handshake, id, Group::Certificates, &what) {
                return c;
            }
            let chain = f.handshake.got().cloned().unwrap_or_default();
            let (host, _) = url_host_port(url);
            match host.parse::<std::net::IpAddr>() {
                Ok(ip) => (what, chain, vec![], vec![ip]),
                Err(_) => (what, chain, vec![host], vec![]),
            }
        }
    };
    let Some(leaf) = chain.first() else {
        return Check::new(
            id,
            Group::Certificates,
            Status::Fail,
            format!("{what}: no certificate"),
        )
        .fix(reissue(f, entry));
    };
    let info = match inspect(leaf, &what) {
        Ok(i) => i,
        Err(e) => {
            return Check::new(id, Group::Certificates, Status::Fail, e.to_string())
                .fix(reissue(f, entry))
        }
    };
    let mut fails = Vec::new();
    if verify_chain(&chain, bundle, f.now).is_err() {
        fails.push(format!(
            "it is not signed by a CA in caBundle (issuer {}): the API server says x509: certificate signed by unknown authority",
            info.issuer
        ));
    }
    let missing = missing_sans(&info, &names, &ips);
    if !missing.is_empty() {
        fails.push(format!(
            "it does not cover {} (it covers {}): the API server says x509: certificate is valid for …, not …",
            missing.join(", "),
            info.dns_names
                .iter()
                .cloned()
                .chain(info.ip_addresses.iter().map(ToString::to_string))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let until = format!("valid until {}", rfc3339(info.not_after));
    match validity(&info, f.now, f.target.renew_before_secs) {
        Validity::Expired => fails.push(format!(
            "it expired {}: the API server says x509: certificate has expired or is not yet valid",
            rfc3339(info.not_after)
        )),
        Validity::NotYetValid => fails.push(format!(
            "it is not valid before {} (a clock skew?)",
            rfc3339(info.not_before)
        )),
        Validity::ExpiresSoon(left) if fails.is_empty() => {
            return Check::new(
                id,
                Group::Certificates,
                Status::Warn,
                format!(
                    "{what}: {until}, in {}: inside the renewal window",
                    format_secs(left)
                ),
            )
            .fix(reissue(f, entry));
        }
        Validity::ExpiresSoon(_) => {}
        Validity::Valid(left) if fails.is_empty() => {
            return Check::new(
                id,
                Group::Certificates,
                Status::Ok,
                format!(
                    "{what}: chains to caBundle, covers {}, {until} ({} left)",
                    names
                        .iter()
                        .map(String::as_str)
                        .chain(ips.iter().map(|_| "the URL's IP"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    format_secs(left)
                ),
            );
        }
        Validity::Valid(_) => {}
    }
    Check::new(
        id,
        Group::Certificates,
        Status::Fail,
        format!("{what}: {}", fails.join("; ")),
    )
    .fix(reissue(f, entry))
}

/// The host and port of `https://HOST[:PORT]/path` (brackets of an IPv6 literal removed; port
/// 443 when none is given).
pub(crate) fn url_host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => (v6, None),
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = port.and_then(|p| p.parse().ok()).unwrap_or(443);
    (host.to_string(), port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fixture::check;
    use crate::diagnose::{diagnose, fixture};
    use crate::facts::Fetched;

    #[test]
    fn url_hosts() {
        for (url, host, port) in [
            ("https://127.0.0.1:8443/mutate", "127.0.0.1", 8443),
            (
                "https://webhook.example.com/validate?x=1",
                "webhook.example.com",
                443,
            ),
            ("https://[::1]:8443/mutate", "::1", 8443),
            ("https://[::1]/mutate", "::1", 443),
            ("https://h", "h", 443),
        ] {
            assert_eq!(url_host_port(url), (host.to_string(), port), "{url}");
        }
    }

    #[test]
    fn certificate_outcomes() {
        type Edit = fn(&mut Facts, &fixture::Pki);
        let cases: [(&str, Edit, &str, Status, &str); 8] = [
            (
                "caBundle from another CA",
                |f, pki| fixture::set_ca_bundle(f, &pki.other_ca_pem),
                "certs.serving",
                Status::Fail,
                "not signed by a CA in caBundle",
            ),
            (
                "empty caBundle",
                |f, _| fixture::set_ca_bundle(f, ""),
                "certs.ca-bundle",
                Status::Fail,
                "caBundle is empty",
            ),
            (
                "garbage caBundle",
                |f, _| {
                    fixture::set_ca_bundle(
                        f,
                        "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
                    )
                },
                "certs.ca-bundle",
                Status::Fail,
                "does not parse",
            ),
            (
                "expired",
                |f, _| f.now += 400 * 86_400,
                "certs.serving",
                Status::Fail,
                "expired",
            ),
            (
                "renewal window",
                |f, _| f.now += 350 * 86_400,
                "certs.serving",
                Status::Warn,
                "inside the renewal window",
            ),
            (
                "wrong name",
                |f, pki| fixture::set_serving(f, &pki.leaf_for(&["other.gmsa.svc"])),
                "certs.serving",
                Status::Fail,
                "does not cover gmsa.gmsa.svc",
            ),
            (
                "secret gone",
                |f, _| f.serving_secret = Fetched::Got(None),
                "certs.serving",
                Status::Fail,
                "does not exist: its pods cannot start",
            ),
            (
                "configs disagree",
                |f, pki| {
                    let both = format!("{}{}", pki.ca_pem, pki.other_ca_pem);
                    if let Fetched::Got(v) = &mut f.validating {
                        v[0].webhooks.get_or_insert_default()[0]
                            .client_config
                            .ca_bundle = Some(k8s_openapi::ByteString(both.into_bytes()));
                    }
                },
                "certs.ca-bundle",
                Status::Warn,
                "the configurations disagree",
            ),
        ];
        for (name, edit, id, status, text) in cases {
            let (mut f, pki) = fixture::healthy_with_pki();
            edit(&mut f, &pki);
            let r = diagnose(&f);
            let c = check(&r, id);
            assert_eq!(c.status, status, "{name}: {c:#?}");
            assert!(c.message.contains(text), "{name}: {}", c.message);
            let fix = c.fix.as_deref().unwrap_or_default();
            assert!(fix.starts_with("gmsa certs issue --overwrite -n gmsa --service gmsa --secret gmsa-tls --patch-webhook gmsa"), "{name}: {fix}");
        }
    }
}
