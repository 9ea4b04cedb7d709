use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::capacity::Totals;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrganizationRow {
    pub organization_id: Uuid,
    pub name: String,
    pub display_name: String,
    pub allotment_cpu_milli: i64,
    pub allotment_memory_bytes: i64,
    pub allotment_storage_bytes: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl OrganizationRow {
    pub fn allotment(&self) -> Totals {
        Totals {
            cpu_milli: self.allotment_cpu_milli.into(),
            memory_bytes: self.allotment_memory_bytes.into(),
            storage_bytes: self.allotment_storage_bytes.into(),
        }
    }
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    name: &str,
    display_name: &str,
    allotment: Totals,
) -> sqlx::Result<OrganizationRow> {
    let big = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
    sqlx::query_as(
        "insert into organization (name, display_name, allotment_cpu_milli, allotment_memory_bytes, allotment_storage_bytes)
         values ($1, $2, $3, $4, $5) returning *",
    )
    .bind(name)
    .bind(display_name)
    .bind(big(allotment.cpu_milli))
    .bind(big(allotment.memory_bytes))
    .bind(big(allotment.storage_bytes))
    .fetch_one(db)
    .await
}

pub async fn by_name(db: impl PgExecutor<'_>, name: &str) -> sqlx::Result<Option<OrganizationRow>> {
    sqlx::query_as("select * from organization where name = $1")
        .bind(name)
        .fetch_optional(db)
        .await
}

pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<OrganizationRow>> {
    sqlx::query_as("select * from organization where organization_id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Locks the organization's row, so approvals within one organization are judged one at a time.
pub async fn lock(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<OrganizationRow>> {
    sqlx::query_as("select * from organization where organization_id = $1 for update")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// A page of organizations by name, after `after`, limited to `only` when given.
pub async fn list(
    db: impl PgExecutor<'_>,
    only: Option<Uuid>,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<OrganizationRow>> {
    sqlx::query_as(
        "select * from organization
         where ($1::uuid is null or organization_id = $1) and ($2::text is null or name > $2)
         order by name limit $3",
    )
    .bind(only)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The sum of the quotas of each organization's namespaces: what it has reserved.
pub async fn reserved(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
) -> sqlx::Result<Vec<(Uuid, i64, i64, i64)>> {
    sqlx::query_as(&format!(
        "select t.organization_id, coalesce(sum(n.cpu_milli), 0)::bigint, coalesce(sum(n.memory_bytes), 0)::bigint,
                coalesce(sum(n.storage_bytes), 0)::bigint
         from tenant t join tenant_namespace n using (tenant_id)
         where t.organization_id = any($1) and {} group by t.organization_id",
        super::tenants::HOLDS_CAPACITY
    ))
    .bind(ids)
    .fetch_all(db)
    .await
}
