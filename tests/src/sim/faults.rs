//! Fault injection: per-service or whole-site error statuses, added latency, connection
//! resets and lost answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Service;

/// What a fault does to a matching request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this HTTP status (in the service's native error format) instead of handling.
    Status(u16),
    /// Delay the request by this many milliseconds, then handle it (or apply another fault).
    LatencyMs(u64),
    /// Close the connection without any response.
    Reset,
    /// Handle the request (a change is made), then close the connection without the
    /// response: the answer is lost on its way back.
    LoseAnswer,
    /// Handle the request, and gzip a JSON answer when the request accepts gzip, as a
    /// compressing load balancer in front of the service would (the services themselves
    /// never compress).
    Gzip,
}

/// One fault rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    /// Rule id, assigned by [`Faults::add`].
    #[serde(default)]
    pub id: u64,
    /// The service it applies to; `None` for every service of the site.
    #[serde(default)]
    pub service: Option<Service>,
    pub kind: FaultKind,
    /// How many more requests it applies to; `None` until cleared.
    #[serde(default)]
    pub remaining: Option<u32>,
}

/// The outcome of the fault rules for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultOutcome {
    pub delay: Duration,
    /// `Some(status)` or a reset, replacing the normal handling.
    pub action: Option<FaultKind>,
}

/// The fault rules of a site; cheap to clone, shared with the listeners.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<FaultTable>>,
}

#[derive(Debug, Default)]
struct FaultTable {
    next_id: u64,
    rules: Vec<Fault>,
}

impl Faults {
    /// Adds a rule and returns its id.
    pub fn add(&self, service: Option<Service>, kind: FaultKind, times: Option<u32>) -> u64 {
        let mut t = self.lock();
        t.next_id += 1;
        let id = t.next_id;
        t.rules.push(Fault {
            id,
            service,
            kind,
            remaining: times,
        });
        id
    }

    /// Answer `status` for the next `times` requests (`None`: until cleared).
    pub fn fail(&self, service: Option<Service>, status: u16, times: Option<u32>) -> u64 {
        self.add(service, FaultKind::Status(status), times)
    }

    /// Add `delay` to the next `times` requests (`None`: until cleared).
    pub fn latency(&self, service: Option<Service>, delay: Duration, times: Option<u32>) -> u64 {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.add(service, FaultKind::LatencyMs(ms), times)
    }

    /// Reset the connection of the next `times` requests (`None`: until cleared).
    pub fn reset(&self, service: Option<Service>, times: Option<u32>) -> u64 {
        self.add(service, FaultKind::Reset, times)
    }

    /// Handle the next `times` requests, then reset their connections without answering
    /// (`None`: until cleared).
    pub fn lose_answer(&self, service: Option<Service>, times: Option<u32>) -> u64 {
        self.add(service, FaultKind::LoseAnswer, times)
    }

    /// Gzip the JSON answers of the next `times` requests that accept gzip (`None`: until
    /// cleared).
    pub fn gzip(&self, service: Option<Service>, times: Option<u32>) -> u64 {
        self.add(service, FaultKind::Gzip, times)
    }

    /// Removes one rule; false if it did not exist.
    pub fn remove(&self, id: u64) -> bool {
        let mut t = self.lock();
        let before = t.rules.len();
        t.rules.retain(|r| r.id != id);
        t.rules.len() != before
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// The active rules.
    pub fn list(&self) -> Vec<Fault> {
        self.lock().rules.clone()
    }

    /// Consumes the rules that match one request of `service`: every matching latency adds up,
    /// and the first matching status or reset rule replaces the handling.
    pub fn take(&self, service: Service) -> FaultOutcome {
        let mut t = self.lock();
        let mut outcome = FaultOutcome::default();
        for rule in t.rules.iter_mut() {
            if rule.service.is_some_and(|s| s != service) {
                continue;
            }
            let applies = match &rule.kind {
                FaultKind::LatencyMs(ms) => {
                    outcome.delay += Duration::from_millis(*ms);
                    true
                }
                other if outcome.action.is_none() => {
                    outcome.action = Some(other.clone());
                    true
                }
                _ => false,
            };
            if applies {
                if let Some(n) = rule.remaining.as_mut() {
                    *n = n.saturating_sub(1);
                }
            }
        }
        t.rules.retain(|r| r.remaining != Some(0));
        outcome
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultTable> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_rules_expire_and_scopes_match() {
        let f = Faults::default();
        f.fail(Some(Service::Compute), 503, Some(2));
        f.latency(None, Duration::from_millis(5), Some(1));
        assert_eq!(f.take(Service::Network).action, None);
        let o = f.take(Service::Compute);
        assert_eq!(o.action, Some(FaultKind::Status(503)));
        assert_eq!(o.delay, Duration::ZERO);
        assert_eq!(
            f.take(Service::Compute).action,
            Some(FaultKind::Status(503))
        );
        assert_eq!(f.take(Service::Compute).action, None);
        assert!(f.list().is_empty());
    }

    #[test]
    fn unbounded_rules_stay_until_removed() {
        let f = Faults::default();
        let id = f.reset(None, None);
        for _ in 0..3 {
            assert_eq!(f.take(Service::Image).action, Some(FaultKind::Reset));
        }
        assert!(f.remove(id));
        assert_eq!(f.take(Service::Image).action, None);
    }
}
