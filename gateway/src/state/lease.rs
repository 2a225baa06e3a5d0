//! In-process leases for the embedded backends: the store's file (or memory) belongs to one
//! process, so a lease only has to arbitrate between owners inside it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{now_ms, Lease, StateError};

#[derive(Default)]
pub(crate) struct LeaseTable {
    inner: Mutex<LeaseInner>,
}

#[derive(Default)]
struct LeaseInner {
    leases: HashMap<String, Lease>,
    last_token: u64,
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

impl LeaseTable {
    /// Grants `name` to `owner` unless another owner holds an unexpired grant.
    pub(crate) fn acquire(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Lease, StateError> {
        let now = now_ms();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = inner.leases.get(name) {
            if held.owner != owner && held.expires_at_ms > now {
                return Err(StateError::LeaseHeld {
                    name: name.to_owned(),
                    owner: held.owner.clone(),
                });
            }
        }
        inner.last_token += 1;
        let lease = Lease {
            name: name.to_owned(),
            owner: owner.to_owned(),
            token: inner.last_token,
            expires_at_ms: now.saturating_add(ttl_ms(ttl)),
        };
        inner.leases.insert(name.to_owned(), lease.clone());
        Ok(lease)
    }

    /// Extends `lease` if it is still the current grant (even if it expired meanwhile).
    pub(crate) fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, StateError> {
        let now = now_ms();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match inner.leases.get_mut(&lease.name) {
            // Past its expiry but not taken over: nobody else wrote meanwhile, so the owner
            // (one process holds the file) may carry on.
            Some(held) if held.token == lease.token => {
                held.expires_at_ms = now.saturating_add(ttl_ms(ttl));
                Ok(held.clone())
            }
            _ => Err(StateError::LeaseLost {
                name: lease.name.clone(),
            }),
        }
    }

    /// Drops `lease` if it is still the current grant.
    pub(crate) fn release(&self, lease: &Lease) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner
            .leases
            .get(&lease.name)
            .is_some_and(|held| held.token == lease.token)
        {
            inner.leases.remove(&lease.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_writer() {
        let t = LeaseTable::default();
        let a = t.acquire("w", "a", Duration::from_secs(30)).unwrap();
        assert_eq!(
            t.acquire("w", "b", Duration::from_secs(30))
                .unwrap_err()
                .kind(),
            "lease_held"
        );
        let a2 = t.renew(&a, Duration::from_secs(30)).unwrap();
        assert_eq!(a2.token, a.token);
        t.release(&a);
        let b = t.acquire("w", "b", Duration::from_secs(30)).unwrap();
        assert!(b.token > a.token);
        assert_eq!(
            t.renew(&a, Duration::from_secs(1)).unwrap_err().kind(),
            "lease_lost"
        );
    }

    #[test]
    fn expired_lease_is_taken_over() {
        let t = LeaseTable::default();
        let a = t.acquire("w", "a", Duration::ZERO).unwrap();
        let b = t.acquire("w", "b", Duration::from_secs(30)).unwrap();
        assert!(b.token > a.token);
        assert!(t.renew(&a, Duration::from_secs(30)).is_err());
    }
}
