//! govcloud's Kubernetes side: the `Tenant` custom resource, and (to come) its reconciler,
//! metering and leader election (see `../shared/DESIGN.md` §2–§3).

pub mod build;
pub mod controller;
pub mod crd;
pub mod crdgen;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod leader;
pub mod names;
pub mod telemetry;
pub mod validate;
