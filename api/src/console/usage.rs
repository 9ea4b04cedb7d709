//! The utilisation report: who uses more or less than they rent, with a right-sizing
//! suggestion per namespace (peak use plus headroom) for the next monthly capacity window.

use axum::extract::Query;
use axum::response::Response;
use chrono::Utc;
use maud::html;
use serde::Deserialize;

use crate::app;
use crate::app::usage::{Measure, SizeChange};
use crate::console::session::{ConsoleError, Ctx, Lang};
use crate::console::ui::{self, Cell, Table};
use crate::domain::period::month_of;

fn int(s: &str) -> i128 {
    s.parse().unwrap_or(0)
}

fn verdict(l: Lang, m: &Measure) -> (&'static str, &'static str) {
    match m.suggestion.as_ref().map(|s| s.change) {
        Some(SizeChange::Raise) => (
            "bad",
            l.t("Dùng gần hết: nên tăng", "Near its limit: raise"),
        ),
        Some(SizeChange::Lower) => ("warn", l.t("Thuê thừa: nên giảm", "Over-reserved: lower")),
        Some(SizeChange::Keep) => ("good", l.t("Vừa đủ", "Right-sized")),
        None => ("", l.t("Chưa có số liệu dùng", "No use measured")),
    }
}

fn pct(l: Lang, p: Option<rust_decimal::Decimal>) -> Cell {
    Cell::num(
        p.map_or_else(|| "—".into(), |p| format!("{} %", ui::number(l, p))),
        p.map(|p| p.to_string()).unwrap_or_default(),
    )
}

#[derive(Deserialize)]
pub struct ReportQuery {
    organization: Option<String>,
    month: Option<String>,
}

/// `/usage`.
pub async fn report(ctx: Ctx, Query(q): Query<ReportQuery>) -> Result<Response, ConsoleError> {
    let l = ctx.lang;
    let org = super::invoices::organization_of(&ctx, q.organization.as_deref()).await?;
    let month = q
        .month
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| month_of(Utc::now()));
    let r = app::usage::utilisation(&ctx.state, &ctx.caller, &org, &month)
        .await
        .map_err(|e| ctx.fail(e))?;
    let mut t = Table::new(
        "utilisation",
        l.t("Mức sử dụng theo namespace", "Utilisation per namespace"),
        &[
            l.t("Cơ quan", "Agency"),
            "Namespace",
            l.t("CPU thuê (lõi)", "CPU reserved (cores)"),
            l.t("CPU dùng TB (lõi)", "CPU used, avg (cores)"),
            l.t("CPU dùng / thuê", "CPU used / reserved"),
            l.t("CPU đỉnh (lõi)", "CPU peak (cores)"),
            l.t("CPU đề xuất (lõi)", "CPU suggested (cores)"),
            l.t("Đánh giá CPU", "CPU verdict"),
            l.t("Bộ nhớ thuê (GiB)", "Memory reserved (GiB)"),
            l.t("Bộ nhớ dùng TB (GiB)", "Memory used, avg (GiB)"),
            l.t("Bộ nhớ dùng / thuê", "Memory used / reserved"),
            l.t("Bộ nhớ đỉnh (GiB)", "Memory peak (GiB)"),
            l.t("Bộ nhớ đề xuất (GiB)", "Memory suggested (GiB)"),
            l.t("Đánh giá bộ nhớ", "Memory verdict"),
            l.t("Lưu trữ đã gắn / thuê", "Storage bound / reserved"),
        ],
    )
    .empty(l.t(
        "Chưa có số liệu cho tháng này.",
        "Nothing measured this month.",
    ));
    for tu in &r.tenants {
        for n in &tu.namespaces {
            let short = n
                .namespace
                .strip_prefix(&format!("{}-", tu.tenant))
                .unwrap_or(&n.namespace)
                .to_string();
            let href = format!("/tenants/{}/namespaces/{}", tu.tenant, short);
            let mut cells = vec![
                Cell::link(tu.tenant.clone(), &format!("/tenants/{}", tu.tenant)),
                Cell::link(n.namespace.clone(), &href),
            ];
            for (m, fmt, plain) in [
                (
                    &n.cpu,
                    (|l, v| ui::cores(l, v)) as fn(Lang, i128) -> String,
                    ui::plain_cores as fn(i128) -> String,
                ),
                (&n.memory, |l, v| ui::gib(l, v), ui::plain_gib),
            ] {
                let reserved = m
                    .suggestion
                    .as_ref()
                    .map_or_else(|| int(&m.average_reserved), |s| int(&s.reserved_now));
                cells.push(Cell::num(fmt(l, reserved), plain(reserved)));
                match &m.average_used {
                    Some(u) => cells.push(Cell::num(fmt(l, int(u)), plain(int(u)))),
                    None => cells.push(Cell::text("—")),
                }
                cells.push(pct(l, m.used_percent));
                match &m.peak_used {
                    Some(p) => cells.push(Cell::num(fmt(l, int(p)), plain(int(p)))),
                    None => cells.push(Cell::text("—")),
                }
                match &m.suggestion {
                    Some(s) => {
                        cells.push(Cell::num(fmt(l, int(&s.reserve)), plain(int(&s.reserve))))
                    }
                    None => cells.push(Cell::text("—")),
                }
                let (class, text) = verdict(l, m);
                cells.push(Cell::html(
                    html! { span class={ "state " (class) } { (text) } },
                    text,
                ));
            }
            cells.push(pct(l, n.storage.bound_percent));
            t.row(cells);
        }
    }
    if let Some(resp) = ui::csv_of(&ctx, &format!("{org}-{month}"), &[&t]) {
        return Ok(resp);
    }
    Ok(ctx.page(l.t("Mức sử dụng", "Utilisation"), html! {
        h1 { (l.t("Mức sử dụng tháng", "Utilisation of")) " " (ui::month(&month)) " — " (org) }
        (ui::month_picker(&ctx, "/usage", &month, &[("organization", &org)]))
        p.sub { (l.t("Đề xuất cho kỳ đăng ký tháng tới = mức dùng cao nhất theo giờ + 30 %, làm tròn lên 0,1 lõi và 128 MiB.", "Suggestion for next month's capacity window = the highest hourly use + 30 %, rounded up to 0.1 core and 128 MiB.")) }
        (t.render(&ctx))
    }))
}
