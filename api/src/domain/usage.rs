//! Usage as reported: the ledger's hours summed into buckets, with the seconds metered and the
//! seconds that were not (a namespace's lifetime in the bucket, up to now, less what was
//! metered); reserved quantities integrated from the quota timeline, which is exact even where
//! no sample arrived.

use chrono::{DateTime, Duration, Utc};
use govcloud_tenant::usage::Metric;

use crate::domain::period::{hour_start, integrate, overlap_seconds};

/// One metric of one namespace-hour of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured {
    pub hour: i64,
    pub quantity: i64,
    pub seconds: i64,
}

/// A bucket's sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summed {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub quantity: i128,
    pub metered_seconds: i64,
    pub unmetered_seconds: i64,
}

/// When a namespace existed: from its first quota until it left (or now).
#[derive(Debug, Clone, Copy)]
pub struct Lifetime {
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
}

impl Lifetime {
    /// Seconds of `[start, end)` the namespace existed, up to `now`.
    pub fn seconds_in(&self, start: DateTime<Utc>, end: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
        let until = self.until.map_or(now, |u| u.min(now));
        overlap_seconds((start, end), (self.since, until))
    }
}

/// Sums sampled hours into buckets (the buckets hold whole hours).
pub fn sum_measured(
    hours: &[Measured],
    buckets: &[(DateTime<Utc>, DateTime<Utc>)],
    life: Lifetime,
    now: DateTime<Utc>,
) -> Vec<Summed> {
    buckets
        .iter()
        .map(|&(start, end)| {
            let mut quantity = 0i128;
            let mut metered = 0i64;
            for h in hours {
                let at = hour_start(h.hour);
                if at >= start && at < end {
                    quantity += i128::from(h.quantity);
                    metered += h.seconds;
                }
            }
            let lived = life.seconds_in(start, end, now);
            Summed {
                start,
                end,
                quantity,
                metered_seconds: metered,
                unmetered_seconds: (lived - metered).max(0),
            }
        })
        .collect()
}

/// Integrates a quota timeline into buckets: every second the namespace existed is metered.
pub fn sum_reserved(
    timeline: &[(DateTime<Utc>, i64)],
    buckets: &[(DateTime<Utc>, DateTime<Utc>)],
    life: Lifetime,
    now: DateTime<Utc>,
) -> Vec<Summed> {
    buckets
        .iter()
        .map(|&(start, end)| {
            let until = end.min(now).max(start);
            let quantity = match life.until {
                Some(gone) => integrate(timeline, start, until.min(gone.max(start))),
                None => integrate(timeline, start, until),
            };
            Summed {
                start,
                end,
                quantity,
                metered_seconds: life.seconds_in(start, end, now),
                unmetered_seconds: 0,
            }
        })
        .collect()
}

/// Which hour column a sampled metric reads; reserved metrics and GPUs are read elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HourColumn {
    CpuRequested,
    MemoryRequested,
    CpuUsed,
    MemoryUsed,
    StorageBound,
}

pub fn hour_column(metric: Metric) -> Option<HourColumn> {
    match metric {
        Metric::CpuRequested => Some(HourColumn::CpuRequested),
        Metric::MemoryRequested => Some(HourColumn::MemoryRequested),
        Metric::CpuUsed => Some(HourColumn::CpuUsed),
        Metric::MemoryUsed => Some(HourColumn::MemoryUsed),
        Metric::StorageBound => Some(HourColumn::StorageBound),
        _ => None,
    }
}

/// `part` as a percentage of `whole`, to one decimal place (none when `whole` is zero).
pub fn percent(part: i128, whole: i128) -> Option<rust_decimal::Decimal> {
    if whole == 0 {
        return None;
    }
    // Exact in integers first: tenths of a percent, rounded half up.
    let tenths = (part * 2000 + whole) / (whole * 2);
    let tenths = i64::try_from(tenths).ok()?;
    Some(rust_decimal::Decimal::new(tenths, 1))
}

/// The average rate of an integral over the seconds it covers, in base units (floor).
pub fn average(quantity: i128, seconds: i64) -> i128 {
    if seconds <= 0 {
        0
    } else {
        quantity / i128::from(seconds)
    }
}

/// The whole hours `[from, to)` covers, as ledger hour numbers.
pub fn hour_span(from: DateTime<Utc>, to: DateTime<Utc>) -> (i64, i64) {
    let first = from.timestamp().div_euclid(3600);
    let last = (to + Duration::seconds(3599)).timestamp().div_euclid(3600);
    (first, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn missing_hours_are_unmetered_and_time_before_the_namespace_is_not() {
        let since = at("2026-10-01T00:30:00Z");
        let now = at("2026-10-01T05:00:00Z");
        let life = Lifetime { since, until: None };
        let h0 = since.timestamp() / 3600;
        let hours = vec![
            // half of the first hour (the namespace came at :30), fully metered
            Measured {
                hour: h0,
                quantity: 1800 * 500,
                seconds: 1800,
            },
            // the next hour lost 10 minutes
            Measured {
                hour: h0 + 1,
                quantity: 3000 * 500,
                seconds: 3000,
            },
        ];
        let buckets = vec![
            (hour_start(h0), hour_start(h0 + 1)),
            (hour_start(h0 + 1), hour_start(h0 + 2)),
            (hour_start(h0 + 2), hour_start(h0 + 3)),
            (hour_start(h0 + 10), hour_start(h0 + 11)),
        ];
        let s = sum_measured(&hours, &buckets, life, now);
        assert_eq!(
            s.iter()
                .map(|b| (b.quantity, b.metered_seconds, b.unmetered_seconds))
                .collect::<Vec<_>>(),
            [
                (900_000, 1800, 0),
                (1_500_000, 3000, 600),
                (0, 0, 3600),
                // after now: neither metered nor unmetered yet
                (0, 0, 0),
            ]
        );
    }

    #[test]
    fn reserved_comes_from_the_timeline_even_without_samples() {
        let since = at("2026-10-01T00:00:00Z");
        let timeline = vec![(since, 2000), (at("2026-10-01T00:15:00Z"), 4000)];
        let life = Lifetime {
            since,
            until: Some(at("2026-10-01T00:45:00Z")),
        };
        let s = sum_reserved(
            &timeline,
            &[(since, at("2026-10-01T01:00:00Z"))],
            life,
            at("2026-10-02T00:00:00Z"),
        );
        assert_eq!(s[0].quantity, 2000 * 900 + 4000 * 1800);
        assert_eq!(s[0].metered_seconds, 2700);
        assert_eq!(s[0].unmetered_seconds, 0);
    }

    #[test]
    fn percentages_round_half_up_in_integers() {
        assert_eq!(percent(1, 3).map(|d| d.to_string()), Some("33.3".into()));
        assert_eq!(percent(2, 3).map(|d| d.to_string()), Some("66.7".into()));
        assert_eq!(percent(1, 2000).map(|d| d.to_string()), Some("0.1".into()));
        assert_eq!(percent(5, 0), None);
        assert_eq!(percent(3, 2).map(|d| d.to_string()), Some("150.0".into()));
    }

    proptest! {
        #[test]
        fn metered_and_unmetered_add_up_to_the_lifetime(
            offsets in prop::collection::vec((0i64..48, 0i64..=3600), 0..48),
            since in 0i64..(48 * 3600),
        ) {
            let base = at("2026-10-01T00:00:00Z");
            let h0 = base.timestamp() / 3600;
            let since = base + Duration::seconds(since);
            let mut hours: Vec<Measured> = Vec::new();
            for (h, secs) in offsets {
                if hours.iter().any(|m| m.hour == h0 + h) {
                    continue;
                }
                // an hour is metered only while the namespace existed
                let start = hour_start(h0 + h);
                let lived = overlap_seconds((start, start + Duration::hours(1)), (since, base + Duration::days(9)));
                hours.push(Measured { hour: h0 + h, quantity: secs, seconds: secs.min(lived) });
            }
            let now = base + Duration::hours(48);
            let buckets: Vec<_> = (0..48).map(|h| (hour_start(h0 + h), hour_start(h0 + h + 1))).collect();
            let life = Lifetime { since, until: None };
            let summed = sum_measured(&hours, &buckets, life, now);
            let total: i64 = summed.iter().map(|b| b.metered_seconds + b.unmetered_seconds).sum();
            prop_assert_eq!(total, (now - since).num_seconds());
        }
    }
}
