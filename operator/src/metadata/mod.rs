//! The metadata controller inside the operator.
//!
//! The controller core and its gRPC service live in `rill-controller`; this
//! module hosts them on Kubernetes:
//!
//! * [`store`] — [`KubeStore`], the durable state in a ConfigMap (controller
//!   epoch, broker registrations) and in Topic status (partitions), every
//!   write a resourceVersion compare-and-swap;
//! * [`host`] — [`ControllerHost`], one embedded controller per
//!   StreamCluster, started on demand while this replica holds the leader
//!   Lease, and the reconcilers' hooks built on it;
//! * [`grpc`] — the `Controller` gRPC service brokers connect to (port 9095),
//!   routing each request by its `rill-cluster` header. Every operator
//!   replica listens; only the Lease holder serves, the others answer
//!   UNAVAILABLE `NOT_ACTIVE_CONTROLLER` so brokers reconnect and land on
//!   the holder.

pub mod grpc;
pub mod host;
pub mod store;
pub mod tls;

pub use grpc::{ControllerRouter, serve};
pub use host::{ControllerHost, HostError, cluster_key};
pub use store::KubeStore;
pub use tls::ControllerTls;
