//! Applying one journal record at the recovery site: translate its references through the
//! ID map (mirroring unmapped dependencies from the primary first), send it with the
//! gateway's service account, and record the new ID mapping; workload records are stored as
//! protection records instead.
//!
//! The same code applies reverse records (changes made at the recovery site during a
//! failover) at the primary: that [`Applier`] has the primary as its `recovery` (target) site
//! and the recovery site as its `primary` (source) site, and reads the ID map through the
//! reversed [`DirectedIdMap`] (recovery IDs → primary IDs; new copies are mapped with the
//! recovery site as their origin). Its workload specifications go to
//! [`PROTECTION_AT_PRIMARY`].
//!
//! Recovery-site authentication: every call uses the gateway's service account token
//! (admin at the recovery site). Tenant-owned Neutron resources carry the mirrored
//! `project_id` in the body (Neutron lets an admin create for another project); keypairs
//! are created as admin with `user_id` at compute microversion 2.10; Cinder's project path
//! segment becomes the service account's own project (Cinder refuses another project's
//! segment even for admins); Glance images carry `owner`. Where that account has no admin
//! role (`admin = false`), flavors are fitted instead of created ([`super::flavor_fit`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use http::{Method, Request, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::flavor_fit::{no_fit_reason, smallest_fit, FlavorFit, FlavorSize, FLAVOR_FITS};
use super::secret::SecretKey;
use super::target::{
    image_patch_v2_1, mirror_target, split_path, IdType, Kind, Location, MirrorAction, Need,
    RefTarget, Reference, Target, DOMAIN,
};
use crate::config::SiteConfig;
use crate::journal::{Direction, JournalRecord, MirrorRequest, TenantRef};
use crate::operation::{ResourceType, Service};
use crate::state::{
    frame, now_ms, push_component, Batch, DirectedIdMap, Namespace, StateError, StateStore,
};
use crate::token::KeystoneClient;
use crate::upstream::UpstreamClient;

/// Workload protection records: `service ‖ resource_type ‖ primary_id` (length-prefixed
/// components) → framed JSON [`ProtectionRecord`].
pub const PROTECTION: Namespace = Namespace::new("mirror_protection");

/// Specifications of workloads created at the recovery site during a failover, references
/// translated to primary IDs, keyed like [`PROTECTION`] by the workload's recovery ID. Kept
/// apart so that a failover never "restores" them at the recovery site where they run.
pub const PROTECTION_AT_PRIMARY: Namespace = Namespace::new("mirror_protection_at_primary");

const MAX_DEPTH: usize = 4;
const BODY_LIMIT: u64 = 8 << 20;

/// One site as the mirror uses it.
#[derive(Clone)]
pub struct MirrorSite {
    pub client: UpstreamClient,
    pub keystone: Arc<KeystoneClient>,
    pub config: SiteConfig,
}

/// A workload's specification, kept for failover to restore at the recovery site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProtectionRecord {
    pub service: String,
    pub resource_type: String,
    pub primary_id: String,
    pub tenant: TenantRef,
    pub tier: String,
    /// Forward: a primary workload (`primary_id` is its primary ID), spec in recovery IDs.
    /// Reverse: a workload created at the recovery site during a failover (`primary_id` is
    /// its recovery ID), spec in primary IDs.
    #[serde(default)]
    pub direction: Direction,
    pub seq: u64,
    pub time_ms: u64,
    pub method: String,
    /// The create path at the primary (version prefix included).
    pub path: String,
    /// The create body with references translated to recovery IDs.
    pub spec: Option<Value>,
}

/// Why applying failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApplyError {
    /// Trying again can help (5xx, timeout, connection error, state store hiccup).
    #[error("{0}")]
    Retryable(String),
    /// It cannot (4xx with the recovery site's message, a reference that cannot be mirrored).
    #[error("{0}")]
    Permanent(String),
    /// A reference names a resource the source site no longer has (deleted since the record
    /// was written): the record is moot, or (a create whose resource is still there) it
    /// fails. Settled by [`Applier::apply`], never returned by it.
    #[error("{0}")]
    SourceGone(String),
}

impl ApplyError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApplyError::Retryable(_))
    }
}

impl From<StateError> for ApplyError {
    fn from(e: StateError) -> Self {
        if e.is_retryable() {
            ApplyError::Retryable(e.to_string())
        } else {
            ApplyError::Permanent(e.to_string())
        }
    }
}

/// A site's answer.
struct Answer {
    status: StatusCode,
    json: Value,
    text: String,
}

impl Answer {
    fn message(&self) -> String {
        site_message(&self.json).unwrap_or_else(|| self.text.chars().take(300).collect())
    }

    fn error(&self, site: &str) -> ApplyError {
        let msg = format!(
            "{site} site answered {}: {}",
            self.status.as_u16(),
            self.message()
        );
        let s = self.status;
        if s.is_server_error()
            || s == StatusCode::REQUEST_TIMEOUT
            || s == StatusCode::TOO_MANY_REQUESTS
            || s == StatusCode::UNAUTHORIZED
        {
            ApplyError::Retryable(msg)
        } else {
            ApplyError::Permanent(msg)
        }
    }
}

/// The `message` of a native OpenStack error body (Nova/Cinder `{fault: {message}}`,
/// Neutron `{NeutronError: {message}}`, Keystone `{error: {message}}`, Glance).
pub fn site_message(v: &Value) -> Option<String> {
    if let Some(m) = v.get("message").and_then(Value::as_str) {
        return Some(m.to_string());
    }
    v.as_object()?
        .values()
        .find_map(|inner| inner.get("message").and_then(Value::as_str))
        .map(str::to_string)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The tags a Neutron create record's resource is to get after its create.
fn created_tags(rec: &JournalRecord) -> Vec<String> {
    if rec.service != Service::Network.as_str() || rec.request.method != "POST" {
        return Vec::new();
    }
    rec.request
        .body
        .as_ref()
        .and_then(Value::as_object)
        .and_then(|o| o.values().find_map(|v| v.get("tags")))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn protection_key(
    service: &str,
    resource_type: &str,
    primary_id: &str,
) -> Result<Vec<u8>, StateError> {
    let mut k = Vec::new();
    push_component(&mut k, service.as_bytes())?;
    push_component(&mut k, resource_type.as_bytes())?;
    push_component(&mut k, primary_id.as_bytes())?;
    Ok(k)
}

/// Whether `rec` creates something at the source: a mirrored create or a workload's
/// protection record.
fn creates(rec: &JournalRecord) -> bool {
    let req = &rec.request;
    parse_service(&rec.service)
        .and_then(|s| mirror_target(s, &req.method, &req.path, req.body.as_ref()))
        .is_some_and(|t| matches!(t.action, MirrorAction::Create | MirrorAction::Protect))
}

/// Parses a journal `service` string.
pub fn parse_service(s: &str) -> Option<Service> {
    Service::ALL.into_iter().find(|x| x.as_str() == s)
}

fn pick(src: &Value, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|k| {
            src.get(*k)
                .filter(|v| !v.is_null())
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect()
}

/// Applies records of one direction; shared by the workers and the Gold path. Field names are
/// those of the forward direction: `recovery` is the site records are applied at (the
/// target), `primary` the site they come from (the source), read for unmapped dependencies.
pub(crate) struct Applier {
    pub recovery: MirrorSite,
    pub primary: MirrorSite,
    /// The ID map seen from the source site.
    pub idmap: DirectedIdMap,
    pub store: Arc<dyn StateStore>,
    pub key: SecretKey,
    pub shared_identity: bool,
    /// Records pending when the engine started: a crash may have sent them already.
    pub startup_last_seq: u64,
    /// Records whose request may have reached the recovery site without an answer.
    maybe_sent: Mutex<HashSet<u64>>,
    service_projects: tokio::sync::Mutex<[Option<String>; 2]>,
}

impl Applier {
    pub fn new(
        recovery: MirrorSite,
        primary: MirrorSite,
        idmap: DirectedIdMap,
        store: Arc<dyn StateStore>,
        key: SecretKey,
        shared_identity: bool,
        startup_last_seq: u64,
    ) -> Applier {
        Applier {
            recovery,
            primary,
            idmap,
            store,
            key,
            shared_identity,
            startup_last_seq,
            maybe_sent: Mutex::new(HashSet::new()),
            service_projects: tokio::sync::Mutex::new([None, None]),
        }
    }

    /// Remembers that `seq` may have reached the target site (its retry looks for a copy).
    pub(super) fn note_maybe_sent(&self, seq: u64) {
        self.maybe_sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(seq);
    }

    fn maybe_sent(&self, seq: u64) -> bool {
        seq <= self.startup_last_seq
            || self
                .maybe_sent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&seq)
    }

    fn forget(&self, seq: u64) {
        self.maybe_sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&seq);
    }

    fn site_name(&self, site: &MirrorSite) -> &'static str {
        site.config.name.as_str()
    }

    /// One call at a site with the gateway's service token.
    async fn call(
        &self,
        site: &MirrorSite,
        service: Service,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, ApplyError> {
        let name = self.site_name(site);
        let token = site
            .keystone
            .service_token()
            .await
            .map_err(|e| ApplyError::Retryable(format!("{name} site: {e}")))?;
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| ApplyError::Permanent(format!("bad method {method}")))?;
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{}", site.config.endpoint(service), path))
            .header("x-auth-token", token)
            .header(http::header::ACCEPT, "application/json");
        let mut has_ct = false;
        for (k, v) in headers {
            has_ct |= k.eq_ignore_ascii_case("content-type");
            b = b.header(*k, *v);
        }
        let bytes = body.map(|v| v.to_string()).unwrap_or_default();
        if body.is_some() && !has_ct {
            b = b.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = b
            .body(crate::body::full(bytes))
            .map_err(|e| ApplyError::Permanent(format!("cannot build the request: {e}")))?;
        let (parts, bytes) = site
            .client
            .send_full(req, BODY_LIMIT)
            .await
            .map_err(|e| ApplyError::Retryable(format!("{name} site: {e}")))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status: parts.status,
            json,
            text,
        })
    }

    async fn get_ok(
        &self,
        site: &MirrorSite,
        service: Service,
        path: &str,
    ) -> Result<Option<Value>, ApplyError> {
        let a = self.call(site, service, "GET", path, None, &[]).await?;
        if a.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !a.status.is_success() {
            return Err(a.error(self.site_name(site)));
        }
        Ok(Some(a.json))
    }

    /// The project of the gateway's service account at a site.
    async fn service_project(&self, site: &MirrorSite) -> Result<String, ApplyError> {
        let i = usize::from(site.config.name == crate::config::SiteName::Recovery);
        let mut cache = self.service_projects.lock().await;
        if let Some(p) = &cache[i] {
            return Ok(p.clone());
        }
        let name = self.site_name(site);
        let token = site
            .keystone
            .service_token()
            .await
            .map_err(|e| ApplyError::Retryable(format!("{name} site: {e}")))?;
        let ctx = site
            .keystone
            .validate(&token)
            .await
            .map_err(|e| ApplyError::Retryable(format!("{name} site: {e}")))?;
        let p = ctx.and_then(|c| c.project_id).ok_or_else(|| {
            ApplyError::Permanent(format!(
                "the service token at the {name} site has no project"
            ))
        })?;
        cache[i] = Some(p.clone());
        Ok(p)
    }

    /// The recovery ID of a primary resource; unmapped, as `need` says: mirrored first,
    /// `None`, (a string naming nothing at the primary) the string itself, or (deleted at
    /// both sites) the ID its retired mapping gives.
    fn translate<'a>(
        &'a self,
        t: IdType,
        primary_id: &'a str,
        need: Need,
        depth: usize,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<String>, ApplyError>> {
        Box::pin(async move {
            if self.shared_identity
                && t.service == Service::Identity
                && t.resource != ResourceType::Role
            {
                return Ok(Some(primary_id.to_string()));
            }
            if t.resource == ResourceType::Flavor && !self.recovery.config.admin {
                if let Some(fit) = self.flavor_fit(primary_id).await? {
                    return Ok(Some(fit.recovery_id));
                }
            } else if let Some(id) = self
                .idmap
                .target_id(t.service.as_str(), t.resource.as_str(), primary_id)
                .await?
            {
                return Ok(Some(id));
            }
            match need {
                Need::IfMapped => return Ok(None),
                Need::IfItExists if !self.source_has(t, primary_id).await? => {
                    return Ok(Some(primary_id.to_string()))
                }
                Need::OrRetired => {
                    if let Some(id) = self
                        .idmap
                        .retired_target_id(t.service.as_str(), t.resource.as_str(), primary_id)
                        .await?
                    {
                        return Ok(Some(id));
                    }
                }
                _ => {}
            }
            match self.mirror_dependency(t, primary_id, depth + 1).await {
                Ok(id) => Ok(Some(id)),
                Err(ApplyError::Permanent(why)) => Err(ApplyError::Permanent(format!(
                    "{} {primary_id} is not mirrored and cannot be mirrored from the primary: {why}",
                    t.resource
                ))),
                Err(ApplyError::SourceGone(why)) => Err(ApplyError::SourceGone(format!(
                    "{} {primary_id} is not mirrored and cannot be mirrored from the primary: {why}",
                    t.resource
                ))),
                Err(e) => Err(e),
            }
        })
    }

    /// Whether the source site has `id`: read for the identity types that a
    /// [`Need::IfItExists`] reference names; any other type counts as present.
    async fn source_has(&self, t: IdType, id: &str) -> Result<bool, ApplyError> {
        let collection = match t.resource {
            ResourceType::Project => "projects",
            ResourceType::User => "users",
            ResourceType::Group => "groups",
            ResourceType::Domain => "domains",
            _ => return Ok(true),
        };
        let path = format!("/v3/{collection}/{}", percent_encode(id));
        Ok(self
            .get_ok(&self.primary, Service::Identity, &path)
            .await?
            .is_some())
    }

    async fn map(&self, t: IdType, primary_id: &str, recovery_id: &str) -> Result<(), ApplyError> {
        self.idmap
            .insert(
                t.service.as_str(),
                t.resource.as_str(),
                primary_id,
                recovery_id,
            )
            .await?;
        Ok(())
    }

    /// What reference `r` naming `id` becomes at the recovery site: `Some` new ID to write
    /// in its place, `None` to leave it as it is (an unmapped [`Need::IfMapped`] reference),
    /// or an error when a reference that must be mirrored is not mapped.
    async fn replacement(
        &self,
        r: &Reference,
        idt: IdType,
        id: &str,
        depth: usize,
    ) -> Result<Option<String>, ApplyError> {
        match self.translate(idt, id, r.need, depth).await? {
            Some(new) => Ok(Some(new)),
            None if r.need == Need::IfMapped => Ok(None),
            None => Err(ApplyError::Permanent(format!(
                "reference {} = {id} is not mapped",
                r.name
            ))),
        }
    }

    /// Replaces every reference of `t` in `path`/`body` by its recovery ID.
    pub(crate) async fn translate_request(
        &self,
        t: &Target,
        path: &str,
        mut body: Option<Value>,
        depth: usize,
    ) -> Result<(String, Option<Value>), ApplyError> {
        let (segs, query) = split_path(path);
        let mut segs: Vec<String> = segs.into_iter().map(str::to_string).collect();
        let mut query: Vec<(String, String)> = query
            .map(|q| {
                q.split('&')
                    .filter_map(|kv| {
                        kv.split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for r in &t.refs {
            let idt = match r.to {
                RefTarget::ServiceProject => {
                    if let Location::Segment(i) = r.at {
                        let p = self.service_project(&self.recovery).await?;
                        if let Some(s) = segs.get_mut(i) {
                            *s = p;
                        }
                    }
                    continue;
                }
                RefTarget::Id(idt) => idt,
            };
            // A link's last segment; an opaque string as it is.
            let one = |v: &str| match r.need {
                Need::IfItExists => v.to_string(),
                _ => v.rsplit('/').next().unwrap_or(v).to_string(),
            };
            match &r.at {
                Location::Segment(i) => {
                    if let Some(s) = segs.get_mut(*i) {
                        if let Some(new) = self.replacement(r, idt, s, depth).await? {
                            *s = new;
                        }
                    }
                }
                Location::Query(name) => {
                    for (_, v) in query.iter_mut().filter(|(k, _)| k == name) {
                        if let Some(new) = self.replacement(r, idt, v, depth).await? {
                            *v = new;
                        }
                    }
                }
                Location::Pointer(p) => {
                    let Some(slot) = body.as_mut().and_then(|b| b.pointer_mut(p)) else {
                        continue;
                    };
                    let Some(id) = slot.as_str().filter(|s| !s.is_empty()).map(one) else {
                        continue;
                    };
                    if let Some(new) = self.replacement(r, idt, &id, depth).await? {
                        *slot = json!(new);
                    }
                }
                Location::PatchValue(on) => {
                    let Some(ops) = body.as_mut().and_then(Value::as_array_mut) else {
                        continue;
                    };
                    for op in ops.iter_mut().filter_map(Value::as_object_mut) {
                        let sets = matches!(
                            crate::services::image::patch_op(op),
                            Some(("add" | "replace", p)) if p == *on
                        );
                        if !sets {
                            continue;
                        }
                        let Some(slot) = op.get_mut("value") else {
                            continue;
                        };
                        let Some(id) = slot.as_str().filter(|s| !s.is_empty()).map(one) else {
                            continue;
                        };
                        if let Some(new) = self.replacement(r, idt, &id, depth).await? {
                            *slot = json!(new);
                        }
                    }
                }
                Location::Each { array, field } => {
                    let Some(items) = body
                        .as_mut()
                        .and_then(|b| b.pointer_mut(array))
                        .and_then(Value::as_array_mut)
                    else {
                        continue;
                    };
                    for item in items.iter_mut() {
                        let slot = match field {
                            Some(f) => match item.get_mut(*f) {
                                Some(s) => s,
                                None => continue,
                            },
                            None => item,
                        };
                        let Some(id) = slot.as_str().map(one) else {
                            continue;
                        };
                        if let Some(new) = self.replacement(r, idt, &id, depth).await? {
                            *slot = json!(new);
                        }
                    }
                }
            }
        }
        let mut out = format!("/{}", segs.join("/"));
        if !query.is_empty() {
            let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push('?');
            out.push_str(&q.join("&"));
        }
        Ok((out, body))
    }

    fn headers(t: &Target, method: &str) -> Vec<(&'static str, &'static str)> {
        match (t.kind, method) {
            (Kind::Keypair, _) => vec![
                ("openstack-api-version", "compute 2.10"),
                ("x-openstack-nova-api-version", "2.10"),
            ],
            (Kind::Image, "PATCH") => vec![(
                "content-type",
                "application/openstack-images-v2.1-json-patch",
            )],
            _ => Vec::new(),
        }
    }

    /// Applies one record; returns the recovery ID of what it created, if anything. The ID-map
    /// entry of a created resource is not committed here but added to `side`, for the caller
    /// to commit with the record's transition to applied (one store transaction).
    ///
    /// A Neutron create record carries the tags its resource got at the source (the tier
    /// tag, added there right after the create): Neutron takes no tags in create bodies, so
    /// the copy is created without them and tagged (`PUT .../tags/{tag}`, idempotent) once
    /// its ID is known — also when it already existed (mapped, or adopted after a crash).
    /// If tagging fails after a fresh create, the copy's mapping is committed at once, so
    /// the retry only tags it.
    pub async fn apply(
        &self,
        rec: &JournalRecord,
        side: &mut Batch,
    ) -> Result<Option<String>, ApplyError> {
        let tags = created_tags(rec);
        let id = match self.apply_request(rec, side).await {
            Err(ApplyError::SourceGone(why)) => {
                if creates(rec) && !self.created_and_gone(rec).await {
                    return Err(ApplyError::Permanent(why));
                }
                // What the record changes went with what it needed (a role assignment with
                // its user, a keypair with its user, an interface with its port); a create's
                // delete follows in the journal and has nothing to delete.
                tracing::info!(
                    seq = rec.seq,
                    resource_type = %rec.resource_type,
                    reason = %why,
                    "record applied as nothing: what it names is gone from the source site"
                );
                return Ok(None);
            }
            Err(ApplyError::Permanent(why)) if self.created_and_gone(rec).await => {
                tracing::info!(
                    seq = rec.seq,
                    resource_type = %rec.resource_type,
                    reason = %why,
                    "create applied as nothing: the resource is gone from the source site"
                );
                return Ok(None);
            }
            other => other?,
        };
        let (Some(id), false) = (id.as_deref(), tags.is_empty()) else {
            return Ok(id);
        };
        let collection = rec.request.path.split('?').next().unwrap_or_default();
        for tag in &tags {
            let path = format!("{collection}/{id}/tags/{}", percent_encode(tag));
            let answer = self
                .call(&self.recovery, Service::Network, "PUT", &path, None, &[])
                .await
                .and_then(|a| {
                    if a.status.is_success() {
                        Ok(())
                    } else {
                        Err(a.error(self.site_name(&self.recovery)))
                    }
                });
            if let Err(e) = answer {
                if !side.is_empty() {
                    // Created but not yet mapped: map it now, so the retry only tags it.
                    self.store.commit(std::mem::take(side)).await?;
                }
                return Err(e);
            }
        }
        Ok(Some(id.to_string()))
    }

    /// Whether `rec` creates (or protects) a resource that the source site no longer has:
    /// created and deleted there before this record's turn came (Bronze, Silver), which can
    /// take what it needed with it (a keypair's user, deleted after the keypair). Such a
    /// create that cannot be applied is applied as nothing: the target then matches the
    /// source. Only a 404 there says so: a source that cannot be asked (down, say) leaves
    /// the record's own failure as it was.
    async fn created_and_gone(&self, rec: &JournalRecord) -> bool {
        let (Some(service), Some(id)) = (parse_service(&rec.service), rec.primary_id.as_deref())
        else {
            return false;
        };
        let req = &rec.request;
        let Some(t) = mirror_target(service, &req.method, &req.path, req.body.as_ref()) else {
            return false;
        };
        if !matches!(t.action, MirrorAction::Create | MirrorAction::Protect) {
            return false;
        }
        let (segs, _) = split_path(&req.path);
        let mut path = format!("/{}/{}", segs.join("/"), percent_encode(id));
        if let Some(user) = req
            .body
            .as_ref()
            .and_then(|b| b.pointer("/keypair/user_id"))
            .and_then(Value::as_str)
        {
            path.push_str(&format!("?user_id={}", percent_encode(user)));
        }
        let headers = Self::headers(&t, "GET");
        let answer = self
            .call(&self.primary, service, "GET", &path, None, &headers)
            .await;
        matches!(answer, Ok(a) if a.status == StatusCode::NOT_FOUND)
    }

    /// Applies the record's request (a Neutron create without its tags).
    async fn apply_request(
        &self,
        rec: &JournalRecord,
        side: &mut Batch,
    ) -> Result<Option<String>, ApplyError> {
        let service = parse_service(&rec.service)
            .ok_or_else(|| ApplyError::Permanent(format!("unknown service {}", rec.service)))?;
        let req = &rec.request;
        let mut t =
            mirror_target(service, &req.method, &req.path, req.body.as_ref()).ok_or_else(|| {
                ApplyError::Permanent(format!(
                    "{} {} is not a mirrored request",
                    req.method, req.path
                ))
            })?;
        let primary_id = rec.primary_id.as_deref();
        if !self.recovery.config.admin
            && matches!(
                t.kind,
                Kind::Flavor | Kind::FlavorExtraSpec | Kind::FlavorAccess
            )
        {
            return self.apply_flavor_without_admin(rec, &t).await;
        }
        match t.action {
            MirrorAction::Protect => return self.protect(rec, &t).await.map(|_| None),
            MirrorAction::Unprotect => {
                if let Some(id) = primary_id {
                    let k = protection_key(&rec.service, &rec.resource_type, id)?;
                    self.store.delete(self.protection_ns(), &k).await?;
                    if rec.direction == Direction::Reverse {
                        // A primary workload deleted during the failover: a later failover
                        // must not restore it.
                        if let Some(p) = self
                            .idmap
                            .target_id(&rec.service, &rec.resource_type, id)
                            .await?
                        {
                            let k = protection_key(&rec.service, &rec.resource_type, &p)?;
                            self.store.delete(PROTECTION, &k).await?;
                        }
                    }
                }
                return Ok(None);
            }
            MirrorAction::Create => {
                if let (Some(idt), Some(pid)) = (t.id_type, primary_id) {
                    if let Some(id) = self
                        .idmap
                        .target_id(idt.service.as_str(), idt.resource.as_str(), pid)
                        .await?
                    {
                        // Already mirrored (as a dependency of an earlier record, or before
                        // a crash): nothing to send.
                        return Ok(Some(id));
                    }
                }
            }
            MirrorAction::Delete => {
                if let (Some(idt), Some(pid), Some(seg)) = (t.id_type, primary_id, t.subject) {
                    let mapped = self
                        .idmap
                        .target_id(idt.service.as_str(), idt.resource.as_str(), pid)
                        .await?;
                    let same = idt.keeps_id()
                        || (self.shared_identity && idt.service == Service::Identity);
                    if mapped.is_none() && !same {
                        return Ok(None); // never mirrored: nothing to delete
                    }
                    if mapped.is_none() {
                        // A copy would have the same ID: deleted by it (a 404 is fine), not
                        // mirrored first from a primary that deleted it already.
                        for r in t.refs.iter_mut().filter(|r| r.at == Location::Segment(seg)) {
                            r.need = Need::IfMapped;
                        }
                    }
                }
            }
            MirrorAction::Update => {}
        }
        if t.kind == Kind::RouterInterface && self.interface_port_gone(&t, req).await? {
            return Ok(None);
        }
        let mut body = req.body.clone();
        if t.kind == Kind::Image && req.method == "PATCH" {
            // Sent as `application/openstack-images-v2.1-json-patch` (see `headers`).
            body = body.map(image_patch_v2_1);
        }
        let (path, mut body) = self.translate_request(&t, &req.path, body, 0).await?;
        if t.service == Service::Network && t.action == MirrorAction::Create {
            // Tagged after the create (see `apply`).
            if let Some(o) = t
                .wrapper
                .and_then(|w| body.as_mut()?.get_mut(w)?.as_object_mut())
            {
                o.remove("tags");
            }
        }
        if let Some(sealed) = &req.secret {
            let clear = self
                .key
                .open(sealed)
                .map_err(|e| ApplyError::Permanent(e.to_string()))?;
            let slot = body
                .as_mut()
                .and_then(|b| {
                    b.pointer_mut(
                        sealed
                            .pointer
                            .rsplit_once('/')
                            .map(|(p, _)| p)
                            .unwrap_or(""),
                    )
                })
                .and_then(Value::as_object_mut);
            match (slot, sealed.pointer.rsplit('/').next()) {
                (Some(o), Some(field)) => {
                    o.insert(field.to_string(), json!(clear));
                }
                _ => {
                    return Err(ApplyError::Permanent(
                        "the secret's field is not in the body".into(),
                    ))
                }
            }
        }
        if t.duplicates_possible() && self.maybe_sent(rec.seq) {
            if let Some(id) = self.find_copy(&t, &path, body.as_ref()).await? {
                if let (Some(idt), Some(pid)) = (t.id_type, primary_id) {
                    self.map(idt, pid, &id).await?;
                }
                return Ok(Some(id));
            }
        }
        let headers = Self::headers(&t, &req.method);
        let answer = match self
            .call(
                &self.recovery,
                service,
                &req.method,
                &path,
                body.as_ref(),
                &headers,
            )
            .await
        {
            Ok(a) => a,
            Err(e) => {
                self.note_maybe_sent(rec.seq);
                return Err(e);
            }
        };
        if answer.status.is_server_error() {
            self.note_maybe_sent(rec.seq);
        }
        let ok = answer.status.is_success()
            || (answer.status == StatusCode::NOT_FOUND && t.action == MirrorAction::Delete);
        if !ok {
            if t.kind == Kind::RouterInterface
                && t.action == MirrorAction::Update
                && self.has_interface(&path, body.as_ref()).await?
            {
                // Added by an earlier attempt whose answer a crash or a timeout lost.
                self.forget(rec.seq);
                return Ok(None);
            }
            if answer.status == StatusCode::CONFLICT && t.action == MirrorAction::Create {
                if let Some(id) = self
                    .adopt_conflict(&t, &path, body.as_ref(), &answer)
                    .await?
                {
                    if let (Some(idt), Some(pid)) = (t.id_type, primary_id) {
                        self.map(idt, pid, &id).await?;
                    }
                    self.forget(rec.seq);
                    return Ok(Some(id));
                }
            }
            return Err(answer.error(self.site_name(&self.recovery)));
        }
        self.forget(rec.seq);
        if t.kind == Kind::RouterInterface && t.action == MirrorAction::Delete {
            self.forget_interface_port(&answer.json).await?;
        }
        match (t.action, t.id_type, primary_id) {
            (MirrorAction::Create, Some(idt), Some(pid)) => {
                let id = if idt.keeps_id() {
                    pid.to_string()
                } else {
                    t.id_pointer
                        .and_then(|p| answer.json.pointer(p))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| {
                            ApplyError::Permanent("the target site's answer carries no id".into())
                        })?
                };
                let mapping = self
                    .idmap
                    .prepare_insert(idt.service.as_str(), idt.resource.as_str(), pid, &id)
                    .await;
                match mapping {
                    Ok(Some(batch)) => side.append(batch),
                    Ok(None) => {}
                    Err(e) => {
                        // Created but not mapped: a retry must look for this copy first.
                        self.note_maybe_sent(rec.seq);
                        return Err(e.into());
                    }
                }
                Ok(Some(id))
            }
            (MirrorAction::Delete, Some(idt), Some(pid)) if t.subject.is_some() => {
                let (svc, rt) = (idt.service.as_str(), idt.resource.as_str());
                if idt.outlived_by_its_children() {
                    self.idmap.retire(svc, rt, pid).await?;
                } else {
                    self.idmap.remove(svc, rt, pid).await?;
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    async fn protect(&self, rec: &JournalRecord, t: &Target) -> Result<(), ApplyError> {
        let Some(pid) = rec.primary_id.as_deref() else {
            return Err(ApplyError::Permanent(
                "a protection record needs the primary id".into(),
            ));
        };
        // Keep the primary path (no service-project rewrite): the spec is restored later.
        let mut t = t.clone();
        t.refs.retain(|r| r.to != RefTarget::ServiceProject);
        let (_, spec) = self
            .translate_request(&t, &rec.request.path, rec.request.body.clone(), 0)
            .await?;
        let k = protection_key(&rec.service, &rec.resource_type, pid)?;
        let p = ProtectionRecord {
            service: rec.service.clone(),
            resource_type: rec.resource_type.clone(),
            primary_id: pid.into(),
            tenant: rec.tenant.clone(),
            tier: rec.tier.clone(),
            direction: rec.direction,
            seq: rec.seq,
            time_ms: now_ms(),
            method: rec.request.method.clone(),
            path: rec.request.path.clone(),
            spec,
        };
        let ns = self.protection_ns();
        let v = frame::seal_json(ns, &k, &p)?;
        self.store.put(ns, &k, &v).await?;
        Ok(())
    }

    /// Where this direction keeps workload specifications.
    fn protection_ns(&self) -> Namespace {
        match self.idmap.source() {
            crate::config::SiteName::Primary => PROTECTION,
            crate::config::SiteName::Recovery => PROTECTION_AT_PRIMARY,
        }
    }

    /// A protection record (of this applier's direction).
    pub async fn protection(
        &self,
        service: &str,
        resource_type: &str,
        primary_id: &str,
    ) -> Result<Option<ProtectionRecord>, StateError> {
        let k = protection_key(service, resource_type, primary_id)?;
        let ns = self.protection_ns();
        match self.store.get(ns, &k).await? {
            Some(v) => Ok(Some(frame::open_json(ns, &k, &v.value)?)),
            None => Ok(None),
        }
    }

    /// After a possible earlier send: the single recovery resource of the same name and
    /// project that no primary resource maps to.
    async fn find_copy(
        &self,
        t: &Target,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<String>, ApplyError> {
        let (Some(w), Some(idt)) = (t.wrapper, t.id_type) else {
            return Ok(None);
        };
        let Some(obj) = body.and_then(|b| b.get(w)) else {
            return Ok(None);
        };
        let Some(name) = obj.get("name").and_then(Value::as_str) else {
            return Ok(None);
        };
        let mut q = format!("{path}?name={}", percent_encode(name));
        if let Some(p) = obj.get("project_id").and_then(Value::as_str) {
            q.push_str(&format!("&project_id={}", percent_encode(p)));
        }
        let Some(list) = self.get_ok(&self.recovery, t.service, &q).await? else {
            return Ok(None);
        };
        let items = list
            .as_object()
            .and_then(|o| o.values().find_map(Value::as_array))
            .into_iter()
            .flatten();
        self.single_unmapped(idt, items.filter_map(|i| i.get("id")?.as_str()))
            .await
    }

    /// The one of `candidates` (target-site IDs of type `t`) that no source resource maps
    /// to, if exactly one is.
    async fn single_unmapped<'a>(
        &self,
        t: IdType,
        candidates: impl Iterator<Item = &'a str>,
    ) -> Result<Option<String>, ApplyError> {
        let mut unmapped = Vec::new();
        for id in candidates {
            let source = self
                .idmap
                .source_id(t.service.as_str(), t.resource.as_str(), id)
                .await?;
            if source.is_none() {
                unmapped.push(id.to_string());
            }
        }
        Ok(if unmapped.len() == 1 {
            unmapped.pop()
        } else {
            None
        })
    }

    /// A create answered 409: the resource exists already (same ID, or same unique name);
    /// returns the existing recovery ID to adopt, if it can be found.
    async fn adopt_conflict(
        &self,
        t: &Target,
        path: &str,
        body: Option<&Value>,
        answer: &Answer,
    ) -> Result<Option<String>, ApplyError> {
        let obj = t.wrapper.and_then(|w| body.and_then(|b| b.get(w))).or(body);
        let name = obj
            .and_then(|o| o.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let svc = t.service;
        Ok(match t.kind {
            Kind::Flavor | Kind::Image => {
                let id = obj
                    .and_then(|o| o.get("id"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let p = format!("{path}/{id}");
                self.get_ok(&self.recovery, svc, &p)
                    .await?
                    .map(|_| id.to_string())
            }
            Kind::Keypair => Some(name.to_string()),
            Kind::Project | Kind::User | Kind::Group => {
                let domain = obj
                    .and_then(|o| o.get("domain_id"))
                    .and_then(Value::as_str)
                    .unwrap_or("default");
                self.find_by_name(svc, path, name, Some(domain)).await?
            }
            Kind::VolumeType => self.find_by_name(svc, path, name, None).await?,
            Kind::SecurityGroupRule => answer
                .message()
                .split("Rule id is ")
                .nth(1)
                .map(|s| s.trim_end_matches('.').trim().to_string()),
            _ => None,
        })
    }

    async fn find_by_name(
        &self,
        svc: Service,
        path: &str,
        name: &str,
        domain: Option<&str>,
    ) -> Result<Option<String>, ApplyError> {
        let mut q = format!("{path}?name={}", percent_encode(name));
        if let Some(d) = domain {
            q.push_str(&format!("&domain_id={}", percent_encode(d)));
        }
        let Some(list) = self.get_ok(&self.recovery, svc, &q).await? else {
            return Ok(None);
        };
        Ok(list
            .as_object()
            .and_then(|o| o.values().find_map(Value::as_array))
            .into_iter()
            .flatten()
            .find(|i| i.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|i| i.get("id").and_then(Value::as_str))
            .map(str::to_string))
    }

    /// A dependency's create (`POST path` with `body`, in the primary's IDs) with its
    /// references translated as the create's own would be, mirroring what they name first;
    /// with the create's target.
    async fn translate_create(
        &self,
        svc: Service,
        path: &str,
        body: Value,
        depth: usize,
    ) -> Result<(Target, String, Value), ApplyError> {
        let target = mirror_target(svc, "POST", path, Some(&body))
            .ok_or_else(|| ApplyError::Permanent("internal: dependency not recognised".into()))?;
        let (path, body) = self
            .translate_request(&target, path, Some(body), depth)
            .await?;
        Ok((target, path, body.unwrap_or_default()))
    }

    /// Reads a resource from the primary and creates it at the recovery site (or adopts an
    /// existing copy), recording the mapping. Not journaled: the dependent record carries it.
    async fn mirror_dependency(
        &self,
        t: IdType,
        id: &str,
        depth: usize,
    ) -> Result<String, ApplyError> {
        if depth > MAX_DEPTH {
            return Err(ApplyError::Permanent("dependency chain too deep".into()));
        }
        let gone = || ApplyError::SourceGone("it does not exist at the primary".into());
        let p = &self.primary;
        let (svc, create_path, body, pointer) = match t.resource {
            ResourceType::Role => {
                let role = self
                    .get_ok(p, Service::Identity, &format!("/v3/roles/{id}"))
                    .await?
                    .ok_or_else(gone)?;
                let name = role
                    .pointer("/role/name")
                    .and_then(Value::as_str)
                    .ok_or_else(gone)?;
                let found = self
                    .find_by_name(Service::Identity, "/v3/roles", name, None)
                    .await?;
                let rid = match found {
                    Some(r) => r,
                    None => {
                        self.create(
                            Service::Identity,
                            "/v3/roles",
                            &json!({"role": {"name": name}}),
                            "/role/id",
                        )
                        .await?
                    }
                };
                self.map(t, id, &rid).await?;
                return Ok(rid);
            }
            ResourceType::Domain => {
                // Found by name (unique across domains), else created.
                let v = self
                    .get_ok(p, Service::Identity, &format!("/v3/domains/{id}"))
                    .await?
                    .ok_or_else(gone)?;
                let o = v.get("domain").cloned().unwrap_or_default();
                let name = o.get("name").and_then(Value::as_str).ok_or_else(gone)?;
                let path = "/v3/domains";
                if let Some(rid) = self
                    .find_by_name(Service::Identity, path, name, None)
                    .await?
                {
                    self.map(t, id, &rid).await?;
                    return Ok(rid);
                }
                (
                    Service::Identity,
                    path.to_string(),
                    json!({ "domain": pick(&o, &["name", "description", "enabled"]) }),
                    "/domain/id",
                )
            }
            ResourceType::Project | ResourceType::User | ResourceType::Group => {
                let coll = format!("{}s", t.resource.as_str());
                let v = self
                    .get_ok(p, Service::Identity, &format!("/v3/{coll}/{id}"))
                    .await?
                    .ok_or_else(gone)?;
                let o = v.get(t.resource.as_str()).cloned().unwrap_or_default();
                let name = o.get("name").and_then(Value::as_str).ok_or_else(gone)?;
                // Names are unique within a domain: the recovery site's copy of the domain.
                let primary_domain = o
                    .get("domain_id")
                    .and_then(Value::as_str)
                    .unwrap_or("default");
                let domain = self
                    .translate(DOMAIN, primary_domain, Need::Mirrored, depth)
                    .await?
                    .unwrap_or_else(|| primary_domain.to_string());
                let path = format!("/v3/{coll}");
                if let Some(rid) = self
                    .find_by_name(Service::Identity, &path, name, Some(&domain))
                    .await?
                {
                    self.map(t, id, &rid).await?;
                    return Ok(rid);
                }
                if t.resource == ResourceType::User {
                    return Err(ApplyError::Permanent(format!(
                        "user {name} has no copy at the recovery site and its password is unknown to the gateway"
                    )));
                }
                let mut keys = vec!["name", "description", "enabled", "tags"];
                // A project under another project keeps its place (a top-level project's
                // parent is its domain).
                if o.get("parent_id")
                    .is_some_and(|p| Some(p) != o.get("domain_id"))
                {
                    keys.push("parent_id");
                }
                // The primary's IDs, translated below with the create's own references.
                let mut body = pick(&o, &keys);
                body.insert("domain_id".into(), json!(primary_domain));
                let body = json!({ t.resource.as_str(): body });
                let (_, path, body) = self
                    .translate_create(Service::Identity, &path, body, depth)
                    .await?;
                (
                    Service::Identity,
                    path,
                    body,
                    if t.resource == ResourceType::Project {
                        "/project/id"
                    } else {
                        "/group/id"
                    },
                )
            }
            ResourceType::Flavor => {
                let v = self
                    .get_ok(p, Service::Compute, &format!("/v2.1/flavors/{id}"))
                    .await?
                    .ok_or_else(gone)?;
                if !self.recovery.config.admin {
                    let need = v.get("flavor").and_then(FlavorSize::of).ok_or_else(gone)?;
                    return Ok(self.fit_flavor(id, need).await?.recovery_id);
                }
                if self
                    .get_ok(
                        &self.recovery,
                        Service::Compute,
                        &format!("/v2.1/flavors/{id}"),
                    )
                    .await?
                    .is_some()
                {
                    self.map(t, id, id).await?;
                    return Ok(id.to_string());
                }
                let f = v.get("flavor").cloned().unwrap_or_default();
                let mut body = pick(
                    &f,
                    &[
                        "name",
                        "ram",
                        "vcpus",
                        "disk",
                        "OS-FLV-EXT-DATA:ephemeral",
                        "os-flavor-access:is_public",
                        "rxtx_factor",
                    ],
                );
                body.insert("id".into(), json!(id));
                if let Some(s) = f.get("swap").and_then(Value::as_u64) {
                    body.insert("swap".into(), json!(s));
                }
                let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
                match self
                    .create(
                        Service::Compute,
                        "/v2.1/flavors",
                        &json!({"flavor": body}),
                        "/flavor/id",
                    )
                    .await
                {
                    Ok(_) => {}
                    // A flavor of the same name already exists there (created outside the
                    // gateway, e.g. the cloud's stock flavors): map to it.
                    Err(ApplyError::Permanent(e)) if e.contains(" 409:") => {
                        let rid = self
                            .find_by_name(Service::Compute, "/v2.1/flavors", name, None)
                            .await?
                            .ok_or(ApplyError::Permanent(e))?;
                        self.map(t, id, &rid).await?;
                        return Ok(rid);
                    }
                    Err(e) => return Err(e),
                }
                if let Some(specs) = self
                    .get_ok(
                        p,
                        Service::Compute,
                        &format!("/v2.1/flavors/{id}/os-extra_specs"),
                    )
                    .await?
                {
                    if specs
                        .get("extra_specs")
                        .and_then(Value::as_object)
                        .is_some_and(|o| !o.is_empty())
                    {
                        let a = self
                            .call(
                                &self.recovery,
                                Service::Compute,
                                "POST",
                                &format!("/v2.1/flavors/{id}/os-extra_specs"),
                                Some(&specs),
                                &[],
                            )
                            .await?;
                        if !a.status.is_success() {
                            return Err(a.error(self.site_name(&self.recovery)));
                        }
                    }
                }
                self.map(t, id, id).await?;
                return Ok(id.to_string());
            }
            ResourceType::Image => {
                let v = self
                    .get_ok(p, Service::Image, &format!("/v2/images/{id}"))
                    .await?
                    .ok_or_else(gone)?;
                if self
                    .get_ok(&self.recovery, Service::Image, &format!("/v2/images/{id}"))
                    .await?
                    .is_some()
                {
                    self.map(t, id, id).await?;
                    return Ok(id.to_string());
                }
                let mut o = v.as_object().cloned().unwrap_or_default();
                for k in [
                    "status",
                    "file",
                    "schema",
                    "self",
                    "created_at",
                    "updated_at",
                    "checksum",
                    "size",
                    "virtual_size",
                    "direct_url",
                    "locations",
                    "os_hash_algo",
                    "os_hash_value",
                    "stores",
                    "os_hidden",
                ] {
                    o.remove(k);
                }
                (
                    Service::Image,
                    "/v2/images".to_string(),
                    Value::Object(o),
                    "/id",
                )
            }
            ResourceType::VolumeType => {
                let sp = self.service_project(p).await?;
                let v = self
                    .get_ok(p, Service::BlockStorage, &format!("/v3/{sp}/types/{id}"))
                    .await?
                    .ok_or_else(gone)?;
                let o = v.get("volume_type").cloned().unwrap_or_default();
                let mut body = pick(&o, &["name", "description", "extra_specs"]);
                if let Some(public) = o.get("is_public") {
                    body.insert("os-volume-type-access:is_public".into(), public.clone());
                }
                (
                    Service::BlockStorage,
                    format!("/v3/{sp}/types"),
                    json!({"volume_type": body}),
                    "/volume_type/id",
                )
            }
            ResourceType::Network
            | ResourceType::Subnet
            | ResourceType::SecurityGroup
            | ResourceType::Router => {
                let (coll, w, keys): (&str, &str, &[&str]) = match t.resource {
                    ResourceType::Network => (
                        "networks",
                        "network",
                        &[
                            "name",
                            "description",
                            "admin_state_up",
                            "mtu",
                            "port_security_enabled",
                            "shared",
                            "project_id",
                        ],
                    ),
                    ResourceType::Subnet => (
                        "subnets",
                        "subnet",
                        &[
                            "name",
                            "description",
                            "network_id",
                            "cidr",
                            "ip_version",
                            "gateway_ip",
                            "enable_dhcp",
                            "dns_nameservers",
                            "allocation_pools",
                            "host_routes",
                            "project_id",
                        ],
                    ),
                    ResourceType::Router => (
                        "routers",
                        "router",
                        &["name", "description", "admin_state_up", "project_id"],
                    ),
                    _ => (
                        "security-groups",
                        "security_group",
                        &["name", "description", "project_id"],
                    ),
                };
                let v = self
                    .get_ok(p, Service::Network, &format!("/v2.0/{coll}/{id}"))
                    .await?
                    .ok_or_else(gone)?;
                let o = v.get(w).cloned().unwrap_or_default();
                if o.get("router:external") == Some(&json!(true)) {
                    return Err(ApplyError::Permanent(
                        "it is an external network; map it to the recovery site's external network"
                            .into(),
                    ));
                }
                let body = json!({ w: pick(&o, keys) });
                let path = format!("/v2.0/{coll}");
                let (target, path, body) = self
                    .translate_create(Service::Network, &path, body, depth)
                    .await?;
                if t.resource == ResourceType::SecurityGroup
                    && o.get("name") == Some(&json!("default"))
                {
                    // Neutron makes each project's default group itself.
                    let project = body
                        .pointer("/security_group/project_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let q = format!(
                        "/v2.0/security-groups?name=default&project_id={}",
                        percent_encode(project)
                    );
                    let found = self.get_ok(&self.recovery, Service::Network, &q).await?;
                    if let Some(rid) = found
                        .as_ref()
                        .and_then(|f| f.pointer("/security_groups/0/id"))
                        .and_then(Value::as_str)
                    {
                        self.map(t, id, rid).await?;
                        return Ok(rid.to_string());
                    }
                }
                // A copy made by this resource's own record whose transition to applied a
                // crash rolled back (or that another tier's record has not marked yet) is
                // adopted, not duplicated: the single unmapped copy of that name there.
                if let Some(rid) = self.find_copy(&target, &path, Some(&body)).await? {
                    self.map(t, id, &rid).await?;
                    return Ok(rid);
                }
                let rid = self
                    .create(
                        Service::Network,
                        &path,
                        &body,
                        target.id_pointer.unwrap_or("/id"),
                    )
                    .await?;
                self.map(t, id, &rid).await?;
                return Ok(rid);
            }
            ResourceType::Port => return self.mirror_port(t, id, depth).await,
            _ => {
                return Err(ApplyError::Permanent(format!(
                    "a {} cannot be mirrored as a dependency",
                    t.resource
                )))
            }
        };
        let target = mirror_target(svc, "POST", &create_path, Some(&body));
        let (path, body) = match &target {
            Some(tg) => {
                self.translate_request(tg, &create_path, Some(body), depth)
                    .await?
            }
            None => (create_path, Some(body)),
        };
        let body = body.unwrap_or_default();
        let rid = match self.create(svc, &path, &body, pointer).await {
            Err(ApplyError::Permanent(e)) if e.contains(" 409:") => {
                let name = body
                    .as_object()
                    .and_then(|o| o.values().find_map(|v| v.get("name")))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                self.find_by_name(svc, &path, name, None)
                    .await?
                    .ok_or(ApplyError::Permanent(e))?
            }
            other => other?,
        };
        self.map(t, id, &rid).await?;
        Ok(rid)
    }

    /// A port named by a router interface (the one reference to a port that a mirrored
    /// request carries), made at the recovery site so that the interface can be added there:
    /// on the mapped network and subnets, with the same fixed IPs and security groups, and
    /// no device. Once on a router it is the router's, not a workload: a failover finds it
    /// mapped and does not restore it from its protection record. When its addresses are
    /// taken there by a copy that no primary port maps to (made before a crash), that copy
    /// is adopted.
    async fn mirror_port(&self, t: IdType, id: &str, depth: usize) -> Result<String, ApplyError> {
        let found = self
            .get_ok(
                &self.primary,
                Service::Network,
                &format!("/v2.0/ports/{id}"),
            )
            .await?;
        let o = found
            .as_ref()
            .and_then(|v| v.get("port"))
            .ok_or_else(|| ApplyError::SourceGone("it does not exist at the primary".into()))?;
        let mut port = pick(
            o,
            &[
                "name",
                "description",
                "admin_state_up",
                "network_id",
                "security_groups",
                "project_id",
            ],
        );
        let fixed: Vec<Value> = o
            .get("fixed_ips")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|f| Value::Object(pick(f, &["subnet_id", "ip_address"])))
            .collect();
        if !fixed.is_empty() {
            port.insert("fixed_ips".into(), Value::Array(fixed));
        }
        let (_, path, body) = self
            .translate_create(
                Service::Network,
                "/v2.0/ports",
                json!({ "port": port }),
                depth,
            )
            .await?;
        let rid = match self
            .create(Service::Network, &path, &body, "/port/id")
            .await
        {
            Err(ApplyError::Permanent(e)) if e.contains(" 409:") => self
                .find_port_copy(t, &body)
                .await?
                .ok_or(ApplyError::Permanent(e))?,
            other => other?,
        };
        self.map(t, id, &rid).await?;
        Ok(rid)
    }

    /// The single port at the recovery site on `body`'s network holding exactly its fixed
    /// IPs that no primary port maps to.
    async fn find_port_copy(&self, t: IdType, body: &Value) -> Result<Option<String>, ApplyError> {
        let addresses = |p: &Value| -> Vec<String> {
            let mut a: Vec<String> = p
                .get("fixed_ips")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|f| f.get("ip_address").and_then(Value::as_str))
                .map(str::to_string)
                .collect();
            a.sort();
            a
        };
        let want = addresses(&body["port"]);
        let Some(network) = body.pointer("/port/network_id").and_then(Value::as_str) else {
            return Ok(None);
        };
        if want.is_empty() {
            return Ok(None);
        }
        let q = format!("/v2.0/ports?network_id={}", percent_encode(network));
        let list = self
            .get_ok(&self.recovery, Service::Network, &q)
            .await?
            .unwrap_or_default();
        let same = list["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| addresses(p) == want);
        self.single_unmapped(t, same.filter_map(|p| p.get("id")?.as_str()))
            .await
    }

    /// A router interface record by port whose port the target site never got and the
    /// source site no longer has: the interface was removed since (taking its port with it)
    /// before this record's turn came (Bronze, Silver). Adding it would fail on the missing
    /// port and removing it has nothing to remove; either way the target site already
    /// matches the source, so the record is applied as nothing, and the port's protection
    /// record is dropped.
    async fn interface_port_gone(
        &self,
        t: &Target,
        req: &MirrorRequest,
    ) -> Result<bool, ApplyError> {
        let Some(port) = req
            .body
            .as_ref()
            .and_then(|b| b.get("port_id"))
            .and_then(Value::as_str)
        else {
            return Ok(false);
        };
        let (svc, rt) = (Service::Network.as_str(), ResourceType::Port.as_str());
        if self.idmap.target_id(svc, rt, port).await?.is_some() {
            return Ok(false);
        }
        let gone = t.action == MirrorAction::Delete
            || self
                .get_ok(
                    &self.primary,
                    Service::Network,
                    &format!("/v2.0/ports/{port}"),
                )
                .await?
                .is_none();
        if gone {
            // Nor may a failover restore it.
            let k = protection_key(svc, rt, port)?;
            self.store.delete(self.protection_ns(), &k).await?;
            tracing::info!(
                port,
                "router interface record applied as nothing: its port is gone from the source site"
            );
        }
        Ok(gone)
    }

    /// Whether the router of `path` (`/v2.0/routers/{id}/add_router_interface`, recovery
    /// IDs) has the interface `body` names (by `port_id` or `subnet_id`).
    async fn has_interface(&self, path: &str, body: Option<&Value>) -> Result<bool, ApplyError> {
        let (segs, _) = split_path(path);
        let (Some(router), Some(body)) = (segs.get(2), body) else {
            return Ok(false);
        };
        let q = format!("/v2.0/ports?device_id={}", percent_encode(router));
        let list = self
            .get_ok(&self.recovery, Service::Network, &q)
            .await?
            .unwrap_or_default();
        let (port, subnet) = (body.get("port_id"), body.get("subnet_id"));
        Ok(list["ports"].as_array().into_iter().flatten().any(|p| {
            p.get("device_owner").and_then(Value::as_str) == Some("network:router_interface")
                && (port.is_some_and(|id| p.get("id") == Some(id))
                    || subnet.is_some_and(|id| {
                        p["fixed_ips"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|f| f.get("subnet_id") == Some(id))
                    }))
        }))
    }

    /// A removed router interface took its port with it, at both sites: a port that was
    /// mirrored for it (attached by port, whether removed by port or by subnet) is no longer
    /// mapped, and its protection record is dropped so that no failover restores it.
    /// `answer` is the target site's `remove_router_interface` answer.
    async fn forget_interface_port(&self, answer: &Value) -> Result<(), ApplyError> {
        let Some(port) = answer.get("port_id").and_then(Value::as_str) else {
            return Ok(());
        };
        let (svc, rt) = (Service::Network.as_str(), ResourceType::Port.as_str());
        let Some(source) = self.idmap.source_id(svc, rt, port).await? else {
            return Ok(());
        };
        self.idmap.remove(svc, rt, &source).await?;
        let k = protection_key(svc, rt, &source)?;
        self.store.delete(self.protection_ns(), &k).await?;
        Ok(())
    }

    /// The recorded fit of a primary flavor (recovery site without admin rights).
    pub(crate) async fn flavor_fit(
        &self,
        primary_id: &str,
    ) -> Result<Option<FlavorFit>, ApplyError> {
        let k = primary_id.as_bytes();
        Ok(match self.store.get(FLAVOR_FITS, k).await? {
            Some(v) => Some(frame::open_json(FLAVOR_FITS, k, &v.value)?),
            None => None,
        })
    }

    /// Fits a primary flavor to the smallest recovery flavor that holds `need` and records
    /// the fit; an existing fit is kept (the recovery flavor a server was protected with
    /// does not change under it).
    async fn fit_flavor(
        &self,
        primary_id: &str,
        need: FlavorSize,
    ) -> Result<FlavorFit, ApplyError> {
        if let Some(fit) = self.flavor_fit(primary_id).await? {
            return Ok(fit);
        }
        let list = self
            .get_ok(&self.recovery, Service::Compute, "/v2.1/flavors/detail")
            .await?
            .unwrap_or_default();
        let flavors = list
            .get("flavors")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let (chosen, size) = smallest_fit(need, &flavors)
            .ok_or_else(|| ApplyError::Permanent(no_fit_reason(need, &flavors)))?;
        let fit = FlavorFit {
            primary_id: primary_id.to_string(),
            primary: need,
            recovery_id: chosen["id"].as_str().unwrap_or_default().to_string(),
            recovery_name: chosen["name"].as_str().unwrap_or_default().to_string(),
            recovery: size,
        };
        let k = primary_id.as_bytes();
        let v = frame::seal_json(FLAVOR_FITS, k, &fit)?;
        self.store.put(FLAVOR_FITS, k, &v).await?;
        tracing::info!(
            flavor = primary_id,
            recovery_flavor = %fit.recovery_name,
            "flavor fitted to an existing recovery flavor (no admin rights there)"
        );
        Ok(fit)
    }

    /// A flavor record for a recovery site without admin rights: a create is fitted, a
    /// delete drops the fit (the recovery flavor stays), anything else is reported failed.
    async fn apply_flavor_without_admin(
        &self,
        rec: &JournalRecord,
        t: &Target,
    ) -> Result<Option<String>, ApplyError> {
        // Sub-resource records (`/v2.1/flavors/{id}/os-extra_specs`) name it in the path.
        let (segs, _) = split_path(&rec.request.path);
        let pid = rec
            .primary_id
            .as_deref()
            .or_else(|| {
                segs.get(2)
                    .copied()
                    .filter(|_| segs.get(1) == Some(&"flavors"))
            })
            .ok_or_else(|| ApplyError::Permanent("a flavor record needs the flavor id".into()))?;
        match (t.kind, t.action) {
            (Kind::Flavor, MirrorAction::Create) => {
                let need = rec
                    .request
                    .body
                    .as_ref()
                    .and_then(|b| b.get("flavor"))
                    .and_then(FlavorSize::of)
                    .ok_or_else(|| {
                        ApplyError::Permanent("the flavor create names no vCPUs or RAM".into())
                    })?;
                Ok(Some(self.fit_flavor(pid, need).await?.recovery_id))
            }
            (Kind::Flavor, MirrorAction::Delete) => {
                self.store.delete(FLAVOR_FITS, pid.as_bytes()).await?;
                Ok(None)
            }
            (kind, _) => {
                let what = match kind {
                    Kind::FlavorExtraSpec => "extra specs",
                    Kind::FlavorAccess => "access list",
                    _ => "description",
                };
                let onto = match self.flavor_fit(pid).await? {
                    Some(f) => format!(
                        "it is fitted to the recovery flavor {} ({})",
                        f.recovery_name, f.recovery_id
                    ),
                    None => "it is not fitted to a recovery flavor yet".to_string(),
                };
                Err(ApplyError::Permanent(format!(
                    "not mirrored: the gateway has no admin rights at the recovery site, so flavor {pid}'s {what} cannot change there; {onto}"
                )))
            }
        }
    }

    async fn create(
        &self,
        svc: Service,
        path: &str,
        body: &Value,
        pointer: &str,
    ) -> Result<String, ApplyError> {
        let a = self
            .call(&self.recovery, svc, "POST", path, Some(body), &[])
            .await?;
        if !a.status.is_success() {
            return Err(a.error(self.site_name(&self.recovery)));
        }
        a.json
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ApplyError::Permanent("the target site's answer carries no id".into()))
    }

    /// Undoes a primary change (Gold `reject`) with the gateway's service token there.
    pub async fn compensate(
        &self,
        service: Service,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(), ApplyError> {
        let a = self
            .call(&self.primary, service, method, path, body, &[])
            .await?;
        if a.status.is_success() || a.status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(a.error("primary"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_native_error_messages() {
        let cases = [
            (
                json!({"NeutronError": {"type": "X", "message": "bad net", "detail": ""}}),
                Some("bad net"),
            ),
            (
                json!({"badRequest": {"code": 400, "message": "bad flavor"}}),
                Some("bad flavor"),
            ),
            (
                json!({"error": {"code": 409, "title": "Conflict", "message": "dup"}}),
                Some("dup"),
            ),
            (json!({"message": "glance says"}), Some("glance says")),
            (json!([1]), None),
        ];
        for (v, want) in cases {
            assert_eq!(site_message(&v).as_deref(), want);
        }
    }

    #[test]
    fn encodes_names_for_queries() {
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }
}
