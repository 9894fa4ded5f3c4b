//! Rill broker.
pub mod log;
pub mod config;
pub mod grpc;
pub mod http;
pub mod metadata;
pub mod metrics;
pub mod partition;
pub mod server;

pub use server::{Broker, BrokerHandle, ServerError, run};
pub mod client;
