//! The routes, one module per resource.

pub mod audit_events;
pub mod capacity_requests;
pub mod health;
pub mod kubeconfig;
pub mod links;
pub mod organizations;
pub mod principals;
pub mod tenants;
pub mod usage;
