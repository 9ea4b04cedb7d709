//! Quotas as the database holds them: integers in base units (cpu in millicores, memory and
//! storage in bytes), parsed from and printed as Kubernetes quantities.

use govcloud_kube_values::quantity::{self, Format};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::capacity::Totals;
use crate::domain::field::FieldError;

const NANOS_PER_MILLI: i128 = 1_000_000;
const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// A namespace's quota in base units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Quota {
    pub cpu_milli: i64,
    pub memory_bytes: i64,
    pub storage_bytes: i64,
    pub pods: i32,
    pub load_balancers: i32,
}

/// A quota as people write it: Kubernetes quantities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaDoc {
    /// CPU cores: `8`, `500m`.
    #[schema(example = "8")]
    pub cpu: String,
    /// Memory: `32Gi`.
    #[schema(example = "32Gi")]
    pub memory: String,
    /// Persistent storage requested by volume claims: `200Gi`.
    #[schema(example = "200Gi")]
    pub storage: String,
    #[schema(minimum = 0, maximum = 100000)]
    pub pods: i32,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100)]
    pub load_balancers: i32,
}

/// A requested change: only the resources given change.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaPatchDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "16")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "64Gi")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 100000)]
    pub pods: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 100)]
    pub load_balancers: Option<i32>,
}

/// A parsed change: `None` leaves the resource as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuotaPatch {
    pub cpu_milli: Option<i64>,
    pub memory_bytes: Option<i64>,
    pub storage_bytes: Option<i64>,
    pub pods: Option<i32>,
    pub load_balancers: Option<i32>,
}

impl QuotaPatch {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The quota after this change.
    pub fn apply_to(&self, q: Quota) -> Quota {
        Quota {
            cpu_milli: self.cpu_milli.unwrap_or(q.cpu_milli),
            memory_bytes: self.memory_bytes.unwrap_or(q.memory_bytes),
            storage_bytes: self.storage_bytes.unwrap_or(q.storage_bytes),
            pods: self.pods.unwrap_or(q.pods),
            load_balancers: self.load_balancers.unwrap_or(q.load_balancers),
        }
    }
}

pub const MAX_PODS: i32 = 100_000;
pub const MAX_LOAD_BALANCERS: i32 = 100;

/// Parses a CPU quantity into whole millicores.
pub fn parse_cpu(s: &str) -> Result<i64, String> {
    let n = quantity::nanos(s).ok_or_else(|| format!("{s:?} is not a Kubernetes quantity"))?;
    if n < 0 {
        return Err("must not be negative".into());
    }
    if n % NANOS_PER_MILLI != 0 {
        return Err("CPU is counted in whole millicores (1m at the finest)".into());
    }
    i64::try_from(n / NANOS_PER_MILLI).map_err(|_| "is too large".into())
}

/// Parses a memory or storage quantity into whole bytes.
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let n = quantity::nanos(s).ok_or_else(|| format!("{s:?} is not a Kubernetes quantity"))?;
    if n < 0 {
        return Err("must not be negative".into());
    }
    if n % NANOS_PER_UNIT != 0 {
        return Err("must be a whole number of bytes".into());
    }
    i64::try_from(n / NANOS_PER_UNIT).map_err(|_| "is too large".into())
}

/// A CPU quantity in whole millicores, rounded down (a node's allocatable cpu); `None` when it
/// is not a quantity or too large.
pub fn cpu_milli_floor(s: &str) -> Option<i64> {
    i64::try_from(quantity::nanos(s)?.div_euclid(NANOS_PER_MILLI)).ok()
}

/// A memory quantity in whole bytes, rounded down.
pub fn bytes_floor(s: &str) -> Option<i64> {
    i64::try_from(quantity::nanos(s)?.div_euclid(NANOS_PER_UNIT)).ok()
}

pub fn format_cpu(milli: i64) -> String {
    format_cpu_total(milli.into())
}

pub fn format_bytes(bytes: i64) -> String {
    format_bytes_total(bytes.into())
}

/// A sum of millicores, which may be past what one quota holds: printed exactly.
pub fn format_cpu_total(milli: i128) -> String {
    match milli.checked_mul(NANOS_PER_MILLI) {
        Some(n) => quantity::format(n, Format::DecimalSi),
        None => format!("{milli}m"),
    }
}

/// A sum of bytes, which may be past what one quota holds: printed exactly.
pub fn format_bytes_total(bytes: i128) -> String {
    match bytes.checked_mul(NANOS_PER_UNIT) {
        Some(n) => quantity::format(n, Format::BinarySi),
        None => bytes.to_string(),
    }
}

fn count(field: String, v: i32, max: i32, errors: &mut Vec<FieldError>) {
    if !(0..=max).contains(&v) {
        errors.push(FieldError::new(
            field,
            format!("must be between 0 and {max}"),
        ));
    }
}

/// The parsed value, or `None` with the error recorded against `field`.
pub fn parsed<T>(field: String, r: Result<T, String>, errors: &mut Vec<FieldError>) -> Option<T> {
    r.map_err(|m| errors.push(FieldError::new(field, m))).ok()
}

impl QuotaDoc {
    /// Parses every field, collecting one error per bad field under `at`.
    pub fn parse(&self, at: &str, errors: &mut Vec<FieldError>) -> Option<Quota> {
        let cpu = parsed(format!("{at}.cpu"), parse_cpu(&self.cpu), errors);
        let memory = parsed(format!("{at}.memory"), parse_bytes(&self.memory), errors);
        let storage = parsed(format!("{at}.storage"), parse_bytes(&self.storage), errors);
        let before = errors.len();
        count(format!("{at}.pods"), self.pods, MAX_PODS, errors);
        count(
            format!("{at}.loadBalancers"),
            self.load_balancers,
            MAX_LOAD_BALANCERS,
            errors,
        );
        if errors.len() != before {
            return None;
        }
        Some(Quota {
            cpu_milli: cpu?,
            memory_bytes: memory?,
            storage_bytes: storage?,
            pods: self.pods,
            load_balancers: self.load_balancers,
        })
    }
}

impl From<Quota> for QuotaDoc {
    fn from(q: Quota) -> Self {
        Self {
            cpu: format_cpu(q.cpu_milli),
            memory: format_bytes(q.memory_bytes),
            storage: format_bytes(q.storage_bytes),
            pods: q.pods,
            load_balancers: q.load_balancers,
        }
    }
}

impl QuotaPatchDoc {
    pub fn parse(&self, at: &str, errors: &mut Vec<FieldError>) -> Option<QuotaPatch> {
        let before = errors.len();
        let cpu = self
            .cpu
            .as_deref()
            .and_then(|s| parsed(format!("{at}.cpu"), parse_cpu(s), errors));
        let memory = self
            .memory
            .as_deref()
            .and_then(|s| parsed(format!("{at}.memory"), parse_bytes(s), errors));
        let storage = self
            .storage
            .as_deref()
            .and_then(|s| parsed(format!("{at}.storage"), parse_bytes(s), errors));
        if let Some(p) = self.pods {
            count(format!("{at}.pods"), p, MAX_PODS, errors);
        }
        if let Some(l) = self.load_balancers {
            count(format!("{at}.loadBalancers"), l, MAX_LOAD_BALANCERS, errors);
        }
        if errors.len() != before {
            return None;
        }
        let patch = QuotaPatch {
            cpu_milli: cpu,
            memory_bytes: memory,
            storage_bytes: storage,
            pods: self.pods,
            load_balancers: self.load_balancers,
        };
        if patch.is_empty() {
            errors.push(FieldError::new(at, "name at least one resource to change"));
            return None;
        }
        Some(patch)
    }
}

impl From<QuotaPatch> for QuotaPatchDoc {
    fn from(p: QuotaPatch) -> Self {
        Self {
            cpu: p.cpu_milli.map(format_cpu),
            memory: p.memory_bytes.map(format_bytes),
            storage: p.storage_bytes.map(format_bytes),
            pods: p.pods,
            load_balancers: p.load_balancers,
        }
    }
}

/// Amounts of cpu, memory and storage, as Kubernetes quantities (an organization's allotment,
/// what it has reserved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Amounts {
    #[schema(example = "64")]
    pub cpu: String,
    #[schema(example = "256Gi")]
    pub memory: String,
    #[schema(example = "4Ti")]
    pub storage: String,
}

impl From<Totals> for Amounts {
    fn from(t: Totals) -> Self {
        Self {
            cpu: format_cpu_total(t.cpu_milli),
            memory: format_bytes_total(t.memory_bytes),
            storage: format_bytes_total(t.storage_bytes),
        }
    }
}

impl Amounts {
    pub fn parse(&self, at: &str, errors: &mut Vec<FieldError>) -> Option<Totals> {
        let cpu = parsed(format!("{at}.cpu"), parse_cpu(&self.cpu), errors);
        let memory = parsed(format!("{at}.memory"), parse_bytes(&self.memory), errors);
        let storage = parsed(format!("{at}.storage"), parse_bytes(&self.storage), errors);
        Some(Totals {
            cpu_milli: cpu?.into(),
            memory_bytes: memory?.into(),
            storage_bytes: storage?.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_round_trip_in_base_units() {
        assert_eq!(parse_cpu("8"), Ok(8000));
        assert_eq!(parse_cpu("500m"), Ok(500));
        assert_eq!(parse_cpu("1.5"), Ok(1500));
        assert_eq!(format_cpu(8000), "8");
        assert_eq!(format_cpu(2500), "2500m");
        assert_eq!(parse_bytes("32Gi"), Ok(32 << 30));
        assert_eq!(parse_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(format_bytes(32 << 30), "32Gi");
        assert_eq!(format_bytes(0), "0");
    }

    #[test]
    fn sums_past_one_quota_print_exactly() {
        let two_max = 2 * i128::from(i64::MAX);
        assert_eq!(format_bytes_total(two_max), two_max.to_string());
        assert_eq!(
            parse_bytes(&format_bytes_total(two_max)),
            Err("is too large".into())
        );
        assert_eq!(
            format_cpu_total(i128::from(i64::MAX) + 1),
            "9223372036854775808m"
        );
    }

    #[test]
    fn fractions_below_the_base_unit_and_negatives_are_refused() {
        assert!(parse_cpu("0.5m").is_err());
        assert!(parse_cpu("-1").is_err());
        assert!(parse_bytes("100m").is_err());
        assert!(parse_bytes("lots").is_err());
        assert!(
            parse_bytes("10E").is_err(),
            "ten exabytes do not fit a bigint of bytes"
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let doc = QuotaDoc {
            cpu: "x".into(),
            memory: "1Gi".into(),
            storage: "-1Gi".into(),
            pods: -1,
            load_balancers: 500,
        };
        let mut errors = Vec::new();
        assert_eq!(doc.parse("quota", &mut errors), None);
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "quota.cpu",
                "quota.storage",
                "quota.pods",
                "quota.loadBalancers"
            ]
        );
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let q = Quota {
            cpu_milli: 2000,
            memory_bytes: 1 << 30,
            storage_bytes: 10 << 30,
            pods: 10,
            load_balancers: 0,
        };
        let p = QuotaPatch {
            cpu_milli: Some(4000),
            ..Default::default()
        };
        assert_eq!(
            p.apply_to(q),
            Quota {
                cpu_milli: 4000,
                ..q
            }
        );
        let mut errors = Vec::new();
        assert_eq!(QuotaPatchDoc::default().parse("quota", &mut errors), None);
        assert_eq!(errors[0].field, "quota");
    }
}
