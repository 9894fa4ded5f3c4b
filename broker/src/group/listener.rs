//! The group coordinator behind the Kafka listener's
//! [`GroupService`] hook: takes the client id from the request header and
//! the version it was sent at, and calls the [`api`](super::api) methods.
//! Nothing else happens here.

use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, RequestHeader, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::VersionRange;

use super::api::GROUP_API_VERSIONS;
use super::coordinator::{ClientInfo, GroupCoordinator};
use crate::kafka::GroupService;

/// Who sent the request, as far as the header tells. The listener does
/// not pass the peer address, so DescribeGroups shows no client host.
fn client(header: &RequestHeader) -> ClientInfo {
    ClientInfo {
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: String::new(),
    }
}

#[tonic::async_trait]
impl GroupService for GroupCoordinator {
    fn versions(&self, api: ApiKey) -> Option<VersionRange> {
        GROUP_API_VERSIONS
            .iter()
            .find(|(key, _, _)| *key == api)
            .map(|(_, min, max)| VersionRange {
                min: *min,
                max: *max,
            })
    }

    async fn find_coordinator(
        &self,
        header: &RequestHeader,
        request: FindCoordinatorRequest,
    ) -> FindCoordinatorResponse {
        GroupCoordinator::find_coordinator(
            self,
            header.request_api_version,
            request,
            &client(header),
        )
        .await
    }

    async fn join_group(
        &self,
        header: &RequestHeader,
        request: JoinGroupRequest,
    ) -> JoinGroupResponse {
        GroupCoordinator::join_group(self, header.request_api_version, request, &client(header))
            .await
    }

    async fn sync_group(
        &self,
        header: &RequestHeader,
        request: SyncGroupRequest,
    ) -> SyncGroupResponse {
        GroupCoordinator::sync_group(self, header.request_api_version, request, &client(header))
            .await
    }

    async fn heartbeat(
        &self,
        header: &RequestHeader,
        request: HeartbeatRequest,
    ) -> HeartbeatResponse {
        GroupCoordinator::heartbeat(self, header.request_api_version, request, &client(header))
            .await
    }

    async fn leave_group(
        &self,
        header: &RequestHeader,
        request: LeaveGroupRequest,
    ) -> LeaveGroupResponse {
        GroupCoordinator::leave_group(self, header.request_api_version, request, &client(header))
            .await
    }

    async fn offset_commit(
        &self,
        header: &RequestHeader,
        request: OffsetCommitRequest,
    ) -> OffsetCommitResponse {
        GroupCoordinator::offset_commit(self, header.request_api_version, request, &client(header))
            .await
    }

    async fn offset_fetch(
        &self,
        header: &RequestHeader,
        request: OffsetFetchRequest,
    ) -> OffsetFetchResponse {
        GroupCoordinator::offset_fetch(self, header.request_api_version, request, &client(header))
            .await
    }

    async fn list_groups(
        &self,
        header: &RequestHeader,
        request: ListGroupsRequest,
    ) -> ListGroupsResponse {
        GroupCoordinator::list_groups(self, header.request_api_version, request, &client(header))
            .await
    }

    async fn describe_groups(
        &self,
        header: &RequestHeader,
        request: DescribeGroupsRequest,
    ) -> DescribeGroupsResponse {
        GroupCoordinator::describe_groups(
            self,
            header.request_api_version,
            request,
            &client(header),
        )
        .await
    }

    async fn delete_groups(
        &self,
        header: &RequestHeader,
        request: DeleteGroupsRequest,
    ) -> DeleteGroupsResponse {
        GroupCoordinator::delete_groups(self, header.request_api_version, request, &client(header))
            .await
    }
}
