//! Periods of the ledger in Vietnam's time (Asia/Ho_Chi_Minh): hours, days and calendar months,
//! the buckets usage is reported in, and the pieces of piecewise-constant timelines that fall in
//! each.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Asia::Ho_Chi_Minh;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The time zone bills and reports are cut in.
pub const TIME_ZONE: &str = "Asia/Ho_Chi_Minh";

/// The most buckets one usage answer holds.
pub const MAX_BUCKETS: usize = 1000;

/// How usage is grouped in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Hour,
    #[default]
    Day,
    Month,
}

/// The ledger's hour number of an instant: whole hours since 1970-01-01T00:00Z.
pub fn hour_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(3600)
}

/// The instant an hour number starts.
pub fn hour_start(hour: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(hour.saturating_mul(3600), 0).unwrap_or_default()
}

fn local_midnight(date: NaiveDate) -> DateTime<Utc> {
    // Asia/Ho_Chi_Minh has had no daylight saving since 1975: midnight always exists once.
    Ho_Chi_Minh
        .from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| date.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// The start of the bucket of granularity `g` that holds `t`.
pub fn bucket_start(t: DateTime<Utc>, g: Granularity) -> DateTime<Utc> {
    let local = t.with_timezone(&Ho_Chi_Minh);
    match g {
        Granularity::Hour => hour_start(hour_of(t)),
        Granularity::Day => local_midnight(local.date_naive()),
        Granularity::Month => local_midnight(
            NaiveDate::from_ymd_opt(local.year(), local.month(), 1).unwrap_or(local.date_naive()),
        ),
    }
}

/// The start of the bucket after the one starting at `start`.
pub fn next_bucket(start: DateTime<Utc>, g: Granularity) -> DateTime<Utc> {
    match g {
        Granularity::Hour => start + Duration::hours(1),
        Granularity::Day => {
            let d = start.with_timezone(&Ho_Chi_Minh).date_naive();
            local_midnight(d.succ_opt().unwrap_or(d))
        }
        Granularity::Month => {
            let d = start.with_timezone(&Ho_Chi_Minh).date_naive();
            let (y, m) = if d.month() == 12 {
                (d.year() + 1, 1)
            } else {
                (d.year(), d.month() + 1)
            };
            local_midnight(NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(d))
        }
    }
}

/// A half-open period `[start, end)`.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

/// The buckets covering `[from, to)`, each clipped to it; too many is an error.
pub fn buckets(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    g: Granularity,
) -> Result<Vec<Span>, String> {
    let mut out = Vec::new();
    let mut start = bucket_start(from, g);
    while start < to {
        let end = next_bucket(start, g);
        if end <= start {
            return Err("the period cannot be cut into buckets".into());
        }
        out.push((start.max(from), end.min(to)));
        if out.len() > MAX_BUCKETS {
            return Err(format!(
                "the period holds more than {MAX_BUCKETS} buckets: ask for a shorter one or a coarser granularity"
            ));
        }
        start = end;
    }
    Ok(out)
}

/// A calendar month in Vietnam's time, as `2026-10`: `[first day 00:00, next month's first day)`.
pub fn month_range(month: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let bad = || format!("{month:?} is not a month: write it as YYYY-MM");
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let y: i32 = y.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    let first = NaiveDate::from_ymd_opt(y, m, 1).ok_or_else(bad)?;
    let start = local_midnight(first);
    Ok((start, next_bucket(start, Granularity::Month)))
}

/// The month holding `t`, as `2026-10`.
pub fn month_of(t: DateTime<Utc>) -> String {
    let local = t.with_timezone(&Ho_Chi_Minh);
    format!("{:04}-{:02}", local.year(), local.month())
}

/// The month before the one holding `t`, as `2026-10`.
pub fn month_before(t: DateTime<Utc>) -> String {
    month_of(bucket_start(t, Granularity::Month) - Duration::hours(1))
}

/// A point of a period: an RFC 3339 instant, or a date (its midnight in Vietnam's time).
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(local_midnight)
        .map_err(|_| format!("{s:?} is neither an RFC 3339 instant nor a date (YYYY-MM-DD)"))
}

/// Whether `t` starts a whole hour (the ledger's resolution).
pub fn is_whole_hour(t: DateTime<Utc>) -> bool {
    t.minute() == 0 && t.second() == 0 && t.nanosecond() == 0
}

/// Seconds of `[a, b)` that overlap `[c, d)`.
pub fn overlap_seconds(
    (a, b): (DateTime<Utc>, DateTime<Utc>),
    (c, d): (DateTime<Utc>, DateTime<Utc>),
) -> i64 {
    (b.min(d) - a.max(c)).num_seconds().max(0)
}

/// The integral over `[from, to)` of a piecewise-constant timeline: each change sets the value
/// from its instant on; before the first change the value is zero. Changes are in time order.
pub fn integrate(changes: &[(DateTime<Utc>, i64)], from: DateTime<Utc>, to: DateTime<Utc>) -> i128 {
    let mut total = 0i128;
    for (i, (at, value)) in changes.iter().enumerate() {
        let until = changes.get(i + 1).map_or(to, |(next, _)| *next);
        let seconds = overlap_seconds((*at, until), (from, to));
        total += i128::from(*value) * i128::from(seconds);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn months_and_days_start_at_midnight_in_vietnam() {
        let (start, end) = month_range("2026-10").unwrap_or_default();
        assert_eq!(start, at("2026-09-30T17:00:00Z"));
        assert_eq!(end, at("2026-10-31T17:00:00Z"));
        let (start, end) = month_range("2026-12").unwrap_or_default();
        assert_eq!(
            (start, end),
            (at("2026-11-30T17:00:00Z"), at("2026-12-31T17:00:00Z"))
        );
        // 23:30 UTC on the 31st is already November the 1st in Hà Nội
        assert_eq!(month_of(at("2026-10-31T17:30:00Z")), "2026-11");
        assert_eq!(month_of(at("2026-10-31T16:59:59Z")), "2026-10");
        assert_eq!(month_before(at("2026-10-31T17:30:00Z")), "2026-10");
        assert_eq!(month_before(at("2026-01-15T00:00:00Z")), "2025-12");
        assert_eq!(
            bucket_start(at("2026-10-31T16:59:59Z"), Granularity::Day),
            at("2026-10-30T17:00:00Z")
        );
        assert!(month_range("2026-13").is_err());
        assert!(month_range("26-10").is_err());
        assert_eq!(
            parse_instant("2026-11-01").unwrap_or_default(),
            at("2026-10-31T17:00:00Z")
        );
    }

    #[test]
    fn a_timeline_integrates_exactly() {
        let changes = [
            (at("2026-10-01T00:00:00Z"), 1000),
            (at("2026-10-01T00:30:00Z"), 3000),
        ];
        let v = integrate(
            &changes,
            at("2026-09-30T23:00:00Z"),
            at("2026-10-01T01:00:00Z"),
        );
        assert_eq!(v, 1000 * 1800 + 3000 * 1800);
    }

    #[test]
    fn too_many_buckets_is_refused() {
        let r = buckets(
            at("2026-01-01T00:00:00Z"),
            at("2026-03-01T00:00:00Z"),
            Granularity::Hour,
        );
        assert!(r.is_err());
    }

    proptest! {
        #[test]
        fn buckets_tile_the_period(
            from in 1_600_000_000i64..1_900_000_000,
            len in 1i64..(86_400 * 400),
            g in prop::sample::select(vec![Granularity::Hour, Granularity::Day, Granularity::Month]),
        ) {
            let from = DateTime::from_timestamp(from, 0).unwrap_or_default();
            let to = from + Duration::seconds(len);
            if let Ok(b) = buckets(from, to, g) {
                prop_assert_eq!(b.first().map(|x| x.0), Some(from));
                prop_assert_eq!(b.last().map(|x| x.1), Some(to));
                for pair in b.windows(2) {
                    prop_assert_eq!(pair[0].1, pair[1].0);
                }
                for (s, _) in b.iter().skip(1) {
                    prop_assert_eq!(bucket_start(*s, g), *s);
                    if g != Granularity::Hour {
                        // days and months start at local midnight: 17:00 UTC
                        prop_assert_eq!(s.hour(), 17);
                    }
                }
            }
        }

        #[test]
        fn an_integral_splits_at_any_instant(
            values in prop::collection::vec((0i64..100_000, 0i64..1_000_000_000), 0..8),
            cut in 0i64..2_000_000,
        ) {
            let base = at("2026-10-01T00:00:00Z");
            let mut t = base;
            let changes: Vec<_> = values
                .iter()
                .map(|(d, v)| {
                    t += Duration::seconds(*d);
                    (t, *v)
                })
                .collect();
            let end = base + Duration::seconds(2_000_000);
            let mid = base + Duration::seconds(cut);
            prop_assert_eq!(
                integrate(&changes, base, end),
                integrate(&changes, base, mid) + integrate(&changes, mid, end)
            );
        }
    }
}
