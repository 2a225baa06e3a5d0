//! Simulated Glance v2: images (create, list with `next` links and filters, show, JSON-patch
//! update, delete, tags) and image data streamed to and from a file (checksum, sha512 computed
//! while streaming), plus the schemas and discovery documents.

use std::path::PathBuf;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{Method, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::http::{
    find_idx, glance_error, hex, id_of, iso_z, matches_filters, now_secs, paginate, percent_encode,
    str_of, uuid_id, Reply, SimBody, SimRequest,
};
use super::identity::{require_auth, Auth};
use super::{SiteCtx, World};

/// Attributes a client may never set.
const READ_ONLY: &[&str] = &[
    "status",
    "size",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "created_at",
    "updated_at",
    "self",
    "file",
    "schema",
    "direct_url",
    "locations",
    "stores",
];

/// Glance's state.
#[derive(Debug, Default)]
pub struct Images {
    images: Vec<Value>,
}

impl Images {
    /// An image by id.
    pub fn get(&self, id: &str) -> Option<&Value> {
        self.images.iter().find(|i| id_of(i) == id)
    }

    /// Creates an active, empty snapshot image (Nova `createImage`); returns its id.
    pub fn snapshot(&mut self, name: &str, owner: &str, meta: &Value, server_id: &str) -> String {
        let mut img = new_image(owner);
        img["name"] = json!(name);
        img["status"] = json!("active");
        img["size"] = json!(0);
        img["virtual_size"] = json!(0);
        img["disk_format"] = json!("raw");
        img["container_format"] = json!("bare");
        img["image_type"] = json!("snapshot");
        img["instance_uuid"] = json!(server_id);
        img["visibility"] = json!("private");
        if let Value::Object(m) = meta {
            for (k, v) in m {
                img[k.as_str()] = v.clone();
            }
        }
        let id = id_of(&img);
        self.images.push(img);
        id
    }
}

fn new_image(owner: &str) -> Value {
    let now = iso_z(now_secs());
    json!({
        "name": null, "disk_format": null, "container_format": null, "visibility": "shared",
        "size": null, "virtual_size": null, "status": "queued", "checksum": null,
        "protected": false, "min_ram": 0, "min_disk": 0, "owner": owner, "os_hidden": false,
        "os_hash_algo": null, "os_hash_value": null, "id": uuid_id(), "created_at": now,
        "updated_at": now, "tags": []
    })
}

fn view(img: &Value) -> Value {
    let mut v = img.clone();
    let id = id_of(img);
    v["self"] = json!(format!("/v2/images/{id}"));
    v["file"] = json!(format!("/v2/images/{id}/file"));
    v["schema"] = json!("/v2/schemas/image");
    v
}

fn visible(img: &Value, auth: &Auth) -> bool {
    auth.is_admin()
        || str_of(img, "owner") == auth.project_id.as_deref()
        || matches!(str_of(img, "visibility"), Some("public" | "community"))
}

/// Whether a request is an image-data transfer (streamed, never buffered).
pub(crate) fn is_data_route(method: &Method, segments: &[String]) -> bool {
    (method == Method::PUT || method == Method::GET)
        && segments.len() == 4
        && segments[0] == "v2"
        && segments[1] == "images"
        && segments[3] == "file"
}

fn versions(base: &str) -> Value {
    let list: Vec<Value> = [("v2.17", "CURRENT"), ("v2.16", "SUPPORTED"), ("v2.15", "SUPPORTED"), ("v2.9", "SUPPORTED"), ("v2.0", "SUPPORTED")]
        .iter()
        .map(|(id, st)| json!({ "id": id, "status": st, "links": [{ "rel": "self", "href": format!("{base}/v2/") }] }))
        .collect();
    json!({ "versions": list })
}

/// Handles a buffered Glance request.
pub(crate) fn handle(ctx: &SiteCtx, world: &mut World, req: &SimRequest) -> Reply {
    let segs = req.segs();
    let m = req.method.as_str();
    if let ("GET", [] | ["versions"] | ["v2"]) = (m, segs.as_slice()) {
        return Reply::json(300, versions(&ctx.urls.image));
    }

    let Some(auth) = require_auth(world, req) else {
        return super::http::auth_required(&ctx.urls.identity);
    };
    let h = &req.headers;
    let imgs = &mut world.image;
    match (m, segs.as_slice()) {
        ("GET", ["v2", "schemas", "image"]) => Reply::json(200, image_schema()),
        ("GET", ["v2", "schemas", "images"]) => Reply::json(
            200,
            json!({ "name": "images", "properties": { "images": { "type": "array", "items": image_schema() }, "schema": { "type": "string" }, "first": { "type": "string" }, "next": { "type": "string" } }, "links": [{ "rel": "first", "href": "{first}" }, { "rel": "next", "href": "{next}" }, { "rel": "describedby", "href": "{schema}" }] }),
        ),
        ("GET", ["v2", "info", "import"]) => Reply::json(
            200,
            json!({ "import-methods": { "description": "Import methods available.", "type": "array", "value": ["glance-direct", "web-download", "copy-image"] } }),
        ),
        ("GET", ["v2", "info", "stores"]) => {
            Reply::json(200, json!({ "stores": [{ "id": "fs", "default": true }] }))
        }
        ("GET", ["v2", "images"]) => list(imgs, &auth, req),
        ("POST", ["v2", "images"]) => {
            let body = match req.json() {
                Ok(Value::Object(b)) => b,
                Ok(_) => return glance_error(h, 400, "Body must be a JSON object."),
                Err(e) => return glance_error(h, 400, e),
            };
            if let Some(k) = body.keys().find(|k| READ_ONLY.contains(&k.as_str())) {
                return glance_error(h, 403, format!("Attribute '{k}' is read-only."));
            }
            let mut img = new_image(&auth.project());
            if let Some(id) = body.get("id").and_then(Value::as_str) {
                if imgs.get(id).is_some() {
                    return glance_error(
                        h,
                        409,
                        format!("Image with identifier {id} already exists!"),
                    );
                }
            }
            if body.get("visibility").and_then(Value::as_str) == Some("public") && !auth.is_admin()
            {
                return glance_error(
                    h,
                    403,
                    "You are not authorized to complete publicize_image action.",
                );
            }
            for (k, v) in &body {
                if k == "owner" && !auth.is_admin() {
                    continue;
                }
                img[k.as_str()] = v.clone();
            }
            if !img["tags"].is_array() {
                img["tags"] = json!([]);
            }
            imgs.images.push(img.clone());
            let id = id_of(&img);
            Reply::json(201, view(&img))
                .with_header("location", &format!("{}/v2/images/{id}", ctx.urls.image))
                .with_header(
                    "openstack-image-import-methods",
                    "glance-direct,web-download,copy-image",
                )
                .with_header("openstack-image-store-ids", "fs")
        }
        (_, ["v2", "images", id, tail @ ..]) => {
            let Some(i) = find_idx(&imgs.images, id).filter(|i| visible(&imgs.images[*i], &auth))
            else {
                return glance_error(h, 404, format!("No image found with ID {id}"));
            };
            let owner_ok =
                auth.is_admin() || str_of(&imgs.images[i], "owner") == auth.project_id.as_deref();
            match (m, tail) {
                ("GET", []) => Reply::json(200, view(&imgs.images[i])),
                (_, _) if m != "GET" && !owner_ok => glance_error(
                    h,
                    403,
                    format!("You are not permitted to modify image {id}."),
                ),
                ("PATCH", []) => patch(imgs, i, req),
                ("DELETE", []) => {
                    if imgs.images[i]["protected"] == json!(true) {
                        return glance_error(
                            h,
                            403,
                            format!("Image {id} is protected and cannot be deleted."),
                        );
                    }
                    imgs.images.remove(i);
                    let _ = std::fs::remove_file(data_path(ctx, id));
                    Reply::empty(204)
                }
                ("PUT", ["tags", tag]) => {
                    let img = &mut imgs.images[i];
                    if !img["tags"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|t| t.as_str() == Some(*tag)))
                    {
                        if let Some(a) = img["tags"].as_array_mut() {
                            a.push(json!(tag));
                        }
                        img["updated_at"] = json!(iso_z(now_secs()));
                    }
                    Reply::empty(204)
                }
                ("DELETE", ["tags", tag]) => {
                    let img = &mut imgs.images[i];
                    let before = img["tags"].as_array().map(Vec::len).unwrap_or(0);
                    if let Some(a) = img["tags"].as_array_mut() {
                        a.retain(|t| t.as_str() != Some(*tag));
                    }
                    if img["tags"].as_array().map(Vec::len).unwrap_or(0) == before {
                        return glance_error(h, 404, format!("Tag {tag} not found"));
                    }
                    Reply::empty(204)
                }
                ("GET", ["members"]) => Reply::json(
                    200,
                    json!({ "members": [], "schema": "/v2/schemas/members" }),
                ),
                ("POST", ["actions", "deactivate"]) => {
                    imgs.images[i]["status"] = json!("deactivated");
                    Reply::empty(204)
                }
                ("POST", ["actions", "reactivate"]) => {
                    imgs.images[i]["status"] = json!("active");
                    Reply::empty(204)
                }
                _ => glance_error(h, 404, "The resource could not be found."),
            }
        }
        _ => glance_error(h, 404, "The resource could not be found."),
    }
}

fn image_schema() -> Value {
    let s = |t: &str| json!({ "type": t });
    json!({
        "name": "image",
        "properties": {
            "id": s("string"), "name": { "type": ["null", "string"], "maxLength": 255 },
            "status": s("string"), "visibility": { "type": "string", "enum": ["community", "public", "private", "shared"] },
            "protected": s("boolean"), "os_hidden": s("boolean"), "checksum": { "type": ["null", "string"] },
            "os_hash_algo": { "type": ["null", "string"] }, "os_hash_value": { "type": ["null", "string"] },
            "owner": { "type": ["null", "string"] }, "size": { "type": ["null", "integer"] },
            "virtual_size": { "type": ["null", "integer"] }, "container_format": { "type": ["null", "string"] },
            "disk_format": { "type": ["null", "string"] }, "created_at": s("string"), "updated_at": s("string"),
            "tags": { "type": "array", "items": s("string") }, "min_ram": s("integer"), "min_disk": s("integer"),
            "self": s("string"), "file": s("string"), "schema": s("string"), "stores": s("string")
        },
        "additionalProperties": { "type": "string" },
        "links": [
            { "rel": "self", "href": "{self}" }, { "rel": "enclosure", "href": "{file}" },
            { "rel": "describedby", "href": "{schema}" }
        ]
    })
}

fn list(imgs: &Images, auth: &Auth, req: &SimRequest) -> Reply {
    let visibility = req.query_get("visibility");
    let mut query: Vec<(String, String)> = Vec::new();
    for (k, v) in &req.query {
        match k.as_str() {
            "tag" => query.push(("tags".into(), v.clone())),
            "id" | "name" | "status" => {
                let v = v.strip_prefix("in:").unwrap_or(v);
                for part in v.split(',') {
                    query.push((k.clone(), part.to_string()));
                }
            }
            "sort" | "sort_key" | "sort_dir" | "limit" | "marker" | "visibility"
            | "member_status" => {}
            _ => query.push((k.clone(), v.clone())),
        }
    }
    let mut items: Vec<Value> = imgs
        .images
        .iter()
        .filter(|i| visible(i, auth) || visibility.is_some_and(|v| v == "all") && auth.is_admin())
        .filter(|i| match visibility {
            None | Some("all") => {
                str_of(i, "visibility") != Some("community")
                    || str_of(i, "owner") == auth.project_id.as_deref()
            }
            Some(v) => str_of(i, "visibility") == Some(v),
        })
        .filter(|i| req.query_get("os_hidden") == Some("true") || i["os_hidden"] != json!(true))
        .filter(|i| matches_filters(i, &query))
        .map(view)
        .collect();
    // Newest first, like Glance's default sort (created_at desc).
    items.reverse();
    let (page, more) = paginate(items, &req.query, 25);
    let mut body = json!({ "images": page, "first": "/v2/images", "schema": "/v2/schemas/images" });
    if more {
        if let Some(last) = body["images"].as_array().and_then(|a| a.last()).map(id_of) {
            let mut q: Vec<String> = req
                .query
                .iter()
                .filter(|(k, _)| k != "marker")
                .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                .collect();
            q.push(format!("marker={last}"));
            body["next"] = json!(format!("/v2/images?{}", q.join("&")));
        }
    }
    Reply::json(200, body)
}

fn patch(imgs: &mut Images, i: usize, req: &SimRequest) -> Reply {
    let h = &req.headers;
    let ct = req.header("content-type").unwrap_or_default();
    if !ct.starts_with("application/openstack-images-v2.1-json-patch")
        && !ct.starts_with("application/openstack-images-v2.0-json-patch")
    {
        return glance_error(h, 415, format!("Unsupported Content-Type: {ct}")).with_header(
            "accept-patch",
            "application/openstack-images-v2.1-json-patch",
        );
    }
    let ops = match req.json() {
        Ok(Value::Array(ops)) => ops,
        Ok(_) => {
            return glance_error(
                h,
                400,
                "Request body must be a JSON array of operation objects.",
            )
        }
        Err(e) => return glance_error(h, 400, e),
    };
    // The v2.0 media type takes JSON Schema draft 4 operations (`{"replace": "/name", ...}`),
    // the v2.1 one draft 10 (`{"op": "replace", "path": "/name", ...}`), as Glance does.
    let draft4 = ct.starts_with("application/openstack-images-v2.0-json-patch");
    let mut img = imgs.images[i].clone();
    for op in ops {
        let (kind, path) = if draft4 {
            let named: Vec<&str> = ["add", "remove", "replace"]
                .into_iter()
                .filter(|k| op.get(*k).is_some())
                .collect();
            let [kind] = named[..] else {
                return glance_error(
                    h,
                    400,
                    "Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".",
                );
            };
            (kind, op[kind].as_str())
        } else {
            let Some(kind) = op["op"].as_str() else {
                return glance_error(
                    h,
                    400,
                    "Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace.",
                );
            };
            (kind, op["path"].as_str())
        };
        let Some(path) = path else {
            return glance_error(h, 400, "Unable to find `path` in JSON Schema change");
        };
        let key = path
            .trim_start_matches('/')
            .replace("~1", "/")
            .replace("~0", "~");
        if key.is_empty() || key.contains('/') && !key.starts_with("tags") {
            return glance_error(
                h,
                400,
                format!("Invalid JSON pointer for this resource: '{path}'"),
            );
        }
        if READ_ONLY.contains(&key.as_str()) || key == "id" || key == "owner" && kind != "replace" {
            return glance_error(h, 403, format!("Attribute '{key}' is read-only."));
        }
        let Value::Object(map) = &mut img else {
            return glance_error(h, 500, "corrupt image record");
        };
        match kind {
            "add" | "replace" => {
                let Some(v) = op.get("value") else {
                    return glance_error(h, 400, "Unable to find `value` in JSON Schema change");
                };
                if kind == "replace" && !map.contains_key(&key) {
                    return glance_error(h, 409, format!("Property {key} does not exist."));
                }
                map.insert(key, v.clone());
            }
            "remove" => {
                if map.remove(&key).is_none() {
                    return glance_error(h, 409, format!("Property {key} does not exist."));
                }
            }
            other => return glance_error(h, 400, format!("Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\"; got {other}.")),
        }
    }
    img["updated_at"] = json!(iso_z(now_secs()));
    imgs.images[i] = img.clone();
    Reply::json(200, view(&img))
}

fn data_path(ctx: &SiteCtx, id: &str) -> PathBuf {
    let safe: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    ctx.data_dir.join(format!("{safe}.img"))
}

/// Handles `PUT`/`GET /v2/images/{id}/file`, streaming the data to or from a file.
pub(crate) async fn handle_data(
    ctx: &SiteCtx,
    req: SimRequest,
    body: Incoming,
) -> Response<SimBody> {
    let h = req.headers.clone();
    let id = req.segments.get(2).cloned().unwrap_or_default();
    let err = |code: u16, msg: String| glance_error(&h, code, msg).into_response();
    {
        let mut world = ctx.world();
        let Some(auth) = require_auth(&world, &req) else {
            return super::http::auth_required(&ctx.urls.identity).into_response();
        };
        let Some(i) =
            find_idx(&world.image.images, &id).filter(|i| visible(&world.image.images[*i], &auth))
        else {
            return err(404, format!("No image found with ID {id}"));
        };
        let img = &mut world.image.images[i];
        if req.method == Method::GET {
            if str_of(img, "status") != Some("active") || img["size"].is_null() {
                return Reply::empty(204).into_response();
            }
        } else {
            let owner_ok = auth.is_admin() || str_of(img, "owner") == auth.project_id.as_deref();
            if !owner_ok {
                return err(
                    403,
                    format!("You are not permitted to upload data to image {id}."),
                );
            }
            let status = str_of(img, "status").unwrap_or_default().to_string();
            if status != "queued" {
                return err(
                    409,
                    format!("Image status transition from {status} to saving is not allowed"),
                );
            }
            img["status"] = json!("saving");
        }
    }
    let path = data_path(ctx, &id);
    if req.method == Method::GET {
        return download(ctx, &id, path).await;
    }
    match upload(&path, body).await {
        Ok((size, md5, sha512)) => {
            let mut world = ctx.world();
            let Some(i) = find_idx(&world.image.images, &id) else {
                let _ = std::fs::remove_file(&path);
                return err(410, format!("Image {id} could not be found after upload. The image may have been deleted during the upload."));
            };
            let img = &mut world.image.images[i];
            img["size"] = json!(size);
            img["virtual_size"] = json!(size);
            img["checksum"] = json!(md5);
            img["os_hash_algo"] = json!("sha512");
            img["os_hash_value"] = json!(sha512);
            img["status"] = json!("active");
            img["stores"] = json!("fs");
            img["updated_at"] = json!(iso_z(now_secs()));
            Reply::text(204, "text/html; charset=UTF-8", String::new()).into_response()
        }
        Err(e) => {
            let mut world = ctx.world();
            if let Some(i) = find_idx(&world.image.images, &id) {
                world.image.images[i]["status"] = json!("queued");
            }
            let _ = std::fs::remove_file(&path);
            err(400, format!("Error in upload: {e}"))
        }
    }
}

async fn upload(path: &PathBuf, mut body: Incoming) -> std::io::Result<(u64, String, String)> {
    use md5::{Digest, Md5};
    use sha2::Sha512;
    let mut file = tokio::fs::File::create(path).await?;
    let (mut md5, mut sha) = (Md5::new(), Sha512::new());
    let mut size = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| std::io::Error::other(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            md5.update(&data);
            sha.update(&data);
            size += data.len() as u64;
            file.write_all(&data).await?;
        }
    }
    file.flush().await?;
    Ok((size, hex(&md5.finalize()), hex(&sha.finalize())))
}

async fn download(ctx: &SiteCtx, id: &str, path: PathBuf) -> Response<SimBody> {
    let (size, checksum) = {
        let world = ctx.world();
        match world.image.get(id) {
            Some(img) => (
                img["size"].as_u64().unwrap_or(0),
                str_of(img, "checksum").unwrap_or_default().to_string(),
            ),
            None => (0, String::new()),
        }
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) if size == 0 => return Reply::empty(204).into_response(),
        Err(e) => {
            return Reply::text(500, "text/plain", format!("image data unavailable: {e}"))
                .into_response()
        }
    };
    let stream = futures_util::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Frame::data(Bytes::from(buf))), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let body: SimBody = BodyExt::boxed_unsync(StreamBody::new(stream.boxed()));
    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&size.to_string()) {
        headers.insert("content-length", v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&checksum) {
        headers.insert("content-md5", v);
    }
    resp
}
