//! The gateway's Prometheus metrics: one owned registry, one small struct per subsystem.
//!
//! Labels are low-cardinality by construction: service, action, status code, site, error
//! kind. Never a token, a project id or a resource id.

use std::sync::{Arc, OnceLock};

use http::StatusCode;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::config::SiteName;
use crate::operation::Service;

/// Metrics of the request path.
#[derive(Clone)]
pub struct ProxyMetrics {
    pub requests: IntCounterVec,
    pub upstream_duration: HistogramVec,
    pub upstream_errors: IntCounterVec,
    /// `drgw_unconfirmed_changes_total{service,reason}`: protected changes the upstream may
    /// have made without the gateway learning it (see `stack::unconfirmed_change`).
    pub unconfirmed_changes: IntCounterVec,
    pub token_cache: IntCounterVec,
    pub rewrites: IntCounterVec,
    pub site_up: IntGaugeVec,
    /// `drgw_fast_lane_requests_total{outcome}`: HTTP/1.1 requests the fast lane relayed,
    /// handed to the general path, or retried there (children made once: counted per
    /// request).
    pub fast_lane: FastLaneCounters,
    /// `drgw_worker_connections_total{worker}`: client connections accepted, by worker.
    pub connections: IntCounterVec,
    /// `drgw_id_translation`: 1 once a first failover has armed the translation of IDs
    /// (every request then takes the general path), 0 before.
    pub id_translation: IntGauge,
    /// Children of `requests` and `upstream_duration` for the label values every request
    /// uses, made on first use (so that no series appears before it is counted).
    hot: Arc<HotChildren>,
}

/// The children of `drgw_fast_lane_requests_total`, one per outcome.
#[derive(Clone)]
pub struct FastLaneCounters {
    /// Answered by the fast lane itself.
    pub relayed: IntCounter,
    /// Handed to the general (hyper) path before anything was sent upstream.
    pub general: IntCounter,
    /// Sent upstream by the fast lane, whose answer was not length-delimited (or needed
    /// decoding): the GET was sent again through the general path.
    pub retried: IntCounter,
    /// The request (or HTTP/2 preface) that moved its connection to hyper for good:
    /// HTTP/1.0, a chunked or ambiguous body, an upgrade, `Connection: close`, a head the
    /// lane does not parse. Later requests on that connection are not counted here.
    pub handed_over: IntCounter,
}

/// The action labels of `drgw_requests_total`, in slot order.
const ACTIONS: [&str; 6] = ["read", "create", "update", "delete", "action", "other"];
/// Status codes with a cached child; others go through the label hash.
const STATUSES: [u16; 20] = [
    200, 201, 202, 204, 300, 301, 302, 304, 400, 401, 403, 404, 405, 409, 413, 500, 502, 503, 504,
    206,
];

/// Cached label children: on the request path, counting is an index and an atomic add
/// instead of hashing the label values and taking the vector's lock.
struct HotChildren {
    /// `[service][action][status]`, in `Service::ALL`, `ACTIONS`, `STATUSES` order.
    requests: Vec<OnceLock<IntCounter>>,
    /// `[service][site]`, in `Service::ALL`, `SiteName::ALL` order.
    upstream_duration: Vec<OnceLock<Histogram>>,
}

fn service_slot(service: Service) -> usize {
    Service::ALL.iter().position(|s| *s == service).unwrap_or(0)
}

impl ProxyMetrics {
    /// Counts one answered request in `drgw_requests_total{service,action,status}`.
    pub fn count_request(&self, service: Service, action: &str, status: StatusCode) {
        let action_slot = ACTIONS.iter().position(|a| *a == action);
        let status_slot = STATUSES.iter().position(|s| *s == status.as_u16());
        let (Some(a), Some(st)) = (action_slot, status_slot) else {
            self.requests
                .with_label_values(&[service.as_str(), action, status.as_str()])
                .inc();
            return;
        };
        let slot = (service_slot(service) * ACTIONS.len() + a) * STATUSES.len() + st;
        self.hot.requests[slot]
            .get_or_init(|| {
                self.requests
                    .with_label_values(&[service.as_str(), action, status.as_str()])
            })
            .inc();
    }

    /// Records how long `site`'s `service` took to answer (its response headers).
    pub fn observe_upstream(&self, service: Service, site: SiteName, seconds: f64) {
        let site_slot = SiteName::ALL.iter().position(|s| *s == site).unwrap_or(0);
        let slot = service_slot(service) * SiteName::ALL.len() + site_slot;
        self.hot.upstream_duration[slot]
            .get_or_init(|| {
                self.upstream_duration
                    .with_label_values(&[service.as_str(), site.as_str()])
            })
            .observe(seconds);
    }
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
        let unconfirmed_changes = IntCounterVec::new(
            Opts::new(
                "drgw_unconfirmed_changes_total",
                "Protected changes whose outcome the upstream did not tell (timeout, reset, \
                 broken_answer): they may exist at the site, unmirrored",
            ),
            &["service", "reason"],
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
        let fast_lane = IntCounterVec::new(
            Opts::new(
                "drgw_fast_lane_requests_total",
                "Requests by fast-lane outcome (relayed, general, retried, handed_over)",
            ),
            &["outcome"],
        )
        .expect("static metric definition");
        let connections = IntCounterVec::new(
            Opts::new(
                "drgw_worker_connections_total",
                "Client connections accepted, by worker",
            ),
            &["worker"],
        )
        .expect("static metric definition");
        let id_translation = IntGauge::new(
            "drgw_id_translation",
            "1 once a first failover has armed ID translation: every request then takes the \
             general path, its IDs translated through the ID map",
        )
        .expect("static metric definition");
        registry
            .register(Box::new(id_translation.clone()))
            .expect("unique metric");
        for c in [
            &connections,
            &requests,
            &upstream_errors,
            &unconfirmed_changes,
            &token_cache,
            &rewrites,
            &fast_lane,
        ] {
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
                unconfirmed_changes,
                token_cache,
                rewrites,
                site_up,
                fast_lane: FastLaneCounters {
                    relayed: fast_lane.with_label_values(&["relayed"]),
                    general: fast_lane.with_label_values(&["general"]),
                    retried: fast_lane.with_label_values(&["retried"]),
                    handed_over: fast_lane.with_label_values(&["handed_over"]),
                },
                connections,
                id_translation,
                hot: Arc::new(HotChildren {
                    requests: (0..Service::ALL.len() * ACTIONS.len() * STATUSES.len())
                        .map(|_| OnceLock::new())
                        .collect(),
                    upstream_duration: (0..Service::ALL.len() * SiteName::ALL.len())
                        .map(|_| OnceLock::new())
                        .collect(),
                }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_children_count_like_the_labelled_ones() {
        let m = Metrics::new();
        let p = &m.proxy;
        assert!(
            !m.render().contains("drgw_requests_total{"),
            "no series before use"
        );
        for _ in 0..3 {
            p.count_request(Service::Compute, "read", StatusCode::OK);
        }
        p.count_request(Service::Compute, "read", StatusCode::IM_A_TEAPOT);
        p.count_request(Service::Image, "weird", StatusCode::OK);
        p.observe_upstream(Service::Network, SiteName::Recovery, 0.002);
        let get = |labels: &[&str]| p.requests.with_label_values(labels).get();
        assert_eq!(get(&["compute", "read", "200"]), 3);
        assert_eq!(get(&["compute", "read", "418"]), 1);
        assert_eq!(get(&["image", "weird", "200"]), 1);
        let h = p
            .upstream_duration
            .with_label_values(&["network", "recovery"]);
        assert_eq!(h.get_sample_count(), 1);
    }
}
