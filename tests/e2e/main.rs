//! Baton's end-to-end suite: the five real binaries (built by
//! `cargo build --workspace --bins`, which `make test` runs first) on free
//! loopback ports, each with a fresh database, driven over real HTTP the way a
//! browser, an API client and an attacker inside the network would.
//!
//! One test binary (CONTRIBUTING.md); each test starts its own stack, so
//! tests are independent and run in parallel.

mod attacks;
mod backchannel_logout;
mod browser;
mod config_help;
mod deploy_manifests;
mod dpop;
mod failures;
mod happy_path;
mod harness;
mod metrics;
mod module_cycles;
mod per_hop;
mod rbac;
mod readme_examples;
mod revocation;
mod revocation_guarantees;
mod revocation_paths;
mod rotation;
mod step_up;
mod traces;
mod zero_trust;
