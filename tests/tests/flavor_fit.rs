//! A recovery site where the gateway has no admin rights (`admin = false` in its site
//! section, as for a public cloud): flavors created at the primary are not copied but
//! fitted to the smallest existing recovery flavor, the fit is listed by the admin API and
//! used for a protected server's `flavorRef`, and what cannot be mirrored (a flavor that
//! nothing fits, a fitted flavor's extra specs) is reported, not dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drgw::failover::{FailoverController, Site};

use drgw::journal::{RecordFilter, StateFilter};
use drgw_tests::sim::client::SimClient;
use drgw_tests::testbed::TestBed;
use http::{Method, StatusCode};
use serde_json::{json, Value};

async fn post(
    c: &SimClient,
    url: &str,
    body: Value,
    tier: &str,
) -> drgw_tests::sim::client::SimResponse {
    c.send(Method::POST, url, Some(&body), &[("x-dr-tier", tier)])
        .await
        .expect("request")
}

fn flavor(name: &str, vcpus: u64, ram: u64, disk: u64) -> Value {
    json!({"flavor": {"name": name, "vcpus": vcpus, "ram": ram, "disk": disk}})
}

/// The recovery site's flavors, name → id.
async fn recovery_flavors(bed: &TestBed) -> Vec<(String, String)> {
    let c = bed
        .recovery_admin()
        .await
        .expect("admin logs in at the recovery site");
    let list = c
        .get(&format!(
            "{}/v2.1/flavors",
            bed.recovery.endpoints().compute
        ))
        .await
        .expect("flavor list")
        .json;
    list["flavors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flavors_are_fitted_to_existing_recovery_flavors_without_admin_rights() {
    let bed = TestBed::start_with(|config| {
        config.replacen("[sites.recovery]\n", "[sites.recovery]\nadmin = false\n", 1)
    })
    .await
    .expect("test bed");
    assert!(
        !bed.gateway
            .config
            .site(drgw::config::SiteName::Recovery)
            .admin
    );
    let (admin, token) = bed.login("admin", "secret", "admin").await.expect("admin");
    let project = token["token"]["project"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let compute = format!("{}/v2.1", bed.gateway_url("compute"));
    let before = recovery_flavors(&bed).await;
    let small_id = before
        .iter()
        .find(|(n, _)| n == "m1.small")
        .map(|(_, id)| id.clone())
        .expect("the recovery site has m1.small");

    // Gold: fitted before the create returns. 1 vCPU / 1 GiB / 10 GB: m1.tiny has too
    // little RAM, so m1.small (1 vCPU, 2 GiB, 20 GB) is the smallest that holds it.
    let resp = post(
        &admin,
        &format!("{compute}/flavors"),
        flavor("app.small", 1, 1024, 10),
        "gold",
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.json);
    assert_eq!(resp.header("x-dr-mirror"), Some("applied"));
    let app_small = resp.json["flavor"]["id"].as_str().unwrap().to_string();
    let after = recovery_flavors(&bed).await;
    assert_eq!(after, before, "no flavor is created at the recovery site");

    let fits = bed
        .gateway
        .gateway
        .mirror
        .flavor_fits(100)
        .await
        .expect("fits");
    assert_eq!(fits.len(), 1, "{fits:?}");
    assert_eq!(fits[0].primary_id, app_small);
    assert_eq!(fits[0].recovery_id, small_id);
    assert_eq!(fits[0].recovery_name, "m1.small");
    // The same through the authenticated admin API.
    let api = reqwest_get(
        &format!("http://{}/v1/flavor-fits", bed.gateway.config.admin.listen),
        &bed.admin_token(),
    )
    .await;
    assert_eq!(api["flavor_fits"][0]["recovery_name"], "m1.small", "{api}");

    // A protected server refers to the fitted recovery flavor.
    let volume = post(
        &admin,
        &format!("{}/v3/{project}/volumes", bed.gateway_url("volume")),
        json!({"volume": {"name": "boot", "size": 1}}),
        "gold",
    )
    .await;
    assert!(volume.status.is_success(), "{}", volume.json);
    let volume_id = volume.json["volume"]["id"].as_str().unwrap().to_string();
    let server = post(
        &admin,
        &format!("{compute}/servers"),
        json!({"server": {"name": "fit-vm", "flavorRef": app_small,
            "block_device_mapping_v2": [{"boot_index": 0, "uuid": volume_id,
                "source_type": "volume", "destination_type": "volume"}]}}),
        "gold",
    )
    .await;
    assert_eq!(server.status, StatusCode::ACCEPTED, "{}", server.json);
    let server_id = server.json["server"]["id"].as_str().unwrap().to_string();
    let protection = bed
        .gateway
        .gateway
        .mirror
        .protection("compute", "server", &server_id)
        .await
        .expect("state")
        .expect("the server is protected");
    assert_eq!(
        protection.spec.as_ref().unwrap()["server"]["flavorRef"],
        json!(small_id),
        "the restore spec names the fitted recovery flavor"
    );

    // Bronze: a flavor nothing at the recovery site holds is reported failed, naming why.
    let resp = post(
        &admin,
        &format!("{compute}/flavors"),
        flavor("app.huge", 64, 262144, 500),
        "bronze",
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.json);
    let failed = failed_reason(&bed, "no flavor at the recovery site holds 64 vCPU").await;
    assert!(
        failed.contains("m1.medium"),
        "names the largest there: {failed}"
    );

    // Bronze: extra specs of a fitted flavor cannot change at the recovery site: reported.
    let resp = post(
        &admin,
        &format!("{compute}/flavors/{app_small}/os-extra_specs"),
        json!({"extra_specs": {"hw:cpu_policy": "dedicated"}}),
        "bronze",
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.json);
    let failed = failed_reason(&bed, "no admin rights at the recovery site").await;
    assert!(failed.contains("m1.small"), "{failed}");

    // Deleting the primary flavor drops the fit and leaves the recovery flavor alone.
    let resp = admin
        .send(
            Method::DELETE,
            &format!("{compute}/flavors/{app_small}"),
            None,
            &[("x-dr-tier", "gold")],
        )
        .await
        .expect("delete");
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.json);
    let fits = bed.gateway.gateway.mirror.flavor_fits(100).await.unwrap();
    assert!(fits.iter().all(|f| f.primary_id != app_small), "{fits:?}");
    assert_eq!(recovery_flavors(&bed).await, before);

    // After a failover the tenant's primary flavor ID still works: at the recovery site it
    // names the fitted flavor.
    let resp = post(
        &admin,
        &format!("{compute}/flavors"),
        flavor("app.tiny", 1, 256, 1),
        "gold",
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.json);
    let app_tiny = resp.json["flavor"]["id"].as_str().unwrap().to_string();
    let ctrl = Arc::new(FailoverController::new(bed.gateway.gateway.clone()));
    ctrl.planned(Site::Recovery, Duration::from_secs(30), "test")
        .await
        .expect("planned failover");
    let (at_recovery, _) = bed.login("admin", "secret", "admin").await.expect("login");
    let shown = at_recovery
        .get(&format!("{compute}/flavors/{app_tiny}"))
        .await
        .expect("flavor show");
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.json);
    assert_eq!(shown.json["flavor"]["name"], "m1.tiny", "{}", shown.json);
    bed.stop().await;
}

async fn reqwest_get(url: &str, token: &str) -> Value {
    let c = SimClient::new();
    c.send(
        Method::GET,
        url,
        None,
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
    .expect("admin API")
    .json
}

/// Waits for a failed journal record whose reason contains `needle`; its reason.
async fn failed_reason(bed: &TestBed, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let page = bed
            .gateway
            .gateway
            .mirror
            .journal_page(
                &RecordFilter {
                    state: Some(StateFilter::Failed),
                    ..RecordFilter::default()
                },
                None,
                100,
            )
            .await
            .expect("journal");
        for r in &page.records {
            if let drgw::journal::RecordState::Failed { reason, .. } = &r.state {
                if reason.contains(needle) {
                    return reason.clone();
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no failed record says {needle:?}: {:?}",
            page.records
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
