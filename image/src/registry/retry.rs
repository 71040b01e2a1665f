//! Retrying registry operations: exponential backoff with jitter, `Retry-After` for 429 and 503.

use super::RegistryError;
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::time::Duration;

/// Attempts per operation by default: four retries ride out a registry restart or a short overload.
pub const DEFAULT_ATTEMPTS: u32 = 5;
/// The first pause by default; it doubles per attempt (1, 2, 4, 8 s: about 15 s in all).
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest pause between attempts by default.
pub const DEFAULT_MAXIMUM_BACKOFF: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured; a registry asking for more fails the operation after that
/// long instead of stalling a build for hours.
pub const MAXIMUM_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Jitter adds up to 1/JITTER_DIVISOR of the pause, so that parallel uploads failing together do
/// not all come back at the same instant.
const JITTER_DIVISOR: u32 = 4;
/// The largest exponent of the doubling, which keeps the multiplication from overflowing.
const MAXIMUM_DOUBLINGS: u32 = 20;

/// How often and how patiently an operation is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// The pause after the first failure; doubles per attempt.
    pub initial_backoff: Duration,
    /// The longest pause computed by doubling (a server's `Retry-After` may ask for more).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: DEFAULT_ATTEMPTS,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAXIMUM_BACKOFF,
        }
    }
}

impl RetryPolicy {
    /// The pause after failed attempt `attempt` (1-based): the doubled backoff plus jitter, but at
    /// least the server's `Retry-After`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let doublings = attempt.saturating_sub(1).min(MAXIMUM_DOUBLINGS);
        let exponential = self.initial_backoff.saturating_mul(1 << doublings).min(self.max_backoff);
        let jitter_range = exponential / JITTER_DIVISOR;
        let jitter = if jitter_range.is_zero() {
            Duration::ZERO
        } else {
            let range = u64::try_from(jitter_range.as_nanos()).unwrap_or(u64::MAX).max(1);
            Duration::from_nanos(RandomState::new().hash_one(attempt) % range)
        };
        let backoff = exponential + jitter;
        match retry_after {
            Some(hint) => backoff.max(hint.min(MAXIMUM_RETRY_AFTER)),
            None => backoff,
        }
    }

    /// Runs `operation` until it succeeds, fails with an error that is not worth retrying, or the
    /// attempts are used up. `what` names the operation in logs.
    pub(super) async fn run<T, F, Fut>(&self, what: &str, mut operation: F) -> Result<T, RegistryError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let attempts = self.attempts.max(1);
        let mut attempt = 1;
        loop {
            match operation(attempt).await {
                Ok(value) => return Ok(value),
                Err(error) if error.is_retryable() && attempt < attempts => {
                    let delay = self.delay(attempt, error.retry_after());
                    tracing::warn!(attempt, attempts, ?delay, %error, "{what} failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(error) if error.is_retryable() && attempt > 1 => {
                    return Err(RegistryError::GaveUp {
                        what: what.to_string(),
                        attempts,
                        last: Box::new(error),
                    });
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_honours_retry_after() {
        let policy = RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        let within = |delay: Duration, base: u64| {
            let base = Duration::from_millis(base);
            delay >= base && delay <= base + base / JITTER_DIVISOR
        };
        assert!(within(policy.delay(1, None), 100));
        assert!(within(policy.delay(2, None), 200));
        assert!(within(policy.delay(3, None), 400));
        assert!(within(policy.delay(4, None), 500));
        assert!(within(policy.delay(40, None), 500));
        assert!(policy.delay(1, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
        assert_eq!(policy.delay(1, Some(Duration::from_secs(100_000))), MAXIMUM_RETRY_AFTER);
        let none = RetryPolicy { attempts: 1, initial_backoff: Duration::ZERO, max_backoff: Duration::ZERO };
        assert_eq!(none.delay(3, None), Duration::ZERO);
    }
}
