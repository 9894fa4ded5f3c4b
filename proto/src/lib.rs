//! The contract between Rill's components: the gRPC protocols, generated
//! from `proto/proto/*.proto`, and the topic rules every component applies.
//!
//! - [`client`]: the small data API used by the `rill` CLI and Rust clients
//!   (produce, fetch, list offsets, metadata, topic admin). Record data travels
//!   as Kafka RecordBatch v2 bytes, exactly as the broker stores them.
//! - [`controller`]: brokers and the metadata controller (register,
//!   heartbeat, watch metadata, AlterPartition, controlled shutdown, topic
//!   admin).
//! - [`replication`]: followers fetching from partition leaders.
//! - [`topic`]: topic name rules, partition limits and the table of topic
//!   config keys, shared by the broker, the controller and the operator.
//! - [`broker_config`]: the broker configuration file (`RILL_CONFIG_FILE`)
//!   and the table of its keys, shared by the broker and the operator.
//! - [`acl`]: Kafka's ACL model and the authorization rule (deny wins,
//!   no ACL no access, implied DESCRIBE), for the controller that will own
//!   ACLs and the brokers that will enforce them.
//! - [`quota`]: Kafka's client quotas (user and client-id entities, the
//!   byte-rate and request-percentage keys, the order in which a request
//!   finds its quota), owned by the controller and enforced by brokers.
//! - [`scram`]: SCRAM credentials (salted, hashed), shared by the broker,
//!   which checks logins against them, and the operator, which makes them.
//! - [`versions`]: the protocol versions components announce, and the
//!   version-skew rule.

pub mod acl;
pub mod broker_config;
pub mod quota;
pub mod scram;
pub mod topic;
pub mod versions;

/// `rill.client.v1`: the client data API.
pub mod client {
    tonic::include_proto!("rill.client.v1");
}

/// `rill.controller.v1`: brokers and the metadata controller.
pub mod controller {
    tonic::include_proto!("rill.controller.v1");
}

/// `rill.replication.v1`: followers fetching from leaders.
pub mod replication {
    tonic::include_proto!("rill.replication.v1");
}

/// `rill.share.v1`: share-partition leaders and share-group coordinators.
pub mod share {
    tonic::include_proto!("rill.share.v1");
}

/// `rill.txn.v1`: transaction coordinators and partition leaders.
pub mod txn {
    tonic::include_proto!("rill.txn.v1");
}
