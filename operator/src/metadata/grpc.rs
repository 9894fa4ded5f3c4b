//! The `Controller` gRPC service of the operator: a router in front of the
//! per-cluster controllers of [`ControllerHost`].
//!
//! Each request names its cluster in the `rill-cluster` metadata header
//! (`namespace/name`; brokers get it as `RILL_CLUSTER`). The router finds
//! (or starts) that cluster's controller and hands the request over
//! unchanged; refusals (not the Lease holder, unknown cluster) are
//! UNAVAILABLE with a reason, which brokers treat as "try again". A
//! cluster with a CA only takes requests over mutual TLS with a certificate
//! from that CA ([`super::tls`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use rill_controller::CLUSTER_HEADER;
use rill_controller::service::ControllerService;
use rill_proto::controller as pb;
use rill_proto::controller::controller_server::{Controller, ControllerServer};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use super::host::{ControllerHost, HostError};
use super::tls::{ControllerTls, PeerInfo, incoming};

/// Routes every RPC to the controller of the cluster it names.
#[derive(Debug, Clone)]
pub struct ControllerRouter {
    host: Arc<ControllerHost>,
    tls: Arc<ControllerTls>,
}

impl ControllerRouter {
    /// A router over `host`, checking client certificates with `tls`.
    pub fn new(host: Arc<ControllerHost>, tls: Arc<ControllerTls>) -> Self {
        Self { host, tls }
    }

    async fn route<T>(&self, request: &Request<T>) -> Result<ControllerService, Status> {
        let key = request
            .metadata()
            .get(CLUSTER_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if key.is_empty() {
            return Err(HostError::BadClusterKey(String::new()).to_status());
        }
        self.tls
            .check_peer(key, request.extensions().get::<PeerInfo>())?;
        self.host.service(key).await.map_err(|e| e.to_status())
    }
}

type WatchStream = <ControllerService as Controller>::WatchMetadataStream;

#[tonic::async_trait]
impl Controller for ControllerRouter {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        self.route(&request).await?.register(request).await
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        self.route(&request).await?.heartbeat(request).await
    }

    type WatchMetadataStream = WatchStream;

    async fn watch_metadata(
        &self,
        request: Request<pb::WatchMetadataRequest>,
    ) -> Result<Response<Self::WatchMetadataStream>, Status> {
        self.route(&request).await?.watch_metadata(request).await
    }

    async fn alter_partition(
        &self,
        request: Request<pb::AlterPartitionRequest>,
    ) -> Result<Response<pb::AlterPartitionResponse>, Status> {
        self.route(&request).await?.alter_partition(request).await
    }

    async fn controlled_shutdown(
        &self,
        request: Request<pb::ControlledShutdownRequest>,
    ) -> Result<Response<pb::ControlledShutdownResponse>, Status> {
        self.route(&request)
            .await?
            .controlled_shutdown(request)
            .await
    }

    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        self.route(&request).await?.create_topic(request).await
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        self.route(&request).await?.delete_topic(request).await
    }

    async fn create_partitions(
        &self,
        request: Request<pb::CreatePartitionsRequest>,
    ) -> Result<Response<pb::CreatePartitionsResponse>, Status> {
        self.route(&request).await?.create_partitions(request).await
    }

    async fn drain_brokers(
        &self,
        request: Request<pb::DrainBrokersRequest>,
    ) -> Result<Response<pb::DrainBrokersResponse>, Status> {
        self.route(&request).await?.drain_brokers(request).await
    }

    async fn alter_topic_config(
        &self,
        request: Request<pb::AlterTopicConfigRequest>,
    ) -> Result<Response<pb::AlterTopicConfigResponse>, Status> {
        self.route(&request)
            .await?
            .alter_topic_config(request)
            .await
    }

    async fn alter_reassignments(
        &self,
        request: Request<pb::AlterReassignmentsRequest>,
    ) -> Result<Response<pb::AlterReassignmentsResponse>, Status> {
        self.route(&request)
            .await?
            .alter_reassignments(request)
            .await
    }

    async fn list_reassignments(
        &self,
        request: Request<pb::ListReassignmentsRequest>,
    ) -> Result<Response<pb::ListReassignmentsResponse>, Status> {
        self.route(&request)
            .await?
            .list_reassignments(request)
            .await
    }

    async fn elect_leaders(
        &self,
        request: Request<pb::ElectLeadersRequest>,
    ) -> Result<Response<pb::ElectLeadersResponse>, Status> {
        self.route(&request).await?.elect_leaders(request).await
    }

    async fn alter_acls(
        &self,
        request: Request<pb::AlterAclsRequest>,
    ) -> Result<Response<pb::AlterAclsResponse>, Status> {
        self.route(&request).await?.alter_acls(request).await
    }

    async fn alter_client_quotas(
        &self,
        request: Request<pb::AlterClientQuotasRequest>,
    ) -> Result<Response<pb::AlterClientQuotasResponse>, Status> {
        self.route(&request)
            .await?
            .alter_client_quotas(request)
            .await
    }
}

/// Serves the router on `listener` (plaintext and mutual TLS, see
/// [`super::tls`]) until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: ControllerRouter,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let incoming = incoming(listener, Arc::clone(&router.tls));
    tonic::transport::Server::builder()
        .add_service(ControllerServer::new(router))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// The address a listener is bound to, for logs.
pub fn bound(listener: &TcpListener, fallback: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(fallback)
}
