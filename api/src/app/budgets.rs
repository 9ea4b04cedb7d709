//! Budgets: a tenant's monthly budget (set by its organization's admins and finance, or the
//! platform's admins), its spend and forecast this month, and the alerts raised at 80 % and
//! 100 % of either.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::AppState;
use crate::app::{AppError, AppResult, tenants};
use crate::db::audit;
use crate::db::budgets::{self as store, AlertFilter};
use crate::db::invoices::{self as invoices, ListFilter};
use crate::domain::budget::{self, Measure};
use crate::domain::period::{month_of, month_range};
use crate::domain::principal::{Caller, Role};

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetInput {
    /// Đồng per month, VAT included, as a decimal string of whole đồng.
    #[schema(example = "5000000")]
    pub amount: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetView {
    pub tenant: String,
    /// Absent while no budget is set.
    #[schema(value_type = Option<String>, example = "5000000")]
    pub amount: Option<Decimal>,
    #[schema(example = "2026-12")]
    pub month: String,
    /// This month's invoice total so far, credit notes included.
    #[schema(value_type = String)]
    pub spend: Decimal,
    /// The month's total at the rate so far.
    #[schema(value_type = String)]
    pub forecast: Decimal,
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertView {
    pub id: i64,
    pub organization: String,
    pub tenant: String,
    pub month: String,
    pub measure: Measure,
    /// Percent of the budget reached: 80 or 100.
    pub threshold: i32,
    #[schema(value_type = String)]
    pub budget: Decimal,
    /// The spend or forecast that reached it.
    #[schema(value_type = String)]
    pub amount: Decimal,
    pub raised_at: DateTime<Utc>,
}

async fn view(state: &AppState, tenant: &crate::db::tenants::TenantRow) -> AppResult<BudgetView> {
    let b = store::get(&state.db, tenant.tenant_id).await?;
    let now = Utc::now();
    let month = month_of(now);
    let (start, end) = month_range(&month).map_err(AppError::Internal)?;
    let rows = invoices::list(
        &state.db,
        ListFilter {
            scope_organization: None,
            scope_tenant: Some(tenant.tenant_id),
            organization: None,
            tenant: None,
            month: Some(&month),
            state: None,
            kind: None,
            after: None,
            limit: 1000,
        },
    )
    .await?;
    let spend: Decimal = rows.iter().map(|r| r.total).sum();
    let until = rows
        .iter()
        .find(|r| r.kind == "invoice")
        .map_or(now, |r| r.rated_until);
    let forecast = budget::forecast(
        spend,
        (until - start).num_seconds(),
        (end - start).num_seconds(),
    );
    Ok(BudgetView {
        tenant: tenant.name.clone(),
        amount: b.as_ref().map(|b| b.amount),
        month,
        spend,
        forecast,
        updated_at: b.as_ref().map(|b| b.updated_at),
        updated_by: b.map(|b| b.updated_by),
    })
}

pub async fn show(state: &AppState, caller: &Caller, tenant: &str) -> AppResult<BudgetView> {
    let t = tenants::visible(state, caller, tenant).await?;
    view(state, &t).await
}

pub async fn set(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    input: BudgetInput,
) -> AppResult<BudgetView> {
    let t = tenants::visible(state, caller, tenant).await?;
    caller.require(
        &[Role::PlatformAdmin, Role::OrgAdmin, Role::Finance],
        "set budgets (the organization's admins and finance do)",
    )?;
    let amount = Decimal::from_str_exact(input.amount.trim()).map_err(|_| {
        AppError::invalid(
            "amount",
            format!("{:?} is not a decimal number", input.amount),
        )
    })?;
    budget::check_amount(amount).map_err(|m| AppError::invalid("amount", m))?;
    let mut tx = state.db.begin().await?;
    let before = store::get(&mut *tx, t.tenant_id).await?;
    store::put(&mut *tx, t.tenant_id, amount, &caller.name).await?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: "budget.set",
            object_kind: "budget",
            object_id: t.name.clone(),
            organization_id: Some(t.organization_id),
            tenant_id: Some(t.tenant_id),
            detail: json!({"amount": amount, "before": before.map(|b| b.amount)}),
        },
    )
    .await?;
    tx.commit().await?;
    view(state, &t).await
}

pub struct Filter<'a> {
    pub organization: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub month: Option<&'a str>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// The budget alerts the caller may see, newest first.
pub async fn alerts(state: &AppState, caller: &Caller, f: Filter<'_>) -> AppResult<Vec<AlertView>> {
    caller.require(
        &[
            Role::PlatformAdmin,
            Role::Auditor,
            Role::OrgAdmin,
            Role::Finance,
            Role::TenantAdmin,
        ],
        "read budget alerts",
    )?;
    if let Some(m) = f.month {
        month_range(m).map_err(|e| AppError::invalid("month", e))?;
    }
    let rows = store::alerts(
        &state.db,
        AlertFilter {
            scope_organization: caller.organization_filter(),
            scope_tenant: caller.tenant_filter(),
            organization: f.organization,
            tenant: f.tenant,
            month: f.month,
            before: f.before,
            limit: f.limit,
        },
    )
    .await?;
    rows.into_iter()
        .map(|a| {
            Ok(AlertView {
                id: a.budget_alert_id,
                organization: a.organization,
                tenant: a.tenant,
                month: a.month,
                measure: a.measure.parse().map_err(AppError::Internal)?,
                threshold: a.threshold,
                budget: a.budget,
                amount: a.amount,
                raised_at: a.raised_at,
            })
        })
        .collect()
}
