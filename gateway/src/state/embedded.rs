//! The embedded backend: one redb file, a write-ahead log beside it, and the recent writes
//! in memory.
//!
//! Layout inside the redb file:
//! - table `_drgw_meta` (`&str` → `u64`): `revision`, the store revision of the last commit
//!   the file holds;
//! - one table per [`Namespace`], named after it (`&[u8]` → `&[u8]`); each value is
//!   `version: u64 BE ‖ value bytes`.
//!
//! # Commits
//! A commit does not write the redb file. It checks its preconditions and resolves its
//! counter additions against the newest state, appends its writes to the
//! [write-ahead log](super::wal) and flushes the log (a relaxed batch: see
//! [`RELAXED_FLUSH_AFTER`]), then records the writes in the [memtable](super::memtable),
//! where every later read finds them. So a commit costs one small sequential write and one
//! `fdatasync`. A redb commit rewrites every B-tree page on the path to each key it
//! touches (copy-on-write), about 30 pages for a journal append.
//!
//! Every [`FREEZE_INTERVAL`] (or [`FREEZE_BYTES`] of writes), the commit that finds the
//! active layer due freezes it. The log moves on to its other segment, and a flusher thread
//! writes the frozen layer to redb in one durable transaction: one write per key however
//! often it changed. An index entry added and removed within the interval (a Bronze record
//! appended and applied) never reaches redb. When the transaction is durable, the frozen
//! layer is dropped. Its log segment is then free for the next freeze. If the flusher
//! falls behind, commits wait once the active layer holds [`MAX_ACTIVE_BYTES`].
//!
//! Commits are serialised by the writer lock, which also guards the log. They run on
//! tokio's blocking pool (they wait for the disk), so the store needs a tokio runtime.
//!
//! # Reads
//! A read takes the memtable's read lock, looks up its keys there and opens a redb read
//! transaction under the same lock, then reads redb without it. The layers and the redb
//! snapshot together are one consistent state. A flush writes the frozen layer to redb
//! before it drops the layer, and keys the layers hold hide redb's. Reads run on the
//! calling task: a redb read transaction never waits for a writer and costs microseconds.
//!
//! # Recovery
//! On open, redb comes back at its last durable transaction, revision `R`. The log's
//! entries after `R` are applied in one durable transaction (they must follow `R` without a
//! gap, or the open fails), and writing starts again at the start of segment 0.

use std::collections::HashMap;
use std::ops::RangeFrom;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use redb::{Database, ReadTransaction, TableDefinition, TableError};

use super::lease::LeaseTable;
use super::memtable::{Layer, Memtable, Slot};
use super::wal::{self, EntryBuilder, LoggedWrite, Wal};
use super::{
    added_counter, Batch, Entry, Lease, Namespace, Op, StateError, StateStore, StoreFuture,
    Versioned, RELAXED_FLUSH_AFTER,
};

/// The state file's name inside `state_dir`.
pub const DEFAULT_STATE_FILE: &str = "state.redb";
/// The default state file.
pub const DEFAULT_STATE_PATH: &str = "/var/lib/drgw/state.redb";

/// The age of the active layer at which a commit freezes it for the flusher.
pub const FREEZE_INTERVAL: Duration = Duration::from_millis(200);
/// The size of the active layer at which a commit freezes it.
pub const FREEZE_BYTES: usize = 8 << 20;
/// The size of the active layer at which commits wait for the flusher.
pub const MAX_ACTIVE_BYTES: usize = 64 << 20;
/// How long a commit waits for the flusher before it fails (retryable).
const FLUSH_WAIT: Duration = Duration::from_secs(30);

/// A key and its stored bytes.
type KeyValue = (Vec<u8>, Vec<u8>);

const META: TableDefinition<&str, u64> = TableDefinition::new("_drgw_meta");
const REVISION: &str = "revision";
const VERSION_LEN: usize = 8;

fn table(ns: Namespace) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(ns.as_str())
}

fn backend_error(err: impl Into<redb::Error>) -> StateError {
    let err: redb::Error = err.into();
    let retryable = matches!(
        err,
        redb::Error::Io(_) | redb::Error::DatabaseAlreadyOpen | redb::Error::PreviousIo
    );
    StateError::Backend {
        backend: "redb",
        message: err.to_string(),
        retryable,
    }
}

fn decode(ns: Namespace, key: &[u8], stored: &[u8]) -> Result<Versioned, StateError> {
    match stored.split_at_checked(VERSION_LEN) {
        Some((version, value)) => {
            let mut bytes = [0u8; VERSION_LEN];
            bytes.copy_from_slice(version);
            Ok(Versioned {
                value: value.to_vec(),
                version: u64::from_be_bytes(bytes),
            })
        }
        None => Err(StateError::corrupt(
            ns,
            key,
            "stored value is shorter than its version",
        )),
    }
}

fn encode(version: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(VERSION_LEN + value.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The redb-backed [`StateStore`].
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

/// Owned by the store's handles; its drop stops the flusher and closes the store.
struct Inner {
    shared: Arc<Shared>,
    path: PathBuf,
    leases: LeaseTable,
    flusher: Mutex<Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
}

/// Shared with the flusher thread.
struct Shared {
    db: Database,
    /// Serialises commits; guards the log and the revision.
    writer: Mutex<Writer>,
    mem: RwLock<Memtable>,
    /// Set when the store closes: the flusher stops retrying.
    closing: std::sync::atomic::AtomicBool,
}

struct Writer {
    wal: Wal,
    /// The revision of the last commit.
    revision: u64,
    /// When the active layer freezes (tests change them).
    freeze_interval: Duration,
    freeze_bytes: usize,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn mem(&self) -> RwLockReadGuard<'_, Memtable> {
        self.mem.read().unwrap_or_else(|e| e.into_inner())
    }

    fn mem_mut(&self) -> std::sync::RwLockWriteGuard<'_, Memtable> {
        self.mem.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the frozen layer to redb and drops it; on failure keeps it (reads still find
    /// it) and retries, until the store closes.
    fn flush_frozen(&self) {
        while !self.closing.load(std::sync::atomic::Ordering::Acquire) {
            let Some(frozen) = self.mem().frozen.clone() else {
                return;
            };
            match write_layer(&self.db, &frozen) {
                Ok(()) => {
                    self.mem_mut().frozen = None;
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "writing recent state to the state file failed; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
}

/// Writes `layer` to redb in one durable transaction, with its revision.
fn write_layer(db: &Database, layer: &Layer) -> Result<(), StateError> {
    let writes = layer.tables().flat_map(|(name, writes)| {
        writes
            .iter()
            .map(move |(key, slot)| (name, key.as_slice(), slot.as_deref()))
    });
    write_durably(db, writes, layer.revision)
}

/// Applies `writes` in order (a key's stored bytes, or `None`: remove it) and sets the
/// store revision to `revision`, in one durable redb transaction.
fn write_durably<'a>(
    db: &Database,
    writes: impl IntoIterator<Item = (&'a str, &'a [u8], Option<&'a [u8]>)>,
    revision: u64,
) -> Result<(), StateError> {
    let txn = db.begin_write().map_err(backend_error)?;
    {
        let mut tables = HashMap::new();
        for (name, key, stored) in writes {
            let t = match tables.entry(name) {
                std::collections::hash_map::Entry::Occupied(t) => t.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => slot.insert(
                    txn.open_table(TableDefinition::<&[u8], &[u8]>::new(name))
                        .map_err(backend_error)?,
                ),
            };
            match stored {
                Some(stored) => t.insert(key, stored).map(|_| ()),
                None => t.remove(key).map(|_| ()),
            }
            .map_err(backend_error)?;
        }
        let mut meta = txn.open_table(META).map_err(backend_error)?;
        meta.insert(REVISION, revision).map_err(backend_error)?;
    }
    txn.commit().map_err(backend_error)
}

/// The revision redb holds.
fn stored_revision(db: &Database) -> Result<u64, StateError> {
    let txn = db.begin_read().map_err(backend_error)?;
    match txn.open_table(META) {
        Ok(meta) => Ok(meta
            .get(REVISION)
            .map_err(backend_error)?
            .map_or(0, |v| v.value())),
        Err(TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(backend_error(e)),
    }
}

/// A consistent view for one read or commit: the memtable (read-locked) and a redb read
/// transaction opened under its lock.
struct View<'a> {
    mem: RwLockReadGuard<'a, Memtable>,
    txn: ReadTransaction,
}

impl View<'_> {
    /// The stored bytes of `key` (version ‖ value), newest layer first.
    fn stored(&self, ns: Namespace, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(slot) = self.mem.get(ns.as_str(), key) {
            return Ok(slot);
        }
        read_stored(&self.txn, ns, key)
    }
}

fn read_stored(
    txn: &ReadTransaction,
    ns: Namespace,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StateError> {
    match txn.open_table(table(ns)) {
        Ok(t) => Ok(t
            .get(key)
            .map_err(backend_error)?
            .map(|v| v.value().to_vec())),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(backend_error(e)),
    }
}

impl RedbStore {
    /// Opens (creating them and their directory if needed) the state file at `path` and
    /// its write-ahead log beside it, and replays the log's writes the file lacks.
    /// Blocking: redb recovers an uncleanly closed file on open. Fails if another process
    /// has it open, or if the log lacks writes it must hold (see [`wal`](super::wal)).
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, StateError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StateError::Backend {
                backend: "redb",
                message: format!("cannot create state directory {}: {e}", dir.display()),
                retryable: false,
            })?;
        }
        let db = Database::create(&path).map_err(backend_error)?;
        let (wal, segments) = Wal::open(&path)?;
        let revision = replay(&db, &segments)?;
        let shared = Arc::new(Shared {
            db,
            writer: Mutex::new(Writer {
                wal,
                revision,
                freeze_interval: FREEZE_INTERVAL,
                freeze_bytes: FREEZE_BYTES,
            }),
            mem: RwLock::default(),
            closing: Default::default(),
        });
        let (signal, wake) = mpsc::channel::<()>();
        let flushing = shared.clone();
        let thread = std::thread::Builder::new()
            .name("drgw-state-flush".into())
            .spawn(move || {
                while wake.recv().is_ok() {
                    flushing.flush_frozen();
                }
            })
            .map_err(|e| StateError::Backend {
                backend: "redb",
                message: format!("cannot start the state flusher: {e}"),
                retryable: false,
            })?;
        Ok(RedbStore {
            inner: Arc::new(Inner {
                shared,
                path,
                leases: LeaseTable::default(),
                flusher: Mutex::new(Some((signal, thread))),
            }),
        })
    }

    /// [`RedbStore::open`] with another freeze interval and size than the defaults.
    #[cfg(test)]
    pub(crate) fn open_with_freeze(
        path: impl AsRef<Path>,
        interval: Duration,
        bytes: usize,
    ) -> Result<RedbStore, StateError> {
        let store = RedbStore::open(path)?;
        {
            let mut w = lock(&store.inner.shared.writer);
            w.freeze_interval = interval;
            w.freeze_bytes = bytes;
        }
        Ok(store)
    }

    /// Opens `state_dir/state.redb`.
    pub fn open_in(state_dir: impl AsRef<Path>) -> Result<RedbStore, StateError> {
        RedbStore::open(state_dir.as_ref().join(DEFAULT_STATE_FILE))
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn view(&self) -> Result<View<'_>, StateError> {
        let mem = self.inner.shared.mem();
        let txn = self.inner.shared.db.begin_read().map_err(backend_error)?;
        Ok(View { mem, txn })
    }

    fn get_many_sync<K: AsRef<[u8]>>(
        &self,
        ns: Namespace,
        keys: &[K],
    ) -> Result<Vec<Option<Versioned>>, StateError> {
        let (in_memory, txn) = {
            let view = self.view()?;
            let found: Vec<Option<Slot>> = keys
                .iter()
                .map(|k| view.mem.get(ns.as_str(), k.as_ref()))
                .collect();
            (found, view.txn)
        };
        keys.iter()
            .zip(in_memory)
            .map(|(key, slot)| {
                let key = key.as_ref();
                let stored = match slot {
                    Some(slot) => slot,
                    None => read_stored(&txn, ns, key)?,
                };
                stored.map(|v| decode(ns, key, &v)).transpose()
            })
            .collect()
    }

    fn scan_sync(
        &self,
        ns: Namespace,
        prefix: &[u8],
        start: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StateError> {
        let from = match start {
            Some(start) if start > prefix => start,
            _ => prefix,
        };
        let (in_memory, txn) = {
            let view = self.view()?;
            (view.mem.range(ns.as_str(), prefix, from, limit), view.txn)
        };
        let table = match txn.open_table(table(ns)) {
            Ok(table) => Some(table),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(backend_error(e)),
        };
        let range: RangeFrom<&[u8]> = from..;
        let mut stored = match &table {
            Some(t) => Some(t.range(range).map_err(backend_error)?),
            None => None,
        };
        // Merges the file's keys with memory's, memory winning; removals hide keys.
        let mut next_stored = || -> Result<Option<KeyValue>, StateError> {
            let Some(iter) = stored.as_mut() else {
                return Ok(None);
            };
            match iter.next() {
                None => Ok(None),
                Some(item) => {
                    let (k, v) = item.map_err(backend_error)?;
                    let k = k.value();
                    if !k.starts_with(prefix) {
                        return Ok(None);
                    }
                    Ok(Some((k.to_vec(), v.value().to_vec())))
                }
            }
        };
        let mut memory = in_memory.into_iter().peekable();
        let mut file_next = next_stored()?;
        let mut out = Vec::new();
        while out.len() < limit {
            // (take memory's next key, it hides the file's next key)
            let (from_memory, hides) = match (&file_next, memory.peek()) {
                (None, None) => break,
                (Some(_), None) => (false, false),
                (None, Some(_)) => (true, false),
                (Some((fk, _)), Some((mk, _))) => (mk <= fk, mk == fk),
            };
            if hides {
                file_next = next_stored()?;
            }
            let (key, value) = if from_memory {
                match memory.next() {
                    Some((key, Some(value))) => (key, value),
                    _ => continue,
                }
            } else {
                match file_next.take() {
                    Some(kv) => {
                        file_next = next_stored()?;
                        kv
                    }
                    None => break,
                }
            };
            let Versioned { value, version } = decode(ns, &key, &value)?;
            out.push(Entry {
                key,
                value,
                version,
            });
        }
        Ok(out)
    }

    fn commit_sync(&self, batch: Batch) -> Result<u64, StateError> {
        let shared = &self.inner.shared;
        let mut w = lock(&shared.writer);
        w.wal.check_usable()?;
        Self::wait_for_room(shared)?;
        let revision = w
            .revision
            .checked_add(1)
            .ok_or_else(|| StateError::Invalid("store revision overflow".into()))?;
        let mut entry = EntryBuilder::new(revision);
        // This batch's writes so far: later operations on the same key see them.
        let mut writes: HashMap<(&'static str, Vec<u8>), Slot> = HashMap::new();
        {
            let view = self.view()?;
            for check in &batch.preconditions {
                let current = match view.stored(check.ns, &check.key)? {
                    Some(stored) => Some(decode(check.ns, &check.key, &stored)?.version),
                    None => None,
                };
                if current != check.expected {
                    return Err(StateError::conflict(check.ns, &check.key));
                }
            }
            for op in &batch.ops {
                let ns = op.namespace();
                let (key, slot) = match op {
                    Op::Put { key, value, .. } => (key, Some(encode(revision, value))),
                    Op::Delete { key, .. } => (key, None),
                    Op::AddCounter { key, delta, .. } => {
                        let current = match writes.get(&(ns.as_str(), key.clone())) {
                            Some(slot) => slot.clone(),
                            None => view.stored(ns, key)?,
                        };
                        // A stored value too short for its version is handed on whole: the
                        // counter's frame check then rejects it and leaves it as it is.
                        let current = current.map(|raw| {
                            decode(ns, key, &raw).map_or_else(|_| raw.clone(), |d| d.value)
                        });
                        match added_counter(ns, key, current.as_deref(), *delta) {
                            Some(value) => (key, Some(encode(revision, &value))),
                            None => continue,
                        }
                    }
                };
                match &slot {
                    Some(stored) => entry.put(ns.as_str(), key, stored),
                    None => entry.delete(ns.as_str(), key),
                }
                writes.insert((ns.as_str(), key.clone()), slot);
            }
        }
        // A relaxed batch is logged but not flushed: the next flush covers it. If none came
        // for RELAXED_FLUSH_AFTER, this one flushes, so a crash rolls back at most that much
        // of relaxed commits.
        let flush = !batch.is_relaxed() || w.wal.last_flush_older_than(RELAXED_FLUSH_AFTER);
        w.wal.append(entry, flush)?;
        w.revision = revision;
        let freeze = {
            let mut mem = shared.mem_mut();
            // One slot per key, the batch's last write to it; the layer is keyed, so the
            // order does not matter.
            for ((table, key), slot) in writes {
                mem.active.insert(table, key, slot, revision);
            }
            mem.frozen.is_none()
                && (mem.active.bytes() >= w.freeze_bytes
                    || mem
                        .active
                        .since
                        .is_some_and(|t| t.elapsed() >= w.freeze_interval))
        };
        if freeze {
            // The other segment's entries are in the frozen layer that was flushed (there is
            // none now), so the log may move on to it. If it cannot, this commit still
            // stands (it is in the log, flushed unless relaxed); the log refuses the next.
            if let Err(e) = w.wal.switch() {
                tracing::error!(error = %e, "the write-ahead log cannot move to its other segment");
                return Ok(revision);
            }
            let mut mem = shared.mem_mut();
            let active = std::mem::take(&mut mem.active);
            mem.frozen = Some(Arc::new(active));
            drop(mem);
            if let Some((signal, _)) = lock(&self.inner.flusher).as_ref() {
                // A closed channel means the store is closing; the close flushes.
                let _ = signal.send(());
            }
        }
        Ok(revision)
    }

    /// Waits while the active layer is full and the flusher still has the frozen one.
    fn wait_for_room(shared: &Shared) -> Result<(), StateError> {
        let deadline = Instant::now() + FLUSH_WAIT;
        loop {
            {
                let mem = shared.mem();
                if mem.frozen.is_none() || mem.active.bytes() < MAX_ACTIVE_BYTES {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(StateError::Backend {
                    backend: "redb",
                    message: "the state file falls behind the commits".into(),
                    retryable: true,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(RedbStore) -> Result<T, StateError> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(this))
            .await
            .map_err(|e| StateError::Backend {
                backend: "redb",
                message: format!("blocking task failed: {e}"),
                retryable: false,
            })?
    }
}

/// Applies the log's entries after the state file's revision in one durable transaction
/// (see [`wal`](super::wal)); returns the revision the store is at.
fn replay(db: &Database, segments: &[Vec<u8>; 2]) -> Result<u64, StateError> {
    let current = stored_revision(db)?;
    let entries = wal::entries_after(segments, current)?;
    let Some(last) = entries.last().map(|e| e.revision) else {
        return Ok(current);
    };
    let mut writes = Vec::new();
    for entry in &entries {
        writes.extend(entry.writes()?.into_iter().map(|write| match write {
            LoggedWrite::Put { table, key, stored } => (table, key, Some(stored)),
            LoggedWrite::Delete { table, key } => (table, key, None),
        }));
    }
    write_durably(db, writes, last)?;
    tracing::info!(
        from_revision = current + 1,
        to_revision = last,
        "replayed the state store's write-ahead log"
    );
    Ok(last)
}

impl Drop for Inner {
    /// Stops the flusher and writes what memory holds to the state file, so that the next
    /// open has nothing to replay. If that fails, the log still holds every write.
    fn drop(&mut self) {
        let shared = &self.shared;
        shared
            .closing
            .store(true, std::sync::atomic::Ordering::Release);
        if let Some((signal, thread)) = lock(&self.flusher).take() {
            drop(signal);
            if thread.join().is_err() {
                tracing::error!("the state flusher panicked");
            }
        }
        let mut w = lock(&shared.writer);
        // Relaxed commits at the log's end reach the disk in any case.
        if let Err(e) = w.wal.flush() {
            tracing::warn!(error = %e, "closing the state store: flushing the write-ahead log failed");
        }
        // The layers go to the file oldest first: the active one only after the frozen one,
        // or the file's revision would claim writes it lacks.
        let frozen = shared.mem().frozen.clone();
        let mut written = true;
        if let Some(frozen) = frozen {
            written = write_layer(&shared.db, &frozen).is_ok();
        }
        let active = std::mem::take(&mut shared.mem_mut().active);
        if written && !active.is_empty() {
            written = write_layer(&shared.db, &active).is_ok();
        }
        if !written {
            tracing::warn!("closing the state store: writing recent state to the state file failed; the write-ahead log keeps it");
        }
    }
}

impl StateStore for RedbStore {
    fn backend(&self) -> &'static str {
        "redb"
    }

    fn get<'a>(&'a self, ns: Namespace, key: &'a [u8]) -> StoreFuture<'a, Option<Versioned>> {
        Box::pin(async move {
            let mut found = self.get_many_sync(ns, std::slice::from_ref(&key))?;
            Ok(found.pop().flatten())
        })
    }

    fn get_many<'a>(
        &'a self,
        ns: Namespace,
        keys: &'a [Vec<u8>],
    ) -> StoreFuture<'a, Vec<Option<Versioned>>> {
        Box::pin(async move { self.get_many_sync(ns, keys) })
    }

    fn scan<'a>(
        &'a self,
        ns: Namespace,
        prefix: &'a [u8],
        start: Option<&'a [u8]>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Entry>> {
        Box::pin(async move { self.scan_sync(ns, prefix, start, limit) })
    }

    fn commit(&self, batch: Batch) -> StoreFuture<'_, u64> {
        Box::pin(self.blocking(move |s| s.commit_sync(batch)))
    }

    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, Lease> {
        Box::pin(async move { self.inner.leases.acquire(name, owner, ttl) })
    }

    fn renew_lease<'a>(&'a self, lease: &'a Lease, ttl: Duration) -> StoreFuture<'a, Lease> {
        Box::pin(async move { self.inner.leases.renew(lease, ttl) })
    }

    fn release_lease<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.inner.leases.release(lease);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    //! Crash recovery through the write-ahead log, and reads that merge memory with the
    //! state file. A power loss leaves the state file as of its last durable transaction and
    //! the log as of its last flush; the recovery tests build exactly that on disk (a copy of
    //! the state file taken at a clean close, the log copied after the commits) and open it.

    use proptest::prelude::*;

    use super::*;
    use crate::state::MemoryStore;

    const RECORDS: Namespace = Namespace::new("wal_records");
    const COUNTS: Namespace = Namespace::new("wal_counts");
    const NEVER: Duration = Duration::from_secs(3600);

    /// Everything the store holds in the test namespaces.
    async fn dump(s: &dyn StateStore) -> Vec<(Namespace, Entry)> {
        let mut out = Vec::new();
        for ns in [RECORDS, COUNTS] {
            for e in s.scan(ns, b"", None, usize::MAX).await.unwrap() {
                out.push((ns, e));
            }
        }
        out
    }

    /// Batch `i` of a varied run: puts, deletes of earlier keys, counter additions; every
    /// third relaxed.
    fn batch(i: u32) -> Batch {
        let mut b = Batch::new();
        b.put(RECORDS, format!("r{i:04}"), vec![i as u8; 100 + i as usize]);
        if i % 4 == 3 {
            b.delete(RECORDS, format!("r{:04}", i - 2));
        }
        b.add_counter(COUNTS, "n", 1);
        b.add_counter(COUNTS, "n", 1);
        if i.is_multiple_of(3) {
            b.relax_durability();
        }
        b
    }

    fn copy_log(from: &Path, to: &Path) {
        for n in 0..2 {
            std::fs::copy(wal::path_for(from, n), wal::path_for(to, n)).unwrap();
        }
    }

    #[tokio::test]
    async fn a_power_loss_keeps_every_commit_the_log_flushed() {
        let live = tempfile::tempdir().unwrap();
        let path = live.path().join(DEFAULT_STATE_FILE);
        let s = RedbStore::open(&path).unwrap();
        for i in 0..5 {
            s.commit(batch(i)).await.unwrap();
        }
        drop(s);
        // The state file as of its last durable transaction (the clean close wrote one).
        let crashed = tempfile::tempdir().unwrap();
        let crashed_path = crashed.path().join(DEFAULT_STATE_FILE);
        std::fs::copy(&path, &crashed_path).unwrap();

        let s = RedbStore::open_with_freeze(&path, NEVER, usize::MAX).unwrap();
        let mut last = 0;
        for i in 5..41 {
            last = s.commit(batch(i)).await.unwrap();
        }
        // The last commit is an ordinary one: its flush covers the relaxed ones before it.
        let expected = dump(&s).await;
        copy_log(&path, &crashed_path);
        drop(s);

        let reopened = RedbStore::open(&crashed_path).unwrap();
        assert_eq!(dump(&reopened).await, expected);
        // 41 records of which 10 deleted, and the counter at two per batch.
        assert_eq!(expected.len(), 41 - 10 + 1);
        assert_eq!(
            reopened.get(COUNTS, b"n").await.unwrap().map(|v| v.value),
            Some(crate::state::frame::seal_i64(COUNTS, b"n", 82))
        );
        // The revision goes on after the replayed ones: no version is reused.
        assert_eq!(
            reopened.put(RECORDS, b"next", b"x").await.unwrap(),
            last + 1
        );
    }

    #[tokio::test]
    async fn a_torn_log_tail_replays_a_whole_prefix_of_the_commits() {
        let live = tempfile::tempdir().unwrap();
        let path = live.path().join(DEFAULT_STATE_FILE);
        drop(RedbStore::open(&path).unwrap());
        let checkpointed = std::fs::read(&path).unwrap();

        let s = RedbStore::open_with_freeze(&path, NEVER, usize::MAX).unwrap();
        // After each commit: where its entry ends in segment 0, and the state it left.
        let mut states = vec![(0, dump(&s).await)];
        for i in 0..12 {
            let mut b = batch(i);
            b.relaxed = false;
            s.commit(b).await.unwrap();
            let (segment, end) = lock(&s.inner.shared.writer).wal.position_for_tests();
            assert_eq!(segment, 0);
            states.push((end, dump(&s).await));
        }
        let log = std::fs::read(wal::path_for(&path, 0)).unwrap();
        let last_end = states.last().unwrap().0;
        drop(s);

        let crashed = tempfile::tempdir().unwrap();
        let crashed_path = crashed.path().join(DEFAULT_STATE_FILE);
        let cuts = states
            .iter()
            .flat_map(|&(e, _)| [e.saturating_sub(1), e, e + 1, e + 9])
            .filter(|&c| c <= last_end);
        for cut in cuts {
            std::fs::write(&crashed_path, &checkpointed).unwrap();
            // Past the cut: zeros, as in a file grown ahead of its writes.
            let mut torn = log.clone();
            torn[usize::try_from(cut).unwrap()..].fill(0);
            std::fs::write(wal::path_for(&crashed_path, 0), &torn).unwrap();
            std::fs::write(wal::path_for(&crashed_path, 1), b"").unwrap();
            let reopened = RedbStore::open(&crashed_path).unwrap();
            let (_, expected) = states.iter().rev().find(|(end, _)| *end <= cut).unwrap();
            assert_eq!(&dump(&reopened).await, expected, "log cut at byte {cut}");
        }
    }

    /// Commits `batch(i)` and waits until its writes are in the state file.
    async fn commit_and_flush(s: &RedbStore, i: u32) {
        s.commit(batch(i)).await.unwrap();
        for _ in 0..5000 {
            if s.inner.shared.mem().frozen.is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the flusher did not write the frozen layer");
    }

    #[tokio::test]
    async fn a_log_that_lacks_flushed_commits_is_refused() {
        let live = tempfile::tempdir().unwrap();
        let path = live.path().join(DEFAULT_STATE_FILE);
        drop(RedbStore::open(&path).unwrap());
        let crashed = tempfile::tempdir().unwrap();
        let crashed_path = crashed.path().join(DEFAULT_STATE_FILE);
        std::fs::copy(&path, &crashed_path).unwrap();
        // Every commit freezes its writes and moves the log to its other segment, so the
        // segments are reused: only the state file holds the early commits.
        let s = RedbStore::open_with_freeze(&path, Duration::ZERO, 0).unwrap();
        for i in 0..6 {
            commit_and_flush(&s, i).await;
        }
        copy_log(&path, &crashed_path);
        drop(s);
        // The copied state file predates the transactions the log relies on.
        let err = RedbStore::open(&crashed_path).unwrap_err();
        assert_eq!(err.kind(), "corrupt", "{err}");
        assert!(
            err.to_string().contains("acknowledged writes are missing"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn flushed_layers_and_the_log_together_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEFAULT_STATE_FILE);
        let s = RedbStore::open_with_freeze(&path, Duration::ZERO, 0).unwrap();
        for i in 0..100 {
            s.commit(batch(i)).await.unwrap();
        }
        let expected = dump(&s).await;
        drop(s);
        let reopened = RedbStore::open(&path).unwrap();
        assert_eq!(dump(&reopened).await, expected);
        assert_eq!(
            reopened.get(COUNTS, b"n").await.unwrap().map(|v| v.value),
            Some(crate::state::frame::seal_i64(COUNTS, b"n", 200))
        );
    }

    #[derive(Clone, Debug)]
    enum Step {
        Put(u8, u8),
        Delete(u8),
        Add(u8, i8),
        /// Scan with this prefix length (0–1 of the key), start key and limit.
        Scan(u8, Option<u8>, u8),
        Get(Vec<u8>),
        /// Wait for the flusher, so the next reads find the writes in the file.
        Settle,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..24, any::<u8>()).prop_map(|(k, v)| Step::Put(k, v)),
            2 => (0u8..24).prop_map(Step::Delete),
            2 => (0u8..4, any::<i8>()).prop_map(|(k, d)| Step::Add(k, d)),
            3 => (0u8..2, proptest::option::of(0u8..24), 1u8..8).prop_map(|(p, s, l)| Step::Scan(p, s, l)),
            2 => proptest::collection::vec(0u8..24, 1..4).prop_map(Step::Get),
            1 => Just(Step::Settle),
        ]
    }

    /// Keys group by their first byte, so prefix scans cut across memory and the file.
    fn key(k: u8) -> Vec<u8> {
        vec![b'a' + k % 3, b'0' + k]
    }

    async fn run_against_memory(steps: Vec<Step>) -> Result<(), TestCaseError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEFAULT_STATE_FILE);
        let redb = RedbStore::open_with_freeze(&path, Duration::ZERO, 0).unwrap();
        let model = MemoryStore::new();
        for (i, step) in steps.into_iter().enumerate() {
            let mut b = Batch::new();
            match &step {
                Step::Put(k, v) => b.put(RECORDS, key(*k), vec![*v; 3]),
                Step::Delete(k) => b.delete(RECORDS, key(*k)),
                Step::Add(k, d) => {
                    b.add_counter(COUNTS, key(*k), i64::from(*d));
                    b.add_counter(COUNTS, key(*k), 1);
                }
                Step::Scan(prefix_len, start, limit) => {
                    let prefix = &key(i as u8)[..usize::from(*prefix_len)];
                    let start = start.map(key);
                    let got = redb.scan(RECORDS, prefix, start.as_deref(), usize::from(*limit));
                    let want = model.scan(RECORDS, prefix, start.as_deref(), usize::from(*limit));
                    let strip =
                        |v: Vec<Entry>| v.into_iter().map(|e| (e.key, e.value)).collect::<Vec<_>>();
                    prop_assert_eq!(
                        strip(got.await.unwrap()),
                        strip(want.await.unwrap()),
                        "step {} {:?}",
                        i,
                        step
                    );
                }
                Step::Get(keys) => {
                    let keys: Vec<Vec<u8>> = keys.iter().map(|k| key(*k)).collect();
                    let values = |v: Vec<Option<Versioned>>| {
                        v.into_iter()
                            .map(|e| e.map(|e| e.value))
                            .collect::<Vec<_>>()
                    };
                    for ns in [RECORDS, COUNTS] {
                        let got = values(redb.get_many(ns, &keys).await.unwrap());
                        let want = values(model.get_many(ns, &keys).await.unwrap());
                        prop_assert_eq!(got, want, "step {} {:?}", i, step);
                    }
                }
                Step::Settle => {
                    while redb.inner.shared.mem().frozen.is_some() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            if !b.is_empty() {
                redb.commit(b.clone()).await.unwrap();
                model.commit(b).await.unwrap();
            }
        }
        // And the whole of it, after a reopen that replays or finds it in the file.
        let expected = dump(&model).await;
        let strip = |v: Vec<(Namespace, Entry)>| {
            v.into_iter()
                .map(|(n, e)| (n, e.key, e.value))
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(strip(dump(&redb).await), strip(expected.clone()));
        drop(redb);
        let reopened = RedbStore::open(&path).unwrap();
        prop_assert_eq!(strip(dump(&reopened).await), strip(expected));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Reads through memory layers, a layer being flushed and the file agree with the
        /// in-memory store at every step.
        #[test]
        fn reads_merge_memory_and_the_file_like_the_memory_store(steps in proptest::collection::vec(step(), 1..60)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(run_against_memory(steps))?;
        }
    }
}
