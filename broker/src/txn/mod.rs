//! The transaction coordinator: transactional ids, their producer ids and
//! epochs, the partitions of each transaction and the two-phase commit that
//! writes its markers.
//!
//! Placement mirrors the group coordinator: a transactional id belongs to
//! partition `abs(java_hash(id)) % n` of the compacted
//! `__transaction_state` topic, and the leader of that partition
//! coordinates it. Per led partition there is one shard holding the
//! [`TxnMeta`] of its ids, loaded from the partition when leadership
//! arrives (last record per id wins) and dropped when it goes.
//!
//! A request runs the pure state machine ([`state`]) under the shard lock,
//! then writes the new metadata to the partition with acks=all before it is
//! applied and answered; while that write is in flight the id is pending
//! and other requests for it get CONCURRENT_TRANSACTIONS. EndTxn answers
//! once `PrepareCommit`/`PrepareAbort` is written (the decision is then
//! durable); a task writes the markers to every partition of the
//! transaction, on this broker directly or through the partition leader's
//! `rill.txn.v1.Transactions/WriteMarkers`, retrying through leader changes,
//! and then writes `CompleteCommit`/`CompleteAbort`. A coordinator that
//! loads a partition finishes the markers of every prepared transaction it
//! finds, so a failover never leaves a transaction half written.
//!
//! A tick aborts transactions open longer than their timeout, with a new
//! epoch that fences their producer.
//!
//! Records: the key is the transactional id (UTF-8), the value the JSON of
//! [`TxnMeta`] with a version field; a null value removes the id.

pub mod grpc;
pub mod markers;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::group::GroupCoordinator;
use crate::group::placement;
use crate::metrics::Metrics;
use crate::partition::manager::{CreateTopic, ReplicaManager};
use crate::partition::{Acks, Error as PartitionError};
pub use markers::MarkerClient;
pub use state::{ProducerRef, Step, TxnError, TxnMeta, TxnState};

/// The internal topic holding transaction state.
pub const TXN_TOPIC: &str = "__transaction_state";
/// Version of the JSON value written.
const VALUE_VERSION: u16 = 1;
/// Pause between checks while a load waits for the high watermark.
const LOAD_POLL: Duration = Duration::from_millis(10);
/// Pause before a failed load is retried.
const LOAD_RETRY: Duration = Duration::from_millis(200);
/// Bytes read per fetch while loading.
const LOAD_CHUNK: usize = 1 << 20;
/// How often leadership of the state partitions is re-checked without a
/// role change notification.
const ROLE_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Settings of the coordinator (from the broker flags).
#[derive(Debug, Clone)]
pub struct TxnSettings {
    /// Partitions of `__transaction_state` when this broker creates it.
    pub partitions: i32,
    /// Its replication factor when created (capped by the live brokers).
    pub replication_factor: i32,
    /// Largest `transaction.timeout.ms` a producer may ask for.
    pub max_timeout_ms: i32,
    /// How often transactions past their timeout are looked for.
    pub abort_check_interval: Duration,
    /// How long a state write or a marker may wait for its replicas.
    pub write_timeout: Duration,
}

impl Default for TxnSettings {
    fn default() -> Self {
        Self {
            partitions: 12,
            replication_factor: 3,
            max_timeout_ms: 900_000,
            abort_check_interval: Duration::from_secs(1),
            write_timeout: Duration::from_secs(5),
        }
    }
}

/// One transactional id in a shard.
#[derive(Debug, Clone)]
struct Entry {
    meta: TxnMeta,
    /// A state write is in flight.
    pending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Loading,
    Active,
}

/// The transactional ids of one state partition led here.
#[derive(Debug)]
struct Shard {
    leader_epoch: i32,
    status: Status,
    txns: HashMap<String, Entry>,
    /// Ids whose first write is in flight (no entry yet).
    creating: std::collections::HashSet<String>,
    stop: CancellationToken,
}

/// A transaction as DescribeTransactions and ListTransactions show it.
#[derive(Debug, Clone)]
pub struct TxnListing {
    pub transactional_id: String,
    pub meta: TxnMeta,
}

/// The stored value: [`TxnMeta`] with the version of this layout.
#[derive(Debug, Serialize, Deserialize)]
struct StoredValue {
    record_version: u16,
    #[serde(flatten)]
    meta: TxnMeta,
}

fn encode_value(meta: &TxnMeta) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&StoredValue {
            record_version: VALUE_VERSION,
            meta: meta.clone(),
        })
        .expect("transaction metadata serializes"),
    )
}

fn decode_value(bytes: &[u8]) -> Result<TxnMeta, serde_json::Error> {
    serde_json::from_slice::<StoredValue>(bytes).map(|v| v.meta)
}

/// Wall-clock milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The transaction coordinator of one broker.
#[derive(Debug)]
pub struct TxnCoordinator {
    manager: Arc<ReplicaManager>,
    settings: TxnSettings,
    metrics: Arc<Metrics>,
    shards: Mutex<BTreeMap<i32, Shard>>,
    creating: Arc<AtomicBool>,
    markers: MarkerClient,
    /// Told when a marker lands in a `__consumer_offsets` partition here.
    groups: OnceLock<Arc<GroupCoordinator>>,
    /// Woken after every state write, for checks that wait for a
    /// transaction to complete.
    written: tokio::sync::Notify,
    stop: CancellationToken,
}

/// How long a produce's partition check waits for the producer's previous
/// transaction to complete before answering CONCURRENT_TRANSACTIONS.
const CHECK_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

impl TxnCoordinator {
    pub fn new(
        manager: Arc<ReplicaManager>,
        settings: TxnSettings,
        metrics: Arc<Metrics>,
        markers: MarkerClient,
    ) -> Arc<Self> {
        Arc::new(Self {
            manager,
            settings,
            metrics,
            shards: Mutex::new(BTreeMap::new()),
            creating: Arc::new(AtomicBool::new(false)),
            markers,
            groups: OnceLock::new(),
            written: tokio::sync::Notify::new(),
            stop: CancellationToken::new(),
        })
    }

    /// The group coordinator whose offsets partitions get markers.
    pub fn set_groups(&self, groups: Arc<GroupCoordinator>) {
        let _ = self.groups.set(groups);
    }

    pub fn settings(&self) -> &TxnSettings {
        &self.settings
    }

    pub fn manager(&self) -> &Arc<ReplicaManager> {
        &self.manager
    }

    /// The connections to other brokers' `Transactions` service.
    pub fn marker_client(&self) -> &MarkerClient {
        &self.markers
    }

    /// Starts the role-following and timeout task.
    pub fn start(self: &Arc<Self>, stop: CancellationToken) -> JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut roles = me.manager.subscribe_roles();
            let mut sweep = tokio::time::interval(ROLE_SWEEP_INTERVAL);
            sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut aborts = tokio::time::interval(me.settings.abort_check_interval);
            aborts.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    changed = roles.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        me.sweep();
                    }
                    _ = sweep.tick() => me.sweep(),
                    _ = aborts.tick() => me.abort_timed_out(),
                }
            }
            me.stop.cancel();
            let mut shards = me.shards.lock();
            for (_, shard) in std::mem::take(&mut *shards) {
                shard.stop.cancel();
            }
        })
    }

    /// The state partition of a transactional id, if the topic exists.
    pub fn partition_of(&self, transactional_id: &str) -> Option<i32> {
        let n = self.manager.topic_partitions(TXN_TOPIC).unwrap_or(-1);
        (n > 0).then(|| placement::partition_for(transactional_id, n))
    }

    /// The broker coordinating `transactional_id`. Creates the state topic
    /// on first use; until it has a leader the answer is
    /// COORDINATOR_NOT_AVAILABLE.
    pub fn locate(&self, transactional_id: &str) -> Result<i32, TxnError> {
        let Some(p) = self.partition_of(transactional_id) else {
            self.ensure_topic();
            return Err(not_available(
                "the transaction state topic is being created",
            ));
        };
        self.manager
            .leader_of(TXN_TOPIC, p)
            .ok_or_else(|| not_available(format!("{TXN_TOPIC}-{p} has no leader")))
    }

    fn ensure_topic(&self) {
        if self.creating.swap(true, Ordering::AcqRel) {
            return;
        }
        let manager = Arc::clone(&self.manager);
        let creating = Arc::clone(&self.creating);
        let partitions = self.settings.partitions;
        let rf =
            placement::replication_factor(self.settings.replication_factor, manager.live_brokers());
        tokio::spawn(async move {
            let request = CreateTopic {
                name: TXN_TOPIC.to_owned(),
                partitions,
                replication_factor: rf,
                config: placement::topic_config(rf),
            };
            match manager.create_topic(request).await {
                Ok(_) => info!(partitions, replication_factor = rf, "created {TXN_TOPIC}"),
                Err(PartitionError::TopicExists(_)) => {}
                Err(e) => warn!(error = %e, "creating {TXN_TOPIC} failed"),
            }
            creating.store(false, Ordering::Release);
        });
    }

    /// Makes the shards match the state partitions led here.
    pub fn sweep(self: &Arc<Self>) {
        let (_, led) = placement::led_partitions(&self.manager, TXN_TOPIC);
        let mut shards = self.shards.lock();
        let (stale, fresh) =
            placement::shard_changes(shards.iter().map(|(p, s)| (*p, s.leader_epoch)), &led);
        for p in stale {
            if let Some(shard) = shards.remove(&p) {
                info!(
                    partition = p,
                    transactions = shard.txns.len(),
                    "no longer leading this transaction state partition"
                );
                shard.stop.cancel();
            }
        }
        for (p, epoch) in fresh {
            let stop = self.stop.child_token();
            shards.insert(
                p,
                Shard {
                    leader_epoch: epoch,
                    status: Status::Loading,
                    txns: HashMap::new(),
                    creating: Default::default(),
                    stop: stop.clone(),
                },
            );
            info!(
                partition = p,
                leader_epoch = epoch,
                "leading this transaction state partition: loading it"
            );
            tokio::spawn(Arc::clone(self).load(p, epoch, stop));
        }
    }

    async fn load(self: Arc<Self>, p: i32, epoch: i32, stop: CancellationToken) {
        loop {
            match self.read_partition(p, &stop).await {
                Ok(txns) => {
                    self.install(p, epoch, txns);
                    return;
                }
                Err(_) if stop.is_cancelled() => return,
                Err(e) => {
                    warn!(partition = p, error = %e, "loading transaction state failed; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(LOAD_RETRY) => {}
                    }
                }
            }
        }
    }

    /// The latest metadata of every id in partition `p`, once everything
    /// in its log is committed.
    async fn read_partition(
        &self,
        p: i32,
        stop: &CancellationToken,
    ) -> Result<HashMap<String, TxnMeta>, PartitionError> {
        let part = self.manager.partition(TXN_TOPIC, p)?;
        let chunks = part.read_all_committed(stop, LOAD_POLL, LOAD_CHUNK).await?;
        let mut out = HashMap::new();
        for data in chunks {
            let decoded = crate::group::records::decode_batches(&data).map_err(|e| {
                PartitionError::InvalidRequest(format!(
                    "{TXN_TOPIC}-{p} holds an undecodable batch: {e}"
                ))
            })?;
            for r in decoded {
                let Ok(id) = String::from_utf8(r.key.to_vec()) else {
                    warn!(
                        partition = p,
                        offset = r.offset,
                        "skipping a record whose key is not UTF-8"
                    );
                    continue;
                };
                match r.value {
                    None => {
                        out.remove(&id);
                    }
                    Some(v) => match decode_value(&v) {
                        Ok(meta) => {
                            out.insert(id, meta);
                        }
                        Err(e) => {
                            tracing::error!(partition = p, offset = r.offset, transactional_id = %id, error = %e, "skipping an undecodable transaction record: this transactional id loses its state");
                        }
                    },
                }
            }
        }
        Ok(out)
    }

    fn install(self: &Arc<Self>, p: i32, epoch: i32, txns: HashMap<String, TxnMeta>) {
        let mut shards = self.shards.lock();
        let Some(shard) = shards.get_mut(&p) else {
            return;
        };
        if shard.leader_epoch != epoch || shard.status != Status::Loading {
            return;
        }
        let preparing: Vec<(String, TxnMeta)> = txns
            .iter()
            .filter(|(_, m)| m.state.is_preparing())
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect();
        info!(
            partition = p,
            leader_epoch = epoch,
            transactions = txns.len(),
            completing = preparing.len(),
            "transaction state partition loaded"
        );
        shard.txns = txns
            .into_iter()
            .map(|(id, meta)| {
                (
                    id,
                    Entry {
                        meta,
                        pending: false,
                    },
                )
            })
            .collect();
        shard.status = Status::Active;
        drop(shards);
        for (id, meta) in preparing {
            tokio::spawn(Arc::clone(self).complete(id, meta, p, epoch));
        }
    }

    /// Runs one request: `f` decides from the stored metadata; a write is
    /// made before the answer. Returns the metadata after the request.
    pub async fn run(
        self: &Arc<Self>,
        transactional_id: &str,
        f: impl FnOnce(Option<&TxnMeta>, i64) -> Result<Step, TxnError>,
    ) -> Result<TxnMeta, TxnError> {
        let p = self
            .partition_of(transactional_id)
            .ok_or_else(|| not_coordinator(transactional_id))?;
        let (epoch, step, before) = {
            let mut shards = self.shards.lock();
            let shard = shards
                .get_mut(&p)
                .ok_or_else(|| not_coordinator(transactional_id))?;
            if shard.status == Status::Loading {
                return Err(TxnError {
                    code: ResponseError::CoordinatorLoadInProgress,
                    message: format!("{TXN_TOPIC}-{p} is loading"),
                });
            }
            let entry = shard.txns.get(transactional_id);
            if entry.is_some_and(|e| e.pending) || shard.creating.contains(transactional_id) {
                return Err(TxnError {
                    code: ResponseError::ConcurrentTransactions,
                    message: "another request for this transactional id is being written".into(),
                });
            }
            let before = entry.map(|e| e.meta.clone());
            let step = f(before.as_ref(), now_ms())?;
            if matches!(step, Step::Write { .. } | Step::Fence { .. }) {
                match shard.txns.get_mut(transactional_id) {
                    Some(e) => e.pending = true,
                    None => {
                        shard.creating.insert(transactional_id.to_owned());
                    }
                }
            }
            (shard.leader_epoch, step, before)
        };
        match step {
            Step::Answer => before.ok_or_else(|| TxnError {
                code: ResponseError::InvalidProducerIdMapping,
                message: "the transactional id has no producer".into(),
            }),
            Step::Write { meta, markers } => {
                self.persist(p, epoch, transactional_id, &meta).await?;
                if markers {
                    tokio::spawn(Arc::clone(self).complete(
                        transactional_id.to_owned(),
                        meta.clone(),
                        p,
                        epoch,
                    ));
                }
                Ok(meta)
            }
            Step::Fence { meta } => {
                self.persist(p, epoch, transactional_id, &meta).await?;
                tokio::spawn(Arc::clone(self).complete(
                    transactional_id.to_owned(),
                    meta,
                    p,
                    epoch,
                ));
                Err(TxnError {
                    code: ResponseError::ConcurrentTransactions,
                    message:
                        "the open transaction of the previous producer is being aborted; retry"
                            .into(),
                })
            }
        }
    }

    /// Writes `meta` for `id` to partition `p` (acks=all) and applies it;
    /// clears the pending mark either way.
    async fn persist(&self, p: i32, epoch: i32, id: &str, meta: &TxnMeta) -> Result<(), TxnError> {
        let written = self.append(p, epoch, id, Some(meta)).await;
        let result = self.apply_written(p, epoch, id, meta, written);
        self.written.notify_waiters();
        result
    }

    /// Applies the outcome of a state write of `meta` for `id`.
    fn apply_written(
        &self,
        p: i32,
        epoch: i32,
        id: &str,
        meta: &TxnMeta,
        written: Result<(), TxnError>,
    ) -> Result<(), TxnError> {
        let mut shards = self.shards.lock();
        let Some(shard) = shards.get_mut(&p).filter(|s| s.leader_epoch == epoch) else {
            return Err(not_coordinator(id));
        };
        shard.creating.remove(id);
        match written {
            Ok(()) => {
                shard.txns.insert(
                    id.to_owned(),
                    Entry {
                        meta: meta.clone(),
                        pending: false,
                    },
                );
                self.metrics
                    .txn_state_transitions
                    .with_label_values(&[meta.state.kafka_name()])
                    .inc();
                Ok(())
            }
            Err(e) => {
                if let Some(entry) = shard.txns.get_mut(id) {
                    entry.pending = false;
                }
                Err(e)
            }
        }
    }

    async fn append(
        &self,
        p: i32,
        epoch: i32,
        id: &str,
        meta: Option<&TxnMeta>,
    ) -> Result<(), TxnError> {
        let part = self
            .manager
            .partition(TXN_TOPIC, p)
            .map_err(|_| not_coordinator(id))?;
        let role = part.role_view();
        if !role.is_leader || role.leader_epoch != epoch {
            return Err(not_coordinator(id));
        }
        let value = meta.map(encode_value);
        let batch = crate::group::records::encode_batch(
            &[(Bytes::copy_from_slice(id.as_bytes()), value)],
            now_ms(),
        );
        part.produce(batch, Acks::All, self.settings.write_timeout)
            .await
            .map(|_| ())
            .map_err(|e| {
                warn!(transactional_id = id, error = %e, "writing transaction state failed");
                match e {
                    PartitionError::NotLeader { .. } | PartitionError::LeadershipLost { .. } => {
                        not_coordinator(id)
                    }
                    other => TxnError {
                        code: ResponseError::CoordinatorNotAvailable,
                        message: format!("writing the transaction state failed: {other}"),
                    },
                }
            })
    }

    /// Writes the markers of a prepared transaction, then its completion.
    /// Gives up only when this broker stops coordinating the id (the next
    /// coordinator completes it after loading).
    async fn complete(self: Arc<Self>, id: String, meta: TxnMeta, p: i32, epoch: i32) {
        let stop = {
            let shards = self.shards.lock();
            match shards.get(&p).filter(|s| s.leader_epoch == epoch) {
                Some(s) => s.stop.clone(),
                None => return,
            }
        };
        let commit = meta.state == TxnState::PrepareCommit;
        let started = std::time::Instant::now();
        let written = self
            .markers
            .write_all(
                &self,
                meta.producer_id,
                meta.producer_epoch,
                commit,
                epoch,
                meta.partitions.iter().cloned().collect(),
                &stop,
            )
            .await;
        if !written {
            debug!(transactional_id = %id, "marker writing stopped: no longer the coordinator");
            return;
        }
        self.metrics
            .txn_marker_seconds
            .with_label_values(&[if commit { "commit" } else { "abort" }])
            .observe(started.elapsed().as_secs_f64());
        loop {
            let done = state::completed(&meta, now_ms());
            {
                let mut shards = self.shards.lock();
                let Some(shard) = shards.get_mut(&p).filter(|s| s.leader_epoch == epoch) else {
                    return;
                };
                match shard.txns.get_mut(&id) {
                    Some(e) if !e.pending && e.meta == meta => e.pending = true,
                    Some(e) if e.pending => {}
                    _ => return,
                }
            }
            match self.persist(p, epoch, &id, &done).await {
                Ok(()) => {
                    debug!(transactional_id = %id, commit, "transaction completed");
                    return;
                }
                Err(e) if e.code == ResponseError::NotCoordinator => return,
                Err(e) => {
                    warn!(transactional_id = %id, error = %e.message, "writing the transaction completion failed; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(LOAD_RETRY) => {}
                    }
                }
            }
        }
    }

    /// Aborts every transaction open past its timeout.
    fn abort_timed_out(self: &Arc<Self>) {
        let now = now_ms();
        let mut expired = Vec::new();
        {
            let shards = self.shards.lock();
            for shard in shards.values().filter(|s| s.status == Status::Active) {
                for (id, e) in &shard.txns {
                    if !e.pending && state::timed_out(&e.meta, now).is_some() {
                        expired.push(id.clone());
                    }
                }
            }
        }
        for id in expired {
            let me = Arc::clone(self);
            tokio::spawn(async move {
                let result = me
                    .run(&id, |meta, now| {
                        match meta.and_then(|m| state::timed_out(m, now)) {
                            Some(meta) => Ok(Step::Fence { meta }),
                            None => Ok(Step::Answer),
                        }
                    })
                    .await;
                match result {
                    Err(e) if e.code == ResponseError::ConcurrentTransactions => {
                        info!(transactional_id = %id, "aborting a transaction that exceeded its timeout");
                        me.metrics.txn_timeouts.inc();
                    }
                    Err(e) => {
                        debug!(transactional_id = %id, error = %e.message, "timeout abort not written")
                    }
                    Ok(_) => {}
                }
            });
        }
    }

    /// Writes one marker in a partition this broker leads, and tells the
    /// group coordinator when it lands in an offsets partition.
    pub async fn write_marker_here(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<(), PartitionError> {
        let part = self.manager.partition(topic, partition)?;
        part.write_marker(
            producer_id,
            producer_epoch,
            rill_client::batch::ControlType::from_commit(commit),
            coordinator_epoch,
            self.settings.write_timeout,
        )
        .await?;
        if topic == placement::OFFSETS_TOPIC {
            if let Some(groups) = self.groups.get() {
                groups.complete_txn(partition, producer_id, commit);
            }
        }
        self.metrics
            .txn_markers
            .with_label_values(&[if commit { "commit" } else { "abort" }])
            .inc();
        Ok(())
    }

    /// KIP-890: checks (or, for transaction version 2, adds) that
    /// `partitions` are in the ongoing transaction of `producer`.
    pub async fn check_partitions(
        self: &Arc<Self>,
        transactional_id: &str,
        producer: ProducerRef,
        partitions: &[(String, i32)],
        add: bool,
    ) -> Result<(), TxnError> {
        if add {
            // With transaction version 2 the producer starts its next
            // transaction as soon as EndTxn is answered, usually while the
            // previous one's markers are still written. Like Kafka, wait
            // for it briefly rather than fail the batch back to the
            // producer, which would cost it a whole retry backoff.
            let deadline = tokio::time::Instant::now() + CHECK_WAIT;
            loop {
                let written = self.written.notified();
                tokio::pin!(written);
                written.as_mut().enable();
                let added = self
                    .run(transactional_id, |meta, now| {
                        state::add_partitions(meta, producer, partitions, now)
                    })
                    .await;
                match added {
                    Err(e) if e.code == ResponseError::ConcurrentTransactions => {
                        if tokio::time::timeout_at(deadline, written).await.is_err() {
                            return Err(e);
                        }
                    }
                    other => return other.map(|_| ()),
                }
            }
        } else {
            let p = self
                .partition_of(transactional_id)
                .ok_or_else(|| not_coordinator(transactional_id))?;
            let shards = self.shards.lock();
            let shard = shards
                .get(&p)
                .filter(|s| s.status == Status::Active)
                .ok_or_else(|| not_coordinator(transactional_id))?;
            let meta = shard.txns.get(transactional_id).map(|e| &e.meta);
            for tp in partitions {
                state::verify_partition(meta, producer, tp)?;
            }
            Ok(())
        }
    }

    /// Every transaction of every loaded partition, and whether some
    /// partition is still loading.
    pub fn list(&self) -> (Vec<TxnListing>, bool) {
        let shards = self.shards.lock();
        let loading = shards.values().any(|s| s.status == Status::Loading);
        let listed = shards
            .values()
            .filter(|s| s.status == Status::Active)
            .flat_map(|s| {
                s.txns.iter().map(|(id, e)| TxnListing {
                    transactional_id: id.clone(),
                    meta: e.meta.clone(),
                })
            })
            .collect();
        (listed, loading)
    }

    /// The metadata of one id if this broker coordinates it.
    pub fn describe(&self, transactional_id: &str) -> Result<Option<TxnMeta>, TxnError> {
        let p = self
            .partition_of(transactional_id)
            .ok_or_else(|| not_coordinator(transactional_id))?;
        let shards = self.shards.lock();
        let shard = shards
            .get(&p)
            .ok_or_else(|| not_coordinator(transactional_id))?;
        if shard.status == Status::Loading {
            return Err(TxnError {
                code: ResponseError::CoordinatorLoadInProgress,
                message: format!("{TXN_TOPIC}-{p} is loading"),
            });
        }
        Ok(shard.txns.get(transactional_id).map(|e| e.meta.clone()))
    }

    /// Refreshes the transaction gauges.
    pub fn refresh_gauges(&self) {
        let (listed, _) = self.list();
        let mut by_state: BTreeMap<&str, i64> = BTreeMap::new();
        for l in &listed {
            *by_state.entry(l.meta.state.kafka_name()).or_default() += 1;
        }
        for s in [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
        ] {
            self.metrics
                .transactions
                .with_label_values(&[s.kafka_name()])
                .set(by_state.get(s.kafka_name()).copied().unwrap_or(0));
        }
    }
}

fn not_coordinator(id: &str) -> TxnError {
    TxnError {
        code: ResponseError::NotCoordinator,
        message: format!("this broker does not coordinate transactional id {id:?}"),
    }
}

fn not_available(message: impl Into<String>) -> TxnError {
    TxnError {
        code: ResponseError::CoordinatorNotAvailable,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_metadata_when_stored_and_loaded_then_it_is_the_same() {
        let meta = TxnMeta {
            producer_id: 42,
            producer_epoch: 7,
            last_producer_epoch: 6,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [
                ("orders".to_owned(), 3),
                ("__consumer_offsets".to_owned(), 1),
            ]
            .into_iter()
            .collect(),
            start_ms: 1_700_000_000_000,
            update_ms: 1_700_000_000_500,
            version: 2,
            next_producer: Some((43, 0)),
        };
        let bytes = encode_value(&meta);
        assert_eq!(decode_value(&bytes).expect("decodes"), meta);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.contains("\"record_version\":1"), "{text}");
    }
}
