//! The send timeout: a connection that takes nothing the gateway writes for a bound is
//! given up (nginx's `send_timeout` towards clients, `proxy_send_timeout` towards
//! upstreams).
//!
//! A client that opens a download (image data, a long list) and then stops reading leaves
//! the gateway's writes blocked on a full socket; backpressure holds the upstream's answer,
//! and with it an upstream connection, for as long as the client stays connected. The
//! gateway wraps every accepted socket (under TLS too) in [`SendTimeout`] with
//! `gateway.client_send_timeout`, and every upstream socket with `upstream.request_timeout`
//! (an upstream hung under an upload). The clock runs only while a write is blocked
//! ([`StallTimer`]), so a slow reader is served at its own pace and only one that has
//! stopped is cut off. The writer (hyper or the fast lane) then sees `TimedOut` and ends
//! the connection.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::stall::StallTimer;

/// A connection whose writes fail with `TimedOut` once they have been blocked for the send
/// timeout.
pub struct SendTimeout<IO> {
    inner: IO,
    stall: StallTimer,
}

impl<IO> SendTimeout<IO> {
    pub fn new(inner: IO, timeout: Duration) -> SendTimeout<IO> {
        SendTimeout {
            inner,
            stall: StallTimer::new(timeout),
        }
    }

    /// Passes on what a write-side call gave: progress ends the stall, a block starts (or
    /// goes on with) it, and a stall as long as the timeout becomes `TimedOut`.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stall.progressed();
            return polled;
        }
        ready!(self.stall.poll_waiting(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the peer took nothing for {:?}", self.stall.limit()),
        )))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for SendTimeout<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for SendTimeout<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    const TIMEOUT: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_stops_gets_its_writes_cut_after_the_timeout() {
        // A pipe with room for 1 KiB that nobody reads.
        let (near, _far) = tokio::io::duplex(1024);
        let mut io = SendTimeout::new(near, TIMEOUT);
        let started = Instant::now();
        let err = io.write_all(&[7u8; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_is_served_whatever_the_total_time() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut io = SendTimeout::new(near, TIMEOUT);
        // Takes 1 KiB every 50 s: each wait is shorter than the timeout, the whole far longer.
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut chunk = [0u8; 1024];
            loop {
                tokio::time::sleep(Duration::from_secs(50)).await;
                match far.read(&mut chunk).await.unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&chunk[..n]),
                }
            }
        });
        let started = Instant::now();
        io.write_all(&[7u8; 8 * 1024]).await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        assert_eq!(reader.await.unwrap().len(), 8 * 1024);
        assert!(started.elapsed() > TIMEOUT * 5, "{:?}", started.elapsed());
    }
}
