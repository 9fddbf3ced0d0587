//! Nothing leaked by the CLI: `gmsa spec from-file | new | validate` and `gmsa review` run on
//! specs whose `HostAccountConfig.PluginInput` holds a sentinel and pods whose env vars, args
//! and annotations hold others. What the CLI writes as diagnostics (stderr), everything
//! `validate` prints and a denied `review`'s decision must never contain a sentinel; only the
//! manifests asked for on stdout (`from-file`/`new`, the mutated pod of an allowed `review`)
//! carry them: that is the product, checked so the test is known to have had the secret.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A valid AWS plugin input (so commands go on to print the spec) carrying a sentinel.
const PLUGIN_SECRET: &str = r#"{"credentialArn":"arn:aws:secretsmanager:us-west-2:123456789012:secret:PLUGIN-SENTINEL-4d2e"}"#;
const POD_SENTINELS: [&str; 4] = [
    "ENV-SENTINEL-8a1f",
    "ARG-SENTINEL-3c9b",
    "ANNOTATION-SENTINEL-71e0",
    "leak-check-image",
];

fn gmsa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gmsa"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("RUST_LOG", "trace")
        .output()
        .expect("run gmsa")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn example_ccg() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/gmsa-cred-spec-ccg.txt");
    let bytes = std::fs::read(path).expect("example");
    let doc = gmsa_crd::read_document(bytes.as_slice()).expect("example reads");
    let mut spec = doc.raw;
    spec["ActiveDirectoryConfig"]["HostAccountConfig"]["PluginInput"] =
        serde_json::json!(PLUGIN_SECRET);
    spec
}

fn utf16le_bom(text: &str) -> Vec<u8> {
    [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

/// What stdout is for a command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stdout {
    /// A manifest the user asked for (the spec, or the mutated pod): it carries the PluginInput
    /// (and, for a pod, the pod); only stderr is checked.
    Product,
    /// Diagnostics only: no secret at all.
    Diagnostics,
}

#[track_caller]
fn assert_quiet(out: &Output, what: &str, rule: Stdout) {
    let stderr = text(&out.stderr);
    let stdout = text(&out.stdout);
    let mut secrets: Vec<&str> = POD_SENTINELS.to_vec();
    secrets.push("PLUGIN-SENTINEL");
    for secret in &secrets {
        assert!(
            !stderr.contains(secret),
            "{what}: stderr contains {secret:?}:\n{stderr}"
        );
        if rule == Stdout::Diagnostics {
            assert!(
                !stdout.contains(secret),
                "{what}: stdout contains {secret:?}:\n{stdout}"
            );
        }
    }
    if rule == Stdout::Product {
        assert!(
            stdout.contains("PLUGIN-SENTINEL-4d2e"),
            "{what}: the output carries the PluginInput: {stdout}"
        );
    }
}

#[test]
fn spec_commands_never_print_the_plugin_input_as_a_diagnostic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = example_ccg();
    let pretty = serde_json::to_string_pretty(&spec).expect("JSON");
    let utf8 = write(dir.path(), "ccg.json", pretty.as_bytes());
    let utf16 = write(
        dir.path(),
        "ccg-utf16.json",
        &utf16le_bom(&pretty.replace('\n', "\r\n")),
    );
    for file in [&utf8, &utf16] {
        let f = file.to_str().expect("path");
        for output in ["yaml", "json", "credspec-json"] {
            let out = gmsa(&["spec", "from-file", f, "-o", output]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            assert_quiet(&out, &format!("from-file {f} -o {output}"), Stdout::Product);
        }
        let out = gmsa(&["spec", "validate", f]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_quiet(&out, &format!("validate {f}"), Stdout::Diagnostics);
    }
    let out = gmsa(&[
        "spec",
        "new",
        "--account",
        "WebApp01",
        "--dns-name",
        "contoso.com",
        "--netbios-name",
        "CONTOSO",
        "--sid",
        "S-1-5-21-2126729477-2524075714-3094792973",
        "--guid",
        "244818ae-87ca-4fcd-92ec-e79e5252348a",
        "--ccg-plugin-guid",
        "859E1386-BDB4-49E8-85C7-3070B13920E1",
        "--ccg-plugin-input",
        PLUGIN_SECRET,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_quiet(&out, "new --ccg-plugin-input", Stdout::Product);

    // Specs with problems: the diagnostics name the field, never its value.
    let mut problems = Vec::new();
    let mut bad = spec.clone();
    bad["DomainJoinConfig"]["Sid"] = serde_json::json!("not-a-sid");
    problems.push(("invalid Sid", bad));
    let mut bad = spec.clone();
    bad["ActiveDirectoryConfig"]["HostAccountConfig"]["PluginGUID"] = serde_json::json!("x");
    problems.push(("invalid PluginGUID", bad));
    let mut bad = spec.clone();
    bad["ActiveDirectoryConfig"]["HostAccountConfig"]["PortableCcgVersion"] =
        serde_json::json!(["1"]);
    problems.push(("wrong type next to it", bad));
    let mut bad = spec.clone();
    bad["ActiveDirectoryConfig"]["HostAccountConfig"]["PluginInput"] =
        serde_json::json!([PLUGIN_SECRET]);
    problems.push(("PluginInput of the wrong type", bad));
    for (name, bad) in problems {
        let file = write(
            dir.path(),
            "bad.json",
            serde_json::to_string_pretty(&bad).expect("JSON").as_bytes(),
        );
        let f = file.to_str().expect("path");
        for args in [vec!["spec", "validate", f], vec!["spec", "from-file", f]] {
            let out = gmsa(&args);
            assert!(!out.status.success(), "{name}: {args:?} fails");
            assert_quiet(&out, &format!("{name}: {args:?}"), Stdout::Diagnostics);
        }
    }
}

#[test]
fn review_prints_no_secret_and_no_pod() {
    let dir = tempfile::tempdir().expect("temp dir");
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).expect("specs dir");
    let manifest = serde_json::json!({
        "apiVersion": "windows.k8s.io/v1", "kind": "GMSACredentialSpec",
        "metadata": {"name": "webapp02"}, "credspec": example_ccg()});
    write(&specs, "webapp02.json", manifest.to_string().as_bytes());
    let policy = write(
        dir.path(),
        "policy.yaml",
        b"- namespace: demo\n  serviceAccount: webapp\n  credspecs: [webapp02]\n",
    );
    let [env, arg, annotation, image] = POD_SENTINELS;
    for (sa, name, allowed) in [
        ("webapp", "webapp02", true),
        ("intruder", "webapp02", false),
        ("webapp", "missing", false),
    ] {
        let pod = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: demo\n  \
             annotations: {{note: {annotation}}}\nspec:\n  serviceAccountName: {sa}\n  \
             containers:\n  - name: app\n    image: {image}\n    args: [--password, {arg}]\n    \
             env: [{{name: DB_PASSWORD, value: {env}}}]\n    securityContext:\n      \
             windowsOptions: {{gmsaCredentialSpecName: {name}}}\n"
        );
        let pod = write(dir.path(), "pod.yaml", pod.as_bytes());
        let out = gmsa(&[
            "review",
            pod.to_str().expect("path"),
            "--credspecs-dir",
            specs.to_str().expect("path"),
            "--authz-policy",
            policy.to_str().expect("path"),
        ]);
        assert_eq!(
            out.status.success(),
            allowed,
            "{sa} {name}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        // Allowed: stdout is the mutated pod (the user's own manifest, with the spec inlined).
        // Denied: only the decision, which must not echo the pod or a spec.
        let rule = if allowed {
            Stdout::Product
        } else {
            Stdout::Diagnostics
        };
        assert_quiet(&out, &format!("review as {sa} naming {name}"), rule);
    }
}
