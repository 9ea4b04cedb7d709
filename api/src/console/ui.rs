//! The console's look and words: the layout and navigation, tables that download as CSV,
//! hidden CSRF fields, and numbers, money and dates as Vietnamese write them (`1.234.567 ₫`,
//! `30/11/2026 14:00`, in Asia/Ho_Chi_Minh).

use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Asia::Ho_Chi_Minh;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use rust_decimal::Decimal;

use crate::app::AppError;
use crate::console::session::{Ctx, Lang, download};
use crate::domain::capacity::{Limit, Refusal};
use crate::domain::money::format_vi;
use crate::domain::principal::Role;

const CSS: &str = include_str!("console.css");

pub async fn stylesheet() -> Response {
    let mut r = CSS.into_response();
    r.headers_mut().insert(
        CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r.headers_mut().insert(
        CACHE_CONTROL,
        axum::http::HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

/// Percent-encodes a URL component (as a form would).
pub fn encode_component(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn role_name(lang: Lang, role: Role) -> &'static str {
    match role {
        Role::PlatformAdmin => lang.t("Quản trị nền tảng", "Platform admin"),
        Role::OrgAdmin => lang.t("Phòng CNTT của tỉnh", "Province IT"),
        Role::TenantAdmin => lang.t("Quản trị cơ quan", "Agency admin"),
        Role::Finance => lang.t("Tài chính", "Finance"),
        Role::Auditor => lang.t("Kiểm toán", "Auditor"),
        Role::Metering => lang.t("Đo lường", "Metering"),
    }
}

/// Money in đồng: `1.234.567 ₫`.
pub fn money(d: Decimal) -> String {
    format!("{} ₫", format_vi(d))
}

/// A number in the language's way: `1.234,5` or `1,234.5`.
pub fn number(lang: Lang, d: Decimal) -> String {
    match lang {
        Lang::Vi => format_vi(d),
        Lang::En => {
            let vi = format_vi(d);
            vi.chars()
                .map(|c| match c {
                    '.' => ',',
                    ',' => '.',
                    c => c,
                })
                .collect()
        }
    }
}

/// Millicores as cores, to a thousandth.
pub fn cores(lang: Lang, milli: i128) -> String {
    format!(
        "{} {}",
        number(lang, Decimal::from_i128_with_scale(milli, 3).normalize()),
        lang.t("lõi", "cores")
    )
}

/// Bytes as GiB, to a tenth (or MiB under one GiB).
pub fn gib(lang: Lang, bytes: i128) -> String {
    const GI: i128 = 1024 * 1024 * 1024;
    if bytes.abs() < GI && bytes != 0 {
        let mib = Decimal::from_i128_with_scale(bytes * 10 / (1024 * 1024), 1).normalize();
        return format!("{} MiB", number(lang, mib));
    }
    let tenths = (bytes * 10 + GI / 2).div_euclid(GI);
    format!(
        "{} GiB",
        number(lang, Decimal::from_i128_with_scale(tenths, 1).normalize())
    )
}

/// A date and time in Asia/Ho_Chi_Minh.
pub fn when(t: DateTime<Utc>) -> String {
    t.with_timezone(&Ho_Chi_Minh)
        .format("%d/%m/%Y %H:%M")
        .to_string()
}

/// The same for CSV: ISO 8601 with the offset, which Excel and scripts read alike.
pub fn when_csv(t: DateTime<Utc>) -> String {
    t.with_timezone(&Ho_Chi_Minh)
        .format("%Y-%m-%d %H:%M:%S%:z")
        .to_string()
}

/// A `YYYY-MM` month as `11/2026`.
pub fn month(m: &str) -> String {
    match m.split_once('-') {
        Some((y, mm)) => format!("{mm}/{y}"),
        None => m.to_string(),
    }
}

/// A table cell: what the page shows and what the CSV holds (plain numbers, no ₫ or grouping).
pub struct Cell {
    pub html: Markup,
    pub csv: String,
    pub numeric: bool,
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Self {
        let s = s.into();
        Self {
            html: html! { (s) },
            csv: s,
            numeric: false,
        }
    }

    pub fn link(s: impl Into<String>, href: &str) -> Self {
        let s = s.into();
        Self {
            html: html! { a href=(href) { (s) } },
            csv: s,
            numeric: false,
        }
    }

    pub fn money(d: Decimal) -> Self {
        Self {
            html: html! { (money(d)) },
            csv: d.normalize().to_string(),
            numeric: true,
        }
    }

    /// A number shown formatted, exported plain.
    pub fn num(shown: String, plain: String) -> Self {
        Self {
            html: html! { (shown) },
            csv: plain,
            numeric: true,
        }
    }

    pub fn html(html: Markup, csv: impl Into<String>) -> Self {
        Self {
            html,
            csv: csv.into(),
            numeric: false,
        }
    }
}

/// A table of a page, downloadable as CSV at the page's address with `?csv=<id>`.
pub struct Table {
    pub id: &'static str,
    pub caption: String,
    pub head: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Shown when there are no rows.
    pub empty: String,
}

impl Table {
    pub fn new(id: &'static str, caption: impl Into<String>, head: &[&str]) -> Self {
        Self {
            id,
            caption: caption.into(),
            head: head.iter().map(|h| (*h).to_string()).collect(),
            rows: Vec::new(),
            empty: String::new(),
        }
    }

    pub fn empty(mut self, text: &str) -> Self {
        self.empty = text.into();
        self
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// UTF-8 with a byte-order mark (so Excel reads Vietnamese), comma-separated, CRLF.
    pub fn csv(&self) -> Vec<u8> {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(vec![0xEF, 0xBB, 0xBF]);
        let _ = w.write_record(&self.head);
        for r in &self.rows {
            let _ = w.write_record(r.iter().map(|c| c.csv.as_str()));
        }
        w.into_inner().unwrap_or_default()
    }

    pub fn render(&self, ctx: &Ctx) -> Markup {
        let href = with_query(&ctx.here, "csv", self.id);
        html! {
            section.table id={ "t-" (self.id) } {
                div.tablehead {
                    h2 { (self.caption) }
                    a.download href=(href) download { (ctx.t("Tải CSV", "Download CSV")) }
                }
                @if self.rows.is_empty() {
                    p.empty { (if self.empty.is_empty() { ctx.t("Không có dữ liệu.", "Nothing here.") } else { &self.empty }) }
                } @else {
                    div.scroll {
                        table {
                            caption.visually-hidden { (self.caption) }
                            thead { tr { @for h in &self.head { th scope="col" { (h) } } } }
                            tbody {
                                @for r in &self.rows {
                                    tr { @for c in r { td.num[c.numeric] { (c.html) } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `path?…` with `key=value` set.
pub fn with_query(here: &str, key: &str, value: &str) -> String {
    let (path, q) = here.split_once('?').unwrap_or((here, ""));
    let mut parts: Vec<String> = q
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some(key))
        .map(str::to_string)
        .collect();
    parts.push(format!("{key}={}", encode_component(value)));
    format!("{path}?{}", parts.join("&"))
}

/// Answers the table asked for with `?csv=`, if any.
pub fn csv_of(ctx: &Ctx, name: &str, tables: &[&Table]) -> Option<Response> {
    let id = ctx.query("csv")?;
    let t = tables.iter().find(|t| t.id == id)?;
    Some(download(
        "text/csv; charset=utf-8",
        &format!("{name}-{}.csv", t.id),
        t.csv(),
    ))
}

/// The hidden field that carries the session's CSRF token.
pub fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf); }
}

/// A one-button form that posts to `action`.
pub fn button_form(ctx: &Ctx, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(ctx))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// A form that posts a reason (reject, dispute, suspend).
pub fn reason_form(ctx: &Ctx, action: &str, id: &str, label: &str, required: bool) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(ctx))
            label for=(id) { (ctx.t("Lý do", "Reason")) }
            input type="text" id=(id) name="reason" required[required] maxlength="500";
            button type="submit" class="secondary" { (label) }
        }
    }
}

struct NavItem {
    href: String,
    vi: &'static str,
    en: &'static str,
}

fn nav(ctx: &Ctx) -> Vec<NavItem> {
    let item = |href: &str, vi, en| NavItem {
        href: href.into(),
        vi,
        en,
    };
    let mut items = Vec::new();
    match ctx.caller.role {
        Role::PlatformAdmin | Role::Auditor | Role::OrgAdmin => {
            items.push(item("/organizations", "Cơ quan", "Agencies"));
            items.push(item("/requests", "Yêu cầu tài nguyên", "Capacity requests"));
            items.push(item("/usage", "Mức sử dụng", "Utilisation"));
            items.push(item("/links", "Liên kết dữ liệu", "Data links"));
            if ctx.caller.role != Role::OrgAdmin {
                items.push(item("/invoices", "Hóa đơn", "Invoices"));
                items.push(item("/summary", "Tổng hợp tháng", "Monthly summary"));
                items.push(item("/budgets", "Ngân sách", "Budgets"));
            }
        }
        Role::Finance => {
            items.push(item("/invoices", "Hóa đơn", "Invoices"));
            items.push(item("/summary", "Tổng hợp tháng", "Monthly summary"));
            items.push(item("/budgets", "Ngân sách", "Budgets"));
            items.push(item("/organizations", "Cơ quan", "Agencies"));
        }
        Role::TenantAdmin => {
            items.push(item("/", "Cơ quan của tôi", "My agency"));
            items.push(item("/requests", "Yêu cầu tài nguyên", "Capacity requests"));
            items.push(item("/links", "Liên kết dữ liệu", "Data links"));
            items.push(item("/invoices", "Hóa đơn", "Invoices"));
        }
        Role::Metering => {}
    }
    items
}

fn head(lang: Lang, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " — govcloud" }
            link rel="stylesheet" href="/console.css";
            @let _ = lang;
        }
    }
}

/// A page for someone signed in: the navigation of their role, who they are, the language
/// switch and signing out.
pub fn layout(ctx: &Ctx, title: &str, body: Markup) -> Markup {
    let path = ctx.here.split('?').next().unwrap_or("/");
    let other = match ctx.lang {
        Lang::Vi => ("en", "English"),
        Lang::En => ("vi", "Tiếng Việt"),
    };
    html! {
        (DOCTYPE)
        html lang=(ctx.lang.code()) {
            (head(ctx.lang, title))
            body {
                a.skip href="#main" { (ctx.t("Bỏ qua đến nội dung", "Skip to content")) }
                header.top {
                    a.brand href="/" { "govcloud" }
                    nav aria-label=(ctx.t("Chính", "Main")) {
                        ul {
                            @for i in nav(ctx) {
                                li {
                                    a href=(i.href) aria-current=[(path == i.href || (i.href != "/" && path.starts_with(&format!("{}/", i.href)))).then_some("page")] { (ctx.t(i.vi, i.en)) }
                                }
                            }
                        }
                    }
                    div.who {
                        span { (ctx.caller.name) " · " (role_name(ctx.lang, ctx.caller.role)) }
                        form.inline method="post" action="/language" {
                            (csrf(ctx))
                            input type="hidden" name="lang" value=(other.0);
                            input type="hidden" name="back" value=(ctx.here);
                            button.link type="submit" lang=(other.0) { (other.1) }
                        }
                        form.inline method="post" action="/sign-out" {
                            (csrf(ctx))
                            button.link type="submit" { (ctx.t("Đăng xuất", "Sign out")) }
                        }
                    }
                }
                main id="main" {
                    @if let Some(n) = &ctx.notice {
                        p class={ "notice " (if n.ok { "good" } else { "bad" }) } role=(if n.ok { "status" } else { "alert" }) { (n.text) }
                    }
                    (body)
                }
                footer { (ctx.t("Giờ Việt Nam (Asia/Ho_Chi_Minh). Số tiền bằng đồng, đã gồm VAT ở dòng tổng.", "Times in Vietnam (Asia/Ho_Chi_Minh). Amounts in đồng; totals include VAT.")) }
            }
        }
    }
}

/// A page for someone not signed in.
pub fn bare_page(lang: Lang, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(lang, title))
            body {
                header.top { span.brand { "govcloud" } }
                main id="main" { (body) }
            }
        }
    }
}

pub fn error_page(lang: Lang, status: StatusCode, text: &str) -> Response {
    let title = match status {
        StatusCode::NOT_FOUND => lang.t("Không tìm thấy", "Not found"),
        StatusCode::FORBIDDEN => lang.t("Không được phép", "Not allowed"),
        _ => lang.t("Không thực hiện được", "That did not work"),
    };
    let body = html! {
        h1 { (title) }
        p.notice.bad role="alert" { (text) }
        p { a href="/" { (lang.t("Về trang đầu", "Back to the start")) } }
    };
    (
        status,
        axum::response::Html(bare_page(lang, title, body).into_string()),
    )
        .into_response()
}

fn refusal_text(lang: Lang, r: &Refusal) -> String {
    let resource = match (lang, r.resource.to_string().as_str()) {
        (Lang::Vi, "cpu") => "CPU".to_string(),
        (Lang::Vi, "memory") => "bộ nhớ".to_string(),
        (Lang::Vi, "storage") => "lưu trữ".to_string(),
        (_, other) => other.to_string(),
    };
    match (lang, &r.limit) {
        (Lang::Vi, Limit::Allotment(org)) => format!(
            "Không đủ hạn mức: tổng {resource} của {org} sẽ lên {}, vượt hạn mức được cấp {} là {}.",
            r.requested, r.limit_amount, r.over_by
        ),
        (Lang::Vi, Limit::Cluster | Limit::ClusterAllotments) => format!(
            "Không đủ năng lực cụm máy chủ: tổng {resource} sẽ lên {}, vượt năng lực {} là {}.",
            r.requested, r.limit_amount, r.over_by
        ),
        (Lang::Vi, Limit::Reserved(org)) => format!(
            "Không thể giảm: hạn mức {resource} của {org} sẽ còn {}, thấp hơn {} các cơ quan đang giữ là {}.",
            r.requested, r.limit_amount, r.over_by
        ),
        (Lang::En, _) => format!("Refused: {r}."),
    }
}

/// A use case's refusal in the person's words.
pub fn app_error_text(lang: Lang, e: &AppError) -> String {
    match e {
        AppError::OverCapacity(r) => refusal_text(lang, r),
        AppError::Invalid(fields) => {
            let list: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect();
            format!(
                "{} {}",
                lang.t("Thông tin chưa hợp lệ —", "Invalid —"),
                list.join("; ")
            )
        }
        AppError::NotFound { .. } => lang
            .t(
                "Không tìm thấy, hoặc bạn không có quyền xem.",
                "Not found, or not yours to see.",
            )
            .into(),
        AppError::Forbidden(why) => format!(
            "{} ({why})",
            lang.t(
                "Vai trò của bạn không được làm việc này",
                "Your role may not do this"
            )
        ),
        AppError::Database(_) | AppError::Internal(_) => lang
            .t(
                "Lỗi hệ thống; đã ghi nhật ký. Hãy thử lại sau.",
                "An internal error; it was logged. Try again later.",
            )
            .into(),
        other => other.to_string(),
    }
}

/// A labelled `<select>` of months, the current one first.
pub fn month_picker(ctx: &Ctx, action: &str, current: &str, extra: &[(&str, &str)]) -> Markup {
    let months = recent_months(12);
    html! {
        form.filters method="get" action=(action) {
            @for (k, v) in extra { input type="hidden" name=(k) value=(v); }
            label for="month" { (ctx.t("Tháng", "Month")) }
            select id="month" name="month" {
                @for m in &months { option value=(m) selected[m == current] { (month(m)) } }
            }
            button type="submit" class="secondary" { (ctx.t("Xem", "Show")) }
        }
    }
}

/// This month and the `n - 1` before it, as `YYYY-MM`, in Asia/Ho_Chi_Minh.
pub fn recent_months(n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    let mut t = Utc::now();
    for _ in 0..n {
        let m = crate::domain::period::month_of(t);
        out.push(m);
        t = match crate::domain::period::month_range(&out[out.len() - 1]) {
            Ok((start, _)) => start - chrono::Duration::seconds(1),
            Err(_) => break,
        };
    }
    out
}

/// Raw markup (an SVG chart drawn here).
pub fn raw(s: String) -> Markup {
    PreEscaped(s)
}

/// Millicores as cores for CSV: `1.5`.
pub fn plain_cores(milli: i128) -> String {
    Decimal::from_i128_with_scale(milli, 3)
        .normalize()
        .to_string()
}

/// Bytes as GiB for CSV, to three decimals.
pub fn plain_gib(bytes: i128) -> String {
    let milli = (bytes * 1000 + 536_870_912).div_euclid(1_073_741_824);
    Decimal::from_i128_with_scale(milli, 3)
        .normalize()
        .to_string()
}
