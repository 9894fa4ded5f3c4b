//! The broker-wide budget of Kafka request bytes read and not yet answered
//! (Kafka's `queued.max.request.bytes`, `--kafka-queued-request-bytes`).
//!
//! Each connection bounds its own requests ([`super::connection::MAX_IN_FLIGHT`]),
//! but a thousand producing connections still add up: a produce holds its
//! records until acks=all completes. Before a connection reads a frame's
//! body it reserves the frame's size here (a frame larger than the whole
//! budget reserves all of it); the reservation is returned when the
//! request has been served. While the budget is spent, connections read
//! no further frames and the client waits, as it does for a slow broker;
//! nothing is refused. Requests wait on the budget in arrival order.

use std::sync::Arc;

use prometheus::{IntCounter, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget, shared by every Kafka listener of the broker.
#[derive(Debug, Clone)]
pub struct RequestMemory {
    semaphore: Arc<Semaphore>,
    budget: usize,
    in_use: IntGauge,
    waits: IntCounter,
}

/// Bytes reserved for one request; returned when dropped.
#[derive(Debug)]
pub struct Reserved {
    _permit: OwnedSemaphorePermit,
    bytes: i64,
    in_use: IntGauge,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.in_use.sub(self.bytes);
    }
}

impl RequestMemory {
    /// A budget of `budget` bytes (at least 1), reporting the bytes held in
    /// `in_use` and every request that had to wait in `waits`.
    pub fn new(budget: usize, in_use: IntGauge, waits: IntCounter) -> Self {
        let budget = budget.clamp(1, u32::MAX as usize);
        Self {
            semaphore: Arc::new(Semaphore::new(budget)),
            budget,
            in_use,
            waits,
        }
    }

    /// The budget in bytes.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// A budget of `budget` bytes reporting into the broker's metrics.
    pub fn with_metrics(budget: usize, metrics: &crate::metrics::Metrics) -> Self {
        Self::new(
            budget,
            metrics.kafka_request_memory_bytes.clone(),
            metrics.kafka_request_memory_waits.clone(),
        )
    }

    /// Reserves `size` bytes (at most the whole budget), waiting while the
    /// budget is spent.
    pub async fn reserve(&self, size: usize) -> Reserved {
        let bytes = size.clamp(1, self.budget) as u32;
        let permit = match Arc::clone(&self.semaphore).try_acquire_many_owned(bytes) {
            Ok(p) => p,
            Err(_) => {
                self.waits.inc();
                Arc::clone(&self.semaphore)
                    .acquire_many_owned(bytes)
                    .await
                    .expect("the semaphore is never closed")
            }
        };
        self.in_use.add(i64::from(bytes));
        Reserved {
            _permit: permit,
            bytes: i64::from(bytes),
            in_use: self.in_use.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn memory(budget: usize) -> RequestMemory {
        RequestMemory::new(
            budget,
            IntGauge::new("in_use", "h").unwrap(),
            IntCounter::new("waits", "h").unwrap(),
        )
    }

    #[tokio::test]
    async fn given_a_spent_budget_then_a_request_waits_until_one_is_served() {
        let m = memory(100);
        let a = m.reserve(60).await;
        let b = m.reserve(40).await;
        assert_eq!(m.in_use.get(), 100);
        let waiting = tokio::spawn({
            let m = m.clone();
            async move { m.reserve(10).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the budget is spent");
        assert_eq!(m.waits.get(), 1);
        drop(a);
        let c = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("served once bytes are returned")
            .unwrap();
        assert_eq!(m.in_use.get(), 50);
        drop((b, c));
        assert_eq!(m.in_use.get(), 0);
    }

    #[tokio::test]
    async fn given_a_frame_larger_than_the_budget_then_it_takes_the_whole_budget() {
        let m = memory(100);
        let big = m.reserve(1 << 20).await;
        assert_eq!(m.in_use.get(), 100);
        drop(big);
        let _small = m.reserve(0).await;
        assert_eq!(m.in_use.get(), 1, "an empty frame still counts");
    }
}
