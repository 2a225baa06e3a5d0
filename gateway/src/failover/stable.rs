//! Stable IDs in the request path: fetches from the ID map the mappings one request and its
//! response need, so that the pure translations of [`super::ids`] can run.
//!
//! Translation is *armed* once the gateway has routed to the recovery site (at the flip, or
//! at start-up when the persisted failover state says it has): before the first failover
//! every tenant ID is a primary ID at the primary, and the request path skips all of this
//! with one atomic load. It stays armed after failback, because resources created during
//! the failover are known to their tenants by their recovery IDs.
//!
//! Which ID a tenant knows is decided by the mapping's origin ([`mapping_origin`]): the ID at
//! the site where the resource was created. With the recovery site active, a primary-origin
//! resource's primary ID is translated to its recovery ID in requests and back in responses;
//! with the primary active (after failback), a recovery-origin resource's recovery ID is
//! translated to its primary copy's ID, and back.
//!
//! A flavor fitted to an existing recovery flavor (recovery site without admin rights,
//! [`crate::mirror::flavor_fit`]) is not in the one-to-one ID map: with the recovery site
//! active, its primary ID in a request (`flavorRef`, `/flavors/{id}`) becomes the fitted
//! flavor's ID. Responses keep the recovery flavor's ID, since several primary flavors may
//! share one fit.

use std::sync::atomic::{AtomicBool, Ordering};

use super::ids::{CollectingLookup, Direction, StaticIdLookup};
use crate::config::SiteName;
use crate::mirror::flavor_fit::{FlavorFit, FLAVOR_FITS};
use crate::state::{frame, IdMap, IdMapping, StateError};

/// The site where a mapped resource was created (the ID its tenant knows is the one there).
pub fn mapping_origin(mapping: &IdMapping) -> SiteName {
    mapping.origin
}

/// The request path's access to stable IDs. One per gateway.
#[derive(Debug)]
pub struct StableIds {
    idmap: IdMap,
    armed: AtomicBool,
}

impl StableIds {
    pub fn new(idmap: IdMap) -> StableIds {
        StableIds {
            idmap,
            armed: AtomicBool::new(false),
        }
    }

    /// From now on, requests and responses are translated.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::Release);
    }

    /// Whether requests and responses are translated.
    pub fn armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    /// Answers what a [`CollectingLookup`] was asked, at `active`: the mappings whose
    /// origin is the other site (only those have two IDs a tenant could mix up).
    pub async fn resolve(
        &self,
        active: SiteName,
        asked: CollectingLookup,
    ) -> Result<StaticIdLookup, StateError> {
        let mut lookup = StaticIdLookup::new();
        // The tenant's ID is at the origin site, the site's ID at `active`: asked by primary
        // ID are requests at the recovery site and responses at the primary.
        let (by_primary, by_recovery): (Vec<_>, Vec<_>) = asked
            .into_wanted()
            .into_iter()
            .partition(|(direction, ..)| {
                matches!(
                    (direction, active),
                    (Direction::ToSite, SiteName::Recovery)
                        | (Direction::ToTenant, SiteName::Primary)
                )
            });
        for (by_recovery_id, wanted) in [(false, by_primary), (true, by_recovery)] {
            if wanted.is_empty() {
                continue;
            }
            let keys: Vec<(String, String, String)> = wanted
                .iter()
                .map(|(_, service, rt, id)| (service.clone(), rt.clone(), id.clone()))
                .collect();
            let found = self.idmap.get_many(by_recovery_id, &keys).await?;
            let mut unmapped_flavors = Vec::new();
            for ((direction, service, rt, id), mapping) in wanted.iter().zip(found) {
                let Some(m) = mapping else {
                    // Only requests at the recovery site: at the primary a flavor's ID is
                    // its own.
                    if rt == "flavor"
                        && *direction == Direction::ToSite
                        && active == SiteName::Recovery
                    {
                        unmapped_flavors.push((*direction, service, rt, id));
                    }
                    continue;
                };
                if mapping_origin(&m) == active || m.primary_id == m.recovery_id {
                    continue;
                }
                let to = if by_recovery_id {
                    &m.primary_id
                } else {
                    &m.recovery_id
                };
                lookup.insert_one(*direction, service, rt, id, to);
            }
            if !unmapped_flavors.is_empty() {
                let keys: Vec<Vec<u8>> = unmapped_flavors
                    .iter()
                    .map(|(.., id)| id.as_bytes().to_vec())
                    .collect();
                let fits = self.idmap.store().get_many(FLAVOR_FITS, &keys).await?;
                for ((direction, service, rt, id), (key, fit)) in
                    unmapped_flavors.into_iter().zip(keys.iter().zip(fits))
                {
                    if let Some(v) = fit {
                        let fit: FlavorFit = frame::open_json(FLAVOR_FITS, key, &v.value)?;
                        lookup.insert_one(direction, service, rt, id, &fit.recovery_id);
                    }
                }
            }
        }
        Ok(lookup)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::ids::{translate_request_path, translate_response_ids};
    use super::*;
    use crate::operation::Service;
    use crate::state::MemoryStore;

    #[tokio::test]
    async fn recovery_active_translates_primary_origin_ids() {
        let idmap = IdMap::new(Arc::new(MemoryStore::new()));
        idmap
            .insert(&IdMapping {
                service: "network".into(),
                resource_type: "network".into(),
                primary_id: "p1".into(),
                recovery_id: "r1".into(),
                origin: SiteName::Primary,
            })
            .await
            .unwrap();
        let stable = StableIds::new(idmap);
        assert!(!stable.armed());
        stable.arm();

        let asked = CollectingLookup::new();
        translate_request_path(Service::Network, "/v2.0/networks/p1", &asked);
        let mut body = serde_json::json!({"network": {"id": "r1"}});
        translate_response_ids(&mut body, None, &asked);
        let l = stable.resolve(SiteName::Recovery, asked).await.unwrap();
        assert_eq!(
            translate_request_path(Service::Network, "/v2.0/networks/p1", &l),
            "/v2.0/networks/r1"
        );
        translate_response_ids(&mut body, None, &l);
        assert_eq!(body["network"]["id"], "p1");

        // With the primary active, a primary-origin resource needs nothing.
        let asked = CollectingLookup::new();
        translate_request_path(Service::Network, "/v2.0/networks/p1", &asked);
        let l = stable.resolve(SiteName::Primary, asked).await.unwrap();
        assert!(l.is_empty());
    }

    #[tokio::test]
    async fn a_fitted_flavor_translates_in_requests_at_the_recovery_site_only() {
        let store: Arc<dyn crate::state::StateStore> = Arc::new(MemoryStore::new());
        let fit = FlavorFit {
            primary_id: "pf".into(),
            primary: crate::mirror::flavor_fit::FlavorSize {
                vcpus: 1,
                ram_mb: 256,
                disk_gb: 1,
            },
            recovery_id: "small".into(),
            recovery_name: "m1.small".into(),
            recovery: crate::mirror::flavor_fit::FlavorSize {
                vcpus: 1,
                ram_mb: 2048,
                disk_gb: 20,
            },
        };
        let v = frame::seal_json(FLAVOR_FITS, b"pf", &fit).unwrap();
        store.put(FLAVOR_FITS, b"pf", &v).await.unwrap();
        let stable = StableIds::new(IdMap::new(store));
        stable.arm();

        let asked = CollectingLookup::new();
        translate_request_path(Service::Compute, "/v2.1/flavors/pf", &asked);
        let l = stable.resolve(SiteName::Recovery, asked).await.unwrap();
        assert_eq!(
            translate_request_path(Service::Compute, "/v2.1/flavors/pf", &l),
            "/v2.1/flavors/small"
        );

        // At the primary the flavor's ID is its own, in requests and in responses.
        let asked = CollectingLookup::new();
        translate_request_path(Service::Compute, "/v2.1/flavors/pf", &asked);
        let mut body = serde_json::json!({"flavor": {"id": "pf"}});
        translate_response_ids(&mut body, None, &asked);
        let l = stable.resolve(SiteName::Primary, asked).await.unwrap();
        assert!(l.is_empty());
    }
}
