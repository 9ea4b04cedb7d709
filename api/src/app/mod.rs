//! The use cases: one function per thing a person does (onboard an agency, approve a request,
//! issue a kubeconfig, register a person…), each in one transaction with its audit entry, and
//! the background sync loop that brings the cluster to what the database says. Handlers call
//! these; these call [`crate::db`], [`crate::cluster`] and [`crate::domain`].

pub mod announced;
pub mod audit;
pub mod billing;
pub mod budgets;
pub mod capacity;
pub mod error;
pub mod fit;
pub mod grants;
pub mod invoices;
pub mod kubeconfig;
pub mod links;
pub mod metering;
pub mod oidc;
pub mod organizations;
pub mod principals;
pub mod rate_cards;
pub mod sessions;
pub mod statement;
pub mod sync;
pub mod tenant_cache;
pub mod tenants;
pub mod token_cache;
pub mod usage;

pub use error::{AppError, AppResult};

use crate::AppState;

/// Whether the API can serve: its database answers.
pub async fn ready(state: &AppState) -> bool {
    match crate::db::ping(&state.db).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            false
        }
    }
}
