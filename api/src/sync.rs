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
use crate::db::{self, audit, capacity_requests::RequestRow, quota_changes};
use crate::desired::build_tenant;
use crate::error::{ApiError, ApiResult};
use crate::quota::Quota;

/// How often every tenant is applied again even when nothing changed, so a cluster that lost
/// its Tenants (restored, rebuilt, or a simulator restarted) gets them back.
pub const FULL_RESYNC: Duration = Duration::from_secs(300);

/// Writes an approved request's quota into the namespace and the timeline, and marks it
/// written with the tenant version that carries it. Call inside a transaction holding the
/// request's row lock.
pub async fn write_quota(
    tx: &mut PgConnection,
    request: &RequestRow,
    changed_by: &str,
    effective_at: DateTime<Utc>,
) -> ApiResult<(Quota, Quota)> {
    let from: Quota = sqlx::query_as(
        "select cpu_milli, memory_bytes, storage_bytes, pods, load_balancers from tenant_namespace
         where tenant_id = $1 and name = $2 for update",
    )
    .bind(request.tenant_id)
    .bind(&request.namespace)
    .fetch_one(&mut *tx)
    .await?;
    let to = request.patch.apply_to(from);
    db::tenants::set_namespace_quota(&mut *tx, request.tenant_id, &request.namespace, to).await?;
    quota_changes::insert(
        &mut *tx,
        quota_changes::NewChange {
            tenant_id: request.tenant_id,
            namespace: &request.namespace,
            effective_at,
            changed_by,
            capacity_request_id: Some(request.capacity_request_id),
            from: Some(from),
            to,
        },
    )
    .await?;
    let version = db::tenants::bump_version(&mut *tx, request.tenant_id).await?;
    db::capacity_requests::mark_written(&mut *tx, request.capacity_request_id, version).await?;
    Ok((from, to))
}

/// Applies a tenant's desired state to the cluster; on success records it applied and marks
/// approved the requests it carried. Answers whether the cluster took it.
pub async fn apply_tenant(state: &AppState, tenant_id: Uuid) -> ApiResult<bool> {
    apply(state, tenant_id, false).await
}

/// Like [`apply_tenant`], but skips the write when the cluster (as the watch last saw it)
/// already has exactly this spec: the periodic full pass costs no writes when nothing drifted.
async fn apply(state: &AppState, tenant_id: Uuid, skip_if_present: bool) -> ApiResult<bool> {
    let Some(row) = db::tenants::by_id(&state.db, tenant_id).await? else {
        return Ok(false);
    };
    let namespaces = db::tenants::namespaces(&state.db, &[tenant_id]).await?;
    let tenant = build_tenant(&row, &namespaces).map_err(|e| ApiError::Internal(e.to_string()))?;
    let present = skip_if_present
        && row.applied_version >= row.spec_version
        && state.cluster.has_tenant(&tenant);
    if present {
        return Ok(true);
    }
    if let Err(e) = state.cluster.apply_tenant(&tenant).await {
        state.metrics.sync_failures.inc();
        tracing::warn!(tenant = %row.name, error = %e, "tenant not applied; will retry");
        db::tenants::mark_apply_failed(&state.db, tenant_id, &e.to_string()).await?;
        return Ok(false);
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
pub async fn write_due(state: &AppState) -> ApiResult<usize> {
    let actor = audit::Actor::system("scheduler");
    let mut written = 0;
    loop {
        let mut tx = state.db.begin().await?;
        let Some(request) = db::capacity_requests::next_due(&mut *tx).await? else {
            return Ok(written);
        };
        let (from, to) =
            write_quota(&mut tx, &request, &actor.name, request.effective_from).await?;
        audit::record(
            &mut *tx,
            audit::Event {
                actor: &actor,
                action: "capacity_request.effective",
                object_kind: "capacity_request",
                object_id: request.capacity_request_id.to_string(),
                organization_id: Some(request.organization_id),
                tenant_id: Some(request.tenant_id),
                detail: json!({
                    "tenant": request.tenant, "namespace": request.namespace,
                    "from": crate::quota::QuotaDoc::from(from), "to": crate::quota::QuotaDoc::from(to),
                }),
            },
        )
        .await?;
        tx.commit().await?;
        written += 1;
    }
}

/// One pass: due changes written, then every tenant the cluster lacks applied (`all`: every
/// tenant). Answers how many tenants are still not applied.
pub async fn sync_once(state: &AppState, all: bool) -> ApiResult<usize> {
    write_due(state).await?;
    let mut left = 0;
    for id in db::tenants::to_apply(&state.db, all).await? {
        if !apply(state, id, all).await? {
            left += 1;
        }
    }
    state
        .metrics
        .tenants_unapplied
        .set(i64::try_from(left).unwrap_or(i64::MAX));
    Ok(left)
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
