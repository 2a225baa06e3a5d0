//! drgw: a disaster-recovery gateway for OpenStack.
//!
//! A transparent reverse proxy in front of Keystone, Nova, Neutron, Cinder and Glance that
//! classifies every call, applies the tenant's DR policy, mirrors metadata changes to a
//! recovery site and switches every endpoint over on failover. See README.md for the
//! architecture map.

pub mod fault;
pub mod journal;
pub mod operation;
pub mod services;
pub mod state;
