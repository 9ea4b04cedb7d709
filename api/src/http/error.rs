//! Errors as HTTP answers: `application/problem+json` (RFC 9457).
//!
//! Every kind has a stable `type` URI; `detail` is written for the person who sent the
//! request. Database and cluster errors are logged with their cause and answered without it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppError;
use crate::domain::field::FieldError;

const PROBLEM_BASE: &str = "https://govcloud.io/problems/";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid credentials")]
    Unauthenticated,
    #[error("no route for {0}")]
    NoRoute(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request itself is malformed (not JSON, a bad query string or cursor).
    #[error("{detail}")]
    Rejected { status: StatusCode, detail: String },
    #[error(transparent)]
    App(#[from] AppError),
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::Rejected {
            status: StatusCode::BAD_REQUEST,
            detail: detail.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::NoRoute(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Rejected { status, .. } => *status,
            Self::App(e) => match e {
                AppError::Forbidden(_) => StatusCode::FORBIDDEN,
                AppError::NotFound { .. } => StatusCode::NOT_FOUND,
                AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                AppError::Conflict(_)
                | AppError::OverCapacity(_)
                | AppError::NamespaceNotReady(_)
                | AppError::NamespaceTaken(_)
                | AppError::Offboarding(_) => StatusCode::CONFLICT,
                AppError::ClusterUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                AppError::UnstorableText => StatusCode::BAD_REQUEST,
                AppError::Database(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::NoRoute(_) => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Rejected { .. } => "bad-request",
            Self::App(e) => match e {
                AppError::Forbidden(_) => "forbidden",
                AppError::NotFound { .. } => "not-found",
                AppError::Invalid(_) => "invalid-fields",
                AppError::Conflict(_) => "conflict",
                AppError::NamespaceNotReady(_) => "namespace-not-ready",
                AppError::NamespaceTaken(_) => "namespace-taken",
                AppError::Offboarding(_) => "tenant-offboarding",
                AppError::OverCapacity(r) => r.limit.slug(),
                AppError::ClusterUnavailable(_) => "cluster-unavailable",
                AppError::UnstorableText => "bad-request",
                AppError::Database(_) | AppError::Internal(_) => "internal",
            },
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            // Internals stay in the log.
            Self::App(AppError::Database(_) | AppError::Internal(_)) => {
                "the server failed to handle the request; it has been logged".to_string()
            }
            Self::App(AppError::ClusterUnavailable(_)) => {
                "the Kubernetes cluster could not be reached; try again shortly".to_string()
            }
            other => other.to_string(),
        };
        let (errors, refusal) = match self {
            Self::App(AppError::Invalid(e)) => (e.clone(), None),
            Self::App(AppError::OverCapacity(r)) => (Vec::new(), Some(r)),
            _ => (Vec::new(), None),
        };
        Problem {
            type_: format!("{PROBLEM_BASE}{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            errors,
            resource: refusal.map(|r| r.resource.to_string()),
            requested: refusal.map(|r| r.requested.clone()),
            limit: refusal.map(|r| r.limit_amount.clone()),
            over_by: refusal.map(|r| r.over_by.clone()),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// A stable URI naming the kind of problem.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The fields at fault, for `invalid-fields`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For a refused capacity change: the resource (`cpu`, `memory`, `storage`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// For a refused capacity change: the total the change would reach.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    /// For a refused capacity change: the most that is allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// For a refused capacity change: by how much the change goes past the limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub over_by: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(self, Self::Unauthenticated) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
