//! The routes, one module per resource, and what they share: pagination and the fallbacks.

pub mod audit_events;
pub mod capacity_requests;
pub mod health;
pub mod kubeconfig;
pub mod organizations;
pub mod tenants;

use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::IntoParams;

use crate::AppState;
use crate::error::ApiError;

pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 200;

/// Pagination of every list: `limit` items after the opaque `cursor` of the previous page.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// How many items (1 to 200; 50 when absent).
    pub limit: Option<i64>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(l) if (1..=MAX_PAGE).contains(&l) => Ok(l),
            Some(_) => Err(ApiError::Rejected {
                status: StatusCode::BAD_REQUEST,
                detail: format!("limit must be between 1 and {MAX_PAGE}"),
            }),
        }
    }

    /// The decoded cursor.
    pub fn cursor(&self) -> Result<Option<String>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| {
                URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(bad_cursor)
            })
            .transpose()
    }

    /// The decoded cursor, parsed (an id, for lists ordered by id).
    pub fn cursor_as<T: std::str::FromStr>(&self) -> Result<Option<T>, ApiError> {
        self.cursor()?
            .map(|c| c.parse::<T>().map_err(|_| bad_cursor()))
            .transpose()
    }
}

/// A cursor this API did not give out.
pub fn bad_cursor() -> ApiError {
    ApiError::Rejected {
        status: StatusCode::BAD_REQUEST,
        detail: "cursor is not one this API gave out".into(),
    }
}

pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// The cursor of the next page: present when the page is full.
pub fn next_cursor<T>(items: &[T], limit: i64, key: impl Fn(&T) -> String) -> Option<String> {
    (i64::try_from(items.len()).unwrap_or(i64::MAX) >= limit)
        .then(|| items.last().map(|last| encode_cursor(&key(last))))
        .flatten()
}

/// Declares a page type for lists of `$item`.
macro_rules! page {
    ($name:ident, $item:ty) => {
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            pub items: Vec<$item>,
            /// Pass as `cursor` for the next page; absent on the last page.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub next_cursor: Option<String>,
        }
    };
}
pub(crate) use page;

async fn no_route(uri: Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_string())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

pub fn router(state: AppState) -> Router {
    let timeout = state.settings.request_timeout;
    let v1 = Router::new()
        .merge(organizations::router())
        .merge(tenants::router())
        .merge(capacity_requests::router())
        .merge(kubeconfig::router())
        .merge(audit_events::router())
        .route("/openapi.json", get(crate::openapi::serve))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
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
        .merge(health::router().with_state(state))
        .merge(v1)
}
