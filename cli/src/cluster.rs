//! How to reach the cluster, as kubectl does (`--kubeconfig`, `--context`), shared by every
//! command that talks to the API server.

use std::path::PathBuf;

use anyhow::Context as _;

/// `--kubeconfig` and `--context`.
#[derive(clap::Args, Clone, Debug)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

impl ClusterArgs {
    /// The client configuration these flags select.
    pub async fn config(&self) -> anyhow::Result<kube::Config> {
        let options = kube::config::KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path)
                    .with_context(|| format!("read kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .with_context(|| format!("load kubeconfig {}", path.display()))?
            }
            None if self.context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .context("load the kubeconfig (--context given)")?,
            None => kube::Config::infer().await.context(
                "find a cluster: no --kubeconfig, no $KUBECONFIG or ~/.kube/config, and not in a pod",
            )?,
        };
        Ok(config)
    }
}
