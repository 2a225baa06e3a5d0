//! The gateway's own errors for Glance are negotiated on `Accept` as Glance's (webob's)
//! are: an HTML page for `*/*` (what python-glanceclient and curl send), webob's JSON for
//! `application/json` (openstacksdk), plain text for no `Accept` at all; on the fast lane
//! (a GET) and on the general path (a POST) alike; each counted in `drgw_requests_total` and
//! `drgw_upstream_errors_total`.

use drgw_tests::sim::client::{SimClient, SimResponse};
use drgw_tests::testbed::TestBed;
use http::Method;
use serde_json::json;

async fn call(bed: &TestBed, method: Method, accept: Option<&str>) -> SimResponse {
    let url = format!("{}/v2/images", bed.gateway_url("image"));
    let body = (method == Method::POST).then(|| json!({"name": "no-site"}));
    let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
    SimClient::new()
        .send(method, &url, body.as_ref(), &headers)
        .await
        .expect("the gateway answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_glance_errors_follow_accept_like_glances() {
    let bed = TestBed::start().await.expect("test bed");
    // The primary is down: every call is a 502 the gateway makes itself.
    bed.primary.down().await;
    for method in [Method::GET, Method::POST] {
        let html = call(&bed, method.clone(), Some("*/*")).await;
        assert_eq!(html.status, 502, "{method}");
        assert_eq!(
            html.header("content-type"),
            Some("text/html; charset=UTF-8"),
            "{method}"
        );
        let text = String::from_utf8_lossy(&html.bytes);
        assert!(
            text.starts_with("<html>\n <head>\n  <title>502 Bad Gateway</title>"),
            "{method}: {text}"
        );
        assert_eq!(
            html.header("content-length"),
            Some(html.bytes.len().to_string().as_str())
        );

        let json = call(&bed, method.clone(), Some("application/json")).await;
        assert_eq!(json.status, 502);
        assert_eq!(json.header("content-type"), Some("application/json"));
        assert_eq!(
            json.json["code"], "502 Bad Gateway",
            "{method}: {}",
            json.json
        );
        assert_eq!(json.json["title"], "Bad Gateway");

        let plain = call(&bed, method.clone(), None).await;
        assert_eq!(plain.status, 502);
        assert_eq!(
            plain.header("content-type"),
            Some("text/plain; charset=UTF-8"),
            "{method}"
        );
        assert!(
            String::from_utf8_lossy(&plain.bytes).starts_with("502 Bad Gateway\n\n"),
            "{method}"
        );
    }
    // Each was counted: by service, action and status, and as an upstream failure to
    // connect (the image calls and the POSTs' token look-ups at the site's Keystone aside).
    let requests = |action: &str| {
        format!(r#"drgw_requests_total{{action="{action}",service="image",status="502"}}"#)
    };
    assert_eq!(bed.metric(&requests("read")).await, Some(3.0));
    assert_eq!(bed.metric(&requests("create")).await, Some(3.0));
    let connect_failures = r#"drgw_upstream_errors_total{kind="connect",service="image"}"#;
    assert_eq!(bed.metric(connect_failures).await, Some(6.0));
    bed.primary.up().await.expect("primary back");
    bed.stop().await;
}
