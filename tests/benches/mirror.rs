//! Mirror benchmark (not a test): the cost of mirroring as tenants see it.
//!
//! `cargo bench -p drgw-tests --bench mirror` starts two simulated sites and the gateway in
//! this process (the sandbox configuration, its redb state file, a policy that lets the
//! tenant choose its tier per request) and measures:
//!
//! 1. **Bronze / pass-through throughput**: concurrent tenants create Neutron networks
//!    through the gateway, in rounds of tier `none` (no mirroring: proxied only) and
//!    `bronze` (journaled durably before the answer, applied in the background), which of
//!    the two goes first alternating. The ratio of the two create rates is the figure
//!    (target ≥ 0.8): the ratio of the two tiers' median rates, and beside it the median
//!    (and range) of each round's own ratio, which a drift across the run (or a slow
//!    stretch of the machine's) does not skew, since a round's two tiers run back to back.
//!    The journal is drained after each Bronze round, so that its
//!    background applies do not slow the next round. Bronze records give way to the
//!    tenants' creates while they keep the runtime busy (`drgw::mirror::pace`), so most of
//!    a round's applies run in its drain: the bench also prints the process CPU per create
//!    with the drain included, whose ratio is what a sustained overload would see.
//!    Measured at two concurrencies: 16 clients, where a Bronze create's wait for the
//!    journal's disk flush (about 1 ms here) bounds the Bronze rate more than any work does,
//!    since the simulator answers a create in a fraction of that; and 128 clients, where
//!    enough creates share each flush that both rates are bound by the CPU.
//! 2. **Gold overhead**: sequential Gold network creates through the gateway (the answer
//!    waits for the recovery site), against the same creates sent directly to the primary
//!    and directly to the recovery site. The figure is median(gold) − (median(primary) +
//!    median(recovery)) (target ≤ 2 ms): what the gateway itself adds, journal commits
//!    included. Measured twice: fresh (after the warm-up) and again after the throughput
//!    rounds, when the state file and the simulated sites hold thousands more resources
//!    (every rate drifts down as they grow; the cause is not pinned down yet).
//!
//! The process uses the `drgw` binary's allocator (mimalloc) and memory setup (no
//! transparent huge pages), as the gateway does in production.
//!
//! Tuning by environment: `DRGW_BENCH_CREATES` (creates per round, default 1500),
//! `DRGW_BENCH_CLIENTS` (concurrent client counts, comma separated, default `16,128`),
//! `DRGW_BENCH_ROUNDS` (default 5), `DRGW_BENCH_GOLD` (Gold samples, default 300).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drgw::sandbox;
use drgw_tests::sim::client::SimClient;
use drgw_tests::sim::{Site, SiteConfig, SiteHandle};
use drgw_tests::testbed::{create_tenant, free_ports, RunningGateway};
use http::{Method, StatusCode};
use serde_json::json;

/// The `drgw` binary's allocator, so that the gateway here runs as it does in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every tier of the sandbox, and no rule: the tenant picks one with `X-DR-Tier`.
const BENCH_POLICY: &str = r#"
[tiers.gold]
mode = "sync"
on_failure = "reject"

[tiers.bronze]
mode = "async"
max_lag = "300s"

[tiers.none]
mode = "off"

[default]
default_tier = "bronze"
"#;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Bench {
    primary: SiteHandle,
    recovery: SiteHandle,
    gateway: RunningGateway,
    network_url: String,
    tenants: Vec<SimClient>,
    _dir: tempfile::TempDir,
}

impl Bench {
    async fn start(tenants: usize) -> anyhow::Result<Bench> {
        let dir = tempfile::tempdir()?;
        let primary = Site::start(SiteConfig::named("primary")).await?;
        let recovery = Site::start(SiteConfig::named("recovery")).await?;
        let ports = free_ports();
        let config_path = sandbox::write_sandbox_files(
            dir.path(),
            ports,
            &primary.endpoints().services(),
            &recovery.endpoints().services(),
        )?;
        std::fs::write(dir.path().join("policy.toml"), BENCH_POLICY)?;
        let gateway = RunningGateway::start(config_path).await?;
        let identity = format!("http://127.0.0.1:{}/v3", ports.identity);
        let mut clients = Vec::new();
        for n in 0..tenants {
            let (project, user) = (format!("bench-{n}"), format!("bench-user-{n}"));
            create_tenant(&primary, &project, &user, "pw").await?;
            let mut c = SimClient::new();
            c.login(&identity, &user, "pw", &project).await?;
            clients.push(c);
        }
        Ok(Bench {
            primary,
            recovery,
            gateway,
            network_url: format!("http://127.0.0.1:{}/v2.0/networks", ports.network),
            tenants: clients,
            _dir: dir,
        })
    }

    /// `count` network creates by `clients` concurrent clients at tier `tier`; for a
    /// mirrored tier, then waits until its journal has drained (so that its background
    /// applies neither slow the next round nor go uncounted in the CPU figures).
    async fn round(&self, tier: &str, round: usize, count: usize, clients: usize) -> Round {
        let cpu_before = process_cpu_seconds();
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for k in 0..clients {
            let c = self.tenants[k % self.tenants.len()].clone();
            let (url, next, tier) = (self.network_url.clone(), next.clone(), tier.to_string());
            set.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return;
                    }
                    let body = json!({"network": {"name": format!("{tier}-{round}-{i}")}});
                    let r = c
                        .send(Method::POST, &url, Some(&body), &[("x-dr-tier", &tier)])
                        .await
                        .expect("create through the gateway");
                    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
                    assert_eq!(r.header("x-dr-tier"), Some(tier.as_str()));
                }
            });
        }
        while let Some(joined) = set.join_next().await {
            joined.expect("client");
        }
        let rate = count as f64 / started.elapsed().as_secs_f64();
        let cpu_in_round = process_cpu_seconds() - cpu_before;
        let status = self.gateway.gateway.mirror.status().await.expect("status");
        let pending_at_end: u64 = status.iter().map(|t| t.pending).sum();
        self.drain().await;
        let per_create = |cpu: f64| cpu * 1e6 / count as f64;
        let r = Round {
            rate,
            pending_at_end,
            cpu_us_in_round: per_create(cpu_in_round),
            cpu_us_with_drain: per_create(process_cpu_seconds() - cpu_before),
        };
        println!(
            "  {tier} round {round}: {:.0} creates/s; {} of {count} records pending at its end; \
             process CPU per create {:.0} µs in the round, {:.0} µs with the drain",
            r.rate, r.pending_at_end, r.cpu_us_in_round, r.cpu_us_with_drain
        );
        r
    }

    /// Waits until no record is pending.
    async fn drain(&self) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let status = self.gateway.gateway.mirror.status().await.expect("status");
            if status.iter().all(|t| t.pending == 0) {
                return;
            }
            assert!(Instant::now() < deadline, "the journal did not drain");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One throughput round's figures.
struct Round {
    rate: f64,
    pending_at_end: u64,
    /// Process CPU (gateway, both simulators and the clients) per create, during the round.
    cpu_us_in_round: f64,
    /// The same, including the drain of the round's journal records after it.
    cpu_us_with_drain: f64,
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat` (Linux; in
/// clock ticks of 1/100 s, USER_HZ on every mainstream kernel configuration).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name (which ends at the last ')'), utime and stime are the 12th and
    // 13th fields.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Latency of `n` sequential network creates at `url` (ms), each with its own name.
async fn latencies(
    c: &SimClient,
    url: &str,
    tag: &str,
    n: usize,
    headers: &[(&str, &str)],
) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"network": {"name": format!("{tag}-{i}")}});
        let started = Instant::now();
        let r = c
            .send(Method::POST, url, Some(&body), headers)
            .await
            .expect("create");
        out.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.status, StatusCode::CREATED, "{tag}: {}", r.json);
    }
    out
}

/// Gold overhead: sequential Gold creates of one tenant through the gateway, against the
/// same creates sent to each site directly.
async fn gold_overhead(bench: &Bench, gold_n: usize, label: &str) -> anyhow::Result<()> {
    let c = &bench.tenants[0];
    let mut direct = SimClient::new();
    direct
        .login(
            &bench.primary.endpoints().auth_url(),
            "bench-user-0",
            "pw",
            "bench-0",
        )
        .await?;
    let mut rdirect = SimClient::new();
    rdirect
        .login(
            &bench.recovery.endpoints().auth_url(),
            "admin",
            "secret",
            "admin",
        )
        .await?;
    let p_url = format!("{}/v2.0/networks", bench.primary.endpoints().network);
    let r_url = format!("{}/v2.0/networks", bench.recovery.endpoints().network);
    latencies(
        c,
        &bench.network_url,
        &format!("gold-warm-{label}"),
        20,
        &[("x-dr-tier", "gold")],
    )
    .await;
    let gold = median(
        latencies(
            c,
            &bench.network_url,
            &format!("gold-{label}"),
            gold_n,
            &[("x-dr-tier", "gold")],
        )
        .await,
    );
    let primary = median(
        latencies(
            &direct,
            &p_url,
            &format!("direct-primary-{label}"),
            gold_n,
            &[],
        )
        .await,
    );
    let recovery = median(
        latencies(
            &rdirect,
            &r_url,
            &format!("direct-recovery-{label}"),
            gold_n,
            &[],
        )
        .await,
    );
    println!(
        "gold create latency ({label}, median of {gold_n}): {gold:.2} ms through the gateway, primary \
         alone {primary:.2} ms, recovery alone {recovery:.2} ms: overhead {:.2} ms (target <= 2 ms)",
        gold - primary - recovery
    );

    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let creates = env("DRGW_BENCH_CREATES", 1500);
    let client_counts = client_counts();
    let rounds = env("DRGW_BENCH_ROUNDS", 5);
    let gold_n = env("DRGW_BENCH_GOLD", 300);
    let bench = Bench::start(4).await?;

    // Warm-up: connections, token caches, the tenants' projects mirrored once.
    let most = client_counts.iter().copied().max().unwrap_or(16);
    bench.round("bronze", 0, 200, most).await;
    bench.round("none", 0, 200, most).await;

    gold_overhead(&bench, gold_n, "fresh").await?;

    for clients in client_counts {
        throughput(&bench, clients, creates, rounds).await;
    }

    // Again after the rounds: the state and the sites' lists have grown (see the doc).
    gold_overhead(&bench, gold_n, "after-rounds").await?;

    let mut gw = bench.gateway;
    gw.stop().await;
    bench.primary.shutdown().await;
    bench.recovery.shutdown().await;
    Ok(())
}

/// `DRGW_BENCH_CLIENTS`: the concurrent client counts to measure throughput at, comma
/// separated (default 16 and 128).
fn client_counts() -> Vec<usize> {
    let counts: Vec<usize> = std::env::var("DRGW_BENCH_CLIENTS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .filter(|&c| c > 0)
        .collect();
    if counts.is_empty() {
        vec![16, 128]
    } else {
        counts
    }
}

/// Rounds of pass-through and Bronze creates by `clients` concurrent clients; prints each
/// round and the medians.
async fn throughput(bench: &Bench, clients: usize, creates: usize, rounds: usize) {
    let (mut none, mut bronze) = (Vec::new(), Vec::new());
    for r in 1..=rounds {
        // Which tier goes first alternates, so that a drift across the run (the sites'
        // growing lists, the state file) does not favour one.
        if r % 2 == 1 {
            none.push(bench.round("none", r, creates, clients).await);
            bronze.push(bench.round("bronze", r, creates, clients).await);
        } else {
            bronze.push(bench.round("bronze", r, creates, clients).await);
            none.push(bench.round("none", r, creates, clients).await);
        }
        println!(
            "round {r}: pass-through {:.0} creates/s, bronze {:.0} creates/s, ratio {:.2}",
            none[r - 1].rate,
            bronze[r - 1].rate,
            bronze[r - 1].rate / none[r - 1].rate
        );
    }
    let of = |rounds: &[Round], f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    let (none_m, bronze_m) = (of(&none, |r| r.rate), of(&bronze, |r| r.rate));
    // Each round's own ratio: its two tiers ran back to back.
    let per_round: Vec<f64> = none
        .iter()
        .zip(&bronze)
        .map(|(n, b)| b.rate / n.rate)
        .collect();
    let (low, high) = per_round
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
    println!(
        "throughput ({clients} clients, {creates} creates per round, median of {rounds}): \
         pass-through {none_m:.0}/s, bronze {bronze_m:.0}/s, ratio {:.2} (target >= 0.8); \
         per-round ratios: median {:.2}, range {low:.2}-{high:.2}",
        bronze_m / none_m,
        median(per_round),
    );
    // What a create costs in all, its Bronze apply included: the ratio a sustained overload
    // would see once the backlog's deferral bound is reached (see `drgw::mirror::pace`).
    let (none_cpu, bronze_cpu) = (
        of(&none, |r| r.cpu_us_with_drain),
        of(&bronze, |r| r.cpu_us_with_drain),
    );
    println!(
        "process CPU per create, background applies included (median of {rounds}): \
         pass-through {none_cpu:.0} µs, bronze {bronze_cpu:.0} µs, ratio {:.2}",
        none_cpu / bronze_cpu
    );
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then only build.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    drgw::allocator::disable_transparent_huge_pages()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}
