//! Topic status: the outcome of a reconcile turned into conditions, written
//! only when it differs from the stored status.
//!
//! | type     | status | reason                | meaning |
//! |----------|--------|-----------------------|---------|
//! | Ready    | True   | `Accepted`            | spec valid, partitions placed by the metadata controller, which holds the spec's config (`configGeneration`) |
//! | Ready    | False  | `PlacementPending`    | spec valid, not placed yet (e.g. no broker registered); retried |
//! | Ready    | False  | `InvalidSpec`         | spec refused; message says why |
//! | Ready    | False  | `NotSupported`        | fewer partitions asked than the topic has |
//! | Ready    | False  | `ResourceConflict`    | an older Topic names the same Kafka topic |
//! | Ready    | False  | `ClusterNotFound`     | the referenced StreamCluster does not exist |
//! | Ready    | False  | `InsufficientBrokers` | replicationFactor exceeds the cluster's brokers |
//! | Degraded | False  | `AsExpected`          | accepted |
//! | Degraded | True   | same as Ready         | not accepted |

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;

use crate::conditions::{DEGRADED, DesiredCondition, READY, merge_conditions};
use crate::crd::{Topic, TopicStatus};
use crate::ssa::merge_status_if_changed;

/// Stable reason strings of Topic conditions.
pub mod reasons {
    /// Ready=True.
    pub const ACCEPTED: &str = "Accepted";
    /// Spec refused.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Partition shrink refused.
    pub const NOT_SUPPORTED: &str = "NotSupported";
    /// Another Topic owns the name.
    pub const RESOURCE_CONFLICT: &str = "ResourceConflict";
    /// Cluster missing.
    pub const CLUSTER_NOT_FOUND: &str = "ClusterNotFound";
    /// RF above brokers.
    pub const INSUFFICIENT_BROKERS: &str = "InsufficientBrokers";
    /// Valid, waiting for the metadata controller to place it.
    pub const PLACEMENT_PENDING: &str = "PlacementPending";
    /// Degraded=False.
    pub const AS_EXPECTED: &str = "AsExpected";
    /// Event: the controller's config differed from an already applied
    /// spec.config and was set back.
    pub const CONFIG_DRIFT_REVERTED: &str = "ConfigDriftReverted";
}

/// The result of checking a Topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Valid and accepted with this partition count.
    Accepted {
        /// Accepted partition count.
        partitions: i32,
        /// Replication factor.
        replication_factor: i32,
        /// Whether the metadata controller holds this generation's config
        /// (false when the resource changed meanwhile and nothing was
        /// pushed).
        config_applied: bool,
    },
    /// Valid, but the metadata controller could not place it yet (for
    /// example no broker has registered); retried.
    Pending {
        /// Why, from the controller.
        message: String,
    },
    /// Refused for a reason with a message.
    Refused {
        /// One of [`reasons`].
        reason: &'static str,
        /// Human explanation.
        message: String,
    },
}

/// Builds the status for an outcome. The accepted partition count only
/// changes on acceptance; placement (`partitions`) is carried over untouched.
pub fn compute(topic: &Topic, outcome: &Outcome, now: &Time) -> TopicStatus {
    let previous = topic.status.clone().unwrap_or_default();
    let generation = topic.metadata.generation;
    let (desired, partition_count) = match outcome {
        Outcome::Accepted {
            partitions,
            replication_factor,
            ..
        } => (
            [
                DesiredCondition::new(
                    READY,
                    true,
                    reasons::ACCEPTED,
                    format!(
                        "placed with {partitions} partition(s) and replication factor {replication_factor}; \
                         status.partitions shows each partition's leader and ISR"
                    ),
                ),
                DesiredCondition::new(DEGRADED, false, reasons::AS_EXPECTED, ""),
            ],
            Some(*partitions),
        ),
        Outcome::Pending { message } => (
            [
                DesiredCondition::new(READY, false, reasons::PLACEMENT_PENDING, message.clone()),
                DesiredCondition::new(DEGRADED, false, reasons::AS_EXPECTED, ""),
            ],
            previous.partition_count,
        ),
        Outcome::Refused { reason, message } => (
            [
                DesiredCondition::new(READY, false, reason, message.clone()),
                DesiredCondition::new(DEGRADED, true, reason, message.clone()),
            ],
            previous.partition_count,
        ),
    };
    // Accepted means the controller holds this generation's config.
    let config_generation = match outcome {
        Outcome::Accepted {
            config_applied: true,
            ..
        } => generation,
        _ => previous.config_generation,
    };
    TopicStatus {
        observed_generation: generation,
        conditions: merge_conditions(&previous.conditions, &desired, generation, now),
        topic_name: Some(topic.effective_topic_name()),
        partition_count,
        config_generation,
        ..previous
    }
}

/// Writes the status unless it equals the stored one; returns whether it wrote.
///
/// Only the fields this reconciler owns are sent. `partitions` and
/// `controllerEpoch` belong to the metadata controller, which writes them
/// with compare-and-swap; a merge patch without them leaves them alone.
pub async fn patch_if_changed(
    api: &Api<Topic>,
    topic: &Topic,
    status: &TopicStatus,
) -> Result<bool, kube::Error> {
    let owned = json!({
        "observedGeneration": status.observed_generation,
        "conditions": status.conditions,
        "topicName": status.topic_name,
        "partitionCount": status.partition_count,
        "configGeneration": status.config_generation,
    });
    merge_status_if_changed(api, &topic.name_any(), topic.status.as_ref(), status, owned).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions;
    use crate::topic::fixtures::topic;

    fn at(second: i64) -> Time {
        Time(jiff::Timestamp::from_second(second).expect("timestamp"))
    }

    #[test]
    fn given_acceptance_then_a_refusal_when_computing_then_the_accepted_count_is_kept() {
        let mut t = topic("orders", "2024-01-01T00:00:00Z");
        let accepted = Outcome::Accepted {
            partitions: 6,
            replication_factor: 3,
            config_applied: true,
        };
        t.status = Some(compute(&t, &accepted, &at(10)));
        let status = t.status.clone().expect("status");
        assert_eq!(status.partition_count, Some(6));
        assert_eq!(status.config_generation, Some(1));
        assert_eq!(status.topic_name.as_deref(), Some("orders"));
        assert!(status.partitions.is_empty(), "placement is not invented");
        assert!(conditions::is_true(&status.conditions, READY));

        let refused = Outcome::Refused {
            reason: reasons::NOT_SUPPORTED,
            message: "partitions can only grow".into(),
        };
        t.metadata.generation = Some(2);
        let status = compute(&t, &refused, &at(20));
        assert_eq!(status.partition_count, Some(6));
        assert_eq!(
            status.config_generation,
            Some(1),
            "a refused generation's config was not pushed"
        );
        let ready = conditions::find(&status.conditions, READY).expect("ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "NotSupported")
        );
        assert_eq!(ready.last_transition_time, at(20));
    }

    #[test]
    fn given_an_unchanged_outcome_when_computing_again_then_status_is_identical() {
        let mut t = topic("orders", "2024-01-01T00:00:00Z");
        let accepted = Outcome::Accepted {
            partitions: 6,
            replication_factor: 3,
            config_applied: true,
        };
        t.status = Some(compute(&t, &accepted, &at(10)));
        assert_eq!(Some(compute(&t, &accepted, &at(99))), t.status);
    }
}
