//! The admin listener (loopback by default): metrics, health, readiness and the `/v1/` API
//! that the `drgw` admin subcommands call.
//!
//! Every call is authenticated: either `Authorization: Bearer <token>` with the token kept
//! in `admin.token_file` (created with mode 0600 on first start), or `X-Auth-Token` with a
//! Keystone token that carries the `admin` role at the active site. Anything else is 401.
//!
//! Every call is audited: a call that may change something (any method but `GET`) is logged
//! at `info` under the target `drgw::admin` with who made it (the token file's holder or the
//! Keystone user), the client's address, the method, the path and the status; a refused call
//! at `warn` with why; reads at `debug`. Never a token or a query string. Each call also
//! counts in `drgw_admin_requests_total{route,status}`.

use std::convert::Infallible;
use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prometheus::{IntCounterVec, Opts, Registry};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::{self, ProxyBody};
use crate::config::SiteName;
use crate::failover::{FailoverController, Site};
use crate::gateway::Gateway;
use crate::journal::{Direction, RecordFilter, StateFilter, TenantRef};
use crate::operation::Service;
use crate::state::IdMapFilter;

/// State shared by admin requests.
pub struct AdminState {
    gateway: Arc<Gateway>,
    failover: Arc<FailoverController>,
    token: String,
    /// `drgw_admin_requests_total{route,status}`.
    requests: IntCounterVec,
}

impl AdminState {
    pub fn new(
        gateway: Arc<Gateway>,
        failover: Arc<FailoverController>,
        token: String,
    ) -> AdminState {
        let requests = admin_requests_counter(&gateway.metrics.registry);
        AdminState {
            gateway,
            failover,
            token,
            requests,
        }
    }
}

/// Makes and registers `drgw_admin_requests_total`. A registry that has it already (a second
/// admin state on one gateway, in tests) keeps counting in its own copy.
fn admin_requests_counter(registry: &Registry) -> IntCounterVec {
    let counter = IntCounterVec::new(
        Opts::new(
            "drgw_admin_requests_total",
            "Admin API calls, by route and status code (401: refused)",
        ),
        &["route", "status"],
    )
    .expect("static metric definition");
    let _ = registry.register(Box::new(counter.clone()));
    counter
}

/// Who made an admin call, as the audit log names them.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// The holder of the bearer token in `admin.token_file`.
    TokenFile,
    /// A Keystone user whose token carries the `admin` role at the active site.
    Keystone {
        user_name: String,
        user_id: String,
        project_name: Option<String>,
    },
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::TokenFile => f.write_str("admin-token-file"),
            Caller::Keystone {
                user_name,
                user_id,
                project_name,
            } => {
                write!(f, "keystone:{user_name} ({user_id})")?;
                match project_name {
                    Some(p) => write!(f, " in project {p}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Why an admin call was refused (for the audit line; the client only learns 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NoCredentials,
    WrongBearerToken,
    KeystoneTokenInvalid,
    KeystoneTokenNotAdmin,
    KeystoneUnreachable,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::NoCredentials => "no credentials",
            Refusal::WrongBearerToken => "wrong bearer token",
            Refusal::KeystoneTokenInvalid => "Keystone token not valid",
            Refusal::KeystoneTokenNotAdmin => "Keystone token without the admin role",
            Refusal::KeystoneUnreachable => "Keystone could not validate the token",
        }
    }
}

/// The admin API's routes: what [`handle`] answers, and the `route` label of every call
/// (one of a fixed set, whatever the path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AdminRoute {
    Metrics,
    Healthz,
    Readyz,
    Status,
    PoliciesReload,
    Journal,
    Checkpoints,
    IdMap,
    FlavorFits,
    FailoverStatus,
    Failover,
    Failback,
    Drill,
    /// `GET /v1/failovers/{id}`.
    FailoverReport,
    /// `POST /v1/journal/{seq}/retry`.
    JournalRetry,
    Unknown,
}

impl AdminRoute {
    fn of(method: &Method, path: &str) -> AdminRoute {
        match (method, path) {
            (&Method::GET, "/metrics") => AdminRoute::Metrics,
            (&Method::GET, "/healthz") => AdminRoute::Healthz,
            (&Method::GET, "/readyz") => AdminRoute::Readyz,
            (&Method::GET, "/v1/status") => AdminRoute::Status,
            (&Method::POST, "/v1/policies/reload") => AdminRoute::PoliciesReload,
            (&Method::GET, "/v1/journal") => AdminRoute::Journal,
            (&Method::GET, "/v1/checkpoints") => AdminRoute::Checkpoints,
            (&Method::GET, "/v1/idmap") => AdminRoute::IdMap,
            (&Method::GET, "/v1/flavor-fits") => AdminRoute::FlavorFits,
            (&Method::GET, "/v1/failover") => AdminRoute::FailoverStatus,
            (&Method::POST, "/v1/failover") => AdminRoute::Failover,
            (&Method::POST, "/v1/failback") => AdminRoute::Failback,
            (&Method::POST, "/v1/drill") => AdminRoute::Drill,
            (&Method::GET, p) if p.starts_with("/v1/failovers/") => AdminRoute::FailoverReport,
            (&Method::POST, p) if p.starts_with("/v1/journal/") && p.ends_with("/retry") => {
                AdminRoute::JournalRetry
            }
            _ => AdminRoute::Unknown,
        }
    }

    fn label(self) -> &'static str {
        match self {
            AdminRoute::Metrics => "metrics",
            AdminRoute::Healthz => "healthz",
            AdminRoute::Readyz => "readyz",
            AdminRoute::Status => "status",
            AdminRoute::PoliciesReload => "policies_reload",
            AdminRoute::Journal => "journal",
            AdminRoute::Checkpoints => "checkpoints",
            AdminRoute::IdMap => "idmap",
            AdminRoute::FlavorFits => "flavor_fits",
            AdminRoute::FailoverStatus => "failover_status",
            AdminRoute::Failover => "failover",
            AdminRoute::Failback => "failback",
            AdminRoute::Drill => "drill",
            AdminRoute::FailoverReport => "failover_report",
            AdminRoute::JournalRetry => "journal_retry",
            AdminRoute::Unknown => "unknown",
        }
    }
}

/// The longest path an audit line carries (the rest is cut, on a character boundary).
const AUDITED_PATH_MAX: usize = 256;

/// Reads the admin bearer token, creating the file (mode 0600, 32 random bytes in hex)
/// when it does not exist.
pub fn ensure_token_file(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim().to_string();
            if token.len() < 16 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: token shorter than 16 characters", path.display()),
                ));
            }
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let bytes: [u8; 32] = rand::random();
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(path)?;
            writeln!(f, "{token}")?;
            Ok(token)
        }
        Err(e) => Err(e),
    }
}

/// Serves the admin API until `stop` turns true. HTTP/1.1 (what `drgw` subcommands and
/// Prometheus speak), with the client listeners' bound on a request head and the idle time
/// before it (`gateway.client_header_timeout`).
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, mut stop: watch::Receiver<bool>) {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(state.gateway.config.client_header_timeout);
    let http1 = Arc::new(http1);
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors, say: wait rather than spin.
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let state = state.clone();
        let http1 = http1.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(audited(&state, req, client).await) }
            });
            let _ = http1.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<ProxyBody> {
    let mut resp = Response::new(body::full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    json_response(
        status,
        json!({"error": {"code": status.as_u16(), "message": message}}),
    )
}

/// Constant-time comparison of the presented bearer token with ours.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn authenticated(state: &AdminState, req: &Request<Incoming>) -> Result<Caller, Refusal> {
    if let Some(bearer) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return if same_token(bearer.trim(), &state.token) {
            Ok(Caller::TokenFile)
        } else {
            Err(Refusal::WrongBearerToken)
        };
    }
    let Some(token) = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
    else {
        return Err(Refusal::NoCredentials);
    };
    let gw = &state.gateway;
    let keystone = &gw.site(gw.active_site()).keystone;
    match gw.tokens.context(token, keystone).await {
        Ok(Some(ctx)) if ctx.has_role("admin") => Ok(Caller::Keystone {
            user_name: ctx.user_name.clone(),
            user_id: ctx.user_id.clone(),
            project_name: ctx.project_name.clone(),
        }),
        Ok(Some(_)) => Err(Refusal::KeystoneTokenNotAdmin),
        Ok(None) => Err(Refusal::KeystoneTokenInvalid),
        Err(_) => Err(Refusal::KeystoneUnreachable),
    }
}

/// Authenticates, answers and audits one admin call (see the module's documentation).
async fn audited(
    state: &AdminState,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Response<ProxyBody> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = AdminRoute::of(&method, &path);
    let logged_path = crate::access_log::clip(&path, AUDITED_PATH_MAX);
    let resp = match authenticated(state, &req).await {
        Ok(caller) => {
            let resp = handle(state, req, route, &caller).await;
            let status = resp.status().as_u16();
            if method == Method::GET {
                tracing::debug!(target: "drgw::admin", %caller, %client, %method, path = %logged_path, status, "admin call");
            } else {
                tracing::info!(target: "drgw::admin", %caller, %client, %method, path = %logged_path, status, "admin call");
            }
            resp
        }
        Err(refusal) => {
            tracing::warn!(target: "drgw::admin", %client, %method, path = %logged_path, reason = refusal.as_str(), "admin call refused");
            let mut resp = error(
                StatusCode::UNAUTHORIZED,
                "The admin API needs the admin bearer token or a Keystone admin token.",
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            resp
        }
    };
    state
        .requests
        .with_label_values(&[route.label(), resp.status().as_str()])
        .inc();
    resp
}

/// Answers an authenticated admin call.
async fn handle(
    state: &AdminState,
    req: Request<Incoming>,
    route: AdminRoute,
    caller: &Caller,
) -> Response<ProxyBody> {
    let gw = &state.gateway;
    match route {
        AdminRoute::Metrics => {
            let mut resp = Response::new(body::full(gw.metrics.render()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        AdminRoute::Healthz => json_response(StatusCode::OK, json!({"status": "ok"})),
        AdminRoute::Readyz => {
            let site = gw.active_site();
            let health = probe_site(gw, site).await;
            let ready = health.iter().all(|(_, up)| *up);
            let services: serde_json::Map<String, serde_json::Value> = health
                .iter()
                .map(|(s, up)| (s.as_str().to_string(), json!(up)))
                .collect();
            json_response(
                if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                json!({"ready": ready, "active_site": site.as_str(), "services": services}),
            )
        }
        AdminRoute::Status => json_response(StatusCode::OK, status(gw).await),
        AdminRoute::PoliciesReload => {
            let (code, body) = gw.policy.reload_response();
            json_response(code, body)
        }
        AdminRoute::Journal => journal_page(gw, req.uri().query()).await,
        AdminRoute::Checkpoints => {
            let q = Query::parse(req.uri().query());
            match gw
                .mirror
                .checkpoints(
                    q.get("tier"),
                    q.number("after"),
                    q.number("limit").unwrap_or(100) as usize,
                )
                .await
            {
                Ok(list) => json_response(StatusCode::OK, json!({"checkpoints": list})),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        AdminRoute::IdMap => idmap(gw, req.uri().query()).await,
        AdminRoute::FlavorFits => {
            let limit = Query::parse(req.uri().query())
                .number("limit")
                .unwrap_or(1000) as usize;
            match gw.mirror.flavor_fits(limit.clamp(1, 10_000)).await {
                Ok(fits) => json_response(StatusCode::OK, json!({"flavor_fits": fits})),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        AdminRoute::FailoverStatus => json_response(StatusCode::OK, json!(state.failover.status())),
        AdminRoute::Failover | AdminRoute::Failback => {
            let failback = route == AdminRoute::Failback;
            switch(&state.failover, failback, req, caller).await
        }
        AdminRoute::Drill => {
            let report = state.failover.drill().await;
            json_response(
                StatusCode::OK,
                json!({"report": report.to_json(), "table": report.to_table(), "clean": report.is_clean()}),
            )
        }
        AdminRoute::FailoverReport => {
            let id = req.uri().path().trim_start_matches("/v1/failovers/");
            match state.failover.report(id).await {
                Ok(Some(report)) => json_response(StatusCode::OK, json!(report)),
                Ok(None) => error(StatusCode::NOT_FOUND, "No failover report with that id."),
                Err(e) => error(e.http_status(), &e.to_string()),
            }
        }
        AdminRoute::JournalRetry => {
            let seq = req
                .uri()
                .path()
                .trim_start_matches("/v1/journal/")
                .trim_end_matches("/retry")
                .parse::<u64>();
            match seq {
                Ok(seq) => match gw.mirror.retry(seq).await {
                    Ok(record) => json_response(StatusCode::OK, json!({"record": record})),
                    Err(e) => error(StatusCode::CONFLICT, &e.to_string()),
                },
                Err(_) => error(
                    StatusCode::BAD_REQUEST,
                    "The journal sequence number is not a number.",
                ),
            }
        }
        AdminRoute::Unknown => error(StatusCode::NOT_FOUND, "No such admin resource."),
    }
}

/// `POST /v1/failover {"to": "recovery", "mode": "planned"|"forced", "drain_timeout_s": 60}`
/// and `POST /v1/failback {"mode": ...}`.
async fn switch(
    fo: &FailoverController,
    failback: bool,
    req: Request<Incoming>,
    caller: &Caller,
) -> Response<ProxyBody> {
    let by = caller.to_string();
    let idle = fo.gateway().config.client_body_timeout;
    let body = match crate::body::read_limited(req.into_body(), 64 * 1024, idle).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let args: serde_json::Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("The body is not JSON: {e}"),
                )
            }
        }
    };
    let forced = match args["mode"].as_str().unwrap_or("planned") {
        "planned" => false,
        "forced" | "force" => true,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("mode `{other}` is neither planned nor forced"),
            )
        }
    };
    let drain = Duration::from_secs(args["drain_timeout_s"].as_u64().unwrap_or(60));
    let result = if failback {
        if forced {
            fo.failback_forced(&by).await
        } else {
            fo.failback_planned(drain, &by).await
        }
    } else {
        let to = match args["to"].as_str().unwrap_or("recovery") {
            "recovery" => Site::Recovery,
            "primary" => Site::Primary,
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("site `{other}` is neither primary nor recovery"),
                )
            }
        };
        if forced {
            fo.forced(to, &by).await
        } else {
            fo.planned(to, drain, &by).await
        }
    };
    match result {
        Ok(report) => json_response(
            StatusCode::OK,
            json!({"report": report, "text": report.to_text()}),
        ),
        Err(e) => json_response(
            e.http_status(),
            json!({"error": e.to_string(), "kind": e.kind()}),
        ),
    }
}

/// A parsed query string (`a=b&c=d`; values are ids and names, used as they come).
struct Query<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Query<'a> {
    fn parse(query: Option<&'a str>) -> Query<'a> {
        Query(
            query
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| p.split_once('=').unwrap_or((p, "")))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.0
            .iter()
            .find(|(k, v)| *k == key && !v.is_empty())
            .map(|(_, v)| *v)
    }

    fn number(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| v.parse().ok())
    }
}

/// `GET /v1/journal?state=&tenant=&tier=&direction=&after=&limit=`
async fn journal_page(gw: &Gateway, query: Option<&str>) -> Response<ProxyBody> {
    let q = Query::parse(query);
    let state = match q.get("state") {
        None => None,
        Some("pending") => Some(StateFilter::Pending),
        Some("applied") => Some(StateFilter::Applied),
        Some("failed") => Some(StateFilter::Failed),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("state `{other}` is not one of pending, applied, failed"),
            )
        }
    };
    let direction = match q.get("direction") {
        None => None,
        Some("forward") => Some(Direction::Forward),
        Some("reverse") => Some(Direction::Reverse),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("direction `{other}` is not one of forward, reverse"),
            )
        }
    };
    let filter = RecordFilter {
        direction,
        state,
        tenant: q.get("tenant").map(|p| TenantRef {
            project_id: p.to_string(),
            domain_id: q.get("domain").unwrap_or("").to_string(),
        }),
        tier: q.get("tier").map(str::to_string),
    };
    let limit = q.number("limit").unwrap_or(100) as usize;
    match gw
        .mirror
        .journal_page(&filter, q.number("after"), limit)
        .await
    {
        Ok(page) => json_response(
            StatusCode::OK,
            json!({"records": page.records, "next_after": page.next_after}),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `GET /v1/idmap?service=&type=&primary_id=`
async fn idmap(gw: &Gateway, query: Option<&str>) -> Response<ProxyBody> {
    let q = Query::parse(query);
    match (q.get("service"), q.get("type"), q.get("primary_id")) {
        (Some(service), Some(kind), Some(id)) => {
            match gw.mirror.idmap_lookup(service, kind, id).await {
                Ok(Some(m)) => json_response(StatusCode::OK, json!({"mapping": m})),
                Ok(None) => error(StatusCode::NOT_FOUND, "No mapping for that primary id."),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        (service, kind, None) => {
            let filter = IdMapFilter {
                service: service.map(str::to_string),
                resource_type: kind.map(str::to_string),
            };
            let limit = q.number("limit").unwrap_or(100) as usize;
            match gw.mirror.idmap_list(&filter, None, limit).await {
                Ok(list) => json_response(StatusCode::OK, json!({"mappings": list})),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        _ => error(
            StatusCode::BAD_REQUEST,
            "A look-up by primary_id needs service and type too.",
        ),
    }
}

/// Probes every service of a site: any HTTP answer to `GET <base>/` counts as up.
pub async fn probe_site(gw: &Gateway, site: SiteName) -> Vec<(Service, bool)> {
    let client = gw.client(site);
    let probes = Service::ALL.iter().map(|&service| {
        let url = format!("{}/", gw.config.site(site).endpoint(service));
        async move {
            let up = match Request::get(url).body(body::empty()) {
                Ok(req) => matches!(
                    tokio::time::timeout(Duration::from_secs(5), client.send_full(req, 1 << 20))
                        .await,
                    Ok(Ok(_))
                ),
                Err(_) => false,
            };
            gw.metrics
                .proxy
                .site_up
                .with_label_values(&[site.as_str(), service.as_str()])
                .set(i64::from(up));
            (service, up)
        }
    });
    futures_util::future::join_all(probes).await
}

async fn status(gw: &Gateway) -> serde_json::Value {
    let mut sites = serde_json::Map::new();
    for site in SiteName::ALL {
        let health = probe_site(gw, site).await;
        let services: serde_json::Map<String, serde_json::Value> = health
            .iter()
            .map(|(s, up)| {
                (
                    s.as_str().to_string(),
                    json!({"url": gw.config.site(site).endpoint(*s), "up": up}),
                )
            })
            .collect();
        sites.insert(site.as_str().to_string(), json!({"services": services}));
    }
    let tiers = match gw.mirror.status().await {
        Ok(tiers) => serde_json::to_value(tiers).unwrap_or_default(),
        Err(e) => json!({"error": e.to_string()}),
    };
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "active_site": gw.active_site().as_str(),
        "id_translation": gw.stable_ids.armed(),
        "sites": sites,
        "tiers": tiers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/admin.token");
        let t1 = ensure_token_file(&path).unwrap();
        let t2 = ensure_token_file(&path).unwrap();
        assert_eq!(t1, t2);
        assert_eq!(t1.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn audit_labels_and_names_are_bounded() {
        let label = |method: &Method, path: &str| AdminRoute::of(method, path).label();
        assert_eq!(label(&Method::POST, "/v1/failover"), "failover");
        assert_eq!(label(&Method::GET, "/v1/failover"), "failover_status");
        assert_eq!(
            label(&Method::POST, "/v1/journal/17/retry"),
            "journal_retry"
        );
        // Any other path, however long or odd, is one label value.
        assert_eq!(label(&Method::DELETE, "/v1/failover"), "unknown");
        assert_eq!(label(&Method::GET, &"/x".repeat(1000)), "unknown");
        let keystone = Caller::Keystone {
            user_name: "alice".into(),
            user_id: "u1".into(),
            project_name: Some("admin".into()),
        };
        assert_eq!(keystone.to_string(), "keystone:alice (u1) in project admin");
        assert_eq!(Caller::TokenFile.to_string(), "admin-token-file");
    }

    #[test]
    fn token_comparison() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
    }
}
