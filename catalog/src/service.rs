//! The OpenStack services the gateway fronts, and how Keystone catalog `type`s map to them.
//!
//! Matching follows the OpenStack service-types authority
//! (<https://service-types.openstack.org/service-types.json>): each service has one
//! official type and a list of historical aliases that real catalogs still use.

use serde::{Deserialize, Serialize};

/// A service the gateway can front.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// Keystone.
    Identity,
    /// Nova.
    Compute,
    /// Neutron.
    Network,
    /// Cinder.
    BlockStorage,
    /// Glance.
    Image,
}

impl ServiceKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ServiceKind; 5] = [
        ServiceKind::Identity,
        ServiceKind::Compute,
        ServiceKind::Network,
        ServiceKind::BlockStorage,
        ServiceKind::Image,
    ];

    /// The gateway's short name: `identity`, `compute`, `network`, `volume`, `image`
    /// (configuration keys and metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Identity => "identity",
            ServiceKind::Compute => "compute",
            ServiceKind::Network => "network",
            ServiceKind::BlockStorage => "volume",
            ServiceKind::Image => "image",
        }
    }

    /// The official service type of the service-types authority.
    pub fn official_type(self) -> &'static str {
        match self {
            ServiceKind::Identity => "identity",
            ServiceKind::Compute => "compute",
            ServiceKind::Network => "network",
            ServiceKind::BlockStorage => "block-storage",
            ServiceKind::Image => "image",
        }
    }

    /// Historical aliases of the official type, as the authority lists them.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            ServiceKind::BlockStorage => &["volumev3", "volumev2", "volume", "block-store"],
            ServiceKind::Identity
            | ServiceKind::Compute
            | ServiceKind::Network
            | ServiceKind::Image => &[],
        }
    }
}

impl std::fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a Keystone catalog entry's `type`, if the gateway fronts that service.
///
/// Accepts the official type and its aliases, ASCII case-insensitively, with `_` taken as
/// `-` (as `os-service-types` does). Anything else (`placement`, `object-store`, ...) is
/// `None`.
pub fn service_kind(catalog_type: &str) -> Option<ServiceKind> {
    ServiceKind::ALL.into_iter().find(|kind| {
        type_eq(catalog_type, kind.official_type())
            || kind
                .aliases()
                .iter()
                .any(|alias| type_eq(catalog_type, alias))
    })
}

/// Compares a catalog type with a canonical (lowercase, hyphenated) one.
fn type_eq(given: &str, canonical: &str) -> bool {
    given.len() == canonical.len()
        && given.bytes().zip(canonical.bytes()).all(|(g, c)| {
            let g = if g == b'_' {
                b'-'
            } else {
                g.to_ascii_lowercase()
            };
            g == c
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_types_and_aliases() {
        let table = [
            ("identity", Some(ServiceKind::Identity)),
            ("compute", Some(ServiceKind::Compute)),
            ("network", Some(ServiceKind::Network)),
            ("image", Some(ServiceKind::Image)),
            ("block-storage", Some(ServiceKind::BlockStorage)),
            ("volumev3", Some(ServiceKind::BlockStorage)),
            ("volumev2", Some(ServiceKind::BlockStorage)),
            ("volume", Some(ServiceKind::BlockStorage)),
            ("block-store", Some(ServiceKind::BlockStorage)),
            ("block_storage", Some(ServiceKind::BlockStorage)),
            ("Block-Storage", Some(ServiceKind::BlockStorage)),
            ("COMPUTE", Some(ServiceKind::Compute)),
            ("placement", None),
            ("object-store", None),
            ("volumev4", None),
            ("", None),
            ("computé", None),
        ];
        for (given, want) in table {
            assert_eq!(service_kind(given), want, "{given:?}");
        }
    }

    #[test]
    fn names() {
        let names: Vec<_> = ServiceKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, ["identity", "compute", "network", "volume", "image"]);
        for kind in ServiceKind::ALL {
            assert_eq!(service_kind(kind.official_type()), Some(kind));
        }
    }
}
