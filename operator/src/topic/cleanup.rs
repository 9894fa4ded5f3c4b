//! What happens to a topic's data when its Topic resource is deleted.
//!
//! The Topic reconciler holds a finalizer (`rill.dev/topic-data`) and, on
//! deletion, calls a [`TopicDataDeleter`] unless the resource carries
//! `rill.dev/keep-data: "true"` or another Topic resource owns the Kafka
//! topic. The finalizer is removed only after the deleter succeeded.
//!
//! Today the operator ships [`RecordIntentOnly`]: partition placement does
//! not exist yet (the metadata controller is a later part of the operator),
//! so no broker holds data of any topic and there is nothing to delete; the
//! deleter records the intent in an Event and returns
//! [`DeletionOutcome::Recorded`]. The metadata controller will implement the
//! trait for real (ask the brokers to drop the partitions, then confirm).

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
}

/// What the deleter did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionOutcome {
    /// Every broker dropped the topic's partitions.
    Deleted,
    /// The request was recorded; no broker held data to delete.
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

/// The deleter used until the metadata controller exists: records the
/// intent, deletes nothing (there is nothing placed to delete).
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
