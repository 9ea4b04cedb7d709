//! The Tenant the unit tests start from: the documented example, so the example
//! stays valid and the tests start from what users are shown.

use crate::crd::Tenant;

pub const TENANT: &str = include_str!("../../docs/examples/tenant.yaml");

pub fn tenant(yaml: &str) -> Tenant {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("fixture does not parse: {e}"))
}
