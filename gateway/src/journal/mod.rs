//! The mirror journal: the durable, ordered, checksummed log of changes the recovery site
//! must receive, kept in the [state store](crate::state).
//!
//! # On-disk format
//! The journal lives in five namespaces of a [`StateStore`] (in the embedded backend, five
//! redb tables of the state file). Integers in keys are big-endian so that byte order is
//! numeric order; `‹s›` is a length-prefixed string (u16 BE length, UTF-8 bytes).
//!
//! | namespace                | key                             | value (framed)                 |
//! |--------------------------|---------------------------------|--------------------------------|
//! | `journal`                | `seq: u64`                      | JSON [`JournalRecord`]         |
//! | `journal_meta`           | `next_seq`                      | `u64`                          |
//! |                          | `next_checkpoint`               | `u64`                          |
//! |                          | `pending_count/` ‖ tier bytes   | `u64`, pending records of tier |
//! | `journal_pending_tenant` | ‹project› ‖ ‹domain› ‖ `seq`    | `u64` record time (ms)         |
//! | `journal_pending_tier`   | ‹tier› ‖ `seq`                  | `u64` record time (ms)         |
//! | `journal_checkpoints`    | `id: u64`                       | JSON [`Checkpoint`]            |
//!
//! Every value is a frame (see [`crate::state::frame`]): `version: u8 = 1` ‖
//! `crc32c(namespace ‖ key ‖ payload): u32 BE` ‖ `payload`. The JSON of a record carries its
//! own `seq`, which must equal the key's. The record's `state` is internally tagged:
//! `{"state":"pending"}`, `{"state":"applied","at_ms":..,"recovery_id":..}`,
//! `{"state":"failed","reason":..,"retryable":..}`.
//!
//! A record's `direction` is `"forward"` (a change made at the primary, applied at the
//! recovery site) or `"reverse"` (a change made at the recovery site while failed over,
//! applied at the old primary: reverse replication). Records written before reverse
//! replication have no `direction` key and read as forward; new records always carry it.
//! For a reverse record, `primary_id` holds the resource's ID at the recovery site (the site
//! of the change) and its request is in recovery IDs. Both directions share one seq space and
//! the same pending indexes and counts (a tier's pending count covers both).
//!
//! # Invariants
//! - Sequence numbers start at 1 and are strictly increasing and gap-free: seqs are assigned
//!   by the single writer task and `next_seq` is written in the same atomic batch as the
//!   records, so a batch that fails to commit consumes none.
//! - A record is durable before [`Journal::append`] returns its seq (the batch holding it has
//!   committed with immediate durability).
//! - A transition to applied (with its side batch) may commit with relaxed durability
//!   ([`Batch::relax_durability`]): seen by every later read at once, durable with the next
//!   ordinary commit (see [`RELAXED_FLUSH_AFTER`]) and at graceful close. A crash may roll
//!   it back; the record is then pending again, which the mirror engine handles by applying
//!   it again and adopting the copy it made. Every other change (append, failure, retry,
//!   checkpoint) is durable when its call returns, and so is everything committed before it.
//! - A record's state moves only `pending → applied`, `pending → failed` and
//!   `failed → pending` (retry). An applied record never changes again, so it is never
//!   re-applied. A record's content other than its state, `attempts` and (dropped on apply)
//!   secret never changes.
//! - The two pending indexes hold exactly the pending records, and `pending_count/<tier>`
//!   their number per tier; all are updated in the same batch as the records.
//! - `time_ms` never decreases along seqs, so the lowest pending seq of a tier is its oldest.
//! - Corrupt values (checksum, version, length, JSON, or seq mismatch) are detected on read
//!   and reported as [`JournalError::Corrupt`]; queries fail rather than skip them, and
//!   [`Journal::verify`] lists every corrupt record and gap.
//!
//! # Writing
//! All writes go through one writer task per journal (elected by the store lease
//! `journal-writer`), which batches concurrent calls into one store transaction (group
//! commit, see `writer`). Reads go straight to the store. A transition to applied may carry
//! a side batch (the record's ID-map entry) committed in the same transaction; a side batch
//! whose precondition fails is taken out and the rest of the group committed without it.
//! An append may carry a side batch without preconditions (the created resource's usage
//! bookkeeping, [`Journal::append_with`]): it commits with the record, both or neither.

mod metrics;
mod record;
mod writer;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use metrics::JournalMetrics;
pub use record::{
    Checkpoint, Direction, EncryptedSecret, JournalRecord, MirrorRequest, NewRecord, RecordState,
    TenantRef, CHECKPOINTS, META, PENDING_BY_TENANT, PENDING_BY_TIER, RECORDS,
};

use record::{
    decode_record, index_key, parse_seq_key, parse_tenant_index_key, seq_key, tenant_prefix,
    tier_prefix, NEXT_SEQ, PENDING_COUNT_PREFIX,
};
use writer::{Change, Command, Writer, WriterState};

#[cfg(doc)]
use crate::state::RELAXED_FLUSH_AFTER;
use crate::state::{frame, key_after, now_ms, Batch, StateError, StateStore};

/// The lease that elects the journal's writer.
pub const WRITER_LEASE: &str = "journal-writer";

/// Journal tuning.
#[derive(Clone, Debug)]
pub struct JournalConfig {
    /// The most commands committed in one batch.
    pub max_batch: usize,
    /// Commands that may wait for the writer before `append` waits for room.
    pub queue_depth: usize,
    /// TTL of the writer lease; it is renewed every third of it.
    pub writer_lease_ttl: Duration,
    /// This writer's identity for the lease.
    pub owner: String,
    /// Wall clock in milliseconds since the Unix epoch (replaceable in tests).
    pub clock: fn() -> u64,
    /// Where the writer reports its commits (none in most tests).
    pub metrics: Option<JournalMetrics>,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            max_batch: 1024,
            queue_depth: 8192,
            writer_lease_ttl: Duration::from_secs(15),
            owner: format!("drgw-{}", uuid::Uuid::new_v4()),
            clock: now_ms,
            metrics: None,
        }
    }
}

/// Journal errors.
#[derive(Clone, Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Store(#[from] StateError),
    /// A stored record failed its checks.
    #[error("journal record {seq} is corrupt: {reason}")]
    Corrupt { seq: u64, reason: String },
    #[error("journal record {seq} does not exist")]
    NotFound { seq: u64 },
    /// The requested state change is not allowed from the record's state.
    #[error("journal record {seq} cannot move from {from} to {to}")]
    InvalidTransition {
        seq: u64,
        from: &'static str,
        to: &'static str,
    },
    #[error("invalid journal record: {0}")]
    InvalidRecord(String),
    /// The writer has stopped (closed, or its process is shutting down).
    #[error("the journal writer is closed")]
    Closed,
    /// Another writer took over the journal.
    #[error("the journal writer was fenced out: {0}")]
    Fenced(String),
}

impl JournalError {
    /// A low-cardinality label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            JournalError::Store(e) => e.kind(),
            JournalError::Corrupt { .. } => "corrupt",
            JournalError::NotFound { .. } => "not_found",
            JournalError::InvalidTransition { .. } => "invalid_transition",
            JournalError::InvalidRecord(_) => "invalid_record",
            JournalError::Closed => "closed",
            JournalError::Fenced(_) => "fenced",
        }
    }

    /// Whether trying again can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            JournalError::Store(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Which records [`Journal::list`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// `pending`, `applied` or `failed`.
    pub state: Option<StateFilter>,
    pub tenant: Option<TenantRef>,
    pub tier: Option<String>,
    pub direction: Option<Direction>,
}

/// A record state without its details.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateFilter {
    Pending,
    Applied,
    Failed,
}

impl RecordFilter {
    fn matches(&self, r: &JournalRecord) -> bool {
        let state_ok = match self.state {
            None => true,
            Some(StateFilter::Pending) => r.state.is_pending(),
            Some(StateFilter::Applied) => matches!(r.state, RecordState::Applied { .. }),
            Some(StateFilter::Failed) => matches!(r.state, RecordState::Failed { .. }),
        };
        state_ok
            && self.tenant.as_ref().is_none_or(|t| {
                // An empty domain matches the project in any domain.
                t.project_id == r.tenant.project_id
                    && (t.domain_id.is_empty() || t.domain_id == r.tenant.domain_id)
            })
            && self.tier.as_ref().is_none_or(|t| *t == r.tier)
            && self.direction.is_none_or(|d| d == r.direction)
    }
}

/// One page of [`Journal::list`].
#[derive(Clone, Debug, PartialEq)]
pub struct RecordPage {
    pub records: Vec<JournalRecord>,
    /// Pass as `after_seq` for the next page; `None` when the journal's end was reached.
    pub next_after: Option<u64>,
}

/// One tenant's share of [`Journal::next_pending`].
#[derive(Clone, Debug, PartialEq)]
pub struct TenantPending {
    pub tenant: TenantRef,
    /// Oldest first; apply in this order.
    pub records: Vec<JournalRecord>,
}

/// Mirror lag of one tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierLag {
    pub pending: u64,
    /// Time of the oldest pending record, if any.
    pub oldest_pending_ms: Option<u64>,
}

/// What [`Journal::verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records read (intact or not).
    pub records: u64,
    /// The highest seq acknowledged to writers (`next_seq - 1`).
    pub last_seq: u64,
    /// Seqs whose record failed its checks, with the reason.
    pub corrupt: Vec<(u64, String)>,
    /// Seqs at or below `last_seq` with no record.
    pub missing: Vec<u64>,
}

impl VerifyReport {
    /// No corrupt and no missing records.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty()
    }
}

const SCAN_CHUNK: usize = 256;

/// A handle on the journal. Cheap to clone; all clones share one writer task.
#[derive(Clone)]
pub struct Journal {
    store: Arc<dyn StateStore>,
    tx: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("backend", &self.store.backend())
            .finish_non_exhaustive()
    }
}

/// A journal command the writer has queued; [`Queued::committed`] waits for its commit.
#[derive(Debug)]
pub struct Queued<T>(oneshot::Receiver<Result<T, JournalError>>);

impl<T> Queued<T> {
    /// Resolves once the command's group committed (or failed): seen by every later read.
    pub async fn committed(self) -> Result<T, JournalError> {
        self.0.await.map_err(|_| JournalError::Closed)?
    }
}

impl Journal {
    /// Opens the journal in `store`: takes the writer lease, loads the bookkeeping and starts
    /// the writer task (needs a tokio runtime). Fails with [`StateError::LeaseHeld`] if
    /// another writer holds the journal.
    pub async fn open(
        store: Arc<dyn StateStore>,
        config: JournalConfig,
    ) -> Result<Journal, JournalError> {
        let lease = store
            .acquire_lease(WRITER_LEASE, &config.owner, config.writer_lease_ttl)
            .await?;
        let state = match WriterState::load(store.as_ref()).await {
            Ok(state) => state,
            Err(e) => {
                if let Err(release) = store.release_lease(&lease).await {
                    tracing::warn!(error = %release, "cannot release the journal lease");
                }
                return Err(e);
            }
        };
        let (tx, rx) = mpsc::channel(config.queue_depth.max(1));
        let writer = Writer {
            store: store.clone(),
            rx,
            state,
            lease,
            config: JournalConfig {
                max_batch: config.max_batch.max(1),
                ..config
            },
            unsynced: false,
            close_reply: None,
        };
        tokio::spawn(writer.run());
        Ok(Journal { store, tx })
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, JournalError>>) -> Command,
    ) -> Result<T, JournalError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| JournalError::Closed)?;
        rx.await.map_err(|_| JournalError::Closed)?
    }

    /// Appends a record; resolves to its seq once the batch holding it is durable. The future
    /// does not borrow the journal. Once polled, dropping it does not withdraw the record.
    pub fn append(
        &self,
        record: NewRecord,
    ) -> impl Future<Output = Result<u64, JournalError>> + Send + 'static {
        self.append_with(record, Batch::new())
    }

    /// Like [`Journal::append`], and commits `side` in the same store transaction: both or
    /// neither. `side` must have no preconditions (an append is never taken out of its
    /// group; [`JournalError::InvalidRecord`] otherwise) and must not touch the journal's
    /// own namespaces.
    pub fn append_with(
        &self,
        record: NewRecord,
        side: Batch,
    ) -> impl Future<Output = Result<u64, JournalError>> + Send + 'static {
        let all = self.send_append(vec![record], side);
        async move {
            all.await?
                .first()
                .copied()
                .ok_or_else(|| JournalError::InvalidRecord("nothing was appended".into()))
        }
    }

    /// Appends records together: one commit, consecutive seqs in the order given, all or
    /// none. Resolves to their seqs once durable (a record may depend on an earlier one of
    /// the same call). Like [`Journal::append`], dropping the polled future withdraws nothing.
    pub fn append_all(
        &self,
        records: Vec<NewRecord>,
    ) -> impl Future<Output = Result<Vec<u64>, JournalError>> + Send + 'static {
        self.send_append(records, Batch::new())
    }

    fn send_append(
        &self,
        records: Vec<NewRecord>,
        side: Batch,
    ) -> impl Future<Output = Result<Vec<u64>, JournalError>> + Send + 'static {
        let tx = self.tx.clone();
        async move {
            let (reply, rx) = oneshot::channel();
            tx.send(Command::Append {
                records,
                side,
                reply,
            })
            .await
            .map_err(|_| JournalError::Closed)?;
            rx.await.map_err(|_| JournalError::Closed)?
        }
    }

    /// Marks a pending record applied at the recovery site (dropping its secret).
    pub async fn mark_applied(
        &self,
        seq: u64,
        recovery_id: Option<String>,
    ) -> Result<JournalRecord, JournalError> {
        self.mark_applied_with(seq, recovery_id, Batch::new()).await
    }

    /// Like [`Journal::mark_applied`], and commits `side` (e.g. the record's ID-map entry)
    /// in the same store transaction: both or neither. `side` must not touch the journal's
    /// own namespaces. If a precondition of `side` fails, the record stays as it was and
    /// the call fails with [`StateError::Conflict`]; the other changes committed with it
    /// are not affected. `side` is dropped if the transition is not allowed.
    pub async fn mark_applied_with(
        &self,
        seq: u64,
        recovery_id: Option<String>,
        side: Batch,
    ) -> Result<JournalRecord, JournalError> {
        self.call(|reply| Command::Transition {
            seq,
            change: Change::Applied { recovery_id, side },
            reply,
        })
        .await
    }

    /// Like [`Journal::mark_applied_with`], but returns as soon as the writer has the
    /// transition queued: the returned [`Queued`] resolves once it has committed. Every
    /// command sent to the journal afterwards commits in the same group or a later one, so a
    /// record appended after this returns is never durable without this transition (and the
    /// ID-map entry in `side`) being durable too — unless the transition fails, which
    /// `Queued` reports.
    pub async fn queue_mark_applied(
        &self,
        seq: u64,
        recovery_id: Option<String>,
        side: Batch,
    ) -> Result<Queued<JournalRecord>, JournalError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Transition {
                seq,
                change: Change::Applied { recovery_id, side },
                reply,
            })
            .await
            .map_err(|_| JournalError::Closed)?;
        Ok(Queued(rx))
    }

    /// Marks a pending record failed.
    pub async fn mark_failed(
        &self,
        seq: u64,
        reason: impl Into<String>,
        retryable: bool,
    ) -> Result<JournalRecord, JournalError> {
        let reason = reason.into();
        self.call(|reply| Command::Transition {
            seq,
            change: Change::Failed { reason, retryable },
            reply,
        })
        .await
    }

    /// Puts a failed record back to pending (at its original place in its tenant's order).
    pub async fn retry(&self, seq: u64) -> Result<JournalRecord, JournalError> {
        self.call(|reply| Command::Transition {
            seq,
            change: Change::Retry,
            reply,
        })
        .await
    }

    /// Records a checkpoint of `tier` up to `last_seq`.
    pub async fn append_checkpoint(
        &self,
        tier: impl Into<String>,
        last_seq: u64,
    ) -> Result<Checkpoint, JournalError> {
        let tier = tier.into();
        self.call(|reply| Command::Checkpoint {
            tier,
            last_seq,
            reply,
        })
        .await
    }

    /// Resolves once everything sent to the writer before it is durable (relaxed commits
    /// included).
    pub async fn flush(&self) -> Result<(), JournalError> {
        self.call(|reply| Command::Flush { reply }).await
    }

    /// Commits what is queued, releases the writer lease and stops the writer; later writes
    /// fail with [`JournalError::Closed`]. For graceful shutdown.
    pub async fn close(&self) -> Result<(), JournalError> {
        self.call(|reply| Command::Close { reply }).await
    }

    /// One record.
    pub async fn get(&self, seq: u64) -> Result<Option<JournalRecord>, JournalError> {
        match self.store.get(RECORDS, &seq_key(seq)).await? {
            Some(v) => Ok(Some(decode_record(seq, &v.value)?)),
            None => Ok(None),
        }
    }

    /// Several records, read in one snapshot (`None` for a seq that does not exist).
    pub async fn get_many(&self, seqs: &[u64]) -> Result<Vec<Option<JournalRecord>>, JournalError> {
        let keys: Vec<Vec<u8>> = seqs.iter().map(|s| seq_key(*s).to_vec()).collect();
        let values = self.store.get_many(RECORDS, &keys).await?;
        seqs.iter()
            .zip(values)
            .map(|(seq, v)| v.map(|v| decode_record(*seq, &v.value)).transpose())
            .collect()
    }

    /// The highest acknowledged seq (0 if none).
    pub async fn last_seq(&self) -> Result<u64, JournalError> {
        match self.store.get(META, NEXT_SEQ).await? {
            Some(v) => Ok(frame::open_u64(META, NEXT_SEQ, &v.value)?.saturating_sub(1)),
            None => Ok(0),
        }
    }

    async fn records(&self, seqs: &[u64]) -> Result<Vec<JournalRecord>, JournalError> {
        let keys: Vec<Vec<u8>> = seqs.iter().map(|s| seq_key(*s).to_vec()).collect();
        let values = self.store.get_many(RECORDS, &keys).await?;
        let mut out = Vec::with_capacity(seqs.len());
        for (seq, value) in seqs.iter().zip(values) {
            match value {
                Some(v) => out.push(decode_record(*seq, &v.value)?),
                None => {
                    return Err(JournalError::Corrupt {
                        seq: *seq,
                        reason: "indexed as pending but missing".into(),
                    })
                }
            }
        }
        Ok(out)
    }

    /// Pending records of one tenant in seq order (the order to apply them), after
    /// `after_seq`, at most `limit`.
    pub async fn pending_for_tenant(
        &self,
        tenant: &TenantRef,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<JournalRecord>, JournalError> {
        let prefix = tenant_prefix(tenant)?;
        let start = after_seq.map(|s| index_key(&prefix, s.saturating_add(1)));
        let entries = self
            .store
            .scan(PENDING_BY_TENANT, &prefix, start.as_deref(), limit)
            .await?;
        let mut seqs = Vec::with_capacity(entries.len());
        for e in &entries {
            let (_, seq) = parse_tenant_index_key(&e.key)?;
            if after_seq.is_some_and(|a| seq <= a) {
                continue; // `after_seq` = u64::MAX saturates onto itself
            }
            seqs.push(seq);
        }
        let records = self.records(&seqs).await?;
        // A record may have left `pending` between the index read and the record read.
        Ok(records
            .into_iter()
            .filter(|r| r.state.is_pending())
            .collect())
    }

    /// The next work across tenants, grouped by tenant: up to `limit` records in total.
    /// Visits up to `limit` tenants with pending records (in key order) and gives each an
    /// equal share, at least one record, so one busy tenant cannot starve the others.
    pub async fn next_pending(&self, limit: usize) -> Result<Vec<TenantPending>, JournalError> {
        let mut tenants = Vec::new();
        let mut cursor: Option<Vec<u8>> = None;
        while tenants.len() < limit {
            let found = self
                .store
                .scan(PENDING_BY_TENANT, b"", cursor.as_deref(), 1)
                .await?;
            let Some(first) = found.into_iter().next() else {
                break;
            };
            let (tenant, _) = parse_tenant_index_key(&first.key)?;
            let mut past = tenant_prefix(&tenant)?;
            past.extend_from_slice(&[0xff; 8]);
            cursor = Some(key_after(&past));
            tenants.push(tenant);
        }
        let share = match tenants.len() {
            0 => return Ok(Vec::new()),
            n => (limit / n).max(1),
        };
        let mut out = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            let records = self.pending_for_tenant(&tenant, None, share).await?;
            if !records.is_empty() {
                out.push(TenantPending { tenant, records });
            }
        }
        Ok(out)
    }

    /// Records matching `filter` in seq order, after `after_seq`, up to `limit`.
    pub async fn list(
        &self,
        filter: &RecordFilter,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<RecordPage, JournalError> {
        let mut records = Vec::new();
        let mut start = after_seq.map_or(1, |s| s.saturating_add(1));
        let mut last_scanned = None;
        loop {
            if records.len() >= limit {
                return Ok(RecordPage {
                    records,
                    next_after: last_scanned,
                });
            }
            let chunk = self
                .store
                .scan(RECORDS, b"", Some(&seq_key(start)), SCAN_CHUNK)
                .await?;
            let exhausted = chunk.len() < SCAN_CHUNK;
            for e in chunk {
                let seq = parse_seq_key(RECORDS, &e.key)?;
                let record = decode_record(seq, &e.value)?;
                last_scanned = Some(seq);
                if filter.matches(&record) {
                    records.push(record);
                    if records.len() >= limit {
                        break;
                    }
                }
            }
            if records.len() >= limit {
                continue;
            }
            match last_scanned {
                Some(seq) if !exhausted && seq < u64::MAX => start = seq + 1,
                _ => {
                    return Ok(RecordPage {
                        records,
                        next_after: None,
                    })
                }
            }
        }
    }

    /// Pending count and oldest pending time per tier (tiers that ever had records).
    pub async fn tier_lag(&self) -> Result<BTreeMap<String, TierLag>, JournalError> {
        let mut out = BTreeMap::new();
        for entry in self
            .store
            .scan(META, PENDING_COUNT_PREFIX, None, usize::MAX)
            .await?
        {
            let tier = String::from_utf8(entry.key[PENDING_COUNT_PREFIX.len()..].to_vec())
                .map_err(|_| StateError::corrupt(META, &entry.key, "tier is not UTF-8"))?;
            let pending = frame::open_u64(META, &entry.key, &entry.value)?;
            let oldest_pending_ms = self.oldest_pending_ms(&tier).await?;
            out.insert(
                tier,
                TierLag {
                    pending,
                    oldest_pending_ms,
                },
            );
        }
        Ok(out)
    }

    /// The journal time of the tier's oldest pending record (either direction), from the
    /// pending index alone: no record is read.
    pub async fn oldest_pending_ms(&self, tier: &str) -> Result<Option<u64>, JournalError> {
        let prefix = tier_prefix(tier)?;
        let oldest = self.store.scan(PENDING_BY_TIER, &prefix, None, 1).await?;
        match oldest.first() {
            Some(e) => Ok(Some(frame::open_u64(PENDING_BY_TIER, &e.key, &e.value)?)),
            None => Ok(None),
        }
    }

    /// Checkpoints in id order, of one tier or all, after `after_id`, up to `limit`.
    pub async fn checkpoints(
        &self,
        tier: Option<&str>,
        after_id: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Checkpoint>, JournalError> {
        let mut out = Vec::new();
        let mut start = after_id.map_or(1, |s| s.saturating_add(1));
        loop {
            let chunk = self
                .store
                .scan(CHECKPOINTS, b"", Some(&seq_key(start)), SCAN_CHUNK)
                .await?;
            let exhausted = chunk.len() < SCAN_CHUNK;
            for e in &chunk {
                let c: Checkpoint = frame::open_json(CHECKPOINTS, &e.key, &e.value)?;
                start = c.id.saturating_add(1);
                if tier.is_none_or(|t| t == c.tier) {
                    out.push(c);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            if exhausted {
                return Ok(out);
            }
        }
    }

    /// Reads every record and checks it: for startup checks, the crash test and operators.
    pub async fn verify(&self) -> Result<VerifyReport, JournalError> {
        let mut report = VerifyReport {
            last_seq: self.last_seq().await?,
            ..VerifyReport::default()
        };
        let mut expected = 1u64;
        let mut start = 1u64;
        loop {
            let chunk = self
                .store
                .scan(RECORDS, b"", Some(&seq_key(start)), SCAN_CHUNK)
                .await?;
            let exhausted = chunk.len() < SCAN_CHUNK;
            for e in &chunk {
                let seq = match parse_seq_key(RECORDS, &e.key) {
                    Ok(seq) => seq,
                    Err(err) => {
                        report.corrupt.push((0, err.to_string()));
                        continue;
                    }
                };
                report.records += 1;
                report
                    .missing
                    .extend(expected..seq.min(report.last_seq.saturating_add(1)));
                expected = seq.saturating_add(1);
                start = expected;
                if let Err(err) = decode_record(seq, &e.value) {
                    report.corrupt.push((seq, err.to_string()));
                }
            }
            if exhausted {
                break;
            }
        }
        report
            .missing
            .extend(expected..report.last_seq.saturating_add(1));
        Ok(report)
    }
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
