//! Nova (compute v2.1) route table and classifier.
//!
//! Paths are relative to Nova's base URL: `/v2.1/...`, legacy `/v2.1/{project_id}/...` and
//! `/v2/{project_id}/...` (the project id goes to `Operation::project`). `GET /`, `/v2.1`,
//! `/v2` and `/v2.1/{project_id}` are version documents.
//!
//! Conventions:
//! - `POST /servers/{id}/action` is `ServerAction`/`Action` and `POST /flavors/{id}/action`
//!   (`addTenantAccess`, `removeTenantAccess`) is `FlavorAccess`/`Action`; both name the
//!   action in the body only, so `action_name` is `None` here: fill it in with
//!   [`super::action_name_from_body`] once the body is read.
//! - Volume attachments and interfaces are `ServerAction`s named `attach_volume`,
//!   `swap_volume`, `detach_volume`, `attach_interface`, `detach_interface`; ids
//!   `[server_id]` or `[server_id, attachment_or_port_id]`.
//! - Metadata: `POST /servers/{id}/metadata` (merge) is `Create`, `PUT` (replace all) and
//!   `PUT .../metadata/{key}` are `Update`. Tags: `PUT .../tags/{tag}` is `Create`,
//!   `PUT .../tags` (replace all) is `Update`.
//! - Keypairs: ids `[name]`, or `[name, user_id]` when `?user_id=` is given with microversion
//!   2.10 or later (Nova ignores it before).

use super::{microversion_at_least, named, query_param, route, Request, Route, Verb as V};
use crate::operation::{Action as A, Operation, ResourceType as R};

const VERSIONS: [&str; 2] = ["v2.1", "v2"];

/// Nova, relative to `/v2.1` (or `/v2.1/{project_id}`).
pub static ROUTES: &[Route] = &[
    // servers
    route(V::Get, "servers", R::Server, A::Read),
    route(V::Post, "servers", R::Server, A::Create),
    route(V::Get, "servers/detail", R::Server, A::Read),
    route(V::Get, "servers/*", R::Server, A::Read),
    route(V::Put, "servers/*", R::Server, A::Update),
    route(V::Delete, "servers/*", R::Server, A::Delete),
    route(V::Post, "servers/*/action", R::ServerAction, A::Action),
    route(V::Get, "servers/*/metadata", R::ServerMetadata, A::Read),
    route(V::Post, "servers/*/metadata", R::ServerMetadata, A::Create),
    route(V::Put, "servers/*/metadata", R::ServerMetadata, A::Update),
    route(V::Get, "servers/*/metadata/*", R::ServerMetadata, A::Read),
    route(V::Put, "servers/*/metadata/*", R::ServerMetadata, A::Update),
    route(
        V::Delete,
        "servers/*/metadata/*",
        R::ServerMetadata,
        A::Delete,
    ),
    route(V::Get, "servers/*/tags", R::ServerTag, A::Read),
    route(V::Put, "servers/*/tags", R::ServerTag, A::Update),
    route(V::Delete, "servers/*/tags", R::ServerTag, A::Delete),
    route(V::Get, "servers/*/tags/*", R::ServerTag, A::Read),
    route(V::Put, "servers/*/tags/*", R::ServerTag, A::Create),
    route(V::Delete, "servers/*/tags/*", R::ServerTag, A::Delete),
    route(
        V::Get,
        "servers/*/os-volume_attachments",
        R::Server,
        A::Read,
    ),
    route(
        V::Get,
        "servers/*/os-volume_attachments/*",
        R::Server,
        A::Read,
    ),
    named(
        V::Post,
        "servers/*/os-volume_attachments",
        R::ServerAction,
        "attach_volume",
    ),
    named(
        V::Put,
        "servers/*/os-volume_attachments/*",
        R::ServerAction,
        "swap_volume",
    ),
    named(
        V::Delete,
        "servers/*/os-volume_attachments/*",
        R::ServerAction,
        "detach_volume",
    ),
    route(V::Get, "servers/*/os-interface", R::Server, A::Read),
    route(V::Get, "servers/*/os-interface/*", R::Server, A::Read),
    named(
        V::Post,
        "servers/*/os-interface",
        R::ServerAction,
        "attach_interface",
    ),
    named(
        V::Delete,
        "servers/*/os-interface/*",
        R::ServerAction,
        "detach_interface",
    ),
    // flavors, extra specs, access
    route(V::Get, "flavors", R::Flavor, A::Read),
    route(V::Post, "flavors", R::Flavor, A::Create),
    route(V::Get, "flavors/detail", R::Flavor, A::Read),
    route(V::Get, "flavors/*", R::Flavor, A::Read),
    route(V::Put, "flavors/*", R::Flavor, A::Update),
    route(V::Delete, "flavors/*", R::Flavor, A::Delete),
    route(
        V::Get,
        "flavors/*/os-extra_specs",
        R::FlavorExtraSpec,
        A::Read,
    ),
    route(
        V::Post,
        "flavors/*/os-extra_specs",
        R::FlavorExtraSpec,
        A::Create,
    ),
    route(
        V::Get,
        "flavors/*/os-extra_specs/*",
        R::FlavorExtraSpec,
        A::Read,
    ),
    route(
        V::Put,
        "flavors/*/os-extra_specs/*",
        R::FlavorExtraSpec,
        A::Update,
    ),
    route(
        V::Delete,
        "flavors/*/os-extra_specs/*",
        R::FlavorExtraSpec,
        A::Delete,
    ),
    route(
        V::Get,
        "flavors/*/os-flavor-access",
        R::FlavorAccess,
        A::Read,
    ),
    route(V::Post, "flavors/*/action", R::FlavorAccess, A::Action),
    // keypairs
    route(V::Get, "os-keypairs", R::Keypair, A::Read),
    route(V::Post, "os-keypairs", R::Keypair, A::Create),
    route(V::Get, "os-keypairs/*", R::Keypair, A::Read),
    route(V::Delete, "os-keypairs/*", R::Keypair, A::Delete),
    // server groups
    route(V::Get, "os-server-groups", R::ServerGroup, A::Read),
    route(V::Post, "os-server-groups", R::ServerGroup, A::Create),
    route(V::Get, "os-server-groups/*", R::ServerGroup, A::Read),
    route(V::Delete, "os-server-groups/*", R::ServerGroup, A::Delete),
];

pub(crate) fn classify(req: &Request<'_>) -> Option<Operation> {
    let mut op = match req.segments {
        [] => req.version(None),
        [version] if VERSIONS.contains(version) => req.version(None),
        [version, rest @ ..] if VERSIONS.contains(version) => req.lookup_with_project(ROUTES, rest),
        _ => None,
    }?;
    if op.resource == R::Keypair
        && op.ids.len() == 1
        && microversion_at_least(req.microversion, "compute", 2, 10)
    {
        if let Some(user) = query_param(req.query, "user_id").filter(|u| !u.is_empty()) {
            op.ids.push(user.to_owned());
        }
    }
    Some(op)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::operation::Service;
    use crate::services::classify as classify_path;
    use crate::services::test_support::{check, Case};
    use http::Method;

    const P: Option<&str> = Some("0123abcd0123abcd0123abcd0123abcd");

    #[rustfmt::skip]
    pub(crate) const CASES: &[Case] = &[
        ("GET", "/", R::Version, A::Read, &[], None, None),
        ("GET", "/v2.1", R::Version, A::Read, &[], None, None),
        ("GET", "/v2", R::Version, A::Read, &[], None, None),
        ("GET", "/v2.1/0123abcd0123abcd0123abcd0123abcd", R::Version, A::Read, &[], P, None),
        ("GET", "/v2.1/servers", R::Server, A::Read, &[], None, None),
        ("POST", "/v2.1/servers", R::Server, A::Create, &[], None, None),
        ("GET", "/v2.1/servers/detail", R::Server, A::Read, &[], None, None),
        ("GET", "/v2.1/servers/s1", R::Server, A::Read, &["s1"], None, None),
        ("PUT", "/v2.1/servers/s1", R::Server, A::Update, &["s1"], None, None),
        ("DELETE", "/v2.1/servers/s1", R::Server, A::Delete, &["s1"], None, None),
        ("POST", "/v2.1/servers/s1/action", R::ServerAction, A::Action, &["s1"], None, None),
        ("GET", "/v2.1/servers/s1/metadata", R::ServerMetadata, A::Read, &["s1"], None, None),
        ("POST", "/v2.1/servers/s1/metadata", R::ServerMetadata, A::Create, &["s1"], None, None),
        ("PUT", "/v2.1/servers/s1/metadata", R::ServerMetadata, A::Update, &["s1"], None, None),
        ("GET", "/v2.1/servers/s1/metadata/dr_tier", R::ServerMetadata, A::Read, &["s1", "dr_tier"], None, None),
        ("PUT", "/v2.1/servers/s1/metadata/dr_tier", R::ServerMetadata, A::Update, &["s1", "dr_tier"], None, None),
        ("DELETE", "/v2.1/servers/s1/metadata/dr_tier", R::ServerMetadata, A::Delete, &["s1", "dr_tier"], None, None),
        ("GET", "/v2.1/servers/s1/tags", R::ServerTag, A::Read, &["s1"], None, None),
        ("PUT", "/v2.1/servers/s1/tags", R::ServerTag, A::Update, &["s1"], None, None),
        ("DELETE", "/v2.1/servers/s1/tags", R::ServerTag, A::Delete, &["s1"], None, None),
        ("GET", "/v2.1/servers/s1/tags/t1", R::ServerTag, A::Read, &["s1", "t1"], None, None),
        ("PUT", "/v2.1/servers/s1/tags/t1", R::ServerTag, A::Create, &["s1", "t1"], None, None),
        ("DELETE", "/v2.1/servers/s1/tags/t1", R::ServerTag, A::Delete, &["s1", "t1"], None, None),
        ("POST", "/v2.1/servers/s1/os-volume_attachments", R::ServerAction, A::Action, &["s1"], None, Some("attach_volume")),
        ("PUT", "/v2.1/servers/s1/os-volume_attachments/v1", R::ServerAction, A::Action, &["s1", "v1"], None, Some("swap_volume")),
        ("DELETE", "/v2.1/servers/s1/os-volume_attachments/v1", R::ServerAction, A::Action, &["s1", "v1"], None, Some("detach_volume")),
        ("GET", "/v2.1/servers/s1/os-volume_attachments", R::Server, A::Read, &["s1"], None, None),
        ("GET", "/v2.1/servers/s1/os-volume_attachments/v1", R::Server, A::Read, &["s1", "v1"], None, None),
        ("GET", "/v2.1/servers/s1/os-interface", R::Server, A::Read, &["s1"], None, None),
        ("GET", "/v2.1/servers/s1/os-interface/p1", R::Server, A::Read, &["s1", "p1"], None, None),
        ("POST", "/v2.1/servers/s1/os-interface", R::ServerAction, A::Action, &["s1"], None, Some("attach_interface")),
        ("DELETE", "/v2.1/servers/s1/os-interface/p1", R::ServerAction, A::Action, &["s1", "p1"], None, Some("detach_interface")),
        ("GET", "/v2.1/flavors", R::Flavor, A::Read, &[], None, None),
        ("POST", "/v2.1/flavors", R::Flavor, A::Create, &[], None, None),
        ("GET", "/v2.1/flavors/detail", R::Flavor, A::Read, &[], None, None),
        ("GET", "/v2.1/flavors/f1", R::Flavor, A::Read, &["f1"], None, None),
        ("PUT", "/v2.1/flavors/f1", R::Flavor, A::Update, &["f1"], None, None),
        ("DELETE", "/v2.1/flavors/f1", R::Flavor, A::Delete, &["f1"], None, None),
        ("GET", "/v2.1/flavors/f1/os-extra_specs", R::FlavorExtraSpec, A::Read, &["f1"], None, None),
        ("POST", "/v2.1/flavors/f1/os-extra_specs", R::FlavorExtraSpec, A::Create, &["f1"], None, None),
        ("GET", "/v2.1/flavors/f1/os-extra_specs/hw:cpu_policy", R::FlavorExtraSpec, A::Read, &["f1", "hw:cpu_policy"], None, None),
        ("PUT", "/v2.1/flavors/f1/os-extra_specs/hw:cpu_policy", R::FlavorExtraSpec, A::Update, &["f1", "hw:cpu_policy"], None, None),
        ("DELETE", "/v2.1/flavors/f1/os-extra_specs/k", R::FlavorExtraSpec, A::Delete, &["f1", "k"], None, None),
        ("GET", "/v2.1/flavors/f1/os-flavor-access", R::FlavorAccess, A::Read, &["f1"], None, None),
        ("POST", "/v2.1/flavors/f1/action", R::FlavorAccess, A::Action, &["f1"], None, None),
        ("GET", "/v2.1/os-keypairs", R::Keypair, A::Read, &[], None, None),
        ("POST", "/v2.1/os-keypairs", R::Keypair, A::Create, &[], None, None),
        ("GET", "/v2.1/os-keypairs/my.key", R::Keypair, A::Read, &["my.key"], None, None),
        ("DELETE", "/v2.1/os-keypairs/k1", R::Keypair, A::Delete, &["k1"], None, None),
        ("GET", "/v2.1/os-server-groups", R::ServerGroup, A::Read, &[], None, None),
        ("POST", "/v2.1/os-server-groups", R::ServerGroup, A::Create, &[], None, None),
        ("GET", "/v2.1/os-server-groups/g1", R::ServerGroup, A::Read, &["g1"], None, None),
        ("DELETE", "/v2.1/os-server-groups/g1", R::ServerGroup, A::Delete, &["g1"], None, None),
        // legacy project-id paths
        ("POST", "/v2.1/0123abcd0123abcd0123abcd0123abcd/servers", R::Server, A::Create, &[], P, None),
        ("POST", "/v2/0123abcd0123abcd0123abcd0123abcd/servers/s1/action", R::ServerAction, A::Action, &["s1"], P, None),
        ("PUT", "/v2.1/0123abcd0123abcd0123abcd0123abcd/flavors/f1/os-extra_specs/k", R::FlavorExtraSpec, A::Update, &["f1", "k"], P, None),
        ("DELETE", "/v2.1/0123abcd0123abcd0123abcd0123abcd/os-keypairs/k1", R::Keypair, A::Delete, &["k1"], P, None),
        ("POST", "/v2.1/0123abcd0123abcd0123abcd0123abcd/os-quota-sets", R::Other, A::Create, &[], P, None),
        // unknown
        ("GET", "/v2.1/limits", R::Other, A::Read, &[], None, None),
        ("POST", "/v2.1/os-quota-sets/x", R::Other, A::Create, &[], None, None),
        ("PATCH", "/v2.1/servers/s1", R::Other, A::Update, &[], None, None),
        ("DELETE", "/v2.1/servers", R::Other, A::Delete, &[], None, None),
        ("DELETE", "/v2.1", R::Other, A::Delete, &[], None, None),
        ("GET", "/v3/servers", R::Other, A::Read, &[], None, None),
    ];

    #[test]
    fn routes() {
        check(Service::Compute, CASES);
    }

    #[test]
    fn keypair_user_id_needs_microversion_2_10() {
        let get = |query: Option<&str>, mv: Option<&str>| {
            classify_path(
                Service::Compute,
                &Method::GET,
                "/v2.1/os-keypairs/k1",
                query,
                mv,
            )
            .ids
        };
        assert_eq!(get(Some("user_id=u1"), Some("compute 2.10")), ["k1", "u1"]);
        assert_eq!(get(Some("a=b&user_id=u1"), Some("2.79")), ["k1", "u1"]);
        assert_eq!(get(Some("user_id=u1"), Some("compute 2.9")), ["k1"]);
        assert_eq!(get(Some("user_id=u1"), None), ["k1"]);
        assert_eq!(get(Some("user_id="), Some("compute latest")), ["k1"]);
        assert_eq!(get(None, Some("compute 2.10")), ["k1"]);
        let list = classify_path(
            Service::Compute,
            &Method::GET,
            "/v2.1/os-keypairs",
            Some("user_id=u1"),
            Some("compute 2.10"),
        );
        assert!(list.ids.is_empty());
    }
}
