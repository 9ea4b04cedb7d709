//! Invoices as people see and move them: listed and shown in scope (tenant admins their own
//! agency's, an organization's finance and admins its agencies'), issued and marked paid by
//! platform admins, approved or disputed by the organization's finance, corrected only by
//! credit notes. Every transition is audited in its transaction.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::app::billing::{self, Pricebook};
use crate::app::{AppError, AppResult, organizations};
use crate::db::audit;
use crate::db::invoices::{self as store, Content, InvoiceRow, LineRow, ListFilter, NewLine};
use crate::domain::field::{FieldError, REASON, check_text};
use crate::domain::invoice::{
    Creditable, InvoiceKind, InvoiceState, Transition, credit, number, numbering_year,
};
use crate::domain::period::month_range;
use crate::domain::principal::{Caller, Role, Scope};
use crate::domain::rating;

/// A half-open period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineView {
    pub line: i32,
    /// The namespace's name in Kubernetes.
    pub namespace: String,
    /// `cpu.reserved`, `memory.reserved`, `storage.reserved`, `loadbalancers.reserved`,
    /// `cpu.allocated`, `memory.allocated` (max of requested and used per window),
    /// `storage.bound`, `gpu.requested`.
    pub metric: String,
    /// The GPU model, for GPUs.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub class: String,
    /// `reserved` or `usage`.
    pub basis: String,
    pub period: Period,
    /// In the base unit, exactly.
    #[schema(value_type = String, example = "5184000000")]
    pub quantity: Decimal,
    #[schema(example = "millicore-seconds")]
    pub base_unit: String,
    /// In the priced unit, to 6 decimal places (the amount is computed from the exact quantity).
    #[schema(value_type = String, example = "1440")]
    pub priced_quantity: Decimal,
    #[schema(example = "core-hour")]
    pub unit: String,
    /// Đồng per priced unit.
    #[schema(value_type = String, example = "250")]
    pub unit_price: Decimal,
    /// Whole đồng, rounded half-up once.
    #[schema(value_type = String, example = "360000")]
    pub amount: Decimal,
    /// The rate card version that priced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_card_version: Option<i32>,
    /// Seconds of the line's period in which what it charges was not metered.
    pub unmetered_seconds: i64,
    /// A credit note's line: the credited invoice's line it corrects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrects_line: Option<i32>,
    /// An invoice's line: what credit notes have taken back from it (zero or negative).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub credited: Option<Decimal>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreditNoteRef {
    pub id: Uuid,
    pub number: Option<String>,
    #[schema(value_type = String)]
    pub total: Decimal,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceView {
    pub id: Uuid,
    pub kind: InvoiceKind,
    /// Absent on a draft.
    #[schema(example = "NA-2026-000042")]
    pub number: Option<String>,
    pub state: InvoiceState,
    pub organization: String,
    pub organization_display_name: String,
    pub tenant: String,
    pub tenant_display_name: String,
    pub cost_center: String,
    /// `Reserved` or `Usage`.
    pub plan: String,
    #[schema(example = "2026-11")]
    pub month: String,
    /// The calendar month in Asia/Ho_Chi_Minh.
    pub period: Period,
    /// How far into the period it is rated (the period's end once the month is over).
    pub rated_until: DateTime<Utc>,
    #[schema(example = "VND")]
    pub currency: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LineView>,
    #[schema(value_type = String, example = "1200000")]
    pub subtotal: Decimal,
    #[schema(value_type = String, example = "0.08")]
    pub vat_rate: Decimal,
    #[schema(value_type = String, example = "96000")]
    pub vat: Decimal,
    #[schema(value_type = String, example = "1296000")]
    pub total: Decimal,
    pub unmetered_seconds: i64,
    /// A credit note: the number of the invoice it corrects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits_invoice_id: Option<Uuid>,
    /// A credit note's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub credit_notes: Vec<CreditNoteRef>,
    /// When its content was last computed to what it holds (a pass that computes a draft the
    /// same again leaves it as it is).
    pub computed_at: DateTime<Utc>,
    pub issued_at: Option<DateTime<Utc>>,
    pub issued_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub approved_by: Option<String>,
    pub disputed_at: Option<DateTime<Utc>>,
    pub disputed_by: Option<String>,
    pub dispute_reason: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    pub paid_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn line_view(l: LineRow, credited: Option<Decimal>) -> LineView {
    LineView {
        line: l.line,
        namespace: l.namespace,
        metric: l.metric,
        class: l.class,
        basis: l.basis,
        period: Period {
            start: l.period_start,
            end: l.period_end,
        },
        quantity: l.quantity,
        base_unit: l.base_unit,
        priced_quantity: l.priced_quantity.normalize(),
        unit: l.unit,
        unit_price: l.unit_price.normalize(),
        amount: l.amount,
        rate_card_version: l.version,
        unmetered_seconds: l.unmetered_seconds,
        corrects_line: l.corrects_line,
        credited,
    }
}

fn parse_row(r: &InvoiceRow) -> AppResult<(InvoiceKind, InvoiceState)> {
    let kind = r.kind.parse().map_err(AppError::Internal)?;
    let state = r.state.parse().map_err(AppError::Internal)?;
    Ok((kind, state))
}

fn summary(r: InvoiceRow) -> AppResult<InvoiceView> {
    let (kind, state) = parse_row(&r)?;
    Ok(InvoiceView {
        id: r.invoice_id,
        kind,
        number: r.number,
        state,
        organization: r.organization,
        organization_display_name: r.organization_display_name,
        tenant: r.tenant,
        tenant_display_name: r.tenant_display_name,
        cost_center: r.cost_center,
        plan: r.plan,
        month: r.month,
        period: Period {
            start: r.period_start,
            end: r.period_end,
        },
        rated_until: r.rated_until,
        currency: r.currency,
        lines: Vec::new(),
        subtotal: r.subtotal,
        vat_rate: r.vat_rate.normalize(),
        vat: r.vat,
        total: r.total,
        unmetered_seconds: r.unmetered_seconds,
        credits: r.credits_number,
        credits_invoice_id: r.credits_invoice_id,
        reason: r.reason,
        credit_notes: Vec::new(),
        computed_at: r.computed_at,
        issued_at: r.issued_at,
        issued_by: r.issued_by,
        approved_at: r.approved_at,
        approved_by: r.approved_by,
        disputed_at: r.disputed_at,
        disputed_by: r.disputed_by,
        dispute_reason: r.dispute_reason,
        paid_at: r.paid_at,
        paid_by: r.paid_by,
        created_at: r.created_at,
    })
}

/// What a page of invoices is narrowed to.
pub struct Filter<'a> {
    pub organization: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub month: Option<&'a str>,
    pub state: Option<InvoiceState>,
    pub kind: Option<InvoiceKind>,
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

fn may_read(caller: &Caller) -> AppResult<()> {
    caller.require(
        &[
            Role::PlatformAdmin,
            Role::Auditor,
            Role::OrgAdmin,
            Role::Finance,
            Role::TenantAdmin,
        ],
        "read invoices",
    )?;
    Ok(())
}

/// A page of the invoices the caller may see, newest first (no lines).
pub async fn list(state: &AppState, caller: &Caller, f: Filter<'_>) -> AppResult<Vec<InvoiceView>> {
    may_read(caller)?;
    if let Some(m) = f.month {
        month_range(m).map_err(|e| AppError::invalid("month", e))?;
    }
    let rows = store::list(
        &state.db,
        ListFilter {
            scope_organization: caller.organization_filter(),
            scope_tenant: caller.tenant_filter(),
            organization: f.organization,
            tenant: f.tenant,
            month: f.month,
            state: f.state.map(InvoiceState::as_str),
            kind: f.kind.map(InvoiceKind::as_str),
            after: f.after,
            limit: f.limit,
        },
    )
    .await?;
    rows.into_iter().map(summary).collect()
}

async fn visible(state: &AppState, caller: &Caller, id: Uuid) -> AppResult<InvoiceRow> {
    may_read(caller)?;
    store::by_id(&state.db, id)
        .await?
        .filter(|i| caller.sees(Scope::tenant(i.organization_id, i.tenant_id)))
        .ok_or_else(|| AppError::not_found("invoice", id.to_string()))
}

/// An invoice with its lines (and what was credited on each), or a credit note with its.
pub async fn show(state: &AppState, caller: &Caller, id: Uuid) -> AppResult<InvoiceView> {
    let row = visible(state, caller, id).await?;
    full(state, row).await
}

async fn full(state: &AppState, row: InvoiceRow) -> AppResult<InvoiceView> {
    let id = row.invoice_id;
    let is_invoice = row.kind == InvoiceKind::Invoice.as_str();
    let credited: HashMap<i32, Decimal> = if is_invoice {
        store::credited(&state.db, id)
            .await?
            .into_iter()
            .map(|(line, amount, _)| (line, amount))
            .collect()
    } else {
        HashMap::new()
    };
    let lines = store::lines(&state.db, id).await?;
    let notes = if is_invoice {
        store::credit_notes(&state.db, id).await?
    } else {
        Vec::new()
    };
    let mut v = summary(row)?;
    v.lines = lines
        .into_iter()
        .map(|l| {
            let c = is_invoice.then(|| credited.get(&l.line).copied().unwrap_or_default());
            line_view(l, c)
        })
        .collect();
    v.credit_notes = notes
        .into_iter()
        .map(|n| CreditNoteRef {
            id: n.invoice_id,
            number: n.number,
            total: n.total,
        })
        .collect();
    Ok(v)
}

async fn transition(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    t: Transition,
    reason: Option<&str>,
) -> AppResult<InvoiceView> {
    let row = visible(state, caller, id).await?;
    let allowed: &[Role] = match t {
        Transition::Issue | Transition::Pay => &[Role::PlatformAdmin],
        Transition::Approve | Transition::Dispute => &[Role::Finance],
    };
    let action = match t {
        Transition::Issue => "issue invoices",
        Transition::Pay => "mark invoices paid",
        Transition::Approve => "approve invoices (the organization's finance does)",
        Transition::Dispute => "dispute invoices (the organization's finance does)",
    };
    caller.require(allowed, action)?;
    if let Some(r) = reason {
        let mut errors = Vec::new();
        check_text("reason", r, REASON, &mut errors);
        AppError::check(errors)?;
    }
    let (kind, current) = parse_row(&row)?;
    current.after(kind, t).map_err(AppError::Conflict)?;
    if t == Transition::Issue {
        let book = Pricebook::load(&state.db).await?;
        billing::issue_draft(state, &book, id, &caller.into(), Utc::now()).await?;
        state.metrics.invoices_issued.inc();
        return show(state, caller, id).await;
    }
    let mut tx = state.db.begin().await?;
    let row = store::lock(&mut tx, id)
        .await?
        .ok_or_else(|| AppError::not_found("invoice", id.to_string()))?;
    let (kind, current) = parse_row(&row)?;
    let next = current.after(kind, t).map_err(AppError::Conflict)?;
    store::set_state(&mut tx, id, next.as_str(), &caller.name, reason).await?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: match t {
                Transition::Approve => "invoice.approve",
                Transition::Dispute => "invoice.dispute",
                _ => "invoice.pay",
            },
            object_kind: "invoice",
            object_id: row.number.clone().unwrap_or_else(|| id.to_string()),
            organization_id: Some(row.organization_id),
            tenant_id: Some(row.tenant_id),
            detail: json!({"invoice": id, "from": current, "to": next, "reason": reason, "total": row.total}),
        },
    )
    .await?;
    tx.commit().await?;
    show(state, caller, id).await
}

pub async fn issue(state: &AppState, caller: &Caller, id: Uuid) -> AppResult<InvoiceView> {
    transition(state, caller, id, Transition::Issue, None).await
}

pub async fn approve(state: &AppState, caller: &Caller, id: Uuid) -> AppResult<InvoiceView> {
    transition(state, caller, id, Transition::Approve, None).await
}

pub async fn dispute(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    reason: &str,
) -> AppResult<InvoiceView> {
    transition(state, caller, id, Transition::Dispute, Some(reason)).await
}

pub async fn pay(state: &AppState, caller: &Caller, id: Uuid) -> AppResult<InvoiceView> {
    transition(state, caller, id, Transition::Pay, None).await
}

/// A line of a credit note as asked for.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreditLineInput {
    /// The invoice's line to correct.
    pub line: i32,
    /// Whole đồng to take back (a decimal string); absent: all that is left on the line.
    pub amount: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewCreditNote {
    pub reason: String,
    pub lines: Vec<CreditLineInput>,
}

/// Writes and issues a credit note against an issued invoice (platform admins): each line
/// takes back part or all of what is left on an invoice line, at its unit price; VAT at the
/// invoice's rate.
pub async fn credit_note(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    input: NewCreditNote,
) -> AppResult<InvoiceView> {
    let row = visible(state, caller, id).await?;
    caller.require(&[Role::PlatformAdmin], "write credit notes")?;
    let mut errors = Vec::new();
    check_text("reason", &input.reason, REASON, &mut errors);
    if input.lines.is_empty() {
        errors.push(FieldError::new(
            "lines",
            "must name at least one line to correct",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, l) in input.lines.iter().enumerate() {
        if !seen.insert(l.line) {
            errors.push(FieldError::new(
                format!("lines[{i}].line"),
                "is named twice",
            ));
        }
    }
    AppError::check(errors)?;
    let mut tx = state.db.begin().await?;
    let row = store::lock(&mut tx, row.invoice_id)
        .await?
        .ok_or_else(|| AppError::not_found("invoice", id.to_string()))?;
    let (kind, current) = parse_row(&row)?;
    if kind != InvoiceKind::Invoice {
        return Err(AppError::Conflict(
            "a credit note is not itself credited".into(),
        ));
    }
    if current == InvoiceState::Draft {
        return Err(AppError::Conflict(
            "the invoice is a draft: it is recomputed, not credited; credit notes correct issued invoices".into(),
        ));
    }
    let lines = store::lines(&mut *tx, id).await?;
    let credited: HashMap<i32, (Decimal, Decimal)> = store::credited(&mut *tx, id)
        .await?
        .into_iter()
        .map(|(l, a, q)| (l, (a, q)))
        .collect();
    let mut errors = Vec::new();
    let mut new_lines = Vec::new();
    for (i, c) in input.lines.iter().enumerate() {
        let Some(l) = lines.iter().find(|l| l.line == c.line) else {
            errors.push(FieldError::new(
                format!("lines[{i}].line"),
                format!("the invoice has no line {}", c.line),
            ));
            continue;
        };
        let amount = match c
            .amount
            .as_deref()
            .map(|a| Decimal::from_str_exact(a.trim()))
        {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(_)) => {
                errors.push(FieldError::new(
                    format!("lines[{i}].amount"),
                    "is not a decimal number",
                ));
                continue;
            }
        };
        let quantity: i128 = l.quantity.to_string().parse().unwrap_or(0);
        let (already, _) = credited.get(&l.line).copied().unwrap_or_default();
        match credit(
            &Creditable {
                quantity,
                amount: l.amount,
                credited: already,
            },
            amount,
        ) {
            Ok(taken) => new_lines.push({
                let share = if l.amount.is_zero() {
                    Decimal::ONE
                } else {
                    taken.amount.abs() / l.amount
                };
                NewLine {
                    namespace: l.namespace.clone(),
                    metric: l.metric.clone(),
                    class: l.class.clone(),
                    basis: l.basis.clone(),
                    period_start: l.period_start,
                    period_end: l.period_end,
                    quantity: Decimal::try_from_i128_with_scale(taken.quantity, 0)
                        .unwrap_or_default(),
                    base_unit: l.base_unit.clone(),
                    priced_quantity: -(l.priced_quantity * share).round_dp(6),
                    unit: l.unit.clone(),
                    unit_price: l.unit_price,
                    amount: taken.amount,
                    rate_card_version_id: l.rate_card_version_id,
                    unmetered_seconds: 0,
                    corrects_line: Some(l.line),
                }
            }),
            Err(m) => errors.push(FieldError::new(format!("lines[{i}].amount"), m)),
        }
    }
    AppError::check(errors)?;
    let amounts: Vec<Decimal> = new_lines.iter().map(|l| l.amount).collect();
    let totals =
        rating::totals(&amounts, row.vat_rate).map_err(|e| AppError::Internal(e.to_string()))?;
    let content = Content {
        rated_until: row.rated_until,
        plan: &row.plan,
        cost_center: &row.cost_center,
        organization_display_name: &row.organization_display_name,
        tenant_display_name: &row.tenant_display_name,
        subtotal: totals.subtotal,
        vat_rate: row.vat_rate,
        vat: totals.vat,
        total: totals.total,
        unmetered_seconds: 0,
    };
    let note = store::insert_draft(
        &mut tx,
        &store::NewDraft {
            kind: InvoiceKind::CreditNote.as_str(),
            organization_id: row.organization_id,
            tenant_id: row.tenant_id,
            month: &row.month,
            period: (row.period_start, row.period_end),
            content: &content,
            credits: Some(row.invoice_id),
            reason: Some(input.reason.trim()),
        },
    )
    .await?
    .ok_or_else(|| AppError::Internal("the credit note was not made".into()))?;
    store::write_draft(&mut tx, note, &content, &new_lines).await?;
    let now = Utc::now();
    let year = numbering_year(now);
    let seq = store::next_number(
        &mut tx,
        row.organization_id,
        year,
        InvoiceKind::CreditNote.as_str(),
    )
    .await?;
    let prefix = store::prefix(&mut *tx, row.organization_id).await?;
    let n = number(&prefix, InvoiceKind::CreditNote, year, seq);
    store::issue(&mut tx, note, &n, now, &caller.name).await?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: "invoice.credit-note",
            object_kind: "invoice",
            object_id: n.clone(),
            organization_id: Some(row.organization_id),
            tenant_id: Some(row.tenant_id),
            detail: json!({"creditNote": note, "credits": row.number, "reason": input.reason.trim(),
                           "lines": new_lines.iter().map(|l| l.corrects_line).collect::<Vec<_>>(),
                           "total": totals.total}),
        },
    )
    .await?;
    tx.commit().await?;
    show(state, caller, note).await
}

/// An organization's month, every invoice and credit note of it with its lines, for the
/// province's finance department (org admins, finance, platform admins, auditors).
pub async fn month_of_organization(
    state: &AppState,
    caller: &Caller,
    organization: &str,
    month: &str,
) -> AppResult<Vec<InvoiceView>> {
    let org = organizations::visible(state, caller, organization).await?;
    caller.require(
        &[
            Role::PlatformAdmin,
            Role::Auditor,
            Role::OrgAdmin,
            Role::Finance,
        ],
        "read an organization's monthly summary",
    )?;
    month_range(month).map_err(|e| AppError::invalid("month", e))?;
    let rows = store::of_month(&state.db, org.organization_id, month).await?;
    rows.into_iter().map(summary).collect()
}

/// An exported file: its name and bytes.
pub struct Export {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

fn export_name(v: &InvoiceView, ext: &str) -> String {
    let base = v
        .number
        .clone()
        .unwrap_or_else(|| format!("{}-{}-draft", v.tenant, v.month));
    format!("{base}.{ext}")
}

/// An invoice the caller may see, as CSV (UTF-8 with a byte-order mark, for Excel).
pub async fn export_csv(state: &AppState, caller: &Caller, id: Uuid) -> AppResult<Export> {
    let v = show(state, caller, id).await?;
    let bytes =
        crate::app::statement::invoice_csv(&v).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Export {
        file_name: export_name(&v, "csv"),
        bytes,
    })
}

/// An invoice the caller may see, as its PDF statement (drawn off the async threads).
pub async fn export_pdf(state: &AppState, caller: &Caller, id: Uuid) -> AppResult<Export> {
    let v = show(state, caller, id).await?;
    let file_name = export_name(&v, "pdf");
    let bytes = tokio::task::spawn_blocking(move || crate::app::statement::invoice_pdf(&v))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Export { file_name, bytes })
}
