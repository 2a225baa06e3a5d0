//! The control listener's HTTP API (process mode): faults, site down/up, request record.
//!
//! | method and path | effect |
//! |---|---|
//! | `GET /` | the site's description (name, region, endpoints, control URL) |
//! | `GET /health` | `{"status": "ok", "down": bool}` |
//! | `GET /requests[?service=compute]` | `{"requests": [RecordedRequest...]}` in order |
//! | `DELETE /requests` | clears the record (204) |
//! | `GET /faults` | `{"faults": [Fault...]}` |
//! | `POST /faults` | body `{"service": "compute"|null, "status": 503 \| "latency_ms": 2000 \| "reset": true, "count": N|null}` → 201 `{"fault": Fault}` |
//! | `DELETE /faults` / `DELETE /faults/{id}` | clears all faults / one fault (204, 404 if unknown) |
//! | `POST /down`, `POST /up` | site down (service listeners refuse connections) / up on the same ports |

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::http::{parse_query, Reply, SimBody};
use super::{FaultKind, Service, SiteHandle};

/// Handles one control request.
pub(crate) async fn handle(site: SiteHandle, req: Request<Incoming>) -> Response<SimBody> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, 1024 * 1024).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let segs: Vec<&str> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let reply = match (parts.method.as_str(), segs.as_slice()) {
        ("GET", []) => Reply::json(200, site.describe()),
        ("GET", ["health"]) => Reply::json(200, json!({ "status": "ok", "down": site.is_down() })),
        ("GET", ["requests"]) => {
            let filter = query
                .iter()
                .find(|(k, _)| k == "service")
                .and_then(|(_, v)| Service::parse(v));
            let list = match filter {
                Some(s) => site.requests().of(s),
                None => site.requests().all(),
            };
            Reply::json(200, json!({ "requests": list }))
        }
        ("DELETE", ["requests"]) => {
            site.requests().clear();
            Reply::empty(204)
        }
        ("GET", ["faults"]) => Reply::json(200, json!({ "faults": site.faults().list() })),
        ("POST", ["faults"]) => add_fault(&site, &body),
        ("DELETE", ["faults"]) => {
            site.faults().clear();
            Reply::empty(204)
        }
        ("DELETE", ["faults", id]) => match id.parse::<u64>() {
            Ok(id) if site.faults().remove(id) => Reply::empty(204),
            _ => Reply::json(404, json!({ "error": format!("no fault {id}") })),
        },
        ("POST", ["down"]) => {
            site.down().await;
            Reply::json(200, json!({ "down": true }))
        }
        ("POST", ["up"]) => match site.up().await {
            Ok(()) => Reply::json(200, json!({ "down": false })),
            Err(e) => Reply::json(500, json!({ "error": e.to_string() })),
        },
        _ => Reply::json(404, json!({ "error": "unknown control path" })),
    };
    reply.into_response()
}

fn add_fault(site: &SiteHandle, body: &[u8]) -> Reply {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Reply::json(400, json!({ "error": "body must be JSON" }));
    };
    let service = match v.get("service") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match Service::parse(s) {
            Some(s) => Some(s),
            None => return Reply::json(400, json!({ "error": format!("unknown service {s}") })),
        },
        Some(_) => return Reply::json(400, json!({ "error": "service must be a string" })),
    };
    let kind = if let Some(s) = v.get("status").and_then(Value::as_u64) {
        match u16::try_from(s) {
            Ok(code) if (100..600).contains(&code) => FaultKind::Status(code),
            _ => return Reply::json(400, json!({ "error": "status must be 100..599" })),
        }
    } else if let Some(ms) = v.get("latency_ms").and_then(Value::as_u64) {
        FaultKind::LatencyMs(ms)
    } else if v.get("reset") == Some(&Value::Bool(true)) {
        FaultKind::Reset
    } else if v.get("lose_answer") == Some(&Value::Bool(true)) {
        FaultKind::LoseAnswer
    } else if v.get("gzip") == Some(&Value::Bool(true)) {
        FaultKind::Gzip
    } else {
        return Reply::json(
            400,
            json!({ "error": "one of status, latency_ms, reset, lose_answer, gzip is required" }),
        );
    };
    let count = v
        .get("count")
        .and_then(Value::as_u64)
        .map(|c| u32::try_from(c).unwrap_or(u32::MAX));
    let id = site.faults().add(service, kind, count);
    let fault = site.faults().list().into_iter().find(|f| f.id == id);
    Reply::json(201, json!({ "fault": fault }))
}
