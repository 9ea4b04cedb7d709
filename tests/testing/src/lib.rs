//! What govcloud's tests share: [`eventually`], the one way a test waits for something the
//! system does in the background (a reconcile, a sync pass, a watch catching up). It polls a
//! check until it succeeds, and when it never does, the failure says what was awaited and what
//! the check last saw, not merely "timed out".
//!
//! A negative assertion ("the holder's namespace is untouched") never follows a fixed sleep:
//! wait with `eventually` for the event that would have broken it (another reconcile, another
//! sync pass), then assert.

use std::fmt::{self, Display};
use std::future::Future;
use std::time::{Duration, Instant};

/// How long [`eventually`] waits.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// How often it checks.
pub const INTERVAL: Duration = Duration::from_millis(50);

/// What one check answered: done (with a value) or not yet (with what it saw).
pub trait Attempt {
    type Output;
    fn into_result(self) -> Result<Self::Output, String>;
}

impl<T> Attempt for Option<T> {
    type Output = T;
    fn into_result(self) -> Result<T, String> {
        self.ok_or_else(|| "not yet".to_string())
    }
}

impl Attempt for bool {
    type Output = ();
    fn into_result(self) -> Result<(), String> {
        if self { Ok(()) } else { Err("not yet".into()) }
    }
}

impl<T, E: Display> Attempt for Result<T, E> {
    type Output = T;
    fn into_result(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// A wait that ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    pub what: String,
    pub after: Duration,
    pub attempts: u32,
    /// What the last check saw.
    pub last: String,
}

impl Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {:?} ({} checks) waiting for: {}; last seen: {}",
            self.after, self.attempts, self.what, self.last
        )
    }
}

impl std::error::Error for TimedOut {}

/// Checks `check` every [`INTERVAL`] until it succeeds, for up to [`TIMEOUT`].
pub async fn eventually<A, F, Fut>(what: impl Display, check: F) -> Result<A::Output, TimedOut>
where
    A: Attempt,
    F: FnMut() -> Fut,
    Fut: Future<Output = A>,
{
    eventually_within(TIMEOUT, what, check).await
}

/// [`eventually`], waiting up to `timeout`.
pub async fn eventually_within<A, F, Fut>(
    timeout: Duration,
    what: impl Display,
    mut check: F,
) -> Result<A::Output, TimedOut>
where
    A: Attempt,
    F: FnMut() -> Fut,
    Fut: Future<Output = A>,
{
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let last = match check().await.into_result() {
            Ok(v) => return Ok(v),
            Err(seen) => seen,
        };
        if started.elapsed() >= timeout {
            return Err(TimedOut {
                what: what.to_string(),
                after: started.elapsed(),
                attempts,
                last,
            });
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn answers_the_value_once_the_check_succeeds() {
        let n = AtomicU32::new(0);
        let got = eventually("the third check", || async {
            let i = n.fetch_add(1, Ordering::SeqCst);
            (i >= 2).then_some(i)
        })
        .await;
        assert_eq!(got, Ok(2));
    }

    #[tokio::test]
    async fn a_timeout_reports_what_was_awaited_and_last_seen() {
        let n = AtomicU32::new(0);
        let err = eventually_within(Duration::from_millis(120), "a ready tenant", || async {
            let i = n.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(format!("phase Pending (check {i})"))
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("it never succeeds"));
        assert_eq!(err.what, "a ready tenant");
        assert!(err.attempts >= 2, "{err}");
        assert_eq!(
            err.last,
            format!("phase Pending (check {})", err.attempts - 1)
        );
        assert!(
            err.to_string().contains("last seen: phase Pending"),
            "{err}"
        );
    }
}
