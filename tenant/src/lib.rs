//! What govcloud's two binaries share, and nothing else: the `Tenant` custom resource
//! ([`crd`]), its validation beyond the schema ([`validate`]), and the names and labels both
//! sides must agree on ([`names`]), and the metering contract ([`usage`]). No client, no controller, no I/O: the API links this crate
//! without linking the operator.

pub mod crd;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod names;
pub mod usage;
pub mod validate;
