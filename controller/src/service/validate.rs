//! Checks on topic admin requests made before they reach the core, by the
//! shared rules of [`rill_proto::topic`]: topic names follow Kafka's rules,
//! partition counts are bounded, and topic config is the table of
//! Kafka-style keys with typed values. The broker applies these settings;
//! the controller only refuses what no broker would accept, so a bad
//! config never becomes durable metadata.

use std::collections::BTreeMap;

use rill_proto::topic::MAX_PARTITIONS_PER_TOPIC;
use rill_proto::topic::{self, ConfigProblem};

use super::error::ServiceError;

/// Kafka's topic name rules: 1..=249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn topic_name(name: &str) -> Result<(), ServiceError> {
    topic::validate_topic_name(name).map_err(|e| ServiceError::InvalidTopicName {
        name: name.to_owned(),
        reason: e.problem.short(),
    })
}

/// A partition count for a new topic or a new total.
pub fn partition_count(n: i32) -> Result<(), ServiceError> {
    if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&n) {
        return Err(ServiceError::InvalidArgument(format!(
            "partitions must be between 1 and {MAX_PARTITIONS_PER_TOPIC}, got {n}"
        )));
    }
    Ok(())
}

fn bad(key: &str, value: &str, reason: impl Into<String>) -> ServiceError {
    ServiceError::InvalidConfig {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// Checks every key and value; `replication_factor` bounds
/// `min.insync.replicas` (a larger value could never be satisfied).
pub fn topic_config(
    config: &BTreeMap<String, String>,
    replication_factor: i32,
) -> Result<(), ServiceError> {
    for (key, value) in config {
        let v = value.as_str();
        if key == "min.insync.replicas" {
            topic::min_insync_replicas_within(v, replication_factor)
                .map_err(|reason| bad(key, v, reason))?;
            continue;
        }
        match topic::parse_config(key, v) {
            Ok(_) => {}
            Err(ConfigProblem::BadValue(reason)) => return Err(bad(key, v, reason)),
            Err(ConfigProblem::UnknownKey) => {
                let mut known = topic::applied_config_keys();
                known.sort_unstable();
                return Err(bad(
                    key,
                    v,
                    format!("unknown key; known keys: {}", known.join(", ")),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_kafka_legal_names_when_checked_should_pass() {
        for name in ["a", "orders", "Orders.v2_x-1", &"x".repeat(249), "..."] {
            assert!(topic_name(name).is_ok(), "{name:?}");
        }
    }

    #[test]
    fn given_illegal_names_when_checked_should_fail_with_the_reason() {
        for (name, reason) in [
            ("", "empty"),
            (".", "reserved"),
            ("..", "reserved"),
            ("a b", "illegal character"),
            ("a/b", "illegal character"),
            ("é", "illegal character"),
        ] {
            match topic_name(name) {
                Err(ServiceError::InvalidTopicName { reason: r, .. }) => {
                    assert_eq!(r, reason, "{name:?}")
                }
                other => panic!("{name:?}: {other:?}"),
            }
        }
        assert!(topic_name(&"x".repeat(250)).is_err());
    }

    #[test]
    fn given_configs_when_checked_should_accept_known_keys_and_refuse_the_rest() {
        let ok = BTreeMap::from([
            ("retention.ms".to_owned(), "-1".to_owned()),
            ("cleanup.policy".to_owned(), "compact, delete".to_owned()),
            ("min.insync.replicas".to_owned(), "2".to_owned()),
            (
                "unclean.leader.election.enable".to_owned(),
                "false".to_owned(),
            ),
        ]);
        assert!(topic_config(&ok, 3).is_ok());
        // What Kafka Streams sets on its repartition and changelog topics.
        let streams = BTreeMap::from([
            ("message.timestamp.type".to_owned(), "CreateTime".to_owned()),
            ("segment.index.bytes".to_owned(), "52428800".to_owned()),
            ("min.compaction.lag.ms".to_owned(), "0".to_owned()),
        ]);
        assert!(topic_config(&streams, 3).is_ok());
        for (k, v) in [
            ("retention.ms", "soon"),
            ("cleanup.policy", "archive"),
            ("min.insync.replicas", "4"),
            ("no.such.key", "1"),
            ("flush", "sometimes"),
            ("message.timestamp.type", "LogAppendTime"),
            ("compression.type", "zstd"),
            ("min.compaction.lag.ms", "soon"),
        ] {
            let one = BTreeMap::from([(k.to_owned(), v.to_owned())]);
            assert!(
                matches!(
                    topic_config(&one, 3),
                    Err(ServiceError::InvalidConfig { .. })
                ),
                "{k}={v}"
            );
        }
    }

    #[test]
    fn given_partition_counts_when_checked_should_bound_them() {
        assert!(partition_count(1).is_ok());
        assert!(partition_count(0).is_err());
        assert!(partition_count(MAX_PARTITIONS_PER_TOPIC + 1).is_err());
    }
}
