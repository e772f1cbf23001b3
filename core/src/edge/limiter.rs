//! A token bucket for challenges, one per edge instance (an Envoy worker's VM, a Worker
//! isolate). Integer milli-tokens, time passed in: deterministic and testable.

#[allow(unused_imports)]
use crate::prelude::*;

use super::settings::ChallengeRate;

/// The bucket. Starts full.
#[derive(Clone, Debug)]
pub struct ChallengeLimiter {
    rate: Option<ChallengeRate>,
    milli_tokens: u64,
    last_ms: Option<u64>,
}

impl ChallengeLimiter {
    /// A bucket for `rate`; `None` lets everything through.
    pub fn new(rate: Option<ChallengeRate>) -> Self {
        ChallengeLimiter {
            rate,
            milli_tokens: rate.map_or(0, |r| u64::from(r.burst) * 1000),
            last_ms: None,
        }
    }

    /// Takes one challenge at `now_ms`; `false` when the bucket is empty.
    pub fn take(&mut self, now_ms: u64) -> bool {
        let Some(rate) = self.rate else {
            return true;
        };
        let cap = u64::from(rate.burst) * 1000;
        if let Some(last) = self.last_ms {
            // A clock that steps back refills nothing (and never underflows).
            let elapsed = now_ms.saturating_sub(last);
            let refill = elapsed.saturating_mul(u64::from(rate.per_second));
            self.milli_tokens = self.milli_tokens.saturating_add(refill).min(cap);
        }
        self.last_ms = Some(now_ms.max(self.last_ms.unwrap_or(0)));
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut b = ChallengeLimiter::new(Some(ChallengeRate {
            per_second: 10,
            burst: 3,
        }));
        assert!(b.take(1_000) && b.take(1_000) && b.take(1_000));
        assert!(!b.take(1_000));
        assert!(!b.take(1_050)); // half a token
        assert!(b.take(1_100)); // 100 ms at 10/s: one
        assert!(!b.take(1_100));
        assert!(!b.take(900), "a clock stepping back refills nothing");
        assert!(b.take(10_000) && b.take(10_000) && b.take(10_000));
        assert!(!b.take(10_000), "never above the burst");
        let mut off = ChallengeLimiter::new(None);
        assert!((0..10_000).all(|_| off.take(0)));
    }
}
