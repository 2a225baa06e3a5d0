//! Several workers (`[gateway] workers = 2`): every listener has a socket per worker, and
//! the kernel spreads client connections over them. Both workers accept connections
//! (`drgw_worker_connections_total{worker}` on the admin listener), a request is answered
//! alike on either (relayed GETs and creates through the general path, whose results the
//! other worker's connections see), and a stop drains the requests in flight on both
//! workers before the gateway is gone, leaving no socket of either accepting.

use std::time::Duration;

use drgw_tests::http1::{self, Answer};
use drgw_tests::sim::Service;
use drgw_tests::testbed::TestBed;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const CONNECTIONS: usize = 32;

/// `drgw_worker_connections_total{worker}` from the admin listener's `/metrics` (0 when
/// the series is absent).
async fn accepted_by(bed: &TestBed, worker: usize) -> u64 {
    let series = format!("drgw_worker_connections_total{{worker=\"{worker}\"}}");
    bed.metric(&series).await.map_or(0, |v| v as u64)
}

fn json(answer: &Answer) -> Value {
    serde_json::from_slice(&answer.body).expect("a JSON body")
}

#[tokio::test]
async fn two_workers_share_connections_and_drain_together() {
    let mut bed = TestBed::start_with_gateway_settings("workers = 2\n")
        .await
        .expect("test bed");
    assert_eq!(bed.gateway.config.workers, 2, "the edit reached the config");
    let (demo, _) = bed.login("demo", "demo", "demo").await.expect("demo");
    let token = demo.token.clone().expect("a token");
    let compute = bed.ports.compute;
    let with_token = |method: &str, path: &str, body: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nhost: drgw.test\r\naccept: application/json\r\n\
             x-auth-token: {token}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };

    // Connections, each with a relayed GET and a create through the general path.
    let mut conns = Vec::new();
    for i in 0..CONNECTIONS {
        let mut sock = TcpStream::connect(("127.0.0.1", compute))
            .await
            .expect("connect");
        let mut buf = Vec::new();
        let listed =
            http1::request(&mut sock, &mut buf, &with_token("GET", "/v2.1/flavors", "")).await;
        assert_eq!(listed.status, 200, "flavors on connection {i}");
        assert!(json(&listed)["flavors"]
            .as_array()
            .is_some_and(|f| !f.is_empty()));
        let body = format!(r#"{{"keypair": {{"name": "worker-kp-{i}"}}}}"#);
        let created = http1::request(
            &mut sock,
            &mut buf,
            &with_token("POST", "/v2.1/os-keypairs", &body),
        )
        .await;
        assert_eq!(created.status, 200, "keypair create on connection {i}");
        assert_eq!(json(&created)["keypair"]["name"], format!("worker-kp-{i}"));
        conns.push((sock, buf));
    }
    let (first, second) = (accepted_by(&bed, 0).await, accepted_by(&bed, 1).await);
    println!("connections accepted: worker 0 {first}, worker 1 {second}");
    assert!(
        first > 0 && second > 0,
        "both workers accept connections (worker 0: {first}, worker 1: {second})"
    );
    assert!(first + second >= CONNECTIONS as u64);

    // Every connection sees what the others created, whichever worker serves it.
    for (i, (sock, buf)) in conns.iter_mut().enumerate() {
        let listed = http1::request(sock, buf, &with_token("GET", "/v2.1/os-keypairs", "")).await;
        assert_eq!(listed.status, 200);
        let names: Vec<String> = json(&listed)["keypairs"]
            .as_array()
            .expect("keypairs")
            .iter()
            .filter_map(|k| k["keypair"]["name"].as_str().map(str::to_string))
            .collect();
        for j in 0..CONNECTIONS {
            assert!(
                names.contains(&format!("worker-kp-{j}")),
                "connection {i} lists worker-kp-{j}: {names:?}"
            );
        }
    }

    // A slow GET in flight on every connection, then a stop: each is answered in full.
    bed.primary.faults().latency(
        Some(Service::Compute),
        Duration::from_millis(1500),
        Some(CONNECTIONS as u32),
    );
    for (sock, _) in conns.iter_mut() {
        sock.write_all(&with_token("GET", "/v2.1/flavors", ""))
            .await
            .expect("write");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let readers: Vec<_> = conns
        .into_iter()
        .map(|(mut sock, mut buf)| {
            tokio::spawn(async move {
                let head = http1::read_head(&mut sock, &mut buf).await;
                (head, buf, sock)
            })
        })
        .collect();
    let stopping = std::time::Instant::now();
    bed.gateway.stop().await;
    println!("stop took {:?}", stopping.elapsed());
    for (i, reader) in readers.into_iter().enumerate() {
        let (head, _, _) = reader.await.expect("reader");
        let head = head.unwrap_or_else(|| panic!("connection {i} was cut instead of answered"));
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "connection {i} answered in full during the drain: {head}"
        );
    }
    assert!(
        TcpStream::connect(("127.0.0.1", compute)).await.is_err(),
        "no worker's socket accepts after the stop"
    );
    bed.primary.shutdown().await;
    bed.recovery.shutdown().await;
}
