//! The broker's gRPC adapters, which convert protobuf messages to the
//! partition layer's types and back; no business logic lives here.
//!
//! - This module: the client API (`rill.client.v1`). It calls
//!   [`ReplicaManager`] and records request count and latency.
//! - [`replication`]: the leader side of `ReplicaFetch`, which followers
//!   pull from.
//!
//! Every client API error becomes a `tonic::Status` in one place,
//! [`status_from`]: bad batches and arguments are `INVALID_ARGUMENT`,
//! unknown topics `NOT_FOUND`, offsets outside the log `OUT_OF_RANGE`, a
//! full disk `RESOURCE_EXHAUSTED`.

pub mod replication;

use std::sync::Arc;
use std::time::Instant;

use rill_proto::client as pb;
use rill_proto::client::client_server::{Client, ClientServer};
use tonic::{Code, Request, Response, Status};

use crate::log::LogError;
use crate::metrics::Metrics;
use crate::partition::manager::{CreateTopic, OffsetSpec, ReplicaManager, TopicView};
use crate::partition::producers::SequenceError;
use crate::partition::{Acks, Error};

/// Maps a service error to the gRPC status a client sees.
pub fn status_from(err: &Error) -> Status {
    let code = match err {
        Error::UnknownTopic(_) | Error::UnknownPartition { .. } | Error::TopicDeleted(_) => {
            Code::NotFound
        }
        Error::TopicExists(_) => Code::AlreadyExists,
        Error::InvalidTopicName(_)
        | Error::InvalidPartitions { .. }
        | Error::PartitionCountNotIncreased { .. }
        | Error::InvalidReplicationFactor(_)
        | Error::InvalidConfig(_)
        | Error::ConfigRefused(_)
        | Error::InvalidRequest(_) => Code::InvalidArgument,
        Error::InvalidTxnState(_) => Code::FailedPrecondition,
        Error::PolicyViolation(_) => Code::PermissionDenied,
        Error::RequestTooLarge { .. } => Code::ResourceExhausted,
        Error::Log { source, .. } => match source {
            LogError::InvalidBatch(_) => Code::InvalidArgument,
            LogError::OffsetOutOfRange { .. } => Code::OutOfRange,
            LogError::DiskFull { .. } => Code::ResourceExhausted,
            LogError::Io { .. } | LogError::NonMonotonic { .. } | LogError::Corrupt { .. } => {
                Code::Internal
            }
        },
        Error::Metadata(_) if err.is_disk_full() => Code::ResourceExhausted,
        Error::Metadata(_) => Code::Internal,
        Error::PartitionOffline { .. } | Error::ShuttingDown => Code::Unavailable,
        Error::NotLeader { .. } => Code::FailedPrecondition,
        Error::NotEnoughReplicas { .. }
        | Error::NotEnoughReplicasAfterAppend { .. }
        | Error::LeadershipLost { .. }
        | Error::Controller(_) => Code::Unavailable,
        Error::Timeout { .. } | Error::DeleteTimeout { .. } => Code::DeadlineExceeded,
        Error::Placement(_) => Code::InvalidArgument,
        // Retriable: the batch behind a failed append waits for its retry.
        Error::Sequence {
            source: SequenceError::AfterFailedAppend { .. },
            ..
        } => Code::Unavailable,
        Error::Sequence { .. } | Error::FencedLeaderEpoch { .. } => Code::FailedPrecondition,
        Error::UnknownLeaderEpoch { .. } => Code::Unavailable,
    };
    let message = if err.is_disk_full() {
        format!("disk full: {err}")
    } else {
        err.to_string()
    };
    Status::new(code, message)
}

/// The tonic service.
#[derive(Debug, Clone)]
pub struct ClientApi {
    manager: Arc<ReplicaManager>,
    metrics: Arc<Metrics>,
}

impl ClientApi {
    /// A tonic server for the service, refusing requests larger than
    /// `max_request_bytes` with a clear status instead of buffering them.
    pub fn server(
        manager: Arc<ReplicaManager>,
        metrics: Arc<Metrics>,
        max_request_bytes: usize,
    ) -> ClientServer<Self> {
        ClientServer::new(Self { manager, metrics })
            .max_decoding_message_size(max_request_bytes)
            .max_encoding_message_size(usize::MAX)
    }

    /// Records metrics for one request and converts its outcome.
    fn finish<T>(
        &self,
        api: &'static str,
        started: Instant,
        result: Result<T, Error>,
    ) -> Result<Response<T>, Status> {
        let outcome = rill_process::metrics::observe_result(
            &self.metrics.requests,
            &self.metrics.request_seconds,
            api,
            started,
            &result,
            Error::metric_label,
        );
        match result {
            Ok(body) => Ok(Response::new(body)),
            Err(e) => {
                self.metrics.errors.with_label_values(&[api, outcome]).inc();
                tracing::debug!(api, error = %e, "request failed");
                Err(status_from(&e))
            }
        }
    }
}

fn acks_from(value: i32) -> Result<Acks, Error> {
    match pb::Acks::try_from(value) {
        Ok(pb::Acks::Leader) => Ok(Acks::Leader),
        Ok(pb::Acks::None) => Ok(Acks::None),
        Ok(pb::Acks::All) => Ok(Acks::All),
        Err(_) => Err(Error::InvalidRequest(format!(
            "unknown acks value {value} (expected ACKS_LEADER, ACKS_NONE or ACKS_ALL)"
        ))),
    }
}

fn offset_spec_from(spec: Option<pb::OffsetSpec>) -> Result<OffsetSpec, Error> {
    use pb::offset_spec::Spec;
    match spec.and_then(|s| s.spec) {
        Some(Spec::Earliest(_)) => Ok(OffsetSpec::Earliest),
        Some(Spec::Latest(_)) => Ok(OffsetSpec::Latest),
        Some(Spec::TimestampMs(ts)) => Ok(OffsetSpec::Timestamp(ts)),
        None => Err(Error::InvalidRequest(
            "spec is missing: set earliest, latest or timestamp_ms".to_owned(),
        )),
    }
}

fn topic_info(view: TopicView) -> pb::TopicInfo {
    pb::TopicInfo {
        name: view.name,
        partitions: view
            .partitions
            .into_iter()
            .map(|p| pb::PartitionInfo {
                partition: p.id,
                leader: p.leader,
                replicas: p.replicas,
                isr: p.isr,
                leader_epoch: p.leader_epoch,
                log_start_offset: p.state.map_or(-1, |s| s.log_start_offset),
                high_watermark: p.state.map_or(-1, |s| s.high_watermark),
            })
            .collect(),
        config: view.config.into_iter().collect(),
    }
}

#[tonic::async_trait]
impl Client for ClientApi {
    async fn produce(
        &self,
        request: Request<pb::ProduceRequest>,
    ) -> Result<Response<pb::ProduceResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = async {
            let acks = acks_from(r.acks)?;
            let produced = self
                .manager
                .produce(&r.topic, r.partition, r.record_batches, acks, r.timeout_ms)
                .await?;
            Ok(pb::ProduceResponse {
                base_offset: produced.base_offset,
                log_end_offset: produced.log_end_offset,
                log_start_offset: produced.log_start_offset,
            })
        }
        .await;
        self.finish("Produce", started, result)
    }

    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = self
            .manager
            .fetch(
                &r.topic,
                r.partition,
                r.offset,
                r.max_bytes,
                r.min_bytes,
                r.max_wait_ms,
            )
            .await
            .map(|f| pb::FetchResponse {
                record_batches: f.data,
                high_watermark: f.high_watermark,
                log_start_offset: f.log_start_offset,
            });
        self.finish("Fetch", started, result)
    }

    async fn list_offsets(
        &self,
        request: Request<pb::ListOffsetsRequest>,
    ) -> Result<Response<pb::ListOffsetsResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = offset_spec_from(r.spec)
            .and_then(|spec| self.manager.list_offsets(&r.topic, r.partition, spec))
            .map(|(offset, timestamp_ms)| pb::ListOffsetsResponse {
                offset,
                timestamp_ms,
            });
        self.finish("ListOffsets", started, result)
    }

    async fn metadata(
        &self,
        request: Request<pb::MetadataRequest>,
    ) -> Result<Response<pb::MetadataResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let brokers = self.manager.brokers();
        let result = self
            .manager
            .metadata(&r.topics)
            .map(|topics| pb::MetadataResponse {
                brokers: brokers
                    .into_iter()
                    .map(|b| pb::Broker {
                        id: b.id,
                        address: b.address,
                        kafka_address: String::new(),
                        rack: b.rack.unwrap_or_default(),
                    })
                    .collect(),
                topics: topics.into_iter().map(topic_info).collect(),
            });
        self.finish("Metadata", started, result)
    }

    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = self
            .manager
            .create_topic(CreateTopic {
                name: r.name,
                partitions: r.partitions,
                replication_factor: r.replication_factor,
                config: r.config.into_iter().collect(),
            })
            .await
            .map(|view| pb::CreateTopicResponse {
                topic: Some(topic_info(view)),
            });
        self.finish("CreateTopic", started, result)
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = self
            .manager
            .delete_topic(&r.name)
            .await
            .map(|()| pb::DeleteTopicResponse {});
        self.finish("DeleteTopic", started, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::BatchError;
    use crate::partition::store::validate_topic_name;

    fn log_err(source: LogError) -> Error {
        Error::Log {
            topic: "t".into(),
            partition: 0,
            source,
        }
    }

    #[test]
    fn given_each_error_kind_when_mapped_should_get_the_documented_code_and_message() {
        let disk_full = log_err(LogError::DiskFull {
            context: "appending".into(),
            source: std::io::Error::from_raw_os_error(28),
        });
        let cases: Vec<(Error, Code, &str)> = vec![
            (
                Error::UnknownTopic("x".into()),
                Code::NotFound,
                "unknown topic \"x\"",
            ),
            (
                Error::UnknownPartition {
                    topic: "x".into(),
                    partition: 9,
                    count: 2,
                },
                Code::NotFound,
                "partitions 0..2",
            ),
            (
                log_err(LogError::InvalidBatch(BatchError::BadMagic(1))),
                Code::InvalidArgument,
                "magic 1",
            ),
            (
                log_err(LogError::OffsetOutOfRange {
                    offset: 50,
                    log_start: 0,
                    log_end: 10,
                }),
                Code::OutOfRange,
                "0..10",
            ),
            (disk_full, Code::ResourceExhausted, "disk full"),
            (
                log_err(LogError::Io {
                    context: "reading".into(),
                    source: std::io::Error::other("boom"),
                }),
                Code::Internal,
                "boom",
            ),
            (
                Error::InvalidTopicName(validate_topic_name("a/b").expect_err("invalid")),
                Code::InvalidArgument,
                "'/'",
            ),
            (
                Error::InvalidReplicationFactor(3),
                Code::InvalidArgument,
                "must be 1",
            ),
            (
                Error::TopicExists("t".into()),
                Code::AlreadyExists,
                "already exists",
            ),
            (Error::ShuttingDown, Code::Unavailable, "shutting down"),
        ];
        for (err, code, text) in cases {
            let status = status_from(&err);
            assert_eq!(status.code(), code, "{err}");
            assert!(status.message().contains(text), "{}", status.message());
        }
    }

    #[test]
    fn given_unknown_acks_or_missing_spec_when_converted_should_be_invalid_argument() {
        let err = acks_from(7).expect_err("unknown");
        assert_eq!(status_from(&err).code(), Code::InvalidArgument);
        let err = offset_spec_from(None).expect_err("missing");
        assert_eq!(status_from(&err).code(), Code::InvalidArgument);
    }
}
