//! Simulated Nova v2.1: version documents and microversions, flavors (extra specs, access),
//! keypairs, servers (metadata, tags, actions), server groups, limits, availability zones.

use serde_json::{json, Map, Value};

use super::http::{
    body_object, find_idx, id_of, iso_z, matches_filters, nova_error, now_secs, paginate, str_of,
    uuid_id, Reply, SimRequest,
};
use super::identity::{require_auth, Auth};
use super::{SiteCtx, World};

/// Lowest and highest supported microversion.
pub const MIN_VERSION: (u32, u32) = (2, 1);
pub const MAX_VERSION: (u32, u32) = (2, 100);

#[derive(Debug, Clone)]
struct Server {
    doc: Value,
    /// Addresses shown once the server leaves BUILD.
    addresses: Value,
    project_id: String,
    created: u64,
}

/// Nova's state.
#[derive(Debug, Default)]
pub struct Compute {
    flavors: Vec<Value>,
    flavor_access: Vec<(String, String)>,
    keypairs: Vec<(String, Value)>,
    servers: Vec<Server>,
    server_groups: Vec<Value>,
    next_keypair_id: u64,
}

impl Compute {
    /// Bootstrap flavors m1.tiny, m1.small, m1.medium (random ids).
    pub fn bootstrap() -> Compute {
        let mut c = Compute::default();
        for (name, ram, vcpus, disk) in [
            ("m1.tiny", 512, 1, 1),
            ("m1.small", 2048, 1, 20),
            ("m1.medium", 4096, 2, 40),
        ] {
            c.flavors
                .push(flavor_doc(&uuid_id(), name, ram, vcpus, disk));
        }
        c
    }

    /// Whether a flavor id exists.
    pub fn flavor_exists(&self, id: &str) -> bool {
        find_idx(&self.flavors, id).is_some()
    }
}

fn flavor_doc(id: &str, name: &str, ram: u64, vcpus: u64, disk: u64) -> Value {
    json!({
        "id": id, "name": name, "ram": ram, "disk": disk, "swap": 0,
        "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": false, "vcpus": vcpus,
        "os-flavor-access:is_public": true, "rxtx_factor": 1.0, "description": null,
        "extra_specs": {}
    })
}

type Mv = (u32, u32);

fn parse_version(s: &str) -> Option<Mv> {
    let (a, b) = s.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The requested microversion (default 2.1), or a 400/406 reply.
fn negotiate(req: &SimRequest) -> Result<Mv, Reply> {
    let raw = req
        .header("openstack-api-version")
        .and_then(|h| {
            h.split(',')
                .map(str::trim)
                .find_map(|p| p.strip_prefix("compute ").map(str::trim))
        })
        .or_else(|| req.header("x-openstack-nova-api-version"));
    let Some(raw) = raw else {
        return Ok(MIN_VERSION);
    };
    if raw.eq_ignore_ascii_case("latest") {
        return Ok(MAX_VERSION);
    }
    let Some(v) = parse_version(raw) else {
        return Err(nova_error(
            400,
            format!("API Version String {raw} is of invalid format. Must be of format MajorNum.MinorNum."),
        ));
    };
    if v < MIN_VERSION || v > MAX_VERSION {
        return Err(nova_error(
            406,
            format!(
                "Version {raw} is not supported by the API. Minimum is {}.{} and maximum is {}.{}.",
                MIN_VERSION.0, MIN_VERSION.1, MAX_VERSION.0, MAX_VERSION.1
            ),
        ));
    }
    Ok(v)
}

fn decorate(reply: Reply, mv: Mv) -> Reply {
    let v = format!("{}.{}", mv.0, mv.1);
    let rid = super::http::request_id();
    reply
        .with_header("openstack-api-version", &format!("compute {v}"))
        .with_header("x-openstack-nova-api-version", &v)
        .with_header(
            "vary",
            "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
        )
        .with_header("x-openstack-request-id", &rid)
        .with_header("x-compute-request-id", &rid)
}

fn version_v21(base: &str) -> Value {
    json!({
        "id": "v2.1", "status": "CURRENT",
        "version": format!("{}.{}", MAX_VERSION.0, MAX_VERSION.1),
        "min_version": format!("{}.{}", MIN_VERSION.0, MIN_VERSION.1),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{ "rel": "self", "href": format!("{base}/v2.1/") }]
    })
}

/// Handles a Nova request.
pub(crate) fn handle(ctx: &SiteCtx, world: &mut World, req: &SimRequest) -> Reply {
    let base = ctx.base_for(req, &ctx.urls.compute);
    let segs = req.segs();
    match segs.as_slice() {
        [] => {
            let v20 = json!({
                "id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
                "updated": "2011-01-21T11:33:21Z",
                "links": [{ "rel": "self", "href": format!("{base}/v2/") }]
            });
            return Reply::json(200, json!({ "versions": [v20, version_v21(&base)] }));
        }
        ["v2.1"] => {
            let mut v = version_v21(&base);
            v["media-types"] = json!([{ "base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1" }]);
            return decorate(Reply::json(200, json!({ "version": v })), MIN_VERSION);
        }
        _ => {}
    }
    let mv = match negotiate(req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(auth) = require_auth(world, req) else {
        return decorate(super::http::auth_required(&ctx.urls.identity), mv);
    };
    let rest: Vec<&str> = match segs.as_slice() {
        ["v2.1", rest @ ..] => rest.to_vec(),
        _ => return decorate(nova_error(404, "The resource could not be found."), mv),
    };
    // Nova accepts an optional project id after the version.
    let rest = match rest.as_slice() {
        [p, tail @ ..] if Some(*p) == auth.project_id.as_deref() => tail.to_vec(),
        _ => rest,
    };
    let c = Call {
        ctx,
        req,
        auth: &auth,
        mv,
        base: &base,
    };
    decorate(route(&c, world, &rest), mv)
}

struct Call<'a> {
    ctx: &'a SiteCtx,
    req: &'a SimRequest,
    auth: &'a Auth,
    mv: Mv,
    base: &'a str,
}

impl Call<'_> {
    fn links(&self, kind: &str, id: &str) -> Value {
        json!([
            { "rel": "self", "href": format!("{}/v2.1/{kind}/{id}", self.base) },
            { "rel": "bookmark", "href": format!("{}/{kind}/{id}", self.base) }
        ])
    }

    fn at_least(&self, minor: u32) -> bool {
        self.mv >= (2, minor)
    }
}

fn bad(msg: impl Into<String>) -> Reply {
    nova_error(400, msg)
}

fn forbidden(rule: &str) -> Reply {
    nova_error(403, format!("Policy doesn't allow {rule} to be performed."))
}

fn route(c: &Call<'_>, w: &mut World, rest: &[&str]) -> Reply {
    let m = c.req.method.as_str();
    match (m, rest) {
        ("GET", ["flavors"]) => list_flavors(c, w, false),
        ("GET", ["flavors", "detail"]) => list_flavors(c, w, true),
        ("GET", ["flavors", fid]) => match find_idx(&w.compute.flavors, fid) {
            Some(i) => Reply::json(
                200,
                json!({ "flavor": flavor_view(c, &w.compute.flavors[i]) }),
            ),
            None => nova_error(404, format!("Flavor {fid} could not be found.")),
        },
        ("POST", ["flavors"]) if !c.auth.is_admin() => {
            forbidden("os_compute_api:os-flavor-manage:create")
        }
        ("POST", ["flavors"]) => create_flavor(c, w),
        ("PUT", ["flavors", fid]) if c.auth.is_admin() => {
            let Some(i) = find_idx(&w.compute.flavors, fid) else {
                return nova_error(404, format!("Flavor {fid} could not be found."));
            };
            let body = match c.req.json().and_then(|b| body_object(&b, "flavor")) {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            if let Some(d) = body.get("description") {
                w.compute.flavors[i]["description"] = d.clone();
            }
            Reply::json(
                200,
                json!({ "flavor": flavor_view(c, &w.compute.flavors[i]) }),
            )
        }
        ("DELETE", ["flavors", fid]) if c.auth.is_admin() => {
            match find_idx(&w.compute.flavors, fid) {
                Some(i) => {
                    w.compute.flavors.remove(i);
                    w.compute.flavor_access.retain(|(f, _)| f != fid);
                    Reply::empty(202)
                }
                None => nova_error(404, format!("Flavor {fid} could not be found.")),
            }
        }
        ("PUT" | "DELETE", ["flavors", _]) => forbidden("os_compute_api:os-flavor-manage:delete"),
        (_, ["flavors", fid, "os-extra_specs", tail @ ..]) => extra_specs(c, w, fid, tail),
        ("GET", ["flavors", fid, "os-flavor-access"]) => flavor_access_list(w, fid),
        ("POST", ["flavors", fid, "action"]) => flavor_action(c, w, fid),
        ("GET", ["os-keypairs"]) => {
            let list: Vec<Value> = w
                .compute
                .keypairs
                .iter()
                .filter(|(u, _)| *u == c.auth.user_id)
                .map(|(_, k)| {
                    let mut k = k.clone();
                    if let Value::Object(o) = &mut k {
                        for key in [
                            "user_id",
                            "id",
                            "created_at",
                            "deleted",
                            "deleted_at",
                            "updated_at",
                        ] {
                            o.remove(key);
                        }
                    }
                    json!({ "keypair": k })
                })
                .collect();
            Reply::json(200, json!({ "keypairs": list }))
        }
        ("GET", ["os-keypairs", name]) => match keypair_idx(c, w, name) {
            Some(i) => Reply::json(200, json!({ "keypair": w.compute.keypairs[i].1 })),
            None => nova_error(
                404,
                format!("Keypair {name} not found for user {}", c.auth.user_id),
            ),
        },
        ("POST", ["os-keypairs"]) => create_keypair(c, w),
        ("DELETE", ["os-keypairs", name]) => match keypair_idx(c, w, name) {
            Some(i) => {
                w.compute.keypairs.remove(i);
                Reply::empty(if c.at_least(2) { 204 } else { 202 })
            }
            None => nova_error(
                404,
                format!("Keypair {name} not found for user {}", c.auth.user_id),
            ),
        },
        ("GET", ["servers"]) => list_servers(c, w, false),
        ("GET", ["servers", "detail"]) => list_servers(c, w, true),
        ("POST", ["servers"]) => create_server(c, w),
        (_, ["servers", sid, tail @ ..]) => {
            let Some(i) = server_idx(c, w, sid) else {
                return nova_error(404, format!("Instance {sid} could not be found."));
            };
            refresh(
                &mut w.compute.servers[i],
                c.ctx.config.server_build_time.as_secs_f64(),
            );
            server_sub(c, w, i, tail)
        }
        ("GET", ["os-server-groups"]) => {
            let list: Vec<Value> = w
                .compute
                .server_groups
                .iter()
                .filter(|g| {
                    c.auth.is_admin() || str_of(g, "project_id") == c.auth.project_id.as_deref()
                })
                .map(|g| server_group_view(c, g))
                .collect();
            Reply::json(200, json!({ "server_groups": list }))
        }
        ("POST", ["os-server-groups"]) => create_server_group(c, w),
        ("GET", ["os-server-groups", gid]) => match find_idx(&w.compute.server_groups, gid) {
            Some(i) => Reply::json(
                200,
                json!({ "server_group": server_group_view(c, &w.compute.server_groups[i]) }),
            ),
            None => nova_error(404, format!("Instance group {gid} could not be found.")),
        },
        ("DELETE", ["os-server-groups", gid]) => match find_idx(&w.compute.server_groups, gid) {
            Some(i) => {
                w.compute.server_groups.remove(i);
                Reply::empty(204)
            }
            None => nova_error(404, format!("Instance group {gid} could not be found.")),
        },
        ("GET", ["limits"]) => limits(c, w),
        ("GET", ["os-availability-zone"]) => Reply::json(
            200,
            json!({ "availabilityZoneInfo": [{ "zoneName": "nova", "zoneState": { "available": true }, "hosts": null }] }),
        ),
        ("GET", ["os-availability-zone", "detail"]) => Reply::json(
            200,
            json!({ "availabilityZoneInfo": [
                { "zoneName": "internal", "zoneState": { "available": true }, "hosts": { "sim-controller": {} } },
                { "zoneName": "nova", "zoneState": { "available": true }, "hosts": { "sim-compute": { "nova-compute": { "available": true, "active": true, "updated_at": iso_z(now_secs()) } } } }
            ] }),
        ),
        ("GET", ["os-quota-sets", pid, ..]) => Reply::json(
            200,
            json!({ "quota_set": {
                "id": pid, "cores": 20, "instances": 10, "key_pairs": 100, "metadata_items": 128,
                "ram": 51200, "server_groups": 10, "server_group_members": 10
            } }),
        ),
        _ => nova_error(404, "The resource could not be found."),
    }
}

fn flavor_view(c: &Call<'_>, f: &Value) -> Value {
    let mut f = f.clone();
    let id = id_of(&f);
    if let Value::Object(o) = &mut f {
        o.insert("links".into(), c.links("flavors", &id));
        if !c.at_least(55) {
            o.remove("description");
        }
        if !c.at_least(61) {
            o.remove("extra_specs");
        }
        if !c.at_least(75) && o.get("swap") == Some(&json!(0)) {
            o.insert("swap".into(), json!(""));
        }
    }
    f
}

fn flavor_visible(c: &Call<'_>, w: &World, f: &Value) -> bool {
    f["os-flavor-access:is_public"] != json!(false)
        || c.auth.is_admin()
        || w.compute
            .flavor_access
            .iter()
            .any(|(fid, p)| *fid == id_of(f) && Some(p.as_str()) == c.auth.project_id.as_deref())
}

fn list_flavors(c: &Call<'_>, w: &World, detail: bool) -> Reply {
    let is_public = c.req.query_get("is_public").map(str::to_ascii_lowercase);
    let items: Vec<Value> = w
        .compute
        .flavors
        .iter()
        .filter(|f| flavor_visible(c, w, f))
        .filter(|f| match is_public.as_deref() {
            Some("none") => true,
            Some("false" | "0") => f["os-flavor-access:is_public"] == json!(false),
            _ => f["os-flavor-access:is_public"] != json!(false),
        })
        .filter(|f| {
            let min = |k: &str| {
                c.req
                    .query_get(k)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            f["ram"].as_u64().unwrap_or(0) >= min("minRam")
                && f["disk"].as_u64().unwrap_or(0) >= min("minDisk")
        })
        .cloned()
        .collect();
    let (page, _) = paginate(items, &c.req.query, 1000);
    let out: Vec<Value> = page
        .iter()
        .map(|f| {
            if detail {
                flavor_view(c, f)
            } else {
                let mut s = json!({ "id": f["id"], "links": c.links("flavors", &id_of(f)), "name": f["name"] });
                if c.at_least(55) {
                    s["description"] = f["description"].clone();
                }
                s
            }
        })
        .collect();
    Reply::json(200, json!({ "flavors": out }))
}

fn create_flavor(c: &Call<'_>, w: &mut World) -> Reply {
    let body = match c.req.json().and_then(|b| body_object(&b, "flavor")) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return bad(
            "Invalid input for field/attribute flavor. Value: 'name' is a required property",
        );
    };
    let num = |k: &str| -> Result<u64, Reply> {
        match body.get(k) {
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| bad(format!("Invalid input for field/attribute {k}."))),
            Some(Value::String(s)) => s
                .parse()
                .map_err(|_| bad(format!("Invalid input for field/attribute {k}."))),
            None | Some(Value::Null) => Err(bad(format!(
                "Invalid input for field/attribute flavor. Value: '{k}' is a required property"
            ))),
            _ => Err(bad(format!("Invalid input for field/attribute {k}."))),
        }
    };
    let (ram, vcpus, disk) = match (num("ram"), num("vcpus"), num("disk")) {
        (Ok(r), Ok(v), Ok(d)) => (r, v, d),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    let fid = match body.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => uuid_id(),
    };
    if w.compute
        .flavors
        .iter()
        .any(|f| str_of(f, "name") == Some(name))
    {
        return nova_error(409, format!("Flavor with name {name} already exists."));
    }
    if w.compute.flavor_exists(&fid) {
        return nova_error(409, format!("Flavor with ID {fid} already exists."));
    }
    let mut f = flavor_doc(&fid, name, ram, vcpus, disk);
    for k in [
        "swap",
        "OS-FLV-EXT-DATA:ephemeral",
        "os-flavor-access:is_public",
        "rxtx_factor",
        "description",
    ] {
        if let Some(v) = body.get(k) {
            if !(k == "swap" && v.as_str() == Some("")) {
                f[k] = v.clone();
            }
        }
    }
    w.compute.flavors.push(f.clone());
    Reply::json(200, json!({ "flavor": flavor_view(c, &f) }))
}

fn extra_specs(c: &Call<'_>, w: &mut World, fid: &str, tail: &[&str]) -> Reply {
    let Some(i) = find_idx(&w.compute.flavors, fid) else {
        return nova_error(404, format!("Flavor {fid} could not be found."));
    };
    let m = c.req.method.as_str();
    if m != "GET" && !c.auth.is_admin() {
        return forbidden("os_compute_api:os-flavor-extra-specs:update");
    }
    let specs = &mut w.compute.flavors[i]["extra_specs"];
    if !specs.is_object() {
        *specs = json!({});
    }
    match (m, tail) {
        ("GET", []) => Reply::json(200, json!({ "extra_specs": specs })),
        ("POST", []) => {
            let body = match c.req.json().and_then(|b| body_object(&b, "extra_specs")) {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            for (k, v) in &body {
                let v = match v {
                    Value::String(_) => v.clone(),
                    other => json!(other.to_string()),
                };
                specs[k.as_str()] = v;
            }
            Reply::json(200, json!({ "extra_specs": body }))
        }
        ("GET", [key]) => match specs.get(*key) {
            Some(v) => Reply::json(200, json!({ *key: v })),
            None => nova_error(
                404,
                format!("Flavor {fid} has no extra specs with key {key}."),
            ),
        },
        ("PUT", [key]) => {
            let body = match c.req.json() {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            let Some(v) = body.get(*key) else {
                return bad("Request body and URI mismatch");
            };
            specs[*key] = v.clone();
            Reply::json(200, json!({ *key: v }))
        }
        ("DELETE", [key]) => match specs.as_object_mut().and_then(|o| o.remove(*key)) {
            Some(_) => Reply::empty(200),
            None => nova_error(
                404,
                format!("Flavor {fid} has no extra specs with key {key}."),
            ),
        },
        _ => nova_error(404, "The resource could not be found."),
    }
}

fn flavor_access_list(w: &World, fid: &str) -> Reply {
    let Some(i) = find_idx(&w.compute.flavors, fid) else {
        return nova_error(404, format!("Flavor {fid} could not be found."));
    };
    if w.compute.flavors[i]["os-flavor-access:is_public"] != json!(false) {
        return nova_error(404, "Access list not available for public flavors.");
    }
    let list: Vec<Value> = w
        .compute
        .flavor_access
        .iter()
        .filter(|(f, _)| f == fid)
        .map(|(f, p)| json!({ "flavor_id": f, "tenant_id": p }))
        .collect();
    Reply::json(200, json!({ "flavor_access": list }))
}

fn flavor_action(c: &Call<'_>, w: &mut World, fid: &str) -> Reply {
    if !c.auth.is_admin() {
        return forbidden("os_compute_api:os-flavor-access:add_tenant_access");
    }
    let Some(i) = find_idx(&w.compute.flavors, fid) else {
        return nova_error(404, format!("Flavor {fid} could not be found."));
    };
    let body = match c.req.json() {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    if w.compute.flavors[i]["os-flavor-access:is_public"] != json!(false) {
        return nova_error(409, "Can not add access to a public flavor.");
    }
    if let Some(t) = body["addTenantAccess"]["tenant"].as_str() {
        let pair = (fid.to_string(), t.to_string());
        if w.compute.flavor_access.contains(&pair) {
            return nova_error(
                409,
                format!(
                    "Flavor access already exists for flavor {fid} and project {t} combination."
                ),
            );
        }
        w.compute.flavor_access.push(pair);
    } else if let Some(t) = body["removeTenantAccess"]["tenant"].as_str() {
        let pair = (fid.to_string(), t.to_string());
        if !w.compute.flavor_access.contains(&pair) {
            return nova_error(
                404,
                format!("Flavor access not found for {fid} / {t} combination."),
            );
        }
        w.compute.flavor_access.retain(|p| *p != pair);
    } else {
        return bad("Invalid flavor action.");
    }
    flavor_access_list(w, fid)
}

fn keypair_idx(c: &Call<'_>, w: &World, name: &str) -> Option<usize> {
    let user = c
        .req
        .query_get("user_id")
        .filter(|_| c.auth.is_admin())
        .unwrap_or(&c.auth.user_id);
    w.compute
        .keypairs
        .iter()
        .position(|(u, k)| u == user && str_of(k, "name") == Some(name))
}

fn fingerprint(public_key: &str) -> String {
    use md5::{Digest, Md5};
    let field = public_key.split_whitespace().nth(1).unwrap_or(public_key);
    let digest = Md5::digest(field.as_bytes());
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn create_keypair(c: &Call<'_>, w: &mut World) -> Reply {
    let body = match c.req.json().and_then(|b| body_object(&b, "keypair")) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    let Some(name) = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return bad(
            "Invalid input for field/attribute keypair. Value: 'name' is a required property",
        );
    };
    let user = body
        .get("user_id")
        .and_then(Value::as_str)
        .filter(|_| c.auth.is_admin())
        .unwrap_or(&c.auth.user_id)
        .to_string();
    if w.compute
        .keypairs
        .iter()
        .any(|(u, k)| *u == user && str_of(k, "name") == Some(name))
    {
        return nova_error(409, format!("Key pair '{name}' already exists."));
    }
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ssh")
        .to_string();
    let (public_key, private_key) = match body.get("public_key").and_then(Value::as_str) {
        Some(pk) => {
            if pk.split_whitespace().count() < 2 {
                return bad("Keypair data is invalid: failed to generate fingerprint");
            }
            (pk.to_string(), None)
        }
        None if c.at_least(92) => {
            return bad("Invalid input for field/attribute keypair. Value: 'public_key' is a required property");
        }
        None => {
            let blob = format!("AAAAB3NzaC1yc2EAAAADAQABAAABAQ{}", super::http::hex_id());
            (
                format!("ssh-rsa {blob} Generated-by-Nova"),
                Some(format!(
                    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA{}\n-----END OPENSSH PRIVATE KEY-----\n",
                    super::http::hex_id()
                )),
            )
        }
    };
    w.compute.next_keypair_id += 1;
    let stored = json!({
        "name": name, "public_key": public_key, "fingerprint": fingerprint(&public_key),
        "type": kind, "user_id": user, "id": w.compute.next_keypair_id,
        "created_at": iso_z(now_secs()).trim_end_matches('Z'), "deleted": false,
        "deleted_at": null, "updated_at": null
    });
    w.compute.keypairs.push((user.clone(), stored));
    let mut out = Map::new();
    if c.at_least(2) {
        out.insert("type".into(), json!(kind));
    }
    out.insert("name".into(), json!(name));
    out.insert("public_key".into(), json!(public_key));
    out.insert("fingerprint".into(), json!(fingerprint(&public_key)));
    out.insert("user_id".into(), json!(user));
    if let Some(pk) = private_key {
        out.insert("private_key".into(), json!(pk));
    }
    Reply::json(
        if c.at_least(2) { 201 } else { 200 },
        json!({ "keypair": out }),
    )
}

fn server_idx(c: &Call<'_>, w: &World, sid: &str) -> Option<usize> {
    w.compute.servers.iter().position(|s| {
        id_of(&s.doc) == sid
            && (c.auth.is_admin() || Some(s.project_id.as_str()) == c.auth.project_id.as_deref())
    })
}

/// Moves a server out of BUILD once its build time has passed.
fn refresh(s: &mut Server, build_time: f64) {
    if s.doc["status"] == json!("BUILD")
        && (now_secs().saturating_sub(s.created) as f64) >= build_time
    {
        s.doc["status"] = json!("ACTIVE");
        s.doc["OS-EXT-STS:vm_state"] = json!("active");
        s.doc["OS-EXT-STS:task_state"] = Value::Null;
        s.doc["OS-EXT-STS:power_state"] = json!(1);
        s.doc["OS-SRV-USG:launched_at"] =
            json!(iso_z(now_secs()).trim_end_matches('Z').to_string() + ".000000");
        s.doc["OS-EXT-AZ:availability_zone"] = json!("nova");
        s.doc["hostId"] = json!(super::http::hex_id());
        s.doc["OS-EXT-SRV-ATTR:host"] = json!("sim-compute");
        s.doc["OS-EXT-SRV-ATTR:hypervisor_hostname"] = json!("sim-compute");
        s.doc["progress"] = json!(100);
        s.doc["addresses"] = s.addresses.clone();
        s.doc["updated"] = json!(iso_z(now_secs()));
    }
}

fn server_view(c: &Call<'_>, s: &Server) -> Value {
    let mut d = s.doc.clone();
    let id = id_of(&d);
    d["links"] = c.links("servers", &id);
    if let Some(img) = d["image"].as_object_mut() {
        let iid = img
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        img.insert(
            "links".into(),
            json!([{ "rel": "bookmark", "href": format!("{}/images/{iid}", c.base) }]),
        );
    }
    if let Value::Object(o) = &mut d {
        if !c.at_least(26) {
            o.remove("tags");
        }
        if !c.at_least(47) {
            let fid = o.get("flavor").and_then(|f| f.get("id")).cloned();
            o.insert(
                "flavor".into(),
                json!({ "id": fid, "links": [{ "rel": "bookmark", "href": format!("{}/flavors/{}", c.base, fid.as_ref().and_then(Value::as_str).unwrap_or_default()) }] }),
            );
        } else if let Some(f) = o.get_mut("flavor").and_then(Value::as_object_mut) {
            f.remove("id");
        }
        if !c.at_least(71) {
            o.remove("server_groups");
        }
        if !c.at_least(96) {
            o.remove("pinned_availability_zone");
        }
        if !c.at_least(100) {
            o.remove("scheduler_hints");
        }
    }
    d
}

fn list_servers(c: &Call<'_>, w: &mut World, detail: bool) -> Reply {
    let build = c.ctx.config.server_build_time.as_secs_f64();
    let all = c.auth.is_admin()
        && c.req
            .query_get("all_tenants")
            .is_some_and(|v| !matches!(v, "0" | "false" | "False"));
    let project_filter = c
        .req
        .query_get("project_id")
        .or(c.req.query_get("tenant_id"));
    let mut out = Vec::new();
    for s in w.compute.servers.iter_mut() {
        refresh(s, build);
    }
    for s in &w.compute.servers {
        if !(all || project_filter.is_some() && c.auth.is_admin())
            && Some(s.project_id.as_str()) != c.auth.project_id.as_deref()
        {
            continue;
        }
        if project_filter.is_some_and(|p| p != s.project_id) {
            continue;
        }
        let q: Vec<(String, String)> = c
            .req
            .query
            .iter()
            .filter(|(k, _)| {
                matches!(
                    k.as_str(),
                    "status" | "id" | "tags" | "tags-any" | "not-tags" | "not-tags-any"
                )
            })
            .cloned()
            .collect();
        if !matches_filters(&s.doc, &q) {
            continue;
        }
        if let Some(n) = c.req.query_get("name") {
            if !str_of(&s.doc, "name").unwrap_or_default().contains(n) {
                continue;
            }
        }
        out.push(if detail {
            server_view(c, s)
        } else {
            json!({ "id": s.doc["id"], "links": c.links("servers", &id_of(&s.doc)), "name": s.doc["name"] })
        });
    }
    let (page, more) = paginate(out, &c.req.query, 1000);
    let mut body = json!({ "servers": page });
    if more {
        if let Some(last) = body["servers"].as_array().and_then(|a| a.last()).map(id_of) {
            let path = if detail { "servers/detail" } else { "servers" };
            body["servers_links"] =
                json!([{ "rel": "next", "href": format!("{}/v2.1/{path}?marker={last}", c.base) }]);
        }
    }
    Reply::json(200, body)
}

fn create_server(c: &Call<'_>, w: &mut World) -> Reply {
    let body = match c.req.json().and_then(|b| body_object(&b, "server")) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    let Some(project) = c.auth.project_id.clone() else {
        return forbidden("os_compute_api:servers:create");
    };
    let Some(name) = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
    else {
        return bad(
            "Invalid input for field/attribute server. Value: 'name' is a required property",
        );
    };
    let Some(flavor_ref) = body.get("flavorRef").and_then(super::http::scalar_text) else {
        return bad(
            "Invalid input for field/attribute server. Value: 'flavorRef' is a required property",
        );
    };
    let flavor_id = flavor_ref
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let Some(fi) = find_idx(&w.compute.flavors, &flavor_id) else {
        return bad(format!("Flavor {flavor_id} could not be found."));
    };
    let flavor = w.compute.flavors[fi].clone();
    let bdms = body
        .get("block_device_mapping_v2")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let boot_from_volume = bdms
        .iter()
        .any(|b| b["boot_index"] == json!(0) || b["boot_index"] == json!("0"));
    let image_ref = body
        .get("imageRef")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(|s| s.rsplit('/').next().unwrap_or_default().to_string());
    match &image_ref {
        Some(iid) => match w.image.get(iid) {
            Some(img) if str_of(img, "status") == Some("active") => {}
            Some(_) => return bad(format!("Image {iid} is not active.")),
            None => return bad(format!("Image {iid} could not be found.")),
        },
        None if !boot_from_volume => return bad("Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid."),
        None => {}
    }
    for b in &bdms {
        if b["source_type"] == json!("volume") {
            let vid = b["uuid"].as_str().unwrap_or_default();
            if !w.volume.volume_exists(vid) {
                return bad(format!(
                    "Block Device Mapping is Invalid: failed to get volume {vid}."
                ));
            }
        }
    }
    if let Some(k) = body.get("key_name").and_then(Value::as_str) {
        if !w
            .compute
            .keypairs
            .iter()
            .any(|(u, kp)| *u == c.auth.user_id && str_of(kp, "name") == Some(k))
        {
            return bad("Invalid key_name provided.");
        }
    }
    let networks = body.get("networks").cloned();
    if networks.is_none() && c.at_least(37) {
        return bad(
            "Invalid input for field/attribute server. Value: 'networks' is a required property",
        );
    }
    let mut requested_nets: Vec<String> = Vec::new();
    let mut requested_ports: Vec<String> = Vec::new();
    if let Some(Value::Array(list)) = &networks {
        for n in list {
            if let Some(port) = n["port"].as_str() {
                if !w.network.port_exists(port) {
                    return nova_error(400, format!("Port id {port} could not be found."));
                }
                requested_ports.push(port.to_string());
            } else if let Some(net) = n["uuid"].as_str() {
                if !w.network.network_exists(net) {
                    return bad(format!("Network {net} could not be found."));
                }
                requested_nets.push(net.to_string());
            } else {
                return bad("Bad networks format: network uuid is not in proper format");
            }
        }
    }
    let mut groups = Vec::new();
    match body.get("security_groups").and_then(Value::as_array) {
        Some(list) => {
            for g in list {
                let gname = g["name"].as_str().unwrap_or_default();
                if !w.network.security_group_exists(gname, &project) {
                    return bad(format!(
                        "Security group {gname} not found for project {project}."
                    ));
                }
                groups.push(json!({ "name": gname }));
            }
        }
        None => groups.push(json!({ "name": "default" })),
    }
    let sid = uuid_id();
    let mut addresses = Map::new();
    let attached = requested_nets
        .iter()
        .map(|net| (net.as_str(), None))
        .chain(requested_ports.iter().map(|p| ("", Some(p.as_str()))));
    for (net, port) in attached {
        if let Some((net_name, addr)) = w.network.attach_server_port(net, port, &project, &sid) {
            if let Some(a) = addresses
                .entry(net_name)
                .or_insert_with(|| json!([]))
                .as_array_mut()
            {
                a.push(addr);
            }
        }
    }
    let now = iso_z(now_secs());
    let disk_config = body
        .get("OS-DCF:diskConfig")
        .cloned()
        .unwrap_or(json!("MANUAL"));
    let image = match &image_ref {
        Some(iid) => json!({ "id": iid, "properties": {} }),
        None => json!(""),
    };
    let doc = json!({
        "accessIPv4": "", "accessIPv6": "", "addresses": {}, "created": now,
        "flavor": {
            "id": flavor["id"], "vcpus": flavor["vcpus"], "ram": flavor["ram"], "disk": flavor["disk"],
            "ephemeral": flavor["OS-FLV-EXT-DATA:ephemeral"], "swap": flavor["swap"],
            "original_name": flavor["name"], "extra_specs": flavor["extra_specs"]
        },
        "hostId": "", "id": sid, "image": image,
        "metadata": body.get("metadata").cloned().unwrap_or(json!({})),
        "name": name, "status": "BUILD", "tenant_id": project, "user_id": c.auth.user_id,
        "updated": now, "OS-DCF:diskConfig": disk_config, "progress": 0,
        "OS-EXT-AZ:availability_zone": "", "config_drive": "",
    });
    let ext = json!({
        "key_name": body.get("key_name").cloned().unwrap_or(Value::Null),
        "OS-SRV-USG:launched_at": null, "OS-SRV-USG:terminated_at": null,
        "OS-EXT-SRV-ATTR:host": null, "OS-EXT-SRV-ATTR:instance_name": "",
        "OS-EXT-SRV-ATTR:hypervisor_hostname": null, "OS-EXT-SRV-ATTR:hostname": name,
        "OS-EXT-SRV-ATTR:kernel_id": "", "OS-EXT-SRV-ATTR:launch_index": 0,
        "OS-EXT-SRV-ATTR:ramdisk_id": "",
        "OS-EXT-SRV-ATTR:reservation_id": format!("r-{}", &super::http::hex_id()[..8]),
        "OS-EXT-SRV-ATTR:root_device_name": null, "OS-EXT-SRV-ATTR:user_data": body.get("user_data").cloned().unwrap_or(Value::Null),
        "OS-EXT-STS:task_state": "scheduling", "OS-EXT-STS:vm_state": "building",
        "OS-EXT-STS:power_state": 0,
        "os-extended-volumes:volumes_attached": bdms.iter().filter(|b| b["source_type"] == json!("volume")).map(|b| json!({ "id": b["uuid"], "delete_on_termination": b["delete_on_termination"].as_bool().unwrap_or(false) })).collect::<Vec<_>>(),
        "locked": false, "host_status": "",
        "description": body.get("description").cloned().unwrap_or(Value::Null),
        "tags": body.get("tags").cloned().unwrap_or(json!([])),
        "trusted_image_certificates": null, "server_groups": [], "locked_reason": null,
        "pinned_availability_zone": body.get("availability_zone").cloned().unwrap_or(Value::Null),
        "scheduler_hints": {},
        "security_groups": groups,
    });
    let mut doc = doc;
    if let (Value::Object(d), Value::Object(e)) = (&mut doc, ext) {
        d.extend(e);
    }
    w.compute.servers.push(Server {
        doc,
        addresses: Value::Object(addresses),
        project_id: project,
        created: now_secs(),
    });
    let admin_pass = body
        .get("adminPass")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| super::http::hex_id()[..12].to_string());
    let location = format!("{}/v2.1/servers/{sid}", c.base);
    Reply::json(
        202,
        json!({ "server": {
            "id": sid, "links": c.links("servers", &sid), "OS-DCF:diskConfig": disk_config,
            "security_groups": groups_of(w, &sid), "adminPass": admin_pass
        } }),
    )
    .with_header("location", &location)
}

fn groups_of(w: &World, sid: &str) -> Value {
    w.compute
        .servers
        .iter()
        .find(|s| id_of(&s.doc) == sid)
        .map(|s| s.doc["security_groups"].clone())
        .unwrap_or(json!([]))
}

fn conflict_state(s: &Server, action: &str) -> Option<Reply> {
    let state = s.doc["OS-EXT-STS:vm_state"].as_str().unwrap_or_default();
    (state == "building").then(|| {
        nova_error(
            409,
            format!(
                "Cannot '{action}' instance {} while it is in vm_state building",
                id_of(&s.doc)
            ),
        )
    })
}

fn server_sub(c: &Call<'_>, w: &mut World, i: usize, tail: &[&str]) -> Reply {
    let m = c.req.method.as_str();
    let sid = id_of(&w.compute.servers[i].doc);
    match (m, tail) {
        ("GET", []) => Reply::json(
            200,
            json!({ "server": server_view(c, &w.compute.servers[i]) }),
        ),
        ("PUT", []) => {
            let body = match c.req.json().and_then(|b| body_object(&b, "server")) {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            for k in [
                "name",
                "description",
                "accessIPv4",
                "accessIPv6",
                "OS-DCF:diskConfig",
            ] {
                if let Some(v) = body.get(k) {
                    w.compute.servers[i].doc[k] = v.clone();
                }
            }
            w.compute.servers[i].doc["updated"] = json!(iso_z(now_secs()));
            Reply::json(
                200,
                json!({ "server": server_view(c, &w.compute.servers[i]) }),
            )
        }
        ("DELETE", []) => {
            w.compute.servers.remove(i);
            w.network.detach_server_ports(&sid);
            Reply::empty(204)
        }
        ("GET", ["metadata"]) => Reply::json(
            200,
            json!({ "metadata": w.compute.servers[i].doc["metadata"] }),
        ),
        ("POST" | "PUT", ["metadata"]) => {
            if let Some(r) = conflict_state(&w.compute.servers[i], "update metadata") {
                return r;
            }
            let body = match c.req.json().and_then(|b| body_object(&b, "metadata")) {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            let md = &mut w.compute.servers[i].doc["metadata"];
            if m == "PUT" {
                *md = json!({});
            }
            for (k, v) in &body {
                md[k.as_str()] = v.clone();
            }
            Reply::json(200, json!({ "metadata": md }))
        }
        ("GET", ["metadata", key]) => match w.compute.servers[i].doc["metadata"].get(*key) {
            Some(v) => Reply::json(200, json!({ "meta": { *key: v } })),
            None => nova_error(404, "Metadata item was not found"),
        },
        ("PUT", ["metadata", key]) => {
            if let Some(r) = conflict_state(&w.compute.servers[i], "update metadata") {
                return r;
            }
            let body = match c.req.json().and_then(|b| body_object(&b, "meta")) {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            let Some(v) = body.get(*key) else {
                return bad("Request body and URI mismatch");
            };
            w.compute.servers[i].doc["metadata"][*key] = v.clone();
            Reply::json(200, json!({ "meta": { *key: v } }))
        }
        ("DELETE", ["metadata", key]) => {
            if let Some(r) = conflict_state(&w.compute.servers[i], "delete metadata") {
                return r;
            }
            match w.compute.servers[i].doc["metadata"]
                .as_object_mut()
                .and_then(|o| o.remove(*key))
            {
                Some(_) => Reply::empty(204),
                None => nova_error(404, "Metadata item was not found"),
            }
        }
        ("GET", ["tags"]) => Reply::json(200, json!({ "tags": w.compute.servers[i].doc["tags"] })),
        ("PUT", ["tags"]) => {
            if let Some(r) = conflict_state(&w.compute.servers[i], "update tags") {
                return r;
            }
            let tags = match c.req.json().map(|b| b["tags"].clone()) {
                Ok(Value::Array(t)) if t.iter().all(Value::is_string) => t,
                Ok(_) => return bad("Invalid input for field/attribute tags."),
                Err(e) => return bad(e),
            };
            w.compute.servers[i].doc["tags"] = Value::Array(tags);
            Reply::json(200, json!({ "tags": w.compute.servers[i].doc["tags"] }))
        }
        ("DELETE", ["tags"]) => {
            if let Some(r) = conflict_state(&w.compute.servers[i], "delete tags") {
                return r;
            }
            w.compute.servers[i].doc["tags"] = json!([]);
            Reply::empty(204)
        }
        ("GET", ["tags", tag]) => {
            if has_tag(&w.compute.servers[i].doc, tag) {
                Reply::empty(204)
            } else {
                nova_error(404, format!("Tag '{tag}' could not be found."))
            }
        }
        ("PUT", ["tags", tag]) => {
            if let Some(r) = conflict_state(&w.compute.servers[i], "update tag") {
                return r;
            }
            if has_tag(&w.compute.servers[i].doc, tag) {
                return Reply::empty(204);
            }
            if let Some(a) = w.compute.servers[i].doc["tags"].as_array_mut() {
                a.push(json!(tag));
            }
            Reply::empty(201).with_header(
                "location",
                &format!("{}/v2.1/servers/{sid}/tags/{tag}", c.base),
            )
        }
        ("DELETE", ["tags", tag]) => {
            if let Some(r) = conflict_state(&w.compute.servers[i], "delete tag") {
                return r;
            }
            if !has_tag(&w.compute.servers[i].doc, tag) {
                return nova_error(404, format!("Tag '{tag}' could not be found."));
            }
            if let Some(a) = w.compute.servers[i].doc["tags"].as_array_mut() {
                a.retain(|t| t.as_str() != Some(*tag));
            }
            Reply::empty(204)
        }
        ("POST", ["action"]) => server_action(c, w, i),
        ("GET", ["os-security-groups"]) => {
            let names: Vec<String> = w.compute.servers[i].doc["security_groups"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|g| g["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let project = w.compute.servers[i].project_id.clone();
            Reply::json(
                200,
                json!({ "security_groups": w.network.security_groups_named(&names, &project) }),
            )
        }
        ("GET", ["os-interface"]) => Reply::json(
            200,
            json!({ "interfaceAttachments": w.network.server_interfaces(&sid) }),
        ),
        ("GET", ["os-volume_attachments"]) => Reply::json(
            200,
            json!({ "volumeAttachments": w.compute.servers[i].doc["os-extended-volumes:volumes_attached"].as_array().cloned().unwrap_or_default().iter().map(|v| json!({ "id": v["id"], "volumeId": v["id"], "serverId": sid, "device": "/dev/vdb" })).collect::<Vec<_>>() }),
        ),
        ("GET", ["os-instance-actions"]) => Reply::json(200, json!({ "instanceActions": [] })),
        _ => nova_error(404, "The resource could not be found."),
    }
}

fn has_tag(v: &Value, tag: &str) -> bool {
    v["tags"]
        .as_array()
        .is_some_and(|a| a.iter().any(|t| t.as_str() == Some(tag)))
}

fn server_action(c: &Call<'_>, w: &mut World, i: usize) -> Reply {
    let body = match c.req.json() {
        Ok(Value::Object(b)) => b,
        Ok(_) => return bad("Malformed request body"),
        Err(e) => return bad(e),
    };
    let Some((action, args)) = body.iter().next().map(|(k, v)| (k.clone(), v.clone())) else {
        return bad("Malformed request body");
    };
    let sid = id_of(&w.compute.servers[i].doc);
    let set = |w: &mut World, status: &str, vm: &str, power: u64| {
        let d = &mut w.compute.servers[i].doc;
        d["status"] = json!(status);
        d["OS-EXT-STS:vm_state"] = json!(vm);
        d["OS-EXT-STS:power_state"] = json!(power);
        d["updated"] = json!(iso_z(now_secs()));
    };
    if let Some(r) = conflict_state(&w.compute.servers[i], &action) {
        return r;
    }
    match action.as_str() {
        "os-stop" => set(w, "SHUTOFF", "stopped", 4),
        "os-start" | "unpause" | "resume" | "unshelve" | "unrescue" | "confirmResize"
        | "revertResize" => set(w, "ACTIVE", "active", 1),
        "reboot" | "rebuild" | "changePassword" | "os-resetState" | "evacuate" | "migrate"
        | "os-migrateLive" => {}
        "pause" => set(w, "PAUSED", "paused", 3),
        "suspend" => set(w, "SUSPENDED", "suspended", 7),
        "shelve" => set(w, "SHELVED_OFFLOADED", "shelved_offloaded", 4),
        "rescue" => {
            set(w, "RESCUE", "rescued", 1);
            return Reply::json(200, json!({ "adminPass": &super::http::hex_id()[..12] }));
        }
        "resize" => {
            let fid = args["flavorRef"].as_str().unwrap_or_default();
            let Some(fi) = find_idx(&w.compute.flavors, fid) else {
                return bad(format!("Flavor {fid} could not be found."));
            };
            let f = w.compute.flavors[fi].clone();
            let d = &mut w.compute.servers[i].doc;
            d["flavor"] = json!({ "id": f["id"], "vcpus": f["vcpus"], "ram": f["ram"], "disk": f["disk"], "ephemeral": f["OS-FLV-EXT-DATA:ephemeral"], "swap": f["swap"], "original_name": f["name"], "extra_specs": f["extra_specs"] });
            set(w, "VERIFY_RESIZE", "resized", 1);
        }
        "lock" => {
            w.compute.servers[i].doc["locked"] = json!(true);
            w.compute.servers[i].doc["locked_reason"] =
                args.get("locked_reason").cloned().unwrap_or(Value::Null);
        }
        "unlock" => {
            w.compute.servers[i].doc["locked"] = json!(false);
            w.compute.servers[i].doc["locked_reason"] = Value::Null;
        }
        "addSecurityGroup" => {
            let name = args["name"].as_str().unwrap_or_default().to_string();
            let project = w.compute.servers[i].project_id.clone();
            if !w.network.security_group_exists(&name, &project) {
                return nova_error(
                    404,
                    format!("Security group {name} not found for project {project}."),
                );
            }
            if let Some(a) = w.compute.servers[i].doc["security_groups"].as_array_mut() {
                a.push(json!({ "name": name }));
            }
        }
        "removeSecurityGroup" => {
            let name = args["name"].as_str().unwrap_or_default();
            if let Some(a) = w.compute.servers[i].doc["security_groups"].as_array_mut() {
                a.retain(|g| g["name"].as_str() != Some(name));
            }
        }
        "os-getConsoleOutput" => {
            return Reply::json(200, json!({ "output": "simulated console\n" }))
        }
        "createImage" => {
            let name = args["name"].as_str().unwrap_or("snapshot").to_string();
            let project = w.compute.servers[i].project_id.clone();
            let meta = args.get("metadata").cloned().unwrap_or(json!({}));
            let image_id = w.image.snapshot(&name, &project, &meta, &sid);
            let location = format!("{}/v2/images/{image_id}", c.ctx.urls.image);
            let reply = if c.at_least(45) {
                Reply::json(202, json!({ "image_id": image_id }))
            } else {
                Reply::empty(202)
            };
            return reply.with_header("location", &location);
        }
        other => return bad(format!("There is no such action: {other}")),
    }
    Reply::empty(202)
}

fn server_group_view(c: &Call<'_>, g: &Value) -> Value {
    let mut g = g.clone();
    if let Value::Object(o) = &mut g {
        if c.at_least(64) {
            o.remove("policies");
            o.remove("metadata");
        } else {
            o.remove("policy");
            o.remove("rules");
        }
        if !c.at_least(13) {
            o.remove("project_id");
            o.remove("user_id");
        }
    }
    g
}

fn create_server_group(c: &Call<'_>, w: &mut World) -> Reply {
    let body = match c.req.json().and_then(|b| body_object(&b, "server_group")) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return bad(
            "Invalid input for field/attribute server_group. Value: 'name' is a required property",
        );
    };
    let policy = body.get("policy").and_then(Value::as_str).or_else(|| {
        body.get("policies")
            .and_then(|p| p.get(0))
            .and_then(Value::as_str)
    });
    let Some(policy) = policy else {
        return bad("Invalid input for field/attribute server_group. Value: 'policy' is a required property");
    };
    if ![
        "affinity",
        "anti-affinity",
        "soft-affinity",
        "soft-anti-affinity",
    ]
    .contains(&policy)
    {
        return bad(format!(
            "Invalid input for field/attribute policy. Value: {policy}."
        ));
    }
    let g = json!({
        "id": uuid_id(), "name": name, "policy": policy, "policies": [policy],
        "rules": body.get("rules").cloned().unwrap_or(json!({})), "members": [], "metadata": {},
        "project_id": c.auth.project(), "user_id": c.auth.user_id
    });
    w.compute.server_groups.push(g.clone());
    Reply::json(200, json!({ "server_group": server_group_view(c, &g) }))
}

fn limits(c: &Call<'_>, w: &World) -> Reply {
    let mine: Vec<&Server> = w
        .compute
        .servers
        .iter()
        .filter(|s| Some(s.project_id.as_str()) == c.auth.project_id.as_deref())
        .collect();
    let cores: u64 = mine
        .iter()
        .map(|s| s.doc["flavor"]["vcpus"].as_u64().unwrap_or(0))
        .sum();
    let ram: u64 = mine
        .iter()
        .map(|s| s.doc["flavor"]["ram"].as_u64().unwrap_or(0))
        .sum();
    Reply::json(
        200,
        json!({ "limits": { "rate": [], "absolute": {
            "maxServerMeta": 128, "maxTotalInstances": 10, "maxPersonality": 5,
            "totalServerGroupsUsed": 0, "maxImageMeta": 128, "maxPersonalitySize": 10240,
            "maxTotalRAMSize": 51200, "maxServerGroups": 10, "maxSecurityGroupRules": 20,
            "maxTotalKeypairs": 100, "totalCoresUsed": cores, "totalRAMUsed": ram,
            "maxSecurityGroups": 10, "totalFloatingIpsUsed": 0, "totalInstancesUsed": mine.len(),
            "maxServerGroupMembers": 10, "maxTotalFloatingIps": 10,
            "totalSecurityGroupsUsed": 0, "maxTotalCores": 20
        } } }),
    )
}
