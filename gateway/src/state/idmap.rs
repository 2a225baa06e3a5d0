//! The ID map: (service, resource type, primary ID) → recovery ID, and the reverse.
//!
//! Keys (components length-prefixed, see [`push_component`]):
//! - `idmap_forward`: `service ‖ resource_type ‖ primary_id`
//! - `idmap_reverse`: `service ‖ resource_type ‖ recovery_id`
//! - `idmap_retired_forward` / `idmap_retired_reverse`: the same keys, for resources deleted
//!   at both sites whose mapping is kept ([`IdMap::retire`]): what outlives them at the
//!   services is still named by their IDs (a Keystone user's Nova keypairs; a Keystone
//!   project's access to private Nova flavors and Cinder volume types).
//!
//! All values are the framed JSON of the whole [`IdMapping`], checked against the key on
//! read. Both directions are written in one batch guarded by their versions, so a reader never
//! sees one direction without the other. Invariant: a recovery ID maps back to exactly one
//! primary ID per (service, resource type).
//!
//! A mapping also says where its resource was first created ([`IdMapping::origin`]): the
//! primary for everything mirrored forward, the recovery site for resources created there
//! during a failover and copied back to the primary by reverse replication. The ID a tenant
//! knows is the one at the origin site. Mappings written before `origin` existed read as
//! primary-origin. The mirror reads the map through a [`DirectedIdMap`], which names IDs by
//! the direction of the change (source site → target site) instead of by site.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{frame, key_after, push_component, Batch, Namespace, StateError, StateStore};
use crate::config::SiteName;

/// Forward direction: primary → recovery.
pub const IDMAP_FORWARD: Namespace = Namespace::new("idmap_forward");
/// Reverse direction: recovery → primary.
pub const IDMAP_REVERSE: Namespace = Namespace::new("idmap_reverse");
/// Retired mappings by primary ID.
pub const IDMAP_RETIRED_FORWARD: Namespace = Namespace::new("idmap_retired_forward");
/// Retired mappings by recovery ID.
pub const IDMAP_RETIRED_REVERSE: Namespace = Namespace::new("idmap_retired_reverse");

const MAX_CAS_ATTEMPTS: usize = 16;

/// One mapped resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    pub service: String,
    pub resource_type: String,
    pub primary_id: String,
    pub recovery_id: String,
    /// The site where the resource was first created (absent in old mappings: primary).
    #[serde(default = "primary_origin")]
    pub origin: SiteName,
}

fn primary_origin() -> SiteName {
    SiteName::Primary
}

/// Which mappings [`IdMap::list`] returns. `resource_type` narrows `service`; without a
/// service it filters instead of seeking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdMapFilter {
    pub service: Option<String>,
    pub resource_type: Option<String>,
}

fn key(service: &str, resource_type: &str, id: &str) -> Result<Vec<u8>, StateError> {
    let mut k = Vec::with_capacity(6 + service.len() + resource_type.len() + id.len());
    push_component(&mut k, service.as_bytes())?;
    push_component(&mut k, resource_type.as_bytes())?;
    push_component(&mut k, id.as_bytes())?;
    Ok(k)
}

fn decode(
    ns: Namespace,
    k: &[u8],
    value: &[u8],
    by_recovery: bool,
) -> Result<IdMapping, StateError> {
    let m: IdMapping = frame::open_json(ns, k, value)?;
    let id = if by_recovery {
        &m.recovery_id
    } else {
        &m.primary_id
    };
    if key(&m.service, &m.resource_type, id)? != k {
        return Err(StateError::corrupt(ns, k, "mapping does not match its key"));
    }
    Ok(m)
}

/// The ID map over a [`StateStore`].
#[derive(Clone)]
pub struct IdMap {
    store: Arc<dyn StateStore>,
}

impl std::fmt::Debug for IdMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdMap")
            .field("backend", &self.store.backend())
            .finish()
    }
}

impl IdMap {
    /// The ID map kept in `store`.
    pub fn new(store: Arc<dyn StateStore>) -> IdMap {
        IdMap { store }
    }

    /// The store the map is kept in.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// Records `mapping` (both directions, atomically). Idempotent; re-mapping a primary ID to
    /// a new recovery ID drops the old reverse entry. Fails with [`StateError::Conflict`] if
    /// the recovery ID is already the image of another primary ID.
    pub async fn insert(&self, mapping: &IdMapping) -> Result<(), StateError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(batch) = self.prepare_insert(mapping).await? else {
                return Ok(());
            };
            match self.store.commit(batch).await {
                Ok(_) => return Ok(()),
                Err(StateError::Conflict { .. }) if attempt < MAX_CAS_ATTEMPTS => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The batch that records `mapping` as [`IdMap::insert`] does, guarded by the versions
    /// read now (so it fails with [`StateError::Conflict`] if either entry changes before it
    /// commits), for a caller that commits it together with other changes; `None` if the
    /// mapping is already recorded.
    pub async fn prepare_insert(&self, mapping: &IdMapping) -> Result<Option<Batch>, StateError> {
        let fk = key(
            &mapping.service,
            &mapping.resource_type,
            &mapping.primary_id,
        )?;
        let rk = key(
            &mapping.service,
            &mapping.resource_type,
            &mapping.recovery_id,
        )?;
        let forward = self.store.get(IDMAP_FORWARD, &fk).await?;
        let reverse = self.store.get(IDMAP_REVERSE, &rk).await?;
        let old = forward
            .as_ref()
            .map(|v| decode(IDMAP_FORWARD, &fk, &v.value, false))
            .transpose()?;
        if let Some(r) = &reverse {
            let back = decode(IDMAP_REVERSE, &rk, &r.value, true)?;
            if back.primary_id != mapping.primary_id {
                return Err(StateError::conflict(IDMAP_REVERSE, &rk));
            }
            if old.as_ref() == Some(mapping) {
                return Ok(None);
            }
        }
        let mut batch = Batch::new();
        batch.require_version(IDMAP_FORWARD, fk.clone(), forward.map(|v| v.version));
        batch.require_version(IDMAP_REVERSE, rk.clone(), reverse.map(|v| v.version));
        if let Some(old) = old.filter(|o| o.recovery_id != mapping.recovery_id) {
            batch.delete(
                IDMAP_REVERSE,
                key(&old.service, &old.resource_type, &old.recovery_id)?,
            );
        }
        batch.put(
            IDMAP_FORWARD,
            fk.clone(),
            frame::seal_json(IDMAP_FORWARD, &fk, mapping)?,
        );
        batch.put(
            IDMAP_REVERSE,
            rk.clone(),
            frame::seal_json(IDMAP_REVERSE, &rk, mapping)?,
        );
        Ok(Some(batch))
    }

    /// The recovery ID of a primary resource.
    pub async fn recovery_id(
        &self,
        service: &str,
        resource_type: &str,
        primary_id: &str,
    ) -> Result<Option<String>, StateError> {
        Ok(self
            .get_by_primary(service, resource_type, primary_id)
            .await?
            .map(|m| m.recovery_id))
    }

    /// The primary ID of a recovery resource.
    pub async fn primary_id(
        &self,
        service: &str,
        resource_type: &str,
        recovery_id: &str,
    ) -> Result<Option<String>, StateError> {
        Ok(self
            .get_by_recovery(service, resource_type, recovery_id)
            .await?
            .map(|m| m.primary_id))
    }

    /// The whole mapping of a primary resource.
    pub async fn get_by_primary(
        &self,
        service: &str,
        resource_type: &str,
        primary_id: &str,
    ) -> Result<Option<IdMapping>, StateError> {
        self.read(IDMAP_FORWARD, service, resource_type, primary_id, false)
            .await
    }

    /// The whole mapping of a recovery resource.
    pub async fn get_by_recovery(
        &self,
        service: &str,
        resource_type: &str,
        recovery_id: &str,
    ) -> Result<Option<IdMapping>, StateError> {
        self.read(IDMAP_REVERSE, service, resource_type, recovery_id, true)
            .await
    }

    /// The mappings of many resources at once, from one snapshot, in the order asked:
    /// `(service, resource_type, id)` where `id` is a recovery ID when `by_recovery`, else a
    /// primary ID.
    pub async fn get_many(
        &self,
        by_recovery: bool,
        resources: &[(String, String, String)],
    ) -> Result<Vec<Option<IdMapping>>, StateError> {
        let ns = if by_recovery {
            IDMAP_REVERSE
        } else {
            IDMAP_FORWARD
        };
        let keys = resources
            .iter()
            .map(|(service, rt, id)| key(service, rt, id))
            .collect::<Result<Vec<_>, _>>()?;
        let values = self.store.get_many(ns, &keys).await?;
        keys.iter()
            .zip(values)
            .map(|(k, v)| v.map(|v| decode(ns, k, &v.value, by_recovery)).transpose())
            .collect()
    }

    /// Removes the mapping of a primary resource (both directions); returns what was removed.
    pub async fn remove(
        &self,
        service: &str,
        resource_type: &str,
        primary_id: &str,
    ) -> Result<Option<IdMapping>, StateError> {
        self.take(service, resource_type, primary_id, false).await
    }

    /// Removes the mapping of a primary resource deleted at both sites, as
    /// [`IdMap::remove`], and keeps it as retired in the same commit: translating a reference
    /// to a deleted resource still gives its copy's ID ([`IdMap::retired_by_primary`]).
    pub async fn retire(
        &self,
        service: &str,
        resource_type: &str,
        primary_id: &str,
    ) -> Result<Option<IdMapping>, StateError> {
        self.take(service, resource_type, primary_id, true).await
    }

    async fn take(
        &self,
        service: &str,
        resource_type: &str,
        primary_id: &str,
        retire: bool,
    ) -> Result<Option<IdMapping>, StateError> {
        let fk = key(service, resource_type, primary_id)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(forward) = self.store.get(IDMAP_FORWARD, &fk).await? else {
                return Ok(None);
            };
            let old = decode(IDMAP_FORWARD, &fk, &forward.value, false)?;
            let rk = key(service, resource_type, &old.recovery_id)?;
            let mut batch = Batch::new();
            batch.require_version(IDMAP_FORWARD, fk.clone(), Some(forward.version));
            batch.delete(IDMAP_FORWARD, fk.clone());
            batch.delete(IDMAP_REVERSE, rk.clone());
            if retire {
                let sealed = |ns, k: &[u8]| frame::seal_json(ns, k, &old);
                batch.put(
                    IDMAP_RETIRED_FORWARD,
                    fk.clone(),
                    sealed(IDMAP_RETIRED_FORWARD, &fk)?,
                );
                batch.put(
                    IDMAP_RETIRED_REVERSE,
                    rk.clone(),
                    sealed(IDMAP_RETIRED_REVERSE, &rk)?,
                );
            }
            match self.store.commit(batch).await {
                Ok(_) => return Ok(Some(old)),
                Err(StateError::Conflict { .. }) if attempt < MAX_CAS_ATTEMPTS => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The retired mapping of a deleted primary resource.
    pub async fn retired_by_primary(
        &self,
        service: &str,
        resource_type: &str,
        primary_id: &str,
    ) -> Result<Option<IdMapping>, StateError> {
        self.read(
            IDMAP_RETIRED_FORWARD,
            service,
            resource_type,
            primary_id,
            false,
        )
        .await
    }

    /// The retired mapping of a deleted recovery resource.
    pub async fn retired_by_recovery(
        &self,
        service: &str,
        resource_type: &str,
        recovery_id: &str,
    ) -> Result<Option<IdMapping>, StateError> {
        self.read(
            IDMAP_RETIRED_REVERSE,
            service,
            resource_type,
            recovery_id,
            true,
        )
        .await
    }

    async fn read(
        &self,
        ns: Namespace,
        service: &str,
        resource_type: &str,
        id: &str,
        by_recovery: bool,
    ) -> Result<Option<IdMapping>, StateError> {
        let k = key(service, resource_type, id)?;
        match self.store.get(ns, &k).await? {
            Some(v) => Ok(Some(decode(ns, &k, &v.value, by_recovery)?)),
            None => Ok(None),
        }
    }

    /// Removes the mapping of a recovery resource (both directions); returns what was
    /// removed.
    pub async fn remove_by_recovery(
        &self,
        service: &str,
        resource_type: &str,
        recovery_id: &str,
    ) -> Result<Option<IdMapping>, StateError> {
        self.take_by_recovery(service, resource_type, recovery_id, false)
            .await
    }

    /// [`IdMap::retire`] by the recovery ID.
    pub async fn retire_by_recovery(
        &self,
        service: &str,
        resource_type: &str,
        recovery_id: &str,
    ) -> Result<Option<IdMapping>, StateError> {
        self.take_by_recovery(service, resource_type, recovery_id, true)
            .await
    }

    async fn take_by_recovery(
        &self,
        service: &str,
        resource_type: &str,
        recovery_id: &str,
        retire: bool,
    ) -> Result<Option<IdMapping>, StateError> {
        match self
            .get_by_recovery(service, resource_type, recovery_id)
            .await?
        {
            // Removing by the primary ID deletes both entries under the forward entry's
            // version, so a concurrent re-map is not lost.
            Some(m) => {
                let removed = self
                    .take(service, resource_type, &m.primary_id, retire)
                    .await?;
                Ok(removed.filter(|r| r.recovery_id == recovery_id))
            }
            None => Ok(None),
        }
    }

    /// Up to `limit` mappings matching `filter`, ordered by (service, resource type, primary
    /// ID), starting after `after` (the last mapping of the previous page).
    pub async fn list(
        &self,
        filter: &IdMapFilter,
        after: Option<&IdMapping>,
        limit: usize,
    ) -> Result<Vec<IdMapping>, StateError> {
        let mut prefix = Vec::new();
        if let Some(service) = &filter.service {
            push_component(&mut prefix, service.as_bytes())?;
            if let Some(rt) = &filter.resource_type {
                push_component(&mut prefix, rt.as_bytes())?;
            }
        }
        let mut start = match after {
            Some(a) => Some(key_after(&key(
                &a.service,
                &a.resource_type,
                &a.primary_id,
            )?)),
            None => None,
        };
        let mut out = Vec::new();
        while out.len() < limit {
            let want = limit - out.len();
            let page = self
                .store
                .scan(IDMAP_FORWARD, &prefix, start.as_deref(), want.max(64))
                .await?;
            let exhausted = page.len() < want.max(64);
            for entry in page {
                start = Some(key_after(&entry.key));
                let m = decode(IDMAP_FORWARD, &entry.key, &entry.value, false)?;
                let type_ok = filter
                    .resource_type
                    .as_ref()
                    .is_none_or(|rt| *rt == m.resource_type);
                if type_ok {
                    out.push(m);
                    if out.len() == limit {
                        break;
                    }
                }
            }
            if exhausted {
                break;
            }
        }
        Ok(out)
    }
}

/// The ID map seen from one mirror direction: IDs at the *source* site (where a change was
/// made) and at the *target* site (where the mirror applies it). From the primary it is the
/// map as stored (primary → recovery); from the recovery site (reverse replication, after a
/// failover) the roles swap, so the applier is written once for both directions. New
/// mappings record the source site as their origin.
#[derive(Clone, Debug)]
pub struct DirectedIdMap {
    map: IdMap,
    source: SiteName,
}

impl DirectedIdMap {
    /// `map` seen from changes made at `source`.
    pub fn new(map: IdMap, source: SiteName) -> DirectedIdMap {
        DirectedIdMap { map, source }
    }

    /// The site changes come from.
    pub fn source(&self) -> SiteName {
        self.source
    }

    /// The mapping that records `source_id` (at the source site) ↔ `target_id` (at the
    /// target site) for a resource first created at the source.
    pub fn mapping(
        &self,
        service: &str,
        resource_type: &str,
        source_id: &str,
        target_id: &str,
    ) -> IdMapping {
        let (primary_id, recovery_id) = match self.source {
            SiteName::Primary => (source_id, target_id),
            SiteName::Recovery => (target_id, source_id),
        };
        IdMapping {
            service: service.into(),
            resource_type: resource_type.into(),
            primary_id: primary_id.into(),
            recovery_id: recovery_id.into(),
            origin: self.source,
        }
    }

    /// The target site's ID of a source resource.
    pub async fn target_id(
        &self,
        service: &str,
        resource_type: &str,
        source_id: &str,
    ) -> Result<Option<String>, StateError> {
        match self.source {
            SiteName::Primary => {
                self.map
                    .recovery_id(service, resource_type, source_id)
                    .await
            }
            SiteName::Recovery => self.map.primary_id(service, resource_type, source_id).await,
        }
    }

    /// The source site's ID of a target resource.
    pub async fn source_id(
        &self,
        service: &str,
        resource_type: &str,
        target_id: &str,
    ) -> Result<Option<String>, StateError> {
        match self.source {
            SiteName::Primary => self.map.primary_id(service, resource_type, target_id).await,
            SiteName::Recovery => {
                self.map
                    .recovery_id(service, resource_type, target_id)
                    .await
            }
        }
    }

    /// The batch that records that the source resource `source_id` has the copy `target_id`
    /// (see [`IdMap::prepare_insert`]).
    pub async fn prepare_insert(
        &self,
        service: &str,
        resource_type: &str,
        source_id: &str,
        target_id: &str,
    ) -> Result<Option<Batch>, StateError> {
        self.map
            .prepare_insert(&self.mapping(service, resource_type, source_id, target_id))
            .await
    }

    /// Records that the source resource `source_id` has the copy `target_id`.
    pub async fn insert(
        &self,
        service: &str,
        resource_type: &str,
        source_id: &str,
        target_id: &str,
    ) -> Result<(), StateError> {
        self.map
            .insert(&self.mapping(service, resource_type, source_id, target_id))
            .await
    }

    /// Removes the mapping of a source resource (both directions).
    pub async fn remove(
        &self,
        service: &str,
        resource_type: &str,
        source_id: &str,
    ) -> Result<Option<IdMapping>, StateError> {
        self.take(service, resource_type, source_id, false).await
    }

    /// Removes the mapping of a source resource deleted at both sites and keeps it as retired
    /// ([`IdMap::retire`]).
    pub async fn retire(
        &self,
        service: &str,
        resource_type: &str,
        source_id: &str,
    ) -> Result<Option<IdMapping>, StateError> {
        self.take(service, resource_type, source_id, true).await
    }

    async fn take(
        &self,
        service: &str,
        resource_type: &str,
        source_id: &str,
        retire: bool,
    ) -> Result<Option<IdMapping>, StateError> {
        match self.source {
            SiteName::Primary => {
                self.map
                    .take(service, resource_type, source_id, retire)
                    .await
            }
            SiteName::Recovery => {
                self.map
                    .take_by_recovery(service, resource_type, source_id, retire)
                    .await
            }
        }
    }

    /// The target site's ID of a retired source resource (deleted at both sites).
    pub async fn retired_target_id(
        &self,
        service: &str,
        resource_type: &str,
        source_id: &str,
    ) -> Result<Option<String>, StateError> {
        Ok(match self.source {
            SiteName::Primary => self
                .map
                .retired_by_primary(service, resource_type, source_id)
                .await?
                .map(|m| m.recovery_id),
            SiteName::Recovery => self
                .map
                .retired_by_recovery(service, resource_type, source_id)
                .await?
                .map(|m| m.primary_id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::MemoryStore;
    use super::*;

    fn m(service: &str, rt: &str, p: &str, r: &str) -> IdMapping {
        IdMapping {
            service: service.into(),
            resource_type: rt.into(),
            primary_id: p.into(),
            recovery_id: r.into(),
            origin: SiteName::Primary,
        }
    }

    #[tokio::test]
    async fn reversed_view_translates_recovery_ids_and_records_recovery_origin() {
        let map = IdMap::new(Arc::new(MemoryStore::new()));
        let forward = DirectedIdMap::new(map.clone(), SiteName::Primary);
        let reverse = DirectedIdMap::new(map.clone(), SiteName::Recovery);
        // A primary-origin network, mirrored forward.
        forward
            .insert("network", "network", "p1", "r1")
            .await
            .unwrap();
        assert_eq!(
            reverse.target_id("network", "network", "r1").await.unwrap(),
            Some("p1".into())
        );
        assert_eq!(
            reverse.source_id("network", "network", "p1").await.unwrap(),
            Some("r1".into())
        );
        assert_eq!(
            reverse.target_id("network", "network", "p1").await.unwrap(),
            None
        );
        // A network created at the recovery site during a failover, copied to the primary.
        reverse
            .insert("network", "network", "r2", "p2")
            .await
            .unwrap();
        let got = map
            .get_by_recovery("network", "network", "r2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            IdMapping {
                origin: SiteName::Recovery,
                ..m("network", "network", "p2", "r2")
            }
        );
        assert_eq!(
            map.get_by_primary("network", "network", "p2")
                .await
                .unwrap(),
            Some(got.clone())
        );
        assert_eq!(
            forward.target_id("network", "network", "p2").await.unwrap(),
            Some("r2".into())
        );
        assert_eq!(
            map.get_by_primary("network", "network", "p1")
                .await
                .unwrap()
                .map(|m| m.origin),
            Some(SiteName::Primary)
        );
        // A delete at the recovery site removes by the recovery ID, both directions.
        let removed = reverse.remove("network", "network", "r1").await.unwrap();
        assert_eq!(removed, Some(m("network", "network", "p1", "r1")));
        assert_eq!(
            map.recovery_id("network", "network", "p1").await.unwrap(),
            None
        );
        assert_eq!(
            reverse.remove("network", "network", "r1").await.unwrap(),
            None
        );
    }

    #[test]
    fn mappings_without_origin_are_primary_origin() {
        let old = br#"{"service":"network","resource_type":"network","primary_id":"p","recovery_id":"r"}"#;
        let got: IdMapping = serde_json::from_slice(old).unwrap();
        assert_eq!(got, m("network", "network", "p", "r"));
        let new = serde_json::to_value(IdMapping {
            origin: SiteName::Recovery,
            ..got
        })
        .unwrap();
        assert_eq!(new["origin"], "recovery");
    }

    #[tokio::test]
    async fn retired_mappings_outlive_the_live_ones_in_either_direction() {
        let map = IdMap::new(Arc::new(MemoryStore::new()));
        let forward = DirectedIdMap::new(map.clone(), SiteName::Primary);
        let reverse = DirectedIdMap::new(map.clone(), SiteName::Recovery);
        forward
            .insert("identity", "user", "p1", "r1")
            .await
            .unwrap();
        forward
            .insert("identity", "user", "p2", "r2")
            .await
            .unwrap();
        assert_eq!(
            forward
                .retired_target_id("identity", "user", "p1")
                .await
                .unwrap(),
            None,
            "a live mapping is not retired"
        );
        // Retired from the primary (a forward delete) and from the recovery site (reverse).
        let gone = forward.retire("identity", "user", "p1").await.unwrap();
        assert_eq!(gone, Some(m("identity", "user", "p1", "r1")));
        let gone = reverse.retire("identity", "user", "r2").await.unwrap();
        assert_eq!(gone, Some(m("identity", "user", "p2", "r2")));
        for (p, r) in [("p1", "r1"), ("p2", "r2")] {
            assert_eq!(map.recovery_id("identity", "user", p).await.unwrap(), None);
            assert_eq!(map.primary_id("identity", "user", r).await.unwrap(), None);
            assert_eq!(
                forward
                    .retired_target_id("identity", "user", p)
                    .await
                    .unwrap(),
                Some(r.to_string())
            );
            assert_eq!(
                reverse
                    .retired_target_id("identity", "user", r)
                    .await
                    .unwrap(),
                Some(p.to_string())
            );
        }
        let live = map.list(&IdMapFilter::default(), None, 10).await.unwrap();
        assert!(live.is_empty(), "retired mappings are not listed: {live:?}");
        // Retiring what is not mapped changes nothing; a plain remove retires nothing.
        assert_eq!(
            forward.retire("identity", "user", "p1").await.unwrap(),
            None
        );
        forward
            .insert("identity", "user", "p3", "r3")
            .await
            .unwrap();
        forward.remove("identity", "user", "p3").await.unwrap();
        assert_eq!(
            forward
                .retired_target_id("identity", "user", "p3")
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn both_directions() {
        let map = IdMap::new(Arc::new(MemoryStore::new()));
        map.insert(&m("network", "network", "p1", "r1"))
            .await
            .unwrap();
        map.insert(&m("network", "network", "p1", "r1"))
            .await
            .unwrap();
        assert_eq!(
            map.recovery_id("network", "network", "p1")
                .await
                .unwrap()
                .as_deref(),
            Some("r1")
        );
        assert_eq!(
            map.primary_id("network", "network", "r1")
                .await
                .unwrap()
                .as_deref(),
            Some("p1")
        );
        assert_eq!(
            map.recovery_id("network", "subnet", "p1").await.unwrap(),
            None
        );
        // Another primary cannot claim r1.
        let err = map
            .insert(&m("network", "network", "p2", "r1"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "conflict");
        // Re-mapping p1 moves the reverse entry.
        map.insert(&m("network", "network", "p1", "r2"))
            .await
            .unwrap();
        assert_eq!(
            map.primary_id("network", "network", "r1").await.unwrap(),
            None
        );
        assert_eq!(
            map.primary_id("network", "network", "r2")
                .await
                .unwrap()
                .as_deref(),
            Some("p1")
        );
        let removed = map.remove("network", "network", "p1").await.unwrap();
        assert_eq!(removed, Some(m("network", "network", "p1", "r2")));
        assert_eq!(
            map.primary_id("network", "network", "r2").await.unwrap(),
            None
        );
        assert_eq!(map.remove("network", "network", "p1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn list_filters_and_pages() {
        let map = IdMap::new(Arc::new(MemoryStore::new()));
        for (s, rt, p) in [
            ("compute", "flavor", "f1"),
            ("network", "network", "n1"),
            ("network", "network", "n2"),
            ("network", "subnet", "s1"),
            ("network", "network", "n3"),
        ] {
            map.insert(&m(s, rt, p, &format!("r-{p}"))).await.unwrap();
        }
        let all = map.list(&IdMapFilter::default(), None, 100).await.unwrap();
        assert_eq!(all.len(), 5);
        let f = IdMapFilter {
            service: Some("network".into()),
            resource_type: Some("network".into()),
        };
        let p1 = map.list(&f, None, 2).await.unwrap();
        let p2 = map.list(&f, p1.last(), 2).await.unwrap();
        let ids: Vec<_> = p1
            .iter()
            .chain(&p2)
            .map(|m| m.primary_id.as_str())
            .collect();
        assert_eq!(ids, ["n1", "n2", "n3"]);
        let subnets = IdMapFilter {
            service: None,
            resource_type: Some("subnet".into()),
        };
        assert_eq!(map.list(&subnets, None, 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn corrupt_entry_is_reported() {
        let store = Arc::new(MemoryStore::new());
        let map = IdMap::new(store.clone());
        map.insert(&m("image", "image", "p", "r")).await.unwrap();
        let k = key("image", "image", "p").unwrap();
        let mut v = store.get(IDMAP_FORWARD, &k).await.unwrap().unwrap().value;
        let last = v.len() - 2;
        v[last] ^= 0x20;
        store.put(IDMAP_FORWARD, &k, &v).await.unwrap();
        let err = map.recovery_id("image", "image", "p").await.unwrap_err();
        assert_eq!(err.kind(), "corrupt");
    }
}
