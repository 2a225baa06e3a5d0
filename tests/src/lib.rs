//! drgw test bed: the OpenStack simulator, the real-site harness and shared test helpers.

pub mod cli;
pub mod contract;
pub mod fault_bytes;
pub mod http1;
pub mod mirror_harness;
pub mod mirror_scenarios;
pub mod panics;
pub mod realsite;
pub mod sim;
pub mod tempest;
pub mod testbed;
