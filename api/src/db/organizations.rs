//! Organizations (provinces, ministries) and their allotments.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::capacity::Totals;

#[derive(Debug, Clone)]
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

/// An allotment as the table stores it; refused (`None`) when an amount is past a bigint.
pub struct Allotment {
    pub cpu_milli: i64,
    pub memory_bytes: i64,
    pub storage_bytes: i64,
}

impl Allotment {
    pub fn of(t: Totals) -> Option<Self> {
        Some(Self {
            cpu_milli: i64::try_from(t.cpu_milli).ok()?,
            memory_bytes: i64::try_from(t.memory_bytes).ok()?,
            storage_bytes: i64::try_from(t.storage_bytes).ok()?,
        })
    }
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    name: &str,
    display_name: &str,
    allotment: &Allotment,
) -> sqlx::Result<OrganizationRow> {
    sqlx::query_as!(
        OrganizationRow,
        "insert into organization (name, display_name, allotment_cpu_milli, allotment_memory_bytes, allotment_storage_bytes)
         values ($1, $2, $3, $4, $5)
         returning organization_id, name, display_name, allotment_cpu_milli, allotment_memory_bytes,
                   allotment_storage_bytes, created_at, updated_at",
        name,
        display_name,
        allotment.cpu_milli,
        allotment.memory_bytes,
        allotment.storage_bytes,
    )
    .fetch_one(db)
    .await
}

pub async fn by_name(db: impl PgExecutor<'_>, name: &str) -> sqlx::Result<Option<OrganizationRow>> {
    sqlx::query_as!(
        OrganizationRow,
        "select organization_id, name, display_name, allotment_cpu_milli, allotment_memory_bytes,
                allotment_storage_bytes, created_at, updated_at
         from organization where name = $1",
        name,
    )
    .fetch_optional(db)
    .await
}

pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<OrganizationRow>> {
    sqlx::query_as!(
        OrganizationRow,
        "select organization_id, name, display_name, allotment_cpu_milli, allotment_memory_bytes,
                allotment_storage_bytes, created_at, updated_at
         from organization where organization_id = $1",
        id,
    )
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
    sqlx::query_as!(
        OrganizationRow,
        "select organization_id, name, display_name, allotment_cpu_milli, allotment_memory_bytes,
                allotment_storage_bytes, created_at, updated_at
         from organization
         where ($1::uuid is null or organization_id = $1) and ($2::text is null or name > $2)
         order by name limit $3",
        only,
        after,
        limit,
    )
    .fetch_all(db)
    .await
}

/// The sum of the quotas of each organization's namespaces that hold capacity: what it has
/// reserved. Summed exactly (as numeric): a sum past a bigint is still told right.
pub async fn reserved(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<(Uuid, Totals)>> {
    let rows = sqlx::query!(
        r#"select organization_id as "organization_id!",
                  coalesce(sum(cpu_milli), 0) as "cpu_milli!: Decimal",
                  coalesce(sum(memory_bytes), 0) as "memory_bytes!: Decimal",
                  coalesce(sum(storage_bytes), 0) as "storage_bytes!: Decimal"
           from held_namespace where organization_id = any($1) group by organization_id"#,
        ids,
    )
    .fetch_all(db)
    .await?;
    let exact = |d: Decimal| d.to_i128().unwrap_or(i128::MAX);
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.organization_id,
                Totals {
                    cpu_milli: exact(r.cpu_milli),
                    memory_bytes: exact(r.memory_bytes),
                    storage_bytes: exact(r.storage_bytes),
                },
            )
        })
        .collect())
}
