//! The hook through which consumer-group APIs reach the group coordinator
//! (`crate::group`).
//!
//! The listener decodes FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups and
//! DeleteGroups requests and calls the matching method of the [`GroupService`] plugged
//! into [`super::KafkaContext::groups`] with the request header and the
//! decoded request; the returned response is encoded at the request's
//! version. The service tells which versions it serves
//! ([`GroupService::versions`]); ApiVersions advertises exactly those, and
//! without a service none of these APIs is advertised or served.
//!
//! The coordinator's Kafka address (FindCoordinator) is in
//! [`crate::partition::manager::BrokerInfo::kafka_address`], from
//! `ReplicaManager::brokers()`.

use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, RequestHeader, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::VersionRange;

/// The consumer-group APIs the listener routes to the group coordinator.
/// Each method gets the request header (client id, correlation id, API
/// version) and the decoded request, and returns the response to encode
/// at `header.request_api_version`; errors are expressed as error codes
/// inside the response, as Kafka does.
#[tonic::async_trait]
pub trait GroupService: Send + Sync + std::fmt::Debug {
    /// The versions served for `api` (one of [`GROUP_APIS`]); `None`
    /// leaves it out. Ranges are intersected with the codec's
    /// ([`super::dispatch::codec_versions`]); the default serves all of them.
    fn versions(&self, api: ApiKey) -> Option<VersionRange> {
        GROUP_APIS
            .contains(&api)
            .then(|| super::dispatch::codec_versions(api))
            .flatten()
    }

    async fn find_coordinator(
        &self,
        header: &RequestHeader,
        request: FindCoordinatorRequest,
    ) -> FindCoordinatorResponse;

    async fn join_group(
        &self,
        header: &RequestHeader,
        request: JoinGroupRequest,
    ) -> JoinGroupResponse;

    async fn sync_group(
        &self,
        header: &RequestHeader,
        request: SyncGroupRequest,
    ) -> SyncGroupResponse;

    async fn heartbeat(
        &self,
        header: &RequestHeader,
        request: HeartbeatRequest,
    ) -> HeartbeatResponse;

    async fn leave_group(
        &self,
        header: &RequestHeader,
        request: LeaveGroupRequest,
    ) -> LeaveGroupResponse;

    async fn offset_commit(
        &self,
        header: &RequestHeader,
        request: OffsetCommitRequest,
    ) -> OffsetCommitResponse;

    async fn offset_fetch(
        &self,
        header: &RequestHeader,
        request: OffsetFetchRequest,
    ) -> OffsetFetchResponse;

    async fn list_groups(
        &self,
        header: &RequestHeader,
        request: ListGroupsRequest,
    ) -> ListGroupsResponse;

    async fn describe_groups(
        &self,
        header: &RequestHeader,
        request: DescribeGroupsRequest,
    ) -> DescribeGroupsResponse;

    async fn delete_groups(
        &self,
        header: &RequestHeader,
        request: DeleteGroupsRequest,
    ) -> DeleteGroupsResponse;
}

/// The APIs routed to a [`GroupService`].
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
