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
