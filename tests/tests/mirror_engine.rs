//! The mirror engine against two simulated sites: every change is first made at the primary
//! simulator by a real HTTP call, then submitted as the `Mutation` the request path builds,
//! and the recovery simulator is queried directly.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drgw::journal::{Journal, JournalConfig, RecordFilter, RecordState, StateFilter};
use drgw::mutation::{GoldFailure, MirrorMode, MirrorOutcome, TierChoice};
use drgw::operation::Service;
use drgw::state::{MemoryStore, RedbStore, StateStore};
use drgw_tests::mirror_harness::{
    bronze, eventually, failed_records, gold, recovery_id, silver, Bed,
};
use http::{Method, StatusCode};
use serde_json::{json, Value};

fn flavor_body(name: &str) -> Value {
    json!({"flavor": {"name": name, "ram": 512, "vcpus": 1, "disk": 1}})
}

#[tokio::test]
async fn bronze_network_and_subnet_arrive_with_the_network_translated() {
    let bed = Bed::new().await;
    let (engine, _) = bed.mem_engine().await;
    let (net, m) = bed.demo_network(&bronze(), "app-net").await;
    assert_eq!(engine.submit(m).await, MirrorOutcome::Queued);
    let (resp, m) = bed
        .call((&bed.demo, &bed.demo_ctx), &bronze(), Service::Network, Method::POST, "/v2.0/subnets",
            Some(json!({"subnet": {"name": "app-sub", "network_id": net, "cidr": "10.9.0.0/24", "ip_version": 4}})))
        .await;
    let sub = resp.json["subnet"]["id"].as_str().unwrap().to_string();
    assert_eq!(engine.submit(m).await, MirrorOutcome::Queued);

    eventually("subnet mirrored", Duration::from_secs(5), || async {
        recovery_id(&engine, "network", "subnet", &sub)
            .await
            .is_some()
    })
    .await;
    let rnet = recovery_id(&engine, "network", "network", &net)
        .await
        .unwrap();
    let rsub = recovery_id(&engine, "network", "subnet", &sub)
        .await
        .unwrap();
    assert_ne!(rnet, net, "the recovery site assigns its own ids");
    let got = bed
        .recovery_get(Service::Network, &format!("/v2.0/subnets/{rsub}"))
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json["subnet"]["network_id"], json!(rnet));
    assert_eq!(got.json["subnet"]["cidr"], "10.9.0.0/24");
    // Owned by the recovery copy of the tenant's project (adopted by name), not by admin.
    let rdemo = bed.recovery.project_id("demo").unwrap();
    assert_eq!(got.json["subnet"]["project_id"], json!(rdemo));
    let got = bed
        .recovery_get(Service::Network, &format!("/v2.0/networks/{rnet}"))
        .await;
    assert_eq!(got.json["network"]["name"], "app-net");

    // Update and delete follow.
    let (_, m) = bed
        .call(
            (&bed.demo, &bed.demo_ctx),
            &bronze(),
            Service::Network,
            Method::PUT,
            &format!("/v2.0/networks/{net}"),
            Some(json!({"network": {"name": "renamed"}})),
        )
        .await;
    engine.submit(m).await;
    let (_, m) = bed
        .call(
            (&bed.demo, &bed.demo_ctx),
            &bronze(),
            Service::Network,
            Method::DELETE,
            &format!("/v2.0/subnets/{sub}"),
            None,
        )
        .await;
    engine.submit(m).await;
    eventually("subnet deleted", Duration::from_secs(5), || async {
        bed.recovery_get(Service::Network, &format!("/v2.0/subnets/{rsub}"))
            .await
            .status
            == StatusCode::NOT_FOUND
    })
    .await;
    assert_eq!(recovery_id(&engine, "network", "subnet", &sub).await, None);
    let got = bed
        .recovery_get(Service::Network, &format!("/v2.0/networks/{rnet}"))
        .await;
    assert_eq!(got.json["network"]["name"], "renamed");
    engine.shutdown().await;
}

#[tokio::test]
async fn gold_flavor_is_at_the_recovery_site_when_submit_returns() {
    let bed = Bed::new().await;
    let metrics = drgw::metrics::Metrics::new();
    let (engine, _) = bed
        .engine_in(
            Arc::new(MemoryStore::new()),
            Duration::from_secs(3),
            &metrics,
        )
        .await;
    let (resp, m) = bed
        .call(
            (&bed.admin, &bed.admin_ctx),
            &gold(GoldFailure::Reject),
            Service::Compute,
            Method::POST,
            "/v2.1/flavors",
            Some(flavor_body("g.small")),
        )
        .await;
    let fid = resp.json["flavor"]["id"].as_str().unwrap().to_string();
    assert_eq!(engine.submit(m).await, MirrorOutcome::Applied);
    let got = bed
        .recovery_get(Service::Compute, &format!("/v2.1/flavors/{fid}"))
        .await;
    assert_eq!(got.status, StatusCode::OK, "same id at the recovery site");
    assert_eq!(got.json["flavor"]["name"], "g.small");
    assert_eq!(
        recovery_id(&engine, "compute", "flavor", &fid)
            .await
            .as_deref(),
        Some(fid.as_str())
    );

    // Extra specs follow inline too.
    let (_, m) = bed
        .call(
            (&bed.admin, &bed.admin_ctx),
            &gold(GoldFailure::Reject),
            Service::Compute,
            Method::POST,
            &format!("/v2.1/flavors/{fid}/os-extra_specs"),
            Some(json!({"extra_specs": {"hw:cpu_policy": "dedicated"}})),
        )
        .await;
    assert_eq!(engine.submit(m).await, MirrorOutcome::Applied);
    let got = bed
        .recovery_get(
            Service::Compute,
            &format!("/v2.1/flavors/{fid}/os-extra_specs"),
        )
        .await;
    assert_eq!(got.json["extra_specs"]["hw:cpu_policy"], "dedicated");

    // Each of the two applies is timed once.
    let text = metrics.render();
    let count = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"drgw_mirror_apply_duration_seconds_count{tier="gold"} "#))
        .unwrap_or_else(|| panic!("no Gold apply duration in:\n{text}"));
    assert_eq!(count, "2", "{text}");
    engine.shutdown().await;
}

#[tokio::test]
async fn silver_applies_at_the_checkpoint_and_not_before() {
    let bed = Bed::new().await;
    let (engine, journal) = bed.mem_engine().await;
    let silver = silver(Duration::from_millis(1500));
    let (resp, m) = bed
        .call(
            (&bed.admin, &bed.admin_ctx),
            &silver,
            Service::Compute,
            Method::POST,
            "/v2.1/flavors",
            Some(flavor_body("s.small")),
        )
        .await;
    let fid = resp.json["flavor"]["id"].as_str().unwrap().to_string();
    let submitted = Instant::now();
    assert_eq!(engine.submit(m).await, MirrorOutcome::Queued);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        bed.recovery_get(Service::Compute, &format!("/v2.1/flavors/{fid}"))
            .await
            .status,
        StatusCode::NOT_FOUND,
        "a Silver change must wait for its checkpoint"
    );
    assert!(!has_checkpoint(&engine, "silver").await);
    eventually("silver checkpoint", Duration::from_secs(5), || {
        has_checkpoint(&engine, "silver")
    })
    .await;
    assert!(submitted.elapsed() >= Duration::from_millis(1000));
    assert_eq!(
        bed.recovery_get(Service::Compute, &format!("/v2.1/flavors/{fid}"))
            .await
            .status,
        StatusCode::OK
    );
    let cps = engine.checkpoints(Some("silver"), None, 10).await.unwrap();
    assert_eq!(cps[0].last_seq, journal.last_seq().await.unwrap());
    let status = engine.status().await.unwrap();
    let s = status.iter().find(|s| s.tier == "silver").unwrap();
    assert_eq!((s.pending, s.mode.as_str()), (0, "periodic"));
    assert_eq!(s.last_checkpoint.as_ref().map(|c| c.id), Some(cps[0].id));
    engine.shutdown().await;
}

/// Whether the tier has written a checkpoint.
async fn has_checkpoint(engine: &drgw::mirror::MirrorEngine, tier: &str) -> bool {
    !engine
        .checkpoints(Some(tier), None, 10)
        .await
        .unwrap()
        .is_empty()
}

/// Waits (up to `within`) until the network `net` has a recovery copy in the ID map.
async fn network_mirrored(
    engine: &drgw::mirror::MirrorEngine,
    what: &str,
    net: &str,
    within: Duration,
) {
    eventually(what, within, || async {
        recovery_id(engine, "network", "network", net)
            .await
            .is_some()
    })
    .await;
}

/// Keeps the runtime's workers busy (tasks that run 50 µs at a time and yield, as tenant
/// requests would) until the returned flag is set.
fn busy_runtime() -> Arc<std::sync::atomic::AtomicBool> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for _ in 0..4 {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let spin = Instant::now() + Duration::from_micros(50);
                while Instant::now() < spin {
                    std::hint::spin_loop();
                }
                tokio::task::yield_now().await;
            }
        });
    }
    stop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bronze_gives_way_to_busy_tenants_for_at_most_a_quarter_of_max_lag() {
    let bed = Bed::new().await;
    let (engine, _) = bed.mem_engine().await;
    let tier = TierChoice {
        name: "bronze".into(),
        mode: MirrorMode::Async {
            max_lag: Duration::from_secs(4),
        },
        on_failure: GoldFailure::Degrade,
    };
    let (net, m) = bed.demo_network(&tier, "paced-net").await;

    // Tenants keep the gateway busy: a request in flight, every worker running.
    let tenant = engine.tenant_request();
    let load = busy_runtime();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let submitted = Instant::now();
    assert_eq!(engine.submit(m).await, MirrorOutcome::Queued);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        recovery_id(&engine, "network", "network", &net).await,
        None,
        "a Bronze record applied while tenants kept the runtime busy"
    );
    // ... but not for longer than a quarter of max_lag (1 s) after it was journaled.
    network_mirrored(
        &engine,
        "the record applied despite the load",
        &net,
        Duration::from_secs(10),
    )
    .await;
    let waited = submitted.elapsed();
    load.store(true, std::sync::atomic::Ordering::Relaxed);

    // Without tenant requests in flight, the next record applies at once.
    drop(tenant);
    let (net2, m) = bed.demo_network(&tier, "unpaced-net").await;
    let submitted = Instant::now();
    assert_eq!(engine.submit(m).await, MirrorOutcome::Queued);
    network_mirrored(
        &engine,
        "the second record applied",
        &net2,
        Duration::from_secs(5),
    )
    .await;
    println!(
        "first record applied {waited:?} after its submit under load (bound 1 s); the second {:?} after its own",
        submitted.elapsed()
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bronze_giving_way_does_not_hold_up_a_silver_checkpoint() {
    let bed = Bed::new().await;
    let (engine, _) = bed.mem_engine().await;
    let bronze = TierChoice {
        name: "bronze".into(),
        mode: MirrorMode::Async {
            max_lag: Duration::from_secs(120), // may wait 30 s
        },
        on_failure: GoldFailure::Degrade,
    };
    let silver = silver(Duration::from_millis(500));
    let tenant = engine.tenant_request();
    let load = busy_runtime();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (bnet, m) = bed.demo_network(&bronze, "held-net").await;
    assert_eq!(engine.submit(m).await, MirrorOutcome::Queued);
    let (snet, m) = bed.demo_network(&silver, "silver-net").await;
    assert_eq!(engine.submit(m).await, MirrorOutcome::Queued);
    eventually("the silver checkpoint", Duration::from_secs(5), || {
        has_checkpoint(&engine, "silver")
    })
    .await;
    assert!(recovery_id(&engine, "network", "network", &snet)
        .await
        .is_some());
    assert_eq!(
        recovery_id(&engine, "network", "network", &bnet).await,
        None,
        "the Bronze record is still giving way"
    );
    // Once tenants are gone, it applies.
    load.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(tenant);
    network_mirrored(&engine, "the bronze record", &bnet, Duration::from_secs(5)).await;
    engine.shutdown().await;
}

/// Waits (up to `limit`) until no Bronze record is pending.
async fn bronze_drained(journal: &Journal, what: &str, limit: Duration) {
    eventually(what, limit, || async {
        journal
            .tier_lag()
            .await
            .unwrap()
            .get("bronze")
            .map(|l| l.pending)
            == Some(0)
    })
    .await;
}

/// With the recovery site down: `count` demo networks named `{prefix}-{i}`, then a rename of
/// the first to `{prefix}-0-renamed`, each submitted at `tier` and queued. Returns the
/// networks' primary ids.
async fn queue_networks_and_a_rename(
    bed: &Bed,
    engine: &drgw::mirror::MirrorEngine,
    tier: &TierChoice,
    prefix: &str,
    count: usize,
) -> Vec<String> {
    let mut nets = Vec::new();
    for i in 0..count {
        let (id, m) = bed.demo_network(tier, &format!("{prefix}-{i}")).await;
        nets.push(id);
        assert_eq!(engine.submit(m).await, MirrorOutcome::Queued);
    }
    let (_, m) = bed
        .call(
            (&bed.demo, &bed.demo_ctx),
            tier,
            Service::Network,
            Method::PUT,
            &format!("/v2.0/networks/{}", nets[0]),
            Some(json!({"network": {"name": format!("{prefix}-0-renamed")}})),
        )
        .await;
    assert_eq!(engine.submit(m).await, MirrorOutcome::Queued);
    nets
}

/// While the recovery site has been down for over a second: `pending` records of `tier`
/// wait, the oldest for at least a second (the lag grows), and none failed.
async fn assert_queued_while_down(
    engine: &drgw::mirror::MirrorEngine,
    journal: &Journal,
    tier: &str,
    pending: u64,
) {
    let status = engine.status().await.unwrap();
    let t = status.iter().find(|s| s.tier == tier).unwrap();
    assert_eq!(t.pending, pending, "all queued while down: {t:?}");
    assert!(
        t.oldest_pending_age_seconds.unwrap() >= 1.0,
        "lag grows: {t:?}"
    );
    assert!(
        failed_records(journal).await.is_empty(),
        "a down site is retryable, not a failure"
    );
}

/// At the recovery site: the first of `nets` carries its rename (applied after its create),
/// and each network named `{prefix}-...` exists exactly once.
async fn assert_renamed_and_each_once(
    bed: &Bed,
    engine: &drgw::mirror::MirrorEngine,
    nets: &[String],
    prefix: &str,
) {
    let r0 = recovery_id(engine, "network", "network", &nets[0])
        .await
        .unwrap();
    let got = bed
        .recovery_get(Service::Network, &format!("/v2.0/networks/{r0}"))
        .await;
    assert_eq!(
        got.json["network"]["name"],
        format!("{prefix}-0-renamed"),
        "the update applied after its create"
    );
    let all = bed.recovery_get(Service::Network, "/v2.0/networks").await;
    let named = format!("{prefix}-");
    let count = all.json["networks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["name"].as_str().is_some_and(|s| s.starts_with(&named)))
        .count();
    assert_eq!(count, nets.len(), "each network exactly once");
}

#[tokio::test]
async fn bronze_queues_while_the_recovery_site_is_down_and_applies_in_order() {
    let bed = Bed::new().await;
    let (engine, journal) = bed.mem_engine().await;
    bed.recovery.down().await;
    let nets = queue_networks_and_a_rename(&bed, &engine, &bronze(), "q", 5).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_queued_while_down(&engine, &journal, "bronze", 6).await;

    bed.recovery.up().await.unwrap();
    engine.wake();
    bronze_drained(&journal, "queue drained", Duration::from_secs(10)).await;
    assert_renamed_and_each_once(&bed, &engine, &nets, "q").await;
    // Applied in seq order: applied_at times never decrease along seqs.
    let page = journal
        .list(&RecordFilter::default(), None, 100)
        .await
        .unwrap();
    let times: Vec<u64> = page
        .records
        .iter()
        .filter_map(|r| match r.state {
            RecordState::Applied { at_ms, .. } => Some(at_ms),
            _ => None,
        })
        .collect();
    assert_eq!(times.len(), 6);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    engine.shutdown().await;
}

#[tokio::test]
async fn silver_queues_while_the_recovery_site_is_down_and_checkpoints_once_it_returns() {
    let bed = Bed::new().await;
    let (engine, journal) = bed.mem_engine().await;
    let silver = silver(Duration::from_millis(400));
    bed.recovery.down().await;
    let nets = queue_networks_and_a_rename(&bed, &engine, &silver, "sq", 3).await;
    // Several intervals pass with the site down: no batch completes, so no checkpoint.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_queued_while_down(&engine, &journal, "silver", 4).await;
    assert!(
        !has_checkpoint(&engine, "silver").await,
        "no consistent cut while the changes are not at the recovery site"
    );

    bed.recovery.up().await.unwrap();
    engine.wake();
    eventually("silver checkpoint", Duration::from_secs(10), || {
        has_checkpoint(&engine, "silver")
    })
    .await;
    let cps = engine.checkpoints(Some("silver"), None, 10).await.unwrap();
    assert_eq!(cps[0].last_seq, journal.last_seq().await.unwrap());
    let status = engine.status().await.unwrap();
    let s = status.iter().find(|s| s.tier == "silver").unwrap();
    assert_eq!(s.pending, 0, "{s:?}");
    assert_renamed_and_each_once(&bed, &engine, &nets, "sq").await;
    engine.shutdown().await;
}

#[tokio::test]
async fn gold_reject_with_the_recovery_site_down_leaves_nothing_at_the_primary() {
    let bed = Bed::new().await;
    let (engine, journal) = bed
        .engine(Arc::new(MemoryStore::new()), Duration::from_secs(2))
        .await;
    bed.recovery.down().await;
    let (resp, m) = bed
        .call(
            (&bed.admin, &bed.admin_ctx),
            &gold(GoldFailure::Reject),
            Service::Compute,
            Method::POST,
            "/v2.1/flavors",
            Some(flavor_body("g.rejected")),
        )
        .await;
    let fid = resp.json["flavor"]["id"].as_str().unwrap().to_string();
    let out = engine.submit(m).await;
    assert!(matches!(out, MirrorOutcome::Rejected { .. }), "{out:?}");
    let at_primary = bed
        .admin
        .get(&bed.url(
            &bed.primary,
            Service::Compute,
            &format!("/v2.1/flavors/{fid}"),
        ))
        .await
        .unwrap();
    assert_eq!(at_primary.status, StatusCode::NOT_FOUND, "compensated");
    let rec = journal.get(1).await.unwrap().unwrap();
    assert!(
        matches!(&rec.state, RecordState::Failed { reason, .. } if reason.starts_with("rejected")),
        "{:?}",
        rec.state
    );
    // Nothing applies later either.
    bed.recovery.up().await.unwrap();
    engine.wake();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        bed.recovery_get(Service::Compute, &format!("/v2.1/flavors/{fid}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn gold_degrade_returns_degraded_then_applies_later() {
    let bed = Bed::new().await;
    let (engine, _) = bed
        .engine(Arc::new(MemoryStore::new()), Duration::from_secs(2))
        .await;
    bed.recovery.down().await;
    let (resp, m) = bed
        .call(
            (&bed.admin, &bed.admin_ctx),
            &gold(GoldFailure::Degrade),
            Service::Compute,
            Method::POST,
            "/v2.1/flavors",
            Some(flavor_body("g.degraded")),
        )
        .await;
    let fid = resp.json["flavor"]["id"].as_str().unwrap().to_string();
    let out = engine.submit(m).await;
    assert!(matches!(out, MirrorOutcome::Degraded { .. }), "{out:?}");
    assert_eq!(out.header_value(), Some("degraded"));
    let at_primary = bed
        .admin
        .get(&bed.url(
            &bed.primary,
            Service::Compute,
            &format!("/v2.1/flavors/{fid}"),
        ))
        .await
        .unwrap();
    assert_eq!(
        at_primary.status,
        StatusCode::OK,
        "degrade keeps the primary change"
    );
    bed.recovery.up().await.unwrap();
    engine.wake();
    eventually(
        "degraded record applied",
        Duration::from_secs(10),
        || async {
            bed.recovery_get(Service::Compute, &format!("/v2.1/flavors/{fid}"))
                .await
                .status
                == StatusCode::OK
        },
    )
    .await;
    engine.shutdown().await;
}

#[tokio::test]
async fn a_4xx_fails_with_the_sites_message_and_retry_works_after_the_fix() {
    let bed = Bed::new().await;
    let (engine, journal) = bed.mem_engine().await;
    // The recovery site already has a different flavor with the same name: Nova answers 409.
    let clash = bed
        .radmin
        .post(
            &bed.url(&bed.recovery, Service::Compute, "/v2.1/flavors"),
            &json!({"flavor": {"name": "clash", "ram": 1, "vcpus": 1, "disk": 1, "id": "other"}}),
        )
        .await
        .unwrap();
    assert_eq!(clash.status, StatusCode::OK, "{}", clash.json);
    let (resp, m) = bed
        .call(
            (&bed.admin, &bed.admin_ctx),
            &bronze(),
            Service::Compute,
            Method::POST,
            "/v2.1/flavors",
            Some(flavor_body("clash")),
        )
        .await;
    let fid = resp.json["flavor"]["id"].as_str().unwrap().to_string();
    engine.submit(m).await;
    let failed = RecordFilter {
        state: Some(StateFilter::Failed),
        ..Default::default()
    };
    eventually("record failed", Duration::from_secs(5), || async {
        !journal
            .list(&failed, None, 10)
            .await
            .unwrap()
            .records
            .is_empty()
    })
    .await;
    let page = engine.journal_page(&failed, None, 10).await.unwrap();
    let rec = &page.records[0];
    match &rec.state {
        RecordState::Failed { reason, retryable } => {
            assert!(
                reason.contains("409") && reason.contains("clash already exists"),
                "{reason}"
            );
            assert!(!retryable);
        }
        other => panic!("{other:?}"),
    }
    // The operator removes the clash and retries.
    let del = bed
        .radmin
        .delete(&bed.url(&bed.recovery, Service::Compute, "/v2.1/flavors/other"))
        .await
        .unwrap();
    assert!(del.status.is_success());
    let back = engine.retry(rec.seq).await.unwrap();
    assert!(back.state.is_pending());
    eventually("retried record applied", Duration::from_secs(5), || async {
        bed.recovery_get(Service::Compute, &format!("/v2.1/flavors/{fid}"))
            .await
            .status
            == StatusCode::OK
    })
    .await;
    engine.shutdown().await;
}

async fn open_redb(path: &Path) -> Arc<dyn StateStore> {
    Arc::new(RedbStore::open(path).expect("redb"))
}

#[tokio::test]
async fn restart_on_the_same_file_does_not_reapply() {
    let bed = Bed::new().await;
    let path = bed.state_path();
    let store = open_redb(&path).await;
    let (engine, journal) = bed.engine(store, Duration::from_secs(3)).await;
    let mut nets = Vec::new();
    for i in 0..3 {
        let (id, m) = bed.demo_network(&bronze(), &format!("r-{i}")).await;
        nets.push(id);
        engine.submit(m).await;
    }
    bronze_drained(&journal, "applied before restart", Duration::from_secs(5)).await;
    engine.shutdown().await;
    journal.close().await.unwrap();
    drop((engine, journal));
    tokio::time::sleep(Duration::from_millis(100)).await;

    bed.recovery.requests().clear();
    let store = open_redb(&path).await;
    let (engine, journal) = bed.engine(store, Duration::from_secs(3)).await;
    // One more record after the restart, to prove the engine runs.
    let (after, m) = bed.demo_network(&bronze(), "r-after").await;
    engine.submit(m).await;
    network_mirrored(
        &engine,
        "applied after restart",
        &after,
        Duration::from_secs(5),
    )
    .await;
    let creates = bed.recovery.requests().matching("POST", "/v2.0/networks");
    assert_eq!(
        creates.len(),
        1,
        "only the new network was sent after the restart"
    );
    for n in &nets {
        assert!(
            recovery_id(&engine, "network", "network", n)
                .await
                .is_some(),
            "mapping survived the restart"
        );
    }
    assert!(journal.verify().await.unwrap().is_clean());
    engine.shutdown().await;
}

#[tokio::test]
async fn a_pending_create_after_a_crash_adopts_the_copy_instead_of_duplicating() {
    let bed = Bed::new().await;
    let path = bed.state_path();
    // The "crash": the record is journaled and the network reached the recovery site, but
    // the record was never marked applied (the engine is started only after both).
    let store = open_redb(&path).await;
    let journal = Journal::open(store.clone(), JournalConfig::default())
        .await
        .unwrap();
    let (net, m) = bed.demo_network(&bronze(), "crashy").await;
    let copy_id = bed.unmapped_recovery_network("crashy").await;
    journal.close().await.unwrap();
    drop((journal, store));
    let store = open_redb(&path).await;
    // Journal the record through a first engine instance whose worker cannot reach the
    // recovery site, then restart: the new engine sees it as pending from before start-up.
    bed.recovery.down().await;
    let (engine, journal) = bed.engine(store, Duration::from_secs(3)).await;
    assert_eq!(engine.submit(m).await, MirrorOutcome::Queued);
    engine.shutdown().await;
    journal.close().await.unwrap();
    drop((engine, journal));
    bed.recovery.up().await.unwrap();
    let (engine, _journal) = bed
        .engine(open_redb(&path).await, Duration::from_secs(3))
        .await;
    network_mirrored(&engine, "adopted", &net, Duration::from_secs(5)).await;
    assert_eq!(
        recovery_id(&engine, "network", "network", &net).await,
        Some(copy_id)
    );
    let all = bed
        .recovery_get(Service::Network, "/v2.0/networks?name=crashy")
        .await;
    assert_eq!(
        all.json["networks"].as_array().unwrap().len(),
        1,
        "no duplicate"
    );
    engine.shutdown().await;
}

/// A reference to a resource whose copy exists at the recovery site but is not mapped (its
/// own record's transition to applied was rolled back by a crash, or another tier's record
/// has not been marked yet) adopts that copy instead of mirroring the resource a second time.
#[tokio::test]
async fn a_dependency_whose_copy_exists_unmapped_is_adopted_not_duplicated() {
    let bed = Bed::new().await;
    let (engine, _) = bed.mem_engine().await;
    // The network exists at the primary; its mutation is never submitted here.
    let (net, _never_submitted) = bed.demo_network(&bronze(), "dep-net").await;
    let copy_id = bed.unmapped_recovery_network("dep-net").await;
    let (resp, m) = bed
        .call((&bed.demo, &bed.demo_ctx), &bronze(), Service::Network, Method::POST, "/v2.0/subnets",
            Some(json!({"subnet": {"name": "dep-sub", "network_id": net, "cidr": "10.19.0.0/24", "ip_version": 4}})))
        .await;
    let sub = resp.json["subnet"]["id"].as_str().unwrap().to_string();
    assert_eq!(engine.submit(m).await, MirrorOutcome::Queued);
    eventually("subnet mirrored", Duration::from_secs(5), || async {
        recovery_id(&engine, "network", "subnet", &sub)
            .await
            .is_some()
    })
    .await;
    assert_eq!(
        recovery_id(&engine, "network", "network", &net).await,
        Some(copy_id.clone())
    );
    let rsub = recovery_id(&engine, "network", "subnet", &sub)
        .await
        .unwrap();
    let got = bed
        .recovery_get(Service::Network, &format!("/v2.0/subnets/{rsub}"))
        .await;
    assert_eq!(got.json["subnet"]["network_id"], json!(copy_id));
    let all = bed
        .recovery_get(Service::Network, "/v2.0/networks?name=dep-net")
        .await;
    assert_eq!(
        all.json["networks"].as_array().unwrap().len(),
        1,
        "no duplicate: {}",
        all.json
    );
    engine.shutdown().await;
}

/// A Gold change must not overtake an older change of the same resource still pending (here
/// a degraded one): the recovery copy ends with the newer value, whatever the timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gold_change_waits_for_an_older_pending_change_of_the_same_resource() {
    let bed = Bed::new().await;
    let (engine, _) = bed.mem_engine().await;
    let g = gold(GoldFailure::Degrade);
    let admin = (&bed.admin, &bed.admin_ctx);
    let (resp, m) = bed
        .call(
            admin,
            &g,
            Service::Network,
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": {"name": "ordered", "description": "created"}})),
        )
        .await;
    let nid = resp.json["network"]["id"].as_str().unwrap().to_string();
    assert_eq!(engine.submit(m).await, MirrorOutcome::Applied);
    let rid = recovery_id(&engine, "network", "network", &nid)
        .await
        .unwrap();

    bed.recovery.down().await;
    let path = format!("/v2.0/networks/{nid}");
    let (_, first) = bed
        .call(
            admin,
            &g,
            Service::Network,
            Method::PUT,
            &path,
            Some(json!({"network": {"description": "first"}})),
        )
        .await;
    let out = engine.submit(first).await;
    assert!(matches!(out, MirrorOutcome::Degraded { .. }), "{out:?}");
    bed.recovery.up().await.unwrap();
    let (_, second) = bed
        .call(
            admin,
            &g,
            Service::Network,
            Method::PUT,
            &path,
            Some(json!({"network": {"description": "second"}})),
        )
        .await;
    engine.submit(second).await;
    eventually("both updates applied", Duration::from_secs(10), || async {
        engine
            .status()
            .await
            .unwrap()
            .iter()
            .all(|t| t.pending == 0)
    })
    .await;
    let copy = bed
        .recovery_get(Service::Network, &format!("/v2.0/networks/{rid}"))
        .await;
    assert_eq!(
        copy.json["network"]["description"], "second",
        "{}",
        copy.json
    );
    engine.shutdown().await;
}
