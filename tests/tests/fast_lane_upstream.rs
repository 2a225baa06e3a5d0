//! The fast lane against upstreams that do what real ones sometimes do: answer chunked,
//! close a keep-alive connection after an answer without saying so, put their own URL in
//! a body or a `Location`, send a second answer nobody asked for on a connection the
//! gateway holds idle, stream a large non-JSON body, take longer than the request
//! timeout, stop sending an answer, or stop taking an upload. The primary site's image service is a small scripted HTTP/1.1 server here;
//! every other service is the simulator's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drgw_tests::http1::{get, read_head, request};
use drgw_tests::mirror_harness::eventually;
use drgw_tests::testbed::{
    access_log_lines, with_primary_service, with_upstream_settings, TestBed,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted upstream saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// The request id the scripted upstream's stalling answers carry.
const UPSTREAM_ID: &str = "req-00000000-0000-4000-8000-000000000000";

/// Serves the scripted answers on `listener`: the `mode` query parameter of each request
/// chooses one.
async fn scripted_upstream(listener: TcpListener, seen: Arc<Seen>) {
    let base = format!("http://{}", listener.local_addr().unwrap());
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        seen.connections.fetch_add(1, Ordering::SeqCst);
        let seen = seen.clone();
        let base = base.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            loop {
                let Some(head) = read_head(&mut sock, &mut buf).await else {
                    return;
                };
                seen.requests.fetch_add(1, Ordering::SeqCst);
                let target = head
                    .lines()
                    .next()
                    .and_then(|l| l.split(' ').nth(1))
                    .unwrap_or("/")
                    .to_string();
                let mode = target
                    .split_once("mode=")
                    .map(|(_, m)| m.split('&').next().unwrap_or(""))
                    .unwrap_or("");
                let json = "application/json";
                let answer: Vec<u8> = match mode {
                    "chunked" => b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n9\r\n{\"images\"\r\n6\r\n: [] }\r\n0\r\n\r\n".to_vec(),
                    "links" => {
                        let body = format!(
                            r#"{{"images": [], "next": "{base}/v2/images?marker=abc", "first": "/v2/images"}}"#
                        );
                        answer(200, json, &[], body.as_bytes())
                    }
                    "redirect" => answer(
                        302,
                        "text/plain",
                        &[("location", &format!("{base}/v2/images/abc"))],
                        b"",
                    ),
                    "octets" => answer(200, "application/octet-stream", &[], &octets()),
                    // Sends a head and the start of a body, then nothing more.
                    "stall-json" | "stall-octets" => {
                        let (kind, start) = match mode {
                            "stall-json" => (json, &br#"{"images": ["#[..]),
                            _ => ("application/octet-stream", &b"\x00\x01\x02\x03"[..]),
                        };
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: 4096\r\nx-openstack-request-id: {UPSTREAM_ID}\r\n\r\n"
                        );
                        if sock.write_all(&[head.as_bytes(), start].concat()).await.is_ok() {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                        }
                        return;
                    }
                    // Takes the head and nothing more: an upstream hung under an upload.
                    "hang" => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    }
                    "slow" => {
                        tokio::time::sleep(Duration::from_secs(4)).await;
                        answer(200, json, &[], b"{}")
                    }
                    _ => answer(
                        200,
                        json,
                        &[("x-openstack-request-id", "req-upstream")],
                        br#"{"images": []}"#,
                    ),
                };
                if sock.write_all(&answer).await.is_err() {
                    return;
                }
                // `close`: the upstream drops the connection after its answer without a
                // `Connection: close`, as a server whose keep-alive timer just ran out.
                if mode == "close" {
                    return;
                }
                // `trailing`: a second answer nobody asked for, once the gateway has had
                // time to put the connection back as idle (a buggy upstream's body after a
                // 204, or the rest of a body longer than its `Content-Length`).
                if mode == "trailing" {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let stray = self::answer(
                        200,
                        json,
                        &[("x-openstack-request-id", "req-stray")],
                        br#"{"images": ["stray"]}"#,
                    );
                    if sock.write_all(&stray).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

fn answer(status: u16, content_type: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} Whatever\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in extra {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A 256 KiB body that is not JSON, with a pattern that shows any lost or moved byte.
fn octets() -> Vec<u8> {
    (0..256 * 1024u32).map(|i| (i % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_lane_copes_with_every_kind_of_upstream_answer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    tokio::spawn(scripted_upstream(listener, seen.clone()));
    // The primary's image service is the scripted upstream; requests time out after 2 s.
    let bed = TestBed::start_with(|text| {
        let text = with_primary_service(&text, "image", &upstream);
        with_upstream_settings(&text, "request_timeout = \"2s\"\n")
    })
    .await
    .expect("test bed");
    let gateway = bed.gateway_url("image");
    let lanes = &bed.gateway.gateway.metrics.proxy.fast_lane;
    let mut sock = TcpStream::connect(gateway.trim_start_matches("http://"))
        .await
        .expect("connect");
    let mut buf = Vec::new();

    // A plain answer is relayed: the upstream's request id kept, nothing added but `date`.
    let relayed_before = lanes.relayed.get();
    let plain = get(&mut sock, &mut buf, "/v2/images").await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.body, br#"{"images": []}"#);
    assert_eq!(plain.header("x-openstack-request-id"), Some("req-upstream"));
    assert!(plain.header("date").is_some(), "{}", plain.head);
    // (Counted once the answer is written: the client may read it first.)
    eventually("the GET relayed", Duration::from_secs(5), || async {
        lanes.relayed.get() == relayed_before + 1
    })
    .await;

    // Chunked: the GET goes again through the general path, which reads the chunks.
    let retried_before = lanes.retried.get();
    let requests_before = seen.requests.load(Ordering::SeqCst);
    let chunked = get(&mut sock, &mut buf, "/v2/images?mode=chunked").await;
    assert_eq!(chunked.status, 200, "{}", chunked.head);
    assert_eq!(chunked.body, br#"{"images": [] }"#);
    assert_eq!(lanes.retried.get(), retried_before + 1);
    assert_eq!(seen.requests.load(Ordering::SeqCst), requests_before + 2);

    // The upstream's own URLs never reach the client: in a body, and in `Location`.
    let links = get(&mut sock, &mut buf, "/v2/images?mode=links").await;
    assert_eq!(links.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&links.body).expect("JSON");
    assert_eq!(
        body["next"],
        format!("{gateway}/v2/images?marker=abc"),
        "{body}"
    );
    assert_eq!(body["first"], "/v2/images");
    assert_eq!(
        links.header("content-length"),
        Some(links.body.len().to_string().as_str())
    );
    let redirect = get(&mut sock, &mut buf, "/v2/images?mode=redirect").await;
    assert_eq!(redirect.status, 302);
    assert_eq!(
        redirect.header("location"),
        Some(format!("{gateway}/v2/images/abc").as_str())
    );

    // A large non-JSON body streams through whole.
    let octet = get(&mut sock, &mut buf, "/v2/images?mode=octets").await;
    assert_eq!(octet.status, 200);
    assert!(octet.body == octets(), "the streamed body differs");

    // An upstream that drops its idle connection: the next GET goes on a new one.
    let closing = get(&mut sock, &mut buf, "/v2/images?mode=close").await;
    assert_eq!(closing.status, 200);
    let connections_before = seen.connections.load(Ordering::SeqCst);
    let after_close = get(&mut sock, &mut buf, "/v2/images").await;
    assert_eq!(after_close.status, 200, "{}", after_close.head);
    assert_eq!(after_close.body, br#"{"images": []}"#);
    assert!(seen.connections.load(Ordering::SeqCst) > connections_before);

    // Bytes that arrive on an idle connection: the connection is not used again, so no
    // client is ever given an answer meant for nobody (on the lane, and through the
    // general path, which serves image data).
    for path in ["/v2/images", "/v2/images/abc/file"] {
        let trailing = get(&mut sock, &mut buf, &format!("{path}?mode=trailing")).await;
        assert_eq!(trailing.status, 200, "{path}: {}", trailing.head);
        assert_eq!(trailing.body, br#"{"images": []}"#, "{path}");
        // The stray answer reaches the idle connection meanwhile.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let next = get(&mut sock, &mut buf, path).await;
        assert_eq!(
            next.header("x-openstack-request-id"),
            Some("req-upstream"),
            "{path}: an answer sent on an idle upstream connection was passed on: {}",
            String::from_utf8_lossy(&next.body)
        );
        assert_eq!(next.body, br#"{"images": []}"#, "{path}");
    }

    // Slower than the request timeout: 504, in Glance's error format, and the connection
    // to the client goes on.
    let slow = get(&mut sock, &mut buf, "/v2/images?mode=slow").await;
    assert_eq!(slow.status, 504, "{}", slow.head);
    let text = String::from_utf8_lossy(&slow.body);
    assert!(text.contains("did not answer in time"), "{text}");
    assert!(slow.header("x-openstack-request-id").is_some());
    let again = get(&mut sock, &mut buf, "/v2/images").await;
    assert_eq!(again.status, 200);

    // An answer whose body stops coming. Read whole by the gateway (JSON, on the lane):
    // 504 in Glance's format once the upstream has sent nothing for the request timeout.
    let stalled = get(&mut sock, &mut buf, "/v2/images?mode=stall-json").await;
    assert_eq!(stalled.status, 504, "{}", stalled.head);
    let text = String::from_utf8_lossy(&stalled.body);
    assert!(text.contains("stopped coming"), "{text}");
    // The answer is the gateway's, with its own request id (not the upstream's, whose
    // head it never passed on), and the access log says the same.
    let id = stalled
        .header("x-openstack-request-id")
        .expect("request id");
    assert_ne!(id, UPSTREAM_ID);
    let log = bed.dir.path().join("access.log");
    eventually(
        "the 504's access log line",
        Duration::from_secs(5),
        || async {
            access_log_lines(&log)
                .iter()
                .any(|l| l["request_id"] == id && l["status"] == 504)
        },
    )
    .await;
    // The same answer to a protected change (an image create with a tenant's token, read
    // whole by the general path): 504 too, and the change counts as unconfirmed, since
    // the upstream said it succeeded before its answer stopped.
    let (demo, _) = bed.login("demo", "demo", "demo").await.expect("demo login");
    let token = demo.token.clone().expect("a token");
    let create = br#"{"name": "stalled-create", "disk_format": "raw", "container_format": "bare"}"#;
    let head = format!(
        "POST /v2/images?mode=stall-json HTTP/1.1\r\nhost: drgw.test\r\nx-auth-token: {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        create.len()
    );
    let unconfirmed = bed
        .gateway
        .gateway
        .metrics
        .proxy
        .unconfirmed_changes
        .with_label_values(&["image", "broken_answer"]);
    let created = request(&mut sock, &mut buf, &[head.as_bytes(), create].concat()).await;
    assert_eq!(created.status, 504, "{}", created.head);
    assert_eq!(unconfirmed.get(), 1);
    // Streamed (octets, on the lane and through the general path as image data): the
    // client has the head already, so the body is cut short and the connection closes.
    for path in [
        "/v2/images?mode=stall-octets",
        "/v2/images/abc/file?mode=stall-octets",
    ] {
        let mut cut = TcpStream::connect(gateway.trim_start_matches("http://"))
            .await
            .expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nhost: drgw.test\r\n\r\n");
        cut.write_all(req.as_bytes()).await.expect("write");
        let mut got = Vec::new();
        let head = read_head(&mut cut, &mut got).await.expect("a head");
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        let started = std::time::Instant::now();
        let until_closed = async {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = cut.read(&mut chunk).await {
                got.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::time::timeout(Duration::from_secs(20), until_closed)
            .await
            .expect("the gateway ends a stalled answer");
        assert_eq!(got, b"\x00\x01\x02\x03", "{path}");
        assert!(
            started.elapsed() >= Duration::from_millis(1500),
            "{path}: {:?}",
            started.elapsed()
        );
    }
    let again = get(&mut sock, &mut buf, "/v2/images").await;
    assert_eq!(again.status, 200);

    // An upload the upstream stops taking (it read the head, then hung): once the
    // gateway's writes to it have been blocked for the request timeout, 504 in Glance's
    // format; the client's own pace is not what failed.
    const SIZE: usize = 48 << 20;
    let upload = TcpStream::connect(gateway.trim_start_matches("http://"))
        .await
        .expect("connect");
    let (mut from_gateway, mut to_gateway) = upload.into_split();
    let head = format!(
        "PUT /v2/images/abc/file?mode=hang HTTP/1.1\r\nhost: drgw.test\r\ncontent-type: application/octet-stream\r\ncontent-length: {SIZE}\r\n\r\n"
    );
    to_gateway.write_all(head.as_bytes()).await.expect("write");
    let sending = tokio::spawn(async move {
        // Blocks once the upstream's socket is full; fails once the gateway gives up.
        let _ = to_gateway.write_all(&vec![b'u'; SIZE]).await;
        to_gateway
    });
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        read_head(&mut from_gateway, &mut buf),
    )
    .await
    .expect("the gateway answers a hung upload")
    .expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 504 "), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    sending.abort();

    bed.stop().await;
}
