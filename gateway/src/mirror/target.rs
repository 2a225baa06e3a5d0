//! What the mirror does with one call, as pure functions over data: which mirrored resource a
//! `(service, method, path, body)` addresses ([`mirror_target`]), where its references to other
//! resources sit ([`Reference`]), and the normalised request journaled for the recovery site
//! ([`normalise`]).
//!
//! The same [`mirror_target`] runs twice: on the tenant's call at submit time, and on the
//! journaled (normalised) request at apply time to find the references to translate. Both
//! shapes are the API's own, so the journal needs no extra reference list and a record stays
//! readable as a plain OpenStack request.

use serde_json::{json, Value};

use crate::operation::{ResourceType, Service};

/// A mirrored resource kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Flavor,
    FlavorExtraSpec,
    FlavorAccess,
    Keypair,
    Network,
    Subnet,
    Router,
    RouterInterface,
    SecurityGroup,
    SecurityGroupRule,
    NetworkTag,
    VolumeType,
    VolumeTypeExtraSpec,
    VolumeTypeAccess,
    Image,
    ImageTag,
    Domain,
    Project,
    ProjectTag,
    User,
    Group,
    GroupMembership,
    RoleAssignment,
    // Workloads: protection records only.
    Server,
    Volume,
    Port,
    FloatingIp,
}

impl Kind {
    /// The operation vocabulary's resource type (journal `resource_type`, metric label).
    pub fn resource_type(self) -> ResourceType {
        use Kind::*;
        match self {
            Flavor => ResourceType::Flavor,
            FlavorExtraSpec => ResourceType::FlavorExtraSpec,
            FlavorAccess => ResourceType::FlavorAccess,
            Keypair => ResourceType::Keypair,
            Network => ResourceType::Network,
            Subnet => ResourceType::Subnet,
            Router => ResourceType::Router,
            RouterInterface => ResourceType::RouterInterface,
            SecurityGroup => ResourceType::SecurityGroup,
            SecurityGroupRule => ResourceType::SecurityGroupRule,
            NetworkTag => ResourceType::NetworkTag,
            VolumeType => ResourceType::VolumeType,
            VolumeTypeExtraSpec | VolumeTypeAccess => ResourceType::VolumeTypeExtraSpec,
            Image => ResourceType::Image,
            ImageTag => ResourceType::ImageTag,
            Domain => ResourceType::Domain,
            Project => ResourceType::Project,
            ProjectTag => ResourceType::ProjectTag,
            User => ResourceType::User,
            Group => ResourceType::Group,
            GroupMembership => ResourceType::GroupMembership,
            RoleAssignment => ResourceType::RoleAssignment,
            Server => ResourceType::Server,
            Volume => ResourceType::Volume,
            Port => ResourceType::Port,
            FloatingIp => ResourceType::FloatingIp,
        }
    }

    /// Whether the kind is a workload (stored as a protection record, not created).
    pub fn is_workload(self) -> bool {
        matches!(
            self,
            Kind::Server | Kind::Volume | Kind::Port | Kind::FloatingIp
        )
    }
}

/// What the mirror does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorAction {
    Create,
    Update,
    Delete,
    /// Store a workload's specification (protection record).
    Protect,
    /// Drop a workload's protection record.
    Unprotect,
}

impl MirrorAction {
    /// The journal's `action` string.
    pub fn as_str(self) -> &'static str {
        match self {
            MirrorAction::Create => "create",
            MirrorAction::Update => "update",
            MirrorAction::Delete => "delete",
            MirrorAction::Protect => "protect",
            MirrorAction::Unprotect => "unprotect",
        }
    }
}

/// The ID-map key space of a resource: (service, resource type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdType {
    pub service: Service,
    pub resource: ResourceType,
}

impl IdType {
    const fn new(service: Service, resource: ResourceType) -> IdType {
        IdType { service, resource }
    }

    /// Whether the recovery copy keeps the primary ID (the API lets the caller choose it).
    pub fn keeps_id(self) -> bool {
        matches!(self.resource, ResourceType::Flavor | ResourceType::Image)
    }

    /// Whether what belongs to the resource outlives it at the services, so that later
    /// changes still name it after its delete: Nova keeps a Keystone user's keypairs (an
    /// admin deletes them with `?user_id=` of the gone user), Nova and Cinder keep a
    /// project's access to private flavors and volume types (removed by the gone project's
    /// ID). Its mapping is retired on delete, not forgotten (see
    /// [`crate::state::idmap::IdMap::retire`]).
    pub fn outlived_by_its_children(self) -> bool {
        self == USER || self == PROJECT
    }
}

pub const FLAVOR: IdType = IdType::new(Service::Compute, ResourceType::Flavor);
pub const NETWORK: IdType = IdType::new(Service::Network, ResourceType::Network);
pub const SUBNET: IdType = IdType::new(Service::Network, ResourceType::Subnet);
pub const ROUTER: IdType = IdType::new(Service::Network, ResourceType::Router);
pub const SECURITY_GROUP: IdType = IdType::new(Service::Network, ResourceType::SecurityGroup);
pub const SECURITY_GROUP_RULE: IdType =
    IdType::new(Service::Network, ResourceType::SecurityGroupRule);
pub const VOLUME_TYPE: IdType = IdType::new(Service::BlockStorage, ResourceType::VolumeType);
pub const IMAGE: IdType = IdType::new(Service::Image, ResourceType::Image);
pub const DOMAIN: IdType = IdType::new(Service::Identity, ResourceType::Domain);
pub const PROJECT: IdType = IdType::new(Service::Identity, ResourceType::Project);
pub const USER: IdType = IdType::new(Service::Identity, ResourceType::User);
pub const GROUP: IdType = IdType::new(Service::Identity, ResourceType::Group);
pub const ROLE: IdType = IdType::new(Service::Identity, ResourceType::Role);

/// Where a reference sits in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A path segment (index after the leading `/`).
    Segment(usize),
    /// A JSON pointer into the body.
    Pointer(String),
    /// Each element of the array at `array`: the element itself (a string) or its `field`.
    Each {
        array: String,
        field: Option<&'static str>,
    },
    /// A query parameter.
    Query(&'static str),
    /// The `value` of each JSON-patch operation that adds or replaces this path (Glance's
    /// image updates, in the form [`image_patch_v2_1`] gives them).
    PatchValue(&'static str),
}

/// What a reference needs at apply time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// It must translate: unmapped, it is mirrored from the source site first.
    Mirrored,
    /// Kept as it is when unmapped (it may be a name, e.g. a volume type by name).
    IfMapped,
    /// Mirrored like [`Need::Mirrored`] when it names a resource at the source site, kept as
    /// it is when it names none: the service takes any string there (Glance's `owner`).
    IfItExists,
    /// Mirrored like [`Need::Mirrored`], or, when what it names was deleted at both sites and
    /// its mapping retired ([`IdType::outlived_by_its_children`]), the retired copy's ID: the
    /// delete of what outlived it (a deleted user's keypair, a deleted project's access to a
    /// private flavor or volume type).
    OrRetired,
}

/// What a reference points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefTarget {
    /// A resource translated through the ID map.
    Id(IdType),
    /// The project of the gateway's service account at the recovery site (Cinder's
    /// `/v3/{project_id}` path segment).
    ServiceProject,
}

/// One reference to translate at apply time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub at: Location,
    pub to: RefTarget,
    pub need: Need,
    /// A short name for reasons (`network_id`, `project`).
    pub name: &'static str,
}

fn r(at: Location, to: IdType, name: &'static str) -> Reference {
    Reference {
        at,
        to: RefTarget::Id(to),
        need: Need::Mirrored,
        name,
    }
}

fn soft(at: Location, to: IdType, name: &'static str) -> Reference {
    Reference {
        need: Need::IfMapped,
        ..r(at, to, name)
    }
}

/// The project a flavor's or volume type's access action names (`addTenantAccess`,
/// `removeProjectAccess`, ...). Nova and Cinder remove the access of a deleted project
/// (Nova: "It doesn't really matter if project exists or not"), so a removal's project may
/// be one deleted at both sites: its retired mapping names the copy.
fn access_project(action: &str, pointer: &str, name: &'static str) -> Reference {
    let need = if action.starts_with("remove") {
        Need::OrRetired
    } else {
        Need::Mirrored
    };
    Reference {
        need,
        ..r(ptr(pointer), PROJECT, name)
    }
}

/// The resource's own ID repeated in an update body, which Keystone takes when it is the
/// ID in the path (tempest sends it): the recovery ID there, or Keystone answers "Cannot
/// change ID".
fn own_id(pointer: &str, to: IdType) -> Reference {
    soft(ptr(pointer), to, "id")
}

fn ptr(p: &str) -> Location {
    Location::Pointer(p.to_string())
}

/// A recognised mirrored call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: Kind,
    pub action: MirrorAction,
    pub service: Service,
    /// The ID-map type of the resource the call creates or addresses, if it has one.
    pub id_type: Option<IdType>,
    /// Where a create's response carries the new resource's ID.
    pub id_pointer: Option<&'static str>,
    /// Path segment holding the addressed resource's (primary) ID, for updates and deletes.
    pub subject: Option<usize>,
    /// The references to translate.
    pub refs: Vec<Reference>,
    /// The body wrapper key (`network`, `flavor`...), if the API wraps bodies.
    pub wrapper: Option<&'static str>,
}

impl Target {
    fn new(kind: Kind, action: MirrorAction, service: Service) -> Target {
        Target {
            kind,
            action,
            service,
            id_type: None,
            id_pointer: None,
            subject: None,
            refs: Vec::new(),
            wrapper: None,
        }
    }

    fn id(mut self, t: IdType, pointer: &'static str) -> Target {
        self.id_type = Some(t);
        self.id_pointer = Some(pointer);
        self
    }

    fn subject(mut self, t: IdType, seg: usize) -> Target {
        self.id_type = Some(t);
        self.subject = Some(seg);
        self.refs.push(r(Location::Segment(seg), t, "id"));
        self
    }

    fn refs(mut self, refs: impl IntoIterator<Item = Reference>) -> Target {
        self.refs.extend(refs);
        self
    }

    fn wrap(mut self, w: &'static str) -> Target {
        self.wrapper = Some(w);
        self
    }

    /// Whether a repeated create could make a second copy (server-assigned IDs, names not
    /// unique): such creates look for an earlier copy before re-sending.
    pub fn duplicates_possible(&self) -> bool {
        self.action == MirrorAction::Create
            && matches!(
                self.kind,
                Kind::Network | Kind::Subnet | Kind::Router | Kind::SecurityGroup
            )
    }
}

/// Splits a path into segments (no leading `/`) and the query.
pub fn split_path(path: &str) -> (Vec<&str>, Option<&str>) {
    let (p, q) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let segs = p
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    (segs, q)
}

/// Recognises the mirrored resources: `path` is relative to the service's base URL and
/// starts with the API version (`/v2.1/flavors`, `/v2.0/networks`, `/v3/<project>/types`).
/// `None` for everything the mirror does not handle (reads, unknown paths, and Neutron bulk
/// creates, which the request path splits into single creates first).
pub fn mirror_target(
    service: Service,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Option<Target> {
    let (segs, _) = split_path(path);
    use MirrorAction::*;
    let s: Vec<&str> = segs.clone();
    match service {
        Service::Compute => {
            if !matches!(s.first(), Some(&"v2.1") | Some(&"v2")) {
                return None;
            }
            let svc = Service::Compute;
            let t = match (method, &s[1..]) {
                ("POST", ["flavors"]) => Target::new(Kind::Flavor, Create, svc)
                    .id(FLAVOR, "/flavor/id")
                    .wrap("flavor"),
                ("PUT", ["flavors", _]) => Target::new(Kind::Flavor, Update, svc)
                    .subject(FLAVOR, 2)
                    .wrap("flavor"),
                ("DELETE", ["flavors", _]) => {
                    Target::new(Kind::Flavor, Delete, svc).subject(FLAVOR, 2)
                }
                ("POST", ["flavors", _, "os-extra_specs"])
                | ("PUT", ["flavors", _, "os-extra_specs", _]) => {
                    let mut t = Target::new(Kind::FlavorExtraSpec, Update, svc).subject(FLAVOR, 2);
                    t.subject = None;
                    t
                }
                ("DELETE", ["flavors", _, "os-extra_specs", _]) => {
                    let mut t = Target::new(Kind::FlavorExtraSpec, Delete, svc).subject(FLAVOR, 2);
                    t.subject = None;
                    t
                }
                ("POST", ["flavors", _, "action"]) => {
                    let b = body?;
                    let key = ["addTenantAccess", "removeTenantAccess"]
                        .into_iter()
                        .find(|k| b.get(*k).is_some())?;
                    let mut t = Target::new(Kind::FlavorAccess, Update, svc)
                        .subject(FLAVOR, 2)
                        .refs([access_project(key, &format!("/{key}/tenant"), "tenant")]);
                    t.subject = None;
                    t
                }
                ("POST", ["os-keypairs"]) => Target::new(Kind::Keypair, Create, svc)
                    .refs([r(ptr("/keypair/user_id"), USER, "user_id")])
                    .wrap("keypair"),
                ("DELETE", ["os-keypairs", _]) => {
                    Target::new(Kind::Keypair, Delete, svc).refs([Reference {
                        need: Need::OrRetired,
                        ..r(Location::Query("user_id"), USER, "user_id")
                    }])
                }
                ("POST", ["servers"]) => Target::new(Kind::Server, Protect, svc)
                    .id(
                        IdType::new(Service::Compute, ResourceType::Server),
                        "/server/id",
                    )
                    .refs([
                        r(ptr("/server/flavorRef"), FLAVOR, "flavorRef"),
                        r(ptr("/server/imageRef"), IMAGE, "imageRef"),
                        r(
                            Location::Each {
                                array: "/server/networks".into(),
                                field: Some("uuid"),
                            },
                            NETWORK,
                            "networks.uuid",
                        ),
                        soft(
                            Location::Each {
                                array: "/server/block_device_mapping_v2".into(),
                                field: Some("uuid"),
                            },
                            IMAGE,
                            "block_device_mapping_v2.uuid",
                        ),
                    ])
                    .wrap("server"),
                ("DELETE", ["servers", _]) => {
                    let mut t = Target::new(Kind::Server, Unprotect, svc);
                    t.subject = Some(2);
                    t
                }
                _ => return None,
            };
            Some(t)
        }
        Service::Network => {
            if s.first() != Some(&"v2.0") {
                return None;
            }
            let svc = Service::Network;
            let coll = |c: &str| -> Option<(Kind, IdType, &'static str)> {
                Some(match c {
                    "networks" => (Kind::Network, NETWORK, "network"),
                    "subnets" => (Kind::Subnet, SUBNET, "subnet"),
                    "routers" => (Kind::Router, ROUTER, "router"),
                    "security-groups" => (Kind::SecurityGroup, SECURITY_GROUP, "security_group"),
                    "security-group-rules" => (
                        Kind::SecurityGroupRule,
                        SECURITY_GROUP_RULE,
                        "security_group_rule",
                    ),
                    "ports" => (
                        Kind::Port,
                        IdType::new(Service::Network, ResourceType::Port),
                        "port",
                    ),
                    "floatingips" => (
                        Kind::FloatingIp,
                        IdType::new(Service::Network, ResourceType::FloatingIp),
                        "floatingip",
                    ),
                    _ => return None,
                })
            };
            let body_refs = |kind: Kind, w: &str| -> Vec<Reference> {
                let p = |f: &str| ptr(&format!("/{w}/{f}"));
                let mut v = vec![soft(p("project_id"), PROJECT, "project_id")];
                v[0].need = Need::Mirrored;
                match kind {
                    Kind::Subnet => v.push(r(p("network_id"), NETWORK, "network_id")),
                    Kind::Router => v.extend([
                        r(
                            p("external_gateway_info/network_id"),
                            NETWORK,
                            "external_gateway_info.network_id",
                        ),
                        r(
                            Location::Each {
                                array: format!("/{w}/external_gateway_info/external_fixed_ips"),
                                field: Some("subnet_id"),
                            },
                            SUBNET,
                            "external_fixed_ips.subnet_id",
                        ),
                    ]),
                    Kind::SecurityGroupRule => v.extend([
                        r(p("security_group_id"), SECURITY_GROUP, "security_group_id"),
                        r(p("remote_group_id"), SECURITY_GROUP, "remote_group_id"),
                    ]),
                    Kind::Port => v.extend([
                        r(p("network_id"), NETWORK, "network_id"),
                        r(
                            Location::Each {
                                array: format!("/{w}/fixed_ips"),
                                field: Some("subnet_id"),
                            },
                            SUBNET,
                            "fixed_ips.subnet_id",
                        ),
                        r(
                            Location::Each {
                                array: format!("/{w}/security_groups"),
                                field: None,
                            },
                            SECURITY_GROUP,
                            "security_groups",
                        ),
                    ]),
                    Kind::FloatingIp => v.push(soft(
                        p("floating_network_id"),
                        NETWORK,
                        "floating_network_id",
                    )),
                    _ => {}
                }
                v
            };
            let t = match (method, &s[1..]) {
                ("POST", [c]) => {
                    let (kind, idt, w) = coll(c)?;
                    // Bulk creates (`{"networks": [...]}`) arrive split (`Mutation::split_bulk`).
                    body?.get(w)?.as_object()?;
                    let action = if kind.is_workload() { Protect } else { Create };
                    let mut t = Target::new(kind, action, svc)
                        .refs(body_refs(kind, w))
                        .wrap(w);
                    t.id_type = Some(idt);
                    t.id_pointer = Some(match kind {
                        Kind::Network => "/network/id",
                        Kind::Subnet => "/subnet/id",
                        Kind::Router => "/router/id",
                        Kind::SecurityGroup => "/security_group/id",
                        Kind::SecurityGroupRule => "/security_group_rule/id",
                        Kind::Port => "/port/id",
                        _ => "/floatingip/id",
                    });
                    t
                }
                ("PUT", [c, _]) => {
                    let (kind, idt, w) = coll(c)?;
                    if kind.is_workload() || kind == Kind::SecurityGroupRule {
                        return None;
                    }
                    let mut refs = body_refs(kind, w);
                    refs.retain(|x| x.name != "project_id");
                    Target::new(kind, Update, svc)
                        .subject(idt, 2)
                        .refs(refs)
                        .wrap(w)
                }
                ("DELETE", [c, _]) => {
                    let (kind, idt, _) = coll(c)?;
                    if kind.is_workload() {
                        let mut t = Target::new(kind, Unprotect, svc);
                        t.subject = Some(2);
                        t
                    } else {
                        Target::new(kind, Delete, svc).subject(idt, 2)
                    }
                }
                (
                    "PUT",
                    ["routers", _, a @ ("add_router_interface" | "remove_router_interface")],
                ) => {
                    let action = if *a == "add_router_interface" {
                        Update
                    } else {
                        Delete
                    };
                    let mut t = Target::new(Kind::RouterInterface, action, svc)
                        .subject(ROUTER, 2)
                        .refs([
                            r(ptr("/subnet_id"), SUBNET, "subnet_id"),
                            r(
                                ptr("/port_id"),
                                IdType::new(Service::Network, ResourceType::Port),
                                "port_id",
                            ),
                        ]);
                    t.subject = None;
                    t
                }
                (m @ ("PUT" | "DELETE"), [c, _, "tags", ..]) => {
                    let (kind, idt, _) = coll(c)?;
                    if kind.is_workload() || (m == "PUT" && s.len() == 4 && body.is_none()) {
                        return None;
                    }
                    let action = if m == "PUT" { Update } else { Delete };
                    let mut t = Target::new(Kind::NetworkTag, action, svc).subject(idt, 2);
                    t.subject = None;
                    t
                }
                _ => return None,
            };
            Some(t)
        }
        Service::BlockStorage => {
            if s.first() != Some(&"v3") || s.len() < 3 {
                return None;
            }
            let svc = Service::BlockStorage;
            let project = Reference {
                at: Location::Segment(1),
                to: RefTarget::ServiceProject,
                need: Need::Mirrored,
                name: "project",
            };
            let t = match (method, &s[2..]) {
                ("POST", ["types"]) => Target::new(Kind::VolumeType, Create, svc)
                    .id(VOLUME_TYPE, "/volume_type/id")
                    .wrap("volume_type"),
                ("PUT", ["types", _]) => Target::new(Kind::VolumeType, Update, svc)
                    .subject(VOLUME_TYPE, 3)
                    .wrap("volume_type"),
                ("DELETE", ["types", _]) => {
                    Target::new(Kind::VolumeType, Delete, svc).subject(VOLUME_TYPE, 3)
                }
                ("POST", ["types", _, "extra_specs"]) | ("PUT", ["types", _, "extra_specs", _]) => {
                    let mut t =
                        Target::new(Kind::VolumeTypeExtraSpec, Update, svc).subject(VOLUME_TYPE, 3);
                    t.subject = None;
                    t
                }
                ("DELETE", ["types", _, "extra_specs", _]) => {
                    let mut t =
                        Target::new(Kind::VolumeTypeExtraSpec, Delete, svc).subject(VOLUME_TYPE, 3);
                    t.subject = None;
                    t
                }
                ("POST", ["types", _, "action"]) => {
                    let b = body?;
                    let key = ["addProjectAccess", "removeProjectAccess"]
                        .into_iter()
                        .find(|k| b.get(*k).is_some())?;
                    let mut t = Target::new(Kind::VolumeTypeAccess, Update, svc)
                        .subject(VOLUME_TYPE, 3)
                        .refs([access_project(key, &format!("/{key}/project"), "project")]);
                    t.subject = None;
                    t
                }
                ("POST", ["volumes"]) => {
                    // A protection record keeps the primary path; no service project.
                    return Some(
                        Target::new(Kind::Volume, Protect, svc)
                            .id(
                                IdType::new(Service::BlockStorage, ResourceType::Volume),
                                "/volume/id",
                            )
                            .refs([
                                soft(ptr("/volume/volume_type"), VOLUME_TYPE, "volume_type"),
                                r(ptr("/volume/imageRef"), IMAGE, "imageRef"),
                            ])
                            .wrap("volume"),
                    );
                }
                ("DELETE", ["volumes", _]) => {
                    let mut t = Target::new(Kind::Volume, Unprotect, svc);
                    t.subject = Some(3);
                    return Some(t);
                }
                _ => return None,
            };
            Some(t.refs([project]))
        }
        Service::Image => {
            if s.first() != Some(&"v2") {
                return None;
            }
            let svc = Service::Image;
            let t = match (method, &s[1..]) {
                // Glance takes any string as an image's owner: one that names no project
                // is copied as it is.
                ("POST", ["images"]) => Target::new(Kind::Image, Create, svc)
                    .id(IMAGE, "/id")
                    .refs([Reference {
                        need: Need::IfItExists,
                        ..r(ptr("/owner"), PROJECT, "owner")
                    }]),
                ("PATCH", ["images", _]) => Target::new(Kind::Image, Update, svc)
                    .subject(IMAGE, 2)
                    .refs([Reference {
                        need: Need::IfItExists,
                        ..r(Location::PatchValue("/owner"), PROJECT, "owner")
                    }]),
                ("DELETE", ["images", _]) => {
                    Target::new(Kind::Image, Delete, svc).subject(IMAGE, 2)
                }
                (m @ ("PUT" | "DELETE"), ["images", _, "tags", _]) => {
                    let action = if m == "PUT" { Update } else { Delete };
                    let mut t = Target::new(Kind::ImageTag, action, svc).subject(IMAGE, 2);
                    t.subject = None;
                    t
                }
                _ => return None,
            };
            Some(t)
        }
        Service::Identity => {
            if s.first() != Some(&"v3") {
                return None;
            }
            let svc = Service::Identity;
            // A project, user or group lives in a domain: `domain_id` names it (the default
            // domain, `default`, too, which the recovery site has under the same ID and
            // name, so it maps to itself the first time it is met).
            let t = match (method, &s[1..]) {
                ("POST", ["domains"]) => Target::new(Kind::Domain, Create, svc)
                    .id(DOMAIN, "/domain/id")
                    .wrap("domain"),
                ("PATCH", ["domains", _]) => Target::new(Kind::Domain, Update, svc)
                    .subject(DOMAIN, 2)
                    .refs([own_id("/domain/id", DOMAIN)])
                    .wrap("domain"),
                ("DELETE", ["domains", _]) => {
                    Target::new(Kind::Domain, Delete, svc).subject(DOMAIN, 2)
                }
                ("POST", ["projects"]) => Target::new(Kind::Project, Create, svc)
                    .id(PROJECT, "/project/id")
                    .refs([
                        r(ptr("/project/domain_id"), DOMAIN, "domain_id"),
                        r(ptr("/project/parent_id"), PROJECT, "parent_id"),
                    ])
                    .wrap("project"),
                ("PATCH", ["projects", _]) => Target::new(Kind::Project, Update, svc)
                    .subject(PROJECT, 2)
                    .refs([own_id("/project/id", PROJECT)])
                    .wrap("project"),
                ("DELETE", ["projects", _]) => {
                    Target::new(Kind::Project, Delete, svc).subject(PROJECT, 2)
                }
                (m @ ("PUT" | "DELETE"), ["projects", _, "tags", ..]) => {
                    let action = if m == "PUT" { Update } else { Delete };
                    let mut t = Target::new(Kind::ProjectTag, action, svc).subject(PROJECT, 2);
                    t.subject = None;
                    t
                }
                ("POST", ["users"]) => Target::new(Kind::User, Create, svc)
                    .id(USER, "/user/id")
                    .refs([
                        r(ptr("/user/domain_id"), DOMAIN, "domain_id"),
                        soft(
                            ptr("/user/default_project_id"),
                            PROJECT,
                            "default_project_id",
                        ),
                    ])
                    .wrap("user"),
                ("PATCH", ["users", _]) => Target::new(Kind::User, Update, svc)
                    .subject(USER, 2)
                    .refs([
                        own_id("/user/id", USER),
                        soft(
                            ptr("/user/default_project_id"),
                            PROJECT,
                            "default_project_id",
                        ),
                    ])
                    .wrap("user"),
                ("DELETE", ["users", _]) => Target::new(Kind::User, Delete, svc).subject(USER, 2),
                // Password change by the user: replayed as an admin PATCH (see `normalise`).
                ("POST", ["users", _, "password"]) => Target::new(Kind::User, Update, svc)
                    .subject(USER, 2)
                    .wrap("user"),
                ("POST", ["groups"]) => Target::new(Kind::Group, Create, svc)
                    .id(GROUP, "/group/id")
                    .refs([r(ptr("/group/domain_id"), DOMAIN, "domain_id")])
                    .wrap("group"),
                ("PATCH", ["groups", _]) => Target::new(Kind::Group, Update, svc)
                    .subject(GROUP, 2)
                    .refs([own_id("/group/id", GROUP)])
                    .wrap("group"),
                ("DELETE", ["groups", _]) => {
                    Target::new(Kind::Group, Delete, svc).subject(GROUP, 2)
                }
                (m @ ("PUT" | "DELETE"), ["groups", _, "users", _]) => {
                    let action = if m == "PUT" { Update } else { Delete };
                    let mut t = Target::new(Kind::GroupMembership, action, svc)
                        .subject(GROUP, 2)
                        .refs([r(Location::Segment(4), USER, "user")]);
                    t.subject = None;
                    t
                }
                (
                    m @ ("PUT" | "DELETE"),
                    [scope @ ("projects" | "domains"), _, actor @ ("users" | "groups"), _, "roles", _],
                ) => {
                    let action = if m == "PUT" { Update } else { Delete };
                    let scope = match *scope {
                        "projects" => r(Location::Segment(2), PROJECT, "project"),
                        _ => r(Location::Segment(2), DOMAIN, "domain"),
                    };
                    let mut refs = vec![scope];
                    let actor_type = if *actor == "users" { USER } else { GROUP };
                    refs.push(r(Location::Segment(4), actor_type, "actor"));
                    refs.push(r(Location::Segment(6), ROLE, "role"));
                    Target::new(Kind::RoleAssignment, action, svc).refs(refs)
                }
                _ => return None,
            };
            Some(t)
        }
    }
}

/// The facts of a call that [`normalise`] needs.
#[derive(Debug, Clone, Copy)]
pub struct CallFacts<'a> {
    pub method: &'a str,
    /// The path relative to the service's base URL, without the query.
    pub path: &'a str,
    /// The query string, as the gateway keeps it apart from the path.
    pub query: Option<&'a str>,
    pub request_body: Option<&'a Value>,
    pub response_body: Option<&'a Value>,
    /// The caller's project and user (primary IDs).
    pub project_id: Option<&'a str>,
    pub user_id: &'a str,
}

impl<'a> CallFacts<'a> {
    /// The facts of a successful change as the request path recorded it.
    pub fn of(m: &'a crate::mutation::Mutation) -> CallFacts<'a> {
        CallFacts {
            method: m.method.as_str(),
            path: &m.path,
            query: m.query.as_deref(),
            request_body: m.request_body.as_ref(),
            response_body: m.response_body.as_ref(),
            project_id: m.tenant.project_id.as_deref(),
            user_id: &m.tenant.user_id,
        }
    }
}

/// The request journaled for the recovery site, still in primary IDs.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalised {
    pub method: String,
    pub path: String,
    pub body: Option<Value>,
    /// The primary ID of the created/addressed resource (a keypair's name).
    pub primary_id: Option<String>,
    /// A secret cut out of the body: (JSON pointer, clear text). Encrypted before journaling.
    pub secret: Option<(String, String)>,
}

/// Why a recognised call cannot be journaled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NormaliseError(pub String);

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A Glance JSON patch in the form the gateway sends it in
/// (`application/openstack-images-v2.1-json-patch`): operations of the older form that
/// `application/openstack-images-v2.0-json-patch` takes (`{"replace": "/name", "value": V}`,
/// as tempest and older clients send them) become `{"op": "replace", "path": "/name",
/// "value": V}`; anything else is left as it is.
pub fn image_patch_v2_1(mut body: Value) -> Value {
    for op in body.as_array_mut().into_iter().flatten() {
        let Some(o) = op.as_object_mut() else {
            continue;
        };
        if o.contains_key("op") {
            continue;
        }
        let Some((kind, path)) = crate::services::image::patch_op(o) else {
            continue;
        };
        let path = json!(path);
        o.remove(kind);
        o.insert("op".into(), json!(kind));
        o.insert("path".into(), path);
    }
    body
}

/// Builds the journaled request: the tenant's request with the facts the recovery site needs
/// made explicit (the owner project or user, the caller-chosen ID that the copy keeps, a
/// keypair's public key), secrets cut out, generated private keys dropped.
pub fn normalise(t: &Target, call: &CallFacts<'_>) -> Result<Normalised, NormaliseError> {
    let missing = |what: &str| NormaliseError(format!("the response carries no {what}"));
    let mut body = call.request_body.cloned();
    let mut method = call.method.to_string();
    let mut path = split_path(call.path).0.join("/");
    path.insert(0, '/');
    if let Some(q) = call.query {
        // Only the keypair user is meaningful in a mirrored query.
        if let Some(u) = q.split('&').find_map(|kv| kv.strip_prefix("user_id=")) {
            path.push_str(&format!("?user_id={u}"));
        }
    }
    let (segs, _) = split_path(call.path);
    let mut primary_id = t.subject.and_then(|i| segs.get(i).map(|s| s.to_string()));
    let mut secret = None;

    if matches!(t.action, MirrorAction::Create | MirrorAction::Protect) {
        if let Some(p) = t.id_pointer {
            let id = call
                .response_body
                .and_then(|b| b.pointer(p))
                .and_then(id_text)
                .ok_or_else(|| missing(p))?;
            primary_id = Some(id);
        }
    }
    if t.action == MirrorAction::Unprotect {
        primary_id = t.subject.and_then(|i| segs.get(i).map(|s| s.to_string()));
    }
    let obj = |body: &mut Option<Value>, w: &str| -> Result<(), NormaliseError> {
        let b = body.get_or_insert_with(|| json!({}));
        match b.get_mut(w) {
            Some(Value::Object(_)) => Ok(()),
            None => {
                b[w] = json!({});
                Ok(())
            }
            Some(_) => Err(NormaliseError(format!("`{w}` is not an object"))),
        }
    };
    match (t.kind, t.action) {
        (Kind::Flavor, MirrorAction::Create) => {
            obj(&mut body, "flavor")?;
            if let Some(b) = body.as_mut() {
                b["flavor"]["id"] = json!(primary_id.clone().unwrap_or_default());
            }
        }
        (Kind::Image, MirrorAction::Create) => {
            let b = body.get_or_insert_with(|| json!({}));
            b["id"] = json!(primary_id.clone().unwrap_or_default());
            if b.get("owner").and_then(Value::as_str).is_none() {
                if let Some(p) = call.project_id {
                    b["owner"] = json!(p);
                }
            }
        }
        (Kind::Keypair, MirrorAction::Create) => {
            let resp = call.response_body.and_then(|b| b.get("keypair"));
            let req = call.request_body.and_then(|b| b.get("keypair"));
            let get = |k: &str| {
                req.and_then(|o| o.get(k))
                    .or_else(|| resp.and_then(|o| o.get(k)))
                    .cloned()
            };
            let name = get("name").ok_or_else(|| missing("keypair name"))?;
            let public_key = resp
                .and_then(|o| o.get("public_key"))
                .or_else(|| req.and_then(|o| o.get("public_key")))
                .cloned()
                .ok_or_else(|| missing("public key"))?;
            let user = get("user_id").unwrap_or_else(|| json!(call.user_id));
            let mut kp = json!({"name": name, "public_key": public_key, "user_id": user});
            if let Some(kind) = get("type") {
                kp["type"] = kind;
            }
            primary_id = name.as_str().map(str::to_string);
            // The private key Nova may have generated is never kept.
            body = Some(json!({ "keypair": kp }));
        }
        (Kind::Keypair, MirrorAction::Delete) => {
            primary_id = segs.get(2).map(|s| s.to_string());
            if !path.contains("?user_id=") {
                path.push_str(&format!("?user_id={}", call.user_id));
            }
        }
        (Kind::User, MirrorAction::Create) => {
            if let Some(pw) = body
                .as_mut()
                .and_then(|b| b.get_mut("user"))
                .and_then(Value::as_object_mut)
                .and_then(|u| u.remove("password"))
                .and_then(|p| p.as_str().map(str::to_string))
            {
                secret = Some(("/user/password".to_string(), pw));
            }
        }
        (Kind::User, MirrorAction::Update) => {
            if segs.get(3) == Some(&"password") {
                // POST /v3/users/{id}/password → admin PATCH /v3/users/{id}.
                let pw = call
                    .request_body
                    .and_then(|b| b.pointer("/user/password"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| NormaliseError("no new password in the body".into()))?;
                secret = Some(("/user/password".to_string(), pw.to_string()));
                method = "PATCH".into();
                path = format!("/v3/users/{}", segs.get(2).copied().unwrap_or_default());
                body = Some(json!({"user": {}}));
            } else if let Some(pw) = body
                .as_mut()
                .and_then(|b| b.get_mut("user"))
                .and_then(Value::as_object_mut)
                .and_then(|u| u.remove("password"))
                .and_then(|p| p.as_str().map(str::to_string))
            {
                secret = Some(("/user/password".to_string(), pw));
            }
        }
        (k, MirrorAction::Create | MirrorAction::Protect) if t.service == Service::Network => {
            // Tenant-owned Neutron resources are created by the admin with `project_id`.
            let w = t.wrapper.unwrap_or_default();
            obj(&mut body, w)?;
            if let Some(o) = body
                .as_mut()
                .and_then(|b| b.get_mut(w))
                .and_then(Value::as_object_mut)
            {
                // The tags the resource got at the source right after its create (the tier
                // tag): the applier tags the copy with them (Neutron takes none in a create).
                let tags = call
                    .response_body
                    .and_then(|r| r.get(w))
                    .and_then(|r| r.get("tags"))
                    .and_then(Value::as_array)
                    .filter(|t| !t.is_empty() && t.iter().all(Value::is_string));
                match tags {
                    Some(tags) if t.action == MirrorAction::Create => {
                        o.insert("tags".into(), Value::Array(tags.clone()));
                    }
                    _ => {}
                }
                let tenant = o.remove("tenant_id");
                if !o.contains_key("project_id") {
                    let p = tenant
                        .filter(Value::is_string)
                        .or_else(|| call.project_id.map(|p| json!(p)));
                    match p {
                        Some(p) => {
                            o.insert("project_id".into(), p);
                        }
                        None => {
                            return Err(NormaliseError(format!(
                                "no project for the {}",
                                k.resource_type()
                            )))
                        }
                    }
                }
            }
        }
        _ => {}
    }
    Ok(Normalised {
        method,
        path,
        body,
        primary_id,
        secret,
    })
}

/// The call that undoes a create at the primary (Gold `reject`), if there is one.
pub fn compensation(
    t: &Target,
    n: &Normalised,
    original_path: &str,
) -> Option<(String, String, Option<Value>)> {
    let (segs, _) = split_path(original_path);
    let base = format!("/{}", segs.join("/"));
    match (t.kind, t.action) {
        (Kind::Keypair, MirrorAction::Create) => Some((
            "DELETE".into(),
            format!("{base}/{}", n.primary_id.as_deref()?),
            None,
        )),
        (Kind::RoleAssignment | Kind::GroupMembership, MirrorAction::Update) => {
            Some(("DELETE".into(), base, None))
        }
        (Kind::RouterInterface, MirrorAction::Update) => Some((
            "PUT".into(),
            base.replace("add_router_interface", "remove_router_interface"),
            n.body.clone(),
        )),
        (_, MirrorAction::Create | MirrorAction::Protect) => Some((
            "DELETE".into(),
            format!("{base}/{}", n.primary_id.as_deref()?),
            None,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(
        method: &'a str,
        path: &'a str,
        req: Option<&'a Value>,
        resp: Option<&'a Value>,
    ) -> CallFacts<'a> {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        CallFacts {
            method,
            path,
            query,
            request_body: req,
            response_body: resp,
            project_id: Some("P"),
            user_id: "U",
        }
    }

    #[test]
    fn recognises_the_mirrored_routes() {
        let b = json!({"network": {"name": "n"}});
        type Case<'a> = (
            Service,
            &'a str,
            &'a str,
            Option<&'a Value>,
            Option<(Kind, MirrorAction)>,
        );
        let cases: &[Case<'_>] = &[
            (
                Service::Network,
                "POST",
                "/v2.0/networks",
                Some(&b),
                Some((Kind::Network, MirrorAction::Create)),
            ),
            (
                Service::Network,
                "POST",
                "/v2.0/networks",
                Some(&json!({"networks": [{}]})),
                None,
            ),
            (Service::Network, "GET", "/v2.0/networks", None, None),
            (
                Service::Network,
                "PUT",
                "/v2.0/networks/n1",
                Some(&b),
                Some((Kind::Network, MirrorAction::Update)),
            ),
            (
                Service::Network,
                "DELETE",
                "/v2.0/ports/p1",
                None,
                Some((Kind::Port, MirrorAction::Unprotect)),
            ),
            (
                Service::Network,
                "PUT",
                "/v2.0/routers/r/add_router_interface",
                Some(&json!({"subnet_id": "s"})),
                Some((Kind::RouterInterface, MirrorAction::Update)),
            ),
            (
                Service::Network,
                "PUT",
                "/v2.0/networks/n/tags/x",
                None,
                Some((Kind::NetworkTag, MirrorAction::Update)),
            ),
            (
                Service::Compute,
                "POST",
                "/v2.1/flavors",
                Some(&json!({"flavor": {}})),
                Some((Kind::Flavor, MirrorAction::Create)),
            ),
            (
                Service::Compute,
                "POST",
                "/v2.1/flavors/f/os-extra_specs",
                Some(&json!({"extra_specs": {}})),
                Some((Kind::FlavorExtraSpec, MirrorAction::Update)),
            ),
            (
                Service::Compute,
                "POST",
                "/v2.1/flavors/f/action",
                Some(&json!({"addTenantAccess": {"tenant": "p"}})),
                Some((Kind::FlavorAccess, MirrorAction::Update)),
            ),
            (
                Service::Compute,
                "POST",
                "/v2.1/servers/s/action",
                Some(&json!({"reboot": {}})),
                None,
            ),
            (
                Service::Compute,
                "POST",
                "/v2.1/servers",
                Some(&json!({"server": {}})),
                Some((Kind::Server, MirrorAction::Protect)),
            ),
            (
                Service::BlockStorage,
                "POST",
                "/v3/p/types",
                Some(&json!({"volume_type": {}})),
                Some((Kind::VolumeType, MirrorAction::Create)),
            ),
            (
                Service::BlockStorage,
                "POST",
                "/v3/p/volumes",
                Some(&json!({"volume": {}})),
                Some((Kind::Volume, MirrorAction::Protect)),
            ),
            (
                Service::Image,
                "POST",
                "/v2/images",
                Some(&json!({})),
                Some((Kind::Image, MirrorAction::Create)),
            ),
            (Service::Image, "PUT", "/v2/images/i/file", None, None),
            (
                Service::Identity,
                "PUT",
                "/v3/projects/p/users/u/roles/r",
                None,
                Some((Kind::RoleAssignment, MirrorAction::Update)),
            ),
            (
                Service::Identity,
                "PUT",
                "/v3/domains/d/groups/g/roles/r",
                None,
                Some((Kind::RoleAssignment, MirrorAction::Update)),
            ),
            (
                Service::Identity,
                "POST",
                "/v3/domains",
                Some(&json!({"domain": {"name": "d"}})),
                Some((Kind::Domain, MirrorAction::Create)),
            ),
            (
                Service::Identity,
                "PATCH",
                "/v3/domains/d",
                Some(&json!({"domain": {"enabled": false}})),
                Some((Kind::Domain, MirrorAction::Update)),
            ),
            (
                Service::Identity,
                "DELETE",
                "/v3/domains/d",
                None,
                Some((Kind::Domain, MirrorAction::Delete)),
            ),
            (Service::Identity, "POST", "/v3/auth/tokens", None, None),
            (
                Service::Identity,
                "POST",
                "/v3/users/u/password",
                None,
                Some((Kind::User, MirrorAction::Update)),
            ),
        ];
        for (svc, m, p, body, want) in cases {
            let got = mirror_target(*svc, m, p, *body).map(|t| (t.kind, t.action));
            assert_eq!(got, *want, "{m} {p}");
        }
    }

    #[test]
    fn image_patches_of_the_older_form_become_the_newer() {
        let old = json!([{"replace": "/owner", "value": "P"}, {"add": "/k", "value": "v"},
            {"remove": "/k2"}, {"op": "replace", "path": "/name", "value": "n"},
            {"add": "/a", "replace": "/b", "value": 1}]);
        assert_eq!(
            image_patch_v2_1(old),
            json!([{"op": "replace", "path": "/owner", "value": "P"},
                {"op": "add", "path": "/k", "value": "v"}, {"op": "remove", "path": "/k2"},
                {"op": "replace", "path": "/name", "value": "n"},
                // Ambiguous: left for Glance to refuse, as it would.
                {"add": "/a", "replace": "/b", "value": 1}])
        );
    }

    #[test]
    fn subnet_references_its_network_and_project() {
        let t = mirror_target(
            Service::Network,
            "POST",
            "/v2.0/subnets",
            Some(&json!({"subnet": {"network_id": "n"}})),
        )
        .unwrap();
        let names: Vec<_> = t.refs.iter().map(|r| (r.name, r.need)).collect();
        assert_eq!(
            names,
            vec![
                ("project_id", Need::Mirrored),
                ("network_id", Need::Mirrored)
            ]
        );
    }

    #[test]
    fn access_removals_may_name_a_deleted_project() {
        let need = |svc, path: &str, body: Value| {
            let t = mirror_target(svc, "POST", path, Some(&body)).unwrap();
            t.refs.iter().map(|r| (r.name, r.need)).collect::<Vec<_>>()
        };
        let flavor = "/v2.1/flavors/f/action";
        let vtype = "/v3/P/types/t/action";
        assert_eq!(
            need(
                Service::Compute,
                flavor,
                json!({"addTenantAccess": {"tenant": "p"}})
            ),
            vec![("id", Need::Mirrored), ("tenant", Need::Mirrored)]
        );
        assert_eq!(
            need(
                Service::Compute,
                flavor,
                json!({"removeTenantAccess": {"tenant": "p"}})
            ),
            vec![("id", Need::Mirrored), ("tenant", Need::OrRetired)]
        );
        let removal = need(
            Service::BlockStorage,
            vtype,
            json!({"removeProjectAccess": {"project": "p"}}),
        );
        assert!(
            removal.contains(&("project", Need::OrRetired)),
            "{removal:?}"
        );
        let addition = need(
            Service::BlockStorage,
            vtype,
            json!({"addProjectAccess": {"project": "p"}}),
        );
        assert!(
            addition.contains(&("project", Need::Mirrored)),
            "{addition:?}"
        );
    }

    #[test]
    fn role_assignment_translates_project_user_and_role() {
        let t = mirror_target(
            Service::Identity,
            "PUT",
            "/v3/projects/p/users/u/roles/r",
            None,
        )
        .unwrap();
        let at: Vec<_> = t.refs.iter().map(|r| (r.at.clone(), r.to)).collect();
        assert_eq!(
            at,
            vec![
                (Location::Segment(2), RefTarget::Id(PROJECT)),
                (Location::Segment(4), RefTarget::Id(USER)),
                (Location::Segment(6), RefTarget::Id(ROLE)),
            ]
        );
    }

    #[test]
    fn what_lives_in_a_domain_names_it() {
        let refs = |m: &str, p: &str, body: Value| -> Vec<(Location, RefTarget)> {
            mirror_target(Service::Identity, m, p, Some(&body))
                .unwrap()
                .refs
                .iter()
                .map(|r| (r.at.clone(), r.to))
                .collect()
        };
        let domain = RefTarget::Id(DOMAIN);
        assert_eq!(
            refs("POST", "/v3/projects", json!({"project": {}})),
            vec![
                (ptr("/project/domain_id"), domain),
                (ptr("/project/parent_id"), RefTarget::Id(PROJECT)),
            ]
        );
        assert_eq!(
            refs("POST", "/v3/users", json!({"user": {}}))[0],
            (ptr("/user/domain_id"), domain)
        );
        assert_eq!(
            refs("POST", "/v3/groups", json!({"group": {}})),
            vec![(ptr("/group/domain_id"), domain)]
        );
        assert_eq!(
            refs("PUT", "/v3/domains/d/users/u/roles/r", Value::Null)[0],
            (Location::Segment(2), domain)
        );
        // An update's own ID, which Keystone checks against the path's.
        assert!(refs("PATCH", "/v3/users/u", json!({"user": {}}))
            .contains(&(ptr("/user/id"), RefTarget::Id(USER))));
    }

    #[test]
    fn normalises_a_network_create_with_the_owner_project() {
        let req = json!({"network": {"name": "n", "tenant_id": "T2"}});
        let resp = json!({"network": {"id": "N1"}});
        let t = mirror_target(Service::Network, "POST", "/v2.0/networks", Some(&req)).unwrap();
        let n = normalise(
            &t,
            &facts("POST", "/v2.0/networks", Some(&req), Some(&resp)),
        )
        .unwrap();
        assert_eq!(n.primary_id.as_deref(), Some("N1"));
        assert_eq!(
            n.body,
            Some(json!({"network": {"name": "n", "project_id": "T2"}}))
        );
        let req = json!({"network": {"name": "n"}});
        let n = normalise(
            &t,
            &facts("POST", "/v2.0/networks", Some(&req), Some(&resp)),
        )
        .unwrap();
        assert_eq!(n.body.unwrap()["network"]["project_id"], "P");
        // The journaled form is recognised again, with the same references.
        assert!(mirror_target(Service::Network, "POST", &n.path, Some(&req)).is_some());
    }

    #[test]
    fn flavor_and_image_keep_the_primary_id() {
        let req = json!({"flavor": {"name": "f", "ram": 1, "vcpus": 1, "disk": 1}});
        let resp = json!({"flavor": {"id": "F1"}});
        let t = mirror_target(Service::Compute, "POST", "/v2.1/flavors", Some(&req)).unwrap();
        let n = normalise(&t, &facts("POST", "/v2.1/flavors", Some(&req), Some(&resp))).unwrap();
        assert_eq!(n.body.unwrap()["flavor"]["id"], "F1");
        let t = mirror_target(Service::Image, "POST", "/v2/images", Some(&json!({}))).unwrap();
        let resp = json!({"id": "I1"});
        let n = normalise(
            &t,
            &facts(
                "POST",
                "/v2/images",
                Some(&json!({"name": "i"})),
                Some(&resp),
            ),
        )
        .unwrap();
        assert_eq!(
            n.body.unwrap(),
            json!({"name": "i", "id": "I1", "owner": "P"})
        );
        // A create whose response lacks the id cannot be journaled.
        assert!(normalise(&t, &facts("POST", "/v2/images", None, Some(&json!({})))).is_err());
    }

    #[test]
    fn keypair_drops_the_private_key_and_names_the_user() {
        let req = json!({"keypair": {"name": "k"}});
        let resp = json!({"keypair": {"name": "k", "public_key": "ssh-rsa AAA x", "private_key": "SECRET"}});
        let t = mirror_target(Service::Compute, "POST", "/v2.1/os-keypairs", Some(&req)).unwrap();
        let n = normalise(
            &t,
            &facts("POST", "/v2.1/os-keypairs", Some(&req), Some(&resp)),
        )
        .unwrap();
        let body = n.body.unwrap();
        assert!(!body.to_string().contains("SECRET"));
        assert_eq!(body["keypair"]["user_id"], "U");
        assert_eq!(n.primary_id.as_deref(), Some("k"));
        let t = mirror_target(Service::Compute, "DELETE", "/v2.1/os-keypairs/k", None).unwrap();
        let n = normalise(&t, &facts("DELETE", "/v2.1/os-keypairs/k", None, None)).unwrap();
        assert_eq!(n.path, "/v2.1/os-keypairs/k?user_id=U");
        // An admin's delete of another user's keypair names that user, not the caller.
        let n = normalise(
            &t,
            &facts("DELETE", "/v2.1/os-keypairs/k?user_id=V", None, None),
        )
        .unwrap();
        assert_eq!(n.path, "/v2.1/os-keypairs/k?user_id=V");
    }

    #[test]
    fn user_password_is_cut_out() {
        let req = json!({"user": {"name": "u", "password": "pw"}});
        let resp = json!({"user": {"id": "U1"}});
        let t = mirror_target(Service::Identity, "POST", "/v3/users", Some(&req)).unwrap();
        let n = normalise(&t, &facts("POST", "/v3/users", Some(&req), Some(&resp))).unwrap();
        assert_eq!(n.secret, Some(("/user/password".into(), "pw".into())));
        assert!(!n.body.unwrap().to_string().contains("pw"));
        let req = json!({"user": {"password": "new", "original_password": "old"}});
        let t = mirror_target(
            Service::Identity,
            "POST",
            "/v3/users/U1/password",
            Some(&req),
        )
        .unwrap();
        let n = normalise(
            &t,
            &facts("POST", "/v3/users/U1/password", Some(&req), None),
        )
        .unwrap();
        assert_eq!(
            (n.method.as_str(), n.path.as_str()),
            ("PATCH", "/v3/users/U1")
        );
        assert!(!n.body.unwrap().to_string().contains("old"));
    }

    #[test]
    fn compensation_deletes_what_was_created() {
        let req = json!({"flavor": {}});
        let t = mirror_target(Service::Compute, "POST", "/v2.1/flavors", Some(&req)).unwrap();
        let n = normalise(
            &t,
            &facts(
                "POST",
                "/v2.1/flavors",
                Some(&req),
                Some(&json!({"flavor": {"id": "F"}})),
            ),
        )
        .unwrap();
        assert_eq!(
            compensation(&t, &n, "/v2.1/flavors"),
            Some(("DELETE".into(), "/v2.1/flavors/F".into(), None))
        );
        let t = mirror_target(
            Service::Network,
            "PUT",
            "/v2.0/networks/n",
            Some(&json!({"network": {}})),
        )
        .unwrap();
        assert_eq!(compensation(&t, &n, "/v2.0/networks/n"), None);
    }
}
