//! Organizations and their agencies: the drill-down from a province to an agency.

use axum::extract::Path;
use axum::response::Response;
use govcloud_tenant::crd::Phase;
use maud::{Markup, html};

use crate::app;
use crate::app::tenants::TenantView;
use crate::console::chart::{self, Bar};
use crate::console::session::{ConsoleError, Ctx, Lang};
use crate::console::ui::{self, Cell, Table};
use crate::domain::capacity::Totals;

/// An agency's state in a word (and its badge's class), from the cluster's status and the
/// database.
pub fn status_word(lang: Lang, t: &TenantView) -> (&'static str, &'static str) {
    if t.row.offboarded_at.is_some() {
        ("warn", lang.t("Đang rút khỏi nền tảng", "Offboarding"))
    } else if t.row.suspended {
        ("bad", lang.t("Tạm dừng", "Suspended"))
    } else {
        match t.status.as_ref().and_then(|s| s.phase) {
            Some(Phase::Ready) => ("good", lang.t("Sẵn sàng", "Ready")),
            Some(Phase::Degraded) => ("bad", lang.t("Có lỗi", "Degraded")),
            Some(Phase::Suspended) => ("bad", lang.t("Tạm dừng", "Suspended")),
            Some(Phase::Terminating) => ("warn", lang.t("Đang xóa", "Terminating")),
            Some(Phase::Provisioning) | None => ("warn", lang.t("Đang khởi tạo", "Provisioning")),
        }
    }
}

/// The same as a badge.
pub fn status(lang: Lang, t: &TenantView) -> Markup {
    let (class, text) = status_word(lang, t);
    html! { span class={ "state " (class) } { (text) } }
}

/// Reserved against the allotment, per resource.
pub fn allotment_bars(lang: Lang, allotment: Totals, reserved: Totals) -> Markup {
    let pair = |name: &str, a: i128, r: i128, fmt: &dyn Fn(i128) -> String| {
        chart::bars(
            name,
            &[
                Bar::of(lang.t("Hạn mức", "Allotment"), a, fmt, chart::GREY),
                Bar::of(
                    lang.t("Đã cấp cho cơ quan", "Reserved by agencies"),
                    r,
                    fmt,
                    chart::BLUE,
                ),
            ],
            None,
        )
    };
    html! {
        div.cards {
            figure.card { figcaption { "CPU" } (pair("CPU", allotment.cpu_milli, reserved.cpu_milli, &|v| ui::cores(lang, v))) }
            figure.card { figcaption { (lang.t("Bộ nhớ", "Memory")) } (pair("Memory", allotment.memory_bytes, reserved.memory_bytes, &|v| ui::gib(lang, v))) }
            figure.card { figcaption { (lang.t("Lưu trữ", "Storage")) } (pair("Storage", allotment.storage_bytes, reserved.storage_bytes, &|v| ui::gib(lang, v))) }
        }
    }
}

/// `/organizations`: every organization the person may see.
pub async fn list(ctx: Ctx) -> Result<Response, ConsoleError> {
    let orgs = app::organizations::list(&ctx.state, &ctx.caller, None, 500)
        .await
        .map_err(|e| ctx.fail(e))?;
    if orgs.len() == 1 && ctx.query("csv").is_none() {
        return Ok(super::session::redirect(
            &format!("/organizations/{}", orgs[0].row.name),
            Vec::new(),
        ));
    }
    let l = ctx.lang;
    let mut t = Table::new(
        "organizations",
        l.t("Tổ chức", "Organizations"),
        &[
            l.t("Tổ chức", "Organization"),
            l.t("Mã", "Name"),
            l.t("CPU hạn mức", "CPU allotment"),
            l.t("CPU đã cấp", "CPU reserved"),
            l.t("Bộ nhớ hạn mức (byte)", "Memory allotment (bytes)"),
            l.t("Bộ nhớ đã cấp (byte)", "Memory reserved (bytes)"),
        ],
    );
    for o in &orgs {
        let a = o.row.allotment();
        t.row(vec![
            Cell::link(
                o.row.display_name.clone(),
                &format!("/organizations/{}", o.row.name),
            ),
            Cell::text(o.row.name.clone()),
            Cell::num(ui::cores(l, a.cpu_milli), a.cpu_milli.to_string()),
            Cell::num(
                ui::cores(l, o.reserved.cpu_milli),
                o.reserved.cpu_milli.to_string(),
            ),
            Cell::num(ui::gib(l, a.memory_bytes), a.memory_bytes.to_string()),
            Cell::num(
                ui::gib(l, o.reserved.memory_bytes),
                o.reserved.memory_bytes.to_string(),
            ),
        ]);
    }
    if let Some(r) = ui::csv_of(&ctx, "organizations", &[&t]) {
        return Ok(r);
    }
    Ok(ctx.page(
        l.t("Tổ chức", "Organizations"),
        html! {
            h1 { (l.t("Tổ chức", "Organizations")) }
            (t.render(&ctx))
        },
    ))
}

/// `/organizations/{name}`: the organization's agencies, with state and what they reserve.
pub async fn show(ctx: Ctx, Path(name): Path<String>) -> Result<Response, ConsoleError> {
    let org = app::organizations::show(&ctx.state, &ctx.caller, &name)
        .await
        .map_err(|e| ctx.fail(e))?;
    let tenants = app::tenants::list(&ctx.state, &ctx.caller, Some(&name), None, 1000)
        .await
        .map_err(|e| ctx.fail(e))?;
    let l = ctx.lang;
    let mut t = Table::new(
        "agencies",
        l.t("Cơ quan", "Agencies"),
        &[
            l.t("Cơ quan", "Agency"),
            l.t("Mã", "Name"),
            l.t("Trạng thái", "State"),
            l.t("Số namespace", "Namespaces"),
            l.t("CPU đã thuê (lõi)", "CPU reserved (cores)"),
            l.t("Bộ nhớ đã thuê (GiB)", "Memory reserved (GiB)"),
            l.t("Lưu trữ đã thuê (GiB)", "Storage reserved (GiB)"),
        ],
    )
    .empty(l.t("Tổ chức chưa có cơ quan nào.", "No agencies yet."));
    for v in &tenants {
        let cpu: i128 = v.namespaces.iter().map(|n| i128::from(n.cpu_milli)).sum();
        let mem: i128 = v
            .namespaces
            .iter()
            .map(|n| i128::from(n.memory_bytes))
            .sum();
        let sto: i128 = v
            .namespaces
            .iter()
            .map(|n| i128::from(n.storage_bytes))
            .sum();
        t.row(vec![
            Cell::link(
                v.row.display_name.clone(),
                &format!("/tenants/{}", v.row.name),
            ),
            Cell::text(v.row.name.clone()),
            Cell::html(status(l, v), status_word(l, v).1),
            Cell::num(
                v.namespaces.len().to_string(),
                v.namespaces.len().to_string(),
            ),
            Cell::num(ui::cores(l, cpu), ui::plain_cores(cpu)),
            Cell::num(ui::gib(l, mem), ui::plain_gib(mem)),
            Cell::num(ui::gib(l, sto), ui::plain_gib(sto)),
        ]);
    }
    if let Some(r) = ui::csv_of(&ctx, &name, &[&t]) {
        return Ok(r);
    }
    let title = org.row.display_name.clone();
    Ok(ctx.page(&title, html! {
        p.sub { a href="/organizations" { (l.t("Tổ chức", "Organizations")) } " › " (org.row.display_name) }
        h1 { (org.row.display_name) }
        p {
            a href={ "/usage?organization=" (org.row.name) } { (l.t("Báo cáo mức sử dụng", "Utilisation report")) } " · "
            a href="/requests" { (l.t("Yêu cầu tài nguyên", "Capacity requests")) } " · "
            a href={ "/invoices?organization=" (org.row.name) } { (l.t("Hóa đơn", "Invoices")) } " · "
            a href={ "/summary?organization=" (org.row.name) } { (l.t("Tổng hợp tháng", "Monthly summary")) } " · "
            a href={ "/budgets?organization=" (org.row.name) } { (l.t("Ngân sách", "Budgets")) }
        }
        h2 { (l.t("Hạn mức và phần đã cấp", "Allotment and what is reserved")) }
        (allotment_bars(l, org.row.allotment(), org.reserved))
        (t.render(&ctx))
    }))
}
