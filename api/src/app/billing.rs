//! Month close: every tenant's month rated into its draft invoice (recomputed freely while the
//! month and its grace period run), drafts issued once the grace period ends, budgets checked.
//! The loop runs in every API replica; each invoice is written under its row lock, so replicas
//! never write one twice, and nothing is lost on a restart: the next pass starts from the first
//! month not yet closed.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use govcloud_tenant::crd::Plan;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::AppState;
use crate::app::{AppError, AppResult};
use crate::db::audit::{self, Actor};
use crate::db::invoices::{self as store, BillableTenant, Content, NewLine};
use crate::db::{budgets, rate_cards, usage as ledger};
use crate::domain::budget;
use crate::domain::invoice::{InvoiceKind, number, numbering_year};
use crate::domain::period::{month_of, month_range};
use crate::domain::rating::{
    self, Line, Month, NamespaceMonth, Price, QuotaPoint, Resource, UsageSum, Version,
};
use crate::domain::usage::hour_span;

/// VAT rates from their dates, in time order.
type VatRates = Vec<(DateTime<Utc>, Decimal)>;

/// Every price the platform knows: the platform's card and each organization's, with VAT.
#[derive(Debug, Default)]
pub struct Pricebook {
    platform: Vec<Version>,
    platform_vat: VatRates,
    organizations: HashMap<Uuid, (Vec<Version>, VatRates)>,
}

impl Pricebook {
    pub async fn load(db: &sqlx::PgPool) -> AppResult<Self> {
        let cards = rate_cards::list(db, None).await?;
        let ids: Vec<Uuid> = cards.iter().map(|c| c.rate_card_id).collect();
        let versions = rate_cards::versions(db, &ids).await?;
        let version_ids: Vec<Uuid> = versions.iter().map(|v| v.rate_card_version_id).collect();
        let prices = rate_cards::prices(db, &version_ids).await?;
        let vats = rate_cards::vat_rates(db, &ids).await?;
        let mut by_version: HashMap<Uuid, Vec<Price>> = HashMap::new();
        for p in prices {
            let resource: Resource = p
                .resource
                .parse()
                .map_err(|e: String| AppError::Internal(e))?;
            by_version
                .entry(p.rate_card_version_id)
                .or_default()
                .push(Price {
                    resource,
                    class: p.class,
                    price: p.price,
                    usage_price: p.usage_price,
                });
        }
        let mut book = Pricebook::default();
        for c in &cards {
            let list: Vec<Version> = versions
                .iter()
                .filter(|v| v.rate_card_id == c.rate_card_id)
                .map(|v| Version {
                    id: v.rate_card_version_id,
                    version: v.version,
                    effective_from: v.effective_from,
                    prices: by_version
                        .remove(&v.rate_card_version_id)
                        .unwrap_or_default(),
                })
                .collect();
            let vat: VatRates = vats
                .iter()
                .filter(|v| v.rate_card_id == c.rate_card_id)
                .map(|v| (v.effective_from, v.rate))
                .collect();
            match c.organization_id {
                None => {
                    book.platform = list;
                    book.platform_vat = vat;
                }
                Some(org) => {
                    book.organizations.insert(org, (list, vat));
                }
            }
        }
        Ok(book)
    }

    /// When each version of every card starts.
    fn version_starts(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        self.platform
            .iter()
            .chain(self.organizations.values().flat_map(|(v, _)| v.iter()))
            .map(|v| v.effective_from)
    }

    /// Whether no card has any version: nothing can be rated.
    pub fn is_empty(&self) -> bool {
        self.platform.is_empty() && self.organizations.values().all(|(v, _)| v.is_empty())
    }

    fn organization(&self, org: Uuid) -> (&[Version], &[(DateTime<Utc>, Decimal)]) {
        self.organizations
            .get(&org)
            .map_or((&[], &[]), |(v, vat)| (v.as_slice(), vat.as_slice()))
    }

    /// The VAT rate of an organization's month: its own card's where it has one in force at
    /// the period's end, else the platform's.
    pub fn vat_rate(&self, org: Uuid, end: DateTime<Utc>) -> Option<Decimal> {
        rating::vat_rate_at(self.organization(org).1, end)
            .or_else(|| rating::vat_rate_at(&self.platform_vat, end))
    }
}

/// A tenant's month, rated.
#[derive(Debug, Clone)]
pub struct Rated {
    pub lines: Vec<Line>,
    pub vat_rate: Decimal,
    pub totals: rating::Totals,
    pub unmetered_seconds: i64,
}

fn rating_error(tenant: &str, month: &str, e: impl std::fmt::Display) -> AppError {
    AppError::Conflict(format!("tenant {tenant}'s {month} cannot be rated: {e}"))
}

/// A month's ledger as rating reads it: each metered namespace's hours summed per piece (see
/// [`rating::UsageSum`]), in time order.
pub type LedgerSums = HashMap<i32, Vec<UsageSum>>;

/// Sums the ledger of `month` up to `until` (at most the month's end) in the database, for
/// these metered namespaces (`None`: all of them, in one scan of the month), cut wherever any
/// card's version starts: each piece is priced by one version, so the month rates exactly as
/// hour by hour (`rating::piece_starts`); hours from `until` on are not read
/// (`rating::rated_hours_end`).
pub async fn sum_ledger(
    conn: &mut PgConnection,
    book: &Pricebook,
    month: &str,
    until: DateTime<Utc>,
    namespaces: Option<&[i32]>,
) -> AppResult<LedgerSums> {
    let (start, end) = month_range(month).map_err(|m| AppError::invalid("month", m))?;
    let (first, last) = hour_span(start, end);
    let last = rating::rated_hours_end(until, first, last);
    let starts = rating::piece_starts(book.version_starts(), first, last);
    let h32 = |h: i64| i32::try_from(h).unwrap_or(i32::MAX);
    let starts: Vec<i32> = starts.into_iter().map(h32).collect();
    let (from, to) = (h32(first), h32(last));
    let (sums, gpus) = match namespaces {
        None => ledger::every_namespace_sums(&mut *conn, from, to, &starts).await?,
        Some(ids) => (
            ledger::usage_sums(&mut *conn, Some(ids), from, to, &starts).await?,
            ledger::gpu_sums(&mut *conn, Some(ids), from, to, &starts).await?,
        ),
    };

    let whole = |d: Decimal| d.to_i128().unwrap_or(i128::MAX);
    // A piece's place in `starts` (from 1, as `width_bucket` counts) gives its first hour.
    let piece_start = |piece: i32| {
        usize::try_from(piece - 1)
            .ok()
            .and_then(|i| starts.get(i))
            .map_or(first, |h| i64::from(*h))
    };
    let mut pieces: HashMap<(i32, i32), UsageSum> = HashMap::new();
    for s in sums {
        pieces.insert(
            (s.metered_namespace_id, s.piece),
            UsageSum {
                from_hour: piece_start(s.piece),
                cpu_allocated: whole(s.cpu_allocated),
                memory_allocated: whole(s.memory_allocated),
                storage_bound: whole(s.storage_bound),
                requested_seconds: i128::from(s.requested_seconds),
                bound_seconds: i128::from(s.bound_seconds),
                gpu: Vec::new(),
            },
        );
    }
    for g in gpus {
        pieces
            .entry((g.metered_namespace_id, g.piece))
            .or_insert_with(|| UsageSum {
                from_hour: piece_start(g.piece),
                ..UsageSum::default()
            })
            .gpu
            .push((g.resource, whole(g.quantity)));
    }
    let mut out: LedgerSums = HashMap::new();
    for ((id, _), piece) in pieces {
        out.entry(id).or_default().push(piece);
    }
    for list in out.values_mut() {
        list.sort_by_key(|p| p.from_hour);
        for p in list.iter_mut() {
            p.gpu.sort();
        }
    }
    Ok(out)
}

/// Rates the months of `tenants` up to `until` (at most the month's end) from `ledger` (the
/// month summed for every namespace), or from their own namespaces' sums read now.
pub async fn rate_tenants(
    conn: &mut PgConnection,
    book: &Pricebook,
    tenants: &[BillableTenant],
    month: &str,
    until: DateTime<Utc>,
    ledger: Option<&LedgerSums>,
) -> AppResult<Vec<(Uuid, AppResult<Rated>)>> {
    let (start, end) = month_range(month).map_err(|m| AppError::invalid("month", m))?;
    let until = until.min(end);
    let ids: Vec<Uuid> = tenants.iter().map(|t| t.tenant_id).collect();
    let namespaces = ledger::ledger_namespaces(&mut *conn, &ids).await?;
    let read;
    let hours_of = match ledger {
        Some(sums) => sums,
        None => {
            let metered: Vec<i32> = namespaces
                .iter()
                .filter_map(|n| n.metered_namespace_id)
                .collect();
            read = sum_ledger(&mut *conn, book, month, until, Some(&metered)).await?;
            &read
        }
    };
    let timeline = ledger::quota_timeline(&mut *conn, &ids, end).await?;
    let mut points_of: HashMap<(Uuid, &str), Vec<QuotaPoint>> = HashMap::new();
    for p in &timeline {
        points_of
            .entry((p.tenant_id, p.namespace.as_str()))
            .or_default()
            .push(QuotaPoint {
                at: p.effective_at,
                cpu_milli: p.cpu_milli,
                memory_bytes: p.memory_bytes,
                storage_bytes: p.storage_bytes,
                load_balancers: i64::from(p.load_balancers),
                suspended: p.suspended,
            });
    }
    let mut out = Vec::with_capacity(tenants.len());
    for t in tenants {
        let months: Vec<NamespaceMonth> = namespaces
            .iter()
            .filter(|n| n.tenant_id == t.tenant_id)
            .filter_map(|n| {
                let quota = points_of.remove(&(n.tenant_id, n.namespace.as_str()))?;
                Some(NamespaceMonth {
                    namespace: n.kube_name.clone(),
                    since: n.since.unwrap_or(start),
                    until: n.until,
                    quota,
                    hours: n
                        .metered_namespace_id
                        .and_then(|id| hours_of.get(&id).cloned())
                        .unwrap_or_default(),
                })
            })
            .collect();
        out.push((
            t.tenant_id,
            rate_one(book, t, &months, month, (start, end), until),
        ));
    }
    Ok(out)
}

fn rate_one(
    book: &Pricebook,
    t: &BillableTenant,
    namespaces: &[NamespaceMonth],
    month: &str,
    period: (DateTime<Utc>, DateTime<Utc>),
    until: DateTime<Utc>,
) -> AppResult<Rated> {
    let (org_versions, _) = book.organization(t.organization_id);
    let versions = rating::versions_in(
        &book.platform,
        org_versions,
        period.0,
        until.clamp(period.0, period.1),
    )
    .map_err(|e| rating_error(&t.name, month, e))?;
    let lines = rating::rate(&Month {
        plan: t.billing.0.plan,
        period,
        until,
        namespaces,
        versions: &versions,
    })
    .map_err(|e| rating_error(&t.name, month, e))?;
    let vat_rate = book
        .vat_rate(t.organization_id, period.1)
        .ok_or_else(|| rating_error(&t.name, month, "no VAT rate is in force"))?;
    let amounts: Vec<Decimal> = lines.iter().map(|l| l.amount).collect();
    let totals = rating::totals(&amounts, vat_rate).map_err(|e| rating_error(&t.name, month, e))?;
    let unmetered_seconds = lines.iter().map(|l| l.unmetered_seconds).max().unwrap_or(0);
    Ok(Rated {
        lines,
        vat_rate,
        totals,
        unmetered_seconds,
    })
}

fn plan_name(p: Plan) -> &'static str {
    match p {
        Plan::Reserved => "Reserved",
        Plan::Usage => "Usage",
    }
}

pub fn stored_lines(lines: &[Line]) -> Vec<NewLine> {
    lines
        .iter()
        .map(|l| NewLine {
            namespace: l.namespace.clone(),
            metric: l.metric.to_string(),
            class: l.class.clone(),
            basis: l.basis.to_string(),
            period_start: l.start,
            period_end: l.end,
            quantity: Decimal::try_from_i128_with_scale(l.quantity, 0).unwrap_or(Decimal::MAX),
            base_unit: l.resource.base_unit().to_string(),
            priced_quantity: l.priced_quantity,
            unit: l.resource.unit().to_string(),
            unit_price: l.unit_price,
            amount: l.amount,
            rate_card_version_id: Some(l.version_id),
            unmetered_seconds: l.unmetered_seconds,
            corrects_line: None,
        })
        .collect()
}

fn content<'a>(t: &'a BillableTenant, rated_until: DateTime<Utc>, rated: &Rated) -> Content<'a> {
    Content {
        rated_until,
        plan: plan_name(t.billing.0.plan),
        cost_center: &t.billing.0.cost_center,
        organization_display_name: &t.organization_display_name,
        tenant_display_name: &t.display_name,
        subtotal: rated.totals.subtotal,
        vat_rate: rated.vat_rate,
        vat: rated.totals.vat,
        total: rated.totals.total,
        unmetered_seconds: rated.unmetered_seconds,
    }
}

/// Issuing drafts as they are written: when, and by whom.
#[derive(Debug, Clone, Copy)]
pub struct Issuing<'a> {
    pub actor: &'a Actor,
    pub at: DateTime<Utc>,
}

/// What became of a tenant's month in [`write_months`].
#[derive(Debug)]
pub enum Written {
    /// Its draft was written (made if absent).
    Draft(Uuid),
    /// Its draft was written and issued under this number.
    Issued(Uuid, String),
    /// Its invoice was issued before: left alone.
    Kept(Uuid),
    /// It could not be rated: its month is as it was.
    Failed(AppError),
}

/// Rates `tenants`' month up to `until` (at most the month's end; from `ledger` when the month
/// is summed already, see [`rate_tenants`]) and writes each into its draft (made if absent), in
/// `tx`, in a few statements for all of them; with `issuing`, also
/// issues every draft written, numbered gap-free per organization in the order of `tenants`. An
/// invoice already issued is left alone. Answers what became of each tenant's month, in order.
pub async fn write_months(
    tx: &mut PgConnection,
    book: &Pricebook,
    tenants: &[BillableTenant],
    month: &str,
    until: DateTime<Utc>,
    ledger: Option<&LedgerSums>,
    issuing: Option<Issuing<'_>>,
) -> AppResult<Vec<Written>> {
    let period = month_range(month).map_err(|m| AppError::invalid("month", m))?;
    let rated_until = until.min(period.1);
    let mut failures: HashMap<usize, AppError> = HashMap::new();
    let rated: Vec<Option<Rated>> = rate_tenants(&mut *tx, book, tenants, month, until, ledger)
        .await?
        .into_iter()
        .enumerate()
        .map(|(i, (_, r))| {
            r.map_err(|e| {
                failures.insert(i, e);
            })
            .ok()
        })
        .collect();
    let contents: Vec<Option<Content<'_>>> = tenants
        .iter()
        .zip(&rated)
        .map(|(t, r)| r.as_ref().map(|r| content(t, rated_until, r)))
        .collect();
    let months: Vec<store::NewMonth<'_>> = tenants
        .iter()
        .zip(&contents)
        .filter_map(|(t, c)| {
            c.as_ref().map(|content| store::NewMonth {
                organization_id: t.organization_id,
                tenant_id: t.tenant_id,
                content,
            })
        })
        .collect();
    store::insert_month_drafts(&mut *tx, month, period, &months).await?;
    let ids: Vec<Uuid> = months.iter().map(|m| m.tenant_id).collect();
    let locks: HashMap<Uuid, store::MonthLock> = store::lock_months(&mut *tx, &ids, month)
        .await?
        .into_iter()
        .map(|l| (l.tenant_id, l))
        .collect();
    let lines: Vec<Vec<NewLine>> = rated
        .iter()
        .map(|r| {
            r.as_ref()
                .map(|r| stored_lines(&r.lines))
                .unwrap_or_default()
        })
        .collect();
    // The drafts to write, by their tenant's place in `tenants`.
    let drafts: Vec<(usize, Uuid)> = tenants
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let lock = locks.get(&t.tenant_id)?;
            (contents[i].is_some() && lock.state == "draft").then_some((i, lock.invoice_id))
        })
        .collect();
    // A draft computed again as it was last written (a month rated to its end once more, in
    // its grace period) is left as it is.
    let writes: Vec<store::DraftWrite<'_>> = drafts
        .iter()
        .filter_map(|&(i, invoice_id)| {
            let write = store::DraftWrite::new(invoice_id, contents[i].as_ref()?, &lines[i]);
            let stored = locks.get(&tenants[i].tenant_id)?.content_digest.as_deref();
            (stored != Some(write.digest.as_slice())).then_some(write)
        })
        .collect();
    store::write_drafts(&mut *tx, &writes).await?;
    let numbers = match issuing {
        Some(issuing) => issue_written(&mut *tx, tenants, &rated, &drafts, month, issuing).await?,
        None => HashMap::new(),
    };
    let written: HashMap<usize, Uuid> = drafts.into_iter().collect();
    let mut numbers = numbers;
    Ok((0..tenants.len())
        .map(|i| {
            if let Some(e) = failures.remove(&i) {
                return Written::Failed(e);
            }
            match (written.get(&i), numbers.remove(&i)) {
                (Some(id), Some(n)) => Written::Issued(*id, n),
                (Some(id), None) => Written::Draft(*id),
                (None, _) => {
                    let id = locks.get(&tenants[i].tenant_id).map(|l| l.invoice_id);
                    match id {
                        Some(id) => Written::Kept(id),
                        None => Written::Failed(AppError::Internal(format!(
                            "{}'s {month} has no invoice after it was written",
                            tenants[i].name
                        ))),
                    }
                }
            }
        })
        .collect())
}

/// Issues the drafts just written (by their tenant's place in `tenants`), numbered per
/// organization in that order, audited; answers their numbers.
async fn issue_written(
    tx: &mut PgConnection,
    tenants: &[BillableTenant],
    rated: &[Option<Rated>],
    drafts: &[(usize, Uuid)],
    month: &str,
    issuing: Issuing<'_>,
) -> AppResult<HashMap<usize, String>> {
    let year = numbering_year(issuing.at);
    let kind = InvoiceKind::Invoice;
    let mut per_organization: Vec<(Uuid, Vec<(usize, Uuid)>)> = Vec::new();
    for &(i, id) in drafts {
        let org = tenants[i].organization_id;
        match per_organization.iter_mut().find(|(o, _)| *o == org) {
            Some((_, list)) => list.push((i, id)),
            None => per_organization.push((org, vec![(i, id)])),
        }
    }
    // Organizations' number rows are taken in one order by every chunk of every pass, so that
    // two chunks issuing at once wait for each other instead of deadlocking.
    per_organization.sort_by_key(|(org, _)| *org);
    // Everything from the first number row taken to the commit is serial for an organization
    // (numbers are gap-free), so what can be done before is: the prefixes read, and the
    // key-share locks that the audit events' foreign keys take held already.
    let mut prefixes = Vec::with_capacity(per_organization.len());
    for (org, list) in &per_organization {
        let tenant_ids: Vec<Uuid> = list.iter().map(|&(i, _)| tenants[i].tenant_id).collect();
        prefixes.push(store::hold_for_issuing(&mut *tx, *org, &tenant_ids).await?);
    }
    let mut numbered: Vec<(Uuid, String)> = Vec::with_capacity(drafts.len());
    let mut numbers: HashMap<usize, String> = HashMap::with_capacity(drafts.len());
    let mut events = Vec::with_capacity(drafts.len());
    for ((org, list), prefix) in per_organization.iter().zip(&prefixes) {
        let count = i32::try_from(list.len())
            .map_err(|_| AppError::Internal("too many invoices to number at once".into()))?;
        let first = store::take_numbers(&mut *tx, *org, year, kind.as_str(), count).await?;
        for (&(i, id), seq) in list.iter().zip(first..) {
            let n = number(prefix, kind, year, seq);
            if let Some(r) = &rated[i] {
                events.push(audit::Event {
                    actor: issuing.actor,
                    action: "invoice.issue",
                    object_kind: "invoice",
                    object_id: n.clone(),
                    organization_id: Some(*org),
                    tenant_id: Some(tenants[i].tenant_id),
                    detail: json!({
                        "invoice": id, "month": month, "subtotal": r.totals.subtotal,
                        "vat": r.totals.vat, "total": r.totals.total, "lines": r.lines.len(),
                    }),
                });
            }
            numbered.push((id, n.clone()));
            numbers.insert(i, n);
        }
    }
    store::issue_all(&mut *tx, &numbered, issuing.at, &issuing.actor.name).await?;
    audit::record_all(&mut *tx, &events).await?;
    Ok(numbers)
}

/// At most how many tenants one pass rates and writes at once (one read of the ledger, one
/// transaction, a few statements for all of them), and at least (unless the month has fewer).
const CHUNK: usize = 500;
const SMALLEST_CHUNK: usize = 50;

/// How many chunks a pass writes at once, each on its own connection (PostgreSQL runs each
/// chunk's statements in one process; its default for one query is three, a leader and two
/// workers). Chunks lock disjoint invoices, and take numbers per organization in the same
/// order, so they never deadlock. The next chunk starts as soon as any one is done: the chunks
/// of one organization take its number row one after another in whatever order they reach
/// it, and waiting for the oldest to finish left that row idle while the next chunks rated.
const CONCURRENT_CHUNKS: usize = 3;

/// What a pass over a month did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub drafts: usize,
    pub issued: usize,
    pub failed: usize,
}

/// Recomputes every draft of `month` up to `now`; with `issuing`, issues each as well (the
/// month's close, once its grace period is over): rated to the month's end and numbered in the
/// same transaction. The month's ledger is summed once, in one scan, for every tenant; the
/// drafts are then written in chunks, each in its own transaction.
pub async fn write_month_of_all(
    state: &AppState,
    book: &Pricebook,
    month: &str,
    now: DateTime<Utc>,
    issuing: Option<Issuing<'_>>,
) -> AppResult<Pass> {
    let (start, end) = month_range(month).map_err(|m| AppError::invalid("month", m))?;
    let tenants = store::billable_tenants(&state.db, month, start, end.min(now)).await?;
    if tenants.is_empty() {
        return Ok(Pass::default());
    }
    let mut conn = state.db.acquire().await?;
    let ledger = sum_ledger(&mut conn, book, month, now, None).await?;
    drop(conn);
    // Smaller months are cut in as many chunks as run at once, to work on all of them.
    let size = tenants
        .len()
        .div_ceil(CONCURRENT_CHUNKS)
        .clamp(SMALLEST_CHUNK, CHUNK);
    let work: Vec<_> = tenants
        .chunks(size)
        .map(|chunk| write_chunk(state, book, chunk, month, now, &ledger, issuing))
        .collect();
    let mut chunks = futures::stream::iter(work).buffer_unordered(CONCURRENT_CHUNKS);
    let mut pass = Pass::default();
    while let Some(done) = chunks.next().await {
        let (chunk, written) = done?;
        for (t, w) in chunk.iter().zip(written) {
            match w {
                Written::Draft(_) => pass.drafts += 1,
                Written::Issued(_, _) => {
                    pass.drafts += 1;
                    pass.issued += 1;
                    state.metrics.invoices_issued.inc();
                }
                Written::Kept(_) => {}
                Written::Failed(e) => {
                    pass.failed += 1;
                    state.metrics.billing_failures.inc();
                    tracing::warn!(tenant = %t.name, month, error = %e, "a draft invoice could not be computed");
                }
            }
        }
    }
    Ok(pass)
}

/// One chunk of a pass, in its own transaction.
async fn write_chunk<'a>(
    state: &AppState,
    book: &Pricebook,
    chunk: &'a [BillableTenant],
    month: &str,
    now: DateTime<Utc>,
    ledger: &LedgerSums,
    issuing: Option<Issuing<'_>>,
) -> AppResult<(&'a [BillableTenant], Vec<Written>)> {
    let mut tx = state.db.begin().await?;
    let written = write_months(&mut tx, book, chunk, month, now, Some(ledger), issuing).await?;
    tx.commit().await?;
    Ok((chunk, written))
}

/// Recomputes every draft of `month` up to `now`.
pub async fn refresh_month(
    state: &AppState,
    book: &Pricebook,
    month: &str,
    now: DateTime<Utc>,
) -> AppResult<Pass> {
    write_month_of_all(state, book, month, now, None).await
}

/// Issues a draft (recomputed one last time, in the same transaction, to the month's end):
/// numbered gap-free per organization and year. Answers whether it was issued.
pub async fn issue_draft(
    state: &AppState,
    book: &Pricebook,
    id: Uuid,
    actor: &Actor,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let mut tx = state.db.begin().await?;
    let Some(inv) = store::lock(&mut tx, id).await? else {
        return Err(AppError::not_found("invoice", id.to_string()));
    };
    if inv.state != "draft" || inv.kind != InvoiceKind::Invoice.as_str() {
        return Ok(false);
    }
    if now < inv.period_end {
        return Err(AppError::Conflict(format!(
            "{}'s invoice for {} cannot be issued before the month ends ({})",
            inv.tenant, inv.month, inv.period_end
        )));
    }
    let tenant = store::billable_tenant(&mut *tx, inv.tenant_id)
        .await?
        .ok_or_else(|| AppError::not_found("tenant", inv.tenant.clone()))?;
    let issuing = Issuing { actor, at: now };
    let written = write_months(
        &mut tx,
        book,
        std::slice::from_ref(&tenant),
        &inv.month,
        inv.period_end,
        None,
        Some(issuing),
    )
    .await?
    .pop();
    match written {
        Some(Written::Issued(_, _)) => {
            tx.commit().await?;
            Ok(true)
        }
        Some(Written::Failed(e)) => Err(e),
        Some(Written::Kept(_)) => Ok(false),
        Some(Written::Draft(_)) | None => Err(AppError::Internal(format!(
            "{}'s invoice for {} was not issued",
            inv.tenant, inv.month
        ))),
    }
}

/// When billing is cut.
#[derive(Debug, Clone, Copy)]
pub struct Close {
    /// How long after a month ends its drafts still change (for late samples).
    pub grace: Duration,
    /// Whether drafts issue themselves once the grace period ends.
    pub auto_issue: bool,
}

/// One pass of the billing loop: every month from the first not closed to the current one is
/// rated; months whose grace ended are issued (when automatic) and closed; budgets checked.
pub async fn close(state: &AppState, c: Close, now: DateTime<Utc>) -> AppResult<Pass> {
    let current = month_of(now);
    let open_from = match store::open_from(&state.db).await? {
        Some(m) => m,
        None => store::first_quota_at(&state.db)
            .await?
            .map_or_else(|| current.clone(), month_of),
    };
    let book = Pricebook::load(&state.db).await?;
    if book.is_empty() {
        tracing::warn!("no rate card is written yet: nothing is rated (POST /v1/rate-cards)");
        return Ok(Pass::default());
    }
    let mut total = Pass::default();
    let mut month = open_from.clone();
    let mut all_closed = true;
    let system = Actor::system("billing");
    loop {
        let (_, end) = month_range(&month).map_err(|m| AppError::invalid("month", m))?;
        let grace_over = now >= end + c.grace;
        // Once the grace period is over, the month's drafts are rated a last time and issued
        // in the same pass (when automatic).
        let issuing = (grace_over && c.auto_issue).then_some(Issuing {
            actor: &system,
            at: now,
        });
        let p = write_month_of_all(state, &book, &month, now, issuing).await?;
        total.drafts += p.drafts;
        total.issued += p.issued;
        total.failed += p.failed;
        let closed = grace_over && store::drafts_of_month(&state.db, &month).await?.is_empty();
        all_closed &= closed;
        if month == current {
            check_budgets(state, &month, now).await?;
        }
        if all_closed {
            store::set_open_from(&state.db, &month_of(end)).await?;
        }
        if month == current || end > now {
            break;
        }
        // a month's end is the next month's first instant
        month = month_of(end);
    }
    Ok(total)
}

/// Raises the budget alerts that `month`'s spend to date and forecast reach (each once),
/// audited; the billing loop checks the current month.
pub async fn check_budgets(state: &AppState, month: &str, now: DateTime<Utc>) -> AppResult<()> {
    let (start, end) = month_range(month).map_err(|m| AppError::invalid("month", m))?;
    let invoices = crate::db::invoices::list(
        &state.db,
        crate::db::invoices::ListFilter {
            scope_organization: None,
            scope_tenant: None,
            organization: None,
            tenant: None,
            month: Some(month),
            state: None,
            kind: None,
            after: None,
            limit: i64::MAX,
        },
    )
    .await?;
    let tenant_ids: Vec<Uuid> = invoices.iter().map(|i| i.tenant_id).collect();
    let budgets: HashMap<Uuid, Decimal> = budgets::of_tenants(&state.db, &tenant_ids)
        .await?
        .into_iter()
        .map(|b| (b.tenant_id, b.amount))
        .collect();
    let mut spend: HashMap<Uuid, (Uuid, Decimal, DateTime<Utc>)> = HashMap::new();
    for i in &invoices {
        let e =
            spend
                .entry(i.tenant_id)
                .or_insert((i.organization_id, Decimal::ZERO, i.rated_until));
        e.1 += i.total;
        if i.kind == InvoiceKind::Invoice.as_str() {
            e.2 = i.rated_until;
        }
    }
    let month_seconds = (end - start).num_seconds();
    for (tenant_id, (org, spent, until)) in spend {
        let Some(&amount) = budgets.get(&tenant_id) else {
            continue;
        };
        let elapsed = (until.min(now) - start).num_seconds();
        let forecast = budget::forecast(spent, elapsed, month_seconds);
        for (measure, threshold, value) in budget::reached(amount, spent, forecast) {
            let mut tx = state.db.begin().await?;
            let new = budgets::raise(
                &mut *tx,
                budgets::NewAlert {
                    tenant_id,
                    organization_id: org,
                    month,
                    measure: measure.as_str(),
                    threshold,
                    budget: amount,
                    amount: value,
                },
            )
            .await?;
            if new {
                audit::record(
                    &mut *tx,
                    audit::Event {
                        actor: &Actor::system("billing"),
                        action: "budget.alert",
                        object_kind: "budget",
                        object_id: tenant_id.to_string(),
                        organization_id: Some(org),
                        tenant_id: Some(tenant_id),
                        detail: json!({"month": month, "measure": measure, "threshold": threshold,
                                       "budget": amount, "amount": value}),
                    },
                )
                .await?;
                state
                    .metrics
                    .budget_alerts
                    .get_or_create(&crate::metrics::AlertLabels {
                        measure: measure.as_str().to_string(),
                        threshold: threshold.to_string(),
                    })
                    .inc();
            }
            tx.commit().await?;
        }
    }
    let current = month_of(now);
    let active = budgets::alerts(
        &state.db,
        budgets::AlertFilter {
            scope_organization: None,
            scope_tenant: None,
            organization: None,
            tenant: None,
            month: Some(&current),
            before: None,
            limit: i64::MAX,
        },
    )
    .await?;
    state.metrics.set_active_alerts(active.into_iter().map(|a| {
        crate::metrics::ActiveAlertLabels {
            organization: a.organization,
            tenant: a.tenant,
            measure: a.measure,
            threshold: a.threshold.to_string(),
        }
    }));
    Ok(())
}

/// The billing loop: a pass every `interval` until the process stops. A failed pass is retried
/// at the next tick; every pass starts from what the database says.
pub async fn run(state: AppState, c: Close, interval: std::time::Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match close(&state, c, Utc::now()).await {
            Ok(p) if p.issued > 0 || p.failed > 0 => {
                tracing::info!(
                    drafts = p.drafts,
                    issued = p.issued,
                    failed = p.failed,
                    "billing pass"
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the billing pass failed; trying again at the next tick")
            }
        }
    }
}
