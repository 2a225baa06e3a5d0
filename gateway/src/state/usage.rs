//! Usage counters: (tenant, tier, kind) → i64, with atomic add.
//!
//! Namespace `usage`; key `tenant ‖ tier ‖ kind` (length-prefixed components); value a framed
//! big-endian i64. Additions are [`Op::AddCounter`](super::Op) operations: the backend
//! reads and writes the counter inside the commit, so concurrent additions never conflict
//! and stay atomic on a shared backend too.

use std::sync::Arc;

use super::{
    frame, key_after, push_component, split_component, Batch, Namespace, StateError, StateStore,
};

/// The counters' namespace.
pub const USAGE: Namespace = Namespace::new("usage");

/// What a counter counts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsageKey {
    pub tenant: String,
    pub tier: String,
    pub kind: String,
}

impl UsageKey {
    /// A counter key.
    pub fn new(
        tenant: impl Into<String>,
        tier: impl Into<String>,
        kind: impl Into<String>,
    ) -> Self {
        UsageKey {
            tenant: tenant.into(),
            tier: tier.into(),
            kind: kind.into(),
        }
    }

    fn encode(&self) -> Result<Vec<u8>, StateError> {
        let mut k = Vec::new();
        push_component(&mut k, self.tenant.as_bytes())?;
        push_component(&mut k, self.tier.as_bytes())?;
        push_component(&mut k, self.kind.as_bytes())?;
        Ok(k)
    }

    fn decode(k: &[u8]) -> Result<UsageKey, StateError> {
        let bad = || StateError::corrupt(USAGE, k, "malformed counter key");
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| bad());
        let (tenant, rest) = split_component(k).ok_or_else(bad)?;
        let (tier, rest) = split_component(rest).ok_or_else(bad)?;
        let (kind, rest) = split_component(rest).ok_or_else(bad)?;
        if !rest.is_empty() {
            return Err(bad());
        }
        Ok(UsageKey {
            tenant: text(tenant)?,
            tier: text(tier)?,
            kind: text(kind)?,
        })
    }
}

/// Usage counters over a [`StateStore`].
#[derive(Clone)]
pub struct UsageCounters {
    store: Arc<dyn StateStore>,
}

impl std::fmt::Debug for UsageCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageCounters")
            .field("backend", &self.store.backend())
            .finish()
    }
}

impl UsageCounters {
    /// The counters kept in `store`.
    pub fn new(store: Arc<dyn StateStore>) -> UsageCounters {
        UsageCounters { store }
    }

    /// Adds `delta` atomically (saturating at the i64 bounds); returns the value right
    /// after (read after the commit: a concurrent addition may be in it too).
    pub async fn add(&self, key: &UsageKey, delta: i64) -> Result<i64, StateError> {
        self.add_all(&[(key.clone(), delta)], Batch::new()).await?;
        self.get(key).await
    }

    /// The deltas as counter additions in `batch` ([`Op::AddCounter`](super::Op): they
    /// never conflict, so the batch may ride in any other commit).
    pub fn add_to(&self, deltas: &[(UsageKey, i64)], batch: &mut Batch) -> Result<(), StateError> {
        for (key, delta) in deltas {
            batch.add_counter(USAGE, key.encode()?, *delta);
        }
        Ok(())
    }

    /// Adds each delta to its counter (saturating) and commits `with` (e.g. the footprint
    /// the deltas come from) in the same store transaction: all or nothing, one commit.
    /// Concurrent additions never conflict. `with` must not touch the counters' namespace.
    pub async fn add_all(&self, deltas: &[(UsageKey, i64)], with: Batch) -> Result<(), StateError> {
        let mut batch = with;
        self.add_to(deltas, &mut batch)?;
        self.store.commit(batch).await.map(drop)
    }

    /// The counter's value (0 if never added to).
    pub async fn get(&self, key: &UsageKey) -> Result<i64, StateError> {
        let k = key.encode()?;
        match self.store.get(USAGE, &k).await? {
            Some(v) => frame::open_i64(USAGE, &k, &v.value),
            None => Ok(0),
        }
    }

    /// Up to `limit` counters, of one tenant or all, ordered by key, after `after`.
    pub async fn list(
        &self,
        tenant: Option<&str>,
        after: Option<&UsageKey>,
        limit: usize,
    ) -> Result<Vec<(UsageKey, i64)>, StateError> {
        let mut prefix = Vec::new();
        if let Some(t) = tenant {
            push_component(&mut prefix, t.as_bytes())?;
        }
        let start = after
            .map(UsageKey::encode)
            .transpose()?
            .map(|k| key_after(&k));
        let entries = self
            .store
            .scan(USAGE, &prefix, start.as_deref(), limit)
            .await?;
        entries
            .into_iter()
            .map(|e| {
                Ok((
                    UsageKey::decode(&e.key)?,
                    frame::open_i64(USAGE, &e.key, &e.value)?,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::MemoryStore;
    use super::*;

    #[tokio::test]
    async fn concurrent_adds_are_atomic() {
        let c = UsageCounters::new(Arc::new(MemoryStore::new()));
        let key = UsageKey::new("t1", "gold", "mirrored");
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let c = c.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    for _ in 0..10 {
                        c.add(&key, 1).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(c.get(&key).await.unwrap(), 160);
        assert_eq!(c.add(&key, -60).await.unwrap(), 100);
        // Saturates rather than fails (an addition never makes its batch fail).
        assert_eq!(c.add(&key, i64::MAX).await.unwrap(), i64::MAX);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_add_alls_are_atomic_with_their_batch() {
        const SIDE: Namespace = Namespace::new("test_side");
        let store = Arc::new(MemoryStore::new());
        let c = UsageCounters::new(store.clone());
        let (a, b) = (
            UsageKey::new("t1", "gold", "vcpus"),
            UsageKey::new("t1", "gold", "servers"),
        );
        let tasks: Vec<_> = (0..8u8)
            .map(|i| {
                let (c, a, b) = (c.clone(), a.clone(), b.clone());
                tokio::spawn(async move {
                    for j in 0..10u8 {
                        let mut with = Batch::new();
                        with.put(SIDE, vec![i, j], b"footprint".to_vec());
                        c.add_all(&[(a.clone(), 2), (b.clone(), 1)], with)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            (c.get(&a).await.unwrap(), c.get(&b).await.unwrap()),
            (160, 80)
        );
        assert_eq!(store.scan(SIDE, b"", None, 1000).await.unwrap().len(), 80);
    }

    #[tokio::test]
    async fn list_by_tenant() {
        let c = UsageCounters::new(Arc::new(MemoryStore::new()));
        c.add(&UsageKey::new("a", "gold", "x"), 1).await.unwrap();
        c.add(&UsageKey::new("a", "silver", "x"), 2).await.unwrap();
        c.add(&UsageKey::new("b", "gold", "x"), 3).await.unwrap();
        let a = c.list(Some("a"), None, 10).await.unwrap();
        assert_eq!(a.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [1, 2]);
        let rest = c.list(None, Some(&a[1].0), 10).await.unwrap();
        assert_eq!(rest, [(UsageKey::new("b", "gold", "x"), 3)]);
    }
}
