//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions,
//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.
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
//!
//! AlterConfigs (replace every override of a topic, as Kafka does) and
//! IncrementalAlterConfigs (SET, DELETE; APPEND and SUBTRACT for list keys)
//! change topic configs through
//! [`ReplicaManager::alter_topic_config`](crate::partition::manager::ReplicaManager::alter_topic_config):
//! in a cluster the controller decides, and on Kubernetes its store applies
//! the StreamCluster's rule for topics a Topic resource manages (refuse
//! with POLICY_VIOLATION naming the resource, or write the change into the
//! resource first). Broker configs cannot be altered: they come from the
//! command line or config file (StreamCluster `spec.config`).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as AlterResult;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalAlterResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::KafkaContext;
use super::TopicAdminPolicy;
use super::errors::code_and_message;
use super::topic_id::{id_of, known_topics, resolve, str_bytes};
use crate::group::GroupError;
use crate::group::error::GroupErrorCode;
use crate::group::state::ShareConfig;
use crate::partition::manager::{CreateTopic, TopicView};
use rill_proto::broker_config::Source;

/// DescribeConfigs resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_GROUP: i8 = 32;

/// Config sources (Kafka's `ConfigSource`).
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_GROUP: i8 = 8;

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
            if me.kafka_listeners.is_empty() {
                format!("PLAINTEXT://{}", me.kafka_address)
            } else {
                me.kafka_listeners
                    .iter()
                    .map(|(name, address)| format!("{}://{address}", name.to_uppercase()))
                    .collect::<Vec<_>>()
                    .join(",")
            },
            SOURCE_STATIC_BROKER,
        ),
        (
            "socket.request.max.bytes".to_owned(),
            ctx.settings.max_request_bytes.to_string(),
            SOURCE_STATIC_BROKER,
        ),
        (
            "queued.max.request.bytes".to_owned(),
            ctx.request_memory.budget().to_string(),
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

/// Why a group's configs could not be read or changed.
fn group_refusal(e: &GroupError) -> Refusal {
    (
        ResponseError::try_from_code(e.code()).unwrap_or(ResponseError::UnknownServerError),
        e.to_string(),
    )
}

/// The config overrides of group `name`, from its coordinator.
async fn group_overrides(
    ctx: &KafkaContext,
    name: &str,
) -> Result<BTreeMap<String, String>, Refusal> {
    let shares = ctx.shares.as_ref().ok_or_else(|| {
        (
            ResponseError::InvalidRequest,
            "group configs are not served by this broker".to_owned(),
        )
    })?;
    shares
        .store()
        .group_config(name)
        .await
        .map_err(|e| group_refusal(&e))
}

/// A group's configs: every key Rill honours, set (GROUP_CONFIG) or its
/// default.
fn group_configs(overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
    ShareConfig::describe(overrides)
        .into_iter()
        .map(|(k, v, set)| (k, v, if set { SOURCE_GROUP } else { SOURCE_DEFAULT }))
        .collect()
}

/// The synonyms of a group config entry: the group's value, then the
/// default.
fn group_synonyms(name: &str, value: &str, source: i8) -> Vec<DescribeConfigsSynonym> {
    let default = ShareConfig::describe(&BTreeMap::new())
        .into_iter()
        .find(|(k, _, _)| k == name)
        .map(|(_, v, _)| v)
        .unwrap_or_default();
    let synonym = |value: &str, source: i8| {
        DescribeConfigsSynonym::default()
            .with_name(StrBytes::from_string(name.to_owned()))
            .with_value(Some(StrBytes::from_string(value.to_owned())))
            .with_source(source)
    };
    let mut out = Vec::new();
    if source == SOURCE_GROUP {
        out.push(synonym(value, SOURCE_GROUP));
    }
    out.push(synonym(&default, SOURCE_DEFAULT));
    out
}

pub async fn describe_configs(
    ctx: &KafkaContext,
    version: i16,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut groups: BTreeMap<String, Result<BTreeMap<String, String>, Refusal>> = BTreeMap::new();
    for r in &request.resources {
        if r.resource_type == RESOURCE_GROUP && !groups.contains_key(r.resource_name.as_str()) {
            let name = r.resource_name.to_string();
            let got = group_overrides(ctx, &name).await;
            groups.insert(name, got);
        }
    }
    let include_synonyms = request.include_synonyms;
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let name = resource.resource_name.to_string();
            let configs: Result<(Vec<ConfigEntry>, bool), (ResponseError, String)> = match resource
                .resource_type
            {
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
                RESOURCE_GROUP => match groups.get(&name) {
                    Some(Ok(overrides)) => Ok((group_configs(overrides), false)),
                    Some(Err(e)) => Err(e.clone()),
                    None => Ok((group_configs(&BTreeMap::new()), false)),
                },
                other => Err((
                    ResponseError::InvalidRequest,
                    format!(
                        "resource type {other} is not supported (topics: 2, brokers: 4, groups: 32)"
                    ),
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
                            if resource.resource_type == RESOURCE_GROUP && include_synonyms {
                                let value = e.value.as_ref().map_or("", |v| v.as_str()).to_owned();
                                let synonyms = group_synonyms(&e.name, &value, e.config_source);
                                e = e.with_synonyms(synonyms);
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

/// IncrementalAlterConfigs operations (Kafka's `AlterConfigOp.OpType`).
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

const BROKER_CONFIG_MESSAGE: &str = "broker configs cannot be changed through the Kafka protocol: they come from the broker's command line or config file (on Kubernetes: StreamCluster spec.config, applied by a rolling restart)";

/// Why one resource of an alter request was refused.
type Refusal = (ResponseError, String);

fn refusal(e: &crate::partition::Error) -> Refusal {
    let (code, text) = code_and_message(e);
    (
        ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError),
        text,
    )
}

/// Only topic configs can be altered.
fn alterable(resource_type: i8) -> Result<(), Refusal> {
    match resource_type {
        RESOURCE_TOPIC | RESOURCE_GROUP => Ok(()),
        RESOURCE_BROKER => Err((
            ResponseError::InvalidRequest,
            BROKER_CONFIG_MESSAGE.to_owned(),
        )),
        other => Err((
            ResponseError::InvalidRequest,
            format!("resource type {other} cannot be altered; only topics (2) and groups (32) can"),
        )),
    }
}

/// The overrides and effective settings of topic `name` as this broker
/// knows them.
fn topic_view(ctx: &KafkaContext, name: &str) -> Result<TopicView, Refusal> {
    ctx.manager
        .metadata(&[name.to_owned()])
        .map_err(|e| refusal(&e))?
        .into_iter()
        .next()
        .ok_or_else(|| {
            (
                ResponseError::UnknownTopicOrPartition,
                format!("unknown topic {name:?}"),
            )
        })
}

/// Applies IncrementalAlterConfigs operations to a topic's overrides:
/// SET and DELETE (back to the default) for every key, APPEND and SUBTRACT
/// only for list keys (`cleanup.policy`), on the effective value.
fn apply_ops(
    overrides: &BTreeMap<String, String>,
    effective: &BTreeMap<String, String>,
    ops: &[(String, i8, Option<String>)],
) -> Result<BTreeMap<String, String>, Refusal> {
    let invalid = |text: String| (ResponseError::InvalidRequest, text);
    let mut seen = BTreeSet::new();
    let mut next = overrides.clone();
    for (key, op, value) in ops {
        if !seen.insert(key.as_str()) {
            return Err(invalid(format!(
                "config {key:?} appears more than once in the request"
            )));
        }
        match *op {
            OP_SET => {
                let value = value
                    .clone()
                    .ok_or_else(|| invalid(format!("SET of {key:?} needs a value")))?;
                next.insert(key.clone(), value);
            }
            OP_DELETE => {
                next.remove(key);
            }
            OP_APPEND | OP_SUBTRACT => {
                if config_type(key) != TYPE_LIST {
                    return Err(invalid(format!(
                        "APPEND and SUBTRACT apply to list configs only; {key:?} is not a list (use SET)"
                    )));
                }
                let value = value.clone().unwrap_or_default();
                let current = next
                    .get(key)
                    .or_else(|| effective.get(key))
                    .cloned()
                    .unwrap_or_default();
                let mut items: Vec<String> = current
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if *op == OP_APPEND {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_owned());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                next.insert(key.clone(), items.join(","));
            }
            other => {
                return Err(invalid(format!(
                    "unknown operation {other} for {key:?} (SET 0, DELETE 1, APPEND 2, SUBTRACT 3)"
                )));
            }
        }
    }
    Ok(next)
}

/// Alters one topic to `config` (every override) and logs the outcome.
async fn alter_topic(
    ctx: &KafkaContext,
    api: ApiKey,
    name: &str,
    config: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), Refusal> {
    ctx.manager
        .alter_topic_config(name, config, validate_only)
        .await
        .map_err(|e| {
            tracing::info!(?api, topic = name, error = %e, "topic config change refused");
            refusal(&e)
        })
}

/// Applies IncrementalAlterConfigs operations to a group's config
/// overrides and stores them with the group's coordinator.
async fn alter_group(
    ctx: &KafkaContext,
    name: &str,
    ops: &[(String, i8, Option<String>)],
    validate_only: bool,
) -> Result<(), Refusal> {
    let overrides = group_overrides(ctx, name).await?;
    let next = apply_ops(&overrides, &overrides, ops)?;
    let shares = ctx.shares.as_ref().expect("group_overrides checked it");
    shares
        .store()
        .set_group_config(name, next, validate_only)
        .await
        .map_err(|e| {
            tracing::info!(group = name, error = %e, "group config change refused");
            group_refusal(&e)
        })
}

/// IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on topic
/// configs (what `kafka-configs --alter` sends). Each resource succeeds or
/// fails on its own; broker resources are refused.
pub async fn incremental_alter_configs(
    ctx: &KafkaContext,
    _version: i16,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let ops: Vec<(String, i8, Option<String>)> = resource
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.config_operation,
                    c.value.as_ref().map(|v| v.to_string()),
                )
            })
            .collect();
        let outcome = async {
            alterable(resource.resource_type)?;
            if resource.resource_type == RESOURCE_GROUP {
                return alter_group(ctx, &name, &ops, request.validate_only).await;
            }
            let view = topic_view(ctx, &name)?;
            let next = apply_ops(&view.overrides, &view.config, &ops)?;
            alter_topic(
                ctx,
                ApiKey::IncrementalAlterConfigs,
                &name,
                next,
                request.validate_only,
            )
            .await
        }
        .await;
        let result = IncrementalAlterResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name);
        responses.push(match outcome {
            Ok(()) => result,
            Err((error, text)) => {
                ctx.count_error(ApiKey::IncrementalAlterConfigs, error.code());
                result
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(text)))
            }
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// AlterConfigs (the legacy API): replaces a topic's whole set of
/// overrides by the configs given, as Kafka does; a key left out goes
/// back to the default. Broker resources are refused.
pub async fn alter_configs(
    ctx: &KafkaContext,
    _version: i16,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let config: BTreeMap<String, String> = resource
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let outcome = async {
            alterable(resource.resource_type)?;
            topic_view(ctx, &name)?;
            alter_topic(
                ctx,
                ApiKey::AlterConfigs,
                &name,
                config,
                request.validate_only,
            )
            .await
        }
        .await;
        let result = AlterResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name);
        responses.push(match outcome {
            Ok(()) => result,
            Err((error, text)) => {
                ctx.count_error(ApiKey::AlterConfigs, error.code());
                result
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(text)))
            }
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod alter_tests {
    use super::*;

    fn view(overrides: &[(&str, &str)]) -> TopicView {
        let overrides: BTreeMap<String, String> = overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut config = BTreeMap::from([
            ("cleanup.policy".to_owned(), "delete".to_owned()),
            ("retention.ms".to_owned(), "604800000".to_owned()),
        ]);
        config.extend(overrides.clone());
        TopicView {
            name: "orders".into(),
            id: Default::default(),
            partitions: vec![],
            replication_factor: 1,
            config,
            overrides,
        }
    }

    fn op(key: &str, op: i8, value: Option<&str>) -> (String, i8, Option<String>) {
        (key.to_owned(), op, value.map(str::to_owned))
    }

    #[test]
    fn given_set_and_delete_when_applied_should_change_only_the_named_overrides() {
        let v = view(&[("retention.ms", "1000"), ("segment.bytes", "1048576")]);
        let next = apply_ops(
            &v.overrides,
            &v.config,
            &[
                op("retention.ms", OP_SET, Some("60000")),
                op("segment.bytes", OP_DELETE, None),
                op("max.message.bytes", OP_SET, Some("2000000")),
            ],
        )
        .expect("applied");
        assert_eq!(
            next,
            BTreeMap::from([
                ("max.message.bytes".to_owned(), "2000000".to_owned()),
                ("retention.ms".to_owned(), "60000".to_owned()),
            ])
        );
    }

    #[test]
    fn given_list_ops_when_applied_should_work_on_the_effective_value_of_list_keys_only() {
        let v = view(&[]);
        let next = apply_ops(
            &v.overrides,
            &v.config,
            &[op("cleanup.policy", OP_APPEND, Some("compact"))],
        )
        .expect("applied");
        assert_eq!(next["cleanup.policy"], "delete,compact");
        let v = view(&[("cleanup.policy", "compact,delete")]);
        let next = apply_ops(
            &v.overrides,
            &v.config,
            &[op("cleanup.policy", OP_SUBTRACT, Some("delete"))],
        )
        .expect("applied");
        assert_eq!(next["cleanup.policy"], "compact");
        let (error, text) = apply_ops(
            &v.overrides,
            &v.config,
            &[op("retention.ms", OP_APPEND, Some("1"))],
        )
        .expect_err("not a list");
        assert_eq!(error, ResponseError::InvalidRequest);
        assert!(text.contains("list"), "{text}");
    }

    #[test]
    fn given_bad_operations_when_applied_should_refuse_with_invalid_request() {
        let v = view(&[]);
        for ops in [
            vec![op("retention.ms", OP_SET, None)],
            vec![op("retention.ms", 9, Some("1"))],
            vec![
                op("retention.ms", OP_SET, Some("1")),
                op("retention.ms", OP_DELETE, None),
            ],
        ] {
            let (error, _) = apply_ops(&v.overrides, &v.config, &ops).expect_err("refused");
            assert_eq!(error, ResponseError::InvalidRequest, "{ops:?}");
        }
    }
}
