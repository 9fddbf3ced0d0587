//! The Helm chart (`charts/gmsa`) rendered in each certificate mode (csr, certManager,
//! secret) and namespace mode, field by field: the hardened, highly available defaults, the
//! certificate Jobs and their hooks, the CA injection, the namespace holes, the failure
//! policy, and the refusal of Kubernetes versions older than the oldest supported.
//! Every rendering goes through [`gmsa_e2e::chart::render`] (Helm 3 and Helm 4 agree, the
//! objects validate, the common invariants hold); a missing tool fails the test.

use gmsa_e2e::chart::{
    annotation, args, chart_dir, has_match_conditions, render, rules_of, same_objects, strings,
    template_each, text, NEWEST, NS, OLDEST, RELEASE, TEST_CA_BUNDLE,
};
use serde_json::json;

#[test]
fn default_values_render_a_hardened_highly_available_webhook() {
    let r = render(NEWEST, &[]);
    let deploy = r.get("Deployment", RELEASE);
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        deploy["spec"]["selector"]["matchLabels"],
        json!({"app": RELEASE})
    );
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], RELEASE);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert!(
        pod["securityContext"].get("sysctls").is_none(),
        "8443 needs no sysctl"
    );
    assert_eq!(pod["os"]["name"], "linux");
    assert_eq!(
        pod["topologySpreadConstraints"],
        json!([{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": RELEASE}}}])
    );
    assert!(pod.get("priorityClassName").is_none());
    let c = r.deployment_container();
    assert_eq!(c["image"], "gmsa/gmsa:0.1.0");
    assert_eq!(
        c["ports"],
        json!([
        {"name": "https", "containerPort": 8443, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}])
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"scheme": "HTTPS", "path": "/health", "port": "https"})
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"scheme": "HTTP", "path": "/live", "port": "metrics"})
    );
    for (name, value) in [
        ("TLS_CRT", "/tls/crt"),
        ("TLS_KEY", "/tls/key"),
        ("HTTPS_PORT", "8443"),
        ("ADMIN_PORT", "9090"),
        ("LOG_LEVEL", "info"),
        ("LOG_FORMAT", "json"),
        ("QPS", "30"),
        ("BURST", "50"),
        ("RANDOM_HOSTNAME", "false"),
        ("CERT_RELOAD", "true"),
        ("REQUEST_TIMEOUT", "4000ms"),
        ("API_TIMEOUT", "3000ms"),
        ("SHUTDOWN_DELAY", "5s"),
        ("CERT_EXPIRY_WARNING", "720h"),
        ("MAX_CACHE_STALENESS", "30s"),
    ] {
        assert_eq!(r.env(name), value, "env {name}");
    }
    assert_eq!(
        pod["volumes"][0],
        json!({"name": "tls", "secret": {"secretName": "gmsa-server-cert",
               "items": [{"key": "tls.key", "path": "key"}, {"key": "tls.crt", "path": "crt"}]}})
    );
    let pdb = r.get("PodDisruptionBudget", RELEASE);
    assert_eq!(
        pdb["spec"],
        json!({"selector": {"matchLabels": {"app": RELEASE}}, "maxUnavailable": 1})
    );
    let svc = r.get("Service", RELEASE);
    assert_eq!(
        svc["spec"]["ports"][0],
        json!({"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"})
    );
    assert_eq!(svc["spec"]["ports"][1]["name"], "metrics");
    // The webhook's RBAC: exactly read specs and create access reviews.
    assert_eq!(
        rules_of(r.get("ClusterRole", RELEASE)),
        vec![
            json!({"apiGroups": ["windows.k8s.io"], "resources": ["gmsacredentialspecs"], "verbs": ["get", "list", "watch"]}),
            json!({"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]}),
        ]
    );
    let [m, v] = r.webhooks();
    assert_eq!(
        m["rules"],
        json!([
        {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["*"], "resources": ["pods"], "scope": "Namespaced"},
        {"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["*"], "resources": ["pods/ephemeralcontainers"], "scope": "Namespaced"}])
    );
    assert_eq!(
        v["rules"],
        json!([
        {"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["*"], "resources": ["pods"], "scope": "Namespaced"},
        {"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["*"], "resources": ["pods/ephemeralcontainers"], "scope": "Namespaced"}])
    );
    assert_eq!(m["clientConfig"]["service"]["path"], "/mutate");
    assert_eq!(v["clientConfig"]["service"]["path"], "/validate");
    for hook in [m, v] {
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["timeoutSeconds"], 5);
    }
    assert_eq!(
        m["namespaceSelector"],
        json!({"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [NS, "kube-system"]},
            {"key": "windows.k8s.io/disabled", "operator": "NotIn", "values": ["true"]}]})
    );
    assert_eq!(
        v["namespaceSelector"],
        json!({}),
        "the `use` check has no namespace hole at {NEWEST}: release namespace, kube-system and disabled namespaces included"
    );
    assert!(
        has_match_conditions(&r),
        "matchConditions are on by default at {NEWEST}"
    );
    for kind in [
        "ServiceMonitor",
        "GMSACredentialSpec",
        "Certificate",
        "Issuer",
    ] {
        assert!(r.of_kind(kind).is_empty(), "no {kind} by default");
    }
    assert!(r
        .find("ClusterRole", &format!("{RELEASE}-viewer"))
        .is_none());
    // The CRD ships in crds/ once it is generated; when present it validates too.
    if chart_dir()
        .join("crds")
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
    {
        assert_eq!(r.of_kind("CustomResourceDefinition").len(), 1);
    }
}

#[test]
fn csr_mode_issues_before_install_patches_after_and_renews_on_upgrade_or_a_schedule() {
    let r = render(NEWEST, &["certificates.mode=csr"]);
    let scheduled = render(
        NEWEST,
        &[
            "certificates.mode=csr",
            "certificates.csr.renew.enabled=true",
        ],
    );
    same_objects(&r, &render(NEWEST, &[]), "csr is the default mode");
    for hook in r.webhooks() {
        assert!(
            hook["clientConfig"].get("caBundle").is_none(),
            "the patch Job owns caBundle in csr mode"
        );
    }
    assert!(annotation(
        r.get("MutatingWebhookConfiguration", RELEASE),
        "cert-manager.io/inject-ca-from"
    )
    .is_null());
    // What `certs issue` and `certs renew` are both told.
    let target = [
        "--service",
        RELEASE,
        "--namespace",
        NS,
        "--secret",
        "gmsa-server-cert",
        "--signer",
        "kubernetes.io/kubelet-serving",
        "--approve",
    ];
    let common = [&["certs", "issue"][..], &target].concat();

    let issue = r.get("Job", "gmsa-certs-issue");
    assert_eq!(annotation(issue, "helm.sh/hook"), "pre-install,pre-upgrade");
    let issue_pod = &issue["spec"]["template"]["spec"];
    assert_eq!(issue_pod["serviceAccountName"], "gmsa-certs-hook");
    assert_eq!(
        strings(&issue_pod["containers"][0]["command"]),
        ["/usr/local/bin/gmsa"]
    );
    assert_eq!(args(issue_pod), common);

    let patch = r.get("Job", "gmsa-certs-patch");
    assert_eq!(
        annotation(patch, "helm.sh/hook"),
        "post-install,post-upgrade"
    );
    let patch_pod = &patch["spec"]["template"]["spec"];
    assert_eq!(patch_pod["serviceAccountName"], "gmsa-certs-patch");
    assert_eq!(
        args(patch_pod),
        [&common[..], &["--patch-webhook", RELEASE]].concat()
    );

    assert!(
        r.of_kind("CronJob").is_empty() && r.find("ServiceAccount", "gmsa-certs").is_none(),
        "no standing renewal (and no standing CSR rights) by default"
    );
    let cron = scheduled.get("CronJob", "gmsa-certs-renew");
    assert!(
        annotation(cron, "helm.sh/hook").is_null(),
        "the CronJob is a release resource"
    );
    let cron_pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(cron_pod["serviceAccountName"], "gmsa-certs");
    assert_eq!(
        args(cron_pod),
        [
            &["certs", "renew"][..],
            &target,
            &["--renew-before", "720h", "--patch-webhook", RELEASE],
        ]
        .concat()
    );

    // Hook RBAC (deleted once the hooks of its event succeed) and, only with the CronJob, the
    // same issuing rights as standing release resources. The patch hook gets no CSR right.
    let issue_cluster_rules = vec![
        json!({"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"], "verbs": ["create", "get", "list", "watch", "delete"]}),
        json!({"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/approval"], "verbs": ["update"]}),
        json!({"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "resourceNames": ["kubernetes.io/kubelet-serving"], "verbs": ["approve"]}),
        json!({"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"], "resourceNames": [RELEASE], "verbs": ["get", "patch"]}),
    ];
    let issue_rules = vec![
        json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}),
        json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["gmsa-server-cert"], "verbs": ["get", "update", "patch"]}),
        json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kube-root-ca.crt"], "verbs": ["get"]}),
    ];
    let patch_cluster_rules = vec![
        json!({"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"], "resourceNames": [RELEASE], "verbs": ["get", "patch"]}),
    ];
    let patch_rules = vec![
        json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["gmsa-server-cert"], "verbs": ["get"]}),
        json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kube-root-ca.crt"], "verbs": ["get"]}),
    ];
    let sets = [
        (
            &r,
            "gmsa-certs-hook",
            Some("pre-install,pre-upgrade"),
            &issue_cluster_rules,
            &issue_rules,
        ),
        (
            &r,
            "gmsa-certs-patch",
            Some("post-install,post-upgrade"),
            &patch_cluster_rules,
            &patch_rules,
        ),
        (
            &scheduled,
            "gmsa-certs",
            None,
            &issue_cluster_rules,
            &issue_rules,
        ),
    ];
    for (r, name, events, cluster_rules, rules) in sets {
        for kind in [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
        ] {
            let obj = r.get(kind, name);
            if let Some(events) = events {
                assert_eq!(annotation(obj, "helm.sh/hook"), events, "{kind}/{name}");
                assert_eq!(
                    annotation(obj, "helm.sh/hook-weight"),
                    "-10",
                    "{kind}/{name} precedes the Job"
                );
                assert_eq!(
                    annotation(obj, "helm.sh/hook-delete-policy"),
                    "before-hook-creation,hook-succeeded"
                );
            } else {
                assert!(annotation(obj, "helm.sh/hook").is_null(), "{kind}/{name}");
            }
        }
        assert_eq!(
            &rules_of(r.get("ClusterRole", name)),
            cluster_rules,
            "{name}"
        );
        assert_eq!(&rules_of(r.get("Role", name)), rules, "{name}");
        assert_eq!(
            r.get("RoleBinding", name)["subjects"],
            json!([{"kind": "ServiceAccount", "name": name, "namespace": NS}])
        );
        assert_eq!(r.get("ClusterRoleBinding", name)["roleRef"]["name"], name);
    }
}

#[test]
fn csr_mode_without_approval_or_renewal_asks_for_less() {
    let r = render(
        OLDEST,
        &[
            "certificates.csr.renew.enabled=true",
            "certificates.csr.approve=false",
            "certificates.csr.signerName=example.com/serving",
            "certificates.csr.duration=2160h",
        ],
    );
    let cron =
        &r.get("CronJob", "gmsa-certs-renew")["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    for pod in [
        &r.get("Job", "gmsa-certs-issue")["spec"]["template"]["spec"],
        &r.get("Job", "gmsa-certs-patch")["spec"]["template"]["spec"],
        cron,
    ] {
        let a = args(pod);
        assert!(
            a.contains(&"--no-approve") && !a.contains(&"--approve"),
            "{a:?}"
        );
        assert!(
            a.windows(2)
                .any(|w| w == ["--signer", "example.com/serving"]),
            "{a:?}"
        );
        assert!(a.windows(2).any(|w| w == ["--duration", "2160h"]), "{a:?}");
    }
    let no_renew = render(OLDEST, &["certificates.csr.renew.enabled=false"]);
    assert!(no_renew.of_kind("CronJob").is_empty());
    assert!(
        no_renew.find("Job", "gmsa-certs-patch").is_some(),
        "the caBundle patch does not depend on renewal"
    );
    let rules = rules_of(r.get("ClusterRole", "gmsa-certs"));
    assert!(
        !rules
            .iter()
            .any(|rule| rule["resources"] == json!(["signers"])),
        "no approve permission without approve: {rules:?}"
    );
}

#[test]
fn cert_manager_mode_from_the_reference_values_injects_the_ca() {
    let r = render(NEWEST, &["certificates.certManager.enabled=true"]);
    same_objects(
        &r,
        &render(NEWEST, &["certificates.mode=certManager"]),
        "mode from certManager.enabled",
    );
    assert!(
        r.of_kind("Job").is_empty() && r.of_kind("CronJob").is_empty(),
        "cert-manager renews"
    );
    assert!(r.find("ClusterRole", "gmsa-certs").is_none());
    assert_eq!(
        r.get("Issuer", "gmsa-selfsigned")["spec"],
        json!({"selfSigned": {}})
    );
    let ca = r.get("Certificate", "gmsa-ca");
    assert_eq!(ca["spec"]["isCA"], true);
    assert_eq!(
        ca["spec"]["issuerRef"],
        json!({"kind": "Issuer", "name": "gmsa-selfsigned"})
    );
    assert_eq!(
        r.get("Issuer", "gmsa-ca")["spec"],
        json!({"ca": {"secretName": "gmsa-ca"}})
    );
    let serving = &r.get("Certificate", RELEASE)["spec"];
    assert_eq!(serving["secretName"], "gmsa-server-cert");
    assert_eq!(
        serving["issuerRef"],
        json!({"kind": "Issuer", "name": "gmsa-ca"})
    );
    assert_eq!(
        strings(&serving["dnsNames"]),
        [
            "gmsa",
            "gmsa.gmsa-system",
            "gmsa.gmsa-system.svc",
            "gmsa.gmsa-system.svc.cluster.local"
        ]
    );
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let cfg = r.get(kind, RELEASE);
        assert_eq!(
            annotation(cfg, "cert-manager.io/inject-ca-from"),
            "gmsa-system/gmsa"
        );
        assert!(cfg["webhooks"][0]["clientConfig"].get("caBundle").is_none());
    }
}

#[test]
fn secret_mode_puts_the_given_ca_bundle_in_both_webhooks() {
    let bundle = format!("certificates.caBundle={TEST_CA_BUNDLE}");
    // The reference chart's way (certManager off, caBundle given) selects secret mode.
    let r = render(
        OLDEST,
        &[
            "certificates.certManager.enabled=false",
            &bundle,
            "certificates.secretName=my-cert",
        ],
    );
    same_objects(
        &r,
        &render(
            OLDEST,
            &[
                "certificates.mode=secret",
                &bundle,
                "certificates.secretName=my-cert",
            ],
        ),
        "mode from caBundle",
    );
    for hook in r.webhooks() {
        assert_eq!(hook["clientConfig"]["caBundle"], TEST_CA_BUNDLE);
    }
    assert!(r.of_kind("Job").is_empty() && r.of_kind("Certificate").is_empty());
    assert_eq!(
        r.get("Deployment", RELEASE)["spec"]["template"]["spec"]["volumes"][0]["secret"]
            ["secretName"],
        "my-cert"
    );
}

#[test]
fn secret_mode_without_a_ca_bundle_fails_with_a_clear_message() {
    for (label, out) in template_each(NEWEST, &["certificates.mode=secret"]) {
        assert!(
            !out.status.success(),
            "{label} must refuse to render a webhook without a caBundle"
        );
        let err = text(&out.stderr);
        assert!(
            err.contains("certificates.mode=secret needs the CA")
                && err.contains("certificates.caBundle"),
            "{label}: {err}"
        );
    }
}

#[test]
fn opt_in_mode_selects_only_labelled_namespaces() {
    let r = render(
        NEWEST,
        &[
            "webhook.namespaceSelector.mode=optIn",
            "webhook.namespaceSelector.excludeNamespaces=null",
        ],
    );
    assert_eq!(
        r.webhook("MutatingWebhookConfiguration")["namespaceSelector"],
        json!({"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [NS]},
            {"key": "windows.k8s.io/gmsa", "operator": "In", "values": ["enabled"]}]})
    );
    assert_eq!(
        r.webhook("ValidatingWebhookConfiguration")["namespaceSelector"],
        json!({}),
        "opting in selects what is mutated; the `use` check still covers every namespace"
    );
    let custom = render(
        NEWEST,
        &[
            "webhook.namespaceSelector.mode=optIn",
            "webhook.namespaceSelector.optInLabel=example.com/gmsa",
            "webhook.namespaceSelector.optInValue=yes",
        ],
    );
    assert_eq!(
        custom.webhook("MutatingWebhookConfiguration")["namespaceSelector"]["matchExpressions"][1],
        json!({"key": "example.com/gmsa", "operator": "In", "values": ["yes"]})
    );
}

#[test]
fn validation_namespace_holes_are_explicit_and_only_before_1_30_implied() {
    let holes = render(
        NEWEST,
        &["webhook.validation.unsafeExcludeNamespaces={legacy,lab}"],
    );
    assert_eq!(
        holes.webhook("ValidatingWebhookConfiguration")["namespaceSelector"],
        json!({"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["legacy", "lab"]}]})
    );
    assert_eq!(
        holes.webhook("MutatingWebhookConfiguration")["namespaceSelector"]["matchExpressions"][0]
            ["values"],
        json!([NS, "kube-system"]),
        "mutation exclusions are unchanged"
    );
    // Before 1.30 (no matchConditions) every pod of a selected namespace is sent, so the
    // webhook's own namespace and kube-system stay out of both.
    let old = render(OLDEST, &[]);
    assert!(!has_match_conditions(&old));
    assert_eq!(
        old.webhook("ValidatingWebhookConfiguration")["namespaceSelector"],
        old.webhook("MutatingWebhookConfiguration")["namespaceSelector"]
    );
    // Forced on at 1.28 (beta): the same as 1.30+.
    let forced = render(OLDEST, &["webhook.matchConditions.enabled=true"]);
    assert_eq!(
        forced.webhook("ValidatingWebhookConfiguration")["namespaceSelector"],
        json!({})
    );
}

#[test]
fn failure_policy_and_timeout_come_from_values() {
    let r = render(
        OLDEST,
        &["webhook.failurePolicy=Ignore", "webhook.timeoutSeconds=10"],
    );
    for hook in r.webhooks() {
        assert_eq!(hook["failurePolicy"], "Ignore");
        assert_eq!(hook["timeoutSeconds"], 10);
    }
    assert_eq!(
        r.env("REQUEST_TIMEOUT"),
        "8000ms",
        "the webhook answers before the API server gives up"
    );
    assert_eq!(r.env("API_TIMEOUT"), "6000ms");
}

#[test]
fn kubernetes_older_than_the_oldest_supported_is_refused() {
    for (label, out) in template_each("1.27.9", &[]) {
        assert!(!out.status.success(), "{label} rendered for 1.27");
        let err = text(&out.stderr);
        assert!(err.contains("kubeVersion"), "{label}: {err}");
    }
}
