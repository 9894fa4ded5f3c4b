//! Partition log storage.
//!
//! One directory per partition replica holds segments named by their
//! 20-digit base offset: `.log` (Kafka RecordBatch v2, stored verbatim),
//! `.index` (sparse relative offset -> file position) and `.timeindex`
//! (sparse max timestamp -> relative offset).
//!
//! Data flows like this:
//! - a producer's bytes are validated by [`batch`] (bounds, magic, CRC-32C),
//!   given offsets and the leader epoch in their parsed headers, and appended by
//!   [`PartitionLog::append`] to the active [`segment`];
//! - reads ([`PartitionLog::read`]) find the segment, use the sparse index
//!   to seek near the batch and return whole stored batches unchanged;
//! - durability follows the topic's [`FlushPolicy`]: `replicated` fsyncs on
//!   an interval, `fsync` makes every acknowledged append durable through
//!   [`GroupCommit`], one fsync serving every producer that waited for it;
//! - retention ([`PartitionLog::enforce_retention`]) deletes whole segments,
//!   compaction ([`cleaner`]) rewrites sealed segments keeping the last
//!   record per key;
//! - on open, the tail segment (and any segment without valid index files)
//!   is validated batch by batch and cut at the first torn or corrupt batch.

pub mod batch;
pub mod cleaner;
pub mod config;
mod flush;
mod index;
pub mod number_file;
mod partition;
pub mod segment;
pub mod txnindex;

#[cfg(test)]
mod proptests;
#[cfg(test)]
pub(crate) mod tests;

use std::io;

use thiserror::Error;

pub use batch::BatchError;
pub use config::{CleanupPolicy, ConfigError, FlushPolicy, LogConfig};
pub use flush::GroupCommit;
pub use index::{sync_dir, write_atomically, write_replacing};
pub use partition::{
    AppendInfo, MAX_STORED_BATCH, PartitionLog, ReadResult, RetentionResult, SyncHandle, Unlinked,
    appends_in_process,
};

/// Errors of the storage layer.
#[derive(Debug, Error)]
pub enum LogError {
    /// The request carried a bad record batch; nothing was written.
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// The disk is full; nothing was written and the log stays readable.
    #[error("disk full while {context}: {source}")]
    DiskFull { context: String, source: io::Error },
    #[error("I/O error while {context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("offset {offset} is out of range: the log holds {log_start}..{log_end}")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// A replicated batch would not continue the log.
    #[error("replicated batch at offset {offset} does not continue the log ending at {log_end}")]
    NonMonotonic { offset: i64, log_end: i64 },
    #[error("corrupt data in {dir}: {reason}")]
    Corrupt { dir: String, reason: String },
}

impl LogError {
    /// Wraps an I/O error, telling disk-full apart.
    pub fn io(context: String, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::StorageFull || source.raw_os_error() == Some(28) {
            Self::DiskFull { context, source }
        } else {
            Self::Io { context, source }
        }
    }

    /// Short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidBatch(_) => "invalid_batch",
            Self::DiskFull { .. } => "disk_full",
            Self::Io { .. } => "io",
            Self::OffsetOutOfRange { .. } => "offset_out_of_range",
            Self::NonMonotonic { .. } => "non_monotonic",
            Self::Corrupt { .. } => "corrupt",
        }
    }
}
