//! The policy stage's look-ups against a simulated site: the flavor size that server
//! quotas count, and the project's domain name that rules may match on.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use drgw::config::{Config, SiteName};
use drgw::gateway::Gateway;
use drgw::metrics::Metrics;
use drgw::operation::{Action, Operation, Service};
use drgw::policy::{EvalContext, PolicyStage, PolicyVerdict, SiteAccess};
use drgw::state::MemoryStore;
use drgw::token::TokenContext;
use drgw_tests::sim::{Site, SiteConfig};
use drgw_tests::testbed::free_ports;
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{json, Value};

const POLICY: &str = r#"
[default]
default_tier = "bronze"

[default.quotas.gold]
vcpus = 3

[[rules]]
name = "by-domain-name"
match = { project_name = "admin", domain = "Default" }
default_tier = "gold"
"#;

#[tokio::test]
async fn server_quotas_count_the_flavor_and_rules_see_the_domain_name() {
    let primary = Site::start(SiteConfig::named("primary"))
        .await
        .expect("primary");
    let recovery = Site::start(SiteConfig::named("recovery"))
        .await
        .expect("recovery");
    let dir = tempfile::tempdir().expect("tempdir");
    let text = drgw::sandbox::sandbox_config(
        dir.path(),
        free_ports(),
        &primary.endpoints().services(),
        &recovery.endpoints().services(),
    );
    let config = Config::parse(&text, dir.path()).expect("config");
    let policy_file = dir.path().join("policy.toml");
    std::fs::write(&policy_file, POLICY).expect("write");
    let gw = Gateway::start(config, Metrics::new())
        .await
        .expect("gateway");
    let metrics = Metrics::new();
    let stage = PolicyStage::load(
        Some(&policy_file),
        Arc::new(MemoryStore::new()),
        &metrics.registry,
    )
    .await
    .unwrap_or_else(|e| panic!("{e:?}"));

    // The flavors' ids are random: find m1.tiny (1 vCPU) and m1.medium (2 vCPUs).
    let token = primary.issue_token("admin", "admin").expect("token");
    let req = Request::get(format!(
        "{}/v2.1/flavors/detail",
        primary.endpoints().compute
    ))
    .header("x-auth-token", token)
    .body(drgw::body::empty())
    .expect("request");
    let (parts, bytes) = gw
        .client(SiteName::Primary)
        .send_full(req, 1 << 20)
        .await
        .expect("flavors");
    assert_eq!(parts.status, StatusCode::OK);
    let flavors: Value = serde_json::from_slice(&bytes).expect("json");
    let id_of = |name: &str| {
        flavors["flavors"]
            .as_array()
            .and_then(|l| l.iter().find(|f| f["name"] == name))
            .and_then(|f| f["id"].as_str())
            .map(str::to_owned)
            .expect("bootstrap flavor")
    };
    let (tiny, medium) = (id_of("m1.tiny"), id_of("m1.medium"));

    let tenant = TokenContext {
        user_id: "u".into(),
        user_name: "admin".into(),
        user_domain_id: "default".into(),
        project_id: primary.project_id("admin"),
        project_name: Some("admin".into()),
        project_domain_id: Some("default".into()),
        domain_id: None,
        roles: vec!["admin".into()],
        expires_at: SystemTime::now() + Duration::from_secs(600),
        site: SiteName::Primary,
    };
    let op = Operation::other(Service::Compute, Action::Create);
    let headers = HeaderMap::new();
    let create = |flavor: &str, count: u64| json!({"server": {"name": "vm", "flavorRef": flavor, "max_count": count}});
    let eval = |body: Value| {
        let (op, tenant, headers, gw) = (&op, &tenant, &headers, &gw);
        let stage = &stage;
        async move {
            let mut body = body;
            stage
                .evaluate(EvalContext {
                    op,
                    method: &Method::POST,
                    path: "/v2.1/servers",
                    tenant,
                    headers,
                    body: Some(&mut body),
                    failed_over: false,
                    site: Some(SiteAccess::of(gw, SiteName::Primary)),
                })
                .await
        }
    };

    // Gold comes from the rule that matches on the domain's *name* (looked up at Keystone).
    let v = eval(create(&tiny, 3)).await;
    let PolicyVerdict::Allow { tier, usage, .. } = &v else {
        panic!("{v:?}")
    };
    assert_eq!(tier.name, "gold");
    let drgw::policy::UsageDelta::Add { resources, .. } = usage else {
        panic!("{usage:?}")
    };
    assert_eq!((resources.vcpus, resources.ram_mb), (3, 3 * 512));

    // Two m1.medium need 4 vCPUs: over the gold quota of 3.
    let v = eval(create(&medium, 2)).await;
    let PolicyVerdict::Deny { status, message } = &v else {
        panic!("{v:?}")
    };
    assert_eq!(*status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        message.contains("3 vcpus at tier gold; 0 in use, 4 more requested"),
        "{message}"
    );

    // A flavor link works as well as an id.
    let link = format!("{}/flavors/{medium}", primary.endpoints().compute);
    let v = eval(create(&link, 1)).await;
    assert!(matches!(v, PolicyVerdict::Allow { .. }), "{v:?}");

    primary.shutdown().await;
    recovery.shutdown().await;
}
