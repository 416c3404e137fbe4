//! HTTP resources of the inventory service, one module per resource.

pub mod items;
pub mod reservations;
