//! What happens to a topic's data when its Topic resource is deleted.
//!
//! The Topic reconciler holds a finalizer (`rill.dev/topic-data`) and, on
//! deletion, calls a [`TopicDataDeleter`] unless the resource carries
//! `rill.dev/keep-data: "true"` or another Topic resource owns the Kafka
//! topic. The finalizer is removed only after the deleter succeeded.
//!
//! The operator's implementation is [`crate::metadata::ControllerHost`]: it
//! deletes the topic in the metadata controller, whose brokers drop the
//! partitions. [`RecordIntentOnly`] (reconcile tests) deletes nothing.

use futures::future::BoxFuture;

/// The Kafka topic whose data is to be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDataRef {
    /// Namespace of the StreamCluster and Topic.
    pub namespace: String,
    /// StreamCluster name.
    pub cluster: String,
    /// Kafka topic name.
    pub topic: String,
    /// The topic id recorded in the Topic's `status.topicId`: only the
    /// topic with this id is deleted, never a topic created again under
    /// the same name.
    pub topic_id: String,
}

/// What the deleter did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionOutcome {
    /// The controller deleted the topic; its brokers drop the partitions.
    Deleted,
    /// Nothing held the topic (never placed, or its cluster is gone).
    Recorded,
}

/// Why deleting data failed; the finalizer stays and the deletion is retried.
#[derive(Debug, thiserror::Error)]
pub enum DataDeletionError {
    /// The brokers or the metadata controller could not be reached.
    #[error("topic data deletion is unavailable: {0}")]
    Unavailable(String),
}

impl DataDeletionError {
    /// Short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DataDeletionError::Unavailable(_) => "data_deletion_unavailable",
        }
    }
}

/// Deletes the data of a topic across its cluster.
pub trait TopicDataDeleter: Send + Sync {
    /// Deletes every partition of `topic`. Must be idempotent: it is called
    /// again if the finalizer could not be removed.
    fn delete_topic_data<'a>(
        &'a self,
        topic: &'a TopicDataRef,
    ) -> BoxFuture<'a, Result<DeletionOutcome, DataDeletionError>>;
}

/// A deleter that deletes nothing, for reconcile tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecordIntentOnly;

impl TopicDataDeleter for RecordIntentOnly {
    fn delete_topic_data<'a>(
        &'a self,
        _topic: &'a TopicDataRef,
    ) -> BoxFuture<'a, Result<DeletionOutcome, DataDeletionError>> {
        Box::pin(async { Ok(DeletionOutcome::Recorded) })
    }
}
