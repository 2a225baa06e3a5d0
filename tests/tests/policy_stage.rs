//! The gateway's policy stage without a network: tier tagging per service, requested tiers,
//! native-format denials, capacity quotas, volume type rewrites, delete denials, usage
//! bookkeeping, reloads (by call and by file change) and the `drgw policy` CLI functions.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use drgw::config::SiteName;
use drgw::metrics::Metrics;
use drgw::mutation::{GoldFailure, MirrorMode};
use drgw::operation::{Action, Operation, Service};
use drgw::policy::{
    add_tag_to_response, cli, neutron_tag_path, AfterCreate, EvalContext, PolicyStage,
    PolicyVerdict, UsageDelta,
};
use drgw::state::MemoryStore;
use drgw::token::TokenContext;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

const POLICY: &str = r#"
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

[[default.deny]]
operation = "*:delete_*"
tier = "gold"
reason = "gold resources cannot be deleted through the gateway"

[default.quotas.silver]
vcpus = 4
servers = 2
volume_gb = 10

[[rules]]
name = "demo"
match = { project_name = "demo", domain = "default" }
default_tier = "silver"
allowed_tiers = ["bronze", "silver"]

[[rules]]
name = "admin"
match = { project_name = "admin", domain = "default" }
default_tier = "gold"
on_failure = "degrade"
"#;

fn token(project: &str) -> TokenContext {
    TokenContext {
        user_id: format!("u-{project}"),
        user_name: project.to_owned(),
        user_domain_id: "default".to_owned(),
        project_id: Some(format!("p-{project}")),
        project_name: Some(project.to_owned()),
        project_domain_id: Some("default".to_owned()),
        domain_id: None,
        roles: vec!["member".to_owned()],
        expires_at: SystemTime::now() + Duration::from_secs(3600),
        site: SiteName::Primary,
    }
}

struct Bed {
    stage: Arc<PolicyStage>,
    metrics: Metrics,
    _dir: tempfile::TempDir,
    file: std::path::PathBuf,
}

async fn bed(text: &str) -> Bed {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("policy.toml");
    std::fs::write(&file, text).expect("write policy");
    let metrics = Metrics::new();
    let stage = PolicyStage::load(Some(&file), Arc::new(MemoryStore::new()), &metrics.registry)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    Bed {
        stage: Arc::new(stage),
        metrics,
        _dir: dir,
        file,
    }
}

/// Evaluates a call as today's classifier reports it (`Other` for most paths).
async fn eval(
    stage: &PolicyStage,
    service: Service,
    method: Method,
    path: &str,
    tenant: &TokenContext,
    headers: &HeaderMap,
    body: Option<&mut Value>,
) -> PolicyVerdict {
    let action = match method {
        Method::GET | Method::HEAD => Action::Read,
        Method::POST => Action::Create,
        Method::DELETE => Action::Delete,
        _ => Action::Update,
    };
    let op = Operation::other(service, action);
    stage
        .evaluate(EvalContext {
            op: &op,
            method: &method,
            path,
            tenant,
            headers,
            body,
            failed_over: false,
            site: None,
        })
        .await
}

fn allowed_tier(v: &PolicyVerdict) -> &str {
    match v {
        PolicyVerdict::Allow { tier, .. } => &tier.name,
        other => panic!("expected allow, got {other:?}"),
    }
}

#[tokio::test]
async fn creates_carry_the_default_tier_in_each_services_own_place() {
    let b = bed(POLICY).await;
    let demo = token("demo");
    let h = HeaderMap::new();

    let mut server = json!({"server": {"name": "vm", "flavorRef": "1", "imageRef": "i"}});
    let v = eval(
        &b.stage,
        Service::Compute,
        Method::POST,
        "/v2.1/servers",
        &demo,
        &h,
        Some(&mut server),
    )
    .await;
    assert_eq!(allowed_tier(&v), "silver");
    assert_eq!(server["server"]["metadata"]["dr_tier"], "silver");
    let PolicyVerdict::Allow {
        tier,
        after_create,
        usage,
    } = &v
    else {
        unreachable!()
    };
    assert_eq!(
        tier.mode,
        MirrorMode::Periodic {
            interval: Duration::from_secs(5)
        }
    );
    assert_eq!(*after_create, None);
    assert!(matches!(usage, UsageDelta::Add { .. }));

    let mut volume = json!({"volume": {"size": 1, "metadata": {"owner": "x"}}});
    let v = eval(
        &b.stage,
        Service::BlockStorage,
        Method::POST,
        "/v3/p-demo/volumes",
        &demo,
        &h,
        Some(&mut volume),
    )
    .await;
    assert_eq!(allowed_tier(&v), "silver");
    assert_eq!(
        volume["volume"]["metadata"],
        json!({"owner": "x", "dr_tier": "silver"})
    );

    let mut image = json!({"name": "img", "disk_format": "qcow2"});
    let v = eval(
        &b.stage,
        Service::Image,
        Method::POST,
        "/v2/images",
        &demo,
        &h,
        Some(&mut image),
    )
    .await;
    assert_eq!(allowed_tier(&v), "silver");
    assert_eq!(image["dr_tier"], "silver");

    let mut project = json!({"project": {"name": "child", "tags": ["team-a"]}});
    let v = eval(
        &b.stage,
        Service::Identity,
        Method::POST,
        "/v3/projects",
        &demo,
        &h,
        Some(&mut project),
    )
    .await;
    assert_eq!(allowed_tier(&v), "silver");
    assert_eq!(
        project["project"]["tags"],
        json!(["team-a", "dr-tier:silver"])
    );

    for (path, key) in [
        ("/v2.0/networks", "network"),
        ("/v2.0/subnets", "subnet"),
        ("/v2.0/routers", "router"),
        ("/v2.0/security-groups", "security_group"),
        ("/v2.0/ports", "port"),
        ("/v2.0/floatingips", "floatingip"),
    ] {
        let mut body = json!({key: {"name": "n"}});
        let before = body.clone();
        let v = eval(
            &b.stage,
            Service::Network,
            Method::POST,
            path,
            &demo,
            &h,
            Some(&mut body),
        )
        .await;
        let PolicyVerdict::Allow { after_create, .. } = &v else {
            panic!("{path}: {v:?}")
        };
        assert_eq!(
            *after_create,
            Some(AfterCreate::NeutronTag {
                tag: "dr-tier:silver".into()
            }),
            "{path}"
        );
        assert_eq!(body, before, "{path}: Neutron create bodies are not tagged");
    }

    // The admin project defaults to gold, with its own failure behaviour.
    let mut server = json!({"server": {"name": "vm", "flavorRef": "1"}});
    let v = eval(
        &b.stage,
        Service::Compute,
        Method::POST,
        "/v2.1/servers",
        &token("admin"),
        &h,
        Some(&mut server),
    )
    .await;
    let PolicyVerdict::Allow { tier, .. } = &v else {
        panic!("{v:?}")
    };
    assert_eq!(
        (tier.name.as_str(), tier.mode, tier.on_failure),
        ("gold", MirrorMode::Sync, GoldFailure::Degrade)
    );
    assert_eq!(server["server"]["metadata"]["dr_tier"], "gold");
}

#[tokio::test]
async fn reads_tokens_and_unknown_paths_are_not_protected() {
    let b = bed(POLICY).await;
    let demo = token("demo");
    let h = HeaderMap::new();
    for (service, method, path) in [
        (Service::Compute, Method::GET, "/v2.1/servers"),
        (Service::Compute, Method::POST, "/v2.1/servers/abc/action"),
        (Service::Identity, Method::POST, "/v3/auth/tokens"),
        (Service::Network, Method::POST, "/v2.0/qos/policies"),
    ] {
        let v = eval(&b.stage, service, method.clone(), path, &demo, &h, None).await;
        assert_eq!(v, PolicyVerdict::NotProtected, "{method} {path}");
    }
}

#[tokio::test]
async fn requested_tiers_are_honoured_or_refused_in_the_native_format() {
    let b = bed(POLICY).await;
    let demo = token("demo");
    let h = HeaderMap::new();

    // Allowed request, any case: the canonical name is written back.
    let mut server = json!({"server": {"name": "vm", "metadata": {"dr_tier": "BRONZE"}}});
    let v = eval(
        &b.stage,
        Service::Compute,
        Method::POST,
        "/v2.1/servers",
        &demo,
        &h,
        Some(&mut server),
    )
    .await;
    assert_eq!(allowed_tier(&v), "bronze");
    assert_eq!(server["server"]["metadata"]["dr_tier"], "bronze");

    // Forbidden request through metadata: a 403 a tenant can read, in Nova's format.
    let mut server = json!({"server": {"name": "vm", "metadata": {"dr_tier": "gold"}}});
    let v = eval(
        &b.stage,
        Service::Compute,
        Method::POST,
        "/v2.1/servers",
        &demo,
        &h,
        Some(&mut server),
    )
    .await;
    assert_eq!(
        v,
        PolicyVerdict::Deny {
            status: StatusCode::FORBIDDEN,
            message: "project demo may use tiers bronze, silver; gold was requested".into()
        }
    );
    let resp = v
        .deny_response(Service::Compute, None)
        .expect("a deny has a response");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = serde_json::from_slice(resp.body()).expect("json");
    assert_eq!(
        body,
        json!({"forbidden": {"code": 403, "message": "project demo may use tiers bronze, silver; gold was requested"}})
    );

    // Through a Neutron tag: Neutron's own error shape.
    let mut net = json!({"network": {"name": "n", "tags": ["dr-tier:gold"]}});
    let v = eval(
        &b.stage,
        Service::Network,
        Method::POST,
        "/v2.0/networks",
        &demo,
        &h,
        Some(&mut net),
    )
    .await;
    let resp = v.deny_response(Service::Network, None).expect("deny");
    let body: Value = serde_json::from_slice(resp.body()).expect("json");
    assert_eq!(body["NeutronError"]["type"], "HTTPForbidden");
    assert!(body["NeutronError"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("gold was requested")));

    // Through a Glance property, and through the header for Keystone.
    let mut image = json!({"name": "i", "dr_tier": "gold"});
    let v = eval(
        &b.stage,
        Service::Image,
        Method::POST,
        "/v2/images",
        &demo,
        &h,
        Some(&mut image),
    )
    .await;
    assert!(
        matches!(
            v,
            PolicyVerdict::Deny {
                status: StatusCode::FORBIDDEN,
                ..
            }
        ),
        "{v:?}"
    );
    let mut gold = HeaderMap::new();
    gold.insert("x-dr-tier", HeaderValue::from_static("gold"));
    let mut project = json!({"project": {"name": "p"}});
    let v = eval(
        &b.stage,
        Service::Identity,
        Method::POST,
        "/v3/projects",
        &demo,
        &gold,
        Some(&mut project),
    )
    .await;
    let resp = v.deny_response(Service::Identity, None).expect("deny");
    let body: Value = serde_json::from_slice(resp.body()).expect("json");
    assert_eq!(body["error"]["code"], 403);
    assert_eq!(
        project,
        json!({"project": {"name": "p"}}),
        "a refused body is not rewritten"
    );

    // Header allowed for a Neutron create; a requested tag is moved out of the body.
    let mut bronze = HeaderMap::new();
    bronze.insert("x-dr-tier", HeaderValue::from_static("bronze"));
    let mut net = json!({"network": {"name": "n", "tags": ["dr-tier:bronze"]}});
    let v = eval(
        &b.stage,
        Service::Network,
        Method::POST,
        "/v2.0/networks",
        &demo,
        &bronze,
        Some(&mut net),
    )
    .await;
    assert_eq!(allowed_tier(&v), "bronze");
    assert_eq!(net, json!({"network": {"name": "n"}}));

    // Body and header that disagree: 400, not a silent choice.
    let mut volume = json!({"volume": {"size": 1, "metadata": {"dr_tier": "silver"}}});
    let v = eval(
        &b.stage,
        Service::BlockStorage,
        Method::POST,
        "/v3/p/volumes",
        &demo,
        &bronze,
        Some(&mut volume),
    )
    .await;
    assert!(
        matches!(
            v,
            PolicyVerdict::Deny {
                status: StatusCode::BAD_REQUEST,
                ..
            }
        ),
        "{v:?}"
    );

    // Unknown tier.
    let mut volume = json!({"volume": {"size": 1, "metadata": {"dr_tier": "platinum"}}});
    let v = eval(
        &b.stage,
        Service::BlockStorage,
        Method::POST,
        "/v3/p/volumes",
        &demo,
        &h,
        Some(&mut volume),
    )
    .await;
    let PolicyVerdict::Deny { status, message } = &v else {
        panic!("{v:?}")
    };
    assert_eq!(*status, StatusCode::FORBIDDEN);
    assert!(
        message.contains("platinum was requested, and no tier of that name exists"),
        "{message}"
    );

    let text = b.metrics.render();
    assert!(
        text.contains(r#"drgw_policy_decisions_total{result="forbidden",tier="gold"} 4"#),
        "{text}"
    );
    assert!(
        text.contains(r#"drgw_policy_decisions_total{result="bad_request",tier="-"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn gold_volumes_get_the_replicated_type() {
    let b = bed(POLICY).await;
    let admin = token("admin");
    let h = HeaderMap::new();
    let mut volume = json!({"volume": {"size": 1, "volume_type": "standard"}});
    let v = eval(
        &b.stage,
        Service::BlockStorage,
        Method::POST,
        "/v3/p-admin/volumes",
        &admin,
        &h,
        Some(&mut volume),
    )
    .await;
    assert_eq!(allowed_tier(&v), "gold");
    assert_eq!(volume["volume"]["volume_type"], "standard-replicated");
    assert_eq!(volume["volume"]["metadata"]["dr_tier"], "gold");

    // Silver keeps the type it asked for.
    let mut volume = json!({"volume": {"size": 1, "volume_type": "standard"}});
    let v = eval(
        &b.stage,
        Service::BlockStorage,
        Method::POST,
        "/v3/p-demo/volumes",
        &token("demo"),
        &h,
        Some(&mut volume),
    )
    .await;
    assert_eq!(allowed_tier(&v), "silver");
    assert_eq!(volume["volume"]["volume_type"], "standard");
}

#[tokio::test]
async fn capacity_quotas_count_what_was_created_and_deleted() {
    let b = bed(POLICY).await;
    let demo = token("demo");
    let h = HeaderMap::new();

    // 10 GB of silver volumes: 6 fit, then 5 more do not.
    let mut volume = json!({"volume": {"size": 6}});
    let v = eval(
        &b.stage,
        Service::BlockStorage,
        Method::POST,
        "/v3/p-demo/volumes",
        &demo,
        &h,
        Some(&mut volume),
    )
    .await;
    let PolicyVerdict::Allow { tier, usage, .. } = &v else {
        panic!("{v:?}")
    };
    b.stage
        .record_usage(
            &demo,
            tier,
            usage,
            Some(&json!({"volume": {"id": "vol-1", "size": 6}})),
        )
        .await;
    let used = b.stage.usage_of("p-demo", "silver").await.expect("usage");
    assert_eq!(used.volume_gb, 6);

    let mut volume = json!({"volume": {"size": 5}});
    let v = eval(
        &b.stage,
        Service::BlockStorage,
        Method::POST,
        "/v3/p-demo/volumes",
        &demo,
        &h,
        Some(&mut volume),
    )
    .await;
    assert_eq!(
        v,
        PolicyVerdict::Deny {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: "project demo has recovery capacity for 10 volume_gb at tier silver; 6 in use, 5 more requested".into()
        }
    );
    let resp = v.deny_response(Service::BlockStorage, None).expect("deny");
    let body: Value = serde_json::from_slice(resp.body()).expect("json");
    assert_eq!(body["overLimit"]["code"], 413);
    assert!(b
        .metrics
        .render()
        .contains(r#"drgw_protected_resources{resource="volumes",tier="silver"} 1"#));

    // Bronze has no quota: the same create is fine there.
    let mut volume = json!({"volume": {"size": 5, "metadata": {"dr_tier": "bronze"}}});
    let v = eval(
        &b.stage,
        Service::BlockStorage,
        Method::POST,
        "/v3/p-demo/volumes",
        &demo,
        &h,
        Some(&mut volume),
    )
    .await;
    assert_eq!(allowed_tier(&v), "bronze");

    // Deleting the first volume releases its 6 GB; then 5 GB fit again.
    let v = eval(
        &b.stage,
        Service::BlockStorage,
        Method::DELETE,
        "/v3/p-demo/volumes/vol-1",
        &demo,
        &h,
        None,
    )
    .await;
    let PolicyVerdict::Allow { tier, usage, .. } = &v else {
        panic!("{v:?}")
    };
    assert_eq!(
        tier.name, "silver",
        "the tier the gateway saw the volume created with"
    );
    assert_eq!(
        *usage,
        UsageDelta::Remove {
            kind: drgw::policy::ProtectedKind::Volume,
            id: "vol-1".into()
        }
    );
    b.stage.record_usage(&demo, tier, usage, None).await;
    assert_eq!(
        b.stage
            .usage_of("p-demo", "silver")
            .await
            .expect("usage")
            .volume_gb,
        0
    );
    assert!(b
        .metrics
        .render()
        .contains(r#"drgw_protected_resources{resource="volumes",tier="silver"} 0"#));
    let mut volume = json!({"volume": {"size": 5}});
    let v = eval(
        &b.stage,
        Service::BlockStorage,
        Method::POST,
        "/v3/p-demo/volumes",
        &demo,
        &h,
        Some(&mut volume),
    )
    .await;
    assert_eq!(allowed_tier(&v), "silver");

    // Server counts: max_count servers at once against a limit of 2.
    let mut servers = json!({"server": {"name": "vm", "flavorRef": "1", "max_count": 3}});
    let v = eval(
        &b.stage,
        Service::Compute,
        Method::POST,
        "/v2.1/servers",
        &demo,
        &h,
        Some(&mut servers),
    )
    .await;
    let PolicyVerdict::Deny { status, message } = &v else {
        panic!("{v:?}")
    };
    assert_eq!(*status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        message.contains("2 servers at tier silver; 0 in use, 3 more requested"),
        "{message}"
    );
}

#[tokio::test]
async fn deleting_a_gold_resource_is_refused() {
    let b = bed(POLICY).await;
    let admin = token("admin");
    let h = HeaderMap::new();
    // A server the gateway saw created as gold.
    let mut server = json!({"server": {"name": "vm"}});
    let v = eval(
        &b.stage,
        Service::Compute,
        Method::POST,
        "/v2.1/servers",
        &admin,
        &h,
        Some(&mut server),
    )
    .await;
    let PolicyVerdict::Allow { tier, usage, .. } = &v else {
        panic!("{v:?}")
    };
    b.stage
        .record_usage(
            &admin,
            tier,
            usage,
            Some(&json!({"server": {"id": "srv-1"}})),
        )
        .await;

    // Even a tenant whose default is not gold cannot delete it.
    let v = eval(
        &b.stage,
        Service::Compute,
        Method::DELETE,
        "/v2.1/servers/srv-1",
        &token("demo"),
        &h,
        None,
    )
    .await;
    assert_eq!(
        v,
        PolicyVerdict::Deny {
            status: StatusCode::FORBIDDEN,
            message: "gold resources cannot be deleted through the gateway".into()
        }
    );
    // Unknown resources fall back to the tenant's default tier (gold for admin).
    let v = eval(
        &b.stage,
        Service::Network,
        Method::DELETE,
        "/v2.0/networks/n-1",
        &admin,
        &h,
        None,
    )
    .await;
    assert!(
        matches!(
            v,
            PolicyVerdict::Deny {
                status: StatusCode::FORBIDDEN,
                ..
            }
        ),
        "{v:?}"
    );
    // A silver resource of the demo project is deleted fine.
    let v = eval(
        &b.stage,
        Service::Network,
        Method::DELETE,
        "/v2.0/networks/n-2",
        &token("demo"),
        &h,
        None,
    )
    .await;
    assert_eq!(allowed_tier(&v), "silver");
}

#[test]
fn neutron_tag_helpers() {
    let response = json!({"network": {"id": "5f0c-11", "name": "n", "tags": []}});
    assert_eq!(
        neutron_tag_path("/v2.0/networks", &response, "dr-tier:silver").as_deref(),
        Some("/v2.0/networks/5f0c-11/tags/dr-tier:silver")
    );
    let sg = json!({"security_group": {"id": "sg1"}});
    assert_eq!(
        neutron_tag_path("/v2.0/security-groups", &sg, "dr-tier:gold").as_deref(),
        Some("/v2.0/security-groups/sg1/tags/dr-tier:gold")
    );
    // No id, a hostile id, or not a protected Neutron create: nothing to PUT.
    assert_eq!(
        neutron_tag_path("/v2.0/networks", &json!({"network": {}}), "dr-tier:gold"),
        None
    );
    assert_eq!(
        neutron_tag_path(
            "/v2.0/networks",
            &json!({"network": {"id": "../../x"}}),
            "dr-tier:gold"
        ),
        None
    );
    assert_eq!(
        neutron_tag_path("/v2.0/qos/policies", &response, "dr-tier:gold"),
        None
    );

    let mut shown = json!({"port": {"id": "p", "tags": ["keep", "dr-tier:old"]}});
    assert!(add_tag_to_response(&mut shown, "dr-tier:bronze"));
    assert_eq!(shown["port"]["tags"], json!(["keep", "dr-tier:bronze"]));
    let mut untagged = json!({"router": {"id": "r"}});
    assert!(add_tag_to_response(&mut untagged, "dr-tier:bronze"));
    assert_eq!(untagged["router"]["tags"], json!(["dr-tier:bronze"]));
    assert!(!add_tag_to_response(&mut json!([1, 2]), "dr-tier:bronze"));
}

const BROKEN: &str = "[default]\ndefault_tier = \"platinum\"\n";

#[tokio::test]
async fn a_broken_reload_keeps_the_policy_and_a_good_one_applies_to_new_requests() {
    let b = bed(POLICY).await;
    let demo = token("demo");
    let h = HeaderMap::new();
    let before = b.stage.current();

    std::fs::write(&b.file, BROKEN).expect("write");
    let errors = b.stage.reload().expect_err("broken file refused");
    assert!(
        errors.iter().any(|e| e.path == "default.default_tier"),
        "{errors:?}"
    );
    let (status, body) = b.stage.reload_response();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["reloaded"], false);
    assert_eq!(body["errors"][0]["key"], "default.default_tier");
    let mut server = json!({"server": {"name": "vm"}});
    let v = eval(
        &b.stage,
        Service::Compute,
        Method::POST,
        "/v2.1/servers",
        &demo,
        &h,
        Some(&mut server),
    )
    .await;
    assert_eq!(allowed_tier(&v), "silver", "the running policy stays");

    // A good file: demo now defaults to bronze, for requests that start afterwards. A
    // request holding the old policy keeps deciding with it.
    std::fs::write(
        &b.file,
        POLICY.replace("default_tier = \"silver\"", "default_tier = \"bronze\""),
    )
    .expect("write");
    let report = b.stage.reload().expect("good file");
    assert_eq!(report.tiers, ["gold", "silver", "bronze", "none"]);
    assert_eq!(report.rules, 2);
    let mut server = json!({"server": {"name": "vm"}});
    let v = eval(
        &b.stage,
        Service::Compute,
        Method::POST,
        "/v2.1/servers",
        &demo,
        &h,
        Some(&mut server),
    )
    .await;
    assert_eq!(allowed_tier(&v), "bronze");
    let old = drgw_policies_decide(&before, "demo");
    assert_eq!(old, "silver");

    let text = b.metrics.render();
    assert!(
        text.contains(r#"drgw_policy_reloads_total{result="error"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"drgw_policy_reloads_total{result="ok"} 1"#),
        "{text}"
    );
}

/// The tier an already-loaded policy gives the demo project's servers.
fn drgw_policies_decide(policy: &drgw::policy::Policy, project: &str) -> String {
    let explained = policy.explain(&drgw_policies_facts(project));
    explained
        .lines()
        .find_map(|l| l.strip_prefix("tier:      "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_default()
        .to_owned()
}

fn drgw_policies_facts(project: &str) -> drgw::policy::Facts<'_> {
    drgw::policy::Facts::new(
        drgw::policy::Tenant {
            project_id: "p",
            project_name: project,
            domain_id: "default",
            domain_name: "Default",
            project_tags: &[],
        },
        "compute:create_server",
    )
}

#[tokio::test]
async fn the_file_watcher_reloads_within_two_seconds() {
    let b = bed(POLICY).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = b.stage.spawn_watchers(stop_rx);
    // Let the watcher take its first look, then change the file.
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(
        &b.file,
        POLICY.replace("interval = \"5s\"", "interval = \"7s\"\n# changed"),
    )
    .expect("write");
    let deadline = tokio::time::Instant::now() + Duration::from_millis(2500);
    loop {
        let policy = b.stage.current();
        let interval = policy.tier("silver").map(|t| t.mode);
        if interval
            == Some(drgw::policy::PolicyMirrorMode::Periodic {
                interval: Duration::from_secs(7),
            })
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reloaded within 2.5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A broken edit is refused; the good policy stays.
    std::fs::write(&b.file, BROKEN).expect("write");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(b.stage.current().tier("silver").is_some());
    assert!(b
        .metrics
        .render()
        .contains(r#"drgw_policy_reloads_total{result="error"} 1"#));
    stop_tx.send(true).expect("watcher alive");
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("watcher stops")
        .expect("no panic");
}

fn sandbox_policy() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/examples/sandbox.toml")
}

#[tokio::test]
async fn the_sandbox_policy_decides_as_the_sandbox_expects() {
    let metrics = Metrics::new();
    let file = sandbox_policy();
    let stage = PolicyStage::load(Some(&file), Arc::new(MemoryStore::new()), &metrics.registry)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let h = HeaderMap::new();
    for (project, tier) in [
        ("demo", "silver"),
        ("admin", "gold"),
        ("alt_demo", "bronze"),
    ] {
        let mut body = json!({"volume": {"size": 1, "volume_type": "standard"}});
        let v = eval(
            &stage,
            Service::BlockStorage,
            Method::POST,
            "/v3/p/volumes",
            &token(project),
            &h,
            Some(&mut body),
        )
        .await;
        assert_eq!(allowed_tier(&v), tier, "{project}");
        let want = if tier == "gold" {
            "standard-replicated"
        } else {
            "standard"
        };
        assert_eq!(body["volume"]["volume_type"], want, "{project}");
    }
}

#[test]
fn policy_check_and_explain() {
    let (code, text) = cli::check_file(&sandbox_policy());
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("tier silver"), "{text}");
    assert!(text.contains("2 rule(s): demo, admin"), "{text}");

    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[tiers.gold]\nmode = \"fast\"\n[default]\ndefault_tier = \"tin\"\n",
    )
    .expect("write");
    let (code, text) = cli::check_file(&broken);
    assert_eq!(code, 1);
    assert!(text.contains("tiers.gold.mode"), "{text}");
    assert!(text.contains("default.default_tier"), "{text}");

    let (code, text) = cli::explain(&sandbox_policy(), "demo", "compute:create_server", None);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("rules[0] \"demo\""), "{text}");
    assert!(text.contains("tier:      silver"), "{text}");
    let (code, text) = cli::explain(
        &sandbox_policy(),
        "demo",
        "compute:create_server",
        Some("gold"),
    );
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("gold was requested"), "{text}");
    let (code, text) = cli::explain(
        &sandbox_policy(),
        "Other/demo",
        "compute:create_server",
        None,
    );
    assert_eq!(code, 0);
    assert!(text.contains("[default]"), "{text}");

    // Through a drgw.toml naming the policy file.
    let config = dir.path().join("drgw.toml");
    let text = drgw::sandbox::sandbox_config(
        dir.path(),
        drgw_tests::testbed::free_ports(),
        &fake_endpoints(),
        &fake_endpoints(),
    );
    // The sandbox configuration names its own policy.toml; point it at the example.
    let text = text.replacen(
        "policy_file = \"policy.toml\"",
        &format!("policy_file = {:?}", sandbox_policy().display().to_string()),
        1,
    );
    std::fs::write(&config, text).expect("write");
    let (code, out) = cli::explain(&config, "admin", "volume:delete_volume", None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sandbox.toml"), "{out}");
    assert!(out.contains("tier:      gold"), "{out}");
}

fn fake_endpoints() -> drgw::sandbox::SimEndpoints {
    drgw::sandbox::SimEndpoints {
        identity: "http://127.0.0.1:1".into(),
        compute: "http://127.0.0.1:2".into(),
        image: "http://127.0.0.1:3".into(),
        volume: "http://127.0.0.1:4".into(),
        network: "http://127.0.0.1:5".into(),
    }
}

#[tokio::test]
async fn creates_in_a_tier_that_is_not_mirrored_use_no_recovery_capacity() {
    let b = bed(POLICY).await;
    let admin = token("admin");
    let h = HeaderMap::new();
    let mut volume = json!({"volume": {"size": 7, "metadata": {"dr_tier": "none"}}});
    let v = eval(
        &b.stage,
        Service::BlockStorage,
        Method::POST,
        "/v3/p-admin/volumes",
        &admin,
        &h,
        Some(&mut volume),
    )
    .await;
    assert_eq!(allowed_tier(&v), "none");
    let PolicyVerdict::Allow { tier, usage, .. } = &v else {
        panic!("{v:?}")
    };
    b.stage
        .record_usage(
            &admin,
            tier,
            usage,
            Some(&json!({"volume": {"id": "vol-none", "size": 7}})),
        )
        .await;
    assert_eq!(
        b.stage.usage_of("p-admin", "none").await.expect("usage"),
        drgw::policy::Resources::ZERO
    );
    assert!(!b
        .metrics
        .render()
        .contains(r#"drgw_protected_resources{resource="volumes",tier="none"}"#));
}
