//! The mirror engine: turns each successful protected change ([`Mutation`]) into a durable
//! journal record and applies it at the recovery site — inline for Gold (`sync`), in
//! checkpointed batches for Silver (`periodic`), in the background for Bronze (`async`).
//!
//! # Flow
//! [`MirrorEngine::submit`] recognises the call ([`target::mirror_target`], a pure function
//! over service, method, path and body), builds the normalised request for the recovery site
//! ([`target::normalise`]: primary IDs still in it, the owner project/user made explicit,
//! secrets sealed with [`SecretKey`]) and appends it to the journal; the append is durable
//! before `submit` returns. References are translated at apply time, not at submit time,
//! because a dependency may be applied just before; they are found again by running
//! `mirror_target` over the journaled request (it has the API's own shape), so the journal
//! needs no separate reference list.
//!
//! # Applying
//! - One worker task drains pending records tier by tier. Records are grouped by tenant and
//!   applied in seq order per tenant; tenants run in parallel (bounded). Order is per
//!   (tenant, tier): a Silver record waiting for its checkpoint does not hold back the same
//!   tenant's Bronze records — a reference to a not-yet-mirrored resource is mirrored from
//!   the primary first, and the later create record then finds the mapping and is applied
//!   without sending anything.
//! - Bronze (and Gold records left pending by `degrade`) apply as soon as the worker wakes
//!   (on every submit, and every `tick`), except that a Bronze record gives way to tenant
//!   requests while they keep the runtime busy, for at most a quarter of its tier's
//!   `max_lag` ([`pace`]; `drgw_mirror_deferred_seconds_total` counts the waits).
//! - Silver: every `interval` the worker takes the journal's last seq as the cut, applies the
//!   tier's pending records up to it and, when none up to the cut is left pending, appends a
//!   checkpoint (id, time, last seq).
//! - Retryable failures (5xx, 408/429/401, timeouts, connection errors) keep the record
//!   pending and back the tenant off exponentially (`retry_initial` doubling up to
//!   `retry_max`); later records of that tenant wait. Permanent failures (other 4xx, a
//!   reference that cannot be mirrored) mark the record failed with the recovery site's
//!   message; [`MirrorEngine::retry`] puts it back.
//! - Gold: `submit` applies its own record inline, bounded by `gold_timeout`. On failure,
//!   `reject` compensates a create at the primary (deletes the created resource with the
//!   gateway's service token), marks the record failed (`rejected: ...`), journals the
//!   compensation like any change at the primary (so a copy the apply made before failing,
//!   e.g. a network whose tagging failed, is deleted at the recovery site by the worker) and
//!   returns [`MirrorOutcome::Rejected`]; changes that cannot be undone (updates, deletes)
//!   degrade instead. `degrade` leaves the record pending for the worker.
//! - Gold costs one disk flush: the record's append. Its transition to applied (with the
//!   created resource's ID-map entry) is queued with the journal writer before the tenant is
//!   answered, not waited for ([`Journal::queue_mark_applied`]): anything journaled after
//!   the answer commits in the same group or a later one, so later records (and the admin
//!   reads, which flush first) always see it. The record's claim is held until it has
//!   committed. A crash before it is durable leaves the record pending: at start-up it is
//!   applied again and adopts the copy it made (below).
//! - Transitions to applied, Gold's and the worker's alike, commit with relaxed durability
//!   when nothing else is in their group (see [`Journal`]): seen at once, on disk with the
//!   next append or within 100 ms. Losing one in a crash costs a second apply that adopts
//!   the copy, never a duplicate or a lost change.
//! - A record is applied by one task at a time (an in-memory claim per seq; Gold's inline
//!   apply waits for a claim the worker holds), and an applied record is never applied
//!   again (journal invariant). A create that may have reached the
//!   recovery site without an answer (pending at start-up after a crash, or a timeout/5xx)
//!   first looks for a single unmapped copy of the same name and project there and adopts
//!   it, so a crash does not duplicate networks, subnets, routers or security groups;
//!   resources with caller-chosen IDs or unique names adopt the existing copy on 409.
//! - Workloads (servers, volumes, ports, floating IPs) are not created at the recovery
//!   site: their create body, references translated, is stored as a [`ProtectionRecord`]
//!   in the `mirror_protection` namespace (deleted with the workload).
//!
//! # Reverse replication
//! While failed over, changes are made at the recovery site ([`Mutation::site`]); `submit`
//! journals them as [`Direction::Reverse`] records, applied at the old primary by a second
//! [`Applier`] whose target is the primary and whose source is the recovery site, over the
//! reversed view of the same ID map ([`DirectedIdMap`]): references and subjects in recovery
//! IDs become primary IDs (a primary-origin resource updated or deleted during the failover
//! is updated or deleted at the primary), a resource created at the recovery site gets a
//! primary copy mapped with `origin = recovery`, and the owner project/user (from the
//! recovery Keystone's token) translate back to the primary's. So a planned failback, which
//! drains the journal like a planned failover, leaves the primary resynced.
//! - Reverse records of every tier are applied in the background, in order per tenant, as
//!   soon as the worker wakes: the recovery site is the only live copy during a failover, so
//!   no tenant call waits for (or is rejected because of) the old primary; Gold and Silver
//!   reverse records get no inline apply, compensation or checkpoints.
//! - Workloads created during the failover are kept as protection records in
//!   [`PROTECTION_AT_PRIMARY`] (spec in primary IDs, keyed by recovery ID); deleting a
//!   restored workload at the recovery site also drops its primary protection record.
//! - A forced switch abandons the site it leaves: the records still pending *from* that site
//!   are listed in the switch's RPO report and then marked failed (`superseded: ...`,
//!   [`MirrorEngine::supersede`]); they are never applied in the other direction and do not
//!   hold up a later planned switch. `drgw journal retry <seq>` applies one deliberately.

mod apply;
pub mod flavor_fit;
mod metrics;
pub mod pace;
pub mod secret;
pub mod target;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{watch, Notify, Semaphore};

pub use apply::{
    parse_service, site_message, ApplyError, MirrorSite, ProtectionRecord, PROTECTION,
    PROTECTION_AT_PRIMARY,
};
pub use metrics::MirrorMetrics;
pub use secret::{SecretError, SecretKey};
pub use target::{mirror_target, Kind, MirrorAction, Target};

use crate::config::SiteName;
use crate::journal::{
    Checkpoint, Direction, Journal, JournalError, JournalRecord, MirrorRequest, NewRecord, Queued,
    RecordFilter, RecordPage, RecordState, TenantRef, PENDING_BY_TIER,
};
use crate::mutation::{GoldFailure, MirrorMode, MirrorOutcome, Mutation};
use crate::operation::Service;
use crate::state::{
    now_ms, push_component, Batch, DirectedIdMap, IdMap, IdMapFilter, IdMapping, StateError,
    StateStore,
};
use apply::Applier;
use pace::Pacer;
use target::{compensation, normalise, CallFacts};

/// Errors of the engine's own calls (admin API data functions, start-up).
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl MirrorError {
    /// A low-cardinality label.
    pub fn kind(&self) -> &'static str {
        match self {
            MirrorError::Journal(e) => e.kind(),
            MirrorError::State(e) => e.kind(),
            MirrorError::Metrics(_) => "metrics",
        }
    }
}

/// Everything the engine needs.
pub struct MirrorDeps<'a> {
    /// The state store holding the journal and the ID map (protection records go there too).
    pub store: Arc<dyn StateStore>,
    pub journal: Journal,
    pub idmap: IdMap,
    /// Where records are applied.
    pub recovery: MirrorSite,
    /// Read for unmapped references, written for Gold `reject` compensation.
    pub primary: MirrorSite,
    pub registry: &'a prometheus::Registry,
    pub gold_timeout: Duration,
    /// The configured tiers and their modes (tiers met in `submit` are learned too; a
    /// pending record of an unknown tier applies like Bronze).
    pub tiers: Vec<(String, MirrorMode)>,
    /// Seals secrets in the journal (see [`SecretKey::load_or_create`]).
    pub secret_key: SecretKey,
    /// Shared-identity topology: identity is not mirrored, project/user IDs are equal.
    pub shared_identity: bool,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// How often the worker looks for work without being woken (and refreshes the gauges).
    pub tick: Duration,
    /// Tenants applied in parallel.
    pub parallel_tenants: usize,
}

impl MirrorDeps<'_> {
    /// Defaults for the tuning fields: retry 200 ms doubling to 30 s, tick 500 ms,
    /// 16 tenants in parallel.
    pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_millis(200);
    pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(30);
    pub const DEFAULT_TICK: Duration = Duration::from_millis(500);
    pub const DEFAULT_PARALLEL_TENANTS: usize = 16;
}

/// Per-tier state for `drgw status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierStatus {
    pub tier: String,
    /// `sync`, `periodic`, `async` or `unknown`.
    pub mode: String,
    pub pending: u64,
    pub oldest_pending_age_seconds: Option<f64>,
    pub last_checkpoint: Option<Checkpoint>,
}

/// Order and back-off are per (tenant, tier, direction).
type BackoffKey = (TenantRef, String, Direction);

#[derive(Default)]
struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

struct Inner {
    journal: Journal,
    idmap: IdMap,
    store: Arc<dyn StateStore>,
    /// Applies forward records at the recovery site.
    applier: Applier,
    /// Applies reverse records at the primary.
    reverse: Applier,
    metrics: MirrorMetrics,
    gold_timeout: Duration,
    tiers: Mutex<BTreeMap<String, MirrorMode>>,
    claimed: Arc<Mutex<HashSet<u64>>>,
    backoff: Mutex<HashMap<BackoffKey, Backoff>>,
    retry_initial: Duration,
    retry_max: Duration,
    tick: Duration,
    parallel: Arc<Semaphore>,
    /// Holds asynchronous applies back while tenants keep the runtime busy.
    pacer: Pacer,
    wake: Notify,
    /// Set when a reverse record may have become pending (at start, on a reverse append, on
    /// a retry): the tier index holds both directions, so a reverse pass reads forward
    /// records to find reverse ones, and the worker runs one only when this says so.
    reverse_hint: AtomicBool,
    key: SecretKey,
    shared_identity: bool,
}

/// The mirror engine. Cheap to clone.
#[derive(Clone)]
pub struct MirrorEngine {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
    worker: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for MirrorEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorEngine").finish_non_exhaustive()
    }
}

/// Releases a claim when dropped (also when a Gold apply times out). Owned, so that a
/// Gold record's claim can outlive the tenant's call until its queued transition has
/// committed.
struct Claim {
    claimed: Arc<Mutex<HashSet<u64>>>,
    seq: u64,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claimed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.seq);
    }
}

fn mode_name(m: Option<&MirrorMode>) -> &'static str {
    match m {
        Some(MirrorMode::Sync) => "sync",
        Some(MirrorMode::Periodic { .. }) => "periodic",
        Some(MirrorMode::Async { .. }) => "async",
        Some(MirrorMode::Off) => "off",
        None => "unknown",
    }
}

impl MirrorEngine {
    /// Registers the metrics and spawns the worker (needs a tokio runtime).
    pub async fn start(deps: MirrorDeps<'_>) -> Result<MirrorEngine, MirrorError> {
        let metrics = MirrorMetrics::new(deps.registry)?;
        let startup_last_seq = deps.journal.last_seq().await?;
        let applier = Applier::new(
            deps.recovery.clone(),
            deps.primary.clone(),
            DirectedIdMap::new(deps.idmap.clone(), SiteName::Primary),
            deps.store.clone(),
            deps.secret_key.clone(),
            deps.shared_identity,
            startup_last_seq,
        );
        // Reverse replication: the same applier with the sites' roles swapped.
        let reverse = Applier::new(
            deps.primary,
            deps.recovery,
            DirectedIdMap::new(deps.idmap.clone(), SiteName::Recovery),
            deps.store.clone(),
            deps.secret_key.clone(),
            deps.shared_identity,
            startup_last_seq,
        );
        let inner = Arc::new(Inner {
            journal: deps.journal,
            idmap: deps.idmap,
            store: deps.store,
            applier,
            reverse,
            metrics,
            gold_timeout: deps.gold_timeout,
            tiers: Mutex::new(deps.tiers.into_iter().collect()),
            claimed: Arc::new(Mutex::new(HashSet::new())),
            backoff: Mutex::new(HashMap::new()),
            retry_initial: deps.retry_initial,
            retry_max: deps.retry_max.max(deps.retry_initial),
            tick: deps.tick.max(Duration::from_millis(10)),
            parallel: Arc::new(Semaphore::new(deps.parallel_tenants.max(1))),
            pacer: Pacer::for_current_runtime(),
            wake: Notify::new(),
            reverse_hint: AtomicBool::new(true),
            key: deps.secret_key,
            shared_identity: deps.shared_identity,
        });
        let (stop, stop_rx) = watch::channel(false);
        let worker = tokio::spawn(worker(inner.clone(), stop_rx));
        Ok(MirrorEngine {
            inner,
            stop,
            worker: Arc::new(Mutex::new(Some(worker))),
        })
    }

    /// Stops the worker (in-flight applies finish first). For graceful shutdown; the
    /// journal is closed by its owner afterwards.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let handle = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.await;
        }
    }

    /// Journals a successful change and, for Gold, applies it before returning.
    pub async fn submit(&self, m: Mutation) -> MirrorOutcome {
        self.submit_with(m, Batch::new(), true).await
    }

    /// Like [`MirrorEngine::submit`], and commits `side` (bookkeeping of the change without
    /// preconditions, such as its usage counters) with the record's append: one commit.
    /// `side` is committed exactly when the outcome is neither
    /// [`MirrorOutcome::NotMirrored`] nor [`MirrorOutcome::Failed`]; otherwise the caller
    /// still holds the change's bookkeeping to commit.
    pub async fn submit_along(&self, m: Mutation, side: Batch) -> MirrorOutcome {
        self.submit_with(m, side, true).await
    }

    /// Journals a successful change (with `side`, see [`MirrorEngine::submit_along`]); for
    /// Gold, applies it before returning if `inline` (else the worker applies it, like a
    /// degraded one).
    async fn submit_with(&self, m: Mutation, side: Batch, inline: bool) -> MirrorOutcome {
        let inner = &self.inner;
        if m.tier.mode == MirrorMode::Off || !m.status.is_success() {
            return MirrorOutcome::NotMirrored;
        }
        let Some(t) = mirror_target(
            m.op.service,
            m.method.as_str(),
            &m.path,
            m.request_body.as_ref(),
        ) else {
            return MirrorOutcome::NotMirrored;
        };
        if inner.shared_identity && t.service == Service::Identity {
            return MirrorOutcome::NotMirrored;
        }
        let resource = t.kind.resource_type().as_str();
        let tier = m.tier.name.clone();
        inner
            .tiers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tier.clone(), m.tier.mode);
        let facts = CallFacts::of(&m);
        let n = match normalise(&t, &facts) {
            Ok(n) => n,
            Err(e) => {
                // Reported, never silently dropped: the caller answers 5xx or logs.
                inner.metrics.op(&tier, resource, "journal_error");
                return MirrorOutcome::Failed {
                    reason: format!("cannot mirror this {resource}: {e}"),
                };
            }
        };
        let secret = match &n.secret {
            Some((pointer, clear)) => match inner.key.seal(pointer, clear) {
                Ok(s) => Some(s),
                Err(e) => {
                    inner.metrics.op(&tier, resource, "journal_error");
                    return MirrorOutcome::Failed {
                        reason: e.to_string(),
                    };
                }
            },
            None => None,
        };
        let tenant = TenantRef::new(
            m.tenant
                .project_id
                .clone()
                .or_else(|| m.tenant.domain_id.clone())
                .unwrap_or_default(),
            m.tenant
                .project_domain_id
                .clone()
                .or_else(|| m.tenant.domain_id.clone())
                .unwrap_or_else(|| m.tenant.user_domain_id.clone()),
        );
        let direction = Direction::from_source(m.site);
        let record = NewRecord {
            tenant,
            tier: tier.clone(),
            direction,
            service: t.service.as_str().to_string(),
            resource_type: resource.to_string(),
            action: t.action.as_str().to_string(),
            primary_id: n.primary_id.clone(),
            request: MirrorRequest {
                method: n.method.clone(),
                path: n.path.clone(),
                body: n.body.clone(),
                secret,
            },
            depends_on: Vec::new(),
        };
        let resource_key = ordering_key(record.primary_id.as_deref(), &record.request.path);
        let inline = inline && m.tier.mode == MirrorMode::Sync && direction == Direction::Forward;
        // Gold looks at the tenant's pending records while its own append commits.
        let (appended, pending) = if inline {
            let (appended, pending) = tokio::join!(
                inner.journal.append_with(record.clone(), side),
                inner
                    .journal
                    .pending_for_tenant(&record.tenant, None, OLDER_LOOK)
            );
            (appended, Some(pending))
        } else {
            (inner.journal.append_with(record, side).await, None)
        };
        let seq = match appended {
            Ok(seq) => seq,
            Err(e) => {
                inner.metrics.op(&tier, resource, "journal_error");
                return MirrorOutcome::Failed {
                    reason: format!("the mirror journal is unavailable: {e}"),
                };
            }
        };
        if direction == Direction::Reverse {
            inner.reverse_hint.store(true, Ordering::Release);
        }
        if !inline {
            inner.metrics.op(&tier, resource, "queued");
            inner.wake.notify_one();
            return MirrorOutcome::Queued;
        }
        // Gold: apply inline, bounded. The worker may have claimed the record already (it
        // wakes on every submit); then its apply is waited for, never run twice.
        let started = Instant::now();
        let deadline = started + inner.gold_timeout;
        if older_pending(pending, seq, resource_key.as_deref()) {
            // An older change of the same resource is still pending (a degraded Gold one,
            // or one of another tier): applying this one first would let that one overwrite
            // it later. The worker applies them in order; the answer waits for it.
            inner.wake.notify_one();
            return inner.await_worker(seq, deadline, &tier, resource).await;
        }
        let Some(claim) = inner.claim_by(seq, deadline).await else {
            // Undoing the primary change now could race that apply: leave the record to it.
            inner.metrics.op(&tier, resource, "degraded");
            return MirrorOutcome::Degraded {
                reason: format!(
                    "the record was being applied for longer than {:?}",
                    inner.gold_timeout
                ),
            };
        };
        // The apply observes its own duration; one cut short by the timeout is observed here.
        let result =
            match tokio::time::timeout_at(deadline.into(), inner.apply_seq_queued(seq)).await {
                Ok(r) => r,
                Err(_) => {
                    inner
                        .metrics
                        .apply_duration
                        .with_label_values(&[&tier])
                        .observe(started.elapsed().as_secs_f64());
                    Err(ApplyError::Retryable(format!(
                        "the recovery site did not apply the change within {:?}",
                        inner.gold_timeout
                    )))
                }
            };
        let reason = match result {
            Ok(marked) => {
                if let Some(marked) = marked {
                    inner.metrics.op(&tier, resource, "applied");
                    // Applied at the recovery site; the transition (and the ID-map entry) is
                    // queued ahead of anything journaled after this answer. The claim is held
                    // until it has committed, so the worker cannot apply the record again.
                    let inner = self.inner.clone();
                    tokio::spawn(async move {
                        if let Err(e) = marked.committed().await {
                            tracing::warn!(seq, error = %e, "a Gold record applied inline could not be marked applied; it will be applied again, adopting the copy");
                            inner.applier_for(direction).note_maybe_sent(seq);
                            inner.wake.notify_one();
                        }
                        drop(claim);
                    });
                }
                return MirrorOutcome::Applied;
            }
            Err(e) => e.to_string(),
        };
        let undo = compensation(&t, &n, &m.path);
        if m.tier.on_failure == GoldFailure::Reject {
            if let Some((method, path, body)) = undo {
                match inner
                    .applier
                    .compensate(t.service, &method, &path, body.as_ref())
                    .await
                {
                    Ok(()) => {
                        if let Err(e) = inner
                            .journal
                            .mark_failed(seq, format!("rejected: {reason}"), false)
                            .await
                        {
                            tracing::warn!(seq, error = %e, "cannot mark a rejected record failed");
                        }
                        drop(claim);
                        inner.metrics.op(&tier, resource, "rejected");
                        // The apply may have got part of the way (a copy created, then its
                        // tagging failed; or a timeout after the send): the undo is a change
                        // at the primary like any other, journaled for the worker to mirror
                        // (a no-op where nothing was mirrored).
                        let undo = undo_mutation(&m, &t, &method, path, body);
                        if let MirrorOutcome::Failed { reason } =
                            Box::pin(self.submit_with(undo, Batch::new(), false)).await
                        {
                            tracing::error!(seq, reason, "the undo of a rejected change could not be journaled; a recovery copy may stay");
                        }
                        return MirrorOutcome::Rejected { reason };
                    }
                    Err(ce) => {
                        tracing::warn!(seq, error = %ce, "Gold compensation failed; degrading");
                    }
                }
            }
        }
        drop(claim);
        inner.metrics.op(&tier, resource, "degraded");
        inner.wake.notify_one();
        MirrorOutcome::Degraded { reason }
    }

    /// Journals, for the worker to mirror, the undo of a create whose mirror was applied
    /// but which was then undone at the primary ([`MirrorEngine::undo_create`]): the other
    /// items of a rejected Neutron bulk create.
    pub async fn journal_undo(&self, m: &Mutation) -> Result<(), String> {
        let (target, method, path, body) = undo_of(m)?;
        let undo = undo_mutation(m, &target, &method, path, body);
        match Box::pin(self.submit_with(undo, Batch::new(), false)).await {
            MirrorOutcome::Failed { reason } => Err(reason),
            _ => Ok(()),
        }
    }

    /// Deletes, at the primary and with the gateway's service token, what a successful
    /// create made there; for the other creates of a Neutron bulk create whose Gold mirror
    /// was rejected (the tenant is told that nothing was changed). Nothing is journaled.
    pub async fn undo_create(&self, m: &Mutation) -> Result<(), String> {
        let (target, method, path, body) = undo_of(m)?;
        self.inner
            .applier
            .compensate(target.service, &method, &path, body.as_ref())
            .await
            .map_err(|e| e.to_string())
    }

    /// Waits until every journal change queued so far is durable: a Gold record's transition
    /// to applied (and its ID-map entry) is only queued when the tenant gets its answer, so
    /// the admin reads below wait for it, to show what the tenant was told.
    async fn settled(&self) -> Result<(), MirrorError> {
        Ok(self.inner.journal.flush().await?)
    }

    /// A page of the journal (the secret's sealed form is not shown).
    pub async fn journal_page(
        &self,
        filter: &RecordFilter,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<RecordPage, MirrorError> {
        self.settled().await?;
        let mut page = self
            .inner
            .journal
            .list(filter, after_seq, limit.clamp(1, 1000))
            .await?;
        for r in &mut page.records {
            r.request.secret = None;
        }
        Ok(page)
    }

    /// Puts a failed record back to pending and wakes the worker.
    pub async fn retry(&self, seq: u64) -> Result<JournalRecord, MirrorError> {
        let mut r = self.inner.journal.retry(seq).await?;
        self.inner
            .backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(r.tenant.clone(), r.tier.clone(), r.direction));
        if r.direction == Direction::Reverse {
            self.inner.reverse_hint.store(true, Ordering::Release);
        }
        self.inner.wake.notify_one();
        r.request.secret = None;
        Ok(r)
    }

    /// Checkpoints (oldest first).
    pub async fn checkpoints(
        &self,
        tier: Option<&str>,
        after_id: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Checkpoint>, MirrorError> {
        Ok(self
            .inner
            .journal
            .checkpoints(tier, after_id, limit.clamp(1, 1000))
            .await?)
    }

    /// One mapping, by primary ID.
    /// Up to `limit` flavor fits (recovery site without admin rights), by primary flavor ID.
    pub async fn flavor_fits(
        &self,
        limit: usize,
    ) -> Result<Vec<flavor_fit::FlavorFit>, MirrorError> {
        let ns = flavor_fit::FLAVOR_FITS;
        let entries = self.inner.applier.store.scan(ns, b"", None, limit).await?;
        let mut fits = Vec::with_capacity(entries.len());
        for e in entries {
            fits.push(crate::state::frame::open_json(ns, &e.key, &e.value)?);
        }
        Ok(fits)
    }

    pub async fn idmap_lookup(
        &self,
        service: &str,
        resource_type: &str,
        primary_id: &str,
    ) -> Result<Option<IdMapping>, MirrorError> {
        self.settled().await?;
        Ok(self
            .inner
            .idmap
            .get_by_primary(service, resource_type, primary_id)
            .await?)
    }

    /// Mappings, paged.
    pub async fn idmap_list(
        &self,
        filter: &IdMapFilter,
        after: Option<&IdMapping>,
        limit: usize,
    ) -> Result<Vec<IdMapping>, MirrorError> {
        self.settled().await?;
        Ok(self
            .inner
            .idmap
            .list(filter, after, limit.clamp(1, 1000))
            .await?)
    }

    /// A workload's protection record.
    pub async fn protection(
        &self,
        service: &str,
        resource_type: &str,
        primary_id: &str,
    ) -> Result<Option<ProtectionRecord>, MirrorError> {
        Ok(self
            .inner
            .applier
            .protection(service, resource_type, primary_id)
            .await?)
    }

    /// Per tier: pending records, age of the oldest, last checkpoint.
    pub async fn status(&self) -> Result<Vec<TierStatus>, MirrorError> {
        self.settled().await?;
        let lag = self.inner.journal.tier_lag().await?;
        let modes = self
            .inner
            .tiers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut names: Vec<String> = modes.keys().cloned().collect();
        names.extend(lag.keys().filter(|k| !modes.contains_key(*k)).cloned());
        let now = now_ms();
        let mut out = Vec::new();
        for tier in names {
            let l = lag.get(&tier);
            let last_checkpoint = self.last_checkpoint(&tier).await?;
            out.push(TierStatus {
                mode: mode_name(modes.get(&tier)).to_string(),
                pending: l.map_or(0, |l| l.pending),
                oldest_pending_age_seconds: l
                    .and_then(|l| l.oldest_pending_ms)
                    .map(|t| now.saturating_sub(t) as f64 / 1000.0),
                last_checkpoint,
                tier,
            });
        }
        Ok(out)
    }

    async fn last_checkpoint(&self, tier: &str) -> Result<Option<Checkpoint>, MirrorError> {
        let mut after = None;
        let mut last = None;
        loop {
            let page = self
                .inner
                .journal
                .checkpoints(Some(tier), after, 1000)
                .await?;
            match page.last() {
                Some(c) => {
                    after = Some(c.id);
                    last = Some(c.clone());
                }
                None => return Ok(last),
            }
            if page.len() < 1000 {
                return Ok(last);
            }
        }
    }

    /// A workload created at the recovery site during a failover, by its recovery ID.
    pub async fn protection_at_primary(
        &self,
        service: &str,
        resource_type: &str,
        recovery_id: &str,
    ) -> Result<Option<ProtectionRecord>, MirrorError> {
        Ok(self
            .inner
            .reverse
            .protection(service, resource_type, recovery_id)
            .await?)
    }

    /// Wakes the worker (e.g. after the recovery site came back).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Asynchronous records stop giving way to tenant requests (see [`pace`]) until the
    /// guard is dropped: for a caller that waits for the journal to drain.
    pub fn hurry(&self) -> pace::Counted {
        self.inner.pacer.hurry()
    }

    /// Counts a worker's runtime in the utilisation that paces background applies.
    pub fn watch_runtime(&self, runtime: tokio::runtime::Handle) {
        self.inner.pacer.watch_runtime(runtime);
    }

    /// Counts a tenant request in flight (see [`pace`]) until the guard is dropped.
    pub fn tenant_request(&self) -> pace::Counted {
        self.inner.pacer.tenant_request()
    }

    /// Marks every record still pending in `direction` failed with `superseded: {why}` and
    /// returns their seqs: a forced switch abandons the site those changes came from (they
    /// are in its RPO report). A record being applied at this moment is waited for (up to
    /// the Gold timeout) and left alone if it got applied.
    pub async fn supersede(
        &self,
        direction: Direction,
        why: &str,
    ) -> Result<Vec<u64>, MirrorError> {
        let inner = &self.inner;
        let filter = RecordFilter {
            state: Some(crate::journal::StateFilter::Pending),
            direction: Some(direction),
            ..RecordFilter::default()
        };
        let mut seqs = Vec::new();
        let mut after = None;
        loop {
            let page = inner.journal.list(&filter, after, 1000).await?;
            seqs.extend(page.records.iter().map(|r| r.seq));
            match page.next_after {
                Some(a) => after = Some(a),
                None => break,
            }
        }
        let mut done = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let deadline = Instant::now() + inner.gold_timeout;
            let Some(_claim) = inner.claim_by(seq, deadline).await else {
                tracing::warn!(seq, "a record being applied was not superseded");
                continue;
            };
            match inner.journal.get(seq).await? {
                Some(r) if r.state.is_pending() => {}
                _ => continue,
            }
            let reason = format!("superseded: {why}");
            match inner.journal.mark_failed(seq, reason, false).await {
                Ok(r) => {
                    inner.metrics.op(&r.tier, &r.resource_type, "superseded");
                    done.push(seq);
                }
                Err(JournalError::InvalidTransition { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !done.is_empty() {
            tracing::warn!(
                direction = direction.as_str(),
                records = done.len(),
                why,
                "pending mirror records superseded"
            );
        }
        Ok(done)
    }
}

/// The target of a mirrored create `m` and the call that undoes it at the primary
/// ([`target::compensation`]): method, path, body.
fn undo_of(m: &Mutation) -> Result<(Target, String, String, Option<serde_json::Value>), String> {
    let target = mirror_target(
        m.op.service,
        m.method.as_str(),
        &m.path,
        m.request_body.as_ref(),
    )
    .ok_or_else(|| format!("{} {} is not a mirrored create", m.method, m.path))?;
    let n = normalise(&target, &CallFacts::of(m)).map_err(|e| e.to_string())?;
    let (method, path, body) = compensation(&target, &n, &m.path)
        .ok_or_else(|| format!("{} {} cannot be undone", m.method, m.path))?;
    Ok((target, method, path, body))
}

/// The compensating call of `m` (see [`target::compensation`]) as a change of the same
/// tenant, tier and site.
fn undo_mutation(
    m: &Mutation,
    t: &Target,
    method: &str,
    path: String,
    body: Option<serde_json::Value>,
) -> Mutation {
    let method = http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::DELETE);
    Mutation {
        op: crate::services::classify(t.service, &method, &path, None, None),
        method,
        path,
        query: None,
        request_body: body,
        status: http::StatusCode::NO_CONTENT,
        response_body: None,
        location: None,
        ..m.clone()
    }
}

enum TenantRun {
    Done,
    Blocked,
}

/// The resource a record changes, for ordering across tiers: its primary ID, or for a tag
/// call (`/v2.0/networks/{id}/tags/...`, `/v3/projects/{id}/tags`, `/v2/images/{id}/tags/..`)
/// the tagged resource's.
fn ordering_id(r: &JournalRecord) -> Option<String> {
    ordering_key(r.primary_id.as_deref(), &r.request.path)
}

/// [`ordering_id`] of a record's primary ID and normalised path.
fn ordering_key(primary_id: Option<&str>, path: &str) -> Option<String> {
    if let Some(p) = primary_id {
        return Some(p.to_string());
    }
    let path = path.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        [_, _, id, "tags", ..] => Some((*id).to_string()),
        _ => None,
    }
}

/// How many entries of a tier's pending index a drain pass looks at.
const INDEX_LOOK: usize = 4096;

/// How many records a drain pass of a tier whose records give way to tenants reads.
const GIVING_WAY_PASS_RECORDS: usize = 256;

/// How many of a tenant's pending records a Gold change looks at for an older change of the
/// same resource.
const OLDER_LOOK: usize = 256;

/// Whether a tenant's pending records (read while `seq` was appended) hold one older than
/// `seq` about the same resource, or possibly do (too many to look at all, or unreadable).
fn older_pending(
    pending: Option<Result<Vec<JournalRecord>, JournalError>>,
    seq: u64,
    resource: Option<&str>,
) -> bool {
    match pending {
        Some(Ok(pending)) => {
            let mut older = pending.iter().filter(|r| r.seq < seq);
            pending.len() >= OLDER_LOOK
                || resource.is_some_and(|key| older.any(|r| ordering_id(r).as_deref() == Some(key)))
        }
        Some(Err(e)) => {
            tracing::warn!(seq, error = %e, "cannot read the tenant's pending records; applying in order via the worker");
            true
        }
        None => false,
    }
}

/// How many pending records of other tiers a drain looks at for ordering (beyond that, the
/// newest are not considered; they are rarely about the same resource).
const PENDING_ELSEWHERE_LIMIT: usize = 16_384;

impl Inner {
    fn applier_for(&self, direction: Direction) -> &Applier {
        match direction {
            Direction::Forward => &self.applier,
            Direction::Reverse => &self.reverse,
        }
    }

    fn claim(&self, seq: u64) -> Option<Claim> {
        let fresh = self
            .claimed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(seq);
        fresh.then(|| Claim {
            claimed: self.claimed.clone(),
            seq,
        })
    }

    /// Waits (until `deadline`) for the worker to apply `seq`; the Gold outcome.
    async fn await_worker(
        &self,
        seq: u64,
        deadline: Instant,
        tier: &str,
        resource: &str,
    ) -> MirrorOutcome {
        // The older record may be an asynchronous one: it must not give way now.
        let _hurry = self.pacer.hurry();
        loop {
            match self.journal.get(seq).await {
                Ok(Some(r)) => match r.state {
                    RecordState::Applied { .. } => return MirrorOutcome::Applied,
                    RecordState::Failed { reason, .. } => {
                        self.metrics.op(tier, resource, "degraded");
                        return MirrorOutcome::Degraded { reason };
                    }
                    RecordState::Pending => {}
                },
                Ok(None) => {}
                Err(e) => tracing::debug!(seq, error = %e, "cannot read a Gold record's state"),
            }
            if Instant::now() >= deadline {
                self.metrics.op(tier, resource, "degraded");
                return MirrorOutcome::Degraded {
                    reason: format!(
                        "an older change of the same resource was not applied within {:?}",
                        self.gold_timeout
                    ),
                };
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Claims `seq`, waiting while another task (the worker) applies it; `None` once
    /// `deadline` passes.
    async fn claim_by(&self, seq: u64, deadline: Instant) -> Option<Claim> {
        loop {
            if let Some(c) = self.claim(seq) {
                return Some(c);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Applies one pending record and records the outcome in the journal. `Err` only for a
    /// retryable failure (the record stays pending); permanent failures are marked failed.
    async fn apply_seq(&self, seq: u64) -> Result<(), ApplyError> {
        // Not queue-only: the transition has committed (or is reported) when this returns.
        self.apply_seq_with(seq, false).await.map(drop)
    }

    /// Like [`Inner::apply_seq`], but a successful apply's transition to applied is only
    /// queued with the journal writer (see [`Journal::queue_mark_applied`]), not waited
    /// for: the caller must hold the record's claim until the returned `Queued` resolves.
    /// `None` when there was nothing to mark.
    async fn apply_seq_queued(
        &self,
        seq: u64,
    ) -> Result<Option<Queued<JournalRecord>>, ApplyError> {
        self.apply_seq_with(seq, true).await
    }

    async fn apply_seq_with(
        &self,
        seq: u64,
        queue_only: bool,
    ) -> Result<Option<Queued<JournalRecord>>, ApplyError> {
        let rec = match self.journal.get(seq).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Err(ApplyError::Permanent(format!(
                    "record {seq} does not exist"
                )))
            }
            Err(e) => return Err(ApplyError::Retryable(e.to_string())),
        };
        if !rec.state.is_pending() {
            return Ok(None);
        }
        let started = Instant::now();
        let applier = self.applier_for(rec.direction);
        let mut side = Batch::new();
        let result = applier.apply(&rec, &mut side).await;
        self.metrics
            .apply_duration
            .with_label_values(&[&rec.tier])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(recovery_id) => {
                // The ID-map entry of a created resource commits with the transition.
                let has_side = !side.is_empty();
                let queued = self
                    .journal
                    .queue_mark_applied(seq, recovery_id, side)
                    .await
                    .map_err(|e| {
                        if has_side {
                            // Applied but not recorded: a retry must look for the copy first.
                            applier.note_maybe_sent(seq);
                        }
                        ApplyError::Retryable(format!("cannot mark record {seq} applied: {e}"))
                    })?;
                if !queue_only {
                    if let Err(e) = queued.committed().await {
                        if has_side {
                            applier.note_maybe_sent(seq);
                        }
                        return Err(ApplyError::Retryable(format!(
                            "cannot mark record {seq} applied: {e}"
                        )));
                    }
                    self.metrics.op(&rec.tier, &rec.resource_type, "applied");
                    return Ok(None);
                }
                Ok(Some(queued))
            }
            Err(ApplyError::Permanent(reason)) => {
                tracing::warn!(seq, tier = %rec.tier, resource = %rec.resource_type, %reason, "mirror record failed");
                self.journal
                    .mark_failed(seq, reason.clone(), false)
                    .await
                    .map_err(|e| {
                        ApplyError::Retryable(format!("cannot mark record {seq} failed: {e}"))
                    })?;
                self.metrics.op(&rec.tier, &rec.resource_type, "failed");
                Err(ApplyError::Permanent(reason))
            }
            Err(e) => {
                self.metrics.op(&rec.tier, &rec.resource_type, "retry");
                Err(e)
            }
        }
    }

    /// Pending records of a tier in one direction, oldest first, up to `up_to`, at most
    /// `limit` (the tier index holds both directions; up to [`INDEX_LOOK`] entries are
    /// looked at). Also whether entries were left unread (the limit was reached first, or
    /// the index holds more than [`INDEX_LOOK`]).
    async fn pending_of_tier(
        &self,
        direction: Direction,
        tier: &str,
        up_to: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<JournalRecord>, bool), MirrorError> {
        let mut out = Vec::new();
        let seqs = self.pending_seqs_of_tier(tier, up_to, INDEX_LOOK).await?;
        // Read in chunks (one store snapshot each) rather than one record at a time.
        for chunk in seqs.chunks(256) {
            for r in self.journal.get_many(chunk).await?.into_iter().flatten() {
                if out.len() >= limit {
                    return Ok((out, true));
                }
                if r.state.is_pending() && r.direction == direction {
                    out.push(r);
                }
            }
        }
        Ok((out, seqs.len() >= INDEX_LOOK))
    }

    /// Pending seqs of a tier (both directions), oldest first, up to `up_to`, at most `limit`.
    async fn pending_seqs_of_tier(
        &self,
        tier: &str,
        up_to: Option<u64>,
        limit: usize,
    ) -> Result<Vec<u64>, MirrorError> {
        let mut prefix = Vec::new();
        push_component(&mut prefix, tier.as_bytes())?;
        let entries = self
            .store
            .scan(PENDING_BY_TIER, &prefix, None, limit)
            .await?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let Some(tail) = e.key.get(prefix.len()..) else {
                continue;
            };
            let Ok(bytes) = <[u8; 8]>::try_from(tail) else {
                continue;
            };
            let seq = u64::from_be_bytes(bytes);
            if up_to.is_some_and(|c| seq > c) {
                break;
            }
            out.push(seq);
        }
        Ok(out)
    }

    /// The oldest pending record of each (tenant, primary ID) in tiers other than `tier`.
    /// Records of one resource apply in journal order whatever their tiers: a resource whose
    /// tier changed (a Silver network re-tagged Bronze) must not have its newer Bronze
    /// change overtaken by its older Silver one at the next checkpoint.
    async fn pending_elsewhere(
        &self,
        tier: &str,
    ) -> Result<HashMap<(TenantRef, String), u64>, MirrorError> {
        let mut out: HashMap<(TenantRef, String), u64> = HashMap::new();
        // Only the tiers that have pending records (their counts are kept by the journal);
        // the drained tier's own, usually the many, are not looked at.
        let others: Vec<String> = self
            .journal
            .tier_lag()
            .await?
            .into_iter()
            .filter(|(t, l)| t != tier && l.pending > 0)
            .map(|(t, _)| t)
            .collect();
        let mut seqs = Vec::new();
        for other in others {
            let left = PENDING_ELSEWHERE_LIMIT.saturating_sub(seqs.len());
            if left == 0 {
                break;
            }
            seqs.extend(self.pending_seqs_of_tier(&other, None, left).await?);
        }
        for chunk in seqs.chunks(256) {
            for r in self.journal.get_many(chunk).await?.into_iter().flatten() {
                if let (true, Some(p)) = (r.state.is_pending(), ordering_id(&r)) {
                    let seq = r.seq;
                    let first = out.entry((r.tenant, p)).or_insert(seq);
                    *first = (*first).min(seq);
                }
            }
        }
        Ok(out)
    }

    /// Applies a tier's pending records (up to `up_to`), tenants in parallel. Returns whether
    /// anything is left pending up to the cut, and how many records were processed. With
    /// `give_way` (an asynchronous tier), each record first waits while the runtime is
    /// busy with tenant requests, up to that long after its journal time (see [`pace`]),
    /// and at most one `tick` in this pass (the rest of the tenant's records then wait for
    /// the next pass, so that the worker's other tiers are not held up).
    async fn drain(
        self: &Arc<Self>,
        direction: Direction,
        tier: &str,
        up_to: Option<u64>,
        give_way: Option<Duration>,
    ) -> Result<(bool, usize), MirrorError> {
        if let Some(bound) = give_way.filter(|_| self.pacer.contended()) {
            // Records are journaled in time order, so while the oldest may still give way,
            // every other may too: wait here, on the pending index alone, rather than read
            // and decode the whole backlog on every pass of a busy period.
            let Some(oldest_ms) = self.journal.oldest_pending_ms(tier).await? else {
                return Ok((false, 0));
            };
            let pass_ends = Instant::now() + self.tick;
            if self.give_way(tier, oldest_ms, bound, pass_ends).await {
                return Ok((true, 0));
            }
        }
        // A pass that may give way reads a short prefix: what it reads and then leaves to a
        // later pass is read again there. The worker runs the next pass at once when this
        // one got through. A pass toward a cut (Silver) reads all it must apply.
        let limit = if give_way.is_some() {
            GIVING_WAY_PASS_RECORDS
        } else {
            4096
        };
        let (records, unread) = self.pending_of_tier(direction, tier, up_to, limit).await?;
        if records.is_empty() {
            // Reverse records past the entries looked at wait for a later pass.
            return Ok((unread && direction == Direction::Reverse, 0));
        }
        let mut by_tenant: BTreeMap<TenantRef, Vec<(u64, u64, Option<String>)>> = BTreeMap::new();
        for r in records {
            let resource = ordering_id(&r);
            by_tenant
                .entry(r.tenant)
                .or_default()
                .push((r.seq, r.time_ms, resource));
        }
        let older = Arc::new(self.pending_elsewhere(tier).await?);
        let now = Instant::now();
        let pass_ends = now + self.tick;
        let mut tasks = tokio::task::JoinSet::new();
        let mut blocked = false;
        for (tenant, seqs) in by_tenant {
            let key = (tenant, tier.to_string(), direction);
            let waiting = self
                .backoff
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .and_then(|b| b.until)
                .is_some_and(|u| u > now);
            if waiting {
                blocked = true;
                continue;
            }
            let inner = self.clone();
            let permit = self.parallel.clone();
            let older = older.clone();
            tasks.spawn(async move {
                let _permit = permit.acquire_owned().await;
                let mut done = 0usize;
                for (seq, time_ms, primary_id) in seqs {
                    if let Some(bound) = give_way {
                        // At most until the pass's end: the worker's other tiers (a Silver
                        // checkpoint, Gold records left pending) must not wait for Bronze.
                        if inner.give_way(&key.1, time_ms, bound, pass_ends).await {
                            return (key, TenantRun::Blocked, done);
                        }
                    }
                    // A re-tiered resource: its older change in another tier goes first.
                    let waits = primary_id.is_some_and(|p| {
                        older
                            .get(&(key.0.clone(), p))
                            .is_some_and(|&first| first < seq)
                    });
                    if waits {
                        return (key, TenantRun::Blocked, done);
                    }
                    let Some(_claim) = inner.claim(seq) else {
                        return (key, TenantRun::Blocked, done);
                    };
                    match inner.apply_seq(seq).await {
                        Ok(()) | Err(ApplyError::Permanent(_)) => done += 1,
                        Err(e) => {
                            tracing::debug!(seq, error = %e, "mirror apply will be retried");
                            inner.back_off(&key);
                            return (key, TenantRun::Blocked, done);
                        }
                    }
                }
                (key, TenantRun::Done, done)
            });
        }
        let mut processed = 0;
        while let Some(joined) = tasks.join_next().await {
            let Ok((key, run, done)) = joined else {
                blocked = true;
                continue;
            };
            processed += done;
            match run {
                TenantRun::Done => {
                    self.backoff
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&key);
                }
                TenantRun::Blocked => blocked = true,
            }
        }
        Ok((blocked, processed))
    }

    /// Waits while tenants keep the runtime busy, until `bound` after the record's journal
    /// time (`time_ms`, wall clock) or until `pass_ends`, whichever comes first. Returns
    /// whether the record is still held back (then the pass leaves it for the next one).
    async fn give_way(
        &self,
        tier: &str,
        time_ms: u64,
        bound: Duration,
        pass_ends: Instant,
    ) -> bool {
        let bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
        let left = time_ms.saturating_add(bound_ms).saturating_sub(now_ms());
        if left == 0 {
            return false;
        }
        let due = Instant::now() + Duration::from_millis(left);
        let waited = self.pacer.give_way(due.min(pass_ends)).await;
        if !waited.is_zero() {
            self.metrics
                .deferred
                .with_label_values(&[tier])
                .inc_by(waited.as_secs_f64());
        }
        Instant::now() < due && self.pacer.contended()
    }

    fn back_off(&self, key: &BackoffKey) {
        let mut map = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let b = map.entry(key.clone()).or_default();
        b.failures = b.failures.saturating_add(1);
        let exp = self
            .retry_initial
            .saturating_mul(2u32.saturating_pow(b.failures.saturating_sub(1).min(16)));
        b.until = Some(Instant::now() + exp.min(self.retry_max));
    }

    async fn refresh_gauges(&self) {
        match self.journal.tier_lag().await {
            Ok(lag) => {
                let now = now_ms();
                for (tier, l) in lag {
                    self.metrics
                        .pending
                        .with_label_values(&[&tier])
                        .set(i64::try_from(l.pending).unwrap_or(i64::MAX));
                    let age = l
                        .oldest_pending_ms
                        .map_or(0.0, |t| now.saturating_sub(t) as f64 / 1000.0);
                    self.metrics.lag.with_label_values(&[&tier]).set(age);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the journal lag"),
        }
    }
}

async fn worker(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    // Tiers that have records but no configured mode apply like Bronze.
    if let Ok(lag) = inner.journal.tier_lag().await {
        let mut tiers = inner.tiers.lock().unwrap_or_else(|e| e.into_inner());
        for tier in lag.keys() {
            tiers.entry(tier.clone()).or_insert(MirrorMode::Async {
                max_lag: Duration::from_secs(300),
            });
        }
    }
    let mut due: HashMap<String, Instant> = HashMap::new();
    let mut last_cut: HashMap<String, u64> = HashMap::new();
    let mut reverse_left = false;
    let mut last_reverse = Instant::now();
    loop {
        let tiers: Vec<(String, MirrorMode)> = inner
            .tiers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let mut busy = false;
        for (tier, mode) in tiers {
            if *stop.borrow() {
                return;
            }
            match mode {
                MirrorMode::Off => {}
                MirrorMode::Async { .. } | MirrorMode::Sync => {
                    // Asynchronous records give way to tenants for a while; Gold records
                    // left pending (degraded) are late already and apply at once.
                    let give_way = match mode {
                        MirrorMode::Async { max_lag } => Some(pace::defer_bound(max_lag)),
                        _ => None,
                    };
                    match inner.drain(Direction::Forward, &tier, None, give_way).await {
                        Ok((blocked, n)) => busy |= n > 0 && !blocked,
                        Err(e) => {
                            tracing::warn!(tier, error = %e, "mirror worker cannot read the journal")
                        }
                    }
                }
                MirrorMode::Periodic { interval } => {
                    let next = *due
                        .entry(tier.clone())
                        .or_insert_with(|| Instant::now() + interval);
                    if Instant::now() < next {
                        continue;
                    }
                    let cut = match inner.journal.last_seq().await {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(tier, error = %e, "mirror worker cannot read the journal");
                            continue;
                        }
                    };
                    match inner
                        .drain(Direction::Forward, &tier, Some(cut), None)
                        .await
                    {
                        Ok((false, _)) => {
                            let left = inner
                                .pending_of_tier(Direction::Forward, &tier, Some(cut), 1)
                                .await
                                .map(|(v, _)| v.is_empty());
                            let advanced = last_cut.get(&tier).is_none_or(|c| *c < cut);
                            if matches!(left, Ok(true))
                                && advanced
                                && had_records(&inner, &tier, last_cut.get(&tier).copied(), cut)
                                    .await
                            {
                                match inner.journal.append_checkpoint(tier.clone(), cut).await {
                                    Ok(c) => {
                                        inner
                                            .metrics
                                            .checkpoint_timestamp
                                            .set(c.time_ms as f64 / 1000.0);
                                        last_cut.insert(tier.clone(), cut);
                                    }
                                    Err(e) => {
                                        tracing::warn!(tier, error = %e, "cannot append a checkpoint")
                                    }
                                }
                            }
                            due.insert(tier.clone(), Instant::now() + interval);
                        }
                        Ok((true, _)) => {} // retried on the next tick, subject to back-off
                        Err(e) => {
                            tracing::warn!(tier, error = %e, "mirror worker cannot read the journal")
                        }
                    }
                }
            }
        }
        // Reverse records (made at the recovery site while failed over) of every tier apply
        // in the background toward the primary; no checkpoints. A pass runs when one may
        // have become pending, and once per tick while the last pass left some behind.
        let hinted = inner.reverse_hint.swap(false, Ordering::AcqRel);
        if hinted || (reverse_left && last_reverse.elapsed() >= inner.tick) {
            last_reverse = Instant::now();
            reverse_left = false;
            let tiers: Vec<String> = inner
                .tiers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned()
                .collect();
            for tier in tiers {
                if *stop.borrow() {
                    return;
                }
                match inner.drain(Direction::Reverse, &tier, None, None).await {
                    Ok((blocked, n)) => {
                        busy |= n > 0 && !blocked;
                        if n > 0 && !blocked {
                            // There may be more, past this pass's records: look again now.
                            inner.reverse_hint.store(true, Ordering::Release);
                        }
                        reverse_left |= blocked;
                    }
                    Err(e) => {
                        reverse_left = true;
                        tracing::warn!(tier, error = %e, "mirror worker cannot read the journal")
                    }
                }
            }
        }
        inner.refresh_gauges().await;
        if busy {
            continue;
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(inner.tick) => {}
        }
    }
}

/// Whether the tier has any record (in any state) in `(after, cut]`: a checkpoint marks a
/// batch, so an empty interval writes none.
async fn had_records(inner: &Inner, tier: &str, after: Option<u64>, cut: u64) -> bool {
    let filter = RecordFilter {
        tier: Some(tier.to_string()),
        direction: Some(Direction::Forward),
        ..RecordFilter::default()
    };
    match inner.journal.list(&filter, after, 1).await {
        Ok(page) => page.records.first().is_some_and(|r| r.seq <= cut),
        Err(_) => false,
    }
}
