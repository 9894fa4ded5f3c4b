//! Metadata, DescribeTopicPartitions and DescribeCluster: which brokers
//! exist (with their Kafka listener addresses), which topics, and for each
//! partition its leader, leader epoch, replicas and in-sync replicas.
//! DescribeTopicPartitions (KIP-966's paged describe, used by
//! `kafka-topics --describe` since Kafka 3.7) pages through topics in name
//! order, at most `response_partition_limit` partitions per answer, and
//! names offline replicas (brokers fenced or gone).
//!
//! In a cluster the answer comes from the controller's view, so any broker
//! tells clients where every leader is; fenced brokers are left out, as
//! Kafka does. A partition without a leader is LEADER_NOT_AVAILABLE, an
//! unknown topic UNKNOWN_TOPIC_OR_PARTITION (UNKNOWN_TOPIC_ID when asked
//! by id), a bad name INVALID_TOPIC_EXCEPTION.
//!
//! Auto-creation: a Metadata request with `allow_auto_topic_creation`
//! creates an unknown topic only when the broker runs with
//! `--auto-create-topic-partitions`; without it (the default) topics exist
//! only when someone created them on purpose. The controller id reported
//! is the answering broker: Rill's controller is not a Kafka broker, and
//! every broker forwards topic administration to it.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeTopicPartitionsRequest,
    DescribeTopicPartitionsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tracing::info;

use super::errors::code_and_message;
use super::topic_id::str_bytes;
use super::{KafkaContext, split_host_port};
use crate::partition::Error;
use crate::partition::manager::{BrokerInfo, CreateTopic, TopicView};
use crate::partition::store::validate_topic_name;

/// Value of the authorized-operations fields when not requested.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// A broker as Kafka clients address it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaBroker {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// Every broker with a Kafka listener (fenced ones included, marked).
pub fn kafka_brokers(ctx: &KafkaContext) -> Vec<KafkaBroker> {
    ctx.manager
        .brokers()
        .into_iter()
        .filter_map(|b: BrokerInfo| {
            let (host, port) = split_host_port(b.kafka_address_on(ctx.listener.as_deref()))?;
            Some(KafkaBroker {
                id: b.id,
                host,
                port,
                rack: b.rack,
                fenced: b.fenced,
            })
        })
        .collect()
}

/// The leader and leader epoch of a partition, from the metadata.
pub fn leader_of(ctx: &KafkaContext, topic: &str, partition: i32) -> Option<(i32, i32)> {
    let views = ctx.manager.metadata(&[topic.to_owned()]).ok()?;
    let p = views
        .first()?
        .partitions
        .iter()
        .find(|p| p.id == partition)?;
    (p.leader >= 0).then_some((p.leader, p.leader_epoch))
}

/// Where produce and fetch responses send clients after leadership moved
/// (KIP-951): the current leader and epoch of each partition that failed
/// with NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH, and once per broker
/// the endpoint to reach it, so clients need no Metadata round trip.
#[derive(Debug, Default)]
pub struct LeaderHints {
    brokers: Vec<KafkaBroker>,
}

impl LeaderHints {
    /// The current leader and leader epoch of a partition, if it has one;
    /// its broker joins the endpoints to return.
    pub fn leader(
        &mut self,
        ctx: &KafkaContext,
        topic: &str,
        partition: i32,
    ) -> Option<(i32, i32)> {
        let (leader, epoch) = leader_of(ctx, topic, partition)?;
        if !self.brokers.iter().any(|b| b.id == leader)
            && let Some(b) = kafka_brokers(ctx).into_iter().find(|b| b.id == leader)
        {
            self.brokers.push(b);
        }
        Some((leader, epoch))
    }

    /// The brokers named by the hints given, each once.
    pub fn into_brokers(self) -> Vec<KafkaBroker> {
        self.brokers
    }
}

/// The node endpoints of the brokers named by a [`LeaderHints`], as the
/// response's own generated `NodeEndpoint` type (Produce and Fetch each have
/// one).
macro_rules! node_endpoints {
    ($hints:expr, $endpoint:ty) => {
        $hints
            .into_brokers()
            .into_iter()
            .map(|b| {
                <$endpoint>::default()
                    .with_node_id(::kafka_protocol::messages::BrokerId(b.id))
                    .with_host(::kafka_protocol::protocol::StrBytes::from_string(b.host))
                    .with_port(b.port)
                    .with_rack(
                        b.rack
                            .map(::kafka_protocol::protocol::StrBytes::from_string),
                    )
            })
            .collect::<Vec<$endpoint>>()
    };
}
pub(crate) use node_endpoints;

/// Every topic in the metadata, by name.
fn known_topics(ctx: &KafkaContext) -> BTreeMap<String, TopicView> {
    ctx.manager
        .metadata(&[])
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect()
}

/// The topic names a request asks for: by name, or by id (resolved
/// against the known topics); `None` means every topic.
enum Wanted {
    All,
    Topics(Vec<Result<String, uuid::Uuid>>),
}

pub async fn metadata(
    ctx: &KafkaContext,
    version: i16,
    request: MetadataRequest,
) -> MetadataResponse {
    let known = known_topics(ctx);
    let wanted = match request.topics {
        None => Wanted::All,
        // v0 has no null list: empty means every topic.
        Some(topics) if version == 0 && topics.is_empty() => Wanted::All,
        Some(topics) => Wanted::Topics(
            topics
                .into_iter()
                .map(|t| match t.name {
                    Some(name) => Ok(name.0.to_string()),
                    None => known
                        .values()
                        .find(|k| !t.topic_id.is_nil() && k.id == t.topic_id)
                        .map(|k| k.name.clone())
                        .ok_or(t.topic_id),
                })
                .collect(),
        ),
    };
    // Before v4 the field does not exist and the codec reads it as true.
    let auto_create = request.allow_auto_topic_creation;
    let mut topics = Vec::new();
    match wanted {
        Wanted::All => topics.extend(known.values().map(|t| topic_entry(version, t))),
        Wanted::Topics(list) => {
            for wanted in list {
                let entry = match wanted {
                    Ok(name) => match known.get(&name) {
                        Some(t) => topic_entry(version, t),
                        None => missing_topic(ctx, version, &name, auto_create).await,
                    },
                    Err(id) => MetadataResponseTopic::default()
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_topic_id(id)
                        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED),
                };
                if entry.error_code != 0 {
                    ctx.count_error(ApiKey::Metadata, entry.error_code);
                }
                topics.push(entry);
            }
        }
    }
    let brokers = kafka_brokers(ctx)
        .into_iter()
        .filter(|b| !b.fenced)
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(StrBytes::from_string))
        })
        .collect();
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED);
    if version >= 1 {
        response = response.with_controller_id(BrokerId(ctx.settings.broker_id));
    }
    if version >= 2 {
        response =
            response.with_cluster_id(Some(StrBytes::from_string(ctx.settings.cluster_id.clone())));
    }
    response
}

/// A topic not (yet) in the metadata: invalid name, auto-created when
/// allowed, else unknown.
async fn missing_topic(
    ctx: &KafkaContext,
    version: i16,
    name: &str,
    auto_create: bool,
) -> MetadataResponseTopic {
    let entry = |code: i16| {
        MetadataResponseTopic::default()
            .with_error_code(code)
            .with_name(Some(TopicName(str_bytes(name))))
            .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
    };
    if validate_topic_name(name).is_err() {
        return entry(ResponseError::InvalidTopicException.code());
    }
    let Some(partitions) = ctx.settings.auto_create_partitions.filter(|_| auto_create) else {
        return entry(ResponseError::UnknownTopicOrPartition.code());
    };
    let created = ctx
        .manager
        .create_topic(CreateTopic {
            name: name.to_owned(),
            partitions,
            replication_factor: -1,
            config: BTreeMap::new(),
        })
        .await;
    match created {
        Ok(view) => {
            info!(
                topic = name,
                partitions, "auto-created topic on a Kafka Metadata request"
            );
            topic_entry(version, &view)
        }
        // Another client won the race: the next Metadata shows it.
        Err(Error::TopicExists(_)) => entry(ResponseError::LeaderNotAvailable.code()),
        Err(e) => entry(code_and_message(&e).0),
    }
}

fn topic_entry(version: i16, t: &TopicView) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let error = if p.leader < 0 {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            let mut entry = MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(p.id)
                .with_leader_id(BrokerId(p.leader))
                .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect());
            if version >= 7 {
                entry = entry.with_leader_epoch(p.leader_epoch);
            }
            entry
        })
        .collect();
    let mut entry = MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&t.name))))
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED);
    if version >= 10 {
        entry = entry.with_topic_id(t.id);
    }
    entry
}

/// The most partitions one DescribeTopicPartitions answer holds (Kafka's
/// `max.request.partition.size.limit` default).
const MAX_PARTITIONS_PER_DESCRIBE: i32 = 2000;

/// Internal topics, as `is_internal` reports them.
fn is_internal(topic: &str) -> bool {
    topic.starts_with("__")
}

pub async fn describe_topic_partitions(
    ctx: &KafkaContext,
    _version: i16,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let known = known_topics(ctx);
    let mut names: Vec<String> = if request.topics.is_empty() {
        known.keys().cloned().collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    names.sort_unstable();
    names.dedup();
    let cursor = request
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index.max(0)));
    let live: std::collections::HashSet<i32> = kafka_brokers(ctx)
        .into_iter()
        .filter(|b| !b.fenced)
        .map(|b| b.id)
        .collect();
    let mut left = request
        .response_partition_limit
        .clamp(1, MAX_PARTITIONS_PER_DESCRIBE) as usize;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    let after_cursor = |n: &String| cursor.as_ref().is_none_or(|(t, _)| n >= t);
    for name in names.into_iter().filter(after_cursor) {
        let Some(t) = known.get(&name) else {
            let code = if validate_topic_name(&name).is_err() {
                ResponseError::InvalidTopicException.code()
            } else {
                ResponseError::UnknownTopicOrPartition.code()
            };
            ctx.count_error(ApiKey::DescribeTopicPartitions, code);
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(code)
                    .with_name(Some(TopicName(str_bytes(&name))))
                    .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED),
            );
            continue;
        };
        let first = match &cursor {
            Some((topic, partition)) if *topic == name => *partition,
            _ => 0,
        };
        let mut wanted: Vec<_> = t.partitions.iter().filter(|p| p.id >= first).collect();
        wanted.sort_by_key(|p| p.id);
        if left == 0 {
            next_cursor = wanted.first().map(|p| (name.clone(), p.id));
            break;
        }
        let mut partitions = Vec::new();
        for p in wanted {
            if left == 0 {
                next_cursor = Some((name.clone(), p.id));
                break;
            }
            left -= 1;
            let error = if p.leader < 0 {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(error)
                    .with_partition_index(p.id)
                    .with_leader_id(BrokerId(p.leader))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                    .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect())
                    // Rill elects from the ISR only: no eligible leader
                    // replicas (KIP-966) beyond it.
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
                    .with_offline_replicas(
                        p.replicas
                            .iter()
                            .copied()
                            .filter(|r| !live.contains(r))
                            .map(BrokerId)
                            .collect(),
                    ),
            );
        }
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(str_bytes(&t.name))))
                .with_topic_id(t.id)
                .with_is_internal(is_internal(&t.name))
                .with_partitions(partitions)
                .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor.map(|(topic, partition)| {
            Cursor::default()
                .with_topic_name(TopicName(str_bytes(&topic)))
                .with_partition_index(partition)
        }))
}

pub async fn describe_cluster(
    ctx: &KafkaContext,
    version: i16,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(ctx.settings.cluster_id.clone()))
        .with_controller_id(BrokerId(ctx.settings.broker_id))
        .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED);
    if version >= 1 {
        response = response.with_endpoint_type(request.endpoint_type);
        // 1 is brokers; Rill's controller speaks no Kafka.
        if request.endpoint_type != 1 {
            ctx.count_error(
                ApiKey::DescribeCluster,
                ResponseError::UnsupportedEndpointType.code(),
            );
            return response
                .with_error_code(ResponseError::UnsupportedEndpointType.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "only brokers (endpoint type 1) are described; the Rill controller has no Kafka endpoint",
                )));
        }
    }
    let include_fenced = version >= 2 && request.include_fenced_brokers;
    let brokers = kafka_brokers(ctx)
        .into_iter()
        .filter(|b| include_fenced || !b.fenced)
        .map(|b| {
            let mut entry = DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(StrBytes::from_string));
            if version >= 2 {
                entry = entry.with_is_fenced(b.fenced);
            }
            entry
        })
        .collect();
    response.with_brokers(brokers)
}
