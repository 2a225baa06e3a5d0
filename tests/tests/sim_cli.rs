//! The real `openstack` CLI against the two in-process simulated sites, primary and recovery,
//! each driven directly and both at once: every command a tenant and an operator use for the
//! resources drgw mirrors, create and delete.
//!
//! Fails (never skips) when the CLI is missing: set `DRGW_OPENSTACK_CLI` or install the venv at
//! `/root/.cache/drgw/realstack/venv/bin/openstack`.

use std::path::{Path, PathBuf};

use drgw_tests::sim::{Site, SiteConfig, SiteHandle};
use serde_json::Value;

const DEFAULT_CLI: &str = "/root/.cache/drgw/realstack/venv/bin/openstack";

/// The CLI with one cloud per site, named after the site.
struct Cli {
    bin: PathBuf,
    config: PathBuf,
    cloud: String,
}

impl Cli {
    /// Writes a clouds.yaml with one admin cloud per site (direct to the site, no gateway);
    /// returns one CLI per site, in order.
    fn for_sites(sites: &[&SiteHandle], dir: &Path) -> anyhow::Result<Vec<Cli>> {
        let bin = PathBuf::from(
            std::env::var("DRGW_OPENSTACK_CLI").unwrap_or_else(|_| DEFAULT_CLI.into()),
        );
        anyhow::ensure!(
            bin.is_file(),
            "the openstack CLI is missing at {} (set DRGW_OPENSTACK_CLI)",
            bin.display()
        );
        let config = dir.join("clouds.yaml");
        let mut yaml = String::from("clouds:\n");
        for site in sites {
            yaml.push_str(&format!(
                "  {}:\n    auth:\n      auth_url: {}\n      username: admin\n      password: secret\n      project_name: admin\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: {}\n    identity_api_version: 3\n",
                site.name(),
                site.endpoints().auth_url(),
                site.region()
            ));
        }
        std::fs::write(&config, yaml)?;
        Ok(sites
            .iter()
            .map(|site| Cli {
                bin: bin.clone(),
                config: config.clone(),
                cloud: site.name().to_string(),
            })
            .collect())
    }

    /// Runs one command; fails with its stderr unless it exits 0.
    async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = tokio::process::Command::new(&self.bin)
            .arg("--os-cloud")
            .arg(&self.cloud)
            .args(args)
            .env("OS_CLIENT_CONFIG_FILE", &self.config)
            .env_remove("OS_CLOUD")
            .env_remove("OS_AUTH_URL")
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        anyhow::ensure!(
            out.status.success(),
            "openstack --os-cloud {} {} failed ({}): {}{}",
            self.cloud,
            args.join(" "),
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(stdout)
    }

    /// Runs a command with `-f json` and parses its output.
    async fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut all = args.to_vec();
        all.extend(["-f", "json"]);
        let out = self.run(&all).await?;
        Ok(serde_json::from_str(&out)?)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_openstack_cli_against_both_simulated_sites() -> anyhow::Result<()> {
    let primary = Site::start(SiteConfig::named("primary")).await?;
    let recovery = Site::start(SiteConfig {
        region: "RegionTwo".into(),
        ..SiteConfig::named("recovery")
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let clis = Cli::for_sites(&[&primary, &recovery], dir.path())?;
    let [p_dir, r_dir] = ["primary", "recovery"].map(|d| dir.path().join(d));
    for d in [&p_dir, &r_dir] {
        std::fs::create_dir_all(d)?;
    }
    // Both walk-throughs at once, each CLI straight at its own site.
    tokio::try_join!(
        walkthrough(&clis[0], &primary, &p_dir),
        walkthrough(&clis[1], &recovery, &r_dir)
    )?;
    primary.shutdown().await;
    recovery.shutdown().await;
    Ok(())
}

/// The walk-through against one site; checks along the way that the CLI talked to this
/// site only (its token, its catalog and region, its request record).
async fn walkthrough(cli: &Cli, site: &SiteHandle, dir: &Path) -> anyhow::Result<()> {
    let token = cli.json(&["token", "issue"]).await?;
    anyhow::ensure!(
        token["project_id"] == Value::from(site.project_id("admin")),
        "{}: token of another project: {token}",
        site.name()
    );
    let catalog = cli.json(&["catalog", "list"]).await?;
    let types: Vec<&str> = catalog
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["Type"].as_str())
        .collect();
    for t in ["identity", "compute", "image", "block-storage", "network"] {
        assert!(types.contains(&t), "catalog lacks {t}: {catalog}");
    }
    let ep = site.endpoints();
    let own = [ep.identity, ep.compute, ep.image, ep.volume, ep.network];
    let mut endpoints = 0;
    for entry in catalog.as_array().into_iter().flatten() {
        for e in entry["Endpoints"].as_array().into_iter().flatten() {
            endpoints += 1;
            let url = e["url"].as_str().unwrap_or_default();
            anyhow::ensure!(
                own.iter().any(|o| url.starts_with(o.as_str())) && e["region"] == site.region(),
                "{}: catalog endpoint of another site: {e}",
                site.name()
            );
        }
    }
    anyhow::ensure!(
        endpoints >= 5,
        "{}: only {endpoints} catalog endpoints",
        site.name()
    );

    let project = cli
        .json(&["project", "create", "--description", "dr test", "p1"])
        .await?;
    assert_eq!(project["name"], "p1");
    let user = cli
        .json(&[
            "user",
            "create",
            "--password",
            "pw",
            "--project",
            "p1",
            "u1",
        ])
        .await?;
    assert_eq!(user["name"], "u1");
    cli.run(&["role", "add", "--project", "p1", "--user", "u1", "member"])
        .await?;
    let assignments = cli
        .json(&["role", "assignment", "list", "--project", "p1", "--names"])
        .await?;
    assert_eq!(assignments[0]["Role"], "member");

    let flavor = cli
        .json(&[
            "flavor", "create", "--ram", "64", "--vcpus", "1", "--disk", "1", "f1",
        ])
        .await?;
    assert_eq!(flavor["ram"], 64);
    let key = dir.join("key.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJImusrDR/ZhIaX4dttrx0JdhEERsADcpWaA5TACH8Nw test\n",
    )?;
    let kp = cli
        .json(&[
            "keypair",
            "create",
            "--public-key",
            &key.to_string_lossy(),
            "k1",
        ])
        .await?;
    assert_eq!(kp["name"], "k1");

    let net = cli.json(&["network", "create", "n1"]).await?;
    assert_eq!(net["status"], "ACTIVE");
    let subnet = cli
        .json(&[
            "subnet",
            "create",
            "--network",
            "n1",
            "--subnet-range",
            "10.9.0.0/24",
            "s1",
        ])
        .await?;
    assert_eq!(subnet["gateway_ip"], "10.9.0.1");
    cli.json(&["router", "create", "r1"]).await?;
    cli.run(&["router", "add", "subnet", "r1", "s1"]).await?;
    let sg = cli.json(&["security", "group", "create", "sg1"]).await?;
    assert_eq!(sg["name"], "sg1");
    let rule = cli
        .json(&[
            "security",
            "group",
            "rule",
            "create",
            "--protocol",
            "tcp",
            "--dst-port",
            "22",
            "sg1",
        ])
        .await?;
    assert_eq!(rule["port_range_min"], 22);

    let vt = cli.json(&["volume", "type", "create", "vt1"]).await?;
    assert_eq!(vt["name"], "vt1");
    let vol = cli
        .json(&["volume", "create", "--size", "1", "--type", "vt1", "v1"])
        .await?;
    assert_eq!(vol["size"], 1);

    let data: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = dir.join("img.raw");
    std::fs::write(&file, &data)?;
    let image = cli
        .json(&[
            "image",
            "create",
            "--file",
            &file.to_string_lossy(),
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "i1",
        ])
        .await?;
    assert_eq!(image["status"], "active");
    let saved = dir.join("saved.raw");
    cli.run(&["image", "save", "--file", &saved.to_string_lossy(), "i1"])
        .await?;
    assert!(
        std::fs::read(&saved)? == data,
        "downloaded image differs from the upload"
    );

    let server = cli
        .json(&[
            "server",
            "create",
            "--flavor",
            "f1",
            "--image",
            "i1",
            "--network",
            "n1",
            "--key-name",
            "k1",
            "srv1",
        ])
        .await?;
    assert!(
        matches!(server["status"].as_str(), Some("BUILD" | "ACTIVE")),
        "{server}"
    );
    let shown = cli.json(&["server", "show", "srv1"]).await?;
    assert_eq!(shown["name"], "srv1");
    assert_eq!(shown["key_name"], "k1");

    cli.run(&["server", "delete", "srv1"]).await?;
    cli.run(&["image", "delete", "i1"]).await?;
    cli.run(&["volume", "delete", "v1"]).await?;
    cli.run(&["volume", "type", "delete", "vt1"]).await?;
    cli.run(&[
        "security",
        "group",
        "rule",
        "delete",
        rule["id"].as_str().unwrap_or_default(),
    ])
    .await?;
    cli.run(&["security", "group", "delete", "sg1"]).await?;
    cli.run(&["router", "remove", "subnet", "r1", "s1"]).await?;
    cli.run(&["router", "delete", "r1"]).await?;
    cli.run(&["subnet", "delete", "s1"]).await?;
    cli.run(&["network", "delete", "n1"]).await?;
    cli.run(&["keypair", "delete", "k1"]).await?;
    cli.run(&["flavor", "delete", "f1"]).await?;
    cli.run(&[
        "role",
        "remove",
        "--project",
        "p1",
        "--user",
        "u1",
        "member",
    ])
    .await?;
    cli.run(&["user", "delete", "u1"]).await?;
    cli.run(&["project", "delete", "p1"]).await?;

    assert_eq!(cli.json(&["server", "list"]).await?, Value::Array(vec![]));
    assert_eq!(cli.json(&["network", "list"]).await?, Value::Array(vec![]));
    assert_eq!(cli.json(&["volume", "list"]).await?, Value::Array(vec![]));
    // The record shows what reached the site, e.g. exactly one image upload.
    let uploads = site
        .requests()
        .all()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/file"))
        .count();
    assert_eq!(uploads, 1, "{}: image uploads", site.name());
    Ok(())
}
