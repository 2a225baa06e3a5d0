//! The gateway's policy stage: for every classified mutating call, which DR tier the
//! resource gets, whether the tenant may make the call, and how the request is rewritten
//! so that the resource carries its tier.
//!
//! The decision itself is the pure `drgw-policies` crate ([`Policy::decide`]); this module
//! is its adapter: it gathers the facts (tenant, operation, requested tier, demand, usage),
//! turns the decision into a [`PolicyVerdict`], rewrites create bodies (see
//! [`request::tag_create_body`]), keeps recovery-capacity usage in the state store, and
//! hot-reloads the policy file ([`PolicyStage::reload`], SIGHUP, file change).
//!
//! Where the tier comes from:
//! - **creates**: the body's `dr_tier` (Nova/Cinder metadata, Glance property) or
//!   `dr-tier:<tier>` tag (Keystone, Neutron), else the `X-DR-Tier` header (both given
//!   and different: 400), else the tenant's default tier;
//! - **updates, deletes**: the tier the gateway recorded when it saw the resource created
//!   (its *footprint*), else the `X-DR-Tier` header as a hint, else the tenant's default
//!   tier. A tier in an update's body is a re-tier request and must be allowed. The mirror
//!   engine's ID map will later know the real tier of resources created before the gateway.
//!
//! Architecture invariant: a policy that fails to load never replaces the running one, and
//! a request sees exactly one policy from start to end (it holds an `Arc` of it).

pub mod cli;
pub mod lookup;
pub mod metrics;
pub mod request;
mod usage;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use bytes::Bytes;
use drgw_policies::{DenyKind, Verdict};
use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::fault;
use crate::mutation::{GoldFailure, MirrorMode, TierChoice};
use crate::operation::{Action, Operation, ResourceType, Service};
use crate::state::StateStore;
use crate::token::TokenContext;

pub use drgw_policies::{
    Facts, MirrorMode as PolicyMirrorMode, Policy, PolicyError, ResourceKind, Resources, Tenant,
};
pub use lookup::{FlavorSize, LookupError, ProjectInfo, SiteAccess};
pub use metrics::PolicyMetrics;
pub use request::{add_tag_to_response, neutron_tag_path, ProtectedKind, Target};
pub use watch::FileStamp;

use lookup::Lookups;
pub use usage::PendingUsage;
use usage::Usage;

/// Everything the stage needs to know about one request.
pub struct EvalContext<'a> {
    pub op: &'a Operation,
    pub method: &'a Method,
    /// Path relative to the service's base URL (`/v2.1/servers`, `/v3/<project>/volumes`).
    pub path: &'a str,
    pub tenant: &'a TokenContext,
    /// The request headers (`X-DR-Tier`).
    pub headers: &'a HeaderMap,
    /// The parsed JSON request body, rewritten in place on an allowed create.
    pub body: Option<&'a mut Value>,
    /// True while the cloud is failed over to the recovery site.
    pub failed_over: bool,
    /// The active site, for project and flavor look-ups; `None` decides from the token
    /// alone (no project tags, domain name = domain id, no flavor size).
    pub site: Option<SiteAccess<'a>>,
}

/// What the request path must do with a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyVerdict {
    /// Not a change the policy covers (reads, tokens, unclassified paths): proxy as is.
    NotProtected,
    /// Refuse: nothing reaches the upstream. `status` is 403 (policy), 413 (recovery
    /// capacity) or 400 (an unreadable tier request); `message` is meant for the tenant.
    Deny { status: StatusCode, message: String },
    /// Proceed with the (possibly rewritten) body.
    Allow {
        tier: TierChoice,
        /// Work to do right after a successful upstream create.
        after_create: Option<AfterCreate>,
        /// What to pass to [`PolicyStage::record_usage`] after a successful upstream call.
        usage: UsageDelta,
    },
}

impl PolicyVerdict {
    /// The denial in the fronted service's native error format (Glance negotiates the
    /// format from the request's `Accept`); `None` unless this is a `Deny`.
    pub fn deny_response(&self, service: Service, accept: Option<&str>) -> Option<Response<Bytes>> {
        match self {
            PolicyVerdict::Deny { status, message } => {
                Some(fault::error_response_for(service, *status, message, accept))
            }
            _ => None,
        }
    }

    /// The decided tier, for `X-DR-Tier` on the response.
    pub fn tier(&self) -> Option<&TierChoice> {
        match self {
            PolicyVerdict::Allow { tier, .. } => Some(tier),
            _ => None,
        }
    }
}

/// Work that must follow a successful create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterCreate {
    /// Neutron takes no tags in create bodies: `PUT` [`neutron_tag_path`] (no body) at
    /// the same site with the tenant's token, then [`add_tag_to_response`] so that the
    /// tenant sees the tag at once.
    NeutronTag { tag: String },
}

/// How a successful call changes the tenant's recovery-capacity usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageDelta {
    None,
    /// A create: add `resources` in the decided tier (and remember them under the id the
    /// response carries, so that a delete can release them).
    Add {
        kind: ProtectedKind,
        resources: Resources,
    },
    /// A delete: release what the create of `id` added, if the gateway saw it.
    Remove {
        kind: ProtectedKind,
        id: String,
    },
}

/// The outcome of a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub path: Option<PathBuf>,
    /// Tier names, strongest protection first.
    pub tiers: Vec<String>,
    pub rules: usize,
}

impl ReloadReport {
    fn of(path: Option<&Path>, policy: &Policy) -> ReloadReport {
        ReloadReport {
            path: path.map(Path::to_path_buf),
            tiers: policy.tiers().iter().map(|t| t.name.clone()).collect(),
            rules: policy.rule_count(),
        }
    }
}

/// Why a policy file could not be read at all (as a one-error list, like parse errors).
fn read_error(path: &Path, e: &std::io::Error) -> Vec<PolicyError> {
    vec![PolicyError {
        path: String::new(),
        kind: drgw_policies::PolicyErrorKind::Syntax,
        reason: format!("cannot read {}: {e}", path.display()),
    }]
}

/// Reads and validates a policy file (no file: the built-in policy).
pub fn load_policy(path: Option<&Path>) -> Result<Policy, Vec<PolicyError>> {
    match path {
        None => Ok(Policy::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| read_error(p, &e))?;
            Policy::from_toml_str(&text)
        }
    }
}

/// The policy stage of a running gateway. Shared as `Arc<PolicyStage>`.
pub struct PolicyStage {
    path: Option<PathBuf>,
    policy: ArcSwap<Policy>,
    usage: Usage,
    metrics: PolicyMetrics,
    lookups: Lookups,
    /// The file's stamp when it was last read (the watcher compares against it).
    stamp: Mutex<Option<FileStamp>>,
}

impl std::fmt::Debug for PolicyStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStage")
            .field("path", &self.path)
            .field("rules", &self.policy.load().rule_count())
            .finish_non_exhaustive()
    }
}

impl PolicyStage {
    /// Loads the policy at `path` (none: the built-in policy), registers the metrics on
    /// `registry` and restores `drgw_protected_resources` from the usage counters in
    /// `store`. A file that does not validate is refused with every error.
    pub async fn load(
        path: Option<&Path>,
        store: Arc<dyn StateStore>,
        registry: &prometheus::Registry,
    ) -> Result<PolicyStage, Vec<PolicyError>> {
        let stamp = path.and_then(watch::stamp);
        let policy = load_policy(path)?;
        let metrics = PolicyMetrics::new(registry).map_err(|e| {
            vec![PolicyError {
                path: String::new(),
                kind: drgw_policies::PolicyErrorKind::TooMany,
                reason: format!("cannot register the policy metrics: {e}"),
            }]
        })?;
        let stage = PolicyStage {
            path: path.map(Path::to_path_buf),
            policy: ArcSwap::from_pointee(policy),
            usage: Usage::new(store),
            metrics,
            lookups: Lookups::new(),
            stamp: Mutex::new(stamp),
        };
        if let Err(e) = stage.usage.restore_gauges(&stage.metrics).await {
            tracing::warn!(error = %e, "cannot restore drgw_protected_resources from the usage counters");
        }
        Ok(stage)
    }

    /// The policy file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The policy requests starting now see.
    pub fn current(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    pub fn metrics(&self) -> &PolicyMetrics {
        &self.metrics
    }

    /// Re-reads the policy file. A file that does not validate never replaces the running
    /// policy: its errors are logged and returned. Requests already under way keep the
    /// policy they started with.
    pub fn reload(&self) -> Result<ReloadReport, Vec<PolicyError>> {
        let path = self.path.as_deref();
        if let (Some(p), Ok(mut stamp)) = (path, self.stamp.lock()) {
            *stamp = watch::stamp(p);
        }
        match load_policy(path) {
            Ok(policy) => {
                let report = ReloadReport::of(path, &policy);
                self.policy.store(Arc::new(policy));
                self.metrics.reloads.with_label_values(&["ok"]).inc();
                tracing::info!(path = ?path, tiers = ?report.tiers, rules = report.rules, "policy reloaded");
                Ok(report)
            }
            Err(errors) => {
                self.metrics.reloads.with_label_values(&["error"]).inc();
                for e in &errors {
                    tracing::error!(path = ?path, error = %e, "policy reload refused; the running policy stays");
                }
                Err(errors)
            }
        }
    }

    /// [`reload`](Self::reload) as the admin endpoint `POST /v1/policies/reload` answers
    /// it: 200 `{"reloaded": true, "path", "tiers", "rules"}` or 422 `{"reloaded": false,
    /// "errors": [{"key", "kind", "reason"}]}`.
    pub fn reload_response(&self) -> (StatusCode, Value) {
        match self.reload() {
            Ok(r) => (
                StatusCode::OK,
                json!({
                    "reloaded": true,
                    "path": r.path.map(|p| p.display().to_string()),
                    "tiers": r.tiers,
                    "rules": r.rules,
                }),
            ),
            Err(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "reloaded": false,
                    "errors": errors.iter().map(|e| json!({
                        "key": e.path, "kind": e.kind.as_str(), "reason": e.reason,
                    })).collect::<Vec<_>>(),
                }),
            ),
        }
    }

    /// Decides one request; on an allowed create, rewrites `ctx.body` to carry the tier
    /// (and the policy's volume type).
    pub async fn evaluate(&self, ctx: EvalContext<'_>) -> PolicyVerdict {
        let op = ctx.op;
        if !op.action.is_mutating()
            || matches!(
                op.resource,
                ResourceType::Token | ResourceType::Catalog | ResourceType::Version
            )
        {
            return PolicyVerdict::NotProtected;
        }
        let target = request::target(op, ctx.method, ctx.path);
        let operation = match &target {
            Some(t) if op.resource == ResourceType::Other => format!(
                "{}:{}_{}",
                t.kind.service().as_str(),
                t.action.as_str(),
                t.kind.resource_type().as_str()
            ),
            None if op.resource == ResourceType::Other => return PolicyVerdict::NotProtected,
            _ => op.policy_name(),
        };
        let kind = target.as_ref().map(|t| t.kind);
        let action = target.as_ref().map_or(op.action, |t| t.action);
        let policy = self.current();

        // Who: the token's project, plus tags and domain name when rules may need them.
        let project_id = ctx.tenant.project_id.as_deref().unwrap_or("");
        let domain_id = ctx
            .tenant
            .project_domain_id
            .as_deref()
            .or(ctx.tenant.domain_id.as_deref())
            .unwrap_or("");
        let info = match (&ctx.site, policy.rule_count() > 0 && !project_id.is_empty()) {
            (Some(site), true) => match self.lookups.project(site, project_id, domain_id).await {
                Ok(info) => Some(info),
                Err(e) => {
                    tracing::warn!(project = project_id, error = %e, "cannot look the project up; deciding from the token alone");
                    None
                }
            },
            _ => None,
        };
        let no_tags = Vec::new();
        let tenant = Tenant {
            project_id,
            project_name: ctx.tenant.project_name.as_deref().unwrap_or(""),
            domain_id,
            domain_name: info.as_ref().map_or(domain_id, |i| i.domain_name.as_str()),
            project_tags: info.as_ref().map_or(&no_tags, |i| &i.tags),
        };

        // What tier is asked for, and what the resource already has.
        let mut body = ctx.body;
        let is_create = action == Action::Create;
        let footprint = match (&target, is_create) {
            (
                Some(Target {
                    id: Some(id), kind, ..
                }),
                false,
            ) => self.usage.footprint(*kind, id).await,
            // Replacing a Neutron resource's tags: the footprint is its parent's.
            (None, false) if op.resource == ResourceType::NetworkTag => {
                let parent = crate::services::network::tag_parent(ctx.path)
                    .and_then(ProtectedKind::from_resource_type);
                match (parent, op.target_id()) {
                    (Some(parent), Some(id)) => self.usage.footprint(parent, id).await,
                    _ => None,
                }
            }
            _ => None,
        };
        // A replace-all tag set carries the resource's current tier tag next to the new one
        // (the openstack CLI sends the tags it saw plus the added one): the new one is asked,
        // and the old tag is dropped from the set.
        if let (Some(f), Some(b)) = (&footprint, body.as_deref_mut()) {
            if let Some(new) = request::settle_retier(kind, b, &f.tier) {
                tracing::debug!(from = %f.tier, to = %new, "tag set re-tiers the resource");
            }
        }
        let asked = request::requested_tier(kind, body.as_deref(), ctx.headers);
        let asked = match asked {
            Ok(a) => a,
            Err(e) => return self.deny("-", StatusCode::BAD_REQUEST, e.to_string()),
        };
        let (requested, resource_tier) = if is_create {
            (asked, None)
        } else {
            let from_body = body
                .as_deref()
                .and_then(|b| request::body_tier(kind, b).ok().flatten());
            let hint = request::header_tier(ctx.headers).ok().flatten();
            (
                from_body,
                footprint.as_ref().map(|f| f.tier.clone()).or(hint),
            )
        };
        let volume_type = match (kind, body.as_deref()) {
            (Some(ProtectedKind::Volume), Some(b)) if is_create => {
                request::volume_type(b).map(str::to_owned)
            }
            _ => None,
        };
        let facts = Facts {
            requested_tier: requested.as_deref(),
            resource_tier: resource_tier.as_deref(),
            failed_over: ctx.failed_over,
            volume_type: volume_type.as_deref(),
            ..Facts::new(tenant, &operation)
        };
        let mut decision = policy.decide(&facts);
        if let Verdict::Deny { kind: deny, reason } = &decision.verdict {
            let status = status_of(*deny);
            return self.deny(&decision.tier.name, status, reason.to_string());
        }

        // Recovery capacity: what the create adds, against what the tenant uses in the tier.
        let mut demand = Resources::ZERO;
        if let (Some(k), true) = (kind, is_create) {
            demand = request::base_demand(k, body.as_deref());
            if k == ProtectedKind::Server {
                if let Some(flavor) = body.as_deref().and_then(request::flavor_ref) {
                    let count =
                        request::server_count(body.as_deref().and_then(|b| b.get("server")));
                    if let Some(site) = &ctx.site {
                        match self.lookups.flavor(site, flavor).await {
                            Ok(size) => {
                                demand.vcpus = size.vcpus.saturating_mul(count);
                                demand.ram_mb = size.ram_mb.saturating_mul(count);
                            }
                            Err(e) => {
                                tracing::warn!(flavor, error = %e, "cannot look the flavor up; its vCPUs and RAM are not counted")
                            }
                        }
                    }
                }
            }
            if !demand.is_zero() && !project_id.is_empty() {
                let usage = match self.usage.of(project_id, &decision.tier.name).await {
                    Ok(u) => u,
                    Err(e) => {
                        tracing::warn!(project = project_id, error = %e, "cannot read usage counters; counting from zero");
                        Resources::ZERO
                    }
                };
                let facts = Facts {
                    demand,
                    usage: &usage,
                    ..facts
                };
                decision = policy.decide(&facts);
                if let Verdict::Deny { kind: deny, reason } = &decision.verdict {
                    let status = status_of(*deny);
                    return self.deny(&decision.tier.name, status, reason.to_string());
                }
            }
        }

        let tier = TierChoice {
            name: decision.tier.name.clone(),
            mode: mirror_mode(decision.mirror),
            on_failure: match decision.on_failure {
                drgw_policies::OnFailure::Reject => GoldFailure::Reject,
                drgw_policies::OnFailure::Degrade => GoldFailure::Degrade,
            },
        };
        self.metrics
            .decisions
            .with_label_values(&[tier.name.as_str(), "allow"])
            .inc();
        let (after_create, usage) = match (&target, is_create) {
            (Some(t), true) => {
                let tag = request::tag_create_body(
                    t.kind,
                    body,
                    &tier.name,
                    decision.rewrites.volume_type,
                );
                (
                    tag.map(|tag| AfterCreate::NeutronTag { tag }),
                    UsageDelta::Add {
                        kind: t.kind,
                        resources: if demand.is_zero() {
                            request::base_demand(t.kind, None)
                        } else {
                            demand
                        },
                    },
                )
            }
            (
                Some(Target {
                    kind,
                    id: Some(id),
                    action: Action::Delete,
                }),
                false,
            ) => (
                None,
                UsageDelta::Remove {
                    kind: *kind,
                    id: id.clone(),
                },
            ),
            _ => (None, UsageDelta::None),
        };
        PolicyVerdict::Allow {
            tier,
            after_create,
            usage,
        }
    }

    fn deny(&self, tier: &str, status: StatusCode, message: String) -> PolicyVerdict {
        let result = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "capacity",
            StatusCode::BAD_REQUEST => "bad_request",
            _ => "forbidden",
        };
        self.metrics
            .decisions
            .with_label_values(&[tier, result])
            .inc();
        PolicyVerdict::Deny { status, message }
    }

    /// Records what a successful call changed: after a create in a mirrored tier, adds the
    /// resources in `tier` and remembers them under the id `response` carries; after a delete,
    /// releases what the create added. Storage errors are logged (usage is reconciled
    /// later; the tenant's call already succeeded).
    pub async fn record_usage(
        &self,
        tenant: &TokenContext,
        tier: &TierChoice,
        delta: &UsageDelta,
        response: Option<&Value>,
    ) {
        let project = tenant.project_id.as_deref().unwrap_or("");
        let result = match delta {
            UsageDelta::None => Ok(()),
            // A tier that is not mirrored holds nothing at the recovery site: no capacity
            // to count (and no transaction per create for it).
            UsageDelta::Add { .. } if tier.mode == MirrorMode::Off => Ok(()),
            UsageDelta::Add { kind, resources } => {
                match response.and_then(|r| request::bulk_items(*kind, r)) {
                    // A bulk create: each created resource counts one, under its own id.
                    Some(items) => {
                        let one = request::base_demand(*kind, None);
                        let mut result = Ok(());
                        for id in items.iter().map(|i| i.get("id").and_then(Value::as_str)) {
                            result = result.and(
                                self.usage
                                    .add(project, &tier.name, *kind, &one, id, &self.metrics)
                                    .await,
                            );
                        }
                        result
                    }
                    None => {
                        let id = response.and_then(|r| request::created_id(*kind, r));
                        self.usage
                            .add(project, &tier.name, *kind, resources, id, &self.metrics)
                            .await
                    }
                }
            }
            UsageDelta::Remove { kind, id } => self.usage.remove(*kind, id, &self.metrics).await,
        };
        if let Err(e) = result {
            tracing::warn!(project, tier = %tier.name, error = %e, "cannot record recovery-capacity usage");
        }
    }

    /// The usage a single (not bulk) create adds, prepared to commit with the create's
    /// journal record ([`crate::mirror::MirrorEngine::submit_along`]); `None` for any other
    /// delta, or when it cannot be prepared (then [`Policy::record_usage`] is the way).
    /// Once it has committed, [`Policy::usage_committed`]; if it did not,
    /// [`Policy::commit_usage`].
    pub fn usage_of_create(
        &self,
        tenant: &TokenContext,
        tier: &TierChoice,
        delta: &UsageDelta,
        response: Option<&Value>,
    ) -> Option<PendingUsage> {
        let UsageDelta::Add { kind, resources } = delta else {
            return None;
        };
        if tier.mode == MirrorMode::Off {
            return None; // not counted (see `record_usage`)
        }
        if response
            .and_then(|r| request::bulk_items(*kind, r))
            .is_some()
        {
            return None;
        }
        let project = tenant.project_id.as_deref().unwrap_or("");
        let id = response.and_then(|r| request::created_id(*kind, r));
        self.usage
            .prepare_add(project, &tier.name, *kind, resources, id)
            .ok()
    }

    /// Records that prepared usage committed (with a journal record).
    pub fn usage_committed(&self, pending: &PendingUsage) {
        pending.committed(&self.metrics);
    }

    /// Commits prepared usage on its own (errors are logged, like [`Policy::record_usage`]'s).
    pub async fn commit_usage(&self, pending: PendingUsage) {
        if let Err(e) = self.usage.commit(pending, &self.metrics).await {
            tracing::warn!(error = %e, "cannot record recovery-capacity usage");
        }
    }

    /// The usage of `project` in `tier`, as quotas see it.
    pub async fn usage_of(
        &self,
        project: &str,
        tier: &str,
    ) -> Result<Resources, crate::state::StateError> {
        self.usage.of(project, tier).await
    }

    /// Reloads on SIGHUP and when the policy file changes (its modification time or
    /// length, polled every second), until `shutdown` turns true.
    pub fn spawn_watchers(
        self: &Arc<Self>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        watch::spawn(self.clone(), shutdown)
    }

    pub(crate) fn file_changed(&self) -> bool {
        let Some(path) = self.path.as_deref() else {
            return false;
        };
        let now = watch::stamp(path);
        match self.stamp.lock() {
            Ok(last) => *last != now,
            Err(_) => false,
        }
    }
}

fn status_of(kind: DenyKind) -> StatusCode {
    StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::FORBIDDEN)
}

/// The policy crate's mirror mode as the mirror engine's.
pub fn mirror_mode(mode: drgw_policies::MirrorMode) -> MirrorMode {
    match mode {
        drgw_policies::MirrorMode::Sync => MirrorMode::Sync,
        drgw_policies::MirrorMode::Periodic { interval } => MirrorMode::Periodic { interval },
        drgw_policies::MirrorMode::Async { max_lag } => MirrorMode::Async { max_lag },
        drgw_policies::MirrorMode::Off => MirrorMode::Off,
    }
}
