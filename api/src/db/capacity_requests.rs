use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::capacity::Scheduled;
use crate::quota::QuotaPatch;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestRow {
    pub capacity_request_id: Uuid,
    pub tenant_id: Uuid,
    pub tenant: String,
    pub organization_id: Uuid,
    pub namespace: String,
    #[sqlx(flatten)]
    pub patch: QuotaPatch,
    pub reason: String,
    pub effective_from: DateTime<Utc>,
    pub state: String,
    pub requested_by: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_reason: Option<String>,
    pub quota_written_at: Option<DateTime<Utc>>,
    pub tenant_version: Option<i64>,
    pub applied_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SELECT: &str = "select r.*, t.name as tenant, t.organization_id from capacity_request r join tenant t using (tenant_id)";

pub struct NewRequest<'a> {
    pub tenant_id: Uuid,
    pub namespace: &'a str,
    pub patch: QuotaPatch,
    pub reason: &'a str,
    pub effective_from: DateTime<Utc>,
    pub requested_by: &'a str,
}

/// Stores a new pending request; answers its id and creation time.
pub async fn insert(
    db: impl PgExecutor<'_>,
    r: NewRequest<'_>,
) -> sqlx::Result<(Uuid, DateTime<Utc>)> {
    sqlx::query_as(
        "insert into capacity_request (tenant_id, namespace, cpu_milli, memory_bytes, storage_bytes, pods, load_balancers,
                                       reason, effective_from, state, requested_by)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10) returning capacity_request_id, created_at",
    )
    .bind(r.tenant_id)
    .bind(r.namespace)
    .bind(r.patch.cpu_milli)
    .bind(r.patch.memory_bytes)
    .bind(r.patch.storage_bytes)
    .bind(r.patch.pods)
    .bind(r.patch.load_balancers)
    .bind(r.reason)
    .bind(r.effective_from)
    .bind(r.requested_by)
    .fetch_one(db)
    .await
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<RequestRow>> {
    sqlx::query_as(&format!("{SELECT} where r.capacity_request_id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Reads a request and locks it for the rest of the transaction.
pub async fn lock(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<RequestRow>> {
    sqlx::query_as(&format!(
        "{SELECT} where r.capacity_request_id = $1 for update of r"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

pub struct ListFilter<'a> {
    pub only_organization: Option<Uuid>,
    pub only_tenant: Option<Uuid>,
    pub tenant_name: Option<&'a str>,
    pub state: Option<&'a str>,
    /// Continue after this (created_at, id), newest first.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

pub async fn list(db: impl PgExecutor<'_>, f: ListFilter<'_>) -> sqlx::Result<Vec<RequestRow>> {
    sqlx::query_as(&format!(
        "{SELECT} where ($1::uuid is null or t.organization_id = $1)
           and ($2::uuid is null or r.tenant_id = $2)
           and ($3::text is null or t.name = $3)
           and ($4::text is null or r.state = $4)
           and ($5::timestamptz is null or (r.created_at, r.capacity_request_id) < ($5, $6))
         order by r.created_at desc, r.capacity_request_id desc limit $7"
    ))
    .bind(f.only_organization)
    .bind(f.only_tenant)
    .bind(f.tenant_name)
    .bind(f.state)
    .bind(f.after.map(|a| a.0))
    .bind(f.after.map(|a| a.1))
    .bind(f.limit)
    .fetch_all(db)
    .await
}

/// Moves a request to `state`, recording who decided and why.
pub async fn decide(
    db: impl PgExecutor<'_>,
    id: Uuid,
    state: &str,
    decided_by: &str,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "update capacity_request set state = $2, decided_by = $3, decided_at = now(), decision_reason = $4, updated_at = now()
         where capacity_request_id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(decided_by)
    .bind(reason)
    .execute(db)
    .await?;
    Ok(())
}

/// Records that the request's quota is written, carried by tenant version `version`.
pub async fn mark_written(db: impl PgExecutor<'_>, id: Uuid, version: i64) -> sqlx::Result<()> {
    sqlx::query(
        "update capacity_request set quota_written_at = now(), tenant_version = $2, updated_at = now()
         where capacity_request_id = $1",
    )
    .bind(id)
    .bind(version)
    .execute(db)
    .await?;
    Ok(())
}

/// Approved changes not yet in effect, with the organization of each.
pub async fn scheduled(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(Uuid, Scheduled)>> {
    let rows: Vec<RequestRow> = sqlx::query_as(&format!(
        "{SELECT} where r.state = 'approved-pending' and r.quota_written_at is null"
    ))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.organization_id,
                Scheduled {
                    namespace: (r.tenant, r.namespace),
                    effective_from: r.effective_from,
                    patch: r.patch,
                },
            )
        })
        .collect())
}

/// The next approved request whose date has come and whose quota is not written yet, locked;
/// other replicas skip it.
pub async fn next_due(db: impl PgExecutor<'_>) -> sqlx::Result<Option<RequestRow>> {
    sqlx::query_as(&format!(
        "{SELECT} where r.state = 'approved-pending' and r.quota_written_at is null and r.effective_from <= now()
         order by r.effective_from limit 1 for update of r skip locked"
    ))
    .fetch_optional(db)
    .await
}

/// Marks approved every written request of the tenant that version `version` carries;
/// answers their ids.
pub async fn mark_applied(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    version: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "update capacity_request set state = 'approved', applied_at = now(), updated_at = now()
         where tenant_id = $1 and state = 'approved-pending' and quota_written_at is not null and tenant_version <= $2
         returning capacity_request_id",
    )
    .bind(tenant_id)
    .bind(version)
    .fetch_all(db)
    .await
}

/// Cancels every request of the tenant still open (pending, or approved and not yet applied);
/// answers their ids.
pub async fn cancel_open(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    by: &str,
    reason: &str,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "update capacity_request set state = 'cancelled', decided_by = $2, decided_at = now(), decision_reason = $3,
                updated_at = now()
         where tenant_id = $1 and state in ('pending', 'approved-pending')
         returning capacity_request_id",
    )
    .bind(tenant_id)
    .bind(by)
    .bind(reason)
    .fetch_all(db)
    .await
}
