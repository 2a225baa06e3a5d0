//! The keep-alive HTTP/1.1 client that talks to one site's services.
//!
//! One client per site (each site may have its own CA bundle). The gateway builds every
//! upstream URI itself from the configured base URL of the target service, so it never
//! connects anywhere a request names.
//!
//! The pool is ours, not hyper-util's: per upstream host (scheme and authority) a stack of
//! idle `hyper::client::conn::http1` connections (the sender and the connection state
//! machine together). A connection has no task of its own: the task that sends a request
//! drives it, while waiting for the response head and then from the response body's
//! `poll_frame`, so a request and its response never hop between tasks. Checkout pops the
//! most recently used connection that is younger than the idle timeout; a response hands
//! its connection back once its body has been read to the end (or at once for an empty
//! body). At most `pool_max_idle_per_host` connections wait per host; a reaper task drops
//! the expired ones and those the upstream closed.
//! A reused connection the upstream closed while it sat idle shows its EOF at the first
//! poll of the next exchange, before anything is written: the request comes back unsent
//! and goes to another connection, as with hyper-util's client; one that may have been
//! written is never resent. The request timeout uses one timer per connection, kept from
//! request to request.
//!
//! Each worker ([`crate::worker`]) has a pool of its own (a shard): a connection is
//! registered with the event loop of the worker that opened it, and only that worker's
//! requests use it, so no request waits on another thread's event loop.
//!
//! Beside them, each host keeps the fast lane's raw connections ([`RawConn`]: the byte
//! stream and its read buffer), on which [`crate::fastlane`] writes and reads HTTP/1.1
//! itself. Same connect path (TCP, TLS, timeouts), same idle timeout and per-host bound;
//! one the upstream closed while idle is noticed by the lane's next exchange (a GET goes
//! again on a new connection) or dropped by the reaper when it expires.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Method, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::body::{self, ProxyBody, ReadBodyError};
use crate::config::{SiteConfig, UpstreamConfig};
use crate::send_timeout::SendTimeout;
use crate::stall::StallTimer;
use bytes::Bytes;
use http_body::Body as _;

/// Why an upstream call failed, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect to upstream: {0}")]
    Connect(String),
    /// Connecting (resolution, TCP or the TLS handshake) took longer than the connect
    /// timeout. Nothing was sent, as with `Connect`; answered 504, as nginx answers a
    /// `proxy_connect_timeout`.
    #[error("cannot connect to upstream in time: {0}")]
    ConnectTimeout(String),
    #[error("upstream connection failed: {0}")]
    Reset(String),
}

impl UpstreamError {
    /// Metric label of the failure.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Connect(_) | UpstreamError::ConnectTimeout(_) => "connect",
            UpstreamError::Reset(_) => "reset",
        }
    }

    /// Whether the request never left the gateway (no connection was made): the upstream
    /// cannot have acted on it.
    pub fn sent_nothing(&self) -> bool {
        matches!(
            self,
            UpstreamError::Connect(_) | UpstreamError::ConnectTimeout(_)
        )
    }

    /// The status the gateway answers with: 504 for a timeout (connecting or answering),
    /// 502 otherwise.
    pub fn status(&self) -> http::StatusCode {
        match self {
            UpstreamError::Timeout(_) | UpstreamError::ConnectTimeout(_) => {
                http::StatusCode::GATEWAY_TIMEOUT
            }
            _ => http::StatusCode::BAD_GATEWAY,
        }
    }
}

/// Error building a client (bad CA bundle).
#[derive(Debug, thiserror::Error)]
#[error("site {site}: {reason}")]
pub struct ClientBuildError {
    pub site: String,
    pub reason: String,
}

/// A pooled client for one site.
#[derive(Clone)]
pub struct UpstreamClient {
    pool: Arc<Pool>,
}

impl UpstreamClient {
    /// A client for `site` with one pool shard per worker (`workers`, at least one).
    pub fn new(
        site: &SiteConfig,
        cfg: &UpstreamConfig,
        workers: usize,
    ) -> Result<UpstreamClient, ClientBuildError> {
        let fail = |reason: String| ClientBuildError {
            site: site.name.to_string(),
            reason,
        };
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| fail(e.to_string()))?;
        let tls = match &site.ca_bundle {
            Some(path) => {
                let pem =
                    std::fs::read(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    let cert = cert.map_err(|e| fail(format!("{}: {e}", path.display())))?;
                    roots
                        .add(cert)
                        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            None => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_native_certs_or_empty() {
                    let _ = roots.add(cert);
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        Ok(UpstreamClient {
            pool: Arc::new(Pool {
                tls: TlsConnector::from(Arc::new(tls)),
                connect_timeout: cfg.connect_timeout,
                request_timeout: cfg.request_timeout,
                idle_timeout: cfg.pool_idle_timeout,
                max_idle_per_host: cfg.pool_max_idle_per_host,
                shards: (0..workers.max(1))
                    .map(|_| Mutex::new(Vec::new()))
                    .collect(),
                reaper_started: AtomicBool::new(false),
            }),
        })
    }

    /// Sends a request and waits for the response headers. The request timeout runs from
    /// the moment the request body has been sent: a long upload (image data) is bounded by
    /// its own progress, not by the timeout. Not an `async fn`: the pool's future is the
    /// whole state (an async layer would hold the request a second time).
    pub fn send(
        &self,
        req: Request<ProxyBody>,
    ) -> impl Future<Output = Result<Response<UpstreamBody>, UpstreamError>> + Send + '_ {
        let timeout = self.pool.request_timeout;
        // Without a body the deadline is known now; with one, once the body has been sent.
        let (req, at, body_sent) = if req.body().is_end_stream() {
            (req, Some(Instant::now() + timeout), None)
        } else {
            let sent = Arc::new(AtomicBool::new(false));
            let done = sent.clone();
            let req = req.map(|inner| body::stream(SignalOnEnd { inner, done }));
            (req, None, Some(sent))
        };
        let deadline = Deadline {
            timeout,
            at,
            body_sent,
        };
        self.pool.request(req, deadline)
    }

    /// The fast lane's checkout: the host's `Host` header and its most recently used idle
    /// raw connection younger than the idle timeout, if any (older ones close).
    pub fn raw_checkout(
        &self,
        https: bool,
        authority: &Authority,
    ) -> Result<RawCheckout, UpstreamError> {
        let pool = &self.pool;
        let shard = pool.shard();
        let mut hosts = pool.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
        let index = Pool::host_index(&mut hosts, https, authority)?;
        let entry = &mut hosts[index];
        let mut idle = None;
        while let Some((mut conn, since)) = entry.raw_idle.pop() {
            if since.elapsed() < pool.idle_timeout && conn.is_quiet() {
                idle = Some(conn);
                break;
            }
        }
        Ok(RawCheckout {
            host: HostRef { shard, index },
            host_header: entry.host_header.clone(),
            idle,
        })
    }

    /// Opens a new raw connection for the fast lane, bounded by the connect timeout.
    pub async fn raw_connect(
        &self,
        https: bool,
        authority: &Authority,
    ) -> Result<RawConn, UpstreamError> {
        Ok(RawConn {
            io: self.pool.connect_io(https, authority).await?,
            buf: bytes::BytesMut::with_capacity(8 * 1024),
        })
    }

    /// Gives a raw connection back after a complete response, unless its host already
    /// has enough idle ones.
    pub fn raw_put(&self, host: HostRef, conn: RawConn) {
        let pool = &self.pool;
        let surplus = {
            let mut hosts = pool.lock_shard(host);
            match hosts.get_mut(host.index) {
                Some(h) if h.raw_idle.len() < pool.max_idle_per_host => {
                    h.raw_idle.push((conn, Instant::now()));
                    None
                }
                _ => Some(conn),
            }
        };
        drop(surplus);
        pool.start_reaper();
    }

    /// The upstream request timeout: how long a request may wait for its response head.
    pub fn request_timeout(&self) -> Duration {
        self.pool.request_timeout
    }

    /// Sends a small request with a fixed body and reads the whole response (for the
    /// gateway's own calls: token validation, probes).
    pub async fn send_full(
        &self,
        req: Request<ProxyBody>,
        limit: u64,
    ) -> Result<(http::response::Parts, Bytes), UpstreamError> {
        let request_timeout = self.pool.request_timeout;
        let resp = self.send(req).await?;
        let (parts, body) = resp.into_parts();
        // The body's own stall timer ([`UpstreamBody`]) bounds each wait; this bounds the
        // whole read.
        let read = crate::body::read_limited(body, limit, request_timeout);
        let bytes = tokio::time::timeout(request_timeout, read)
            .await
            .map_err(|_| UpstreamError::Timeout(request_timeout))?
            .map_err(|e| match e {
                ReadBodyError::Stalled { .. } => UpstreamError::Timeout(request_timeout),
                ReadBodyError::Broken(e) if is_timeout(&*e) => {
                    UpstreamError::Timeout(request_timeout)
                }
                e => UpstreamError::Reset(e.to_string()),
            })?;
        Ok((parts, bytes))
    }
}

/// The idle connections of one site's client, by upstream host.
struct Pool {
    tls: TlsConnector,
    connect_timeout: Duration,
    request_timeout: Duration,
    idle_timeout: Duration,
    max_idle_per_host: usize,
    /// One per worker, each with one entry per host the worker has used; a site has a
    /// handful (one per service at most), so a linear search beats hashing. Entries are
    /// never removed: their index is stable.
    shards: Box<[Mutex<Vec<HostPool>>]>,
    reaper_started: AtomicBool,
}

/// One upstream host's idle connections.
struct HostPool {
    https: bool,
    authority: Authority,
    /// The `Host` header of requests to this host (the port only when not the default).
    host_header: HeaderValue,
    /// Most recently used last.
    idle: Vec<IdleConn>,
    /// Idle byte streams of the fast lane ([`crate::fastlane`]), most recently used last.
    raw_idle: Vec<(RawConn, Instant)>,
}

/// An upstream connection the fast lane speaks HTTP/1.1 on itself: the byte stream and
/// what was read from it beyond the last response (nothing, between well-formed responses).
pub struct RawConn {
    pub io: UpstreamIo,
    pub buf: bytes::BytesMut,
}

impl RawConn {
    /// Whether nothing has come on this idle connection since its last answer: no bytes,
    /// no end of stream, no error. Bytes there would be an answer to no request (a buggy
    /// upstream's body after a `204`, or the rest of a body longer than its
    /// `Content-Length`), which the next request would read as its own; such a connection
    /// is closed instead, as nginx's keepalive cache and hyper's pool close theirs. Looked
    /// at without waiting: the socket's readiness is known to the runtime, so a quiet
    /// connection costs no system call.
    fn is_quiet(&mut self) -> bool {
        let mut probe = [0u8; 1];
        let mut probe = tokio::io::ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(Waker::noop());
        matches!(
            tokio::io::AsyncRead::poll_read(Pin::new(&mut self.io), &mut cx, &mut probe),
            Poll::Pending
        )
    }
}

/// Where a host's idle connections are kept: the worker's shard and the host's entry in it.
#[derive(Debug, Clone, Copy)]
pub struct HostRef {
    shard: usize,
    index: usize,
}

/// A raw connection checked out for one request: an idle one if the host has any, the
/// host's `Host` header, and where to give the connection back.
pub struct RawCheckout {
    pub host: HostRef,
    pub host_header: HeaderValue,
    pub idle: Option<RawConn>,
}

struct IdleConn {
    conn: Conn,
    since: Instant,
}

/// A connection checked out of the pool, with what the request needs to know of its host.
struct Checkout {
    host: HostRef,
    host_header: HeaderValue,
    idle: Option<Conn>,
}

impl Pool {
    /// Sends `req` (absolute URI) on an idle connection to its host, or a new one, and
    /// waits for the response head until `deadline`.
    async fn request(
        self: &Arc<Pool>,
        mut req: Request<ProxyBody>,
        mut deadline: Deadline,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let uri = req.uri();
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            Some(s) => return Err(UpstreamError::Connect(format!("unsupported scheme {s}"))),
            None => return Err(UpstreamError::Reset("upstream URI is not absolute".into())),
        };
        let Some(authority) = uri.authority().cloned() else {
            return Err(UpstreamError::Reset("upstream URI is not absolute".into()));
        };
        let mut checkout = self.checkout(https, &authority)?;
        if !req.headers().contains_key(HOST) {
            req.headers_mut().insert(HOST, checkout.host_header.clone());
        }
        // HTTP/1.1 to an origin server: the request line carries the path (RFC 9112 §3.2.1),
        // CONNECT the authority.
        *req.uri_mut() = if req.method() == Method::CONNECT {
            Uri::from(authority.clone())
        } else {
            match req.uri().path_and_query() {
                Some(pq) if pq.as_str() != "/" => Uri::from(pq.clone()),
                _ => Uri::from(PathAndQuery::from_static("/")),
            }
        };
        // Reused connections first; one the upstream closed while idle gives the request
        // back unsent, and the next one gets it. One the upstream closes as the request
        // goes out (its keep-alive timeout ran out just then, which nothing can see
        // before writing) has lost a request that may have reached it: a safe request
        // without a body goes again once, on a new connection (as the fast lane's, and
        // nginx's on its cached connections); any other fails.
        let mut replay = None;
        while let Some(mut conn) = checkout.idle.take() {
            if replay.is_none() {
                replay = replayable(&req);
            }
            match conn.exchange(req, &mut deadline).await {
                Ok(resp) => return Ok(self.response(checkout.host, conn, resp)),
                Err(Failed::Unsent(unsent, _)) => req = *unsent,
                Err(Failed::Lost(e)) => match replay.take() {
                    Some(again) => {
                        tracing::debug!(error = %e, "reused upstream connection lost a safe request; sent again");
                        req = again;
                        break;
                    }
                    None => return Err(e),
                },
                Err(Failed::Sent(e)) => return Err(e),
            }
            checkout.idle = self.idle_conn(checkout.host);
        }
        // Boxed: connecting (resolve, TCP, TLS) has a large state, and the request future
        // that would carry it is moved whole at every request. A request without a body
        // is already under its deadline (which bounds the name resolution too).
        let connect = Box::pin(self.connect(https, &authority));
        let mut conn = match deadline.known() {
            Some(at) => tokio::time::timeout_at(at, connect)
                .await
                .map_err(|_| UpstreamError::Timeout(deadline.timeout))??,
            None => connect.await?,
        };
        match conn.exchange(req, &mut deadline).await {
            Ok(resp) => Ok(self.response(checkout.host, conn, resp)),
            Err(Failed::Unsent(_, e)) => Err(UpstreamError::Reset(error_chain(&e))),
            Err(Failed::Lost(e) | Failed::Sent(e)) => Err(e),
        }
    }

    /// The host's pool entry (made on first use) and an idle connection, if any.
    fn checkout(&self, https: bool, authority: &Authority) -> Result<Checkout, UpstreamError> {
        let shard = self.shard();
        let mut hosts = self.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
        let index = Self::host_index(&mut hosts, https, authority)?;
        let idle = self.pop_live(&mut hosts[index]);
        Ok(Checkout {
            host: HostRef { shard, index },
            host_header: hosts[index].host_header.clone(),
            idle,
        })
    }

    /// The calling worker's shard.
    fn shard(&self) -> usize {
        crate::worker::index() % self.shards.len()
    }

    /// The shard a host entry belongs to, locked.
    fn lock_shard(&self, host: HostRef) -> std::sync::MutexGuard<'_, Vec<HostPool>> {
        self.shards[host.shard]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The index of a host's pool entry, made on first use.
    fn host_index(
        hosts: &mut Vec<HostPool>,
        https: bool,
        authority: &Authority,
    ) -> Result<usize, UpstreamError> {
        let host = match hosts
            .iter()
            .position(|h| h.https == https && h.authority == *authority)
        {
            Some(i) => i,
            None => {
                let host_header = host_header(https, authority).ok_or_else(|| {
                    UpstreamError::Connect(format!("invalid upstream host {authority}"))
                })?;
                hosts.push(HostPool {
                    https,
                    authority: authority.clone(),
                    host_header,
                    idle: Vec::new(),
                    raw_idle: Vec::new(),
                });
                hosts.len() - 1
            }
        };
        Ok(host)
    }

    fn idle_conn(&self, host: HostRef) -> Option<Conn> {
        let mut hosts = self.lock_shard(host);
        hosts.get_mut(host.index).and_then(|h| self.pop_live(h))
    }

    /// The most recently used connection that is not expired; the others are dropped
    /// (which closes them). One the upstream closed while idle is noticed by the exchange.
    fn pop_live(&self, host: &mut HostPool) -> Option<Conn> {
        while let Some(idle) = host.idle.pop() {
            if idle.since.elapsed() < self.idle_timeout && idle.conn.sender.is_ready() {
                return Some(idle.conn);
            }
        }
        None
    }

    /// Wraps a response so that its connection returns to the pool after the body.
    fn response(
        self: &Arc<Pool>,
        host: HostRef,
        conn: Conn,
        resp: Response<Incoming>,
    ) -> Response<UpstreamBody> {
        let give_back = GiveBack {
            pool: self.clone(),
            host,
            conn,
        };
        let give_back = if resp.body().is_end_stream() {
            give_back.release();
            None
        } else {
            Some(give_back)
        };
        let stall = StallTimer::new(self.request_timeout);
        resp.map(|inner| UpstreamBody {
            inner,
            give_back,
            stall,
        })
    }

    /// Puts a connection back, unless the host already has enough idle ones.
    fn put(self: &Arc<Pool>, host: HostRef, conn: Conn) {
        let surplus = {
            let mut hosts = self.lock_shard(host);
            match hosts.get_mut(host.index) {
                Some(h) if h.idle.len() < self.max_idle_per_host => {
                    h.idle.push(IdleConn {
                        conn,
                        since: Instant::now(),
                    });
                    None
                }
                _ => Some(conn),
            }
        };
        drop(surplus);
        self.start_reaper();
    }

    /// Starts (once) the task that closes connections idle for longer than the timeout.
    fn start_reaper(self: &Arc<Pool>) {
        if self.reaper_started.load(Ordering::Relaxed)
            || self.reaper_started.swap(true, Ordering::Relaxed)
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.reaper_started.store(false, Ordering::Relaxed);
            return;
        };
        let pool: Weak<Pool> = Arc::downgrade(self);
        let period = self.idle_timeout.max(Duration::from_millis(100));
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                pool.drop_expired();
            }
        });
    }

    /// Closes the connections idle for too long, and those the upstream closed (their
    /// sockets would otherwise linger half-closed until the timeout).
    fn drop_expired(&self) {
        let mut expired = Vec::new();
        let mut expired_raw = Vec::new();
        for shard in self.shards.iter() {
            let mut hosts = shard.lock().unwrap_or_else(|p| p.into_inner());
            for host in hosts.iter_mut() {
                let raw_live =
                    |(_, since): &(RawConn, Instant)| since.elapsed() < self.idle_timeout;
                let (raw_keep, raw_gone): (Vec<_>, Vec<_>) = std::mem::take(&mut host.raw_idle)
                    .into_iter()
                    .partition(raw_live);
                host.raw_idle = raw_keep;
                expired_raw.extend(raw_gone);
                for mut idle in std::mem::take(&mut host.idle) {
                    if idle.since.elapsed() < self.idle_timeout && idle.conn.reusable() {
                        host.idle.push(idle);
                    } else {
                        expired.push(idle);
                    }
                }
            }
        }
        drop(expired);
        drop(expired_raw);
    }

    /// Opens a connection (TCP, then TLS for `https`) and its HTTP/1.1 handshake.
    /// Every failure here is a connect failure.
    async fn connect(&self, https: bool, authority: &Authority) -> Result<Conn, UpstreamError> {
        Conn::handshake(self.connect_io(https, authority).await?).await
    }

    /// Opens the byte stream of a connection: TCP, then TLS for `https`.
    async fn connect_io(
        &self,
        https: bool,
        authority: &Authority,
    ) -> Result<UpstreamIo, UpstreamError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            UpstreamError::Connect(format!("{what} {authority}: {e}"))
        };
        let too_slow = |what: &str, after: Duration| {
            UpstreamError::ConnectTimeout(format!("{what} {authority}: timed out after {after:?}"))
        };
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        // Every step of connecting is bounded by the connect timeout (resolution, each TCP
        // attempt's share, the TLS handshake): a request with a body starts its request
        // timer only once the body is sent, so nothing else bounds them.
        let addrs: Vec<std::net::SocketAddr> =
            tokio::time::timeout(self.connect_timeout, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| too_slow("cannot resolve", self.connect_timeout))?
                .map_err(|e| fail("cannot resolve", &e))?
                .collect();
        if addrs.is_empty() {
            return Err(fail("cannot resolve", &"no addresses"));
        }
        // The connect timeout is shared by the addresses, tried in order.
        let per_address = self
            .connect_timeout
            .checked_div(addrs.len() as u32)
            .unwrap_or(self.connect_timeout);
        // The last attempt's failure names the whole: refused (502) or timed out (504).
        let mut last_error = None;
        let mut tcp = None;
        for addr in &addrs {
            match tokio::time::timeout(per_address, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) if connected_to_itself(&stream) => {
                    last_error = Some(fail("tcp connect to", &SELF_CONNECTED));
                }
                Ok(Ok(stream)) => {
                    tcp = Some(stream);
                    break;
                }
                Ok(Err(e)) => last_error = Some(fail("tcp connect to", &e)),
                Err(_) => last_error = Some(too_slow("tcp connect to", per_address)),
            }
        }
        let Some(tcp) = tcp else {
            return Err(last_error.unwrap_or_else(|| fail("tcp connect to", &"failed")));
        };
        let _ = tcp.set_nodelay(true);
        // An upstream that stops taking a request (a hung service under a streamed
        // upload) fails it after the request timeout, as nginx's `proxy_send_timeout`.
        let tcp = SendTimeout::new(tcp, self.request_timeout);
        if !https {
            return Ok(UpstreamIo::Plain(tcp));
        }
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| fail("invalid TLS server name for", &e))?;
        let tls = tokio::time::timeout(self.connect_timeout, self.tls.connect(name, tcp))
            .await
            .map_err(|_| too_slow("TLS handshake with", self.connect_timeout))?
            .map_err(|e| fail("TLS handshake with", &e))?;
        Ok(UpstreamIo::Tls(Box::new(tls)))
    }
}

/// Why a connection that met itself is given up.
const SELF_CONNECTED: &str = "connected to itself (nothing listens there)";

/// True for a TCP connection whose two ends are the same address. With nothing listening on
/// a local upstream's port, and that port in the ephemeral range, the kernel can pick it as
/// the connection's own port, and the SYN meets itself (a simultaneous open): the gateway
/// would read its own request back as the answer. Such a connection is a refusal, and is
/// closed.
fn connected_to_itself(stream: &TcpStream) -> bool {
    matches!((stream.local_addr(), stream.peer_addr()), (Ok(local), Ok(peer)) if local == peer)
}

/// The byte stream of an upstream connection: plain TCP or TLS over it.
pub enum UpstreamIo {
    Plain(SendTimeout<TcpStream>),
    Tls(Box<tokio_rustls::client::TlsStream<SendTimeout<TcpStream>>>),
}

impl tokio::io::AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(s) => s.is_write_vectored(),
            UpstreamIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One upstream connection: hyper's sender and the connection state machine it feeds.
/// No task of its own: the task that sends a request drives the connection until the
/// response has been read (while waiting for the head, then from the body's `poll_frame`),
/// so a request never hops to another task and back. Idle in the pool, nobody polls it.
struct Conn {
    sender: SendRequest<ProxyBody>,
    /// `None` once the connection has ended. Boxed: the state machine is large, and the
    /// connection moves with its response (pool, body wrapper, back to the pool).
    driver: Option<Box<Connection<TokioIo<UpstreamIo>, ProxyBody>>>,
    /// The request timeout's timer, kept from request to request: it is set again only
    /// when it would ring later than the current request's deadline (see
    /// [`Conn::poll_deadline`]), so a request on a busy connection registers no timer.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// Why an exchange on a connection failed.
enum Failed {
    /// The request was not written (the connection had closed): it can go elsewhere.
    /// Boxed: rare, and the request is large.
    Unsent(Box<Request<ProxyBody>>, hyper::Error),
    /// The connection ended (closed, or reset) before the answer's head: the request may
    /// have reached the upstream.
    Lost(UpstreamError),
    /// The request may have reached the upstream.
    Sent(UpstreamError),
}

/// A copy of `req` to send again if a reused connection loses it: for a safe method
/// (RFC 9110 §9.2.1: `GET`, `HEAD`, `OPTIONS`) without a body; `None` for anything else.
/// The copy has the method, URI, version and headers; nothing reads the extensions of a
/// request sent upstream.
fn replayable(req: &Request<ProxyBody>) -> Option<Request<ProxyBody>> {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe || !req.body().is_end_stream() {
        return None;
    }
    let mut copy = Request::new(body::empty());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// Whether a request failed because its connection ended before the answer's head: the
/// upstream closed it (hyper's "incomplete message") or reset it.
fn ended_before_answer(e: &hyper::Error) -> bool {
    e.is_incomplete_message()
        || io_kind_in_chain(
            e,
            &[
                std::io::ErrorKind::ConnectionReset,
                std::io::ErrorKind::ConnectionAborted,
                std::io::ErrorKind::BrokenPipe,
                std::io::ErrorKind::UnexpectedEof,
            ],
        )
}

impl Conn {
    async fn handshake(io: UpstreamIo) -> Result<Conn, UpstreamError> {
        let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| UpstreamError::Connect(error_chain(&e)))?;
        Ok(Conn {
            sender,
            driver: Some(Box::new(driver)),
            timer: None,
        })
    }

    /// Moves the connection on (reads, writes) with `cx`; false once it has ended.
    ///
    /// Wakers: everything inside the connection that can complete (the response head, a
    /// body chunk, the end of a body) completes only while this task drives it, so those
    /// are polled, and the connection is first driven, without a waker: a real one would
    /// only wake this task while it runs, for one more poll of the client connection that
    /// finds nothing to do. Only before answering `Pending` is the connection driven with
    /// the task's waker, so that the socket wakes the task.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(driver) = self.driver.as_mut() else {
            return false;
        };
        match Pin::new(driver.as_mut()).poll(cx) {
            Poll::Pending => return true,
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "upstream connection ended with an error")
            }
        }
        // Dropping the state machine hands back a request it had not started (with its
        // message), and fails one it had.
        self.driver = None;
        false
    }

    /// True when the connection is open and idle, ready for another request (driven once
    /// without a waker: it finishes the response just read, and notices an upstream that
    /// closed it). An idle connection is polled by nobody; whoever uses it next drives it.
    fn reusable(&mut self) -> bool {
        self.drive(&mut noop_context()) && self.sender.is_ready()
    }

    /// Ready once `at` has passed; else the task's waker is registered to be woken no
    /// later than `at`. Deadlines of successive requests only grow, so a timer set for an
    /// earlier request is left as it is and, when it rings early, set again: one timer
    /// registration per timeout period and connection instead of one per request.
    fn poll_deadline(&mut self, at: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.deadline() > at {
            timer.as_mut().reset(at);
        }
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if Instant::now() >= at {
                return Poll::Ready(());
            }
            timer.as_mut().reset(at);
        }
    }

    /// Sends `req` and drives the connection until the response head arrives, or
    /// `deadline` passes. A request the connection had not begun to write when it turned
    /// out closed comes back (`Failed::Unsent`): an idle connection the upstream closed is
    /// noticed here, at its first poll, before anything is written.
    async fn exchange(
        &mut self,
        req: Request<ProxyBody>,
        deadline: &mut Deadline,
    ) -> Result<Response<Incoming>, Failed> {
        let response = self.sender.try_send_request(req);
        let mut response = std::pin::pin!(response);
        let mut written = false;
        std::future::poll_fn(|cx| {
            let mut polled;
            if !std::mem::replace(&mut written, true) {
                // This poll writes the request: no answer can be there yet, so the task's
                // waker at once.
                self.drive(cx);
                polled = response.as_mut().poll(&mut noop_context());
            } else {
                // The socket woke the task: look without a waker first.
                self.drive(&mut noop_context());
                polled = response.as_mut().poll(&mut noop_context());
                if polled.is_pending() && self.driver.is_some() {
                    self.drive(cx);
                    polled = response.as_mut().poll(&mut noop_context());
                }
            }
            match polled {
                Poll::Ready(Ok(resp)) => Poll::Ready(Ok(resp)),
                Poll::Ready(Err(mut e)) => Poll::Ready(Err(match e.take_message() {
                    Some(unsent) => Failed::Unsent(Box::new(unsent), e.into_error()),
                    None if is_timeout(e.error()) => {
                        Failed::Sent(UpstreamError::Timeout(deadline.timeout))
                    }
                    None if ended_before_answer(e.error()) => {
                        Failed::Lost(UpstreamError::Reset(error_chain(e.error())))
                    }
                    None => Failed::Sent(UpstreamError::Reset(error_chain(e.error()))),
                })),
                // Cannot happen (an ended connection fails its requests), but never hang.
                Poll::Pending if self.driver.is_none() => Poll::Ready(Err(Failed::Sent(
                    UpstreamError::Reset("upstream connection ended without an answer".into()),
                ))),
                Poll::Pending => match deadline.known() {
                    Some(at) if self.poll_deadline(at, cx).is_ready() => {
                        Poll::Ready(Err(Failed::Sent(UpstreamError::Timeout(deadline.timeout))))
                    }
                    _ => Poll::Pending,
                },
            }
        })
        .await
    }
}

/// A context whose waker does nothing (see [`Conn::drive`]).
fn noop_context() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

/// The `Host` header for a host: its name, and its port unless it is the scheme's default.
fn host_header(https: bool, authority: &Authority) -> Option<HeaderValue> {
    let default_port = if https { 443 } else { 80 };
    match authority.port_u16() {
        Some(port) if port != default_port => {
            HeaderValue::from_str(&format!("{}:{port}", authority.host())).ok()
        }
        _ => HeaderValue::from_str(authority.host()).ok(),
    }
}

/// A connection to hand back to its pool once its response is over.
struct GiveBack {
    pool: Arc<Pool>,
    host: HostRef,
    conn: Conn,
}

impl GiveBack {
    /// Back to the pool if the connection is ready for the next request; else (it ended,
    /// or the upstream answered before the request body was all sent) it closes.
    fn release(self) {
        let GiveBack {
            pool,
            host,
            mut conn,
        } = self;
        if conn.reusable() {
            pool.put(host, conn);
        }
    }
}

/// An upstream response body. It drives its connection as it is read; the connection goes
/// back to the pool when the body has been read to the end; dropped before that, the
/// connection closes with it. An upstream that sends nothing more of it for the request
/// timeout while the gateway waits (nginx's `proxy_read_timeout`) ends it with an error.
pub struct UpstreamBody {
    inner: Incoming,
    give_back: Option<GiveBack>,
    stall: StallTimer,
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        // The body is fed by its connection, which only this task moves on: look, drive it
        // without a waker and look again, and only then drive it with the task's waker
        // (see `Conn::drive`).
        let polled = match this.give_back.as_mut() {
            Some(give_back) if give_back.conn.driver.is_some() => {
                let inner = &mut this.inner;
                let mut look = || Pin::new(&mut *inner).poll_frame(&mut noop_context());
                let mut polled = look();
                if polled.is_pending() {
                    give_back.conn.drive(&mut noop_context());
                    polled = look();
                }
                if polled.is_pending() {
                    give_back.conn.drive(cx);
                    polled = look();
                }
                if polled.is_pending() && give_back.conn.driver.is_none() {
                    // Ended while nothing more was readable: let the body say how.
                    polled = Pin::new(&mut this.inner).poll_frame(cx);
                }
                polled
            }
            _ => Pin::new(&mut this.inner).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(_))) if !this.inner.is_end_stream() => {}
            Poll::Ready(Some(Ok(_))) | Poll::Ready(None) => {
                if let Some(give_back) = this.give_back.take() {
                    give_back.release();
                }
            }
            Poll::Ready(Some(Err(_))) => this.give_back = None,
            Poll::Pending => {
                ready!(this.stall.poll_waiting(cx));
                this.give_back = None;
                return Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the upstream sent no more of its answer for {:?}",
                        this.stall.limit()
                    ),
                )))));
            }
        }
        if polled.is_ready() {
            this.stall.progressed();
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("pooled", &self.give_back.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // Read to its last byte but not polled past it: the connection is still good.
        if let Some(give_back) = self.give_back.take() {
            if self.inner.is_end_stream() {
                give_back.release();
            }
        }
    }
}

/// When the request timeout ends: `timeout` after the request body has been sent.
struct Deadline {
    timeout: Duration,
    /// Known once the body has been sent (at once for a request without one).
    at: Option<Instant>,
    /// Set by [`SignalOnEnd`] when the body has been sent.
    body_sent: Option<Arc<AtomicBool>>,
}

impl Deadline {
    /// The deadline, once it is known (fixed at the first call after the body was sent).
    fn known(&mut self) -> Option<Instant> {
        if self.at.is_none() && self.body_sent.as_ref()?.load(Ordering::Relaxed) {
            self.at = Some(Instant::now() + self.timeout);
        }
        self.at
    }
}

/// A request body that reports when it has been sent completely (or dropped). The flag is
/// read by the task that drives the connection, the only one that polls this body.
struct SignalOnEnd {
    inner: ProxyBody,
    done: Arc<AtomicBool>,
}

impl http_body::Body for SignalOnEnd {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) | Poll::Ready(Some(Err(_))) = &polled {
            self.done.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for SignalOnEnd {
    fn drop(&mut self) {
        // Dropped (sent to its end, or given up): the request is over either way.
        self.done.store(true, Ordering::Relaxed);
    }
}

fn rustls_native_certs_or_empty() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    // The platform trust store, for sites without their own CA bundle.
    let result = rustls_native_certs::load_native_certs();
    result.certs
}

/// Whether `e` comes from an upstream that stopped for the request timeout: a write it
/// left blocked (see [`SendTimeout`]), or an answer it stopped sending (see
/// [`UpstreamBody`]).
pub(crate) fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    io_kind_in_chain(e, &[std::io::ErrorKind::TimedOut])
}

/// Whether `e` or one of its sources is an [`std::io::Error`] of one of `kinds`.
fn io_kind_in_chain(e: &(dyn std::error::Error + 'static), kinds: &[std::io::ErrorKind]) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| kinds.contains(&io.kind()))
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// The error and its sources, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::config::SiteName;

    fn client(request_timeout: Duration) -> UpstreamClient {
        client_with(Duration::from_secs(2), request_timeout)
    }

    fn client_with(connect_timeout: Duration, request_timeout: Duration) -> UpstreamClient {
        let site = SiteConfig {
            name: SiteName::Primary,
            endpoints: BTreeMap::new(),
            region: None,
            ca_bundle: None,
            credentials: None,
            admin: true,
            aliases: Default::default(),
        };
        let cfg = UpstreamConfig {
            connect_timeout,
            request_timeout,
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_host: 4,
        };
        UpstreamClient::new(&site, &cfg, 1).expect("client")
    }

    fn get(url: &str) -> Request<ProxyBody> {
        Request::get(url).body(body::empty()).expect("request")
    }

    /// A local upstream serving each connection it accepts with `serve`, on a task of
    /// its own: its base URL and how many connections it accepted.
    async fn serve_each<F, Fut>(serve: F) -> (String, Arc<AtomicUsize>)
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let c = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream));
            }
        });
        (format!("http://{addr}"), connections)
    }

    /// An upstream that answers every request on a connection with `ok` (keep-alive) and
    /// records the connections it accepted and the request heads it read.
    async fn upstream() -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
        let heads = Arc::new(Mutex::new(Vec::new()));
        let h = heads.clone();
        let (base, connections) = serve_each(move |mut stream| {
            let h = h.clone();
            async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head: Vec<u8> = buf.drain(..end + 4).collect();
                        h.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&head).into_owned());
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            }
        })
        .await;
        (base, connections, heads)
    }

    #[tokio::test]
    async fn reuses_a_connection_and_sends_origin_form_with_host() {
        let (base, connections, heads) = upstream().await;
        let client = client(Duration::from_secs(5));
        for _ in 0..3 {
            let resp = client
                .send(get(&format!("{base}/v2.1/flavors?limit=1")))
                .await
                .expect("response");
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(&body[..], b"ok");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        let heads = heads.lock().unwrap().clone();
        assert_eq!(heads.len(), 3);
        let authority = base.trim_start_matches("http://");
        assert!(heads[0].starts_with("GET /v2.1/flavors?limit=1 HTTP/1.1\r\n"));
        assert!(heads[0]
            .to_ascii_lowercase()
            .contains(&format!("host: {authority}\r\n")));
    }

    #[tokio::test]
    async fn a_body_dropped_unread_closes_its_connection() {
        let (base, connections, _) = upstream().await;
        let client = client(Duration::from_secs(5));
        let resp = client
            .send(get(&format!("{base}/a")))
            .await
            .expect("response");
        drop(resp);
        let resp = client
            .send(get(&format!("{base}/b")))
            .await
            .expect("response");
        resp.into_body().collect().await.expect("body");
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_pooled_connection_the_upstream_closed_is_replaced() {
        // Answers one request per connection (keep-alive on the wire), then closes it.
        let (base, connections) = serve_each(|mut stream| async move {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            let _ = stream.write_all(answer).await;
        })
        .await;
        let client = client(Duration::from_secs(5));
        for path in ["/a", "/b", "/c"] {
            let resp = client
                .send(get(&format!("{base}{path}")))
                .await
                .expect("response");
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(&body[..], b"ok");
            // The upstream's close reaches the idle connection before the next request.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_safe_request_a_reused_connection_loses_goes_again_once() {
        // Answers the first request on each connection (keep-alive on the wire); reads the
        // second and closes without an answer, as an upstream whose keep-alive timeout
        // ran out just as the request came.
        let heads = Arc::new(Mutex::new(Vec::new()));
        let h = heads.clone();
        let (base, _) = serve_each(move |mut stream| {
            let h = h.clone();
            async move {
                let mut buf = [0u8; 4096];
                for answered in [true, false] {
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buf[..n]);
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    h.lock().unwrap().push(line);
                    if answered {
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        let _ = stream.write_all(answer).await;
                    }
                }
            }
        })
        .await;
        let client = client(Duration::from_secs(5));
        let send = |req: Request<ProxyBody>| {
            let client = &client;
            async move {
                let resp = client.send(req).await?;
                let status = resp.status();
                resp.into_body().collect().await.expect("body");
                Ok::<_, UpstreamError>(status)
            }
        };
        let status = send(get(&format!("{base}/first"))).await.expect("first");
        assert_eq!(status, 200);
        // A GET on the reused connection is lost, and sent again on a new one.
        let status = send(get(&format!("{base}/again")))
            .await
            .expect("sent again");
        assert_eq!(status, 200);
        // A DELETE on the reused (second) connection is lost, and fails: it may have
        // been done.
        let delete = Request::delete(format!("{base}/once"))
            .body(body::empty())
            .expect("request");
        let err = send(delete).await.expect_err("not sent again");
        assert_eq!(err.kind(), "reset", "{err}");
        // A GET with a body is not sent again either.
        let status = send(get(&format!("{base}/first"))).await.expect("third");
        assert_eq!(status, 200);
        let with_body = Request::get(format!("{base}/with-body"))
            .body(body::full("x"))
            .expect("request");
        let err = send(with_body).await.expect_err("not sent again");
        assert_eq!(err.kind(), "reset", "{err}");
        let heads = heads.lock().unwrap().clone();
        let lines: Vec<&str> = heads.iter().map(String::as_str).collect();
        assert_eq!(
            lines,
            [
                "GET /first HTTP/1.1",
                "GET /again HTTP/1.1",
                "GET /again HTTP/1.1",
                "DELETE /once HTTP/1.1",
                "GET /first HTTP/1.1",
                "GET /with-body HTTP/1.1",
            ]
        );
    }

    /// An upstream that answers every request with `ok` and, 50 ms later, with an answer
    /// nobody asked for; it counts its connections.
    async fn upstream_with_strays() -> (String, Arc<AtomicUsize>) {
        serve_each(|mut stream| async move {
            let mut buf = [0u8; 4096];
            while let Ok(1..) = stream.read(&mut buf).await {
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(answer).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                let stray = b"HTTP/1.1 409 Stray\r\ncontent-length: 5\r\n\r\nstray";
                if stream.write_all(stray).await.is_err() {
                    return;
                }
            }
        })
        .await
    }

    async fn status_of(client: &UpstreamClient, req: Request<ProxyBody>) -> http::StatusCode {
        let resp = client.send(req).await.expect("response");
        let status = resp.status();
        resp.into_body().collect().await.expect("body");
        status
    }

    #[tokio::test]
    async fn an_idle_connection_with_an_answer_nobody_asked_for_is_not_reused() {
        let (base, connections) = upstream_with_strays().await;
        let client = client(Duration::from_secs(5));
        for n in 1..=3 {
            let patch = Request::patch(format!("{base}/p{n}"))
                .body(body::full("[]"))
                .expect("request");
            assert_eq!(status_of(&client, patch).await, 200);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(connections.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn an_idle_connection_with_an_answer_nobody_asked_for_is_not_reused_by_another_runtime() {
        // The mirror's runtime and a worker's share a pool shard: a connection made on one
        // may be taken from the pool on the other.
        // Each runtime's thread turns its event loop while the other runtime sends.
        let runtime = || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime")
        };
        let upstream_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (base, connections) = upstream_rt.block_on(upstream_with_strays());
        let client = Arc::new(client(Duration::from_secs(5)));
        let (first, second) = (runtime(), runtime());
        for n in 1..=3 {
            let get = get(&format!("{base}/g{n}"));
            assert_eq!(first.block_on(status_of(&client, get)), 200);
            std::thread::sleep(Duration::from_millis(200));
            let patch = Request::patch(format!("{base}/p{n}"))
                .body(body::full("[]"))
                .expect("request");
            assert_eq!(second.block_on(status_of(&client, patch)), 200);
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(connections.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn refused_is_a_connect_failure() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let err = client(Duration::from_secs(5))
            .send(get(&format!("http://{addr}/")))
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), "connect");
        assert_eq!(err.status(), http::StatusCode::BAD_GATEWAY);
    }

    #[tokio::test]
    async fn a_connection_that_met_itself_is_told_apart() {
        // A simultaneous open with itself, as the kernel makes when a connect to a port
        // nobody listens on is given that port as its own.
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
        let own = socket.local_addr().expect("addr");
        let looped = socket.connect(own).await.expect("self-connect");
        assert!(connected_to_itself(&looped));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let real = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        assert!(!connected_to_itself(&real));
    }

    #[tokio::test]
    async fn a_handshake_that_never_comes_is_a_connect_timeout() {
        // Takes the TCP connection, never speaks TLS.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let client = client_with(Duration::from_millis(200), Duration::from_secs(5));
        let err = client
            .send(get(&format!("https://{addr}/")))
            .await
            .expect_err("no handshake");
        assert!(matches!(err, UpstreamError::ConnectTimeout(_)), "{err:?}");
        assert_eq!(err.kind(), "connect");
        assert_eq!(err.status(), http::StatusCode::GATEWAY_TIMEOUT);
        assert!(err.to_string().contains("TLS handshake"), "{err}");
    }

    #[tokio::test]
    async fn silence_is_a_timeout_and_a_hang_up_a_reset() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut held = Vec::new();
            let mut n = 0;
            while let Ok((mut stream, _)) = listener.accept().await {
                n += 1;
                if n == 1 {
                    held.push(stream); // never answers
                } else {
                    let mut buf = [0u8; 1024];
                    let _ = stream.read(&mut buf).await;
                    drop(stream); // hangs up without an answer
                }
            }
        });
        let client = client(Duration::from_millis(200));
        let err = client
            .send(get(&format!("http://{addr}/")))
            .await
            .expect_err("silent");
        assert_eq!(err.kind(), "timeout");
        assert_eq!(err.status(), http::StatusCode::GATEWAY_TIMEOUT);
        let err = client
            .send(get(&format!("http://{addr}/")))
            .await
            .expect_err("hung up");
        assert_eq!(err.kind(), "reset");
        assert_eq!(err.status(), http::StatusCode::BAD_GATEWAY);
    }

    #[tokio::test]
    async fn a_whole_answer_that_stops_coming_is_a_timeout_and_one_cut_short_a_reset() {
        // Sends the head and half of the declared body; then either waits or hangs up.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nok";
                let _ = stream.write_all(answer).await;
                if String::from_utf8_lossy(&buf[..n]).starts_with("GET /stall ") {
                    held.push(stream);
                }
            }
        });
        let client = client(Duration::from_millis(200));
        let err = client
            .send_full(get(&format!("http://{addr}/stall")), 1024)
            .await
            .expect_err("stalled");
        assert_eq!(err.kind(), "timeout", "{err}");
        assert_eq!(err.status(), http::StatusCode::GATEWAY_TIMEOUT);
        let err = client
            .send_full(get(&format!("http://{addr}/cut")), 1024)
            .await
            .expect_err("cut short");
        assert_eq!(err.kind(), "reset", "{err}");
        assert_eq!(err.status(), http::StatusCode::BAD_GATEWAY);
    }

    #[tokio::test]
    async fn a_reused_connection_still_times_out() {
        // Answers the first request on a connection, then never again.
        let (base, _) = serve_each(|mut stream| async move {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            let _ = stream.write_all(answer).await;
            while let Ok(1..) = stream.read(&mut buf).await {}
        })
        .await;
        let client = client(Duration::from_millis(200));
        // Right after the first request (its timer still set, for an earlier deadline),
        // and after its timer has rung while the connection sat idle.
        for pause in [Duration::ZERO, Duration::from_millis(300)] {
            let resp = client
                .send(get(&format!("{base}/first")))
                .await
                .expect("response");
            resp.into_body().collect().await.expect("body");
            tokio::time::sleep(pause).await;
            let started = std::time::Instant::now();
            let err = client
                .send(get(&format!("{base}/second")))
                .await
                .expect_err("silent");
            assert_eq!(err.kind(), "timeout");
            let waited = started.elapsed();
            assert!(waited >= Duration::from_millis(190), "{waited:?}");
            assert!(waited < Duration::from_secs(2), "{waited:?}");
        }
    }

    #[test]
    fn host_header_names_the_port_only_when_not_the_default() {
        let h = |https, a: &str| host_header(https, &a.parse().unwrap()).unwrap();
        assert_eq!(h(false, "10.0.0.5:80"), "10.0.0.5");
        assert_eq!(h(false, "10.0.0.5:8774"), "10.0.0.5:8774");
        assert_eq!(h(true, "api.example:443"), "api.example");
        assert_eq!(h(true, "[::1]:5000"), "[::1]:5000");
        assert_eq!(h(false, "api.example"), "api.example");
    }
}
