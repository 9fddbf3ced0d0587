//! The "null" webhook: TLS + HTTP/1.1 keep-alive, reads the whole body, answers a fixed
//! allowed AdmissionReview. The ceiling the real webhook is compared with. Prints
//! `READY https://127.0.0.1:PORT` once listening.

use std::convert::Infallible;
use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const ANSWER: &[u8] =
    br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"","allowed":true}}"#;

/// Null TLS webhook for the benchmark.
#[derive(Parser, Debug)]
struct Args {
    /// Serving certificate (PEM).
    #[arg(long)]
    tls_crt: PathBuf,
    /// Its key (PEM).
    #[arg(long)]
    tls_key: PathBuf,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    https_port: u16,
}

async fn answer(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let _body = req.into_body().collect().await.map(|b| b.to_bytes());
    let mut response = Response::new(Full::new(Bytes::from_static(ANSWER)));
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let acceptor = tokio_rustls::TlsAcceptor::from(gmsa_bench::tls::server_config(
        &args.tls_crt,
        &args.tls_key,
    )?);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.https_port))
        .await
        .with_context(|| format!("bind 127.0.0.1:{}", args.https_port))?;
    println!("READY https://{}", listener.local_addr()?);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), hyper::service::service_fn(answer))
                .await;
        });
    }
}
