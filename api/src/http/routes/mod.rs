//! The routes, one module per resource.

pub mod audit_events;
pub mod budgets;
pub mod capacity_requests;
pub mod health;
pub mod invoices;
pub mod kubeconfig;
pub mod links;
pub mod organizations;
pub mod principals;
pub mod rate_cards;
pub mod tenants;
pub mod usage;
