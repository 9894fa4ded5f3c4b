//! [`ControllerHost`]: one embedded metadata controller per StreamCluster,
//! started on demand while this operator replica holds the leader Lease.
//!
//! A controller is started (its [`KubeStore`] claimed) the first time a
//! broker, the StreamCluster reconciler or the Topic reconciler needs it,
//! and stopped when its StreamCluster is gone or leadership ends. The host
//! also implements the reconcilers' hooks on top of the controllers:
//! [`TopicPlacer`] (create or grow a topic, push its Topic's config),
//! [`TopicDataDeleter`] (delete it),
//! [`ReplicaPlacement`] (which brokers still hold replicas)
//! and [`AclSync`] (a User's ACLs as the cluster's ACLs of its principal).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use kube::Client;
use kube::api::Api;
use rill_controller::config::ServerConfig;
use rill_controller::service::ControllerService;
use rill_controller::{ClusterMetadata, EmbeddedController, embed};
use rill_proto::controller as pb;
use rill_proto::controller::controller_server::Controller as _;
use tokio::sync::watch;
use tonic::{Code, Request};
use tracing::{info, warn};

use super::store::KubeStore;
use crate::crd::{StreamCluster, Topic};
use crate::stream_cluster::roll::{ClusterView, PartitionView};
use crate::stream_cluster::scale_down::ReplicaPlacement;
use crate::topic::build::TopicPlan;
use crate::topic::cleanup::{DataDeletionError, DeletionOutcome, TopicDataDeleter, TopicDataRef};
use crate::topic::place::{ConfigSync, PlacementError, TopicPlacer};
use crate::user::acls::{self, AclSync, AclSyncError, AclSyncOutcome};
use rill_proto::topic::normalize_config;

/// Why no controller can serve a cluster here.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HostError {
    /// This replica does not hold the leader Lease.
    #[error(
        "NOT_ACTIVE_CONTROLLER: this operator replica does not hold the leader Lease; another replica serves the controller"
    )]
    NotLeader,
    /// The StreamCluster does not exist (yet, or any more).
    #[error("NOT_ACTIVE_CONTROLLER: StreamCluster {0} does not exist")]
    UnknownCluster(String),
    /// The request named no cluster, or a malformed one.
    #[error(
        "INVALID_ARGUMENT: requests must carry the rill-cluster header as namespace/name, got {0:?}"
    )]
    BadClusterKey(String),
    /// Claiming the store or reading Kubernetes failed.
    #[error("STORE_UNAVAILABLE: {0}")]
    Store(String),
}

impl HostError {
    /// As a gRPC status (message starts with the reason, as every
    /// controller status does).
    pub fn to_status(&self) -> tonic::Status {
        let code = match self {
            HostError::BadClusterKey(_) => Code::InvalidArgument,
            _ => Code::Unavailable,
        };
        tonic::Status::new(code, self.to_string())
    }
}

/// `namespace/name` of a StreamCluster.
pub fn cluster_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

fn split_key(key: &str) -> Result<(&str, &str), HostError> {
    match key.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns, name))
        }
        _ => Err(HostError::BadClusterKey(key.to_owned())),
    }
}

/// One cluster's controller, once started.
type Slot = Arc<tokio::sync::Mutex<Option<EmbeddedController>>>;

/// The running controllers of this operator replica.
pub struct ControllerHost {
    client: Client,
    /// Lease and watch settings of every embedded controller.
    config: ServerConfig,
    /// True while this replica holds the leader Lease.
    leading: watch::Receiver<bool>,
    /// Started controllers by cluster key. The map's lock is held only to
    /// find a cluster's slot; the slot's async lock is held while its
    /// controller starts (so two requests never claim the same store
    /// twice) without holding up the requests of any other cluster.
    running: Mutex<HashMap<String, Slot>>,
    /// Latest metadata per cluster, for the synchronous scale-down hook.
    snapshots: Mutex<HashMap<String, watch::Receiver<Arc<ClusterMetadata>>>>,
    /// Where each controller records its metrics (rendered on the
    /// operator's `/metrics`).
    metrics: crate::metrics::Metrics,
}

impl std::fmt::Debug for ControllerHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerHost").finish_non_exhaustive()
    }
}

impl ControllerHost {
    /// A host whose controllers use `config`'s lease settings, serve only
    /// while `leading` is true and record into `metrics`.
    pub fn new(
        client: Client,
        config: ServerConfig,
        leading: watch::Receiver<bool>,
        metrics: crate::metrics::Metrics,
    ) -> Self {
        Self {
            client,
            config,
            leading,
            running: Mutex::new(HashMap::new()),
            snapshots: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// The controller of cluster `key` (`namespace/name`), started if needed.
    pub async fn service(&self, key: &str) -> Result<ControllerService, HostError> {
        if !*self.leading.borrow() {
            return Err(HostError::NotLeader);
        }
        let (namespace, name) = split_key(key)?;
        let slot = Arc::clone(
            self.running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(key.to_owned())
                .or_default(),
        );
        let mut running = slot.lock().await;
        if let Some(c) = running.as_ref() {
            if c.is_serving() {
                return Ok(c.service.clone());
            }
            warn!(cluster = key, phase = ?*c.phase.borrow(), "controller ended; starting a new one");
            if let Some(old) = running.take() {
                old.stop().await;
            }
        }
        let started = self.start(key, namespace, name).await;
        match started {
            Ok(embedded) => {
                let service = embedded.service.clone();
                *running = Some(embedded);
                Ok(service)
            }
            Err(e) => {
                drop(running);
                self.forget_empty(key, &slot);
                Err(e)
            }
        }
    }

    /// Claims `key`'s store and starts its controller.
    async fn start(
        &self,
        key: &str,
        namespace: &str,
        name: &str,
    ) -> Result<EmbeddedController, HostError> {
        let clusters: Api<StreamCluster> = Api::namespaced(self.client.clone(), namespace);
        match clusters.get_opt(name).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(HostError::UnknownCluster(key.to_owned())),
            Err(e) => {
                return Err(HostError::Store(format!(
                    "reading StreamCluster {key}: {e}"
                )));
            }
        }
        let store = KubeStore::new(self.client.clone(), namespace, name);
        let embedded = embed(&self.config, store, self.metrics.controller(key))
            .await
            .map_err(|e| HostError::Store(format!("claiming the metadata of {key}: {e}")))?;
        info!(
            cluster = key,
            controller_epoch = embedded.controller_epoch,
            "metadata controller started"
        );
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), embedded.snapshots.clone());
        Ok(embedded)
    }

    /// Removes `key`'s slot if it is still `slot` and holds no controller
    /// (a request named a cluster that does not exist, or its start failed).
    fn forget_empty(&self, key: &str, slot: &Slot) {
        let mut map = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(key).is_some_and(|s| Arc::ptr_eq(s, slot))
            && slot.try_lock().is_ok_and(|c| c.is_none())
        {
            map.remove(key);
        }
    }

    /// The service of `key`'s controller if it is serving and not being
    /// started or stopped right now. Does not wait.
    fn serving(&self, key: &str) -> Option<ControllerService> {
        let slot = Arc::clone(
            self.running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(key)?,
        );
        let running = slot.try_lock().ok()?;
        running
            .as_ref()
            .filter(|c| c.is_serving())
            .map(|c| c.service.clone())
    }

    fn slots(&self) -> Vec<(String, Slot)> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, s)| (k.clone(), Arc::clone(s)))
            .collect()
    }

    /// Stops the controllers of clusters that no longer exist.
    pub async fn stop_missing(&self) {
        for (key, slot) in self.slots() {
            let Ok((namespace, name)) = split_key(&key) else {
                continue;
            };
            let clusters: Api<StreamCluster> = Api::namespaced(self.client.clone(), namespace);
            if !matches!(clusters.get_opt(name).await, Ok(None)) {
                continue;
            }
            let stopped = slot.lock().await.take();
            if let Some(c) = stopped {
                info!(cluster = %key, "StreamCluster deleted: stopping its metadata controller");
                self.snapshots
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                c.stop().await;
                self.metrics.forget_controller(&key);
            }
            self.forget_empty(&key, &slot);
        }
    }

    /// Stops every controller (leadership ended or shutdown).
    pub async fn stop_all(&self) {
        let slots: Vec<(String, Slot)> = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (key, slot) in slots {
            let stopped = slot.lock().await.take();
            if let Some(c) = stopped {
                info!(cluster = %key, "stopping metadata controller");
                c.stop().await;
            }
        }
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn snapshot(&self, key: &str) -> Option<Arc<ClusterMetadata>> {
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .map(|rx| Arc::clone(&rx.borrow()))
    }
}

impl ReplicaPlacement for ControllerHost {
    fn brokers_holding_replicas(
        &self,
        namespace: &str,
        cluster: &str,
        removed: &[i32],
    ) -> Vec<i32> {
        let Some(meta) = self.snapshot(&cluster_key(namespace, cluster)) else {
            // Placement unknown until the controller runs: assume the worst.
            return removed.to_vec();
        };
        removed
            .iter()
            .copied()
            .filter(|b| {
                meta.topics
                    .values()
                    .flat_map(|t| &t.partitions)
                    .any(|p| p.replicas.contains(b))
            })
            .collect()
    }

    fn cluster_view(&self, namespace: &str, cluster: &str) -> Option<ClusterView> {
        let key = cluster_key(namespace, cluster);
        // Only a serving controller's snapshot is current.
        self.serving(&key)?;
        let meta = self.snapshot(&key)?;
        Some(cluster_view(&meta))
    }

    /// Asks the running controller of the cluster to move every replica off
    /// `brokers`; the reconcile asks again until they hold none.
    fn drain(&self, namespace: &str, cluster: &str, brokers: &[i32]) {
        let key = cluster_key(namespace, cluster);
        let Some(service) = self.serving(&key) else {
            return;
        };
        let brokers = brokers.to_vec();
        tokio::spawn(async move {
            let request = Request::new(pb::DrainBrokersRequest {
                brokers: brokers.clone(),
            });
            match service.drain_brokers(request).await {
                Ok(r) => info!(
                    cluster = %key,
                    ?brokers,
                    partitions_left = r.into_inner().partitions_left,
                    "draining brokers before the scale-down"
                ),
                Err(status) => warn!(
                    cluster = %key,
                    ?brokers,
                    error = %status.message(),
                    "cannot drain brokers; the scale-down stays blocked"
                ),
            }
        });
    }
}

/// What a rolling restart reads of the controller's metadata.
fn cluster_view(meta: &ClusterMetadata) -> ClusterView {
    ClusterView {
        broker_epochs: meta.brokers.values().map(|b| (b.id, b.epoch)).collect(),
        partitions: meta
            .topics
            .values()
            .flat_map(|t| {
                let min_insync = t
                    .config
                    .get("min.insync.replicas")
                    .and_then(|v| v.trim().parse().ok());
                t.partitions
                    .iter()
                    .enumerate()
                    .map(move |(i, p)| PartitionView {
                        name: format!("{}-{i}", t.name),
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                        min_insync,
                    })
            })
            .collect(),
    }
}

fn unavailable(status: &tonic::Status) -> DataDeletionError {
    DataDeletionError::Unavailable(status.message().to_owned())
}

impl TopicDataDeleter for ControllerHost {
    fn delete_topic_data<'a>(
        &'a self,
        topic: &'a TopicDataRef,
    ) -> BoxFuture<'a, Result<DeletionOutcome, DataDeletionError>> {
        Box::pin(async move {
            let key = cluster_key(&topic.namespace, &topic.cluster);
            let service = match self.service(&key).await {
                Ok(s) => s,
                // The cluster is gone, and its volumes with their owner.
                Err(HostError::UnknownCluster(_)) => return Ok(DeletionOutcome::Recorded),
                Err(e) => return Err(DataDeletionError::Unavailable(e.to_string())),
            };
            // By id: a topic created again under the same name has another
            // id, and the controller answers NOT_FOUND instead of deleting it.
            let request = Request::new(pb::DeleteTopicRequest {
                name: topic.topic.clone(),
                id: topic.topic_id.clone(),
            });
            match service.delete_topic(request).await {
                Ok(_) => Ok(DeletionOutcome::Deleted),
                Err(status) if status.code() == Code::NotFound => Ok(DeletionOutcome::Recorded),
                Err(status) => Err(unavailable(&status)),
            }
        })
    }
}

/// The keys whose values differ between two configs, in canonical form.
fn differing_keys(
    held: &std::collections::BTreeMap<String, String>,
    wanted: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let (held, wanted) = (normalize_config(held), normalize_config(wanted));
    let keys: std::collections::BTreeSet<&String> = held.keys().chain(wanted.keys()).collect();
    keys.into_iter()
        .filter(|k| held.get(*k) != wanted.get(*k))
        .cloned()
        .collect()
}

fn placement_error(status: &tonic::Status) -> PlacementError {
    if status.code() == Code::InvalidArgument {
        PlacementError::Pending(status.message().to_owned())
    } else {
        PlacementError::Unavailable(status.message().to_owned())
    }
}

impl TopicPlacer for ControllerHost {
    fn place<'a>(
        &'a self,
        namespace: &'a str,
        plan: &'a TopicPlan,
    ) -> BoxFuture<'a, Result<ConfigSync, PlacementError>> {
        Box::pin(async move {
            let key = cluster_key(namespace, &plan.cluster);
            let service = self
                .service(&key)
                .await
                .map_err(|e| PlacementError::Unavailable(e.to_string()))?;
            let existing = self.snapshot(&key).and_then(|m| {
                m.topics
                    .get(&plan.name)
                    .map(|t| (t.partitions.len() as i32, t.config.clone()))
            });
            let result = match &existing {
                None => service
                    .create_topic(Request::new(pb::CreateTopicRequest {
                        name: plan.name.clone(),
                        partitions: plan.partitions,
                        replication_factor: plan.replication_factor,
                        config: plan.config.clone().into_iter().collect(),
                    }))
                    .await
                    .map(|_| ()),
                Some((n, _)) if *n < plan.partitions => service
                    .create_partitions(Request::new(pb::CreatePartitionsRequest {
                        name: plan.name.clone(),
                        total: plan.partitions,
                    }))
                    .await
                    .map(|_| ()),
                Some(_) => Ok(()),
            };
            match result {
                Ok(()) => {}
                Err(status) if status.code() == Code::AlreadyExists => {}
                Err(status) => return Err(placement_error(&status)),
            }
            let Some((_, held)) = existing else {
                return Ok(ConfigSync::InSync);
            };
            let keys = differing_keys(&held, &plan.config);
            if keys.is_empty() {
                return Ok(ConfigSync::InSync);
            }
            // Only a plan of the resource's current generation may push: a
            // reconcile of an older copy (read before a Kafka change was
            // written into the resource) would revert the newer spec.
            let current = Api::<Topic>::namespaced(self.client.clone(), namespace)
                .get_opt(&plan.resource)
                .await
                .map_err(|e| {
                    PlacementError::Unavailable(format!("reading Topic {}: {e}", plan.resource))
                })?
                .and_then(|t| t.metadata.generation);
            if current != plan.generation {
                info!(cluster = %key, topic = %plan.name, resource = %plan.resource, ?current, planned = ?plan.generation, "the Topic changed since this reconcile read it; its config is pushed by the next one");
                return Ok(ConfigSync::Superseded);
            }
            service
                .alter_topic_config(Request::new(pb::AlterTopicConfigRequest {
                    name: plan.name.clone(),
                    id: String::new(),
                    config: plan.config.clone().into_iter().collect(),
                    validate_only: false,
                    origin: pb::ConfigOrigin::Resource as i32,
                }))
                .await
                .map_err(|status| placement_error(&status))?;
            info!(cluster = %key, topic = %plan.name, ?keys, "pushed the Topic's spec.config to the metadata controller");
            Ok(ConfigSync::Pushed { keys })
        })
    }
}

impl AclSync for ControllerHost {
    fn sync_principal<'a>(
        &'a self,
        namespace: &'a str,
        cluster: &'a str,
        principal: &'a str,
        desired: &'a [rill_proto::acl::Acl],
    ) -> BoxFuture<'a, Result<AclSyncOutcome, AclSyncError>> {
        Box::pin(async move {
            let key = cluster_key(namespace, cluster);
            let service = match self.service(&key).await {
                Ok(s) => s,
                // The cluster is gone, and its ACLs with it.
                Err(HostError::UnknownCluster(_)) => return Ok(AclSyncOutcome::default()),
                Err(e) => return Err(AclSyncError::Unavailable(e.to_string())),
            };
            let current = self
                .snapshot(&key)
                .map(|meta| meta.acls.clone())
                .unwrap_or_default();
            let diff = acls::diff(&current, principal, desired);
            if diff.is_empty() {
                return Ok(AclSyncOutcome::default());
            }
            // Creations are idempotent and deletions use exact filters, so a
            // snapshot a moment old at worst repeats a change.
            let request = Request::new(pb::AlterAclsRequest {
                creations: diff.create.iter().map(|a| a.to_wire()).collect(),
                deletions: diff
                    .delete
                    .iter()
                    .map(|a| acls::exact_filter(a).to_wire())
                    .collect(),
            });
            let response = service
                .alter_acls(request)
                .await
                .map_err(|status| AclSyncError::Unavailable(status.message().to_owned()))?
                .into_inner();
            let refused: Vec<String> = response
                .creation_errors
                .iter()
                .chain(response.deletions.iter().map(|d| &d.error))
                .filter(|e| !e.is_empty())
                .cloned()
                .collect();
            if !refused.is_empty() {
                return Err(AclSyncError::Refused(refused.join("; ")));
            }
            info!(cluster = %key, %principal, created = diff.create.len(), deleted = diff.delete.len(), "ACLs of a User synchronised");
            Ok(AclSyncOutcome {
                created: diff.create.len(),
                deleted: diff.delete.len(),
            })
        })
    }

    fn sync_quotas<'a>(
        &'a self,
        namespace: &'a str,
        cluster: &'a str,
        user: &'a str,
        desired: &'a [(rill_proto::quota::QuotaKey, f64)],
    ) -> BoxFuture<'a, Result<bool, AclSyncError>> {
        self.sync_quotas_now(namespace, cluster, user, desired)
    }
}

impl ControllerHost {
    fn sync_quotas_now<'a>(
        &'a self,
        namespace: &'a str,
        cluster: &'a str,
        user: &'a str,
        desired: &'a [(rill_proto::quota::QuotaKey, f64)],
    ) -> BoxFuture<'a, Result<bool, AclSyncError>> {
        Box::pin(async move {
            let key = cluster_key(namespace, cluster);
            let service = match self.service(&key).await {
                Ok(s) => s,
                Err(HostError::UnknownCluster(_)) => return Ok(false),
                Err(e) => return Err(AclSyncError::Unavailable(e.to_string())),
            };
            let current = self
                .snapshot(&key)
                .map(|meta| meta.client_quotas.clone())
                .unwrap_or_default();
            let Some(alteration) = acls::quota_alteration(&current, user, desired) else {
                return Ok(false);
            };
            let response = service
                .alter_client_quotas(Request::new(pb::AlterClientQuotasRequest {
                    alterations: vec![alteration.to_wire()],
                }))
                .await
                .map_err(|status| AclSyncError::Unavailable(status.message().to_owned()))?
                .into_inner();
            let refused: Vec<String> = response
                .errors
                .into_iter()
                .filter(|e| !e.is_empty())
                .collect();
            if !refused.is_empty() {
                return Err(AclSyncError::Refused(refused.join("; ")));
            }
            info!(cluster = %key, %user, "client quotas of a User synchronised");
            Ok(true)
        })
    }
}

/// How often [`keep_hosting`] and [`keep_certificates`] look for new and
/// deleted StreamClusters.
pub const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// A StreamCluster's namespace, name and cluster key.
fn names(sc: &StreamCluster) -> (&str, &str, String) {
    let namespace = sc.metadata.namespace.as_deref().unwrap_or_default();
    let name = sc.metadata.name.as_deref().unwrap_or_default();
    (namespace, name, cluster_key(namespace, name))
}

/// Until `stop`: every [`SWEEP_INTERVAL`], starts the controller of every
/// StreamCluster (so placement is known before any broker connects and the
/// scale-down guard has an answer) and stops those of deleted clusters.
pub async fn keep_hosting(
    client: Client,
    host: Arc<ControllerHost>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let clusters: Api<StreamCluster> = Api::all(client.clone());
    loop {
        match clusters.list(&Default::default()).await {
            Ok(list) => {
                for sc in list.items {
                    let (_, _, key) = names(&sc);
                    if let Err(e) = host.service(&key).await {
                        warn!(cluster = %key, error = %e, "cannot start the metadata controller");
                    }
                }
            }
            Err(e) => warn!(error = %e, "cannot list StreamClusters"),
        }
        host.stop_missing().await;
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(SWEEP_INTERVAL) => {}
        }
    }
}

/// Until `stop`: every [`SWEEP_INTERVAL`], loads every StreamCluster's
/// cluster CA into the controller port's TLS and forgets deleted clusters.
/// Every replica runs it, leader or not: a broker that reaches a standby
/// completes the handshake and is told the standby does not lead (and
/// tries again), instead of failing the handshake.
pub async fn keep_certificates(
    client: Client,
    tls: Arc<super::ControllerTls>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let clusters: Api<StreamCluster> = Api::all(client.clone());
    loop {
        match clusters.list(&Default::default()).await {
            Ok(list) => {
                let mut keys = std::collections::BTreeSet::new();
                for sc in list.items {
                    let (namespace, name, key) = names(&sc);
                    if sc.spec.certificates.internal_tls {
                        super::tls::sync_cluster(&client, &tls, &key, namespace, name).await;
                    } else {
                        tls.remove_cluster(&key);
                    }
                    keys.insert(key);
                }
                tls.retain(|key| keys.contains(key));
            }
            Err(e) => warn!(error = %e, "cannot list StreamClusters"),
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(SWEEP_INTERVAL) => {}
        }
    }
}
