//! Pacing of background applies: asynchronous (Bronze) records give way to tenant requests
//! while the gateway's runtime is busy with them, for at most a bounded time.
//!
//! An asynchronous tier promises a recovery point within its `max_lag`, not an apply as
//! soon as possible. While tenants keep the runtime busy, applying a Bronze record takes CPU
//! from their calls (the record's apply costs about as much as the tenant's create itself:
//! a create and a tag at the recovery site, the ID-map entry and the transition), so the
//! worker waits instead, as a database's background vacuum or compaction waits under
//! foreground load. Waiting is bounded per record by [`defer_bound`] of its tier's
//! `max_lag` (a quarter), counted from the record's journal time, so the lag stays well
//! within the tier's promise; past it the record applies whatever the load. Under a
//! sustained overload the backlog therefore applies at the bound's pace: pacing moves the
//! apply work out of a burst, it does not make it cheaper. The worker waits at most one
//! `tick` per pass and leaves what is still held back for the next pass, so its other
//! tiers (a Silver checkpoint, Gold records left pending) never wait for Bronze. A pass that
//! starts contended waits on the oldest pending entry of the tier's index (its journal time
//! is there) before it reads any record: records are journaled in time order, so while
//! that one may wait, every other may too, and a busy period costs no reads.
//!
//! The runtime counts as *contended* while tenant requests are in flight
//! ([`Pacer::tenant_request`]) and its workers are busy: their busy time (tokio's
//! `worker_total_busy_duration`, the time spent running tasks rather than parked) over the
//! last [`WINDOW`], as a share of the window times the number of workers, reached [`BUSY`]
//! (and stays so until it falls below [`RELEASED`]). The worker's own applies alone never
//! hold it back (no tenant request in flight), and neither does a busy machine whose load
//! is other processes' (the gateway's workers are slower then, not busier). In front of
//! real OpenStack services, whose calls take far longer than the gateway's share of them,
//! the runtime is rarely this busy and nothing waits.
//!
//! Synchronous waits on the worker turn pacing off while they last ([`Pacer::hurry`]): a
//! Gold call waiting for an older record of the same resource, a planned failover draining
//! the journal.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

/// The window over which utilisation is measured (tokio publishes a worker's busy time every
/// 61 polls or when it parks, so much shorter windows see that granularity as noise).
pub const WINDOW: Duration = Duration::from_millis(50);

/// Utilisation (share of the workers' time spent running tasks) at and above which the
/// runtime counts as busy.
pub const BUSY: f64 = 0.6;

/// Once busy, the runtime counts as busy until utilisation falls below this (hysteresis:
/// one window's dip does not release every held record at once).
pub const RELEASED: f64 = 0.4;

/// How long a deferred record waits before the runtime is looked at again.
const RECHECK: Duration = Duration::from_millis(5);

/// How long a record of an asynchronous tier with `max_lag` may wait for the runtime to be
/// free: a quarter of `max_lag`.
pub fn defer_bound(max_lag: Duration) -> Duration {
    max_lag / 4
}

struct Sample {
    at: Instant,
    busy_time: Duration,
    utilization: f64,
    busy: bool,
}

struct Measured {
    utilization: f64,
    busy: bool,
}

/// Measures the runtime's utilisation and holds background applies back while tenants
/// keep it busy. Cheap to share (`Arc` inside).
#[derive(Clone)]
pub struct Pacer {
    /// The runtime the gateway started on, then every worker's ([`Pacer::watch_runtime`]).
    runtimes: Arc<Mutex<Vec<Handle>>>,
    last: Arc<Mutex<Sample>>,
    hurried: Arc<AtomicUsize>,
    tenants: Arc<AtomicUsize>,
}

/// Holds one count of a shared counter while it lives: a tenant request in flight
/// ([`Pacer::tenant_request`]), or pacing turned off ([`Pacer::hurry`]).
pub struct Counted {
    counter: Arc<AtomicUsize>,
}

impl Counted {
    fn new(counter: &Arc<AtomicUsize>) -> Counted {
        counter.fetch_add(1, Ordering::AcqRel);
        Counted {
            counter: counter.clone(),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pacer {
    /// A pacer for the runtime this is called on (none outside a runtime: it never waits).
    pub fn for_current_runtime() -> Pacer {
        let runtimes: Vec<Handle> = Handle::try_current().ok().into_iter().collect();
        let busy_time = busy_total(&runtimes).0;
        Pacer {
            runtimes: Arc::new(Mutex::new(runtimes)),
            last: Arc::new(Mutex::new(Sample {
                at: Instant::now(),
                busy_time,
                utilization: 0.0,
                busy: false,
            })),
            hurried: Arc::new(AtomicUsize::new(0)),
            tenants: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The share of the workers' time spent running tasks over the last window or so (0
    /// to 1; the latest measurement, taken again once it is [`WINDOW`] old).
    pub fn utilization(&self) -> f64 {
        self.measure().utilization
    }

    /// The latest sample: utilisation, and whether the runtime counts as busy (entered at
    /// [`BUSY`], left below [`RELEASED`]).
    fn measure(&self) -> Measured {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(last.at);
        if elapsed >= WINDOW {
            let (busy_time, workers) = {
                let runtimes = self.runtimes.lock().unwrap_or_else(|e| e.into_inner());
                busy_total(&runtimes)
            };
            if workers == 0 {
                return Measured {
                    utilization: 0.0,
                    busy: false,
                };
            }
            let workers = workers as f64;
            let worked = busy_time.saturating_sub(last.busy_time).as_secs_f64();
            let utilization = (worked / (elapsed.as_secs_f64() * workers)).clamp(0.0, 1.0);
            last.busy = if last.busy {
                utilization >= RELEASED
            } else {
                utilization >= BUSY
            };
            last.utilization = utilization;
            last.at = now;
            last.busy_time = busy_time;
        }
        Measured {
            utilization: last.utilization,
            busy: last.busy,
        }
    }

    /// Whether background applies should wait now: tenant requests in flight, the runtime
    /// busy, and nobody hurrying.
    pub fn contended(&self) -> bool {
        self.hurried.load(Ordering::Acquire) == 0
            && self.tenants.load(Ordering::Acquire) > 0
            && self.measure().busy
    }

    /// Measures `runtime` too (a worker's: see [`crate::worker`]). Its busy time so far
    /// counts from the next window on.
    pub fn watch_runtime(&self, runtime: Handle) {
        // `last`, then `runtimes`: the order `measure` takes them in.
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let mut runtimes = self.runtimes.lock().unwrap_or_else(|e| e.into_inner());
        last.busy_time += busy_total(std::slice::from_ref(&runtime)).0;
        runtimes.push(runtime);
    }

    /// Counts a tenant request in flight until the returned guard is dropped.
    pub fn tenant_request(&self) -> Counted {
        Counted::new(&self.tenants)
    }

    /// Turns pacing off until the returned guard is dropped.
    pub fn hurry(&self) -> Counted {
        Counted::new(&self.hurried)
    }

    /// Waits while the runtime is contended, until `deadline` at the latest. Returns how
    /// long it waited.
    pub async fn give_way(&self, deadline: Instant) -> Duration {
        let started = Instant::now();
        while self.contended() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(RECHECK.min(deadline - now)).await;
        }
        started.elapsed()
    }
}

/// The busy time so far of every worker thread of `runtimes`, summed, and how many
/// threads that is.
fn busy_total(runtimes: &[Handle]) -> (Duration, usize) {
    runtimes
        .iter()
        .fold((Duration::ZERO, 0), |(busy, n), runtime| {
            let metrics = runtime.metrics();
            let workers = metrics.num_workers();
            let total: Duration = (0..workers)
                .map(|w| metrics.worker_total_busy_duration(w))
                .sum();
            (busy + total, n + workers)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps both workers of the runtime busy (each task runs for 50 µs at a time, then
    /// yields, so other tasks still run; tokio publishes a worker's busy time every 61
    /// polls) until `until`.
    fn load(until: Instant) {
        for _ in 0..4 {
            tokio::spawn(async move {
                while Instant::now() < until {
                    let spin = Instant::now() + Duration::from_micros(50);
                    while Instant::now() < spin {
                        std::hint::spin_loop();
                    }
                    tokio::task::yield_now().await;
                }
            });
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_runtime_is_not_contended_and_nothing_waits() {
        let pacer = Pacer::for_current_runtime();
        let _tenant = pacer.tenant_request();
        tokio::time::sleep(WINDOW * 3).await;
        assert!(pacer.utilization() < 0.5, "{}", pacer.utilization());
        let waited = pacer
            .give_way(Instant::now() + Duration::from_secs(10))
            .await;
        assert!(waited < Duration::from_secs(1), "{waited:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_runtime_holds_back_until_the_load_ends_or_the_deadline() {
        // Lower bounds on waits are loose: on a loaded machine a window may dip below the
        // release threshold and let a record go a little early (the safe direction).
        let pacer = Pacer::for_current_runtime();
        let tenant = pacer.tenant_request();
        // Load for 600 ms: the wait ends with it, well before the 10 s deadline.
        let started = Instant::now();
        let load_ends = started + Duration::from_millis(600);
        load(load_ends);
        tokio::time::sleep(WINDOW * 2).await;
        assert!(pacer.contended(), "utilisation {}", pacer.utilization());
        pacer
            .give_way(Instant::now() + Duration::from_secs(10))
            .await;
        let now = Instant::now();
        assert!(
            now >= started + Duration::from_millis(300),
            "stopped waiting while the load lasted, after {:?}",
            now - started
        );
        assert!(
            now < load_ends + Duration::from_secs(5),
            "waited past the load"
        );

        // Load for 10 s, deadline in 300 ms: the deadline wins.
        load(Instant::now() + Duration::from_secs(10));
        tokio::time::sleep(WINDOW * 2).await;
        let deadline = Instant::now() + Duration::from_millis(300);
        let waited = pacer.give_way(deadline).await;
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(
            Instant::now() < deadline + Duration::from_secs(5),
            "waited past the deadline"
        );

        // Hurried: no wait at all, although the load goes on.
        let hurry = pacer.hurry();
        assert!(!pacer.contended());
        let waited = pacer
            .give_way(Instant::now() + Duration::from_secs(10))
            .await;
        assert!(waited < Duration::from_millis(100), "{waited:?}");
        drop(hurry);
        assert!(pacer.contended(), "utilisation {}", pacer.utilization());

        // No tenant request in flight: the load is the worker's own, nothing waits.
        drop(tenant);
        assert!(!pacer.contended());
        let waited = pacer
            .give_way(Instant::now() + Duration::from_secs(10))
            .await;
        assert!(waited < Duration::from_millis(100), "{waited:?}");
    }

    #[test]
    fn the_bound_is_a_quarter_of_max_lag() {
        assert_eq!(
            defer_bound(Duration::from_secs(300)),
            Duration::from_secs(75)
        );
        assert_eq!(defer_bound(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_watched_worker_runtime_counts() {
        // Made outside any runtime: it measures nothing until a worker's is added.
        let pacer = Pacer::for_current_runtime();
        let _tenant = pacer.tenant_request();
        let worker = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        pacer.watch_runtime(worker.handle().clone());
        let load_ends = Instant::now() + Duration::from_millis(600);
        let (busy, utilization) = std::thread::scope(|s| {
            let loaded = s.spawn(|| {
                worker.block_on(async {
                    load(load_ends);
                    tokio::time::sleep_until(load_ends.into()).await;
                })
            });
            std::thread::sleep(WINDOW * 3);
            let utilization = pacer.utilization();
            let busy = pacer.contended();
            loaded.join().expect("the worker thread");
            (busy, utilization)
        });
        assert!(busy, "the worker's load counts: utilisation {utilization}");
        // A measurement covers the time since the one before: close the loaded stretch.
        pacer.utilization();
        std::thread::sleep(WINDOW * 3);
        assert!(
            pacer.utilization() < RELEASED && !pacer.contended(),
            "released once the worker is idle: {}",
            pacer.utilization()
        );
    }

    #[test]
    fn outside_a_runtime_nothing_is_contended() {
        let pacer = Pacer::for_current_runtime();
        let _tenant = pacer.tenant_request();
        assert_eq!(pacer.utilization(), 0.0);
        assert!(!pacer.contended());
    }
}
