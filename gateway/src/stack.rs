//! The request path, in order. Each stage is one function; this file is the only place
//! that knows the order, and says why each stage sits where it does.
//!
//! ```text
//! client ─▶ listener (server.rs) ─▶ route to a service (prefix or dedicated listener)
//!   1. request context   request id, X-Forwarded-*, hop-by-hop headers dropped
//!                        (first: every later stage and every error carries the id)
//!   2. classify          pure: (service, method, path, microversion) → Operation
//!                        (before anything that depends on what the call does)
//!   3. upstream          the ACTIVE site's configured base URL + the request's path;
//!                        request bodies stream through (never a URL from the request)
//!   4. response rewrite  catalog, version documents, *_links, Location: the client
//!                        never learns an upstream URL (last: it sees the final body)
//! ```
//! The policy decision, the failover guard and the journal append slot in between 2 and 3
//! (and after 3 for the append) as the DR issues land; they only need the `Operation`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use drgw_catalog::EndpointServices;
use futures_util::FutureExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use crate::body::{self, ProxyBody};
use crate::config::SiteName;
use crate::failover::{ids, CollectingLookup, FailoverController};
use crate::fault;
use crate::gateway::Gateway;
use crate::mutation::{MirrorOutcome, Mutation};
use crate::operation::{Action, Operation, ResourceType, Service};
use crate::policy::{
    add_tag_to_response, neutron_tag_path, request, AfterCreate, EvalContext, PolicyVerdict,
    SiteAccess, UsageDelta,
};
use crate::rewrite::{self, BodyRewrite, Rewriter};
use crate::services;
use crate::token::TokenContext;
use crate::upstream::UpstreamBody;

/// Where a listener sends a request: the service and the path prefix to strip.
#[derive(Debug, Clone)]
pub struct ServiceRoute {
    pub service: Service,
    pub prefix: String,
}

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The peer's IP address as an `X-Forwarded-For` element, formatted once per connection.
    forwarded_for: Option<HeaderValue>,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, tls: bool) -> ConnInfo {
        ConnInfo {
            peer,
            tls,
            forwarded_for: HeaderValue::from_str(&peer.ip().to_string()).ok(),
        }
    }

    /// The peer's IP address as an `X-Forwarded-For` element.
    pub(crate) fn forwarded_for_bytes(&self) -> &[u8] {
        self.forwarded_for
            .as_ref()
            .map(HeaderValue::as_bytes)
            .unwrap_or_default()
    }
}

// Header names the request path uses on every call, built once: a `&str` name is parsed
// and hashed anew at every look-up or insert.
pub(crate) static REQUEST_ID: HeaderName = HeaderName::from_static("x-openstack-request-id");
static API_VERSION: HeaderName = HeaderName::from_static("openstack-api-version");
static NOVA_API_VERSION: HeaderName = HeaderName::from_static("x-openstack-nova-api-version");
static SUBJECT_TOKEN: HeaderName = HeaderName::from_static("x-subject-token");
static FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1), plus
/// `Transfer-Encoding` (hyper frames each side's body itself).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    is_hop_by_hop_lower(name.as_str())
}

/// [`is_hop_by_hop`] for a name already in lower case.
fn is_hop_by_hop_lower(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "upgrade"
            | "transfer-encoding"
    )
}

/// [`is_hop_by_hop`] for a header name as it came off the wire, in any case.
pub(crate) fn is_hop_by_hop_raw(name: &str) -> bool {
    // By length first: most names are not compared at all.
    let candidates: &[&str] = match name.len() {
        2 => &["te"],
        7 => &["trailer", "upgrade"],
        10 => &["connection", "keep-alive"],
        16 => &["proxy-connection"],
        17 => &["transfer-encoding"],
        18 => &["proxy-authenticate"],
        19 => &["proxy-authorization"],
        _ => return false,
    };
    candidates.iter().any(|c| name.eq_ignore_ascii_case(c))
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names finds the few present (usually none, or `Connection:
    // keep-alive`), instead of a hashed removal for every hop-by-hop name; they are kept
    // on the stack (at most one of each of the nine names).
    let mut present: [Option<HeaderName>; 9] = Default::default();
    let mut count = 0;
    for name in headers.keys().filter(|n| is_hop_by_hop(n)) {
        if let Some(slot) = present.get_mut(count) {
            *slot = Some(name.clone());
            count += 1;
        }
    }
    if count == 0 {
        return;
    }
    // The usual `Connection` value is a bare option: nothing to parse.
    let only_options = headers.get_all(header::CONNECTION).iter().all(|v| {
        let v = v.as_bytes();
        v.eq_ignore_ascii_case(b"keep-alive") || v.eq_ignore_ascii_case(b"close")
    });
    let named: Vec<HeaderName> = if only_options {
        Vec::new()
    } else {
        connection_named(headers)
    };
    for name in named.iter().chain(present.iter().flatten()) {
        headers.remove(name);
    }
}

/// The header names a `Connection` header lists (its options `close` and `keep-alive`
/// left out).
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // Connection options, not header names (`keep-alive` is removed anyway).
        .filter(|t| !t.eq_ignore_ascii_case("close") && !t.eq_ignore_ascii_case("keep-alive"))
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect()
}

/// The largest request head (request line and header lines) a listener reads; a larger
/// one is refused with 431, as Envoy's `max_request_headers_kb` (60 KiB) does.
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// The request id of a call: the client's `X-Openstack-Request-Id` when it is well formed
/// (`req-<uuid>`), else a new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    request_id_from(headers.get(&REQUEST_ID).map(HeaderValue::as_bytes))
}

/// [`request_id`] from the client's header value, if it sent one.
pub(crate) fn request_id_from(client: Option<&[u8]>) -> HeaderValue {
    if let Some(v) = client {
        if v.len() == 40 && v.starts_with(b"req-") && uuid::Uuid::try_parse_ascii(&v[4..]).is_ok() {
            if let Ok(v) = HeaderValue::from_bytes(v) {
                return v;
            }
        }
    }
    // A v4 UUID from the thread-local userspace RNG: no syscall on the hot path.
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buf = [0u8; 40];
    buf[..4].copy_from_slice(b"req-");
    id.hyphenated().encode_lower(&mut buf[4..]);
    HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("req-unknown"))
}

/// The microversion a request asks for, from either header form.
fn microversion(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(&API_VERSION)
        .or_else(|| headers.get(&NOVA_API_VERSION))
        .and_then(|v| v.to_str().ok())
}

/// Handles one client request end to end. Never fails: every error becomes a response in
/// the fronted service's native error format. Not an `async fn`: the request's future is
/// [`handle_request`]'s own, mapped, rather than a layer that would hold it again.
pub fn handle(
    gw: Arc<Gateway>,
    fo: Arc<FailoverController>,
    route: Arc<ServiceRoute>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> impl Future<Output = Response<ProxyBody>> + Send {
    // Glance negotiates its error pages on `Accept` (webob): the gateway's own errors for it
    // are made as JSON (`native_error`) and made again here for what the client accepts.
    let glance_accept =
        (route.service == Service::Image).then(|| req.headers().get(header::ACCEPT).cloned());
    handle_request(gw, fo, route, conn, req).map(move |resp| match glance_accept {
        Some(accept) => glance_error_for(resp, accept.as_ref()),
        None => resp,
    })
}

/// The message of an error the gateway made for Glance, kept on the response so that
/// [`glance_error_for`] can make it again for the client's `Accept`.
#[derive(Clone)]
struct GlanceErrorMessage(Arc<str>);

/// `resp` again with the body Glance would give for its status and message under `accept`,
/// when the gateway made it ([`native_error`] for the image service); as it is otherwise.
pub(crate) fn glance_error_for(
    mut resp: Response<ProxyBody>,
    accept: Option<&HeaderValue>,
) -> Response<ProxyBody> {
    let Some(GlanceErrorMessage(message)) = resp.extensions_mut().remove::<GlanceErrorMessage>()
    else {
        return resp;
    };
    let accept = accept.and_then(|v| v.to_str().ok());
    let (content_type, body) =
        fault::error_body_for(Service::Image, resp.status(), &message, accept);
    let (mut parts, _) = resp.into_parts();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    Response::from_parts(parts, body::full(body))
}

async fn handle_request(
    gw: Arc<Gateway>,
    fo: Arc<FailoverController>,
    route: Arc<ServiceRoute>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let service = route.service;
    let started = Instant::now();
    // Bronze applies give way to tenant requests while the runtime is busy with them.
    let _tenant = gw.mirror.tenant_request();
    let (mut parts, incoming) = req.into_parts();

    // 1. request context
    let req_id = request_id(&parts.headers);
    if parts.method == Method::CONNECT {
        // A reverse proxy of APIs opens no tunnels (hyper would take a 2xx as one).
        return finish(&gw, service, "other", &req_id, connect_refused(service));
    }
    // The client's URI stays readable while `parts.uri` becomes the upstream one (a cheap,
    // reference-counted clone).
    let client_uri = parts.uri.clone();
    let Some(path) = client_uri.path().strip_prefix(route.prefix.as_str()) else {
        return finish(&gw, service, "other", &req_id, not_found(service));
    };
    let path = if path.is_empty() { "/" } else { path };
    if !path.starts_with('/') {
        return finish(&gw, service, "other", &req_id, not_found(service));
    }
    let site = gw.active_site();

    // 1a. stable IDs (armed from the first failover on): the IDs the tenant knows become
    // the active site's, in the path and the query, before anything reads them.
    let translated = if gw.stable_ids.armed() {
        match stable_target(&gw, site, service, path, client_uri.query()).await {
            Ok(t) => Some(t),
            Err(resp) => return finish(&gw, service, "other", &req_id, resp),
        }
    } else {
        None
    };
    let (path, query) = match &translated {
        Some((p, q)) => (p.as_str(), q.as_deref()),
        None => (path, client_uri.query()),
    };

    // 2. classify
    let op = services::classify(
        service,
        &parts.method,
        path,
        query,
        microversion(&parts.headers),
    );
    let action = op.action.as_str();

    // 2a. failover guard: while a switch drains, writes get 503 + Retry-After in the
    // native format and reads go on (an atomic load when nothing is switching).
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    if let Some(frozen) = fo.guard_accept(&op, accept) {
        return finish(&gw, service, action, &req_id, frozen.map(body::full));
    }

    // 2b. tenant: who makes a change (from the token cache; one validation at the active
    // site's Keystone on a miss). Reads skip this: they need no tenant and stay cheap.
    // Image data streams (never buffered); logins are not changes.
    let protected = op.action.is_mutating()
        && !matches!(op.resource, ResourceType::Token | ResourceType::ImageData)
        && json_or_empty(&parts.headers);
    let tenant_ctx = if protected {
        // Boxed, like the other rare paths below: the request's future is moved whole
        // (into hyper's connection, and within it), so a large state on a path that reads
        // never take costs every request.
        Box::pin(tenant(&gw, &parts.headers, site)).await
    } else {
        None
    };
    // Admission: a write that streams to the upstream is in flight from here on (a switch
    // waits for it). A protected change is admitted once its body is read
    // (`protected_change`): a client slow to send it holds up no switch.
    let _in_flight = if op.action.is_mutating() && tenant_ctx.is_none() {
        match fo.admit_write(&op, accept, site) {
            Ok(tracked) => Some(tracked),
            Err(frozen) => return finish(&gw, service, action, &req_id, (*frozen).map(body::full)),
        }
    } else {
        None
    };

    // 3. upstream
    let uri = match gw.upstream_uri(site, service, path, query) {
        Some(u) => u,
        None => {
            let resp = native_error(
                service,
                StatusCode::BAD_REQUEST,
                "The request path is not a valid URL path.",
            );
            return finish(&gw, service, action, &req_id, resp);
        }
    };
    let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::HOST);
    if tenant_ctx.is_some() || gw.stable_ids.armed() {
        // The gateway reads this answer: a protected change's, to tag, journal and mirror
        // the resource; any answer once stable IDs are armed, to translate its IDs. It asks
        // for it unencoded, whatever the client accepts (a compressing balancer in front of
        // the service would otherwise hide it).
        parts.headers.remove(header::ACCEPT_ENCODING);
    }
    append_forwarded(
        &mut parts.headers,
        conn,
        original_host,
        gw.forwarded_prefix(site, service),
    );
    parts.headers.insert(REQUEST_ID.clone(), req_id.clone());
    let subject_token = parts.headers.get(&SUBJECT_TOKEN).cloned();
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;

    // 2c. a protected change: the JSON body is read (bounded), the policy decides the tier
    // (and may refuse or rewrite), and a success is journaled before the tenant hears of it.
    if let Some(ctx) = tenant_ctx {
        let project = gw.access_log.as_ref().and_then(|_| ctx.project_id.clone());
        let mut decided_tier = None;
        let change = Change {
            op: &op,
            fo: &fo,
            tenant: ctx,
            path,
            site,
            req_id: &req_id,
            decided_tier: &mut decided_tier,
        };
        // Boxed: its state is large, and reads should not carry (and move) it.
        let mut resp = Box::pin(protected_change(&gw, change, parts, incoming)).await;
        if gw.access_log.is_some() {
            resp.extensions_mut().insert(crate::access_log::Tenancy {
                project,
                tier: decided_tier,
            });
        }
        return finish(&gw, service, action, &req_id, resp);
    }
    let mut stall_watch = None;
    let upstream_body = if gw.stable_ids.armed()
        && op.resource == ResourceType::Token
        && op.action == Action::Create
    {
        // A login that scopes to a project by ID: the ID the tenant knows.
        match stable_auth_body(&gw, site, &mut parts, incoming).await {
            Ok(b) => b,
            Err(resp) => return finish(&gw, service, action, &req_id, resp),
        }
    } else if http_body::Body::is_end_stream(&incoming) {
        body::stream(incoming)
    } else {
        let (streamed, watch) = body::stream_watched(incoming, gw.config.client_body_timeout);
        stall_watch = Some(watch);
        streamed
    };
    let upstream_req = Request::from_parts(parts, upstream_body);
    let sent = send_upstream(&gw, service, site, upstream_req);
    let resp = match sent.await {
        Ok(resp) => resp,
        Err(e) => {
            let resp = match stall_watch.as_ref().and_then(body::StallWatch::stalled) {
                // The client stopped sending, not the upstream answering: the upstream saw
                // the request broken off (and keeps nothing of it).
                Some(idle) => {
                    tracing::info!(service = service.as_str(), request_id = ?req_id, "request body stalled");
                    body_stalled(service, idle)
                }
                None => upstream_failure(&gw, service, site, &req_id, &e),
            };
            return finish(&gw, service, action, &req_id, resp);
        }
    };

    // 4. response rewrite
    let resp = rewrite_response(&gw, &op, subject_token, resp).await;
    let mut resp = resp;
    if !resp.headers().contains_key(&REQUEST_ID) {
        resp.headers_mut()
            .insert(REQUEST_ID.clone(), req_id.clone());
    }
    tracing::debug!(
        service = service.as_str(),
        action,
        status = resp.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "proxied"
    );
    finish(&gw, service, action, &req_id, resp)
}

/// Sends a request to the active site, timing it. Not an `async fn`: the client's future,
/// mapped, is the whole state (each async layer would hold the request again, and the
/// general path moves its request's future whole).
fn send_upstream<'a>(
    gw: &'a Gateway,
    service: Service,
    site: SiteName,
    req: Request<ProxyBody>,
) -> impl Future<Output = Result<Response<UpstreamBody>, crate::upstream::UpstreamError>> + Send + 'a
{
    let sent = Instant::now();
    gw.client(site).send(req).inspect(move |resp| {
        if resp.is_ok() {
            gw.metrics
                .proxy
                .observe_upstream(service, site, sent.elapsed().as_secs_f64());
        }
    })
}

/// [`send_upstream`], with failures answered in the service's native format (502/504).
async fn send_upstream_or_fail(
    gw: &Gateway,
    service: Service,
    site: SiteName,
    req_id: &HeaderValue,
    req: Request<ProxyBody>,
) -> Result<Response<UpstreamBody>, Response<ProxyBody>> {
    send_upstream(gw, service, site, req)
        .await
        .map_err(|e| upstream_failure(gw, service, site, req_id, &e))
}

/// Counts and logs a failed upstream call, and answers it: 504 for a timeout, else 502,
/// in the service's native format.
pub(crate) fn upstream_failure(
    gw: &Gateway,
    service: Service,
    site: SiteName,
    req_id: &HeaderValue,
    e: &crate::upstream::UpstreamError,
) -> Response<ProxyBody> {
    gw.metrics
        .proxy
        .upstream_errors
        .with_label_values(&[service.as_str(), e.kind()])
        .inc();
    tracing::warn!(service = service.as_str(), site = site.as_str(), error = %e, request_id = ?req_id, "upstream failed");
    let message = match e.status() {
        StatusCode::GATEWAY_TIMEOUT => {
            format!("The {service} service at site {site} did not answer in time.")
        }
        _ => format!("The {service} service at site {site} is unreachable."),
    };
    native_error(service, e.status(), &message)
}

/// One protected change in flight.
struct Change<'a> {
    op: &'a Operation,
    fo: &'a FailoverController,
    tenant: Arc<TokenContext>,
    /// Path relative to the service's base URL.
    path: &'a str,
    site: SiteName,
    req_id: &'a HeaderValue,
    /// The tier the policy chose, for the access log (set only while it is on).
    decided_tier: &'a mut Option<String>,
}

/// The path of a protected change: read and check the JSON body, let the policy decide,
/// forward, then (on success) tag, count, journal and mirror before answering.
async fn protected_change(
    gw: &Gateway,
    change: Change<'_>,
    mut parts: http::request::Parts,
    incoming: Incoming,
) -> Response<ProxyBody> {
    let service = change.op.service;
    let limit = gw.config.max_body_bytes;
    let raw = match body::read_limited(incoming, limit, gw.config.client_body_timeout).await {
        Ok(raw) => raw,
        Err(e) => return body_refused(service, &e, &parts.headers),
    };
    // In flight from here on, if no switch froze writes or finished meanwhile.
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let _in_flight = match change
        .fo
        .admit_write(change.op, accept.as_deref(), change.site)
    {
        Ok(tracked) => tracked,
        Err(frozen) => return (*frozen).map(body::full),
    };
    let mut json: Option<Value> = if raw.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice(&raw) {
            Ok(v) => Some(v),
            Err(e) => {
                let message = format!("The request body is not valid JSON: {e}.");
                return native_error(service, StatusCode::BAD_REQUEST, &message);
            }
        }
    };
    if gw.stable_ids.armed() {
        if let Some(v) = json.as_mut() {
            if let Err(resp) = stable_request_body(gw, change.site, service, v).await {
                return resp;
            }
        }
    }
    let mut op = change.op.clone();
    if op.action == Action::Action && op.action_name.is_none() {
        op.action_name = json.as_ref().and_then(services::action_name_from_body);
    }
    let verdict = gw
        .policy
        .evaluate(EvalContext {
            op: &op,
            method: &parts.method,
            path: change.path,
            tenant: &change.tenant,
            headers: &parts.headers,
            body: json.as_mut(),
            failed_over: false,
            site: Some(SiteAccess::of(gw, change.site)),
        })
        .await;
    if let Some(denied) = verdict.deny_response(service, accept.as_deref()) {
        tracing::info!(request_id = ?change.req_id, operation = %op.policy_name(), "refused by policy");
        return denied.map(body::full);
    }
    if gw.access_log.is_some() {
        *change.decided_tier = verdict.tier().map(|tier| tier.name.clone());
    }
    let PolicyVerdict::Allow {
        tier,
        after_create,
        usage,
    } = verdict
    else {
        // Not a change the policy covers: forward the body as it came.
        let req = Request::from_parts(parts, body::full(raw));
        return match send_upstream_or_fail(gw, service, change.site, change.req_id, req).await {
            Ok(resp) => rewrite_response(gw, &op, None, resp).await,
            Err(resp) => resp,
        };
    };
    let outbound = match &json {
        Some(v) => Bytes::from(serde_json::to_vec(v).unwrap_or_else(|_| raw.to_vec())),
        None => raw,
    };
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(outbound.len()));
    let auth_token = parts.headers.get("x-auth-token").cloned();
    let method = parts.method.clone();
    let query = parts.uri.query().map(str::to_string);
    let microversion = microversion(&parts.headers).map(str::to_string);
    let req = Request::from_parts(parts, body::full(outbound));
    let resp = match send_upstream(gw, service, change.site, req).await {
        Ok(resp) => resp,
        Err(e) => {
            if !e.sent_nothing() {
                unconfirmed_change(gw, &op, &change, &tier.name, e.kind());
            }
            return upstream_failure(gw, service, change.site, change.req_id, &e);
        }
    };
    let (mut rparts, rbody) = resp.into_parts();
    strip_hop_by_hop(&mut rparts.headers);
    let rbytes = match rewrite::buffer_prefix(rbody, gw.response_buffer_limit()).await {
        rewrite::Buffered::Complete(bytes) => bytes,
        rewrite::Buffered::Overflow(rest) => {
            // A mutation answer this large is not JSON we can use; pass it on untouched.
            rparts.headers.remove(header::CONTENT_LENGTH);
            return Response::from_parts(rparts, rest);
        }
        rewrite::Buffered::Failed(e) => {
            tracing::warn!(error = %e, "upstream response body did not come whole");
            if rparts.status.is_success() {
                unconfirmed_change(gw, &op, &change, &tier.name, "broken_answer");
            }
            return upstream_body_failed(service, crate::upstream::is_timeout(&*e));
        }
    };
    if !rparts.status.is_success() {
        return finish_buffered(gw, &op, rparts, rbytes, None).await;
    }
    let mut rjson: Option<Value> = if is_json(&rparts.headers)
        && !rparts.headers.contains_key(header::CONTENT_ENCODING)
        && !rbytes.is_empty()
    {
        serde_json::from_slice(&rbytes).ok()
    } else {
        None
    };
    // A Neutron bulk create (`{"networks": [...]}`): each created resource is tagged,
    // counted, journaled and mirrored like a create of its own.
    let bulk = request::recognise(service, &method, change.path)
        .filter(|t| t.action == Action::Create)
        .and_then(|t| Some((t.kind, t.kind.bulk_key()?, t.kind.body_key()?)))
        .filter(|(kind, _, _)| {
            json.as_ref()
                .and_then(|b| request::bulk_items(*kind, b))
                .is_some()
        });
    // The tier tag: the journaled answer carries it (the recovery copy is tagged with it as
    // part of the create's record), while it is put on the primary resource at the same
    // time; the tenant's answer shows it once Neutron took it.
    let tier_tag = after_create
        .as_ref()
        .map(|AfterCreate::NeutronTag { tag }| tag.as_str());
    let mut journaled = rjson.clone();
    if let (Some(tag), Some(created)) = (tier_tag, journaled.as_mut()) {
        match bulk {
            Some((_, list_key, item_key)) => {
                let items = created.get_mut(list_key).and_then(Value::as_array_mut);
                for item in items.into_iter().flatten() {
                    let mut one = serde_json::json!({ item_key: item.take() });
                    add_tag_to_response(&mut one, tag);
                    *item = one.get_mut(item_key).map(Value::take).unwrap_or_default();
                }
            }
            None => {
                add_tag_to_response(created, tag);
            }
        }
    }
    let tagging = async {
        let (Some(tag), Some(created)) = (tier_tag, rjson.as_mut()) else {
            return;
        };
        match bulk {
            Some((_, list_key, item_key)) => {
                let items = created.get_mut(list_key).and_then(Value::as_array_mut);
                for item in items.into_iter().flatten() {
                    let mut one = serde_json::json!({ item_key: item.take() });
                    if neutron_tag(gw, change.site, change.path, auth_token.clone(), &one, tag)
                        .await
                    {
                        add_tag_to_response(&mut one, tag);
                    }
                    *item = one.get_mut(item_key).map(Value::take).unwrap_or_default();
                }
            }
            None => {
                if neutron_tag(gw, change.site, change.path, auth_token, created, tag).await {
                    add_tag_to_response(created, tag);
                }
            }
        }
    };
    let location = rparts
        .headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mutation = Mutation {
        site: change.site,
        op: op.clone(),
        tenant: change.tenant.clone(),
        tier: tier.clone(),
        method,
        path: change.path.to_string(),
        query,
        microversion,
        request_body: json,
        status: rparts.status,
        response_body: journaled.clone(),
        location,
    };
    let creates = match bulk {
        Some((_, list_key, item_key)) => match mutation.split_bulk(list_key, item_key) {
            Some(parts) => parts,
            None => {
                tracing::error!(request_id = ?change.req_id, "a bulk create's answer does not list what it asked for; not journaled");
                return native_error(
                    service,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The change could not be recorded for disaster recovery (the answer does not list the resources created); please retry.",
                );
            }
        },
        None => vec![mutation],
    };
    // A single create's usage commits with its journal record (one commit instead of two);
    // anything else (a bulk create, a delete, a change that is not journaled) on its own.
    let along = match creates.as_slice() {
        [_] => gw
            .policy
            .usage_of_create(&change.tenant, &tier, &usage, journaled.as_ref()),
        _ => None,
    };
    let counting = async {
        if along.is_none() {
            gw.policy
                .record_usage(&change.tenant, &tier, &usage, journaled.as_ref())
                .await;
        }
    };
    let journaling = async {
        let mut creates = creates;
        let single = match (&along, creates.len()) {
            (Some(pending), 1) => creates.pop().map(|m| (m, pending)),
            _ => None,
        };
        let Some((mutation, pending)) = single else {
            return submit_creates(gw, change.req_id, &creates).await;
        };
        let outcome = gw.mirror.submit_along(mutation, pending.batch()).await;
        match outcome {
            MirrorOutcome::NotMirrored | MirrorOutcome::Failed { .. } => {
                gw.policy.commit_usage(pending.clone()).await;
            }
            _ => gw.policy.usage_committed(pending),
        }
        outcome
    };
    // Tagging at the primary, counting and journaling (with Gold's apply) are independent:
    // made together, their round trips and disk flushes overlap.
    let (_, _, outcome) = tokio::join!(tagging, counting, journaling);
    match &outcome {
        MirrorOutcome::Rejected { reason } => {
            if let UsageDelta::Add { kind, .. } = &usage {
                // Compensated at the primary: the recovery capacity is not used after all.
                for id in rjson
                    .as_ref()
                    .map(|r| request::created_ids(*kind, r))
                    .unwrap_or_default()
                {
                    let release = UsageDelta::Remove {
                        kind: *kind,
                        id: id.to_string(),
                    };
                    gw.policy
                        .record_usage(&change.tenant, &tier, &release, None)
                        .await;
                }
            }
            let message = format!(
                "The {} tier requires the recovery site to apply this change first, and it could not: {reason}. Nothing was changed.",
                tier.name
            );
            return native_error(service, StatusCode::SERVICE_UNAVAILABLE, &message);
        }
        MirrorOutcome::Failed { reason } => {
            tracing::error!(request_id = ?change.req_id, reason, "change made at the primary but not journaled");
            let message = format!(
                "The change could not be recorded for disaster recovery ({reason}); please retry."
            );
            return native_error(service, StatusCode::SERVICE_UNAVAILABLE, &message);
        }
        _ => {}
    }
    if let Ok(v) = HeaderValue::from_str(&tier.name) {
        rparts.headers.insert("x-dr-tier", v);
    }
    if let Some(v) = outcome.header_value() {
        rparts
            .headers
            .insert("x-dr-mirror", HeaderValue::from_static(v));
    }
    let rbytes = match (&rjson, &after_create) {
        (Some(v), Some(_)) => {
            Bytes::from(serde_json::to_vec(v).unwrap_or_else(|_| rbytes.to_vec()))
        }
        _ => rbytes,
    };
    finish_buffered(gw, &op, rparts, rbytes, None).await
}

/// Submits the mirror records of a change: one, or one per resource of a Neutron bulk
/// create. The outcome is the weakest one: a bulk create is only `Applied` if every part
/// was. When a Gold part is rejected (the engine has undone that part), the others are
/// undone too — deleted at the primary, and the parts already mirrored deleted at the
/// recovery site through the journal — so that the tenant's 503 "nothing was changed"
/// holds for all.
async fn submit_creates(gw: &Gateway, req_id: &HeaderValue, creates: &[Mutation]) -> MirrorOutcome {
    let mut outcome = MirrorOutcome::NotMirrored;
    for (i, m) in creates.iter().enumerate() {
        let part = gw.mirror.submit(m.clone()).await;
        if let MirrorOutcome::Rejected { .. } = &part {
            for (j, other) in creates.iter().enumerate().filter(|(j, _)| *j != i) {
                if let Err(e) = gw.mirror.undo_create(other).await {
                    tracing::warn!(request_id = ?req_id, error = %e, "cannot undo a part of a rejected bulk create");
                }
                if j < i {
                    if let Err(reason) = gw.mirror.journal_undo(other).await {
                        tracing::error!(request_id = ?req_id, reason, "the recovery copy of an undone bulk item could not be journaled for deletion");
                    }
                }
            }
        }
        if matches!(
            part,
            MirrorOutcome::Rejected { .. } | MirrorOutcome::Failed { .. }
        ) {
            return part;
        }
        outcome = weaker(outcome, part);
    }
    outcome
}

/// Of two parts' outcomes, the one to report for the whole call.
fn weaker(a: MirrorOutcome, b: MirrorOutcome) -> MirrorOutcome {
    let rank = |o: &MirrorOutcome| match o {
        MirrorOutcome::NotMirrored => 0,
        MirrorOutcome::Applied => 1,
        MirrorOutcome::Queued => 2,
        MirrorOutcome::Degraded { .. } => 3,
        MirrorOutcome::Rejected { .. } | MirrorOutcome::Failed { .. } => 4,
    };
    if rank(&b) >= rank(&a) {
        b
    } else {
        a
    }
}

/// Tags a resource Neutron just created (Neutron takes no tags in create bodies), with the
/// tenant's own token, at the same site. Returns whether Neutron accepted it.
async fn neutron_tag(
    gw: &Gateway,
    site: SiteName,
    create_path: &str,
    auth_token: Option<HeaderValue>,
    created: &Value,
    tag: &str,
) -> bool {
    let Some(uri) = neutron_tag_path(create_path, created, tag)
        .and_then(|tag_path| gw.upstream_uri(site, Service::Network, &tag_path, None))
    else {
        return false;
    };
    let mut req = Request::put(uri);
    if let Some(token) = auth_token {
        req = req.header("x-auth-token", token);
    }
    let Ok(req) = req.body(body::empty()) else {
        return false;
    };
    match gw.client(site).send_full(req, 1 << 20).await {
        Ok((parts, _)) if parts.status.is_success() => true,
        Ok((parts, _)) => {
            tracing::warn!(
                status = parts.status.as_u16(),
                "Neutron refused the tier tag"
            );
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot tag the Neutron resource");
            false
        }
    }
}

/// The token context of the caller, if the token is valid. Keystone trouble is logged and
/// treated as unknown: the upstream service still validates the token itself.
async fn tenant(gw: &Gateway, headers: &HeaderMap, site: SiteName) -> Option<Arc<TokenContext>> {
    let token = headers.get("x-auth-token")?.to_str().ok()?;
    match gw.tokens.context(token, &gw.site(site).keystone).await {
        Ok(ctx) => ctx,
        Err(e) => {
            tracing::warn!(error = %e, "cannot resolve the caller's token");
            None
        }
    }
}

/// Sets `X-Forwarded-For` (the client's chain plus its peer), `-Proto`, `-Host` (the
/// client's `Host`) and `-Prefix` (see [`crate::gateway::forwarded_prefix`]). The client's
/// own `Forwarded` and `X-Forwarded-Prefix` are dropped: oslo.middleware reads `Forwarded`
/// before the `X-Forwarded-*` headers, so either would let a client choose the URLs the
/// service builds in place of the gateway's.
fn append_forwarded(
    headers: &mut HeaderMap,
    conn: ConnInfo,
    original_host: Option<HeaderValue>,
    prefix: Option<&HeaderValue>,
) {
    headers.remove(header::FORWARDED);
    match prefix {
        Some(prefix) => headers.insert(FORWARDED_PREFIX.clone(), prefix.clone()),
        None => headers.remove(&FORWARDED_PREFIX),
    };
    let xff = match headers.get(&FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.is_empty() => {
            HeaderValue::from_str(&format!("{prev}, {}", conn.peer.ip())).ok()
        }
        // The usual case: the per-connection value, without formatting.
        _ => conn.forwarded_for,
    };
    if let Some(v) = xff {
        headers.insert(FORWARDED_FOR.clone(), v);
    }
    headers.insert(
        FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
    );
    if let Some(host) = original_host {
        headers.insert(FORWARDED_HOST.clone(), host);
    }
}

/// An error the gateway itself answers, in the fronted service's native format.
pub(crate) fn native_error(
    service: Service,
    status: StatusCode,
    message: &str,
) -> Response<ProxyBody> {
    let mut resp = fault::error_response(service, status, message).map(body::full);
    if service == Service::Image {
        resp.extensions_mut()
            .insert(GlanceErrorMessage(Arc::from(message)));
    }
    resp
}

/// The answer to a request body the gateway could not read (`request`: its headers): 413
/// beyond the limit, 408 when the client stopped sending it (the connection then closes:
/// the rest is unread), 400 when it broke off.
fn body_refused(
    service: Service,
    e: &body::ReadBodyError,
    request: &HeaderMap,
) -> Response<ProxyBody> {
    match e {
        body::ReadBodyError::TooLarge { limit } => body_too_large(service, *limit, request),
        body::ReadBodyError::Stalled { idle } => body_stalled(service, *idle),
        body::ReadBodyError::Broken(_) => native_error(
            service,
            StatusCode::BAD_REQUEST,
            "The request body could not be read.",
        ),
    }
}

/// 413 for a body over the gateway's limit. Nova, Cinder and Keystone refuse a body whose
/// declared length is over theirs before their own code runs (oslo.middleware's
/// `sizelimit`, outside their fault handling), so theirs is webob's page, negotiated on
/// `Accept`, with sizelimit's message (naming the gateway's limit). A body without a
/// declared length, and Neutron's and Glance's, get the service's usual format.
fn body_too_large(service: Service, limit: u64, request: &HeaderMap) -> Response<ProxyBody> {
    let sizelimit_first = matches!(
        service,
        Service::Compute | Service::BlockStorage | Service::Identity
    );
    if sizelimit_first && request.contains_key(header::CONTENT_LENGTH) {
        let message = format!("Request is too large. Larger than max_request_body_size ({limit}).");
        let accept = request.get(header::ACCEPT).and_then(|v| v.to_str().ok());
        return fault::webob_error_response(StatusCode::PAYLOAD_TOO_LARGE, &message, accept)
            .map(body::full);
    }
    let message = format!("The request body is larger than {limit} bytes.");
    native_error(service, StatusCode::PAYLOAD_TOO_LARGE, &message)
}

/// 408 for a request body that stopped arriving for `idle`.
fn body_stalled(service: Service, idle: std::time::Duration) -> Response<ProxyBody> {
    let message = format!(
        "The request body stopped arriving: nothing for {} s.",
        idle.as_secs_f64()
    );
    native_error(service, StatusCode::REQUEST_TIMEOUT, &message)
}

/// Counts and logs a protected change the upstream may have made although the gateway
/// could not learn it: the request was sent (or may have been), and then no answer came in
/// time, the connection broke, or a success's body broke off. The tenant gets 502/504 and
/// nothing is journaled, so if the upstream did make the change it exists at the site
/// unmirrored (and untagged if the tag was to follow the create). `reason` is the metric
/// label: `timeout`, `reset` or `broken_answer`.
fn unconfirmed_change(
    gw: &Gateway,
    op: &Operation,
    change: &Change<'_>,
    tier: &str,
    reason: &'static str,
) {
    let service = op.service.as_str();
    gw.metrics
        .proxy
        .unconfirmed_changes
        .with_label_values(&[service, reason])
        .inc();
    tracing::warn!(
        service,
        site = change.site.as_str(),
        operation = %op.policy_name(),
        project = ?change.tenant.project_id,
        tier,
        reason,
        request_id = ?change.req_id,
        "the upstream may have made this change without saying so; it is not mirrored"
    );
}

/// The answer to an upstream response whose body the gateway had to read and did not get
/// whole: 504 when the upstream stopped sending it for the request timeout, else 502.
pub(crate) fn upstream_body_failed(service: Service, stopped: bool) -> Response<ProxyBody> {
    if stopped {
        native_error(
            service,
            StatusCode::GATEWAY_TIMEOUT,
            "The upstream response stopped coming.",
        )
    } else {
        native_error(
            service,
            StatusCode::BAD_GATEWAY,
            "The upstream response broke off.",
        )
    }
}

/// 405 for `CONNECT`, with the methods the OpenStack APIs serve.
fn connect_refused(service: Service) -> Response<ProxyBody> {
    let mut resp = native_error(
        service,
        StatusCode::METHOD_NOT_ALLOWED,
        "CONNECT is not served here: this is an OpenStack API endpoint, not a forward proxy.",
    );
    resp.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    resp
}

fn not_found(service: Service) -> Response<ProxyBody> {
    native_error(
        service,
        StatusCode::NOT_FOUND,
        "The resource could not be found.",
    )
}

/// The last step of every answer, the gateway's own and the upstream's: the gateway's HTTP
/// version, a request id, what the access log needs, and the request counted.
pub(crate) fn finish(
    gw: &Gateway,
    service: Service,
    action: &'static str,
    req_id: &HeaderValue,
    mut resp: Response<ProxyBody>,
) -> Response<ProxyBody> {
    // The gateway speaks its own HTTP version to its clients, whatever the upstream's
    // was (RFC 9110 §6.2; nginx does the same): an upstream's `HTTP/1.0` answer is not
    // passed on as one to an HTTP/1.1 client.
    *resp.version_mut() = http::Version::HTTP_11;
    if !resp.headers().contains_key(&REQUEST_ID) {
        resp.headers_mut()
            .insert(REQUEST_ID.clone(), req_id.clone());
    }
    if gw.access_log.is_some() {
        resp.extensions_mut().insert(crate::access_log::Classified {
            service,
            action,
            request_id: req_id.clone(),
        });
    }
    gw.metrics
        .proxy
        .count_request(service, action, resp.status());
    resp
}

/// True for the responses whose body is a Keystone catalog or endpoint list.
pub(crate) fn carries_catalog(op: &Operation) -> bool {
    op.service == Service::Identity
        && op.action == Action::Read
        && matches!(
            op.resource,
            ResourceType::Token | ResourceType::Catalog | ResourceType::Endpoint
        )
        || (op.resource == ResourceType::Token && op.action == Action::Create)
}

/// True when a request body is JSON or absent (a DELETE): the bodies a protected change
/// may carry.
fn json_or_empty(headers: &HeaderMap) -> bool {
    !headers.contains_key(header::CONTENT_TYPE) || is_json(headers)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| is_json_type(v.as_bytes()))
}

/// True for a JSON `Content-Type` value (`application/json`, `*+json`, Glance's
/// `application/openstack-images-v2.1-json-patch`), parameters aside.
pub(crate) fn is_json_type(value: &[u8]) -> bool {
    // The usual value, without splitting off parameters.
    if value.eq_ignore_ascii_case(b"application/json") {
        return true;
    }
    std::str::from_utf8(value)
        .ok()
        .map(|ct| {
            let ct = ct.split(';').next().unwrap_or("").trim();
            let lower_ends = |suffix: &str| {
                ct.len() >= suffix.len()
                    && ct.is_char_boundary(ct.len() - suffix.len())
                    && ct[ct.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            };
            ct.eq_ignore_ascii_case("application/json")
                || lower_ends("+json")
                || (ct.len() >= 28
                    && ct.is_char_boundary(28)
                    && ct[..28].eq_ignore_ascii_case("application/openstack-images"))
        })
        .unwrap_or(false)
}

/// Rewrites what the client must not see: upstream URLs in `Location` and in JSON bodies,
/// and the catalog of token responses. Bodies that need no rewrite stream through.
async fn rewrite_response(
    gw: &Gateway,
    op: &Operation,
    subject_token: Option<HeaderValue>,
    resp: Response<UpstreamBody>,
) -> Response<ProxyBody> {
    let (mut parts, incoming) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let rewriter = gw.rewriter();
    point_headers_at_gateway(gw, &rewriter, op.service, &mut parts.headers);
    // Token revocation: forget the context.
    if op.resource == ResourceType::Token
        && op.action == Action::Delete
        && parts.status.is_success()
    {
        if let Some(token) = subject_token.as_ref().and_then(|v| v.to_str().ok()) {
            gw.tokens.forget(token).await;
        }
    }
    let wants_body = is_json(&parts.headers)
        && parts.status != StatusCode::NO_CONTENT
        && parts.status != StatusCode::NOT_MODIFIED;
    if !wants_body {
        return Response::from_parts(parts, body::stream(incoming));
    }
    let limit = gw.response_buffer_limit();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        // Too large to rewrite safely in memory: stream it as it is.
        tracing::warn!(
            bytes = declared,
            limit,
            "JSON response too large to rewrite; streamed unchanged"
        );
        return Response::from_parts(parts, body::stream(incoming));
    }
    // Plain link-carrying bodies are scanned chunk by chunk as they arrive and pass on in
    // those chunks unless an upstream authority turns up; catalogs and encoded bodies are
    // always read whole, and so is every body while stable IDs are armed (its IDs may
    // need translating).
    let buffered = if carries_catalog(op)
        || parts.headers.contains_key(header::CONTENT_ENCODING)
        || gw.stable_ids.armed()
    {
        rewrite::buffer_prefix(incoming, limit).await
    } else {
        match rewrite::read_scanning(incoming, limit, &rewriter).await {
            rewrite::Scanned::Clean(chunks) => {
                let len: usize = chunks.iter().map(Bytes::len).sum();
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                return Response::from_parts(parts, body::chunks(chunks));
            }
            rewrite::Scanned::Rewrite(buffered) => buffered,
        }
    };
    let buffered = match buffered {
        rewrite::Buffered::Complete(bytes) => bytes,
        rewrite::Buffered::Overflow(rest) => {
            tracing::warn!(
                limit,
                "JSON response too large to rewrite; streamed unchanged"
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            return Response::from_parts(parts, rest);
        }
        rewrite::Buffered::Failed(e) => {
            tracing::warn!(error = %e, "upstream response body did not come whole");
            return upstream_body_failed(op.service, crate::upstream::is_timeout(&*e));
        }
    };
    // Boxed: only a body that needs rewriting comes here (see `tenant` in `handle`).
    Box::pin(finish_buffered(
        gw,
        op,
        parts,
        buffered,
        subject_token.as_ref(),
    ))
    .await
}

/// A response header that may carry an upstream URL the client must not see.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UpstreamNaming {
    /// `Location`.
    Location,
    /// A 401's `WWW-Authenticate: Keystone uri="..."`.
    Challenge,
}

impl UpstreamNaming {
    pub(crate) const ALL: [(HeaderName, UpstreamNaming); 2] = [
        (header::LOCATION, UpstreamNaming::Location),
        (header::WWW_AUTHENTICATE, UpstreamNaming::Challenge),
    ];

    /// Which one a header name (in any case) is, if either.
    pub(crate) fn of(name: &str) -> Option<UpstreamNaming> {
        UpstreamNaming::ALL
            .into_iter()
            .find(|(n, _)| name.eq_ignore_ascii_case(n.as_str()))
            .map(|(_, which)| which)
    }
}

/// The gateway's value for such a header, if `value` names an upstream (`Location`
/// rewrites are counted).
pub(crate) fn point_at_gateway(
    gw: &Gateway,
    rewriter: &Rewriter,
    service: Service,
    which: UpstreamNaming,
    value: &str,
) -> Option<HeaderValue> {
    let new = match which {
        UpstreamNaming::Location => rewriter.rewrite_url(service, value)?,
        UpstreamNaming::Challenge => rewriter.rewrite_www_authenticate(value)?,
    };
    let new = HeaderValue::from_str(&new).ok()?;
    if let UpstreamNaming::Location = which {
        gw.metrics
            .proxy
            .rewrites
            .with_label_values(&["location"])
            .inc();
    }
    Some(new)
}

/// Points a `Location` header, and a 401's `WWW-Authenticate`, at the gateway.
pub(crate) fn point_headers_at_gateway(
    gw: &Gateway,
    rewriter: &Rewriter,
    service: Service,
    headers: &mut HeaderMap,
) {
    for (name, which) in UpstreamNaming::ALL {
        let new = headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| point_at_gateway(gw, rewriter, service, which, v));
        if let Some(new) = new {
            headers.insert(name, new);
        }
    }
}

/// Rewrites a buffered response body (catalog, links) and fills the token cache from token
/// responses.
pub(crate) async fn finish_buffered(
    gw: &Gateway,
    op: &Operation,
    mut parts: http::response::Parts,
    buffered: Bytes,
    subject_token: Option<&HeaderValue>,
) -> Response<ProxyBody> {
    let rewriter = gw.rewriter();
    point_headers_at_gateway(gw, &rewriter, op.service, &mut parts.headers);
    let limit = gw.response_buffer_limit();
    let catalog = carries_catalog(op);
    let buffered = if gw.stable_ids.armed() && !catalog {
        stable_response_body(gw, op, &parts, buffered).await
    } else {
        buffered
    };
    let token_capture = catalog && op.resource == ResourceType::Token && parts.status.is_success();
    let rewrite_kind = if catalog {
        BodyRewrite::Catalog
    } else {
        BodyRewrite::Links
    };
    let rewritten = if catalog && op.resource == ResourceType::Endpoint {
        // An endpoint list names services by id: their types come from the site's Keystone.
        match rewrite::read_json(&parts.headers, &buffered, limit) {
            Some((json, decoded)) => {
                let ids = drgw_catalog::endpoint_service_ids(&json);
                let keystone = &gw.site(gw.active_site()).keystone;
                let types = keystone.service_types(&ids).await;
                let services = EndpointServices::ById(&types);
                rewrite::rewrite_json(json, decoded, op.service, rewrite_kind, &rewriter, services)
            }
            None => rewrite::Rewritten::Unchanged,
        }
    } else {
        rewrite::rewrite_body(
            &parts.headers,
            buffered.clone(),
            op.service,
            rewrite_kind,
            &rewriter,
            limit,
        )
    };
    match rewritten {
        rewrite::Rewritten::Unchanged => {
            // A token answer with nothing to rewrite (`?nocatalog`, an unscoped token, a
            // catalog that lists the gateway already) still fills the token cache.
            if token_capture && !parts.headers.contains_key(header::CONTENT_ENCODING) {
                if let Ok(json) = serde_json::from_slice::<Value>(&buffered) {
                    capture_token(gw, &parts.headers, subject_token, &json).await;
                }
            }
            // The body may differ from what the upstream declared (a tag added after a
            // create): the length is always the buffered body's.
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(buffered.len()));
            Response::from_parts(parts, body::full(buffered))
        }
        rewrite::Rewritten::Changed {
            bytes,
            json,
            decoded,
        } => {
            if token_capture {
                capture_token(gw, &parts.headers, subject_token, &json).await;
            }
            if decoded {
                parts.headers.remove(header::CONTENT_ENCODING);
            }
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            gw.metrics
                .proxy
                .rewrites
                .with_label_values(&[if catalog { "catalog" } else { "links" }])
                .inc();
            Response::from_parts(parts, body::full(bytes))
        }
    }
}

/// Fills the token cache from a token response the gateway proxied.
async fn capture_token(
    gw: &Gateway,
    headers: &HeaderMap,
    subject_token: Option<&HeaderValue>,
    json: &Value,
) {
    // POST returns the new token in X-Subject-Token; GET echoes the validated one.
    let token = headers
        .get("x-subject-token")
        .or(subject_token)
        .and_then(|v| v.to_str().ok());
    if let Some(token) = token {
        if let Some(ctx) = crate::token::TokenContext::from_token_body(json, gw.active_site()) {
            gw.tokens.remember(token, ctx).await;
        }
    }
}

/// The mappings a request needs, for what `asked` collected. A failure to read the ID map
/// is a native 503: the gateway cannot tell which resource a tenant means, so it refuses
/// rather than act on the wrong one.
async fn resolve_ids(
    gw: &Gateway,
    site: SiteName,
    service: Service,
    asked: CollectingLookup,
) -> Result<crate::failover::StaticIdLookup, Response<ProxyBody>> {
    gw.stable_ids.resolve(site, asked).await.map_err(|e| {
        tracing::error!(error = %e, "cannot read the ID map");
        native_error(
            service,
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway cannot read its ID map; retry shortly.",
        )
    })
}

/// The path and query with the tenant's IDs replaced by the active site's.
async fn stable_target(
    gw: &Gateway,
    site: SiteName,
    service: Service,
    path: &str,
    query: Option<&str>,
) -> Result<(String, Option<String>), Response<ProxyBody>> {
    let collection = ids::path_collection(service, path);
    let asked = CollectingLookup::new();
    ids::translate_request_path(service, path, &asked);
    if let Some(q) = query {
        ids::translate_request_query(q, collection, &asked);
    }
    let lookup = resolve_ids(gw, site, service, asked).await?;
    let new_path = ids::translate_request_path(service, path, &lookup);
    let new_query = query.map(|q| {
        ids::translate_request_query(q, collection, &lookup).unwrap_or_else(|| q.to_string())
    });
    Ok((new_path, new_query))
}

/// Replaces the tenant's IDs in a request body by the active site's.
async fn stable_request_body(
    gw: &Gateway,
    site: SiteName,
    service: Service,
    json: &mut Value,
) -> Result<(), Response<ProxyBody>> {
    let asked = CollectingLookup::new();
    ids::translate_request_body(json, &asked);
    let lookup = resolve_ids(gw, site, service, asked).await?;
    ids::translate_request_body(json, &lookup);
    Ok(())
}

/// A Keystone login body with the tenant's user and project IDs replaced by the active
/// site's (bounded read; a body that is not JSON goes on as it came, for Keystone to judge).
async fn stable_auth_body(
    gw: &Gateway,
    site: SiteName,
    parts: &mut http::request::Parts,
    incoming: Incoming,
) -> Result<ProxyBody, Response<ProxyBody>> {
    let limit = gw.config.max_body_bytes;
    let raw = match body::read_limited(incoming, limit, gw.config.client_body_timeout).await {
        Ok(raw) => raw,
        Err(e) => return Err(body_refused(Service::Identity, &e, &parts.headers)),
    };
    let Ok(mut json) = serde_json::from_slice::<Value>(&raw) else {
        return Ok(body::full(raw));
    };
    let asked = CollectingLookup::new();
    ids::translate_auth_request(&mut json, &asked);
    if asked.is_empty() {
        return Ok(body::full(raw));
    }
    let lookup = resolve_ids(gw, site, Service::Identity, asked).await?;
    if ids::translate_auth_request(&mut json, &lookup) == 0 {
        return Ok(body::full(raw));
    }
    let bytes = Bytes::from(serde_json::to_vec(&json).unwrap_or_else(|_| raw.to_vec()));
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok(body::full(bytes))
}

/// A JSON response with the active site's IDs replaced by the ones the tenant knows.
/// Compressed or non-JSON bodies pass unchanged; so does a body whose IDs cannot be looked
/// up (logged): the tenant still gets its answer.
async fn stable_response_body(
    gw: &Gateway,
    op: &Operation,
    parts: &http::response::Parts,
    buffered: Bytes,
) -> Bytes {
    if !parts.status.is_success()
        || !is_json(&parts.headers)
        || parts.headers.contains_key(header::CONTENT_ENCODING)
        || buffered.is_empty()
    {
        return buffered;
    }
    let Ok(mut json) = serde_json::from_slice::<Value>(&buffered) else {
        return buffered;
    };
    // Glance answers with the image itself, unwrapped.
    let root = (op.service == Service::Image && op.resource == ResourceType::Image)
        .then_some(("image", "image"));
    let asked = CollectingLookup::new();
    ids::translate_response_ids(&mut json, root, &asked);
    let lookup = match gw.stable_ids.resolve(gw.active_site(), asked).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the ID map; response IDs left as they are");
            return buffered;
        }
    };
    if lookup.is_empty() || ids::translate_response_ids(&mut json, root, &lookup) == 0 {
        return buffered;
    }
    match serde_json::to_vec(&json) {
        Ok(v) => Bytes::from(v),
        Err(_) => buffered,
    }
}

/// Converts a buffered body back into a response body (used by tests and admin).
pub fn bytes_body(b: Bytes) -> ProxyBody {
    body::full(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_hop_by_hop_names_match_the_typed_check_in_any_case() {
        for name in [
            "Connection",
            "keep-alive",
            "Proxy-Connection",
            "proxy-authenticate",
            "Proxy-Authorization",
            "TE",
            "Trailer",
            "upgrade",
            "Transfer-Encoding",
            "Content-Length",
            "X-Auth-Token",
            "Tee",
            "",
        ] {
            let typed = HeaderName::from_bytes(name.as_bytes())
                .map(|n| is_hop_by_hop(&n))
                .unwrap_or(false);
            assert_eq!(is_hop_by_hop_raw(name), typed, "{name}");
        }
    }

    #[test]
    fn hop_by_hop_headers_go_and_the_rest_stays() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let untouched = h.clone();
        strip_hop_by_hop(&mut h);
        assert_eq!(h, untouched);
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Trace, close"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-trace", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h, untouched);
    }
}
