//! Topic checks that need no other object (spec against itself), and the one
//! that needs the cluster (replication factor against broker count). Topic
//! names follow the rules shared with the broker and the controller
//! ([`rill_proto::topic`]).

use rill_proto::topic::{MAX_TOPIC_NAME_LEN, validate_topic_name};

use crate::crd::{StreamCluster, Topic};

/// Why a Topic spec was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTopic {
    /// One sentence per problem.
    pub problems: Vec<String>,
}

impl InvalidTopic {
    /// All problems as one message.
    pub fn message(&self) -> String {
        self.problems.join("; ")
    }
}

/// Configuration keys the typed fields own; `config.other` may not repeat them.
pub const TYPED_KEYS: [&str; 6] = [
    "retention.ms",
    "retention.bytes",
    "cleanup.policy",
    "min.insync.replicas",
    "segment.bytes",
    "flush",
];

/// Checks the spec on its own.
pub fn validate(topic: &Topic) -> Result<(), InvalidTopic> {
    let mut problems = Vec::new();
    let spec = &topic.spec;
    let name = topic.effective_topic_name();
    if validate_topic_name(&name).is_err() {
        problems.push(format!(
            "topic name {name:?} must be 1-{MAX_TOPIC_NAME_LEN} characters of letters, digits, '.', '_' and '-' (and not '.' or '..')"
        ));
    }
    if spec.partitions < 1 {
        problems.push(format!(
            "spec.partitions is {}; at least 1 is required",
            spec.partitions
        ));
    }
    if spec.replication_factor < 1 {
        problems.push(format!(
            "spec.replicationFactor is {}; at least 1 is required",
            spec.replication_factor
        ));
    }
    if let Some(config) = &spec.config {
        if let Some(min_isr) = config.min_insync_replicas
            && (min_isr < 1 || min_isr > spec.replication_factor)
        {
            problems.push(format!(
                "spec.config.minInsyncReplicas is {min_isr}; it must be between 1 and replicationFactor ({})",
                spec.replication_factor
            ));
        }
        if config.retention_ms.is_some_and(|v| v < -1) {
            problems.push("spec.config.retentionMs must be -1 (forever) or more".to_owned());
        }
        if config.retention_bytes.is_some_and(|v| v < -1) {
            problems.push("spec.config.retentionBytes must be -1 (unlimited) or more".to_owned());
        }
        if config.segment_bytes.is_some_and(|v| v < 1_048_576) {
            problems.push("spec.config.segmentBytes must be at least 1048576 (1 MiB)".to_owned());
        }
        for (key, value) in &config.other {
            if TYPED_KEYS.contains(&key.as_str()) {
                problems.push(format!(
                    "spec.config.other.{key} repeats a typed field; set it there instead"
                ));
            }
            if key.is_empty()
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
            {
                problems.push(format!(
                    "spec.config.other key {key:?} is not a configuration key"
                ));
            }
            if value.contains(['\n', '\r']) {
                problems.push(format!(
                    "spec.config.other value of {key:?} contains a line break"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(InvalidTopic { problems })
    }
}

/// The replication factor must not exceed the cluster's broker count.
pub fn fits_cluster(topic: &Topic, cluster: &StreamCluster) -> Result<(), String> {
    if topic.spec.replication_factor > cluster.spec.brokers {
        Err(format!(
            "replicationFactor {} exceeds the {} broker(s) of StreamCluster {:?}",
            topic.spec.replication_factor, cluster.spec.brokers, topic.spec.cluster_ref.name
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::fixtures::topic;

    #[test]
    fn given_the_fixture_when_validating_then_it_is_accepted() {
        assert_eq!(validate(&topic("orders", "2024-01-01T00:00:00Z")), Ok(()));
    }

    #[test]
    fn given_min_isr_above_rf_and_a_typed_key_in_other_when_validating_then_both_are_reported() {
        let mut t = topic("orders", "2024-01-01T00:00:00Z");
        let config = t.spec.config.get_or_insert_with(Default::default);
        config.min_insync_replicas = Some(4);
        config.other.insert("retention.ms".into(), "1".into());
        let err = validate(&t).expect_err("invalid");
        assert_eq!(err.problems.len(), 2, "{:?}", err.problems);
        assert!(err.problems[0].contains("minInsyncReplicas is 4"));
    }

    #[test]
    fn given_zero_partitions_or_a_bad_name_when_validating_then_it_is_refused() {
        let mut t = topic("orders", "2024-01-01T00:00:00Z");
        t.spec.partitions = 0;
        assert!(validate(&t).is_err());
        let mut t = topic("orders", "2024-01-01T00:00:00Z");
        t.spec.topic_name = Some("has space".into());
        assert!(validate(&t).is_err());
        t.spec.topic_name = Some("Orders_V2".into());
        assert_eq!(validate(&t), Ok(()));
    }

    #[test]
    fn given_rf_above_brokers_when_checking_the_cluster_then_it_is_refused() {
        let t = topic("orders", "2024-01-01T00:00:00Z");
        let mut sc = crate::stream_cluster::build::fixtures::cluster();
        assert_eq!(fits_cluster(&t, &sc), Ok(()));
        sc.spec.brokers = 2;
        assert_eq!(
            fits_cluster(&t, &sc),
            Err(
                "replicationFactor 3 exceeds the 2 broker(s) of StreamCluster \"events\""
                    .to_owned()
            )
        );
    }
}
