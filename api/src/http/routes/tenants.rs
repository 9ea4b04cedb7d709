//! Tenants (agencies): onboarding, offboarding, reading one with the status the operator
//! reports, and its quota timeline.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use govcloud_tenant::crd::{
    Billing, Egress, Limits, Network, Owner, PodSecurityLevel, TenantStatus,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::app::tenants::{self as use_case, NamespaceDoc, NewTenantDoc, TenantView};
use crate::domain::principal::Caller;
use crate::domain::quota::QuotaDoc;
use crate::domain::tenant::{Lifecycle, SyncState};
use crate::http::error::ApiResult;
use crate::http::extract::{AppJson, AppQuery};
use crate::http::page::{PageParams, next_cursor, page};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", get(list).post(create))
        .route("/v1/tenants/{name}", get(show).delete(offboard).patch(edit))
        .route("/v1/tenants/{name}/suspend", post(suspend))
        .route("/v1/tenants/{name}/resume", post(resume))
        .route("/v1/tenants/{name}/quota-changes", get(timeline))
}

/// Whether the cluster has the tenant's latest desired state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sync {
    pub state: SyncState,
    /// Increases with every change of the tenant's desired state.
    pub spec_version: i64,
    /// The latest version the cluster has accepted.
    pub applied_version: i64,
    pub applied_at: Option<DateTime<Utc>>,
    /// Why the last attempt to apply failed, in plain words, while it keeps failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Consecutive failed attempts.
    pub attempts: i32,
    /// When the next attempt is due, while failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// An agency on the shared cloud.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantDoc {
    #[schema(example = "nghean-stttt")]
    pub name: String,
    pub display_name: String,
    pub organization: String,
    pub owners: Vec<Owner>,
    pub namespaces: Vec<NamespaceDoc>,
    pub limits: Limits,
    pub pod_security: PodSecurityLevel,
    pub network: Network,
    pub billing: Billing,
    /// A suspended agency keeps its data but runs nothing new (its pod quota is zero).
    pub suspended: bool,
    /// When, by whom and why it was last suspended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspend_reason: Option<String>,
    pub lifecycle: Lifecycle,
    /// When offboarding was asked for, and by whom.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offboarded_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offboarded_by: Option<String>,
    pub sync: Sync,
    /// What the operator reports from the cluster; absent until it has reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<TenantStatus>,
    pub created_at: DateTime<Utc>,
}

page!(TenantPage, TenantDoc);

fn tenant_doc(v: TenantView) -> TenantDoc {
    let t = v.row;
    TenantDoc {
        namespaces: v
            .namespaces
            .iter()
            .map(|n| NamespaceDoc {
                name: n.name.clone(),
                quota: n.quota().into(),
            })
            .collect(),
        lifecycle: if t.offboarded_at.is_some() {
            Lifecycle::Terminating
        } else {
            Lifecycle::Active
        },
        sync: Sync {
            state: SyncState::of(t.sync_facts()),
            spec_version: t.spec_version,
            applied_version: t.applied_version,
            applied_at: t.applied_at,
            error: t.apply_error,
            attempts: t.apply_attempts,
            next_attempt_at: t.next_apply_at.filter(|_| t.apply_attempts > 0),
        },
        owners: t.owners.0,
        limits: t.limits.0,
        pod_security: t.pod_security.0,
        network: t.network.0,
        billing: t.billing.0,
        suspended: t.suspended,
        suspended_at: t.suspended_at.filter(|_| t.suspended),
        suspended_by: t.suspended_by.filter(|_| t.suspended),
        suspend_reason: t.suspend_reason.filter(|_| t.suspended),
        offboarded_at: t.offboarded_at,
        offboarded_by: t.offboarded_by,
        status: v.status,
        name: t.name,
        display_name: t.display_name,
        organization: t.organization,
        created_at: t.created_at,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantFilter {
    /// Only the tenants of this organization.
    pub organization: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Lists the tenants the caller may see, by name.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    params(TenantFilter),
    responses((status = 200, body = TenantPage)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(f): AppQuery<TenantFilter>,
) -> ApiResult<AppJson<TenantPage>> {
    let page = PageParams {
        limit: f.limit,
        cursor: f.cursor,
    };
    let limit = page.limit()?;
    let cursor = page.cursor()?;
    let views = use_case::list(
        &state,
        &caller,
        f.organization.as_deref(),
        cursor.as_deref(),
        limit,
    )
    .await?;
    let next = next_cursor(&views, limit, |v| v.row.name.clone());
    Ok(AppJson(TenantPage {
        items: views.into_iter().map(tenant_doc).collect(),
        next_cursor: next,
    }))
}

/// Shows a tenant: its quotas, whether the cluster has them, and the operator's status.
#[utoipa::path(get, path = "/v1/tenants/{name}", tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name")),
    responses((status = 200, body = TenantDoc)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<AppJson<TenantDoc>> {
    Ok(AppJson(tenant_doc(
        use_case::show(&state, &caller, &name).await?,
    )))
}

/// Onboards an agency: stores it, applies its Tenant, and records its first quotas in the
/// timeline. Platform admins, and organization admins within their organization.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants",
    request_body = NewTenantDoc,
    responses((status = 201, body = TenantDoc)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<NewTenantDoc>,
) -> ApiResult<(StatusCode, AppJson<TenantDoc>)> {
    let view = use_case::onboard(&state, &caller, &body).await?;
    Ok((StatusCode::CREATED, AppJson(tenant_doc(view))))
}

/// Offboards an agency (platform admins, and organization admins within their organization):
/// open capacity requests are cancelled, its reserved quota ends in the timeline now, its
/// tenant admins can no longer sign in, and the cluster deletes the Tenant — its namespaces
/// first, through the operator's finalizer. The tenant shows as `Terminating` until the cluster
/// is done; then its namespace names are free. Asking again while it terminates changes nothing.
#[utoipa::path(delete, path = "/v1/tenants/{name}", tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name")),
    responses((status = 202, body = TenantDoc)))]
pub(crate) async fn offboard(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, AppJson<TenantDoc>)> {
    let view = use_case::offboard(&state, &caller, &name).await?;
    Ok((StatusCode::ACCEPTED, AppJson(tenant_doc(view))))
}

/// One change of a namespace's quota.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaChange {
    pub id: i64,
    pub namespace: String,
    /// When the change took effect.
    pub effective_at: DateTime<Utc>,
    pub changed_by: String,
    /// The capacity request that asked for it; absent for onboarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_request: Option<Uuid>,
    /// The quota before; absent for onboarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<QuotaDoc>,
    pub to: QuotaDoc,
    /// Whether the tenant is suspended from this change on: no reserved charges meanwhile.
    pub suspended: bool,
}

page!(QuotaChangePage, QuotaChange);

/// The tenant's quota timeline, oldest first: every change, who made it, and which request.
#[utoipa::path(get, path = "/v1/tenants/{name}/quota-changes", tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name"), PageParams),
    responses((status = 200, body = QuotaChangePage)))]
pub(crate) async fn timeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    AppQuery(page): AppQuery<PageParams>,
) -> ApiResult<AppJson<QuotaChangePage>> {
    let limit = page.limit()?;
    let after = page.cursor_as::<i64>()?;
    let rows = use_case::timeline(&state, &caller, &name, after, limit).await?;
    let next = next_cursor(&rows, limit, |r| r.quota_change_id.to_string());
    Ok(AppJson(QuotaChangePage {
        items: rows
            .into_iter()
            .map(|r| QuotaChange {
                id: r.quota_change_id,
                from: r.from().map(Into::into),
                to: r.to().into(),
                namespace: r.namespace,
                effective_at: r.effective_at,
                changed_by: r.changed_by,
                capacity_request: r.capacity_request_id,
                suspended: r.suspended,
            })
            .collect(),
        next_cursor: next,
    }))
}

/// The fields an edit may change; absent ones stay, `null` resets one to its default.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Documents the merge patch; the handler applies it as JSON.
pub struct TenantPatch {
    #[schema(example = "Sở Thông tin và Truyền thông Nghệ An")]
    pub display_name: Option<String>,
    pub owners: Option<Vec<Owner>>,
    pub limits: Option<Limits>,
    pub pod_security: Option<PodSecurityLevel>,
    pub network: Option<NetworkPatch>,
}

/// The network settings an edit may change (links change through `/v1/links`).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct NetworkPatch {
    pub egress: Option<Egress>,
}

/// Edits an agency with a JSON merge patch (RFC 7396): display name, owners, limit ranges,
/// Pod Security level, internet egress. Organization and platform admins; tenant admins for
/// their own agency's owners only. Validated as onboarding is, audited with what changed.
#[utoipa::path(patch, path = "/v1/tenants/{name}", tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name")),
    request_body(content = TenantPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = TenantDoc)))]
pub(crate) async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    AppJson(patch): AppJson<serde_json::Value>,
) -> ApiResult<AppJson<TenantDoc>> {
    Ok(AppJson(tenant_doc(
        use_case::edit(&state, &caller, &name, &patch).await?,
    )))
}

/// Why an agency is suspended or resumed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    #[schema(example = "unpaid invoice for October")]
    pub reason: String,
}

/// Suspends an agency (organization and platform admins): it keeps its data, runs nothing new
/// (its pod quota becomes zero), and its reserved charges stop until it resumes.
#[utoipa::path(post, path = "/v1/tenants/{name}/suspend", tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name")),
    request_body = Reason,
    responses((status = 200, body = TenantDoc)))]
pub(crate) async fn suspend(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    AppJson(body): AppJson<Reason>,
) -> ApiResult<AppJson<TenantDoc>> {
    let view = use_case::set_suspended(&state, &caller, &name, true, &body.reason).await?;
    Ok(AppJson(tenant_doc(view)))
}

/// Resumes a suspended agency (organization and platform admins): its pod quota comes back.
#[utoipa::path(post, path = "/v1/tenants/{name}/resume", tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name")),
    request_body = Reason,
    responses((status = 200, body = TenantDoc)))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    AppJson(body): AppJson<Reason>,
) -> ApiResult<AppJson<TenantDoc>> {
    let view = use_case::set_suspended(&state, &caller, &name, false, &body.reason).await?;
    Ok(AppJson(tenant_doc(view)))
}
