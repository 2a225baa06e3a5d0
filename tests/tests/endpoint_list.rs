//! `GET /v3/endpoints` through the gateway: an endpoint whose URL names its service by a
//! host the gateway's configuration does not (a VIP's name where the configuration has its
//! address) is still the gateway's in the answer, because the gateway knows it by its
//! service (`GET /v3/services` at the site, read once) and not by its URL.

use drgw_tests::testbed::TestBed;
use http::StatusCode;
use serde_json::{json, Value};

/// The URL of every endpoint in a list answer.
fn urls(list: &Value) -> Vec<String> {
    list["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["url"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_named_by_another_host_are_the_gateways() {
    let bed = TestBed::start().await.expect("test bed");
    let (admin, _) = bed.login("admin", "secret", "admin").await.expect("admin");
    let identity = bed.gateway_url("identity");
    let gateway = ["identity", "compute", "image", "volume", "network"].map(|s| bed.gateway_url(s));

    // Nova's endpoint again, under the name `localhost` (the site's configuration and the
    // gateway's say 127.0.0.1): what a catalog written with a VIP's host name looks like.
    let services = admin
        .get(&format!("{identity}/v3/services"))
        .await
        .expect("services");
    let compute = services.json["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["type"] == "compute")
        .and_then(|s| s["id"].as_str())
        .expect("a compute service")
        .to_string();
    let nova = bed.primary.endpoints().compute;
    let aliased = format!("{}/v2.1", nova.replace("127.0.0.1", "localhost"));
    assert_ne!(
        aliased,
        format!("{nova}/v2.1"),
        "the site's URL names 127.0.0.1"
    );
    let created = admin
        .post(
            &format!("{identity}/v3/endpoints"),
            &json!({"endpoint": {"service_id": compute, "interface": "internal",
                "region_id": bed.primary.region(), "url": aliased}}),
        )
        .await
        .expect("endpoint create");
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let endpoint_id = created.json["endpoint"]["id"]
        .as_str()
        .expect("id")
        .to_string();

    let asked_before = bed.primary.requests().matching("GET", "/v3/services").len();

    // The list: every URL is the gateway's, the aliased one too, its path kept.
    let list = admin
        .get(&format!("{identity}/v3/endpoints"))
        .await
        .expect("endpoint list");
    assert_eq!(list.status, StatusCode::OK, "{}", list.json);
    let listed = urls(&list.json);
    assert!(
        listed.len() >= 16,
        "15 bootstrap endpoints and ours: {listed:?}"
    );
    for url in &listed {
        assert!(
            gateway.iter().any(|g| url.starts_with(g.as_str())),
            "{url} bypasses the gateway: {listed:?}"
        );
    }
    let ours = list.json["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["id"] == endpoint_id.as_str())
        .expect("the new endpoint is listed");
    let expected = format!("{}/v2.1", bed.gateway_url("compute"));
    assert_eq!(ours["url"], expected.as_str());

    // One endpoint, and a list filtered by service: the same.
    let one = admin
        .get(&format!("{identity}/v3/endpoints/{endpoint_id}"))
        .await
        .expect("endpoint show");
    assert_eq!(
        one.json["endpoint"]["url"],
        expected.as_str(),
        "{}",
        one.json
    );
    let filtered = admin
        .get(&format!("{identity}/v3/endpoints?service_id={compute}"))
        .await
        .expect("filtered list");
    for url in urls(&filtered.json) {
        assert_eq!(url, expected, "{}", filtered.json);
    }

    // The site's services were read once for the three answers.
    let asked = bed.primary.requests().matching("GET", "/v3/services").len() - asked_before;
    assert_eq!(asked, 1, "GET /v3/services at the primary");

    // The site itself still has the URL the admin gave.
    let direct = bed.primary_admin().await.expect("primary admin");
    let at_site = direct
        .get(&format!(
            "{}/v3/endpoints/{endpoint_id}",
            bed.primary.endpoints().identity
        ))
        .await
        .expect("endpoint at the site");
    assert_eq!(at_site.json["endpoint"]["url"], aliased.as_str());

    // A token's catalog lists it as the gateway's too (matched by type, as ever).
    let (_, token) = bed.login("admin", "secret", "admin").await.expect("login");
    let in_catalog: Vec<&str> = token["token"]["catalog"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["type"] == "compute")
        .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
        .filter_map(|e| e["url"].as_str())
        .collect();
    assert_eq!(in_catalog.len(), 4, "{token}");
    assert!(in_catalog.iter().all(|u| *u == expected), "{in_catalog:?}");

    let deleted = admin
        .delete(&format!("{identity}/v3/endpoints/{endpoint_id}"))
        .await
        .expect("endpoint delete");
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.json);
    bed.stop().await;
}
