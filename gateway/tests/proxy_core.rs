//! The proxy core against a scripted upstream: header hygiene, request ids, error mapping
//! (502/504 in the native format), Location and link rewriting, microversion headers,
//! bounded buffering and graceful shutdown. The gateway runs in-process on free ports.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use drgw::config::Config;
use drgw::server::BoundGateway;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// A free port on 127.0.0.1 (bound then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An upstream that answers by path, echoing what it received.
async fn upstream(
    req: Request<Incoming>,
    base: Arc<String>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), json!(v.to_str().unwrap_or(""))))
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json_resp = |status: u16, v: Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("connection", "keep-alive, x-upstream-private")
            .header("x-upstream-private", "secret-hop")
            .header("openstack-api-version", "compute 2.90")
            .header("vary", "OpenStack-API-Version")
            .body(Full::new(Bytes::from(v.to_string())))
            .unwrap()
    };
    Ok(match path.as_str() {
        "/v2.1/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            json_resp(200, json!({}))
        }
        "/v2.1/servers" => {
            let mut r = json_resp(
                202,
                json!({"server": {"id": "abc", "links": [{"rel": "self", "href": format!("{base}/v2.1/servers/abc")}]}}),
            );
            r.headers_mut().insert(
                "location",
                format!("{base}/v2.1/servers/abc").parse().unwrap(),
            );
            r
        }
        "/v2.1/flavors" => json_resp(
            200,
            json!({"flavors": [{"id": "1", "links": [{"href": format!("{base}/v2.1/flavors/1")}]}],
                   "flavors_links": [{"rel": "next", "href": format!("{base}/v2.1/flavors?marker=1")}],
                   "description": "http://elsewhere.example.com/v2.1 stays"}),
        ),
        "/v2.1/plain" => Response::builder()
            .header("content-type", "application/octet-stream")
            .body(Full::new(Bytes::from(format!(
                "{base} is not rewritten in binary bodies"
            ))))
            .unwrap(),
        _ => json_resp(
            200,
            json!({"path": path, "headers": headers, "body_len": body.len()}),
        ),
    })
}

async fn start_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = Arc::new(format!("http://{addr}"));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let base = base.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| upstream(req, base.clone()));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

struct TestGateway {
    compute: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start_gateway(upstream: SocketAddr, dead: SocketAddr) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let up = format!("http://{upstream}");
    let port = free_port();
    let text = format!(
        r#"
[gateway]
state_dir = "{state}"
max_body_bytes = 1024
[upstream]
request_timeout = "1s"
connect_timeout = "1s"
[sites.primary]
identity = "{up}"
compute = "{up}"
network = "http://{dead}"
volumev3 = "{up}"
image = "{up}"
[sites.recovery]
identity = "{up}"
compute = "{up}"
network = "{up}"
volumev3 = "{up}"
image = "{up}"
[listeners.shared]
listen = "127.0.0.1:{port}"
public_url = "http://gateway.test:{port}"
[admin]
listen = "127.0.0.1:0"
"#,
        state = dir.path().display()
    );
    let config = Config::parse(&text, dir.path()).expect("config");
    let bound = BoundGateway::bind(config).await.expect("bind");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.serve(async move {
        let _ = rx.await;
    }));
    TestGateway {
        compute: format!("http://127.0.0.1:{port}/compute"),
        shutdown: Some(tx),
        task,
        _dir: dir,
    }
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (StatusCode, http::HeaderMap, Bytes) {
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .expect("gateway answers");
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn proxy_core_behaviour() {
    let (up, _up_task) = start_upstream().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // released: connections are refused
    let gw = start_gateway(up, dead).await;

    // Header hygiene: hop-by-hop removed both ways, X-Forwarded-* set, request id generated.
    let (status, headers, body) = get(
        &format!("{}/v2.1/echo?x=1", gw.compute),
        &[
            ("connection", "x-client-private"),
            ("x-client-private", "hop"),
            ("openstack-api-version", "compute 2.90"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let echoed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echoed["path"], "/v2.1/echo");
    let h = &echoed["headers"];
    assert!(
        h.get("x-client-private").is_none(),
        "hop-by-hop header forwarded: {h}"
    );
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert!(h["x-forwarded-host"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(h["host"], up.to_string(), "upstream sees its own host");
    assert_eq!(
        h["openstack-api-version"], "compute 2.90",
        "microversion passes through"
    );
    let rid = h["x-openstack-request-id"].as_str().unwrap();
    assert!(rid.starts_with("req-") && rid.len() == 40, "{rid}");
    assert!(
        headers.get("x-upstream-private").is_none(),
        "upstream hop-by-hop header leaked"
    );
    assert_eq!(headers["openstack-api-version"], "compute 2.90");
    assert_eq!(headers["vary"], "OpenStack-API-Version");
    assert_eq!(
        headers["x-openstack-request-id"], rid,
        "client sees the same request id"
    );

    // A well-formed client request id is passed through.
    let mine = "req-0f0e2a4c-6a5e-4f8e-9a53-0d0a6c1e0b11";
    let (_, headers, body) = get(
        &format!("{}/v2.1/echo", gw.compute),
        &[("x-openstack-request-id", mine)],
    )
    .await;
    let echoed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echoed["headers"]["x-openstack-request-id"], mine);
    assert_eq!(headers["x-openstack-request-id"], mine);

    // Location and absolute links point at the gateway; other URLs stay.
    let client_base = gw.compute.replace("127.0.0.1", "gateway.test");
    let (status, headers, body) = get(&format!("{}/v2.1/servers", gw.compute), &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        headers["location"],
        format!("{client_base}/v2.1/servers/abc").as_str()
    );
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["server"]["links"][0]["href"],
        format!("{client_base}/v2.1/servers/abc")
    );
    assert_eq!(
        headers["content-length"],
        body.len().to_string().as_str(),
        "content-length fixed after rewrite"
    );
    let (_, _, body) = get(&format!("{}/v2.1/flavors", gw.compute), &[]).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["flavors_links"][0]["href"],
        format!("{client_base}/v2.1/flavors?marker=1")
    );
    assert_eq!(
        v["flavors"][0]["links"][0]["href"],
        format!("{client_base}/v2.1/flavors/1")
    );
    assert_eq!(v["description"], "http://elsewhere.example.com/v2.1 stays");
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.contains(&up.to_string()),
        "upstream URL leaked: {text}"
    );
    // Non-JSON bodies stream through untouched.
    let (_, _, body) = get(&format!("{}/v2.1/plain", gw.compute), &[]).await;
    assert!(String::from_utf8_lossy(&body).contains(&up.to_string()));

    // Upstream timeout → 504, refused → 502, both in the service's native format.
    let (status, _, body) = get(&format!("{}/v2.1/slow", gw.compute), &[]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let v: Value = serde_json::from_slice(&body).expect("native JSON fault");
    assert_eq!(
        v.as_object().unwrap().values().next().unwrap()["code"],
        504,
        "{v}"
    );
    let network = gw.compute.replace("/compute", "/network");
    let (status, _, body) = get(&format!("{network}/v2.0/networks"), &[]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let v: Value = serde_json::from_slice(&body).expect("native JSON fault");
    assert!(v.get("NeutronError").is_some(), "Neutron format: {v}");

    // Unknown prefix on the shared listener.
    let (status, _, _) = get(&gw.compute.replace("/compute", "/nothing-here"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Graceful shutdown completes.
    let mut gw = gw;
    gw.shutdown.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), gw.task)
        .await
        .expect("shut down in time")
        .unwrap();
}

/// TLS listener: rustls with ALPN, so an h2-capable client gets HTTP/2 end to end, and the
/// upstream still gets HTTP/1.1.
#[tokio::test]
async fn tls_listener_negotiates_h2() {
    let (up, _up_task) = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success());
    let port = free_port();
    let upstream = format!("http://{up}");
    let site = |name: &str| {
        format!("[sites.{name}]\nidentity = \"{upstream}\"\ncompute = \"{upstream}\"\nnetwork = \"{upstream}\"\nvolumev3 = \"{upstream}\"\nimage = \"{upstream}\"\n")
    };
    let text = format!(
        "[gateway]\nstate_dir = \"{}\"\n{}{}[listeners.shared]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"https://localhost:{port}\"\ntls = {{ cert = \"{}\", key = \"{}\" }}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        dir.path().display(),
        site("primary"),
        site("recovery"),
        cert.display(),
        key.display()
    );
    let config = Config::parse(&text, dir.path()).expect("config");
    let bound = BoundGateway::bind(config).await.expect("bind");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.serve(async move {
        let _ = rx.await;
    }));

    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut std::fs::read(&cert).unwrap().as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .expect("TLS handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("https://localhost:{port}/compute/v2.1/echo"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["headers"]["x-forwarded-proto"], "https");
    let _ = tx.send(());
    let _ = task.await;
}
