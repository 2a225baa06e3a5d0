//! An in-memory OpenStack site (Keystone, Nova, Glance, Cinder, Neutron) with fault injection
//! and a request record, for the sandbox and for integration tests of the gateway.
//!
//! One [`Site`] serves each service on its own 127.0.0.1 listener, like a real cloud, plus a
//! control listener (see [`control`]). State lives in memory (image data in a temp directory);
//! ids are random per site, so two sites never share ids.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use drgw_tests::sim::{Service, Site, SiteConfig};
//! let site = Site::start(SiteConfig::named("primary")).await?;
//! let identity = site.endpoints().identity; // http://127.0.0.1:PORT
//! site.faults().fail(Some(Service::Compute), 503, Some(1));
//! site.shutdown().await;
//! # Ok(()) }
//! ```

pub mod block_storage;
pub mod client;
pub mod compute;
pub mod control;
pub mod faults;
pub mod http;
pub mod identity;
pub mod image;
pub mod network;
pub mod record;
mod server;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use faults::{Fault, FaultKind, Faults};
pub use record::{RecordedRequest, Recorder};

/// One OpenStack service of a site (plus the simulator's own control listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    Identity,
    Compute,
    Image,
    BlockStorage,
    Network,
}

impl Service {
    /// Every OpenStack service, in port order (base+0 .. base+4).
    pub const ALL: [Service; 5] = [
        Service::Identity,
        Service::Compute,
        Service::Image,
        Service::BlockStorage,
        Service::Network,
    ];

    /// Offset of the service's port from the site's base port.
    pub fn port_offset(self) -> u16 {
        match self {
            Service::Identity => 0,
            Service::Compute => 1,
            Service::Image => 2,
            Service::BlockStorage => 3,
            Service::Network => 4,
        }
    }

    /// Official service type (as in the catalog).
    pub fn service_type(self) -> &'static str {
        match self {
            Service::Identity => "identity",
            Service::Compute => "compute",
            Service::Image => "image",
            Service::BlockStorage => "block-storage",
            Service::Network => "network",
        }
    }

    /// Parses `identity`, `compute`, `image`, `block-storage`/`volume`, `network`.
    pub fn parse(s: &str) -> Option<Service> {
        match s {
            "identity" | "keystone" => Some(Service::Identity),
            "compute" | "nova" => Some(Service::Compute),
            "image" | "glance" => Some(Service::Image),
            "block-storage" | "block_storage" | "volume" | "volumev3" | "cinder" => {
                Some(Service::BlockStorage)
            }
            "network" | "neutron" => Some(Service::Network),
            _ => None,
        }
    }
}

/// Control-listener offset from the base port.
pub const CONTROL_PORT_OFFSET: u16 = 9;

/// How to start a site.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// Site name (shown by the control API and in the printed JSON).
    pub name: String,
    /// Keystone region of every endpoint.
    pub region: String,
    /// Base port: keystone = base, nova +1, glance +2, cinder +3, neutron +4, control +9.
    /// `None` or `Some(0)`: an ephemeral port for each listener.
    pub base_port: Option<u16>,
    /// How long a new server stays in BUILD before it reads as ACTIVE.
    pub server_build_time: Duration,
    /// Password of the bootstrap `admin` user.
    pub admin_password: String,
    /// Token lifetime.
    pub token_ttl: Duration,
    /// Nova and Cinder build their URLs from `X-Forwarded-Proto/-Host/-Prefix`, as behind
    /// oslo.middleware's `http_proxy_to_wsgi` with `enable_proxy_headers_parsing = true`
    /// (kolla-ansible's setting). Off by default, as in oslo.middleware.
    pub proxy_headers: bool,
}

impl SiteConfig {
    /// Defaults with a name: region `RegionOne`, ephemeral ports, 1 s server build time.
    pub fn named(name: &str) -> SiteConfig {
        SiteConfig {
            name: name.to_string(),
            ..SiteConfig::default()
        }
    }
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            name: "site".into(),
            region: "RegionOne".into(),
            base_port: None,
            server_build_time: Duration::from_secs(1),
            admin_password: "secret".into(),
            token_ttl: Duration::from_secs(24 * 3600),
            proxy_headers: false,
        }
    }
}

/// Base URLs of a site's listeners, without a version path (`http://127.0.0.1:PORT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    pub identity: String,
    pub compute: String,
    pub image: String,
    pub volume: String,
    pub network: String,
    /// The simulator's control API.
    pub control: String,
}

impl Endpoints {
    /// Base URL of one service.
    pub fn of(&self, service: Service) -> &str {
        match service {
            Service::Identity => &self.identity,
            Service::Compute => &self.compute,
            Service::Image => &self.image,
            Service::BlockStorage => &self.volume,
            Service::Network => &self.network,
        }
    }

    /// The five OpenStack services' base URLs, in the form the gateway's sandbox
    /// configuration takes.
    pub fn services(&self) -> drgw::sandbox::SimEndpoints {
        drgw::sandbox::SimEndpoints {
            identity: self.identity.clone(),
            compute: self.compute.clone(),
            image: self.image.clone(),
            volume: self.volume.clone(),
            network: self.network.clone(),
        }
    }

    /// The Keystone v3 auth URL (`.../v3`).
    pub fn auth_url(&self) -> String {
        format!("{}/v3", self.identity)
    }
}

/// The in-memory state of all services of a site.
#[derive(Debug)]
pub(crate) struct World {
    pub identity: identity::Identity,
    pub compute: compute::Compute,
    pub image: image::Images,
    pub volume: block_storage::BlockStorage,
    pub network: network::Network,
}

/// Everything the handlers of one site share.
#[derive(Debug)]
pub(crate) struct SiteCtx {
    pub config: SiteConfig,
    pub urls: Endpoints,
    pub world: Mutex<World>,
    pub faults: Faults,
    pub recorder: Recorder,
    /// Where image data is stored.
    pub data_dir: PathBuf,
    /// Removes `data_dir` when the site's last task lets go of it (also for sites a test
    /// never shuts down).
    pub _data_dir_guard: tempfile::TempDir,
}

impl SiteCtx {
    /// The base URL a service mounted at `own` (one of [`SiteCtx::urls`]) builds its URLs
    /// from for `req`: `own`, or with [`SiteConfig::proxy_headers`] what oslo.middleware's
    /// `http_proxy_to_wsgi` makes of it: the scheme from `X-Forwarded-Proto`, the host
    /// from `X-Forwarded-Host`, `X-Forwarded-Prefix` before the mount path.
    pub(crate) fn base_for(&self, req: &self::http::SimRequest, own: &str) -> String {
        if !self.config.proxy_headers {
            return own.to_string();
        }
        let (scheme, rest) = own.split_once("://").unwrap_or(("http", own));
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        format!(
            "{}://{}{}{path}",
            req.header("x-forwarded-proto").unwrap_or(scheme),
            req.header("x-forwarded-host").unwrap_or(host),
            req.header("x-forwarded-prefix").unwrap_or_default(),
        )
    }
}

impl SiteCtx {
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts sites.
#[derive(Debug)]
pub struct Site;

impl Site {
    /// Binds the listeners, bootstraps the identity data and starts serving.
    pub async fn start(config: SiteConfig) -> anyhow::Result<SiteHandle> {
        server::start(config).await
    }
}

/// A running site. Dropping it does not stop it; call [`SiteHandle::shutdown`].
#[derive(Debug, Clone)]
pub struct SiteHandle {
    ctx: Arc<SiteCtx>,
    runtime: Arc<server::Runtime>,
}

impl SiteHandle {
    /// The site's name.
    pub fn name(&self) -> &str {
        &self.ctx.config.name
    }

    /// The site's region.
    pub fn region(&self) -> &str {
        &self.ctx.config.region
    }

    /// Base URLs of the listeners.
    pub fn endpoints(&self) -> Endpoints {
        self.ctx.urls.clone()
    }

    /// The fault rules (shared with the control API).
    pub fn faults(&self) -> &Faults {
        &self.ctx.faults
    }

    /// The request record (shared with the control API).
    pub fn requests(&self) -> &Recorder {
        &self.ctx.recorder
    }

    /// Site down: closes every service listener and open connection, so that connections are
    /// refused. The control listener stays up.
    pub async fn down(&self) {
        self.runtime.set_down(true).await;
    }

    /// Site up again, on the same ports.
    pub async fn up(&self) -> anyhow::Result<()> {
        self.runtime.set_up(&self.ctx).await
    }

    /// Whether the service listeners are down.
    pub fn is_down(&self) -> bool {
        self.runtime.is_down()
    }

    /// The id of a project by name (e.g. `admin`, `demo`).
    pub fn project_id(&self, name: &str) -> Option<String> {
        self.ctx.world().identity.project_id_by_name(name)
    }

    /// The id of a user by name.
    pub fn user_id(&self, name: &str) -> Option<String> {
        self.ctx.world().identity.user_id_by_name(name)
    }

    /// The Neutron resources of a collection (`networks`, `subnets`, ...) with this name,
    /// read without HTTP (so without the site's faults).
    pub fn neutron_named(&self, collection: &str, name: &str) -> Vec<serde_json::Value> {
        self.ctx.world().network.named(collection, name)
    }

    /// Issues a project-scoped token for a user (by name, in the default domain) without HTTP.
    pub fn issue_token(&self, user: &str, project: &str) -> Option<String> {
        self.ctx.world().identity.issue_for_names(user, project)
    }

    /// A one-line JSON description: name, region, endpoints, control URL.
    pub fn describe(&self) -> serde_json::Value {
        let e = self.endpoints();
        serde_json::json!({
            "name": self.name(),
            "region": self.region(),
            "auth_url": e.auth_url(),
            "endpoints": {
                "identity": e.identity,
                "compute": e.compute,
                "image": e.image,
                "volume": e.volume,
                "network": e.network,
            },
            "control": e.control,
        })
    }

    /// Stops every listener and connection and removes the image data directory.
    pub async fn shutdown(self) {
        self.runtime.shutdown().await;
        let _ = tokio::fs::remove_dir_all(&self.ctx.data_dir).await;
    }
}
