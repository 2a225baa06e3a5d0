//! Broken and hostile clients on a gateway listener: bytes that are not HTTP, heads that
//! break the grammar or its limits, bodies whose framing is ambiguous, cut short, stalled
//! or malformed, targets that name another host. Each gets a 4xx or a closed connection and
//! reaches no upstream; a change whose body never arrived whole is not made; the gateway
//! neither panics nor connects anywhere but its configured upstreams, and answers the next
//! client as before.

use std::sync::atomic::Ordering;
use std::time::Duration;

use drgw_tests::sim::Service;
use drgw_tests::testbed::TestBed;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one exchange may take before the test fails instead of hanging.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);

/// What a client saw: the status of every response on the connection, and its bytes.
struct Seen {
    statuses: Vec<u16>,
    bytes: Vec<u8>,
}

impl Seen {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// The JSON body of the one response in `text` (head and body as read).
fn json_body(text: &str) -> Value {
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not a JSON body ({e}): {text}"))
}

/// The `code` of a fault in Nova's shape, `{"<fault name>": {"code": N, "message": ...}}`
/// (null when the body has no such shape).
fn fault_code(text: &str) -> Value {
    let body = json_body(text);
    let fault = body.as_object().and_then(|o| o.values().next());
    fault.map_or(Value::Null, |f| f["code"].clone())
}

/// Sends `bytes` (a request whose body stops short) on a new connection to `base_url`,
/// keeps the connection open, and reads until the gateway closes it: what it answered, and
/// how long after the bytes were sent.
async fn stalled_exchange(base_url: &str, bytes: &[u8]) -> (String, Duration) {
    let mut sock = TcpStream::connect(base_url.trim_start_matches("http://"))
        .await
        .expect("connect");
    sock.write_all(bytes).await.expect("write");
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    tokio::time::timeout(EXCHANGE_TIMEOUT, sock.read_to_end(&mut got))
        .await
        .expect("the gateway ends a stalled body")
        .expect("read");
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

/// Sends `bytes` on a new connection to `base_url` and reads until the gateway closes it.
/// A gateway that waits on for more (a head or a body cut short) sees the sending side end
/// after a second.
async fn exchange(base_url: &str, bytes: &[u8]) -> Seen {
    let mut sock = TcpStream::connect(base_url.trim_start_matches("http://"))
        .await
        .expect("connect to the gateway");
    // The gateway may refuse a head before it has all of it and close: writing the rest
    // then fails, which is its right.
    let _ = sock.write_all(bytes).await;
    let mut got = Vec::new();
    let mut ended_sending = false;
    let deadline = tokio::time::Instant::now() + EXCHANGE_TIMEOUT;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let wait = if ended_sending {
            deadline
        } else {
            tokio::time::Instant::now() + Duration::from_secs(1)
        };
        match tokio::time::timeout_at(wait, sock.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Err(_) if !ended_sending => {
                let _ = sock.shutdown().await;
                ended_sending = true;
            }
            Err(_) => panic!(
                "the connection stayed open after {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(120)])
            ),
        }
    }
    let statuses = String::from_utf8_lossy(&got)
        .split("\r\n")
        .filter_map(|line| {
            let rest = line.strip_prefix("HTTP/1.1 ")?;
            rest.get(..3)?.parse().ok()
        })
        .collect();
    Seen {
        statuses,
        bytes: got,
    }
}

/// A GET of `target` with `token`, and `extra` header lines (each ending in CRLF).
fn authed_get(target: &str, token: &str, extra: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nhost: drgw.test\r\nx-auth-token: {token}\r\n{extra}\r\n")
        .into_bytes()
}

/// The demo tenant's key pair names, listed through the gateway.
async fn keypair_names(base_url: &str, token: &str) -> Vec<String> {
    let head = authed_get("/v2.1/os-keypairs", token, "connection: close\r\n");
    let seen = exchange(base_url, &head).await;
    assert_eq!(seen.statuses, [200], "{}", seen.text());
    json_body(&seen.text())["keypairs"]
        .as_array()
        .expect("keypairs")
        .iter()
        .filter_map(|k| k["keypair"]["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_and_hostile_clients_get_4xx_reach_no_upstream_and_change_nothing() {
    drgw_tests::panics::count();
    // A short body timeout, for the stalled body below.
    let bed = TestBed::start_with_gateway_settings("client_body_timeout = \"2s\"\n")
        .await
        .expect("test bed");
    assert_eq!(
        bed.gateway.config.client_body_timeout,
        Duration::from_secs(2)
    );
    let token = demo_token(&bed).await;
    let compute = bed.gateway_url("compute");
    let (evil_port, evil_reached) = drgw_tests::testbed::forbidden_host().await;
    let keypairs_before = keypair_names(&compute, &token).await;

    let create = |framing: &str, body: &[u8]| -> Vec<u8> {
        let mut req = format!(
            "POST /v2.1/os-keypairs HTTP/1.1\r\nhost: drgw.test\r\nx-auth-token: {token}\r\ncontent-type: application/json\r\n{framing}\r\n"
        )
        .into_bytes();
        req.extend_from_slice(body);
        req
    };
    let keypair = br#"{"keypair": {"name": "hostile"}}"#;
    let get = |target: &str, extra: &str| authed_get(target, &token, extra);

    // Requests that must be refused (a 4xx, or the connection closed with no answer)
    // without a byte reaching the upstream.
    let mut refused: Vec<(String, Vec<u8>)> = vec![
        ("a NUL in the target".into(), get("/v2.1/flav\0ors", "")),
        ("an unknown HTTP version".into(), {
            let mut r = get("/v2.1/flavors", "");
            let at = r.windows(8).position(|w| w == b"HTTP/1.1").unwrap();
            r[at..at + 8].copy_from_slice(b"HTTP/9.9");
            r
        }),
        (
            "a header line with no colon".into(),
            get("/v2.1/flavors", "no colon here\r\n"),
        ),
        (
            "a folded header line".into(),
            get("/v2.1/flavors", "x-folded: a\r\n b\r\n"),
        ),
        (
            "a 128 KiB header".into(),
            get(
                "/v2.1/flavors",
                &format!("x-big: {}\r\n", "a".repeat(128 * 1024)),
            ),
        ),
        (
            "a 128 KiB target".into(),
            get(&format!("/v2.1/flavors?q={}", "a".repeat(128 * 1024)), ""),
        ),
        (
            "two Content-Lengths that differ".into(),
            create(
                &format!("content-length: {}\r\ncontent-length: 3\r\n", keypair.len()),
                keypair,
            ),
        ),
        (
            "a negative Content-Length".into(),
            create("content-length: -1\r\n", keypair),
        ),
        (
            "a Content-Length beyond u64".into(),
            create("content-length: 99999999999999999999999\r\n", keypair),
        ),
        (
            "a Content-Length with a sign".into(),
            create(&format!("content-length: +{}\r\n", keypair.len()), keypair),
        ),
        (
            "a transfer coding that does not end in chunked".into(),
            create("transfer-encoding: gzip\r\n", keypair),
        ),
        ("a chunk size that is not hex".into(), {
            let mut body = b"zz\r\n".to_vec();
            body.extend_from_slice(keypair);
            body.extend_from_slice(b"\r\n0\r\n\r\n");
            create("transfer-encoding: chunked\r\n", &body)
        }),
        (
            "a body cut short by the client".into(),
            create(
                &format!("content-length: {}\r\n", keypair.len() + 100),
                keypair,
            ),
        ),
        ("a chunked body cut short by the client".into(), {
            let mut body = format!("{:x}\r\n", keypair.len() + 100).into_bytes();
            body.extend_from_slice(keypair);
            create("transfer-encoding: chunked\r\n", &body)
        }),
        (
            "CONNECT to another host".into(),
            format!(
                "CONNECT 127.0.0.1:{evil_port} HTTP/1.1\r\nhost: 127.0.0.1:{evil_port}\r\n\r\n"
            )
            .into_bytes(),
        ),
    ];
    // Bytes that are not HTTP at all (seeded: the same cases on every run).
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xd7_6a_11);
    for n in [1usize, 7, 64, 500, 4096] {
        let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
        refused.push((format!("{n} random bytes"), bytes));
    }

    let mut failures = Vec::new();
    for (what, bytes) in &refused {
        bed.primary.requests().clear();
        let seen = exchange(&compute, bytes).await;
        if !seen.statuses.iter().all(|s| (400..500).contains(s)) {
            failures.push(format!(
                "{what}: answered {:?}\n{}",
                seen.statuses,
                seen.text()
            ));
        }
        let reached = bed.primary.requests().of(Service::Compute);
        if !reached.is_empty() {
            failures.push(format!("{what}: reached the upstream: {reached:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // The gateway's own refusals are in the service's format: Nova's here.
    let bad_grammar = get("/v2.1/flavors", "no colon here\r\n");
    let mut too_many = String::new();
    for i in 0..101 {
        too_many.push_str(&format!("x-h{i}: {i}\r\n"));
    }
    let too_many = get("/v2.1/flavors", &too_many);
    let too_large = get(
        "/v2.1/flavors",
        &format!("x-big: {}\r\n", "a".repeat(128 * 1024)),
    );
    let connect =
        format!("CONNECT 127.0.0.1:{evil_port} HTTP/1.1\r\nhost: 127.0.0.1:{evil_port}\r\n\r\n");
    for (bytes, status, extra_header) in [
        (bad_grammar, 400, "connection: close"),
        (too_many, 431, "connection: close"),
        (too_large, 431, "connection: close"),
        (
            connect.into_bytes(),
            405,
            "allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        ),
    ] {
        let seen = exchange(&compute, &bytes).await;
        let text = seen.text();
        assert_eq!(seen.statuses, [status], "{text}");
        assert!(
            text.to_ascii_lowercase()
                .contains(&extra_header.to_ascii_lowercase()),
            "{text}"
        );
        assert_eq!(fault_code(&text), status, "{text}");
    }

    // A change whose body stops coming (the client keeps the connection open): 408 in
    // Nova's format once the body timeout passes, the connection closes, nothing reached
    // the upstream.
    bed.primary.requests().clear();
    let stalled = create(
        &format!("content-length: {}\r\n", keypair.len()),
        &keypair[..keypair.len() / 2],
    );
    let (text, waited) = stalled_exchange(&compute, &stalled).await;
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert_eq!(fault_code(&text), 408, "{text}");
    assert!(waited >= Duration::from_millis(1900), "{waited:?}");
    assert!(bed.primary.requests().of(Service::Compute).is_empty());

    // A body framed by both Content-Length and Transfer-Encoding (a smuggling attempt):
    // whatever the gateway makes of the first request, the bytes after it are never read
    // as a second one, and the connection closes (RFC 9112, 6.3).
    bed.primary.requests().clear();
    let mut smuggled = create(
        "content-length: 5\r\ntransfer-encoding: chunked\r\n",
        b"0\r\n\r\n",
    );
    smuggled.extend_from_slice(&get("/v2.1/os-keypairs", ""));
    let seen = exchange(&compute, &smuggled).await;
    assert!(
        seen.statuses.len() <= 1 && seen.statuses.iter().all(|s| !(200..300).contains(s)),
        "Content-Length with Transfer-Encoding: answered {:?}\n{}",
        seen.statuses,
        seen.text()
    );
    let reached = bed.primary.requests().matching("GET", "/v2.1/os-keypairs");
    assert!(reached.is_empty(), "the smuggled GET reached the upstream");

    // A target in absolute form naming another host: the gateway serves the path from its
    // own upstream (RFC 9112, 3.2.2) and never connects to the host named.
    let absolute = format!("http://127.0.0.1:{evil_port}/v2.1/flavors");
    let req = get(&absolute, "connection: close\r\n");
    let seen = exchange(&compute, &req).await;
    assert_eq!(seen.statuses, [200], "{}", seen.text());
    assert!(seen.text().contains("m1.small"), "{}", seen.text());

    // Nothing reached the other host, no change was made, nothing panicked, and the next
    // client is served as before.
    assert_eq!(
        evil_reached.load(Ordering::SeqCst),
        0,
        "the gateway connected to a host named by a client"
    );
    assert_eq!(keypair_names(&compute, &token).await, keypairs_before);
    assert_eq!(drgw_tests::panics::seen(), 0, "the gateway panicked");
    bed.stop().await;
}

/// A token of the demo tenant, logged in through the gateway.
async fn demo_token(bed: &TestBed) -> String {
    let (client, _) = bed.login("demo", "demo", "demo").await.expect("demo login");
    client.token.clone().expect("a token")
}

/// The image record `id`, shown through the gateway's Glance at `image`.
async fn show_image(image: &str, token: &str, id: &str) -> Value {
    let show = authed_get(&format!("/v2/images/{id}"), token, "connection: close\r\n");
    let seen = exchange(image, &show).await;
    assert_eq!(seen.statuses, [200], "{}", seen.text());
    json_body(&seen.text())
}

/// Creates an image record through the gateway's Glance at `image`; its ID.
async fn create_image(image: &str, token: &str, name: &str) -> String {
    let create =
        format!(r#"{{"name": "{name}", "disk_format": "raw", "container_format": "bare"}}"#);
    let req = format!(
        "POST /v2/images HTTP/1.1\r\nhost: drgw.test\r\nx-auth-token: {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{create}",
        create.len()
    );
    let seen = exchange(image, req.as_bytes()).await;
    assert_eq!(seen.statuses, [201], "{}", seen.text());
    json_body(&seen.text())["id"]
        .as_str()
        .expect("an image id")
        .to_string()
}

/// The head of an image data upload of `len` bytes.
fn upload_head(id: &str, token: &str, len: usize) -> Vec<u8> {
    format!(
        "PUT /v2/images/{id}/file HTTP/1.1\r\nhost: drgw.test\r\nx-auth-token: {token}\r\naccept: application/json\r\ncontent-type: application/octet-stream\r\ncontent-length: {len}\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_data_that_stops_moving_either_way_is_cut_off_and_changes_nothing() {
    drgw_tests::panics::count();
    let bed = TestBed::start_with_gateway_settings(
        "client_body_timeout = \"2s\"\nclient_send_timeout = \"2s\"\n",
    )
    .await
    .expect("test bed");
    let token = demo_token(&bed).await;
    let image = bed.gateway_url("image");

    // An upload: image data streams to the upstream as it comes; here 64 KiB of a declared
    // MiB, then nothing while the client keeps the connection open. 408 in Glance's
    // format once the body timeout passes.
    let id = create_image(&image, &token, "stalled-upload").await;
    let mut upload = upload_head(&id, &token, 1 << 20);
    upload.extend(std::iter::repeat_n(b'x', 64 << 10));
    let (text, waited) = stalled_exchange(&image, &upload).await;
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert_eq!(json_body(&text)["code"], "408 Request Timeout", "{text}");
    assert!(waited >= Duration::from_millis(1900), "{waited:?}");
    let put = bed
        .primary
        .requests()
        .matching("PUT", &format!("/v2/images/{id}/file"));
    assert_eq!(put.len(), 1, "the upload streamed to the upstream");
    // The upstream saw the upload broken off: the image has no data and can take it again.
    let shown = show_image(&image, &token, &id).await;
    assert_eq!(shown["status"], "queued", "{shown}");
    assert_eq!(shown["size"], Value::Null, "{shown}");

    // A download the client stops reading: 48 MiB, more than the sockets between the
    // upstream and the client hold, so the gateway's writes block. Once they have been
    // blocked for the send timeout the gateway closes the connection: the client never
    // gets the rest.
    const SIZE: usize = 48 << 20;
    let id = create_image(&image, &token, "stalled-download").await;
    let mut upload = upload_head(&id, &token, SIZE);
    upload.extend(std::iter::repeat_n(b'd', SIZE));
    let seen = exchange(&image, &upload).await;
    assert_eq!(seen.statuses, [204], "{}", seen.text());
    let file = format!("/v2/images/{id}/file");
    let download = |extra: &str| authed_get(&file, &token, extra);
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let addr = image
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let mut sock = socket.connect(addr).await.expect("connect");
    sock.write_all(&download("")).await.expect("write");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut got = 0usize;
    let mut chunk = vec![0u8; 1 << 20];
    let read_all = async {
        // To the end, or to a reset: what the gateway had written before it closed.
        while let Ok(n @ 1..) = sock.read(&mut chunk).await {
            got += n;
        }
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, read_all)
        .await
        .expect("the connection ends");
    assert!(
        got < SIZE,
        "the client got all {got} bytes after stopping for 5 s"
    );

    // A client that reads gets the whole image.
    let seen = exchange(&image, &download("connection: close\r\n")).await;
    assert_eq!(seen.statuses, [200]);
    assert!(seen.bytes.len() > SIZE, "{} bytes", seen.bytes.len());
    assert_eq!(drgw_tests::panics::seen(), 0, "the gateway panicked");
    bed.stop().await;
}

/// The body of an HTTP/2 upload the tests feed piece by piece.
type Upload = http_body_util::StreamBody<
    std::pin::Pin<
        Box<
            dyn futures_util::Stream<
                    Item = Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>,
                > + Send,
        >,
    >,
>;

/// How many 8 KiB pieces [`slow_upload`] sends, one every 400 ms (3.2 s in all).
const SLOW_PIECES: usize = 8;

/// An image data upload that takes 3.2 s to send.
fn slow_upload(image: &str, id: &str, token: &str) -> http::Request<Upload> {
    let pieces = futures_util::stream::unfold(0, |sent| async move {
        (sent < SLOW_PIECES).then_some(())?;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let piece = hyper::body::Frame::data(bytes::Bytes::from(vec![b'h'; 8192]));
        Some((Ok(piece), sent + 1))
    });
    http::Request::put(format!("{image}/v2/images/{id}/file"))
        .header("x-auth-token", token)
        .header("content-type", "application/octet-stream")
        .header("content-length", SLOW_PIECES * 8192)
        .body(http_body_util::StreamBody::new(Box::pin(pieces) as _))
        .expect("request")
}

/// An HTTP/2 connection with prior knowledge (hyper serves those whole) to `base_url`,
/// and the task that drives it, which gives the instant the connection ended.
async fn h2_connect(
    base_url: &str,
) -> (
    hyper::client::conn::http2::SendRequest<Upload>,
    tokio::task::JoinHandle<(tokio::time::Instant, hyper::Result<()>)>,
) {
    let tcp = TcpStream::connect(base_url.trim_start_matches("http://"))
        .await
        .expect("connect");
    let (h2, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("an HTTP/2 handshake");
    let connection = tokio::spawn(async move {
        let ended = connection.await;
        (tokio::time::Instant::now(), ended)
    });
    (h2, connection)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_but_not_while_a_slow_upload_is_open() {
    drgw_tests::panics::count();
    let mut bed = TestBed::start_with_gateway_settings("client_header_timeout = \"1s\"\n")
        .await
        .expect("test bed");
    let token = demo_token(&bed).await;
    let image = bed.gateway_url("image");

    // A request open for more than three idle limits: it completes.
    let id = create_image(&image, &token, "h2-upload").await;
    let (mut h2, connection) = h2_connect(&image).await;
    let resp = tokio::time::timeout(
        EXCHANGE_TIMEOUT,
        h2.send_request(slow_upload(&image, &id, &token)),
    )
    .await
    .expect("an answer in time")
    .expect("an answer");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 204);
    let answered = tokio::time::Instant::now();
    assert!(
        !connection.is_finished(),
        "the connection closed under the upload"
    );

    // Idle from here: the gateway ends the connection (GOAWAY, then close) after the limit.
    let (ended_at, ended) = tokio::time::timeout(EXCHANGE_TIMEOUT, connection)
        .await
        .expect("the gateway closes an idle HTTP/2 connection")
        .expect("the connection task");
    ended.expect("a clean close");
    let idle = ended_at - answered;
    assert!(idle >= Duration::from_millis(900), "closed after {idle:?}");

    // The data arrived whole.
    let shown = show_image(&image, &token, &id).await;
    assert_eq!(shown["status"], "active", "{shown}");
    assert_eq!(shown["size"], SLOW_PIECES * 8192, "{shown}");

    // The gateway stops while an upload is under way: the upload is answered in full, and
    // then the connection ends.
    let id = create_image(&image, &token, "h2-upload-at-stop").await;
    let (mut h2, connection) = h2_connect(&image).await;
    let upload = tokio::spawn(h2.send_request(slow_upload(&image, &id, &token)));
    tokio::time::sleep(Duration::from_millis(800)).await;
    bed.gateway.stop().await;
    let resp = tokio::time::timeout(EXCHANGE_TIMEOUT, upload)
        .await
        .expect("an answer in time")
        .expect("the upload task")
        .expect("an answer, not a cut connection");
    assert_eq!(resp.status(), 204);
    let (_, ended) = tokio::time::timeout(EXCHANGE_TIMEOUT, connection)
        .await
        .expect("the connection ends with the gateway")
        .expect("the connection task");
    ended.expect("a clean close");
    let stored = bed
        .primary
        .requests()
        .matching("PUT", &format!("/v2/images/{id}/file"));
    assert_eq!(stored.len(), 1, "the upload reached the upstream");
    assert_eq!(drgw_tests::panics::seen(), 0, "the gateway panicked");
    bed.stop().await;
}
