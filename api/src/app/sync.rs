//! Brings the cluster to what the database says, and nothing is lost on the way: quota changes
//! whose date has come are written (once, with their timeline entry), and every tenant whose
//! desired state the cluster does not have yet is applied until it is. Many replicas may run
//! this at once: due requests are claimed with `skip locked`, and applying is idempotent.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::AppState;
use crate::app::{AppError, AppResult};
use crate::db::capacity_requests::{RequestRow, Subject};
use crate::db::organizations::Allotment;
use crate::db::{self, audit, quota_changes};
use crate::domain::quota::{Amounts, Quota, QuotaDoc};
use crate::domain::tenant::{build_tenant, drifted_fields, retry_delay};

/// How often every tenant is applied again even when nothing changed, so a cluster that lost
/// its Tenants (restored, rebuilt, or a simulator restarted) gets them back, and a Tenant
/// changed in the cluster gets the API's spec back (reported as drift).
pub const FULL_RESYNC: Duration = Duration::from_secs(300);

/// Writes an approved request's quota into the namespace and the timeline, and marks it
/// written with the tenant version that carries it. Call inside a transaction holding the
/// request's row lock.
pub async fn write_quota(
    tx: &mut PgConnection,
    request: &RequestRow,
    changed_by: &str,
    effective_at: DateTime<Utc>,
) -> AppResult<(Quota, Quota)> {
    let Subject::Namespace {
        tenant_id,
        namespace,
        ..
    } = request.subject()
    else {
        return Err(AppError::Internal(
            "an allotment request has no namespace quota to write".into(),
        ));
    };
    let (from, to) =
        db::tenants::change_namespace_quota(&mut *tx, tenant_id, &namespace, request.patch())
            .await?;
    quota_changes::insert(
        &mut *tx,
        quota_changes::NewChange {
            tenant_id,
            namespace: &namespace,
            effective_at,
            changed_by,
            capacity_request_id: Some(request.capacity_request_id),
            from: Some(from),
            to,
        },
    )
    .await?;
    let version = db::tenants::bump_version(&mut *tx, tenant_id).await?;
    db::capacity_requests::mark_written(&mut *tx, request.capacity_request_id, version).await?;
    Ok((from, to))
}

/// Writes an approved allotment request into its organization and the allotment timeline, and
/// marks it approved (an allotment needs nothing of the cluster). Call inside a transaction
/// holding the request's row lock; answers the allotment before and after.
pub async fn write_allotment(
    tx: &mut PgConnection,
    request: &RequestRow,
    changed_by: &str,
    effective_at: DateTime<Utc>,
) -> AppResult<(Amounts, Amounts)> {
    let Subject::Allotment(to) = request.subject() else {
        return Err(AppError::Internal(
            "a namespace's request has no allotment to write".into(),
        ));
    };
    let to =
        Allotment::of(to).ok_or_else(|| AppError::Internal("allotment past a bigint".into()))?;
    let from = db::organizations::set_allotment(&mut *tx, request.organization_id, &to).await?;
    let from =
        Allotment::of(from).ok_or_else(|| AppError::Internal("allotment past a bigint".into()))?;
    db::organizations::insert_allotment_change(
        &mut *tx,
        request.organization_id,
        effective_at,
        changed_by,
        Some(request.capacity_request_id),
        Some(&from),
        &to,
    )
    .await?;
    db::capacity_requests::mark_allotment_done(&mut *tx, request.capacity_request_id).await?;
    Ok((from.totals().into(), to.totals().into()))
}

/// When [`apply_tenant`] may skip its write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    /// Always write: the desired state just changed.
    Always,
    /// Skip the write when the cluster (as the watch last saw it) already has exactly this
    /// spec: the periodic full pass costs no writes when nothing drifted.
    UnlessPresent,
}

/// Applies a tenant's desired state to the cluster; on success records it applied and marks
/// approved the requests it carried. Answers whether the cluster has it. A failure is
/// recorded on the tenant (with the next attempt's time), never answered as an error: the
/// sync loop retries.
pub async fn apply_tenant(state: &AppState, tenant_id: Uuid, mode: Apply) -> AppResult<bool> {
    let Some(row) = db::tenants::by_id(&state.db, tenant_id).await? else {
        return Ok(false);
    };
    let namespaces = db::tenants::namespaces(&state.db, &[tenant_id]).await?;
    let tenant = build_tenant(&row.agency(&namespaces));
    let skip_if_present = mode == Apply::UnlessPresent;
    let present = skip_if_present
        && row.applied_version >= row.spec_version
        && state.cluster.has_tenant(&tenant);
    if present {
        return Ok(true);
    }
    // The cluster had our spec, and now has another: someone changed the Tenant in the cluster.
    // The database is the source of truth for a tenant the API manages; say so, and put it back.
    let drifted = match state.cluster.seen_spec(&row.name) {
        Some(seen) if skip_if_present && row.applied_version >= row.spec_version => {
            drifted_fields(&tenant.spec, &seen)
        }
        _ => Vec::new(),
    };
    if let Err(e) = state.cluster.apply_tenant(&tenant).await {
        state.metrics.sync_failures.inc();
        let refused = e.is_refusal();
        let plain = e.plain();
        let attempt = row.apply_attempts.saturating_add(1);
        let retry_in = retry_delay(attempt, refused);
        let previous = db::tenants::mark_apply_failed(
            &state.db,
            tenant_id,
            &plain,
            refused,
            retry_in.as_secs_f64(),
        )
        .await?;
        // Said once, and again only when the cause changes; each retry is a debug line.
        if previous.as_deref() != Some(plain.as_str()) {
            tracing::warn!(tenant = %row.name, error = %e, refused, ?retry_in, "tenant not applied; will retry");
        } else {
            tracing::debug!(tenant = %row.name, attempt, ?retry_in, "tenant still not applied");
        }
        return Ok(false);
    }
    if !drifted.is_empty() {
        state.metrics.tenant_drift.inc();
        let fields = drifted.join(", ");
        tracing::warn!(tenant = %row.name, fields = %fields, "Tenant changed in the cluster; the API's spec is put back");
        state
            .cluster
            .warn_on_tenant(
                &tenant,
                "SpecReverted",
                format!(
                    "spec ({fields}) was changed in the cluster; govcloud's API manages this Tenant and put its spec back: change agencies through the API"
                ),
            )
            .await;
    }
    let mut tx = state.db.begin().await?;
    db::tenants::mark_applied(&mut *tx, tenant_id, row.spec_version).await?;
    let approved =
        db::capacity_requests::mark_applied(&mut *tx, tenant_id, row.spec_version).await?;
    let actor = audit::Actor::system("sync");
    for id in &approved {
        audit::record(
            &mut *tx,
            audit::Event {
                actor: &actor,
                action: "capacity_request.applied",
                object_kind: "capacity_request",
                object_id: id.to_string(),
                organization_id: Some(row.organization_id),
                tenant_id: Some(tenant_id),
                detail: json!({ "tenant": row.name, "tenantVersion": row.spec_version }),
            },
        )
        .await?;
    }
    tx.commit().await?;
    if !approved.is_empty() {
        tracing::info!(tenant = %row.name, requests = approved.len(), "capacity changes applied");
    }
    Ok(true)
}

/// Writes the quota of every approved request whose date has come; answers how many.
pub async fn write_due(state: &AppState) -> AppResult<usize> {
    let actor = audit::Actor::system("scheduler");
    let mut written = 0;
    loop {
        let mut tx = state.db.begin().await?;
        let Some(request) = db::capacity_requests::next_due(&mut *tx).await? else {
            return Ok(written);
        };
        let detail = match request.subject() {
            Subject::Namespace { .. } => {
                let (from, to) =
                    write_quota(&mut tx, &request, &actor.name, request.effective_from).await?;
                json!({
                    "tenant": request.tenant, "namespace": request.namespace,
                    "from": QuotaDoc::from(from), "to": QuotaDoc::from(to),
                })
            }
            Subject::Allotment(_) => {
                let (from, to) =
                    write_allotment(&mut tx, &request, &actor.name, request.effective_from).await?;
                json!({ "organization": request.organization, "from": from, "to": to })
            }
        };
        audit::record(
            &mut *tx,
            audit::Event {
                actor: &actor,
                action: "capacity_request.effective",
                object_kind: "capacity_request",
                object_id: request.capacity_request_id.to_string(),
                organization_id: Some(request.organization_id),
                tenant_id: request.tenant_id,
                detail,
            },
        )
        .await?;
        tx.commit().await?;
        written += 1;
    }
}

/// Asks the cluster to delete every offboarded tenant it may still hold. Answers how many are
/// gone.
pub async fn remove_offboarded(state: &AppState) -> AppResult<usize> {
    let mut gone = 0;
    for t in db::tenants::terminating(&state.db).await? {
        if remove_offboarded_tenant(state, t.tenant_id, &t.name, t.organization_id).await? {
            gone += 1;
        }
    }
    Ok(gone)
}

/// Asks the cluster to delete one offboarded tenant, and records it as gone once the cluster no
/// longer has it: its namespace names are free again. Answers whether it is gone.
pub async fn remove_offboarded_tenant(
    state: &AppState,
    tenant_id: Uuid,
    name: &str,
    organization_id: Uuid,
) -> AppResult<bool> {
    match state.cluster.delete_tenant(name).await {
        Ok(false) => Ok(false),
        Ok(true) => {
            let mut tx = state.db.begin().await?;
            if db::tenants::mark_gone(&mut tx, tenant_id).await? {
                audit::record(
                    &mut *tx,
                    audit::Event {
                        actor: &audit::Actor::system("sync"),
                        action: "tenant.gone",
                        object_kind: "tenant",
                        object_id: name.to_string(),
                        organization_id: Some(organization_id),
                        tenant_id: Some(tenant_id),
                        detail: json!({ "tenant": name }),
                    },
                )
                .await?;
                tracing::info!(tenant = %name, "tenant offboarded: gone from the cluster");
            }
            tx.commit().await?;
            Ok(true)
        }
        Err(e) => {
            state.metrics.sync_failures.inc();
            tracing::warn!(tenant = %name, error = %e, "offboarded tenant not deleted yet; will retry");
            Ok(false)
        }
    }
}

/// One pass: due changes written, offboarded tenants removed, then every tenant the cluster
/// lacks applied (`all`: every tenant). Answers how many tenants are still not applied.
pub async fn sync_once(state: &AppState, all: bool) -> AppResult<usize> {
    write_due(state).await?;
    remove_offboarded(state).await?;
    let mode = if all {
        Apply::UnlessPresent
    } else {
        Apply::Always
    };
    for id in db::tenants::to_apply(&state.db, all).await? {
        apply_tenant(state, id, mode).await?;
    }
    // Those waiting out a backoff count too.
    let left = db::tenants::count_unapplied(&state.db).await?;
    state.metrics.tenants_unapplied.set(left);
    Ok(usize::try_from(left).unwrap_or(usize::MAX))
}

/// Runs [`sync_once`] every `interval` until `shutdown`.
pub async fn run(state: AppState, interval: Duration, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut last_full: Option<Instant> = None;
    loop {
        let all = last_full.is_none_or(|t| t.elapsed() >= FULL_RESYNC);
        match sync_once(&state, all).await {
            Ok(left) => {
                if all {
                    last_full = Some(Instant::now());
                }
                if left > 0 {
                    tracing::info!(tenants = left, "tenants waiting for the cluster");
                }
            }
            Err(e) => tracing::warn!(error = %e, "sync pass failed; retrying"),
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
