//! Image data streams through the gateway: a 1 GiB upload and download through a `drgw serve`
//! process, with the gateway's peak RSS growth measured (VmHWM) and required to stay under
//! 32 MiB. The data is generated on the fly by the client and checked by length and SHA-256
//! on the way back; the simulated Glance stores it in a file.

use std::time::Instant;

use bytes::Bytes;
use drgw_tests::sim::{Site, SiteConfig};
use drgw_tests::testbed::GatewayProcess;
use http_body_util::{BodyExt, StreamBody};
use sha2::{Digest, Sha256};

const TOTAL: u64 = 1 << 30;
const CHUNK: usize = 256 * 1024;

/// Deterministic, incompressible-enough data: chunk `i` is filled from a xorshift stream.
fn chunk(i: u64) -> Bytes {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = vec![0u8; CHUNK];
    for word in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
    }
    Bytes::from(out)
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_image_streams_through_with_bounded_memory() {
    let primary = Site::start(SiteConfig::named("primary")).await.unwrap();
    let recovery = Site::start(SiteConfig::named("recovery")).await.unwrap();
    let gw = GatewayProcess::in_front_of(&primary, &recovery)
        .await
        .expect("drgw serve starts");
    let token = primary.issue_token("demo", "demo").expect("demo token");
    let image_url = gw.url("image");
    let client: hyper_util::client::legacy::Client<_, drgw::body::ProxyBody> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());

    // Create the image record.
    let req = http::Request::post(format!("{image_url}/v2/images"))
        .header("x-auth-token", &token)
        .header("content-type", "application/json")
        .body(drgw::body::full(
            r#"{"name": "big", "disk_format": "raw", "container_format": "bare"}"#,
        ))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 201);
    let created: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let id = created["id"].as_str().unwrap().to_string();

    let before = vm_hwm_kib(gw.pid());
    assert!(before > 0, "cannot read the gateway's VmHWM");

    // Upload 1 GiB, generated while it is sent.
    let mut hasher = Sha256::new();
    let chunks: Vec<u64> = (0..TOTAL / CHUNK as u64).collect();
    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, drgw::body::BoxError>>(4);
    let producer = tokio::spawn(async move {
        let mut h = Sha256::new();
        for i in chunks {
            let c = chunk(i);
            h.update(&c);
            if tx.send(Ok(http_body::Frame::data(c))).await.is_err() {
                break;
            }
        }
        h.finalize()
    });
    let body = StreamBody::new(tokio_stream_from(rx));
    let started = Instant::now();
    let req = http::Request::put(format!("{image_url}/v2/images/{id}/file"))
        .header("x-auth-token", &token)
        .header("content-type", "application/octet-stream")
        .body(drgw::body::stream(body))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    assert_eq!(status, 204, "upload through the gateway");
    let sent_digest = producer.await.unwrap();
    let upload_secs = started.elapsed().as_secs_f64();

    // Download it again and check length and digest.
    let started = Instant::now();
    let req = http::Request::get(format!("{image_url}/v2/images/{id}/file"))
        .header("x-auth-token", &token)
        .body(drgw::body::empty())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut received: u64 = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            received += data.len() as u64;
            hasher.update(&data);
        }
    }
    let download_secs = started.elapsed().as_secs_f64();
    assert_eq!(received, TOTAL);
    assert_eq!(
        hasher.finalize(),
        sent_digest,
        "downloaded bytes differ from uploaded ones"
    );

    let after = vm_hwm_kib(gw.pid());
    let growth_mib = (after.saturating_sub(before)) as f64 / 1024.0;
    println!(
        "streaming: 1 GiB up in {upload_secs:.1} s ({:.0} MiB/s), down in {download_secs:.1} s ({:.0} MiB/s); \
         gateway peak RSS {:.1} MiB -> {:.1} MiB (growth {growth_mib:.1} MiB, limit 32 MiB)",
        1024.0 / upload_secs,
        1024.0 / download_secs,
        before as f64 / 1024.0,
        after as f64 / 1024.0,
    );
    assert!(
        growth_mib < 32.0,
        "gateway RSS grew by {growth_mib:.1} MiB while streaming 1 GiB"
    );
    gw.stop().await;
    primary.shutdown().await;
    recovery.shutdown().await;
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
