//! Neutron bulk creates (`{"networks": [...]}`) through the gateway, in-process test bed:
//! each created resource is tagged with its tier, mirrored and mapped like a create of its
//! own; a bulk asking for two tiers is refused in Neutron's format with nothing created; a
//! Gold bulk the recovery site cannot take in full is undone at both sites.

use std::time::{Duration, Instant};

use drgw_tests::sim::client::SimClient;
use drgw_tests::sim::Service;
use drgw_tests::testbed::TestBed;
use http::{Method, StatusCode};
use serde_json::{json, Value};

async fn bulk(
    bed: &TestBed,
    c: &SimClient,
    list_key: &str,
    coll: &str,
    items: Value,
    tier: Option<&str>,
) -> drgw_tests::sim::client::SimResponse {
    let headers: Vec<(&str, &str)> = tier.map(|t| ("x-dr-tier", t)).into_iter().collect();
    c.send(
        Method::POST,
        &format!("{}/v2.0/{coll}", bed.gateway_url("network")),
        Some(&json!({ list_key: items })),
        &headers,
    )
    .await
    .expect("bulk create")
}

fn ids(resp: &Value, list_key: &str) -> Vec<String> {
    resp[list_key]
        .as_array()
        .expect("a list")
        .iter()
        .map(|i| i["id"].as_str().expect("an id").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resource_of_a_bulk_create_is_tagged_mirrored_and_mapped() {
    let bed = TestBed::start().await.expect("test bed");
    let (demo, _) = bed.login("demo", "demo", "demo").await.expect("demo");

    let resp = bulk(
        &bed,
        &demo,
        "networks",
        "networks",
        json!([{"name": "bulk-a"}, {"name": "bulk-b", "tags": ["dr-tier:bronze"]}]),
        None,
    )
    .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.json);
    assert_eq!(resp.header("x-dr-tier"), Some("bronze"));
    assert_eq!(resp.header("x-dr-mirror"), Some("queued"));
    let nets = ids(&resp.json, "networks");
    assert_eq!(nets.len(), 2);
    for item in resp.json["networks"].as_array().unwrap() {
        assert!(
            item["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("dr-tier:bronze"))),
            "the tenant sees the tier tag on each item: {item}"
        );
        // What the tenant was answered is what a show says now: the tag, and the revision
        // Neutron counted for it (tempest's port tests compare the two).
        let show = demo
            .get(&format!(
                "{}/v2.0/networks/{}",
                bed.gateway_url("network"),
                item["id"].as_str().unwrap()
            ))
            .await
            .expect("show");
        assert_eq!(show.json["network"]["tags"], item["tags"], "{}", show.json);
        assert_eq!(
            show.json["network"]["revision_number"], item["revision_number"],
            "answered {item}, shown {}",
            show.json
        );
    }

    // One subnet per network, in one bulk call: references translate item by item.
    let resp = bulk(
        &bed,
        &demo,
        "subnets",
        "subnets",
        json!([
            {"name": "bulk-a-sub", "network_id": nets[0], "cidr": "10.61.0.0/24", "ip_version": 4},
            {"name": "bulk-b-sub", "network_id": nets[1], "cidr": "10.62.0.0/24", "ip_version": 4},
        ]),
        Some("bronze"),
    )
    .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.json);
    let subnets = ids(&resp.json, "subnets");

    let rec = bed
        .recovery_admin()
        .await
        .expect("admin logs in at the recovery site");
    let recovery_net = |id: String| {
        let url = format!("{}/v2.0/networks/{id}", bed.recovery.endpoints().network);
        let rec = &rec;
        async move { rec.get(&url).await.expect("recovery network").json }
    };
    let mut recovery_nets = Vec::new();
    for (net, name) in nets.iter().zip(["bulk-a", "bulk-b"]) {
        let m = bed
            .mapped("network", "network", net, Duration::from_secs(20))
            .await;
        assert_ne!(&m.recovery_id, net, "the recovery copy has its own id");
        let copy = recovery_net(m.recovery_id.clone()).await;
        assert_eq!(copy["network"]["name"], name);
        let tags = copy["network"]["tags"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            tags.contains(&json!("dr-tier:bronze")),
            "the recovery copy carries the tier tag: {copy}"
        );
        recovery_nets.push(m.recovery_id);
    }
    for (subnet, net) in subnets.iter().zip(&recovery_nets) {
        let m = bed
            .mapped("network", "subnet", subnet, Duration::from_secs(20))
            .await;
        let url = format!(
            "{}/v2.0/subnets/{}",
            bed.recovery.endpoints().network,
            m.recovery_id
        );
        let copy = rec.get(&url).await.expect("recovery subnet").json;
        assert_eq!(
            copy["subnet"]["network_id"].as_str(),
            Some(net.as_str()),
            "the subnet's network is the recovery copy: {copy}"
        );
    }

    // Two bulk items asking for two tiers: refused before anything is created.
    let before = bed.primary.neutron_named("networks", "split-a").len();
    let resp = bulk(
        &bed,
        &demo,
        "networks",
        "networks",
        json!([
            {"name": "split-a", "tags": ["dr-tier:bronze"]},
            {"name": "split-b", "tags": ["dr-tier:silver"]},
        ]),
        None,
    )
    .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.json);
    assert!(
        resp.json["NeutronError"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("bronze") && m.contains("silver")),
        "Neutron's error format names both tiers: {}",
        resp.json
    );
    assert_eq!(
        bed.primary.neutron_named("networks", "split-a").len(),
        before
    );
    assert!(bed.primary.neutron_named("networks", "split-b").is_empty());
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gold_bulk_the_recovery_site_cannot_finish_is_undone_at_both_sites() {
    let bed = TestBed::start().await.expect("test bed");
    let (admin, _) = bed.login("admin", "secret", "admin").await.expect("admin");

    // The recovery Neutron answers slowly, and fails once the first item's copy exists
    // there: the first item is mirrored, the second is not.
    let slow =
        bed.recovery
            .faults()
            .latency(Some(Service::Network), Duration::from_millis(300), None);
    let watcher = {
        let recovery = bed.recovery.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            while recovery.neutron_named("networks", "gold-bulk-a").is_empty() {
                assert!(start.elapsed() < Duration::from_secs(20), "never mirrored");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            recovery.faults().fail(Some(Service::Network), 503, None)
        })
    };
    let resp = bulk(
        &bed,
        &admin,
        "networks",
        "networks",
        json!([{"name": "gold-bulk-a"}, {"name": "gold-bulk-b"}]),
        None,
    )
    .await;
    let failing = watcher.await.expect("watcher");
    assert_eq!(
        resp.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the Gold tier rejects the bulk: {}",
        resp.json
    );
    assert!(
        resp.json["NeutronError"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Nothing was changed")),
        "{}",
        resp.json
    );
    for name in ["gold-bulk-a", "gold-bulk-b"] {
        assert!(
            bed.primary.neutron_named("networks", name).is_empty(),
            "{name} was undone at the primary"
        );
    }
    assert_eq!(
        bed.recovery.neutron_named("networks", "gold-bulk-a").len(),
        1
    );

    // Once the recovery site answers again, the journaled delete removes the copy of the
    // item that had been mirrored.
    bed.recovery.faults().remove(failing);
    bed.recovery.faults().remove(slow);
    let start = Instant::now();
    while !bed
        .recovery
        .neutron_named("networks", "gold-bulk-a")
        .is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the mirrored copy of the undone item was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(bed
        .recovery
        .neutron_named("networks", "gold-bulk-b")
        .is_empty());
    bed.stop().await;
}
