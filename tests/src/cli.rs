//! The real `openstack` CLI and openstacksdk as test clients, and a reusable CLI scenario.
//!
//! [`OpenStackCli`] (alias [`Cli`]) runs the venv's `bin/openstack` (from
//! `tests/realstack/install.sh`; `DRGW_OPENSTACK_CLI` overrides the binary) with a clouds.yaml
//! written by [`write_clouds_yaml`], `OS_CLIENT_CONFIG_FILE` pointing at it and every inherited
//! `OS_*` variable cleared, so nothing from the developer's shell leaks in. Each call captures
//! stdout, stderr, exit code and wall time, and is killed (by its PID) after a timeout.
//! [`OpenStackCli::run_python`] runs a script with the venv's python (openstacksdk,
//! keystoneauth, requests) for bulk scenarios.
//!
//! [`scenario`] is the tenant-and-operator walk-through (identity, compute, network, volume,
//! image, server, then every delete) as named [`StepResult`]s, so one failure does not hide
//! the rest; it runs unchanged against a real site, the gateway or the simulator.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use rand::RngCore;
use serde_json::Value;

/// One cloud of a clouds.yaml: password auth against `auth_url` (Keystone v3, with `/v3`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudEntry {
    pub name: String,
    pub auth_url: String,
    pub username: String,
    pub password: String,
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
    pub region_name: String,
    /// Endpoint interface the clients pick from the catalog (`public`).
    pub interface: String,
}

impl CloudEntry {
    /// A cloud for `username`/`password` in `project` (domain `Default`, interface `public`).
    pub fn new(
        name: &str,
        auth_url: &str,
        username: &str,
        password: &str,
        project: &str,
        region: &str,
    ) -> Self {
        CloudEntry {
            name: name.into(),
            auth_url: auth_url.into(),
            username: username.into(),
            password: password.into(),
            project_name: project.into(),
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
            region_name: region.into(),
            interface: "public".into(),
        }
    }

    /// The same user and project at another auth URL (e.g. the gateway's identity listener).
    pub fn via(&self, name: &str, auth_url: &str) -> Self {
        CloudEntry {
            name: name.into(),
            auth_url: auth_url.into(),
            ..self.clone()
        }
    }
}

/// A YAML double-quoted scalar.
fn yaml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The text of a clouds.yaml with `clouds`.
pub fn clouds_yaml(clouds: &[CloudEntry]) -> String {
    let mut s = String::from("clouds:\n");
    for c in clouds {
        s.push_str(&format!(
            "  {}:\n    auth:\n      auth_url: {}\n      username: {}\n      password: {}\n      project_name: {}\n      \
             user_domain_name: {}\n      project_domain_name: {}\n    region_name: {}\n    identity_api_version: 3\n    \
             interface: {}\n",
            yaml_str(&c.name),
            yaml_str(&c.auth_url),
            yaml_str(&c.username),
            yaml_str(&c.password),
            yaml_str(&c.project_name),
            yaml_str(&c.user_domain_name),
            yaml_str(&c.project_domain_name),
            yaml_str(&c.region_name),
            yaml_str(&c.interface),
        ));
    }
    s
}

/// Writes a clouds.yaml with `clouds` to `path` (mode 0600: it holds passwords).
pub fn write_clouds_yaml(path: &Path, clouds: &[CloudEntry]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut names: Vec<&str> = clouds.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    ensure!(
        names.len() == clouds.len(),
        "duplicate cloud names in {:?}",
        clouds.iter().map(|c| &c.name).collect::<Vec<_>>()
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(clouds_yaml(clouds).as_bytes())?;
    Ok(())
}

/// What one command did.
#[derive(Clone, Debug)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub command: String,
    /// Exit code; `None` when killed by a signal (or by the timeout).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl CmdOutput {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Ok(self) on success, else an error with the exit code and the output.
    pub fn ok(self) -> anyhow::Result<Self> {
        if self.success() {
            return Ok(self);
        }
        bail!(
            "`{}` failed ({}) after {:.1?}: {}{}",
            self.command,
            if self.timed_out {
                "timed out".to_string()
            } else {
                format!("exit {:?}", self.code)
            },
            self.elapsed,
            self.stdout.trim(),
            tail(&self.stderr, 12)
        )
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.stdout)
            .with_context(|| format!("`{}` printed no JSON: {:?}", self.command, self.stdout))
    }
}

/// The last `n` lines of `s`, on a new line, or nothing.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    format!("\n{}", lines[lines.len().saturating_sub(n)..].join("\n"))
}

/// Runs `cmd`, feeding `stdin`, killing it (by its PID) after `timeout`.
fn run_captured(
    mut cmd: Command,
    label: String,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> anyhow::Result<CmdOutput> {
    let t = Instant::now();
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{label}`"))?;
    if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(data)
            .with_context(|| format!("cannot feed `{label}`"))?;
    }
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if t.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(CmdOutput {
        command: label,
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: t.elapsed(),
        timed_out,
    })
}

/// The real `openstack` CLI (and the venv's python) bound to one clouds.yaml.
#[derive(Debug)]
pub struct OpenStackCli {
    openstack: PathBuf,
    python: PathBuf,
    config: PathBuf,
    /// Per-command limit (default 180 s).
    pub timeout: Duration,
    calls: AtomicU64,
    nanos: AtomicU64,
}

/// Short name used by the scenarios.
pub type Cli = OpenStackCli;

impl OpenStackCli {
    /// The CLI of the realstack venv ([`crate::realsite::venv_dir`]; `DRGW_OPENSTACK_CLI`
    /// overrides the `openstack` binary) with the clouds.yaml at `clouds_yaml`. Fails if the
    /// CLI is not installed (run `tests/realstack/install.sh`).
    pub fn new(clouds_yaml: &Path) -> anyhow::Result<Self> {
        let venv = crate::realsite::venv_dir();
        let openstack = std::env::var_os("DRGW_OPENSTACK_CLI")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| venv.join("bin/openstack"));
        let python = openstack.with_file_name("python");
        Self::with_binaries(openstack, python, clouds_yaml)
    }

    /// A CLI from explicit `openstack` and `python` paths.
    pub fn with_binaries(
        openstack: PathBuf,
        python: PathBuf,
        clouds_yaml: &Path,
    ) -> anyhow::Result<Self> {
        ensure!(
            openstack.is_file(),
            "the openstack CLI is missing at {} (run tests/realstack/install.sh or set DRGW_OPENSTACK_CLI)",
            openstack.display()
        );
        Ok(OpenStackCli {
            openstack,
            python,
            config: clouds_yaml.to_path_buf(),
            timeout: Duration::from_secs(180),
            calls: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
        })
    }

    /// The clouds.yaml this CLI uses.
    pub fn clouds_yaml(&self) -> &Path {
        &self.config
    }

    /// Names of the clouds in the clouds.yaml.
    pub fn clouds(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.config).unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
            .map(|l| l.trim().trim_end_matches(':').trim_matches('"').to_string())
            .collect()
    }

    /// Number of commands run and their total wall time.
    pub fn stats(&self) -> (u64, Duration) {
        (
            self.calls.load(Ordering::Relaxed),
            Duration::from_nanos(self.nanos.load(Ordering::Relaxed)),
        )
    }

    /// `program` with a clean environment: no inherited `OS_*`, our clouds.yaml.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("OS_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("OS_CLIENT_CONFIG_FILE", &self.config)
            .env("PYTHONWARNINGS", "ignore");
        cmd
    }

    fn count(&self, out: &CmdOutput) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.nanos.fetch_add(
            u64::try_from(out.elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// `openstack ARGS` (no `--os-cloud`), whatever its exit code.
    pub fn exec_raw(&self, args: &[&str]) -> anyhow::Result<CmdOutput> {
        let mut cmd = self.command(&self.openstack);
        cmd.args(args);
        let out = run_captured(
            cmd,
            format!("openstack {}", args.join(" ")),
            None,
            self.timeout,
        )?;
        self.count(&out);
        Ok(out)
    }

    /// `openstack --os-cloud CLOUD ARGS`, whatever its exit code.
    pub fn exec(&self, cloud: &str, args: &[&str]) -> anyhow::Result<CmdOutput> {
        let mut all = vec!["--os-cloud", cloud];
        all.extend_from_slice(args);
        self.exec_raw(&all)
    }

    /// `openstack --os-cloud CLOUD ARGS`; fails unless it exits 0.
    pub fn run(&self, cloud: &str, args: &[&str]) -> anyhow::Result<CmdOutput> {
        self.exec(cloud, args)?.ok()
    }

    /// `openstack --os-cloud CLOUD ARGS -f json`, parsed; fails unless it exits 0.
    pub fn json(&self, cloud: &str, args: &[&str]) -> anyhow::Result<Value> {
        let mut all = args.to_vec();
        all.extend(["-f", "json"]);
        self.run(cloud, &all)?.json()
    }

    /// The venv's python.
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// Runs `script` (fed on stdin) with the venv's python (openstacksdk, keystoneauth1,
    /// requests available) and `OS_CLIENT_CONFIG_FILE` set, so
    /// `openstack.connect(cloud="NAME")` works; `env` is added. Returns the output whatever
    /// the exit code (use [`CmdOutput::ok`], [`CmdOutput::json`]).
    pub fn run_python(&self, script: &str, env: &[(&str, &str)]) -> anyhow::Result<CmdOutput> {
        ensure!(
            self.python.is_file(),
            "no python at {}",
            self.python.display()
        );
        let mut cmd = self.command(&self.python);
        cmd.arg("-");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let first = script
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        let out = run_captured(
            cmd,
            format!("python ({first} ...)"),
            Some(script.as_bytes()),
            self.timeout,
        )?;
        self.count(&out);
        Ok(out)
    }
}

/// The outcome of one named step.
#[derive(Clone, Debug)]
pub struct StepResult {
    pub name: String,
    pub ok: bool,
    /// The error on failure; a short note on success.
    pub detail: String,
    pub elapsed: Duration,
}

impl std::fmt::Display for StepResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        if self.ok {
            write!(f, "ok   {} ({secs:.1} s)", self.name)?;
            if !self.detail.is_empty() {
                write!(f, " {}", self.detail)?;
            }
            Ok(())
        } else {
            write!(f, "FAIL {} ({secs:.1} s): {}", self.name, self.detail)
        }
    }
}

/// (passed, failed) of `results`.
pub fn tally(results: &[StepResult]) -> (usize, usize) {
    let passed = results.iter().filter(|r| r.ok).count();
    (passed, results.len() - passed)
}

/// Collects named steps: each runs, is timed and recorded (an error or a panic is a failed
/// step, the next steps still run) and printed as soon as it ends.
#[derive(Debug)]
pub struct Steps {
    prefix: String,
    results: Vec<StepResult>,
}

impl Steps {
    /// Step names get `prefix: ` in front.
    pub fn new(prefix: &str) -> Self {
        Steps {
            prefix: prefix.into(),
            results: Vec::new(),
        }
    }

    /// Runs one step; returns its value on success.
    pub fn step<T>(&mut self, name: &str, f: impl FnOnce() -> anyhow::Result<T>) -> Option<T> {
        self.step_noted(name, |_| f())
    }

    /// Like [`Steps::step`]; `f` may set a note printed with the success line.
    pub fn step_noted<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut String) -> anyhow::Result<T>,
    ) -> Option<T> {
        let t = Instant::now();
        let mut note = String::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut note)));
        let (ok, detail, value) = match r {
            Ok(Ok(v)) => (true, note, Some(v)),
            Ok(Err(e)) => (false, format!("{e:#}"), None),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                (false, format!("panicked: {msg}"), None)
            }
        };
        let name = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}: {name}", self.prefix)
        };
        let res = StepResult {
            name,
            ok,
            detail,
            elapsed: t.elapsed(),
        };
        println!("{res}");
        self.results.push(res);
        value
    }

    /// Records an already computed result.
    pub fn push(&mut self, r: StepResult) {
        println!("{r}");
        self.results.push(r);
    }

    /// Results so far.
    pub fn results(&self) -> &[StepResult] {
        &self.results
    }

    /// All results.
    pub fn into_results(self) -> Vec<StepResult> {
        self.results
    }
}

/// The value of a previous step, or an error naming it (a step whose prerequisite failed
/// fails too, saying why).
pub fn need<'a, T>(v: &'a Option<T>, what: &str) -> anyhow::Result<&'a T> {
    v.as_ref()
        .ok_or_else(|| anyhow!("not run: {what} failed earlier"))
}

/// A string field of a JSON object, non-empty.
pub fn field<'a>(v: &'a Value, key: &str) -> anyhow::Result<&'a str> {
    v[key]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow!("no `{key}` in {v}"))
}

/// A real ed25519 public key (Nova parses it since microversion 2.92 requires one).
pub const TEST_PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN9TTXJ2HXmgVPL/ORH9xCWYWOHoxDzDr4an7URHVM6w drgw-test";

/// Prints, as JSON, which of the resources in `$IDS` (kind -> id, keypair by name) the cloud
/// `$CLOUD` still finds.
const GONE_SCRIPT: &str = r#"
import json, os, openstack
c = openstack.connect(cloud=os.environ["CLOUD"])
find = {
    "server": c.compute.find_server, "flavor": c.compute.find_flavor, "keypair": c.compute.find_keypair,
    "image": c.image.find_image, "volume": c.block_storage.find_volume, "volume_type": c.block_storage.find_type,
    "network": c.network.find_network, "subnet": c.network.find_subnet, "router": c.network.find_router,
    "security_group": c.network.find_security_group,
    "security_group_rule": lambda i: c.network.get_security_group_rule(i),
    "user": c.identity.find_user, "project": c.identity.find_project,
}
left = {}
for kind, ident in json.loads(os.environ["IDS"]).items():
    try:
        found = find[kind](ident)
    except openstack.exceptions.NotFoundException:
        found = None
    if found is not None:
        left[kind] = ident
print(json.dumps(left))
"#;

/// Polls `openstack CLOUD ARGS` until it fails (the resource is gone), up to `limit`.
fn wait_gone(cli: &Cli, cloud: &str, args: &[&str], limit: Duration) -> anyhow::Result<()> {
    let t = Instant::now();
    loop {
        let out = cli.exec(cloud, args)?;
        if !out.success() {
            ensure!(
                out.stderr.contains("No ")
                    || out.stderr.contains("not found")
                    || out.stderr.contains("404"),
                "`{}` failed, but not with not-found: {}",
                out.command,
                tail(&out.stderr, 5)
            );
            return Ok(());
        }
        ensure!(
            t.elapsed() < limit,
            "`{}` still finds it after {limit:?}",
            out.command
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The walk-through an operator (cloud `cloud`, admin) and a tenant do with the real CLI,
/// then every delete, as named steps. If the clouds.yaml also has `{cloud}-demo` (a member
/// of project `demo`), tenant steps run as that user too. Names get a random suffix, so the
/// scenario can run repeatedly against the same cloud. Needs admin rights in `cloud`
/// (flavor, volume type, project and user creation).
pub fn scenario(cli: &Cli, cloud: &str) -> Vec<StepResult> {
    let mut s = Steps::new(cloud);
    let sfx = format!("{:08x}", rand::random::<u32>());
    let n = |what: &str| format!("drgw-{what}-{sfx}");
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            s.step("scratch dir", || -> anyhow::Result<()> { Err(e.into()) });
            return s.into_results();
        }
    };
    let demo = format!("{cloud}-demo");
    let demo = cli.clouds().contains(&demo).then_some(demo);

    // --- identity -------------------------------------------------------------------
    s.step("token issue", || {
        let t = cli.json(cloud, &["token", "issue"])?;
        field(&t, "id")?;
        field(&t, "project_id")?;
        field(&t, "user_id")?;
        Ok(())
    });
    if let Some(demo) = &demo {
        s.step("token issue (demo user)", || {
            let t = cli.json(demo, &["token", "issue"])?;
            field(&t, "project_id").map(|_| ())
        });
    }
    s.step_noted("catalog list", |note| {
        let c = cli.json(cloud, &["catalog", "list"])?;
        let entries = c
            .as_array()
            .ok_or_else(|| anyhow!("catalog is not a list: {c}"))?;
        let types: Vec<&str> = entries.iter().filter_map(|e| e["Type"].as_str()).collect();
        for want in ["identity", "compute", "image", "network"] {
            ensure!(
                types.contains(&want),
                "no {want} in catalog types {types:?}"
            );
        }
        ensure!(
            types
                .iter()
                .any(|t| matches!(*t, "block-storage" | "volumev3" | "volume")),
            "no block-storage in catalog types {types:?}"
        );
        for e in entries {
            for ep in e["Endpoints"].as_array().into_iter().flatten() {
                let url = ep["url"].as_str().unwrap_or("");
                ensure!(
                    url.starts_with("http://") || url.starts_with("https://"),
                    "bad endpoint {ep} of {}",
                    e["Type"]
                );
            }
        }
        *note = format!("[{}]", types.join(" "));
        Ok(())
    });
    let project = s.step("project create", || {
        let p = cli.json(
            cloud,
            &[
                "project",
                "create",
                "--description",
                "drgw real-tier test",
                &n("proj"),
            ],
        )?;
        ensure!(p["name"] == n("proj").as_str(), "project create: {p}");
        Ok(field(&p, "id")?.to_string())
    });
    let user_pw = format!("pw-{sfx}");
    let user = s.step("user create", || {
        let pid = need(&project, "project create")?;
        let u = cli.json(
            cloud,
            &[
                "user",
                "create",
                "--project",
                pid,
                "--password",
                &user_pw,
                &n("user"),
            ],
        )?;
        ensure!(u["default_project_id"] == pid.as_str(), "user create: {u}");
        Ok(field(&u, "id")?.to_string())
    });
    s.step("role add", || {
        let pid = need(&project, "project create")?;
        let uid = need(&user, "user create")?;
        cli.run(
            cloud,
            &["role", "add", "--project", pid, "--user", uid, "member"],
        )
        .map(|_| ())
    });
    // The new user can only get a token scoped to the new project if the role was added.
    s.step("token issue (new user, role member in new project)", || {
        let pid = need(&project, "project create")?;
        need(&user, "user create")?;
        let args = [
            "--os-username",
            &n("user"),
            "--os-password",
            &user_pw,
            "--os-project-name",
            &n("proj"),
        ];
        let mut all = args.to_vec();
        all.extend(["token", "issue"]);
        let t = cli.json(cloud, &all)?;
        ensure!(
            t["project_id"] == pid.as_str(),
            "token of the new user: {t}"
        );
        Ok(())
    });

    // --- compute metadata ---------------------------------------------------------------
    let flavor = s.step("flavor create", || {
        let f = cli.json(
            cloud,
            &[
                "flavor",
                "create",
                "--vcpus",
                "1",
                "--ram",
                "512",
                "--disk",
                "1",
                &n("flavor"),
            ],
        )?;
        ensure!(
            f["vcpus"] == 1 && f["ram"] == 512 && f["disk"] == 1,
            "flavor create: {f}"
        );
        Ok(field(&f, "id")?.to_string())
    });
    let pubkey = dir.path().join("id.pub");
    let keypair = s.step("keypair create --public-key", || {
        std::fs::write(&pubkey, format!("{TEST_PUBLIC_KEY}\n"))?;
        let k = cli.json(
            cloud,
            &[
                "keypair",
                "create",
                "--public-key",
                &pubkey.to_string_lossy(),
                &n("key"),
            ],
        )?;
        ensure!(k["name"] == n("key").as_str(), "keypair create: {k}");
        ensure!(
            k["fingerprint"].as_str().is_some_and(|f| f.contains(':')),
            "no fingerprint: {k}"
        );
        Ok(n("key"))
    });

    // --- network --------------------------------------------------------------------
    let network = s.step("network create", || {
        let v = cli.json(cloud, &["network", "create", &n("net")])?;
        ensure!(v["name"] == n("net").as_str(), "network create: {v}");
        Ok(field(&v, "id")?.to_string())
    });
    let subnet = s.step("subnet create", || {
        let net = need(&network, "network create")?;
        let v = cli.json(
            cloud,
            &[
                "subnet",
                "create",
                "--network",
                net,
                "--subnet-range",
                "10.77.0.0/24",
                &n("subnet"),
            ],
        )?;
        ensure!(
            v["network_id"] == net.as_str() && v["cidr"] == "10.77.0.0/24",
            "subnet create: {v}"
        );
        Ok(field(&v, "id")?.to_string())
    });
    let router = s.step("router create", || {
        let v = cli.json(cloud, &["router", "create", &n("router")])?;
        ensure!(v["name"] == n("router").as_str(), "router create: {v}");
        Ok(field(&v, "id")?.to_string())
    });
    let attached = s.step("router add subnet", || {
        let r = need(&router, "router create")?;
        let sn = need(&subnet, "subnet create")?;
        // (the remove step below fails if the interface is not there)
        cli.run(cloud, &["router", "add", "subnet", r, sn])
            .map(|_| ())
    });
    let secgroup = s.step("security group create", || {
        let v = cli.json(
            cloud,
            &[
                "security",
                "group",
                "create",
                "--description",
                "drgw test",
                &n("sg"),
            ],
        )?;
        ensure!(v["name"] == n("sg").as_str(), "security group create: {v}");
        Ok(field(&v, "id")?.to_string())
    });
    let rule = s.step("security group rule create", || {
        let sg = need(&secgroup, "security group create")?;
        let v = cli.json(
            cloud,
            &[
                "security",
                "group",
                "rule",
                "create",
                "--protocol",
                "tcp",
                "--dst-port",
                "22",
                "--remote-ip",
                "0.0.0.0/0",
                sg,
            ],
        )?;
        ensure!(
            v["port_range_min"] == 22 && v["security_group_id"] == sg.as_str(),
            "rule create: {v}"
        );
        Ok(field(&v, "id")?.to_string())
    });
    if let Some(demo) = &demo {
        s.step("network create + delete (demo user)", || {
            let v = cli.json(demo, &["network", "create", &n("demo-net")])?;
            let id = field(&v, "id")?;
            cli.run(demo, &["network", "delete", id])?;
            Ok(())
        });
    }

    // --- volume ---------------------------------------------------------------------
    let vtype = s.step("volume type create", || {
        let v = cli.json(cloud, &["volume", "type", "create", &n("vtype")])?;
        ensure!(v["name"] == n("vtype").as_str(), "volume type create: {v}");
        Ok(field(&v, "id")?.to_string())
    });
    let volume = s.step_noted("volume create", |note| {
        need(&vtype, "volume type create")?;
        let v = cli.json(
            cloud,
            &[
                "volume",
                "create",
                "--size",
                "1",
                "--type",
                &n("vtype"),
                &n("vol"),
            ],
        )?;
        ensure!(
            v["size"] == 1 && v["type"] == n("vtype").as_str(),
            "volume create: {v}"
        );
        *note = format!("status {}", v["status"]);
        Ok(field(&v, "id")?.to_string())
    });

    // --- image ----------------------------------------------------------------------
    let src = dir.path().join("image.raw");
    let image = s.step_noted("image create --file", |note| {
        let mut data = vec![0u8; 4 << 20];
        rand::thread_rng().fill_bytes(&mut data);
        std::fs::write(&src, &data)?;
        let src_s = src.to_string_lossy();
        let v = cli.json(
            cloud,
            &[
                "image",
                "create",
                "--disk-format",
                "raw",
                "--container-format",
                "bare",
                "--file",
                &src_s,
                &n("image"),
            ],
        )?;
        ensure!(
            v["status"] == "active" && v["size"] == data.len(),
            "image create: {v}"
        );
        *note = format!("{} bytes", data.len());
        Ok(field(&v, "id")?.to_string())
    });
    s.step("image save (bytes equal)", || {
        let id = need(&image, "image create")?;
        let saved = dir.path().join("saved.raw");
        cli.run(
            cloud,
            &["image", "save", "--file", &saved.to_string_lossy(), id],
        )?;
        let (a, b) = (std::fs::read(&src)?, std::fs::read(&saved)?);
        ensure!(
            a == b,
            "image save returned {} bytes that differ from the {} uploaded",
            b.len(),
            a.len()
        );
        Ok(())
    });

    // --- server ---------------------------------------------------------------------
    let server = s.step_noted("server create", |note| {
        let img = need(&image, "image create")?;
        let fl = need(&flavor, "flavor create")?;
        let key = need(&keypair, "keypair create")?;
        let v = cli.json(
            cloud,
            &[
                "server",
                "create",
                "--flavor",
                fl,
                "--image",
                img,
                "--key-name",
                key,
                "--nic",
                "none",
                "--property",
                "drgw=test",
                &n("server"),
            ],
        )?;
        let status = v["status"].as_str().unwrap_or("");
        ensure!(matches!(status, "BUILD" | "ACTIVE"), "server create: {v}");
        *note = format!("status {status}");
        Ok(field(&v, "id")?.to_string())
    });
    s.step("server show", || {
        let id = need(&server, "server create")?;
        let v = cli.json(cloud, &["server", "show", id])?;
        ensure!(
            v["name"] == n("server").as_str() && v["key_name"] == n("key").as_str(),
            "server show: {v}"
        );
        ensure!(
            matches!(v["status"].as_str(), Some("BUILD" | "ACTIVE")),
            "server status: {v}"
        );
        ensure!(v.to_string().contains("drgw"), "no property in {v}");
        Ok(())
    });

    // --- deletes --------------------------------------------------------------------
    s.step("server delete", || {
        let id = need(&server, "server create")?;
        // --wait polls until the server is gone (404)
        cli.run(cloud, &["server", "delete", "--wait", id])
            .map(|_| ())
    });
    s.step("image delete", || {
        let id = need(&image, "image create")?;
        cli.run(cloud, &["image", "delete", id]).map(|_| ())
    });
    s.step("volume delete", || {
        let id = need(&volume, "volume create")?;
        cli.run(cloud, &["volume", "delete", id])?;
        // asynchronous; the volume type can only go once the volume has
        wait_gone(cli, cloud, &["volume", "show", id], Duration::from_secs(60))
    });
    s.step("volume type delete", || {
        let id = need(&vtype, "volume type create")?;
        cli.run(cloud, &["volume", "type", "delete", id])
            .map(|_| ())
    });
    s.step("keypair delete", || {
        let k = need(&keypair, "keypair create")?;
        cli.run(cloud, &["keypair", "delete", k]).map(|_| ())
    });
    s.step("flavor delete", || {
        let id = need(&flavor, "flavor create")?;
        cli.run(cloud, &["flavor", "delete", id]).map(|_| ())
    });
    s.step("security group rule delete", || {
        let id = need(&rule, "security group rule create")?;
        cli.run(cloud, &["security", "group", "rule", "delete", id])
            .map(|_| ())
    });
    s.step("security group delete", || {
        let id = need(&secgroup, "security group create")?;
        cli.run(cloud, &["security", "group", "delete", id])
            .map(|_| ())
    });
    s.step("router remove subnet + router delete", || {
        let r = need(&router, "router create")?;
        if attached.is_some() {
            cli.run(
                cloud,
                &[
                    "router",
                    "remove",
                    "subnet",
                    r,
                    need(&subnet, "subnet create")?,
                ],
            )?;
        }
        cli.run(cloud, &["router", "delete", r]).map(|_| ())
    });
    s.step("subnet delete", || {
        let id = need(&subnet, "subnet create")?;
        cli.run(cloud, &["subnet", "delete", id]).map(|_| ())
    });
    s.step("network delete", || {
        let id = need(&network, "network create")?;
        cli.run(cloud, &["network", "delete", id]).map(|_| ())
    });
    s.step("user delete", || {
        let id = need(&user, "user create")?;
        cli.run(cloud, &["user", "delete", id]).map(|_| ())
    });
    s.step("project delete", || {
        let id = need(&project, "project create")?;
        cli.run(cloud, &["project", "delete", id]).map(|_| ())
    });
    s.step_noted("everything created is gone (openstacksdk)", |note| {
        let mut ids = serde_json::Map::new();
        let created = [
            ("server", &server),
            ("image", &image),
            ("volume", &volume),
            ("volume_type", &vtype),
            ("keypair", &keypair),
            ("flavor", &flavor),
            ("security_group_rule", &rule),
            ("security_group", &secgroup),
            ("router", &router),
            ("subnet", &subnet),
            ("network", &network),
            ("user", &user),
            ("project", &project),
        ];
        for (kind, id) in created {
            if let Some(id) = id {
                ids.insert(kind.into(), Value::from(id.as_str()));
            }
        }
        let left = cli.run_python(
            GONE_SCRIPT,
            &[
                ("CLOUD", cloud),
                ("IDS", &Value::Object(ids.clone()).to_string()),
            ],
        )?;
        let left = left.ok()?.json()?;
        ensure!(
            left.as_object().is_some_and(|m| m.is_empty()),
            "still there: {left}"
        );
        *note = format!("{} checked", ids.len());
        Ok(())
    });
    s.into_results()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clouds_yaml_quotes_values() {
        let c = CloudEntry::new(
            "primary",
            "http://127.0.0.1:15000/v3",
            "admin",
            "se\"cret",
            "admin",
            "RegionOne",
        );
        let text = clouds_yaml(&[c.clone(), c.via("drgw-admin", "http://127.0.0.1:9000/v3")]);
        assert!(text.starts_with(
            "clouds:\n  \"primary\":\n    auth:\n      auth_url: \"http://127.0.0.1:15000/v3\"\n"
        ));
        assert!(text.contains("password: \"se\\\"cret\""));
        assert!(text.contains("  \"drgw-admin\":\n"));
        assert!(text.contains("    region_name: \"RegionOne\"\n    identity_api_version: 3\n"));
    }

    #[test]
    fn clouds_lists_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clouds.yaml");
        let a = CloudEntry::new(
            "primary",
            "http://x/v3",
            "admin",
            "secret",
            "admin",
            "RegionOne",
        );
        write_clouds_yaml(&path, &[a.clone(), a.via("primary-demo", "http://x/v3")]).unwrap();
        assert!(write_clouds_yaml(&path, &[a.clone(), a.clone()]).is_err());
        write_clouds_yaml(&path, &[a.clone(), a.via("primary-demo", "http://x/v3")]).unwrap();
        let cli =
            OpenStackCli::with_binaries(PathBuf::from("/bin/sh"), PathBuf::from("/bin/sh"), &path)
                .unwrap();
        assert_eq!(cli.clouds(), ["primary", "primary-demo"]);
    }

    #[test]
    fn commands_are_captured_and_timed_out() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = run_captured(cmd, "sh".into(), None, Duration::from_secs(10)).unwrap();
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (Some(3), "out\n", "err\n")
        );
        assert!(out.ok().is_err());
        let mut cmd = Command::new("sleep");
        cmd.arg("10");
        let out = run_captured(cmd, "sleep".into(), None, Duration::from_millis(200)).unwrap();
        assert!(out.timed_out && !out.success());
    }

    #[test]
    fn steps_record_failures_and_panics() {
        let mut s = Steps::new("t");
        assert_eq!(s.step("a", || Ok(1)), Some(1));
        assert_eq!(
            s.step("b", || -> anyhow::Result<()> { bail!("boom") }),
            None
        );
        assert_eq!(
            s.step("c", || -> anyhow::Result<()> { panic!("kaboom") }),
            None
        );
        let r = s.into_results();
        assert_eq!(tally(&r), (1, 2));
        assert_eq!(r[1].name, "t: b");
        assert!(r[2].detail.contains("kaboom"));
    }
}
