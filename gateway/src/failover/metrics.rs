//! The failover metrics: `drgw_active_site{site}` and `drgw_failover_state{state}` gauges
//! (1 for the current value, 0 for the others) and the `drgw_failovers_total{kind}` counter.

use prometheus::core::Collector;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::{Phase, ReportKind, Site};

const PHASES: [Phase; 4] = [
    Phase::Normal,
    Phase::Switching,
    Phase::FailedOver,
    Phase::FailingBack,
];

/// The failover gauges and counter.
#[derive(Clone)]
pub struct FailoverMetrics {
    pub active_site: IntGaugeVec,
    pub state: IntGaugeVec,
    pub failovers: IntCounterVec,
}

impl std::fmt::Debug for FailoverMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailoverMetrics").finish_non_exhaustive()
    }
}

/// Registers `c`, replacing a collector with the same descriptors (a controller created
/// again for the same gateway). Registration trouble is logged, never fatal: the metric
/// still counts, it is just not exported.
fn register<C: Collector + Clone + 'static>(registry: &Registry, c: &C) {
    if let Err(prometheus::Error::AlreadyReg) = registry.register(Box::new(c.clone())) {
        let _ = registry.unregister(Box::new(c.clone()));
        if let Err(e) = registry.register(Box::new(c.clone())) {
            tracing::warn!(error = %e, "cannot register a failover metric");
        }
    }
}

impl FailoverMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn new(registry: &Registry) -> FailoverMetrics {
        let active_site = IntGaugeVec::new(
            Opts::new(
                "drgw_active_site",
                "1 for the site every service is routed to, 0 for the other",
            ),
            &["site"],
        )
        .expect("static metric definition");
        let state = IntGaugeVec::new(
            Opts::new(
                "drgw_failover_state",
                "1 for the current failover phase (normal, switching, failed_over, failing_back)",
            ),
            &["state"],
        )
        .expect("static metric definition");
        let failovers = IntCounterVec::new(
            Opts::new(
                "drgw_failovers_total",
                "Completed site switches, by kind (planned_failover, forced_failover, ...)",
            ),
            &["kind"],
        )
        .expect("static metric definition");
        register(registry, &active_site);
        register(registry, &state);
        register(registry, &failovers);
        FailoverMetrics {
            active_site,
            state,
            failovers,
        }
    }

    /// Sets both gauges for `phase` on `active`.
    pub fn set_state(&self, phase: Phase, active: Site) {
        for p in PHASES {
            self.state
                .with_label_values(&[p.as_str()])
                .set(i64::from(p == phase));
        }
        for s in Site::ALL {
            self.active_site
                .with_label_values(&[s.as_str()])
                .set(i64::from(s == active));
        }
    }

    /// Counts one completed switch.
    pub fn count(&self, kind: ReportKind) {
        self.failovers.with_label_values(&[kind.as_str()]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_follow_the_state_and_registration_can_repeat() {
        let registry = Registry::new();
        let m = FailoverMetrics::new(&registry);
        m.set_state(Phase::FailedOver, Site::Recovery);
        assert_eq!(m.state.with_label_values(&["failed_over"]).get(), 1);
        assert_eq!(m.state.with_label_values(&["normal"]).get(), 0);
        assert_eq!(m.active_site.with_label_values(&["recovery"]).get(), 1);
        assert_eq!(m.active_site.with_label_values(&["primary"]).get(), 0);
        let again = FailoverMetrics::new(&registry);
        again.count(ReportKind::ForcedFailover);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .expect("encode");
        assert!(
            text.contains("drgw_failovers_total{kind=\"forced_failover\"} 1"),
            "{text}"
        );
    }
}
