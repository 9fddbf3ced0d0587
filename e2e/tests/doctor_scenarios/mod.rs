//! `gmsa doctor`'s cluster scenarios, written once and run twice: against a real cluster by
//! `cluster_doctor.rs` (`#[ignore]`d, run by scripts/e2e-cluster) and, in CI, against the
//! harness's fake cluster by `fake_cluster_doctor.rs` ([`gmsa_e2e::fake_cluster`]).
//! [`doctor_scenarios!`] declares one test per scenario in the file that includes this module.
//!
//! The webhook runs in the test process ([`LocalWebhook`]) and is registered by URL for the
//! test's namespace, a spec is granted to service account `webapp`; doctor (the
//! `gmsa-doctor` library, as `gmsa doctor --webhook-config NS` runs it) must pass every check
//! that applies, then, one broken thing per test, fail exactly the expected checks with their
//! fix. The domain scenarios (a wrong SID, a node not allowed) run in the Samba DC tier
//! (`e2e/tests/dc.rs`); broken set-ups a test namespace cannot build (the CRD deleted, the
//! chart's Service without endpoints) in `doctor/tests/fake_cluster.rs`.
//!
//! Deleting the CRD is proved against testkit's fake only: on a shared test cluster it would
//! delete every other scenario's specs while they run.

use std::time::Duration;

use anyhow::Result;
use gmsa_doctor::{diagnose, gather, Options, Report, Status, Target};
use gmsa_e2e::cluster::{Cluster, LocalWebhook, LocalWebhookOptions, TestNamespace};
use serde_json::{json, Value};

/// Declares one test per scenario of this module (see [`gmsa_e2e::scenario_tests!`]), each
/// with the given attributes (e.g. `#[ignore = "…"]`), each evaluating `before` first (e.g.
/// choosing the fake cluster).
macro_rules! doctor_scenarios {
    (before: $before:expr $(, #[$attr:meta])* $(,)?) => {
        gmsa_e2e::scenario_tests!([flavor = "multi_thread", worker_threads = 2] doctor_scenarios ($before) [$(#[$attr])*]
            doctor_passes_a_healthy_set_up_registered_by_url,
            doctor_finds_a_stopped_webhook,
            doctor_finds_a_ca_bundle_from_another_ca,
            doctor_finds_an_expired_certificate,
            doctor_finds_a_removed_use_grant,
        );
    };
}
pub(crate) use doctor_scenarios;

fn credspec() -> Value {
    json!({
        "CmsPlugins": ["ActiveDirectory"],
        "DomainJoinConfig": {
            "DnsName": "contoso.com", "DnsTreeName": "contoso.com",
            "Guid": "244818ae-87ca-4fcd-92ec-e79e5252348a", "MachineAccountName": "WebApp01",
            "NetBiosName": "CONTOSO", "Sid": "S-1-5-21-2126729477-2524075714-3094792973",
        },
        "ActiveDirectoryConfig": {
            "GroupManagedServiceAccounts": [
                {"Name": "WebApp01", "Scope": "contoso.com"}, {"Name": "WebApp01", "Scope": "CONTOSO"},
            ],
        },
    })
}

async fn doctor(cluster: &Cluster, ns: &TestNamespace, spec: &str) -> Report {
    let opts = Options {
        target: Target {
            // register_webhook names both configurations after the namespace.
            webhook_config: Some(ns.name().into()),
            renew_before_secs: 30 * 86_400,
            ..Target::new(ns.name(), "webapp", Some(spec))
        },
        probe_pod: None,
        ldap: None,
        timeout: Duration::from_secs(10),
    };
    diagnose(&gather(cluster.client(), &opts).await)
}

/// Checks whose outcome depends on the cluster, not on the set-up under test: the version
/// (matchConditions), a CRD installed by someone else (schema), the per-namespace
/// registration (a validation "hole" by construction), nodes and the domain (not here), and
/// the Deployment (none: registered by URL).
const CLUSTER_DEPENDENT: [&str; 6] = [
    "cluster.match-conditions",
    "crd.schema",
    "webhooks.namespaces",
    "spec.domain",
    "spec.nodes",
    "webhook.deployment",
];

fn failed(r: &Report) -> Vec<&'static str> {
    r.checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.id)
        .collect()
}

/// Runs doctor until exactly `want` fail (the API server picks up configuration changes
/// within seconds), up to 30 s; returns the last report.
async fn doctor_until(cluster: &Cluster, ns: &TestNamespace, spec: &str, want: &[&str]) -> Report {
    let start = std::time::Instant::now();
    loop {
        let r = doctor(cluster, ns, spec).await;
        if failed(&r) == want || start.elapsed() > Duration::from_secs(30) {
            assert_eq!(failed(&r), want, "{}", r.to_text());
            return r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs `body` in a namespace with the local webhook registered by URL, service account
/// `webapp`, and a spec it may use (its name passed to `body`). `hook` is `None` once the
/// body stopped it.
async fn with_set_up(
    test: &str,
    body: impl AsyncFnOnce(&Cluster, &mut TestNamespace, &str, &mut Option<LocalWebhook>) -> Result<()>,
) {
    let cluster = Cluster::for_test(test).await;
    cluster
        .ensure_crd()
        .await
        .unwrap_or_else(|e| panic!("{test}: {e:#}"));
    let mut hook = Some(
        LocalWebhook::start(&LocalWebhookOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{test}: {e:#}")),
    );
    let result = cluster
        .with_namespace("doctor", async |ns| {
            ns.service_account("webapp").await?;
            let spec = ns.create_spec("doctor", credspec()).await?;
            ns.grant_use("webapp", &spec).await?;
            if let Some(h) = &hook {
                ns.register_webhook(h).await?;
            }
            body(&cluster, ns, &spec, &mut hook).await
        })
        .await;
    if let Some(h) = hook {
        h.shutdown().await;
    }
    result.unwrap_or_else(|e| panic!("{test}: {e:#}"));
}

pub async fn doctor_passes_a_healthy_set_up_registered_by_url(test: &str) {
    with_set_up(test, async |cluster, ns, spec, _| {
        let r = doctor_until(cluster, ns, spec, &[]).await;
        for c in &r.checks {
            if !CLUSTER_DEPENDENT.contains(&c.id) {
                assert_eq!(c.status, Status::Ok, "{}", r.to_text());
            }
        }
        for id in [
            "probe.dry-run",
            "rbac.use",
            "certs.serving",
            "certs.ca-bundle",
            "webhooks.service",
            "webhook.info",
        ] {
            assert!(r.get(id).is_some(), "{id} ran: {}", r.to_text());
        }
        assert_eq!(r.exit_code(), 0);
        Ok(())
    })
    .await;
}

pub async fn doctor_finds_a_stopped_webhook(test: &str) {
    with_set_up(test, async |cluster, ns, spec, hook| {
        if let Some(h) = hook.take() {
            h.shutdown().await;
        }
        let r = doctor_until(
            cluster,
            ns,
            spec,
            &["webhooks.service", "probe.dry-run", "webhook.info"],
        )
        .await;
        let probe = r.get("probe.dry-run").expect("probe");
        assert!(probe.details[0].contains("nothing answers"), "{probe:?}");
        Ok(())
    })
    .await;
}

pub async fn doctor_finds_a_ca_bundle_from_another_ca(test: &str) {
    with_set_up(test, async |cluster, ns, spec, _| {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let other = params.self_signed(&key)?.pem();
        ns.set_ca_bundle(&other).await?;
        let r = doctor_until(cluster, ns, spec, &["certs.serving", "probe.dry-run"]).await;
        let probe = r.get("probe.dry-run").expect("probe");
        assert!(probe.message.contains("x509"), "{probe:?}");
        assert!(probe.details[0].contains("caBundle"), "{probe:?}");
        Ok(())
    })
    .await;
}

pub async fn doctor_finds_an_expired_certificate(test: &str) {
    with_set_up(test, async |cluster, ns, spec, hook| {
        if let Some(h) = hook.as_mut() {
            h.serve_expired().await?;
        }
        let r = doctor_until(cluster, ns, spec, &["certs.serving", "probe.dry-run"]).await;
        assert!(
            r.get("certs.serving")
                .is_some_and(|c| c.message.contains("expired")),
            "{}",
            r.to_text()
        );
        assert!(
            r.get("probe.dry-run")
                .is_some_and(|c| c.details[0].contains("expired")),
            "{}",
            r.to_text()
        );
        Ok(())
    })
    .await;
}

pub async fn doctor_finds_a_removed_use_grant(test: &str) {
    with_set_up(test, async |cluster, ns, spec, _| {
        ns.revoke_use("webapp", spec).await?;
        let r = doctor_until(cluster, ns, spec, &["probe.dry-run", "rbac.use"]).await;
        let rbac = r.get("rbac.use").expect("rbac");
        assert!(
            rbac.fix
                .as_deref()
                .is_some_and(|f| f.contains(&format!("resourceNames: [\"{spec}\"]"))),
            "{rbac:?}"
        );
        Ok(())
    })
    .await;
}
