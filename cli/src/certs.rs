//! `gmsa certs ...`.

use std::process::ExitCode;

/// `gmsa certs` subcommands.
#[derive(clap::Subcommand)]
pub enum CertsCommand {}

pub fn run(cmd: CertsCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
