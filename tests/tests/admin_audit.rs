//! The admin API's audit trail, through the real binary: a call that may change something is
//! logged with who made it (the admin token file's holder or the Keystone user), a refused
//! call with why, and neither ever with the credential it carried; a failover's report names
//! who asked for it; `drgw_admin_requests_total{route,status}` counts both.
//!
//! The two sites are simulators in this process.

use drgw_tests::sim::{Site, SiteConfig};
use drgw_tests::testbed::GatewayProcess;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// One admin call: `(status, body)`.
async fn admin_call(
    gw: &GatewayProcess,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{}{path}", gw.ports.admin));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::from(body.to_string())).unwrap())
        .await
        .expect("the admin listener answers");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The audit lines of the gateway's standard error.
fn audit_lines(gw: &GatewayProcess) -> Vec<String> {
    gw.stderr()
        .lines()
        .filter(|l| l.contains("drgw::admin"))
        .map(str::to_owned)
        .collect()
}

/// The value of `drgw_admin_requests_total` for a route and status (0 when absent).
fn admin_count(metrics: &str, route: &str, status: u16) -> u64 {
    let series = format!("drgw_admin_requests_total{{route=\"{route}\",status=\"{status}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map(|v| v.trim().parse().expect("a count"))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_are_audited_with_their_caller_and_never_their_credentials() {
    let primary = Site::start(SiteConfig::named("primary")).await.unwrap();
    let recovery = Site::start(SiteConfig::named("recovery")).await.unwrap();
    let gw = GatewayProcess::in_front_of_logging(&primary, &recovery)
        .await
        .expect("drgw serve");
    let bearer = format!("Bearer {}", gw.admin_token());
    let admin_token = primary.issue_token("admin", "admin").expect("admin token");
    let demo_token = primary.issue_token("demo", "demo").expect("demo token");
    let wrong_bearer = "Bearer not-the-admin-token-0123456789";

    // Reads with the token file's bearer token: answered, not logged at info.
    let (status, _) = admin_call(&gw, "GET", "/v1/status", &[("authorization", &bearer)], "").await;
    assert_eq!(status, 200);
    // A change with it: logged with its caller.
    let (status, body) = admin_call(
        &gw,
        "POST",
        "/v1/policies/reload",
        &[("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Refused: a wrong bearer token, a member's Keystone token, nothing at all.
    for (headers, reason) in [
        (vec![("authorization", wrong_bearer)], "wrong bearer token"),
        (
            vec![("x-auth-token", demo_token.as_str())],
            "Keystone token without the admin role",
        ),
        (
            vec![("x-auth-token", "gAAAA-no-such-token")],
            "Keystone token not valid",
        ),
        (vec![], "no credentials"),
    ] {
        let (status, _) = admin_call(
            &gw,
            "POST",
            "/v1/failover",
            &headers,
            r#"{"to": "recovery"}"#,
        )
        .await;
        assert_eq!(status, 401, "{reason}");
        assert!(
            audit_lines(&gw)
                .iter()
                .any(|l| l.contains("admin call refused") && l.contains(reason)),
            "a refusal line saying {reason:?}: {:#?}",
            audit_lines(&gw)
        );
    }
    // A planned failover by the Keystone admin: its report names them.
    let (status, body) = admin_call(
        &gw,
        "POST",
        "/v1/failover",
        &[("x-auth-token", &admin_token)],
        r#"{"to": "recovery", "mode": "planned", "drain_timeout_s": 30}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let by = answer["report"]["requested_by"]
        .as_str()
        .expect("requested_by")
        .to_string();
    assert!(
        by.starts_with("keystone:admin (") && by.ends_with(" in project admin"),
        "{by}"
    );
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .contains(&format!("requested by: {by}")),
        "{answer}"
    );
    let report_id = answer["report"]["id"].as_str().unwrap();
    let (status, kept) = admin_call(
        &gw,
        "GET",
        &format!("/v1/failovers/{report_id}"),
        &[("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(status, 200, "{kept}");
    let kept: Value = serde_json::from_str(&kept).unwrap();
    assert_eq!(kept["requested_by"], by.as_str(), "the kept report: {kept}");

    let lines = audit_lines(&gw);
    let changes: Vec<&String> = lines.iter().filter(|l| l.contains("admin call ")).collect();
    assert!(
        changes.iter().any(|l| l.contains("caller=admin-token-file")
            && l.contains("method=POST")
            && l.contains("path=/v1/policies/reload")
            && l.contains("status=200")),
        "the reload's line: {lines:#?}"
    );
    assert!(
        changes.iter().any(|l| l.contains(&format!("caller={by}"))
            && l.contains("path=/v1/failover")
            && l.contains("status=200")
            && l.contains("client=127.0.0.1:")),
        "the failover's line: {lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("/v1/status")),
        "reads are not logged at info: {lines:#?}"
    );
    // No credential in any line, whoever sent it.
    let all = gw.stderr();
    for secret in [
        gw.admin_token(),
        admin_token.clone(),
        demo_token.clone(),
        "not-the-admin-token-0123456789".to_string(),
        "gAAAA-no-such-token".to_string(),
    ] {
        assert!(!all.contains(&secret), "a credential reached the log");
    }

    let (status, metrics) =
        admin_call(&gw, "GET", "/metrics", &[("authorization", &bearer)], "").await;
    assert_eq!(status, 200);
    assert_eq!(admin_count(&metrics, "failover", 401), 4, "{metrics}");
    assert_eq!(admin_count(&metrics, "failover", 200), 1);
    assert_eq!(admin_count(&metrics, "policies_reload", 200), 1);
    assert_eq!(admin_count(&metrics, "status", 200), 1);
    assert!(!metrics.contains(&admin_token) && !metrics.contains(&gw.admin_token()));
    gw.stop().await;
}
