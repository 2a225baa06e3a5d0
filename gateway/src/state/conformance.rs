//! Behaviour every [`StateStore`] backend must share, run against each of them.

use std::sync::Arc;
use std::time::Duration;

use super::*;

const A: Namespace = Namespace::new("conf_a");
const B: Namespace = Namespace::new("conf_b");

/// The memory store, the redb store as configured, and a redb store that hands every
/// commit's writes to its flusher at once (so reads merge memory with the file).
fn backends() -> Vec<(Arc<dyn StateStore>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbStore::open_in(dir.path()).unwrap();
    let eager_dir = tempfile::tempdir().unwrap();
    let eager = RedbStore::open_with_freeze(
        eager_dir.path().join(embedded::DEFAULT_STATE_FILE),
        Duration::ZERO,
        0,
    )
    .unwrap();
    vec![
        (Arc::new(MemoryStore::new()), None),
        (Arc::new(redb), Some(dir)),
        (Arc::new(eager), Some(eager_dir)),
    ]
}

#[tokio::test]
async fn get_put_delete_and_versions() {
    for (s, _dir) in backends() {
        let name = s.backend();
        assert_eq!(s.get(A, b"k").await.unwrap(), None, "{name}");
        let v1 = s.put(A, b"k", b"one").await.unwrap();
        let got = s.get(A, b"k").await.unwrap().unwrap();
        assert_eq!((got.value.as_slice(), got.version), (&b"one"[..], v1));
        // The same key in another namespace is another key.
        assert_eq!(s.get(B, b"k").await.unwrap(), None);
        let v2 = s.put(A, b"k", b"two").await.unwrap();
        assert!(v2 > v1);
        let r = s.delete(A, b"k").await.unwrap();
        assert!(r > v2);
        assert_eq!(s.get(A, b"k").await.unwrap(), None);
        // Versions are never reused after delete and re-create (no ABA).
        let v3 = s.put(A, b"k", b"three").await.unwrap();
        assert!(v3 > r);
    }
}

#[tokio::test]
async fn compare_and_swap() {
    for (s, _dir) in backends() {
        let v1 = s.put_if_version(A, b"c", b"1", None).await.unwrap();
        let err = s.put_if_version(A, b"c", b"x", None).await.unwrap_err();
        assert_eq!(err.kind(), "conflict");
        let err = s
            .put_if_version(A, b"c", b"x", Some(v1 + 100))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "conflict");
        let v2 = s.put_if_version(A, b"c", b"2", Some(v1)).await.unwrap();
        assert_eq!(s.get(A, b"c").await.unwrap().unwrap().value, b"2");
        assert!(s.put_if_version(A, b"c", b"3", Some(v1)).await.is_err());
        assert_eq!(s.get(A, b"c").await.unwrap().unwrap().version, v2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_additions_never_conflict() {
    for (s, _dir) in backends() {
        let name = s.backend();
        let counter = |s: &Arc<dyn StateStore>| {
            let s = s.clone();
            async move {
                match s.get(A, b"n").await.unwrap() {
                    Some(v) => frame::open_i64(A, b"n", &v.value).unwrap(),
                    None => 0,
                }
            }
        };
        // 8 tasks × 25 additions, each batch with a put of its own: every one commits.
        let tasks: Vec<_> = (0..8u8)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    for j in 0..25u8 {
                        let mut b = Batch::new();
                        b.add_counter(A, b"n".to_vec(), 2);
                        b.put(B, vec![i, j], b"x".to_vec());
                        s.commit(b).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(counter(&s).await, 400, "{name}");
        assert_eq!(s.scan(B, b"", None, 1000).await.unwrap().len(), 200);

        // A batch whose precondition fails adds nothing.
        let mut b = Batch::new();
        b.add_counter(A, b"n".to_vec(), 1);
        b.require_version(B, b"missing".to_vec(), Some(1));
        assert_eq!(s.commit(b).await.unwrap_err().kind(), "conflict");
        assert_eq!(counter(&s).await, 400, "{name}");

        // Saturating, never failing.
        let mut b = Batch::new();
        b.add_counter(A, b"n".to_vec(), i64::MAX);
        s.commit(b).await.unwrap();
        assert_eq!(counter(&s).await, i64::MAX, "{name}");

        // A value that is not a framed counter is left alone; the rest of the batch commits.
        s.put(A, b"text", b"not a counter").await.unwrap();
        let mut b = Batch::new();
        b.add_counter(A, b"text".to_vec(), 1);
        b.put(B, b"after".to_vec(), b"y".to_vec());
        s.commit(b).await.unwrap();
        assert_eq!(
            s.get(A, b"text").await.unwrap().unwrap().value,
            b"not a counter",
            "{name}"
        );
        assert!(s.get(B, b"after").await.unwrap().is_some(), "{name}");
    }
}

#[tokio::test]
async fn batches_are_atomic() {
    for (s, _dir) in backends() {
        s.put(A, b"x", b"0").await.unwrap();
        let mut ok = Batch::new();
        ok.require_version(B, b"y", None);
        ok.put(A, b"x", b"1");
        ok.put(B, b"y", b"1");
        ok.delete(A, b"missing");
        let rev = s.commit(ok).await.unwrap();
        assert_eq!(s.get(A, b"x").await.unwrap().unwrap().version, rev);
        assert_eq!(s.get(B, b"y").await.unwrap().unwrap().version, rev);

        let mut bad = Batch::new();
        bad.put(A, b"x", b"2");
        bad.delete(B, b"y");
        bad.require_version(B, b"y", Some(rev + 1));
        assert_eq!(s.commit(bad).await.unwrap_err().kind(), "conflict");
        assert_eq!(s.get(A, b"x").await.unwrap().unwrap().value, b"1");
        assert!(s.get(B, b"y").await.unwrap().is_some());

        // Later operations in a batch see earlier ones: put then delete leaves nothing.
        let mut seq = Batch::new();
        seq.put(A, b"t", b"1");
        seq.delete(A, b"t");
        s.commit(seq).await.unwrap();
        assert_eq!(s.get(A, b"t").await.unwrap(), None);
    }
}

#[tokio::test]
async fn prefix_scans_page() {
    for (s, _dir) in backends() {
        let mut b = Batch::new();
        for k in ["a/1", "a/2", "a/3", "a/4", "ab", "b/1"] {
            b.put(A, k.as_bytes(), k.as_bytes());
        }
        b.put(B, &b"a/9"[..], &b"other"[..]);
        s.commit(b).await.unwrap();
        let keys = |v: Vec<Entry>| {
            v.into_iter()
                .map(|e| String::from_utf8(e.key).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(s.scan(A, b"a/", None, 10).await.unwrap()),
            ["a/1", "a/2", "a/3", "a/4"]
        );
        let page = s.scan(A, b"a/", None, 2).await.unwrap();
        let next = key_after(&page[1].key);
        assert_eq!(keys(page), ["a/1", "a/2"]);
        assert_eq!(
            keys(s.scan(A, b"a/", Some(&next), 2).await.unwrap()),
            ["a/3", "a/4"]
        );
        assert_eq!(
            keys(s.scan(A, b"", Some(b"ab"), 10).await.unwrap()),
            ["ab", "b/1"]
        );
        // A start before the prefix starts at the prefix.
        assert_eq!(
            keys(s.scan(A, b"b", Some(b"a"), 10).await.unwrap()),
            ["b/1"]
        );
        assert!(s.scan(A, b"z", None, 10).await.unwrap().is_empty());
        assert!(s
            .scan(Namespace::new("conf_never"), b"", None, 10)
            .await
            .unwrap()
            .is_empty());
        let many = s
            .get_many(A, &[b"a/2".to_vec(), b"nope".to_vec(), b"b/1".to_vec()])
            .await
            .unwrap();
        assert_eq!(
            many.iter().map(Option::is_some).collect::<Vec<_>>(),
            [true, false, true]
        );
    }
}

#[tokio::test]
async fn leases_have_one_writer() {
    for (s, _dir) in backends() {
        let ttl = Duration::from_secs(30);
        let a = s.acquire_lease("writer", "a", ttl).await.unwrap();
        assert_eq!(
            s.acquire_lease("writer", "b", ttl)
                .await
                .unwrap_err()
                .kind(),
            "lease_held"
        );
        s.renew_lease(&a, ttl).await.unwrap();
        s.release_lease(&a).await.unwrap();
        let b = s.acquire_lease("writer", "b", ttl).await.unwrap();
        assert!(b.token > a.token);
        assert_eq!(
            s.renew_lease(&a, ttl).await.unwrap_err().kind(),
            "lease_lost"
        );
    }
}

#[tokio::test]
async fn redb_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let v = {
        let s = RedbStore::open_in(dir.path()).unwrap();
        s.put(A, b"k", b"durable").await.unwrap()
    };
    let s = RedbStore::open_in(dir.path()).unwrap();
    let got = s.get(A, b"k").await.unwrap().unwrap();
    assert_eq!((got.value.as_slice(), got.version), (&b"durable"[..], v));
    assert!(s.put(A, b"k2", b"x").await.unwrap() > v);
}

#[tokio::test]
async fn redb_relaxed_commits_are_seen_at_once_and_kept_by_the_next_ordinary_commit() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = RedbStore::open_in(dir.path()).unwrap();
        for i in 0..3u8 {
            let mut b = Batch::new();
            b.put(A, vec![b'r', i], b"relaxed".to_vec());
            b.relax_durability();
            let rev = s.commit(b).await.unwrap();
            // Seen by the next read at once, with its revision.
            let got = s.get(A, &[b'r', i]).await.unwrap().unwrap();
            assert_eq!(got.version, rev);
        }
        s.commit(Batch::new()).await.unwrap();
    }
    let s = RedbStore::open_in(dir.path()).unwrap();
    for i in 0..3u8 {
        assert_eq!(
            s.get(A, &[b'r', i]).await.unwrap().map(|v| v.value),
            Some(b"relaxed".to_vec())
        );
    }
}
