//! Crash test of the mirror journal, process level: tenants create Bronze networks through a
//! `drgw serve` process as fast as they can, the process is killed with SIGKILL in the middle
//! of the burst and started again on the same state directory; once the journal is drained,
//! every network whose create the tenants saw succeed exists at the recovery site exactly
//! once (no loss, no duplicate), and no network exists there twice.
//!
//! The two sites are simulators in this process; the gateway is the real binary.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drgw_tests::sim::client::SimClient;
use drgw_tests::sim::{FaultKind, Service, Site, SiteConfig, SiteHandle};
use drgw_tests::testbed::{create_tenant, GatewayProcess};
use http::{Method, StatusCode};
use serde_json::{json, Value};

/// Creates planned in all; the gateway is killed once `KILL_AFTER` have been acknowledged,
/// and the rest are sent after the restart.
const TOTAL: usize = 3000;
const KILL_AFTER: usize = 1500;
/// Tenants (projects no policy rule matches: Bronze by default) and clients per tenant.
const TENANTS: usize = 4;
const CLIENTS_PER_TENANT: usize = 3;
const PREFIX: &str = "crash-net-";

/// What the tenants saw.
#[derive(Default)]
struct Seen {
    /// Names of networks whose create answered 201 through the gateway.
    acked: Mutex<Vec<String>>,
    /// Creates that got no answer (connection refused or reset by the crash).
    unanswered: AtomicUsize,
    /// Answers other than 201, by status.
    other: Mutex<BTreeMap<u16, usize>>,
}

/// A tenant no policy rule names (Bronze by default), made at the primary, logged in
/// through the gateway.
async fn tenant(primary: &SiteHandle, gw_identity: &str, n: usize) -> SimClient {
    let (project, user) = (format!("crash-tenant-{n}"), format!("crash-user-{n}"));
    create_tenant(primary, &project, &user, "pw")
        .await
        .expect("tenant at the primary");
    let mut c = SimClient::new();
    c.login(&format!("{gw_identity}/v3"), &user, "pw", &project)
        .await
        .expect("tenant login through the gateway");
    c
}

/// Sends creates numbered from `next` until `limit` are taken or the gateway stops
/// answering. Returns when this client stops.
async fn client(
    c: SimClient,
    url: String,
    next: Arc<AtomicUsize>,
    limit: usize,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= limit {
            return;
        }
        let name = format!("{PREFIX}{i}");
        let body = json!({"network": {"name": name}});
        match c.send(Method::POST, &url, Some(&body), &[]).await {
            Ok(r) if r.status == StatusCode::CREATED => {
                assert_eq!(
                    r.header("x-dr-tier"),
                    Some("bronze"),
                    "the tenant's network is Bronze"
                );
                seen.acked.lock().unwrap().push(name);
            }
            Ok(r) => {
                *seen
                    .other
                    .lock()
                    .unwrap()
                    .entry(r.status.as_u16())
                    .or_default() += 1;
            }
            Err(_) => {
                // The gateway is gone: this create was not acknowledged. Stop this client.
                seen.unanswered.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// Runs `TENANTS * CLIENTS_PER_TENANT` clients until `limit` creates are taken or `stop`.
fn burst(
    tenants: &[SimClient],
    url: &str,
    next: &Arc<AtomicUsize>,
    limit: usize,
    seen: &Arc<Seen>,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for t in tenants {
        for _ in 0..CLIENTS_PER_TENANT {
            set.spawn(client(
                t.clone(),
                url.to_string(),
                next.clone(),
                limit,
                seen.clone(),
                stop.clone(),
            ));
        }
    }
    set
}

/// GET on the gateway's admin API with its bearer token.
async fn admin_get(gw: &GatewayProcess, path: &str) -> Value {
    let c = SimClient::new();
    let token = format!("Bearer {}", gw.admin_token());
    let r = c
        .send(
            Method::GET,
            &format!("{}{path}", gw.url("admin")),
            None,
            &[("authorization", &token)],
        )
        .await
        .expect("admin API");
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.json);
    r.json
}

/// Pending records over all tiers, per `/v1/status`.
async fn pending(gw: &GatewayProcess) -> u64 {
    let status = admin_get(gw, "/v1/status").await;
    status["tiers"]
        .as_array()
        .expect("tiers")
        .iter()
        .map(|t| t["pending"].as_u64().unwrap_or(0))
        .sum()
}

/// Every network at the recovery site, counted by name.
async fn recovery_networks(recovery: &SiteHandle) -> BTreeMap<String, usize> {
    let mut admin = SimClient::new();
    admin
        .login(&recovery.endpoints().auth_url(), "admin", "secret", "admin")
        .await
        .expect("recovery admin login");
    let r = admin
        .get(&format!("{}/v2.0/networks", recovery.endpoints().network))
        .await
        .expect("recovery networks");
    assert_eq!(r.status, StatusCode::OK);
    let mut count = BTreeMap::new();
    for n in r.json["networks"].as_array().expect("networks") {
        if let Some(name) = n["name"].as_str().filter(|s| s.starts_with(PREFIX)) {
            *count.entry(name.to_string()).or_insert(0) += 1;
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_burst_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let primary = Site::start(SiteConfig::named("primary"))
        .await
        .expect("primary");
    let recovery = Site::start(SiteConfig::named("recovery"))
        .await
        .expect("recovery");
    let mut gw = GatewayProcess::in_front_of(&primary, &recovery)
        .await
        .expect("drgw serve");

    let mut tenants = Vec::new();
    for n in 0..TENANTS {
        tenants.push(tenant(&primary, &gw.url("identity"), n).await);
    }
    let url = format!("{}/v2.0/networks", gw.url("network"));
    let seen = Arc::new(Seen::default());
    let next = Arc::new(AtomicUsize::new(0));

    // Phase 1: the burst, killed once KILL_AFTER creates are acknowledged. The recovery
    // site's Neutron answers slowly meanwhile, so that Bronze lags behind the burst and
    // applies are in flight when the process dies.
    let slow = recovery
        .faults()
        .add(Some(Service::Network), FaultKind::LatencyMs(15), None);
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = burst(&tenants, &url, &next, TOTAL, &seen, &stop);
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.acked.lock().unwrap().len() < KILL_AFTER {
        assert!(
            Instant::now() < deadline && !clients.is_empty(),
            "the burst stalled at {} acknowledged creates (other answers: {:?})",
            seen.acked.lock().unwrap().len(),
            seen.other.lock().unwrap()
        );
        if clients.try_join_next().is_some() {
            continue;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    gw.crash().await;
    let acked_before_kill = seen.acked.lock().unwrap().len();
    stop.store(true, Ordering::Relaxed);
    while clients.join_next().await.is_some() {}
    let in_flight = seen.unanswered.load(Ordering::Relaxed);
    recovery.faults().remove(slow);
    let applied_at_kill = recovery_networks(&recovery).await.len();
    assert!(
        applied_at_kill < acked_before_kill,
        "the kill came before Bronze caught up ({applied_at_kill} of {acked_before_kill} \
         applied), so that the restart has records to replay"
    );

    // Phase 2: restart on the same state directory; the rest of the burst goes through
    // while the journal replays.
    let restart = Instant::now();
    gw.restart().await.expect("drgw serve restart");
    let again = Arc::new(AtomicBool::new(false));
    let mut clients = burst(&tenants, &url, &next, TOTAL, &seen, &again);
    while clients.join_next().await.is_some() {}

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = pending(&gw).await;
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the journal did not drain: {left} pending"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = restart.elapsed();
    let failed = admin_get(&gw, "/v1/journal?state=failed&limit=10").await;
    assert_eq!(
        failed["records"].as_array().map(Vec::len),
        Some(0),
        "no record failed: {failed}"
    );

    let at_recovery = recovery_networks(&recovery).await;
    let acked = seen.acked.lock().unwrap().clone();
    let mut missing = Vec::new();
    for name in &acked {
        if !at_recovery.contains_key(name) {
            missing.push(name.clone());
        }
    }
    let duplicates: Vec<(&String, &usize)> = at_recovery.iter().filter(|(_, n)| **n > 1).collect();
    let unacked_applied = at_recovery.len() - (acked.len() - missing.len());
    println!(
        "crash burst: {} creates acknowledged ({acked_before_kill} before the SIGKILL, {} in \
         flight at the kill), {} applied at the recovery site when killed; after the restart \
         {} acknowledged creates at the recovery site, {} missing, {} duplicated names, \
         {unacked_applied} unacknowledged creates also applied; other answers {:?}; drained \
         {:.1} s after the restart, {:.1} s in all",
        acked.len(),
        in_flight,
        applied_at_kill,
        acked.len() - missing.len(),
        missing.len(),
        duplicates.len(),
        seen.other.lock().unwrap(),
        drained.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    assert!(
        seen.other.lock().unwrap().is_empty(),
        "every answered create succeeded"
    );
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(duplicates.is_empty(), "applied twice: {duplicates:?}");

    gw.stop().await;
    primary.shutdown().await;
    recovery.shutdown().await;
}
