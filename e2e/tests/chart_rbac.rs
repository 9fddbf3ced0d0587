//! The least privilege of the chart's persistent RBAC, evaluated offline with
//! [`gmsa_e2e::rbac`] over the rendered manifests of each certificate mode.

use gmsa_e2e::chart::{annotation, render, Rendered, NEWEST, NS, RELEASE, TEST_CA_BUNDLE};
use serde_json::Value;

/// What is left after a successful install: every object but hooks deleted on success.
fn persistent(r: &Rendered) -> Vec<Value> {
    r.docs
        .iter()
        .filter(|d| {
            !annotation(d, "helm.sh/hook-delete-policy")
                .as_str()
                .is_some_and(|p| p.contains("hook-succeeded"))
        })
        .cloned()
        .collect()
}

/// Issue 11's "no standing power over the cluster's signers", evaluated on the persistent RBAC
/// of each certificate mode: no ServiceAccount of the release may approve CSRs for any signer,
/// update any CSR's approval, or list or delete CSRs; the webhook keeps exactly what it needs
/// and cannot `use` a spec itself. Only the opt-in renewal CronJob's account keeps CSR rights.
#[test]
fn after_install_no_account_of_the_release_can_approve_list_or_delete_csrs() {
    use gmsa_e2e::rbac::{allows, FORBIDDEN, WEBHOOK_NEEDS};
    let (forbidden, webhook_needs) = (FORBIDDEN, WEBHOOK_NEEDS);
    let ca_set = format!("certificates.caBundle={TEST_CA_BUNDLE}");
    let modes: [(&str, Vec<&str>); 5] = [
        ("csr", vec![]),
        (
            "csr without approval",
            vec!["certificates.csr.approve=false"],
        ),
        ("csr with viewer role", vec!["viewerRole=true"]),
        ("certManager", vec!["certificates.mode=certManager"]),
        ("secret", vec!["certificates.mode=secret", ca_set.as_str()]),
    ];
    for (mode, sets) in &modes {
        let r = render(NEWEST, sets);
        let docs = persistent(&r);
        let accounts: Vec<String> = docs
            .iter()
            .filter(|d| d["kind"] == "ServiceAccount")
            .filter_map(|d| d["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        assert!(
            accounts.contains(&RELEASE.to_string()),
            "{mode}: {accounts:?}"
        );
        for sa in &accounts {
            for req in &forbidden {
                assert!(!allows(&docs, NS, sa, req), "{mode}: {sa} may {req:?}");
            }
        }
        for req in &webhook_needs {
            assert!(
                allows(&docs, NS, RELEASE, req),
                "{mode}: the webhook lacks {req:?}"
            );
        }
        // The hook accounts are gone after a successful install.
        assert!(
            !accounts
                .iter()
                .any(|a| a.ends_with("-hook") || a.ends_with("-patch")),
            "{mode}: {accounts:?}"
        );
    }
    // Opt-in standing renewal: its account, and only it, holds the rights (as documented).
    let scheduled = render(NEWEST, &["certificates.csr.renew.enabled=true"]);
    let docs = persistent(&scheduled);
    assert!(allows(&docs, NS, "gmsa-certs", &forbidden[0]));
    assert!(
        !allows(&docs, NS, "gmsa-certs", &forbidden[1]),
        "only the configured signer"
    );
    assert!(!allows(&docs, NS, RELEASE, &forbidden[0]));
    // During the pre-install hook the hook account can approve (the right exists only then).
    let all = render(NEWEST, &[]).docs;
    assert!(allows(&all, NS, "gmsa-certs-hook", &forbidden[0]));
    assert!(!allows(&all, NS, "gmsa-certs-patch", &forbidden[0]));
}
