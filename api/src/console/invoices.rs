//! Finance's month: invoices per agency with state and totals, an invoice's lines, approving or
//! disputing it, its CSV and PDF, credit notes, budgets and alerts, and the organization's
//! monthly summary.

use axum::extract::{Path, Query};
use axum::response::Response;
use chrono::Utc;
use maud::{Markup, html};
use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;

use crate::app::invoices::{CreditLineInput, Filter, InvoiceView, NewCreditNote};
use crate::app::{self, AppError};
use crate::console::chart::{self, Bar};
use crate::console::session::{ConsoleError, Ctx, Lang, Posted, download};
use crate::console::ui::{self, Cell, Table};
use crate::domain::budget::Measure;
use crate::domain::invoice::{InvoiceKind, InvoiceState};
use crate::domain::period::month_of;
use crate::domain::principal::Role;

pub fn state_name(l: Lang, s: InvoiceState) -> &'static str {
    match s {
        InvoiceState::Draft => l.t("Nháp (tạm tính)", "Draft (running)"),
        InvoiceState::Issued => l.t("Đã phát hành, chờ duyệt", "Issued, to approve"),
        InvoiceState::Approved => l.t("Đã duyệt", "Approved"),
        InvoiceState::Disputed => l.t("Đang khiếu nại", "Disputed"),
        InvoiceState::Paid => l.t("Đã thanh toán", "Paid"),
    }
}

fn state_badge(l: Lang, s: InvoiceState) -> Markup {
    let class = match s {
        InvoiceState::Approved | InvoiceState::Paid => "good",
        InvoiceState::Disputed => "bad",
        InvoiceState::Draft | InvoiceState::Issued => "warn",
    };
    html! { span class={ "state " (class) } { (state_name(l, s)) } }
}

fn kind_name(l: Lang, k: InvoiceKind) -> &'static str {
    match k {
        InvoiceKind::Invoice => l.t("Hóa đơn", "Invoice"),
        InvoiceKind::CreditNote => l.t("Giấy ghi có", "Credit note"),
    }
}

/// Invoices as a table: number, agency, month, kind, state and the amounts.
pub fn table(ctx: &Ctx, rows: &[InvoiceView], id: &'static str) -> Table {
    let l = ctx.lang;
    let mut t = Table::new(
        id,
        l.t("Hóa đơn", "Invoices"),
        &[
            l.t("Số", "Number"),
            l.t("Cơ quan", "Agency"),
            l.t("Tháng", "Month"),
            l.t("Loại", "Kind"),
            l.t("Trạng thái", "State"),
            l.t("Tiền trước thuế", "Subtotal"),
            "VAT",
            l.t("Tổng cộng", "Total"),
        ],
    )
    .empty(l.t("Không có hóa đơn nào.", "No invoices."));
    for v in rows {
        let number = v
            .number
            .clone()
            .unwrap_or_else(|| l.t("(nháp)", "(draft)").to_string());
        t.row(vec![
            Cell::link(number, &format!("/invoices/{}", v.id)),
            Cell::link(
                v.tenant_display_name.clone(),
                &format!("/tenants/{}", v.tenant),
            ),
            Cell::text(v.month.clone()),
            Cell::text(kind_name(l, v.kind)),
            Cell::html(state_badge(l, v.state), state_name(l, v.state)),
            Cell::money(v.subtotal),
            Cell::money(v.vat),
            Cell::money(v.total),
        ]);
    }
    t
}

#[derive(Deserialize)]
pub struct ListQuery {
    organization: Option<String>,
    month: Option<String>,
    state: Option<String>,
}

fn blank(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// `/invoices`: a month's invoices (last month by default, the one finance reviews).
pub async fn list(ctx: Ctx, Query(q): Query<ListQuery>) -> Result<Response, ConsoleError> {
    let l = ctx.lang;
    let month = blank(&q.month).map_or_else(
        || crate::domain::period::month_before(Utc::now()),
        str::to_string,
    );
    let state = match blank(&q.state) {
        None => None,
        Some(s) => Some(
            s.parse::<InvoiceState>()
                .map_err(|e| ctx.fail(AppError::invalid("state", e)))?,
        ),
    };
    let rows = app::invoices::list(
        &ctx.state,
        &ctx.caller,
        Filter {
            organization: blank(&q.organization),
            tenant: None,
            month: Some(&month),
            state,
            kind: None,
            after: None,
            limit: 1000,
        },
    )
    .await
    .map_err(|e| ctx.fail(e))?;
    let t = table(&ctx, &rows, "invoices");
    if let Some(r) = ui::csv_of(&ctx, &format!("invoices-{month}"), &[&t]) {
        return Ok(r);
    }
    let sum = |f: fn(&InvoiceView) -> Decimal| rows.iter().map(f).sum::<Decimal>();
    let to_approve = rows
        .iter()
        .filter(|v| v.state == InvoiceState::Issued)
        .count();
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if let Some(o) = blank(&q.organization) {
        extra.push(("organization", o));
    }
    Ok(ctx.page(l.t("Hóa đơn", "Invoices"), html! {
        h1 { (l.t("Hóa đơn tháng", "Invoices of")) " " (ui::month(&month)) }
        (ui::month_picker(&ctx, "/invoices", &month, &extra))
        div.cards {
            div.card { div { (l.t("Tổng cộng (gồm VAT)", "Total (VAT included)")) } div.big { (ui::money(sum(|v| v.total))) } }
            div.card { div { (l.t("Chờ duyệt", "To approve")) } div.big { (to_approve) } }
            div.card { div { (l.t("Số hóa đơn", "Invoices")) } div.big { (rows.len()) } }
        }
        (t.render(&ctx))
    }))
}

/// `/invoices/{id}`: the header, lines, what finance may do, and the downloads.
pub async fn show(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ConsoleError> {
    let l = ctx.lang;
    let id =
        Uuid::parse_str(&id).map_err(|_| ctx.fail(AppError::not_found("invoice", id.clone())))?;
    let v = app::invoices::show(&ctx.state, &ctx.caller, id)
        .await
        .map_err(|e| ctx.fail(e))?;
    let mut lines = Table::new(
        "lines",
        l.t("Các dòng", "Lines"),
        &[
            "#",
            "Namespace",
            l.t("Chỉ số", "Metric"),
            l.t("Cách tính", "Basis"),
            l.t("Số lượng", "Quantity"),
            l.t("Đơn vị", "Unit"),
            l.t("Đơn giá", "Unit price"),
            l.t("Thành tiền", "Amount"),
            l.t("Đã điều chỉnh", "Credited"),
        ],
    );
    for line in &v.lines {
        let metric = if line.class.is_empty() {
            line.metric.clone()
        } else {
            format!("{} ({})", line.metric, line.class)
        };
        lines.row(vec![
            Cell::num(line.line.to_string(), line.line.to_string()),
            Cell::text(line.namespace.clone()),
            Cell::text(metric),
            Cell::text(line.basis.clone()),
            Cell::num(
                ui::number(l, line.priced_quantity),
                line.priced_quantity.normalize().to_string(),
            ),
            Cell::text(line.unit.clone()),
            Cell::money(line.unit_price),
            Cell::money(line.amount),
            line.credited.map_or_else(|| Cell::text(""), Cell::money),
        ]);
    }
    if let Some(r) = ui::csv_of(
        &ctx,
        &v.number.clone().unwrap_or_else(|| v.id.to_string()),
        &[&lines],
    ) {
        return Ok(r);
    }
    let title = format!(
        "{} {}",
        kind_name(l, v.kind),
        v.number
            .clone()
            .unwrap_or_else(|| l.t("(nháp)", "(draft)").into())
    );
    let is_finance = ctx.is(&[Role::Finance]);
    let may_decide = is_finance && matches!(v.state, InvoiceState::Issued | InvoiceState::Disputed);
    let may_dispute = is_finance && v.state == InvoiceState::Issued;
    let may_credit = ctx.is(&[Role::PlatformAdmin])
        && v.kind == InvoiceKind::Invoice
        && v.state != InvoiceState::Draft;
    let base = format!("/invoices/{}", v.id);
    let body = html! {
        p.sub {
            a href={ "/invoices?month=" (v.month) } { (l.t("Hóa đơn", "Invoices")) } " › "
            a href={ "/tenants/" (v.tenant) } { (v.tenant_display_name) } " › " (ui::month(&v.month))
        }
        h1 { (title) " " (state_badge(l, v.state)) }
        dl.cards {
            div.card { dt { (l.t("Cơ quan", "Agency")) } dd { (v.tenant_display_name) " (" (v.tenant) ")" } }
            div.card { dt { (l.t("Tổ chức", "Organization")) } dd { (v.organization_display_name) } }
            div.card { dt { (l.t("Mã đơn vị chi", "Cost centre")) } dd { (v.cost_center) } }
            div.card { dt { (l.t("Kỳ", "Period")) } dd { (ui::when(v.period.start)) " – " (ui::when(v.period.end)) } }
            div.card { dt { (l.t("Tiền trước thuế", "Subtotal")) } dd.big { (ui::money(v.subtotal)) } }
            div.card { dt { "VAT " (ui::number(l, v.vat_rate * Decimal::ONE_HUNDRED)) " %" } dd.big { (ui::money(v.vat)) } }
            div.card { dt { (l.t("Tổng cộng", "Total")) } dd.big data-total=(v.total) { (ui::money(v.total)) } }
        }
        @if let Some(r) = &v.reason { p { strong { (l.t("Lý do điều chỉnh: ", "Reason: ")) } (r) } }
        @if let Some(n) = &v.credits { p { (l.t("Điều chỉnh cho hóa đơn ", "Corrects invoice ")) @if let Some(i) = v.credits_invoice_id { a href={ "/invoices/" (i) } { (n) } } } }
        @if let (Some(at), Some(by)) = (v.approved_at, &v.approved_by) { p { (l.t("Đã duyệt bởi ", "Approved by ")) (by) ", " (ui::when(at)) } }
        @if let (Some(at), Some(by)) = (v.disputed_at, &v.disputed_by) { p { (l.t("Khiếu nại bởi ", "Disputed by ")) (by) ", " (ui::when(at)) @if let Some(r) = &v.dispute_reason { ": " (r) } } }
        p {
            a.button href={ (base) "/statement.pdf" } download { (l.t("Tải PDF", "Download PDF")) } " "
            a.button href={ (base) "/statement.csv" } download { (l.t("Tải CSV", "Download CSV")) }
        }
        @if may_decide {
            section {
                h2 { (l.t("Quyết định của phòng tài chính", "Finance's decision")) }
                (ui::button_form(&ctx, &format!("{base}/approve"), l.t("Duyệt hóa đơn", "Approve the invoice"), ""))
                @if may_dispute {
                    (ui::reason_form(&ctx, &format!("{base}/dispute"), "dispute-reason", l.t("Khiếu nại", "Dispute"), true))
                }
            }
        }
        (lines.render(&ctx))
        @if !v.credit_notes.is_empty() {
            h2 { (l.t("Giấy ghi có", "Credit notes")) }
            ul { @for c in &v.credit_notes { li { a href={ "/invoices/" (c.id) } { (c.number.clone().unwrap_or_default()) } " — " (ui::money(c.total)) } } }
        }
        @if may_credit {
            section {
                h2 { (l.t("Lập giấy ghi có", "Write a credit note")) }
                form.stack method="post" action={ (base) "/credit-notes" } {
                    (ui::csrf(&ctx))
                    label for="cn-line" { (l.t("Dòng", "Line")) }
                    select id="cn-line" name="line" required { @for line in &v.lines { option value=(line.line) { (line.line) " — " (line.namespace) " " (line.metric) " (" (ui::money(line.amount)) ")" } } }
                    label for="cn-amount" { (l.t("Số tiền giảm (đồng, để trống: toàn bộ phần còn lại)", "Amount (đồng; empty: all that is left)")) }
                    input id="cn-amount" name="amount" type="text" inputmode="numeric" pattern="[0-9.]*";
                    label for="cn-reason" { (l.t("Lý do", "Reason")) }
                    input id="cn-reason" name="reason" type="text" required maxlength="500";
                    button type="submit" { (l.t("Lập và phát hành", "Write and issue")) }
                }
            }
        }
    };
    Ok(ctx.page(&title, body))
}

fn invoice_id(ctx: &Ctx, id: &str) -> Result<Uuid, ConsoleError> {
    Uuid::parse_str(id).map_err(|_| ctx.fail(AppError::not_found("invoice", id)))
}

pub async fn approve(
    Path(id): Path<String>,
    p: Posted<super::tenants::ReasonForm>,
) -> Result<Response, ConsoleError> {
    let ctx = &p.ctx;
    let uuid = invoice_id(ctx, &id)?;
    let back = format!("/invoices/{id}");
    match app::invoices::approve(&ctx.state, &ctx.caller, uuid).await {
        Ok(_) => Ok(ctx.done(
            &back,
            true,
            ctx.t("Đã duyệt hóa đơn.", "The invoice is approved."),
        )),
        Err(e) => ctx.refused(&back, e),
    }
}

pub async fn dispute(
    Path(id): Path<String>,
    p: Posted<super::tenants::ReasonForm>,
) -> Result<Response, ConsoleError> {
    let ctx = &p.ctx;
    let uuid = invoice_id(ctx, &id)?;
    let back = format!("/invoices/{id}");
    match app::invoices::dispute(&ctx.state, &ctx.caller, uuid, p.form.reason.trim()).await {
        Ok(_) => Ok(ctx.done(
            &back,
            true,
            ctx.t("Đã ghi nhận khiếu nại.", "The dispute is recorded."),
        )),
        Err(e) => ctx.refused(&back, e),
    }
}

#[derive(Deserialize)]
pub struct CreditForm {
    line: String,
    #[serde(default)]
    amount: String,
    reason: String,
}

pub async fn credit_note(
    Path(id): Path<String>,
    p: Posted<CreditForm>,
) -> Result<Response, ConsoleError> {
    let ctx = &p.ctx;
    let uuid = invoice_id(ctx, &id)?;
    let back = format!("/invoices/{id}");
    let Ok(line) = p.form.line.parse::<i32>() else {
        return ctx.refused(&back, AppError::invalid("line", "choose a line"));
    };
    let amount = Some(p.form.amount.replace('.', "").trim().to_string()).filter(|a| !a.is_empty());
    let input = NewCreditNote {
        reason: p.form.reason.trim().to_string(),
        lines: vec![CreditLineInput { line, amount }],
    };
    match app::invoices::credit_note(&ctx.state, &ctx.caller, uuid, input).await {
        Ok(note) => Ok(ctx.done(
            &format!("/invoices/{}", note.id),
            true,
            ctx.t("Đã lập giấy ghi có.", "The credit note is written."),
        )),
        Err(e) => ctx.refused(&back, e),
    }
}

pub async fn csv(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ConsoleError> {
    let uuid = invoice_id(&ctx, &id)?;
    let e = app::invoices::export_csv(&ctx.state, &ctx.caller, uuid)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(download("text/csv; charset=utf-8", &e.file_name, e.bytes))
}

pub async fn pdf(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ConsoleError> {
    let uuid = invoice_id(&ctx, &id)?;
    let e = app::invoices::export_pdf(&ctx.state, &ctx.caller, uuid)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(download("application/pdf", &e.file_name, e.bytes))
}

/// The organization a page is about: `?organization=`, else the caller's own, else the first
/// the caller may see.
pub async fn organization_of(ctx: &Ctx, asked: Option<&str>) -> Result<String, ConsoleError> {
    if let Some(o) = asked.filter(|o| !o.is_empty()) {
        return Ok(o.to_string());
    }
    let orgs = app::organizations::list(&ctx.state, &ctx.caller, None, 1)
        .await
        .map_err(|e| ctx.fail(e))?;
    orgs.into_iter()
        .next()
        .map(|o| o.row.name)
        .ok_or_else(|| ctx.fail(AppError::not_found("organization", "")))
}

#[derive(Deserialize)]
pub struct OrgMonth {
    organization: Option<String>,
    month: Option<String>,
}

/// `/summary`: the organization's month, one row per invoice and credit note, with totals.
pub async fn summary(ctx: Ctx, Query(q): Query<OrgMonth>) -> Result<Response, ConsoleError> {
    let l = ctx.lang;
    let org = organization_of(&ctx, blank(&q.organization)).await?;
    let month = blank(&q.month).map_or_else(
        || crate::domain::period::month_before(Utc::now()),
        str::to_string,
    );
    let rows = app::invoices::month_of_organization(&ctx.state, &ctx.caller, &org, &month)
        .await
        .map_err(|e| ctx.fail(e))?;
    let mut t = table(&ctx, &rows, "summary");
    t.caption = l.t("Tổng hợp theo cơ quan", "Per agency").into();
    let sum = |f: fn(&InvoiceView) -> Decimal| rows.iter().map(f).sum::<Decimal>();
    let (sub, vat, total) = (sum(|v| v.subtotal), sum(|v| v.vat), sum(|v| v.total));
    if !rows.is_empty() {
        t.row(vec![
            Cell::html(
                html! { strong { (l.t("Cộng", "Total")) } },
                l.t("Cộng", "Total"),
            ),
            Cell::text(""),
            Cell::text(month.clone()),
            Cell::text(""),
            Cell::text(""),
            Cell::money(sub),
            Cell::money(vat),
            Cell::money(total),
        ]);
    }
    if let Some(r) = ui::csv_of(&ctx, &format!("{org}-{month}"), &[&t]) {
        return Ok(r);
    }
    let as_f = |d: Decimal| d.to_string().parse::<f64>().unwrap_or(0.0);
    let bars: Vec<Bar> = rows
        .iter()
        .filter(|v| v.kind == InvoiceKind::Invoice)
        .map(|v| Bar {
            label: v.tenant.clone(),
            value: as_f(v.total),
            shown: ui::money(v.total),
            colour: chart::BLUE,
        })
        .collect();
    Ok(ctx.page(l.t("Tổng hợp tháng", "Monthly summary"), html! {
        h1 { (l.t("Tổng hợp tháng", "Monthly summary")) " " (ui::month(&month)) " — " (org) }
        (ui::month_picker(&ctx, "/summary", &month, &[("organization", &org)]))
        div.cards {
            div.card { div { (l.t("Tiền trước thuế", "Subtotal")) } div.big { (ui::money(sub)) } }
            div.card { div { "VAT" } div.big { (ui::money(vat)) } }
            div.card { div { (l.t("Tổng cộng", "Total")) } div.big { (ui::money(total)) } }
        }
        @if !bars.is_empty() { figure { figcaption { (l.t("Tổng tiền theo cơ quan", "Total per agency")) } (chart::bars(l.t("Tổng tiền theo cơ quan", "Total per agency"), &bars, None)) } }
        (t.render(&ctx))
    }))
}

/// `/budgets`: each agency's budget against its spend and forecast, and the alerts raised.
pub async fn budgets(ctx: Ctx, Query(q): Query<OrgMonth>) -> Result<Response, ConsoleError> {
    let l = ctx.lang;
    let org = organization_of(&ctx, blank(&q.organization)).await?;
    let tenants = app::tenants::list(&ctx.state, &ctx.caller, Some(&org), None, 1000)
        .await
        .map_err(|e| ctx.fail(e))?;
    let mut t = Table::new(
        "budgets",
        l.t("Ngân sách tháng này", "This month's budgets"),
        &[
            l.t("Cơ quan", "Agency"),
            l.t("Ngân sách", "Budget"),
            l.t("Đã chi", "Spent"),
            l.t("Dự báo", "Forecast"),
            l.t("Dự báo / ngân sách", "Forecast / budget"),
        ],
    );
    let mut bars = Vec::new();
    let as_f = |d: Decimal| d.to_string().parse::<f64>().unwrap_or(0.0);
    for v in &tenants {
        let b = app::budgets::show(&ctx.state, &ctx.caller, &v.row.name)
            .await
            .map_err(|e| ctx.fail(e))?;
        let ratio = b
            .amount
            .filter(|a| !a.is_zero())
            .map(|a| (b.forecast * Decimal::ONE_HUNDRED / a).round_dp(1));
        t.row(vec![
            Cell::link(
                v.row.display_name.clone(),
                &format!("/tenants/{}", v.row.name),
            ),
            b.amount.map_or_else(|| Cell::text("—"), Cell::money),
            Cell::money(b.spend),
            Cell::money(b.forecast),
            Cell::num(
                ratio.map_or_else(|| "—".into(), |r| format!("{} %", ui::number(l, r))),
                ratio.map(|r| r.to_string()).unwrap_or_default(),
            ),
        ]);
        if let Some(a) = b.amount {
            bars.push(Bar {
                label: format!("{} — {}", v.row.name, l.t("ngân sách", "budget")),
                value: as_f(a),
                shown: ui::money(a),
                colour: chart::GREY,
            });
            bars.push(Bar {
                label: format!("{} — {}", v.row.name, l.t("dự báo", "forecast")),
                value: as_f(b.forecast),
                shown: ui::money(b.forecast),
                colour: if b.forecast > a {
                    chart::RED
                } else {
                    chart::GREEN
                },
            });
        }
    }
    let month = month_of(Utc::now());
    let alerts = app::budgets::alerts(
        &ctx.state,
        &ctx.caller,
        app::budgets::Filter {
            organization: Some(&org),
            tenant: None,
            month: None,
            before: None,
            limit: 200,
        },
    )
    .await
    .map_err(|e| ctx.fail(e))?;
    let mut a = Table::new(
        "alerts",
        l.t("Cảnh báo ngân sách", "Budget alerts"),
        &[
            l.t("Lúc", "At"),
            l.t("Cơ quan", "Agency"),
            l.t("Tháng", "Month"),
            l.t("Loại", "Measure"),
            l.t("Ngưỡng", "Threshold"),
            l.t("Ngân sách", "Budget"),
            l.t("Số tiền", "Amount"),
        ],
    )
    .empty(l.t("Chưa có cảnh báo.", "No alerts."));
    for x in &alerts {
        a.row(vec![
            Cell::text(ui::when(x.raised_at)),
            Cell::link(x.tenant.clone(), &format!("/tenants/{}", x.tenant)),
            Cell::text(x.month.clone()),
            Cell::text(match x.measure {
                Measure::Spend => l.t("Đã chi", "Spend"),
                Measure::Forecast => l.t("Dự báo", "Forecast"),
            }),
            Cell::num(format!("{} %", x.threshold), x.threshold.to_string()),
            Cell::money(x.budget),
            Cell::money(x.amount),
        ]);
    }
    if let Some(r) = ui::csv_of(&ctx, &format!("{org}-{month}"), &[&t, &a]) {
        return Ok(r);
    }
    Ok(ctx.page(l.t("Ngân sách", "Budgets"), html! {
        h1 { (l.t("Ngân sách", "Budgets")) " " (ui::month(&month)) " — " (org) }
        p.sub { (l.t("Đặt ngân sách ở trang của từng cơ quan. Cảnh báo ở 80 % và 100 % của số đã chi và của dự báo.", "Set a budget on each agency's page. Alerts at 80 % and 100 % of the spend and of the forecast.")) }
        @if !bars.is_empty() { figure { figcaption { (l.t("Dự báo so với ngân sách", "Forecast against budget")) } (chart::bars(l.t("Dự báo so với ngân sách", "Forecast against budget"), &bars, None)) } }
        (t.render(&ctx))
        (a.render(&ctx))
    }))
}
