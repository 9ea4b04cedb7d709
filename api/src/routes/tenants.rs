//! Tenants (agencies): onboarding applies a Tenant to the cluster; showing one includes the
//! status the operator reports, and its quota timeline.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use chrono::{DateTime, Utc};
use govcloud_operator::crd::{
    Billing, Limits, Network, Owner, PodSecurityLevel, Tenant, TenantStatus,
};
use govcloud_operator::names::namespace_name;
use govcloud_operator::validate::validate;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::organizations::validate_display_name;
use super::{PageParams, next_cursor, page};
use crate::AppState;
use crate::auth::{Caller, Role, Scope};
use crate::db::tenants::{NamespaceRow, NewTenant, TenantRow};
use crate::db::{self, audit, quota_changes};
use crate::desired::build_tenant;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{AppJson, AppQuery};
use crate::fit::{Change, judge};
use crate::quota::{Quota, QuotaDoc};
use crate::sync::apply_tenant;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", get(list).post(create))
        .route("/v1/tenants/{name}", get(show).delete(offboard))
        .route("/v1/tenants/{name}/quota-changes", get(timeline))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceDoc {
    /// The short name; the namespace in the cluster is `<tenant>-<name>`.
    #[schema(example = "prod")]
    pub name: String,
    pub quota: QuotaDoc,
}

/// Where the tenant's latest desired state stands with the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum SyncState {
    /// The cluster has the latest version.
    Applied,
    /// Not applied yet; no attempt has failed.
    Pending,
    /// The cluster could not be reached; retried with backoff.
    Retrying,
    /// The cluster refused the spec (see `error`); retried with a longer backoff, and until it
    /// has ever accepted the tenant it holds none of the organization's allotment.
    Refused,
    /// Offboarded: the cluster is removing the tenant.
    Removing,
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

/// An agency's place in its lifecycle, as the API sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum Lifecycle {
    Active,
    /// Offboarding was asked for; the cluster is deleting its namespaces.
    Terminating,
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
    pub suspended: bool,
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTenantDoc {
    /// A DNS label; it prefixes the tenant's namespace names.
    #[schema(example = "nghean-stttt")]
    pub name: String,
    #[schema(example = "Sở Thông tin và Truyền thông Nghệ An")]
    pub display_name: String,
    #[schema(example = "nghe-an")]
    pub organization: String,
    #[serde(default)]
    pub owners: Vec<Owner>,
    pub namespaces: Vec<NamespaceDoc>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub pod_security: PodSecurityLevel,
    #[serde(default)]
    pub network: Network,
    pub billing: Billing,
}

fn sync_state(t: &TenantRow) -> SyncState {
    if t.offboarded_at.is_some() {
        SyncState::Removing
    } else if t.applied_version >= t.spec_version {
        SyncState::Applied
    } else if t.apply_refused {
        SyncState::Refused
    } else if t.apply_attempts > 0 {
        SyncState::Retrying
    } else {
        SyncState::Pending
    }
}

/// Refuses changes to a tenant being offboarded.
pub fn ensure_active(t: &TenantRow) -> ApiResult<()> {
    match t.offboarded_at {
        Some(_) => Err(ApiError::Offboarding(t.name.clone())),
        None => Ok(()),
    }
}

fn tenant_doc(
    t: TenantRow,
    namespaces: Vec<NamespaceRow>,
    status: Option<TenantStatus>,
) -> ApiResult<TenantDoc> {
    let built: Tenant =
        build_tenant(&t, &namespaces).map_err(|e| ApiError::Internal(e.to_string()))?;
    let spec = built.spec;
    Ok(TenantDoc {
        namespaces: namespaces
            .into_iter()
            .map(|n| NamespaceDoc {
                name: n.name,
                quota: n.quota.into(),
            })
            .collect(),
        owners: spec.owners,
        limits: spec.limits,
        pod_security: spec.pod_security,
        network: spec.network,
        billing: spec.billing,
        suspended: t.suspended,
        lifecycle: if t.offboarded_at.is_some() {
            Lifecycle::Terminating
        } else {
            Lifecycle::Active
        },
        sync: Sync {
            state: sync_state(&t),
            spec_version: t.spec_version,
            applied_version: t.applied_version,
            applied_at: t.applied_at,
            error: t.apply_error,
            attempts: t.apply_attempts,
            next_attempt_at: t.next_apply_at.filter(|_| t.apply_attempts > 0),
        },
        offboarded_at: t.offboarded_at,
        offboarded_by: t.offboarded_by,
        status,
        name: t.name,
        display_name: t.display_name,
        organization: t.organization,
        created_at: t.created_at,
    })
}

async fn docs(state: &AppState, rows: Vec<TenantRow>) -> ApiResult<Vec<TenantDoc>> {
    let ids: Vec<Uuid> = rows.iter().map(|t| t.tenant_id).collect();
    let mut by_tenant: HashMap<Uuid, Vec<NamespaceRow>> = HashMap::new();
    for n in db::tenants::namespaces(&state.db, &ids).await? {
        by_tenant.entry(n.tenant_id).or_default().push(n);
    }
    rows.into_iter()
        .map(|t| {
            let ns = by_tenant.remove(&t.tenant_id).unwrap_or_default();
            let status = state.cluster.tenant_status(&t.name);
            tenant_doc(t, ns, status)
        })
        .collect()
}

/// The document of a tenant just written, read back by id (even while it terminates).
async fn doc_by_id(state: &AppState, tenant_id: Uuid) -> ApiResult<TenantDoc> {
    let t = db::tenants::by_id(&state.db, tenant_id)
        .await?
        .ok_or_else(|| ApiError::Internal("tenant vanished".into()))?;
    docs(state, vec![t])
        .await?
        .pop()
        .ok_or_else(|| ApiError::Internal("tenant vanished".into()))
}

/// A tenant the caller may see, or 404.
pub async fn visible(state: &AppState, caller: &Caller, name: &str) -> ApiResult<TenantRow> {
    db::tenants::by_name(&state.db, name)
        .await?
        .filter(|t| caller.sees(Scope::tenant(t.organization_id, t.tenant_id)))
        .ok_or_else(|| ApiError::not_found("tenant", name))
}

/// A tenant the caller may see, with its namespaces (one query), or 404.
pub async fn visible_with_namespaces(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> ApiResult<(TenantRow, Vec<NamespaceRow>)> {
    db::tenants::with_namespaces_by_name(&state.db, name)
        .await?
        .filter(|t| caller.sees(Scope::tenant(t.tenant.organization_id, t.tenant.tenant_id)))
        .map(|t| (t.tenant, t.namespaces.0))
        .ok_or_else(|| ApiError::not_found("tenant", name))
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
async fn list(
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
    let rows = db::tenants::list(
        &state.db,
        caller.organization_filter(),
        caller.tenant_filter(),
        f.organization.as_deref(),
        cursor.as_deref(),
        limit,
    )
    .await?;
    let next = next_cursor(&rows, limit, |t| t.name.clone());
    Ok(AppJson(TenantPage {
        items: docs(&state, rows).await?,
        next_cursor: next,
    }))
}

/// Shows a tenant: its quotas, whether the cluster has them, and the operator's status.
#[utoipa::path(get, path = "/v1/tenants/{name}", tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name")),
    responses((status = 200, body = TenantDoc)))]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<AppJson<TenantDoc>> {
    let (tenant, namespaces) = visible_with_namespaces(&state, &caller, &name).await?;
    let status = state.cluster.tenant_status(&tenant.name);
    tenant_doc(tenant, namespaces, status).map(AppJson)
}

/// Field errors of the operator's validation, renamed to the request's fields.
fn request_field(f: &str) -> String {
    match f {
        "metadata.name" => "name".into(),
        other => other.strip_prefix("spec.").unwrap_or(other).to_string(),
    }
}

/// Onboards an agency: stores it, applies its Tenant, and records its first quotas in the
/// timeline. Platform admins, and organization admins within their organization.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants",
    request_body = NewTenantDoc,
    responses((status = 201, body = TenantDoc)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<NewTenantDoc>,
) -> ApiResult<(StatusCode, AppJson<TenantDoc>)> {
    caller.require(&[Role::PlatformAdmin, Role::OrgAdmin], "onboard tenants")?;
    let org = db::organizations::by_name(&state.db, &body.organization)
        .await?
        .filter(|o| caller.sees(Scope::organization(o.organization_id)))
        .ok_or_else(|| ApiError::not_found("organization", &body.organization))?;

    let mut errors = Vec::new();
    validate_display_name(&body.display_name, &mut errors);
    let quotas: Vec<Option<Quota>> = body
        .namespaces
        .iter()
        .enumerate()
        .map(|(i, n)| {
            n.quota
                .parse(&format!("namespaces[{i}].quota"), &mut errors)
        })
        .collect();
    let spec_namespaces = body
        .namespaces
        .iter()
        .map(|n| govcloud_operator::crd::TenantNamespace {
            name: n.name.clone(),
            quota: govcloud_operator::crd::NamespaceQuota {
                cpu: n.quota.cpu.as_str().into(),
                memory: n.quota.memory.as_str().into(),
                storage: n.quota.storage.as_str().into(),
                pods: n.quota.pods,
                load_balancers: n.quota.load_balancers,
            },
        })
        .collect();
    let candidate = Tenant::new(
        &body.name,
        govcloud_operator::crd::TenantSpec {
            display_name: body.display_name.clone(),
            organization: body.organization.clone(),
            owners: body.owners.clone(),
            namespaces: spec_namespaces,
            limits: body.limits.clone(),
            pod_security: body.pod_security,
            network: body.network.clone(),
            billing: body.billing.clone(),
            suspended: false,
        },
    );
    if let Err(spec_errors) = validate(&candidate) {
        for e in spec_errors {
            let field = request_field(&e.field);
            // Quantities were already checked, in base units.
            if !errors.iter().any(|x| x.field == field) {
                errors.push(FieldError::new(field, e.message));
            }
        }
    }
    if body.billing.cost_center.chars().count() > 64 {
        errors.push(FieldError::new(
            "billing.costCenter",
            "at most 64 characters",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    // Names the platform keeps, and names the cluster already has for someone else, are
    // refused before anything is written; the database's unique index settles any race.
    for n in &body.namespaces {
        let full = namespace_name(&body.name, &n.name);
        if let Some(why) =
            state
                .cluster
                .namespace_taken(&full, &body.name, &state.settings.platform_namespaces)
        {
            return Err(ApiError::NamespaceTaken(why));
        }
    }
    let quotas: Vec<Quota> = quotas.into_iter().flatten().collect();
    let additions = body
        .namespaces
        .iter()
        .zip(&quotas)
        .map(|(n, q)| ((body.name.clone(), n.name.clone()), *q))
        .collect();

    let mut tx = state.db.begin().await?;
    let judgement = judge(&mut tx, &state, &org, &Change::Add(additions)).await?;
    let tenant_id = db::tenants::insert(
        &mut *tx,
        NewTenant {
            name: &body.name,
            organization_id: org.organization_id,
            display_name: &body.display_name,
            owners: to_json(&body.owners)?,
            limits: to_json(&body.limits)?,
            pod_security: body.pod_security.as_str(),
            network: to_json(&body.network)?,
            billing: to_json(&body.billing)?,
        },
    )
    .await
    .map_err(|e| {
        if db::is_unique_violation(&e) {
            ApiError::Conflict(format!(
                "tenant name {:?} is taken: tenant names are never reused, even after offboarding",
                body.name
            ))
        } else {
            e.into()
        }
    })?;
    let now = Utc::now();
    for (n, q) in body.namespaces.iter().zip(&quotas) {
        let full = namespace_name(&body.name, &n.name);
        db::tenants::insert_namespace(&mut *tx, tenant_id, &n.name, &full, *q)
            .await
            .map_err(|e| {
                if db::tenants::is_kube_name_taken(&e) {
                    ApiError::NamespaceTaken(format!(
                        "namespace {full} already belongs to another tenant; choose another namespace name"
                    ))
                } else {
                    e.into()
                }
            })?;
        quota_changes::insert(
            &mut *tx,
            quota_changes::NewChange {
                tenant_id,
                namespace: &n.name,
                effective_at: now,
                changed_by: &caller.name,
                capacity_request_id: None,
                from: None,
                to: *q,
            },
        )
        .await?;
    }
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &(&caller).into(),
            action: "tenant.create",
            object_kind: "tenant",
            object_id: body.name.clone(),
            organization_id: Some(org.organization_id),
            tenant_id: Some(tenant_id),
            detail: json!({
                "displayName": body.display_name,
                "namespaces": body.namespaces,
                "clusterCapacityChecked": judgement.cluster_checked,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    // The cluster may be unreachable: the sync loop retries until it has the tenant.
    apply_tenant(&state, tenant_id).await?;
    let doc = doc_by_id(&state, tenant_id).await?;
    Ok((StatusCode::CREATED, AppJson(doc)))
}

/// Offboards an agency (platform admins, and organization admins within their organization):
/// open capacity requests are cancelled, its reserved quota ends in the timeline now, and the
/// cluster deletes the Tenant — its namespaces first, through the operator's finalizer. The
/// tenant shows as `Terminating` until the cluster is done; then its namespace names are free.
/// Asking again while it terminates changes nothing.
#[utoipa::path(delete, path = "/v1/tenants/{name}", tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name")),
    responses((status = 202, body = TenantDoc)))]
async fn offboard(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, AppJson<TenantDoc>)> {
    let tenant = visible(&state, &caller, &name).await?;
    caller.require(&[Role::PlatformAdmin, Role::OrgAdmin], "offboard tenants")?;
    let mut tx = state.db.begin().await?;
    if db::tenants::mark_offboarded(&mut *tx, tenant.tenant_id, &caller.name).await? {
        let reason = "the tenant was offboarded";
        let cancelled =
            db::capacity_requests::cancel_open(&mut *tx, tenant.tenant_id, &caller.name, reason)
                .await?;
        let now = Utc::now();
        let namespaces = db::tenants::namespaces(&mut *tx, &[tenant.tenant_id]).await?;
        for n in &namespaces {
            // Reserved charges end here: the last entry of each namespace's timeline. Billing
            // closes the agency's last invoice from it.
            quota_changes::insert(
                &mut *tx,
                quota_changes::NewChange {
                    tenant_id: tenant.tenant_id,
                    namespace: &n.name,
                    effective_at: now,
                    changed_by: &caller.name,
                    capacity_request_id: None,
                    from: Some(n.quota),
                    to: Quota::default(),
                },
            )
            .await?;
        }
        audit::record(
            &mut *tx,
            audit::Event {
                actor: &(&caller).into(),
                action: "tenant.delete",
                object_kind: "tenant",
                object_id: tenant.name.clone(),
                organization_id: Some(tenant.organization_id),
                tenant_id: Some(tenant.tenant_id),
                detail: json!({
                    "namespaces": namespaces.iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
                    "cancelledCapacityRequests": cancelled,
                }),
            },
        )
        .await?;
    }
    tx.commit().await?;
    // The cluster may be unreachable: the sync loop retries until the Tenant is gone.
    if let Err(e) = crate::sync::remove_offboarded_tenant(
        &state,
        tenant.tenant_id,
        &tenant.name,
        tenant.organization_id,
    )
    .await
    {
        tracing::warn!(tenant = %name, error = %e, "offboarded tenant not removed yet; will retry");
    }
    let doc = doc_by_id(&state, tenant.tenant_id).await?;
    Ok((StatusCode::ACCEPTED, AppJson(doc)))
}

fn to_json(v: &impl Serialize) -> ApiResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| ApiError::Internal(e.to_string()))
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
}

page!(QuotaChangePage, QuotaChange);

/// The tenant's quota timeline, oldest first: every change, who made it, and which request.
#[utoipa::path(get, path = "/v1/tenants/{name}/quota-changes", tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name"), PageParams),
    responses((status = 200, body = QuotaChangePage)))]
async fn timeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    AppQuery(page): AppQuery<PageParams>,
) -> ApiResult<AppJson<QuotaChangePage>> {
    let t = visible(&state, &caller, &name).await?;
    let limit = page.limit()?;
    let after = page.cursor_as::<i64>()?;
    let rows = quota_changes::list(&state.db, t.tenant_id, after, limit).await?;
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
            })
            .collect(),
        next_cursor: next,
    }))
}
