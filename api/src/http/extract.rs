//! Request extractors whose rejections are problem documents like every other error: the
//! caller (from its bearer credential), JSON bodies (a field of the wrong type is named by its
//! path, as every other field error is) and query strings.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::app::{self, AppError};
use crate::domain::field::FieldError;
use crate::domain::principal::Caller;
use crate::http::error::ApiError;

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
        .filter(|c| !c.is_empty())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential = bearer(parts).ok_or(ApiError::Unauthenticated)?;
        app::principals::authenticate(state, credential)
            .await?
            .ok_or(ApiError::Unauthenticated)
    }
}

/// JSON request and response bodies.
pub struct AppJson<T>(pub T);

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence.starts_with("application/") && essence.ends_with("+json")
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::Rejected {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                detail: "the body must be JSON, sent with `Content-Type: application/json`".into(),
            });
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::Rejected {
                status: e.status(),
                detail: format!("the body could not be read: {}", e.body_text()),
            })?;
        parse_json(&bytes).map(Self)
    }
}

/// Parses a JSON body. Malformed JSON is a bad request; JSON of the wrong shape answers
/// `invalid-fields` naming the field by its path (`namespaces[0].quota.pods`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // The common case, a good body, at full speed; a bad one is read again with its paths
    // tracked, to name the field that is wrong.
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        // Anything after the document makes it malformed.
        Ok(v) => match de.end() {
            Ok(()) => Ok(v),
            Err(_) => Err(ApiError::bad_request("the body is not valid JSON")),
        },
        Err(e) if e.inner().is_data() => {
            Err(AppError::Invalid(vec![field_error(&e.path().to_string(), e.inner())]).into())
        }
        Err(e) if e.inner().is_eof() && bytes.iter().all(u8::is_ascii_whitespace) => Err(
            ApiError::bad_request("the body is empty; it must be a JSON document"),
        ),
        Err(_) => Err(ApiError::bad_request("the body is not valid JSON")),
    }
}

/// The field and message of a JSON data error: serde's words without the line and column, and
/// a missing field named by its own path rather than its parent's.
fn field_error(path: &str, e: &serde_json::Error) -> FieldError {
    let full = e.to_string();
    let message = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(m, _)| m)
        .to_string();
    let parent = if path == "." { "" } else { path };
    let join = |name: &str| {
        if parent.is_empty() {
            name.to_string()
        } else {
            format!("{parent}.{name}")
        }
    };
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        return FieldError::new(join(name), "is required");
    }
    let field = if parent.is_empty() {
        "body".to_string()
    } else {
        parent.to_string()
    };
    FieldError::new(field, message)
}

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query strings.
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request(format!(
        "the query string is invalid: {}",
        rejection.body_text()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        pods: i32,
        load_balancers: Option<i32>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        namespaces: Vec<Inner>,
    }

    fn fields(body: &str) -> Vec<(String, String)> {
        match parse_json::<Outer>(body.as_bytes()) {
            Err(ApiError::App(AppError::Invalid(errors))) => {
                errors.into_iter().map(|e| (e.field, e.message)).collect()
            }
            other => panic!("expected invalid fields, got {other:?}"),
        }
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named_by_its_path() {
        let f = fields(r#"{"name": "a", "namespaces": [{"pods": 1}, {"pods": "many"}]}"#);
        assert_eq!(f[0].0, "namespaces[1].pods");
        assert!(f[0].1.starts_with("invalid type: string \"many\""), "{f:?}");
        assert!(!f[0].1.contains("line"), "{f:?}");
        let f = fields(r#"{"name": 7, "namespaces": []}"#);
        assert_eq!(f[0].0, "name");
    }

    #[test]
    fn missing_and_unknown_fields_are_named_too() {
        let f = fields(r#"{"name": "a", "namespaces": [{"loadBalancers": 1}]}"#);
        assert_eq!(f[0], ("namespaces[0].pods".into(), "is required".into()));
        let f = fields(r#"{"namespaces": []}"#);
        assert_eq!(f[0].0, "name");
        let f = fields(r#"{"name": "a", "namespaces": [], "extra": 1}"#);
        assert_eq!(f[0].0, "extra");
        assert!(f[0].1.starts_with("unknown field `extra`"), "{f:?}");
        let f = fields(r#""a tenant""#);
        assert_eq!(f[0].0, "body");
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        for body in [
            "{",
            r#"{"name": "a", "namespaces": []} trailing"#,
            "",
            "nope",
        ] {
            let e = parse_json::<Outer>(body.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("{body:?} parsed"));
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{body:?}");
        }
    }
}
