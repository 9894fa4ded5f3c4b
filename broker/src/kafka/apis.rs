//! The one table of the Kafka APIs this listener serves.
//!
//! Each API is listed once, with its request and response types and its
//! handler. From the table come: the decoded [`Request`] type and
//! [`decode_body`], the served versions ([`codec_versions`], the versions
//! in which the `kafka-protocol` crate can both decode the request and
//! encode the response), the names used in metric labels and logs
//! ([`api_name`]), the API lists behind ApiVersions ([`OWN_APIS`],
//! [`GROUP_APIS`]) and the routing of a decoded request to its handler
//! ([`run`]).
//!
//! Four sections:
//! - `broker`: handlers over the [`KafkaContext`], called as
//!   `handler(ctx, version, request)`, always served;
//! - `session`: the SASL requests, always served, answered by the
//!   connection's [`crate::security::Session`] (they change the state of
//!   the connection, so they never reach [`run`]);
//! - `connection`: handlers that also need to know the connection (share
//!   sessions end with it), called as `handler(ctx, version, request,
//!   caller)`, always served;
//! - `groups`: handlers over the [`GroupCoordinator`], called as
//!   `handler(coordinator, version, request, client)`, served only when a
//!   coordinator is plugged into [`KafkaContext::groups`].
//!
//! A handler returns its response, or a [`Reply`] when it answers nothing
//! (produce with acks=0) or shares buffers with its frame (fetch).
//!
//! ApiVersions is answered from the same table ([`served_versions`],
//! [`api_versions`]).
//!
//! Every answered request is charged against the client quotas
//! ([`super::throttle`]), which may set its `throttle_time_ms` and mute
//! the connection for that long.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Message, StrBytes, VersionRange};

use super::authz::{Authorize, Caller, Check, Finish};
use super::frame::{EncodeError, Reply, ResponseFrame, encode_response};
use super::groups::{self, client};
use super::throttle::{Charge, Meter, Throttle, timed};
use super::{
    KafkaContext, acls, admin, fetch, metadata, offsets, produce, producer_id, quotas, reassign,
    share, txn,
};
use crate::group::GroupCoordinator;

/// Generates everything listed in the module documentation from the table
/// below.
macro_rules! kafka_apis {
    (
        broker {
            $( $key:ident($req:ty => $resp:ty) => $handler:path, )*
        }
        session {
            $( $skey:ident($sreq:ty => $sresp:ty), )*
        }
        connection {
            $( $ckey:ident($creq:ty => $cresp:ty) => $chandler:path, )*
        }
        groups {
            $( $gkey:ident($greq:ty => $gresp:ty) => $ghandler:path, )*
        }
    ) => {
        /// The APIs this listener implements itself, served at every
        /// version the codec supports.
        pub const OWN_APIS: &[ApiKey] = &[$(ApiKey::$key,)* $(ApiKey::$skey,)* $(ApiKey::$ckey),*];

        /// The APIs served by the group coordinator, when there is one.
        pub const GROUP_APIS: &[ApiKey] = &[$(ApiKey::$gkey),*];

        /// A decoded request body.
        #[derive(Debug)]
        pub enum Request {
            /// ApiVersions at a version this broker does not serve.
            UnsupportedApiVersions,
            $( $key($req), )*
            $( $skey($sreq), )*
            $( $ckey($creq), )*
            $( $gkey(Arc<GroupCoordinator>, $greq), )*
        }

        /// The versions in which the codec can both decode the request and
        /// encode the response of `api` (its tables do not always agree:
        /// the InitProducerId request stops at v5 while the API key lists
        /// v6), for the APIs in the table.
        pub fn codec_versions(api: ApiKey) -> Option<VersionRange> {
            let range = match api {
                $( ApiKey::$key => pair::<$req, $resp>(), )*
                $( ApiKey::$skey => pair::<$sreq, $sresp>(), )*
                $( ApiKey::$ckey => pair::<$creq, $cresp>(), )*
                $( ApiKey::$gkey => pair::<$greq, $gresp>(), )*
                _ => return None,
            };
            let range = range.intersect(&api.valid_versions());
            (!range.is_empty()).then_some(range)
        }

        /// A name for metric labels and logs.
        pub fn api_name(api: ApiKey) -> &'static str {
            match api {
                $( ApiKey::$key => stringify!($key), )*
                $( ApiKey::$skey => stringify!($skey), )*
                $( ApiKey::$ckey => stringify!($ckey), )*
                $( ApiKey::$gkey => stringify!($gkey), )*
                _ => "Other",
            }
        }

        /// Decodes the body of an `api` request at `version`. Group
        /// requests carry the coordinator that will answer them.
        pub fn decode_body(
            ctx: &KafkaContext,
            api: ApiKey,
            version: i16,
            buf: &mut Bytes,
        ) -> anyhow::Result<Request> {
            Ok(match api {
                $( ApiKey::$key => Request::$key(<$req>::decode(buf, version)?), )*
                $( ApiKey::$skey => Request::$skey(<$sreq>::decode(buf, version)?), )*
                $( ApiKey::$ckey => Request::$ckey(<$creq>::decode(buf, version)?), )*
                $(
                    ApiKey::$gkey => {
                        let body = <$greq>::decode(buf, version)?;
                        Request::$gkey(coordinator(ctx)?, body)
                    }
                )*
                other => anyhow::bail!("{other:?} has no handler"),
            })
        }

        /// Authorizes a decoded request for `caller` ([`super::authz`]),
        /// runs it with its handler, charges it against the client quotas
        /// ([`super::throttle`]; `request_bytes` is the size of its frame)
        /// and encodes the answer.
        pub async fn run(
            ctx: &KafkaContext,
            api: ApiKey,
            header: &RequestHeader,
            request: Request,
            caller: &Caller,
            request_bytes: usize,
        ) -> Result<Answer, EncodeError> {
            let version = header.request_api_version;
            let unthrottled = |frame| Answer { frame, throttle: Throttle::default() };
            match request {
                Request::UnsupportedApiVersions => api_versions_reply(ctx, api, header).map(unthrottled),
                $(
                    Request::$key(r) => {
                        let (mut r, finish) = match authorize(ctx, caller, r) {
                            Ok(admitted) => admitted,
                            Err(denied) => return Reply::<$resp>::from(denied).encode(api_name(api), header).map(unthrottled),
                        };
                        let meter = Meter::new(ctx, caller, header, request_bytes);
                        r.limit(&meter);
                        let request_time = r.counts_request_time();
                        let (reply, busy) = timed($handler(ctx, version, r)).await;
                        let reply = Reply::<$resp>::from(reply).finish(finish);
                        let (reply, throttle) = meter.charge::<$req, $resp>(reply, version, busy, request_time);
                        reply.encode(api_name(api), header).map(|frame| Answer { frame, throttle })
                    }
                )*
                $(
                    Request::$ckey(r) => {
                        let (r, finish) = match authorize(ctx, caller, r) {
                            Ok(admitted) => admitted,
                            Err(denied) => return Reply::<$cresp>::from(denied).encode(api_name(api), header).map(unthrottled),
                        };
                        let meter = Meter::new(ctx, caller, header, request_bytes);
                        let mut r = r;
                        r.limit(&meter);
                        let (reply, busy) = timed($chandler(ctx, version, r, caller)).await;
                        let reply = Reply::<$cresp>::from(reply).finish(finish);
                        let (reply, throttle) = meter.charge::<$creq, $cresp>(reply, version, busy, true);
                        reply.encode(api_name(api), header).map(|frame| Answer { frame, throttle })
                    }
                )*
                $(
                    // Answered by the connection; only a request routed
                    // here by mistake gets this.
                    Request::$skey(_) => {
                        let answer = <$sresp>::default().with_error_code(ResponseError::IllegalSaslState.code());
                        Reply::<$sresp>::from(answer).encode(api_name(api), header).map(unthrottled)
                    }
                )*
                $(
                    Request::$gkey(c, r) => {
                        let (r, finish) = match authorize(ctx, caller, r) {
                            Ok(admitted) => admitted,
                            Err(denied) => return Reply::<$gresp>::from(denied).encode(api_name(api), header).map(unthrottled),
                        };
                        let meter = Meter::new(ctx, caller, header, request_bytes);
                        let (answer, busy) = timed($ghandler(&c, version, r, &client(header, ctx.listener.as_deref(), &caller.host))).await;
                        let reply = Reply::<$gresp>::from(answer).finish(finish);
                        let (reply, throttle) = meter.charge::<$greq, $gresp>(reply, version, busy, true);
                        reply.encode(api_name(api), header).map(|frame| Answer { frame, throttle })
                    }
                )*
            }
        }
    };
}

kafka_apis! {
    broker {
        Produce(ProduceRequest => ProduceResponse) => produce::produce,
        Fetch(FetchRequest => FetchResponse) => fetch::reply,
        ListOffsets(ListOffsetsRequest => ListOffsetsResponse) => offsets::list_offsets,
        Metadata(MetadataRequest => MetadataResponse) => metadata::metadata,
        ApiVersions(ApiVersionsRequest => ApiVersionsResponse) => api_versions_answer,
        CreateTopics(CreateTopicsRequest => CreateTopicsResponse) => admin::create_topics,
        DeleteTopics(DeleteTopicsRequest => DeleteTopicsResponse) => admin::delete_topics,
        InitProducerId(InitProducerIdRequest => InitProducerIdResponse) => producer_id::init_producer_id,
        OffsetForLeaderEpoch(OffsetForLeaderEpochRequest => OffsetForLeaderEpochResponse) => offsets::offset_for_leader_epoch,
        DeleteRecords(DeleteRecordsRequest => DeleteRecordsResponse) => offsets::delete_records,
        DescribeConfigs(DescribeConfigsRequest => DescribeConfigsResponse) => admin::describe_configs,
        CreatePartitions(CreatePartitionsRequest => CreatePartitionsResponse) => admin::create_partitions,
        DescribeCluster(DescribeClusterRequest => DescribeClusterResponse) => metadata::describe_cluster,
        DescribeTopicPartitions(DescribeTopicPartitionsRequest => DescribeTopicPartitionsResponse) => metadata::describe_topic_partitions,
        AlterConfigs(AlterConfigsRequest => AlterConfigsResponse) => admin::alter_configs,
        IncrementalAlterConfigs(IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse) => admin::incremental_alter_configs,
        AlterPartitionReassignments(AlterPartitionReassignmentsRequest => AlterPartitionReassignmentsResponse) => reassign::alter_partition_reassignments,
        ListPartitionReassignments(ListPartitionReassignmentsRequest => ListPartitionReassignmentsResponse) => reassign::list_partition_reassignments,
        ElectLeaders(ElectLeadersRequest => ElectLeadersResponse) => reassign::elect_leaders,
        DescribeLogDirs(DescribeLogDirsRequest => DescribeLogDirsResponse) => reassign::describe_log_dirs,
        CreateAcls(CreateAclsRequest => CreateAclsResponse) => acls::create_acls,
        DescribeAcls(DescribeAclsRequest => DescribeAclsResponse) => acls::describe_acls,
        DeleteAcls(DeleteAclsRequest => DeleteAclsResponse) => acls::delete_acls,
        DescribeClientQuotas(DescribeClientQuotasRequest => DescribeClientQuotasResponse) => quotas::describe_client_quotas,
        AlterClientQuotas(AlterClientQuotasRequest => AlterClientQuotasResponse) => quotas::alter_client_quotas,
        AddPartitionsToTxn(AddPartitionsToTxnRequest => AddPartitionsToTxnResponse) => txn::add_partitions_to_txn,
        AddOffsetsToTxn(AddOffsetsToTxnRequest => AddOffsetsToTxnResponse) => txn::add_offsets_to_txn,
        EndTxn(EndTxnRequest => EndTxnResponse) => txn::end_txn,
        DescribeTransactions(DescribeTransactionsRequest => DescribeTransactionsResponse) => txn::describe_transactions,
        ListTransactions(ListTransactionsRequest => ListTransactionsResponse) => txn::list_transactions,
        DescribeProducers(DescribeProducersRequest => DescribeProducersResponse) => txn::describe_producers,
        WriteTxnMarkers(WriteTxnMarkersRequest => WriteTxnMarkersResponse) => txn::write_txn_markers,
        TxnOffsetCommit(TxnOffsetCommitRequest => TxnOffsetCommitResponse) => txn::txn_offset_commit,
        FindCoordinator(FindCoordinatorRequest => FindCoordinatorResponse) => find_coordinator,
    }
    session {
        SaslHandshake(SaslHandshakeRequest => SaslHandshakeResponse),
        SaslAuthenticate(SaslAuthenticateRequest => SaslAuthenticateResponse),
    }
    connection {
        ShareFetch(ShareFetchRequest => ShareFetchResponse) => share::share_fetch,
        ShareAcknowledge(ShareAcknowledgeRequest => ShareAcknowledgeResponse) => share::share_acknowledge,
    }
    groups {
        JoinGroup(JoinGroupRequest => JoinGroupResponse) => groups::join_group,
        SyncGroup(SyncGroupRequest => SyncGroupResponse) => groups::sync_group,
        Heartbeat(HeartbeatRequest => HeartbeatResponse) => groups::heartbeat,
        LeaveGroup(LeaveGroupRequest => LeaveGroupResponse) => groups::leave_group,
        OffsetCommit(OffsetCommitRequest => OffsetCommitResponse) => groups::offset_commit,
        OffsetFetch(OffsetFetchRequest => OffsetFetchResponse) => groups::offset_fetch,
        ListGroups(ListGroupsRequest => ListGroupsResponse) => groups::list_groups,
        DescribeGroups(DescribeGroupsRequest => DescribeGroupsResponse) => groups::describe_groups,
        DeleteGroups(DeleteGroupsRequest => DeleteGroupsResponse) => groups::delete_groups,
        OffsetDelete(OffsetDeleteRequest => OffsetDeleteResponse) => groups::offset_delete,
        ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest => ConsumerGroupHeartbeatResponse) => groups::consumer_group_heartbeat,
        ConsumerGroupDescribe(ConsumerGroupDescribeRequest => ConsumerGroupDescribeResponse) => groups::consumer_group_describe,
        ShareGroupHeartbeat(ShareGroupHeartbeatRequest => ShareGroupHeartbeatResponse) => groups::share_group_heartbeat,
        ShareGroupDescribe(ShareGroupDescribeRequest => ShareGroupDescribeResponse) => groups::share_group_describe,
        DescribeShareGroupOffsets(DescribeShareGroupOffsetsRequest => DescribeShareGroupOffsetsResponse) => groups::describe_share_group_offsets,
        AlterShareGroupOffsets(AlterShareGroupOffsetsRequest => AlterShareGroupOffsetsResponse) => groups::alter_share_group_offsets,
        DeleteShareGroupOffsets(DeleteShareGroupOffsetsRequest => DeleteShareGroupOffsetsResponse) => groups::delete_share_group_offsets,
    }
}

/// An encoded answer (`None` when there is none to send, as for a produce
/// with acks=0) and the client quota throttle that comes with it.
#[derive(Debug)]
pub struct Answer {
    pub frame: Option<ResponseFrame>,
    pub throttle: Throttle,
}

/// The request to run and what to add to its answer, or the answer that
/// refuses it. With authorization off every request runs as it is.
#[allow(clippy::type_complexity)]
fn authorize<R: Authorize>(
    ctx: &KafkaContext,
    caller: &Caller,
    request: R,
) -> Result<(R, Finish<R::Response>), R::Response> {
    if !ctx.acls.authorizer.enabled() {
        return Ok((request, None));
    }
    request.authorize(&Check { ctx, caller })
}

fn pair<Req: Message, Resp: Message>() -> VersionRange {
    Req::VERSIONS.intersect(&Resp::VERSIONS)
}

/// FindCoordinator for groups and transactional ids.
async fn find_coordinator(
    ctx: &KafkaContext,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    groups::find_coordinator(ctx, version, request).await
}

/// The coordinator for a group request (decoding only reaches here for
/// APIs that are served, which needs one).
fn coordinator(ctx: &KafkaContext) -> anyhow::Result<Arc<GroupCoordinator>> {
    ctx.groups
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no group service"))
}

/// The share-group APIs (KIP-932): served when the broker runs share
/// groups (and, for those answered by the coordinator, groups).
pub const SHARE_APIS: &[ApiKey] = &[
    ApiKey::ShareFetch,
    ApiKey::ShareAcknowledge,
    ApiKey::ShareGroupHeartbeat,
    ApiKey::ShareGroupDescribe,
    ApiKey::DescribeShareGroupOffsets,
    ApiKey::AlterShareGroupOffsets,
    ApiKey::DeleteShareGroupOffsets,
];

/// The versions of `api` this broker serves, `None` when it does not
/// serve it at all.
pub fn served_versions(ctx: &KafkaContext, api: ApiKey) -> Option<VersionRange> {
    let codec = codec_versions(api)?;
    if SHARE_APIS.contains(&api) && ctx.shares.is_none() {
        return None;
    }
    if OWN_APIS.contains(&api) {
        return Some(codec);
    }
    if GROUP_APIS.contains(&api) {
        return ctx.groups.as_ref().map(|_| codec);
    }
    None
}

/// Every served API with its versions, by key (the ApiVersions answer).
pub fn api_versions(ctx: &KafkaContext) -> Vec<ApiVersion> {
    let mut out: Vec<ApiVersion> = OWN_APIS
        .iter()
        .chain(GROUP_APIS.iter())
        .filter_map(|&api| {
            served_versions(ctx, api).map(|r| {
                ApiVersion::default()
                    .with_api_key(api as i16)
                    .with_min_version(r.min)
                    .with_max_version(r.max)
            })
        })
        .collect();
    out.sort_by_key(|v| v.api_key);
    out
}

fn api_versions_response(ctx: &KafkaContext, error: Option<ResponseError>) -> ApiVersionsResponse {
    // `transaction.version` (KIP-890): 2 makes Java clients 4.x add
    // partitions through Produce and bump the epoch with every EndTxn;
    // librdkafka ignores it and uses version 1, which is served too.
    let level = ctx.settings.transaction_version;
    let mut features = vec![("transaction.version", 2, level)];
    // `group.version` 1: the consumer group protocol of KIP-848 is served
    // (with the group coordinator).
    if ctx.groups.is_some() {
        features.push(("group.version", 1, 1));
    }
    // `share.version` 1: share groups (KIP-932) are served.
    if ctx.groups.is_some() && ctx.shares.is_some() {
        features.push(("share.version", 1, 1));
    }
    ApiVersionsResponse::default()
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_api_keys(api_versions(ctx))
        .with_supported_features(
            features
                .iter()
                .map(|(name, max, _)| {
                    api_versions_response::SupportedFeatureKey::default()
                        .with_name(StrBytes::from_static_str(name))
                        .with_min_version(0)
                        .with_max_version(*max)
                })
                .collect(),
        )
        .with_finalized_features_epoch(1)
        .with_finalized_features(
            features
                .iter()
                .map(|(name, _, level)| {
                    api_versions_response::FinalizedFeatureKey::default()
                        .with_name(StrBytes::from_static_str(name))
                        .with_min_version_level(*level)
                        .with_max_version_level(*level)
                })
                .collect(),
        )
}

/// ApiVersions: every served API with its versions.
pub async fn api_versions_answer(
    ctx: &KafkaContext,
    _version: i16,
    _request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    api_versions_response(ctx, None)
}

/// ApiVersions at a version this broker does not serve: UNSUPPORTED_VERSION
/// with what is served, in the v0 format every client can read.
pub fn api_versions_reply(
    ctx: &KafkaContext,
    api: ApiKey,
    header: &RequestHeader,
) -> Result<Option<ResponseFrame>, EncodeError> {
    encode_response(
        api_name(api),
        header.correlation_id,
        0,
        &api_versions_response(ctx, Some(ResponseError::UnsupportedVersion)),
        &[],
    )
    .map(Some)
}
