//! The follower side of replication: one fetcher task per leader broker.
//!
//! Each task keeps a `ReplicaFetch` stream open to its leader and sends
//! one request at a time. The stream is a session (replication.proto v2):
//! a request names only the partitions whose position (fetch offset =
//! local log end, epoch of the last local batch, the leader epoch it was
//! told, log start) the leader does not know yet, those the previous answer
//! carried, and the partitions this broker stopped following there. Which
//! positions changed is checked for the previous answer's partitions every
//! round, and for every followed partition after a metadata change and
//! about once a second. Answers are applied to the local replicas: batches
//! appended verbatim, divergence truncated, out-of-range logs reset.
//! Connection failures are retried with a short backoff; epoch errors wait
//! for the next metadata update to move the partition. A leader that does
//! not serve version 2 (one release older, mid-roll) is spoken to in
//! version 1: every request names every partition.
//!
//! Replicas a reassignment is adding, while out of the ISR, are throttled
//! ([`Throttle`]): they are left out of requests while the throttle is in
//! debt, and the bytes fetched for them are charged to it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use futures::future::join_all;
use parking_lot::Mutex;
use rill_process::tls::{InternalTls, grpc_uri};
use rill_proto::replication as pb;
use rill_proto::replication::replication_client::ReplicationClient;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::channel::{Http2Channel, tls_client_config};
use super::throttle::Throttle;
use crate::partition::manager::ReplicaManager;
use crate::partition::{self, Partition};

/// How long the leader may hold a fetch that has nothing new.
pub const FETCH_MAX_WAIT: Duration = Duration::from_millis(500);
/// Bytes per partition per fetch, as Kafka's `replica.fetch.max.bytes`. An
/// answer is held several times over while it travels (read from the log,
/// encoded, in flight, decoded), on both brokers, for every leader a
/// follower fetches from, so this bounds much of a broker's memory under
/// load.
pub const FETCH_MAX_BYTES: u32 = 1 << 20;
/// Wait before reconnecting to a leader that could not be reached.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// Longest a response may take beyond the long-poll wait.
const RESPONSE_GRACE: Duration = Duration::from_secs(5);
/// Pause after a partition-level epoch error before asking again.
const EPOCH_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// How often every followed partition's position is compared with what
/// the leader's session holds (log starts move by retention, for one).
const FULL_CHECK: Duration = Duration::from_secs(1);

type Key = (String, i32);

#[derive(Debug)]
struct LeaderFetcher {
    /// The leader's replication address.
    addr: String,
    partitions: Arc<Mutex<BTreeSet<Key>>>,
    /// Wakes an idle fetcher when a partition is added.
    added: Arc<Notify>,
    stop: CancellationToken,
}

/// All fetcher tasks of this broker.
#[derive(Debug)]
pub struct Fetchers {
    me: i32,
    /// This broker's current incarnation epoch, sent with every fetch.
    broker_epoch: Arc<AtomicI64>,
    manager: Arc<ReplicaManager>,
    by_leader: Mutex<BTreeMap<i32, LeaderFetcher>>,
    /// Followed partitions whose catch-up is throttled (being added by a
    /// reassignment, not in the ISR).
    throttled: Arc<Mutex<BTreeSet<Key>>>,
    throttle: Arc<Throttle>,
    /// Mutual TLS towards leaders' replication ports.
    tls: Option<Arc<InternalTls>>,
    /// Bumped whenever a partition is followed or unfollowed (every
    /// metadata update): fetchers then compare every position.
    generation: Arc<AtomicU64>,
}

impl Fetchers {
    pub fn new(
        me: i32,
        broker_epoch: Arc<AtomicI64>,
        manager: Arc<ReplicaManager>,
        throttle: Arc<Throttle>,
        tls: Option<Arc<InternalTls>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            me,
            broker_epoch,
            manager,
            by_leader: Mutex::new(BTreeMap::new()),
            throttled: Arc::new(Mutex::new(BTreeSet::new())),
            throttle,
            tls,
            generation: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Fetches `topic`-`partition` from `leader` at `addr` (moving it from
    /// any other leader's fetcher); `throttled` for a replica being added
    /// by a reassignment and not in the ISR yet.
    pub fn follow(&self, leader: i32, addr: &str, topic: &str, partition: i32, throttled: bool) {
        let key = (topic.to_owned(), partition);
        if throttled {
            self.throttled.lock().insert(key.clone());
        } else {
            self.throttled.lock().remove(&key);
        }
        let mut all = self.by_leader.lock();
        for (id, f) in all.iter() {
            if *id != leader {
                f.partitions.lock().remove(&key);
            }
        }
        let stale = all.get(&leader).is_some_and(|f| f.addr != addr);
        if stale {
            if let Some(f) = all.remove(&leader) {
                f.stop.cancel();
            }
        }
        let f = all
            .entry(leader)
            .or_insert_with(|| self.spawn(leader, addr));
        f.partitions.lock().insert(key);
        // After the change, so a request that sees the new generation also
        // sees the partitions it counts.
        self.generation.fetch_add(1, Ordering::AcqRel);
        f.added.notify_one();
    }

    /// Stops fetching `topic`-`partition` (this broker leads it now, or no
    /// longer hosts it).
    pub fn unfollow(&self, topic: &str, partition: i32) {
        let key = (topic.to_owned(), partition);
        self.throttled.lock().remove(&key);
        let mut all = self.by_leader.lock();
        for f in all.values() {
            f.partitions.lock().remove(&key);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        Self::stop_idle(&mut all);
    }

    /// Stops fetchers that have no partition left.
    fn stop_idle(all: &mut BTreeMap<i32, LeaderFetcher>) {
        all.retain(|_, f| {
            let idle = f.partitions.lock().is_empty();
            if idle {
                f.stop.cancel();
            }
            !idle
        });
    }

    /// Stops every fetcher.
    pub fn stop_all(&self) {
        for (_, f) in std::mem::take(&mut *self.by_leader.lock()) {
            f.stop.cancel();
        }
    }

    fn spawn(&self, leader: i32, addr: &str) -> LeaderFetcher {
        let f = LeaderFetcher {
            addr: addr.to_owned(),
            partitions: Arc::new(Mutex::new(BTreeSet::new())),
            added: Arc::new(Notify::new()),
            stop: CancellationToken::new(),
        };
        let task = Task {
            me: self.me,
            broker_epoch: Arc::clone(&self.broker_epoch),
            leader,
            addr: addr.to_owned(),
            partitions: Arc::clone(&f.partitions),
            added: Arc::clone(&f.added),
            manager: Arc::clone(&self.manager),
            throttled: Arc::clone(&self.throttled),
            throttle: Arc::clone(&self.throttle),
            tls: self.tls.clone(),
            generation: Arc::clone(&self.generation),
            version: AtomicU32::new(rill_proto::versions::REPLICATION.current),
        };
        let stop = f.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = task.run() => {}
                () = stop.cancelled() => {}
            }
        });
        f
    }
}

struct Task {
    me: i32,
    broker_epoch: Arc<AtomicI64>,
    leader: i32,
    addr: String,
    partitions: Arc<Mutex<BTreeSet<Key>>>,
    added: Arc<Notify>,
    manager: Arc<ReplicaManager>,
    throttled: Arc<Mutex<BTreeSet<Key>>>,
    throttle: Arc<Throttle>,
    tls: Option<Arc<InternalTls>>,
    generation: Arc<AtomicU64>,
    /// The replication protocol version spoken to this leader.
    version: AtomicU32,
}

/// What the follower's side of a session remembers between rounds.
#[derive(Debug, Default)]
struct Told {
    /// Each partition in the leader's session, at the position last sent.
    positions: HashMap<Key, pb::FetchPartition>,
    /// The previous answer's partitions: named again in the next request.
    answered: HashSet<Key>,
    /// When every position was last compared, and the fetchers' generation
    /// and throttle state then.
    last_full: Option<(tokio::time::Instant, u64, bool)>,
}

impl Task {
    async fn run(self) {
        info!(leader = self.leader, addr = %self.addr, "replica fetcher started");
        loop {
            if let Err(e) = self.session().await {
                debug!(leader = self.leader, addr = %self.addr, error = %e, "replica fetch session ended; reconnecting");
                tokio::time::sleep(RECONNECT_BACKOFF).await;
            }
        }
    }

    /// The position of a followed partition, as a request names it.
    fn position(&self, key: &Key) -> Option<pb::FetchPartition> {
        let (topic, partition) = key;
        let p = self.manager.partition(topic, *partition).ok()?;
        let (fetch_offset, last_fetched_epoch, leader_epoch) = p.fetch_position()?;
        Some(pb::FetchPartition {
            topic_id: self.manager.local_topic_id(topic).unwrap_or_default(),
            topic: topic.clone(),
            partition: *partition,
            fetch_offset,
            last_fetched_epoch,
            leader_epoch,
            log_start_offset: p.log_start(),
        })
    }

    /// The next request of the session: what changed since `told`, which
    /// it then reflects. None when the session would hold nothing (this
    /// broker follows nothing here, or none of it is open yet).
    fn request(&self, told: &mut Told) -> Option<pb::ReplicaFetchRequest> {
        let version = self.version.load(Ordering::Acquire);
        let now = tokio::time::Instant::now();
        let generation = self.generation.load(Ordering::Acquire);
        let in_debt = self.throttle.wait().is_some();
        if version < 2 {
            // Every request names every partition and starts afresh.
            told.positions.clear();
        }
        let full = version < 2
            || told.last_full.is_none_or(|(at, g, debt)| {
                now >= at + FULL_CHECK || g != generation || debt != in_debt
            });
        let answered = std::mem::take(&mut told.answered);
        // The followed set is copied only for a full check: between them
        // it is unchanged (every change bumps the generation), so the
        // previous answer's partitions are all still followed. Copying it
        // every round cost more than the rest of the round with thousands
        // of partitions.
        let followed: Option<BTreeSet<Key>> = full.then(|| {
            let mut followed = self.partitions.lock().clone();
            if in_debt {
                let throttled = self.throttled.lock();
                followed.retain(|k| !throttled.contains(k));
            }
            told.last_full = Some((now, generation, in_debt));
            followed
        });
        let check: Vec<Key> = match &followed {
            Some(followed) => followed.iter().cloned().collect(),
            None => answered.iter().cloned().collect(),
        };
        let mut partitions = Vec::new();
        let mut forgotten: Vec<pb::PartitionKey> = Vec::new();
        let forget = |key: Key, forgotten: &mut Vec<pb::PartitionKey>| {
            forgotten.push(pb::PartitionKey {
                topic: key.0,
                partition: key.1,
            });
        };
        for key in check {
            match self.position(&key) {
                Some(p) => {
                    if told.positions.get(&key) != Some(&p) || answered.contains(&key) {
                        told.positions.insert(key, p.clone());
                        partitions.push(p);
                    }
                }
                None => {
                    if told.positions.remove(&key).is_some() {
                        forget(key, &mut forgotten);
                    }
                }
            }
        }
        // Partitions this broker no longer follows here.
        if let Some(followed) = &followed {
            let gone: Vec<Key> = told
                .positions
                .keys()
                .filter(|k| !followed.contains(*k))
                .cloned()
                .collect();
            for key in gone {
                told.positions.remove(&key);
                forget(key, &mut forgotten);
            }
        }
        if told.positions.is_empty() && forgotten.is_empty() {
            return None;
        }
        Some(pb::ReplicaFetchRequest {
            protocol_version: version,
            follower_id: self.me,
            follower_broker_epoch: self.broker_epoch.load(Ordering::Acquire),
            partitions,
            forgotten,
            max_wait_ms: FETCH_MAX_WAIT.as_millis() as u32,
            min_bytes: 1,
            max_bytes_per_partition: FETCH_MAX_BYTES,
        })
    }

    /// One connection: request, answer, apply, repeat.
    async fn session(&self) -> Result<(), String> {
        let uri: http::Uri = grpc_uri(&self.addr, self.tls.is_some())
            .parse()
            .map_err(|e| format!("{}: {e}", self.addr))?;
        let tls = self.tls.as_deref().map(tls_client_config).transpose()?;
        let channel = Http2Channel::connect(&uri, tls, Duration::from_secs(1)).await?;
        let mut client = ReplicationClient::with_origin(channel, uri)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(64 << 20);
        let (tx, rx) = mpsc::channel(1);
        let mut responses = client
            .replica_fetch(ReceiverStream::new(rx))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        let mut told = Told::default();
        loop {
            let Some(request) = self.request(&mut told) else {
                // Nothing to fetch from this leader right now.
                told = Told::default();
                tokio::select! {
                    () = self.added.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                continue;
            };
            let version = request.protocol_version;
            tx.send(request).await.map_err(|e| e.to_string())?;
            let response = match tokio::time::timeout(
                FETCH_MAX_WAIT + RESPONSE_GRACE,
                responses.message(),
            )
            .await
            .map_err(|_| "leader did not answer in time".to_owned())?
            {
                Ok(Some(response)) => response,
                Ok(None) => return Err("leader closed the stream".to_owned()),
                Err(status) => {
                    let older = version - 1;
                    if status.code() == tonic::Code::FailedPrecondition
                        && older >= rill_proto::versions::REPLICATION.oldest
                    {
                        warn!(leader = self.leader, version = older, refused = %status.message(), "leader refused this replication protocol version; speaking the one before");
                        self.version.store(older, Ordering::Release);
                    }
                    return Err(status.to_string());
                }
            };
            // Each partition's answer is appended within the first poll of
            // its `apply`; with flush=fsync the fsyncs that follow run
            // concurrently instead of one partition after the other. All
            // complete before the next request reports the new log ends.
            let throttled_bytes: usize = {
                let throttled = self.throttled.lock();
                response
                    .partitions
                    .iter()
                    .filter(|p| throttled.contains(&(p.topic.clone(), p.partition)))
                    .map(|p| p.records.len())
                    .sum()
            };
            if throttled_bytes > 0 {
                self.throttle.charge(throttled_bytes as u64);
            }
            told.answered = response
                .partitions
                .iter()
                .map(|p| (p.topic.clone(), p.partition))
                .collect();
            let applies = response.partitions.into_iter().filter_map(|p| {
                let asked = told.positions.get(&(p.topic.clone(), p.partition))?;
                let asked = (asked.fetch_offset, asked.leader_epoch);
                Some(self.apply(p, asked))
            });
            let backoff = join_all(applies).await.into_iter().any(|b| b);
            if backoff {
                tokio::time::sleep(EPOCH_ERROR_BACKOFF).await;
            }
        }
    }

    /// Applies one partition's answer; returns whether to back off. An
    /// answer to a request made from another position or epoch (the
    /// partition was truncated or moved to another leader meanwhile) is
    /// stale and dropped.
    async fn apply(&self, p: pb::FetchedPartition, asked: (i64, i32)) -> bool {
        let Ok(partition) = self.manager.partition(&p.topic, p.partition) else {
            return false;
        };
        match partition.fetch_position() {
            Some((offset, _, epoch)) if (offset, epoch) == asked => {}
            _ => return false,
        }
        let log_start = p.log_start_offset;
        let result = match pb::FetchError::try_from(p.error).unwrap_or(pb::FetchError::Storage) {
            pb::FetchError::None => match p.diverging_epoch {
                Some(d) => {
                    off_runtime(partition, move |p| {
                        p.truncate_diverging(d.epoch, d.end_offset, log_start)
                    })
                    .await
                }
                None => {
                    let appended = partition
                        .append_as_follower(p.records, p.high_watermark)
                        .await;
                    // Records the leader deleted (DeleteRecords) go here too.
                    appended.and_then(|()| partition.follow_log_start(p.log_start_offset))
                }
            },
            pb::FetchError::OffsetOutOfRange => {
                off_runtime(partition, move |p| p.reset_to_leader_start(log_start)).await
            }
            pb::FetchError::NotLeader
            | pb::FetchError::FencedLeaderEpoch
            | pb::FetchError::UnknownLeaderEpoch
            | pb::FetchError::UnknownPartition => return true,
            pb::FetchError::Storage => {
                warn!(topic = %p.topic, partition = p.partition, leader = self.leader, error = %p.error_message, "leader failed to read for replication");
                return true;
            }
        };
        if let Err(e) = result {
            warn!(topic = %p.topic, partition = p.partition, leader = self.leader, error = %e, "could not apply replicated data");
            return true;
        }
        false
    }
}

/// Runs a follower truncation (deleted segments, synced files) on the
/// blocking pool: a leader change can make thousands of followers truncate
/// at once, and doing that on a runtime worker stalls every task there,
/// the controller heartbeat included, for as long as it takes.
async fn off_runtime(
    partition: Arc<Partition>,
    truncate: impl FnOnce(&Partition) -> Result<(), partition::Error> + Send + 'static,
) -> Result<(), partition::Error> {
    match tokio::task::spawn_blocking(move || truncate(&partition)).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(partition::Error::ShuttingDown),
    }
}
