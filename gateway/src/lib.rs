//! drgw: a disaster-recovery gateway for OpenStack.
//!
//! A transparent reverse proxy in front of Keystone, Nova, Neutron, Cinder and Glance that
//! classifies every call, applies the tenant's DR policy, mirrors metadata changes to a
//! recovery site and switches every endpoint over on failover. See README.md for the
//! architecture map.

pub mod access_log;
pub mod admin;
pub mod allocator;
pub mod body;
pub mod cli;
pub mod config;
pub mod failover;
pub mod fastlane;
pub mod fault;
pub mod gateway;
pub mod hyper_conn;
pub mod journal;
pub mod metrics;
pub mod mirror;
pub mod mutation;
pub mod operation;
pub mod policy;
pub mod rewrite;
pub mod sandbox;
pub mod send_timeout;
pub mod server;
pub mod services;
pub mod stack;
pub mod stall;
pub mod state;
pub mod token;
pub mod upstream;
pub mod worker;
