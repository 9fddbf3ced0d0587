//! `gmsa spec from-file | new | validate` and `gmsa crd`, run as the built binary: stdout,
//! stderr, exit code, nothing printed (or applied) on error, and `--apply` as a server-side
//! apply against the fake API server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use axum::Router;
use gmsa_testkit::{apply_recorder, AppliedPatch, FakeApiServer};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> PathBuf {
    root().join("crd/tests/fixtures").join(name)
}

fn gmsa(args: &[&str]) -> Output {
    gmsa_with(args, None, &[])
}

fn gmsa_with(args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gmsa"));
    cmd.args(args)
        .current_dir(root())
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run gmsa");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("gmsa output")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("stderr is UTF-8")
}

/// Exit code 1, nothing on stdout, and `fragment` in stderr.
#[track_caller]
fn assert_refused(out: &Output, fragment: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    assert_eq!(stdout(out), "", "nothing written on error");
    assert!(stderr(out).contains(fragment), "{}", stderr(out));
}

fn example(name: &str) -> String {
    std::fs::read_to_string(root().join("examples").join(name)).expect("read example")
}

#[test]
fn readme_main_command_prints_the_example_manifest() {
    let out = gmsa(&["spec", "from-file", "examples/gmsa-cred-spec.txt"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), example("credspecs/webapp01.yaml"));
    assert_eq!(stderr(&out), "", "no problems to report");
    let ccg = gmsa(&["spec", "from-file", "examples/gmsa-cred-spec-ccg.txt"]);
    assert!(ccg.status.success(), "{}", stderr(&ccg));
    assert_eq!(stdout(&ccg), example("credspecs/webapp02.yaml"));
}

#[test]
fn every_encoding_and_manifest_version_gives_the_same_v1_manifest() {
    let want = example("credspecs/webapp01.yaml");
    for name in [
        "credspec-utf8-crlf.json",
        "credspec-utf8-bom.json",
        "credspec-utf16le-bom-crlf.json",
        "credspec-utf16be-bom.json",
        "manifest-v1alpha1.yaml",
        "manifest-v1-utf16le-crlf.yaml",
    ] {
        let path = fixture(name);
        let out = gmsa(&["spec", "from-file", path.to_str().expect("utf-8 path")]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(stdout(&out), want, "{name}");
    }
}

#[test]
fn reads_standard_input() {
    let input = std::fs::read(fixture("credspec-utf16le-bom-crlf.json")).expect("read");
    let out = gmsa_with(&["spec", "from-file", "-"], Some(&input), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), example("credspecs/webapp01.yaml"));
}

#[test]
fn output_formats_and_name_override() {
    let out = gmsa(&[
        "spec",
        "from-file",
        "examples/gmsa-cred-spec.txt",
        "-o",
        "json",
        "--name",
        "web-app",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON output");
    assert_eq!(v["apiVersion"], "windows.k8s.io/v1");
    assert_eq!(v["kind"], "GMSACredentialSpec");
    assert_eq!(v["metadata"]["name"], "web-app");
    assert_eq!(v["credspec"]["DomainJoinConfig"]["NetBiosName"], "CONTOSO");

    let out = gmsa(&[
        "spec",
        "from-file",
        "examples/gmsa-cred-spec.txt",
        "-o",
        "credspec-json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON output");
    let want: serde_json::Value =
        serde_json::from_str(&example("gmsa-cred-spec.txt")).expect("example JSON");
    assert_eq!(got, want);
}

#[test]
fn bad_inputs_fail_naming_the_file_and_print_nothing() {
    let rows = [
        ("bad-empty.txt", "is empty"),
        ("bad-truncated.json", "is not valid JSON"),
        (
            "bad-configmap.yaml",
            "is a ConfigMap (v1), not a GMSACredentialSpec",
        ),
        ("bad-manifest-no-credspec.yaml", "without `credspec`"),
        ("bad-garbage.bin", "is not text"),
        (
            "bad-utf16le-no-bom.json",
            "UTF-16 without a byte-order mark",
        ),
        (
            "bad-wrong-type.json",
            "`DomainJoinConfig.Sid`: invalid type: integer",
        ),
        ("does-not-exist.json", "cannot open"),
    ];
    for (name, fragment) in rows {
        let path = fixture(name);
        let shown = path.to_str().expect("utf-8 path");
        let out = gmsa(&["spec", "from-file", shown]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert_eq!(stdout(&out), "", "{name}: nothing written on error");
        let err = stderr(&out);
        assert!(err.contains(shown), "{name}: names the file: {err}");
        assert!(err.contains(fragment), "{name}: {err}");
    }
}

#[test]
fn a_50_mb_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.txt");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(50 * 1024 * 1024).expect("50 MB sparse file");
    let started = std::time::Instant::now();
    let out = gmsa(&["spec", "from-file", path.to_str().expect("utf-8 path")]);
    assert_refused(&out, "is larger than 1048576 bytes");
    assert!(started.elapsed().as_secs() < 10);
}

#[test]
fn validation_errors_are_listed_with_paths_and_nothing_is_printed() {
    let path = fixture("invalid-spec.json");
    let shown = path.to_str().expect("utf-8 path");
    let out = gmsa(&["spec", "from-file", shown]);
    assert_refused(&out, "2 error(s) in the credential spec; nothing written");
    let err = stderr(&out);
    for line in [
        format!("{shown}: error: DomainJoinConfig.Sid: \"S-1-5-21-2126729477-2524075714-3094792973-1104\" is an account SID"),
        format!("{shown}: error: DomainJoinConfig.Guid: \"not-a-guid\" is not a GUID"),
        format!("{shown}: warning: ActiveDirectoryConfig.GroupManagedServiceAccounts[1].Scope: \"FABRIKAM\" matches neither"),
        format!("{shown}: 2 error(s) in the credential spec; nothing written"),
    ] {
        assert!(err.contains(&line), "missing {line:?} in:\n{err}");
    }

    let forced = gmsa(&["spec", "from-file", shown, "--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(stdout(&forced).contains("Guid: not-a-guid"));
    assert!(stderr(&forced).contains("error: DomainJoinConfig.Sid"));
}

#[test]
fn manifest_paths_start_at_credspec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.yaml");
    let text = example("credspecs/webapp01.yaml").replace("- ActiveDirectory", "- Other");
    std::fs::write(&path, text).expect("write");
    let out = gmsa(&["spec", "validate", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(": error: credspec.CmsPlugins: does not contain \"ActiveDirectory\""),
        "{}",
        stdout(&out)
    );
}

#[test]
fn bad_names_are_refused() {
    let out = gmsa(&[
        "spec",
        "from-file",
        "examples/gmsa-cred-spec.txt",
        "--name",
        "Web_App",
    ]);
    assert_refused(&out, "--name: \"Web_App\" is not a valid resource name");
}

/// `gmsa spec new` for an account of contoso.com with `sid`, plus `extra` arguments.
fn spec_new(account: &str, sid: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "spec",
        "new",
        "--account",
        account,
        "--dns-name",
        "contoso.com",
        "--netbios-name",
        "CONTOSO",
        "--sid",
        sid,
        "--guid",
        "244818ae-87ca-4fcd-92ec-e79e5252348a",
    ];
    args.extend_from_slice(extra);
    gmsa(&args)
}

const CONTOSO_SID: &str = "S-1-5-21-2126729477-2524075714-3094792973";

#[test]
fn spec_new_builds_what_new_credentialspec_would() {
    let out = spec_new("WebApp01", CONTOSO_SID, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), example("credspecs/webapp01.yaml"));

    // The AWS plugin's input as the ECS developer guide writes it, a JSON document in a string;
    // the same spec by class id and raw input.
    let arn = "arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-plugin-input";
    let raw = format!(r#"{{"credentialArn":"{arn}"}}"#);
    for ccg in [
        vec!["--ccg", "aws", "--credential-arn", arn],
        vec![
            "--ccg-plugin-guid",
            "859E1386-BDB4-49E8-85C7-3070B13920E1",
            "--ccg-plugin-input",
            &raw,
        ],
    ] {
        let out = spec_new("WebApp02", CONTOSO_SID, &ccg);
        assert!(out.status.success(), "{ccg:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), example("credspecs/webapp02.yaml"), "{ccg:?}");
    }
}

/// Each known plugin: build with `--ccg`, the HostAccountConfig is the vendor's form, and the
/// output validates and converts back unchanged (build → validate → from-file).
#[test]
fn spec_new_ccg_builds_each_plugin_and_round_trips() {
    let rows: [(&[&str], &str, &str); 3] = [
        (
            &["--ccg", "aws", "--credential-arn", "arn:aws:ssm:eu-west-1:123456789012:parameter/gmsa"],
            "{859E1386-BDB4-49E8-85C7-3070B13920E1}",
            r#"{"credentialArn":"arn:aws:ssm:eu-west-1:123456789012:parameter/gmsa"}"#,
        ),
        (
            &[
                "--ccg",
                "azure-key-vault",
                "--object-id",
                "244818ae-87ca-4fcd-92ec-e79e5252348a",
                "--secret-uri",
                "https://mygmsavault.vault.azure.net/secrets/GMSADomainUserCred",
            ],
            "{CCC2A336-D7F3-4818-A213-272B7924213E}",
            "ObjectId=244818ae-87ca-4fcd-92ec-e79e5252348a;SecretUri=https://mygmsavault.vault.azure.net/secrets/GMSADomainUserCred",
        ),
        (
            &["--ccg", "rancher", "--account-provider-namespace", "cattle-windows-gmsa-system", "--reader-secret", "gmsa-reader"],
            "{E4781092-F116-4B79-B55E-28EB6A224E26}",
            "cattle-windows-gmsa-system:gmsa-reader",
        ),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    for (flags, guid, input) in rows {
        let mut args = flags.to_vec();
        args.extend(["--additional-account", "Batch01@CONTOSO", "-o", "json"]);
        let out = spec_new("WebApp02", CONTOSO_SID, &args);
        assert!(out.status.success(), "{flags:?}: {}", stderr(&out));
        let built: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        let ad = &built["credspec"]["ActiveDirectoryConfig"];
        assert_eq!(
            ad["HostAccountConfig"],
            serde_json::json!({"PortableCcgVersion": "1", "PluginGUID": guid, "PluginInput": input}),
            "{flags:?}"
        );
        assert_eq!(
            ad["GroupManagedServiceAccounts"]
                .as_array()
                .expect("accounts")[2..4],
            [
                serde_json::json!({"Name": "Batch01", "Scope": "contoso.com"}),
                serde_json::json!({"Name": "Batch01", "Scope": "CONTOSO"})
            ],
            "NAME@THIS-DOMAIN writes both scopes"
        );
        let file = dir.path().join("built.json");
        std::fs::write(&file, stdout(&out)).expect("write");
        let file = file.to_str().expect("UTF-8 path");
        let checked = gmsa(&["spec", "validate", file]);
        assert_eq!(
            checked.status.code(),
            Some(0),
            "{flags:?}: {}",
            stdout(&checked)
        );
        assert_eq!(stdout(&checked), format!("{file}: ok\n"));
        let back = gmsa(&["spec", "from-file", file, "-o", "json"]);
        assert!(back.status.success(), "{}", stderr(&back));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&stdout(&back)).expect("JSON"),
            built
        );
    }
}

#[test]
fn spec_new_ccg_refuses_bad_inputs_with_the_catalogue_message() {
    let rows: [(&[&str], &str); 5] = [
        (
            &[
                "--ccg",
                "aws",
                "--credential-arn",
                "arn:aws:s3:::bucket/secret",
            ],
            "--ccg aws: credentialArn names neither Secrets Manager",
        ),
        (
            &[
                "--ccg",
                "azure-key-vault",
                "--object-id",
                "me",
                "--secret-uri",
                "https://v12.vault.azure.net/secrets/s",
            ],
            "--ccg azure-key-vault: ObjectId is not a GUID",
        ),
        (
            &[
                "--ccg",
                "azure-key-vault",
                "--object-id",
                "244818ae-87ca-4fcd-92ec-e79e5252348a",
                "--secret-uri",
                "http://v12.vault.azure.net/secrets/s",
            ],
            "SecretUri is not an https Key Vault secret URL",
        ),
        (
            &[
                "--ccg",
                "rancher",
                "--account-provider-namespace",
                "ns:x",
                "--reader-secret",
                "s",
            ],
            "--ccg rancher: it is not exactly two parts",
        ),
        (
            &[
                "--ccg",
                "rancher",
                "--account-provider-namespace",
                "ns",
                "--reader-secret",
                "s",
                "--credential-arn",
                "x",
            ],
            "--credential-arn does not apply to --ccg rancher",
        ),
    ];
    for (flags, fragment) in rows {
        assert_refused(&spec_new("WebApp02", CONTOSO_SID, flags), fragment);
    }
    // Raw input for a known plugin goes through the same rules, in validation.
    let raw = [
        "--ccg-plugin-guid",
        "859e1386-bdb4-49e8-85c7-3070b13920e1",
        "--ccg-plugin-input",
        "not json",
    ];
    assert_refused(
        &spec_new("WebApp02", CONTOSO_SID, &raw),
        "error: ActiveDirectoryConfig.HostAccountConfig.PluginInput: is not what the AWS CCG plugin (--ccg aws) reads",
    );
}

/// `gmsa spec explain FILE`: the AWS example names the plugin, the ARN it fetches and the
/// node checklist; the stable JSON fields; a domain-joined spec says so; a spec with an
/// unreadable input exits 1 with the catalogue's message and never prints the input.
#[test]
fn spec_explain_a_file() {
    let out = gmsa(&["spec", "explain", "examples/gmsa-cred-spec-ccg.txt"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for fragment in [
        "not domain-joined: ccg.exe loads CCG plugin {859E1386-BDB4-49E8-85C7-3070B13920E1} (AWS CCG plugin)",
        "credentialArn: arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-plugin-input",
        "gMSA: WebApp02 (scope CONTOSO)",
        "[ ] the node's IAM role may call secretsmanager:GetSecretValue",
        "Microsoft-Windows-Containers-CCG/Admin",
    ] {
        assert!(text.contains(fragment), "{fragment:?} in:\n{text}");
    }

    let out = gmsa(&[
        "spec",
        "explain",
        "examples/gmsa-cred-spec.txt",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let keys: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "accounts",
            "check_on_node",
            "domain",
            "mode",
            "node_checklist",
            "plugin",
            "problems",
            "source",
            "valid"
        ]
    );
    assert_eq!(json["mode"], "domain-joined");
    assert_eq!(json["plugin"], serde_json::Value::Null);
    assert_eq!(json["domain"]["netbios_name"], "CONTOSO");

    let dir = tempfile::tempdir().expect("temp dir");
    let bad = std::fs::read_to_string(root().join("examples/gmsa-cred-spec-ccg.txt"))
        .expect("example")
        .replace(
            r#""{\"credentialArn\":\"arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-plugin-input\"}""#,
            r#""SENTINEL-hunter2""#,
        );
    assert!(bad.contains("SENTINEL-hunter2"));
    let file = dir.path().join("bad.json");
    std::fs::write(&file, bad).expect("write");
    let out = gmsa(&[
        "spec",
        "explain",
        file.to_str().expect("UTF-8"),
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(json["plugin"]["key"], "aws");
    assert_eq!(json["valid"], false);
    assert!(json["problems"][0]
        .as_str()
        .expect("problem")
        .contains("is not what the AWS CCG plugin"));
    assert!(!stdout(&out).contains("hunter2") && !stderr(&out).contains("hunter2"));
}

/// `gmsa spec explain NAME`: the spec comes from the cluster of the kubeconfig (testkit's fake).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_explain_a_name_from_the_cluster() {
    let api = gmsa_testkit::crd_api::CrdApi::from_capture();
    let credspec = serde_json::json!({
        "CmsPlugins": ["ActiveDirectory"],
        "DomainJoinConfig": {"Sid": CONTOSO_SID, "MachineAccountName": "WebApp03",
            "Guid": "244818ae-87ca-4fcd-92ec-e79e5252348a", "DnsTreeName": "contoso.com",
            "DnsName": "contoso.com", "NetBiosName": "CONTOSO"},
        "ActiveDirectoryConfig": {
            "GroupManagedServiceAccounts": [{"Name": "WebApp03", "Scope": "contoso.com"},
                                            {"Name": "WebApp03", "Scope": "CONTOSO"}],
            "HostAccountConfig": {"PortableCcgVersion": "1",
                "PluginGUID": "{CCC2A336-D7F3-4818-A213-272B7924213E}",
                "PluginInput": "ObjectId=244818ae-87ca-4fcd-92ec-e79e5252348a;SecretUri=https://myvault.vault.azure.net/secrets/reader"}}
    });
    api.apply("webapp03", Some(credspec));
    let server = FakeApiServer::start(api.router()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = server.write_kubeconfig(dir.path());
    let out = tokio::task::spawn_blocking(move || {
        gmsa_with(
            &["spec", "explain", "webapp03", "-o", "json"],
            None,
            &[("KUBECONFIG", &kubeconfig)],
        )
    })
    .await
    .expect("join");
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(json["source"], "GMSACredentialSpec webapp03");
    assert_eq!(json["plugin"]["key"], "azure-key-vault");
    assert_eq!(
        json["plugin"]["input"]["SecretUri"],
        "https://myvault.vault.azure.net/secrets/reader"
    );
    assert_eq!(json["accounts"][0]["name"], "WebApp03");
}

#[test]
fn spec_new_refuses_a_user_sid() {
    let out = spec_new("WebApp01", "S-1-5-21-1-2-3-1104", &[]);
    assert_refused(&out, "gmsa spec new: error: DomainJoinConfig.Sid");
}

#[test]
fn validate_exit_codes_and_report() {
    let good = gmsa(&[
        "spec",
        "validate",
        "examples/gmsa-cred-spec.txt",
        "examples/credspecs/webapp02.yaml",
    ]);
    assert_eq!(good.status.code(), Some(0), "{}", stderr(&good));
    assert_eq!(
        stdout(&good),
        "examples/gmsa-cred-spec.txt: ok\nexamples/credspecs/webapp02.yaml: ok\n"
    );

    let invalid = fixture("invalid-spec.json");
    let empty = fixture("bad-empty.txt");
    let out = gmsa(&[
        "spec",
        "validate",
        "examples/gmsa-cred-spec.txt",
        invalid.to_str().expect("utf-8"),
        empty.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("examples/gmsa-cred-spec.txt: ok"), "{text}");
    assert!(text.contains("error: DomainJoinConfig.Guid"), "{text}");
    assert!(text.contains("bad-empty.txt: is empty"), "{text}");
    assert!(
        stderr(&out).contains("2 of 3 file(s) have errors"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn crd_prints_the_checked_in_manifest() {
    let out = gmsa(&["crd"]);
    assert!(out.status.success());
    let checked_in =
        std::fs::read_to_string(root().join("charts/gmsa/crds/gmsa-credentialspec-crd.yaml"))
            .expect("read CRD");
    assert_eq!(stdout(&out), checked_in);
}

#[test]
fn help_shows_examples() {
    for cmd in [["spec", "from-file"], ["spec", "new"], ["spec", "validate"]] {
        let out = gmsa(&[cmd[0], cmd[1], "--help"]);
        assert!(out.status.success());
        assert!(stdout(&out).contains("Examples:"), "{cmd:?}");
        assert!(
            stdout(&out).contains(&format!("gmsa spec {}", cmd[1])),
            "{cmd:?}"
        );
    }
}

async fn apply_server() -> (FakeApiServer, Arc<Mutex<Vec<AppliedPatch>>>) {
    let (router, seen) = apply_recorder();
    (FakeApiServer::start(router).await, seen)
}

/// Runs gmsa with a kubeconfig that points at `server` (off the async runtime, so the fake
/// server keeps answering while the binary runs).
async fn gmsa_against(server: &FakeApiServer, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = server.write_kubeconfig(dir.path());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        gmsa_with(&args, None, &[("KUBECONFIG", &config)])
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_server_side_applies_as_field_manager_gmsa() {
    let (server, seen) = apply_server().await;
    let apply = [
        "spec",
        "from-file",
        "examples/gmsa-cred-spec.txt",
        "--apply",
    ];
    let out = gmsa_against(&server, &apply).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "gmsacredentialspec.windows.k8s.io/webapp01 serverside-applied\n"
    );
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].content_type, "application/apply-patch+yaml");
    assert!(
        seen[0].query.split('&').any(|p| p == "fieldManager=gmsa"),
        "{}",
        seen[0].query
    );
    assert!(!seen[0].query.contains("force"), "{}", seen[0].query);
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).expect("JSON body");
    let want: serde_json::Value =
        serde_json::from_str(&example("gmsa-cred-spec.txt")).expect("example");
    assert_eq!(body["credspec"], want);
    assert_eq!(body["apiVersion"], "windows.k8s.io/v1");
    assert_eq!(body["metadata"]["name"], "webapp01");
    let path = "/apis/windows.k8s.io/v1/gmsacredentialspecs/webapp01";
    assert_eq!(server.count("PATCH", path), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_force_and_refusal() {
    let (server, seen) = apply_server().await;
    let invalid = fixture("invalid-spec.json");
    let invalid = invalid.to_str().expect("utf-8");
    let refused = gmsa_against(&server, &["spec", "from-file", invalid, "--apply"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        server.requests().is_empty(),
        "nothing applied on validation errors"
    );

    let webapp02 = "examples/credspecs/webapp02.yaml";
    let forced = gmsa_against(
        &server,
        &["spec", "from-file", webapp02, "--apply", "--force"],
    )
    .await;
    assert!(forced.status.success(), "{}", stderr(&forced));
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].query.split('&').any(|p| p == "force=true"),
        "{}",
        seen[0].query
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_failure_says_what_to_do() {
    let server = FakeApiServer::start(Router::new()).await;
    let apply = [
        "spec",
        "from-file",
        "examples/gmsa-cred-spec.txt",
        "--apply",
    ];
    let out = gmsa_against(&server, &apply).await;
    assert_refused(
        &out,
        "server-side applying GMSACredentialSpec webapp01 (is the CRD installed?",
    );
}
