//! A property test of the journal against a simple in-memory model: random sequences of
//! appends, state transitions (applied, failed, retried), clean reopens and crashes — a
//! store commit refused (the process died before it reached the disk) or made but not
//! answered (it died right after) — checked after every step: the journal lists exactly the
//! model's records (seq, tenant, tier, state), in order, numbered without gaps; a record
//! whose append was acknowledged is never lost, an applied record never comes back, and the
//! per-tier pending counts agree.
//!
//! The store models durability: a commit with relaxed durability (a group of transitions to
//! applied) reaches the "disk" only with the next ordinary commit, and a crash restarts from
//! the disk. After a crash, a record applied by a relaxed commit may therefore be pending
//! again (never anything else), and the model follows what the journal reopened with.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::state::{Batch, Entry, Lease, MemoryStore, Namespace, StoreFuture, Versioned};

/// How the next commit fails.
const NO_CRASH: u8 = 0;
const BEFORE_COMMIT: u8 = 1;
const AFTER_COMMIT: u8 = 2;

/// One process's view of the shared store: once it has crashed, nothing it does reaches
/// the store any more (a restarted process gets a new view, opened on `disk`).
struct CrashingStore {
    inner: Arc<MemoryStore>,
    /// What survives a crash: `inner` as of its last ordinary (not relaxed) commit.
    disk: std::sync::Mutex<MemoryStore>,
    next_commit: AtomicU8,
    dead: AtomicBool,
}

impl CrashingStore {
    fn new(inner: Arc<MemoryStore>) -> Arc<CrashingStore> {
        Arc::new(CrashingStore {
            disk: std::sync::Mutex::new(inner.deep_copy()),
            inner,
            next_commit: AtomicU8::new(NO_CRASH),
            dead: AtomicBool::new(false),
        })
    }

    /// The store a process restarted after a crash finds.
    fn disk(&self) -> MemoryStore {
        self.disk
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .deep_copy()
    }

    async fn commit_to(&self, batch: Batch) -> Result<u64, StateError> {
        let relaxed = batch.is_relaxed();
        let revision = self.inner.commit(batch).await?;
        if !relaxed {
            *self.disk.lock().unwrap_or_else(|e| e.into_inner()) = self.inner.deep_copy();
        }
        Ok(revision)
    }

    fn gone() -> StateError {
        StateError::Backend {
            backend: "crashing",
            message: "the process crashed".into(),
            retryable: false,
        }
    }
}

impl StateStore for CrashingStore {
    fn backend(&self) -> &'static str {
        "crashing"
    }
    fn get<'a>(&'a self, ns: Namespace, key: &'a [u8]) -> StoreFuture<'a, Option<Versioned>> {
        self.inner.get(ns, key)
    }
    fn get_many<'a>(
        &'a self,
        ns: Namespace,
        keys: &'a [Vec<u8>],
    ) -> StoreFuture<'a, Vec<Option<Versioned>>> {
        self.inner.get_many(ns, keys)
    }
    fn scan<'a>(
        &'a self,
        ns: Namespace,
        prefix: &'a [u8],
        start: Option<&'a [u8]>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Entry>> {
        self.inner.scan(ns, prefix, start, limit)
    }
    fn commit(&self, batch: Batch) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            if self.dead.load(Ordering::SeqCst) {
                return Err(CrashingStore::gone());
            }
            match self.next_commit.swap(NO_CRASH, Ordering::SeqCst) {
                BEFORE_COMMIT => {
                    self.dead.store(true, Ordering::SeqCst);
                    Err(CrashingStore::gone())
                }
                AFTER_COMMIT => {
                    self.dead.store(true, Ordering::SeqCst);
                    self.commit_to(batch).await?;
                    Err(CrashingStore::gone())
                }
                _ => self.commit_to(batch).await,
            }
        })
    }
    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, Lease> {
        self.inner.acquire_lease(name, owner, ttl)
    }
    fn renew_lease<'a>(&'a self, lease: &'a Lease, ttl: Duration) -> StoreFuture<'a, Lease> {
        if self.dead.load(Ordering::SeqCst) {
            return Box::pin(async { Err(CrashingStore::gone()) });
        }
        self.inner.renew_lease(lease, ttl)
    }
    fn release_lease<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, ()> {
        if self.dead.load(Ordering::SeqCst) {
            return Box::pin(async { Err(CrashingStore::gone()) });
        }
        self.inner.release_lease(lease)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Append {
        tenant: u8,
        tier: u8,
    },
    Apply(usize),
    Fail(usize),
    Retry(usize),
    /// The next write's commit crashes the process (before or after reaching the store).
    CrashOnNext {
        after: bool,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u8..3).prop_map(|(tenant, tier)| Op::Append { tenant, tier }),
        3 => any::<usize>().prop_map(Op::Apply),
        1 => any::<usize>().prop_map(Op::Fail),
        1 => any::<usize>().prop_map(Op::Retry),
        1 => any::<bool>().prop_map(|after| Op::CrashOnNext { after }),
        1 => Just(Op::Reopen),
    ]
}

const TIERS: [&str; 3] = ["gold", "silver", "bronze"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModelState {
    Pending,
    Applied,
    Failed,
}

#[derive(Clone, Debug)]
struct ModelRecord {
    tenant: String,
    tier: &'static str,
    state: ModelState,
    /// `state` made durable: it differs from `state` only while a transition to applied may
    /// sit in relaxed commits.
    durable: ModelState,
}

fn new_record(tenant: &str, tier: &str) -> NewRecord {
    NewRecord {
        tenant: TenantRef::new(tenant, "default"),
        tier: tier.into(),
        direction: Default::default(),
        service: "network".into(),
        resource_type: "network".into(),
        action: "create".into(),
        primary_id: None,
        request: MirrorRequest {
            method: "POST".into(),
            path: "/v2.0/networks".into(),
            body: Some(serde_json::json!({"network": {"name": tenant}})),
            secret: None,
        },
        depends_on: vec![],
    }
}

/// A write one op made, and what the model becomes if it landed.
struct Write {
    result: Result<(), JournalError>,
    appended: Option<ModelRecord>,
    changed: Option<(usize, ModelState)>,
}

struct Process {
    journal: Journal,
    store: Arc<CrashingStore>,
}

async fn start(shared: &Arc<MemoryStore>, owner: &str) -> Process {
    let store = CrashingStore::new(shared.clone());
    let config = JournalConfig {
        owner: owner.to_string(),
        ..JournalConfig::default()
    };
    let journal = Journal::open(store.clone(), config)
        .await
        .expect("the journal reopens after a crash");
    Process { journal, store }
}

async fn check(j: &Journal, model: &[ModelRecord]) -> Result<(), TestCaseError> {
    let page = j
        .list(&RecordFilter::default(), None, 1000)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(page.records.len(), model.len(), "{:?}", page.records);
    for (i, (r, m)) in page.records.iter().zip(model).enumerate() {
        prop_assert_eq!(r.seq, i as u64 + 1, "gap-free numbering");
        prop_assert_eq!(&r.tenant.project_id, &m.tenant);
        prop_assert_eq!(r.tier.as_str(), m.tier);
        let state = match r.state {
            RecordState::Pending => ModelState::Pending,
            RecordState::Applied { .. } => ModelState::Applied,
            RecordState::Failed { .. } => ModelState::Failed,
        };
        prop_assert_eq!(state, m.state, "record {}", r.seq);
    }
    let lag = j
        .tier_lag()
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    for tier in TIERS {
        let want = model
            .iter()
            .filter(|m| m.tier == tier && m.state == ModelState::Pending)
            .count() as u64;
        let got = lag.get(tier).map_or(0, |l| l.pending);
        prop_assert_eq!(got, want, "pending in {}", tier);
    }
    let report = j
        .verify()
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(report.is_clean(), "{:?}", report);
    Ok(())
}

/// The model after a write landed. Any write other than a transition to applied commits
/// durably, and with it everything before.
fn land(
    model: &mut Vec<ModelRecord>,
    appended: Option<ModelRecord>,
    changed: Option<(usize, ModelState)>,
) {
    if let Some((i, to)) = changed {
        model[i].state = to;
    }
    let durable = !matches!(changed, Some((_, ModelState::Applied)));
    if let Some(m) = appended {
        model.push(m);
    }
    if durable {
        for m in model.iter_mut() {
            m.durable = m.state;
        }
    }
}

/// After a crash, a record applied by a relaxed commit may be pending again: the model
/// takes the journal's word for exactly those records, and for nothing else.
async fn settle_after_crash(j: &Journal, model: &mut [ModelRecord]) -> Result<(), TestCaseError> {
    let page = j
        .list(&RecordFilter::default(), None, 1000)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    for (r, m) in page.records.iter().zip(model.iter_mut()) {
        if m.state != m.durable && matches!(r.state, RecordState::Pending) {
            m.state = m.durable;
        }
        m.durable = m.state;
    }
    Ok(())
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut shared = Arc::new(MemoryStore::new());
    let owner = "drgw-model-test";
    let mut p = start(&shared, owner).await;
    let mut model: Vec<ModelRecord> = Vec::new();
    let mut crash: Option<u8> = None;
    for op in ops {
        let pick = |i: usize| (!model.is_empty()).then(|| i % model.len());
        let outcome: Option<Write> = match op {
            Op::CrashOnNext { after } => {
                crash = Some(if after { AFTER_COMMIT } else { BEFORE_COMMIT });
                None
            }
            Op::Reopen => {
                p.journal
                    .close()
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                // Closing makes everything durable: the next process opens what is on disk.
                for m in &mut model {
                    m.durable = m.state;
                }
                shared = Arc::new(p.store.disk());
                p = start(&shared, owner).await;
                None
            }
            Op::Append { tenant, tier } => {
                if let Some(mode) = crash {
                    p.store.next_commit.store(mode, Ordering::SeqCst);
                }
                let m = ModelRecord {
                    tenant: format!("t{tenant}"),
                    tier: TIERS[tier as usize],
                    state: ModelState::Pending,
                    durable: ModelState::Pending,
                };
                let r = p.journal.append(new_record(&m.tenant, m.tier)).await;
                if let Ok(seq) = &r {
                    prop_assert_eq!(*seq, model.len() as u64 + 1);
                }
                Some(Write {
                    result: r.map(|_| ()),
                    appended: Some(m),
                    changed: None,
                })
            }
            Op::Apply(i) | Op::Fail(i) | Op::Retry(i) => {
                let Some(i) = pick(i) else { continue };
                let seq = i as u64 + 1;
                let (from, to) = match op {
                    Op::Apply(_) => (ModelState::Pending, ModelState::Applied),
                    Op::Fail(_) => (ModelState::Pending, ModelState::Failed),
                    _ => (ModelState::Failed, ModelState::Pending),
                };
                if model[i].state != from {
                    // Not an allowed transition: refused, nothing changes.
                    let r = match op {
                        Op::Apply(_) => p.journal.mark_applied(seq, None).await.map(|_| ()),
                        Op::Fail(_) => p.journal.mark_failed(seq, "x", true).await.map(|_| ()),
                        _ => p.journal.retry(seq).await.map(|_| ()),
                    };
                    prop_assert!(
                        r.is_err(),
                        "{:?} of a {:?} record was accepted",
                        op,
                        model[i].state
                    );
                    check(&p.journal, &model).await?;
                    continue;
                }
                if let Some(mode) = crash {
                    p.store.next_commit.store(mode, Ordering::SeqCst);
                }
                let r = match op {
                    Op::Apply(_) => p
                        .journal
                        .mark_applied(seq, Some(format!("r{seq}")))
                        .await
                        .map(|_| ()),
                    Op::Fail(_) => p
                        .journal
                        .mark_failed(seq, "recovery site said no", false)
                        .await
                        .map(|_| ()),
                    _ => p.journal.retry(seq).await.map(|_| ()),
                };
                Some(Write {
                    result: r,
                    appended: None,
                    changed: Some((i, to)),
                })
            }
        };
        let Some(Write {
            result,
            appended,
            changed,
        }) = outcome
        else {
            continue;
        };
        match crash.take() {
            None => {
                // No crash: the write must succeed, and the model follows it.
                prop_assert!(result.is_ok(), "{:?}", result);
            }
            Some(mode) => {
                prop_assert!(result.is_err(), "a crashed commit was acknowledged");
                // The process is gone; a new one opens what reached the disk.
                shared = Arc::new(p.store.disk());
                drop(p);
                p = start(&shared, owner).await;
                if mode == AFTER_COMMIT {
                    land(&mut model, appended, changed);
                }
                settle_after_crash(&p.journal, &mut model).await?;
                check(&p.journal, &model).await?;
                continue;
            }
        }
        land(&mut model, appended, changed);
        check(&p.journal, &model).await?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_journal_matches_the_model_across_crashes(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(run(ops))?;
    }
}
