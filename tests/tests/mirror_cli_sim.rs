//! Mirroring end to end through the gateway (two simulated sites, the sandbox policy):
//! Gold changes are at the recovery site before the call returns, Silver changes arrive at
//! the next checkpoint and not before, Bronze changes within seconds; references point at
//! the recovery site's own ids; updates and deletes follow. Checked with the real
//! `openstack` CLI against the recovery site directly. The second test runs the scenarios
//! the real-services tier runs (`drgw_tests::mirror_scenarios`) against the sandbox sites.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drgw_tests::cli::{write_clouds_yaml, CloudEntry, OpenStackCli, Steps};
use drgw_tests::mirror_scenarios::{
    gold_identity, gold_resources_at_recovery, neutron_references_at_recovery, MIRRORED_USER_CLOUD,
};
use drgw_tests::sim::client::SimClient;
use drgw_tests::testbed::TestBed;
use http::Method;
use serde_json::{json, Value};

/// The gateway's journal (through its admin API) holds no failed record.
async fn assert_no_failed_records(bed: &TestBed) {
    let (_, failed) = drgw::cli::admin_get(&bed.gateway.config_path, "/v1/journal?state=failed")
        .await
        .unwrap();
    assert_eq!(
        failed["records"].as_array().map(Vec::len),
        Some(0),
        "failed records: {failed}"
    );
}

/// Polls `probe` until it returns Some, for up to `limit`.
async fn eventually<T>(
    limit: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<(T, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return Some((v, start.elapsed()));
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn recovery_network(bed: &TestBed, name: &str) -> Option<Value> {
    bed.recovery
        .requests()
        .matching("POST", "/v2.0/networks")
        .into_iter()
        .find(|r| {
            r.body
                .as_ref()
                .is_some_and(|b| b["network"]["name"] == name)
        })
        .and_then(|r| r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gold_silver_bronze_reach_the_recovery_site() {
    let bed = TestBed::start().await.expect("test bed");
    let cli = Arc::new(OpenStackCli::new(&bed.clouds_yaml).expect("the real openstack CLI"));
    let mut demo = SimClient::new();
    demo.login(
        &format!("{}/v3", bed.gateway_url("identity")),
        "demo",
        "demo",
        "demo",
    )
    .await
    .expect("demo logs in through the gateway");
    let network_url = bed.gateway_url("network");

    // Silver (demo's default): journaled at once, applied at the next 5 s checkpoint.
    let created = demo
        .post(
            &format!("{network_url}/v2.0/networks"),
            &json!({"network": {"name": "silver-net"}}),
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.json);
    assert_eq!(created.header("x-dr-tier"), Some("silver"));
    assert_eq!(created.header("x-dr-mirror"), Some("queued"));
    assert!(
        recovery_network(&bed, "silver-net").is_none(),
        "silver must wait for its checkpoint"
    );
    let (_, waited) = eventually(Duration::from_secs(12), || {
        recovery_network(&bed, "silver-net")
    })
    .await
    .expect("silver network applied at a checkpoint");
    println!(
        "silver network applied {:.1} s after the create",
        waited.as_secs_f64()
    );
    let (code, checkpoints) =
        drgw::cli::admin_get(&bed.gateway.config_path, "/v1/checkpoints?tier=silver")
            .await
            .unwrap();
    assert!(code.is_success());
    assert!(
        !checkpoints["checkpoints"].as_array().unwrap().is_empty(),
        "a silver checkpoint was recorded: {checkpoints}"
    );

    // Bronze on request (X-DR-Tier): applied in the background within seconds.
    let bronze = demo
        .send(
            Method::POST,
            &format!("{network_url}/v2.0/networks"),
            Some(&json!({"network": {"name": "bronze-net"}})),
            &[("x-dr-tier", "bronze")],
        )
        .await
        .unwrap();
    assert_eq!(bronze.status, 201, "{}", bronze.json);
    assert_eq!(bronze.header("x-dr-tier"), Some("bronze"));
    let (_, waited) = eventually(Duration::from_secs(5), || {
        recovery_network(&bed, "bronze-net")
    })
    .await
    .expect("bronze network applied within seconds");
    println!(
        "bronze network applied {:.2} s after the create",
        waited.as_secs_f64()
    );

    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        // Gold (the admin project): identity and flavors are at the recovery site when the
        // call returns.
        cli.json("drgw-admin", &["project", "create", "mirror-proj"])?;
        cli.json(
            "drgw-admin",
            &[
                "user",
                "create",
                "--project",
                "mirror-proj",
                "--password",
                "s3cret",
                "mirror-user",
            ],
        )?;
        cli.run(
            "drgw-admin",
            &[
                "role",
                "add",
                "--user",
                "mirror-user",
                "--project",
                "mirror-proj",
                "member",
            ],
        )?;
        let assignments = cli.json(
            "recovery",
            &[
                "role",
                "assignment",
                "list",
                "--user",
                "mirror-user",
                "--project",
                "mirror-proj",
                "--names",
            ],
        )?;
        let text = assignments.to_string();
        anyhow::ensure!(
            text.contains("member") && text.contains("mirror-proj"),
            "role assignment at the recovery site: {assignments}"
        );
        let project = cli.json("recovery", &["project", "show", "mirror-proj"])?;
        anyhow::ensure!(
            project.to_string().contains("dr-tier:gold"),
            "project tag mirrored: {project}"
        );

        // References are translated: the silver subnet points at the recovery copy of its
        // network (whose id differs).
        let primary_net = cli.json("drgw", &["network", "show", "silver-net"])?;
        cli.json(
            "drgw",
            &[
                "subnet",
                "create",
                "--network",
                "silver-net",
                "--subnet-range",
                "10.9.0.0/24",
                "silver-sub",
            ],
        )?;
        let recovery_net = cli.json("recovery", &["network", "show", "silver-net"])?;
        anyhow::ensure!(
            recovery_net["id"] != primary_net["id"],
            "ids differ per site"
        );
        anyhow::ensure!(
            recovery_net.to_string().contains("dr-tier:silver"),
            "tier tag mirrored: {recovery_net}"
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        let subnet = loop {
            let out = cli.exec("recovery", &["subnet", "show", "silver-sub", "-f", "json"])?;
            if out.success() {
                break out.json()?;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "silver subnet never reached the recovery site"
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        anyhow::ensure!(
            subnet["network_id"] == recovery_net["id"],
            "subnet's network translated: {subnet}"
        );
        anyhow::ensure!(subnet["cidr"] == "10.9.0.0/24", "same attributes: {subnet}");

        // Updates and deletes follow (bronze: within seconds).
        cli.run(
            "drgw",
            &[
                "network",
                "set",
                "--description",
                "renamed by the tenant",
                "bronze-net",
            ],
        )?;
        cli.run("drgw", &["network", "delete", "bronze-net"])?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = cli.exec("recovery", &["network", "show", "bronze-net", "-f", "json"])?;
            if !out.success() {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "bronze delete never reached the recovery site"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(())
    })
    .await
    .expect("CLI thread");
    result.unwrap_or_else(|e| panic!("{e:#}"));

    assert_no_failed_records(&bed).await;
    bed.stop().await;
}

/// Every resource type the mirror covers, with the real CLI through the gateway in front of
/// the sandbox sites: the demo tenant's Neutron topology (Silver: network, subnet, security
/// group and rule, router with an interface) and the admin's project, user, role
/// assignment, group, keypair, flavor, volume type with extra specs and image (Gold),
/// created, updated and deleted, each checked directly at the recovery site (attributes,
/// tier tag, references to the recovery copies).
#[tokio::test(flavor = "multi_thread")]
async fn every_mirrored_resource_type_reaches_the_recovery_site() {
    let bed = TestBed::start().await.expect("test bed");
    let tag = format!("{:06x}", rand::random::<u32>() & 0xffffff);
    let through_gateway = format!("{}/v3", bed.gateway_url("identity"));
    let recovery = format!("{}/v3", bed.recovery.endpoints().identity);
    let (project, user, password) = gold_identity(&tag);
    let region = "RegionOne";
    let clouds = [
        CloudEntry::new("gw", &through_gateway, "admin", "secret", "admin", region),
        CloudEntry::new("gw-demo", &through_gateway, "demo", "demo", "demo", region),
        CloudEntry::new("recovery", &recovery, "admin", "secret", "admin", region),
        CloudEntry::new(
            MIRRORED_USER_CLOUD,
            &recovery,
            &user,
            &password,
            &project,
            region,
        ),
    ];
    let path = bed.dir.path().join("scenario-clouds.yaml");
    write_clouds_yaml(&path, &clouds).expect("clouds.yaml");
    let cli = OpenStackCli::new(&path).expect("the real openstack CLI");
    let results = tokio::task::spawn_blocking(move || {
        let mut steps = Steps::new("sandbox");
        neutron_references_at_recovery(&mut steps, &cli);
        gold_resources_at_recovery(&mut steps, &cli, &tag);
        steps.into_results()
    })
    .await
    .expect("CLI thread");
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.ok)
        .map(ToString::to_string)
        .collect();
    assert!(results.len() >= 4, "{results:#?}");
    assert!(failed.is_empty(), "failed steps:\n{}", failed.join("\n"));

    assert_no_failed_records(&bed).await;
    bed.stop().await;
}
