//! The HTTP face of the API: routes (one module per resource), the extractors, errors as
//! problem documents, pagination and the OpenAPI document. Handlers parse, call one use case
//! in [`crate::app`], and shape its answer.

pub mod error;
pub mod extract;
pub mod openapi;
pub mod page;
pub mod routes;

use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::routing::get;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::http::error::ApiError;

async fn no_route(uri: Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_string())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// After a request that may have written (anything but GET and HEAD), and before its response
/// leaves, this replica forgets the tenants it remembers: whoever changed a tenant reads the
/// change back at once ([`crate::app::tenant_cache`]).
async fn forget_tenants_after_writes(
    axum::extract::State(tenants): axum::extract::State<
        std::sync::Arc<crate::app::tenant_cache::TenantCache>,
    >,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let reads_only = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let response = next.run(req).await;
    if !reads_only {
        tenants.clear();
    }
    response
}

/// The API's router.
pub fn router(state: AppState) -> Router {
    let timeout = state.settings.request_timeout;
    let v1 = Router::new()
        .merge(routes::organizations::router())
        .merge(routes::tenants::router())
        .merge(routes::capacity_requests::router())
        .merge(routes::kubeconfig::router())
        .merge(routes::links::router())
        .merge(routes::principals::router())
        .merge(routes::audit_events::router())
        .merge(routes::usage::router())
        .merge(routes::rate_cards::router())
        .merge(routes::invoices::router())
        .merge(routes::budgets::router())
        .route("/openapi.json", get(openapi::serve))
        .merge(crate::console::router())
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.tenants.clone(),
            forget_tenants_after_writes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .with_state(state.clone());
    Router::new()
        .merge(routes::health::router().with_state(state))
        .merge(v1)
}
