//! Workers: the threads that serve client connections, each with a runtime of its own.
//!
//! With `workers = N` (0: one per core) the gateway serves on N threads, as nginx and Envoy
//! do: the thread that started the gateway is worker 0 (it also runs the admin listener and
//! the background work: mirror, checkpoints, probes), and N−1 more each run a
//! current-thread tokio runtime. Every listener has one socket per worker, bound to the
//! same address with `SO_REUSEPORT`, so the kernel spreads new connections over the
//! workers and a connection stays on the worker that accepted it. Each worker keeps its own
//! idle upstream connections (see [`crate::upstream`]): a request never waits for another
//! thread's event loop, and nothing is handed between threads on the request path. The
//! gateway's state (journal, ID map, token cache, metrics) is shared, as before.
//!
//! One work-stealing runtime did the same work with wake-ups across threads on every
//! request; `gateway/benches/README.md` has the figures ("One runtime per worker").

use std::cell::Cell;

thread_local! {
    /// The worker this thread serves as (0 on every thread that is not a worker's own).
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The worker the calling thread serves as: 0 on the thread that started the gateway and
/// on any thread that is not a worker's.
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

/// Marks the calling thread as worker `index` (called first thing on a worker's thread).
pub(crate) fn set_index(index: usize) {
    INDEX.with(|i| i.set(index));
}

/// The number of workers `workers` configures: itself, or one per core for 0.
pub fn resolve(workers: usize) -> usize {
    match workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_per_thread() {
        assert_eq!(index(), 0);
        let other = std::thread::spawn(|| {
            set_index(3);
            index()
        });
        assert_eq!(other.join().unwrap(), 3);
        assert_eq!(index(), 0, "another thread's index is its own");
    }

    #[test]
    fn zero_means_one_per_core() {
        assert!(resolve(0) >= 1);
        assert_eq!(resolve(3), 3);
    }
}
