//! The adversarial clients: slowloris and body tricklers, idle connections, bodies over the
//! limit, old TLS versions.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::load::{Ctx, Phase};
use crate::{lock, IDLE_TIMEOUT, MAX_BODY};

#[derive(Default)]
pub struct SlowStats {
    pub opened: u64,
    pub cut: u64,
    pub longest_held: Duration,
    pub answered_408: u64,
}

/// Keeps one slow client alive at all times: partial headers (`trickle_body == false`) or a
/// body trickled one byte per 200 ms. Records how long the server let each one hold on.
pub async fn slow_client(ctx: Arc<Ctx>, trickle_body: bool, stats: Arc<Mutex<SlowStats>>) {
    while !ctx.stop_all.load(Ordering::Relaxed) {
        let Ok((mut tls, _)) = ctx.client.tls(false).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let opened = Instant::now();
        lock(&stats).opened += 1;
        let head = if trickle_body {
            "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: 5000\r\n\r\n"
        } else {
            "POST /validate HTTP/1.1\r\nHost: localhost\r\n"
        };
        if tls.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        let mut buf = [0u8; 512];
        let mut got = Vec::new();
        let cut = loop {
            tokio::select! {
                read = tls.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break true,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                },
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    let byte: &[u8] = if trickle_body { b" " } else { b"X" };
                    if tls.write_all(byte).await.is_err() {
                        break true;
                    }
                }
            }
            if opened.elapsed() > Duration::from_secs(30) {
                break false;
            }
        };
        let mut s = lock(&stats);
        if cut {
            s.cut += 1;
        }
        if got.starts_with(b"HTTP/1.1 408") {
            s.answered_408 += 1;
        }
        s.longest_held = s.longest_held.max(opened.elapsed());
    }
}

/// Opens HTTP/1.1 and HTTP/2 connections, sends one review on each, then waits for the server
/// to close them; returns the close delays after the last answer.
pub async fn idle_connections(ctx: &Ctx, each: usize) -> Vec<(bool, Option<Duration>)> {
    let mut waits = Vec::new();
    for i in 0..2 * each {
        let h2 = i % 2 == 1;
        let ctx_ok = match ctx.client.connect(h2).await {
            Ok(mut conn) => {
                if ctx.one(&mut conn, Phase::Fixed).await {
                    Some(conn)
                } else {
                    None
                }
            }
            Err(_) => None,
        };
        waits.push((h2, ctx_ok, Instant::now()));
    }
    let mut out = Vec::new();
    for (h2, conn, answered) in waits {
        let Some(conn) = conn else {
            out.push((h2, None));
            continue;
        };
        let mut closed = conn.closed.clone();
        let limit = IDLE_TIMEOUT + Duration::from_secs(5);
        let result = tokio::time::timeout(limit, closed.wait_for(|c| *c)).await;
        out.push((h2, result.ok().map(|_| answered.elapsed())));
        drop(conn);
    }
    out
}

/// Sends the head of a request over the limit and up to `send_at_most` body bytes; returns
/// the status line and how many body bytes were written when it came.
pub async fn oversized(ctx: &Ctx, chunked: bool) -> anyhow::Result<(String, usize)> {
    let (tls, _) = ctx.client.tls(false).await?;
    let (mut read, mut write) = tokio::io::split(tls);
    let declared = 16 * MAX_BODY;
    let head = if chunked {
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
            .to_string()
    } else {
        format!(
            "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {declared}\r\n\r\n"
        )
    };
    write.write_all(head.as_bytes()).await?;
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    let writer = tokio::spawn(async move {
        let chunk = vec![b' '; 16 * 1024];
        let mut sent = 0usize;
        while sent < declared {
            let frame = if chunked {
                [
                    format!("{:x}\r\n", chunk.len()).as_bytes(),
                    &chunk[..],
                    b"\r\n",
                ]
                .concat()
            } else {
                chunk.clone()
            };
            if write.write_all(&frame).await.is_err() {
                break;
            }
            sent += chunk.len();
            counter.store(sent as u64, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(20), read.read(&mut buf))
        .await
        .context("no answer to the oversized body within 20s")??;
    let at = written.load(Ordering::Relaxed) as usize;
    writer.abort();
    let status = String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    Ok((status, at))
}

/// `openssl s_client` with `flag` (`-tls1`, `-tls1_1`): whether the handshake succeeded.
/// `None` when openssl is not installed.
pub fn openssl_handshake(port: u16, flag: &str) -> Option<bool> {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            flag,
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(out.status.success() && text.contains("Cipher is") && !text.contains("Cipher is (NONE)"))
}
