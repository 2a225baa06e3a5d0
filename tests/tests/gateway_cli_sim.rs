//! The real `openstack` CLI, unmodified, through the gateway in front of two simulated sites:
//! everything a tenant does works, and no URL the CLI learns bypasses the gateway.

use std::path::Path;

use drgw_tests::cli::OpenStackCli;
use drgw_tests::testbed::TestBed;
use serde_json::Value;

fn random_file(path: &Path, bytes: usize) {
    let data: Vec<u8> = (0..bytes)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(path, data).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_through_the_gateway_against_the_simulator() {
    let bed = TestBed::start().await.expect("test bed starts");
    let cli = OpenStackCli::new(&bed.clouds_yaml)
        .expect("the real openstack CLI is installed (tests/realstack/install.sh)");
    let gw_ports: Vec<String> = ["identity", "compute", "image", "volume", "network"]
        .iter()
        .map(|s| bed.gateway_url(s))
        .collect();
    let dir = bed.dir.path().to_path_buf();

    // Run the blocking CLI calls off the runtime that serves the gateway and the sites.
    let result = tokio::task::spawn_blocking(move || {
        // token issue
        let token = cli.json("drgw", &["token", "issue"])?;
        anyhow::ensure!(token["project_id"].as_str().is_some_and(|p| !p.is_empty()), "token issue: {token}");

        // catalog list: every URL of every fronted service is the gateway's
        let catalog = cli.json("drgw-admin", &["catalog", "list"])?;
        let mut urls = 0;
        for entry in catalog.as_array().into_iter().flatten() {
            for ep in entry["Endpoints"].as_array().into_iter().flatten() {
                let url = ep["url"].as_str().unwrap_or("");
                anyhow::ensure!(
                    gw_ports.iter().any(|g| url.starts_with(g.as_str())),
                    "catalog URL {url} of {} bypasses the gateway",
                    entry["Type"]
                );
                urls += 1;
            }
        }
        anyhow::ensure!(urls >= 15, "expected 5 services x 3 interfaces, saw {urls} URLs");

        // flavors
        let flavors = cli.json("drgw", &["flavor", "list"])?;
        anyhow::ensure!(flavors.is_array(), "flavor list: {flavors}");
        let flavor = cli.json("drgw-admin", &["flavor", "create", "--vcpus", "1", "--ram", "512", "--disk", "1", "gw-small"])?;
        anyhow::ensure!(flavor["name"] == "gw-small", "flavor create: {flavor}");
        // The admin project is gold in the sandbox policy: the flavor is at the recovery site
        // before the create returned.
        let mirrored = cli.json("recovery", &["flavor", "show", "gw-small"])?;
        anyhow::ensure!(mirrored["id"] == flavor["id"], "gold flavor keeps its id at the recovery site: {mirrored}");

        // keypair with a public key
        let pubkey = dir.join("id.pub");
        std::fs::write(
            &pubkey,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBZ9cYwKqxh0sRq6x4qXhQ2nJ3Tz4wVv9m3lqkV0Yp4K drgw@test\n",
        )?;
        let keypair = cli.json("drgw", &["keypair", "create", "--public-key", pubkey.to_str().unwrap_or_default(), "gw-key"])?;
        anyhow::ensure!(keypair["name"] == "gw-key", "keypair create: {keypair}");

        // network + subnet
        let net = cli.json("drgw", &["network", "create", "gw-net"])?;
        let net_id = net["id"].as_str().unwrap_or_default().to_string();
        anyhow::ensure!(!net_id.is_empty(), "network create: {net}");
        let subnet = cli.json("drgw", &["subnet", "create", "--network", &net_id, "--subnet-range", "10.20.0.0/24", "gw-subnet"])?;
        anyhow::ensure!(subnet["network_id"] == net_id.as_str(), "subnet create: {subnet}");

        // volume type + volume
        let vtype = cli.json("drgw-admin", &["volume", "type", "create", "gw-type"])?;
        anyhow::ensure!(vtype["name"] == "gw-type", "volume type create: {vtype}");
        let volume = cli.json("drgw", &["volume", "create", "--size", "1", "--type", "gw-type", "gw-vol"])?;
        anyhow::ensure!(volume["name"] == "gw-vol", "volume create: {volume}");

        // image create --file + image save: bytes round-trip through the gateway
        let src = dir.join("image.raw");
        random_file(&src, 3 << 20);
        let image = cli.json(
            "drgw",
            &["image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", src.to_str().unwrap_or_default(), "gw-image"],
        )?;
        let image_id = image["id"].as_str().unwrap_or_default().to_string();
        anyhow::ensure!(!image_id.is_empty(), "image create: {image}");
        let saved = dir.join("saved.raw");
        cli.run("drgw", &["image", "save", "--file", saved.to_str().unwrap_or_default(), &image_id])?;
        anyhow::ensure!(std::fs::read(&src)? == std::fs::read(&saved)?, "image save returned different bytes");

        // server create (the simulated server starts in BUILD)
        let server = cli.json(
            "drgw",
            &["server", "create", "--flavor", "gw-small", "--image", &image_id, "--network", &net_id, "gw-server"],
        )?;
        anyhow::ensure!(server["name"] == "gw-server", "server create: {server}");
        let shown = cli.json("drgw", &["server", "show", server["id"].as_str().unwrap_or_default()])?;
        anyhow::ensure!(shown["id"] == server["id"], "server show: {shown}");
        // The demo tenant's default tier (silver) is written on the server.
        anyhow::ensure!(shown.to_string().contains("dr_tier"), "server carries its tier: {shown}");
        Ok::<Value, anyhow::Error>(shown)
    })
    .await
    .expect("CLI thread");
    if let Err(e) = &result {
        panic!("{e:#}");
    }

    // The gateway really was in the path: the server create reached the primary once, and
    // workloads are not started at the recovery site (their spec is a protection record).
    assert_eq!(
        bed.primary
            .requests()
            .matching("POST", "/v2.1/servers")
            .len(),
        1,
        "one server create reached the primary"
    );
    assert!(
        bed.recovery
            .requests()
            .matching("POST", "/v2.1/servers")
            .is_empty(),
        "no server is started at the recovery site"
    );
    bed.stop().await;
}
