//! Budgets: a tenant's monthly budget in đồng (VAT included), and the alerts raised when the
//! month's spend to date, or its forecast, reaches 80 % or 100 % of it.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::money::round_dong;

/// What an alert measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = AlertMeasure)]
pub enum Measure {
    /// What the month has cost so far.
    Spend,
    /// What the month will cost at the rate so far.
    Forecast,
}

super::named!(Measure, "measure", { Spend => "spend", Forecast => "forecast" });

/// The thresholds, in percent of the budget.
pub const THRESHOLDS: [i32; 2] = [80, 100];

/// The largest budget accepted, in đồng (a hundred thousand billion).
pub const MAX_BUDGET: i64 = 100_000_000_000_000;

/// The month's forecast: the spend so far, extrapolated linearly over the whole month; the
/// spend itself once the month is over (or before anything elapsed).
pub fn forecast(spend: Decimal, elapsed_seconds: i64, month_seconds: i64) -> Decimal {
    if elapsed_seconds <= 0 || elapsed_seconds >= month_seconds {
        return spend;
    }
    spend
        .checked_mul(Decimal::from(month_seconds))
        .and_then(|v| v.checked_div(Decimal::from(elapsed_seconds)))
        .map_or(spend, round_dong)
}

/// The alerts that `spend` and `forecast` reach against `budget`: (measure, threshold, amount).
pub fn reached(budget: Decimal, spend: Decimal, forecast: Decimal) -> Vec<(Measure, i32, Decimal)> {
    let mut out = Vec::new();
    if budget <= Decimal::ZERO {
        return out;
    }
    for (measure, amount) in [(Measure::Spend, spend), (Measure::Forecast, forecast)] {
        for t in THRESHOLDS {
            // amount ≥ budget × t / 100, in integers
            if amount * Decimal::from(100) >= budget * Decimal::from(t) {
                out.push((measure, t, amount));
            }
        }
    }
    out
}

/// Checks a budget: whole đồng, positive, at most [`MAX_BUDGET`].
pub fn check_amount(amount: Decimal) -> Result<(), String> {
    if amount <= Decimal::ZERO
        || amount.fract() != Decimal::ZERO
        || amount > Decimal::from(MAX_BUDGET)
    {
        Err(format!(
            "must be a whole number of đồng from 1 to {MAX_BUDGET}"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: i64) -> Decimal {
        Decimal::from(v)
    }

    #[test]
    fn a_forecast_extrapolates_the_month_so_far() {
        // 100,000 đồng in 10 of 30 days: 300,000 for the month
        assert_eq!(forecast(d(100_000), 10 * 86_400, 30 * 86_400), d(300_000));
        assert_eq!(forecast(d(100_000), 30 * 86_400, 30 * 86_400), d(100_000));
        assert_eq!(forecast(d(100_000), 0, 30 * 86_400), d(100_000));
    }

    #[test]
    fn alerts_at_80_and_100_percent() {
        let r = reached(d(1_000_000), d(800_000), d(2_400_000));
        assert_eq!(
            r,
            vec![
                (Measure::Spend, 80, d(800_000)),
                (Measure::Forecast, 80, d(2_400_000)),
                (Measure::Forecast, 100, d(2_400_000)),
            ]
        );
        assert!(reached(d(1_000_000), d(799_999), d(799_999)).is_empty());
        assert!(check_amount(d(0)).is_err());
        assert!(check_amount(Decimal::new(15, 1)).is_err());
        assert!(check_amount(d(5_000_000)).is_ok());
    }
}
