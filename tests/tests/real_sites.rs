//! The real-services tier: two REAL OpenStack sites (Keystone, Nova, Glance, Cinder, Neutron,
//! Placement from PyPI, on loopback with SQLite), started once for the whole binary, then
//! scenarios against them with the real `openstack` CLI and openstacksdk.
//!
//! Own `main` (harness = false): every scenario is a list of named steps, printed as they
//! finish; the run ends with `real_sites: N passed, M failed` and exits non-zero on any
//! failure. It never skips: a missing prerequisite is a failure with a clear message.
//!
//! To add a scenario (e.g. through the gateway), write `fn(&RealTier) -> Vec<StepResult>` and
//! list it in [`SCENARIOS`]; it shares the one pair of started sites.

use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use drgw_tests::cli::{self, scenario, write_clouds_yaml, Cli, StepResult, Steps};
use drgw_tests::mirror_scenarios::{
    access_of_a_deleted_project, gold_identity, gold_resources_at_recovery,
    neutron_references_at_recovery, MIRRORED_USER_CLOUD,
};
use drgw_tests::realsite::{RealSite, RealSites};
use serde_json::Value;

/// What every real-tier scenario gets.
struct RealTier {
    sites: RealSites,
    /// The `openstack` CLI with clouds `primary`, `recovery` (admin) and `primary-demo`,
    /// `recovery-demo` (member of project `demo`), each direct to its site.
    cli: Cli,
    /// Scratch space that lives as long as the run (holds the clouds.yaml).
    #[allow(dead_code)]
    dir: tempfile::TempDir,
}

type Scenario = fn(&RealTier) -> Vec<StepResult>;

/// The scenarios, in order.
const SCENARIOS: &[(&str, Scenario)] = &[
    (
        "openstack CLI walk-through, directly at both sites (in parallel)",
        cli_walkthrough_both_sites,
    ),
    (
        "isolation: a token of one site is refused at the other",
        isolation,
    ),
    (
        "the same walk-through through the gateway (policy, tagging, mirroring to the real recovery site)",
        through_gateway,
    ),
    (
        "contract: the simulator answers like the real services (status and JSON keys)",
        contract,
    ),
    (
        "error bodies: the gateway's own errors are the services' bytes",
        error_bodies,
    ),
    (
        "tempest: Keystone's API tests through the gateway",
        tempest_through_gateway,
    ),
    (
        "tempest: Neutron's API tests through the gateway",
        tempest_neutron_through_gateway,
    ),
    (
        "tempest: Glance's API tests through the gateway",
        tempest_glance_through_gateway,
    ),
    (
        "tempest: Nova's flavor and keypair API tests through the gateway",
        tempest_nova_through_gateway,
    ),
];

/// tempest's identity API tests (the OpenStack conformance suite's part for Keystone, as
/// pinned by `tests/realstack/constraints-tempest.txt`), run with the primary's admin
/// through the gateway: a client that knows the API better than any other, whose every
/// create and delete also goes the gateway's way (policy, tags, mirroring to the real
/// recovery site). None may fail.
fn tempest_through_gateway(t: &RealTier) -> Vec<StepResult> {
    tempest_suite(
        t,
        &Suite {
            name: "tempest.api.identity",
            regex: r"^tempest\.api\.identity",
            // Asserts a new project's tags are exactly the ones asked for.
            left_out: r"ProjectsTestJSON\.test_project_get_equals_list",
            left_out_count: 1,
            available: &[],
            // The pinned suite passes 134 of its 136 tests directly at a site (the 2 left
            // need security compliance, which the sites leave off), 133 without the one
            // left out.
            at_least: 133,
            concurrency: 2,
            prepare: None,
        },
    )
}

/// tempest's Neutron API tests of networks, subnets, ports, routers, security groups,
/// floating IPs and tags, through the gateway, as [`tempest_through_gateway`].
fn tempest_neutron_through_gateway(t: &RealTier) -> Vec<StepResult> {
    tempest_suite(
        t,
        &Suite {
            name: "tempest.api.network (networks, ports, routers, security groups, floating IPs, tags)",
            regex: r"^tempest\.api\.network\.(test_networks|test_ports|test_routers|test_security_groups|test_floating_ips|test_tags)\.",
            // Assert that a resource's tags are exactly the ones set.
            left_out: r"^tempest\.api\.network\.test_tags\.(TagsTest\.test_create_list_show_update_delete_tags|TagsExtTest\.test_create_check_list_and_delete_tags)",
            left_out_count: 2,
            available: &["neutron"],
            // The selection passes 109 tests directly at a site (6 skipped: features the
            // site lacks), 107 without the two left out.
            at_least: 107,
            concurrency: 2,
            prepare: None,
        },
    )
}

/// tempest's Glance v2 API tests (images, their data, members, tags, metadata
/// definitions), through the gateway, as [`tempest_through_gateway`].
fn tempest_glance_through_gateway(t: &RealTier) -> Vec<StepResult> {
    tempest_suite(
        t,
        &Suite {
            name: "tempest.api.image.v2",
            regex: r"^tempest\.api\.image\.v2\.",
            left_out: "^$",
            left_out_count: 0,
            available: &["glance"],
            // 50 pass through the gateway; 23 skip (what the sites leave off: locations,
            // image caching, import by web-download, copy-image or glance-download, ...).
            // Directly at a site, before it loaded the metadata definitions and offered
            // only glance-direct, the same split showed: 48 passed, 20 skipped, 5 failed
            // there as through the gateway.
            at_least: 50,
            // One at a time: two at once, Glance (one SQLite database, its import tasks in
            // threads) once answered a metadefs namespace delete with a 500, at the site.
            concurrency: 1,
            prepare: None,
        },
    )
}

/// tempest's Nova API tests that need no hypervisor: flavors (with extra specs and
/// access), keypairs (also an admin's for another user, 2.10), through the gateway, as
/// [`tempest_through_gateway`]. The flavors tempest reads are made at the primary first,
/// as a cloud has them before any gateway.
fn tempest_nova_through_gateway(t: &RealTier) -> Vec<StepResult> {
    tempest_suite(
        t,
        &Suite {
            name: "tempest.api.compute (flavors, keypairs)",
            regex: r"^tempest\.api\.compute\.(flavors|keypairs|admin\.test_flavors|admin\.test_keypairs_v210)",
            left_out: "^$",
            left_out_count: 0,
            available: &["nova", "neutron", "glance"],
            // 51 pass through the gateway; 5 skip (microversions above 2.1 the
            // configuration does not ask for).
            at_least: 51,
            concurrency: 2,
            prepare: Some(primary_flavors),
        },
    )
}

/// Makes the two flavors tempest's compute tests read (`flavor_ref`, `flavor_ref_alt`)
/// directly at the primary, once; the `tempest.conf` lines naming them.
fn primary_flavors(t: &RealTier) -> anyhow::Result<String> {
    const SCRIPT: &str = r#"
import openstack
c = openstack.connect(cloud="primary")
for fid, ram in (("drgw-tempest-1", 512), ("drgw-tempest-2", 1024)):
    if c.compute.find_flavor(fid, ignore_missing=True) is None:
        c.compute.create_flavor(id=fid, name=fid, ram=ram, vcpus=1, disk=1)
"#;
    t.cli.run_python(SCRIPT, &[])?.ok()?;
    Ok("[compute]\nflavor_ref = drgw-tempest-1\nflavor_ref_alt = drgw-tempest-2\n".into())
}

/// A gateway in this process in front of the real sites (the sandbox's configuration and
/// policy), the runtime it runs on, and its scratch directory.
struct Front {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    gw: drgw_tests::testbed::RunningGateway,
    ports: drgw::sandbox::GatewayPorts,
}

fn gateway_in_front(t: &RealTier) -> anyhow::Result<Front> {
    let rt = tokio::runtime::Runtime::new()?;
    let dir = tempfile::tempdir()?;
    let ports = drgw_tests::testbed::free_ports();
    let config = t.sites.write_gateway_files(dir.path(), ports)?;
    let gw = rt.block_on(drgw_tests::testbed::RunningGateway::start(config))?;
    Ok(Front { rt, dir, gw, ports })
}

/// A selection of tempest's tests, run through the gateway.
struct Suite {
    name: &'static str,
    regex: &'static str,
    /// Tests that assert a resource's tags are exactly the ones the test set. The gateway
    /// adds `dr-tier:<tier>` to every protected project and Neutron resource, as the
    /// design says (DESIGN.md, Tagging), and the gateway walk-through checks it does: run
    /// apart, each must fail, and their failures must name that tag.
    left_out: &'static str,
    left_out_count: u32,
    /// tempest's names of the services declared available besides Keystone.
    available: &'static [&'static str],
    /// Fewer passed than this means the selection was not what it should be.
    at_least: u32,
    /// How many tests run at a time.
    concurrency: u32,
    /// Makes what the tests need at the primary first; more `tempest.conf` lines.
    prepare: Option<fn(&RealTier) -> anyhow::Result<String>>,
}

fn tempest_suite(t: &RealTier, suite: &Suite) -> Vec<StepResult> {
    let mut s = Steps::new("tempest");
    let [primary, _] = t.sites.sites();
    let Front {
        rt,
        dir,
        mut gw,
        ports,
    } = match gateway_in_front(t) {
        Ok(v) => v,
        Err(e) => {
            s.step(
                "start the gateway in front of the real sites",
                || -> anyhow::Result<()> { Err(e) },
            );
            return s.into_results();
        }
    };
    let auth = format!("http://127.0.0.1:{}/v3", ports.identity);
    let extra_config = match suite.prepare {
        Some(prepare) => s
            .step("what the tests need, made at the primary", || prepare(t))
            .unwrap_or_default(),
        None => String::new(),
    };
    s.step(
        &format!("{} through the gateway: none fails", suite.name),
        || {
            let totals = drgw_tests::tempest::run(
                &dir.path().join("tempest"),
                &auth,
                &primary.admin,
                &primary.region,
                (suite.regex, suite.left_out),
                suite.available,
                &extra_config,
                suite.concurrency,
            )?;
            println!("    {totals}");
            ensure!(totals.failed == 0, "{totals}");
            ensure!(totals.passed >= suite.at_least, "{totals}");
            Ok(())
        },
    );
    s.step(
        "the mirror kept up: tempest's changes applied at the recovery site, none failed",
        || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let results = loop {
                let text = rt.block_on(admin_metrics(&gw, ports.admin))?;
                let pending: f64 = series(&text, "drgw_journal_pending").map(|(_, v)| v).sum();
                if pending == 0.0 {
                    break mirror_results(&text);
                }
                ensure!(
                    Instant::now() < deadline,
                    "{pending} journal records still pending after 120 s"
                );
                std::thread::sleep(Duration::from_millis(500));
            };
            println!("    mirror operations by result: {results:?}");
            let count = |r: &str| {
                results
                    .iter()
                    .find(|(k, _)| k == r)
                    .map_or(0.0, |(_, v)| *v)
            };
            ensure!(count("applied") > 0.0, "nothing applied: {results:?}");
            for bad in ["failed", "journal_error", "degraded", "rejected"] {
                if count(bad) > 0.0 {
                    let failed = rt
                        .block_on(admin_get(&gw, ports.admin, "/v1/journal?state=failed"))
                        .unwrap_or_else(|e| e.to_string());
                    anyhow::bail!(
                        "{bad}: {results:?}; failed records: {}",
                        failed.chars().take(6000).collect::<String>()
                    );
                }
            }
            Ok(())
        },
    );
    if suite.left_out_count == 0 {
        rt.block_on(gw.stop());
        drop(dir);
        return s.into_results();
    }
    s.step(
        "the tests left out fail on the tier tag the gateway adds",
        || {
            let totals = drgw_tests::tempest::run(
                &dir.path().join("tempest-tags"),
                &auth,
                &primary.admin,
                &primary.region,
                (suite.left_out, "^$"),
                suite.available,
                &extra_config,
                suite.concurrency,
            )?;
            println!(
                "    alone: {} passed, {} failed (as they must)",
                totals.passed, totals.failed
            );
            ensure!(totals.failed == suite.left_out_count, "{totals}");
            ensure!(
                totals.failure_output.contains("dr-tier:"),
                "not the tier tag: {totals}"
            );
            Ok(())
        },
    );
    rt.block_on(gw.stop());
    drop(dir);
    s.into_results()
}

/// The admin listener's `/metrics` text, read with the gateway's admin token.
async fn admin_metrics(
    gw: &drgw_tests::testbed::RunningGateway,
    admin_port: u16,
) -> anyhow::Result<String> {
    admin_get(gw, admin_port, "/metrics").await
}

/// A GET of the admin listener's `path`, with the gateway's admin token: the body.
async fn admin_get(
    gw: &drgw_tests::testbed::RunningGateway,
    admin_port: u16,
    path: &str,
) -> anyhow::Result<String> {
    let bearer = format!("Bearer {}", gw.admin_token());
    let resp = drgw_tests::sim::client::SimClient::new()
        .send(
            http::Method::GET,
            &format!("http://127.0.0.1:{admin_port}{path}"),
            None,
            &[("authorization", &bearer)],
        )
        .await?;
    ensure!(resp.status == 200, "{path}: {}", resp.status);
    Ok(String::from_utf8_lossy(&resp.bytes).into_owned())
}

/// The samples of the metric `name` in a Prometheus text: (labels, value).
fn series<'t>(text: &'t str, name: &'t str) -> impl Iterator<Item = (&'t str, f64)> + 't {
    text.lines().filter_map(move |l| {
        let rest = l.strip_prefix(name)?;
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        Some((labels, value.trim().parse().ok()?))
    })
}

/// `drgw_mirror_operations_total` summed by its `result` label.
fn mirror_results(text: &str) -> Vec<(String, f64)> {
    let mut by_result: Vec<(String, f64)> = Vec::new();
    for (labels, v) in series(text, "drgw_mirror_operations_total") {
        let result = labels
            .split(',')
            .find_map(|l| l.strip_prefix("result=\""))
            .map(|r| r.trim_end_matches('"').to_string())
            .unwrap_or_default();
        match by_result.iter_mut().find(|(k, _)| *k == result) {
            Some((_, n)) => *n += v,
            None => by_result.push((result, v)),
        }
    }
    by_result
}

/// Each real service made to fail (missing resource, bad token; Glance on each `Accept`),
/// and the gateway's fault module asked for the same status and message: the same
/// `Content-Type` and the same bytes (see `drgw_tests::fault_bytes`).
fn error_bodies(t: &RealTier) -> Vec<StepResult> {
    let mut s = Steps::new("error bodies");
    let [primary, _] = t.sites.sites();
    let compared = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(drgw_tests::fault_bytes::compare(&endpoints(primary))));
    match compared {
        Ok(comparisons) => {
            for c in comparisons {
                s.step(&c.call, || match &c.difference {
                    None => Ok(()),
                    Some(d) => Err(anyhow::anyhow!("{d}")),
                });
            }
        }
        Err(e) => {
            s.step("make the real services fail", || -> anyhow::Result<()> {
                Err(e)
            });
        }
    }
    s.into_results()
}

/// The same raw API calls against the real primary and a simulated site, compared call by
/// call (status code and JSON key structure); prints the count and every difference.
fn contract(t: &RealTier) -> Vec<StepResult> {
    let mut s = Steps::new("contract");
    s.step_noted("real vs simulator", |note| {
        let rt = tokio::runtime::Runtime::new()?;
        let [primary, _] = t.sites.sites();
        let real = rt.block_on(drgw_tests::contract::run(&endpoints(primary)))?;
        let sim = rt.block_on(async {
            let site = drgw_tests::sim::Site::start(drgw_tests::sim::SiteConfig::named("contract"))
                .await?;
            let sim_site = site.endpoints().services();
            let obs = drgw_tests::contract::run(&sim_site).await;
            site.shutdown().await;
            obs
        })?;
        let report = drgw_tests::contract::compare(&real, &sim);
        println!("{}", report.summary());
        for d in &report.differences {
            println!("  unexplained: {d}");
        }
        for d in &report.explained {
            println!("  explained: {d}");
        }
        *note = format!(
            "{} calls, {} unexplained differences, {} explained",
            report.calls,
            report.differences.len(),
            report.explained.len()
        );
        ensure!(report.calls >= 25, "only {} calls compared", report.calls);
        ensure!(
            report.differences.is_empty(),
            "{} unexplained differences between the real site and the simulator (fix the \
             simulator, or list a test-bed artifact in contract::KNOWN_DIFFERENCES): {:?}",
            report.differences.len(),
            report.differences
        );
        Ok(())
    });
    s.into_results()
}

/// The base URLs of a real site in the form the gateway's sandbox configuration takes.
fn endpoints(site: &RealSite) -> drgw::sandbox::SimEndpoints {
    site.urls.services.clone()
}

/// The gateway (in this process, the sandbox's configuration and policy: admin is gold,
/// demo silver) in front of the two real sites; the CLI walk-through through it, then what
/// the tenant sees (catalog) and what the recovery site received (gold at once, silver at
/// the next checkpoint).
fn through_gateway(t: &RealTier) -> Vec<StepResult> {
    let mut s = Steps::new("gateway");
    let tag = format!("{:06x}", rand::random::<u32>() & 0xffffff);
    let setup = (|| -> anyhow::Result<_> {
        let front = gateway_in_front(t)?;
        let Front { rt, dir, gw, ports } = &front;
        let [primary, recovery] = t.sites.sites();
        rt.block_on(drgw::sandbox::create_volume_types(&gw.gateway))?;
        let auth = format!("http://127.0.0.1:{}/v3", ports.identity);
        let mut clouds = t.sites.direct_clouds();
        clouds.push(primary.admin_cloud("gw").via("gw", &auth));
        clouds.push(primary.demo_cloud("gw-demo").via("gw-demo", &auth));
        let (project, user, password) = gold_identity(&tag);
        clouds.push(recovery.cloud(
            MIRRORED_USER_CLOUD,
            &drgw_tests::realsite::Credentials::new(&user, &password, &project),
        ));
        let path = dir.path().join("clouds.yaml");
        write_clouds_yaml(&path, &clouds)?;
        let cli = Cli::new(&path)?;
        Ok((front, cli))
    })();
    let (
        Front {
            rt,
            dir,
            mut gw,
            ports,
        },
        cli,
    ) = match setup {
        Ok(v) => v,
        Err(e) => {
            s.step(
                "start the gateway in front of the real sites",
                || -> anyhow::Result<()> { Err(e) },
            );
            return s.into_results();
        }
    };
    let mut results = scenario(&cli, "gw");
    let gateway_ports = [
        ports.identity,
        ports.compute,
        ports.image,
        ports.volume,
        ports.network,
    ];
    s.step(
        "catalog through the gateway: every URL of the five services is the gateway's",
        || {
            let catalog = cli.json("gw", &["catalog", "list"])?;
            let mut seen = 0;
            for entry in catalog.as_array().into_iter().flatten() {
                if entry["Type"] == "placement" {
                    continue;
                }
                for ep in entry["Endpoints"].as_array().into_iter().flatten() {
                    let url = ep["url"].as_str().unwrap_or("");
                    ensure!(
                        gateway_ports
                            .iter()
                            .any(|p| url.starts_with(&format!("http://127.0.0.1:{p}"))),
                        "{} endpoint {url} bypasses the gateway",
                        entry["Type"]
                    );
                    seen += 1;
                }
            }
            ensure!(seen >= 15, "only {seen} endpoints");
            Ok(())
        },
    );
    endpoint_named_by_another_host(&mut s, &cli, t.sites.sites()[0], &gateway_ports);
    s.step(
        "gold (admin) flavor is at the real recovery site when the create returns",
        || {
            let name = format!("gw-gold-{:06x}", rand::random::<u32>() & 0xffffff);
            let flavor = cli.json(
                "gw",
                &[
                    "flavor", "create", "--vcpus", "1", "--ram", "256", "--disk", "1", &name,
                ],
            )?;
            let mirrored = cli.json("recovery", &["flavor", "show", &name])?;
            ensure!(
                mirrored["id"] == flavor["id"],
                "same id at the recovery site: {mirrored}"
            );
            cli.run("gw", &["flavor", "delete", &name])?;
            Ok(())
        },
    );
    s.step(
        "silver (demo) network reaches the real recovery site at a checkpoint, tagged",
        || {
            let name = format!("gw-silver-{:06x}", rand::random::<u32>() & 0xffffff);
            let net = cli.json("gw-demo", &["network", "create", &name])?;
            ensure!(
                net.to_string().contains("dr-tier:silver"),
                "tagged at the primary: {net}"
            );
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let out = cli.exec("recovery", &["network", "show", &name, "-f", "json"])?;
                if out.success() {
                    let mirrored = out.json()?;
                    ensure!(
                        mirrored["id"] != net["id"],
                        "the recovery copy has its own id"
                    );
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "not at the recovery site after 30 s"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
            Ok(())
        },
    );
    neutron_references_at_recovery(&mut s, &cli);
    gold_resources_at_recovery(&mut s, &cli, &tag);
    access_of_a_deleted_project(&mut s, &cli, &tag);
    access_log_joins_the_services_logs(&mut s, dir.path(), t.sites.sites()[0]);
    failover_through_gateway(&mut s, &rt, &gw, &cli);
    let (code, failed) = rt
        .block_on(drgw::cli::admin_get(
            &gw.config_path,
            "/v1/journal?state=failed",
        ))
        .unwrap_or((http::StatusCode::INTERNAL_SERVER_ERROR, Value::Null));
    s.step("no mirror record failed", || {
        ensure!(code.is_success(), "admin API: {code}");
        let records = failed["records"].as_array().map(Vec::len).unwrap_or(0);
        ensure!(records == 0, "failed records: {failed}");
        Ok(())
    });
    rt.block_on(gw.stop());
    results.extend(s.into_results());
    results
}

/// `openstack endpoint create` of Nova's endpoint under the name `localhost` (the gateway's
/// configuration names 127.0.0.1, as one names a VIP's address and the catalog its host
/// name), then `endpoint list` and `endpoint show` through the gateway: every fronted
/// service's URL is the gateway's, the new one too (known by its service, not its URL).
/// `gateway_ports`: identity, compute, image, volume, network.
fn endpoint_named_by_another_host(
    s: &mut Steps,
    cli: &Cli,
    primary: &RealSite,
    gateway_ports: &[u16; 5],
) {
    s.step(
        "endpoint list through the gateway: an endpoint named by another host is the gateway's",
        || {
            let nova = &primary.urls.services.compute;
            let aliased = format!("{}/v2.1", nova.replace("127.0.0.1", "localhost"));
            ensure!(
                aliased.contains("localhost"),
                "nova's URL {nova} names 127.0.0.1"
            );
            let expected = format!("http://127.0.0.1:{}/v2.1", gateway_ports[1]);
            let created = cli.json(
                "gw",
                &[
                    "endpoint",
                    "create",
                    "--region",
                    &primary.region,
                    "compute",
                    "internal",
                    &aliased,
                ],
            )?;
            let id = created["id"].as_str().unwrap_or_default().to_string();
            ensure!(!id.is_empty(), "endpoint create: {created}");
            let checked = (|| {
                let list = cli.json("gw", &["endpoint", "list"])?;
                let mut ours = None;
                for ep in list.as_array().into_iter().flatten() {
                    let url = ep["URL"].as_str().unwrap_or("");
                    if ep["ID"] == id.as_str() {
                        ours = Some(url.to_string());
                    }
                    if ep["Service Type"] == "placement" {
                        continue;
                    }
                    ensure!(
                        gateway_ports
                            .iter()
                            .any(|p| url.starts_with(&format!("http://127.0.0.1:{p}/"))
                                || url == format!("http://127.0.0.1:{p}")),
                        "{} endpoint {url} bypasses the gateway",
                        ep["Service Type"]
                    );
                }
                ensure!(
                    ours.as_deref() == Some(expected.as_str()),
                    "ours listed as {ours:?}"
                );
                let shown = cli.json("gw", &["endpoint", "show", &id])?;
                ensure!(shown["url"] == expected.as_str(), "endpoint show: {shown}");
                Ok(())
            })();
            cli.run("gw", &["endpoint", "delete", &id])?;
            checked
        },
    );
}

/// The gateway's access log (the sandbox configuration writes `access.log` beside it)
/// after the CLI walk-through: a line per call, and for a real Nova call the line's two ids
/// (Nova's own, which the CLI got, and the one the gateway sent) are on one line of Nova's
/// log, which names the gateway's as the call's `global_request_id`.
fn access_log_joins_the_services_logs(
    s: &mut Steps,
    gateway_dir: &std::path::Path,
    primary: &RealSite,
) {
    s.step_noted(
        "access log: a line per call; Nova logged the gateway's request id as the global one",
        |note| {
            let text = std::fs::read_to_string(gateway_dir.join("access.log"))?;
            let lines = text
                .lines()
                .map(serde_json::from_str::<Value>)
                .collect::<Result<Vec<_>, _>>()?;
            ensure!(lines.len() >= 20, "only {} lines: {text}", lines.len());
            let compute: Vec<(&str, &str)> = lines
                .iter()
                .filter(|l| l["service"] == "compute" && l["site"] == "primary")
                .filter_map(|l| Some((l["request_id"].as_str()?, l["global_request_id"].as_str()?)))
                .filter(|(local, global)| local != global)
                .collect();
            ensure!(
                !compute.is_empty(),
                "no compute line with Nova's own request id: {text}"
            );
            let mut service_logs = String::new();
            for entry in std::fs::read_dir(primary.log_dir())? {
                let path = entry?.path();
                if path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("nova"))
                {
                    service_logs.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
                }
            }
            let joined = compute
                .iter()
                .filter(|(local, global)| {
                    service_logs
                        .lines()
                        .any(|l| l.contains(local) && l.contains(global))
                })
                .count();
            ensure!(
                joined > 0,
                "none of {} compute calls has its two ids on one line of Nova's log",
                compute.len()
            );
            *note = format!(
                "{} lines; {joined} of {} Nova calls found in Nova's log by both ids",
                lines.len(),
                compute.len()
            );
            Ok(())
        },
    );
}

/// Planned failover and failback through the gateway, with the real services: the demo
/// tenant keeps its network's primary ID at the real recovery site, logs in at the real
/// recovery Keystone, and sees a catalog of gateway URLs in the region its cloud names.
fn failover_through_gateway(
    s: &mut Steps,
    rt: &tokio::runtime::Runtime,
    gw: &drgw_tests::testbed::RunningGateway,
    cli: &Cli,
) {
    let switch = |path: &str, body: Value| -> anyhow::Result<Value> {
        let (code, report) = rt.block_on(drgw::cli::admin_call(
            &gw.config_path,
            http::Method::POST,
            path,
            Some(body),
        ))?;
        ensure!(code.is_success(), "{path}: {code} {report}");
        Ok(report)
    };
    let name = format!("gw-failover-{:06x}", rand::random::<u32>() & 0xffffff);
    let created = s.step(
        "failover: a bronze network of the demo tenant is mirrored",
        || {
            let net = cli.json("gw-demo", &["network", "create", &name])?;
            let id = net["id"].as_str().unwrap_or_default().to_string();
            cli.run(
                "gw-demo",
                &["network", "set", "--no-tag", "--tag", "dr-tier:bronze", &id],
            )?;
            let deadline = Instant::now() + Duration::from_secs(30);
            while !cli
                .exec("recovery", &["network", "show", &name, "-f", "json"])?
                .success()
            {
                ensure!(Instant::now() < deadline, "not mirrored after 30 s");
                std::thread::sleep(Duration::from_millis(500));
            }
            Ok(id)
        },
    );
    let Some(id) = created else {
        return;
    };
    let switched = s.step("failover: planned switch to the real recovery site", || {
        let started = Instant::now();
        let report = switch(
            "/v1/failover",
            serde_json::json!({"to": "recovery", "mode": "planned"}),
        )?;
        println!(
            "real tier: planned failover in {:.2} s (flip {} ms)",
            started.elapsed().as_secs_f64(),
            report["report"]["flip_ms"]
        );
        Ok(())
    });
    if switched.is_none() {
        return;
    }
    s.step(
        "failover: demo logs in at the real recovery Keystone, catalog in RegionOne via the gateway",
        || {
            cli.json("gw-demo", &["token", "issue"])?;
            let catalog = cli.json("gw-demo", &["catalog", "list"])?;
            let mut seen = 0;
            for entry in catalog.as_array().into_iter().flatten() {
                if entry["Type"] == "placement" {
                    continue;
                }
                for ep in entry["Endpoints"].as_array().into_iter().flatten() {
                    ensure!(ep["region"] == "RegionOne", "{} endpoint region: {ep}", entry["Type"]);
                    seen += 1;
                }
            }
            ensure!(seen >= 15, "only {seen} endpoints: {catalog}");
            Ok(())
        },
    );
    s.step(
        "failover: the network answers to its primary ID at the real recovery site",
        || {
            let shown = cli.json("gw-demo", &["network", "show", &id])?;
            ensure!(
                shown["id"] == id.as_str() && shown["name"] == name.as_str(),
                "{shown}"
            );
            let direct = cli.json("recovery", &["network", "show", &name])?;
            ensure!(
                direct["id"] != id.as_str(),
                "the recovery copy has its own ID"
            );
            cli.run(
                "gw-demo",
                &["network", "set", "--description", "failed over", &id],
            )?;
            let direct = cli.json("recovery", &["network", "show", &name])?;
            ensure!(direct["description"] == "failed over", "{direct}");
            Ok(())
        },
    );
    s.step("failback: planned switch back; the ID still works", || {
        switch("/v1/failback", serde_json::json!({"mode": "planned"}))?;
        let shown = cli.json("gw-demo", &["network", "show", &id])?;
        ensure!(shown["name"] == name.as_str(), "{shown}");
        cli.run("gw-demo", &["network", "delete", &id])?;
        Ok(())
    });
}

/// [`scenario`] against `primary` and `recovery` at the same time (they are independent).
fn cli_walkthrough_both_sites(t: &RealTier) -> Vec<StepResult> {
    std::thread::scope(|s| {
        let handles: Vec<_> = t
            .sites
            .sites()
            .into_iter()
            .map(|site| s.spawn(|| scenario(&t.cli, &site.name)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![StepResult {
                        name: "scenario thread".into(),
                        ok: false,
                        detail: "panicked".into(),
                        elapsed: Duration::ZERO,
                    }]
                })
            })
            .collect()
    })
}

/// Statuses of GETs with `cloud`'s token on each URL (`{project_id}` is substituted),
/// through openstacksdk/requests in the venv's python.
fn statuses_with_token_of(cli: &Cli, cloud: &str, urls: &[String]) -> anyhow::Result<Value> {
    const SCRIPT: &str = r#"
import json, os, requests, openstack
conn = openstack.connect(cloud=os.environ["CLOUD"])
tok, pid = conn.session.get_token(), conn.session.get_project_id()
out = {}
for u in json.loads(os.environ["URLS"]):
    r = requests.get(u.replace("{project_id}", pid), headers={"X-Auth-Token": tok}, timeout=60)
    out[u] = r.status_code
print(json.dumps(out))
"#;
    let urls = serde_json::to_string(urls)?;
    cli.run_python(SCRIPT, &[("CLOUD", cloud), ("URLS", &urls)])?
        .ok()?
        .json()
}

/// Authenticated URLs of every API service of a site.
fn api_urls(site: &RealSite) -> Vec<String> {
    let u = &site.urls.services;
    vec![
        format!("{}/v3/projects", u.identity),
        format!("{}/v2.1/flavors", u.compute),
        format!("{}/v2/images", u.image),
        format!("{}/v3/{{project_id}}/types", u.volume),
        format!("{}/v2.0/networks", u.network),
        format!("{}/resource_providers", site.urls.placement),
    ]
}

fn isolation(t: &RealTier) -> Vec<StepResult> {
    let mut s = Steps::new("isolation");
    let [a, b] = t.sites.sites();
    for (from, to) in [(a, b), (b, a)] {
        s.step(
            &format!(
                "{} token refused by every {} service, accepted by its own",
                from.name, to.name
            ),
            || {
                let mut urls = api_urls(from);
                urls.extend(api_urls(to));
                let st = statuses_with_token_of(&t.cli, &from.name, &urls)?;
                for u in api_urls(from) {
                    ensure!(st[&u] == 200, "own site {u}: {}", st[&u]);
                }
                for u in api_urls(to) {
                    ensure!(
                        st[&u] == 401,
                        "other site {u} answered {} (want 401)",
                        st[&u]
                    );
                }
                Ok(())
            },
        );
        s.step(
            &format!(
                "openstack v3token auth: {} token rejected by {} keystone",
                from.name, to.name
            ),
            || {
                let token =
                    cli::field(&t.cli.json(&from.name, &["token", "issue"])?, "id")?.to_string();
                let with_token = |site: &RealSite| {
                    t.cli.exec_raw(&[
                        "--os-auth-type",
                        "v3token",
                        "--os-token",
                        &token,
                        "--os-auth-url",
                        &site.keystone_url,
                        "--os-project-name",
                        "admin",
                        "--os-project-domain-name",
                        "Default",
                        "--os-region-name",
                        &site.region,
                        "project",
                        "list",
                        "-f",
                        "json",
                    ])
                };
                with_token(from)?
                    .ok()
                    .context("positive control at the issuing site")?;
                let other = with_token(to)?;
                ensure!(
                    !other.success(),
                    "{} accepted a token of {}: {}",
                    to.name,
                    from.name,
                    other.stdout
                );
                // keystone answers a token it cannot decrypt with 404 "Could not recognize Fernet
                // token" when it is exchanged (v3token auth), 401 when it authenticates a call
                ensure!(
                    other.stderr.contains("HTTP 404") || other.stderr.contains("HTTP 401"),
                    "expected a 401/404 refusal, got: {}",
                    other.stderr.trim()
                );
                Ok(())
            },
        );
    }
    s.into_results()
}

/// True if something accepts connections on 127.0.0.1:`port`.
fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

fn main() -> ExitCode {
    let t0 = Instant::now();
    let mut results: Vec<StepResult> = Vec::new();
    let mut timings: Vec<(String, Duration)> = Vec::new();

    println!("real_sites: starting two real OpenStack sites (primary :15000 RegionOne, recovery :16000 RegionTwo)");
    let started = Instant::now();
    let setup = (|| -> anyhow::Result<RealTier> {
        let sites = RealSites::start()?;
        let dir = tempfile::Builder::new()
            .prefix("drgw-real-sites-")
            .tempdir()?;
        let clouds = dir.path().join("clouds.yaml");
        write_clouds_yaml(&clouds, &sites.direct_clouds())?;
        let cli = Cli::new(&clouds)?;
        Ok(RealTier { sites, cli, dir })
    })();
    let tier = match setup {
        Ok(t) => t,
        Err(e) => {
            let r = StepResult {
                name: "start both real sites".into(),
                ok: false,
                detail: format!("{e:#}"),
                elapsed: started.elapsed(),
            };
            println!("{r}");
            println!("real_sites: 0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    };
    timings.push((
        "venv install (install.sh, cached)".into(),
        tier.sites.venv_time,
    ));
    for site in tier.sites.sites() {
        timings.push((format!("start {} (fresh)", site.name), site.startup));
    }
    timings.push(("start both sites (parallel)".into(), tier.sites.start_time));
    results.push(StepResult {
        name: "start both real sites".into(),
        ok: true,
        detail: format!("state in {}", tier.sites.state_root().display()),
        elapsed: started.elapsed(),
    });

    // `DRGW_REAL_SCENARIOS=word`: only the scenarios whose name contains it (for working on
    // one; CI runs them all).
    let only = std::env::var("DRGW_REAL_SCENARIOS").unwrap_or_default();
    for (name, run) in SCENARIOS {
        if !name.contains(only.as_str()) {
            continue;
        }
        println!("--- {name}");
        let t = Instant::now();
        results.extend(run(&tier));
        timings.push((format!("scenario: {name}"), t.elapsed()));
    }
    let (calls, cli_time) = tier.cli.stats();

    // Stop by PID and check that nothing is left listening.
    println!("--- stop");
    let mut s = Steps::new("stop");
    let ports: Vec<u16> = tier
        .sites
        .sites()
        .iter()
        .flat_map(|site| (0..6).map(move |o| site.base_port + o))
        .collect();
    let RealTier { sites, cli, dir } = tier;
    drop(cli);
    let t = Instant::now();
    s.step(
        "both sites stopped by PID, state purged, ports free",
        || {
            let root = sites.state_root().to_path_buf();
            sites.stop()?;
            ensure!(!root.exists(), "{} still exists", root.display());
            let busy: Vec<u16> = ports.iter().copied().filter(|p| listening(*p)).collect();
            ensure!(busy.is_empty(), "still listening on {busy:?}");
            Ok(())
        },
    );
    timings.push(("stop both sites".into(), t.elapsed()));
    drop(dir);
    results.extend(s.into_results());

    println!("--- timings");
    for (what, d) in &timings {
        println!("  {what:<70} {:>7.1} s", d.as_secs_f64());
    }
    if calls > 0 {
        println!(
            "  {:<70} {:>7.1} s total, {:.2} s avg over {calls} calls",
            "openstack CLI / python calls",
            cli_time.as_secs_f64(),
            cli_time.as_secs_f64() / calls as f64
        );
    }
    println!(
        "  {:<70} {:>7.1} s",
        "whole real tier",
        t0.elapsed().as_secs_f64()
    );
    let (passed, failed) = cli::tally(&results);
    if failed > 0 {
        println!("--- failures");
        for r in results.iter().filter(|r| !r.ok) {
            println!("{r}");
        }
    }
    println!("real_sites: {passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
