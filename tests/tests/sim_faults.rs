//! Simulator fault injection (status, latency, reset, site down/up) and request recording,
//! through the Rust API and the control listener.

use std::time::{Duration, Instant};

use drgw_tests::sim::client::SimClient;
use drgw_tests::sim::{Service, Site, SiteConfig};
use serde_json::json;

#[tokio::test]
async fn injected_status_is_native_and_counted() -> anyhow::Result<()> {
    let site = Site::start(SiteConfig::named("f1")).await?;
    let e = site.endpoints();
    let mut c = SimClient::new();
    c.login(&e.auth_url(), "admin", "secret", "admin").await?;
    site.faults().fail(Some(Service::Compute), 503, Some(2));
    for _ in 0..2 {
        let r = c.get(&format!("{}/v2.1/flavors", e.compute)).await?;
        assert_eq!(r.status, 503);
        assert_eq!(r.json["serviceUnavailable"]["code"], 503);
    }
    // Other services are unaffected, and the rule is used up.
    assert_eq!(
        c.get(&format!("{}/v2.0/networks", e.network)).await?.status,
        200
    );
    assert_eq!(
        c.get(&format!("{}/v2.1/flavors", e.compute)).await?.status,
        200
    );
    site.faults().fail(Some(Service::Network), 500, None);
    let r = c.get(&format!("{}/v2.0/networks", e.network)).await?;
    assert_eq!(r.status, 500);
    assert!(r.json["NeutronError"]["message"].is_string());
    site.faults().clear();
    assert_eq!(
        c.get(&format!("{}/v2.0/networks", e.network)).await?.status,
        200
    );
    site.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn latency_delays_requests() -> anyhow::Result<()> {
    let site = Site::start(SiteConfig::named("f2")).await?;
    let e = site.endpoints();
    site.faults().latency(None, Duration::from_secs(2), Some(1));
    let started = Instant::now();
    let r = SimClient::new().get(&e.identity).await?;
    assert_eq!(r.status, 300);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    SimClient::new().get(&e.identity).await?;
    assert!(started.elapsed() < Duration::from_secs(1));
    site.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn reset_closes_the_connection() -> anyhow::Result<()> {
    let site = Site::start(SiteConfig::named("f3")).await?;
    let e = site.endpoints();
    site.faults().reset(Some(Service::Image), Some(1));
    let err = SimClient::new().get(&e.image).await;
    assert!(err.is_err(), "expected a transport error, got {err:?}");
    assert_eq!(SimClient::new().get(&e.image).await?.status, 300);
    site.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn site_down_refuses_connections_then_comes_back() -> anyhow::Result<()> {
    let site = Site::start(SiteConfig::named("f4")).await?;
    let e = site.endpoints();
    let mut c = SimClient::new();
    c.login(&e.auth_url(), "admin", "secret", "admin").await?;
    site.down().await;
    assert!(site.is_down());
    let addr = e.compute.trim_start_matches("http://").to_string();
    let refused = tokio::net::TcpStream::connect(&addr).await;
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
    assert!(c.get(&format!("{}/v2.1/flavors", e.compute)).await.is_err());
    site.up().await?;
    assert_eq!(site.endpoints(), e);
    // State (and the token) survive a down/up.
    let r = c.get(&format!("{}/v2.1/flavors", e.compute)).await?;
    assert_eq!(r.status, 200);
    site.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn records_every_request_in_order() -> anyhow::Result<()> {
    let site = Site::start(SiteConfig::named("f5")).await?;
    let e = site.endpoints();
    let mut c = SimClient::new();
    c.login(&e.auth_url(), "admin", "secret", "admin").await?;
    c.post(
        &format!("{}/v2.0/networks?x=1", e.network),
        &json!({"network": {"name": "n1"}}),
    )
    .await?;
    site.faults().fail(Some(Service::Compute), 503, Some(1));
    c.get(&format!("{}/v2.1/servers", e.compute)).await?;
    let all = site.requests().all();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].service, Service::Identity);
    assert_eq!(all[0].method, "POST");
    assert_eq!(all[0].status, Some(201));
    let net = &all[1];
    assert_eq!(
        (net.method.as_str(), net.path.as_str(), net.query.as_str()),
        ("POST", "/v2.0/networks", "x=1")
    );
    assert_eq!(net.body, Some(json!({"network": {"name": "n1"}})));
    assert!(net.header("x-auth-token").is_some());
    assert_eq!(net.status, Some(201));
    assert_eq!(all[2].status, Some(503));
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(site.requests().of(Service::Network).len(), 1);
    site.requests().clear();
    assert!(site.requests().all().is_empty());
    site.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn control_api_drives_faults_down_up_and_record() -> anyhow::Result<()> {
    let site = Site::start(SiteConfig::named("f6")).await?;
    let e = site.endpoints();
    let ctl = SimClient::new();
    let desc = ctl.get(&e.control).await?;
    assert_eq!(desc.json["name"], "f6");
    assert_eq!(desc.json["endpoints"]["compute"], json!(e.compute));
    let f = ctl
        .post(
            &format!("{}/faults", e.control),
            &json!({"service": "image", "status": 503, "count": 1}),
        )
        .await?;
    assert_eq!(f.status, 201);
    assert_eq!(SimClient::new().get(&e.image).await?.status, 503);
    assert_eq!(SimClient::new().get(&e.image).await?.status, 300);
    let bad = ctl
        .post(
            &format!("{}/faults", e.control),
            &json!({"service": "nope", "status": 503}),
        )
        .await?;
    assert_eq!(bad.status, 400);
    ctl.post(&format!("{}/faults", e.control), &json!({"latency_ms": 50}))
        .await?;
    assert_eq!(
        ctl.get(&format!("{}/faults", e.control)).await?.json["faults"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        ctl.delete(&format!("{}/faults", e.control)).await?.status,
        204
    );

    let rec = ctl
        .get(&format!("{}/requests?service=image", e.control))
        .await?;
    assert_eq!(rec.json["requests"].as_array().map(Vec::len), Some(2));
    assert_eq!(rec.json["requests"][0]["status"], 503);
    assert_eq!(
        ctl.delete(&format!("{}/requests", e.control)).await?.status,
        204
    );
    assert_eq!(
        ctl.get(&format!("{}/requests", e.control)).await?.json["requests"],
        json!([])
    );

    assert_eq!(
        ctl.post(&format!("{}/down", e.control), &json!({}))
            .await?
            .status,
        200
    );
    assert!(SimClient::new().get(&e.identity).await.is_err());
    assert_eq!(
        ctl.get(&format!("{}/health", e.control)).await?.json["down"],
        true
    );
    assert_eq!(
        ctl.post(&format!("{}/up", e.control), &json!({}))
            .await?
            .status,
        200
    );
    assert_eq!(SimClient::new().get(&e.identity).await?.status, 300);
    site.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn fixed_base_port_layout() -> anyhow::Result<()> {
    // Try a few random blocks of ten ports; another process may hold one.
    let mut last = None;
    for _ in 0..10 {
        let base = 30_000 + rand::random::<u16>() % 30_000;
        match Site::start(SiteConfig {
            base_port: Some(base),
            ..SiteConfig::named("f7")
        })
        .await
        {
            Ok(site) => {
                let e = site.endpoints();
                assert_eq!(e.identity, format!("http://127.0.0.1:{base}"));
                assert_eq!(e.compute, format!("http://127.0.0.1:{}", base + 1));
                assert_eq!(e.image, format!("http://127.0.0.1:{}", base + 2));
                assert_eq!(e.volume, format!("http://127.0.0.1:{}", base + 3));
                assert_eq!(e.network, format!("http://127.0.0.1:{}", base + 4));
                assert_eq!(e.control, format!("http://127.0.0.1:{}", base + 9));
                site.shutdown().await;
                return Ok(());
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
}
