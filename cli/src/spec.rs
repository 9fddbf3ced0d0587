//! `gmsa spec ...` and `gmsa crd`.

use std::process::ExitCode;

/// `gmsa spec` subcommands.
#[derive(clap::Subcommand)]
pub enum SpecCommand {}

pub fn run(cmd: SpecCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}

pub fn print_crd() -> anyhow::Result<ExitCode> {
    anyhow::bail!("gmsa crd: not built yet")
}
