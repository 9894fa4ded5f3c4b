//! The controller state machine: registrations and leases, fencing,
//! leader election from the ISR, AlterPartition checks, controlled
//! shutdown, topic creation and preferred-leader rebalance.
//!
//! Every operation works on a copy of the metadata and returns a [`Plan`]:
//! the durable [`Change`]s (computed as a diff, so partition epochs are
//! bumped exactly once per changed partition) plus liveness updates, which
//! are not durable. [`Controller::apply`] installs a plan after the caller
//! has persisted its changes.

use std::collections::{BTreeMap, BTreeSet};

use rill_proto::acl::{Acl, AclFilter};
use rill_proto::quota::{QuotaAlteration, QuotaError};
use thiserror::Error;
use tracing::info;

use crate::election::{
    bump_partition_epochs, elect, elect_leaderless, finish_move, finish_moves, new_partition,
    remove_broker, set_leader, start_move,
};
use crate::placement::{self, PlacementError, Placer};
use crate::state::{
    BrokerId, BrokerRegistration, Change, ClusterMetadata, Endpoints, PartitionState, TopicState,
    new_topic_id,
};

/// Controller settings.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// A broker that has not heartbeated for this long is fenced.
    pub session_timeout_ms: u64,
    /// Whether replicas and preferred leaders are moved onto under-loaded
    /// brokers (after a scale-up) when nothing else is moving.
    pub auto_balance: bool,
    /// How often the balance is checked, in ms; also how long after
    /// taking over the first check waits (brokers register again first).
    pub balance_interval_ms: u64,
    /// Most partitions the balance moves at a time.
    pub balance_batch: usize,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            session_timeout_ms: 1500,
            auto_balance: true,
            balance_interval_ms: 10_000,
            balance_batch: 4,
        }
    }
}

/// Whether a broker may hold leadership and ISR membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Heartbeating: can lead and join ISRs.
    Active,
    /// Asked to stop: leaderships are moved away, it joins no ISR.
    ShuttingDown,
    /// Lease expired, or never registered with this controller: leads
    /// nothing, joins no ISR, must register again.
    Fenced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Session {
    epoch: i64,
    expires_at_ms: u64,
    liveness: Liveness,
    /// This controller has heard from the incarnation (it registered or
    /// heartbeated here). After a takeover every known broker starts
    /// Active but unheard.
    heard: bool,
}

/// Why a request was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ControllerError {
    #[error("broker {0} is not registered")]
    UnknownBroker(BrokerId),
    #[error("broker {broker} sent epoch {got} but its current epoch is {current}: register again")]
    StaleBrokerEpoch {
        broker: BrokerId,
        got: i64,
        current: i64,
    },
    #[error("broker {0} is fenced (lease expired): register again")]
    Fenced(BrokerId),
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("unknown partition {topic}-{partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("broker {broker} is not the leader of {topic}-{partition} (leader is {leader})")]
    NotLeader {
        broker: BrokerId,
        topic: String,
        partition: i32,
        leader: BrokerId,
    },
    #[error("stale leader epoch {got} for {topic}-{partition} (current {current})")]
    FencedLeaderEpoch {
        topic: String,
        partition: i32,
        got: i32,
        current: i32,
    },
    #[error("stale partition epoch {got} for {topic}-{partition} (current {current})")]
    InvalidUpdateVersion {
        topic: String,
        partition: i32,
        got: i32,
        current: i32,
    },
    #[error("invalid ISR {isr:?} for {topic}-{partition}: {reason}")]
    InvalidIsr {
        topic: String,
        partition: i32,
        isr: Vec<BrokerId>,
        reason: String,
    },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error("invalid replica assignment {replicas:?} for {topic}-{partition}: {reason}")]
    InvalidAssignment {
        topic: String,
        partition: i32,
        replicas: Vec<BrokerId>,
        reason: String,
    },
    #[error("no reassignment in progress for {topic}-{partition}")]
    NoReassignment { topic: String, partition: i32 },
    #[error("{topic}-{partition} is already led by its preferred replica {leader}")]
    ElectionNotNeeded {
        topic: String,
        partition: i32,
        leader: BrokerId,
    },
    #[error(
        "preferred replica {preferred} of {topic}-{partition} cannot lead: it is not in the ISR {isr:?} or not alive"
    )]
    PreferredLeaderNotAvailable {
        topic: String,
        partition: i32,
        preferred: BrokerId,
        isr: Vec<BrokerId>,
    },
}

impl ControllerError {
    /// Short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::UnknownBroker(_) => "unknown_broker",
            Self::StaleBrokerEpoch { .. } => "stale_broker_epoch",
            Self::Fenced(_) => "fenced",
            Self::UnknownTopic(_) => "unknown_topic",
            Self::UnknownPartition { .. } => "unknown_partition",
            Self::TopicExists(_) => "topic_exists",
            Self::NotLeader { .. } => "not_leader",
            Self::FencedLeaderEpoch { .. } => "fenced_leader_epoch",
            Self::InvalidUpdateVersion { .. } => "invalid_update_version",
            Self::InvalidIsr { .. } => "invalid_isr",
            Self::Invalid(_) => "invalid",
            Self::Placement(_) => "placement",
            Self::InvalidAssignment { .. } => "invalid_assignment",
            Self::NoReassignment { .. } => "no_reassignment",
            Self::ElectionNotNeeded { .. } => "election_not_needed",
            Self::PreferredLeaderNotAvailable { .. } => "preferred_leader_not_available",
        }
    }
}

/// The outcome of an operation: durable changes to persist first, then
/// liveness updates to make with them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    sessions: Vec<(BrokerId, Option<Session>)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.sessions.is_empty()
    }
}

/// The metadata controller.
#[derive(Debug)]
pub struct Controller {
    config: ControllerConfig,
    /// The durable state, as last persisted.
    meta: ClusterMetadata,
    /// Leases of broker incarnations; in memory only. After a controller
    /// takeover every known broker gets one session timeout of grace.
    sessions: BTreeMap<BrokerId, Session>,
}

impl Controller {
    /// Starts from persisted metadata at time `now_ms`.
    pub fn new(config: ControllerConfig, meta: ClusterMetadata, now_ms: u64) -> Self {
        let sessions = meta
            .brokers
            .values()
            .map(|b| {
                (
                    b.id,
                    Session {
                        epoch: b.epoch,
                        expires_at_ms: now_ms + config.session_timeout_ms,
                        liveness: Liveness::Active,
                        heard: false,
                    },
                )
            })
            .collect();
        Self {
            config,
            meta,
            sessions,
        }
    }

    pub fn metadata(&self) -> &ClusterMetadata {
        &self.meta
    }

    pub fn controller_epoch(&self) -> i64 {
        self.meta.controller_epoch
    }

    pub fn liveness(&self, broker: BrokerId) -> Liveness {
        self.sessions
            .get(&broker)
            .map_or(Liveness::Fenced, |s| s.liveness)
    }

    /// Installs a plan whose changes have been persisted; returns the
    /// changes to broadcast.
    pub fn apply(&mut self, plan: Plan) -> Vec<Change> {
        for change in &plan.changes {
            self.meta.apply(change);
        }
        for (id, session) in plan.sessions {
            match session {
                Some(s) => self.sessions.insert(id, s),
                None => self.sessions.remove(&id),
            };
        }
        plan.changes
    }

    /// Brokers whose [`Liveness`] `plan` changes, with their liveness after
    /// it. Liveness is not durable (it is not in `plan.changes`), but
    /// brokers watching metadata must still learn it; call this before
    /// [`Controller::apply`].
    pub fn liveness_changes(&self, plan: &Plan) -> Vec<(BrokerId, Liveness)> {
        let mut out: Vec<(BrokerId, Liveness)> = Vec::new();
        for (id, session) in &plan.sessions {
            let after = session.map_or(Liveness::Fenced, |s| s.liveness);
            if self.liveness(*id) != after {
                out.retain(|(b, _)| b != id);
                out.push((*id, after));
            }
        }
        out
    }

    /// Every registered broker with its current liveness, by id.
    pub fn brokers_liveness(&self) -> impl Iterator<Item = (&BrokerRegistration, Liveness)> {
        self.meta.brokers.values().map(|b| (b, self.liveness(b.id)))
    }

    /// Settings this controller runs with.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    fn usable(&self, sessions: &BTreeMap<BrokerId, Session>, id: BrokerId) -> bool {
        sessions
            .get(&id)
            .is_some_and(|s| s.liveness == Liveness::Active)
    }

    fn session(&self, broker: BrokerId, epoch: i64) -> Result<&Session, ControllerError> {
        let reg = self
            .meta
            .brokers
            .get(&broker)
            .ok_or(ControllerError::UnknownBroker(broker))?;
        if reg.epoch != epoch {
            return Err(ControllerError::StaleBrokerEpoch {
                broker,
                got: epoch,
                current: reg.epoch,
            });
        }
        match self.sessions.get(&broker) {
            Some(s) if s.epoch == epoch && s.liveness != Liveness::Fenced => Ok(s),
            _ => Err(ControllerError::Fenced(broker)),
        }
    }

    /// Builds a plan: `f` edits a copy of the metadata given the sessions
    /// as they will be after the plan.
    fn plan(
        &self,
        sessions: Vec<(BrokerId, Option<Session>)>,
        f: impl FnOnce(&mut ClusterMetadata, &dyn Fn(BrokerId) -> bool),
    ) -> Plan {
        let mut after = self.sessions.clone();
        for (id, s) in &sessions {
            match s {
                Some(s) => after.insert(*id, *s),
                None => after.remove(id),
            };
        }
        let usable = |id| self.usable(&after, id);
        let mut next = self.meta.clone();
        f(&mut next, &usable);
        finish_moves(&mut next, &usable);
        bump_partition_epochs(&self.meta, &mut next);
        Plan {
            changes: self.meta.diff(&next),
            sessions,
        }
    }

    /// A broker (re)registers: a new incarnation with a higher epoch. The
    /// previous incarnation is treated as failed: its leaderships move to
    /// other in-sync replicas and it leaves the ISRs it shares. With a new
    /// `log_dir_id` (wiped disk) it leaves every ISR, even as the last
    /// member. Partitions left without a leader whose ISR holds the new
    /// incarnation elect it.
    pub fn register(
        &self,
        id: BrokerId,
        log_dir_id: &str,
        endpoints: Endpoints,
        rack: Option<String>,
        now_ms: u64,
    ) -> Result<(Plan, i64), ControllerError> {
        if id < 0 {
            return Err(ControllerError::Invalid(format!(
                "broker id {id} must be >= 0"
            )));
        }
        if log_dir_id.is_empty() {
            return Err(ControllerError::Invalid("empty log dir id".into()));
        }
        let epoch = self
            .meta
            .brokers
            .values()
            .map(|b| b.epoch)
            .max()
            .unwrap_or(0)
            + 1;
        let wiped = self
            .meta
            .brokers
            .get(&id)
            .is_some_and(|b| b.log_dir_id != log_dir_id);
        let reg = BrokerRegistration {
            id,
            epoch,
            log_dir_id: log_dir_id.to_owned(),
            endpoints,
            rack,
        };
        let session = Session {
            epoch,
            expires_at_ms: now_ms + self.config.session_timeout_ms,
            liveness: Liveness::Active,
            heard: true,
        };
        let plan = self.plan(vec![(id, Some(session))], |meta, usable| {
            meta.brokers.insert(id, reg);
            // The old incarnation fails over first (it must not be chosen
            // again), then leaderless partitions may elect the new one.
            let others = |b: BrokerId| b != id && usable(b);
            remove_broker(meta, id, wiped, &others);
            elect_leaderless(meta, usable);
        });
        info!(broker = id, epoch, wiped, "broker registered");
        Ok((plan, epoch))
    }

    /// Renews a broker's lease. Refused for an older incarnation or a
    /// fenced one (it must register again).
    pub fn heartbeat(
        &mut self,
        id: BrokerId,
        epoch: i64,
        now_ms: u64,
    ) -> Result<Liveness, ControllerError> {
        let timeout = self.config.session_timeout_ms;
        self.session(id, epoch)?;
        let s = self.sessions.get_mut(&id).expect("checked");
        s.expires_at_ms = now_ms + timeout;
        s.heard = true;
        Ok(s.liveness)
    }

    /// Moves every lease not fenced that ends before `until_ms` to
    /// `until_ms`; returns how many moved. For after this controller did
    /// not run for a while (see the service's late lease check).
    pub fn extend_leases(&mut self, until_ms: u64) -> usize {
        let mut moved = 0;
        for s in self.sessions.values_mut() {
            if s.liveness != Liveness::Fenced && s.expires_at_ms < until_ms {
                s.expires_at_ms = until_ms;
                moved += 1;
            }
        }
        moved
    }

    /// Whether this controller has heard from `id`'s current incarnation
    /// (a registration or a heartbeat since it took over).
    pub fn heard_from(&self, id: BrokerId) -> bool {
        self.sessions.get(&id).is_some_and(|s| s.heard)
    }

    /// Elects a leader for every partition without one, among replicas
    /// this controller has heard from and that are active. Partitions are
    /// left leaderless when every replica of their ISR was fenced; a
    /// fenced broker registers again and its registration elects it. But
    /// a controller that took over loads the leaderless partitions its
    /// predecessor left, and a broker that predecessor fenced without
    /// telling it heartbeats here as an active incarnation and never
    /// registers again: its first heartbeat is the proof of life that
    /// lets it lead.
    pub fn elect_leaderless_heard(&self) -> Plan {
        self.plan(Vec::new(), |meta, usable| {
            elect_leaderless(meta, &|b| usable(b) && self.heard_from(b));
        })
    }

    /// Fences brokers whose lease expired: their leaderships move to other
    /// in-sync replicas and they leave every ISR where they are not the
    /// last member.
    pub fn tick(&self, now_ms: u64) -> Plan {
        let expired: Vec<(BrokerId, Session)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.liveness != Liveness::Fenced && s.expires_at_ms <= now_ms)
            .map(|(id, s)| {
                (
                    *id,
                    Session {
                        liveness: Liveness::Fenced,
                        ..*s
                    },
                )
            })
            .collect();
        if expired.is_empty() {
            return Plan::default();
        }
        for (id, _) in &expired {
            info!(broker = id, "broker lease expired: fencing");
        }
        let ids: Vec<BrokerId> = expired.iter().map(|(id, _)| *id).collect();
        self.plan(
            expired.into_iter().map(|(id, s)| (id, Some(s))).collect(),
            |meta, usable| {
                for id in ids {
                    remove_broker(meta, id, false, usable);
                }
            },
        )
    }

    /// A leader asks to change its partition's ISR. It must be the current
    /// leader, name the current leader and partition epochs, keep itself in
    /// the ISR, and add only active replicas, each with the broker epoch of
    /// its current incarnation (`joining_epochs`, KIP-903: the leader saw
    /// that incarnation's fetches, not an earlier one's).
    #[allow(clippy::too_many_arguments)]
    pub fn alter_partition(
        &self,
        broker: BrokerId,
        broker_epoch: i64,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: &[BrokerId],
        joining_epochs: &[(BrokerId, i64)],
    ) -> Result<Plan, ControllerError> {
        self.alter_one(IsrChange {
            broker,
            broker_epoch,
            topic: topic.to_owned(),
            partition,
            leader_epoch,
            partition_epoch,
            kind: IsrChangeKind::SetIsr {
                isr: new_isr.to_vec(),
                joining_epochs: joining_epochs.to_vec(),
            },
        })
    }

    /// The leader's replica of a partition went offline (a storage error):
    /// another usable ISR member leads, and the broker leaves the ISR.
    /// Refused when there is none; the partition then stays with its
    /// offline leader, as in Kafka, until the broker is restarted.
    pub fn resign_offline_leader(
        &self,
        broker: BrokerId,
        broker_epoch: i64,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
    ) -> Result<Plan, ControllerError> {
        self.alter_one(IsrChange {
            broker,
            broker_epoch,
            topic: topic.to_owned(),
            partition,
            leader_epoch,
            partition_epoch: -1,
            kind: IsrChangeKind::ResignOffline,
        })
    }

    fn alter_one(&self, request: IsrChange) -> Result<Plan, ControllerError> {
        let (plan, mut outcomes) = self.alter_partitions(std::slice::from_ref(&request));
        outcomes.pop().expect("one outcome per request")?;
        Ok(plan)
    }

    /// Plans several AlterPartition requests (ISR changes and offline
    /// leaders resigning) as one: each request is checked against the
    /// state the requests before it leave, exactly as if each had been
    /// planned, persisted and applied in turn, so a second change of the
    /// same partition naming the partition epoch the first one replaced
    /// is refused. Returns one plan, holding one change per changed
    /// partition however many requests changed it, and each request's
    /// outcome; a refused request changes nothing. This is how a burst of
    /// AlterPartition requests (leaders shrinking or growing their ISRs
    /// after a broker fails or comes back) costs one store write instead
    /// of one per partition.
    pub fn alter_partitions(
        &self,
        requests: &[IsrChange],
    ) -> (Plan, Vec<Result<(), ControllerError>>) {
        let usable = |id: BrokerId| self.usable(&self.sessions, id);
        // Changed partitions, in topic and partition order like a diff.
        let mut staged: BTreeMap<(String, i32), PartitionState> = BTreeMap::new();
        let outcomes = requests
            .iter()
            .map(|r| {
                self.session(r.broker, r.broker_epoch)?;
                let key = (r.topic.clone(), r.partition);
                let current = match staged.get(&key) {
                    Some(p) => p,
                    None => self.partition(&r.topic, r.partition)?,
                };
                let next = self.isr_change(r, current, &usable)?;
                if &next != current {
                    staged.insert(key, next);
                }
                Ok(())
            })
            .collect();
        // A change may let other partitions' moves finish (a plan over
        // the whole metadata does the same): include those too.
        for (name, t) in &self.meta.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                let key = (name.clone(), i as i32);
                if !p.moving() || staged.contains_key(&key) {
                    continue;
                }
                let mut next = p.clone();
                finish_move(&mut next, &usable);
                if &next != p {
                    next.partition_epoch = p.partition_epoch + 1;
                    staged.insert(key, next);
                }
            }
        }
        let changes = staged
            .into_iter()
            .map(|((topic, partition), state)| Change::Partition {
                topic,
                partition,
                state,
            })
            .collect();
        (
            Plan {
                changes,
                sessions: Vec::new(),
            },
            outcomes,
        )
    }

    /// The state `r` leaves partition `p` in (`p` itself when it changes
    /// nothing), its partition epoch bumped once if anything changed.
    fn isr_change(
        &self,
        r: &IsrChange,
        p: &PartitionState,
        usable: &dyn Fn(BrokerId) -> bool,
    ) -> Result<PartitionState, ControllerError> {
        let (broker, topic, partition) = (r.broker, r.topic.as_str(), r.partition);
        self.check_leader(
            r.broker,
            r.broker_epoch,
            topic,
            partition,
            r.leader_epoch,
            p,
        )?;
        let mut next = p.clone();
        match &r.kind {
            IsrChangeKind::ResignOffline => {
                if !p.isr.iter().any(|m| *m != broker && usable(*m)) {
                    return Err(ControllerError::InvalidIsr {
                        topic: topic.to_owned(),
                        partition,
                        isr: p.isr.clone(),
                        reason: format!(
                            "broker {broker} is offline for it and no other in-sync replica can lead"
                        ),
                    });
                }
                next.isr.retain(|m| *m != broker);
                elect(&mut next, false, &|m| m != broker && usable(m));
            }
            IsrChangeKind::SetIsr {
                isr: new_isr,
                joining_epochs,
            } => {
                next.isr = self.checked_isr(r, p, new_isr, joining_epochs)?;
            }
        }
        finish_move(&mut next, usable);
        if &next != p {
            next.partition_epoch = p.partition_epoch + 1;
        }
        Ok(next)
    }

    /// The new ISR of an ISR change, in replica order (so the preferred
    /// leader comes first), once checked.
    fn checked_isr(
        &self,
        r: &IsrChange,
        p: &PartitionState,
        new_isr: &[BrokerId],
        joining_epochs: &[(BrokerId, i64)],
    ) -> Result<Vec<BrokerId>, ControllerError> {
        let (broker, topic, partition) = (r.broker, r.topic.as_str(), r.partition);
        let err_isr = |reason: &str| ControllerError::InvalidIsr {
            topic: topic.to_owned(),
            partition,
            isr: new_isr.to_vec(),
            reason: reason.to_owned(),
        };
        if r.partition_epoch != p.partition_epoch {
            return Err(ControllerError::InvalidUpdateVersion {
                topic: topic.to_owned(),
                partition,
                got: r.partition_epoch,
                current: p.partition_epoch,
            });
        }
        let set: BTreeSet<BrokerId> = new_isr.iter().copied().collect();
        if set.len() != new_isr.len() {
            return Err(err_isr("duplicate members"));
        }
        if !set.contains(&broker) {
            return Err(err_isr("the leader must stay in the ISR"));
        }
        if let Some(m) = set.iter().find(|m| !p.replicas.contains(m)) {
            return Err(err_isr(&format!("broker {m} is not a replica")));
        }
        for m in set.iter().filter(|m| !p.isr.contains(m)) {
            if !self.usable(&self.sessions, *m) {
                return Err(err_isr(&format!("broker {m} is fenced or shutting down")));
            }
            let current = self.meta.brokers.get(m).map_or(-1, |b| b.epoch);
            let seen = joining_epochs
                .iter()
                .find(|(id, _)| id == m)
                .map(|(_, e)| *e);
            if seen != Some(current) {
                return Err(err_isr(&format!(
                    "broker {m} joins with broker epoch {} but its current incarnation has epoch {current}: the leader's view of it is from an earlier incarnation",
                    seen.map_or_else(|| "(none)".to_owned(), |e| e.to_string())
                )));
            }
        }
        Ok(p.replicas
            .iter()
            .copied()
            .filter(|m| set.contains(m))
            .collect())
    }

    /// Whether `broker` (in its current session) leads `p` at
    /// `leader_epoch`: what a leader's request must prove.
    fn check_leader(
        &self,
        broker: BrokerId,
        broker_epoch: i64,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
        p: &PartitionState,
    ) -> Result<(), ControllerError> {
        self.session(broker, broker_epoch)?;
        if p.leader != broker {
            return Err(ControllerError::NotLeader {
                broker,
                topic: topic.to_owned(),
                partition,
                leader: p.leader,
            });
        }
        if leader_epoch != p.leader_epoch {
            return Err(ControllerError::FencedLeaderEpoch {
                topic: topic.to_owned(),
                partition,
                got: leader_epoch,
                current: p.leader_epoch,
            });
        }
        Ok(())
    }

    /// A broker is stopping: it leads nothing it can hand over and leaves
    /// ISRs where it is not the last member. Returns the plan and how many
    /// partitions it still leads (no other in-sync replica to take them).
    pub fn controlled_shutdown(
        &self,
        broker: BrokerId,
        epoch: i64,
    ) -> Result<(Plan, usize), ControllerError> {
        let s = *self.session(broker, epoch)?;
        let plan = self.plan(
            vec![(
                broker,
                Some(Session {
                    liveness: Liveness::ShuttingDown,
                    ..s
                }),
            )],
            |meta, usable| remove_broker(meta, broker, false, usable),
        );
        let mut next = self.meta.clone();
        for c in &plan.changes {
            next.apply(c);
        }
        let still_leading = next
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.leader == broker)
            .count();
        Ok((plan, still_leading))
    }

    /// Creates a topic, placing replicas on active brokers. Each partition
    /// starts with every replica in sync (all logs are empty) and its
    /// preferred replica leading.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        config: BTreeMap<String, String>,
    ) -> Result<Plan, ControllerError> {
        if self.meta.topics.contains_key(name) {
            return Err(ControllerError::TopicExists(name.to_owned()));
        }
        if partitions < 1 {
            return Err(ControllerError::Invalid(format!(
                "partitions must be >= 1, got {partitions}"
            )));
        }
        let replicas = placement::place(
            &self.meta,
            &self.active_brokers(),
            partitions as usize,
            usize::try_from(replication_factor).unwrap_or(0),
        )?;
        let topic = TopicState {
            name: name.to_owned(),
            id: new_topic_id(),
            partitions: replicas.into_iter().map(new_partition).collect(),
            config,
        };
        Ok(self.plan(vec![], move |meta, _| {
            meta.topics.insert(topic.name.clone(), topic);
        }))
    }

    /// Gives every topic without an id (metadata written before topics had
    /// ids) a new random one. Called once after claiming the store; the
    /// plan is empty when every topic has an id.
    pub fn assign_topic_ids(&self) -> Plan {
        if self.meta.topics.values().all(|t| !t.id.is_empty()) {
            return Plan::default();
        }
        self.plan(vec![], |meta, _| {
            for t in meta.topics.values_mut().filter(|t| t.id.is_empty()) {
                t.id = new_topic_id();
            }
        })
    }

    /// Grows a topic to `total` partitions; existing ones do not move.
    pub fn add_partitions(&self, name: &str, total: i32) -> Result<Plan, ControllerError> {
        let t = self
            .meta
            .topics
            .get(name)
            .ok_or_else(|| ControllerError::UnknownTopic(name.to_owned()))?;
        let have = t.partitions.len() as i32;
        if total < have {
            return Err(ControllerError::Invalid(format!(
                "topic {name:?} has {have} partitions; partitions can only grow"
            )));
        }
        let rf = t.partitions.first().map_or(1, |p| p.replicas.len());
        let replicas = placement::place(
            &self.meta,
            &self.active_brokers(),
            (total - have) as usize,
            rf,
        )?;
        let name = name.to_owned();
        Ok(self.plan(vec![], move |meta, _| {
            let t = meta.topics.get_mut(&name).expect("checked");
            t.partitions.extend(replicas.into_iter().map(new_partition));
        }))
    }

    /// Replaces the config of topic `name` (with `id`, only the topic of
    /// that id) by `config`, already checked by the caller. Returns an
    /// empty plan when the topic already has this config, compared by the
    /// canonical form of each value ([`rill_proto::topic::normalize_config`]).
    pub fn alter_topic_config(
        &self,
        name: &str,
        id: Option<&str>,
        config: BTreeMap<String, String>,
    ) -> Result<Plan, ControllerError> {
        let t = match self.meta.topics.get(name) {
            Some(t) if id.is_none_or(|id| id == t.id) => t,
            _ => return Err(ControllerError::UnknownTopic(name.to_owned())),
        };
        if rill_proto::topic::normalize_config(&t.config)
            == rill_proto::topic::normalize_config(&config)
        {
            return Ok(Plan::default());
        }
        let name = name.to_owned();
        Ok(self.plan(vec![], move |meta, _| {
            meta.topics.get_mut(&name).expect("checked").config = config;
        }))
    }

    /// Creates `creations` (each validated; one already present is
    /// fine) and deletes the ACLs each of `deletions` matches. Returns the
    /// plan, the outcome of each creation, and per filter the ACLs it
    /// deleted, as Kafka's CreateAcls and DeleteAcls answer.
    pub fn alter_acls(
        &self,
        creations: Vec<Acl>,
        deletions: &[AclFilter],
    ) -> (Plan, Vec<Result<(), String>>, Vec<Vec<Acl>>) {
        let mut acls = self.meta.acls.clone();
        let (created, deleted) = rill_proto::acl::alter(&mut acls, creations, deletions);
        let plan = self.plan(vec![], move |meta, _| meta.acls = acls);
        (plan, created, deleted)
    }

    /// Applies Kafka's AlterClientQuotas entries (already checked), each on
    /// its own ([`rill_proto::quota::ClientQuotas::alter`]). Returns the
    /// plan (empty when nothing changes) and each entry's outcome.
    pub fn alter_client_quotas(
        &self,
        alterations: &[QuotaAlteration],
    ) -> (Plan, Vec<Result<(), QuotaError>>) {
        let mut quotas = self.meta.client_quotas.clone();
        let outcomes = quotas.alter(alterations);
        let plan = if quotas == self.meta.client_quotas {
            Plan::default()
        } else {
            self.plan(vec![], move |meta, _| meta.client_quotas = quotas)
        };
        (plan, outcomes)
    }

    /// Deletes topic `name`. With `id`, only the topic of that id: a newer
    /// topic created under the same name is a different topic and answers
    /// [`ControllerError::UnknownTopic`], so a late delete of the old one
    /// never deletes it.
    pub fn delete_topic(&self, name: &str, id: Option<&str>) -> Result<Plan, ControllerError> {
        match self.meta.topics.get(name) {
            Some(t) if id.is_none_or(|id| id == t.id) => {}
            _ => return Err(ControllerError::UnknownTopic(name.to_owned())),
        }
        let name = name.to_owned();
        Ok(self.plan(vec![], move |meta, _| {
            meta.topics.remove(&name);
        }))
    }

    /// Moves every replica off `brokers` (a drain before a scale-down
    /// removes them). Each partition with target replicas there gets the
    /// same number of new replicas on the other active brokers (fewest
    /// replicas first, racks the partition does not use first), each in
    /// the place of a drained one, and starts moving to them (see
    /// `start_move`); the drained ones leave once every target replica is
    /// in the ISR (see `finish_moves`), leadership moving first if needed.
    /// A reassignment in flight that targets a drained broker gets its
    /// target changed the same way; moves already off `brokers` are left
    /// alone, so calling it again only reports progress. Returns the plan
    /// and how many partitions still have a replica on `brokers`.
    pub fn drain(&self, brokers: &[BrokerId]) -> Result<(Plan, usize), ControllerError> {
        let drained: BTreeSet<BrokerId> = brokers.iter().copied().collect();
        let targets: Vec<(BrokerId, Option<String>)> = self
            .active_brokers()
            .into_iter()
            .filter(|(id, _)| !drained.contains(id))
            .collect();
        let mut placer = Placer::new(&self.meta, &targets);
        let mut next = self.meta.clone();
        let mut left = 0;
        for (name, t) in &mut next.topics {
            let min_isr = t.min_insync_replicas();
            for (i, p) in t.partitions.iter_mut().enumerate() {
                if !p.replicas.iter().any(|r| drained.contains(r)) {
                    continue;
                }
                left += 1;
                let target = p.target();
                if !target.iter().any(|r| drained.contains(r)) {
                    continue;
                }
                let mut racks: BTreeSet<Option<&str>> = target
                    .iter()
                    .filter(|r| !drained.contains(r))
                    .map(|r| self.meta.brokers.get(r).and_then(|b| b.rack.as_deref()))
                    .collect();
                let mut chosen = p.replicas.clone();
                let mut new_target = Vec::with_capacity(target.len());
                for r in target {
                    if !drained.contains(&r) {
                        new_target.push(r);
                        continue;
                    }
                    let Some(id) = placer.follower(&chosen, &racks) else {
                        return Err(ControllerError::Invalid(format!(
                            "cannot move {name}-{i} off brokers {brokers:?}: its {} replicas \
                             need {} active brokers besides those, and {} are active",
                            p.target().len(),
                            p.target().len(),
                            targets.len()
                        )));
                    };
                    racks.insert(placer.rack(id));
                    placer.add(id, false);
                    chosen.push(id);
                    new_target.push(id);
                }
                start_move(p, &new_target, min_isr, &|r| self.usable(&self.sessions, r)).map_err(
                    |reason| {
                        ControllerError::Invalid(format!(
                            "cannot move {name}-{i} off brokers {brokers:?}: {reason}"
                        ))
                    },
                )?;
            }
        }
        let plan = self.plan(vec![], move |meta, _| *meta = next);
        Ok((plan, left))
    }

    /// Sets (`Some`) or cancels (`None`) the target replicas of partitions
    /// (Kafka's AlterPartitionReassignments, KIP-455). A target must be
    /// non-empty, without duplicates, of registered brokers, and at least
    /// the topic's `min.insync.replicas` long. New replicas are added at
    /// once and catch up; the removed ones leave when every target replica
    /// is in the ISR (leadership moving inside the target first when the
    /// leader is removed), so the ISR never shrinks below the target
    /// because of the move. A cancel restores the replicas from before the
    /// move. Returns the plan and each request's outcome, in order.
    pub fn alter_reassignments(
        &self,
        requests: &[Reassign],
    ) -> (Plan, Vec<Result<(), ControllerError>>) {
        let mut next = self.meta.clone();
        let usable = |r| self.usable(&self.sessions, r);
        let results = requests
            .iter()
            .map(|r| {
                let (topic, partition) = (&r.topic, &r.partition);
                self.partition(topic, *partition)?;
                let t = next.topics.get_mut(topic).expect("checked");
                let min_isr = t.min_insync_replicas();
                let p = &mut t.partitions[*partition as usize];
                let invalid =
                    |replicas: &[BrokerId], reason: String| ControllerError::InvalidAssignment {
                        topic: topic.clone(),
                        partition: *partition,
                        replicas: replicas.to_vec(),
                        reason,
                    };
                let target = match &r.target {
                    None if !p.moving() => {
                        return Err(ControllerError::NoReassignment {
                            topic: topic.clone(),
                            partition: *partition,
                        });
                    }
                    None => p.original(),
                    Some(target) => {
                        validate_target(&self.meta, target, min_isr)
                            .map_err(|reason| invalid(target, reason))?;
                        let current = p.original().len();
                        if r.keep_replication_factor && target.len() != current {
                            return Err(invalid(
                                target,
                                format!(
                                    "the partition has {current} replicas and the request does not allow changing the replication factor"
                                ),
                            ));
                        }
                        target.clone()
                    }
                };
                start_move(p, &target, min_isr, &usable)
                    .map_err(|reason| invalid(&target, reason))?;
                info!(
                    topic = %topic,
                    partition,
                    ?target,
                    cancel = r.target.is_none(),
                    "reassignment set"
                );
                Ok(())
            })
            .collect();
        (self.plan(vec![], move |meta, _| *meta = next), results)
    }

    /// The partitions with a move in flight among `only` (every partition
    /// when `None`): topic, partition and state.
    pub fn reassignments(
        &self,
        only: Option<&[(String, i32)]>,
    ) -> Vec<(String, i32, PartitionState)> {
        self.meta
            .topics
            .iter()
            .flat_map(|(name, t)| {
                t.partitions
                    .iter()
                    .enumerate()
                    .map(move |(i, p)| (name, i as i32, p))
            })
            .filter(|(name, i, p)| {
                p.moving() && only.is_none_or(|o| o.iter().any(|(t, n)| t == *name && n == i))
            })
            .map(|(name, i, p)| (name.clone(), i, p.clone()))
            .collect()
    }

    /// Preferred-leader election (Kafka's ElectLeaders PREFERRED) for
    /// `only` (every partition when `None`): the first replica leads when
    /// it is in the ISR and active. Returns the plan and each partition's
    /// outcome; with `None`, only partitions whose preferred replica does
    /// not lead are reported.
    #[allow(clippy::type_complexity)]
    pub fn elect_preferred(
        &self,
        only: Option<&[(String, i32)]>,
    ) -> (Plan, Vec<(String, i32, Result<(), ControllerError>)>) {
        let wanted: Vec<(String, i32)> = match only {
            Some(o) => o.to_vec(),
            None => self
                .meta
                .topics
                .iter()
                .flat_map(|(name, t)| {
                    t.partitions
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.replicas.first() != Some(&p.leader))
                        .map(move |(i, _)| (name.clone(), i as i32))
                })
                .collect(),
        };
        let mut elected = Vec::new();
        let results = wanted
            .into_iter()
            .map(|(topic, partition)| {
                let outcome = self.partition(&topic, partition).and_then(|p| {
                    let preferred = p.replicas[0];
                    if p.leader == preferred {
                        Err(ControllerError::ElectionNotNeeded {
                            topic: topic.clone(),
                            partition,
                            leader: preferred,
                        })
                    } else if !p.isr.contains(&preferred) || !self.usable(&self.sessions, preferred)
                    {
                        Err(ControllerError::PreferredLeaderNotAvailable {
                            topic: topic.clone(),
                            partition,
                            preferred,
                            isr: p.isr.clone(),
                        })
                    } else {
                        elected.push((topic.clone(), partition as usize, preferred));
                        Ok(())
                    }
                });
                (topic, partition, outcome)
            })
            .collect();
        let plan = self.plan(vec![], move |meta, _| {
            for (topic, i, preferred) in elected {
                set_leader(
                    &mut meta.topics.get_mut(&topic).expect("checked").partitions[i],
                    preferred,
                );
            }
        });
        (plan, results)
    }

    /// Moves leadership back to each partition's preferred replica where it
    /// is in sync and active.
    pub fn rebalance_preferred_leaders(&self) -> Plan {
        self.plan(vec![], |meta, usable| {
            for p in meta
                .topics
                .values_mut()
                .flat_map(|t| t.partitions.iter_mut())
            {
                let preferred = p.replicas[0];
                if p.leader != preferred && p.isr.contains(&preferred) && usable(preferred) {
                    set_leader(p, preferred);
                }
            }
        })
    }

    /// One round of the automatic balance (see [`crate::balance`]): when no
    /// move is in flight and every broker holding replicas is active, moves
    /// up to `balance_batch` partitions so the active brokers not in
    /// `excluded` (being drained) hold as many replicas and preferred
    /// leaderships as each other, give or take one. Returns the plan and
    /// how many partitions it moves data of (0 with an empty plan when
    /// balanced, or when it must wait).
    pub fn balance(&self, excluded: &BTreeSet<BrokerId>) -> (Plan, usize) {
        if self.moving() {
            return (Plan::default(), 0);
        }
        let unhealthy = self
            .meta
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .any(|p| {
                p.replicas.iter().any(|r| !self.usable(&self.sessions, *r)) || p.isr != p.replicas
            });
        if unhealthy {
            return (Plan::default(), 0);
        }
        let eligible: BTreeSet<BrokerId> = self
            .active_brokers()
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| !excluded.contains(id))
            .collect();
        let moves = crate::balance::plan(&self.meta, &eligible, self.config.balance_batch);
        if moves.is_empty() {
            return (Plan::default(), 0);
        }
        let moving = moves.iter().filter(|m| m.moves_data).count();
        let mut next = self.meta.clone();
        let usable = |r| self.usable(&self.sessions, r);
        for m in &moves {
            let t = next.topics.get_mut(&m.topic).expect("planned from it");
            let min_isr = t.min_insync_replicas();
            let p = &mut t.partitions[m.partition as usize];
            if let Err(reason) = start_move(p, &m.target, min_isr, &usable) {
                tracing::warn!(topic = %m.topic, partition = m.partition, %reason, "balance move skipped");
                continue;
            }
            info!(topic = %m.topic, partition = m.partition, target = ?m.target, moves_data = m.moves_data, "balance: moving partition");
        }
        (self.plan(vec![], move |meta, _| *meta = next), moving)
    }

    /// Whether any partition has a replica move in flight.
    pub fn moving(&self) -> bool {
        self.meta
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .any(PartitionState::moving)
    }

    fn partition(&self, topic: &str, partition: i32) -> Result<&PartitionState, ControllerError> {
        let t = self
            .meta
            .topics
            .get(topic)
            .ok_or_else(|| ControllerError::UnknownTopic(topic.to_owned()))?;
        usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .ok_or_else(|| ControllerError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
            })
    }

    fn active_brokers(&self) -> Vec<(BrokerId, Option<String>)> {
        self.meta
            .brokers
            .values()
            .filter(|b| self.usable(&self.sessions, b.id))
            .map(|b| (b.id, b.rack.clone()))
            .collect()
    }
}

/// One partition's reassignment request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassign {
    pub topic: String,
    pub partition: i32,
    /// The target replicas, preferred leader first; `None` cancels the
    /// move in flight.
    pub target: Option<Vec<BrokerId>>,
    /// Refuse a target of another length than the current replicas
    /// (KIP-860's `allowReplicationFactorChange=false`).
    pub keep_replication_factor: bool,
}

/// One AlterPartition request, from the broker that leads the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub broker: BrokerId,
    pub broker_epoch: i64,
    pub topic: String,
    pub partition: i32,
    /// The leader epoch the broker leads at.
    pub leader_epoch: i32,
    /// The partition epoch the change was computed from (not checked for
    /// [`IsrChangeKind::ResignOffline`]).
    pub partition_epoch: i32,
    pub kind: IsrChangeKind,
}

/// What an AlterPartition request asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsrChangeKind {
    /// Set the ISR to `isr`; `joining_epochs` names the broker epoch of
    /// each member it adds.
    SetIsr {
        isr: Vec<BrokerId>,
        joining_epochs: Vec<(BrokerId, i64)>,
    },
    /// The leader's replica went offline: hand leadership to another
    /// in-sync replica and leave the ISR.
    ResignOffline,
}

/// Checks a reassignment target: at least one replica and at least
/// `min_isr` (the move must be able to finish with a full enough ISR), no
/// duplicates, every broker registered.
fn validate_target(
    meta: &ClusterMetadata,
    target: &[BrokerId],
    min_isr: usize,
) -> Result<(), String> {
    if target.is_empty() {
        return Err("the replica list is empty".to_owned());
    }
    let distinct: BTreeSet<BrokerId> = target.iter().copied().collect();
    if distinct.len() != target.len() {
        return Err("a broker is listed twice".to_owned());
    }
    if let Some(b) = target.iter().find(|b| !meta.brokers.contains_key(b)) {
        return Err(format!("broker {b} is not registered"));
    }
    if target.len() < min_isr {
        return Err(format!(
            "{} replicas are fewer than the topic's min.insync.replicas {min_isr}",
            target.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NO_LEADER;

    fn registered(ctl: &mut Controller, id: BrokerId, now: u64) -> i64 {
        let (plan, epoch) = ctl
            .register(id, &format!("d{id}"), Endpoints::default(), None, now)
            .expect("registers");
        ctl.apply(plan);
        epoch
    }

    #[test]
    fn given_acl_changes_when_planned_then_invalid_ones_are_refused_and_filters_delete_what_they_match()
     {
        use rill_proto::acl::{Operation, PatternFilter, PatternType, Permission, ResourceType};
        let mut ctl = Controller::new(ControllerConfig::default(), ClusterMetadata::default(), 0);
        let acl = |name: &str, principal: &str| Acl {
            resource_type: ResourceType::Topic,
            pattern: PatternType::Literal,
            name: name.to_owned(),
            principal: principal.to_owned(),
            host: "*".to_owned(),
            operation: Operation::Read,
            permission: Permission::Allow,
        };
        let mut bad = acl("t", "alice");
        bad.principal = "alice".into();
        let (plan, created, deleted) = ctl.alter_acls(
            vec![
                acl("b", "User:bob"),
                acl("a", "User:alice"),
                bad,
                acl("a", "User:alice"),
            ],
            &[],
        );
        assert_eq!(created.len(), 4);
        assert!(created[0].is_ok() && created[1].is_ok() && created[3].is_ok());
        assert!(
            created[2].as_ref().unwrap_err().contains("User:"),
            "{created:?}"
        );
        assert!(deleted.is_empty());
        assert_eq!(
            plan.changes,
            vec![Change::Acls(vec![
                acl("a", "User:alice"),
                acl("b", "User:bob")
            ])]
        );
        ctl.apply(plan);
        let mut filter = AclFilter::any();
        filter.principal = Some("User:alice".into());
        filter.pattern = PatternFilter::Any;
        let (plan, _, deleted) = ctl.alter_acls(vec![], &[filter.clone(), filter]);
        assert_eq!(deleted, vec![vec![acl("a", "User:alice")], vec![]]);
        ctl.apply(plan);
        assert_eq!(ctl.metadata().acls, vec![acl("b", "User:bob")]);
        let (plan, _, _) = ctl.alter_acls(vec![acl("b", "User:bob")], &[]);
        assert!(plan.is_empty(), "an ACL already there changes nothing");
    }

    #[test]
    fn given_client_quota_changes_when_planned_then_they_become_one_change_and_no_op_ones_none() {
        use rill_proto::quota::{ClientQuotas, EntityName, QuotaEntity, QuotaKey};
        let mut ctl = Controller::new(ControllerConfig::default(), ClusterMetadata::default(), 0);
        let alice = QuotaEntity::user(EntityName::Named("alice".into()));
        let set = |rate: f64| QuotaAlteration {
            entity: alice.clone(),
            ops: vec![(QuotaKey::ProducerByteRate, Some(rate))],
        };
        let (plan, outcomes) = ctl.alter_client_quotas(&[set(1024.0)]);
        assert_eq!(outcomes, vec![Ok(())]);
        let mut expected = ClientQuotas::default();
        expected.apply(&set(1024.0));
        assert_eq!(plan.changes, vec![Change::ClientQuotas(expected.clone())]);
        ctl.apply(plan);
        assert_eq!(ctl.metadata().client_quotas, expected);
        let (plan, outcomes) = ctl.alter_client_quotas(&[set(1024.0)]);
        assert!(plan.is_empty(), "the same value again changes nothing");
        assert_eq!(outcomes, vec![Ok(())]);
        let (plan, outcomes) = ctl.alter_client_quotas(&[set(1.0), set(2.0)]);
        assert!(plan.is_empty(), "both entries name alice: both refused");
        assert!(outcomes.iter().all(Result::is_err));
        let remove = QuotaAlteration {
            entity: alice.clone(),
            ops: vec![(QuotaKey::ProducerByteRate, None)],
        };
        let (plan, _) = ctl.alter_client_quotas(&[remove]);
        ctl.apply(plan);
        assert!(ctl.metadata().client_quotas.is_empty());
    }

    #[test]
    fn given_lease_expiry_and_shutdown_when_planned_should_report_liveness_changes() {
        let mut ctl = Controller::new(ControllerConfig::default(), ClusterMetadata::default(), 0);
        let e0 = registered(&mut ctl, 0, 0);
        registered(&mut ctl, 1, 0);
        ctl.heartbeat(0, e0, 1000).expect("leased");

        // Broker 1's lease expires at 1500; broker 0's at 2500.
        let plan = ctl.tick(1600);
        assert_eq!(ctl.liveness_changes(&plan), vec![(1, Liveness::Fenced)]);
        ctl.apply(plan);
        assert_eq!(ctl.liveness(1), Liveness::Fenced);

        let (plan, _) = ctl.controlled_shutdown(0, e0).expect("accepted");
        assert_eq!(
            ctl.liveness_changes(&plan),
            vec![(0, Liveness::ShuttingDown)]
        );

        let (plan, _) = ctl
            .register(1, "d1", Endpoints::default(), None, 1700)
            .expect("registers");
        assert_eq!(ctl.liveness_changes(&plan), vec![(1, Liveness::Active)]);
        assert!(ctl.liveness_changes(&ctl.tick(1700)).is_empty());
    }

    #[test]
    fn given_leases_extended_then_none_expires_before_the_new_end_and_fenced_brokers_stay_fenced() {
        let mut ctl = Controller::new(ControllerConfig::default(), ClusterMetadata::default(), 0);
        registered(&mut ctl, 0, 0);
        registered(&mut ctl, 1, 0);
        let e2 = registered(&mut ctl, 2, 0);
        ctl.heartbeat(2, e2, 5000).expect("leased");
        let plan = ctl.tick(1600);
        ctl.apply(plan);
        assert_eq!(ctl.liveness(0), Liveness::Fenced);

        registered(&mut ctl, 0, 2000);
        // Broker 0's lease ends at 3500, broker 1 is fenced, broker 2's
        // lease (6500) is already longer.
        assert_eq!(ctl.extend_leases(4000), 1);
        assert!(ctl.tick(3900).is_empty());
        assert_eq!(ctl.liveness(1), Liveness::Fenced);
        assert_eq!(
            ctl.liveness_changes(&ctl.tick(4000)),
            vec![(0, Liveness::Fenced)]
        );
    }

    #[test]
    fn given_brokers_to_remove_when_drained_then_replicas_move_once_the_new_ones_are_in_sync() {
        let mut ctl = Controller::new(ControllerConfig::default(), ClusterMetadata::default(), 0);
        let epochs: Vec<i64> = (0..5).map(|id| registered(&mut ctl, id, 0)).collect();
        let plan = ctl
            .create_topic("t", 10, 3, BTreeMap::new())
            .expect("created");
        ctl.apply(plan);
        let on_drained = |ctl: &Controller| {
            ctl.metadata().topics["t"]
                .partitions
                .iter()
                .filter(|p| p.replicas.iter().any(|r| *r >= 3))
                .count()
        };
        let before = on_drained(&ctl);
        assert!(before > 0, "placement uses brokers 3 and 4");

        let (plan, left) = ctl.drain(&[3, 4]).expect("drain starts");
        assert_eq!(left, before);
        ctl.apply(plan);
        for p in &ctl.metadata().topics["t"].partitions {
            let gone = p.replicas.iter().filter(|r| **r >= 3).count();
            assert_eq!(p.removing.len(), gone, "{p:?}");
            assert_eq!(
                p.replicas.len(),
                3 + gone,
                "new replicas added first: {p:?}"
            );
            assert_eq!(p.isr.len(), 3, "the ISR waits for them: {p:?}");
        }
        let (again, left) = ctl.drain(&[3, 4]).expect("idempotent");
        assert!(again.is_empty(), "moves in progress are left alone");
        assert_eq!(left, before);

        // Each leader adds its new replicas to the ISR as they catch up.
        for i in 0..10 {
            let p = ctl.metadata().topics["t"].partitions[i].clone();
            if p.removing.is_empty() {
                continue;
            }
            let plan = ctl
                .alter_partition(
                    p.leader,
                    epochs[p.leader as usize],
                    "t",
                    i as i32,
                    p.leader_epoch,
                    p.partition_epoch,
                    &p.replicas,
                    &p.replicas
                        .iter()
                        .map(|r| (*r, epochs[*r as usize]))
                        .collect::<Vec<_>>(),
                )
                .expect("expansion accepted");
            ctl.apply(plan);
            let after = &ctl.metadata().topics["t"].partitions[i];
            assert!(after.removing.is_empty(), "{after:?}");
            assert_eq!(after.replicas.len(), 3);
            assert!(after.replicas.iter().all(|r| *r < 3), "{after:?}");
            assert!(after.isr.iter().all(|r| *r < 3), "{after:?}");
            assert!(after.replicas.contains(&after.leader), "{after:?}");
            if p.leader >= 3 {
                assert_eq!(after.leader_epoch, p.leader_epoch + 1, "leadership moved");
            }
        }
        let (plan, left) = ctl.drain(&[3, 4]).expect("done");
        assert!(plan.is_empty());
        assert_eq!(left, 0);
    }

    #[test]
    fn given_too_few_other_brokers_when_drained_then_it_is_refused_with_the_reason() {
        let mut ctl = Controller::new(ControllerConfig::default(), ClusterMetadata::default(), 0);
        for id in 0..3 {
            registered(&mut ctl, id, 0);
        }
        let plan = ctl
            .create_topic("t", 2, 3, BTreeMap::new())
            .expect("created");
        ctl.apply(plan);
        let err = ctl.drain(&[2]).expect_err("nowhere to go");
        assert!(err.to_string().contains("need 3 active brokers"), "{err}");
    }

    #[test]
    fn given_a_topic_deleted_and_created_again_when_the_old_one_is_deleted_by_id_then_the_new_one_stays()
     {
        let mut ctl = Controller::new(ControllerConfig::default(), ClusterMetadata::default(), 0);
        registered(&mut ctl, 0, 0);
        ctl.apply(
            ctl.create_topic("t", 1, 1, BTreeMap::new())
                .expect("created"),
        );
        let old = ctl.metadata().topics["t"].id.clone();
        assert!(uuid::Uuid::parse_str(&old).is_ok(), "a UUID: {old:?}");

        ctl.apply(ctl.delete_topic("t", Some(&old)).expect("deleted by id"));
        ctl.apply(
            ctl.create_topic("t", 1, 1, BTreeMap::new())
                .expect("created again"),
        );
        let new = ctl.metadata().topics["t"].id.clone();
        assert_ne!(new, old, "a re-created topic is a new topic");

        let late = ctl.delete_topic("t", Some(&old));
        assert!(
            matches!(late, Err(ControllerError::UnknownTopic(_))),
            "a delete of the old id must not touch the new topic: {late:?}"
        );
        assert_eq!(ctl.metadata().topics["t"].id, new);
        ctl.delete_topic("t", None)
            .expect("a delete by name alone still works");
    }

    #[test]
    fn given_topics_without_ids_when_ids_are_assigned_then_each_gets_one_once() {
        let mut ctl = Controller::new(ControllerConfig::default(), ClusterMetadata::default(), 0);
        registered(&mut ctl, 0, 0);
        ctl.apply(ctl.create_topic("a", 1, 1, BTreeMap::new()).expect("a"));
        ctl.apply(ctl.create_topic("b", 1, 1, BTreeMap::new()).expect("b"));
        let mut legacy = ctl.metadata().clone();
        let kept = legacy.topics["b"].id.clone();
        legacy.topics.get_mut("a").expect("a").id.clear();
        let mut ctl = Controller::new(ControllerConfig::default(), legacy, 0);

        let plan = ctl.assign_topic_ids();
        assert_eq!(
            plan.changes.len(),
            1,
            "only the topic without an id: {plan:?}"
        );
        ctl.apply(plan);
        assert!(!ctl.metadata().topics["a"].id.is_empty());
        assert_eq!(
            ctl.metadata().topics["b"].id,
            kept,
            "existing ids never change"
        );
        assert!(ctl.assign_topic_ids().is_empty(), "nothing left to assign");
    }

    /// Five brokers and topic "t" with one partition on brokers 0, 1, 2
    /// (0 leading), `config` as its config.
    fn five_brokers_one_partition(config: BTreeMap<String, String>) -> (Controller, Vec<i64>) {
        let mut ctl = Controller::new(ControllerConfig::default(), ClusterMetadata::default(), 0);
        let epochs: Vec<i64> = (0..3).map(|id| registered(&mut ctl, id, 0)).collect();
        ctl.apply(ctl.create_topic("t", 1, 3, config).expect("created"));
        let mut epochs = epochs;
        epochs.extend((3..5).map(|id| registered(&mut ctl, id, 0)));
        (ctl, epochs)
    }

    fn p0(ctl: &Controller) -> PartitionState {
        ctl.metadata().topics["t"].partitions[0].clone()
    }

    /// The leader of t-0 sets its ISR to `isr`.
    fn set_isr(ctl: &mut Controller, epochs: &[i64], isr: &[BrokerId]) {
        let p = p0(ctl);
        let plan = ctl
            .alter_partition(
                p.leader,
                epochs[p.leader as usize],
                "t",
                0,
                p.leader_epoch,
                p.partition_epoch,
                isr,
                &isr.iter()
                    .map(|r| (*r, epochs[*r as usize]))
                    .collect::<Vec<_>>(),
            )
            .expect("ISR change accepted");
        ctl.apply(plan);
    }

    fn reassign(
        ctl: &Controller,
        target: Option<Vec<BrokerId>>,
    ) -> (Plan, Result<(), ControllerError>) {
        let (plan, mut results) = ctl.alter_reassignments(&[Reassign {
            topic: "t".to_owned(),
            partition: 0,
            target,
            keep_replication_factor: false,
        }]);
        (plan, results.remove(0))
    }

    #[test]
    fn given_a_reassignment_when_the_new_replicas_join_the_isr_then_the_old_ones_leave_and_leadership_moves_into_the_target()
     {
        let (mut ctl, epochs) = five_brokers_one_partition(BTreeMap::new());
        let before = p0(&ctl);
        assert_eq!(before.replicas, vec![0, 1, 2]);
        assert_eq!(before.leader, 0);

        let (plan, result) = reassign(&ctl, Some(vec![3, 4, 1]));
        result.expect("accepted");
        ctl.apply(plan);
        let p = p0(&ctl);
        assert_eq!(
            p.replicas,
            vec![3, 4, 1, 0, 2],
            "target first, then the removed"
        );
        assert_eq!(p.adding, vec![3, 4]);
        assert_eq!(p.removing, vec![0, 2]);
        assert_eq!(
            p.isr,
            vec![1, 0, 2],
            "the ISR is untouched until the move ends"
        );
        assert_eq!(p.leader, 0, "the leader stays while new replicas catch up");
        assert_eq!(ctl.reassignments(None).len(), 1);

        set_isr(&mut ctl, &epochs, &[3, 1, 0, 2]);
        let p = p0(&ctl);
        assert!(p.moving(), "broker 4 is not in sync yet: {p:?}");
        assert_eq!(
            p.isr.len(),
            4,
            "nothing leaves before every target replica is in sync"
        );

        set_isr(&mut ctl, &epochs, &[3, 4, 1, 0, 2]);
        let p = p0(&ctl);
        assert!(!p.moving(), "{p:?}");
        assert_eq!(p.replicas, vec![3, 4, 1]);
        assert_eq!(p.isr, vec![3, 4, 1]);
        assert_eq!(p.leader, 3, "an in-sync target replica leads");
        assert_eq!(p.leader_epoch, before.leader_epoch + 1);
        assert!(ctl.reassignments(None).is_empty());
    }

    #[test]
    fn given_a_reassignment_in_flight_when_cancelled_then_the_original_replicas_are_restored() {
        let (mut ctl, epochs) = five_brokers_one_partition(BTreeMap::new());
        let (_, result) = reassign(&ctl, None);
        assert!(
            matches!(result, Err(ControllerError::NoReassignment { .. })),
            "{result:?}"
        );

        let (plan, result) = reassign(&ctl, Some(vec![3, 1, 2]));
        result.expect("accepted");
        ctl.apply(plan);
        set_isr(&mut ctl, &epochs, &[0, 1, 2]);
        let (plan, result) = reassign(&ctl, None);
        result.expect("cancelled");
        ctl.apply(plan);
        let p = p0(&ctl);
        // As in Kafka, the original replicas come back as a set: their
        // order is the one they had during the move.
        assert_eq!(p.replicas, vec![1, 2, 0]);
        assert_eq!(p.isr, vec![1, 2, 0]);
        assert!(!p.moving(), "{p:?}");
        assert_eq!(p.leader, 0, "the leader did not change");
    }

    #[test]
    fn given_a_new_replica_holding_the_only_in_sync_copy_when_the_move_is_cancelled_then_it_is_refused()
     {
        let mut config = BTreeMap::new();
        config.insert("min.insync.replicas".to_owned(), "2".to_owned());
        let (mut ctl, epochs) = five_brokers_one_partition(config);
        let (plan, result) = reassign(&ctl, Some(vec![0, 3, 4]));
        result.expect("accepted");
        ctl.apply(plan);
        // 3 joins, 1 and 2 fall behind: 0 and 3 hold the acknowledged
        // records.
        set_isr(&mut ctl, &epochs, &[0, 3]);
        let (plan, result) = reassign(&ctl, None);
        let err = result.expect_err("refused");
        assert!(err.to_string().contains("min.insync.replicas 2"), "{err}");
        assert!(plan.is_empty());

        // Once the target is in sync the move ends and the others leave.
        set_isr(&mut ctl, &epochs, &[0, 3, 4]);
        let p = p0(&ctl);
        assert_eq!(p.replicas, vec![0, 3, 4], "{p:?}");
        assert!(!p.moving());
    }

    #[test]
    fn given_invalid_targets_when_reassigned_then_each_is_refused_with_its_reason() {
        let mut config = BTreeMap::new();
        config.insert("min.insync.replicas".to_owned(), "2".to_owned());
        let (ctl, _) = five_brokers_one_partition(config);
        for (target, reason) in [
            (vec![], "empty"),
            (vec![3, 3, 1], "twice"),
            (vec![3, 9, 1], "broker 9 is not registered"),
            (vec![3], "min.insync.replicas"),
        ] {
            let (plan, result) = reassign(&ctl, Some(target.clone()));
            let err = result.expect_err("refused");
            assert!(
                matches!(err, ControllerError::InvalidAssignment { .. }),
                "{target:?}: {err}"
            );
            assert!(err.to_string().contains(reason), "{target:?}: {err}");
            assert!(plan.is_empty());
        }
        let (_, results) = ctl.alter_reassignments(&[
            Reassign {
                topic: "nope".to_owned(),
                partition: 0,
                target: Some(vec![1]),
                keep_replication_factor: false,
            },
            Reassign {
                topic: "t".to_owned(),
                partition: 0,
                target: Some(vec![3, 4]),
                keep_replication_factor: true,
            },
        ]);
        assert!(matches!(results[0], Err(ControllerError::UnknownTopic(_))));
        let err = results[1]
            .as_ref()
            .expect_err("a replication factor change");
        assert!(err.to_string().contains("has 3 replicas"), "{err}");
    }

    #[test]
    fn given_a_preferred_replica_not_leading_when_elected_then_it_leads_only_from_the_isr() {
        let (mut ctl, epochs) = five_brokers_one_partition(BTreeMap::new());
        let only = [("t".to_owned(), 0)];
        let (_, results) = ctl.elect_preferred(Some(&only));
        assert!(
            matches!(results[0].2, Err(ControllerError::ElectionNotNeeded { .. })),
            "{results:?}"
        );

        // Reorder the replicas: broker 1 becomes preferred, 0 still leads.
        let (plan, result) = reassign(&ctl, Some(vec![1, 0, 2]));
        result.expect("a reorder");
        ctl.apply(plan);
        assert_eq!(p0(&ctl).leader, 0);
        assert!(!p0(&ctl).moving());

        // Broker 1 out of the ISR: not available.
        set_isr(&mut ctl, &epochs, &[0, 2]);
        let (plan, results) = ctl.elect_preferred(Some(&only));
        assert!(
            matches!(
                results[0].2,
                Err(ControllerError::PreferredLeaderNotAvailable { .. })
            ),
            "{results:?}"
        );
        assert!(plan.is_empty());

        set_isr(&mut ctl, &epochs, &[1, 0, 2]);
        let (plan, results) = ctl.elect_preferred(None);
        assert_eq!(results.len(), 1);
        assert!(results[0].2.is_ok(), "{results:?}");
        ctl.apply(plan);
        assert_eq!(p0(&ctl).leader, 1);
        let (_, results) = ctl.elect_preferred(None);
        assert!(results.is_empty(), "nothing left to elect: {results:?}");
    }

    #[test]
    fn given_two_brokers_added_when_balanced_until_done_then_replica_counts_differ_by_at_most_one_and_drained_brokers_get_nothing()
     {
        let mut ctl = Controller::new(ControllerConfig::default(), ClusterMetadata::default(), 0);
        let mut epochs: BTreeMap<BrokerId, i64> = BTreeMap::new();
        for id in 0..3 {
            epochs.insert(id, registered(&mut ctl, id, 0));
        }
        for (name, partitions) in [("a", 8), ("b", 5), ("c", 3)] {
            ctl.apply(
                ctl.create_topic(name, partitions, 3, BTreeMap::new())
                    .expect("created"),
            );
        }
        for id in 3..6 {
            epochs.insert(id, registered(&mut ctl, id, 0));
        }
        // Broker 5 is being drained (a scale-down in progress).
        let excluded = BTreeSet::from([5]);
        for round in 0.. {
            assert!(round < 100, "the balance converges");
            let (plan, _) = ctl.balance(&excluded);
            if plan.is_empty() {
                break;
            }
            ctl.apply(plan);
            // Each leader adds its caught-up replicas to the ISR.
            let moving: Vec<(String, usize, PartitionState)> = ctl
                .metadata()
                .topics
                .iter()
                .flat_map(|(n, t)| {
                    t.partitions
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.moving())
                        .map(move |(i, p)| (n.clone(), i, p.clone()))
                })
                .collect();
            for (name, i, p) in moving {
                assert!(
                    !p.replicas.contains(&5),
                    "a drained broker gets nothing: {p:?}"
                );
                assert!(
                    p.isr.len() >= p.target().len().min(3) - 1,
                    "the ISR keeps the original replicas during the move: {p:?}"
                );
                let plan = ctl
                    .alter_partition(
                        p.leader,
                        epochs[&p.leader],
                        &name,
                        i as i32,
                        p.leader_epoch,
                        p.partition_epoch,
                        &p.replicas,
                        &p.replicas
                            .iter()
                            .map(|r| (*r, epochs[r]))
                            .collect::<Vec<_>>(),
                    )
                    .expect("expansion accepted");
                ctl.apply(plan);
            }
            assert!(!ctl.moving(), "every move finished once in sync");
        }
        let mut counts: BTreeMap<BrokerId, usize> = (0..5).map(|b| (b, 0)).collect();
        for p in ctl.metadata().topics.values().flat_map(|t| &t.partitions) {
            assert_eq!(p.replicas.len(), 3, "{p:?}");
            assert!(p.replicas.contains(&p.leader), "{p:?}");
            for r in &p.replicas {
                *counts.entry(*r).or_default() += 1;
            }
        }
        assert!(
            !counts.contains_key(&5),
            "the drained broker holds nothing: {counts:?}"
        );
        let (min, max) = (
            counts.values().min().copied().unwrap_or(0),
            counts.values().max().copied().unwrap_or(0),
        );
        assert!(max - min <= 1, "replica counts {counts:?}");
    }

    /// Three brokers and topic "t" of `partitions` partitions on all of
    /// them; returns the broker epochs.
    fn three_brokers(partitions: i32) -> (Controller, Vec<i64>) {
        let mut ctl = Controller::new(ControllerConfig::default(), ClusterMetadata::default(), 0);
        let epochs: Vec<i64> = (0..3).map(|id| registered(&mut ctl, id, 0)).collect();
        ctl.apply(
            ctl.create_topic("t", partitions, 3, BTreeMap::new())
                .expect("created"),
        );
        (ctl, epochs)
    }

    #[test]
    fn given_a_takeover_of_partitions_left_leaderless_when_a_broker_of_their_isr_heartbeats_then_it_leads()
     {
        // The previous controller fenced every broker (they could not
        // reach it) and died: every partition is leaderless, its ISR down
        // to the last member.
        let (mut old, _) = three_brokers(6);
        let plan = old.tick(old.config.session_timeout_ms + 1);
        old.apply(plan);
        assert!(
            old.metadata().topics["t"]
                .partitions
                .iter()
                .all(|p| p.leader == NO_LEADER && p.isr.len() == 1),
            "{:?}",
            old.metadata().topics["t"].partitions
        );
        let last: Vec<BrokerId> = old.metadata().topics["t"]
            .partitions
            .iter()
            .map(|p| p.isr[0])
            .collect();

        // The new controller knows the same incarnations, all active, and
        // has heard from none: nothing is elected on a lease alone.
        let mut new = Controller::new(ControllerConfig::default(), old.metadata().clone(), 0);
        assert!(new.elect_leaderless_heard().is_empty());
        let survivor = last[0];
        let epoch = new.metadata().brokers[&survivor].epoch;
        assert_eq!(new.heartbeat(survivor, epoch, 10), Ok(Liveness::Active));
        assert!(new.heard_from(survivor));
        let plan = new.elect_leaderless_heard();
        new.apply(plan);
        let before = &old.metadata().topics["t"].partitions;
        for ((p, was), isr_member) in new.metadata().topics["t"]
            .partitions
            .iter()
            .zip(before)
            .zip(&last)
        {
            if *isr_member == survivor {
                assert_eq!(p.leader, survivor, "{p:?}");
                assert!(
                    p.leader_epoch > was.leader_epoch,
                    "a new leader epoch: {p:?}"
                );
            } else {
                assert_eq!(p.leader, NO_LEADER, "its ISR member is unheard: {p:?}");
            }
        }
        assert!(
            new.elect_leaderless_heard().is_empty(),
            "nothing more to elect"
        );
    }

    /// The leader of t-`i` sets its ISR to `isr`, from the state in `ctl`.
    fn isr_request(ctl: &Controller, epochs: &[i64], i: i32, isr: &[BrokerId]) -> IsrChange {
        let p = &ctl.metadata().topics["t"].partitions[i as usize];
        IsrChange {
            broker: p.leader,
            broker_epoch: epochs[p.leader as usize],
            topic: "t".to_owned(),
            partition: i,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            kind: IsrChangeKind::SetIsr {
                isr: isr.to_vec(),
                joining_epochs: isr.iter().map(|r| (*r, epochs[*r as usize])).collect(),
            },
        }
    }

    #[test]
    fn given_isr_changes_of_many_partitions_when_planned_together_then_one_plan_holds_them_all_as_one_by_one_would()
     {
        let (ctl, epochs) = three_brokers(6);
        // Every leader drops the replica after it (a follower failed).
        let requests: Vec<IsrChange> = (0..6)
            .map(|i| {
                let p = &ctl.metadata().topics["t"].partitions[i as usize];
                let isr: Vec<BrokerId> = p
                    .isr
                    .iter()
                    .copied()
                    .filter(|r| *r != (p.leader + 1) % 3)
                    .collect();
                isr_request(&ctl, &epochs, i, &isr)
            })
            .collect();
        let (plan, outcomes) = ctl.alter_partitions(&requests);
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        assert_eq!(plan.changes.len(), 6, "one change per partition");

        let mut one_by_one =
            Controller::new(ControllerConfig::default(), ctl.metadata().clone(), 0);
        one_by_one.sessions = ctl.sessions.clone();
        for r in &requests {
            let plan = one_by_one.alter_one(r.clone()).expect("accepted alone");
            one_by_one.apply(plan);
        }
        let mut together = Controller::new(ControllerConfig::default(), ctl.metadata().clone(), 0);
        together.sessions = ctl.sessions.clone();
        together.apply(plan);
        assert_eq!(together.metadata(), one_by_one.metadata());
        for (before, after) in ctl.metadata().topics["t"]
            .partitions
            .iter()
            .zip(&together.metadata().topics["t"].partitions)
        {
            assert_eq!(after.partition_epoch, before.partition_epoch + 1);
            assert_eq!(after.leader_epoch, before.leader_epoch, "leaders stay");
            assert_eq!(after.isr.len(), 2);
        }
    }

    #[test]
    fn given_two_changes_of_one_partition_in_one_batch_when_planned_then_the_second_is_refused_as_stale_and_others_pass()
     {
        let (ctl, epochs) = three_brokers(2);
        let p0 = ctl.metadata().topics["t"].partitions[0].clone();
        let shrink = isr_request(&ctl, &epochs, 0, &[p0.leader]);
        // Computed from the same state: it names the partition epoch the
        // first change replaces.
        let again = isr_request(&ctl, &epochs, 0, &p0.isr[..2]);
        let mut not_leader = isr_request(&ctl, &epochs, 1, &[0]);
        let p1 = &ctl.metadata().topics["t"].partitions[1];
        not_leader.broker = p1.replicas[1];
        not_leader.broker_epoch = epochs[p1.replicas[1] as usize];
        let other = isr_request(&ctl, &epochs, 1, &[p1.leader]);

        let (plan, outcomes) = ctl.alter_partitions(&[shrink, again, not_leader, other]);
        assert_eq!(outcomes[0], Ok(()));
        assert_eq!(
            outcomes[1],
            Err(ControllerError::InvalidUpdateVersion {
                topic: "t".into(),
                partition: 0,
                got: p0.partition_epoch,
                current: p0.partition_epoch + 1,
            }),
            "as if the first had been committed before it"
        );
        assert!(
            matches!(outcomes[2], Err(ControllerError::NotLeader { .. })),
            "{outcomes:?}"
        );
        assert_eq!(outcomes[3], Ok(()), "a refused request stops no other");
        assert_eq!(
            plan.changes,
            vec![
                Change::Partition {
                    topic: "t".into(),
                    partition: 0,
                    state: PartitionState {
                        isr: vec![p0.leader],
                        partition_epoch: p0.partition_epoch + 1,
                        ..p0.clone()
                    },
                },
                Change::Partition {
                    topic: "t".into(),
                    partition: 1,
                    state: PartitionState {
                        isr: vec![p1.leader],
                        partition_epoch: p1.partition_epoch + 1,
                        ..p1.clone()
                    },
                },
            ]
        );
    }

    #[test]
    fn given_a_change_chained_on_an_earlier_one_of_the_same_batch_when_planned_then_both_apply_and_the_epoch_moves_twice()
     {
        let (ctl, epochs) = three_brokers(1);
        let p = ctl.metadata().topics["t"].partitions[0].clone();
        let first = isr_request(&ctl, &epochs, 0, &[p.leader]);
        let mut second = isr_request(&ctl, &epochs, 0, &p.isr);
        second.partition_epoch = p.partition_epoch + 1;
        let (plan, outcomes) = ctl.alter_partitions(&[first, second]);
        assert_eq!(outcomes, vec![Ok(()), Ok(())]);
        assert_eq!(plan.changes.len(), 1, "one write for the partition");
        let Change::Partition { state, .. } = &plan.changes[0] else {
            panic!("a partition change: {plan:?}");
        };
        assert_eq!(state.isr, p.isr);
        assert_eq!(state.partition_epoch, p.partition_epoch + 2);
    }

    #[test]
    fn given_an_offline_leader_resigning_in_a_batch_when_planned_then_another_in_sync_replica_leads()
     {
        let (ctl, epochs) = three_brokers(2);
        let p = ctl.metadata().topics["t"].partitions[0].clone();
        let resign = IsrChange {
            broker: p.leader,
            broker_epoch: epochs[p.leader as usize],
            topic: "t".into(),
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: -1,
            kind: IsrChangeKind::ResignOffline,
        };
        let stale_shrink = isr_request(&ctl, &epochs, 0, &[p.leader]);
        let (plan, outcomes) = ctl.alter_partitions(&[resign, stale_shrink]);
        assert_eq!(outcomes[0], Ok(()));
        assert!(
            matches!(outcomes[1], Err(ControllerError::NotLeader { .. })),
            "the old leader no longer leads: {outcomes:?}"
        );
        let Change::Partition { state, .. } = &plan.changes[0] else {
            panic!("a partition change: {plan:?}");
        };
        assert_ne!(state.leader, p.leader);
        assert!(!state.isr.contains(&p.leader));
        assert_eq!(state.leader_epoch, p.leader_epoch + 1);
    }
}
