//! The benchmark's fake Kubernetes API server. Prints `READY http://127.0.0.1:PORT` on stdout
//! once listening and serves until killed.

use std::time::Duration;

use clap::Parser;
use gmsa_bench::fake_api::{router, FakeConfig};

/// Fake API server: GMSACredentialSpec list/watch/get and LocalSubjectAccessReview.
#[derive(Parser, Debug)]
struct Args {
    /// Delay before every answer (except the watch stream), in milliseconds.
    #[arg(long, default_value_t = 0.0)]
    delay_ms: f64,
    /// How many credential specs to hold (at least webapp01..webapp03).
    #[arg(long, default_value_t = 100)]
    specs: usize,
    /// Service accounts in namespace `demo` allowed to use webapp01..webapp03: `webapp` when
    /// 1, else `sa-000`, `sa-001`, ... Reviews for anyone else answer "not allowed".
    #[arg(long, default_value_t = 1)]
    service_accounts: usize,
    /// Also write a kubeconfig naming this server as `DIR/kubeconfig`.
    #[arg(long)]
    kubeconfig_dir: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.delay_ms.is_finite() && args.delay_ms >= 0.0,
        "--delay-ms must be a non-negative number of milliseconds"
    );
    let server = gmsa_testkit::FakeApiServer::start(router(FakeConfig {
        delay: Duration::from_secs_f64(args.delay_ms / 1000.0),
        specs: args.specs,
        service_accounts: args.service_accounts,
    }))
    .await;
    if let Some(dir) = &args.kubeconfig_dir {
        server.write_kubeconfig(dir);
    }
    println!("READY {}", server.url());
    std::future::pending::<()>().await;
    Ok(())
}
