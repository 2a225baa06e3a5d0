//! Real OpenStack sites for the real-services test tier.
//!
//! Starts the genuine upstream API services (Keystone, Nova, Glance, Cinder, Neutron,
//! Placement, installed from PyPI into a cached virtualenv) on 127.0.0.1 with SQLite, using
//! the project's own scripts in `tests/realstack/` (`install.sh`, `start-site.sh`,
//! `stop-site.sh`). Two independent sites, `primary` (ports 15000..15005, `RegionOne`) and
//! `recovery` (ports 16000..16005, `RegionTwo`), start in parallel with fresh state in a
//! temporary directory per run.
//!
//! Sites are stopped by the PIDs their start recorded (`stop-site.sh`, never by process name)
//! and their state is purged: explicitly with [`RealSites::stop`], on drop (which also runs
//! while a panic unwinds), on SIGINT/SIGTERM of the test process, and, for a run that was
//! killed outright, by the next run, which sweeps the state directories of dead owners.
//!
//! A missing prerequisite (bash, python3, curl, pgrep) is an error with a clear message: this
//! tier fails loudly, it never skips. Environment knobs: `REALSTACK_HOME` (the venv's parent,
//! default `$HOME/.cache/drgw/realstack`), `REALSTACK_BACKENDS=1` (passed through to
//! `start-site.sh`: RabbitMQ plus fake compute/volume backends, servers go `ACTIVE`),
//! `DRGW_REALSTACK_KEEP=1` (stop the services but keep state and logs for inspection).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use crate::cli::CloudEntry;

/// Prefix of the per-run state directories under the system temp dir.
const STATE_PREFIX: &str = "drgw-realstack-";
/// File in a run's state directory holding the PID of the test process that owns it.
const OWNER_FILE: &str = "owner.pid";

/// The directory with the realstack scripts (`tests/realstack`).
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("realstack")
}

/// Where `install.sh` keeps the virtualenvs: `$REALSTACK_HOME`, else
/// `$HOME/.cache/drgw/realstack` (the default of `tests/realstack/common.sh`).
pub fn realstack_home() -> PathBuf {
    if let Some(h) = std::env::var_os("REALSTACK_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/drgw/realstack")
}

/// The virtualenv with every service, `openstack` and openstacksdk.
pub fn venv_dir() -> PathBuf {
    realstack_home().join("venv")
}

/// Looks `prog` up in `$PATH`.
fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Fails with a clear message when a program the scripts need is missing.
pub fn check_prerequisites() -> anyhow::Result<()> {
    let needs = [
        ("bash", "bash"),
        ("python3", "python3 python3-venv"),
        ("curl", "curl"),
        ("pgrep", "procps"),
    ];
    let missing: Vec<_> = needs.iter().filter(|(p, _)| which(p).is_none()).collect();
    if !missing.is_empty() {
        let progs: Vec<_> = missing.iter().map(|(p, _)| *p).collect();
        let pkgs: Vec<_> = missing.iter().map(|(_, d)| *d).collect();
        bail!(
            "the real-services test tier needs {} on PATH (Debian: apt-get install -y {}); it does not skip",
            progs.join(", "),
            pkgs.join(" ")
        );
    }
    Ok(())
}

/// Runs `tests/realstack/install.sh` (idempotent: 0 s when the venv's stamp matches, ~90 s
/// from PyPI otherwise) and returns how long it took. Its progress goes to stderr.
pub fn ensure_venv() -> anyhow::Result<Duration> {
    check_prerequisites()?;
    let t = Instant::now();
    let script = scripts_dir().join("install.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("REALSTACK_HOME", realstack_home())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !out.success() {
        bail!("{} failed ({out}); see its output above", script.display());
    }
    let openstack = venv_dir().join("bin/openstack");
    if !openstack.is_file() {
        bail!(
            "{} ran but {} is missing",
            script.display(),
            openstack.display()
        );
    }
    Ok(t.elapsed())
}

/// What to start: a site name, its Keystone region and its base port (Keystone on `BASE`,
/// Nova `+1`, Glance `+2`, Cinder `+3`, Neutron `+4`, Placement `+5`; `+6..+8` in backends
/// mode). Sites must be at least 10 ports apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteSpec {
    pub name: &'static str,
    pub region: &'static str,
    pub base_port: u16,
}

/// The primary site: `primary`, `RegionOne`, ports 15000..15005.
pub const PRIMARY: SiteSpec = SiteSpec {
    name: "primary",
    region: "RegionOne",
    base_port: 15000,
};
/// The recovery site: `recovery`, `RegionTwo`, ports 16000..16005.
pub const RECOVERY: SiteSpec = SiteSpec {
    name: "recovery",
    region: "RegionTwo",
    base_port: 16000,
};

/// Password credentials of one user in one project (domain `Default`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
}

impl Credentials {
    /// A user in `project`, both in the default domain.
    pub fn new(username: &str, password: &str, project: &str) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
            project_name: project.into(),
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
        }
    }
}

/// Unversioned base URLs of a site's services (the form the simulator's `Endpoints` and the
/// gateway's `[sites.*]` configuration use). The catalog the site's Keystone hands out has
/// `/v3` on identity, `/v2.1` on compute and `/v3/%(project_id)s` on block-storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceUrls {
    /// The five OpenStack services the gateway fronts.
    pub services: drgw::sandbox::SimEndpoints,
    pub placement: String,
}

/// One running real site.
#[derive(Debug)]
pub struct RealSite {
    pub name: String,
    pub region: String,
    pub base_port: u16,
    /// Keystone's v3 auth URL, `http://127.0.0.1:BASE/v3`.
    pub keystone_url: String,
    pub urls: ServiceUrls,
    /// `admin` in project `admin` (role admin).
    pub admin: Credentials,
    /// `demo` in project `demo` (role member).
    pub demo: Credentials,
    /// `$REALSTACK_STATE/NAME`: configs, sqlite DBs, `logs/`, `pids/`, `clouds.yaml`.
    pub state_dir: PathBuf,
    /// How long `start-site.sh` took.
    pub startup: Duration,
    /// `REALSTACK_STATE` of this site (the run's temp dir).
    state_root: PathBuf,
    stopped: bool,
    keep: bool,
}

impl RealSite {
    fn new(spec: SiteSpec, state_root: &Path, keep: bool) -> Self {
        let b = spec.base_port;
        let url = |off: u16| format!("http://127.0.0.1:{}", b + off);
        RealSite {
            name: spec.name.into(),
            region: spec.region.into(),
            base_port: b,
            keystone_url: format!("{}/v3", url(0)),
            urls: ServiceUrls {
                services: drgw::sandbox::SimEndpoints {
                    identity: url(0),
                    compute: url(1),
                    image: url(2),
                    volume: url(3),
                    network: url(4),
                },
                placement: url(5),
            },
            admin: Credentials::new("admin", "secret", "admin"),
            demo: Credentials::new("demo", "demo", "demo"),
            state_dir: state_root.join(spec.name),
            startup: Duration::ZERO,
            state_root: state_root.to_path_buf(),
            stopped: true,
            keep,
        }
    }

    /// The site's log directory (one file per service, plus gunicorn and access logs).
    pub fn log_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }

    /// A clouds.yaml entry for `creds` directly at this site.
    pub fn cloud(&self, cloud_name: &str, creds: &Credentials) -> CloudEntry {
        let mut c = CloudEntry::new(
            cloud_name,
            &self.keystone_url,
            &creds.username,
            &creds.password,
            &creds.project_name,
            &self.region,
        );
        c.user_domain_name.clone_from(&creds.user_domain_name);
        c.project_domain_name.clone_from(&creds.project_domain_name);
        c
    }

    /// A clouds.yaml entry for `admin` directly at this site.
    pub fn admin_cloud(&self, cloud_name: &str) -> CloudEntry {
        self.cloud(cloud_name, &self.admin)
    }

    /// A clouds.yaml entry for `demo` (member of project `demo`) directly at this site.
    pub fn demo_cloud(&self, cloud_name: &str) -> CloudEntry {
        self.cloud(cloud_name, &self.demo)
    }

    /// The running service processes, from `pids/*.pid`: (service, pid).
    pub fn pids(&self) -> Vec<(String, u32)> {
        read_pids(&self.state_dir)
    }

    fn script(&self, name: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(scripts_dir().join(name))
            .env("REALSTACK_HOME", realstack_home())
            .env("REALSTACK_STATE", &self.state_root)
            .stdin(Stdio::null());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("OS_") {
                cmd.env_remove(k);
            }
        }
        cmd
    }

    /// Runs `start-site.sh NAME BASE` with fresh state; progress lines go to stderr prefixed
    /// with the site name.
    fn start(&mut self) -> anyhow::Result<()> {
        let t = Instant::now();
        register(&self.state_root, &self.name);
        self.stopped = false;
        let mut child = self
            .script("start-site.sh")
            .arg(&self.name)
            .arg(self.base_port.to_string())
            .env("REALSTACK_FRESH", "1")
            .env("REALSTACK_REGION", &self.region)
            .env(
                "REALSTACK_START_TIMEOUT",
                std::env::var("REALSTACK_START_TIMEOUT").unwrap_or_else(|_| "300".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run tests/realstack/start-site.sh")?;
        let script_pid = child.id();
        register_script(script_pid, true);
        let mut stdout = child.stdout.take().expect("piped");
        let out_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let mut log = String::new();
        for line in BufReader::new(child.stderr.take().expect("piped")).lines() {
            let line = line.unwrap_or_default();
            eprintln!("[{}] {line}", self.name);
            log.push_str(&line);
            log.push('\n');
        }
        let status = child.wait();
        register_script(script_pid, false);
        let status = status?;
        let _openrc = out_reader.join().unwrap_or_default();
        self.startup = t.elapsed();
        if !status.success() {
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "real site {} (port {}) did not start ({status}) after {:.1?}; logs in {}:\n{}",
                self.name,
                self.base_port,
                self.startup,
                self.log_dir().display(),
                tail.join("\n")
            );
        }
        Ok(())
    }

    /// Stops the site's processes by their recorded PIDs (`stop-site.sh`, TERM then KILL after
    /// 10 s) and purges its state unless `DRGW_REALSTACK_KEEP=1`. Idempotent. Fails if a
    /// recorded process is still alive afterwards.
    pub fn stop(&mut self) -> anyhow::Result<Duration> {
        if self.stopped {
            return Ok(Duration::ZERO);
        }
        self.stopped = true;
        let t = Instant::now();
        let before = self.pids();
        let mut cmd = self.script("stop-site.sh");
        cmd.arg(&self.name);
        if !self.keep {
            cmd.arg("--purge");
        }
        let out = cmd
            .output()
            .context("cannot run tests/realstack/stop-site.sh")?;
        unregister(&self.state_root, &self.name);
        let alive: Vec<String> = before
            .iter()
            .filter(|(_, pid)| Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(*pid))
            .map(|(s, pid)| format!("{s}={pid}"))
            .collect();
        if !out.status.success() || !alive.is_empty() {
            bail!(
                "stopping real site {} failed ({}; still alive: [{}]): {}",
                self.name,
                out.status,
                alive.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(t.elapsed())
    }
}

impl Drop for RealSite {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("[realsite] {e:#}");
        }
    }
}

/// The pair of real sites of one test run. Dropping it stops both (in parallel) and removes
/// the run's state directory.
#[derive(Debug)]
pub struct RealSites {
    pub primary: RealSite,
    pub recovery: RealSite,
    /// How long `install.sh` took (0 s when cached).
    pub venv_time: Duration,
    /// Wall time to start both sites (in parallel).
    pub start_time: Duration,
    state_root: Option<tempfile::TempDir>,
}

impl RealSites {
    /// Ensures the venv and starts [`PRIMARY`] and [`RECOVERY`] in parallel.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_specs(PRIMARY, RECOVERY)
    }

    /// Ensures the venv and starts two sites in parallel, fresh state in a new temp dir.
    pub fn start_specs(primary: SiteSpec, recovery: SiteSpec) -> anyhow::Result<Self> {
        if primary.name == recovery.name || primary.base_port.abs_diff(recovery.base_port) < 10 {
            bail!("sites need distinct names and base ports at least 10 apart: {primary:?} {recovery:?}");
        }
        let venv_time = ensure_venv()?;
        eprintln!(
            "[realsite] venv ready in {venv_time:.1?} ({})",
            venv_dir().display()
        );
        sweep_stale_runs();
        install_signal_guard();
        let keep = std::env::var("DRGW_REALSTACK_KEEP").is_ok_and(|v| v == "1");
        let dir = tempfile::Builder::new()
            .prefix(STATE_PREFIX)
            .tempdir()
            .context("cannot create a temp dir")?;
        std::fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string())?;
        let root = dir.path().to_path_buf();
        let mut sites = RealSites {
            primary: RealSite::new(primary, &root, keep),
            recovery: RealSite::new(recovery, &root, keep),
            venv_time,
            start_time: Duration::ZERO,
            state_root: Some(dir),
        };
        let t = Instant::now();
        let (a, b) = std::thread::scope(|s| {
            let p = &mut sites.primary;
            let r = &mut sites.recovery;
            let hp = s.spawn(move || p.start());
            let hr = s.spawn(move || r.start());
            let join = |h: std::thread::ScopedJoinHandle<'_, anyhow::Result<()>>| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("site start-up thread panicked")))
            };
            (join(hp), join(hr))
        });
        sites.start_time = t.elapsed();
        match (a, b) {
            (Ok(()), Ok(())) => {}
            (Err(e), Ok(())) | (Ok(()), Err(e)) => return Err(e),
            (Err(e1), Err(e2)) => return Err(anyhow!("{e1:#}\n{e2:#}")),
        }
        eprintln!(
            "[realsite] {} up in {:.1?}, {} up in {:.1?}; both in {:.1?} (state in {})",
            sites.primary.name,
            sites.primary.startup,
            sites.recovery.name,
            sites.recovery.startup,
            sites.start_time,
            root.display()
        );
        Ok(sites)
    }

    /// Both sites, primary first.
    pub fn sites(&self) -> [&RealSite; 2] {
        [&self.primary, &self.recovery]
    }

    /// A site by name.
    pub fn site(&self, name: &str) -> Option<&RealSite> {
        self.sites().into_iter().find(|s| s.name == name)
    }

    /// The run's `REALSTACK_STATE` (parent of both sites' state dirs).
    pub fn state_root(&self) -> &Path {
        self.primary.state_root.as_path()
    }

    /// clouds.yaml entries for direct access: `primary`, `recovery` (admin) and
    /// `primary-demo`, `recovery-demo` (user demo, project demo, role member).
    pub fn direct_clouds(&self) -> Vec<CloudEntry> {
        let mut v = Vec::new();
        for s in self.sites() {
            v.push(s.admin_cloud(&s.name));
            v.push(s.demo_cloud(&format!("{}-demo", s.name)));
        }
        v
    }

    /// Writes the sandbox's `drgw.toml` and `policy.toml` into `dir` for a gateway in front of
    /// these two sites, listening on `ports`; the recovery site's region is its own
    /// (`RegionTwo`). Returns the configuration's path.
    pub fn write_gateway_files(
        &self,
        dir: &Path,
        ports: drgw::sandbox::GatewayPorts,
    ) -> anyhow::Result<PathBuf> {
        let config = drgw::sandbox::write_sandbox_files(
            dir,
            ports,
            &self.primary.urls.services,
            &self.recovery.urls.services,
        )?;
        let text = std::fs::read_to_string(&config)?;
        let recovery_section = text
            .find("[sites.recovery]")
            .ok_or_else(|| anyhow!("no recovery site in {text}"))?;
        let (head, tail) = text.split_at(recovery_section);
        let tail = tail.replacen(
            "region = \"RegionOne\"",
            &format!("region = \"{}\"", self.recovery.region),
            1,
        );
        std::fs::write(&config, format!("{head}{tail}"))?;
        Ok(config)
    }

    /// Stops both sites in parallel (by PID) and removes the state; returns the wall time.
    pub fn stop(mut self) -> anyhow::Result<Duration> {
        self.stop_both()
    }

    fn stop_both(&mut self) -> anyhow::Result<Duration> {
        let t = Instant::now();
        let (a, b) = std::thread::scope(|s| {
            let p = &mut self.primary;
            let r = &mut self.recovery;
            let hp = s.spawn(move || p.stop());
            let hr = s.spawn(move || r.stop());
            (
                hp.join()
                    .unwrap_or_else(|_| Err(anyhow!("stop thread panicked"))),
                hr.join()
                    .unwrap_or_else(|_| Err(anyhow!("stop thread panicked"))),
            )
        });
        if let Some(dir) = self.state_root.take() {
            if self.primary.keep {
                let kept = dir.keep();
                eprintln!(
                    "[realsite] DRGW_REALSTACK_KEEP=1: state and logs kept in {}",
                    kept.display()
                );
            }
        }
        a?;
        b?;
        Ok(t.elapsed())
    }
}

impl Drop for RealSites {
    fn drop(&mut self) {
        if self.primary.stopped && self.recovery.stopped && self.state_root.is_none() {
            return;
        }
        match self.stop_both() {
            Ok(d) => eprintln!("[realsite] both sites stopped in {d:.1?}"),
            Err(e) => eprintln!("[realsite] {e:#}"),
        }
    }
}

/// (service, pid) of every `pids/*.pid` file in a site's state dir.
fn read_pids(state_dir: &Path) -> Vec<(String, u32)> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir(state_dir.join("pids")) else {
        return v;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "pid") {
            let svc = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if let Some(pid) = std::fs::read_to_string(&p)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                v.push((svc, pid));
            }
        }
    }
    v.sort();
    v
}

/// True if `pid` is a zombie (exited, not yet reaped by its parent): it holds no ports.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Sites started by this process and not yet stopped: (REALSTACK_STATE, name).
fn registry() -> &'static Mutex<Vec<(PathBuf, String)>> {
    static REG: OnceLock<Mutex<Vec<(PathBuf, String)>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(Vec::new()))
}

/// PIDs of running `start-site.sh` scripts (the signal guard ends them before stopping).
fn scripts() -> &'static Mutex<Vec<u32>> {
    static SCRIPTS: OnceLock<Mutex<Vec<u32>>> = OnceLock::new();
    SCRIPTS.get_or_init(|| Mutex::new(Vec::new()))
}

fn register_script(pid: u32, running: bool) {
    if let Ok(mut s) = scripts().lock() {
        s.retain(|p| *p != pid);
        if running {
            s.push(pid);
        }
    }
}

fn register(root: &Path, name: &str) {
    if let Ok(mut r) = registry().lock() {
        r.push((root.to_path_buf(), name.to_string()));
    }
}

fn unregister(root: &Path, name: &str) {
    if let Ok(mut r) = registry().lock() {
        r.retain(|(p, n)| !(p == root && n == name));
    }
}

/// Runs `stop-site.sh NAME --purge` for a site of `root` (signal guard, stale sweep).
fn stop_by_script(root: &Path, name: &str) {
    let _ = Command::new("bash")
        .arg(scripts_dir().join("stop-site.sh"))
        .arg(name)
        .arg("--purge")
        .env("REALSTACK_HOME", realstack_home())
        .env("REALSTACK_STATE", root)
        .stdin(Stdio::null())
        .status();
}

/// On SIGINT or SIGTERM, stops every site this process started (by PID), then exits 130.
fn install_signal_guard() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = std::thread::Builder::new()
            .name("realsite-signals".into())
            .spawn(|| {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    let Ok(mut term) =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                });
                // First end the start-up scripts still running (by PID; their own failure trap
                // stops what they started), so that no service starts after the stop below.
                let running: Vec<u32> = scripts().lock().map(|s| s.clone()).unwrap_or_default();
                for pid in &running {
                    let _ = Command::new("kill")
                        .arg("-TERM")
                        .arg(pid.to_string())
                        .status();
                }
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(60)
                    && running
                        .iter()
                        .any(|p| Path::new(&format!("/proc/{p}")).exists() && !is_zombie(*p))
                {
                    std::thread::sleep(Duration::from_millis(200));
                }
                let sites: Vec<_> = registry().lock().map(|r| r.clone()).unwrap_or_default();
                eprintln!(
                    "[realsite] interrupted: stopping {} real site(s)",
                    sites.len()
                );
                for (root, name) in &sites {
                    stop_by_script(root, name);
                }
                for (root, _) in &sites {
                    if std::env::var("DRGW_REALSTACK_KEEP").map_or(true, |v| v != "1") {
                        let _ = std::fs::remove_dir_all(root);
                    }
                }
                std::process::exit(130);
            });
    });
}

/// A run killed outright (SIGKILL, OOM) leaves its sites running: stop those whose owner
/// process is gone, by their recorded PIDs, but only PIDs that still run our venv's programs
/// (guards against PID reuse), then delete their state.
fn sweep_stale_runs() {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let venv = venv_dir().to_string_lossy().into_owned();
    for e in rd.flatten() {
        let dir = e.path();
        if !e.file_name().to_string_lossy().starts_with(STATE_PREFIX) {
            continue;
        }
        let Some(owner) = std::fs::read_to_string(dir.join(OWNER_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        let Ok(sites) = std::fs::read_dir(&dir) else {
            continue;
        };
        for site in sites
            .flatten()
            .filter(|s| s.path().join("site.env").is_file())
        {
            let name = site.file_name().to_string_lossy().into_owned();
            for (svc, pid) in read_pids(&site.path()) {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline);
                let ours = cmdline.contains(&venv)
                    || cmdline.contains("gunicorn")
                    || cmdline.contains("beam");
                if !ours {
                    let _ =
                        std::fs::remove_file(site.path().join("pids").join(format!("{svc}.pid")));
                }
            }
            eprintln!(
                "[realsite] stopping stale site {name} of dead run {} (pid {owner})",
                dir.display()
            );
            stop_by_script(&dir, &name);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_port_layout() {
        let s = RealSite::new(RECOVERY, Path::new("/tmp/x"), false);
        assert_eq!(s.keystone_url, "http://127.0.0.1:16000/v3");
        assert_eq!(s.urls.services.identity, "http://127.0.0.1:16000");
        assert_eq!(s.urls.services.compute, "http://127.0.0.1:16001");
        assert_eq!(s.urls.services.image, "http://127.0.0.1:16002");
        assert_eq!(s.urls.services.volume, "http://127.0.0.1:16003");
        assert_eq!(s.urls.services.network, "http://127.0.0.1:16004");
        assert_eq!(s.urls.placement, "http://127.0.0.1:16005");
        assert_eq!(s.state_dir, Path::new("/tmp/x/recovery"));
        assert_eq!(s.region, "RegionTwo");
    }

    #[test]
    fn scripts_are_part_of_the_project() {
        for f in [
            "install.sh",
            "common.sh",
            "start-site.sh",
            "stop-site.sh",
            "register.py",
            "constraints.txt",
        ] {
            assert!(
                scripts_dir().join(f).is_file(),
                "tests/realstack/{f} is missing"
            );
        }
    }
}
