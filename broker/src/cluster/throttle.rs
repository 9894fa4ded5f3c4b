//! The replication throttle of reassignments: replicas being added to a
//! partition (a reassignment or a drain) catch up from the leader at no
//! more than `--reassignment-throttle-bytes-per-sec` in total on this
//! broker, so the in-sync followers and the clients keep their bandwidth.
//!
//! A token bucket refilled at the rate, holding at most one second of it.
//! Fetches of throttled replicas are sent only while it is not in debt;
//! what they bring back is charged after the answer (so one fetch may
//! overdraw it, and the next waits until the debt is repaid). Replicas in
//! the ISR are never throttled, as in Kafka: slowing them would slow
//! acks=all writes.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus::IntCounter;

/// A byte-rate limit shared by every fetcher of this broker.
#[derive(Debug)]
pub struct Throttle {
    /// Bytes per second; 0 turns the throttle off.
    rate: u64,
    bucket: Mutex<Bucket>,
    /// Bytes fetched for throttled replicas (`rate()` gives bytes/s).
    bytes: IntCounter,
}

#[derive(Debug)]
struct Bucket {
    /// Bytes that may still be fetched; negative while in debt.
    tokens: f64,
    refilled: Instant,
}

impl Throttle {
    /// A throttle of `rate` bytes per second (0: none), counting throttled
    /// bytes in `bytes`.
    pub fn new(rate: u64, bytes: IntCounter) -> Self {
        Self {
            rate,
            bucket: Mutex::new(Bucket {
                tokens: rate as f64,
                refilled: Instant::now(),
            }),
            bytes,
        }
    }

    /// How long throttled replicas must wait before their next fetch;
    /// `None` when they may fetch now.
    pub fn wait(&self) -> Option<Duration> {
        self.wait_at(Instant::now())
    }

    fn wait_at(&self, now: Instant) -> Option<Duration> {
        if self.rate == 0 {
            return None;
        }
        let mut b = self.bucket.lock();
        let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate as f64).min(self.rate as f64);
        b.refilled = now;
        (b.tokens < 0.0).then(|| Duration::from_secs_f64(-b.tokens / self.rate as f64))
    }

    /// Charges `bytes` fetched for throttled replicas.
    pub fn charge(&self, bytes: u64) {
        self.bytes.inc_by(bytes);
        if self.rate > 0 {
            self.bucket.lock().tokens -= bytes as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> IntCounter {
        IntCounter::new("t", "t").expect("valid")
    }

    #[test]
    fn given_a_rate_when_more_is_fetched_then_the_next_fetch_waits_until_the_debt_is_repaid() {
        let t = Throttle::new(1000, counter());
        let start = Instant::now();
        assert_eq!(t.wait_at(start), None, "a full bucket");
        t.charge(3000);
        let wait = t.wait_at(start).expect("in debt");
        assert!(
            (wait.as_secs_f64() - 2.0).abs() < 0.01,
            "2000 bytes of debt at 1000/s: {wait:?}"
        );
        assert!(t.wait_at(start + Duration::from_millis(1500)).is_some());
        assert_eq!(t.wait_at(start + Duration::from_millis(2100)), None);
        assert_eq!(t.bytes.get(), 3000);
    }

    #[test]
    fn given_rate_zero_then_nothing_waits_but_bytes_are_counted() {
        let t = Throttle::new(0, counter());
        t.charge(u64::MAX / 2);
        assert_eq!(t.wait(), None);
        assert_eq!(t.bytes.get(), u64::MAX / 2);
    }

    #[test]
    fn given_a_long_idle_time_then_the_bucket_holds_at_most_one_second() {
        let t = Throttle::new(1000, counter());
        let start = Instant::now();
        assert_eq!(t.wait_at(start + Duration::from_secs(60)), None);
        t.charge(1500);
        assert!(
            t.wait_at(start + Duration::from_secs(60)).is_some(),
            "idle time does not bank more than a second"
        );
    }
}
