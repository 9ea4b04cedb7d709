//! Capacity requests: an agency asks for a namespace's quota to change; its organization's
//! IT department approves (the quota is applied, the timeline records it) or rejects. See
//! [`crate::domain::request`] for the states.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::app::fit::{Change, judge};
use crate::app::sync::{Apply, apply_tenant, write_quota};
use crate::app::tenants::{ensure_active, visible_with_namespaces};
use crate::app::{AppError, AppResult};
use crate::db::capacity_requests::{ListFilter, NewRequest};
use crate::db::{self, audit};
use crate::domain::capacity::Scheduled;
use crate::domain::field::{FieldError, REASON, check_text};
use crate::domain::principal::{Caller, Role, Scope};
use crate::domain::quota::{QuotaDoc, QuotaPatchDoc};
use crate::domain::request::{RequestState, check_effective_from};

pub use crate::db::capacity_requests::RequestRow;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewCapacityRequest {
    #[schema(example = "nghean-stttt")]
    pub tenant: String,
    /// The namespace's short name, as in the tenant's spec.
    #[schema(example = "prod")]
    pub namespace: String,
    /// The quota wanted: only the resources named change.
    pub quota: QuotaPatchDoc,
    #[schema(example = "the land registry moves to the cloud in January")]
    pub reason: String,
    /// When the change should take effect (now when absent); at most 2 years ahead.
    pub effective_from: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why: required to reject, optional to cancel.
    pub reason: Option<String>,
}

/// A request the caller may see, or not found.
async fn visible_request(
    db: impl sqlx::PgExecutor<'_>,
    caller: &Caller,
    id: &str,
    lock: bool,
) -> AppResult<RequestRow> {
    let uuid = id
        .parse::<Uuid>()
        .map_err(|_| AppError::not_found("capacity request", id))?;
    let row = if lock {
        db::capacity_requests::lock(db, uuid).await?
    } else {
        db::capacity_requests::get(db, uuid).await?
    };
    row.filter(|r| caller.sees(Scope::tenant(r.organization_id, r.tenant_id)))
        .ok_or_else(|| AppError::not_found("capacity request", id))
}

async fn reread(db: impl sqlx::PgExecutor<'_>, id: Uuid) -> AppResult<RequestRow> {
    db::capacity_requests::get(db, id)
        .await?
        .ok_or_else(|| AppError::Internal("request vanished".into()))
}

/// Asks for a namespace's quota to change. Tenant admins for their tenant; organization and
/// platform admins on an agency's behalf.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    body: &NewCapacityRequest,
) -> AppResult<RequestRow> {
    caller.require(
        &[Role::PlatformAdmin, Role::OrgAdmin, Role::TenantAdmin],
        "request capacity",
    )?;
    let (tenant, namespaces) = visible_with_namespaces(state, caller, &body.tenant).await?;
    ensure_active(&tenant)?;
    let mut errors = Vec::new();
    if !namespaces.iter().any(|n| n.name == body.namespace) {
        errors.push(FieldError::new(
            "namespace",
            format!(
                "tenant {} has no namespace {:?}",
                tenant.name, body.namespace
            ),
        ));
    }
    let patch = body.quota.parse("quota", &mut errors);
    check_text("reason", &body.reason, REASON, &mut errors);
    let now = Utc::now();
    let effective_from = body.effective_from.unwrap_or(now);
    if let Err(m) = check_effective_from(effective_from, now) {
        errors.push(FieldError::new("effectiveFrom", m));
    }
    let Some(patch) = patch.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let mut tx = state.db.begin().await?;
    let id = db::capacity_requests::insert(
        &mut *tx,
        NewRequest {
            tenant_id: tenant.tenant_id,
            namespace: &body.namespace,
            patch,
            reason: &body.reason,
            effective_from,
            requested_by: &caller.name,
        },
    )
    .await?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: "capacity_request.create",
            object_kind: "capacity_request",
            object_id: id.to_string(),
            organization_id: Some(tenant.organization_id),
            tenant_id: Some(tenant.tenant_id),
            detail: json!({
                "tenant": tenant.name, "namespace": body.namespace, "quota": body.quota,
                "reason": body.reason, "effectiveFrom": effective_from,
            }),
        },
    )
    .await?;
    let row = reread(&mut *tx, id).await?;
    tx.commit().await?;
    Ok(row)
}

/// What a list of requests is narrowed to.
pub struct Filter<'a> {
    pub tenant: Option<&'a str>,
    pub state: Option<RequestState>,
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// A page of the requests the caller may see, newest first.
pub async fn list(state: &AppState, caller: &Caller, f: Filter<'_>) -> AppResult<Vec<RequestRow>> {
    Ok(db::capacity_requests::list(
        &state.db,
        ListFilter {
            only_organization: caller.organization_filter(),
            only_tenant: caller.tenant_filter(),
            tenant_name: f.tenant,
            state: f.state,
            after: f.after,
            limit: f.limit,
        },
    )
    .await?)
}

pub async fn show(state: &AppState, caller: &Caller, id: &str) -> AppResult<RequestRow> {
    visible_request(&state.db, caller, id, false).await
}

/// Approves a request (the tenant's organization admins, platform admins). A change due now
/// is written to the quota and the timeline at once and applied to the cluster; a change for
/// a later date waits for it. Either way the answer is `approved-pending` until the cluster
/// has the new quota, then `approved`. Refused when the organization's allotment or the
/// cluster's capacity would be exceeded.
pub async fn approve(state: &AppState, caller: &Caller, id: &str) -> AppResult<RequestRow> {
    let mut tx = state.db.begin().await?;
    let request = visible_request(&mut *tx, caller, id, true).await?;
    caller.require(
        &[Role::PlatformAdmin, Role::OrgAdmin],
        "approve capacity requests",
    )?;
    request
        .state
        .must_be_pending("approved")
        .map_err(AppError::Conflict)?;
    let org = db::organizations::by_id(&mut *tx, request.organization_id)
        .await?
        .ok_or_else(|| AppError::Internal("organization vanished".into()))?;
    let now = Utc::now();
    let change = Change::Schedule(Scheduled {
        namespace: (request.tenant.clone(), request.namespace.clone()),
        effective_from: request.effective_from,
        patch: request.patch(),
    });
    let judgement = judge(&mut tx, state, &org, &change).await?;
    db::capacity_requests::decide(
        &mut *tx,
        request.capacity_request_id,
        RequestState::ApprovedPending,
        &caller.name,
        None,
    )
    .await?;
    let due = request.effective_from <= now;
    let mut detail = json!({
        "tenant": request.tenant, "namespace": request.namespace,
        "quota": QuotaPatchDoc::from(request.patch()), "effectiveFrom": request.effective_from,
        "clusterCapacityChecked": judgement.cluster_checked,
    });
    if due {
        let (from, to) = write_quota(&mut tx, &request, &caller.name, now).await?;
        detail["from"] = json!(QuotaDoc::from(from));
        detail["to"] = json!(QuotaDoc::from(to));
    }
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: "capacity_request.approve",
            object_kind: "capacity_request",
            object_id: request.capacity_request_id.to_string(),
            organization_id: Some(request.organization_id),
            tenant_id: Some(request.tenant_id),
            detail,
        },
    )
    .await?;
    tx.commit().await?;
    if due {
        // When the cluster cannot be reached the request stays approved-pending and the sync
        // loop applies it.
        apply_tenant(state, request.tenant_id, Apply::Always).await?;
    }
    reread(&state.db, request.capacity_request_id).await
}

/// Rejects (the tenant's organization admins, platform admins; a reason is required) or
/// withdraws (the tenant's admins too) a pending request.
pub async fn close(
    state: &AppState,
    caller: &Caller,
    id: &str,
    to: RequestState,
    reason: Option<&str>,
) -> AppResult<RequestRow> {
    let (verb, action, roles): (_, _, &[Role]) = match to {
        RequestState::Rejected => (
            "rejected",
            "capacity_request.reject",
            &[Role::PlatformAdmin, Role::OrgAdmin],
        ),
        _ => (
            "cancelled",
            "capacity_request.cancel",
            &[Role::PlatformAdmin, Role::OrgAdmin, Role::TenantAdmin],
        ),
    };
    let mut tx = state.db.begin().await?;
    let request = visible_request(&mut *tx, caller, id, true).await?;
    caller.require(roles, &format!("have capacity requests {verb}"))?;
    if let Some(r) = reason {
        let mut errors = Vec::new();
        check_text("reason", r, REASON, &mut errors);
        AppError::check(errors)?;
    } else if to == RequestState::Rejected {
        return Err(AppError::invalid("reason", "a rejection must say why"));
    }
    request
        .state
        .must_be_pending(verb)
        .map_err(AppError::Conflict)?;
    db::capacity_requests::decide(
        &mut *tx,
        request.capacity_request_id,
        to,
        &caller.name,
        reason,
    )
    .await?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action,
            object_kind: "capacity_request",
            object_id: request.capacity_request_id.to_string(),
            organization_id: Some(request.organization_id),
            tenant_id: Some(request.tenant_id),
            detail: json!({ "tenant": request.tenant, "namespace": request.namespace, "reason": reason }),
        },
    )
    .await?;
    let row = reread(&mut *tx, request.capacity_request_id).await?;
    tx.commit().await?;
    Ok(row)
}
