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

use super::{Acks, ClientRead, Error, FetchResult, Partition, PartitionState, ProduceResult};
use crate::config::MAX_PARTITIONS_PER_TOPIC;
use crate::log::{LogConfig, PartitionLog};
use super::store::{
    StoreError, TopicSpec, TopicStore, belongs_to_other_topic, partition_topic_id,
    validate_topic_name, write_partition_topic_id,
};
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
    /// host:port of the Kafka listener; empty when the broker has none.
    pub kafka_address: String,
    pub rack: Option<String>,
    /// Fenced by the controller (lease expired) or shutting down: leads
    /// nothing and is not advertised to Kafka clients.
    pub fenced: bool,
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
    /// Deletes topic `name`; with `id`, only if it still has that id.
    async fn delete(&self, name: &str, id: Option<&str>) -> Result<(), Error>;
    /// Grows a topic to `total` partitions.
    async fn create_partitions(&self, name: &str, total: i32) -> Result<(), Error>;
}

/// A topic as described by Metadata and CreateTopic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicView {
    pub name: String,
    /// The topic id (KIP-516); nil only for a topic whose id is unknown.
    pub id: uuid::Uuid,
    pub partitions: Vec<PartitionView>,
    pub replication_factor: i32,
    /// Effective config, every known key.
    pub config: BTreeMap<String, String>,
    /// The keys the topic sets itself (the rest are broker defaults).
    pub overrides: BTreeMap<String, String>,
}

/// Which offset ListOffsets resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    Timestamp(i64),
    /// The first record with the largest timestamp.
    MaxTimestamp,
}

/// An offset found by ListOffsets for a Kafka client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAnswer {
    /// -1 when no record matches.
    pub offset: i64,
    /// -1 unless resolved by timestamp.
    pub timestamp: i64,
    /// Leader epoch of the batch holding the offset, -1 when unknown.
    pub leader_epoch: i32,
}

/// One partition of a multi-partition consumer fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Largest data for this partition (0: the broker default).
    pub max_bytes: usize,
    /// -1: no check.
    pub current_leader_epoch: i32,
    /// -1: no divergence check.
    pub last_fetched_epoch: i32,
}

/// Bounds of a multi-partition consumer fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// Largest response (0: the broker default); the first partition with
    /// data may exceed it by one batch, so consumers always progress.
    pub max_bytes: usize,
    /// Return as soon as this much data is available...
    pub min_bytes: usize,
    /// ...or this much time passed (capped at [`MAX_FETCH_WAIT`]).
    pub max_wait: Duration,
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
        for mut spec in store.load_all()? {
            if spec.id.is_empty() {
                // Created before topics had ids: it gets one, once.
                spec.id = new_topic_id();
                store.save(&spec)?;
                info!(topic = %spec.name, id = %spec.id, "gave a topic created before topic ids an id");
            }
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

    /// Settings of topics that do not override them.
    pub fn log_defaults(&self) -> &LogConfig {
        &self.settings.log_defaults
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
        if let Some(view) = &*self.cluster.read()
            && let Some(state) = view
                .topics
                .get(topic)
                .zip(index)
                .and_then(|(t, i)| t.partitions.get(i))
        {
            return Err(Error::NotLeader {
                topic: topic.to_owned(),
                partition,
                leader: Some(state.leader).filter(|l| *l != rill_controller::NO_LEADER),
            });
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
            OffsetSpec::MaxTimestamp => Ok(p.offset_for_max_timestamp()?.unwrap_or((-1, -1))),
        }
    }

    /// ListOffsets for a Kafka client: checks the leader epoch
    /// (`current_leader_epoch` -1: no check), resolves `spec` below the HW
    /// and tells the leader epoch of the batch holding the offset.
    pub fn list_offsets_for_client(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
        current_leader_epoch: i32,
    ) -> Result<OffsetAnswer, Error> {
        let p = self.partition(topic, partition)?;
        p.check_leader_epoch(current_leader_epoch)?;
        let found = |hit: Option<(i64, i64)>| match hit {
            Some((offset, timestamp)) => OffsetAnswer {
                offset,
                timestamp,
                leader_epoch: p.epoch_of_offset(offset),
            },
            None => OffsetAnswer {
                offset: -1,
                timestamp: -1,
                leader_epoch: -1,
            },
        };
        Ok(match spec {
            OffsetSpec::Earliest => {
                let offset = p.earliest_offset()?;
                OffsetAnswer {
                    offset,
                    timestamp: -1,
                    leader_epoch: p.epoch_of_offset(offset),
                }
            }
            OffsetSpec::Latest => OffsetAnswer {
                offset: p.latest_offset()?,
                timestamp: -1,
                leader_epoch: p.latest_epoch(),
            },
            OffsetSpec::Timestamp(ts) => found(p.offset_for_timestamp(ts)?),
            OffsetSpec::MaxTimestamp => found(p.offset_for_max_timestamp()?),
        })
    }

    /// OffsetForLeaderEpoch for a consumer: the largest epoch <= `epoch`
    /// this leader's log has and the offset where it ends.
    pub fn offset_for_leader_epoch(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
        epoch: i32,
    ) -> Result<(i32, i64), Error> {
        self.partition(topic, partition)?
            .epoch_end_offset(current_leader_epoch, epoch)
    }

    /// A consumer fetch of several partitions: reads each below its HW;
    /// returns once `min_bytes` are available, a partition fails or
    /// diverges, the broker shuts down, or `max_wait` passed (any HW change
    /// of a requested partition re-reads). Results are in request order.
    /// The response holds at most `max_bytes`, except that the first
    /// partition with data returns at least one whole batch (KIP-74).
    pub async fn fetch_many(
        &self,
        requests: &[FetchPartition],
        limits: FetchLimits,
    ) -> Vec<Result<ClientRead, Error>> {
        let max_total = match limits.max_bytes {
            0 => DEFAULT_FETCH_BYTES,
            n => n.min(self.settings.max_request_bytes),
        };
        let min_bytes = limits.min_bytes.min(max_total);
        let deadline = tokio::time::Instant::now() + limits.max_wait.min(MAX_FETCH_WAIT);
        loop {
            let mut watchers = Vec::with_capacity(requests.len());
            let mut results = Vec::with_capacity(requests.len());
            let mut remaining = max_total;
            let mut total = 0usize;
            let mut done = false;
            for r in requests {
                let result = self.partition(&r.topic, r.partition).and_then(|p| {
                    // Subscribed before reading: a change between the read
                    // and the wait below still wakes it.
                    let mut hw = p.subscribe_high_watermark();
                    hw.borrow_and_update();
                    watchers.push(hw);
                    done |= p.is_closing();
                    let limit = match r.max_bytes {
                        0 => DEFAULT_FETCH_BYTES,
                        n => n,
                    }
                    .min(remaining);
                    p.read_for_client(
                        r.offset,
                        limit,
                        total == 0,
                        r.current_leader_epoch,
                        r.last_fetched_epoch,
                    )
                });
                match &result {
                    Ok(read) => {
                        total += read.data.len();
                        remaining = remaining.saturating_sub(read.data.len());
                        done |= read.diverging.is_some();
                    }
                    Err(_) => done = true,
                }
                results.push(result);
            }
            if done || total >= min_bytes || tokio::time::Instant::now() >= deadline {
                return results;
            }
            let _waiting = super::WaitingGuard::new(&self.metrics);
            if watchers.is_empty() {
                tokio::time::sleep_until(deadline).await;
                continue;
            }
            let any_change =
                futures::future::select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
            tokio::select! {
                _ = any_change => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
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

    /// Checks a topic create request without creating anything (Kafka's
    /// `validate_only`): name, partition count, config, replication factor
    /// against the brokers available, and that the topic does not exist.
    pub fn validate_create_topic(&self, request: &CreateTopic) -> Result<(), Error> {
        validate_topic_name(&request.name)?;
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&request.partitions) {
            return Err(Error::InvalidPartitions {
                requested: request.partitions,
                max: MAX_PARTITIONS_PER_TOPIC,
            });
        }
        self.settings
            .log_defaults
            .clone()
            .with_overrides(&request.config)?;
        match &*self.cluster.read() {
            Some(view) => {
                if view.topics.contains_key(&request.name) {
                    return Err(Error::TopicExists(request.name.clone()));
                }
                let rf = request.replication_factor.max(1);
                let available = view
                    .brokers
                    .values()
                    .filter(|b| b.state == rill_controller::Liveness::Active)
                    .count();
                if rf as usize > available {
                    return Err(Error::Placement(format!(
                        "replication factor {rf} is larger than the {available} available brokers"
                    )));
                }
            }
            None => {
                if !(-1..=1).contains(&request.replication_factor) {
                    return Err(Error::InvalidReplicationFactor(request.replication_factor));
                }
                if self.topics.read().contains_key(&request.name) {
                    return Err(Error::TopicExists(request.name.clone()));
                }
            }
        }
        Ok(())
    }

    /// Grows a topic to `total` partitions (never shrinks). In a cluster
    /// the controller places the new partitions and this waits until the
    /// metadata shows them; a standalone broker persists the new count and
    /// opens the new logs. With `validate_only` nothing changes.
    pub async fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), Error> {
        validate_topic_name(name)?;
        let current = self
            .metadata(&[name.to_owned()])?
            .first()
            .map_or(0, |t| t.partitions.len() as i32);
        let current = match &*self.cluster.read() {
            Some(view) => view
                .topics
                .get(name)
                .map_or(current, |t| t.partitions.len() as i32),
            None => current,
        };
        if total <= current {
            return Err(Error::PartitionCountNotIncreased {
                topic: name.to_owned(),
                current,
                requested: total,
            });
        }
        if total > MAX_PARTITIONS_PER_TOPIC {
            return Err(Error::InvalidPartitions {
                requested: total,
                max: MAX_PARTITIONS_PER_TOPIC,
            });
        }
        if validate_only {
            return Ok(());
        }
        if let Some(admin) = self.admin_remote.get() {
            admin.create_partitions(name, total).await?;
            return self.await_partitions(name, total).await;
        }
        let _admin = self.admin.lock().await;
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let old = self.topic(name)?;
        if total <= old.spec.partitions {
            return Err(Error::PartitionCountNotIncreased {
                topic: name.to_owned(),
                current: old.spec.partitions,
                requested: total,
            });
        }
        let mut spec = old.spec.clone();
        spec.partitions = total;
        let store = self.store.clone();
        let config = old.config.clone();
        let metrics = Arc::clone(&self.metrics);
        let first_new = old.spec.partitions;
        let opened = tokio::task::spawn_blocking(move || {
            // The spec is the commit point: partitions it lists but that have
            // no directory yet are created empty on the next open.
            store.save(&spec)?;
            let name: Arc<str> = Arc::from(spec.name.as_str());
            let mut opened = Vec::new();
            for id in first_new..spec.partitions {
                let dir = store.partition_dir(&spec.name, id);
                let log = open_partition_log(&dir, &spec.name, &spec.id, id, &config)?;
                opened.push(Some(Arc::new(Partition::new(
                    Arc::clone(&name),
                    id,
                    log,
                    Arc::clone(&metrics),
                )?)));
            }
            Ok::<_, Error>((spec, opened))
        })
        .await
        .map_err(|e| Error::InvalidRequest(format!("partition creation task failed: {e}")))??;
        let (spec, opened) = opened;
        let mut partitions = old.partitions.clone();
        partitions.extend(opened);
        info!(topic = name, partitions = total, "partitions added");
        self.topics.write().insert(
            name.to_owned(),
            Arc::new(Topic {
                spec,
                config: old.config.clone(),
                partitions,
            }),
        );
        Ok(())
    }

    /// Waits (bounded) until the metadata shows `total` partitions of a
    /// topic grown through the controller.
    async fn await_partitions(&self, name: &str, total: i32) -> Result<(), Error> {
        const PARTITIONS_VISIBLE_TIMEOUT: Duration = Duration::from_secs(10);
        let deadline = tokio::time::Instant::now() + PARTITIONS_VISIBLE_TIMEOUT;
        loop {
            let changed = self.cluster_changed.notified();
            let visible = self
                .cluster
                .read()
                .as_ref()
                .and_then(|v| v.topics.get(name).map(|t| t.partitions.len() as i32));
            if visible.is_some_and(|n| n >= total) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(Error::Controller(format!(
                    "topic {name:?} was grown to {total} partitions but the metadata did not show them within {PARTITIONS_VISIBLE_TIMEOUT:?}"
                )));
            }
        }
    }

    /// Whether this broker is a member of a cluster (has a controller).
    pub fn in_cluster(&self) -> bool {
        self.admin_remote.get().is_some()
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
            id: new_topic_id(),
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
        self.delete_topic_with_id(name, None).await
    }

    /// Deletes topic `name`; with `id`, only the topic of that id (a topic
    /// of the same name with another id is [`Error::UnknownTopic`] and is
    /// not touched).
    pub async fn delete_topic_with_id(&self, name: &str, id: Option<&str>) -> Result<(), Error> {
        if let Some(admin) = self.admin_remote.get() {
            return admin.delete(name, id).await;
        }
        let _admin = self.admin.lock().await;
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let topic = {
            let mut topics = self.topics.write();
            match topics.get(name) {
                Some(t) if id.is_none_or(|id| id == t.spec.id) => topics.remove(name),
                _ => None,
            }
        }
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

    /// The Kafka listener address (host:port) of a broker: as registered
    /// with the controller in a cluster, this broker's own when standalone;
    /// `None` when unknown or empty.
    pub fn kafka_address(&self, broker: i32) -> Option<String> {
        let address = match &*self.cluster.read() {
            Some(view) => view.brokers.get(&broker)?.endpoints.kafka.clone(),
            None if broker == self.settings.broker.id => self.settings.broker.kafka_address.clone(),
            None => return None,
        };
        (!address.is_empty()).then_some(address)
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
                    kafka_address: b.endpoints.kafka.clone(),
                    rack: b.rack.clone(),
                    // Fenced or shutting down: not to be used by clients.
                    fenced: b.state != rill_controller::Liveness::Active,
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
                    id: kafka_topic_id(&t.id),
                    replication_factor: t.partitions.first().map_or(0, |p| p.replicas.len() as i32),
                    config,
                    overrides: t.config.clone(),
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
    /// of `topic` (which has `total`) with id `topic_id`. Opens (recovers)
    /// logs of new ones, deletes local replicas no longer assigned here.
    /// Local replicas and logs of another topic id (an earlier topic of the
    /// same name, deleted while this broker did not follow) are deleted,
    /// never used. Blocking.
    pub fn host(
        &self,
        topic: &str,
        topic_id: &str,
        total: i32,
        hosted: &BTreeSet<i32>,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Vec<Arc<Partition>>, Error> {
        let config = self
            .settings
            .log_defaults
            .clone()
            .with_overrides(overrides)?;
        let held = self.topics.read().get(topic).cloned();
        if held.as_ref().is_none_or(|t| t.spec.id != topic_id) {
            self.drop_local_incarnation(topic, topic_id);
        }
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
                self.remove_if_other_topic(topic, topic_id, id);
                let log = open_partition_log(&dir, topic, topic_id, id, &config)?;
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
            id: topic_id.to_owned(),
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

    /// Deletes partition directory `partition` of `topic` when it holds a
    /// log of another topic id than `topic_id`. Blocking.
    fn remove_if_other_topic(&self, topic: &str, topic_id: &str, partition: i32) {
        let dir = self.store.partition_dir(topic, partition);
        match belongs_to_other_topic(&dir, topic_id) {
            Ok(false) => {}
            Ok(true) => match std::fs::remove_dir_all(&dir) {
                Ok(()) => info!(
                    topic,
                    partition,
                    id = topic_id,
                    "deleted a local log of an earlier topic with the same name"
                ),
                Err(e) => {
                    warn!(topic, partition, error = %e, "could not delete a local log of an earlier topic with the same name")
                }
            },
            Err(e) => {
                warn!(topic, partition, error = %e, "cannot read the topic id of a local log")
            }
        }
    }

    /// Cluster mode: removes every local replica and log of `topic` whose
    /// topic id is not `current` (an earlier topic of the same name): the
    /// in-memory replicas if they belong to another id, and every partition
    /// directory recording another id. Data of `current` is never touched.
    /// Blocking.
    pub fn drop_local_incarnation(&self, topic: &str, current: &str) {
        let stale = {
            let mut topics = self.topics.write();
            match topics.get(topic) {
                Some(t) if t.spec.id != current => topics.remove(topic),
                _ => None,
            }
        };
        if let Some(t) = &stale {
            for p in t.hosted() {
                p.mark_deleted();
            }
            self.metrics.remove_topic(topic, t.spec.partitions);
            self.roles_changed();
            info!(topic, old = %t.spec.id, new = current, "dropping the replicas of an earlier topic with the same name");
        }
        let Ok(entries) = std::fs::read_dir(self.store.topic_dir(topic)) else {
            return;
        };
        for entry in entries.flatten() {
            if let Some(partition) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            {
                self.remove_if_other_topic(topic, current, partition);
            }
        }
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
        let log = open_partition_log(&dir, &spec.name, &spec.id, id, &config)?;
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
        id: kafka_topic_id(&t.spec.id),
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
        overrides: t.spec.config.clone(),
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
                kafka_address: "localhost:9092".into(),
                rack: None,
                fenced: false,
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

    #[tokio::test]
    async fn given_a_local_log_of_an_earlier_topic_with_the_same_name_when_hosted_then_it_is_deleted_not_reused()
     {
        let tmp = tempfile::tempdir().expect("tempdir");
        let m = manager(tmp.path());
        let hosted = BTreeSet::from([0]);
        let (old, new) = (
            "6f1e2d3c-0000-4000-8000-000000000001",
            "6f1e2d3c-0000-4000-8000-000000000002",
        );
        let p = m
            .host("t", old, 1, &hosted, &BTreeMap::new())
            .expect("host the first topic t")
            .remove(0);
        p.become_leader(0, 0, 0, vec![0], vec![0]).expect("leader");
        let batch = crate::log::batch::test_util::batch(&[b"old"]);
        p.produce(batch, Acks::Leader, Duration::from_secs(5))
            .await
            .expect("produce");
        assert_eq!(p.latest_offset().expect("leo"), 1);

        // The controller's metadata now says "t" is another topic (deleted
        // and created again while this broker was away): same name,
        // partition 0 again at leader epoch 0.
        let p = m
            .host("t", new, 1, &hosted, &BTreeMap::new())
            .expect("host the new topic t")
            .remove(0);
        assert_eq!(
            p.latest_offset().expect("leo"),
            0,
            "the new topic starts empty; the old log is not reused"
        );
        assert_eq!(m.local_topic_id("t").as_deref(), Some(new));
        let dir = tmp.path().join("topics/t/0");
        assert_eq!(
            crate::partition::store::partition_topic_id(&dir).expect("read"),
            Some(new.to_owned())
        );
        assert!(
            m.partition_of("t", old, 0).is_err(),
            "replica fetches for the old topic are refused"
        );
        m.partition_of("t", new, 0)
            .expect("the new topic is served");
    }

    #[test]
    fn given_a_partition_directory_of_another_topic_id_on_disk_when_hosted_after_a_restart_then_it_is_deleted()
     {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("topics/t/0");
        crate::partition::store::write_partition_topic_id(&dir, "old-id").expect("stamp");
        std::fs::write(dir.join("00000000000000000000.log"), b"stale").expect("stale log");
        std::fs::create_dir_all(tmp.path().join("topics/t/3")).expect("mkdir");
        crate::partition::store::write_partition_topic_id(&tmp.path().join("topics/t/3"), "old-id")
            .expect("stamp");
        let m = manager(tmp.path());
        m.host("t", "new-id", 1, &BTreeSet::from([0]), &BTreeMap::new())
            .expect("host");
        assert_eq!(
            crate::partition::store::partition_topic_id(&dir).expect("read"),
            Some("new-id".to_owned())
        );
        assert!(
            !dir.join("00000000000000000000.log").exists()
                || std::fs::metadata(dir.join("00000000000000000000.log"))
                    .expect("meta")
                    .len()
                    == 0,
            "the old log's data is gone"
        );
        assert!(
            !tmp.path().join("topics/t/3").exists(),
            "a partition of the earlier topic not hosted here is deleted too"
        );
    }

    #[tokio::test]
    async fn given_a_standalone_topic_when_created_then_it_has_a_random_id_recorded_in_each_partition()
     {
        let tmp = tempfile::tempdir().expect("tempdir");
        let m = manager(tmp.path());
        let view = m
            .create_topic(create("t", 2, 1, &[]))
            .await
            .expect("create");
        assert!(!view.id.is_nil());
        for p in 0..2 {
            let dir = tmp.path().join(format!("topics/t/{p}"));
            assert_eq!(
                crate::partition::store::partition_topic_id(&dir).expect("read"),
                Some(view.id.to_string())
            );
        }
        m.delete_topic("t").await.expect("delete");
        let again = m.create_topic(create("t", 1, 1, &[])).await.expect("again");
        assert_ne!(again.id, view.id, "a topic created again is a new topic");
        let err = m
            .delete_topic_with_id("t", Some(&view.id.to_string()))
            .await
            .expect_err("the old id names no topic");
        assert!(matches!(err, Error::UnknownTopic(_)), "{err}");
        drop(m);
        let m = manager(tmp.path());
        assert_eq!(
            m.metadata(&[]).expect("md")[0].id,
            again.id,
            "the id survives a restart"
        );
    }
}
