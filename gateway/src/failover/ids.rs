//! Stable IDs after a failover, as pure functions: tenants keep using the IDs they know,
//! and the gateway translates them through the ID map.
//!
//! The ID a tenant knows is the one its resource got at the site where it was created (its
//! *origin*): a resource created before the failover is known by its primary ID, one created
//! during it by its recovery ID (also after failback, when reverse replication gave it a
//! primary copy). Two directions, seen from the active site:
//! - requests, tenant → site: [`translate_request_path`] (each ID segment after a known
//!   collection, Cinder's/legacy Nova's `/{project_id}` segment), [`translate_request_query`]
//!   (filters such as `network_id=`), [`translate_request_body`] (references such as a
//!   subnet's `network_id` or a server's `networks[].uuid`);
//! - responses, site → tenant: [`translate_response_ids`] (`id` of a known resource
//!   wrapper, and well-known reference fields).
//!
//! An ID without a mapping is left as it is: a resource created at the active site keeps
//! its ID there, and a name is not an ID. Look-ups go through [`IdLookup`] (service and
//! resource type spelled as in the ID map: `network`/`subnet`, `volume`/`volume_type`,
//! `identity`/`project`, ...). The functions are synchronous: the request path first runs
//! them with a [`CollectingLookup`] to learn which IDs it needs, fetches those mappings
//! from the state store at once, then runs them again with the [`StaticIdLookup`] it built.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::operation::Service;

/// ID-map look-ups in both directions, relative to the active site.
pub trait IdLookup {
    /// The active site's ID of an ID the tenant knows (requests).
    fn to_site(&self, service: &str, resource_type: &str, id: &str) -> Option<String>;
    /// The ID the tenant knows of an active site's ID (responses).
    fn to_tenant(&self, service: &str, resource_type: &str, id: &str) -> Option<String>;
}

/// Which way an ID is translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Tenant's ID → the active site's.
    ToSite,
    /// The active site's ID → the tenant's.
    ToTenant,
}

/// An [`IdLookup`] that knows nothing and remembers what it was asked: running a translation
/// with it lists the mappings the real translation needs.
#[derive(Debug, Default)]
pub struct CollectingLookup {
    wanted: RefCell<BTreeSet<(Direction, String, String, String)>>,
}

impl CollectingLookup {
    pub fn new() -> CollectingLookup {
        CollectingLookup::default()
    }

    /// Whether nothing was asked.
    pub fn is_empty(&self) -> bool {
        self.wanted.borrow().is_empty()
    }

    /// The look-ups asked for so far, each once.
    pub fn into_wanted(self) -> Vec<(Direction, String, String, String)> {
        self.wanted.into_inner().into_iter().collect()
    }

    fn ask(&self, direction: Direction, service: &str, resource_type: &str, id: &str) {
        self.wanted.borrow_mut().insert((
            direction,
            service.to_string(),
            resource_type.to_string(),
            id.to_string(),
        ));
    }
}

impl IdLookup for CollectingLookup {
    fn to_site(&self, service: &str, resource_type: &str, id: &str) -> Option<String> {
        self.ask(Direction::ToSite, service, resource_type, id);
        None
    }

    fn to_tenant(&self, service: &str, resource_type: &str, id: &str) -> Option<String> {
        self.ask(Direction::ToTenant, service, resource_type, id);
        None
    }
}

/// An in-memory [`IdLookup`].
#[derive(Debug, Clone, Default)]
pub struct StaticIdLookup {
    to_site: HashMap<(String, String, String), String>,
    to_tenant: HashMap<(String, String, String), String>,
}

impl StaticIdLookup {
    /// An empty map.
    pub fn new() -> StaticIdLookup {
        StaticIdLookup::default()
    }

    /// Adds one pair: the tenant knows the resource as `tenant_id`, the active site as
    /// `site_id`.
    pub fn insert(&mut self, service: &str, resource_type: &str, tenant_id: &str, site_id: &str) {
        self.to_site.insert(
            (service.into(), resource_type.into(), tenant_id.into()),
            site_id.into(),
        );
        self.to_tenant.insert(
            (service.into(), resource_type.into(), site_id.into()),
            tenant_id.into(),
        );
    }

    /// Adds one answer of one direction only.
    pub fn insert_one(
        &mut self,
        direction: Direction,
        service: &str,
        resource_type: &str,
        from: &str,
        to: &str,
    ) {
        let map = match direction {
            Direction::ToSite => &mut self.to_site,
            Direction::ToTenant => &mut self.to_tenant,
        };
        map.insert(
            (service.into(), resource_type.into(), from.into()),
            to.into(),
        );
    }

    /// Whether no mapping is known.
    pub fn is_empty(&self) -> bool {
        self.to_site.is_empty() && self.to_tenant.is_empty()
    }
}

impl IdLookup for StaticIdLookup {
    fn to_site(&self, service: &str, resource_type: &str, id: &str) -> Option<String> {
        self.to_site
            .get(&(service.into(), resource_type.into(), id.into()))
            .cloned()
    }

    fn to_tenant(&self, service: &str, resource_type: &str, id: &str) -> Option<String> {
        self.to_tenant
            .get(&(service.into(), resource_type.into(), id.into()))
            .cloned()
    }
}

/// (ID-map service, resource type) of the IDs that follow a collection segment.
fn collection(service: Service, segment: &str) -> Option<(&'static str, &'static str)> {
    Some(match (service, segment) {
        (Service::Compute, "flavors") => ("compute", "flavor"),
        (Service::Compute, "servers") => ("compute", "server"),
        (Service::Network, "networks") => ("network", "network"),
        (Service::Network, "subnets") => ("network", "subnet"),
        (Service::Network, "routers") => ("network", "router"),
        (Service::Network, "security-groups") => ("network", "security_group"),
        (Service::Network, "security-group-rules") => ("network", "security_group_rule"),
        (Service::Network, "ports") => ("network", "port"),
        (Service::Network, "floatingips") => ("network", "floating_ip"),
        (Service::BlockStorage, "types") => ("volume", "volume_type"),
        (Service::BlockStorage, "volumes") => ("volume", "volume"),
        (Service::BlockStorage, "snapshots") => ("volume", "snapshot"),
        (Service::Image, "images") => ("image", "image"),
        (Service::Identity, "projects") => ("identity", "project"),
        (Service::Identity, "users") => ("identity", "user"),
        (Service::Identity, "groups") => ("identity", "group"),
        (Service::Identity, "roles") => ("identity", "role"),
        _ => return None,
    })
}

/// Whether a segment is an API version (`v2.0`, `v2.1`, `v3`, `v2`).
fn is_version(s: &str) -> bool {
    s.strip_prefix('v')
        .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// One ID found in a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathId {
    /// Segment index (after the leading `/`).
    pub segment: usize,
    pub service: &'static str,
    pub resource_type: &'static str,
    pub id: String,
}

/// The IDs a request path carries, for prefetching their mappings. `path` is relative to
/// the service's base URL and may carry a query (ignored).
pub fn request_path_ids(service: Service, path: &str) -> Vec<PathId> {
    let p = path.split_once('?').map_or(path, |(p, _)| p);
    let segs: Vec<&str> = p.trim_start_matches('/').split('/').collect();
    let mut out = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        if seg.is_empty() {
            continue;
        }
        // `/v3/{project_id}/...` (Cinder) and `/v2.1/{project_id}/...` (legacy Nova).
        if i == 1
            && matches!(service, Service::BlockStorage | Service::Compute)
            && segs.first().is_some_and(|v| is_version(v))
            && collection(service, seg).is_none()
            && segs.len() > 2
        {
            out.push(PathId {
                segment: i,
                service: "identity",
                resource_type: "project",
                id: (*seg).to_string(),
            });
            continue;
        }
        if i == 0 {
            continue;
        }
        if let Some((svc, rt)) = collection(service, segs[i - 1]) {
            if collection(service, seg).is_none() {
                out.push(PathId {
                    segment: i,
                    service: svc,
                    resource_type: rt,
                    id: (*seg).to_string(),
                });
            }
        }
    }
    out
}

/// `path` with every mapped primary ID replaced by its recovery ID (the query is kept as
/// is). Unmapped IDs stay.
pub fn translate_request_path(service: Service, path: &str, lookup: &dyn IdLookup) -> String {
    let (p, q) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let ids = request_path_ids(service, p);
    if ids.is_empty() {
        return path.to_string();
    }
    let lead = p.starts_with('/');
    let mut segs: Vec<String> = p
        .trim_start_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    for pid in ids {
        if let Some(r) = lookup.to_site(pid.service, pid.resource_type, &pid.id) {
            if let Some(s) = segs.get_mut(pid.segment) {
                *s = r;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    if lead {
        out.push('/');
    }
    out.push_str(&segs.join("/"));
    if let Some(q) = q {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// (ID-map service, resource type) of a response wrapper key, singular or plural.
fn wrapper(key: &str) -> Option<(&'static str, &'static str)> {
    Some(match key {
        "network" | "networks" => ("network", "network"),
        "subnet" | "subnets" => ("network", "subnet"),
        "router" | "routers" => ("network", "router"),
        "security_group" | "security_groups" => ("network", "security_group"),
        "security_group_rule" | "security_group_rules" => ("network", "security_group_rule"),
        "port" | "ports" => ("network", "port"),
        "floatingip" | "floatingips" => ("network", "floating_ip"),
        "flavor" | "flavors" => ("compute", "flavor"),
        "server" | "servers" => ("compute", "server"),
        "volume_type" | "volume_types" => ("volume", "volume_type"),
        "volume" | "volumes" => ("volume", "volume"),
        "snapshot" | "snapshots" => ("volume", "snapshot"),
        "image" | "images" => ("image", "image"),
        "project" | "projects" => ("identity", "project"),
        "user" | "users" => ("identity", "user"),
        "group" | "groups" => ("identity", "group"),
        "role" | "roles" => ("identity", "role"),
        _ => return None,
    })
}

/// A reference field holding one ID.
fn reference(key: &str) -> Option<(&'static str, &'static str)> {
    Some(match key {
        "network_id" => ("network", "network"),
        "subnet_id" => ("network", "subnet"),
        "router_id" => ("network", "router"),
        "security_group_id" | "remote_group_id" => ("network", "security_group"),
        "port_id" => ("network", "port"),
        "project_id" | "tenant_id" | "default_project_id" | "owner" => ("identity", "project"),
        "user_id" => ("identity", "user"),
        "volume_type_id" => ("volume", "volume_type"),
        "volume_id" => ("volume", "volume"),
        "snapshot_id" => ("volume", "snapshot"),
        "image_id" | "imageRef" => ("image", "image"),
        "flavorRef" => ("compute", "flavor"),
        _ => return None,
    })
}

fn map_one(v: &mut Value, t: (&str, &str), dir: Direction, lookup: &dyn IdLookup) -> usize {
    let Some(id) = v.as_str() else {
        return 0;
    };
    let found = match dir {
        Direction::ToSite => lookup.to_site(t.0, t.1, id),
        Direction::ToTenant => lookup.to_tenant(t.0, t.1, id),
    };
    match found {
        Some(other) => {
            *v = Value::String(other);
            1
        }
        None => 0,
    }
}

/// The resource type a block device's `uuid` names, from its `source_type`.
fn block_device_source(
    device: &serde_json::Map<String, Value>,
) -> Option<(&'static str, &'static str)> {
    Some(match device.get("source_type").and_then(Value::as_str)? {
        "image" => ("image", "image"),
        "volume" => ("volume", "volume"),
        "snapshot" => ("volume", "snapshot"),
        _ => return None,
    })
}

/// The type a JSON-patch operation's `value` names when it adds or replaces a reference
/// field, in either of Glance's forms (`{"op": "replace", "path": "/owner", ...}`,
/// `{"replace": "/owner", ...}`).
fn patched_reference(op: &serde_json::Map<String, Value>) -> Option<(&'static str, &'static str)> {
    match crate::services::image::patch_op(op)? {
        ("add" | "replace", path) => reference(path.strip_prefix('/')?),
        _ => None,
    }
}

fn walk(
    v: &mut Value,
    ctx: Option<(&'static str, &'static str)>,
    dir: Direction,
    lookup: &dyn IdLookup,
) -> usize {
    let mut n = 0;
    match v {
        Value::Object(o) => {
            if let Some(t) = patched_reference(o) {
                // A JSON-patch operation setting a reference (Glance's `/owner`).
                if let Some(v) = o.get_mut("value") {
                    n += map_one(v, t, dir, lookup);
                }
                return n;
            }
            let device = block_device_source(o);
            for (k, val) in o.iter_mut() {
                let k = k.as_str();
                if k == "id" {
                    if let Some(t) = ctx {
                        n += map_one(val, t, dir, lookup);
                    }
                } else if let Some(t) = reference(k) {
                    n += map_one(val, t, dir, lookup);
                } else if let Some(ids) = wrapper(k).and_then(|t| string_array(val).map(|a| (t, a)))
                {
                    // A list of IDs: a port's `security_groups`, a network's `subnets`.
                    let (t, ids) = ids;
                    for e in ids {
                        n += map_one(e, t, dir, lookup);
                    }
                } else if k == "uuid" && ctx == Some(NOVA_NETWORKS) {
                    n += map_one(val, ("network", "network"), dir, lookup);
                } else if k == "port" && ctx == Some(NOVA_NETWORKS) {
                    n += map_one(val, ("network", "port"), dir, lookup);
                } else if k == "uuid" && device.is_some() {
                    n += map_one(val, device.unwrap_or(("", "")), dir, lookup);
                } else if k == "volume_type" && val.is_string() {
                    // A name or an ID: only a mapped ID changes.
                    n += map_one(val, ("volume", "volume_type"), dir, lookup);
                } else if k == "source_volid" {
                    n += map_one(val, ("volume", "volume"), dir, lookup);
                } else if k == "networks" && ctx == Some(("compute", "server")) {
                    n += walk(val, Some(NOVA_NETWORKS), dir, lookup);
                } else if let Some(t) = wrapper(k) {
                    n += walk(val, Some(t), dir, lookup);
                } else {
                    n += walk(val, None, dir, lookup);
                }
            }
        }
        Value::Array(a) => {
            for e in a {
                n += walk(e, ctx, dir, lookup);
            }
        }
        _ => {}
    }
    n
}

/// The elements of a non-empty array of strings.
fn string_array(v: &mut Value) -> Option<&mut Vec<Value>> {
    match v {
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_string) => Some(a),
        _ => None,
    }
}

/// The context of a server create's `networks` list (its `uuid` is a network, `port` a
/// port); never an ID-map type.
const NOVA_NETWORKS: (&str, &str) = ("compute", "server.networks");

/// Replaces the IDs a tenant knows in a request body by the active site's: reference fields
/// (`network_id`, `subnet_id` in `fixed_ips`, a port's `security_groups`, a router's
/// `external_gateway_info.network_id`, a server's `flavorRef`, `imageRef`,
/// `networks[].uuid`/`port` and `block_device_mapping_v2[].uuid`, a volume's `volume_type`,
/// `snapshot_id`, `source_volid`, ...). Returns how many IDs were replaced.
pub fn translate_request_body(json: &mut Value, lookup: &dyn IdLookup) -> usize {
    walk(json, None, Direction::ToSite, lookup)
}

/// Replaces active-site IDs in a response body by the IDs the tenant knows: the `id` inside
/// a known wrapper (`{"network": {...}}`, `{"networks": [...]}`, or the body itself when
/// `root` says what it is, e.g. Glance's unwrapped image), and reference fields
/// (`network_id`, `project_id`, a port's `security_groups`, ...). Returns how many IDs were
/// replaced. Unmapped IDs stay (resources created at the active site).
pub fn translate_response_ids(
    json: &mut Value,
    root: Option<(&'static str, &'static str)>,
    lookup: &dyn IdLookup,
) -> usize {
    walk(json, root, Direction::ToTenant, lookup)
}

/// A query string with the IDs a tenant knows in filters (`network_id=`, `project_id=`,
/// `device_id=`, ...) replaced by the active site's; `None` when nothing changed. `id=`
/// filters name the collection's own type, given by `collection`.
pub fn translate_request_query(
    query: &str,
    collection: Option<(&'static str, &'static str)>,
    lookup: &dyn IdLookup,
) -> Option<String> {
    let mut changed = false;
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| {
            let Some((k, v)) = pair.split_once('=') else {
                return pair.to_string();
            };
            let t = if k == "id" { collection } else { reference(k) };
            let Some(t) = t else {
                return pair.to_string();
            };
            // IDs never need percent-encoding; an encoded value is not one of ours.
            if v.is_empty() || v.contains('%') {
                return pair.to_string();
            }
            match lookup.to_site(t.0, t.1, v) {
                Some(new) => {
                    changed = true;
                    format!("{k}={new}")
                }
                None => pair.to_string(),
            }
        })
        .collect();
    changed.then(|| parts.join("&"))
}

/// Replaces the IDs a tenant knows in a Keystone authentication request
/// (`POST /v3/auth/tokens`): the user it authenticates as (`auth.identity.password.user.id`)
/// and the project it scopes to (`auth.scope.project.id`). Returns how many were replaced.
pub fn translate_auth_request(json: &mut Value, lookup: &dyn IdLookup) -> usize {
    let mut n = 0;
    if let Some(v) = json.pointer_mut("/auth/identity/password/user/id") {
        n += map_one(v, ("identity", "user"), Direction::ToSite, lookup);
    }
    if let Some(v) = json.pointer_mut("/auth/scope/project/id") {
        n += map_one(v, ("identity", "project"), Direction::ToSite, lookup);
    }
    n
}

/// The ID-map type of the collection a path lists (its last segment), for `id=` filters and
/// for unwrapped single-resource bodies (Glance images).
pub fn path_collection(service: Service, path: &str) -> Option<(&'static str, &'static str)> {
    let p = path.split_once('?').map_or(path, |(p, _)| p);
    let mut segs = p.trim_end_matches('/').rsplit('/');
    let last = segs.next()?;
    if let Some(t) = collection(service, last) {
        return Some(t);
    }
    // `/v2/images/{id}`: a single image, Glance's body is the image itself.
    match (service, segs.next()) {
        (Service::Image, Some("images")) => Some(("image", "image")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lookup() -> StaticIdLookup {
        let mut l = StaticIdLookup::new();
        l.insert("network", "network", "pnet", "rnet");
        l.insert("network", "subnet", "psub", "rsub");
        l.insert("network", "security_group", "psg", "rsg");
        l.insert("identity", "project", "pproj", "rproj");
        l.insert("volume", "volume_type", "ptype", "rtype");
        l.insert("image", "image", "pimg", "rimg");
        l
    }

    #[test]
    fn paths_translate_mapped_ids_only() {
        let l = lookup();
        assert_eq!(
            translate_request_path(Service::Network, "/v2.0/networks/pnet", &l),
            "/v2.0/networks/rnet"
        );
        assert_eq!(
            translate_request_path(Service::Network, "/v2.0/networks/pnet/tags/x?fields=id", &l),
            "/v2.0/networks/rnet/tags/x?fields=id"
        );
        // Created after failover: no mapping, the recovery ID stays.
        assert_eq!(
            translate_request_path(Service::Network, "/v2.0/subnets/new-after-failover", &l),
            "/v2.0/subnets/new-after-failover"
        );
        assert_eq!(
            translate_request_path(
                Service::BlockStorage,
                "/v3/pproj/types/ptype/extra_specs",
                &l
            ),
            "/v3/rproj/types/rtype/extra_specs"
        );
        assert_eq!(
            translate_request_path(Service::Image, "/v2/images/pimg/file", &l),
            "/v2/images/rimg/file"
        );
        assert_eq!(
            translate_request_path(Service::Network, "/v2.0/networks", &l),
            "/v2.0/networks"
        );
        assert_eq!(
            translate_request_path(Service::Identity, "/v3/projects/pproj", &l),
            "/v3/projects/rproj"
        );
    }

    #[test]
    fn request_bodies_translate_references() {
        let mut l = lookup();
        l.insert("compute", "flavor", "pflv", "rflv");
        l.insert("network", "port", "pport", "rport");
        l.insert("volume", "volume", "pvol", "rvol");
        let mut server = json!({"server": {
            "name": "vm", "flavorRef": "pflv", "imageRef": "pimg",
            "networks": [{"uuid": "pnet"}, {"port": "pport"}],
            "security_groups": [{"name": "default"}],
            "block_device_mapping_v2": [
                {"source_type": "volume", "uuid": "pvol", "boot_index": 0},
                {"source_type": "blank", "uuid": "pvol"}
            ]
        }});
        assert_eq!(translate_request_body(&mut server, &l), 5);
        let s = &server["server"];
        assert_eq!(s["flavorRef"], "rflv");
        assert_eq!(s["imageRef"], "rimg");
        assert_eq!(s["networks"], json!([{"uuid": "rnet"}, {"port": "rport"}]));
        assert_eq!(s["block_device_mapping_v2"][0]["uuid"], "rvol");
        // A blank device's uuid names nothing the map knows.
        assert_eq!(s["block_device_mapping_v2"][1]["uuid"], "pvol");

        let mut port = json!({"port": {"network_id": "pnet", "security_groups": ["psg"],
            "fixed_ips": [{"subnet_id": "psub"}]}});
        assert_eq!(translate_request_body(&mut port, &l), 3);
        assert_eq!(port["port"]["security_groups"], json!(["rsg"]));

        let mut router = json!({"router": {"external_gateway_info": {"network_id": "pnet"}}});
        translate_request_body(&mut router, &l);
        assert_eq!(
            router["router"]["external_gateway_info"]["network_id"],
            "rnet"
        );

        // An image's owner set by JSON patch, in both of Glance's forms.
        let mut patch = json!([{"op": "replace", "path": "/owner", "value": "pproj"},
            {"replace": "/owner", "value": "pproj"}, {"op": "replace", "path": "/name", "value": "pproj"}]);
        assert_eq!(translate_request_body(&mut patch, &l), 2);
        assert_eq!(patch[0]["value"], "rproj");
        assert_eq!(patch[1]["value"], "rproj");
        assert_eq!(patch[2]["value"], "pproj");

        // A volume type given by name stays a name.
        let mut volume = json!({"volume": {"size": 1, "volume_type": "gold"}});
        assert_eq!(translate_request_body(&mut volume, &l), 0);
        let mut volume = json!({"volume": {"size": 1, "volume_type": "ptype"}});
        assert_eq!(translate_request_body(&mut volume, &l), 1);
        assert_eq!(volume["volume"]["volume_type"], "rtype");
    }

    #[test]
    fn auth_requests_scope_to_the_sites_project() {
        let mut l = lookup();
        l.insert("identity", "user", "puser", "ruser");
        let mut auth = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {"id": "puser", "password": "x"}}},
            "scope": {"project": {"id": "pproj"}}
        }});
        assert_eq!(translate_auth_request(&mut auth, &l), 2);
        assert_eq!(auth["auth"]["scope"]["project"]["id"], "rproj");
        assert_eq!(auth["auth"]["identity"]["password"]["user"]["id"], "ruser");
        // By name: nothing to do.
        let mut by_name = json!({"auth": {"scope": {"project": {"name": "demo"}}}});
        assert_eq!(translate_auth_request(&mut by_name, &l), 0);
    }

    #[test]
    fn query_filters_translate() {
        let l = lookup();
        assert_eq!(
            translate_request_query("network_id=pnet&name=pnet&limit=5", None, &l).as_deref(),
            Some("network_id=rnet&name=pnet&limit=5")
        );
        assert_eq!(
            translate_request_query("id=psub&id=other", Some(("network", "subnet")), &l).as_deref(),
            Some("id=rsub&id=other")
        );
        assert_eq!(translate_request_query("fields=id&flag", None, &l), None);
        assert_eq!(
            path_collection(Service::Network, "/v2.0/subnets"),
            Some(("network", "subnet"))
        );
        assert_eq!(
            path_collection(Service::Image, "/v2/images/abc"),
            Some(("image", "image"))
        );
        assert_eq!(path_collection(Service::Network, "/v2.0/subnets/x"), None);
    }

    #[test]
    fn collecting_lists_what_a_translation_needs() {
        let c = CollectingLookup::new();
        let mut body = json!({"subnets": [{"id": "a", "network_id": "n"}, {"id": "b"}]});
        translate_response_ids(&mut body, None, &c);
        translate_request_path(Service::Network, "/v2.0/networks/n", &c);
        let wanted = c.into_wanted();
        assert_eq!(
            wanted,
            vec![
                (
                    Direction::ToSite,
                    "network".into(),
                    "network".into(),
                    "n".into()
                ),
                (
                    Direction::ToTenant,
                    "network".into(),
                    "network".into(),
                    "n".into()
                ),
                (
                    Direction::ToTenant,
                    "network".into(),
                    "subnet".into(),
                    "a".into()
                ),
                (
                    Direction::ToTenant,
                    "network".into(),
                    "subnet".into(),
                    "b".into()
                ),
            ]
        );
        // Nothing was changed while collecting.
        assert_eq!(body["subnets"][0]["id"], "a");
    }

    #[test]
    fn path_ids_are_found_for_prefetch() {
        let ids = request_path_ids(Service::BlockStorage, "/v3/pproj/types/ptype");
        let got: Vec<(&str, &str, &str)> = ids
            .iter()
            .map(|p| (p.service, p.resource_type, p.id.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("identity", "project", "pproj"),
                ("volume", "volume_type", "ptype")
            ]
        );
    }

    #[test]
    fn responses_translate_back() {
        let l = lookup();
        let mut body = json!({"subnets": [
            {"id": "rsub", "network_id": "rnet", "project_id": "rproj", "name": "rnet"},
            {"id": "brand-new", "network_id": "rnet"}
        ]});
        assert_eq!(translate_response_ids(&mut body, None, &l), 4);
        assert_eq!(body["subnets"][0]["id"], "psub");
        assert_eq!(body["subnets"][0]["network_id"], "pnet");
        assert_eq!(body["subnets"][0]["project_id"], "pproj");
        // A name is never translated, and an unmapped ID stays.
        assert_eq!(body["subnets"][0]["name"], "rnet");
        assert_eq!(body["subnets"][1]["id"], "brand-new");
        assert_eq!(body["subnets"][1]["network_id"], "pnet");

        let mut port = json!({"port": {"id": "x", "security_groups": ["rsg", "other"],
            "fixed_ips": [{"subnet_id": "rsub", "ip_address": "10.0.0.3"}]}});
        assert_eq!(translate_response_ids(&mut port, None, &l), 2);
        assert_eq!(port["port"]["security_groups"], json!(["psg", "other"]));
        assert_eq!(port["port"]["fixed_ips"][0]["subnet_id"], "psub");

        let mut image = json!({"id": "rimg", "name": "cirros"});
        assert_eq!(
            translate_response_ids(&mut image, Some(("image", "image")), &l),
            1
        );
        assert_eq!(image["id"], "pimg");
        // The round trip: a translated path addresses what the response named.
        assert_eq!(
            translate_request_path(Service::Image, "/v2/images/pimg", &l),
            "/v2/images/rimg"
        );
    }
}
