//! The desired state of a topic, as the metadata controller will consume it:
//! effective name, partition and replica counts and the Kafka configuration
//! map. Pure; no client.

use std::collections::BTreeMap;

use crate::crd::Topic;

/// Desired topic as Kafka sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPlan {
    /// Kafka topic name.
    pub name: String,
    /// StreamCluster name.
    pub cluster: String,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i32,
    /// Kafka configuration keys and values (typed fields and `other`).
    pub config: BTreeMap<String, String>,
    /// Name of the Topic resource the plan was rendered from.
    pub resource: String,
    /// The resource's `metadata.generation` the plan was rendered from.
    pub generation: Option<i64>,
}

/// Renders a Topic's spec as a [`TopicPlan`].
pub fn plan(topic: &Topic) -> TopicPlan {
    let mut config = BTreeMap::new();
    if let Some(c) = &topic.spec.config {
        config.extend(c.other.clone());
        let typed = [
            ("retention.ms", c.retention_ms.map(|v| v.to_string())),
            ("retention.bytes", c.retention_bytes.map(|v| v.to_string())),
            (
                "cleanup.policy",
                c.cleanup_policy.map(|v| v.as_str().to_owned()),
            ),
            (
                "min.insync.replicas",
                c.min_insync_replicas.map(|v| v.to_string()),
            ),
            ("segment.bytes", c.segment_bytes.map(|v| v.to_string())),
            ("flush", c.flush.map(|v| v.as_str().to_owned())),
        ];
        for (key, value) in typed {
            if let Some(value) = value {
                config.insert(key.to_owned(), value);
            }
        }
    }
    TopicPlan {
        name: topic.effective_topic_name(),
        cluster: topic.spec.cluster_ref.name.clone(),
        partitions: topic.spec.partitions,
        replication_factor: topic.spec.replication_factor,
        config,
        resource: topic.metadata.name.clone().unwrap_or_default(),
        generation: topic.metadata.generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CleanupPolicy, FlushPolicy, TopicConfig};
    use crate::topic::fixtures::topic;

    #[test]
    fn given_typed_and_other_config_when_planning_then_kafka_keys_are_rendered() {
        let mut t = topic("orders", "2024-01-01T00:00:00Z");
        t.spec.topic_name = Some("Orders".into());
        t.spec.config = Some(TopicConfig {
            retention_ms: Some(86_400_000),
            retention_bytes: Some(-1),
            cleanup_policy: Some(CleanupPolicy::Compact),
            min_insync_replicas: Some(2),
            segment_bytes: Some(1_073_741_824),
            flush: Some(FlushPolicy::Fsync),
            other: BTreeMap::from([("max.message.bytes".into(), "2097152".into())]),
        });
        let p = plan(&t);
        assert_eq!(p.name, "Orders");
        assert_eq!(p.cluster, "events");
        assert_eq!((p.partitions, p.replication_factor), (6, 3));
        let expected: BTreeMap<String, String> = [
            ("cleanup.policy", "compact"),
            ("flush", "fsync"),
            ("max.message.bytes", "2097152"),
            ("min.insync.replicas", "2"),
            ("retention.bytes", "-1"),
            ("retention.ms", "86400000"),
            ("segment.bytes", "1073741824"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(p.config, expected);
    }

    #[test]
    fn given_no_config_when_planning_then_the_map_is_empty_and_name_defaults() {
        let p = plan(&topic("orders", "2024-01-01T00:00:00Z"));
        assert_eq!(p.name, "orders");
        assert!(p.config.is_empty());
    }
}
