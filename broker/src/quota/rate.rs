//! The rate a quota limits and the throttle time of a violation, computed
//! as Kafka computes them (its `Rate` over a `SampledStat`, and
//! `QuotaUtils.throttleTime`), without I/O: time is passed in as
//! milliseconds on any monotonic clock.
//!
//! A [`SampledRate`] keeps `samples` windows of `window_ms` each. A value
//! is added to the current window, or to a new one when the current
//! window is over (new windows stay aligned to the previous one's grid,
//! the oldest window is reused). Windows older than `samples * window_ms`
//! are forgotten. The rate is the sum over the windows divided by the time
//! they span, counted as at least `samples - 1` whole windows, so a client
//! that just started is not measured over a few milliseconds.
//!
//! When a value brings the rate above the quota, the client is throttled
//! for the time the rate needs, with nothing more recorded, to fall back to
//! the quota: `(rate - quota) / quota * window span`.

/// Windows and their length (Kafka's `quota.window.num` and
/// `quota.window.size.seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    pub samples: u32,
    pub window_ms: u64,
}

impl Default for WindowConfig {
    /// Kafka's defaults: 11 windows of 1 s.
    fn default() -> Self {
        Self {
            samples: 11,
            window_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// When the window started.
    start_ms: u64,
    value: f64,
}

/// A rate measured over a ring of windows.
#[derive(Debug, Clone)]
pub struct SampledRate {
    config: WindowConfig,
    samples: Vec<Sample>,
    current: usize,
    /// When a value was last recorded (idle rates are dropped).
    pub last_record_ms: u64,
}

impl SampledRate {
    pub fn new(config: WindowConfig, now_ms: u64) -> Self {
        Self {
            config: WindowConfig {
                samples: config.samples.max(1),
                window_ms: config.window_ms.max(1),
            },
            samples: vec![Sample {
                start_ms: now_ms,
                value: 0.0,
            }],
            current: 0,
            last_record_ms: now_ms,
        }
    }

    /// Adds `value` (negative to take back what was added) at `now_ms`.
    pub fn record(&mut self, value: f64, now_ms: u64) {
        let window = self.config.window_ms;
        let current = self.samples[self.current];
        if now_ms.saturating_sub(current.start_ms) >= window {
            // The new window starts where the previous one's grid puts it.
            let previous_end = current.start_ms + window;
            let start = now_ms - (now_ms - previous_end) % window;
            self.current = (self.current + 1) % self.config.samples as usize;
            let fresh = Sample {
                start_ms: start,
                value: 0.0,
            };
            if self.current >= self.samples.len() {
                self.samples.push(fresh);
            } else {
                self.samples[self.current] = fresh;
            }
        }
        self.samples[self.current].value += value;
        self.last_record_ms = now_ms;
    }

    /// Forgets windows that started `samples * window_ms` or more ago.
    fn purge(&mut self, now_ms: u64) {
        let expire = u64::from(self.config.samples) * self.config.window_ms;
        for s in &mut self.samples {
            if now_ms.saturating_sub(s.start_ms) >= expire {
                *s = Sample {
                    start_ms: now_ms,
                    value: 0.0,
                };
            }
        }
    }

    /// The time the rate is measured over, in milliseconds: since the
    /// oldest window started, and at least `samples - 1` windows.
    pub fn window_span_ms(&mut self, now_ms: u64) -> u64 {
        self.purge(now_ms);
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        let mut elapsed = now_ms.saturating_sub(oldest);
        let window = self.config.window_ms;
        let full = elapsed / window;
        let min_full = u64::from(self.config.samples - 1);
        if full < min_full {
            elapsed += (min_full - full) * window;
        }
        elapsed.max(1)
    }

    /// The rate per second at `now_ms`.
    pub fn measure(&mut self, now_ms: u64) -> f64 {
        let span = self.window_span_ms(now_ms);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total / (span as f64 / 1000.0)
    }

    /// Records `value` and checks the rate against `quota`: the throttle
    /// time in milliseconds when it is above it, else 0.
    pub fn record_and_throttle(&mut self, value: f64, quota: f64, now_ms: u64) -> u64 {
        self.record(value, now_ms);
        let rate = self.measure(now_ms);
        if rate <= quota {
            return 0;
        }
        let span = self.window_span_ms(now_ms);
        throttle_time_ms(rate, quota, span)
    }
}

/// How long a client whose rate is `rate` must send nothing for its rate,
/// measured over `span_ms`, to come back to `quota` (Kafka's
/// `QuotaUtils.throttleTime`, rounded to the millisecond).
pub fn throttle_time_ms(rate: f64, quota: f64, span_ms: u64) -> u64 {
    if rate <= quota || quota <= 0.0 {
        return 0;
    }
    let ms = (rate - quota) / quota * span_ms as f64;
    if ms >= u64::MAX as f64 {
        u64::MAX
    } else {
        ms.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAFKA: WindowConfig = WindowConfig {
        samples: 11,
        window_ms: 1000,
    };

    #[test]
    fn given_a_new_rate_when_measured_then_it_spans_at_least_samples_minus_one_windows() {
        let mut r = SampledRate::new(KAFKA, 0);
        r.record(10_000.0, 0);
        assert_eq!(r.window_span_ms(0), 10_000);
        assert_eq!(r.measure(0), 1000.0, "10 000 bytes over 10 s");
        assert_eq!(r.window_span_ms(500), 10_500);
        // After 10 whole windows the span is the elapsed time.
        r.record(0.0, 10_200);
        assert_eq!(r.window_span_ms(10_200), 10_200);
    }

    #[test]
    fn given_steady_traffic_when_measured_then_the_rate_is_the_traffic_per_second() {
        let mut r = SampledRate::new(KAFKA, 0);
        // 1000 bytes every 100 ms, for 30 s: 10 000 bytes/s.
        let mut last = 0.0;
        for i in 0..300u64 {
            r.record(1000.0, i * 100);
            last = r.measure(i * 100);
        }
        assert!((last - 10_000.0).abs() / 10_000.0 < 0.1, "rate {last}");
    }

    #[test]
    fn given_old_windows_when_measured_then_they_are_forgotten() {
        let mut r = SampledRate::new(KAFKA, 0);
        r.record(50_000.0, 0);
        assert!(r.measure(5_000) > 0.0);
        assert_eq!(r.measure(11_000), 0.0, "the window is 11 s old");
    }

    #[test]
    fn given_a_window_over_when_recording_then_new_windows_stay_on_the_grid() {
        let mut r = SampledRate::new(KAFKA, 0);
        r.record(1.0, 0);
        r.record(1.0, 2_500);
        assert_eq!(r.samples[r.current].start_ms, 2_000);
        r.record(1.0, 3_100);
        assert_eq!(r.samples[r.current].start_ms, 3_000);
        assert_eq!(r.samples.len(), 3);
    }

    #[test]
    fn given_a_ring_when_full_then_the_oldest_window_is_reused() {
        let cfg = WindowConfig {
            samples: 3,
            window_ms: 1000,
        };
        let mut r = SampledRate::new(cfg, 0);
        for t in [0, 1000, 2000, 3000] {
            r.record(100.0, t);
        }
        assert_eq!(r.samples.len(), 3);
        let starts: Vec<u64> = r.samples.iter().map(|s| s.start_ms).collect();
        assert_eq!(starts, vec![3000, 1000, 2000]);
        // 300 bytes over 2 s since the oldest window (1000).
        assert_eq!(r.measure(3000), 150.0);
    }

    #[test]
    fn given_a_rate_over_its_quota_then_the_throttle_brings_it_back_as_kafka_computes() {
        // A 1 MB burst against 100 KB/s: the rate over the 10 s span is
        // 100 KB/s + 4.8576 KB/s, 4.8576% over; 4.8576% of 10 s.
        let mut r = SampledRate::new(KAFKA, 0);
        let throttle = r.record_and_throttle(1_048_576.0, 100_000.0, 0);
        assert_eq!(throttle, 486);
        // Waiting that long brings the measured rate to the quota.
        let after = r.measure(throttle);
        assert!((after - 100_000.0).abs() < 10.0, "rate {after}");
        // Under the quota: no throttle.
        let mut r = SampledRate::new(KAFKA, 0);
        assert_eq!(r.record_and_throttle(1000.0, 100_000.0, 0), 0);
        assert_eq!(throttle_time_ms(200.0, 100.0, 10_000), 10_000);
        assert_eq!(throttle_time_ms(50.0, 100.0, 10_000), 0);
    }

    #[test]
    fn given_a_value_taken_back_then_the_rate_is_as_before() {
        let mut r = SampledRate::new(KAFKA, 0);
        r.record(500.0, 100);
        let before = r.measure(200);
        r.record(9_000.0, 200);
        r.record(-9_000.0, 200);
        assert_eq!(r.measure(200), before);
    }
}
