//! The `gmsa-webhook` binary: parse the configuration, install the ring crypto provider,
//! start logging, serve until SIGTERM/SIGINT.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config = gmsa_webhook::config::Config::parse_checked();
    // Fails only if a provider is already installed, which is then the same one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Err(e) = gmsa_webhook::logging::init(&config) {
        eprintln!("gmsa-webhook: {e}");
        return ExitCode::FAILURE;
    }
    match gmsa_webhook::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "gmsa-webhook stopped");
            ExitCode::FAILURE
        }
    }
}
