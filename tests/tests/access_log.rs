//! The access log, through the real binary (`drgw serve` on the sandbox configuration,
//! which sets `access_log = "access.log"`): every answer, whichever path served it (the
//! fast lane, hyper over HTTP/1.1 or HTTP/2, a refusal of a broken request), is one JSON
//! line with the request id the client saw; no token or password is in the file; after a
//! rotation and SIGHUP the gateway writes to a new file; a clean stop loses no line.
//!
//! The two sites are simulators in this process.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use drgw_tests::http1;
use drgw_tests::mirror_harness::eventually;
use drgw_tests::sim::client::SimClient;
use drgw_tests::sim::{Site, SiteConfig};
use drgw_tests::testbed::{access_log_lines, create_tenant, GatewayProcess};
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::net::TcpStream;

/// A request id as OpenStack makes them (the gateway keeps a client's only in this form).
fn fresh_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4())
}

/// The request id of an answer (the service's own, for one the service gave).
fn answered_id(headers: &http::HeaderMap) -> &str {
    headers
        .get("x-openstack-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("every answer has a request id")
}

/// The lines of the log at `path` with this request id.
fn lines_of(path: &Path, request_id: &str) -> Vec<Value> {
    access_log_lines(path)
        .into_iter()
        .filter(|l| l["request_id"] == request_id)
        .collect()
}

/// Waits (up to 5 s) for the line of `request_id` in `path`, and checks it is the only one.
async fn line_of(path: &Path, request_id: &str) -> Value {
    eventually(
        &format!("a line for {request_id}"),
        Duration::from_secs(5),
        || async { !lines_of(path, request_id).is_empty() },
    )
    .await;
    let found = lines_of(path, request_id);
    assert_eq!(found.len(), 1, "one line per request: {found:?}");
    found.into_iter().next().unwrap()
}

/// Each named field of `line` has its expected value.
fn assert_fields(line: &Value, expected: &[(&str, Value)]) {
    for (field, value) in expected {
        assert_eq!(&line[field], value, "{field}: {line}");
    }
}

/// The fields every line has, whatever served the request.
fn assert_common(line: &Value) {
    assert_eq!(line["site"], "primary", "{line}");
    let client = line["client"].as_str().expect("client");
    assert!(client.starts_with("127.0.0.1:"), "{line}");
    let time = line["time"].as_str().expect("time");
    assert!(
        time.ends_with('Z') && time.len() == "2026-11-28T16:00:00.000Z".len(),
        "{line}"
    );
    assert!(
        line["duration_ms"].as_f64().expect("duration") >= 0.0,
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_one_line_and_the_log_follows_a_rotation() {
    let primary = Site::start(SiteConfig::named("primary")).await.unwrap();
    let recovery = Site::start(SiteConfig::named("recovery")).await.unwrap();
    let mut gw = GatewayProcess::in_front_of(&primary, &recovery)
        .await
        .expect("drgw serve");
    let log = gw.dir.path().join("access.log");
    create_tenant(&primary, "log-project", "log-user", "log-secret-pw")
        .await
        .unwrap();
    let mut tenant = SimClient::new();
    let login = tenant
        .login(
            &format!("{}/v3", gw.url("identity")),
            "log-user",
            "log-secret-pw",
            "log-project",
        )
        .await
        .expect("login through the gateway");
    let token = tenant.token.clone().expect("token");
    let project_id = login.json["token"]["project"]["id"].clone();
    assert!(project_id.is_string(), "{}", login.json);

    // A plain GET (the fast lane), with the client's own request id.
    let flavors = format!("{}/v2.1/flavors?limit=5", gw.url("compute"));
    let id = fresh_id();
    let read = tenant
        .send(
            Method::GET,
            &flavors,
            None,
            &[("x-openstack-request-id", &id)],
        )
        .await
        .unwrap();
    assert_eq!(read.status, 200);
    let line = line_of(&log, answered_id(&read.headers)).await;
    assert_common(&line);
    assert_eq!(
        line["global_request_id"], id,
        "the id sent upstream: {line}"
    );
    assert_fields(
        &line,
        &[
            ("method", json!("GET")),
            ("target", json!("/v2.1/flavors?limit=5")),
            ("service", json!("compute")),
            ("action", json!("read")),
            ("status", json!(200)),
            // A read is not looked up: no tenant, no tier.
            ("project", Value::Null),
            ("tier", Value::Null),
        ],
    );

    // A protected create (hyper, the general path), with who made it and the tier the
    // policy chose (a project no rule names: the sandbox policy's default, bronze).
    let networks = format!("{}/v2.0/networks", gw.url("network"));
    let created = tenant
        .post(&networks, &json!({"network": {"name": "logged"}}))
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.json);
    let line = line_of(&log, answered_id(&created.headers)).await;
    assert_common(&line);
    assert_fields(
        &line,
        &[
            ("method", json!("POST")),
            ("target", json!("/v2.0/networks")),
            ("service", json!("network")),
            ("action", json!("create")),
            ("status", json!(201)),
            ("project", project_id.clone()),
            ("tier", json!("bronze")),
        ],
    );

    // HTTP/2 (prior knowledge): hyper serves the whole connection.
    let h2_id = fresh_id();
    let h2: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let req = http::Request::get(format!("{}/v3/projects/nonexistent", gw.url("identity")))
        .header("x-auth-token", &token)
        .header("x-openstack-request-id", &h2_id)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = h2.request(req).await.expect("h2 answer");
    let status = resp.status().as_u16();
    let answered = answered_id(resp.headers()).to_string();
    let _ = resp.into_body().collect().await;
    let line = line_of(&log, &answered).await;
    assert_common(&line);
    assert_eq!(
        line["global_request_id"], h2_id,
        "the id sent upstream: {line}"
    );
    assert_fields(
        &line,
        &[
            ("method", json!("GET")),
            ("service", json!("identity")),
            ("status", json!(status)),
        ],
    );

    // A request the lane refuses (not HTTP): 400, logged with the request id it was given.
    let mut sock = TcpStream::connect(gw.url("compute").trim_start_matches("http://"))
        .await
        .unwrap();
    let mut buf = Vec::new();
    let refused = http1::request(
        &mut sock,
        &mut buf,
        b"GET /v2.1/servers HTTP/1.1\r\nbad header\r\n\r\n",
    )
    .await;
    assert_eq!(refused.status, 400);
    let id = refused
        .header("x-openstack-request-id")
        .expect("request id")
        .to_string();
    let line = line_of(&log, &id).await;
    assert_common(&line);
    assert_eq!(
        line["global_request_id"], id,
        "the gateway's own answer: {line}"
    );
    assert_fields(
        &line,
        &[
            ("method", json!("GET")),
            ("target", json!("/v2.1/servers")),
            ("service", json!("compute")),
            ("status", json!(400)),
        ],
    );

    // Neither the token nor the password is anywhere in the log.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(&token), "the token is in the access log");
    assert!(
        !text.contains("log-secret-pw"),
        "the password is in the access log"
    );

    // logrotate: the file is moved, SIGHUP; the next lines go to a new file.
    let before = access_log_lines(&log).len();
    let rotated = gw.dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let hup = tokio::process::Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .await
        .unwrap();
    assert!(hup.success());
    let mut n = 0;
    eventually("a line in the new file", Duration::from_secs(10), || {
        n += 1;
        let (tenant, flavors, log) = (&tenant, &flavors, &log);
        async move {
            let read = tenant.get(flavors).await.unwrap();
            assert_eq!(read.status, 200);
            tokio::time::sleep(Duration::from_millis(100)).await;
            !lines_of(log, answered_id(&read.headers)).is_empty()
        }
    })
    .await;
    // Lines written before the signal was seen went to the moved file: none is lost or
    // written twice.
    let (old, new) = (access_log_lines(&rotated), access_log_lines(&log));
    assert!(
        old.len() >= before,
        "{} lines before, {} kept",
        before,
        old.len()
    );
    assert_eq!(
        old.len() + new.len(),
        before + n,
        "one line per request across both files"
    );

    // A clean stop writes every line out: the last request's is there after the exit.
    let last = tenant.get(&flavors).await.unwrap();
    assert_eq!(last.status, 200);
    let last_id = answered_id(&last.headers);
    // (The directory outlives the process: `stop` drops what it is given.)
    let dir = std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap());
    let exit = gw.stop().await.expect("drgw serve exits on SIGTERM");
    assert!(exit.success(), "{exit}");
    assert_eq!(lines_of(&dir.path().join("access.log"), last_id).len(), 1);
}
