//! Whatever bytes arrive, the rewriters neither panic nor produce a URL outside the
//! configured public bases. A small deterministic fuzz loop (no extra dependencies).

use drgw_catalog::{rewrite_token_response, CatalogTarget, EndpointServices, ServiceKind, UrlMap};
use serde_json::{json, Value};

/// xorshift64*: deterministic, good enough to shuffle fragments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const FRAGMENTS: &[&str] = &[
    "http://",
    "https://",
    "HTTP://",
    "10.0.0.5",
    "10.0.0.5:8774",
    ":80",
    ":443",
    ":",
    "[::1]",
    "/compute",
    "/",
    "?",
    "#",
    "é",
    "\u{0}",
    "@",
    "%2F",
    "v2.1",
    "",
    "://",
    "]",
    "[",
    "gw",
    "compute",
    "\\",
    "..",
    ":99999",
];

const PUBLIC: [&str; 2] = ["https://cloud.example.com:8774", "http://gw/compute"];

fn map() -> UrlMap {
    UrlMap::new([
        (ServiceKind::Compute, "http://10.0.0.5:8774", PUBLIC[0]),
        (ServiceKind::Compute, "http://10.0.0.5/compute", PUBLIC[1]),
        (ServiceKind::Identity, "http://[::1]", PUBLIC[0]),
    ])
}

fn target() -> CatalogTarget {
    CatalogTarget::new([
        (
            ServiceKind::Compute,
            PUBLIC[1],
            vec!["http://10.0.0.5:8774", "http://10.0.0.5/compute"],
        ),
        (ServiceKind::Identity, PUBLIC[0], vec!["http://[::1]"]),
    ])
}

#[test]
fn random_urls() {
    let (map, target) = (map(), target());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..50_000 {
        let n = 1 + rng.next() % 6;
        let url: String = (0..n).map(|_| rng.pick(FRAGMENTS)).collect();
        if let Some(out) = map.rewrite_url(&url) {
            assert!(PUBLIC.iter().any(|p| out.starts_with(p)), "{url} → {out}");
            assert!(map.contains_upstream(url.as_bytes()), "{url}");
        }
        for kind in [
            ServiceKind::Compute,
            ServiceKind::Identity,
            ServiceKind::Image,
        ] {
            if let Some(out) = target.endpoint_url(kind, &url) {
                assert!(PUBLIC.iter().any(|p| out.starts_with(p)), "{url} → {out}");
            }
        }
        let _ = target.kind_of_url(&url);
        let _ = drgw_catalog::BaseUrl::parse(&url);
    }
}

#[test]
fn random_documents() {
    let (map, target) = (map(), target());
    let mut rng = Rng(7);
    let shapes = [
        |u: Value| json!({"token": {"catalog": [{"type": "compute", "endpoints": [{"url": u}]}]}}),
        |u: Value| json!({"token": {"catalog": {"type": "compute", "url": u}}}),
        |u: Value| json!({"token": u}),
        |u: Value| json!({"catalog": [{"type": u, "endpoints": [{"url": "http://10.0.0.5:8774/v2.1"}]}]}),
        |u: Value| json!({"catalog": [{"type": "identity", "endpoints": u}]}),
        |u: Value| json!({"endpoints": [u, {"url": u}]}),
        |u: Value| json!({"endpoint": u}),
        |u: Value| json!([u, [u, {"next": u}]]),
    ];
    for _ in 0..20_000 {
        let url: String = (0..4).map(|_| rng.pick(FRAGMENTS)).collect();
        let leaf = match rng.next() % 5 {
            0 => Value::Null,
            1 => json!(3),
            2 => json!([url]),
            3 => json!({"url": url}),
            _ => Value::String(url),
        };
        let shape = shapes[(rng.next() % shapes.len() as u64) as usize];
        let mut doc = shape(leaf);
        let _ = rewrite_token_response(&mut doc, &target, EndpointServices::ByUrl);
        let _ = map.rewrite_json_links(&mut doc);
        let text = serde_json::to_vec(&doc).unwrap();
        let _ = map.contains_upstream(&text);
    }
}
