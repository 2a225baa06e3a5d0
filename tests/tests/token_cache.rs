//! The token context cache, seen through `drgw_token_cache_requests_total{result}` while a
//! tenant works through the gateway: a token the gateway handed out (with or without a
//! catalog) is known without asking Keystone; a token it never saw is validated once and
//! then known; an invalid token is never cached as valid; a revoked token is forgotten.

use drgw_tests::sim::client::SimClient;
use drgw_tests::testbed::TestBed;
use http::{Method, StatusCode};
use serde_json::json;

/// `(hit, miss, invalid)` so far.
fn cache_counts(bed: &TestBed) -> (u64, u64, u64) {
    let counter = &bed.gateway.gateway.metrics.proxy.token_cache;
    (
        counter.with_label_values(&["hit"]).get(),
        counter.with_label_values(&["miss"]).get(),
        counter.with_label_values(&["invalid"]).get(),
    )
}

/// The counts' change over one protected change (a keypair create) made with `token`, and
/// the create's status.
async fn create_keypair(bed: &TestBed, token: &str, name: &str) -> (StatusCode, (u64, u64, u64)) {
    let before = cache_counts(bed);
    let resp = SimClient::new()
        .send(
            Method::POST,
            &format!("{}/v2.1/os-keypairs", bed.gateway_url("compute")),
            Some(&json!({"keypair": {"name": name}})),
            &[("x-auth-token", token)],
        )
        .await
        .expect("the gateway answers");
    let after = cache_counts(bed);
    (
        resp.status,
        (after.0 - before.0, after.1 - before.1, after.2 - before.2),
    )
}

/// Logs in as demo through the gateway (`query` after `auth/tokens`); the token.
async fn login(bed: &TestBed, query: &str) -> String {
    let body = json!({ "auth": {
        "identity": { "methods": ["password"], "password": { "user": {
            "name": "demo", "domain": { "id": "default" }, "password": "demo" } } },
        "scope": { "project": { "name": "demo", "domain": { "id": "default" } } }
    } });
    let resp = SimClient::new()
        .send(
            Method::POST,
            &format!("{}/v3/auth/tokens{query}", bed.gateway_url("identity")),
            Some(&body),
            &[],
        )
        .await
        .expect("login");
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.json);
    resp.header("x-subject-token").expect("token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_known_without_keystone_and_invalid_ones_never_cached() {
    let bed = TestBed::start().await.expect("test bed");

    // Tokens the gateway handed out, with a catalog and without: a hit, Keystone not asked.
    for (query, name) in [("", "kp-catalog"), ("?nocatalog", "kp-nocatalog")] {
        let token = login(&bed, query).await;
        let (status, (hit, miss, _)) = create_keypair(&bed, &token, name).await;
        assert!(status.is_success(), "{name}: {status}");
        assert_eq!((hit, miss), (1, 0), "a token from login{query} is known");
    }

    // The creates were counted, and timed at the primary.
    let created = r#"drgw_requests_total{action="create",service="compute",status="200"}"#;
    assert_eq!(bed.metric(created).await, Some(2.0));
    let timed = r#"drgw_upstream_request_duration_seconds_count{service="compute",site="primary"}"#;
    assert!(bed.metric(timed).await.is_some_and(|n| n >= 2.0));

    // A token obtained at the site directly: validated once (a miss), then known.
    let direct = bed
        .primary
        .issue_token("demo", "demo")
        .expect("a token at the site");
    let (status, (hit, miss, _)) = create_keypair(&bed, &direct, "kp-direct-1").await;
    assert!(status.is_success(), "{status}");
    assert_eq!((hit, miss), (0, 1), "first use: validated at Keystone");
    let (status, (hit, miss, _)) = create_keypair(&bed, &direct, "kp-direct-2").await;
    assert!(status.is_success(), "{status}");
    assert_eq!((hit, miss), (1, 0), "second use: from the cache");

    // An invalid token: refused, and looked up again the next time (never cached).
    for attempt in 1..=2 {
        let (status, (hit, miss, invalid)) =
            create_keypair(&bed, "gAAAAA-not-a-token", &format!("kp-bad-{attempt}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
        assert_eq!((hit, miss, invalid), (0, 1, 1), "attempt {attempt}");
    }

    // A revoked token is forgotten: the next use asks Keystone, which refuses it.
    let revoked = login(&bed, "").await;
    let resp = SimClient::new()
        .send(
            Method::DELETE,
            &format!("{}/v3/auth/tokens", bed.gateway_url("identity")),
            None,
            &[("x-auth-token", &revoked), ("x-subject-token", &revoked)],
        )
        .await
        .expect("revoke");
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    let (status, (hit, miss, invalid)) = create_keypair(&bed, &revoked, "kp-revoked").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (hit, miss, invalid),
        (0, 1, 1),
        "a revoked token is not a hit"
    );
}
