//! The gRPC replication adapter: the leader side of `ReplicaFetch`, the
//! tonic `Replication` service followers pull from.
//!
//! A follower keeps one `ReplicaFetch` stream open to this broker and sends
//! one request at a time. For each partition the request names, the leader
//! checks epochs and divergence, records the follower's log end (which may
//! advance the HW and complete acks=all writes), and returns stored batches
//! verbatim. When nothing is new, the answer waits up to `max_wait_ms` for
//! any of the partitions' log end to move. Only conversion and waiting live
//! here; the logic is in [`crate::partition::Partition::replica_fetch`].

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use futures::future::select_all;
use rill_proto::replication as pb;
use rill_proto::replication::replication_server::{Replication, ReplicationServer};
use tokio::sync::mpsc;
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

    /// Answers one request, long-polling while nothing is new.
    async fn answer(&self, req: pb::ReplicaFetchRequest) -> pb::ReplicaFetchResponse {
        let max_bytes = match req.max_bytes_per_partition as usize {
            0 => DEFAULT_REPLICA_FETCH_BYTES,
            n => n,
        };
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(u64::from(req.max_wait_ms)).min(MAX_REPLICA_WAIT);
        // Subscribe before reading, so an append in between wakes us.
        let mut watches: Vec<_> = req
            .partitions
            .iter()
            .filter_map(|p| self.manager.partition(&p.topic, p.partition).ok())
            .map(|p| p.subscribe_log_end())
            .collect();
        loop {
            for w in &mut watches {
                w.borrow_and_update();
            }
            let partitions: Vec<pb::FetchedPartition> = req
                .partitions
                .iter()
                .map(|p| self.fetch_one((req.follower_id, req.follower_broker_epoch), p, max_bytes))
                .collect();
            let bytes: usize = partitions.iter().map(|p| p.records.len()).sum();
            let eventful = partitions
                .iter()
                .any(|p| p.error != 0 || p.diverging_epoch.is_some());
            if bytes > 0 && bytes >= req.min_bytes as usize || eventful || watches.is_empty() {
                return pb::ReplicaFetchResponse { partitions };
            }
            let changed = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
            tokio::select! {
                _ = changed => {}
                () = tokio::time::sleep_until(deadline) => return pb::ReplicaFetchResponse { partitions },
            }
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
            while let Some(next) = incoming.next().await {
                let req = match next {
                    Ok(req) => req,
                    Err(status) => {
                        debug!(%status, "replica fetch stream ended");
                        return;
                    }
                };
                if let Err(message) = rill_proto::versions::REPLICATION.check(
                    req.protocol_version,
                    &format!("follower {}", req.follower_id),
                ) {
                    warn!(follower = req.follower_id, %message, "replica fetch refused: protocol version");
                    let _ = tx.send(Err(Status::failed_precondition(message))).await;
                    return;
                }
                let response = api.answer(req).await;
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
