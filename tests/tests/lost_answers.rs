//! A protected change whose outcome the upstream does not tell: the request reached it,
//! and then its answer was lost (reset), never came in time, or broke off. The tenant
//! hears 502/504 in the service's format, nothing is journaled, and the gateway counts
//! the change in `drgw_unconfirmed_changes_total{service,reason}` and logs it, because the
//! upstream may have made it: it then exists at the site, unmirrored. A change that never
//! reached the upstream (no connection) is not counted.

use drgw_tests::sim::Service;
use drgw_tests::testbed::TestBed;
use serde_json::{json, Value};

const LOST_BY_RESET: &str = r#"drgw_unconfirmed_changes_total{reason="reset",service="network"}"#;

/// The names of the networks at the primary site, as its admin lists them (directly).
async fn primary_networks(bed: &TestBed) -> Vec<String> {
    let admin = bed.primary_admin().await.expect("primary admin");
    let listed = admin
        .get(&format!(
            "{}/v2.0/networks",
            bed.primary.endpoints().network
        ))
        .await
        .expect("list");
    assert_eq!(listed.status, 200);
    listed.json["networks"]
        .as_array()
        .expect("networks")
        .iter()
        .filter_map(|n| n["name"].as_str().map(str::to_string))
        .collect()
}

fn create(name: &str) -> Value {
    json!({"network": {"name": name}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_answer_is_lost_is_counted_as_unconfirmed() {
    let bed = TestBed::start().await.expect("test bed");
    let (demo, _) = bed.login("demo", "demo", "demo").await.expect("demo login");
    let networks = format!("{}/v2.0/networks", bed.gateway_url("network"));

    // The primary makes the network, and the answer is lost on the way back.
    bed.primary
        .faults()
        .lose_answer(Some(Service::Network), Some(1));
    let lost = demo
        .post(&networks, &create("lost-answer"))
        .await
        .expect("post");
    assert_eq!(lost.status, 502, "{}", lost.json);
    assert!(
        lost.json["NeutronError"]["message"].is_string(),
        "Neutron's format: {}",
        lost.json
    );
    assert!(
        primary_networks(&bed)
            .await
            .contains(&"lost-answer".to_string()),
        "the primary made the change"
    );
    assert_eq!(bed.metric(LOST_BY_RESET).await, Some(1.0));

    // An answered change is not counted.
    let kept = demo
        .post(&networks, &create("answered"))
        .await
        .expect("post");
    assert_eq!(kept.status, 201, "{}", kept.json);
    assert_eq!(bed.metric(LOST_BY_RESET).await, Some(1.0));

    // Nor is a change that never reached the primary: its site is down (connection
    // refused, nothing sent).
    bed.primary.down().await;
    let refused = demo
        .post(&networks, &create("never-sent"))
        .await
        .expect("post");
    assert_eq!(refused.status, 502, "{}", refused.json);
    bed.primary.up().await.expect("primary back up");
    assert_eq!(bed.metric(LOST_BY_RESET).await, Some(1.0));
    let names = primary_networks(&bed).await;
    assert!(!names.contains(&"never-sent".to_string()), "{names:?}");
    let connect_series = r#"drgw_unconfirmed_changes_total{reason="connect""#;
    assert_eq!(bed.metric(connect_series).await, None);
    bed.stop().await;
}
