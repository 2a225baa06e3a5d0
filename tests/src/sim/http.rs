//! Request and reply types shared by the simulated services, plus the native error formats.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use serde_json::{json, Map, Value};

/// The body type every simulated listener answers with.
pub type SimBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A fully buffered request, as the synchronous service handlers see it.
#[derive(Debug, Clone)]
pub struct SimRequest {
    pub method: Method,
    /// Path split on `/`, empty segments removed, percent-decoded.
    pub segments: Vec<String>,
    /// Raw path, as received.
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl SimRequest {
    /// The segments as `&str`, for slice patterns.
    pub fn segs(&self) -> Vec<&str> {
        self.segments.iter().map(String::as_str).collect()
    }

    /// First value of a query parameter.
    pub fn query_get(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A header as a string, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON; `Err` carries a message for a 400.
    pub fn json(&self) -> Result<Value, String> {
        if self.body.is_empty() {
            return Err("The request body is empty.".into());
        }
        serde_json::from_slice(&self.body).map_err(|e| format!("Malformed request body: {e}"))
    }
}

/// A buffered reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    /// Response headers; names are lower-case, one value each.
    pub headers: Vec<(&'static str, HeaderValue)>,
    pub body: Bytes,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: u16, body: Value) -> Reply {
        let headers = vec![("content-type", HeaderValue::from_static("application/json"))];
        Reply {
            status: status_code(status),
            headers,
            body: Bytes::from(body.to_string()),
        }
    }

    /// An empty reply (e.g. 204).
    pub fn empty(status: u16) -> Reply {
        Reply {
            status: status_code(status),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// A plain-text or HTML reply.
    pub fn text(status: u16, content_type: &'static str, body: String) -> Reply {
        let headers = vec![("content-type", HeaderValue::from_static(content_type))];
        Reply {
            status: status_code(status),
            headers,
            body: Bytes::from(body),
        }
    }

    /// Adds a header, ignoring values that are not valid header text.
    pub fn with_header(mut self, name: &'static str, value: &str) -> Reply {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.retain(|(n, _)| *n != name);
            self.headers.push((name, v));
        }
        self
    }

    /// Converts into a hyper response.
    pub fn into_response(self) -> http::Response<SimBody> {
        let mut resp = http::Response::new(full(self.body));
        *resp.status_mut() = self.status;
        let headers = resp.headers_mut();
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        resp
    }
}

/// A boxed body from bytes.
pub fn full(bytes: Bytes) -> SimBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Reason phrase ("Not Found") for a status code.
pub fn reason(code: u16) -> &'static str {
    status_code(code).canonical_reason().unwrap_or("Error")
}

/// Nova/Cinder fault body: `{"itemNotFound": {"code": 404, "message": ...}}`.
pub fn nova_error(code: u16, message: impl Into<String>) -> Reply {
    fault_body(code, message, true).with_header("content-type", "application/json; charset=UTF-8")
}

/// Cinder's error body: Nova's shape (the same `Fault` code), without Nova's 429 name and
/// with `application/json` alone as its content type.
pub fn cinder_error(code: u16, message: impl Into<String>) -> Reply {
    fault_body(code, message, false)
}

/// The `{"<fault name>": {"code", "message"}}` body of Nova and Cinder (`_fault_names` in
/// their `api/openstack/wsgi.py`; only Nova names 429).
fn fault_body(code: u16, message: impl Into<String>, nova: bool) -> Reply {
    let key = match code {
        429 if nova => "overLimit",
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 => "overLimit",
        415 => "badMediaType",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    };
    Reply::json(
        code,
        json!({ key: { "code": code, "message": message.into() } }),
    )
}

/// Keystone error body: `{"error": {"code", "message", "title"}}`.
pub fn keystone_error(code: u16, message: impl Into<String>) -> Reply {
    Reply::json(
        code,
        json!({ "error": { "code": code, "message": message.into(), "title": reason(code) } }),
    )
}

/// Neutron error body: `{"NeutronError": {"type", "message", "detail"}}`.
pub fn neutron_error(code: u16, kind: &str, message: impl Into<String>) -> Reply {
    Reply::json(
        code,
        json!({ "NeutronError": { "type": kind, "message": message.into(), "detail": "" } }),
    )
}

/// Glance (webob) error: JSON when the client accepts JSON, HTML otherwise.
pub fn glance_error(req_headers: &HeaderMap, code: u16, message: impl Into<String>) -> Reply {
    let message = message.into();
    let title = reason(code);
    // Glance hands webob `environ.get('HTTP_ACCEPT', '')`: no header accepts nothing, and
    // webob then writes its plain-text page.
    let accept = req_headers.get("accept").and_then(|v| v.to_str().ok());
    if accept.is_none_or(|a| a.trim().is_empty()) {
        Reply::text(
            code,
            "text/plain; charset=UTF-8",
            format!("{code} {title}\n\n{message}\n\n   "),
        )
    } else if accept.is_some_and(|a| a.contains("json")) {
        Reply::json(
            code,
            json!({ "message": format!("{message}<br /><br />\n\n\n"), "code": format!("{code} {title}"), "title": title }),
        )
    } else {
        Reply::text(
            code,
            "text/html; charset=UTF-8",
            format!(
                "<html>\n <head>\n  <title>{code} {title}</title>\n </head>\n <body>\n  <h1>{code} {title}</h1>\n  {message}<br /><br />\n\n\n\n </body>\n</html>"
            ),
        )
    }
}

/// The 401 that keystonemiddleware answers for every service behind it.
pub fn auth_required(identity_url: &str) -> Reply {
    keystone_error(401, "The request you have made requires authentication.").with_header(
        "www-authenticate",
        &format!("Keystone uri=\"{identity_url}\""),
    )
}

/// A new random id without dashes (Keystone style).
pub fn hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A new random UUID with dashes (Nova, Neutron, Cinder, Glance style).
pub fn uuid_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new request id `req-<uuid>`.
pub fn request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4())
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Microseconds part of the current time.
fn now_micros() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_micros())
        .unwrap_or(0)
}

/// Civil UTC date-time from seconds since the epoch (Howard Hinnant's algorithm).
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

/// `2026-11-26T17:33:01Z` (Nova, Neutron, Glance).
pub fn iso_z(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `2026-11-26T17:33:01.000000Z` (Keystone tokens).
pub fn iso_micro_z(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.000000Z")
}

/// `2026-11-26T17:33:01.809723` (Cinder).
pub fn iso_cinder_now() -> String {
    let (y, mo, d, h, mi, s) = civil(now_secs());
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}",
        now_micros()
    )
}

/// Percent-decodes a path segment or query component (`+` as space when `plus` is set).
pub fn percent_decode(s: &str, plus: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses a query string into decoded pairs.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
            None => (percent_decode(p, true), String::new()),
        })
        .collect()
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Text form of a JSON scalar, for comparing with a query filter.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// The object under `key` in a request body, or a message for a 400.
pub fn body_object(body: &Value, key: &str) -> Result<Map<String, Value>, String> {
    match body.get(key) {
        Some(Value::Object(m)) => Ok(m.clone()),
        _ => Err(format!(
            "Missing or invalid '{key}' object in request body."
        )),
    }
}

/// Query parameters that are never attribute filters.
const NON_FILTERS: &[&str] = &[
    "limit",
    "marker",
    "sort",
    "sort_key",
    "sort_dir",
    "fields",
    "page_reverse",
    "detail",
    "include_names",
    "effective",
    "nocatalog",
    "allow_expired",
    "is_public",
];

/// Whether a JSON object passes the attribute filters of a list query.
///
/// Plain `key=value` pairs compare with the attribute's text (booleans case-insensitively;
/// a comma-free value; repeated keys mean "any of"); `tags`/`tag` (all of, comma separated),
/// `tags-any`, `not-tags`, `not-tags-any` filter on the `tags` list. Unknown keys are ignored,
/// like the real services do for most attributes.
pub fn matches_filters(obj: &Value, query: &[(String, String)]) -> bool {
    let tags: Vec<&str> = obj
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let split = |v: &str| -> Vec<String> { v.split(',').map(str::to_string).collect() };
    let mut by_key: Vec<(&str, Vec<&str>)> = Vec::new();
    for (k, v) in query {
        match k.as_str() {
            "tags" | "tag" => {
                if !split(v).iter().all(|t| tags.contains(&t.as_str())) {
                    return false;
                }
            }
            "tags-any" => {
                if !split(v).iter().any(|t| tags.contains(&t.as_str())) {
                    return false;
                }
            }
            "not-tags" => {
                if split(v).iter().all(|t| tags.contains(&t.as_str())) {
                    return false;
                }
            }
            "not-tags-any" => {
                if split(v).iter().any(|t| tags.contains(&t.as_str())) {
                    return false;
                }
            }
            key if NON_FILTERS.contains(&key) => {}
            key => match by_key.iter_mut().find(|(k2, _)| *k2 == key) {
                Some((_, vals)) => vals.push(v.as_str()),
                None => by_key.push((key, vec![v.as_str()])),
            },
        }
    }
    for (key, wanted) in by_key {
        let Some(actual) = obj.get(key) else { continue };
        let Some(text) = scalar_text(actual) else {
            continue;
        };
        let ok = wanted.iter().any(|w| {
            if actual.is_boolean() {
                w.eq_ignore_ascii_case(&text)
            } else {
                *w == text
            }
        });
        if !ok {
            return false;
        }
    }
    true
}

/// Applies `marker` (exclusive, by `id`) and `limit` to a list; returns the page and whether
/// more items follow it.
pub fn paginate(
    items: Vec<Value>,
    query: &[(String, String)],
    default_limit: usize,
) -> (Vec<Value>, bool) {
    let marker = query
        .iter()
        .find(|(k, _)| k == "marker")
        .map(|(_, v)| v.as_str());
    let limit = query
        .iter()
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(default_limit)
        .max(1);
    let start = match marker {
        Some(m) => items
            .iter()
            .position(|i| i.get("id").and_then(Value::as_str) == Some(m))
            .map(|p| p + 1)
            .unwrap_or(items.len()),
        None => 0,
    };
    let rest: Vec<Value> = items.into_iter().skip(start).collect();
    let more = rest.len() > limit;
    (rest.into_iter().take(limit).collect(), more)
}

/// Position of the object with this `id`.
pub fn find_idx(items: &[Value], id: &str) -> Option<usize> {
    // IDs are unique; searched from the newest, which calls address most (a create's
    // follow-ups), so a long-running benchmark does not slow down as the lists grow.
    items
        .iter()
        .rposition(|i| i.get("id").and_then(Value::as_str) == Some(id))
}

/// The `id` of an object as a string (empty if missing).
pub fn id_of(v: &Value) -> String {
    v.get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A string attribute of an object.
pub fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time_formats() {
        assert_eq!(iso_z(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_z(1_795_714_381), "2026-11-26T17:33:01Z");
        assert_eq!(iso_micro_z(951_782_400), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn query_decoding() {
        let q = parse_query("name=a%20b&tags=x,y&flag&plus=a+b&bad=%zz");
        assert_eq!(q[0], ("name".into(), "a b".into()));
        assert_eq!(q[1], ("tags".into(), "x,y".into()));
        assert_eq!(q[2], ("flag".into(), String::new()));
        assert_eq!(q[3], ("plus".into(), "a b".into()));
        assert_eq!(q[4], ("bad".into(), "%zz".into()));
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }
}
