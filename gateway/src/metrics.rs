//! The gateway's Prometheus metrics: one owned registry, one small struct per subsystem.
//!
//! Labels are low-cardinality by construction: service, action, status code, site, error
//! kind. Never a token, a project id or a resource id.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Metrics of the request path.
#[derive(Clone)]
pub struct ProxyMetrics {
    pub requests: IntCounterVec,
    pub upstream_duration: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub token_cache: IntCounterVec,
    pub rewrites: IntCounterVec,
    pub site_up: IntGaugeVec,
}

/// The registry and every subsystem's metrics.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub proxy: ProxyMetrics,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "drgw_requests_total",
                "Requests handled, by fronted service, action and status code",
            ),
            &["service", "action", "status"],
        )
        .expect("static metric definition");
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "drgw_upstream_request_duration_seconds",
                "Time until the upstream's response headers arrived",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["service", "site"],
        )
        .expect("static metric definition");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "drgw_upstream_errors_total",
                "Upstream failures, by service and kind (timeout, connect, reset)",
            ),
            &["service", "kind"],
        )
        .expect("static metric definition");
        let token_cache = IntCounterVec::new(
            Opts::new(
                "drgw_token_cache_requests_total",
                "Token context look-ups, by result (hit, miss, invalid, error)",
            ),
            &["result"],
        )
        .expect("static metric definition");
        let rewrites = IntCounterVec::new(
            Opts::new(
                "drgw_response_rewrites_total",
                "Response bodies rewritten, by kind (catalog, links, location)",
            ),
            &["kind"],
        )
        .expect("static metric definition");
        let site_up = IntGaugeVec::new(
            Opts::new(
                "drgw_site_up",
                "1 if the site's service answered its last probe",
            ),
            &["site", "service"],
        )
        .expect("static metric definition");
        for c in [&requests, &upstream_errors, &token_cache, &rewrites] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
        }
        registry
            .register(Box::new(upstream_duration.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(site_up.clone()))
            .expect("unique metric");
        Metrics {
            registry,
            proxy: ProxyMetrics {
                requests,
                upstream_duration,
                upstream_errors,
                token_cache,
                rewrites,
                site_up,
            },
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
