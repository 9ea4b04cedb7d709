//! Rating, invoices, credit notes, exports and budgets through the API, on PostgreSQL: what a
//! finance officer does with a month, every transition and every role that must be refused,
//! and the database refusing what must never change.

mod support;

use axum::http::StatusCode;
use chrono::{DateTime, Datelike, Utc};
use govcloud_api::app::billing::{self, Close};
use govcloud_api::domain::money::format_vi;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::str::FromStr;
use support::{TestApi, get_raw, invoice_of, last_month, seed_billing};

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(
        v.as_str()
            .unwrap_or_else(|| panic!("not a decimal string: {v}")),
    )
    .unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn this_month() -> String {
    govcloud_api::domain::period::month_of(Utc::now())
}

/// The invoice's money adds up: the total is the lines' sum plus VAT at its rate, rounded once.
fn assert_adds_up(inv: &Value) {
    let lines = inv["lines"].as_array().cloned().unwrap_or_default();
    let sum: Decimal = lines.iter().map(|l| dec(&l["amount"])).sum();
    assert_eq!(dec(&inv["subtotal"]), sum, "{inv}");
    let vat = (dec(&inv["subtotal"]) * dec(&inv["vatRate"]))
        .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    assert_eq!(dec(&inv["vat"]), vat);
    assert_eq!(dec(&inv["total"]), dec(&inv["subtotal"]) + dec(&inv["vat"]));
    for l in &lines {
        assert_eq!(dec(&l["amount"]).fract(), Decimal::ZERO, "{l}");
    }
}

async fn pdf_text(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("invoice.pdf");
    std::fs::write(&path, pdf).unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .unwrap_or_else(|e| panic!("pdftotext (poppler-utils; scripts/test installs it): {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{e}"))
}

/// One pass of the billing loop, now, with the default grace period.
async fn close(api: &TestApi, auto_issue: bool) {
    billing::close(
        &api.state,
        Close {
            grace: chrono::Duration::days(2),
            auto_issue,
        },
        Utc::now(),
    )
    .await
    .unwrap_or_else(|e| panic!("billing pass: {e}"));
}

/// Posts, as the operator would, a window of this minute's past with `cpu_milli` requested in
/// the tenant's prod namespace.
async fn ingest_now(api: &TestApi, tenant: &str, cpu_milli: i64) {
    let now = Utc::now();
    let window = now - chrono::Duration::seconds(i64::from(chrono::Timelike::second(&now)) + 60);
    let window =
        window - chrono::Duration::nanoseconds(i64::from(chrono::Timelike::nanosecond(&window)));
    let (status, ingest) = api
        .post("/v1/usage/batches", "metering", json!({"windowSeconds": 60, "samples": [
            {"tenant": tenant, "namespace": format!("{tenant}-prod"), "metric": "cpu.requested", "windowStart": window, "quantity": cpu_milli * 60},
            {"tenant": tenant, "namespace": format!("{tenant}-prod"), "metric": "memory.requested", "windowStart": window, "quantity": 0}]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{ingest}");
    assert_eq!(ingest["accepted"], 2, "{ingest}");
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_finance_officer_reviews_approves_and_exports_last_months_invoice(db: PgPool) {
    let api = TestApi::new(db).await;
    seed_billing(&api).await;
    let month = last_month();
    let (status, list) = api
        .get(
            &format!("/v1/invoices?month={month}&kind=invoice"),
            "finance",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let mut tenants: Vec<&str> = items.iter().filter_map(|i| i["tenant"].as_str()).collect();
    tenants.sort_unstable();
    // the province's two agencies, not the ministry's
    assert_eq!(tenants, ["demo-sotc", "demo-stttt"]);
    assert!(items.iter().all(|i| i["state"] == "issued"), "{list}");

    let id = invoice_of(&api, "demo-stttt", &month, "finance").await;
    let (_, inv) = api.get(&format!("/v1/invoices/{id}"), "finance").await;
    assert_adds_up(&inv);
    assert_eq!(inv["plan"], "Reserved");
    assert_eq!(inv["costCenter"], "DEMO-STTTT");
    let year = Utc::now()
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .year();
    let number = inv["number"].as_str().unwrap_or_default().to_string();
    assert!(number.starts_with(&format!("DP-{year}-00000")), "{number}");
    // a Reserved month charges the quota: 4 cores of prod for the whole month at 200 đồng
    let cpu = inv["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["namespace"] == "demo-stttt-prod" && l["metric"] == "cpu.reserved")
        .cloned()
        .unwrap_or_else(|| panic!("no cpu line: {inv}"));
    let (start, end) = govcloud_api::domain::period::month_range(&month).unwrap_or_default();
    let hours = (end - start).num_hours();
    assert_eq!(dec(&cpu["pricedQuantity"]), Decimal::from(4 * hours));
    assert_eq!(dec(&cpu["amount"]), Decimal::from(4 * hours * 200));
    assert_eq!(cpu["unit"], "core-hour");

    let (status, approved) = api
        .post(&format!("/v1/invoices/{id}/approve"), "finance", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["approvedBy"], "demo-province-finance");

    let (status, content_type, csv) =
        get_raw(&api, &format!("/v1/invoices/{id}/csv"), "finance").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert!(csv.starts_with(b"\xEF\xBB\xBF"), "no byte-order mark");
    let text = String::from_utf8(csv[3..].to_vec()).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("Sở Thông tin và Truyền thông"), "{text}");
    assert!(
        text.contains(&format!(
            "Tổng cộng / Total,{}",
            inv["total"].as_str().unwrap_or_default()
        )),
        "{text}"
    );
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(text.as_bytes());
    let csv_sum: Decimal = reader
        .records()
        .filter_map(Result::ok)
        .filter(|r| r.len() > 12 && r.get(0).is_some_and(|c| c.parse::<i32>().is_ok()))
        .filter_map(|r| r.get(12).and_then(|a| Decimal::from_str(a).ok()))
        .sum();
    assert_eq!(csv_sum, dec(&inv["subtotal"]));

    let (status, content_type, pdf) =
        get_raw(&api, &format!("/v1/invoices/{id}/pdf"), "finance").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/pdf");
    assert!(pdf.starts_with(b"%PDF-"));
    let text = pdf_text(&pdf).await;
    for wanted in [
        "BẢNG KÊ CƯỚC DỊCH VỤ ĐIỆN TOÁN ĐÁM MÂY",
        "Sở Thông tin và Truyền thông",
        "Tỉnh Demo",
        "DEMO-STTTT",
        "Thuế GTGT",
        "Tổng cộng thanh toán",
        &number,
        &format!("{} ₫", format_vi(dec(&inv["total"]))),
        &format!("{} ₫", format_vi(dec(&inv["vat"]))),
    ] {
        assert!(text.contains(wanted), "the PDF lacks {wanted:?}:\n{text}");
    }

    let (status, paid) = api
        .post(
            &format!("/v1/invoices/{id}/pay"),
            "platform-admin",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["state"], "paid");

    let (status, _, summary) = get_raw(
        &api,
        &format!("/v1/invoice-summary?organization=demo-province&month={month}"),
        "finance",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(summary[3..].to_vec()).unwrap_or_default();
    let rows: Vec<Vec<String>> = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes())
        .records()
        .filter_map(Result::ok)
        .map(|r| r.iter().map(String::from).collect())
        .collect();
    let totals: Decimal = items.iter().map(|i| dec(&i["total"])).sum();
    let last = rows.last().cloned().unwrap_or_default();
    assert_eq!(last.get(3).map(String::as_str), Some("Tổng / Total"));
    assert_eq!(
        last.get(12).and_then(|t| Decimal::from_str(t).ok()),
        Some(totals)
    );
    assert_eq!(rows.len(), items.len() + 1, "{text}");

    let (_, audit) = api
        .get("/v1/audit-events?tenant=demo-stttt", "auditor")
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "invoice.issue",
        "invoice.approve",
        "invoice.pay",
        "budget.set",
        "budget.alert",
    ] {
        assert!(actions.contains(&a), "{a} not audited: {actions:?}");
    }
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn transitions_and_roles_that_must_be_refused_change_nothing(db: PgPool) {
    let api = TestApi::new(db.clone()).await;
    seed_billing(&api).await;
    let month = last_month();
    let id = invoice_of(&api, "demo-stttt", &month, "platform-admin").await;
    let draft = invoice_of(&api, "demo-stttt", &this_month(), "platform-admin").await;
    let foreign = invoice_of(&api, "demo-ministry-data", &month, "platform-admin").await;
    let (_, before) = api
        .get(&format!("/v1/invoices/{id}"), "platform-admin")
        .await;

    let cases: Vec<(String, &str, Value, u16)> = vec![
        // a draft is neither approved nor paid, and not issued before its month ends
        (
            format!("/v1/invoices/{draft}/approve"),
            "finance",
            json!({}),
            409,
        ),
        (
            format!("/v1/invoices/{draft}/pay"),
            "platform-admin",
            json!({}),
            409,
        ),
        (
            format!("/v1/invoices/{draft}/issue"),
            "platform-admin",
            json!({}),
            409,
        ),
        // roles that may not act
        (
            format!("/v1/invoices/{id}/approve"),
            "tenant-admin",
            json!({}),
            403,
        ),
        (
            format!("/v1/invoices/{id}/approve"),
            "org-admin",
            json!({}),
            403,
        ),
        (
            format!("/v1/invoices/{id}/approve"),
            "platform-admin",
            json!({}),
            403,
        ),
        (
            format!("/v1/invoices/{id}/approve"),
            "auditor",
            json!({}),
            403,
        ),
        (
            format!("/v1/invoices/{id}/approve"),
            "metering",
            json!({}),
            403,
        ),
        (
            format!("/v1/invoices/{id}/dispute"),
            "tenant-admin",
            json!({"reason": "no"}),
            403,
        ),
        (format!("/v1/invoices/{id}/pay"), "finance", json!({}), 403),
        (
            format!("/v1/invoices/{id}/issue"),
            "finance",
            json!({}),
            403,
        ),
        (
            format!("/v1/invoices/{id}/credit-notes"),
            "finance",
            json!({"reason": "x", "lines": [{"line": 1}]}),
            403,
        ),
        // an issued invoice is not issued again, nor paid before it is approved
        (
            format!("/v1/invoices/{id}/issue"),
            "platform-admin",
            json!({}),
            409,
        ),
        (
            format!("/v1/invoices/{id}/pay"),
            "platform-admin",
            json!({}),
            409,
        ),
        // another organization's invoice does not exist for this finance officer
        (
            format!("/v1/invoices/{foreign}/approve"),
            "finance",
            json!({}),
            404,
        ),
        (
            "/v1/invoices/not-an-id/approve".to_string(),
            "finance",
            json!({}),
            404,
        ),
        // a dispute needs a reason
        (
            format!("/v1/invoices/{id}/dispute"),
            "finance",
            json!({"reason": "  "}),
            422,
        ),
        (
            format!("/v1/invoices/{id}/dispute"),
            "finance",
            json!({}),
            422,
        ),
    ];
    for (path, role, body, want) in cases {
        let (status, answer) = api.post(&path, role, body).await;
        assert_eq!(status.as_u16(), want, "{role} POST {path}: {answer}");
    }
    for (path, role) in [
        (format!("/v1/invoices/{foreign}"), "finance"),
        (format!("/v1/invoices/{foreign}/pdf"), "tenant-admin"),
        (format!("/v1/invoices/{foreign}/csv"), "org-admin"),
        (
            format!(
                "/v1/invoices/{}",
                invoice_of(&api, "demo-sotc", &month, "finance").await
            ),
            "tenant-admin",
        ),
    ] {
        let (status, _, _) = get_raw(&api, &path, role).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{role} GET {path}");
    }
    let (_, after) = api
        .get(&format!("/v1/invoices/{id}"), "platform-admin")
        .await;
    assert_eq!(before, after, "a refused transition changed the invoice");

    // The database itself refuses any change to an issued invoice or its lines.
    for sql in [
        "update invoice set total = total + 1, subtotal = subtotal + 1 where invoice_id = $1",
        "update invoice set state = 'draft', number = null, issued_at = null where invoice_id = $1",
        "update invoice set state = 'paid' where invoice_id = $1",
        "update invoice set cost_center = 'OTHER' where invoice_id = $1",
        "delete from invoice where invoice_id = $1",
        "update invoice_line set amount = 0 where invoice_id = $1",
        "delete from invoice_line where invoice_id = $1",
        "insert into invoice_line (invoice_id, line, namespace, metric, basis, period_start, period_end, quantity, base_unit, priced_quantity, unit, unit_price, amount)
         select invoice_id, 99, 'x', 'cpu.reserved', 'reserved', period_start, period_end, 1, 'millicore-seconds', 1, 'core-hour', 1, 1 from invoice where invoice_id = $1",
    ] {
        let uuid: uuid::Uuid = id.parse().unwrap_or_default();
        let r = sqlx::query(sql).bind(uuid).execute(&db).await;
        assert!(r.is_err(), "the database let through: {sql}");
    }
    let (_, after) = api
        .get(&format!("/v1/invoices/{id}"), "platform-admin")
        .await;
    assert_eq!(before, after, "SQL changed an issued invoice");

    // disputed, it cannot be paid; approved after all, it can
    let (status, d) = api
        .post(
            &format!("/v1/invoices/{id}/dispute"),
            "finance",
            json!({"reason": "the staging quota was lowered on the 10th"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(
        d["disputeReason"],
        "the staging quota was lowered on the 10th"
    );
    let (status, _) = api
        .post(
            &format!("/v1/invoices/{id}/pay"),
            "platform-admin",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = api
        .post(
            &format!("/v1/invoices/{id}/dispute"),
            "finance",
            json!({"reason": "again"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = api
        .post(&format!("/v1/invoices/{id}/approve"), "finance", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, p) = api
        .post(
            &format!("/v1/invoices/{id}/pay"),
            "platform-admin",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, p["state"].clone()),
        (StatusCode::OK, json!("paid"))
    );
    let (status, _) = api
        .post(
            &format!("/v1/invoices/{id}/pay"),
            "platform-admin",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // what money it says never moved
    assert_eq!(
        (p["total"].clone(), p["lines"].clone()),
        (before["total"].clone(), before["lines"].clone())
    );
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn credit_notes_correct_an_issued_invoice_without_editing_it(db: PgPool) {
    let api = TestApi::new(db).await;
    seed_billing(&api).await;
    let month = last_month();
    let id = invoice_of(&api, "demo-stttt", &month, "platform-admin").await;
    let (_, inv) = api
        .get(&format!("/v1/invoices/{id}"), "platform-admin")
        .await;
    let line1 = dec(&inv["lines"][0]["amount"]);
    let path = format!("/v1/invoices/{id}/credit-notes");

    let (status, note) = api
        .post(&path, "platform-admin", json!({"reason": "staging was unusable on the 3rd", "lines": [{"line": 1, "amount": "100000"}]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    let year = Utc::now()
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .year();
    assert_eq!(note["kind"], "credit-note");
    assert_eq!(note["number"], format!("DP-CN-{year}-000001"));
    assert_eq!(note["credits"], inv["number"]);
    assert_eq!(note["state"], "issued");
    assert_eq!(dec(&note["subtotal"]), Decimal::from(-100_000));
    let vat = -(Decimal::from(100_000) * dec(&inv["vatRate"])).round();
    assert_eq!(dec(&note["vat"]), vat);
    assert_eq!(dec(&note["total"]), Decimal::from(-100_000) + vat);
    assert_eq!(note["lines"][0]["correctsLine"], 1);
    assert_adds_up(&note);

    let (_, again) = api.get(&format!("/v1/invoices/{id}"), "finance").await;
    assert_eq!(again["total"], inv["total"], "the invoice itself changed");
    assert_eq!(dec(&again["lines"][0]["credited"]), Decimal::from(-100_000));
    assert_eq!(again["creditNotes"][0]["number"], note["number"]);

    // the rest of the line, then nothing more
    let (status, rest) = api
        .post(
            &path,
            "platform-admin",
            json!({"reason": "the rest", "lines": [{"line": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rest}");
    assert_eq!(
        dec(&rest["lines"][0]["amount"]),
        -(line1 - Decimal::from(100_000))
    );
    assert_eq!(rest["number"], format!("DP-CN-{year}-000002"));
    for (body, field) in [
        (
            json!({"reason": "more", "lines": [{"line": 1, "amount": "1"}]}),
            "lines[0].amount",
        ),
        (
            json!({"reason": "none", "lines": [{"line": 99}]}),
            "lines[0].line",
        ),
        (
            json!({"reason": "half", "lines": [{"line": 2, "amount": "0.5"}]}),
            "lines[0].amount",
        ),
        (
            json!({"reason": "negative", "lines": [{"line": 2, "amount": "-5"}]}),
            "lines[0].amount",
        ),
        (
            json!({"reason": "twice", "lines": [{"line": 2}, {"line": 2}]}),
            "lines[1].line",
        ),
        (json!({"reason": "", "lines": [{"line": 2}]}), "reason"),
        (json!({"reason": "empty", "lines": []}), "lines"),
    ] {
        let (status, problem) = api.post(&path, "platform-admin", body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{body}: {problem}");
    }
    // a credit note moves no further, and a draft is recomputed, not credited
    let note_id = note["id"].as_str().unwrap_or_default();
    let (status, _) = api
        .post(
            &format!("/v1/invoices/{note_id}/approve"),
            "finance",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let draft = invoice_of(&api, "demo-stttt", &this_month(), "platform-admin").await;
    let (status, _) = api
        .post(
            &format!("/v1/invoices/{draft}/credit-notes"),
            "platform-admin",
            json!({"reason": "x", "lines": [{"line": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // the agency sees its credit notes, another agency does not
    let (status, _) = api
        .get(&format!("/v1/invoices/{note_id}"), "tenant-admin")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = api
        .get("/v1/invoices?kind=credit-note", "tenant-admin")
        .await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn rate_cards_change_only_by_later_versions(db: PgPool) {
    let api = TestApi::new(db.clone()).await;
    let (status, list) = api.get("/v1/rate-cards", "tenant-admin").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let card = list["items"][0].clone();
    let id = card["id"].as_str().unwrap_or_default().to_string();
    assert!(card["organization"].is_null());
    assert_eq!(card["versions"][0]["inForce"], true);

    let good = |org: Option<&str>, from: &str| {
        json!({"organization": org, "name": "Bảng giá riêng", "effectiveFrom": from,
               "prices": [{"resource": "cpu", "price": "300"}, {"resource": "memory", "price": "60"},
                          {"resource": "storage", "price": "3000"}, {"resource": "load-balancers", "price": "350000"}],
               "vat": {"rate": "0.08", "effectiveFrom": from}})
    };
    let (status, _) = api
        .post(
            "/v1/rate-cards",
            "org-admin",
            good(Some("demo-province"), "2026-01-01"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api
        .post("/v1/rate-cards", "platform-admin", good(None, "2026-01-01"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a second platform card");
    let (status, ministry) = api
        .post(
            "/v1/rate-cards",
            "platform-admin",
            good(Some("demo-ministry"), "2026-01-01"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ministry}");
    let ministry_id = ministry["id"].as_str().unwrap_or_default().to_string();
    // the ministry's card is not the province's to see
    let (status, _) = api
        .get(&format!("/v1/rate-cards/{ministry_id}"), "finance")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, theirs) = api.get("/v1/rate-cards", "finance").await;
    assert_eq!(theirs["items"].as_array().map(Vec::len), Some(1));

    // the ministry's agency is priced by its own card from now on
    close(&api, false).await;
    let draft = invoice_of(&api, "demo-ministry-data", &this_month(), "platform-admin").await;
    let (_, inv) = api
        .get(&format!("/v1/invoices/{draft}"), "platform-admin")
        .await;
    let cpu = inv["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["metric"] == "cpu.reserved")
        .cloned()
        .unwrap_or_default();
    assert_eq!(dec(&cpu["unitPrice"]), Decimal::from(300), "{inv}");

    // bad versions and prices change nothing
    let year = Utc::now().year();
    let (next, later, before_next) = (
        format!("{}-06-01", year + 1),
        format!("{}-01-01", year + 2),
        format!("{}-05-01", year + 1),
    );
    let versions = format!("/v1/rate-cards/{id}/versions");
    let prices = json!([{"resource": "cpu", "price": "210"}, {"resource": "memory", "price": "50"},
                        {"resource": "storage", "price": "2500"}, {"resource": "load-balancers", "price": "300000"}]);
    for (body, field) in [
        (
            json!({"effectiveFrom": "2026-01-01", "prices": prices}),
            "effectiveFrom",
        ),
        (
            json!({"effectiveFrom": "2030-01-01T10:30:00Z", "prices": prices}),
            "effectiveFrom",
        ),
        (
            json!({"effectiveFrom": "2099-01-01", "prices": prices}),
            "effectiveFrom",
        ),
        (
            json!({"effectiveFrom": next, "prices": [{"resource": "cpu", "price": "1"}]}),
            "prices",
        ),
        (
            json!({"effectiveFrom": next, "prices": [{"resource": "cpu", "price": "-1"}, {"resource": "memory", "price": "1e3"},
            {"resource": "storage", "price": "1"}, {"resource": "load-balancers", "price": "1"}]}),
            "prices[0].price",
        ),
        (
            json!({"effectiveFrom": next, "prices": [{"resource": "gpu", "price": "1"}, {"resource": "cpu", "price": "1"}, {"resource": "memory", "price": "1"},
            {"resource": "storage", "price": "1"}, {"resource": "load-balancers", "price": "1"}]}),
            "prices[0].class",
        ),
    ] {
        let (status, problem) = api.post(&versions, "platform-admin", body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert!(
            problem["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["field"] == field),
            "{body}: {problem}"
        );
    }
    let (status, v2) = api
        .post(
            &versions,
            "platform-admin",
            json!({"effectiveFrom": next, "prices": prices}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v2}");
    assert_eq!(v2["versions"][1]["version"], 2);
    assert_eq!(v2["versions"][1]["inForce"], false);
    let (status, _) = api
        .post(
            &versions,
            "platform-admin",
            json!({"effectiveFrom": before_next, "prices": prices}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a version before the latest");
    let (status, _) = api
        .post(
            &format!("/v1/rate-cards/{id}/vat-rates"),
            "platform-admin",
            json!({"rate": "0.1", "effectiveFrom": "2026-01-01"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = api
        .post(
            &format!("/v1/rate-cards/{id}/vat-rates"),
            "platform-admin",
            json!({"rate": "1.0", "effectiveFrom": later}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // what is in force never changes, not even through SQL; what is to come may be withdrawn
    let uuid: uuid::Uuid = id.parse().unwrap_or_default();
    for sql in [
        "update rate_card_price set price = 0 where rate_card_version_id in (select rate_card_version_id from rate_card_version where rate_card_id = $1 and version = 1)",
        "delete from rate_card_price where rate_card_version_id in (select rate_card_version_id from rate_card_version where rate_card_id = $1 and version = 1)",
        "update rate_card_version set effective_from = effective_from + interval '1 hour' where rate_card_id = $1 and version = 1",
        "delete from rate_card_version where rate_card_id = $1 and version = 1",
        "update rate_card_vat set rate = 0 where rate_card_id = $1 and effective_from < now()",
        "insert into rate_card_price (rate_card_version_id, resource, class, price) select rate_card_version_id, 'gpu', 'x/gpu', 1 from rate_card_version where rate_card_id = $1 and version = 1",
    ] {
        let r = sqlx::query(sql).bind(uuid).execute(&db).await;
        assert!(r.is_err(), "the database let through: {sql}");
    }
    let r = sqlx::query("update rate_card_price set price = 215 where resource = 'cpu' and rate_card_version_id in (select rate_card_version_id from rate_card_version where rate_card_id = $1 and version = 2)")
        .bind(uuid)
        .execute(&db)
        .await;
    assert!(
        r.is_ok(),
        "a version not yet in force may still be corrected: {r:?}"
    );
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn budgets_raise_alerts_each_once_in_scope(db: PgPool) {
    let api = TestApi::new(db).await;
    seed_billing(&api).await;
    // the seed set the agency's budget below this month's forecast
    let (status, b) = api
        .get("/v1/tenants/demo-stttt/budget", "tenant-admin")
        .await;
    assert_eq!(status, StatusCode::OK, "{b}");
    assert!(dec(&b["forecast"]) >= dec(&b["amount"]), "{b}");
    // the forecast, recomputed: this month's spend so far over the share of the month rated
    let draft = invoice_of(&api, "demo-stttt", &this_month(), "tenant-admin").await;
    let (_, inv) = api
        .get(&format!("/v1/invoices/{draft}"), "tenant-admin")
        .await;
    let (start, end) = govcloud_api::domain::period::month_range(&this_month()).unwrap_or_default();
    let rated: chrono::DateTime<Utc> = inv["ratedUntil"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_default();
    assert_eq!(dec(&b["spend"]), dec(&inv["total"]));
    let elapsed = (rated - start).num_seconds();
    if elapsed > 0 {
        let forecast = dec(&inv["total"]) * Decimal::from((end - start).num_seconds())
            / Decimal::from(elapsed);
        assert_eq!(
            dec(&b["forecast"]),
            forecast
                .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        );
    }
    let month = this_month();
    let (_, alerts) = api
        .get(&format!("/v1/alerts?month={month}"), "tenant-admin")
        .await;
    let mine: Vec<(String, i64)> = alerts["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["measure"].as_str().unwrap_or_default().to_string(),
                a["threshold"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert!(mine.contains(&("forecast".into(), 100)), "{alerts}");
    assert!(
        alerts["items"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|a| a["tenant"] == "demo-stttt")
    );

    for (role, tenant, body, want) in [
        (
            "tenant-admin",
            "demo-stttt",
            json!({"amount": "9000000"}),
            403,
        ),
        ("auditor", "demo-stttt", json!({"amount": "9000000"}), 403),
        (
            "finance",
            "demo-ministry-data",
            json!({"amount": "9000000"}),
            404,
        ),
        ("finance", "demo-sotc", json!({"amount": "0"}), 422),
        ("finance", "demo-sotc", json!({"amount": "1.5"}), 422),
        ("finance", "demo-sotc", json!({"amount": "-100"}), 422),
        ("finance", "demo-sotc", json!({"amount": "lots"}), 422),
        ("finance", "demo-sotc", json!({"amount": 5}), 422),
        (
            "finance",
            "demo-sotc",
            json!({"amount": "1", "extra": true}),
            422,
        ),
    ] {
        let (status, answer) = api
            .call(
                axum::http::Method::PUT,
                &format!("/v1/tenants/{tenant}/budget"),
                Some(role),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status.as_u16(), want, "{role} {tenant} {body}: {answer}");
    }
    let (_, sotc) = api.get("/v1/tenants/demo-sotc/budget", "finance").await;
    assert!(
        sotc["amount"].is_null(),
        "a refused budget was stored: {sotc}"
    );

    // a budget of one đồng and some use: the next passes raise both thresholds of both
    // measures, once
    let (status, set) = api
        .call(
            axum::http::Method::PUT,
            "/v1/tenants/demo-sotc/budget",
            Some("finance"),
            Some(json!({"amount": "1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    ingest_now(&api, "demo-sotc", 8_000).await;
    for _ in 0..2 {
        close(&api, false).await;
    }
    let (_, alerts) = api
        .get(
            &format!("/v1/alerts?tenant=demo-sotc&month={month}"),
            "org-admin",
        )
        .await;
    assert_eq!(
        alerts["items"].as_array().map(Vec::len),
        Some(4),
        "{alerts}"
    );
    // the tenant admin of demo-stttt does not see demo-sotc's
    let (_, theirs) = api.get("/v1/alerts?tenant=demo-sotc", "tenant-admin").await;
    assert_eq!(theirs["items"].as_array().map(Vec::len), Some(0));
    let metrics = api.state.metrics.render();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("govcloud_api_budget_alert_active{")
                && l.contains("tenant=\"demo-sotc\"")
                && l.contains("threshold=\"100\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn numbers_are_gap_free_per_organization_and_drafts_follow_the_ledger(db: PgPool) {
    let api = TestApi::new(db.clone()).await;
    seed_billing(&api).await;
    let month = last_month();
    let year = Utc::now()
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .year();
    let (_, all) = api
        .get(
            &format!("/v1/invoices?month={month}&kind=invoice"),
            "platform-admin",
        )
        .await;
    let mut numbers: Vec<String> = all["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["number"].as_str().map(String::from))
        .collect();
    numbers.sort();
    assert_eq!(
        numbers,
        [
            format!("DM-{year}-000001"),
            format!("DP-{year}-000001"),
            format!("DP-{year}-000002")
        ]
    );

    // a refused issue takes no number; the next draft issued takes the next one
    let draft = invoice_of(&api, "demo-sotc", &this_month(), "platform-admin").await;
    let (status, _) = api
        .post(
            &format!("/v1/invoices/{draft}/issue"),
            "platform-admin",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, t) = api.post("/v1/tenants", "platform-admin", json!({"name": "late-agency", "organization": "demo-province", "displayName": "Ban Quản lý (late)",
        "namespaces": [{"name": "prod", "quota": {"cpu": "1", "memory": "1Gi", "storage": "1Gi", "pods": 5}}], "billing": {"plan": "Reserved", "costCenter": "LATE"}})).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let (start, end) = govcloud_api::domain::period::month_range(&month).unwrap_or_default();
    sqlx::query("update quota_change set effective_at = $1 where tenant_id = (select tenant_id from tenant where name = 'late-agency')")
        .bind(start + chrono::Duration::days(10))
        .execute(&db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    close(&api, false).await;
    let late = invoice_of(&api, "late-agency", &month, "platform-admin").await;
    let (status, issued) = api
        .post(
            &format!("/v1/invoices/{late}/issue"),
            "platform-admin",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    assert_eq!(issued["number"], format!("DP-{year}-000003"));
    // one core from the 11th: the line starts there, and the month's price is prorated
    let cpu = issued["lines"][0].clone();
    assert_eq!(
        cpu["period"]["start"],
        json!(start + chrono::Duration::days(10))
    );
    let hours = (end - (start + chrono::Duration::days(10))).num_hours();
    assert_eq!(dec(&cpu["amount"]), Decimal::from(hours * 200));

    // this month's draft follows new usage; last month's issued invoice does not move
    let (_, before) = api
        .get(&format!("/v1/invoices/{draft}"), "platform-admin")
        .await;
    let (_, issued_before) = api
        .get(&format!("/v1/invoices/{late}"), "platform-admin")
        .await;
    ingest_now(&api, "demo-sotc", 64_000).await;
    close(&api, true).await;
    let (_, after) = api
        .get(&format!("/v1/invoices/{draft}"), "platform-admin")
        .await;
    assert!(
        dec(&after["subtotal"]) > dec(&before["subtotal"]),
        "{before}\n{after}"
    );
    assert_eq!(after["state"], "draft");
    // a Usage line's amount, recomputed from its own quantity: millicore-seconds at the usage
    // price per core-hour, rounded half-up once
    let cpu = after["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["metric"] == "cpu.allocated")
        .cloned()
        .unwrap_or_else(|| panic!("no cpu.allocated line: {after}"));
    assert_eq!(dec(&cpu["unitPrice"]), Decimal::from(260));
    let exact = dec(&cpu["quantity"]) * dec(&cpu["unitPrice"]) / Decimal::from(3_600_000);
    assert_eq!(
        dec(&cpu["amount"]),
        exact.round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
        "{cpu}"
    );
    assert_adds_up(&after);
    let (_, issued_after) = api
        .get(&format!("/v1/invoices/{late}"), "platform-admin")
        .await;
    assert_eq!(issued_before, issued_after);
}

/// Writes hours of a tenant's namespace into the ledger, rolled up, straight into the table.
async fn write_hours(db: &PgPool, tenant: &str, namespace: &str, hours: &[(i64, i64)]) -> i32 {
    let id: i32 = sqlx::query_scalar(
        "insert into metered_namespace (tenant_id, namespace, kube_name)
         select tenant_id, name, kube_name from tenant_namespace
         where tenant_id = (select tenant_id from tenant where name = $1) and name = $2
         on conflict (tenant_id, kube_name) do update set namespace = excluded.namespace
         returning metered_namespace_id",
    )
    .bind(tenant)
    .bind(namespace)
    .fetch_one(db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    for (hour, cpu) in hours {
        sqlx::query(
            "insert into usage_hour values ($1, $2::int, $3, 0, 0, 0, $3, 0, 0, 3600, 0, 3600)",
        )
        .bind(id)
        .bind(hour)
        .bind(cpu)
        .execute(db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    id
}

/// A month's hour partition made and demo-sotc's prod namespace given a use of cpu every
/// `step`th hour of it, `per_hour` more each time: the month's bounds, its first hour and the
/// hours written.
async fn sotc_month(
    db: &PgPool,
    month: &str,
    step: usize,
    per_hour: i64,
) -> (DateTime<Utc>, DateTime<Utc>, i64, Vec<(i64, i64)>) {
    use govcloud_api::domain::period::{hour_of, month_range};
    let (start, end) = month_range(month).unwrap_or_else(|e| panic!("{e}"));
    let (first, last) = (hour_of(start), hour_of(end));
    let mut tx = db.begin().await.unwrap_or_else(|e| panic!("{e}"));
    govcloud_api::db::usage::ensure_hour_partition(&mut tx, month, first, last)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let hours: Vec<(i64, i64)> = (first..last)
        .step_by(step)
        .map(|h| (h, (h - first + 1) * per_hour))
        .collect();
    write_hours(db, "demo-sotc", "prod", &hours).await;
    (start, end, first, hours)
}

/// The invoice `id` after a billing pass over `month` rated to `now`.
async fn refreshed(
    api: &TestApi,
    book: &billing::Pricebook,
    month: &str,
    now: DateTime<Utc>,
    id: &str,
) -> Value {
    billing::refresh_month(&api.state, book, month, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    api.get(&format!("/v1/invoices/{id}"), "platform-admin")
        .await
        .1
}

/// The billing loop's pass over `month` once its grace is over, at `at`: every draft that can
/// be rated issued.
async fn issue_month(
    api: &TestApi,
    book: &billing::Pricebook,
    month: &str,
    at: DateTime<Utc>,
) -> billing::Pass {
    let actor = govcloud_api::db::audit::Actor::system("billing");
    let issuing = billing::Issuing { actor: &actor, at };
    billing::write_month_of_all(&api.state, book, month, at, Some(issuing))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// An invoice's `cpu.allocated` lines.
fn cpu_lines(inv: &Value) -> Vec<Value> {
    inv["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["metric"] == "cpu.allocated")
        .cloned()
        .collect()
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_month_close_sums_the_ledger_per_version_and_issues_every_draft_at_once(db: PgPool) {
    let api = TestApi::new(db.clone()).await;
    // A month two years ahead, its prices raised from the 11th (local midnight).
    let year = Utc::now().year() + 2;
    let month = format!("{year}-03");
    // demo-sotc (Usage plan) uses cpu every seventh hour of the month, more each time
    let (start, end, first, hours) = sotc_month(&db, &month, 7, 3_600_000).await;
    let raise = start + chrono::Duration::days(10);
    let (_, cards) = api.get("/v1/rate-cards", "platform-admin").await;
    let card = cards["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, v) = api
        .post(&format!("/v1/rate-cards/{card}/versions"), "platform-admin", json!({
            "effectiveFrom": format!("{year}-03-11"),
            "prices": [{"resource": "cpu", "price": "300", "usagePrice": "390"}, {"resource": "memory", "price": "50"},
                       {"resource": "storage", "price": "2500"}, {"resource": "load-balancers", "price": "300000"}]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");

    // demo-ministry-data requested a GPU no card prices: its month cannot be rated
    let ministry = write_hours(&db, "demo-ministry-data", "prod", &[(first + 3, 1_000)]).await;
    sqlx::query("insert into usage_hour_gpu values ($1, $2::int, 'example.com/tpu', 3600)")
        .bind(ministry)
        .bind(first + 3)
        .execute(&db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let summed = |from: chrono::DateTime<Utc>, to: chrono::DateTime<Utc>| -> i64 {
        hours
            .iter()
            .filter(|(h, _)| {
                let at = govcloud_api::domain::period::hour_start(*h);
                at >= from && at < to
            })
            .map(|(_, q)| q)
            .sum()
    };
    let book = billing::Pricebook::load(&db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Rated half an hour into an hour of the 16th: the hour that began before is counted, the
    // next is not, and the lines split where the price changed.
    let now = start + chrono::Duration::days(15) + chrono::Duration::minutes(30);
    let pass = billing::refresh_month(&api.state, &book, &month, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pass.failed, 1, "{pass:?}");
    let draft = invoice_of(&api, "demo-sotc", &month, "platform-admin").await;
    let (_, inv) = api
        .get(&format!("/v1/invoices/{draft}"), "platform-admin")
        .await;
    let cpu = cpu_lines(&inv);
    assert_eq!(cpu.len(), 2, "{inv}");
    assert_eq!(
        dec(&cpu[0]["quantity"]),
        Decimal::from(summed(start, raise))
    );
    assert_eq!(dec(&cpu[0]["unitPrice"]), Decimal::from(260));
    assert_eq!(dec(&cpu[1]["quantity"]), Decimal::from(summed(raise, now)));
    assert_eq!(dec(&cpu[1]["unitPrice"]), Decimal::from(390));
    for l in &cpu {
        let exact = dec(&l["quantity"]) * dec(&l["unitPrice"]) / Decimal::from(3_600_000);
        assert_eq!(
            dec(&l["amount"]),
            exact.round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        );
    }
    assert_adds_up(&inv);

    // A quota change on the 6th splits demo-stttt's reserved lines; taken back, its draft has
    // as few lines as before and none is left over (the lines add up to the subtotal).
    let lines_of = |inv: &Value| inv["lines"].as_array().map_or(0, Vec::len);
    let stttt = invoice_of(&api, "demo-stttt", &month, "platform-admin").await;
    let (_, before) = api
        .get(&format!("/v1/invoices/{stttt}"), "platform-admin")
        .await;
    let change: i64 = sqlx::query_scalar(
        "insert into quota_change (tenant_id, namespace, effective_at, changed_by, to_cpu_milli,
             to_memory_bytes, to_storage_bytes, to_pods, to_load_balancers)
         select tenant_id, 'prod', $1, 'test', 8000, 17179869184, 107374182400, 50, 1
         from tenant where name = 'demo-stttt' returning quota_change_id",
    )
    .bind(start + chrono::Duration::days(5))
    .fetch_one(&db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let split = refreshed(&api, &book, &month, now, &stttt).await;
    assert_eq!(lines_of(&split), lines_of(&before) + 1, "{split}");
    assert_adds_up(&split);
    sqlx::query("delete from quota_change where quota_change_id = $1")
        .bind(change)
        .execute(&db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let after = refreshed(&api, &book, &month, now, &stttt).await;
    assert_eq!(after["lines"], before["lines"]);
    assert_adds_up(&after);

    // After the grace period every month that can be rated is rated to its end and issued in
    // the same pass, numbered gap-free per organization in name order and audited once each;
    // the one that cannot keeps no invoice and takes no number.
    let later = end + chrono::Duration::days(3);
    let pass = issue_month(&api, &book, &month, later).await;
    assert_eq!((pass.issued, pass.failed), (2, 1), "{pass:?}");
    let numbering = govcloud_api::domain::invoice::numbering_year(later);
    let mut numbers = Vec::new();
    for tenant in ["demo-sotc", "demo-stttt"] {
        let id = invoice_of(&api, tenant, &month, "platform-admin").await;
        let (_, inv) = api
            .get(&format!("/v1/invoices/{id}"), "platform-admin")
            .await;
        assert_eq!(inv["state"], "issued", "{inv}");
        assert_adds_up(&inv);
        numbers.push(inv["number"].as_str().unwrap_or_default().to_string());
        if tenant == "demo-sotc" {
            let cpu = cpu_lines(&inv);
            assert_eq!(dec(&cpu[1]["quantity"]), Decimal::from(summed(raise, end)));
        }
    }
    assert_eq!(
        numbers,
        [
            format!("DP-{numbering}-000001"),
            format!("DP-{numbering}-000002")
        ]
    );
    let audited: Vec<String> = sqlx::query_scalar(
        "select object_id from audit_event where action = 'invoice.issue' order by audit_event_id",
    )
    .fetch_all(&db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(audited, numbers);
    let (_, ministry) = api
        .get(
            &format!("/v1/invoices?tenant=demo-ministry-data&month={month}"),
            "platform-admin",
        )
        .await;
    assert_eq!(ministry["items"], json!([]), "{ministry}");
    let taken: i64 = sqlx::query_scalar(
        "select count(*) from invoice_number n join organization o using (organization_id)
         where o.name = 'demo-ministry'",
    )
    .fetch_one(&db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(taken, 0);

    // Another pass (another replica's, say) issues nothing twice.
    let pass = issue_month(&api, &book, &month, later).await;
    assert_eq!((pass.issued, pass.drafts), (0, 0), "{pass:?}");
    let count: i64 =
        sqlx::query_scalar("select count(*) from audit_event where action = 'invoice.issue'")
            .fetch_one(&db)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count, 2);
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_month_in_one_price_is_summed_whole_up_to_where_it_is_rated_and_written_only_when_it_changes(
    db: PgPool,
) {
    use govcloud_api::domain::period::hour_start;
    let api = TestApi::new(db.clone()).await;
    let month = format!("{}-05", Utc::now().year() + 2);
    // the whole month is in the ledger (written ahead, as a late batch or a clock would)
    let (start, end, first, hours) = sotc_month(&db, &month, 5, 1_800_000).await;
    let book = billing::Pricebook::load(&db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    for now in [
        start + chrono::Duration::days(20) + chrono::Duration::minutes(10),
        start + chrono::Duration::days(3),
        end + chrono::Duration::days(1),
    ] {
        billing::refresh_month(&api.state, &book, &month, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let draft = invoice_of(&api, "demo-sotc", &month, "platform-admin").await;
        let (_, inv) = api
            .get(&format!("/v1/invoices/{draft}"), "platform-admin")
            .await;
        let cpu = cpu_lines(&inv);
        assert_eq!(cpu.len(), 1, "{inv}");
        // every hour that began before `now`, none after
        let expected: i64 = hours
            .iter()
            .filter(|(h, _)| hour_start(*h) < now)
            .map(|(_, q)| q)
            .sum();
        assert_eq!(dec(&cpu[0]["quantity"]), Decimal::from(expected), "{now}");
        assert_eq!(dec(&cpu[0]["unitPrice"]), Decimal::from(260));
        assert_adds_up(&inv);
    }

    // Rated to its end again (its grace period's passes), the draft is left as it is: not a
    // row of it written again. A late hour changes it, and it is written.
    let draft = invoice_of(&api, "demo-sotc", &month, "platform-admin").await;
    let versions = || async {
        let rows: Vec<String> = sqlx::query_scalar(
            "select xmin::text from invoice where invoice_id = $1::text::uuid
             union all (select xmin::text from invoice_line where invoice_id = $1::text::uuid order by line)",
        )
        .bind(&draft)
        .fetch_all(&db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        rows
    };
    let later = end + chrono::Duration::days(1);
    let (_, before) = api
        .get(&format!("/v1/invoices/{draft}"), "platform-admin")
        .await;
    let written = versions().await;
    billing::refresh_month(&api.state, &book, &month, later)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(versions().await, written);
    let (_, again) = api
        .get(&format!("/v1/invoices/{draft}"), "platform-admin")
        .await;
    assert_eq!(again, before);
    write_hours(&db, "demo-sotc", "prod", &[(first + 1, 7_000)]).await;
    billing::refresh_month(&api.state, &book, &month, later)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(versions().await, written);
    let (_, late) = api
        .get(&format!("/v1/invoices/{draft}"), "platform-admin")
        .await;
    let quantity = |inv: &Value| cpu_lines(inv).first().map(|l| dec(&l["quantity"]));
    assert_eq!(
        quantity(&late),
        quantity(&before).map(|q| q + Decimal::from(7_000))
    );
    assert!(late["computedAt"] != before["computedAt"], "{late}");

    // Issued from a draft left as it was, the invoice is that draft.
    let pass = issue_month(&api, &book, &month, later).await;
    assert!(pass.issued >= 1, "{pass:?}");
    let (_, issued) = api
        .get(&format!("/v1/invoices/{draft}"), "platform-admin")
        .await;
    assert_eq!(issued["state"], "issued");
    assert_eq!(issued["lines"], late["lines"]);
    assert_eq!(issued["total"], late["total"]);
}

/// `count` agencies of a new organization `org` on the Reserved plan, each with one namespace
/// whose quota was set before `month`, straight into the tables.
async fn many_agencies(db: &PgPool, org: &str, count: usize) {
    sqlx::raw_sql(&format!(
        "insert into organization (name, display_name, allotment_cpu_milli, allotment_memory_bytes, allotment_storage_bytes)
           values ('{org}', '{org}', 0, 0, 0);
         insert into tenant (name, organization_id, display_name, limits, pod_security, network, billing)
           select '{org}-' || i, (select organization_id from organization where name = '{org}'), '{org} ' || i,
                  '{{}}', 'restricted', '{{}}', '{{\"plan\": \"Reserved\", \"costCenter\": \"B\"}}'::jsonb
           from generate_series(1, {count}) i;
         insert into tenant_namespace (tenant_id, name, kube_name, cpu_milli, memory_bytes, storage_bytes, pods, load_balancers)
           select t.tenant_id, 'prod', t.name || '-prod', 2000, 4294967296, 10737418240, 20, 0
           from tenant t join organization o using (organization_id) where o.name = '{org}';
         insert into quota_change (tenant_id, namespace, effective_at, changed_by, to_cpu_milli, to_memory_bytes,
                                   to_storage_bytes, to_pods, to_load_balancers)
           select n.tenant_id, n.name, '2020-01-01T00:00:00Z', 'test', n.cpu_milli, n.memory_bytes,
                  n.storage_bytes, n.pods, n.load_balancers
           from tenant_namespace n join tenant t using (tenant_id) join organization o using (organization_id)
           where o.name = '{org}';"
    ))
    .execute(db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn two_closes_at_once_of_hundreds_of_agencies_number_each_invoice_once_without_gaps(
    db: PgPool,
) {
    // Enough agencies that each pass writes them in chunks at once, one chunk holding the
    // end of one organization and the start of the other; two passes (two replicas, say) at
    // the same moment.
    let api = TestApi::new(db.clone()).await;
    many_agencies(&db, "tinh-a", 260).await;
    many_agencies(&db, "tinh-b", 140).await;
    let month = format!("{}-05", Utc::now().year() + 2);
    let (_, end) =
        govcloud_api::domain::period::month_range(&month).unwrap_or_else(|e| panic!("{e}"));
    let book = billing::Pricebook::load(&db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let later = end + chrono::Duration::days(3);
    let (one, other) = tokio::join!(
        issue_month(&api, &book, &month, later),
        issue_month(&api, &book, &month, later)
    );
    let issued: i64 = sqlx::query_scalar(
        "select count(*) from invoice where month = $1 and kind = 'invoice' and state = 'issued'",
    )
    .bind(&month)
    .fetch_one(&db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        i64::try_from(one.issued + other.issued).unwrap_or_default(),
        issued,
        "each invoice is issued by one pass: {one:?} {other:?}"
    );
    let numbering = govcloud_api::domain::invoice::numbering_year(later);
    for (org, count) in [("tinh-a", 260), ("tinh-b", 140)] {
        let prefix: String =
            sqlx::query_scalar("select invoice_prefix from organization where name = $1")
                .bind(org)
                .fetch_one(&db)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        let numbers: Vec<String> = sqlx::query_scalar(
            "select i.number from invoice i join organization o using (organization_id)
             where o.name = $1 and i.month = $2 order by i.number",
        )
        .bind(org)
        .bind(&month)
        .fetch_all(&db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let expected: Vec<String> = (1..=count)
            .map(|n| format!("{prefix}-{numbering}-{n:06}"))
            .collect();
        assert_eq!(
            numbers, expected,
            "{org}'s invoices are numbered 1 to {count}"
        );
        let audited: Vec<String> = sqlx::query_scalar(
            "select a.object_id from audit_event a join organization o using (organization_id)
             where o.name = $1 and a.action = 'invoice.issue' order by a.object_id",
        )
        .bind(org)
        .fetch_all(&db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(audited, expected, "{org}'s issues are audited once each");
        let taken: i32 = sqlx::query_scalar(
            "select n.last from invoice_number n join organization o using (organization_id)
             where o.name = $1 and n.kind = 'invoice'",
        )
        .bind(org)
        .fetch_one(&db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(taken, count, "{org} took no number it did not use");
    }
}
