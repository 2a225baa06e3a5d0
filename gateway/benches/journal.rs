//! Journal append throughput on the redb backend: one appender (every append waits for its
//! own commit) against 64 concurrent appenders (group commit shares each fsync).
//!
//! Run: `cargo bench -p drgw --bench journal`. Each iteration is one acknowledged append;
//! criterion reports appends/s as elements/s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use drgw::journal::{Journal, JournalConfig, MirrorRequest, NewRecord, TenantRef};
use drgw::state::RedbStore;

fn record(task: u64, i: u64) -> NewRecord {
    NewRecord {
        tenant: TenantRef::new(format!("tenant-{}", task % 16), "default"),
        tier: "bronze".into(),
        direction: Default::default(),
        service: "network".into(),
        resource_type: "security_group_rule".into(),
        action: "create".into(),
        primary_id: Some(format!("{task}-{i}")),
        request: MirrorRequest {
            method: "POST".into(),
            path: "/v2.0/security-group-rules".into(),
            body: Some(serde_json::json!({"security_group_rule": {
                "direction": "ingress", "protocol": "tcp", "port_range_min": 22,
                "port_range_max": 22, "remote_ip_prefix": "10.0.0.0/8",
                "security_group_id": "2bc0accf-312e-429a-956e-e4407625eb62"}})),
            secret: None,
        },
        depends_on: vec![],
    }
}

fn appends(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = rt.block_on(async {
        let store = Arc::new(RedbStore::open_in(dir.path()).expect("state file"));
        Journal::open(store, JournalConfig::default())
            .await
            .expect("journal")
    });

    let mut group = c.benchmark_group("journal_append_redb");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for appenders in [1u64, 64] {
        group.bench_function(format!("{appenders}_appenders"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let per_task = iters.div_ceil(appenders);
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..appenders)
                        .map(|task| {
                            let journal = journal.clone();
                            tokio::spawn(async move {
                                for i in 0..per_task {
                                    journal.append(record(task, i)).await.expect("append");
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("appender");
                    }
                    // Normalise to the requested iteration count.
                    start
                        .elapsed()
                        .mul_f64(iters as f64 / (per_task * appenders) as f64)
                })
            });
        });
    }
    group.finish();
    rt.block_on(journal.close()).expect("close");
}

criterion_group!(benches, appends);
criterion_main!(benches);
