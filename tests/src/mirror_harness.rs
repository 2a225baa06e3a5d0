//! The mirror engine's test harness: two simulated sites, logged-in admin and demo clients,
//! and a [`MirrorEngine`] between them, so that a test makes a change at the primary by a
//! real HTTP call, submits the [`Mutation`] the request path would build, and queries the
//! recovery site directly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drgw::config::{Credentials, SiteConfig, SiteName, UpstreamConfig};
use drgw::journal::{Journal, JournalConfig, JournalRecord, RecordFilter, StateFilter};
use drgw::mirror::{MirrorDeps, MirrorEngine, MirrorSite, SecretKey};
use drgw::mutation::{GoldFailure, MirrorMode, Mutation, TierChoice};
use drgw::operation::{Action, Operation, Service};
use drgw::sandbox::SimEndpoints;
use drgw::state::{IdMap, MemoryStore, StateStore};
use drgw::token::{KeystoneClient, TokenContext};
use drgw::upstream::UpstreamClient;
use http::Method;
use serde_json::Value;

use crate::sim::client::{SimClient, SimResponse};
use crate::sim::{self, Endpoints, Site, SiteHandle};

/// The gateway's configuration of a site: its five services, the bootstrap admin account.
pub fn site_config(name: SiteName, e: &SimEndpoints) -> SiteConfig {
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
        admin: true,
        aliases: Default::default(),
    }
}

/// A site as the mirror engine reaches it (short timeouts).
pub fn mirror_site(name: SiteName, e: &SimEndpoints) -> MirrorSite {
    let config = site_config(name, e);
    let upstream = UpstreamConfig {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(3),
        pool_idle_timeout: Duration::from_secs(30),
        pool_max_idle_per_host: 16,
    };
    let client = UpstreamClient::new(&config, &upstream, 1).expect("client");
    let keystone = Arc::new(KeystoneClient::new(&config, client.clone()));
    MirrorSite {
        client,
        keystone,
        config,
    }
}

/// Two simulated sites with admin and demo logged in.
pub struct Bed {
    pub primary: SiteHandle,
    pub recovery: SiteHandle,
    /// Admin at the primary and at the recovery site.
    pub admin: SimClient,
    pub radmin: SimClient,
    pub admin_ctx: Arc<TokenContext>,
    pub demo: SimClient,
    pub demo_ctx: Arc<TokenContext>,
    pub dir: tempfile::TempDir,
}

/// Logs in at a site; the client keeps the token, the context is what the gateway would
/// validate it to.
pub async fn login(
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
    pub async fn new() -> Bed {
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

    pub fn state_path(&self) -> std::path::PathBuf {
        self.dir.path().join("state.redb")
    }

    pub async fn engine(
        &self,
        store: Arc<dyn StateStore>,
        gold_timeout: Duration,
    ) -> (MirrorEngine, Journal) {
        self.engine_in(store, gold_timeout, &drgw::metrics::Metrics::new())
            .await
    }

    /// Like [`Bed::engine`], with the engine's metrics registered on `metrics`' registry.
    pub async fn engine_in(
        &self,
        store: Arc<dyn StateStore>,
        gold_timeout: Duration,
        metrics: &drgw::metrics::Metrics,
    ) -> (MirrorEngine, Journal) {
        let journal = Journal::open(store.clone(), JournalConfig::default())
            .await
            .expect("journal");
        let engine = MirrorEngine::start(MirrorDeps {
            store: store.clone(),
            journal: journal.clone(),
            idmap: IdMap::new(store),
            recovery: mirror_site(SiteName::Recovery, &self.recovery.endpoints().services()),
            primary: mirror_site(SiteName::Primary, &self.primary.endpoints().services()),
            registry: &metrics.registry,
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

    pub async fn mem_engine(&self) -> (MirrorEngine, Journal) {
        self.engine(Arc::new(MemoryStore::new()), Duration::from_secs(3))
            .await
    }

    pub fn url(&self, site: &SiteHandle, svc: Service, path: &str) -> String {
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
    pub async fn call(
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
        self.called((ctx, tier, svc), method, path, body, resp)
    }

    /// As [`Bed::call`], with the body sent as `content_type` (Glance's JSON-patch types).
    #[allow(clippy::too_many_arguments)]
    pub async fn call_as(
        &self,
        (who, ctx): (&SimClient, &Arc<TokenContext>),
        tier: &TierChoice,
        svc: Service,
        method: Method,
        path: &str,
        body: Value,
        content_type: &str,
    ) -> (SimResponse, Mutation) {
        let resp = who
            .send_raw(
                method.clone(),
                &self.url(&self.primary, svc, path),
                body.to_string().into(),
                content_type,
                &[],
            )
            .await
            .expect("primary call");
        self.called((ctx, tier, svc), method, path, Some(body), resp)
    }

    /// A successful primary answer and the mutation the gateway would build from it.
    fn called(
        &self,
        (ctx, tier, svc): (&Arc<TokenContext>, &TierChoice, Service),
        method: Method,
        path: &str,
        body: Option<Value>,
        resp: SimResponse,
    ) -> (SimResponse, Mutation) {
        assert!(
            resp.status.is_success(),
            "{method} {path}: {} {}",
            resp.status,
            resp.json
        );
        // As the gateway records it: the query apart from the path.
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (path, None),
        };
        let m = Mutation {
            site: drgw::config::SiteName::Primary,
            op: Operation::other(svc, Action::Create),
            tenant: ctx.clone(),
            tier: tier.clone(),
            method,
            path: path.to_string(),
            query,
            microversion: None,
            request_body: body,
            status: resp.status,
            response_body: (!resp.json.is_null()).then(|| resp.json.clone()),
            location: None,
        };
        (resp, m)
    }

    /// Creates a network named `name` for the demo tenant at the primary: its primary id and
    /// the mutation to submit at `tier`.
    pub async fn demo_network(&self, tier: &TierChoice, name: &str) -> (String, Mutation) {
        let (resp, m) = self
            .call(
                (&self.demo, &self.demo_ctx),
                tier,
                Service::Network,
                Method::POST,
                "/v2.0/networks",
                Some(serde_json::json!({"network": {"name": name}})),
            )
            .await;
        let id = resp.json["network"]["id"]
            .as_str()
            .expect("network id")
            .to_string();
        (id, m)
    }

    /// Creates a network named `name` directly at the recovery site, in the demo tenant's
    /// project there, mapped to nothing (as a copy whose mark a crash rolled back would be);
    /// its recovery id.
    pub async fn unmapped_recovery_network(&self, name: &str) -> String {
        let project = self
            .recovery
            .project_id("demo")
            .expect("demo at the recovery site");
        let copy = self
            .radmin
            .post(
                &self.url(&self.recovery, Service::Network, "/v2.0/networks"),
                &serde_json::json!({"network": {"name": name, "project_id": project}}),
            )
            .await
            .expect("recovery network");
        copy.json["network"]["id"]
            .as_str()
            .expect("network id")
            .to_string()
    }

    pub async fn recovery_get(&self, svc: Service, path: &str) -> SimResponse {
        self.radmin
            .get(&self.url(&self.recovery, svc, path))
            .await
            .expect("recovery get")
    }
}

/// The Bronze tier (async).
pub fn bronze() -> TierChoice {
    TierChoice {
        name: "bronze".into(),
        mode: MirrorMode::Async {
            max_lag: Duration::from_secs(60),
        },
        on_failure: GoldFailure::Degrade,
    }
}

/// The Silver tier (periodic), checkpointing every `interval`.
pub fn silver(interval: Duration) -> TierChoice {
    TierChoice {
        name: "silver".into(),
        mode: MirrorMode::Periodic { interval },
        on_failure: GoldFailure::Degrade,
    }
}

/// The Gold tier (sync) with its failure mode.
pub fn gold(on_failure: GoldFailure) -> TierChoice {
    TierChoice {
        name: "gold".into(),
        mode: MirrorMode::Sync,
        on_failure,
    }
}

/// Polls `f` every 50 ms until it holds; panics naming `what` after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The recovery id the engine's ID map holds for a primary id.
pub async fn recovery_id(engine: &MirrorEngine, svc: &str, ty: &str, id: &str) -> Option<String> {
    engine
        .idmap_lookup(svc, ty, id)
        .await
        .expect("idmap")
        .map(|m| m.recovery_id)
}

/// The journal's failed records (up to 100).
pub async fn failed_records(journal: &Journal) -> Vec<JournalRecord> {
    let failed = RecordFilter {
        state: Some(StateFilter::Failed),
        ..RecordFilter::default()
    };
    journal
        .list(&failed, None, 100)
        .await
        .expect("the journal")
        .records
}
