//! Capacity requests: their states and when a change may take effect.
//!
//! States: `pending` → `approved-pending` (approved; waiting for its date or for the cluster)
//! → `approved` (the cluster has it); or `pending` → `rejected` | `cancelled`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RequestState {
    Pending,
    ApprovedPending,
    Approved,
    Rejected,
    Cancelled,
}

super::named!(RequestState, "request state", {
    Pending => "pending",
    ApprovedPending => "approved-pending",
    Approved => "approved",
    Rejected => "rejected",
    Cancelled => "cancelled",
});

impl RequestState {
    /// Refuses to decide a request that is no longer pending; `action` is the past participle.
    pub fn must_be_pending(self, action: &str) -> Result<(), String> {
        if self == Self::Pending {
            Ok(())
        } else {
            Err(format!(
                "the request is {self}; only a pending request can be {action}"
            ))
        }
    }
}

/// How far in the past an effective date may be (clock skew between the caller and us).
pub const PAST_TOLERANCE: Duration = Duration::minutes(5);
/// How far ahead a change may be scheduled: capacity is planned a budget year or two ahead,
/// and a date past this is a typo (`2206` for `2026`), not a plan.
pub const HORIZON_DAYS: i64 = 2 * 366;

/// Refuses an effective date in the past (quota changes are never backdated) or beyond the
/// horizon.
pub fn check_effective_from(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), String> {
    if at < now - PAST_TOLERANCE {
        Err("must not be in the past: quota changes are never backdated".into())
    } else if at > now + Duration::days(HORIZON_DAYS) {
        Err(format!(
            "must be within 2 years from now (by {}): capacity is not scheduled further ahead",
            (now + Duration::days(HORIZON_DAYS)).format("%Y-%m-%d")
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_from_their_names() {
        for s in RequestState::ALL {
            assert_eq!(s.as_str().parse::<RequestState>(), Ok(s));
        }
        assert!("done".parse::<RequestState>().is_err());
        assert!(RequestState::Pending.must_be_pending("approved").is_ok());
        let e = RequestState::Rejected.must_be_pending("approved");
        assert_eq!(
            e,
            Err("the request is rejected; only a pending request can be approved".into())
        );
    }

    #[test]
    fn effective_dates_are_neither_backdated_nor_beyond_the_horizon() {
        let now: DateTime<Utc> = "2026-11-25T00:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(check_effective_from(now - Duration::minutes(4), now).is_ok());
        assert!(check_effective_from(now - Duration::minutes(6), now).is_err());
        assert!(check_effective_from(now + Duration::days(HORIZON_DAYS), now).is_ok());
        let far = check_effective_from(now + Duration::days(HORIZON_DAYS + 1), now);
        assert_eq!(
            far,
            Err("must be within 2 years from now (by 2028-11-26): capacity is not scheduled further ahead".into())
        );
    }
}
