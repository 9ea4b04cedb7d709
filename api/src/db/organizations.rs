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
    pub fn totals(&self) -> Totals {
        Totals {
            cpu_milli: self.cpu_milli.into(),
            memory_bytes: self.memory_bytes.into(),
            storage_bytes: self.storage_bytes.into(),
        }
    }

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

/// Sets an organization's allotment under its row's lock; answers the allotment it had.
pub async fn set_allotment(
    db: &mut sqlx::PgConnection,
    id: Uuid,
    allotment: &Allotment,
) -> sqlx::Result<Totals> {
    let before = sqlx::query_as!(
        OrganizationRow,
        "select organization_id, name, display_name, allotment_cpu_milli, allotment_memory_bytes,
                allotment_storage_bytes, created_at, updated_at
         from organization where organization_id = $1 for update",
        id,
    )
    .fetch_one(&mut *db)
    .await?
    .allotment();
    sqlx::query!(
        "update organization set allotment_cpu_milli = $2, allotment_memory_bytes = $3,
                allotment_storage_bytes = $4, updated_at = now()
         where organization_id = $1",
        id,
        allotment.cpu_milli,
        allotment.memory_bytes,
        allotment.storage_bytes,
    )
    .execute(&mut *db)
    .await?;
    Ok(before)
}

/// Every organization's allotment.
pub async fn allotments(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(Uuid, Totals)>> {
    let rows = sqlx::query_as!(
        OrganizationRow,
        "select organization_id, name, display_name, allotment_cpu_milli, allotment_memory_bytes,
                allotment_storage_bytes, created_at, updated_at
         from organization order by organization_id",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.organization_id, r.allotment()))
        .collect())
}

/// One change of an organization's allotment.
#[derive(Debug, Clone)]
pub struct AllotmentChangeRow {
    pub allotment_change_id: i64,
    pub effective_at: DateTime<Utc>,
    pub changed_by: String,
    pub capacity_request_id: Option<Uuid>,
    pub from_cpu_milli: Option<i64>,
    pub from_memory_bytes: Option<i64>,
    pub from_storage_bytes: Option<i64>,
    pub to_cpu_milli: i64,
    pub to_memory_bytes: i64,
    pub to_storage_bytes: i64,
}

impl AllotmentChangeRow {
    pub fn from(&self) -> Option<Totals> {
        Some(Totals {
            cpu_milli: self.from_cpu_milli?.into(),
            memory_bytes: self.from_memory_bytes?.into(),
            storage_bytes: self.from_storage_bytes?.into(),
        })
    }

    pub fn to(&self) -> Totals {
        Totals {
            cpu_milli: self.to_cpu_milli.into(),
            memory_bytes: self.to_memory_bytes.into(),
            storage_bytes: self.to_storage_bytes.into(),
        }
    }
}

/// Records a change of an organization's allotment in its timeline (`from`: `None` for its
/// first allotment).
pub async fn insert_allotment_change(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    effective_at: DateTime<Utc>,
    changed_by: &str,
    capacity_request_id: Option<Uuid>,
    from: Option<&Allotment>,
    to: &Allotment,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into allotment_change (organization_id, effective_at, changed_by, capacity_request_id,
             from_cpu_milli, from_memory_bytes, from_storage_bytes, to_cpu_milli, to_memory_bytes, to_storage_bytes)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        organization_id,
        effective_at,
        changed_by,
        capacity_request_id,
        from.map(|a| a.cpu_milli),
        from.map(|a| a.memory_bytes),
        from.map(|a| a.storage_bytes),
        to.cpu_milli,
        to.memory_bytes,
        to.storage_bytes,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A page of an organization's allotment timeline, oldest first, after change `after`.
pub async fn allotment_changes(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    after: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<AllotmentChangeRow>> {
    sqlx::query_as!(
        AllotmentChangeRow,
        "select allotment_change_id, effective_at, changed_by, capacity_request_id, from_cpu_milli,
                from_memory_bytes, from_storage_bytes, to_cpu_milli, to_memory_bytes, to_storage_bytes
         from allotment_change
         where organization_id = $1 and ($2::bigint is null or allotment_change_id > $2)
         order by allotment_change_id limit $3",
        organization_id,
        after,
        limit,
    )
    .fetch_all(db)
    .await
}
