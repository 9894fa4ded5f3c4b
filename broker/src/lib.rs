//! Rill broker.
pub mod cluster;
pub mod config;
pub mod group;
pub mod grpc;
pub mod http;
pub mod kafka;
pub mod log;
pub mod metrics;
pub mod partition;
pub mod replication;
pub mod server;

pub use server::{Broker, BrokerHandle, ServerError, run};
