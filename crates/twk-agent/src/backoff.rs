//! Reconnect delays: exponential with full jitter, reset after a stable session.

use rand::Rng;
use std::time::Duration;
use twk_protocol::limits;

/// Full-jitter exponential backoff (AWS architecture blog; cloudflared): the n-th delay is
/// uniform in `[0, min(cap, base · 2ⁿ)]`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(limits::BACKOFF_BASE, limits::BACKOFF_CAP)
    }
}

impl Backoff {
    /// A backoff from `base` to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The ceiling of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next delay (random below the ceiling), advancing the attempt counter.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }

    /// Back to the first delay (after a stable session).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        let mut b = Backoff::default();
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(b.ceiling());
            let d = b.next_delay();
            assert!(d <= *ceilings.last().unwrap());
        }
        assert_eq!(ceilings[0], Duration::from_millis(500));
        assert_eq!(ceilings[1], Duration::from_secs(1));
        assert_eq!(ceilings[5], Duration::from_secs(16));
        assert_eq!(ceilings[6], Duration::from_secs(30));
        assert_eq!(ceilings[9], Duration::from_secs(30));
        for _ in 0..1000 {
            b.next_delay();
        }
        assert_eq!(b.ceiling(), Duration::from_secs(30));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(500));
    }
}
