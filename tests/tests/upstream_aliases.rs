//! `[sites.NAME.aliases]`: a site whose services name themselves by another base URL than
//! the one the gateway connects to (a VIP's host name in `public_endpoint`, where the
//! gateway's configuration has an address). Here the gateway reaches the primary at
//! `localhost` while the primary's answers say `127.0.0.1`: with the aliases, its links,
//! version documents and catalog all name the gateway.

use drgw_tests::testbed::TestBed;
use serde_json::{json, Value};

const SERVICES: [&str; 5] = ["identity", "compute", "network", "volumev3", "image"];

/// The configuration with the primary's upstreams at `localhost`, and its answers' own
/// `127.0.0.1` URLs as aliases.
fn primary_at_localhost(config: String) -> String {
    let start = config.find("[sites.primary]").expect("primary section");
    let end = config.find("[sites.recovery]").expect("recovery section");
    let mut section = config[start..end].to_string();
    let mut aliases = String::from("[sites.primary.aliases]\n");
    for service in SERVICES {
        let key = format!("\n{service} = \"");
        let at = section.find(&key).expect("service URL") + key.len();
        let url_end = at + section[at..].find('"').expect("closing quote");
        let url = section[at..url_end].to_string();
        aliases.push_str(&format!("{service} = [\"{url}\"]\n"));
        section.replace_range(at..url_end, &url.replace("127.0.0.1", "localhost"));
    }
    format!("{}{section}{aliases}\n{}", &config[..start], &config[end..])
}

/// Every string in `doc` that looks like an absolute URL.
fn urls(doc: &Value, out: &mut Vec<String>) {
    match doc {
        Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
            out.push(s.clone())
        }
        Value::Array(items) => items.iter().for_each(|v| urls(v, out)),
        Value::Object(map) => map.values().for_each(|v| urls(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sites_other_names_are_pointed_at_the_gateway() {
    let bed = TestBed::start_with(primary_at_localhost)
        .await
        .expect("test bed");
    let primary = bed.gateway.config.site(drgw::config::SiteName::Primary);
    assert!(
        primary
            .endpoint(drgw::operation::Service::Compute)
            .contains("localhost"),
        "the gateway connects to localhost"
    );
    let gateway = ["identity", "compute", "image", "volume", "network"].map(|s| bed.gateway_url(s));
    let through_gateway = |what: &str, doc: &Value| {
        let mut found = Vec::new();
        urls(doc, &mut found);
        assert!(!found.is_empty(), "{what}: no URL in {doc}");
        for url in found {
            assert!(
                gateway.iter().any(|g| url.starts_with(g.as_str())),
                "{what}: {url} bypasses the gateway"
            );
        }
    };

    let (admin, token) = bed.login("admin", "secret", "admin").await.expect("login");
    through_gateway("token catalog", &token["token"]["catalog"]);

    // Version documents: Keystone's, Nova's, Neutron's.
    for (service, path) in [("identity", "/v3"), ("compute", "/"), ("network", "/")] {
        let doc = admin
            .get(&format!("{}{path}", bed.gateway_url(service)))
            .await
            .expect("version document");
        through_gateway(&format!("{service} {path}"), &doc.json);
    }

    // A page of networks: its `next` link.
    let direct = bed.primary_admin().await.expect("primary admin");
    let network = bed.primary.endpoints().network;
    for name in ["alias-a", "alias-b"] {
        let made = direct
            .post(
                &format!("{network}/v2.0/networks"),
                &json!({"network": {"name": name}}),
            )
            .await
            .expect("network at the primary");
        assert!(made.status.is_success(), "{}", made.json);
    }
    let page = admin
        .get(&format!(
            "{}/v2.0/networks?limit=1",
            bed.gateway_url("network")
        ))
        .await
        .expect("a page of networks");
    assert!(
        page.json["networks_links"].is_array(),
        "a next link: {}",
        page.json
    );
    through_gateway("networks_links", &page.json["networks_links"]);

    // The endpoint list, also by URL: every one is the gateway's.
    let endpoints = admin
        .get(&format!("{}/v3/endpoints", bed.gateway_url("identity")))
        .await
        .expect("endpoints");
    let listed: Vec<Value> = endpoints.json["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["url"].clone())
        .collect();
    through_gateway("endpoint list", &Value::Array(listed));
    bed.stop().await;
}
