//! The gateway's durable state store: one storage trait behind which the gateway keeps its
//! mirror journal, ID map, usage counters and failover state.
//!
//! # Model
//! A [`StateStore`] holds byte keys and byte values in named [`Namespace`]s. Every committed
//! write batch gets the store's next *revision* (a store-wide counter, starting at 1, strictly
//! increasing, never reused); a key's *version* is the revision of the batch that last wrote
//! it. Versions are therefore never reused either, even after a delete and re-create, so a
//! compare-and-swap on a version is ABA-free. This is etcd's `mod_revision` model, chosen so
//! that an etcd backend can implement the trait without translation.
//!
//! Operations: [`get`](StateStore::get) / [`get_many`](StateStore::get_many), prefix
//! [`scan`](StateStore::scan) with an inclusive start key and a limit, and
//! [`commit`](StateStore::commit) of an atomic [`Batch`] of puts, deletes and counter
//! additions guarded by version preconditions (all or nothing). A counter addition
//! ([`Op::AddCounter`]) reads and writes inside the commit, so concurrent additions never
//! conflict (an etcd backend would run it as a compare-and-swap retried inside `commit`). `put`, `delete` and `put_if_version` are one-operation
//! batches. A named [`Lease`] with an owner and a TTL elects the single writer of a subsystem
//! (the journal's writer task); its `token` increases on every grant and may be used as a
//! fencing token.
//!
//! # Async, with blocking I/O inside the backend
//! The trait is asynchronous (boxed futures, so `Arc<dyn StateStore>` works and the backend
//! is picked at run time): an etcd backend is network I/O and must not block a runtime thread.
//! redb and the log are synchronous: [`RedbStore`] runs commits on tokio's blocking pool
//! (`spawn_blocking`; the hand-off is amortised by the journal's group commit, which turns
//! many appends into one batch) and reads on the calling task (a read never waits for a
//! commit's flush and costs microseconds, less than the hand-off).
//!
//! # Backends
//! - [`RedbStore`]: embedded, one redb file in `state_dir` (default
//!   [`DEFAULT_STATE_PATH`]) with a write-ahead log beside it. A commit is durable in the
//!   log (fsync before `commit` returns) and seen by reads from memory; a flusher thread
//!   writes the recent commits to the redb file in one transaction every 200 ms (see
//!   `embedded` and `wal`). redb locks the file, so one process owns it and the lease only
//!   arbitrates between owners inside that process (leases live in memory; a restarted
//!   process starts from a free lease).
//! - [`MemoryStore`]: the in-memory twin for tests, same semantics, no durability.
//!
//! Values written by the gateway's own modules are [`frame`]d (format version byte + CRC32C
//! over key and payload), so corruption is detected on read and reported as
//! [`StateError::Corrupt`], never silently skipped.
//!
//! Architecture invariant: nothing outside `state/` knows which backend is in use.

mod embedded;
pub mod failover;
pub mod frame;
pub mod idmap;
mod lease;
mod memory;
mod memtable;
pub mod usage;
mod wal;

#[cfg(test)]
mod conformance;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use embedded::{RedbStore, DEFAULT_STATE_FILE, DEFAULT_STATE_PATH};
pub use failover::FailoverStore;
pub use idmap::{DirectedIdMap, IdMap, IdMapFilter, IdMapping};
pub use memory::MemoryStore;
pub use usage::{UsageCounters, UsageKey};

/// The future every [`StateStore`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StateError>> + Send + 'a>>;

/// A named key space. Names are code constants: lowercase ASCII letters, digits and `_`, not
/// starting with `_` (reserved for a backend's own bookkeeping).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(&'static str);

impl Namespace {
    /// A namespace; invalid names fail at compile time when used in a `const`.
    pub const fn new(name: &'static str) -> Namespace {
        assert!(Namespace::is_valid_name(name), "invalid namespace name");
        Namespace(name)
    }

    /// Whether `name` may name a namespace: lowercase ASCII letters, digits and `_`, not
    /// empty and not starting with `_`.
    pub(crate) const fn is_valid_name(name: &str) -> bool {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes[0] == b'_' {
            return false;
        }
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return false;
            }
            i += 1;
        }
        true
    }

    /// The namespace's name.
    pub const fn as_str(&self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A value with the version (store revision) that wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub value: Vec<u8>,
    pub version: u64,
}

/// One key of a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub version: u64,
}

/// One write of a [`Batch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put {
        ns: Namespace,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        ns: Namespace,
        key: Vec<u8>,
    },
    /// Add `delta` to the counter at `key` (a [`frame::seal_i64`] value; absent counts as 0),
    /// saturating at the i64 bounds. Never conflicts, so a counter update can ride in any
    /// batch; a stored value that is not a framed counter is left as it is (and logged).
    AddCounter {
        ns: Namespace,
        key: Vec<u8>,
        delta: i64,
    },
}

impl Op {
    /// The namespace the operation writes.
    pub fn namespace(&self) -> Namespace {
        match self {
            Op::Put { ns, .. } | Op::Delete { ns, .. } | Op::AddCounter { ns, .. } => *ns,
        }
    }
}

/// The value an [`Op::AddCounter`] leaves at `key`, given the stored one; `None` if the
/// stored value is not a framed counter (then nothing is written).
pub(crate) fn added_counter(
    ns: Namespace,
    key: &[u8],
    stored: Option<&[u8]>,
    delta: i64,
) -> Option<Vec<u8>> {
    let current = match stored {
        None => 0,
        Some(v) => match frame::open_i64(ns, key, v) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(namespace = %ns, error = %e, "a counter is unreadable; left as it is");
                return None;
            }
        },
    };
    Some(frame::seal_i64(ns, key, current.saturating_add(delta)))
}

/// A precondition of a [`Batch`]: the key's current version must equal `expected`
/// (`None`: the key must not exist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Precondition {
    pub ns: Namespace,
    pub key: Vec<u8>,
    pub expected: Option<u64>,
}

/// In the embedded backend, relaxed commits ([`Batch::relax_durability`]) made within this
/// time of the last commit that reached the disk skip the flush; the next one after it
/// flushes. So under load a crash rolls back at most this much of relaxed commits (more
/// only if the store went idle right after them).
pub const RELAXED_FLUSH_AFTER: Duration = Duration::from_millis(100);

/// An atomic transaction: if every precondition holds, every operation is applied in order,
/// under one new revision; otherwise nothing is, and the commit fails with
/// [`StateError::Conflict`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub(crate) ops: Vec<Op>,
    pub(crate) preconditions: Vec<Precondition>,
    /// See [`Batch::relax_durability`].
    pub(crate) relaxed: bool,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Write `value` at `key`.
    pub fn put(&mut self, ns: Namespace, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put {
            ns,
            key: key.into(),
            value: value.into(),
        });
    }

    /// Remove `key` (no error if absent).
    pub fn delete(&mut self, ns: Namespace, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete {
            ns,
            key: key.into(),
        });
    }

    /// Add `delta` to the counter at `key` (see [`Op::AddCounter`]).
    pub fn add_counter(&mut self, ns: Namespace, key: impl Into<Vec<u8>>, delta: i64) {
        self.ops.push(Op::AddCounter {
            ns,
            key: key.into(),
            delta,
        });
    }

    /// Require `key` to be at `expected` (`None`: absent) when the batch commits.
    pub fn require_version(
        &mut self,
        ns: Namespace,
        key: impl Into<Vec<u8>>,
        expected: Option<u64>,
    ) {
        self.preconditions.push(Precondition {
            ns,
            key: key.into(),
            expected,
        });
    }

    /// Adds `other`'s preconditions and operations (after this batch's own). The result is
    /// relaxed only if both were.
    pub fn append(&mut self, other: Batch) {
        self.relaxed &= other.relaxed || other.ops.is_empty();
        self.ops.extend(other.ops);
        self.preconditions.extend(other.preconditions);
    }

    /// Lets the commit return before the batch is flushed to disk: it is atomic and seen by
    /// every later read at once, and it is on disk once any later ordinary commit is (in the
    /// embedded backend, a relaxed commit made [`RELAXED_FLUSH_AFTER`] or more after the last
    /// one that reached the disk is made ordinary; a clean close flushes), but a crash
    /// before that may lose it. For bookkeeping that a crash may roll
    /// back a little (recovery-capacity usage, a journal record's transition to applied),
    /// never for anything a tenant was told succeeded. A backend without the distinction
    /// commits it normally.
    pub fn relax_durability(&mut self) {
        self.relaxed = true;
    }

    /// Whether [`Batch::relax_durability`] was asked for.
    pub fn is_relaxed(&self) -> bool {
        self.relaxed
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The preconditions.
    pub fn preconditions(&self) -> &[Precondition] {
        &self.preconditions
    }

    /// No operations and no preconditions.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.preconditions.is_empty()
    }
}

/// A granted lease: `owner` is the single writer of `name` until `expires_at_ms` unless renewed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub owner: String,
    /// Increases on every grant of this lease; usable as a fencing token.
    pub token: u64,
    /// Wall-clock expiry, milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
}

/// The storage trait. See the module documentation for the model.
pub trait StateStore: Send + Sync + 'static {
    /// A short backend name (`redb`, `memory`), for logs and metric labels.
    fn backend(&self) -> &'static str;

    /// The current value of `key`.
    fn get<'a>(&'a self, ns: Namespace, key: &'a [u8]) -> StoreFuture<'a, Option<Versioned>>;

    /// The current values of `keys`, read from one consistent snapshot, in the same order.
    fn get_many<'a>(
        &'a self,
        ns: Namespace,
        keys: &'a [Vec<u8>],
    ) -> StoreFuture<'a, Vec<Option<Versioned>>>;

    /// Up to `limit` entries whose key starts with `prefix`, in key order, starting at `start`
    /// (inclusive; `None`: the first key with the prefix). One consistent snapshot.
    fn scan<'a>(
        &'a self,
        ns: Namespace,
        prefix: &'a [u8],
        start: Option<&'a [u8]>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Entry>>;

    /// Apply `batch` atomically and durably; returns the new revision.
    fn commit(&self, batch: Batch) -> StoreFuture<'_, u64>;

    /// Grant lease `name` to `owner` for `ttl`, if it is free, expired, or already `owner`'s;
    /// otherwise [`StateError::LeaseHeld`].
    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, Lease>;

    /// Extend a lease this owner still holds; [`StateError::LeaseLost`] if it does not.
    fn renew_lease<'a>(&'a self, lease: &'a Lease, ttl: Duration) -> StoreFuture<'a, Lease>;

    /// Give a lease up (no error if it was already lost).
    fn release_lease<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, ()>;

    /// Write one key unconditionally; returns its new version.
    fn put<'a>(&'a self, ns: Namespace, key: &'a [u8], value: &'a [u8]) -> StoreFuture<'a, u64> {
        let mut batch = Batch::new();
        batch.put(ns, key, value);
        self.commit(batch)
    }

    /// Delete one key (no error if absent); returns the new revision.
    fn delete<'a>(&'a self, ns: Namespace, key: &'a [u8]) -> StoreFuture<'a, u64> {
        let mut batch = Batch::new();
        batch.delete(ns, key);
        self.commit(batch)
    }

    /// Write one key if its version is `expected` (`None`: absent); returns its new version,
    /// or [`StateError::Conflict`].
    fn put_if_version<'a>(
        &'a self,
        ns: Namespace,
        key: &'a [u8],
        value: &'a [u8],
        expected: Option<u64>,
    ) -> StoreFuture<'a, u64> {
        let mut batch = Batch::new();
        batch.require_version(ns, key, expected);
        batch.put(ns, key, value);
        self.commit(batch)
    }
}

/// Errors of the state store.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StateError {
    /// The backend failed (I/O, database error, task failure).
    #[error("state backend {backend} failed: {message}")]
    Backend {
        backend: &'static str,
        message: String,
        retryable: bool,
    },
    /// A batch precondition did not hold.
    #[error("version conflict on {namespace}/{key}")]
    Conflict {
        namespace: &'static str,
        key: String,
    },
    /// A stored value failed its checks (checksum, format version, length, decoding).
    #[error("corrupt value in {namespace} at key {key}: {reason}")]
    Corrupt {
        namespace: &'static str,
        key: String,
        reason: String,
    },
    /// Someone else holds the lease.
    #[error("lease {name} is held by {owner}")]
    LeaseHeld { name: String, owner: String },
    /// The lease expired or was taken over.
    #[error("lease {name} was lost")]
    LeaseLost { name: String },
    /// The caller passed something the store cannot hold.
    #[error("invalid state store request: {0}")]
    Invalid(String),
}

impl StateError {
    /// A low-cardinality label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StateError::Backend { .. } => "backend",
            StateError::Conflict { .. } => "conflict",
            StateError::Corrupt { .. } => "corrupt",
            StateError::LeaseHeld { .. } => "lease_held",
            StateError::LeaseLost { .. } => "lease_lost",
            StateError::Invalid(_) => "invalid",
        }
    }

    /// Whether trying again (after re-reading, for a conflict) can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            StateError::Backend { retryable, .. } => *retryable,
            StateError::Conflict { .. } | StateError::LeaseHeld { .. } => true,
            StateError::Corrupt { .. } | StateError::LeaseLost { .. } | StateError::Invalid(_) => {
                false
            }
        }
    }

    pub(crate) fn conflict(ns: Namespace, key: &[u8]) -> StateError {
        StateError::Conflict {
            namespace: ns.as_str(),
            key: display_key(key),
        }
    }

    pub(crate) fn corrupt(ns: Namespace, key: &[u8], reason: impl Into<String>) -> StateError {
        StateError::Corrupt {
            namespace: ns.as_str(),
            key: display_key(key),
            reason: reason.into(),
        }
    }
}

/// A key in printable form for errors and logs (non-printable bytes escaped).
pub fn display_key(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

/// The smallest key greater than `key` (`key` followed by a zero byte): the inclusive
/// `start` of the scan page that follows a page ending at `key`.
pub fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// Appends a length-prefixed component (u16 big-endian length, then the bytes) to a key.
/// Such keys are prefix-free per component, so a key built of components sorts and groups by
/// its first components. Components longer than `u16::MAX` are refused.
pub fn push_component(key: &mut Vec<u8>, component: &[u8]) -> Result<(), StateError> {
    let len = u16::try_from(component.len()).map_err(|_| {
        StateError::Invalid(format!(
            "key component of {} bytes exceeds 65535",
            component.len()
        ))
    })?;
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(component);
    Ok(())
}

/// Reads a length-prefixed component written by [`push_component`] from the front of `key`,
/// returning it and the rest.
pub fn split_component(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let len_bytes: [u8; 2] = key.get(..2)?.try_into().ok()?;
    let len = usize::from(u16::from_be_bytes(len_bytes));
    let rest = &key[2..];
    Some((rest.get(..len)?, &rest[len..]))
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_round_trip_and_group() {
        let mut a = Vec::new();
        push_component(&mut a, b"proj").unwrap();
        push_component(&mut a, b"dom").unwrap();
        let (p, rest) = split_component(&a).unwrap();
        let (d, rest) = split_component(rest).unwrap();
        assert_eq!((p, d, rest), (&b"proj"[..], &b"dom"[..], &b""[..]));
        assert!(split_component(&[0, 5, 1]).is_none());
        assert!(split_component(&[0]).is_none());
    }

    #[test]
    fn error_kinds() {
        let e = StateError::conflict(Namespace::new("x"), b"k\x00");
        assert_eq!(e.kind(), "conflict");
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "version conflict on x/k\\x00");
    }
}
