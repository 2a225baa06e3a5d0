//! Recovery-capacity usage as the policy stage keeps it: [`UsageCounters`] per tenant, tier
//! and kind (`vcpus`, `ram_mb`, `volume_gb`, and a count per resource kind: `servers`,
//! `networks`, ..., `projects`), plus one *footprint* per resource created through the
//! gateway (namespace `policy_footprints`, key `kind ‖ id`, framed JSON value) so that a
//! delete releases exactly what the create added, in the tier it was created in.
//!
//! A create's footprint and counter changes commit in one transaction: with the create's
//! journal record when the change is mirrored (the append's commit, durable), otherwise on
//! their own with relaxed durability ([`Batch::relax_durability`]): then they are on disk
//! with the next journal commit, and a crash before it may forget the usage of the last few
//! calls (quotas then leave those resources out), never a mirror record.

use std::sync::Arc;

use drgw_policies::{ResourceKind, Resources};
use serde::{Deserialize, Serialize};

use super::metrics::PolicyMetrics;
use super::request::ProtectedKind;
use crate::state::{
    frame, push_component, Batch, Namespace, StateError, StateStore, UsageCounters, UsageKey,
};

/// Footprints of resources created through the gateway.
pub const FOOTPRINTS: Namespace = Namespace::new("policy_footprints");

const SCAN_PAGE: usize = 1000;

/// What one created resource added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Footprint {
    pub tenant: String,
    pub tier: String,
    pub vcpus: u64,
    pub ram_mb: u64,
    pub volume_gb: u64,
    pub count: u64,
}

/// A change of usage (counter additions and the footprint's put or delete) prepared as one
/// batch. A create's has no preconditions, so it can commit on its own or ride in another
/// commit (the create's journal append); [`PendingUsage::committed`] then updates the gauge.
#[derive(Clone, Debug)]
pub struct PendingUsage {
    batch: Batch,
    kind: ProtectedKind,
    tier: String,
    count: i64,
}

impl PendingUsage {
    /// The batch to commit.
    pub fn batch(&self) -> Batch {
        self.batch.clone()
    }

    /// Records that the batch committed (the protected-resources gauge).
    pub(crate) fn committed(&self, metrics: &PolicyMetrics) {
        if self.count != 0 {
            metrics
                .protected
                .with_label_values(&[self.tier.as_str(), self.kind.counter_kind()])
                .add(self.count);
        }
    }
}

fn signed(n: u64, sign: i64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX).saturating_mul(sign)
}

pub(crate) struct Usage {
    counters: UsageCounters,
    store: Arc<dyn StateStore>,
}

fn footprint_key(kind: ProtectedKind, id: &str) -> Result<Vec<u8>, StateError> {
    let mut key = Vec::new();
    push_component(&mut key, kind.counter_kind().as_bytes())?;
    push_component(&mut key, id.as_bytes())?;
    Ok(key)
}

/// True for counters that count resources (the gauge's kinds).
fn is_count_kind(kind: &str) -> bool {
    kind == "projects" || ResourceKind::ALL.iter().any(|k| k.key() == kind)
}

impl Usage {
    pub(crate) fn new(store: Arc<dyn StateStore>) -> Usage {
        Usage {
            counters: UsageCounters::new(store.clone()),
            store,
        }
    }

    /// The usage of `tenant` in `tier` (negative counters, after a reconcile gap, count 0).
    pub(crate) async fn of(&self, tenant: &str, tier: &str) -> Result<Resources, StateError> {
        let mut usage = Resources::ZERO;
        let mut after: Option<UsageKey> = None;
        loop {
            let page = self
                .counters
                .list(Some(tenant), after.as_ref(), SCAN_PAGE)
                .await?;
            let full = page.len() == SCAN_PAGE;
            for (key, value) in &page {
                if key.tenant != tenant || !key.tier.eq_ignore_ascii_case(tier) {
                    continue;
                }
                let n = u64::try_from(*value).unwrap_or(0);
                match key.kind.as_str() {
                    "vcpus" => usage.vcpus = n,
                    "ram_mb" => usage.ram_mb = n,
                    "volume_gb" => usage.volume_gb = n,
                    other => {
                        if let Some(k) = ResourceKind::ALL.into_iter().find(|k| k.key() == other) {
                            usage = usage.with_count(k, n);
                        }
                    }
                }
            }
            after = page.last().map(|(k, _)| k.clone());
            if !full {
                return Ok(usage);
            }
        }
    }

    /// The footprint of a resource created through the gateway, if any.
    pub(crate) async fn footprint(&self, kind: ProtectedKind, id: &str) -> Option<Footprint> {
        let key = footprint_key(kind, id).ok()?;
        match self.store.get(FOOTPRINTS, &key).await {
            Ok(Some(v)) => match frame::open_json(FOOTPRINTS, &key, &v.value) {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable footprint; ignored");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a footprint");
                None
            }
        }
    }

    /// The batch that adds (`sign` 1) or takes away (-1) a footprint's counts, with `with`
    /// (its footprint record's put or delete) in it: one commit.
    fn prepare(
        &self,
        kind: ProtectedKind,
        f: &Footprint,
        sign: i64,
        with: Batch,
    ) -> Result<PendingUsage, StateError> {
        let (tenant, tier) = (f.tenant.as_str(), f.tier.as_str());
        let deltas: Vec<(UsageKey, i64)> = [
            ("vcpus", f.vcpus),
            ("ram_mb", f.ram_mb),
            ("volume_gb", f.volume_gb),
            (kind.counter_kind(), f.count),
        ]
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|(what, n)| (UsageKey::new(tenant, tier, what), signed(n, sign)))
        .collect();
        let mut batch = with;
        self.counters.add_to(&deltas, &mut batch)?;
        // Bookkeeping, not a tenant's change: on disk with the next journal commit (which a
        // mirrored change makes right away), without a flush of its own.
        batch.relax_durability();
        Ok(PendingUsage {
            batch,
            kind,
            tier: f.tier.clone(),
            count: signed(f.count, sign),
        })
    }

    /// Commits prepared usage on its own.
    pub(crate) async fn commit(
        &self,
        pending: PendingUsage,
        metrics: &PolicyMetrics,
    ) -> Result<(), StateError> {
        self.store.commit(pending.batch.clone()).await?;
        pending.committed(metrics);
        Ok(())
    }

    /// What a create adds, remembered under `id` when the response had one, ready to
    /// commit (on its own with [`Usage::commit`], or with the create's journal record).
    pub(crate) fn prepare_add(
        &self,
        tenant: &str,
        tier: &str,
        kind: ProtectedKind,
        resources: &Resources,
        id: Option<&str>,
    ) -> Result<PendingUsage, StateError> {
        let count = match kind.quota_kind() {
            Some(k) => resources.count(k).max(1),
            None => 1,
        };
        let f = Footprint {
            tenant: tenant.to_owned(),
            tier: tier.to_owned(),
            vcpus: resources.vcpus,
            ram_mb: resources.ram_mb,
            volume_gb: resources.volume_gb,
            count,
        };
        let mut footprint = Batch::new();
        if let Some(id) = id {
            let key = footprint_key(kind, id)?;
            footprint.put(
                FOOTPRINTS,
                key.clone(),
                frame::seal_json(FOOTPRINTS, &key, &f)?,
            );
        }
        self.prepare(kind, &f, 1, footprint)
    }

    /// Adds what a create added, and remembers it under `id` when the response had one.
    pub(crate) async fn add(
        &self,
        tenant: &str,
        tier: &str,
        kind: ProtectedKind,
        resources: &Resources,
        id: Option<&str>,
        metrics: &PolicyMetrics,
    ) -> Result<(), StateError> {
        let pending = self.prepare_add(tenant, tier, kind, resources, id)?;
        self.commit(pending, metrics).await
    }

    /// Releases what the create of `id` added (nothing if the gateway did not see it).
    pub(crate) async fn remove(
        &self,
        kind: ProtectedKind,
        id: &str,
        metrics: &PolicyMetrics,
    ) -> Result<(), StateError> {
        let key = footprint_key(kind, id)?;
        let Some(stored) = self.store.get(FOOTPRINTS, &key).await? else {
            return Ok(()); // not created through the gateway, or released already
        };
        let f: Footprint = frame::open_json(FOOTPRINTS, &key, &stored.value)?;
        let mut forget = Batch::new();
        forget.require_version(FOOTPRINTS, key.clone(), Some(stored.version));
        forget.delete(FOOTPRINTS, key);
        let pending = self.prepare(kind, &f, -1, forget)?;
        match self.commit(pending, metrics).await {
            // Released by a concurrent call (e.g. a delete retried): counted once.
            Err(StateError::Conflict { namespace, .. }) if namespace == FOOTPRINTS.as_str() => {
                Ok(())
            }
            other => other,
        }
    }

    /// Sets `drgw_protected_resources` from the counters of every tenant.
    pub(crate) async fn restore_gauges(&self, metrics: &PolicyMetrics) -> Result<(), StateError> {
        let mut totals: std::collections::BTreeMap<(String, String), i64> = Default::default();
        let mut after: Option<UsageKey> = None;
        loop {
            let page = self.counters.list(None, after.as_ref(), SCAN_PAGE).await?;
            for (key, value) in &page {
                if is_count_kind(&key.kind) {
                    *totals
                        .entry((key.tier.clone(), key.kind.clone()))
                        .or_default() += value;
                }
            }
            let full = page.len() == SCAN_PAGE;
            after = page.last().map(|(k, _)| k.clone());
            if !full {
                break;
            }
        }
        for ((tier, kind), n) in totals {
            metrics
                .protected
                .with_label_values(&[tier.as_str(), kind.as_str()])
                .set(n);
        }
        Ok(())
    }
}
