//! Produce, fetch and offset requests of [`ReplicaManager`]: each is
//! bounded here (sizes, timeouts, long-poll waits), routed to the local
//! [`Partition`](crate::partition::Partition) and answered from it.

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::info;

use super::{CreateTopic, ReplicaManager};
use crate::partition::{Acks, ClientRead, Error, FetchResult, Isolation, ProduceResult};

/// Longest a fetch may long-poll, whatever the client asks.
pub const MAX_FETCH_WAIT: Duration = Duration::from_secs(30);
/// Fetch size when the client leaves `max_bytes` at 0.
pub const DEFAULT_FETCH_BYTES: usize = 1 << 20;
/// Produce durability timeout when the client leaves it at 0.
pub const DEFAULT_PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest produce durability timeout a client may ask for.
pub const MAX_PRODUCE_TIMEOUT: Duration = Duration::from_secs(300);

/// Which offset ListOffsets resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The last stable offset (latest for read_committed consumers).
    LastStable,
    Timestamp(i64),
    /// The first record with the largest timestamp.
    MaxTimestamp,
}

/// An offset found by ListOffsets for a Kafka client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAnswer {
    /// -1 when no record matches.
    pub offset: i64,
    /// -1 unless resolved by timestamp.
    pub timestamp: i64,
    /// Leader epoch of the batch holding the offset, -1 when unknown.
    pub leader_epoch: i32,
}

/// One partition of a multi-partition consumer fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Largest data for this partition (0: the broker default).
    pub max_bytes: usize,
    /// -1: no check.
    pub current_leader_epoch: i32,
    /// -1: no divergence check.
    pub last_fetched_epoch: i32,
    pub isolation: Isolation,
}

/// Bounds of a multi-partition consumer fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// Largest response (0: the broker default); the first partition with
    /// data may exceed it by one batch, so consumers always progress.
    pub max_bytes: usize,
    /// Return as soon as this much data is available...
    pub min_bytes: usize,
    /// ...or this much time passed (capped at [`MAX_FETCH_WAIT`]).
    pub max_wait: Duration,
}

impl ReplicaManager {
    /// Appends `data` (one or more RecordBatch v2) to a partition.
    pub async fn produce(
        &self,
        topic: &str,
        partition: i32,
        data: impl Into<bytes::Bytes>,
        acks: Acks,
        timeout_ms: u32,
    ) -> Result<ProduceResult, Error> {
        let data: bytes::Bytes = data.into();
        if data.len() > self.settings.max_request_bytes {
            return Err(Error::RequestTooLarge {
                size: data.len(),
                max: self.settings.max_request_bytes,
            });
        }
        let p = match self.partition(topic, partition) {
            Err(Error::UnknownTopic(_)) if self.settings.auto_create_partitions.is_some() => {
                self.auto_create(topic).await?;
                self.partition(topic, partition)?
            }
            other => other?,
        };
        let timeout = match timeout_ms {
            0 => DEFAULT_PRODUCE_TIMEOUT,
            ms => Duration::from_millis(u64::from(ms)).min(MAX_PRODUCE_TIMEOUT),
        };
        p.produce(data, acks, timeout).await
    }

    async fn auto_create(&self, topic: &str) -> Result<(), Error> {
        let partitions = self.settings.auto_create_partitions.unwrap_or(1);
        let request = CreateTopic {
            name: topic.to_owned(),
            partitions,
            replication_factor: -1,
            config: BTreeMap::new(),
        };
        match self.create_topic(request).await {
            Ok(_) => {
                info!(topic, partitions, "auto-created topic on produce");
                Ok(())
            }
            // Another producer won the race.
            Err(Error::TopicExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads whole batches from `offset`, long-polling up to `max_wait_ms`
    /// (capped at [`MAX_FETCH_WAIT`]) for `min_bytes`.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: u32,
        min_bytes: u32,
        max_wait_ms: u32,
    ) -> Result<FetchResult, Error> {
        let p = self.partition(topic, partition)?;
        let max_bytes = match max_bytes as usize {
            0 => DEFAULT_FETCH_BYTES,
            n => n.min(self.settings.max_request_bytes),
        };
        let min_bytes = (min_bytes as usize).min(max_bytes);
        let max_wait = Duration::from_millis(u64::from(max_wait_ms)).min(MAX_FETCH_WAIT);
        p.fetch(offset, max_bytes, min_bytes, max_wait).await
    }

    /// Resolves an offset; returns (offset, timestamp), -1 where none.
    pub fn list_offsets(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> Result<(i64, i64), Error> {
        let p = self.partition(topic, partition)?;
        match spec {
            OffsetSpec::Earliest => Ok((p.earliest_offset()?, -1)),
            OffsetSpec::Latest => Ok((p.latest_offset()?, -1)),
            OffsetSpec::LastStable => Ok((p.last_stable_offset()?, -1)),
            OffsetSpec::Timestamp(ts) => Ok(p.offset_for_timestamp(ts)?.unwrap_or((-1, -1))),
            OffsetSpec::MaxTimestamp => Ok(p.offset_for_max_timestamp()?.unwrap_or((-1, -1))),
        }
    }

    /// ListOffsets for a Kafka client: checks the leader epoch
    /// (`current_leader_epoch` -1: no check), resolves `spec` below the HW
    /// and tells the leader epoch of the batch holding the offset.
    pub fn list_offsets_for_client(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
        current_leader_epoch: i32,
    ) -> Result<OffsetAnswer, Error> {
        let p = self.partition(topic, partition)?;
        p.check_leader_epoch(current_leader_epoch)?;
        let found = |hit: Option<(i64, i64)>| match hit {
            Some((offset, timestamp)) => OffsetAnswer {
                offset,
                timestamp,
                leader_epoch: p.epoch_of_offset(offset),
            },
            None => OffsetAnswer {
                offset: -1,
                timestamp: -1,
                leader_epoch: -1,
            },
        };
        Ok(match spec {
            OffsetSpec::Earliest => {
                let offset = p.earliest_offset()?;
                OffsetAnswer {
                    offset,
                    timestamp: -1,
                    leader_epoch: p.epoch_of_offset(offset),
                }
            }
            OffsetSpec::Latest => OffsetAnswer {
                offset: p.latest_offset()?,
                timestamp: -1,
                leader_epoch: p.latest_epoch(),
            },
            OffsetSpec::LastStable => OffsetAnswer {
                offset: p.last_stable_offset()?,
                timestamp: -1,
                leader_epoch: p.latest_epoch(),
            },
            OffsetSpec::Timestamp(ts) => found(p.offset_for_timestamp(ts)?),
            OffsetSpec::MaxTimestamp => found(p.offset_for_max_timestamp()?),
        })
    }

    /// OffsetForLeaderEpoch for a consumer: the largest epoch <= `epoch`
    /// this leader's log has and the offset where it ends.
    pub fn offset_for_leader_epoch(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
        epoch: i32,
    ) -> Result<(i32, i64), Error> {
        self.partition(topic, partition)?
            .epoch_end_offset(current_leader_epoch, epoch)
    }

    /// A consumer fetch of several partitions: reads each below its HW;
    /// returns once `min_bytes` are available, a partition fails or
    /// diverges, the broker shuts down, or `max_wait` passed (any HW change
    /// of a requested partition re-reads). Results are in request order.
    /// The response holds at most `max_bytes`, except that the first
    /// partition with data returns at least one whole batch (KIP-74).
    pub async fn fetch_many(
        &self,
        requests: &[FetchPartition],
        limits: FetchLimits,
    ) -> Vec<Result<ClientRead, Error>> {
        let max_total = match limits.max_bytes {
            0 => DEFAULT_FETCH_BYTES,
            n => n.min(self.settings.max_request_bytes),
        };
        let min_bytes = limits.min_bytes.min(max_total);
        let deadline = tokio::time::Instant::now() + limits.max_wait.min(MAX_FETCH_WAIT);
        loop {
            let mut watchers = Vec::with_capacity(requests.len());
            let mut results = Vec::with_capacity(requests.len());
            let mut remaining = max_total;
            let mut total = 0usize;
            let mut done = false;
            for r in requests {
                let result = self.partition(&r.topic, r.partition).and_then(|p| {
                    // Subscribed before reading: a change between the read
                    // and the wait below still wakes it.
                    let mut hw = p.subscribe_high_watermark();
                    hw.borrow_and_update();
                    watchers.push(hw);
                    done |= p.is_closing();
                    let limit = match r.max_bytes {
                        0 => DEFAULT_FETCH_BYTES,
                        n => n,
                    }
                    .min(remaining);
                    p.read_for_client(
                        r.offset,
                        limit,
                        total == 0,
                        r.current_leader_epoch,
                        r.last_fetched_epoch,
                        r.isolation,
                    )
                });
                match &result {
                    Ok(read) => {
                        total += read.data.len();
                        remaining = remaining.saturating_sub(read.data.len());
                        done |= read.diverging.is_some();
                    }
                    Err(_) => done = true,
                }
                results.push(result);
            }
            if done || total >= min_bytes || tokio::time::Instant::now() >= deadline {
                return results;
            }
            let _waiting = crate::partition::WaitingGuard::new(&self.metrics);
            if watchers.is_empty() {
                tokio::time::sleep_until(deadline).await;
                continue;
            }
            let any_change =
                futures::future::select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
            tokio::select! {
                _ = any_change => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}
