//! [`GroupCoordinator`]: runs the group state machines of the
//! `__consumer_offsets` partitions this broker leads.
//!
//! Per led partition there is one `Shard`: its [`GroupTable`], the
//! requests parked in it (JoinGroup and SyncGroup answers travel through
//! oneshot channels keyed by [`RequestId`]) and a writer task. Everything
//! in the shards sits behind one mutex that is held only for pure state
//! machine calls, never across an `.await`.
//!
//! Lifecycle of a shard, driven by [`GroupCoordinator::sweep`] whenever the
//! replica manager reports role changes (and every
//! [`ROLE_SWEEP_INTERVAL`] as a safety net):
//!
//! 1. this broker leads partition `p` at leader epoch `e` and has no shard
//!    for it: a `Loading` shard is created and a load task waits until the
//!    partition's high watermark reaches its log end (whatever the previous
//!    leader wrote is committed), reads every record below it and installs
//!    the rebuilt table: the shard is `Active` and its writer starts;
//! 2. the leader epoch changes or leadership is lost: the shard is dropped.
//!    Its parked requests see their channel closed and answer
//!    NOT_COORDINATOR; its writer stops and fails what it still holds.
//!
//! The writer of a shard takes every queued write, encodes them as one
//! record batch, appends it with acks=all and then applies the outcome to
//! the table (offsets become visible, a stored assignment makes the group
//! Stable and answers the parked SyncGroups). One batch is in flight per
//! partition at a time, so records reach the log in the order the state
//! machine produced them, and concurrent commits share one replication
//! round trip.
//!
//! A tick task runs the state machine timers (session expiry, join and
//! sync deadlines) every [`GroupSettings::tick_interval`], expires old
//! offsets every [`GroupSettings::offsets_retention_check_interval`] and
//! refreshes the group metrics.
//!
//! Loading and the writer task live in `storage`.

mod share;
mod storage;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::group::error::GroupError;
use crate::group::placement::{self, OFFSETS_TOPIC};
use crate::group::records::{self, CommittedOffset, RecordKey};
use crate::group::state::{AfterStore, Effects, GroupState, GroupTable, Limits, Reply, RequestId};
use crate::metrics::Metrics;
use crate::partition::Error as PartitionError;
use crate::partition::manager::{CreateTopic, ReplicaManager};

/// How often leadership of the offsets partitions is re-checked even
/// without a role change notification.
pub const ROLE_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How often the group metrics are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);
/// Pause between checks while a load waits for the high watermark.
const LOAD_POLL: Duration = Duration::from_millis(10);
/// Pause before a failed load is retried.
const LOAD_RETRY: Duration = Duration::from_millis(200);
/// Bytes read per fetch while loading.
const LOAD_CHUNK: usize = 1 << 20;
/// Most record bytes the writer puts into one batch (well below the
/// offsets topic's 1 MiB `max.message.bytes`).
const MAX_WRITE_BYTES: usize = 256 << 10;

/// The topics of the cluster as the assignors see them.
pub(crate) struct Catalog<'a>(pub(crate) &'a ReplicaManager);

impl crate::group::state::TopicCatalog for Catalog<'_> {
    fn topic(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
        self.0.topic_id(name)
    }

    fn names(&self) -> Vec<String> {
        self.0.topic_names()
    }
}

/// Settings of the coordinator (from the broker flags).
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// Partitions of the offsets topic when this broker creates it.
    pub offsets_topic_partitions: i32,
    /// Replication factor of the offsets topic when created (capped by the
    /// live brokers).
    pub offsets_topic_replication_factor: i32,
    pub limits: Limits,
    /// How long offsets of an empty group are kept.
    pub offsets_retention_ms: i64,
    /// How often expired offsets are removed.
    pub offsets_retention_check_interval: Duration,
    /// How long a write to the offsets topic may wait for its replicas.
    pub commit_timeout: Duration,
    /// Granularity of session, join and sync deadlines.
    pub tick_interval: Duration,
    /// Consumer-protocol heartbeats per second this broker aims to stay
    /// under: with many members, their stable heartbeat interval grows past
    /// `limits.consumer_heartbeat_interval_ms` to keep to it.
    pub consumer_heartbeats_per_sec: u32,
}

impl Default for GroupSettings {
    fn default() -> Self {
        Self {
            offsets_topic_partitions: 12,
            offsets_topic_replication_factor: 3,
            limits: Limits::default(),
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_retention_check_interval: Duration::from_secs(600),
            commit_timeout: Duration::from_secs(5),
            tick_interval: Duration::from_millis(100),
            consumer_heartbeats_per_sec: 5000,
        }
    }
}

/// Who sent a request (from the Kafka request header and the connection),
/// shown by DescribeGroups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub client_id: String,
    /// The peer address as Kafka prints it, e.g. `/10.0.0.7`.
    pub client_host: String,
    /// The named Kafka listener the client came through, if any.
    pub listener: Option<String>,
}

/// Whether a shard can serve requests yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Loading,
    Active,
}

/// Told the outcome of a write to the offsets topic.
pub(super) type Written = oneshot::Receiver<Result<(), GroupError>>;

/// What the writer does once a write is in the log (or failed).
#[derive(Debug)]
enum Done {
    /// Offsets become visible; the committer is told.
    Commit {
        group: String,
        offsets: Vec<((String, i32), CommittedOffset)>,
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    /// A group's metadata, with what waits for it.
    Group { group: String, after: AfterStore },
    /// Tombstones of a deleted group, or a consumer group's records; the
    /// requester is told.
    Deleted {
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    /// Share-group records, applied to the table once written; the
    /// requester is told.
    Share {
        writes: Vec<crate::group::state::ShareWrite>,
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    /// Tombstones of expired offsets.
    Expired,
    /// Offsets of `producer`'s transaction (id, epoch): pending until its
    /// marker.
    TxnCommit {
        group: String,
        producer: (i64, i16),
        offsets: Vec<((String, i32), CommittedOffset)>,
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
}

/// Offsets committed in transactions that are still open, by producer id:
/// (group, partition, offset). They become visible with the producer's
/// commit marker and are dropped with its abort marker.
/// One committed offset of a group: (topic, partition) and the offset.
type GroupOffset = ((String, i32), CommittedOffset);

pub(crate) type PendingTxnOffsets = HashMap<i64, Vec<(String, (String, i32), CommittedOffset)>>;

/// One write to the offsets topic.
#[derive(Debug)]
struct WriteJob {
    records: Vec<(Bytes, Option<Bytes>)>,
    done: Done,
}

impl WriteJob {
    fn bytes(&self) -> usize {
        self.records
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len))
            .sum()
    }
}

/// The groups of one offsets partition led here.
#[derive(Debug)]
struct Shard {
    /// The leader epoch the shard was loaded in; a new epoch means a new
    /// shard (another leader may have written in between).
    leader_epoch: i32,
    status: Status,
    table: GroupTable,
    /// Parked JoinGroup/SyncGroup requests. Dropped with the shard, which
    /// answers them NOT_COORDINATOR.
    waiters: HashMap<RequestId, oneshot::Sender<Reply>>,
    /// The writer's queue, once loaded.
    writer: Option<mpsc::UnboundedSender<WriteJob>>,
    /// Transactional offsets waiting for their marker.
    pending_txn: PendingTxnOffsets,
    /// Markers (producer id, commit) that landed while the shard was
    /// loading: the load may have read the log before them, so they are
    /// applied once it is installed.
    early_markers: Vec<(i64, bool)>,
    /// Stops the shard's load and writer tasks.
    stop: CancellationToken,
}

/// The consumer-group coordinator of one broker.
#[derive(Debug)]
pub struct GroupCoordinator {
    manager: Arc<ReplicaManager>,
    settings: GroupSettings,
    metrics: Arc<Metrics>,
    /// Shards by offsets partition.
    shards: Mutex<BTreeMap<i32, Shard>>,
    /// Partition count of the offsets topic as last seen; -1 when it does
    /// not exist (yet).
    partitions: AtomicI32,
    next_request: AtomicU64,
    /// Set while this broker is creating the offsets topic.
    creating: Arc<AtomicBool>,
    /// Stops every task of the coordinator.
    stop: CancellationToken,
    /// Lag series exported last time (to remove those that went away).
    lag_series: Mutex<BTreeSet<(String, String, String)>>,
    /// Consumer-protocol members coordinated here (refreshed every second).
    consumer_members: std::sync::atomic::AtomicUsize,
}

/// The records of `group`'s committed offsets.
fn offset_records(group: &str, offsets: &[GroupOffset]) -> Vec<(Bytes, Option<Bytes>)> {
    offsets
        .iter()
        .map(|((topic, partition), o)| {
            let key = RecordKey::Offset {
                group: group.to_owned(),
                topic: topic.clone(),
                partition: *partition,
            };
            (records::encode_key(&key), Some(records::encode_offset(o)))
        })
        .collect()
}

/// Makes `producer_id`'s pending offsets in `shard` visible (commit) or
/// drops them (abort).
fn apply_marker(shard: &mut Shard, producer_id: i64, commit: bool, now: i64) {
    let Some(pending) = shard.pending_txn.remove(&producer_id) else {
        return;
    };
    if !commit {
        return;
    }
    let mut by_group: BTreeMap<String, Vec<GroupOffset>> = BTreeMap::new();
    for (group, tp, o) in pending {
        by_group.entry(group).or_default().push((tp, o));
    }
    for (group, offsets) in by_group {
        shard.table.apply_offsets(now, &group, offsets);
    }
}

/// Wall-clock milliseconds: group timers and stored timestamps use it,
/// like Kafka.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl GroupCoordinator {
    /// A coordinator over `manager`'s partitions. Call
    /// [`GroupCoordinator::start`] to run it.
    pub fn new(
        manager: Arc<ReplicaManager>,
        settings: GroupSettings,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            manager,
            settings,
            metrics,
            shards: Mutex::new(BTreeMap::new()),
            partitions: AtomicI32::new(-1),
            next_request: AtomicU64::new(1),
            creating: Arc::new(AtomicBool::new(false)),
            stop: CancellationToken::new(),
            lag_series: Mutex::new(BTreeSet::new()),
            consumer_members: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    pub fn settings(&self) -> &GroupSettings {
        &self.settings
    }

    /// The replica manager the coordinator runs on.
    pub fn manager(&self) -> &Arc<ReplicaManager> {
        &self.manager
    }

    /// The metrics the coordinator updates.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Starts the tick and role-following task; it stops (and unloads every
    /// group) when `stop` is cancelled.
    pub fn start(self: &Arc<Self>, stop: CancellationToken) -> JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut roles = me.manager.subscribe_roles();
            let mut tick = tokio::time::interval(me.settings.tick_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut sweep = tokio::time::interval(ROLE_SWEEP_INTERVAL);
            sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut gauges = tokio::time::interval(GAUGE_INTERVAL);
            gauges.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut expiry = tokio::time::interval(me.settings.offsets_retention_check_interval);
            expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick of an interval fires at once: skip expiry then.
            expiry.tick().await;
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
                    _ = tick.tick() => me.tick(now_ms()),
                    _ = expiry.tick() => me.expire_offsets(now_ms()),
                    _ = gauges.tick() => me.refresh_gauges(),
                }
            }
            me.unload_all();
        })
    }

    /// The offsets partition of a group, if the topic exists.
    pub fn partition_of(&self, group_id: &str) -> Option<i32> {
        let mut n = self.partitions.load(Ordering::Acquire);
        if n <= 0 {
            // Not seen by a sweep yet: ask the metadata.
            n = self.manager.topic_partitions(OFFSETS_TOPIC).unwrap_or(-1);
        }
        (n > 0).then(|| placement::partition_for(group_id, n))
    }

    /// Makes the shards match the offsets partitions this broker leads.
    pub fn sweep(self: &Arc<Self>) {
        let (count, led) = placement::led_partitions(&self.manager, OFFSETS_TOPIC);
        self.partitions.store(count, Ordering::Release);
        let mut shards = self.shards.lock();
        let (stale, fresh) =
            placement::shard_changes(shards.iter().map(|(p, s)| (*p, s.leader_epoch)), &led);
        for p in stale {
            if let Some(shard) = shards.remove(&p) {
                info!(
                    partition = p,
                    leader_epoch = shard.leader_epoch,
                    groups = shard.table.len(),
                    "no longer leading this offsets partition: its groups are unloaded"
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
                    table: GroupTable::new(self.settings.limits.clone()),
                    waiters: HashMap::new(),
                    writer: None,
                    pending_txn: HashMap::new(),
                    early_markers: Vec::new(),
                    stop: stop.clone(),
                },
            );
            info!(
                partition = p,
                leader_epoch = epoch,
                "leading this offsets partition: loading its groups"
            );
            tokio::spawn(Arc::clone(self).load(p, epoch, stop));
        }
    }

    fn unload_all(&self) {
        self.stop.cancel();
        let mut shards = self.shards.lock();
        for (_, shard) in std::mem::take(&mut *shards) {
            shard.stop.cancel();
        }
    }

    /// Whether `partition` is loaded and serving at `epoch` (tests wait on it).
    pub fn is_active(&self, partition: i32) -> bool {
        self.shards
            .lock()
            .get(&partition)
            .is_some_and(|s| s.status == Status::Active)
    }

    /// Offsets partitions this broker coordinates right now.
    pub fn active_partitions(&self) -> Vec<i32> {
        self.shards
            .lock()
            .iter()
            .filter(|(_, s)| s.status == Status::Active)
            .map(|(p, _)| *p)
            .collect()
    }

    /// The heartbeat interval of a consumer-protocol member of a stable
    /// group: the configured one, or longer when the members coordinated
    /// here would otherwise send more than the heartbeat budget.
    pub(super) fn stable_heartbeat_interval(&self) -> i32 {
        let configured = self.settings.limits.consumer_heartbeat_interval_ms;
        let members = self.consumer_members.load(Ordering::Relaxed) as u64;
        let budget = u64::from(self.settings.consumer_heartbeats_per_sec.max(1));
        let needed = (members * 1000).div_ceil(budget);
        configured.max(i32::try_from(needed).unwrap_or(i32::MAX))
    }

    // ---- access for the requests (`super::requests`) ----

    /// Runs `f` on the table of the group's partition if this broker
    /// coordinates it, then carries out the effects.
    pub(super) fn with_table<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut GroupTable, i64) -> (T, Effects),
    ) -> Result<T, GroupError> {
        self.with_shard(group_id, |shard, now| {
            let (out, fx) = f(&mut shard.table, now);
            self.dispatch(shard, fx);
            Ok(out)
        })
    }

    /// Parks a request in the group's partition: `f` gets the request id
    /// its answer will carry. Resolves with the answer, or with `None` when
    /// the partition was unloaded first.
    pub(super) async fn park(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut GroupTable, i64, RequestId) -> Effects,
    ) -> Result<Option<Reply>, GroupError> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let rx = self.with_shard(group_id, |shard, now| {
            let (tx, rx) = oneshot::channel();
            shard.waiters.insert(id, tx);
            let fx = f(&mut shard.table, now, id);
            self.dispatch(shard, fx);
            Ok(rx)
        })?;
        Ok(rx.await.ok())
    }

    /// OffsetCommit: checks the commit against the group and queues its
    /// write in one step, so no rebalance slips in between. Resolves once
    /// the offsets are in the log and visible.
    pub(super) fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        offsets: Vec<((String, i32), CommittedOffset)>,
    ) -> Result<oneshot::Receiver<Result<(), GroupError>>, GroupError> {
        self.with_shard(group_id, |shard, now| {
            let partitions: Vec<(String, i32)> = offsets.iter().map(|(k, _)| k.clone()).collect();
            shard.table.validate_commit_of(
                now,
                group_id,
                member_id,
                instance_id,
                generation,
                &partitions,
            )?;
            shard
                .table
                .commit_pending(group_id, offsets.iter().map(|(k, _)| k));
            let (tx, rx) = oneshot::channel();
            let records = offset_records(group_id, &offsets);
            let job = WriteJob {
                records,
                done: Done::Commit {
                    group: group_id.to_owned(),
                    offsets,
                    reply: tx,
                },
            };
            self.enqueue(shard, job);
            Ok(rx)
        })
    }

    /// TxnOffsetCommit: checks the member (when named) and writes the
    /// offsets in a batch of the producer's transaction. They stay pending,
    /// invisible to OffsetFetch, until the transaction's marker lands here
    /// ([`GroupCoordinator::complete_txn`]).
    pub(super) fn commit_txn_offsets(
        &self,
        group_id: &str,
        producer: (i64, i16),
        member: Option<(&str, Option<&str>, i32)>,
        offsets: Vec<((String, i32), CommittedOffset)>,
    ) -> Result<oneshot::Receiver<Result<(), GroupError>>, GroupError> {
        self.with_shard(group_id, |shard, now| {
            if let Some((member_id, instance_id, generation)) = member {
                let partitions: Vec<(String, i32)> =
                    offsets.iter().map(|(k, _)| k.clone()).collect();
                shard.table.validate_commit_of(
                    now,
                    group_id,
                    member_id,
                    instance_id,
                    generation,
                    &partitions,
                )?;
            }
            let (tx, rx) = oneshot::channel();
            let records = offset_records(group_id, &offsets);
            self.enqueue(
                shard,
                WriteJob {
                    records,
                    done: Done::TxnCommit {
                        group: group_id.to_owned(),
                        producer,
                        offsets,
                        reply: tx,
                    },
                },
            );
            Ok(rx)
        })
    }

    /// A transaction marker of `producer_id` was written in offsets
    /// partition `partition`: its pending offsets become visible (commit)
    /// or are dropped (abort).
    pub fn complete_txn(&self, partition: i32, producer_id: i64, commit: bool) {
        let mut shards = self.shards.lock();
        let Some(shard) = shards.get_mut(&partition) else {
            return;
        };
        if shard.status == Status::Loading {
            shard.early_markers.push((producer_id, commit));
            return;
        }
        apply_marker(shard, producer_id, commit, now_ms());
    }

    /// Whether `group` has transactional offsets waiting for their marker
    /// for `topic`-`partition` (any partition when `None`): OffsetFetch with
    /// `require_stable` answers UNSTABLE_OFFSET_COMMIT then.
    pub fn has_pending_txn_offsets(&self, group_id: &str, tp: Option<(&str, i32)>) -> bool {
        let Some(p) = self.partition_of(group_id) else {
            return false;
        };
        let shards = self.shards.lock();
        shards.get(&p).is_some_and(|s| {
            s.pending_txn.values().flatten().any(|(g, (t, n), _)| {
                g == group_id && tp.is_none_or(|(wt, wn)| wt == t && wn == *n)
            })
        })
    }

    /// DeleteGroups of one group: removes it if Empty and queues the
    /// tombstones of its offsets and metadata. Resolves once written.
    pub(super) fn delete_group(&self, group_id: &str) -> Result<Written, GroupError> {
        self.with_shard(group_id, |shard, _| {
            let keys = shard.table.delete(group_id)?;
            Ok(self.write_tombstones(shard, &keys))
        })
    }

    /// OffsetDelete: see [`super::state::GroupTable::delete_offsets`]; the
    /// tombstones are written with acks=all before the answer.
    pub(super) fn delete_offsets_of(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(Vec<Option<GroupError>>, Written), GroupError> {
        self.with_shard(group_id, |shard, _| {
            let (results, keys) = shard.table.delete_offsets(group_id, partitions)?;
            Ok((results, self.write_tombstones(shard, &keys)))
        })
    }

    /// Queues tombstones of `keys` in the shard's offsets partition;
    /// resolves once written (at once when there are none).
    fn write_tombstones(&self, shard: &mut Shard, keys: &[RecordKey]) -> Written {
        let (tx, rx) = oneshot::channel();
        if keys.is_empty() {
            let _ = tx.send(Ok(()));
            return rx;
        }
        let records = keys
            .iter()
            .map(|k| (records::encode_key(k), None))
            .collect();
        self.enqueue(
            shard,
            WriteJob {
                records,
                done: Done::Deleted { reply: tx },
            },
        );
        rx
    }

    /// ConsumerGroupHeartbeat: runs it on the group's table and queues the
    /// records it changed in one write; the receiver resolves once written
    /// (`None`: nothing to write).
    #[allow(clippy::type_complexity)]
    pub(super) fn consumer_heartbeat_of(
        &self,
        group_id: &str,
        request: super::state::ConsumerHeartbeat,
        catalog: &dyn super::state::TopicCatalog,
    ) -> Result<
        (
            Result<super::state::ConsumerHeartbeatReply, GroupError>,
            Option<Written>,
        ),
        GroupError,
    > {
        self.with_shard(group_id, |shard, now| {
            let (reply, mut fx) = shard
                .table
                .consumer_heartbeat(now, group_id, request, catalog);
            let writes = std::mem::take(&mut fx.consumer);
            self.dispatch(shard, fx);
            if writes.is_empty() {
                return Ok((reply, None));
            }
            let (tx, rx) = oneshot::channel();
            self.enqueue(
                shard,
                WriteJob {
                    records: storage::consumer_records(&writes),
                    done: Done::Deleted { reply: tx },
                },
            );
            Ok((reply, Some(rx)))
        })
    }

    /// Runs `f` on the shard coordinating `group_id`.
    fn with_shard<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut Shard, i64) -> Result<T, GroupError>,
    ) -> Result<T, GroupError> {
        let p = self
            .partition_of(group_id)
            .ok_or(GroupError::NotCoordinator)?;
        let mut shards = self.shards.lock();
        let shard = shards.get_mut(&p).ok_or(GroupError::NotCoordinator)?;
        if shard.status == Status::Loading {
            return Err(GroupError::LoadInProgress);
        }
        f(shard, now_ms())
    }

    /// Every group of every loaded partition (ListGroups), and whether some
    /// partition is still loading.
    pub(super) fn list_all(&self) -> (Vec<super::state::GroupListing>, bool) {
        let shards = self.shards.lock();
        let loading = shards.values().any(|s| s.status == Status::Loading);
        let groups = shards
            .values()
            .filter(|s| s.status == Status::Active)
            .flat_map(|s| s.table.list())
            .collect();
        (groups, loading)
    }

    // ---- offsets topic ----

    /// Starts creating the offsets topic (once; a no-op while a creation
    /// runs). Group requests fail until it exists and is loaded.
    pub(super) fn ensure_offsets_topic(&self) {
        if self.creating.swap(true, Ordering::AcqRel) {
            return;
        }
        let manager = Arc::clone(&self.manager);
        let creating = Arc::clone(&self.creating);
        let partitions = self.settings.offsets_topic_partitions;
        let rf = placement::replication_factor(
            self.settings.offsets_topic_replication_factor,
            manager.live_brokers(),
        );
        // The creation runs on its own: a client that gives up waiting
        // does not cancel it. Once the topic's partitions have roles, the
        // role watch makes the coordinator load them.
        tokio::spawn(async move {
            let request = CreateTopic {
                name: OFFSETS_TOPIC.to_owned(),
                partitions,
                replication_factor: rf,
                config: placement::topic_config(rf),
            };
            match manager.create_topic(request).await {
                Ok(_) => info!(
                    partitions,
                    replication_factor = rf,
                    "created the offsets topic {OFFSETS_TOPIC}"
                ),
                Err(PartitionError::TopicExists(_)) => {}
                Err(e) => warn!(error = %e, "creating the offsets topic {OFFSETS_TOPIC} failed"),
            }
            creating.store(false, Ordering::Release);
        });
    }

    // ---- timers and metrics ----

    /// Runs the state machine timers of every loaded partition.
    pub fn tick(&self, now: i64) {
        let mut shards = self.shards.lock();
        for shard in shards.values_mut() {
            if shard.status != Status::Active {
                continue;
            }
            let fx = shard.table.tick(now);
            self.dispatch(shard, fx);
        }
    }

    /// Removes expired offsets and empty groups, writing tombstones.
    pub fn expire_offsets(&self, now: i64) {
        let retention = self.settings.offsets_retention_ms;
        let mut shards = self.shards.lock();
        for (p, shard) in shards.iter_mut() {
            if shard.status != Status::Active {
                continue;
            }
            let tombstones = shard.table.expire_offsets(now, retention);
            if !tombstones.is_empty() {
                info!(
                    partition = p,
                    records = tombstones.len(),
                    "expired offsets and empty groups removed"
                );
                let fx = Effects {
                    tombstones,
                    ..Effects::default()
                };
                self.dispatch(shard, fx);
            }
        }
    }

    /// Updates the group gauges: groups per state, loaded partitions and
    /// the lag of committed offsets behind the high watermark of partition
    /// replicas on this broker.
    pub fn refresh_gauges(&self) {
        let mut by_state: BTreeMap<GroupState, usize> = BTreeMap::new();
        let (mut loading, mut active) = (0, 0);
        let mut committed: Vec<(String, String, i32, i64)> = Vec::new();
        let mut consumer_members = 0;
        {
            let shards = self.shards.lock();
            for s in shards.values() {
                consumer_members += s.table.consumer_members();
                match s.status {
                    Status::Loading => loading += 1,
                    Status::Active => active += 1,
                }
                for (state, n) in s.table.count_by_state() {
                    *by_state.entry(state).or_default() += n;
                }
                committed.extend(
                    s.table
                        .all_offsets()
                        .map(|(g, t, p, o)| (g.to_owned(), t.to_owned(), p, o)),
                );
            }
        }
        self.consumer_members
            .store(consumer_members, Ordering::Relaxed);
        for state in GroupState::ALL {
            self.metrics
                .consumer_groups
                .with_label_values(&[state.as_str()])
                .set(by_state.get(&state).copied().unwrap_or(0) as i64);
        }
        self.metrics
            .group_coordinator_partitions
            .with_label_values(&["loading"])
            .set(loading);
        self.metrics
            .group_coordinator_partitions
            .with_label_values(&["active"])
            .set(active);
        let mut series = BTreeSet::new();
        for (group, topic, partition, offset) in committed {
            let Ok(part) = self.manager.partition(&topic, partition) else {
                continue;
            };
            let lag = (part.high_watermark() - offset).max(0);
            let labels = (group, topic, partition.to_string());
            self.metrics
                .consumer_group_lag
                .with_label_values(&[&labels.0, &labels.1, &labels.2])
                .set(lag);
            series.insert(labels);
        }
        let mut previous = self.lag_series.lock();
        for gone in previous.difference(&series) {
            let _ = self
                .metrics
                .consumer_group_lag
                .remove_label_values(&[&gone.0, &gone.1, &gone.2]);
        }
        *previous = series;
    }
}
