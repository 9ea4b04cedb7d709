//! The web console: server-rendered pages in Vietnamese (English as a second language) for a
//! province's IT department, its finance office and its agencies, served at `/` beside the API.
//! Pages call the same use cases as the API with the signed-in person as the caller, so each
//! person sees and does exactly what the API would let them; what they may not see answers 404.
//!
//! - [`session`]: signing in and out, the session cookie, CSRF tokens, the language;
//! - [`ui`]: the layout, tables (each downloadable as CSV), forms and number formats;
//! - [`chart`]: SVG charts drawn on the server (readable without JavaScript);
//! - the pages, one module per subject.

pub mod chart;
mod invoices;
mod links;
mod organizations;
mod requests;
pub mod session;
mod tenants;
pub mod ui;
mod usage;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(session::home))
        .route("/sign-in", get(session::sign_in_page))
        .route("/sign-in/dev", post(session::sign_in_dev))
        .route("/sign-in/oidc", get(session::sign_in_oidc))
        .route("/sign-in/callback", get(session::callback))
        .route("/sign-out", post(session::sign_out))
        .route("/language", post(session::language))
        .route("/organizations", get(organizations::list))
        .route("/organizations/{name}", get(organizations::show))
        .route("/summary", get(invoices::summary))
        .route("/tenants/{name}", get(tenants::show))
        .route(
            "/tenants/{name}/namespaces/{namespace}",
            get(tenants::namespace),
        )
        .route("/tenants/{name}/suspend", post(tenants::suspend))
        .route("/tenants/{name}/resume", post(tenants::resume))
        .route("/tenants/{name}/kubeconfig", post(tenants::kubeconfig))
        .route("/tenants/{name}/budget", post(tenants::set_budget))
        .route("/requests", get(requests::list).post(requests::create))
        .route("/requests/{id}/approve", post(requests::approve))
        .route("/requests/{id}/reject", post(requests::reject))
        .route("/usage", get(usage::report))
        .route("/links", get(links::list).post(links::create))
        .route("/links/{id}/approve", post(links::approve))
        .route("/links/{id}/reject", post(links::reject))
        .route("/invoices", get(invoices::list))
        .route("/invoices/{id}", get(invoices::show))
        .route("/invoices/{id}/approve", post(invoices::approve))
        .route("/invoices/{id}/dispute", post(invoices::dispute))
        .route("/invoices/{id}/credit-notes", post(invoices::credit_note))
        .route("/invoices/{id}/statement.csv", get(invoices::csv))
        .route("/invoices/{id}/statement.pdf", get(invoices::pdf))
        .route("/budgets", get(invoices::budgets))
        .route("/console.css", get(ui::stylesheet))
}
