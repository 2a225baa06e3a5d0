//! Request classification: one module per OpenStack service, all the same shape.
//!
//! Each service module holds a static route table, `(verb, path pattern) → (resource type,
//! action)`, and a `classify` that strips the service's version (and project id) prefix and
//! matches the rest against the table. [`classify`] dispatches on the service. Everything
//! here is a pure function of its arguments, on the hot path of every request: no regex, no
//! allocation but the `ids` vector of the returned [`Operation`].
//!
//! Shared conventions:
//! - Paths are relative to the service's base URL (listener prefix already stripped).
//!   Empty segments (`//`, trailing `/`) are ignored; anything after `?` or `#` is ignored.
//! - A pattern is `/`-separated literals and `*` (one path segment, captured into
//!   `Operation::ids`, outermost first). The first matching row wins, so literal siblings
//!   (`servers/detail`) come before wildcards (`servers/*`).
//! - Ids are the raw path segments, **not percent-decoded**: they can be put back into a
//!   recovery-site path as they are, and a malformed escape can never fail classification.
//! - `HEAD` matches the `GET` rows. A path no row matches is [`Operation::other`] with the
//!   action the method implies ([`action_for_method`]), so mutations on unknown paths stay
//!   writes for the failover freeze.
//! - Version documents (`GET /`, `GET /v3`, ...) are `Version`/`Read`.

pub mod block_storage;
pub mod compute;
pub mod identity;
pub mod image;
pub mod network;

use http::Method;
use serde_json::Value;

use crate::operation::{Action, Operation, ResourceType, Service};

/// Paths with more segments than this are never in a route table; they classify as
/// `Other` without being looked at further.
pub const MAX_SEGMENTS: usize = 12;

/// Classifies one request. Never fails and never panics: unknown or malformed paths give
/// [`Operation::other`].
///
/// `query` is the raw query string without `?`; `microversion` the raw value of
/// `OpenStack-API-Version` (or `X-OpenStack-Nova-API-Version`), e.g. `compute 2.10`.
pub fn classify(
    service: Service,
    method: &Method,
    path: &str,
    query: Option<&str>,
    microversion: Option<&str>,
) -> Operation {
    let verb = Verb::of(method);
    let Some(segments) = Segments::parse(path) else {
        return Operation::other(service, action_for_method(method));
    };
    let request = Request {
        service,
        verb,
        method,
        segments: segments.as_slice(),
        query,
        microversion,
    };
    let found = match service {
        Service::Identity => identity::classify(&request),
        Service::Compute => compute::classify(&request),
        Service::Network => network::classify(&request),
        Service::BlockStorage => block_storage::classify(&request),
        Service::Image => image::classify(&request),
    };
    found.unwrap_or_else(|| Operation::other(service, action_for_method(method)))
}

/// The name of a Nova server, Nova flavor or Cinder volume/type/snapshot action from its
/// JSON body, whose single top-level key names the action (`{"os-start": null}`,
/// `{"reboot": {"type": "SOFT"}}`, `{"os-extend": {...}}`, `{"addTenantAccess": {...}}`).
/// `None` unless the body is an object with exactly one key.
pub fn action_name_from_body(json: &Value) -> Option<String> {
    let object = json.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object.keys().next().filter(|k| !k.is_empty()).cloned()
}

/// The action a request makes on a path the gateway does not know: reads for safe
/// methods, and a write for everything else (unknown extension methods included).
pub fn action_for_method(method: &Method) -> Action {
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE => Action::Read,
        Method::POST => Action::Create,
        Method::DELETE => Action::Delete,
        _ => Action::Update,
    }
}

/// The HTTP methods route tables distinguish. `HEAD` is `Get`; `None` for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    fn of(method: &Method) -> Option<Verb> {
        Some(match *method {
            Method::GET | Method::HEAD => Verb::Get,
            Method::POST => Verb::Post,
            Method::PUT => Verb::Put,
            Method::PATCH => Verb::Patch,
            Method::DELETE => Verb::Delete,
            _ => return None,
        })
    }
}

/// One row of a route table.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub verb: Verb,
    /// `/`-separated literals and `*` wildcards, without the version prefix.
    pub pattern: &'static str,
    pub resource: ResourceType,
    pub action: Action,
    /// Set for `Action::Action` rows whose path names the action.
    pub action_name: Option<&'static str>,
}

/// Shorthand for a table row without an action name.
pub(crate) const fn route(
    verb: Verb,
    pattern: &'static str,
    resource: ResourceType,
    action: Action,
) -> Route {
    Route {
        verb,
        pattern,
        resource,
        action,
        action_name: None,
    }
}

/// Shorthand for a table row whose path names the action.
pub(crate) const fn named(
    verb: Verb,
    pattern: &'static str,
    resource: ResourceType,
    action_name: &'static str,
) -> Route {
    Route {
        verb,
        pattern,
        resource,
        action: Action::Action,
        action_name: Some(action_name),
    }
}

/// A request as the service modules see it.
pub(crate) struct Request<'a> {
    pub service: Service,
    /// `None` for methods no table row uses (OPTIONS, extension methods).
    pub verb: Option<Verb>,
    pub method: &'a Method,
    pub segments: &'a [&'a str],
    pub query: Option<&'a str>,
    pub microversion: Option<&'a str>,
}

impl Request<'_> {
    /// Looks `segments` up in `table`; builds the operation on a match.
    pub fn lookup(
        &self,
        table: &[Route],
        segments: &[&str],
        project: Option<&str>,
    ) -> Option<Operation> {
        let verb = self.verb?;
        let route = table
            .iter()
            .find(|r| r.verb == verb && pattern_matches(r.pattern, segments))?;
        Some(operation(self.service, route, segments, project))
    }

    /// Looks `rest` up as it is, then as `{project_id}/...` (legacy Nova `/v2.1/{project}/...`,
    /// Cinder `/v3/{project}/...`). A project-only path (`/v2.1/{project}`) is the version
    /// document, and an unknown path under a project keeps the project; both only when the
    /// segment looks like a project id ([`looks_like_project_id`], Nova's own route rule).
    pub fn lookup_with_project(&self, table: &[Route], rest: &[&str]) -> Option<Operation> {
        if let Some(op) = self.lookup(table, rest, None) {
            return Some(op);
        }
        let [project, tail @ ..] = rest else {
            return None;
        };
        if let Some(op) = self.lookup(table, tail, Some(project)) {
            return Some(op);
        }
        if !looks_like_project_id(project) {
            return None;
        }
        if tail.is_empty() {
            self.version(Some(project))
        } else {
            Some(self.other_in_project(Some(project)))
        }
    }

    /// `Version`/`Read` for `GET`/`HEAD`, nothing for other methods.
    pub fn version(&self, project: Option<&str>) -> Option<Operation> {
        if self.verb != Some(Verb::Get) {
            return None;
        }
        let mut op = Operation::other(self.service, Action::Read);
        op.resource = ResourceType::Version;
        op.project = project.map(str::to_owned);
        Some(op)
    }

    /// Unknown path under a known prefix: `Other`, keeping the project id.
    pub fn other_in_project(&self, project: Option<&str>) -> Operation {
        let mut op = Operation::other(self.service, action_for_method(self.method));
        op.project = project.map(str::to_owned);
        op
    }
}

/// The single place an [`Operation`] is built from a matched route.
fn operation(
    service: Service,
    route: &Route,
    segments: &[&str],
    project: Option<&str>,
) -> Operation {
    let mut ids = Vec::with_capacity(route.pattern.bytes().filter(|&b| b == b'*').count());
    for (pattern, segment) in route.pattern.split('/').zip(segments) {
        if pattern == "*" {
            ids.push((*segment).to_owned());
        }
    }
    Operation {
        service,
        resource: route.resource,
        action: route.action,
        ids,
        project: project.map(str::to_owned),
        action_name: route.action_name.map(str::to_owned),
    }
}

/// True when `segments` has exactly the pattern's length and every literal matches.
/// Whether `segments` match `pattern` (`/`-separated literals and `*`), segment for
/// segment. Walks the pattern's bytes once: most rows fail on their first segment, and
/// this runs for every row of a table until one matches.
fn pattern_matches(pattern: &str, segments: &[&str]) -> bool {
    let mut rest = pattern.as_bytes();
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            match rest.split_first() {
                Some((b'/', after)) => rest = after,
                _ => return false,
            }
        }
        let literal = segment.as_bytes();
        let ends_at = |n: usize| rest.len() == n || rest[n] == b'/';
        if rest.starts_with(literal) && ends_at(literal.len()) {
            rest = &rest[literal.len()..];
        } else if rest.first() == Some(&b'*') && ends_at(1) {
            rest = &rest[1..];
        } else {
            return false;
        }
    }
    // Segments are never empty, so an empty pattern (one empty segment) matches nothing.
    !segments.is_empty() && rest.is_empty()
}

/// The non-empty segments of a path, on the stack.
pub(crate) struct Segments<'a> {
    items: [&'a str; MAX_SEGMENTS],
    len: usize,
}

impl<'a> Segments<'a> {
    /// `None` when the path has more than [`MAX_SEGMENTS`] segments.
    pub fn parse(path: &'a str) -> Option<Segments<'a>> {
        let end = path.find(['?', '#']).unwrap_or(path.len());
        let mut items = [""; MAX_SEGMENTS];
        let mut len = 0;
        for segment in path[..end].split('/').filter(|s| !s.is_empty()) {
            *items.get_mut(len)? = segment;
            len += 1;
        }
        Some(Segments { items, len })
    }

    pub fn as_slice(&self) -> &[&'a str] {
        &self.items[..self.len]
    }
}

/// Nova's rule for a project id in a URL (`{project_id:[0-9a-f\-]+}`), used where a path
/// could be a project id or a collection name (`/v2.1/limits` is not a project).
pub fn looks_like_project_id(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= 64
        && segment.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The value of `key` in a raw query string (first occurrence, not percent-decoded).
pub(crate) fn query_param<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

/// True when the requested microversion for `service_type` is at least `major.minor`.
/// Accepts `compute 2.10`, a bare `2.10` (legacy Nova header), `latest`, and comma-separated
/// lists for several services. Absent or unparsable means the base version (false).
pub(crate) fn microversion_at_least(
    microversion: Option<&str>,
    service_type: &str,
    major: u32,
    minor: u32,
) -> bool {
    let Some(header) = microversion else {
        return false;
    };
    for entry in header.split(',') {
        let entry = entry.trim();
        let version = match entry.split_once(' ') {
            Some((ty, v)) if ty.eq_ignore_ascii_case(service_type) => v.trim(),
            Some(_) => continue,
            None => entry,
        };
        if version.eq_ignore_ascii_case("latest") {
            return true;
        }
        let Some((ma, mi)) = version.split_once('.') else {
            continue;
        };
        if let (Ok(ma), Ok(mi)) = (ma.parse::<u32>(), mi.parse::<u32>()) {
            return (ma, mi) >= (major, minor);
        }
    }
    false
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Table-test helpers shared by the service modules' tests.
    use super::*;

    /// One expected classification: method, path, resource, action, ids, project, action name.
    pub type Case = (
        &'static str,
        &'static str,
        ResourceType,
        Action,
        &'static [&'static str],
        Option<&'static str>,
        Option<&'static str>,
    );

    pub fn check(service: Service, cases: &[Case]) {
        for &(method, path, resource, action, ids, project, action_name) in cases {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let op = classify(service, &method, path, None, None);
            let expected = Operation {
                service,
                resource,
                action,
                ids: ids.iter().map(|s| s.to_string()).collect(),
                project: project.map(str::to_owned),
                action_name: action_name.map(str::to_owned),
            };
            assert_eq!(op, expected, "{method} {path}");
            // Trailing slash, doubled slashes and a query string change nothing.
            for variant in [
                format!("{path}/"),
                path.replace('/', "//"),
                format!("{path}?limit=1&marker=x"),
            ] {
                assert_eq!(
                    classify(service, &method, &variant, Some("limit=1"), None),
                    expected,
                    "{method} {variant}"
                );
            }
        }
    }

    /// Every service's route table and its table-test cases.
    pub fn tables() -> [(Service, &'static [Route], &'static [Case]); 5] {
        [
            (Service::Identity, identity::ROUTES, identity::tests::CASES),
            (Service::Compute, compute::ROUTES, compute::tests::CASES),
            (Service::Network, network::ROUTES, network::tests::CASES),
            (
                Service::BlockStorage,
                block_storage::ROUTES,
                block_storage::tests::CASES,
            ),
            (Service::Image, image::ROUTES, image::tests::CASES),
        ]
    }

    /// The index of the `table` row [`classify`] uses for `method path`, or `None` when the
    /// request is a version document or `Other`.
    ///
    /// Mirrors the services' prefix handling (`{version}/rest`, Neutron's `.json` suffix,
    /// Nova's and Cinder's optional `{project_id}`) and then checks the answer: the row must
    /// build exactly the operation `classify` returns (project aside), so a drift between
    /// this and a service's `classify` fails loudly instead of mis-attributing a case.
    pub fn matched_route(
        service: Service,
        table: &[Route],
        method: &str,
        path: &str,
    ) -> Option<usize> {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut actual = classify(service, &method, path, None, None);
        if matches!(actual.resource, ResourceType::Version | ResourceType::Other) {
            return None;
        }
        actual.project = None;
        let verb = Verb::of(&method)?;
        let segments = Segments::parse(path)?;
        let [_version, rest @ ..] = segments.as_slice() else {
            return None;
        };
        let mut rest = rest.to_vec();
        if service == Service::Network {
            if let Some(last) = rest.last_mut() {
                if let Some(stem) = last.strip_suffix(".json").filter(|s| !s.is_empty()) {
                    *last = stem;
                }
            }
        }
        let mut candidates = vec![rest.as_slice()];
        if matches!(service, Service::Compute | Service::BlockStorage) && !rest.is_empty() {
            candidates.push(&rest[1..]);
        }
        let (index, segments) = candidates.into_iter().find_map(|segments| {
            let index = table
                .iter()
                .position(|r| r.verb == verb && pattern_matches(r.pattern, segments))?;
            Some((index, segments))
        })?;
        let built = operation(service, &table[index], segments, None);
        assert_eq!(
            built, actual,
            "{service} {method} {path}: matched_route picked row {index} \
             ({:?} {}) but classify disagrees",
            table[index].verb, table[index].pattern
        );
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Every row of every route table is hit by at least one case of that service's table
    /// test, so no route (and no verb of a route) goes untested.
    #[test]
    fn every_route_row_has_a_case() {
        let mut uncovered = Vec::new();
        for (service, table, cases) in test_support::tables() {
            let mut hit = vec![false; table.len()];
            for &(method, path, ..) in cases {
                if let Some(i) = test_support::matched_route(service, table, method, path) {
                    hit[i] = true;
                }
            }
            for (i, row) in table.iter().enumerate() {
                if !hit[i] {
                    let name = row
                        .action_name
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default();
                    uncovered.push(format!(
                        "{service} ROUTES[{i}]: {:?} {} -> {}/{}{name}",
                        row.verb, row.pattern, row.resource, row.action
                    ));
                }
            }
        }
        assert!(
            uncovered.is_empty(),
            "{} route row(s) have no table-test case:\n  {}",
            uncovered.len(),
            uncovered.join("\n  ")
        );
    }

    #[test]
    fn action_names_come_from_the_single_key() {
        assert_eq!(
            action_name_from_body(&json!({"os-start": null})).as_deref(),
            Some("os-start")
        );
        assert_eq!(
            action_name_from_body(&json!({"reboot": {"type": "SOFT"}})).as_deref(),
            Some("reboot")
        );
        assert_eq!(action_name_from_body(&json!({"a": 1, "b": 2})), None);
        assert_eq!(action_name_from_body(&json!({})), None);
        assert_eq!(action_name_from_body(&json!({"": 1})), None);
        assert_eq!(action_name_from_body(&json!(["os-start"])), None);
        assert_eq!(action_name_from_body(&json!("os-start")), None);
    }

    #[test]
    fn unknown_methods_and_paths_keep_writes_as_writes() {
        let cases = [
            ("GET", Action::Read),
            ("HEAD", Action::Read),
            ("OPTIONS", Action::Read),
            ("POST", Action::Create),
            ("PUT", Action::Update),
            ("PATCH", Action::Update),
            ("DELETE", Action::Delete),
            ("PURGE", Action::Update),
        ];
        for service in Service::ALL {
            for (method, action) in cases {
                let m = Method::from_bytes(method.as_bytes()).unwrap();
                let op = classify(service, &m, "/no/such/thing/here", None, None);
                assert_eq!(op, Operation::other(service, action), "{service} {method}");
            }
        }
    }

    #[test]
    fn segments_are_bounded_and_skip_empties() {
        let s = Segments::parse("//a///b/?x=/c#d").unwrap();
        assert_eq!(s.as_slice(), ["a", "b"]);
        assert_eq!(Segments::parse("").unwrap().as_slice(), [] as [&str; 0]);
        let long = "/x".repeat(MAX_SEGMENTS);
        assert_eq!(
            Segments::parse(&long).unwrap().as_slice().len(),
            MAX_SEGMENTS
        );
        assert!(Segments::parse(&format!("{long}/y")).is_none());
    }

    #[test]
    fn weird_input_never_panics_and_is_other() {
        let long = format!("/v2.1/servers/{}", "a".repeat(100_000));
        let deep = "/v3".repeat(1000);
        let weird = [
            "",
            "/",
            "//",
            "///",
            "?",
            "#",
            "/%",
            "/%zz/%ff%fe/%00",
            "/v2.1/servers/%E0%A4%A",
            "/v2.0/networks/\u{0}/tags/\u{feff}",
            "/v2.1/servers/é/action",
            long.as_str(),
            deep.as_str(),
        ];
        for service in Service::ALL {
            for path in weird {
                for method in [
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                ] {
                    let op = classify(
                        service,
                        &method,
                        path,
                        Some("&&=&user_id"),
                        Some("compute x.y, latest"),
                    );
                    assert_eq!(op.service, service);
                }
            }
            let deep_op = classify(service, &Method::DELETE, &deep, None, None);
            assert_eq!(deep_op, Operation::other(service, Action::Delete));
        }
    }

    #[test]
    fn microversions_parse_safely() {
        assert!(microversion_at_least(
            Some("compute 2.10"),
            "compute",
            2,
            10
        ));
        assert!(microversion_at_least(Some("2.79"), "compute", 2, 10));
        assert!(microversion_at_least(
            Some("compute latest"),
            "compute",
            2,
            10
        ));
        assert!(microversion_at_least(
            Some("volume 3.0, compute 2.11"),
            "compute",
            2,
            10
        ));
        assert!(!microversion_at_least(
            Some("compute 2.9"),
            "compute",
            2,
            10
        ));
        assert!(!microversion_at_least(
            Some("volume 3.70"),
            "compute",
            2,
            10
        ));
        assert!(!microversion_at_least(
            Some("compute 2.x"),
            "compute",
            2,
            10
        ));
        assert!(!microversion_at_least(Some(""), "compute", 2, 10));
        assert!(!microversion_at_least(None, "compute", 2, 10));
    }

    #[test]
    fn query_params_are_found_raw() {
        assert_eq!(
            query_param(Some("a=1&user_id=u%201&b"), "user_id"),
            Some("u%201")
        );
        assert_eq!(query_param(Some("user_id"), "user_id"), Some(""));
        assert_eq!(query_param(Some("xuser_id=1"), "user_id"), None);
        assert_eq!(query_param(None, "user_id"), None);
    }

    proptest! {
        #[test]
        fn pattern_matching_agrees_with_splitting(
            pattern in "[a-c*/]{0,8}",
            segments in prop::collection::vec("[a-c*]{1,2}", 0..4),
        ) {
            let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
            let split: Vec<&str> = pattern.split('/').collect();
            let expected = split.len() == segments.len()
                && split.iter().zip(&segments).all(|(p, s)| *p == "*" || p == s);
            prop_assert_eq!(pattern_matches(&pattern, &segments), expected);
        }

        #[test]
        fn classify_never_panics(
            path in ".{0,300}",
            query in proptest::option::of(".{0,60}"),
            mv in proptest::option::of(".{0,30}"),
            method in prop::sample::select(vec!["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "X"]),
            service in prop::sample::select(Service::ALL.to_vec()),
        ) {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let op = classify(service, &m, &path, query.as_deref(), mv.as_deref());
            prop_assert_eq!(op.service, service);
            prop_assert!(op.ids.len() <= MAX_SEGMENTS);
        }

        #[test]
        fn classify_never_panics_on_route_like_paths(
            parts in prop::collection::vec(
                prop::sample::select(vec![
                    "v2.1", "v2.0", "v3", "v2", "servers", "action", "tags", "metadata", "os-keypairs",
                    "projects", "users", "roles", "groups", "domains", "networks", "routers", "images",
                    "file", "volumes", "types", "extra_specs", "x.json", "%2F", "", "é", "*",
                ]),
                0..14,
            ),
            service in prop::sample::select(Service::ALL.to_vec()),
        ) {
            let path = format!("/{}", parts.join("/"));
            for m in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
                let op = classify(service, &m, &path, None, None);
                // Writes are never classified as reads, whatever the path.
                if m != Method::GET {
                    prop_assert!(op.action.is_mutating(), "{} {} -> {:?}", m, path, op);
                }
            }
        }
    }
}
