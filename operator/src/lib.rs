//! govcloud's Kubernetes side: the Tenant controller ([`controller`]) and the objects it builds
//! ([`build`]), leader election, metrics, and the CRDs it installs. The Tenant type itself, its
//! validation and the names both binaries share live in `govcloud-tenant`.

pub mod build;
pub mod controller;
pub mod crdgen;
pub mod leader;
pub mod metering;
pub mod telemetry;
