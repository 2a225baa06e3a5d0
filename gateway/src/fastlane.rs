//! The HTTP/1.1 fast lane: plain reads relayed without hyper.
//!
//! Most of what an OpenStack cloud is asked is `GET`: lists, shows, status polls. For those
//! the gateway changes little: a request id, `X-Forwarded-*`, the hop-by-hop headers, the
//! upstream's base URL, and (rarely) an upstream URL in the answer. hyper parses each
//! message into a `HeaderMap`, hands it through its client's dispatch channel and encodes
//! it again, on both sides; that was most of the gateway's own CPU per call. Here a
//! client connection is read by the gateway itself: each request head is parsed in place
//! with `httparse` (the parser hyper uses), and a plain GET is relayed on a raw upstream
//! connection of the site's pool with its header lines copied, not rebuilt.
//!
//! ```text
//! client bytes ─▶ head (httparse, borrowed) ─▶ plan
//!   Relay    GET, HTTP/1.1, no body, no upgrade, a routed read that is not a token or
//!            catalog call nor image data, stable IDs not armed
//!            ─▶ upstream head written from the client's lines ─▶ upstream answer
//!               length-delimited: head lines copied (Location rewritten), body streamed;
//!               JSON read whole (bounded) and scanned; with an upstream URL in it, the
//!               general path's `finish_buffered` rewrites it
//!               anything else (chunked, close-delimited, encoded JSON): the GET goes
//!               again through the general path ("retried")
//!   General  any other request: hyper serves this one request (its bytes, and nothing
//!            after them) through the same `stack::handle` as every listener; the
//!            connection comes back to the lane for the next one
//!   ForGood  what one request cannot be cut out of the stream for (HTTP/1.0, a chunked
//!            or ambiguous body, upgrades, `Connection: close`, HTTP/2's preface, a head
//!            cut short by the client's EOF): hyper serves the rest of the connection
//!   Refused  a head httparse refuses (400), longer than 64 KiB or of more than 100
//!            lines (431): answered in the routed service's error format (hyper's
//!            answers to these have no body), and the connection closes
//! ```
//! Every other answer is the one the general path gives, headers aside from their order
//! and case; `tests/tests/fast_lane.rs` compares the two (`hostile_clients.rs` sends what
//! is refused). `[gateway] http1_fast_lane = false` sends every connection to hyper.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::{Buf, Bytes, BytesMut};
use http::uri::Scheme;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::access_log::{self, Entry};
use crate::body::ProxyBody;
use crate::config::SiteName;
use crate::failover::FailoverController;
use crate::gateway::Gateway;
use crate::hyper_conn::{self, Dispatch};
use crate::operation::{Action, Operation, ResourceType, Service};
use crate::services;
use crate::stack::{self, ConnInfo, ServiceRoute};
use crate::upstream::{HostRef, RawConn, UpstreamError};

/// Header lines a request or response may carry on the lane (hyper's default is 100;
/// a request with more is refused with 431, a response with more is retried by hyper).
const MAX_HEADERS: usize = 100;
/// The largest head the lane reads: a larger request head is refused (431), a larger
/// upstream response head fails as a broken upstream would.
const MAX_HEAD_BYTES: usize = stack::MAX_REQUEST_HEAD;
/// The first bytes of an HTTP/2 connection with prior knowledge.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a connection on the lane needs from its listener.
pub struct Lane {
    pub gw: Arc<Gateway>,
    pub fo: Arc<FailoverController>,
    pub routes: Arc<Vec<Arc<ServiceRoute>>>,
    pub conn: ConnInfo,
    /// Serves a connection that leaves the lane for good.
    pub auto: Arc<auto::Builder<TokioExecutor>>,
    /// Becomes true when the gateway stops: an idle connection closes.
    pub stop: watch::Receiver<bool>,
}

/// Serves one client connection (plain TCP, or TLS that did not negotiate h2).
pub async fn serve<IO>(mut io: IO, lane: Lane)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut conn = LaneConn {
        lane,
        buf: BytesMut::with_capacity(8 * 1024),
        out: Vec::with_capacity(4 * 1024),
        head_timer: None,
        request_timer: None,
    };
    let mut first = true;
    loop {
        match conn.read_head(&mut io, first).await {
            HeadRead::Ready(head_len) => {
                first = false;
                match conn.one_request(&mut io, head_len).await {
                    Next::KeepGoing => {}
                    Next::Close => break,
                    Next::ForGood => return conn.hand_over(io).await,
                }
            }
            HeadRead::Close => break,
            HeadRead::ForGood => return conn.hand_over(io).await,
            HeadRead::TooLarge => {
                let message = format!("The request head is larger than {MAX_HEAD_BYTES} bytes.");
                let status = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
                conn.refuse(&mut io, status, &message).await;
                break;
            }
        }
    }
    let _ = io.shutdown().await;
}

/// One client connection's state between requests.
struct LaneConn {
    lane: Lane,
    /// Bytes read from the client and not yet consumed.
    buf: BytesMut,
    /// The head being written (upstream request, client response), reused.
    out: Vec<u8>,
    /// The head-read timer, kept from request to request (see [`LaneConn::read_head`]).
    head_timer: Option<Pin<Box<Sleep>>>,
    /// The upstream request timer of relayed GETs, kept likewise.
    request_timer: Option<Pin<Box<Sleep>>>,
}

enum HeadRead {
    /// A whole head of this many bytes starts `buf`.
    Ready(usize),
    Close,
    ForGood,
    /// More than [`MAX_HEAD_BYTES`] and no end of the head yet.
    TooLarge,
}

enum Next {
    KeepGoing,
    Close,
    ForGood,
}

/// What to do with a parsed request.
enum Plan<'h, 'b> {
    Relay(Relay<'h, 'b>),
    /// hyper serves this request, whose body has this many bytes.
    General(u64),
    ForGood,
}

/// A GET the lane relays.
struct Relay<'h, 'b> {
    service: Service,
    site: SiteName,
    op: Operation,
    uri: http::Uri,
    headers: &'h [httparse::Header<'b>],
}

impl LaneConn {
    /// Reads until `buf` starts with a whole request head.
    async fn read_head<IO>(&mut self, io: &mut IO, first: bool) -> HeadRead
    where
        IO: AsyncRead + Unpin,
    {
        // `client_header_timeout`, idle time included: hyper's `header_read_timeout`, which
        // it also starts as soon as a connection is idle.
        let deadline = Instant::now() + self.lane.gw.config.client_header_timeout;
        loop {
            // The first bytes of a connection may be HTTP/2's preface: wait until they
            // are all there, or until they stop matching it.
            let seen = self.buf.len().min(H2_PREFACE.len());
            let maybe_h2 = first && seen > 0 && self.buf[..seen] == H2_PREFACE[..seen];
            if maybe_h2 && seen == H2_PREFACE.len() {
                return HeadRead::ForGood;
            }
            if !maybe_h2 {
                if let Some(n) = head_end(&self.buf) {
                    return HeadRead::Ready(n);
                }
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return HeadRead::TooLarge;
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(8 * 1024);
            }
            // One timer per connection: armed at the first wait, and when it rings before
            // the current deadline (an earlier request's), set again.
            let timer = self
                .head_timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            let read = tokio::select! {
                biased;
                read = io.read_buf(&mut self.buf) => read,
                _ = timer.as_mut() => {
                    if Instant::now() < deadline {
                        timer.as_mut().reset(deadline);
                        continue;
                    }
                    tracing::debug!(peer = %self.lane.conn.peer, "no request head in time; closing");
                    return HeadRead::Close;
                }
                _ = self.lane.stop.changed() => return HeadRead::Close,
            };
            match read {
                Ok(0) => {
                    // EOF: clean between requests; a partial head goes to hyper, which
                    // answers it as it would have.
                    return if self.buf.is_empty() {
                        HeadRead::Close
                    } else {
                        HeadRead::ForGood
                    };
                }
                Ok(_) => {}
                Err(_) => return HeadRead::Close,
            }
        }
    }

    /// Refuses the request at the start of `buf` (a head too large, or not HTTP/1.1) in
    /// the native format of the service its target routes to; the connection then closes
    /// without the rest being read (nothing after such a head can be told apart from it).
    async fn refuse<IO>(&mut self, io: &mut IO, status: StatusCode, message: &str)
    where
        IO: AsyncWrite + Unpin,
    {
        let started = Instant::now();
        let request_line = self.buf[..]
            .split(|&b| b == b'\n')
            .next()
            .unwrap_or_default();
        let mut words = std::str::from_utf8(request_line).unwrap_or("").split(' ');
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let path = target.split('?').next().unwrap_or(target);
        // (Off every route of a shared listener: Keystone's format, as its 404 there.)
        let service = crate::server::pick_route(&self.lane.routes, path)
            .map_or(Service::Identity, |r| r.service);
        let resp = stack::native_error(service, status, message);
        let req_id = stack::request_id_from(None);
        let mut resp = stack::finish(&self.lane.gw, service, "other", &req_id, resp);
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        write_response(io, resp, &mut self.out).await;
        if let Some(log) = &self.lane.gw.access_log {
            log.record(&Entry {
                time: SystemTime::now(),
                request_id: req_id.to_str().unwrap_or_default(),
                global_request_id: req_id.to_str().unwrap_or_default(),
                client: self.lane.conn.peer,
                method,
                target,
                service: Some(service.as_str()),
                action: "other",
                status: status.as_u16(),
                site: self.lane.gw.active_site().as_str(),
                project: None,
                tier: None,
                duration_ms: access_log::millis(started.elapsed()),
            });
        }
    }

    /// Answers the request whose head is the first `head_len` bytes of `buf`.
    async fn one_request<IO>(&mut self, io: &mut IO, head_len: usize) -> Next
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let head = &self.buf[..head_len];
        match req.parse_with_uninit_headers(head, &mut headers) {
            Ok(httparse::Status::Complete(n)) if n == head_len => {}
            Ok(_) => return Next::ForGood,
            Err(httparse::Error::TooManyHeaders) => {
                let message = format!("The request has more than {MAX_HEADERS} header lines.");
                let status = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
                self.refuse(io, status, &message).await;
                return Next::Close;
            }
            Err(e) => {
                // (What httparse refuses, hyper refuses too: it parses with it.)
                let message = format!("The request is not valid HTTP/1.1: {e}.");
                self.refuse(io, StatusCode::BAD_REQUEST, &message).await;
                return Next::Close;
            }
        }
        let plan = plan(&self.lane, req.method, req.path, req.version, req.headers);
        let outcome = match plan {
            Plan::Relay(relay) => {
                let mut arrived = Arrived {
                    started: Instant::now(),
                    req_id: stack::request_id_from(header(relay.headers, "x-openstack-request-id")),
                    answered_id: None,
                };
                let (service, action, site) = (relay.service, relay.op.action.as_str(), relay.site);
                let relayed = relay_get(
                    &self.lane,
                    io,
                    relay,
                    &mut arrived,
                    &mut self.out,
                    &mut self.request_timer,
                )
                .await;
                match relayed {
                    Relayed::Done { keep_alive, status } => {
                        self.lane.gw.metrics.proxy.fast_lane.relayed.inc();
                        if let Some(log) = &self.lane.gw.access_log {
                            log.record(&Entry {
                                time: SystemTime::now(),
                                request_id: arrived
                                    .answered_id
                                    .as_ref()
                                    .unwrap_or(&arrived.req_id)
                                    .to_str()
                                    .unwrap_or_default(),
                                global_request_id: arrived.req_id.to_str().unwrap_or_default(),
                                client: self.lane.conn.peer,
                                method: "GET",
                                target: req.path.unwrap_or_default(),
                                service: Some(service.as_str()),
                                action,
                                status: status.as_u16(),
                                site: site.as_str(),
                                project: None,
                                tier: None,
                                duration_ms: access_log::millis(arrived.started.elapsed()),
                            });
                        }
                        if keep_alive {
                            Outcome::Consumed
                        } else {
                            Outcome::Close
                        }
                    }
                    Relayed::Retry => {
                        self.lane.gw.metrics.proxy.fast_lane.retried.inc();
                        Outcome::General(0)
                    }
                }
            }
            Plan::General(body_len) => {
                self.lane.gw.metrics.proxy.fast_lane.general.inc();
                Outcome::General(body_len)
            }
            Plan::ForGood => return Next::ForGood,
        };
        match outcome {
            Outcome::Consumed => {
                self.buf.advance(head_len);
                Next::KeepGoing
            }
            Outcome::Close => Next::Close,
            Outcome::General(body_len) => self.general(io, head_len, body_len).await,
        }
    }

    /// hyper serves the one request at the start of `buf` (its head and `body_len` body
    /// bytes, read on from the socket as needed); the lane takes the connection back
    /// after it, unless hyper left the request unread or ended the connection.
    async fn general<IO>(&mut self, io: &mut IO, head_len: usize, body_len: u64) -> Next
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let buffered = ((self.buf.len() - head_len) as u64).min(body_len) as usize;
        let prefix = self.buf.split_to(head_len + buffered).freeze();
        let mut one = OneRequest {
            io,
            prefix,
            remaining: body_len - buffered as u64,
        };
        let served = hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .keep_alive(true)
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(&mut one), self.service())
            .await;
        match served {
            Ok(()) if one.prefix.is_empty() && one.remaining == 0 => Next::KeepGoing,
            Ok(()) => Next::Close,
            Err(e) => {
                tracing::debug!(error = %e, "connection ended with an error");
                Next::Close
            }
        }
    }

    /// hyper serves the rest of the connection, starting with what `buf` holds.
    async fn hand_over<IO>(self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.lane.gw.metrics.proxy.fast_lane.handed_over.inc();
        let svc = self.service();
        let io = Prefixed {
            prefix: self.buf.freeze(),
            io,
        };
        hyper_conn::serve(&self.lane.auto, io, svc, self.lane.stop.clone()).await;
    }

    /// The service every listener gives hyper.
    fn service(&self) -> Dispatch {
        Dispatch {
            gw: self.lane.gw.clone(),
            fo: self.lane.fo.clone(),
            routes: self.lane.routes.clone(),
            conn: self.lane.conn.clone(),
            open: None,
        }
    }
}

enum Outcome {
    Consumed,
    Close,
    General(u64),
}

/// The length of the request head `buf` starts with, once it is all there: up to the
/// first empty line (CRLF or bare LF line ends, as httparse reads them).
fn head_end(buf: &[u8]) -> Option<usize> {
    for i in memchr::memchr_iter(b'\n', buf) {
        match buf.get(i + 1..) {
            Some([b'\n', ..]) => return Some(i + 2),
            Some([b'\r', b'\n', ..]) => return Some(i + 3),
            _ => {}
        }
    }
    None
}

/// Decides what becomes of a parsed request.
fn plan<'h, 'b>(
    lane: &Lane,
    method: Option<&str>,
    target: Option<&'b str>,
    version: Option<u8>,
    headers: &'h [httparse::Header<'b>],
) -> Plan<'h, 'b> {
    let (Some(method), Some(target), Some(1)) = (method, target, version) else {
        return Plan::ForGood;
    };
    let mut body_len: Option<u64> = None;
    let mut plain = method == "GET";
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let Some(n) = content_length(h.value) else {
                return Plan::ForGood;
            };
            if body_len.is_some_and(|m| m != n) {
                return Plan::ForGood;
            }
            body_len = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
        {
            return Plan::ForGood;
        } else if name.eq_ignore_ascii_case("connection") {
            if !h.value.eq_ignore_ascii_case(b"keep-alive") {
                return Plan::ForGood;
            }
        } else if name.eq_ignore_ascii_case("expect") {
            plain = false;
        }
    }
    let body_len = body_len.unwrap_or(0);
    if method == "CONNECT" {
        return Plan::ForGood;
    }
    if !plain || body_len != 0 || !target.starts_with('/') {
        return Plan::General(body_len);
    }
    match relay_plan(lane, target, headers) {
        Some(relay) => Plan::Relay(relay),
        None => Plan::General(0),
    }
}

/// The relay of a plain GET, if the lane relays it: routed, a read that is not a token,
/// catalog or image-data call, stable IDs not armed, nothing frozen.
fn relay_plan<'h, 'b>(
    lane: &Lane,
    target: &'b str,
    headers: &'h [httparse::Header<'b>],
) -> Option<Relay<'h, 'b>> {
    let gw = &lane.gw;
    // (Connections reach the lane only when `http1_fast_lane` is on.)
    if gw.stable_ids.armed() {
        return None;
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let route = crate::server::pick_route(&lane.routes, path)?;
    let path = path.strip_prefix(route.prefix.as_str())?;
    let path = if path.is_empty() { "/" } else { path };
    if !path.starts_with('/') {
        return None;
    }
    let service = route.service;
    let op = services::classify(
        service,
        &Method::GET,
        path,
        query,
        header(headers, "openstack-api-version")
            .or_else(|| header(headers, "x-openstack-nova-api-version"))
            .and_then(|v| std::str::from_utf8(v).ok()),
    );
    if op.action != Action::Read
        || stack::carries_catalog(&op)
        || matches!(op.resource, ResourceType::Token | ResourceType::ImageData)
    {
        return None;
    }
    let accept = header(headers, "accept").and_then(|v| std::str::from_utf8(v).ok());
    if lane.fo.guard_accept(&op, accept).is_some() {
        return None;
    }
    let site = gw.active_site();
    let uri = gw.upstream_uri(site, service, path, query)?;
    Some(Relay {
        service,
        site,
        op,
        uri,
        headers,
    })
}

/// The first value of a header, by name in lower case.
fn header<'b>(headers: &[httparse::Header<'b>], lower_name: &str) -> Option<&'b [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(lower_name))
        .map(|h| h.value)
}

/// A `Content-Length` value: digits only (RFC 9110 §8.6).
fn content_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// A relayed GET's start: its clock and request id (sent upstream); and, for its access
/// log line, the upstream's own id if the client got that instead.
struct Arrived {
    started: Instant,
    req_id: HeaderValue,
    answered_id: Option<HeaderValue>,
}

enum Relayed {
    /// Answered with `status` (the connection goes on if `keep_alive`).
    Done {
        keep_alive: bool,
        status: StatusCode,
    },
    /// Nothing was written to the client: the general path is to answer it.
    Retry,
}

/// An upstream answer's head, as the lane needs it.
struct UpstreamHead {
    status: StatusCode,
    /// The upstream's own request id, which the client gets (kept for the access log only).
    request_id: Option<HeaderValue>,
    /// The head's length in the connection's buffer.
    len: usize,
    /// `None`: not length-delimited (chunked, or until close).
    body_len: Option<u64>,
    json: bool,
    encoded: bool,
    reusable: bool,
}

/// Relays a plain GET; every failure is answered here, in the service's own format.
async fn relay_get<IO>(
    lane: &Lane,
    io: &mut IO,
    relay: Relay<'_, '_>,
    arrived: &mut Arrived,
    out: &mut Vec<u8>,
    timer: &mut Option<Pin<Box<Sleep>>>,
) -> Relayed
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let gw = &lane.gw;
    let Relay {
        service,
        site,
        op,
        uri,
        headers,
    } = relay;
    // (Disjoint borrows: the id is read throughout, the upstream's id set once.)
    let Arrived {
        started,
        ref req_id,
        ref mut answered_id,
    } = *arrived;
    let _tenant = gw.mirror.tenant_request();
    let client = gw.client(site);
    let https = uri.scheme() == Some(&Scheme::HTTPS);
    let Some(authority) = uri.authority() else {
        return Relayed::Retry;
    };
    let checkout = match client.raw_checkout(https, authority) {
        Ok(c) => c,
        Err(e) => {
            return answer_failure(lane, io, (service, site, &op), req_id, headers, &e, out).await
        }
    };
    upstream_head(
        out,
        &uri,
        &checkout.host_header,
        headers,
        &lane.conn,
        req_id,
        gw.forwarded_prefix(site, service),
    );
    let to_client = ClientHead {
        lane,
        service,
        req_id,
    };
    let deadline = started + client.request_timeout();
    let host = checkout.host;
    let mut idle = checkout.idle;
    // One timer per client connection, as for the head (see `LaneConn::read_head`):
    // deadlines only grow, so it is set again only when it rings early.
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if timer.deadline() > deadline {
        timer.as_mut().reset(deadline);
    }
    let exchanged = {
        let exchanging = async {
            loop {
                let reused = idle.is_some();
                let mut conn = match idle.take() {
                    Some(c) => c,
                    None => client.raw_connect(https, authority).await?,
                };
                match exchange(&mut conn, &mut *out, &to_client).await {
                    Ok(head) => return Ok((conn, head)),
                    // An idle connection the upstream closed meanwhile: a GET may go again,
                    // on a new connection.
                    Err(Exchange::Closed) if reused => continue,
                    Err(Exchange::Closed) => {
                        return Err(UpstreamError::Reset(
                            "connection closed before an answer".into(),
                        ))
                    }
                    Err(Exchange::Failed(e)) => return Err(e),
                }
            }
        };
        let mut exchanging = std::pin::pin!(exchanging);
        loop {
            tokio::select! {
                biased;
                r = &mut exchanging => break r,
                _ = timer.as_mut() => {
                    if Instant::now() >= deadline {
                        break Err(UpstreamError::Timeout(client.request_timeout()));
                    }
                    timer.as_mut().reset(deadline);
                }
            }
        }
    };
    let (mut conn, mut head) = match exchanged {
        Ok(ok) => ok,
        Err(e) => {
            return answer_failure(lane, io, (service, site, &op), req_id, headers, &e, out).await
        }
    };
    gw.metrics
        .proxy
        .observe_upstream(service, site, started.elapsed().as_secs_f64());
    *answered_id = head.request_id.take();
    let Some(body_len) = head.body_len else {
        return Relayed::Retry;
    };
    let wants_body = head.json
        && head.status != StatusCode::NO_CONTENT
        && head.status != StatusCode::NOT_MODIFIED;
    if wants_body && head.encoded {
        return Relayed::Retry;
    }
    let limit = gw.response_buffer_limit();
    let action = op.action.as_str();
    // How long the upstream may send nothing more of its body (nginx's proxy_read_timeout).
    let stall_limit = client.request_timeout();
    if wants_body && body_len <= limit {
        // Read whole, scanned for upstream URLs.
        let total = head.len + body_len as usize;
        while conn.buf.len() < total {
            conn.buf.reserve(total - conn.buf.len());
            let read = tokio::time::timeout(stall_limit, conn.io.read_buf(&mut conn.buf)).await;
            let stopped = match read {
                Ok(Ok(1..)) => continue,
                Ok(Ok(0) | Err(_)) => false,
                Err(_) => true,
            };
            tracing::warn!(stopped, "upstream response body did not come whole");
            // The client gets the gateway's answer, with the gateway's id.
            *answered_id = None;
            let resp = stack::upstream_body_failed(service, stopped);
            let resp = stack::finish(gw, service, action, req_id, resp);
            return write_response(io, resp, out).await;
        }
        let body = &conn.buf[head.len..total];
        let rewriter = gw.rewriter();
        let mut scan = rewriter.scanner();
        if scan.feed(body) {
            let parts = match response_parts(&conn.buf[..head.len]) {
                Some(p) => p,
                None => return Relayed::Retry,
            };
            let body = Bytes::copy_from_slice(body);
            conn.buf.advance(total);
            give_back(lane, site, host, conn, head.reusable);
            let resp = Box::pin(stack::finish_buffered(gw, &op, parts, body, None)).await;
            let resp = stack::finish(gw, service, action, req_id, resp);
            trace_proxied(service, action, resp.status(), started);
            return write_response(io, resp, out).await;
        }
        gw.metrics.proxy.count_request(service, action, head.status);
        trace_proxied(service, action, head.status, started);
        let written = write_head_and_body(io, out, body).await;
        conn.buf.advance(total);
        give_back(lane, site, host, conn, head.reusable);
        return Relayed::Done {
            keep_alive: written,
            status: head.status,
        };
    }
    if wants_body {
        tracing::warn!(
            bytes = body_len,
            limit,
            "JSON response too large to rewrite; streamed unchanged"
        );
    }
    // Streamed as it comes: the head, then the body in the chunks the upstream sends.
    gw.metrics.proxy.count_request(service, action, head.status);
    trace_proxied(service, action, head.status, started);
    conn.buf.advance(head.len);
    let mut left = body_len;
    let first = (conn.buf.len() as u64).min(left) as usize;
    out.extend_from_slice(&conn.buf[..first]);
    conn.buf.advance(first);
    left -= first as u64;
    if !write_all(io, out).await {
        return Relayed::Done {
            keep_alive: false,
            status: head.status,
        };
    }
    while left > 0 {
        conn.buf.clear();
        conn.buf.reserve(left.min(64 * 1024) as usize);
        match tokio::time::timeout(stall_limit, conn.io.read_buf(&mut conn.buf)).await {
            Ok(Ok(1..)) => {}
            Ok(Ok(0) | Err(_)) | Err(_) => {
                // The client has the head already: only a cut-short body can say so.
                tracing::warn!("upstream response body broke off or stopped");
                return Relayed::Done {
                    keep_alive: false,
                    status: head.status,
                };
            }
        }
        let n = (conn.buf.len() as u64).min(left) as usize;
        if io.write_all(&conn.buf[..n]).await.is_err() {
            return Relayed::Done {
                keep_alive: false,
                status: head.status,
            };
        }
        conn.buf.advance(n);
        left -= n as u64;
    }
    if io.flush().await.is_err() {
        return Relayed::Done {
            keep_alive: false,
            status: head.status,
        };
    }
    give_back(lane, site, host, conn, head.reusable);
    Relayed::Done {
        keep_alive: true,
        status: head.status,
    }
}

fn trace_proxied(service: Service, action: &str, status: StatusCode, started: Instant) {
    tracing::debug!(
        service = service.as_str(),
        action,
        status = status.as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "proxied"
    );
}

/// Returns an upstream connection whose answer has been consumed from its buffer to the
/// pool, if nothing came after the answer and the upstream keeps the connection open.
fn give_back(lane: &Lane, site: SiteName, host: HostRef, conn: RawConn, keep_open: bool) {
    if keep_open && conn.buf.is_empty() {
        lane.gw.client(site).raw_put(host, conn);
    }
}

/// Answers a failed upstream call as the general path does.
#[allow(clippy::too_many_arguments)]
async fn answer_failure<IO>(
    lane: &Lane,
    io: &mut IO,
    (service, site, op): (Service, SiteName, &Operation),
    req_id: &HeaderValue,
    headers: &[httparse::Header<'_>],
    e: &UpstreamError,
    out: &mut Vec<u8>,
) -> Relayed
where
    IO: AsyncWrite + Unpin,
{
    let mut resp = stack::upstream_failure(&lane.gw, service, site, req_id, e);
    if service == Service::Image {
        let accept = header(headers, "accept").and_then(|a| HeaderValue::from_bytes(a).ok());
        resp = stack::glance_error_for(resp, accept.as_ref());
    }
    let resp = stack::finish(&lane.gw, service, op.action.as_str(), req_id, resp);
    write_response(io, resp, out).await
}

/// Writes the upstream request head into `out`: the client's header lines, less the
/// hop-by-hop ones and those the gateway sets (`Host`, `X-Forwarded-*`, the request id)
/// or drops (`Forwarded`: see `stack::append_forwarded`).
fn upstream_head(
    out: &mut Vec<u8>,
    uri: &http::Uri,
    host: &HeaderValue,
    headers: &[httparse::Header<'_>],
    conn: &ConnInfo,
    req_id: &HeaderValue,
    forwarded_prefix: Option<&HeaderValue>,
) {
    out.clear();
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(
        uri.path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/")
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut client_host = None;
    let mut forwarded_for = None;
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            client_host.get_or_insert(h.value);
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            forwarded_for.get_or_insert(h.value);
        } else if stack::is_hop_by_hop_raw(name)
            || name.eq_ignore_ascii_case("x-forwarded-proto")
            || name.eq_ignore_ascii_case("x-forwarded-host")
            || name.eq_ignore_ascii_case("x-forwarded-prefix")
            || name.eq_ignore_ascii_case("forwarded")
            || name.eq_ignore_ascii_case("x-openstack-request-id")
        {
        } else {
            line(out, name.as_bytes(), h.value);
        }
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    match forwarded_for {
        Some(prev) if !prev.is_empty() => {
            out.extend_from_slice(prev);
            out.extend_from_slice(b", ");
            out.extend_from_slice(conn.peer.ip().to_string().as_bytes());
        }
        _ => out.extend_from_slice(conn.forwarded_for_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(if conn.tls {
        b"x-forwarded-proto: https\r\n"
    } else {
        b"x-forwarded-proto: http\r\n"
    });
    if let Some(h) = client_host {
        line(out, b"x-forwarded-host", h);
    }
    if let Some(prefix) = forwarded_prefix {
        line(out, b"x-forwarded-prefix", prefix.as_bytes());
    }
    line(out, b"x-openstack-request-id", req_id.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

enum Exchange {
    /// The connection ended before any byte of an answer.
    Closed,
    Failed(UpstreamError),
}

impl From<UpstreamError> for Exchange {
    fn from(e: UpstreamError) -> Self {
        Exchange::Failed(e)
    }
}

/// Writes the request head `out` and reads the answer's head (skipping interim 1xx ones).
/// The client's head is written into `out` (which held the request) from the answer's.
async fn exchange(
    conn: &mut RawConn,
    out: &mut Vec<u8>,
    client: &ClientHead<'_>,
) -> Result<UpstreamHead, Exchange> {
    let reset = |e: io::Error| Exchange::Failed(UpstreamError::Reset(e.to_string()));
    if conn.io.write_all(out).await.is_err() {
        return Err(Exchange::Closed);
    }
    conn.io.flush().await.map_err(reset)?;
    let mut got_any = false;
    loop {
        let head_len = match head_end(&conn.buf) {
            Some(n) => n,
            None => {
                if conn.buf.len() > MAX_HEAD_BYTES {
                    return Err(Exchange::Failed(UpstreamError::Reset(
                        "upstream response head too large".into(),
                    )));
                }
                conn.buf.reserve(8 * 1024);
                match conn.io.read_buf(&mut conn.buf).await {
                    Ok(0) if !got_any => return Err(Exchange::Closed),
                    Err(e)
                        if !got_any
                            && matches!(
                                e.kind(),
                                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                            ) =>
                    {
                        return Err(Exchange::Closed)
                    }
                    Ok(0) => {
                        return Err(Exchange::Failed(UpstreamError::Reset(
                            "connection closed in the response head".into(),
                        )))
                    }
                    Err(e) => return Err(reset(e)),
                    Ok(_) => got_any = true,
                }
                continue;
            }
        };
        let head = parse_response_head(&conn.buf[..head_len], Some((client, &mut *out)))
            .ok_or_else(|| UpstreamError::Reset("invalid upstream response head".into()))?;
        if head.status.is_informational() {
            if head.status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(Exchange::Failed(UpstreamError::Reset(
                    "unexpected 101 answer to a GET".into(),
                )));
            }
            conn.buf.advance(head_len);
            continue;
        }
        return Ok(head);
    }
}

/// Parses a whole response head (`head` ends where the head does).
fn parse_response<'h, 'b>(
    head: &'b [u8],
    headers: &'h mut [MaybeUninit<httparse::Header<'b>>],
) -> Option<httparse::Response<'h, 'b>> {
    let mut resp = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, head, headers)
    {
        Ok(httparse::Status::Complete(n)) if n == head.len() => Some(resp),
        _ => None,
    }
}

/// Who a response head is for: the client head is written from the upstream's.
struct ClientHead<'a> {
    lane: &'a Lane,
    service: Service,
    req_id: &'a HeaderValue,
}

/// Reads what the lane needs from an upstream response head and, given a client, writes
/// the client's head into `out` in the same pass: the upstream's lines less the hop-by-hop
/// ones (and those its `Connection` names), `Location` pointed at the gateway, the request
/// id and `Date` added when missing.
fn parse_response_head(
    head: &[u8],
    mut client: Option<(&ClientHead<'_>, &mut Vec<u8>)>,
) -> Option<UpstreamHead> {
    let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let resp = parse_response(head, &mut headers)?;
    let status = StatusCode::from_u16(resp.code?).ok()?;
    let named = connection_named(resp.headers);
    if let Some((_, out)) = client.as_mut() {
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 ");
        status_line(out, status);
    }
    let mut body_len: Option<u64> = None;
    let mut chunked = false;
    let mut json = false;
    let mut encoded = false;
    let mut reusable = resp.version == Some(1);
    let mut has_id = false;
    let mut request_id = None;
    let mut has_date = false;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = content_length(h.value)?;
            if body_len.is_some_and(|m| m != n) {
                return None;
            }
            body_len = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-type") {
            json = stack::is_json_type(h.value);
        } else if name.eq_ignore_ascii_case("content-encoding") {
            encoded = true;
        } else if name.eq_ignore_ascii_case("connection") {
            reusable &= !h
                .value
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        let Some((to, out)) = client.as_mut() else {
            continue;
        };
        if stack::is_hop_by_hop_raw(name) || named.iter().any(|n| name.eq_ignore_ascii_case(n)) {
            continue;
        }
        if let Some(which) = stack::UpstreamNaming::of(name) {
            let gw = &to.lane.gw;
            let rewritten = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| stack::point_at_gateway(gw, &gw.rewriter(), to.service, which, v));
            if let Some(new) = rewritten {
                line(out, name.as_bytes(), new.as_bytes());
                continue;
            }
        }
        if name.eq_ignore_ascii_case("x-openstack-request-id") {
            has_id = true;
            if to.lane.gw.access_log.is_some() {
                request_id = HeaderValue::from_bytes(h.value).ok();
            }
        }
        has_date |= name.eq_ignore_ascii_case("date");
        line(out, name.as_bytes(), h.value);
    }
    if let Some((to, out)) = client {
        if !has_id {
            line(out, b"x-openstack-request-id", to.req_id.as_bytes());
        }
        if !has_date {
            line(
                out,
                b"date",
                httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes(),
            );
        }
        out.extend_from_slice(b"\r\n");
    }
    let bodiless = status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let body_len = if chunked {
        None
    } else if bodiless {
        Some(0)
    } else {
        body_len
    };
    Some(UpstreamHead {
        status,
        request_id,
        len: head.len(),
        body_len,
        json,
        encoded,
        reusable,
    })
}

/// The names a `Connection` header lists, other than its `close` and `keep-alive` options.
fn connection_named<'b>(headers: &[httparse::Header<'b>]) -> Vec<&'b str> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case("close")
                && !t.eq_ignore_ascii_case("keep-alive")
        })
        .collect()
}

/// `200 OK\r\n`: the code and its canonical reason, as hyper writes them.
fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The parts of an upstream response head for the general path's rewrite (hop-by-hop
/// headers left out, as the general path drops them).
fn response_parts(head: &[u8]) -> Option<http::response::Parts> {
    let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let resp = parse_response(head, &mut headers)?;
    let named = connection_named(resp.headers);
    let mut map = HeaderMap::with_capacity(resp.headers.len());
    for h in resp.headers.iter() {
        if stack::is_hop_by_hop_raw(h.name) || named.iter().any(|n| h.name.eq_ignore_ascii_case(n))
        {
            continue;
        }
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        map.append(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    let mut builder = Response::builder().status(resp.code?);
    if let Some(h) = builder.headers_mut() {
        *h = map;
    }
    Some(builder.body(()).ok()?.into_parts().0)
}

/// Writes a response the gateway made (or rewrote) whole: its body has a known end.
async fn write_response<IO>(io: &mut IO, resp: Response<ProxyBody>, out: &mut Vec<u8>) -> Relayed
where
    IO: AsyncWrite + Unpin,
{
    let (parts, body) = resp.into_parts();
    let status = parts.status;
    let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
        return Relayed::Done {
            keep_alive: false,
            status,
        };
    };
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    status_line(out, parts.status);
    for (name, value) in parts.headers.iter() {
        if name != http::header::CONTENT_LENGTH {
            line(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    if !parts.headers.contains_key(http::header::DATE) {
        line(
            out,
            b"date",
            httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes(),
        );
    }
    line(out, b"content-length", body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    Relayed::Done {
        keep_alive: write_all(io, out).await,
        status,
    }
}

/// Writes a head and a body and flushes; false when the client is gone. A small body is
/// copied behind the head (one plain write); a large one goes out with it in vectored
/// writes, not copied.
async fn write_head_and_body<IO>(io: &mut IO, head: &mut Vec<u8>, body: &[u8]) -> bool
where
    IO: AsyncWrite + Unpin,
{
    if body.len() <= 4096 {
        head.extend_from_slice(body);
        return write_all(io, head).await;
    }
    let (mut head, mut body) = (&head[..], body);
    while !head.is_empty() || !body.is_empty() {
        let parts = [io::IoSlice::new(head), io::IoSlice::new(body)];
        let n = match io.write_vectored(&parts).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    io.flush().await.is_ok()
}

/// Writes and flushes `bytes`; false when the client is gone.
async fn write_all<IO>(io: &mut IO, bytes: &[u8]) -> bool
where
    IO: AsyncWrite + Unpin,
{
    io.write_all(bytes).await.is_ok() && io.flush().await.is_ok()
}

/// Reads from bytes the lane read before handing the connection on; false once they are
/// all gone.
fn serve_prefix(prefix: &mut Bytes, buf: &mut ReadBuf<'_>) -> bool {
    if prefix.is_empty() {
        return false;
    }
    let n = prefix.len().min(buf.remaining());
    buf.put_slice(&prefix[..n]);
    prefix.advance(n);
    true
}

/// One request cut out of a client connection for hyper: the bytes read already, then
/// up to `remaining` more from the socket, then end of stream. Writes go to the client;
/// closing is left to the lane.
struct OneRequest<'a, IO> {
    io: &'a mut IO,
    prefix: Bytes,
    remaining: u64,
}

impl<IO: AsyncRead + Unpin> AsyncRead for OneRequest<'_, IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if serve_prefix(&mut this.prefix, buf) {
            return Poll::Ready(Ok(()));
        }
        if this.remaining == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut limited = (&mut *this.io).take(this.remaining);
        let before = buf.filled().len();
        let polled = Pin::new(&mut limited).poll_read(cx, buf);
        this.remaining -= (buf.filled().len() - before) as u64;
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for OneRequest<'_, IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The lane decides when the connection closes; hyper's end of the one request
        // only flushes.
        Pin::new(&mut *self.get_mut().io).poll_flush(cx)
    }
}

/// A connection handed to hyper for good: the bytes the lane read first, then the socket.
struct Prefixed<IO> {
    prefix: Bytes,
    io: IO,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if serve_prefix(&mut this.prefix, buf) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_at_the_first_empty_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: a\n\nrest"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        assert_eq!(head_end(b""), None);
    }

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(content_length(b" 977 "), Some(977));
        for bad in [
            &b""[..],
            b"-1",
            b"+5",
            b"1,2",
            b"0x10",
            b"99999999999999999999",
        ] {
            assert_eq!(
                content_length(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn response_heads_say_how_their_body_ends() {
        let h = parse_response_head(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n",
            None,
        )
        .unwrap();
        assert_eq!(
            (h.status, h.body_len, h.json, h.encoded, h.reusable),
            (StatusCode::OK, Some(12), true, false, true)
        );
        let chunked = parse_response_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 12\r\n\r\n",
            None,
        )
        .unwrap();
        assert_eq!(chunked.body_len, None);
        let until_close =
            parse_response_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", None).unwrap();
        assert_eq!((until_close.body_len, until_close.reusable), (None, false));
        let no_content = parse_response_head(b"HTTP/1.1 204 No Content\r\n\r\n", None).unwrap();
        assert_eq!(no_content.body_len, Some(0));
        let old =
            parse_response_head(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", None).unwrap();
        assert!(!old.reusable);
        assert!(parse_response_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            None
        )
        .is_none());
    }

    #[test]
    fn the_client_head_keeps_end_to_end_lines_only() {
        let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
        let resp = parse_response(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\nKeep-Alive: timeout=5\r\nETag: \"x\"\r\n\r\n",
            &mut headers,
        )
        .unwrap();
        assert_eq!(connection_named(resp.headers), vec!["X-Private"]);
        let parts = response_parts(
            b"HTTP/1.1 203 Non-Authoritative Information\r\nConnection: X-Private\r\nX-Private: 1\r\nTransfer-Encoding: chunked\r\nETag: \"x\"\r\n\r\n",
        )
        .unwrap();
        assert_eq!(parts.status, StatusCode::NON_AUTHORITATIVE_INFORMATION);
        let names: Vec<_> = parts.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["etag"]);
    }

    #[test]
    fn status_lines_carry_the_canonical_reason() {
        let mut out = Vec::new();
        status_line(&mut out, StatusCode::NOT_FOUND);
        status_line(&mut out, StatusCode::from_u16(599).unwrap());
        assert_eq!(out, b"404 Not Found\r\n599 \r\n");
    }
}
