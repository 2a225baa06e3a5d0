//! Error bodies in each fronted service's native format: the one place where an error the
//! gateway itself returns becomes bytes on the wire.
//!
//! Every format below is copied from the real service, so that `openstack`, openstacksdk,
//! novaclient, neutronclient, glanceclient and gophercloud show the message as they would
//! show the service's own:
//!
//! | service        | status        | content type                       | body |
//! |----------------|---------------|------------------------------------|------|
//! | Nova, Cinder, Neutron | 401    | `application/json`                 | `{"error": {"code": 401, "title": "Unauthorized", "message": m}}` |
//! | Nova           | other         | `application/json; charset=UTF-8`  | `{"<faultName>": {"code": c, "message": m}}` |
//! | Cinder         | other         | `application/json`                 | `{"<faultName>": {"code": c, "message": m}}` |
//! | Neutron        | other         | `application/json`                 | `{"NeutronError": {"type": "HTTPForbidden", "message": m, "detail": ""}}` |
//! | Keystone       | any           | `application/json`                 | `{"error":{"code":c,"message":m,"title":"Forbidden"}}` and a newline |
//! | Glance         | any           | by `Accept`, as webob negotiates   | webob's JSON, HTML or plain-text error page |
//!
//! The bytes are the services' own too: Nova, Cinder, Neutron, keystonemiddleware and
//! webob write JSON with Python's `json.dumps` defaults (`", "`, `": "`, non-ASCII escaped),
//! Keystone with Flask's `jsonify` (compact, keys sorted, non-ASCII escaped, a final
//! newline); see `JsonStyle`. The real tier compares them with the real services' answers.
//!
//! Sources:
//! - **401 for Nova, Cinder and Neutron**: the service never sees an unauthenticated
//!   request; keystonemiddleware (`auth_token`) rejects it first with the Keystone-shaped
//!   body above, as `application/json`. Keystone answers its own 401 in its own format;
//!   Glance's context middleware raises webob's `HTTPUnauthorized`, so Glance's 401 is a
//!   webob page like its other errors.
//! - **Nova** `nova/api/openstack/wsgi.py` `Fault._fault_names`: 400 `badRequest`,
//!   401 `unauthorized`, 403 `forbidden`, 404 `itemNotFound`, 405 `badMethod`,
//!   409 `conflictingRequest`, 413 `overLimit`, 415 `badMediaType`, 429 `overLimit`,
//!   501 `notImplemented`, 503 `serviceUnavailable`, anything else `computeFault`
//!   (so 500, 502 and 504 are `computeFault`). Nova sets `charset=UTF-8`.
//! - **Cinder** `cinder/api/openstack/wsgi.py` `Fault._fault_names`: the same map without 429
//!   (a 429 is `computeFault` there), default `computeFault`.
//! - **Neutron** `neutron/api/api_common.py` `convert_exception_to_http_exc`: a webob HTTP
//!   exception gets `{"NeutronError": {"type": <exception class name>, "message", "detail": ""}}`.
//!   The gateway's errors are webob-like, so `type` is the webob class for the status
//!   (`HTTPForbidden`, `HTTPNotFound`, `HTTPServiceUnavailable`, `HTTPBadGateway`, ...).
//!   Specific neutron-lib types (`NetworkNotFound`, `PolicyNotAuthorized`) are never claimed:
//!   the gateway did not run neutron's check, and clients only key on the status anyway.
//! - **Keystone** `keystone/server/flask/application.py` `_handle_keystone_exception`:
//!   `{"error": {"code", "title", "message"}}`, `title` being Python's `http.client.responses`
//!   phrase for the code.
//! - **Glance** raises plain `webob.exc.HTTP*` exceptions (`explanation=msg`), so the body is
//!   webob's `WSGIHTTPException.generate_response`: it offers `text/html` then
//!   `application/json` to the request's `Accept` header and falls back to `text/plain`. The
//!   body template is `"${explanation}<br /><br />\n${detail}\n${html_comment}\n"`, which is why
//!   real Glance messages end in `<br /><br />`. See [`error_body_for`].

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use serde_json::{json, Value};

use crate::operation::Service;

/// `application/json` as Flask, webob (Neutron, Cinder, Glance) send it.
pub const JSON: &str = "application/json";
/// `application/json` with the charset Nova and keystonemiddleware add.
pub const JSON_UTF8: &str = "application/json; charset=UTF-8";
/// webob's HTML error page.
pub const HTML_UTF8: &str = "text/html; charset=UTF-8";
/// webob's plain-text error page.
pub const PLAIN_UTF8: &str = "text/plain; charset=UTF-8";

/// The message keystonemiddleware sends with every 401.
pub const UNAUTHENTICATED_MESSAGE: &str = "The request you have made requires authentication.";

/// What an OpenStack client sends as `Accept` (openstacksdk and keystoneauth send
/// `application/json`); used by [`error_body`] where the request is not at hand.
const DEFAULT_ACCEPT: &str = "application/json";

/// The error body for `status` in `service`'s native format, for a client that accepts JSON
/// (what openstacksdk, the `openstack` CLI and gophercloud send). Returns the content type
/// and the body. Only Glance looks at `Accept`; use [`error_body_for`] when the request's
/// `Accept` header is known.
pub fn error_body(service: Service, status: StatusCode, message: &str) -> (&'static str, Bytes) {
    error_body_for(service, status, message, Some(DEFAULT_ACCEPT))
}

/// Like [`error_body`], negotiating Glance's body on the request's `Accept` header the way
/// webob does: `text/html` if it is acceptable at least as much as `application/json`, else
/// `application/json` if acceptable, else `text/plain` (also when the header is absent).
/// The other services always answer JSON, whatever the header says.
pub fn error_body_for(
    service: Service,
    status: StatusCode,
    message: &str,
    accept: Option<&str>,
) -> (&'static str, Bytes) {
    let code = status.as_u16();
    let python = |value: &Value| to_bytes(JsonStyle::Python, value);
    match service {
        // keystonemiddleware answers for the service before it sees the request.
        Service::Compute | Service::BlockStorage | Service::Network
            if status == StatusCode::UNAUTHORIZED =>
        {
            (JSON, python(&keystone_shape(code, message)))
        }
        Service::Compute => (JSON_UTF8, python(&compute_shape(service, code, message))),
        Service::BlockStorage => (JSON, python(&compute_shape(service, code, message))),
        Service::Network => {
            let body = json!({
                "NeutronError": {
                    "type": neutron_error_type(status),
                    "message": message,
                    "detail": "",
                }
            });
            (JSON, python(&body))
        }
        Service::Identity => (
            JSON,
            to_bytes(JsonStyle::Flask, &keystone_shape(code, message)),
        ),
        Service::Image => webob_error_body(status, message, accept),
    }
}

/// A complete error response: status, `Content-Type` and body from [`error_body`].
/// Callers with a streaming body type map it (`error_response(..).map(body::full)`).
pub fn error_response(service: Service, status: StatusCode, message: &str) -> Response<Bytes> {
    let (content_type, body) = error_body(service, status, message);
    build_response(status, content_type, body)
}

/// Like [`error_response`], with Glance's body negotiated on the request's `Accept` header.
pub fn error_response_for(
    service: Service,
    status: StatusCode,
    message: &str,
    accept: Option<&str>,
) -> Response<Bytes> {
    let (content_type, body) = error_body_for(service, status, message, accept);
    build_response(status, content_type, body)
}

/// A complete webob error page response (see [`webob_error_body`]).
pub fn webob_error_response(
    status: StatusCode,
    message: &str,
    accept: Option<&str>,
) -> Response<Bytes> {
    let (content_type, body) = webob_error_body(status, message, accept);
    build_response(status, content_type, body)
}

fn build_response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Bytes> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The top-level key of a Nova or Cinder fault body (`forbidden`, `itemNotFound`, ...).
pub fn compute_fault_name(service: Service, status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 => "overLimit",
        415 => "badMediaType",
        // Nova maps 429 to overLimit; Cinder has no entry for it.
        429 if service != Service::BlockStorage => "overLimit",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

/// The `NeutronError.type` of a gateway-generated error: the webob exception class name
/// that Neutron would report for the same status.
pub fn neutron_error_type(status: StatusCode) -> &'static str {
    match webob_status(status.as_u16()) {
        Some((_, class)) => class,
        None if status.is_server_error() => "HTTPServerError",
        None if status.is_client_error() => "HTTPClientError",
        None => "HTTPException",
    }
}

/// The status phrase webob and Python's `http.client.responses` use (Keystone's `title`).
pub fn status_title(status: StatusCode) -> &'static str {
    match webob_status(status.as_u16()) {
        Some((title, _)) => title,
        None => status.canonical_reason().unwrap_or("Unknown Error"),
    }
}

/// (title, webob exception class) per error status, as webob 1.8 defines them.
fn webob_status(code: u16) -> Option<(&'static str, &'static str)> {
    Some(match code {
        400 => ("Bad Request", "HTTPBadRequest"),
        401 => ("Unauthorized", "HTTPUnauthorized"),
        402 => ("Payment Required", "HTTPPaymentRequired"),
        403 => ("Forbidden", "HTTPForbidden"),
        404 => ("Not Found", "HTTPNotFound"),
        405 => ("Method Not Allowed", "HTTPMethodNotAllowed"),
        406 => ("Not Acceptable", "HTTPNotAcceptable"),
        407 => (
            "Proxy Authentication Required",
            "HTTPProxyAuthenticationRequired",
        ),
        408 => ("Request Timeout", "HTTPRequestTimeout"),
        409 => ("Conflict", "HTTPConflict"),
        410 => ("Gone", "HTTPGone"),
        411 => ("Length Required", "HTTPLengthRequired"),
        412 => ("Precondition Failed", "HTTPPreconditionFailed"),
        413 => ("Request Entity Too Large", "HTTPRequestEntityTooLarge"),
        414 => ("Request-URI Too Long", "HTTPRequestURITooLong"),
        415 => ("Unsupported Media Type", "HTTPUnsupportedMediaType"),
        416 => (
            "Request Range Not Satisfiable",
            "HTTPRequestRangeNotSatisfiable",
        ),
        417 => ("Expectation Failed", "HTTPExpectationFailed"),
        422 => ("Unprocessable Entity", "HTTPUnprocessableEntity"),
        423 => ("Locked", "HTTPLocked"),
        424 => ("Failed Dependency", "HTTPFailedDependency"),
        428 => ("Precondition Required", "HTTPPreconditionRequired"),
        429 => ("Too Many Requests", "HTTPTooManyRequests"),
        431 => (
            "Request Header Fields Too Large",
            "HTTPRequestHeaderFieldsTooLarge",
        ),
        451 => (
            "Unavailable For Legal Reasons",
            "HTTPUnavailableForLegalReasons",
        ),
        500 => ("Internal Server Error", "HTTPInternalServerError"),
        501 => ("Not Implemented", "HTTPNotImplemented"),
        502 => ("Bad Gateway", "HTTPBadGateway"),
        503 => ("Service Unavailable", "HTTPServiceUnavailable"),
        504 => ("Gateway Timeout", "HTTPGatewayTimeout"),
        505 => ("HTTP Version Not Supported", "HTTPVersionNotSupported"),
        507 => ("Insufficient Storage", "HTTPInsufficientStorage"),
        511 => (
            "Network Authentication Required",
            "HTTPNetworkAuthenticationRequired",
        ),
        _ => return None,
    })
}

fn compute_shape(service: Service, code: u16, message: &str) -> Value {
    let mut inner = serde_json::Map::with_capacity(2);
    inner.insert("code".into(), Value::from(code));
    inner.insert("message".into(), Value::from(message));
    let mut outer = serde_json::Map::with_capacity(1);
    let name =
        StatusCode::from_u16(code).map_or("computeFault", |s| compute_fault_name(service, s));
    outer.insert(name.into(), Value::Object(inner));
    Value::Object(outer)
}

fn keystone_shape(code: u16, message: &str) -> Value {
    let title = StatusCode::from_u16(code).map_or("Unknown Error", status_title);
    json!({"error": {"code": code, "title": title, "message": message}})
}

/// How a service writes JSON, byte for byte (checked against the real services in the
/// real tier's `error bodies` step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonStyle {
    /// Python's `json.dumps` defaults, as oslo `jsonutils.dumps` (Nova, Cinder, Neutron,
    /// keystonemiddleware) and webob write: `", "` and `": "` between items, keys in the
    /// order given, everything outside printable ASCII as `\uXXXX`.
    Python,
    /// Flask's `jsonify`, as Keystone writes: compact, keys sorted, everything outside
    /// printable ASCII as `\uXXXX`, and a newline at the end.
    Flask,
}

/// A `serde_json` formatter for [`JsonStyle`]: Python's separators and `ensure_ascii`.
struct PythonJson {
    spaced: bool,
}

impl serde_json::ser::Formatter for PythonJson {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item_separator(writer, first)
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item_separator(writer, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(if self.spaced { b": " } else { b":" })
    }

    /// `ensure_ascii`: serde_json has escaped quotes, backslashes and control characters
    /// already (as Python does); what is left outside `' '..='~'` becomes UTF-16 escapes.
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut plain_from = 0;
        for (at, c) in fragment.char_indices() {
            if (' '..='~').contains(&c) {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[plain_from..at])?;
            for unit in c.encode_utf16(&mut [0; 2]) {
                write!(writer, "\\u{unit:04x}")?;
            }
            plain_from = at + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[plain_from..])
    }
}

impl PythonJson {
    fn item_separator<W: ?Sized + std::io::Write>(
        &self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        match (first, self.spaced) {
            (true, _) => Ok(()),
            (false, true) => writer.write_all(b", "),
            (false, false) => writer.write_all(b","),
        }
    }
}

/// `value` with every object's keys sorted, as `sort_keys=True` writes them.
fn keys_sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut sorted: serde_json::Map<String, Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), keys_sorted(v)))
                .collect();
            sorted.sort_keys();
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(keys_sorted).collect()),
        other => other.clone(),
    }
}

fn to_bytes(style: JsonStyle, value: &Value) -> Bytes {
    use serde::Serialize;
    let mut out = Vec::with_capacity(128);
    let spaced = style == JsonStyle::Python;
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonJson { spaced });
    // Serialising a `Value` into a `Vec` cannot fail; an empty body is the safe fallback.
    let written = match style {
        JsonStyle::Python => value.serialize(&mut ser),
        JsonStyle::Flask => keys_sorted(value).serialize(&mut ser),
    };
    if written.is_err() {
        return Bytes::new();
    }
    if style == JsonStyle::Flask {
        out.push(b'\n');
    }
    Bytes::from(out)
}

/// Which of webob's three error pages a request's `Accept` header selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WebobPage {
    Html,
    Json,
    Plain,
}

/// webob's `acceptable_offers(['text/html', 'application/json'])`, first offer taken:
/// each offer gets the quality of the most specific media range matching it; offers with
/// quality 0 are dropped; ties go to the earlier offer (HTML). Glance hands webob
/// `environ.get('HTTP_ACCEPT', '')`, so a missing header is an empty one, which accepts
/// nothing: plain text. A malformed header accepts everything (webob's
/// `AcceptInvalidHeader`), hence HTML.
fn webob_page(accept: Option<&str>) -> WebobPage {
    let Some(ranges) = parse_accept(accept.unwrap_or("")) else {
        return WebobPage::Html;
    };
    let html = offer_quality(&ranges, "text", "html");
    let json = offer_quality(&ranges, "application", "json");
    match (html, json) {
        (0, 0) => WebobPage::Plain,
        (h, j) if h >= j => WebobPage::Html,
        _ => WebobPage::Json,
    }
}

/// At most this many media ranges are looked at; longer headers count as malformed.
const MAX_ACCEPT_RANGES: usize = 16;

/// One media range of an `Accept` header: type, subtype, quality in thousandths.
type MediaRange<'a> = (&'a str, &'a str, u16);

/// The media ranges of a valid `Accept` header, or `None` when it is malformed.
fn parse_accept(accept: &str) -> Option<Vec<MediaRange<'_>>> {
    let mut ranges = Vec::new();
    for range in accept.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        if ranges.len() == MAX_ACCEPT_RANGES {
            return None;
        }
        let mut params = range.split(';');
        let (t, s) = params.next()?.trim().split_once('/')?;
        let (t, s) = (t.trim(), s.trim());
        if t.is_empty() || s.is_empty() || (t == "*" && s != "*") {
            return None;
        }
        let mut quality = 1000;
        for p in params {
            let (k, v) = p.split_once('=')?;
            if k.trim().eq_ignore_ascii_case("q") {
                quality = parse_quality(v.trim())?;
            }
        }
        ranges.push((t, s, quality));
    }
    Some(ranges)
}

/// Quality (0..=1000) that `ranges` give to `kind/sub`; 0 when nothing matches.
fn offer_quality(ranges: &[MediaRange<'_>], kind: &str, sub: &str) -> u16 {
    // (specificity, quality) of the most specific matching range.
    let mut best: Option<(u8, u16)> = None;
    for &(t, s, quality) in ranges {
        let specificity = if t.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(sub) {
            2
        } else if t.eq_ignore_ascii_case(kind) && s == "*" {
            1
        } else if t == "*" && s == "*" {
            0
        } else {
            continue;
        };
        if best.is_none_or(|(spec, _)| specificity > spec) {
            best = Some((specificity, quality));
        }
    }
    best.map_or(0, |(_, q)| q)
}

/// RFC 7231 `qvalue`: `0[.ddd]` or `1[.000]`, in thousandths; `None` when malformed.
fn parse_quality(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut milli: u16 = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    for (b, scale) in frac.bytes().zip([100, 10, 1]) {
        milli += u16::from(b - b'0') * scale;
    }
    (milli <= 1000).then_some(milli)
}

/// webob's error page for `status` with `message` as its explanation, negotiated on
/// `accept` (see [`error_body_for`]): what Glance answers for every error, and Nova, Cinder
/// and Keystone for a body over oslo.middleware's size limit. The content type and body.
pub fn webob_error_body(
    status: StatusCode,
    message: &str,
    accept: Option<&str>,
) -> (&'static str, Bytes) {
    let title = status_title(status);
    let status_line = format!("{} {}", status.as_u16(), title);
    match webob_page(accept) {
        WebobPage::Json => {
            let body = json!({
                "message": format!("{message}<br /><br />\n\n\n"),
                "code": status_line,
                "title": title,
            });
            (JSON, to_bytes(JsonStyle::Python, &body))
        }
        WebobPage::Html => {
            let body = format!(
                "<html>\n <head>\n  <title>{status_line}</title>\n </head>\n <body>\n  <h1>{status_line}</h1>\n  {}<br /><br />\n\n\n\n </body>\n</html>",
                html_escape(message)
            );
            (HTML_UTF8, Bytes::from(body))
        }
        WebobPage::Plain => {
            // webob's strip_tags turns newlines into spaces and `<br />` into newlines.
            let flat: String = message
                .chars()
                .filter(|&c| c != '\r')
                .map(|c| if c == '\n' { ' ' } else { c })
                .collect();
            (
                PLAIN_UTF8,
                Bytes::from(format!("{status_line}\n\n{flat}\n\n   ")),
            )
        }
    }
}

/// Python's `html.escape(s, quote=True)`, which webob applies to the HTML page.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_json(service: Service, status: u16, message: &str) -> (String, Value) {
        let (ct, body) = error_body(service, StatusCode::from_u16(status).unwrap(), message);
        (ct.to_string(), serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn nova_fault_names_match_nova() {
        let cases = [
            (400, "badRequest"),
            (403, "forbidden"),
            (404, "itemNotFound"),
            (405, "badMethod"),
            (409, "conflictingRequest"),
            (413, "overLimit"),
            (415, "badMediaType"),
            (429, "overLimit"),
            (500, "computeFault"),
            (501, "notImplemented"),
            (502, "computeFault"),
            (503, "serviceUnavailable"),
            (504, "computeFault"),
        ];
        for (code, key) in cases {
            let (ct, v) = body_json(Service::Compute, code, "boom \"quoted\"");
            assert_eq!(ct, JSON_UTF8);
            assert_eq!(
                v,
                json!({key: {"code": code, "message": "boom \"quoted\""}}),
                "status {code}"
            );
        }
    }

    #[test]
    fn cinder_fault_names_match_cinder() {
        let cases = [
            (400, "badRequest"),
            (403, "forbidden"),
            (404, "itemNotFound"),
            (405, "badMethod"),
            (409, "conflictingRequest"),
            (413, "overLimit"),
            (415, "badMediaType"),
            (429, "computeFault"),
            (500, "computeFault"),
            (501, "notImplemented"),
            (502, "computeFault"),
            (503, "serviceUnavailable"),
        ];
        for (code, key) in cases {
            let (ct, v) = body_json(Service::BlockStorage, code, "m");
            assert_eq!(ct, JSON);
            assert_eq!(
                v,
                json!({key: {"code": code, "message": "m"}}),
                "status {code}"
            );
        }
    }

    #[test]
    fn exact_bytes_for_a_nova_forbidden() {
        let (_, body) = error_body(
            Service::Compute,
            StatusCode::FORBIDDEN,
            "Policy doesn't allow it.",
        );
        assert_eq!(
            &body[..],
            br#"{"forbidden": {"code": 403, "message": "Policy doesn't allow it."}}"#
        );
    }

    /// Python's `ensure_ascii`: what real Neutron answered for network `né` (a code point
    /// above the BMP is a surrogate pair, DEL is escaped too).
    #[test]
    fn non_ascii_is_escaped_as_python_does() {
        let (_, body) = error_body(
            Service::Network,
            StatusCode::NOT_FOUND,
            "Network n\u{e9} could not be found.",
        );
        assert_eq!(
            &body[..],
            br#"{"NeutronError": {"type": "HTTPNotFound", "message": "Network n\u00e9 could not be found.", "detail": ""}}"#
        );
        let (_, body) = error_body(
            Service::Identity,
            StatusCode::BAD_REQUEST,
            "\u{1F600} \"q\" \\ \n\u{7f}",
        );
        assert_eq!(
            &body[..],
            b"{\"error\":{\"code\":400,\"message\":\"\\ud83d\\ude00 \\\"q\\\" \\\\ \\n\\u007f\",\"title\":\"Bad Request\"}}\n"
        );
    }

    #[test]
    fn neutron_shape_and_types() {
        let cases = [
            (400, "HTTPBadRequest"),
            (403, "HTTPForbidden"),
            (404, "HTTPNotFound"),
            (409, "HTTPConflict"),
            (413, "HTTPRequestEntityTooLarge"),
            (500, "HTTPInternalServerError"),
            (502, "HTTPBadGateway"),
            (503, "HTTPServiceUnavailable"),
            (504, "HTTPGatewayTimeout"),
            (499, "HTTPClientError"),
            (599, "HTTPServerError"),
        ];
        for (code, ty) in cases {
            let (ct, v) = body_json(Service::Network, code, "nope");
            assert_eq!(ct, JSON);
            assert_eq!(
                v,
                json!({"NeutronError": {"type": ty, "message": "nope", "detail": ""}}),
                "status {code}"
            );
        }
        let (_, body) = error_body(Service::Network, StatusCode::FORBIDDEN, "x");
        assert_eq!(
            &body[..],
            br#"{"NeutronError": {"type": "HTTPForbidden", "message": "x", "detail": ""}}"#
        );
    }

    #[test]
    fn keystone_shape_and_titles() {
        let cases = [
            (400, "Bad Request"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (409, "Conflict"),
            (413, "Request Entity Too Large"),
            (500, "Internal Server Error"),
            (503, "Service Unavailable"),
        ];
        for (code, title) in cases {
            let (ct, v) = body_json(Service::Identity, code, "m");
            assert_eq!(ct, JSON);
            assert_eq!(
                v,
                json!({"error": {"code": code, "title": title, "message": "m"}}),
                "status {code}"
            );
        }
        let (_, body) = error_body(Service::Identity, StatusCode::FORBIDDEN, "x");
        assert_eq!(
            &body[..],
            [
                &br#"{"error":{"code":403,"message":"x","title":"Forbidden"}}"#[..],
                b"\n"
            ]
            .concat(),
            "Keystone's Flask: compact, keys sorted, a final newline"
        );
    }

    #[test]
    fn unauthorized_is_keystonemiddleware_shaped_behind_it() {
        for service in [Service::Compute, Service::BlockStorage, Service::Network] {
            let (ct, body) = error_body_for(
                service,
                StatusCode::UNAUTHORIZED,
                UNAUTHENTICATED_MESSAGE,
                Some("text/html"),
            );
            assert_eq!(ct, JSON, "{service}");
            assert_eq!(
                &body[..],
                br#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#,
                "{service}"
            );
        }
        // Keystone's own, and Glance's webob page.
        let (_, body) = error_body(Service::Identity, StatusCode::UNAUTHORIZED, "m");
        assert_eq!(
            &body[..],
            b"{\"error\":{\"code\":401,\"message\":\"m\",\"title\":\"Unauthorized\"}}\n"
        );
        let (ct, _) = error_body_for(Service::Image, StatusCode::UNAUTHORIZED, "m", Some("*/*"));
        assert_eq!(ct, HTML_UTF8);
    }

    #[test]
    fn glance_json_is_webob_json() {
        let (ct, v) = body_json(Service::Image, 404, "No image found with ID abc");
        assert_eq!(ct, JSON);
        assert_eq!(
            v,
            json!({"message": "No image found with ID abc<br /><br />\n\n\n", "code": "404 Not Found", "title": "Not Found"})
        );
    }

    #[test]
    fn glance_html_and_plain_pages() {
        let (ct, body) = error_body_for(
            Service::Image,
            StatusCode::FORBIDDEN,
            "a <b> & 'c'",
            Some("*/*"),
        );
        assert_eq!(ct, HTML_UTF8);
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            "<html>\n <head>\n  <title>403 Forbidden</title>\n </head>\n <body>\n  <h1>403 Forbidden</h1>\n  a &lt;b&gt; &amp; &#x27;c&#x27;<br /><br />\n\n\n\n </body>\n</html>"
        );
        let (ct, body) = error_body_for(
            Service::Image,
            StatusCode::SERVICE_UNAVAILABLE,
            "frozen\nretry",
            Some("text/plain"),
        );
        assert_eq!(ct, PLAIN_UTF8);
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            "503 Service Unavailable\n\nfrozen retry\n\n   "
        );
    }

    #[test]
    fn glance_negotiates_like_webob() {
        let cases = [
            (None, WebobPage::Plain),
            (Some(""), WebobPage::Plain),
            (Some("application/json"), WebobPage::Json),
            (Some("*/*"), WebobPage::Html),
            (Some("text/plain"), WebobPage::Plain),
            (Some("application/json, */*;q=0.5"), WebobPage::Json),
            (
                Some("text/html;q=0.2, application/json;q=0.9"),
                WebobPage::Json,
            ),
            (Some("text/html;q=0, */*"), WebobPage::Json),
            (Some("application/*"), WebobPage::Json),
            (
                Some("text/*;q=0.9, application/json;q=0.9"),
                WebobPage::Html,
            ),
            (
                Some("text/plain, , application/json;q=0.1"),
                WebobPage::Json,
            ),
            (
                Some("application/json;q=0.000, text/plain"),
                WebobPage::Plain,
            ),
            // malformed headers accept everything in webob, so HTML
            (Some("garbage;;q=abc,,/"), WebobPage::Html),
            (Some("application/json;q=1.5"), WebobPage::Html),
            (Some("application/json;q=0.1234"), WebobPage::Html),
            (Some("*/json"), WebobPage::Html),
        ];
        for (accept, page) in cases {
            assert_eq!(webob_page(accept), page, "{accept:?}");
        }
    }

    #[test]
    fn error_response_carries_status_and_content_type() {
        let resp = error_response(Service::Compute, StatusCode::SERVICE_UNAVAILABLE, "frozen");
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[CONTENT_TYPE], JSON_UTF8);
        let v: Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(
            v,
            json!({"serviceUnavailable": {"code": 503, "message": "frozen"}})
        );
        let resp = error_response_for(
            Service::Image,
            StatusCode::NOT_FOUND,
            "gone",
            Some("text/plain"),
        );
        assert_eq!(resp.headers()[CONTENT_TYPE], PLAIN_UTF8);
    }
}
