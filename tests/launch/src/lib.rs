//! Starts Baton's parts as real processes, the one launcher of the end-to-end
//! suite (`tests/e2e/harness/stack.rs`) and the bench (`bench/src/stack.rs`);
//! `deploy/local/run.sh` keeps the same start order and variables.

pub mod contract;
pub mod handoff;
pub mod process;
