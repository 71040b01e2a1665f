//! Retry delays: `min(base · 2^(attempts-1), cap)` plus up to a quarter of that at random, so jobs that
//! failed together (a registry outage) do not retry together.

use std::time::Duration;

use crate::clock::millis;
use crate::random;
use crate::store::StoreError;

/// The delay after the first failed attempt: long enough for a registry or mirror hiccup to pass.
pub const RETRY_BACKOFF_BASE: Duration = Duration::from_secs(30);
/// The longest delay: an hour keeps a job that fails for a day from waiting most of the next one.
pub const RETRY_BACKOFF_CAP: Duration = Duration::from_secs(60 * 60);
/// The jitter is up to 1/JITTER_DIVISOR of the delay.
const JITTER_DIVISOR: i64 = 4;

/// How long a job waits before its next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: RETRY_BACKOFF_BASE, cap: RETRY_BACKOFF_CAP }
    }
}

impl Backoff {
    /// The delay without jitter after `attempts` attempts (1 for the first).
    pub fn base_delay(&self, attempts: i64) -> i64 {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 62)).unwrap_or(62);
        let base = millis(self.base);
        let cap = millis(self.cap);
        base.checked_mul(1i64.checked_shl(doublings).unwrap_or(i64::MAX)).unwrap_or(i64::MAX).min(cap)
    }

    /// The delay in milliseconds after `attempts` attempts, with jitter.
    pub fn delay(&self, attempts: i64) -> Result<i64, StoreError> {
        let delay = self.base_delay(attempts);
        let jitter = random::up_to((delay / JITTER_DIVISOR).max(0) as u64)
            .map_err(|source| StoreError::Random { what: "the jitter of a retry delay", source })?;
        Ok(delay.saturating_add(jitter as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let backoff = Backoff { base: Duration::from_secs(1), cap: Duration::from_secs(10) };
        let delays: Vec<i64> = (1..=6).map(|attempts| backoff.base_delay(attempts)).collect();
        assert_eq!(delays, [1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(backoff.base_delay(1000), 10_000);
    }

    #[test]
    fn jitter_adds_at_most_a_quarter() {
        let backoff = Backoff { base: Duration::from_secs(4), cap: Duration::from_secs(60) };
        for _ in 0..200 {
            let delay = backoff.delay(2).unwrap();
            assert!((8000..=10_000).contains(&delay), "{delay}");
        }
    }
}
