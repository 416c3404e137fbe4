//! HTTP resources of the payment service, one module per resource.

pub mod charges;
