//! Flavors at a recovery site where the gateway has no admin rights (a public cloud): Nova
//! lets only admins create flavors, so a primary flavor is not copied but *fitted* to the
//! smallest existing recovery flavor that holds its vCPUs, RAM and root disk, and the fit
//! is recorded here ([`FLAVOR_FITS`], one [`FlavorFit`] per primary flavor).
//!
//! Fits are many-to-one (two small primary flavors may both fit `m1.small`), so they are
//! kept apart from the ID map, which is one-to-one in both directions. References to a
//! fitted flavor (a server's `flavorRef` in a protection record) translate through the
//! fit. Changes the recovery site cannot take — a flavor's extra specs, access list or
//! description — are reported as failed journal records naming the fit, never dropped
//! silently; deleting the primary flavor drops its fit and leaves the recovery flavor.
//!
//! "Smallest" is deterministic: least RAM, then fewest vCPUs, then least root disk, then
//! name. Disabled flavors are skipped; a recovery flavor with a 0 GB root disk (sized from
//! the image, or volume-backed) only holds primary flavors that also have 0 GB.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::state::Namespace;

/// Where fits are kept: key = primary flavor ID, value = a sealed [`FlavorFit`].
pub const FLAVOR_FITS: Namespace = Namespace::new("mirror_flavor_fits");

/// What a flavor offers (or a primary flavor needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlavorSize {
    pub vcpus: u64,
    pub ram_mb: u64,
    pub disk_gb: u64,
}

impl FlavorSize {
    /// The size of a Nova flavor object (`{"vcpus": 1, "ram": 512, "disk": 1, ...}`).
    pub fn of(flavor: &Value) -> Option<FlavorSize> {
        let n = |k: &str| {
            let v = flavor.get(k)?;
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        };
        Some(FlavorSize {
            vcpus: n("vcpus")?,
            ram_mb: n("ram")?,
            disk_gb: n("disk").unwrap_or(0),
        })
    }

    /// Whether a flavor of this size holds `need`.
    pub fn holds(self, need: FlavorSize) -> bool {
        let disk = if self.disk_gb == 0 {
            need.disk_gb == 0
        } else {
            self.disk_gb >= need.disk_gb
        };
        self.vcpus >= need.vcpus && self.ram_mb >= need.ram_mb && disk
    }
}

impl std::fmt::Display for FlavorSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} vCPU, {} MiB RAM, {} GB disk",
            self.vcpus, self.ram_mb, self.disk_gb
        )
    }
}

/// One primary flavor and the recovery flavor it was fitted to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlavorFit {
    pub primary_id: String,
    pub primary: FlavorSize,
    pub recovery_id: String,
    pub recovery_name: String,
    pub recovery: FlavorSize,
}

/// The smallest enabled flavor of `candidates` (Nova flavor objects, as `GET
/// /flavors/detail` lists them) that holds `need`; `None` when none does.
pub fn smallest_fit(need: FlavorSize, candidates: &[Value]) -> Option<(&Value, FlavorSize)> {
    candidates
        .iter()
        .filter(|f| {
            !f.get("OS-FLV-DISABLED:disabled")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        })
        .filter(|f| f.get("id").and_then(Value::as_str).is_some())
        .filter_map(|f| Some((f, FlavorSize::of(f)?)))
        .filter(|(_, size)| size.holds(need))
        .min_by(|(a, x), (b, y)| {
            let name = |f: &Value| {
                f.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            (x.ram_mb, x.vcpus, x.disk_gb, name(a)).cmp(&(y.ram_mb, y.vcpus, y.disk_gb, name(b)))
        })
}

/// Why nothing fits: the need, and the largest flavor the site offers.
pub fn no_fit_reason(need: FlavorSize, candidates: &[Value]) -> String {
    let largest = candidates
        .iter()
        .filter_map(|f| {
            let name = f.get("name").and_then(Value::as_str)?;
            Some((FlavorSize::of(f)?, name))
        })
        .max_by_key(|(s, _)| (s.ram_mb, s.vcpus, s.disk_gb));
    match largest {
        Some((size, name)) => format!(
            "no flavor at the recovery site holds {need} (its largest is {name}: {size}); add one there and retry"
        ),
        None => format!("the recovery site lists no flavors to hold {need}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stock() -> Vec<Value> {
        vec![
            json!({"id": "m", "name": "m1.medium", "vcpus": 2, "ram": 4096, "disk": 40}),
            json!({"id": "t", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1}),
            json!({"id": "s", "name": "m1.small", "vcpus": 1, "ram": 2048, "disk": 20}),
            json!({"id": "big-off", "name": "x.off", "vcpus": 64, "ram": 1 << 20, "disk": 1000,
                   "OS-FLV-DISABLED:disabled": true}),
            json!({"id": "v", "name": "vol.large", "vcpus": 8, "ram": 16384, "disk": 0}),
        ]
    }

    fn need(vcpus: u64, ram_mb: u64, disk_gb: u64) -> FlavorSize {
        FlavorSize {
            vcpus,
            ram_mb,
            disk_gb,
        }
    }

    fn fit(n: FlavorSize) -> Option<&'static str> {
        let s = Box::leak(Box::new(stock()));
        smallest_fit(n, s).map(|(f, _)| f["id"].as_str().unwrap())
    }

    #[test]
    fn the_smallest_flavor_that_holds_every_dimension_wins() {
        assert_eq!(fit(need(1, 256, 1)), Some("t"));
        assert_eq!(fit(need(1, 1024, 10)), Some("s"), "RAM rules out m1.tiny");
        assert_eq!(fit(need(2, 1024, 10)), Some("m"), "vCPUs rule out m1.small");
        assert_eq!(fit(need(1, 512, 25)), Some("m"), "disk rules out m1.small");
        assert_eq!(
            fit(need(4, 8192, 0)),
            Some("v"),
            "a 0 GB flavor holds 0 GB only"
        );
        assert_eq!(fit(need(4, 8192, 10)), None, "disabled flavors are skipped");
    }

    #[test]
    fn ties_break_by_name_and_sizes_parse_from_strings() {
        let c = vec![
            json!({"id": "b", "name": "b", "vcpus": "1", "ram": "512", "disk": "1"}),
            json!({"id": "a", "name": "a", "vcpus": 1, "ram": 512, "disk": 1}),
        ];
        let (f, size) = smallest_fit(need(1, 512, 1), &c).unwrap();
        assert_eq!(f["id"], "a");
        assert_eq!(size, need(1, 512, 1));
        assert_eq!(FlavorSize::of(&c[0]), Some(need(1, 512, 1)));
    }

    #[test]
    fn no_fit_names_the_need_and_the_largest_flavor() {
        let why = no_fit_reason(need(64, 1 << 20, 100), &stock());
        assert!(why.contains("64 vCPU"), "{why}");
        assert!(why.contains("x.off"), "{why}");
    }
}
