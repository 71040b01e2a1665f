//! How long to wait before trying a failing remote again: exponential backoff with a cap and jitter.

use std::time::Duration;

/// The first retry of a failing remote: soon enough that a short outage is bridged quickly.
pub const REMOTE_RETRY_BASE: Duration = Duration::from_secs(15);
/// The longest wait: an outage is noticed within this after it ends.
pub const REMOTE_RETRY_CAP: Duration = Duration::from_secs(15 * 60);
/// Up to this fraction of the delay is added at random, so that servers sharing a remote spread out.
pub const REMOTE_RETRY_JITTER: f64 = 0.2;

/// `min(base * 2^(failures - 1), cap)` plus `jitter_sample * jitter * delay`; zero for no failures.
/// `jitter_sample` is a random number in `[0, 1)` (clamped), supplied by the caller so that this
/// stays a pure function.
pub fn backoff_delay(
    failures: u32,
    base: Duration,
    cap: Duration,
    jitter: f64,
    jitter_sample: f64,
) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doublings = failures - 1;
    let delay = 2u32
        .checked_pow(doublings)
        .and_then(|factor| base.checked_mul(factor))
        .map_or(cap, |delay| delay.min(cap));
    delay + delay.mul_f64(jitter * jitter_sample.clamp(0.0, 1.0))
}

/// The wait after `failures` consecutive failed fetches.
pub fn remote_retry_delay(failures: u32, jitter_sample: f64) -> Duration {
    backoff_delay(failures, REMOTE_RETRY_BASE, REMOTE_RETRY_CAP, REMOTE_RETRY_JITTER, jitter_sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_bounded_jitter() {
        let seconds = Duration::from_secs;
        let cases = [
            (0, 0.0, seconds(0)),
            (0, 0.9, seconds(0)),
            (1, 0.0, seconds(15)),
            (2, 0.0, seconds(30)),
            (3, 0.0, seconds(60)),
            (6, 0.0, seconds(480)),
            (7, 0.0, seconds(900)),
            (40, 0.0, seconds(900)),
            (u32::MAX, 0.0, seconds(900)),
            (1, 0.5, seconds(15) + Duration::from_millis(1500)),
            (40, 1.0, seconds(1080)),
            (1, 7.0, seconds(18)),
            (1, -1.0, seconds(15)),
        ];
        for (failures, jitter_sample, expected) in cases {
            assert_eq!(
                remote_retry_delay(failures, jitter_sample),
                expected,
                "{failures} failures, {jitter_sample}"
            );
        }
    }
}
