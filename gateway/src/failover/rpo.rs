//! The RPO report of a forced switch: per tier and tenant, the journal records that had not
//! been applied at the other site when the switch happened, with their age.
//!
//! [`RpoReport::build`] is pure over the records and the time; [`collect`] reads the
//! journal's pending and failed records and builds it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::journal::{Journal, JournalError, JournalRecord, RecordFilter, StateFilter};

/// One record that was not applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LostRecord {
    pub seq: u64,
    pub service: String,
    pub resource_type: String,
    pub action: String,
    pub primary_id: Option<String>,
    /// When the change was journaled (Unix ms).
    pub time_ms: u64,
    /// Its age when the report was made.
    pub age_seconds: f64,
    /// For failed records: why applying failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One tenant's records of one tier, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantLoss {
    pub project_id: String,
    pub domain_id: String,
    pub records: Vec<LostRecord>,
}

/// One tier's loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierLoss {
    pub tier: String,
    /// Pending records of the tier.
    pub pending: u64,
    /// Records of the tier that had failed permanently (never applied either).
    pub failed: u64,
    /// Age of the oldest pending record: the tier's actual RPO.
    pub oldest_pending_age_seconds: Option<f64>,
    /// Pending records by tenant.
    pub tenants: Vec<TenantLoss>,
    /// Failed records by tenant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_tenants: Vec<TenantLoss>,
}

/// What a forced switch lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpoReport {
    /// When the journal was read (Unix ms).
    pub as_of_ms: u64,
    /// Pending records in all tiers.
    pub pending: u64,
    /// Failed records in all tiers.
    pub failed: u64,
    pub tiers: Vec<TierLoss>,
    /// Set when the journal could not be read: the loss is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn lost(r: &JournalRecord, now_ms: u64, reason: Option<String>) -> LostRecord {
    LostRecord {
        seq: r.seq,
        service: r.service.clone(),
        resource_type: r.resource_type.clone(),
        action: r.action.clone(),
        primary_id: r.primary_id.clone(),
        time_ms: r.time_ms,
        age_seconds: now_ms.saturating_sub(r.time_ms) as f64 / 1000.0,
        reason,
    }
}

type ByTenant = BTreeMap<(String, String), Vec<LostRecord>>;

fn tenants(map: ByTenant) -> Vec<TenantLoss> {
    map.into_iter()
        .map(|((project_id, domain_id), mut records)| {
            records.sort_by_key(|r| r.seq);
            TenantLoss {
                project_id,
                domain_id,
                records,
            }
        })
        .collect()
}

impl RpoReport {
    /// The report over `records` (pending and failed ones count; applied ones are ignored)
    /// at `now_ms`.
    pub fn build<'a>(
        records: impl IntoIterator<Item = &'a JournalRecord>,
        now_ms: u64,
    ) -> RpoReport {
        let mut tiers: BTreeMap<String, (ByTenant, ByTenant)> = BTreeMap::new();
        for r in records {
            let key = (r.tenant.project_id.clone(), r.tenant.domain_id.clone());
            let (pending, failed) = tiers.entry(r.tier.clone()).or_default();
            match &r.state {
                crate::journal::RecordState::Pending => {
                    pending.entry(key).or_default().push(lost(r, now_ms, None))
                }
                crate::journal::RecordState::Failed { reason, .. } => failed
                    .entry(key)
                    .or_default()
                    .push(lost(r, now_ms, Some(reason.clone()))),
                crate::journal::RecordState::Applied { .. } => {}
            }
        }
        let mut out = RpoReport {
            as_of_ms: now_ms,
            pending: 0,
            failed: 0,
            tiers: Vec::new(),
            error: None,
        };
        for (tier, (pending, failed)) in tiers {
            let n_pending = pending.values().map(|v| v.len() as u64).sum::<u64>();
            let n_failed = failed.values().map(|v| v.len() as u64).sum::<u64>();
            if n_pending == 0 && n_failed == 0 {
                continue;
            }
            let oldest = pending
                .values()
                .flatten()
                .map(|r| r.age_seconds)
                .fold(None, |m: Option<f64>, a| Some(m.map_or(a, |m| m.max(a))));
            out.pending += n_pending;
            out.failed += n_failed;
            out.tiers.push(TierLoss {
                tier,
                pending: n_pending,
                failed: n_failed,
                oldest_pending_age_seconds: oldest,
                tenants: tenants(pending),
                failed_tenants: tenants(failed),
            });
        }
        out
    }

    /// A report saying that the loss could not be measured.
    pub fn unreadable(now_ms: u64, error: String) -> RpoReport {
        RpoReport {
            as_of_ms: now_ms,
            pending: 0,
            failed: 0,
            tiers: Vec::new(),
            error: Some(error),
        }
    }

    /// Every pending record's seq, ascending.
    pub fn pending_seqs(&self) -> Vec<u64> {
        let mut seqs: Vec<u64> = self
            .tiers
            .iter()
            .flat_map(|t| t.tenants.iter())
            .flat_map(|t| t.records.iter().map(|r| r.seq))
            .collect();
        seqs.sort_unstable();
        seqs
    }

    /// A table: one line per lost record, grouped by tier and tenant.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        if let Some(e) = &self.error {
            out.push_str(&format!(
                "  RPO unknown: the journal could not be read: {e}\n"
            ));
            return out;
        }
        out.push_str(&format!(
            "  not applied at the switch: {} pending, {} failed\n",
            self.pending, self.failed
        ));
        if self.pending + self.failed == 0 {
            return out;
        }
        out.push_str(&format!(
            "  {:<8} {:<34} {:>8} {:<8} {:<22} {:<10} {:<38} {:>9}\n",
            "TIER", "TENANT", "SEQ", "STATE", "RESOURCE", "ACTION", "PRIMARY ID", "AGE (s)"
        ));
        for tier in &self.tiers {
            let groups = tier
                .tenants
                .iter()
                .map(|t| ("pending", t))
                .chain(tier.failed_tenants.iter().map(|t| ("failed", t)));
            for (state, t) in groups {
                for r in &t.records {
                    out.push_str(&format!(
                        "  {:<8} {:<34} {:>8} {:<8} {:<22} {:<10} {:<38} {:>9.1}\n",
                        tier.tier,
                        t.project_id,
                        r.seq,
                        state,
                        format!("{}/{}", r.service, r.resource_type),
                        r.action,
                        r.primary_id.as_deref().unwrap_or("-"),
                        r.age_seconds
                    ));
                }
            }
        }
        out
    }
}

/// Reads every pending and failed journal record and builds the report at `now_ms`.
pub async fn collect(journal: &Journal, now_ms: u64) -> Result<RpoReport, JournalError> {
    let mut records = Vec::new();
    for state in [StateFilter::Pending, StateFilter::Failed] {
        let filter = RecordFilter {
            state: Some(state),
            ..RecordFilter::default()
        };
        let mut after = None;
        loop {
            let page = journal.list(&filter, after, 1000).await?;
            records.extend(page.records);
            match page.next_after {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    for r in &mut records {
        r.request.secret = None;
    }
    Ok(RpoReport::build(&records, now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{MirrorRequest, RecordState, TenantRef};

    fn rec(seq: u64, tier: &str, project: &str, time_ms: u64, state: RecordState) -> JournalRecord {
        JournalRecord {
            seq,
            time_ms,
            tenant: TenantRef::new(project, "default"),
            tier: tier.into(),
            direction: Default::default(),
            service: "network".into(),
            resource_type: "network".into(),
            action: "create".into(),
            primary_id: Some(format!("id-{seq}")),
            request: MirrorRequest {
                method: "POST".into(),
                path: "/v2.0/networks".into(),
                body: None,
                secret: None,
            },
            state,
            attempts: 0,
            depends_on: Vec::new(),
        }
    }

    #[test]
    fn groups_by_tier_and_tenant_with_ages() {
        let records = vec![
            rec(1, "silver", "p1", 1_000, RecordState::Pending),
            rec(2, "bronze", "p2", 2_000, RecordState::Pending),
            rec(
                3,
                "silver",
                "p1",
                3_000,
                RecordState::Applied {
                    at_ms: 3_500,
                    recovery_id: None,
                },
            ),
            rec(4, "silver", "p2", 4_000, RecordState::Pending),
            rec(
                5,
                "bronze",
                "p2",
                5_000,
                RecordState::Failed {
                    reason: "conflict".into(),
                    retryable: false,
                },
            ),
        ];
        let r = RpoReport::build(&records, 11_000);
        assert_eq!((r.pending, r.failed), (3, 1));
        assert_eq!(r.pending_seqs(), vec![1, 2, 4]);
        let tiers: Vec<&str> = r.tiers.iter().map(|t| t.tier.as_str()).collect();
        assert_eq!(tiers, ["bronze", "silver"]);
        let silver = &r.tiers[1];
        assert_eq!(silver.pending, 2);
        assert_eq!(silver.oldest_pending_age_seconds, Some(10.0));
        assert_eq!(silver.tenants.len(), 2);
        assert_eq!(silver.tenants[0].project_id, "p1");
        assert_eq!(silver.tenants[0].records[0].age_seconds, 10.0);
        let bronze = &r.tiers[0];
        assert_eq!(
            bronze.failed_tenants[0].records[0].reason.as_deref(),
            Some("conflict")
        );
        let table = r.to_table();
        assert!(
            table.contains("id-4") && table.contains("failed"),
            "{table}"
        );
        assert!(!table.contains("id-3"), "{table}");
    }

    #[test]
    fn nothing_lost() {
        let r = RpoReport::build(&[], 5);
        assert_eq!((r.pending, r.failed, r.tiers.len()), (0, 0, 0));
        assert!(r.to_table().contains("0 pending"));
    }
}
