//! Corruption of the state file is detected and reported, never a panic and never silently
//! skipped.

use std::sync::Arc;
use std::time::Duration;

use drgw::journal::{
    Journal, JournalConfig, JournalError, MirrorRequest, NewRecord, RecordFilter, TenantRef,
    RECORDS,
};
use drgw::state::{RedbStore, StateStore};

const MARKER: &str = "MARKER-7f3a9c1e-body";

fn record(i: u32) -> NewRecord {
    NewRecord {
        tenant: TenantRef::new("tenant", "default"),
        tier: "silver".into(),
        direction: Default::default(),
        service: "identity".into(),
        resource_type: "project".into(),
        action: "create".into(),
        primary_id: Some(format!("p{i}")),
        request: MirrorRequest {
            method: "POST".into(),
            path: "/v3/projects".into(),
            body: Some(serde_json::json!({"project": {"name": format!("{MARKER}-{i}")}})),
            secret: None,
        },
        depends_on: vec![],
    }
}

async fn release(journal: Journal, store: Arc<RedbStore>) {
    journal.close().await.unwrap();
    drop(journal);
    for _ in 0..5000 {
        if Arc::strong_count(&store) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(Arc::strong_count(&store), 1);
}

#[tokio::test]
async fn flipped_value_bytes_are_a_corrupt_record_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open_in(dir.path()).unwrap());
    let journal = Journal::open(store.clone(), JournalConfig::default())
        .await
        .unwrap();
    for i in 0..5 {
        journal.append(record(i)).await.unwrap();
    }
    // Flip bytes of record 3's stored value through the store, bypassing the journal.
    let key = 3u64.to_be_bytes();
    let mut value = store.get(RECORDS, &key).await.unwrap().unwrap().value;
    for at in [1, value.len() / 2, value.len() - 1] {
        value[at] ^= 0x5a;
    }
    store.put(RECORDS, &key, &value).await.unwrap();
    release(journal, store).await;

    let store = Arc::new(RedbStore::open_in(dir.path()).unwrap());
    let journal = Journal::open(store.clone(), JournalConfig::default())
        .await
        .unwrap();
    assert!(matches!(
        journal.get(3).await,
        Err(JournalError::Corrupt { seq: 3, .. })
    ));
    assert!(journal.get(2).await.unwrap().is_some());
    assert!(journal
        .list(&RecordFilter::default(), None, 10)
        .await
        .is_err());
    let report = journal.verify().await.unwrap();
    assert_eq!(report.corrupt.len(), 1);
    assert_eq!(report.corrupt[0].0, 3);
    assert!(report.missing.is_empty());
    // The journal keeps accepting appends after the corrupt record.
    assert_eq!(journal.append(record(9)).await.unwrap(), 6);
    release(journal, store).await;
}

#[tokio::test]
async fn flipped_bytes_in_the_file_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open_in(dir.path()).unwrap());
    let journal = Journal::open(store.clone(), JournalConfig::default())
        .await
        .unwrap();
    for i in 0..3 {
        journal.append(record(i)).await.unwrap();
    }
    release(journal, store).await;

    // Flip a byte inside every copy of record 1's body in the raw file.
    let path = dir.path().join("state.redb");
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = format!("{MARKER}-1");
    let mut hits = 0;
    let mut from = 0;
    while let Some(pos) = find(&bytes[from..], needle.as_bytes()) {
        let at = from + pos + 3;
        bytes[at] ^= 0x01;
        hits += 1;
        from = at;
    }
    assert!(hits > 0, "marker not found in the state file");
    std::fs::write(&path, &bytes).unwrap();

    // redb may refuse the file or hand back the bytes; either way the damage is reported.
    let store = match RedbStore::open_in(dir.path()) {
        Ok(store) => Arc::new(store),
        Err(e) => {
            assert_eq!(e.kind(), "backend");
            return;
        }
    };
    let tenant = TenantRef::new("tenant", "default");
    let journal = Journal::open(store.clone(), JournalConfig::default())
        .await
        .unwrap();
    match journal.get(2).await {
        Err(JournalError::Corrupt { seq: 2, .. }) | Err(JournalError::Store(_)) => {}
        other => panic!("corruption not detected: {other:?}"),
    }
    assert!(journal.pending_for_tenant(&tenant, None, 10).await.is_err());
    let report = journal.verify().await;
    assert!(report.map_or(true, |r| !r.is_clean()));
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
