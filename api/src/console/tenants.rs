//! An agency's page and its namespaces: state, quotas against what is requested and used, use
//! over time, its budget, invoices and links; and what IT does to it (suspend, resume) and what
//! the agency does (ask for capacity, get a kubeconfig).

use std::collections::BTreeMap;

use axum::extract::Path;
use axum::response::Response;
use chrono::{Duration, Utc};
use govcloud_tenant::names::namespace_name;
use govcloud_tenant::usage::Metric;
use maud::{Markup, html};
use serde::Deserialize;

use crate::app;
use crate::app::budgets::{BudgetInput, BudgetView};
use crate::app::kubeconfig::KubeconfigRequest;
use crate::app::tenants::TenantView;
use crate::app::usage::{NamespaceUtilisation, Usage, UsageQuery};
use crate::console::chart::{self, Bar, Series};
use crate::console::organizations::status;
use crate::console::session::{ConsoleError, Ctx, Lang, Posted, download};
use crate::console::ui::{self, Cell, Table};
use crate::domain::period::{Granularity, month_of};
use crate::domain::principal::Role;

fn parse_i128(s: Option<&String>) -> i128 {
    s.and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Reserved, requested and used this month (averages), for CPU and memory.
pub fn utilisation_bars(l: Lang, u: &NamespaceUtilisation) -> Markup {
    let three = |title: &str, m: &crate::app::usage::Measure, fmt: &dyn Fn(i128) -> String| {
        let amount = |v: &String| parse_i128(Some(v));
        let mut bars = vec![
            Bar::of(
                l.t("Đã thuê", "Reserved"),
                amount(&m.average_reserved),
                fmt,
                chart::GREY,
            ),
            Bar::of(
                l.t("Đã yêu cầu", "Requested"),
                amount(&m.average_requested),
                fmt,
                chart::BLUE,
            ),
        ];
        if let Some(used) = &m.average_used {
            bars.push(Bar::of(
                l.t("Đã dùng", "Used"),
                amount(used),
                fmt,
                chart::GREEN,
            ));
        }
        if let Some(p) = &m.peak_used {
            bars.push(Bar::of(
                l.t("Đỉnh (giờ)", "Peak (hour)"),
                amount(p),
                fmt,
                chart::ORANGE,
            ));
        }
        chart::bars(title, &bars, None)
    };
    html! {
        div.cards {
            figure.card { figcaption { "CPU — " (u.namespace) } (three("CPU", &u.cpu, &|v| ui::cores(l, v))) }
            figure.card { figcaption { (l.t("Bộ nhớ", "Memory")) " — " (u.namespace) } (three("Memory", &u.memory, &|v| ui::gib(l, v))) }
        }
    }
}

/// Lines of reserved, requested and used per day for CPU and memory, summed over the
/// namespaces in `usage`.
pub fn usage_charts(l: Lang, usage: &Usage) -> Markup {
    // (metric, bucket start) → (quantity, seconds)
    let mut sums: BTreeMap<(&'static str, chrono::DateTime<Utc>), (i128, i64)> = BTreeMap::new();
    for s in &usage.series {
        for b in &s.buckets {
            let seconds = match s.metric {
                Metric::CpuReserved | Metric::MemoryReserved => (b.end - b.start).num_seconds(),
                _ => b.metered_seconds,
            };
            let e = sums.entry((s.metric.as_str(), b.start)).or_default();
            e.0 += b.quantity.parse::<i128>().unwrap_or(0);
            e.1 = e.1.max(seconds);
        }
    }
    let series = |metric: Metric, name: &str, colour| Series {
        name: name.into(),
        colour,
        points: sums
            .iter()
            .filter(|((m, _), (_, secs))| *m == metric.as_str() && *secs > 0)
            .map(|((_, t), (q, secs))| (*t, *q as f64 / *secs as f64))
            .collect(),
    };
    let day = |t: chrono::DateTime<Utc>| ui::when(t).chars().take(5).collect::<String>();
    let cpu = [
        series(Metric::CpuReserved, l.t("Đã thuê", "Reserved"), chart::GREY),
        series(
            Metric::CpuRequested,
            l.t("Đã yêu cầu", "Requested"),
            chart::BLUE,
        ),
        series(Metric::CpuUsed, l.t("Đã dùng", "Used"), chart::GREEN),
    ];
    let memory = [
        series(
            Metric::MemoryReserved,
            l.t("Đã thuê", "Reserved"),
            chart::GREY,
        ),
        series(
            Metric::MemoryRequested,
            l.t("Đã yêu cầu", "Requested"),
            chart::BLUE,
        ),
        series(Metric::MemoryUsed, l.t("Đã dùng", "Used"), chart::GREEN),
    ];
    html! {
        figure {
            figcaption { (l.t("CPU theo ngày (lõi, trung bình)", "CPU per day (cores, average)")) }
            (chart::lines("CPU", &cpu, day, |v| ui::cores(l, v as i128)))
        }
        figure {
            figcaption { (l.t("Bộ nhớ theo ngày (trung bình)", "Memory per day (average)")) }
            (chart::lines("Memory", &memory, day, |v| ui::gib(l, v as i128)))
        }
    }
}

fn budget_block(ctx: &Ctx, tenant: &str, b: &BudgetView) -> Markup {
    let l = ctx.lang;
    let amount = b.amount.unwrap_or_default();
    let as_f = |d: rust_decimal::Decimal| d.to_string().parse::<f64>().unwrap_or(0.0);
    let mut bars = vec![
        Bar {
            label: l.t("Đã chi", "Spent").into(),
            value: as_f(b.spend),
            shown: ui::money(b.spend),
            colour: chart::BLUE,
        },
        Bar {
            label: l.t("Dự báo cả tháng", "Forecast").into(),
            value: as_f(b.forecast),
            shown: ui::money(b.forecast),
            colour: chart::ORANGE,
        },
    ];
    if b.amount.is_some() {
        bars.insert(
            0,
            Bar {
                label: l.t("Ngân sách", "Budget").into(),
                value: as_f(amount),
                shown: ui::money(amount),
                colour: chart::GREY,
            },
        );
    }
    let may_set = ctx.is(&[Role::PlatformAdmin, Role::OrgAdmin, Role::Finance]);
    html! {
        section {
            h2 { (l.t("Ngân sách tháng", "Monthly budget")) " " (ui::month(&b.month)) }
            @if b.amount.is_none() { p.empty { (l.t("Chưa đặt ngân sách.", "No budget set.")) } }
            figure { (chart::bars(l.t("Chi tiêu so với ngân sách", "Spend against budget"), &bars, None)) }
            @if may_set {
                form.inline method="post" action={ "/tenants/" (tenant) "/budget" } {
                    (ui::csrf(ctx))
                    label for="budget-amount" { (l.t("Ngân sách (đồng/tháng, gồm VAT)", "Budget (đồng a month, VAT included)")) }
                    input type="text" inputmode="numeric" id="budget-amount" name="amount" required pattern="[0-9.]+" value=(b.amount.map(|a| a.to_string()).unwrap_or_default());
                    button type="submit" class="secondary" { (l.t("Lưu ngân sách", "Save budget")) }
                }
            }
        }
    }
}

fn request_form(ctx: &Ctx, v: &TenantView) -> Markup {
    let l = ctx.lang;
    html! {
        section {
            h2 { (l.t("Yêu cầu thay đổi tài nguyên", "Ask for a capacity change")) }
            p.sub { (l.t("Chỉ các tài nguyên được điền mới thay đổi. Phòng CNTT của tỉnh sẽ phê duyệt.", "Only the resources filled in change. The province's IT department decides.")) }
            form.stack method="post" action="/requests" {
                (ui::csrf(ctx))
                input type="hidden" name="tenant" value=(v.row.name);
                label for="rq-namespace" { "Namespace" }
                select id="rq-namespace" name="namespace" required {
                    @for n in &v.namespaces { option value=(n.name) { (n.name) } }
                }
                label for="rq-cpu" { (l.t("CPU (lõi, ví dụ 4 hoặc 500m)", "CPU (cores, e.g. 4 or 500m)")) }
                input id="rq-cpu" name="cpu" type="text";
                label for="rq-memory" { (l.t("Bộ nhớ (ví dụ 16Gi)", "Memory (e.g. 16Gi)")) }
                input id="rq-memory" name="memory" type="text";
                label for="rq-storage" { (l.t("Lưu trữ (ví dụ 100Gi)", "Storage (e.g. 100Gi)")) }
                input id="rq-storage" name="storage" type="text";
                label for="rq-pods" { (l.t("Số pod", "Pods")) }
                input id="rq-pods" name="pods" type="number" min="0" max="100000";
                label for="rq-reason" { (l.t("Lý do", "Reason")) }
                textarea id="rq-reason" name="reason" required maxlength="1000" rows="2" {}
                button type="submit" { (l.t("Gửi yêu cầu", "Send the request")) }
            }
        }
    }
}

fn kubeconfig_form(ctx: &Ctx, v: &TenantView) -> Markup {
    let l = ctx.lang;
    html! {
        section {
            h2 { (l.t("Cấp kubeconfig", "Issue a kubeconfig")) }
            p.sub { (l.t("Tệp kubeconfig cho kubectl và Helm, chỉ vào một namespace; hết hạn sau thời gian quy định.", "A kubeconfig for kubectl and Helm, for one namespace; it expires.")) }
            form.inline method="post" action={ "/tenants/" (v.row.name) "/kubeconfig" } {
                (ui::csrf(ctx))
                label for="kc-namespace" { "Namespace" }
                select id="kc-namespace" name="namespace" required {
                    @for n in &v.namespaces { option value=(n.name) { (n.name) } }
                }
                button type="submit" class="secondary" { (l.t("Tải kubeconfig", "Download kubeconfig")) }
            }
        }
    }
}

/// `/tenants/{name}`.
pub async fn show(ctx: Ctx, Path(name): Path<String>) -> Result<Response, ConsoleError> {
    let v = app::tenants::show(&ctx.state, &ctx.caller, &name)
        .await
        .map_err(|e| ctx.fail(e))?;
    let l = ctx.lang;
    let month = month_of(Utc::now());
    let report = app::usage::utilisation(&ctx.state, &ctx.caller, &v.row.organization, &month)
        .await
        .ok();
    let mine: Vec<&NamespaceUtilisation> = report
        .iter()
        .flat_map(|r| &r.tenants)
        .filter(|t| t.tenant == v.row.name)
        .flat_map(|t| &t.namespaces)
        .collect();
    let usage = app::usage::usage(
        &ctx.state,
        &ctx.caller,
        UsageQuery {
            tenant: v.row.name.clone(),
            namespace: None,
            metric: None,
            from: Some(crate::domain::period::bucket_start(
                Utc::now() - Duration::days(30),
                Granularity::Day,
            )),
            to: None,
            granularity: Granularity::Day,
        },
    )
    .await
    .ok();
    let budget = app::budgets::show(&ctx.state, &ctx.caller, &name)
        .await
        .ok();
    let invoices = app::invoices::list(
        &ctx.state,
        &ctx.caller,
        app::invoices::Filter {
            organization: None,
            tenant: Some(&name),
            month: None,
            state: None,
            kind: None,
            after: None,
            limit: 24,
        },
    )
    .await
    .unwrap_or_default();

    let mut ns = Table::new(
        "namespaces",
        "Namespace",
        &[
            "Namespace",
            l.t("Tên trong cụm", "In the cluster"),
            l.t("CPU (lõi)", "CPU (cores)"),
            l.t("Bộ nhớ (GiB)", "Memory (GiB)"),
            l.t("Lưu trữ (GiB)", "Storage (GiB)"),
            "Pods",
            l.t("CPU đã dùng / thuê", "CPU used / reserved"),
            l.t("Bộ nhớ đã dùng / thuê", "Memory used / reserved"),
        ],
    );
    for n in &v.namespaces {
        let kube = namespace_name(&v.row.name, &n.name);
        let u = mine.iter().find(|u| u.namespace == kube);
        let pct = |p: Option<rust_decimal::Decimal>| {
            p.map_or_else(|| "—".to_string(), |p| format!("{} %", ui::number(l, p)))
        };
        let cpu_pct = u.and_then(|u| u.cpu.used_percent);
        let mem_pct = u.and_then(|u| u.memory.used_percent);
        ns.row(vec![
            Cell::link(
                n.name.clone(),
                &format!("/tenants/{}/namespaces/{}", v.row.name, n.name),
            ),
            Cell::text(kube.clone()),
            Cell::num(
                ui::cores(l, n.cpu_milli.into()),
                ui::plain_cores(n.cpu_milli.into()),
            ),
            Cell::num(
                ui::gib(l, n.memory_bytes.into()),
                ui::plain_gib(n.memory_bytes.into()),
            ),
            Cell::num(
                ui::gib(l, n.storage_bytes.into()),
                ui::plain_gib(n.storage_bytes.into()),
            ),
            Cell::num(n.pods.to_string(), n.pods.to_string()),
            Cell::num(
                pct(cpu_pct),
                cpu_pct.map(|p| p.to_string()).unwrap_or_default(),
            ),
            Cell::num(
                pct(mem_pct),
                mem_pct.map(|p| p.to_string()).unwrap_or_default(),
            ),
        ]);
    }
    let mut inv = super::invoices::table(&ctx, &invoices, "invoices");
    inv.empty = l.t("Chưa có hóa đơn.", "No invoices yet.").into();
    if let Some(r) = ui::csv_of(&ctx, &name, &[&ns, &inv]) {
        return Ok(r);
    }
    let it = ctx.is(&[Role::PlatformAdmin, Role::OrgAdmin]);
    let conditions: Vec<_> = v
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .filter(|c| c.status != "True")
        .collect();
    let body = html! {
        p.sub {
            a href={ "/organizations/" (v.row.organization) } { (v.row.organization) } " › " (v.row.display_name)
        }
        h1 { (v.row.display_name) " " (status(l, &v)) }
        p.sub { (v.row.name) }
        @if v.row.suspended {
            p.notice.bad {
                (l.t("Cơ quan đang bị tạm dừng", "The agency is suspended"))
                @if let Some(at) = v.row.suspended_at { " — " (ui::when(at)) }
                @if let Some(by) = &v.row.suspended_by { ", " (by) }
                @if let Some(r) = &v.row.suspend_reason { ": " (r) }
            }
        }
        @for c in &conditions {
            p.notice.bad { (c.type_) ": " (c.reason) " — " (c.message) }
        }
        @if it && v.row.offboarded_at.is_none() {
            @if v.row.suspended {
                (ui::reason_form(&ctx, &format!("/tenants/{}/resume", v.row.name), "resume-reason", l.t("Cho hoạt động lại", "Resume"), true))
            } @else {
                (ui::reason_form(&ctx, &format!("/tenants/{}/suspend", v.row.name), "suspend-reason", l.t("Tạm dừng cơ quan", "Suspend the agency"), true))
            }
        }
        (ns.render(&ctx))
        h2 { (l.t("Tháng này: đã thuê, đã yêu cầu và đã dùng", "This month: reserved, requested and used")) }
        @for u in &mine { (utilisation_bars(l, u)) }
        @if let Some(u) = &usage {
            h2 { (l.t("Sử dụng 30 ngày qua", "Use over the last 30 days")) }
            (usage_charts(l, u))
        }
        @if let Some(b) = &budget { (budget_block(&ctx, &v.row.name, b)) }
        (inv.render(&ctx))
        p {
            a href={ "/links?tenant=" (v.row.name) } { (l.t("Liên kết dữ liệu của cơ quan", "The agency's data links")) } " · "
            a href={ "/requests?tenant=" (v.row.name) } { (l.t("Các yêu cầu tài nguyên", "Its capacity requests")) }
        }
        @if ctx.is(&[Role::TenantAdmin, Role::OrgAdmin, Role::PlatformAdmin]) && !v.namespaces.is_empty() {
            (request_form(&ctx, &v))
        }
        @if ctx.is(&[Role::TenantAdmin, Role::PlatformAdmin]) && !v.namespaces.is_empty() {
            (kubeconfig_form(&ctx, &v))
        }
    };
    Ok(ctx.page(&v.row.display_name, body))
}

/// `/tenants/{name}/namespaces/{namespace}`.
pub async fn namespace(
    ctx: Ctx,
    Path((name, short)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    let v = app::tenants::show(&ctx.state, &ctx.caller, &name)
        .await
        .map_err(|e| ctx.fail(e))?;
    let Some(n) = v.namespaces.iter().find(|n| n.name == short) else {
        return Err(ctx.fail(app::AppError::not_found("namespace", short)));
    };
    let l = ctx.lang;
    let kube = namespace_name(&v.row.name, &n.name);
    let month = month_of(Utc::now());
    let report = app::usage::utilisation(&ctx.state, &ctx.caller, &v.row.organization, &month)
        .await
        .ok();
    let u = report
        .iter()
        .flat_map(|r| &r.tenants)
        .filter(|t| t.tenant == v.row.name)
        .flat_map(|t| &t.namespaces)
        .find(|u| u.namespace == kube);
    let usage = app::usage::usage(
        &ctx.state,
        &ctx.caller,
        UsageQuery {
            tenant: v.row.name.clone(),
            namespace: Some(kube.clone()),
            metric: None,
            from: Some(crate::domain::period::bucket_start(
                Utc::now() - Duration::days(30),
                Granularity::Day,
            )),
            to: None,
            granularity: Granularity::Day,
        },
    )
    .await
    .map_err(|e| ctx.fail(e))?;
    let status = v
        .status
        .iter()
        .flat_map(|s| &s.namespaces)
        .find(|s| s.name == kube);
    let mut q = Table::new(
        "quota",
        l.t("Hạn ngạch trong cụm", "Quota in the cluster"),
        &[
            l.t("Tài nguyên", "Resource"),
            l.t("Hạn ngạch", "Hard"),
            l.t("Đang dùng", "Used"),
        ],
    );
    if let Some(s) = status {
        for (k, hard) in &s.hard {
            q.row(vec![
                Cell::text(k.clone()),
                Cell::text(hard.clone()),
                Cell::text(s.used.get(k).cloned().unwrap_or_default()),
            ]);
        }
    }
    if let Some(r) = ui::csv_of(&ctx, &kube, &[&q]) {
        return Ok(r);
    }
    Ok(ctx.page(&kube, html! {
        p.sub {
            a href={ "/organizations/" (v.row.organization) } { (v.row.organization) } " › "
            a href={ "/tenants/" (v.row.name) } { (v.row.display_name) } " › " (n.name)
        }
        h1 { "Namespace " (kube) }
        p { (l.t("Sẵn sàng: ", "Ready: ")) (if status.is_some_and(|s| s.ready) { l.t("có", "yes") } else { l.t("chưa", "not yet") }) }
        (q.render(&ctx))
        @if let Some(u) = u { (utilisation_bars(l, u)) }
        h2 { (l.t("Sử dụng 30 ngày qua", "Use over the last 30 days")) }
        (usage_charts(l, &usage))
    }))
}

#[derive(Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    pub reason: String,
}

impl ReasonForm {
    /// The reason given, if any.
    pub fn given(&self) -> Option<&str> {
        Some(self.reason.trim()).filter(|r| !r.is_empty())
    }
}

async fn set_suspended(
    p: Posted<ReasonForm>,
    name: String,
    suspend: bool,
) -> Result<Response, ConsoleError> {
    let ctx = &p.ctx;
    let back = format!("/tenants/{name}");
    match app::tenants::set_suspended(
        &ctx.state,
        &ctx.caller,
        &name,
        suspend,
        p.form.reason.trim(),
    )
    .await
    {
        Ok(_) => Ok(ctx.done(
            &back,
            true,
            if suspend {
                ctx.t("Đã tạm dừng cơ quan.", "The agency is suspended.")
            } else {
                ctx.t("Cơ quan đã hoạt động lại.", "The agency is resumed.")
            },
        )),
        Err(e) => ctx.refused(&back, e),
    }
}

pub async fn suspend(
    Path(name): Path<String>,
    p: Posted<ReasonForm>,
) -> Result<Response, ConsoleError> {
    set_suspended(p, name, true).await
}

pub async fn resume(
    Path(name): Path<String>,
    p: Posted<ReasonForm>,
) -> Result<Response, ConsoleError> {
    set_suspended(p, name, false).await
}

/// Issues a kubeconfig and downloads it.
#[derive(Deserialize)]
pub struct NamespaceForm {
    namespace: String,
}

pub async fn kubeconfig(
    Path(name): Path<String>,
    p: Posted<NamespaceForm>,
) -> Result<Response, ConsoleError> {
    let ctx = &p.ctx;
    let body = KubeconfigRequest {
        namespace: p.form.namespace.clone(),
    };
    match app::kubeconfig::issue(&ctx.state, &ctx.caller, &name, &body).await {
        Ok(issued) => Ok(download(
            "application/yaml",
            &format!("kubeconfig-{}.yaml", issued.namespace),
            issued.kubeconfig.into_bytes(),
        )),
        Err(e) => ctx.refused(&format!("/tenants/{name}"), e),
    }
}

#[derive(Deserialize)]
pub struct AmountForm {
    amount: String,
}

pub async fn set_budget(
    Path(name): Path<String>,
    p: Posted<AmountForm>,
) -> Result<Response, ConsoleError> {
    let ctx = &p.ctx;
    let back = format!("/tenants/{name}");
    let input = BudgetInput {
        amount: p.form.amount.replace('.', "").trim().to_string(),
    };
    match app::budgets::set(&ctx.state, &ctx.caller, &name, input).await {
        Ok(_) => Ok(ctx.done(
            &back,
            true,
            ctx.t("Đã lưu ngân sách.", "The budget is saved."),
        )),
        Err(e) => ctx.refused(&back, e),
    }
}
