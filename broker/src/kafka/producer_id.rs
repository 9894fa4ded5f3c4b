//! InitProducerId and the allocation of producer ids.
//!
//! Idempotent producers (the Java client's default) ask any broker for a
//! producer id once and stamp it on every batch; partitions remember the
//! last sequences per id. Two producers must therefore never get the same
//! id, whichever brokers they ask, including across restarts.
//!
//! Rill partitions the id space by broker instead of asking the
//! controller (which would put a write to the metadata store on the path
//! of every producer start): an id is `broker_id << 51 | counter`, with
//! broker ids up to 4095 (checked by the configuration). Each broker
//! persists the end of the block of counters it hands out
//! (`<data>/producer-ids`, written and fsynced before a block is used), so
//! a restart continues after every id it ever gave out. A broker whose
//! disk was wiped has no file; its counter then starts at the wall clock
//! (64 counters per millisecond since the Unix epoch), which is past every
//! id it handed out before unless it sustained more than 64 new producers
//! per millisecond. The counter space lasts until the year 3000.
//!
//! Transactional producers (a `transactional_id`) get their id and epoch
//! from the transaction coordinator ([`super::txn::init_transactional`]).
//! An idempotent producer asking to bump its epoch (KIP-360, v3+) gets a
//! fresh id, which Kafka also does for non-transactional producers.

use std::path::{Path, PathBuf};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use thiserror::Error;
use tracing::{info, warn};

use super::KafkaContext;

/// Bits of the per-broker counter.
const COUNTER_BITS: u32 = 51;
/// Counters per millisecond of wall clock for a broker without its file.
const COUNTERS_PER_MS: i64 = 64;
/// Counters reserved (and persisted) at a time.
const BLOCK: i64 = 1000;
/// File under the data directory holding the end of the reserved block.
const FILE: &str = "producer-ids";

/// Why no producer id could be allocated.
#[derive(Debug, Error)]
pub enum AllocateError {
    #[error("persisting the producer id block in {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("broker {0} has used up its producer ids")]
    Exhausted(i32),
    #[error("the producer id allocation task failed: {0}")]
    Task(String),
}

#[derive(Debug)]
struct Counter {
    next: i64,
    /// Counters below this are reserved on disk.
    reserved_end: i64,
}

/// Hands out producer ids unique in the cluster.
#[derive(Debug)]
pub struct ProducerIdAllocator {
    broker_id: i32,
    path: PathBuf,
    counter: tokio::sync::Mutex<Counter>,
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl ProducerIdAllocator {
    /// Reads the persisted block end of `data_dir`. Blocking.
    pub fn open(data_dir: &Path, broker_id: i32) -> std::io::Result<Self> {
        let path = data_dir.join(FILE);
        let persisted = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let next = persisted.max(wall_clock_ms().saturating_mul(COUNTERS_PER_MS));
        if persisted == 0 {
            info!(path = %path.display(), "no producer id file; counting from the wall clock");
        }
        Ok(Self {
            broker_id,
            path,
            counter: tokio::sync::Mutex::new(Counter {
                next,
                reserved_end: next,
            }),
        })
    }

    /// A new producer id.
    pub async fn allocate(&self) -> Result<i64, AllocateError> {
        let mut counter = self.counter.lock().await;
        if counter.next >= 1 << COUNTER_BITS {
            return Err(AllocateError::Exhausted(self.broker_id));
        }
        if counter.next >= counter.reserved_end {
            let end = (counter.next + BLOCK).min(1 << COUNTER_BITS);
            let path = self.path.clone();
            tokio::task::spawn_blocking(move || persist(&path, end))
                .await
                .map_err(|e| AllocateError::Task(e.to_string()))?
                .map_err(|source| AllocateError::Io {
                    path: self.path.display().to_string(),
                    source,
                })?;
            counter.reserved_end = end;
        }
        let id = (i64::from(self.broker_id) << COUNTER_BITS) | counter.next;
        counter.next += 1;
        Ok(id)
    }
}

/// Atomically replaces the block end file.
fn persist(path: &Path, end: i64) -> std::io::Result<()> {
    crate::log::write_atomically(path, format!("{end}\n").as_bytes())
}

pub async fn init_producer_id(
    ctx: &KafkaContext,
    version: i16,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    if let Some(id) = request
        .transactional_id
        .as_ref()
        .filter(|id| !id.0.is_empty())
    {
        return super::txn::init_transactional(ctx, version, &request, &id.0.to_string()).await;
    }
    let failed = |error: ResponseError| {
        ctx.count_error(ApiKey::InitProducerId, error.code());
        InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    match ctx.producer_ids.allocate().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            warn!(error = %e, "cannot allocate a producer id");
            failed(ResponseError::KafkaStorageError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn given_restarts_when_ids_allocated_should_never_repeat_and_carry_the_broker_id() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIdAllocator::open(dir.path(), 3).unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..(BLOCK + 5) {
            let id = a.allocate().await.unwrap();
            assert_eq!(id >> COUNTER_BITS, 3);
            assert!(seen.insert(id));
        }
        let last = *seen.iter().max().unwrap();
        // A restart continues after the persisted block, never below it.
        let b = ProducerIdAllocator::open(dir.path(), 3).unwrap();
        let next = b.allocate().await.unwrap();
        assert!(next > last, "{next} after restart <= {last} before");
        // Another broker's ids live in another range.
        let other_dir = tempfile::tempdir().unwrap();
        let other = ProducerIdAllocator::open(other_dir.path(), 4).unwrap();
        assert_eq!(other.allocate().await.unwrap() >> COUNTER_BITS, 4);
    }

    #[tokio::test]
    async fn given_a_wiped_disk_when_ids_allocated_should_start_past_the_wall_clock() {
        let dir = tempfile::tempdir().unwrap();
        let before = wall_clock_ms() * COUNTERS_PER_MS;
        let a = ProducerIdAllocator::open(dir.path(), 0).unwrap();
        assert!(a.allocate().await.unwrap() >= before);
    }
}
