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
//! per-API request count and latency. The APIs, their handlers and their
//! versions come from one table, [`super::apis`]: the versions served are
//! exactly the versions the `kafka-protocol` crate can decode the request
//! and encode the response in ([`codec_versions`]) for every implemented
//! API ([`OWN_APIS`]), and for the group APIs ([`GROUP_APIS`]) when a group
//! coordinator is plugged in.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use thiserror::Error;

use super::KafkaContext;
use super::authz::Caller;
use super::frame::EncodeError;

pub use super::apis::{
    Answer, GROUP_APIS, OWN_APIS, Request, SHARE_APIS, api_name, api_versions, codec_versions,
    served_versions,
};

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

/// A request ready to run.
#[derive(Debug)]
pub struct Decoded {
    pub header: RequestHeader,
    pub api: ApiKey,
    pub request: Request,
    /// Bytes of the request frame (what a produce costs against its
    /// client's quota).
    pub size: usize,
}

/// Decodes one request frame.
pub fn decode(ctx: &KafkaContext, frame: Bytes) -> Result<Decoded, RequestError> {
    if frame.len() < 4 {
        return Err(RequestError::Short(frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(key).map_err(|()| RequestError::UnknownApi(key))?;
    let size = frame.len() + super::frame::SIZE_PREFIX;
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
                size,
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
    let request = super::apis::decode_body(ctx, api, version, &mut buf).map_err(|e| {
        RequestError::Malformed {
            api,
            version,
            correlation_id,
            reason: e.to_string(),
        }
    })?;
    if buf.has_remaining() {
        tracing::debug!(
            ?api,
            version,
            trailing = buf.remaining(),
            "ignoring trailing request bytes"
        );
    }
    Ok(Decoded {
        header,
        api,
        request,
        size,
    })
}

/// Runs a decoded request as `caller`; returns the response frame (`None`
/// for a produce with acks=0, which Kafka never answers) and the client
/// quota throttle that comes with it.
pub async fn handle(
    ctx: Arc<KafkaContext>,
    decoded: Decoded,
    caller: Caller,
) -> Result<Answer, EncodeError> {
    let started = Instant::now();
    let Decoded {
        header,
        api,
        request,
        size,
    } = decoded;
    let out = super::apis::run(&ctx, api, &header, request, &caller, size).await;
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
    use crate::group::{GroupCoordinator, GroupSettings};
    use crate::kafka::TopicAdminPolicy;
    use crate::kafka::{KafkaSettings, ProducerIdAllocator};
    use crate::log::LogConfig;
    use crate::metrics::Metrics;
    use crate::partition::manager::{BrokerInfo, ReplicaManager, Settings};
    use crate::partition::store::TopicStore;
    use bytes::BufMut;
    use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};

    fn context(dir: &std::path::Path, with_groups: bool) -> KafkaContext {
        let settings = Settings {
            broker: BrokerInfo {
                id: 0,
                address: "localhost:9093".into(),
                kafka_address: "localhost:9092".into(),
                kafka_listeners: Default::default(),
                rack: None,
                fenced: false,
            },
            log_defaults: LogConfig::default(),
            auto_create_partitions: None,
            default_replication_factor: 1,
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
                default_partitions: 1,
                config_sources: Default::default(),
                transaction_version: 1,
            },
            producer_ids: std::sync::Arc::new(ProducerIdAllocator::open(dir, 0).expect("ids")),
            listener: None,
            groups,
            txns: None,
            acls: crate::security::AclService::open_local(
                dir,
                Arc::new(crate::security::Authorizer::default()),
            )
            .expect("acls"),
            quotas: crate::quota::QuotaService::open_local(
                dir,
                Arc::new(crate::quota::QuotaManager::default()),
            )
            .expect("quotas"),
            fetch_sessions: Default::default(),
            shares: None,
            request_memory: crate::kafka::memory::RequestMemory::with_metrics(
                1 << 30,
                &crate::metrics::Metrics::new(),
            ),
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
        // Without a share manager the share-group APIs are left out too.
        let own = OWN_APIS.iter().filter(|a| !SHARE_APIS.contains(a)).count();
        assert_eq!(keys.len(), own);
        assert!(!keys.contains(&(ApiKey::ShareFetch as i16)));
        // FindCoordinator is the broker's (it finds transaction
        // coordinators too); the group APIs are left out.
        assert!(keys.contains(&(ApiKey::FindCoordinator as i16)));
        assert!(!keys.contains(&(ApiKey::JoinGroup as i16)));
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
        let caller = Caller {
            principal: Arc::new(crate::security::Principal::anonymous()),
            host: "127.0.0.1".into(),
            peer: "127.0.0.1:1".parse().unwrap(),
        };
        let mut out = handle(Arc::clone(&ctx), decoded, caller)
            .await
            .expect("encodes")
            .frame
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
