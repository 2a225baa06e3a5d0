//! `drgw.toml`: the gateway's typed, defaulted configuration, validated as a whole.
//!
//! Loading never stops at the first problem: unknown keys (collected with `serde_ignored`)
//! and every semantic error (bad URL, missing listener, unreadable TLS file, ...) are
//! gathered and reported together, each with the key that is wrong. `drgw check-config`
//! prints exactly that list.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::access_log::AccessLogTarget;
use crate::operation::Service;

/// One configuration problem, with the dotted key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// All problems found in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Which of the two sites (`"primary"`, `"recovery"` in JSON).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SiteName {
    Primary,
    Recovery,
}

impl SiteName {
    pub const ALL: [SiteName; 2] = [SiteName::Primary, SiteName::Recovery];

    pub fn as_str(self) -> &'static str {
        match self {
            SiteName::Primary => "primary",
            SiteName::Recovery => "recovery",
        }
    }
}

impl fmt::Display for SiteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The gateway's own service account at a site.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    /// The password itself; prefer `password_file` outside of sandboxes.
    #[serde(default)]
    pub password: Option<String>,
    /// A file whose first line is the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_domain")]
    pub user_domain_name: String,
    pub project_name: String,
    #[serde(default = "default_domain")]
    pub project_domain_name: String,
}

fn default_domain() -> String {
    "Default".to_string()
}

impl Credentials {
    /// The password, read from the file when one is configured.
    pub fn resolve_password(&self) -> std::io::Result<String> {
        if let Some(p) = &self.password {
            return Ok(p.clone());
        }
        match &self.password_file {
            Some(path) => Ok(std::fs::read_to_string(path)?
                .lines()
                .next()
                .unwrap_or("")
                .to_string()),
            None => Ok(String::new()),
        }
    }
}

/// Raw site section as written in the file.
#[derive(Debug, Clone, Deserialize)]
struct RawSite {
    identity: Option<String>,
    compute: Option<String>,
    network: Option<String>,
    volumev3: Option<String>,
    image: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    ca_bundle: Option<PathBuf>,
    credentials: Option<Credentials>,
    #[serde(default)]
    admin: Option<bool>,
    #[serde(default)]
    aliases: RawAliases,
}

/// `[sites.NAME.aliases]`: per service, other base URLs the site's answers may name it by.
#[derive(Debug, Clone, Default, Deserialize)]
struct RawAliases {
    #[serde(default)]
    identity: Vec<String>,
    #[serde(default)]
    compute: Vec<String>,
    #[serde(default)]
    network: Vec<String>,
    #[serde(default)]
    volumev3: Vec<String>,
    #[serde(default)]
    image: Vec<String>,
}

/// One OpenStack site: the upstream base URL of each fronted service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    pub name: SiteName,
    /// Base URLs without a trailing slash, e.g. `http://10.0.0.5:8774` or
    /// `http://10.0.0.5/compute`.
    pub endpoints: BTreeMap<Service, String>,
    pub region: Option<String>,
    pub ca_bundle: Option<PathBuf>,
    pub credentials: Option<Credentials>,
    /// Whether the gateway's account there has the admin role (default true). Without it
    /// (a public cloud as the recovery site) flavors cannot be created there: each primary
    /// flavor is fitted to the smallest existing flavor that holds it
    /// ([`crate::mirror::flavor_fit`]).
    pub admin: bool,
    /// Other base URLs by which the site's answers name a service (the host name of the
    /// VIP in front of it, a `public_endpoint` setting), without a trailing slash. Links
    /// and catalog URLs under them are pointed at the gateway as those under the upstream
    /// URL are. The gateway never connects to them.
    pub aliases: BTreeMap<Service, Vec<String>>,
}

impl SiteConfig {
    pub fn endpoint(&self, service: Service) -> &str {
        self.endpoints
            .get(&service)
            .map(String::as_str)
            .unwrap_or("")
    }

    /// Every base URL by which the site's answers may name `service`: its upstream URL,
    /// then its aliases.
    pub fn names_of(&self, service: Service) -> impl Iterator<Item = &str> {
        std::iter::once(self.endpoint(service)).chain(
            self.aliases
                .get(&service)
                .into_iter()
                .flatten()
                .map(String::as_str),
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
struct RawListener {
    listen: String,
    public_url: String,
    #[serde(default)]
    tls: Option<RawTls>,
}

/// TLS material for a listener (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How a service is reached by clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceListener {
    pub service: Service,
    /// Index into [`Config::listeners`].
    pub listener: usize,
    /// Path prefix on a shared listener (`/compute`), empty on a dedicated one.
    pub prefix: String,
    /// The URL clients must use for this service, without a trailing slash (prefix
    /// included).
    pub public_url: String,
}

/// A socket the gateway accepts client connections on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// `shared` or the service's name.
    pub name: String,
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone, Deserialize, Default)]
struct RawListeners {
    shared: Option<RawListener>,
    identity: Option<RawListener>,
    compute: Option<RawListener>,
    network: Option<RawListener>,
    volume: Option<RawListener>,
    image: Option<RawListener>,
}

#[derive(Debug, Clone, Deserialize, Default)]
struct RawUpstream {
    connect_timeout: Option<String>,
    request_timeout: Option<String>,
    pool_idle_timeout: Option<String>,
    pool_max_idle_per_host: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, Default)]
struct RawGateway {
    state_dir: Option<PathBuf>,
    max_body_bytes: Option<u64>,
    catalog_mode: Option<String>,
    shutdown_grace: Option<String>,
    workers: Option<usize>,
    policy_file: Option<PathBuf>,
    gold_timeout: Option<String>,
    client_body_timeout: Option<String>,
    client_send_timeout: Option<String>,
    client_header_timeout: Option<String>,
    http1_fast_lane: Option<bool>,
    access_log: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
struct RawAdmin {
    listen: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawConfig {
    #[serde(default)]
    gateway: RawGateway,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    sites: BTreeMap<String, RawSite>,
    #[serde(default)]
    listeners: RawListeners,
    #[serde(default)]
    admin: RawAdmin,
}

/// Where the service catalog in token responses points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogMode {
    /// The catalog always points at the gateway (default).
    Routed,
    /// The gateway fronts Keystone only; the catalog points at the active site.
    Direct,
}

/// Timeouts and pool settings of the upstream client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    /// Time allowed until the upstream's response headers arrive once the request is sent,
    /// and for the upstream to make progress while taking the request or sending the body
    /// of its answer.
    pub request_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token_file: PathBuf,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub state_dir: PathBuf,
    pub max_body_bytes: u64,
    pub catalog_mode: CatalogMode,
    pub shutdown_grace: Duration,
    /// Worker threads serving client connections, each with its own runtime, sockets and
    /// upstream pools (see [`crate::worker`]); 0 = one per core.
    pub workers: usize,
    /// Plain HTTP/1.1 GETs relayed by the gateway's own HTTP/1 code (see
    /// [`crate::fastlane`]); off, every request goes through hyper.
    pub http1_fast_lane: bool,
    pub policy_file: Option<PathBuf>,
    /// How long a Gold (sync) change may wait for the recovery site's apply.
    pub gold_timeout: Duration,
    /// The longest pause between two pieces of a request body, read (a protected change's
    /// JSON) or streamed (image data); beyond it the client gets 408.
    pub client_body_timeout: Duration,
    /// How long a client may take nothing the gateway writes to it (a download it stopped
    /// reading) before its connection closes.
    pub client_send_timeout: Duration,
    /// How long a client may take to send a request head, the idle time before it on a
    /// kept-alive connection included, and to complete a TLS handshake; also how long an
    /// HTTP/2 connection may stay with no request open.
    pub client_header_timeout: Duration,
    /// One JSON line per answered request (see [`crate::access_log`]); off by default.
    pub access_log: AccessLogTarget,
    pub upstream: UpstreamConfig,
    pub primary: SiteConfig,
    pub recovery: SiteConfig,
    pub listeners: Vec<ListenerConfig>,
    pub services: Vec<ServiceListener>,
    pub admin: AdminConfig,
}

impl Config {
    pub fn site(&self, name: SiteName) -> &SiteConfig {
        match name {
            SiteName::Primary => &self.primary,
            SiteName::Recovery => &self.recovery,
        }
    }

    pub fn service_listener(&self, service: Service) -> Option<&ServiceListener> {
        self.services.iter().find(|s| s.service == service)
    }

    /// Reads and validates a file. Relative paths inside it are resolved against the
    /// file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                key: path.display().to_string(),
                reason: format!("cannot read: {e}"),
            }])
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, &base)
    }

    /// Parses and validates TOML text; `base_dir` resolves relative paths.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let de = toml::Deserializer::new(text);
        let mut unknown = Vec::new();
        let raw: Result<RawConfig, _> = serde_ignored::deserialize(de, |path| {
            unknown.push(path.to_string());
        });
        for key in unknown {
            errors.push(ConfigError {
                key,
                reason: "unknown key".into(),
            });
        }
        let raw = match raw {
            Ok(raw) => raw,
            Err(e) => {
                errors.push(ConfigError {
                    key: "(file)".into(),
                    reason: e.to_string().trim().to_string(),
                });
                return Err(ConfigErrors(errors));
            }
        };
        let cfg = build(raw, base_dir, &mut errors);
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

fn err(errors: &mut Vec<ConfigError>, key: impl Into<String>, reason: impl Into<String>) {
    errors.push(ConfigError {
        key: key.into(),
        reason: reason.into(),
    });
}

/// The longest duration the configuration takes: far beyond any timeout or interval, and
/// short enough that adding it to the clock cannot overflow.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Parses durations such as `500ms`, `3s`, `2m`, `1h`, up to [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = text.split_at(split);
    let value: f64 = num.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    // `try_`: a number of hours past what a `Duration` holds is refused, not a panic.
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d <= MAX_DURATION)
}

fn duration(
    errors: &mut Vec<ConfigError>,
    key: &str,
    value: Option<&str>,
    default: Duration,
) -> Duration {
    match value {
        None => default,
        Some(v) => match parse_duration(v) {
            Some(d) if !d.is_zero() => d,
            _ => {
                err(
                    errors,
                    key,
                    format!(
                        "`{v}` is not a positive duration of at most 100 years (e.g. 500ms, 3s, 2m)"
                    ),
                );
                default
            }
        },
    }
}

/// Checks an upstream or public base URL and returns it without a trailing slash.
fn base_url(errors: &mut Vec<ConfigError>, key: &str, value: &str) -> String {
    let trimmed = value.trim_end_matches('/');
    let ok = match http::Uri::try_from(trimmed) {
        Ok(uri) => {
            matches!(uri.scheme_str(), Some("http") | Some("https"))
                && uri.authority().is_some()
                && uri.query().is_none()
        }
        Err(_) => false,
    };
    if !ok {
        err(
            errors,
            key,
            format!("`{value}` is not an absolute http(s) URL without a query"),
        );
    }
    trimmed.to_string()
}

fn socket_addr(errors: &mut Vec<ConfigError>, key: &str, value: &str) -> SocketAddr {
    match value.parse() {
        Ok(a) => a,
        Err(_) => {
            err(
                errors,
                key,
                format!("`{value}` is not an address like 127.0.0.1:5000"),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        }
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn build(raw: RawConfig, base_dir: &Path, errors: &mut Vec<ConfigError>) -> Config {
    let g = raw.gateway;
    let catalog_mode = match g.catalog_mode.as_deref() {
        None | Some("routed") => CatalogMode::Routed,
        Some("direct") => CatalogMode::Direct,
        Some(other) => {
            err(
                errors,
                "gateway.catalog_mode",
                format!("`{other}` is neither `routed` nor `direct`"),
            );
            CatalogMode::Routed
        }
    };
    let max_body_bytes = g.max_body_bytes.unwrap_or(1 << 20);
    if max_body_bytes == 0 {
        err(errors, "gateway.max_body_bytes", "must be greater than 0");
    }
    let shutdown_grace = duration(
        errors,
        "gateway.shutdown_grace",
        g.shutdown_grace.as_deref(),
        Duration::from_secs(30),
    );
    let gold_timeout = duration(
        errors,
        "gateway.gold_timeout",
        g.gold_timeout.as_deref(),
        Duration::from_secs(10),
    );
    let client_body_timeout = duration(
        errors,
        "gateway.client_body_timeout",
        g.client_body_timeout.as_deref(),
        Duration::from_secs(60),
    );
    let client_send_timeout = duration(
        errors,
        "gateway.client_send_timeout",
        g.client_send_timeout.as_deref(),
        Duration::from_secs(60),
    );
    let client_header_timeout = duration(
        errors,
        "gateway.client_header_timeout",
        g.client_header_timeout.as_deref(),
        Duration::from_secs(30),
    );
    let upstream = UpstreamConfig {
        connect_timeout: duration(
            errors,
            "upstream.connect_timeout",
            raw.upstream.connect_timeout.as_deref(),
            Duration::from_secs(3),
        ),
        request_timeout: duration(
            errors,
            "upstream.request_timeout",
            raw.upstream.request_timeout.as_deref(),
            Duration::from_secs(120),
        ),
        pool_idle_timeout: duration(
            errors,
            "upstream.pool_idle_timeout",
            raw.upstream.pool_idle_timeout.as_deref(),
            Duration::from_secs(60),
        ),
        pool_max_idle_per_host: raw.upstream.pool_max_idle_per_host.unwrap_or(256),
    };

    let mut sites = raw.sites;
    for name in sites.keys() {
        if name != "primary" && name != "recovery" {
            err(
                errors,
                format!("sites.{name}"),
                "only `primary` and `recovery` sites exist",
            );
        }
    }
    let mut site = |name: SiteName| -> SiteConfig {
        let key = format!("sites.{name}");
        let Some(raw) = sites.remove(name.as_str()) else {
            err(errors, key, "missing site");
            return SiteConfig {
                name,
                endpoints: BTreeMap::new(),
                region: None,
                ca_bundle: None,
                credentials: None,
                admin: true,
                aliases: BTreeMap::new(),
            };
        };
        let mut endpoints = BTreeMap::new();
        let mut aliases = BTreeMap::new();
        for (service, field, value, alias_list) in [
            (
                Service::Identity,
                "identity",
                &raw.identity,
                &raw.aliases.identity,
            ),
            (
                Service::Compute,
                "compute",
                &raw.compute,
                &raw.aliases.compute,
            ),
            (
                Service::Network,
                "network",
                &raw.network,
                &raw.aliases.network,
            ),
            (
                Service::BlockStorage,
                "volumev3",
                &raw.volumev3,
                &raw.aliases.volumev3,
            ),
            (Service::Image, "image", &raw.image, &raw.aliases.image),
        ] {
            match value {
                Some(v) => {
                    endpoints.insert(service, base_url(errors, &format!("{key}.{field}"), v));
                }
                None => err(errors, format!("{key}.{field}"), "missing upstream URL"),
            }
            if !alias_list.is_empty() {
                let alias_key = format!("{key}.aliases.{field}");
                let list = alias_list
                    .iter()
                    .map(|a| base_url(errors, &alias_key, a))
                    .collect();
                aliases.insert(service, list);
            }
        }
        let ca_bundle = raw.ca_bundle.map(|p| {
            let p = resolve(base_dir, &p);
            if !p.is_file() {
                err(
                    errors,
                    format!("{key}.ca_bundle"),
                    format!("{} is not a readable file", p.display()),
                );
            }
            p
        });
        let credentials = raw.credentials.map(|mut c| {
            if c.password.is_none() && c.password_file.is_none() {
                err(
                    errors,
                    format!("{key}.credentials"),
                    "needs `password` or `password_file`",
                );
            }
            if let Some(p) = c.password_file.take() {
                let p = resolve(base_dir, &p);
                if !p.is_file() {
                    err(
                        errors,
                        format!("{key}.credentials.password_file"),
                        format!("{} is not a readable file", p.display()),
                    );
                }
                c.password_file = Some(p);
            }
            c
        });
        SiteConfig {
            name,
            endpoints,
            region: raw.region,
            ca_bundle,
            credentials,
            admin: raw.admin.unwrap_or(true),
            aliases,
        }
    };
    let primary = site(SiteName::Primary);
    let recovery = site(SiteName::Recovery);

    // Listeners: a service has its own listener, or a prefix on the shared one.
    let mut listeners = Vec::new();
    let mut services = Vec::new();
    let tls = |errors: &mut Vec<ConfigError>, key: &str, t: Option<RawTls>| {
        t.map(|t| {
            let cert = resolve(base_dir, &t.cert);
            let key_path = resolve(base_dir, &t.key);
            for (f, p) in [("cert", &cert), ("key", &key_path)] {
                if !p.is_file() {
                    err(
                        errors,
                        format!("{key}.tls.{f}"),
                        format!("{} is not a readable file", p.display()),
                    );
                }
            }
            TlsFiles {
                cert,
                key: key_path,
            }
        })
    };
    let raw_l = raw.listeners;
    let shared_index = raw_l.shared.map(|l| {
        let listen = socket_addr(errors, "listeners.shared.listen", &l.listen);
        let public = base_url(errors, "listeners.shared.public_url", &l.public_url);
        let tls = tls(errors, "listeners.shared", l.tls);
        listeners.push(ListenerConfig {
            name: "shared".into(),
            listen,
            tls,
        });
        (listeners.len() - 1, public)
    });
    for (service, raw) in [
        (Service::Identity, raw_l.identity),
        (Service::Compute, raw_l.compute),
        (Service::Network, raw_l.network),
        (Service::BlockStorage, raw_l.volume),
        (Service::Image, raw_l.image),
    ] {
        let key = format!("listeners.{}", service.as_str());
        match (raw, &shared_index) {
            (Some(l), _) => {
                let listen = socket_addr(errors, &format!("{key}.listen"), &l.listen);
                let public_url = base_url(errors, &format!("{key}.public_url"), &l.public_url);
                let tls = tls(errors, &key, l.tls);
                listeners.push(ListenerConfig {
                    name: service.as_str().into(),
                    listen,
                    tls,
                });
                services.push(ServiceListener {
                    service,
                    listener: listeners.len() - 1,
                    prefix: String::new(),
                    public_url,
                });
            }
            (None, Some((index, public))) => services.push(ServiceListener {
                service,
                listener: *index,
                prefix: service.default_prefix().to_string(),
                public_url: format!("{public}{}", service.default_prefix()),
            }),
            (None, None) => err(
                errors,
                key,
                "no listener: configure it or `listeners.shared`",
            ),
        }
    }
    let mut seen = BTreeMap::new();
    for l in &listeners {
        if l.listen.port() != 0 {
            if let Some(other) = seen.insert(l.listen, l.name.clone()) {
                err(
                    errors,
                    format!("listeners.{}.listen", l.name),
                    format!("{} is also used by listeners.{other}", l.listen),
                );
            }
        }
    }

    let admin_listen = socket_addr(
        errors,
        "admin.listen",
        raw.admin.listen.as_deref().unwrap_or("127.0.0.1:9180"),
    );
    let state_dir = g
        .state_dir
        .map(|p| resolve(base_dir, &p))
        .unwrap_or_else(|| PathBuf::from("/var/lib/drgw"));
    let admin = AdminConfig {
        listen: admin_listen,
        token_file: raw
            .admin
            .token_file
            .map(|p| resolve(base_dir, &p))
            .unwrap_or_else(|| state_dir.join("admin.token")),
    };
    let policy_file = g.policy_file.map(|p| resolve(base_dir, &p));
    let access_log = match g.access_log.as_deref() {
        None | Some("off") => AccessLogTarget::Off,
        Some("stdout") => AccessLogTarget::Stdout,
        Some("") => {
            err(
                errors,
                "gateway.access_log",
                "empty: give a file path, \"stdout\" or \"off\"",
            );
            AccessLogTarget::Off
        }
        Some(path) => AccessLogTarget::File(resolve(base_dir, Path::new(path))),
    };
    Config {
        state_dir,
        max_body_bytes,
        catalog_mode,
        shutdown_grace,
        workers: g.workers.unwrap_or(0),
        http1_fast_lane: g.http1_fast_lane.unwrap_or(true),
        policy_file,
        gold_timeout,
        client_body_timeout,
        client_send_timeout,
        client_header_timeout,
        access_log,
        upstream,
        primary,
        recovery,
        listeners,
        services,
        admin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[gateway]
state_dir = "/tmp/drgw-test"
max_body_bytes = 65536

[sites.primary]
identity = "http://127.0.0.1:15000/"
compute = "http://127.0.0.1:15001"
network = "http://127.0.0.1:15004"
volumev3 = "http://127.0.0.1:15003"
image = "http://127.0.0.1:15002"
credentials = { username = "admin", password = "secret", project_name = "admin" }

[sites.recovery]
identity = "http://127.0.0.1:16000"
compute = "http://127.0.0.1:16001"
network = "http://127.0.0.1:16004"
volumev3 = "http://127.0.0.1:16003"
image = "http://127.0.0.1:16002"

[listeners.shared]
listen = "127.0.0.1:8080"
public_url = "http://gw.example.com:8080/"

[listeners.compute]
listen = "127.0.0.1:8774"
public_url = "http://gw.example.com:8774"
"#;

    #[test]
    fn good_config_parses_with_defaults() {
        let cfg = Config::parse(GOOD, Path::new("/etc/drgw")).expect("valid");
        assert_eq!(
            cfg.primary.endpoint(Service::Identity),
            "http://127.0.0.1:15000"
        );
        assert_eq!(cfg.catalog_mode, CatalogMode::Routed);
        assert_eq!(cfg.max_body_bytes, 65536);
        assert_eq!(cfg.client_body_timeout, Duration::from_secs(60));
        assert_eq!(cfg.client_send_timeout, Duration::from_secs(60));
        assert_eq!(cfg.client_header_timeout, Duration::from_secs(30));
        let compute = cfg.service_listener(Service::Compute).unwrap();
        assert_eq!(compute.prefix, "");
        assert_eq!(compute.public_url, "http://gw.example.com:8774");
        let volume = cfg.service_listener(Service::BlockStorage).unwrap();
        assert_eq!(volume.prefix, "/volume");
        assert_eq!(volume.public_url, "http://gw.example.com:8080/volume");
        assert_eq!(cfg.listeners.len(), 2);
        assert_eq!(cfg.admin.listen, "127.0.0.1:9180".parse().unwrap());
        assert_eq!(
            cfg.admin.token_file,
            PathBuf::from("/tmp/drgw-test/admin.token")
        );
    }

    #[test]
    fn a_site_has_admin_rights_unless_it_says_otherwise() {
        let cfg = Config::parse(GOOD, Path::new("/etc/drgw")).expect("valid");
        assert!(cfg.primary.admin && cfg.recovery.admin);
        let public = GOOD.replacen("[sites.recovery]\n", "[sites.recovery]\nadmin = false\n", 1);
        let cfg = Config::parse(&public, Path::new("/etc/drgw")).expect("valid");
        assert!(cfg.primary.admin);
        assert!(!cfg.recovery.admin);
        let wrong = GOOD.replacen(
            "[sites.recovery]\n",
            "[sites.recovery]\nadmin = \"no\"\n",
            1,
        );
        assert!(Config::parse(&wrong, Path::new("/etc/drgw")).is_err());
    }

    #[test]
    fn aliases_are_other_names_of_a_sites_services() {
        let text = GOOD.replacen(
            "[sites.recovery]\n",
            "[sites.primary.aliases]\ncompute = [\"https://compute.example.com/\", \"http://10.0.0.9/compute\"]\n\n[sites.recovery]\n",
            1,
        );
        let cfg = Config::parse(&text, Path::new("/etc/drgw")).expect("valid");
        let names: Vec<&str> = cfg.primary.names_of(Service::Compute).collect();
        assert_eq!(
            names,
            [
                "http://127.0.0.1:15001",
                "https://compute.example.com",
                "http://10.0.0.9/compute"
            ]
        );
        let names: Vec<&str> = cfg.primary.names_of(Service::Image).collect();
        assert_eq!(names, ["http://127.0.0.1:15002"]);
        assert!(cfg.recovery.aliases.is_empty());

        let bad = text
            .replace("https://compute.example.com/", "compute.example.com")
            .replace("compute = [", "volume = [\"http://x\"]\ncompute = [");
        let errs = Config::parse(&bad, Path::new("/")).unwrap_err();
        let keys: Vec<&str> = errs.0.iter().map(|e| e.key.as_str()).collect();
        for want in [
            "sites.primary.aliases.compute",
            "sites.primary.aliases.volume",
        ] {
            assert!(keys.contains(&want), "missing {want} in {keys:?}");
        }
    }

    #[test]
    fn every_error_is_reported_with_its_key() {
        let bad = GOOD
            .replace(
                "max_body_bytes = 65536",
                "max_body_bytes = 0\nfavourite_colour = \"blue\"",
            )
            .replace(
                "compute = \"http://127.0.0.1:16001\"",
                "compute = \"ftp://nowhere\"",
            )
            .replace("listen = \"127.0.0.1:8774\"", "listen = \"not-an-address\"")
            .replace("network = \"http://127.0.0.1:16004\"\n", "")
            + "\n[upstream]\nconnect_timeout = \"soon\"\n";
        let errs = Config::parse(&bad, Path::new("/")).unwrap_err();
        let keys: Vec<&str> = errs.0.iter().map(|e| e.key.as_str()).collect();
        for want in [
            "gateway.favourite_colour",
            "gateway.max_body_bytes",
            "sites.recovery.compute",
            "sites.recovery.network",
            "listeners.compute.listen",
            "upstream.connect_timeout",
        ] {
            assert!(keys.contains(&want), "missing {want} in {keys:?}");
        }
    }

    #[test]
    fn a_service_without_listener_is_an_error() {
        let text = GOOD.replace("[listeners.shared]\nlisten = \"127.0.0.1:8080\"\npublic_url = \"http://gw.example.com:8080/\"\n", "");
        let errs = Config::parse(&text, Path::new("/")).unwrap_err();
        assert!(
            errs.0.iter().any(|e| e.key == "listeners.identity"),
            "{errs}"
        );
    }

    #[test]
    fn syntax_errors_are_reported() {
        let errs = Config::parse("[gateway\n", Path::new("/")).unwrap_err();
        assert_eq!(errs.0.len(), 1);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("3s"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("3"), None);
        assert_eq!(parse_duration("xs"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(
            parse_duration("876000h"),
            Some(Duration::from_secs(876_000 * 3600))
        );
        assert_eq!(parse_duration("876001h"), None);
        // Past what a `Duration` can hold: refused, where it used to panic.
        assert_eq!(parse_duration("99999999999999999999999h"), None);
    }

    #[test]
    fn a_duration_too_long_is_an_error_with_its_key() {
        let text = GOOD.replace(
            "[gateway]\n",
            "[gateway]\nclient_header_timeout = \"99999999999999999999999h\"\n",
        );
        let errs = Config::parse(&text, Path::new("/etc/drgw")).expect_err("too long");
        assert!(
            errs.0
                .iter()
                .any(|e| e.key == "gateway.client_header_timeout"
                    && e.reason.contains("at most 100 years")),
            "{errs:?}"
        );
    }

    #[test]
    fn the_access_log_is_off_by_default_and_a_relative_path_is_the_config_files_neighbour() {
        let base = Path::new("/etc/drgw");
        let with = |value: &str| {
            let text = GOOD.replace("[gateway]\n", &format!("[gateway]\naccess_log = {value}\n"));
            Config::parse(&text, base)
        };
        assert_eq!(
            Config::parse(GOOD, base).unwrap().access_log,
            AccessLogTarget::Off
        );
        assert_eq!(with("\"off\"").unwrap().access_log, AccessLogTarget::Off);
        assert_eq!(
            with("\"stdout\"").unwrap().access_log,
            AccessLogTarget::Stdout
        );
        assert_eq!(
            with("\"logs/access.log\"").unwrap().access_log,
            AccessLogTarget::File("/etc/drgw/logs/access.log".into())
        );
        let errors = with("\"\"").unwrap_err().to_string();
        assert!(errors.starts_with("gateway.access_log: empty"), "{errors}");
        assert!(with("true").is_err());
    }
}
