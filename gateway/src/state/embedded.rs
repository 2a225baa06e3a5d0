//! The embedded backend: one redb file, one redb write transaction per [`Batch`].
//!
//! Layout inside the redb file:
//! - table `_drgw_meta` (`&str` → `u64`): `revision`, the store revision of the last commit;
//! - one table per [`Namespace`], named after it (`&[u8]` → `&[u8]`); each value is
//!   `version: u64 BE ‖ value bytes`.
//!
//! Reads run on the calling task: a redb read transaction never waits for a writer (readers
//! see the last commit) and its pages come from redb's cache or the OS page cache, so a read
//! costs microseconds, less than a hand-off to another thread and back. Commits run on
//! tokio's blocking pool (they wait for the write lock and for the disk), so the store needs
//! a tokio runtime. Write transactions use redb's immediate durability (the commit has
//! reached the disk when `commit` returns) unless the batch is relaxed.

use std::collections::HashMap;
use std::ops::RangeFrom;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable, TableDefinition, TableError};

use super::lease::LeaseTable;
use super::{
    added_counter, Batch, Entry, Lease, Namespace, Op, StateError, StateStore, StoreFuture,
    Versioned, RELAXED_FLUSH_AFTER,
};

/// The state file's name inside `state_dir`.
pub const DEFAULT_STATE_FILE: &str = "state.redb";
/// The default state file.
pub const DEFAULT_STATE_PATH: &str = "/var/lib/drgw/state.redb";

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
    db: Arc<Database>,
    path: PathBuf,
    leases: Arc<LeaseTable>,
    /// When the last commit that reached the disk was made (see `commit_sync`).
    last_durable: Arc<Mutex<Instant>>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens (creating it and its directory if needed) the state file at `path`. Blocking:
    /// redb recovers an uncleanly closed file on open. Fails if another process has it open.
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
        Ok(RedbStore {
            db: Arc::new(db),
            path,
            leases: Arc::default(),
            last_durable: Arc::new(Mutex::new(Instant::now())),
        })
    }

    /// Opens `state_dir/state.redb`.
    pub fn open_in(state_dir: impl AsRef<Path>) -> Result<RedbStore, StateError> {
        RedbStore::open(state_dir.as_ref().join(DEFAULT_STATE_FILE))
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn get_many_sync<K: AsRef<[u8]>>(
        &self,
        ns: Namespace,
        keys: &[K],
    ) -> Result<Vec<Option<Versioned>>, StateError> {
        let txn = self.db.begin_read().map_err(backend_error)?;
        let table = match txn.open_table(table(ns)) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => return Ok(vec![None; keys.len()]),
            Err(e) => return Err(backend_error(e)),
        };
        keys.iter()
            .map(|key| {
                let key = key.as_ref();
                let stored = table.get(key).map_err(backend_error)?;
                stored.map(|v| decode(ns, key, v.value())).transpose()
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
        let txn = self.db.begin_read().map_err(backend_error)?;
        let table = match txn.open_table(table(ns)) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(backend_error(e)),
        };
        let from = match start {
            Some(start) if start > prefix => start,
            _ => prefix,
        };
        let mut out = Vec::new();
        let range: RangeFrom<&[u8]> = from..;
        for item in table.range(range).map_err(backend_error)? {
            if out.len() >= limit {
                break;
            }
            let (key, stored) = item.map_err(backend_error)?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            let Versioned { value, version } = decode(ns, key, stored.value())?;
            out.push(Entry {
                key: key.to_vec(),
                value,
                version,
            });
        }
        Ok(out)
    }

    fn commit_sync(&self, batch: Batch) -> Result<u64, StateError> {
        let mut txn = self.db.begin_write().map_err(backend_error)?;
        let mut last_durable = self.last_durable.lock().unwrap_or_else(|e| e.into_inner());
        // A relaxed batch is seen by every later read but not fsynced: the next immediate
        // commit's fsync covers it. If none came for RELAXED_FLUSH_AFTER, this one is it, so
        // a crash rolls back at most that much of relaxed commits. (Not redb's `Eventual`:
        // on Linux it fsyncs like an immediate commit.) The lock is held by the one write
        // transaction there can be.
        let relaxed = batch.is_relaxed() && last_durable.elapsed() < RELAXED_FLUSH_AFTER;
        if relaxed {
            txn.set_durability(redb::Durability::None);
        }
        let outcome = (|| {
            let mut meta = txn.open_table(META).map_err(backend_error)?;
            let revision = meta
                .get(REVISION)
                .map_err(backend_error)?
                .map_or(0, |v| v.value())
                .checked_add(1)
                .ok_or_else(|| StateError::Invalid("store revision overflow".into()))?;
            let mut tables = HashMap::new();
            for check in &batch.preconditions {
                if !tables.contains_key(check.ns.as_str()) {
                    let t = txn.open_table(table(check.ns)).map_err(backend_error)?;
                    tables.insert(check.ns.as_str(), t);
                }
                let t = &tables[check.ns.as_str()];
                let current = match t.get(check.key.as_slice()).map_err(backend_error)? {
                    Some(stored) => Some(decode(check.ns, &check.key, stored.value())?.version),
                    None => None,
                };
                if current != check.expected {
                    return Ok(Err(StateError::conflict(check.ns, &check.key)));
                }
            }
            for op in &batch.ops {
                let ns = op.namespace();
                if !tables.contains_key(ns.as_str()) {
                    let t = txn.open_table(table(ns)).map_err(backend_error)?;
                    tables.insert(ns.as_str(), t);
                }
                let Some(t) = tables.get_mut(ns.as_str()) else {
                    continue;
                };
                match op {
                    Op::Put { key, value, .. } => {
                        t.insert(key.as_slice(), encode(revision, value).as_slice())
                            .map_err(backend_error)?;
                    }
                    Op::Delete { key, .. } => {
                        t.remove(key.as_slice()).map_err(backend_error)?;
                    }
                    Op::AddCounter { key, delta, .. } => {
                        // A stored value too short for its version is handed on whole: the
                        // counter's frame check then rejects it and leaves it as it is.
                        let stored = t.get(key.as_slice()).map_err(backend_error)?.map(|v| {
                            let raw = v.value();
                            decode(ns, key, raw).map_or_else(|_| raw.to_vec(), |d| d.value)
                        });
                        if let Some(value) = added_counter(ns, key, stored.as_deref(), *delta) {
                            t.insert(key.as_slice(), encode(revision, &value).as_slice())
                                .map_err(backend_error)?;
                        }
                    }
                }
            }
            meta.insert(REVISION, revision).map_err(backend_error)?;
            Ok(Ok(revision))
        })();
        match outcome {
            Ok(Ok(revision)) => {
                txn.commit().map_err(backend_error)?;
                if !relaxed {
                    *last_durable = Instant::now();
                }
                Ok(revision)
            }
            Ok(Err(conflict)) => {
                txn.abort().map_err(backend_error)?;
                Err(conflict)
            }
            Err(e) => {
                // Dropping the transaction aborts it; the original error is the one to report.
                drop(txn);
                Err(e)
            }
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
        Box::pin(async move { self.leases.acquire(name, owner, ttl) })
    }

    fn renew_lease<'a>(&'a self, lease: &'a Lease, ttl: Duration) -> StoreFuture<'a, Lease> {
        Box::pin(async move { self.leases.renew(lease, ttl) })
    }

    fn release_lease<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.leases.release(lease);
            Ok(())
        })
    }
}
