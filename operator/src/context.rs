//! Shared state handed to every reconcile: the Kubernetes client, metrics,
//! the Event reporter, operator-wide settings, per-object error backoff and
//! the hooks the metadata controller implements.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};

use crate::metrics::Metrics;
use crate::stream_cluster::scale_down::{NoPlacementYet, ReplicaPlacement};
use crate::topic::cleanup::{RecordIntentOnly, TopicDataDeleter};
use crate::topic::place::{AcceptOnly, TopicPlacer};
use crate::user::acls::{AclSync, NoAclController};

/// Field manager of every server-side apply the operator issues.
pub const FIELD_MANAGER: &str = "rill-operator";

/// Settings that come from the operator's configuration, not from a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Broker image used when a StreamCluster does not name one.
    pub broker_image: String,
    /// URL brokers use to reach the operator's controller gRPC service.
    pub controller_address: String,
    /// Namespace of the operator's pods, for the brokers' NetworkPolicy
    /// (None: the operator's pods are matched in any namespace).
    pub operator_namespace: Option<String>,
    /// Labels of the operator's pods, for the brokers' NetworkPolicy.
    pub operator_pod_labels: BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            broker_image: "rill/broker:0.1.0".to_owned(),
            controller_address: "http://rill-operator.rill-system.svc:9095".to_owned(),
            operator_namespace: None,
            operator_pod_labels: BTreeMap::from([(
                "app.kubernetes.io/name".to_owned(),
                "rill-operator".to_owned(),
            )]),
        }
    }
}

/// Everything a reconcile needs besides the object itself.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Identity written into Events (`reportingController`/`reportingInstance`).
    pub reporter: Reporter,
    /// Operator-wide settings.
    pub settings: Settings,
    /// Answers "do these brokers still hold partition replicas?" before a
    /// scale-down.
    pub placement: Arc<dyn ReplicaPlacement>,
    /// Deletes a topic's data when its Topic resource is deleted.
    pub data_deleter: Arc<dyn TopicDataDeleter>,
    /// Creates or grows an accepted topic in the metadata controller.
    pub placer: Arc<dyn TopicPlacer>,
    /// Makes a User's ACLs the cluster's ACLs of its principal.
    pub acls: Arc<dyn AclSync>,
    /// Consecutive failures per object, for exponential requeue backoff.
    pub backoff: Backoff,
}

impl Context {
    /// A context whose hooks place nothing (reconcile tests); the operator
    /// replaces them with its metadata controllers ([`Context::with_metadata`]).
    pub fn new(client: Client, metrics: Metrics, reporter: Reporter, settings: Settings) -> Self {
        Self {
            client,
            metrics,
            reporter,
            settings,
            placement: Arc::new(NoPlacementYet),
            data_deleter: Arc::new(RecordIntentOnly),
            placer: Arc::new(AcceptOnly),
            acls: Arc::new(NoAclController),
            backoff: Backoff::default(),
        }
    }

    /// Uses `host`'s metadata controllers for every hook.
    pub fn with_metadata<H>(mut self, host: Arc<H>) -> Self
    where
        H: ReplicaPlacement + TopicDataDeleter + TopicPlacer + AclSync + 'static,
    {
        self.placement = host.clone();
        self.data_deleter = host.clone();
        self.acls = host.clone();
        self.placer = host;
        self
    }

    /// An Event recorder for one reconcile.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

    /// Publishes an Event about `object`. Events are best effort: a failure
    /// is logged and never fails the reconcile.
    pub async fn publish<K>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self
            .recorder()
            .publish(&event, &object.object_ref(&()))
            .await
        {
            tracing::warn!(
                %error,
                kind = %K::kind(&()),
                name = %object.name_any(),
                namespace = ?object.namespace(),
                reason,
                "cannot publish event"
            );
        }
    }
}

/// Per-object exponential backoff for failed reconciles: 5s, 10s, 20s, …
/// capped at 5 minutes, reset by the next success.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

/// First retry delay after a failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl Backoff {
    /// Records a failure of `key` and returns how long to wait before retrying.
    pub fn next_delay(&self, key: &str) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = failures.entry(key.to_owned()).or_insert(0);
        let delay = BACKOFF_BASE.saturating_mul(2u32.saturating_pow((*count).min(16)));
        *count = count.saturating_add(1);
        delay.min(BACKOFF_MAX)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_repeated_failures_when_asking_for_delays_then_they_double_up_to_the_cap() {
        let backoff = Backoff::default();
        let delays: Vec<u64> = (0..9)
            .map(|_| backoff.next_delay("ns/a").as_secs())
            .collect();
        assert_eq!(delays, vec![5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(
            backoff.next_delay("ns/b").as_secs(),
            5,
            "objects back off independently"
        );
    }

    #[test]
    fn given_a_success_when_failing_again_then_backoff_restarts() {
        let backoff = Backoff::default();
        backoff.next_delay("ns/a");
        backoff.next_delay("ns/a");
        backoff.reset("ns/a");
        assert_eq!(backoff.next_delay("ns/a"), BACKOFF_BASE);
    }
}
