//! The keep-alive HTTP/1.1 client that talks to one site's services.
//!
//! One client per site (each site may have its own CA bundle). The gateway builds every
//! upstream URI itself from the configured base URL of the target service, so it never
//! connects anywhere a request names.
//!
//! The pool is ours, not hyper-util's: per upstream host (scheme and authority) a stack of
//! idle `hyper::client::conn::http1` senders, each driving one connection task. Checkout
//! pops the most recently used sender that is ready and younger than the idle timeout;
//! a response hands its sender back once its body has been read to the end (or at once
//! for an empty body), so no task is spawned per request. At most
//! `pool_max_idle_per_host` senders wait per host; a reaper task drops the expired ones.
//! A request refused by a reused connection before it was written (the upstream closed it
//! while idle) is retried on another connection, as hyper-util's client did.

use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Method, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::body::{self, ProxyBody};
use crate::config::{SiteConfig, UpstreamConfig};
use bytes::Bytes;
use http_body::Body as _;

/// Why an upstream call failed, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect to upstream: {0}")]
    Connect(String),
    #[error("upstream connection failed: {0}")]
    Reset(String),
}

impl UpstreamError {
    /// Metric label of the failure.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Connect(_) => "connect",
            UpstreamError::Reset(_) => "reset",
        }
    }

    /// The status the gateway answers with: 504 for a timeout, 502 otherwise.
    pub fn status(&self) -> http::StatusCode {
        match self {
            UpstreamError::Timeout(_) => http::StatusCode::GATEWAY_TIMEOUT,
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
    pub fn new(
        site: &SiteConfig,
        cfg: &UpstreamConfig,
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
                hosts: Mutex::new(Vec::new()),
                reaper_started: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// Sends a request and waits for the response headers. The request timeout runs from
    /// the moment the request body has been sent: a long upload (image data) is bounded by
    /// its own progress, not by the timeout.
    pub async fn send(
        &self,
        req: Request<ProxyBody>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let request_timeout = self.pool.request_timeout;
        let (req, body_sent) = if req.body().is_end_stream() {
            (req, None)
        } else {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let req = req.map(|inner| {
                body::stream(SignalOnEnd {
                    inner,
                    done: Some(tx),
                })
            });
            (req, Some(rx))
        };
        let response = self.pool.request(req);
        tokio::pin!(response);
        let deadline = async {
            if let Some(rx) = body_sent {
                // Err means the body was dropped: the request is over either way.
                let _ = rx.await;
            }
            tokio::time::sleep(request_timeout).await;
        };
        tokio::select! {
            r = &mut response => r,
            _ = deadline => Err(UpstreamError::Timeout(request_timeout)),
        }
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
        let bytes = tokio::time::timeout(request_timeout, crate::body::read_limited(body, limit))
            .await
            .map_err(|_| UpstreamError::Timeout(request_timeout))?
            .map_err(|e| UpstreamError::Reset(e.to_string()))?;
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
    /// One entry per host ever used; a site has a handful (one per service at most), so a
    /// linear search beats hashing. Entries are never removed: their index is stable.
    hosts: Mutex<Vec<HostPool>>,
    reaper_started: std::sync::atomic::AtomicBool,
}

/// One upstream host's idle connections.
struct HostPool {
    https: bool,
    authority: Authority,
    /// The `Host` header of requests to this host (the port only when not the default).
    host_header: HeaderValue,
    /// Most recently used last.
    idle: Vec<IdleSender>,
}

struct IdleSender {
    sender: SendRequest<ProxyBody>,
    since: Instant,
}

/// A sender checked out of the pool, with what the request needs to know of its host.
struct Checkout {
    host: usize,
    host_header: HeaderValue,
    idle: Option<SendRequest<ProxyBody>>,
}

impl Pool {
    /// Sends `req` (absolute URI) on an idle connection to its host, or a new one.
    async fn request(
        self: &Arc<Pool>,
        mut req: Request<ProxyBody>,
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
        // back unsent, and the next one gets it.
        while let Some(mut sender) = checkout.idle.take() {
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.response(checkout.host, sender, resp)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(UpstreamError::Reset(error_chain(e.error()))),
                },
            }
            checkout.idle = self.idle_sender(checkout.host);
        }
        let mut sender = self.connect(https, &authority).await?;
        match sender.try_send_request(req).await {
            Ok(resp) => Ok(self.response(checkout.host, sender, resp)),
            Err(e) => Err(UpstreamError::Reset(error_chain(e.error()))),
        }
    }

    /// The host's pool entry (made on first use) and a ready idle sender, if any.
    fn checkout(&self, https: bool, authority: &Authority) -> Result<Checkout, UpstreamError> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
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
                });
                hosts.len() - 1
            }
        };
        let idle = self.pop_ready(&mut hosts[host]);
        Ok(Checkout {
            host,
            host_header: hosts[host].host_header.clone(),
            idle,
        })
    }

    fn idle_sender(&self, host: usize) -> Option<SendRequest<ProxyBody>> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts.get_mut(host).and_then(|h| self.pop_ready(h))
    }

    /// The most recently used sender that is ready and not expired; the others are dropped
    /// (which closes their connections).
    fn pop_ready(&self, host: &mut HostPool) -> Option<SendRequest<ProxyBody>> {
        while let Some(idle) = host.idle.pop() {
            if idle.sender.is_ready() && idle.since.elapsed() < self.idle_timeout {
                return Some(idle.sender);
            }
        }
        None
    }

    /// Wraps a response so that its connection returns to the pool after the body.
    fn response(
        self: &Arc<Pool>,
        host: usize,
        sender: SendRequest<ProxyBody>,
        resp: Response<Incoming>,
    ) -> Response<UpstreamBody> {
        let give_back = GiveBack {
            pool: self.clone(),
            host,
            sender,
        };
        let give_back = if resp.body().is_end_stream() {
            give_back.release();
            None
        } else {
            Some(give_back)
        };
        resp.map(|inner| UpstreamBody { inner, give_back })
    }

    /// Puts a ready sender back, unless the host already has enough idle ones.
    fn put(self: &Arc<Pool>, host: usize, sender: SendRequest<ProxyBody>) {
        let surplus = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            match hosts.get_mut(host) {
                Some(h) if h.idle.len() < self.max_idle_per_host => {
                    h.idle.push(IdleSender {
                        sender,
                        since: Instant::now(),
                    });
                    None
                }
                _ => Some(sender),
            }
        };
        drop(surplus);
        self.start_reaper();
    }

    /// Starts (once) the task that closes connections idle for longer than the timeout.
    fn start_reaper(self: &Arc<Pool>) {
        use std::sync::atomic::Ordering;
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

    fn drop_expired(&self) {
        let mut expired = Vec::new();
        {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            for host in hosts.iter_mut() {
                let (keep, old): (Vec<_>, Vec<_>) = std::mem::take(&mut host.idle)
                    .into_iter()
                    .partition(|i| i.since.elapsed() < self.idle_timeout && !i.sender.is_closed());
                host.idle = keep;
                expired.extend(old);
            }
        }
        drop(expired);
    }

    /// Opens a connection (TCP, then TLS for `https`) and starts its connection task.
    /// Every failure here is a connect failure.
    async fn connect(
        &self,
        https: bool,
        authority: &Authority,
    ) -> Result<SendRequest<ProxyBody>, UpstreamError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            UpstreamError::Connect(format!("{what} {authority}: {e}"))
        };
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
            .await
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
        let mut last_error = None;
        let mut tcp = None;
        for addr in &addrs {
            match tokio::time::timeout(per_address, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    tcp = Some(stream);
                    break;
                }
                Ok(Err(e)) => last_error = Some(e.to_string()),
                Err(_) => last_error = Some(format!("timed out after {per_address:?}")),
            }
        }
        let Some(tcp) = tcp else {
            return Err(fail(
                "tcp connect to",
                &last_error.unwrap_or_else(|| "failed".into()),
            ));
        };
        let _ = tcp.set_nodelay(true);
        if !https {
            return handshake(TokioIo::new(tcp)).await;
        }
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| fail("invalid TLS server name for", &e))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| fail("TLS handshake with", &e))?;
        handshake(TokioIo::new(tls)).await
    }
}

/// HTTP/1.1 on an open connection: the sender, and the connection's task spawned.
async fn handshake<T>(io: T) -> Result<SendRequest<ProxyBody>, UpstreamError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| UpstreamError::Connect(error_chain(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
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
    host: usize,
    sender: SendRequest<ProxyBody>,
}

impl GiveBack {
    /// Back to the pool now if the connection is ready for the next request; else (the
    /// connection task has not yet seen the end of the response) once it is.
    fn release(self) {
        let GiveBack {
            pool,
            host,
            mut sender,
        } = self;
        if sender.is_ready() {
            pool.put(host, sender);
        } else if !sender.is_closed() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if sender.ready().await.is_ok() {
                        pool.put(host, sender);
                    }
                });
            }
        }
    }
}

/// An upstream response body. Its connection goes back to the pool when the body has
/// been read to the end; dropped before that, the connection closes with it.
pub struct UpstreamBody {
    inner: Incoming,
    give_back: Option<GiveBack>,
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) if !self.inner.is_end_stream() => {}
            Poll::Ready(Some(Ok(_))) | Poll::Ready(None) => {
                if let Some(give_back) = self.give_back.take() {
                    give_back.release();
                }
            }
            Poll::Ready(Some(Err(_))) => self.give_back = None,
            Poll::Pending => {}
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

/// A request body that reports when it has been sent completely (or dropped).
struct SignalOnEnd {
    inner: ProxyBody,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl http_body::Body for SignalOnEnd {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(None) | std::task::Poll::Ready(Some(Err(_))) = &polled {
            if let Some(tx) = self.done.take() {
                let _ = tx.send(());
            }
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

fn rustls_native_certs_or_empty() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    // The platform trust store, for sites without their own CA bundle.
    let result = rustls_native_certs::load_native_certs();
    result.certs
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
        let site = SiteConfig {
            name: SiteName::Primary,
            endpoints: BTreeMap::new(),
            region: None,
            ca_bundle: None,
            credentials: None,
            admin: true,
        };
        let cfg = UpstreamConfig {
            connect_timeout: Duration::from_secs(2),
            request_timeout,
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_host: 4,
        };
        UpstreamClient::new(&site, &cfg).expect("client")
    }

    fn get(url: &str) -> Request<ProxyBody> {
        Request::get(url).body(body::empty()).expect("request")
    }

    /// An upstream that answers every request on a connection with `ok` (keep-alive) and
    /// records the connections it accepted and the request heads it read.
    async fn upstream() -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (c, h) = (connections.clone(), heads.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let h = h.clone();
                tokio::spawn(async move {
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
                });
            }
        });
        (format!("http://{addr}"), connections, heads)
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
