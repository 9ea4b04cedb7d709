//! Tenants (agencies): onboarding stores one and applies its Tenant; offboarding removes it
//! from the cluster while its records stay; reading one joins the status the operator reports.

use chrono::Utc;
use govcloud_tenant::crd::{Billing, Limits, Network, Owner, PodSecurityLevel, TenantStatus};
use govcloud_tenant::names::namespace_name;
use govcloud_tenant::validate::validate;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::app::fit::{Change, judge};
use crate::app::sync::{Apply, apply_tenant, remove_offboarded_tenant};
use crate::app::{AppError, AppResult};
use crate::db::{self, audit, quota_changes};
use crate::domain::field::{DISPLAY_NAME, FieldError, check_text};
use crate::domain::principal::{Caller, Role, Scope};
use crate::domain::quota::{Quota, QuotaDoc};
use crate::domain::tenant::{Agency, AgencyNamespace, Editable, TENANT_ADMIN_EDITS, build_tenant};

pub use crate::db::quota_changes::QuotaChangeRow;
pub use crate::db::tenants::{NamespaceRow, TenantRow};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceDoc {
    /// The short name; the namespace in the cluster is `<tenant>-<name>`.
    #[schema(example = "prod")]
    pub name: String,
    pub quota: QuotaDoc,
}

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

/// A tenant with its namespaces and what the operator last reported of it.
pub struct TenantView {
    pub row: TenantRow,
    pub namespaces: Vec<NamespaceRow>,
    pub status: Option<TenantStatus>,
}

/// Refuses changes to a tenant being offboarded.
pub fn ensure_active(t: &TenantRow) -> AppResult<()> {
    match t.offboarded_at {
        Some(_) => Err(AppError::Offboarding(t.name.clone())),
        None => Ok(()),
    }
}

/// A tenant the caller may see, or not found.
pub async fn visible(state: &AppState, caller: &Caller, name: &str) -> AppResult<TenantRow> {
    db::tenants::by_name(&state.db, name)
        .await?
        .filter(|t| caller.sees(Scope::tenant(t.organization_id, t.tenant_id)))
        .ok_or_else(|| AppError::not_found("tenant", name))
}

/// A tenant the caller may see, with its namespaces, or not found.
pub async fn visible_with_namespaces(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> AppResult<(TenantRow, Vec<NamespaceRow>)> {
    let found = match state.tenants.get(name) {
        Some(hit) => Some(hit),
        None => {
            let generation = state.tenants.generation();
            let read = db::tenants::by_name_with_namespaces(&state.db, name).await?;
            if let Some(t) = &read {
                state.tenants.put(name.to_string(), t.clone(), generation);
            }
            read
        }
    };
    found
        .filter(|(t, _)| caller.sees(Scope::tenant(t.organization_id, t.tenant_id)))
        .ok_or_else(|| AppError::not_found("tenant", name))
}

async fn views(state: &AppState, rows: Vec<TenantRow>) -> AppResult<Vec<TenantView>> {
    let ids: Vec<Uuid> = rows.iter().map(|t| t.tenant_id).collect();
    let mut by_tenant: std::collections::HashMap<Uuid, Vec<NamespaceRow>> =
        std::collections::HashMap::new();
    for n in db::tenants::namespaces(&state.db, &ids).await? {
        by_tenant.entry(n.tenant_id).or_default().push(n);
    }
    Ok(rows
        .into_iter()
        .map(|row| TenantView {
            status: state.cluster.tenant_status(&row.name),
            namespaces: by_tenant.remove(&row.tenant_id).unwrap_or_default(),
            row,
        })
        .collect())
}

/// A page of the tenants the caller may see, by name.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    organization: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<TenantView>> {
    let rows = db::tenants::list(
        &state.db,
        caller.organization_filter(),
        caller.tenant_filter(),
        organization,
        after,
        limit,
    )
    .await?;
    views(state, rows).await
}

/// A tenant the caller may see.
pub async fn show(state: &AppState, caller: &Caller, name: &str) -> AppResult<TenantView> {
    let (row, namespaces) = visible_with_namespaces(state, caller, name).await?;
    Ok(TenantView {
        status: state.cluster.tenant_status(&row.name),
        namespaces,
        row,
    })
}

/// A tenant just written, read back by id (even while it terminates).
async fn view_by_id(state: &AppState, tenant_id: Uuid) -> AppResult<TenantView> {
    let row = db::tenants::by_id(&state.db, tenant_id)
        .await?
        .ok_or_else(|| AppError::Internal("tenant vanished".into()))?;
    views(state, vec![row])
        .await?
        .pop()
        .ok_or_else(|| AppError::Internal("tenant vanished".into()))
}

/// Field errors of the Tenant's validation, renamed to the request's fields.
fn request_field(f: &str) -> String {
    match f {
        "metadata.name" => "name".into(),
        other => other.strip_prefix("spec.").unwrap_or(other).to_string(),
    }
}

/// The Tenant's validation errors, renamed to the request's fields.
fn spec_errors(agency: &Agency, errors: &mut Vec<FieldError>) {
    if let Err(spec_errors) = validate(&build_tenant(agency)) {
        for e in spec_errors {
            let field = request_field(&e.field);
            if !errors.iter().any(|x: &FieldError| x.field == field) {
                errors.push(FieldError::new(field, e.message));
            }
        }
    }
}

/// Checks a new tenant as the cluster would, every bad field at once; answers its quotas.
fn check_new_tenant(body: &NewTenantDoc) -> AppResult<Vec<Quota>> {
    let mut errors = Vec::new();
    check_text("displayName", &body.display_name, DISPLAY_NAME, &mut errors);
    if !body.network.allow_from.is_empty() {
        errors.push(FieldError::new(
            "network.allowFrom",
            "links are asked for and approved through /v1/links, once both agencies exist",
        ));
    }
    let quotas: Vec<Option<Quota>> = body
        .namespaces
        .iter()
        .enumerate()
        .map(|(i, n)| {
            n.quota
                .parse(&format!("namespaces[{i}].quota"), &mut errors)
        })
        .collect();
    // The very Tenant the cluster will get (bad quotas as zero: they are already reported).
    let candidate = Agency {
        name: body.name.clone(),
        display_name: body.display_name.clone(),
        organization: body.organization.clone(),
        owners: body.owners.clone(),
        namespaces: body
            .namespaces
            .iter()
            .zip(&quotas)
            .map(|(n, q)| AgencyNamespace {
                name: n.name.clone(),
                quota: q.unwrap_or_default(),
            })
            .collect(),
        limits: body.limits.clone(),
        pod_security: body.pod_security,
        network: body.network.clone(),
        billing: body.billing.clone(),
        suspended: false,
    };
    spec_errors(&candidate, &mut errors);
    AppError::check(errors)?;
    Ok(quotas.into_iter().flatten().collect())
}

/// Onboards an agency: stores it, applies its Tenant, and records its first quotas in the
/// timeline. Platform admins, and organization admins within their organization.
pub async fn onboard(
    state: &AppState,
    caller: &Caller,
    body: &NewTenantDoc,
) -> AppResult<TenantView> {
    caller.require(&[Role::PlatformAdmin, Role::OrgAdmin], "onboard tenants")?;
    let org = crate::app::organizations::visible(state, caller, &body.organization).await?;
    let quotas = check_new_tenant(body)?;
    // Names the platform keeps, and names the cluster already has for someone else, are
    // refused before anything is written; the database's unique index settles any race.
    for n in &body.namespaces {
        let full = namespace_name(&body.name, &n.name);
        if let Some(why) =
            state
                .cluster
                .namespace_taken(&full, &body.name, &state.settings.platform_namespaces)
        {
            return Err(AppError::NamespaceTaken(why));
        }
    }
    let additions = body
        .namespaces
        .iter()
        .zip(&quotas)
        .map(|(n, q)| ((body.name.clone(), n.name.clone()), *q))
        .collect();

    let mut tx = state.db.begin().await?;
    let judgement = judge(&mut tx, state, &org, &Change::Add(additions)).await?;
    let tenant_id = db::tenants::insert(
        &mut *tx,
        db::tenants::NewTenant {
            name: &body.name,
            organization_id: org.organization_id,
            display_name: &body.display_name,
            owners: &body.owners,
            limits: &body.limits,
            pod_security: body.pod_security,
            network: &body.network,
            billing: &body.billing,
        },
    )
    .await
    .map_err(|e| {
        if db::is_unique_violation(&e) {
            AppError::Conflict(format!(
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
                    AppError::NamespaceTaken(format!(
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
            actor: &caller.into(),
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
    apply_tenant(state, tenant_id, Apply::Always).await?;
    view_by_id(state, tenant_id).await
}

/// Adds an entry now to the quota timeline of each of the tenant's namespaces, from its quota
/// to `to(quota)` (whether the tenant is suspended is read from its row); answers the
/// namespaces.
async fn mark_timeline(
    tx: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    by: &str,
    to: impl Fn(Quota) -> Quota,
) -> AppResult<Vec<NamespaceRow>> {
    let now = Utc::now();
    let namespaces = db::tenants::namespaces(&mut *tx, &[tenant_id]).await?;
    for n in &namespaces {
        quota_changes::insert(
            &mut *tx,
            quota_changes::NewChange {
                tenant_id,
                namespace: &n.name,
                effective_at: now,
                changed_by: by,
                capacity_request_id: None,
                from: Some(n.quota()),
                to: to(n.quota()),
            },
        )
        .await?;
    }
    Ok(namespaces)
}

/// Offboards an agency (platform admins, and organization admins within their organization):
/// open capacity requests are cancelled, its reserved quota ends in the timeline now, its
/// people's access ends, and the cluster deletes the Tenant — its namespaces first, through
/// the operator's finalizer. Asking again while it terminates changes nothing.
pub async fn offboard(state: &AppState, caller: &Caller, name: &str) -> AppResult<TenantView> {
    let tenant = visible(state, caller, name).await?;
    caller.require(&[Role::PlatformAdmin, Role::OrgAdmin], "offboard tenants")?;
    let mut providers = Vec::new();
    let mut tx = state.db.begin().await?;
    if db::tenants::mark_offboarded(&mut *tx, tenant.tenant_id, &caller.name).await? {
        let reason = "the tenant was offboarded";
        let cancelled =
            db::capacity_requests::cancel_open(&mut *tx, tenant.tenant_id, &caller.name, reason)
                .await?;
        // Reserved charges end here: the last entry of each namespace's timeline. Billing
        // closes the agency's last invoice from it.
        let namespaces = mark_timeline(&mut tx, tenant.tenant_id, &caller.name, |_| {
            Quota::default()
        })
        .await?;
        // Its admins' API tokens stop working on their next request.
        let removed =
            db::principals::delete_of_tenant(&mut tx, tenant.tenant_id, &caller.name).await?;
        // Its links close: no agency keeps a way into it, nor it into another.
        providers =
            crate::app::grants::close_all_of(&mut tx, tenant.tenant_id, &caller.name).await?;
        audit::record(
            &mut *tx,
            audit::Event {
                actor: &caller.into(),
                action: "tenant.delete",
                object_kind: "tenant",
                object_id: tenant.name.clone(),
                organization_id: Some(tenant.organization_id),
                tenant_id: Some(tenant.tenant_id),
                detail: json!({
                    "namespaces": namespaces.iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
                    "cancelledCapacityRequests": cancelled,
                    "removedPrincipals": removed,
                    "providersRegranted": providers.len(),
                }),
            },
        )
        .await?;
    }
    tx.commit().await?;
    state.tokens.clear();
    for provider in providers {
        apply_tenant(state, provider, Apply::Always).await?;
    }
    // The cluster may be unreachable: the sync loop retries until the Tenant is gone.
    if let Err(e) = remove_offboarded_tenant(
        state,
        tenant.tenant_id,
        &tenant.name,
        tenant.organization_id,
    )
    .await
    {
        tracing::warn!(tenant = %name, error = %e, "offboarded tenant not removed yet; will retry");
    }
    view_by_id(state, tenant.tenant_id).await
}

/// A page of the tenant's quota timeline, oldest first.
pub async fn timeline(
    state: &AppState,
    caller: &Caller,
    name: &str,
    after: Option<i64>,
    limit: i64,
) -> AppResult<Vec<QuotaChangeRow>> {
    let t = visible(state, caller, name).await?;
    Ok(quota_changes::list(&state.db, t.tenant_id, after, limit).await?)
}

/// Edits an agency with a JSON merge patch of its [`Editable`] document: display name, owners,
/// limit ranges, Pod Security level and internet egress. Organization and platform admins;
/// tenant admins for their own agency's owners only. Validated as onboarding is; audited with
/// what changed; applied to the cluster at once (the sync loop retries if it cannot be).
pub async fn edit(
    state: &AppState,
    caller: &Caller,
    name: &str,
    patch: &serde_json::Value,
) -> AppResult<TenantView> {
    let (tenant, namespaces) = visible_with_namespaces(state, caller, name).await?;
    caller.require(
        &[Role::PlatformAdmin, Role::OrgAdmin, Role::TenantAdmin],
        "edit tenants",
    )?;
    ensure_active(&tenant)?;
    if !patch.is_object() {
        return Err(AppError::invalid(
            "body",
            "must be a JSON object: a merge patch of the fields to change",
        ));
    }
    let agency = tenant.agency(&namespaces);
    let before = Editable::of(&agency);
    let mut document =
        serde_json::to_value(&before).map_err(|e| AppError::Internal(e.to_string()))?;
    json_patch::merge(&mut document, patch);
    let after: Editable = serde_path_to_error::deserialize(document).map_err(|e| {
        let field = match e.path().to_string() {
            p if p == "." => "body".to_string(),
            p => p,
        };
        let message = e.inner().to_string();
        match message
            .strip_prefix("missing field `")
            .and_then(|r| r.strip_suffix('`'))
        {
            Some(missing) => AppError::invalid(missing, "cannot be removed"),
            None => AppError::invalid(field, message),
        }
    })?;
    let changed = after.changed_since(&before);
    if caller.role == Role::TenantAdmin
        && let Some(other) = changed.iter().find(|f| !TENANT_ADMIN_EDITS.contains(f))
    {
        return Err(AppError::Forbidden(format!(
            "a tenant-admin may change only its agency's owners, not {other}"
        )));
    }
    if changed.is_empty() {
        return view_by_id(state, tenant.tenant_id).await;
    }
    let edited = after.applied_to(&agency);
    let mut errors = Vec::new();
    check_text(
        "displayName",
        &edited.display_name,
        DISPLAY_NAME,
        &mut errors,
    );
    spec_errors(&edited, &mut errors);
    AppError::check(errors)?;

    let mut tx = state.db.begin().await?;
    // Under the row's lock, so two edits never interleave.
    db::tenants::lock(&mut *tx, tenant.tenant_id).await?;
    db::tenants::update_spec(
        &mut *tx,
        tenant.tenant_id,
        db::tenants::EditedTenant {
            display_name: &edited.display_name,
            owners: &edited.owners,
            limits: &edited.limits,
            pod_security: edited.pod_security,
            network: &edited.network,
        },
    )
    .await?;
    let version = db::tenants::bump_version(&mut *tx, tenant.tenant_id).await?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: "tenant.update",
            object_kind: "tenant",
            object_id: tenant.name.clone(),
            organization_id: Some(tenant.organization_id),
            tenant_id: Some(tenant.tenant_id),
            detail: json!({
                "changed": changed, "before": before, "after": after, "tenantVersion": version,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    apply_tenant(state, tenant.tenant_id, Apply::Always).await?;
    view_by_id(state, tenant.tenant_id).await
}

/// Suspends (`true`) or resumes an agency, with a reason (organization and platform admins).
/// A suspended agency keeps its data and quotas, but the operator sets its pod quota to zero
/// so nothing new runs; the quota timeline records the moment, so reserved charges stop for
/// the suspended time. Asking for the state it is already in is a conflict.
pub async fn set_suspended(
    state: &AppState,
    caller: &Caller,
    name: &str,
    suspend: bool,
    reason: &str,
) -> AppResult<TenantView> {
    let tenant = visible(state, caller, name).await?;
    let verb = if suspend { "suspend" } else { "resume" };
    caller.require(
        &[Role::PlatformAdmin, Role::OrgAdmin],
        &format!("{verb} tenants"),
    )?;
    ensure_active(&tenant)?;
    let mut errors = Vec::new();
    check_text("reason", reason, crate::domain::field::REASON, &mut errors);
    AppError::check(errors)?;
    let mut tx = state.db.begin().await?;
    if !db::tenants::set_suspended(&mut *tx, tenant.tenant_id, suspend, &caller.name, reason)
        .await?
    {
        return Err(AppError::Conflict(format!(
            "tenant {} is already {}",
            tenant.name,
            if suspend {
                "suspended"
            } else {
                "running (not suspended)"
            }
        )));
    }
    // The quota stays; the entries mark from when the tenant is (not) suspended.
    mark_timeline(&mut tx, tenant.tenant_id, &caller.name, |q| q).await?;
    let version = db::tenants::bump_version(&mut *tx, tenant.tenant_id).await?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: if suspend {
                "tenant.suspend"
            } else {
                "tenant.resume"
            },
            object_kind: "tenant",
            object_id: tenant.name.clone(),
            organization_id: Some(tenant.organization_id),
            tenant_id: Some(tenant.tenant_id),
            detail: json!({ "reason": reason, "tenantVersion": version }),
        },
    )
    .await?;
    tx.commit().await?;
    apply_tenant(state, tenant.tenant_id, Apply::Always).await?;
    view_by_id(state, tenant.tenant_id).await
}
