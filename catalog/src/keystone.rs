//! Keystone service-catalog rewriting: token responses, `GET /v3/auth/catalog` and
//! `GET /v3/endpoints` bodies.
//!
//! Each endpoint of a fronted service becomes the target's base for its kind followed by
//! the endpoint's suffix. The suffix is what follows a known upstream base of that kind
//! (of any site), else the URL's whole path, query and fragment. Every other field
//! (`interface`, `region`, `region_id`, `id`, unknown ones) and the key order stay as they
//! were; entries of services the target does not front stay untouched.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::base_url::{split, BaseUrl};
use crate::service::{service_kind, ServiceKind};

/// Where the catalog in token responses points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogMode {
    /// The catalog always points at the gateway; failover switches the gateway's upstreams.
    #[default]
    Routed,
    /// The gateway fronts Keystone only; the catalog points at the active site's real
    /// endpoints, and failover repoints it.
    Direct,
}

impl CatalogMode {
    /// `routed` or `direct`.
    pub fn as_str(self) -> &'static str {
        match self {
            CatalogMode::Routed => "routed",
            CatalogMode::Direct => "direct",
        }
    }
}

impl std::fmt::Display for CatalogMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one kind's endpoints go.
#[derive(Debug, Clone)]
struct KindTarget {
    kind: ServiceKind,
    base: BaseUrl,
    /// Bases whose path is stripped from an endpoint URL before the suffix is kept: the
    /// known upstream bases and the target base itself. Longest path first.
    strip: Vec<BaseUrl>,
}

/// Per service kind: the base URL catalog entries must point at, and the upstream bases
/// (of every site) whose path is not part of an endpoint's suffix.
///
/// Routed mode: the bases are the gateway's public URLs. Direct mode: the active site's
/// real endpoints (the gateway's URL for identity).
#[derive(Debug, Clone, Default)]
pub struct CatalogTarget {
    kinds: Vec<KindTarget>,
    /// The region fronted endpoints are presented in, see [`CatalogTarget::with_region`].
    region: Option<RegionRename>,
}

/// Renames the region of fronted endpoints: `from` (any region when `None`) → `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RegionRename {
    from: Option<String>,
    to: String,
}

impl CatalogTarget {
    /// Builds a target from `(kind, base, known_upstream_bases)`.
    ///
    /// A kind whose base is empty or does not parse as `scheme://host[/path]` is not
    /// fronted: its catalog entries stay untouched. Known bases that do not parse are left
    /// out. When a kind is listed twice, the first listing counts.
    pub fn new<B, K>(entries: impl IntoIterator<Item = (ServiceKind, B, K)>) -> CatalogTarget
    where
        B: AsRef<str>,
        K: IntoIterator,
        K::Item: AsRef<str>,
    {
        let mut kinds: Vec<KindTarget> = Vec::new();
        for (kind, base, known) in entries {
            let Ok(base) = BaseUrl::parse(base.as_ref()) else {
                continue;
            };
            if kinds.iter().any(|t| t.kind == kind) {
                continue;
            }
            let mut strip: Vec<BaseUrl> = known
                .into_iter()
                .filter_map(|k| BaseUrl::parse(k.as_ref()).ok())
                .collect();
            strip.push(base.clone());
            strip.sort_by_key(|b| std::cmp::Reverse(b.path().len()));
            kinds.push(KindTarget { kind, base, strip });
        }
        CatalogTarget {
            kinds,
            region: None,
        }
    }

    /// Presents the fronted endpoints of region `from` (of every region when `None`) in
    /// region `to`: `region` and `region_id` become `to`. After a failover the recovery
    /// site's Keystone names its own region, while the tenants' clients were configured with
    /// the primary's (`region_name` in clouds.yaml); without this they would find no
    /// endpoint in the catalog. Endpoints of services that are not fronted keep theirs.
    pub fn with_region(mut self, from: Option<&str>, to: &str) -> CatalogTarget {
        self.region = Some(RegionRename {
            from: from.map(str::to_string),
            to: to.to_string(),
        });
        self
    }

    /// Whether catalog entries of `kind` are rewritten.
    pub fn fronts(&self, kind: ServiceKind) -> bool {
        self.target(kind).is_some()
    }

    /// The base that `kind`'s endpoints point at after rewriting.
    pub fn base(&self, kind: ServiceKind) -> Option<&str> {
        self.target(kind).map(|t| t.base.as_str())
    }

    fn target(&self, kind: ServiceKind) -> Option<&KindTarget> {
        self.kinds.iter().find(|t| t.kind == kind)
    }

    /// The URL that an endpoint `url` of `kind` becomes; `None` when `kind` is not fronted
    /// or `url` is not absolute. The result always starts with the kind's target base.
    pub fn endpoint_url(&self, kind: ServiceKind, url: &str) -> Option<String> {
        let target = self.target(kind)?;
        let suffix = match target.strip.iter().find_map(|b| b.suffix_of(url)) {
            Some(suffix) => suffix,
            None => split(url)?.rest,
        };
        Some(format!("{}{}", target.base.as_str(), suffix))
    }

    /// The fronted kind whose known bases `url` lies under (longest path wins), for
    /// endpoints that carry no service type.
    pub fn kind_of_url(&self, url: &str) -> Option<ServiceKind> {
        self.kinds
            .iter()
            .flat_map(|t| t.strip.iter().map(move |b| (t.kind, b)))
            .filter(|(_, b)| b.suffix_of(url).is_some())
            .max_by_key(|(_, b)| b.path().len())
            .map(|(kind, _)| kind)
    }
}

/// What a catalog rewrite did, counted in endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RewriteStats {
    /// Endpoints whose URL changed.
    pub rewritten: usize,
    /// Endpoints of a fronted service that already pointed at the target.
    pub unchanged: usize,
    /// Endpoints left alone: service not fronted, type unknown, URL missing or not absolute.
    pub untouched: usize,
}

impl std::ops::AddAssign for RewriteStats {
    fn add_assign(&mut self, other: RewriteStats) {
        self.rewritten += other.rewritten;
        self.unchanged += other.unchanged;
        self.untouched += other.untouched;
    }
}

/// Rewrites a Keystone catalog: the array `token.catalog`, or an object holding it under
/// `catalog`. Anything else is left as it is.
pub fn rewrite_catalog(catalog: &mut Value, target: &CatalogTarget) -> RewriteStats {
    let entries = match catalog {
        Value::Array(entries) => entries,
        Value::Object(map) => match map.get_mut("catalog") {
            Some(Value::Array(entries)) => entries,
            _ => return RewriteStats::default(),
        },
        _ => return RewriteStats::default(),
    };
    let mut stats = RewriteStats::default();
    for entry in entries {
        let Value::Object(entry) = entry else {
            continue;
        };
        let kind = entry
            .get("type")
            .and_then(Value::as_str)
            .and_then(service_kind)
            .filter(|kind| target.fronts(*kind));
        let Some(Value::Array(endpoints)) = entry.get_mut("endpoints") else {
            continue;
        };
        for endpoint in endpoints {
            stats += rewrite_endpoint(endpoint, kind, target);
        }
    }
    stats
}

/// Where the service type of a `/v3/endpoints` entry comes from.
#[derive(Debug, Clone, Copy)]
pub enum EndpointServices<'a> {
    /// `service_id` → catalog `type` (from `GET /v3/services`). Authoritative for the
    /// services it lists: a placement endpoint stays, whatever its URL. An endpoint whose
    /// service is not in the map (created since, or no `service_id`) is matched by URL, as
    /// with [`EndpointServices::ByUrl`].
    ById(&'a HashMap<String, String>),
    /// No map: an endpoint's kind is the fronted kind whose known upstream base (or target
    /// base) its URL lies under.
    ByUrl,
}

/// Rewrites a `GET /v3/endpoints` body (`{"endpoints": [...]}`), a single
/// `{"endpoint": {...}}`, or a bare array of endpoints. Those carry a `service_id`, not a
/// type: see [`EndpointServices`].
pub fn rewrite_endpoints_list(
    body: &mut Value,
    target: &CatalogTarget,
    services: EndpointServices<'_>,
) -> RewriteStats {
    let endpoints: Vec<&mut Value> = match body {
        Value::Array(items) => items.iter_mut().collect(),
        Value::Object(map) => {
            if let Some(Value::Array(items)) = map.get_mut("endpoints") {
                items.iter_mut().collect()
            } else if let Some(one @ Value::Object(_)) = map.get_mut("endpoint") {
                vec![one]
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    let mut stats = RewriteStats::default();
    for endpoint in endpoints {
        let listed_type = match services {
            EndpointServices::ById(types) => endpoint
                .get("service_id")
                .and_then(Value::as_str)
                .and_then(|id| types.get(id)),
            EndpointServices::ByUrl => None,
        };
        let kind = match listed_type {
            Some(listed) => service_kind(listed),
            None => endpoint
                .get("url")
                .and_then(Value::as_str)
                .and_then(|url| target.kind_of_url(url)),
        };
        stats += rewrite_endpoint(endpoint, kind.filter(|k| target.fronts(*k)), target);
    }
    stats
}

/// The distinct `service_id`s of the endpoints a body holds, in the shapes
/// [`rewrite_endpoints_list`] takes: for looking their types up (`GET /v3/services`) before
/// a rewrite [`EndpointServices::ById`].
pub fn endpoint_service_ids(body: &Value) -> Vec<String> {
    let endpoints: &[Value] = match body {
        Value::Array(items) => items,
        Value::Object(map) => match (map.get("endpoints"), map.get("endpoint")) {
            (Some(Value::Array(items)), _) => items,
            (_, Some(one @ Value::Object(_))) => std::slice::from_ref(one),
            _ => &[],
        },
        _ => &[],
    };
    let mut ids: Vec<String> = endpoints
        .iter()
        .filter_map(|e| e.get("service_id").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Rewrites whichever catalog a Keystone response body carries:
/// `{"token": {"catalog": [...]}}` (`POST`/`GET /v3/auth/tokens`),
/// `{"catalog": [...], "links": {...}}` (`GET /v3/auth/catalog`), or an endpoint list
/// (`GET /v3/endpoints[/{id}]`, each endpoint's service found as `services` says). Other
/// bodies are left as they are.
pub fn rewrite_token_response(
    body: &mut Value,
    target: &CatalogTarget,
    services: EndpointServices<'_>,
) -> RewriteStats {
    let Value::Object(map) = body else {
        return RewriteStats::default();
    };
    if let Some(Value::Object(token)) = map.get_mut("token") {
        return match token.get_mut("catalog") {
            Some(catalog) => rewrite_catalog(catalog, target),
            None => RewriteStats::default(),
        };
    }
    if map.contains_key("catalog") {
        return rewrite_catalog(body, target);
    }
    if map.contains_key("endpoints") || map.contains_key("endpoint") {
        return rewrite_endpoints_list(body, target, services);
    }
    RewriteStats::default()
}

fn rewrite_endpoint(
    endpoint: &mut Value,
    kind: Option<ServiceKind>,
    target: &CatalogTarget,
) -> RewriteStats {
    let mut stats = RewriteStats::default();
    if let (Some(rename), Some(_), Value::Object(fields)) = (&target.region, kind, &mut *endpoint) {
        rename_region(fields, rename);
    }
    let url = match endpoint.get_mut("url") {
        Some(Value::String(url)) => url,
        _ => {
            stats.untouched = 1;
            return stats;
        }
    };
    match kind.and_then(|kind| target.endpoint_url(kind, url)) {
        Some(new) if new == *url => stats.unchanged = 1,
        Some(new) => {
            *url = new;
            stats.rewritten = 1;
        }
        None => stats.untouched = 1,
    }
    stats
}

/// Applies a [`RegionRename`] to one endpoint (`region` and `region_id`, where present).
fn rename_region(fields: &mut serde_json::Map<String, Value>, rename: &RegionRename) {
    let current = fields
        .get("region_id")
        .or_else(|| fields.get("region"))
        .and_then(Value::as_str);
    let applies = match (&rename.from, current) {
        (None, _) => true,
        (Some(from), Some(current)) => from == current,
        (Some(_), None) => false,
    };
    if !applies {
        return;
    }
    for key in ["region", "region_id"] {
        if let Some(v) = fields.get_mut(key) {
            if v.is_string() {
                *v = Value::String(rename.to.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn routed() -> CatalogTarget {
        CatalogTarget::new([
            (
                ServiceKind::Identity,
                "http://gw:5000",
                vec!["http://127.0.0.1:15000", "http://10.1.0.5/identity"],
            ),
            (
                ServiceKind::Compute,
                "http://gw:8774",
                vec!["http://127.0.0.1:15001", "http://10.1.0.5/compute"],
            ),
            (
                ServiceKind::BlockStorage,
                "http://gw:8776/",
                vec!["http://127.0.0.1:15003", "http://10.1.0.5/volume"],
            ),
            (ServiceKind::Image, "", vec!["http://127.0.0.1:15002"]),
        ])
    }

    #[test]
    fn region_of_fronted_endpoints_is_renamed() {
        let t = routed().with_region(Some("RegionTwo"), "RegionOne");
        let mut catalog = json!([
            {"type": "compute", "endpoints": [
                {"interface": "public", "region": "RegionTwo", "region_id": "RegionTwo",
                 "url": "http://127.0.0.1:15001/v2.1"},
                {"interface": "public", "region": "Elsewhere", "region_id": "Elsewhere",
                 "url": "http://127.0.0.1:15001/v2.1"}
            ]},
            {"type": "placement", "endpoints": [
                {"interface": "public", "region": "RegionTwo", "region_id": "RegionTwo",
                 "url": "http://127.0.0.1:15009"}
            ]}
        ]);
        rewrite_catalog(&mut catalog, &t);
        let compute = &catalog[0]["endpoints"];
        assert_eq!(compute[0]["region"], "RegionOne");
        assert_eq!(compute[0]["region_id"], "RegionOne");
        // Another region, and a service the gateway does not front, keep theirs.
        assert_eq!(compute[1]["region_id"], "Elsewhere");
        assert_eq!(catalog[1]["endpoints"][0]["region"], "RegionTwo");

        let any = routed().with_region(None, "RegionOne");
        let mut list = json!({"endpoints": [
            {"region_id": "X", "url": "http://127.0.0.1:15001/v2.1", "service_id": "s"}
        ]});
        rewrite_token_response(&mut list, &any, EndpointServices::ByUrl);
        assert_eq!(list["endpoints"][0]["region_id"], "RegionOne");
        // No `region` key: none is added.
        assert!(list["endpoints"][0].get("region").is_none());
    }

    #[test]
    fn mode_serde() {
        assert_eq!(
            serde_json::to_string(&CatalogMode::Direct).unwrap(),
            "\"direct\""
        );
        let mode: CatalogMode = serde_json::from_str("\"routed\"").unwrap();
        assert_eq!(mode, CatalogMode::Routed);
        assert!(serde_json::from_str::<CatalogMode>("\"Routed\"").is_err());
        assert_eq!(CatalogMode::default().as_str(), "routed");
    }

    #[test]
    fn endpoint_url_table() {
        let t = routed();
        use ServiceKind::*;
        let table = [
            (
                Compute,
                "http://127.0.0.1:15001/v2.1",
                Some("http://gw:8774/v2.1"),
            ),
            (Compute, "http://127.0.0.1:15001", Some("http://gw:8774")),
            (
                Compute,
                "http://10.1.0.5/compute/v2.1",
                Some("http://gw:8774/v2.1"),
            ),
            // Unknown upstream: scheme, host and port replaced, the whole path kept.
            (
                Compute,
                "https://nova.other:443/v2.1/x?y#z",
                Some("http://gw:8774/v2.1/x?y#z"),
            ),
            (
                Compute,
                "http://10.1.0.5/computer/v2.1",
                Some("http://gw:8774/computer/v2.1"),
            ),
            // Already pointing at the gateway: unchanged.
            (Compute, "http://gw:8774/v2.1", Some("http://gw:8774/v2.1")),
            (
                BlockStorage,
                "http://127.0.0.1:15003/v3/0a1b2c",
                Some("http://gw:8776/v3/0a1b2c"),
            ),
            (
                Identity,
                "http://127.0.0.1:15000/v3",
                Some("http://gw:5000/v3"),
            ),
            (Identity, "http://10.1.0.5/identity", Some("http://gw:5000")),
            (Identity, "not a url", None),
            (Image, "http://127.0.0.1:15002", None),
            (Network, "http://127.0.0.1:15004", None),
        ];
        for (kind, url, want) in table {
            assert_eq!(t.endpoint_url(kind, url).as_deref(), want, "{kind} {url}");
        }
        assert!(!t.fronts(Image));
        assert_eq!(t.base(BlockStorage), Some("http://gw:8776"));
    }

    #[test]
    fn devstack_paths() {
        let t = CatalogTarget::new([(
            ServiceKind::Compute,
            "http://gw/compute",
            ["http://10.0.0.5/compute", "http://10.1.0.5/compute"],
        )]);
        let table = [
            ("http://10.0.0.5/compute/v2.1", "http://gw/compute/v2.1"),
            ("http://10.1.0.5/compute/v2.1", "http://gw/compute/v2.1"),
            ("http://10.0.0.5/compute", "http://gw/compute"),
            // Idempotent: the target base is stripped like a known one.
            ("http://gw/compute/v2.1", "http://gw/compute/v2.1"),
            ("http://GW:80/compute/v2.1", "http://gw/compute/v2.1"),
        ];
        for (url, want) in table {
            assert_eq!(
                t.endpoint_url(ServiceKind::Compute, url).unwrap(),
                want,
                "{url}"
            );
        }
    }

    #[test]
    fn catalog_shapes() {
        let t = routed();
        let entry = |ty: &str, url: &str| json!({"type": ty, "endpoints": [{"interface": "public", "url": url}]});
        let mut bare = json!([entry("compute", "http://127.0.0.1:15001/v2.1")]);
        assert_eq!(rewrite_catalog(&mut bare, &t).rewritten, 1);
        assert_eq!(bare[0]["endpoints"][0]["url"], "http://gw:8774/v2.1");

        let mut wrapped = json!({"catalog": [entry("volumev3", "http://127.0.0.1:15003/v3/p")]});
        assert_eq!(rewrite_catalog(&mut wrapped, &t).rewritten, 1);
        assert_eq!(
            wrapped["catalog"][0]["endpoints"][0]["url"],
            "http://gw:8776/v3/p"
        );

        for mut junk in [
            json!(null),
            json!("x"),
            json!({"catalog": {}}),
            json!([1, "a", {"type": 3}, {"type": "compute", "endpoints": {}}]),
        ] {
            let before = junk.clone();
            assert_eq!(rewrite_catalog(&mut junk, &t), RewriteStats::default());
            assert_eq!(junk, before);
        }

        let mut odd = json!([{"type": "compute", "endpoints": [
            {"url": 5}, {"interface": "public"}, "x", {"url": "relative/path"},
            {"url": "http://gw:8774/v2.1"}
        ]}, entry("placement", "http://127.0.0.1:15005"), entry("image", "http://127.0.0.1:15002")]);
        let before = odd.clone();
        let stats = rewrite_catalog(&mut odd, &t);
        assert_eq!(
            stats,
            RewriteStats {
                rewritten: 0,
                unchanged: 1,
                untouched: 6
            }
        );
        assert_eq!(odd, before);
    }

    #[test]
    fn token_response_shapes() {
        let t = routed();
        let mut token = json!({"token": {"catalog": [
            {"type": "identity", "endpoints": [{"url": "http://127.0.0.1:15000/v3"}]}
        ]}});
        assert_eq!(
            rewrite_token_response(&mut token, &t, EndpointServices::ByUrl).rewritten,
            1
        );
        assert_eq!(
            token["token"]["catalog"][0]["endpoints"][0]["url"],
            "http://gw:5000/v3"
        );

        // A token without a catalog (?nocatalog) has nothing to do.
        let mut nocatalog = json!({"token": {"methods": ["password"]}});
        assert_eq!(
            rewrite_token_response(&mut nocatalog, &t, EndpointServices::ByUrl),
            RewriteStats::default()
        );

        let mut auth_catalog = json!({
            "catalog": [{"type": "compute", "endpoints": [{"url": "http://127.0.0.1:15001/v2.1"}]}],
            "links": {"self": "http://127.0.0.1:15000/v3/auth/catalog"}
        });
        assert_eq!(
            rewrite_token_response(&mut auth_catalog, &t, EndpointServices::ByUrl).rewritten,
            1
        );
        // Links are the UrlMap's business, not the catalog's.
        assert_eq!(
            auth_catalog["links"]["self"],
            "http://127.0.0.1:15000/v3/auth/catalog"
        );

        let mut endpoints = json!({"endpoints": [
            {"service_id": "s1", "url": "http://127.0.0.1:15001/v2.1"},
            {"service_id": "s2", "url": "http://127.0.0.1:15005"}
        ]});
        let stats = rewrite_token_response(&mut endpoints, &t, EndpointServices::ByUrl);
        assert_eq!((stats.rewritten, stats.untouched), (1, 1));

        let mut one = json!({"endpoint": {"url": "http://10.1.0.5/volume/v3/p"}});
        assert_eq!(
            rewrite_token_response(&mut one, &t, EndpointServices::ByUrl).rewritten,
            1
        );
        assert_eq!(one["endpoint"]["url"], "http://gw:8776/v3/p");

        for mut other in [json!([]), json!(1), json!({"servers": []})] {
            assert_eq!(
                rewrite_token_response(&mut other, &t, EndpointServices::ByUrl),
                RewriteStats::default()
            );
        }
    }

    #[test]
    fn endpoints_by_service_id() {
        let t = routed();
        let types: HashMap<String, String> = [
            ("nova", "compute"),
            ("cinder", "block-storage"),
            ("placement", "placement"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        let mut body = json!({"endpoints": [
            {"id": "e1", "service_id": "nova", "url": "http://127.0.0.1:15001/v2.1", "interface": "admin"},
            // The map says cinder: the URL's unknown host does not matter.
            {"id": "e2", "service_id": "cinder", "url": "http://elsewhere:8776/v3/%(project_id)s"},
            // The map is authoritative for what it lists: placement stays, although its URL
            // lies under a fronted base.
            {"id": "e3", "service_id": "placement", "url": "http://127.0.0.1:15001/placement"},
            // A service the map does not list, or none, is matched by URL.
            {"id": "e4", "service_id": "unknown", "url": "http://127.0.0.1:15001/v2.1"},
            {"id": "e5", "url": "http://127.0.0.1:15001/v2.1"},
            {"id": "e6", "service_id": "unknown", "url": "http://elsewhere:9999/v2.1"}
        ]});
        let stats = rewrite_endpoints_list(&mut body, &t, EndpointServices::ById(&types));
        assert_eq!((stats.rewritten, stats.untouched), (4, 2));
        assert_eq!(body["endpoints"][0]["url"], "http://gw:8774/v2.1");
        assert_eq!(
            body["endpoints"][1]["url"],
            "http://gw:8776/v3/%(project_id)s"
        );
        assert_eq!(
            body["endpoints"][2]["url"],
            "http://127.0.0.1:15001/placement"
        );
        assert_eq!(body["endpoints"][3]["url"], "http://gw:8774/v2.1");
        assert_eq!(body["endpoints"][4]["url"], "http://gw:8774/v2.1");
        assert_eq!(body["endpoints"][5]["url"], "http://elsewhere:9999/v2.1");

        let mut by_url = json!([
            {"url": "http://10.1.0.5/compute/v2.1"},
            {"url": "http://10.1.0.5/placement"},
            {"url": "http://elsewhere:8776/v3"}
        ]);
        let stats = rewrite_endpoints_list(&mut by_url, &t, EndpointServices::ByUrl);
        assert_eq!((stats.rewritten, stats.untouched), (1, 2));
        assert_eq!(by_url[0]["url"], "http://gw:8774/v2.1");
    }

    #[test]
    fn service_ids_of_each_endpoint_list_shape() {
        let list = json!({"endpoints": [
            {"service_id": "b"}, {"service_id": "a"}, {"service_id": "b"}, {"url": "x"}
        ]});
        assert_eq!(endpoint_service_ids(&list), ["a", "b"]);
        assert_eq!(
            endpoint_service_ids(&json!({"endpoint": {"service_id": "a"}})),
            ["a"]
        );
        assert_eq!(endpoint_service_ids(&json!([{"service_id": "c"}])), ["c"]);
        assert!(endpoint_service_ids(&json!({"servers": []})).is_empty());
    }

    #[test]
    fn kind_of_url_prefers_longest() {
        let t = CatalogTarget::new([
            (
                ServiceKind::Identity,
                "http://gw:5000",
                vec!["http://10.0.0.5"],
            ),
            (
                ServiceKind::Compute,
                "http://gw:8774",
                vec!["http://10.0.0.5/compute"],
            ),
        ]);
        assert_eq!(
            t.kind_of_url("http://10.0.0.5/compute/v2.1"),
            Some(ServiceKind::Compute)
        );
        assert_eq!(
            t.kind_of_url("http://10.0.0.5/v3"),
            Some(ServiceKind::Identity)
        );
        assert_eq!(t.kind_of_url("http://10.0.0.6/v3"), None);
        assert_eq!(
            t.kind_of_url("http://gw:8774/v2.1"),
            Some(ServiceKind::Compute)
        );
    }
}
