//! The follower side of replication: one fetcher task per leader broker.
//!
//! Each task keeps a `ReplicaFetch` stream open to its leader and sends
//! one request at a time naming every partition this broker follows there
//! (fetch offset = local log end, epoch of the last local batch, the
//! leader epoch it was told). Answers are applied to the local replicas:
//! batches appended verbatim, divergence truncated, out-of-range logs
//! reset. Connection failures are retried with a short backoff; epoch
//! errors wait for the next metadata update to move the partition.
//!
//! Replicas a reassignment is adding, while out of the ISR, are throttled
//! ([`Throttle`]): they are left out of requests while the throttle is in
//! debt, and the bytes fetched for them are charged to it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures::future::join_all;
use parking_lot::Mutex;
use rill_process::tls::{InternalTls, grpc_uri};
use rill_proto::replication as pb;
use rill_proto::replication::replication_client::ReplicationClient;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;
use tracing::{debug, info, warn};

use super::throttle::Throttle;
use crate::partition::manager::ReplicaManager;

/// How long the leader may hold a fetch that has nothing new.
pub const FETCH_MAX_WAIT: Duration = Duration::from_millis(500);
/// Bytes per partition per fetch.
pub const FETCH_MAX_BYTES: u32 = 4 << 20;
/// Wait before reconnecting to a leader that could not be reached.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// Longest a response may take beyond the long-poll wait.
const RESPONSE_GRACE: Duration = Duration::from_secs(5);
/// Pause after a partition-level epoch error before asking again.
const EPOCH_ERROR_BACKOFF: Duration = Duration::from_millis(50);

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

    fn request(&self) -> pb::ReplicaFetchRequest {
        let mut keys: Vec<Key> = self.partitions.lock().iter().cloned().collect();
        if self.throttle.wait().is_some() {
            let throttled = self.throttled.lock();
            keys.retain(|k| !throttled.contains(k));
        }
        let partitions = keys
            .into_iter()
            .filter_map(|(topic, partition)| {
                let p = self.manager.partition(&topic, partition).ok()?;
                let (fetch_offset, last_fetched_epoch, leader_epoch) = p.fetch_position()?;
                Some(pb::FetchPartition {
                    topic_id: self.manager.local_topic_id(&topic).unwrap_or_default(),
                    topic,
                    partition,
                    fetch_offset,
                    last_fetched_epoch,
                    leader_epoch,
                    log_start_offset: p.log_start(),
                })
            })
            .collect();
        pb::ReplicaFetchRequest {
            protocol_version: rill_proto::versions::REPLICATION.current,
            follower_id: self.me,
            follower_broker_epoch: self.broker_epoch.load(Ordering::Acquire),
            partitions,
            max_wait_ms: FETCH_MAX_WAIT.as_millis() as u32,
            min_bytes: 1,
            max_bytes_per_partition: FETCH_MAX_BYTES,
        }
    }

    /// One connection: request, answer, apply, repeat.
    async fn session(&self) -> Result<(), String> {
        let mut endpoint = Endpoint::from_shared(grpc_uri(&self.addr, self.tls.is_some()))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.client(None))
                .map_err(|e| e.to_string())?;
        }
        let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
        let mut client = ReplicationClient::new(channel)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(64 << 20);
        let (tx, rx) = mpsc::channel(1);
        let mut responses = client
            .replica_fetch(ReceiverStream::new(rx))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        loop {
            let request = self.request();
            if request.partitions.is_empty() {
                // Nothing to fetch from this leader right now.
                tokio::select! {
                    () = self.added.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                continue;
            }
            let sent: BTreeMap<Key, (i64, i32)> = request
                .partitions
                .iter()
                .map(|p| {
                    (
                        (p.topic.clone(), p.partition),
                        (p.fetch_offset, p.leader_epoch),
                    )
                })
                .collect();
            tx.send(request).await.map_err(|e| e.to_string())?;
            let response =
                tokio::time::timeout(FETCH_MAX_WAIT + RESPONSE_GRACE, responses.message())
                    .await
                    .map_err(|_| "leader did not answer in time".to_owned())?
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| "leader closed the stream".to_owned())?;
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
            let applies = response.partitions.into_iter().filter_map(|p| {
                let asked = *sent.get(&(p.topic.clone(), p.partition))?;
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
        let result = match pb::FetchError::try_from(p.error).unwrap_or(pb::FetchError::Storage) {
            pb::FetchError::None => match p.diverging_epoch {
                Some(d) => partition.truncate_diverging(d.epoch, d.end_offset, p.log_start_offset),
                None => {
                    let appended = partition
                        .append_as_follower(p.records, p.high_watermark)
                        .await;
                    // Records the leader deleted (DeleteRecords) go here too.
                    appended.and_then(|()| partition.follow_log_start(p.log_start_offset))
                }
            },
            pb::FetchError::OffsetOutOfRange => partition.reset_to_leader_start(p.log_start_offset),
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
