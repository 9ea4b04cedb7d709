//! What each tenant namespace holds from moment to moment, integrated over windows: pure, fed
//! by watch events as they arrive, closed at each window's end.
//!
//! Every object (a pod, a quota, a claim) contributes amounts to its namespace — a running pod
//! its requests, a quota its hard, a bound claim its capacity. A namespace's level of each
//! amount is the sum of its objects' contributions, and changes only when an object does; the
//! integral over a window is the sum of level × time over the pieces between changes, so a
//! pod that starts or stops mid-window counts for exactly the part it ran. Time is kept in
//! milliseconds; a window's integral is floored to whole base-unit-seconds once, at its close.

use std::collections::{BTreeMap, HashMap};

/// What an amount is: a metric, or the GPUs of one extended resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Amount {
    CpuReserved,
    MemoryReserved,
    StorageReserved,
    LoadbalancersReserved,
    CpuRequested,
    MemoryRequested,
    StorageBound,
    Gpu(String),
}

/// Amounts one object contributes (zero amounts may be left out).
pub type Amounts = BTreeMap<Amount, i64>;

/// Which watch an object came from: its uid is unique only within its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Pod,
    Quota,
    Claim,
}

#[derive(Debug, Default, Clone)]
struct Level {
    /// The current level.
    value: i128,
    /// The integral since the window started, in unit-milliseconds.
    acc: i128,
    /// When `value` last changed or the window started (ms since the epoch).
    since: i64,
}

impl Level {
    fn advance(&mut self, at: i64) {
        if at > self.since {
            self.acc += self.value * i128::from(at - self.since);
            self.since = at;
        }
    }
}

/// The levels of every tenant namespace.
#[derive(Debug, Default)]
pub struct Tracker {
    contributions: HashMap<(Source, String), (String, Amounts)>,
    levels: HashMap<String, BTreeMap<Amount, Level>>,
    /// Where the current window starts (ms since the epoch).
    window_start: i64,
}

impl Tracker {
    /// A tracker whose first window starts at `at` (ms).
    pub fn new(at: i64) -> Self {
        Self {
            window_start: at,
            ..Self::default()
        }
    }

    fn shift(&mut self, ns: &str, amounts: &Amounts, sign: i128, at: i64) {
        let start = self.window_start;
        let levels = self.levels.entry(ns.to_string()).or_default();
        for (amount, v) in amounts {
            let level = levels.entry(amount.clone()).or_insert_with(|| Level {
                since: start,
                ..Level::default()
            });
            level.advance(at);
            level.value += sign * i128::from(*v);
        }
    }

    /// An object now contributes `amounts` to namespace `ns` (replacing what it did before).
    pub fn apply(&mut self, source: Source, uid: &str, ns: &str, amounts: Amounts, at: i64) {
        let key = (source, uid.to_string());
        if let Some((old_ns, old)) = self.contributions.remove(&key) {
            if old_ns == ns && old == amounts {
                self.contributions.insert(key, (old_ns, old));
                return;
            }
            self.shift(&old_ns, &old, -1, at);
        }
        self.shift(ns, &amounts, 1, at);
        self.contributions.insert(key, (ns.to_string(), amounts));
    }

    /// An object is gone: it contributes nothing from `at` on.
    pub fn delete(&mut self, source: Source, uid: &str, at: i64) {
        if let Some((ns, old)) = self.contributions.remove(&(source, uid.to_string())) {
            self.shift(&ns, &old, -1, at);
        }
    }

    /// Forgets a namespace's objects of one kind (a watch restarted and will list them again).
    pub fn forget(&mut self, source: Source, at: i64) {
        let uids: Vec<String> = self
            .contributions
            .keys()
            .filter(|(s, _)| *s == source)
            .map(|(_, u)| u.clone())
            .collect();
        for uid in uids {
            self.delete(source, &uid, at);
        }
    }

    /// Closes the window at `end` (ms): the integral of every amount of every namespace over
    /// `[window start, end)`, in unit-seconds (floored), and a new window starts at `end`.
    pub fn close(&mut self, end: i64) -> BTreeMap<String, BTreeMap<Amount, i64>> {
        let mut out = BTreeMap::new();
        for (ns, levels) in &mut self.levels {
            let mut window = BTreeMap::new();
            for (amount, level) in levels.iter_mut() {
                level.advance(end);
                let seconds = level.acc.div_euclid(1000);
                window.insert(amount.clone(), i64::try_from(seconds).unwrap_or(i64::MAX));
                level.acc = 0;
                level.since = end;
            }
            out.insert(ns.clone(), window);
        }
        // Levels that are zero and hold nothing are dropped (a namespace's pods all gone).
        for levels in self.levels.values_mut() {
            levels.retain(|_, l| l.value != 0);
        }
        self.levels.retain(|_, l| !l.is_empty());
        self.window_start = end;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cpu(m: i64) -> Amounts {
        BTreeMap::from([(Amount::CpuRequested, m)])
    }

    #[test]
    fn a_pod_counts_for_the_part_of_the_window_it_ran() {
        let mut t = Tracker::new(0);
        t.apply(Source::Pod, "b", "ns", cpu(250), 0);
        t.apply(Source::Pod, "a", "ns", cpu(500), 15_000);
        t.delete(Source::Pod, "b", 30_000);
        let w = t.close(60_000);
        assert_eq!(w["ns"][&Amount::CpuRequested], 500 * 45 + 250 * 30);
        // the next window: only `a`, the whole window
        let w = t.close(120_000);
        assert_eq!(w["ns"][&Amount::CpuRequested], 500 * 60);
    }

    #[test]
    fn a_change_of_quota_mid_window_counts_each_part() {
        let mut t = Tracker::new(0);
        let hard = |c| BTreeMap::from([(Amount::CpuReserved, c)]);
        t.apply(Source::Quota, "q", "ns", hard(2000), 0);
        t.apply(Source::Quota, "q", "ns", hard(4000), 20_000);
        let w = t.close(60_000);
        assert_eq!(w["ns"][&Amount::CpuReserved], 2000 * 20 + 4000 * 40);
    }

    proptest! {
        /// However pods come and go within windows, the windows' integrals add up to the
        /// integral over the whole time (to within flooring once per window).
        #[test]
        fn windows_add_up_to_the_whole(
            pods in prop::collection::vec((0i64..600_000, 0i64..600_000, 1i64..4000), 0..20),
        ) {
            let mut events: Vec<(i64, usize, bool)> = Vec::new();
            let mut exact = 0i128;
            for (i, (a, b, _)) in pods.iter().enumerate() {
                let (start, stop) = (*a.min(b), *a.max(b));
                events.push((start, i, true));
                events.push((stop, i, false));
                exact += i128::from(pods[i].2) * i128::from(stop - start);
            }
            events.sort();
            let mut t = Tracker::new(0);
            let mut total = 0i128;
            let mut next_close = 60_000;
            for (at, i, up) in events {
                while at >= next_close {
                    total += t.close(next_close).get("ns").and_then(|w| w.get(&Amount::CpuRequested)).copied().map_or(0, i128::from);
                    next_close += 60_000;
                }
                if up {
                    t.apply(Source::Pod, &i.to_string(), "ns", cpu(pods[i].2), at);
                } else {
                    t.delete(Source::Pod, &i.to_string(), at);
                }
            }
            while next_close <= 660_000 {
                total += t.close(next_close).get("ns").and_then(|w| w.get(&Amount::CpuRequested)).copied().map_or(0, i128::from);
                next_close += 60_000;
            }
            let windows = 11;
            prop_assert!(total <= exact / 1000);
            prop_assert!(exact / 1000 - total <= windows, "{} vs {}", total, exact / 1000);
        }
    }
}
