//! The gateway's shared state: configuration, per-site clients, the active site, the token
//! cache, metrics and the response rewriter. One `Arc<Gateway>` is shared by every
//! connection.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Uri};

use crate::access_log::AccessLog;
use crate::config::{Config, SiteName};
use crate::failover::StableIds;
use crate::journal::{Journal, JournalConfig, JournalError, JournalMetrics};
use crate::metrics::Metrics;
use crate::mirror::{MirrorDeps, MirrorEngine, MirrorError, MirrorSite, SecretKey};
use crate::operation::Service;
use crate::policy::PolicyStage;
use crate::rewrite::Rewriter;
use crate::state::{IdMap, RedbStore, StateError, StateStore};
use crate::token::{KeystoneClient, TokenCache};
use crate::upstream::{ClientBuildError, UpstreamClient};

/// A configured upstream base URL, pre-parsed for building request URIs.
#[derive(Debug, Clone)]
pub struct UpstreamBase {
    pub scheme: Scheme,
    pub authority: Authority,
    /// Base path without a trailing slash (`""` or e.g. `/compute`).
    pub path: String,
    /// `X-Forwarded-Prefix` for requests to this base, when the service's listener has a
    /// path prefix (see [`forwarded_prefix`]).
    pub forwarded_prefix: Option<HeaderValue>,
}

/// What a service behind oslo.middleware's `http_proxy_to_wsgi` (with
/// `enable_proxy_headers_parsing`) must be told so that the URLs it builds from the
/// `X-Forwarded-*` headers are the gateway's: it puts `X-Forwarded-Prefix` before its own
/// mount path, so the prefix is the listener's path prefix less the upstream's base path
/// (`/compute` on the gateway, nothing upstream: `/compute`; `/compute` on both: none).
/// `None` when there is nothing to add, or when the upstream's path is not a tail of the
/// prefix (no header can express that; the URLs it builds from its own address are
/// rewritten as ever).
pub fn forwarded_prefix(listener_prefix: &str, upstream_path: &str) -> Option<HeaderValue> {
    let prefix = listener_prefix.strip_suffix(upstream_path)?;
    if prefix.is_empty() {
        return None;
    }
    HeaderValue::from_str(prefix).ok()
}

impl UpstreamBase {
    fn parse(url: &str) -> Option<UpstreamBase> {
        let uri: Uri = url.parse().ok()?;
        let parts = uri.into_parts();
        Some(UpstreamBase {
            scheme: parts.scheme?,
            authority: parts.authority?,
            path: parts
                .path_and_query
                .map(|p| p.path().trim_end_matches('/').to_string())
                .unwrap_or_default(),
            forwarded_prefix: None,
        })
    }
}

fn service_index(service: Service) -> usize {
    Service::ALL.iter().position(|s| *s == service).unwrap_or(0)
}

/// What the gateway knows about one site at run time.
pub struct SiteRuntime {
    pub client: UpstreamClient,
    pub keystone: Arc<KeystoneClient>,
    /// Base URL of each service, in `Service::ALL` order.
    bases: Vec<UpstreamBase>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    #[error("state store in {dir}: {source}")]
    State { dir: String, source: StateError },
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    #[error("policy {path}:\n{errors}")]
    Policy { path: String, errors: String },
    #[error("mirror engine: {0}")]
    Mirror(#[from] MirrorError),
    #[error("mirror secret key: {0}")]
    SecretKey(String),
    #[error("metrics: {0}")]
    Metrics(prometheus::Error),
    #[error(transparent)]
    AccessLog(#[from] crate::access_log::OpenError),
}

/// Shared state of a running gateway.
pub struct Gateway {
    pub config: Arc<Config>,
    pub metrics: Metrics,
    pub tokens: TokenCache,
    /// The durable state: journal, ID map, usage counters, failover state.
    pub store: Arc<dyn StateStore>,
    pub journal: Journal,
    /// Tier decisions, enforcement and tagging.
    pub policy: Arc<PolicyStage>,
    /// Applies journaled changes at the recovery site.
    pub mirror: MirrorEngine,
    /// Tenants' IDs across sites (armed from the first failover on).
    pub stable_ids: StableIds,
    /// One line per answered request, when `[gateway] access_log` is set.
    pub access_log: Option<Arc<AccessLog>>,
    primary: SiteRuntime,
    recovery: SiteRuntime,
    active: ArcSwap<SiteName>,
    rewriter: ArcSwap<Rewriter>,
}

impl Gateway {
    /// Opens the state store in `state_dir`, loads the policy, and starts the mirror engine.
    pub async fn start(config: Config, metrics: Metrics) -> Result<Gateway, StartError> {
        let site = |name: SiteName| -> Result<SiteRuntime, ClientBuildError> {
            let cfg = config.site(name);
            let client = UpstreamClient::new(
                cfg,
                &config.upstream,
                crate::worker::resolve(config.workers),
            )?;
            let bases = Service::ALL
                .iter()
                .map(|s| {
                    let mut base = UpstreamBase::parse(cfg.endpoint(*s));
                    if let (Some(base), Some(listener)) = (&mut base, config.service_listener(*s)) {
                        base.forwarded_prefix = forwarded_prefix(&listener.prefix, &base.path);
                    }
                    base.ok_or_else(|| ClientBuildError {
                        site: name.to_string(),
                        reason: format!(
                            "{} URL `{}` is not absolute",
                            s.as_str(),
                            cfg.endpoint(*s)
                        ),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(SiteRuntime {
                keystone: Arc::new(KeystoneClient::new(cfg, client.clone())),
                client,
                bases,
            })
        };
        let primary = site(SiteName::Primary)?;
        let recovery = site(SiteName::Recovery)?;
        let tokens = TokenCache::new(100_000, metrics.proxy.clone());
        let rewriter = Rewriter::new(&config, SiteName::Primary);

        let dir = config.state_dir.clone();
        let state_error = |source| StartError::State {
            dir: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(|e| {
            state_error(StateError::Invalid(format!(
                "cannot create {}: {e}",
                dir.display()
            )))
        })?;
        let store: Arc<dyn StateStore> = Arc::new(RedbStore::open_in(&dir).map_err(state_error)?);
        let journal_config = JournalConfig {
            metrics: Some(JournalMetrics::new(&metrics.registry).map_err(StartError::Metrics)?),
            ..JournalConfig::default()
        };
        let journal = Journal::open(store.clone(), journal_config).await?;
        let policy = PolicyStage::load(
            config.policy_file.as_deref(),
            store.clone(),
            &metrics.registry,
        )
        .await
        .map_err(|errors| StartError::Policy {
            path: config
                .policy_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            errors: drgw_policies::format_errors(&errors),
        })?;
        let tiers = policy
            .current()
            .tiers()
            .iter()
            .map(|t| (t.name.clone(), crate::policy::mirror_mode(t.mode)))
            .collect();
        let secret_key = SecretKey::load_or_create(&dir.join("mirror.key"))
            .map_err(|e| StartError::SecretKey(e.to_string()))?;
        let mirror_site = |name: SiteName, rt: &SiteRuntime| MirrorSite {
            client: rt.client.clone(),
            keystone: rt.keystone.clone(),
            config: config.site(name).clone(),
        };
        let mirror = MirrorEngine::start(MirrorDeps {
            store: store.clone(),
            journal: journal.clone(),
            idmap: IdMap::new(store.clone()),
            recovery: mirror_site(SiteName::Recovery, &recovery),
            primary: mirror_site(SiteName::Primary, &primary),
            registry: &metrics.registry,
            gold_timeout: config.gold_timeout,
            tiers,
            secret_key,
            shared_identity: false,
            retry_initial: MirrorDeps::DEFAULT_RETRY_INITIAL,
            retry_max: MirrorDeps::DEFAULT_RETRY_MAX,
            tick: MirrorDeps::DEFAULT_TICK,
            parallel_tenants: MirrorDeps::DEFAULT_PARALLEL_TENANTS,
        })
        .await?;
        let stable_ids = StableIds::new(IdMap::new(store.clone()));
        let access_log = AccessLog::open(&config.access_log, &metrics.registry)?.map(Arc::new);
        Ok(Gateway {
            config: Arc::new(config),
            metrics,
            tokens,
            store,
            journal,
            policy: Arc::new(policy),
            mirror,
            stable_ids,
            access_log,
            primary,
            recovery,
            active: ArcSwap::from_pointee(SiteName::Primary),
            rewriter: ArcSwap::from_pointee(rewriter),
        })
    }

    /// Stops the mirror engine and flushes the journal (after the listeners drained).
    pub async fn shutdown(&self) {
        self.mirror.shutdown().await;
        if let Err(e) = self.journal.close().await {
            tracing::warn!(error = %e, "journal did not close cleanly");
        }
        if let Some(log) = &self.access_log {
            log.flush(Duration::from_secs(5)).await;
        }
    }

    /// The site every service is routed to now.
    pub fn active_site(&self) -> SiteName {
        **self.active.load()
    }

    /// Switches every service to `site` (requests that start afterwards go there).
    pub fn set_active_site(&self, site: SiteName) {
        if site != SiteName::Primary {
            self.stable_ids.arm();
        }
        self.metrics
            .proxy
            .id_translation
            .set(i64::from(self.stable_ids.armed()));
        self.rewriter
            .store(Arc::new(Rewriter::new(&self.config, site)));
        self.active.store(Arc::new(site));
    }

    pub fn site(&self, name: SiteName) -> &SiteRuntime {
        match name {
            SiteName::Primary => &self.primary,
            SiteName::Recovery => &self.recovery,
        }
    }

    pub fn client(&self, name: SiteName) -> &UpstreamClient {
        &self.site(name).client
    }

    pub fn rewriter(&self) -> Arc<Rewriter> {
        self.rewriter.load_full()
    }

    /// The URI of `path?query` at a site's service: the configured base URL (scheme,
    /// authority and base path) joined with the request's path. The request can choose the
    /// path, never the host.
    pub fn upstream_uri(
        &self,
        site: SiteName,
        service: Service,
        path: &str,
        query: Option<&str>,
    ) -> Option<Uri> {
        let base = &self.site(site).bases[service_index(service)];
        let mut pq =
            String::with_capacity(base.path.len() + path.len() + query.map_or(0, |q| q.len() + 1));
        pq.push_str(&base.path);
        pq.push_str(path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        // From parts, not `Uri::builder()`: the builder moves its whole state through a
        // `Result` at every step, which cost more than the path check itself.
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(base.scheme.clone());
        parts.authority = Some(base.authority.clone());
        parts.path_and_query = Some(http::uri::PathAndQuery::try_from(pq).ok()?);
        Uri::from_parts(parts).ok()
    }

    /// The `X-Forwarded-Prefix` for requests to a site's service, if any (see
    /// [`forwarded_prefix`]).
    pub fn forwarded_prefix(&self, site: SiteName, service: Service) -> Option<&HeaderValue> {
        self.site(site).bases[service_index(service)]
            .forwarded_prefix
            .as_ref()
    }

    /// The largest JSON response the gateway buffers to rewrite; larger ones stream
    /// unchanged.
    pub fn response_buffer_limit(&self) -> u64 {
        self.config.max_body_bytes.max(16 << 20)
    }
}

#[cfg(test)]
mod tests {
    use super::forwarded_prefix;

    #[test]
    fn the_forwarded_prefix_is_what_the_upstreams_own_path_leaves_of_the_listeners() {
        let prefix = |listener, upstream| {
            forwarded_prefix(listener, upstream).map(|v| v.to_str().unwrap().to_string())
        };
        // devstack behind a shared listener: the gateway's /compute, the upstream at its root.
        assert_eq!(prefix("/compute", "").as_deref(), Some("/compute"));
        // Both mount it at /compute: the upstream's own path already says it.
        assert_eq!(prefix("/compute", "/compute"), None);
        assert_eq!(prefix("/api/compute", "/compute").as_deref(), Some("/api"));
        // Dedicated listeners, and a path no prefix can turn into the listener's.
        assert_eq!(prefix("", ""), None);
        assert_eq!(prefix("", "/compute"), None);
        assert_eq!(prefix("/compute", "/nova"), None);
    }
}
