//! Failover end to end with the in-process test bed (two simulated sites, the sandbox
//! gateway): planned switchover drains and flips, a drain that cannot finish aborts with
//! writes frozen only meanwhile (503 + Retry-After in the native format, reads pass), a
//! forced switch reports exactly the records still pending, the drill finds drift made
//! directly at the recovery site, the persisted status survives a new controller, and a
//! change whose body is still arriving holds up no switch (it is told to retry after).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drgw::config::SiteName;
use drgw::failover::{
    DrillOutcome, FailoverController, FailoverError, Phase, ReportKind, Site, FAILOVER_REPORTS,
};
use drgw::journal::{RecordFilter, StateFilter};
use drgw::operation::{Action, Operation, ResourceType, Service};
use drgw_tests::sim::client::SimClient;
use drgw_tests::testbed::TestBed;
use http::{Method, StatusCode};
use serde_json::{json, Value};

fn op(service: Service, resource: ResourceType, action: Action) -> Operation {
    Operation {
        service,
        resource,
        action,
        ids: Vec::new(),
        project: None,
        action_name: None,
    }
}

async fn demo(bed: &TestBed) -> (SimClient, Value) {
    bed.login("demo", "demo", "demo")
        .await
        .expect("demo logs in through the gateway")
}

/// Creates a network through the gateway in `tier`; returns its primary id.
async fn network(bed: &TestBed, c: &SimClient, name: &str, tier: &str) -> String {
    let resp = c
        .send(
            Method::POST,
            &format!("{}/v2.0/networks", bed.gateway_url("network")),
            Some(&json!({"network": {"name": name}})),
            &[("x-dr-tier", tier)],
        )
        .await
        .expect("network create");
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.json);
    assert_eq!(resp.header("x-dr-tier"), Some(tier));
    resp.json["network"]["id"]
        .as_str()
        .expect("network id")
        .to_string()
}

async fn pending_seqs(bed: &TestBed) -> BTreeSet<u64> {
    let filter = RecordFilter {
        state: Some(StateFilter::Pending),
        ..RecordFilter::default()
    };
    bed.gateway
        .gateway
        .journal
        .list(&filter, None, 10_000)
        .await
        .expect("journal")
        .records
        .iter()
        .map(|r| r.seq)
        .collect()
}

async fn mapped(bed: &TestBed, primary_id: &str, limit: Duration) -> String {
    bed.mapped("network", "network", primary_id, limit)
        .await
        .recovery_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_failover_drains_flips_persists_and_fails_back() {
    let bed = TestBed::start().await.expect("test bed");
    let gw = bed.gateway.gateway.clone();
    let (tenant, _) = demo(&bed).await;
    // The recovery site is cut off while the tenant writes: both records are pending
    // when the switch starts, and the drain waits until the site is back.
    bed.recovery.down().await;
    let silver = network(&bed, &tenant, "planned-silver", "silver").await;
    let bronze = network(&bed, &tenant, "planned-bronze", "bronze").await;
    assert!(pending_seqs(&bed).await.len() >= 2);

    let ctrl = Arc::new(FailoverController::new(gw.clone()));
    let loaded = ctrl.load().await.expect("load");
    assert_eq!(
        (loaded.phase, loaded.active_site, loaded.epoch),
        (Phase::Normal, Site::Primary, 0)
    );
    let text = gw.metrics.render();
    assert!(text.contains("drgw_id_translation 0"), "{text}");

    let switching = {
        let ctrl = ctrl.clone();
        tokio::spawn(async move {
            ctrl.planned(Site::Recovery, Duration::from_secs(40), "test")
                .await
        })
    };
    let start = Instant::now();
    while !ctrl.writes_frozen() {
        assert!(start.elapsed() < Duration::from_secs(5), "never froze");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ctrl.status().phase, Phase::Switching, "still draining");
    assert_eq!(gw.active_site(), SiteName::Primary);
    bed.recovery.up().await.expect("recovery up");
    let report = switching.await.expect("task").expect("planned failover");
    println!("{}", report.to_text());
    assert_eq!(report.kind, ReportKind::PlannedFailover);
    assert_eq!((report.from, report.to), (Site::Primary, Site::Recovery));
    assert!(report.pending_at_freeze >= 2, "{report:?}");
    assert!(report.drain_ms >= 300, "{report:?}");
    assert!(
        report.flip_ms < 1000.0,
        "catalog switch took {} ms",
        report.flip_ms
    );
    // Drained: nothing pending, both networks exist at the recovery site.
    assert!(pending_seqs(&bed).await.is_empty());
    mapped(&bed, &silver, Duration::ZERO).await;
    mapped(&bed, &bronze, Duration::ZERO).await;
    assert_eq!(gw.active_site(), SiteName::Recovery);
    let status = ctrl.status();
    assert_eq!(
        (
            status.phase,
            status.active_site,
            status.writes_frozen,
            status.epoch
        ),
        (Phase::FailedOver, Site::Recovery, false, 2)
    );
    assert_eq!(status.last_report_id.as_deref(), Some(report.id.as_str()));
    let text = gw.metrics.render();
    assert!(
        text.contains("drgw_active_site{site=\"recovery\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("drgw_failover_state{state=\"failed_over\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("drgw_failovers_total{kind=\"planned_failover\"} 1"),
        "{text}"
    );
    assert!(text.contains("drgw_id_translation 1"), "{text}");

    // The primary's token means nothing to the recovery site: a call with it is refused
    // 401, naming the gateway's Keystone to log in at again. A new login reaches the
    // recovery Keystone, and reads through the gateway reach the recovery site.
    let refused = tenant
        .get(&format!("{}/v2.0/networks", bed.gateway_url("network")))
        .await
        .expect("a call with the old token");
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.json);
    let challenge = format!("Keystone uri=\"{}\"", bed.gateway_url("identity"));
    assert_eq!(refused.header("www-authenticate"), Some(challenge.as_str()));
    let (tenant, _) = demo(&bed).await;
    bed.recovery.requests().clear();
    bed.primary.requests().clear();
    let list = tenant
        .get(&format!("{}/v2.0/networks", bed.gateway_url("network")))
        .await
        .expect("list");
    assert_eq!(list.status, StatusCode::OK, "{}", list.json);
    assert!(
        !bed.recovery
            .requests()
            .matching("GET", "/v2.0/networks")
            .is_empty(),
        "the list reached the recovery site"
    );
    assert!(bed
        .primary
        .requests()
        .matching("GET", "/v2.0/networks")
        .is_empty());
    assert!(
        list.json.to_string().contains("planned-silver"),
        "{}",
        list.json
    );

    // The status and the report survive a new controller (a restart).
    drop(ctrl);
    let ctrl = Arc::new(FailoverController::new(gw.clone()));
    gw.set_active_site(SiteName::Primary); // what a fresh process starts with
    let loaded = ctrl.load().await.expect("load");
    assert_eq!(
        (loaded.phase, loaded.active_site, loaded.epoch),
        (Phase::FailedOver, Site::Recovery, 2)
    );
    assert_eq!(gw.active_site(), SiteName::Recovery);
    let kept = ctrl
        .report(&report.id)
        .await
        .expect("report")
        .expect("kept");
    assert_eq!(
        (&kept.id, kept.kind, kept.epoch, kept.drain_ms),
        (&report.id, report.kind, report.epoch, report.drain_ms)
    );
    assert!(ctrl.report("fo-0-nothing").await.expect("read").is_none());
    assert!(gw
        .store
        .get(FAILOVER_REPORTS, report.id.as_bytes())
        .await
        .expect("store")
        .is_some());

    // Failing over again is refused; failback switches back.
    let again = ctrl
        .planned(Site::Recovery, Duration::from_secs(1), "test")
        .await;
    assert!(
        matches!(again, Err(FailoverError::Transition(_))),
        "{again:?}"
    );
    let back = ctrl
        .failback_planned(Duration::from_secs(30), "test")
        .await
        .expect("planned failback");
    assert_eq!(back.kind, ReportKind::PlannedFailback);
    assert_eq!((back.from, back.to), (Site::Recovery, Site::Primary));
    assert_eq!(gw.active_site(), SiteName::Primary);
    assert_eq!(ctrl.status().phase, Phase::Normal);
    assert_eq!(ctrl.status().epoch, 4);

    // Two controllers racing (one stale): exactly one wins, the other gets a conflict.
    let other = Arc::new(FailoverController::new(gw.clone()));
    other.load().await.expect("load");
    let (a, b) = tokio::join!(
        ctrl.forced(Site::Recovery, "test"),
        other.forced(Site::Recovery, "test")
    );
    let outcomes = [a.is_ok(), b.is_ok()];
    assert_eq!(
        outcomes.iter().filter(|ok| **ok).count(),
        1,
        "{a:?} / {b:?}"
    );
    let err = a.err().or(b.err()).expect("one failed");
    assert_eq!(err.kind(), "conflict", "{err}");
    assert_eq!(gw.active_site(), SiteName::Recovery);
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_aborts_and_writes_are_frozen_only_meanwhile() {
    let bed = TestBed::start().await.expect("test bed");
    let gw = bed.gateway.gateway.clone();
    let (tenant, _) = demo(&bed).await;
    bed.recovery.down().await;
    network(&bed, &tenant, "stuck-bronze", "bronze").await;

    let ctrl = Arc::new(FailoverController::new(gw.clone()));
    ctrl.load().await.expect("load");
    let create = op(Service::Network, ResourceType::Network, Action::Create);
    let read = op(Service::Network, ResourceType::Network, Action::Read);
    assert!(
        ctrl.guard(&create).is_none(),
        "not frozen before the switch"
    );

    let switching = {
        let ctrl = ctrl.clone();
        tokio::spawn(async move {
            ctrl.planned(Site::Recovery, Duration::from_millis(1500), "test")
                .await
        })
    };
    let start = Instant::now();
    while !ctrl.writes_frozen() {
        assert!(start.elapsed() < Duration::from_secs(5), "never froze");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ctrl.status().phase, Phase::Switching);
    assert_eq!(
        gw.active_site(),
        SiteName::Primary,
        "the old site stays active"
    );

    // Writes: 503 + Retry-After in each service's native format.
    let resp = ctrl.guard(&create).expect("a write is refused");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "5");
    let body: Value = serde_json::from_slice(resp.body()).expect("json");
    assert_eq!(
        body["NeutronError"]["type"], "HTTPServiceUnavailable",
        "{body}"
    );
    let nova = ctrl
        .guard(&op(Service::Compute, ResourceType::Server, Action::Delete))
        .expect("refused");
    let body: Value = serde_json::from_slice(nova.body()).expect("json");
    assert_eq!(body["serviceUnavailable"]["code"], 503, "{body}");
    let keystone = ctrl
        .guard(&op(
            Service::Identity,
            ResourceType::Project,
            Action::Update,
        ))
        .expect("refused");
    let body: Value = serde_json::from_slice(keystone.body()).expect("json");
    assert_eq!(body["error"]["code"], 503, "{body}");
    let glance = ctrl
        .guard_accept(
            &op(Service::Image, ResourceType::Image, Action::Create),
            Some("application/json"),
        )
        .expect("refused");
    let body: Value = serde_json::from_slice(glance.body()).expect("json");
    assert_eq!(body["code"], "503 Service Unavailable", "{body}");
    // Reads, logins and token deletes pass.
    assert!(ctrl.guard(&read).is_none());
    assert!(ctrl
        .guard(&op(Service::Identity, ResourceType::Token, Action::Create))
        .is_none());
    assert!(ctrl
        .guard(&op(Service::Identity, ResourceType::Token, Action::Delete))
        .is_none());
    // A read through the gateway is served meanwhile.
    let list = tenant
        .get(&format!("{}/v2.0/networks", bed.gateway_url("network")))
        .await
        .expect("list");
    assert_eq!(list.status, StatusCode::OK);

    let result = switching.await.expect("task");
    match result {
        Err(FailoverError::DrainTimeout {
            pending, active, ..
        }) => {
            assert!(pending >= 1);
            assert_eq!(active, Site::Primary);
        }
        other => panic!("expected a drain timeout, got {other:?}"),
    }
    let status = ctrl.status();
    assert_eq!(
        (status.phase, status.active_site, status.writes_frozen),
        (Phase::Normal, Site::Primary, false)
    );
    assert_eq!(gw.active_site(), SiteName::Primary);
    assert!(ctrl.guard(&create).is_none(), "unfrozen after the abort");
    bed.recovery.up().await.expect("recovery up");
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_failover_reports_exactly_the_pending_records() {
    let bed = TestBed::start().await.expect("test bed");
    let gw = bed.gateway.gateway.clone();
    let (tenant, token_body) = demo(&bed).await;
    let project = token_body["token"]["project"]["id"]
        .as_str()
        .expect("project id")
        .to_string();
    // Applied before the outage: not part of the loss.
    let early = network(&bed, &tenant, "early-bronze", "bronze").await;
    mapped(&bed, &early, Duration::from_secs(10)).await;
    // Gold (the admin project): applied before its create returned.
    let (admin, _) = bed
        .login("admin", "secret", "admin")
        .await
        .expect("admin logs in through the gateway");
    let gold = network(&bed, &admin, "gold-before", "gold").await;

    bed.recovery.down().await;
    let mut lost = BTreeSet::new();
    lost.insert(network(&bed, &tenant, "lost-bronze-1", "bronze").await);
    lost.insert(network(&bed, &tenant, "lost-bronze-2", "bronze").await);
    lost.insert(network(&bed, &tenant, "lost-silver", "silver").await);
    let ctrl = Arc::new(FailoverController::new(gw.clone()));
    ctrl.load().await.expect("load");

    // The primary dies; nothing can be applied (the recovery site is still cut off too,
    // so the pending set cannot change under the test).
    bed.primary.down().await;
    let pending = pending_seqs(&bed).await;
    assert!(pending.len() >= 3, "{pending:?}");
    let report = ctrl
        .forced(Site::Recovery, "test")
        .await
        .expect("forced failover");
    println!("{}", report.to_text());
    assert_eq!(report.kind, ReportKind::ForcedFailover);
    assert_eq!(gw.active_site(), SiteName::Recovery);
    let rpo = report.rpo.as_ref().expect("an RPO report");
    assert!(rpo.error.is_none(), "{rpo:?}");
    let reported: BTreeSet<u64> = rpo.pending_seqs().into_iter().collect();
    assert_eq!(reported, pending, "exactly the pending records");
    assert_eq!(rpo.pending, pending.len() as u64);
    let tiers: BTreeSet<&str> = rpo.tiers.iter().map(|t| t.tier.as_str()).collect();
    assert_eq!(tiers, BTreeSet::from(["bronze", "silver"]));
    let ids: BTreeSet<String> = rpo
        .tiers
        .iter()
        .flat_map(|t| t.tenants.iter())
        .inspect(|t| assert_eq!(t.project_id, project))
        .flat_map(|t| t.records.iter())
        .filter(|r| r.resource_type == "network" && r.action == "create")
        .filter_map(|r| r.primary_id.clone())
        .collect();
    assert_eq!(ids, lost, "the lost creates, and not the early one");
    for t in &rpo.tiers {
        assert!(t.oldest_pending_age_seconds.is_some_and(|a| a >= 0.0));
    }

    // Kept and retrievable by id.
    assert_eq!(
        ctrl.status().last_report_id.as_deref(),
        Some(report.id.as_str())
    );
    let kept = ctrl.report(&report.id).await.expect("read").expect("kept");
    assert_eq!((&kept.id, kept.kind), (&report.id, report.kind));
    assert_eq!(
        kept.rpo.as_ref().map(|r| r.pending_seqs()),
        Some(rpo.pending_seqs())
    );
    assert!(gw
        .metrics
        .render()
        .contains("drgw_failovers_total{kind=\"forced_failover\"} 1"));
    bed.recovery.up().await.expect("recovery up");

    // Gold lost nothing: the admin, now served by the recovery site, finds its network by
    // the ID the primary gave it.
    let (admin, _) = bed
        .login("admin", "secret", "admin")
        .await
        .expect("admin logs in at the recovery site through the gateway");
    let shown = admin
        .get(&format!(
            "{}/v2.0/networks/{gold}",
            bed.gateway_url("network")
        ))
        .await
        .expect("show");
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.json);
    assert_eq!(shown.json["network"]["name"], "gold-before");
    assert_eq!(shown.json["network"]["id"], gold.as_str());
    bed.primary.up().await.expect("primary up");
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_reports_drift_made_at_the_recovery_site() {
    let bed = TestBed::start().await.expect("test bed");
    let gw = bed.gateway.gateway.clone();
    let (tenant, token_body) = demo(&bed).await;
    let project = token_body["token"]["project"]["id"]
        .as_str()
        .expect("project id")
        .to_string();
    let kept = network(&bed, &tenant, "drill-kept", "bronze").await;
    let deleted = network(&bed, &tenant, "drill-deleted", "bronze").await;
    let renamed = network(&bed, &tenant, "drill-renamed", "bronze").await;
    let kept_r = mapped(&bed, &kept, Duration::from_secs(10)).await;
    let deleted_r = mapped(&bed, &deleted, Duration::from_secs(10)).await;
    let renamed_r = mapped(&bed, &renamed, Duration::from_secs(10)).await;

    let ctrl = FailoverController::new(gw.clone());
    let clean = ctrl.drill().await;
    println!("{}", clean.to_table());
    for id in [&kept, &deleted, &renamed] {
        let e = clean
            .entries
            .iter()
            .find(|e| &e.primary_id == id)
            .expect("checked");
        assert_eq!(e.outcome, DrillOutcome::Ok, "{e:?}");
        assert_eq!(
            (e.tenant.as_str(), e.tier.as_str()),
            (project.as_str(), "bronze")
        );
    }

    // Drift outside the gateway, directly at the recovery site.
    let mut radmin = SimClient::new();
    radmin.token = bed.recovery.issue_token("admin", "admin");
    let net = bed.recovery.endpoints().network;
    let del = radmin
        .delete(&format!("{net}/v2.0/networks/{deleted_r}"))
        .await
        .expect("delete");
    assert!(del.status.is_success(), "{}", del.status);
    let put = radmin
        .put(
            &format!("{net}/v2.0/networks/{renamed_r}"),
            &json!({"network": {"name": "changed-at-recovery"}}),
        )
        .await
        .expect("rename");
    assert!(put.status.is_success(), "{}", put.json);

    let report = ctrl.drill().await;
    let table = report.to_table();
    println!("{table}");
    let entry = |id: &str| {
        report
            .entries
            .iter()
            .find(|e| e.primary_id == id)
            .expect("checked")
            .clone()
    };
    assert_eq!(entry(&kept).outcome, DrillOutcome::Ok);
    let missing = entry(&deleted);
    assert_eq!(missing.outcome, DrillOutcome::Missing, "{missing:?}");
    assert_eq!(missing.recovery_id, deleted_r);
    let differs = entry(&renamed);
    assert_eq!(differs.outcome, DrillOutcome::Differs, "{differs:?}");
    assert_eq!(differs.differences[0].attribute, "name");
    assert_eq!(
        differs.differences[0].recovery,
        json!("changed-at-recovery")
    );
    assert!(report.missing >= 1 && report.differs >= 1 && !report.is_clean());
    assert!(
        table.contains(&deleted_r) && table.contains("missing"),
        "{table}"
    );
    assert!(
        !table.contains(&kept_r),
        "ok entries are not listed: {table}"
    );
    let group = report
        .groups
        .iter()
        .find(|g| g.tenant == project && g.tier == "bronze")
        .expect("a group for demo/bronze");
    assert_eq!((group.missing, group.differs), (1, 1));
    let json = report.to_json();
    assert!(json["missing"].as_u64().is_some_and(|n| n >= 1), "{json}");
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_slow_to_send_a_change_holds_up_no_switch_and_is_told_to_retry() {
    let bed = TestBed::start().await.expect("test bed");
    let (tenant, _) = demo(&bed).await;
    let token = tenant.token.clone().expect("a token");
    let network_url = bed.gateway_url("network");

    // A network create whose head and first half of body arrive; the rest waits.
    let body = br#"{"network": {"name": "slow-body"}}"#;
    let (first, rest) = body.split_at(body.len() / 2);
    let head = format!(
        "POST /v2.0/networks HTTP/1.1\r\nhost: drgw.test\r\nx-auth-token: {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut sock = tokio::net::TcpStream::connect(network_url.trim_start_matches("http://"))
        .await
        .expect("connect");
    let mut sent = head.into_bytes();
    sent.extend_from_slice(first);
    tokio::io::AsyncWriteExt::write_all(&mut sock, &sent)
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The switch does not wait for it: nothing of it has reached an upstream.
    let ctrl = bed.gateway.failover.clone();
    let report = ctrl
        .planned(Site::Recovery, Duration::from_secs(5), "test")
        .await
        .expect("a planned failover with a change's body still on its way");
    assert_eq!(report.to, Site::Recovery);

    // The body completes after the switch: 503 + Retry-After in Neutron's format, and the
    // network exists at neither site.
    let mut buf = Vec::new();
    let answer = drgw_tests::http1::request(&mut sock, &mut buf, rest).await;
    let text = String::from_utf8_lossy(&answer.body);
    assert_eq!(answer.status, 503, "{}{text}", answer.head);
    assert_eq!(answer.header("retry-after"), Some("5"), "{}", answer.head);
    let fault: Value = serde_json::from_slice(&answer.body).expect("JSON");
    assert_eq!(
        fault["NeutronError"]["type"], "HTTPServiceUnavailable",
        "{fault}"
    );
    for site in [&bed.primary, &bed.recovery] {
        assert!(
            site.neutron_named("networks", "slow-body").is_empty(),
            "created at {}",
            site.name()
        );
    }
    bed.stop().await;
}
