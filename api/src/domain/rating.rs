//! Rating: a tenant's month, from the quota timeline and the usage ledger, priced by the rate
//! card versions in force, into invoice lines.
//!
//! - `Reserved` lines charge the quota hard over time (cpu, memory, storage, load balancers),
//!   integrated exactly from the quota timeline: no charge while the tenant is suspended or
//!   after the namespace left; metering's missed windows change nothing.
//! - `Usage` lines charge, per window, max(requested, used) of cpu and memory (`*.allocated`,
//!   the ledger's hourly sums), the capacity of bound claims (`storage.bound`), and state the
//!   seconds that were not metered. Load balancers are charged as held under both plans (there
//!   is nothing else to measure), GPUs as requested under both (no quota holds them).
//! - A line ends wherever its quantity's rate or its price changes: at a quota change, a
//!   suspension, a new rate card version. It is prorated to the second and its amount rounded
//!   half-up to whole đồng once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use govcloud_tenant::crd::Plan;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::field::FieldError;
use crate::domain::money::{self, MoneyError, PriceUnit};
use crate::domain::period::{Span, hour_start, overlap_seconds};

/// What a rate card prices.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Resource {
    /// Per core-hour.
    Cpu,
    /// Per GiB-hour.
    Memory,
    /// Per GiB-month.
    Storage,
    /// Per load balancer-month.
    LoadBalancers,
    /// Per GPU-hour, by model.
    Gpu,
}

super::named!(Resource, "resource", {
    Cpu => "cpu",
    Memory => "memory",
    Storage => "storage",
    LoadBalancers => "load-balancers",
    Gpu => "gpu",
});

impl Resource {
    /// The priced unit, for a month of `month_seconds`.
    pub fn price_unit(self, month_seconds: i64) -> PriceUnit {
        match self {
            Resource::Cpu => PriceUnit::CoreHour,
            Resource::Memory => PriceUnit::GibHour,
            Resource::Storage => PriceUnit::GibMonth {
                seconds: month_seconds,
            },
            Resource::LoadBalancers => PriceUnit::CountMonth {
                seconds: month_seconds,
            },
            Resource::Gpu => PriceUnit::CountHour,
        }
    }

    /// The priced unit's name, as lines and rate cards show it.
    pub fn unit(self) -> &'static str {
        match self {
            Resource::Cpu => "core-hour",
            Resource::Memory => "GiB-hour",
            Resource::Storage => "GiB-month",
            Resource::LoadBalancers => "load-balancer-month",
            Resource::Gpu => "GPU-hour",
        }
    }

    /// The base unit quantities are integrated in.
    pub fn base_unit(self) -> &'static str {
        match self {
            Resource::Cpu => "millicore-seconds",
            Resource::Memory | Resource::Storage => "byte-seconds",
            Resource::LoadBalancers | Resource::Gpu => "count-seconds",
        }
    }
}

/// Whether a line charges what was held or what was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    Reserved,
    Usage,
}

super::named!(Basis, "basis", { Reserved => "reserved", Usage => "usage" });

/// One price of a rate card version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    pub resource: Resource,
    /// The GPU model (the extended resource's name); empty for the other resources.
    pub class: String,
    /// Đồng per priced unit.
    pub price: Decimal,
    /// Đồng per priced unit for Usage-basis lines, where it differs.
    pub usage_price: Option<Decimal>,
}

impl Price {
    pub fn for_basis(&self, basis: Basis) -> Decimal {
        match basis {
            Basis::Reserved => self.price,
            Basis::Usage => self.usage_price.unwrap_or(self.price),
        }
    }
}

/// A rate card version: its prices from `effective_from` until the next version's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub id: Uuid,
    pub version: i32,
    pub effective_from: DateTime<Utc>,
    pub prices: Vec<Price>,
}

impl Version {
    fn price(&self, resource: Resource, class: &str) -> Option<&Price> {
        self.prices
            .iter()
            .find(|p| p.resource == resource && p.class == class)
    }
}

/// The most a price may be, in đồng per unit: far above any real price, far below what the
/// arithmetic carries.
pub const MAX_PRICE: i64 = 1_000_000_000_000;

/// Checks a version's prices: cpu, memory, storage and load balancers each priced once, GPUs
/// once per model, every price between 0 and [`MAX_PRICE`] with at most 6 decimal places.
pub fn check_prices(prices: &[Price]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut seen: BTreeMap<(Resource, &str), usize> = BTreeMap::new();
    for (i, p) in prices.iter().enumerate() {
        let field = |f: &str| format!("prices[{i}].{f}");
        if (p.resource == Resource::Gpu) == p.class.is_empty() {
            errors.push(FieldError::new(
                field("class"),
                "a GPU price names its model (the extended resource, e.g. nvidia.com/gpu); other resources take no class",
            ));
        }
        if p.class.chars().count() > 253 {
            errors.push(FieldError::new(
                field("class"),
                "must be at most 253 characters",
            ));
        }
        for (name, value) in [("price", Some(p.price)), ("usagePrice", p.usage_price)] {
            let Some(v) = value else { continue };
            if v.is_sign_negative() && !v.is_zero() || v > Decimal::from(MAX_PRICE) || v.scale() > 6
            {
                errors.push(FieldError::new(
                    field(name),
                    format!(
                        "must be 0 to {MAX_PRICE} đồng per {} with at most 6 decimal places",
                        p.resource.unit()
                    ),
                ));
            }
        }
        if let Some(first) = seen.insert((p.resource, p.class.as_str()), i) {
            errors.push(FieldError::new(
                field("resource"),
                format!(
                    "{} {} is priced twice (also prices[{first}])",
                    p.resource, p.class
                ),
            ));
        }
    }
    for r in [
        Resource::Cpu,
        Resource::Memory,
        Resource::Storage,
        Resource::LoadBalancers,
    ] {
        if !seen.contains_key(&(r, "")) {
            errors.push(FieldError::new(
                "prices",
                format!("must price {r} (per {})", r.unit()),
            ));
        }
    }
    errors
}

/// Why a month cannot be rated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RatingError {
    #[error("no rate card version is in force at {0}")]
    NoRateCard(DateTime<Utc>),
    #[error("rate card version {version} prices no {resource} {class}")]
    NoPrice {
        version: i32,
        resource: Resource,
        class: String,
    },
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// `from`, `to` and the instants strictly between them, in order, once each: the bounds of
/// the pieces `[from, to)` is cut into.
fn cuts(
    instants: impl Iterator<Item = DateTime<Utc>>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut out: Vec<DateTime<Utc>> = instants.filter(|t| *t > from && *t < to).collect();
    out.push(from);
    out.push(to);
    out.sort_unstable();
    out.dedup();
    out
}

/// Which version is in force over each part of `[from, to)`: the organization's own card
/// wherever it has a version in force, else the platform's. Both lists are in time order.
pub fn versions_in<'a>(
    platform: &'a [Version],
    organization: &'a [Version],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(Span, &'a Version)>, RatingError> {
    let cuts = cuts(
        platform
            .iter()
            .chain(organization)
            .map(|v| v.effective_from),
        from,
        to,
    );
    let in_force =
        |list: &'a [Version], at: DateTime<Utc>| list.iter().rev().find(|v| v.effective_from <= at);
    let mut out: Vec<(Span, &Version)> = Vec::new();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let v = in_force(organization, a)
            .or_else(|| in_force(platform, a))
            .ok_or(RatingError::NoRateCard(a))?;
        match out.last_mut() {
            Some(((_, end), last)) if last.id == v.id => *end = b,
            _ => out.push(((a, b), v)),
        }
    }
    Ok(out)
}

/// A point of a namespace's quota timeline: from `at` on, this quota holds (nothing held
/// while suspended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaPoint {
    pub at: DateTime<Utc>,
    pub cpu_milli: i64,
    pub memory_bytes: i64,
    pub storage_bytes: i64,
    pub load_balancers: i64,
    pub suspended: bool,
}

impl QuotaPoint {
    fn held(&self, r: Resource) -> i64 {
        if self.suspended {
            return 0;
        }
        match r {
            Resource::Cpu => self.cpu_milli,
            Resource::Memory => self.memory_bytes,
            Resource::Storage => self.storage_bytes,
            Resource::LoadBalancers => self.load_balancers,
            Resource::Gpu => 0,
        }
    }
}

/// Consecutive hours of a namespace's ledger, summed, as a bill reads them: the hours from
/// `from_hour` on, never across an hour where [`piece_starts`] starts a new piece (so one rate
/// card version prices all of them). One hour on its own is the finest piece.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageSum {
    pub from_hour: i64,
    /// Σ over windows of max(requested, used).
    pub cpu_allocated: i128,
    pub memory_allocated: i128,
    pub storage_bound: i128,
    pub requested_seconds: i128,
    pub bound_seconds: i128,
    /// GPU requests by model, in count-seconds.
    pub gpu: Vec<(String, i128)>,
}

/// The hours in `[first, last)` at which the ledger's sums must start a new piece for the month
/// to be rated exactly as hour by hour: `first`, and the first hour starting at or after each
/// of `instants` (every rate card version's start), in order, once each. An hour belongs to
/// the version in force at its start, as [`rate`] reads it.
pub fn piece_starts(
    instants: impl Iterator<Item = DateTime<Utc>>,
    first: i64,
    last: i64,
) -> Vec<i64> {
    let mut out: Vec<i64> = instants
        .map(first_hour_from)
        .filter(|h| *h > first && *h < last)
        .collect();
    out.push(first);
    out.sort_unstable();
    out.dedup();
    out
}

/// The end (exclusive) of the ledger's hours in `[first, last)` that rating a month up to
/// `until` reads: the hours starting before `until` ([`rate`] leaves out the others), so the
/// database need not sum the rest, nor cut a piece there.
pub fn rated_hours_end(until: DateTime<Utc>, first: i64, last: i64) -> i64 {
    first_hour_from(until).clamp(first, last)
}

/// The first hour (counted from the epoch) that starts at or after `t`.
fn first_hour_from(t: DateTime<Utc>) -> i64 {
    let s = t.timestamp();
    s.div_euclid(3600) + i64::from(s.rem_euclid(3600) != 0)
}

/// One namespace's month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceMonth {
    /// Its name in Kubernetes.
    pub namespace: String,
    /// When it existed: from its first quota until it left (none: still there).
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
    /// Its quota timeline in time order (points before the period included).
    pub quota: Vec<QuotaPoint>,
    /// Its ledger in the period, summed into pieces (see [`UsageSum`]).
    pub hours: Vec<UsageSum>,
}

/// What to rate.
#[derive(Debug, Clone)]
pub struct Month<'a> {
    pub plan: Plan,
    /// The calendar month, and how far into it to rate (its end, or now).
    pub period: Span,
    pub until: DateTime<Utc>,
    pub namespaces: &'a [NamespaceMonth],
    pub versions: &'a [(Span, &'a Version)],
}

/// An invoice line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub namespace: String,
    /// `cpu.reserved`, `cpu.allocated`, `storage.bound`, `gpu.requested`…
    pub metric: &'static str,
    pub class: String,
    pub resource: Resource,
    pub basis: Basis,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub quantity: i128,
    pub priced_quantity: Decimal,
    pub unit_price: Decimal,
    pub amount: Decimal,
    pub version_id: Uuid,
    pub version: i32,
    pub unmetered_seconds: i64,
}

fn reserved_metric(r: Resource) -> &'static str {
    match r {
        Resource::Cpu => "cpu.reserved",
        Resource::Memory => "memory.reserved",
        Resource::Storage => "storage.reserved",
        Resource::LoadBalancers => "loadbalancers.reserved",
        Resource::Gpu => "gpu.requested",
    }
}

struct Pricing<'a> {
    versions: &'a [(Span, &'a Version)],
    month_seconds: i64,
}

impl Pricing<'_> {
    fn at(&self, t: DateTime<Utc>) -> Result<&Version, RatingError> {
        self.versions
            .iter()
            .find(|((a, b), _)| *a <= t && t < *b)
            .map(|(_, v)| *v)
            .ok_or(RatingError::NoRateCard(t))
    }

    #[allow(clippy::too_many_arguments)]
    fn line(
        &self,
        namespace: &str,
        metric: &'static str,
        resource: Resource,
        class: &str,
        basis: Basis,
        (start, end): Span,
        quantity: i128,
        unmetered_seconds: i64,
    ) -> Result<Line, RatingError> {
        let v = self.at(start)?;
        let price = v
            .price(resource, class)
            .ok_or_else(|| RatingError::NoPrice {
                version: v.version,
                resource,
                class: class.to_string(),
            })?;
        let unit = resource.price_unit(self.month_seconds);
        let unit_price = price.for_basis(basis);
        Ok(Line {
            namespace: namespace.to_string(),
            metric,
            class: class.to_string(),
            resource,
            basis,
            start,
            end,
            quantity,
            priced_quantity: money::priced_quantity(quantity, unit)?,
            unit_price,
            amount: money::line_amount(quantity, unit, unit_price)?,
            version_id: v.id,
            version: v.version,
            unmetered_seconds,
        })
    }
}

/// The held quantity of `resource` over `[from, to)`, cut wherever it or the price changes.
fn reserved_pieces(
    n: &NamespaceMonth,
    resource: Resource,
    (from, to): Span,
    versions: &[(Span, &Version)],
) -> Vec<(Span, i128)> {
    let to = n.until.map_or(to, |u| u.min(to));
    if to <= from {
        return Vec::new();
    }
    let cuts = cuts(
        n.quota
            .iter()
            .map(|p| p.at)
            .chain(versions.iter().map(|((a, _), _)| *a)),
        from,
        to,
    );
    let held_at = |t: DateTime<Utc>| {
        n.quota
            .iter()
            .rev()
            .find(|p| p.at <= t)
            .map_or(0, |p| p.held(resource))
    };
    let version_at = |t: DateTime<Utc>| {
        versions
            .iter()
            .find(|((a, b), _)| *a <= t && t < *b)
            .map(|(_, v)| v.id)
    };
    let mut out: Vec<(Span, i64, Option<Uuid>)> = Vec::new();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let (held, version) = (held_at(a), version_at(a));
        match out.last_mut() {
            Some(((_, end), h, v)) if *h == held && *v == version => *end = b,
            _ => out.push(((a, b), held, version)),
        }
    }
    out.into_iter()
        .filter(|(_, held, _)| *held > 0)
        .map(|((a, b), held, _)| ((a, b), i128::from(held) * i128::from((b - a).num_seconds())))
        .collect()
}

/// Rates a tenant's month into lines: per namespace, per metric, per piece of the month.
pub fn rate(m: &Month<'_>) -> Result<Vec<Line>, RatingError> {
    let (month_start, month_end) = m.period;
    let pricing = Pricing {
        versions: m.versions,
        month_seconds: (month_end - month_start).num_seconds(),
    };
    let span = (month_start, m.until.min(month_end));
    let mut lines = Vec::new();
    if span.1 <= span.0 {
        return Ok(lines);
    }
    for n in m.namespaces {
        let held: &[Resource] = match m.plan {
            Plan::Reserved => &[
                Resource::Cpu,
                Resource::Memory,
                Resource::Storage,
                Resource::LoadBalancers,
            ],
            Plan::Usage => &[Resource::LoadBalancers],
        };
        for &r in held {
            for (piece, quantity) in reserved_pieces(n, r, span, m.versions) {
                lines.push(pricing.line(
                    &n.namespace,
                    reserved_metric(r),
                    r,
                    "",
                    Basis::Reserved,
                    piece,
                    quantity,
                    0,
                )?);
            }
        }
        // What the ledger measured, per version in force.
        let lived = |(a, b): Span| {
            let until = n.until.map_or(span.1, |u| u.min(span.1));
            overlap_seconds((a, b), (n.since, until))
        };
        for &((a, b), _) in m.versions {
            let (a, b) = (a.max(span.0), b.min(span.1));
            if b <= a {
                continue;
            }
            let hours: Vec<&UsageSum> = n
                .hours
                .iter()
                .filter(|h| {
                    let at = hour_start(h.from_hour);
                    at >= a && at < b
                })
                .collect();
            let sum = |f: fn(&UsageSum) -> i128| hours.iter().map(|h| f(h)).sum::<i128>();
            let requested_seconds = sum(|h| h.requested_seconds);
            let bound_seconds = sum(|h| h.bound_seconds);
            let life = i128::from(lived((a, b)));
            let unmetered =
                |metered: i128| i64::try_from((life - metered).max(0)).unwrap_or(i64::MAX);
            let mut measured: Vec<(&'static str, Resource, String, i128, i64)> = Vec::new();
            if m.plan == Plan::Usage {
                measured.push((
                    "cpu.allocated",
                    Resource::Cpu,
                    String::new(),
                    sum(|h| h.cpu_allocated),
                    unmetered(requested_seconds),
                ));
                measured.push((
                    "memory.allocated",
                    Resource::Memory,
                    String::new(),
                    sum(|h| h.memory_allocated),
                    unmetered(requested_seconds),
                ));
                measured.push((
                    "storage.bound",
                    Resource::Storage,
                    String::new(),
                    sum(|h| h.storage_bound),
                    unmetered(bound_seconds),
                ));
            }
            let mut gpus: BTreeMap<&str, i128> = BTreeMap::new();
            for h in &hours {
                for (model, q) in &h.gpu {
                    *gpus.entry(model.as_str()).or_default() += *q;
                }
            }
            for (model, q) in gpus {
                measured.push((
                    "gpu.requested",
                    Resource::Gpu,
                    model.to_string(),
                    q,
                    unmetered(requested_seconds),
                ));
            }
            for (metric, r, class, quantity, unmetered) in measured {
                if quantity == 0 && unmetered == 0 {
                    continue;
                }
                lines.push(pricing.line(
                    &n.namespace,
                    metric,
                    r,
                    &class,
                    Basis::Usage,
                    (a, b),
                    quantity,
                    unmetered,
                )?);
            }
        }
    }
    lines.sort_by(|x, y| {
        (&x.namespace, x.resource, x.metric, &x.class, x.start).cmp(&(
            &y.namespace,
            y.resource,
            y.metric,
            &y.class,
            y.start,
        ))
    });
    Ok(lines)
}

/// An invoice's money: the exact sum of its lines, VAT on it rounded once, and their sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub subtotal: Decimal,
    pub vat: Decimal,
    pub total: Decimal,
}

pub fn totals(amounts: &[Decimal], vat_rate: Decimal) -> Result<Totals, MoneyError> {
    let subtotal = money::total(amounts).ok_or(MoneyError::Overflow {
        quantity: 0,
        price: Decimal::ZERO,
    })?;
    let vat = money::vat(subtotal, vat_rate)?;
    Ok(Totals {
        subtotal,
        vat,
        total: subtotal + vat,
    })
}

/// The VAT rate in force at the end of a period (when the month's service is complete): the
/// latest of `rates` (in time order) taking effect before `end`.
pub fn vat_rate_at(rates: &[(DateTime<Utc>, Decimal)], end: DateTime<Utc>) -> Option<Decimal> {
    rates
        .iter()
        .rev()
        .find(|(at, _)| *at < end)
        .map(|(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use proptest::prelude::*;
    use std::str::FromStr;

    use crate::domain::period::month_range;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap_or_default()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_default()
    }

    fn prices(cpu: &str, memory: &str, storage: &str, lb: &str) -> Vec<Price> {
        [
            (Resource::Cpu, cpu),
            (Resource::Memory, memory),
            (Resource::Storage, storage),
            (Resource::LoadBalancers, lb),
        ]
        .into_iter()
        .map(|(resource, p)| Price {
            resource,
            class: String::new(),
            price: d(p),
            usage_price: None,
        })
        .collect()
    }

    fn version(n: i32, from: &str, p: Vec<Price>) -> Version {
        Version {
            id: Uuid::from_u128(n as u128),
            version: n,
            effective_from: at(from),
            prices: p,
        }
    }

    const GIB: i64 = 1 << 30;

    fn point(at_: &str, cpu: i64, mem_gib: i64, suspended: bool) -> QuotaPoint {
        QuotaPoint {
            at: at(at_),
            cpu_milli: cpu,
            memory_bytes: mem_gib * GIB,
            storage_bytes: 100 * GIB,
            load_balancers: 1,
            suspended,
        }
    }

    #[test]
    fn a_reserved_month_splits_at_a_quota_change_and_a_new_version() {
        let (start, end) = month_range("2026-11").unwrap_or_default();
        let v1 = version(
            1,
            "2026-01-01T00:00:00Z",
            prices("250", "30", "2000", "150000"),
        );
        let v2 = version(
            2,
            "2026-11-15T17:00:00Z",
            prices("300", "30", "2000", "150000"),
        );
        let platform = [v1, v2];
        let versions = versions_in(&platform, &[], start, end).unwrap_or_default();
        assert_eq!(versions.len(), 2);
        let ns = [NamespaceMonth {
            namespace: "a-prod".into(),
            since: at("2026-10-01T00:00:00Z"),
            until: None,
            quota: vec![
                point("2026-10-01T00:00:00Z", 2000, 4, false),
                // 4 cores from the 11th (local midnight), suspended from the 21st
                point("2026-11-10T17:00:00Z", 4000, 4, false),
                point("2026-11-20T17:00:00Z", 4000, 4, true),
            ],
            hours: vec![],
        }];
        let lines = rate(&Month {
            plan: Plan::Reserved,
            period: (start, end),
            until: end,
            namespaces: &ns,
            versions: &versions,
        })
        .unwrap_or_default();
        let cpu: Vec<&Line> = lines
            .iter()
            .filter(|l| l.metric == "cpu.reserved")
            .collect();
        // 2 cores 10 days at 250; 4 cores 5 days at 250; 4 cores 5 days at 300
        assert_eq!(cpu.len(), 3, "{cpu:#?}");
        assert_eq!(cpu[0].amount, d("120000"));
        assert_eq!(cpu[1].amount, d("120000"));
        assert_eq!(cpu[2].amount, d("144000"));
        assert_eq!(cpu[2].version, 2);
        // memory does not split at the cpu change, only at the version: 4 GiB × 20 days
        let mem: Vec<&Line> = lines
            .iter()
            .filter(|l| l.metric == "memory.reserved")
            .collect();
        assert_eq!(mem.len(), 2);
        assert_eq!(mem[0].end, at("2026-11-15T17:00:00Z"));
        assert_eq!(mem[1].end, at("2026-11-20T17:00:00Z"));
        // nothing is held while suspended
        assert!(lines.iter().all(|l| l.end <= at("2026-11-20T17:00:00Z")));
        assert!(lines.iter().all(|l| l.unmetered_seconds == 0));
    }

    #[test]
    fn a_usage_month_charges_the_ledger_and_states_unmetered_time() {
        let (start, end) = month_range("2026-11").unwrap_or_default();
        let mut p = prices("250", "30", "2000", "150000");
        p[0].usage_price = Some(d("400"));
        p.push(Price {
            resource: Resource::Gpu,
            class: "nvidia.com/gpu".into(),
            price: d("50000"),
            usage_price: None,
        });
        let platform = [version(1, "2026-01-01T00:00:00Z", p)];
        let versions = versions_in(&platform, &[], start, end).unwrap_or_default();
        let first = crate::domain::period::hour_of(start);
        let hours: Vec<UsageSum> = (0..10)
            .map(|i| UsageSum {
                from_hour: first + i,
                cpu_allocated: 500 * 3600,
                memory_allocated: i128::from(GIB) * 3600,
                storage_bound: 0,
                requested_seconds: 3600,
                bound_seconds: 3600,
                gpu: vec![("nvidia.com/gpu".into(), 3600)],
            })
            .collect();
        let ns = [NamespaceMonth {
            namespace: "b-prod".into(),
            since: start,
            until: Some(start + Duration::hours(20)),
            quota: vec![point("2026-10-01T00:00:00Z", 2000, 4, false)],
            hours,
        }];
        let lines = rate(&Month {
            plan: Plan::Usage,
            period: (start, end),
            until: end,
            namespaces: &ns,
            versions: &versions,
        })
        .unwrap_or_default();
        let by = |m: &str| lines.iter().find(|l| l.metric == m).cloned();
        let cpu = by("cpu.allocated").unwrap_or_else(|| panic!("{lines:#?}"));
        // half a core for 10 hours at the usage price 400: 2,000 đồng; 10 of 20 hours unmetered
        assert_eq!(cpu.amount, d("2000"));
        assert_eq!(cpu.unmetered_seconds, 10 * 3600);
        assert_eq!(cpu.basis, Basis::Usage);
        assert_eq!(by("gpu.requested").map(|l| l.amount), Some(d("500000")));
        // the load balancer is charged as held for the 20 hours the namespace lived
        let lb = by("loadbalancers.reserved").unwrap_or_else(|| panic!("{lines:#?}"));
        assert_eq!(lb.quantity, 20 * 3600);
        assert_eq!(lb.basis, Basis::Reserved);
        assert!(by("cpu.reserved").is_none());
    }

    #[test]
    fn an_organization_card_wins_where_it_is_in_force_and_gaps_are_errors() {
        let platform = [version(
            1,
            "2026-01-01T00:00:00Z",
            prices("1", "1", "1", "1"),
        )];
        let org = [version(
            7,
            "2026-11-10T17:00:00Z",
            prices("2", "2", "2", "2"),
        )];
        let (start, end) = month_range("2026-11").unwrap_or_default();
        let v = versions_in(&platform, &org, start, end).unwrap_or_default();
        assert_eq!(v.iter().map(|(_, v)| v.version).collect::<Vec<_>>(), [1, 7]);
        assert_eq!(v[0].0.1, at("2026-11-10T17:00:00Z"));
        let late = [version(
            1,
            "2026-11-02T00:00:00Z",
            prices("1", "1", "1", "1"),
        )];
        assert_eq!(
            versions_in(&late, &[], start, end).map(|v| v.len()),
            Err(RatingError::NoRateCard(start))
        );
    }

    #[test]
    fn prices_are_checked() {
        assert!(check_prices(&prices("1", "1", "1", "1")).is_empty());
        let mut p = prices("-1", "1", "1", "1");
        p.pop();
        p.push(Price {
            resource: Resource::Gpu,
            class: String::new(),
            price: d("1"),
            usage_price: Some(d("0.0000001")),
        });
        let fields: Vec<String> = check_prices(&p).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "prices[0].price",
                "prices[3].class",
                "prices[3].usagePrice",
                "prices"
            ]
        );
    }

    #[test]
    fn vat_is_the_rate_in_force_at_the_end_of_the_period() {
        let rates = [
            (at("2025-01-01T00:00:00Z"), d("0.10")),
            (at("2026-11-30T17:00:00Z"), d("0.08")),
        ];
        let (_, end) = month_range("2026-11").unwrap_or_default();
        assert_eq!(vat_rate_at(&rates, end), Some(d("0.10")));
        assert_eq!(
            vat_rate_at(&rates, end + Duration::days(31)),
            Some(d("0.08"))
        );
        assert_eq!(vat_rate_at(&rates[1..], end), None);
    }

    /// Hours summed the way the database sums them: per piece of `starts`, like
    /// `width_bucket(hour, starts)`.
    fn summed(hours: &[UsageSum], starts: &[i64]) -> Vec<UsageSum> {
        let mut out: Vec<(usize, UsageSum)> = Vec::new();
        for h in hours {
            let piece = starts.partition_point(|s| *s <= h.from_hour);
            let i = match out.iter().position(|(p, _)| *p == piece) {
                Some(i) => i,
                None => {
                    out.push((
                        piece,
                        UsageSum {
                            from_hour: h.from_hour,
                            ..UsageSum::default()
                        },
                    ));
                    out.len() - 1
                }
            };
            let s = &mut out[i].1;
            s.from_hour = s.from_hour.min(h.from_hour);
            s.cpu_allocated += h.cpu_allocated;
            s.memory_allocated += h.memory_allocated;
            s.storage_bound += h.storage_bound;
            s.requested_seconds += h.requested_seconds;
            s.bound_seconds += h.bound_seconds;
            for (model, q) in &h.gpu {
                match s.gpu.iter_mut().find(|(m, _)| m == model) {
                    Some((_, total)) => *total += q,
                    None => s.gpu.push((model.clone(), *q)),
                }
            }
        }
        out.into_iter().map(|(_, s)| s).collect()
    }

    #[test]
    fn pieces_start_at_the_first_hour_beginning_at_or_after_each_instant() {
        let h = |n: i64| hour_start(n);
        let starts = piece_starts(
            [h(12), h(15) + Duration::seconds(1), h(3), h(40), h(12)].into_iter(),
            10,
            20,
        );
        // 3 and 40 lie outside the month's hours; 15:00:01 starts a piece at 16; once each
        assert_eq!(starts, [10, 12, 16]);
    }

    proptest! {
        /// Rating the ledger summed in pieces (as the database sums it: the hours before
        /// `rated_hours_end`, cut where versions start) gives exactly the lines of rating every
        /// hour one by one, wherever versions start and however far the month is rated.
        #[test]
        fn summed_pieces_rate_exactly_as_hour_by_hour(
            ledger in prop::collection::vec((0i64..720, 0i64..4_000_000, 0i64..3_600, any::<bool>()), 0..60),
            version_seconds in prop::collection::vec(1i64..(30 * 24 * 3600), 0..3),
            until_seconds in 1i64..(30 * 24 * 3600 + 1),
        ) {
            let (start, end) = month_range("2026-11").unwrap_or_default();
            let mut p = prices("250", "30", "2000", "150000");
            p[0].usage_price = Some(d("400"));
            p.push(Price { resource: Resource::Gpu, class: "nvidia.com/gpu".into(), price: d("50000"), usage_price: None });
            let mut platform = vec![version(1, "2026-01-01T00:00:00Z", p.clone())];
            let mut seconds = version_seconds.clone();
            seconds.sort_unstable();
            seconds.dedup();
            for (i, s) in seconds.iter().enumerate() {
                let mut v = version(i as i32 + 2, "2026-01-01T00:00:00Z", p.clone());
                v.effective_from = start + Duration::seconds(*s);
                platform.push(v);
            }
            let until = start + Duration::seconds(until_seconds);
            let first = crate::domain::period::hour_of(start);
            let mut hours: Vec<UsageSum> = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            for (h, cpu, secs, gpu) in &ledger {
                if !seen.insert(*h) {
                    continue;
                }
                hours.push(UsageSum {
                    from_hour: first + h,
                    cpu_allocated: i128::from(*cpu) * 3600,
                    memory_allocated: i128::from(*cpu) * 1_000_000,
                    storage_bound: i128::from(*secs) * 1_000,
                    requested_seconds: i128::from(*secs),
                    bound_seconds: i128::from(3_600 - secs),
                    gpu: if *gpu { vec![("nvidia.com/gpu".into(), i128::from(*secs))] } else { vec![] },
                });
            }
            hours.sort_by_key(|h| h.from_hour);
            let versions = versions_in(&platform, &[], start, until.min(end));
            prop_assert!(versions.is_ok());
            let versions = versions.unwrap_or_default();
            let to = rated_hours_end(until, first, crate::domain::period::hour_of(end));
            let starts = piece_starts(platform.iter().map(|v| v.effective_from), first, to);
            let read: Vec<UsageSum> = hours.iter().filter(|h| h.from_hour < to).cloned().collect();
            let quota = vec![point("2026-10-01T00:00:00Z", 1000, 1, false)];
            let month = |hours: Vec<UsageSum>| {
                let ns = [NamespaceMonth { namespace: "n".into(), since: start, until: None, quota: quota.clone(), hours }];
                rate(&Month { plan: Plan::Usage, period: (start, end), until, namespaces: &ns, versions: &versions })
            };
            let by_hour = month(hours.clone());
            let by_piece = month(summed(&read, &starts));
            prop_assert!(by_hour.is_ok());
            prop_assert_eq!(by_hour, by_piece);
        }

        /// However a month is cut by quota changes and new versions, its lines add up to the
        /// whole within a đồng per line, are never negative, and the total is the lines' sum
        /// plus VAT.
        #[test]
        fn lines_add_up_to_the_unsplit_month(
            changes in prop::collection::vec((1i64..(30 * 24), 0i64..64_000, any::<bool>()), 0..6),
            version_hours in prop::collection::vec(1i64..(30 * 24), 0..3),
            cpu_price in 0u32..100_000,
        ) {
            let (start, end) = month_range("2026-11").unwrap_or_default();
            let price = Decimal::new(i64::from(cpu_price), 1);
            let mut platform = vec![version(1, "2026-01-01T00:00:00Z", prices(&price.to_string(), "0", "0", "0"))];
            let mut hours = version_hours.clone();
            hours.sort_unstable();
            hours.dedup();
            for (i, h) in hours.iter().enumerate() {
                let mut v = version(i as i32 + 2, "2026-01-01T00:00:00Z", prices(&price.to_string(), "0", "0", "0"));
                v.effective_from = start + Duration::hours(*h);
                platform.push(v);
            }
            let mut quota = vec![point("2026-10-01T00:00:00Z", 1000, 0, false)];
            let mut sorted = changes.clone();
            sorted.sort_by_key(|c| c.0);
            for (h, cpu, suspended) in &sorted {
                let mut p = point("2026-10-01T00:00:00Z", *cpu, 0, *suspended);
                p.at = start + Duration::hours(*h);
                quota.push(p);
            }
            quota.sort_by_key(|p| p.at);
            let ns = [NamespaceMonth { namespace: "n".into(), since: start, until: None, quota: quota.clone(), hours: vec![] }];
            let versions = versions_in(&platform, &[], start, end);
            prop_assert!(versions.is_ok());
            let versions = versions.unwrap_or_default();
            let lines = rate(&Month { plan: Plan::Reserved, period: (start, end), until: end, namespaces: &ns, versions: &versions });
            prop_assert!(lines.is_ok());
            let lines: Vec<Line> = lines.unwrap_or_default().into_iter().filter(|l| l.metric == "cpu.reserved").collect();
            let exact: i128 = crate::domain::period::integrate(
                &quota.iter().map(|p| (p.at, if p.suspended { 0 } else { p.cpu_milli })).collect::<Vec<_>>(),
                start,
                end,
            );
            prop_assert_eq!(lines.iter().map(|l| l.quantity).sum::<i128>(), exact);
            let whole = money::line_amount(exact, PriceUnit::CoreHour, price);
            prop_assert!(whole.is_ok());
            let whole = whole.unwrap_or_default();
            let amounts: Vec<Decimal> = lines.iter().map(|l| l.amount).collect();
            let sum: Decimal = amounts.iter().sum();
            let n = Decimal::from(lines.len().max(1));
            prop_assert!((sum - whole).abs() <= n, "{sum} vs {whole} over {n} lines");
            prop_assert!(lines.iter().all(|l| !l.amount.is_sign_negative() || l.amount.is_zero()));
            prop_assert!(lines.iter().all(|l| l.amount.fract().is_zero()));
            let t = totals(&amounts, d("0.08"));
            prop_assert!(t.is_ok());
            let t = t.unwrap_or(Totals { subtotal: Decimal::ZERO, vat: Decimal::ZERO, total: Decimal::ZERO });
            prop_assert_eq!(t.subtotal, sum);
            prop_assert_eq!(t.total, t.subtotal + t.vat);
            // the pieces tile the time something was held, without overlap
            for w in lines.windows(2) {
                prop_assert!(w[0].end <= w[1].start);
            }
        }
    }
}
