//! The gRPC replication adapter: the leader side of `ReplicaFetch`, the
//! tonic `Replication` service followers pull from.
//!
//! A follower keeps one `ReplicaFetch` stream open to this broker and sends
//! one request at a time. The stream is a session (`Session`): the leader
//! keeps the partitions the follower fetches and their positions, and
//! watches each one's log end. A round reads only the partitions a request
//! named or whose log end moved (and all of them about once a second): for
//! each it checks epochs and divergence, records the follower's log end
//! (which may advance the HW and complete acks=all writes), and returns
//! stored batches verbatim. When nothing is new, the answer waits up to
//! `max_wait_ms` for a log end to move. Only conversion, bookkeeping and
//! waiting live here; the logic is in
//! [`crate::partition::Partition::replica_fetch`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{AbortHandle, Abortable, Aborted, BoxFuture};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, Stream};
use rill_proto::replication as pb;
use rill_proto::replication::replication_server::{Replication, ReplicationServer};
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};

use crate::partition::manager::ReplicaManager;
use crate::partition::{Error, ReplicaRead};

/// Longest a replica fetch waits for new data.
pub const MAX_REPLICA_WAIT: Duration = Duration::from_secs(5);
/// Bytes per partition when the follower leaves the limit at 0.
pub const DEFAULT_REPLICA_FETCH_BYTES: usize = 1 << 20;

/// The Replication gRPC service of a broker.
#[derive(Debug, Clone)]
pub struct ReplicationApi {
    manager: Arc<ReplicaManager>,
}

impl ReplicationApi {
    pub fn server(
        manager: Arc<ReplicaManager>,
        max_message_bytes: usize,
    ) -> ReplicationServer<Self> {
        ReplicationServer::new(Self { manager })
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes.max(64 << 20))
    }

    fn fetch_one(
        &self,
        (follower, follower_broker_epoch): (i32, i64),
        p: &pb::FetchPartition,
        max_bytes: usize,
    ) -> pb::FetchedPartition {
        let mut out = pb::FetchedPartition {
            topic: p.topic.clone(),
            partition: p.partition,
            ..Default::default()
        };
        let partition = match self
            .manager
            .partition_of(&p.topic, &p.topic_id, p.partition)
        {
            Ok(partition) => partition,
            Err(e) => {
                out.error = pb::FetchError::UnknownPartition as i32;
                out.error_message = e.to_string();
                return out;
            }
        };
        partition.record_follower_log_start(follower, p.log_start_offset);
        match partition.replica_fetch(
            follower,
            follower_broker_epoch,
            p.fetch_offset,
            p.last_fetched_epoch,
            p.leader_epoch,
            max_bytes,
        ) {
            Ok(ReplicaRead::Data {
                records,
                high_watermark,
                log_start_offset,
            }) => {
                out.records = records;
                out.high_watermark = high_watermark;
                out.log_start_offset = log_start_offset;
            }
            Ok(ReplicaRead::Diverging {
                epoch,
                end_offset,
                high_watermark,
                log_start_offset,
            }) => {
                out.diverging_epoch = Some(pb::EpochEndOffset { epoch, end_offset });
                out.high_watermark = high_watermark;
                out.log_start_offset = log_start_offset;
            }
            Ok(ReplicaRead::OutOfRange { log_start_offset }) => {
                out.error = pb::FetchError::OffsetOutOfRange as i32;
                out.log_start_offset = log_start_offset;
            }
            Ok(ReplicaRead::NotLeader) => out.error = pb::FetchError::NotLeader as i32,
            Ok(ReplicaRead::FencedEpoch) => out.error = pb::FetchError::FencedLeaderEpoch as i32,
            Ok(ReplicaRead::UnknownEpoch) => out.error = pb::FetchError::UnknownLeaderEpoch as i32,
            Err(
                Error::UnknownTopic(_) | Error::UnknownPartition { .. } | Error::TopicDeleted(_),
            ) => {
                out.error = pb::FetchError::UnknownPartition as i32;
            }
            Err(e) => {
                out.error = pb::FetchError::Storage as i32;
                out.error_message = e.to_string();
            }
        }
        out
    }
}

/// How often a session re-reads every partition it holds, even those with
/// nothing new: the reads record that an idle follower is still caught up
/// (so the ISR keeps it) and carry HW and log-start moves to it.
pub const SESSION_SWEEP: Duration = Duration::from_secs(1);

type Key = (String, i32);

/// What a watcher reports: its partition, its receiver (to watch on) and
/// whether the partition still exists.
type Fired = (Key, watch::Receiver<i64>, bool);

/// One partition of a session.
#[derive(Debug)]
struct Entry {
    /// The follower's position, as its last request named it.
    asked: pb::FetchPartition,
    /// The HW and log start last sent to the follower (None: none yet).
    sent: Option<(i64, i64)>,
    /// Stops this partition's watcher; None while it has none (the
    /// partition was not found, or its log was replaced).
    watcher: Option<AbortHandle>,
}

/// The leader's side of one `ReplicaFetch` stream (replication.proto, v2):
/// the partitions the follower fetches with their positions, and a watcher
/// on each one's log end, so a round reads only the partitions that
/// changed. A v1 request replaces the whole session.
#[derive(Default)]
struct Session {
    entries: HashMap<Key, Entry>,
    /// Partitions to read in the next round.
    dirty: BTreeSet<Key>,
    watchers: FuturesUnordered<BoxFuture<'static, Result<Fired, Aborted>>>,
    last_sweep: Option<tokio::time::Instant>,
}

impl Session {
    fn arm(
        watchers: &FuturesUnordered<BoxFuture<'static, Result<Fired, Aborted>>>,
        key: Key,
        mut rx: watch::Receiver<i64>,
    ) -> AbortHandle {
        let (handle, registration) = AbortHandle::new_pair();
        watchers.push(Box::pin(Abortable::new(
            async move {
                let alive = rx.changed().await.is_ok();
                (key, rx, alive)
            },
            registration,
        )));
        handle
    }

    fn watch(&self, manager: &ReplicaManager, key: &Key) -> Option<AbortHandle> {
        let partition = manager.partition(&key.0, key.1).ok()?;
        Some(Self::arm(
            &self.watchers,
            key.clone(),
            partition.subscribe_log_end(),
        ))
    }

    fn remove(&mut self, key: &Key) {
        if let Some(e) = self.entries.remove(key) {
            if let Some(w) = e.watcher {
                w.abort();
            }
        }
        self.dirty.remove(key);
    }

    /// Takes in a request: forgotten partitions leave, named ones join or
    /// move to their new position, and are read in the next round.
    fn update(&mut self, manager: &ReplicaManager, version: u32, req: &pb::ReplicaFetchRequest) {
        if version < 2 {
            for key in self.entries.keys().cloned().collect::<Vec<_>>() {
                self.remove(&key);
            }
        }
        for f in &req.forgotten {
            self.remove(&(f.topic.clone(), f.partition));
        }
        for p in &req.partitions {
            let key = (p.topic.clone(), p.partition);
            let moved_topic = self
                .entries
                .get(&key)
                .is_some_and(|e| e.asked.topic_id != p.topic_id);
            if moved_topic {
                self.remove(&key);
            }
            // Watch before reading, so an append in between wakes the round.
            if let Some(e) = self.entries.get_mut(&key) {
                e.asked = p.clone();
            } else {
                let watcher = self.watch(manager, &key);
                self.entries.insert(
                    key.clone(),
                    Entry {
                        asked: p.clone(),
                        sent: None,
                        watcher,
                    },
                );
            }
            self.dirty.insert(key);
        }
    }

    /// Marks every partition for reading when a sweep is due.
    fn sweep_if_due(&mut self, now: tokio::time::Instant) {
        if self.last_sweep.is_none_or(|t| now >= t + SESSION_SWEEP) {
            self.dirty.extend(self.entries.keys().cloned());
            self.last_sweep = Some(now);
        }
    }

    /// A watcher fired: its partition is read in the next round, and it
    /// watches on (or is dropped with its partition).
    fn fired(&mut self, fired: Result<Fired, Aborted>) {
        let Ok((key, rx, alive)) = fired else {
            return; // its partition left the session
        };
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        e.watcher = alive.then(|| Self::arm(&self.watchers, key.clone(), rx));
        self.dirty.insert(key);
    }
}

impl ReplicationApi {
    /// Reads the session's dirty partitions into `out`: those with records,
    /// an error, a divergence, or a HW or log start not sent yet. A
    /// partition answered with an error leaves the session (the follower
    /// names it again).
    fn read_dirty(
        &self,
        session: &mut Session,
        follower: (i32, i64),
        max_bytes: usize,
        out: &mut BTreeMap<Key, pb::FetchedPartition>,
    ) {
        for key in std::mem::take(&mut session.dirty) {
            let rearm = session
                .entries
                .get(&key)
                .is_some_and(|e| e.watcher.is_none());
            if rearm {
                let watcher = session.watch(&self.manager, &key);
                if let Some(e) = session.entries.get_mut(&key) {
                    e.watcher = watcher;
                }
            }
            let Some(e) = session.entries.get(&key) else {
                continue;
            };
            let fetched = self.fetch_one(follower, &e.asked, max_bytes);
            let failed = fetched.error != 0;
            let news = failed
                || !fetched.records.is_empty()
                || fetched.diverging_epoch.is_some()
                || e.sent != Some((fetched.high_watermark, fetched.log_start_offset));
            if failed {
                session.remove(&key);
            }
            if news {
                out.insert(key, fetched);
            }
        }
    }

    /// Answers one request, long-polling while nothing is new.
    async fn answer(
        &self,
        session: &mut Session,
        version: u32,
        req: pb::ReplicaFetchRequest,
    ) -> pb::ReplicaFetchResponse {
        let max_bytes = match req.max_bytes_per_partition as usize {
            0 => DEFAULT_REPLICA_FETCH_BYTES,
            n => n,
        };
        let follower = (req.follower_id, req.follower_broker_epoch);
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(u64::from(req.max_wait_ms)).min(MAX_REPLICA_WAIT);
        session.update(&self.manager, version, &req);
        let mut out = BTreeMap::new();
        loop {
            session.sweep_if_due(tokio::time::Instant::now());
            self.read_dirty(session, follower, max_bytes, &mut out);
            let bytes: usize = out.values().map(|p| p.records.len()).sum();
            let eventful = out
                .values()
                .any(|p| p.error != 0 || p.diverging_epoch.is_some());
            if bytes > 0 && bytes >= req.min_bytes as usize
                || eventful
                || session.entries.is_empty()
            {
                break;
            }
            let sweep = session.last_sweep.map_or(deadline, |t| t + SESSION_SWEEP);
            tokio::select! {
                Some(fired) = session.watchers.next() => {
                    session.fired(fired);
                    // Take every watcher that is ready, then read once.
                    while let Some(Some(fired)) = session.watchers.next().now_or_never() {
                        session.fired(fired);
                    }
                }
                () = tokio::time::sleep_until(sweep), if sweep < deadline => {}
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        for (key, p) in &out {
            if let Some(e) = session.entries.get_mut(key) {
                e.sent = Some((p.high_watermark, p.log_start_offset));
            }
        }
        pb::ReplicaFetchResponse {
            partitions: out.into_values().collect(),
        }
    }
}

type FetchStream = Pin<Box<dyn Stream<Item = Result<pb::ReplicaFetchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Replication for ReplicationApi {
    type ReplicaFetchStream = FetchStream;

    async fn replica_fetch(
        &self,
        request: Request<Streaming<pb::ReplicaFetchRequest>>,
    ) -> Result<Response<Self::ReplicaFetchStream>, Status> {
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(1);
        let api = self.clone();
        tokio::spawn(async move {
            let mut session = Session::default();
            while let Some(next) = incoming.next().await {
                let req = match next {
                    Ok(req) => req,
                    Err(status) => {
                        debug!(%status, "replica fetch stream ended");
                        return;
                    }
                };
                let version = match rill_proto::versions::REPLICATION.check(
                    req.protocol_version,
                    &format!("follower {}", req.follower_id),
                ) {
                    Ok(version) => version,
                    Err(message) => {
                        warn!(follower = req.follower_id, %message, "replica fetch refused: protocol version");
                        let _ = tx.send(Err(Status::failed_precondition(message))).await;
                        return;
                    }
                };
                let response = api.answer(&mut session, version, req).await;
                if tx.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn offset_for_leader_epoch(
        &self,
        request: Request<pb::OffsetForLeaderEpochRequest>,
    ) -> Result<Response<pb::OffsetForLeaderEpochResponse>, Status> {
        let req = request.into_inner();
        let partition = self
            .manager
            .partition(&req.topic, req.partition)
            .map_err(|e| Status::not_found(e.to_string()))?;
        let answer = match partition.end_offset_for_epoch(req.leader_epoch, req.epoch) {
            Ok((epoch, end_offset)) => pb::OffsetForLeaderEpochResponse {
                error: 0,
                result: Some(pb::EpochEndOffset { epoch, end_offset }),
            },
            Err(read) => pb::OffsetForLeaderEpochResponse {
                error: match read {
                    ReplicaRead::FencedEpoch => pb::FetchError::FencedLeaderEpoch,
                    ReplicaRead::UnknownEpoch => pb::FetchError::UnknownLeaderEpoch,
                    _ => pb::FetchError::NotLeader,
                } as i32,
                result: None,
            },
        };
        Ok(Response::new(answer))
    }
}
