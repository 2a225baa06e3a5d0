//! Error bodies in each fronted service's native format (interim, until the full maps land).
use crate::operation::Service;

/// An error response in the service's native format.
pub fn error_response(service: Service, status: http::StatusCode, message: &str) -> http::Response<crate::body::ProxyBody> {
    let code = status.as_u16();
    let body = match service {
        Service::Network => serde_json::json!({"NeutronError": {"type": "HTTPError", "message": message, "detail": ""}}),
        Service::Identity => serde_json::json!({"error": {"code": code, "title": status.canonical_reason().unwrap_or(""), "message": message}}),
        _ => serde_json::json!({"computeFault": {"code": code, "message": message}}),
    };
    let mut r = http::Response::new(crate::body::full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}
