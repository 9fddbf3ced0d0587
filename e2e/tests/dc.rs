//! The DC tier: every scenario against one real Samba AD domain controller (started on first
//! use by `gmsa_e2e::dc::shared`, stopped when this process exits). Run by
//! `scripts/test.d/20-dc` (`cargo test --workspace --all-features --test dc`); excluded from the main nextest
//! run, which would start one DC per test process. See docs/e2e-dc.md.
//!
//! Expected values are read from the DC independently of our LDAP code: `ldbsearch` on the
//! DC's database and OpenLDAP's `ldapsearch`; the node-side proof uses MIT `kinit`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use gmsa_e2e::dc::{
    self, Dc, DISABLED_GMSA, GMSA, NODE_DENIED, NODE_DIRECT, NODE_GROUP, NODE_VIA_GROUP,
    RESTRICTED_USER,
};
use serde_json::{json, Value};

/// The `gmsa` binary of this build (target/debug/gmsa, next to this test's deps/ dir).
fn gmsa_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("gmsa");
    assert!(
        bin.exists(),
        "{} not built: build it first: `cargo test --workspace --all-features --no-run` (scripts/test.d/20-dc does)",
        bin.display()
    );
    bin
}

fn gmsa(args: &[&str]) -> Output {
    Command::new(gmsa_bin())
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("running gmsa")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--server --ca-file --bind-dn --password-file` as Administrator.
fn dc_args(dc: &Dc) -> Vec<String> {
    vec![
        "--server".into(),
        dc.server(),
        "--ca-file".into(),
        dc.ca_file.display().to_string(),
        "--bind-dn".into(),
        dc.admin_dn.clone(),
        "--password-file".into(),
        dc.admin_password_file.display().to_string(),
    ]
}

fn run_with(dc_flags: &[String], args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(dc_flags.iter().map(String::as_str));
    gmsa(&all)
}

fn from_dc(dc: &Dc, extra: &[&str]) -> Output {
    let mut args = vec!["spec", "from-dc", "--account", GMSA];
    args.extend_from_slice(extra);
    run_with(&dc_args(dc), &args)
}

/// The credential spec `from-dc` prints with `-o credspec-json`.
fn generated_spec(dc: &Dc) -> Value {
    let out = from_dc(dc, &["-o", "credspec-json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "from-dc failed: {stderr}");
    serde_json::from_str(&stdout).expect("from-dc prints JSON")
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// One value of `attr` from `ldbsearch` (the DC's own decoding of SIDs and GUIDs).
fn ldb_value(dc: &Dc, base: &str, scope: &str, filter: &str, attr: &str) -> String {
    dc.ldbsearch(base, scope, filter, &[attr])
        .expect("ldbsearch")
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("ldbsearch: no {attr} under {base} for {filter}"))
}

#[test]
fn from_dc_equals_what_the_dc_reports() {
    let dc = dc::shared();
    let spec = generated_spec(dc);
    let sid = ldb_value(dc, &dc.base_dn, "base", "(objectClass=*)", "objectSid");
    let guid = ldb_value(dc, &dc.base_dn, "base", "(objectClass=*)", "objectGUID");
    let partitions = format!("CN=Partitions,CN=Configuration,{}", dc.base_dn);
    let cross_ref = format!("(&(objectClass=crossRef)(nCName={}))", dc.base_dn);
    let netbios = ldb_value(dc, &partitions, "one", &cross_ref, "nETBIOSName");
    let dns = ldb_value(dc, &partitions, "one", &cross_ref, "dnsRoot");
    // The gMSA really is one, as the DC reports it.
    let classes = dc
        .ldbsearch(
            &dc.gmsa_dn(GMSA),
            "base",
            "(objectClass=*)",
            &["objectClass"],
        )
        .expect("ldbsearch");
    assert!(classes
        .iter()
        .any(|(_, v)| v == "msDS-GroupManagedServiceAccount"));
    assert_eq!(dns, dc.dns_name);
    assert_eq!(netbios, dc.netbios);
    let want = json!({
        "CmsPlugins": ["ActiveDirectory"],
        "DomainJoinConfig": {
            "Sid": sid,
            "MachineAccountName": GMSA,
            "Guid": guid,
            "DnsTreeName": dns,
            "DnsName": dns,
            "NetBiosName": netbios
        },
        "ActiveDirectoryConfig": {
            "GroupManagedServiceAccounts": [
                {"Name": GMSA, "Scope": dns},
                {"Name": GMSA, "Scope": netbios}
            ]
        }
    });
    assert_eq!(spec, want);
}

#[test]
fn from_dc_over_starttls_gives_the_same_spec() {
    let dc = dc::shared();
    let mut flags = dc_args(dc);
    flags[1] = format!("ldap://{}", dc.ip);
    let out = run_with(
        &flags,
        &["spec", "from-dc", "--account", GMSA, "-o", "credspec-json"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let spec: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(spec, generated_spec(dc));
}

#[test]
fn from_dc_manifest_has_the_name_and_the_same_spec() {
    let dc = dc::shared();
    let out = from_dc(dc, &["--name", "webapp1-e2e"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let manifest: Value = serde_norway::from_str(&stdout).expect("YAML manifest");
    assert_eq!(manifest["apiVersion"], "windows.k8s.io/v1");
    assert_eq!(manifest["kind"], "GMSACredentialSpec");
    assert_eq!(manifest["metadata"]["name"], "webapp1-e2e");
    assert_eq!(manifest["credspec"], generated_spec(dc));
    // Default name: the account, lower-cased.
    let out = from_dc(dc, &["-o", "json"]);
    let manifest: Value = serde_json::from_slice(&out.stdout).expect("JSON manifest");
    assert_eq!(manifest["metadata"]["name"], GMSA.to_lowercase());
}

/// `from-dc --ccg aws`: the domain part equals the domain-joined spec's, and the added
/// HostAccountConfig is the AWS plugin's and validates with the crd catalogue.
#[test]
fn from_dc_ccg_aws_adds_only_a_host_account_config_that_validates() {
    let dc = dc::shared();
    let arn = "arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-reader";
    let out = from_dc(
        dc,
        &[
            "-o",
            "credspec-json",
            "--ccg",
            "aws",
            "--credential-arn",
            arn,
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let mut spec: Value = serde_json::from_str(&stdout).expect("JSON");
    let host = spec["ActiveDirectoryConfig"]
        .as_object_mut()
        .expect("ActiveDirectoryConfig")
        .remove("HostAccountConfig")
        .expect("HostAccountConfig written");
    assert_eq!(
        spec,
        generated_spec(dc),
        "the domain part is the domain-joined spec's"
    );
    assert_eq!(host["PluginGUID"], gmsa_crd::ccg::AWS.guid);
    let input = host["PluginInput"]
        .as_str()
        .expect("PluginInput is a string");
    assert_eq!(
        gmsa_crd::ccg::AWS.parse(input),
        Ok(gmsa_crd::ccg::PluginInput::Aws {
            credential_arn: arn.into()
        })
    );
    spec["ActiveDirectoryConfig"]["HostAccountConfig"] = host;
    let typed = gmsa_crd::CredSpec::from_value(&spec).expect("model");
    let problems = gmsa_crd::validate(&typed);
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn from_dc_additional_accounts() {
    let dc = dc::shared();
    let out = from_dc(
        dc,
        &[
            "-o",
            "credspec-json",
            "--additional-account",
            "Reports@other.example",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_has(&stderr, "Reports@other.example is in another domain");
    let spec: Value = serde_json::from_str(&stdout).expect("JSON");
    let accounts = &spec["ActiveDirectoryConfig"]["GroupManagedServiceAccounts"];
    assert_eq!(
        accounts[2],
        json!({"Name": "Reports", "Scope": "other.example"})
    );
    // An additional account in this domain is checked like the main one.
    let out = from_dc(dc, &["--additional-account", DISABLED_GMSA]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success() && stdout.is_empty());
    assert!(
        stderr.contains(&format!("gMSA `{DISABLED_GMSA}`")) && stderr.contains("is disabled"),
        "{stderr}"
    );
}

#[test]
fn from_dc_refuses_missing_disabled_and_non_gmsa_accounts() {
    let dc = dc::shared();
    let table = [
        (
            "NoSuchGmsa",
            "account `NoSuchGmsa` not found in domain gmsatest.example",
        ),
        (DISABLED_GMSA, "is disabled; enable it"),
        (NODE_DIRECT, "is not a group managed service account"),
    ];
    for (account, want) in table {
        let out = run_with(&dc_args(dc), &["spec", "from-dc", "--account", account]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{account}: {stderr}");
        assert!(stdout.is_empty(), "{account}: printed {stdout}");
        assert!(stderr.contains(want), "{account}: {stderr}");
    }
}

fn write_spec(dir: &Path, name: &str, spec: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(spec).expect("json")).expect("write spec");
    path
}

fn verify(dc: &Dc, file: &Path, nodes: &[&str]) -> (Option<i32>, String, String) {
    let file = file.display().to_string();
    let mut args = vec!["spec", "verify", file.as_str()];
    for node in nodes {
        args.extend(["--node", node]);
    }
    let out = run_with(&dc_args(dc), &args);
    let (stdout, stderr) = text(&out);
    (out.status.code(), stdout, stderr)
}

/// `text` contains `needle`; the message shows all of `text`.
#[track_caller]
fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "{text}");
}

fn error_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.contains(": error: ")).collect()
}

#[test]
fn verify_passes_and_lists_who_may_retrieve() {
    let dc = dc::shared();
    let dir = temp();
    let file = write_spec(dir.path(), "spec.json", &generated_spec(dc));
    let direct = format!("{NODE_DIRECT}$");
    let via_group = format!("{NODE_VIA_GROUP}$");
    let (code, stdout, stderr) = verify(dc, &file, &[&direct, &via_group]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(error_lines(&stdout).is_empty(), "{stdout}");
    let n = &dc.netbios;
    let readers = format!(
        "gMSA {GMSA}: may retrieve the password: {n}\\Administrator, {n}\\{NODE_DIRECT}$, {n}\\{NODE_GROUP}"
    );
    assert_has(&stdout, &readers);
    assert_has(&stdout, &format!("node {direct} may retrieve"));
    assert_has(&stdout, &format!("node {via_group} may retrieve"));
    assert_has(&stdout, "ok: matches gmsatest.example (GMSATEST)");
}

#[test]
fn verify_reads_the_from_dc_manifest() {
    let dc = dc::shared();
    let dir = temp();
    let out = from_dc(dc, &[]);
    assert!(out.status.success());
    let file = dir.path().join("spec.yaml");
    std::fs::write(&file, &out.stdout).expect("write");
    let (code, stdout, stderr) = verify(dc, &file, &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
}

#[test]
fn verify_catches_each_wrong_field() {
    let dc = dc::shared();
    let good = generated_spec(dc);
    let sid = good["DomainJoinConfig"]["Sid"]
        .as_str()
        .expect("sid")
        .to_string();
    let dir = temp();
    let table = [
        // A user's SID instead of the domain's: the most common mistake.
        ("Sid", json!(format!("{sid}-500")), "an account's SID"),
        (
            "Sid",
            json!("S-1-5-21-1-2-3"),
            "but the SID of gmsatest.example is",
        ),
        (
            "Guid",
            json!("00000000-1111-2222-3333-444444444444"),
            "objectGUID of gmsatest.example",
        ),
        (
            "NetBiosName",
            json!("CONTOSO"),
            "NetBIOS name is `GMSATEST`",
        ),
        (
            "DnsName",
            json!("contoso.com"),
            "DNS name is `gmsatest.example`",
        ),
        (
            "DnsTreeName",
            json!("forest.contoso.com"),
            "forest root domain's DNS name",
        ),
    ];
    for (field, value, want) in table {
        let mut spec = good.clone();
        spec["DomainJoinConfig"][field] = value;
        let file = write_spec(dir.path(), &format!("{field}.json"), &spec);
        let (code, stdout, stderr) = verify(dc, &file, &[]);
        assert_eq!(code, Some(1), "{field}: {stdout}{stderr}");
        let errors = error_lines(&stdout);
        assert_eq!(errors.len(), 1, "{field}: {stdout}");
        assert_has(errors[0], &format!("error: DomainJoinConfig.{field}: "));
        assert!(
            errors[0].contains(want) && errors[0].contains("fix: set it to"),
            "{}",
            errors[0]
        );
    }
}

#[test]
fn verify_catches_a_missing_and_a_disabled_gmsa() {
    let dc = dc::shared();
    let dir = temp();
    for (account, want) in [
        ("NoSuchGmsa", "not found in gmsatest.example"),
        (DISABLED_GMSA, "is disabled"),
    ] {
        let mut spec = generated_spec(dc);
        spec["DomainJoinConfig"]["MachineAccountName"] = json!(account);
        for entry in spec["ActiveDirectoryConfig"]["GroupManagedServiceAccounts"]
            .as_array_mut()
            .expect("accounts")
        {
            entry["Name"] = json!(account);
        }
        let file = write_spec(dir.path(), &format!("{account}.json"), &spec);
        let (code, stdout, stderr) = verify(dc, &file, &[]);
        assert_eq!(code, Some(1), "{account}: {stdout}{stderr}");
        let errors = error_lines(&stdout);
        assert_eq!(errors.len(), 1, "{account}: {stdout}");
        assert!(
            errors[0].contains(&format!("gMSA {account}: ")) && errors[0].contains(want),
            "{}",
            errors[0]
        );
    }
}

#[test]
fn verify_catches_a_node_that_is_not_allowed() {
    let dc = dc::shared();
    let dir = temp();
    let file = write_spec(dir.path(), "spec.json", &generated_spec(dc));
    let denied = format!("{NODE_DENIED}$");
    let direct = format!("{NODE_DIRECT}$");
    let (code, stdout, stderr) = verify(dc, &file, &[&direct, &denied, "NOSUCHNODE$"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let errors = error_lines(&stdout);
    assert_eq!(errors.len(), 2, "{stdout}");
    assert_has(
        errors[0],
        &format!("node {denied}: may not retrieve the password of gMSA {GMSA}"),
    );
    assert_has(errors[0], "group-msa-membership add");
    assert_has(errors[1], "node NOSUCHNODE$: no computer account");
    assert_has(&stdout, &format!("node {direct} may retrieve"));
    assert_has(&stdout, &format!("node {denied} may NOT retrieve"));
}

/// `msDS-ManagedPassword` of the gMSA as seen by `computer` over LDAPS (OpenLDAP client).
fn managed_password_as(dc: &Dc, computer: &str) -> Option<Vec<u8>> {
    let out = dc
        .ldapsearch(
            &dc.computer_dn(computer),
            &dc.password_of(computer),
            &dc.gmsa_dn(GMSA),
            &["msDS-ManagedPassword"],
        )
        .expect("ldapsearch");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "ldapsearch as {computer}: {stderr}");
    // The object is visible either way; only the attribute differs.
    assert!(
        stdout.contains(&format!("dn: {}", dc.gmsa_dn(GMSA))),
        "as {computer}: {stdout}"
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("msDS-ManagedPassword:: "))
        .map(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64")
        })
}

#[test]
fn node_side_allowed_computers_read_the_password_and_get_a_ticket() {
    let dc = dc::shared();
    let dir = temp();
    let mut keys = Vec::new();
    for computer in [NODE_DIRECT, NODE_VIA_GROUP] {
        let blob = managed_password_as(dc, computer).unwrap_or_else(|| {
            panic!("{computer} may retrieve the password but got no msDS-ManagedPassword")
        });
        let key = dc::nt_hash_from_managed_password(&blob).expect("blob decodes");
        let keytab = dir.path().join(format!("{computer}.keytab"));
        dc::write_rc4_keytab(&keytab, &format!("{GMSA}$"), &dc.realm, &key).expect("keytab");
        let (ok, output) = dc
            .kinit_with_keytab(&keytab, &format!("{GMSA}$"))
            .expect("kinit");
        assert!(
            ok,
            "kinit as {GMSA}$ with the key {computer} read failed: {output}"
        );
        assert_has(&output, &format!("Default principal: {GMSA}$@{}", dc.realm));
        assert_has(&output, &format!("krbtgt/{0}@{0}", dc.realm));
        keys.push(key);
    }
    assert_eq!(
        keys[0], keys[1],
        "both computers must read the same current password"
    );
}

#[test]
fn node_side_denied_computer_gets_no_password_and_no_ticket() {
    let dc = dc::shared();
    assert_eq!(
        managed_password_as(dc, NODE_DENIED),
        None,
        "{NODE_DENIED} must not see msDS-ManagedPassword"
    );
    // Without the password, all it can do is guess a key; the KDC refuses it (this also shows
    // the kinit check above can fail).
    let dir = temp();
    let keytab = dir.path().join("guess.keytab");
    dc::write_rc4_keytab(&keytab, &format!("{GMSA}$"), &dc.realm, &[0x42; 16]).expect("keytab");
    let (ok, output) = dc
        .kinit_with_keytab(&keytab, &format!("{GMSA}$"))
        .expect("kinit");
    assert!(!ok, "kinit with a guessed key must fail: {output}");
}

#[test]
fn error_unreachable_server() {
    let dc = dc::shared();
    let mut flags = dc_args(dc);
    flags[1] = format!("ldaps://{}:1", dc.ip);
    let out = run_with(&flags, &["spec", "from-dc", "--account", GMSA]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_has(
        &stderr,
        &format!("cannot reach the domain controller at ldaps://{}:1", dc.ip),
    );
}

#[test]
fn error_tls_names_the_ca_option() {
    let dc = dc::shared();
    // Without --ca-file the system's CAs do not trust the test CA.
    let flags: Vec<String> = dc_args(dc)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != 2 && *i != 3)
        .map(|(_, v)| v)
        .collect();
    let out = run_with(&flags, &["spec", "from-dc", "--account", GMSA]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("TLS with") && stderr.contains("--ca-file"),
        "{stderr}"
    );
    // A CA file with a different CA fails the same way.
    let dir = temp();
    let other = dir.path().join("other-ca.pem");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&other, params.self_signed(&key).expect("ca").pem()).expect("write");
    let mut flags = dc_args(dc);
    flags[3] = other.display().to_string();
    let out = run_with(&flags, &["spec", "from-dc", "--account", GMSA]);
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("--ca-file") && stderr.contains("UnknownIssuer"),
        "{stderr}"
    );
}

#[test]
fn error_bad_credentials() {
    let dc = dc::shared();
    let dir = temp();
    let wrong = dir.path().join("wrong.pw");
    std::fs::write(&wrong, "not-the-password\n").expect("write");
    let mut flags = dc_args(dc);
    flags[7] = wrong.display().to_string();
    let out = run_with(&flags, &["spec", "from-dc", "--account", GMSA]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_has(
        &stderr,
        &format!(
            "rejected the bind as `{}`: invalid credentials",
            dc.admin_dn
        ),
    );
}

#[test]
fn error_insufficient_rights() {
    let dc = dc::shared();
    let dir = temp();
    let pw = dir.path().join("restricted.pw");
    std::fs::write(&pw, dc.password_of(RESTRICTED_USER)).expect("write");
    let mut flags = dc_args(dc);
    flags[5] = format!("{RESTRICTED_USER}@{}", dc.realm);
    flags[7] = pw.display().to_string();
    let out = run_with(&flags, &["spec", "from-dc", "--account", GMSA]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_has(
        &stderr,
        &format!("insufficient rights: `objectSid` of {}", dc.gmsa_dn(GMSA)),
    );
}

/// `gmsa ARGS` with `KRB5_CONFIG` at the DC's KDC and `KRB5CCNAME` at `cache`.
fn gmsa_kerberos(dc: &Dc, cache: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(gmsa_bin());
    cmd.args(args).env_remove("KUBECONFIG");
    dc.krb5_env(&mut cmd, cache);
    cmd.output().expect("running gmsa")
}

/// Fails unless the gmsa binary has Kerberos support (`--all-features`, as
/// scripts/test.d/20-dc builds it).
fn assert_kerberos_built(out: &Output) {
    let (_, stderr) = text(out);
    assert!(
        !stderr.contains("built without Kerberos support"),
        "the DC tier needs gmsa built with --all-features (gmsa/kerberos): {stderr}"
    );
}

#[test]
fn from_dc_with_kerberos_gives_the_same_spec() {
    let dc = dc::shared();
    let dir = temp();
    let cache = dir.path().join("admin.ccache");
    let ca = dc.ca_file.display().to_string();
    let ldaps = dc.server();
    let starttls = format!("ldap://{}", dc.ip);
    let host = dc.host_name();
    let from_dc = |server: &[&str]| {
        let mut args = vec![
            "spec",
            "from-dc",
            "--account",
            GMSA,
            "-o",
            "credspec-json",
            "--ca-file",
            &ca,
            "--kerberos",
        ];
        args.extend_from_slice(server);
        gmsa_kerberos(dc, &cache, &args)
    };

    // No ticket in the cache yet: a clear error naming kinit and the service principal
    // (taken from the DC's dnsHostName, as --server is an IP address).
    let out = from_dc(&["--server", &ldaps]);
    assert_kerberos_built(&out);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Kerberos (GSSAPI) bind")
            && stderr.contains("kinit")
            && stderr.contains(&format!("ldap/{host}")),
        "{stderr}"
    );

    dc.kinit_with_password("Administrator", &dc.admin_password().expect("pw"), &cache)
        .expect("kinit");
    let want = generated_spec(dc); // the simple-bind output
    for server in [
        vec!["--server", ldaps.as_str()],
        vec![
            "--server",
            starttls.as_str(),
            "--server-name",
            host.as_str(),
        ],
    ] {
        let out = from_dc(&server);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{server:?}: {stderr}");
        let spec: Value = serde_json::from_str(&stdout).expect("JSON");
        assert_eq!(spec, want, "{server:?}");
    }

    // verify binds the same way.
    let file = write_spec(dir.path(), "spec.json", &want);
    let file = file.display().to_string();
    let node = format!("{NODE_DIRECT}$");
    let out = gmsa_kerberos(
        dc,
        &cache,
        &[
            "spec",
            "verify",
            &file,
            "--server",
            &ldaps,
            "--ca-file",
            &ca,
            "--kerberos",
            "--node",
            &node,
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_has(&stdout, &format!("node {node} may retrieve"));

    // A service principal the DC does not have: the KDC refuses, the error names it.
    let out = from_dc(&[
        "--server",
        &ldaps,
        "--server-name",
        &format!("nosuch.{}", dc.dns_name),
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_has(&stderr, &format!("ldap/nosuch.{}", dc.dns_name));
}

#[test]
fn kerberos_bind_is_as_the_ticket_principal() {
    let dc = dc::shared();
    let dir = temp();
    let cache = dir.path().join("restricted.ccache");
    dc.kinit_with_password(RESTRICTED_USER, &dc.password_of(RESTRICTED_USER), &cache)
        .expect("kinit");
    let ca = dc.ca_file.display().to_string();
    let out = gmsa_kerberos(
        dc,
        &cache,
        &[
            "spec",
            "from-dc",
            "--account",
            GMSA,
            "--server",
            &dc.server(),
            "--ca-file",
            &ca,
            "--kerberos",
        ],
    );
    assert_kerberos_built(&out);
    // restricted1 may not read the gMSA's objectSid (Administrator may): the bind really
    // is as the principal of the credential cache.
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_has(
        &stderr,
        &format!("insufficient rights: `objectSid` of {}", dc.gmsa_dn(GMSA)),
    );
}

/// A Windows pod that refers to `spec_name` at pod level.
fn gmsa_pod(spec_name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: default\nspec:\n  serviceAccountName: default\n  securityContext:\n    windowsOptions:\n      gmsaCredentialSpecName: {spec_name}\n  nodeSelector:\n    kubernetes.io/os: windows\n  containers:\n  - name: web\n    image: mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022\n"
    )
}

/// The `gmsaCredentialSpec` the review put into the pod, parsed; the review's YAML output
/// has its decisions as `#` comments before the patched pod.
fn inlined_spec(review_stdout: &str) -> Value {
    let yaml: String = review_stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let pod: Value = serde_norway::from_str(&yaml)
        .unwrap_or_else(|e| panic!("review output is not one YAML pod ({e}): {review_stdout}"));
    let inlined = pod["spec"]["securityContext"]["windowsOptions"]["gmsaCredentialSpec"]
        .as_str()
        .unwrap_or_else(|| panic!("no gmsaCredentialSpec in the reviewed pod: {review_stdout}"));
    serde_json::from_str(inlined).expect("inlined spec is JSON")
}

/// A child process killed (by its pid) when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn chain_from_dc_manifest_to_webhook_to_mutated_pod() {
    let dc = dc::shared();
    let dir = temp();
    let specs = dir.path().join("credspecs");
    std::fs::create_dir(&specs).expect("mkdir");
    let out = from_dc(dc, &["--name", "webapp1"]);
    assert!(out.status.success(), "{}", text(&out).1);
    std::fs::write(specs.join("webapp1.yaml"), &out.stdout).expect("write manifest");
    let pod = dir.path().join("pod.yaml");
    std::fs::write(&pod, gmsa_pod("webapp1")).expect("write pod");
    let want = generated_spec(dc);

    // The webhook's admission rules in process (`gmsa review` over the directory).
    let specs_arg = specs.display().to_string();
    let pod_arg = pod.display().to_string();
    let out = gmsa(&[
        "review",
        &pod_arg,
        "--credspecs-dir",
        &specs_arg,
        "--allow-all-use",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "review denied: {stdout}{stderr}");
    assert_eq!(inlined_spec(&stdout), want, "{stdout}");

    // The standalone webhook process over HTTPS, with a certificate from a test CA.
    let webhook = gmsa_bin().with_file_name("gmsa-webhook");
    assert!(
        webhook.exists(),
        "{} not built: cargo build -p gmsa-webhook",
        webhook.display()
    );
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    let cert = leaf.signed_by(&key, &issuer).expect("leaf");
    let (ca_path, crt, key_path) = (
        dir.path().join("ca.pem"),
        dir.path().join("tls.crt"),
        dir.path().join("tls.key"),
    );
    std::fs::write(&ca_path, ca_cert.pem()).expect("write");
    std::fs::write(&crt, cert.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let _webhook = Child(
        Command::new(&webhook)
            .args([
                "--credspecs-dir",
                &specs_arg,
                "--allow-all-use",
                "--bind-address",
                "127.0.0.1",
                "--admin-port",
                "0",
            ])
            .arg("--https-port")
            .arg(port.to_string())
            .arg("--tls-crt")
            .arg(&crt)
            .arg("--tls-key")
            .arg(&key_path)
            .env_remove("KUBECONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting gmsa-webhook"),
    );
    let url = format!("https://127.0.0.1:{port}");
    let ca_arg = ca_path.display().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (stdout, stderr) = loop {
        let out = gmsa(&["review", &pod_arg, "--webhook", &url, "--ca", &ca_arg]);
        let (stdout, stderr) = text(&out);
        if out.status.success() {
            break (stdout, stderr);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "review through the webhook at {url} failed: {stdout}{stderr}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(inlined_spec(&stdout), want, "{stdout}{stderr}");
}

#[test]
fn verify_by_name_reads_the_spec_from_the_cluster() {
    let dc = dc::shared();
    let good = generated_spec(dc);
    let mut wrong = good.clone();
    wrong["DomainJoinConfig"]["NetBiosName"] = json!("CONTOSO");
    let api = gmsa_testkit::crd_api::CrdApi::empty();
    api.apply("webapp1", Some(good));
    api.apply("webapp1-wrong", Some(wrong));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(gmsa_testkit::FakeApiServer::start(api.router()));
    let dir = temp();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: me\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: me\ncurrent-context: fake\n",
            server.url()
        ),
    )
    .expect("write kubeconfig");
    let verify_named = |name: &str| {
        let mut args: Vec<String> = ["spec", "verify", "--name", name]
            .map(String::from)
            .to_vec();
        args.extend(dc_args(dc));
        let out = Command::new(gmsa_bin())
            .args(&args)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .expect("running gmsa");
        let (stdout, stderr) = text(&out);
        (out.status.code(), stdout, stderr)
    };
    let (code, stdout, stderr) = verify_named("webapp1");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_has(&stdout, "GMSACredentialSpec webapp1: ok: matches");
    let (code, stdout, stderr) = verify_named("webapp1-wrong");
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert_eq!(error_lines(&stdout).len(), 1, "{stdout}");
    assert_has(&stdout, "error: DomainJoinConfig.NetBiosName: is `CONTOSO`");
    let (code, _, stderr) = verify_named("nosuchspec");
    assert_eq!(code, Some(1));
    assert_has(
        &stderr,
        "reading GMSACredentialSpec nosuchspec from the cluster",
    );
    drop(server);
}

/// `gmsa doctor -o json` against testkit's fake cluster serving `setup` and the real DC:
/// (exit code, the checks by id).
fn doctor_with_dc(dc: &Dc, setup: gmsa_testkit::setup::Setup) -> (Option<i32>, Value) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let shared = std::sync::Arc::new(std::sync::Mutex::new(setup));
    let server = runtime.block_on(gmsa_testkit::FakeApiServer::start(
        gmsa_testkit::setup::Setup::router(shared),
    ));
    let dir = temp();
    let kubeconfig = server.write_kubeconfig(dir.path());
    let mut args: Vec<String> = [
        "doctor",
        "-n",
        "apps",
        "--service-account",
        "webapp",
        "--spec",
        "webapp01",
        "-o",
        "json",
    ]
    .map(String::from)
    .to_vec();
    args.extend(dc_args(dc));
    args.extend(["--kubeconfig".into(), kubeconfig.display().to_string()]);
    let out = Command::new(gmsa_bin())
        .args(&args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("running gmsa doctor");
    let (stdout, stderr) = text(&out);
    let report: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    drop(server);
    (out.status.code(), report)
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no check {id}: {report:#}"))
}

/// The fake cluster's healthy set-up holding `spec` as webapp01, with Windows nodes `nodes`.
fn doctor_setup(spec: Value, nodes: &[&str]) -> gmsa_testkit::setup::Setup {
    let mut setup = gmsa_testkit::setup::Setup::healthy(gmsa_crd::crd_value());
    setup.specs[0]["credspec"] = spec;
    setup.nodes = nodes
        .iter()
        .map(|n| {
            json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": n, "labels": {"kubernetes.io/os": "windows"}}})
        })
        .collect();
    setup
}

#[test]
fn doctor_checks_the_spec_and_each_windows_node_against_the_dc() {
    let dc = dc::shared();
    // Node names as Kubernetes shows them (lower case, FQDN); their computer accounts are
    // NODE1$ (allowed directly) and NODE2$ (through the group).
    let nodes = [
        format!("{}.{}", NODE_DIRECT.to_ascii_lowercase(), dc.dns_name),
        NODE_VIA_GROUP.to_ascii_lowercase(),
    ];
    let node_refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let (code, report) = doctor_with_dc(dc, doctor_setup(generated_spec(dc), &node_refs));
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(check(&report, "spec.domain")["status"], "ok", "{report:#}");
    let nodes_check = check(&report, "spec.nodes");
    assert_eq!(nodes_check["status"], "ok", "{report:#}");
    assert_has(
        nodes_check["message"].as_str().unwrap_or_default(),
        &format!("({NODE_DIRECT}$, {NODE_VIA_GROUP}$)"),
    );
    assert_eq!(report["summary"]["fail"], 0);
}

#[test]
fn doctor_finds_a_wrong_sid_and_a_node_that_may_not_retrieve_the_password() {
    let dc = dc::shared();
    let mut wrong = generated_spec(dc);
    wrong["DomainJoinConfig"]["Sid"] = json!("S-1-5-21-1111111111-2222222222-3333333333");
    let denied = NODE_DENIED.to_ascii_lowercase();
    let (code, report) = doctor_with_dc(dc, doctor_setup(wrong, &[&denied]));
    assert_eq!(code, Some(1), "{report:#}");
    let domain = check(&report, "spec.domain");
    assert_eq!(domain["status"], "fail", "{report:#}");
    assert_has(&domain["details"].to_string(), "DomainJoinConfig.Sid");
    assert!(
        domain["fix"].as_str().is_some_and(|f| !f.is_empty()),
        "{domain}"
    );
    let nodes = check(&report, "spec.nodes");
    assert_eq!(nodes["status"], "fail", "{report:#}");
    assert_has(
        nodes["message"].as_str().unwrap_or_default(),
        &format!("{NODE_DENIED}$: may not retrieve the password of gMSA {GMSA}"),
    );
    assert_has(
        nodes["fix"].as_str().unwrap_or_default(),
        "group-msa-membership add",
    );
    // Every other check passed: exactly these two fail.
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "fail")
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(failed, ["spec.domain", "spec.nodes"], "{report:#}");
}
