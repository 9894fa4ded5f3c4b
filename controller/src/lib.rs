//! Rill's metadata controller: the pure core, its gRPC service, the
//! standalone `rill-controller` server and the client brokers use.
//!
//! The core ([`Controller`], [`place`], [`balance`], [`store`]) is pure logic, no
//! Kubernetes types, no sockets, no clocks: callers pass the time in. The
//! same code runs inside the operator (with the Kubernetes store) and
//! standalone (with the file store) for local clusters and tests.
//!
//! How a change flows, write-ahead:
//! 1. an operation ([`Controller::register`], [`Controller::tick`],
//!    [`Controller::alter_partition`], ...) computes a [`Plan`] from the
//!    current state without changing it;
//! 2. the caller persists `plan.changes` through a [`MetadataStore`];
//! 3. only then [`Controller::apply`] makes the plan current and returns the
//!    [`Change`]s to broadcast to brokers, stamped with the controller epoch.
//!
//! A plan that fails to persist is dropped, so nobody is ever told about a
//! leader or ISR that is not durable.
//!
//! Replica moves (reassignments, drains before a scale-down and the
//! automatic [`balance`] after a scale-up) are one mechanism (KIP-455):
//! new replicas are added and catch up, the removed ones leave once every
//! target replica is in the ISR; the moves in flight are durable.
//!
//! Around the core:
//! - [`service`]: the gRPC `Controller` service; a single-writer actor owns
//!   the core and the store and runs the flow above for every request and
//!   every lease tick, then broadcasts deltas to `WatchMetadata` streams;
//! - [`server`]: lifecycle ([`start`], [`start_with_store`], [`run`]) with
//!   the HTTP endpoints of [`http`] and the [`metrics`];
//! - [`config`]: the `rill-controller` command line;
//! - [`client`]: [`ControllerClient`], what brokers and tools call.

pub mod balance;
pub mod client;
pub mod config;
mod controller;
mod convert;
mod election;
pub mod http;
pub mod metrics;
mod placement;
pub mod server;
pub mod service;
mod state;
pub mod store;

pub use client::CLUSTER_HEADER;
pub use client::{
    ClientError, ClientOptions, ControllerClient, MetadataUpdate, MetadataView, Retry,
};
pub use controller::{
    Controller, ControllerConfig, ControllerError, IsrChange, IsrChangeKind, Liveness, Plan,
    Reassign,
};
pub use placement::{PlacementError, place};
pub use server::{
    ControllerHandle, EmbeddedController, ServerError, embed, run, start, start_with_store,
};
pub use state::{
    BrokerId, BrokerRegistration, Change, ClusterMetadata, Endpoints, NO_LEADER, PartitionState,
    TopicState, new_topic_id,
};
pub use store::{ConfigOrigin, FileStore, MemoryStore, MetadataStore, StoreError};

#[cfg(test)]
mod sim;
