//! Mirror benchmark (not a test): the cost of mirroring as tenants see it.
//!
//! `cargo bench -p drgw-tests --bench mirror` starts two sites and the gateway in this
//! process (the sandbox configuration, its redb state file, a policy that lets the tenant
//! choose its tier per request) and measures the two figures below. The sites are, by
//! `DRGW_BENCH_SITES`:
//!
//! - `sim` (the default): two simulated sites in this process. An upstream create costs a
//!   fraction of a millisecond there, so nearly all the work measured is the gateway's: the
//!   worst case for the ratio, and the figure to watch for the gateway's own cost.
//! - `real`: the test bed's real OpenStack services (`drgw_tests::realsite`, started here
//!   and stopped at the end, about a minute; they need the cached venv), the tenant being
//!   their `demo` user. A real Neutron (here with SQLite, one request at a time) takes tens
//!   of milliseconds per create: what a tenant of a real cloud sees. Each site's processes
//!   are pinned to a core of their own (`DRGW_BENCH_PIN=0`: not pinned), as two sites have
//!   machines of their own; the gateway and the bench's clients run on either core. Unpinned,
//!   the recovery site's applies and the primary's creates slow each other down on the two
//!   shared cores, as they would not on real sites.
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
//!    With the simulator, measured at two concurrencies: 16 clients, where a Bronze create's wait for the
//!    journal's disk flush (about 1 ms here) bounds the Bronze rate more than any work does,
//!    since the simulator answers a create in a fraction of that; and 128 clients, where
//!    enough creates share each flush that both rates are bound by the CPU.
//! 2. **Gold overhead**: sequential Gold network creates through the gateway (the answer
//!    waits for the recovery site), against the same creates sent directly to the primary,
//!    and directly to the recovery site as its apply makes them there: the create, then the
//!    tier tag's `PUT` (Neutron takes no tags in a network's create body). Three figures,
//!    each against the target of ≤ 2 ms:
//!    - median(gold) − (median(primary) + median(recovery)): what the gateway itself adds,
//!      journal commits included; the primary's tag is put while the record applies at
//!      the recovery site.
//!    - median(gold) − median(the same upstream calls made directly in the gateway's order
//!      and overlap: the create at the primary, then its tag there while the recovery site
//!      creates and tags the copy). With the real services unpinned, the overlapping calls
//!      slow each other down, which the first figure counts as the gateway's.
//!    - The upstreams' time taken out of each Gold create itself: its latency minus the
//!      primary's create and the recovery apply of that same create, as the gateway's own
//!      metrics timed them (`drgw_upstream_request_duration_seconds`, until the primary's
//!      answer's headers; `drgw_mirror_apply_duration_seconds`, from the claim of the
//!      record to the recovery site's last answer); its median and 90th percentile. The
//!      first two figures subtract medians of other samples than the Gold creates', and a
//!      real site's calls vary by tens of milliseconds from one to the next, so those
//!      figures swing by milliseconds from run to run; this one does not.
//!
//!    Measured twice: fresh (after the warm-up) and again after the throughput rounds, when
//!    the state file and the simulated sites hold thousands more resources
//!    (every rate drifts down as they grow; the cause is not pinned down yet).
//!
//! The process uses the `drgw` binary's allocator (mimalloc) and memory setup (no
//! transparent huge pages), as the gateway does in production.
//!
//! Tuning by environment (defaults for `sim`, then for `real`): `DRGW_BENCH_CREATES`
//! (creates per round, 1500 / 200), `DRGW_BENCH_CLIENTS` (concurrent client counts, comma
//! separated, `16,128` / `16`), `DRGW_BENCH_ROUNDS` (5 / 3), `DRGW_BENCH_GOLD` (Gold
//! samples, 300 / 60).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drgw::sandbox;
use drgw_tests::realsite::{Credentials, RealSite, RealSites};
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

/// The two sites the gateway under measure fronts.
enum Sites {
    /// Two simulated sites in this process: an upstream create costs a fraction of a
    /// millisecond, so the figures are mostly the gateway's own work.
    Sim {
        primary: SiteHandle,
        recovery: SiteHandle,
    },
    /// The real OpenStack services of the test bed (`DRGW_BENCH_SITES=real`), in processes
    /// of their own: the figures are what a tenant of a real cloud sees.
    Real(Box<RealSites>),
}

/// Where a client reaches one site directly, bypassing the gateway, and as whom.
struct Direct {
    auth_url: String,
    network_url: String,
    who: Credentials,
}

impl Direct {
    /// `who` directly at real site `site`.
    fn real(site: &RealSite, who: &Credentials) -> Direct {
        Direct {
            auth_url: site.keystone_url.clone(),
            network_url: format!("{}/v2.0/networks", site.urls.services.network),
            who: who.clone(),
        }
    }

    /// A client logged in as `who`, project-scoped.
    async fn client(&self) -> anyhow::Result<SimClient> {
        let mut c = SimClient::new();
        let who = &self.who;
        c.login(
            &self.auth_url,
            &who.username,
            &who.password,
            &who.project_name,
        )
        .await?;
        Ok(c)
    }
}

struct Bench {
    sites: Sites,
    gateway: RunningGateway,
    network_url: String,
    tenants: Vec<SimClient>,
    /// The first tenant, directly at the primary site.
    primary_tenant: Direct,
    /// The recovery site's admin, directly there.
    recovery_admin: Direct,
    _dir: tempfile::TempDir,
}

impl Bench {
    /// Simulated sites, `tenants` tenants (each its own project and user).
    async fn start_sim(tenants: usize) -> anyhow::Result<Bench> {
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
        // Measured as deployed by default: without the sandbox's access log.
        let config = std::fs::read_to_string(&config_path)?;
        std::fs::write(
            &config_path,
            config.replace("access_log = \"access.log\"\n", ""),
        )?;
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
        let direct = |site: &SiteHandle, who| Direct {
            auth_url: site.endpoints().auth_url(),
            network_url: format!("{}/v2.0/networks", site.endpoints().network),
            who,
        };
        Ok(Bench {
            primary_tenant: direct(&primary, Credentials::new("bench-user-0", "pw", "bench-0")),
            recovery_admin: direct(&recovery, Credentials::new("admin", "secret", "admin")),
            sites: Sites::Sim { primary, recovery },
            gateway,
            network_url: format!("http://127.0.0.1:{}/v2.0/networks", ports.network),
            tenants: clients,
            _dir: dir,
        })
    }

    /// The test bed's real sites; the tenant is the sites' `demo` user (member of project
    /// `demo`).
    async fn start_real() -> anyhow::Result<Bench> {
        let sites = tokio::task::spawn_blocking(RealSites::start).await??;
        // Each site on a core of its own, as two sites have machines of their own: else the
        // primary's tag and the recovery site's apply of a Gold create, made at the same
        // time, slow each other down on two shared cores.
        if std::env::var("DRGW_BENCH_PIN").as_deref() != Ok("0") {
            pin_site(&sites.primary, 0)?;
            pin_site(&sites.recovery, 1)?;
        }
        let dir = tempfile::tempdir()?;
        let ports = free_ports();
        let config_path = sites.write_gateway_files(dir.path(), ports)?;
        std::fs::write(dir.path().join("policy.toml"), BENCH_POLICY)?;
        // Measured as deployed by default: without the sandbox's access log.
        let config = std::fs::read_to_string(&config_path)?;
        std::fs::write(
            &config_path,
            config.replace("access_log = \"access.log\"\n", ""),
        )?;
        let gateway = RunningGateway::start(config_path).await?;
        let primary_tenant = Direct::real(&sites.primary, &sites.primary.demo);
        let through_gateway = Direct {
            auth_url: format!("http://127.0.0.1:{}/v3", ports.identity),
            ..Direct::real(&sites.primary, &sites.primary.demo)
        };
        let tenant = through_gateway.client().await?;
        Ok(Bench {
            recovery_admin: Direct::real(&sites.recovery, &sites.recovery.admin),
            primary_tenant,
            sites: Sites::Real(Box::new(sites)),
            gateway,
            network_url: format!("http://127.0.0.1:{}/v2.0/networks", ports.network),
            tenants: vec![tenant],
            _dir: dir,
        })
    }

    /// Lifts the network quota (100 per project by default in Neutron) of every project at
    /// both real sites, the recovery site's mirrored tenant included; nothing to do for the
    /// simulator, which has none.
    async fn unlimited_networks(&self) -> anyhow::Result<()> {
        let Sites::Real(sites) = &self.sites else {
            return Ok(());
        };
        for site in sites.sites() {
            let admin = Direct::real(site, &site.admin).client().await?;
            let projects = admin
                .send(
                    Method::GET,
                    &format!("{}/projects", site.keystone_url),
                    None,
                    &[],
                )
                .await?;
            anyhow::ensure!(projects.status.is_success(), "{}", projects.json);
            for project in projects.json["projects"].as_array().into_iter().flatten() {
                let id = project["id"].as_str().unwrap_or_default();
                let url = format!("{}/v2.0/quotas/{id}", site.urls.services.network);
                let body = json!({"quota": {"network": -1}});
                let r = admin.send(Method::PUT, &url, Some(&body), &[]).await?;
                anyhow::ensure!(r.status.is_success(), "{url}: {} {}", r.status, r.json);
            }
        }
        Ok(())
    }

    /// Deletes, directly at both real sites, every network the bench made there (their
    /// names start with a tier's or a Gold sample's label): a site has 1000 VXLAN ids for
    /// project networks (`tests/realstack/start-site.sh`), fewer than the bench creates.
    /// Only between measurements, with the journal drained; nothing to do for the
    /// simulator.
    async fn delete_networks(&self) -> anyhow::Result<()> {
        let Sites::Real(sites) = &self.sites else {
            return Ok(());
        };
        let [primary, recovery] = sites.sites();
        tokio::try_join!(
            delete_bench_networks(primary),
            delete_bench_networks(recovery)
        )?;
        Ok(())
    }

    async fn stop(self) -> anyhow::Result<()> {
        let mut gateway = self.gateway;
        gateway.stop().await;
        match self.sites {
            Sites::Sim { primary, recovery } => {
                primary.shutdown().await;
                recovery.shutdown().await;
            }
            Sites::Real(sites) => {
                tokio::task::spawn_blocking(move || sites.stop()).await??;
            }
        }
        Ok(())
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
        self.delete_networks()
            .await
            .expect("delete the round's networks");
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

/// Deletes the networks named by the bench at one real site, as its admin, a few at a time.
async fn delete_bench_networks(site: &RealSite) -> anyhow::Result<()> {
    let direct = Direct::real(site, &site.admin);
    let (admin, base) = (direct.client().await?, direct.network_url);
    let listed = admin
        .send(
            Method::GET,
            &format!("{base}?fields=id&fields=name"),
            None,
            &[],
        )
        .await?;
    anyhow::ensure!(listed.status.is_success(), "{}", listed.json);
    let ids: Vec<String> = listed.json["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| {
            let name = n["name"].as_str().unwrap_or_default();
            ["none-", "bronze-", "gold-", "direct-"]
                .iter()
                .any(|p| name.starts_with(p))
        })
        .filter_map(|n| n["id"].as_str().map(str::to_string))
        .collect();
    let next = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(ids);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (admin, base, ids, next) = (admin.clone(), base.clone(), ids.clone(), next.clone());
        set.spawn(async move {
            while let Some(id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) {
                let r = admin
                    .send(Method::DELETE, &format!("{base}/{id}"), None, &[])
                    .await?;
                anyhow::ensure!(
                    r.status.is_success() || r.status == StatusCode::NOT_FOUND,
                    "delete {id}: {} {}",
                    r.status,
                    r.json
                );
            }
            Ok(())
        });
    }
    while let Some(joined) = set.join_next().await {
        joined??;
    }
    Ok(())
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

/// Pins every process of `site` (its services and their workers) to CPU `cpu`.
fn pin_site(site: &RealSite, cpu: usize) -> anyhow::Result<()> {
    let roots: Vec<u32> = site.pids().into_iter().map(|(_, pid)| pid).collect();
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent.insert(pid, ppid);
        }
    }
    let in_site = |mut pid: u32| loop {
        if roots.contains(&pid) {
            return true;
        }
        match parent.get(&pid) {
            Some(&p) if p > 1 => pid = p,
            _ => return false,
        }
    };
    let mut pinned = 0;
    for &pid in parent.keys().filter(|&&p| in_site(p)) {
        let ok = std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
            .stdout(std::process::Stdio::null())
            .status()?
            .success();
        pinned += usize::from(ok);
    }
    println!(
        "pinned {pinned} processes of site {} to CPU {cpu}",
        site.name
    );
    Ok(())
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

fn median(v: Vec<f64>) -> f64 {
    percentile(v, 0.5)
}

/// The value below which fraction `q` of `v` lies (nearest rank).
fn percentile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = ((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1));
    v[rank]
}

/// The gateway's own clocks of a Gold create's upstream work, read from its metrics: the
/// proxied calls to the primary's Neutron (until the answer's headers) and the Gold
/// applies (from the claim of the record to the recovery site's last answer). Between two
/// readings around one sequential Gold create, each grew by exactly one observation: that
/// create's primary call and its recovery apply.
struct UpstreamClocks {
    primary: (f64, u64),
    gold_apply: (f64, u64),
}

impl UpstreamClocks {
    fn read(gw: &drgw::gateway::Gateway) -> UpstreamClocks {
        let families = gw.metrics.registry.gather();
        let histogram = |name: &str, labels: &[(&str, &str)]| {
            families
                .iter()
                .filter(|f| f.name() == name)
                .flat_map(|f| f.get_metric())
                .find(|m| {
                    labels.iter().all(|(k, v)| {
                        m.get_label()
                            .iter()
                            .any(|l| l.name() == *k && l.value() == *v)
                    })
                })
                .map_or((0.0, 0), |m| {
                    let h = m.get_histogram();
                    (h.get_sample_sum(), h.get_sample_count())
                })
        };
        UpstreamClocks {
            primary: histogram(
                "drgw_upstream_request_duration_seconds",
                &[("service", "network"), ("site", "primary")],
            ),
            gold_apply: histogram("drgw_mirror_apply_duration_seconds", &[("tier", "gold")]),
        }
    }

    /// Milliseconds of the primary call and of the Gold apply since `before`, if there was
    /// exactly one of each.
    fn since(&self, before: &UpstreamClocks) -> Option<(f64, f64)> {
        let one = |now: (f64, u64), then: (f64, u64)| {
            (now.1 == then.1 + 1).then_some((now.0 - then.0) * 1000.0)
        };
        Some((
            one(self.primary, before.primary)?,
            one(self.gold_apply, before.gold_apply)?,
        ))
    }
}

/// Creates network `name` at `url` and returns its id; panics on a failure.
async fn create_network(c: &SimClient, url: &str, name: &str, headers: &[(&str, &str)]) -> String {
    create_network_body(c, url, json!({"network": {"name": name}}), headers).await
}

/// Creates the network `body` describes at `url` and returns its id; panics on a failure.
async fn create_network_body(
    c: &SimClient,
    url: &str,
    body: serde_json::Value,
    headers: &[(&str, &str)],
) -> String {
    let name = body["network"]["name"].as_str().unwrap_or_default();
    let r = c
        .send(Method::POST, url, Some(&body), headers)
        .await
        .expect("create");
    assert_eq!(r.status, StatusCode::CREATED, "{name}: {}", r.json);
    r.json["network"]["id"]
        .as_str()
        .expect("the network's id")
        .to_string()
}

/// Puts `tag` on network `id` of the collection at `url` (`PUT .../tags/{tag}`).
async fn tag_network(c: &SimClient, url: &str, id: &str, tag: &str) {
    let t = c
        .send(Method::PUT, &format!("{url}/{id}/tags/{tag}"), None, &[])
        .await
        .expect("tag");
    assert!(t.status.is_success(), "tag {id}: {} {}", t.status, t.json);
}

/// The tag a Gold apply puts on the recovery copy, and the gateway on the primary resource.
const GOLD_TAG: &str = "dr-tier:gold";

/// What a Gold network's apply makes at the recovery site, as the admin there: the create in
/// the tenant's project there (`project_id`), then the tier tag (Neutron takes no tags in a
/// network's create body).
async fn create_tagged_copy(c: &SimClient, url: &str, name: &str, project_id: &str) {
    let body = json!({"network": {"name": name, "project_id": project_id}});
    let copy = create_network_body(c, url, body, &[]).await;
    tag_network(c, url, &copy, GOLD_TAG).await;
}

/// The recovery site's project of the Gold copies: that of the copy of network `primary_id`.
async fn copies_project(bench: &Bench, admin: &SimClient, primary_id: &str) -> String {
    let idmap = drgw::state::IdMap::new(bench.gateway.gateway.store.clone());
    // The ID-map entry commits with the record's transition to applied, queued when the
    // create returned.
    let deadline = Instant::now() + Duration::from_secs(10);
    let copy = loop {
        let mapped = idmap.recovery_id("network", "network", primary_id).await;
        if let Some(copy) = mapped.expect("the ID map") {
            break copy;
        }
        assert!(
            Instant::now() < deadline,
            "Gold network {primary_id} is not mapped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let url = format!("{}/{copy}", bench.recovery_admin.network_url);
    let r = admin.get(&url).await.expect("the recovery copy");
    r.json["network"]["project_id"]
        .as_str()
        .expect("the copy's project")
        .to_string()
}

/// Milliseconds since `started`.
fn ms_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

/// Gold overhead: sequential Gold creates of one tenant through the gateway, against the
/// same creates sent to each site directly, and against the calls of a Gold create made
/// directly in the gateway's order (the create at the primary, then its tier tag there while
/// the recovery site creates and tags the copy). The four kinds of sample take turns, so
/// that a drift of the sites' speed over the run (large for the real services) weighs on
/// each alike.
async fn gold_overhead(bench: &Bench, gold_n: usize, label: &str) -> anyhow::Result<()> {
    let c = &bench.tenants[0];
    let primary = bench.primary_tenant.client().await?;
    let recovery = bench.recovery_admin.client().await?;
    let (p_url, r_url) = (
        bench.primary_tenant.network_url.as_str(),
        bench.recovery_admin.network_url.as_str(),
    );
    let gold_header = [("x-dr-tier", "gold")];
    let mut warm = String::new();
    for i in 0..20 {
        warm = create_network(
            c,
            &bench.network_url,
            &format!("gold-warm-{label}-{i}"),
            &gold_header,
        )
        .await;
    }
    let project = copies_project(bench, &recovery, &warm).await;
    let (mut gold, mut primary_alone, mut recovery_alone, mut choreography) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut own, mut timed_primary, mut timed_apply) = (Vec::new(), Vec::new(), Vec::new());
    let gw = &bench.gateway.gateway;
    for i in 0..gold_n {
        let clocks = UpstreamClocks::read(gw);
        let started = Instant::now();
        create_network(
            c,
            &bench.network_url,
            &format!("gold-{label}-{i}"),
            &gold_header,
        )
        .await;
        let latency = ms_since(started);
        gold.push(latency);
        if let Some((primary, apply)) = UpstreamClocks::read(gw).since(&clocks) {
            own.push(latency - primary - apply);
            timed_primary.push(primary);
            timed_apply.push(apply);
        }

        let started = Instant::now();
        create_network(&primary, p_url, &format!("direct-primary-{label}-{i}"), &[]).await;
        primary_alone.push(ms_since(started));

        let started = Instant::now();
        let name = format!("direct-recovery-{label}-{i}");
        create_tagged_copy(&recovery, r_url, &name, &project).await;
        recovery_alone.push(ms_since(started));

        let name = format!("direct-gold-{label}-{i}");
        let started = Instant::now();
        let id = create_network(&primary, p_url, &name, &[]).await;
        tokio::join!(
            tag_network(&primary, p_url, &id, GOLD_TAG),
            create_tagged_copy(&recovery, r_url, &name, &project)
        );
        choreography.push(ms_since(started));
    }
    let (gold, primary_alone, recovery_alone, choreography) = (
        median(gold),
        median(primary_alone),
        median(recovery_alone),
        median(choreography),
    );
    println!(
        "gold create latency ({label}, median of {gold_n}): {gold:.2} ms through the gateway, primary \
         alone {primary_alone:.2} ms, recovery apply alone (create, then its tier tag) \
         {recovery_alone:.2} ms: overhead {:.2} ms (target <= 2 ms); the same calls made directly \
         in the gateway's order {choreography:.2} ms: overhead {:.2} ms",
        gold - primary_alone - recovery_alone,
        gold - choreography,
    );
    let timed = own.len();
    if timed > 0 {
        let (own, p90) = (median(own.clone()), percentile(own, 0.9));
        let (primary, apply) = (median(timed_primary), median(timed_apply));
        println!(
            "gold create latency ({label}) minus the primary's create and the recovery apply of \
             the same create, as the gateway timed them (medians {primary:.2} and {apply:.2} ms): \
             median {own:.2} ms, p90 {p90:.2} ms (target <= 2 ms; {timed} of {gold_n} creates \
             with exactly one of each)"
        );
    }
    bench.delete_networks().await?;

    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let real = match std::env::var("DRGW_BENCH_SITES").as_deref() {
        Ok("real") => true,
        Ok("sim") | Err(_) => false,
        Ok(other) => anyhow::bail!("DRGW_BENCH_SITES is `sim` or `real`, not `{other}`"),
    };
    // A real Neutron serves one request at a time (see `tests/realstack/start-site.sh`):
    // fewer creates, one concurrency.
    let (creates, default_clients, rounds, gold_n) = if real {
        (
            env("DRGW_BENCH_CREATES", 200),
            vec![16],
            env("DRGW_BENCH_ROUNDS", 3),
            env("DRGW_BENCH_GOLD", 60),
        )
    } else {
        (
            env("DRGW_BENCH_CREATES", 1500),
            vec![16, 128],
            env("DRGW_BENCH_ROUNDS", 5),
            env("DRGW_BENCH_GOLD", 300),
        )
    };
    let client_counts = client_counts(default_clients);
    let bench = if real {
        Bench::start_real().await?
    } else {
        Bench::start_sim(4).await?
    };
    println!(
        "sites: {}",
        if real {
            "the test bed's real OpenStack services"
        } else {
            "simulated"
        }
    );

    // Warm-up: connections, token caches, the tenants' projects mirrored once. Fewer than
    // a real Neutron's default quota of 100 networks, which is lifted next.
    let most = client_counts.iter().copied().max().unwrap_or(16);
    bench.round("bronze", 0, 40, most).await;
    bench.round("none", 0, 40, most).await;
    bench.unlimited_networks().await?;

    gold_overhead(&bench, gold_n, "fresh").await?;

    for clients in client_counts {
        throughput(&bench, clients, creates, rounds).await;
    }

    // Again after the rounds: the state and the sites' lists have grown (see the doc).
    gold_overhead(&bench, gold_n, "after-rounds").await?;
    bench.stop().await
}

/// `DRGW_BENCH_CLIENTS`: the concurrent client counts to measure throughput at, comma
/// separated (else `default`).
fn client_counts(default: Vec<usize>) -> Vec<usize> {
    let counts: Vec<usize> = std::env::var("DRGW_BENCH_CLIENTS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .filter(|&c| c > 0)
        .collect();
    if counts.is_empty() {
        default
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
