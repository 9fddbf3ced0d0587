//! What a run will do, from what it found. Pure: [`plan`] turns an [`Observed`] (the CA bundle,
//! the Secret and directory with their assessments, a CSR of the same name, the webhook
//! configurations) into [`Step`]s, or the error that stops the run before any write. The
//! executor runs those steps; a dry run prints them ([`Step::call`]), so the two never differ.

use serde_json::Value;

use super::report::IssueOptions;
use super::retain::{merge, RETAINED_CA_ANNOTATION};
use super::step::{Step, WebhookKind};
use crate::assess::{assess, Assessment, Material};
use crate::ca::CaBundle;
use crate::cert::{parse_pem_chain, CertInfo};
use crate::duration::secs;
use crate::write::{ca_bundle_patch, MANAGED_BY};
use crate::CertsError;

/// The Secret or the directory, and what is in it.
#[derive(Clone, Debug)]
pub struct Found {
    /// `Secret N/NAME` or `directory DIR`.
    pub what: String,
    /// The verdict on it.
    pub assessment: Assessment,
    /// The certificate chain there, when it parses, valid or not (the CA that verifies it may
    /// have to stay in the `caBundle`s: the webhook may still serve it).
    pub chain: Option<Vec<Vec<u8>>>,
}

impl Found {
    /// Judges `tls.crt`, `tls.key`, `ca.crt` found at `what`.
    pub fn judge(
        what: String,
        [cert, key, ca]: &[Option<String>; 3],
        opts: &IssueOptions,
        bundle: &CaBundle,
        now: i64,
    ) -> Self {
        let material = Material {
            cert_pem: cert.as_deref(),
            key_pem: key.as_deref(),
            ca_pem: ca.as_deref(),
        };
        let renew = secs(opts.renew_before);
        Self {
            assessment: assess(&what, &material, &opts.request, bundle, now, renew),
            chain: cert.as_deref().and_then(|c| parse_pem_chain(c, &what).ok()),
            what,
        }
    }
}

/// The target Secret as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSeen {
    /// Not there.
    Absent,
    /// There, of this type.
    Present {
        /// `type`, `Opaque` when unset.
        type_: String,
    },
}

/// A CSR of the name the run will use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsrSeen {
    /// None.
    Absent,
    /// One gmsa made (its label): stale, replaced.
    Ours,
    /// Someone else's: the run stops.
    Foreign,
}

/// The configurations of one `--patch-webhook` name, as read (JSON), each absent or present.
#[derive(Clone, Debug)]
pub struct WebhookSeen {
    /// The name.
    pub name: String,
    /// The MutatingWebhookConfiguration.
    pub mutating: Option<Value>,
    /// The ValidatingWebhookConfiguration.
    pub validating: Option<Value>,
}

/// Everything a run reads before it writes.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The CA bundle to publish.
    pub bundle: CaBundle,
    /// The target Secret (`None` without `--secret`).
    pub secret: Option<SecretSeen>,
    /// The Secret and/or the directory, judged.
    pub places: Vec<Found>,
    /// A CSR of the run's name; `None` when not looked up because [`decide`] keeps what is in
    /// place (then treated as absent).
    pub csr: Option<CsrSeen>,
    /// The webhook configurations to patch.
    pub webhooks: Vec<WebhookSeen>,
}

/// Keep what is in place, or issue (and why).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Every place holds a valid certificate not due for renewal: this one.
    Keep(CertInfo),
    /// A new certificate is needed, for this reason.
    Issue(String),
}

/// What the run will do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Keep or issue.
    pub decision: Decision,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Things read and ignored (unreadable `caBundle`s).
    pub warnings: Vec<String>,
}

/// Keep or issue: `--overwrite` issues; so does a place that is missing, invalid or due, or
/// having no place at all.
pub fn decide(places: &[Found], overwrite: bool) -> Decision {
    if overwrite {
        return Decision::Issue("--overwrite".to_string());
    }
    let mut kept = None;
    for found in places {
        match &found.assessment {
            Assessment::Valid(info) => kept = Some(info.clone()),
            other => return Decision::Issue(other.describe()),
        }
    }
    match kept {
        Some(info) => Decision::Keep(info),
        None => Decision::Issue("no Secret or directory to check".to_string()),
    }
}

/// The plan for `seen` as `opts` ask at `now`, or why the run must stop before writing.
pub fn plan(seen: &Observed, opts: &IssueOptions, now: i64) -> Result<Plan, CertsError> {
    let ns = &opts.request.namespace;
    if let Some(w) = seen
        .webhooks
        .iter()
        .find(|w| w.mutating.is_none() && w.validating.is_none())
    {
        return Err(CertsError::WebhookNotFound(w.name.clone()));
    }
    if let (Some(name), Some(SecretSeen::Present { type_ })) = (&opts.secret, &seen.secret) {
        if type_ != "kubernetes.io/tls" {
            return Err(CertsError::SecretType {
                namespace: ns.clone(),
                name: name.clone(),
                found: type_.clone(),
            });
        }
    }
    let decision = decide(&seen.places, opts.overwrite);
    let mut steps = Vec::new();
    if let Decision::Issue(_) = decision {
        let name = opts.csr_name();
        match seen.csr {
            Some(CsrSeen::Foreign) => {
                return Err(CertsError::ForeignCsr {
                    name,
                    label: format!("{}={}", MANAGED_BY.0, MANAGED_BY.1),
                })
            }
            Some(CsrSeen::Ours) => steps.push(Step::DeleteStaleCsr { name: name.clone() }),
            Some(CsrSeen::Absent) | None => {}
        }
        steps.push(Step::CreateCsr {
            name: name.clone(),
            signer: opts.request.signer.clone(),
        });
        if opts.approve {
            steps.push(Step::Approve { name: name.clone() });
        }
        steps.push(Step::WaitForCertificate { name });
        if let Some(secret) = &opts.secret {
            steps.push(Step::WriteSecret {
                namespace: ns.clone(),
                name: secret.clone(),
                replace: matches!(seen.secret, Some(SecretSeen::Present { .. })),
            });
        }
        if let Some(dir) = &opts.certs_dir {
            steps.push(Step::WriteDir { dir: dir.clone() });
        }
    }
    let serving: Vec<Vec<Vec<u8>>> = seen.places.iter().filter_map(|f| f.chain.clone()).collect();
    let mut warnings = Vec::new();
    for w in &seen.webhooks {
        let kinds = [
            (WebhookKind::Mutating, &w.mutating),
            (WebhookKind::Validating, &w.validating),
        ];
        for (kind, config) in kinds {
            let Some(config) = config else { continue };
            let what = format!("{}webhookconfiguration {}", kind.name(), w.name);
            let merged = merge(&what, config, &seen.bundle, &serving, now);
            warnings.extend(merged.warnings);
            let note = (RETAINED_CA_ANNOTATION, merged.annotation.as_deref());
            if let Some(patch) = ca_bundle_patch(config, &merged.pem, note) {
                steps.push(Step::PatchCaBundle {
                    kind,
                    config: w.name.clone(),
                    bundle: merged.pem,
                    retained: merged.retained,
                    patch,
                });
            }
        }
    }
    Ok(Plan {
        decision,
        steps,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::CaSource;
    use crate::cert::rfc3339;
    use crate::cert::test_ca::{ca, leaf};
    use crate::request::CertRequest;
    use base64::Engine as _;
    use rcgen::KeyPair;
    use serde_json::json;
    use std::path::PathBuf;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    fn info(not_after: i64) -> CertInfo {
        CertInfo {
            subject: String::new(),
            issuer: "CN=root".into(),
            dns_names: vec!["s".into()],
            ip_addresses: vec![],
            not_before: NOW - DAY,
            not_after,
            serial: "01".into(),
            is_ca: false,
        }
    }

    fn found(what: &str, assessment: Assessment) -> Found {
        Found {
            what: what.into(),
            assessment,
            chain: None,
        }
    }

    fn hook(ca_pem: &str) -> Value {
        let b64 = base64::engine::general_purpose::STANDARD.encode(ca_pem);
        json!({"metadata": {"name": "w"}, "webhooks": [{"name": "h", "clientConfig": {"caBundle": b64}}]})
    }

    /// Short names for steps in the table.
    fn names(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::DeleteStaleCsr { .. } => "delete-csr".to_string(),
                Step::CreateCsr { .. } => "create-csr".to_string(),
                Step::Approve { .. } => "approve".to_string(),
                Step::WaitForCertificate { .. } => "wait".to_string(),
                Step::WriteSecret { replace, .. } => format!("secret replace={replace}"),
                Step::WriteDir { .. } => "dir".to_string(),
                Step::PatchCaBundle { kind, .. } => format!("patch {}", kind.name()),
            })
            .collect()
    }

    #[test]
    fn plan_table() {
        let root = ca("root");
        let other = ca("other");
        let bundle = CaBundle::from_pem(&root.cert_pem, CaSource::Kubeconfig).expect("bundle");
        let valid = Assessment::Valid(info(NOW + 300 * DAY));
        let due = Assessment::Renew(info(NOW + DAY), "due for renewal".into());
        let names_wrong = Assessment::Invalid("lacks the names".into());
        let broken = Assessment::Invalid("cannot parse".into());
        let missing = Assessment::Missing("no certificate and key".into());
        let secret = |a: &Assessment| found("Secret n/tls", a.clone());
        let present = Some(SecretSeen::Present {
            type_: "kubernetes.io/tls".into(),
        });
        let webhook = |mutating: Option<Value>, validating: Option<Value>| WebhookSeen {
            name: "w".into(),
            mutating,
            validating,
        };
        struct Row {
            name: &'static str,
            secret: Option<SecretSeen>,
            places: Vec<Found>,
            csr: Option<CsrSeen>,
            webhooks: Vec<WebhookSeen>,
            approve: bool,
            overwrite: bool,
            dir: bool,
            want: Result<Vec<&'static str>, &'static str>,
        }
        let row = |name, secret, places, csr| Row {
            name,
            secret,
            places,
            csr,
            webhooks: vec![],
            approve: true,
            overwrite: false,
            dir: false,
            want: Ok(vec![]),
        };
        let issue_new = vec!["create-csr", "approve", "wait", "secret replace=false"];
        let issue_replace = vec!["create-csr", "approve", "wait", "secret replace=true"];
        let table = vec![
            Row {
                want: Ok(issue_new.clone()),
                ..row(
                    "no Secret yet",
                    Some(SecretSeen::Absent),
                    vec![secret(&missing)],
                    Some(CsrSeen::Absent),
                )
            },
            Row {
                want: Ok(vec![]),
                ..row(
                    "valid: nothing to do",
                    present.clone(),
                    vec![secret(&valid)],
                    None,
                )
            },
            Row {
                want: Ok(issue_replace.clone()),
                ..row(
                    "due for renewal",
                    present.clone(),
                    vec![secret(&due)],
                    Some(CsrSeen::Absent),
                )
            },
            Row {
                want: Ok(issue_replace.clone()),
                ..row(
                    "wrong names",
                    present.clone(),
                    vec![secret(&names_wrong)],
                    Some(CsrSeen::Absent),
                )
            },
            Row {
                want: Ok(issue_replace.clone()),
                ..row(
                    "broken",
                    present.clone(),
                    vec![secret(&broken)],
                    Some(CsrSeen::Absent),
                )
            },
            Row {
                overwrite: true,
                want: Ok(issue_replace.clone()),
                ..row(
                    "--overwrite",
                    present.clone(),
                    vec![secret(&valid)],
                    Some(CsrSeen::Absent),
                )
            },
            Row {
                want: Ok(vec![
                    "delete-csr",
                    "create-csr",
                    "approve",
                    "wait",
                    "secret replace=true",
                ]),
                ..row(
                    "our stale CSR",
                    present.clone(),
                    vec![secret(&due)],
                    Some(CsrSeen::Ours),
                )
            },
            Row {
                want: Err("kubectl delete csr"),
                ..row(
                    "someone else's CSR",
                    present.clone(),
                    vec![secret(&due)],
                    Some(CsrSeen::Foreign),
                )
            },
            Row {
                approve: false,
                want: Ok(vec!["create-csr", "wait", "secret replace=true"]),
                ..row(
                    "--no-approve",
                    present.clone(),
                    vec![secret(&due)],
                    Some(CsrSeen::Absent),
                )
            },
            Row {
                want: Err("not kubernetes.io/tls"),
                ..row(
                    "Opaque Secret",
                    Some(SecretSeen::Present {
                        type_: "Opaque".into(),
                    }),
                    vec![secret(&missing)],
                    Some(CsrSeen::Absent),
                )
            },
            Row {
                dir: true,
                want: Ok(vec![
                    "create-csr",
                    "approve",
                    "wait",
                    "secret replace=true",
                    "dir",
                ]),
                ..row(
                    "valid Secret, empty directory",
                    present.clone(),
                    vec![secret(&valid), found("directory d", missing.clone())],
                    Some(CsrSeen::Absent),
                )
            },
            Row {
                webhooks: vec![webhook(
                    Some(hook(&root.cert_pem)),
                    Some(hook(&other.cert_pem)),
                )],
                want: Ok(vec!["patch validating"]),
                ..row(
                    "valid: converge the caBundles",
                    present.clone(),
                    vec![secret(&valid)],
                    None,
                )
            },
            Row {
                webhooks: vec![webhook(Some(hook(&other.cert_pem)), None)],
                want: Ok(vec![
                    "create-csr",
                    "approve",
                    "wait",
                    "secret replace=false",
                    "patch mutating",
                ]),
                ..row(
                    "issue and patch",
                    Some(SecretSeen::Absent),
                    vec![secret(&missing)],
                    Some(CsrSeen::Absent),
                )
            },
            Row {
                webhooks: vec![webhook(None, None)],
                want: Err(
                    "no MutatingWebhookConfiguration or ValidatingWebhookConfiguration named \"w\"",
                ),
                ..row(
                    "unknown webhook",
                    present.clone(),
                    vec![secret(&valid)],
                    None,
                )
            },
            Row {
                want: Ok(vec!["create-csr", "approve", "wait"]),
                ..row(
                    "dry run without a place",
                    None,
                    vec![],
                    Some(CsrSeen::Absent),
                )
            },
        ];
        for r in table {
            let mut opts = IssueOptions::new(CertRequest::new("s", "n").expect("request"));
            opts.secret = r.secret.as_ref().map(|_| "tls".to_string());
            opts.approve = r.approve;
            opts.overwrite = r.overwrite;
            opts.certs_dir = r.dir.then(|| PathBuf::from("d"));
            let seen = Observed {
                bundle: bundle.clone(),
                secret: r.secret,
                places: r.places,
                csr: r.csr,
                webhooks: r.webhooks,
            };
            match (plan(&seen, &opts, NOW), r.want) {
                (Ok(p), Ok(want)) => assert_eq!(names(&p.steps), want, "{}", r.name),
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{}: {e}", r.name),
                (got, want) => panic!("{}: got {got:?}, want {want:?}", r.name),
            }
        }
    }

    #[test]
    fn decisions_say_why() {
        let valid = Assessment::Valid(info(NOW + 300 * DAY));
        let table = [
            (
                vec![],
                false,
                Decision::Issue("no Secret or directory to check".into()),
            ),
            (
                vec![found("a", valid.clone())],
                false,
                Decision::Keep(info(NOW + 300 * DAY)),
            ),
            (
                vec![found("a", valid.clone())],
                true,
                Decision::Issue("--overwrite".into()),
            ),
            (
                vec![
                    found("a", valid),
                    found("b", Assessment::Missing("b is empty".into())),
                ],
                false,
                Decision::Issue("b is empty".into()),
            ),
        ];
        for (places, overwrite, want) in table {
            assert_eq!(decide(&places, overwrite), want);
        }
    }

    #[test]
    fn a_ca_change_keeps_the_old_ca_and_the_calls_say_so() {
        let old = ca("old");
        let new = ca("new");
        let key = KeyPair::generate().expect("key");
        let old_leaf = leaf(&old, &key, &["s"], NOW - DAY, NOW + 10 * DAY);
        let bundle = CaBundle::from_pem(&new.cert_pem, CaSource::Kubeconfig).expect("bundle");
        let opts = IssueOptions::new(CertRequest::new("s", "n").expect("request"));
        let seen = Observed {
            bundle: bundle.clone(),
            secret: None,
            places: vec![Found {
                what: "Secret n/tls".into(),
                assessment: Assessment::Invalid("does not chain".into()),
                chain: parse_pem_chain(&old_leaf, "t").ok(),
            }],
            csr: Some(CsrSeen::Absent),
            webhooks: vec![WebhookSeen {
                name: "w".into(),
                mutating: Some(hook(&old.cert_pem)),
                validating: None,
            }],
        };
        let p = plan(&seen, &opts, NOW).expect("plan");
        let Some(Step::PatchCaBundle {
            bundle: pem, patch, ..
        }) = p.steps.last().cloned()
        else {
            panic!("{:?}", p.steps);
        };
        assert_eq!(
            pem,
            format!(
                "{}{}",
                bundle.pem,
                CaBundle::from_pem(&old.cert_pem, CaSource::Kubeconfig)
                    .expect("old")
                    .pem
            )
        );
        let ops = patch.as_array().expect("ops");
        assert!(
            ops.iter().any(|op| op["path"] == "/metadata/annotations"
                && op["value"][RETAINED_CA_ANNOTATION]
                    .as_str()
                    .is_some_and(|v| v.contains(&rfc3339(NOW + 10 * DAY)))),
            "{ops:?}"
        );
        let call = p.steps.last().map(Step::call).expect("call");
        assert_eq!(call.method, "PATCH");
        assert!(call.what.contains("CN=old until"), "{}", call.what);
        assert_eq!(
            p.steps.last().and_then(Step::patched).as_deref(),
            Some("mutatingwebhookconfiguration/w")
        );
    }
}
