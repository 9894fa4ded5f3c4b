//! Conversions between the core's types ([`crate::state`], [`Liveness`])
//! and the `rill.controller.v1` protobuf messages, in both directions: the
//! service converts the core's state and [`Change`]s to proto, the client
//! converts proto back to the same Rust types. Keeping both directions in
//! one file keeps them symmetric.

use std::collections::BTreeMap;

use rill_proto::controller as pb;

use crate::controller::{Controller, Liveness};
use crate::state::{BrokerId, BrokerRegistration, Change, Endpoints, PartitionState, TopicState};

pub(crate) fn endpoints_to_pb(e: &Endpoints) -> pb::Endpoints {
    pb::Endpoints {
        client: e.client.clone(),
        kafka: e.kafka.clone(),
        kafka_listeners: e.kafka_listeners.clone().into_iter().collect(),
        replication: e.replication.clone(),
    }
}

pub(crate) fn endpoints_from_pb(e: Option<pb::Endpoints>) -> Endpoints {
    let e = e.unwrap_or_default();
    Endpoints {
        client: e.client,
        kafka: e.kafka,
        kafka_listeners: e.kafka_listeners.into_iter().collect(),
        replication: e.replication,
    }
}

pub(crate) fn liveness_to_pb(l: Liveness) -> pb::BrokerState {
    match l {
        Liveness::Active => pb::BrokerState::Active,
        Liveness::ShuttingDown => pb::BrokerState::ShuttingDown,
        Liveness::Fenced => pb::BrokerState::Fenced,
    }
}

/// Unknown enum values (from a newer controller) read as fenced: the safe
/// assumption is that such a broker must not be used.
pub(crate) fn liveness_from_pb(value: i32) -> Liveness {
    match pb::BrokerState::try_from(value) {
        Ok(pb::BrokerState::Active) => Liveness::Active,
        Ok(pb::BrokerState::ShuttingDown) => Liveness::ShuttingDown,
        Ok(pb::BrokerState::Fenced) | Err(_) => Liveness::Fenced,
    }
}

pub(crate) fn broker_to_pb(b: &BrokerRegistration, liveness: Liveness) -> pb::BrokerInfo {
    pb::BrokerInfo {
        id: b.id,
        epoch: b.epoch,
        endpoints: Some(endpoints_to_pb(&b.endpoints)),
        rack: b.rack.clone().unwrap_or_default(),
        state: liveness_to_pb(liveness) as i32,
    }
}

pub(crate) fn partition_to_pb(index: i32, p: &PartitionState) -> pb::PartitionInfo {
    pb::PartitionInfo {
        partition: index,
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        adding_replicas: p.adding.clone(),
        removing_replicas: p.removing.clone(),
    }
}

pub(crate) fn partition_from_pb(p: pb::PartitionInfo) -> PartitionState {
    PartitionState {
        replicas: p.replicas,
        isr: p.isr,
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        removing: p.removing_replicas,
        adding: p.adding_replicas,
    }
}

pub(crate) fn topic_to_pb(t: &TopicState) -> pb::TopicInfo {
    pb::TopicInfo {
        name: t.name.clone(),
        id: t.id.clone(),
        config: t
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        partitions: t
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| partition_to_pb(i as i32, p))
            .collect(),
    }
}

/// A topic from proto; partitions are placed by their `partition` field,
/// so a reordered list still converts to the right indexes. Fails on gaps
/// or duplicates.
pub(crate) fn topic_from_pb(t: pb::TopicInfo) -> Result<TopicState, String> {
    let mut parts: Vec<pb::PartitionInfo> = t.partitions;
    parts.sort_by_key(|p| p.partition);
    for (i, p) in parts.iter().enumerate() {
        if p.partition != i as i32 {
            return Err(format!(
                "topic {:?}: partition indexes are not 0..{} (found {})",
                t.name,
                parts.len(),
                p.partition
            ));
        }
    }
    Ok(TopicState {
        name: t.name,
        id: t.id,
        partitions: parts.into_iter().map(partition_from_pb).collect(),
        config: t.config.into_iter().collect::<BTreeMap<_, _>>(),
    })
}

/// The whole metadata as the first message of a watch stream.
pub(crate) fn snapshot(ctl: &Controller) -> pb::MetadataUpdate {
    pb::MetadataUpdate {
        controller_epoch: ctl.controller_epoch(),
        snapshot: true,
        brokers: ctl
            .brokers_liveness()
            .map(|(b, l)| broker_to_pb(b, l))
            .collect(),
        topics: ctl.metadata().topics.values().map(topic_to_pb).collect(),
        partitions: Vec::new(),
        deleted_topics: Vec::new(),
        acls_changed: true,
        acls: ctl.metadata().acls.iter().map(|a| a.to_wire()).collect(),
        client_quotas_changed: true,
        client_quotas: ctl.metadata().client_quotas.to_wire(),
    }
}

/// The delta for applied `changes` plus brokers whose liveness changed
/// (`liveness`), read against the controller state *after* the apply.
/// Brokers appear once each, with their current registration and state.
pub(crate) fn delta(
    ctl: &Controller,
    changes: &[Change],
    liveness: &[(BrokerId, Liveness)],
) -> pb::MetadataUpdate {
    let mut update = pb::MetadataUpdate {
        controller_epoch: ctl.controller_epoch(),
        snapshot: false,
        ..Default::default()
    };
    let mut brokers: Vec<BrokerId> = Vec::new();
    for change in changes {
        match change {
            Change::Broker(b) => brokers.push(b.id),
            Change::Topic(t) => update.topics.push(topic_to_pb(t)),
            Change::Partition {
                topic,
                partition,
                state,
            } => update.partitions.push(pb::PartitionUpdate {
                topic: topic.clone(),
                partition: Some(partition_to_pb(*partition, state)),
            }),
            Change::DeleteTopic(name) => update.deleted_topics.push(name.clone()),
            Change::Acls(acls) => {
                update.acls_changed = true;
                update.acls = acls.iter().map(|a| a.to_wire()).collect();
            }
            Change::ClientQuotas(quotas) => {
                update.client_quotas_changed = true;
                update.client_quotas = quotas.to_wire();
            }
        }
    }
    brokers.extend(liveness.iter().map(|(id, _)| *id));
    brokers.sort_unstable();
    brokers.dedup();
    update.brokers = brokers
        .into_iter()
        .filter_map(|id| ctl.metadata().brokers.get(&id))
        .map(|b| broker_to_pb(b, ctl.liveness(b.id)))
        .collect();
    update
}

/// True when the update carries nothing.
pub(crate) fn is_empty(u: &pb::MetadataUpdate) -> bool {
    u.brokers.is_empty()
        && u.topics.is_empty()
        && u.partitions.is_empty()
        && u.deleted_topics.is_empty()
        && !u.acls_changed
        && !u.client_quotas_changed
}
