//! HTTP resources of the order service.

pub mod orders;
