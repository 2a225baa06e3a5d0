//! `TestBed`: two simulated sites and the gateway in front of them, all in this process,
//! on free 127.0.0.1 ports, with a `clouds.yaml` for the real `openstack` CLI.
//!
//! The gateway runs from the same configuration text that `drgw sandbox` writes, so the
//! integration tests exercise exactly what a newcomer starts.

use std::path::PathBuf;

use drgw::config::Config;
use drgw::sandbox::{self, GatewayPorts, SimEndpoints};
use drgw::server::BoundGateway;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::sim::client::{SimClient, SimResponse};
use crate::sim::{Site, SiteConfig, SiteHandle};

/// A free port on 127.0.0.1 for the caller to bind: below the kernel's ephemeral range (so
/// that no outgoing connection takes it in between), checked by binding it, and never
/// handed out twice in one process.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
}

/// The `drgw` binary of this build (`DRGW_BIN` overrides): test executables live in
/// `<target>/<profile>/deps/`, binaries one level up.
pub fn drgw_binary() -> PathBuf {
    if let Ok(p) = std::env::var("DRGW_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("drgw")
}

/// Creates a project and a user holding the `member` role in it at a site, as its operator
/// would (directly, with the bootstrap admin): a tenant no sandbox policy rule names.
pub async fn create_tenant(
    site: &SiteHandle,
    project: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<()> {
    let mut admin = SimClient::new();
    admin
        .login(&site.endpoints().auth_url(), "admin", "secret", "admin")
        .await?;
    let base = site.endpoints().identity;
    let created = |r: &SimResponse, what: &str| -> anyhow::Result<String> {
        anyhow::ensure!(r.status.is_success(), "{what}: {} {}", r.status, r.json);
        r.json[what]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("{what}: no id in {}", r.json))
    };
    let r = admin
        .post(
            &format!("{base}/v3/projects"),
            &serde_json::json!({"project": {"name": project, "domain_id": "default"}}),
        )
        .await?;
    let pid = created(&r, "project")?;
    let r = admin
        .post(
            &format!("{base}/v3/users"),
            &serde_json::json!({"user": {"name": user, "domain_id": "default",
                "password": password, "default_project_id": pid}}),
        )
        .await?;
    let uid = created(&r, "user")?;
    let roles = admin.get(&format!("{base}/v3/roles?name=member")).await?;
    let role = roles.json["roles"][0]["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no member role: {}", roles.json))?;
    let r = admin
        .put(
            &format!("{base}/v3/projects/{pid}/users/{uid}/roles/{role}"),
            &serde_json::Value::Null,
        )
        .await?;
    anyhow::ensure!(r.status.is_success(), "role grant: {}", r.status);
    Ok(())
}

/// The lines of a gateway's access log (none if it does not exist yet), parsed; the test
/// beds' gateways write one (`access.log` beside their configuration).
pub fn access_log_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Gateway ports, all free.
pub fn free_ports() -> GatewayPorts {
    GatewayPorts {
        identity: free_port(),
        compute: free_port(),
        image: free_port(),
        volume: free_port(),
        network: free_port(),
        admin: free_port(),
    }
}

/// `drgw serve` as a child process (for crash and memory tests). Its configuration and
/// state directory live in `dir`, which outlives a crash, so that [`restart`] serves the
/// same state again.
///
/// [`restart`]: GatewayProcess::restart
pub struct GatewayProcess {
    child: tokio::process::Child,
    bin: PathBuf,
    pub ports: GatewayPorts,
    pub config_path: PathBuf,
    pub dir: tempfile::TempDir,
    /// Where the process's standard error goes, when not to the test's own.
    stderr_file: Option<PathBuf>,
}

/// The log filter of a gateway whose standard error goes to a file: warnings, and the admin
/// API's audit lines.
const LOGGED_FILTER: &str = "warn,drgw::admin=info";

impl GatewayProcess {
    /// Writes a sandbox-style configuration for the two sites and starts `drgw serve` on
    /// it, waiting until the identity listener accepts connections.
    pub async fn start(
        bin: &std::path::Path,
        primary: &SimEndpoints,
        recovery: &SimEndpoints,
        _hint: u16,
    ) -> anyhow::Result<GatewayProcess> {
        GatewayProcess::spawn(bin, primary, recovery, false).await
    }

    /// [`GatewayProcess::start`], with standard error in `dir/stderr.log` when
    /// `stderr_to_file`.
    async fn spawn(
        bin: &std::path::Path,
        primary: &SimEndpoints,
        recovery: &SimEndpoints,
        stderr_to_file: bool,
    ) -> anyhow::Result<GatewayProcess> {
        anyhow::ensure!(
            bin.is_file(),
            "{} not built (cargo build --workspace)",
            bin.display()
        );
        let dir = tempfile::tempdir()?;
        let ports = free_ports();
        let config_path = sandbox::write_sandbox_files(dir.path(), ports, primary, recovery)?;
        let stderr_file = stderr_to_file.then(|| dir.path().join("stderr.log"));
        let child = spawn_serve(bin, &config_path, ports, stderr_file.as_deref()).await?;
        Ok(GatewayProcess {
            child,
            bin: bin.to_path_buf(),
            ports,
            config_path,
            dir,
            stderr_file,
        })
    }

    /// [`GatewayProcess::in_front_of`], with the process's standard error (warnings and the
    /// admin audit lines, `drgw::admin` at `info`) in a file: see [`GatewayProcess::stderr`].
    pub async fn in_front_of_logging(
        primary: &SiteHandle,
        recovery: &SiteHandle,
    ) -> anyhow::Result<GatewayProcess> {
        GatewayProcess::spawn(
            &drgw_binary(),
            &primary.endpoints().services(),
            &recovery.endpoints().services(),
            true,
        )
        .await
    }

    /// What the process wrote to standard error, for one started by
    /// [`GatewayProcess::in_front_of_logging`] (empty otherwise).
    pub fn stderr(&self) -> String {
        self.stderr_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// [`GatewayProcess::start`] with the built `drgw` in front of two simulated sites.
    pub async fn in_front_of(
        primary: &SiteHandle,
        recovery: &SiteHandle,
    ) -> anyhow::Result<GatewayProcess> {
        GatewayProcess::start(
            &drgw_binary(),
            &primary.endpoints().services(),
            &recovery.endpoints().services(),
            0,
        )
        .await
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// The public base URL of a service.
    pub fn url(&self, service: &str) -> String {
        format!("http://127.0.0.1:{}", port_of(&self.ports, service))
    }

    /// The admin bearer token (written into the state directory on first start).
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("state").join("admin.token"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// SIGTERM, then wait for the exit.
    pub async fn stop(mut self) -> Option<std::process::ExitStatus> {
        let pid = self.pid().to_string();
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await;
        tokio::time::timeout(std::time::Duration::from_secs(40), self.child.wait())
            .await
            .ok()?
            .ok()
    }

    /// SIGKILL (a crash); the configuration and state directory stay.
    pub async fn crash(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Starts `drgw serve` again on the same configuration, ports and state directory
    /// (after [`crash`](GatewayProcess::crash) or an exit).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let _ = self.child.kill().await;
        self.child = spawn_serve(
            &self.bin,
            &self.config_path,
            self.ports,
            self.stderr_file.as_deref(),
        )
        .await?;
        Ok(())
    }

    /// SIGKILL (a crash), and removes the directory.
    pub async fn kill(mut self) {
        self.crash().await;
    }
}

/// Spawns `drgw serve --config <path>` and waits until its identity listener accepts.
/// Standard error goes to the test's own, or appended to `stderr_file`.
async fn spawn_serve(
    bin: &std::path::Path,
    config_path: &std::path::Path,
    ports: GatewayPorts,
    stderr_file: Option<&std::path::Path>,
) -> anyhow::Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new(bin);
    command
        .args(["serve", "--config"])
        .arg(config_path)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    if let Some(path) = stderr_file {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        command.env("RUST_LOG", LOGGED_FILTER).stderr(file);
    }
    let mut child = command.spawn()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", ports.identity))
        .await
        .is_err()
    {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("drgw serve exited before listening: {status}");
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "drgw serve did not listen within 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(child)
}

fn port_of(ports: &GatewayPorts, service: &str) -> u16 {
    match service {
        "identity" => ports.identity,
        "compute" => ports.compute,
        "image" => ports.image,
        "volume" => ports.volume,
        "network" => ports.network,
        "admin" => ports.admin,
        _ => 0,
    }
}

/// A gateway running in this process.
pub struct RunningGateway {
    pub config: Config,
    pub config_path: PathBuf,
    pub gateway: std::sync::Arc<drgw::gateway::Gateway>,
    /// The failover controller its listeners and admin API use.
    pub failover: std::sync::Arc<drgw::failover::FailoverController>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningGateway {
    /// The admin bearer token, from the file `admin.token_file` names.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(&self.config.admin.token_file)
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Binds and serves the configuration at `path`.
    pub async fn start(path: PathBuf) -> anyhow::Result<RunningGateway> {
        let config = Config::load(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let bound = BoundGateway::bind(config.clone()).await?;
        let gateway = bound.gateway();
        let failover = bound.failover();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(bound.serve(async move {
            let _ = rx.await;
        }));
        Ok(RunningGateway {
            config,
            config_path: path,
            gateway,
            failover,
            stop: Some(tx),
            task: Some(task),
        })
    }

    /// Stops accepting and drains in-flight requests.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Two simulated sites and the gateway.
pub struct TestBed {
    pub primary: SiteHandle,
    pub recovery: SiteHandle,
    pub gateway: RunningGateway,
    pub ports: GatewayPorts,
    pub clouds_yaml: PathBuf,
    pub dir: tempfile::TempDir,
}

/// A gateway configuration text with the primary site's `service` (its key in
/// `[sites.primary]`, e.g. `image`) at `url`: a scripted upstream in the simulator's place.
pub fn with_primary_service(config: &str, service: &str, url: &str) -> String {
    let (primary, rest) = config
        .split_once("[sites.recovery]")
        .expect("a configuration with two sites");
    let key = format!("{service} = ");
    let primary: String = primary
        .lines()
        .map(|l| {
            if l.starts_with(&key) {
                format!("{key}\"{url}\"\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    format!("{primary}[sites.recovery]{rest}")
}

/// A gateway configuration text with `settings` (TOML lines, each ending in a newline) in
/// its `[upstream]` table, which is added when it has none.
pub fn with_upstream_settings(config: &str, settings: &str) -> String {
    if config.contains("[upstream]\n") {
        config.replacen("[upstream]\n", &format!("[upstream]\n{settings}"), 1)
    } else {
        format!("{config}\n[upstream]\n{settings}")
    }
}

/// A gateway configuration text with `settings` (TOML lines, each ending in a newline)
/// added to its `[gateway]` table.
pub fn with_gateway_settings(config: &str, settings: &str) -> String {
    assert!(
        config.contains("[gateway]\n"),
        "no [gateway] table: {config}"
    );
    config.replacen("[gateway]\n", &format!("[gateway]\n{settings}"), 1)
}

impl TestBed {
    pub async fn start() -> anyhow::Result<TestBed> {
        TestBed::start_with(|config| config).await
    }

    /// Like [`TestBed::start`], with `settings` (TOML lines, each ending in a newline)
    /// added to the gateway's `[gateway]` table.
    pub async fn start_with_gateway_settings(settings: &str) -> anyhow::Result<TestBed> {
        TestBed::start_with(|config| with_gateway_settings(&config, settings)).await
    }

    /// Like [`TestBed::start`], with the gateway's configuration text passed through `edit`
    /// first (e.g. to set `catalog_mode`).
    pub async fn start_with(edit: impl FnOnce(String) -> String) -> anyhow::Result<TestBed> {
        TestBed::start_with_sites(
            SiteConfig::named("primary"),
            SiteConfig::named("recovery"),
            edit,
        )
        .await
    }

    /// Like [`TestBed::start_with`], the simulated sites started with `primary` and
    /// `recovery`.
    pub async fn start_with_sites(
        primary: SiteConfig,
        recovery: SiteConfig,
        edit: impl FnOnce(String) -> String,
    ) -> anyhow::Result<TestBed> {
        let dir = tempfile::tempdir()?;
        let primary = Site::start(primary).await?;
        let recovery = Site::start(recovery).await?;
        let ports = free_ports();
        let config_path = sandbox::write_sandbox_files(
            dir.path(),
            ports,
            &primary.endpoints().services(),
            &recovery.endpoints().services(),
        )?;
        let text = std::fs::read_to_string(&config_path)?;
        std::fs::write(&config_path, edit(text))?;
        let clouds_yaml = dir.path().join("clouds.yaml");
        std::fs::write(
            &clouds_yaml,
            sandbox::clouds_yaml(
                &format!("http://127.0.0.1:{}", ports.identity),
                &primary.endpoints().identity,
                &recovery.endpoints().identity,
            ),
        )?;
        let gateway = RunningGateway::start(config_path).await?;
        sandbox::create_volume_types(&gateway.gateway).await?;
        Ok(TestBed {
            primary,
            recovery,
            gateway,
            ports,
            clouds_yaml,
            dir,
        })
    }

    /// The gateway's public base URL of a service (`identity`, `compute`, `image`,
    /// `volume`, `network`).
    pub fn gateway_url(&self, service: &str) -> String {
        format!("http://127.0.0.1:{}", port_of(&self.ports, service))
    }

    /// Logs `user` in to `project` through the gateway's Keystone; the client and the
    /// token body.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        project: &str,
    ) -> anyhow::Result<(crate::sim::client::SimClient, serde_json::Value)> {
        let mut c = crate::sim::client::SimClient::new();
        let resp = c
            .login(
                &format!("{}/v3", self.gateway_url("identity")),
                user,
                password,
                project,
            )
            .await?;
        Ok((c, resp.json))
    }

    /// A client logged in as `admin` directly at the recovery site (not through the gateway).
    pub async fn recovery_admin(&self) -> anyhow::Result<crate::sim::client::SimClient> {
        site_admin(&self.recovery).await
    }

    /// A client logged in as `admin` directly at the primary site (not through the gateway).
    pub async fn primary_admin(&self) -> anyhow::Result<crate::sim::client::SimClient> {
        site_admin(&self.primary).await
    }

    /// The ID mapping of a primary resource once the mirror has recorded it, waiting up to
    /// `limit` (panics after).
    pub async fn mapped(
        &self,
        service: &str,
        resource_type: &str,
        primary_id: &str,
        limit: std::time::Duration,
    ) -> drgw::state::IdMapping {
        let start = std::time::Instant::now();
        loop {
            let found = self
                .gateway
                .gateway
                .mirror
                .idmap_lookup(service, resource_type, primary_id)
                .await
                .expect("id map");
            if let Some(m) = found {
                return m;
            }
            assert!(
                start.elapsed() < limit,
                "{resource_type} {primary_id} never mirrored within {limit:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The value of one series (its name and labels as exposed, e.g.
    /// `drgw_worker_connections_total{worker="1"}`) in the admin listener's `/metrics`;
    /// `None` when the series is absent.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let bearer = format!("Bearer {}", self.admin_token());
        let resp = SimClient::new()
            .send(
                http::Method::GET,
                &format!("http://127.0.0.1:{}/metrics", self.ports.admin),
                None,
                &[("authorization", &bearer)],
            )
            .await
            .expect("the admin listener answers");
        assert_eq!(resp.status, 200, "/metrics");
        String::from_utf8_lossy(&resp.bytes).lines().find_map(|l| {
            let value = l.strip_prefix(series)?.trim();
            Some(value.parse().expect("a sample value"))
        })
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> String {
        self.gateway.admin_token()
    }

    pub async fn stop(mut self) {
        self.gateway.stop().await;
        self.primary.shutdown().await;
        self.recovery.shutdown().await;
    }
}

/// A client logged in as the bootstrap `admin` directly at `site`.
async fn site_admin(site: &SiteHandle) -> anyhow::Result<crate::sim::client::SimClient> {
    let mut c = crate::sim::client::SimClient::new();
    c.login(&site.endpoints().auth_url(), "admin", "secret", "admin")
        .await?;
    Ok(c)
}

/// A listener that stands for a host the gateway must never reach; counts connections.
pub async fn forbidden_host() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = reached.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(sock);
        }
    });
    (port, reached)
}
