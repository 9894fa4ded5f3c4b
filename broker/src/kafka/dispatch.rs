//! Request decoding and routing.
//!
//! [`decode`] reads the API key and version, decodes the request header
//! (v1, or v2 for flexible versions) and the body with `kafka-protocol`,
//! after checking that this broker serves that API at that version.
//! Anything it cannot decode is a [`RequestError`], which closes the
//! connection (Kafka does the same: a client that sends what it was not
//! offered is broken). The one exception is ApiVersions at a version this
//! broker does not know: it is answered with UNSUPPORTED_VERSION in the v0
//! format, listing what is served, so newer clients can downgrade.
//!
//! [`handle`] runs a decoded request, encodes its response and records the
//! per-API request count and latency. The versions served are exactly the
//! versions the `kafka-protocol` crate can decode the request and encode
//! the response in ([`codec_versions`]) for every implemented API
//! ([`OWN_APIS`]), and for the group APIs ([`GROUP_APIS`]) when a group
//! coordinator is plugged in.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, HeaderVersion, Message, VersionRange};
use thiserror::Error;

use super::frame::{EncodeError, ResponseFrame, encode_response};
use super::groups::{self, client};
use super::{KafkaContext, admin, fetch, metadata, offsets, produce, producer_id};
use crate::group::GroupCoordinator;

/// The APIs this listener implements itself, served at every version the
/// codec supports.
pub const OWN_APIS: [ApiKey; 12] = [
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::InitProducerId,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::DescribeConfigs,
    ApiKey::CreatePartitions,
    ApiKey::DescribeCluster,
];

/// Why a request frame could not be decoded; the connection is closed.
#[derive(Debug, Error)]
pub enum RequestError {
    #[error("request of {0} bytes is too short for a request header")]
    Short(usize),
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("{api:?} (key {key}) is not served by this broker")]
    NotServed { api: ApiKey, key: i16 },
    #[error("{api:?} v{version} is not supported; this broker serves v{min} to v{max}")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        min: i16,
        max: i16,
    },
    #[error("malformed {api:?} v{version} request header: {reason}")]
    MalformedHeader {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("malformed {api:?} v{version} request (correlation id {correlation_id}): {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        reason: String,
    },
}

impl RequestError {
    /// Short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Short(_) | Self::MalformedHeader { .. } | Self::Malformed { .. } => "malformed",
            Self::UnknownApi(_) | Self::NotServed { .. } => "unknown_api",
            Self::UnsupportedVersion { .. } => "unsupported_version",
        }
    }
}

/// The APIs served by the group coordinator, when there is one.
pub const GROUP_APIS: [ApiKey; 10] = [
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::ListGroups,
    ApiKey::DescribeGroups,
    ApiKey::DeleteGroups,
];

/// A consumer-group request, for the [`GroupCoordinator`].
#[derive(Debug)]
pub enum GroupRequest {
    FindCoordinator(FindCoordinatorRequest),
    JoinGroup(JoinGroupRequest),
    SyncGroup(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    ListGroups(ListGroupsRequest),
    DescribeGroups(DescribeGroupsRequest),
    DeleteGroups(DeleteGroupsRequest),
}

/// A decoded request body.
#[derive(Debug)]
pub enum Request {
    ApiVersions(ApiVersionsRequest),
    /// ApiVersions at a version this broker does not serve.
    UnsupportedApiVersions,
    Metadata(MetadataRequest),
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest),
    InitProducerId(InitProducerIdRequest),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    CreatePartitions(CreatePartitionsRequest),
    DescribeConfigs(DescribeConfigsRequest),
    DescribeCluster(DescribeClusterRequest),
    Group(Arc<GroupCoordinator>, GroupRequest),
}

/// A request ready to run.
#[derive(Debug)]
pub struct Decoded {
    pub header: RequestHeader,
    pub api: ApiKey,
    pub request: Request,
}

fn pair<Req: Message, Resp: Message>() -> VersionRange {
    Req::VERSIONS.intersect(&Resp::VERSIONS)
}

/// The versions in which the codec can both decode the request and
/// encode the response of `api` (its tables do not always agree: the
/// InitProducerId request stops at v5 while the API key lists v6), for
/// the APIs this listener routes.
pub fn codec_versions(api: ApiKey) -> Option<VersionRange> {
    let range = match api {
        ApiKey::Produce => pair::<ProduceRequest, ProduceResponse>(),
        ApiKey::Fetch => pair::<FetchRequest, FetchResponse>(),
        ApiKey::ListOffsets => pair::<ListOffsetsRequest, ListOffsetsResponse>(),
        ApiKey::Metadata => pair::<MetadataRequest, MetadataResponse>(),
        ApiKey::ApiVersions => pair::<ApiVersionsRequest, ApiVersionsResponse>(),
        ApiKey::CreateTopics => pair::<CreateTopicsRequest, CreateTopicsResponse>(),
        ApiKey::DeleteTopics => pair::<DeleteTopicsRequest, DeleteTopicsResponse>(),
        ApiKey::InitProducerId => pair::<InitProducerIdRequest, InitProducerIdResponse>(),
        ApiKey::OffsetForLeaderEpoch => {
            pair::<OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse>()
        }
        ApiKey::DescribeConfigs => pair::<DescribeConfigsRequest, DescribeConfigsResponse>(),
        ApiKey::CreatePartitions => pair::<CreatePartitionsRequest, CreatePartitionsResponse>(),
        ApiKey::DescribeCluster => pair::<DescribeClusterRequest, DescribeClusterResponse>(),
        ApiKey::FindCoordinator => pair::<FindCoordinatorRequest, FindCoordinatorResponse>(),
        ApiKey::JoinGroup => pair::<JoinGroupRequest, JoinGroupResponse>(),
        ApiKey::SyncGroup => pair::<SyncGroupRequest, SyncGroupResponse>(),
        ApiKey::Heartbeat => pair::<HeartbeatRequest, HeartbeatResponse>(),
        ApiKey::LeaveGroup => pair::<LeaveGroupRequest, LeaveGroupResponse>(),
        ApiKey::OffsetCommit => pair::<OffsetCommitRequest, OffsetCommitResponse>(),
        ApiKey::OffsetFetch => pair::<OffsetFetchRequest, OffsetFetchResponse>(),
        ApiKey::ListGroups => pair::<ListGroupsRequest, ListGroupsResponse>(),
        ApiKey::DescribeGroups => pair::<DescribeGroupsRequest, DescribeGroupsResponse>(),
        ApiKey::DeleteGroups => pair::<DeleteGroupsRequest, DeleteGroupsResponse>(),
        _ => return None,
    };
    let range = range.intersect(&api.valid_versions());
    (!range.is_empty()).then_some(range)
}

/// The versions of `api` this broker serves, `None` when it does not
/// serve it at all.
pub fn served_versions(ctx: &KafkaContext, api: ApiKey) -> Option<VersionRange> {
    let codec = codec_versions(api)?;
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
    ApiVersionsResponse::default()
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_api_keys(api_versions(ctx))
}

/// Decodes one request frame.
pub fn decode(ctx: &KafkaContext, frame: Bytes) -> Result<Decoded, RequestError> {
    if frame.len() < 4 {
        return Err(RequestError::Short(frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(key).map_err(|()| RequestError::UnknownApi(key))?;
    let Some(range) = served_versions(ctx, api) else {
        return Err(RequestError::NotServed { api, key });
    };
    let mut buf = frame;
    let header_version = api.request_header_version(version);
    let header = RequestHeader::decode(&mut buf, header_version).map_err(|e| {
        RequestError::MalformedHeader {
            api,
            version,
            reason: e.to_string(),
        }
    })?;
    if version < range.min || version > range.max {
        if api == ApiKey::ApiVersions {
            return Ok(Decoded {
                header,
                api,
                request: Request::UnsupportedApiVersions,
            });
        }
        return Err(RequestError::UnsupportedVersion {
            api,
            version,
            min: range.min,
            max: range.max,
        });
    }
    let correlation_id = header.correlation_id;
    let request =
        decode_body(ctx, api, version, &mut buf).map_err(|e| RequestError::Malformed {
            api,
            version,
            correlation_id,
            reason: e.to_string(),
        })?;
    Ok(Decoded {
        header,
        api,
        request,
    })
}

fn decode_body(
    ctx: &KafkaContext,
    api: ApiKey,
    version: i16,
    buf: &mut Bytes,
) -> anyhow::Result<Request> {
    fn body<T: Decodable>(buf: &mut Bytes, version: i16) -> anyhow::Result<T> {
        T::decode(buf, version)
    }
    let group = |g: GroupRequest| -> anyhow::Result<Request> {
        let service = ctx
            .groups
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no group service"))?;
        Ok(Request::Group(service, g))
    };
    let request = match api {
        ApiKey::ApiVersions => Request::ApiVersions(body(buf, version)?),
        ApiKey::Metadata => Request::Metadata(body(buf, version)?),
        ApiKey::Produce => Request::Produce(body(buf, version)?),
        ApiKey::Fetch => Request::Fetch(body(buf, version)?),
        ApiKey::ListOffsets => Request::ListOffsets(body(buf, version)?),
        ApiKey::OffsetForLeaderEpoch => Request::OffsetForLeaderEpoch(body(buf, version)?),
        ApiKey::InitProducerId => Request::InitProducerId(body(buf, version)?),
        ApiKey::CreateTopics => Request::CreateTopics(body(buf, version)?),
        ApiKey::DeleteTopics => Request::DeleteTopics(body(buf, version)?),
        ApiKey::CreatePartitions => Request::CreatePartitions(body(buf, version)?),
        ApiKey::DescribeConfigs => Request::DescribeConfigs(body(buf, version)?),
        ApiKey::DescribeCluster => Request::DescribeCluster(body(buf, version)?),
        ApiKey::FindCoordinator => group(GroupRequest::FindCoordinator(body(buf, version)?))?,
        ApiKey::JoinGroup => group(GroupRequest::JoinGroup(body(buf, version)?))?,
        ApiKey::SyncGroup => group(GroupRequest::SyncGroup(body(buf, version)?))?,
        ApiKey::Heartbeat => group(GroupRequest::Heartbeat(body(buf, version)?))?,
        ApiKey::LeaveGroup => group(GroupRequest::LeaveGroup(body(buf, version)?))?,
        ApiKey::OffsetCommit => group(GroupRequest::OffsetCommit(body(buf, version)?))?,
        ApiKey::OffsetFetch => group(GroupRequest::OffsetFetch(body(buf, version)?))?,
        ApiKey::ListGroups => group(GroupRequest::ListGroups(body(buf, version)?))?,
        ApiKey::DescribeGroups => group(GroupRequest::DescribeGroups(body(buf, version)?))?,
        ApiKey::DeleteGroups => group(GroupRequest::DeleteGroups(body(buf, version)?))?,
        other => anyhow::bail!("{other:?} has no handler"),
    };
    if buf.has_remaining() {
        tracing::debug!(
            ?api,
            version,
            trailing = buf.remaining(),
            "ignoring trailing request bytes"
        );
    }
    Ok(request)
}

/// A name for metric labels and logs.
pub fn api_name(api: ApiKey) -> &'static str {
    match api {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::DeleteGroups => "DeleteGroups",
        _ => "Other",
    }
}

fn encode<R: kafka_protocol::protocol::Encodable + HeaderVersion>(
    api: ApiKey,
    header: &RequestHeader,
    body: &R,
) -> Result<Option<ResponseFrame>, EncodeError> {
    encode_sharing(api, header, body, &[])
}

/// [`encode`] for a body that refers to `shared` buffers, which the frame
/// references instead of copying (see [`encode_response`]).
fn encode_sharing<R: kafka_protocol::protocol::Encodable + HeaderVersion>(
    api: ApiKey,
    header: &RequestHeader,
    body: &R,
    shared: &[Bytes],
) -> Result<Option<ResponseFrame>, EncodeError> {
    encode_response(
        api_name(api),
        header.correlation_id,
        header.request_api_version,
        body,
        shared,
    )
    .map(Some)
}

/// Runs a decoded request; returns the response frame (`None` for a
/// produce with acks=0, which Kafka never answers).
pub async fn handle(
    ctx: Arc<KafkaContext>,
    decoded: Decoded,
) -> Result<Option<ResponseFrame>, EncodeError> {
    let started = Instant::now();
    let Decoded {
        header,
        api,
        request,
    } = decoded;
    let version = header.request_api_version;
    let ctx = &*ctx;
    let out = match request {
        Request::ApiVersions(_) => encode(api, &header, &api_versions_response(ctx, None)),
        Request::UnsupportedApiVersions => encode_response(
            api_name(api),
            header.correlation_id,
            0,
            &api_versions_response(ctx, Some(ResponseError::UnsupportedVersion)),
            &[],
        )
        .map(Some),
        Request::Metadata(r) => encode(api, &header, &metadata::metadata(ctx, version, r).await),
        Request::DescribeCluster(r) => {
            encode(api, &header, &metadata::describe_cluster(ctx, version, r))
        }
        Request::Produce(r) => match produce::produce(ctx, version, r).await {
            Some(response) => encode(api, &header, &response),
            None => Ok(None),
        },
        Request::Fetch(r) => {
            let response = fetch::fetch(ctx, version, r).await;
            encode_sharing(api, &header, &response, &fetch::record_sets(&response))
        }
        Request::ListOffsets(r) => encode(api, &header, &offsets::list_offsets(ctx, version, r)),
        Request::OffsetForLeaderEpoch(r) => encode(
            api,
            &header,
            &offsets::offset_for_leader_epoch(ctx, version, r),
        ),
        Request::InitProducerId(r) => encode(
            api,
            &header,
            &producer_id::init_producer_id(ctx, version, r).await,
        ),
        Request::CreateTopics(r) => {
            encode(api, &header, &admin::create_topics(ctx, version, r).await)
        }
        Request::DeleteTopics(r) => {
            encode(api, &header, &admin::delete_topics(ctx, version, r).await)
        }
        Request::CreatePartitions(r) => encode(
            api,
            &header,
            &admin::create_partitions(ctx, version, r).await,
        ),
        Request::DescribeConfigs(r) => {
            encode(api, &header, &admin::describe_configs(ctx, version, r))
        }
        Request::Group(service, g) => match g {
            GroupRequest::FindCoordinator(r) => encode(
                api,
                &header,
                &groups::find_coordinator(&service, version, r, &client(&header)).await,
            ),
            GroupRequest::JoinGroup(r) => encode(
                api,
                &header,
                &groups::join_group(&service, version, r, &client(&header)).await,
            ),
            GroupRequest::SyncGroup(r) => encode(
                api,
                &header,
                &groups::sync_group(&service, version, r, &client(&header)).await,
            ),
            GroupRequest::Heartbeat(r) => encode(
                api,
                &header,
                &groups::heartbeat(&service, version, r, &client(&header)).await,
            ),
            GroupRequest::LeaveGroup(r) => encode(
                api,
                &header,
                &groups::leave_group(&service, version, r, &client(&header)).await,
            ),
            GroupRequest::OffsetCommit(r) => encode(
                api,
                &header,
                &groups::offset_commit(&service, version, r, &client(&header)).await,
            ),
            GroupRequest::OffsetFetch(r) => encode(
                api,
                &header,
                &groups::offset_fetch(&service, version, r, &client(&header)).await,
            ),
            GroupRequest::ListGroups(r) => encode(
                api,
                &header,
                &groups::list_groups(&service, version, r, &client(&header)).await,
            ),
            GroupRequest::DescribeGroups(r) => encode(
                api,
                &header,
                &groups::describe_groups(&service, version, r, &client(&header)).await,
            ),
            GroupRequest::DeleteGroups(r) => encode(
                api,
                &header,
                &groups::delete_groups(&service, version, r, &client(&header)).await,
            ),
        },
    };
    let name = api_name(api);
    ctx.metrics.kafka_requests.with_label_values(&[name]).inc();
    ctx.metrics
        .kafka_request_seconds
        .with_label_values(&[name])
        .observe(started.elapsed().as_secs_f64());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TopicAdminPolicy;
    use crate::group::GroupSettings;
    use crate::kafka::{KafkaSettings, ProducerIdAllocator};
    use crate::log::LogConfig;
    use crate::metadata::TopicStore;
    use crate::metrics::Metrics;
    use crate::partition::manager::{BrokerInfo, ReplicaManager, Settings};
    use bytes::BufMut;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn context(dir: &std::path::Path, with_groups: bool) -> KafkaContext {
        let settings = Settings {
            broker: BrokerInfo {
                id: 0,
                address: "localhost:9093".into(),
                kafka_address: "localhost:9092".into(),
                rack: None,
                fenced: false,
            },
            log_defaults: LogConfig::default(),
            auto_create_partitions: None,
            max_request_bytes: 1 << 20,
        };
        let metrics = Arc::new(Metrics::new());
        let store = TopicStore::open(dir).expect("store");
        let manager =
            Arc::new(ReplicaManager::open(store, settings, Arc::clone(&metrics)).expect("manager"));
        let groups = with_groups.then(|| {
            GroupCoordinator::new(
                Arc::clone(&manager),
                GroupSettings::default(),
                Arc::clone(&metrics),
            )
        });
        KafkaContext {
            manager,
            metrics,
            settings: KafkaSettings {
                broker_id: 0,
                cluster_id: "test".into(),
                max_request_bytes: 1 << 20,
                create_topics: TopicAdminPolicy::Allow,
                delete_topics: TopicAdminPolicy::Allow,
                auto_create_partitions: None,
            },
            producer_ids: ProducerIdAllocator::open(dir, 0).expect("ids"),
            groups,
        }
    }

    /// A request frame body: header at the version's header version, then
    /// the body.
    fn frame<R: Encodable>(api: ApiKey, version: i16, correlation_id: i32, body: &R) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("unit")));
        let mut buf = bytes::BytesMut::new();
        header
            .encode(&mut buf, api.request_header_version(version))
            .expect("header");
        body.encode(&mut buf, version).expect("body");
        buf.freeze()
    }

    #[test]
    fn given_no_group_service_when_listing_versions_should_leave_group_apis_out() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path(), false);
        let keys: Vec<i16> = api_versions(&ctx).iter().map(|v| v.api_key).collect();
        assert_eq!(keys.len(), OWN_APIS.len());
        assert!(!keys.contains(&(ApiKey::FindCoordinator as i16)));
        let err = decode(
            &ctx,
            frame(ApiKey::Heartbeat, 4, 1, &HeartbeatRequest::default()),
        )
        .expect_err("not served");
        assert!(matches!(err, RequestError::NotServed { .. }), "{err}");
        // The codec's own tables disagree for some APIs; the served range
        // is where both request and response exist.
        assert_eq!(
            served_versions(&ctx, ApiKey::InitProducerId).map(|r| (r.min, r.max)),
            Some((0, 5))
        );
    }

    #[tokio::test]
    async fn given_a_group_coordinator_when_group_requests_arrive_should_route_them_at_the_codec_versions()
     {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Arc::new(context(dir.path(), true));
        let served: Vec<(i16, i16, i16)> = api_versions(&ctx)
            .iter()
            .map(|v| (v.api_key, v.min_version, v.max_version))
            .collect();
        assert!(served.contains(&(ApiKey::Heartbeat as i16, 0, 4)));
        assert!(served.contains(&(ApiKey::OffsetCommit as i16, 2, 9)));
        assert!(served.contains(&(ApiKey::ListGroups as i16, 0, 5)));
        let mut future = frame(ApiKey::Heartbeat, 4, 1, &HeartbeatRequest::default()).to_vec();
        future[3] = 5;
        let err = decode(&ctx, Bytes::from(future)).expect_err("v5 not served");
        assert!(
            matches!(err, RequestError::UnsupportedVersion { min: 0, max: 4, .. }),
            "{err}"
        );

        let request = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"));
        let decoded =
            decode(&ctx, frame(ApiKey::FindCoordinator, 3, 42, &request)).expect("decodes");
        let mut out = handle(Arc::clone(&ctx), decoded)
            .await
            .expect("encodes")
            .expect("answered")
            .to_bytes();
        assert_eq!(out.get_i32() as usize, out.len(), "size prefix");
        let header = ResponseHeader::decode(&mut out, FindCoordinatorResponse::header_version(3))
            .expect("header");
        assert_eq!(header.correlation_id, 42);
        let body = FindCoordinatorResponse::decode(&mut out, 3).expect("body");
        assert_eq!(
            body.error_code, 15,
            "answered by the group coordinator: the offsets topic is being created"
        );
    }

    #[test]
    fn given_malformed_frames_when_decoded_should_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path(), false);
        assert!(matches!(
            decode(&ctx, Bytes::from_static(&[0, 3])),
            Err(RequestError::Short(2))
        ));
        assert!(matches!(
            decode(&ctx, Bytes::from_static(&[0x7f, 0, 0, 0, 0, 0, 0, 1])),
            Err(RequestError::UnknownApi(0x7f00))
        ));
        let mut unsupported = frame(ApiKey::Metadata, 1, 1, &MetadataRequest::default()).to_vec();
        unsupported[3] = 99;
        assert!(matches!(
            decode(&ctx, Bytes::from(unsupported)),
            Err(RequestError::UnsupportedVersion { version: 99, .. })
        ));
        let mut api_versions = bytes::BytesMut::new();
        api_versions.put_slice(&[0, 18, 0, 77, 0, 0, 0, 5, 0xff, 0xff, 0]);
        let decoded = decode(&ctx, api_versions.freeze()).expect("answered anyway");
        assert!(matches!(decoded.request, Request::UnsupportedApiVersions));
        let mut cut = frame(ApiKey::Metadata, 12, 1, &MetadataRequest::default()).to_vec();
        cut.truncate(cut.len() - 2);
        assert!(matches!(
            decode(&ctx, Bytes::from(cut)),
            Err(RequestError::Malformed {
                correlation_id: 1,
                ..
            })
        ));
    }
}
