//! Pure DR policy model and decision: which tier a tenant's resource gets, whether a call is
//! allowed, and how its request is rewritten.
//!
//! A policy file (TOML, see `examples/full.toml`) defines tiers, tenant rules (first match
//! wins, then `[default]`), per-operation allow/deny, recovery-capacity quotas and volume
//! type rewrites. [`Policy::from_toml_str`] validates it as a whole and reports every error
//! with its key path; [`Policy::decide`] turns the [`Facts`] of one request into a
//! [`Decision`] without I/O and, when the call is allowed, without allocating;
//! [`Policy::explain`] says the same in words for `drgw policy explain`.
//!
//! Architecture invariant: this crate does no I/O and knows nothing of hyper or tokio.

#![forbid(unsafe_code)]

mod decide;
mod duration;
mod error;
mod glob;
mod model;
mod parse;

pub use decide::{
    Decision, DenyKind, Facts, MatchedRule, Rewrites, Tenant, TierSource, UsageLookup, Verdict,
};
pub use duration::{format_duration, parse_duration};
pub use error::{format_errors, PolicyError, PolicyErrorKind};
pub use glob::{Glob, SERVICES};
pub use model::{
    default_tiers, MirrorMode, OnFailure, Policy, Quota, ResourceKind, Resources, Tier, MAX_TIERS,
};
