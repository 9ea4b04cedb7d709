//! The one error type of the API, answered as `application/problem+json` (RFC 9457).
//!
//! Every variant has a stable `type` URI; `detail` is written for the person who sent the
//! request. Database and cluster errors are logged with their cause and answered without it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::capacity::Refusal;

const PROBLEM_BASE: &str = "https://govcloud.io/problems/";

/// A field the request got wrong, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON path of the field, as sent (`namespaces[0].quota.cpu`).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid credentials")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("no route for {0}")]
    NoRoute(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("{detail}")]
    Rejected { status: StatusCode, detail: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    OverCapacity(Refusal),
    /// A namespace name that another tenant or the platform holds; the detail never says who.
    #[error("{0}")]
    NamespaceTaken(String),
    #[error("tenant {0} is being offboarded: it takes no more changes")]
    Offboarding(String),
    #[error(
        "namespace {0} is not ready yet: its deployer ServiceAccount does not exist; try again once the tenant is Ready"
    )]
    NamespaceNotReady(String),
    #[error("the cluster could not be reached: {0}")]
    ClusterUnavailable(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Whether PostgreSQL refused text it cannot store (a NUL character): the caller's fault.
fn is_unstorable_text(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("22021" | "22P05")))
}

impl ApiError {
    pub fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            name: name.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound { .. } | Self::NoRoute(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Rejected { status, .. } => *status,
            Self::Conflict(_)
            | Self::OverCapacity(_)
            | Self::NamespaceNotReady(_)
            | Self::NamespaceTaken(_)
            | Self::Offboarding(_) => StatusCode::CONFLICT,
            Self::ClusterUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(e) if is_unstorable_text(e) => StatusCode::BAD_REQUEST,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound { .. } | Self::NoRoute(_) => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Invalid(_) => "invalid-fields",
            Self::Rejected { .. } => "bad-request",
            Self::Conflict(_) => "conflict",
            Self::NamespaceNotReady(_) => "namespace-not-ready",
            Self::NamespaceTaken(_) => "namespace-taken",
            Self::Offboarding(_) => "tenant-offboarding",
            Self::OverCapacity(r) => r.limit.slug(),
            Self::ClusterUnavailable(_) => "cluster-unavailable",
            Self::Database(e) if is_unstorable_text(e) => "bad-request",
            Self::Database(_) | Self::Internal(_) => "internal",
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            Self::Database(e) if is_unstorable_text(e) => {
                "text in the request contains a character that cannot be stored (NUL)".to_string()
            }
            // Internals stay in the log.
            Self::Database(_) | Self::Internal(_) => {
                "the server failed to handle the request; it has been logged".to_string()
            }
            Self::ClusterUnavailable(_) => {
                "the Kubernetes cluster could not be reached; try again shortly".to_string()
            }
            other => other.to_string(),
        };
        let (errors, refusal) = match self {
            Self::Invalid(e) => (e.clone(), None),
            Self::OverCapacity(r) => (Vec::new(), Some(r.clone())),
            _ => (Vec::new(), None),
        };
        Problem {
            type_: format!("{PROBLEM_BASE}{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            errors,
            resource: refusal.as_ref().map(|r| r.resource.to_string()),
            requested: refusal.as_ref().map(|r| r.requested.clone()),
            limit: refusal.as_ref().map(|r| r.limit_amount.clone()),
            over_by: refusal.as_ref().map(|r| r.over_by.clone()),
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
