//! Reverse replication with the in-process test bed: after a planned failover the tenant
//! changes things at the recovery site through the gateway (creates a network and a subnet,
//! renames a network and deletes a security group that were created at the primary); the
//! changes are journaled toward the old primary, a planned failback drains them, and the
//! primary (read directly) has them, with the ID map consistent in both directions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drgw::config::SiteName;
use drgw::failover::{FailoverController, ReportKind, Site};
use drgw::journal::{Direction, RecordFilter};
use drgw::state::IdMap;
use drgw_tests::sim::client::SimClient;
use drgw_tests::testbed::TestBed;
use http::{Method, StatusCode};
use serde_json::{json, Value};

async fn demo(bed: &TestBed) -> SimClient {
    bed.login("demo", "demo", "demo")
        .await
        .expect("demo logs in through the gateway")
        .0
}

/// Creates a Neutron resource through the gateway (bronze); returns its id and the
/// `X-DR-Mirror` header.
async fn create(bed: &TestBed, c: &SimClient, coll: &str, wrapper: &str, body: Value) -> String {
    let resp = c
        .send(
            Method::POST,
            &format!("{}/v2.0/{coll}", bed.gateway_url("network")),
            Some(&json!({ wrapper: body })),
            &[("x-dr-tier", "bronze")],
        )
        .await
        .expect("create");
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.json);
    assert_eq!(resp.header("x-dr-mirror"), Some("queued"));
    resp.json[wrapper]["id"]
        .as_str()
        .expect("an id")
        .to_string()
}

/// The recovery ID of a primary resource, once mirrored (from the primary).
async fn mapped(bed: &TestBed, rt: &str, primary_id: &str) -> String {
    let m = bed
        .mapped("network", rt, primary_id, Duration::from_secs(20))
        .await;
    assert_eq!(m.origin, SiteName::Primary);
    m.recovery_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_at_the_recovery_site_resync_the_primary_on_failback() {
    let bed = TestBed::start().await.expect("test bed");
    let gw = bed.gateway.gateway.clone();
    let tenant = demo(&bed).await;

    // Before the failover, at the primary: a network and a security group, mirrored.
    let p_net = create(
        &bed,
        &tenant,
        "networks",
        "network",
        json!({"name": "orig-net"}),
    )
    .await;
    let p_sg = create(
        &bed,
        &tenant,
        "security-groups",
        "security_group",
        json!({"name": "orig-sg"}),
    )
    .await;
    let r_net = mapped(&bed, "network", &p_net).await;
    let r_sg = mapped(&bed, "security_group", &p_sg).await;

    let ctrl = Arc::new(FailoverController::new(gw.clone()));
    ctrl.load().await.expect("load");
    let report = ctrl
        .planned(Site::Recovery, Duration::from_secs(30), "test")
        .await
        .expect("planned failover");
    assert_eq!(report.kind, ReportKind::PlannedFailover);
    assert_eq!(gw.active_site(), SiteName::Recovery);

    // During the failover, at the recovery site (a new login reaches its Keystone).
    let tenant = demo(&bed).await;
    bed.primary.requests().clear();
    let r_new = create(
        &bed,
        &tenant,
        "networks",
        "network",
        json!({"name": "new-net"}),
    )
    .await;
    let r_subnet = create(
        &bed,
        &tenant,
        "subnets",
        "subnet",
        json!({"name": "new-subnet", "network_id": r_new, "cidr": "10.77.0.0/24", "ip_version": 4}),
    )
    .await;
    let net_url = bed.gateway_url("network");
    let put = tenant
        .put(
            &format!("{net_url}/v2.0/networks/{r_net}"),
            &json!({"network": {"name": "renamed-at-recovery"}}),
        )
        .await
        .expect("rename");
    assert_eq!(put.status, StatusCode::OK, "{}", put.json);
    let del = tenant
        .delete(&format!("{net_url}/v2.0/security-groups/{r_sg}"))
        .await
        .expect("delete");
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.json);

    // Journaled toward the primary.
    let reverse = RecordFilter {
        direction: Some(Direction::Reverse),
        ..RecordFilter::default()
    };
    let page = gw.journal.list(&reverse, None, 100).await.expect("journal");
    let actions: Vec<(&str, &str)> = page
        .records
        .iter()
        .map(|r| (r.resource_type.as_str(), r.action.as_str()))
        .collect();
    for want in [
        ("network", "create"),
        ("subnet", "create"),
        ("network", "update"),
        ("security_group", "delete"),
    ] {
        assert!(actions.contains(&want), "{want:?} not in {actions:?}");
    }
    assert!(page
        .records
        .iter()
        .all(|r| r.direction == Direction::Reverse));
    // The admin API shows the direction.
    let shown = serde_json::to_value(&page.records[0]).expect("json");
    assert_eq!(shown["direction"], "reverse");

    // Planned failback drains the reverse records, then flips.
    let back = ctrl
        .failback_planned(Duration::from_secs(40), "test")
        .await
        .expect("planned failback");
    assert_eq!(back.kind, ReportKind::PlannedFailback);
    assert_eq!(gw.active_site(), SiteName::Primary);
    let pending = RecordFilter {
        state: Some(drgw::journal::StateFilter::Pending),
        ..RecordFilter::default()
    };
    assert!(gw
        .journal
        .list(&pending, None, 100)
        .await
        .expect("journal")
        .records
        .is_empty());
    let failed = RecordFilter {
        state: Some(drgw::journal::StateFilter::Failed),
        ..RecordFilter::default()
    };
    let failed = gw.journal.list(&failed, None, 100).await.expect("journal");
    assert!(failed.records.is_empty(), "{:?}", failed.records);

    // The ID map: the new network and subnet map to primary copies, origin recovery.
    let idmap = &IdMap::new(gw.store.clone());
    let net_map = idmap
        .get_by_recovery("network", "network", &r_new)
        .await
        .expect("id map")
        .expect("the new network is mapped");
    assert_eq!(net_map.origin, SiteName::Recovery);
    assert_ne!(net_map.primary_id, r_new);
    let subnet_map = idmap
        .get_by_recovery("network", "subnet", &r_subnet)
        .await
        .expect("id map")
        .expect("the new subnet is mapped");
    assert_eq!(subnet_map.origin, SiteName::Recovery);
    assert_eq!(
        idmap
            .get_by_primary("network", "network", &net_map.primary_id)
            .await
            .expect("id map"),
        Some(net_map.clone())
    );
    // The deleted security group's mapping is gone; the renamed network's stays.
    assert!(idmap
        .get_by_primary("network", "security_group", &p_sg)
        .await
        .expect("id map")
        .is_none());
    assert_eq!(
        idmap
            .recovery_id("network", "network", &p_net)
            .await
            .expect("id map"),
        Some(r_net.clone())
    );

    // The primary itself, read directly.
    let mut padmin = SimClient::new();
    padmin.token = bed.primary.issue_token("admin", "admin");
    let pnet = bed.primary.endpoints().network;
    let demo_primary = bed.primary.project_id("demo").expect("demo at the primary");
    let got = padmin
        .get(&format!("{pnet}/v2.0/networks/{}", net_map.primary_id))
        .await
        .expect("get");
    assert_eq!(got.status, StatusCode::OK, "{}", got.json);
    assert_eq!(got.json["network"]["name"], "new-net");
    // The owner is the tenant's primary project, not its recovery one.
    assert_eq!(got.json["network"]["project_id"], json!(demo_primary));
    let got = padmin
        .get(&format!("{pnet}/v2.0/subnets/{}", subnet_map.primary_id))
        .await
        .expect("get");
    assert_eq!(got.status, StatusCode::OK, "{}", got.json);
    assert_eq!(got.json["subnet"]["network_id"], json!(net_map.primary_id));
    assert_eq!(got.json["subnet"]["cidr"], "10.77.0.0/24");
    let got = padmin
        .get(&format!("{pnet}/v2.0/networks/{p_net}"))
        .await
        .expect("get");
    assert_eq!(got.json["network"]["name"], "renamed-at-recovery");
    let got = padmin
        .get(&format!("{pnet}/v2.0/security-groups/{p_sg}"))
        .await
        .expect("get");
    assert_eq!(got.status, StatusCode::NOT_FOUND, "{}", got.json);

    // Back on the primary, changes mirror forward again (to the recovery originals).
    let tenant = demo(&bed).await;
    let put = tenant
        .put(
            &format!("{net_url}/v2.0/networks/{}", net_map.primary_id),
            &json!({"network": {"name": "renamed-after-failback"}}),
        )
        .await
        .expect("rename");
    assert_eq!(put.status, StatusCode::OK, "{}", put.json);
    let mut radmin = SimClient::new();
    radmin.token = bed.recovery.issue_token("admin", "admin");
    let rnet = bed.recovery.endpoints().network;
    let start = Instant::now();
    loop {
        let got = radmin
            .get(&format!("{rnet}/v2.0/networks/{r_new}"))
            .await
            .expect("get");
        if got.json["network"]["name"] == "renamed-after-failback" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never mirrored forward: {}",
            got.json
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_failover_supersedes_what_the_lost_primary_had_pending() {
    let bed = TestBed::start().await.expect("test bed");
    let gw = bed.gateway.gateway.clone();
    let tenant = demo(&bed).await;
    bed.recovery.down().await;
    let p_net = create(
        &bed,
        &tenant,
        "networks",
        "network",
        json!({"name": "lost-net"}),
    )
    .await;
    bed.primary.down().await;

    // The recovery site stays cut off until the switch is made, so that the pending record
    // cannot be applied in the meantime (the set the report sees cannot change).
    let ctrl = Arc::new(FailoverController::new(gw.clone()));
    ctrl.load().await.expect("load");
    let report = ctrl
        .forced(Site::Recovery, "test")
        .await
        .expect("forced failover");
    bed.recovery.up().await.expect("recovery up");
    let rpo = report.rpo.expect("an RPO report");
    assert!(rpo.pending >= 1, "{rpo:?}");
    // Reported, then superseded: failed, never applied at the recovery site.
    let forward = RecordFilter {
        direction: Some(Direction::Forward),
        ..RecordFilter::default()
    };
    let records = gw
        .journal
        .list(&forward, None, 100)
        .await
        .expect("journal")
        .records;
    let lost = records
        .iter()
        .find(|r| r.primary_id.as_deref() == Some(p_net.as_str()))
        .expect("the create record");
    match &lost.state {
        drgw::journal::RecordState::Failed { reason, .. } => {
            assert!(reason.starts_with("superseded: "), "{reason}")
        }
        other => panic!("not superseded: {other:?}"),
    }
    assert!(records.iter().all(|r| !r.state.is_pending()));
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gold_volume_created_during_the_failover_is_restored_at_the_primary_on_failback() {
    let bed = TestBed::start().await.expect("test bed");
    let gw = bed.gateway.gateway.clone();
    let (admin, _) = bed.login("admin", "secret", "admin").await.expect("admin");
    // A Gold network before the failover (it maps the admin project).
    let net = admin
        .send(
            Method::POST,
            &format!("{}/v2.0/networks", bed.gateway_url("network")),
            Some(&json!({"network": {"name": "gold-before"}})),
            &[],
        )
        .await
        .expect("create");
    assert_eq!(net.header("x-dr-mirror"), Some("applied"), "{}", net.json);

    let ctrl = Arc::new(FailoverController::new(gw.clone()));
    ctrl.load().await.expect("load");
    ctrl.planned(Site::Recovery, Duration::from_secs(30), "test")
        .await
        .expect("planned failover");

    // During the failover: a Gold volume, created at the recovery site.
    let (admin, token) = bed.login("admin", "secret", "admin").await.expect("admin");
    let project = token["token"]["project"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let volume_url = bed.gateway_url("volume");
    let made = admin
        .send(
            Method::POST,
            &format!("{volume_url}/v3/{project}/volumes"),
            Some(&json!({"volume": {"name": "made-during-failover", "size": 1}})),
            &[],
        )
        .await
        .expect("volume create");
    assert_eq!(made.status, StatusCode::ACCEPTED, "{}", made.json);
    let volume_id = made.json["volume"]["id"].as_str().unwrap().to_string();

    let back = ctrl
        .failback_planned(Duration::from_secs(40), "test")
        .await
        .expect("planned failback");
    let restore = back.restore.expect("the failback restores workloads");
    let restored = restore
        .workloads
        .iter()
        .find(|w| w.primary_id == volume_id)
        .unwrap_or_else(|| panic!("the volume is not in the report: {restore:?}"));
    assert_eq!(restored.outcome, "restored", "{restored:?}");
    let primary_copy = restored.recovery_id.clone().expect("its primary id");
    assert_ne!(primary_copy, volume_id);

    // The primary has it, and the tenant reaches it by the ID it was given.
    let (admin, token) = bed.login("admin", "secret", "admin").await.expect("admin");
    let project = token["token"]["project"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let direct = bed.primary_admin().await.expect("admin at the primary");
    let at_primary = direct
        .get(&format!(
            "{}/v3/{project}/volumes/{primary_copy}",
            bed.primary.endpoints().volume
        ))
        .await
        .expect("volume show");
    assert_eq!(at_primary.status, StatusCode::OK, "{}", at_primary.json);
    assert_eq!(at_primary.json["volume"]["name"], "made-during-failover");
    let shown = admin
        .get(&format!("{volume_url}/v3/{project}/volumes/{volume_id}"))
        .await
        .expect("volume show");
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.json);
    assert_eq!(shown.json["volume"]["id"], volume_id.as_str());

    // A second failback-style restore skips it.
    let again = drgw::failover::restore::restore_workloads(&gw, SiteName::Primary).await;
    assert!(
        again
            .workloads
            .iter()
            .any(|w| w.primary_id == volume_id && w.outcome == "skipped"),
        "{again:?}"
    );
    bed.stop().await;
}

/// A reverse record the primary refused (a 4xx: permanent) waits as `failed`; retried
/// through the admin API once the primary accepts again, it applies there. The worker runs
/// reverse passes only when a reverse record may be pending, and a retry is one such moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reverse_record_applies_at_the_primary_when_retried() {
    use drgw::journal::{RecordState, StateFilter};
    use drgw_tests::sim::Service;

    let bed = TestBed::start().await.expect("test bed");
    let gw = bed.gateway.gateway.clone();
    let ctrl = Arc::new(FailoverController::new(gw.clone()));
    ctrl.load().await.expect("load");
    ctrl.planned(Site::Recovery, Duration::from_secs(30), "test")
        .await
        .expect("planned failover");
    assert_eq!(gw.active_site(), SiteName::Recovery);

    // Every Neutron call at the primary is refused while the tenant creates a network.
    let refusing = bed.primary.faults().fail(Some(Service::Network), 400, None);
    let tenant = demo(&bed).await;
    let r_net = create(
        &bed,
        &tenant,
        "networks",
        "network",
        json!({"name": "refused-then-retried"}),
    )
    .await;
    let reverse_failed = RecordFilter {
        direction: Some(Direction::Reverse),
        state: Some(StateFilter::Failed),
        ..RecordFilter::default()
    };
    let start = Instant::now();
    let seq = loop {
        let page = gw
            .journal
            .list(&reverse_failed, None, 10)
            .await
            .expect("journal");
        if let Some(r) = page.records.first() {
            assert_eq!(r.resource_type, "network");
            assert!(
                matches!(
                    &r.state,
                    RecordState::Failed {
                        retryable: false,
                        ..
                    }
                ),
                "{:?}",
                r.state
            );
            break r.seq;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the refused reverse record never failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(bed.primary.faults().remove(refusing));

    // Retried through the admin API: applied at the primary, mapped to the recovery original.
    let admin = SimClient::new();
    let bearer = format!("Bearer {}", bed.admin_token());
    let retried = admin
        .send(
            Method::POST,
            &format!(
                "http://127.0.0.1:{}/v1/journal/{seq}/retry",
                bed.ports.admin
            ),
            None,
            &[("authorization", bearer.as_str())],
        )
        .await
        .expect("retry");
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.json);
    let idmap = IdMap::new(gw.store.clone());
    let start = Instant::now();
    let primary_id = loop {
        if let Some(m) = idmap
            .get_by_recovery("network", "network", &r_net)
            .await
            .expect("id map")
        {
            assert_eq!(m.origin, SiteName::Recovery);
            break m.primary_id;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the retried reverse record never applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut padmin = SimClient::new();
    padmin.token = bed.primary.issue_token("admin", "admin");
    let got = padmin
        .get(&format!(
            "{}/v2.0/networks/{primary_id}",
            bed.primary.endpoints().network
        ))
        .await
        .expect("get");
    assert_eq!(got.status, StatusCode::OK, "{}", got.json);
    assert_eq!(got.json["network"]["name"], "refused-then-retried");
    bed.stop().await;
}
