//! Organizations (provinces, ministries) and their allotments.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use chrono::{DateTime, Utc};
use govcloud_kube_values::name::is_dns_label;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{PageParams, next_cursor, page};
use crate::AppState;
use crate::auth::{Caller, Role, Scope};
use crate::capacity::Totals;
use crate::db::{self, audit, organizations::OrganizationRow};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{AppJson, AppQuery};
use crate::quota::{format_bytes, format_cpu, parse_bytes, parse_cpu, parsed};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/organizations", get(list).post(create))
        .route("/v1/organizations/{name}", get(show))
}

/// Amounts of cpu, memory and storage, as Kubernetes quantities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Amounts {
    #[schema(example = "64")]
    pub cpu: String,
    #[schema(example = "256Gi")]
    pub memory: String,
    #[schema(example = "4Ti")]
    pub storage: String,
}

impl From<Totals> for Amounts {
    fn from(t: Totals) -> Self {
        let big = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
        Self {
            cpu: format_cpu(big(t.cpu_milli)),
            memory: format_bytes(big(t.memory_bytes)),
            storage: format_bytes(big(t.storage_bytes)),
        }
    }
}

impl Amounts {
    fn parse(&self, at: &str, errors: &mut Vec<FieldError>) -> Option<Totals> {
        let cpu = parsed(format!("{at}.cpu"), parse_cpu(&self.cpu), errors);
        let memory = parsed(format!("{at}.memory"), parse_bytes(&self.memory), errors);
        let storage = parsed(format!("{at}.storage"), parse_bytes(&self.storage), errors);
        Some(Totals {
            cpu_milli: cpu?.into(),
            memory_bytes: memory?.into(),
            storage_bytes: storage?.into(),
        })
    }
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewOrganization {
    /// A DNS label: lowercase letters, digits and '-', at most 63 characters.
    #[schema(example = "nghe-an")]
    pub name: String,
    #[schema(example = "Tỉnh Nghệ An")]
    pub display_name: String,
    pub allotment: Amounts,
}

fn doc(row: OrganizationRow, reserved: Option<Totals>) -> Organization {
    Organization {
        allotment: row.allotment().into(),
        reserved: reserved.unwrap_or_default().into(),
        name: row.name,
        display_name: row.display_name,
        created_at: row.created_at,
    }
}

async fn with_reserved(
    state: &AppState,
    rows: Vec<OrganizationRow>,
) -> ApiResult<Vec<Organization>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.organization_id).collect();
    let sums: HashMap<Uuid, Totals> = db::organizations::reserved(&state.db, &ids)
        .await?
        .into_iter()
        .map(|(id, c, m, s)| {
            (
                id,
                Totals {
                    cpu_milli: c.into(),
                    memory_bytes: m.into(),
                    storage_bytes: s.into(),
                },
            )
        })
        .collect();
    Ok(rows
        .into_iter()
        .map(|r| {
            let sum = sums.get(&r.organization_id).copied();
            doc(r, sum)
        })
        .collect())
}

/// Lists the organizations the caller may see, by name.
#[utoipa::path(get, path = "/v1/organizations", tag = "organizations",
    params(PageParams),
    responses((status = 200, body = OrganizationPage)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(page): AppQuery<PageParams>,
) -> ApiResult<AppJson<OrganizationPage>> {
    let limit = page.limit()?;
    let cursor = page.cursor()?;
    let rows = db::organizations::list(
        &state.db,
        caller.organization_filter(),
        cursor.as_deref(),
        limit,
    )
    .await?;
    let next = next_cursor(&rows, limit, |r| r.name.clone());
    Ok(AppJson(OrganizationPage {
        items: with_reserved(&state, rows).await?,
        next_cursor: next,
    }))
}

/// Shows an organization with its allotment and what its tenants have reserved.
#[utoipa::path(get, path = "/v1/organizations/{name}", tag = "organizations",
    params(("name" = String, Path, description = "The organization's name")),
    responses((status = 200, body = Organization)))]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<AppJson<Organization>> {
    let row = db::organizations::by_name(&state.db, &name)
        .await?
        .filter(|o| caller.sees(Scope::organization(o.organization_id)))
        .ok_or_else(|| ApiError::not_found("organization", &name))?;
    let mut docs = with_reserved(&state, vec![row]).await?;
    docs.pop()
        .map(AppJson)
        .ok_or_else(|| ApiError::Internal("organization vanished".into()))
}

pub fn validate_display_name(v: &str, errors: &mut Vec<FieldError>) {
    let len = v.trim().chars().count();
    if len == 0 || v.chars().count() > 256 {
        errors.push(FieldError::new(
            "displayName",
            "must be 1 to 256 characters and not blank",
        ));
    }
}

/// Creates an organization (platform admins).
#[utoipa::path(post, path = "/v1/organizations", tag = "organizations",
    request_body = NewOrganization,
    responses((status = 201, body = Organization)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<NewOrganization>,
) -> ApiResult<(StatusCode, AppJson<Organization>)> {
    caller.require(&[Role::PlatformAdmin], "create organizations")?;
    let mut errors = Vec::new();
    if !is_dns_label(&body.name) {
        errors.push(FieldError::new(
            "name",
            "must be a DNS label: lowercase letters, digits and '-', at most 63 characters",
        ));
    }
    validate_display_name(&body.display_name, &mut errors);
    let allotment = body.allotment.parse("allotment", &mut errors);
    let Some(allotment) = allotment.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    let mut tx = state.db.begin().await?;
    let row = db::organizations::insert(&mut *tx, &body.name, &body.display_name, allotment)
        .await
        .map_err(|e| {
            if db::is_unique_violation(&e) {
                ApiError::Conflict(format!("organization {:?} already exists", body.name))
            } else {
                e.into()
            }
        })?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &(&caller).into(),
            action: "organization.create",
            object_kind: "organization",
            object_id: row.name.clone(),
            organization_id: Some(row.organization_id),
            tenant_id: None,
            detail: json!({ "displayName": row.display_name, "allotment": body.allotment }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AppJson(doc(row, None))))
}
