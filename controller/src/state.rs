//! The durable cluster metadata: registered brokers, topics and their
//! partitions' replicas, leader, ISR and epochs, and the controller epoch.
//! Only these change on leader/ISR/topic events; nothing per-append is
//! ever stored here.

use std::collections::BTreeMap;

use rill_proto::acl::Acl;
use rill_proto::quota::ClientQuotas;
use serde::{Deserialize, Serialize};

/// A broker's id (the StatefulSet ordinal on Kubernetes).
pub type BrokerId = i32;

/// `leader` value of a partition with no leader.
pub const NO_LEADER: BrokerId = -1;

/// Where a broker listens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// host:port of the gRPC client API.
    pub client: String,
    /// host:port of the Kafka listener (the first one when named).
    pub kafka: String,
    /// host:port of each named Kafka listener.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kafka_listeners: BTreeMap<String, String>,
    /// host:port of the replication gRPC service.
    pub replication: String,
}

/// The latest registration of a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: BrokerId,
    /// Incarnation number, new and higher at every registration; requests
    /// carrying an older one come from a dead incarnation and are refused.
    pub epoch: i64,
    /// Identity of the broker's data directory. A new one means the disk was
    /// wiped: the broker holds no data and is in no ISR.
    pub log_dir_id: String,
    pub endpoints: Endpoints,
    pub rack: Option<String>,
}

/// Replicas, leader and ISR of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas: only these can become leader (unless the topic
    /// allows unclean election).
    pub isr: Vec<BrokerId>,
    /// Current leader, or [`NO_LEADER`].
    pub leader: BrokerId,
    /// Bumped at every leader change; fences requests from older leaders.
    pub leader_epoch: i32,
    /// Bumped at every change of this state; AlterPartition must name the
    /// current one, so two writers cannot both succeed.
    pub partition_epoch: i32,
    /// Replicas being moved away (a reassignment, or a drain before a
    /// scale-down): still in `replicas` until every other replica is in
    /// the ISR, then removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<BrokerId>,
    /// Replicas being added by a reassignment (KIP-455): in `replicas`
    /// from the start, catching up until they join the ISR. While a move
    /// is in flight `replicas` is the target followed by the `removing`
    /// ones; `replicas` minus `adding` is the assignment before the move.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<BrokerId>,
}

impl PartitionState {
    /// Whether replicas are being moved (a reassignment or a drain).
    pub fn moving(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas the partition ends with once its move completes.
    pub fn target(&self) -> Vec<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing.contains(r))
            .collect()
    }

    /// The replicas the partition had before its move began.
    pub fn original(&self) -> Vec<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding.contains(r))
            .collect()
    }
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicState {
    pub name: String,
    /// The topic's identity (KIP-516): a random UUID (hyphenated) given at
    /// creation, so a topic deleted and created again under the same name
    /// is a different topic. Everything that deletes or reuses data
    /// compares ids, never names. Empty only in metadata written before
    /// topics had ids; the controller assigns those one when it claims
    /// the store ([`crate::Controller::assign_topic_ids`]).
    #[serde(default)]
    pub id: String,
    pub partitions: Vec<PartitionState>,
    /// Kafka-style topic config (retention.ms, min.insync.replicas, ...).
    pub config: BTreeMap<String, String>,
}

/// A new random topic id.
pub fn new_topic_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl TopicState {
    /// Whether the topic lets an out-of-sync replica lead when no in-sync
    /// one is available (`unclean.leader.election.enable=true`), trading
    /// acknowledged data for availability.
    pub fn unclean_election(&self) -> bool {
        self.config
            .get("unclean.leader.election.enable")
            .is_some_and(|v| v == "true")
    }

    /// The topic's `min.insync.replicas`, 1 when it does not set one (the
    /// brokers' default is not known to the controller).
    pub fn min_insync_replicas(&self) -> usize {
        self.config
            .get("min.insync.replicas")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }
}

/// Everything the controller persists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    /// Incremented each time a controller takes over; every message to
    /// brokers carries it and brokers ignore older ones.
    pub controller_epoch: i64,
    pub brokers: BTreeMap<BrokerId, BrokerRegistration>,
    pub topics: BTreeMap<String, TopicState>,
    /// Kafka ACLs (CreateAcls, DeleteAcls), sorted, without duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acls: Vec<Acl>,
    /// Kafka client quotas (AlterClientQuotas).
    #[serde(default, skip_serializing_if = "ClientQuotas::is_empty")]
    pub client_quotas: ClientQuotas,
}

/// One durable change; also what brokers are told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    Broker(BrokerRegistration),
    /// A whole topic: created, or partitions added.
    Topic(TopicState),
    Partition {
        topic: String,
        partition: i32,
        state: PartitionState,
    },
    DeleteTopic(String),
    /// The whole new set of ACLs.
    Acls(Vec<Acl>),
    /// The whole new set of client quotas.
    ClientQuotas(ClientQuotas),
}

impl ClusterMetadata {
    /// Applies one change.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Broker(b) => {
                self.brokers.insert(b.id, b.clone());
            }
            Change::Topic(t) => {
                self.topics.insert(t.name.clone(), t.clone());
            }
            Change::Partition {
                topic,
                partition,
                state,
            } => {
                if let Some(p) = self
                    .topics
                    .get_mut(topic)
                    .and_then(|t| t.partitions.get_mut(*partition as usize))
                {
                    *p = state.clone();
                }
            }
            Change::DeleteTopic(name) => {
                self.topics.remove(name);
            }
            Change::Acls(acls) => self.acls = acls.clone(),
            Change::ClientQuotas(quotas) => self.client_quotas = quotas.clone(),
        }
    }

    /// The changes that turn `self` into `next`, topic-level changes for
    /// created topics and topics whose id, partition count or config changed,
    /// partition-level changes otherwise.
    pub fn diff(&self, next: &ClusterMetadata) -> Vec<Change> {
        let mut out = Vec::new();
        for (id, b) in &next.brokers {
            if self.brokers.get(id) != Some(b) {
                out.push(Change::Broker(b.clone()));
            }
        }
        for name in self.topics.keys() {
            if !next.topics.contains_key(name) {
                out.push(Change::DeleteTopic(name.clone()));
            }
        }
        for (name, t) in &next.topics {
            match self.topics.get(name) {
                Some(old)
                    if old.id == t.id
                        && old.config == t.config
                        && old.partitions.len() == t.partitions.len() =>
                {
                    for (i, (a, b)) in old.partitions.iter().zip(&t.partitions).enumerate() {
                        if a != b {
                            out.push(Change::Partition {
                                topic: name.clone(),
                                partition: i as i32,
                                state: b.clone(),
                            });
                        }
                    }
                }
                Some(old) if old == t => {}
                _ => out.push(Change::Topic(t.clone())),
            }
        }
        if self.acls != next.acls {
            out.push(Change::Acls(next.acls.clone()));
        }
        if self.client_quotas != next.client_quotas {
            out.push(Change::ClientQuotas(next.client_quotas.clone()));
        }
        out
    }
}
