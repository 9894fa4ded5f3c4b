//! Authorization of every Kafka request, called from the API table
//! ([`super::apis::run`]) before the handler runs.
//!
//! Each request type says what it needs ([`Authorize`]), as Kafka does:
//! - requests about named resources (topics, groups, configs) are split:
//!   the resources the caller may not touch are taken out of the request
//!   and answered with TOPIC_AUTHORIZATION_FAILED (or the group, cluster
//!   or transactional-id variant), the handler serves the rest, and the
//!   two answers are merged;
//! - requests about the whole cluster (reassignments, leader elections,
//!   log dirs, DescribeCluster, ACL administration) are answered with
//!   CLUSTER_AUTHORIZATION_FAILED without running the handler;
//! - Metadata for all topics lists only the topics the caller may
//!   describe, and so does ListGroups for groups.
//!
//! With authorization off, [`super::apis::run`] does not call this at all.
//!
//! | API | needs |
//! |---|---|
//! | Produce | WRITE on each topic (and on the transactional id) |
//! | Fetch | READ on each topic |
//! | ListOffsets, OffsetForLeaderEpoch | DESCRIBE on each topic |
//! | Metadata | DESCRIBE on each topic; CREATE (cluster or topic) to auto-create |
//! | CreateTopics | CREATE on the cluster or on the topic |
//! | DeleteTopics | DELETE on the topic |
//! | CreatePartitions | ALTER on the topic |
//! | DescribeConfigs | DESCRIBE_CONFIGS on the topic, or on the cluster for brokers |
//! | DescribeClientQuotas | DESCRIBE_CONFIGS on the cluster |
//! | AlterClientQuotas | ALTER_CONFIGS on the cluster |
//! | AlterConfigs, IncrementalAlterConfigs | ALTER_CONFIGS on the topic, or on the cluster |
//! | InitProducerId | IDEMPOTENT_WRITE on the cluster, or WRITE on any topic (WRITE on the transactional id with one) |
//! | DescribeCluster, DescribeLogDirs, ListPartitionReassignments, DescribeAcls | DESCRIBE on the cluster |
//! | AlterPartitionReassignments, ElectLeaders, CreateAcls, DeleteAcls | ALTER on the cluster |
//! | FindCoordinator | DESCRIBE on the group (or WRITE on the transactional id) |
//! | JoinGroup, SyncGroup, Heartbeat, LeaveGroup | READ on the group |
//! | OffsetCommit | READ on the group and on each topic |
//! | OffsetFetch | DESCRIBE on the group and on each topic |
//! | DescribeGroups | DESCRIBE on each group |
//! | DeleteGroups | DELETE on each group |
//! | ListGroups | DESCRIBE on the cluster, else the groups the caller may describe |
//! | ListTransactions | the transactions whose id the caller may describe |
//! | DescribeTopicPartitions | DESCRIBE on each topic (as Metadata) |
//! | OffsetDelete | DELETE on the group and READ on each topic |
//! | ApiVersions, SaslHandshake, SaslAuthenticate | nothing |

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_proto::acl::{CLUSTER_NAME, Operation, ResourceType};
use uuid::Uuid;

use super::KafkaContext;
use super::topic_id::TopicNames;
use crate::security::Principal;

/// Who sent a request: the connection's principal and the client's address.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Arc<Principal>,
    pub host: String,
    /// The client's address and port: which connection the request came
    /// on (share sessions are released when it closes).
    pub peer: std::net::SocketAddr,
}

/// Asks the authorizer about one caller.
pub struct Check<'a> {
    pub ctx: &'a KafkaContext,
    pub caller: &'a Caller,
}

impl Check<'_> {
    fn allows(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        self.ctx.acls.authorizer.allows(
            &self.caller.principal,
            &self.caller.host,
            operation,
            resource_type,
            name,
        )
    }

    fn topic(&self, operation: Operation, name: &str) -> bool {
        self.allows(operation, ResourceType::Topic, name)
    }

    fn group(&self, operation: Operation, name: &str) -> bool {
        self.allows(operation, ResourceType::Group, name)
    }

    fn cluster(&self, operation: Operation) -> bool {
        self.allows(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    fn transactional_id(&self, operation: Operation, id: &str) -> bool {
        self.allows(operation, ResourceType::TransactionalId, id)
    }

    /// Names topics that requests name by id (or by name when `id` is nil).
    fn names(&self, by_id: bool) -> TopicNames {
        TopicNames::new(&self.ctx.manager, by_id)
    }
}

/// What to do to the handler's answer: add the answers for what was taken
/// out of the request.
pub type Finish<R> = Option<Box<dyn FnOnce(&mut R) + Send>>;

/// A request type's authorization.
pub trait Authorize: Sized {
    type Response;

    /// `Ok`: run the handler on the request returned, then apply the
    /// finish to its answer. `Err`: answer this, do not run the handler.
    fn authorize(self, check: &Check<'_>)
    -> Result<(Self, Finish<Self::Response>), Self::Response>;
}

fn finish<R>(f: impl FnOnce(&mut R) + Send + 'static) -> Finish<R> {
    Some(Box::new(f))
}

fn topic_denied() -> i16 {
    ResponseError::TopicAuthorizationFailed.code()
}

fn group_denied() -> i16 {
    ResponseError::GroupAuthorizationFailed.code()
}

fn cluster_denied() -> i16 {
    ResponseError::ClusterAuthorizationFailed.code()
}

fn denied_message(what: &str) -> Option<StrBytes> {
    Some(StrBytes::from_string(format!(
        "not authorized: no ACL allows this principal to {what}"
    )))
}

/// Splits `items` into those `allowed` keeps and the others.
fn split<T>(items: Vec<T>, allowed: impl FnMut(&T) -> bool) -> (Vec<T>, Vec<T>) {
    items.into_iter().partition(allowed)
}

/// Requests that need nothing.
macro_rules! free {
    ($($req:ty => $resp:ty),* $(,)?) => {$(
        impl Authorize for $req {
            type Response = $resp;
            fn authorize(self, _check: &Check<'_>) -> Result<(Self, Finish<$resp>), $resp> {
                Ok((self, None))
            }
        }
    )*};
}

free! {
    ApiVersionsRequest => ApiVersionsResponse,
    SaslHandshakeRequest => SaslHandshakeResponse,
    SaslAuthenticateRequest => SaslAuthenticateResponse,
}

/// Requests about the whole cluster: `operation` on it, or the response
/// with CLUSTER_AUTHORIZATION_FAILED (and its message, when it has one).
macro_rules! cluster_wide {
    ($($req:ty => $resp:ty : $op:ident $(, $msg:ident)?;)*) => {$(
        impl Authorize for $req {
            type Response = $resp;
            fn authorize(self, check: &Check<'_>) -> Result<(Self, Finish<$resp>), $resp> {
                if check.cluster(Operation::$op) {
                    return Ok((self, None));
                }
                #[allow(unused_mut)]
                let mut denied = <$resp>::default().with_error_code(cluster_denied());
                $( denied = denied.$msg(denied_message("act on the cluster")); )?
                Err(denied)
            }
        }
    )*};
}

cluster_wide! {
    DescribeClusterRequest => DescribeClusterResponse: Describe, with_error_message;
    ListPartitionReassignmentsRequest => ListPartitionReassignmentsResponse: Describe, with_error_message;
    AlterPartitionReassignmentsRequest => AlterPartitionReassignmentsResponse: Alter, with_error_message;
    ElectLeadersRequest => ElectLeadersResponse: Alter;
    DescribeLogDirsRequest => DescribeLogDirsResponse: Describe;
    DescribeAclsRequest => DescribeAclsResponse: Describe, with_error_message;
    DescribeClientQuotasRequest => DescribeClientQuotasResponse: DescribeConfigs, with_error_message;
}

/// AlterClientQuotas: ALTER_CONFIGS on the cluster, or one refusal per
/// entry, naming its entity (as Kafka answers).
impl Authorize for AlterClientQuotasRequest {
    type Response = AlterClientQuotasResponse;
    fn authorize(
        self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        if check.cluster(Operation::AlterConfigs) {
            return Ok((self, None));
        }
        let entries = self
            .entries
            .into_iter()
            .map(|e| {
                alter_client_quotas_response::EntryData::default()
                    .with_error_code(cluster_denied())
                    .with_error_message(denied_message("alter client quotas"))
                    .with_entity(
                        e.entity
                            .into_iter()
                            .map(|c| {
                                alter_client_quotas_response::EntityData::default()
                                    .with_entity_type(c.entity_type)
                                    .with_entity_name(c.entity_name)
                            })
                            .collect(),
                    )
            })
            .collect();
        Err(AlterClientQuotasResponse::default().with_entries(entries))
    }
}

/// CreateAcls and DeleteAcls: ALTER on the cluster, or one refusal per
/// entry of the request.
macro_rules! acl_changes {
    ($($req:ty => $resp:ty : $entries:ident => $results:ident, $result:ty, $with:ident;)*) => {$(
        impl Authorize for $req {
            type Response = $resp;
            fn authorize(self, check: &Check<'_>) -> Result<(Self, Finish<$resp>), $resp> {
                if check.cluster(Operation::Alter) {
                    return Ok((self, None));
                }
                let $results: Vec<$result> = self
                    .$entries
                    .iter()
                    .map(|_| {
                        <$result>::default()
                            .with_error_code(cluster_denied())
                            .with_error_message(denied_message("alter the cluster's ACLs"))
                    })
                    .collect();
                Err(<$resp>::default().$with($results))
            }
        }
    )*};
}

acl_changes! {
    CreateAclsRequest => CreateAclsResponse: creations => results,
        create_acls_response::AclCreationResult, with_results;
    DeleteAclsRequest => DeleteAclsResponse: filters => results,
        delete_acls_response::DeleteAclsFilterResult, with_filter_results;
}

impl Authorize for ProduceRequest {
    type Response = ProduceResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        let transactional_denied = self
            .transactional_id
            .as_ref()
            .is_some_and(|id| !check.transactional_id(Operation::Write, id));
        let by_id = self.topic_data.iter().any(|t| !t.topic_id.is_nil());
        let names = check.names(by_id);
        let (kept, denied) = split(std::mem::take(&mut self.topic_data), |t| {
            !transactional_denied
                && names
                    .name(&t.name.0, t.topic_id)
                    .is_none_or(|name| check.topic(Operation::Write, &name))
        });
        self.topic_data = kept;
        if denied.is_empty() {
            return Ok((self, None));
        }
        let code = if transactional_denied {
            ResponseError::TransactionalIdAuthorizationFailed.code()
        } else {
            topic_denied()
        };
        let answers: Vec<produce_response::TopicProduceResponse> = denied
            .into_iter()
            .map(|t| {
                produce_response::TopicProduceResponse::default()
                    .with_name(t.name)
                    .with_topic_id(t.topic_id)
                    .with_partition_responses(
                        t.partition_data
                            .iter()
                            .map(|p| {
                                produce_response::PartitionProduceResponse::default()
                                    .with_index(p.index)
                                    .with_error_code(code)
                                    .with_base_offset(-1)
                                    .with_log_append_time_ms(-1)
                                    .with_log_start_offset(-1)
                            })
                            .collect(),
                    )
            })
            .collect();
        Ok((
            self,
            finish(move |r: &mut ProduceResponse| r.responses.extend(answers)),
        ))
    }
}

impl Authorize for FetchRequest {
    type Response = FetchResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        let by_id = self.topics.iter().any(|t| !t.topic_id.is_nil());
        let names = check.names(by_id);
        let (kept, mut denied) = split(std::mem::take(&mut self.topics), |t| {
            names
                .name(&t.topic.0, t.topic_id)
                .is_none_or(|name| check.topic(Operation::Read, &name))
        });
        self.topics = kept;
        // An incremental fetch reads every partition of its session: each
        // topic there is checked again, and a denied one leaves the session.
        if self.session_id != 0 && self.session_epoch > 0 {
            let sessions = &check.ctx.fetch_sessions;
            let revoked: std::collections::HashSet<String> = sessions
                .topics(self.session_id)
                .into_iter()
                .filter(|t| !check.topic(Operation::Read, t))
                .collect();
            if !revoked.is_empty() {
                let mut gone: std::collections::BTreeMap<(String, Uuid), Vec<i32>> =
                    std::collections::BTreeMap::new();
                for (topic, id, partition) in sessions.forget_topics(self.session_id, &revoked) {
                    gone.entry((topic, id)).or_default().push(partition);
                }
                denied.extend(gone.into_iter().map(|((topic, id), partitions)| {
                    fetch_request::FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic)))
                        .with_topic_id(id)
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|p| fetch_request::FetchPartition::default().with_partition(p))
                                .collect(),
                        )
                }));
            }
        }
        if denied.is_empty() {
            return Ok((self, None));
        }
        let answers: Vec<fetch_response::FetchableTopicResponse> = denied
            .into_iter()
            .map(|t| {
                fetch_response::FetchableTopicResponse::default()
                    .with_topic(t.topic)
                    .with_topic_id(t.topic_id)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                fetch_response::PartitionData::default()
                                    .with_partition_index(p.partition)
                                    .with_error_code(topic_denied())
                                    .with_high_watermark(-1)
                                    .with_last_stable_offset(-1)
                                    .with_log_start_offset(-1)
                            })
                            .collect(),
                    )
            })
            .collect();
        Ok((
            self,
            finish(move |r: &mut FetchResponse| r.responses.extend(answers)),
        ))
    }
}

impl Authorize for ListOffsetsRequest {
    type Response = ListOffsetsResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        let (kept, denied) = split(std::mem::take(&mut self.topics), |t| {
            check.topic(Operation::Describe, &t.name.0)
        });
        self.topics = kept;
        if denied.is_empty() {
            return Ok((self, None));
        }
        let answers: Vec<list_offsets_response::ListOffsetsTopicResponse> = denied
            .into_iter()
            .map(|t| {
                list_offsets_response::ListOffsetsTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                list_offsets_response::ListOffsetsPartitionResponse::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(topic_denied())
                                    .with_timestamp(-1)
                                    .with_offset(-1)
                                    .with_leader_epoch(-1)
                            })
                            .collect(),
                    )
            })
            .collect();
        Ok((
            self,
            finish(move |r: &mut ListOffsetsResponse| r.topics.extend(answers)),
        ))
    }
}

impl Authorize for OffsetForLeaderEpochRequest {
    type Response = OffsetForLeaderEpochResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        let (kept, denied) = split(std::mem::take(&mut self.topics), |t| {
            check.topic(Operation::Describe, &t.topic.0)
        });
        self.topics = kept;
        if denied.is_empty() {
            return Ok((self, None));
        }
        let answers: Vec<offset_for_leader_epoch_response::OffsetForLeaderTopicResult> = denied
            .into_iter()
            .map(|t| {
                offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
                    .with_topic(t.topic)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                offset_for_leader_epoch_response::EpochEndOffset::default()
                                    .with_partition(p.partition)
                                    .with_error_code(topic_denied())
                                    .with_leader_epoch(-1)
                                    .with_end_offset(-1)
                            })
                            .collect(),
                    )
            })
            .collect();
        Ok((
            self,
            finish(move |r: &mut OffsetForLeaderEpochResponse| r.topics.extend(answers)),
        ))
    }
}

impl Authorize for MetadataRequest {
    type Response = MetadataResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        let caller = check.caller.clone();
        let authorizer = Arc::clone(&check.ctx.acls.authorizer);
        let describable = move |name: &str| {
            authorizer.allows(
                &caller.principal,
                &caller.host,
                Operation::Describe,
                ResourceType::Topic,
                name,
            )
        };
        let Some(topics) = self.topics.take() else {
            // Every topic: list only those the caller may describe.
            return Ok((
                self,
                finish(move |r: &mut MetadataResponse| {
                    r.topics
                        .retain(|t| t.name.as_ref().is_some_and(|n| describable(&n.0)));
                }),
            ));
        };
        let by_id = topics.iter().any(|t| !t.topic_id.is_nil());
        let names = check.names(by_id);
        let (kept, denied) = split(topics, |t| {
            let name = match &t.name {
                Some(n) if t.topic_id.is_nil() => Some(n.0.to_string()),
                _ => names.name("", t.topic_id),
            };
            name.is_none_or(|n| describable(&n))
        });
        // Auto-creation needs CREATE on the cluster or on the topic.
        if self.allow_auto_topic_creation
            && !check.cluster(Operation::Create)
            && kept
                .iter()
                .filter_map(|t| t.name.as_ref())
                .any(|n| !check.topic(Operation::Create, &n.0))
        {
            self.allow_auto_topic_creation = false;
        }
        self.topics = Some(kept);
        if denied.is_empty() {
            return Ok((self, None));
        }
        let answers: Vec<metadata_response::MetadataResponseTopic> = denied
            .into_iter()
            .map(|t| {
                metadata_response::MetadataResponseTopic::default()
                    .with_error_code(topic_denied())
                    .with_name(t.name)
                    .with_topic_id(t.topic_id)
            })
            .collect();
        Ok((
            self,
            finish(move |r: &mut MetadataResponse| r.topics.extend(answers)),
        ))
    }
}

impl Authorize for CreateTopicsRequest {
    type Response = CreateTopicsResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        if check.cluster(Operation::Create) {
            return Ok((self, None));
        }
        let (kept, denied) = split(std::mem::take(&mut self.topics), |t| {
            check.topic(Operation::Create, &t.name.0)
        });
        self.topics = kept;
        if denied.is_empty() {
            return Ok((self, None));
        }
        let answers: Vec<create_topics_response::CreatableTopicResult> = denied
            .into_iter()
            .map(|t| {
                create_topics_response::CreatableTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(topic_denied())
                    .with_error_message(denied_message("create this topic"))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            })
            .collect();
        Ok((
            self,
            finish(move |r: &mut CreateTopicsResponse| r.topics.extend(answers)),
        ))
    }
}

impl Authorize for DeleteRecordsRequest {
    type Response = DeleteRecordsResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        let (kept, denied) = split(std::mem::take(&mut self.topics), |t| {
            check.topic(Operation::Delete, &t.name.0)
        });
        self.topics = kept;
        if denied.is_empty() {
            return Ok((self, None));
        }
        let answers: Vec<delete_records_response::DeleteRecordsTopicResult> = denied
            .into_iter()
            .map(|t| {
                delete_records_response::DeleteRecordsTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                delete_records_response::DeleteRecordsPartitionResult::default()
                                    .with_partition_index(p.partition_index)
                                    .with_low_watermark(-1)
                                    .with_error_code(topic_denied())
                            })
                            .collect(),
                    )
            })
            .collect();
        Ok((
            self,
            finish(move |r: &mut DeleteRecordsResponse| r.topics.extend(answers)),
        ))
    }
}

impl Authorize for DeleteTopicsRequest {
    type Response = DeleteTopicsResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        // Up to v5 by name (`topic_names`), from v6 by name or id (`topics`).
        let (kept_names, denied_names) = split(std::mem::take(&mut self.topic_names), |n| {
            check.topic(Operation::Delete, &n.0)
        });
        self.topic_names = kept_names;
        let by_id = self.topics.iter().any(|t| !t.topic_id.is_nil());
        let names = check.names(by_id);
        let (kept, denied) = split(std::mem::take(&mut self.topics), |t| {
            let name = match &t.name {
                Some(n) if t.topic_id.is_nil() => Some(n.0.to_string()),
                _ => names.name("", t.topic_id),
            };
            name.is_none_or(|n| check.topic(Operation::Delete, &n))
        });
        self.topics = kept;
        if denied.is_empty() && denied_names.is_empty() {
            return Ok((self, None));
        }
        let result = |name: Option<TopicName>, id: Uuid| {
            delete_topics_response::DeletableTopicResult::default()
                .with_name(name)
                .with_topic_id(id)
                .with_error_code(topic_denied())
                .with_error_message(denied_message("delete this topic"))
        };
        let answers: Vec<delete_topics_response::DeletableTopicResult> = denied_names
            .into_iter()
            .map(|n| result(Some(n), Uuid::nil()))
            .chain(denied.into_iter().map(|t| result(t.name, t.topic_id)))
            .collect();
        Ok((
            self,
            finish(move |r: &mut DeleteTopicsResponse| r.responses.extend(answers)),
        ))
    }
}

impl Authorize for CreatePartitionsRequest {
    type Response = CreatePartitionsResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        let (kept, denied) = split(std::mem::take(&mut self.topics), |t| {
            check.topic(Operation::Alter, &t.name.0)
        });
        self.topics = kept;
        if denied.is_empty() {
            return Ok((self, None));
        }
        let answers: Vec<create_partitions_response::CreatePartitionsTopicResult> = denied
            .into_iter()
            .map(|t| {
                create_partitions_response::CreatePartitionsTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(topic_denied())
                    .with_error_message(denied_message("alter this topic"))
            })
            .collect();
        Ok((
            self,
            finish(move |r: &mut CreatePartitionsResponse| r.results.extend(answers)),
        ))
    }
}

/// Kafka's config resource types.
const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;
const GROUP_RESOURCE: i8 = 32;

/// Whether `check` allows `operation` on the config resource
/// (`resource_type`, `name`): a topic, or a broker (the cluster).
fn config_allowed(check: &Check<'_>, operation: Operation, resource_type: i8, name: &str) -> bool {
    match resource_type {
        TOPIC_RESOURCE => check.topic(operation, name),
        BROKER_RESOURCE => check.cluster(operation),
        GROUP_RESOURCE => check.group(operation, name),
        // Other types are refused by the handler.
        _ => true,
    }
}

fn config_denied(resource_type: i8) -> i16 {
    match resource_type {
        TOPIC_RESOURCE => topic_denied(),
        GROUP_RESOURCE => group_denied(),
        _ => cluster_denied(),
    }
}

impl Authorize for DescribeConfigsRequest {
    type Response = DescribeConfigsResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        let (kept, denied) = split(std::mem::take(&mut self.resources), |r| {
            config_allowed(
                check,
                Operation::DescribeConfigs,
                r.resource_type,
                &r.resource_name,
            )
        });
        self.resources = kept;
        if denied.is_empty() {
            return Ok((self, None));
        }
        let answers: Vec<describe_configs_response::DescribeConfigsResult> = denied
            .into_iter()
            .map(|r| {
                describe_configs_response::DescribeConfigsResult::default()
                    .with_error_code(config_denied(r.resource_type))
                    .with_error_message(denied_message("describe these configs"))
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
            })
            .collect();
        Ok((
            self,
            finish(move |r: &mut DescribeConfigsResponse| r.results.extend(answers)),
        ))
    }
}

/// AlterConfigs and IncrementalAlterConfigs: ALTER_CONFIGS on each resource.
macro_rules! alter_configs {
    ($req:ty => $resp:ty, $module:ident) => {
        impl Authorize for $req {
            type Response = $resp;
            fn authorize(mut self, check: &Check<'_>) -> Result<(Self, Finish<$resp>), $resp> {
                let (kept, denied) = split(std::mem::take(&mut self.resources), |r| {
                    config_allowed(
                        check,
                        Operation::AlterConfigs,
                        r.resource_type,
                        &r.resource_name,
                    )
                });
                self.resources = kept;
                if denied.is_empty() {
                    return Ok((self, None));
                }
                let answers: Vec<$module::AlterConfigsResourceResponse> = denied
                    .into_iter()
                    .map(|r| {
                        $module::AlterConfigsResourceResponse::default()
                            .with_error_code(config_denied(r.resource_type))
                            .with_error_message(denied_message("alter these configs"))
                            .with_resource_type(r.resource_type)
                            .with_resource_name(r.resource_name)
                    })
                    .collect();
                Ok((
                    self,
                    finish(move |r: &mut $resp| r.responses.extend(answers)),
                ))
            }
        }
    };
}

alter_configs!(AlterConfigsRequest => AlterConfigsResponse, alter_configs_response);
alter_configs!(IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse, incremental_alter_configs_response);

impl Authorize for InitProducerIdRequest {
    type Response = InitProducerIdResponse;
    fn authorize(
        self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        let (allowed, code) = match &self.transactional_id {
            Some(id) => (
                check.transactional_id(Operation::Write, id),
                ResponseError::TransactionalIdAuthorizationFailed.code(),
            ),
            None => (
                check.cluster(Operation::IdempotentWrite)
                    || check.ctx.acls.authorizer.allows_any(
                        &check.caller.principal,
                        &check.caller.host,
                        Operation::Write,
                        ResourceType::Topic,
                    ),
                cluster_denied(),
            ),
        };
        if allowed {
            Ok((self, None))
        } else {
            Err(InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1))
        }
    }
}

/// Requests about one group: `operation` on it, or the response with
/// GROUP_AUTHORIZATION_FAILED.
macro_rules! one_group {
    ($($req:ty => $resp:ty : $op:ident;)*) => {$(
        impl Authorize for $req {
            type Response = $resp;
            fn authorize(self, check: &Check<'_>) -> Result<(Self, Finish<$resp>), $resp> {
                if check.group(Operation::$op, &self.group_id) {
                    Ok((self, None))
                } else {
                    Err(<$resp>::default().with_error_code(group_denied()))
                }
            }
        }
    )*};
}

one_group! {
    JoinGroupRequest => JoinGroupResponse: Read;
    SyncGroupRequest => SyncGroupResponse: Read;
    HeartbeatRequest => HeartbeatResponse: Read;
    LeaveGroupRequest => LeaveGroupResponse: Read;
    ConsumerGroupHeartbeatRequest => ConsumerGroupHeartbeatResponse: Read;
    ShareGroupHeartbeatRequest => ShareGroupHeartbeatResponse: Read;
    AlterShareGroupOffsetsRequest => AlterShareGroupOffsetsResponse: Read;
    DeleteShareGroupOffsetsRequest => DeleteShareGroupOffsetsResponse: Delete;
}

/// ShareFetch and ShareAcknowledge: READ on the group and on every topic
/// the request names (by id), or the whole request is refused.
macro_rules! share_records {
    ($($req:ty => $resp:ty;)*) => {$(
        impl Authorize for $req {
            type Response = $resp;
            fn authorize(self, check: &Check<'_>) -> Result<(Self, Finish<$resp>), $resp> {
                let group = self.group_id.as_ref().map_or("", |g| g.0.as_str());
                if !check.group(Operation::Read, group) {
                    return Err(<$resp>::default().with_error_code(group_denied()));
                }
                let ids: std::collections::BTreeSet<uuid::Uuid> =
                    self.topics.iter().map(|t| t.topic_id).collect();
                let denied = !ids.is_empty()
                    && super::topic_id::known_topics(&check.ctx.manager)
                        .iter()
                        .any(|(name, id)| ids.contains(id) && !check.topic(Operation::Read, name));
                if denied {
                    return Err(<$resp>::default().with_error_code(topic_denied()));
                }
                Ok((self, None))
            }
        }
    )*};
}

share_records! {
    ShareFetchRequest => ShareFetchResponse;
    ShareAcknowledgeRequest => ShareAcknowledgeResponse;
}

/// DescribeShareGroupOffsets: DESCRIBE on every group named, or the whole
/// request is refused.
impl Authorize for DescribeShareGroupOffsetsRequest {
    type Response = DescribeShareGroupOffsetsResponse;
    fn authorize(
        self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        if self
            .groups
            .iter()
            .all(|g| check.group(Operation::Describe, &g.group_id))
        {
            return Ok((self, None));
        }
        let groups = self
            .groups
            .into_iter()
            .map(|g| {
                describe_share_group_offsets_response::DescribeShareGroupOffsetsResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(group_denied())
                    .with_error_message(denied_message("describe this group"))
            })
            .collect();
        Err(DescribeShareGroupOffsetsResponse::default().with_groups(groups))
    }
}

/// FindCoordinator key types.
const GROUP_KEY: i8 = 0;
const TRANSACTION_KEY: i8 = 1;

impl Authorize for FindCoordinatorRequest {
    type Response = FindCoordinatorResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        let key_type = self.key_type;
        let allowed = |key: &str| match key_type {
            GROUP_KEY => check.group(Operation::Describe, key),
            TRANSACTION_KEY => check.transactional_id(Operation::Describe, key),
            _ => true,
        };
        let code = if key_type == TRANSACTION_KEY {
            ResponseError::TransactionalIdAuthorizationFailed.code()
        } else {
            group_denied()
        };
        if self.coordinator_keys.is_empty() {
            // Up to v3: one key.
            return if allowed(&self.key) {
                Ok((self, None))
            } else {
                Err(FindCoordinatorResponse::default()
                    .with_error_code(code)
                    .with_error_message(denied_message("describe this group"))
                    .with_node_id((-1).into())
                    .with_port(-1))
            };
        }
        let (kept, denied) = split(std::mem::take(&mut self.coordinator_keys), |k| allowed(k));
        self.coordinator_keys = kept;
        if denied.is_empty() {
            return Ok((self, None));
        }
        let answers: Vec<find_coordinator_response::Coordinator> = denied
            .into_iter()
            .map(|key| {
                find_coordinator_response::Coordinator::default()
                    .with_key(key)
                    .with_node_id((-1).into())
                    .with_port(-1)
                    .with_error_code(code)
                    .with_error_message(denied_message("describe this group"))
            })
            .collect();
        Ok((
            self,
            finish(move |r: &mut FindCoordinatorResponse| r.coordinators.extend(answers)),
        ))
    }
}

impl Authorize for OffsetCommitRequest {
    type Response = OffsetCommitResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        let group_allowed = check.group(Operation::Read, &self.group_id);
        let (kept, denied) = split(std::mem::take(&mut self.topics), |t| {
            group_allowed && check.topic(Operation::Read, &t.name.0)
        });
        self.topics = kept;
        if denied.is_empty() {
            return Ok((self, None));
        }
        let code = if group_allowed {
            topic_denied()
        } else {
            group_denied()
        };
        let answers: Vec<offset_commit_response::OffsetCommitResponseTopic> = denied
            .into_iter()
            .map(|t| {
                offset_commit_response::OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_topic_id(t.topic_id)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                offset_commit_response::OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect();
        Ok((
            self,
            finish(move |r: &mut OffsetCommitResponse| r.topics.extend(answers)),
        ))
    }
}

impl Authorize for OffsetFetchRequest {
    type Response = OffsetFetchResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        // Up to v7: one group (`group_id`, `topics`); from v8 `groups`.
        if self.groups.is_empty() {
            if !check.group(Operation::Describe, &self.group_id) {
                return Err(OffsetFetchResponse::default().with_error_code(group_denied()));
            }
            let Some(topics) = self.topics.take() else {
                // Every committed topic: only those the caller may describe.
                let caller = check.caller.clone();
                let authorizer = Arc::clone(&check.ctx.acls.authorizer);
                return Ok((
                    self,
                    finish(move |r: &mut OffsetFetchResponse| {
                        r.topics.retain(|t| {
                            authorizer.allows(
                                &caller.principal,
                                &caller.host,
                                Operation::Describe,
                                ResourceType::Topic,
                                &t.name.0,
                            )
                        })
                    }),
                ));
            };
            let (kept, denied) = split(topics, |t| check.topic(Operation::Describe, &t.name.0));
            self.topics = Some(kept);
            if denied.is_empty() {
                return Ok((self, None));
            }
            let answers: Vec<offset_fetch_response::OffsetFetchResponseTopic> = denied
                .into_iter()
                .map(|t| {
                    offset_fetch_response::OffsetFetchResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|&p| {
                                    offset_fetch_response::OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(-1)
                                        .with_committed_leader_epoch(-1)
                                        .with_error_code(topic_denied())
                                })
                                .collect(),
                        )
                })
                .collect();
            return Ok((
                self,
                finish(move |r: &mut OffsetFetchResponse| r.topics.extend(answers)),
            ));
        }
        let (kept, denied) = split(std::mem::take(&mut self.groups), |g| {
            check.group(Operation::Describe, &g.group_id)
        });
        // Topics the caller may not describe are left out of each group's
        // answer.
        self.groups = kept
            .into_iter()
            .map(|mut g| {
                if let Some(topics) = g.topics.take() {
                    g.topics = Some(
                        topics
                            .into_iter()
                            .filter(|t| check.topic(Operation::Describe, &t.name.0))
                            .collect(),
                    );
                }
                g
            })
            .collect();
        let caller = check.caller.clone();
        let authorizer = Arc::clone(&check.ctx.acls.authorizer);
        let answers: Vec<offset_fetch_response::OffsetFetchResponseGroup> = denied
            .into_iter()
            .map(|g| {
                offset_fetch_response::OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(group_denied())
            })
            .collect();
        Ok((
            self,
            finish(move |r: &mut OffsetFetchResponse| {
                for g in &mut r.groups {
                    g.topics.retain(|t| {
                        authorizer.allows(
                            &caller.principal,
                            &caller.host,
                            Operation::Describe,
                            ResourceType::Topic,
                            &t.name.0,
                        )
                    });
                }
                r.groups.extend(answers);
            }),
        ))
    }
}

impl Authorize for DescribeGroupsRequest {
    type Response = DescribeGroupsResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        let (kept, denied) = split(std::mem::take(&mut self.groups), |g| {
            check.group(Operation::Describe, g)
        });
        self.groups = kept;
        if denied.is_empty() {
            return Ok((self, None));
        }
        let answers: Vec<describe_groups_response::DescribedGroup> = denied
            .into_iter()
            .map(|g| {
                describe_groups_response::DescribedGroup::default()
                    .with_group_id(g)
                    .with_error_code(group_denied())
                    .with_error_message(denied_message("describe this group"))
            })
            .collect();
        Ok((
            self,
            finish(move |r: &mut DescribeGroupsResponse| r.groups.extend(answers)),
        ))
    }
}

/// ConsumerGroupDescribe and ShareGroupDescribe: DESCRIBE on each group;
/// the others are answered GROUP_AUTHORIZATION_FAILED.
macro_rules! describe_groups_by_id {
    ($($req:ty => $resp:ty, $module:ident;)*) => {$(
        impl Authorize for $req {
            type Response = $resp;
            fn authorize(mut self, check: &Check<'_>) -> Result<(Self, Finish<$resp>), $resp> {
                let (kept, denied) = split(std::mem::take(&mut self.group_ids), |g| {
                    check.group(Operation::Describe, g)
                });
                self.group_ids = kept;
                if denied.is_empty() {
                    return Ok((self, None));
                }
                let answers: Vec<$module::DescribedGroup> = denied
                    .into_iter()
                    .map(|g| {
                        $module::DescribedGroup::default()
                            .with_group_id(g)
                            .with_error_code(group_denied())
                            .with_error_message(denied_message("describe this group"))
                    })
                    .collect();
                Ok((self, finish(move |r: &mut $resp| r.groups.extend(answers))))
            }
        }
    )*};
}

describe_groups_by_id! {
    ConsumerGroupDescribeRequest => ConsumerGroupDescribeResponse, consumer_group_describe_response;
    ShareGroupDescribeRequest => ShareGroupDescribeResponse, share_group_describe_response;
}

impl Authorize for DeleteGroupsRequest {
    type Response = DeleteGroupsResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        let (kept, denied) = split(std::mem::take(&mut self.groups_names), |g| {
            check.group(Operation::Delete, g)
        });
        self.groups_names = kept;
        if denied.is_empty() {
            return Ok((self, None));
        }
        let answers: Vec<delete_groups_response::DeletableGroupResult> = denied
            .into_iter()
            .map(|g| {
                delete_groups_response::DeletableGroupResult::default()
                    .with_group_id(g)
                    .with_error_code(group_denied())
            })
            .collect();
        Ok((
            self,
            finish(move |r: &mut DeleteGroupsResponse| r.results.extend(answers)),
        ))
    }
}

impl Authorize for ListGroupsRequest {
    type Response = ListGroupsResponse;
    fn authorize(
        self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        if check.cluster(Operation::Describe) {
            return Ok((self, None));
        }
        let caller = check.caller.clone();
        let authorizer = Arc::clone(&check.ctx.acls.authorizer);
        Ok((
            self,
            finish(move |r: &mut ListGroupsResponse| {
                r.groups.retain(|g| {
                    authorizer.allows(
                        &caller.principal,
                        &caller.host,
                        Operation::Describe,
                        ResourceType::Group,
                        &g.group_id,
                    )
                })
            }),
        ))
    }
}

/// Transaction requests of one transactional id: WRITE on it (and READ on
/// the group the request names), or the response with
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED (GROUP_AUTHORIZATION_FAILED).
macro_rules! one_transaction {
    ($($req:ty => $resp:ty $(, group $group:ident)?;)*) => {$(
        impl Authorize for $req {
            type Response = $resp;
            fn authorize(self, check: &Check<'_>) -> Result<(Self, Finish<$resp>), $resp> {
                if !check.transactional_id(Operation::Write, &self.transactional_id) {
                    return Err(<$resp>::default()
                        .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code()));
                }
                $(
                    if !check.group(Operation::Read, &self.$group) {
                        return Err(<$resp>::default().with_error_code(group_denied()));
                    }
                )?
                Ok((self, None))
            }
        }
    )*};
}

one_transaction! {
    AddOffsetsToTxnRequest => AddOffsetsToTxnResponse, group group_id;
    EndTxnRequest => EndTxnResponse;
}

impl Authorize for TxnOffsetCommitRequest {
    type Response = TxnOffsetCommitResponse;
    fn authorize(
        self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        let code = if !check.transactional_id(Operation::Write, &self.transactional_id) {
            Some(ResponseError::TransactionalIdAuthorizationFailed.code())
        } else if !check.group(Operation::Read, &self.group_id) {
            Some(group_denied())
        } else if self
            .topics
            .iter()
            .any(|t| !check.topic(Operation::Read, &t.name))
        {
            Some(topic_denied())
        } else {
            None
        };
        let Some(code) = code else {
            return Ok((self, None));
        };
        Err(TxnOffsetCommitResponse::default().with_topics(
            self.topics
                .iter()
                .map(|t| {
                    txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect(),
        ))
    }
}

impl Authorize for AddPartitionsToTxnRequest {
    type Response = AddPartitionsToTxnResponse;
    fn authorize(
        self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        // v4+ batches come from brokers: CLUSTER_ACTION; v0-3 from the
        // producer: WRITE on its transactional id and on every topic.
        let allowed = if self.transactions.is_empty() {
            check.transactional_id(Operation::Write, &self.v3_and_below_transactional_id)
                && self
                    .v3_and_below_topics
                    .iter()
                    .all(|t| check.topic(Operation::Write, &t.name))
        } else {
            check.cluster(Operation::ClusterAction)
        };
        if allowed {
            return Ok((self, None));
        }
        let code = if self.transactions.is_empty() {
            ResponseError::TransactionalIdAuthorizationFailed.code()
        } else {
            cluster_denied()
        };
        Err(AddPartitionsToTxnResponse::default()
            .with_error_code(code)
            .with_results_by_topic_v3_and_below(
                self.v3_and_below_topics
                    .iter()
                    .map(|t| {
                        add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                            .with_name(t.name.clone())
                            .with_results_by_partition(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                                            .with_partition_index(*p)
                                            .with_partition_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ))
    }
}

impl Authorize for DescribeTransactionsRequest {
    type Response = DescribeTransactionsResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        let (kept, denied) = split(std::mem::take(&mut self.transactional_ids), |id| {
            check.transactional_id(Operation::Describe, id)
        });
        self.transactional_ids = kept;
        if denied.is_empty() {
            return Ok((self, None));
        }
        let answers: Vec<describe_transactions_response::TransactionState> = denied
            .into_iter()
            .map(|id| {
                describe_transactions_response::TransactionState::default()
                    .with_transactional_id(id)
                    .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
            })
            .collect();
        Ok((
            self,
            finish(move |r: &mut DescribeTransactionsResponse| {
                r.transaction_states.extend(answers)
            }),
        ))
    }
}

/// OffsetDelete: DELETE on the group (else the whole request is
/// refused), and READ on each topic (else its partitions are).
impl Authorize for OffsetDeleteRequest {
    type Response = OffsetDeleteResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        if !check.group(Operation::Delete, &self.group_id) {
            return Err(OffsetDeleteResponse::default().with_error_code(group_denied()));
        }
        let (kept, denied) = split(std::mem::take(&mut self.topics), |t| {
            check.topic(Operation::Read, &t.name.0)
        });
        self.topics = kept;
        if denied.is_empty() {
            return Ok((self, None));
        }
        let answers: Vec<offset_delete_response::OffsetDeleteResponseTopic> = denied
            .into_iter()
            .map(|t| {
                offset_delete_response::OffsetDeleteResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                offset_delete_response::OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(topic_denied())
                            })
                            .collect(),
                    )
            })
            .collect();
        Ok((
            self,
            finish(move |r: &mut OffsetDeleteResponse| r.topics.extend(answers)),
        ))
    }
}

/// DescribeTopicPartitions: DESCRIBE on each topic, as Metadata: named
/// topics the caller may not describe are answered
/// TOPIC_AUTHORIZATION_FAILED; with no topics named, only those it may
/// describe are listed.
impl Authorize for DescribeTopicPartitionsRequest {
    type Response = DescribeTopicPartitionsResponse;
    fn authorize(
        mut self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        if self.topics.is_empty() {
            let caller = check.caller.clone();
            let authorizer = Arc::clone(&check.ctx.acls.authorizer);
            return Ok((
                self,
                finish(move |r: &mut DescribeTopicPartitionsResponse| {
                    r.topics.retain(|t| {
                        t.name.as_ref().is_some_and(|n| {
                            authorizer.allows(
                                &caller.principal,
                                &caller.host,
                                Operation::Describe,
                                ResourceType::Topic,
                                n,
                            )
                        })
                    })
                }),
            ));
        }
        let (kept, denied) = split(std::mem::take(&mut self.topics), |t| {
            check.topic(Operation::Describe, &t.name.0)
        });
        self.topics = kept;
        if denied.is_empty() {
            return Ok((self, None));
        }
        let answers: Vec<describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic> =
            denied
                .into_iter()
                .map(|t| {
                    describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic::default()
                        .with_name(Some(t.name))
                        .with_error_code(topic_denied())
                })
                .collect();
        if self.topics.is_empty() {
            // Every topic named is refused: an empty list would mean all.
            return Err(DescribeTopicPartitionsResponse::default().with_topics(answers));
        }
        Ok((
            self,
            finish(move |r: &mut DescribeTopicPartitionsResponse| r.topics.extend(answers)),
        ))
    }
}

/// ListTransactions: as Kafka, only the transactions whose id the
/// principal may DESCRIBE.
impl Authorize for ListTransactionsRequest {
    type Response = ListTransactionsResponse;
    fn authorize(
        self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        let caller = check.caller.clone();
        let authorizer = Arc::clone(&check.ctx.acls.authorizer);
        Ok((
            self,
            finish(move |r: &mut ListTransactionsResponse| {
                r.transaction_states.retain(|t| {
                    authorizer.allows(
                        &caller.principal,
                        &caller.host,
                        Operation::Describe,
                        ResourceType::TransactionalId,
                        &t.transactional_id,
                    )
                })
            }),
        ))
    }
}

/// DescribeProducers: READ on every topic named.
impl Authorize for DescribeProducersRequest {
    type Response = DescribeProducersResponse;
    fn authorize(
        self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        if self
            .topics
            .iter()
            .all(|t| check.topic(Operation::Read, &t.name))
        {
            return Ok((self, None));
        }
        Err(DescribeProducersResponse::default().with_topics(
            self.topics
                .iter()
                .map(|t| {
                    describe_producers_response::TopicResponse::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|p| {
                                    describe_producers_response::PartitionResponse::default()
                                        .with_partition_index(*p)
                                        .with_error_code(topic_denied())
                                })
                                .collect(),
                        )
                })
                .collect(),
        ))
    }
}

/// WriteTxnMarkers: CLUSTER_ACTION (what `kafka-transactions abort` needs,
/// as in Kafka).
impl Authorize for WriteTxnMarkersRequest {
    type Response = WriteTxnMarkersResponse;
    fn authorize(
        self,
        check: &Check<'_>,
    ) -> Result<(Self, Finish<Self::Response>), Self::Response> {
        if check.cluster(Operation::ClusterAction) {
            return Ok((self, None));
        }
        Err(WriteTxnMarkersResponse::default().with_markers(
            self.markers
                .iter()
                .map(|m| {
                    write_txn_markers_response::WritableTxnMarkerResult::default()
                        .with_producer_id(m.producer_id)
                        .with_topics(
                            m.topics
                                .iter()
                                .map(|t| {
                                    write_txn_markers_response::WritableTxnMarkerTopicResult::default()
                                        .with_name(t.name.clone())
                                        .with_partitions(
                                            t.partition_indexes
                                                .iter()
                                                .map(|p| {
                                                    write_txn_markers_response::WritableTxnMarkerPartitionResult::default()
                                                        .with_partition_index(*p)
                                                        .with_error_code(cluster_denied())
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect(),
        ))
    }
}
