//! What a use case can answer besides success, in words for the person who asked.

use crate::db;
use crate::domain::capacity::Refusal;
use crate::domain::field::FieldError;
use crate::domain::principal::Forbidden;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The caller may see the object but its role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such object, or one the caller may not see.
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    /// The object's state forbids this.
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
    /// Text the database cannot store (a NUL character).
    #[error("text in the request contains a character that cannot be stored (NUL)")]
    UnstorableText,
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            name: name.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }

    /// Refuses with every field error collected, if any.
    pub fn check(errors: Vec<FieldError>) -> AppResult<()> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Self::Invalid(errors))
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        if db::is_unstorable_text(&e) {
            Self::UnstorableText
        } else {
            Self::Database(e)
        }
    }
}

impl From<Forbidden> for AppError {
    fn from(e: Forbidden) -> Self {
        Self::Forbidden(e.0)
    }
}

pub type AppResult<T> = Result<T, AppError>;
