//! The topology this broker answers from: who leads a partition, which
//! replicas and ISR it has, whether it is hosted here, which brokers exist
//! and where they listen.
//!
//! [`Topology`] has two cases, and every such question is answered by a
//! `match` on it here, so the request paths of [`ReplicaManager`] ask one
//! type and never test for cluster mode themselves:
//!
//! - [`Topology::Standalone`]: this broker leads every partition it holds,
//!   as the only replica; its local topics are the whole truth.
//! - [`Topology::Cluster`]: the controller's metadata as last received
//!   (installed by the cluster link); local replicas only add offsets.

use std::collections::BTreeMap;
use std::sync::Arc;

use rill_controller::client::MetadataView;

use super::{BrokerInfo, ReplicaManager, Settings, Topic, Topics, kafka_topic_id};
use crate::log::LogConfig;
use crate::partition::{Error, PartitionState};

/// One partition as described by Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub id: i32,
    /// -1 when the partition has no leader.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Local state when this broker hosts a replica.
    pub state: Option<PartitionState>,
    pub leader_epoch: i32,
}

/// A topic as described by Metadata and CreateTopic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicView {
    pub name: String,
    /// The topic id (KIP-516); nil only for a topic whose id is unknown.
    pub id: uuid::Uuid,
    pub partitions: Vec<PartitionView>,
    pub replication_factor: i32,
    /// Effective config, every known key.
    pub config: BTreeMap<String, String>,
    /// The keys the topic sets itself (the rest are broker defaults).
    pub overrides: BTreeMap<String, String>,
}

/// Where the partitions of this broker's topics are led and replicated.
#[derive(Debug)]
pub(super) enum Topology {
    /// No controller metadata: a standalone broker, or a cluster member
    /// whose first metadata has not arrived yet.
    Standalone,
    /// The controller's metadata as last received.
    Cluster(MetadataView),
}

impl Topology {
    /// Why `topic`-`partition`, which this broker does not host, is not
    /// served here: in a cluster that knows the partition, the error that
    /// sends clients to its leader; `None` otherwise (the caller reports it
    /// unknown).
    pub(super) fn not_hosted(&self, topic: &str, partition: i32) -> Option<Error> {
        let index = usize::try_from(partition).ok();
        if let Self::Cluster(view) = self
            && let Some(state) = view
                .topics
                .get(topic)
                .zip(index)
                .and_then(|(t, i)| t.partitions.get(i))
        {
            return Some(Error::NotLeader {
                topic: topic.to_owned(),
                partition,
                leader: Some(state.leader).filter(|l| *l != rill_controller::NO_LEADER),
            });
        }
        None
    }

    /// Describes the named topics, or all topics when `names` is empty.
    fn describe(
        &self,
        names: &[String],
        local: &Topics,
        settings: &Settings,
        defaults: &LogConfig,
    ) -> Result<Vec<TopicView>, Error> {
        let me = match self {
            Self::Cluster(view) => {
                return cluster_metadata(view, names, local, settings, defaults);
            }
            Self::Standalone => settings.broker.id,
        };
        let topics = local.read();
        let selected: Vec<Arc<Topic>> = if names.is_empty() {
            topics.values().cloned().collect()
        } else {
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                out.push(
                    topics
                        .get(name)
                        .cloned()
                        .ok_or_else(|| Error::UnknownTopic(name.clone()))?,
                );
            }
            out
        };
        drop(topics);
        Ok(selected.iter().map(|t| standalone_view(t, me)).collect())
    }

    /// Checks that topic `name` may be created here: it does not exist
    /// yet, and its `replication_factor` can be placed (in a cluster: on
    /// the active brokers; standalone: -1, 0 or 1).
    pub(super) fn check_new_topic(
        &self,
        name: &str,
        replication_factor: i32,
        local: &Topics,
    ) -> Result<(), Error> {
        match self {
            Self::Cluster(view) => {
                if view.topics.contains_key(name) {
                    return Err(Error::TopicExists(name.to_owned()));
                }
                let rf = replication_factor.max(1);
                let available = view
                    .brokers
                    .values()
                    .filter(|b| b.state == rill_controller::Liveness::Active)
                    .count();
                if rf as usize > available {
                    return Err(Error::Placement(format!(
                        "replication factor {rf} is larger than the {available} available brokers"
                    )));
                }
            }
            Self::Standalone => {
                if !(-1..=1).contains(&replication_factor) {
                    return Err(Error::InvalidReplicationFactor(replication_factor));
                }
                if local.read().contains_key(name) {
                    return Err(Error::TopicExists(name.to_owned()));
                }
            }
        }
        Ok(())
    }

    /// The partition count of `name` in the controller's metadata; `None`
    /// standalone or when the metadata does not have the topic.
    pub(super) fn cluster_partitions(&self, name: &str) -> Option<i32> {
        match self {
            Self::Cluster(view) => view.topics.get(name).map(|t| t.partitions.len() as i32),
            Self::Standalone => None,
        }
    }

    /// Number of partitions of a topic: from the controller's metadata in a
    /// cluster, else from the local topics.
    fn topic_partitions(&self, topic: &str, local: &Topics) -> Option<i32> {
        match self {
            Self::Cluster(view) => view.topics.get(topic).map(|t| t.partitions.len() as i32),
            Self::Standalone => local.read().get(topic).map(|t| t.spec.partitions),
        }
    }

    /// A topic's id and partition count.
    fn topic_id(&self, topic: &str, local: &Topics) -> Option<(uuid::Uuid, i32)> {
        match self {
            Self::Cluster(view) => view
                .topics
                .get(topic)
                .map(|t| (kafka_topic_id(&t.id), t.partitions.len() as i32)),
            Self::Standalone => local
                .read()
                .get(topic)
                .map(|t| (kafka_topic_id(&t.spec.id), t.spec.partitions)),
        }
    }

    /// Every topic's name.
    fn topic_names(&self, local: &Topics) -> Vec<String> {
        match self {
            Self::Cluster(view) => view.topics.keys().cloned().collect(),
            Self::Standalone => local.read().keys().cloned().collect(),
        }
    }

    /// The broker leading a partition (`me` when standalone and the
    /// partition is here), if any.
    fn leader_of(&self, topic: &str, partition: i32, local: &Topics, me: i32) -> Option<i32> {
        match self {
            Self::Cluster(view) => view
                .topics
                .get(topic)
                .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
                .map(|p| p.leader)
                .filter(|l| *l != rill_controller::NO_LEADER),
            Self::Standalone => {
                let index = usize::try_from(partition).ok()?;
                let topics = local.read();
                let hosted = topics.get(topic)?.partitions.get(index)?.is_some();
                hosted.then_some(me)
            }
        }
    }

    /// The Kafka address of `broker` on `listener`, empty when it has none.
    fn kafka_address(
        &self,
        broker: i32,
        me: &BrokerInfo,
        listener: Option<&str>,
    ) -> Option<String> {
        match self {
            Self::Cluster(view) => {
                let endpoints = &view.brokers.get(&broker)?.endpoints;
                Some(
                    listener
                        .and_then(|name| endpoints.kafka_listeners.get(name))
                        .unwrap_or(&endpoints.kafka)
                        .clone(),
                )
            }
            Self::Standalone if broker == me.id => Some(me.kafka_address_on(listener).to_owned()),
            Self::Standalone => None,
        }
    }

    /// Brokers that are alive in a cluster (`None` when standalone).
    fn live_brokers(&self) -> Option<usize> {
        let Self::Cluster(view) = self else {
            return None;
        };
        Some(
            view.brokers
                .values()
                .filter(|b| b.state == rill_controller::Liveness::Active)
                .count(),
        )
    }

    /// Brokers to advertise: every registered broker in a cluster, else `me`.
    fn brokers(&self, me: &BrokerInfo) -> Vec<BrokerInfo> {
        match self {
            Self::Cluster(view) => view
                .brokers
                .values()
                .map(|b| BrokerInfo {
                    id: b.id,
                    address: b.endpoints.client.clone(),
                    kafka_address: b.endpoints.kafka.clone(),
                    kafka_listeners: b.endpoints.kafka_listeners.clone(),
                    rack: b.rack.clone(),
                    // Fenced or shutting down: not to be used by clients.
                    fenced: b.state != rill_controller::Liveness::Active,
                })
                .collect(),
            Self::Standalone => vec![me.clone()],
        }
    }
}

impl ReplicaManager {
    /// Describes the named topics, or all topics when `names` is empty.
    pub fn metadata(&self, names: &[String]) -> Result<Vec<TopicView>, Error> {
        self.topology
            .read()
            .describe(names, &self.topics, &self.settings, &self.log_defaults())
    }

    /// Installs the controller's metadata, which answers Metadata requests.
    pub fn set_cluster_view(&self, view: MetadataView) {
        let old = std::mem::replace(&mut *self.topology.write(), Topology::Cluster(view));
        self.topology_changed.notify_waiters();
        // Freed outside the lock: a view of many partitions takes a while.
        drop(old);
    }

    /// Number of partitions of a topic: from the controller's metadata in a
    /// cluster, else from the local topics.
    pub fn topic_partitions(&self, topic: &str) -> Option<i32> {
        self.topology.read().topic_partitions(topic, &self.topics)
    }

    /// A topic's Kafka id and partition count, if it exists.
    pub fn topic_id(&self, topic: &str) -> Option<(uuid::Uuid, i32)> {
        self.topology.read().topic_id(topic, &self.topics)
    }

    /// Every topic's name.
    pub fn topic_names(&self) -> Vec<String> {
        self.topology.read().topic_names(&self.topics)
    }

    /// The broker leading a partition (this one when standalone), if any.
    pub fn leader_of(&self, topic: &str, partition: i32) -> Option<i32> {
        self.topology
            .read()
            .leader_of(topic, partition, &self.topics, self.settings.broker.id)
    }

    /// The Kafka address (host:port) of a broker on `listener` (its first
    /// listener when `None` or unknown): as registered with the controller
    /// in a cluster, this broker's own when standalone; `None` when unknown
    /// or empty.
    pub fn kafka_address(&self, broker: i32, listener: Option<&str>) -> Option<String> {
        let address =
            self.topology
                .read()
                .kafka_address(broker, &self.settings.broker, listener)?;
        (!address.is_empty()).then_some(address)
    }

    /// Brokers that are alive in a cluster (`None` when standalone).
    pub fn live_brokers(&self) -> Option<usize> {
        self.topology.read().live_brokers()
    }

    /// The replication address (host:port) of another broker in a cluster,
    /// where its `Transactions` service listens too.
    pub fn replication_address(&self, broker: i32) -> Option<String> {
        match &*self.topology.read() {
            Topology::Cluster(view) => view
                .brokers
                .get(&broker)
                .map(|b| b.endpoints.replication.clone())
                .filter(|a| !a.is_empty()),
            Topology::Standalone => None,
        }
    }

    /// Brokers to advertise: every registered broker in a cluster, else this one.
    pub fn brokers(&self) -> Vec<BrokerInfo> {
        self.topology.read().brokers(&self.settings.broker)
    }
}

/// Metadata of the named topics (all when `names` is empty) as the
/// controller describes them, with the local leader's offsets.
fn cluster_metadata(
    view: &MetadataView,
    names: &[String],
    local: &Topics,
    settings: &Settings,
    defaults: &LogConfig,
) -> Result<Vec<TopicView>, Error> {
    let selected: Vec<&rill_controller::TopicState> = if names.is_empty() {
        view.topics.values().collect()
    } else {
        names
            .iter()
            .map(|n| {
                view.topics
                    .get(n)
                    .ok_or_else(|| Error::UnknownTopic(n.clone()))
            })
            .collect::<Result<_, _>>()?
    };
    let topics = local.read();
    Ok(selected
        .into_iter()
        .map(|t| {
            let local = topics.get(&t.name);
            let config = defaults
                .clone()
                .with_overrides(&t.config)
                .map(|c| c.to_map())
                .unwrap_or_else(|_| t.config.clone());
            TopicView {
                name: t.name.clone(),
                id: kafka_topic_id(&t.id),
                replication_factor: t.partitions.first().map_or(0, |p| p.replicas.len() as i32),
                config,
                overrides: t.config.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(i, p)| PartitionView {
                        id: i as i32,
                        leader: p.leader,
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                        leader_epoch: p.leader_epoch,
                        // Offsets are the leader's to tell; a follower's
                        // HW lags behind.
                        state: local
                            .and_then(|l| l.partitions.get(i).cloned().flatten())
                            .filter(|_| p.leader == settings.broker.id)
                            .map(|lp| lp.state()),
                    })
                    .collect(),
            }
        })
        .collect())
}

/// A standalone broker's view of a topic: it leads every partition.
pub(super) fn standalone_view(t: &Topic, me: i32) -> TopicView {
    TopicView {
        name: t.spec.name.clone(),
        id: kafka_topic_id(&t.spec.id),
        partitions: t
            .hosted()
            .map(|p| {
                let state = p.state();
                PartitionView {
                    id: p.id,
                    leader: me,
                    replicas: vec![me],
                    isr: vec![me],
                    leader_epoch: state.leader_epoch,
                    state: Some(state),
                }
            })
            .collect(),
        replication_factor: t.spec.replication_factor,
        config: t.config.to_map(),
        overrides: t.spec.config.clone(),
    }
}
