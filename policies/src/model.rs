//! The validated policy model: tiers, tenant rules with their effective (inherited)
//! settings, quotas and rewrites, plus the rule index used by the decision.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use crate::duration::format_duration;
use crate::glob::Glob;

/// How changes of a tier's resources reach the recovery site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorMode {
    /// Applied at the recovery site before the tenant's call returns (gold).
    Sync,
    /// Journaled and applied in consistent batches every `interval` (silver).
    Periodic { interval: Duration },
    /// Journaled and applied in the background; alert when older than `max_lag` (bronze).
    /// While tenants keep the gateway busy, a record waits for at most a quarter of
    /// `max_lag` before it applies (the gateway's `mirror::pace`).
    Async { max_lag: Duration },
    /// Proxied, not mirrored.
    Off,
}

impl MirrorMode {
    /// The name used in the policy file: `sync`, `periodic`, `async`, `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            MirrorMode::Sync => "sync",
            MirrorMode::Periodic { .. } => "periodic",
            MirrorMode::Async { .. } => "async",
            MirrorMode::Off => "off",
        }
    }

    /// True unless the mode is [`MirrorMode::Off`].
    pub fn is_mirrored(self) -> bool {
        self != MirrorMode::Off
    }

    pub(crate) fn describe(self) -> String {
        match self {
            MirrorMode::Sync => "sync".to_owned(),
            MirrorMode::Periodic { interval } => {
                format!("periodic every {}", format_duration(interval))
            }
            MirrorMode::Async { max_lag } => format!("async, max lag {}", format_duration(max_lag)),
            MirrorMode::Off => "off (not mirrored)".to_owned(),
        }
    }
}

/// What a `sync` tier does when the recovery site cannot apply a change in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Compensate the primary change and answer 503.
    Reject,
    /// Answer success, keep the record pending, raise an alert.
    Degrade,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Reject => "reject",
            OnFailure::Degrade => "degrade",
        }
    }
}

/// One DR tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    /// As written in the file; requests match it ignoring ASCII case.
    pub name: String,
    pub description: String,
    pub mode: MirrorMode,
    /// Recovery point objective (metadata). Defaults: 0 for sync, `interval` for periodic,
    /// `max_lag` for async, none for off.
    pub rpo: Option<Duration>,
    /// Recovery time objective, if the operator states one.
    pub rto: Option<Duration>,
    /// Failure behaviour of a `sync` tier (tenant rules may override it). `Reject` by default.
    pub on_failure: OnFailure,
    /// Whether a failover restores this tier's workloads at the recovery site.
    /// Default: true for `sync` tiers (gold), false otherwise.
    pub restore_on_failover: bool,
    /// Volume type rewrites on create: requested type → type actually created.
    pub volume_types: Vec<(String, String)>,
}

impl Tier {
    /// The volume type to create instead of `requested`, if this tier maps it.
    pub fn volume_type_for(&self, requested: &str) -> Option<&str> {
        self.volume_types
            .iter()
            .find(|(from, _)| from == requested)
            .map(|(_, to)| to.as_str())
    }
}

/// Kinds of resources counted by recovery-capacity quotas. The policy-file key is the
/// plural ([`ResourceKind::key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    Server,
    Volume,
    Snapshot,
    Network,
    Subnet,
    Port,
    Router,
    FloatingIp,
    SecurityGroup,
    Image,
}

impl ResourceKind {
    pub const COUNT: usize = 10;
    pub const ALL: [ResourceKind; ResourceKind::COUNT] = [
        ResourceKind::Server,
        ResourceKind::Volume,
        ResourceKind::Snapshot,
        ResourceKind::Network,
        ResourceKind::Subnet,
        ResourceKind::Port,
        ResourceKind::Router,
        ResourceKind::FloatingIp,
        ResourceKind::SecurityGroup,
        ResourceKind::Image,
    ];

    /// The quota key in the policy file: `servers`, `volumes`, `floating_ips`, ...
    pub fn key(self) -> &'static str {
        match self {
            ResourceKind::Server => "servers",
            ResourceKind::Volume => "volumes",
            ResourceKind::Snapshot => "snapshots",
            ResourceKind::Network => "networks",
            ResourceKind::Subnet => "subnets",
            ResourceKind::Port => "ports",
            ResourceKind::Router => "routers",
            ResourceKind::FloatingIp => "floating_ips",
            ResourceKind::SecurityGroup => "security_groups",
            ResourceKind::Image => "images",
        }
    }

    /// The kind for a resource name as it appears in operation names
    /// (`server`, `volume`, `floating_ip`, ...), if quotas count it.
    pub fn from_resource(resource: &str) -> Option<ResourceKind> {
        ResourceKind::ALL
            .into_iter()
            .find(|kind| kind.key().strip_suffix('s') == Some(resource))
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// An amount of recovery capacity: what a create demands, or what a tenant already uses in
/// a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    pub vcpus: u64,
    pub ram_mb: u64,
    pub volume_gb: u64,
    /// Indexed by `ResourceKind as usize`; use [`Resources::count`] / [`Resources::with_count`].
    pub counts: [u64; ResourceKind::COUNT],
}

impl Resources {
    pub const ZERO: Resources = Resources {
        vcpus: 0,
        ram_mb: 0,
        volume_gb: 0,
        counts: [0; ResourceKind::COUNT],
    };

    /// How many resources of `kind`.
    pub fn count(&self, kind: ResourceKind) -> u64 {
        self.counts[kind.index()]
    }

    /// The same amounts with `n` resources of `kind`.
    pub fn with_count(mut self, kind: ResourceKind, n: u64) -> Resources {
        self.counts[kind.index()] = n;
        self
    }

    /// True when nothing is demanded (not a create, or a create of an uncounted kind).
    pub fn is_zero(&self) -> bool {
        *self == Resources::ZERO
    }
}

/// Limits of recovery capacity for one tenant in one tier; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quota {
    pub vcpus: Option<u64>,
    pub ram_mb: Option<u64>,
    pub volume_gb: Option<u64>,
    pub counts: [Option<u64>; ResourceKind::COUNT],
}

impl Quota {
    /// The limit for `kind`, if any.
    pub fn count(&self, kind: ResourceKind) -> Option<u64> {
        self.counts[kind.index()]
    }

    pub(crate) fn set_count(&mut self, kind: ResourceKind, limit: u64) {
        self.counts[kind.index()] = Some(limit);
    }

    /// Every dimension as (name, limit, used, demanded), for checking and explaining.
    pub(crate) fn dimensions(
        &self,
        usage: &Resources,
        demand: &Resources,
    ) -> impl Iterator<Item = (&'static str, Option<u64>, u64, u64)> {
        let fixed = [
            ("vcpus", self.vcpus, usage.vcpus, demand.vcpus),
            ("ram_mb", self.ram_mb, usage.ram_mb, demand.ram_mb),
            (
                "volume_gb",
                self.volume_gb,
                usage.volume_gb,
                demand.volume_gb,
            ),
        ];
        let (quota, usage, demand) = (*self, *usage, *demand);
        let counts = ResourceKind::ALL
            .into_iter()
            .map(move |k| (k.key(), quota.count(k), usage.count(k), demand.count(k)));
        fixed.into_iter().chain(counts)
    }
}

/// A set of tiers as a bit mask over tier indices (at most [`MAX_TIERS`]).
pub(crate) type TierSet = u64;

/// The most tiers a policy may define.
pub const MAX_TIERS: usize = 64;

pub(crate) fn tier_bit(index: usize) -> TierSet {
    1u64 << index
}

/// One `allow` / `deny` entry: an operation glob, optionally limited to some tiers.
#[derive(Debug, Clone)]
pub(crate) struct OperationRule {
    pub(crate) operation: Glob,
    /// Tiers the entry applies to; `None` = every tier.
    pub(crate) tiers: Option<TierSet>,
    pub(crate) tier_names: Vec<String>,
    pub(crate) reason: Option<String>,
}

impl OperationRule {
    pub(crate) fn matches(&self, operation: &str, tier: usize) -> bool {
        self.tiers.is_none_or(|set| set & tier_bit(tier) != 0) && self.operation.matches(operation)
    }
}

impl fmt::Display for OperationRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.operation)?;
        for (i, tier) in self.tier_names.iter().enumerate() {
            f.write_str(if i == 0 { " at tier " } else { "|" })?;
            f.write_str(tier)?;
        }
        Ok(())
    }
}

/// The effective settings of a tenant: a rule's own values, with `[default]`'s for the keys
/// the rule leaves out.
#[derive(Debug, Clone)]
pub(crate) struct TenantPolicy {
    pub(crate) default_tier: usize,
    pub(crate) allowed: TierSet,
    pub(crate) read_only_during_failover: bool,
    pub(crate) on_failure: Option<OnFailure>,
    pub(crate) deny: Vec<OperationRule>,
    pub(crate) allow: Vec<OperationRule>,
    /// Indexed by tier; `None` = unlimited.
    pub(crate) quotas: Vec<Option<Quota>>,
}

/// What a rule matches; every key given must match (at least one is given).
#[derive(Debug, Clone, Default)]
pub(crate) struct Matcher {
    pub(crate) project_id: Option<String>,
    pub(crate) project_name: Option<String>,
    /// Matches the domain id or the domain name.
    pub(crate) domain: Option<String>,
    pub(crate) project_tag: Option<String>,
}

impl Matcher {
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = &self.project_id {
            parts.push(format!("project_id = {v:?}"));
        }
        if let Some(v) = &self.project_name {
            parts.push(format!("project_name = {v:?}"));
        }
        if let Some(v) = &self.domain {
            parts.push(format!("domain = {v:?}"));
        }
        if let Some(v) = &self.project_tag {
            parts.push(format!("project_tag = {v:?}"));
        }
        parts.join(" and ")
    }
}

/// One `[[rules]]` entry.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) matcher: Matcher,
    pub(crate) policy: TenantPolicy,
}

/// Rules indexed by one of their keys: the one shared by the fewest rules, so that a
/// lookup scans short lists (a rule matches only when all its keys match, so any one of them
/// finds it). Each list holds rule indices in ascending order; the smallest fully matching
/// index over the tenant's candidate lists is the first match of the file.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleIndex {
    pub(crate) by_project_id: KeyMap,
    pub(crate) by_project_name: KeyMap,
    pub(crate) by_project_tag: KeyMap,
    pub(crate) by_domain: KeyMap,
}

/// Rule lists by key. FNV-1a instead of SipHash: the keys come from the operator's file, so
/// requests can only look up, never fill a bucket, and short keys hash several times faster.
pub(crate) type KeyMap = HashMap<String, Vec<u32>, BuildHasherDefault<Fnv>>;

#[derive(Debug)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl Matcher {
    /// The matcher's keys as (map number, value): 0 id, 1 name, 2 tag, 3 domain.
    fn keys(&self) -> impl Iterator<Item = (usize, &String)> {
        [
            &self.project_id,
            &self.project_name,
            &self.project_tag,
            &self.domain,
        ]
        .into_iter()
        .enumerate()
        .filter_map(|(map, key)| key.as_ref().map(|k| (map, k)))
    }
}

impl RuleIndex {
    pub(crate) fn build(rules: &[Rule]) -> RuleIndex {
        let mut uses: [HashMap<&str, usize>; 4] = Default::default();
        for rule in rules {
            for (map, key) in rule.matcher.keys() {
                *uses[map].entry(key).or_default() += 1;
            }
        }
        let mut maps: [KeyMap; 4] = Default::default();
        for (i, rule) in rules.iter().enumerate() {
            // Validation refuses empty matchers; such a rule could never match anyway.
            let best = rule
                .matcher
                .keys()
                .min_by_key(|(map, key)| (uses[*map][key.as_str()], *map));
            if let Some((map, key)) = best {
                maps[map].entry(key.clone()).or_default().push(i as u32);
            }
        }
        let [by_project_id, by_project_name, by_project_tag, by_domain] = maps;
        RuleIndex {
            by_project_id,
            by_project_name,
            by_project_tag,
            by_domain,
        }
    }
}

/// A validated policy. Build it with [`Policy::from_toml_str`]; [`Policy::default`] is the
/// built-in one (the four default tiers, every tenant bronze, all tiers allowed).
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) tiers: Vec<Tier>,
    pub(crate) default: TenantPolicy,
    pub(crate) rules: Vec<Rule>,
    pub(crate) index: RuleIndex,
}

impl Policy {
    /// The tiers, strongest protection first: sync, then periodic (shortest interval first),
    /// async (shortest max lag first), off; the order a failover restores in.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// The tier called `name` (ASCII case ignored).
    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.tier_index(name).map(|i| &self.tiers[i])
    }

    pub(crate) fn tier_index(&self, name: &str) -> Option<usize> {
        self.tiers
            .iter()
            .position(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Number of `[[rules]]`.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Names of the `[[rules]]`, in order (`rules[i]` for a rule without a `name`).
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }
}

/// The tiers used when the policy file defines none (see DESIGN.md, Tiers).
pub fn default_tiers() -> Vec<Tier> {
    let tier = |name: &str, description: &str, mode: MirrorMode, rpo: Option<Duration>| Tier {
        name: name.to_owned(),
        description: description.to_owned(),
        mode,
        rpo,
        rto: None,
        on_failure: OnFailure::Reject,
        restore_on_failover: mode == MirrorMode::Sync,
        volume_types: Vec::new(),
    };
    let interval = Duration::from_secs(60);
    let max_lag = Duration::from_secs(300);
    vec![
        tier(
            "gold",
            "mirrored inline",
            MirrorMode::Sync,
            Some(Duration::ZERO),
        ),
        tier(
            "silver",
            "mirrored in checkpoints",
            MirrorMode::Periodic { interval },
            Some(interval),
        ),
        tier(
            "bronze",
            "mirrored in the background",
            MirrorMode::Async { max_lag },
            Some(max_lag),
        ),
        tier("none", "not mirrored", MirrorMode::Off, None),
    ]
}

impl Default for Policy {
    fn default() -> Policy {
        let tiers = default_tiers();
        let all = tiers
            .iter()
            .enumerate()
            .fold(0, |s, (i, _)| s | tier_bit(i));
        Policy {
            default: TenantPolicy {
                default_tier: 2,
                allowed: all,
                read_only_during_failover: false,
                on_failure: None,
                deny: Vec::new(),
                allow: Vec::new(),
                quotas: vec![None; tiers.len()],
            },
            tiers,
            rules: Vec::new(),
            index: RuleIndex::default(),
        }
    }
}
