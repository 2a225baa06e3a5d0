//! Metrics of the policy stage. Labels are tier names from the operator's policy file
//! (a handful), fixed result words and fixed resource kinds: low cardinality by
//! construction.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// `drgw_policy_*` and `drgw_protected_resources`.
#[derive(Clone)]
pub struct PolicyMetrics {
    /// `drgw_policy_decisions_total{tier,result}`; result is `allow`, `forbidden`,
    /// `capacity` or `bad_request`.
    pub decisions: IntCounterVec,
    /// `drgw_policy_reloads_total{result}`; result is `ok` or `error`.
    pub reloads: IntCounterVec,
    /// `drgw_protected_resources{tier,resource}`: resources the gateway has seen created
    /// and not yet deleted, over every tenant (from the usage counters).
    pub protected: IntGaugeVec,
}

impl PolicyMetrics {
    /// Creates the metrics and registers them on `registry`. Registering twice on one
    /// registry fails; the error says which metric.
    pub fn new(registry: &Registry) -> Result<PolicyMetrics, prometheus::Error> {
        let decisions = IntCounterVec::new(
            Opts::new(
                "drgw_policy_decisions_total",
                "Policy decisions on protected calls, by tier and result (allow, forbidden, capacity, bad_request)",
            ),
            &["tier", "result"],
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "drgw_policy_reloads_total",
                "Policy file reloads, by result (ok, error)",
            ),
            &["result"],
        )?;
        let protected = IntGaugeVec::new(
            Opts::new(
                "drgw_protected_resources",
                "Resources created through the gateway and not deleted, by tier and resource kind",
            ),
            &["tier", "resource"],
        )?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(protected.clone()))?;
        Ok(PolicyMetrics {
            decisions,
            reloads,
            protected,
        })
    }
}
