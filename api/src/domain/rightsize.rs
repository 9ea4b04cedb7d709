//! Right-sizing: what a namespace should reserve in the next monthly capacity window, from the
//! peak of its use plus headroom. Peaks are hourly averages (what the ledger keeps), so a
//! burst shorter than an hour counts for its share of the hour.

/// The share added on top of the peak, in percent.
pub const HEADROOM_PERCENT: i128 = 30;
/// Suggestions are whole steps: a tenth of a core…
pub const CPU_STEP_MILLI: i128 = 100;
/// …and 128 MiB of memory.
pub const MEMORY_STEP_BYTES: i128 = 128 * 1024 * 1024;

/// What to do with a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It fits the peak and its headroom: keep it.
    Keep,
    /// More is reserved than the peak needs with headroom: give some back.
    Lower,
    /// The peak with headroom is above what is reserved: ask for more.
    Raise,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suggestion {
    /// What to reserve, in the resource's unit (millicores, bytes).
    pub reserve: i128,
    pub change: Change,
}

/// The suggestion for one resource: the peak plus headroom rounded up to whole steps (at least
/// one step). A reservation within one step of it is kept. `None` without a measured peak.
pub fn suggest(reserved: i128, peak: Option<i128>, step: i128) -> Option<Suggestion> {
    let peak = peak?.max(0);
    let step = step.max(1);
    let wanted = peak + (peak * HEADROOM_PERCENT).div_euclid(100);
    let reserve =
        (wanted.div_euclid(step) + i128::from(wanted.rem_euclid(step) != 0)).max(1) * step;
    let change = if (reserve - reserved).abs() < step {
        Change::Keep
    } else if reserve < reserved {
        Change::Lower
    } else {
        Change::Raise
    };
    Some(Suggestion { reserve, change })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_idle_namespace_is_told_to_give_back() {
        // 4 cores reserved, 500m at peak: 650m with headroom, 700m in steps.
        let s = suggest(4000, Some(500), CPU_STEP_MILLI).unwrap_or_else(|| panic!("no suggestion"));
        assert_eq!(
            s,
            Suggestion {
                reserve: 700,
                change: Change::Lower
            }
        );
    }

    #[test]
    fn a_namespace_at_its_limit_is_told_to_ask_for_more() {
        let s =
            suggest(1000, Some(1000), CPU_STEP_MILLI).unwrap_or_else(|| panic!("no suggestion"));
        assert_eq!(
            s,
            Suggestion {
                reserve: 1300,
                change: Change::Raise
            }
        );
    }

    #[test]
    fn a_good_fit_is_kept_and_no_peak_means_no_suggestion() {
        assert_eq!(
            suggest(1300, Some(1000), CPU_STEP_MILLI)
                .unwrap_or_else(|| panic!("no suggestion"))
                .change,
            Change::Keep
        );
        assert_eq!(suggest(1000, None, CPU_STEP_MILLI), None);
        // Nothing used still keeps one step.
        assert_eq!(
            suggest(1000, Some(0), CPU_STEP_MILLI)
                .unwrap_or_else(|| panic!("no suggestion"))
                .reserve,
            100
        );
    }

    proptest! {
        #[test]
        fn the_suggestion_covers_the_peak_with_headroom_in_whole_steps(
            reserved in 0i128..1_000_000, peak in 0i128..1_000_000, step in 1i128..10_000,
        ) {
            let s = suggest(reserved, Some(peak), step).unwrap_or_else(|| panic!("no suggestion"));
            prop_assert_eq!(s.reserve % step, 0);
            prop_assert!(s.reserve * 100 >= peak * (100 + HEADROOM_PERCENT) - 100);
            prop_assert!(s.reserve - step < (peak + peak * HEADROOM_PERCENT / 100).max(1));
        }
    }
}
