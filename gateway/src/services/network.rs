//! Neutron (network v2.0) route table and classifier.
//!
//! Paths are relative to Neutron's base URL: `/v2.0/...`. `GET /` and `/v2.0` are version
//! documents. A `.json` suffix on the last segment is ignored, as Neutron allows
//! (`/v2.0/networks.json`, `/v2.0/ports/{id}.json`).
//!
//! Conventions:
//! - `PUT /v2.0/routers/{id}/add_router_interface` and `.../remove_router_interface` are
//!   `RouterInterface`/`Action` with that action name and ids `[router_id]`; extra routes and
//!   external gateways are `Router`/`Action` named after the path's last segment.
//! - Tags on networks, subnets, ports, routers, security groups and floating IPs are all
//!   `NetworkTag`, ids `[resource_id, tag]` (or `[resource_id]` for the whole list);
//!   [`tag_parent`] says which resource type `resource_id` is. `PUT .../tags/{tag}` is
//!   `Create`, `PUT .../tags` (replace all) is `Update`.

use super::{named, route, Request, Route, Segments, Verb as V, MAX_SEGMENTS};
use crate::operation::{Action as A, Operation, ResourceType as R};

/// Neutron, relative to `/v2.0`.
pub static ROUTES: &[Route] = &[
    // networks
    route(V::Get, "networks", R::Network, A::Read),
    route(V::Post, "networks", R::Network, A::Create),
    route(V::Get, "networks/*", R::Network, A::Read),
    route(V::Put, "networks/*", R::Network, A::Update),
    route(V::Delete, "networks/*", R::Network, A::Delete),
    // subnets
    route(V::Get, "subnets", R::Subnet, A::Read),
    route(V::Post, "subnets", R::Subnet, A::Create),
    route(V::Get, "subnets/*", R::Subnet, A::Read),
    route(V::Put, "subnets/*", R::Subnet, A::Update),
    route(V::Delete, "subnets/*", R::Subnet, A::Delete),
    // ports
    route(V::Get, "ports", R::Port, A::Read),
    route(V::Post, "ports", R::Port, A::Create),
    route(V::Get, "ports/*", R::Port, A::Read),
    route(V::Put, "ports/*", R::Port, A::Update),
    route(V::Delete, "ports/*", R::Port, A::Delete),
    // routers and their interfaces
    route(V::Get, "routers", R::Router, A::Read),
    route(V::Post, "routers", R::Router, A::Create),
    route(V::Get, "routers/*", R::Router, A::Read),
    route(V::Put, "routers/*", R::Router, A::Update),
    route(V::Delete, "routers/*", R::Router, A::Delete),
    named(
        V::Put,
        "routers/*/add_router_interface",
        R::RouterInterface,
        "add_router_interface",
    ),
    named(
        V::Put,
        "routers/*/remove_router_interface",
        R::RouterInterface,
        "remove_router_interface",
    ),
    named(
        V::Put,
        "routers/*/add_extraroutes",
        R::Router,
        "add_extraroutes",
    ),
    named(
        V::Put,
        "routers/*/remove_extraroutes",
        R::Router,
        "remove_extraroutes",
    ),
    named(
        V::Put,
        "routers/*/add_external_gateways",
        R::Router,
        "add_external_gateways",
    ),
    named(
        V::Put,
        "routers/*/update_external_gateways",
        R::Router,
        "update_external_gateways",
    ),
    named(
        V::Put,
        "routers/*/remove_external_gateways",
        R::Router,
        "remove_external_gateways",
    ),
    // security groups and rules
    route(V::Get, "security-groups", R::SecurityGroup, A::Read),
    route(V::Post, "security-groups", R::SecurityGroup, A::Create),
    route(V::Get, "security-groups/*", R::SecurityGroup, A::Read),
    route(V::Put, "security-groups/*", R::SecurityGroup, A::Update),
    route(V::Delete, "security-groups/*", R::SecurityGroup, A::Delete),
    route(
        V::Get,
        "security-group-rules",
        R::SecurityGroupRule,
        A::Read,
    ),
    route(
        V::Post,
        "security-group-rules",
        R::SecurityGroupRule,
        A::Create,
    ),
    route(
        V::Get,
        "security-group-rules/*",
        R::SecurityGroupRule,
        A::Read,
    ),
    route(
        V::Put,
        "security-group-rules/*",
        R::SecurityGroupRule,
        A::Update,
    ),
    route(
        V::Delete,
        "security-group-rules/*",
        R::SecurityGroupRule,
        A::Delete,
    ),
    // floating IPs
    route(V::Get, "floatingips", R::FloatingIp, A::Read),
    route(V::Post, "floatingips", R::FloatingIp, A::Create),
    route(V::Get, "floatingips/*", R::FloatingIp, A::Read),
    route(V::Put, "floatingips/*", R::FloatingIp, A::Update),
    route(V::Delete, "floatingips/*", R::FloatingIp, A::Delete),
    // tags (the parent type is in `tag_parent`)
    route(V::Get, "networks/*/tags", R::NetworkTag, A::Read),
    route(V::Put, "networks/*/tags", R::NetworkTag, A::Update),
    route(V::Delete, "networks/*/tags", R::NetworkTag, A::Delete),
    route(V::Get, "networks/*/tags/*", R::NetworkTag, A::Read),
    route(V::Put, "networks/*/tags/*", R::NetworkTag, A::Create),
    route(V::Delete, "networks/*/tags/*", R::NetworkTag, A::Delete),
    route(V::Get, "subnets/*/tags", R::NetworkTag, A::Read),
    route(V::Put, "subnets/*/tags", R::NetworkTag, A::Update),
    route(V::Delete, "subnets/*/tags", R::NetworkTag, A::Delete),
    route(V::Get, "subnets/*/tags/*", R::NetworkTag, A::Read),
    route(V::Put, "subnets/*/tags/*", R::NetworkTag, A::Create),
    route(V::Delete, "subnets/*/tags/*", R::NetworkTag, A::Delete),
    route(V::Get, "ports/*/tags", R::NetworkTag, A::Read),
    route(V::Put, "ports/*/tags", R::NetworkTag, A::Update),
    route(V::Delete, "ports/*/tags", R::NetworkTag, A::Delete),
    route(V::Get, "ports/*/tags/*", R::NetworkTag, A::Read),
    route(V::Put, "ports/*/tags/*", R::NetworkTag, A::Create),
    route(V::Delete, "ports/*/tags/*", R::NetworkTag, A::Delete),
    route(V::Get, "routers/*/tags", R::NetworkTag, A::Read),
    route(V::Put, "routers/*/tags", R::NetworkTag, A::Update),
    route(V::Delete, "routers/*/tags", R::NetworkTag, A::Delete),
    route(V::Get, "routers/*/tags/*", R::NetworkTag, A::Read),
    route(V::Put, "routers/*/tags/*", R::NetworkTag, A::Create),
    route(V::Delete, "routers/*/tags/*", R::NetworkTag, A::Delete),
    route(V::Get, "security-groups/*/tags", R::NetworkTag, A::Read),
    route(V::Put, "security-groups/*/tags", R::NetworkTag, A::Update),
    route(
        V::Delete,
        "security-groups/*/tags",
        R::NetworkTag,
        A::Delete,
    ),
    route(V::Get, "security-groups/*/tags/*", R::NetworkTag, A::Read),
    route(V::Put, "security-groups/*/tags/*", R::NetworkTag, A::Create),
    route(
        V::Delete,
        "security-groups/*/tags/*",
        R::NetworkTag,
        A::Delete,
    ),
    route(V::Get, "floatingips/*/tags", R::NetworkTag, A::Read),
    route(V::Put, "floatingips/*/tags", R::NetworkTag, A::Update),
    route(V::Delete, "floatingips/*/tags", R::NetworkTag, A::Delete),
    route(V::Get, "floatingips/*/tags/*", R::NetworkTag, A::Read),
    route(V::Put, "floatingips/*/tags/*", R::NetworkTag, A::Create),
    route(V::Delete, "floatingips/*/tags/*", R::NetworkTag, A::Delete),
];

pub(crate) fn classify(req: &Request<'_>) -> Option<Operation> {
    match req.segments {
        [] | ["v2.0"] => req.version(None),
        ["v2.0", rest @ ..] => {
            // Segments are at most MAX_SEGMENTS, so `rest` fits; copy to drop `.json`.
            let mut buf = [""; MAX_SEGMENTS];
            let copy = buf.get_mut(..rest.len())?;
            copy.copy_from_slice(rest);
            let rest = copy;
            if let Some(last) = rest.last_mut() {
                *last = strip_format(last);
            }
            req.lookup(ROUTES, rest, None)
        }
        _ => None,
    }
}

/// `networks.json` → `networks`; a bare `.json` stays as it is.
fn strip_format(segment: &str) -> &str {
    match segment.strip_suffix(".json") {
        Some(stem) if !stem.is_empty() => stem,
        _ => segment,
    }
}

/// The resource type a tag path's first id belongs to (`/v2.0/ports/{id}/tags/{tag}` →
/// `Port`); `None` for paths that are not Neutron tag paths.
pub fn tag_parent(path: &str) -> Option<R> {
    let segments = Segments::parse(path)?;
    match segments.as_slice() {
        ["v2.0", collection, _, tags, ..] if strip_format(tags) == "tags" => match *collection {
            "networks" => Some(R::Network),
            "subnets" => Some(R::Subnet),
            "ports" => Some(R::Port),
            "routers" => Some(R::Router),
            "security-groups" => Some(R::SecurityGroup),
            "floatingips" => Some(R::FloatingIp),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::operation::Service;
    use crate::services::test_support::{check, Case};

    #[rustfmt::skip]
    pub(crate) const CASES: &[Case] = &[
        ("GET", "/", R::Version, A::Read, &[], None, None),
        ("GET", "/v2.0", R::Version, A::Read, &[], None, None),
        ("GET", "/v2.0/networks", R::Network, A::Read, &[], None, None),
        ("GET", "/v2.0/networks.json", R::Network, A::Read, &[], None, None),
        ("POST", "/v2.0/networks", R::Network, A::Create, &[], None, None),
        ("POST", "/v2.0/networks.json", R::Network, A::Create, &[], None, None),
        ("GET", "/v2.0/networks/n1", R::Network, A::Read, &["n1"], None, None),
        ("PUT", "/v2.0/networks/n1.json", R::Network, A::Update, &["n1"], None, None),
        ("DELETE", "/v2.0/networks/n1", R::Network, A::Delete, &["n1"], None, None),
        ("POST", "/v2.0/subnets", R::Subnet, A::Create, &[], None, None),
        ("GET", "/v2.0/subnets", R::Subnet, A::Read, &[], None, None),
        ("GET", "/v2.0/subnets/s1", R::Subnet, A::Read, &["s1"], None, None),
        ("PUT", "/v2.0/subnets/s1", R::Subnet, A::Update, &["s1"], None, None),
        ("DELETE", "/v2.0/subnets/s1", R::Subnet, A::Delete, &["s1"], None, None),
        ("POST", "/v2.0/ports", R::Port, A::Create, &[], None, None),
        ("GET", "/v2.0/ports", R::Port, A::Read, &[], None, None),
        ("GET", "/v2.0/ports/p1", R::Port, A::Read, &["p1"], None, None),
        ("PUT", "/v2.0/ports/p1", R::Port, A::Update, &["p1"], None, None),
        ("DELETE", "/v2.0/ports/p1", R::Port, A::Delete, &["p1"], None, None),
        ("POST", "/v2.0/routers", R::Router, A::Create, &[], None, None),
        ("GET", "/v2.0/routers", R::Router, A::Read, &[], None, None),
        ("GET", "/v2.0/routers/r1", R::Router, A::Read, &["r1"], None, None),
        ("PUT", "/v2.0/routers/r1", R::Router, A::Update, &["r1"], None, None),
        ("DELETE", "/v2.0/routers/r1", R::Router, A::Delete, &["r1"], None, None),
        ("PUT", "/v2.0/routers/r1/add_router_interface", R::RouterInterface, A::Action, &["r1"], None, Some("add_router_interface")),
        ("PUT", "/v2.0/routers/r1/add_router_interface.json", R::RouterInterface, A::Action, &["r1"], None, Some("add_router_interface")),
        ("PUT", "/v2.0/routers/r1/remove_router_interface", R::RouterInterface, A::Action, &["r1"], None, Some("remove_router_interface")),
        ("PUT", "/v2.0/routers/r1/add_extraroutes", R::Router, A::Action, &["r1"], None, Some("add_extraroutes")),
        ("PUT", "/v2.0/routers/r1/remove_extraroutes", R::Router, A::Action, &["r1"], None, Some("remove_extraroutes")),
        ("PUT", "/v2.0/routers/r1/add_external_gateways", R::Router, A::Action, &["r1"], None, Some("add_external_gateways")),
        ("PUT", "/v2.0/routers/r1/update_external_gateways", R::Router, A::Action, &["r1"], None, Some("update_external_gateways")),
        ("PUT", "/v2.0/routers/r1/remove_external_gateways", R::Router, A::Action, &["r1"], None, Some("remove_external_gateways")),
        ("GET", "/v2.0/security-groups", R::SecurityGroup, A::Read, &[], None, None),
        ("POST", "/v2.0/security-groups", R::SecurityGroup, A::Create, &[], None, None),
        ("GET", "/v2.0/security-groups/sg1", R::SecurityGroup, A::Read, &["sg1"], None, None),
        ("PUT", "/v2.0/security-groups/sg1", R::SecurityGroup, A::Update, &["sg1"], None, None),
        ("DELETE", "/v2.0/security-groups/sg1", R::SecurityGroup, A::Delete, &["sg1"], None, None),
        ("POST", "/v2.0/security-group-rules", R::SecurityGroupRule, A::Create, &[], None, None),
        ("GET", "/v2.0/security-group-rules", R::SecurityGroupRule, A::Read, &[], None, None),
        ("GET", "/v2.0/security-group-rules/r1", R::SecurityGroupRule, A::Read, &["r1"], None, None),
        ("PUT", "/v2.0/security-group-rules/r1", R::SecurityGroupRule, A::Update, &["r1"], None, None),
        ("DELETE", "/v2.0/security-group-rules/r1", R::SecurityGroupRule, A::Delete, &["r1"], None, None),
        ("POST", "/v2.0/floatingips", R::FloatingIp, A::Create, &[], None, None),
        ("GET", "/v2.0/floatingips", R::FloatingIp, A::Read, &[], None, None),
        ("GET", "/v2.0/floatingips/f1", R::FloatingIp, A::Read, &["f1"], None, None),
        ("PUT", "/v2.0/floatingips/f1", R::FloatingIp, A::Update, &["f1"], None, None),
        ("DELETE", "/v2.0/floatingips/f1", R::FloatingIp, A::Delete, &["f1"], None, None),
        ("GET", "/v2.0/networks/n1/tags", R::NetworkTag, A::Read, &["n1"], None, None),
        ("PUT", "/v2.0/networks/n1/tags", R::NetworkTag, A::Update, &["n1"], None, None),
        ("DELETE", "/v2.0/networks/n1/tags", R::NetworkTag, A::Delete, &["n1"], None, None),
        ("GET", "/v2.0/networks/n1/tags/dr-tier:gold", R::NetworkTag, A::Read, &["n1", "dr-tier:gold"], None, None),
        ("PUT", "/v2.0/networks/n1/tags/dr-tier:gold", R::NetworkTag, A::Create, &["n1", "dr-tier:gold"], None, None),
        ("DELETE", "/v2.0/networks/n1/tags/dr-tier%3Agold", R::NetworkTag, A::Delete, &["n1", "dr-tier%3Agold"], None, None),
        ("PUT", "/v2.0/subnets/s1/tags/t", R::NetworkTag, A::Create, &["s1", "t"], None, None),
        ("GET", "/v2.0/subnets/s1/tags", R::NetworkTag, A::Read, &["s1"], None, None),
        ("PUT", "/v2.0/subnets/s1/tags", R::NetworkTag, A::Update, &["s1"], None, None),
        ("DELETE", "/v2.0/subnets/s1/tags", R::NetworkTag, A::Delete, &["s1"], None, None),
        ("GET", "/v2.0/subnets/s1/tags/t", R::NetworkTag, A::Read, &["s1", "t"], None, None),
        ("DELETE", "/v2.0/subnets/s1/tags/t", R::NetworkTag, A::Delete, &["s1", "t"], None, None),
        ("PUT", "/v2.0/ports/p1/tags/t", R::NetworkTag, A::Create, &["p1", "t"], None, None),
        ("GET", "/v2.0/ports/p1/tags", R::NetworkTag, A::Read, &["p1"], None, None),
        ("PUT", "/v2.0/ports/p1/tags", R::NetworkTag, A::Update, &["p1"], None, None),
        ("DELETE", "/v2.0/ports/p1/tags", R::NetworkTag, A::Delete, &["p1"], None, None),
        ("GET", "/v2.0/ports/p1/tags/t", R::NetworkTag, A::Read, &["p1", "t"], None, None),
        ("DELETE", "/v2.0/ports/p1/tags/t", R::NetworkTag, A::Delete, &["p1", "t"], None, None),
        ("PUT", "/v2.0/routers/r1/tags", R::NetworkTag, A::Update, &["r1"], None, None),
        ("GET", "/v2.0/routers/r1/tags", R::NetworkTag, A::Read, &["r1"], None, None),
        ("DELETE", "/v2.0/routers/r1/tags", R::NetworkTag, A::Delete, &["r1"], None, None),
        ("GET", "/v2.0/routers/r1/tags/t", R::NetworkTag, A::Read, &["r1", "t"], None, None),
        ("PUT", "/v2.0/routers/r1/tags/t", R::NetworkTag, A::Create, &["r1", "t"], None, None),
        ("DELETE", "/v2.0/routers/r1/tags/t", R::NetworkTag, A::Delete, &["r1", "t"], None, None),
        ("PUT", "/v2.0/security-groups/sg1/tags/t", R::NetworkTag, A::Create, &["sg1", "t"], None, None),
        ("GET", "/v2.0/security-groups/sg1/tags", R::NetworkTag, A::Read, &["sg1"], None, None),
        ("PUT", "/v2.0/security-groups/sg1/tags", R::NetworkTag, A::Update, &["sg1"], None, None),
        ("DELETE", "/v2.0/security-groups/sg1/tags", R::NetworkTag, A::Delete, &["sg1"], None, None),
        ("GET", "/v2.0/security-groups/sg1/tags/t", R::NetworkTag, A::Read, &["sg1", "t"], None, None),
        ("DELETE", "/v2.0/security-groups/sg1/tags/t", R::NetworkTag, A::Delete, &["sg1", "t"], None, None),
        ("DELETE", "/v2.0/floatingips/f1/tags/t", R::NetworkTag, A::Delete, &["f1", "t"], None, None),
        ("GET", "/v2.0/floatingips/f1/tags", R::NetworkTag, A::Read, &["f1"], None, None),
        ("PUT", "/v2.0/floatingips/f1/tags", R::NetworkTag, A::Update, &["f1"], None, None),
        ("DELETE", "/v2.0/floatingips/f1/tags", R::NetworkTag, A::Delete, &["f1"], None, None),
        ("GET", "/v2.0/floatingips/f1/tags/t", R::NetworkTag, A::Read, &["f1", "t"], None, None),
        ("PUT", "/v2.0/floatingips/f1/tags/t", R::NetworkTag, A::Create, &["f1", "t"], None, None),
        // unknown
        ("POST", "/v2.0/qos/policies", R::Other, A::Create, &[], None, None),
        ("PUT", "/v2.0/routers/r1/frobnicate", R::Other, A::Update, &[], None, None),
        ("POST", "/v2.0/networks/n1", R::Other, A::Create, &[], None, None),
        ("GET", "/v2.0/.json", R::Other, A::Read, &[], None, None),
        ("DELETE", "/v2.0", R::Other, A::Delete, &[], None, None),
        ("GET", "/v2/networks", R::Other, A::Read, &[], None, None),
    ];

    #[test]
    fn routes() {
        check(Service::Network, CASES);
    }

    #[test]
    fn tag_parents() {
        let cases = [
            ("/v2.0/networks/n/tags/t", Some(R::Network)),
            ("/v2.0/subnets/s/tags", Some(R::Subnet)),
            ("/v2.0/ports/p/tags.json", Some(R::Port)),
            ("/v2.0/routers/r/tags/t/", Some(R::Router)),
            ("/v2.0/security-groups/g/tags/t", Some(R::SecurityGroup)),
            ("/v2.0/floatingips/f/tags/t", Some(R::FloatingIp)),
            ("/v2.0/trunks/x/tags/t", None),
            ("/v2.0/networks/n", None),
            ("", None),
        ];
        for (path, parent) in cases {
            assert_eq!(tag_parent(path), parent, "{path}");
        }
    }
}
