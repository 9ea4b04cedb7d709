//! Capacity requests: an agency asks for a namespace's quota to change and its organization's
//! IT department approves (the quota is applied, the timeline records it) or rejects; a
//! province's IT department asks the platform's operator for its organization's allotment to
//! change, in the same workflow. See [`crate::domain::request`] for the states.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::app::fit::{Change, judge, judge_allotment};
use crate::app::sync::{Apply, apply_tenant, write_allotment, write_quota};
use crate::app::tenants::{ensure_active, visible_with_namespaces};
use crate::app::{AppError, AppResult};
use crate::db::capacity_requests::{AskScope, ListFilter, NewRequest, Stored};
use crate::db::organizations::Allotment;
use crate::db::{self, audit};
use crate::domain::capacity::Scheduled;
use crate::domain::capacity::check_allotment_floor;
use crate::domain::field::{FieldError, REASON, check_text};
use crate::domain::principal::{Caller, Role, Scope};
use crate::domain::quota::{Amounts, QuotaDoc, QuotaPatchDoc};
use crate::domain::request::{RequestState, check_effective_from};

pub use crate::db::capacity_requests::{RequestRow, Subject};

/// A request for a namespace's quota (`tenant`, `namespace`, `quota`), or for an
/// organization's allotment (`organization`, `allotment`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewCapacityRequest {
    /// For a namespace: its tenant.
    #[schema(example = "nghean-stttt")]
    pub tenant: Option<String>,
    /// For a namespace: its short name, as in the tenant's spec.
    #[schema(example = "prod")]
    pub namespace: Option<String>,
    /// For a namespace: the quota wanted; only the resources named change.
    pub quota: Option<QuotaPatchDoc>,
    /// For an allotment: the organization (its org admins ask, platform admins decide).
    #[schema(example = "nghe-an")]
    pub organization: Option<String>,
    /// For an allotment: the whole allotment wanted.
    pub allotment: Option<Amounts>,
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
    row.filter(|r| visible_to(caller, r))
        .ok_or_else(|| AppError::not_found("capacity request", id))
}

/// Who sees a request: its tenant's viewers; for an allotment, its organization's (not its
/// agencies').
fn visible_to(caller: &Caller, r: &RequestRow) -> bool {
    match r.subject() {
        Subject::Namespace { tenant_id, .. } => {
            caller.sees(Scope::tenant(r.organization_id, tenant_id))
        }
        Subject::Allotment(_) => {
            caller.role != Role::TenantAdmin && caller.sees(Scope::organization(r.organization_id))
        }
    }
}

async fn reread(db: impl sqlx::PgExecutor<'_>, id: Uuid) -> AppResult<RequestRow> {
    db::capacity_requests::get(db, id)
        .await?
        .ok_or_else(|| AppError::Internal("request vanished".into()))
}

/// Checks what every request carries, a reason and when it takes effect (now when absent);
/// answers the date.
fn reason_and_date(body: &NewCapacityRequest, errors: &mut Vec<FieldError>) -> DateTime<Utc> {
    check_text("reason", &body.reason, REASON, errors);
    let now = Utc::now();
    let effective_from = body.effective_from.unwrap_or(now);
    if let Err(m) = check_effective_from(effective_from, now) {
        errors.push(FieldError::new("effectiveFrom", m));
    }
    effective_from
}

/// Asks for a namespace's quota to change. Tenant admins for their tenant; organization and
/// platform admins on an agency's behalf.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    body: &NewCapacityRequest,
) -> AppResult<RequestRow> {
    if body.organization.is_some() || body.allotment.is_some() {
        return create_allotment(state, caller, body).await;
    }
    caller.require(
        &[Role::PlatformAdmin, Role::OrgAdmin, Role::TenantAdmin],
        "request capacity",
    )?;
    let required = |field: &'static str| {
        FieldError::new(
            field,
            "is required (or ask for an organization's allotment)",
        )
    };
    let (Some(tenant_name), Some(namespace), Some(quota)) =
        (&body.tenant, &body.namespace, &body.quota)
    else {
        let mut errors = Vec::new();
        for (field, missing) in [
            ("tenant", body.tenant.is_none()),
            ("namespace", body.namespace.is_none()),
            ("quota", body.quota.is_none()),
        ] {
            if missing {
                errors.push(required(field));
            }
        }
        return Err(AppError::Invalid(errors));
    };
    let mut errors = Vec::new();
    let patch = quota.parse("quota", &mut errors);
    let effective_from = reason_and_date(body, &mut errors);
    let request = patch.filter(|_| errors.is_empty()).map(|patch| NewRequest {
        namespace,
        patch,
        reason: &body.reason,
        effective_from,
        requested_by: &caller.name,
    });
    let actor = caller.into();
    let event = audit::Event {
        actor: &actor,
        action: "capacity_request.create",
        object_kind: "capacity_request",
        // the statement writes the new request's id and its tenant's
        object_id: String::new(),
        organization_id: None,
        tenant_id: None,
        detail: json!({
            "tenant": tenant_name, "namespace": namespace, "quota": quota,
            "reason": body.reason, "effectiveFrom": effective_from,
        }),
    };
    let scope = AskScope {
        only_organization: caller.organization_filter(),
        only_tenant: caller.tenant_filter(),
    };
    // The common case in one round trip; when it writes nothing, find out why.
    if let Some(r) = &request
        && let Some(stored) =
            db::capacity_requests::insert_for_namespace(&state.db, tenant_name, &scope, r, &event)
                .await?
    {
        return Ok(new_row(stored, tenant_name, r, &body.reason, &caller.name));
    }
    let (tenant, namespaces) = visible_with_namespaces(state, caller, tenant_name).await?;
    ensure_active(&tenant)?;
    if !namespaces.iter().any(|n| &n.name == namespace) {
        // Named first, as the field it is.
        errors.insert(
            0,
            FieldError::new(
                "namespace",
                format!("tenant {} has no namespace {namespace:?}", tenant.name),
            ),
        );
    }
    let Some(r) = request.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    // Valid after all: the tenant changed between the two reads. Try once more.
    db::capacity_requests::insert_for_namespace(&state.db, tenant_name, &scope, &r, &event)
        .await?
        .map(|stored| new_row(stored, tenant_name, &r, &body.reason, &caller.name))
        .ok_or_else(|| {
            AppError::Conflict(format!(
                "tenant {tenant_name} changed while the request was written; send it again"
            ))
        })
}

/// A namespace's request as just stored, without reading it back.
fn new_row(stored: Stored, tenant: &str, r: &NewRequest<'_>, reason: &str, by: &str) -> RequestRow {
    RequestRow {
        capacity_request_id: stored.capacity_request_id,
        tenant_id: Some(stored.tenant_id),
        tenant: Some(tenant.to_string()),
        namespace: Some(r.namespace.to_string()),
        organization_id: stored.organization_id,
        organization: stored.organization,
        cpu_milli: r.patch.cpu_milli,
        memory_bytes: r.patch.memory_bytes,
        storage_bytes: r.patch.storage_bytes,
        pods: r.patch.pods,
        load_balancers: r.patch.load_balancers,
        allotment_cpu_milli: None,
        allotment_memory_bytes: None,
        allotment_storage_bytes: None,
        reason: reason.to_string(),
        effective_from: stored.effective_from,
        state: stored.state,
        requested_by: by.to_string(),
        decided_by: None,
        decided_at: None,
        decision_reason: None,
        quota_written_at: None,
        tenant_version: None,
        applied_at: None,
        created_at: stored.created_at,
        updated_at: stored.updated_at,
    }
}

/// Asks the platform's operator for an organization's allotment to change (its org admins, or a
/// platform admin on its behalf). Lowering it below what its agencies hold is refused at once.
async fn create_allotment(
    state: &AppState,
    caller: &Caller,
    body: &NewCapacityRequest,
) -> AppResult<RequestRow> {
    caller.require(&[Role::PlatformAdmin, Role::OrgAdmin], "ask for allotment")?;
    let mut errors = Vec::new();
    for (field, given) in [
        ("tenant", body.tenant.is_some()),
        ("namespace", body.namespace.is_some()),
        ("quota", body.quota.is_some()),
    ] {
        if given {
            errors.push(FieldError::new(
                field,
                "an allotment request names an organization and an allotment, not a namespace",
            ));
        }
    }
    let (Some(org_name), Some(amounts)) = (&body.organization, &body.allotment) else {
        let field = if body.organization.is_none() {
            "organization"
        } else {
            "allotment"
        };
        errors.push(FieldError::new(
            field,
            "is required for an allotment request",
        ));
        return Err(AppError::Invalid(errors));
    };
    let org = crate::app::organizations::visible(state, caller, org_name).await?;
    let wanted = amounts
        .parse("allotment", &mut errors)
        .and_then(|t| Allotment::of(t).map(|a| (t, a)));
    let effective_from = reason_and_date(body, &mut errors);
    let Some((wanted, allotment)) = wanted.filter(|_| errors.is_empty()) else {
        if errors.is_empty() {
            errors.push(FieldError::new("allotment", "is too large"));
        }
        return Err(AppError::Invalid(errors));
    };
    // Never below what the agencies hold now (the platform judges the cluster on approval).
    let reserved = db::organizations::reserved(&state.db, &[org.organization_id])
        .await?
        .pop()
        .map(|(_, t)| t)
        .unwrap_or_default();
    check_allotment_floor(&org.name, wanted, reserved).map_err(AppError::OverCapacity)?;
    let mut tx = state.db.begin().await?;
    let id = db::capacity_requests::insert_allotment(
        &mut *tx,
        org.organization_id,
        &allotment,
        &body.reason,
        effective_from,
        &caller.name,
    )
    .await?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: "capacity_request.create",
            object_kind: "capacity_request",
            object_id: id.to_string(),
            organization_id: Some(org.organization_id),
            tenant_id: None,
            detail: json!({
                "organization": org.name, "allotment": amounts, "from": Amounts::from(org.allotment()),
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
    let Subject::Namespace {
        tenant_id,
        tenant,
        namespace,
    } = request.subject()
    else {
        return approve_allotment(state, caller, tx, request).await;
    };
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
        namespace: (tenant.clone(), namespace.clone()),
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
        "tenant": tenant, "namespace": namespace,
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
            tenant_id: Some(tenant_id),
            detail,
        },
    )
    .await?;
    tx.commit().await?;
    if due {
        // When the cluster cannot be reached the request stays approved-pending and the sync
        // loop applies it.
        apply_tenant(state, tenant_id, Apply::Always).await?;
    }
    reread(&state.db, request.capacity_request_id).await
}

/// Approves an organization's allotment request (platform admins only: the province rents its
/// share from the platform's operator). Judged against what its agencies hold and against the
/// cluster's capacity times the overcommit ratio; written at once when due, else on its date.
async fn approve_allotment(
    state: &AppState,
    caller: &Caller,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    request: RequestRow,
) -> AppResult<RequestRow> {
    caller.require(&[Role::PlatformAdmin], "approve allotment changes")?;
    request
        .state
        .must_be_pending("approved")
        .map_err(AppError::Conflict)?;
    let Subject::Allotment(wanted) = request.subject() else {
        return Err(AppError::Internal("not an allotment request".into()));
    };
    let org = db::organizations::by_id(&mut *tx, request.organization_id)
        .await?
        .ok_or_else(|| AppError::Internal("organization vanished".into()))?;
    let judgement = judge_allotment(&mut tx, state, &org, wanted).await?;
    db::capacity_requests::decide(
        &mut *tx,
        request.capacity_request_id,
        RequestState::ApprovedPending,
        &caller.name,
        None,
    )
    .await?;
    let now = Utc::now();
    let mut detail = json!({
        "organization": request.organization, "allotment": Amounts::from(wanted),
        "effectiveFrom": request.effective_from, "clusterCapacityChecked": judgement.cluster_checked,
    });
    if request.effective_from <= now {
        let (from, to) = write_allotment(&mut tx, &request, &caller.name, now).await?;
        detail["from"] = json!(from);
        detail["to"] = json!(to);
    }
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: "capacity_request.approve",
            object_kind: "capacity_request",
            object_id: request.capacity_request_id.to_string(),
            organization_id: Some(request.organization_id),
            tenant_id: None,
            detail,
        },
    )
    .await?;
    let row = reread(&mut *tx, request.capacity_request_id).await?;
    tx.commit().await?;
    Ok(row)
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
    let mut tx = state.db.begin().await?;
    let request = visible_request(&mut *tx, caller, id, true).await?;
    let allotment = matches!(request.subject(), Subject::Allotment(_));
    // The one who decides rejects; the one who asked (or whoever speaks for it) cancels.
    let (verb, action, roles): (_, _, &[Role]) = match (to, allotment) {
        (RequestState::Rejected, false) => (
            "rejected",
            "capacity_request.reject",
            &[Role::PlatformAdmin, Role::OrgAdmin],
        ),
        (RequestState::Rejected, true) => (
            "rejected",
            "capacity_request.reject",
            &[Role::PlatformAdmin],
        ),
        (_, false) => (
            "cancelled",
            "capacity_request.cancel",
            &[Role::PlatformAdmin, Role::OrgAdmin, Role::TenantAdmin],
        ),
        (_, true) => (
            "cancelled",
            "capacity_request.cancel",
            &[Role::PlatformAdmin, Role::OrgAdmin],
        ),
    };
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
            tenant_id: request.tenant_id,
            detail: json!({
                "tenant": request.tenant, "namespace": request.namespace,
                "organization": request.organization, "reason": reason,
            }),
        },
    )
    .await?;
    let row = reread(&mut *tx, request.capacity_request_id).await?;
    tx.commit().await?;
    Ok(row)
}
