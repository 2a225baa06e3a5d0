//! The devstack layout: one shared listener, a path prefix per service (`/compute`, ...),
//! in front of a Nova that builds its URLs from the `X-Forwarded-*` headers (oslo.middleware's
//! `http_proxy_to_wsgi` with `enable_proxy_headers_parsing`, as kolla-ansible sets it). The
//! gateway tells it the prefix (`X-Forwarded-Prefix`), so the URLs Nova builds are the
//! gateway's, prefix included; a client's own `X-Forwarded-Prefix` or `Forwarded` cannot
//! choose them.

use drgw_tests::sim::client::SimClient;
use drgw_tests::sim::SiteConfig;
use drgw_tests::testbed::TestBed;
use http::Method;
use serde_json::Value;

/// The sandbox configuration with the five dedicated listeners replaced by one shared
/// listener on the identity port.
fn shared_listener(config: String) -> String {
    let start = config.find("[listeners.").expect("listeners");
    let end = config.find("[admin]").expect("admin section");
    let listeners = &config[start..end];
    let identity_port = listeners
        .split("listen = \"127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("identity port")
        .to_string();
    format!(
        "{}[listeners.shared]\nlisten = \"127.0.0.1:{identity_port}\"\npublic_url = \"http://127.0.0.1:{identity_port}\"\n\n{}",
        &config[..start],
        &config[end..]
    )
}

/// Every `href` in a document.
fn hrefs(doc: &Value, out: &mut Vec<String>) {
    match doc {
        Value::Object(map) => {
            if let Some(Value::String(h)) = map.get("href") {
                out.push(h.clone());
            }
            map.values().for_each(|v| hrefs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| hrefs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_behind_proxy_header_parsing_links_to_the_gateways_prefix() {
    let primary = SiteConfig {
        proxy_headers: true,
        ..SiteConfig::named("primary")
    };
    let bed = TestBed::start_with_sites(primary, SiteConfig::named("recovery"), shared_listener)
        .await
        .expect("test bed");
    let shared = format!("http://127.0.0.1:{}", bed.ports.identity);
    let mut admin = SimClient::new();
    admin
        .login(&format!("{shared}/identity/v3"), "admin", "secret", "admin")
        .await
        .expect("login through the shared listener");
    let compute = format!("{shared}/compute");

    // The version document (the fast lane) and a flavor list (with a client's own
    // forwarding headers, which the gateway drops): every link is under /compute.
    let version = admin.get(&format!("{compute}/")).await.expect("versions");
    let spoofing = [
        ("x-forwarded-prefix", "/elsewhere"),
        ("forwarded", "host=evil.example;proto=https"),
    ];
    let flavors = admin
        .send(
            Method::GET,
            &format!("{compute}/v2.1/flavors"),
            None,
            &spoofing,
        )
        .await
        .expect("flavors");
    let mut links = Vec::new();
    hrefs(&version.json, &mut links);
    hrefs(&flavors.json, &mut links);
    assert!(links.len() >= 4, "{links:?}");
    for link in &links {
        assert!(
            link.starts_with(&format!("{compute}/")),
            "{link} is not under the gateway's {compute}"
        );
    }

    // What Nova was told.
    let seen = bed.primary.requests().matching("GET", "/v2.1/flavors");
    let headers = &seen.last().expect("the flavor list reached Nova").headers;
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("x-forwarded-prefix"), Some("/compute"));
    assert_eq!(header("forwarded"), None);
    bed.stop().await;
}
