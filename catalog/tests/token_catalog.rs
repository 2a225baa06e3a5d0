//! Catalog rewriting of a real Keystone token response (captured from the realstack
//! devstack-like site: Keystone, Nova, Glance, Cinder, Neutron and Placement on ports
//! 15000–15005 of 127.0.0.1).

use drgw_catalog::{
    rewrite_catalog, rewrite_token_response, CatalogTarget, EndpointServices, RewriteStats,
    ServiceKind, UrlMap,
};
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/token-response.json");

const UPSTREAMS: [(ServiceKind, &str, &str); 5] = [
    (
        ServiceKind::Identity,
        "http://127.0.0.1:15000",
        "http://gw:5000",
    ),
    (
        ServiceKind::Compute,
        "http://127.0.0.1:15001",
        "http://gw:8774",
    ),
    (
        ServiceKind::Image,
        "http://127.0.0.1:15002",
        "http://gw:9292",
    ),
    (
        ServiceKind::BlockStorage,
        "http://127.0.0.1:15003",
        "http://gw:8776",
    ),
    (
        ServiceKind::Network,
        "http://127.0.0.1:15004",
        "http://gw:9696",
    ),
];

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("fixture is JSON")
}

fn routed_target() -> CatalogTarget {
    CatalogTarget::new(
        UPSTREAMS
            .iter()
            .map(|(kind, upstream, public)| (*kind, *public, vec![*upstream, "http://10.9.0.1:1"])),
    )
}

/// `(type, interface, region, region_id, id, url)` of every endpoint.
fn endpoints(token: &Value) -> Vec<[String; 6]> {
    let mut out = Vec::new();
    for entry in token["token"]["catalog"].as_array().unwrap() {
        for ep in entry["endpoints"].as_array().unwrap() {
            let field = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
            out.push([
                field(entry, "type"),
                field(ep, "interface"),
                field(ep, "region"),
                field(ep, "region_id"),
                field(ep, "id"),
                field(ep, "url"),
            ]);
        }
    }
    out
}

fn key_orders(value: &Value, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) => {
            out.push(map.keys().cloned().collect());
            map.values().for_each(|v| key_orders(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| key_orders(v, out)),
        _ => {}
    }
}

#[test]
fn routed_catalog_points_at_the_gateway() {
    let mut token = fixture();
    let before = endpoints(&token);
    let stats = rewrite_token_response(&mut token, &routed_target(), EndpointServices::ByUrl);
    let after = endpoints(&token);

    // Six services, three interfaces each; placement is not fronted.
    assert_eq!(
        stats,
        RewriteStats {
            rewritten: 15,
            unchanged: 0,
            untouched: 3
        }
    );
    assert_eq!(before.len(), after.len());
    for (old, new) in before.iter().zip(&after) {
        // type, interface, region, region_id and id unchanged.
        assert_eq!(old[..5], new[..5]);
        let (ty, old_url, new_url) = (&old[0], &old[5], &new[5]);
        match drgw_catalog::service_kind(ty) {
            Some(kind) => {
                let (_, upstream, public) = UPSTREAMS.iter().find(|u| u.0 == kind).unwrap();
                assert!(new_url.starts_with(public), "{ty}: {new_url}");
                // The suffix is preserved.
                assert_eq!(
                    old_url.strip_prefix(upstream),
                    new_url.strip_prefix(public),
                    "{ty}"
                );
            }
            None => assert_eq!(old_url, new_url, "{ty} must stay"),
        }
    }
    let url = |ty: &str| after.iter().find(|e| e[0] == ty).unwrap()[5].clone();
    assert_eq!(url("identity"), "http://gw:5000/v3");
    assert_eq!(url("compute"), "http://gw:8774/v2.1");
    assert_eq!(url("image"), "http://gw:9292");
    assert_eq!(
        url("block-storage"),
        "http://gw:8776/v3/41661d3b0c5c4cf79e2162c6bab56c22"
    );
    assert_eq!(url("network"), "http://gw:9696");
    assert_eq!(url("placement"), "http://127.0.0.1:15005");
}

#[test]
fn everything_but_urls_is_unchanged() {
    let original = fixture();
    let mut token = original.clone();
    rewrite_token_response(&mut token, &routed_target(), EndpointServices::ByUrl);

    let (mut keys_before, mut keys_after) = (Vec::new(), Vec::new());
    key_orders(&original, &mut keys_before);
    key_orders(&token, &mut keys_after);
    assert_eq!(keys_before, keys_after, "key order preserved");

    // Outside the catalog nothing changed.
    let mut a = original.clone();
    let mut b = token.clone();
    a["token"]["catalog"] = Value::Null;
    b["token"]["catalog"] = Value::Null;
    assert_eq!(a, b);

    // Serialized, the rewritten body differs from the original only in `url` lines.
    let old_text = serde_json::to_string_pretty(&original).unwrap();
    let new_text = serde_json::to_string_pretty(&token).unwrap();
    assert_eq!(old_text.lines().count(), new_text.lines().count());
    let changed: Vec<(&str, &str)> = old_text
        .lines()
        .zip(new_text.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 15);
    for (a, b) in changed {
        assert!(a.trim_start().starts_with("\"url\": ") && b.trim_start().starts_with("\"url\": "));
    }
}

#[test]
fn rewriting_twice_changes_nothing() {
    let mut token = fixture();
    let target = routed_target();
    rewrite_token_response(&mut token, &target, EndpointServices::ByUrl);
    let once = token.clone();
    let stats = rewrite_token_response(&mut token, &target, EndpointServices::ByUrl);
    assert_eq!(stats.rewritten, 0);
    assert_eq!(stats.unchanged, 15);
    assert_eq!(token, once);
}

#[test]
fn direct_mode_points_at_the_active_site() {
    // Direct mode: identity via the gateway, the rest at the recovery site's endpoints.
    let recovery = [
        (ServiceKind::Compute, "https://nova.dr.example:8774"),
        (ServiceKind::Image, "https://glance.dr.example"),
        (ServiceKind::BlockStorage, "https://cinder.dr.example:8776"),
        (ServiceKind::Network, "https://neutron.dr.example:9696"),
    ];
    let mut entries: Vec<(ServiceKind, String, Vec<String>)> = vec![(
        ServiceKind::Identity,
        "https://keystone.gw.example".into(),
        vec!["http://127.0.0.1:15000".into()],
    )];
    for (kind, base) in recovery {
        let primary = UPSTREAMS.iter().find(|u| u.0 == kind).unwrap().1;
        entries.push((kind, base.into(), vec![primary.into(), base.into()]));
    }
    let target = CatalogTarget::new(entries);
    let mut token = fixture();
    let stats = rewrite_token_response(&mut token, &target, EndpointServices::ByUrl);
    assert_eq!(stats.rewritten, 15);
    let after = endpoints(&token);
    let url = |ty: &str| after.iter().find(|e| e[0] == ty).unwrap()[5].clone();
    assert_eq!(url("identity"), "https://keystone.gw.example/v3");
    assert_eq!(url("compute"), "https://nova.dr.example:8774/v2.1");
    assert_eq!(url("image"), "https://glance.dr.example");
    assert_eq!(
        url("block-storage"),
        "https://cinder.dr.example:8776/v3/41661d3b0c5c4cf79e2162c6bab56c22"
    );
}

#[test]
fn auth_catalog_shape_and_links() {
    // GET /v3/auth/catalog: the same entries under "catalog", plus Keystone's links.
    let token = fixture();
    let mut body = serde_json::json!({
        "catalog": token["token"]["catalog"].clone(),
        "links": {"self": "http://127.0.0.1:15000/v3/auth/catalog", "previous": null, "next": null}
    });
    let target = routed_target();
    assert_eq!(
        rewrite_token_response(&mut body, &target, EndpointServices::ByUrl).rewritten,
        15
    );
    assert_eq!(rewrite_catalog(&mut body, &target).rewritten, 0);

    let links = UrlMap::new(UPSTREAMS);
    assert!(links.contains_upstream(serde_json::to_string(&body).unwrap().as_bytes()));
    // The catalog is done; only `links.self` is left. Placement is not in the map.
    assert_eq!(links.rewrite_json_links(&mut body), 1);
    assert_eq!(body["links"]["self"], "http://gw:5000/v3/auth/catalog");
    let text = serde_json::to_string(&body).unwrap();
    for (_, upstream, _) in UPSTREAMS {
        assert!(!text.contains(upstream), "{upstream} left in {text}");
    }
    assert!(text.contains("127.0.0.1:15005"));
}

#[test]
fn links_in_the_raw_token_body() {
    let links = UrlMap::new(UPSTREAMS);
    assert!(links.contains_upstream(FIXTURE.as_bytes()));
    let mut token = fixture();
    // Link rewriting alone also reaches catalog URLs (they are upstream URLs), except
    // placement's.
    assert_eq!(links.rewrite_json_links(&mut token), 15);
    let mut routed = fixture();
    rewrite_token_response(&mut routed, &routed_target(), EndpointServices::ByUrl);
    assert_eq!(token, routed);
}
