//! The chart's `credential.hostAccountConfig.plugin` (aws, azure-key-vault, rancher) renders
//! through the same rules as `gmsa_crd::ccg`: each plugin's good inputs render the GUID and
//! the `PluginInput` the catalogue's builder writes, and the result validates; bad inputs make
//! `helm template` fail with the catalogue's message.
//!
//! Helm 3 comes from [`gmsa_e2e::chart::tools`] (`.ci/install.d/30-helm`); without it the
//! tests fail saying so.

use std::path::Path;
use std::process::Command;

use gmsa_crd::ccg::{self, PluginInput};
use gmsa_e2e::chart::{chart_dir, parse_docs, run, text, tools};
use serde_json::Value;

/// `helm template` of the credential spec with these `hostAccountConfig` settings: the
/// rendered GMSACredentialSpec, or helm's stderr.
fn render(bin: &Path, host: &[(&str, &str)]) -> Result<Value, String> {
    let mut cmd = Command::new(bin);
    cmd.args(["template", "gmsa"])
        .arg(chart_dir())
        .args(["-s", "templates/credentialspec.yaml"]);
    cmd.args(["--set", "credential.enabled=true"]);
    let domain = [
        ("domainJoinConfig.machineAccountName", "WebApp01"),
        ("domainJoinConfig.dnsName", "contoso.com"),
        ("domainJoinConfig.netBiosName", "CONTOSO"),
        (
            "domainJoinConfig.sid",
            "S-1-5-21-2126729477-2524075714-3094792973",
        ),
        (
            "domainJoinConfig.guid",
            "244818ae-87ca-4fcd-92ec-e79e5252348a",
        ),
    ];
    for (k, v) in domain {
        cmd.arg("--set-string").arg(format!("credential.{k}={v}"));
    }
    for (k, v) in host {
        cmd.arg("--set-string")
            .arg(format!("credential.hostAccountConfig.{k}={v}"));
    }
    let out = run(&mut cmd);
    if !out.status.success() {
        return Err(text(&out.stderr));
    }
    let yaml = text(&out.stdout);
    let spec = parse_docs(&yaml)
        .into_iter()
        .find(|v| v["kind"] == "GMSACredentialSpec");
    spec.ok_or_else(|| format!("no GMSACredentialSpec in:\n{yaml}"))
}

const ARN: &str = "arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-reader";
const OBJECT_ID: &str = "244818ae-87ca-4fcd-92ec-e79e5252348a";
const SECRET_URI: &str = "https://mygmsavault.vault.azure.net/secrets/GMSADomainUserCred";

#[test]
fn each_plugin_renders_what_the_catalogue_builds() {
    let tools = tools();
    let bin = tools.helm3();
    let rows: [(&[(&str, &str)], PluginInput); 3] = [
        (
            &[("plugin", "aws"), ("credentialArn", ARN)],
            PluginInput::Aws {
                credential_arn: ARN.into(),
            },
        ),
        (
            &[
                ("plugin", "azure-key-vault"),
                ("objectId", OBJECT_ID),
                ("secretUri", SECRET_URI),
            ],
            PluginInput::AzureKeyVault {
                object_id: OBJECT_ID.into(),
                secret_uri: SECRET_URI.into(),
            },
        ),
        (
            &[
                ("plugin", "rancher"),
                ("accountProviderNamespace", "cattle-windows-gmsa-system"),
                ("readerSecret", "gmsa-reader"),
            ],
            PluginInput::Rancher {
                namespace: "cattle-windows-gmsa-system".into(),
                secret_name: "gmsa-reader".into(),
            },
        ),
    ];
    for (host, input) in rows {
        let rendered = render(bin, host).unwrap_or_else(|e| panic!("{host:?}: {e}"));
        let spec = gmsa_crd::CredSpec::from_value(&rendered["credspec"]).expect("credspec");
        let problems = gmsa_crd::validate(&spec);
        assert!(!gmsa_crd::has_errors(&problems), "{host:?}: {problems:?}");
        let h = &rendered["credspec"]["ActiveDirectoryConfig"]["HostAccountConfig"];
        assert_eq!(h["PluginGUID"], input.plugin().guid, "{host:?}");
        assert_eq!(h["PluginInput"], input.to_plugin_input(), "{host:?}");
        assert_eq!(h["PortableCcgVersion"], "1");
    }
    // No plugin and no pluginGUID: no HostAccountConfig, as before.
    let rendered = render(bin, &[]).expect("renders");
    assert!(rendered["credspec"]["ActiveDirectoryConfig"]
        .get("HostAccountConfig")
        .is_none());
}

/// Each bad input fails `helm template` with the message the catalogue's parser gives for the
/// same input (the AWS check names the plugin's expected form).
#[test]
fn bad_inputs_fail_with_the_catalogue_message() {
    let tools = tools();
    let bin = tools.helm3();
    let message = |plugin: &ccg::Plugin, input: &str| {
        plugin
            .parse(input)
            .expect_err("the catalogue refuses it too")
            .to_string()
    };
    let rows: [(&[(&str, &str)], String); 5] = [
        (
            &[
                ("plugin", "aws"),
                ("credentialArn", "arn:aws:s3:::bucket/x"),
            ],
            ccg::AWS.input_form.to_string(),
        ),
        (
            &[
                ("plugin", "azure-key-vault"),
                ("objectId", "me"),
                ("secretUri", SECRET_URI),
            ],
            message(
                &ccg::AZURE_KEY_VAULT,
                &format!("ObjectId=me;SecretUri={SECRET_URI}"),
            ),
        ),
        (
            &[
                ("plugin", "azure-key-vault"),
                ("objectId", OBJECT_ID),
                ("secretUri", "http://v12.vault.azure.net/secrets/s"),
            ],
            message(
                &ccg::AZURE_KEY_VAULT,
                &format!("ObjectId={OBJECT_ID};SecretUri=http://v12.vault.azure.net/secrets/s"),
            ),
        ),
        (
            &[
                ("plugin", "rancher"),
                ("accountProviderNamespace", "Bad_NS"),
                ("readerSecret", "s"),
            ],
            message(&ccg::RANCHER, "Bad_NS:s"),
        ),
        (
            &[
                ("plugin", "aws"),
                ("credentialArn", ARN),
                ("portableCcgVersion", "2"),
            ],
            "is not the only version ccg.exe knows".to_string(),
        ),
    ];
    for (host, expected) in rows {
        let err = render(bin, host).expect_err("helm template fails");
        assert!(
            err.contains(&expected),
            "{host:?}: expected {expected:?} in:\n{err}"
        );
    }
    let err = render(bin, &[("plugin", "azure")]).expect_err("not in the enum");
    assert!(err.contains("plugin"), "{err}");
}
