//! Capacity requests: an agency asks for a namespace's quota to change; its organization's
//! IT department approves or rejects. See [`crate::domain::request`] for the states.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::app::capacity::Subject;
use crate::app::capacity::{self as use_case, Decision, Filter, NewCapacityRequest, RequestRow};
use crate::domain::principal::Caller;
use crate::domain::quota::{Amounts, QuotaPatchDoc};
use crate::domain::request::RequestState;
use crate::http::error::ApiResult;
use crate::http::extract::{AppJson, AppQuery, parse_json};
use crate::http::page::{PageParams, next_cursor, page, parse_time_key, time_key};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/capacity-requests", get(list).post(create))
        .route("/v1/capacity-requests/{id}", get(show))
        .route("/v1/capacity-requests/{id}/approve", post(approve))
        .route("/v1/capacity-requests/{id}/reject", post(reject))
        .route("/v1/capacity-requests/{id}/cancel", post(cancel))
}

/// What a capacity request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RequestKind {
    /// One namespace's quota: the organization's admins decide.
    Namespace,
    /// An organization's allotment: the platform's operator decides.
    Allotment,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapacityRequest {
    pub id: Uuid,
    pub kind: RequestKind,
    pub organization: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// For a namespace: the quota asked for (only the resources named change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaPatchDoc>,
    /// For an allotment: the allotment asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allotment: Option<Amounts>,
    pub reason: String,
    pub effective_from: DateTime<Utc>,
    pub state: RequestState,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    /// Why it was rejected or cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_reason: Option<String>,
    /// When the cluster got the new quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<DateTime<Utc>>,
}

page!(CapacityRequestPage, CapacityRequest);

impl From<RequestRow> for CapacityRequest {
    fn from(r: RequestRow) -> Self {
        let (kind, quota, allotment) = match r.subject() {
            Subject::Namespace { .. } => (RequestKind::Namespace, Some(r.patch().into()), None),
            Subject::Allotment(t) => (RequestKind::Allotment, None, Some(t.into())),
        };
        Self {
            id: r.capacity_request_id,
            kind,
            quota,
            allotment,
            organization: r.organization,
            tenant: r.tenant,
            namespace: r.namespace,
            reason: r.reason,
            effective_from: r.effective_from,
            state: r.state,
            requested_by: r.requested_by,
            requested_at: r.created_at,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
            decision_reason: r.decision_reason,
            applied_at: r.applied_at,
        }
    }
}

/// Asks for a namespace's quota to change. Tenant admins for their tenant; organization and
/// platform admins on an agency's behalf.
#[utoipa::path(post, path = "/v1/capacity-requests", tag = "capacity-requests",
    request_body = NewCapacityRequest,
    responses((status = 201, body = CapacityRequest)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<NewCapacityRequest>,
) -> ApiResult<(StatusCode, AppJson<CapacityRequest>)> {
    let row = use_case::create(&state, &caller, &body).await?;
    Ok((StatusCode::CREATED, AppJson(row.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestFilter {
    /// Only this tenant's requests.
    pub tenant: Option<String>,
    /// Only requests in this state.
    pub state: Option<RequestState>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Lists the requests the caller may see, newest first.
#[utoipa::path(get, path = "/v1/capacity-requests", tag = "capacity-requests",
    params(RequestFilter),
    responses((status = 200, body = CapacityRequestPage)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(f): AppQuery<RequestFilter>,
) -> ApiResult<AppJson<CapacityRequestPage>> {
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
    let next = next_cursor(&rows, limit, |r| {
        time_key(r.created_at, r.capacity_request_id)
    });
    Ok(AppJson(CapacityRequestPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor: next,
    }))
}

/// Shows one request.
#[utoipa::path(get, path = "/v1/capacity-requests/{id}", tag = "capacity-requests",
    params(("id" = String, Path, description = "The request's id")),
    responses((status = 200, body = CapacityRequest)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<AppJson<CapacityRequest>> {
    Ok(AppJson(use_case::show(&state, &caller, &id).await?.into()))
}

/// Approves a request (the tenant's organization admins, platform admins). A change due now
/// is written to the quota and the timeline at once and applied to the cluster; a change for
/// a later date waits for it. Either way the answer is `approved-pending` until the cluster
/// has the new quota, then `approved`. Refused with 409 when the organization's allotment or
/// the cluster's capacity would be exceeded.
#[utoipa::path(post, path = "/v1/capacity-requests/{id}/approve", tag = "capacity-requests",
    params(("id" = String, Path, description = "The request's id")),
    responses((status = 200, body = CapacityRequest)))]
pub(crate) async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<AppJson<CapacityRequest>> {
    Ok(AppJson(
        use_case::approve(&state, &caller, &id).await?.into(),
    ))
}

/// Rejects a pending request, with a reason (the tenant's organization admins, platform admins).
#[utoipa::path(post, path = "/v1/capacity-requests/{id}/reject", tag = "capacity-requests",
    params(("id" = String, Path, description = "The request's id")),
    request_body = Decision,
    responses((status = 200, body = CapacityRequest)))]
pub(crate) async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<Decision>,
) -> ApiResult<AppJson<CapacityRequest>> {
    let row = use_case::close(
        &state,
        &caller,
        &id,
        RequestState::Rejected,
        body.reason.as_deref(),
    )
    .await?;
    Ok(AppJson(row.into()))
}

/// Withdraws a pending request (the tenant's admins, its organization admins, platform admins).
#[utoipa::path(post, path = "/v1/capacity-requests/{id}/cancel", tag = "capacity-requests",
    params(("id" = String, Path, description = "The request's id")),
    request_body(content = Option<Decision>, description = "An optional reason"),
    responses((status = 200, body = CapacityRequest)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<AppJson<CapacityRequest>> {
    // The body is optional here: an empty one withdraws without a reason.
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        parse_json::<Decision>(&body)?.reason
    };
    let row = use_case::close(
        &state,
        &caller,
        &id,
        RequestState::Cancelled,
        reason.as_deref(),
    )
    .await?;
    Ok(AppJson(row.into()))
}
