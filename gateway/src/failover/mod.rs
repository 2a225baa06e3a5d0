//! Failover and failback: the controller that moves the persisted state machine
//! ([`drgw_catalog::failover`]), freezes writes, drains the journal, flips the active site,
//! reports what an unplanned switch lost, and checks the recovery site (drill).
//!
//! # Operations
//! - [`FailoverController::planned`]: `BeginFailover{Planned}` (writes frozen) → wait until
//!   the mirror has applied every pending journal record (bounded) → `CompleteSwitch` and
//!   [`Gateway::set_active_site`] → writes unfrozen. On a drain timeout the switch is aborted
//!   (`Abort`, the old site stays active) and the error says what was still pending.
//! - [`FailoverController::forced`]: `BeginFailover{Forced}` and the flip at once, then the
//!   RPO report ([`RpoReport`]): per tier and tenant, the journal records not applied. The
//!   records still pending from the abandoned site are then marked failed as superseded
//!   ([`crate::mirror::MirrorEngine::supersede`]): never applied the other way, and no later
//!   planned switch waits for them.
//! - [`FailoverController::failback_planned`] / [`FailoverController::failback_forced`]:
//!   the same back to the other site (`BeginFailback` + `CompleteFailback`).
//! - [`FailoverController::abort`]: aborts a planned switch left in progress.
//!
//! Every transition is persisted with compare-and-swap in the `failover` namespace
//! ([`FailoverStore`]); one operation runs at a time per controller and a concurrent one
//! gets [`FailoverError::Conflict`], as does a writer that lost the compare-and-swap. Every
//! operation's [`FailoverReport`] is kept in the `failover_reports` namespace, keyed by its
//! id ([`FailoverController::report`]).
//!
//! # Hot path
//! [`FailoverController::guard`] is an atomic load while writes are not frozen; while they
//! are, mutating calls (other than logins and token deletes) get 503 + `Retry-After: 5` in
//! the fronted service's native error format. A token issued by the Keystone of the site
//! that is no longer active is refused by the active site's services (401, with the
//! gateway's Keystone in `WWW-Authenticate`), so clients log in again.
//!
//! # Restart
//! [`FailoverController::load`] restores the persisted status and routes to its active site.
//! A planned switch interrupted by a restart (its drain died with the old process) is
//! aborted: the old site stays active and writes are unfrozen.

pub mod drill;
pub mod health;
pub mod ids;
mod metrics;
pub mod restore;
pub mod rpo;
pub mod stable;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use serde::{Deserialize, Serialize};

pub use drgw_catalog::failover::{
    FailoverState, FailoverStatus, Phase, Site, SwitchMode, Transition, TransitionError,
};
pub use drill::{DrillEntry, DrillGroup, DrillOutcome, DrillReport};
pub use health::{AutoFailoverConfig, AutoFailoverDetector, HealthConfig};
pub use ids::{
    translate_request_body, translate_request_path, translate_request_query,
    translate_response_ids, CollectingLookup, IdLookup, StaticIdLookup,
};
pub use metrics::FailoverMetrics;
pub use restore::{RestoreReport, RestoredWorkload};
pub use rpo::{LostRecord, RpoReport, TenantLoss, TierLoss};
pub use stable::StableIds;

use crate::config::SiteName;
use crate::gateway::Gateway;
use crate::journal::JournalError;
use crate::operation::{Operation, ResourceType, Service};
use crate::state::{frame, now_ms, FailoverStore, Namespace, StateError};

/// Where [`FailoverReport`]s are kept: key = report id, value = framed JSON.
pub const FAILOVER_REPORTS: Namespace = Namespace::new("failover_reports");

/// Seconds a client is told to wait while writes are frozen.
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// The message of the 503 answered while writes are frozen.
pub const FROZEN_MESSAGE: &str =
    "The cloud is switching sites (disaster-recovery failover); writes are paused. Retry shortly.";

/// The gateway's site name of a catalog site.
pub fn site_name(site: Site) -> SiteName {
    match site {
        Site::Primary => SiteName::Primary,
        Site::Recovery => SiteName::Recovery,
    }
}

/// The catalog site of a gateway site name.
pub fn catalog_site(site: SiteName) -> Site {
    match site {
        SiteName::Primary => Site::Primary,
        SiteName::Recovery => Site::Recovery,
    }
}

/// Why a failover operation did not happen (or did not complete).
#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    /// The state machine refuses the transition (nothing changed).
    #[error("{0}")]
    Transition(#[from] TransitionError),
    /// Another operation is running, or another writer changed the state first.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A planned switch could not drain the journal in time; it was aborted and the old
    /// site is still active.
    #[error(
        "drain timed out after {waited_ms} ms with {pending} journal record(s) still pending \
         ({by_tier}); the switch was aborted, {active} stays active{abort_note}"
    )]
    DrainTimeout {
        waited_ms: u64,
        pending: u64,
        /// `tier=count, ...`
        by_tier: String,
        active: Site,
        /// Empty, or why the abort itself failed.
        abort_note: String,
    },
    #[error("state store: {0}")]
    State(#[from] StateError),
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
}

impl FailoverError {
    /// A short label for metrics, logs and the admin API.
    pub fn kind(&self) -> &'static str {
        match self {
            FailoverError::Transition(e) if e.retry_can_help() => "conflict",
            FailoverError::Transition(_) => "refused",
            FailoverError::Conflict(_) => "conflict",
            FailoverError::DrainTimeout { .. } => "drain_timeout",
            FailoverError::State(_) => "state",
            FailoverError::Journal(_) => "journal",
        }
    }

    /// The HTTP status an admin API should answer: 409 for refusals and conflicts, 504 for
    /// a drain timeout, 500 otherwise.
    pub fn http_status(&self) -> StatusCode {
        match self {
            FailoverError::Transition(_) | FailoverError::Conflict(_) => StatusCode::CONFLICT,
            FailoverError::DrainTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            FailoverError::State(_) | FailoverError::Journal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// What is persisted in the `failover` namespace: the catalog's status and the id of the
/// last operation's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedFailover {
    pub status: FailoverStatus,
    #[serde(default)]
    pub last_report_id: Option<String>,
}

/// The persisted value in either form: ours, or a bare [`FailoverStatus`].
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredForm {
    Full(PersistedFailover),
    Bare(FailoverStatus),
}

/// The controller's view of the persisted state, with the store version it was read at.
#[derive(Debug, Clone)]
struct Snapshot {
    persisted: PersistedFailover,
    /// `None`: nothing persisted yet.
    version: Option<u64>,
}

/// What [`FailoverController::status`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusView {
    pub phase: Phase,
    pub active_site: Site,
    pub standby_site: Site,
    /// The site a switch in progress moves to.
    pub target_site: Option<Site>,
    pub writes_frozen: bool,
    pub epoch: u64,
    pub changed_at_ms: u64,
    pub last_report_id: Option<String>,
}

/// Which operation a [`FailoverReport`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    PlannedFailover,
    ForcedFailover,
    PlannedFailback,
    ForcedFailback,
}

impl ReportKind {
    /// The `kind` label of `drgw_failovers_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::PlannedFailover => "planned_failover",
            ReportKind::ForcedFailover => "forced_failover",
            ReportKind::PlannedFailback => "planned_failback",
            ReportKind::ForcedFailback => "forced_failback",
        }
    }
}

/// The outcome of one completed switch, kept under its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverReport {
    pub id: String,
    pub kind: ReportKind,
    pub from: Site,
    pub to: Site,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
    /// Journal records pending when writes were frozen (planned switches).
    pub pending_at_freeze: u64,
    /// Time spent draining the journal with writes frozen (planned switches).
    pub drain_ms: u64,
    /// Time of the flip itself: persisting the new state and switching routing and the
    /// catalog rewriter.
    pub flip_ms: f64,
    /// The status epoch after the switch.
    pub epoch: u64,
    /// What had not been applied at the recovery site (forced switches).
    pub rpo: Option<RpoReport>,
    /// Workloads restored at the site switched to: the primary's at the recovery site after
    /// a failover, those created during the failover at the primary after a failback
    /// (`None` while the restore runs).
    #[serde(default)]
    pub restore: Option<RestoreReport>,
    /// Who asked for the switch: the admin API's caller (`admin-token-file`, or the
    /// Keystone user), or the gateway itself for an automatic failover. `None` in reports
    /// written before the gateway kept it.
    #[serde(default)]
    pub requested_by: Option<String>,
}

impl FailoverReport {
    /// A few human-readable lines (for the CLI).
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} {}: {} -> {} (epoch {})\n  flip: {:.3} ms\n",
            self.kind.as_str(),
            self.id,
            self.from,
            self.to,
            self.epoch,
            self.flip_ms
        );
        if let Some(by) = &self.requested_by {
            out.push_str(&format!("  requested by: {by}\n"));
        }
        if matches!(
            self.kind,
            ReportKind::PlannedFailover | ReportKind::PlannedFailback
        ) {
            out.push_str(&format!(
                "  drain: {} ms ({} record(s) pending at freeze)\n",
                self.drain_ms, self.pending_at_freeze
            ));
        }
        if let Some(rpo) = &self.rpo {
            out.push_str(&rpo.to_table());
        }
        if let Some(restore) = &self.restore {
            out.push_str(&restore.to_text());
        }
        out
    }
}

/// Counts a mutating request in flight; see [`FailoverController::track_write`].
#[derive(Debug)]
pub struct InFlightWrite {
    counter: Arc<AtomicUsize>,
}

impl Drop for InFlightWrite {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Drives failover and failback for one gateway. Share it as `Arc<FailoverController>`.
pub struct FailoverController {
    gw: Arc<Gateway>,
    store: FailoverStore,
    current: ArcSwap<Snapshot>,
    /// Mirrors `current.writes_frozen()` for the request path.
    frozen: AtomicBool,
    /// One operation at a time.
    op: tokio::sync::Mutex<()>,
    in_flight: Arc<AtomicUsize>,
    metrics: FailoverMetrics,
    /// How often the drain polls the journal.
    poll: Duration,
}

impl std::fmt::Debug for FailoverController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailoverController")
            .field("status", &self.current.load().persisted)
            .finish()
    }
}

impl FailoverController {
    /// A controller over `gw`'s state store, in the initial state (normal on primary) until
    /// [`load`](Self::load) runs. Registers the failover metrics on `gw.metrics.registry`
    /// (replacing those of an earlier controller of the same gateway).
    pub fn new(gw: Arc<Gateway>) -> FailoverController {
        let metrics = FailoverMetrics::new(&gw.metrics.registry);
        let c = FailoverController {
            store: FailoverStore::new(gw.store.clone()),
            current: ArcSwap::from_pointee(Snapshot {
                persisted: PersistedFailover {
                    status: FailoverStatus::default(),
                    last_report_id: None,
                },
                version: None,
            }),
            frozen: AtomicBool::new(false),
            op: tokio::sync::Mutex::new(()),
            in_flight: Arc::new(AtomicUsize::new(0)),
            metrics,
            poll: Duration::from_millis(100),
            gw,
        };
        c.publish_metrics();
        c
    }

    /// Restores the persisted status, routes every service to its active site, and aborts
    /// a planned switch that a restart interrupted. Returns the status now in force.
    pub async fn load(&self) -> Result<StatusView, FailoverError> {
        let _op = self.op.lock().await;
        self.reload().await?;
        let status = self.current.load().persisted.status;
        if status.writes_frozen() {
            tracing::warn!(
                phase = %status.phase(),
                "a planned switch was interrupted by a restart; aborting it"
            );
            self.transition(Transition::Abort, None).await?;
        }
        let status = self.current.load().persisted.status;
        if status.epoch() > 0 {
            // Resources may have been created at the other site: their tenants know them
            // by the IDs they got there.
            self.gw.stable_ids.arm();
        }
        self.gw.set_active_site(site_name(status.active_site()));
        self.publish_metrics();
        Ok(self.status())
    }

    /// Reads the persisted state into the controller (no routing change).
    async fn reload(&self) -> Result<(), FailoverError> {
        let snapshot = match self.store.load().await? {
            Some(v) => {
                let persisted = match serde_json::from_slice::<StoredForm>(&v.value) {
                    Ok(StoredForm::Full(p)) => p,
                    Ok(StoredForm::Bare(status)) => PersistedFailover {
                        status,
                        last_report_id: None,
                    },
                    Err(e) => {
                        return Err(StateError::corrupt(
                            crate::state::failover::FAILOVER,
                            b"state",
                            format!("undecodable failover state: {e}"),
                        )
                        .into())
                    }
                };
                Snapshot {
                    persisted,
                    version: Some(v.version),
                }
            }
            None => Snapshot {
                persisted: PersistedFailover {
                    status: FailoverStatus::default(),
                    last_report_id: None,
                },
                version: None,
            },
        };
        self.install(snapshot);
        Ok(())
    }

    fn install(&self, snapshot: Snapshot) {
        // SeqCst here, in the guard and on the in-flight count: a write counts itself then
        // reads the flag, a switch sets the flag then reads the count, and no order weaker
        // than SeqCst keeps both from missing the other (see `admit_write`).
        self.frozen
            .store(snapshot.persisted.status.writes_frozen(), Ordering::SeqCst);
        self.current.store(Arc::new(snapshot));
    }

    /// Persists `transition` (and a new last report id, if given) with compare-and-swap.
    async fn transition(
        &self,
        transition: Transition,
        report_id: Option<String>,
    ) -> Result<FailoverStatus, FailoverError> {
        let cur = self.current.load_full();
        let status = cur.persisted.status.apply(transition, now_ms())?;
        let persisted = PersistedFailover {
            status,
            last_report_id: report_id.or_else(|| cur.persisted.last_report_id.clone()),
        };
        self.save(persisted, cur.version).await?;
        tracing::info!(
            transition = transition.as_str(),
            phase = %status.phase(),
            active = %status.active_site(),
            epoch = status.epoch(),
            "failover state changed"
        );
        self.publish_metrics();
        Ok(status)
    }

    async fn save(
        &self,
        persisted: PersistedFailover,
        expected: Option<u64>,
    ) -> Result<(), FailoverError> {
        match self.store.save_json(&persisted, expected).await {
            Ok(version) => {
                self.install(Snapshot {
                    persisted,
                    version: Some(version),
                });
                Ok(())
            }
            Err(StateError::Conflict { .. }) => {
                // Someone else moved the state: adopt theirs.
                if let Err(e) = self.reload().await {
                    tracing::warn!(error = %e, "cannot re-read the failover state");
                }
                Err(FailoverError::Conflict(
                    "the failover state was changed by another writer".into(),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn try_begin(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, FailoverError> {
        self.op.try_lock().map_err(|_| {
            FailoverError::Conflict("another failover operation is in progress".into())
        })
    }

    /// The current status.
    pub fn status(&self) -> StatusView {
        let cur = self.current.load();
        let s = cur.persisted.status;
        StatusView {
            phase: s.phase(),
            active_site: s.active_site(),
            standby_site: s.standby_site(),
            target_site: s.target_site(),
            writes_frozen: s.writes_frozen(),
            epoch: s.epoch(),
            changed_at_ms: s.changed_at_ms(),
            last_report_id: cur.persisted.last_report_id.clone(),
        }
    }

    /// The persisted status as the catalog crate defines it.
    pub fn failover_status(&self) -> FailoverStatus {
        self.current.load().persisted.status
    }

    /// Whether mutating calls are refused now.
    pub fn writes_frozen(&self) -> bool {
        self.frozen.load(Ordering::SeqCst)
    }

    /// The failover metrics.
    pub fn metrics(&self) -> &FailoverMetrics {
        &self.metrics
    }

    /// The gateway this controller switches.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gw
    }

    fn publish_metrics(&self) {
        let s = self.current.load().persisted.status;
        self.metrics.set_state(s.phase(), s.active_site());
    }

    // ---- request path -------------------------------------------------------------------

    /// The answer to a request while writes are frozen: `Some(503)` with `Retry-After: 5` in
    /// the service's native error format for a mutating call (logins and token deletes
    /// excepted), `None` otherwise (let it through). An atomic load when not frozen.
    pub fn guard(&self, op: &Operation) -> Option<Response<Bytes>> {
        self.guard_accept(op, Some("application/json"))
    }

    /// [`guard`](Self::guard), with Glance's error body negotiated on the request's
    /// `Accept` header (`None`: the header is absent).
    pub fn guard_accept(&self, op: &Operation, accept: Option<&str>) -> Option<Response<Bytes>> {
        if !self.frozen.load(Ordering::SeqCst) {
            return None;
        }
        if !op.action.is_mutating() || op.resource == ResourceType::Token {
            return None;
        }
        Some(frozen_response(op.service, accept))
    }

    /// Counts a mutating request until the returned value is dropped; a planned switch
    /// waits for these before it checks that the journal is drained (so a change accepted
    /// just before the freeze is not lost). The request path takes it through
    /// [`admit_write`](Self::admit_write).
    pub fn track_write(&self) -> InFlightWrite {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlightWrite {
            counter: self.in_flight.clone(),
        }
    }

    /// Admits a mutating request that is about to reach the upstream of `site`: counted in
    /// flight (see [`track_write`](Self::track_write)), unless the guard refuses it (writes
    /// frozen) or `site` is no longer the active site (a switch finished while the request
    /// was being read), both answered with the frozen write's 503 so that the client
    /// retries. Counted first and checked after: a switch that freezes at the same moment
    /// either finds it in flight or is seen by it. Logins pass as the guard lets them.
    pub fn admit_write(
        &self,
        op: &Operation,
        accept: Option<&str>,
        site: SiteName,
    ) -> Result<InFlightWrite, Box<Response<Bytes>>> {
        let tracked = self.track_write();
        if let Some(frozen) = self.guard_accept(op, accept) {
            return Err(Box::new(frozen));
        }
        if op.resource != ResourceType::Token && self.gw.active_site() != site {
            return Err(Box::new(frozen_response(op.service, accept)));
        }
        Ok(tracked)
    }

    // ---- operations ---------------------------------------------------------------------

    /// Planned failover to `to`: freeze writes, drain the journal within `drain_timeout`,
    /// flip, unfreeze.
    pub async fn planned(
        &self,
        to: Site,
        drain_timeout: Duration,
        requested_by: &str,
    ) -> Result<FailoverReport, FailoverError> {
        let _op = self.try_begin()?;
        self.planned_switch(
            Transition::BeginFailover {
                to,
                mode: SwitchMode::Planned,
            },
            Transition::CompleteSwitch,
            ReportKind::PlannedFailover,
            drain_timeout,
            requested_by,
        )
        .await
    }

    /// Planned failback to the standby site: the same freeze, drain and flip.
    ///
    /// The drain waits for the reverse records too (changes made at the recovery site during
    /// the failover, journaled toward the primary), so the primary is resynced before the flip.
    pub async fn failback_planned(
        &self,
        drain_timeout: Duration,
        requested_by: &str,
    ) -> Result<FailoverReport, FailoverError> {
        let _op = self.try_begin()?;
        self.planned_switch(
            Transition::BeginFailback {
                mode: SwitchMode::Planned,
            },
            Transition::CompleteFailback,
            ReportKind::PlannedFailback,
            drain_timeout,
            requested_by,
        )
        .await
    }

    async fn planned_switch(
        &self,
        begin: Transition,
        complete: Transition,
        kind: ReportKind,
        drain_timeout: Duration,
        requested_by: &str,
    ) -> Result<FailoverReport, FailoverError> {
        let started_at_ms = now_ms();
        let frozen = self.transition(begin, None).await?;
        let from = frozen.active_site();
        let Some(to) = frozen.target_site() else {
            // A planned begin always enters a switching phase.
            return Err(FailoverError::Conflict(format!(
                "unexpected phase {} after {}",
                frozen.phase(),
                begin.as_str()
            )));
        };
        let pending_at_freeze = match self.gw.journal.tier_lag().await {
            Ok(lag) => lag.values().map(|l| l.pending).sum(),
            Err(e) => {
                self.abort_after(begin, &e.to_string()).await;
                return Err(e.into());
            }
        };
        let drain_started = Instant::now();
        if let Err(e) = self.drain(drain_timeout).await {
            let note = self.abort_after(begin, "drain failed").await;
            return Err(match e {
                DrainFailure::Timeout { pending, by_tier } => FailoverError::DrainTimeout {
                    waited_ms: millis(drain_started.elapsed()),
                    pending,
                    by_tier,
                    active: from,
                    abort_note: note,
                },
                DrainFailure::Journal(e) => e.into(),
            });
        }
        let drain_ms = millis(drain_started.elapsed());
        let id = report_id(frozen.epoch() + 1);
        let flip_started = Instant::now();
        let done = match self.transition(complete, Some(id.clone())).await {
            Ok(s) => s,
            Err(e) => {
                self.abort_after(begin, &e.to_string()).await;
                return Err(e);
            }
        };
        self.gw.set_active_site(site_name(done.active_site()));
        let flip_ms = flip_started.elapsed().as_secs_f64() * 1000.0;
        self.metrics.count(kind);
        let report = FailoverReport {
            id,
            kind,
            from,
            to,
            started_at_ms,
            finished_at_ms: now_ms(),
            pending_at_freeze,
            drain_ms,
            flip_ms,
            epoch: done.epoch(),
            rpo: None,
            restore: None,
            requested_by: Some(requested_by.to_string()),
        };
        self.keep_report(&report).await;
        let report = self.restore_after(report).await;
        tracing::info!(
            kind = kind.as_str(),
            %from,
            %to,
            drain_ms,
            flip_ms,
            "switch completed"
        );
        Ok(report)
    }

    /// Aborts the switch begun by `begin` after a failure; returns a note for the error if
    /// the abort itself failed.
    async fn abort_after(&self, begin: Transition, why: &str) -> String {
        tracing::warn!(
            transition = begin.as_str(),
            reason = why,
            "aborting the switch"
        );
        match self.transition(Transition::Abort, None).await {
            Ok(_) => String::new(),
            Err(e) => {
                tracing::error!(error = %e, "cannot abort the switch; writes stay frozen");
                format!(" (the abort failed: {e}; writes stay frozen until it is retried)")
            }
        }
    }

    /// Waits until no mutating request is in flight and the journal has no pending record,
    /// waking the mirror worker as it goes.
    async fn drain(&self, timeout: Duration) -> Result<(), DrainFailure> {
        let deadline = Instant::now() + timeout;
        // Bronze records stop giving way to tenants' calls while the switch waits for them.
        let _hurry = self.gw.mirror.hurry();
        loop {
            self.gw.mirror.wake();
            let in_flight = self.in_flight.load(Ordering::SeqCst);
            let lag = self.gw.journal.tier_lag().await?;
            let pending: u64 = lag.values().map(|l| l.pending).sum();
            if pending == 0 && in_flight == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let mut by_tier: Vec<String> = lag
                    .iter()
                    .filter(|(_, l)| l.pending > 0)
                    .map(|(t, l)| format!("{t}={}", l.pending))
                    .collect();
                if in_flight > 0 {
                    by_tier.push(format!("in-flight writes={in_flight}"));
                }
                return Err(DrainFailure::Timeout {
                    pending,
                    by_tier: by_tier.join(", "),
                });
            }
            tokio::time::sleep(
                self.poll
                    .min(deadline.saturating_duration_since(Instant::now())),
            )
            .await;
        }
    }

    /// Forced failover to `to` (the active site is unreachable): flip at once, then report
    /// the journal records that had not been applied (the RPO actually lost).
    pub async fn forced(
        &self,
        to: Site,
        requested_by: &str,
    ) -> Result<FailoverReport, FailoverError> {
        let _op = self.try_begin()?;
        self.forced_switch(
            Transition::BeginFailover {
                to,
                mode: SwitchMode::Forced,
            },
            ReportKind::ForcedFailover,
            requested_by,
        )
        .await
    }

    /// Forced failback to the standby site, at once (no drain), with an RPO report.
    pub async fn failback_forced(
        &self,
        requested_by: &str,
    ) -> Result<FailoverReport, FailoverError> {
        let _op = self.try_begin()?;
        self.forced_switch(
            Transition::BeginFailback {
                mode: SwitchMode::Forced,
            },
            ReportKind::ForcedFailback,
            requested_by,
        )
        .await
    }

    async fn forced_switch(
        &self,
        begin: Transition,
        kind: ReportKind,
        requested_by: &str,
    ) -> Result<FailoverReport, FailoverError> {
        let started_at_ms = now_ms();
        let from = self.current.load().persisted.status.active_site();
        let id = report_id(self.current.load().persisted.status.epoch() + 1);
        let flip_started = Instant::now();
        let done = self.transition(begin, Some(id.clone())).await?;
        self.gw.set_active_site(site_name(done.active_site()));
        let flip_ms = flip_started.elapsed().as_secs_f64() * 1000.0;
        self.metrics.count(kind);
        tracing::warn!(kind = kind.as_str(), %from, to = %done.active_site(), "forced switch");
        let rpo = match rpo::collect(&self.gw.journal, now_ms()).await {
            Ok(r) => r,
            Err(e) => {
                // The switch happened; the report says the loss could not be measured.
                tracing::error!(error = %e, "cannot read the journal for the RPO report");
                RpoReport::unreadable(now_ms(), e.to_string())
            }
        };
        let abandoned = crate::journal::Direction::from_source(site_name(from));
        let why = format!("forced switch {id} left the {from} site");
        if let Err(e) = self.gw.mirror.supersede(abandoned, &why).await {
            tracing::error!(error = %e, "cannot mark the abandoned site's pending records");
        }
        let report = FailoverReport {
            id,
            kind,
            from,
            to: done.active_site(),
            started_at_ms,
            finished_at_ms: now_ms(),
            pending_at_freeze: 0,
            drain_ms: 0,
            flip_ms,
            epoch: done.epoch(),
            rpo: Some(rpo),
            restore: None,
            requested_by: Some(requested_by.to_string()),
        };
        self.keep_report(&report).await;
        Ok(self.restore_after(report).await)
    }

    /// Aborts a planned switch in progress (the old site stays active, writes unfreeze).
    pub async fn abort(&self) -> Result<StatusView, FailoverError> {
        let _op = self.try_begin()?;
        self.transition(Transition::Abort, None).await?;
        Ok(self.status())
    }

    /// After a switch: restores the protected workloads of the tiers that ask for it at the
    /// site switched to (see [`restore`]), and keeps the report again with the outcome. Writes are unfrozen by
    /// then: tenants work while their workloads come back.
    async fn restore_after(&self, mut report: FailoverReport) -> FailoverReport {
        let to = match (report.kind, report.to) {
            (ReportKind::PlannedFailover | ReportKind::ForcedFailover, Site::Recovery) => {
                SiteName::Recovery
            }
            (ReportKind::PlannedFailback | ReportKind::ForcedFailback, Site::Primary) => {
                SiteName::Primary
            }
            _ => return report,
        };
        let restored = restore::restore_workloads(&self.gw, to).await;
        tracing::info!(
            restored = restored.restored,
            failed = restored.failed,
            skipped = restored.skipped,
            "workload restore finished"
        );
        report.restore = Some(restored);
        report.finished_at_ms = now_ms();
        self.keep_report(&report).await;
        report
    }

    async fn keep_report(&self, report: &FailoverReport) {
        let key = report.id.as_bytes();
        let value = match frame::seal_json(FAILOVER_REPORTS, key, report) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, id = %report.id, "cannot encode the failover report");
                return;
            }
        };
        if let Err(e) = self.gw.store.put(FAILOVER_REPORTS, key, &value).await {
            tracing::error!(error = %e, id = %report.id, "cannot keep the failover report");
        }
    }

    /// A kept report, by id.
    pub async fn report(&self, id: &str) -> Result<Option<FailoverReport>, FailoverError> {
        let key = id.as_bytes();
        match self.gw.store.get(FAILOVER_REPORTS, key).await? {
            Some(v) => Ok(Some(frame::open_json(FAILOVER_REPORTS, key, &v.value)?)),
            None => Ok(None),
        }
    }

    /// The DR drill: checks every ID-map entry's copy at the recovery site.
    pub async fn drill(&self) -> DrillReport {
        drill::run(&self.gw).await
    }
}

enum DrainFailure {
    Timeout { pending: u64, by_tier: String },
    Journal(JournalError),
}

impl From<JournalError> for DrainFailure {
    fn from(e: JournalError) -> DrainFailure {
        DrainFailure::Journal(e)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A report id: the epoch the switch leads to and a random suffix, e.g. `fo-3-1a2b3c4d`.
fn report_id(epoch: u64) -> String {
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    format!("fo-{epoch}-{}", &uuid[..8])
}

/// The 503 a mutating call gets while writes are frozen, in `service`'s native format
/// (Glance's negotiated on `accept`, the request's `Accept` header).
pub fn frozen_response(service: Service, accept: Option<&str>) -> Response<Bytes> {
    let mut resp = crate::fault::error_response_for(
        service,
        StatusCode::SERVICE_UNAVAILABLE,
        FROZEN_MESSAGE,
        accept,
    );
    resp.headers_mut().insert(
        http::header::RETRY_AFTER,
        HeaderValue::from(RETRY_AFTER_SECONDS),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_response_is_native_with_retry_after() {
        for service in Service::ALL {
            let resp = frozen_response(service, Some("application/json"));
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                resp.headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()),
                Some("5")
            );
            let body: serde_json::Value = serde_json::from_slice(resp.body()).expect("a JSON body");
            let code = match service {
                Service::Compute | Service::BlockStorage => {
                    body["serviceUnavailable"]["code"].clone()
                }
                Service::Identity => body["error"]["code"].clone(),
                Service::Network => {
                    assert_eq!(body["NeutronError"]["type"], "HTTPServiceUnavailable");
                    serde_json::json!(503)
                }
                Service::Image => {
                    assert_eq!(body["code"], "503 Service Unavailable");
                    serde_json::json!(503)
                }
            };
            assert_eq!(code, 503, "{service}: {body}");
        }
    }

    #[test]
    fn persisted_form_round_trips_and_accepts_a_bare_status() {
        let p = PersistedFailover {
            status: FailoverStatus::default()
                .apply(
                    Transition::BeginFailover {
                        to: Site::Recovery,
                        mode: SwitchMode::Forced,
                    },
                    5,
                )
                .expect("forced failover from normal"),
            last_report_id: Some("fo-1-abc".into()),
        };
        let json = serde_json::to_vec(&p).expect("encode");
        match serde_json::from_slice::<StoredForm>(&json).expect("decode") {
            StoredForm::Full(q) => assert_eq!(q, p),
            StoredForm::Bare(_) => panic!("decoded as a bare status"),
        }
        let bare = serde_json::to_vec(&p.status).expect("encode");
        match serde_json::from_slice::<StoredForm>(&bare).expect("decode") {
            StoredForm::Bare(s) => assert_eq!(s, p.status),
            StoredForm::Full(_) => panic!("decoded as the full form"),
        }
    }

    #[test]
    fn site_names_convert_both_ways() {
        for s in Site::ALL {
            assert_eq!(catalog_site(site_name(s)), s);
        }
    }
}
