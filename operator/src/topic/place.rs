//! Placing a topic: the hook the Topic reconciler calls once a spec is
//! accepted, so the metadata controller creates the topic (or adds
//! partitions) and writes each partition's leader and ISR into the status,
//! and holds the spec's config (pushed when the controller's differs; the
//! answer says which keys differed).
//!
//! The operator implements it with its embedded controllers
//! ([`crate::metadata::ControllerHost`]); reconcile tests use
//! [`AcceptOnly`].

use futures::future::BoxFuture;

use super::build::TopicPlan;

/// Why a topic could not be placed now; the reconcile reports it and
/// retries.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    /// The controller refused for now (for example fewer registered
    /// brokers than the replication factor).
    #[error("{0}")]
    Pending(String),
    /// The controller could not be reached or could not persist.
    #[error("{0}")]
    Unavailable(String),
}

/// Whether the controller already held the plan's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSync {
    /// It did (or the topic was just created with it).
    InSync,
    /// It held another config; the plan's was pushed. `keys` are the keys
    /// whose values differed (canonical form), sorted.
    Pushed {
        /// Keys set, changed or removed by the push.
        keys: Vec<String>,
    },
    /// It held another config, but the Topic resource has a newer
    /// generation than the plan (a Kafka change written into it, say):
    /// nothing was pushed, so a stale spec never reverts a newer one; the
    /// reconcile of the newer generation pushes.
    Superseded,
}

/// Creates or grows topics through the metadata controller.
pub trait TopicPlacer: Send + Sync {
    /// Makes the controller hold `plan` (create, or grow to its partition
    /// count, and its config). Idempotent.
    fn place<'a>(
        &'a self,
        namespace: &'a str,
        plan: &'a TopicPlan,
    ) -> BoxFuture<'a, Result<ConfigSync, PlacementError>>;
}

/// A placer that accepts every plan and places nothing, for tests of the
/// reconcile pipeline that do not involve the controller.
#[derive(Debug, Default, Clone, Copy)]
pub struct AcceptOnly;

impl TopicPlacer for AcceptOnly {
    fn place<'a>(
        &'a self,
        _namespace: &'a str,
        _plan: &'a TopicPlan,
    ) -> BoxFuture<'a, Result<ConfigSync, PlacementError>> {
        Box::pin(async { Ok(ConfigSync::InSync) })
    }
}
