//! Rill's client crate: what a program needs to write and read Rill's
//! record data without compiling the broker.
//!
//! - [`batch`]: the Kafka RecordBatch v2 format (header checks, CRC-32C,
//!   the one encoder), shared with the broker.

pub mod batch;
