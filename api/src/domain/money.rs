//! Money, as a bill needs it: a quantity in base units (millicore-seconds, byte-seconds,
//! count-seconds) at a unit price in đồng per priced unit (core-hour, GiB-hour, GiB-month,
//! count-hour, count-month) is an amount rounded half-up to whole đồng once, per line; a total
//! is the exact sum of its lines; VAT is a rate of a subtotal, rounded the same way. Decimals
//! only (`rust_decimal`, 28 significant digits), never floating point.
//!
//! Pure, and tested with properties; [`crate::domain::rating`] builds invoice lines with it.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

/// The unit a price is quoted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceUnit {
    /// Per core for an hour; quantities in millicore-seconds.
    CoreHour,
    /// Per GiB for an hour; quantities in byte-seconds.
    GibHour,
    /// Per GiB for a calendar month of `seconds` seconds; quantities in byte-seconds.
    GibMonth { seconds: i64 },
    /// Per item (a load balancer, a GPU) for an hour; quantities in count-seconds.
    CountHour,
    /// Per item for a calendar month of `seconds` seconds; quantities in count-seconds.
    CountMonth { seconds: i64 },
}

/// Why an amount cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("the amount does not fit the arithmetic (quantity {quantity}, unit price {price})")]
    Overflow { quantity: i128, price: Decimal },
    #[error("a month of {0} seconds is not a month")]
    BadMonth(i64),
    #[error("a price or rate may not be negative: {0}")]
    Negative(Decimal),
}

const GIB: i64 = 1 << 30;

impl PriceUnit {
    /// How many base units make one priced unit.
    fn divisor(self) -> Result<Decimal, MoneyError> {
        let month = |seconds: i64| {
            // 28 to 31 days
            if (28 * 86_400..=31 * 86_400).contains(&seconds) {
                Ok(seconds)
            } else {
                Err(MoneyError::BadMonth(seconds))
            }
        };
        Ok(match self {
            PriceUnit::CoreHour => Decimal::from(1000 * 3600),
            PriceUnit::GibHour => Decimal::from(GIB) * Decimal::from(3600),
            PriceUnit::GibMonth { seconds } => Decimal::from(GIB) * Decimal::from(month(seconds)?),
            PriceUnit::CountHour => Decimal::from(3600),
            PriceUnit::CountMonth { seconds } => Decimal::from(month(seconds)?),
        })
    }
}

/// A quantity in base units expressed in the priced unit (core-hours, GiB-months…), to six
/// decimal places, for people to read. Amounts are computed from the exact quantity.
pub fn priced_quantity(quantity: i128, unit: PriceUnit) -> Result<Decimal, MoneyError> {
    let overflow = || MoneyError::Overflow {
        quantity,
        price: Decimal::ONE,
    };
    let q = Decimal::try_from_i128_with_scale(quantity, 0).map_err(|_| overflow())?;
    q.checked_div(unit.divisor()?)
        .map(|v| v.round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero))
        .ok_or_else(overflow)
}

/// Rounds to whole đồng, half up (away from zero, so a credit's -0.5 is -1 as its debit's 0.5 is 1).
pub fn round_dong(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
}

/// The amount of a line: `quantity` base units at `price` đồng per priced unit, rounded once.
pub fn line_amount(quantity: i128, unit: PriceUnit, price: Decimal) -> Result<Decimal, MoneyError> {
    if price.is_sign_negative() && !price.is_zero() {
        return Err(MoneyError::Negative(price));
    }
    let overflow = || MoneyError::Overflow { quantity, price };
    let q = Decimal::try_from_i128_with_scale(quantity, 0).map_err(|_| overflow())?;
    let divisor = unit.divisor()?;
    // Multiply first, then divide once: exact wherever the product fits 28 digits.
    let exact = q
        .checked_mul(price)
        .and_then(|p| p.checked_div(divisor))
        .ok_or_else(overflow)?;
    Ok(round_dong(exact))
}

/// VAT on a subtotal at `rate` (0.08 for 8 %), rounded once.
pub fn vat(subtotal: Decimal, rate: Decimal) -> Result<Decimal, MoneyError> {
    if rate.is_sign_negative() && !rate.is_zero() {
        return Err(MoneyError::Negative(rate));
    }
    subtotal
        .checked_mul(rate)
        .map(round_dong)
        .ok_or(MoneyError::Overflow {
            quantity: subtotal.to_i128().unwrap_or_default(),
            price: rate,
        })
}

/// The exact sum of amounts (none: it overflowed).
pub fn total(amounts: &[Decimal]) -> Option<Decimal> {
    amounts
        .iter()
        .try_fold(Decimal::ZERO, |sum, a| sum.checked_add(*a))
}

/// A decimal as Vietnamese write it: `.` between thousands, `,` before decimals
/// (`1.234.567`, `0,08`).
pub fn format_vi(value: Decimal) -> String {
    let v = value.normalize();
    let text = v.abs().to_string();
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(c);
    }
    let sign = if v.is_sign_negative() && !v.is_zero() {
        "-"
    } else {
        ""
    };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped},{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap_or_default()
    }

    #[test]
    fn a_worked_line() {
        // 2 cores for a 30-day month at 250 đồng per core-hour: 2 × 720 h × 250 = 360,000 đồng
        let q = 2000i128 * 30 * 86_400;
        assert_eq!(
            line_amount(q, PriceUnit::CoreHour, d("250")),
            Ok(d("360000"))
        );
        // 100 GiB of storage for 10 days of a 31-day month at 2,000 đồng per GiB-month:
        // 100 × 10/31 × 2,000 = 64,516.13 → 64,516
        let month = 31 * 86_400;
        let q = i128::from(100 * GIB) * i128::from(10 * 86_400);
        assert_eq!(
            line_amount(q, PriceUnit::GibMonth { seconds: month }, d("2000")),
            Ok(d("64516"))
        );
        // VAT of 8 % on 12,345 đồng is 987.6 → 988
        assert_eq!(vat(d("12345"), d("0.08")), Ok(d("988")));
        assert_eq!(round_dong(d("0.5")), d("1"));
        assert_eq!(round_dong(d("-0.5")), d("-1"));
        assert_eq!(round_dong(d("1.4999")), d("1"));
    }

    #[test]
    fn amounts_are_written_the_vietnamese_way() {
        assert_eq!(format_vi(d("1234567")), "1.234.567");
        assert_eq!(format_vi(d("-300000")), "-300.000");
        assert_eq!(format_vi(d("999")), "999");
        assert_eq!(format_vi(d("1440.500000")), "1.440,5");
        assert_eq!(format_vi(d("0.08")), "0,08");
    }

    #[test]
    fn bad_inputs_are_errors_not_amounts() {
        assert!(line_amount(1, PriceUnit::CoreHour, d("-1")).is_err());
        assert!(line_amount(1, PriceUnit::GibMonth { seconds: 86_400 }, d("1")).is_err());
        assert!(line_amount(i128::MAX, PriceUnit::CoreHour, d("1")).is_err());
        assert!(vat(d("1"), d("-0.1")).is_err());
    }

    proptest! {
        /// Proration: a line split at any instants (a quota change, a new rate-card version)
        /// adds up to the unsplit line within half a đồng per line.
        #[test]
        fn a_split_line_adds_up_to_the_whole_within_the_rounding(
            rate_milli in 0i64..64_000,
            cuts in prop::collection::vec(1i64..(30 * 86_400), 0..6),
            price in 0u32..1_000_000,
        ) {
            let month = 30 * 86_400;
            let price = Decimal::new(i64::from(price), 2);
            let mut points = cuts.clone();
            points.push(0);
            points.push(month);
            points.sort_unstable();
            points.dedup();
            let whole = line_amount(i128::from(rate_milli) * i128::from(month), PriceUnit::CoreHour, price);
            let parts: Vec<Decimal> = points
                .windows(2)
                .filter_map(|w| line_amount(i128::from(rate_milli) * i128::from(w[1] - w[0]), PriceUnit::CoreHour, price).ok())
                .collect();
            let (Ok(whole), Some(sum)) = (whole, total(&parts)) else {
                return Err(TestCaseError::fail("no amount"));
            };
            let lines = Decimal::from(parts.len());
            prop_assert!((sum - whole).abs() <= lines / Decimal::TWO + Decimal::ONE / Decimal::TWO);
            prop_assert!(parts.iter().all(|p| !p.is_sign_negative() || p.is_zero()));
        }

        /// More use never costs less, and an amount is a whole number of đồng.
        #[test]
        fn amounts_are_whole_and_grow_with_quantity(
            a in 0i64..1_000_000_000_000,
            b in 0i64..1_000_000_000_000,
            price in 0u32..100_000_000,
        ) {
            let price = Decimal::new(i64::from(price), 3);
            let (lo, hi) = (a.min(b), a.max(b));
            let x = line_amount(i128::from(lo) * 1000, PriceUnit::GibHour, price);
            let y = line_amount(i128::from(hi) * 1000, PriceUnit::GibHour, price);
            let (Ok(x), Ok(y)) = (x, y) else {
                return Err(TestCaseError::fail("no amount"));
            };
            prop_assert!(x <= y);
            prop_assert_eq!(x.fract(), Decimal::ZERO);
        }
    }
}
