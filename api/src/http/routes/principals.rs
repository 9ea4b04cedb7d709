//! People and automation accounts, and their API tokens.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::app::principals::{
    self as use_case, IssuedToken, NewPrincipalDoc, PrincipalRow, RotateToken,
};
use crate::domain::principal::{Caller, Role};
use crate::http::error::ApiResult;
use crate::http::extract::{AppJson, AppQuery, parse_json};
use crate::http::page::{PageParams, next_cursor, page};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/principals", get(list).post(create))
        .route("/v1/principals/{id}", get(show).delete(remove))
        .route("/v1/principals/{id}/token", post(rotate))
}

/// A person or automation account, with one role.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    /// The organization its role is scoped to (for a tenant admin: its tenant's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// The tenant of a tenant admin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The OIDC subject whose ID tokens are accepted for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_subject: Option<String>,
    /// How many of its API tokens work (neither revoked nor expired).
    pub active_tokens: i64,
    pub created_at: DateTime<Utc>,
    /// Who registered it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl From<PrincipalRow> for Principal {
    fn from(p: PrincipalRow) -> Self {
        Self {
            id: p.principal_id,
            name: p.name,
            role: p.role,
            organization: p.organization,
            tenant: p.tenant,
            oidc_subject: p.oidc_subject,
            active_tokens: p.active_tokens,
            created_at: p.created_at,
            created_by: p.created_by,
        }
    }
}

page!(PrincipalPage, Principal);

/// A principal and the API token just issued for it: the only time the token is shown.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalWithToken {
    pub principal: Principal,
    /// The API token (`gct_…`); absent when none was asked for. Store it now: it is never
    /// shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// When the token stops working; absent when it does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<DateTime<Utc>>,
}

fn with_token(row: PrincipalRow, token: Option<IssuedToken>) -> PrincipalWithToken {
    PrincipalWithToken {
        principal: row.into(),
        token_expires_at: token.as_ref().and_then(|t| t.expires_at),
        token: token.map(|t| t.token),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PrincipalFilter {
    /// Only principals with this role.
    pub role: Option<Role>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Lists the principals the caller may see, by name: platform admins and auditors everyone,
/// organization admins their organization's people (its agencies' admins included).
#[utoipa::path(get, path = "/v1/principals", tag = "principals",
    params(PrincipalFilter),
    responses((status = 200, body = PrincipalPage)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(f): AppQuery<PrincipalFilter>,
) -> ApiResult<AppJson<PrincipalPage>> {
    let page = PageParams {
        limit: f.limit,
        cursor: f.cursor,
    };
    let limit = page.limit()?;
    let cursor = page.cursor()?;
    let rows = use_case::list(&state, &caller, f.role, cursor.as_deref(), limit).await?;
    let next = next_cursor(&rows, limit, |p| p.name.clone());
    Ok(AppJson(PrincipalPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor: next,
    }))
}

/// Shows a principal.
#[utoipa::path(get, path = "/v1/principals/{id}", tag = "principals",
    params(("id" = String, Path, description = "The principal's id")),
    responses((status = 200, body = Principal)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<AppJson<Principal>> {
    Ok(AppJson(use_case::show(&state, &caller, &id).await?.into()))
}

/// Registers a person or automation account (platform admins: any role; organization admins:
/// org-admin, finance and tenant-admin principals of their own organization), with an API
/// token shown once in the answer.
#[utoipa::path(post, path = "/v1/principals", tag = "principals",
    request_body = NewPrincipalDoc,
    responses((status = 201, body = PrincipalWithToken)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<NewPrincipalDoc>,
) -> ApiResult<(StatusCode, AppJson<PrincipalWithToken>)> {
    let (row, token) = use_case::create(&state, &caller, &body).await?;
    Ok((StatusCode::CREATED, AppJson(with_token(row, token))))
}

/// Removes a principal: its API tokens stop working on their next request and its OIDC
/// identity is no longer accepted. Its name stays taken, so the audit log names one person.
#[utoipa::path(delete, path = "/v1/principals/{id}", tag = "principals",
    params(("id" = String, Path, description = "The principal's id")),
    responses((status = 204, description = "Removed")))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    use_case::delete(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotates a principal's API token: a new one is issued (shown once) and every other stops
/// working at once. For the principal itself, and for whoever manages it.
#[utoipa::path(post, path = "/v1/principals/{id}/token", tag = "principals",
    params(("id" = String, Path, description = "The principal's id")),
    request_body(content = Option<RotateToken>, description = "An optional expiry"),
    responses((status = 200, body = PrincipalWithToken)))]
pub(crate) async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<AppJson<PrincipalWithToken>> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        RotateToken::default()
    } else {
        parse_json::<RotateToken>(&body)?
    };
    let (row, token) = use_case::rotate_token(&state, &caller, &id, &body).await?;
    Ok(AppJson(with_token(row, Some(token))))
}
