//! The broker's link to the metadata controller (cluster mode).
//!
//! - Registers this broker (id, data directory identity, endpoints, rack)
//!   and keeps its lease with heartbeats; a fenced incarnation registers
//!   again.
//! - Follows `WatchMetadata`: every update (ignored when it comes from an
//!   older controller epoch) is applied to the local replicas: partitions
//!   assigned here are opened, each gets its role (leader at the epoch,
//!   follower of the leader, or leaderless), followers are handed to the
//!   fetchers, and replicas or topics no longer assigned are deleted.
//!   Only what the update names is looked at ([`Touched`]): one leader
//!   change costs work for one partition, not for every partition here.
//! - Periodically asks the controller for ISR changes the leaders here
//!   propose (AlterPartition), all of one check at once.
//! - Forwards topic create/delete to the controller.
//! - On shutdown, asks the controller to move leadership away first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use rill_controller::client::{
    AlterPartition, ClientError, ClientOptions, ControllerClient, MetadataView, Registration, Retry,
};
use rill_controller::{ConfigOrigin, Endpoints, NO_LEADER, TopicState};
use rill_proto::controller as pb;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::fetcher::Fetchers;
use super::throttle::Throttle;
use super::touched::Touched;
use crate::partition::manager::{CreateTopic, ReplicaManager, TopicAdmin};
use crate::partition::{Error, IsrProposal};
use crate::quota::{QuotaAdmin, QuotaManager};
use crate::security::{AclAdmin, AclChanges, Authorizer};
use rill_proto::acl::{Acl, AclFilter};
use rill_proto::quota::QuotaAlteration;

/// How often leaders here check the partitions whose ISR may change
/// soon ([`crate::partition::isr_due`]).
const ISR_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// Longest time between two checks of every led partition (for shrinks,
/// which follow time alone). With a shorter `replica.lag.time.max.ms` the
/// walk runs every tenth of it, but not more often than the check above.
const ISR_WALK_MAX_INTERVAL: Duration = Duration::from_secs(1);
/// Most AlterPartition requests one ISR check keeps in flight.
const ISR_REQUESTS_IN_FLIGHT: usize = 128;
/// Wait before retrying the controller after a failure.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Longest a controlled shutdown waits for leadership to move.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// First and longest pause between attempts to reach and register with the
/// controller at start.
const START_RETRY_MIN: Duration = Duration::from_millis(100);
const START_RETRY_MAX: Duration = Duration::from_secs(2);

/// What one ISR check asks the controller for one partition led here.
enum IsrWork {
    /// Its replica here went offline: hand leadership over (at this
    /// leader epoch).
    Resign(i32),
    /// Change its ISR.
    Alter(IsrProposal),
}

/// What the cluster link needs from the configuration.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub broker_id: i32,
    pub controller_addrs: Vec<String>,
    /// Sent as the cluster routing header (see [`rill_controller::CLUSTER_HEADER`]).
    pub cluster: Option<String>,
    pub endpoints: Endpoints,
    pub rack: Option<String>,
    /// Followers not caught up for this long leave the ISR.
    pub replica_lag_time_max: Duration,
    /// Bytes per second replicas being added by a reassignment may fetch
    /// in total (0: unlimited).
    pub reassignment_throttle_bytes_per_sec: u64,
    /// Gets the ACLs the controller sends with the metadata.
    pub authorizer: Arc<Authorizer>,
    /// Mutual TLS towards the controller and other brokers' replication
    /// ports.
    pub internal_tls: Option<Arc<rill_process::tls::InternalTls>>,
    /// The name the controller's certificate carries, when not its host.
    pub controller_tls_server_name: Option<String>,
    /// Gets the client quotas the controller sends with the metadata.
    pub quotas: Arc<QuotaManager>,
}

/// Identity of this broker's data directory, created with it.
#[derive(Debug, Serialize, Deserialize)]
struct DataDirIdentity {
    log_dir_id: String,
}

/// Reads (or creates) the data directory's identity. A wiped disk gets a
/// new one, which tells the controller this broker holds no data.
pub fn log_dir_id(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("broker.json");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<DataDirIdentity>(&bytes)
            .map(|d| d.log_dir_id)
            .map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)?;
            let id = uuid::Uuid::new_v4().to_string();
            let body = serde_json::to_vec(&DataDirIdentity {
                log_dir_id: id.clone(),
            })
            .expect("serializes");
            crate::log::write_atomically(&path, &body)?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

/// The running link to the controller.
#[derive(Debug)]
pub struct ClusterLink {
    settings: ClusterSettings,
    client: ControllerClient,
    manager: Arc<ReplicaManager>,
    fetchers: Arc<Fetchers>,
    registration: Registration,
    /// Current incarnation epoch, shared with the fetchers (followers send
    /// it with every replica fetch).
    broker_epoch: Arc<AtomicI64>,
    view: Mutex<MetadataView>,
    /// What a metadata pass that failed part way did not finish: looked at
    /// again with the next update.
    retry: Mutex<Touched>,
    /// Set once a full snapshot was applied (the broker is then ready).
    synced: AtomicBool,
}

impl ClusterLink {
    /// Connects, registers and starts the heartbeat, metadata and ISR
    /// loops. Returns once registered.
    pub async fn start(
        settings: ClusterSettings,
        data_dir: &Path,
        manager: Arc<ReplicaManager>,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, Error> {
        let log_dir_id = log_dir_id(data_dir)
            .map_err(|e| Error::Controller(format!("data directory identity: {e}")))?;
        let options = ClientOptions {
            cluster: settings.cluster.clone(),
            tls: settings
                .internal_tls
                .as_ref()
                .map(|tls| tls.client(settings.controller_tls_server_name.as_deref())),
            ..ClientOptions::default()
        };
        // The controller may start after the brokers (on Kubernetes the
        // operator can be elected later than the pods start): wait for it.
        let mut backoff = START_RETRY_MIN;
        let client = loop {
            match ControllerClient::connect_with(settings.controller_addrs.clone(), options.clone())
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "waiting for the metadata controller");
                    tokio::select! {
                        () = stop.cancelled() => return Err(Error::Controller(format!("stopped while waiting for the controller: {e}"))),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(START_RETRY_MAX);
                }
            }
        };
        let registration = Registration {
            broker_id: settings.broker_id,
            log_dir_id,
            endpoints: settings.endpoints.clone(),
            rack: settings.rack.clone(),
        };
        let broker_epoch = Arc::new(AtomicI64::new(-1));
        let throttle = Arc::new(Throttle::new(
            settings.reassignment_throttle_bytes_per_sec,
            manager.metrics().replication_throttled_bytes.clone(),
        ));
        let fetchers = Fetchers::new(
            settings.broker_id,
            Arc::clone(&broker_epoch),
            Arc::clone(&manager),
            throttle,
            settings.internal_tls.clone(),
        );
        let link = Arc::new(Self {
            settings,
            client,
            manager: Arc::clone(&manager),
            fetchers,
            registration,
            broker_epoch,
            view: Mutex::new(MetadataView::default()),
            retry: Mutex::new(Touched::default()),
            synced: AtomicBool::new(false),
        });
        let mut backoff = START_RETRY_MIN;
        let interval = loop {
            match link.register().await {
                Ok(interval) => break interval,
                Err(e) => {
                    warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "registration refused; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return Err(e),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(START_RETRY_MAX);
                }
            }
        };
        manager.set_topic_admin(Arc::clone(&link) as Arc<dyn TopicAdmin>);
        tokio::spawn(Arc::clone(&link).heartbeat_loop(interval, stop.clone()));
        tokio::spawn(Arc::clone(&link).watch_loop(stop.clone()));
        tokio::spawn(Arc::clone(&link).isr_loop(stop));
        Ok(link)
    }

    /// Whether a full metadata snapshot has been applied.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    async fn register(&self) -> Result<Duration, Error> {
        let r = self
            .client
            .register(&self.registration)
            .await
            .map_err(|e| Error::Controller(e.to_string()))?;
        self.broker_epoch.store(r.broker_epoch, Ordering::Release);
        info!(
            broker = self.settings.broker_id,
            broker_epoch = r.broker_epoch,
            controller_epoch = r.controller_epoch,
            "registered with the controller"
        );
        Ok(r.heartbeat_interval)
    }

    async fn heartbeat_loop(self: Arc<Self>, mut interval: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let started = std::time::Instant::now();
            let result = self
                .client
                .heartbeat(self.settings.broker_id, self.broker_epoch())
                .await;
            let took = started.elapsed();
            self.manager
                .metrics()
                .controller_heartbeat_seconds
                .with_label_values(&[if result.is_ok() { "ok" } else { "error" }])
                .observe(took.as_secs_f64());
            if took > interval * 2 {
                warn!(
                    took_ms = took.as_millis() as u64,
                    interval_ms = interval.as_millis() as u64,
                    "a heartbeat to the controller was slow: the lease may expire"
                );
            }
            match result {
                Ok(reply) => interval = reply.heartbeat_interval,
                Err(e) if e.retry() == Retry::AfterRegister => {
                    warn!(error = %e, "this broker's lease was lost; registering again");
                    match self.register().await {
                        Ok(i) => interval = i,
                        Err(e) => warn!(error = %e, "registering again failed"),
                    }
                }
                Err(e) => warn!(error = %e, "heartbeat failed"),
            }
        }
    }

    async fn watch_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let stream = tokio::select! {
                () = stop.cancelled() => return,
                s = self.client.watch(self.settings.broker_id) => s,
            };
            let mut stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "cannot watch metadata; retrying");
                    tokio::time::sleep(RETRY_BACKOFF).await;
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    n = stream.next() => n,
                };
                match next {
                    Some(Ok(update)) => {
                        let view = {
                            let mut view = self.view.lock();
                            if !view.apply(&update) {
                                warn!(
                                    update_epoch = update.controller_epoch,
                                    current = view.controller_epoch,
                                    "ignoring metadata from a deposed controller"
                                );
                                continue;
                            }
                            view.clone()
                        };
                        if let Some(acls) = update.acls.clone() {
                            debug!(acls = acls.len(), "ACLs from the controller");
                            self.settings.authorizer.replace(acls);
                        }
                        if let Some(quotas) = update.client_quotas.clone() {
                            debug!(
                                entities = quotas.iter().count(),
                                "client quotas from the controller"
                            );
                            self.settings.quotas.replace(quotas);
                        }
                        let snapshot = update.snapshot;
                        let touched = Touched::of(&update);
                        let me = Arc::clone(&self);
                        let started = std::time::Instant::now();
                        let applied =
                            tokio::task::spawn_blocking(move || me.reconcile(view, touched)).await;
                        self.manager
                            .metrics()
                            .metadata_apply_seconds
                            .with_label_values(&[if snapshot { "snapshot" } else { "delta" }])
                            .observe(started.elapsed().as_secs_f64());
                        if let Ok(Err(e)) | Err(e) =
                            applied.map_err(|e| Error::Controller(e.to_string()))
                        {
                            warn!(error = %e, "applying metadata failed");
                        }
                        if snapshot {
                            self.synced.store(true, Ordering::Release);
                        }
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "metadata stream failed; watching again");
                        break;
                    }
                    None => break,
                }
            }
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }

    /// Opens the partitions `view` places here and gives each its role
    /// (leader, follower with a fetcher, or leaderless): those of the
    /// topics `touched` names, and of them the partitions it names. A
    /// topic that fails does not stop the others; the first error is
    /// returned.
    fn apply_roles(&self, view: &MetadataView, touched: &Touched) -> Result<(), Error> {
        let me = self.settings.broker_id;
        let mut first_error = None;
        for t in view.topics.values() {
            if !touched.topic(&t.name) {
                continue;
            }
            if let Err(e) = self.apply_topic_roles(view, t, touched) {
                warn!(topic = %t.name, broker = me, error = %e, "could not apply the topic's metadata");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn apply_topic_roles(
        &self,
        view: &MetadataView,
        t: &TopicState,
        touched: &Touched,
    ) -> Result<(), Error> {
        let me = self.settings.broker_id;
        let hosted: BTreeSet<i32> = t
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.replicas.contains(&me))
            .map(|(i, _)| i as i32)
            .collect();
        if hosted.is_empty() && !self.manager.local_topics().contains(&t.name) {
            return Ok(());
        }
        let partitions = self.manager.host(
            &t.name,
            &t.id,
            t.partitions.len() as i32,
            &hosted,
            &t.config,
        )?;
        for p in partitions {
            let state = &t.partitions[p.id as usize];
            if !touched.partition(&t.name, p.id, state.leader) {
                continue;
            }
            if state.leader == me {
                self.fetchers.unfollow(&t.name, p.id);
                p.become_leader(
                    me,
                    state.leader_epoch,
                    state.partition_epoch,
                    state.replicas.clone(),
                    state.isr.clone(),
                )?;
            } else if state.leader == NO_LEADER {
                self.fetchers.unfollow(&t.name, p.id);
                p.become_leaderless(state.leader_epoch);
            } else {
                p.become_follower(state.leader, state.leader_epoch);
                match view.brokers.get(&state.leader) {
                    Some(b) => self.fetchers.follow(
                        state.leader,
                        &b.endpoints.replication,
                        &t.name,
                        p.id,
                        state.adding.contains(&me) && !state.isr.contains(&me),
                    ),
                    None => {
                        warn!(topic = %t.name, partition = p.id, leader = state.leader, "leader is not a known broker")
                    }
                }
            }
        }
        Ok(())
    }

    /// Makes the local replicas match the metadata, giving roles again
    /// to what `touched` names (and to what an earlier failed pass
    /// named). Blocking (opens logs).
    fn reconcile(&self, view: MetadataView, mut touched: Touched) -> Result<(), Error> {
        touched.merge(std::mem::take(&mut *self.retry.lock()));
        let applied = self.apply_roles(&view, &touched);
        if applied.is_err() {
            *self.retry.lock() = touched;
        }
        let gone: Vec<String> = self
            .manager
            .local_topics()
            .into_iter()
            .filter(|name| !view.topics.contains_key(name))
            .collect();
        // Only now do Metadata answers show the new state: a broker never
        // names itself leader of a partition it does not serve yet (a
        // client sent here would get NOT_LEADER naming this same broker).
        self.manager.set_cluster_view(view);
        // Roles are applied: services that follow leadership re-check.
        self.manager.roles_changed();
        for name in gone {
            self.manager.drop_local_topic(&name);
        }
        applied
    }

    async fn isr_loop(self: Arc<Self>, stop: CancellationToken) {
        let walk_every = (self.settings.replica_lag_time_max / 10)
            .clamp(ISR_CHECK_INTERVAL, ISR_WALK_MAX_INTERVAL);
        let mut walked = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(ISR_CHECK_INTERVAL) => {}
            }
            // The partitions an event marked; every partition now and then,
            // for followers that stopped fetching.
            let due = self.manager.isr_due().take();
            let partitions = if walked.elapsed() >= walk_every {
                walked = tokio::time::Instant::now();
                self.manager.all_partitions()
            } else {
                due.iter()
                    .filter_map(|(topic, id)| self.manager.partition(topic, *id).ok())
                    .collect()
            };
            // Every change one check finds is asked for at once (a bounded
            // number in flight), not one after the other: the controller
            // commits AlterPartition requests that arrive together with one
            // store write, so the ISR changes of many partitions (a broker
            // failed or came back) cost a few writes, not one per partition.
            let mut work = Vec::new();
            for p in partitions {
                p.isr_check_started();
                if let Some(leader_epoch) = p.offline_leadership() {
                    work.push((p, IsrWork::Resign(leader_epoch)));
                } else if let Some(proposal) = p.propose_isr(self.settings.replica_lag_time_max) {
                    work.push((p, IsrWork::Alter(proposal)));
                }
            }
            futures::stream::iter(work)
                .for_each_concurrent(ISR_REQUESTS_IN_FLIGHT, |(p, w)| {
                    let link = &self;
                    async move {
                        match w {
                            IsrWork::Resign(leader_epoch) => link.resign(&p, leader_epoch).await,
                            IsrWork::Alter(proposal) => link.alter_isr(&p, proposal).await,
                        }
                    }
                })
                .await;
        }
    }

    /// Asks the controller for the ISR change a leader here proposes.
    async fn alter_isr(&self, p: &crate::partition::Partition, proposal: IsrProposal) {
        let IsrProposal {
            leader_epoch,
            partition_epoch,
            isr: new_isr,
            joining_epochs,
        } = proposal;
        let request = AlterPartition {
            broker_id: self.settings.broker_id,
            broker_epoch: self.broker_epoch(),
            topic: p.topic.to_string(),
            partition: p.id,
            leader_epoch,
            partition_epoch,
            new_isr: new_isr.clone(),
            new_isr_epochs: joining_epochs,
            leader_offline: false,
        };
        match self.client.alter_partition(&request).await {
            Ok(done) => p.isr_change_done(
                leader_epoch,
                Some((
                    done.state.partition_epoch,
                    done.state.replicas,
                    done.state.isr,
                )),
            ),
            Err(e) => {
                info!(topic = %p.topic, partition = p.id, ?new_isr, error = %e, "ISR change refused");
                if e.reason() == Some("INVALID_ISR") {
                    p.isr_change_refused(leader_epoch);
                } else {
                    p.isr_change_done(leader_epoch, None);
                }
            }
        }
    }

    /// Asks the controller to move the leadership of a partition whose
    /// replica here went offline to another in-sync replica.
    async fn resign(&self, p: &crate::partition::Partition, leader_epoch: i32) {
        let request = AlterPartition {
            broker_id: self.settings.broker_id,
            broker_epoch: self.broker_epoch(),
            topic: p.topic.to_string(),
            partition: p.id,
            leader_epoch,
            partition_epoch: -1,
            new_isr: vec![],
            new_isr_epochs: vec![],
            leader_offline: true,
        };
        match self.client.alter_partition(&request).await {
            Ok(done) => {
                warn!(topic = %p.topic, partition = p.id, leader = done.state.leader, "replica offline: leadership handed over");
            }
            // Retried at the next ISR check; the fsync failure itself was
            // logged as an error when it happened.
            Err(e) => {
                debug!(topic = %p.topic, partition = p.id, error = %e, "replica offline: leadership could not be handed over");
                p.want_isr_check();
            }
        }
    }

    /// Asks the controller to move leadership away before this broker
    /// stops; bounded by `CONTROLLED_SHUTDOWN_TIMEOUT`.
    pub async fn controlled_shutdown(&self) {
        let deadline = tokio::time::Instant::now() + CONTROLLED_SHUTDOWN_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            match self
                .client
                .controlled_shutdown(self.settings.broker_id, self.broker_epoch())
                .await
            {
                Ok(r) if r.remaining_leaderships == 0 => {
                    info!("controlled shutdown: no partition is led here any more");
                    break;
                }
                Ok(r) => info!(
                    remaining = r.remaining_leaderships,
                    "controlled shutdown: waiting for leadership to move"
                ),
                Err(e) => {
                    warn!(error = %e, "controlled shutdown failed; stopping anyway");
                    break;
                }
            }
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
        self.fetchers.stop_all();
    }
}

fn admin_error(e: ClientError) -> Error {
    match e {
        ClientError::AlreadyExists { message, .. } => Error::TopicExists(message),
        ClientError::NotFound { message, .. } => Error::UnknownTopic(message),
        ClientError::Invalid { reason, message } if reason == "PLACEMENT" => {
            Error::Placement(message)
        }
        ClientError::Invalid { message, .. } => Error::InvalidRequest(message),
        other => Error::Controller(other.to_string()),
    }
}

#[tonic::async_trait]
impl AclAdmin for ClusterLink {
    /// CreateAcls and DeleteAcls go to the controller, which sends every
    /// broker the new set in the metadata stream.
    async fn alter(
        &self,
        creations: Vec<Acl>,
        deletions: Vec<AclFilter>,
    ) -> Result<AclChanges, String> {
        let changes = self
            .client
            .alter_acls(&creations, &deletions)
            .await
            .map_err(|e| e.to_string())?;
        Ok(AclChanges {
            created: changes.created,
            deleted: changes.deleted,
        })
    }
}

#[tonic::async_trait]
impl QuotaAdmin for ClusterLink {
    /// AlterClientQuotas goes to the controller, which sends every broker
    /// the new set in the metadata stream.
    async fn alter(
        &self,
        alterations: Vec<QuotaAlteration>,
    ) -> Result<Vec<Result<(), String>>, String> {
        self.client
            .alter_client_quotas(&alterations)
            .await
            .map_err(|e| e.to_string())
    }
}

#[tonic::async_trait]
impl TopicAdmin for ClusterLink {
    /// `request.replication_factor` is already resolved: the manager
    /// replaces 0 and -1 with the broker's `--default-replication-factor`.
    async fn create(&self, request: CreateTopic) -> Result<(), Error> {
        let rf = request.replication_factor;
        self.client
            .create_topic(
                &request.name,
                request.partitions,
                rf,
                request.config.into_iter().collect::<BTreeMap<_, _>>(),
            )
            .await
            .map(|_| ())
            .map_err(admin_error)
    }

    async fn delete(&self, name: &str, id: Option<&str>) -> Result<(), Error> {
        self.client
            .delete_topic_with_id(name, id)
            .await
            .map_err(admin_error)
    }

    async fn create_partitions(&self, name: &str, total: i32) -> Result<(), Error> {
        self.client
            .create_partitions(name, total)
            .await
            .map(|_| ())
            .map_err(admin_error)
    }

    async fn alter_config(
        &self,
        name: &str,
        config: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), Error> {
        self.client
            .alter_topic_config(name, config, validate_only, ConfigOrigin::Kafka)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                ClientError::Invalid { reason, message } if reason == "INVALID_CONFIG" => {
                    Error::ConfigRefused(message)
                }
                ClientError::Refused { message, .. } => Error::PolicyViolation(message),
                other => admin_error(other),
            })
    }

    async fn alter_reassignments(
        &self,
        reassignments: Vec<pb::Reassignment>,
    ) -> Result<Vec<pb::PartitionResult>, Error> {
        self.client
            .alter_reassignments(reassignments)
            .await
            .map_err(admin_error)
    }

    async fn list_reassignments(
        &self,
        partitions: Vec<pb::TopicPartition>,
    ) -> Result<Vec<pb::OngoingReassignment>, Error> {
        self.client
            .list_reassignments(partitions)
            .await
            .map_err(admin_error)
    }

    async fn elect_preferred_leaders(
        &self,
        partitions: Vec<pb::TopicPartition>,
    ) -> Result<Vec<pb::PartitionResult>, Error> {
        self.client
            .elect_preferred_leaders(partitions)
            .await
            .map_err(admin_error)
    }
}
