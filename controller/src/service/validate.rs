//! Checks on topic admin requests made before they reach the core: topic
//! names follow Kafka's rules, and topic config is a small allow-list of
//! Kafka-style keys with typed values. The broker applies these settings;
//! the controller only refuses what no broker would accept, so a bad
//! config never becomes durable metadata.

use std::collections::BTreeMap;

use super::error::ServiceError;

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Largest partition count of one topic (each partition holds open files
/// and a directory on every replica).
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 1000;

/// Kafka's topic name rules: 1..=249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn topic_name(name: &str) -> Result<(), ServiceError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_TOPIC_NAME_LEN {
        Some("too long")
    } else if name == "." || name == ".." {
        Some("reserved")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("illegal character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ServiceError::InvalidTopicName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
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

fn int(key: &str, value: &str, min: i64, max: i64) -> Result<i64, ServiceError> {
    let n: i64 = value
        .trim()
        .parse()
        .map_err(|_| bad(key, value, "not an integer"))?;
    if n < min || n > max {
        return Err(bad(key, value, format!("must be between {min} and {max}")));
    }
    Ok(n)
}

/// The topic config keys the controller accepts.
pub const CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "flush",
    "flush.ms",
    "index.interval.bytes",
    "max.message.bytes",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// Kafka topic config keys Rill accepts, stores and reports (DescribeConfigs)
/// but does not act on, so clients that set them (Kafka Streams sets
/// `message.timestamp.type` on its internal topics) keep working. Values
/// are still checked for their type.
pub const ACCEPTED_NOT_ENFORCED_KEYS: &[&str] = &[
    "compression.type",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "max.compaction.lag.ms",
    "message.downconversion.enable",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "preallocate",
    "segment.index.bytes",
    "segment.jitter.ms",
];

/// Checks a key of [`ACCEPTED_NOT_ENFORCED_KEYS`]: `None` for any other
/// key, else whether the value is acceptable (the error says why not).
pub fn accepted_not_enforced(key: &str, value: &str) -> Option<Result<(), String>> {
    let v = value.trim();
    let integer = |min: i64| match v.parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        Ok(_) => Err(format!("must be at least {min}")),
        Err(_) => Err("not an integer".to_owned()),
    };
    let result = match key {
        "compression.type" => {
            // Batches are stored exactly as produced.
            if v == "producer" {
                Ok(())
            } else {
                Err("only \"producer\" is supported: Rill stores batches as the producer compressed them".to_owned())
            }
        }
        "message.timestamp.type" => match v {
            "CreateTime" => Ok(()),
            "LogAppendTime" => Err(
                "LogAppendTime is not supported: Rill keeps the producer's timestamps (CreateTime)"
                    .to_owned(),
            ),
            _ => Err("expected CreateTime".to_owned()),
        },
        "message.downconversion.enable" | "preallocate" => {
            if matches!(v, "true" | "false") {
                Ok(())
            } else {
                Err("expected true or false".to_owned())
            }
        }
        "min.cleanable.dirty.ratio" => match v.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
            _ => Err("expected a number between 0 and 1".to_owned()),
        },
        "follower.replication.throttled.replicas" | "leader.replication.throttled.replicas" => {
            Ok(())
        }
        "segment.index.bytes" => integer(4),
        "flush.messages" => integer(1),
        "delete.retention.ms"
        | "file.delete.delay.ms"
        | "max.compaction.lag.ms"
        | "message.timestamp.after.max.ms"
        | "message.timestamp.before.max.ms"
        | "message.timestamp.difference.max.ms"
        | "min.compaction.lag.ms"
        | "segment.jitter.ms" => integer(0),
        _ => return None,
    };
    Some(result)
}

/// Checks every key and value; `replication_factor` bounds
/// `min.insync.replicas` (a larger value could never be satisfied).
pub fn topic_config(
    config: &BTreeMap<String, String>,
    replication_factor: i32,
) -> Result<(), ServiceError> {
    for (key, value) in config {
        let v = value.as_str();
        match key.as_str() {
            "segment.bytes" => {
                int(key, v, 14, i64::from(i32::MAX))?;
            }
            "segment.ms" | "flush.ms" => {
                int(key, v, 1, i64::MAX)?;
            }
            "retention.ms" | "retention.bytes" => {
                int(key, v, -1, i64::MAX)?;
            }
            "index.interval.bytes" => {
                int(key, v, 0, i64::from(i32::MAX))?;
            }
            "max.message.bytes" => {
                int(key, v, 61, 64 << 20)?;
            }
            "min.insync.replicas" => {
                int(key, v, 1, i64::from(replication_factor.max(1)))?;
            }
            "cleanup.policy" => {
                let mut parts: Vec<&str> = v.split(',').map(str::trim).collect();
                parts.sort_unstable();
                parts.dedup();
                if !matches!(
                    parts.as_slice(),
                    ["delete"] | ["compact"] | ["compact", "delete"]
                ) {
                    return Err(bad(key, v, "expected delete, compact or compact,delete"));
                }
            }
            "flush" => {
                if !matches!(v, "replicated" | "fsync") {
                    return Err(bad(key, v, "expected replicated or fsync"));
                }
            }
            "unclean.leader.election.enable" => {
                if !matches!(v, "true" | "false") {
                    return Err(bad(key, v, "expected true or false"));
                }
            }
            _ => match accepted_not_enforced(key, v) {
                Some(Ok(())) => {}
                Some(Err(reason)) => return Err(bad(key, v, reason)),
                None => {
                    return Err(bad(
                        key,
                        v,
                        format!("unknown key; known keys: {}", CONFIG_KEYS.join(", ")),
                    ));
                }
            },
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
