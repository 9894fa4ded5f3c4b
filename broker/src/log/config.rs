//! Per-topic log settings, parsed from Kafka-style `key=value` topic config
//! with clear errors for unknown keys and bad values.

use std::collections::BTreeMap;
use std::time::Duration;

use rill_controller::service::validate::accepted_not_enforced;
use thiserror::Error;

/// What happens to old data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Whole segments are deleted by age and size.
    Delete,
    /// The last record per key is kept; older ones are removed.
    Compact,
    /// Both: compaction, plus deletion by age and size.
    CompactDelete,
}

impl CleanupPolicy {
    pub fn deletes(self) -> bool {
        matches!(self, Self::Delete | Self::CompactDelete)
    }
    pub fn compacts(self) -> bool {
        matches!(self, Self::Compact | Self::CompactDelete)
    }
}

/// When appended data is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Acknowledge once replicated into memory/page cache; fsync on an
    /// interval (Kafka's default behaviour).
    Replicated,
    /// fsync before acknowledging, several producers sharing one fsync
    /// (group commit).
    Fsync,
}

/// Settings of one partition log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Roll the active segment once it reaches this many bytes.
    pub segment_bytes: u64,
    /// Roll the active segment once it is this old (by creation).
    pub segment_ms: i64,
    /// Delete segments whose newest record is older than this; -1 keeps forever.
    pub retention_ms: i64,
    /// Delete oldest segments while the log is larger than this; -1 means no limit.
    pub retention_bytes: i64,
    pub cleanup_policy: CleanupPolicy,
    /// Bytes of log between two sparse index entries.
    pub index_interval_bytes: u32,
    /// Largest record batch accepted, including its 12-byte frame.
    pub max_batch_bytes: usize,
    pub flush: FlushPolicy,
    /// With `flush=replicated`, how often dirty data is fsynced.
    pub flush_interval: Duration,
    /// Acks=all writes fail unless at least this many replicas are in sync.
    pub min_insync_replicas: u32,
    /// Topic settings the log does not use, kept to report them: those the
    /// controller enforces (`unclean.leader.election.enable`) and Kafka keys
    /// Rill accepts without acting on them (see
    /// [`rill_controller::service::validate::ACCEPTED_NOT_ENFORCED_KEYS`]).
    pub other: BTreeMap<String, String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy::Delete,
            index_interval_bytes: 4096,
            max_batch_bytes: 1_048_588,
            flush: FlushPolicy::Replicated,
            flush_interval: Duration::from_secs(1),
            min_insync_replicas: 1,
            other: BTreeMap::new(),
        }
    }
}

/// A topic config entry that could not be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown topic config key {0:?} (known: {known})", known = KNOWN_KEYS.join(", "))]
    UnknownKey(String),
    #[error("topic config {key}={value:?}: {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
}

/// Topic config keys Rill understands.
pub const KNOWN_KEYS: &[&str] = &[
    "segment.bytes",
    "segment.ms",
    "retention.ms",
    "retention.bytes",
    "cleanup.policy",
    "index.interval.bytes",
    "max.message.bytes",
    "flush",
    "flush.ms",
    "min.insync.replicas",
    "unclean.leader.election.enable",
];

fn bad(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::BadValue {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn int(key: &str, value: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let n: i64 = value
        .trim()
        .parse()
        .map_err(|_| bad(key, value, "not an integer"))?;
    if n < min || n > max {
        return Err(bad(key, value, format!("must be between {min} and {max}")));
    }
    Ok(n)
}

impl LogConfig {
    /// Applies Kafka-style overrides on top of `self`.
    pub fn with_overrides(mut self, map: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        for (key, value) in map {
            let v = value.as_str();
            match key.as_str() {
                "segment.bytes" => self.segment_bytes = int(key, v, 14, i32::MAX as i64)? as u64,
                "segment.ms" => self.segment_ms = int(key, v, 1, i64::MAX)?,
                "retention.ms" => self.retention_ms = int(key, v, -1, i64::MAX)?,
                "retention.bytes" => self.retention_bytes = int(key, v, -1, i64::MAX)?,
                "index.interval.bytes" => {
                    self.index_interval_bytes = int(key, v, 0, i32::MAX as i64)? as u32
                }
                "max.message.bytes" => {
                    self.max_batch_bytes = int(key, v, 61, 64 << 20)? as usize;
                }
                "flush.ms" => {
                    self.flush_interval = Duration::from_millis(int(key, v, 1, i64::MAX)? as u64)
                }
                "min.insync.replicas" => {
                    self.min_insync_replicas = int(key, v, 1, i32::MAX as i64)? as u32
                }
                "cleanup.policy" => {
                    let mut parts: Vec<&str> = v.split(',').map(str::trim).collect();
                    parts.sort_unstable();
                    parts.dedup();
                    self.cleanup_policy = match parts.as_slice() {
                        ["delete"] => CleanupPolicy::Delete,
                        ["compact"] => CleanupPolicy::Compact,
                        ["compact", "delete"] => CleanupPolicy::CompactDelete,
                        _ => return Err(bad(key, v, "expected delete, compact or compact,delete")),
                    };
                }
                "unclean.leader.election.enable" => {
                    if !matches!(v.trim(), "true" | "false") {
                        return Err(bad(key, v, "expected true or false"));
                    }
                    self.other.insert(key.clone(), v.trim().to_owned());
                }
                "flush" => {
                    self.flush = match v.trim() {
                        "replicated" => FlushPolicy::Replicated,
                        "fsync" => FlushPolicy::Fsync,
                        _ => return Err(bad(key, v, "expected replicated or fsync")),
                    };
                }
                _ => match accepted_not_enforced(key, v) {
                    Some(Ok(())) => {
                        self.other.insert(key.clone(), v.trim().to_owned());
                    }
                    Some(Err(reason)) => return Err(bad(key, v, reason)),
                    None => return Err(ConfigError::UnknownKey(key.clone())),
                },
            }
        }
        Ok(self)
    }

    /// The settings as Kafka-style `key=value` pairs (for Metadata and
    /// DescribeConfigs).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let policy = match self.cleanup_policy {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        };
        let flush = match self.flush {
            FlushPolicy::Replicated => "replicated",
            FlushPolicy::Fsync => "fsync",
        };
        [
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
            ("retention.ms", self.retention_ms.to_string()),
            ("retention.bytes", self.retention_bytes.to_string()),
            ("cleanup.policy", policy.to_owned()),
            (
                "index.interval.bytes",
                self.index_interval_bytes.to_string(),
            ),
            ("max.message.bytes", self.max_batch_bytes.to_string()),
            ("flush", flush.to_owned()),
            ("flush.ms", self.flush_interval.as_millis().to_string()),
            ("min.insync.replicas", self.min_insync_replicas.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .chain(self.other.clone())
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn given_kafka_streams_internal_topic_config_then_accepted_and_reported() {
        let c = LogConfig::default()
            .with_overrides(&map(&[
                ("message.timestamp.type", "CreateTime"),
                ("segment.index.bytes", "52428800"),
                ("unclean.leader.election.enable", "false"),
            ]))
            .unwrap();
        let reported = c.to_map();
        assert_eq!(reported["message.timestamp.type"], "CreateTime");
        assert_eq!(reported["unclean.leader.election.enable"], "false");
        assert_eq!(LogConfig::default().with_overrides(&reported).unwrap(), c);
        for (k, v) in [
            ("message.timestamp.type", "LogAppendTime"),
            ("compression.type", "gzip"),
            ("unclean.leader.election.enable", "maybe"),
            ("no.such.key", "1"),
        ] {
            assert!(
                LogConfig::default()
                    .with_overrides(&map(&[(k, v)]))
                    .is_err(),
                "{k}={v}"
            );
        }
    }

    #[test]
    fn given_overrides_then_applied_and_round_trip() {
        let c = LogConfig::default()
            .with_overrides(&map(&[
                ("segment.bytes", "4096"),
                ("cleanup.policy", "delete,compact"),
                ("flush", "fsync"),
                ("retention.ms", "-1"),
            ]))
            .unwrap();
        assert_eq!(c.segment_bytes, 4096);
        assert_eq!(c.cleanup_policy, CleanupPolicy::CompactDelete);
        assert_eq!(c.flush, FlushPolicy::Fsync);
        let again = LogConfig::default().with_overrides(&c.to_map()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn given_bad_input_then_clear_errors() {
        let e = LogConfig::default()
            .with_overrides(&map(&[("segment.bytes", "ten")]))
            .unwrap_err();
        assert!(e.to_string().contains("not an integer"), "{e}");
        let e = LogConfig::default()
            .with_overrides(&map(&[("retention.bytes", "-5")]))
            .unwrap_err();
        assert!(e.to_string().contains("between -1"), "{e}");
        let e = LogConfig::default()
            .with_overrides(&map(&[("flush", "sometimes")]))
            .unwrap_err();
        assert!(e.to_string().contains("replicated or fsync"), "{e}");
        let e = LogConfig::default()
            .with_overrides(&map(&[("retention.mss", "1")]))
            .unwrap_err();
        assert!(matches!(e, ConfigError::UnknownKey(_)));
        assert!(e.to_string().contains("retention.ms"));
    }
}
