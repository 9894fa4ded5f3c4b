//! Rill's metadata controller core.
//!
//! Pure logic, no Kubernetes types, no sockets, no clocks: callers pass the
//! time in. The same code runs inside the operator (with the Kubernetes
//! store) and standalone (with the file store) for local clusters and tests.
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

mod controller;
mod placement;
mod state;
pub mod store;

pub use controller::{Controller, ControllerConfig, ControllerError, Liveness, Plan};
pub use placement::{PlacementError, place};
pub use state::{
    BrokerId, BrokerRegistration, Change, ClusterMetadata, Endpoints, NO_LEADER, PartitionState,
    TopicState,
};
pub use store::{FileStore, MemoryStore, MetadataStore, StoreError};

#[cfg(test)]
mod sim;
