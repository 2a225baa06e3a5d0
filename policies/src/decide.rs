//! The decision for one request: tier, verdict, matched rule, mirror mode and rewrites.
//!
//! [`Policy::decide`] is pure and does not allocate unless it denies (the reason text is
//! built then). Rule lookup goes through an index by project id, project name, project tag
//! and domain, and still returns the first matching rule of the file.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use crate::duration::format_duration;
use crate::model::{tier_bit, MirrorMode, OnFailure, Policy, Resources, TenantPolicy, Tier};

/// Who is calling: the project the token is scoped to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tenant<'a> {
    pub project_id: &'a str,
    pub project_name: &'a str,
    pub domain_id: &'a str,
    pub domain_name: &'a str,
    pub project_tags: &'a [String],
}

/// Current recovery-capacity usage of the tenant, per tier. The decision asks for the tier it
/// chose, so the gateway need not know the tier beforehand.
pub trait UsageLookup {
    fn usage(&self, tier: &str) -> Resources;
}

/// The same usage whatever the tier (handy when the gateway already knows the tier).
impl UsageLookup for Resources {
    fn usage(&self, _tier: &str) -> Resources {
        *self
    }
}

impl<F: Fn(&str) -> Resources> UsageLookup for F {
    fn usage(&self, tier: &str) -> Resources {
        self(tier)
    }
}

/// Everything the decision needs to know about one request.
#[derive(Clone, Copy)]
pub struct Facts<'a> {
    pub tenant: Tenant<'a>,
    /// `<service>:<action>_<resource>`, e.g. `compute:create_server` (see the gateway's
    /// `Operation::policy_name`).
    pub operation: &'a str,
    /// The tier the target resource already carries (updates, deletes, actions), if known.
    pub resource_tier: Option<&'a str>,
    /// The tier the tenant asked for (metadata `dr_tier`, tag `dr-tier:<tier>`, header
    /// `X-DR-Tier`), if any.
    pub requested_tier: Option<&'a str>,
    /// What a create adds at the recovery site; [`Resources::ZERO`] for other calls.
    pub demand: Resources,
    /// The tenant's current usage per tier; consulted only when `demand` is not zero.
    pub usage: &'a (dyn UsageLookup + Sync),
    /// True while the cloud is failed over to the recovery site.
    pub failed_over: bool,
    /// The volume type a volume create asks for.
    pub volume_type: Option<&'a str>,
}

static NO_USAGE: Resources = Resources::ZERO;

impl<'a> Facts<'a> {
    /// Facts for `operation` by `tenant`, with nothing requested, no demand, not failed over.
    pub fn new(tenant: Tenant<'a>, operation: &'a str) -> Facts<'a> {
        Facts {
            tenant,
            operation,
            resource_tier: None,
            requested_tier: None,
            demand: Resources::ZERO,
            usage: &NO_USAGE,
            failed_over: false,
            volume_type: None,
        }
    }
}

impl fmt::Debug for Facts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Facts")
            .field("tenant", &self.tenant)
            .field("operation", &self.operation)
            .field("resource_tier", &self.resource_tier)
            .field("requested_tier", &self.requested_tier)
            .field("demand", &self.demand)
            .field("failed_over", &self.failed_over)
            .field("volume_type", &self.volume_type)
            .finish_non_exhaustive()
    }
}

/// Why a call is refused, which decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyKind {
    /// The policy forbids it (403).
    Forbidden,
    /// The recovery site cannot hold it for this tier (413).
    Capacity,
}

impl DenyKind {
    pub fn http_status(self) -> u16 {
        match self {
            DenyKind::Forbidden => 403,
            DenyKind::Capacity => 413,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DenyKind::Forbidden => "forbidden",
            DenyKind::Capacity => "capacity",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'p> {
    Allow,
    Deny {
        kind: DenyKind,
        /// Readable for the tenant; goes into the service's error body as is.
        reason: Cow<'p, str>,
    },
}

/// Where the decision's tier came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierSource {
    /// The tenant asked for it.
    Requested,
    /// The target resource already carries it.
    Resource,
    /// The matched rule's (or `[default]`'s) default tier.
    Default,
}

impl TierSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TierSource::Requested => "requested",
            TierSource::Resource => "carried by the resource",
            TierSource::Default => "default",
        }
    }
}

/// The rule that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchedRule<'p> {
    /// Index into `[[rules]]`; `None` for `[default]`.
    pub index: Option<usize>,
    /// The rule's `name` (`rules[i]` if it has none), or `default`.
    pub name: &'p str,
    pub description: &'p str,
}

/// Changes the gateway makes to the request before sending it upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rewrites<'p> {
    /// Create the volume with this type instead of the requested one.
    pub volume_type: Option<&'p str>,
}

impl Rewrites<'_> {
    pub fn is_empty(&self) -> bool {
        self.volume_type.is_none()
    }
}

/// The outcome for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'p> {
    /// The resource's tier. On a deny it is the tier that was evaluated (the requested one
    /// when it exists, else the default).
    pub tier: &'p Tier,
    pub tier_source: TierSource,
    pub verdict: Verdict<'p>,
    pub rule: MatchedRule<'p>,
    /// `tier.mode`, for convenience.
    pub mirror: MirrorMode,
    /// Failure behaviour when `mirror` is `Sync` (the tenant rule's, else the tier's).
    pub on_failure: OnFailure,
    /// Empty on a deny.
    pub rewrites: Rewrites<'p>,
}

impl Decision<'_> {
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    /// The deny reason, if denied.
    pub fn deny_reason(&self) -> Option<&str> {
        match &self.verdict {
            Verdict::Allow => None,
            Verdict::Deny { reason, .. } => Some(reason),
        }
    }
}

/// How to name the tenant in a reason: its project name, else its id.
fn who<'a>(tenant: &Tenant<'a>) -> &'a str {
    if tenant.project_name.is_empty() {
        tenant.project_id
    } else {
        tenant.project_name
    }
}

/// True for operations that change state (everything but `read_*`), except token
/// operations: authenticating must keep working during a failover.
fn is_mutating(operation: &str) -> bool {
    let action = operation
        .split_once(':')
        .map_or(operation, |(_, rest)| rest);
    let is_read = action == "read" || action.starts_with("read_");
    let is_token = operation.starts_with("identity:") && action.ends_with("_token");
    !is_read && !is_token
}

impl Policy {
    /// Index of the first rule matching `tenant`, if any.
    fn find_rule(&self, tenant: &Tenant<'_>) -> Option<usize> {
        let index = &self.index;
        let mut best: Option<u32> = None;
        let mut consider = |list: Option<&Vec<u32>>| {
            for &i in list.into_iter().flatten() {
                if best.is_some_and(|b| i >= b) {
                    break;
                }
                if self.rules[i as usize].matcher.matches(tenant) {
                    best = Some(i);
                    break;
                }
            }
        };
        if !index.by_project_id.is_empty() {
            consider(index.by_project_id.get(tenant.project_id));
        }
        if !index.by_project_name.is_empty() {
            consider(index.by_project_name.get(tenant.project_name));
        }
        if !index.by_project_tag.is_empty() {
            for tag in tenant.project_tags {
                consider(index.by_project_tag.get(tag.as_str()));
            }
        }
        if !index.by_domain.is_empty() {
            consider(index.by_domain.get(tenant.domain_id));
            if tenant.domain_name != tenant.domain_id {
                consider(index.by_domain.get(tenant.domain_name));
            }
        }
        best.map(|i| i as usize)
    }

    fn tenant_policy(&self, rule: Option<usize>) -> (&TenantPolicy, MatchedRule<'_>) {
        match rule {
            Some(i) => {
                let r = &self.rules[i];
                (
                    &r.policy,
                    MatchedRule {
                        index: Some(i),
                        name: &r.name,
                        description: &r.description,
                    },
                )
            }
            None => (
                &self.default,
                MatchedRule {
                    index: None,
                    name: "default",
                    description: "no rule matched; [default] applies",
                },
            ),
        }
    }

    /// The tenant's allowed tiers, weakest protection first ("bronze, silver").
    fn allowed_list(&self, tp: &TenantPolicy) -> String {
        let mut out = String::new();
        for (i, tier) in self.tiers.iter().enumerate().rev() {
            if tp.allowed & tier_bit(i) != 0 {
                if !out.is_empty() {
                    out.push_str(", ");
                }
                out.push_str(&tier.name);
            }
        }
        out
    }

    /// Decides one request. Pure; allocates only to word a deny.
    pub fn decide<'p>(&'p self, facts: &Facts<'_>) -> Decision<'p> {
        let (tp, rule) = self.tenant_policy(self.find_rule(&facts.tenant));
        let resource_tier = facts.resource_tier.and_then(|n| self.tier_index(n));
        let mut denial: Option<(DenyKind, Cow<'p, str>)> = None;

        let (tier_idx, tier_source) = match facts.requested_tier {
            Some(requested) => match self.tier_index(requested) {
                None => {
                    denial = Some((
                        DenyKind::Forbidden,
                        Cow::Owned(format!(
                            "project {} may use tiers {}; {requested} was requested, and no tier of that name exists",
                            who(&facts.tenant),
                            self.allowed_list(tp)
                        )),
                    ));
                    (tp.default_tier, TierSource::Default)
                }
                Some(i) if resource_tier == Some(i) => (i, TierSource::Resource),
                Some(i) => {
                    if tp.allowed & tier_bit(i) == 0 {
                        denial = Some((
                            DenyKind::Forbidden,
                            Cow::Owned(format!(
                                "project {} may use tiers {}; {} was requested",
                                who(&facts.tenant),
                                self.allowed_list(tp),
                                self.tiers[i].name
                            )),
                        ));
                    }
                    (i, TierSource::Requested)
                }
            },
            None => match resource_tier {
                Some(i) => (i, TierSource::Resource),
                None => (tp.default_tier, TierSource::Default),
            },
        };
        let tier = &self.tiers[tier_idx];

        if denial.is_none()
            && facts.failed_over
            && tp.read_only_during_failover
            && is_mutating(facts.operation)
        {
            denial = Some((
                DenyKind::Forbidden,
                Cow::Owned(format!(
                    "project {} is read-only while the cloud is failed over; {} is not allowed",
                    who(&facts.tenant),
                    facts.operation
                )),
            ));
        }

        if denial.is_none() {
            if let Some(entry) = tp
                .deny
                .iter()
                .find(|d| d.matches(facts.operation, tier_idx))
            {
                if !tp
                    .allow
                    .iter()
                    .any(|a| a.matches(facts.operation, tier_idx))
                {
                    let reason = match &entry.reason {
                        Some(text) => Cow::Borrowed(text.as_str()),
                        None => Cow::Owned(format!(
                            "{} is denied for {} resources of project {} (rule {}: deny {})",
                            facts.operation,
                            tier.name,
                            who(&facts.tenant),
                            rule.name,
                            entry
                        )),
                    };
                    denial = Some((DenyKind::Forbidden, reason));
                }
            }
        }

        if denial.is_none() && !facts.demand.is_zero() {
            if let Some(Some(quota)) = tp.quotas.get(tier_idx) {
                let usage = facts.usage.usage(&tier.name);
                let over =
                    quota
                        .dimensions(&usage, &facts.demand)
                        .find(|(_, limit, used, wanted)| {
                            *wanted > 0 && limit.is_some_and(|l| used.saturating_add(*wanted) > l)
                        });
                if let Some((what, limit, used, wanted)) = over {
                    denial = Some((
                        DenyKind::Capacity,
                        Cow::Owned(format!(
                            "project {} has recovery capacity for {} {what} at tier {}; {used} in use, {wanted} more requested",
                            who(&facts.tenant),
                            limit.unwrap_or(0),
                            tier.name
                        )),
                    ));
                }
            }
        }

        let on_failure = tp.on_failure.unwrap_or(tier.on_failure);
        let (verdict, rewrites) = match denial {
            Some((kind, reason)) => (Verdict::Deny { kind, reason }, Rewrites::default()),
            None => (
                Verdict::Allow,
                Rewrites {
                    volume_type: facts.volume_type.and_then(|v| tier.volume_type_for(v)),
                },
            ),
        };
        Decision {
            tier,
            tier_source,
            verdict,
            rule,
            mirror: tier.mode,
            on_failure,
            rewrites,
        }
    }

    /// The decision in words, for `drgw policy explain`: the tenant, the matching rule, the
    /// tier and where it came from, the verdict and the rewrites.
    pub fn explain(&self, facts: &Facts<'_>) -> String {
        let decision = self.decide(facts);
        let t = &facts.tenant;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "tenant:    project {:?} (id {:?}), domain {:?} (id {:?}), tags [{}]",
            t.project_name,
            t.project_id,
            t.domain_name,
            t.domain_id,
            t.project_tags.join(", ")
        );
        let _ = writeln!(out, "operation: {}", facts.operation);
        match decision.rule.index {
            Some(i) => {
                let r = &self.rules[i];
                let _ = write!(
                    out,
                    "rule:      rules[{i}] {:?} (match {})",
                    r.name,
                    r.matcher.describe()
                );
                if !r.description.is_empty() {
                    let _ = write!(out, ": {}", r.description);
                }
                out.push('\n');
            }
            None => {
                let _ = writeln!(
                    out,
                    "rule:      [default] (none of {} rules matched)",
                    self.rules.len()
                );
            }
        }
        let (tp, _) = self.tenant_policy(decision.rule.index);
        let _ = writeln!(
            out,
            "tiers:     default {}, allowed {}",
            self.tiers[tp.default_tier].name,
            self.allowed_list(tp)
        );
        let tier = decision.tier;
        let _ = write!(
            out,
            "tier:      {} ({}); mirror {}",
            tier.name,
            decision.tier_source.as_str(),
            tier.mode.describe()
        );
        if let Some(rpo) = tier.rpo {
            let _ = write!(out, ", rpo {}", format_duration(rpo));
        }
        if let Some(rto) = tier.rto {
            let _ = write!(out, ", rto {}", format_duration(rto));
        }
        if tier.mode == MirrorMode::Sync {
            let _ = write!(out, ", on failure {}", decision.on_failure.as_str());
        }
        let _ = writeln!(out, ", restore on failover {}", tier.restore_on_failover);
        if let (Some(carried), None) = (
            facts.resource_tier,
            facts.resource_tier.and_then(|n| self.tier(n)),
        ) {
            let _ = writeln!(
                out,
                "note:      the resource carries unknown tier {carried:?}; ignored"
            );
        }
        match &decision.verdict {
            Verdict::Allow => {
                let _ = writeln!(out, "verdict:   allow");
            }
            Verdict::Deny { kind, reason } => {
                let _ = writeln!(
                    out,
                    "verdict:   deny ({}, HTTP {}): {reason}",
                    kind.as_str(),
                    kind.http_status()
                );
            }
        }
        if let (Some(from), Some(to)) = (facts.volume_type, decision.rewrites.volume_type) {
            let _ = writeln!(out, "rewrite:   volume_type {from} -> {to}");
        }
        out
    }
}

impl crate::model::Matcher {
    pub(crate) fn matches(&self, t: &Tenant<'_>) -> bool {
        self.project_id.as_deref().is_none_or(|v| v == t.project_id)
            && self
                .project_name
                .as_deref()
                .is_none_or(|v| v == t.project_name)
            && self
                .domain
                .as_deref()
                .is_none_or(|v| v == t.domain_id || v == t.domain_name)
            && self
                .project_tag
                .as_deref()
                .is_none_or(|v| t.project_tags.iter().any(|tag| tag == v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResourceKind;

    const POLICY: &str = r#"
        [tiers.gold]
        mode = "sync"
        [tiers.gold.volume_types]
        standard = "standard-replicated"
        [tiers.silver]
        mode = "periodic"
        interval = "60s"
        [tiers.bronze]
        mode = "async"
        max_lag = "5m"
        [tiers.none]
        mode = "off"

        [default]
        default_tier = "bronze"
        [[default.deny]]
        operation = "compute:create_server"
        tier = "none"
        reason = "servers must be protected"
        [default.quotas.gold]
        vcpus = 8
        ram_mb = 16384
        volume_gb = 100
        servers = 2
        volumes = 3
        [default.quotas.silver]
        servers = 1

        [[rules]]
        name = "vip-tag"
        match = { project_tag = "vip" }
        default_tier = "gold"

        [[rules]]
        name = "by-id"
        match = { project_id = "p-1" }
        default_tier = "gold"
        on_failure = "degrade"
        [rules.quotas.gold]
        vcpus = 4

        [[rules]]
        name = "by-name"
        description = "the demo project"
        match = { project_name = "demo", domain = "Default" }
        default_tier = "silver"
        allowed_tiers = ["bronze", "silver"]

        [[rules]]
        name = "by-domain"
        match = { domain = "partners" }
        default_tier = "none"
        allowed_tiers = ["none", "bronze"]
        [[rules.allow]]
        operation = "compute:create_server"
        tier = "none"

        [[rules]]
        name = "frozen"
        match = { project_tag = "frozen" }
        read_only_during_failover = true

        [[rules]]
        name = "careful"
        match = { project_tag = "careful" }
        [[rules.deny]]
        operation = "*:delete_*"
        tier = "gold"
        [[rules.allow]]
        operation = "compute:delete_server_tag"

        [[rules]]
        name = "shadowed"
        match = { project_name = "demo" }
        default_tier = "gold"
    "#;

    #[derive(Default)]
    struct Row {
        label: &'static str,
        project_id: &'static str,
        project_name: &'static str,
        domain: (&'static str, &'static str),
        tags: &'static [&'static str],
        operation: &'static str,
        requested: Option<&'static str>,
        resource: Option<&'static str>,
        failed_over: bool,
        demand: Resources,
        usage: Resources,
        volume_type: Option<&'static str>,
        // expectations
        rule: &'static str,
        tier: &'static str,
        /// `None` = allowed; else (kind, substring of the reason).
        deny: Option<(DenyKind, &'static str)>,
        rewrite: Option<&'static str>,
    }

    fn server(vcpus: u64, ram_mb: u64) -> Resources {
        Resources {
            vcpus,
            ram_mb,
            ..Resources::ZERO
        }
        .with_count(ResourceKind::Server, 1)
    }

    fn volume(gb: u64) -> Resources {
        Resources {
            volume_gb: gb,
            ..Resources::ZERO
        }
        .with_count(ResourceKind::Volume, 1)
    }

    fn rows() -> Vec<Row> {
        let create = "compute:create_server";
        vec![
            // Rule matching by each key, and [default].
            Row { label: "by id", project_id: "p-1", operation: create, rule: "by-id", tier: "gold", ..Row::default() },
            Row { label: "by name and domain name", project_name: "demo", domain: ("default", "Default"), operation: create, rule: "by-name", tier: "silver", ..Row::default() },
            Row { label: "by domain id", domain: ("partners", "Partners Inc"), operation: "network:create_network", rule: "by-domain", tier: "none", ..Row::default() },
            Row { label: "by domain name", domain: ("d-77", "partners"), operation: "network:create_network", rule: "by-domain", tier: "none", ..Row::default() },
            Row { label: "by tag", tags: &["x", "frozen"], operation: create, rule: "frozen", tier: "bronze", ..Row::default() },
            Row { label: "default", project_name: "other", operation: create, rule: "default", tier: "bronze", ..Row::default() },
            Row { label: "name in another domain", project_name: "demo", domain: ("d-2", "Other"), operation: create, rule: "shadowed", tier: "gold", ..Row::default() },
            // Precedence: the earlier rule wins whatever index finds it.
            Row { label: "tag rule before id rule", project_id: "p-1", tags: &["vip"], operation: create, rule: "vip-tag", tier: "gold", ..Row::default() },
            Row { label: "name rule before later name rule", project_name: "demo", domain: ("default", "Default"), tags: &["careful"], operation: create, rule: "by-name", tier: "silver", ..Row::default() },
            Row { label: "first of two tag rules", tags: &["careful", "frozen"], operation: create, rule: "frozen", tier: "bronze", ..Row::default() },
            // Requested tiers.
            Row { label: "requested allowed", project_name: "demo", domain: ("default", "Default"), operation: create, requested: Some("bronze"), rule: "by-name", tier: "bronze", ..Row::default() },
            Row { label: "requested ignoring case", project_name: "demo", domain: ("default", "Default"), operation: create, requested: Some("Bronze"), rule: "by-name", tier: "bronze", ..Row::default() },
            Row { label: "requested forbidden", project_name: "demo", domain: ("default", "Default"), operation: create, requested: Some("gold"), rule: "by-name", tier: "gold",
                deny: Some((DenyKind::Forbidden, "project demo may use tiers bronze, silver; gold was requested")), ..Row::default() },
            Row { label: "requested unknown", project_name: "demo", domain: ("default", "Default"), operation: create, requested: Some("platinum"), rule: "by-name", tier: "silver",
                deny: Some((DenyKind::Forbidden, "platinum was requested, and no tier of that name exists")), ..Row::default() },
            Row { label: "resource keeps its tier", project_name: "demo", domain: ("default", "Default"), operation: "compute:update_server", resource: Some("gold"), rule: "by-name", tier: "gold", ..Row::default() },
            Row { label: "re-requesting the resource's tier", project_name: "demo", domain: ("default", "Default"), operation: "compute:update_server", resource: Some("gold"), requested: Some("gold"), rule: "by-name", tier: "gold", ..Row::default() },
            Row { label: "unknown resource tier falls back", project_name: "demo", domain: ("default", "Default"), operation: "compute:update_server", resource: Some("tin"), rule: "by-name", tier: "silver", ..Row::default() },
            // Deny globs (and allow exceptions).
            Row { label: "unprotected server denied", project_name: "x", operation: create, requested: Some("none"), rule: "default", tier: "none",
                deny: Some((DenyKind::Forbidden, "servers must be protected")), ..Row::default() },
            Row { label: "unprotected network fine", project_name: "x", operation: "network:create_network", requested: Some("none"), rule: "default", tier: "none", ..Row::default() },
            Row { label: "deny excepted by rule", domain: ("partners", "partners"), operation: create, rule: "by-domain", tier: "none", ..Row::default() },
            Row { label: "delete gold denied", project_name: "c", tags: &["careful"], operation: "volume:delete_volume", resource: Some("gold"), rule: "careful", tier: "gold",
                deny: Some((DenyKind::Forbidden, "volume:delete_volume is denied for gold resources of project c (rule careful: deny *:delete_* at tier gold)")), ..Row::default() },
            Row { label: "delete silver fine", tags: &["careful"], operation: "volume:delete_volume", resource: Some("silver"), rule: "careful", tier: "silver", ..Row::default() },
            Row { label: "allow exception", tags: &["careful"], operation: "compute:delete_server_tag", resource: Some("gold"), rule: "careful", tier: "gold", ..Row::default() },
            Row { label: "careful inherits default deny", tags: &["careful"], operation: create, requested: Some("none"), rule: "careful", tier: "none",
                deny: Some((DenyKind::Forbidden, "servers must be protected")), ..Row::default() },
            // Read-only during failover.
            Row { label: "frozen write while failed over", project_name: "f", tags: &["frozen"], operation: "network:update_port", failed_over: true, rule: "frozen", tier: "bronze",
                deny: Some((DenyKind::Forbidden, "project f is read-only while the cloud is failed over; network:update_port")), ..Row::default() },
            Row { label: "frozen read while failed over", tags: &["frozen"], operation: "network:read_port", failed_over: true, rule: "frozen", tier: "bronze", ..Row::default() },
            Row { label: "frozen token while failed over", tags: &["frozen"], operation: "identity:create_token", failed_over: true, rule: "frozen", tier: "bronze", ..Row::default() },
            Row { label: "frozen write before failover", tags: &["frozen"], operation: "network:update_port", rule: "frozen", tier: "bronze", ..Row::default() },
            Row { label: "others write while failed over", project_name: "x", operation: "network:update_port", failed_over: true, rule: "default", tier: "bronze", ..Row::default() },
            // Quotas: exact limit allowed, one over refused, per tier, rule overrides default.
            Row { label: "vcpus exactly at limit", project_name: "q", operation: create, requested: Some("gold"), demand: server(2, 1024), usage: server(6, 1024), rule: "default", tier: "gold", ..Row::default() },
            Row { label: "vcpus one over", project_name: "q", operation: create, requested: Some("gold"), demand: server(3, 1024), usage: server(6, 1024), rule: "default", tier: "gold",
                deny: Some((DenyKind::Capacity, "project q has recovery capacity for 8 vcpus at tier gold; 6 in use, 3 more requested")), ..Row::default() },
            Row { label: "servers one over", project_name: "q", operation: create, requested: Some("gold"), demand: server(1, 1), usage: server(1, 1).with_count(ResourceKind::Server, 2), rule: "default", tier: "gold",
                deny: Some((DenyKind::Capacity, "2 servers at tier gold")), ..Row::default() },
            Row { label: "ram exactly at limit", project_name: "q", operation: create, requested: Some("gold"), demand: server(1, 8192), usage: server(1, 8192), rule: "default", tier: "gold", ..Row::default() },
            Row { label: "silver quota is its own", project_name: "q", operation: create, requested: Some("silver"), demand: server(1, 1), usage: server(1, 1), rule: "default", tier: "silver",
                deny: Some((DenyKind::Capacity, "1 servers at tier silver")), ..Row::default() },
            Row { label: "bronze unlimited", project_name: "q", operation: create, demand: server(1000, 1 << 30), usage: server(1000, 1), rule: "default", tier: "bronze", ..Row::default() },
            Row { label: "rule quota overrides", project_id: "p-1", operation: create, demand: server(5, 1), rule: "by-id", tier: "gold",
                deny: Some((DenyKind::Capacity, "4 vcpus at tier gold")), ..Row::default() },
            Row { label: "volume gb one over", project_name: "q", operation: "volume:create_volume", requested: Some("gold"), demand: volume(51), usage: volume(50), rule: "default", tier: "gold",
                deny: Some((DenyKind::Capacity, "100 volume_gb")), ..Row::default() },
            Row { label: "no demand, no quota check", project_name: "q", operation: "compute:update_server", resource: Some("gold"), usage: server(100, 1), rule: "default", tier: "gold", ..Row::default() },
            // Volume type rewrite.
            Row { label: "gold standard rewritten", project_name: "q", operation: "volume:create_volume", requested: Some("gold"), volume_type: Some("standard"), demand: volume(1), rule: "default", tier: "gold", rewrite: Some("standard-replicated"), ..Row::default() },
            Row { label: "gold other type kept", project_name: "q", operation: "volume:create_volume", requested: Some("gold"), volume_type: Some("ssd"), rule: "default", tier: "gold", ..Row::default() },
            Row { label: "bronze standard kept", project_name: "q", operation: "volume:create_volume", volume_type: Some("standard"), rule: "default", tier: "bronze", ..Row::default() },
        ]
    }

    #[test]
    fn decision_table() {
        let policy = Policy::from_toml_str(POLICY).unwrap();
        for row in rows() {
            let tags: Vec<String> = row.tags.iter().map(|t| t.to_string()).collect();
            let tenant = Tenant {
                project_id: row.project_id,
                project_name: row.project_name,
                domain_id: row.domain.0,
                domain_name: row.domain.1,
                project_tags: &tags,
            };
            let usage = row.usage;
            let lookup = move |tier: &str| {
                if tier == "gold" || tier == "silver" {
                    usage
                } else {
                    Resources::ZERO
                }
            };
            let facts = Facts {
                requested_tier: row.requested,
                resource_tier: row.resource,
                failed_over: row.failed_over,
                demand: row.demand,
                usage: &lookup,
                volume_type: row.volume_type,
                ..Facts::new(tenant, row.operation)
            };
            let d = policy.decide(&facts);
            let label = row.label;
            assert_eq!(d.rule.name, row.rule, "{label}: rule");
            assert_eq!(d.tier.name, row.tier, "{label}: tier");
            assert_eq!(d.mirror, d.tier.mode, "{label}: mirror");
            match (&d.verdict, row.deny) {
                (Verdict::Allow, None) => {}
                (Verdict::Deny { kind, reason }, Some((want_kind, want_reason))) => {
                    assert_eq!(*kind, want_kind, "{label}: kind ({reason})");
                    assert!(
                        reason.contains(want_reason),
                        "{label}: {reason:?} lacks {want_reason:?}"
                    );
                }
                (got, want) => panic!("{label}: got {got:?}, wanted deny {want:?}"),
            }
            assert_eq!(d.rewrites.volume_type, row.rewrite, "{label}: rewrite");
            // explain agrees and never panics.
            let text = policy.explain(&facts);
            assert!(text.contains(row.operation), "{label}: {text}");
            assert!(
                text.contains(if d.is_allowed() {
                    "verdict:   allow"
                } else {
                    "verdict:   deny"
                }),
                "{label}: {text}"
            );
        }
    }

    #[test]
    fn on_failure_and_rule_details() {
        let policy = Policy::from_toml_str(POLICY).unwrap();
        let tenant = Tenant {
            project_id: "p-1",
            ..Tenant::default()
        };
        let d = policy.decide(&Facts::new(tenant, "compute:create_server"));
        assert_eq!(d.on_failure, OnFailure::Degrade);
        assert_eq!(d.rule.index, Some(1));
        assert_eq!(d.tier_source, TierSource::Default);
        let tenant = Tenant {
            project_name: "demo",
            domain_name: "Default",
            ..Tenant::default()
        };
        let d = policy.decide(&Facts::new(tenant, "compute:create_server"));
        assert_eq!(d.rule.description, "the demo project");
        assert_eq!(d.on_failure, OnFailure::Reject);
    }

    #[test]
    fn explain_reads_well() {
        let policy = Policy::from_toml_str(POLICY).unwrap();
        let tags = vec!["careful".to_owned()];
        let tenant = Tenant {
            project_id: "p-9",
            project_name: "c",
            domain_id: "default",
            domain_name: "Default",
            project_tags: &tags,
        };
        let facts = Facts {
            resource_tier: Some("gold"),
            ..Facts::new(tenant, "volume:delete_volume")
        };
        let text = policy.explain(&facts);
        assert!(
            text.contains("rules[5] \"careful\" (match project_tag = \"careful\")"),
            "{text}"
        );
        assert!(
            text.contains("tier:      gold (carried by the resource); mirror sync, rpo 0s"),
            "{text}"
        );
        assert!(
            text.contains("verdict:   deny (forbidden, HTTP 403)"),
            "{text}"
        );
    }

    #[test]
    fn default_policy_decides() {
        let policy = Policy::default();
        let d = policy.decide(&Facts::new(Tenant::default(), ""));
        assert_eq!(d.tier.name, "bronze");
        assert!(d.is_allowed());
    }
}
