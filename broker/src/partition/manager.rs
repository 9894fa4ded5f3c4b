//! [`ReplicaManager`]: the topics and partitions of this broker and every
//! client request on them.
//!
//! Requests arrive from an adapter as plain Rust values, are checked here
//! (topic exists, partition exists, sizes, limits) and go to one
//! [`Partition`]. Topic create/delete are serialised by one admin lock;
//! they persist through [`TopicStore`] before changing the in-memory map, so
//! a restart sees exactly the acknowledged topics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use rill_controller::client::MetadataView;
use tracing::{info, warn};

use super::{Acks, Error, FetchResult, Partition, PartitionState, ProduceResult};
use crate::config::MAX_PARTITIONS_PER_TOPIC;
use crate::log::{LogConfig, PartitionLog};
use crate::metadata::{TopicSpec, TopicStore, validate_topic_name};
use crate::metrics::Metrics;

/// Longest a fetch may long-poll, whatever the client asks.
pub const MAX_FETCH_WAIT: Duration = Duration::from_secs(30);
/// Fetch size when the client leaves `max_bytes` at 0.
pub const DEFAULT_FETCH_BYTES: usize = 1 << 20;
/// Produce durability timeout when the client leaves it at 0.
pub const DEFAULT_PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest produce durability timeout a client may ask for.
pub const MAX_PRODUCE_TIMEOUT: Duration = Duration::from_secs(300);

/// This broker as advertised in Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    /// host:port of the client API.
    pub address: String,
    pub rack: Option<String>,
}

/// What the manager needs from the broker configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub broker: BrokerInfo,
    /// Settings of topics that do not override them.
    pub log_defaults: LogConfig,
    /// Partitions of topics created by a produce to an unknown topic;
    /// `None` disables auto-creation.
    pub auto_create_partitions: Option<i32>,
    /// Largest produce payload and fetch response.
    pub max_request_bytes: usize,
}

/// A topic with its opened partitions.
#[derive(Debug)]
struct Topic {
    spec: TopicSpec,
    /// Effective settings: broker defaults plus the topic's overrides.
    config: LogConfig,
    /// By partition id; `None` where this broker hosts no replica (in a
    /// cluster, a broker holds only the partitions assigned to it).
    partitions: Vec<Option<Arc<Partition>>>,
}

impl Topic {
    fn hosted(&self) -> impl Iterator<Item = &Arc<Partition>> {
        self.partitions.iter().flatten()
    }
}

/// One partition as described by Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub id: i32,
    /// -1 when the partition has no leader.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Local state when this broker hosts a replica.
    pub state: Option<PartitionState>,
    pub leader_epoch: i32,
}

/// Where topic create/delete go in a cluster: the controller.
#[tonic::async_trait]
pub trait TopicAdmin: Send + Sync + std::fmt::Debug {
    async fn create(&self, request: CreateTopic) -> Result<(), Error>;
    async fn delete(&self, name: &str) -> Result<(), Error>;
}

/// A topic as described by Metadata and CreateTopic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicView {
    pub name: String,
    pub partitions: Vec<PartitionView>,
    pub replication_factor: i32,
    /// Effective config, every known key.
    pub config: BTreeMap<String, String>,
}

/// Which offset ListOffsets resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    Timestamp(i64),
}

/// A topic create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopic {
    pub name: String,
    pub partitions: i32,
    /// 0 or -1 mean the default (1).
    pub replication_factor: i32,
    pub config: BTreeMap<String, String>,
}

/// Topics and partitions of this broker.
#[derive(Debug)]
pub struct ReplicaManager {
    settings: Settings,
    store: TopicStore,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises topic create and delete (they do disk I/O).
    admin: tokio::sync::Mutex<()>,
    /// Set when shutdown starts: admin requests are refused.
    closing: AtomicBool,
    /// In a cluster: the controller's metadata as last received, which
    /// answers Metadata requests.
    cluster: RwLock<Option<MetadataView>>,
    /// In a cluster: topic admin goes to the controller.
    admin_remote: std::sync::OnceLock<Arc<dyn TopicAdmin>>,
    /// Notified when the cluster metadata changes.
    cluster_changed: tokio::sync::Notify,
    /// Bumped after partition roles may have changed (metadata applied,
    /// topic created or removed); services that depend on leadership (the
    /// group coordinator) watch it.
    roles: tokio::sync::watch::Sender<u64>,
    metrics: Arc<Metrics>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl ReplicaManager {
    /// Loads every persisted topic and opens (recovers) its partition logs.
    /// Blocking: run it off the async runtime.
    pub fn open(
        store: TopicStore,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, Error> {
        let mut topics = BTreeMap::new();
        for spec in store.load_all()? {
            let topic = open_topic(&store, &settings.log_defaults, spec, &metrics)?;
            topics.insert(topic.spec.name.clone(), Arc::new(topic));
        }
        info!(topics = topics.len(), "topics loaded");
        Ok(Self {
            settings,
            store,
            topics: RwLock::new(topics),
            admin: tokio::sync::Mutex::new(()),
            closing: AtomicBool::new(false),
            cluster: RwLock::new(None),
            admin_remote: std::sync::OnceLock::new(),
            cluster_changed: tokio::sync::Notify::new(),
            roles: tokio::sync::watch::Sender::new(0),
            metrics,
        })
    }

    pub fn broker(&self) -> &BrokerInfo {
        &self.settings.broker
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>, Error> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(name.to_owned()))
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Result<Arc<Partition>, Error> {
        let t = self.topic(topic)?;
        usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .and_then(Option::clone)
            .ok_or(Error::UnknownPartition {
                topic: topic.to_owned(),
                partition,
                count: t.spec.partitions,
            })
    }

    /// Every local partition (for background tasks and metrics).
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.hosted().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Appends `data` (one or more RecordBatch v2) to a partition.
    pub async fn produce(
        &self,
        topic: &str,
        partition: i32,
        data: Vec<u8>,
        acks: Acks,
        timeout_ms: u32,
    ) -> Result<ProduceResult, Error> {
        if data.len() > self.settings.max_request_bytes {
            return Err(Error::RequestTooLarge {
                size: data.len(),
                max: self.settings.max_request_bytes,
            });
        }
        let p = match self.partition(topic, partition) {
            Err(Error::UnknownTopic(_)) if self.settings.auto_create_partitions.is_some() => {
                self.auto_create(topic).await?;
                self.partition(topic, partition)?
            }
            other => other?,
        };
        let timeout = match timeout_ms {
            0 => DEFAULT_PRODUCE_TIMEOUT,
            ms => Duration::from_millis(u64::from(ms)).min(MAX_PRODUCE_TIMEOUT),
        };
        p.produce(data, acks, timeout).await
    }

    async fn auto_create(&self, topic: &str) -> Result<(), Error> {
        let partitions = self.settings.auto_create_partitions.unwrap_or(1);
        let request = CreateTopic {
            name: topic.to_owned(),
            partitions,
            replication_factor: 1,
            config: BTreeMap::new(),
        };
        match self.create_topic(request).await {
            Ok(_) => {
                info!(topic, partitions, "auto-created topic on produce");
                Ok(())
            }
            // Another producer won the race.
            Err(Error::TopicExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads whole batches from `offset`, long-polling up to `max_wait_ms`
    /// (capped at [`MAX_FETCH_WAIT`]) for `min_bytes`.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: u32,
        min_bytes: u32,
        max_wait_ms: u32,
    ) -> Result<FetchResult, Error> {
        let p = self.partition(topic, partition)?;
        let max_bytes = match max_bytes as usize {
            0 => DEFAULT_FETCH_BYTES,
            n => n.min(self.settings.max_request_bytes),
        };
        let min_bytes = (min_bytes as usize).min(max_bytes);
        let max_wait = Duration::from_millis(u64::from(max_wait_ms)).min(MAX_FETCH_WAIT);
        p.fetch(offset, max_bytes, min_bytes, max_wait).await
    }

    /// Resolves an offset; returns (offset, timestamp), -1 where none.
    pub fn list_offsets(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> Result<(i64, i64), Error> {
        let p = self.partition(topic, partition)?;
        match spec {
            OffsetSpec::Earliest => Ok((p.earliest_offset()?, -1)),
            OffsetSpec::Latest => Ok((p.latest_offset()?, -1)),
            OffsetSpec::Timestamp(ts) => Ok(p.offset_for_timestamp(ts)?.unwrap_or((-1, -1))),
        }
    }

    /// Describes the named topics, or all topics when `names` is empty.
    pub fn metadata(&self, names: &[String]) -> Result<Vec<TopicView>, Error> {
        if let Some(view) = &*self.cluster.read() {
            return self.cluster_metadata(view, names);
        }
        let topics = self.topics.read();
        let selected: Vec<Arc<Topic>> = if names.is_empty() {
            topics.values().cloned().collect()
        } else {
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                out.push(
                    topics
                        .get(name)
                        .cloned()
                        .ok_or_else(|| Error::UnknownTopic(name.clone()))?,
                );
            }
            out
        };
        drop(topics);
        Ok(selected
            .iter()
            .map(|t| view(t, self.settings.broker.id))
            .collect())
    }

    /// Creates a topic: validates everything, persists its spec, opens its
    /// partition logs. In a cluster the controller creates it (placing its
    /// replicas) and this waits until the metadata shows it.
    pub async fn create_topic(&self, request: CreateTopic) -> Result<TopicView, Error> {
        validate_topic_name(&request.name)?;
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&request.partitions) {
            return Err(Error::InvalidPartitions {
                requested: request.partitions,
                max: MAX_PARTITIONS_PER_TOPIC,
            });
        }
        if let Some(admin) = self.admin_remote.get() {
            self.settings
                .log_defaults
                .clone()
                .with_overrides(&request.config)?;
            let name = request.name.clone();
            admin.create(request).await?;
            return self.await_topic(&name).await;
        }
        let replication_factor = match request.replication_factor {
            -1..=1 => 1,
            n => return Err(Error::InvalidReplicationFactor(n)),
        };
        // Validates every key and value; the error names the bad one.
        self.settings
            .log_defaults
            .clone()
            .with_overrides(&request.config)?;

        let _admin = self.admin.lock().await;
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        if self.topics.read().contains_key(&request.name) {
            return Err(Error::TopicExists(request.name));
        }
        let spec = TopicSpec {
            name: request.name,
            partitions: request.partitions,
            replication_factor,
            config: request.config,
            created_ms: now_ms(),
        };
        let store = self.store.clone();
        let defaults = self.settings.log_defaults.clone();
        let metrics = Arc::clone(&self.metrics);
        let topic = tokio::task::spawn_blocking(move || {
            store.save(&spec)?;
            match open_topic(&store, &defaults, spec.clone(), &metrics) {
                Ok(topic) => Ok(topic),
                Err(e) => {
                    // Do not leave a half-created topic behind to be loaded
                    // at the next start.
                    if let Err(cleanup) = store.delete(&spec.name, now_ms()) {
                        warn!(topic = %spec.name, error = %cleanup, "could not remove a topic whose creation failed");
                    }
                    Err(e)
                }
            }
        })
        .await
        .map_err(|e| Error::InvalidRequest(format!("topic creation task failed: {e}")))??;
        let topic = Arc::new(topic);
        info!(topic = %topic.spec.name, partitions = topic.spec.partitions, config = ?topic.spec.config, "topic created");
        self.topics
            .write()
            .insert(topic.spec.name.clone(), Arc::clone(&topic));
        self.roles_changed();
        Ok(view(&topic, self.settings.broker.id))
    }

    /// Deletes a topic and all its data. Producers and long polls on it
    /// fail with "topic deleted".
    pub async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        if let Some(admin) = self.admin_remote.get() {
            return admin.delete(name).await;
        }
        let _admin = self.admin.lock().await;
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let topic = self
            .topics
            .write()
            .remove(name)
            .ok_or_else(|| Error::UnknownTopic(name.to_owned()))?;
        for p in topic.hosted() {
            p.mark_deleted();
        }
        self.roles_changed();
        let store = self.store.clone();
        let owned = name.to_owned();
        let result = tokio::task::spawn_blocking(move || store.delete(&owned, now_ms()))
            .await
            .map_err(|e| Error::InvalidRequest(format!("topic deletion task failed: {e}")))?;
        self.metrics.remove_topic(name, topic.spec.partitions);
        match result {
            Ok(()) => {
                info!(topic = name, "topic deleted");
                Ok(())
            }
            Err(e) => {
                warn!(topic = name, error = %e, "topic delete failed part-way; it is gone from this broker and a restart finishes removing its data");
                Err(e.into())
            }
        }
    }

    /// Cluster mode: topic create/delete go to `admin` (the controller).
    pub fn set_topic_admin(&self, admin: Arc<dyn TopicAdmin>) {
        let _ = self.admin_remote.set(admin);
    }

    /// Installs the controller's metadata, which answers Metadata requests.
    pub fn set_cluster_view(&self, view: MetadataView) {
        *self.cluster.write() = Some(view);
        self.cluster_changed.notify_waiters();
    }

    /// Tells watchers of [`ReplicaManager::subscribe_roles`] that partition
    /// roles may have changed.
    pub fn roles_changed(&self) {
        self.roles.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes whenever partition roles may have changed.
    pub fn subscribe_roles(&self) -> tokio::sync::watch::Receiver<u64> {
        self.roles.subscribe()
    }

    /// Number of partitions of a topic: from the controller's metadata in a
    /// cluster, else from the local topics.
    pub fn topic_partitions(&self, topic: &str) -> Option<i32> {
        if let Some(view) = &*self.cluster.read() {
            return view.topics.get(topic).map(|t| t.partitions.len() as i32);
        }
        self.topics.read().get(topic).map(|t| t.spec.partitions)
    }

    /// The broker leading a partition (this one when standalone), if any.
    pub fn leader_of(&self, topic: &str, partition: i32) -> Option<i32> {
        if let Some(view) = &*self.cluster.read() {
            return view
                .topics
                .get(topic)
                .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
                .map(|p| p.leader)
                .filter(|l| *l != rill_controller::NO_LEADER);
        }
        self.partition(topic, partition)
            .ok()
            .map(|_| self.settings.broker.id)
    }

    /// The Kafka listener address (host:port) a broker registered with the
    /// controller; `None` when standalone or when it registered none.
    pub fn kafka_address(&self, broker: i32) -> Option<String> {
        let cluster = self.cluster.read();
        let b = cluster.as_ref()?.brokers.get(&broker)?;
        (!b.endpoints.kafka.is_empty()).then(|| b.endpoints.kafka.clone())
    }

    /// Brokers that are alive in a cluster (`None` when standalone).
    pub fn live_brokers(&self) -> Option<usize> {
        let cluster = self.cluster.read();
        let view = cluster.as_ref()?;
        Some(
            view.brokers
                .values()
                .filter(|b| b.state == rill_controller::Liveness::Active)
                .count(),
        )
    }

    /// Brokers to advertise: every registered broker in a cluster, else this one.
    pub fn brokers(&self) -> Vec<BrokerInfo> {
        match &*self.cluster.read() {
            Some(view) => view
                .brokers
                .values()
                .map(|b| BrokerInfo {
                    id: b.id,
                    address: b.endpoints.client.clone(),
                    rack: b.rack.clone(),
                })
                .collect(),
            None => vec![self.settings.broker.clone()],
        }
    }

    fn cluster_metadata(
        &self,
        view: &MetadataView,
        names: &[String],
    ) -> Result<Vec<TopicView>, Error> {
        let selected: Vec<&rill_controller::TopicState> = if names.is_empty() {
            view.topics.values().collect()
        } else {
            names
                .iter()
                .map(|n| {
                    view.topics
                        .get(n)
                        .ok_or_else(|| Error::UnknownTopic(n.clone()))
                })
                .collect::<Result<_, _>>()?
        };
        let topics = self.topics.read();
        Ok(selected
            .into_iter()
            .map(|t| {
                let local = topics.get(&t.name);
                let config = self
                    .settings
                    .log_defaults
                    .clone()
                    .with_overrides(&t.config)
                    .map(|c| c.to_map())
                    .unwrap_or_else(|_| t.config.clone());
                TopicView {
                    name: t.name.clone(),
                    replication_factor: t.partitions.first().map_or(0, |p| p.replicas.len() as i32),
                    config,
                    partitions: t
                        .partitions
                        .iter()
                        .enumerate()
                        .map(|(i, p)| PartitionView {
                            id: i as i32,
                            leader: p.leader,
                            replicas: p.replicas.clone(),
                            isr: p.isr.clone(),
                            leader_epoch: p.leader_epoch,
                            // Offsets are the leader's to tell; a follower's
                            // HW lags behind.
                            state: local
                                .and_then(|l| l.partitions.get(i).cloned().flatten())
                                .filter(|_| p.leader == self.settings.broker.id)
                                .map(|lp| lp.state()),
                        })
                        .collect(),
                }
            })
            .collect())
    }

    /// Waits (bounded) until a topic created through the controller shows
    /// up in the metadata.
    async fn await_topic(&self, name: &str) -> Result<TopicView, Error> {
        const TOPIC_VISIBLE_TIMEOUT: Duration = Duration::from_secs(10);
        let deadline = tokio::time::Instant::now() + TOPIC_VISIBLE_TIMEOUT;
        loop {
            let changed = self.cluster_changed.notified();
            if let Ok(mut views) = self.metadata(&[name.to_owned()]) {
                return Ok(views.remove(0));
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(Error::Controller(format!(
                    "topic {name:?} was created but did not appear in the metadata within {TOPIC_VISIBLE_TIMEOUT:?}"
                )));
            }
        }
    }

    /// Cluster mode: makes this broker host exactly the `hosted` partitions
    /// of `topic` (which has `total`). Opens (recovers) logs of new ones,
    /// deletes local replicas no longer assigned here. Blocking.
    pub fn host(
        &self,
        topic: &str,
        total: i32,
        hosted: &BTreeSet<i32>,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Vec<Arc<Partition>>, Error> {
        let config = self
            .settings
            .log_defaults
            .clone()
            .with_overrides(overrides)?;
        let existing = self.topics.read().get(topic).cloned();
        let total_usize = total.max(0) as usize;
        let mut partitions: Vec<Option<Arc<Partition>>> = vec![None; total_usize];
        let mut removed = Vec::new();
        if let Some(t) = &existing {
            for p in t.hosted() {
                let i = p.id as usize;
                if i < total_usize && hosted.contains(&p.id) {
                    partitions[i] = Some(Arc::clone(p));
                } else {
                    removed.push(Arc::clone(p));
                }
            }
        }
        let unchanged = existing.as_ref().is_some_and(|t| {
            removed.is_empty()
                && t.partitions.len() == total_usize
                && hosted
                    .iter()
                    .all(|id| partitions.get(*id as usize).is_some_and(Option::is_some))
        });
        if unchanged {
            return Ok(partitions.into_iter().flatten().collect());
        }
        let name: Arc<str> = Arc::from(topic);
        for &id in hosted {
            let Some(slot) = partitions.get_mut(id as usize) else {
                continue;
            };
            if slot.is_none() {
                let dir = self.store.partition_dir(topic, id);
                let log =
                    PartitionLog::open(&dir, config.clone()).map_err(|source| Error::Log {
                        topic: topic.to_owned(),
                        partition: id,
                        source,
                    })?;
                *slot = Some(Arc::new(Partition::new(
                    Arc::clone(&name),
                    id,
                    log,
                    Arc::clone(&self.metrics),
                )?));
            }
        }
        let spec = TopicSpec {
            name: topic.to_owned(),
            partitions: total,
            replication_factor: 0,
            config: overrides.clone(),
            created_ms: now_ms(),
        };
        let out = partitions.iter().flatten().cloned().collect();
        self.topics.write().insert(
            topic.to_owned(),
            Arc::new(Topic {
                spec,
                config,
                partitions,
            }),
        );
        for p in removed {
            p.mark_deleted();
            let dir = self.store.partition_dir(topic, p.id);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                warn!(topic, partition = p.id, error = %e, "could not delete a replica no longer assigned here");
            }
            info!(topic, partition = p.id, "replica removed from this broker");
        }
        Ok(out)
    }

    /// Cluster mode: removes a topic the controller no longer has, with its
    /// local data. Blocking.
    pub fn drop_local_topic(&self, name: &str) {
        let topic = self.topics.write().remove(name);
        if let Some(t) = &topic {
            for p in t.hosted() {
                p.mark_deleted();
            }
            self.metrics.remove_topic(name, t.spec.partitions);
            self.roles_changed();
        }
        let dir = self.store.topic_dir(name);
        if dir.exists() {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => info!(
                    topic = name,
                    "deleted local data of a topic the controller no longer has"
                ),
                Err(e) => warn!(topic = name, error = %e, "could not delete local topic data"),
            }
        }
    }

    /// Names of topics with data or replicas on this broker.
    pub fn local_topics(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.topics.read().keys().cloned().collect();
        if let Some(root) = self.store.topic_dir("x").parent() {
            if let Ok(entries) = std::fs::read_dir(root) {
                names.extend(
                    entries
                        .flatten()
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.file_name().to_string_lossy().into_owned()),
                );
            }
        }
        names
    }

    /// Refreshes the per-partition gauges (before a metrics scrape).
    pub fn refresh_gauges(&self) {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        for t in topics {
            for p in t.hosted() {
                let s = p.state();
                let labels = [&*t.spec.name, &p.id.to_string()];
                let m = &self.metrics;
                m.log_size_bytes
                    .with_label_values(&labels)
                    .set(s.size_bytes as i64);
                m.log_end_offset
                    .with_label_values(&labels)
                    .set(s.log_end_offset);
                m.log_start_offset
                    .with_label_values(&labels)
                    .set(s.log_start_offset);
                m.high_watermark
                    .with_label_values(&labels)
                    .set(s.high_watermark);
            }
        }
    }

    /// Starts shutdown: refuses topic admin, makes long polls return.
    pub fn begin_shutdown(&self) {
        self.closing.store(true, Ordering::Release);
        for p in self.all_partitions() {
            p.mark_closing();
        }
    }

    /// fsyncs every partition log. Blocking. Returns how many failed.
    pub fn flush_all(&self) -> usize {
        let mut failed = 0;
        for p in self.all_partitions() {
            if let Err(e) = p.flush_blocking() {
                warn!(topic = %p.topic, partition = p.id, error = %e, "final flush failed");
                failed += 1;
            }
        }
        failed
    }
}

fn open_topic(
    store: &TopicStore,
    defaults: &LogConfig,
    spec: TopicSpec,
    metrics: &Arc<Metrics>,
) -> Result<Topic, Error> {
    let config = defaults.clone().with_overrides(&spec.config)?;
    let name: Arc<str> = Arc::from(spec.name.as_str());
    let mut partitions = Vec::with_capacity(spec.partitions.max(0) as usize);
    for id in 0..spec.partitions {
        let dir = store.partition_dir(&spec.name, id);
        let log = PartitionLog::open(&dir, config.clone()).map_err(|source| Error::Log {
            topic: spec.name.clone(),
            partition: id,
            source,
        })?;
        partitions.push(Some(Arc::new(Partition::new(
            Arc::clone(&name),
            id,
            log,
            Arc::clone(metrics),
        )?)));
    }
    Ok(Topic {
        spec,
        config,
        partitions,
    })
}

/// A standalone broker's view of a topic: it leads every partition.
fn view(t: &Topic, me: i32) -> TopicView {
    TopicView {
        name: t.spec.name.clone(),
        partitions: t
            .hosted()
            .map(|p| {
                let state = p.state();
                PartitionView {
                    id: p.id,
                    leader: me,
                    replicas: vec![me],
                    isr: vec![me],
                    leader_epoch: state.leader_epoch,
                    state: Some(state),
                }
            })
            .collect(),
        replication_factor: t.spec.replication_factor,
        config: t.config.to_map(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(dir: &std::path::Path) -> ReplicaManager {
        let settings = Settings {
            broker: BrokerInfo {
                id: 0,
                address: "localhost:9093".into(),
                rack: None,
            },
            log_defaults: LogConfig::default(),
            auto_create_partitions: None,
            max_request_bytes: 1 << 20,
        };
        let store = TopicStore::open(dir).expect("store");
        ReplicaManager::open(store, settings, Arc::new(Metrics::new())).expect("open")
    }

    fn create(name: &str, partitions: i32, rf: i32, config: &[(&str, &str)]) -> CreateTopic {
        CreateTopic {
            name: name.into(),
            partitions,
            replication_factor: rf,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[tokio::test]
    async fn given_bad_create_requests_when_created_should_fail_with_the_reason() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let m = manager(tmp.path());
        let cases = [
            (create("a b", 1, 1, &[]), "invalid topic name"),
            (create("t", 0, 1, &[]), "between 1 and"),
            (create("t", 1, 3, &[]), "must be 1"),
            (
                create("t", 1, 1, &[("retention.mss", "1")]),
                "retention.mss",
            ),
            (create("t", 1, 1, &[("flush", "sometimes")]), "flush"),
        ];
        for (request, why) in cases {
            let err = m.create_topic(request).await.expect_err(why).to_string();
            assert!(err.contains(why), "{err}");
        }
        assert!(m.metadata(&[]).expect("metadata").is_empty());
        m.create_topic(create("t", 2, 0, &[]))
            .await
            .expect("create");
        let err = m
            .create_topic(create("t", 2, 1, &[]))
            .await
            .expect_err("dup");
        assert!(matches!(err, Error::TopicExists(_)), "{err}");
    }

    #[tokio::test]
    async fn given_unknown_partition_when_produced_should_name_the_valid_range() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let m = manager(tmp.path());
        m.create_topic(create("t", 2, 1, &[]))
            .await
            .expect("create");
        let err = m
            .produce("t", 2, vec![], Acks::Leader, 0)
            .await
            .expect_err("no partition 2")
            .to_string();
        assert!(err.contains("partitions 0..2"), "{err}");
    }
}
