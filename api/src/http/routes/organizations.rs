//! Organizations (provinces, ministries) and their allotments.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::app::organizations::{self as use_case, NewOrganization, WithReserved};
use crate::domain::principal::Caller;
use crate::domain::quota::Amounts;
use crate::http::error::ApiResult;
use crate::http::extract::{AppJson, AppQuery};
use crate::http::page::{PageParams, next_cursor, page};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/organizations", get(list).post(create))
        .route("/v1/organizations/{name}", get(show))
        .route(
            "/v1/organizations/{name}/allotment-changes",
            get(allotment_changes),
        )
}

/// A province or ministry running its share of the cloud.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    #[schema(example = "nghe-an")]
    pub name: String,
    pub display_name: String,
    /// The most its tenants' quotas may add up to.
    pub allotment: Amounts,
    /// What its tenants' quotas add up to now.
    pub reserved: Amounts,
    pub created_at: DateTime<Utc>,
}

page!(OrganizationPage, Organization);

fn doc(o: WithReserved) -> Organization {
    Organization {
        allotment: o.row.allotment().into(),
        reserved: o.reserved.into(),
        name: o.row.name,
        display_name: o.row.display_name,
        created_at: o.row.created_at,
    }
}

/// Lists the organizations the caller may see, by name.
#[utoipa::path(get, path = "/v1/organizations", tag = "organizations",
    params(PageParams),
    responses((status = 200, body = OrganizationPage)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(page): AppQuery<PageParams>,
) -> ApiResult<AppJson<OrganizationPage>> {
    let limit = page.limit()?;
    let cursor = page.cursor()?;
    let rows = use_case::list(&state, &caller, cursor.as_deref(), limit).await?;
    let next = next_cursor(&rows, limit, |r| r.row.name.clone());
    Ok(AppJson(OrganizationPage {
        items: rows.into_iter().map(doc).collect(),
        next_cursor: next,
    }))
}

/// Shows an organization with its allotment and what its tenants have reserved.
#[utoipa::path(get, path = "/v1/organizations/{name}", tag = "organizations",
    params(("name" = String, Path, description = "The organization's name")),
    responses((status = 200, body = Organization)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<AppJson<Organization>> {
    Ok(AppJson(doc(use_case::show(&state, &caller, &name).await?)))
}

/// Creates an organization (platform admins).
#[utoipa::path(post, path = "/v1/organizations", tag = "organizations",
    request_body = NewOrganization,
    responses((status = 201, body = Organization)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<NewOrganization>,
) -> ApiResult<(StatusCode, AppJson<Organization>)> {
    let created = use_case::create(&state, &caller, &body).await?;
    Ok((StatusCode::CREATED, AppJson(doc(created))))
}

/// One change of an organization's allotment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllotmentChange {
    pub id: i64,
    /// When the change took effect.
    pub effective_at: DateTime<Utc>,
    pub changed_by: String,
    /// The capacity request that asked for it; absent for the first allotment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_request: Option<Uuid>,
    /// The allotment before; absent for the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Amounts>,
    pub to: Amounts,
}

page!(AllotmentChangePage, AllotmentChange);

/// The organization's allotment timeline, oldest first: its first allotment and every change.
#[utoipa::path(get, path = "/v1/organizations/{name}/allotment-changes", tag = "organizations",
    params(("name" = String, Path, description = "The organization's name"), PageParams),
    responses((status = 200, body = AllotmentChangePage)))]
pub(crate) async fn allotment_changes(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    AppQuery(page): AppQuery<PageParams>,
) -> ApiResult<AppJson<AllotmentChangePage>> {
    let limit = page.limit()?;
    let after = page.cursor_as::<i64>()?;
    let rows = use_case::allotment_changes(&state, &caller, &name, after, limit).await?;
    let next = next_cursor(&rows, limit, |r| r.allotment_change_id.to_string());
    Ok(AppJson(AllotmentChangePage {
        items: rows
            .into_iter()
            .map(|r| AllotmentChange {
                id: r.allotment_change_id,
                from: r.from().map(Into::into),
                to: r.to().into(),
                effective_at: r.effective_at,
                changed_by: r.changed_by,
                capacity_request: r.capacity_request_id,
            })
            .collect(),
        next_cursor: next,
    }))
}
