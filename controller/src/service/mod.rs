//! The gRPC `Controller` service (`rill.controller.v1`): a thin adapter in
//! front of the single-writer [`actor`].
//!
//! Each handler validates what can be checked without state (topic names
//! and config, see [`validate`]), converts the request, sends a
//! [`Command`] to the actor and awaits its reply, then records request
//! count and latency by method and outcome. Errors become `tonic::Status`
//! in one place, [`ServiceError::to_status`] (see [`error`] for the table).
//!
//! `WatchMetadata` gets a snapshot and a broadcast receiver from the actor
//! at the same instant, sends the snapshot, then forwards every delta. A
//! watcher that falls behind the broadcast buffer gets a fresh snapshot
//! instead of silently missing deltas. When the actor ends (deposed or
//! shutting down) the stream ends with UNAVAILABLE.

pub mod actor;
pub mod error;
pub mod validate;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use rill_proto::controller as pb;
use rill_proto::controller::controller_server::{Controller as ControllerRpc, ControllerServer};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tonic::{Request, Response, Status};
use tracing::warn;

pub use actor::{Actor, Command, Phase, Timing, WatchStart};
pub use error::{ServiceError, reason_of};

use crate::convert;
use crate::metrics::Metrics;
use crate::store::ConfigOrigin;

/// The tonic service. Cheap to clone: a channel to the actor.
#[derive(Debug, Clone)]
pub struct ControllerService {
    commands: mpsc::Sender<Command>,
    phase: watch::Receiver<Phase>,
    metrics: Arc<Metrics>,
}

impl ControllerService {
    pub fn new(
        commands: mpsc::Sender<Command>,
        phase: watch::Receiver<Phase>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            commands,
            phase,
            metrics,
        }
    }

    /// The tonic server for this service.
    pub fn server(self) -> ControllerServer<Self> {
        ControllerServer::new(self)
    }

    fn unavailable(&self) -> ServiceError {
        self.phase.borrow().unavailable()
    }

    /// Sends a command built around a reply channel and awaits the reply.
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, ServiceError>>) -> Command,
    ) -> Result<T, ServiceError> {
        if !matches!(*self.phase.borrow(), Phase::Serving) {
            return Err(self.unavailable());
        }
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| self.unavailable())?;
        rx.await.map_err(|_| self.unavailable())?
    }

    /// Records metrics for one request and converts its outcome.
    fn finish<T>(
        &self,
        method: &'static str,
        started: Instant,
        result: Result<T, ServiceError>,
    ) -> Result<Response<T>, Status> {
        rill_process::metrics::observe_result(
            &self.metrics.requests,
            &self.metrics.request_seconds,
            method,
            started,
            &result,
            ServiceError::reason,
        );
        result.map(Response::new).map_err(|e| {
            tracing::debug!(method, error = %e, "controller request failed");
            e.to_status()
        })
    }
}

/// Decrements the watcher gauge when a stream is dropped.
struct WatcherGuard(Arc<Metrics>);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.watchers.dec();
    }
}

enum WatchState {
    Snapshot(
        pb::MetadataUpdate,
        broadcast::Receiver<Arc<pb::MetadataUpdate>>,
    ),
    Follow(broadcast::Receiver<Arc<pb::MetadataUpdate>>),
    Done,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::MetadataUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl ControllerRpc for ControllerService {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        if let Err(message) = rill_proto::versions::CONTROLLER
            .check(r.protocol_version, &format!("broker {}", r.broker_id))
        {
            warn!(broker = r.broker_id, %message, "registration refused: protocol version");
            return Err(Status::failed_precondition(message));
        }
        let rack = Some(r.rack).filter(|r| !r.is_empty());
        let result = self
            .call(|reply| Command::Register {
                broker_id: r.broker_id,
                log_dir_id: r.log_dir_id,
                endpoints: convert::endpoints_from_pb(r.endpoints),
                rack,
                reply,
            })
            .await;
        self.finish("Register", started, result)
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = self
            .call(|reply| Command::Heartbeat {
                broker_id: r.broker_id,
                broker_epoch: r.broker_epoch,
                reply,
            })
            .await;
        self.finish("Heartbeat", started, result)
    }

    type WatchMetadataStream = WatchStream;

    async fn watch_metadata(
        &self,
        request: Request<pb::WatchMetadataRequest>,
    ) -> Result<Response<Self::WatchMetadataStream>, Status> {
        let started = Instant::now();
        let watcher = request.into_inner().broker_id;
        let result = self.call(|reply| Command::Watch { reply }).await;
        let (snapshot, rx) = match result {
            Ok(start) => start,
            Err(e) => return self.finish("WatchMetadata", started, Err(e)),
        };
        tracing::debug!(watcher, "metadata watch started");
        self.metrics.watchers.inc();
        let guard = WatcherGuard(Arc::clone(&self.metrics));
        let service = self.clone();
        let stream = futures::stream::unfold(
            (WatchState::Snapshot(snapshot, rx), service, guard),
            move |(state, service, guard)| async move {
                match state {
                    WatchState::Snapshot(snapshot, rx) => {
                        Some((Ok(snapshot), (WatchState::Follow(rx), service, guard)))
                    }
                    WatchState::Follow(mut rx) => {
                        let (item, next) = match rx.recv().await {
                            Ok(update) => (Ok((*update).clone()), WatchState::Follow(rx)),
                            Err(RecvError::Lagged(missed)) => {
                                tracing::warn!(
                                    watcher,
                                    missed,
                                    "metadata watcher fell behind: sending a fresh snapshot"
                                );
                                service.metrics.watcher_resyncs.inc();
                                match service.call(|reply| Command::Watch { reply }).await {
                                    Ok((snapshot, rx)) => (Ok(snapshot), WatchState::Follow(rx)),
                                    Err(e) => (Err(e.to_status()), WatchState::Done),
                                }
                            }
                            Err(RecvError::Closed) => {
                                (Err(service.unavailable().to_status()), WatchState::Done)
                            }
                        };
                        Some((item, (next, service, guard)))
                    }
                    WatchState::Done => None,
                }
            },
        );
        self.finish(
            "WatchMetadata",
            started,
            Ok(Box::pin(stream) as WatchStream),
        )
    }

    async fn alter_partition(
        &self,
        request: Request<pb::AlterPartitionRequest>,
    ) -> Result<Response<pb::AlterPartitionResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let result = self
            .call(|reply| Command::AlterPartition { request, reply })
            .await;
        self.finish("AlterPartition", started, result)
    }

    async fn controlled_shutdown(
        &self,
        request: Request<pb::ControlledShutdownRequest>,
    ) -> Result<Response<pb::ControlledShutdownResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = self
            .call(|reply| Command::ControlledShutdown {
                broker_id: r.broker_id,
                broker_epoch: r.broker_epoch,
                reply,
            })
            .await;
        self.finish("ControlledShutdown", started, result)
    }

    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let config: BTreeMap<String, String> = r.config.into_iter().collect();
        let result = async {
            validate::topic_name(&r.name)?;
            validate::partition_count(r.partitions)?;
            if r.replication_factor < 1 {
                return Err(ServiceError::InvalidArgument(format!(
                    "replication factor must be at least 1, got {}",
                    r.replication_factor
                )));
            }
            validate::topic_config(&config, r.replication_factor)?;
            self.call(|reply| Command::CreateTopic {
                name: r.name,
                partitions: r.partitions,
                replication_factor: r.replication_factor,
                config,
                reply,
            })
            .await
        }
        .await;
        self.finish("CreateTopic", started, result)
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let started = Instant::now();
        let pb::DeleteTopicRequest { name, id } = request.into_inner();
        let result = async {
            validate::topic_name(&name)?;
            self.call(|reply| Command::DeleteTopic { name, id, reply })
                .await
        }
        .await;
        self.finish("DeleteTopic", started, result)
    }

    async fn create_partitions(
        &self,
        request: Request<pb::CreatePartitionsRequest>,
    ) -> Result<Response<pb::CreatePartitionsResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = async {
            validate::topic_name(&r.name)?;
            validate::partition_count(r.total)?;
            self.call(|reply| Command::CreatePartitions {
                name: r.name,
                total: r.total,
                reply,
            })
            .await
        }
        .await;
        self.finish("CreatePartitions", started, result)
    }

    async fn drain_brokers(
        &self,
        request: Request<pb::DrainBrokersRequest>,
    ) -> Result<Response<pb::DrainBrokersResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = async {
            if r.brokers.iter().any(|b| *b < 0) {
                return Err(ServiceError::InvalidArgument(
                    "broker ids are not negative".to_owned(),
                ));
            }
            self.call(|reply| Command::DrainBrokers {
                brokers: r.brokers,
                reply,
            })
            .await
        }
        .await;
        self.finish("DrainBrokers", started, result)
    }

    async fn alter_topic_config(
        &self,
        request: Request<pb::AlterTopicConfigRequest>,
    ) -> Result<Response<pb::AlterTopicConfigResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let origin = match pb::ConfigOrigin::try_from(r.origin) {
            Ok(pb::ConfigOrigin::Resource) => ConfigOrigin::Resource,
            _ => ConfigOrigin::Kafka,
        };
        let config: BTreeMap<String, String> = r.config.into_iter().collect();
        let result = async {
            validate::topic_name(&r.name)?;
            // The replication factor bound of min.insync.replicas is
            // checked by the actor, which knows the topic.
            validate::topic_config(&config, i32::MAX)?;
            self.call(|reply| Command::AlterTopicConfig {
                name: r.name,
                id: r.id,
                config,
                validate_only: r.validate_only,
                origin,
                reply,
            })
            .await
        }
        .await;
        self.finish("AlterTopicConfig", started, result)
    }

    async fn alter_reassignments(
        &self,
        request: Request<pb::AlterReassignmentsRequest>,
    ) -> Result<Response<pb::AlterReassignmentsResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let result = self
            .call(|reply| Command::AlterReassignments { request, reply })
            .await;
        self.finish("AlterReassignments", started, result)
    }

    async fn list_reassignments(
        &self,
        request: Request<pb::ListReassignmentsRequest>,
    ) -> Result<Response<pb::ListReassignmentsResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let result = self
            .call(|reply| Command::ListReassignments { request, reply })
            .await;
        self.finish("ListReassignments", started, result)
    }

    async fn elect_leaders(
        &self,
        request: Request<pb::ElectLeadersRequest>,
    ) -> Result<Response<pb::ElectLeadersResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let result = async {
            if request.election_type != pb::ElectionType::Preferred as i32 {
                return Err(ServiceError::InvalidArgument(
                    "only preferred leader elections are supported: Rill never elects a \
                     replica outside the ISR on request, as that loses acknowledged records"
                        .to_owned(),
                ));
            }
            self.call(|reply| Command::ElectLeaders { request, reply })
                .await
        }
        .await;
        self.finish("ElectLeaders", started, result)
    }

    async fn alter_acls(
        &self,
        request: Request<pb::AlterAclsRequest>,
    ) -> Result<Response<pb::AlterAclsResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let result = async {
            let creations = request
                .creations
                .iter()
                .map(rill_proto::acl::Acl::from_wire)
                .collect::<Result<Vec<_>, _>>()
                .map_err(ServiceError::InvalidArgument)?;
            let deletions = request
                .deletions
                .iter()
                .map(rill_proto::acl::AclFilter::from_wire)
                .collect::<Result<Vec<_>, _>>()
                .map_err(ServiceError::InvalidArgument)?;
            self.call(|reply| Command::AlterAcls {
                creations,
                deletions,
                reply,
            })
            .await
        }
        .await;
        self.finish("AlterAcls", started, result)
    }

    async fn alter_client_quotas(
        &self,
        request: Request<pb::AlterClientQuotasRequest>,
    ) -> Result<Response<pb::AlterClientQuotasResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let result = async {
            let alterations = request
                .alterations
                .iter()
                .map(rill_proto::quota::QuotaAlteration::from_wire)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ServiceError::InvalidArgument(e.to_string()))?;
            self.call(|reply| Command::AlterClientQuotas { alterations, reply })
                .await
        }
        .await;
        self.finish("AlterClientQuotas", started, result)
    }
}

#[cfg(test)]
mod tests {
    //! In-process: the service without sockets, so a watcher can be made
    //! to fall behind deterministically (its stream is not polled while
    //! more deltas than the buffer holds are committed).

    use std::time::Duration;

    use futures::StreamExt;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::controller::{Controller, ControllerConfig};
    use crate::store::{MemoryStore, MetadataStore};

    const BUFFER: usize = 4;
    const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

    async fn service<S: MetadataStore + 'static>(
        store: S,
    ) -> (ControllerService, CancellationToken) {
        let meta = store.claim().await.expect("claims");
        let ctl = Controller::new(ControllerConfig::default(), meta, 0);
        let metrics = Arc::new(Metrics::new());
        let (phase_tx, phase) = watch::channel(Phase::Serving);
        let (updates, _) = broadcast::channel(BUFFER);
        let (tx, rx) = mpsc::channel(16);
        let actor = Actor::new(
            ctl,
            store,
            Instant::now(),
            updates,
            Arc::clone(&metrics),
            phase_tx,
            Timing {
                heartbeat_interval_ms: 250,
                session_timeout_ms: 1500,
            },
        );
        let stop = CancellationToken::new();
        tokio::spawn(actor.run(rx, Duration::from_millis(100), stop.clone()));
        (ControllerService::new(tx, phase, metrics), stop)
    }

    async fn create(svc: &ControllerService, name: &str) {
        svc.create_topic(Request::new(pb::CreateTopicRequest {
            name: name.to_owned(),
            partitions: 1,
            replication_factor: 1,
            config: Default::default(),
        }))
        .await
        .expect("created");
    }

    async fn next(stream: &mut WatchStream) -> pb::MetadataUpdate {
        tokio::time::timeout(REPLY_TIMEOUT, stream.next())
            .await
            .expect("an update in time")
            .expect("open")
            .expect("no error")
    }

    async fn register(svc: &ControllerService, id: i32) -> i64 {
        svc.register(Request::new(pb::RegisterRequest {
            broker_id: id,
            log_dir_id: format!("d{id}"),
            endpoints: None,
            rack: String::new(),
            protocol_version: 0,
        }))
        .await
        .expect("registers")
        .into_inner()
        .broker_epoch
    }

    async fn heartbeat(svc: &ControllerService, id: i32, epoch: i64) -> Result<(), Status> {
        svc.heartbeat(Request::new(pb::HeartbeatRequest {
            broker_id: id,
            broker_epoch: epoch,
        }))
        .await
        .map(drop)
    }

    #[tokio::test]
    async fn given_a_watcher_that_falls_behind_when_it_reads_again_should_get_a_fresh_snapshot() {
        let (svc, stop) = service(MemoryStore::default()).await;
        register(&svc, 0).await;
        let mut stream = svc
            .watch_metadata(Request::new(pb::WatchMetadataRequest { broker_id: 0 }))
            .await
            .expect("watch")
            .into_inner();
        let first = next(&mut stream).await;
        assert!(first.snapshot);
        assert!(first.topics.is_empty());

        for i in 0..BUFFER * 3 {
            create(&svc, &format!("t{i}")).await;
        }
        let resync = next(&mut stream).await;
        assert!(resync.snapshot, "a fresh snapshot, not a gap: {resync:?}");
        assert_eq!(resync.topics.len(), BUFFER * 3);
        assert_eq!(svc.metrics.watcher_resyncs.get(), 1);

        // Deltas continue after the resync.
        create(&svc, "after").await;
        let delta = next(&mut stream).await;
        assert!(!delta.snapshot);
        assert_eq!(delta.topics[0].name, "after");
        stop.cancel();
    }

    #[tokio::test]
    async fn given_the_controller_stalled_past_the_session_timeout_when_a_heartbeat_arrives_just_after_its_lease_check_then_the_broker_is_not_fenced()
     {
        // One thread runs the test and the actor: blocking it stalls the
        // controller as a stalled process would.
        let (svc, stop) = service(MemoryStore::default()).await;
        let alive = register(&svc, 0).await;
        let silent = register(&svc, 1).await;
        heartbeat(&svc, 1, silent).await.expect("leased");
        std::thread::sleep(Duration::from_millis(2000));
        // The late lease check runs before the heartbeat that was waiting.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(svc.metrics.late_lease_checks.get(), 1);
        heartbeat(&svc, 0, alive)
            .await
            .expect("a broker heard right after the stall keeps its lease");

        // A broker that stays silent is still fenced, two heartbeat
        // intervals later.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let fenced = heartbeat(&svc, 1, silent).await.unwrap_err();
        assert!(fenced.message().contains("fenced"), "{}", fenced.message());
        heartbeat(&svc, 0, alive).await.expect("still leased");
        stop.cancel();
    }

    #[tokio::test]
    async fn given_a_broker_of_a_newer_protocol_when_it_registers_should_be_refused_saying_what_to_upgrade()
     {
        let (svc, stop) = service(MemoryStore::default()).await;
        let err = svc
            .register(Request::new(pb::RegisterRequest {
                broker_id: 3,
                log_dir_id: "d3".into(),
                endpoints: None,
                rack: String::new(),
                protocol_version: rill_proto::versions::CONTROLLER.current + 1,
            }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        assert!(
            err.message()
                .contains("broker 3 speaks controller protocol"),
            "{}",
            err.message()
        );
        assert!(
            err.message().contains("upgrade the operator"),
            "{}",
            err.message()
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn given_a_failing_store_when_a_topic_is_created_should_answer_unavailable_and_change_nothing()
     {
        let store = MemoryStore::default();
        store.fail_next_persist();
        let (svc, stop) = service(store).await;
        // The failure hits the registration (the first persist).
        let err = svc
            .register(Request::new(pb::RegisterRequest {
                broker_id: 0,
                log_dir_id: "d0".into(),
                endpoints: None,
                rack: String::new(),
                protocol_version: 0,
            }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert_eq!(reason_of(err.message()), Some("STORE_UNAVAILABLE"));
        let mut stream = svc
            .watch_metadata(Request::new(pb::WatchMetadataRequest { broker_id: 0 }))
            .await
            .expect("still serving")
            .into_inner();
        assert!(
            next(&mut stream).await.brokers.is_empty(),
            "nothing applied"
        );
        assert_eq!(
            svc.metrics
                .persist_failures
                .with_label_values(&["error"])
                .get(),
            1
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn given_a_watcher_when_the_actor_stops_should_end_the_stream_with_unavailable() {
        let (svc, stop) = service(MemoryStore::default()).await;
        let mut stream = svc
            .watch_metadata(Request::new(pb::WatchMetadataRequest { broker_id: 0 }))
            .await
            .expect("watch")
            .into_inner();
        next(&mut stream).await;
        stop.cancel();
        let end = tokio::time::timeout(REPLY_TIMEOUT, stream.next())
            .await
            .expect("ends in time")
            .expect("an error item");
        let status = end.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(
            tokio::time::timeout(REPLY_TIMEOUT, stream.next())
                .await
                .expect("in time")
                .is_none()
        );
    }

    /// A store whose policy refuses every config change from Kafka, as the
    /// Kubernetes store does for topics a Topic resource manages.
    #[derive(Debug, Default)]
    struct RefusingStore(MemoryStore);

    impl MetadataStore for RefusingStore {
        async fn claim(&self) -> Result<crate::ClusterMetadata, crate::StoreError> {
            self.0.claim().await
        }
        async fn persist(
            &self,
            controller_epoch: i64,
            changes: &[crate::Change],
        ) -> Result<(), crate::StoreError> {
            self.0.persist(controller_epoch, changes).await
        }
        async fn admit_topic_config(
            &self,
            topic: &str,
            _config: &BTreeMap<String, String>,
            origin: ConfigOrigin,
            _validate_only: bool,
        ) -> Result<(), crate::StoreError> {
            match origin {
                ConfigOrigin::Resource => Ok(()),
                ConfigOrigin::Kafka => Err(crate::StoreError::Refused(format!(
                    "topic {topic:?} is managed by Topic data/{topic}: edit its spec.config"
                ))),
            }
        }
    }

    async fn with_topic<S: MetadataStore + 'static>(
        store: S,
    ) -> (ControllerService, CancellationToken, WatchStream) {
        let (svc, stop) = service(store).await;
        svc.register(Request::new(pb::RegisterRequest {
            broker_id: 0,
            log_dir_id: "d0".into(),
            endpoints: None,
            rack: String::new(),
            protocol_version: 0,
        }))
        .await
        .expect("registers");
        create(&svc, "orders").await;
        let mut stream = svc
            .watch_metadata(Request::new(pb::WatchMetadataRequest { broker_id: 0 }))
            .await
            .expect("watch")
            .into_inner();
        assert!(next(&mut stream).await.snapshot);
        (svc, stop, stream)
    }

    fn alter(
        config: &[(&str, &str)],
        origin: pb::ConfigOrigin,
        validate_only: bool,
    ) -> Request<pb::AlterTopicConfigRequest> {
        Request::new(pb::AlterTopicConfigRequest {
            name: "orders".into(),
            id: String::new(),
            config: config
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            validate_only,
            origin: origin as i32,
        })
    }

    #[tokio::test]
    async fn given_a_topic_when_its_config_is_altered_should_tell_watchers_and_be_idempotent() {
        let (svc, stop, mut stream) = with_topic(MemoryStore::default()).await;
        let r = svc
            .alter_topic_config(alter(
                &[("retention.ms", "60000")],
                pb::ConfigOrigin::Kafka,
                false,
            ))
            .await
            .expect("altered")
            .into_inner();
        assert!(r.changed);
        let delta = next(&mut stream).await;
        assert_eq!(delta.topics.len(), 1, "{delta:?}");
        assert_eq!(
            delta.topics[0]
                .config
                .get("retention.ms")
                .map(String::as_str),
            Some("60000")
        );
        // The same config again (spelled differently) changes nothing.
        let again = svc
            .alter_topic_config(alter(
                &[("retention.ms", " 060000")],
                pb::ConfigOrigin::Kafka,
                false,
            ))
            .await
            .expect("accepted")
            .into_inner();
        assert!(!again.changed);
        // Leaving a key out sets it back to the default.
        let cleared = svc
            .alter_topic_config(alter(&[], pb::ConfigOrigin::Resource, false))
            .await
            .expect("altered")
            .into_inner();
        assert!(cleared.changed);
        assert!(next(&mut stream).await.topics[0].config.is_empty());
        stop.cancel();
    }

    #[tokio::test]
    async fn given_validate_only_when_altering_should_change_nothing() {
        let (svc, stop, _stream) = with_topic(MemoryStore::default()).await;
        let r = svc
            .alter_topic_config(alter(
                &[("retention.ms", "60000")],
                pb::ConfigOrigin::Kafka,
                true,
            ))
            .await
            .expect("valid")
            .into_inner();
        assert!(!r.changed);
        assert!(r.topic.expect("topic").config.is_empty());
        let applied = svc
            .alter_topic_config(alter(
                &[("retention.ms", "60000")],
                pb::ConfigOrigin::Kafka,
                false,
            ))
            .await
            .expect("altered")
            .into_inner();
        assert!(applied.changed, "the validate_only request changed nothing");
        stop.cancel();
    }

    #[tokio::test]
    async fn given_bad_requests_when_altering_should_refuse_with_the_reason() {
        let (svc, stop, _stream) = with_topic(MemoryStore::default()).await;
        for (config, reason) in [
            (vec![("retention.ms", "soon")], "INVALID_CONFIG"),
            (vec![("no.such.key", "1")], "INVALID_CONFIG"),
            // The topic has one replica.
            (vec![("min.insync.replicas", "2")], "INVALID_CONFIG"),
        ] {
            let err = svc
                .alter_topic_config(alter(&config, pb::ConfigOrigin::Kafka, false))
                .await
                .expect_err("refused");
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{config:?}");
            assert_eq!(reason_of(err.message()), Some(reason), "{config:?}");
        }
        let mut unknown = alter(&[], pb::ConfigOrigin::Kafka, false);
        unknown.get_mut().name = "nope".into();
        let err = svc.alter_topic_config(unknown).await.expect_err("unknown");
        assert_eq!(err.code(), tonic::Code::NotFound);
        let mut other_id = alter(&[], pb::ConfigOrigin::Kafka, false);
        other_id.get_mut().id = "another-id".into();
        let err = svc
            .alter_topic_config(other_id)
            .await
            .expect_err("other id");
        assert_eq!(err.code(), tonic::Code::NotFound);
        stop.cancel();
    }

    #[tokio::test]
    async fn given_a_store_policy_when_kafka_alters_should_refuse_and_resource_changes_pass() {
        let (svc, stop, mut stream) = with_topic(RefusingStore::default()).await;
        let err = svc
            .alter_topic_config(alter(
                &[("retention.ms", "60000")],
                pb::ConfigOrigin::Kafka,
                false,
            ))
            .await
            .expect_err("refused");
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert_eq!(reason_of(err.message()), Some("POLICY_VIOLATION"));
        assert!(
            err.message().contains("Topic data/orders"),
            "{}",
            err.message()
        );
        // Unspecified origin counts as Kafka.
        let err = svc
            .alter_topic_config(alter(
                &[("retention.ms", "60000")],
                pb::ConfigOrigin::Unspecified,
                true,
            ))
            .await
            .expect_err("refused");
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        svc.alter_topic_config(alter(
            &[("retention.ms", "60000")],
            pb::ConfigOrigin::Resource,
            false,
        ))
        .await
        .expect("the resource's change passes");
        assert_eq!(
            next(&mut stream).await.topics[0]
                .config
                .get("retention.ms")
                .map(String::as_str),
            Some("60000")
        );
        stop.cancel();
    }

    /// A memory store whose persists can be held (an API server taking
    /// its time), counting the persists it made.
    #[derive(Default)]
    struct GatedStore {
        inner: MemoryStore,
        persists: std::sync::atomic::AtomicUsize,
        /// Persists that reached the store and wait for the gate.
        waiting: std::sync::atomic::AtomicUsize,
        gate: tokio::sync::RwLock<()>,
    }

    impl MetadataStore for Arc<GatedStore> {
        async fn claim(&self) -> Result<crate::ClusterMetadata, crate::StoreError> {
            self.inner.claim().await
        }

        async fn persist(
            &self,
            controller_epoch: i64,
            changes: &[crate::Change],
        ) -> Result<(), crate::StoreError> {
            use std::sync::atomic::Ordering;
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let _open = self.gate.read().await;
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            self.persists.fetch_add(1, Ordering::SeqCst);
            self.inner.persist(controller_epoch, changes).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn given_alter_partitions_arriving_while_the_store_is_slow_should_persist_them_together_and_answer_each_only_once_durable()
     {
        use std::sync::atomic::Ordering;
        const PARTITIONS: i32 = 40;
        let store = Arc::new(GatedStore::default());
        let (svc, stop) = service(Arc::clone(&store)).await;
        let mut epochs = Vec::new();
        for id in 0..2 {
            epochs.push(register(&svc, id).await);
        }
        let topic = svc
            .create_topic(Request::new(pb::CreateTopicRequest {
                name: "t".into(),
                partitions: PARTITIONS,
                replication_factor: 2,
                config: Default::default(),
            }))
            .await
            .expect("created")
            .into_inner()
            .topic
            .expect("the topic");
        let before = store.persists.load(Ordering::SeqCst);

        // The store stalls; every leader shrinks its ISR to itself.
        let gate = store.gate.write().await;
        let calls: Vec<_> = topic
            .partitions
            .iter()
            .map(|p| {
                let svc = svc.clone();
                let request = pb::AlterPartitionRequest {
                    broker_id: p.leader,
                    broker_epoch: epochs[p.leader as usize],
                    topic: "t".into(),
                    partition: p.partition,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    new_isr: vec![p.leader],
                    new_isr_epochs: vec![],
                    leader_offline: false,
                };
                tokio::spawn(async move { svc.alter_partition(Request::new(request)).await })
            })
            .collect();
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        while store.waiting.load(Ordering::SeqCst) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "no persist started");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Let the other requests queue behind the stalled write.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            calls.iter().all(|c| !c.is_finished()),
            "no request is answered before its change is durable"
        );
        drop(gate);
        for call in calls {
            let reply = call.await.expect("joined").expect("accepted").into_inner();
            let p = reply.partition.expect("the committed partition");
            assert_eq!(p.isr, vec![p.leader], "{p:?}");
        }
        let persists = store.persists.load(Ordering::SeqCst) - before;
        assert!(
            persists <= 2,
            "{PARTITIONS} ISR changes in {persists} persists: the one in flight and one for the rest"
        );
        let durable = store.inner.snapshot();
        for (i, p) in durable.topics["t"].partitions.iter().enumerate() {
            assert_eq!(p.isr, vec![p.leader], "partition {i} is durable");
            assert_eq!(p.partition_epoch, topic.partitions[i].partition_epoch + 1);
        }
        stop.cancel();
    }
}
