//! Pure service-catalog model of drgw: which OpenStack services the gateway fronts, how
//! upstream URLs map to public ones, how a Keystone catalog is rewritten, and the failover
//! state machine.
//!
//! - [`service`]: [`ServiceKind`] and [`service_kind`], catalog types and their aliases.
//! - [`base_url`]: [`BaseUrl`], the prefix matching every rewrite shares.
//! - [`links`]: [`UrlMap`], absolute links in any JSON body and `Location` headers.
//! - [`keystone`]: [`CatalogTarget`], [`rewrite_token_response`] and friends.
//! - [`failover`]: [`FailoverStatus`] and the [`Transition`]s between its states.
//!
//! Invariants:
//! - **Pure.** The crate never does I/O, reads no clock (times are arguments) and knows
//!   nothing of tokio or hyper; everything is a function over data.
//! - **Total.** No input makes it panic: JSON bodies come from the network and persisted
//!   state from the disk. Malformed parts of a document are left as they are.
//! - **Never invents a URL.** A rewritten URL always starts with a configured public (or
//!   target) base; the only thing carried over from the input is the suffix after the
//!   matched base (path, query, fragment), never a scheme, host or port.
//! - **Unknown services untouched.** Catalog entries whose type does not map to a fronted
//!   [`ServiceKind`] (placement, object-store, ...) and strings that do not lie under a
//!   configured upstream base are left byte for byte; key order is preserved.

#![forbid(unsafe_code)]

pub mod base_url;
pub mod failover;
pub mod keystone;
pub mod links;
pub mod service;

pub use base_url::{BaseUrl, BaseUrlError};
pub use failover::{
    FailoverState, FailoverStatus, Phase, Site, SwitchMode, Transition, TransitionError,
};
pub use keystone::{
    endpoint_service_ids, rewrite_catalog, rewrite_endpoints_list, rewrite_token_response,
    CatalogMode, CatalogTarget, EndpointServices, RewriteStats,
};
pub use links::{UpstreamScan, UrlMap};
pub use service::{service_kind, ServiceKind};
