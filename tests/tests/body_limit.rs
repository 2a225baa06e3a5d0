//! A protected change whose JSON body is over `gateway.max_body_bytes` gets 413 in what
//! the service itself answers for an oversized body, and reaches no site: for Nova,
//! Cinder and Keystone with a declared length, webob's page from oslo.middleware's
//! `sizelimit` (negotiated on `Accept`); without a declared length, and for Neutron, the
//! service's usual error format.

use drgw_tests::http1;
use drgw_tests::testbed::TestBed;
use http::{Method, StatusCode};
use serde_json::{json, Value};

const LIMIT: usize = 4096;

/// A JSON body of about twice the limit.
fn oversized(key: &str) -> String {
    json!({ key: { "name": "big", "description": "x".repeat(2 * LIMIT) } }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_as_the_service_would_and_reach_no_site() {
    let bed = TestBed::start_with_gateway_settings(&format!("max_body_bytes = {LIMIT}\n"))
        .await
        .expect("test bed");
    let (admin, _) = bed.login("admin", "secret", "admin").await.expect("admin");
    let token = admin.token.clone().expect("token");
    let send = |service: &'static str, path: &'static str, key: &'static str, accept| {
        let url = format!("{}{path}", bed.gateway_url(service));
        let admin = &admin;
        async move {
            admin
                .send_raw(
                    Method::POST,
                    &url,
                    oversized(key).into(),
                    "application/json",
                    &[("accept", accept)],
                )
                .await
                .expect("an answer")
        }
    };

    // Nova with a declared length, as JSON: webob's JSON page, with sizelimit's message.
    let nova = send(
        "compute",
        "/v2.1/os-keypairs",
        "keypair",
        "application/json",
    )
    .await;
    assert_eq!(nova.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(nova.header("content-type"), Some("application/json"));
    assert_eq!(
        nova.json,
        json!({
            "message": format!("Request is too large. Larger than max_request_body_size ({LIMIT}).<br /><br />\n\n\n"),
            "code": "413 Request Entity Too Large",
            "title": "Request Entity Too Large"
        })
    );

    // Keystone, to a client that accepts anything: webob's HTML page.
    let keystone = send("identity", "/v3/projects", "project", "*/*").await;
    assert_eq!(keystone.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        keystone.header("content-type"),
        Some("text/html; charset=UTF-8")
    );
    let page = String::from_utf8_lossy(&keystone.bytes);
    assert!(
        page.contains("<title>413 Request Entity Too Large</title>"),
        "{page}"
    );

    // Neutron has no sizelimit: its own error format.
    let neutron = send("network", "/v2.0/networks", "network", "application/json").await;
    assert_eq!(neutron.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        neutron.json["NeutronError"]["type"], "HTTPRequestEntityTooLarge",
        "{}",
        neutron.json
    );

    // Nova with a chunked body: sizelimit's reader fails inside Nova, whose fault wrapper
    // answers in Nova's format.
    let body = oversized("keypair");
    let request = format!(
        "POST /v2.1/os-keypairs HTTP/1.1\r\nhost: drgw.test\r\nx-auth-token: {token}\r\n\
         content-type: application/json\r\naccept: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let compute_port = bed
        .gateway_url("compute")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let mut sock = tokio::net::TcpStream::connect(format!("127.0.0.1:{compute_port}"))
        .await
        .expect("connect");
    let chunked = http1::request(&mut sock, &mut Vec::new(), request.as_bytes()).await;
    assert_eq!(chunked.status, 413);
    let fault: Value = serde_json::from_slice(&chunked.body).expect("JSON");
    assert_eq!(fault["overLimit"]["code"], 413, "{fault}");

    // None of them reached the primary.
    for (method, path) in [
        ("POST", "/v2.1/os-keypairs"),
        ("POST", "/v3/projects"),
        ("POST", "/v2.0/networks"),
    ] {
        assert!(
            bed.primary.requests().matching(method, path).is_empty(),
            "{method} {path} reached the primary"
        );
    }
    bed.stop().await;
}
