//! Early answers (413, 415, 405) to a client still sending its body, served for real on
//! loopback with real TLS: a raw HTTP/2 client (the `h2` crate, ALPN h2, with the flow control
//! and stream resets visible) and hand-written HTTP/1.1. The client must see the status and
//! the body and, when the rest of the body fits in what the server drains, finish its upload
//! without a reset (curl 7.88 reports any reset during the upload as a failure with no status).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::Ca;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1024 * 1024;

struct Fixture {
    _dir: tempfile::TempDir,
    ca: Ca,
    webhook: gmsa_webhook::Webhook,
}

/// A webhook with `--max-body-bytes 1MiB`: the rest of a body is drained up to 2 MiB. The
/// server's HTTP/2 stream window is 1 MiB, so a 1.5 MiB upload only completes if the server
/// reads past what it answered on.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new();
    let (cert, key) = common::write_leaf(dir.path(), &ca.leaf(3));
    let webhook = common::start(&common::config(&cert, &key, &["--max-body-bytes", "1MiB"])).await;
    Fixture {
        _dir: dir,
        ca,
        webhook,
    }
}

/// What the client saw of one upload.
#[derive(Debug)]
struct Upload {
    status: u16,
    body: String,
    /// Bytes of the request body the server let the client send (flow control).
    sent: usize,
    /// Why the upload stopped before its end: the stream's reset (by either side), or
    /// another error. `None` when every byte went out with END_STREAM.
    cut: Option<Result<h2::Reason, h2::Error>>,
}

/// One request over a fresh HTTP/2 connection: `len` bytes of body, with a declared
/// `content-length` or without (then the server learns the size only by reading).
async fn h2_upload(
    addr: SocketAddr,
    ca_pem: &str,
    method: &str,
    content_type: &str,
    len: usize,
    declare_length: bool,
) -> Upload {
    let config = common::client_config(
        ca_pem,
        &[b"h2"],
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    );
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").expect("name"),
            tcp,
        )
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (client, connection) = h2::client::handshake(tls).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("h2 ready");
    let mut request = hyper::Request::builder()
        .method(method)
        .uri("https://localhost/validate")
        .header("content-type", content_type);
    if declare_length {
        request = request.header("content-length", len.to_string());
    }
    let (response, mut stream) = client
        .send_request(request.body(()).expect("request"), false)
        .expect("send headers");

    let sender = tokio::spawn(async move {
        let mut sent = 0;
        while sent < len {
            stream.reserve_capacity((len - sent).min(64 * 1024));
            let granted = match std::future::poll_fn(|cx| stream.poll_capacity(cx)).await {
                Some(Ok(n)) => n,
                Some(Err(e)) => return (sent, Some(Err(e))),
                // The stream can take no more: it was reset.
                None => break,
            };
            let n = granted.min(len - sent);
            let last = sent + n == len;
            if let Err(e) = stream.send_data(Bytes::from(vec![b'x'; n]), last) {
                return (sent, Some(Err(e)));
            }
            sent += n;
        }
        if sent == len {
            return (sent, None);
        }
        let reset = std::future::poll_fn(|cx| stream.poll_reset(cx)).await;
        (sent, Some(reset))
    });

    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("an answer in time")
        .expect("an answer, not a stream error");
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("the answer's body arrives whole");
        let _ = body.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    let (sent, cut) = tokio::time::timeout(Duration::from_secs(5), sender)
        .await
        .expect("the upload ends (completed or reset) in time")
        .expect("sender task");
    Upload {
        status,
        body: String::from_utf8(text).expect("UTF-8 body"),
        sent,
        cut,
    }
}

const TOO_LARGE: &str = "request body larger than --max-body-bytes (1048576 bytes)\n";

#[tokio::test]
async fn http2_early_answers_let_the_client_finish_its_upload() {
    let f = fixture().await;
    let addr = f.webhook.https_addr();
    let len = MIB + MIB / 2;
    let cases = [
        // Declared over the limit: answered before a byte is read, then drained.
        ("POST", "application/json", true, 413, TOO_LARGE),
        // No length: 413 once the limit is crossed, the rest drained.
        ("POST", "application/json", false, 413, TOO_LARGE),
        ("POST", "text/plain", true, 415, ""),
        ("PUT", "application/json", true, 405, ""),
    ];
    for (method, content_type, declare_length, status, body) in cases {
        let what = format!("{method} {content_type} declared={declare_length}");
        let upload = h2_upload(addr, &f.ca.pem, method, content_type, len, declare_length).await;
        assert_eq!(upload.status, status, "{what}: {upload:?}");
        assert_eq!(upload.body, body, "{what}");
        assert!(
            upload.cut.is_none(),
            "{what}: the upload was cut: {upload:?}"
        );
        assert_eq!(upload.sent, len, "{what}");
    }
    f.webhook.shutdown().await;
}

#[tokio::test]
async fn http2_body_past_the_drain_budget_is_reset_with_no_error_after_the_answer() {
    let f = fixture().await;
    // 3 MiB declared: more than twice the limit, so not read at all.
    let upload = h2_upload(
        f.webhook.https_addr(),
        &f.ca.pem,
        "POST",
        "application/json",
        3 * MIB,
        true,
    )
    .await;
    assert_eq!(upload.status, 413, "{upload:?}");
    assert_eq!(upload.body, TOO_LARGE);
    // What Go's client (the API server's) reads as "stop sending, the answer stands".
    assert!(
        matches!(upload.cut, Some(Ok(h2::Reason::NO_ERROR))),
        "{upload:?}"
    );
    assert!(upload.sent < 3 * MIB, "{upload:?}");
    f.webhook.shutdown().await;
}

/// Reads one HTTP/1.1 response (head and `content-length` body).
async fn read_response<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> (String, String) {
    let head = tokio::time::timeout(Duration::from_secs(5), common::read_head(stream))
        .await
        .expect("answered in time")
        .expect("a response");
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.expect("response body");
    (head, String::from_utf8(body).expect("UTF-8 body"))
}

#[tokio::test]
async fn http1_early_answers_drain_the_body_and_keep_the_connection() {
    let f = fixture().await;
    let len = MIB + MIB / 2;
    for (method, content_type, status, want_body) in [
        ("POST", "application/json", "413", TOO_LARGE),
        ("POST", "text/plain", "415", ""),
        ("PUT", "application/json", "405", ""),
    ] {
        let stream = common::raw_tls(f.webhook.https_addr(), &f.ca.pem).await;
        let (mut read, mut write) = tokio::io::split(stream);
        let head = format!(
            "{method} /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n\
             Content-Length: {len}\r\n\r\n"
        );
        let writer = tokio::spawn(async move {
            write.write_all(head.as_bytes()).await?;
            write.write_all(&vec![b'x'; len]).await?;
            Ok::<_, std::io::Error>(write)
        });
        let (head, body) = read_response(&mut read).await;
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "{method} {content_type}: {head}"
        );
        assert_eq!(body, want_body, "{method} {content_type}");
        let mut write = writer
            .await
            .expect("writer task")
            .expect("the whole body was accepted");
        // The body was read to its end, so the connection serves the next request.
        write
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write the next request");
        let (head, _) = read_response(&mut read).await;
        assert!(head.starts_with("HTTP/1.1 204"), "{method}: {head}");
    }
    f.webhook.shutdown().await;
}
