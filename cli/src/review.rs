//! `gmsa review POD.yaml`.

use std::process::ExitCode;

/// Arguments of `gmsa review`.
#[derive(clap::Args)]
pub struct ReviewArgs {}

pub fn run(_args: ReviewArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("gmsa review: not built yet")
}
