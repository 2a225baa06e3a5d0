//! The facts of one successful, protected change, as the policy stage and the mirror engine
//! see them. Built by the request path (`stack.rs`) after the upstream answered with a
//! success; never contains a token or a password in clear.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::Value;

use crate::operation::Operation;
use crate::token::TokenContext;

/// How the decided tier is mirrored (a copy of the policy's mode, so that the mirror engine
/// does not depend on the policy crate's lifetimes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorMode {
    /// Gold: the tenant's call returns after the recovery site applied the change.
    Sync,
    /// Silver: applied in batches, each ending in a checkpoint, every `interval`.
    Periodic { interval: std::time::Duration },
    /// Bronze: applied in the background, in order; `max_lag` is the alert threshold.
    Async { max_lag: std::time::Duration },
    /// Not mirrored.
    Off,
}

/// What a Gold (sync) tier does when the recovery apply fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoldFailure {
    /// Compensate the primary change and answer 503.
    Reject,
    /// Answer success with `X-DR-Mirror: degraded`, keep the record pending.
    Degrade,
}

/// The tier decided for a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierChoice {
    pub name: String,
    pub mode: MirrorMode,
    pub on_failure: GoldFailure,
}

/// One successful mutating call.
#[derive(Debug, Clone)]
pub struct Mutation {
    /// The site the change was made at (the active site): the primary, or the recovery site
    /// while failed over, whose changes are journaled back toward the primary.
    pub site: crate::config::SiteName,
    pub op: Operation,
    /// Who made it.
    pub tenant: Arc<TokenContext>,
    pub tier: TierChoice,
    pub method: Method,
    /// Path relative to the service's base URL, e.g. `/v2.1/flavors`, `/v3/<project>/types`.
    pub path: String,
    pub query: Option<String>,
    /// The microversion header value the client sent, if any.
    pub microversion: Option<String>,
    /// The JSON body as sent upstream (after the policy's rewrites), if it was JSON.
    pub request_body: Option<Value>,
    pub status: StatusCode,
    /// The JSON body the upstream answered, if it was JSON.
    pub response_body: Option<Value>,
    /// The `Location` header of the upstream response (upstream URL, not rewritten).
    pub location: Option<String>,
}

impl Mutation {
    /// A Neutron bulk create (`{"networks": [...]}` in, the created list in the same order
    /// out) as one single create per resource (`{"network": {...}}` both ways), so that each
    /// is journaled, mirrored and mapped like a create of its own. `None` when the request
    /// or the answer is not such a list, or their lengths differ.
    pub fn split_bulk(&self, list_key: &str, item_key: &str) -> Option<Vec<Mutation>> {
        let asked = self.request_body.as_ref()?.get(list_key)?.as_array()?;
        let made = self.response_body.as_ref()?.get(list_key)?.as_array()?;
        if asked.len() != made.len() {
            return None;
        }
        Some(
            asked
                .iter()
                .zip(made)
                .map(|(req, resp)| Mutation {
                    request_body: Some(serde_json::json!({ item_key: req })),
                    response_body: Some(serde_json::json!({ item_key: resp })),
                    location: None,
                    ..self.clone()
                })
                .collect(),
        )
    }
}

/// What the mirror engine did with a mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorOutcome {
    /// Not a mirrored resource, or tier `none`.
    NotMirrored,
    /// Journaled (durable); applied later (Silver, Bronze).
    Queued,
    /// Applied at the recovery site before returning (Gold).
    Applied,
    /// Gold `degrade`: journaled, the apply failed or timed out; applies later.
    Degraded { reason: String },
    /// Gold `reject`: the apply failed and the primary change was compensated; the tenant
    /// gets a 503 with this reason.
    Rejected { reason: String },
    /// The journal could not make the record durable: the tenant must not be told success.
    Failed { reason: String },
}

impl MirrorOutcome {
    /// The `X-DR-Mirror` header value, if any.
    pub fn header_value(&self) -> Option<&'static str> {
        match self {
            MirrorOutcome::NotMirrored
            | MirrorOutcome::Rejected { .. }
            | MirrorOutcome::Failed { .. } => None,
            MirrorOutcome::Queued => Some("queued"),
            MirrorOutcome::Applied => Some("applied"),
            MirrorOutcome::Degraded { .. } => Some("degraded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::operation::Service;

    fn bulk(request: Value, response: Value) -> Mutation {
        Mutation {
            site: crate::config::SiteName::Primary,
            op: crate::services::classify(
                Service::Network,
                &Method::POST,
                "/v2.0/networks",
                None,
                None,
            ),
            tenant: Arc::new(TokenContext {
                user_id: "u".into(),
                user_name: "demo".into(),
                user_domain_id: "default".into(),
                project_id: Some("p".into()),
                project_name: None,
                project_domain_id: None,
                domain_id: None,
                roles: Vec::new(),
                expires_at: std::time::SystemTime::UNIX_EPOCH,
                site: crate::config::SiteName::Primary,
            }),
            tier: TierChoice {
                name: "bronze".into(),
                mode: MirrorMode::Off,
                on_failure: GoldFailure::Degrade,
            },
            method: Method::POST,
            path: "/v2.0/networks".into(),
            query: None,
            microversion: None,
            request_body: Some(request),
            status: StatusCode::CREATED,
            response_body: Some(response),
            location: None,
        }
    }

    #[test]
    fn a_bulk_create_splits_into_one_create_per_resource_in_order() {
        let m = bulk(
            json!({"networks": [{"name": "a"}, {"name": "b"}]}),
            json!({"networks": [{"id": "1", "name": "a"}, {"id": "2", "name": "b"}]}),
        );
        let parts = m.split_bulk("networks", "network").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0].request_body,
            Some(json!({"network": {"name": "a"}}))
        );
        assert_eq!(
            parts[1].response_body,
            Some(json!({"network": {"id": "2", "name": "b"}}))
        );
        assert_eq!(parts[1].path, "/v2.0/networks");
    }

    #[test]
    fn a_single_create_or_a_mismatched_answer_is_not_split() {
        let single = bulk(
            json!({"network": {"name": "a"}}),
            json!({"network": {"id": "1"}}),
        );
        assert!(single.split_bulk("networks", "network").is_none());
        let short = bulk(
            json!({"networks": [{"name": "a"}, {"name": "b"}]}),
            json!({"networks": [{"id": "1"}]}),
        );
        assert!(short.split_bulk("networks", "network").is_none());
    }
}
