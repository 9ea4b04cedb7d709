//! Exports of invoices for finance offices: CSV (UTF-8 with a byte-order mark, so Excel opens
//! Vietnamese text correctly) and a PDF statement in Vietnamese, with the fonts embedded that
//! carry its diacritics. Built from the same view the API answers, so their figures agree with
//! it to the đồng.

use std::io::Cursor;

use chrono::{DateTime, Duration, Timelike, Utc};
use chrono_tz::Asia::Ho_Chi_Minh;
use printpdf::{IndirectFontRef, Mm, PdfDocument, PdfDocumentReference, PdfLayerReference};
use rust_decimal::Decimal;

use crate::app::invoices::{InvoiceView, LineView};
use crate::domain::invoice::{InvoiceKind, InvoiceState};
use crate::domain::money::format_vi;

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error("writing CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("writing CSV: {0}")]
    CsvFlush(String),
    #[error("writing the PDF: {0}")]
    Pdf(#[from] printpdf::Error),
}

/// The byte-order mark Excel needs to read UTF-8.
const BOM: &[u8] = b"\xEF\xBB\xBF";

const REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const MONO: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");

fn local_date(t: DateTime<Utc>) -> String {
    t.with_timezone(&Ho_Chi_Minh).format("%d/%m/%Y").to_string()
}

/// A line's or period's bounds in Vietnam's time: the last day included, times only where a
/// bound is not midnight.
fn period_text(start: DateTime<Utc>, end: DateTime<Utc>, with_year: bool) -> String {
    let fmt = |t: DateTime<Utc>, last: bool| {
        let local = t.with_timezone(&Ho_Chi_Minh);
        let day = if with_year { "%d/%m/%Y" } else { "%d/%m" };
        if local.hour() == 0 && local.minute() == 0 && local.second() == 0 {
            let shown = if last {
                local - Duration::seconds(1)
            } else {
                local
            };
            shown.format(day).to_string()
        } else {
            local.format(&format!("{day} %H:%M")).to_string()
        }
    };
    format!("{}–{}", fmt(start, false), fmt(end, true))
}

fn state_vi(s: InvoiceState) -> &'static str {
    match s {
        InvoiceState::Draft => "Dự thảo (draft)",
        InvoiceState::Issued => "Đã phát hành (issued)",
        InvoiceState::Approved => "Đã duyệt (approved)",
        InvoiceState::Disputed => "Có khiếu nại (disputed)",
        InvoiceState::Paid => "Đã thanh toán (paid)",
    }
}

fn metric_vi(metric: &str) -> &'static str {
    match metric {
        "cpu.reserved" => "CPU đăng ký",
        "memory.reserved" => "Bộ nhớ đăng ký",
        "storage.reserved" => "Lưu trữ đăng ký",
        "loadbalancers.reserved" => "Cân bằng tải",
        "cpu.allocated" => "CPU sử dụng",
        "memory.allocated" => "Bộ nhớ sử dụng",
        "storage.bound" => "Lưu trữ sử dụng",
        "gpu.requested" => "GPU",
        _ => "",
    }
}

/// A priced unit, short enough for the statement's column.
fn unit_vi(unit: &str) -> &str {
    match unit {
        "core-hour" => "core·giờ",
        "GiB-hour" => "GiB·giờ",
        "GiB-month" => "GiB·tháng",
        "load-balancer-month" => "LB·tháng",
        "GPU-hour" => "GPU·giờ",
        other => other,
    }
}

fn title(v: &InvoiceView) -> &'static str {
    match v.kind {
        InvoiceKind::Invoice => "BẢNG KÊ CƯỚC DỊCH VỤ ĐIỆN TOÁN ĐÁM MÂY",
        InvoiceKind::CreditNote => "GIẤY GHI CÓ ĐIỀU CHỈNH CƯỚC DỊCH VỤ",
    }
}

fn vat_percent(rate: Decimal) -> String {
    format!("{}%", format_vi(rate * Decimal::from(100)))
}

fn finish_csv(w: csv::Writer<Vec<u8>>) -> Result<Vec<u8>, StatementError> {
    let body = w
        .into_inner()
        .map_err(|e| StatementError::CsvFlush(e.to_string()))?;
    let mut out = BOM.to_vec();
    out.extend(body);
    Ok(out)
}

/// One invoice as CSV: a heading block, the lines, then subtotal, VAT and total. Numbers are
/// plain (`1200000`, `0.08`) so spreadsheets read them as numbers.
pub fn invoice_csv(v: &InvoiceView) -> Result<Vec<u8>, StatementError> {
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    let number = v
        .number
        .clone()
        .unwrap_or_else(|| "(dự thảo / draft)".into());
    let heading: Vec<(&str, String)> = vec![
        ("Tài liệu / Document", title(v).to_string()),
        ("Số / Number", number),
        ("Trạng thái / State", v.state.to_string()),
        (
            "Tổ chức / Organization",
            v.organization_display_name.clone(),
        ),
        ("Cơ quan / Agency", v.tenant_display_name.clone()),
        ("Mã cơ quan / Tenant", v.tenant.clone()),
        ("Trung tâm chi phí / Cost centre", v.cost_center.clone()),
        ("Kỳ cước / Month", v.month.clone()),
        (
            "Từ - đến / Period (Asia/Ho_Chi_Minh)",
            period_text(v.period.start, v.period.end, true),
        ),
        ("Gói / Plan", v.plan.clone()),
        (
            "Ngày phát hành / Issued",
            v.issued_at.map(local_date).unwrap_or_default(),
        ),
        (
            "Điều chỉnh cho / Credits",
            v.credits.clone().unwrap_or_default(),
        ),
        ("Đơn vị tiền / Currency", v.currency.clone()),
    ];
    for (k, val) in heading {
        w.write_record([k, val.as_str()])?;
    }
    w.write_record([""])?;
    w.write_record([
        "Dòng / Line",
        "Namespace",
        "Hạng mục / Metric",
        "Loại / Class",
        "Cơ sở / Basis",
        "Từ / From",
        "Đến / To",
        "Số lượng gốc / Quantity",
        "Đơn vị gốc / Base unit",
        "Số lượng / Priced quantity",
        "Đơn vị / Unit",
        "Đơn giá (VND) / Unit price",
        "Thành tiền (VND) / Amount",
        "Phiên bản bảng giá / Rate card version",
        "Giây không đo / Unmetered seconds",
        "Điều chỉnh dòng / Corrects line",
    ])?;
    for l in &v.lines {
        w.write_record([
            l.line.to_string(),
            l.namespace.clone(),
            l.metric.clone(),
            l.class.clone(),
            l.basis.clone(),
            l.period.start.to_rfc3339(),
            l.period.end.to_rfc3339(),
            l.quantity.to_string(),
            l.base_unit.clone(),
            l.priced_quantity.to_string(),
            l.unit.clone(),
            l.unit_price.to_string(),
            l.amount.to_string(),
            l.rate_card_version
                .map(|n| n.to_string())
                .unwrap_or_default(),
            l.unmetered_seconds.to_string(),
            l.corrects_line.map(|n| n.to_string()).unwrap_or_default(),
        ])?;
    }
    w.write_record([""])?;
    w.write_record(["Cộng tiền dịch vụ / Subtotal", &v.subtotal.to_string()])?;
    w.write_record([
        &format!("Thuế GTGT / VAT ({})", vat_percent(v.vat_rate)),
        &v.vat.to_string(),
    ])?;
    w.write_record(["Tổng cộng / Total", &v.total.to_string()])?;
    finish_csv(w)
}

/// An organization's month as CSV: one row per invoice and credit note, then the totals.
pub fn summary_csv(
    organization: &str,
    month: &str,
    rows: &[InvoiceView],
) -> Result<Vec<u8>, StatementError> {
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    w.write_record([
        "Tháng / Month",
        "Tổ chức / Organization",
        "Số / Number",
        "Loại / Kind",
        "Trạng thái / State",
        "Mã cơ quan / Tenant",
        "Cơ quan / Agency",
        "Trung tâm chi phí / Cost centre",
        "Gói / Plan",
        "Cộng tiền dịch vụ (VND) / Subtotal",
        "Thuế suất / VAT rate",
        "Thuế GTGT (VND) / VAT",
        "Tổng cộng (VND) / Total",
        "Ngày phát hành / Issued",
        "Điều chỉnh cho / Credits",
    ])?;
    let (mut subtotal, mut vat, mut total) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for r in rows {
        subtotal += r.subtotal;
        vat += r.vat;
        total += r.total;
        w.write_record([
            month.to_string(),
            organization.to_string(),
            r.number.clone().unwrap_or_default(),
            r.kind.to_string(),
            r.state.to_string(),
            r.tenant.clone(),
            r.tenant_display_name.clone(),
            r.cost_center.clone(),
            r.plan.clone(),
            r.subtotal.to_string(),
            r.vat_rate.to_string(),
            r.vat.to_string(),
            r.total.to_string(),
            r.issued_at.map(local_date).unwrap_or_default(),
            r.credits.clone().unwrap_or_default(),
        ])?;
    }
    w.write_record([
        month.to_string(),
        organization.to_string(),
        String::new(),
        "Tổng / Total".into(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        subtotal.to_string(),
        String::new(),
        vat.to_string(),
        total.to_string(),
        String::new(),
        String::new(),
    ])?;
    finish_csv(w)
}

/// A4 in millimetres, and the statement's layout.
const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
const LEFT: f32 = 14.0;
const RIGHT: f32 = 196.0;
const BOTTOM: f32 = 20.0;
const ROW: f32 = 4.6;
/// The advance of DejaVu Sans Mono (1233/2048 em) in millimetres per point of size.
const MONO_ADVANCE: f32 = 1233.0 / 2048.0 * 25.4 / 72.0;

struct Writer {
    doc: PdfDocumentReference,
    layer: PdfLayerReference,
    regular: IndirectFontRef,
    mono: IndirectFontRef,
    y: f32,
    page: usize,
}

impl Writer {
    fn text(&self, s: &str, size: f32, x: f32) {
        self.layer
            .use_text(s, size, Mm(x), Mm(self.y), &self.regular);
    }

    /// Monospaced figures, right-aligned at `right`.
    fn figure(&self, s: &str, size: f32, right: f32) {
        let width = s.chars().count() as f32 * MONO_ADVANCE * size;
        self.layer
            .use_text(s, size, Mm(right - width), Mm(self.y), &self.mono);
    }

    fn down(&mut self, by: f32) {
        self.y -= by;
        if self.y < BOTTOM {
            let (page, layer) = self.doc.add_page(Mm(PAGE_W), Mm(PAGE_H), "statement");
            self.layer = self.doc.get_page(page).get_layer(layer);
            self.page += 1;
            self.y = PAGE_H - 18.0;
            self.text(
                &format!("(trang {} / page {})", self.page, self.page),
                7.0,
                LEFT,
            );
            self.y -= ROW * 1.5;
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn table_row(w: &Writer, l: &LineView) {
    let size = 7.0;
    w.figure(&l.line.to_string(), size, LEFT + 5.0);
    w.text(&truncate(&l.namespace, 24), size, LEFT + 7.0);
    let metric = match metric_vi(&l.metric) {
        "" => l.metric.clone(),
        vi if l.class.is_empty() => vi.to_string(),
        vi => format!("{vi} {}", l.class),
    };
    w.text(&truncate(&metric, 24), size, LEFT + 43.0);
    w.text(
        &period_text(l.period.start, l.period.end, false),
        size,
        LEFT + 78.0,
    );
    let priced = format_vi(l.priced_quantity.round_dp(3));
    w.figure(&priced, size, LEFT + 124.0);
    w.text(unit_vi(&l.unit), size, LEFT + 126.0);
    w.figure(&format_vi(l.unit_price), size, LEFT + 158.0);
    w.figure(&format_vi(l.amount), size, RIGHT);
}

/// The PDF statement of an invoice or credit note, in Vietnamese (with English labels).
pub fn invoice_pdf(v: &InvoiceView) -> Result<Vec<u8>, StatementError> {
    let name = v
        .number
        .clone()
        .unwrap_or_else(|| format!("{}-{}", v.tenant, v.month));
    let (doc, page, layer) = PdfDocument::new(&name, Mm(PAGE_W), Mm(PAGE_H), "statement");
    let regular = doc.add_external_font(Cursor::new(REGULAR))?;
    let mono = doc.add_external_font(Cursor::new(MONO))?;
    let layer = doc.get_page(page).get_layer(layer);
    let mut w = Writer {
        doc,
        layer,
        regular,
        mono,
        y: PAGE_H - 20.0,
        page: 1,
    };
    w.text(title(v), 14.0, LEFT);
    w.down(6.0);
    w.text(
        match v.kind {
            InvoiceKind::Invoice => "Cloud services statement",
            InvoiceKind::CreditNote => "Credit note",
        },
        9.0,
        LEFT,
    );
    w.down(9.0);
    let number = v
        .number
        .clone()
        .unwrap_or_else(|| "(dự thảo / draft)".into());
    let facts: Vec<(&str, String)> = vec![
        ("Số / Number", number),
        (
            "Ngày phát hành / Issue date",
            v.issued_at.map(local_date).unwrap_or_else(|| "—".into()),
        ),
        ("Trạng thái / State", state_vi(v.state).into()),
        (
            "Tổ chức / Organization",
            v.organization_display_name.clone(),
        ),
        (
            "Cơ quan / Agency",
            format!("{} ({})", v.tenant_display_name, v.tenant),
        ),
        ("Trung tâm chi phí / Cost centre", v.cost_center.clone()),
        (
            "Kỳ cước / Period",
            format!(
                "{} (giờ Việt Nam, Asia/Ho_Chi_Minh)",
                period_text(v.period.start, v.period.end, true)
            ),
        ),
        (
            "Gói / Plan",
            match v.plan.as_str() {
                "Reserved" => "Theo dung lượng đăng ký (Reserved)".into(),
                _ => "Theo mức sử dụng (Usage)".into(),
            },
        ),
    ];
    for (k, val) in facts {
        w.text(k, 9.0, LEFT);
        w.text(&truncate(&val, 80), 9.0, LEFT + 55.0);
        w.down(ROW + 0.6);
    }
    if let Some(c) = &v.credits {
        w.text("Điều chỉnh cho / Credits", 9.0, LEFT);
        w.text(c, 9.0, LEFT + 55.0);
        w.down(ROW + 0.6);
    }
    if let Some(r) = &v.reason {
        w.text("Lý do / Reason", 9.0, LEFT);
        w.text(&truncate(r, 80), 9.0, LEFT + 55.0);
        w.down(ROW + 0.6);
    }
    w.down(4.0);
    let head = 7.0;
    for (row, labels) in [
        [
            "#",
            "Namespace",
            "Hạng mục",
            "Thời gian",
            "Số lượng",
            "Đơn vị",
            "Đơn giá",
            "Thành tiền",
        ],
        [
            "",
            "",
            "Item",
            "Period",
            "Quantity",
            "Unit",
            "Unit price",
            "Amount (₫)",
        ],
    ]
    .iter()
    .enumerate()
    {
        let at = [
            2.0,
            7.0,
            43.0,
            78.0,
            110.0,
            126.0,
            146.0,
            RIGHT - LEFT - 15.0,
        ];
        for (label, x) in labels.iter().zip(at) {
            w.text(label, head, LEFT + x);
        }
        w.down(if row == 0 { ROW - 1.0 } else { ROW });
    }
    for l in &v.lines {
        table_row(&w, l);
        w.down(ROW);
    }
    if v.lines.is_empty() {
        w.text(
            "(không có dòng cước nào trong kỳ / no charges in the period)",
            8.0,
            LEFT + 7.0,
        );
        w.down(ROW);
    }
    w.down(3.0);
    let totals = [
        ("Cộng tiền dịch vụ / Subtotal", v.subtotal),
        ("VAT", v.vat),
        ("Tổng cộng thanh toán / Total", v.total),
    ];
    for (k, amount) in totals {
        let label = if k == "VAT" {
            format!("Thuế GTGT / VAT ({})", vat_percent(v.vat_rate))
        } else {
            k.to_string()
        };
        w.text(&label, 9.5, LEFT + 100.0);
        w.figure(&format!("{} ₫", format_vi(amount)), 9.5, RIGHT);
        w.down(ROW + 1.0);
    }
    w.down(4.0);
    w.text(
        &format!(
            "Đơn vị tiền: đồng Việt Nam (VND). Mỗi dòng được làm tròn một lần đến đồng; tổng cộng là tổng các dòng cộng thuế GTGT. Lập lúc {}.",
            v.computed_at.with_timezone(&Ho_Chi_Minh).format("%d/%m/%Y %H:%M")
        ),
        6.5,
        LEFT,
    );
    Ok(w.doc.save_to_bytes()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_as_days_in_vietnam() {
        let a: DateTime<Utc> = "2026-10-31T17:00:00Z".parse().unwrap_or_default();
        let b: DateTime<Utc> = "2026-11-30T17:00:00Z".parse().unwrap_or_default();
        assert_eq!(period_text(a, b, true), "01/11/2026–30/11/2026");
        let c: DateTime<Utc> = "2026-11-10T03:30:00Z".parse().unwrap_or_default();
        assert_eq!(period_text(a, c, false), "01/11–10/11 10:30");
    }
}
