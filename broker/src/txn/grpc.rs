//! The gRPC adapter of `rill.txn.v1.Transactions`, served on the
//! replication port: partition leaders write markers for coordinators, and
//! coordinators check partitions for leaders (see [`crate::txn`]).

use std::sync::Arc;

use rill_proto::txn as pb;
use rill_proto::txn::transactions_server::{Transactions, TransactionsServer};
use tonic::{Request, Response, Status};

use kafka_protocol::ResponseError;

use crate::partition::Error as PartitionError;
use crate::txn::{ProducerRef, TxnCoordinator};

/// The Transactions gRPC service of a broker.
#[derive(Debug, Clone)]
pub struct TxnApi {
    coordinator: Arc<TxnCoordinator>,
}

impl TxnApi {
    pub fn server(coordinator: Arc<TxnCoordinator>) -> TransactionsServer<Self> {
        TransactionsServer::new(Self { coordinator })
    }
}

fn epoch(value: i32) -> Result<i16, Status> {
    i16::try_from(value)
        .map_err(|_| Status::invalid_argument(format!("producer epoch {value} is out of range")))
}

#[tonic::async_trait]
impl Transactions for TxnApi {
    async fn write_markers(
        &self,
        request: Request<pb::WriteMarkersRequest>,
    ) -> Result<Response<pb::WriteMarkersResponse>, Status> {
        let r = request.into_inner();
        let producer_epoch = epoch(r.producer_epoch)?;
        let mut results = Vec::with_capacity(r.partitions.len());
        for tp in r.partitions {
            let written = self
                .coordinator
                .write_marker_here(
                    &tp.topic,
                    tp.partition,
                    r.producer_id,
                    producer_epoch,
                    r.commit,
                    r.coordinator_epoch,
                )
                .await;
            let (error_code, error_message) = match written {
                Ok(()) => (0, String::new()),
                Err(e) => (i32::from(marker_error(&e).code()), e.to_string()),
            };
            results.push(pb::MarkerResult {
                partition: Some(tp),
                error_code,
                error_message,
            });
        }
        Ok(Response::new(pb::WriteMarkersResponse { results }))
    }

    async fn check_partitions(
        &self,
        request: Request<pb::CheckPartitionsRequest>,
    ) -> Result<Response<pb::CheckPartitionsResponse>, Status> {
        let r = request.into_inner();
        let producer = ProducerRef {
            producer_id: r.producer_id,
            producer_epoch: epoch(r.producer_epoch)?,
        };
        let partitions: Vec<(String, i32)> = r
            .partitions
            .into_iter()
            .map(|tp| (tp.topic, tp.partition))
            .collect();
        let checked = self
            .coordinator
            .check_partitions(&r.transactional_id, producer, &partitions, r.add)
            .await;
        Ok(Response::new(match checked {
            Ok(()) => pb::CheckPartitionsResponse::default(),
            Err(e) => pb::CheckPartitionsResponse {
                error_code: i32::from(e.code.code()),
                error_message: e.message,
            },
        }))
    }
}

/// The Kafka code a failed marker is answered with: a gone partition needs
/// no marker; anything else is retried by the coordinator.
fn marker_error(e: &PartitionError) -> ResponseError {
    match e {
        PartitionError::UnknownTopic(_)
        | PartitionError::UnknownPartition { .. }
        | PartitionError::TopicDeleted(_) => ResponseError::UnknownTopicOrPartition,
        PartitionError::NotLeader { .. } => ResponseError::NotLeaderOrFollower,
        _ => ResponseError::UnknownServerError,
    }
}
