//! A TLS listener: certificates from the `openssl` CLI (a test CA and a leaf for
//! 127.0.0.1), the compute listener on TLS, clients that negotiate HTTP/1.1 (served by the
//! fast lane and, for a change, the general path on the same connection) and h2 (hyper);
//! clients that send nothing (before the TLS handshake or after it) or stop inside a head
//! are disconnected.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use drgw_tests::http1::{get, request};
use drgw_tests::mirror_harness::eventually;
use drgw_tests::testbed::{with_gateway_settings, TestBed};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Writes `ca.pem`, and `leaf.pem`/`leaf.key` for 127.0.0.1 signed by it, into `dir`.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl CLI");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    openssl(
        &[
            &["req", "-x509", "-nodes", "-days", "2"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=drgw test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req", "-nodes"][..],
            &ec,
            &[
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "leaf.pem",
        "-extfile",
        "leaf.ext",
    ]);
}

/// The test bed's configuration with the compute listener on TLS (the certificate and key
/// [`make_certificates`] wrote into `certs`) and its public URL saying https.
fn compute_on_tls(config: &str, certs: &Path) -> String {
    let (cert, key) = (certs.join("leaf.pem"), certs.join("leaf.key"));
    let start = config
        .find("[listeners.compute]")
        .expect("compute listener");
    let end = start + config[start..].find("\n\n").expect("end of section");
    let section = config[start..end].replace("public_url = \"http://", "public_url = \"https://");
    format!(
        "{}{section}\ntls = {{ cert = \"{}\", key = \"{}\" }}{}",
        &config[..start],
        cert.display(),
        key.display(),
        &config[end..]
    )
}

/// A TLS connection to `port` that trusts the test CA and offers `alpn`.
async fn connect(ca: &Path, port: u16, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the gateway")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_and_h2_are_served_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let bed = TestBed::start_with(|text| compute_on_tls(&text, certs.path()))
        .await
        .expect("test bed");
    let (client, _) = bed.login("demo", "demo", "demo").await.expect("demo login");
    let token = client.token.clone().expect("a token");
    let port = bed.ports.compute;
    let lanes = &bed.gateway.gateway.metrics.proxy.fast_lane;
    let ca = certs.path().join("ca.pem");

    // HTTP/1.1: a GET on the lane, a create through the general path, and a GET that
    // sees it, on one TLS connection.
    let mut tls = connect(&ca, port, b"http/1.1").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (relayed, general) = (lanes.relayed.get(), lanes.general.get());
    let mut buf = Vec::new();
    let auth = |method: &str, path: &str, body: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nx-auth-token: {token}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let flavors = request(
        &mut tls,
        &mut buf,
        auth("GET", "/v2.1/flavors", "").as_bytes(),
    )
    .await;
    assert_eq!(flavors.status, 200, "{}", flavors.head);
    let listed: serde_json::Value = serde_json::from_slice(&flavors.body).unwrap();
    assert!(listed["flavors"].as_array().is_some_and(|f| !f.is_empty()));
    let created = request(
        &mut tls,
        &mut buf,
        auth(
            "POST",
            "/v2.1/os-keypairs",
            r#"{"keypair": {"name": "over-tls"}}"#,
        )
        .as_bytes(),
    )
    .await;
    assert!(
        created.status == 200 || created.status == 201,
        "{}",
        created.head
    );
    let keypairs = request(
        &mut tls,
        &mut buf,
        auth("GET", "/v2.1/os-keypairs", "").as_bytes(),
    )
    .await;
    assert_eq!(keypairs.status, 200);
    assert!(
        String::from_utf8_lossy(&keypairs.body).contains("\"over-tls\""),
        "{}",
        String::from_utf8_lossy(&keypairs.body)
    );
    // (The lane counts a relayed GET once its answer is written: the client may read the
    // answer first.)
    eventually("two GETs relayed", Duration::from_secs(5), || async {
        lanes.relayed.get() >= relayed + 2
    })
    .await;
    assert!(lanes.general.get() > general);
    // Without a token: the upstream's 401, relayed, naming the gateway's Keystone.
    let anonymous = get(&mut tls, &mut buf, "/v2.1/flavors").await;
    assert_eq!(anonymous.status, 401);
    let identity = bed.gateway_url("identity");
    assert!(
        anonymous
            .header("www-authenticate")
            .is_some_and(|v| v.contains(&identity)),
        "{}",
        anonymous.head
    );

    // h2, negotiated by ALPN: hyper serves it.
    let tls = connect(&ca, port, b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = http::Request::get(format!("https://127.0.0.1:{port}/v2.1/flavors"))
        .header("x-auth-token", &token)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.expect("h2 answer");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let listed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(listed["flavors"].as_array().is_some_and(|f| !f.is_empty()));

    bed.stop().await;
}

/// Reads from `sock` until the gateway closes it (EOF or reset); how long that took.
async fn until_closed<S: AsyncRead + Unpin>(sock: &mut S) -> Duration {
    let started = std::time::Instant::now();
    let mut chunk = [0u8; 1024];
    let closed = async {
        if let Ok(n @ 1..) = sock.read(&mut chunk).await {
            panic!("the gateway sent {n} bytes to a client that sent nothing");
        }
    };
    tokio::time::timeout(Duration::from_secs(20), closed)
        .await
        .expect("the gateway closes an idle connection");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_nothing_is_disconnected_after_the_header_timeout() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let bed = TestBed::start_with(|text| {
        let text = with_gateway_settings(&text, "client_header_timeout = \"1s\"\n");
        compute_on_tls(&text, certs.path())
    })
    .await
    .expect("test bed");
    let port = bed.ports.compute;
    let at_least = Duration::from_millis(900);

    // No TLS handshake: a TCP connection that never sends its ClientHello.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let waited = until_closed(&mut silent).await;
    assert!(waited >= at_least, "closed after {waited:?}");

    // A handshake, then no request.
    let mut tls = connect(&certs.path().join("ca.pem"), port, b"http/1.1").await;
    let waited = until_closed(&mut tls).await;
    assert!(waited >= at_least, "closed after {waited:?}");

    // A plain listener (the fast lane), and the admin listener: no request, then half of
    // one.
    let identity = bed.gateway_url("identity");
    let identity = identity.trim_start_matches("http://");
    let admin = format!("127.0.0.1:{}", bed.ports.admin);
    for addr in [identity, admin.as_str()] {
        for sent in [&b""[..], b"GET /metrics HTTP/1.1\r\nhost: drgw"] {
            let mut plain = TcpStream::connect(addr).await.unwrap();
            plain.write_all(sent).await.unwrap();
            let waited = until_closed(&mut plain).await;
            assert!(waited >= at_least, "{addr}: closed after {waited:?}");
        }
    }
    bed.stop().await;
}
