//! The policy stage's look-ups at the active site, with the gateway's service token: a
//! project's tags and domain name (Keystone, for rules that match on them) and a flavor's
//! size (Nova, for the vCPU/RAM quotas). Both are cached (moka) so that a request costs at
//! most one look-up per project a minute and per flavor ten minutes.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, StatusCode};
use moka::future::Cache;
use serde_json::Value;

use crate::body;
use crate::config::SiteName;
use crate::gateway::Gateway;
use crate::operation::Service;
use crate::token::KeystoneClient;
use crate::upstream::UpstreamClient;

/// How long a project's tags and domain name are trusted.
pub const PROJECT_TTL: Duration = Duration::from_secs(60);
/// How long a flavor's size is trusted (flavors are immutable; this bounds a re-created id).
pub const FLAVOR_TTL: Duration = Duration::from_secs(600);
const MAX_LOOKUP_BODY: u64 = 1 << 20;

/// What the stage can reach at one site: its Keystone (for the service token), its
/// pooled client and the service base URLs the configuration gives.
#[derive(Clone, Copy)]
pub struct SiteAccess<'a> {
    pub site: SiteName,
    pub keystone: &'a KeystoneClient,
    pub client: &'a UpstreamClient,
    /// Keystone base URL (without `/v3`), as configured.
    pub identity_url: &'a str,
    /// Nova base URL (without `/v2.1`), as configured.
    pub compute_url: &'a str,
}

impl<'a> SiteAccess<'a> {
    /// The access to `site` of a running gateway.
    pub fn of(gateway: &'a Gateway, site: SiteName) -> SiteAccess<'a> {
        let runtime = gateway.site(site);
        let config = gateway.config.site(site);
        SiteAccess {
            site,
            keystone: &runtime.keystone,
            client: &runtime.client,
            identity_url: config.endpoint(Service::Identity),
            compute_url: config.endpoint(Service::Compute),
        }
    }
}

impl std::fmt::Debug for SiteAccess<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteAccess")
            .field("site", &self.site)
            .field("identity_url", &self.identity_url)
            .field("compute_url", &self.compute_url)
            .finish_non_exhaustive()
    }
}

/// What rules may match on beyond the token: the project's tags and its domain's name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProjectInfo {
    pub domain_name: String,
    pub tags: Vec<String>,
}

/// A flavor's size, as the vCPU and RAM quotas count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlavorSize {
    pub vcpus: u64,
    pub ram_mb: u64,
}

/// Why a look-up failed (logged by the caller, who then decides without it).
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("cannot get the gateway's service token: {0}")]
    Token(#[from] crate::token::TokenError),
    #[error("{0}")]
    Upstream(#[from] crate::upstream::UpstreamError),
    #[error("{what} answered HTTP {status}")]
    Status {
        what: &'static str,
        status: StatusCode,
    },
    #[error("{0} answered a body without the expected fields")]
    Malformed(&'static str),
    #[error("invalid look-up URL")]
    Url,
}

/// The caches, keyed by site and id.
#[derive(Clone)]
pub(crate) struct Lookups {
    projects: Cache<(SiteName, String), Arc<ProjectInfo>>,
    flavors: Cache<(SiteName, String), FlavorSize>,
}

impl Lookups {
    pub(crate) fn new() -> Lookups {
        Lookups {
            projects: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(PROJECT_TTL)
                .build(),
            flavors: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(FLAVOR_TTL)
                .build(),
        }
    }

    pub(crate) async fn project(
        &self,
        access: &SiteAccess<'_>,
        project_id: &str,
        domain_id: &str,
    ) -> Result<Arc<ProjectInfo>, LookupError> {
        let key = (access.site, project_id.to_owned());
        if let Some(hit) = self.projects.get(&key).await {
            return Ok(hit);
        }
        let project = get_json(
            access,
            "keystone",
            &format!(
                "{}/v3/projects/{}",
                access.identity_url,
                segment(project_id)?
            ),
        )
        .await?;
        let tags = project
            .pointer("/project/tags")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let domain_id = project
            .pointer("/project/domain_id")
            .and_then(Value::as_str)
            .unwrap_or(domain_id)
            .to_owned();
        let domain_name = if domain_id.is_empty() {
            String::new()
        } else {
            let domain = get_json(
                access,
                "keystone",
                &format!(
                    "{}/v3/domains/{}",
                    access.identity_url,
                    segment(&domain_id)?
                ),
            )
            .await?;
            domain
                .pointer("/domain/name")
                .and_then(Value::as_str)
                .ok_or(LookupError::Malformed("keystone"))?
                .to_owned()
        };
        let info = Arc::new(ProjectInfo { domain_name, tags });
        self.projects.insert(key, info.clone()).await;
        Ok(info)
    }

    pub(crate) async fn flavor(
        &self,
        access: &SiteAccess<'_>,
        flavor_id: &str,
    ) -> Result<FlavorSize, LookupError> {
        let key = (access.site, flavor_id.to_owned());
        if let Some(hit) = self.flavors.get(&key).await {
            return Ok(hit);
        }
        let body = get_json(
            access,
            "nova",
            &format!(
                "{}/v2.1/flavors/{}",
                access.compute_url,
                segment(flavor_id)?
            ),
        )
        .await?;
        let field = |k: &str| {
            body.pointer(&format!("/flavor/{k}"))
                .and_then(Value::as_u64)
        };
        let size = FlavorSize {
            vcpus: field("vcpus").ok_or(LookupError::Malformed("nova"))?,
            ram_mb: field("ram").ok_or(LookupError::Malformed("nova"))?,
        };
        self.flavors.insert(key, size).await;
        Ok(size)
    }
}

/// An id as one path segment; ids with characters that would change the path are refused.
fn segment(id: &str) -> Result<&str, LookupError> {
    let ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && id != "."
        && id != "..";
    ok.then_some(id).ok_or(LookupError::Url)
}

/// GET `url` with the gateway's service token; one retry with a fresh token on a 401 is
/// left to the token's own expiry handling (the token is renewed a minute early).
async fn get_json(
    access: &SiteAccess<'_>,
    what: &'static str,
    url: &str,
) -> Result<Value, LookupError> {
    let token = access.keystone.service_token().await?;
    let req = Request::builder()
        .method(Method::GET)
        .uri(url)
        .header("x-auth-token", token)
        .header(http::header::ACCEPT, "application/json")
        .body(body::empty())
        .map_err(|_| LookupError::Url)?;
    let (parts, bytes) = access.client.send_full(req, MAX_LOOKUP_BODY).await?;
    if parts.status != StatusCode::OK {
        return Err(LookupError::Status {
            what,
            status: parts.status,
        });
    }
    serde_json::from_slice(&bytes).map_err(|_| LookupError::Malformed(what))
}
