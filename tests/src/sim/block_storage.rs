//! Simulated Cinder v3: version documents and microversions, volume types (extra specs),
//! volumes (metadata, actions), snapshots, limits, availability zones.
//!
//! A new volume is answered with status `creating` (as Cinder does) and reads as `available`
//! from then on; there is no backend.

use serde_json::{json, Value};

use super::http::{
    body_object, cinder_error, find_idx, id_of, iso_cinder_now, matches_filters, paginate, str_of,
    uuid_id, Reply, SimRequest,
};
use super::identity::{require_auth, Auth};
use super::{SiteCtx, World};

/// Lowest and highest supported microversion.
pub const MIN_VERSION: (u32, u32) = (3, 0);
pub const MAX_VERSION: (u32, u32) = (3, 71);

/// Cinder's state.
#[derive(Debug, Default)]
pub struct BlockStorage {
    types: Vec<Value>,
    volumes: Vec<Value>,
    snapshots: Vec<Value>,
}

impl BlockStorage {
    /// Bootstrap: the `__DEFAULT__` volume type.
    pub fn bootstrap() -> BlockStorage {
        BlockStorage {
            types: vec![json!({
                "id": uuid_id(), "name": "__DEFAULT__", "is_public": true, "extra_specs": {},
                "description": "Default Volume Type", "qos_specs_id": null,
                "os-volume-type-access:is_public": true
            })],
            ..BlockStorage::default()
        }
    }

    /// Whether a volume id exists.
    pub fn volume_exists(&self, id: &str) -> bool {
        find_idx(&self.volumes, id).is_some()
    }
}

type Mv = (u32, u32);

fn negotiate(req: &SimRequest) -> Result<Mv, Reply> {
    let raw = req.header("openstack-api-version").and_then(|h| {
        h.split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("volume ").map(str::trim))
    });
    let Some(raw) = raw else {
        return Ok(MIN_VERSION);
    };
    if raw.eq_ignore_ascii_case("latest") {
        return Ok(MAX_VERSION);
    }
    let v = raw
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    match v {
        Some(v) if v >= MIN_VERSION && v <= MAX_VERSION => Ok(v),
        Some(_) => Err(cinder_error(
            406,
            format!(
                "Version {raw} is not supported by the API. Minimum is 3.0 and maximum is 3.71."
            ),
        )),
        None => Err(cinder_error(
            400,
            format!("Invalid API version request string {raw}."),
        )),
    }
}

fn decorate(reply: Reply, mv: Mv) -> Reply {
    let rid = super::http::request_id();
    reply
        .with_header(
            "openstack-api-version",
            &format!("volume {}.{}", mv.0, mv.1),
        )
        .with_header("vary", "OpenStack-API-Version")
        .with_header("x-openstack-request-id", &rid)
        .with_header("x-compute-request-id", &rid)
}

fn v3_doc(base: &str) -> Value {
    json!({
        "id": "v3.0", "status": "CURRENT", "version": "3.71", "min_version": "3.0",
        "updated": "2023-08-31T00:00:00Z",
        "links": [
            { "rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/" },
            { "rel": "self", "href": format!("{base}/v3/") }
        ],
        "media-types": [{ "base": "application/json", "type": "application/vnd.openstack.volume+json;version=3" }]
    })
}

/// Handles a Cinder request.
pub(crate) fn handle(ctx: &SiteCtx, world: &mut World, req: &SimRequest) -> Reply {
    let base = ctx.base_for(req, &ctx.urls.volume);
    let segs = req.segs();
    match segs.as_slice() {
        [] => return Reply::json(300, json!({ "versions": [v3_doc(&base)] })),
        ["v3"] => return Reply::json(200, json!({ "versions": [v3_doc(&base)] })),
        _ => {}
    }
    let mv = match negotiate(req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(auth) = require_auth(world, req) else {
        return decorate(super::http::auth_required(&ctx.urls.identity), mv);
    };
    let (project, rest): (&str, Vec<&str>) = match segs.as_slice() {
        ["v3", p, rest @ ..] => (p, rest.to_vec()),
        _ => return decorate(cinder_error(404, "The resource could not be found."), mv),
    };
    if Some(project) != auth.project_id.as_deref() && !auth.is_admin() {
        return decorate(
            cinder_error(
                403,
                "Policy doesn't allow this operation to be performed on another project.",
            ),
            mv,
        );
    }
    let c = Call {
        req,
        auth: &auth,
        base: &base,
        project,
        mv,
    };
    decorate(route(&c, world, &rest), mv)
}

struct Call<'a> {
    req: &'a SimRequest,
    auth: &'a Auth,
    base: &'a str,
    project: &'a str,
    /// The negotiated microversion.
    mv: Mv,
}

fn bad(msg: impl Into<String>) -> Reply {
    cinder_error(400, msg)
}

fn forbidden(rule: &str) -> Reply {
    cinder_error(403, format!("Policy doesn't allow {rule} to be performed."))
}

fn route(c: &Call<'_>, w: &mut World, rest: &[&str]) -> Reply {
    let m = c.req.method.as_str();
    let bs = &mut w.volume;
    match (m, rest) {
        ("GET", []) => Reply::json(200, json!({ "versions": [v3_doc(c.base)] })),
        ("GET", ["types"]) => {
            let list: Vec<Value> = bs
                .types
                .iter()
                .filter(|t| matches_filters(t, &c.req.query))
                .cloned()
                .collect();
            Reply::json(200, json!({ "volume_types": list }))
        }
        ("GET", ["types", "default"]) => Reply::json(200, json!({ "volume_type": bs.types[0] })),
        ("GET", ["types", tid]) => match type_idx(bs, tid) {
            Some(i) => Reply::json(200, json!({ "volume_type": bs.types[i] })),
            None => cinder_error(404, format!("Volume type {tid} could not be found.")),
        },
        ("POST", ["types"]) if !c.auth.is_admin() => forbidden("volume_extension:types_manage"),
        ("POST", ["types"]) => {
            let body = match c.req.json().and_then(|b| body_object(&b, "volume_type")) {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            let Some(name) = body.get("name").and_then(Value::as_str) else {
                return bad("Invalid input for field/attribute volume_type. Value: 'name' is a required property");
            };
            if bs.types.iter().any(|t| str_of(t, "name") == Some(name)) {
                return cinder_error(409, format!("Volume Type {name} already exists."));
            }
            let public = body
                .get("os-volume-type-access:is_public")
                .or(body.get("is_public"))
                .cloned()
                .unwrap_or(json!(true));
            let t = json!({
                "id": uuid_id(), "name": name, "is_public": public,
                "extra_specs": body.get("extra_specs").cloned().unwrap_or(json!({})),
                "description": body.get("description").cloned().unwrap_or(Value::Null),
                "os-volume-type-access:is_public": public
            });
            bs.types.push(t.clone());
            Reply::json(200, json!({ "volume_type": t }))
        }
        ("PUT", ["types", tid]) if c.auth.is_admin() => {
            let Some(i) = type_idx(bs, tid) else {
                return cinder_error(404, format!("Volume type {tid} could not be found."));
            };
            let body = match c.req.json().and_then(|b| body_object(&b, "volume_type")) {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            for k in ["name", "description", "is_public"] {
                if let Some(v) = body.get(k) {
                    bs.types[i][k] = v.clone();
                }
            }
            Reply::json(200, json!({ "volume_type": bs.types[i] }))
        }
        ("DELETE", ["types", tid]) if c.auth.is_admin() => {
            let Some(i) = type_idx(bs, tid) else {
                return cinder_error(404, format!("Volume type {tid} could not be found."));
            };
            let tid = id_of(&bs.types[i]);
            if bs
                .volumes
                .iter()
                .any(|v| str_of(v, "volume_type_id") == Some(&tid))
            {
                return bad(format!("Target volume type is still in use. Volume Type {tid} deletion is not allowed with volumes present with the type."));
            }
            bs.types.remove(i);
            Reply::empty(202)
        }
        ("PUT" | "DELETE", ["types", _]) => forbidden("volume_extension:types_manage"),
        (_, ["types", tid, "extra_specs", tail @ ..]) => {
            let Some(i) = type_idx(bs, tid) else {
                return cinder_error(404, format!("Volume type {tid} could not be found."));
            };
            if m != "GET" && !c.auth.is_admin() {
                return forbidden("volume_extension:types_extra_specs:create");
            }
            let specs = &mut bs.types[i]["extra_specs"];
            match (m, tail) {
                ("GET", []) => Reply::json(200, json!({ "extra_specs": specs })),
                ("POST", []) => {
                    let body = match c.req.json().and_then(|b| body_object(&b, "extra_specs")) {
                        Ok(b) => b,
                        Err(e) => return bad(e),
                    };
                    for (k, v) in &body {
                        specs[k.as_str()] = v.clone();
                    }
                    Reply::json(200, json!({ "extra_specs": body }))
                }
                ("GET", [key]) => match specs.get(*key) {
                    Some(v) => Reply::json(200, json!({ *key: v })),
                    None => cinder_error(
                        404,
                        format!("Volume Type {tid} has no extra specs with key {key}."),
                    ),
                },
                ("PUT", [key]) => match c.req.json().map(|b| b.get(*key).cloned()) {
                    Ok(Some(v)) => {
                        specs[*key] = v.clone();
                        Reply::json(200, json!({ *key: v }))
                    }
                    Ok(None) => bad("Request body and URI mismatch"),
                    Err(e) => bad(e),
                },
                ("DELETE", [key]) => match specs.as_object_mut().and_then(|o| o.remove(*key)) {
                    Some(_) => Reply::empty(202),
                    None => cinder_error(
                        404,
                        format!("Volume Type {tid} has no extra specs with key {key}."),
                    ),
                },
                _ => cinder_error(404, "The resource could not be found."),
            }
        }
        ("GET", ["volumes"]) => list(c, &bs.volumes, "volumes", false),
        ("GET", ["volumes", "detail"]) => list(c, &bs.volumes, "volumes", true),
        ("POST", ["volumes"]) => create_volume(c, w),
        (_, ["volumes", vid, tail @ ..]) => volume_sub(c, w, vid, tail),
        ("GET", ["snapshots"]) => list(c, &bs.snapshots, "snapshots", false),
        ("GET", ["snapshots", "detail"]) => list(c, &bs.snapshots, "snapshots", true),
        ("POST", ["snapshots"]) => {
            let body = match c.req.json().and_then(|b| body_object(&b, "snapshot")) {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            let vid = body
                .get("volume_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(vi) = visible_volume(c, bs, vid) else {
                return cinder_error(404, format!("Volume {vid} could not be found."));
            };
            let size = bs.volumes[vi]["size"].clone();
            let s = json!({
                "id": uuid_id(), "created_at": iso_cinder_now(), "updated_at": null,
                "name": body.get("name").cloned().unwrap_or(Value::Null),
                "description": body.get("description").cloned().unwrap_or(Value::Null),
                "volume_id": vid, "status": "available", "size": size,
                "metadata": body.get("metadata").cloned().unwrap_or(json!({})),
                "user_id": c.auth.user_id, "project_id": c.project, "group_snapshot_id": null,
                "consumes_quota": true, "progress": "100%"
            });
            bs.snapshots.push(s.clone());
            let mut shown = s;
            shown["status"] = json!("creating");
            Reply::json(202, json!({ "snapshot": shown }))
        }
        ("GET", ["snapshots", sid]) => match find_idx(&bs.snapshots, sid) {
            Some(i) => Reply::json(200, json!({ "snapshot": bs.snapshots[i] })),
            None => cinder_error(404, format!("Snapshot {sid} could not be found.")),
        },
        ("PUT", ["snapshots", sid]) => {
            let Some(i) = find_idx(&bs.snapshots, sid) else {
                return cinder_error(404, format!("Snapshot {sid} could not be found."));
            };
            let body = match c.req.json().and_then(|b| body_object(&b, "snapshot")) {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            for k in ["name", "description"] {
                if let Some(v) = body.get(k) {
                    bs.snapshots[i][k] = v.clone();
                }
            }
            bs.snapshots[i]["updated_at"] = json!(iso_cinder_now());
            Reply::json(200, json!({ "snapshot": bs.snapshots[i] }))
        }
        ("DELETE", ["snapshots", sid]) => match find_idx(&bs.snapshots, sid) {
            Some(i) => {
                bs.snapshots.remove(i);
                Reply::empty(202)
            }
            None => cinder_error(404, format!("Snapshot {sid} could not be found.")),
        },
        ("GET", ["limits"]) => Reply::json(
            200,
            json!({ "limits": { "rate": [], "absolute": {
                "totalSnapshotsUsed": 0, "maxTotalBackups": 10, "maxTotalVolumeGigabytes": 1000,
                "maxTotalSnapshots": 10, "maxTotalBackupGigabytes": 1000, "totalBackupGigabytesUsed": 0,
                "maxTotalVolumes": 10, "totalVolumesUsed": bs.volumes.len(), "totalBackupsUsed": 0,
                "totalGigabytesUsed": bs.volumes.iter().map(|v| v["size"].as_u64().unwrap_or(0)).sum::<u64>()
            } } }),
        ),
        ("GET", ["os-availability-zone"]) => Reply::json(
            200,
            json!({ "availabilityZoneInfo": [{ "zoneName": "nova", "zoneState": { "available": true } }] }),
        ),
        _ => cinder_error(404, "The resource could not be found."),
    }
}

fn type_idx(bs: &BlockStorage, id_or_name: &str) -> Option<usize> {
    find_idx(&bs.types, id_or_name).or_else(|| {
        bs.types
            .iter()
            .position(|t| str_of(t, "name") == Some(id_or_name))
    })
}

fn visible_volume(c: &Call<'_>, bs: &BlockStorage, vid: &str) -> Option<usize> {
    find_idx(&bs.volumes, vid).filter(|i| {
        c.auth.is_admin()
            || str_of(&bs.volumes[*i], "os-vol-tenant-attr:tenant_id") == Some(c.project)
    })
}

fn links(c: &Call<'_>, kind: &str, id: &str) -> Value {
    json!([
        { "rel": "self", "href": format!("{}/v3/{}/{kind}/{id}", c.base, c.project) },
        { "rel": "bookmark", "href": format!("{}/{}/{kind}/{id}", c.base, c.project) }
    ])
}

/// Which view of a volume a response carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum VolumeView {
    /// Create and update: Cinder's `detail` view builder alone.
    Detail,
    /// Show and list detail: the view plus the extension attributes (`os-vol-*`).
    Show,
}

/// A stored volume (which holds every field) as Cinder shows it at the call's microversion
/// and to the caller's role (cinder/api/v3/views/volumes.py and the `volume_extension:*`
/// attribute policies).
fn volume_view(c: &Call<'_>, v: &Value, view: VolumeView) -> Value {
    let mut v = v.clone();
    let id = id_of(&v);
    v["links"] = links(c, "volumes", &id);
    let admin = c.auth.is_admin();
    let Some(o) = v.as_object_mut() else {
        return v;
    };
    let gated: [(&str, Mv, bool); 8] = [
        ("migration_status", MIN_VERSION, admin),
        ("group_id", (3, 13), true),
        ("provider_id", (3, 21), admin),
        ("shared_targets", (3, 48), true),
        ("service_uuid", (3, 48), true),
        ("cluster_name", (3, 61), admin),
        ("volume_type_id", (3, 63), true),
        ("consumes_quota", (3, 65), true),
    ];
    for (key, since, allowed) in gated {
        if c.mv < since || !allowed {
            o.remove(key);
        }
    }
    let extension_attrs: [(&str, bool); 4] = [
        ("os-vol-tenant-attr:tenant_id", true),
        ("os-vol-host-attr:host", admin),
        ("os-vol-mig-status-attr:migstat", admin),
        ("os-vol-mig-status-attr:name_id", admin),
    ];
    for (key, allowed) in extension_attrs {
        if view == VolumeView::Detail || !allowed {
            o.remove(key);
        }
    }
    v
}

fn list(c: &Call<'_>, items: &[Value], key: &str, detail: bool) -> Reply {
    let all = c.auth.is_admin()
        && c.req
            .query_get("all_tenants")
            .is_some_and(|v| v != "0" && v != "false");
    let mine: Vec<Value> = items
        .iter()
        .filter(|v| all || str_of(v, "os-vol-tenant-attr:tenant_id").or(str_of(v, "project_id")) == Some(c.project))
        .filter(|v| matches_filters(v, &c.req.query))
        .filter(|v| {
            c.req.query_get("metadata").is_none_or(|m| {
                serde_json::from_str::<Value>(&m.replace('\'', "\""))
                    .ok()
                    .and_then(|f| f.as_object().cloned())
                    .is_none_or(|f| f.iter().all(|(k, want)| v["metadata"].get(k) == Some(want)))
            })
        })
        .map(|v| if key == "volumes" { volume_view(c, v, VolumeView::Show) } else { v.clone() })
        .map(|v| if detail { v } else { json!({ "id": v["id"], "links": v.get("links").cloned().unwrap_or(json!([])), "name": v["name"] }) })
        .collect();
    let (page, more) = paginate(mine, &c.req.query, 1000);
    let mut body = json!({ key: page });
    if more {
        if let Some(last) = body[key].as_array().and_then(|a| a.last()).map(id_of) {
            let path = if detail {
                format!("{key}/detail")
            } else {
                key.to_string()
            };
            body[format!("{key}_links")] = json!([{ "rel": "next", "href": format!("{}/v3/{}/{path}?marker={last}", c.base, c.project) }]);
        }
    }
    Reply::json(200, body)
}

fn create_volume(c: &Call<'_>, w: &mut World) -> Reply {
    let body = match c.req.json().and_then(|b| body_object(&b, "volume")) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    let snapshot = body.get("snapshot_id").and_then(Value::as_str);
    let source = body.get("source_volid").and_then(Value::as_str);
    let image = body.get("imageRef").and_then(Value::as_str);
    let mut size = body.get("size").and_then(|s| {
        s.as_u64()
            .or_else(|| s.as_str().and_then(|x| x.parse().ok()))
    });
    if let Some(sid) = snapshot {
        match find_idx(&w.volume.snapshots, sid) {
            Some(i) => size = size.or(w.volume.snapshots[i]["size"].as_u64()),
            None => return cinder_error(404, format!("Snapshot {sid} could not be found.")),
        }
    }
    if let Some(vid) = source {
        match visible_volume(c, &w.volume, vid) {
            Some(i) => size = size.or(w.volume.volumes[i]["size"].as_u64()),
            None => return cinder_error(404, format!("Volume {vid} could not be found.")),
        }
    }
    if let Some(iid) = image {
        match w.image.get(iid) {
            Some(img) if str_of(img, "status") == Some("active") => {}
            Some(_) => return bad(format!("Invalid image identifier or unable to access requested image. Image {iid} is not active.")),
            None => return bad("Invalid image identifier or unable to access requested image."),
        }
    }
    let Some(size) = size.filter(|s| *s >= 1) else {
        return bad("Invalid input for field/attribute size. Value: None. None is not of type 'integer', 'string'");
    };
    let type_ref = body
        .get("volume_type")
        .and_then(Value::as_str)
        .unwrap_or("__DEFAULT__");
    let Some(ti) = type_idx(&w.volume, type_ref) else {
        return cinder_error(
            404,
            format!("Volume type with name {type_ref} could not be found."),
        );
    };
    let vtype = w.volume.types[ti].clone();
    let v = json!({
        "id": uuid_id(), "status": "available", "size": size,
        "availability_zone": body.get("availability_zone").cloned().unwrap_or(json!("nova")),
        "created_at": iso_cinder_now(), "updated_at": null,
        "name": body.get("name").cloned().unwrap_or(Value::Null),
        "description": body.get("description").cloned().unwrap_or(Value::Null),
        "volume_type": vtype["name"], "snapshot_id": snapshot, "source_volid": source,
        "metadata": body.get("metadata").cloned().unwrap_or(json!({})),
        "user_id": c.auth.user_id, "bootable": if image.is_some() { "true" } else { "false" },
        "encrypted": false, "replication_status": null, "consistencygroup_id": null,
        "multiattach": body.get("multiattach").cloned().unwrap_or(json!(false)),
        "attachments": [], "migration_status": null, "group_id": null, "provider_id": null,
        "shared_targets": true, "service_uuid": null, "cluster_name": null,
        "volume_type_id": vtype["id"], "consumes_quota": true,
        "os-vol-tenant-attr:tenant_id": c.project, "os-vol-host-attr:host": null,
        "os-vol-mig-status-attr:migstat": null, "os-vol-mig-status-attr:name_id": null,
        "volume_image_metadata": image.map(|i| json!({ "image_id": i })),
    });
    let mut v = v;
    if image.is_none() {
        if let Some(o) = v.as_object_mut() {
            o.remove("volume_image_metadata");
        }
    }
    w.volume.volumes.push(v.clone());
    let mut shown = volume_view(c, &v, VolumeView::Detail);
    shown["status"] = json!("creating");
    Reply::json(202, json!({ "volume": shown }))
}

fn volume_sub(c: &Call<'_>, w: &mut World, vid: &str, tail: &[&str]) -> Reply {
    let m = c.req.method.as_str();
    let bs = &mut w.volume;
    let Some(i) = visible_volume(c, bs, vid) else {
        return cinder_error(404, format!("Volume {vid} could not be found."));
    };
    match (m, tail) {
        ("GET", []) => Reply::json(
            200,
            json!({ "volume": volume_view(c, &bs.volumes[i], VolumeView::Show) }),
        ),
        ("PUT", []) => {
            let body = match c.req.json().and_then(|b| body_object(&b, "volume")) {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            for k in ["name", "description", "metadata"] {
                if let Some(v) = body.get(k) {
                    bs.volumes[i][k] = v.clone();
                }
            }
            bs.volumes[i]["updated_at"] = json!(iso_cinder_now());
            Reply::json(
                200,
                json!({ "volume": volume_view(c, &bs.volumes[i], VolumeView::Detail) }),
            )
        }
        ("DELETE", []) => {
            if bs
                .snapshots
                .iter()
                .any(|s| str_of(s, "volume_id") == Some(vid))
                && c.req.query_get("cascade") != Some("true")
            {
                return bad("Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.");
            }
            if bs.volumes[i]["status"] == json!("in-use") {
                return bad("Invalid volume: Volume must not be in-use.");
            }
            bs.snapshots.retain(|s| str_of(s, "volume_id") != Some(vid));
            bs.volumes.remove(i);
            Reply::empty(202)
        }
        ("GET", ["metadata"]) => Reply::json(200, json!({ "metadata": bs.volumes[i]["metadata"] })),
        ("POST" | "PUT", ["metadata"]) => {
            let body = match c.req.json().and_then(|b| body_object(&b, "metadata")) {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            let md = &mut bs.volumes[i]["metadata"];
            if m == "PUT" {
                *md = json!({});
            }
            for (k, v) in &body {
                md[k.as_str()] = v.clone();
            }
            Reply::json(200, json!({ "metadata": md }))
        }
        ("GET", ["metadata", key]) => match bs.volumes[i]["metadata"].get(*key) {
            Some(v) => Reply::json(200, json!({ "meta": { *key: v } })),
            None => cinder_error(404, "Metadata item was not found"),
        },
        ("PUT", ["metadata", key]) => {
            let body = match c.req.json().and_then(|b| body_object(&b, "meta")) {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            let Some(v) = body.get(*key) else {
                return bad("Request body and URI mismatch");
            };
            bs.volumes[i]["metadata"][*key] = v.clone();
            Reply::json(200, json!({ "meta": { *key: v } }))
        }
        ("DELETE", ["metadata", key]) => match bs.volumes[i]["metadata"]
            .as_object_mut()
            .and_then(|o| o.remove(*key))
        {
            Some(_) => Reply::empty(200),
            None => cinder_error(404, "Metadata item was not found"),
        },
        ("POST", ["action"]) => {
            let body = match c.req.json() {
                Ok(Value::Object(b)) => b,
                Ok(_) => return bad("Malformed request body"),
                Err(e) => return bad(e),
            };
            let Some((action, args)) = body.iter().next() else {
                return bad("Malformed request body");
            };
            let vol = &mut bs.volumes[i];
            match action.as_str() {
                "os-extend" => {
                    let new = args["new_size"]
                        .as_u64()
                        .or_else(|| args["new_size"].as_str().and_then(|s| s.parse().ok()));
                    match new {
                        Some(n) if n > vol["size"].as_u64().unwrap_or(0) => vol["size"] = json!(n),
                        _ => return bad("Invalid input received: New size for extend must be greater than current size."),
                    }
                }
                "os-set_bootable" => {
                    vol["bootable"] = json!(if args["bootable"] == json!(true)
                        || args["bootable"] == json!("true")
                    {
                        "true"
                    } else {
                        "false"
                    })
                }
                "os-reset_status" => {
                    if let Some(s) = args.get("status") {
                        vol["status"] = s.clone();
                    }
                }
                "os-update_readonly_flag"
                | "os-retype"
                | "os-set_image_metadata"
                | "os-unset_image_metadata"
                | "os-begin_detaching"
                | "os-roll_detaching"
                | "os-reserve"
                | "os-unreserve" => {}
                "os-attach" => vol["status"] = json!("in-use"),
                "os-detach" | "os-force_detach" => vol["status"] = json!("available"),
                "os-volume_upload_image" => {
                    return Reply::json(
                        202,
                        json!({ "os-volume_upload_image": { "id": id_of(vol), "updated_at": null, "status": "uploading", "display_description": null, "size": vol["size"], "volume_type": vol["volume_type"], "image_id": uuid_id(), "container_format": "bare", "disk_format": "raw", "image_name": args["image_name"] } }),
                    );
                }
                other => return bad(format!("There is no such action: {other}")),
            }
            Reply::empty(202)
        }
        _ => cinder_error(404, "The resource could not be found."),
    }
}
