//! The quota timeline: every change of a namespace's quota, which reserved billing reads.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::quota::Quota;

#[derive(Debug, Clone)]
pub struct QuotaChangeRow {
    pub quota_change_id: i64,
    pub namespace: String,
    pub effective_at: DateTime<Utc>,
    pub changed_by: String,
    pub capacity_request_id: Option<Uuid>,
    pub from_cpu_milli: Option<i64>,
    pub from_memory_bytes: Option<i64>,
    pub from_storage_bytes: Option<i64>,
    pub from_pods: Option<i32>,
    pub from_load_balancers: Option<i32>,
    pub to_cpu_milli: i64,
    pub to_memory_bytes: i64,
    pub to_storage_bytes: i64,
    pub to_pods: i32,
    pub to_load_balancers: i32,
    /// Whether the tenant was suspended from this change on (no reserved charges meanwhile).
    pub suspended: bool,
}

impl QuotaChangeRow {
    pub fn from(&self) -> Option<Quota> {
        Some(Quota {
            cpu_milli: self.from_cpu_milli?,
            memory_bytes: self.from_memory_bytes?,
            storage_bytes: self.from_storage_bytes?,
            pods: self.from_pods?,
            load_balancers: self.from_load_balancers?,
        })
    }

    pub fn to(&self) -> Quota {
        Quota {
            cpu_milli: self.to_cpu_milli,
            memory_bytes: self.to_memory_bytes,
            storage_bytes: self.to_storage_bytes,
            pods: self.to_pods,
            load_balancers: self.to_load_balancers,
        }
    }
}

/// A change of a namespace's quota. Whether the tenant is suspended from then on is read from
/// the tenant row as it stands in the transaction.
pub struct NewChange<'a> {
    pub tenant_id: Uuid,
    pub namespace: &'a str,
    pub effective_at: DateTime<Utc>,
    pub changed_by: &'a str,
    pub capacity_request_id: Option<Uuid>,
    pub from: Option<Quota>,
    pub to: Quota,
}

pub async fn insert(db: impl PgExecutor<'_>, c: NewChange<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into quota_change (tenant_id, namespace, effective_at, changed_by, capacity_request_id,
             from_cpu_milli, from_memory_bytes, from_storage_bytes, from_pods, from_load_balancers,
             to_cpu_milli, to_memory_bytes, to_storage_bytes, to_pods, to_load_balancers, suspended)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                 (select t.suspended from tenant t where t.tenant_id = $1))",
        c.tenant_id,
        c.namespace,
        c.effective_at,
        c.changed_by,
        c.capacity_request_id,
        c.from.map(|q| q.cpu_milli),
        c.from.map(|q| q.memory_bytes),
        c.from.map(|q| q.storage_bytes),
        c.from.map(|q| q.pods),
        c.from.map(|q| q.load_balancers),
        c.to.cpu_milli,
        c.to.memory_bytes,
        c.to.storage_bytes,
        c.to.pods,
        c.to.load_balancers,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A page of a tenant's timeline, oldest first, after change `after`.
pub async fn list(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    after: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<QuotaChangeRow>> {
    sqlx::query_as!(
        QuotaChangeRow,
        "select quota_change_id, namespace, effective_at, changed_by, capacity_request_id,
                from_cpu_milli, from_memory_bytes, from_storage_bytes, from_pods, from_load_balancers,
                to_cpu_milli, to_memory_bytes, to_storage_bytes, to_pods, to_load_balancers, suspended
         from quota_change where tenant_id = $1 and ($2::bigint is null or quota_change_id > $2)
         order by quota_change_id limit $3",
        tenant_id,
        after,
        limit,
    )
    .fetch_all(db)
    .await
}
