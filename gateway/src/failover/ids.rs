//! Stable IDs after a failover, as pure functions: tenants keep using the primary IDs they
//! know, and the gateway translates them through the ID map.
//!
//! - [`translate_request_path`]: primary IDs in a request path → recovery IDs (each ID
//!   segment after a known collection, Cinder's/legacy Nova's `/{project_id}` segment).
//! - [`translate_response_ids`]: recovery IDs in a JSON response → primary IDs (`id` of a
//!   known resource wrapper, and well-known reference fields such as `network_id`).
//!
//! An ID without a mapping is left as it is: a resource created after the failover keeps
//! its recovery ID (it has no primary one), and a name is not an ID. Look-ups go through
//! [`IdLookup`] (service and resource type spelled as in the ID map: `network`/`subnet`,
//! `volume`/`volume_type`, `identity`/`project`, ...); the request path prefetches what it
//! needs asynchronously (see [`request_path_ids`]) or uses an in-memory map
//! ([`StaticIdLookup`]).

use std::collections::HashMap;

use serde_json::Value;

use crate::operation::Service;

/// ID-map look-ups in both directions.
pub trait IdLookup {
    /// The recovery ID of a primary ID.
    fn to_recovery(&self, service: &str, resource_type: &str, id: &str) -> Option<String>;
    /// The primary ID of a recovery ID.
    fn to_primary(&self, service: &str, resource_type: &str, id: &str) -> Option<String>;
}

/// An in-memory [`IdLookup`].
#[derive(Debug, Clone, Default)]
pub struct StaticIdLookup {
    forward: HashMap<(String, String, String), String>,
    reverse: HashMap<(String, String, String), String>,
}

impl StaticIdLookup {
    /// An empty map.
    pub fn new() -> StaticIdLookup {
        StaticIdLookup::default()
    }

    /// Adds one mapping.
    pub fn insert(&mut self, service: &str, resource_type: &str, primary: &str, recovery: &str) {
        self.forward.insert(
            (service.into(), resource_type.into(), primary.into()),
            recovery.into(),
        );
        self.reverse.insert(
            (service.into(), resource_type.into(), recovery.into()),
            primary.into(),
        );
    }
}

impl From<&[crate::state::IdMapping]> for StaticIdLookup {
    fn from(mappings: &[crate::state::IdMapping]) -> StaticIdLookup {
        let mut l = StaticIdLookup::new();
        for m in mappings {
            l.insert(&m.service, &m.resource_type, &m.primary_id, &m.recovery_id);
        }
        l
    }
}

impl IdLookup for StaticIdLookup {
    fn to_recovery(&self, service: &str, resource_type: &str, id: &str) -> Option<String> {
        self.forward
            .get(&(service.into(), resource_type.into(), id.into()))
            .cloned()
    }

    fn to_primary(&self, service: &str, resource_type: &str, id: &str) -> Option<String> {
        self.reverse
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
        if let Some(r) = lookup.to_recovery(pid.service, pid.resource_type, &pid.id) {
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
        "image_id" | "imageRef" => ("image", "image"),
        "flavorRef" => ("compute", "flavor"),
        _ => return None,
    })
}

fn back(v: &mut Value, t: (&str, &str), lookup: &dyn IdLookup) -> usize {
    if let Some(id) = v.as_str() {
        if let Some(p) = lookup.to_primary(t.0, t.1, id) {
            *v = Value::String(p);
            return 1;
        }
    }
    0
}

fn walk(v: &mut Value, ctx: Option<(&'static str, &'static str)>, lookup: &dyn IdLookup) -> usize {
    let mut n = 0;
    match v {
        Value::Object(o) => {
            for (k, val) in o.iter_mut() {
                if k == "id" {
                    if let Some(t) = ctx {
                        n += back(val, t, lookup);
                    }
                } else if let Some(t) = reference(k) {
                    n += back(val, t, lookup);
                } else if k == "security_groups"
                    && val
                        .as_array()
                        .is_some_and(|a| a.iter().all(Value::is_string))
                {
                    if let Some(a) = val.as_array_mut() {
                        for e in a {
                            n += back(e, ("network", "security_group"), lookup);
                        }
                    }
                } else if let Some(t) = wrapper(k) {
                    n += walk(val, Some(t), lookup);
                } else {
                    n += walk(val, None, lookup);
                }
            }
        }
        Value::Array(a) => {
            for e in a {
                n += walk(e, ctx, lookup);
            }
        }
        _ => {}
    }
    n
}

/// Replaces recovery IDs in a response body by the primary IDs the tenant knows: the `id`
/// inside a known wrapper (`{"network": {...}}`, `{"networks": [...]}`, or the body itself
/// when `root` says what it is, e.g. Glance's unwrapped image), and reference fields
/// (`network_id`, `project_id`, a port's `security_groups`, ...). Returns how many IDs were
/// replaced. Unmapped IDs stay (resources created after the failover).
pub fn translate_response_ids(
    json: &mut Value,
    root: Option<(&'static str, &'static str)>,
    lookup: &dyn IdLookup,
) -> usize {
    walk(json, root, lookup)
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
