//! Invoices and credit notes: listed, shown, issued, approved, disputed, paid, corrected, and
//! exported as CSV and PDF; an organization's month as CSV. See [`crate::domain::invoice`]
//! for the states.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::app::AppError;
use crate::app::invoices::{self as use_case, Filter, InvoiceView, NewCreditNote};
use crate::app::statement;
use crate::domain::invoice::{InvoiceKind, InvoiceState};
use crate::domain::principal::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{AppJson, AppQuery};
use crate::http::page::{PageParams, next_cursor, page, parse_time_key, time_key};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/invoices", get(list))
        .route("/v1/invoices/{id}", get(show))
        .route("/v1/invoices/{id}/issue", post(issue))
        .route("/v1/invoices/{id}/approve", post(approve))
        .route("/v1/invoices/{id}/dispute", post(dispute))
        .route("/v1/invoices/{id}/pay", post(pay))
        .route("/v1/invoices/{id}/credit-notes", post(credit_note))
        .route("/v1/invoices/{id}/csv", get(csv))
        .route("/v1/invoices/{id}/pdf", get(pdf))
        .route("/v1/invoice-summary", get(summary))
}

page!(InvoicePage, InvoiceView);

/// An id in a path: anything but a UUID names no invoice.
fn id(s: &str) -> Result<Uuid, ApiError> {
    s.parse()
        .map_err(|_| AppError::not_found("invoice", s.to_string()).into())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvoiceFilter {
    /// Only this organization's.
    pub organization: Option<String>,
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// Only this calendar month (YYYY-MM, Asia/Ho_Chi_Minh).
    pub month: Option<String>,
    pub state: Option<InvoiceState>,
    /// `invoice` or `credit-note`.
    pub kind: Option<InvoiceKind>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Lists the invoices and credit notes the caller may see, newest first, without their lines.
#[utoipa::path(get, path = "/v1/invoices", tag = "invoices",
    params(InvoiceFilter),
    responses((status = 200, body = InvoicePage)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(f): AppQuery<InvoiceFilter>,
) -> ApiResult<AppJson<InvoicePage>> {
    let page = PageParams {
        limit: f.limit,
        cursor: f.cursor,
    };
    let limit = page.limit()?;
    let after = page.cursor_with(parse_time_key)?;
    let rows = use_case::list(
        &state,
        &caller,
        Filter {
            organization: f.organization.as_deref(),
            tenant: f.tenant.as_deref(),
            month: f.month.as_deref(),
            state: f.state,
            kind: f.kind,
            after,
            limit,
        },
    )
    .await?;
    let next = next_cursor(&rows, limit, |r| time_key(r.created_at, r.id));
    Ok(AppJson(InvoicePage {
        items: rows,
        next_cursor: next,
    }))
}

/// Shows an invoice or credit note with its lines (money as decimal strings of đồng).
#[utoipa::path(get, path = "/v1/invoices/{id}", tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id")),
    responses((status = 200, body = InvoiceView)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(i): Path<String>,
) -> ApiResult<AppJson<InvoiceView>> {
    Ok(AppJson(use_case::show(&state, &caller, id(&i)?).await?))
}

/// Issues a draft once its month has ended (platform admins): rated one last time to the
/// month's end and numbered; from then on the database refuses any change to it. Drafts issue
/// themselves when the month's grace period ends.
#[utoipa::path(post, path = "/v1/invoices/{id}/issue", tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id")),
    responses((status = 200, body = InvoiceView)))]
pub(crate) async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    Path(i): Path<String>,
) -> ApiResult<AppJson<InvoiceView>> {
    Ok(AppJson(use_case::issue(&state, &caller, id(&i)?).await?))
}

/// Approves an issued or disputed invoice (the organization's finance).
#[utoipa::path(post, path = "/v1/invoices/{id}/approve", tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id")),
    responses((status = 200, body = InvoiceView)))]
pub(crate) async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(i): Path<String>,
) -> ApiResult<AppJson<InvoiceView>> {
    Ok(AppJson(use_case::approve(&state, &caller, id(&i)?).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisputeReason {
    /// Why the invoice is disputed.
    pub reason: String,
}

/// Disputes an issued invoice, with a reason (the organization's finance).
#[utoipa::path(post, path = "/v1/invoices/{id}/dispute", tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id")),
    request_body = DisputeReason,
    responses((status = 200, body = InvoiceView)))]
pub(crate) async fn dispute(
    State(state): State<AppState>,
    caller: Caller,
    Path(i): Path<String>,
    AppJson(body): AppJson<DisputeReason>,
) -> ApiResult<AppJson<InvoiceView>> {
    Ok(AppJson(
        use_case::dispute(&state, &caller, id(&i)?, &body.reason).await?,
    ))
}

/// Marks an approved invoice paid (platform admins).
#[utoipa::path(post, path = "/v1/invoices/{id}/pay", tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id")),
    responses((status = 200, body = InvoiceView)))]
pub(crate) async fn pay(
    State(state): State<AppState>,
    caller: Caller,
    Path(i): Path<String>,
) -> ApiResult<AppJson<InvoiceView>> {
    Ok(AppJson(use_case::pay(&state, &caller, id(&i)?).await?))
}

/// Corrects an issued invoice with a credit note (platform admins): each line takes back part
/// or all of what is left on one of the invoice's lines. The credit note is numbered and
/// issued at once; the invoice itself never changes.
#[utoipa::path(post, path = "/v1/invoices/{id}/credit-notes", tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id")),
    request_body = NewCreditNote,
    responses((status = 201, body = InvoiceView)))]
pub(crate) async fn credit_note(
    State(state): State<AppState>,
    caller: Caller,
    Path(i): Path<String>,
    AppJson(body): AppJson<NewCreditNote>,
) -> ApiResult<(StatusCode, AppJson<InvoiceView>)> {
    let note = use_case::credit_note(&state, &caller, id(&i)?, body).await?;
    Ok((StatusCode::CREATED, AppJson(note)))
}

fn export_error(e: statement::StatementError) -> ApiError {
    AppError::Internal(e.to_string()).into()
}

fn attachment(content_type: &'static str, name: String, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// The invoice as CSV (UTF-8 with a byte-order mark, for Excel).
#[utoipa::path(get, path = "/v1/invoices/{id}/csv", tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id")),
    responses((status = 200, content_type = "text/csv", body = String)))]
pub(crate) async fn csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(i): Path<String>,
) -> ApiResult<Response> {
    let e = use_case::export_csv(&state, &caller, id(&i)?).await?;
    Ok(attachment("text/csv; charset=utf-8", e.file_name, e.bytes))
}

/// The invoice as a PDF statement in Vietnamese.
#[utoipa::path(get, path = "/v1/invoices/{id}/pdf", tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id")),
    responses((status = 200, content_type = "application/pdf", body = Vec<u8>)))]
pub(crate) async fn pdf(
    State(state): State<AppState>,
    caller: Caller,
    Path(i): Path<String>,
) -> ApiResult<Response> {
    let e = use_case::export_pdf(&state, &caller, id(&i)?).await?;
    Ok(attachment("application/pdf", e.file_name, e.bytes))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryParams {
    pub organization: String,
    /// YYYY-MM, in Asia/Ho_Chi_Minh.
    pub month: String,
}

/// An organization's month as CSV, one row per invoice and credit note with the totals, for
/// the province's finance department (org admins, finance, platform admins, auditors).
#[utoipa::path(get, path = "/v1/invoice-summary", tag = "invoices",
    params(SummaryParams),
    responses((status = 200, content_type = "text/csv", body = String)))]
pub(crate) async fn summary(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(p): AppQuery<SummaryParams>,
) -> ApiResult<Response> {
    let rows = use_case::month_of_organization(&state, &caller, &p.organization, &p.month).await?;
    let body = statement::summary_csv(&p.organization, &p.month, &rows).map_err(export_error)?;
    Ok(attachment(
        "text/csv; charset=utf-8",
        format!("{}-{}.csv", p.organization, p.month),
        body,
    ))
}
