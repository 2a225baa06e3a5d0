//! The admin listener against a running test bed: every call is authenticated (admin bearer
//! token or a Keystone token with the admin role), metrics carry no tokens, `drgw status`
//! reports both sites, and `/readyz` follows the active site's health.

use drgw_tests::testbed::TestBed;
use http_body_util::BodyExt;

async fn admin_get(bed: &TestBed, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let client: hyper_util::client::legacy::Client<_, drgw::body::ProxyBody> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let mut req = http::Request::get(format!("http://127.0.0.1:{}{path}", bed.ports.admin));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(drgw::body::empty()).unwrap())
        .await
        .expect("admin listener answers");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_is_authenticated_and_reports_health() {
    let bed = TestBed::start().await.expect("test bed");
    let bearer = format!("Bearer {}", bed.admin_token());
    let admin_token = bed
        .primary
        .issue_token("admin", "admin")
        .expect("admin token");
    let demo_token = bed.primary.issue_token("demo", "demo").expect("demo token");

    // Nothing without credentials, a wrong bearer token or a non-admin Keystone token.
    for path in ["/metrics", "/healthz", "/readyz", "/v1/status"] {
        assert_eq!(
            admin_get(&bed, path, &[]).await.0,
            401,
            "{path} without credentials"
        );
    }
    assert_eq!(
        admin_get(
            &bed,
            "/healthz",
            &[("authorization", "Bearer not-the-token")]
        )
        .await
        .0,
        401
    );
    assert_eq!(
        admin_get(&bed, "/healthz", &[("x-auth-token", &demo_token)])
            .await
            .0,
        401,
        "member role is not admin"
    );
    assert_eq!(
        admin_get(&bed, "/healthz", &[("x-auth-token", "garbage")])
            .await
            .0,
        401
    );
    // The bearer token and a Keystone admin token both work.
    assert_eq!(
        admin_get(&bed, "/healthz", &[("authorization", &bearer)])
            .await
            .0,
        200
    );
    assert_eq!(
        admin_get(&bed, "/healthz", &[("x-auth-token", &admin_token)])
            .await
            .0,
        200
    );

    // Ready while every service of the active site answers; not ready when one is down.
    let (status, body) = admin_get(&bed, "/readyz", &[("authorization", &bearer)]).await;
    assert_eq!(status, 200, "{body}");
    bed.primary.down().await;
    let (status, body) = admin_get(&bed, "/readyz", &[("authorization", &bearer)]).await;
    assert_eq!(status, 503, "{body}");
    bed.primary.up().await.expect("site back up");

    // drgw status (the CLI's code path) shows both sites and the active one.
    let (code, status) = drgw::cli::admin_get(&bed.gateway.config_path, "/v1/status")
        .await
        .expect("status");
    assert!(code.is_success());
    assert_eq!(status["active_site"], "primary");
    assert_eq!(status["id_translation"], false, "no failover yet: {status}");
    assert_eq!(
        status["sites"]["recovery"]["services"]["compute"]["up"], true,
        "{status}"
    );
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));

    // Metrics: the request counter and the token cache counter exist; no token leaks.
    let (status, metrics) = admin_get(&bed, "/metrics", &[("authorization", &bearer)]).await;
    assert_eq!(status, 200);
    for name in [
        "drgw_token_cache_requests_total",
        "drgw_site_up",
        "drgw_journal_group_commands",
        "drgw_id_translation 0",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    assert!(
        !metrics.contains(&admin_token) && !metrics.contains(&demo_token),
        "a token leaked into metrics"
    );
    bed.stop().await;
}
