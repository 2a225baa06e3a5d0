//! The mirror engine's resource coverage against two simulated sites (identity, compute,
//! image, block storage, security groups, workload protection records), Gold so that each
//! change is at the recovery site when `submit` returns.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use drgw::config::{Credentials, SiteConfig, SiteName, UpstreamConfig};
use drgw::journal::{Journal, JournalConfig, RecordFilter, StateFilter};
use drgw::mirror::{MirrorDeps, MirrorEngine, MirrorSite, SecretKey};
use drgw::mutation::{GoldFailure, MirrorMode, MirrorOutcome, Mutation, TierChoice};
use drgw::operation::{Action, Operation, Service};
use drgw::state::{IdMap, MemoryStore, StateStore};
use drgw::token::{KeystoneClient, TokenContext};
use drgw::upstream::UpstreamClient;
use drgw_tests::sim::client::{SimClient, SimResponse};
use drgw_tests::sim::{self, Endpoints, Site, SiteHandle};
use http::{Method, StatusCode};
use serde_json::{json, Value};

fn site_config(name: SiteName, e: &Endpoints) -> SiteConfig {
    let mut endpoints = BTreeMap::new();
    endpoints.insert(Service::Identity, e.identity.clone());
    endpoints.insert(Service::Compute, e.compute.clone());
    endpoints.insert(Service::Network, e.network.clone());
    endpoints.insert(Service::BlockStorage, e.volume.clone());
    endpoints.insert(Service::Image, e.image.clone());
    SiteConfig {
        name,
        endpoints,
        region: None,
        ca_bundle: None,
        credentials: Some(Credentials {
            username: "admin".into(),
            password: Some("secret".into()),
            password_file: None,
            user_domain_name: "Default".into(),
            project_name: "admin".into(),
            project_domain_name: "Default".into(),
        }),
    }
}

fn mirror_site(name: SiteName, e: &Endpoints) -> MirrorSite {
    let config = site_config(name, e);
    let upstream = UpstreamConfig {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(3),
        pool_idle_timeout: Duration::from_secs(30),
        pool_max_idle_per_host: 16,
    };
    let client = UpstreamClient::new(&config, &upstream).expect("client");
    let keystone = Arc::new(KeystoneClient::new(&config, client.clone()));
    MirrorSite {
        client,
        keystone,
        config,
    }
}

struct Bed {
    primary: SiteHandle,
    recovery: SiteHandle,
    /// Admin at the primary and at the recovery site.
    admin: SimClient,
    radmin: SimClient,
    admin_ctx: Arc<TokenContext>,
    demo: SimClient,
    demo_ctx: Arc<TokenContext>,
    dir: tempfile::TempDir,
}

async fn login(
    e: &Endpoints,
    user: &str,
    pw: &str,
    project: &str,
) -> (SimClient, Arc<TokenContext>) {
    let mut c = SimClient::new();
    let resp = c
        .login(&e.auth_url(), user, pw, project)
        .await
        .expect("login");
    let ctx = TokenContext::from_token_body(&resp.json, SiteName::Primary).expect("token body");
    (c, Arc::new(ctx))
}

impl Bed {
    async fn new() -> Bed {
        let primary = Site::start(sim::SiteConfig::named("primary"))
            .await
            .expect("primary");
        let recovery = Site::start(sim::SiteConfig::named("recovery"))
            .await
            .expect("recovery");
        let (admin, admin_ctx) = login(&primary.endpoints(), "admin", "secret", "admin").await;
        let (radmin, _) = login(&recovery.endpoints(), "admin", "secret", "admin").await;
        let (demo, demo_ctx) = login(&primary.endpoints(), "demo", "demo", "demo").await;
        Bed {
            primary,
            recovery,
            admin,
            radmin,
            admin_ctx,
            demo,
            demo_ctx,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    async fn engine(
        &self,
        store: Arc<dyn StateStore>,
        gold_timeout: Duration,
    ) -> (MirrorEngine, Journal) {
        let journal = Journal::open(store.clone(), JournalConfig::default())
            .await
            .expect("journal");
        let registry = drgw::metrics::Metrics::new().registry;
        let engine = MirrorEngine::start(MirrorDeps {
            store: store.clone(),
            journal: journal.clone(),
            idmap: IdMap::new(store),
            recovery: mirror_site(SiteName::Recovery, &self.recovery.endpoints()),
            primary: mirror_site(SiteName::Primary, &self.primary.endpoints()),
            registry: &registry,
            gold_timeout,
            tiers: vec![],
            secret_key: SecretKey::load_or_create(&self.dir.path().join("mirror.key"))
                .expect("key"),
            shared_identity: false,
            retry_initial: Duration::from_millis(50),
            retry_max: Duration::from_millis(400),
            tick: Duration::from_millis(50),
            parallel_tenants: 8,
        })
        .await
        .expect("engine");
        (engine, journal)
    }

    async fn mem_engine(&self) -> (MirrorEngine, Journal) {
        self.engine(Arc::new(MemoryStore::new()), Duration::from_secs(3))
            .await
    }

    fn url(&self, site: &SiteHandle, svc: Service, path: &str) -> String {
        let e = site.endpoints();
        let base = match svc {
            Service::Identity => e.identity,
            Service::Compute => e.compute,
            Service::Network => e.network,
            Service::BlockStorage => e.volume,
            Service::Image => e.image,
        };
        format!("{base}{path}")
    }

    /// Makes the call at the primary as `who` and builds the mutation the gateway would.
    async fn call(
        &self,
        (who, ctx): (&SimClient, &Arc<TokenContext>),
        tier: &TierChoice,
        svc: Service,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (SimResponse, Mutation) {
        let resp = who
            .send(
                method.clone(),
                &self.url(&self.primary, svc, path),
                body.as_ref(),
                &[],
            )
            .await
            .expect("primary call");
        assert!(
            resp.status.is_success(),
            "{method} {path}: {} {}",
            resp.status,
            resp.json
        );
        let m = Mutation {
            site: drgw::config::SiteName::Primary,
            op: Operation::other(svc, Action::Create),
            tenant: ctx.clone(),
            tier: tier.clone(),
            method,
            path: path.to_string(),
            query: None,
            microversion: None,
            request_body: body,
            status: resp.status,
            response_body: (!resp.json.is_null()).then(|| resp.json.clone()),
            location: None,
        };
        (resp, m)
    }

    async fn recovery_get(&self, svc: Service, path: &str) -> SimResponse {
        self.radmin
            .get(&self.url(&self.recovery, svc, path))
            .await
            .expect("recovery get")
    }
}

fn bronze() -> TierChoice {
    TierChoice {
        name: "bronze".into(),
        mode: MirrorMode::Async {
            max_lag: Duration::from_secs(60),
        },
        on_failure: GoldFailure::Degrade,
    }
}

fn gold(on_failure: GoldFailure) -> TierChoice {
    TierChoice {
        name: "gold".into(),
        mode: MirrorMode::Sync,
        on_failure,
    }
}

async fn recovery_id(engine: &MirrorEngine, svc: &str, ty: &str, id: &str) -> Option<String> {
    engine
        .idmap_lookup(svc, ty, id)
        .await
        .expect("idmap")
        .map(|m| m.recovery_id)
}

#[tokio::test]
async fn identity_compute_image_volume_security_groups_and_workloads() {
    let bed = Bed::new().await;
    let (engine, journal) = bed.mem_engine().await;
    let g = gold(GoldFailure::Degrade);
    let ok = |out: MirrorOutcome| assert_eq!(out, MirrorOutcome::Applied);

    // Project with tags, user with a password, role assignment by role name.
    let (resp, m) = bed.call((&bed.admin, &bed.admin_ctx), &g, Service::Identity, Method::POST, "/v3/projects",
        Some(json!({"project": {"name": "mirrored", "domain_id": "default", "tags": ["dr-tier:gold"]}}))).await;
    let pid = resp.json["project"]["id"].as_str().unwrap().to_string();
    ok(engine.submit(m).await);
    let rpid = recovery_id(&engine, "identity", "project", &pid)
        .await
        .unwrap();
    let got = bed
        .recovery_get(Service::Identity, &format!("/v3/projects/{rpid}"))
        .await;
    assert_eq!(got.json["project"]["name"], "mirrored");
    assert_eq!(got.json["project"]["tags"], json!(["dr-tier:gold"]));

    let (resp, m) = bed.call((&bed.admin, &bed.admin_ctx), &g, Service::Identity, Method::POST, "/v3/users",
        Some(json!({"user": {"name": "alice", "domain_id": "default", "password": "s3cret-pw", "default_project_id": pid}}))).await;
    let uid = resp.json["user"]["id"].as_str().unwrap().to_string();
    ok(engine.submit(m).await);
    let rec = journal
        .get(journal.last_seq().await.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        rec.request.secret.is_none(),
        "the sealed password is dropped once applied"
    );
    assert!(!serde_json::to_string(&rec).unwrap().contains("s3cret-pw"));
    let member = bed
        .admin
        .get(&bed.url(&bed.primary, Service::Identity, "/v3/roles?name=member"))
        .await
        .unwrap();
    let role = member.json["roles"][0]["id"].as_str().unwrap().to_string();
    let (_, m) = bed
        .call(
            (&bed.admin, &bed.admin_ctx),
            &g,
            Service::Identity,
            Method::PUT,
            &format!("/v3/projects/{pid}/users/{uid}/roles/{role}"),
            None,
        )
        .await;
    ok(engine.submit(m).await);
    // The mirrored user logs in at the recovery site with the mirrored password and role.
    let mut alice = SimClient::new();
    alice
        .login(
            &bed.recovery.endpoints().auth_url(),
            "alice",
            "s3cret-pw",
            "mirrored",
        )
        .await
        .expect("mirrored login");

    // Keypair of the demo user, created as admin with user_id at 2.10.
    let (_, m) = bed.call((&bed.demo, &bed.demo_ctx), &g, Service::Compute, Method::POST, "/v2.1/os-keypairs",
        Some(json!({"keypair": {"name": "k1", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMirror test"}}))).await;
    ok(engine.submit(m).await);
    let rdemo_user = bed.recovery.user_id("demo").unwrap();
    let got = bed
        .recovery_get(
            Service::Compute,
            &format!("/v2.1/os-keypairs/k1?user_id={rdemo_user}"),
        )
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.json);
    assert!(got.json["keypair"]["public_key"]
        .as_str()
        .unwrap()
        .starts_with("ssh-ed25519"));

    // Security group and a rule referencing it (remote group too); default egress rules
    // are not duplicated.
    let (resp, m) = bed
        .call(
            (&bed.demo, &bed.demo_ctx),
            &g,
            Service::Network,
            Method::POST,
            "/v2.0/security-groups",
            Some(json!({"security_group": {"name": "web"}})),
        )
        .await;
    let sg = resp.json["security_group"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(engine.submit(m).await);
    let (_, m) = bed.call((&bed.demo, &bed.demo_ctx), &g, Service::Network, Method::POST, "/v2.0/security-group-rules",
        Some(json!({"security_group_rule": {"security_group_id": sg, "direction": "ingress", "protocol": "tcp",
            "port_range_min": 443, "port_range_max": 443, "remote_group_id": sg}}))).await;
    ok(engine.submit(m).await);
    let rsg = recovery_id(&engine, "network", "security_group", &sg)
        .await
        .unwrap();
    let rules = bed
        .recovery_get(
            Service::Network,
            &format!("/v2.0/security-group-rules?security_group_id={rsg}"),
        )
        .await;
    let rules = rules.json["security_group_rules"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        rules.len(),
        3,
        "two default egress rules and the mirrored one: {rules:?}"
    );
    let ingress = rules.iter().find(|r| r["direction"] == "ingress").unwrap();
    assert_eq!(ingress["remote_group_id"], json!(rsg));

    // Image metadata with the same id; JSON-patch update; tag.
    let (resp, m) = bed
        .call(
            (&bed.demo, &bed.demo_ctx),
            &g,
            Service::Image,
            Method::POST,
            "/v2/images",
            Some(json!({"name": "img", "disk_format": "qcow2", "container_format": "bare"})),
        )
        .await;
    let img = resp.json["id"].as_str().unwrap().to_string();
    ok(engine.submit(m).await);
    let patch = json!([{"op": "add", "path": "/os_distro", "value": "ubuntu"}]);
    let r = bed
        .demo
        .send_raw(
            Method::PATCH,
            &bed.url(&bed.primary, Service::Image, &format!("/v2/images/{img}")),
            patch.to_string().into(),
            "application/openstack-images-v2.1-json-patch",
            &[],
        )
        .await
        .unwrap();
    assert!(r.status.is_success(), "{}", r.json);
    let mut m = bed
        .call(
            (&bed.demo, &bed.demo_ctx),
            &g,
            Service::Image,
            Method::PUT,
            &format!("/v2/images/{img}/tags/dr"),
            None,
        )
        .await
        .1;
    ok(engine.submit(m.clone()).await);
    m.method = Method::PATCH;
    m.path = format!("/v2/images/{img}");
    m.request_body = Some(patch);
    ok(engine.submit(m).await);
    let got = bed
        .recovery_get(Service::Image, &format!("/v2/images/{img}"))
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json["os_distro"], "ubuntu");
    assert_eq!(got.json["tags"], json!(["dr"]));
    assert_eq!(
        got.json["owner"],
        json!(bed.recovery.project_id("demo").unwrap())
    );

    // Volume type through Cinder's project path (the service project at the recovery site).
    let admin_p = bed.admin_ctx.project_id.clone().unwrap();
    let (resp, m) = bed
        .call(
            (&bed.admin, &bed.admin_ctx),
            &g,
            Service::BlockStorage,
            Method::POST,
            &format!("/v3/{admin_p}/types"),
            Some(json!({"volume_type": {"name": "fast"}})),
        )
        .await;
    let vt = resp.json["volume_type"]["id"].as_str().unwrap().to_string();
    ok(engine.submit(m).await);
    let rvt = recovery_id(&engine, "volume", "volume_type", &vt)
        .await
        .unwrap();
    let radmin_p = bed.recovery.project_id("admin").unwrap();
    let got = bed
        .recovery_get(
            Service::BlockStorage,
            &format!("/v3/{radmin_p}/types/{rvt}"),
        )
        .await;
    assert_eq!(got.json["volume_type"]["name"], "fast");

    // A server: not created at the recovery site, its spec stored with translated refs.
    let (resp, m) = bed
        .call(
            (&bed.demo, &bed.demo_ctx),
            &bronze(),
            Service::Network,
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": {"name": "srv-net"}})),
        )
        .await;
    let net = resp.json["network"]["id"].as_str().unwrap().to_string();
    let _ = m; // never submitted: the server's reference is mirrored as a dependency
               // Upload data at the primary so that the image is active (data is not mirrored).
    let up = bed
        .demo
        .send_raw(
            Method::PUT,
            &bed.url(
                &bed.primary,
                Service::Image,
                &format!("/v2/images/{img}/file"),
            ),
            vec![0u8; 64].into(),
            "application/octet-stream",
            &[],
        )
        .await
        .unwrap();
    assert!(up.status.is_success(), "{}", up.status);
    let active = img.clone();
    let flavors = bed
        .demo
        .get(&bed.url(&bed.primary, Service::Compute, "/v2.1/flavors"))
        .await
        .unwrap();
    let flavor = flavors.json["flavors"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (resp, m) = bed.call((&bed.demo, &bed.demo_ctx), &g, Service::Compute, Method::POST, "/v2.1/servers",
        Some(json!({"server": {"name": "vm", "flavorRef": flavor, "imageRef": active, "networks": [{"uuid": net}]}}))).await;
    let sid = resp.json["server"]["id"].as_str().unwrap().to_string();
    ok(engine.submit(m).await);
    let p = engine
        .protection("compute", "server", &sid)
        .await
        .unwrap()
        .expect("protection record");
    let rnet = recovery_id(&engine, "network", "network", &net)
        .await
        .expect("dependency mirrored");
    assert_eq!(
        p.spec.as_ref().unwrap()["server"]["networks"][0]["uuid"],
        json!(rnet)
    );
    assert_eq!(
        p.spec.as_ref().unwrap()["server"]["imageRef"],
        json!(active)
    );
    // The unmapped stock flavor maps to the recovery site's flavor of the same name.
    let rflavor = recovery_id(&engine, "compute", "flavor", &flavor)
        .await
        .expect("flavor mapped");
    let fname = flavors.json["flavors"][0]["name"].clone();
    let got = bed
        .recovery_get(Service::Compute, &format!("/v2.1/flavors/{rflavor}"))
        .await;
    assert_eq!(got.json["flavor"]["name"], fname);
    assert_eq!(
        p.spec.as_ref().unwrap()["server"]["flavorRef"],
        json!(rflavor)
    );
    let servers = bed
        .recovery_get(Service::Compute, "/v2.1/servers?all_tenants=1")
        .await;
    assert!(
        servers.json["servers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != "vm"),
        "not started at recovery"
    );

    // Deletes remove the copies and the mappings.
    let (_, m) = bed
        .call(
            (&bed.admin, &bed.admin_ctx),
            &g,
            Service::Identity,
            Method::DELETE,
            &format!("/v3/users/{uid}"),
            None,
        )
        .await;
    ok(engine.submit(m).await);
    assert_eq!(recovery_id(&engine, "identity", "user", &uid).await, None);
    let (_, m) = bed
        .call(
            (&bed.demo, &bed.demo_ctx),
            &g,
            Service::Compute,
            Method::DELETE,
            &format!("/v2.1/servers/{sid}"),
            None,
        )
        .await;
    ok(engine.submit(m).await);
    assert!(engine
        .protection("compute", "server", &sid)
        .await
        .unwrap()
        .is_none());
    let failed = journal
        .list(
            &RecordFilter {
                state: Some(StateFilter::Failed),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert!(failed.records.is_empty(), "{:?}", failed.records);
    engine.shutdown().await;
}
