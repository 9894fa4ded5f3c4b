//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions and
//! DescribeConfigs.
//!
//! Creation, growth and deletion go through the same
//! [`ReplicaManager`](crate::partition::manager::ReplicaManager) calls as
//! the gRPC API, which forward to the controller in a cluster. They obey
//! the cluster policy `--kafka-topic-admin`: with `deny` every request is
//! answered POLICY_VIOLATION and nothing changes (topics are then managed
//! elsewhere, e.g. as Topic resources). `validate_only` checks everything
//! (name, partitions, replication factor against the brokers available,
//! config keys and values, existence) without changing anything.
//!
//! Defaults: `num_partitions` -1 and `replication_factor` -1 mean the
//! broker's `num.partitions` and `default.replication.factor` (1 unless
//! configured), as in Kafka. Manual replica assignments are refused
//! (INVALID_REPLICA_ASSIGNMENT): the controller places replicas.
//!
//! DescribeConfigs describes topics (every effective setting, the topic's
//! own overrides marked as such) and this broker (its id, listeners,
//! limits and the log defaults under their Kafka broker names), enough
//! for `kafka-topics --describe` and `kafka-configs --describe`.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::KafkaContext;
use super::TopicAdminPolicy;
use super::errors::code_and_message;
use super::topic_id::{id_of, known_topics, resolve, str_bytes};
use crate::partition::manager::{CreateTopic, TopicView};
use rill_proto::broker_config::Source;

/// DescribeConfigs resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// Config sources (Kafka's `ConfigSource`).
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// Config types (Kafka's `ConfigDef.Type`).
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;

fn create_denied(ctx: &KafkaContext) -> bool {
    ctx.settings.create_topics == TopicAdminPolicy::Deny
}

fn delete_denied(ctx: &KafkaContext) -> bool {
    ctx.settings.delete_topics == TopicAdminPolicy::Deny
}

const CREATE_POLICY_MESSAGE: &str = "creating and growing topics through the Kafka protocol is disabled on this cluster (--kafka-create-topics=deny; on Kubernetes: StreamCluster spec.topicPolicy.createTopics)";
const DELETE_POLICY_MESSAGE: &str = "deleting topics through the Kafka protocol is disabled on this cluster (--kafka-delete-topics=deny; on Kubernetes: StreamCluster spec.topicPolicy.deleteTopics)";

fn message(version: i16, min_version: i16, text: String) -> Option<StrBytes> {
    (version >= min_version).then(|| StrBytes::from_string(text))
}

/// The Kafka type of a topic config key.
fn config_type(key: &str) -> i8 {
    match key {
        "cleanup.policy" => TYPE_LIST,
        "flush" => TYPE_STRING,
        "max.message.bytes" | "min.insync.replicas" | "index.interval.bytes" | "segment.bytes" => {
            TYPE_INT
        }
        k if k.ends_with(".enable") => TYPE_BOOLEAN,
        k if k.ends_with(".ms") || k.ends_with(".bytes") => TYPE_LONG,
        _ => TYPE_STRING,
    }
}

/// A config as described: key, value, source.
type ConfigEntry = (String, String, i8);

/// A topic's effective configs with their sources.
fn topic_configs(view: &TopicView) -> Vec<ConfigEntry> {
    view.config
        .iter()
        .map(|(k, v)| {
            let source = if view.overrides.contains_key(k) {
                SOURCE_TOPIC
            } else {
                SOURCE_DEFAULT
            };
            (k.clone(), v.clone(), source)
        })
        .collect()
}

pub async fn create_topics(
    ctx: &KafkaContext,
    version: i16,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<String> = request
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        let fail = |error: ResponseError, text: String| {
            ctx.count_error(ApiKey::CreateTopics, error.code());
            result
                .clone()
                .with_error_code(error.code())
                .with_error_message(message(version, 1, text))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
        };
        if create_denied(ctx) {
            results.push(fail(
                ResponseError::PolicyViolation,
                CREATE_POLICY_MESSAGE.to_owned(),
            ));
            continue;
        }
        if duplicates.contains(&name) {
            results.push(fail(
                ResponseError::InvalidRequest,
                format!("topic {name:?} appears more than once in the request"),
            ));
            continue;
        }
        if !topic.assignments.is_empty() {
            results.push(fail(
                ResponseError::InvalidReplicaAssignment,
                "manual replica assignment is not supported: the Rill controller places replicas"
                    .to_owned(),
            ));
            continue;
        }
        let partitions = match topic.num_partitions {
            -1 => ctx.settings.default_partitions,
            n => n,
        };
        let config: BTreeMap<String, String> = topic
            .configs
            .into_iter()
            .filter_map(|c| Some((c.name.to_string(), c.value?.to_string())))
            .collect();
        let create = CreateTopic {
            name: name.clone(),
            partitions,
            replication_factor: i32::from(topic.replication_factor),
            config,
        };
        let outcome = if request.validate_only {
            ctx.manager.validate_create_topic(&create).map(|()| None)
        } else {
            ctx.manager.create_topic(create.clone()).await.map(Some)
        };
        match outcome {
            Ok(view) => {
                let (partitions, rf, configs) = match &view {
                    Some(v) => (
                        v.partitions.len() as i32,
                        v.replication_factor,
                        topic_configs(v),
                    ),
                    None => (
                        partitions,
                        ctx.manager
                            .replication_factor_or_default(create.replication_factor),
                        Vec::new(),
                    ),
                };
                let mut ok = result
                    .with_num_partitions(partitions)
                    .with_replication_factor(i16::try_from(rf).unwrap_or(i16::MAX));
                if version >= 5 {
                    ok = ok.with_configs(Some(
                        configs
                            .into_iter()
                            .map(|(k, v, source)| {
                                CreatableTopicConfigs::default()
                                    .with_name(StrBytes::from_string(k))
                                    .with_value(Some(StrBytes::from_string(v)))
                                    .with_config_source(source)
                            })
                            .collect(),
                    ));
                }
                if version >= 7 {
                    ok = ok.with_topic_id(id_of(&ctx.manager, &name));
                }
                results.push(ok);
            }
            Err(e) => {
                let (code, text) = code_and_message(&e);
                ctx.count_error(ApiKey::CreateTopics, code);
                results.push(
                    result
                        .with_error_code(code)
                        .with_error_message(message(version, 1, text))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                );
            }
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete_topics(
    ctx: &KafkaContext,
    version: i16,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v6 names topics by name or id; older versions by name.
    let wanted: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        let known = known_topics(&ctx.manager);
        request
            .topics
            .into_iter()
            .map(|t| match t.name {
                Some(n) => (Some(n.0.to_string()), t.topic_id),
                None => (
                    resolve(t.topic_id, known.iter().map(|(n, i)| (n.as_str(), *i)))
                        .map(str::to_owned),
                    t.topic_id,
                ),
            })
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let mut entry = DeletableTopicResult::default()
            .with_name(name.as_deref().map(|n| TopicName(str_bytes(n))));
        if version >= 6 {
            entry = entry.with_topic_id(match &name {
                Some(n) if id.is_nil() => id_of(&ctx.manager, n),
                _ => id,
            });
        }
        let outcome = match &name {
            None => Err((
                ResponseError::UnknownTopicId.code(),
                "no topic has this id".to_owned(),
            )),
            Some(_) if delete_denied(ctx) => Err((
                ResponseError::PolicyViolation.code(),
                DELETE_POLICY_MESSAGE.to_owned(),
            )),
            // Named by id: only the topic with that id is deleted, never a
            // topic created under the same name since.
            Some(n) => ctx
                .manager
                .delete_topic_with_id(n, (!id.is_nil()).then(|| id.to_string()).as_deref())
                .await
                .map_err(|e| code_and_message(&e)),
        };
        if let Err((code, text)) = outcome {
            ctx.count_error(ApiKey::DeleteTopics, code);
            entry = entry
                .with_error_code(code)
                .with_error_message(message(version, 5, text));
        }
        responses.push(entry);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    ctx: &KafkaContext,
    version: i16,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let _ = version;
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let outcome = if create_denied(ctx) {
            Err((
                ResponseError::PolicyViolation.code(),
                CREATE_POLICY_MESSAGE.to_owned(),
            ))
        } else if topic.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            Err((
                ResponseError::InvalidReplicaAssignment.code(),
                "manual replica assignment is not supported: the Rill controller places replicas"
                    .to_owned(),
            ))
        } else {
            ctx.manager
                .create_partitions(&name, topic.count, request.validate_only)
                .await
                .map_err(|e| code_and_message(&e))
        };
        let mut entry = CreatePartitionsTopicResult::default().with_name(topic.name);
        if let Err((code, text)) = outcome {
            ctx.count_error(ApiKey::CreatePartitions, code);
            entry = entry
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(text)));
        }
        results.push(entry);
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// This broker's configs as Kafka names them: (key, value, source).
fn broker_configs(ctx: &KafkaContext) -> Vec<ConfigEntry> {
    let me = ctx.manager.broker().clone();
    let defaults = ctx.manager.log_defaults().to_map();
    let mut out = vec![
        (
            "broker.id".to_owned(),
            me.id.to_string(),
            SOURCE_STATIC_BROKER,
        ),
        (
            "advertised.listeners".to_owned(),
            format!("PLAINTEXT://{}", me.kafka_address),
            SOURCE_STATIC_BROKER,
        ),
        (
            "socket.request.max.bytes".to_owned(),
            ctx.settings.max_request_bytes.to_string(),
            SOURCE_STATIC_BROKER,
        ),
        (
            "auto.create.topics.enable".to_owned(),
            ctx.settings.auto_create_partitions.is_some().to_string(),
            SOURCE_STATIC_BROKER,
        ),
        (
            "num.partitions".to_owned(),
            ctx.settings
                .auto_create_partitions
                .unwrap_or(ctx.settings.default_partitions)
                .to_string(),
            SOURCE_STATIC_BROKER,
        ),
        (
            "default.replication.factor".to_owned(),
            ctx.manager.replication_factor_or_default(-1).to_string(),
            SOURCE_STATIC_BROKER,
        ),
    ];
    if let Some(rack) = me.rack {
        out.push(("broker.rack".to_owned(), rack, SOURCE_STATIC_BROKER));
    }
    for (key, value) in defaults {
        let kafka_key = match key.as_str() {
            "segment.bytes" => "log.segment.bytes".to_owned(),
            "segment.ms" => "log.roll.ms".to_owned(),
            "retention.ms" => "log.retention.ms".to_owned(),
            "retention.bytes" => "log.retention.bytes".to_owned(),
            "cleanup.policy" => "log.cleanup.policy".to_owned(),
            "index.interval.bytes" => "log.index.interval.bytes".to_owned(),
            "max.message.bytes" => "message.max.bytes".to_owned(),
            "flush.ms" => "log.flush.interval.ms".to_owned(),
            "min.insync.replicas" => "min.insync.replicas".to_owned(),
            other => format!("log.{other}"),
        };
        out.push((kafka_key, value, SOURCE_STATIC_BROKER));
    }
    // Settings of the configuration file's table report where they came
    // from: their default, or the file, a flag or a variable (Kafka's
    // STATIC_BROKER_CONFIG, "set in server.properties").
    for (key, _, source) in &mut out {
        if let Some(from) = ctx.settings.config_sources.get(key.as_str()) {
            *source = match from {
                Source::Default => SOURCE_DEFAULT,
                Source::File | Source::Environment | Source::Flag => SOURCE_STATIC_BROKER,
            };
        }
    }
    out.sort();
    out
}

pub async fn describe_configs(
    ctx: &KafkaContext,
    version: i16,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let name = resource.resource_name.to_string();
            let configs: Result<(Vec<ConfigEntry>, bool), (ResponseError, String)> =
                match resource.resource_type {
                    RESOURCE_TOPIC => ctx
                        .manager
                        .metadata(std::slice::from_ref(&name))
                        .map(|views| (topic_configs(&views[0]), false))
                        .map_err(|e| {
                            let (code, text) = code_and_message(&e);
                            (
                                ResponseError::try_from_code(code)
                                    .unwrap_or(ResponseError::UnknownServerError),
                                text,
                            )
                        }),
                    RESOURCE_BROKER
                        if name.is_empty() || name == ctx.settings.broker_id.to_string() =>
                    {
                        Ok((broker_configs(ctx), true))
                    }
                    RESOURCE_BROKER => Err((
                        ResponseError::InvalidRequest,
                        format!(
                            "this is broker {}; ask broker {name} for its configs",
                            ctx.settings.broker_id
                        ),
                    )),
                    other => Err((
                        ResponseError::InvalidRequest,
                        format!("resource type {other} is not supported (topics: 2, brokers: 4)"),
                    )),
                };
            match configs {
                Ok((configs, read_only)) => {
                    // Null or empty: every key.
                    let keys: Option<BTreeSet<String>> = resource
                        .configuration_keys
                        .filter(|ks| !ks.is_empty())
                        .map(|ks| ks.into_iter().map(|k| k.to_string()).collect());
                    let entries = configs
                        .into_iter()
                        .filter(|(k, _, _)| keys.as_ref().is_none_or(|ks| ks.contains(k)))
                        .map(|(k, v, source)| {
                            let mut e = DescribeConfigsResourceResult::default()
                                .with_config_type(config_type(&k))
                                .with_name(StrBytes::from_string(k))
                                .with_value(Some(StrBytes::from_string(v)))
                                .with_read_only(read_only)
                                .with_config_source(source);
                            if version < 3 {
                                e = e.with_config_type(0);
                            }
                            if let (true, true, Some(from)) = (
                                resource.resource_type == RESOURCE_BROKER,
                                version >= 3,
                                ctx.settings.config_sources.get(e.name.as_str()),
                            ) {
                                e = e.with_documentation(Some(StrBytes::from_string(format!(
                                    "source: {}",
                                    from.as_str()
                                ))));
                            }
                            e
                        })
                        .collect();
                    result.with_configs(entries)
                }
                Err((error, text)) => {
                    ctx.count_error(ApiKey::DescribeConfigs, error.code());
                    result
                        .with_error_code(error.code())
                        .with_error_message(Some(StrBytes::from_string(text)))
                }
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
