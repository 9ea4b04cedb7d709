//! Invoices and credit notes: their states and transitions, their numbers, and what a credit
//! note may take back.
//!
//! `draft` (recomputed freely until the month's grace period ends) → `issued` (numbered,
//! immutable) → `approved` | `disputed`; `disputed` → `approved` (once corrected by a credit
//! note, or found right); `approved` → `paid`. A credit note is issued when written and moves
//! no further. The database's triggers refuse every other change (migration 0008).

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Asia::Ho_Chi_Minh;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::money::round_dong;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum InvoiceState {
    Draft,
    Issued,
    Approved,
    Disputed,
    Paid,
}

super::named!(InvoiceState, "invoice state", {
    Draft => "draft",
    Issued => "issued",
    Approved => "approved",
    Disputed => "disputed",
    Paid => "paid",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum InvoiceKind {
    Invoice,
    CreditNote,
}

super::named!(InvoiceKind, "invoice kind", {
    Invoice => "invoice",
    CreditNote => "credit-note",
});

/// What someone does to an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Issue,
    Approve,
    Dispute,
    Pay,
}

impl Transition {
    pub fn verb(self) -> &'static str {
        match self {
            Transition::Issue => "issued",
            Transition::Approve => "approved",
            Transition::Dispute => "disputed",
            Transition::Pay => "marked paid",
        }
    }
}

impl InvoiceState {
    /// The state after `t`, or why `t` is refused from here.
    pub fn after(self, kind: InvoiceKind, t: Transition) -> Result<InvoiceState, String> {
        use InvoiceState::*;
        if kind == InvoiceKind::CreditNote {
            return Err(format!(
                "a credit note is issued when it is written and cannot be {}",
                t.verb()
            ));
        }
        match (self, t) {
            (Draft, Transition::Issue) => Ok(Issued),
            (Issued | Disputed, Transition::Approve) => Ok(Approved),
            (Issued, Transition::Dispute) => Ok(Disputed),
            (Approved, Transition::Pay) => Ok(Paid),
            (Draft, _) => Err(format!(
                "the invoice is a draft; it must be issued before it can be {}",
                t.verb()
            )),
            (Disputed, Transition::Pay) => Err(
                "the invoice is disputed; it must be approved (after a credit note, or found right) before it is paid".into(),
            ),
            (s, t) => Err(format!("the invoice is {s} and cannot be {}", t.verb())),
        }
    }
}

/// An invoice's number: `NA-2026-000042`; a credit note's: `NA-CN-2026-000003`. Gap-free per
/// organization, year of issue (in Vietnam's time) and kind.
pub fn number(prefix: &str, kind: InvoiceKind, year: i32, sequence: i32) -> String {
    match kind {
        InvoiceKind::Invoice => format!("{prefix}-{year}-{sequence:06}"),
        InvoiceKind::CreditNote => format!("{prefix}-CN-{year}-{sequence:06}"),
    }
}

/// The year an invoice issued at `t` is numbered in.
pub fn numbering_year(t: DateTime<Utc>) -> i32 {
    t.with_timezone(&Ho_Chi_Minh).year()
}

/// A line of an issued invoice, as a credit note sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creditable {
    pub quantity: i128,
    pub amount: Decimal,
    /// What earlier credit notes took back from it (negative or zero).
    pub credited: Decimal,
}

/// What a credit note line takes back: an amount of whole đồng, and the matching share of the
/// quantity (rounded toward zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credit {
    pub quantity: i128,
    pub amount: Decimal,
}

/// Takes back `amount` (all that is left when none) from a line: more than is left is refused,
/// as is nothing at all or a fraction of a đồng.
pub fn credit(line: &Creditable, amount: Option<Decimal>) -> Result<Credit, String> {
    let left = line.amount + line.credited;
    let take = amount.unwrap_or(left);
    if take.is_sign_negative() || take.is_zero() {
        return Err(match amount {
            Some(_) => "must be a positive amount of đồng".into(),
            None => "the line has been credited in full already".into(),
        });
    }
    if take.fract() != Decimal::ZERO {
        return Err("must be whole đồng".into());
    }
    if take > left {
        return Err(format!(
            "is more than the {left} đồng left to credit on the line"
        ));
    }
    let quantity = if line.amount.is_zero() {
        line.quantity
    } else {
        let share = Decimal::try_from_i128_with_scale(line.quantity, 0)
            .ok()
            .and_then(|q| q.checked_mul(take))
            .and_then(|q| q.checked_div(line.amount))
            .map(|q| q.trunc());
        share
            .and_then(|q| q.to_string().parse::<i128>().ok())
            .unwrap_or(line.quantity)
    };
    Ok(Credit {
        quantity: -quantity,
        amount: -round_dong(take),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_lifecycle_allows_only_its_transitions() {
        use InvoiceState::*;
        use Transition::*;
        let inv = InvoiceKind::Invoice;
        assert_eq!(Draft.after(inv, Issue), Ok(Issued));
        assert_eq!(Issued.after(inv, Approve), Ok(Approved));
        assert_eq!(Issued.after(inv, Dispute), Ok(Disputed));
        assert_eq!(Disputed.after(inv, Approve), Ok(Approved));
        assert_eq!(Approved.after(inv, Pay), Ok(Paid));
        for (s, t) in [
            (Draft, Approve),
            (Draft, Pay),
            (Draft, Dispute),
            (Issued, Issue),
            (Issued, Pay),
            (Disputed, Pay),
            (Disputed, Dispute),
            (Approved, Dispute),
            (Paid, Pay),
            (Paid, Approve),
        ] {
            assert!(s.after(inv, t).is_err(), "{s} {t:?}");
        }
        assert!(Issued.after(InvoiceKind::CreditNote, Approve).is_err());
    }

    #[test]
    fn numbers_are_padded_per_kind() {
        assert_eq!(
            number("NA", InvoiceKind::Invoice, 2026, 42),
            "NA-2026-000042"
        );
        assert_eq!(
            number("NA", InvoiceKind::CreditNote, 2026, 3),
            "NA-CN-2026-000003"
        );
        let new_year_in_hanoi: DateTime<Utc> = "2026-12-31T17:00:00Z".parse().unwrap_or_default();
        assert_eq!(numbering_year(new_year_in_hanoi), 2027);
    }

    #[test]
    fn credits_take_back_at_most_what_is_left() {
        let line = Creditable {
            quantity: 1000,
            amount: Decimal::from(360_000),
            credited: Decimal::from(-60_000),
        };
        let all = credit(&line, None);
        assert_eq!(
            all,
            Ok(Credit {
                quantity: -833,
                amount: Decimal::from(-300_000)
            })
        );
        assert!(credit(&line, Some(Decimal::from(300_001))).is_err());
        assert!(credit(&line, Some(Decimal::new(15, 1))).is_err());
        assert!(credit(&line, Some(Decimal::ZERO)).is_err());
        let done = Creditable {
            credited: Decimal::from(-360_000),
            ..line
        };
        assert!(credit(&done, None).is_err());
    }

    proptest! {
        /// Credits never go past the line, never turn positive.
        #[test]
        fn credits_stay_within_the_line(amount in 0i64..10_000_000, q in 0i64..1_000_000_000_000, parts in prop::collection::vec(1i64..5_000_000, 1..6)) {
            let mut line = Creditable { quantity: i128::from(q), amount: Decimal::from(amount), credited: Decimal::ZERO };
            for p in parts {
                if let Ok(c) = credit(&line, Some(Decimal::from(p))) {
                    prop_assert!(c.amount.is_sign_negative());
                    prop_assert!(c.quantity <= 0 && -c.quantity <= line.quantity);
                    line.credited += c.amount;
                }
                prop_assert!(line.amount + line.credited >= Decimal::ZERO);
            }
        }
    }
}
