//! `gmsa`: the operator's tool for GMSA on Kubernetes.

// The doc comments of this crate's argument structs are clap's --help texts, written for a
// terminal (`ldaps://HOST[:PORT]`, `S.N.svc.<domain>`, bare URLs), not rustdoc markup.
#![allow(
    rustdoc::broken_intra_doc_links,
    rustdoc::bare_urls,
    rustdoc::invalid_html_tags
)]

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches as _, Parser, Subcommand};

mod ad;
mod ccg;
mod certs;
mod cluster;
mod doctor;
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
    /// Find why a gMSA pod does not work on the cluster: grouped checks, each with its fix.
    #[command(after_help = doctor::HELP)]
    Doctor(doctor::DoctorArgs),
    /// Print the GMSACredentialSpec CustomResourceDefinition manifest.
    Crd,
    /// Print a shell completion script.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// The command name to show: `kubectl gmsa` when run as the kubectl plugin `kubectl-gmsa`.
fn bin_name(argv0: Option<&std::ffi::OsStr>) -> &'static str {
    let name = argv0
        .map(std::path::Path::new)
        .and_then(std::path::Path::file_stem)
        .and_then(std::ffi::OsStr::to_str);
    if name == Some("kubectl-gmsa") {
        "kubectl gmsa"
    } else {
        "gmsa"
    }
}

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next();
    let name = bin_name(argv0.as_deref());
    let matches = Cli::command().bin_name(name).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Spec(cmd) => spec::run(cmd),
        Command::Certs(cmd) => certs::run(cmd),
        Command::Review(args) => review::run(args),
        Command::Doctor(args) => return doctor::run(args),
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
