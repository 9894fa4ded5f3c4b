//! Rill broker.
pub mod log;
