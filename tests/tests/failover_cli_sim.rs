//! Failover and failback end to end, as operators and tenants see them: two simulated
//! sites, the gateway with the sandbox policy, the real `openstack` CLI for the tenant and
//! the `drgw` binary for the operator.
//!
//! A tenant creates protected resources of every tier; `drgw failover --to recovery
//! --planned`; the catalog still points at the gateway (routed mode); the tenant shows,
//! lists, updates and deletes its resources by the IDs it got from the primary, and creates
//! new ones; `drgw failback --planned`; the tenant's IDs still work.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drgw_tests::cli::OpenStackCli;
use drgw_tests::sim::SiteHandle;
use drgw_tests::testbed::{drgw_binary, TestBed};
use serde_json::Value;

/// Runs the operator's `drgw` command against the bed's gateway; returns its stdout.
fn drgw(config: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(drgw_binary())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "drgw {args:?} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// Polls the CLI until `cloud` shows `what`, for up to `limit`.
fn shown_eventually(
    cli: &OpenStackCli,
    cloud: &str,
    what: &[&str],
    limit: Duration,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let mut args = what.to_vec();
        args.extend(["-f", "json"]);
        let out = cli.exec(cloud, &args)?;
        if out.success() {
            return out.json();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what:?} never appeared at {cloud}: {}",
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn id(v: &Value) -> anyhow::Result<String> {
    v["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no id in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_failover_and_failback_keep_the_tenants_ids() {
    let bed = TestBed::start().await.expect("test bed");
    let cli = Arc::new(OpenStackCli::new(&bed.clouds_yaml).expect("the real openstack CLI"));
    let config = bed.gateway.config_path.clone();
    let gateway_urls: Vec<String> = ["identity", "compute", "network", "volume", "image"]
        .iter()
        .map(|s| bed.gateway_url(s))
        .collect();

    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        // Every tier: Gold (the admin project's flavor), Silver (demo's default: a network
        // and its subnet), Bronze (asked for with the tier tag).
        let flavor = cli.json(
            "drgw-admin",
            &[
                "flavor",
                "create",
                "--ram",
                "512",
                "--disk",
                "1",
                "--vcpus",
                "1",
                "fo-flavor",
            ],
        )?;
        let net = cli.json("drgw", &["network", "create", "fo-net"])?;
        let net_id = id(&net)?;
        let sub = cli.json(
            "drgw",
            &[
                "subnet",
                "create",
                "--network",
                &net_id,
                "--subnet-range",
                "10.44.0.0/24",
                "fo-sub",
            ],
        )?;
        let sub_id = id(&sub)?;
        // Bronze, asked for with the tier tag (the CLI creates, then puts the tags it saw
        // plus the new one: the gateway reads that as a re-tier).
        let bronze = cli.json(
            "drgw",
            &["network", "create", "--tag", "dr-tier:bronze", "fo-bronze"],
        )?;
        let bronze_id = id(&bronze)?;
        let at_primary = cli.json("primary", &["network", "show", &bronze_id])?;
        let tags = at_primary["tags"].to_string();
        anyhow::ensure!(
            tags.contains("dr-tier:bronze") && !tags.contains("dr-tier:silver"),
            "one tier tag, the one asked for: {at_primary}"
        );
        let sg = cli.json("drgw", &["security", "group", "create", "fo-sg"])?;
        let sg_id = id(&sg)?;

        // Gold workloads, restored at the recovery site by the failover: a server booted
        // from an image both sites hold (uploaded to each directly, same ID), and a volume.
        // A server whose image exists at the recovery site only as mirrored metadata (no
        // data: Glance keeps it queued) cannot be restored, and the report says why. Silver
        // workloads are not restored (the sandbox policy restores Gold only).
        let image_file = tempfile::NamedTempFile::new()?;
        std::fs::write(image_file.path(), vec![7u8; 64 << 10])?;
        let file = image_file.path().to_string_lossy().into_owned();
        let public_id = "6c2b1d53-5f61-4e43-9d52-3b1d8f0c7a11";
        for cloud in ["primary", "recovery"] {
            cli.json(
                cloud,
                &[
                    "image",
                    "create",
                    "--id",
                    public_id,
                    "--file",
                    &file,
                    "--disk-format",
                    "raw",
                    "--container-format",
                    "bare",
                    "--public",
                    "fo-public",
                ],
            )?;
        }
        let admin_net = cli.json("drgw-admin", &["network", "create", "fo-admin-net"])?;
        let admin_net_id = id(&admin_net)?;
        let queued_image = cli.json(
            "drgw-admin",
            &[
                "image",
                "create",
                "--file",
                &file,
                "--disk-format",
                "raw",
                "--container-format",
                "bare",
                "fo-image",
            ],
        )?;
        let server = |name: &str, image: &str| {
            cli.json(
                "drgw-admin",
                &[
                    "server",
                    "create",
                    "--flavor",
                    "fo-flavor",
                    "--image",
                    image,
                    "--network",
                    &admin_net_id,
                    name,
                ],
            )
        };
        let vm_id = id(&server("fo-vm", public_id)?)?;
        let stuck_id = id(&server("fo-vm-stuck", &id(&queued_image)?)?)?;
        let vol_id = id(&cli.json("drgw-admin", &["volume", "create", "--size", "1", "fo-vol"])?)?;
        let silver_vol_id = id(&cli.json(
            "drgw",
            &["volume", "create", "--size", "1", "fo-silver-vol"],
        )?)?;

        // Before the switch, everything is at the recovery site under its own IDs.
        let rec_net = shown_eventually(
            &cli,
            "recovery",
            &["network", "show", "fo-net"],
            Duration::from_secs(15),
        )?;
        let rec_net_id = id(&rec_net)?;
        anyhow::ensure!(rec_net_id != net_id, "each site has its own network ID");
        shown_eventually(
            &cli,
            "recovery",
            &["subnet", "show", "fo-sub"],
            Duration::from_secs(15),
        )?;
        shown_eventually(
            &cli,
            "recovery",
            &["network", "show", "fo-bronze"],
            Duration::from_secs(15),
        )?;
        shown_eventually(
            &cli,
            "recovery",
            &["security", "group", "show", "fo-sg"],
            Duration::from_secs(15),
        )?;
        shown_eventually(
            &cli,
            "recovery",
            &["flavor", "show", "fo-flavor"],
            Duration::from_secs(1),
        )?;

        let demo_project = cli.json("drgw", &["token", "issue"])?["project_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();

        // The operator switches.
        let started = Instant::now();
        let report = drgw(&config, &["failover", "--to", "recovery", "--planned"])?;
        println!(
            "planned failover took {:.2} s:\n{report}",
            started.elapsed().as_secs_f64()
        );
        anyhow::ensure!(
            report.contains("workloads restored: 2, failed: 1"),
            "the report counts the restored workloads: {report}"
        );
        anyhow::ensure!(
            report.contains(&stuck_id) && report.contains("not active"),
            "the report names the workload that failed and why: {report}"
        );
        let report_id = report
            .split_whitespace()
            .nth(1)
            .map(|s| s.trim_end_matches(':').to_string())
            .unwrap_or_default();
        let status = drgw(&config, &["status"])?;
        anyhow::ensure!(
            status.contains("active site: recovery") && status.contains("ID translation: on"),
            "status after failover: {status}"
        );

        // Routed mode: the catalog still names only the gateway.
        let catalog = cli.json("drgw", &["catalog", "list"])?;
        let text = catalog.to_string();
        for url in gateway_urls.iter().skip(1) {
            anyhow::ensure!(text.contains(url.as_str()), "catalog lacks {url}: {text}");
        }
        let urls = catalog_urls(&cli, "drgw")?;
        anyhow::ensure!(urls.len() >= 15, "5 services x 3 interfaces: {urls:?}");
        for (kind, url) in &urls {
            anyhow::ensure!(
                gateway_urls.iter().any(|g| url.starts_with(g.as_str())),
                "catalog entry of {kind} bypasses the gateway: {url}"
            );
        }

        // The tenant's old IDs: show, list, filter, update, delete.
        let shown = cli.json("drgw", &["network", "show", &net_id])?;
        anyhow::ensure!(
            shown["id"] == net_id.as_str(),
            "old ID shown as is: {shown}"
        );
        anyhow::ensure!(shown["name"] == "fo-net", "{shown}");
        anyhow::ensure!(
            shown["subnets"].to_string().contains(&sub_id),
            "the network's subnets use the old IDs: {shown}"
        );
        let sub_shown = cli.json("drgw", &["subnet", "show", &sub_id])?;
        anyhow::ensure!(
            sub_shown["network_id"] == net_id.as_str(),
            "references use the old IDs: {sub_shown}"
        );
        let listed = cli.json("drgw", &["network", "list"])?;
        let listed_ids: Vec<&str> = listed
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["ID"].as_str())
            .collect();
        anyhow::ensure!(
            listed_ids.contains(&net_id.as_str()) && !listed_ids.contains(&rec_net_id.as_str()),
            "the list shows the old IDs: {listed_ids:?}"
        );
        let filtered = cli.json("drgw", &["subnet", "list", "--network", &net_id])?;
        anyhow::ensure!(
            filtered.to_string().contains(&sub_id),
            "filter by the old network ID: {filtered}"
        );
        cli.run(
            "drgw",
            &[
                "network",
                "set",
                "--description",
                "changed while failed over",
                &net_id,
            ],
        )?;
        let at_recovery = cli.json("recovery", &["network", "show", &rec_net_id])?;
        anyhow::ensure!(
            at_recovery["description"] == "changed while failed over",
            "the update reached the recovery copy: {at_recovery}"
        );
        cli.run("drgw", &["security", "group", "delete", &sg_id])?;
        let gone = cli.exec("recovery", &["security", "group", "show", "fo-sg"])?;
        anyhow::ensure!(
            !gone.success(),
            "deleted by its old ID at the recovery site"
        );
        let flavor_shown = cli.json("drgw-admin", &["flavor", "show", &id(&flavor)?])?;
        anyhow::ensure!(flavor_shown["name"] == "fo-flavor", "{flavor_shown}");
        let bronze_shown = cli.json("drgw", &["network", "show", &bronze_id])?;
        anyhow::ensure!(bronze_shown["id"] == bronze_id.as_str(), "{bronze_shown}");
        // The recovery copy converged in the order of the changes: the Bronze re-tag was
        // not overtaken by the Silver tag of the create (applied at a later checkpoint).
        let tags = bronze_shown["tags"].to_string();
        anyhow::ensure!(
            tags.contains("dr-tier:bronze") && !tags.contains("dr-tier:silver"),
            "the recovery copy has one tier tag, the newest: {bronze_shown}"
        );

        // A login scoped by the project ID the tenant knows (the primary's).
        let by_id = cli.json(
            "drgw",
            &["--os-project-id", &demo_project, "network", "show", &net_id],
        )?;
        anyhow::ensure!(
            by_id["name"] == "fo-net",
            "scoped by the old project ID: {by_id}"
        );

        // Restored workloads answer to the IDs the primary gave them.
        let vm = cli.json("drgw-admin", &["server", "show", &vm_id])?;
        anyhow::ensure!(vm["id"] == vm_id.as_str() && vm["name"] == "fo-vm", "{vm}");
        let at_recovery = cli.json("recovery", &["server", "show", "fo-vm"])?;
        anyhow::ensure!(
            at_recovery["id"] != vm_id.as_str(),
            "restored under a new ID"
        );
        let vol = cli.json("drgw-admin", &["volume", "show", &vol_id])?;
        anyhow::ensure!(
            vol["id"] == vol_id.as_str() && vol["name"] == "fo-vol",
            "{vol}"
        );
        let silver = cli.exec("drgw", &["volume", "show", &silver_vol_id])?;
        anyhow::ensure!(!silver.success(), "silver workloads are not restored");
        let stuck = cli.exec("recovery", &["server", "show", "fo-vm-stuck"])?;
        anyhow::ensure!(!stuck.success(), "the failed restore left nothing behind");

        // New resources keep the recovery site's IDs.
        let new_net = cli.json("drgw", &["network", "create", "fo-new"])?;
        let new_id = id(&new_net)?;
        let direct = cli.json("recovery", &["network", "show", "fo-new"])?;
        anyhow::ensure!(
            direct["id"] == new_id.as_str(),
            "created after failover: {direct}"
        );
        let new_shown = cli.json("drgw", &["network", "show", &new_id])?;
        anyhow::ensure!(new_shown["name"] == "fo-new", "{new_shown}");

        // The operator fails back; the tenant's IDs still work.
        let started = Instant::now();
        let report = drgw(&config, &["failback", "--planned"])?;
        println!(
            "planned failback took {:.2} s:\n{report}",
            started.elapsed().as_secs_f64()
        );
        let shown = cli.json("drgw", &["network", "show", &net_id])?;
        anyhow::ensure!(shown["name"] == "fo-net", "after failback: {shown}");
        let sub_shown = cli.json("drgw", &["subnet", "show", &sub_id])?;
        anyhow::ensure!(sub_shown["network_id"] == net_id.as_str(), "{sub_shown}");

        // Reverse replication resynced the primary before the switch back: the update, the
        // delete and the network created while failed over are there.
        let at_primary = cli.json("primary", &["network", "show", &net_id])?;
        anyhow::ensure!(
            at_primary["description"] == "changed while failed over",
            "the update made during the failover: {at_primary}"
        );
        let sg_gone = cli.exec("primary", &["security", "group", "show", &sg_id])?;
        anyhow::ensure!(!sg_gone.success(), "the delete made during the failover");
        let new_at_primary = cli.json("primary", &["network", "show", "fo-new"])?;
        anyhow::ensure!(
            new_at_primary["id"] != new_id.as_str(),
            "the primary copy has its own ID"
        );
        // The tenant still uses the ID the network got during the failover.
        let new_shown = cli.json("drgw", &["network", "show", &new_id])?;
        anyhow::ensure!(
            new_shown["id"] == new_id.as_str() && new_shown["name"] == "fo-new",
            "the ID from the failover still works after failback: {new_shown}"
        );
        Ok(report_id)
    })
    .await
    .expect("CLI thread");
    let report_id = result.unwrap_or_else(|e| panic!("{e:#}"));

    // The kept report lists each workload's outcome.
    let (code, kept) = drgw::cli::admin_get(
        &bed.gateway.config_path,
        &format!("/v1/failovers/{report_id}"),
    )
    .await
    .expect("admin API");
    assert!(code.is_success(), "{kept}");
    let workloads = kept["restore"]["workloads"].as_array().expect("workloads");
    let outcomes: Vec<(&str, &str)> = workloads
        .iter()
        .map(|w| {
            (
                w["resource_type"].as_str().unwrap_or(""),
                w["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("server", "restored"),
            ("server", "failed"),
            ("volume", "restored")
        ],
        "{kept}"
    );
    bed.stop().await;
}

/// The catalog's URL of each service type, from `openstack catalog list`.
fn catalog_urls(cli: &OpenStackCli, cloud: &str) -> anyhow::Result<Vec<(String, String)>> {
    let catalog = cli.json(cloud, &["catalog", "list"])?;
    let mut out = Vec::new();
    for entry in catalog.as_array().into_iter().flatten() {
        let kind = entry["Type"].as_str().unwrap_or("").to_string();
        for ep in entry["Endpoints"].as_array().into_iter().flatten() {
            if let Some(url) = ep["url"].as_str() {
                out.push((kind.clone(), url.to_string()));
            }
        }
    }
    Ok(out)
}

/// Direct mode: the gateway fronts Keystone only; catalogs name the active site's real
/// endpoints, and after a failover the recovery site's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_mode_catalog_follows_the_active_site() {
    let bed = TestBed::start_with_gateway_settings("catalog_mode = \"direct\"\n")
        .await
        .expect("test bed");
    let cli = Arc::new(OpenStackCli::new(&bed.clouds_yaml).expect("the real openstack CLI"));
    let config = bed.gateway.config_path.clone();
    let identity = bed.gateway_url("identity");
    let site_urls = |site: &SiteHandle| {
        let e = site.endpoints();
        vec![
            ("compute".to_string(), e.compute),
            ("network".to_string(), e.network),
            ("block-storage".to_string(), e.volume),
            ("image".to_string(), e.image),
        ]
    };
    let primary = site_urls(&bed.primary);
    let recovery = site_urls(&bed.recovery);
    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let check = |urls: &[(String, String)], site: &[(String, String)], label: &str| {
            for (kind, base) in site {
                anyhow::ensure!(
                    urls.iter()
                        .any(|(k, u)| k == kind && u.starts_with(base.as_str())),
                    "{label}: no {kind} endpoint under {base}: {urls:?}"
                );
            }
            anyhow::ensure!(
                urls.iter()
                    .filter(|(k, _)| k == "identity")
                    .all(|(_, u)| u.starts_with(identity.as_str())),
                "{label}: identity stays the gateway's: {urls:?}"
            );
            Ok(())
        };
        check(&catalog_urls(&cli, "drgw")?, &primary, "before failover")?;
        drgw(&config, &["failover", "--to", "recovery", "--planned"])?;
        let after = catalog_urls(&cli, "drgw")?;
        check(&after, &recovery, "after failover")?;
        // The tenant works directly against the recovery site.
        let net = cli.json("drgw", &["network", "create", "direct-net"])?;
        let direct = cli.json("recovery", &["network", "show", "direct-net"])?;
        anyhow::ensure!(direct["id"] == net["id"], "{direct}");
        drgw(&config, &["failback", "--planned"])?;
        check(&catalog_urls(&cli, "drgw")?, &primary, "after failback")?;
        Ok(())
    })
    .await
    .expect("CLI thread");
    result.unwrap_or_else(|e| panic!("{e:#}"));
    bed.stop().await;
}
