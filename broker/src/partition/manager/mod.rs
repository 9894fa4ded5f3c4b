//! [`ReplicaManager`]: the topics and partitions of this broker and every
//! client request on them.
//!
//! Requests arrive from an adapter as plain Rust values, are checked here
//! (topic exists, partition exists, sizes, limits) and go to one
//! [`Partition`]. The manager is split by concern:
//!
//! - this file: the manager itself, the local topics and their partition
//!   lookup, opening topics from the [`TopicStore`], shutdown and gauges;
//! - `requests`: produce, fetch and offset requests, routed to a local
//!   partition;
//! - `admin`: topic create/delete/grow. They are serialised by one admin
//!   lock and persist through [`TopicStore`] before changing the in-memory
//!   map, so a restart sees exactly the acknowledged topics; in a cluster
//!   they go to the controller through [`TopicAdmin`];
//! - `hosting`: cluster mode: hosting exactly the replicas the controller
//!   assigned here and dropping the rest;
//! - `topology`: who leads which partition and which brokers exist,
//!   standalone or from the controller's metadata.

mod admin;
mod hosting;
mod requests;
#[cfg(test)]
mod tests;
mod topology;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;
use tracing::{info, warn};

pub use admin::{CreateTopic, TopicAdmin};
pub use requests::{
    DEFAULT_FETCH_BYTES, DEFAULT_PRODUCE_TIMEOUT, FetchLimits, FetchPartition, MAX_FETCH_WAIT,
    MAX_PRODUCE_TIMEOUT, OffsetAnswer, OffsetSpec,
};
pub use topology::{PartitionView, TopicView};

use super::store::{
    StoreError, TopicSpec, TopicStore, partition_topic_id, write_partition_topic_id,
};
use super::{Error, HighWatermarks, IsrDue, Partition};
use crate::log::{LogConfig, PartitionLog};
use crate::metrics::Metrics;
use topology::Topology;

/// This broker as advertised in Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    /// host:port of the client API.
    pub address: String,
    /// host:port of the Kafka listener; empty when the broker has none.
    pub kafka_address: String,
    /// host:port of each named Kafka listener (`--kafka-listener`).
    pub kafka_listeners: std::collections::BTreeMap<String, String>,
    pub rack: Option<String>,
    /// Fenced by the controller (lease expired) or shutting down: leads
    /// nothing and is not advertised to Kafka clients.
    pub fenced: bool,
}

impl BrokerInfo {
    /// The broker's address on `listener` (a named listener it has), else
    /// its first Kafka listener's.
    pub fn kafka_address_on(&self, listener: Option<&str>) -> &str {
        listener
            .and_then(|name| self.kafka_listeners.get(name))
            .unwrap_or(&self.kafka_address)
    }
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
    /// Replication factor of topics created without one (-1 or 0).
    pub default_replication_factor: i32,
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

/// The local topics by name.
type Topics = RwLock<BTreeMap<String, Arc<Topic>>>;

/// Topics and partitions of this broker.
#[derive(Debug)]
pub struct ReplicaManager {
    settings: Settings,
    store: TopicStore,
    topics: Topics,
    /// Serialises topic create and delete (they do disk I/O).
    admin: tokio::sync::Mutex<()>,
    /// Set when shutdown starts: admin requests are refused.
    closing: AtomicBool,
    /// Standalone, or the controller's metadata as last received, which
    /// answers Metadata requests.
    topology: RwLock<Topology>,
    /// In a cluster: topic admin goes to the controller.
    admin_remote: std::sync::OnceLock<Arc<dyn TopicAdmin>>,
    /// Notified when the cluster metadata changes.
    topology_changed: tokio::sync::Notify,
    /// Bumped after partition roles may have changed (metadata applied,
    /// topic created or removed); services that depend on leadership (the
    /// group coordinator) watch it.
    roles: tokio::sync::watch::Sender<u64>,
    metrics: Arc<Metrics>,
    /// Partitions led here whose ISR may change soon.
    isr_due: Arc<IsrDue>,
    /// The HW checkpoint of every replica hosted here.
    high_watermarks: Arc<HighWatermarks>,
    /// Settings of topics that do not override them: `settings.log_defaults`
    /// at start, then as the configuration file changes
    /// ([`ReplicaManager::set_log_defaults`]).
    log_defaults: RwLock<LogConfig>,
}

fn new_topic_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A topic id as Kafka clients see it; nil when it is not a UUID.
fn kafka_topic_id(id: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(id).unwrap_or(uuid::Uuid::nil())
}

/// Opens (recovers) the log in partition directory `dir` of topic `topic`
/// with id `topic_id`, first recording the id in the directory. A
/// directory holding a log of another topic id is refused: that log
/// belongs to an earlier topic of the same name.
fn open_partition_log(
    dir: &std::path::Path,
    topic: &str,
    topic_id: &str,
    partition: i32,
    config: &LogConfig,
) -> Result<PartitionLog, Error> {
    let io = |what: &str| {
        let context = format!("{what} {}", dir.display());
        move |source| Error::Metadata(StoreError { context, source })
    };
    let recorded = partition_topic_id(dir).map_err(io("reading the topic id of"))?;
    if recorded.as_deref().is_some_and(|r| r != topic_id) {
        return Err(Error::Metadata(StoreError {
            context: format!("opening {}", dir.display()),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the log belongs to an earlier topic {topic:?}, not to the one with id {topic_id}"
                ),
            ),
        }));
    }
    if recorded.is_none() {
        write_partition_topic_id(dir, topic_id).map_err(io("recording the topic id in"))?;
    }
    PartitionLog::open(dir, config.clone()).map_err(|source| Error::Log {
        topic: topic.to_owned(),
        partition,
        source,
    })
}

/// The replica of partition `id` of `topic` over its opened log, with the
/// HW it last checkpointed.
fn new_partition(
    high_watermarks: &HighWatermarks,
    topic: Arc<str>,
    id: i32,
    log: PartitionLog,
    metrics: &Arc<Metrics>,
    isr_due: &Arc<IsrDue>,
) -> Result<Partition, Error> {
    let hw = high_watermarks
        .take(
            &topic,
            id,
            log.dir(),
            log.log_start_offset(),
            log.next_offset(),
        )
        .map_err(|e| Error::Log {
            topic: topic.to_string(),
            partition: id,
            source: crate::log::LogError::io("reading the high watermark checkpoint".to_owned(), e),
        })?;
    Partition::new(topic, id, log, hw, Arc::clone(metrics), Arc::clone(isr_due))
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
        let isr_due = Arc::new(IsrDue::default());
        let high_watermarks = HighWatermarks::open(store.data_dir()).map_err(|source| {
            Error::Metadata(StoreError {
                context: "reading the high watermark checkpoint".to_owned(),
                source,
            })
        })?;
        // Entries of replicas whose directory is gone (removed from this
        // broker, or their topic deleted) are dropped.
        high_watermarks
            .retain_unopened(|topic, partition| store.partition_dir(topic, partition).is_dir());
        for mut spec in store.load_all()? {
            if spec.id.is_empty() {
                // Created before topics had ids: it gets one, once.
                spec.id = new_topic_id();
                store.save(&spec)?;
                info!(topic = %spec.name, id = %spec.id, "gave a topic created before topic ids an id");
            }
            let topic = open_topic(
                &store,
                &settings.log_defaults,
                spec,
                &high_watermarks,
                &metrics,
                &isr_due,
            )?;
            topics.insert(topic.spec.name.clone(), Arc::new(topic));
        }
        info!(topics = topics.len(), "topics loaded");
        Ok(Self {
            log_defaults: RwLock::new(settings.log_defaults.clone()),
            settings,
            store,
            topics: RwLock::new(topics),
            admin: tokio::sync::Mutex::new(()),
            closing: AtomicBool::new(false),
            topology: RwLock::new(Topology::Standalone),
            admin_remote: std::sync::OnceLock::new(),
            topology_changed: tokio::sync::Notify::new(),
            roles: tokio::sync::watch::Sender::new(0),
            metrics,
            isr_due,
            high_watermarks: Arc::new(high_watermarks),
        })
    }

    /// The partitions led here whose ISR may change soon.
    pub fn isr_due(&self) -> &IsrDue {
        &self.isr_due
    }

    /// The broker's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The data directory: this broker's one Kafka log dir.
    pub fn data_dir(&self) -> &std::path::Path {
        self.store.data_dir()
    }

    pub fn broker(&self) -> &BrokerInfo {
        &self.settings.broker
    }

    /// Settings of topics that do not override them, as they are now.
    pub fn log_defaults(&self) -> LogConfig {
        self.log_defaults.read().clone()
    }

    /// Replaces the broker defaults of topic settings while the broker
    /// runs (the configuration file changed): every hosted partition of a
    /// topic that does not override a changed setting takes the new value
    /// at once. Returns how many partitions were reconfigured.
    pub fn set_log_defaults(&self, defaults: LogConfig) -> usize {
        *self.log_defaults.write() = defaults.clone();
        let mut topics = self.topics.write();
        let mut reconfigured = 0;
        for (name, topic) in topics.iter_mut() {
            let effective = match defaults.clone().with_overrides(&topic.spec.config) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(topic = %name, error = %e, "topic overrides no longer valid with the new defaults; keeping its settings");
                    continue;
                }
            };
            if effective == topic.config {
                continue;
            }
            for p in topic.hosted() {
                p.set_config(effective.clone());
                reconfigured += 1;
            }
            *topic = Arc::new(Topic {
                spec: topic.spec.clone(),
                config: effective,
                partitions: topic.partitions.clone(),
            });
        }
        reconfigured
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>, Error> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(name.to_owned()))
    }

    /// The local replica of `topic`-`partition`. In a cluster, a partition
    /// the controller knows but this broker does not host (not yet: the
    /// controller names leaders before they have opened their logs; or no
    /// longer) is [`Error::NotLeader`], which clients retry at the leader,
    /// never "unknown".
    pub fn partition(&self, topic: &str, partition: i32) -> Result<Arc<Partition>, Error> {
        let index = usize::try_from(partition).ok();
        let local = self.topics.read().get(topic).cloned();
        if let Some(p) = local
            .as_ref()
            .zip(index)
            .and_then(|(t, i)| t.partitions.get(i).cloned().flatten())
        {
            return Ok(p);
        }
        if let Some(not_here) = self.topology.read().not_hosted(topic, partition) {
            return Err(not_here);
        }
        let t = local.ok_or_else(|| Error::UnknownTopic(topic.to_owned()))?;
        Err(Error::UnknownPartition {
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

    /// Tells watchers of [`ReplicaManager::subscribe_roles`] that partition
    /// roles may have changed.
    pub fn roles_changed(&self) {
        self.roles.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes whenever partition roles may have changed.
    pub fn subscribe_roles(&self) -> tokio::sync::watch::Receiver<u64> {
        self.roles.subscribe()
    }

    /// The id of a local topic (standalone: the broker's own; in a
    /// cluster: the controller's), `None` when there is no such topic.
    pub fn local_topic_id(&self, topic: &str) -> Option<String> {
        self.topics.read().get(topic).map(|t| t.spec.id.clone())
    }

    /// A local partition of `topic` with id `topic_id` (empty: any id).
    /// An earlier topic of the same name is [`Error::UnknownTopic`].
    pub fn partition_of(
        &self,
        topic: &str,
        topic_id: &str,
        partition: i32,
    ) -> Result<Arc<Partition>, Error> {
        let t = self.topic(topic)?;
        if !topic_id.is_empty() && t.spec.id != topic_id {
            return Err(Error::UnknownTopic(topic.to_owned()));
        }
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

    /// Refreshes the per-partition gauges and the counts of partitions led
    /// here that are under-replicated or under min.insync.replicas (before
    /// a metrics scrape).
    pub fn refresh_gauges(&self) {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        let (mut under_replicated, mut under_min_isr) = (0, 0);
        for t in topics {
            for p in t.hosted() {
                let role = p.role_view();
                // A standalone partition has no replica set to fall short of.
                if role.is_leader && !role.replicas.is_empty() {
                    if role.isr.len() < role.replicas.len() {
                        under_replicated += 1;
                    }
                    if (role.isr.len() as u32) < p.config().min_insync_replicas {
                        under_min_isr += 1;
                    }
                }
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
        self.metrics
            .under_replicated_partitions
            .set(under_replicated);
        self.metrics.under_min_isr_partitions.set(under_min_isr);
    }

    /// Starts shutdown: refuses topic admin, makes long polls return.
    pub fn begin_shutdown(&self) {
        self.closing.store(true, Ordering::Release);
        for p in self.all_partitions() {
            p.mark_closing();
        }
    }

    /// fsyncs every partition log, then writes the HW checkpoint durably.
    /// Blocking. Returns how many failed (the checkpoint counts as one).
    pub fn flush_all(&self) -> usize {
        let mut failed = 0;
        let partitions = self.all_partitions();
        for p in &partitions {
            if let Err(e) = p.flush_blocking() {
                warn!(topic = %p.topic, partition = p.id, error = %e, "final flush failed");
                failed += 1;
            }
        }
        if let Err(e) = self.write_high_watermarks(&partitions, std::time::Instant::now(), true) {
            warn!(error = %e, "final high watermark checkpoint failed");
            failed += 1;
        }
        failed
    }

    /// Whether [`ReplicaManager::write_high_watermarks`] would look at the
    /// HWs now.
    pub fn high_watermarks_due(&self, now: std::time::Instant) -> bool {
        self.high_watermarks.due(now)
    }

    /// Writes the HW checkpoint of `partitions` (every replica hosted here)
    /// if a HW moved: at most every [`super::hw_checkpoint::INTERVAL`],
    /// without an fsync (the next sync makes it durable), unless `force`,
    /// which writes it now and durably. Returns whether it wrote. Blocking.
    pub fn write_high_watermarks(
        &self,
        partitions: &[Arc<Partition>],
        now: std::time::Instant,
        force: bool,
    ) -> Result<bool, Error> {
        let replicas = partitions
            .iter()
            .filter(|p| p.state.load(Ordering::Acquire) != super::DELETED)
            .map(|p| (&*p.topic, p.id, p.high_watermark()));
        self.high_watermarks
            .write(replicas, now, force)
            .map_err(|source| {
                Error::Metadata(StoreError {
                    context: format!(
                        "writing the high watermark checkpoint in {}",
                        self.data_dir().display()
                    ),
                    source,
                })
            })
    }
}

fn open_topic(
    store: &TopicStore,
    defaults: &LogConfig,
    spec: TopicSpec,
    high_watermarks: &HighWatermarks,
    metrics: &Arc<Metrics>,
    isr_due: &Arc<IsrDue>,
) -> Result<Topic, Error> {
    let config = defaults.clone().with_overrides(&spec.config)?;
    let name: Arc<str> = Arc::from(spec.name.as_str());
    let mut partitions = Vec::with_capacity(spec.partitions.max(0) as usize);
    for id in 0..spec.partitions {
        let dir = store.partition_dir(&spec.name, id);
        let log = open_partition_log(&dir, &spec.name, &spec.id, id, &config)?;
        partitions.push(Some(Arc::new(new_partition(
            high_watermarks,
            Arc::clone(&name),
            id,
            log,
            metrics,
            isr_due,
        )?)));
    }
    Ok(Topic {
        spec,
        config,
        partitions,
    })
}
