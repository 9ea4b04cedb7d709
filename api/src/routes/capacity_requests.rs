//! Capacity requests: an agency asks for a namespace's quota to change; its organization's
//! IT department approves (the quota is applied, the timeline records it) or rejects.
//!
//! States: `pending` → `approved-pending` (approved; waiting for its date or for the cluster)
//! → `approved` (the cluster has it); or `pending` → `rejected` | `cancelled`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::tenants::visible_with_namespaces;
use super::{PageParams, page};
use crate::AppState;
use crate::auth::{Caller, Role, Scope};
use crate::capacity::Scheduled;
use crate::db::capacity_requests::{ListFilter, NewRequest, RequestRow};
use crate::db::{self, audit};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{AppJson, AppQuery};
use crate::fit::{Change, judge};
use crate::quota::{QuotaDoc, QuotaPatchDoc};
use crate::sync::{apply_tenant, write_quota};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/capacity-requests", get(list).post(create))
        .route("/v1/capacity-requests/{id}", get(show))
        .route("/v1/capacity-requests/{id}/approve", post(approve))
        .route("/v1/capacity-requests/{id}/reject", post(reject))
        .route("/v1/capacity-requests/{id}/cancel", post(cancel))
}

/// How far in the past `effectiveFrom` may be (clock skew between the caller and us).
const PAST_TOLERANCE_MINUTES: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RequestState {
    Pending,
    ApprovedPending,
    Approved,
    Rejected,
    Cancelled,
}

impl RequestState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::ApprovedPending => "approved-pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
        }
    }
}

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
    /// When the change should take effect; now when absent.
    pub effective_from: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapacityRequest {
    pub id: Uuid,
    pub tenant: String,
    pub namespace: String,
    pub quota: QuotaPatchDoc,
    pub reason: String,
    pub effective_from: DateTime<Utc>,
    #[schema(value_type = RequestState)]
    pub state: String,
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
        Self {
            id: r.capacity_request_id,
            tenant: r.tenant,
            namespace: r.namespace,
            quota: r.patch.into(),
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why: required to reject, optional to cancel.
    pub reason: Option<String>,
}

fn check_reason(field: &str, reason: &str, errors: &mut Vec<FieldError>) {
    let len = reason.trim().chars().count();
    if len == 0 || reason.chars().count() > 2000 {
        errors.push(FieldError::new(
            field,
            "must be 1 to 2000 characters and not blank",
        ));
    }
}

fn parse_id(id: &str) -> ApiResult<Uuid> {
    id.parse::<Uuid>()
        .map_err(|_| ApiError::not_found("capacity request", id))
}

/// A request the caller may see, or 404.
async fn visible_request(
    db: impl sqlx::PgExecutor<'_>,
    caller: &Caller,
    id: &str,
    lock: bool,
) -> ApiResult<RequestRow> {
    let uuid = parse_id(id)?;
    let row = if lock {
        db::capacity_requests::lock(db, uuid).await?
    } else {
        db::capacity_requests::get(db, uuid).await?
    };
    row.filter(|r| caller.sees(Scope::tenant(r.organization_id, r.tenant_id)))
        .ok_or_else(|| ApiError::not_found("capacity request", id))
}

/// Asks for a namespace's quota to change. Tenant admins for their tenant; organization and
/// platform admins on an agency's behalf.
#[utoipa::path(post, path = "/v1/capacity-requests", tag = "capacity-requests",
    request_body = NewCapacityRequest,
    responses((status = 201, body = CapacityRequest)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<NewCapacityRequest>,
) -> ApiResult<(StatusCode, AppJson<CapacityRequest>)> {
    caller.require(
        &[Role::PlatformAdmin, Role::OrgAdmin, Role::TenantAdmin],
        "request capacity",
    )?;
    let (tenant, namespaces) = visible_with_namespaces(&state, &caller, &body.tenant).await?;
    super::tenants::ensure_active(&tenant)?;
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
    check_reason("reason", &body.reason, &mut errors);
    let now = Utc::now();
    let effective_from = body.effective_from.unwrap_or(now);
    if effective_from < now - Duration::minutes(PAST_TOLERANCE_MINUTES) {
        errors.push(FieldError::new(
            "effectiveFrom",
            "must not be in the past: quota changes are never backdated",
        ));
    }
    let Some(patch) = patch.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    let mut tx = state.db.begin().await?;
    let (id, created_at) = db::capacity_requests::insert(
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
            actor: &(&caller).into(),
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
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        AppJson(CapacityRequest {
            id,
            tenant: tenant.name,
            namespace: body.namespace,
            quota: patch.into(),
            reason: body.reason,
            effective_from,
            state: RequestState::Pending.as_str().to_string(),
            requested_by: caller.name,
            requested_at: created_at,
            decided_by: None,
            decided_at: None,
            decision_reason: None,
            applied_at: None,
        }),
    ))
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
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(f): AppQuery<RequestFilter>,
) -> ApiResult<AppJson<CapacityRequestPage>> {
    let page = PageParams {
        limit: f.limit,
        cursor: f.cursor,
    };
    let limit = page.limit()?;
    let after = page
        .cursor()?
        .map(|c| {
            let (at, id) = c.split_once('|').ok_or_else(super::bad_cursor)?;
            Ok::<_, ApiError>((
                at.parse::<DateTime<Utc>>()
                    .map_err(|_| super::bad_cursor())?,
                id.parse::<Uuid>().map_err(|_| super::bad_cursor())?,
            ))
        })
        .transpose()?;
    let rows = db::capacity_requests::list(
        &state.db,
        ListFilter {
            only_organization: caller.organization_filter(),
            only_tenant: caller.tenant_filter(),
            tenant_name: f.tenant.as_deref(),
            state: f.state.map(RequestState::as_str),
            after,
            limit,
        },
    )
    .await?;
    let next = super::next_cursor(&rows, limit, |r| {
        format!(
            "{}|{}",
            r.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            r.capacity_request_id
        )
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
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<AppJson<CapacityRequest>> {
    Ok(AppJson(
        visible_request(&state.db, &caller, &id, false)
            .await?
            .into(),
    ))
}

fn must_be_pending(r: &RequestRow, action: &str) -> ApiResult<()> {
    if r.state == RequestState::Pending.as_str() {
        Ok(())
    } else {
        Err(ApiError::Conflict(format!(
            "the request is {}; only a pending request can be {action}",
            r.state
        )))
    }
}

/// Approves a request (the tenant's organization admins, platform admins). A change due now
/// is written to the quota and the timeline at once and applied to the cluster; a change for
/// a later date waits for it. Either way the answer is `approved-pending` until the cluster
/// has the new quota, then `approved`. Refused with 409 when the organization's allotment or
/// the cluster's capacity would be exceeded.
#[utoipa::path(post, path = "/v1/capacity-requests/{id}/approve", tag = "capacity-requests",
    params(("id" = String, Path, description = "The request's id")),
    responses((status = 200, body = CapacityRequest)))]
async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<AppJson<CapacityRequest>> {
    let mut tx = state.db.begin().await?;
    let request = visible_request(&mut *tx, &caller, &id, true).await?;
    caller.require(
        &[Role::PlatformAdmin, Role::OrgAdmin],
        "approve capacity requests",
    )?;
    must_be_pending(&request, "approved")?;
    let org = db::organizations::by_id(&mut *tx, request.organization_id)
        .await?
        .ok_or_else(|| ApiError::Internal("organization vanished".into()))?;
    let now = Utc::now();
    let change = Change::Schedule(Scheduled {
        namespace: (request.tenant.clone(), request.namespace.clone()),
        effective_from: request.effective_from,
        patch: request.patch,
    });
    let judgement = judge(&mut tx, &state, &org, &change).await?;
    db::capacity_requests::decide(
        &mut *tx,
        request.capacity_request_id,
        RequestState::ApprovedPending.as_str(),
        &caller.name,
        None,
    )
    .await?;
    let due = request.effective_from <= now;
    let mut detail = json!({
        "tenant": request.tenant, "namespace": request.namespace,
        "quota": QuotaPatchDoc::from(request.patch), "effectiveFrom": request.effective_from,
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
            actor: &(&caller).into(),
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
        apply_tenant(&state, request.tenant_id).await?;
    }
    let row = db::capacity_requests::get(&state.db, request.capacity_request_id)
        .await?
        .ok_or_else(|| ApiError::Internal("request vanished".into()))?;
    Ok(AppJson(row.into()))
}

async fn close(
    state: AppState,
    caller: Caller,
    id: String,
    to: RequestState,
    roles: &[Role],
    reason: Option<String>,
) -> ApiResult<AppJson<CapacityRequest>> {
    let (verb, action) = match to {
        RequestState::Rejected => ("rejected", "capacity_request.reject"),
        _ => ("cancelled", "capacity_request.cancel"),
    };
    let mut tx = state.db.begin().await?;
    let request = visible_request(&mut *tx, &caller, &id, true).await?;
    caller.require(roles, &format!("have capacity requests {verb}"))?;
    if let Some(r) = &reason {
        let mut errors = Vec::new();
        check_reason("reason", r, &mut errors);
        if !errors.is_empty() {
            return Err(ApiError::Invalid(errors));
        }
    } else if to == RequestState::Rejected {
        return Err(ApiError::invalid("reason", "a rejection must say why"));
    }
    must_be_pending(&request, verb)?;
    db::capacity_requests::decide(
        &mut *tx,
        request.capacity_request_id,
        to.as_str(),
        &caller.name,
        reason.as_deref(),
    )
    .await?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &(&caller).into(),
            action,
            object_kind: "capacity_request",
            object_id: request.capacity_request_id.to_string(),
            organization_id: Some(request.organization_id),
            tenant_id: Some(request.tenant_id),
            detail: json!({ "tenant": request.tenant, "namespace": request.namespace, "reason": reason }),
        },
    )
    .await?;
    let row = db::capacity_requests::get(&mut *tx, request.capacity_request_id)
        .await?
        .ok_or_else(|| ApiError::Internal("request vanished".into()))?;
    tx.commit().await?;
    Ok(AppJson(row.into()))
}

/// Rejects a pending request, with a reason (the tenant's organization admins, platform admins).
#[utoipa::path(post, path = "/v1/capacity-requests/{id}/reject", tag = "capacity-requests",
    params(("id" = String, Path, description = "The request's id")),
    request_body = Decision,
    responses((status = 200, body = CapacityRequest)))]
async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<Decision>,
) -> ApiResult<AppJson<CapacityRequest>> {
    close(
        state,
        caller,
        id,
        RequestState::Rejected,
        &[Role::PlatformAdmin, Role::OrgAdmin],
        body.reason,
    )
    .await
}

/// Withdraws a pending request (the tenant's admins, its organization admins, platform admins).
#[utoipa::path(post, path = "/v1/capacity-requests/{id}/cancel", tag = "capacity-requests",
    params(("id" = String, Path, description = "The request's id")),
    request_body(content = Option<Decision>, description = "An optional reason"),
    responses((status = 200, body = CapacityRequest)))]
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<AppJson<CapacityRequest>> {
    // The body is optional here: an empty one withdraws without a reason.
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<Decision>(&body)
            .map_err(|e| ApiError::Rejected {
                status: StatusCode::BAD_REQUEST,
                detail: format!("the body does not match the schema: {e}"),
            })?
            .reason
    };
    close(
        state,
        caller,
        id,
        RequestState::Cancelled,
        &[Role::PlatformAdmin, Role::OrgAdmin, Role::TenantAdmin],
        reason,
    )
    .await
}
