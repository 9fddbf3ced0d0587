//! `gmsa`: the operator's tool for GMSA on Kubernetes.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod ad;
mod ccg;
mod certs;
mod explain;
mod output;
mod review;
mod spec;

/// Tooling for Windows Group Managed Service Accounts (gMSA) on Kubernetes.
#[derive(Parser)]
#[command(name = "gmsa", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Credential specs: build, convert, validate, check against the domain.
    #[command(subcommand)]
    Spec(spec::SpecCommand),
    /// Serving certificates for the webhook through the certificates.k8s.io/v1 CSR API.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Run the webhook's admission rules on a pod and print the decision.
    Review(review::ReviewArgs),
    /// Print the GMSACredentialSpec CustomResourceDefinition manifest.
    Crd,
    /// Print a shell completion script.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Spec(cmd) => spec::run(cmd),
        Command::Certs(cmd) => certs::run(cmd),
        Command::Review(args) => review::run(args),
        Command::Crd => spec::print_crd(),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "gmsa", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
