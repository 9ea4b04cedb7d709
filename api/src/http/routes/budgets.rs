//! Budgets and their alerts.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::app::budgets::{self as use_case, AlertView, BudgetInput, BudgetView, Filter};
use crate::domain::principal::Caller;
use crate::http::error::ApiResult;
use crate::http::extract::{AppJson, AppQuery};
use crate::http::page::{PageParams, next_cursor, page};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{name}/budget", get(show).put(set))
        .route("/v1/alerts", get(alerts))
}

page!(AlertPage, AlertView);

/// A tenant's monthly budget with this month's spend and forecast.
#[utoipa::path(get, path = "/v1/tenants/{name}/budget", tag = "budgets",
    params(("name" = String, Path, description = "The tenant")),
    responses((status = 200, body = BudgetView)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<AppJson<BudgetView>> {
    Ok(AppJson(use_case::show(&state, &caller, &name).await?))
}

/// Sets a tenant's monthly budget in đồng, VAT included (its organization's admins and
/// finance, platform admins). Alerts are raised at 80 % and 100 % of the month's spend and of
/// its forecast.
#[utoipa::path(put, path = "/v1/tenants/{name}/budget", tag = "budgets",
    params(("name" = String, Path, description = "The tenant")),
    request_body = BudgetInput,
    responses((status = 200, body = BudgetView)))]
pub(crate) async fn set(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    AppJson(body): AppJson<BudgetInput>,
) -> ApiResult<AppJson<BudgetView>> {
    Ok(AppJson(use_case::set(&state, &caller, &name, body).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertParams {
    pub organization: Option<String>,
    pub tenant: Option<String>,
    /// YYYY-MM.
    pub month: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The budget alerts the caller may see, newest first.
#[utoipa::path(get, path = "/v1/alerts", tag = "budgets",
    params(AlertParams),
    responses((status = 200, body = AlertPage)))]
pub(crate) async fn alerts(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(p): AppQuery<AlertParams>,
) -> ApiResult<AppJson<AlertPage>> {
    let page = PageParams {
        limit: p.limit,
        cursor: p.cursor,
    };
    let limit = page.limit()?;
    let before = page.cursor_as::<i64>()?;
    let items = use_case::alerts(
        &state,
        &caller,
        Filter {
            organization: p.organization.as_deref(),
            tenant: p.tenant.as_deref(),
            month: p.month.as_deref(),
            before,
            limit,
        },
    )
    .await?;
    let next = next_cursor(&items, limit, |a| a.id.to_string());
    Ok(AppJson(AlertPage {
        items,
        next_cursor: next,
    }))
}
