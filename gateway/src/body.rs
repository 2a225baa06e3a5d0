//! The body type that flows through the gateway, and bounded reading of the bodies the
//! gateway must look into.
//!
//! Every other body (image data, large lists) is streamed through untouched: hyper's
//! `Incoming` is boxed, never collected, so backpressure reaches the slow side. A streamed
//! request body is still watched for a sender that stops sending ([`stream_watched`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};

use crate::stall::StallTimer;

/// Boxed error of any body in the gateway.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every request and response the gateway handles.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A body with fixed content.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body made of chunks already read (a response the gateway looked into and passes on
/// unchanged), without copying them into one buffer.
pub fn chunks(mut chunks: Vec<Bytes>) -> ProxyBody {
    match chunks.len() {
        0 => empty(),
        1 => full(chunks.pop().unwrap_or_default()),
        _ => {
            let remaining = chunks.iter().map(|c| c.len() as u64).sum();
            Chunks {
                queue: chunks.into(),
                remaining,
            }
            .boxed_unsync()
        }
    }
}

/// See [`chunks`]: yields its chunks in order, with an exact size hint.
struct Chunks {
    queue: std::collections::VecDeque<Bytes>,
    remaining: u64,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let next = self.queue.pop_front();
        if let Some(chunk) = &next {
            self.remaining -= chunk.len() as u64;
        }
        std::task::Poll::Ready(next.map(|c| Ok(http_body::Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.queue.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// Boxes any streaming body.
pub fn stream<B>(body: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Streams a request body the gateway does not read (image data) and ends it with an error
/// once its sender has left the gateway waiting `idle` for the next piece (nginx's
/// `client_body_timeout`, which bounds every body). The clock runs only while the gateway
/// waits on the sender: an upstream slow to take the data (backpressure) stops it. The
/// returned [`StallWatch`] tells the caller afterwards that the body stalled, so the client
/// is told so (408) and the upstream is not blamed for the request it saw broken off.
pub fn stream_watched<B>(body: B, idle: Duration) -> (ProxyBody, StallWatch)
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    let watch = StallWatch {
        idle,
        stalled: Arc::new(AtomicBool::new(false)),
    };
    let watched = Watched {
        inner: body,
        stall: StallTimer::new(idle),
        stalled: Some(watch.stalled.clone()),
    };
    (watched.boxed_unsync(), watch)
}

/// Whether a body given to [`stream_watched`] stalled.
#[derive(Debug)]
pub struct StallWatch {
    idle: Duration,
    stalled: Arc<AtomicBool>,
}

impl StallWatch {
    /// The idle time the body exceeded, if it stalled.
    pub fn stalled(&self) -> Option<Duration> {
        self.stalled.load(Ordering::Acquire).then_some(self.idle)
    }
}

/// The error a stalled [`stream_watched`] body ends with.
#[derive(Debug, thiserror::Error)]
#[error("no request body data for {0:?}")]
pub struct BodyStalled(pub Duration);

/// See [`stream_watched`] (and [`read_limited`], which learns of a stall from the error).
struct Watched<B> {
    inner: B,
    stall: StallTimer,
    /// Set when the body stalls, for the [`StallWatch`] of a streamed body.
    stalled: Option<Arc<AtomicBool>>,
}

impl<B> Body for Watched<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.stall.progressed();
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        ready!(this.stall.poll_waiting(cx));
        if let Some(stalled) = &this.stalled {
            stalled.store(true, Ordering::Release);
        }
        Poll::Ready(Some(Err(Box::new(BodyStalled(this.stall.limit())))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadBodyError {
    #[error("body is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("body could not be read: {0}")]
    Broken(BoxError),
    #[error("no body data for {idle:?}")]
    Stalled { idle: Duration },
}

/// Reads a whole body, refusing more than `limit` bytes (checked against a declared
/// `Content-Length` first, then while reading) and a sender that leaves more than `idle`
/// between two pieces of it (nginx's `client_body_timeout`, timed as for a streamed body:
/// [`stream_watched`]).
pub async fn read_limited<B>(body: B, limit: u64, idle: Duration) -> Result<Bytes, ReadBodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    if let Some(upper) = body.size_hint().exact() {
        if upper > limit {
            return Err(ReadBodyError::TooLarge { limit });
        }
    }
    let watched = Watched {
        inner: body,
        stall: StallTimer::new(idle),
        stalled: None,
    };
    match http_body_util::Limited::new(watched, limit as usize)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ReadBodyError::TooLarge { limit })
        }
        Err(e) if e.is::<BodyStalled>() => Err(ReadBodyError::Stalled { idle }),
        Err(e) => Err(ReadBodyError::Broken(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_replay_in_order_with_their_length() {
        for parts in [vec![], vec!["ab"], vec!["ab", "", "cde"]] {
            let body = chunks(
                parts
                    .iter()
                    .map(|p| Bytes::from_static(p.as_bytes()))
                    .collect(),
            );
            assert_eq!(body.size_hint().exact(), Some(parts.concat().len() as u64));
            let all = body.collect().await.unwrap().to_bytes();
            assert_eq!(&all[..], parts.concat().as_bytes());
        }
    }

    const IDLE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn reads_within_limit_and_refuses_beyond() {
        let ok = read_limited(Full::new(Bytes::from_static(b"0123456789")), 10, IDLE)
            .await
            .unwrap();
        assert_eq!(&ok[..], b"0123456789");
        let err = read_limited(Full::new(Bytes::from_static(b"0123456789")), 9, IDLE)
            .await
            .unwrap_err();
        assert!(matches!(err, ReadBodyError::TooLarge { limit: 9 }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_coming_is_refused_after_the_idle_time() {
        // Three chunks, the last one never sent: the read ends after `idle` with no data.
        let (tx, body) = hand_fed();
        for p in ["ab", "cd"] {
            tx.send(piece(p)).await.unwrap();
        }
        let idle = Duration::from_secs(5);
        let started = tokio::time::Instant::now();
        let err = read_limited(body, 100, idle).await.unwrap_err();
        assert!(
            matches!(err, ReadBodyError::Stalled { idle: d } if d == idle),
            "{err}"
        );
        assert_eq!(started.elapsed(), idle);
        drop(tx);
        // Pieces that keep coming, however slowly, are read whole.
        let (tx, body) = hand_fed();
        tokio::spawn(async move {
            for p in ["ab", "cd", "ef"] {
                tokio::time::sleep(Duration::from_secs(4)).await;
                tx.send(piece(p)).await.unwrap();
            }
        });
        assert_eq!(&read_limited(body, 100, idle).await.unwrap()[..], b"abcdef");
    }

    /// A body fed by hand: the sender half, and the body.
    fn hand_fed() -> (
        tokio::sync::mpsc::Sender<Result<http_body::Frame<Bytes>, BoxError>>,
        impl Body<Data = Bytes, Error = BoxError> + Unpin + Send + 'static,
    ) {
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, BoxError>>(4);
        let body = http_body_util::StreamBody::new(futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        }));
        (tx, body)
    }

    fn piece(s: &'static str) -> Result<http_body::Frame<Bytes>, BoxError> {
        Ok(http_body::Frame::data(Bytes::from_static(s.as_bytes())))
    }

    #[tokio::test(start_paused = true)]
    async fn a_streamed_body_that_stops_coming_ends_in_an_error_the_watch_reports() {
        let idle = Duration::from_secs(5);
        let (tx, body) = hand_fed();
        tx.send(piece("ab")).await.unwrap();
        let (mut body, watch) = stream_watched(body, idle);
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "ab");
        // The next piece never comes (the sender stays connected).
        let started = tokio::time::Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(started.elapsed(), idle);
        assert!(err.downcast_ref::<BodyStalled>().is_some(), "{err}");
        assert_eq!(watch.stalled(), Some(idle));
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_streamed_body_is_timed_only_while_the_gateway_waits_on_its_sender() {
        let idle = Duration::from_secs(5);
        let (tx, body) = hand_fed();
        let (mut body, watch) = stream_watched(body, idle);
        // Slow pieces, each within the idle time, pass.
        tokio::spawn(async move {
            for p in ["ab", "cd"] {
                tokio::time::sleep(Duration::from_secs(4)).await;
                tx.send(piece(p)).await.unwrap();
            }
            // The third waits in the channel while the reader stalls (an upstream slow
            // to take the data): longer than `idle`, and no stall.
            tx.send(piece("ef")).await.unwrap();
        });
        let mut got = Vec::new();
        for _ in 0..2 {
            got.extend_from_slice(&body.frame().await.unwrap().unwrap().into_data().unwrap());
        }
        tokio::time::sleep(idle * 3).await;
        got.extend_from_slice(&body.frame().await.unwrap().unwrap().into_data().unwrap());
        assert!(body.frame().await.is_none(), "the sender is done");
        assert_eq!(got, b"abcdef");
        assert_eq!(watch.stalled(), None);
    }
}
