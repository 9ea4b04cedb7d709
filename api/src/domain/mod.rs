//! The API's rules, as pure code: quotas and their parsing, capacity judgement, request states,
//! principals and what their roles may see and do, API tokens, and the one builder of the
//! Tenant a database record describes. Nothing here touches the database, HTTP or the cluster
//! (no sqlx, axum or kube), so all of it is tested directly.

pub mod capacity;
pub mod field;
pub mod link;
pub mod principal;
pub mod quota;
pub mod request;
pub mod tenant;
pub mod token;
