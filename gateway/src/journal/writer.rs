//! The journal's single writer task: group commit of appends and state changes.
//!
//! Request tasks send [`Command`]s over a bounded channel. The writer takes the first command,
//! then everything already queued (up to `max_batch`), turns the lot into one store
//! [`Batch`] (one commit, one disk flush) and answers every command only after that batch
//! committed. While a batch commits, new commands queue up and form the next one, so the
//! batch size grows with the load.
//!
//! The writer owns the in-memory copy of the journal's bookkeeping (next sequence number,
//! next checkpoint id, pending count per tier). It advances that copy only after a commit
//! succeeded, so a failed commit consumes no sequence numbers (seqs stay gap-free). Every
//! batch rewrites `next_seq` guarded by its version, so a second writer on a shared backend
//! is fenced out with a conflict instead of interleaving.
//!
//! A group that holds only transitions to applied commits with relaxed durability (seen by
//! every later read at once, on disk with the next ordinary commit, see
//! [`Batch::relax_durability`]): an apply's bookkeeping costs no disk flush of its own.
//! Flush and close make everything before them durable.
//!
//! A transition to applied may carry a side batch (the record's ID-map entry), committed in
//! the same transaction. A conflict on a side batch's keys is not fencing: the transitions
//! whose side batches conflicted are taken out (their records keep their stored state, their
//! callers get the conflict) and the rest of the group is committed without them.

use std::collections::{btree_map, BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::record::{
    decode_record, encode_record, index_key, pending_count_key, seq_key, tenant_prefix,
    tier_prefix, Checkpoint, JournalRecord, NewRecord, RecordState, CHECKPOINTS, META,
    NEXT_CHECKPOINT, NEXT_SEQ, PENDING_BY_TENANT, PENDING_BY_TIER, PENDING_COUNT_PREFIX, RECORDS,
};
use super::{JournalConfig, JournalError};
use crate::state::{display_key, frame, Batch, Lease, StateError, StateStore};

/// A state change requested of the writer.
#[derive(Debug)]
pub(crate) enum Change {
    /// `side` (e.g. the record's ID-map entry) commits in the same transaction.
    Applied {
        recovery_id: Option<String>,
        side: Batch,
    },
    Failed {
        reason: String,
        retryable: bool,
    },
    Retry,
}

impl Change {
    fn target(&self) -> &'static str {
        match self {
            Change::Applied { .. } => "applied",
            Change::Failed { .. } => "failed",
            Change::Retry => "pending",
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, JournalError>>;

#[derive(Debug)]
pub(crate) enum Command {
    /// One or more records, appended together (one commit, consecutive seqs) or not at all.
    Append {
        records: Vec<NewRecord>,
        /// Committed with the records (no preconditions; see
        /// [`Journal::append_with`](super::Journal::append_with)).
        side: Batch,
        reply: Reply<Vec<u64>>,
    },
    Transition {
        seq: u64,
        change: Change,
        reply: Reply<JournalRecord>,
    },
    Checkpoint {
        tier: String,
        last_seq: u64,
        reply: Reply<Checkpoint>,
    },
    /// Answered once everything queued before it is durable.
    Flush { reply: Reply<()> },
    /// Like `Flush`, then the writer releases its lease and stops.
    Close { reply: Reply<()> },
}

/// The writer's bookkeeping, as of the last commit.
#[derive(Clone, Debug)]
pub(crate) struct WriterState {
    pub(crate) next_seq: u64,
    next_checkpoint: u64,
    meta_version: Option<u64>,
    pending_counts: BTreeMap<String, u64>,
    last_time_ms: u64,
}

impl WriterState {
    /// Reads the bookkeeping from the store.
    pub(crate) async fn load(store: &dyn StateStore) -> Result<WriterState, JournalError> {
        let (next_seq, meta_version) = match store.get(META, NEXT_SEQ).await? {
            Some(v) => (frame::open_u64(META, NEXT_SEQ, &v.value)?, Some(v.version)),
            None => (1, None),
        };
        let next_checkpoint = match store.get(META, NEXT_CHECKPOINT).await? {
            Some(v) => frame::open_u64(META, NEXT_CHECKPOINT, &v.value)?,
            None => 1,
        };
        let mut pending_counts = BTreeMap::new();
        for entry in store
            .scan(META, PENDING_COUNT_PREFIX, None, usize::MAX)
            .await?
        {
            let tier = String::from_utf8(entry.key[PENDING_COUNT_PREFIX.len()..].to_vec())
                .map_err(|_| StateError::corrupt(META, &entry.key, "tier is not UTF-8"))?;
            pending_counts.insert(tier, frame::open_u64(META, &entry.key, &entry.value)?);
        }
        // Times stay non-decreasing along seqs across restarts, even if the clock stepped back.
        let last_time_ms = match next_seq.checked_sub(1).filter(|s| *s > 0) {
            Some(last) => match store.get(RECORDS, &seq_key(last)).await? {
                Some(v) => decode_record(last, &v.value)?.time_ms,
                None => {
                    return Err(JournalError::Corrupt {
                        seq: last,
                        reason: "the last acknowledged record is missing".into(),
                    })
                }
            },
            None => 0,
        };
        Ok(WriterState {
            next_seq,
            next_checkpoint,
            meta_version,
            pending_counts,
            last_time_ms,
        })
    }
}

/// A record touched by the batch being built.
struct Touched {
    record: JournalRecord,
    /// Whether the stored record was pending (`None`: appended by this batch).
    was_pending: Option<bool>,
    /// The stored record's version (`None`: appended by this batch).
    version: Option<u64>,
    /// Whether a command of the batch changed it (a refused transition reads the record
    /// but does not change it: a group of refusals commits nothing).
    changed: bool,
}

enum Answer {
    Seqs(Reply<Vec<u64>>, Vec<u64>),
    Record(Reply<JournalRecord>, u64),
    Checkpoint(Reply<Checkpoint>, Checkpoint),
    Unit(Reply<()>),
}

impl Answer {
    fn fail(self, err: JournalError) {
        // A requester that went away no longer needs the answer.
        match self {
            Answer::Seqs(r, _) => drop(r.send(Err(err))),
            Answer::Record(r, _) => drop(r.send(Err(err))),
            Answer::Checkpoint(r, _) => drop(r.send(Err(err))),
            Answer::Unit(r) => drop(r.send(Err(err))),
        }
    }
}

pub(crate) struct Writer {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) rx: mpsc::Receiver<Command>,
    pub(crate) state: WriterState,
    pub(crate) lease: Lease,
    pub(crate) config: JournalConfig,
    /// Whether a relaxed group (see [`relaxable`]) committed since the last ordinary commit.
    pub(crate) unsynced: bool,
    /// The answer to a `Close`, sent once the writer has stopped and released its lease.
    pub(crate) close_reply: Option<(Reply<()>, Result<(), JournalError>)>,
}

impl Writer {
    pub(crate) async fn run(mut self) {
        let period = (self.config.writer_lease_ttl / 3).max(Duration::from_millis(10));
        let mut renew = tokio::time::interval(period);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.tick().await;
        loop {
            tokio::select! {
                cmd = self.rx.recv() => {
                    let Some(first) = cmd else { break };
                    let mut commands = vec![first];
                    self.gather(&mut commands).await;
                    if !self.process(commands).await {
                        break;
                    }
                }
                _ = renew.tick() => {
                    match self.store.renew_lease(&self.lease, self.config.writer_lease_ttl).await {
                        Ok(lease) => self.lease = lease,
                        Err(e) => {
                            tracing::error!(error = %e, "journal writer lost its lease; stopping");
                            self.rx.close();
                            while let Ok(cmd) = self.rx.try_recv() {
                                reject(cmd, JournalError::Fenced(e.to_string()));
                            }
                            return;
                        }
                    }
                }
            }
        }
        if let Err(e) = self.store.release_lease(&self.lease).await {
            tracing::warn!(error = %e, "journal writer could not release its lease");
        }
        // Answered last: once `close` returns, the lease is free for the next writer.
        if let Some((reply, result)) = self.close_reply.take() {
            drop(reply.send(result));
        }
    }

    /// Adds what is queued to the group. While that brings more, yields first to the tasks
    /// that are ready to run (under load, other callers on their way to the journal), at most
    /// [`GATHER_YIELDS`] times: more commands share one commit, for the same flush. Alone (a
    /// lone Gold append), a yield finds nothing and costs microseconds.
    async fn gather(&mut self, commands: &mut Vec<Command>) {
        for round in 0..=GATHER_YIELDS {
            let before = commands.len();
            while commands.len() < self.config.max_batch {
                match self.rx.try_recv() {
                    Ok(cmd) => commands.push(cmd),
                    Err(_) => break,
                }
            }
            let grew = commands.len() > before;
            if commands.len() >= self.config.max_batch
                || round == GATHER_YIELDS
                || (round > 0 && !grew)
            {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    /// Commits one group of commands; returns whether the writer keeps running.
    async fn process(&mut self, commands: Vec<Command>) -> bool {
        if let Some(m) = &self.config.metrics {
            m.observe_group(commands.len());
        }
        let relaxed = relaxable(&commands);
        let flush = commands.iter().any(|c| matches!(c, Command::Flush { .. }));
        // Read every stored record a transition needs in one snapshot.
        let wanted: Vec<Vec<u8>> = commands
            .iter()
            .filter_map(|c| match c {
                Command::Transition { seq, .. } if *seq < self.state.next_seq => {
                    Some(seq_key(*seq).to_vec())
                }
                _ => None,
            })
            .collect();
        let mut stored = HashMap::new();
        if !wanted.is_empty() {
            match self.store.get_many(RECORDS, &wanted).await {
                Ok(values) => {
                    for (key, value) in wanted.iter().zip(values) {
                        stored.insert(key.clone(), value);
                    }
                }
                Err(e) => {
                    for cmd in commands {
                        reject(cmd, e.clone().into());
                    }
                    return true;
                }
            }
        }

        let mut next = self.state.clone();
        let mut touched: BTreeMap<u64, Touched> = BTreeMap::new();
        let mut checkpoints = Vec::new();
        let mut sides: Vec<(u64, Batch)> = Vec::new();
        let mut answers = Vec::with_capacity(commands.len());
        let mut closing = None;
        for cmd in commands {
            match cmd {
                Command::Append {
                    records,
                    side,
                    reply,
                } => {
                    let invalid = records
                        .iter()
                        .zip(next.next_seq..)
                        .find_map(|(record, seq)| validate(record, seq).err())
                        .or_else(|| {
                            (!side.preconditions().is_empty()).then(|| {
                                JournalError::InvalidRecord(
                                    "an append's side batch may not have preconditions".into(),
                                )
                            })
                        });
                    if let Some(e) = invalid {
                        drop(reply.send(Err(e)));
                        continue;
                    }
                    if !side.is_empty() {
                        // Keyed by the first new seq: never taken out (it has no version).
                        sides.push((next.next_seq, side));
                    }
                    let mut seqs = Vec::with_capacity(records.len());
                    for record in records {
                        let seq = next.next_seq;
                        next.next_seq += 1;
                        next.last_time_ms = (self.config.clock)().max(next.last_time_ms);
                        let record = record.into_record(seq, next.last_time_ms);
                        touched.insert(
                            seq,
                            Touched {
                                record,
                                was_pending: None,
                                version: None,
                                changed: true,
                            },
                        );
                        seqs.push(seq);
                    }
                    answers.push(Answer::Seqs(reply, seqs));
                }
                Command::Transition {
                    seq,
                    mut change,
                    reply,
                } => {
                    let side = match &mut change {
                        Change::Applied { side, .. } => std::mem::take(side),
                        _ => Batch::new(),
                    };
                    if let btree_map::Entry::Vacant(slot) = touched.entry(seq) {
                        match stored.get(seq_key(seq).as_slice()) {
                            Some(Some(v)) => match decode_record(seq, &v.value) {
                                Ok(record) => {
                                    let was_pending = Some(record.state.is_pending());
                                    let version = Some(v.version);
                                    slot.insert(Touched {
                                        record,
                                        was_pending,
                                        version,
                                        changed: false,
                                    });
                                }
                                Err(e) => {
                                    tracing::error!(seq, error = %e, "corrupt journal record");
                                    drop(reply.send(Err(e)));
                                    continue;
                                }
                            },
                            _ => {
                                drop(reply.send(Err(JournalError::NotFound { seq })));
                                continue;
                            }
                        }
                    }
                    let Some(entry) = touched.get_mut(&seq) else {
                        continue;
                    };
                    match apply_change(&entry.record, change, (self.config.clock)()) {
                        Ok(updated) => {
                            entry.record = updated;
                            entry.changed = true;
                            if !side.is_empty() {
                                sides.push((seq, side));
                            }
                            answers.push(Answer::Record(reply, seq));
                        }
                        Err(e) => drop(reply.send(Err(e))),
                    }
                }
                Command::Checkpoint {
                    tier,
                    last_seq,
                    reply,
                } => {
                    if last_seq >= next.next_seq {
                        drop(reply.send(Err(JournalError::InvalidRecord(format!(
                            "checkpoint at seq {last_seq} is beyond the journal's end"
                        )))));
                        continue;
                    }
                    let checkpoint = Checkpoint {
                        id: next.next_checkpoint,
                        time_ms: (self.config.clock)(),
                        tier,
                        last_seq,
                    };
                    next.next_checkpoint += 1;
                    checkpoints.push(checkpoint.clone());
                    answers.push(Answer::Checkpoint(reply, checkpoint));
                }
                Command::Flush { reply } => answers.push(Answer::Unit(reply)),
                Command::Close { reply } => {
                    closing = Some(reply);
                    break;
                }
            }
        }

        // A side batch whose precondition fails is taken out with its record's transition
        // (that record keeps its stored state) and the rest is committed without it.
        let base = next;
        let mut next: WriterState;
        let mut excluded: BTreeSet<u64> = BTreeSet::new();
        let committed = loop {
            next = base.clone();
            let batch = match build_batch(
                &self.state,
                &mut next,
                &touched,
                &checkpoints,
                &sides,
                &excluded,
            ) {
                Ok(mut batch) => {
                    if relaxed {
                        batch.relax_durability();
                    }
                    batch
                }
                Err(e) => {
                    for a in answers {
                        a.fail(e.clone());
                    }
                    return self.finish_close(closing, Ok(()));
                }
            };
            let nothing = checkpoints.is_empty() && written(&touched, &excluded).next().is_none();
            if nothing {
                break Ok(0);
            }
            let started = Instant::now();
            let committed = self.store.commit(batch).await;
            if let (Some(m), Ok(_)) = (&self.config.metrics, &committed) {
                m.observe_commit(relaxed, started.elapsed().as_secs_f64());
            }
            match committed {
                Err(StateError::Conflict { namespace, key })
                    if namespace != META.as_str() && namespace != RECORDS.as_str() =>
                {
                    let before = excluded.len();
                    for (seq, side) in &sides {
                        // Only transitions of stored records (never an append) are taken out.
                        if touched.get(seq).is_none_or(|t| t.version.is_none()) {
                            continue;
                        }
                        let hit = side
                            .preconditions()
                            .iter()
                            .any(|p| p.ns.as_str() == namespace && display_key(&p.key) == key);
                        if hit {
                            excluded.insert(*seq);
                        }
                    }
                    if excluded.len() == before {
                        // Not attributable: take out every side batch.
                        excluded.extend(
                            sides
                                .iter()
                                .map(|(seq, _)| *seq)
                                .filter(|s| touched.get(s).is_some_and(|t| t.version.is_some())),
                        );
                    }
                    if excluded.len() == before {
                        break Err(StateError::Conflict { namespace, key });
                    }
                    tracing::debug!(
                        namespace,
                        key,
                        "a side batch conflicted; committing without it"
                    );
                }
                other => break other,
            }
        };
        match committed {
            Ok(revision) => {
                if revision > 0 {
                    next.meta_version = Some(revision);
                    self.unsynced = relaxed;
                }
                self.state = next;
                // Flush: everything before is durable. Close: also what other modules
                // committed relaxed (usage), before the process goes. If that fails, only the
                // flush and the close report it: the group's own commit stands.
                let unflushed = if (flush && self.unsynced) || closing.is_some() {
                    self.sync().await.err()
                } else {
                    None
                };
                for a in answers {
                    match a {
                        Answer::Seqs(r, seqs) => drop(r.send(Ok(seqs))),
                        Answer::Record(r, seq) if excluded.contains(&seq) => {
                            let conflict = sides
                                .iter()
                                .find(|(s, _)| *s == seq)
                                .and_then(|(_, side)| side.preconditions().first())
                                .map(|p| StateError::conflict(p.ns, &p.key))
                                .unwrap_or(StateError::Invalid(format!(
                                    "record {seq}: its side batch conflicted"
                                )));
                            drop(r.send(Err(JournalError::Store(conflict))));
                        }
                        Answer::Record(r, seq) => {
                            let record = touched.get(&seq).map(|t| t.record.clone());
                            drop(r.send(record.ok_or(JournalError::NotFound { seq })));
                        }
                        Answer::Checkpoint(r, c) => drop(r.send(Ok(c))),
                        Answer::Unit(r) => drop(r.send(match &unflushed {
                            Some(e) => Err(e.clone().into()),
                            None => Ok(()),
                        })),
                    }
                }
                self.finish_close(closing, unflushed.map_or(Ok(()), |e| Err(e.into())))
            }
            Err(e) => {
                tracing::error!(error = %e, "journal commit failed");
                // A conflict on the journal's own keys means another writer; one on a side
                // batch's keys that could not be taken out fails this group only.
                let fenced = matches!(&e, StateError::Conflict { namespace, .. }
                    if *namespace == META.as_str() || *namespace == RECORDS.as_str());
                let err = if fenced {
                    JournalError::Fenced(e.to_string())
                } else {
                    JournalError::Store(e)
                };
                for a in answers {
                    a.fail(err.clone());
                }
                if fenced {
                    return self.stop(closing, err);
                }
                // The commit may or may not have reached the store (a network backend can
                // time out after applying it): re-read the bookkeeping before going on.
                match WriterState::load(self.store.as_ref()).await {
                    Ok(state) => {
                        self.state = state;
                        self.finish_close(closing, Ok(()))
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "journal writer cannot reload its state; stopping");
                        self.stop(closing, e)
                    }
                }
            }
        }
    }

    /// Makes every relaxed commit durable: an empty batch committed with ordinary
    /// durability (the store flushes everything committed before it).
    async fn sync(&mut self) -> Result<(), StateError> {
        self.store.commit(Batch::new()).await?;
        self.unsynced = false;
        Ok(())
    }

    fn finish_close(
        &mut self,
        closing: Option<Reply<()>>,
        result: Result<(), JournalError>,
    ) -> bool {
        match closing {
            Some(reply) => {
                self.rx.close();
                while let Ok(cmd) = self.rx.try_recv() {
                    reject(cmd, JournalError::Closed);
                }
                self.close_reply = Some((reply, result));
                false
            }
            None => true,
        }
    }

    fn stop(&mut self, closing: Option<Reply<()>>, err: JournalError) -> bool {
        self.rx.close();
        while let Ok(cmd) = self.rx.try_recv() {
            reject(cmd, err.clone());
        }
        if let Some(reply) = closing {
            self.close_reply = Some((reply, Err(err)));
        }
        false
    }
}

/// How many times the writer yields to gather a group (see [`Writer::gather`]).
const GATHER_YIELDS: usize = 2;

/// Whether a group may commit with relaxed durability: it holds only transitions to applied.
/// Forgetting one in a crash is safe: the record is pending again at start-up and is applied
/// again, adopting the copy it made (see `mirror`). Everything else (appends, failures,
/// retries, checkpoints, flushes) commits durably, and with it every relaxed commit before.
fn relaxable(commands: &[Command]) -> bool {
    commands.iter().all(|c| {
        matches!(
            c,
            Command::Transition {
                change: Change::Applied { .. },
                ..
            }
        )
    })
}

fn reject(cmd: Command, err: JournalError) {
    match cmd {
        Command::Append { reply, .. } => drop(reply.send(Err(err))),
        Command::Transition { reply, .. } => drop(reply.send(Err(err))),
        Command::Checkpoint { reply, .. } => drop(reply.send(Err(err))),
        Command::Flush { reply } | Command::Close { reply } => drop(reply.send(Err(err))),
    }
}

fn validate(record: &NewRecord, seq: u64) -> Result<(), JournalError> {
    if record.tier.is_empty() {
        return Err(JournalError::InvalidRecord("empty tier".into()));
    }
    if let Some(dep) = record.depends_on.iter().find(|d| **d == 0 || **d >= seq) {
        return Err(JournalError::InvalidRecord(format!(
            "depends on seq {dep}, which is not an earlier record"
        )));
    }
    Ok(())
}

/// The record after `change`, or why the change is not allowed.
pub(crate) fn apply_change(
    record: &JournalRecord,
    change: Change,
    now_ms: u64,
) -> Result<JournalRecord, JournalError> {
    let invalid = |change: &Change| JournalError::InvalidTransition {
        seq: record.seq,
        from: record.state.name(),
        to: change.target(),
    };
    let mut next = record.clone();
    match (&record.state, change) {
        (RecordState::Pending, Change::Applied { recovery_id, .. }) => {
            next.state = RecordState::Applied {
                at_ms: now_ms,
                recovery_id,
            };
            next.attempts = next.attempts.saturating_add(1);
            // Secrets are kept only until the recovery site has them.
            next.request.secret = None;
        }
        (RecordState::Pending, Change::Failed { reason, retryable }) => {
            next.state = RecordState::Failed { reason, retryable };
            next.attempts = next.attempts.saturating_add(1);
        }
        (RecordState::Failed { .. }, Change::Retry) => next.state = RecordState::Pending,
        (_, change) => return Err(invalid(&change)),
    }
    Ok(next)
}

/// The touched records a group writes: those a command changed, but the `excluded` ones
/// (taken out with a side batch whose precondition failed).
fn written<'a>(
    touched: &'a BTreeMap<u64, Touched>,
    excluded: &'a BTreeSet<u64>,
) -> impl Iterator<Item = (&'a u64, &'a Touched)> {
    touched
        .iter()
        .filter(|(seq, t)| t.changed && !excluded.contains(*seq))
}

/// The store batch for the [`written`] records, their indexes, their side batches and the
/// bookkeeping; updates `next`'s pending counts.
fn build_batch(
    current: &WriterState,
    next: &mut WriterState,
    touched: &BTreeMap<u64, Touched>,
    checkpoints: &[Checkpoint],
    sides: &[(u64, Batch)],
    excluded: &BTreeSet<u64>,
) -> Result<Batch, JournalError> {
    let mut batch = Batch::new();
    // Fencing: every batch rewrites next_seq, guarded by the version this writer last saw.
    batch.require_version(META, NEXT_SEQ, current.meta_version);
    batch.put(
        META,
        NEXT_SEQ,
        frame::seal_u64(META, NEXT_SEQ, next.next_seq),
    );
    if next.next_checkpoint != current.next_checkpoint {
        batch.put(
            META,
            NEXT_CHECKPOINT,
            frame::seal_u64(META, NEXT_CHECKPOINT, next.next_checkpoint),
        );
    }
    for (seq, t) in written(touched, excluded) {
        let key = seq_key(*seq);
        if let Some(version) = t.version {
            batch.require_version(RECORDS, key, Some(version));
        }
        batch.put(RECORDS, key, encode_record(&t.record)?);
        let was = t.was_pending.unwrap_or(false);
        let is = t.record.state.is_pending();
        if was == is {
            continue;
        }
        let tenant_key = index_key(&tenant_prefix(&t.record.tenant)?, *seq);
        let tier_key = index_key(&tier_prefix(&t.record.tier)?, *seq);
        let count = next
            .pending_counts
            .entry(t.record.tier.clone())
            .or_insert(0);
        if is {
            *count += 1;
            let time = t.record.time_ms;
            batch.put(
                PENDING_BY_TENANT,
                tenant_key.clone(),
                frame::seal_u64(PENDING_BY_TENANT, &tenant_key, time),
            );
            batch.put(
                PENDING_BY_TIER,
                tier_key.clone(),
                frame::seal_u64(PENDING_BY_TIER, &tier_key, time),
            );
        } else {
            *count = count.saturating_sub(1);
            batch.delete(PENDING_BY_TENANT, tenant_key);
            batch.delete(PENDING_BY_TIER, tier_key);
        }
    }
    for (tier, count) in &next.pending_counts {
        if current.pending_counts.get(tier) != Some(count) {
            let key = pending_count_key(tier);
            let value = frame::seal_u64(META, &key, *count);
            batch.put(META, key, value);
        }
    }
    for c in checkpoints {
        let key = seq_key(c.id);
        batch.put(CHECKPOINTS, key, frame::seal_json(CHECKPOINTS, &key, c)?);
    }
    for (seq, side) in sides {
        if !excluded.contains(seq) {
            batch.append(side.clone());
        }
    }
    Ok(batch)
}
