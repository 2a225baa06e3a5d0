//! The gateway's shared state: configuration, per-site clients, the active site, the token
//! cache, metrics and the response rewriter. One `Arc<Gateway>` is shared by every
//! connection.

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::uri::{Authority, Scheme};
use http::Uri;

use crate::config::{Config, SiteName};
use crate::metrics::Metrics;
use crate::operation::Service;
use crate::rewrite::Rewriter;
use crate::token::{KeystoneClient, TokenCache};
use crate::upstream::{ClientBuildError, UpstreamClient};

/// A configured upstream base URL, pre-parsed for building request URIs.
#[derive(Debug, Clone)]
pub struct UpstreamBase {
    pub scheme: Scheme,
    pub authority: Authority,
    /// Base path without a trailing slash (`""` or e.g. `/compute`).
    pub path: String,
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
        })
    }
}

fn service_index(service: Service) -> usize {
    Service::ALL.iter().position(|s| *s == service).unwrap_or(0)
}

/// What the gateway knows about one site at run time.
pub struct SiteRuntime {
    pub client: UpstreamClient,
    pub keystone: KeystoneClient,
    /// Base URL of each service, in `Service::ALL` order.
    bases: Vec<UpstreamBase>,
}

/// Shared state of a running gateway.
pub struct Gateway {
    pub config: Arc<Config>,
    pub metrics: Metrics,
    pub tokens: TokenCache,
    primary: SiteRuntime,
    recovery: SiteRuntime,
    active: ArcSwap<SiteName>,
    rewriter: ArcSwap<Rewriter>,
}

impl Gateway {
    pub fn new(config: Config, metrics: Metrics) -> Result<Gateway, ClientBuildError> {
        let site = |name: SiteName| -> Result<SiteRuntime, ClientBuildError> {
            let cfg = config.site(name);
            let client = UpstreamClient::new(cfg, &config.upstream)?;
            let bases = Service::ALL
                .iter()
                .map(|s| {
                    UpstreamBase::parse(cfg.endpoint(*s)).ok_or_else(|| ClientBuildError {
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
                keystone: KeystoneClient::new(cfg, client.clone()),
                client,
                bases,
            })
        };
        let primary = site(SiteName::Primary)?;
        let recovery = site(SiteName::Recovery)?;
        let tokens = TokenCache::new(100_000, metrics.proxy.clone());
        let rewriter = Rewriter::new(&config, SiteName::Primary);
        Ok(Gateway {
            config: Arc::new(config),
            metrics,
            tokens,
            primary,
            recovery,
            active: ArcSwap::from_pointee(SiteName::Primary),
            rewriter: ArcSwap::from_pointee(rewriter),
        })
    }

    /// The site every service is routed to now.
    pub fn active_site(&self) -> SiteName {
        **self.active.load()
    }

    /// Switches every service to `site` (requests that start afterwards go there).
    pub fn set_active_site(&self, site: SiteName) {
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
        Uri::builder()
            .scheme(base.scheme.clone())
            .authority(base.authority.clone())
            .path_and_query(pq)
            .build()
            .ok()
    }

    /// The largest JSON response the gateway buffers to rewrite; larger ones stream
    /// unchanged.
    pub fn response_buffer_limit(&self) -> u64 {
        self.config.max_body_bytes.max(16 << 20)
    }
}
