//! Stall timers: a bound on how long the gateway waits on a peer that has stopped making
//! progress, whatever the whole exchange takes.
//!
//! The gateway streams (image data, long answers) at the pace of the slower side, so no
//! total deadline fits; what it bounds is a wait on one side with nothing moving, as nginx's
//! `client_body_timeout`, `send_timeout` and `proxy_read_timeout` do. A [`StallTimer`]
//! runs only while the gateway waits on the peer (its owner reports each wait and each
//! piece of progress) and rings once one wait has lasted its limit.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A timer over the waits on one peer; see the module docs.
#[derive(Debug)]
pub struct StallTimer {
    limit: Duration,
    /// Whether the owner is waiting: set at the first wait after progress (which starts
    /// `timer`), cleared by the next progress.
    waiting: bool,
    /// Made at the first wait and reset at the first wait after each progress: a stream
    /// that never waits never allocates one.
    timer: Option<Pin<Box<Sleep>>>,
}

impl StallTimer {
    pub fn new(limit: Duration) -> StallTimer {
        StallTimer {
            limit,
            waiting: false,
            timer: None,
        }
    }

    /// How long one wait may last.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// The peer made progress: the next wait starts the clock again.
    pub fn progressed(&mut self) {
        self.waiting = false;
    }

    /// The owner waits on the peer (its poll was `Pending`, with `cx` registered there):
    /// `Ready` once this wait has lasted the limit, else `Pending` with the timer's wake-up
    /// registered too.
    pub fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.waiting {
            let stall_at = Instant::now() + self.limit;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(stall_at),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(stall_at))),
            }
            self.waiting = true;
        }
        match &mut self.timer {
            Some(timer) => timer.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits on nothing (a peer that never answers) through `timer` until it rings.
    async fn wait(timer: &mut StallTimer) {
        std::future::poll_fn(|cx| timer.poll_waiting(cx)).await
    }

    #[tokio::test(start_paused = true)]
    async fn rings_after_one_wait_of_the_limit_and_progress_starts_it_again() {
        let limit = Duration::from_secs(10);
        let mut timer = StallTimer::new(limit);
        let started = Instant::now();
        // Waits of 6 s, each ended by progress: 18 s in all, no ring.
        for _ in 0..3 {
            let waited = tokio::time::timeout(Duration::from_secs(6), wait(&mut timer)).await;
            assert!(waited.is_err(), "rang within a wait shorter than the limit");
            timer.progressed();
        }
        assert_eq!(started.elapsed(), Duration::from_secs(18));
        // A wait with no progress rings at the limit, counted from its start.
        let started = Instant::now();
        wait(&mut timer).await;
        assert_eq!(started.elapsed(), limit);
    }
}
