//! Whether a change of quotas fits: within the organization's allotment, and within the
//! cluster's allocatable capacity times the overcommit ratio. Pure: the callers read the
//! numbers, these functions judge them.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::domain::quota::{Quota, QuotaPatch, format_bytes_total, format_cpu_total};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Cpu,
    Memory,
    Storage,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Storage => "storage",
        })
    }
}

impl Resource {
    fn format(self, v: i128) -> String {
        match self {
            Self::Cpu => format_cpu_total(v),
            Self::Memory | Self::Storage => format_bytes_total(v),
        }
    }
}

/// Which limit a change would break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// The allotment of the named organization.
    Allotment(String),
    /// The cluster's allocatable capacity times the overcommit ratio.
    Cluster,
    /// The same, for the sum of every organization's allotment.
    ClusterAllotments,
    /// What the named organization's agencies already hold: an allotment may not go below it.
    Reserved(String),
}

impl Limit {
    pub fn slug(&self) -> &'static str {
        match self {
            Self::Allotment(_) => "over-allotment",
            Self::Cluster | Self::ClusterAllotments => "over-cluster-capacity",
            Self::Reserved(_) => "below-reserved",
        }
    }
}

/// A refused change: which resource, the total it would reach, the limit, and by how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub limit: Limit,
    pub resource: Resource,
    pub requested: String,
    pub limit_amount: String,
    pub over_by: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            resource,
            requested,
            limit_amount,
            over_by,
            ..
        } = self;
        match &self.limit {
            Limit::Allotment(org) => write!(
                f,
                "this would bring organization {org}'s {resource} quotas to {requested}, past its allotment of {limit_amount} by {over_by}"
            ),
            Limit::Cluster => write!(
                f,
                "this would bring the cluster's {resource} quotas to {requested}, past its allocatable capacity times the overcommit ratio ({limit_amount}) by {over_by}"
            ),
            Limit::ClusterAllotments => write!(
                f,
                "this would bring the organizations' {resource} allotments to {requested}, past the cluster's allocatable capacity times the overcommit ratio ({limit_amount}) by {over_by}"
            ),
            Limit::Reserved(org) => write!(
                f,
                "this would lower organization {org}'s {resource} allotment to {requested}, below the {limit_amount} its agencies already hold, by {over_by}"
            ),
        }
    }
}

/// Sums of quotas (or an allotment) in base units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub cpu_milli: i128,
    pub memory_bytes: i128,
    pub storage_bytes: i128,
}

impl Totals {
    pub fn of<'a>(quotas: impl IntoIterator<Item = &'a Quota>) -> Self {
        quotas.into_iter().fold(Self::default(), |t, q| Self {
            cpu_milli: t.cpu_milli + i128::from(q.cpu_milli),
            memory_bytes: t.memory_bytes + i128::from(q.memory_bytes),
            storage_bytes: t.storage_bytes + i128::from(q.storage_bytes),
        })
    }

    fn get(&self, r: Resource) -> i128 {
        match r {
            Resource::Cpu => self.cpu_milli,
            Resource::Memory => self.memory_bytes,
            Resource::Storage => self.storage_bytes,
        }
    }
}

/// Refuses a change that raises a resource past its limit. A change that lowers or keeps a
/// resource is never refused, even where the total is already past the limit (the limit may
/// have been lowered since).
fn check(
    limit: &Limit,
    resources: &[Resource],
    before: Totals,
    after: Totals,
    max: Totals,
) -> Result<(), Refusal> {
    for &r in resources {
        let (b, a, m) = (before.get(r), after.get(r), max.get(r));
        if a > b && a > m {
            return Err(Refusal {
                limit: limit.clone(),
                resource: r,
                requested: r.format(a),
                limit_amount: r.format(m),
                over_by: r.format(a - m),
            });
        }
    }
    Ok(())
}

/// Checks the organization's quotas before and after a change against its allotment.
pub fn check_allotment(
    organization: &str,
    before: Totals,
    after: Totals,
    allotment: Totals,
) -> Result<(), Refusal> {
    check(
        &Limit::Allotment(organization.to_string()),
        &[Resource::Cpu, Resource::Memory, Resource::Storage],
        before,
        after,
        allotment,
    )
}

/// Refuses an allotment below what the organization's agencies hold.
pub fn check_allotment_floor(
    organization: &str,
    new: Totals,
    reserved: Totals,
) -> Result<(), Refusal> {
    for r in [Resource::Cpu, Resource::Memory, Resource::Storage] {
        let (n, held) = (new.get(r), reserved.get(r));
        if n < held {
            return Err(Refusal {
                limit: Limit::Reserved(organization.to_string()),
                resource: r,
                requested: r.format(n),
                limit_amount: r.format(held),
                over_by: r.format(held - n),
            });
        }
    }
    Ok(())
}

/// Checks a new allotment for an organization: never below what its agencies hold (as they
/// will hold it once every approved change has taken effect), and the sum of every
/// organization's allotment within the cluster's allocatable capacity times the overcommit
/// ratio (cpu and memory; only a raise is refused there).
pub fn check_allotment_change(
    organization: &str,
    new: Totals,
    reserved: Totals,
    allotments_before: Totals,
    allotments_after: Totals,
    allocatable: Option<Totals>,
    overcommit: Overcommit,
) -> Result<(), Refusal> {
    check_allotment_floor(organization, new, reserved)?;
    let Some(allocatable) = allocatable else {
        return Ok(());
    };
    let max = Totals {
        cpu_milli: scaled(allocatable.cpu_milli, overcommit.cpu),
        memory_bytes: scaled(allocatable.memory_bytes, overcommit.memory),
        storage_bytes: i128::MAX,
    };
    check(
        &Limit::ClusterAllotments,
        &[Resource::Cpu, Resource::Memory],
        allotments_before,
        allotments_after,
        max,
    )
}

/// How far quotas may exceed what the nodes can hold (1 = not at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overcommit {
    pub cpu: Decimal,
    pub memory: Decimal,
}

impl Default for Overcommit {
    fn default() -> Self {
        Self {
            cpu: Decimal::ONE,
            memory: Decimal::ONE,
        }
    }
}

fn scaled(v: i128, ratio: Decimal) -> i128 {
    i64::try_from(v)
        .ok()
        .and_then(|v| Decimal::from(v).checked_mul(ratio))
        .and_then(|d| d.floor().to_i128())
        .unwrap_or(i128::MAX)
}

/// Checks all tenants' cpu and memory quotas before and after a change against the nodes'
/// allocatable capacity (`allocatable.storage_bytes` is ignored: volumes are not on nodes).
pub fn check_cluster(
    before: Totals,
    after: Totals,
    allocatable: Totals,
    overcommit: Overcommit,
) -> Result<(), Refusal> {
    let max = Totals {
        cpu_milli: scaled(allocatable.cpu_milli, overcommit.cpu),
        memory_bytes: scaled(allocatable.memory_bytes, overcommit.memory),
        storage_bytes: i128::MAX,
    };
    check(
        &Limit::Cluster,
        &[Resource::Cpu, Resource::Memory],
        before,
        after,
        max,
    )
}

/// A namespace, by tenant and short name.
pub type NamespaceKey = (String, String);

/// An approved change that has not taken effect yet.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub namespace: NamespaceKey,
    pub effective_from: DateTime<Utc>,
    pub patch: QuotaPatch,
}

/// The quotas once every scheduled change has taken effect, in date order: what approvals are
/// judged against, so two changes approved for next month cannot together break a limit.
pub fn project(
    current: &BTreeMap<NamespaceKey, Quota>,
    scheduled: &[Scheduled],
) -> BTreeMap<NamespaceKey, Quota> {
    let mut out = current.clone();
    let mut ordered: Vec<&Scheduled> = scheduled.iter().collect();
    ordered.sort_by_key(|s| s.effective_from);
    for s in ordered {
        if let Some(q) = out.get_mut(&s.namespace) {
            *q = s.patch.apply_to(*q);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(cpu: i128, mem: i128, storage: i128) -> Totals {
        Totals {
            cpu_milli: cpu,
            memory_bytes: mem,
            storage_bytes: storage,
        }
    }

    #[test]
    fn a_raise_past_the_allotment_is_refused_with_the_amount() {
        let r = check_allotment(
            "nghe-an",
            t(30_000, 0, 0),
            t(40_000, 0, 0),
            t(32_000, 1 << 40, 1 << 40),
        )
        .err()
        .unwrap_or_else(|| panic!("expected a refusal"));
        assert_eq!(r.resource, Resource::Cpu);
        assert_eq!(r.requested, "40");
        assert_eq!(r.limit_amount, "32");
        assert_eq!(r.over_by, "8");
        assert_eq!(
            r.to_string(),
            "this would bring organization nghe-an's cpu quotas to 40, past its allotment of 32 by 8"
        );
    }

    #[test]
    fn memory_is_reported_in_binary_units() {
        let r = check_allotment("o", t(0, 0, 0), t(0, 40 << 30, 0), t(1, 32 << 30, 0))
            .err()
            .unwrap_or_else(|| panic!("expected a refusal"));
        assert_eq!((r.resource, r.over_by.as_str()), (Resource::Memory, "8Gi"));
    }

    #[test]
    fn lowering_is_never_refused_and_reaching_the_limit_exactly_is_allowed() {
        assert!(check_allotment("o", t(50, 0, 0), t(40, 0, 0), t(32, 0, 0)).is_ok());
        assert!(check_allotment("o", t(10, 0, 0), t(32, 0, 0), t(32, 0, 0)).is_ok());
    }

    #[test]
    fn the_cluster_limit_is_allocatable_times_the_ratio() {
        let over = Overcommit {
            cpu: Decimal::new(15, 1),
            memory: Decimal::ONE,
        };
        // 48 allocatable cores × 1.5 = 72 cores.
        let alloc = t(48_000, 192 << 30, 0);
        assert!(check_cluster(t(0, 0, 0), t(72_000, 0, 0), alloc, over).is_ok());
        let r = check_cluster(t(0, 0, 0), t(72_001, 0, 0), alloc, over)
            .err()
            .unwrap_or_else(|| panic!("expected a refusal"));
        assert_eq!(r.limit, Limit::Cluster);
        assert_eq!(r.over_by, "1m");
        assert!(check_cluster(t(0, 0, 0), t(0, 0, 1 << 50), alloc, over).is_ok());
    }

    #[test]
    fn an_allotment_never_goes_below_what_is_held_nor_past_the_cluster() {
        let over = Overcommit {
            cpu: Decimal::new(2, 0),
            memory: Decimal::ONE,
        };
        let alloc = Some(t(10_000, 100 << 30, 0));
        let held = t(4_000, 10 << 30, 1 << 40);
        // Lowering to exactly what is held is allowed; one millicore less is not.
        let ok = check_allotment_change(
            "o",
            t(4_000, 10 << 30, 1 << 40),
            held,
            t(8_000, 0, 0),
            t(4_000, 0, 0),
            alloc,
            over,
        );
        assert!(ok.is_ok());
        let r = check_allotment_change(
            "o",
            t(3_999, 10 << 30, 1 << 40),
            held,
            t(8_000, 0, 0),
            t(3_999, 0, 0),
            alloc,
            over,
        )
        .err()
        .unwrap_or_else(|| panic!("expected a refusal"));
        assert_eq!(
            (r.limit.slug(), r.resource, r.over_by.as_str()),
            ("below-reserved", Resource::Cpu, "1m")
        );
        assert_eq!(
            r.to_string(),
            "this would lower organization o's cpu allotment to 3999m, below the 4 its agencies already hold, by 1m"
        );
        // 10 cores × 2 = 20 cores for every organization's allotment together.
        let big = t(20_000, 10 << 30, 1 << 40);
        assert!(
            check_allotment_change("o", big, held, t(8_000, 0, 0), t(20_000, 0, 0), alloc, over)
                .is_ok()
        );
        let r =
            check_allotment_change("o", big, held, t(8_000, 0, 0), t(20_001, 0, 0), alloc, over)
                .err()
                .unwrap_or_else(|| panic!("expected a refusal"));
        assert_eq!(
            (r.limit, r.over_by.as_str()),
            (Limit::ClusterAllotments, "1m")
        );
        // Unknown capacity (no node seen): only the floor is checked.
        assert!(
            check_allotment_change("o", big, held, t(0, 0, 0), t(1 << 40, 0, 0), None, over)
                .is_ok()
        );
    }

    #[test]
    fn scheduled_changes_apply_in_date_order() {
        let key = ("a".to_string(), "prod".to_string());
        let current = BTreeMap::from([(key.clone(), Quota::default())]);
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap_or_else(|e| panic!("{e}"));
        let change = |cpu, when| Scheduled {
            namespace: key.clone(),
            effective_from: at(when),
            patch: QuotaPatch {
                cpu_milli: Some(cpu),
                ..Default::default()
            },
        };
        let later = change(1000, "2027-02-01T00:00:00Z");
        let sooner = change(9000, "2027-01-01T00:00:00Z");
        let p = project(&current, &[later, sooner]);
        assert_eq!(p[&key].cpu_milli, 1000);
    }
}
