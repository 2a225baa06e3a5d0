//! Workload restore on failover: the servers and volumes whose specification the mirror kept
//! as protection records ([`crate::mirror::ProtectionRecord`]) are created at the recovery
//! site once it is active.
//!
//! - Which: the records of tiers whose policy says `restore_on_failover` (default: on for
//!   `sync` tiers, i.e. Gold). In tier order — `sync`, then `periodic`, then `async` tiers —
//!   and within a tier in journal order (a volume a server boots from is restored first if
//!   it was created first).
//! - How: in the tenant's own project at the recovery site (the mirrored project), with a
//!   project-scoped token of the gateway's service account there
//!   ([`crate::token::KeystoneClient::project_token`]), because Nova and Cinder create in the
//!   token's project. The kept body already carries recovery IDs for its references; the
//!   path's project segment (Cinder) becomes the recovery project.
//! - After: the new recovery ID is recorded in the ID map under the workload's primary ID,
//!   so tenants keep using the ID they know ([`super::stable`]); a workload already mapped
//!   (restored by an earlier failover) is skipped, which makes a repeated restore harmless.
//! - Reported: per workload, restored (with its recovery ID) or failed with the recovery
//!   site's reason, in the failover's report (`GET /v1/failovers/{id}`).
//! - Failback does the same the other way: the workloads created at the recovery site during
//!   the failover (kept in [`PROTECTION_AT_PRIMARY`], spec in primary IDs, keyed by their
//!   recovery ID) are created at the primary in the tenant's primary project and mapped with
//!   the recovery site as their origin, so their tenants keep the recovery IDs they know.
//!   The recovery-site copies are left running: what to do with them is the operator's call.

use std::collections::HashMap;

use http::{Method, Request};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::SiteName;
use crate::gateway::Gateway;
use crate::mirror::{
    parse_service, site_message, ProtectionRecord, PROTECTION, PROTECTION_AT_PRIMARY,
};
use crate::state::{frame, IdMap, IdMapping, Namespace};

const PAGE: usize = 500;
const BODY_LIMIT: u64 = 4 << 20;

/// What happened to one protected workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredWorkload {
    pub service: String,
    pub resource_type: String,
    /// The workload's ID where it was created (the recovery site's for a workload created
    /// there during a failover and restored at the primary by the failback).
    pub primary_id: String,
    pub project_id: String,
    pub tier: String,
    /// `restored`, `failed` or `skipped` (already restored).
    pub outcome: String,
    /// Its ID at the site it was restored at.
    pub recovery_id: Option<String>,
    pub reason: Option<String>,
}

/// The restore part of a failover report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    pub restored: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Tiers whose workloads were restored, in the order they were.
    pub tiers: Vec<String>,
    pub workloads: Vec<RestoredWorkload>,
}

impl RestoreReport {
    /// A few human-readable lines (for the CLI).
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "  workloads restored: {}, failed: {}, already restored: {} (tiers: {})\n",
            self.restored,
            self.failed,
            self.skipped,
            if self.tiers.is_empty() {
                "none".to_string()
            } else {
                self.tiers.join(", ")
            }
        );
        for w in self.workloads.iter().filter(|w| w.outcome == "failed") {
            out.push_str(&format!(
                "    failed {} {} ({}): {}\n",
                w.resource_type,
                w.primary_id,
                w.tier,
                w.reason.as_deref().unwrap_or("")
            ));
        }
        out
    }
}

/// The protection records of workloads to restore at `to`: the primary's workloads for the
/// recovery site, the recovery site's (created during a failover) for the primary.
fn protection_namespace(to: SiteName) -> Namespace {
    match to {
        SiteName::Recovery => PROTECTION,
        SiteName::Primary => PROTECTION_AT_PRIMARY,
    }
}

/// Every protection record of a namespace, read page by page.
async fn protection_records(gw: &Gateway, ns: Namespace) -> Result<Vec<ProtectionRecord>, String> {
    let mut out = Vec::new();
    let mut start: Option<Vec<u8>> = None;
    loop {
        let page = gw
            .store
            .scan(ns, &[], start.as_deref(), PAGE)
            .await
            .map_err(|e| e.to_string())?;
        let full = page.len() == PAGE;
        for entry in &page {
            match frame::open_json::<ProtectionRecord>(ns, &entry.key, &entry.value) {
                Ok(r) => out.push(r),
                Err(e) => tracing::error!(error = %e, "unreadable protection record skipped"),
            }
        }
        match page.last() {
            Some(last) if full => {
                let mut next = last.key.clone();
                next.push(0);
                start = Some(next);
            }
            _ => return Ok(out),
        }
    }
}

/// Restores the protected workloads of the tiers that ask for it at `to` (the recovery site
/// after a failover, the primary after a failback).
pub async fn restore_workloads(gw: &Gateway, to: SiteName) -> RestoreReport {
    let mut report = RestoreReport::default();
    let policy = gw.policy.current();
    // Tier rank: sync (Gold) first, then periodic, then async; tiers that do not restore
    // are left out.
    let rank: HashMap<String, u8> = policy
        .tiers()
        .iter()
        .filter(|t| t.restore_on_failover)
        .map(|t| {
            let r = match t.mode {
                drgw_policies::MirrorMode::Sync => 0,
                drgw_policies::MirrorMode::Periodic { .. } => 1,
                _ => 2,
            };
            (t.name.to_ascii_lowercase(), r)
        })
        .collect();
    let mut records = match protection_records(gw, protection_namespace(to)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the protection records; nothing restored");
            report.failed = 1;
            report.workloads.push(RestoredWorkload {
                service: String::new(),
                resource_type: String::new(),
                primary_id: String::new(),
                project_id: String::new(),
                tier: String::new(),
                outcome: "failed".into(),
                recovery_id: None,
                reason: Some(format!("the protection records cannot be read: {e}")),
            });
            return report;
        }
    };
    records.retain(|r| rank.contains_key(&r.tier.to_ascii_lowercase()));
    records.sort_by_key(|r| (rank[&r.tier.to_ascii_lowercase()], r.seq));
    let idmap = IdMap::new(gw.store.clone());
    for r in records {
        if !report.tiers.contains(&r.tier) {
            report.tiers.push(r.tier.clone());
        }
        let mut w = RestoredWorkload {
            service: r.service.clone(),
            resource_type: r.resource_type.clone(),
            primary_id: r.primary_id.clone(),
            project_id: r.tenant.project_id.clone(),
            tier: r.tier.clone(),
            outcome: "failed".into(),
            recovery_id: None,
            reason: None,
        };
        match restore_one(gw, &idmap, &r, to).await {
            Ok(Restored::New(id)) => {
                w.outcome = "restored".into();
                w.recovery_id = Some(id);
                report.restored += 1;
            }
            Ok(Restored::Already(id)) => {
                w.outcome = "skipped".into();
                w.recovery_id = Some(id);
                report.skipped += 1;
            }
            Err(reason) => {
                tracing::warn!(
                    resource_type = %r.resource_type,
                    primary_id = %r.primary_id,
                    reason,
                    "workload not restored"
                );
                w.reason = Some(reason);
                report.failed += 1;
            }
        }
        report.workloads.push(w);
    }
    report
}

enum Restored {
    New(String),
    Already(String),
}

async fn restore_one(
    gw: &Gateway,
    idmap: &IdMap,
    r: &ProtectionRecord,
    to: SiteName,
) -> Result<Restored, String> {
    // `r.primary_id` is the workload's ID where it was created: the primary's for
    // [`PROTECTION`], the recovery site's for [`PROTECTION_AT_PRIMARY`].
    let at_target = |service: &str, resource_type: &str, id: &str| {
        let (service, resource_type, id) = (
            service.to_string(),
            resource_type.to_string(),
            id.to_string(),
        );
        async move {
            match to {
                SiteName::Recovery => idmap.recovery_id(&service, &resource_type, &id).await,
                SiteName::Primary => idmap.primary_id(&service, &resource_type, &id).await,
            }
            .map_err(|e| e.to_string())
        }
    };
    if let Some(id) = at_target(&r.service, &r.resource_type, &r.primary_id).await? {
        return Ok(Restored::Already(id));
    }
    let service = parse_service(&r.service)
        .ok_or_else(|| format!("unknown service {:?} in the protection record", r.service))?;
    let spec = r
        .spec
        .as_ref()
        .ok_or("the protection record kept no specification")?;
    let project = at_target("identity", "project", &r.tenant.project_id)
        .await?
        .ok_or_else(|| {
            format!(
                "the tenant's project {} is not mirrored at the {to} site",
                r.tenant.project_id
            )
        })?;
    let site = gw.site(to);
    let token = site
        .keystone
        .project_token(&project)
        .await
        .map_err(|e| format!("no token for project {project} at the {to} site: {e}"))?;
    // Cinder (and legacy Nova) paths carry the project: the target site's.
    let path: String = r
        .path
        .split('/')
        .map(|seg| {
            if seg == r.tenant.project_id {
                project.as_str()
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    let method = Method::from_bytes(r.method.as_bytes()).map_err(|e| e.to_string())?;
    let uri = gw
        .upstream_uri(to, service, &path, None)
        .ok_or_else(|| format!("bad create path {path:?}"))?;
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-auth-token", token)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(crate::body::full(spec.to_string()))
        .map_err(|e| e.to_string())?;
    let (parts, bytes) = gw
        .client(to)
        .send_full(req, BODY_LIMIT)
        .await
        .map_err(|e| format!("{to} site: {e}"))?;
    let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !parts.status.is_success() {
        return Err(format!(
            "{to} site answered {}: {}",
            parts.status.as_u16(),
            site_message(&json).unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned())
        ));
    }
    let id = json
        .get(r.resource_type.as_str())
        .and_then(|o| o.get("id"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the {to} site's answer names no {} id", r.resource_type))?
        .to_string();
    let (primary_id, recovery_id, origin) = match to {
        SiteName::Recovery => (r.primary_id.clone(), id.clone(), SiteName::Primary),
        SiteName::Primary => (id.clone(), r.primary_id.clone(), SiteName::Recovery),
    };
    idmap
        .insert(&IdMapping {
            service: r.service.clone(),
            resource_type: r.resource_type.clone(),
            primary_id,
            recovery_id,
            origin,
        })
        .await
        .map_err(|e| format!("restored as {id}, but the ID map could not record it: {e}"))?;
    Ok(Restored::New(id))
}
