//! The persisted failover state: one opaque blob (the catalog crate defines its type) with a
//! version for compare-and-swap, so that only one writer moves the state machine.
//!
//! Namespace `failover`, key `state`, value framed (see [`frame`]).

use std::sync::Arc;

use super::{frame, Namespace, StateError, StateStore, Versioned};

/// The failover state's namespace.
pub const FAILOVER: Namespace = Namespace::new("failover");
const KEY: &[u8] = b"state";

/// Load and compare-and-swap the failover state blob.
#[derive(Clone)]
pub struct FailoverStore {
    store: Arc<dyn StateStore>,
}

impl std::fmt::Debug for FailoverStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailoverStore")
            .field("backend", &self.store.backend())
            .finish()
    }
}

impl FailoverStore {
    /// The failover state kept in `store`.
    pub fn new(store: Arc<dyn StateStore>) -> FailoverStore {
        FailoverStore { store }
    }

    /// The stored blob and its version, if any was ever saved.
    pub async fn load(&self) -> Result<Option<Versioned>, StateError> {
        match self.store.get(FAILOVER, KEY).await? {
            Some(v) => Ok(Some(Versioned {
                value: frame::open(FAILOVER, KEY, &v.value)?.to_vec(),
                version: v.version,
            })),
            None => Ok(None),
        }
    }

    /// Saves `blob` if the stored version is still `expected` (`None`: nothing saved yet);
    /// returns the new version or [`StateError::Conflict`].
    pub async fn save(&self, blob: &[u8], expected: Option<u64>) -> Result<u64, StateError> {
        let framed = frame::seal(FAILOVER, KEY, blob);
        self.store
            .put_if_version(FAILOVER, KEY, &framed, expected)
            .await
    }

    /// [`load`](Self::load), decoded from JSON.
    pub async fn load_json<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Result<Option<(T, u64)>, StateError> {
        match self.load().await? {
            Some(v) => {
                let state = serde_json::from_slice(&v.value).map_err(|e| {
                    StateError::corrupt(FAILOVER, KEY, format!("undecodable state: {e}"))
                })?;
                Ok(Some((state, v.version)))
            }
            None => Ok(None),
        }
    }

    /// [`save`](Self::save), encoded as JSON.
    pub async fn save_json<T: serde::Serialize>(
        &self,
        state: &T,
        expected: Option<u64>,
    ) -> Result<u64, StateError> {
        let blob = serde_json::to_vec(state)
            .map_err(|e| StateError::Invalid(format!("cannot encode failover state: {e}")))?;
        self.save(&blob, expected).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::MemoryStore;
    use super::*;

    #[tokio::test]
    async fn compare_and_swap() {
        let f = FailoverStore::new(Arc::new(MemoryStore::new()));
        assert_eq!(f.load().await.unwrap(), None);
        let v1 = f.save_json(&"normal", None).await.unwrap();
        assert_eq!(f.save(b"\"x\"", None).await.unwrap_err().kind(), "conflict");
        let v2 = f.save_json(&"switching", Some(v1)).await.unwrap();
        assert!(f.save_json(&"failed_over", Some(v1)).await.is_err());
        let (state, version) = f.load_json::<String>().await.unwrap().unwrap();
        assert_eq!((state.as_str(), version), ("switching", v2));
    }
}
