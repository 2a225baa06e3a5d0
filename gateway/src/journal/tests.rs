//! Unit tests of the journal over the in-memory store.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::state::{frame, Batch, Entry, Lease, MemoryStore, Namespace, StoreFuture, Versioned};

fn rec(project: &str, tier: &str) -> NewRecord {
    NewRecord {
        tenant: TenantRef::new(project, "default"),
        tier: tier.into(),
        direction: Default::default(),
        service: "compute".into(),
        resource_type: "keypair".into(),
        action: "create".into(),
        primary_id: Some(format!("{project}-kp")),
        request: MirrorRequest {
            method: "POST".into(),
            path: "/v2.1/os-keypairs".into(),
            body: Some(serde_json::json!({"keypair": {"name": "k"}})),
            secret: None,
        },
        depends_on: vec![],
    }
}

async fn journal() -> (Journal, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let j = Journal::open(store.clone(), JournalConfig::default())
        .await
        .unwrap();
    (j, store)
}

#[tokio::test]
async fn appends_are_numbered_from_one_and_readable() {
    let (j, _) = journal().await;
    assert_eq!(j.last_seq().await.unwrap(), 0);
    for want in 1..=3 {
        assert_eq!(j.append(rec("a", "gold")).await.unwrap(), want);
    }
    let r = j.get(2).await.unwrap().unwrap();
    assert_eq!(
        (r.seq, r.state.clone(), r.attempts),
        (2, RecordState::Pending, 0)
    );
    assert!(j.get(4).await.unwrap().is_none());
    assert_eq!(j.last_seq().await.unwrap(), 3);
    assert!(j.verify().await.unwrap().is_clean());
}

#[tokio::test]
async fn group_commits_are_timed_by_durability_and_counted() {
    let registry = prometheus::Registry::new();
    let metrics = JournalMetrics::new(&registry).unwrap();
    let config = JournalConfig {
        metrics: Some(metrics.clone()),
        ..JournalConfig::default()
    };
    let j = Journal::open(Arc::new(MemoryStore::new()), config)
        .await
        .unwrap();
    let (durable, relaxed, groups) = (
        metrics.commits("durable"),
        metrics.commits("relaxed"),
        metrics.groups(),
    );
    // Three appends at once: one or more durable groups answer all three.
    let seqs = futures_util::future::join_all((0..3).map(|_| j.append(rec("a", "bronze")))).await;
    let seqs: Vec<u64> = seqs.into_iter().map(Result::unwrap).collect();
    let after = metrics.commits("durable");
    assert!(after.0 > durable.0 && after.0 - durable.0 <= 3, "{after:?}");
    assert!(after.1 > durable.1, "a commit takes time");
    let (g, commands) = metrics.groups();
    assert_eq!(
        commands - groups.1,
        3.0,
        "each append answered by one group"
    );
    assert_eq!(
        g - groups.0,
        after.0 - durable.0,
        "a group per durable commit"
    );
    // A transition to applied alone commits relaxed.
    j.mark_applied(seqs[0], None).await.unwrap();
    assert_eq!(metrics.commits("relaxed").0, relaxed.0 + 1);
    assert_eq!(metrics.commits("durable").0, after.0);
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.contains("drgw_journal_commit_duration_seconds_count{durability=\"durable\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn state_machine() {
    let (j, _) = journal().await;
    let mut r = rec("a", "gold");
    r.request.secret = Some(EncryptedSecret {
        key_id: "k".into(),
        pointer: "/user/password".into(),
        nonce: "n".into(),
        ciphertext: "c".into(),
    });
    let s1 = j.append(r).await.unwrap();
    let s2 = j.append(rec("a", "gold")).await.unwrap();

    let applied = j.mark_applied(s1, Some("r-1".into())).await.unwrap();
    assert!(
        matches!(applied.state, RecordState::Applied { ref recovery_id, .. } if recovery_id.as_deref() == Some("r-1"))
    );
    assert_eq!(applied.attempts, 1);
    assert!(
        applied.request.secret.is_none(),
        "secrets are dropped once applied"
    );
    assert_eq!(j.get(s1).await.unwrap().unwrap(), applied);

    // Applied records never move again.
    for err in [
        j.mark_applied(s1, None).await.unwrap_err(),
        j.mark_failed(s1, "x", true).await.unwrap_err(),
        j.retry(s1).await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), "invalid_transition");
    }

    let failed = j.mark_failed(s2, "409 Conflict", false).await.unwrap();
    assert_eq!(failed.state.name(), "failed");
    assert_eq!(
        j.mark_applied(s2, None).await.unwrap_err().kind(),
        "invalid_transition"
    );
    assert_eq!(
        j.mark_failed(s2, "again", true).await.unwrap_err().kind(),
        "invalid_transition"
    );
    let retried = j.retry(s2).await.unwrap();
    assert_eq!((retried.state, retried.attempts), (RecordState::Pending, 1));
    assert_eq!(j.retry(s2).await.unwrap_err().kind(), "invalid_transition");
    assert_eq!(
        j.mark_applied(99, None).await.unwrap_err().kind(),
        "not_found"
    );
}

#[tokio::test]
async fn invalid_records_consume_no_seq() {
    let (j, _) = journal().await;
    let mut bad = rec("a", "gold");
    bad.depends_on = vec![1];
    assert_eq!(j.append(bad).await.unwrap_err().kind(), "invalid_record");
    assert_eq!(
        j.append(rec("a", "")).await.unwrap_err().kind(),
        "invalid_record"
    );
    assert_eq!(j.append(rec("a", "gold")).await.unwrap(), 1);
    let mut ok = rec("a", "gold");
    ok.depends_on = vec![1];
    assert_eq!(j.append(ok).await.unwrap(), 2);
}

#[tokio::test]
async fn pending_queries_and_lag() {
    let (j, _) = journal().await;
    // a: 1 2 4, b: 3 5 (bronze), c: 6
    for (p, t) in [
        ("a", "gold"),
        ("a", "gold"),
        ("b", "bronze"),
        ("a", "gold"),
        ("b", "bronze"),
        ("c", "gold"),
    ] {
        j.append(rec(p, t)).await.unwrap();
    }
    let a = TenantRef::new("a", "default");
    let seqs = |v: &[JournalRecord]| v.iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(&j.pending_for_tenant(&a, None, 10).await.unwrap()),
        [1, 2, 4]
    );
    assert_eq!(
        seqs(&j.pending_for_tenant(&a, Some(1), 1).await.unwrap()),
        [2]
    );
    j.mark_applied(1, None).await.unwrap();
    j.mark_failed(4, "boom", true).await.unwrap();
    assert_eq!(
        seqs(&j.pending_for_tenant(&a, None, 10).await.unwrap()),
        [2]
    );

    let next = j.next_pending(10).await.unwrap();
    let shape: Vec<_> = next
        .iter()
        .map(|g| (g.tenant.project_id.as_str(), seqs(&g.records)))
        .collect();
    assert_eq!(shape, [("a", vec![2]), ("b", vec![3, 5]), ("c", vec![6])]);
    // A small limit still reaches every tenant, one record each.
    let next = j.next_pending(3).await.unwrap();
    assert_eq!(
        next.iter().map(|g| g.records.len()).collect::<Vec<_>>(),
        [1, 1, 1]
    );

    let lag = j.tier_lag().await.unwrap();
    assert_eq!(lag["gold"].pending, 2);
    assert_eq!(lag["bronze"].pending, 2);
    let t2 = j.get(2).await.unwrap().unwrap().time_ms;
    assert_eq!(lag["gold"].oldest_pending_ms, Some(t2));
    j.retry(4).await.unwrap();
    assert_eq!(j.tier_lag().await.unwrap()["gold"].pending, 3);
    for s in [2, 4, 6] {
        j.mark_applied(s, None).await.unwrap();
    }
    let lag = j.tier_lag().await.unwrap();
    assert_eq!(
        lag["gold"],
        TierLag {
            pending: 0,
            oldest_pending_ms: None
        }
    );
}

#[tokio::test]
async fn list_filters_and_pages() {
    let (j, _) = journal().await;
    for i in 0..600u32 {
        let tier = if i % 3 == 0 { "silver" } else { "gold" };
        j.append(rec(if i % 2 == 0 { "a" } else { "b" }, tier))
            .await
            .unwrap();
    }
    j.mark_failed(10, "x", true).await.unwrap();
    let all = j.list(&RecordFilter::default(), None, 1000).await.unwrap();
    assert_eq!((all.records.len(), all.next_after), (600, None));
    let f = RecordFilter {
        tier: Some("silver".into()),
        tenant: Some(TenantRef::new("a", "default")),
        state: Some(StateFilter::Pending),
        direction: None,
    };
    let mut got = Vec::new();
    let mut after = None;
    loop {
        let page = j.list(&f, after, 7).await.unwrap();
        got.extend(page.records.iter().map(|r| r.seq));
        match page.next_after {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    let want: Vec<u64> = (0..600u64).filter(|i| i % 6 == 0).map(|i| i + 1).collect();
    assert_eq!(got, want);
    let failed = RecordFilter {
        state: Some(StateFilter::Failed),
        ..RecordFilter::default()
    };
    assert_eq!(j.list(&failed, None, 10).await.unwrap().records[0].seq, 10);
}

#[tokio::test]
async fn checkpoints() {
    let (j, _) = journal().await;
    j.append(rec("a", "silver")).await.unwrap();
    let c1 = j.append_checkpoint("silver", 1).await.unwrap();
    let c2 = j.append_checkpoint("gold", 1).await.unwrap();
    assert_eq!((c1.id, c2.id), (1, 2));
    assert_eq!(
        j.append_checkpoint("silver", 2).await.unwrap_err().kind(),
        "invalid_record"
    );
    assert_eq!(
        j.checkpoints(None, None, 10).await.unwrap(),
        [c1.clone(), c2.clone()]
    );
    assert_eq!(j.checkpoints(Some("silver"), None, 10).await.unwrap(), [c1]);
    assert_eq!(j.checkpoints(None, Some(1), 10).await.unwrap(), [c2]);
}

#[tokio::test]
async fn one_writer_per_journal_and_close() {
    let (j, store) = journal().await;
    let err = Journal::open(store.clone(), JournalConfig::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "lease_held");
    j.append(rec("a", "gold")).await.unwrap();
    j.close().await.unwrap();
    assert_eq!(
        j.append(rec("a", "gold")).await.unwrap_err().kind(),
        "closed"
    );
    // The lease was released; a new writer continues the sequence.
    let j2 = Journal::open(store, JournalConfig::default())
        .await
        .unwrap();
    assert_eq!(j2.append(rec("a", "gold")).await.unwrap(), 2);
}

/// Counts commits of the store it wraps.
struct CountingStore {
    inner: MemoryStore,
    commits: AtomicUsize,
}

impl StateStore for CountingStore {
    fn backend(&self) -> &'static str {
        "counting"
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
        self.commits.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            // A slow disk: let appenders pile up behind the commit in progress.
            tokio::time::sleep(Duration::from_millis(2)).await;
            self.inner.commit(batch).await
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
        self.inner.renew_lease(lease, ttl)
    }
    fn release_lease<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, ()> {
        self.inner.release_lease(lease)
    }
}

/// A journal over a [`CountingStore`].
async fn counting_journal() -> (Journal, Arc<CountingStore>) {
    let store = Arc::new(CountingStore {
        inner: MemoryStore::new(),
        commits: AtomicUsize::new(0),
    });
    let j = Journal::open(store.clone(), JournalConfig::default())
        .await
        .unwrap();
    (j, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_group_committed_and_gap_free() {
    let (j, store) = counting_journal().await;
    let tasks: Vec<_> = (0..500)
        .map(|i| tokio::spawn(j.append(rec(&format!("t{}", i % 7), "bronze"))))
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=500).collect::<Vec<u64>>());
    let commits = store.commits.load(Ordering::SeqCst);
    assert!(commits < 100, "{commits} commits for 500 appends");
    let report = j.verify().await.unwrap();
    assert_eq!(
        (report.records, report.last_seq, report.is_clean()),
        (500, 500, true)
    );
    // Records of one tenant keep their append order.
    let t0 = j
        .pending_for_tenant(&TenantRef::new("t0", "default"), None, 1000)
        .await
        .unwrap();
    assert!(t0
        .windows(2)
        .all(|w| w[0].seq < w[1].seq && w[0].time_ms <= w[1].time_ms));
}

#[tokio::test]
async fn corrupt_record_is_reported_not_skipped() {
    let (j, store) = journal().await;
    for _ in 0..3 {
        j.append(rec("a", "gold")).await.unwrap();
    }
    let key = seq_key(2);
    let mut v = store.get(RECORDS, &key).await.unwrap().unwrap().value;
    let at = v.len() / 2;
    v[at] ^= 0xff;
    store.put(RECORDS, &key, &v).await.unwrap();
    assert!(matches!(
        j.get(2).await,
        Err(JournalError::Corrupt { seq: 2, .. })
    ));
    assert_eq!(
        j.list(&RecordFilter::default(), None, 10)
            .await
            .unwrap_err()
            .kind(),
        "corrupt"
    );
    let a = TenantRef::new("a", "default");
    assert_eq!(
        j.pending_for_tenant(&a, None, 10).await.unwrap_err().kind(),
        "corrupt"
    );
    assert_eq!(j.mark_applied(2, None).await.unwrap_err().kind(), "corrupt");
    // Other records still work.
    j.mark_applied(3, None).await.unwrap();
    let report = j.verify().await.unwrap();
    assert_eq!(report.corrupt.iter().map(|c| c.0).collect::<Vec<_>>(), [2]);
    assert!(report.missing.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_batches_commit_with_their_transition_or_not_at_all() {
    const SIDE: Namespace = Namespace::new("test_side");
    let (j, store) = counting_journal().await;
    for _ in 0..4 {
        j.append(rec("a", "bronze")).await.unwrap();
    }
    // Written behind the back of a side batch that expects the key absent.
    store.inner.put(SIDE, b"stale", b"v").await.unwrap();
    let mut good = Batch::new();
    good.require_version(SIDE, b"k1".to_vec(), None);
    good.put(SIDE, b"k1".to_vec(), b"one".to_vec());
    let mut bad = Batch::new();
    bad.require_version(SIDE, b"stale".to_vec(), None);
    bad.put(SIDE, b"stale".to_vec(), b"two".to_vec());
    // Sent together, so that they may share a group commit.
    let (a, b, c, d) = tokio::join!(
        j.mark_applied_with(1, Some("r-1".into()), good),
        j.mark_applied_with(2, Some("r-2".into()), bad),
        j.append(rec("b", "bronze")),
        j.mark_applied(3, None),
    );
    assert!(!a.unwrap().state.is_pending());
    assert!(
        matches!(b, Err(JournalError::Store(StateError::Conflict { .. }))),
        "{b:?}"
    );
    assert_eq!(c.unwrap(), 5);
    d.unwrap();
    // The conflicting transition left its record as it was, its side batch unwritten.
    assert!(j.get(2).await.unwrap().unwrap().state.is_pending());
    assert_eq!(
        store.get(SIDE, b"stale").await.unwrap().unwrap().value,
        b"v"
    );
    assert_eq!(store.get(SIDE, b"k1").await.unwrap().unwrap().value, b"one");
    assert_eq!(j.tier_lag().await.unwrap()["bronze"].pending, 3);
    // The writer carries on; a side batch with the right version commits.
    let version = store.get(SIDE, b"stale").await.unwrap().map(|v| v.version);
    let mut fixed = Batch::new();
    fixed.require_version(SIDE, b"stale".to_vec(), version);
    fixed.put(SIDE, b"stale".to_vec(), b"two".to_vec());
    j.mark_applied_with(2, None, fixed).await.unwrap();
    assert_eq!(
        store.get(SIDE, b"stale").await.unwrap().unwrap().value,
        b"two"
    );
    // A side batch of a transition that is not allowed is not written.
    let mut late = Batch::new();
    late.put(SIDE, b"late".to_vec(), b"x".to_vec());
    assert!(j.mark_applied_with(1, None, late).await.is_err());
    assert!(store.get(SIDE, b"late").await.unwrap().is_none());
    let report = j.verify().await.unwrap();
    assert!(report.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_transitions_commit_nothing() {
    let (j, store) = counting_journal().await;
    let seq = j.append(rec("a", "bronze")).await.unwrap();
    j.mark_applied(seq, Some("r1".into())).await.unwrap();
    let before = store.commits.load(Ordering::SeqCst);
    // Applied is final: each of these is refused, and none touches the store.
    for _ in 0..3 {
        let err = j.mark_failed(seq, "late", true).await.unwrap_err();
        assert!(
            matches!(err, JournalError::InvalidTransition { .. }),
            "{err:?}"
        );
        let err = j.retry(seq).await.unwrap_err();
        assert!(
            matches!(err, JournalError::InvalidTransition { .. }),
            "{err:?}"
        );
    }
    assert_eq!(store.commits.load(Ordering::SeqCst), before);
    let record = j.get(seq).await.unwrap().unwrap();
    assert!(
        matches!(record.state, RecordState::Applied { .. }),
        "{record:?}"
    );
    assert!(j.verify().await.unwrap().is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_writer_has_released_its_lease() {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    for n in 1..=20u64 {
        let j = Journal::open(store.clone(), JournalConfig::default())
            .await
            .expect("the previous writer released the lease before its close returned");
        assert_eq!(j.append(rec("a", "gold")).await.unwrap(), n);
        j.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_all_is_one_commit_with_consecutive_seqs_or_nothing() {
    let (j, store) = counting_journal().await;
    j.append(rec("a", "gold")).await.unwrap();
    let before = store.commits.load(Ordering::SeqCst);
    let mut second = rec("a", "gold");
    second.depends_on = vec![2]; // the first record of the same call
    let seqs = j.append_all(vec![rec("a", "gold"), second]).await.unwrap();
    assert_eq!(seqs, [2, 3]);
    assert_eq!(store.commits.load(Ordering::SeqCst) - before, 1);
    // One invalid record: none of the call's records is appended, no seq is used.
    let mut bad = rec("a", "gold");
    bad.tier.clear();
    let err = j.append_all(vec![rec("a", "gold"), bad]).await.unwrap_err();
    assert!(matches!(err, JournalError::InvalidRecord(_)), "{err:?}");
    assert_eq!(j.last_seq().await.unwrap(), 3);
    assert_eq!(j.append(rec("a", "gold")).await.unwrap(), 4);
    assert!(j.verify().await.unwrap().is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appends_side_batch_commits_with_it_in_one_commit() {
    const SIDE: Namespace = Namespace::new("test_side");
    let (j, store) = counting_journal().await;
    j.append(rec("a", "bronze")).await.unwrap();
    let before = store.commits.load(Ordering::SeqCst);
    let mut side = Batch::new();
    side.put(SIDE, b"footprint".to_vec(), b"f".to_vec());
    side.add_counter(SIDE, b"count".to_vec(), 3);
    assert_eq!(j.append_with(rec("a", "bronze"), side).await.unwrap(), 2);
    assert_eq!(store.commits.load(Ordering::SeqCst) - before, 1);
    assert_eq!(
        store.get(SIDE, b"footprint").await.unwrap().unwrap().value,
        b"f"
    );
    let count = store.get(SIDE, b"count").await.unwrap().unwrap();
    assert_eq!(frame::open_i64(SIDE, b"count", &count.value).unwrap(), 3);

    // Concurrent appends with side batches share group commits; every side lands.
    let appends = (0..16).map(|_| {
        let mut side = Batch::new();
        side.add_counter(SIDE, b"count".to_vec(), 1);
        j.append_with(rec("a", "bronze"), side)
    });
    for seq in futures_util::future::join_all(appends).await {
        seq.unwrap();
    }
    let count = store.get(SIDE, b"count").await.unwrap().unwrap();
    assert_eq!(frame::open_i64(SIDE, b"count", &count.value).unwrap(), 19);

    // A side batch with a precondition is refused, and neither it nor its record is written.
    let mut guarded = Batch::new();
    guarded.require_version(SIDE, b"footprint".to_vec(), None);
    guarded.put(SIDE, b"guarded".to_vec(), b"g".to_vec());
    let err = j
        .append_with(rec("a", "bronze"), guarded)
        .await
        .unwrap_err();
    assert!(matches!(err, JournalError::InvalidRecord(_)), "{err:?}");
    assert!(store.get(SIDE, b"guarded").await.unwrap().is_none());
    assert_eq!(j.last_seq().await.unwrap(), 18);
    assert!(j.verify().await.unwrap().is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_transition_is_durable_before_any_later_append() {
    const SIDE: Namespace = Namespace::new("test_side");
    let (j, store) = counting_journal().await;
    for round in 0..20u64 {
        let seq = j.append(rec("a", "gold")).await.unwrap();
        let mut side = Batch::new();
        side.put(SIDE, seq.to_be_bytes().to_vec(), b"mapped".to_vec());
        let queued = j
            .queue_mark_applied(seq, Some(format!("r-{round}")), side)
            .await
            .unwrap();
        // Journaled after the queued transition: once this is durable, so is that.
        let later = j.append(rec("b", "bronze")).await.unwrap();
        assert!(later > seq);
        assert!(!j.get(seq).await.unwrap().unwrap().state.is_pending());
        assert_eq!(
            store
                .get(SIDE, &seq.to_be_bytes())
                .await
                .unwrap()
                .map(|v| v.value),
            Some(b"mapped".to_vec())
        );
        assert!(!queued.committed().await.unwrap().state.is_pending());
    }
    // A queued transition that is not allowed reports it.
    let queued = j.queue_mark_applied(1, None, Batch::new()).await.unwrap();
    assert!(matches!(
        queued.committed().await,
        Err(JournalError::InvalidTransition { .. })
    ));
    assert!(j.verify().await.unwrap().is_clean());
}
