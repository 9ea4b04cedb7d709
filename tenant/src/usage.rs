//! The metering contract between the operator and the API: the metrics, their units, and the
//! batch of samples the operator posts to `POST /v1/usage/batches`.
//!
//! A sample is one metric of one tenant namespace over one window of the clock: its key is
//! (tenant, namespace, metric, window start) and its quantity is an integer in base units
//! integrated over the window (millicore-seconds, byte-seconds, count-seconds). Windows are
//! aligned to the clock: a window of `w` seconds starts at a multiple of `w` seconds since
//! 1970-01-01T00:00Z, and `w` divides an hour, so every window lies in one clock hour.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What is metered, per namespace and window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Metric {
    /// The ResourceQuota's hard `requests.cpu`.
    #[serde(rename = "cpu.reserved")]
    CpuReserved,
    /// The ResourceQuota's hard `requests.memory`.
    #[serde(rename = "memory.reserved")]
    MemoryReserved,
    /// The ResourceQuota's hard `requests.storage`.
    #[serde(rename = "storage.reserved")]
    StorageReserved,
    /// The ResourceQuota's hard `services.loadbalancers`.
    #[serde(rename = "loadbalancers.reserved")]
    LoadbalancersReserved,
    /// The CPU requests of the namespace's pods in phase Running.
    #[serde(rename = "cpu.requested")]
    CpuRequested,
    /// The memory requests of the namespace's pods in phase Running.
    #[serde(rename = "memory.requested")]
    MemoryRequested,
    /// CPU use as `metrics.k8s.io` reports it (absent where the cluster does not serve it).
    #[serde(rename = "cpu.used")]
    CpuUsed,
    /// Memory use (working set) as `metrics.k8s.io` reports it.
    #[serde(rename = "memory.used")]
    MemoryUsed,
    /// The capacity of the namespace's bound PersistentVolumeClaims.
    #[serde(rename = "storage.bound")]
    StorageBound,
    /// GPU requests of pods in phase Running, per extended resource name (`nvidia.com/gpu`).
    #[serde(rename = "gpu.requested")]
    GpuRequested,
}

impl Metric {
    pub const ALL: [Metric; 10] = [
        Metric::CpuReserved,
        Metric::MemoryReserved,
        Metric::StorageReserved,
        Metric::LoadbalancersReserved,
        Metric::CpuRequested,
        Metric::MemoryRequested,
        Metric::CpuUsed,
        Metric::MemoryUsed,
        Metric::StorageBound,
        Metric::GpuRequested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::CpuReserved => "cpu.reserved",
            Metric::MemoryReserved => "memory.reserved",
            Metric::StorageReserved => "storage.reserved",
            Metric::LoadbalancersReserved => "loadbalancers.reserved",
            Metric::CpuRequested => "cpu.requested",
            Metric::MemoryRequested => "memory.requested",
            Metric::CpuUsed => "cpu.used",
            Metric::MemoryUsed => "memory.used",
            Metric::StorageBound => "storage.bound",
            Metric::GpuRequested => "gpu.requested",
        }
    }

    /// The unit of the metric's quantities.
    pub fn unit(self) -> Unit {
        match self {
            Metric::CpuReserved | Metric::CpuRequested | Metric::CpuUsed => Unit::MillicoreSeconds,
            Metric::MemoryReserved
            | Metric::StorageReserved
            | Metric::MemoryRequested
            | Metric::MemoryUsed
            | Metric::StorageBound => Unit::ByteSeconds,
            Metric::LoadbalancersReserved | Metric::GpuRequested => Unit::CountSeconds,
        }
    }

    /// Whether the metric is a quota's hard (what the agency rents).
    pub fn is_reserved(self) -> bool {
        matches!(
            self,
            Metric::CpuReserved
                | Metric::MemoryReserved
                | Metric::StorageReserved
                | Metric::LoadbalancersReserved
        )
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Metric {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown metric {s:?}"))
    }
}

/// Base units of integrated quantities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    MillicoreSeconds,
    ByteSeconds,
    CountSeconds,
}

/// One metric of one namespace over one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sample {
    /// The Tenant's name.
    #[cfg_attr(feature = "openapi", schema(example = "demo-sotc"))]
    pub tenant: String,
    /// The namespace's name in Kubernetes.
    #[cfg_attr(feature = "openapi", schema(example = "demo-sotc-prod"))]
    pub namespace: String,
    pub metric: Metric,
    /// The extended resource a `gpu.requested` sample counts (`nvidia.com/gpu`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The window's start, aligned to the batch's window length.
    pub window_start: DateTime<Utc>,
    /// The integral over the window, in the metric's base unit.
    #[cfg_attr(feature = "openapi", schema(example = 30000))]
    pub quantity: i64,
}

/// What the operator posts: samples of windows of one length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Batch {
    /// The length of every window in the batch, in seconds; it divides 3600.
    #[cfg_attr(feature = "openapi", schema(example = 60))]
    pub window_seconds: u32,
    pub samples: Vec<Sample>,
}

/// What the API did with a batch's samples.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BatchOutcome {
    /// Stored now.
    pub accepted: u64,
    /// Already stored with the same quantity: nothing changed.
    pub duplicate: u64,
    /// Not stored: a different quantity was already stored under the same key, the window's
    /// hour is already closed, or the hour holds windows of another length.
    pub refused: u64,
    /// Why samples were refused, with how many for each reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<Refusals>,
}

/// Refused samples with one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Refusals {
    #[cfg_attr(feature = "openapi", schema(example = "contradicts"))]
    pub reason: String,
    pub count: u64,
}

/// The most samples one batch may carry.
pub const MAX_SAMPLES_PER_BATCH: usize = 50_000;

/// The start of the window of `window_seconds` that holds `t`.
pub fn window_start(t: DateTime<Utc>, window_seconds: u32) -> DateTime<Utc> {
    let w = i64::from(window_seconds.max(1));
    let secs = t.timestamp().div_euclid(w) * w;
    DateTime::from_timestamp(secs, 0).unwrap_or(t)
}

/// Whether a window length may be used: it divides an hour, so windows never cross one.
pub fn valid_window_seconds(window_seconds: u32) -> bool {
    (1..=3600).contains(&window_seconds) && 3600 % window_seconds == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn metric_names_round_trip_through_serde_and_from_str() {
        for m in Metric::ALL {
            let json = serde_json::to_string(&m).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", m.as_str()));
            assert_eq!(m.as_str().parse::<Metric>(), Ok(m));
        }
        assert!("cpu".parse::<Metric>().is_err());
    }

    #[test]
    fn windows_must_divide_an_hour() {
        assert!(valid_window_seconds(60));
        assert!(valid_window_seconds(10));
        assert!(valid_window_seconds(3600));
        assert!(!valid_window_seconds(0));
        assert!(!valid_window_seconds(7));
        assert!(!valid_window_seconds(7200));
    }

    proptest! {
        #[test]
        fn a_window_holds_its_instant_and_lies_in_one_hour(
            secs in 0i64..4_000_000_000,
            w in prop::sample::select(vec![1u32, 5, 10, 15, 30, 60, 120, 300, 600, 900, 3600]),
        ) {
            let t = DateTime::from_timestamp(secs, 0).unwrap_or_default();
            let start = window_start(t, w);
            prop_assert!(start <= t);
            prop_assert!(t.timestamp() - start.timestamp() < i64::from(w));
            prop_assert_eq!(start.timestamp() % i64::from(w), 0);
            prop_assert_eq!(start.timestamp() / 3600, (start.timestamp() + i64::from(w) - 1) / 3600);
            prop_assert_eq!(window_start(start, w), start);
        }
    }
}
