//! Reading and validating a policy file: TOML text → [`Policy`], reporting every error at
//! once with its key path.
//!
//! Structure is read with serde (unknown keys reported through `serde_ignored`); leaf values
//! are kept as `toml::Value` and checked here, so that one wrong value never hides another.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::Deserialize;
use toml::Value;

use crate::duration::parse_duration;
use crate::error::{Errors, PolicyError, PolicyErrorKind as K};
use crate::glob::Glob;
use crate::model::{
    default_tiers, tier_bit, Matcher, MirrorMode, OnFailure, OperationRule, Policy, Quota,
    ResourceKind, Rule, RuleIndex, TenantPolicy, Tier, TierSet, MAX_TIERS,
};

#[derive(Deserialize)]
#[serde(
    expecting = "a tier table (mode, interval, max_lag, rpo, rto, on_failure, restore_on_failover, volume_types, description)"
)]
struct RawTier {
    mode: Option<Value>,
    interval: Option<Value>,
    max_lag: Option<Value>,
    rpo: Option<Value>,
    rto: Option<Value>,
    on_failure: Option<Value>,
    restore_on_failover: Option<Value>,
    volume_types: Option<BTreeMap<String, Value>>,
    description: Option<Value>,
}

/// `[default]` and each `[[rules]]` entry (`name`, `description`, `match` only in rules).
#[derive(Deserialize)]
#[serde(
    expecting = "a table of tenant settings (default_tier, allowed_tiers, deny, allow, quotas, ...)"
)]
struct RawSection {
    name: Option<Value>,
    description: Option<Value>,
    #[serde(rename = "match")]
    matcher: Option<RawMatch>,
    default_tier: Option<Value>,
    allowed_tiers: Option<Value>,
    read_only_during_failover: Option<Value>,
    on_failure: Option<Value>,
    deny: Option<Vec<RawOperationRule>>,
    allow: Option<Vec<RawOperationRule>>,
    quotas: Option<BTreeMap<String, RawQuota>>,
}

#[derive(Deserialize)]
#[serde(expecting = "a table with project_id, project_name, domain and/or project_tag")]
struct RawMatch {
    project_id: Option<Value>,
    project_name: Option<Value>,
    domain: Option<Value>,
    project_tag: Option<Value>,
}

#[derive(Deserialize)]
#[serde(expecting = "a table with operation, and optionally tier and reason")]
struct RawOperationRule {
    operation: Option<Value>,
    tier: Option<Value>,
    reason: Option<Value>,
}

#[derive(Deserialize)]
#[serde(expecting = "a table of limits (vcpus, ram_mb, volume_gb, servers, volumes, ...)")]
struct RawQuota {
    vcpus: Option<Value>,
    ram_mb: Option<Value>,
    volume_gb: Option<Value>,
    servers: Option<Value>,
    volumes: Option<Value>,
    snapshots: Option<Value>,
    networks: Option<Value>,
    subnets: Option<Value>,
    ports: Option<Value>,
    routers: Option<Value>,
    floating_ips: Option<Value>,
    security_groups: Option<Value>,
    images: Option<Value>,
}

impl RawQuota {
    fn count(&self, kind: ResourceKind) -> &Option<Value> {
        match kind {
            ResourceKind::Server => &self.servers,
            ResourceKind::Volume => &self.volumes,
            ResourceKind::Snapshot => &self.snapshots,
            ResourceKind::Network => &self.networks,
            ResourceKind::Subnet => &self.subnets,
            ResourceKind::Port => &self.ports,
            ResourceKind::Router => &self.routers,
            ResourceKind::FloatingIp => &self.floating_ips,
            ResourceKind::SecurityGroup => &self.security_groups,
            ResourceKind::Image => &self.images,
        }
    }
}

impl Policy {
    /// Parses and validates a policy file. On failure returns every error found, each with
    /// its key path (`tiers.silver.interval`, `rules[3].deny[0].operation`, ...).
    pub fn from_toml_str(text: &str) -> Result<Policy, Vec<PolicyError>> {
        let table: toml::Table = match text.parse() {
            Ok(table) => table,
            Err(e) => {
                return Err(vec![PolicyError {
                    path: String::new(),
                    kind: K::Syntax,
                    reason: e.to_string().trim_end().to_owned(),
                }])
            }
        };
        let mut errs = Errors::default();
        let (mut tiers_v, mut default_v, mut rules_v) = (None, None, None);
        for (key, value) in table {
            match key.as_str() {
                "tiers" => tiers_v = Some(value),
                "default" => default_v = Some(value),
                "rules" => rules_v = Some(value),
                _ => errs.push(
                    &key,
                    K::UnknownKey,
                    "unknown key (top-level keys: tiers, default, rules)",
                ),
            }
        }

        let tiers = parse_tiers(tiers_v, &mut errs);
        let names = TierNames(&tiers);

        let fallback = TenantPolicy {
            default_tier: names.fallback_default(),
            allowed: names.all(),
            read_only_during_failover: false,
            on_failure: None,
            deny: Vec::new(),
            allow: Vec::new(),
            quotas: vec![None; tiers.len()],
        };
        let default = match default_v {
            None => {
                if names.index("bronze").is_none() {
                    errs.push(
                        "default.default_tier",
                        K::Missing,
                        "required: no tier named \"bronze\" exists to use as the default",
                    );
                }
                fallback
            }
            Some(value) => match read::<RawSection>(value, "default", &mut errs) {
                None => fallback,
                Some(raw) => {
                    for (key, present) in [
                        ("match", raw.matcher.is_some()),
                        ("name", raw.name.is_some()),
                    ] {
                        if present {
                            errs.push(
                                &format!("default.{key}"),
                                K::Inapplicable,
                                "only [[rules]] entries have this key; [default] applies to every tenant no rule matches",
                            );
                        }
                    }
                    let inherit_default = names.index("bronze").is_some();
                    if raw.default_tier.is_none() && !inherit_default {
                        errs.push(
                            "default.default_tier",
                            K::Missing,
                            "required: no tier named \"bronze\" exists to use as the default",
                        );
                    }
                    section(&raw, "default", &fallback, &names, &mut errs)
                }
            },
        };

        let mut rules = Vec::new();
        match rules_v {
            None => {}
            Some(Value::Array(items)) => {
                let mut seen = HashSet::new();
                for (i, item) in items.into_iter().enumerate() {
                    let path = format!("rules[{i}]");
                    let Some(raw) = read::<RawSection>(item, &path, &mut errs) else {
                        continue;
                    };
                    let name = match string(&raw.name, &format!("{path}.name"), &mut errs) {
                        Some(name) => {
                            if !seen.insert(name.clone()) {
                                errs.push(
                                    &format!("{path}.name"),
                                    K::DuplicateRule,
                                    format!("another rule is already named {name:?}"),
                                );
                            }
                            name
                        }
                        None => path.clone(),
                    };
                    let description =
                        string(&raw.description, &format!("{path}.description"), &mut errs)
                            .unwrap_or_default();
                    let matcher = matcher(raw.matcher.as_ref(), &path, &mut errs);
                    let policy = section(&raw, &path, &default, &names, &mut errs);
                    rules.push(Rule {
                        name,
                        description,
                        matcher,
                        policy,
                    });
                }
            }
            Some(other) => errs.push(
                "rules",
                K::InvalidType,
                format!(
                    "expected an array of tables ([[rules]]), found {}",
                    other.type_str()
                ),
            ),
        }

        if !errs.0.is_empty() {
            return Err(errs.0);
        }
        let index = RuleIndex::build(&rules);
        Ok(Policy {
            tiers,
            default,
            rules,
            index,
        })
    }
}

/// Tier lookups during validation.
struct TierNames<'t>(&'t [Tier]);

impl TierNames<'_> {
    fn index(&self, name: &str) -> Option<usize> {
        self.0
            .iter()
            .position(|t| t.name.eq_ignore_ascii_case(name))
    }

    fn all(&self) -> TierSet {
        (0..self.0.len()).fold(0, |set, i| set | tier_bit(i))
    }

    fn fallback_default(&self) -> usize {
        self.index("bronze").unwrap_or(0)
    }

    fn list(&self) -> String {
        let names: Vec<&str> = self.0.iter().map(|t| t.name.as_str()).collect();
        names.join(", ")
    }

    /// Resolves a tier name, reporting an unknown one at `path`.
    fn resolve(&self, name: &str, path: &str, errs: &mut Errors) -> Option<usize> {
        let found = self.index(name);
        if found.is_none() {
            errs.push(
                path,
                K::UnknownTier,
                format!("unknown tier {name:?} (defined tiers: {})", self.list()),
            );
        }
        found
    }
}

/// Deserializes a structural value, reporting unknown keys and type errors under `path`.
fn read<T: for<'de> Deserialize<'de>>(value: Value, path: &str, errs: &mut Errors) -> Option<T> {
    let mut unknown = Vec::new();
    let result = serde_ignored::deserialize(value, |p: serde_ignored::Path<'_>| {
        unknown.push(join(path, &render_path(&p)));
    });
    for key in unknown {
        errs.push(&key, K::UnknownKey, "unknown key");
    }
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            let message = e.to_string().trim_end().replace('\n', " ");
            errs.push(path, K::InvalidType, message);
            None
        }
    }
}

fn render_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", render_path(parent)),
        P::Map { parent, key } => join(&render_path(parent), key),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            render_path(parent)
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (_, true) => prefix.to_owned(),
        _ if key.starts_with('[') => format!("{prefix}{key}"),
        _ => format!("{prefix}.{key}"),
    }
}

fn type_error(path: &str, expected: &str, found: &Value, errs: &mut Errors) {
    errs.push(
        path,
        K::InvalidType,
        format!("expected {expected}, found {}", found.type_str()),
    );
}

fn string(value: &Option<Value>, path: &str, errs: &mut Errors) -> Option<String> {
    match value.as_ref()? {
        Value::String(s) => Some(s.clone()),
        other => {
            type_error(path, "a string", other, errs);
            None
        }
    }
}

/// A string that must not be empty.
fn name(value: &Option<Value>, path: &str, errs: &mut Errors) -> Option<String> {
    let s = string(value, path, errs)?;
    if s.trim().is_empty() {
        errs.push(path, K::BadValue, "must not be empty");
        return None;
    }
    Some(s)
}

fn boolean(value: &Option<Value>, path: &str, errs: &mut Errors) -> Option<bool> {
    match value.as_ref()? {
        Value::Boolean(b) => Some(*b),
        other => {
            type_error(path, "true or false", other, errs);
            None
        }
    }
}

fn count(value: &Option<Value>, path: &str, errs: &mut Errors) -> Option<u64> {
    match value.as_ref()? {
        Value::Integer(n) if *n >= 0 => Some(*n as u64),
        Value::Integer(n) => {
            errs.push(
                path,
                K::BadValue,
                format!("{n} is negative; limits are 0 or more"),
            );
            None
        }
        other => {
            type_error(path, "a whole number", other, errs);
            None
        }
    }
}

fn duration(value: &Option<Value>, path: &str, errs: &mut Errors) -> Option<Duration> {
    match value.as_ref()? {
        Value::String(s) => match parse_duration(s) {
            Ok(d) => Some(d),
            Err(reason) => {
                errs.push(path, K::BadDuration, reason);
                None
            }
        },
        other => {
            errs.push(
                path,
                K::InvalidType,
                format!(
                    "expected a duration string with a unit such as \"5s\" or \"2m\", found {}",
                    other.type_str()
                ),
            );
            None
        }
    }
}

fn positive_duration(value: &Option<Value>, path: &str, errs: &mut Errors) -> Option<Duration> {
    let d = duration(value, path, errs)?;
    if d.is_zero() {
        errs.push(path, K::NonPositive, "must be greater than zero");
        return None;
    }
    Some(d)
}

fn one_of<'v>(
    value: &Option<Value>,
    path: &str,
    accepted: &[&'v str],
    errs: &mut Errors,
) -> Option<&'v str> {
    let s = string(value, path, errs)?;
    let found = accepted.iter().find(|a| **a == s).copied();
    if found.is_none() {
        errs.push(
            path,
            K::BadValue,
            format!("{s:?} is not one of {}", accepted.join(", ")),
        );
    }
    found
}

fn on_failure(value: &Option<Value>, path: &str, errs: &mut Errors) -> Option<OnFailure> {
    match one_of(value, path, &["reject", "degrade"], errs)? {
        "reject" => Some(OnFailure::Reject),
        _ => Some(OnFailure::Degrade),
    }
}

/// A tier name or a list of them, resolved to a set (and the names, for messages).
fn tier_set(
    value: &Value,
    path: &str,
    names: &TierNames<'_>,
    errs: &mut Errors,
) -> Option<(TierSet, Vec<String>)> {
    let mut set = 0;
    let mut listed = Vec::new();
    let mut ok = true;
    let mut one = |v: &Value, p: &str, errs: &mut Errors| match v {
        Value::String(s) => match names.resolve(s, p, errs) {
            Some(i) => {
                set |= tier_bit(i);
                listed.push(names.0[i].name.clone());
            }
            None => ok = false,
        },
        other => {
            type_error(p, "a tier name", other, errs);
            ok = false;
        }
    };
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                errs.push(path, K::BadValue, "must name at least one tier");
                return None;
            }
            for (i, item) in items.iter().enumerate() {
                one(item, &format!("{path}[{i}]"), errs);
            }
        }
        single => one(single, path, errs),
    }
    ok.then_some((set, listed))
}

fn parse_tiers(value: Option<Value>, errs: &mut Errors) -> Vec<Tier> {
    let table = match value {
        None => return default_tiers(),
        Some(Value::Table(table)) => table,
        Some(other) => {
            type_error(
                "tiers",
                "a table of tiers ([tiers.gold], ...)",
                &other,
                errs,
            );
            return default_tiers();
        }
    };
    if table.is_empty() {
        errs.push(
            "tiers",
            K::Missing,
            "defines no tier; remove [tiers] to use the built-in gold/silver/bronze/none",
        );
        return default_tiers();
    }
    if table.len() > MAX_TIERS {
        errs.push(
            "tiers",
            K::TooMany,
            format!(
                "{} tiers defined; at most {MAX_TIERS} are supported",
                table.len()
            ),
        );
    }
    let mut tiers: Vec<Tier> = Vec::new();
    for (tier_name, value) in table.into_iter().take(MAX_TIERS) {
        let path = format!("tiers.{tier_name}");
        if tier_name.is_empty()
            || !tier_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errs.push(
                &path,
                K::BadValue,
                "tier names use letters, digits, '-' and '_' (they appear in tags as dr-tier:<tier>)",
            );
        }
        if let Some(other) = tiers
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(&tier_name))
        {
            errs.push(
                &path,
                K::DuplicateTier,
                format!(
                    "duplicates tier {:?} (tier names are compared ignoring case)",
                    other.name
                ),
            );
        }
        let raw = read::<RawTier>(value, &path, errs);
        let tier = raw
            .map(|raw| tier(&tier_name, &raw, &path, errs))
            .unwrap_or_else(|| Tier {
                name: tier_name.clone(),
                description: String::new(),
                mode: MirrorMode::Off,
                rpo: None,
                rto: None,
                on_failure: OnFailure::Reject,
                restore_on_failover: false,
                volume_types: Vec::new(),
            });
        tiers.push(tier);
    }
    // Strongest protection first (the order a failover restores in), whatever the file order.
    tiers.sort_by(|a, b| {
        protection_rank(a)
            .cmp(&protection_rank(b))
            .then_with(|| a.name.cmp(&b.name))
    });
    tiers
}

fn protection_rank(tier: &Tier) -> (u8, Duration) {
    match tier.mode {
        MirrorMode::Sync => (0, Duration::ZERO),
        MirrorMode::Periodic { interval } => (1, interval),
        MirrorMode::Async { max_lag } => (2, max_lag),
        MirrorMode::Off => (3, Duration::ZERO),
    }
}

fn tier(tier_name: &str, raw: &RawTier, path: &str, errs: &mut Errors) -> Tier {
    let p = |key: &str| format!("{path}.{key}");
    let interval = positive_duration(&raw.interval, &p("interval"), errs);
    let max_lag = positive_duration(&raw.max_lag, &p("max_lag"), errs);
    let mode_name = if raw.mode.is_none() {
        errs.push(
            &p("mode"),
            K::Missing,
            "required: one of sync, periodic, async, off",
        );
        None
    } else {
        one_of(
            &raw.mode,
            &p("mode"),
            &["sync", "periodic", "async", "off"],
            errs,
        )
    };
    let mut inapplicable = |key: &str, present: bool, wants: &str| {
        if present {
            errs.push(
                &p(key),
                K::Inapplicable,
                format!("only applies to mode = {wants:?}"),
            );
        }
    };
    let mode = match mode_name {
        Some("sync") => MirrorMode::Sync,
        Some("periodic") => MirrorMode::Periodic {
            interval: interval.unwrap_or(Duration::from_secs(60)),
        },
        Some("async") => MirrorMode::Async {
            max_lag: max_lag.unwrap_or(Duration::from_secs(300)),
        },
        _ => MirrorMode::Off,
    };
    if mode_name.is_some() {
        inapplicable(
            "interval",
            mode_name != Some("periodic") && raw.interval.is_some(),
            "periodic",
        );
        inapplicable(
            "max_lag",
            mode_name != Some("async") && raw.max_lag.is_some(),
            "async",
        );
        inapplicable(
            "on_failure",
            mode_name != Some("sync") && raw.on_failure.is_some(),
            "sync",
        );
        if mode_name == Some("periodic") && raw.interval.is_none() {
            errs.push(
                &p("interval"),
                K::Missing,
                "required for mode = \"periodic\" (e.g. \"60s\")",
            );
        }
        if mode_name == Some("async") && raw.max_lag.is_none() {
            errs.push(
                &p("max_lag"),
                K::Missing,
                "required for mode = \"async\" (e.g. \"300s\")",
            );
        }
    }
    let rpo = duration(&raw.rpo, &p("rpo"), errs).or(match mode {
        MirrorMode::Sync => Some(Duration::ZERO),
        MirrorMode::Periodic { interval } => Some(interval),
        MirrorMode::Async { max_lag } => Some(max_lag),
        MirrorMode::Off => None,
    });
    let rto = duration(&raw.rto, &p("rto"), errs);
    let on_failure =
        on_failure(&raw.on_failure, &p("on_failure"), errs).unwrap_or(OnFailure::Reject);
    let restore_on_failover = boolean(&raw.restore_on_failover, &p("restore_on_failover"), errs)
        .unwrap_or(mode == MirrorMode::Sync);
    let mut volume_types = Vec::new();
    for (from, to) in raw.volume_types.iter().flatten() {
        let key_path = format!("{path}.volume_types.{from}");
        if from.is_empty() {
            errs.push(
                &key_path,
                K::BadValue,
                "the requested volume type must not be empty",
            );
        }
        if let Some(to) = name(&Some(to.clone()), &key_path, errs) {
            volume_types.push((from.clone(), to));
        }
    }
    Tier {
        name: tier_name.to_owned(),
        description: string(&raw.description, &p("description"), errs).unwrap_or_default(),
        mode,
        rpo,
        rto,
        on_failure,
        restore_on_failover,
        volume_types,
    }
}

fn matcher(raw: Option<&RawMatch>, path: &str, errs: &mut Errors) -> Matcher {
    let match_path = format!("{path}.match");
    let Some(raw) = raw else {
        errs.push(
            &match_path,
            K::EmptyMatcher,
            "a rule needs a match table with project_id, project_name, domain or project_tag \
             (tenants no rule matches get [default])",
        );
        return Matcher::default();
    };
    let m = Matcher {
        project_id: name(&raw.project_id, &format!("{match_path}.project_id"), errs),
        project_name: name(
            &raw.project_name,
            &format!("{match_path}.project_name"),
            errs,
        ),
        domain: name(&raw.domain, &format!("{match_path}.domain"), errs),
        project_tag: name(&raw.project_tag, &format!("{match_path}.project_tag"), errs),
    };
    let given = raw.project_id.is_some()
        || raw.project_name.is_some()
        || raw.domain.is_some()
        || raw.project_tag.is_some();
    if !given {
        errs.push(
            &match_path,
            K::EmptyMatcher,
            "empty matcher: give project_id, project_name, domain or project_tag",
        );
    }
    m
}

/// Resolves a `[default]` or `[[rules]]` table into effective settings, inheriting what it
/// leaves out from `parent`.
fn section(
    raw: &RawSection,
    path: &str,
    parent: &TenantPolicy,
    names: &TierNames<'_>,
    errs: &mut Errors,
) -> TenantPolicy {
    let p = |key: &str| format!("{path}.{key}");
    let default_tier = match &raw.default_tier {
        None => Some(parent.default_tier),
        Some(Value::String(s)) => names.resolve(s, &p("default_tier"), errs),
        Some(other) => {
            type_error(&p("default_tier"), "a tier name", other, errs);
            None
        }
    };
    let allowed = match &raw.allowed_tiers {
        None => Some(parent.allowed),
        Some(v @ Value::Array(_)) => tier_set(v, &p("allowed_tiers"), names, errs).map(|(s, _)| s),
        Some(other) => {
            type_error(&p("allowed_tiers"), "a list of tier names", other, errs);
            None
        }
    };
    if let (Some(d), Some(allowed)) = (default_tier, allowed) {
        if allowed & tier_bit(d) == 0 {
            let inherited = if raw.default_tier.is_none() {
                " (inherited from [default])"
            } else {
                ""
            };
            let allowed_names: Vec<&str> = names
                .0
                .iter()
                .enumerate()
                .filter(|(i, _)| allowed & tier_bit(*i) != 0)
                .map(|(_, t)| t.name.as_str())
                .collect();
            errs.push(
                &p("default_tier"),
                K::DefaultNotAllowed,
                format!(
                    "default tier {:?}{inherited} is not in allowed_tiers [{}]",
                    names.0[d].name,
                    allowed_names.join(", ")
                ),
            );
        }
    }
    let operation_rules = |list: &Option<Vec<RawOperationRule>>, key: &str, errs: &mut Errors| {
        let mut out = Vec::new();
        for (i, entry) in list.iter().flatten().enumerate() {
            let ep = format!("{path}.{key}[{i}]");
            let glob = match name(&entry.operation, &format!("{ep}.operation"), errs) {
                Some(pattern) => match Glob::new(&pattern) {
                    Ok(g) => Some(g),
                    Err(reason) => {
                        errs.push(&format!("{ep}.operation"), K::BadGlob, reason);
                        None
                    }
                },
                None => {
                    if entry.operation.is_none() {
                        errs.push(
                            &format!("{ep}.operation"),
                            K::Missing,
                            "required: an operation name or glob, e.g. \"compute:delete_*\"",
                        );
                    }
                    None
                }
            };
            let tiers = match &entry.tier {
                None => Some((None, Vec::new())),
                Some(v) => {
                    tier_set(v, &format!("{ep}.tier"), names, errs).map(|(s, n)| (Some(s), n))
                }
            };
            let reason = string(&entry.reason, &format!("{ep}.reason"), errs);
            if let (Some(operation), Some((tiers, tier_names))) = (glob, tiers) {
                out.push(OperationRule {
                    operation,
                    tiers,
                    tier_names,
                    reason,
                });
            }
        }
        out
    };
    // A rule's allow/deny entries add to [default]'s (its own first), so that a global deny
    // cannot be dropped by accident; an exception is an `allow` entry.
    let mut deny = operation_rules(&raw.deny, "deny", errs);
    deny.extend(parent.deny.iter().cloned());
    let mut allow = operation_rules(&raw.allow, "allow", errs);
    allow.extend(parent.allow.iter().cloned());
    let mut quotas = parent.quotas.clone();
    for (tier_name, raw_quota) in raw.quotas.iter().flatten() {
        let qp = format!("{path}.quotas.{tier_name}");
        let Some(t) = names.resolve(tier_name, &qp, errs) else {
            continue;
        };
        let mut quota = Quota {
            vcpus: count(&raw_quota.vcpus, &format!("{qp}.vcpus"), errs),
            ram_mb: count(&raw_quota.ram_mb, &format!("{qp}.ram_mb"), errs),
            volume_gb: count(&raw_quota.volume_gb, &format!("{qp}.volume_gb"), errs),
            ..Quota::default()
        };
        for kind in ResourceKind::ALL {
            if let Some(limit) = count(raw_quota.count(kind), &format!("{qp}.{}", kind.key()), errs)
            {
                quota.set_count(kind, limit);
            }
        }
        if let Some(slot) = quotas.get_mut(t) {
            *slot = Some(quota);
        }
    }
    TenantPolicy {
        default_tier: default_tier.unwrap_or(parent.default_tier),
        allowed: allowed.unwrap_or(parent.allowed),
        read_only_during_failover: boolean(
            &raw.read_only_during_failover,
            &p("read_only_during_failover"),
            errs,
        )
        .unwrap_or(parent.read_only_during_failover),
        on_failure: on_failure(&raw.on_failure, &p("on_failure"), errs).or(parent.on_failure),
        deny,
        allow,
        quotas,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per kind of error: the file, the kind, the key path the message must name.
    #[test]
    fn every_validation_error_names_its_key() {
        let rows: &[(&str, K, &str)] = &[
            ("tiers = [", K::Syntax, "<policy>"),
            (
                "[tiers.gold]\nmode = \"sync\"\n[tiers.gold]\nmode = \"sync\"",
                K::Syntax,
                "<policy>",
            ),
            ("colour = 1", K::UnknownKey, "colour"),
            ("[tiers.gold]\nmode = \"sync\"\nspeed = 1", K::UnknownKey, "tiers.gold.speed"),
            ("[default]\ndefault_teir = \"gold\"", K::UnknownKey, "default.default_teir"),
            (
                "[[rules]]\nmatch = { project_name = \"a\", team = \"x\" }",
                K::UnknownKey,
                "rules[0].match.team",
            ),
            (
                "[[rules]]\nmatch = { project_name = \"a\" }\n[[rules.deny]]\noperation = \"*\"\nwhy = 1",
                K::UnknownKey,
                "rules[0].deny[0].why",
            ),
            (
                "[default.quotas.gold]\ncpus = 4",
                K::UnknownKey,
                "default.quotas.gold.cpus",
            ),
            ("tiers = 3", K::InvalidType, "tiers"),
            ("rules = 3", K::InvalidType, "rules"),
            ("[tiers]\ngold = 1", K::InvalidType, "tiers.gold"),
            ("[[rules]]\nmatch = \"demo\"", K::InvalidType, "rules[0]"),
            (
                "[tiers.silver]\nmode = \"periodic\"\ninterval = 60",
                K::InvalidType,
                "tiers.silver.interval",
            ),
            ("[default]\nread_only_during_failover = \"yes\"", K::InvalidType, "default.read_only_during_failover"),
            ("[default]\nallowed_tiers = \"gold\"", K::InvalidType, "default.allowed_tiers"),
            ("[default]\nallowed_tiers = [\"gold\", 3]", K::InvalidType, "default.allowed_tiers[1]"),
            ("[default.quotas.gold]\nvcpus = \"4\"", K::InvalidType, "default.quotas.gold.vcpus"),
            ("[tiers]", K::Missing, "tiers"),
            ("[tiers.gold]\ndescription = \"x\"", K::Missing, "tiers.gold.mode"),
            ("[tiers.silver]\nmode = \"periodic\"", K::Missing, "tiers.silver.interval"),
            ("[tiers.bronze]\nmode = \"async\"", K::Missing, "tiers.bronze.max_lag"),
            ("[tiers.gold]\nmode = \"sync\"", K::Missing, "default.default_tier"),
            (
                "[[rules]]\nmatch = { project_name = \"a\" }\n[[rules.deny]]\ntier = \"gold\"",
                K::Missing,
                "rules[0].deny[0].operation",
            ),
            ("[tiers.gold]\nmode = \"mirror\"", K::BadValue, "tiers.gold.mode"),
            ("[tiers.gold]\nmode = \"sync\"\non_failure = \"panic\"", K::BadValue, "tiers.gold.on_failure"),
            ("[default]\non_failure = \"retry\"", K::BadValue, "default.on_failure"),
            ("[tiers.\"gold tier\"]\nmode = \"sync\"", K::BadValue, "tiers.gold tier"),
            ("[default]\nallowed_tiers = []", K::BadValue, "default.allowed_tiers"),
            ("[default.quotas.gold]\nservers = -1", K::BadValue, "default.quotas.gold.servers"),
            ("[[rules]]\nmatch = { project_name = \"\" }", K::BadValue, "rules[0].match.project_name"),
            (
                "[tiers.gold]\nmode = \"sync\"\n[tiers.gold.volume_types]\nstandard = \"\"",
                K::BadValue,
                "tiers.gold.volume_types.standard",
            ),
            ("[tiers.silver]\nmode = \"periodic\"\ninterval = \"5 s\"", K::BadDuration, "tiers.silver.interval"),
            ("[tiers.silver]\nmode = \"periodic\"\ninterval = \"-5s\"", K::BadDuration, "tiers.silver.interval"),
            ("[tiers.gold]\nmode = \"sync\"\nrto = \"soon\"", K::BadDuration, "tiers.gold.rto"),
            ("[tiers.silver]\nmode = \"periodic\"\ninterval = \"0s\"", K::NonPositive, "tiers.silver.interval"),
            ("[tiers.bronze]\nmode = \"async\"\nmax_lag = \"0\"", K::NonPositive, "tiers.bronze.max_lag"),
            (
                "[[default.deny]]\noperation = \"nova:delete_*\"",
                K::BadGlob,
                "default.deny[0].operation",
            ),
            (
                "[[rules]]\nmatch = { project_name = \"a\" }\n[[rules.allow]]\noperation = \"Compute:Delete\"",
                K::BadGlob,
                "rules[0].allow[0].operation",
            ),
            ("[default]\ndefault_tier = \"platinum\"", K::UnknownTier, "default.default_tier"),
            (
                "[[rules]]\nmatch = { project_name = \"a\" }\nallowed_tiers = [\"gold\", \"platinum\"]",
                K::UnknownTier,
                "rules[0].allowed_tiers[1]",
            ),
            (
                "[[default.deny]]\noperation = \"*\"\ntier = \"platinum\"",
                K::UnknownTier,
                "default.deny[0].tier",
            ),
            ("[default.quotas.platinum]\nvcpus = 1", K::UnknownTier, "default.quotas.platinum"),
            (
                "[default]\ndefault_tier = \"gold\"\nallowed_tiers = [\"bronze\"]",
                K::DefaultNotAllowed,
                "default.default_tier",
            ),
            (
                "[[rules]]\nmatch = { project_name = \"a\" }\nallowed_tiers = [\"gold\"]",
                K::DefaultNotAllowed,
                "rules[0].default_tier",
            ),
            (
                "[tiers.gold]\nmode = \"sync\"\n[tiers.Gold]\nmode = \"sync\"",
                K::DuplicateTier,
                "tiers.gold",
            ),
            (
                "[[rules]]\nname = \"x\"\nmatch = { project_name = \"a\" }\n[[rules]]\nname = \"x\"\nmatch = { project_name = \"b\" }",
                K::DuplicateRule,
                "rules[1].name",
            ),
            ("[[rules]]\nname = \"x\"", K::EmptyMatcher, "rules[0].match"),
            ("[[rules]]\nmatch = {}", K::EmptyMatcher, "rules[0].match"),
            ("[tiers.bronze]\nmode = \"async\"\nmax_lag = \"1m\"\ninterval = \"5s\"", K::Inapplicable, "tiers.bronze.interval"),
            ("[tiers.bronze]\nmode = \"async\"\nmax_lag = \"1m\"\non_failure = \"degrade\"", K::Inapplicable, "tiers.bronze.on_failure"),
            ("[default]\nmatch = { project_name = \"a\" }", K::Inapplicable, "default.match"),
        ];
        let too_many: String = (0..65)
            .map(|i| format!("[tiers.t{i}]\nmode = \"off\"\n"))
            .collect();
        let rows: Vec<(&str, K, &str)> = rows
            .iter()
            .copied()
            .chain([(too_many.as_str(), K::TooMany, "tiers")])
            .collect();
        for (text, kind, path) in &rows {
            if std::env::var_os("SHOW_POLICY_ERRORS").is_some() {
                let errs = Policy::from_toml_str(text).unwrap_err();
                eprintln!("{}", crate::error::format_errors(&errs));
            }
            let errs = Policy::from_toml_str(text).expect_err(text);
            let found = errs.iter().find(|e| e.kind == *kind);
            let Some(err) = found else {
                panic!("{text:?}: no {kind} error in {errs:#?}");
            };
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("{path}:")),
                "{text:?}: {message:?} should start with {path:?}"
            );
            assert!(message.len() > path.len() + 3, "{message:?} has a reason");
        }
        // Every kind has a row.
        let kinds: HashSet<_> = rows.iter().map(|r| r.1).collect();
        assert_eq!(kinds.len(), 15);
    }

    #[test]
    fn reports_every_error_at_once() {
        let text = r#"
            bogus = true
            [tiers.silver]
            mode = "periodic"
            interval = "0s"
            [tiers.bronze]
            mode = "async"
            max_lag = "forever"
            [default]
            default_tier = "bronze"
            allowed_tiers = ["silver", "gold"]
            [[rules]]
            match = {}
            [[rules]]
            match = { project_tag = "x" }
            [[rules.deny]]
            operation = "compute:"
        "#;
        let errs = Policy::from_toml_str(text).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "bogus",
            "tiers.silver.interval",
            "tiers.bronze.max_lag",
            "default.allowed_tiers[1]",
            "rules[0].match",
            "rules[1].deny[0].operation",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
    }

    #[test]
    fn defaults_when_file_is_empty() {
        let policy = Policy::from_toml_str("").unwrap();
        let names: Vec<&str> = policy.tiers().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["gold", "silver", "bronze", "none"]);
        let gold = policy.tier("gold").unwrap();
        assert_eq!(gold.mode, MirrorMode::Sync);
        assert_eq!(gold.rpo, Some(Duration::ZERO));
        assert_eq!(gold.on_failure, OnFailure::Reject);
        assert!(gold.restore_on_failover);
        assert_eq!(
            policy.tier("silver").unwrap().mode,
            MirrorMode::Periodic {
                interval: Duration::from_secs(60)
            }
        );
        assert!(!policy.tier("silver").unwrap().restore_on_failover);
        assert_eq!(
            policy.tier("bronze").unwrap().mode,
            MirrorMode::Async {
                max_lag: Duration::from_secs(300)
            }
        );
        assert_eq!(policy.tier("none").unwrap().mode, MirrorMode::Off);
        assert_eq!(
            policy.default.default_tier,
            policy.tier_index("bronze").unwrap()
        );
    }

    #[test]
    fn tier_defaults_follow_mode() {
        let policy = Policy::from_toml_str(
            "[tiers.platinum]\nmode = \"sync\"\n[tiers.tin]\nmode = \"async\"\nmax_lag = \"10m\"\nrestore_on_failover = true\n[default]\ndefault_tier = \"tin\"",
        )
        .unwrap();
        let platinum = policy.tier("PLATINUM").unwrap();
        assert!(platinum.restore_on_failover);
        assert_eq!(platinum.rpo, Some(Duration::ZERO));
        let tin = policy.tier("tin").unwrap();
        assert!(tin.restore_on_failover);
        assert_eq!(tin.rpo, Some(Duration::from_secs(600)));
    }
}
