//! Pure request helpers of the policy stage: which protected resource a call touches, which
//! tier it asks for, what a create demands of the recovery site, and how the decided tier is
//! written into the create body (or, for Neutron, tagged right after the create).
//!
//! Nothing here does I/O; every function is table-tested in `tests/tests/policy_*.rs`.

use drgw_policies::{ResourceKind, Resources};
use http::{HeaderMap, Method};
use serde_json::{Map, Value};

use crate::operation::{Action, Operation, ResourceType, Service};

/// Metadata key and Glance property that carry the tier.
pub const TIER_PROPERTY: &str = "dr_tier";
/// Prefix of the Neutron and Keystone tag that carries the tier (`dr-tier:<tier>`).
pub const TIER_TAG_PREFIX: &str = "dr-tier:";
/// The request header a tenant may use to ask for a tier.
pub const TIER_HEADER: &str = "x-dr-tier";

/// The resources the policy stage tags with their tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtectedKind {
    Server,
    Volume,
    Image,
    Project,
    Network,
    Subnet,
    Router,
    SecurityGroup,
    Port,
    FloatingIp,
}

impl ProtectedKind {
    pub const ALL: [ProtectedKind; 10] = [
        ProtectedKind::Server,
        ProtectedKind::Volume,
        ProtectedKind::Image,
        ProtectedKind::Project,
        ProtectedKind::Network,
        ProtectedKind::Subnet,
        ProtectedKind::Router,
        ProtectedKind::SecurityGroup,
        ProtectedKind::Port,
        ProtectedKind::FloatingIp,
    ];

    /// The service that owns the resource.
    pub fn service(self) -> Service {
        match self {
            ProtectedKind::Server => Service::Compute,
            ProtectedKind::Volume => Service::BlockStorage,
            ProtectedKind::Image => Service::Image,
            ProtectedKind::Project => Service::Identity,
            _ => Service::Network,
        }
    }

    /// The matching classification resource type.
    pub fn resource_type(self) -> ResourceType {
        match self {
            ProtectedKind::Server => ResourceType::Server,
            ProtectedKind::Volume => ResourceType::Volume,
            ProtectedKind::Image => ResourceType::Image,
            ProtectedKind::Project => ResourceType::Project,
            ProtectedKind::Network => ResourceType::Network,
            ProtectedKind::Subnet => ResourceType::Subnet,
            ProtectedKind::Router => ResourceType::Router,
            ProtectedKind::SecurityGroup => ResourceType::SecurityGroup,
            ProtectedKind::Port => ResourceType::Port,
            ProtectedKind::FloatingIp => ResourceType::FloatingIp,
        }
    }

    /// The kind for a classified resource type, if the stage tags it.
    pub fn from_resource_type(resource: ResourceType) -> Option<ProtectedKind> {
        ProtectedKind::ALL
            .into_iter()
            .find(|k| k.resource_type() == resource)
    }

    /// The JSON key wrapping the resource in Nova, Cinder, Keystone and Neutron bodies
    /// (`server`, `floatingip`, `security_group`, ...); `None` for Glance (unwrapped).
    pub fn body_key(self) -> Option<&'static str> {
        Some(match self {
            ProtectedKind::Server => "server",
            ProtectedKind::Volume => "volume",
            ProtectedKind::Image => return None,
            ProtectedKind::Project => "project",
            ProtectedKind::Network => "network",
            ProtectedKind::Subnet => "subnet",
            ProtectedKind::Router => "router",
            ProtectedKind::SecurityGroup => "security_group",
            ProtectedKind::Port => "port",
            ProtectedKind::FloatingIp => "floatingip",
        })
    }

    /// The JSON key of a Neutron bulk create's list (`{"networks": [...]}`); `None` for
    /// the other services, which have no bulk creates.
    pub fn bulk_key(self) -> Option<&'static str> {
        Some(match self {
            ProtectedKind::Network => "networks",
            ProtectedKind::Subnet => "subnets",
            ProtectedKind::Router => "routers",
            ProtectedKind::SecurityGroup => "security_groups",
            ProtectedKind::Port => "ports",
            ProtectedKind::FloatingIp => "floatingips",
            _ => return None,
        })
    }

    /// The Neutron collection in URLs (`networks`, `security-groups`, `floatingips`).
    fn neutron_collection(self) -> Option<&'static str> {
        Some(match self {
            ProtectedKind::Network => "networks",
            ProtectedKind::Subnet => "subnets",
            ProtectedKind::Router => "routers",
            ProtectedKind::SecurityGroup => "security-groups",
            ProtectedKind::Port => "ports",
            ProtectedKind::FloatingIp => "floatingips",
            _ => return None,
        })
    }

    /// The recovery-capacity quota kind, if quotas count this resource.
    pub fn quota_kind(self) -> Option<ResourceKind> {
        Some(match self {
            ProtectedKind::Server => ResourceKind::Server,
            ProtectedKind::Volume => ResourceKind::Volume,
            ProtectedKind::Image => ResourceKind::Image,
            ProtectedKind::Project => return None,
            ProtectedKind::Network => ResourceKind::Network,
            ProtectedKind::Subnet => ResourceKind::Subnet,
            ProtectedKind::Router => ResourceKind::Router,
            ProtectedKind::SecurityGroup => ResourceKind::SecurityGroup,
            ProtectedKind::Port => ResourceKind::Port,
            ProtectedKind::FloatingIp => ResourceKind::FloatingIp,
        })
    }

    /// The usage-counter kind and `drgw_protected_resources` label: the quota key
    /// (`servers`, `floating_ips`, ...), `projects` for projects.
    pub fn counter_kind(self) -> &'static str {
        self.quota_kind().map_or("projects", ResourceKind::key)
    }

    /// How the tier is written on the resource: in the create body, or as a Neutron tag
    /// after the create.
    pub fn tags_after_create(self) -> bool {
        self.service() == Service::Network
    }
}

/// A call on a protected resource: what kind, what it does, the id when the path names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: ProtectedKind,
    pub action: Action,
    pub id: Option<String>,
}

/// Recognises the protected resources' collection and item paths by hand, for paths the
/// classifier still reports as `Other`:
///
/// | service  | collection (POST = create)                  | item (PUT/PATCH/DELETE)  |
/// |----------|---------------------------------------------|--------------------------|
/// | compute  | `/v2.1/servers`, `/v2.1/{project}/servers`   | `.../servers/{id}`       |
/// | volume   | `/v3/{project}/volumes`                      | `.../volumes/{id}`       |
/// | image    | `/v2/images`                                 | `/v2/images/{id}`        |
/// | identity | `/v3/projects`                               | `/v3/projects/{id}`      |
/// | network  | `/v2.0/{networks,subnets,routers,security-groups,ports,floatingips}` | `.../{id}` |
///
/// A trailing slash is tolerated; `.json` suffixes and deeper paths are not protected here.
pub fn recognise(service: Service, method: &Method, path: &str) -> Option<Target> {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (kind, rest): (ProtectedKind, &[&str]) = match (service, segments.as_slice()) {
        (Service::Compute, ["v2" | "v2.1", "servers", rest @ ..]) => (ProtectedKind::Server, rest),
        (Service::Compute, ["v2" | "v2.1", _, "servers", rest @ ..]) => {
            (ProtectedKind::Server, rest)
        }
        (Service::BlockStorage, ["v2" | "v3", _, "volumes", rest @ ..]) => {
            (ProtectedKind::Volume, rest)
        }
        (Service::Image, ["v2", "images", rest @ ..]) => (ProtectedKind::Image, rest),
        (Service::Identity, ["v3", "projects", rest @ ..]) => (ProtectedKind::Project, rest),
        (Service::Network, ["v2.0", collection, rest @ ..]) => (neutron_kind(collection)?, rest),
        _ => return None,
    };
    match (rest, method) {
        ([], &Method::POST) => Some(Target {
            kind,
            action: Action::Create,
            id: None,
        }),
        // Nova's `servers/detail` is a read, never an id.
        (["detail"], _) => None,
        ([id], m) => {
            let action = match *m {
                Method::PUT | Method::PATCH => Action::Update,
                Method::DELETE => Action::Delete,
                _ => return None,
            };
            Some(Target {
                kind,
                action,
                id: Some((*id).to_owned()),
            })
        }
        _ => None,
    }
}

fn neutron_kind(collection: &str) -> Option<ProtectedKind> {
    ProtectedKind::ALL
        .into_iter()
        .find(|k| k.neutron_collection() == Some(collection))
}

/// The protected target of a call: from the classified `op` when classification knows the
/// resource, else from [`recognise`]. `None` for reads and everything the stage leaves
/// alone.
pub fn target(op: &Operation, method: &Method, path: &str) -> Option<Target> {
    if !op.action.is_mutating() {
        return None;
    }
    if op.resource == ResourceType::Other {
        return recognise(op.service, method, path);
    }
    let kind = ProtectedKind::from_resource_type(op.resource)?;
    Some(Target {
        kind,
        action: op.action,
        id: op.target_id().map(str::to_owned),
    })
}

/// Why a requested tier cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TierRequestError {
    #[error("the request asks for two different DR tiers: {0} and {1}")]
    Conflict(String, String),
    #[error("the DR tier must be a non-empty string")]
    NotAString,
}

/// The tier a request asks for. Precedence: what the body carries (metadata or property
/// `dr_tier`, or a `dr-tier:<tier>` tag) — the value that ends up on the resource — then
/// the `X-DR-Tier` header. When both are given they must agree (ignoring ASCII case),
/// else the request is refused rather than one of them silently winning.
pub fn requested_tier(
    kind: Option<ProtectedKind>,
    body: Option<&Value>,
    headers: &HeaderMap,
) -> Result<Option<String>, TierRequestError> {
    let from_body = match body {
        Some(b) => body_tier(kind, b)?,
        None => None,
    };
    match (from_body, header_tier(headers)?) {
        (Some(b), Some(h)) if !b.eq_ignore_ascii_case(&h) => Err(TierRequestError::Conflict(b, h)),
        (Some(b), _) => Ok(Some(b)),
        (None, h) => Ok(h),
    }
}

/// The tier named by the `X-DR-Tier` header, if present.
pub fn header_tier(headers: &HeaderMap) -> Result<Option<String>, TierRequestError> {
    match headers.get(TIER_HEADER) {
        Some(v) => {
            let text = v.to_str().map_err(|_| TierRequestError::NotAString)?.trim();
            if text.is_empty() {
                return Err(TierRequestError::NotAString);
            }
            Ok(Some(text.to_owned()))
        }
        None => Ok(None),
    }
}

/// The tier named inside a body, wherever the resource's service carries it: metadata
/// `dr_tier` (Nova, Cinder; also a bare `{"metadata": ...}` sub-resource body), a
/// `dr-tier:<tier>` tag (Keystone, Neutron), Glance's `dr_tier` property (create) or a
/// JSON-patch op on `/dr_tier` (update).
pub fn body_tier(
    kind: Option<ProtectedKind>,
    body: &Value,
) -> Result<Option<String>, TierRequestError> {
    let mut found: Option<String> = None;
    let wrapped = kind
        .and_then(ProtectedKind::body_key)
        .and_then(|k| body.get(k));
    let items = kind.and_then(|k| bulk_items(k, body)).into_iter().flatten();
    for object in [Some(body), wrapped].into_iter().flatten().chain(items) {
        if let Some(v) = object.pointer("/metadata/dr_tier") {
            note(&mut found, v.as_str())?;
        }
        if let Some(tags) = object.get("tags").and_then(Value::as_array) {
            for tag in tags.iter().filter_map(Value::as_str) {
                if let Some(tier) = tag.strip_prefix(TIER_TAG_PREFIX) {
                    note(&mut found, Some(tier))?;
                }
            }
        }
    }
    if kind.is_none_or(|k| k == ProtectedKind::Image) {
        if let Some(v) = body.get(TIER_PROPERTY) {
            note(&mut found, v.as_str())?;
        }
        if let Some(ops) = body.as_array() {
            for op in ops.iter().filter_map(Value::as_object) {
                if let Some(("add" | "replace", "/dr_tier")) = crate::services::image::patch_op(op)
                {
                    note(&mut found, op.get("value").and_then(Value::as_str))?;
                }
            }
        }
    }
    Ok(found)
}

/// A tag set naming exactly two tiers, one of them `current` (the resource's tier): the
/// other is the one asked for. Rewrites the body's tier tags to just that one and returns
/// it; `None` (body untouched) in every other case.
pub fn settle_retier(
    kind: Option<ProtectedKind>,
    body: &mut Value,
    current: &str,
) -> Option<String> {
    let mut tiers: Vec<String> = Vec::new();
    let mut seen = |object: &Value| {
        for tag in object
            .get("tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if let Some(tier) = tag.strip_prefix(TIER_TAG_PREFIX) {
                if !tiers.iter().any(|t| t.eq_ignore_ascii_case(tier)) {
                    tiers.push(tier.to_string());
                }
            }
        }
    };
    seen(body);
    if let Some(inner) = kind
        .and_then(ProtectedKind::body_key)
        .and_then(|k| body.get(k))
    {
        seen(inner);
    }
    if tiers.len() != 2 || !tiers.iter().any(|t| t.eq_ignore_ascii_case(current)) {
        return None;
    }
    let new = tiers
        .into_iter()
        .find(|t| !t.eq_ignore_ascii_case(current))?;
    let tag = format!("{TIER_TAG_PREFIX}{new}");
    if let Some(obj) = body.as_object_mut() {
        if obj.get("tags").is_some_and(Value::is_array) {
            set_tier_tag(obj, Some(&tag));
        }
    }
    if let Some(obj) = kind
        .and_then(ProtectedKind::body_key)
        .and_then(|k| body.get_mut(k))
        .and_then(Value::as_object_mut)
    {
        if obj.get("tags").is_some_and(Value::is_array) {
            set_tier_tag(obj, Some(&tag));
        }
    }
    Some(new)
}

/// Records one place that names a tier; two places must agree.
fn note(found: &mut Option<String>, value: Option<&str>) -> Result<(), TierRequestError> {
    let text = value
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(TierRequestError::NotAString)?;
    match found {
        Some(prev) if !prev.eq_ignore_ascii_case(text) => {
            Err(TierRequestError::Conflict(prev.clone(), text.to_owned()))
        }
        Some(_) => Ok(()),
        None => {
            *found = Some(text.to_owned());
            Ok(())
        }
    }
}

/// What a create asks of the recovery site, apart from a server's flavor (looked up
/// separately): one resource of its kind (`max_count` servers), and a volume's size.
pub fn base_demand(kind: ProtectedKind, body: Option<&Value>) -> Resources {
    let Some(quota_kind) = kind.quota_kind() else {
        return Resources::ZERO;
    };
    if let Some(items) = body.and_then(|b| bulk_items(kind, b)) {
        // A Neutron bulk create: one of its kind per item (Neutron kinds count nothing else).
        return Resources::ZERO.with_count(quota_kind, items.len() as u64);
    }
    let object = kind.body_key().and_then(|k| body.and_then(|b| b.get(k)));
    let mut demand = Resources::ZERO.with_count(quota_kind, 1);
    match kind {
        ProtectedKind::Server => {
            demand = demand.with_count(quota_kind, server_count(object));
        }
        ProtectedKind::Volume => {
            demand.volume_gb = object
                .and_then(|v| v.get("size"))
                .and_then(json_u64)
                .unwrap_or(0);
        }
        _ => {}
    }
    demand
}

/// How many servers a create starts: `max_count`, else `min_count`, else one.
pub fn server_count(server: Option<&Value>) -> u64 {
    let get = |k: &str| server.and_then(|s| s.get(k)).and_then(json_u64);
    get("max_count")
        .or_else(|| get("min_count"))
        .unwrap_or(1)
        .max(1)
}

/// A non-negative integer, also when sent as a string (`"size": "10"`).
fn json_u64(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The flavor id a server create refers to: `flavorRef` may be an id or a URL.
pub fn flavor_ref(body: &Value) -> Option<&str> {
    let r = body.pointer("/server/flavorRef")?.as_str()?;
    let id = r.trim_end_matches('/').rsplit('/').next()?;
    (!id.is_empty()).then_some(id)
}

/// The volume type a volume create asks for.
pub fn volume_type(body: &Value) -> Option<&str> {
    body.pointer("/volume/volume_type")?.as_str()
}

/// Writes `tier` into a create body the way the resource's service stores it and applies
/// the volume type rewrite. Returns the Neutron tag to add after the create, if any.
/// Bodies that are not JSON objects of the expected shape are left alone (the upstream
/// answers them with its own 400).
pub fn tag_create_body(
    kind: ProtectedKind,
    body: Option<&mut Value>,
    tier: &str,
    volume_type: Option<&str>,
) -> Option<String> {
    let tag = format!("{TIER_TAG_PREFIX}{tier}");
    let Some(body) = body else {
        return kind.tags_after_create().then_some(tag);
    };
    match kind {
        ProtectedKind::Image => {
            if let Some(obj) = body.as_object_mut() {
                obj.insert(TIER_PROPERTY.into(), Value::from(tier));
            }
            None
        }
        ProtectedKind::Server | ProtectedKind::Volume => {
            if let Some(obj) = wrapped_object(kind, body) {
                let metadata = obj
                    .entry("metadata")
                    .or_insert_with(|| Value::Object(Map::new()));
                if !metadata.is_object() {
                    *metadata = Value::Object(Map::new());
                }
                if let Some(m) = metadata.as_object_mut() {
                    m.insert(TIER_PROPERTY.into(), Value::from(tier));
                }
                if let Some(vt) = volume_type {
                    obj.insert("volume_type".into(), Value::from(vt));
                }
            }
            None
        }
        ProtectedKind::Project => {
            if let Some(obj) = wrapped_object(kind, body) {
                set_tier_tag(obj, Some(&tag));
            }
            None
        }
        _ => {
            // Neutron: no tags in create bodies; drop a requested tier tag, tag afterwards.
            if let Some(obj) = wrapped_object(kind, body) {
                set_tier_tag(obj, None);
            }
            let items = kind
                .bulk_key()
                .and_then(|k| body.get_mut(k))
                .and_then(Value::as_array_mut);
            for obj in items.into_iter().flatten().filter_map(Value::as_object_mut) {
                set_tier_tag(obj, None);
            }
            Some(tag)
        }
    }
}

/// The items of a Neutron bulk create body (`{"networks": [{...}, ...]}`), or of its
/// answer, which lists the created resources in the same order.
pub fn bulk_items(kind: ProtectedKind, body: &Value) -> Option<&Vec<Value>> {
    body.get(kind.bulk_key()?)?.as_array()
}

/// The ids of the resources a create returned: one for a single create, one per item for
/// a Neutron bulk create.
pub fn created_ids(kind: ProtectedKind, response: &Value) -> Vec<&str> {
    match bulk_items(kind, response) {
        Some(items) => items
            .iter()
            .filter_map(|i| i.get("id").and_then(Value::as_str))
            .collect(),
        None => created_id(kind, response).into_iter().collect(),
    }
}

fn wrapped_object(kind: ProtectedKind, body: &mut Value) -> Option<&mut Map<String, Value>> {
    body.get_mut(kind.body_key()?)?.as_object_mut()
}

/// Replaces the `dr-tier:*` entries of the object's `tags` with `tag` (none: just drops
/// them, and drops `tags` when nothing else is left). Other tags keep their order.
fn set_tier_tag(obj: &mut Map<String, Value>, tag: Option<&str>) {
    let mut list = match obj.get_mut("tags") {
        Some(Value::Array(list)) => std::mem::take(list),
        _ => Vec::new(),
    };
    list.retain(|t| !t.as_str().is_some_and(|s| s.starts_with(TIER_TAG_PREFIX)));
    if let Some(tag) = tag {
        list.push(Value::from(tag));
    }
    if list.is_empty() && tag.is_none() {
        obj.remove("tags");
    } else {
        obj.insert("tags".into(), Value::Array(list));
    }
}

/// The id of the resource a create returned (`{"network": {"id": ...}}`, Glance's
/// top-level `id`).
pub fn created_id(kind: ProtectedKind, response: &Value) -> Option<&str> {
    let object = match kind.body_key() {
        Some(k) => response.get(k)?,
        None => response,
    };
    object.get("id")?.as_str()
}

/// The Neutron path that adds `tag` to the resource a create returned, relative to the
/// Neutron base URL: `/v2.0/networks/<id>/tags/dr-tier:silver`. `create_path` is the
/// create's path (`/v2.0/networks`); `None` when it is not a Neutron create of a protected
/// collection or the response has no id. The id is percent-checked: only characters that
/// are safe in a path segment are accepted.
pub fn neutron_tag_path(create_path: &str, response: &Value, tag: &str) -> Option<String> {
    let target = recognise(Service::Network, &Method::POST, create_path)?;
    let collection = target.kind.neutron_collection()?;
    let id = created_id(target.kind, response)?;
    let safe = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    };
    if !safe(id) || !safe(tag) {
        return None;
    }
    Some(format!("/v2.0/{collection}/{id}/tags/{tag}"))
}

/// Adds `tag` to the `tags` list of the resource in a Neutron create response, so that the
/// tenant sees it at once, as Neutron has it after the tag was put: with the
/// `revision_number` one higher, since Neutron counts a tag change as a revision (a show
/// right after the create must match the create's answer; tempest's port tests check
/// it). Returns false when the response has no such object.
pub fn add_tag_to_response(response: &mut Value, tag: &str) -> bool {
    let Some(obj) = response.as_object_mut() else {
        return false;
    };
    // The only key of a Neutron create response is the resource's.
    let Some(inner) = obj.values_mut().find_map(Value::as_object_mut) else {
        return false;
    };
    let had_it = inner
        .get("tags")
        .and_then(Value::as_array)
        .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(tag)));
    set_tier_tag(inner, Some(tag));
    if !had_it {
        if let Some(revision) = inner.get("revision_number").and_then(Value::as_u64) {
            inner.insert("revision_number".into(), Value::from(revision + 1));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_tagged_create_answer_shows_the_tag_and_the_revision_it_made() {
        let mut answer = json!({"port": {"id": "p", "tags": [], "revision_number": 1}});
        assert!(add_tag_to_response(&mut answer, "dr-tier:bronze"));
        assert_eq!(
            answer,
            json!({"port": {"id": "p", "tags": ["dr-tier:bronze"], "revision_number": 2}})
        );
        // Already there (no new revision), and a Neutron without revisions.
        assert!(add_tag_to_response(&mut answer, "dr-tier:bronze"));
        assert_eq!(answer["port"]["revision_number"], 2);
        let mut bare = json!({"network": {"id": "n"}});
        assert!(add_tag_to_response(&mut bare, "dr-tier:gold"));
        assert_eq!(
            bare,
            json!({"network": {"id": "n", "tags": ["dr-tier:gold"]}})
        );
    }

    #[test]
    fn a_tag_set_with_the_current_and_a_new_tier_asks_for_the_new_one() {
        let mut body = json!({"tags": ["web", "dr-tier:silver", "dr-tier:bronze"]});
        assert_eq!(
            settle_retier(Some(ProtectedKind::Network), &mut body, "Silver").as_deref(),
            Some("bronze")
        );
        assert_eq!(body, json!({"tags": ["web", "dr-tier:bronze"]}));
        assert_eq!(
            body_tier(Some(ProtectedKind::Network), &body)
                .unwrap()
                .as_deref(),
            Some("bronze")
        );

        // Neither is the current tier, or three tiers: still ambiguous, left alone.
        let mut two_new = json!({"tags": ["dr-tier:gold", "dr-tier:bronze"]});
        assert_eq!(settle_retier(None, &mut two_new, "silver"), None);
        assert_eq!(two_new["tags"].as_array().map(Vec::len), Some(2));
        let mut three = json!({"tags": ["dr-tier:gold", "dr-tier:bronze", "dr-tier:silver"]});
        assert_eq!(settle_retier(None, &mut three, "silver"), None);
        // Only the current tier: nothing to settle.
        let mut same = json!({"tags": ["dr-tier:silver"]});
        assert_eq!(settle_retier(None, &mut same, "silver"), None);
    }

    #[test]
    fn an_image_update_asks_a_tier_in_either_patch_form() {
        let kind = Some(ProtectedKind::Image);
        for patch in [
            json!([{"op": "replace", "path": "/dr_tier", "value": "gold"}]),
            json!([{"replace": "/dr_tier", "value": "gold"}]),
            json!([{"add": "/dr_tier", "value": "gold"}, {"replace": "/name", "value": "x"}]),
        ] {
            assert_eq!(
                body_tier(kind, &patch).unwrap().as_deref(),
                Some("gold"),
                "{patch}"
            );
        }
        for patch in [
            json!([{"remove": "/dr_tier"}]),
            json!([{"op": "remove", "path": "/dr_tier"}]),
            json!([{"replace": "/name", "value": "gold"}]),
        ] {
            assert_eq!(body_tier(kind, &patch).unwrap(), None, "{patch}");
        }
    }

    #[test]
    fn a_bulk_create_asks_one_tier_counts_each_item_and_loses_its_tier_tags() {
        let kind = Some(ProtectedKind::Network);
        let agreeing = json!({"networks": [{"name": "a"}, {"tags": ["dr-tier:gold"]}]});
        assert_eq!(body_tier(kind, &agreeing).unwrap().as_deref(), Some("gold"));
        let split = json!({"networks": [{"tags": ["dr-tier:gold"]}, {"tags": ["dr-tier:bronze"]}]});
        assert!(matches!(
            body_tier(kind, &split),
            Err(TierRequestError::Conflict(_, _))
        ));

        let demand = base_demand(ProtectedKind::Network, Some(&agreeing));
        assert_eq!(
            demand,
            Resources::ZERO.with_count(drgw_policies::ResourceKind::Network, 2)
        );

        let mut body = json!({"networks": [{"name": "a", "tags": ["dr-tier:gold", "x"]}]});
        let tag = tag_create_body(ProtectedKind::Network, Some(&mut body), "gold", None);
        assert_eq!(tag.as_deref(), Some("dr-tier:gold"));
        assert_eq!(body, json!({"networks": [{"name": "a", "tags": ["x"]}]}));

        let answer = json!({"networks": [{"id": "1"}, {"id": "2"}]});
        assert_eq!(created_ids(ProtectedKind::Network, &answer), ["1", "2"]);
        let single = json!({"network": {"id": "1"}});
        assert_eq!(created_ids(ProtectedKind::Network, &single), ["1"]);
    }
}
