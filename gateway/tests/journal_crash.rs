//! Crash test: a child process appends in a burst and prints every acknowledged seq; the
//! parent kills it with SIGKILL mid-burst, reopens the state file and checks that every
//! acknowledged record is there, intact, and that seqs are gap-free. Three rounds on one file.
//!
//! The child is this test binary re-executed with `DRGW_JOURNAL_CRASH_CHILD` set, running
//! only the `crash_child` test.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drgw::journal::{Journal, JournalConfig, MirrorRequest, NewRecord, TenantRef};
use drgw::state::RedbStore;

const CHILD_ENV: &str = "DRGW_JOURNAL_CRASH_CHILD";
const APPENDERS: usize = 16;

fn record(task: usize, i: u64) -> NewRecord {
    NewRecord {
        tenant: TenantRef::new(format!("tenant-{task}"), "default"),
        tier: "bronze".into(),
        direction: Default::default(),
        service: "compute".into(),
        resource_type: "server_group".into(),
        action: "create".into(),
        primary_id: Some(format!("{task}-{i}")),
        request: MirrorRequest {
            method: "POST".into(),
            path: "/v2.1/os-server-groups".into(),
            body: Some(serde_json::json!({"task": task, "i": i, "pad": "x".repeat(200)})),
            secret: None,
        },
        depends_on: vec![],
    }
}

/// The child: append forever from several tasks, print `ACK <seq> <task> <i>` per ack.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Only runs when re-executed by `acknowledged_appends_survive_sigkill`.
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Arc::new(RedbStore::open_in(&dir).unwrap());
        let journal = Journal::open(store, JournalConfig::default())
            .await
            .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for task in 0..APPENDERS {
            let journal = journal.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let seq = journal.append(record(task, i)).await.unwrap();
                    if tx.send(format!("ACK {seq} {task} {i}")).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut out = std::io::stdout().lock();
        while let Some(line) = rx.recv().await {
            writeln!(out, "{line}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<(u64, usize, u64)> = Vec::new();
    for round in 0..3 {
        let kill_after = 300 + round * 250;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let started = Instant::now();
        let mut this_round = 0;
        while this_round < kill_after {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "child too slow"
            );
            let Some(line) = lines.next() else {
                panic!("child exited early: {:?}", child.wait());
            };
            if let Some(ack) = parse_ack(&line.unwrap()) {
                acked.push(ack);
                this_round += 1;
            }
        }
        // SIGKILL while the appenders are mid-burst.
        child.kill().unwrap();
        // Acks the child printed before it died are still in the pipe.
        for line in lines {
            match line {
                Ok(line) => acked.extend(parse_ack(&line)),
                Err(_) => break,
            }
        }
        let status = child.wait().unwrap();
        assert!(!status.success(), "child was killed");
        check(dir.path(), &acked);
    }
}

fn parse_ack(line: &str) -> Option<(u64, usize, u64)> {
    let rest = &line[line.find("ACK ")? + 4..];
    let mut parts = rest.split_whitespace();
    let seq = parts.next()?.parse().ok()?;
    let task = parts.next()?.parse().ok()?;
    let i = parts.next()?.parse().ok()?;
    Some((seq, task, i))
}

fn check(dir: &std::path::Path, acked: &[(u64, usize, u64)]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Arc::new(RedbStore::open_in(dir).expect("reopen after SIGKILL"));
        let journal = Journal::open(store.clone(), JournalConfig::default())
            .await
            .unwrap();
        let report = journal.verify().await.unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(
            report.records, report.last_seq,
            "seqs 1..=last are all present"
        );
        let max_acked = acked.iter().map(|a| a.0).max().unwrap_or(0);
        assert!(report.last_seq >= max_acked);
        let mut seen = std::collections::HashSet::new();
        for &(seq, task, i) in acked {
            assert!(seen.insert(seq), "seq {seq} acknowledged twice");
            let r = journal
                .get(seq)
                .await
                .unwrap()
                .expect("acknowledged record present");
            let body = r.request.body.expect("body");
            assert_eq!(
                (body["task"].as_u64(), body["i"].as_u64()),
                (Some(task as u64), Some(i))
            );
            assert_eq!(r.primary_id, Some(format!("{task}-{i}")));
        }
        journal.close().await.unwrap();
    });
}
