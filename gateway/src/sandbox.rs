//! `drgw sandbox`: two simulated OpenStack sites and the gateway in front of them, on
//! 127.0.0.1, with a ready `clouds.yaml`.
//!
//! The simulator is a test-bed program (`drgw-sim`, built from the `drgw-tests` crate), not
//! part of the gateway: the sandbox runs it as a child process, found next to the `drgw`
//! executable or through `DRGW_SIM_BIN`, and stops it on exit.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::config::Config;
use crate::server::BoundGateway;

/// Base URLs of one simulated site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEndpoints {
    pub identity: String,
    pub compute: String,
    pub image: String,
    pub volume: String,
    pub network: String,
}

/// Finds the `drgw-sim` binary.
pub fn sim_binary() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("DRGW_SIM_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("cannot find the drgw executable")?;
    let mut dirs = Vec::new();
    if let Some(dir) = exe.parent() {
        dirs.push(dir.to_path_buf());
        // `cargo test` puts test executables in deps/, binaries one level up.
        if let Some(parent) = dir.parent() {
            dirs.push(parent.to_path_buf());
        }
    }
    for dir in dirs {
        let candidate = dir.join("drgw-sim");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("drgw-sim not found next to {} (build it with `cargo build --workspace`, or set DRGW_SIM_BIN)", exe.display())
}

fn endpoint(v: &Value, keys: &[&str]) -> Option<String> {
    let holders = [v.get("endpoints"), Some(v)];
    holders
        .into_iter()
        .flatten()
        .find_map(|h| keys.iter().find_map(|k| h.get(*k).and_then(Value::as_str)))
        .map(|s| s.trim_end_matches('/').to_string())
}

/// Parses the JSON line `drgw-sim` prints for a started site.
pub fn parse_sim_line(line: &str) -> anyhow::Result<SimEndpoints> {
    let v: Value =
        serde_json::from_str(line).with_context(|| format!("drgw-sim printed `{line}`"))?;
    let get = |keys: &[&str]| {
        endpoint(&v, keys).ok_or_else(|| anyhow!("drgw-sim line lacks {}: {line}", keys[0]))
    };
    Ok(SimEndpoints {
        identity: get(&["identity"])?,
        compute: get(&["compute"])?,
        image: get(&["image"])?,
        volume: get(&["volume", "block_storage", "block-storage", "volumev3"])?,
        network: get(&["network"])?,
    })
}

/// Starts one simulated site as a child process and waits for its endpoints.
pub async fn spawn_sim(
    name: &str,
    region: &str,
    base_port: u16,
) -> anyhow::Result<(Child, SimEndpoints)> {
    let bin = sim_binary()?;
    let mut child = Command::new(&bin)
        .args([
            "--name",
            name,
            "--region",
            region,
            "--base-port",
            &base_port.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("drgw-sim has no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| anyhow!("drgw-sim {name} did not start within 30 s"))??
        .ok_or_else(|| anyhow!("drgw-sim {name} exited before printing its endpoints"))?;
    let endpoints = parse_sim_line(&line)?;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, endpoints))
}

/// The gateway's listener ports: one per service, and the admin listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayPorts {
    pub identity: u16,
    pub compute: u16,
    pub image: u16,
    pub volume: u16,
    pub network: u16,
    pub admin: u16,
}

impl GatewayPorts {
    /// identity = base, compute +1, image +2, volume +3, network +4, admin +9.
    pub fn from_base(base: u16) -> GatewayPorts {
        GatewayPorts {
            identity: base,
            compute: base + 1,
            image: base + 2,
            volume: base + 3,
            network: base + 4,
            admin: base + 9,
        }
    }
}

/// The gateway configuration of the sandbox (and of the test bed).
pub fn sandbox_config(
    dir: &Path,
    ports: GatewayPorts,
    primary: &SimEndpoints,
    recovery: &SimEndpoints,
) -> String {
    let site = |name: &str, e: &SimEndpoints| {
        format!(
            "[sites.{name}]\nregion = \"RegionOne\"\nidentity = \"{}\"\ncompute = \"{}\"\nnetwork = \"{}\"\nvolumev3 = \"{}\"\nimage = \"{}\"\n\
             credentials = {{ username = \"admin\", password = \"secret\", project_name = \"admin\" }}\n\n",
            e.identity, e.compute, e.network, e.volume, e.image
        )
    };
    let listener = |service: &str, port: u16| {
        format!("[listeners.{service}]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\n")
    };
    format!(
        "# drgw sandbox: the gateway in front of two simulated sites (written by `drgw sandbox`).\n\n\
         [gateway]\nstate_dir = \"{state}\"\npolicy_file = \"policy.toml\"\naccess_log = \"access.log\"\n\n{primary}{recovery}{l0}{l1}{l2}{l3}{l4}[admin]\nlisten = \"127.0.0.1:{admin}\"\n",
        state = dir.join("state").display(),
        primary = site("primary", primary),
        recovery = site("recovery", recovery),
        l0 = listener("identity", ports.identity),
        l1 = listener("compute", ports.compute),
        l2 = listener("image", ports.image),
        l3 = listener("volume", ports.volume),
        l4 = listener("network", ports.network),
        admin = ports.admin,
    )
}

/// clouds.yaml with `drgw` (demo tenant through the gateway), `drgw-admin`, `primary` and
/// `recovery` (admin, direct to each site).
pub fn clouds_yaml(
    gateway_identity: &str,
    primary_identity: &str,
    recovery_identity: &str,
) -> String {
    let cloud = |name: &str, auth_url: &str, user: &str, password: &str, project: &str| {
        format!(
            "  {name}:\n    auth:\n      auth_url: {auth_url}/v3\n      username: {user}\n      password: {password}\n      \
             project_name: {project}\n      user_domain_name: Default\n      project_domain_name: Default\n    \
             region_name: RegionOne\n    identity_api_version: 3\n    interface: public\n"
        )
    };
    format!(
        "clouds:\n{}{}{}{}",
        cloud("drgw", gateway_identity, "demo", "demo", "demo"),
        cloud("drgw-admin", gateway_identity, "admin", "secret", "admin"),
        cloud("primary", primary_identity, "admin", "secret", "admin"),
        cloud("recovery", recovery_identity, "admin", "secret", "admin"),
    )
}

/// The sandbox's policy: project `demo` defaults to silver and may choose bronze or
/// silver, project `admin` defaults to gold, silver checkpoints every 5 s.
pub const SANDBOX_POLICY: &str = include_str!("../../policies/examples/sandbox.toml");

/// Writes `drgw.toml` and its `policy.toml` into `dir`.
pub fn write_sandbox_files(
    dir: &Path,
    ports: GatewayPorts,
    primary: &SimEndpoints,
    recovery: &SimEndpoints,
) -> std::io::Result<PathBuf> {
    std::fs::write(dir.join("policy.toml"), SANDBOX_POLICY)?;
    let config_path = dir.join("drgw.toml");
    std::fs::write(&config_path, sandbox_config(dir, ports, primary, recovery))?;
    Ok(config_path)
}

/// Creates the volume types the sandbox policy maps (`standard` and, for gold,
/// `standard-replicated`) at both sites, as an operator would.
pub async fn create_volume_types(gw: &crate::gateway::Gateway) -> anyhow::Result<()> {
    use crate::config::SiteName;
    use crate::operation::Service;
    for site in SiteName::ALL {
        let keystone = &gw.site(site).keystone;
        let token = keystone.service_token().await?;
        let project = keystone
            .validate(&token)
            .await?
            .and_then(|ctx| ctx.project_id)
            .ok_or_else(|| anyhow!("site {site}: the gateway's token has no project"))?;
        for name in ["standard", "standard-replicated"] {
            let uri = gw
                .upstream_uri(
                    site,
                    Service::BlockStorage,
                    &format!("/v3/{project}/types"),
                    None,
                )
                .ok_or_else(|| anyhow!("site {site}: bad volume URL"))?;
            let req = http::Request::post(uri)
                .header("x-auth-token", &token)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(crate::body::full(format!(
                    r#"{{"volume_type": {{"name": "{name}"}}}}"#
                )))?;
            let (parts, _) = gw.client(site).send_full(req, 1 << 20).await?;
            if !parts.status.is_success() && parts.status != http::StatusCode::CONFLICT {
                bail!(
                    "site {site}: creating volume type {name} answered {}",
                    parts.status
                );
            }
        }
    }
    Ok(())
}

/// Runs the sandbox until interrupted.
pub async fn run(dir: &Path, base_port: u16) -> anyhow::Result<i32> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let (mut primary_child, primary) = spawn_sim("primary", "RegionOne", base_port + 100).await?;
    let (mut recovery_child, recovery) =
        spawn_sim("recovery", "RegionOne", base_port + 200).await?;
    let config_path = write_sandbox_files(
        &dir,
        GatewayPorts::from_base(base_port),
        &primary,
        &recovery,
    )?;
    let clouds_path = dir.join("clouds.yaml");
    let gateway_identity = format!("http://127.0.0.1:{base_port}");
    std::fs::write(
        &clouds_path,
        clouds_yaml(&gateway_identity, &primary.identity, &recovery.identity),
    )?;
    let config = Config::load(&config_path).map_err(|e| anyhow!("sandbox config: {e}"))?;
    let bound = BoundGateway::bind(config).await?;
    create_volume_types(&bound.gateway()).await?;
    println!("drgw sandbox is running (Ctrl-C stops it).");
    println!("  gateway config: {}", config_path.display());
    println!("  clouds.yaml:    {}", clouds_path.display());
    println!("  access log:     {}", dir.join("access.log").display());
    println!(
        "  primary site:   {}   recovery site: {}",
        primary.identity, recovery.identity
    );
    println!();
    println!("  export OS_CLIENT_CONFIG_FILE={}", clouds_path.display());
    println!("  openstack --os-cloud drgw token issue          # demo tenant, through the gateway");
    println!("  openstack --os-cloud drgw-admin catalog list   # every URL is the gateway's");
    println!("  openstack --os-cloud recovery flavor list      # the recovery site, directly");
    println!("  drgw status --config {}", config_path.display());
    bound.serve(crate::cli::shutdown_signal()).await;
    let _ = primary_child.kill().await;
    let _ = recovery_child.kill().await;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_config_passes_check_config() {
        let e = |b: u16| SimEndpoints {
            identity: format!("http://127.0.0.1:{b}"),
            compute: format!("http://127.0.0.1:{}", b + 1),
            image: format!("http://127.0.0.1:{}", b + 2),
            volume: format!("http://127.0.0.1:{}", b + 3),
            network: format!("http://127.0.0.1:{}", b + 4),
        };
        let dir = Path::new("/tmp/sandbox-test");
        let text = sandbox_config(dir, GatewayPorts::from_base(19000), &e(19100), &e(19200));
        let cfg = Config::parse(&text, dir).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(cfg.listeners.len(), 5);
    }

    #[test]
    fn parses_sim_lines_in_either_shape() {
        let flat = r#"{"name":"primary","identity":"http://127.0.0.1:1","compute":"http://127.0.0.1:2","image":"http://127.0.0.1:3","volume":"http://127.0.0.1:4","network":"http://127.0.0.1:5"}"#;
        assert_eq!(parse_sim_line(flat).unwrap().volume, "http://127.0.0.1:4");
        let nested = r#"{"endpoints":{"identity":"a","compute":"b","image":"c","block-storage":"d/","network":"e"}}"#;
        assert_eq!(parse_sim_line(nested).unwrap().volume, "d");
        assert!(parse_sim_line("{}").is_err());
    }
}
