//! Tenants' monthly budgets and the alerts raised against them.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct BudgetRow {
    pub tenant_id: Uuid,
    pub amount: Decimal,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

pub async fn get(db: impl PgExecutor<'_>, tenant_id: Uuid) -> sqlx::Result<Option<BudgetRow>> {
    sqlx::query_as!(
        BudgetRow,
        "select tenant_id, amount, updated_at, updated_by from budget where tenant_id = $1",
        tenant_id
    )
    .fetch_optional(db)
    .await
}

pub async fn put(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    amount: Decimal,
    by: &str,
) -> sqlx::Result<BudgetRow> {
    sqlx::query_as!(
        BudgetRow,
        "insert into budget (tenant_id, amount, updated_by) values ($1, $2, $3)
         on conflict (tenant_id) do update set amount = excluded.amount, updated_by = excluded.updated_by,
             updated_at = now()
         returning tenant_id, amount, updated_at, updated_by",
        tenant_id,
        amount,
        by,
    )
    .fetch_one(db)
    .await
}

pub async fn of_tenants(
    db: impl PgExecutor<'_>,
    tenant_ids: &[Uuid],
) -> sqlx::Result<Vec<BudgetRow>> {
    sqlx::query_as!(
        BudgetRow,
        "select tenant_id, amount, updated_at, updated_by from budget where tenant_id = any($1)",
        tenant_ids
    )
    .fetch_all(db)
    .await
}

pub struct NewAlert<'a> {
    pub tenant_id: Uuid,
    pub organization_id: Uuid,
    pub month: &'a str,
    pub measure: &'a str,
    pub threshold: i32,
    pub budget: Decimal,
    pub amount: Decimal,
}

/// Raises an alert unless it was raised already this month; answers whether it is new.
pub async fn raise(db: impl PgExecutor<'_>, a: NewAlert<'_>) -> sqlx::Result<bool> {
    let id = sqlx::query_scalar!(
        "insert into budget_alert (tenant_id, organization_id, month, measure, threshold, budget, amount)
         values ($1, $2, $3, $4, $5, $6, $7)
         on conflict (tenant_id, month, measure, threshold) do nothing
         returning budget_alert_id",
        a.tenant_id,
        a.organization_id,
        a.month,
        a.measure,
        a.threshold,
        a.budget,
        a.amount,
    )
    .fetch_optional(db)
    .await?;
    Ok(id.is_some())
}

#[derive(Debug, Clone)]
pub struct AlertRow {
    pub budget_alert_id: i64,
    pub tenant: String,
    pub organization: String,
    pub month: String,
    pub measure: String,
    pub threshold: i32,
    pub budget: Decimal,
    pub amount: Decimal,
    pub raised_at: DateTime<Utc>,
}

pub struct AlertFilter<'a> {
    pub scope_organization: Option<Uuid>,
    pub scope_tenant: Option<Uuid>,
    pub organization: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub month: Option<&'a str>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// A page of alerts, newest first.
pub async fn alerts(db: impl PgExecutor<'_>, f: AlertFilter<'_>) -> sqlx::Result<Vec<AlertRow>> {
    sqlx::query_as!(
        AlertRow,
        "select a.budget_alert_id, t.name as tenant, o.name as organization, a.month, a.measure,
             a.threshold, a.budget, a.amount, a.raised_at
         from budget_alert a
         join tenant t on t.tenant_id = a.tenant_id
         join organization o on o.organization_id = a.organization_id
         where ($1::uuid is null or a.organization_id = $1)
           and ($2::uuid is null or a.tenant_id = $2)
           and ($3::text is null or o.name = $3)
           and ($4::text is null or t.name = $4)
           and ($5::text is null or a.month = $5)
           and ($6::bigint is null or a.budget_alert_id < $6)
         order by a.budget_alert_id desc limit $7",
        f.scope_organization,
        f.scope_tenant,
        f.organization,
        f.tenant,
        f.month,
        f.before,
        f.limit,
    )
    .fetch_all(db)
    .await
}
