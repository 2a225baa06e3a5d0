//! Property test: the journal on the redb backend behaves like a simple in-memory model
//! through any sequence of appends, state changes, crashes and reopens.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use drgw::journal::{
    Journal, JournalConfig, JournalRecord, MirrorRequest, NewRecord, RecordFilter, RecordState,
    TenantRef,
};
use drgw::state::RedbStore;
use proptest::prelude::*;

const TENANTS: [&str; 3] = ["alpha", "beta", "gamma"];
const TIERS: [&str; 2] = ["gold", "bronze"];

#[derive(Clone, Debug)]
enum Op {
    Append {
        tenant: usize,
        tier: usize,
    },
    MarkApplied {
        pick: usize,
    },
    MarkFailed {
        pick: usize,
        retryable: bool,
    },
    Retry {
        pick: usize,
    },
    /// Drop the journal and the database without closing (acknowledged appends must survive).
    Crash,
    /// Close cleanly and reopen.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..TENANTS.len(), 0..TIERS.len()).prop_map(|(tenant, tier)| Op::Append { tenant, tier }),
        3 => any::<usize>().prop_map(|pick| Op::MarkApplied { pick }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, retryable)| Op::MarkFailed { pick, retryable }),
        2 => any::<usize>().prop_map(|pick| Op::Retry { pick }),
        1 => Just(Op::Crash),
        1 => Just(Op::Reopen),
    ]
}

/// The model: what every record should look like.
#[derive(Clone, Debug, PartialEq)]
struct ModelRecord {
    tenant: usize,
    tier: usize,
    state: &'static str,
    attempts: u32,
}

fn new_record(tenant: usize, tier: usize, n: usize) -> NewRecord {
    NewRecord {
        tenant: TenantRef::new(TENANTS[tenant], "default"),
        tier: TIERS[tier].into(),
        direction: Default::default(),
        service: "network".into(),
        resource_type: "port".into(),
        action: "create".into(),
        primary_id: Some(format!("p{n}")),
        request: MirrorRequest {
            method: "POST".into(),
            path: "/v2.0/ports".into(),
            body: Some(serde_json::json!({"port": {"name": format!("port-{n}")}})),
            secret: None,
        },
        depends_on: vec![],
    }
}

struct Harness {
    dir: tempfile::TempDir,
    store: Option<Arc<RedbStore>>,
    journal: Option<Journal>,
}

impl Harness {
    async fn open(dir: tempfile::TempDir) -> Harness {
        let mut h = Harness {
            dir,
            store: None,
            journal: None,
        };
        h.start().await;
        h
    }

    async fn start(&mut self) {
        let store = Arc::new(RedbStore::open_in(self.dir.path()).expect("open state file"));
        let journal = Journal::open(store.clone(), JournalConfig::default())
            .await
            .expect("open journal");
        self.store = Some(store);
        self.journal = Some(journal);
    }

    fn journal(&self) -> &Journal {
        self.journal.as_ref().expect("journal is open")
    }

    /// Drops every handle and waits for the writer task to let go of the database.
    async fn stop(&mut self) {
        self.journal = None;
        let store = self.store.take().expect("store is open");
        for _ in 0..5000 {
            if Arc::strong_count(&store) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(Arc::strong_count(&store), 1, "writer task did not stop");
        drop(store);
    }
}

fn observe(r: &JournalRecord) -> ModelRecord {
    ModelRecord {
        tenant: TENANTS
            .iter()
            .position(|t| *t == r.tenant.project_id)
            .unwrap(),
        tier: TIERS.iter().position(|t| *t == r.tier).unwrap(),
        state: r.state.name(),
        attempts: r.attempts,
    }
}

async fn check(journal: &Journal, model: &[ModelRecord]) {
    let page = journal
        .list(&RecordFilter::default(), None, usize::MAX)
        .await
        .unwrap();
    let seqs: Vec<u64> = page.records.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (1..=model.len() as u64).collect::<Vec<_>>(),
        "seqs gap-free"
    );
    let seen: Vec<ModelRecord> = page.records.iter().map(observe).collect();
    assert_eq!(seen, model);
    assert!(page
        .records
        .windows(2)
        .all(|w| w[0].time_ms <= w[1].time_ms));
    for (i, tenant) in TENANTS.iter().enumerate() {
        let pending = journal
            .pending_for_tenant(&TenantRef::new(*tenant, "default"), None, usize::MAX)
            .await
            .unwrap();
        let want: Vec<u64> = (1..=model.len() as u64)
            .filter(|s| {
                let m = &model[(*s - 1) as usize];
                m.tenant == i && m.state == "pending"
            })
            .collect();
        assert_eq!(pending.iter().map(|r| r.seq).collect::<Vec<_>>(), want);
    }
    let lag = journal.tier_lag().await.unwrap();
    for (i, tier) in TIERS.iter().enumerate() {
        let want = model
            .iter()
            .filter(|m| m.tier == i && m.state == "pending")
            .count() as u64;
        assert_eq!(lag.get(*tier).map_or(0, |l| l.pending), want, "tier {tier}");
    }
    assert_eq!(journal.last_seq().await.unwrap(), model.len() as u64);
    assert!(journal.verify().await.unwrap().is_clean());
}

async fn run(ops: Vec<Op>, dir: &Path) {
    let dir = tempfile::tempdir_in(dir).unwrap();
    let mut h = Harness::open(dir).await;
    let mut model: Vec<ModelRecord> = Vec::new();
    for op in ops {
        match op {
            Op::Append { tenant, tier } => {
                let seq = h
                    .journal()
                    .append(new_record(tenant, tier, model.len()))
                    .await
                    .unwrap();
                model.push(ModelRecord {
                    tenant,
                    tier,
                    state: "pending",
                    attempts: 0,
                });
                assert_eq!(seq, model.len() as u64);
            }
            Op::MarkApplied { pick } | Op::MarkFailed { pick, .. } | Op::Retry { pick } => {
                // Pick an existing seq most of the time, sometimes one past the end.
                let seq = (pick % (model.len() + 1)) as u64 + 1;
                let result = match &op {
                    Op::MarkApplied { .. } => {
                        h.journal().mark_applied(seq, Some(format!("r{seq}"))).await
                    }
                    Op::MarkFailed { retryable, .. } => {
                        h.journal().mark_failed(seq, "boom", *retryable).await
                    }
                    _ => h.journal().retry(seq).await,
                };
                let Some(m) = model.get_mut((seq - 1) as usize) else {
                    assert_eq!(result.unwrap_err().kind(), "not_found");
                    continue;
                };
                let next = match (&op, m.state) {
                    (Op::MarkApplied { .. }, "pending") => Some(("applied", 1)),
                    (Op::MarkFailed { .. }, "pending") => Some(("failed", 1)),
                    (Op::Retry { .. }, "failed") => Some(("pending", 0)),
                    _ => None,
                };
                match next {
                    Some((state, extra)) => {
                        let r = result.unwrap();
                        m.state = state;
                        m.attempts += extra;
                        assert_eq!(observe(&r), *m);
                        if let RecordState::Applied { recovery_id, .. } = &r.state {
                            assert_eq!(recovery_id.as_deref(), Some(format!("r{seq}").as_str()));
                        }
                    }
                    None => assert_eq!(result.unwrap_err().kind(), "invalid_transition"),
                }
            }
            Op::Crash => {
                h.stop().await;
                h.start().await;
                check(h.journal(), &model).await;
            }
            Op::Reopen => {
                h.journal().close().await.unwrap();
                h.stop().await;
                h.start().await;
                check(h.journal(), &model).await;
            }
        }
    }
    check(h.journal(), &model).await;
    h.stop().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn journal_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let base = std::env::temp_dir();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(ops, &base));
    }
}

#[test]
fn tenants_and_tiers_are_distinct() {
    // The model maps names back to indexes; keep the tables duplicate-free.
    let mut seen = BTreeMap::new();
    for t in TENANTS.iter().chain(TIERS.iter()) {
        assert!(seen.insert(*t, ()).is_none());
    }
}
