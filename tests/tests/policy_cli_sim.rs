//! DR policies end to end: the real `openstack` CLI through the gateway in front of two
//! simulated sites, with the sandbox's policy (demo: silver by default, bronze or silver on
//! request; admin: gold). Every resource carries its tier where the tenant can see it, a
//! forbidden tier is a readable 403, the gold volume type is rewritten, and a policy reload
//! (broken, then good) changes decisions for new requests only.

use drgw_tests::cli::OpenStackCli;
use drgw_tests::testbed::TestBed;
use http::Method;
use std::sync::Arc;

fn has_tier(v: &serde_json::Value, tier: &str) -> bool {
    let text = v.to_string();
    text.contains(&format!("dr-tier:{tier}"))
        || text.contains(&format!("\"dr_tier\":\"{tier}\""))
        || text.contains(&format!("dr_tier='{tier}'"))
}

const RELOADED_POLICY: &str = r#"
[tiers.gold]
mode = "sync"
[tiers.gold.volume_types]
standard = "standard-replicated"
[tiers.silver]
mode = "periodic"
interval = "5s"
[tiers.bronze]
mode = "async"
max_lag = "300s"
[tiers.none]
mode = "off"

[default]
default_tier = "bronze"

[[rules]]
name = "demo"
match = { project_name = "demo", domain = "default" }
default_tier = "silver"
allowed_tiers = ["bronze", "silver"]

# silver networks may not be deleted, and the recovery site holds 2 GB of silver volumes
[[rules.deny]]
operation = "network:delete_network"
tier = "silver"
reason = "silver networks are deleted by the operator only"

[rules.quotas.silver]
volume_gb = 2

[[rules]]
name = "admin"
match = { project_name = "admin", domain = "default" }
default_tier = "gold"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_are_decided_enforced_and_visible() {
    let bed = TestBed::start().await.expect("test bed");
    let cli = Arc::new(OpenStackCli::new(&bed.clouds_yaml).expect("the real openstack CLI"));
    let dir = bed.dir.path().to_path_buf();
    let config = bed.gateway.config_path.clone();

    let cli_phase = {
        let cli = cli.clone();
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<(String, String)> {
            // An unmodified tenant gets its default tier (silver) on every resource.
            let net = cli.json("drgw", &["network", "create", "pol-net"])?;
            anyhow::ensure!(
                has_tier(&net["tags"], "silver"),
                "network create shows its tag: {net}"
            );
            let net_id = net["id"].as_str().unwrap_or_default().to_string();
            let shown = cli.json("drgw", &["network", "show", &net_id])?;
            anyhow::ensure!(has_tier(&shown["tags"], "silver"), "network show: {shown}");

            let file = dir.join("pol.img");
            std::fs::write(&file, vec![7u8; 64 * 1024])?;
            let image = cli.json(
                "drgw",
                &[
                    "image",
                    "create",
                    "--disk-format",
                    "raw",
                    "--container-format",
                    "bare",
                    "--file",
                    file.to_str().unwrap_or_default(),
                    "pol-img",
                ],
            )?;
            let image_id = image["id"].as_str().unwrap_or_default().to_string();
            let image = cli.json("drgw", &["image", "show", &image_id])?;
            anyhow::ensure!(has_tier(&image, "silver"), "image show: {image}");

            let server = cli.json(
                "drgw",
                &[
                    "server",
                    "create",
                    "--flavor",
                    "m1.tiny",
                    "--image",
                    &image_id,
                    "--network",
                    &net_id,
                    "pol-srv",
                ],
            )?;
            let server = cli.json(
                "drgw",
                &["server", "show", server["id"].as_str().unwrap_or_default()],
            )?;
            anyhow::ensure!(
                has_tier(&server["properties"], "silver"),
                "server show: {server}"
            );

            let volume = cli.json("drgw", &["volume", "create", "--size", "1", "pol-vol"])?;
            let volume = cli.json(
                "drgw",
                &["volume", "show", volume["id"].as_str().unwrap_or_default()],
            )?;
            anyhow::ensure!(
                has_tier(&volume["properties"], "silver"),
                "volume show: {volume}"
            );

            // The admin project defaults to gold: a project it creates is tagged so.
            let project = cli.json("drgw-admin", &["project", "create", "pol-proj"])?;
            let project = cli.json(
                "drgw-admin",
                &[
                    "project",
                    "show",
                    project["id"].as_str().unwrap_or_default(),
                ],
            )?;
            anyhow::ensure!(
                has_tier(&project["tags"], "gold"),
                "project show: {project}"
            );

            // Asking for a tier: allowed → granted; forbidden → a 403 the tenant can read.
            let bronze = cli.json(
                "drgw",
                &[
                    "volume",
                    "create",
                    "--size",
                    "1",
                    "--property",
                    "dr_tier=bronze",
                    "pol-bronze",
                ],
            )?;
            anyhow::ensure!(
                has_tier(&bronze["properties"], "bronze"),
                "bronze volume: {bronze}"
            );
            let gold = cli.exec(
                "drgw",
                &[
                    "volume",
                    "create",
                    "--size",
                    "1",
                    "--property",
                    "dr_tier=gold",
                    "pol-gold",
                    "-f",
                    "json",
                ],
            )?;
            anyhow::ensure!(!gold.success(), "demo may not have gold");
            anyhow::ensure!(
                gold.stderr.contains("403")
                    && gold.stderr.contains("gold")
                    && gold.stderr.contains("silver"),
                "readable 403: {}",
                gold.stderr
            );

            // Gold volumes asked as `standard` are created as `standard-replicated`.
            let admin_vol = cli.json(
                "drgw-admin",
                &[
                    "volume",
                    "create",
                    "--size",
                    "1",
                    "--type",
                    "standard",
                    "pol-admin-vol",
                ],
            )?;
            let admin_vol = cli.json(
                "drgw-admin",
                &[
                    "volume",
                    "show",
                    admin_vol["id"].as_str().unwrap_or_default(),
                ],
            )?;
            anyhow::ensure!(
                admin_vol["type"] == "standard-replicated",
                "gold volume type rewritten: {admin_vol}"
            );
            Ok((net_id, image_id))
        })
        .await
        .expect("CLI thread")
    };
    let (net_id, _image_id) = cli_phase.unwrap_or_else(|e| panic!("{e:#}"));

    // A broken policy is refused and the running one stays.
    let policy_path = dir.join("policy.toml");
    let good_before = std::fs::read_to_string(&policy_path).unwrap();
    std::fs::write(&policy_path, "[default]\ndefault_tier = \"platinum\"\n").unwrap();
    let (code, body) = drgw::cli::admin_call(&config, Method::POST, "/v1/policies/reload", None)
        .await
        .unwrap();
    assert_eq!(code.as_u16(), 422, "{body}");
    assert!(
        body.to_string().contains("platinum"),
        "the error names the problem: {body}"
    );
    let still = {
        let cli = cli.clone();
        tokio::task::spawn_blocking(move || cli.json("drgw", &["network", "create", "pol-net-2"]))
            .await
            .unwrap()
            .unwrap()
    };
    assert!(
        has_tier(&still["tags"], "silver"),
        "old policy still in force: {still}"
    );
    assert!(!good_before.is_empty());

    // A good reload: a quota and a delete denial apply to new requests.
    std::fs::write(&policy_path, RELOADED_POLICY).unwrap();
    let (code, body) = drgw::cli::admin_call(&config, Method::POST, "/v1/policies/reload", None)
        .await
        .unwrap();
    assert_eq!(code.as_u16(), 200, "{body}");
    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        // 1 GB of silver volumes exists (pol-vol); 2 more GB exceed the 2 GB quota.
        let over = cli.exec(
            "drgw",
            &["volume", "create", "--size", "2", "pol-over", "-f", "json"],
        )?;
        anyhow::ensure!(
            !over.success() && over.stderr.contains("413"),
            "capacity quota: {}",
            over.stderr
        );
        let fits = cli.json("drgw", &["volume", "create", "--size", "1", "pol-fits"])?;
        anyhow::ensure!(fits["size"] == 1, "exactly at the quota is allowed: {fits}");
        let delete = cli.exec("drgw", &["network", "delete", &net_id])?;
        anyhow::ensure!(
            !delete.success() && delete.stderr.contains("operator only"),
            "delete denied: {}",
            delete.stderr
        );
        let still_there = cli.json("drgw", &["network", "show", &net_id])?;
        anyhow::ensure!(
            still_there["id"] == net_id.as_str(),
            "the network was not deleted"
        );
        Ok(())
    })
    .await
    .expect("CLI thread");
    result.unwrap_or_else(|e| panic!("{e:#}"));
    bed.stop().await;
}
