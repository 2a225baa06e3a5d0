//! A site whose answers come gzipped (a compressing load balancer in front of the services,
//! simulated by the `gzip` fault) with clients that accept gzip, as python-requests does:
//! a protected create is still tagged, journaled and mirrored, because the gateway must
//! read its answer; a listing's links are still the gateway's, because the gateway decodes
//! an answer it rewrites; the tenant reads every answer either way.

use std::io::Read;
use std::time::Duration;

use drgw_tests::sim::client::SimResponse;
use drgw_tests::testbed::TestBed;
use http::Method;
use serde_json::{json, Value};

/// The JSON of an answer, gunzipped when it says it is gzipped.
fn answer_json(resp: &SimResponse) -> Value {
    let mut bytes = resp.bytes.to_vec();
    if resp.header("content-encoding") == Some("gzip") {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut plain)
            .expect("a gzip body");
        bytes = plain;
    }
    serde_json::from_slice(&bytes).expect("a JSON answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzipped_answers_are_read_mirrored_and_rewritten() {
    let bed = TestBed::start().await.expect("test bed");
    let (demo, _) = bed.login("demo", "demo", "demo").await.expect("demo login");
    bed.primary.faults().gzip(None, None);
    let gzip = [("accept-encoding", "gzip, deflate")];
    let networks = format!("{}/v2.0/networks", bed.gateway_url("network"));

    // The site does compress for a client that asks (the fault works).
    let direct = bed.primary_admin().await.expect("admin at the primary");
    let listed = direct
        .send(
            Method::GET,
            &format!("{}/v2.0/networks", bed.primary.endpoints().network),
            None,
            &gzip,
        )
        .await
        .expect("list at the primary");
    assert_eq!(listed.header("content-encoding"), Some("gzip"));

    // A protected create through the gateway: answered, tagged with its tier, mirrored.
    let (client, url, accept) = (&demo, &networks, &gzip);
    let create = |name: &'static str| async move {
        let body = json!({"network": {"name": name}});
        client.send(Method::POST, url, Some(&body), accept).await
    };
    let created = create("gz-net").await.expect("create");
    assert_eq!(created.status, 201);
    let network = answer_json(&created)["network"].clone();
    let id = network["id"].as_str().expect("the new network's id");
    let mapping = bed
        .mapped("network", "network", id, Duration::from_secs(20))
        .await;
    let recovery = bed
        .recovery_admin()
        .await
        .expect("admin at the recovery site");
    let copy = recovery
        .get(&format!(
            "{}/v2.0/networks/{}",
            bed.recovery.endpoints().network,
            mapping.recovery_id
        ))
        .await
        .expect("the recovery copy");
    assert_eq!(copy.status, 200, "{}", copy.json);
    assert_eq!(copy.json["network"]["name"], "gz-net");
    let at_primary = direct
        .get(&format!(
            "{}/v2.0/networks/{id}",
            bed.primary.endpoints().network
        ))
        .await
        .expect("the primary network");
    let tags = at_primary.json["network"]["tags"].to_string();
    assert!(tags.contains("dr-tier:"), "the tier tag: {tags}");

    // A listing with links (two networks, one a page): the gateway's URLs only, in an
    // answer the client can read.
    let second = create("gz-net-2").await.expect("create");
    assert_eq!(second.status, 201);
    let listing = demo
        .send(Method::GET, &format!("{networks}?limit=1"), None, &gzip)
        .await
        .expect("list");
    assert_eq!(listing.status, 200);
    let text = answer_json(&listing).to_string();
    let upstream = bed.primary.endpoints().network;
    assert!(
        text.contains("networks_links")
            && text.contains(&bed.gateway_url("network"))
            && !text.contains(&upstream),
        "links name the gateway, not {upstream}: {text}"
    );
    bed.stop().await;
}
