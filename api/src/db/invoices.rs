//! Invoices, credit notes and their lines; their numbering; what a month's rating reads. The
//! database refuses any change to an issued invoice or its lines (migration 0008).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use govcloud_tenant::crd::Billing;

#[derive(Debug, Clone)]
pub struct InvoiceRow {
    pub invoice_id: Uuid,
    pub kind: String,
    pub organization_id: Uuid,
    pub organization: String,
    pub tenant_id: Uuid,
    pub tenant: String,
    pub month: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub rated_until: DateTime<Utc>,
    pub state: String,
    pub number: Option<String>,
    pub plan: String,
    pub cost_center: String,
    pub organization_display_name: String,
    pub tenant_display_name: String,
    pub currency: String,
    pub subtotal: Decimal,
    pub vat_rate: Decimal,
    pub vat: Decimal,
    pub total: Decimal,
    pub unmetered_seconds: i64,
    pub credits_invoice_id: Option<Uuid>,
    pub credits_number: Option<String>,
    pub reason: Option<String>,
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

macro_rules! select_invoices {
    ($rest:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            InvoiceRow,
            r#"select i.invoice_id, i.kind, i.organization_id, o.name as organization, i.tenant_id,
                   t.name as tenant, i.month, i.period_start, i.period_end, i.rated_until, i.state,
                   i.number, i.plan, i.cost_center, i.organization_display_name,
                   i.tenant_display_name, i.currency, i.subtotal, i.vat_rate, i.vat, i.total,
                   i.unmetered_seconds, i.credits_invoice_id, c.number as "credits_number?",
                   i.reason, i.computed_at, i.issued_at, i.issued_by, i.approved_at, i.approved_by,
                   i.disputed_at, i.disputed_by, i.dispute_reason, i.paid_at, i.paid_by,
                   i.created_at
               from invoice i
               join organization o on o.organization_id = i.organization_id
               join tenant t on t.tenant_id = i.tenant_id
               left join invoice c on c.invoice_id = i.credits_invoice_id "# + $rest
            $(, $arg)*
        )
    };
}

pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<InvoiceRow>> {
    select_invoices!("where i.invoice_id = $1", id)
        .fetch_optional(db)
        .await
}

/// Locks an invoice for a transition and answers it as it stands.
pub async fn lock(tx: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<InvoiceRow>> {
    select_invoices!("where i.invoice_id = $1 for update of i", id)
        .fetch_optional(tx)
        .await
}

pub struct ListFilter<'a> {
    /// The caller's scope.
    pub scope_organization: Option<Uuid>,
    pub scope_tenant: Option<Uuid>,
    pub organization: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub month: Option<&'a str>,
    pub state: Option<&'a str>,
    pub kind: Option<&'a str>,
    /// Continue after this (month, tenant, kind, number-or-created, id) key: oldest month last.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// A page of invoices, newest first.
pub async fn list(db: impl PgExecutor<'_>, f: ListFilter<'_>) -> sqlx::Result<Vec<InvoiceRow>> {
    let (after_at, after_id) = f.after.unzip();
    select_invoices!(
        "where ($1::uuid is null or i.organization_id = $1)
           and ($2::uuid is null or i.tenant_id = $2)
           and ($3::text is null or o.name = $3)
           and ($4::text is null or t.name = $4)
           and ($5::text is null or i.month = $5)
           and ($6::text is null or i.state = $6)
           and ($7::text is null or i.kind = $7)
           and ($8::timestamptz is null or (i.created_at, i.invoice_id) < ($8, $9::uuid))
         order by i.created_at desc, i.invoice_id desc limit $10",
        f.scope_organization,
        f.scope_tenant,
        f.organization,
        f.tenant,
        f.month,
        f.state,
        f.kind,
        after_at,
        after_id,
        f.limit,
    )
    .fetch_all(db)
    .await
}

/// Every invoice (not credit note) of an organization's month, by tenant.
pub async fn of_month(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    month: &str,
) -> sqlx::Result<Vec<InvoiceRow>> {
    select_invoices!(
        "where i.organization_id = $1 and i.month = $2 order by t.name, i.kind desc, i.number",
        organization_id,
        month,
    )
    .fetch_all(db)
    .await
}

/// The credit notes of an invoice, oldest first.
pub async fn credit_notes(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Vec<InvoiceRow>> {
    select_invoices!(
        "where i.credits_invoice_id = $1 order by i.created_at, i.invoice_id",
        id
    )
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone)]
pub struct LineRow {
    pub line: i32,
    pub namespace: String,
    pub metric: String,
    pub class: String,
    pub basis: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub quantity: Decimal,
    pub base_unit: String,
    pub priced_quantity: Decimal,
    pub unit: String,
    pub unit_price: Decimal,
    pub amount: Decimal,
    pub rate_card_version_id: Option<Uuid>,
    pub version: Option<i32>,
    pub unmetered_seconds: i64,
    pub corrects_line: Option<i32>,
}

pub async fn lines(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Vec<LineRow>> {
    sqlx::query_as!(
        LineRow,
        r#"select l.line, l.namespace, l.metric, l.class, l.basis, l.period_start, l.period_end,
               l.quantity, l.base_unit, l.priced_quantity, l.unit, l.unit_price, l.amount,
               l.rate_card_version_id, v.version as "version?", l.unmetered_seconds, l.corrects_line
           from invoice_line l left join rate_card_version v using (rate_card_version_id)
           where l.invoice_id = $1 order by l.line"#,
        id,
    )
    .fetch_all(db)
    .await
}

/// What the credit notes of an invoice took back per line: (line, amount, quantity).
pub async fn credited(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Vec<(i32, Decimal, Decimal)>> {
    let rows = sqlx::query!(
        r#"select l.corrects_line as "line!", sum(l.amount) as "amount!", sum(l.quantity) as "quantity!"
           from invoice c join invoice_line l on l.invoice_id = c.invoice_id
           where c.credits_invoice_id = $1 and l.corrects_line is not null
           group by l.corrects_line"#,
        id,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.line, r.amount, r.quantity))
        .collect())
}

/// What an invoice says besides its lines.
#[derive(Debug, Clone)]
pub struct Content<'a> {
    pub rated_until: DateTime<Utc>,
    pub plan: &'a str,
    pub cost_center: &'a str,
    pub organization_display_name: &'a str,
    pub tenant_display_name: &'a str,
    pub subtotal: Decimal,
    pub vat_rate: Decimal,
    pub vat: Decimal,
    pub total: Decimal,
    pub unmetered_seconds: i64,
}

/// Many invoices' [`Content`], column by column (as `unnest` takes them).
struct ContentColumns<'a> {
    rated_until: Vec<DateTime<Utc>>,
    plan: Vec<&'a str>,
    cost_center: Vec<&'a str>,
    organization_display_name: Vec<&'a str>,
    tenant_display_name: Vec<&'a str>,
    subtotal: Vec<Decimal>,
    vat_rate: Vec<Decimal>,
    vat: Vec<Decimal>,
    total: Vec<Decimal>,
    unmetered_seconds: Vec<i64>,
}

impl<'a> ContentColumns<'a> {
    fn of(contents: impl Iterator<Item = &'a Content<'a>>) -> Self {
        let mut c = Self {
            rated_until: Vec::new(),
            plan: Vec::new(),
            cost_center: Vec::new(),
            organization_display_name: Vec::new(),
            tenant_display_name: Vec::new(),
            subtotal: Vec::new(),
            vat_rate: Vec::new(),
            vat: Vec::new(),
            total: Vec::new(),
            unmetered_seconds: Vec::new(),
        };
        for x in contents {
            c.rated_until.push(x.rated_until);
            c.plan.push(x.plan);
            c.cost_center.push(x.cost_center);
            c.organization_display_name
                .push(x.organization_display_name);
            c.tenant_display_name.push(x.tenant_display_name);
            c.subtotal.push(x.subtotal);
            c.vat_rate.push(x.vat_rate);
            c.vat.push(x.vat);
            c.total.push(x.total);
            c.unmetered_seconds.push(x.unmetered_seconds);
        }
        c
    }
}

/// A line to store.
pub struct NewLine {
    pub namespace: String,
    pub metric: String,
    pub class: String,
    pub basis: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub quantity: Decimal,
    pub base_unit: String,
    pub priced_quantity: Decimal,
    pub unit: String,
    pub unit_price: Decimal,
    pub amount: Decimal,
    pub rate_card_version_id: Option<Uuid>,
    pub unmetered_seconds: i64,
    pub corrects_line: Option<i32>,
}

/// A draft to make: a tenant's month, or a credit note of an invoice.
pub struct NewDraft<'a> {
    pub kind: &'a str,
    pub organization_id: Uuid,
    pub tenant_id: Uuid,
    pub month: &'a str,
    pub period: (DateTime<Utc>, DateTime<Utc>),
    pub content: &'a Content<'a>,
    /// A credit note: the invoice it corrects, and why.
    pub credits: Option<Uuid>,
    pub reason: Option<&'a str>,
}

/// Makes a draft; `None` when it is a tenant's month that has its invoice already.
pub async fn insert_draft(tx: &mut PgConnection, d: &NewDraft<'_>) -> sqlx::Result<Option<Uuid>> {
    let c = d.content;
    sqlx::query_scalar!(
        "insert into invoice (kind, organization_id, tenant_id, month, period_start, period_end,
             rated_until, state, plan, cost_center, organization_display_name, tenant_display_name,
             subtotal, vat_rate, vat, total, unmetered_seconds, credits_invoice_id, reason)
         values ($1, $2, $3, $4, $5, $6, $7, 'draft', $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         on conflict (tenant_id, month) where kind = 'invoice' do nothing
         returning invoice_id",
        d.kind,
        d.organization_id,
        d.tenant_id,
        d.month,
        d.period.0,
        d.period.1,
        c.rated_until,
        c.plan,
        c.cost_center,
        c.organization_display_name,
        c.tenant_display_name,
        c.subtotal,
        c.vat_rate,
        c.vat,
        c.total,
        c.unmetered_seconds,
        d.credits,
        d.reason,
    )
    .fetch_optional(tx)
    .await
}

/// The invoice of a tenant's month, made as a draft if absent, locked; answers its id and
/// state.
pub async fn lock_month(tx: &mut PgConnection, d: &NewDraft<'_>) -> sqlx::Result<(Uuid, String)> {
    insert_draft(&mut *tx, d).await?;
    let r = sqlx::query!(
        "select invoice_id, state from invoice where tenant_id = $1 and month = $2 and kind = 'invoice' for update",
        d.tenant_id,
        d.month,
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok((r.invoice_id, r.state))
}

/// A tenant's month to make a draft of.
pub struct NewMonth<'a> {
    pub organization_id: Uuid,
    pub tenant_id: Uuid,
    pub content: &'a Content<'a>,
}

/// Makes the drafts of these tenants' `month` where absent, in tenant order (as every replica
/// locks them); a month that has its invoice keeps it.
pub async fn insert_month_drafts(
    tx: &mut PgConnection,
    month: &str,
    period: (DateTime<Utc>, DateTime<Utc>),
    months: &[NewMonth<'_>],
) -> sqlx::Result<()> {
    let ids = |f: fn(&NewMonth<'_>) -> Uuid| months.iter().map(f).collect::<Vec<Uuid>>();
    let c = ContentColumns::of(months.iter().map(|m| m.content));
    sqlx::query!(
        "insert into invoice (kind, organization_id, tenant_id, month, period_start, period_end,
             rated_until, state, plan, cost_center, organization_display_name, tenant_display_name,
             subtotal, vat_rate, vat, total, unmetered_seconds)
         select 'invoice', o, t, $3, $4, $5, r, 'draft', p, cc, od, td, st, vr, v, tot, u
         from unnest($1::uuid[], $2::uuid[], $6::timestamptz[], $7::text[], $8::text[], $9::text[],
             $10::text[], $11::numeric[], $12::numeric[], $13::numeric[], $14::numeric[], $15::bigint[])
             as m(o, t, r, p, cc, od, td, st, vr, v, tot, u)
         order by t
         on conflict (tenant_id, month) where kind = 'invoice' do nothing",
        &ids(|m| m.organization_id),
        &ids(|m| m.tenant_id),
        month,
        period.0,
        period.1,
        &c.rated_until,
        &c.plan as &[&str],
        &c.cost_center as &[&str],
        &c.organization_display_name as &[&str],
        &c.tenant_display_name as &[&str],
        &c.subtotal,
        &c.vat_rate,
        &c.vat,
        &c.total,
        &c.unmetered_seconds,
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// A tenant's invoice of a month, locked.
#[derive(Debug, Clone)]
pub struct MonthLock {
    pub tenant_id: Uuid,
    pub invoice_id: Uuid,
    pub state: String,
    /// The digest of its content and lines as last written ([`DraftWrite::digest`]).
    pub content_digest: Option<Vec<u8>>,
}

/// Locks the invoices of these tenants' `month` (those that exist), in tenant order.
pub async fn lock_months(
    tx: &mut PgConnection,
    tenant_ids: &[Uuid],
    month: &str,
) -> sqlx::Result<Vec<MonthLock>> {
    sqlx::query_as!(
        MonthLock,
        "select tenant_id, invoice_id, state, content_digest from invoice
         where tenant_id = any($1) and month = $2 and kind = 'invoice'
         order by tenant_id for update",
        tenant_ids,
        month,
    )
    .fetch_all(tx)
    .await
}

/// A draft's new content and lines.
pub struct DraftWrite<'a> {
    pub invoice_id: Uuid,
    pub content: &'a Content<'a>,
    pub lines: &'a [NewLine],
    /// The digest of `content` and `lines`, stored with them.
    pub digest: Vec<u8>,
}

impl<'a> DraftWrite<'a> {
    pub fn new(invoice_id: Uuid, content: &'a Content<'a>, lines: &'a [NewLine]) -> Self {
        Self {
            invoice_id,
            content,
            lines,
            digest: Self::digest(content, lines),
        }
    }

    /// SHA-256 of everything a draft's write stores (text tagged by its length, options by
    /// their presence, decimals in their exact form, scale included, so no two drafts read
    /// alike): equal digests, equal drafts.
    pub fn digest(c: &Content<'_>, lines: &[NewLine]) -> Vec<u8> {
        let mut h = Sha256::new();
        let text = |h: &mut Sha256, s: &str| {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        let time = |h: &mut Sha256, t: DateTime<Utc>| h.update(t.timestamp_micros().to_le_bytes());
        text(&mut h, "govcloud.invoice.v1");
        time(&mut h, c.rated_until);
        for s in [
            c.plan,
            c.cost_center,
            c.organization_display_name,
            c.tenant_display_name,
        ] {
            text(&mut h, s);
        }
        for d in [c.subtotal, c.vat_rate, c.vat, c.total] {
            h.update(d.serialize());
        }
        h.update(c.unmetered_seconds.to_le_bytes());
        h.update((lines.len() as u64).to_le_bytes());
        for l in lines {
            for s in [
                &l.namespace,
                &l.metric,
                &l.class,
                &l.basis,
                &l.base_unit,
                &l.unit,
            ] {
                text(&mut h, s);
            }
            time(&mut h, l.period_start);
            time(&mut h, l.period_end);
            for d in [l.quantity, l.priced_quantity, l.unit_price, l.amount] {
                h.update(d.serialize());
            }
            match l.rate_card_version_id {
                Some(v) => {
                    h.update([1]);
                    h.update(v.as_bytes());
                }
                None => h.update([0]),
            }
            h.update(l.unmetered_seconds.to_le_bytes());
            match l.corrects_line {
                Some(n) => {
                    h.update([1]);
                    h.update(n.to_le_bytes());
                }
                None => h.update([0]),
            }
        }
        h.finalize().to_vec()
    }
}

/// Replaces a draft's content and lines.
pub async fn write_draft(
    tx: &mut PgConnection,
    id: Uuid,
    c: &Content<'_>,
    lines: &[NewLine],
) -> sqlx::Result<()> {
    write_drafts(tx, &[DraftWrite::new(id, c, lines)]).await
}

/// Replaces these drafts' content and lines, in three statements (the caller holds their
/// locks).
pub async fn write_drafts(tx: &mut PgConnection, drafts: &[DraftWrite<'_>]) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = drafts.iter().map(|d| d.invoice_id).collect();
    let c = ContentColumns::of(drafts.iter().map(|d| d.content));
    let digests: Vec<&[u8]> = drafts.iter().map(|d| d.digest.as_slice()).collect();
    sqlx::query!(
        "update invoice i set rated_until = d.r, plan = d.p, cost_center = d.cc,
             organization_display_name = d.od, tenant_display_name = d.td, subtotal = d.st,
             vat_rate = d.vr, vat = d.v, total = d.tot, unmetered_seconds = d.u,
             content_digest = d.dg, computed_at = now(), updated_at = now()
         from unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
             $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[], $11::bigint[], $12::bytea[])
             as d(id, r, p, cc, od, td, st, vr, v, tot, u, dg)
         where i.invoice_id = d.id and i.state = 'draft'",
        &ids,
        &c.rated_until,
        &c.plan as &[&str],
        &c.cost_center as &[&str],
        &c.organization_display_name as &[&str],
        &c.tenant_display_name as &[&str],
        &c.subtotal,
        &c.vat_rate,
        &c.vat,
        &c.total,
        &c.unmetered_seconds,
        &digests as &[&[u8]],
    )
    .execute(&mut *tx)
    .await?;
    let lines: Vec<(Uuid, i32, &NewLine)> = drafts
        .iter()
        .flat_map(|d| {
            d.lines
                .iter()
                .zip(1..)
                .map(move |(l, n)| (d.invoice_id, n, l))
        })
        .collect();
    let col = |f: fn(&NewLine) -> &str| lines.iter().map(|l| f(l.2)).collect::<Vec<&str>>();
    let dec = |f: fn(&NewLine) -> Decimal| lines.iter().map(|l| f(l.2)).collect::<Vec<Decimal>>();
    let times = |f: fn(&NewLine) -> DateTime<Utc>| lines.iter().map(|l| f(l.2)).collect::<Vec<_>>();
    let invoices: Vec<Uuid> = lines.iter().map(|l| l.0).collect();
    let numbers: Vec<i32> = lines.iter().map(|l| l.1).collect();
    let versions: Vec<Option<Uuid>> = lines.iter().map(|l| l.2.rate_card_version_id).collect();
    let unmetered: Vec<i64> = lines.iter().map(|l| l.2.unmetered_seconds).collect();
    let corrects: Vec<Option<i32>> = lines.iter().map(|l| l.2.corrects_line).collect();
    // Lines are written in place: a line that reads as it did is not written again (a month
    // rated to its end again, say), a changed one is updated, a new one inserted, and those
    // past a draft's new last line deleted.
    sqlx::query!(
        "insert into invoice_line as l (invoice_id, line, namespace, metric, class, basis,
             period_start, period_end, quantity, base_unit, priced_quantity, unit, unit_price,
             amount, rate_card_version_id, unmetered_seconds, corrects_line)
         select * from unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[],
             $7::timestamptz[], $8::timestamptz[], $9::numeric[], $10::text[], $11::numeric[],
             $12::text[], $13::numeric[], $14::numeric[], $15::uuid[], $16::bigint[], $17::int[])
         on conflict (invoice_id, line) do update set namespace = excluded.namespace,
             metric = excluded.metric, class = excluded.class, basis = excluded.basis,
             period_start = excluded.period_start, period_end = excluded.period_end,
             quantity = excluded.quantity, base_unit = excluded.base_unit,
             priced_quantity = excluded.priced_quantity, unit = excluded.unit,
             unit_price = excluded.unit_price, amount = excluded.amount,
             rate_card_version_id = excluded.rate_card_version_id,
             unmetered_seconds = excluded.unmetered_seconds, corrects_line = excluded.corrects_line
         where (l.namespace, l.metric, l.class, l.basis, l.period_start, l.period_end, l.quantity,
                l.base_unit, l.priced_quantity, l.unit, l.unit_price, l.amount,
                l.rate_card_version_id, l.unmetered_seconds, l.corrects_line)
             is distinct from
               (excluded.namespace, excluded.metric, excluded.class, excluded.basis,
                excluded.period_start, excluded.period_end, excluded.quantity, excluded.base_unit,
                excluded.priced_quantity, excluded.unit, excluded.unit_price, excluded.amount,
                excluded.rate_card_version_id, excluded.unmetered_seconds, excluded.corrects_line)",
        &invoices,
        &numbers,
        &col(|l| l.namespace.as_str()) as &[&str],
        &col(|l| l.metric.as_str()) as &[&str],
        &col(|l| l.class.as_str()) as &[&str],
        &col(|l| l.basis.as_str()) as &[&str],
        &times(|l| l.period_start),
        &times(|l| l.period_end),
        &dec(|l| l.quantity),
        &col(|l| l.base_unit.as_str()) as &[&str],
        &dec(|l| l.priced_quantity),
        &col(|l| l.unit.as_str()) as &[&str],
        &dec(|l| l.unit_price),
        &dec(|l| l.amount),
        &versions as &[Option<Uuid>],
        &unmetered,
        &corrects as &[Option<i32>],
    )
    .execute(&mut *tx)
    .await?;
    let counts: Vec<i32> = drafts
        .iter()
        .map(|d| i32::try_from(d.lines.len()).unwrap_or(i32::MAX))
        .collect();
    sqlx::query!(
        "delete from invoice_line l using unnest($1::uuid[], $2::int[]) as d(id, lines)
         where l.invoice_id = d.id and l.line > d.lines",
        &ids,
        &counts,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Takes the next number of an organization's year for `kind` (gap-free: it is taken in the
/// issuing transaction, and a rollback gives it back).
pub async fn next_number(
    tx: &mut PgConnection,
    organization_id: Uuid,
    year: i32,
    kind: &str,
) -> sqlx::Result<i32> {
    take_numbers(tx, organization_id, year, kind, 1).await
}

/// Takes the next `count` numbers of an organization's year for `kind` at once, gap-free as
/// [`next_number`]; answers the first of them.
pub async fn take_numbers(
    tx: &mut PgConnection,
    organization_id: Uuid,
    year: i32,
    kind: &str,
    count: i32,
) -> sqlx::Result<i32> {
    let last = sqlx::query_scalar!(
        "insert into invoice_number (organization_id, year, kind, last) values ($1, $2, $3, $4)
         on conflict (organization_id, year, kind) do update set last = invoice_number.last + $4
         returning last",
        organization_id,
        year,
        kind,
        count,
    )
    .fetch_one(tx)
    .await?;
    Ok(last - count + 1)
}

/// Before an organization's number row is taken to issue these tenants' invoices: answers its
/// invoice prefix, and takes the key-share locks on the organization's and the tenants' rows
/// that the issuing audit events' foreign keys would take, so that those find them held and
/// a tenant edited meanwhile is waited for here, not with the organization's numbers taken.
pub async fn hold_for_issuing(
    tx: &mut PgConnection,
    organization_id: Uuid,
    tenant_ids: &[Uuid],
) -> sqlx::Result<String> {
    sqlx::query_scalar!(
        r#"select count(*) as "held!" from (
             select from tenant where tenant_id = any($1) order by tenant_id for key share) t"#,
        tenant_ids,
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query_scalar!(
        "select invoice_prefix from organization where organization_id = $1 for key share",
        organization_id
    )
    .fetch_one(&mut *tx)
    .await
}

pub async fn prefix(db: impl PgExecutor<'_>, organization_id: Uuid) -> sqlx::Result<String> {
    sqlx::query_scalar!(
        "select invoice_prefix from organization where organization_id = $1",
        organization_id
    )
    .fetch_one(db)
    .await
}

pub async fn issue(
    tx: &mut PgConnection,
    id: Uuid,
    number: &str,
    at: DateTime<Utc>,
    by: &str,
) -> sqlx::Result<()> {
    issue_all(tx, &[(id, number.to_string())], at, by).await
}

/// Issues these invoices, each under its number, in one statement.
pub async fn issue_all(
    tx: &mut PgConnection,
    numbered: &[(Uuid, String)],
    at: DateTime<Utc>,
    by: &str,
) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = numbered.iter().map(|(id, _)| *id).collect();
    let numbers: Vec<&str> = numbered.iter().map(|(_, n)| n.as_str()).collect();
    sqlx::query!(
        "update invoice i set state = 'issued', number = n.number, issued_at = $3, issued_by = $4,
             updated_at = now()
         from unnest($1::uuid[], $2::text[]) as n(id, number)
         where i.invoice_id = n.id",
        &ids,
        &numbers as &[&str],
        at,
        by,
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Moves an issued invoice to `state`, recording who and when (and a dispute's reason).
pub async fn set_state(
    tx: &mut PgConnection,
    id: Uuid,
    state: &str,
    by: &str,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update invoice set state = $2, updated_at = now(),
             approved_at = case when $2 = 'approved' then now() else approved_at end,
             approved_by = case when $2 = 'approved' then $3 else approved_by end,
             disputed_at = case when $2 = 'disputed' then now() else disputed_at end,
             disputed_by = case when $2 = 'disputed' then $3 else disputed_by end,
             dispute_reason = case when $2 = 'disputed' then $4 else dispute_reason end,
             paid_at = case when $2 = 'paid' then now() else paid_at end,
             paid_by = case when $2 = 'paid' then $3 else paid_by end
         where invoice_id = $1",
        id,
        state,
        by,
        reason,
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Drafts of a month (for issuing at its close).
pub async fn drafts_of_month(db: impl PgExecutor<'_>, month: &str) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "select invoice_id from invoice where month = $1 and state = 'draft' and kind = 'invoice'
         order by organization_id, tenant_id",
        month
    )
    .fetch_all(db)
    .await
}

/// A tenant as a month's bill needs it.
#[derive(Debug, Clone)]
pub struct BillableTenant {
    pub tenant_id: Uuid,
    pub name: String,
    pub organization_id: Uuid,
    pub organization_display_name: String,
    pub display_name: String,
    pub billing: Json<Billing>,
}

/// The tenants billed for `month`: those that held a namespace at some point of `[from, to)`,
/// and those whose draft of it is still open.
pub async fn billable_tenants(
    db: impl PgExecutor<'_>,
    month: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<BillableTenant>> {
    sqlx::query_as!(
        BillableTenant,
        r#"select t.tenant_id, t.name, t.organization_id, o.display_name as organization_display_name,
               t.display_name, t.billing as "billing: Json<Billing>"
           from tenant t join organization o using (organization_id)
           where ((t.gone_at is null or t.gone_at > $2)
                  and exists (select 1 from quota_change q where q.tenant_id = t.tenant_id and q.effective_at < $3))
              or exists (select 1 from invoice i where i.tenant_id = t.tenant_id and i.month = $1
                         and i.kind = 'invoice' and i.state = 'draft')
           order by t.organization_id, t.name"#,
        month,
        from,
        to,
    )
    .fetch_all(db)
    .await
}

pub async fn billable_tenant(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
) -> sqlx::Result<Option<BillableTenant>> {
    sqlx::query_as!(
        BillableTenant,
        r#"select t.tenant_id, t.name, t.organization_id, o.display_name as organization_display_name,
               t.display_name, t.billing as "billing: Json<Billing>"
           from tenant t join organization o using (organization_id)
           where t.tenant_id = $1"#,
        tenant_id,
    )
    .fetch_optional(db)
    .await
}

/// The watermark of the billing loop: the first month not closed.
pub async fn open_from(db: impl PgExecutor<'_>) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("select open_from from billing_close")
        .fetch_optional(db)
        .await
}

pub async fn set_open_from(db: impl PgExecutor<'_>, month: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into billing_close (open_from) values ($1)
         on conflict (singleton) do update set open_from = excluded.open_from",
        month
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The month of the first quota the platform ever gave (where billing starts).
pub async fn first_quota_at(db: impl PgExecutor<'_>) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!("select min(effective_at) from quota_change")
        .fetch_one(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> NewLine {
        NewLine {
            namespace: "so-tc-prod".into(),
            metric: "cpu.allocated".into(),
            class: String::new(),
            basis: "usage".into(),
            period_start: DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default(),
            period_end: DateTime::from_timestamp(1_790_360_000, 0).unwrap_or_default(),
            quantity: Decimal::new(36_000_000, 0),
            base_unit: "millicore-seconds".into(),
            priced_quantity: Decimal::new(10, 0),
            unit: "core-hours".into(),
            unit_price: Decimal::new(260, 0),
            amount: Decimal::new(2600, 0),
            rate_card_version_id: None,
            unmetered_seconds: 0,
            corrects_line: None,
        }
    }

    #[test]
    fn a_draft_digest_changes_with_anything_a_draft_stores() {
        let content = Content {
            rated_until: DateTime::from_timestamp(1_790_360_000, 0).unwrap_or_default(),
            plan: "Usage",
            cost_center: "B",
            organization_display_name: "Sở",
            tenant_display_name: "Sở TC",
            subtotal: Decimal::new(2600, 0),
            vat_rate: Decimal::new(10, 2),
            vat: Decimal::new(260, 0),
            total: Decimal::new(2860, 0),
            unmetered_seconds: 0,
        };
        let base = DraftWrite::digest(&content, &[line()]);
        assert_eq!(base, DraftWrite::digest(&content, &[line()]));
        let changed: Vec<fn(&mut NewLine)> = vec![
            |l| l.namespace.push('x'),
            |l| l.metric = "memory.allocated".into(),
            |l| l.class = "a".into(),
            |l| l.basis = "reserved".into(),
            |l| l.period_start += chrono::Duration::microseconds(1),
            |l| l.period_end += chrono::Duration::seconds(1),
            |l| l.quantity += Decimal::ONE,
            |l| l.base_unit.push('s'),
            |l| l.priced_quantity = Decimal::new(100, 1),
            |l| l.unit.push('s'),
            |l| l.unit_price += Decimal::ONE,
            |l| l.amount += Decimal::ONE,
            |l| l.rate_card_version_id = Some(Uuid::nil()),
            |l| l.unmetered_seconds = 1,
            |l| l.corrects_line = Some(1),
        ];
        for (i, change) in changed.into_iter().enumerate() {
            let mut l = line();
            change(&mut l);
            assert_ne!(base, DraftWrite::digest(&content, &[l]), "line change {i}");
        }
        let mut c = content.clone();
        c.total += Decimal::ONE;
        assert_ne!(base, DraftWrite::digest(&c, &[line()]));
        let mut c = content.clone();
        c.rated_until += chrono::Duration::seconds(1);
        assert_ne!(base, DraftWrite::digest(&c, &[line()]));
        // fields do not run into each other, nor lines
        let mut c = content.clone();
        (c.plan, c.cost_center) = ("Usag", "eB");
        assert_ne!(base, DraftWrite::digest(&c, &[line()]));
        assert_ne!(base, DraftWrite::digest(&content, &[line(), line()]));
        assert_ne!(base, DraftWrite::digest(&content, &[]));
    }
}
