//! Broker configuration: one clap struct, [`BrokerConfig`], read from flags
//! with `RILL_*` environment fallbacks.
//!
//! The environment variable names are a contract with the Kubernetes
//! operator, which renders them into the broker StatefulSet. Flow: `main`
//! parses the struct, [`BrokerConfig::validate`] turns every mistake into a
//! message naming the flag and the variable, and [`crate::server`] reads the
//! resolved values ([`BrokerConfig::resolved_broker_id`],
//! [`BrokerConfig::log_defaults`]). Topic-level settings override the log
//! defaults given here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
pub use rill_process::config::ConfigError;
use rill_process::config::invalid;
pub use rill_process::logging::LogFormat;
use rill_proto::topic::MAX_PARTITIONS_PER_TOPIC;

mod file;
pub mod listener;
pub mod reload;

pub use file::{ConfigSources, LoadError};

use crate::group::GroupSettings;
use crate::group::state::Limits;
pub use crate::kafka::TopicAdminPolicy;
use crate::log::LogConfig;

/// Largest Kafka producer id prefix: producer ids are
/// `broker id << 51 | counter`, so broker ids must fit in 12 bits for
/// Kafka clients' idempotent producers (see `kafka::producer_id`).
pub const MAX_BROKER_ID: i32 = 4095;

/// Default durability policy of topics that do not set `flush`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlushDefault {
    /// Acknowledge once appended; fsync every `--log-flush-interval-ms`.
    Replicated,
    /// fsync (group commit) before acknowledging.
    Fsync,
}

/// Configuration of `rill-broker`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rill-broker",
    version,
    about = "Rill broker: a Kafka-compatible commit log"
)]
pub struct BrokerConfig {
    /// Broker id, unique in the cluster.
    #[arg(long, env = "RILL_BROKER_ID", default_value_t = 0)]
    pub broker_id: i32,

    /// Pod name (set by Kubernetes); used with --broker-id-from-pod-name.
    #[arg(long, env = "RILL_POD_NAME")]
    pub pod_name: Option<String>,

    /// Take the broker id from the StatefulSet ordinal at the end of the pod name (`rill-2` -> 2).
    #[arg(long, env = "RILL_BROKER_ID_FROM_POD_NAME", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub broker_id_from_pod_name: bool,

    /// Directory holding topic metadata and partition logs.
    #[arg(long, env = "RILL_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Address of the gRPC client API (port 0 picks a free port).
    #[arg(long, env = "RILL_LISTEN_ADDR", default_value = "0.0.0.0:9093")]
    pub listen_addr: SocketAddr,

    /// Address of the Kafka protocol listener (port 0 picks a free port).
    #[arg(long, env = "RILL_KAFKA_ADDR", default_value = "0.0.0.0:9092")]
    pub kafka_addr: SocketAddr,

    /// Port Kafka clients should use to reach this broker (advertised in
    /// Metadata with --advertised-host); default: the bound Kafka port.
    #[arg(long, env = "RILL_KAFKA_ADVERTISED_PORT")]
    pub kafka_advertised_port: Option<u16>,

    /// Largest Kafka request frame accepted, in bytes (Kafka's
    /// `socket.request.max.bytes`); a larger frame closes its connection.
    #[arg(long, env = "RILL_KAFKA_MAX_REQUEST_BYTES", default_value_t = 100 << 20)]
    pub kafka_max_request_bytes: usize,

    /// Kafka request bytes the broker holds at once, over every
    /// connection, read and not yet answered (Kafka's
    /// `queued.max.request.bytes`). When spent, connections read no
    /// further requests until earlier ones are answered.
    #[arg(long, env = "RILL_KAFKA_QUEUED_REQUEST_BYTES", default_value_t = 256 << 20)]
    pub kafka_queued_request_bytes: usize,

    /// Whether Kafka clients may create and grow topics (CreateTopics,
    /// CreatePartitions): allow or deny (POLICY_VIOLATION).
    #[arg(long, env = "RILL_KAFKA_CREATE_TOPICS", value_enum, default_value_t = TopicAdminPolicy::Allow)]
    pub kafka_create_topics: TopicAdminPolicy,

    /// Whether Kafka clients may delete topics (DeleteTopics): allow or deny
    /// (POLICY_VIOLATION).
    #[arg(long, env = "RILL_KAFKA_DELETE_TOPICS", value_enum, default_value_t = TopicAdminPolicy::Allow)]
    pub kafka_delete_topics: TopicAdminPolicy,

    /// Cluster id reported to Kafka clients (Metadata, DescribeCluster).
    #[arg(long, env = "RILL_CLUSTER_NAME", default_value = "rill")]
    pub cluster_name: String,

    /// Address of the HTTP endpoints /metrics, /healthz and /readyz.
    #[arg(long, env = "RILL_HTTP_ADDR", default_value = "0.0.0.0:9644")]
    pub http_addr: SocketAddr,

    /// Host name clients should use to reach this broker (advertised in Metadata);
    /// default: the listen address's IP, or the machine's host name when listening on all interfaces.
    #[arg(long, env = "RILL_ADVERTISED_HOST")]
    pub advertised_host: Option<String>,

    /// Rack (or zone) of this broker, advertised in Metadata.
    #[arg(long, env = "RILL_RACK")]
    pub rack: Option<String>,

    /// Metadata controller address(es), comma-separated host:port. Set to run
    /// as a member of a replicated cluster; unset, the broker runs alone.
    #[arg(long, env = "RILL_CONTROLLER_ADDR", value_delimiter = ',')]
    pub controller_addr: Vec<String>,

    /// Cluster name sent to the controller with every request (`namespace/name`;
    /// set by the operator, which hosts one controller per StreamCluster).
    #[arg(long, env = "RILL_CLUSTER")]
    pub cluster: Option<String>,

    /// Address of the replication gRPC listener (followers fetch from leaders here).
    #[arg(long, env = "RILL_REPLICATION_ADDR", default_value = "0.0.0.0:9094")]
    pub replication_addr: SocketAddr,

    /// A follower not caught up with its leader for this long (ms) leaves the ISR
    /// (Kafka `replica.lag.time.max.ms`).
    #[arg(long, env = "RILL_REPLICA_LAG_TIME_MAX_MS", default_value_t = 10_000)]
    pub replica_lag_time_max_ms: u64,

    /// Bytes per second that replicas being added by a reassignment (or a drain
    /// before a scale-down) may fetch in total on this broker while they catch
    /// up, 0 for no limit (Kafka `follower.replication.throttled.rate`). In-sync
    /// replicas are never throttled.
    #[arg(
        long,
        env = "RILL_REASSIGNMENT_THROTTLE_BYTES_PER_SEC",
        default_value_t = 50 << 20
    )]
    pub reassignment_throttle_bytes_per_sec: u64,

    /// Default segment size in bytes before a new segment is rolled (topic `segment.bytes`).
    #[arg(long, env = "RILL_LOG_SEGMENT_BYTES", default_value_t = 1 << 30)]
    pub log_segment_bytes: u64,

    /// Default time in ms records are kept, -1 forever (topic `retention.ms`).
    #[arg(long, env = "RILL_LOG_RETENTION_MS", default_value_t = 7 * 24 * 3600 * 1000, allow_hyphen_values = true)]
    pub log_retention_ms: i64,

    /// Default partition size limit in bytes, -1 unlimited (topic `retention.bytes`).
    #[arg(long, env = "RILL_LOG_RETENTION_BYTES", default_value_t = -1, allow_hyphen_values = true)]
    pub log_retention_bytes: i64,

    /// Default durability policy (topic `flush`): replicated or fsync.
    #[arg(long, env = "RILL_LOG_FLUSH", value_enum, default_value_t = FlushDefault::Replicated)]
    pub log_flush: FlushDefault,

    /// Default fsync interval in ms for flush=replicated (topic `flush.ms`).
    #[arg(long, env = "RILL_LOG_FLUSH_INTERVAL_MS", default_value_t = 1000)]
    pub log_flush_interval_ms: u64,

    /// How often retention deletes expired or excess segments, in ms.
    #[arg(
        long,
        env = "RILL_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 30_000
    )]
    pub retention_check_interval_ms: u64,

    /// How often compacted topics are cleaned, in ms.
    #[arg(long, env = "RILL_COMPACTION_INTERVAL_MS", default_value_t = 60_000)]
    pub compaction_interval_ms: u64,

    /// Partitions of a topic created automatically by a produce to an unknown topic
    /// (gRPC or Kafka) or by a Kafka Metadata request that allows auto-creation;
    /// the same as `--auto-create-topics true --num-partitions N`.
    #[arg(long, env = "RILL_AUTO_CREATE_TOPIC_PARTITIONS")]
    pub auto_create_topic_partitions: Option<i32>,

    /// Whether a produce or a Kafka Metadata request may create an unknown topic,
    /// with `--num-partitions` partitions (Kafka `auto.create.topics.enable`).
    #[arg(long, env = "RILL_AUTO_CREATE_TOPICS", default_value_t = false, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,

    /// Partitions of topics created without a count: auto-created topics and
    /// CreateTopics with -1 (Kafka `num.partitions`).
    #[arg(long, env = "RILL_NUM_PARTITIONS", default_value_t = 1)]
    pub num_partitions: i32,

    /// Replication factor of topics created without one: auto-created topics and
    /// CreateTopics with -1 (Kafka `default.replication.factor`).
    #[arg(long, env = "RILL_DEFAULT_REPLICATION_FACTOR", default_value_t = 1)]
    pub default_replication_factor: i32,

    /// Default `min.insync.replicas` of topics that do not set it.
    #[arg(long, env = "RILL_LOG_MIN_INSYNC_REPLICAS", default_value_t = 1)]
    pub log_min_insync_replicas: u32,

    /// Default largest record batch in bytes (topic `max.message.bytes`, Kafka
    /// `message.max.bytes`).
    #[arg(long, env = "RILL_MESSAGE_MAX_BYTES", default_value_t = 1_048_588)]
    pub message_max_bytes: u64,

    /// PEM certificate chain of the Kafka listener (the broker's certificate
    /// first). With `--kafka-tls-key-file` the listener speaks TLS 1.2 and
    /// 1.3 only; both files are read again when they change.
    #[arg(
        long,
        env = "RILL_KAFKA_TLS_CERT_FILE",
        requires = "kafka_tls_key_file"
    )]
    pub kafka_tls_cert_file: Option<PathBuf>,

    /// PEM private key of `--kafka-tls-cert-file`.
    #[arg(
        long,
        env = "RILL_KAFKA_TLS_KEY_FILE",
        requires = "kafka_tls_cert_file"
    )]
    pub kafka_tls_key_file: Option<PathBuf>,

    /// PEM CA certificates that Kafka clients' certificates must chain to
    /// (mTLS). Set, the listener asks clients for a certificate and a
    /// verified one names the principal: `User:<CN of its subject>`.
    #[arg(
        long,
        env = "RILL_KAFKA_TLS_CLIENT_CA_FILE",
        requires = "kafka_tls_cert_file"
    )]
    pub kafka_tls_client_ca_file: Option<PathBuf>,

    /// With a client CA: `required` refuses clients without a certificate,
    /// `requested` lets them in without one (Kafka `ssl.client.auth`).
    #[arg(long, env = "RILL_KAFKA_TLS_CLIENT_AUTH", value_enum, default_value_t = crate::security::ClientAuth::Required)]
    pub kafka_tls_client_auth: crate::security::ClientAuth,

    /// Named Kafka listeners, each `name=NAME,port=PORT,tls=true|false,
    /// auth=none|scram|mtls` (repeat the flag; in the environment separate
    /// them with `;`). Given, they replace the single listener of
    /// `--kafka-addr` (whose IP they bind) and its SASL and client-CA flags:
    /// TLS listeners use `--kafka-tls-cert-file`, `auth=scram` offers
    /// SCRAM-SHA-512 and SCRAM-SHA-256 against `--sasl-credentials-file`,
    /// `auth=mtls` asks for a certificate from `--kafka-tls-client-ca-file`.
    /// Clients are told the addresses of the listener they connected to.
    #[arg(
        long = "kafka-listener",
        env = "RILL_KAFKA_LISTENERS",
        value_delimiter = ';'
    )]
    pub kafka_listeners: Vec<listener::KafkaListener>,

    /// SASL mechanisms the Kafka listener requires, comma-separated:
    /// SCRAM-SHA-512, SCRAM-SHA-256, PLAIN (Kafka `sasl.enabled.mechanisms`).
    /// Empty: no SASL. Needs `--sasl-credentials-file`.
    #[arg(long, env = "RILL_KAFKA_SASL_MECHANISMS", value_delimiter = ',')]
    pub kafka_sasl_mechanisms: Vec<crate::security::SaslMechanism>,

    /// SCRAM credentials (salted and hashed) that SASL logins are checked
    /// against, one `user mechanism credential` line each (docs/security.md);
    /// read again when it changes.
    #[arg(long, env = "RILL_SASL_CREDENTIALS_FILE")]
    pub sasl_credentials_file: Option<PathBuf>,

    /// How long a SASL authentication lasts before the client must
    /// re-authenticate on its connection (Kafka `connections.max.reauth.ms`,
    /// KIP-368); 0: for the life of the connection.
    #[arg(long, env = "RILL_CONNECTIONS_MAX_REAUTH_MS", default_value_t = 0)]
    pub connections_max_reauth_ms: u64,

    /// Authorize every Kafka request with Kafka's ACLs (CreateAcls,
    /// DeleteAcls; kept by the controller in a cluster): a request no ACL
    /// allows is denied. Off, every request is allowed, as on a Kafka
    /// broker without an authorizer.
    #[arg(long, env = "RILL_AUTHORIZATION", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub authorization: bool,

    /// Windows over which client quota rates are measured (Kafka
    /// `quota.window.num`); the rate spans at least all but one of them.
    #[arg(long, env = "RILL_QUOTA_WINDOW_NUM", default_value_t = 11)]
    pub quota_window_num: u32,

    /// Length of one client quota window in seconds (Kafka
    /// `quota.window.size.seconds`).
    #[arg(long, env = "RILL_QUOTA_WINDOW_SIZE_SECONDS", default_value_t = 1)]
    pub quota_window_size_seconds: u32,

    /// Principals allowed everything with authorization on,
    /// semicolon-separated as Kafka's `super.users`: `User:admin;User:ops`.
    #[arg(long, env = "RILL_SUPER_USERS", value_delimiter = ';')]
    pub super_users: Vec<String>,

    /// Mutual TLS on the replication and gRPC client API ports and towards
    /// the controller (docs/security.md).
    #[command(flatten)]
    pub internal_tls: rill_process::tls::InternalTlsArgs,

    /// The name the controller's certificate must carry, when it is not the
    /// host of `--controller-addr` (Rill's operator serves each cluster's
    /// controller under `controller.<cluster>.<namespace>.rill.internal`).
    #[arg(
        long,
        env = "RILL_CONTROLLER_TLS_SERVER_NAME",
        requires = "internal_tls_cert_file"
    )]
    pub controller_tls_server_name: Option<String>,

    /// Kafka-style properties file read at start (`key=value` lines; the keys
    /// are listed in docs/broker.md). A flag or environment variable given as
    /// well wins over the file.
    #[arg(long, env = "RILL_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,

    /// Where each setting came from (filled by [`BrokerConfig::load_from`]).
    #[arg(skip)]
    pub sources: ConfigSources,

    /// The arguments [`BrokerConfig::load_from`] read, to load the
    /// configuration again when its file changes ([`reload`]); empty for a
    /// configuration built otherwise, which is never reloaded.
    #[arg(skip)]
    pub load_args: Vec<std::ffi::OsString>,

    /// Largest gRPC request accepted, in bytes; larger ones are refused with a clear status.
    #[arg(long, env = "RILL_MAX_REQUEST_BYTES", default_value_t = 64 << 20)]
    pub max_request_bytes: usize,

    /// How long shutdown waits for in-flight requests before closing connections, in ms.
    #[arg(long, env = "RILL_SHUTDOWN_TIMEOUT_MS", default_value_t = 10_000)]
    pub shutdown_timeout_ms: u64,

    /// Partitions of the `__consumer_offsets` topic, created on first use; group
    /// `g` lives in partition abs(hash(g)) % this. Fixed once the topic exists.
    #[arg(long, env = "RILL_OFFSETS_TOPIC_PARTITIONS", default_value_t = 12)]
    pub offsets_topic_partitions: i32,

    /// Replication factor of `__consumer_offsets` (capped at the number of live brokers).
    #[arg(
        long,
        env = "RILL_OFFSETS_TOPIC_REPLICATION_FACTOR",
        default_value_t = 3
    )]
    pub offsets_topic_replication_factor: i32,

    /// Partitions of the `__transaction_state` topic, created on first use;
    /// transactional id `t` lives in partition abs(hash(t)) % this.
    #[arg(long, env = "RILL_TRANSACTION_STATE_PARTITIONS", default_value_t = 12)]
    pub transaction_state_partitions: i32,

    /// Replication factor of `__transaction_state` (capped at the number of
    /// live brokers).
    #[arg(
        long,
        env = "RILL_TRANSACTION_STATE_REPLICATION_FACTOR",
        default_value_t = 3
    )]
    pub transaction_state_replication_factor: i32,

    /// Largest `transaction.timeout.ms` a transactional producer may ask for.
    #[arg(
        long,
        env = "RILL_TRANSACTION_MAX_TIMEOUT_MS",
        default_value_t = 900_000
    )]
    pub transaction_max_timeout_ms: i32,

    /// How often the transaction coordinator looks for transactions open
    /// longer than their timeout, and aborts them.
    #[arg(
        long,
        env = "RILL_TRANSACTION_ABORT_CHECK_INTERVAL_MS",
        default_value_t = 1_000
    )]
    pub transaction_abort_check_interval_ms: u64,

    /// The `transaction.version` feature level advertised to clients: 1
    /// (every client adds partitions with AddPartitionsToTxn), or 2
    /// (KIP-890 part 2: Java clients 4.x add partitions through Produce and
    /// every transaction ends with an epoch bump), as Kafka 4.x finalizes.
    /// Level 1 is for clusters whose clients must not use version 2.
    #[arg(long, env = "RILL_TRANSACTION_VERSION", default_value_t = 2)]
    pub transaction_version: i16,

    /// How long the first rebalance of an empty group waits for more members, in ms
    /// (Kafka's `group.initial.rebalance.delay.ms`).
    #[arg(
        long,
        env = "RILL_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 3000
    )]
    pub group_initial_rebalance_delay_ms: u64,

    /// Smallest session timeout a group member may ask for, in ms.
    #[arg(
        long,
        env = "RILL_GROUP_MIN_SESSION_TIMEOUT_MS",
        default_value_t = 6000
    )]
    pub group_min_session_timeout_ms: i32,

    /// Largest session timeout a group member may ask for, in ms.
    #[arg(
        long,
        env = "RILL_GROUP_MAX_SESSION_TIMEOUT_MS",
        default_value_t = 1_800_000
    )]
    pub group_max_session_timeout_ms: i32,

    /// Incremental fetch sessions (KIP-227) kept at most (Kafka's
    /// `max.incremental.fetch.session.cache.slots`); 0 turns them off.
    #[arg(
        long,
        env = "RILL_MAX_INCREMENTAL_FETCH_SESSION_CACHE_SLOTS",
        default_value_t = 1000
    )]
    pub max_incremental_fetch_session_cache_slots: usize,

    /// Consumer-protocol (KIP-848) members that do not heartbeat this long
    /// are removed, in ms (Kafka's `group.consumer.session.timeout.ms`).
    #[arg(
        long,
        env = "RILL_GROUP_CONSUMER_SESSION_TIMEOUT_MS",
        default_value_t = 45_000,
        value_parser = clap::value_parser!(i32).range(1000..)
    )]
    pub group_consumer_session_timeout_ms: i32,

    /// Heartbeat interval of consumer-protocol members of a stable group,
    /// in ms (Kafka's `group.consumer.heartbeat.interval.ms`, 5000 there).
    /// Shorter means a member joining gets its partitions sooner, at one
    /// small request per member per interval; see
    /// `--group-consumer-heartbeats-per-second`.
    #[arg(
        long,
        env = "RILL_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS",
        default_value_t = 250,
        value_parser = clap::value_parser!(i32).range(50..)
    )]
    pub group_consumer_heartbeat_interval_ms: i32,

    /// Consumer-protocol heartbeats per second a broker aims to stay under:
    /// when its members would send more at the interval above, their
    /// interval grows (members x 1000 / this, in ms).
    #[arg(
        long,
        env = "RILL_GROUP_CONSUMER_HEARTBEATS_PER_SECOND",
        default_value_t = 5000,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub group_consumer_heartbeats_per_second: u32,

    /// How long committed offsets are kept once their group is empty, in ms
    /// (Kafka's `offsets.retention.minutes`).
    #[arg(long, env = "RILL_OFFSETS_RETENTION_MS", default_value_t = 7 * 24 * 3600 * 1000)]
    pub offsets_retention_ms: i64,

    /// How long an offset commit or group change waits for the offsets topic's
    /// in-sync replicas, in ms.
    #[arg(long, env = "RILL_OFFSETS_COMMIT_TIMEOUT_MS", default_value_t = 5000)]
    pub offsets_commit_timeout_ms: u64,

    /// Log line format: text or json.
    #[arg(long, env = "RILL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in tracing's EnvFilter syntax, e.g. `info` or `info,rill_broker=debug`.
    #[arg(long = "log", env = "RILL_LOG", default_value = "info")]
    pub log_filter: String,
}

/// The StatefulSet ordinal at the end of a pod name: `rill-broker-2` -> 2.
pub fn ordinal_from_pod_name(pod_name: &str) -> Option<i32> {
    let (prefix, ordinal) = pod_name.rsplit_once('-')?;
    if prefix.is_empty() || ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Reject leading zeros: StatefulSets never produce them, so it is a typo.
    if ordinal.len() > 1 && ordinal.starts_with('0') {
        return None;
    }
    ordinal.parse().ok()
}

impl BrokerConfig {
    /// A configuration for tests and local tools: loopback addresses on
    /// port 0 (the OS picks free ports), everything else at defaults, no
    /// environment read.
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Self::parse_from_env_free();
        config.data_dir = data_dir.into();
        config.listen_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.http_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.replication_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.kafka_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config
    }

    /// Defaults as declared above, ignoring `RILL_*` variables of the
    /// calling process.
    fn parse_from_env_free() -> Self {
        Self {
            broker_id: 0,
            pod_name: None,
            broker_id_from_pod_name: false,
            data_dir: PathBuf::from("./data"),
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 9093)),
            http_addr: SocketAddr::from(([0, 0, 0, 0], 9644)),
            kafka_addr: SocketAddr::from(([0, 0, 0, 0], 9092)),
            kafka_advertised_port: None,
            kafka_max_request_bytes: 100 << 20,
            kafka_queued_request_bytes: 256 << 20,
            kafka_create_topics: TopicAdminPolicy::Allow,
            kafka_delete_topics: TopicAdminPolicy::Allow,
            cluster_name: "rill".to_owned(),
            advertised_host: None,
            rack: None,
            controller_addr: Vec::new(),
            cluster: None,
            replication_addr: SocketAddr::from(([0, 0, 0, 0], 9094)),
            replica_lag_time_max_ms: 10_000,
            reassignment_throttle_bytes_per_sec: 50 << 20,
            log_segment_bytes: 1 << 30,
            log_retention_ms: 7 * 24 * 3600 * 1000,
            log_retention_bytes: -1,
            log_flush: FlushDefault::Replicated,
            log_flush_interval_ms: 1000,
            retention_check_interval_ms: 30_000,
            compaction_interval_ms: 60_000,
            auto_create_topic_partitions: None,
            auto_create_topics: false,
            num_partitions: 1,
            default_replication_factor: 1,
            log_min_insync_replicas: 1,
            message_max_bytes: 1_048_588,
            kafka_tls_cert_file: None,
            kafka_tls_key_file: None,
            kafka_tls_client_ca_file: None,
            kafka_tls_client_auth: crate::security::ClientAuth::Required,
            kafka_listeners: Vec::new(),
            kafka_sasl_mechanisms: Vec::new(),
            sasl_credentials_file: None,
            connections_max_reauth_ms: 0,
            authorization: false,
            super_users: Vec::new(),
            internal_tls: Default::default(),
            controller_tls_server_name: None,
            quota_window_num: 11,
            quota_window_size_seconds: 1,
            config_file: None,
            sources: ConfigSources::default(),
            load_args: Vec::new(),
            max_request_bytes: 64 << 20,
            shutdown_timeout_ms: 10_000,
            offsets_topic_partitions: 12,
            offsets_topic_replication_factor: 3,
            transaction_state_partitions: 12,
            transaction_state_replication_factor: 3,
            transaction_max_timeout_ms: 900_000,
            transaction_abort_check_interval_ms: 1_000,
            transaction_version: 2,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            max_incremental_fetch_session_cache_slots: 1000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 250,
            group_consumer_heartbeats_per_second: 5000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_commit_timeout_ms: 5000,
            log_format: LogFormat::Text,
            log_filter: "info".to_owned(),
        }
    }

    /// The Kafka listener's TLS and SASL settings.
    pub fn kafka_security(&self) -> crate::security::SecuritySettings {
        let tls = match (&self.kafka_tls_cert_file, &self.kafka_tls_key_file) {
            (Some(cert), Some(key)) => Some(crate::security::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.kafka_tls_client_ca_file.clone(),
                client_auth: self.kafka_tls_client_auth,
            }),
            _ => None,
        };
        crate::security::SecuritySettings {
            tls,
            sasl_mechanisms: self.kafka_sasl_mechanisms.clone(),
            credentials_file: self.sasl_credentials_file.clone(),
            session_lifetime: (self.connections_max_reauth_ms > 0)
                .then(|| Duration::from_millis(self.connections_max_reauth_ms)),
        }
    }

    /// Checks everything that can be checked before touching the disk or
    /// the network.
    /// The TLS and SASL settings of a named listener.
    pub fn listener_security(
        &self,
        listener: &listener::KafkaListener,
    ) -> crate::security::SecuritySettings {
        use crate::security::SaslMechanism;
        use listener::ListenerAuth;
        let tls = match (
            listener.tls,
            &self.kafka_tls_cert_file,
            &self.kafka_tls_key_file,
        ) {
            (true, Some(cert), Some(key)) => Some(crate::security::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: (listener.auth == ListenerAuth::Mtls)
                    .then(|| self.kafka_tls_client_ca_file.clone())
                    .flatten(),
                client_auth: crate::security::ClientAuth::Required,
            }),
            _ => None,
        };
        let sasl_mechanisms = match listener.auth {
            ListenerAuth::Scram => vec![
                SaslMechanism::Scram(rill_proto::scram::Mechanism::Sha512),
                SaslMechanism::Scram(rill_proto::scram::Mechanism::Sha256),
            ],
            _ => Vec::new(),
        };
        crate::security::SecuritySettings {
            tls,
            sasl_mechanisms,
            credentials_file: self.sasl_credentials_file.clone(),
            session_lifetime: (self.connections_max_reauth_ms > 0)
                .then(|| Duration::from_millis(self.connections_max_reauth_ms)),
        }
    }

    fn validate_listeners(&self) -> Result<(), ConfigError> {
        use listener::ListenerAuth;
        const FLAG: &str = "--kafka-listener";
        const ENV: &str = "RILL_KAFKA_LISTENERS";
        listener::check_all(&self.kafka_listeners).map_err(|e| invalid(FLAG, ENV, e))?;
        for l in &self.kafka_listeners {
            let needs = |what: &str| invalid(FLAG, ENV, format!("listener {}: {what}", l.name));
            if l.tls && self.kafka_tls_cert_file.is_none() {
                return Err(needs(
                    "tls=true needs --kafka-tls-cert-file and --kafka-tls-key-file",
                ));
            }
            if l.auth == ListenerAuth::Scram && self.sasl_credentials_file.is_none() {
                return Err(needs("auth=scram needs --sasl-credentials-file"));
            }
            if l.auth == ListenerAuth::Mtls && self.kafka_tls_client_ca_file.is_none() {
                return Err(needs("auth=mtls needs --kafka-tls-client-ca-file"));
            }
            if [
                self.listen_addr.port(),
                self.http_addr.port(),
                self.replication_addr.port(),
            ]
            .contains(&l.port)
            {
                return Err(needs(&format!(
                    "port {} is also the gRPC, HTTP or replication port",
                    l.port
                )));
            }
        }
        if !self.kafka_listeners.is_empty() && !self.kafka_sasl_mechanisms.is_empty() {
            return Err(invalid(
                "--kafka-sasl-mechanisms",
                "RILL_KAFKA_SASL_MECHANISMS",
                "applies to the single --kafka-addr listener; with --kafka-listener say auth=scram per listener",
            ));
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_listeners()?;
        self.resolved_broker_id()?;
        self.log_defaults()?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("--data-dir", "RILL_DATA_DIR", "must not be empty"));
        }
        if self.kafka_addr.port() != 0
            && (self.kafka_addr == self.listen_addr || self.kafka_addr == self.http_addr)
        {
            return Err(invalid(
                "--kafka-addr",
                "RILL_KAFKA_ADDR",
                format!(
                    "{} is also the gRPC or HTTP address; use another port",
                    self.kafka_addr
                ),
            ));
        }
        if self.kafka_max_request_bytes < 1024 || self.kafka_max_request_bytes > 1 << 30 {
            return Err(invalid(
                "--kafka-max-request-bytes",
                "RILL_KAFKA_MAX_REQUEST_BYTES",
                format!(
                    "{} is not between 1024 and 1073741824",
                    self.kafka_max_request_bytes
                ),
            ));
        }
        if self.kafka_queued_request_bytes < 1 << 20
            || self.kafka_queued_request_bytes > u32::MAX as usize
        {
            return Err(invalid(
                "--kafka-queued-request-bytes",
                "RILL_KAFKA_QUEUED_REQUEST_BYTES",
                format!(
                    "{} is not between 1048576 and 4294967295",
                    self.kafka_queued_request_bytes
                ),
            ));
        }
        if self.quota_window_num == 0 {
            return Err(invalid(
                "--quota-window-num",
                "RILL_QUOTA_WINDOW_NUM",
                "must be at least 1",
            ));
        }
        if self.quota_window_size_seconds == 0 {
            return Err(invalid(
                "--quota-window-size-seconds",
                "RILL_QUOTA_WINDOW_SIZE_SECONDS",
                "must be at least 1",
            ));
        }
        if let Some(bad) = self
            .super_users
            .iter()
            .find(|p| p.strip_prefix("User:").is_none_or(str::is_empty))
        {
            return Err(invalid(
                "--super-users",
                "RILL_SUPER_USERS",
                format!("`{bad}` is not a principal of the form User:<name>"),
            ));
        }
        if !self.kafka_sasl_mechanisms.is_empty() && self.sasl_credentials_file.is_none() {
            return Err(invalid(
                "--sasl-credentials-file",
                "RILL_SASL_CREDENTIALS_FILE",
                "is needed when --kafka-sasl-mechanisms offers SASL: logins are checked against it",
            ));
        }
        if self.kafka_advertised_port == Some(0) {
            return Err(invalid(
                "--kafka-advertised-port",
                "RILL_KAFKA_ADVERTISED_PORT",
                "0 is not a port clients can reach; leave it unset to advertise the bound port",
            ));
        }
        if self.cluster_name.trim().is_empty() {
            return Err(invalid(
                "--cluster-name",
                "RILL_CLUSTER_NAME",
                "must not be empty",
            ));
        }
        if self.listen_addr.port() != 0 && self.listen_addr == self.http_addr {
            return Err(invalid(
                "--http-addr",
                "RILL_HTTP_ADDR",
                format!(
                    "{} is also the gRPC listen address (--listen-addr); use another port",
                    self.http_addr
                ),
            ));
        }
        if let Some(host) = &self.advertised_host
            && (host.trim().is_empty() || host.chars().any(char::is_whitespace))
        {
            return Err(invalid(
                "--advertised-host",
                "RILL_ADVERTISED_HOST",
                format!("{host:?} is not a host name"),
            ));
        }
        if let Some(n) = self.auto_create_topic_partitions
            && !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&n)
        {
            return Err(invalid(
                "--auto-create-topic-partitions",
                "RILL_AUTO_CREATE_TOPIC_PARTITIONS",
                format!(
                    "{n} is not between 1 and {MAX_PARTITIONS_PER_TOPIC}; leave it unset to disable auto-creation"
                ),
            ));
        }
        if self.max_request_bytes < 1024 || self.max_request_bytes > 1 << 30 {
            return Err(invalid(
                "--max-request-bytes",
                "RILL_MAX_REQUEST_BYTES",
                format!(
                    "{} is not between 1024 and 1073741824",
                    self.max_request_bytes
                ),
            ));
        }
        for (value, flag, env) in [
            (
                self.retention_check_interval_ms,
                "--retention-check-interval-ms",
                "RILL_RETENTION_CHECK_INTERVAL_MS",
            ),
            (
                self.compaction_interval_ms,
                "--compaction-interval-ms",
                "RILL_COMPACTION_INTERVAL_MS",
            ),
        ] {
            if value == 0 {
                return Err(invalid(flag, env, "must be at least 1 ms"));
            }
        }
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&self.transaction_state_partitions) {
            return Err(invalid(
                "--transaction-state-partitions",
                "RILL_TRANSACTION_STATE_PARTITIONS",
                format!(
                    "{} is not between 1 and {MAX_PARTITIONS_PER_TOPIC}",
                    self.transaction_state_partitions
                ),
            ));
        }
        if !(1..=16).contains(&self.transaction_state_replication_factor) {
            return Err(invalid(
                "--transaction-state-replication-factor",
                "RILL_TRANSACTION_STATE_REPLICATION_FACTOR",
                format!(
                    "{} is not between 1 and 16",
                    self.transaction_state_replication_factor
                ),
            ));
        }
        if !(1..=2).contains(&self.transaction_version) {
            return Err(invalid(
                "--transaction-version",
                "RILL_TRANSACTION_VERSION",
                format!("{} is not 1 or 2", self.transaction_version),
            ));
        }
        if self.transaction_max_timeout_ms < 1 {
            return Err(invalid(
                "--transaction-max-timeout-ms",
                "RILL_TRANSACTION_MAX_TIMEOUT_MS",
                "must be at least 1 ms",
            ));
        }
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&self.offsets_topic_partitions) {
            return Err(invalid(
                "--offsets-topic-partitions",
                "RILL_OFFSETS_TOPIC_PARTITIONS",
                format!(
                    "{} is not between 1 and {MAX_PARTITIONS_PER_TOPIC}",
                    self.offsets_topic_partitions
                ),
            ));
        }
        if !(1..=16).contains(&self.offsets_topic_replication_factor) {
            return Err(invalid(
                "--offsets-topic-replication-factor",
                "RILL_OFFSETS_TOPIC_REPLICATION_FACTOR",
                format!(
                    "{} is not between 1 and 16",
                    self.offsets_topic_replication_factor
                ),
            ));
        }
        if self.group_min_session_timeout_ms < 1
            || self.group_min_session_timeout_ms > self.group_max_session_timeout_ms
        {
            return Err(invalid(
                "--group-min-session-timeout-ms",
                "RILL_GROUP_MIN_SESSION_TIMEOUT_MS",
                format!(
                    "{} must be at least 1 and at most --group-max-session-timeout-ms ({})",
                    self.group_min_session_timeout_ms, self.group_max_session_timeout_ms
                ),
            ));
        }
        if self.offsets_retention_ms < 1 {
            return Err(invalid(
                "--offsets-retention-ms",
                "RILL_OFFSETS_RETENTION_MS",
                "must be at least 1 ms",
            ));
        }
        if self.offsets_commit_timeout_ms == 0 {
            return Err(invalid(
                "--offsets-commit-timeout-ms",
                "RILL_OFFSETS_COMMIT_TIMEOUT_MS",
                "must be at least 1 ms",
            ));
        }
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&self.num_partitions) {
            return Err(invalid(
                "--num-partitions",
                "RILL_NUM_PARTITIONS",
                format!("must be between 1 and {MAX_PARTITIONS_PER_TOPIC}"),
            ));
        }
        if self.default_replication_factor < 1 {
            return Err(invalid(
                "--default-replication-factor",
                "RILL_DEFAULT_REPLICATION_FACTOR",
                "must be at least 1",
            ));
        }
        rill_process::logging::check_filter(&self.log_filter)
            .map_err(|reason| invalid("--log", "RILL_LOG", reason))?;
        Ok(())
    }

    /// Where each setting of the configuration file's table came from, by
    /// its Kafka name (for DescribeConfigs).
    pub fn kafka_config_sources(&self) -> BTreeMap<String, rill_proto::broker_config::Source> {
        rill_proto::broker_config::BROKER_KEYS
            .iter()
            .filter_map(|key| {
                let flag = rill_proto::broker_config::flag_of(key.name)?;
                Some((key.name.to_owned(), self.sources.of_flag(flag)))
            })
            .collect()
    }

    /// Partitions of auto-created topics, `None` when auto-creation is off.
    pub fn auto_create_partitions(&self) -> Option<i32> {
        self.auto_create_topic_partitions
            .or(self.auto_create_topics.then_some(self.num_partitions))
    }

    /// The broker id: from the pod name's ordinal when asked to, else
    /// `--broker-id`.
    pub fn resolved_broker_id(&self) -> Result<i32, ConfigError> {
        if self.broker_id_from_pod_name {
            let pod = self.pod_name.as_deref().unwrap_or_default();
            if pod.is_empty() {
                return Err(invalid(
                    "--broker-id-from-pod-name",
                    "RILL_BROKER_ID_FROM_POD_NAME",
                    "is true but the pod name (--pod-name / RILL_POD_NAME) is not set",
                ));
            }
            let id = ordinal_from_pod_name(pod).ok_or_else(|| {
                invalid(
                    "--pod-name",
                    "RILL_POD_NAME",
                    format!("{pod:?} does not end in a StatefulSet ordinal like `rill-2`"),
                )
            })?;
            if id > MAX_BROKER_ID {
                return Err(invalid(
                    "--pod-name",
                    "RILL_POD_NAME",
                    format!("ordinal {id} is larger than {MAX_BROKER_ID}, the largest broker id"),
                ));
            }
            return Ok(id);
        }
        if self.broker_id < 0 {
            return Err(invalid(
                "--broker-id",
                "RILL_BROKER_ID",
                format!("{} is negative; broker ids start at 0", self.broker_id),
            ));
        }
        if self.broker_id > MAX_BROKER_ID {
            return Err(invalid(
                "--broker-id",
                "RILL_BROKER_ID",
                format!(
                    "{} is larger than {MAX_BROKER_ID} (broker ids are part of Kafka producer ids)",
                    self.broker_id
                ),
            ));
        }
        Ok(self.broker_id)
    }

    /// Log settings of topics that do not override them, checked by the
    /// same rules as topic config.
    pub fn log_defaults(&self) -> Result<LogConfig, ConfigError> {
        let flush = match self.log_flush {
            FlushDefault::Replicated => "replicated",
            FlushDefault::Fsync => "fsync",
        };
        let settings = [
            (
                "segment.bytes",
                self.log_segment_bytes.to_string(),
                "--log-segment-bytes",
                "RILL_LOG_SEGMENT_BYTES",
            ),
            (
                "retention.ms",
                self.log_retention_ms.to_string(),
                "--log-retention-ms",
                "RILL_LOG_RETENTION_MS",
            ),
            (
                "retention.bytes",
                self.log_retention_bytes.to_string(),
                "--log-retention-bytes",
                "RILL_LOG_RETENTION_BYTES",
            ),
            ("flush", flush.to_owned(), "--log-flush", "RILL_LOG_FLUSH"),
            (
                "min.insync.replicas",
                self.log_min_insync_replicas.to_string(),
                "--log-min-insync-replicas",
                "RILL_LOG_MIN_INSYNC_REPLICAS",
            ),
            (
                "max.message.bytes",
                self.message_max_bytes.to_string(),
                "--message-max-bytes",
                "RILL_MESSAGE_MAX_BYTES",
            ),
            (
                "flush.ms",
                self.log_flush_interval_ms.to_string(),
                "--log-flush-interval-ms",
                "RILL_LOG_FLUSH_INTERVAL_MS",
            ),
        ];
        let mut config = LogConfig::default();
        for (key, value, flag, env) in settings {
            let one = BTreeMap::from([(key.to_owned(), value)]);
            config = config
                .with_overrides(&one)
                .map_err(|e| invalid(flag, env, e.to_string()))?;
        }
        Ok(config)
    }

    /// Settings of the consumer-group coordinator.
    pub fn group_settings(&self) -> GroupSettings {
        GroupSettings {
            offsets_topic_partitions: self.offsets_topic_partitions,
            offsets_topic_replication_factor: self.offsets_topic_replication_factor,
            limits: Limits {
                initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms as i64,
                min_session_timeout_ms: self.group_min_session_timeout_ms,
                max_session_timeout_ms: self.group_max_session_timeout_ms,
                consumer_session_timeout_ms: self.group_consumer_session_timeout_ms,
                consumer_heartbeat_interval_ms: self.group_consumer_heartbeat_interval_ms,
                ..Limits::default()
            },
            offsets_retention_ms: self.offsets_retention_ms,
            commit_timeout: Duration::from_millis(self.offsets_commit_timeout_ms),
            consumer_heartbeats_per_sec: self.group_consumer_heartbeats_per_second,
            ..GroupSettings::default()
        }
    }

    pub fn txn_settings(&self) -> crate::txn::TxnSettings {
        crate::txn::TxnSettings {
            partitions: self.transaction_state_partitions,
            replication_factor: self.transaction_state_replication_factor,
            max_timeout_ms: self.transaction_max_timeout_ms,
            abort_check_interval: Duration::from_millis(
                self.transaction_abort_check_interval_ms.max(1),
            ),
            ..crate::txn::TxnSettings::default()
        }
    }

    /// How long graceful shutdown waits for in-flight requests.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> BrokerConfig {
        let mut all = vec!["rill-broker"];
        all.extend_from_slice(args);
        BrokerConfig::try_parse_from(all).expect("parses")
    }

    #[test]
    fn given_statefulset_pod_names_when_parsed_should_yield_the_ordinal() {
        assert_eq!(ordinal_from_pod_name("rill-0"), Some(0));
        assert_eq!(ordinal_from_pod_name("my-cluster-broker-12"), Some(12));
    }

    #[test]
    fn given_names_without_an_ordinal_when_parsed_should_yield_none() {
        for name in [
            "rill",
            "rill-",
            "-3",
            "rill-x1",
            "rill-01",
            "rill-99999999999",
            "",
        ] {
            assert_eq!(ordinal_from_pod_name(name), None, "{name:?}");
        }
    }

    #[test]
    fn given_id_from_pod_name_when_resolved_should_use_the_ordinal() {
        let c = parse(&["--pod-name", "rill-3", "--broker-id-from-pod-name", "true"]);
        assert_eq!(c.resolved_broker_id(), Ok(3));
        let c = parse(&["--pod-name", "rill-4", "--broker-id-from-pod-name"]);
        assert_eq!(c.resolved_broker_id(), Ok(4));
    }

    #[test]
    fn given_id_from_pod_name_without_a_pod_name_when_validated_should_say_what_is_missing() {
        let c = parse(&["--broker-id-from-pod-name", "true"]);
        let err = c.validate().expect_err("must fail").to_string();
        assert!(err.contains("RILL_POD_NAME"), "{err}");
    }

    #[test]
    fn given_a_pod_name_without_ordinal_when_validated_should_name_the_pod() {
        let c = parse(&["--pod-name", "broker", "--broker-id-from-pod-name", "true"]);
        let err = c.validate().expect_err("must fail").to_string();
        assert!(
            err.contains("\"broker\"") && err.contains("ordinal"),
            "{err}"
        );
    }

    #[test]
    fn given_defaults_when_validated_should_pass() {
        let c = BrokerConfig::ephemeral("/tmp/x");
        assert_eq!(c.validate(), Ok(()));
        let parsed = parse(&[]);
        assert_eq!(parsed.listen_addr.port(), 9093);
        assert_eq!(parsed.http_addr.port(), 9644);
        assert_eq!(parsed.validate(), Ok(()));
    }

    #[test]
    fn given_no_flags_and_no_env_when_parsed_should_equal_the_env_free_defaults() {
        if std::env::vars().any(|(k, _)| k.starts_with("RILL_")) {
            // The declared defaults cannot be observed through the
            // environment of this process; `ephemeral` is still covered by
            // the other tests.
            return;
        }
        let parsed = format!("{:?}", parse(&[]));
        assert_eq!(parsed, format!("{:?}", BrokerConfig::parse_from_env_free()));
    }

    #[test]
    fn given_a_negative_broker_id_when_validated_should_fail() {
        let c = parse(&["--broker-id=-1"]);
        let err = c.validate().expect_err("must fail").to_string();
        assert!(
            err.contains("RILL_BROKER_ID") && err.contains("negative"),
            "{err}"
        );
    }

    #[test]
    fn given_a_tiny_segment_size_when_validated_should_name_flag_and_range() {
        let c = parse(&["--log-segment-bytes", "10"]);
        let err = c.validate().expect_err("must fail").to_string();
        assert!(
            err.contains("--log-segment-bytes") && err.contains("between"),
            "{err}"
        );
    }

    #[test]
    fn given_same_address_for_grpc_and_http_when_validated_should_fail() {
        let c = parse(&[
            "--listen-addr",
            "0.0.0.0:9000",
            "--http-addr",
            "0.0.0.0:9000",
        ]);
        let err = c.validate().expect_err("must fail").to_string();
        assert!(err.contains("RILL_HTTP_ADDR"), "{err}");
    }

    #[test]
    fn given_bad_auto_create_partitions_or_log_filter_when_validated_should_fail() {
        let c = parse(&["--auto-create-topic-partitions", "0"]);
        assert!(c.validate().is_err());
        let c = parse(&["--log", "info,[[["]);
        let err = c.validate().expect_err("must fail").to_string();
        assert!(err.contains("RILL_LOG"), "{err}");
    }

    #[test]
    fn given_fsync_default_when_resolved_should_apply_to_log_defaults() {
        let c = parse(&["--log-flush", "fsync", "--log-retention-ms=-1"]);
        let log = c.log_defaults().expect("valid");
        assert_eq!(log.flush, crate::log::FlushPolicy::Fsync);
        assert_eq!(log.retention_ms, -1);
    }
}
