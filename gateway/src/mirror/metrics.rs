//! The mirror engine's Prometheus metrics. Labels: tier names (operator-defined, few),
//! resource types (a fixed vocabulary) and results; never an ID.

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Mirror metrics, registered on the gateway's registry.
#[derive(Clone)]
pub struct MirrorMetrics {
    /// `drgw_mirror_operations_total{tier,resource,result}`; result is `queued`, `applied`,
    /// `failed`, `retry`, `rejected`, `degraded` or `journal_error`.
    pub operations: IntCounterVec,
    pub apply_duration: HistogramVec,
    pub pending: IntGaugeVec,
    pub lag: GaugeVec,
    pub checkpoint_timestamp: prometheus::Gauge,
    /// `drgw_mirror_deferred_seconds_total{tier}`: time asynchronous records waited for a
    /// runtime busy with tenant requests (see `mirror::pace`).
    pub deferred: prometheus::CounterVec,
}

impl MirrorMetrics {
    /// Creates the metrics and registers them (an already registered metric is an error).
    pub fn new(registry: &Registry) -> Result<MirrorMetrics, prometheus::Error> {
        let m = MirrorMetrics {
            operations: IntCounterVec::new(
                Opts::new(
                    "drgw_mirror_operations_total",
                    "Mirror operations by tier, resource type and result",
                ),
                &["tier", "resource", "result"],
            )?,
            apply_duration: HistogramVec::new(
                HistogramOpts::new(
                    "drgw_mirror_apply_duration_seconds",
                    "Time to apply one journal record at the recovery site",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["tier"],
            )?,
            pending: IntGaugeVec::new(
                Opts::new(
                    "drgw_journal_pending",
                    "Journal records not yet applied, by tier",
                ),
                &["tier"],
            )?,
            lag: GaugeVec::new(
                Opts::new(
                    "drgw_replication_lag_seconds",
                    "Age of the oldest unapplied journal record (live RPO exposure), by tier",
                ),
                &["tier"],
            )?,
            checkpoint_timestamp: prometheus::Gauge::new(
                "drgw_checkpoint_timestamp_seconds",
                "Time of the last checkpoint (Silver consistent cut), seconds since the epoch",
            )?,
            deferred: prometheus::CounterVec::new(
                Opts::new(
                    "drgw_mirror_deferred_seconds_total",
                    "Time asynchronous records waited, giving way to tenant requests while the gateway's runtime was busy with them, by tier",
                ),
                &["tier"],
            )?,
        };
        registry.register(Box::new(m.operations.clone()))?;
        registry.register(Box::new(m.apply_duration.clone()))?;
        registry.register(Box::new(m.pending.clone()))?;
        registry.register(Box::new(m.lag.clone()))?;
        registry.register(Box::new(m.checkpoint_timestamp.clone()))?;
        registry.register(Box::new(m.deferred.clone()))?;
        Ok(m)
    }

    pub(crate) fn op(&self, tier: &str, resource: &str, result: &str) {
        self.operations
            .with_label_values(&[tier, resource, result])
            .inc();
    }
}
