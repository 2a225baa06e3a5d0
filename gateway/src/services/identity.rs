//! Keystone (identity v3) route table and classifier.
//!
//! Paths are relative to Keystone's base URL: `/v3/...`. `GET /`, `/v3` and `/v2.0` are
//! version documents.
//!
//! Conventions the rest of the gateway relies on:
//! - `POST /v3/auth/tokens` is `Token`/`Create` (a login), `GET`/`HEAD` validate (`Read`),
//!   `DELETE` revokes. A failover freeze must let token creation through.
//! - Role assignments (`/v3/{projects|domains}/{scope}/{users|groups}/{actor}/roles/{role}`,
//!   and the `OS-INHERIT` `.../inherited_to_projects` forms) have ids
//!   `[scope_id, actor_id, role_id]` in path order; `project` is the scope id when the scope
//!   is a project, `None` for a domain. Which kinds the ids are is in
//!   [`role_assignment_target`].
//! - `project` is set for every path under `/v3/projects/{id}` (the project, its tags, its
//!   role assignments).
//! - Project tags: `[project_id, tag]`; group membership `PUT /v3/groups/G/users/U`: `[G, U]`;
//!   application credentials: `[user_id, credential_id]`.
//! - `POST /v3/users/U/password` is `User`/`Action` named `change_password`.

use super::{named, route, Request, Route, Segments, Verb as V};
use crate::operation::{Action as A, Operation, ResourceType as R};

/// Path versions whose bare path is a version document.
const VERSIONS: [&str; 2] = ["v3", "v2.0"];

/// Keystone v3, relative to `/v3`.
pub static ROUTES: &[Route] = &[
    // tokens and the catalog
    route(V::Post, "auth/tokens", R::Token, A::Create),
    route(V::Get, "auth/tokens", R::Token, A::Read),
    route(V::Delete, "auth/tokens", R::Token, A::Delete),
    route(V::Get, "auth/catalog", R::Catalog, A::Read),
    route(V::Get, "auth/projects", R::Project, A::Read),
    route(V::Get, "auth/domains", R::Domain, A::Read),
    // endpoints
    route(V::Get, "endpoints", R::Endpoint, A::Read),
    route(V::Post, "endpoints", R::Endpoint, A::Create),
    route(V::Get, "endpoints/*", R::Endpoint, A::Read),
    route(V::Patch, "endpoints/*", R::Endpoint, A::Update),
    route(V::Delete, "endpoints/*", R::Endpoint, A::Delete),
    // projects and their tags
    route(V::Get, "projects", R::Project, A::Read),
    route(V::Post, "projects", R::Project, A::Create),
    route(V::Get, "projects/*", R::Project, A::Read),
    route(V::Patch, "projects/*", R::Project, A::Update),
    route(V::Delete, "projects/*", R::Project, A::Delete),
    route(V::Get, "projects/*/tags", R::ProjectTag, A::Read),
    route(V::Put, "projects/*/tags", R::ProjectTag, A::Update),
    route(V::Delete, "projects/*/tags", R::ProjectTag, A::Delete),
    route(V::Get, "projects/*/tags/*", R::ProjectTag, A::Read),
    route(V::Put, "projects/*/tags/*", R::ProjectTag, A::Create),
    route(V::Delete, "projects/*/tags/*", R::ProjectTag, A::Delete),
    // role assignments: project and domain scope, users and groups
    route(V::Get, "role_assignments", R::RoleAssignment, A::Read),
    route(
        V::Get,
        "projects/*/users/*/roles",
        R::RoleAssignment,
        A::Read,
    ),
    route(
        V::Get,
        "projects/*/users/*/roles/*",
        R::RoleAssignment,
        A::Read,
    ),
    route(
        V::Put,
        "projects/*/users/*/roles/*",
        R::RoleAssignment,
        A::Create,
    ),
    route(
        V::Delete,
        "projects/*/users/*/roles/*",
        R::RoleAssignment,
        A::Delete,
    ),
    route(
        V::Get,
        "projects/*/groups/*/roles",
        R::RoleAssignment,
        A::Read,
    ),
    route(
        V::Get,
        "projects/*/groups/*/roles/*",
        R::RoleAssignment,
        A::Read,
    ),
    route(
        V::Put,
        "projects/*/groups/*/roles/*",
        R::RoleAssignment,
        A::Create,
    ),
    route(
        V::Delete,
        "projects/*/groups/*/roles/*",
        R::RoleAssignment,
        A::Delete,
    ),
    route(
        V::Get,
        "domains/*/users/*/roles",
        R::RoleAssignment,
        A::Read,
    ),
    route(
        V::Get,
        "domains/*/users/*/roles/*",
        R::RoleAssignment,
        A::Read,
    ),
    route(
        V::Put,
        "domains/*/users/*/roles/*",
        R::RoleAssignment,
        A::Create,
    ),
    route(
        V::Delete,
        "domains/*/users/*/roles/*",
        R::RoleAssignment,
        A::Delete,
    ),
    route(
        V::Get,
        "domains/*/groups/*/roles",
        R::RoleAssignment,
        A::Read,
    ),
    route(
        V::Get,
        "domains/*/groups/*/roles/*",
        R::RoleAssignment,
        A::Read,
    ),
    route(
        V::Put,
        "domains/*/groups/*/roles/*",
        R::RoleAssignment,
        A::Create,
    ),
    route(
        V::Delete,
        "domains/*/groups/*/roles/*",
        R::RoleAssignment,
        A::Delete,
    ),
    route(
        V::Get,
        "OS-INHERIT/projects/*/users/*/roles/*/inherited_to_projects",
        R::RoleAssignment,
        A::Read,
    ),
    route(
        V::Put,
        "OS-INHERIT/projects/*/users/*/roles/*/inherited_to_projects",
        R::RoleAssignment,
        A::Create,
    ),
    route(
        V::Delete,
        "OS-INHERIT/projects/*/users/*/roles/*/inherited_to_projects",
        R::RoleAssignment,
        A::Delete,
    ),
    route(
        V::Get,
        "OS-INHERIT/projects/*/groups/*/roles/*/inherited_to_projects",
        R::RoleAssignment,
        A::Read,
    ),
    route(
        V::Put,
        "OS-INHERIT/projects/*/groups/*/roles/*/inherited_to_projects",
        R::RoleAssignment,
        A::Create,
    ),
    route(
        V::Delete,
        "OS-INHERIT/projects/*/groups/*/roles/*/inherited_to_projects",
        R::RoleAssignment,
        A::Delete,
    ),
    route(
        V::Get,
        "OS-INHERIT/domains/*/users/*/roles/inherited_to_projects",
        R::RoleAssignment,
        A::Read,
    ),
    route(
        V::Get,
        "OS-INHERIT/domains/*/users/*/roles/*/inherited_to_projects",
        R::RoleAssignment,
        A::Read,
    ),
    route(
        V::Put,
        "OS-INHERIT/domains/*/users/*/roles/*/inherited_to_projects",
        R::RoleAssignment,
        A::Create,
    ),
    route(
        V::Delete,
        "OS-INHERIT/domains/*/users/*/roles/*/inherited_to_projects",
        R::RoleAssignment,
        A::Delete,
    ),
    route(
        V::Get,
        "OS-INHERIT/domains/*/groups/*/roles/inherited_to_projects",
        R::RoleAssignment,
        A::Read,
    ),
    route(
        V::Get,
        "OS-INHERIT/domains/*/groups/*/roles/*/inherited_to_projects",
        R::RoleAssignment,
        A::Read,
    ),
    route(
        V::Put,
        "OS-INHERIT/domains/*/groups/*/roles/*/inherited_to_projects",
        R::RoleAssignment,
        A::Create,
    ),
    route(
        V::Delete,
        "OS-INHERIT/domains/*/groups/*/roles/*/inherited_to_projects",
        R::RoleAssignment,
        A::Delete,
    ),
    // users, their password and application credentials
    route(V::Get, "users", R::User, A::Read),
    route(V::Post, "users", R::User, A::Create),
    route(V::Get, "users/*", R::User, A::Read),
    route(V::Patch, "users/*", R::User, A::Update),
    route(V::Delete, "users/*", R::User, A::Delete),
    named(V::Post, "users/*/password", R::User, "change_password"),
    route(V::Get, "users/*/groups", R::Group, A::Read),
    route(V::Get, "users/*/projects", R::Project, A::Read),
    route(
        V::Get,
        "users/*/application_credentials",
        R::ApplicationCredential,
        A::Read,
    ),
    route(
        V::Post,
        "users/*/application_credentials",
        R::ApplicationCredential,
        A::Create,
    ),
    route(
        V::Get,
        "users/*/application_credentials/*",
        R::ApplicationCredential,
        A::Read,
    ),
    route(
        V::Delete,
        "users/*/application_credentials/*",
        R::ApplicationCredential,
        A::Delete,
    ),
    // groups and membership
    route(V::Get, "groups", R::Group, A::Read),
    route(V::Post, "groups", R::Group, A::Create),
    route(V::Get, "groups/*", R::Group, A::Read),
    route(V::Patch, "groups/*", R::Group, A::Update),
    route(V::Delete, "groups/*", R::Group, A::Delete),
    route(V::Get, "groups/*/users", R::GroupMembership, A::Read),
    route(V::Get, "groups/*/users/*", R::GroupMembership, A::Read),
    route(V::Put, "groups/*/users/*", R::GroupMembership, A::Create),
    route(V::Delete, "groups/*/users/*", R::GroupMembership, A::Delete),
    // roles
    route(V::Get, "roles", R::Role, A::Read),
    route(V::Post, "roles", R::Role, A::Create),
    route(V::Get, "roles/*", R::Role, A::Read),
    route(V::Patch, "roles/*", R::Role, A::Update),
    route(V::Delete, "roles/*", R::Role, A::Delete),
    // domains
    route(V::Get, "domains", R::Domain, A::Read),
    route(V::Post, "domains", R::Domain, A::Create),
    route(V::Get, "domains/*", R::Domain, A::Read),
    route(V::Patch, "domains/*", R::Domain, A::Update),
    route(V::Delete, "domains/*", R::Domain, A::Delete),
];

pub(crate) fn classify(req: &Request<'_>) -> Option<Operation> {
    match req.segments {
        [] => req.version(None),
        [version] if VERSIONS.contains(version) => req.version(None),
        ["v3", rest @ ..] => req.lookup(ROUTES, rest, project_of(rest)),
        _ => None,
    }
}

/// The project a `/v3` path is about: the id after `projects/` (or `OS-INHERIT/projects/`).
fn project_of<'a>(rest: &[&'a str]) -> Option<&'a str> {
    match rest {
        ["projects", id, ..] | ["OS-INHERIT", "projects", id, ..] => Some(id),
        _ => None,
    }
}

/// What a role assignment's scope id (`ids[0]`) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentScope {
    Project,
    Domain,
}

/// What a role assignment's actor id (`ids[1]`) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentActor {
    User,
    Group,
}

/// The kinds of the ids of a role-assignment path, for ID translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleAssignmentTarget {
    pub scope: AssignmentScope,
    pub actor: AssignmentActor,
    /// `OS-INHERIT` ... `inherited_to_projects`.
    pub inherited: bool,
}

/// The scope and actor kinds of a role-assignment path (`/v3/projects/P/groups/G/roles/R`,
/// `/v3/OS-INHERIT/domains/D/users/U/roles/R/inherited_to_projects`, ...); `None` for any
/// other path.
pub fn role_assignment_target(path: &str) -> Option<RoleAssignmentTarget> {
    let segments = Segments::parse(path)?;
    let (inherited, rest) = match segments.as_slice() {
        ["v3", "OS-INHERIT", rest @ ..] => (true, rest),
        ["v3", rest @ ..] => (false, rest),
        _ => return None,
    };
    let [scope, _, actor, _, "roles", tail @ ..] = rest else {
        return None;
    };
    let scope = match *scope {
        "projects" => AssignmentScope::Project,
        "domains" => AssignmentScope::Domain,
        _ => return None,
    };
    let actor = match *actor {
        "users" => AssignmentActor::User,
        "groups" => AssignmentActor::Group,
        _ => return None,
    };
    let tail_ok = matches!(
        (inherited, tail),
        (false, [] | [_])
            | (
                true,
                ["inherited_to_projects"] | [_, "inherited_to_projects"]
            )
    );
    tail_ok.then_some(RoleAssignmentTarget {
        scope,
        actor,
        inherited,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::operation::Service;
    use crate::services::test_support::{check, Case};

    #[rustfmt::skip]
    pub(crate) const CASES: &[Case] = &[
        ("GET", "/", R::Version, A::Read, &[], None, None),
        ("GET", "/v3", R::Version, A::Read, &[], None, None),
        ("HEAD", "/v3", R::Version, A::Read, &[], None, None),
        ("GET", "/v2.0", R::Version, A::Read, &[], None, None),
        ("POST", "/v3", R::Other, A::Create, &[], None, None),
        ("POST", "/v3/auth/tokens", R::Token, A::Create, &[], None, None),
        ("GET", "/v3/auth/tokens", R::Token, A::Read, &[], None, None),
        ("HEAD", "/v3/auth/tokens", R::Token, A::Read, &[], None, None),
        ("DELETE", "/v3/auth/tokens", R::Token, A::Delete, &[], None, None),
        ("GET", "/v3/auth/catalog", R::Catalog, A::Read, &[], None, None),
        ("GET", "/v3/auth/projects", R::Project, A::Read, &[], None, None),
        ("GET", "/v3/auth/domains", R::Domain, A::Read, &[], None, None),
        ("GET", "/v3/endpoints", R::Endpoint, A::Read, &[], None, None),
        ("POST", "/v3/endpoints", R::Endpoint, A::Create, &[], None, None),
        ("GET", "/v3/endpoints/e1", R::Endpoint, A::Read, &["e1"], None, None),
        ("PATCH", "/v3/endpoints/e1", R::Endpoint, A::Update, &["e1"], None, None),
        ("DELETE", "/v3/endpoints/e1", R::Endpoint, A::Delete, &["e1"], None, None),
        ("GET", "/v3/projects", R::Project, A::Read, &[], None, None),
        ("POST", "/v3/projects", R::Project, A::Create, &[], None, None),
        ("GET", "/v3/projects/p1", R::Project, A::Read, &["p1"], Some("p1"), None),
        ("PATCH", "/v3/projects/p1", R::Project, A::Update, &["p1"], Some("p1"), None),
        ("DELETE", "/v3/projects/p1", R::Project, A::Delete, &["p1"], Some("p1"), None),
        ("GET", "/v3/projects/p1/tags", R::ProjectTag, A::Read, &["p1"], Some("p1"), None),
        ("PUT", "/v3/projects/p1/tags", R::ProjectTag, A::Update, &["p1"], Some("p1"), None),
        ("DELETE", "/v3/projects/p1/tags", R::ProjectTag, A::Delete, &["p1"], Some("p1"), None),
        ("GET", "/v3/projects/p1/tags/dr-tier:gold", R::ProjectTag, A::Read, &["p1", "dr-tier:gold"], Some("p1"), None),
        ("PUT", "/v3/projects/p1/tags/dr-tier%3Agold", R::ProjectTag, A::Create, &["p1", "dr-tier%3Agold"], Some("p1"), None),
        ("DELETE", "/v3/projects/p1/tags/t", R::ProjectTag, A::Delete, &["p1", "t"], Some("p1"), None),
        ("GET", "/v3/role_assignments", R::RoleAssignment, A::Read, &[], None, None),
        ("GET", "/v3/projects/p1/users/u1/roles", R::RoleAssignment, A::Read, &["p1", "u1"], Some("p1"), None),
        ("PUT", "/v3/projects/p1/users/u1/roles/r1", R::RoleAssignment, A::Create, &["p1", "u1", "r1"], Some("p1"), None),
        ("HEAD", "/v3/projects/p1/users/u1/roles/r1", R::RoleAssignment, A::Read, &["p1", "u1", "r1"], Some("p1"), None),
        ("DELETE", "/v3/projects/p1/users/u1/roles/r1", R::RoleAssignment, A::Delete, &["p1", "u1", "r1"], Some("p1"), None),
        ("GET", "/v3/projects/p1/groups/g1/roles", R::RoleAssignment, A::Read, &["p1", "g1"], Some("p1"), None),
        ("GET", "/v3/projects/p1/groups/g1/roles/r1", R::RoleAssignment, A::Read, &["p1", "g1", "r1"], Some("p1"), None),
        ("PUT", "/v3/projects/p1/groups/g1/roles/r1", R::RoleAssignment, A::Create, &["p1", "g1", "r1"], Some("p1"), None),
        ("DELETE", "/v3/projects/p1/groups/g1/roles/r1", R::RoleAssignment, A::Delete, &["p1", "g1", "r1"], Some("p1"), None),
        ("PUT", "/v3/domains/d1/users/u1/roles/r1", R::RoleAssignment, A::Create, &["d1", "u1", "r1"], None, None),
        ("GET", "/v3/domains/d1/users/u1/roles", R::RoleAssignment, A::Read, &["d1", "u1"], None, None),
        ("HEAD", "/v3/domains/d1/users/u1/roles/r1", R::RoleAssignment, A::Read, &["d1", "u1", "r1"], None, None),
        ("DELETE", "/v3/domains/d1/users/u1/roles/r1", R::RoleAssignment, A::Delete, &["d1", "u1", "r1"], None, None),
        ("GET", "/v3/domains/d1/groups/g1/roles/r1", R::RoleAssignment, A::Read, &["d1", "g1", "r1"], None, None),
        ("PUT", "/v3/domains/d1/groups/g1/roles/r1", R::RoleAssignment, A::Create, &["d1", "g1", "r1"], None, None),
        ("DELETE", "/v3/domains/d1/groups/g1/roles/r1", R::RoleAssignment, A::Delete, &["d1", "g1", "r1"], None, None),
        ("GET", "/v3/domains/d1/groups/g1/roles", R::RoleAssignment, A::Read, &["d1", "g1"], None, None),
        ("PUT", "/v3/OS-INHERIT/projects/p1/users/u1/roles/r1/inherited_to_projects", R::RoleAssignment, A::Create, &["p1", "u1", "r1"], Some("p1"), None),
        ("HEAD", "/v3/OS-INHERIT/projects/p1/users/u1/roles/r1/inherited_to_projects", R::RoleAssignment, A::Read, &["p1", "u1", "r1"], Some("p1"), None),
        ("DELETE", "/v3/OS-INHERIT/projects/p1/users/u1/roles/r1/inherited_to_projects", R::RoleAssignment, A::Delete, &["p1", "u1", "r1"], Some("p1"), None),
        ("GET", "/v3/OS-INHERIT/projects/p1/groups/g1/roles/r1/inherited_to_projects", R::RoleAssignment, A::Read, &["p1", "g1", "r1"], Some("p1"), None),
        ("PUT", "/v3/OS-INHERIT/projects/p1/groups/g1/roles/r1/inherited_to_projects", R::RoleAssignment, A::Create, &["p1", "g1", "r1"], Some("p1"), None),
        ("DELETE", "/v3/OS-INHERIT/projects/p1/groups/g1/roles/r1/inherited_to_projects", R::RoleAssignment, A::Delete, &["p1", "g1", "r1"], Some("p1"), None),
        ("PUT", "/v3/OS-INHERIT/domains/d1/groups/g1/roles/r1/inherited_to_projects", R::RoleAssignment, A::Create, &["d1", "g1", "r1"], None, None),
        ("GET", "/v3/OS-INHERIT/domains/d1/groups/g1/roles/r1/inherited_to_projects", R::RoleAssignment, A::Read, &["d1", "g1", "r1"], None, None),
        ("DELETE", "/v3/OS-INHERIT/domains/d1/groups/g1/roles/r1/inherited_to_projects", R::RoleAssignment, A::Delete, &["d1", "g1", "r1"], None, None),
        ("GET", "/v3/OS-INHERIT/domains/d1/groups/g1/roles/inherited_to_projects", R::RoleAssignment, A::Read, &["d1", "g1"], None, None),
        ("GET", "/v3/OS-INHERIT/domains/d1/users/u1/roles/inherited_to_projects", R::RoleAssignment, A::Read, &["d1", "u1"], None, None),
        ("HEAD", "/v3/OS-INHERIT/domains/d1/users/u1/roles/r1/inherited_to_projects", R::RoleAssignment, A::Read, &["d1", "u1", "r1"], None, None),
        ("PUT", "/v3/OS-INHERIT/domains/d1/users/u1/roles/r1/inherited_to_projects", R::RoleAssignment, A::Create, &["d1", "u1", "r1"], None, None),
        ("DELETE", "/v3/OS-INHERIT/domains/d1/users/u1/roles/r1/inherited_to_projects", R::RoleAssignment, A::Delete, &["d1", "u1", "r1"], None, None),
        ("GET", "/v3/users", R::User, A::Read, &[], None, None),
        ("POST", "/v3/users", R::User, A::Create, &[], None, None),
        ("GET", "/v3/users/u1", R::User, A::Read, &["u1"], None, None),
        ("PATCH", "/v3/users/u1", R::User, A::Update, &["u1"], None, None),
        ("DELETE", "/v3/users/u1", R::User, A::Delete, &["u1"], None, None),
        ("POST", "/v3/users/u1/password", R::User, A::Action, &["u1"], None, Some("change_password")),
        ("GET", "/v3/users/u1/groups", R::Group, A::Read, &["u1"], None, None),
        ("GET", "/v3/users/u1/projects", R::Project, A::Read, &["u1"], None, None),
        ("GET", "/v3/users/u1/application_credentials", R::ApplicationCredential, A::Read, &["u1"], None, None),
        ("POST", "/v3/users/u1/application_credentials", R::ApplicationCredential, A::Create, &["u1"], None, None),
        ("GET", "/v3/users/u1/application_credentials/ac1", R::ApplicationCredential, A::Read, &["u1", "ac1"], None, None),
        ("DELETE", "/v3/users/u1/application_credentials/ac1", R::ApplicationCredential, A::Delete, &["u1", "ac1"], None, None),
        ("GET", "/v3/groups", R::Group, A::Read, &[], None, None),
        ("POST", "/v3/groups", R::Group, A::Create, &[], None, None),
        ("GET", "/v3/groups/g1", R::Group, A::Read, &["g1"], None, None),
        ("PATCH", "/v3/groups/g1", R::Group, A::Update, &["g1"], None, None),
        ("DELETE", "/v3/groups/g1", R::Group, A::Delete, &["g1"], None, None),
        ("GET", "/v3/groups/g1/users", R::GroupMembership, A::Read, &["g1"], None, None),
        ("HEAD", "/v3/groups/g1/users/u1", R::GroupMembership, A::Read, &["g1", "u1"], None, None),
        ("PUT", "/v3/groups/g1/users/u1", R::GroupMembership, A::Create, &["g1", "u1"], None, None),
        ("DELETE", "/v3/groups/g1/users/u1", R::GroupMembership, A::Delete, &["g1", "u1"], None, None),
        ("GET", "/v3/roles", R::Role, A::Read, &[], None, None),
        ("POST", "/v3/roles", R::Role, A::Create, &[], None, None),
        ("GET", "/v3/roles/r1", R::Role, A::Read, &["r1"], None, None),
        ("PATCH", "/v3/roles/r1", R::Role, A::Update, &["r1"], None, None),
        ("DELETE", "/v3/roles/r1", R::Role, A::Delete, &["r1"], None, None),
        ("GET", "/v3/domains", R::Domain, A::Read, &[], None, None),
        ("POST", "/v3/domains", R::Domain, A::Create, &[], None, None),
        ("GET", "/v3/domains/d1", R::Domain, A::Read, &["d1"], None, None),
        ("PATCH", "/v3/domains/d1", R::Domain, A::Update, &["d1"], None, None),
        ("DELETE", "/v3/domains/d1", R::Domain, A::Delete, &["d1"], None, None),
        // unknown paths and methods
        ("POST", "/v3/credentials", R::Other, A::Create, &[], None, None),
        ("PATCH", "/v3/users/u1/password", R::Other, A::Update, &[], None, None),
        ("PUT", "/v3/projects/p1", R::Other, A::Update, &[], None, None),
        ("DELETE", "/v3/system/users/u1/roles/r1", R::Other, A::Delete, &[], None, None),
        ("GET", "/v4/projects", R::Other, A::Read, &[], None, None),
        ("GET", "/v3/projects/p1/users/u1/roles/r1/extra", R::Other, A::Read, &[], None, None),
    ];

    #[test]
    fn routes() {
        check(Service::Identity, CASES);
    }

    #[test]
    fn role_assignment_kinds() {
        use AssignmentActor::*;
        use AssignmentScope::*;
        let t = |scope, actor, inherited| {
            Some(RoleAssignmentTarget {
                scope,
                actor,
                inherited,
            })
        };
        let cases = [
            ("/v3/projects/p/users/u/roles/r", t(Project, User, false)),
            ("/v3/projects/p/groups/g/roles/r/", t(Project, Group, false)),
            ("/v3/domains/d/users/u/roles", t(Domain, User, false)),
            (
                "/v3/domains/d/groups/g/roles/r?x=1",
                t(Domain, Group, false),
            ),
            (
                "/v3/OS-INHERIT/domains/d/users/u/roles/r/inherited_to_projects",
                t(Domain, User, true),
            ),
            (
                "/v3/OS-INHERIT/projects/p/groups/g/roles/inherited_to_projects",
                t(Project, Group, true),
            ),
            ("/v3/OS-INHERIT/projects/p/groups/g/roles/r", None),
            ("/v3/projects/p/users/u/roles/r/x", None),
            ("/v3/projects/p/tags/t", None),
            ("/v3/roles/r", None),
            ("", None),
        ];
        for (path, expected) in cases {
            assert_eq!(role_assignment_target(path), expected, "{path}");
        }
    }
}
