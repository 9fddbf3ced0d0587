//! `gmsa doctor` (also `kubectl gmsa doctor`): checks the whole gMSA chain on a cluster and
//! prints each check with its fix (the `gmsa-doctor` crate reads and decides; this file is
//! flags and printing).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use gmsa_certs::duration::{parse_duration, secs};
use gmsa_doctor::{diagnose, gather, probe_from, Options, Target};

use crate::ad::{connect_options, DcBind};
use crate::cluster::ClusterArgs;
use crate::review::{pods_in, read_input};

/// Examples shown after `gmsa doctor --help`.
pub const HELP: &str = "\
Examples:
  # Why does a pod of service account webapp in namespace apps not get spec webapp01?
  gmsa doctor -n apps --service-account webapp --spec webapp01
  # The pod a Deployment would create, as JSON for a script:
  gmsa doctor -n apps --pod deployment.yaml -o json
  # Also check the spec against the domain and each Windows node's computer account:
  gmsa doctor -n apps --spec webapp01 --server ldaps://dc1.contoso.com --ca-file ca.pem \\
    --bind-dn 'reader@CONTOSO.COM' --password-file reader.pw
  # As a kubectl plugin (the binary installed as kubectl-gmsa on $PATH):
  kubectl gmsa doctor -n apps --spec webapp01
Nothing is created: the probe pod is a server-side dry run (dryRun=All).
Exit code: 0 no check failed (warnings allowed), 1 a check failed, 2 doctor could not run
(bad flags, unreadable kubeconfig or --pod file).";

/// Output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Grouped checks with fixes, for people.
    #[default]
    Text,
    /// `{"checks": [{id, group, status, message, details, fix}], "summary": {...}}`.
    Json,
}

/// `gmsa doctor`.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The gMSA pod's namespace (default: the context's namespace).
    #[arg(short = 'n', long, value_name = "NS")]
    namespace: Option<String>,
    /// The pod's service account (default: the --pod's, else `default`).
    #[arg(long, value_name = "NAME")]
    service_account: Option<String>,
    /// The GMSACredentialSpec the pod names (default: the first the --pod names).
    #[arg(long, value_name = "NAME")]
    spec: Option<String>,
    /// A Pod, or a Deployment/StatefulSet/DaemonSet/ReplicaSet/Job/CronJob whose pod template
    /// is sent as the probe (YAML or JSON; `-` for standard input).
    #[arg(long, value_name = "FILE")]
    pod: Option<PathBuf>,
    /// The webhook configurations' name (default: those holding the chart's entry
    /// admission-webhook.windows-gmsa.sigs.k8s.io).
    #[arg(long, value_name = "NAME")]
    webhook_config: Option<String>,
    /// The namespace the chart was installed in; a configuration calling a Service elsewhere
    /// is a warning.
    #[arg(long, value_name = "NS")]
    release_namespace: Option<String>,
    /// A serving certificate ending within this window is a warning (the chart's renewBefore).
    #[arg(long, value_name = "D", default_value = "720h", value_parser = duration_arg)]
    renew_before: Duration,
    /// A Windows node's computer account, when it is not the node name's first label
    /// (upper-cased, at most 15 characters) plus --node-account-suffix. Repeatable.
    #[arg(long = "node-account", value_name = "NODE=ACCOUNT$")]
    node_accounts: Vec<String>,
    /// Appended to a node's name to make its computer account.
    #[arg(long, value_name = "S", default_value = "$")]
    node_account_suffix: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    output: Format,
    /// The bound on each call (API server, webhook, domain controller).
    #[arg(long, value_name = "D", default_value = "10s", value_parser = duration_arg)]
    timeout: Duration,
    /// Also check the spec against this domain controller over LDAP, and whether each
    /// Windows node's computer account may retrieve the gMSA password (the flags of
    /// `gmsa spec verify`): ldaps://HOST[:PORT] or ldap://HOST[:PORT] (StartTLS).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    #[command(flatten)]
    bind: DcBind,
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// Runs `gmsa doctor`: 0 nothing failed, 1 a check failed, 2 doctor could not run.
pub fn run(args: DoctorArgs) -> ExitCode {
    match run_checked(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: gmsa doctor could not run: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run_checked(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(async {
        let mut config = args.cluster.config().await?;
        // What a pod would meet now: a 503 (say, from the service proxy) is a finding, not a
        // reason to retry; each call is bounded by --timeout instead.
        config.default_retry = false;
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let (probe_pod, pod_sa, pod_spec) = match &args.pod {
            Some(path) => {
                let shown = path.display();
                let text = read_input(path).with_context(|| format!("--pod {shown}"))?;
                let (pod, sa, spec) =
                    probe_of(&text, &namespace).with_context(|| format!("--pod {shown}"))?;
                (Some(pod), Some(sa), spec)
            }
            None => (None, None, None),
        };
        let target = Target {
            service_account: args
                .service_account
                .clone()
                .or(pod_sa)
                .unwrap_or_else(|| "default".into()),
            spec: args.spec.clone().or(pod_spec),
            namespace,
            webhook_config: args.webhook_config.clone(),
            release_namespace: args.release_namespace.clone(),
            renew_before_secs: secs(args.renew_before),
            node_accounts: node_accounts(&args.node_accounts)?,
            node_account_suffix: args.node_account_suffix.clone(),
        };
        let ldap = args
            .server
            .as_deref()
            .map(|server| connect_options(server, &args.bind, args.timeout))
            .transpose()?;
        let client = kube::Client::try_from(config).context("build the Kubernetes client")?;
        let opts = Options {
            target,
            probe_pod,
            ldap,
            timeout: args.timeout,
        };
        if args.output == Format::Text {
            eprintln!(
                "gmsa doctor: checking (each call bounded by {}s)…",
                args.timeout.as_secs()
            );
        }
        let report = diagnose(&gather(client, &opts).await);
        let text = match args.output {
            Format::Text => report.to_text(),
            Format::Json => {
                serde_json::to_string_pretty(&report.to_json()).context("render JSON")? + "\n"
            }
        };
        std::io::stdout()
            .write_all(text.as_bytes())
            .context("write the report")?;
        Ok(ExitCode::from(report.exit_code()))
    })
}

/// The probe from a manifest holding one Pod or workload (read as `gmsa review` reads pods).
fn probe_of(
    text: &str,
    namespace: &str,
) -> anyhow::Result<(serde_json::Value, String, Option<String>)> {
    let pods = pods_in(text)?;
    let [pod] = <[_; 1]>::try_from(pods).map_err(|pods| {
        anyhow::anyhow!("holds {} pods or workloads; give exactly one", pods.len())
    })?;
    Ok(probe_from(pod, namespace))
}

fn node_accounts(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((node, account)) if !node.is_empty() && !account.is_empty() => {
                Ok((node.to_string(), account.to_string()))
            }
            _ => bail!("--node-account {p:?}: give NODE=ACCOUNT$, e.g. winnode1=WINNODE1$"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_is_the_pod_a_workload_creates() {
        let tmpl = "metadata: {labels: {app: web}}\n    spec:\n      serviceAccountName: webapp\n      containers: [{name: c, image: i, securityContext: {windowsOptions: {gmsaCredentialSpecName: webapp01}}}]";
        for doc in [
            format!("kind: Deployment\nmetadata: {{name: web}}\nspec:\n  template:\n    {tmpl}\n"),
            format!("kind: CronJob\nmetadata: {{name: web}}\nspec:\n  jobTemplate:\n   spec:\n    template:\n     {}\n", tmpl.replace("\n    ", "\n     ")),
        ] {
            let (pod, sa, spec) = probe_of(&doc, "apps").expect(&doc);
            assert_eq!(pod["metadata"]["name"], gmsa_doctor::PROBE_NAME);
            assert_eq!(pod["metadata"]["namespace"], "apps");
            assert!(pod["metadata"].get("generateName").is_none());
            assert_eq!(pod["metadata"]["labels"]["app"], "web");
            assert_eq!(sa, "webapp");
            assert_eq!(spec.as_deref(), Some("webapp01"));
        }
        let err = probe_of("kind: Service\nspec: {}\n", "x").expect_err("refused");
        assert!(err.to_string().contains("holds 0 pods"), "{err}");
        let err = probe_of("kind: Deployment\nmetadata: {name: d}\nspec: {}\n", "x")
            .expect_err("refused");
        assert!(
            format!("{err:#}").contains("has no pod template"),
            "{err:#}"
        );
    }
}
