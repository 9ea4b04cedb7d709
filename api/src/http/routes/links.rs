//! Data-sharing links between agencies.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::app::links::{self as use_case, Filter, LinkReason, LinkRow, NewLinkDoc, awaiting};
use crate::domain::link::{Approval, LinkState};
use crate::domain::principal::Caller;
use crate::http::error::ApiResult;
use crate::http::extract::{AppJson, AppQuery, parse_json};
use crate::http::page::{PageParams, next_cursor, page, parse_time_key, time_key};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/links", get(list).post(create))
        .route("/v1/links/{id}", get(show).delete(close))
        .route("/v1/links/{id}/approve", post(approve))
        .route("/v1/links/{id}/reject", post(reject))
}

/// One side of a link.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkEnd {
    pub tenant: String,
    /// The consuming namespace (on the asking side only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A data-sharing link: the asking agency's namespace may connect to the providing agency's
/// namespaces on `ports`, once `state` is `approved`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub id: Uuid,
    pub from: LinkEnd,
    pub to: LinkEnd,
    pub ports: Vec<i32>,
    pub purpose: String,
    pub state: LinkState,
    /// Whether the two agencies are in different organizations (both must approve).
    pub cross_organization: bool,
    /// The approvals it still waits for, while pending.
    pub awaiting: Vec<Approval>,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_approved_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_approved_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer_approved_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer_approved_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<String>,
}

page!(LinkPage, Link);

impl From<LinkRow> for Link {
    fn from(l: LinkRow) -> Self {
        Self {
            awaiting: awaiting(&l),
            cross_organization: l.parties().cross_organization(),
            id: l.link_id,
            from: LinkEnd {
                tenant: l.from_tenant,
                namespace: Some(l.from_namespace),
            },
            to: LinkEnd {
                tenant: l.to_tenant,
                namespace: None,
            },
            ports: l.ports,
            purpose: l.purpose,
            state: l.state,
            requested_by: l.requested_by,
            requested_at: l.created_at,
            provider_approved_by: l.provider_approved_by,
            provider_approved_at: l.provider_approved_at,
            consumer_approved_by: l.consumer_approved_by,
            consumer_approved_at: l.consumer_approved_at,
            closed_by: l.closed_by,
            closed_at: l.closed_at,
            close_reason: l.close_reason,
        }
    }
}

/// Asks for a link from one of an agency's namespaces to another agency (the agency's tenant
/// admins, its organization's admins, platform admins). Nothing opens until the providing side
/// approves — and, across organizations, both organizations.
#[utoipa::path(post, path = "/v1/links", tag = "links",
    request_body = NewLinkDoc,
    responses((status = 201, body = Link)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<NewLinkDoc>,
) -> ApiResult<(StatusCode, AppJson<Link>)> {
    let row = use_case::request(&state, &caller, &body).await?;
    Ok((StatusCode::CREATED, AppJson(row.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkFilter {
    /// Only links with this agency on either side.
    pub tenant: Option<String>,
    /// Only links in this state (`approved`: who can reach whom now).
    pub state: Option<LinkState>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Lists the links the caller may see (either agency in its scope), newest first.
#[utoipa::path(get, path = "/v1/links", tag = "links",
    params(LinkFilter),
    responses((status = 200, body = LinkPage)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(f): AppQuery<LinkFilter>,
) -> ApiResult<AppJson<LinkPage>> {
    let page = PageParams {
        limit: f.limit,
        cursor: f.cursor,
    };
    let limit = page.limit()?;
    let after = page.cursor_with(parse_time_key)?;
    let rows = use_case::list(
        &state,
        &caller,
        Filter {
            tenant: f.tenant.as_deref(),
            state: f.state,
            after,
            limit,
        },
    )
    .await?;
    let next = next_cursor(&rows, limit, |l| time_key(l.created_at, l.link_id));
    Ok(AppJson(LinkPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor: next,
    }))
}

/// Shows a link.
#[utoipa::path(get, path = "/v1/links/{id}", tag = "links",
    params(("id" = String, Path, description = "The link's id")),
    responses((status = 200, body = Link)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<AppJson<Link>> {
    Ok(AppJson(use_case::show(&state, &caller, &id).await?.into()))
}

/// Approves a link for the caller's side: the providing agency (its tenant admins or its
/// organization's admins), and across organizations each organization's admins. Once every
/// approval is in, the providing agency's Tenant grants it and both ends' NetworkPolicies open.
#[utoipa::path(post, path = "/v1/links/{id}/approve", tag = "links",
    params(("id" = String, Path, description = "The link's id")),
    responses((status = 200, body = Link)))]
pub(crate) async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<AppJson<Link>> {
    Ok(AppJson(
        use_case::approve(&state, &caller, &id).await?.into(),
    ))
}

/// Rejects a pending link, with a reason (those whose approval it needs).
#[utoipa::path(post, path = "/v1/links/{id}/reject", tag = "links",
    params(("id" = String, Path, description = "The link's id")),
    request_body = LinkReason,
    responses((status = 200, body = Link)))]
pub(crate) async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<LinkReason>,
) -> ApiResult<AppJson<Link>> {
    let row = use_case::reject(&state, &caller, &id, body.reason.as_deref()).await?;
    Ok(AppJson(row.into()))
}

/// Closes a link, by either side: a pending one is cancelled, an approved one revoked and its
/// NetworkPolicies removed at once. The body (an optional reason) may be empty.
#[utoipa::path(delete, path = "/v1/links/{id}", tag = "links",
    params(("id" = String, Path, description = "The link's id")),
    request_body(content = Option<LinkReason>, description = "An optional reason"),
    responses((status = 200, body = Link)))]
pub(crate) async fn close(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<AppJson<Link>> {
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        parse_json::<LinkReason>(&body)?.reason
    };
    let row = use_case::close(&state, &caller, &id, reason.as_deref()).await?;
    Ok(AppJson(row.into()))
}
