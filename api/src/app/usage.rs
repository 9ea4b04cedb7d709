//! Reading the ledger: a tenant's usage in buckets, and an organization's utilisation for a
//! month (reserved vs requested vs used per tenant and namespace). Scoped like every read: a
//! tenant or organization the caller may not see is not found.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use govcloud_tenant::usage::{Metric, Unit};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::app::{AppError, AppResult, organizations, tenants};
use crate::db::usage::{self as ledger, HourRow, LedgerNamespace, QuotaPoint};
use crate::domain::period::{
    Granularity, TIME_ZONE, bucket_start, buckets, is_whole_hour, month_range, next_bucket,
};
use crate::domain::principal::{Caller, Role, Scope};
use crate::domain::rightsize;
use crate::domain::usage::{
    HourColumn, Lifetime, Measured, Summed, average, hour_column, hour_span, percent, sum_measured,
    sum_reserved,
};

/// What usage to read.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    pub tenant: String,
    pub namespace: Option<String>,
    pub metric: Option<Metric>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub granularity: Granularity,
}

/// One bucket of a series. Quantities are decimal strings: integrals of a month exceed what a
/// JSON number carries exactly.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageBucket {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[schema(example = "216000000")]
    pub quantity: String,
    pub metered_seconds: i64,
    pub unmetered_seconds: i64,
}

/// One metric of one namespace over the period.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageSeries {
    /// The namespace's name in Kubernetes.
    pub namespace: String,
    pub metric: Metric,
    /// The extended resource, for `gpu.requested`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    pub unit: Unit,
    pub buckets: Vec<UsageBucket>,
}

/// A tenant's usage.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub tenant: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub granularity: Granularity,
    /// Days and months are cut in this time zone.
    #[schema(example = "Asia/Ho_Chi_Minh")]
    pub time_zone: String,
    pub series: Vec<UsageSeries>,
}

fn bucket_views(summed: Vec<Summed>) -> Vec<UsageBucket> {
    summed
        .into_iter()
        .map(|s| UsageBucket {
            start: s.start,
            end: s.end,
            quantity: s.quantity.to_string(),
            metered_seconds: s.metered_seconds,
            unmetered_seconds: s.unmetered_seconds,
        })
        .collect()
}

fn lifetime(n: &LedgerNamespace, fallback: DateTime<Utc>) -> Lifetime {
    Lifetime {
        since: n.since.unwrap_or(fallback),
        until: n.until,
    }
}

fn hour_i32(h: i64) -> i32 {
    i32::try_from(h).unwrap_or(if h < 0 { i32::MIN } else { i32::MAX })
}

fn column(r: &HourRow, c: HourColumn) -> Measured {
    let (quantity, seconds) = match c {
        HourColumn::CpuRequested => (r.cpu_requested, r.requested_seconds),
        HourColumn::MemoryRequested => (r.memory_requested, r.requested_seconds),
        HourColumn::CpuUsed => (r.cpu_used, r.used_seconds),
        HourColumn::MemoryUsed => (r.memory_used, r.used_seconds),
        HourColumn::StorageBound => (r.storage_bound, r.bound_seconds),
    };
    Measured {
        hour: i64::from(r.hour),
        quantity,
        seconds: i64::from(seconds),
    }
}

fn reserved_points(points: &[&QuotaPoint], metric: Metric) -> Vec<(DateTime<Utc>, i64)> {
    points
        .iter()
        .map(|p| {
            let v = match metric {
                Metric::CpuReserved => p.cpu_milli,
                Metric::MemoryReserved => p.memory_bytes,
                Metric::StorageReserved => p.storage_bytes,
                _ => i64::from(p.load_balancers),
            };
            (p.effective_at, v)
        })
        .collect()
}

/// A tenant's usage in buckets.
pub async fn usage(state: &AppState, caller: &Caller, q: UsageQuery) -> AppResult<Usage> {
    let t = tenants::visible(state, caller, &q.tenant).await?;
    let now = Utc::now();
    let from = q
        .from
        .unwrap_or_else(|| bucket_start(now, Granularity::Month));
    let to = q
        .to
        .unwrap_or_else(|| next_bucket(bucket_start(now, Granularity::Hour), Granularity::Hour));
    let mut errors = Vec::new();
    for (field, at) in [("from", from), ("to", to)] {
        if !is_whole_hour(at) {
            errors.push(crate::domain::field::FieldError::new(
                field,
                "must be a whole hour (the ledger keeps hours)",
            ));
        }
    }
    if from >= to {
        errors.push(crate::domain::field::FieldError::new(
            "to",
            "must be after from",
        ));
    }
    AppError::check(errors)?;
    let cut = buckets(from, to, q.granularity).map_err(|m| AppError::invalid("granularity", m))?;

    let mut namespaces = ledger::ledger_namespaces(&state.db, &[t.tenant_id]).await?;
    if let Some(ns) = &q.namespace {
        namespaces.retain(|n| &n.kube_name == ns);
        if namespaces.is_empty() {
            return Err(AppError::not_found("namespace", ns.clone()));
        }
    }
    let ids: Vec<i32> = namespaces
        .iter()
        .filter_map(|n| n.metered_namespace_id)
        .collect();
    let (first, last) = hour_span(from, to);
    let hours = ledger::hours(&state.db, &ids, hour_i32(first), hour_i32(last)).await?;
    let gpu = ledger::gpu_hours(&state.db, &ids, hour_i32(first), hour_i32(last)).await?;
    let timeline = ledger::quota_timeline(&state.db, &[t.tenant_id], to).await?;

    let metrics: Vec<Metric> = match q.metric {
        Some(m) => vec![m],
        None => Metric::ALL.to_vec(),
    };
    let mut series = Vec::new();
    for n in &namespaces {
        let life = lifetime(n, t.created_at);
        let points: Vec<&QuotaPoint> = timeline
            .iter()
            .filter(|p| p.namespace == n.namespace)
            .collect();
        let mine: Vec<&HourRow> = hours
            .iter()
            .filter(|h| Some(h.metered_namespace_id) == n.metered_namespace_id)
            .collect();
        for &metric in &metrics {
            if metric.is_reserved() {
                series.push(UsageSeries {
                    namespace: n.kube_name.clone(),
                    metric,
                    resource: None,
                    unit: metric.unit(),
                    buckets: bucket_views(sum_reserved(
                        &reserved_points(&points, metric),
                        &cut,
                        life,
                        now,
                    )),
                });
            } else if let Some(c) = hour_column(metric) {
                let measured: Vec<Measured> = mine.iter().map(|r| column(r, c)).collect();
                series.push(UsageSeries {
                    namespace: n.kube_name.clone(),
                    metric,
                    resource: None,
                    unit: metric.unit(),
                    buckets: bucket_views(sum_measured(&measured, &cut, life, now)),
                });
            } else {
                // gpu.requested: one series per resource, metered as the hour's requests were.
                let mut by_resource: BTreeMap<&str, Vec<Measured>> = BTreeMap::new();
                for g in gpu
                    .iter()
                    .filter(|g| Some(g.metered_namespace_id) == n.metered_namespace_id)
                {
                    let seconds = mine
                        .iter()
                        .find(|h| h.hour == g.hour)
                        .map_or(0, |h| i64::from(h.requested_seconds));
                    by_resource.entry(&g.resource).or_default().push(Measured {
                        hour: i64::from(g.hour),
                        quantity: g.quantity,
                        seconds,
                    });
                }
                for (resource, measured) in by_resource {
                    series.push(UsageSeries {
                        namespace: n.kube_name.clone(),
                        metric,
                        resource: Some(resource.to_string()),
                        unit: metric.unit(),
                        buckets: bucket_views(sum_measured(&measured, &cut, life, now)),
                    });
                }
            }
        }
    }
    Ok(Usage {
        tenant: t.name,
        from,
        to,
        granularity: q.granularity,
        time_zone: TIME_ZONE.into(),
        series,
    })
}

/// Reserved, requested and used of one resource over the month, as integrals and as average
/// rates (millicores or bytes) over the seconds each was metered.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measure {
    pub reserved: String,
    pub requested: String,
    /// Absent where the cluster serves no `metrics.k8s.io`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<String>,
    pub average_reserved: String,
    pub average_requested: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average_used: Option<String>,
    /// Requested as a share of reserved, in percent (one decimal place).
    #[schema(value_type = Option<String>, example = "42.5")]
    pub requested_percent: Option<Decimal>,
    /// Used as a share of reserved, in percent.
    #[schema(value_type = Option<String>, example = "17.0")]
    pub used_percent: Option<Decimal>,
    /// The highest hourly average of use in the month (millicores or bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_used: Option<String>,
    /// What to reserve in the next monthly capacity window: the peak plus 30 % headroom, in
    /// whole steps (100 millicores, 128 MiB), compared with the namespace's quota now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<RightSize>,
    pub unit: Unit,
}

/// A right-sizing suggestion for one resource of a namespace.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RightSize {
    /// Millicores or bytes.
    pub reserve: String,
    /// The quota now, in the same unit.
    pub reserved_now: String,
    pub change: SizeChange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SizeChange {
    Keep,
    Lower,
    Raise,
}

impl From<rightsize::Change> for SizeChange {
    fn from(c: rightsize::Change) -> Self {
        match c {
            rightsize::Change::Keep => Self::Keep,
            rightsize::Change::Lower => Self::Lower,
            rightsize::Change::Raise => Self::Raise,
        }
    }
}

fn right_size(now: Option<i64>, peak: Option<i128>, step: i128) -> Option<RightSize> {
    let now = i128::from(now?);
    rightsize::suggest(now, peak, step).map(|s| RightSize {
        reserve: s.reserve.to_string(),
        reserved_now: now.to_string(),
        change: s.change.into(),
    })
}

/// Storage: reserved vs the capacity of bound claims.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageMeasure {
    pub reserved: String,
    pub bound: String,
    pub average_reserved: String,
    pub average_bound: String,
    #[schema(value_type = Option<String>, example = "60.0")]
    pub bound_percent: Option<Decimal>,
    pub unit: Unit,
}

/// One namespace's month.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceUtilisation {
    pub namespace: String,
    pub cpu: Measure,
    pub memory: Measure,
    pub storage: StorageMeasure,
    /// Seconds of the month the namespace existed (up to now).
    pub lifetime_seconds: i64,
    /// Seconds of it in which requests were metered, and in which use was.
    pub requested_metered_seconds: i64,
    pub used_metered_seconds: i64,
}

/// One tenant's month.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantUtilisation {
    pub tenant: String,
    pub namespaces: Vec<NamespaceUtilisation>,
}

/// An organization's month: what each agency rents, asks for and uses.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Utilisation {
    pub organization: String,
    #[schema(example = "2026-10")]
    pub month: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    #[schema(example = "Asia/Ho_Chi_Minh")]
    pub time_zone: String,
    pub tenants: Vec<TenantUtilisation>,
}

#[derive(Default)]
struct Sums {
    cpu_requested: i128,
    memory_requested: i128,
    cpu_used: i128,
    memory_used: i128,
    storage_bound: i128,
    requested_seconds: i64,
    used_seconds: i64,
    bound_seconds: i64,
    /// The highest hourly average use.
    cpu_peak: Option<i128>,
    memory_peak: Option<i128>,
}

/// One resource's figures for a namespace: reserved over its life, requested and used over the
/// seconds each was metered, the peak, and the quota now.
struct Figures {
    reserved: i128,
    life: i64,
    req: i128,
    req_s: i64,
    used: Option<(i128, i64)>,
    peak: Option<i128>,
    quota_now: Option<i64>,
    step: i128,
}

fn measure(f: Figures, unit: Unit) -> Measure {
    let Figures {
        reserved,
        life,
        req,
        req_s,
        used,
        peak,
        quota_now,
        step,
    } = f;
    Measure {
        peak_used: peak.map(|p| p.to_string()),
        suggestion: right_size(quota_now, peak, step),
        reserved: reserved.to_string(),
        requested: req.to_string(),
        used: used.map(|(u, _)| u.to_string()),
        average_reserved: average(reserved, life).to_string(),
        average_requested: average(req, req_s).to_string(),
        average_used: used.map(|(u, s)| average(u, s).to_string()),
        requested_percent: percent(average(req, req_s), average(reserved, life)),
        used_percent: used.and_then(|(u, s)| percent(average(u, s), average(reserved, life))),
        unit,
    }
}

/// An organization's utilisation for a month (`2026-10`). Tenant admins see only their own
/// tenant's rows.
pub async fn utilisation(
    state: &AppState,
    caller: &Caller,
    organization: &str,
    month: &str,
) -> AppResult<Utilisation> {
    let org = organizations::visible(state, caller, organization).await?;
    let (from, to) = month_range(month).map_err(|m| AppError::invalid("month", m))?;
    let now = Utc::now();
    let all = crate::db::tenants::in_organization(&state.db, org.organization_id).await?;
    let tenant_ids: Vec<Uuid> = all
        .into_iter()
        .filter(|(id, _)| caller.sees(Scope::tenant(org.organization_id, *id)))
        .filter(|_| caller.role != Role::Metering)
        .map(|(id, _)| id)
        .collect();
    let namespaces = ledger::ledger_namespaces(&state.db, &tenant_ids).await?;
    let ids: Vec<i32> = namespaces
        .iter()
        .filter_map(|n| n.metered_namespace_id)
        .collect();
    let (first, last) = hour_span(from, to);
    let mut sums: BTreeMap<i32, Sums> = BTreeMap::new();
    for h in ledger::hours(&state.db, &ids, hour_i32(first), hour_i32(last)).await? {
        let s = sums.entry(h.metered_namespace_id).or_default();
        s.cpu_requested += i128::from(h.cpu_requested);
        s.memory_requested += i128::from(h.memory_requested);
        s.cpu_used += i128::from(h.cpu_used);
        s.memory_used += i128::from(h.memory_used);
        s.storage_bound += i128::from(h.storage_bound);
        s.requested_seconds += i64::from(h.requested_seconds);
        s.used_seconds += i64::from(h.used_seconds);
        s.bound_seconds += i64::from(h.bound_seconds);
        if h.used_seconds > 0 {
            let secs = i128::from(h.used_seconds);
            let peak = |p: Option<i128>, v: i64| Some(p.unwrap_or(0).max(i128::from(v) / secs));
            s.cpu_peak = peak(s.cpu_peak, h.cpu_used);
            s.memory_peak = peak(s.memory_peak, h.memory_used);
        }
    }
    let timeline = ledger::quota_timeline(&state.db, &tenant_ids, to).await?;
    // One pass over an organization's timeline, not one per namespace.
    let mut by_namespace: HashMap<(Uuid, &str), Vec<&QuotaPoint>> = HashMap::new();
    for p in &timeline {
        by_namespace
            .entry((p.tenant_id, p.namespace.as_str()))
            .or_default()
            .push(p);
    }
    let mut tenants: BTreeMap<String, Vec<NamespaceUtilisation>> = BTreeMap::new();
    let empty = Sums::default();
    for n in &namespaces {
        let life = lifetime(n, from);
        let lived = life.seconds_in(from, to, now);
        let points = by_namespace
            .remove(&(n.tenant_id, n.namespace.as_str()))
            .unwrap_or_default();
        let reserved = |m: Metric| {
            sum_reserved(&reserved_points(&points, m), &[(from, to)], life, now)
                .first()
                .map_or(0, |s| s.quantity)
        };
        let s = n
            .metered_namespace_id
            .and_then(|id| sums.get(&id))
            .unwrap_or(&empty);
        let used = |u: i128| (s.used_seconds > 0).then_some((u, s.used_seconds));
        let storage_reserved = reserved(Metric::StorageReserved);
        let now_quota = points.last();
        tenants
            .entry(n.tenant.clone())
            .or_default()
            .push(NamespaceUtilisation {
                namespace: n.kube_name.clone(),
                cpu: measure(
                    Figures {
                        reserved: reserved(Metric::CpuReserved),
                        life: lived,
                        req: s.cpu_requested,
                        req_s: s.requested_seconds,
                        used: used(s.cpu_used),
                        peak: s.cpu_peak,
                        quota_now: now_quota.map(|p| p.cpu_milli),
                        step: rightsize::CPU_STEP_MILLI,
                    },
                    Unit::MillicoreSeconds,
                ),
                memory: measure(
                    Figures {
                        reserved: reserved(Metric::MemoryReserved),
                        life: lived,
                        req: s.memory_requested,
                        req_s: s.requested_seconds,
                        used: used(s.memory_used),
                        peak: s.memory_peak,
                        quota_now: now_quota.map(|p| p.memory_bytes),
                        step: rightsize::MEMORY_STEP_BYTES,
                    },
                    Unit::ByteSeconds,
                ),
                storage: StorageMeasure {
                    reserved: storage_reserved.to_string(),
                    bound: s.storage_bound.to_string(),
                    average_reserved: average(storage_reserved, lived).to_string(),
                    average_bound: average(s.storage_bound, s.bound_seconds).to_string(),
                    bound_percent: percent(
                        average(s.storage_bound, s.bound_seconds),
                        average(storage_reserved, lived),
                    ),
                    unit: Unit::ByteSeconds,
                },
                lifetime_seconds: lived,
                requested_metered_seconds: s.requested_seconds,
                used_metered_seconds: s.used_seconds,
            });
    }
    Ok(Utilisation {
        organization: org.name,
        month: month.to_string(),
        from,
        to,
        time_zone: TIME_ZONE.into(),
        tenants: tenants
            .into_iter()
            .map(|(tenant, namespaces)| TenantUtilisation { tenant, namespaces })
            .collect(),
    })
}
