//! Per-topic log settings, parsed from Kafka-style `key=value` topic config
//! with clear errors for unknown keys and bad values. Which keys exist and
//! what their values may be is [`rill_proto::topic::CONFIG_KEYS`]; this
//! module only places the values into a [`LogConfig`].

use std::collections::BTreeMap;
use std::time::Duration;

use rill_proto::topic::{self, ConfigProblem, ConfigValue};
use thiserror::Error;

pub use rill_proto::topic::{CleanupPolicy, FlushPolicy};

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
    /// [`rill_proto::topic::Support::AcceptedOnly`]).
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
    #[error("unknown topic config key {0:?} (known: {known})", known = topic::applied_config_keys().join(", "))]
    UnknownKey(String),
    #[error("topic config {key}={value:?}: {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
}

impl LogConfig {
    /// Applies Kafka-style overrides on top of `self`.
    pub fn with_overrides(mut self, map: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        for (key, value) in map {
            let v = value.as_str();
            // The broker trims every value; `topic::parse_config` leaves
            // `flush` and `unclean.leader.election.enable` as given.
            let parsed = topic::parse_config(key, v.trim()).map_err(|problem| match problem {
                ConfigProblem::UnknownKey => ConfigError::UnknownKey(key.clone()),
                ConfigProblem::BadValue(reason) => ConfigError::BadValue {
                    key: key.clone(),
                    value: v.to_owned(),
                    reason,
                },
            })?;
            match (key.as_str(), parsed) {
                ("segment.bytes", ConfigValue::Int(n)) => self.segment_bytes = n as u64,
                ("segment.ms", ConfigValue::Int(n)) => self.segment_ms = n,
                ("retention.ms", ConfigValue::Int(n)) => self.retention_ms = n,
                ("retention.bytes", ConfigValue::Int(n)) => self.retention_bytes = n,
                ("index.interval.bytes", ConfigValue::Int(n)) => {
                    self.index_interval_bytes = n as u32
                }
                ("max.message.bytes", ConfigValue::Int(n)) => self.max_batch_bytes = n as usize,
                ("flush.ms", ConfigValue::Int(n)) => {
                    self.flush_interval = Duration::from_millis(n as u64)
                }
                ("min.insync.replicas", ConfigValue::Int(n)) => self.min_insync_replicas = n as u32,
                (_, ConfigValue::CleanupPolicy(policy)) => self.cleanup_policy = policy,
                (_, ConfigValue::Flush(flush)) => self.flush = flush,
                // Kept to report: `unclean.leader.election.enable` (the
                // controller acts on it) and the keys Rill only accepts.
                _ => {
                    self.other.insert(key.clone(), v.trim().to_owned());
                }
            }
        }
        Ok(self)
    }

    /// The settings as Kafka-style `key=value` pairs (for Metadata and
    /// DescribeConfigs).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        [
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
            ("retention.ms", self.retention_ms.to_string()),
            ("retention.bytes", self.retention_bytes.to_string()),
            ("cleanup.policy", self.cleanup_policy.as_str().to_owned()),
            (
                "index.interval.bytes",
                self.index_interval_bytes.to_string(),
            ),
            ("max.message.bytes", self.max_batch_bytes.to_string()),
            ("flush", self.flush.as_str().to_owned()),
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
