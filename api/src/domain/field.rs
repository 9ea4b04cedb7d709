//! Field errors: what a request got wrong, named by the field's JSON path.

use serde::Serialize;
use utoipa::ToSchema;

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

/// Free text a person writes (a reason, a display name): `max` characters at most, not blank.
pub fn check_text(field: &str, value: &str, max: usize, errors: &mut Vec<FieldError>) {
    if value.trim().is_empty() || value.chars().count() > max {
        errors.push(FieldError::new(
            field,
            format!("must be 1 to {max} characters and not blank"),
        ));
    }
}

/// The most characters of a display name.
pub const DISPLAY_NAME: usize = 256;
/// The most characters of a reason given for a request or a decision.
pub const REASON: usize = 2000;
