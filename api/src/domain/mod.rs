//! The API's rules, as pure code: quotas and their parsing, capacity judgement, request states,
//! principals and what their roles may see and do, API tokens, and the one builder of the
//! Tenant a database record describes. Nothing here touches the database, HTTP or the cluster
//! (no sqlx, axum or kube), so all of it is tested directly.

/// The names of an enum's variants as the API and the database spell them: `ALL`, `as_str`,
/// `Display` and `FromStr` (whose error says what `$what` was not understood).
macro_rules! named {
    ($t:ident, $what:literal, { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            pub const ALL: [$t; [$($s),+].len()] = [$($t::$v),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($t::$v => $s),+
                }
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $t {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!(concat!("unknown ", $what, " {:?}"), s))
            }
        }
    };
}
pub(crate) use named;

pub mod budget;
pub mod capacity;
pub mod field;
pub mod invoice;
pub mod link;
pub mod metering;
pub mod money;
pub mod period;
pub mod principal;
pub mod quota;
pub mod rating;
pub mod request;
pub mod rightsize;
pub mod tenant;
pub mod token;
pub mod usage;
