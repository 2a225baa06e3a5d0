//! The in-memory twin of the embedded store, for tests: same semantics, no durability.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::lease::LeaseTable;
use super::{
    added_counter, Batch, Entry, Lease, Namespace, Op, StateError, StateStore, StoreFuture,
    Versioned,
};

type Data = BTreeMap<(&'static str, Vec<u8>), (u64, Vec<u8>)>;

/// An in-memory [`StateStore`]. Clones share the same data, so a test can drop a journal and
/// open another on the same store.
#[derive(Clone, Default)]
pub struct MemoryStore {
    data: Arc<Mutex<MemoryData>>,
    leases: Arc<LeaseTable>,
}

#[derive(Default)]
struct MemoryData {
    revision: u64,
    data: Data,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// An independent copy of the data as it is now (leases not copied): what a disk would
    /// hold after a flush, for tests that model crashes.
    #[cfg(test)]
    pub(crate) fn deep_copy(&self) -> MemoryStore {
        let data = self.lock();
        MemoryStore {
            data: Arc::new(Mutex::new(MemoryData {
                revision: data.revision,
                data: data.data.clone(),
            })),
            leases: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryData> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get_sync(&self, ns: Namespace, key: &[u8]) -> Option<Versioned> {
        self.lock()
            .data
            .get(&(ns.as_str(), key.to_vec()))
            .map(|(version, value)| Versioned {
                value: value.clone(),
                version: *version,
            })
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl StateStore for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn get<'a>(&'a self, ns: Namespace, key: &'a [u8]) -> StoreFuture<'a, Option<Versioned>> {
        Box::pin(async move { Ok(self.get_sync(ns, key)) })
    }

    fn get_many<'a>(
        &'a self,
        ns: Namespace,
        keys: &'a [Vec<u8>],
    ) -> StoreFuture<'a, Vec<Option<Versioned>>> {
        Box::pin(async move {
            let guard = self.lock();
            let found = keys
                .iter()
                .map(|key| {
                    guard
                        .data
                        .get(&(ns.as_str(), key.clone()))
                        .map(|(version, value)| Versioned {
                            value: value.clone(),
                            version: *version,
                        })
                })
                .collect();
            drop(guard);
            Ok(found)
        })
    }

    fn scan<'a>(
        &'a self,
        ns: Namespace,
        prefix: &'a [u8],
        start: Option<&'a [u8]>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Entry>> {
        Box::pin(async move {
            let from = match start {
                Some(start) if start > prefix => start.to_vec(),
                _ => prefix.to_vec(),
            };
            let guard = self.lock();
            let found = guard
                .data
                .range((Bound::Included((ns.as_str(), from)), Bound::Unbounded))
                .take_while(|((n, key), _)| *n == ns.as_str() && key.starts_with(prefix))
                .take(limit)
                .map(|((_, key), (version, value))| Entry {
                    key: key.clone(),
                    value: value.clone(),
                    version: *version,
                })
                .collect();
            drop(guard);
            Ok(found)
        })
    }

    fn commit(&self, batch: Batch) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut guard = self.lock();
            for check in &batch.preconditions {
                let current = guard
                    .data
                    .get(&(check.ns.as_str(), check.key.clone()))
                    .map(|(version, _)| *version);
                if current != check.expected {
                    return Err(StateError::conflict(check.ns, &check.key));
                }
            }
            let revision = guard.revision + 1;
            guard.revision = revision;
            for op in batch.ops {
                match op {
                    Op::Put { ns, key, value } => {
                        guard.data.insert((ns.as_str(), key), (revision, value));
                    }
                    Op::Delete { ns, key } => {
                        guard.data.remove(&(ns.as_str(), key));
                    }
                    Op::AddCounter { ns, key, delta } => {
                        let slot = (ns.as_str(), key);
                        let stored = guard.data.get(&slot).map(|(_, v)| v.as_slice());
                        if let Some(value) = added_counter(ns, &slot.1, stored, delta) {
                            guard.data.insert(slot, (revision, value));
                        }
                    }
                }
            }
            Ok(revision)
        })
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
