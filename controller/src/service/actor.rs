//! The single writer: one tokio task owns the [`Controller`] and the
//! [`MetadataStore`], so every operation is serialized.
//!
//! RPC handlers send a [`Command`] over an mpsc channel and await the
//! reply on a oneshot. For each command, and for each lease tick, the actor
//! runs the write-ahead flow of the core:
//!
//! 1. compute a [`Plan`] (pure, nothing changes yet);
//! 2. `store.persist(controller_epoch, &plan.changes)`;
//! 3. only on success `apply` the plan, update the metrics and broadcast
//!    the delta (stamped with the controller epoch) to watchers.
//!
//! AlterPartition requests that arrive together (leaders changing many
//! ISRs after a broker failed or came back) go through this flow as one
//! batch: one plan, one persist, then every reply
//! ([`Controller::alter_partitions`]).
//!
//! A persist that fails with [`StoreError::Superseded`] means a newer
//! controller claimed the store: the actor records [`Phase::Deposed`] and
//! exits, which drops the broadcast sender (watch streams end) and the
//! command receiver (every later RPC gets UNAVAILABLE "not the active
//! controller"). Any other persist failure fails that one request with
//! UNAVAILABLE and leaves the state unchanged; a lease tick simply retries
//! on the next tick.
//!
//! Time is a monotonic clock in ms since the actor started, passed into
//! the pure core.
//!
//! The [`crate::FileStore`] does its file I/O (write, fsync, rename)
//! inside `persist` on the actor's worker thread. That is deliberate: the
//! actor must not do anything else until the write is durable, writes are
//! rare (leader/ISR/topic changes, never per-append), and other tasks keep
//! running on the runtime's other workers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_proto::controller as pb;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::error::ServiceError;
use crate::controller::{Controller, ControllerError, IsrChange, IsrChangeKind, Plan, Reassign};
use crate::convert;
use crate::metrics::Metrics;
use crate::state::{BrokerId, ClusterMetadata, Endpoints};
use crate::store::{ConfigOrigin, MetadataStore, StoreError};

/// How long a batch of AlterPartition requests waits for more after the
/// first one, when none are queued: the leaders of one broker propose the
/// ISR changes of one check together, and they arrive within this.
const ALTER_PARTITION_LINGER: Duration = Duration::from_millis(5);

/// Most AlterPartition requests planned and persisted together.
const MAX_ALTER_PARTITION_BATCH: usize = 10_000;

/// What the controller is doing, shared with handlers and `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Claiming the store; not serving yet.
    Starting,
    /// The active controller: serving every RPC.
    Serving,
    /// A newer controller (epoch `current`) claimed the store; this one
    /// (epoch `ours`) serves nothing any more.
    Deposed { ours: i64, current: i64 },
    /// Graceful shutdown in progress or done.
    Stopped,
}

impl Phase {
    /// The error an RPC gets when the actor is not there to answer.
    pub fn unavailable(self) -> ServiceError {
        match self {
            Phase::Deposed { ours, current } => ServiceError::NotActive { ours, current },
            _ => ServiceError::ShuttingDown,
        }
    }
}

/// Heartbeat settings told to brokers in Register and Heartbeat replies.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat_interval_ms: u32,
    pub session_timeout_ms: u32,
}

type Reply<T> = oneshot::Sender<Result<T, ServiceError>>;

/// A stream's starting point: a snapshot and a receiver subscribed at the
/// same instant, so no delta falls between them.
pub type WatchStart = (
    pb::MetadataUpdate,
    broadcast::Receiver<Arc<pb::MetadataUpdate>>,
);

/// One request to the actor.
#[derive(Debug)]
pub enum Command {
    Register {
        broker_id: BrokerId,
        log_dir_id: String,
        endpoints: Endpoints,
        rack: Option<String>,
        reply: Reply<pb::RegisterResponse>,
    },
    Heartbeat {
        broker_id: BrokerId,
        broker_epoch: i64,
        reply: Reply<pb::HeartbeatResponse>,
    },
    Watch {
        reply: Reply<WatchStart>,
    },
    AlterPartition {
        request: pb::AlterPartitionRequest,
        reply: Reply<pb::AlterPartitionResponse>,
    },
    ControlledShutdown {
        broker_id: BrokerId,
        broker_epoch: i64,
        reply: Reply<pb::ControlledShutdownResponse>,
    },
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i32,
        config: BTreeMap<String, String>,
        reply: Reply<pb::CreateTopicResponse>,
    },
    DeleteTopic {
        name: String,
        /// Only the topic with this id (empty: whichever has the name).
        id: String,
        reply: Reply<pb::DeleteTopicResponse>,
    },
    CreatePartitions {
        name: String,
        total: i32,
        reply: Reply<pb::CreatePartitionsResponse>,
    },
    DrainBrokers {
        brokers: Vec<i32>,
        reply: Reply<pb::DrainBrokersResponse>,
    },
    AlterTopicConfig {
        name: String,
        /// Only the topic with this id (empty: whichever has the name).
        id: String,
        /// The whole desired config, keys and values already checked
        /// against the table (not yet against the replication factor).
        config: BTreeMap<String, String>,
        validate_only: bool,
        origin: ConfigOrigin,
        reply: Reply<pb::AlterTopicConfigResponse>,
    },
    AlterReassignments {
        request: pb::AlterReassignmentsRequest,
        reply: Reply<pb::AlterReassignmentsResponse>,
    },
    ListReassignments {
        request: pb::ListReassignmentsRequest,
        reply: Reply<pb::ListReassignmentsResponse>,
    },
    ElectLeaders {
        request: pb::ElectLeadersRequest,
        reply: Reply<pb::ElectLeadersResponse>,
    },
    AlterAcls {
        creations: Vec<rill_proto::acl::Acl>,
        deletions: Vec<rill_proto::acl::AclFilter>,
        reply: Reply<pb::AlterAclsResponse>,
    },
    AlterClientQuotas {
        alterations: Vec<rill_proto::quota::QuotaAlteration>,
        reply: Reply<pb::AlterClientQuotasResponse>,
    },
}

/// One partition's outcome, its error as `REASON: text`.
fn partition_result(
    topic: String,
    partition: i32,
    outcome: Result<(), ControllerError>,
) -> pb::PartitionResult {
    pb::PartitionResult {
        topic,
        partition,
        error: outcome
            .err()
            .map(|e| ServiceError::from(e).to_status().message().to_owned())
            .unwrap_or_default(),
    }
}

/// The task state. Fields are owned here and nowhere else.
pub struct Actor<S> {
    /// The core: durable metadata as last persisted, plus leases.
    ctl: Controller,
    /// Where plans become durable before anyone hears of them.
    store: S,
    /// Zero of the monotonic clock handed to the core.
    started: Instant,
    /// Deltas for watchers; dropped when the actor ends, which ends them.
    updates: broadcast::Sender<Arc<pb::MetadataUpdate>>,
    metrics: Arc<Metrics>,
    phase: watch::Sender<Phase>,
    timing: Timing,
    /// The durable metadata after every commit, for in-process readers
    /// (the operator's scale-down guard) that cannot hold a watch stream.
    snapshot: watch::Sender<Arc<ClusterMetadata>>,
    /// Brokers a DrainBrokers asked to empty (before a scale-down): the
    /// automatic balance gives them nothing. In memory: the operator asks
    /// again on every reconcile until they are empty; a broker leaves the
    /// set when it registers with a new data directory.
    draining: BTreeSet<BrokerId>,
    /// Monotonic ms of the next automatic balance check.
    next_balance_ms: u64,
    /// The automatic balance moved partitions: elect preferred leaders
    /// once no move is in flight.
    elect_after_balance: bool,
    /// A broker heartbeated here for the first time since this controller
    /// took over: the next tick elects leaderless partitions it can lead
    /// ([`Controller::elect_leaderless_heard`]), until that commits.
    elect_heard: bool,
}

impl<S: MetadataStore> Actor<S> {
    /// `ctl` must have been built from the store's `claim()` at time
    /// `started` (the core's time zero).
    pub fn new(
        ctl: Controller,
        store: S,
        started: Instant,
        updates: broadcast::Sender<Arc<pb::MetadataUpdate>>,
        metrics: Arc<Metrics>,
        phase: watch::Sender<Phase>,
        timing: Timing,
    ) -> Self {
        metrics.observe_state(&ctl);
        let (snapshot, _) = watch::channel(Arc::new(ctl.metadata().clone()));
        let next_balance_ms = ctl.config().balance_interval_ms;
        Self {
            snapshot,
            draining: BTreeSet::new(),
            next_balance_ms,
            elect_after_balance: false,
            elect_heard: false,
            ctl,
            store,
            started,
            updates,
            metrics,
            phase,
            timing,
        }
    }

    /// Follows the durable metadata as this actor commits it.
    pub fn snapshots(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.snapshot.subscribe()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn deposed(&self) -> bool {
        matches!(*self.phase.borrow(), Phase::Deposed { .. })
    }

    /// Serves commands and lease ticks until `stop`, until every handler
    /// is gone, or until deposed. Returns the final phase.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        tick_interval: Duration,
        stop: CancellationToken,
    ) -> Phase {
        let mut ticker = tokio::time::interval(tick_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                cmd = commands.recv() => match cmd {
                    Some(Command::AlterPartition { request, reply }) => {
                        let next = self.alter_partitions(request, reply, &mut commands).await;
                        if let Some(cmd) = next
                            && !self.deposed()
                        {
                            self.handle(cmd).await;
                        }
                    }
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                scheduled = ticker.tick() => self.tick(scheduled.elapsed()).await,
            }
            if self.deposed() {
                break;
            }
        }
        let phase = *self.phase.borrow();
        if !matches!(phase, Phase::Deposed { .. }) {
            self.phase.send_replace(Phase::Stopped);
        }
        // Pending requests are answered by their handlers from the phase
        // once their reply senders drop with `commands`.
        *self.phase.borrow()
    }

    /// Persists `plan`, then applies it and broadcasts the delta. The
    /// store is not touched for liveness-only plans.
    async fn commit(&mut self, plan: Plan) -> Result<(), ServiceError> {
        if plan.is_empty() {
            return Ok(());
        }
        let epoch = self.ctl.controller_epoch();
        if !plan.changes.is_empty() {
            let started = Instant::now();
            let result = self.store.persist(epoch, &plan.changes).await;
            let outcome = match &result {
                Ok(()) => "ok",
                Err(StoreError::Superseded { .. }) => "superseded",
                Err(_) => "error",
            };
            self.metrics
                .persist_seconds
                .with_label_values(&[outcome])
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok(()) => {}
                Err(StoreError::Superseded { ours, current }) => {
                    self.metrics
                        .persist_failures
                        .with_label_values(&["superseded"])
                        .inc();
                    error!(
                        ours,
                        current, "a newer controller claimed the metadata store: stopping"
                    );
                    self.phase.send_replace(Phase::Deposed { ours, current });
                    return Err(ServiceError::NotActive { ours, current });
                }
                Err(e) => {
                    self.metrics
                        .persist_failures
                        .with_label_values(&["error"])
                        .inc();
                    warn!(error = %e, "persisting metadata failed; nothing changed");
                    return Err(ServiceError::Store(e));
                }
            }
        }
        let liveness = self.ctl.liveness_changes(&plan);
        self.metrics
            .observe_changes(self.ctl.metadata(), &plan.changes);
        let changes = self.ctl.apply(plan);
        self.metrics.observe_state(&self.ctl);
        if !changes.is_empty() {
            self.snapshot
                .send_replace(Arc::new(self.ctl.metadata().clone()));
        }
        let delta = convert::delta(&self.ctl, &changes, &liveness);
        if !convert::is_empty(&delta) {
            debug!(
                controller_epoch = epoch,
                changes = changes.len(),
                "broadcasting metadata delta"
            );
            // An error only means nobody is watching.
            let _ = self.updates.send(Arc::new(delta));
        }
        Ok(())
    }

    /// One lease check, `late` after the time it was due.
    async fn tick(&mut self, late: Duration) {
        let now = self.now_ms();
        self.grace_after_late_tick(now, late);
        let plan = self.ctl.tick(now);
        // Failures are logged in commit; the next tick computes the same
        // plan again.
        let _ = self.commit(plan).await;
        if self.elect_heard {
            let plan = self.ctl.elect_leaderless_heard();
            let elected = plan.changes.len();
            if self.commit(plan).await.is_ok() {
                self.elect_heard = false;
                if elected > 0 {
                    info!(
                        partitions = elected,
                        "leaderless partitions elected a broker that heartbeated since the takeover"
                    );
                }
            }
        }
        if self.ctl.config().auto_balance && now >= self.next_balance_ms {
            self.next_balance_ms = now + self.ctl.config().balance_interval_ms;
            self.balance().await;
        }
    }

    /// A lease check that runs more than a heartbeat interval late means
    /// this controller did not check for that long: its process was
    /// stalled, or the actor was busy with a long persist. After a stall,
    /// heartbeats sent meanwhile may still wait in its sockets, unread:
    /// fencing now would fence brokers that are alive, all at once. Every
    /// lease instead gets two heartbeat intervals from now to be renewed;
    /// a broker that is really gone is fenced that much later.
    fn grace_after_late_tick(&mut self, now: u64, late: Duration) {
        let heartbeat = u64::from(self.timing.heartbeat_interval_ms);
        let late = u64::try_from(late.as_millis()).unwrap_or(u64::MAX);
        if late <= heartbeat {
            return;
        }
        let extended = self.ctl.extend_leases(now + 2 * heartbeat);
        self.metrics.late_lease_checks.inc();
        if extended > 0 {
            warn!(
                late_ms = late,
                leases = extended,
                "the lease check ran late (this controller was stalled or busy): leases about to expire get two heartbeat intervals to be renewed"
            );
        }
    }

    /// One automatic balance check: moves a few partitions onto
    /// under-loaded brokers; once they are done, elects preferred leaders.
    async fn balance(&mut self) {
        if self.ctl.moving() {
            return;
        }
        if self.elect_after_balance {
            let plan = self.ctl.rebalance_preferred_leaders();
            let changed = plan.changes.len();
            if self.commit(plan).await.is_ok() {
                self.elect_after_balance = false;
                if changed > 0 {
                    info!(partitions = changed, "balance: preferred leaders elected");
                }
            }
            return;
        }
        let (plan, moving) = self.ctl.balance(&self.draining);
        if plan.is_empty() {
            return;
        }
        if self.commit(plan).await.is_ok() {
            self.elect_after_balance = true;
            self.metrics.balance_moves.inc_by(moving as u64);
            info!(
                partitions = moving,
                "balance: moving replicas onto under-loaded brokers"
            );
        }
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Register {
                broker_id,
                log_dir_id,
                endpoints,
                rack,
                reply,
            } => {
                let result = self.register(broker_id, &log_dir_id, endpoints, rack).await;
                let _ = reply.send(result);
            }
            Command::Heartbeat {
                broker_id,
                broker_epoch,
                reply,
            } => {
                let now = self.now_ms();
                let first = !self.ctl.heard_from(broker_id);
                let result = self
                    .ctl
                    .heartbeat(broker_id, broker_epoch, now)
                    .inspect(|_| self.elect_heard |= first)
                    .map(|liveness| pb::HeartbeatResponse {
                        controller_epoch: self.ctl.controller_epoch(),
                        state: convert::liveness_to_pb(liveness) as i32,
                        heartbeat_interval_ms: self.timing.heartbeat_interval_ms,
                        session_timeout_ms: self.timing.session_timeout_ms,
                    })
                    .map_err(ServiceError::from);
                let _ = reply.send(result);
            }
            Command::Watch { reply } => {
                let _ = reply.send(Ok((convert::snapshot(&self.ctl), self.updates.subscribe())));
            }
            Command::AlterPartition { request, reply } => {
                self.commit_alter_partitions(vec![(request, reply)]).await;
            }
            Command::ControlledShutdown {
                broker_id,
                broker_epoch,
                reply,
            } => {
                let result = self.controlled_shutdown(broker_id, broker_epoch).await;
                let _ = reply.send(result);
            }
            Command::CreateTopic {
                name,
                partitions,
                replication_factor,
                config,
                reply,
            } => {
                let result = async {
                    let plan =
                        self.ctl
                            .create_topic(&name, partitions, replication_factor, config)?;
                    self.commit(plan).await?;
                    info!(topic = %name, partitions, replication_factor, "topic created");
                    Ok(pb::CreateTopicResponse {
                        topic: self.topic(&name),
                    })
                }
                .await;
                let _ = reply.send(result);
            }
            Command::DeleteTopic { name, id, reply } => {
                let result = async {
                    let plan = self
                        .ctl
                        .delete_topic(&name, Some(id.as_str()).filter(|id| !id.is_empty()))?;
                    self.commit(plan).await?;
                    info!(topic = %name, "topic deleted");
                    Ok(pb::DeleteTopicResponse {})
                }
                .await;
                let _ = reply.send(result);
            }
            Command::CreatePartitions { name, total, reply } => {
                let result = async {
                    let plan = self.ctl.add_partitions(&name, total)?;
                    self.commit(plan).await?;
                    info!(topic = %name, total, "partitions added");
                    Ok(pb::CreatePartitionsResponse {
                        topic: self.topic(&name),
                    })
                }
                .await;
                let _ = reply.send(result);
            }
            Command::AlterTopicConfig {
                name,
                id,
                config,
                validate_only,
                origin,
                reply,
            } => {
                let result = self
                    .alter_topic_config(&name, &id, config, validate_only, origin)
                    .await;
                let _ = reply.send(result);
            }
            Command::DrainBrokers { brokers, reply } => {
                self.draining.extend(brokers.iter().copied());
                let result = async {
                    let (plan, left) = self.ctl.drain(&brokers)?;
                    let moving = !plan.is_empty();
                    self.commit(plan).await?;
                    if moving {
                        info!(
                            ?brokers,
                            partitions_left = left,
                            "moving replicas off brokers"
                        );
                    }
                    Ok(pb::DrainBrokersResponse {
                        partitions_left: left as u32,
                    })
                }
                .await;
                let _ = reply.send(result);
            }
            Command::AlterReassignments { request, reply } => {
                let requests: Vec<Reassign> = request
                    .reassignments
                    .into_iter()
                    .map(|r| Reassign {
                        topic: r.topic,
                        partition: r.partition,
                        target: (!r.cancel).then_some(r.replicas),
                        keep_replication_factor: r.keep_replication_factor,
                    })
                    .collect();
                let (plan, outcomes) = self.ctl.alter_reassignments(&requests);
                let result = self
                    .commit(plan)
                    .await
                    .map(|()| pb::AlterReassignmentsResponse {
                        results: requests
                            .into_iter()
                            .zip(outcomes)
                            .map(|(r, outcome)| partition_result(r.topic, r.partition, outcome))
                            .collect(),
                    });
                let _ = reply.send(result);
            }
            Command::ListReassignments { request, reply } => {
                let only: Vec<(String, i32)> = request
                    .partitions
                    .into_iter()
                    .map(|p| (p.topic, p.partition))
                    .collect();
                let reassignments = self
                    .ctl
                    .reassignments((!only.is_empty()).then_some(only.as_slice()))
                    .into_iter()
                    .map(|(topic, partition, p)| pb::OngoingReassignment {
                        topic,
                        partition,
                        replicas: p.replicas,
                        adding_replicas: p.adding,
                        removing_replicas: p.removing,
                    })
                    .collect();
                let _ = reply.send(Ok(pb::ListReassignmentsResponse { reassignments }));
            }
            Command::ElectLeaders { request, reply } => {
                let only: Vec<(String, i32)> = request
                    .partitions
                    .into_iter()
                    .map(|p| (p.topic, p.partition))
                    .collect();
                let (plan, outcomes) = self
                    .ctl
                    .elect_preferred((!only.is_empty()).then_some(only.as_slice()));
                let elected = outcomes.iter().filter(|(_, _, o)| o.is_ok()).count();
                let result = self.commit(plan).await.map(|()| {
                    if elected > 0 {
                        info!(elected, "preferred leaders elected");
                    }
                    pb::ElectLeadersResponse {
                        results: outcomes
                            .into_iter()
                            .map(|(topic, partition, outcome)| {
                                partition_result(topic, partition, outcome)
                            })
                            .collect(),
                    }
                });
                let _ = reply.send(result);
            }
            Command::AlterAcls {
                creations,
                deletions,
                reply,
            } => {
                let (plan, created, deleted) = self.ctl.alter_acls(creations, &deletions);
                let changed = !plan.is_empty();
                let result = self.commit(plan).await.map(|()| {
                    if changed {
                        info!(acls = self.ctl.metadata().acls.len(), "ACLs changed");
                    }
                    pb::AlterAclsResponse {
                        creation_errors: created
                            .into_iter()
                            .map(|r| r.err().unwrap_or_default())
                            .collect(),
                        deletions: deleted
                            .into_iter()
                            .map(|acls| pb::AclDeletion {
                                error: String::new(),
                                deleted: acls.iter().map(|a| a.to_wire()).collect(),
                            })
                            .collect(),
                    }
                });
                let _ = reply.send(result);
            }
            Command::AlterClientQuotas { alterations, reply } => {
                let (plan, outcomes) = self.ctl.alter_client_quotas(&alterations);
                let changed = !plan.is_empty();
                let result = self.commit(plan).await.map(|()| {
                    if changed {
                        let entities = self.ctl.metadata().client_quotas.iter().count();
                        info!(entities, "client quotas changed");
                    }
                    pb::AlterClientQuotasResponse {
                        errors: outcomes
                            .into_iter()
                            .map(|r| r.err().map(|e| e.to_string()).unwrap_or_default())
                            .collect(),
                    }
                });
                let _ = reply.send(result);
            }
        }
    }

    /// Checks the config against the topic, asks the store to admit a
    /// change from `origin` (it may refuse, or write the change where it
    /// keeps the topic's declared config), then commits it.
    async fn alter_topic_config(
        &mut self,
        name: &str,
        id: &str,
        config: BTreeMap<String, String>,
        validate_only: bool,
        origin: ConfigOrigin,
    ) -> Result<pb::AlterTopicConfigResponse, ServiceError> {
        let id = Some(id).filter(|id| !id.is_empty());
        let replication_factor = self
            .ctl
            .metadata()
            .topics
            .get(name)
            .filter(|t| id.is_none_or(|id| id == t.id))
            .map(|t| t.partitions.first().map_or(1, |p| p.replicas.len() as i32))
            .ok_or_else(|| ControllerError::UnknownTopic(name.to_owned()))?;
        super::validate::topic_config(&config, replication_factor)?;
        let plan = self.ctl.alter_topic_config(name, id, config.clone())?;
        if plan.is_empty() {
            return Ok(pb::AlterTopicConfigResponse {
                topic: self.topic(name),
                changed: false,
            });
        }
        if origin != ConfigOrigin::Resource {
            self.store
                .admit_topic_config(name, &config, origin, validate_only)
                .await
                .map_err(|e| match e {
                    StoreError::Refused(message) => ServiceError::PolicyViolation(message),
                    other => ServiceError::Store(other),
                })?;
        }
        if validate_only {
            return Ok(pb::AlterTopicConfigResponse {
                topic: self.topic(name),
                changed: false,
            });
        }
        self.commit(plan).await?;
        info!(topic = %name, ?origin, ?config, "topic config changed");
        Ok(pb::AlterTopicConfigResponse {
            topic: self.topic(name),
            changed: true,
        })
    }

    fn topic(&self, name: &str) -> Option<pb::TopicInfo> {
        self.ctl
            .metadata()
            .topics
            .get(name)
            .map(convert::topic_to_pb)
    }

    async fn register(
        &mut self,
        broker_id: BrokerId,
        log_dir_id: &str,
        endpoints: Endpoints,
        rack: Option<String>,
    ) -> Result<pb::RegisterResponse, ServiceError> {
        let now = self.now_ms();
        let new_disk = self
            .ctl
            .metadata()
            .brokers
            .get(&broker_id)
            .is_none_or(|b| b.log_dir_id != log_dir_id);
        let (plan, broker_epoch) = self
            .ctl
            .register(broker_id, log_dir_id, endpoints, rack, now)?;
        self.commit(plan).await?;
        if new_disk {
            // A broker with a new disk is a new broker (for example after a
            // scale-down and a scale-up): the balance may use it again.
            self.draining.remove(&broker_id);
        }
        Ok(pb::RegisterResponse {
            broker_epoch,
            controller_epoch: self.ctl.controller_epoch(),
            heartbeat_interval_ms: self.timing.heartbeat_interval_ms,
            session_timeout_ms: self.timing.session_timeout_ms,
        })
    }

    /// Serves `request` and every AlterPartition request queued behind it
    /// (waiting up to [`ALTER_PARTITION_LINGER`] for more) with one plan and
    /// one store write; see [`Controller::alter_partitions`]. Heartbeats
    /// met on the way are answered at once (they write nothing); any other
    /// command ends the batch and is returned, to be handled right after
    /// it, so commands keep their order.
    async fn alter_partitions(
        &mut self,
        request: pb::AlterPartitionRequest,
        reply: Reply<pb::AlterPartitionResponse>,
        commands: &mut mpsc::Receiver<Command>,
    ) -> Option<Command> {
        let mut batch = vec![(request, reply)];
        let linger_until = tokio::time::Instant::now() + ALTER_PARTITION_LINGER;
        let mut next = None;
        while batch.len() < MAX_ALTER_PARTITION_BATCH {
            let cmd = match commands.try_recv() {
                Ok(cmd) => cmd,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(linger_until, commands.recv()).await {
                        Ok(Some(cmd)) => cmd,
                        Ok(None) | Err(_) => break,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            };
            match cmd {
                Command::AlterPartition { request, reply } => batch.push((request, reply)),
                cmd @ Command::Heartbeat { .. } => self.handle(cmd).await,
                cmd => {
                    next = Some(cmd);
                    break;
                }
            }
        }
        self.commit_alter_partitions(batch).await;
        next
    }

    /// Plans the AlterPartition requests of `batch` as one, persists the
    /// plan, and only then answers each: with the partition as committed,
    /// or why it was refused (a persist failure fails every request that
    /// was accepted).
    async fn commit_alter_partitions(
        &mut self,
        batch: Vec<(pb::AlterPartitionRequest, Reply<pb::AlterPartitionResponse>)>,
    ) {
        let requests: Vec<IsrChange> = batch.iter().map(|(r, _)| isr_change(r)).collect();
        let (plan, outcomes) = self.ctl.alter_partitions(&requests);
        let changed = plan.changes.len();
        let committed = self.commit(plan).await;
        if batch.len() > 1 {
            debug!(
                requests = batch.len(),
                partitions = changed,
                "AlterPartition requests committed together"
            );
        }
        for ((r, reply), outcome) in batch.into_iter().zip(outcomes) {
            let result = match (outcome, &committed) {
                (Err(e), _) => Err(ServiceError::from(e)),
                (Ok(()), Err(e)) => Err(again(e)),
                (Ok(()), Ok(())) => Ok(pb::AlterPartitionResponse {
                    controller_epoch: self.ctl.controller_epoch(),
                    partition: self
                        .ctl
                        .metadata()
                        .topics
                        .get(&r.topic)
                        .and_then(|t| t.partitions.get(r.partition as usize))
                        .map(|p| convert::partition_to_pb(r.partition, p)),
                }),
            };
            let _ = reply.send(result);
        }
    }

    async fn controlled_shutdown(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: i64,
    ) -> Result<pb::ControlledShutdownResponse, ServiceError> {
        let (plan, remaining) = self.ctl.controlled_shutdown(broker_id, broker_epoch)?;
        self.commit(plan).await?;
        info!(
            broker = broker_id,
            remaining, "controlled shutdown: leaderships moved"
        );
        Ok(pb::ControlledShutdownResponse {
            controller_epoch: self.ctl.controller_epoch(),
            remaining_leaderships: u32::try_from(remaining).unwrap_or(u32::MAX),
        })
    }
}

/// The core's form of an AlterPartition request.
fn isr_change(r: &pb::AlterPartitionRequest) -> IsrChange {
    IsrChange {
        broker: r.broker_id,
        broker_epoch: r.broker_epoch,
        topic: r.topic.clone(),
        partition: r.partition,
        leader_epoch: r.leader_epoch,
        partition_epoch: r.partition_epoch,
        kind: if r.leader_offline {
            IsrChangeKind::ResignOffline
        } else {
            IsrChangeKind::SetIsr {
                isr: r.new_isr.clone(),
                joining_epochs: r
                    .new_isr_epochs
                    .iter()
                    .map(|e| (e.broker_id, e.broker_epoch))
                    .collect(),
            }
        },
    }
}

/// The failure of a commit shared by several requests, for one more of
/// them.
fn again(e: &ServiceError) -> ServiceError {
    match e {
        ServiceError::NotActive { ours, current } => ServiceError::NotActive {
            ours: *ours,
            current: *current,
        },
        ServiceError::ShuttingDown => ServiceError::ShuttingDown,
        ServiceError::Store(StoreError::Backend(message)) => {
            ServiceError::Store(StoreError::Backend(message.clone()))
        }
        ServiceError::Store(other) => ServiceError::Store(StoreError::Backend(other.to_string())),
        other => ServiceError::Store(StoreError::Backend(other.to_string())),
    }
}
