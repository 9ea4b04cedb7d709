//! The rules of ingesting metering samples: what makes a batch bad (refused whole, nothing
//! stored), and how a window's stored samples meet new ones (accepted, duplicate, or refused
//! as contradicting).

use std::collections::btree_map::Entry;
use std::collections::hash_map::Entry as HashEntry;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use govcloud_tenant::usage::{Batch, MAX_SAMPLES_PER_BATCH, Metric, valid_window_seconds};

use crate::domain::field::FieldError;

/// The shortest window a batch may use.
pub const MIN_WINDOW_SECONDS: u32 = 10;
/// How far ahead of the API's clock a window may end (clock skew between the two).
pub const CLOCK_SKEW_SECONDS: i64 = 5;
/// The most field errors one refusal lists.
const MAX_ERRORS: usize = 20;

/// How many scalar metrics a window row holds: every metric but `gpu.requested` (kept per
/// resource), in [`Metric::ALL`] order, which is the row's column order.
pub const SCALARS: usize = Metric::ALL.len() - 1;

fn column(metric: Metric) -> Option<usize> {
    Metric::ALL
        .iter()
        .position(|m| *m == metric)
        .filter(|i| *i < SCALARS)
}

/// The largest quantity one window may carry: an hour of such windows still fits a 64-bit
/// integer, so no sum in the ledger overflows.
pub fn max_quantity(window_seconds: u32) -> i64 {
    let per_hour = i64::from(3600 / window_seconds.clamp(1, 3600));
    i64::MAX / per_hour
}

/// A resource name as Kubernetes spells an extended resource (`nvidia.com/gpu`).
fn valid_resource(name: &str) -> bool {
    let Some((domain, rest)) = name.split_once('/') else {
        return false;
    };
    let ok = |s: &str, extra: &[char]| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(&c))
    };
    name.len() <= 253 && ok(domain, &['-', '.']) && ok(rest, &['-', '.', '_'])
}

/// One namespace and window's samples as a row: one value per scalar metric (none: not
/// metered) and the GPU resources' values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowRow {
    pub values: [Option<i64>; SCALARS],
    /// `None` until a `gpu.requested` sample arrives for the window.
    pub gpu: Option<BTreeMap<String, i64>>,
}

/// Where a sample goes, once its tenant and namespace are known to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WindowKey<N> {
    pub namespace: N,
    pub window_start: DateTime<Utc>,
}

/// How a sample met what was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meeting {
    Accepted,
    Duplicate,
    Contradicts,
}

impl WindowRow {
    /// Adds one sample, reporting how it met what the row held.
    pub fn add(&mut self, metric: Metric, resource: Option<&str>, quantity: i64) -> Meeting {
        let slot = match column(metric) {
            Some(i) => &mut self.values[i],
            None => {
                let gpu = self.gpu.get_or_insert_with(BTreeMap::new);
                match gpu.entry(resource.unwrap_or_default().to_string()) {
                    Entry::Vacant(v) => {
                        v.insert(quantity);
                        return Meeting::Accepted;
                    }
                    Entry::Occupied(o) if *o.get() == quantity => return Meeting::Duplicate,
                    Entry::Occupied(_) => return Meeting::Contradicts,
                }
            }
        };
        match *slot {
            None => {
                *slot = Some(quantity);
                Meeting::Accepted
            }
            Some(q) if q == quantity => Meeting::Duplicate,
            Some(_) => Meeting::Contradicts,
        }
    }
}

/// Checks a batch as a whole: any error refuses all of it. The samples' tenants and namespaces
/// are checked against the database afterwards.
pub fn check_batch(batch: &Batch, now: DateTime<Utc>) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let w = batch.window_seconds;
    if !valid_window_seconds(w) || w < MIN_WINDOW_SECONDS {
        errors.push(FieldError::new(
            "windowSeconds",
            format!("must divide 3600 and be at least {MIN_WINDOW_SECONDS}"),
        ));
        return Err(errors);
    }
    if batch.samples.len() > MAX_SAMPLES_PER_BATCH {
        errors.push(FieldError::new(
            "samples",
            format!(
                "a batch carries at most {MAX_SAMPLES_PER_BATCH} samples; this one has {}: split it",
                batch.samples.len()
            ),
        ));
        return Err(errors);
    }
    let max = max_quantity(w);
    let latest_end = now.timestamp() + CLOCK_SKEW_SECONDS;
    // Each key's first sample: its index and quantity.
    let mut seen: HashMap<SampleKey<'_>, (usize, i64)> =
        HashMap::with_capacity(batch.samples.len());
    for (i, s) in batch.samples.iter().enumerate() {
        if errors.len() >= MAX_ERRORS {
            break;
        }
        let at = |f: &str| format!("samples[{i}].{f}");
        for (field, value) in [("tenant", &s.tenant), ("namespace", &s.namespace)] {
            if value.is_empty() || value.len() > 253 {
                errors.push(FieldError::new(at(field), "must be 1 to 253 characters"));
            }
        }
        let start = s.window_start.timestamp();
        if start.rem_euclid(i64::from(w)) != 0 || s.window_start.timestamp_subsec_nanos() != 0 {
            errors.push(FieldError::new(
                at("windowStart"),
                format!("must be aligned to the window: a whole multiple of {w} s since 1970-01-01T00:00Z"),
            ));
        } else if start + i64::from(w) > latest_end {
            errors.push(FieldError::new(
                at("windowStart"),
                format!("the window ends in the future (the API's clock says {now})"),
            ));
        }
        if s.quantity < 0 {
            errors.push(FieldError::new(at("quantity"), "must not be negative"));
        } else if s.quantity > max {
            errors.push(FieldError::new(
                at("quantity"),
                format!("is larger than any {w} s window can hold ({max} at most)"),
            ));
        }
        match (s.metric, s.resource.as_deref()) {
            (Metric::GpuRequested, Some(r)) if valid_resource(r) => {}
            (Metric::GpuRequested, _) => errors.push(FieldError::new(
                at("resource"),
                "gpu.requested needs the extended resource's name, as `nvidia.com/gpu`",
            )),
            (_, Some(_)) => errors.push(FieldError::new(
                at("resource"),
                "only gpu.requested names a resource",
            )),
            (_, None) => {}
        }
        let key = (
            s.tenant.as_str(),
            s.namespace.as_str(),
            s.metric,
            s.resource.as_deref(),
            s.window_start,
        );
        match seen.entry(key) {
            HashEntry::Vacant(v) => {
                v.insert((i, s.quantity));
            }
            HashEntry::Occupied(o) if o.get().1 != s.quantity => errors.push(FieldError::new(
                at("quantity"),
                format!(
                    "contradicts samples[{}], which has the same key and another quantity",
                    o.get().0
                ),
            )),
            HashEntry::Occupied(_) => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A sample's deterministic key: tenant, namespace, metric (and resource), window start.
type SampleKey<'a> = (&'a str, &'a str, Metric, Option<&'a str>, DateTime<Utc>);

/// A refused sample's reason, as the batch's outcome counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RefusalReason {
    /// Another quantity is stored under the same key.
    Contradicts,
    /// The window's hour is rolled up and closed.
    Late,
    /// The namespace's hour already holds windows of another length.
    WindowLength,
}

impl RefusalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Contradicts => "contradicts",
            RefusalReason::Late => "late",
            RefusalReason::WindowLength => "window-length",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use govcloud_tenant::usage::Sample;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_default()
    }

    fn sample(metric: Metric, start: &str, quantity: i64) -> Sample {
        Sample {
            tenant: "t".into(),
            namespace: "t-prod".into(),
            metric,
            resource: (metric == Metric::GpuRequested).then(|| "nvidia.com/gpu".into()),
            window_start: at(start),
            quantity,
        }
    }

    fn batch(samples: Vec<Sample>) -> Batch {
        Batch {
            window_seconds: 60,
            samples,
        }
    }

    fn fields(r: Result<(), Vec<FieldError>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    const NOW: &str = "2026-11-25T10:00:30Z";

    #[test]
    fn a_good_batch_passes() {
        let b = batch(vec![
            sample(Metric::CpuRequested, "2026-11-25T09:59:00Z", 60_000),
            sample(Metric::GpuRequested, "2026-11-25T09:59:00Z", 60),
            // the same sample twice is a duplicate, not an error
            sample(Metric::CpuRequested, "2026-11-25T09:59:00Z", 60_000),
        ]);
        assert_eq!(check_batch(&b, at(NOW)), Ok(()));
    }

    #[test]
    fn each_bad_sample_is_named_by_its_path() {
        let mut no_gpu_name = sample(Metric::GpuRequested, "2026-11-25T09:58:00Z", 1);
        no_gpu_name.resource = None;
        let mut stray_resource = sample(Metric::CpuUsed, "2026-11-25T09:58:00Z", 1);
        stray_resource.resource = Some("nvidia.com/gpu".into());
        let b = batch(vec![
            sample(Metric::CpuRequested, "2026-11-25T09:58:30Z", 1),
            sample(Metric::CpuRequested, "2026-11-25T10:00:00Z", 1),
            sample(Metric::CpuRequested, "2026-11-25T09:58:00Z", -1),
            sample(Metric::CpuRequested, "2026-11-25T09:57:00Z", i64::MAX),
            no_gpu_name,
            stray_resource,
            sample(Metric::MemoryUsed, "2026-11-25T09:58:00Z", 5),
            sample(Metric::MemoryUsed, "2026-11-25T09:58:00Z", 6),
        ]);
        assert_eq!(
            fields(check_batch(&b, at(NOW))),
            [
                "samples[0].windowStart",
                "samples[1].windowStart",
                "samples[2].quantity",
                "samples[3].quantity",
                "samples[4].resource",
                "samples[5].resource",
                "samples[7].quantity",
            ]
        );
    }

    #[test]
    fn window_lengths_and_batch_sizes_are_bounded() {
        let mut b = batch(vec![]);
        b.window_seconds = 7;
        assert_eq!(fields(check_batch(&b, at(NOW))), ["windowSeconds"]);
        b.window_seconds = 5;
        assert_eq!(fields(check_batch(&b, at(NOW))), ["windowSeconds"]);
        let one = sample(Metric::CpuRequested, "2026-11-25T09:58:00Z", 1);
        let b = batch(vec![one; MAX_SAMPLES_PER_BATCH + 1]);
        assert_eq!(fields(check_batch(&b, at(NOW))), ["samples"]);
    }

    #[test]
    fn an_hour_of_the_largest_windows_fits_the_ledger() {
        for w in [10u32, 60, 600, 3600] {
            let hour = i128::from(max_quantity(w)) * i128::from(3600 / w);
            assert!(hour <= i128::from(i64::MAX));
        }
    }

    #[test]
    fn gpu_requested_is_the_one_metric_after_the_row_columns() {
        assert_eq!(Metric::ALL[SCALARS], Metric::GpuRequested);
        assert_eq!(column(Metric::StorageBound), Some(SCALARS - 1));
        assert_eq!(column(Metric::GpuRequested), None);
    }

    #[test]
    fn a_row_takes_each_metric_once() {
        let mut row = WindowRow::default();
        assert_eq!(row.add(Metric::CpuUsed, None, 5), Meeting::Accepted);
        assert_eq!(row.add(Metric::CpuUsed, None, 5), Meeting::Duplicate);
        assert_eq!(row.add(Metric::CpuUsed, None, 6), Meeting::Contradicts);
        assert_eq!(row.values[6], Some(5));
        assert_eq!(
            row.add(Metric::GpuRequested, Some("nvidia.com/gpu"), 60),
            Meeting::Accepted
        );
        assert_eq!(
            row.add(Metric::GpuRequested, Some("amd.com/gpu"), 60),
            Meeting::Accepted
        );
        assert_eq!(
            row.add(Metric::GpuRequested, Some("nvidia.com/gpu"), 61),
            Meeting::Contradicts
        );
        assert_eq!(row.gpu.map(|g| g.len()), Some(2));
    }

    #[test]
    fn extended_resource_names() {
        assert!(valid_resource("nvidia.com/gpu"));
        assert!(valid_resource("amd.com/gpu"));
        assert!(!valid_resource("gpu"));
        assert!(!valid_resource("Nvidia.com/GPU"));
        assert!(!valid_resource("/gpu"));
    }
}
