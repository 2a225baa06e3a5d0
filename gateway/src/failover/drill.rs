//! The DR drill: without failing over, checks that every mirrored resource (every ID-map
//! entry) exists at the recovery site with the primary copy's attributes and references,
//! and reports, per tenant and tier, what is missing or differs — including drift made
//! outside the gateway (a resource deleted or renamed directly at the recovery site).
//!
//! Both copies are read with the gateway's service token at each site (`GET` by ID at the
//! resource's path). A recovery copy answering 404 is `missing`; a primary copy answering
//! 404 while still mapped is `stale`; attributes are compared only when both answer. A
//! reference (a subnet's `network_id`, ...) is compared through the ID map: the recovery
//! copy must point at the mapped copy of the primary's referent.
//!
//! The tenant and tier of an entry come from the journal record that mirrored it; for a
//! resource the journal no longer knows, the tenant comes from the primary copy's
//! `project_id`/`tenant_id`/`owner` and the tier is `unknown`.

use std::collections::{BTreeMap, HashMap};

use http::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::SiteName;
use crate::gateway::Gateway;
use crate::journal::RecordFilter;
use crate::operation::Service;
use crate::state::{now_ms, IdMapFilter, IdMapping};

/// The result for one mapped resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillOutcome {
    /// Present, with matching attributes and references.
    Ok,
    /// The recovery copy does not exist (404).
    Missing,
    /// Both exist; some compared attribute or reference differs.
    Differs,
    /// Gone at the primary but still mapped (the delete was not mirrored).
    Stale,
    /// A site could not be read (unreachable, 5xx, not JSON).
    Error,
}

impl DrillOutcome {
    /// `ok`, `missing`, `differs`, `stale` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            DrillOutcome::Ok => "ok",
            DrillOutcome::Missing => "missing",
            DrillOutcome::Differs => "differs",
            DrillOutcome::Stale => "stale",
            DrillOutcome::Error => "error",
        }
    }
}

/// One differing attribute or reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub attribute: String,
    /// The primary's value (for a reference: the recovery ID it should be).
    pub expected: Value,
    pub recovery: Value,
}

/// One checked resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillEntry {
    pub service: String,
    pub resource_type: String,
    pub primary_id: String,
    pub recovery_id: String,
    pub tenant: String,
    pub tier: String,
    /// The resource's name, when a copy has one.
    pub name: Option<String>,
    pub outcome: DrillOutcome,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Difference>,
    /// Why the outcome is `error`, or what could not be compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Counts of one tenant and tier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillGroup {
    pub tenant: String,
    pub tier: String,
    pub checked: u64,
    pub ok: u64,
    pub missing: u64,
    pub differs: u64,
    pub stale: u64,
    pub errors: u64,
}

/// The drill's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DrillReport {
    pub started_at_ms: u64,
    pub duration_ms: u64,
    pub checked: u64,
    pub ok: u64,
    pub missing: u64,
    pub differs: u64,
    pub stale: u64,
    pub errors: u64,
    /// Mappings of types the drill does not read (sub-resources such as tags).
    pub skipped: u64,
    pub groups: Vec<DrillGroup>,
    pub entries: Vec<DrillEntry>,
}

impl DrillReport {
    /// Whether every checked resource is `ok`.
    pub fn is_clean(&self) -> bool {
        self.checked == self.ok
    }

    /// The entries with a given outcome.
    pub fn with_outcome(&self, outcome: DrillOutcome) -> impl Iterator<Item = &DrillEntry> {
        self.entries.iter().filter(move |e| e.outcome == outcome)
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// A table: the counts per tenant and tier, then every entry that is not `ok`.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "DR drill: {} checked, {} ok, {} missing, {} differ, {} stale, {} errors, {} skipped ({} ms)\n\n",
            self.checked,
            self.ok,
            self.missing,
            self.differs,
            self.stale,
            self.errors,
            self.skipped,
            self.duration_ms
        );
        out.push_str(&format!(
            "{:<34} {:<8} {:>7} {:>6} {:>8} {:>7} {:>6} {:>6}\n",
            "TENANT", "TIER", "CHECKED", "OK", "MISSING", "DIFFERS", "STALE", "ERRORS"
        ));
        for g in &self.groups {
            out.push_str(&format!(
                "{:<34} {:<8} {:>7} {:>6} {:>8} {:>7} {:>6} {:>6}\n",
                g.tenant, g.tier, g.checked, g.ok, g.missing, g.differs, g.stale, g.errors
            ));
        }
        let problems: Vec<&DrillEntry> = self
            .entries
            .iter()
            .filter(|e| e.outcome != DrillOutcome::Ok)
            .collect();
        if problems.is_empty() {
            return out;
        }
        out.push_str(&format!(
            "\n{:<8} {:<24} {:<38} {:<38} {:<34} {:<8} DETAIL\n",
            "OUTCOME", "RESOURCE", "PRIMARY ID", "RECOVERY ID", "TENANT", "TIER"
        ));
        for e in problems {
            let mut detail: Vec<String> = e
                .differences
                .iter()
                .map(|d| format!("{}: {} != {}", d.attribute, d.expected, d.recovery))
                .collect();
            if let Some(n) = &e.note {
                detail.push(n.clone());
            }
            if let Some(n) = &e.name {
                detail.insert(0, format!("name={n}"));
            }
            out.push_str(&format!(
                "{:<8} {:<24} {:<38} {:<38} {:<34} {:<8} {}\n",
                e.outcome.as_str(),
                format!("{}/{}", e.service, e.resource_type),
                e.primary_id,
                e.recovery_id,
                e.tenant,
                e.tier,
                detail.join("; ")
            ));
        }
        out
    }

    /// Builds the counts and groups from `entries`.
    pub fn from_entries(
        started_at_ms: u64,
        duration_ms: u64,
        skipped: u64,
        entries: Vec<DrillEntry>,
    ) -> DrillReport {
        let mut r = DrillReport {
            started_at_ms,
            duration_ms,
            skipped,
            ..DrillReport::default()
        };
        let mut groups: BTreeMap<(String, String), DrillGroup> = BTreeMap::new();
        for e in &entries {
            let g = groups
                .entry((e.tenant.clone(), e.tier.clone()))
                .or_insert_with(|| DrillGroup {
                    tenant: e.tenant.clone(),
                    tier: e.tier.clone(),
                    ..DrillGroup::default()
                });
            g.checked += 1;
            r.checked += 1;
            let (gc, rc) = match e.outcome {
                DrillOutcome::Ok => (&mut g.ok, &mut r.ok),
                DrillOutcome::Missing => (&mut g.missing, &mut r.missing),
                DrillOutcome::Differs => (&mut g.differs, &mut r.differs),
                DrillOutcome::Stale => (&mut g.stale, &mut r.stale),
                DrillOutcome::Error => (&mut g.errors, &mut r.errors),
            };
            *gc += 1;
            *rc += 1;
        }
        r.groups = groups.into_values().collect();
        r.entries = entries;
        r
    }
}

/// How to read and compare one mapped resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSpec {
    pub service: Service,
    /// The path with `{id}` (and, for Cinder, `{project}`: the service account's project).
    pub path: &'static str,
    /// The body's wrapper key (`None`: Glance's unwrapped image).
    pub wrapper: Option<&'static str>,
    /// Attributes compared as they are.
    pub attributes: &'static [&'static str],
    /// References compared through the ID map: (attribute, service, resource type).
    pub references: &'static [(&'static str, &'static str, &'static str)],
}

const PROJECT_REF: (&str, &str, &str) = ("project_id", "identity", "project");

/// How the drill reads a mapping's (service, resource type), if it reads it at all.
pub fn read_spec(service: &str, resource_type: &str) -> Option<ReadSpec> {
    let spec = |service, path, wrapper, attributes, references| ReadSpec {
        service,
        path,
        wrapper,
        attributes,
        references,
    };
    Some(match (service, resource_type) {
        ("compute", "flavor") => spec(
            Service::Compute,
            "/v2.1/flavors/{id}",
            Some("flavor"),
            &["name", "vcpus", "ram", "disk"][..],
            &[][..],
        ),
        ("network", "network") => spec(
            Service::Network,
            "/v2.0/networks/{id}",
            Some("network"),
            &["name", "admin_state_up", "shared", "mtu"],
            &[PROJECT_REF],
        ),
        ("network", "subnet") => spec(
            Service::Network,
            "/v2.0/subnets/{id}",
            Some("subnet"),
            &["name", "cidr", "ip_version", "enable_dhcp", "gateway_ip"],
            &[("network_id", "network", "network"), PROJECT_REF],
        ),
        ("network", "router") => spec(
            Service::Network,
            "/v2.0/routers/{id}",
            Some("router"),
            &["name", "admin_state_up"],
            &[PROJECT_REF],
        ),
        ("network", "security_group") => spec(
            Service::Network,
            "/v2.0/security-groups/{id}",
            Some("security_group"),
            &["name", "description"],
            &[PROJECT_REF],
        ),
        ("network", "security_group_rule") => spec(
            Service::Network,
            "/v2.0/security-group-rules/{id}",
            Some("security_group_rule"),
            &[
                "direction",
                "ethertype",
                "protocol",
                "port_range_min",
                "port_range_max",
                "remote_ip_prefix",
            ],
            &[
                ("security_group_id", "network", "security_group"),
                ("remote_group_id", "network", "security_group"),
            ],
        ),
        ("volume", "volume_type") => spec(
            Service::BlockStorage,
            "/v3/{project}/types/{id}",
            Some("volume_type"),
            &["name", "is_public", "description"],
            &[],
        ),
        ("image", "image") => spec(
            Service::Image,
            "/v2/images/{id}",
            None,
            &[
                "name",
                "visibility",
                "disk_format",
                "container_format",
                "min_disk",
                "min_ram",
            ],
            &[],
        ),
        ("identity", "project") => spec(
            Service::Identity,
            "/v3/projects/{id}",
            Some("project"),
            &["name", "enabled", "description"],
            &[],
        ),
        ("identity", "user") => spec(
            Service::Identity,
            "/v3/users/{id}",
            Some("user"),
            &["name", "enabled"],
            &[("default_project_id", "identity", "project")],
        ),
        ("identity", "group") => spec(
            Service::Identity,
            "/v3/groups/{id}",
            Some("group"),
            &["name", "description"],
            &[],
        ),
        ("identity", "role") => spec(
            Service::Identity,
            "/v3/roles/{id}",
            Some("role"),
            &["name"],
            &[],
        ),
        _ => return None,
    })
}

/// The differences between two copies: attributes as they are, references through
/// `to_recovery` (a reference whose primary value is unmapped is not compared).
pub fn compare(
    spec: &ReadSpec,
    primary: &Value,
    recovery: &Value,
    to_recovery: &dyn Fn(&str, &str, &str) -> Option<String>,
) -> Vec<Difference> {
    let mut out = Vec::new();
    for a in spec.attributes {
        let p = primary.get(*a).cloned().unwrap_or(Value::Null);
        let r = recovery.get(*a).cloned().unwrap_or(Value::Null);
        if p != r {
            out.push(Difference {
                attribute: (*a).to_string(),
                expected: p,
                recovery: r,
            });
        }
    }
    for (a, service, rt) in spec.references {
        let Some(p) = primary.get(*a).and_then(Value::as_str) else {
            continue;
        };
        let Some(expected) = to_recovery(service, rt, p) else {
            continue;
        };
        let r = recovery.get(*a).cloned().unwrap_or(Value::Null);
        if r.as_str() != Some(expected.as_str()) {
            out.push(Difference {
                attribute: (*a).to_string(),
                expected: Value::String(expected),
                recovery: r,
            });
        }
    }
    out
}

/// The outcome of reading one copy.
enum Read {
    Found(Value),
    NotFound,
    Failed(String),
}

struct Sites {
    /// The service account's project at each site (Cinder paths), if known.
    projects: HashMap<SiteName, String>,
}

async fn service_project(gw: &Gateway, site: SiteName) -> Option<String> {
    let ks = &gw.site(site).keystone;
    let token = ks.service_token().await.ok()?;
    ks.validate(&token).await.ok()??.project_id
}

async fn read(gw: &Gateway, sites: &Sites, site: SiteName, spec: &ReadSpec, id: &str) -> Read {
    let mut path = spec.path.replace("{id}", id);
    if path.contains("{project}") {
        match sites.projects.get(&site) {
            Some(p) => path = path.replace("{project}", p),
            None => {
                return Read::Failed(format!(
                    "the service token at the {site} site has no project"
                ))
            }
        }
    }
    let token = match gw.site(site).keystone.service_token().await {
        Ok(t) => t,
        Err(e) => return Read::Failed(format!("{site} site: {e}")),
    };
    let Some(uri) = gw.upstream_uri(site, spec.service, &path, None) else {
        return Read::Failed(format!("{site} site: invalid path {path}"));
    };
    let req = match Request::get(uri)
        .header("x-auth-token", token)
        .header(http::header::ACCEPT, "application/json")
        .body(crate::body::empty())
    {
        Ok(r) => r,
        Err(e) => return Read::Failed(format!("{site} site: {e}")),
    };
    let (parts, bytes) = match gw.client(site).send_full(req, 4 << 20).await {
        Ok(r) => r,
        Err(e) => return Read::Failed(format!("{site} site: {e}")),
    };
    if parts.status == StatusCode::NOT_FOUND {
        return Read::NotFound;
    }
    if !parts.status.is_success() {
        return Read::Failed(format!("{site} site answered {}", parts.status));
    }
    let json: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return Read::Failed(format!("{site} site: the answer is not JSON: {e}")),
    };
    let body = match spec.wrapper {
        Some(w) => json.get(w).cloned(),
        None => Some(json),
    };
    match body {
        Some(b) if b.is_object() => Read::Found(b),
        _ => Read::Failed(format!("{site} site: unexpected body shape")),
    }
}

/// (service, resource type, primary id) → (tenant project, tier), from the journal.
type Origins = HashMap<(String, String, String), (String, String)>;

async fn origins(gw: &Gateway) -> Origins {
    let mut out = Origins::new();
    let filter = RecordFilter::default();
    let mut after = None;
    loop {
        let page = match gw.journal.list(&filter, after, 1000).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "drill: cannot read the journal; tiers unknown");
                return out;
            }
        };
        for r in page.records {
            if let Some(id) = r.primary_id {
                out.entry((r.service, r.resource_type, id))
                    .or_insert((r.tenant.project_id, r.tier));
            }
        }
        match page.next_after {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

fn owner_of(v: &Value) -> Option<String> {
    ["project_id", "tenant_id", "owner"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

async fn check(
    gw: &Gateway,
    sites: &Sites,
    spec: ReadSpec,
    m: IdMapping,
    maps: &HashMap<(String, String, String), String>,
    origin: Option<(String, String)>,
) -> DrillEntry {
    let (recovery, primary) = tokio::join!(
        read(gw, sites, SiteName::Recovery, &spec, &m.recovery_id),
        read(gw, sites, SiteName::Primary, &spec, &m.primary_id),
    );
    let name = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_string);
    let (tenant, tier) = match origin {
        Some(o) => o,
        None => {
            let owner = match (&primary, &recovery) {
                (Read::Found(p), _) => owner_of(p),
                (_, Read::Found(r)) => owner_of(r),
                _ => None,
            };
            (owner.unwrap_or_else(|| "-".into()), "unknown".into())
        }
    };
    let mut e = DrillEntry {
        service: m.service.clone(),
        resource_type: m.resource_type.clone(),
        primary_id: m.primary_id.clone(),
        recovery_id: m.recovery_id.clone(),
        tenant,
        tier,
        name: None,
        outcome: DrillOutcome::Ok,
        differences: Vec::new(),
        note: None,
    };
    match (recovery, primary) {
        (Read::Failed(why), p) => {
            if let Read::Found(p) = &p {
                e.name = name(p);
            }
            e.outcome = DrillOutcome::Error;
            e.note = Some(why);
        }
        (Read::NotFound, Read::NotFound) => {
            e.outcome = DrillOutcome::Stale;
            e.note = Some("gone at both sites, still mapped".into());
        }
        (Read::NotFound, p) => {
            if let Read::Found(p) = &p {
                e.name = name(p);
            }
            e.outcome = DrillOutcome::Missing;
        }
        (Read::Found(r), Read::NotFound) => {
            e.name = name(&r);
            e.outcome = DrillOutcome::Stale;
            e.note = Some("deleted at the primary, the recovery copy remains".into());
        }
        (Read::Found(r), Read::Failed(why)) => {
            e.name = name(&r);
            e.note = Some(format!("attributes not compared: {why}"));
        }
        (Read::Found(r), Read::Found(p)) => {
            e.name = name(&p);
            let lookup = |s: &str, t: &str, id: &str| {
                maps.get(&(s.to_string(), t.to_string(), id.to_string()))
                    .cloned()
            };
            e.differences = compare(&spec, &p, &r, &lookup);
            if !e.differences.is_empty() {
                e.outcome = DrillOutcome::Differs;
            }
        }
    }
    e
}

/// Runs the drill over every ID-map entry.
pub async fn run(gw: &Gateway) -> DrillReport {
    let started_at_ms = now_ms();
    let started = std::time::Instant::now();
    let mut mappings = Vec::new();
    let mut after: Option<IdMapping> = None;
    let mut entries = Vec::new();
    loop {
        match gw
            .mirror
            .idmap_list(&IdMapFilter::default(), after.as_ref(), 1000)
            .await
        {
            Ok(page) => {
                let done = page.len() < 1000;
                after = page.last().cloned();
                mappings.extend(page);
                if done {
                    break;
                }
            }
            Err(e) => {
                entries.push(DrillEntry {
                    service: "-".into(),
                    resource_type: "-".into(),
                    primary_id: "-".into(),
                    recovery_id: "-".into(),
                    tenant: "-".into(),
                    tier: "-".into(),
                    name: None,
                    outcome: DrillOutcome::Error,
                    differences: Vec::new(),
                    note: Some(format!("cannot read the ID map: {e}")),
                });
                break;
            }
        }
    }
    let maps: HashMap<(String, String, String), String> = mappings
        .iter()
        .map(|m| {
            (
                (
                    m.service.clone(),
                    m.resource_type.clone(),
                    m.primary_id.clone(),
                ),
                m.recovery_id.clone(),
            )
        })
        .collect();
    let origins = origins(gw).await;
    let mut projects = HashMap::new();
    for site in SiteName::ALL {
        if let Some(p) = service_project(gw, site).await {
            projects.insert(site, p);
        }
    }
    let sites = Sites { projects };
    let mut skipped = 0u64;
    let mut work = Vec::new();
    for m in mappings {
        match read_spec(&m.service, &m.resource_type) {
            Some(spec) => {
                let origin = origins
                    .get(&(
                        m.service.clone(),
                        m.resource_type.clone(),
                        m.primary_id.clone(),
                    ))
                    .cloned();
                work.push((spec, m, origin));
            }
            None => skipped += 1,
        }
    }
    for chunk in work.chunks(16) {
        let checks = chunk
            .iter()
            .cloned()
            .map(|(spec, m, origin)| check(gw, &sites, spec, m, &maps, origin));
        entries.extend(futures_util::future::join_all(checks).await);
    }
    entries.sort_by(|a, b| {
        (
            &a.tenant,
            &a.tier,
            &a.service,
            &a.resource_type,
            &a.primary_id,
        )
            .cmp(&(
                &b.tenant,
                &b.tier,
                &b.service,
                &b.resource_type,
                &b.primary_id,
            ))
    });
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    DrillReport::from_entries(started_at_ms, duration_ms, skipped, entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compares_attributes_and_mapped_references() {
        let spec = read_spec("network", "subnet").expect("subnets are read");
        let primary = json!({"name": "s1", "cidr": "10.0.0.0/24", "ip_version": 4,
            "enable_dhcp": true, "gateway_ip": "10.0.0.1", "network_id": "pn", "project_id": "pp"});
        let mut recovery = primary.clone();
        recovery["network_id"] = json!("rn");
        recovery["project_id"] = json!("unmapped-project");
        let lookup = |s: &str, t: &str, id: &str| {
            (s == "network" && t == "network" && id == "pn").then(|| "rn".to_string())
        };
        assert!(compare(&spec, &primary, &recovery, &lookup).is_empty());
        recovery["network_id"] = json!("other");
        recovery["cidr"] = json!("10.9.0.0/24");
        let d = compare(&spec, &primary, &recovery, &lookup);
        let attrs: Vec<&str> = d.iter().map(|d| d.attribute.as_str()).collect();
        assert_eq!(attrs, ["cidr", "network_id"]);
        assert_eq!(d[1].expected, json!("rn"));
    }

    #[test]
    fn every_required_type_is_read() {
        for (s, t) in [
            ("compute", "flavor"),
            ("network", "network"),
            ("network", "subnet"),
            ("network", "router"),
            ("network", "security_group"),
            ("volume", "volume_type"),
            ("image", "image"),
            ("identity", "project"),
            ("identity", "user"),
        ] {
            assert!(read_spec(s, t).is_some(), "{s}/{t}");
        }
        assert!(read_spec("network", "network_tag").is_none());
    }

    #[test]
    fn report_counts_and_table() {
        let entry = |id: &str, tenant: &str, outcome| DrillEntry {
            service: "network".into(),
            resource_type: "network".into(),
            primary_id: id.into(),
            recovery_id: format!("r-{id}"),
            tenant: tenant.into(),
            tier: "silver".into(),
            name: Some(format!("n-{id}")),
            outcome,
            differences: Vec::new(),
            note: None,
        };
        let r = DrillReport::from_entries(
            1,
            2,
            3,
            vec![
                entry("a", "t1", DrillOutcome::Ok),
                entry("b", "t1", DrillOutcome::Missing),
                entry("c", "t2", DrillOutcome::Ok),
            ],
        );
        assert_eq!((r.checked, r.ok, r.missing, r.skipped), (3, 2, 1, 3));
        assert!(!r.is_clean());
        assert_eq!(r.groups.len(), 2);
        assert_eq!(
            (r.groups[0].tenant.as_str(), r.groups[0].missing),
            ("t1", 1)
        );
        let table = r.to_table();
        assert!(
            table.contains("missing") && table.contains("r-b"),
            "{table}"
        );
        assert!(!table.contains("r-a"), "{table}");
        assert_eq!(r.to_json()["missing"], json!(1));
    }
}
