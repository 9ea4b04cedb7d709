//! Organizations (provinces, ministries): registered by platform admins, each with the
//! allotment its agencies' quotas may add up to.

use std::collections::HashMap;

use govcloud_kube_values::name::is_dns_label;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::app::{AppError, AppResult};
use crate::db::{self, audit};
use crate::domain::capacity::Totals;
use crate::domain::field::{DISPLAY_NAME, FieldError, check_text};
use crate::domain::principal::{Caller, Role, Scope};
use crate::domain::quota::Amounts;

pub use crate::db::organizations::{AllotmentChangeRow, OrganizationRow};

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

/// An organization with what its agencies' quotas add up to now.
pub struct WithReserved {
    pub row: OrganizationRow,
    pub reserved: Totals,
}

async fn with_reserved(
    state: &AppState,
    rows: Vec<OrganizationRow>,
) -> AppResult<Vec<WithReserved>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.organization_id).collect();
    let sums: HashMap<Uuid, Totals> = db::organizations::reserved(&state.db, &ids)
        .await?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|row| WithReserved {
            reserved: sums.get(&row.organization_id).copied().unwrap_or_default(),
            row,
        })
        .collect())
}

/// A page of the organizations the caller may see, by name.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<WithReserved>> {
    let rows =
        db::organizations::list(&state.db, caller.organization_filter(), after, limit).await?;
    with_reserved(state, rows).await
}

/// An organization the caller may see, or not found.
pub async fn visible(state: &AppState, caller: &Caller, name: &str) -> AppResult<OrganizationRow> {
    db::organizations::by_name(&state.db, name)
        .await?
        .filter(|o| caller.sees(Scope::organization(o.organization_id)))
        .ok_or_else(|| AppError::not_found("organization", name))
}

pub async fn show(state: &AppState, caller: &Caller, name: &str) -> AppResult<WithReserved> {
    let row = visible(state, caller, name).await?;
    with_reserved(state, vec![row])
        .await?
        .pop()
        .ok_or_else(|| AppError::Internal("organization vanished".into()))
}

/// Registers an organization (platform admins).
pub async fn create(
    state: &AppState,
    caller: &Caller,
    body: &NewOrganization,
) -> AppResult<WithReserved> {
    caller.require(&[Role::PlatformAdmin], "create organizations")?;
    let mut errors = Vec::new();
    if !is_dns_label(&body.name) {
        errors.push(FieldError::new(
            "name",
            "must be a DNS label: lowercase letters, digits and '-', at most 63 characters",
        ));
    }
    check_text("displayName", &body.display_name, DISPLAY_NAME, &mut errors);
    let allotment = body.allotment.parse("allotment", &mut errors);
    let allotment = allotment.and_then(db::organizations::Allotment::of);
    let Some(allotment) = allotment.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let mut tx = state.db.begin().await?;
    let row = db::organizations::insert(&mut *tx, &body.name, &body.display_name, &allotment)
        .await
        .map_err(|e| {
            if db::is_unique_violation(&e) {
                AppError::Conflict(format!("organization {:?} already exists", body.name))
            } else {
                e.into()
            }
        })?;
    db::organizations::insert_allotment_change(
        &mut *tx,
        row.organization_id,
        row.created_at,
        &caller.name,
        None,
        None,
        &allotment,
    )
    .await?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
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
    Ok(WithReserved {
        row,
        reserved: Totals::default(),
    })
}

/// A page of the organization's allotment timeline, oldest first: where it started and every
/// approved change, which billing reads.
pub async fn allotment_changes(
    state: &AppState,
    caller: &Caller,
    name: &str,
    after: Option<i64>,
    limit: i64,
) -> AppResult<Vec<AllotmentChangeRow>> {
    let org = visible(state, caller, name).await?;
    Ok(db::organizations::allotment_changes(&state.db, org.organization_id, after, limit).await?)
}
