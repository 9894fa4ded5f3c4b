//! The `Topic` resource: one Kafka topic in one StreamCluster of the same
//! namespace.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use rill_proto::topic;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Annotation that keeps a topic's data when its Topic resource is deleted.
pub const KEEP_DATA_ANNOTATION: &str = "rill.dev/keep-data";

/// Desired state of a Kafka topic.
// Each `printcolumn(...)` repeats keys such as `type_`; clippy reads them as
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "rill.dev",
    version = "v1alpha1",
    kind = "Topic",
    plural = "topics",
    singular = "topic",
    shortname = "rtopic",
    category = "rill",
    namespaced,
    status = "TopicStatus",
    derive = "PartialEq",
    doc = "A Kafka topic in a Rill StreamCluster of the same namespace. Deleting it deletes the topic's data unless the annotation rill.dev/keep-data is \"true\".",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.clusterRef.name",
        description = "StreamCluster the topic lives in"
    ),
    printcolumn(
        name = "Topic",
        type_ = "string",
        json_path = ".status.topicName",
        description = "Kafka topic name",
        priority = 1
    ),
    printcolumn(
        name = "Partitions",
        type_ = "integer",
        json_path = ".spec.partitions",
        description = "Desired number of partitions"
    ),
    printcolumn(
        name = "RF",
        type_ = "integer",
        json_path = ".spec.replicationFactor",
        description = "Replication factor"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Ready condition status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        description = "Ready condition reason",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.topicName) == has(oldSelf.topicName) && (!has(self.topicName) || self.topicName == oldSelf.topicName)").message("topicName is immutable"),
    validation = Rule::new("!has(self.config) || !has(self.config.minInsyncReplicas) || self.config.minInsyncReplicas <= self.replicationFactor").message("config.minInsyncReplicas must not exceed replicationFactor")
)]
pub struct TopicSpec {
    /// The StreamCluster (same namespace) that hosts the topic. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef is immutable"))]
    pub cluster_ref: ClusterRef,

    /// Kafka topic name. Defaults to `metadata.name`; set it for names a
    /// Kubernetes object name cannot hold (upper case, `_`). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    #[x_kube(validation = Rule::new("self != '.' && self != '..'").message("topicName may not be '.' or '..'"))]
    pub topic_name: Option<String>,

    /// Number of partitions. Can grow, never shrink.
    #[schemars(range(min = 1, max = 100000))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("partitions can grow, never shrink"))]
    pub partitions: i32,

    /// Copies of each partition, at most the cluster's broker count.
    #[schemars(range(min = 1, max = 1000))]
    pub replication_factor: i32,

    /// Topic configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<TopicConfig>,
}

/// Reference to a StreamCluster in the Topic's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    /// Name of the StreamCluster.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Topic-level configuration. Unset fields use the cluster's defaults.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.other) || self.other.all(k, !(k in ['retention.ms', 'retention.bytes', 'cleanup.policy', 'min.insync.replicas', 'segment.bytes', 'flush']))").message("config.other may not repeat a typed field (retention.ms, retention.bytes, cleanup.policy, min.insync.replicas, segment.bytes, flush)"))]
pub struct TopicConfig {
    /// `retention.ms`: how long records are kept, in milliseconds; -1 keeps
    /// them forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub retention_ms: Option<i64>,

    /// `retention.bytes`: maximum size of each partition before old segments
    /// are deleted; -1 means no size limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub retention_bytes: Option<i64>,

    /// `cleanup.policy`: `delete` removes old segments, `compact` keeps the
    /// last record per key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_policy: Option<CleanupPolicy>,

    /// `min.insync.replicas`: replicas that must have a record before an
    /// `acks=all` produce succeeds. At most replicationFactor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_insync_replicas: Option<i32>,

    /// `segment.bytes`: size at which a log segment rolls (at least 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1048576, max = 2147483647))]
    pub segment_bytes: Option<i64>,

    /// `flush`: `replicated` acknowledges once the in-sync replicas hold the
    /// record in memory (Kafka's default); `fsync` also waits for fsync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush: Option<FlushPolicy>,

    /// Other Kafka topic configuration keys, passed through as strings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub other: BTreeMap<String, String>,
}

/// `cleanup.policy` values.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CleanupPolicy {
    /// Delete old segments by time or size.
    Delete,
    /// Keep the latest record per key.
    Compact,
}

impl CleanupPolicy {
    /// The Kafka configuration value, as the brokers' topic rules spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => topic::CleanupPolicy::Delete,
            CleanupPolicy::Compact => topic::CleanupPolicy::Compact,
        }
        .as_str()
    }
}

/// Durability of acknowledged writes.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FlushPolicy {
    /// Acknowledge once the ISR has the record; fsync on an interval.
    Replicated,
    /// fsync (group commit) before acknowledging.
    Fsync,
}

impl FlushPolicy {
    /// The configuration value, as the brokers' topic rules spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            FlushPolicy::Replicated => topic::FlushPolicy::Replicated,
            FlushPolicy::Fsync => topic::FlushPolicy::Fsync,
        }
        .as_str()
    }
}

/// Observed state of a Topic, written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions: `Ready` and `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The effective Kafka topic name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// Partition count last accepted by the operator. A spec that asks for
    /// fewer partitions is refused and this value stays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_count: Option<i32>,
    /// Placement and leadership of each partition, written by the metadata
    /// controller (compare-and-swap on resourceVersion) whenever a leader,
    /// the ISR or the replicas change. Empty until the topic is placed.
    #[serde(default)]
    pub partitions: Vec<PartitionStatus>,
    /// How many partitions have a replica move in flight (a reassignment,
    /// a drain before a scale-down or the automatic balance); their
    /// `addingReplicas` and `removingReplicas` say which. Written with
    /// `partitions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassigning_partitions: Option<i32>,
    /// Epoch of the metadata controller that last wrote `partitions`. A
    /// controller never overwrites partitions stamped by a newer one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_epoch: Option<i64>,
    /// The Kafka topic id (a UUID) the metadata controller gave the topic
    /// placed through this resource. A topic deleted and created again has
    /// a new id; deleting this resource deletes only the data of this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// The `metadata.generation` whose `spec.config` the metadata
    /// controller holds (and brokers apply). A controller config that
    /// differs while this equals the generation was changed behind the
    /// resource's back: the operator reverts it and records a
    /// `ConfigDriftReverted` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_generation: Option<i64>,
}

/// Placement and leadership of one partition.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionStatus {
    /// Partition index.
    pub partition: i32,
    /// Broker id of the leader, absent while there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<i32>,
    /// Broker ids holding a replica, preferred leader first.
    pub replicas: Vec<i32>,
    /// Broker ids in the in-sync replica set.
    pub isr: Vec<i32>,
    /// Leader epoch; increases with every leader change.
    pub leader_epoch: i32,
    /// Partition epoch; increases with every change of this entry.
    #[serde(default)]
    pub partition_epoch: i32,
    /// Broker ids whose replica is being moved away (a reassignment, or a
    /// drain before a scale-down); they leave `replicas` once the new
    /// replicas are in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
    /// Broker ids whose replica is being added by a reassignment; they are
    /// in `replicas` and catching up until they join `isr`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
}

impl Topic {
    /// The Kafka topic name: `spec.topicName`, else `metadata.name`.
    pub fn effective_topic_name(&self) -> String {
        self.spec
            .topic_name
            .clone()
            .or_else(|| self.metadata.name.clone())
            .unwrap_or_default()
    }

    /// Whether the keep-data annotation is set to `"true"`.
    pub fn keeps_data(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(KEEP_DATA_ANNOTATION))
            .is_some_and(|v| v == "true")
    }
}
