//! What a request does, in OpenStack terms: the output of classification.
//!
//! Classification (see `services/`) is a pure function from
//! `(service, method, path, query, microversion)` to an [`Operation`]. Every later stage
//! (policy decision, failover guard, mirroring, metrics) works on the `Operation`, never on
//! raw paths.

use std::fmt;

/// The five OpenStack services the gateway fronts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Identity,
    Compute,
    Network,
    BlockStorage,
    Image,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::Identity,
        Service::Compute,
        Service::Network,
        Service::BlockStorage,
        Service::Image,
    ];

    /// The name used in configuration keys, metric labels and policy operation names.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Identity => "identity",
            Service::Compute => "compute",
            Service::Network => "network",
            Service::BlockStorage => "volume",
            Service::Image => "image",
        }
    }

    /// The devstack-style path prefix on a shared listener.
    pub fn default_prefix(self) -> &'static str {
        match self {
            Service::Identity => "/identity",
            Service::Compute => "/compute",
            Service::Network => "/network",
            Service::BlockStorage => "/volume",
            Service::Image => "/image",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of change (if any) a request makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Create,
    Update,
    Delete,
    /// A non-CRUD action on a resource (`POST /servers/{id}/action`, Cinder volume actions,
    /// Neutron `add_router_interface`, ...).
    Action,
    Read,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Action => "action",
            Action::Read => "read",
        }
    }

    /// True for every action that changes state at the site.
    pub fn is_mutating(self) -> bool {
        !matches!(self, Action::Read)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The resource types the gateway knows. Sub-resources (metadata, tags, extra specs, ...)
/// are their own types so that policy and mirroring can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    // identity
    Token,
    Catalog,
    Endpoint,
    Project,
    ProjectTag,
    User,
    Group,
    GroupMembership,
    Role,
    RoleAssignment,
    Domain,
    ApplicationCredential,
    // compute
    Flavor,
    FlavorExtraSpec,
    FlavorAccess,
    Keypair,
    Server,
    ServerMetadata,
    ServerTag,
    ServerAction,
    ServerGroup,
    // network
    Network,
    Subnet,
    Port,
    Router,
    RouterInterface,
    SecurityGroup,
    SecurityGroupRule,
    FloatingIp,
    NetworkTag,
    // block storage
    Volume,
    VolumeMetadata,
    VolumeAction,
    VolumeType,
    VolumeTypeExtraSpec,
    Snapshot,
    // image
    Image,
    ImageData,
    ImageTag,
    // any service
    /// Version discovery documents (`GET /`, `GET /v2.1`, ...).
    Version,
    /// A path the gateway does not classify further; proxied untouched.
    Other,
}

impl ResourceType {
    /// snake_case name used in metric labels and policy operation names.
    pub fn as_str(self) -> &'static str {
        use ResourceType::*;
        match self {
            Token => "token",
            Catalog => "catalog",
            Endpoint => "endpoint",
            Project => "project",
            ProjectTag => "project_tag",
            User => "user",
            Group => "group",
            GroupMembership => "group_membership",
            Role => "role",
            RoleAssignment => "role_assignment",
            Domain => "domain",
            ApplicationCredential => "application_credential",
            Flavor => "flavor",
            FlavorExtraSpec => "flavor_extra_spec",
            FlavorAccess => "flavor_access",
            Keypair => "keypair",
            Server => "server",
            ServerMetadata => "server_metadata",
            ServerTag => "server_tag",
            ServerAction => "server_action",
            ServerGroup => "server_group",
            Network => "network",
            Subnet => "subnet",
            Port => "port",
            Router => "router",
            RouterInterface => "router_interface",
            SecurityGroup => "security_group",
            SecurityGroupRule => "security_group_rule",
            FloatingIp => "floating_ip",
            NetworkTag => "network_tag",
            Volume => "volume",
            VolumeMetadata => "volume_metadata",
            VolumeAction => "volume_action",
            VolumeType => "volume_type",
            VolumeTypeExtraSpec => "volume_type_extra_spec",
            Snapshot => "snapshot",
            Image => "image",
            ImageData => "image_data",
            ImageTag => "image_tag",
            Version => "version",
            Other => "other",
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One classified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub service: Service,
    pub resource: ResourceType,
    pub action: Action,
    /// Resource ids found in the path, outermost first (e.g. `[server_id, metadata_key]`,
    /// `[router_id]` for an interface add, `[image_id, tag]`). Empty for collection calls.
    pub ids: Vec<String>,
    /// The project id when the path carries one (Cinder `/v3/{project_id}/...`, legacy Nova
    /// `/v2.1/{project_id}/...`, Keystone `/v3/projects/{id}/...` role assignments).
    pub project: Option<String>,
    /// For `Action::Action`: the action's name (`os-start`, `add_router_interface`,
    /// `os-extend`, `reboot`, ...), when the path or body names it.
    pub action_name: Option<String>,
}

impl Operation {
    /// An operation on a path the gateway does not understand: proxied untouched, never
    /// mirrored. Mutating methods are still flagged so that a failover freeze covers them.
    pub fn other(service: Service, action: Action) -> Operation {
        Operation {
            service,
            resource: ResourceType::Other,
            action,
            ids: Vec::new(),
            project: None,
            action_name: None,
        }
    }

    /// The policy name of this operation, e.g. `compute:create_server`,
    /// `network:delete_security_group_rule`, `image:update_image`.
    pub fn policy_name(&self) -> String {
        format!(
            "{}:{}_{}",
            self.service.as_str(),
            self.action.as_str(),
            self.resource.as_str()
        )
    }

    /// The primary id of the resource the call targets, if the path names one.
    pub fn target_id(&self) -> Option<&str> {
        self.ids.first().map(String::as_str)
    }
}
