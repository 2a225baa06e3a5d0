//! Per-service route tables (interim: method-only classification until the route tables land).
use crate::operation::*;

/// Interim classifier: read/create/update/delete by method; tokens recognised.
pub fn classify(service: Service, method: &http::Method, path: &str, _query: Option<&str>, _microversion: Option<&str>) -> Operation {
    let action = match *method {
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS => Action::Read,
        http::Method::POST => Action::Create,
        http::Method::DELETE => Action::Delete,
        _ => Action::Update,
    };
    if service == Service::Identity && path.starts_with("/v3/auth/tokens") {
        return Operation { resource: ResourceType::Token, ..Operation::other(service, action) };
    }
    if service == Service::Identity && path.starts_with("/v3/auth/catalog") {
        return Operation { resource: ResourceType::Catalog, ..Operation::other(service, action) };
    }
    if service == Service::Identity && path.starts_with("/v3/endpoints") {
        return Operation { resource: ResourceType::Endpoint, ..Operation::other(service, action) };
    }
    Operation::other(service, action)
}
