//! Connections hyper serves whole: HTTP/2 (by ALPN or prior knowledge), and HTTP/1.1 when
//! the fast lane is off or has handed a connection over.
//!
//! [`serve`] drives one such connection to its end and asks hyper to finish it (HTTP/2:
//! GOAWAY, the open streams complete, then close; HTTP/1.1: close after the answer in
//! progress) in two cases:
//! - the gateway stops (the shutdown's drain then waits for the connection to end);
//! - no request has been open on it for `gateway.client_header_timeout`. hyper bounds an
//!   idle HTTP/1 connection itself (its `header_read_timeout` runs from the end of each
//!   answer), but it has no idle bound for an HTTP/2 server connection: its keep-alive
//!   pings find dead peers, not idle ones, so a client could hold a connection, and its
//!   buffers, for as long as it liked. [`OpenRequests`] counts a connection's requests
//!   from the call into the service until the answer's body is done or dropped, and notes
//!   when the last one ended. Its watch sleeps for the bound and then looks at what the
//!   requests left: a request starting or ending wakes nothing. (Waking the connection's
//!   task twice a call, and arming a timer each time it went idle, cost about 7 µs of CPU
//!   per HTTP/1.1 call on the bench's box, a seventh of the whole.)

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::access_log::{Arrival, PendingLine};
use crate::body::{BoxError, ProxyBody};
use crate::failover::FailoverController;
use crate::gateway::Gateway;
use crate::server::Answer;
use crate::stack::{ConnInfo, ServiceRoute};

/// Serves `io` with hyper until the connection ends, finishing it when `stop` turns true
/// or once it has had no open request for `gateway.client_header_timeout`.
pub(crate) async fn serve<IO>(
    auto: &auto::Builder<TokioExecutor>,
    io: IO,
    service: Dispatch,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let idle_limit = service.gw.config.client_header_timeout;
    let open = Arc::new(OpenRequests::default());
    let service = Dispatch {
        open: Some(open.clone()),
        ..service
    };
    let conn = auto
        .serve_connection(TokioIo::new(io), service)
        .into_owned();
    tokio::pin!(conn);
    let mut finishing = false;
    let ended = loop {
        tokio::select! {
            ended = conn.as_mut() => break ended,
            // A closed channel means the gateway is gone: finish too.
            _ = stop.wait_for(|stopping| *stopping), if !finishing => {
                conn.as_mut().graceful_shutdown();
                finishing = true;
            }
            _ = open.idle_for(idle_limit), if !finishing => {
                tracing::debug!(?idle_limit, "closing a connection with no open request");
                conn.as_mut().graceful_shutdown();
                finishing = true;
            }
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// The general path as a hyper service (`server::dispatch`), as every listener serves it;
/// counting its requests when it serves a connection of [`serve`], and writing each one's
/// access log line when the log is on.
#[derive(Clone)]
pub(crate) struct Dispatch {
    pub gw: Arc<Gateway>,
    pub fo: Arc<FailoverController>,
    pub routes: Arc<Vec<Arc<ServiceRoute>>>,
    pub conn: ConnInfo,
    pub open: Option<Arc<OpenRequests>>,
}

impl hyper::service::Service<Request<Incoming>> for Dispatch {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    /// Boxed: a request of the general path does far more work than one allocation.
    type Future = Answer;

    fn call(&self, req: Request<Incoming>) -> Answer {
        let arrival = self
            .gw
            .access_log
            .clone()
            .map(|log| Arrival::new(log, &req, self.gw.active_site()));
        let answer = crate::server::dispatch(
            self.gw.clone(),
            self.fo.clone(),
            &self.routes,
            self.conn.clone(),
            req,
        );
        let open = self.open.clone().map(OpenRequest::start);
        if arrival.is_none() && open.is_none() {
            return answer;
        }
        let peer = self.conn.peer;
        // `answer` is a box: this second one stays small.
        Box::pin(answer.map(move |answered| {
            answered.map(|resp| {
                let line = arrival.map(|a| a.answered(&resp, peer));
                resp.map(|body| {
                    Held {
                        body,
                        _open: open,
                        _line: line,
                    }
                    .boxed_unsync()
                })
            })
        }))
    }
}

/// How many requests a connection has open, and since when it has had none.
pub(crate) struct OpenRequests {
    open: AtomicUsize,
    /// When the last request ended (or the connection began), in nanoseconds since `born`.
    idle_since: AtomicU64,
    born: Instant,
}

impl Default for OpenRequests {
    fn default() -> OpenRequests {
        OpenRequests {
            open: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            born: Instant::now(),
        }
    }
}

impl OpenRequests {
    /// Completes once no request has been open for `limit` in one stretch.
    async fn idle_for(&self, limit: Duration) {
        loop {
            // `idle_since` read on both sides of the count: a request that began and
            // ended in between moved it, and the stretch is looked at again.
            let since = self.idle_since.load(Ordering::Acquire);
            let idle = self.open.load(Ordering::Acquire) == 0
                && self.idle_since.load(Ordering::Acquire) == since;
            let wake = if idle {
                let idle_until = self.born + Duration::from_nanos(since) + limit;
                if idle_until <= Instant::now() {
                    return;
                }
                idle_until
            } else {
                // A stretch that begins later ends a whole `limit` after that.
                Instant::now() + limit
            };
            tokio::time::sleep_until(wake).await;
        }
    }

    fn nanos_since_born(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// One open request of a connection; closed when dropped.
struct OpenRequest(Arc<OpenRequests>);

impl OpenRequest {
    fn start(requests: Arc<OpenRequests>) -> OpenRequest {
        requests.open.fetch_add(1, Ordering::AcqRel);
        OpenRequest(requests)
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        // The end noted before the count falls: a watch that sees no request open also
        // sees when the last one ended.
        let now = self.0.nanos_since_born();
        self.0.idle_since.fetch_max(now, Ordering::AcqRel);
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body that keeps its request open, and its access log line unwritten, until
/// it is done or dropped.
struct Held {
    body: ProxyBody,
    /// Held, never read: dropping it closes the request.
    _open: Option<OpenRequest>,
    /// Held, never read: dropping it writes the line.
    _line: Option<PendingLine>,
}

impl Body for Held {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_after_a_whole_stretch_with_no_open_request() {
        let requests = Arc::new(OpenRequests::default());
        let limit = Duration::from_secs(10);
        let started = tokio::time::Instant::now();
        let first = OpenRequest::start(requests.clone());
        let idle = tokio::spawn({
            let requests = requests.clone();
            async move { requests.idle_for(limit).await }
        });
        // Open for 30 s (three limits): not idle.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!idle.is_finished());
        drop(first);
        // Idle 6 s, then a request for 1 s: the stretch starts again after it.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let second = OpenRequest::start(requests.clone());
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(second);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!idle.is_finished());
        idle.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(47));
    }

    #[tokio::test]
    async fn a_held_body_closes_its_request_when_dropped_unread() {
        let requests = Arc::new(OpenRequests::default());
        let body = Held {
            body: crate::body::full("abc"),
            _open: Some(OpenRequest::start(requests.clone())),
            _line: None,
        };
        assert_eq!(requests.open.load(Ordering::Acquire), 1);
        drop(body);
        assert_eq!(requests.open.load(Ordering::Acquire), 0);
    }
}
