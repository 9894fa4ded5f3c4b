//! Rill broker.
pub mod log;
pub mod client;
