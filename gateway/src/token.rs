//! Token context: who is calling (user, project, domain, roles) for a Keystone token.
//!
//! Contexts are cached (moka) until the token expires. They are filled for free from the
//! token responses the gateway proxies (`POST /v3/auth/tokens` carries the token in
//! `X-Subject-Token` and its context in the body); otherwise a token is validated once at
//! the active site's Keystone with the gateway's own service token. Invalid tokens are never
//! cached. Tokens are keys of an in-memory map only: they never reach logs or metrics.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use moka::future::Cache;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::body;
use crate::config::{Credentials, SiteConfig, SiteName};
use crate::metrics::ProxyMetrics;
use crate::operation::Service;
use crate::upstream::{UpstreamClient, UpstreamError};

/// Who a token belongs to and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenContext {
    pub user_id: String,
    pub user_name: String,
    pub user_domain_id: String,
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub project_domain_id: Option<String>,
    /// Set for domain-scoped tokens.
    pub domain_id: Option<String>,
    pub roles: Vec<String>,
    pub expires_at: SystemTime,
    /// The site whose Keystone issued the token.
    pub site: SiteName,
}

impl TokenContext {
    /// Parses the `token` object of a Keystone v3 token response.
    pub fn from_token_body(body: &Value, site: SiteName) -> Option<TokenContext> {
        let token = body.get("token")?;
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let user = token.get("user")?;
        let expires_at = humantime::parse_rfc3339_weak(token.get("expires_at")?.as_str()?).ok()?;
        let project = token.get("project");
        Some(TokenContext {
            user_id: s(user.get("id"))?,
            user_name: s(user.get("name")).unwrap_or_default(),
            user_domain_id: s(user.pointer("/domain/id")).unwrap_or_default(),
            project_id: project.and_then(|p| s(p.get("id"))),
            project_name: project.and_then(|p| s(p.get("name"))),
            project_domain_id: project.and_then(|p| s(p.pointer("/domain/id"))),
            domain_id: s(token.pointer("/domain/id")),
            roles: token
                .get("roles")
                .and_then(Value::as_array)
                .map(|roles| roles.iter().filter_map(|r| s(r.get("name"))).collect())
                .unwrap_or_default(),
            expires_at,
            site,
        })
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }
}

/// Why a token could not be resolved (not: the token is invalid, which is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("keystone unreachable: {0}")]
    Upstream(#[from] UpstreamError),
    #[error("the gateway's service account is not configured for site {0}")]
    NoCredentials(SiteName),
    #[error("keystone refused the gateway's service account at site {site}: HTTP {status}")]
    ServiceAuth { site: SiteName, status: StatusCode },
    #[error("keystone answered {0} to the gateway's call")]
    Unexpected(StatusCode),
}

struct ExpireAtTokenExpiry;

impl moka::Expiry<String, Arc<TokenContext>> for ExpireAtTokenExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<TokenContext>,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(
            value
                .expires_at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }
}

/// A site's Keystone as the gateway uses it: its own service token, and validation of
/// other tokens.
pub struct KeystoneClient {
    site: SiteName,
    base: String,
    credentials: Option<Credentials>,
    client: UpstreamClient,
    service_token: Mutex<Option<(String, SystemTime)>>,
    /// Project-scoped tokens of the service account, by project id.
    project_tokens: Mutex<std::collections::HashMap<String, (String, SystemTime)>>,
    /// `service_id` → catalog type, from `GET /v3/services`, and when it was read.
    service_types: Mutex<(Arc<ServiceTypes>, Option<Instant>)>,
}

/// `service_id` → catalog `type` (`compute`, `network`, ...) at one site.
pub type ServiceTypes = std::collections::HashMap<String, String>;

/// How soon `GET /v3/services` is read again when an endpoint names a service the gateway
/// has not seen: new services are rare, and a dangling `service_id` must not turn every
/// endpoint listing into two Keystone calls.
const SERVICE_TYPES_REFRESH: Duration = Duration::from_secs(30);

/// The role the service account grants itself in a project it must act in.
pub const SERVICE_PROJECT_ROLE: &str = "member";

impl KeystoneClient {
    pub fn new(site: &SiteConfig, client: UpstreamClient) -> KeystoneClient {
        KeystoneClient {
            site: site.name,
            base: site.endpoint(Service::Identity).to_string(),
            credentials: site.credentials.clone(),
            client,
            service_token: Mutex::new(None),
            project_tokens: Mutex::new(std::collections::HashMap::new()),
            service_types: Mutex::new((Arc::default(), None)),
        }
    }

    /// The types of this site's services, read with the gateway's service token, for the
    /// endpoints of a `GET /v3/endpoints` answer. Read once, and again when `wanted` names
    /// a service not seen yet (at most every [`SERVICE_TYPES_REFRESH`]). When Keystone
    /// cannot say, the map is what it was (the endpoints are then matched by URL).
    pub async fn service_types(&self, wanted: &[String]) -> Arc<ServiceTypes> {
        let mut guard = self.service_types.lock().await;
        let (known, read_at) = &*guard;
        let all_known = wanted.iter().all(|id| known.contains_key(id));
        let fresh = read_at.is_some_and(|at| at.elapsed() < SERVICE_TYPES_REFRESH);
        if all_known || fresh {
            return known.clone();
        }
        match self.read_service_types().await {
            Ok(types) => *guard = (Arc::new(types), Some(Instant::now())),
            Err(e) => {
                tracing::warn!(site = %self.site, error = %e, "could not list the site's services; endpoints are matched by URL");
                guard.1 = Some(Instant::now());
            }
        }
        guard.0.clone()
    }

    async fn read_service_types(&self) -> Result<ServiceTypes, TokenError> {
        let token = self.service_token().await?;
        let (status, body) = self.call(&token, Method::GET, "/v3/services").await?;
        if status != StatusCode::OK {
            return Err(TokenError::Unexpected(status));
        }
        let services = body
            .get("services")
            .and_then(Value::as_array)
            .ok_or(TokenError::Unexpected(status))?;
        Ok(services
            .iter()
            .filter_map(|s| {
                let id = s.get("id")?.as_str()?;
                let kind = s.get("type")?.as_str()?;
                Some((id.to_string(), kind.to_string()))
            })
            .collect())
    }

    /// The gateway's own token at this site, reused until a minute before it expires.
    pub async fn service_token(&self) -> Result<String, TokenError> {
        let mut guard = self.service_token.lock().await;
        if let Some((token, expires)) = guard.as_ref() {
            if *expires > SystemTime::now() + Duration::from_secs(60) {
                return Ok(token.clone());
            }
        }
        let creds = self
            .credentials
            .as_ref()
            .ok_or(TokenError::NoCredentials(self.site))?;
        let scope = serde_json::json!({"project": {
            "name": creds.project_name, "domain": {"name": creds.project_domain_name}}});
        let (token, expires) = match self.password_token(scope).await? {
            Ok(t) => t,
            Err(status) => {
                return Err(TokenError::ServiceAuth {
                    site: self.site,
                    status,
                })
            }
        };
        *guard = Some((token.clone(), expires));
        Ok(token)
    }

    /// Authenticates the service account with `scope`: the token and its expiry, or the
    /// status Keystone refused it with.
    async fn password_token(
        &self,
        scope: Value,
    ) -> Result<Result<(String, SystemTime), StatusCode>, TokenError> {
        let creds = self
            .credentials
            .as_ref()
            .ok_or(TokenError::NoCredentials(self.site))?;
        let password = creds
            .resolve_password()
            .map_err(|_| TokenError::NoCredentials(self.site))?;
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": creds.username, "domain": {"name": creds.user_domain_name}, "password": password}}},
            "scope": scope
        }});
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/v3/auth/tokens", self.base))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body::full(body.to_string()))
            .map_err(|_| TokenError::NoCredentials(self.site))?;
        let (parts, bytes) = self.client.send_full(req, 4 << 20).await?;
        if parts.status != StatusCode::CREATED {
            return Ok(Err(parts.status));
        }
        let token = parts
            .headers
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or(TokenError::Unexpected(parts.status))?;
        let expires = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| TokenContext::from_token_body(&v, self.site))
            .map(|c| c.expires_at)
            .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(600));
        Ok(Ok((token, expires)))
    }

    /// A token of the gateway's service account scoped to `project_id`, for acting inside a
    /// tenant's project (services such as Nova create in the token's project). The account
    /// grants itself the [`SERVICE_PROJECT_ROLE`] there first if it has no role yet. Reused
    /// until a minute before it expires.
    pub async fn project_token(&self, project_id: &str) -> Result<String, TokenError> {
        let mut cache = self.project_tokens.lock().await;
        if let Some((token, expires)) = cache.get(project_id) {
            if *expires > SystemTime::now() + Duration::from_secs(60) {
                return Ok(token.clone());
            }
        }
        let scope = serde_json::json!({"project": {"id": project_id}});
        let mut granted = false;
        loop {
            match self.password_token(scope.clone()).await? {
                Ok((token, expires)) => {
                    cache.insert(project_id.to_string(), (token.clone(), expires));
                    return Ok(token);
                }
                Err(StatusCode::UNAUTHORIZED) if !granted => {
                    self.grant_self(project_id).await?;
                    granted = true;
                }
                Err(status) => {
                    return Err(TokenError::ServiceAuth {
                        site: self.site,
                        status,
                    })
                }
            }
        }
    }

    /// Grants the service account [`SERVICE_PROJECT_ROLE`] in `project_id`.
    async fn grant_self(&self, project_id: &str) -> Result<(), TokenError> {
        let token = self.service_token().await?;
        let me = self
            .validate(&token)
            .await?
            .ok_or(TokenError::Unexpected(StatusCode::UNAUTHORIZED))?;
        let (status, roles) = self
            .call(
                &token,
                Method::GET,
                &format!("/v3/roles?name={SERVICE_PROJECT_ROLE}"),
            )
            .await?;
        let role = roles
            .pointer("/roles/0/id")
            .and_then(Value::as_str)
            .ok_or(TokenError::Unexpected(status))?
            .to_string();
        let path = format!(
            "/v3/projects/{project_id}/users/{}/roles/{role}",
            me.user_id
        );
        let (status, _) = self.call(&token, Method::PUT, &path).await?;
        if !status.is_success() {
            return Err(TokenError::Unexpected(status));
        }
        tracing::info!(site = %self.site, project_id, "service account granted itself a role in the project");
        Ok(())
    }

    /// One bodiless Keystone call with `token`.
    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
    ) -> Result<(StatusCode, Value), TokenError> {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("x-auth-token", token)
            .body(body::empty())
            .map_err(|_| TokenError::Unexpected(StatusCode::BAD_REQUEST))?;
        let (parts, bytes): (_, Bytes) = self.client.send_full(req, 4 << 20).await?;
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((parts.status, json))
    }

    /// Validates `token` at this site: `Ok(None)` when Keystone says it is not valid.
    pub async fn validate(&self, token: &str) -> Result<Option<TokenContext>, TokenError> {
        for attempt in 0..2 {
            let service_token = self.service_token().await?;
            let req = Request::builder()
                .method(Method::GET)
                .uri(format!("{}/v3/auth/tokens?nocatalog", self.base))
                .header("x-auth-token", service_token)
                .header("x-subject-token", token)
                .body(body::empty())
                .map_err(|_| TokenError::Unexpected(StatusCode::BAD_REQUEST))?;
            let (parts, bytes): (_, Bytes) = self.client.send_full(req, 4 << 20).await?;
            match parts.status {
                StatusCode::OK => {
                    let ctx = serde_json::from_slice::<Value>(&bytes)
                        .ok()
                        .and_then(|v| TokenContext::from_token_body(&v, self.site));
                    return Ok(ctx);
                }
                StatusCode::NOT_FOUND => return Ok(None),
                StatusCode::UNAUTHORIZED if attempt == 0 => {
                    // Our own token expired or was revoked: get a new one, once.
                    *self.service_token.lock().await = None;
                }
                other => return Err(TokenError::Unexpected(other)),
            }
        }
        Err(TokenError::Unexpected(StatusCode::UNAUTHORIZED))
    }
}

/// The token → context cache.
#[derive(Clone)]
pub struct TokenCache {
    cache: Cache<String, Arc<TokenContext>>,
    metrics: ProxyMetrics,
}

impl TokenCache {
    pub fn new(capacity: u64, metrics: ProxyMetrics) -> TokenCache {
        TokenCache {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(ExpireAtTokenExpiry)
                .build(),
            metrics,
        }
    }

    /// Remembers the context carried by a token response the gateway proxied.
    pub async fn remember(&self, token: &str, ctx: TokenContext) {
        if ctx.expires_at > SystemTime::now() {
            self.cache.insert(token.to_string(), Arc::new(ctx)).await;
        }
    }

    /// Forgets a token (revoked with `DELETE /v3/auth/tokens`).
    pub async fn forget(&self, token: &str) {
        self.cache.invalidate(token).await;
    }

    /// The context of `token`, validating it at `keystone` on a cache miss. `Ok(None)` for
    /// an invalid token (not cached).
    pub async fn context(
        &self,
        token: &str,
        keystone: &KeystoneClient,
    ) -> Result<Option<Arc<TokenContext>>, TokenError> {
        if let Some(ctx) = self.cache.get(token).await {
            if ctx.expires_at > SystemTime::now() {
                self.metrics.token_cache.with_label_values(&["hit"]).inc();
                return Ok(Some(ctx));
            }
        }
        self.metrics.token_cache.with_label_values(&["miss"]).inc();
        match keystone.validate(token).await {
            Ok(Some(ctx)) => {
                let ctx = Arc::new(ctx);
                if ctx.expires_at > SystemTime::now() {
                    self.cache.insert(token.to_string(), ctx.clone()).await;
                }
                Ok(Some(ctx))
            }
            Ok(None) => {
                self.metrics
                    .token_cache
                    .with_label_values(&["invalid"])
                    .inc();
                Ok(None)
            }
            Err(e) => {
                self.metrics.token_cache.with_label_values(&["error"]).inc();
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_token_body() {
        let body: Value = serde_json::from_str(
            r#"{"token": {"methods": ["password"], "user": {"domain": {"id": "default", "name": "Default"},
            "id": "u1", "name": "admin", "password_expires_at": null}, "audit_ids": ["x"],
            "expires_at": "2999-11-27T17:33:01.000000Z", "issued_at": "2026-11-26T17:33:01.000000Z",
            "project": {"domain": {"id": "default", "name": "Default"}, "id": "p1", "name": "admin"},
            "is_domain": false, "roles": [{"id": "r1", "name": "admin"}, {"id": "r2", "name": "member"}]}}"#,
        )
        .unwrap();
        let ctx = TokenContext::from_token_body(&body, SiteName::Primary).unwrap();
        assert_eq!(ctx.user_id, "u1");
        assert_eq!(ctx.project_id.as_deref(), Some("p1"));
        assert!(ctx.has_role("admin"));
        assert!(ctx.expires_at > SystemTime::now());
    }

    #[test]
    fn rejects_bodies_without_user_or_expiry() {
        assert!(TokenContext::from_token_body(
            &serde_json::json!({"token": {}}),
            SiteName::Primary
        )
        .is_none());
        assert!(
            TokenContext::from_token_body(&serde_json::json!({"x": 1}), SiteName::Primary)
                .is_none()
        );
    }
}
