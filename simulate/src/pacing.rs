//! Rate control: a token bucket that paces whole batches.
//!
//! The bucket holds at most one batch of tokens and refills at `rate` per
//! second. Taking a batch always succeeds and may leave the bucket in debt;
//! the caller then waits the returned time before sending. So the generator
//! sleeps once per batch, never per event, a sender that fell behind (a slow
//! server) does not burst more than one batch to catch up, and the long-run
//! rate is exactly `rate`. The bucket is clock-agnostic: callers pass the
//! time since start, from `tokio::time` (pausable in tests) or `std::time`.

use std::time::Duration;

/// A token bucket over event counts.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens refilling at `rate` per second;
    /// `rate <= 0` means unlimited.
    pub fn new(rate: f64, capacity: usize) -> Self {
        let capacity = capacity.max(1) as f64;
        Self {
            rate,
            capacity,
            tokens: capacity,
            last: Duration::ZERO,
        }
    }

    /// Takes `n` tokens at `now` (time since start) and returns how long to
    /// wait before sending them.
    pub fn take(&mut self, n: usize, now: Duration) -> Duration {
        if self.rate <= 0.0 {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity) - n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(-self.tokens / self.rate).unwrap_or(Duration::MAX)
        }
    }
}

/// Resolves at `deadline`, or never.
pub(crate) async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Takes `n` tokens and sleeps the debt off (the network outputs' pacing).
/// Returns false when `shutdown` or the deadline comes first.
pub(crate) async fn wait_turn<S>(
    bucket: &mut TokenBucket,
    n: usize,
    started: tokio::time::Instant,
    deadline: Option<tokio::time::Instant>,
    shutdown: &mut S,
) -> bool
where
    S: std::future::Future<Output = ()> + Unpin,
{
    let wait = bucket.take(n, started.elapsed());
    if wait.is_zero() {
        return true;
    }
    tokio::select! {
        biased;
        () = &mut *shutdown => false,
        () = until(deadline) => false,
        () = tokio::time::sleep(wait) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_batches_at_the_rate() {
        let mut b = TokenBucket::new(1_000.0, 100);
        let mut now = Duration::ZERO;
        assert_eq!(
            b.take(100, now),
            Duration::ZERO,
            "a full bucket sends at once"
        );
        let mut sent = 100;
        // Simulate a sender that always waits as told.
        while now < Duration::from_secs(10) {
            now += b.take(100, now);
            sent += 100;
        }
        // 10 s at 1000/s, plus the first full bucket.
        assert!((10_000..=10_200).contains(&sent), "{sent}");
    }

    #[test]
    fn idle_time_does_not_buy_a_burst() {
        let mut b = TokenBucket::new(100.0, 10);
        assert_eq!(b.take(10, Duration::ZERO), Duration::ZERO);
        // An hour idle refills only one batch.
        let later = Duration::from_secs(3_600);
        assert_eq!(b.take(10, later), Duration::ZERO);
        assert_eq!(b.take(10, later), Duration::from_millis(100));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let mut b = TokenBucket::new(0.0, 10);
        for _ in 0..1_000 {
            assert_eq!(b.take(10, Duration::ZERO), Duration::ZERO);
        }
    }
}
