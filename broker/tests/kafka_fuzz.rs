//! Fuzzing the Kafka listener's request path: random bytes and mutated
//! valid requests go through framing ([`frame::read_frame`]), decoding
//! ([`dispatch::decode`]) and, when they decode, the request handlers
//! ([`dispatch::handle`]) of a real in-process broker. The contract: no
//! input panics or aborts, and every response that is produced encodes
//! (a response that cannot be encoded would close the client's connection).
//!
//! Seeds are valid request frames of every served API at several versions,
//! kept in `broker/tests/kafka_corpus/` (regenerate with
//! `cargo test -p rill-broker --test kafka_fuzz -- --ignored write_seed_corpus`).
//!
//! `cargo test` runs a small number of cases. Long runs:
//!
//! ```text
//! RILL_FUZZ_DECODE_CASES=2000000 RILL_FUZZ_CASES=200000 \
//!   cargo test --release -p rill-broker --test kafka_fuzz
//! ```

mod kafka_client;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use kafka_client::{batch, request_frame};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use proptest::prelude::*;
use rill_broker::config::{BrokerConfig, TopicAdminPolicy};
use rill_broker::kafka::authz::Caller;
use rill_broker::kafka::{KafkaContext, KafkaSettings, ProducerIdAllocator, dispatch, frame};
use rill_broker::metrics::Metrics;
use rill_broker::partition::manager::CreateTopic;
use rill_broker::quota::{QuotaManager, QuotaService};
use rill_broker::security::{AclService, Authorizer, Principal};
use rill_broker::{Broker, BrokerHandle};

/// Longest one fuzzed request may run (long polls and big topic creations
/// are cut short; dropping a request is what a closed connection does).
const REQUEST_TIMEOUT: Duration = Duration::from_millis(200);
/// Largest frame the fuzzed listener accepts.
const MAX_FRAME: usize = 1 << 20;
const TOPIC: &str = "fuzz";

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/kafka_corpus")
}

fn cases(var: &str, default: u32) -> u32 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The seed frames (size prefix included).
fn corpus() -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("seed corpus directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).expect("seed"))
        .collect();
    assert!(seeds.len() >= 30, "seed corpus has {} frames", seeds.len());
    seeds
}

/// A broker and a listener context on it.
struct Harness {
    runtime: tokio::runtime::Runtime,
    ctx: Arc<KafkaContext>,
    broker: Option<BrokerHandle>,
    _dir: tempfile::TempDir,
    /// Inputs fed, frames decoded, requests handled (reported at the end).
    inputs: AtomicU64,
    decoded: AtomicU64,
    handled: AtomicU64,
}

impl Harness {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = runtime
            .block_on(Broker::start(BrokerConfig::ephemeral(
                dir.path().join("data"),
            )))
            .expect("broker starts");
        let ids = ProducerIdAllocator::open(dir.path(), 0).expect("producer ids");
        let ctx = Arc::new(KafkaContext {
            manager: Arc::clone(broker.manager()),
            metrics: Arc::new(Metrics::new()),
            settings: KafkaSettings {
                broker_id: 0,
                cluster_id: "fuzz".into(),
                max_request_bytes: MAX_FRAME,
                create_topics: TopicAdminPolicy::Allow,
                delete_topics: TopicAdminPolicy::Allow,
                auto_create_partitions: Some(1),
                default_partitions: 1,
                config_sources: Default::default(),
                transaction_version: 1,
            },
            producer_ids: Arc::new(ids),
            groups: Some(Arc::clone(broker.groups())),
            txns: None,
            acls: fuzz_acls(dir.path()),
            listener: None,
            quotas: QuotaService::open_local(dir.path(), Arc::new(QuotaManager::default()))
                .expect("quotas"),
            fetch_sessions: Default::default(),
            shares: None,
            request_memory: rill_broker::kafka::memory::RequestMemory::with_metrics(
                MAX_FRAME,
                &Metrics::new(),
            ),
        });
        let h = Self {
            runtime,
            ctx,
            broker: Some(broker),
            _dir: dir,
            inputs: AtomicU64::new(0),
            decoded: AtomicU64::new(0),
            handled: AtomicU64::new(0),
        };
        h.ensure_topic();
        h
    }

    /// Fuzzed DeleteTopics may remove the seeds' topic: bring it back.
    fn ensure_topic(&self) {
        if self.ctx.manager.metadata(&[TOPIC.to_owned()]).is_ok() {
            return;
        }
        self.runtime.block_on(async {
            let _ = self
                .ctx
                .manager
                .create_topic(CreateTopic {
                    name: TOPIC.into(),
                    partitions: 2,
                    replication_factor: 1,
                    config: Default::default(),
                })
                .await;
            let data = batch(&["a", "b", "c"], None, Compression::None);
            let _ = self
                .ctx
                .manager
                .produce(
                    TOPIC,
                    0,
                    data.to_vec(),
                    rill_broker::partition::Acks::Leader,
                    0,
                )
                .await;
        });
    }

    /// Feeds `bytes` as a connection's byte stream: every frame is decoded
    /// and, when it decodes, handled. Panics (the property) propagate.
    fn feed(&self, bytes: &[u8], dispatch_too: bool) {
        self.inputs.fetch_add(1, Ordering::Relaxed);
        self.runtime.block_on(async {
            let mut stream = bytes;
            while let Ok(Some(frame)) = frame::read_frame(&mut stream, MAX_FRAME).await {
                let Ok(decoded) = dispatch::decode(&self.ctx, frame) else {
                    return;
                };
                self.decoded.fetch_add(1, Ordering::Relaxed);
                if !dispatch_too {
                    continue;
                }
                let handled = tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    dispatch::handle(
                        Arc::clone(&self.ctx),
                        decoded,
                        Caller {
                            principal: Arc::new(Principal::user("fuzz")),
                            host: "127.0.0.1".into(),
                            peer: "127.0.0.1:1".parse().unwrap(),
                        },
                    ),
                )
                .await;
                if let Ok(Err(e)) = handled {
                    panic!("a decoded request got a response that does not encode: {e}");
                }
                self.handled.fetch_add(1, Ordering::Relaxed);
            }
        });
        if dispatch_too {
            self.ensure_topic();
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        eprintln!(
            "kafka fuzz: {} inputs, {} frames decoded, {} requests handled to completion",
            self.inputs.load(Ordering::Relaxed),
            self.decoded.load(Ordering::Relaxed),
            self.handled.load(Ordering::Relaxed)
        );
        if let Some(b) = self.broker.take() {
            let _ = self.runtime.block_on(b.shutdown());
        }
    }
}

/// One edit of a seed frame.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    /// An interesting 32-bit value (lengths, counts) at a position.
    Int(usize, i32),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        Just(0i32),
        Just(-1),
        Just(1),
        Just(i32::MAX),
        Just(i32::MIN),
        Just(0x7fff),
        Just(0xffff),
        Just(0x00ff_ffff),
        any::<i32>(),
    ];
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(p, b)| Mutation::Flip(p, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Set(p, b)),
        (any::<usize>(), interesting).prop_map(|(p, v)| Mutation::Int(p, v)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(p, v)| Mutation::Insert(p, v)),
        (any::<usize>(), 1usize..32).prop_map(|(p, n)| Mutation::Remove(p, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// Applies `mutations` to the body of `seed`; with `fix_size` the size
/// prefix is rewritten to match (so the decoder, not the framing, sees the
/// damage).
fn mutate(seed: &[u8], mutations: &[Mutation], fix_size: bool) -> Vec<u8> {
    let mut body = seed.get(4..).unwrap_or_default().to_vec();
    for m in mutations {
        let len = body.len().max(1);
        match m {
            Mutation::Flip(p, b) => {
                if let Some(x) = body.get_mut(p % len) {
                    *x ^= b;
                }
            }
            Mutation::Set(p, b) => {
                if let Some(x) = body.get_mut(p % len) {
                    *x = *b;
                }
            }
            Mutation::Int(p, v) => {
                let at = p % len;
                for (i, b) in v.to_be_bytes().iter().enumerate() {
                    if let Some(x) = body.get_mut(at + i) {
                        *x = *b;
                    }
                }
            }
            Mutation::Insert(p, bytes) => {
                let at = p % (body.len() + 1);
                body.splice(at..at, bytes.iter().copied());
            }
            Mutation::Remove(p, n) => {
                let at = p % len;
                let end = (at + n).min(body.len());
                if at < end {
                    body.drain(at..end);
                }
            }
            Mutation::Truncate(p) => body.truncate(p % len),
        }
    }
    let size = if fix_size {
        body.len() as i32
    } else {
        i32::from_be_bytes(seed[..4].try_into().expect("prefix"))
    };
    let mut out = size.to_be_bytes().to_vec();
    out.extend(body);
    out
}

fn input(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    prop_oneof![
        // Random bytes, sometimes behind a plausible size prefix.
        1 => proptest::collection::vec(any::<u8>(), 0..256),
        1 => (proptest::collection::vec(any::<u8>(), 4..256)).prop_map(|mut v| {
            let size = (v.len() - 4) as i32;
            v[..4].copy_from_slice(&size.to_be_bytes());
            v
        }),
        // Mutated seeds.
        8 => (0..n, proptest::collection::vec(mutation(), 1..4), prop::bool::weighted(0.75)).prop_map(
            move |(i, ms, fix)| mutate(&seeds[i], &ms, fix)
        ),
    ]
}

#[test]
fn given_random_and_mutated_frames_when_decoded_should_never_panic() {
    let harness = Harness::new();
    let seeds = corpus();
    for seed in &seeds {
        harness.feed(seed, false);
    }
    let config = ProptestConfig {
        cases: cases("RILL_FUZZ_DECODE_CASES", 2_000),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(bytes in input(seeds.clone()))| {
        harness.feed(&bytes, false);
    });
}

#[test]
fn given_random_and_mutated_requests_when_dispatched_should_never_panic() {
    let harness = Harness::new();
    let seeds = corpus();
    // Every seed is a valid request that is served.
    for seed in &seeds {
        let frame = Bytes::copy_from_slice(&seed[4..]);
        assert!(
            dispatch::decode(&harness.ctx, frame).is_ok(),
            "seed {:?} decodes",
            &seed[..12.min(seed.len())]
        );
        harness.feed(seed, true);
    }
    let config = ProptestConfig {
        cases: cases("RILL_FUZZ_CASES", 300),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(bytes in input(seeds.clone()))| {
        harness.feed(&bytes, true);
    });
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// Writes the seed corpus: valid frames of every served API at several
/// versions (lowest, first flexible, highest).
#[test]
#[ignore = "writes broker/tests/kafka_corpus; run by hand when the served APIs change"]
fn write_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut n = 0;
    let mut write = |label: &str, version: i16, frame: Bytes| {
        std::fs::write(dir.join(format!("{label}-v{version}.bin")), &frame).expect("write seed");
        n += 1;
    };
    let data = batch(&["x", "y"], Some((7, 0, 0)), Compression::None);
    let gz = batch(&["z"], None, Compression::Gzip);
    for v in [3, 9, 13] {
        let mut t = TopicProduceData::default().with_partition_data(vec![
            PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(data.clone())),
            PartitionProduceData::default()
                .with_index(1)
                .with_records(Some(gz.clone())),
        ]);
        if v >= 13 {
            // Topic ids are random per topic; any id exercises the decoder.
            t.topic_id = uuid::Uuid::from_u128(0x5d1c_0e2a_7b4f_4c2e_9f3a_61d8_0b7e_2c19);
        } else {
            t.name = name(TOPIC);
        }
        let r = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![t]);
        write("produce", v, request_frame(v, 1, &r));
    }
    for v in [4, 12, 13, 18] {
        let mut t = FetchTopic::default().with_partitions(vec![
            FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 16)
                .with_current_leader_epoch(0)
                .with_last_fetched_epoch(-1),
        ]);
        if v >= 13 {
            // Topic ids are random per topic; any id exercises the decoder.
            t.topic_id = uuid::Uuid::from_u128(0x5d1c_0e2a_7b4f_4c2e_9f3a_61d8_0b7e_2c19);
        } else {
            t.topic = name(TOPIC);
        }
        let r = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(10)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![t]);
        write("fetch", v, request_frame(v, 1, &r));
    }
    for v in [1, 6, 10] {
        let r = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(name(TOPIC))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1),
                        ListOffsetsPartition::default()
                            .with_partition_index(1)
                            .with_timestamp(1_700_000_000_000),
                    ]),
            ]);
        write("list_offsets", v, request_frame(v, 1, &r));
    }
    for v in [0, 4, 9, 12, 13] {
        let r = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(TOPIC))),
            MetadataRequestTopic::default().with_name(Some(name("auto"))),
        ]));
        write("metadata", v, request_frame(v, 1, &r));
    }
    for v in [0, 3, 4] {
        let mut r = ApiVersionsRequest::default();
        if v >= 3 {
            r = r
                .with_client_software_name(StrBytes::from_static_str("fuzz"))
                .with_client_software_version(StrBytes::from_static_str("1"));
        }
        write("api_versions", v, request_frame(v, 1, &r));
    }
    for v in [2, 5, 7] {
        let r = CreateTopicsRequest::default()
            .with_validate_only(v == 5)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(name("created"))
                    .with_num_partitions(2)
                    .with_replication_factor(1)
                    .with_configs(vec![
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_static_str("retention.ms"))
                            .with_value(Some(StrBytes::from_static_str("1000"))),
                    ]),
            ]);
        write("create_topics", v, request_frame(v, 1, &r));
    }
    for v in [1, 4, 6] {
        let r = if v >= 6 {
            DeleteTopicsRequest::default().with_topics(vec![
                DeleteTopicState::default().with_name(Some(name("created"))),
            ])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![name("created")])
        };
        write("delete_topics", v, request_frame(v, 1, &r));
    }
    for v in [0, 2, 5] {
        write(
            "init_producer_id",
            v,
            request_frame(
                v,
                1,
                &InitProducerIdRequest::default().with_transaction_timeout_ms(1000),
            ),
        );
    }
    for v in [2, 3, 4] {
        let r = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(name(TOPIC))
                    .with_partitions(vec![
                        OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(0)
                            .with_leader_epoch(0),
                    ]),
            ]);
        write("offset_for_leader_epoch", v, request_frame(v, 1, &r));
    }
    for v in [1, 4] {
        let r = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str(TOPIC)),
            DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str("0")),
        ]);
        write("describe_configs", v, request_frame(v, 1, &r));
    }
    for v in [0, 2, 3] {
        let r = CreatePartitionsRequest::default()
            .with_validate_only(true)
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(name(TOPIC))
                    .with_count(3),
            ]);
        write("create_partitions", v, request_frame(v, 1, &r));
    }
    for v in [0, 1, 2] {
        write(
            "describe_cluster",
            v,
            request_frame(v, 1, &DescribeClusterRequest::default()),
        );
    }
    for v in [1, 3] {
        use kafka_protocol::messages::create_acls_request::AclCreation;
        use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
        let acl = AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str(TOPIC))
            .with_resource_pattern_type(3)
            .with_principal(StrBytes::from_static_str("User:someone"))
            .with_host(StrBytes::from_static_str("*"))
            .with_operation(4)
            .with_permission_type(3);
        write(
            "create_acls",
            v,
            request_frame(
                v,
                1,
                &CreateAclsRequest::default().with_creations(vec![acl]),
            ),
        );
        let describe = DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1);
        write("describe_acls", v, request_frame(v, 1, &describe));
        let filter = DeleteAclsFilter::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_principal_filter(Some(StrBytes::from_static_str("User:someone")))
            .with_operation(1)
            .with_permission_type(1);
        write(
            "delete_acls",
            v,
            request_frame(
                v,
                1,
                &DeleteAclsRequest::default().with_filters(vec![filter]),
            ),
        );
    }
    for v in [0, 1] {
        use kafka_protocol::messages::alter_client_quotas_request::{
            EntityData, EntryData, OpData,
        };
        use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
        let describe = DescribeClientQuotasRequest::default()
            .with_components(vec![
                ComponentData::default()
                    .with_entity_type(StrBytes::from_static_str("client-id"))
                    .with_match_type(2)
                    .with_match(None),
            ])
            .with_strict(false);
        write("describe_client_quotas", v, request_frame(v, 1, &describe));
        let entry = EntryData::default()
            .with_entity(vec![
                EntityData::default()
                    .with_entity_type(StrBytes::from_static_str("user"))
                    .with_entity_name(Some(StrBytes::from_static_str("fuzz"))),
                EntityData::default()
                    .with_entity_type(StrBytes::from_static_str("client-id"))
                    .with_entity_name(None),
            ])
            .with_ops(vec![
                OpData::default()
                    .with_key(StrBytes::from_static_str("producer_byte_rate"))
                    .with_value(1048576.0),
                OpData::default()
                    .with_key(StrBytes::from_static_str("request_percentage"))
                    .with_remove(true),
            ]);
        let alter = AlterClientQuotasRequest::default()
            .with_entries(vec![entry])
            .with_validate_only(v == 1);
        write("alter_client_quotas", v, request_frame(v, 1, &alter));
    }
    write(
        "sasl_handshake",
        1,
        request_frame(
            1,
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        ),
    );
    write(
        "sasl_authenticate",
        2,
        request_frame(
            2,
            1,
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"\0u\0p")),
        ),
    );
    group_seeds(&mut write);
    println!("wrote {n} seed frames to {}", dir.display());
}

/// Seeds of the consumer-group APIs (`crate::group`).
fn group_seeds(write: &mut impl FnMut(&str, i16, Bytes)) {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    };
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    let text = |s: &str| StrBytes::from_string(s.to_owned());
    let group = || GroupId(text("fuzz-group"));
    for v in [0, 3, 4, 6] {
        let r = FindCoordinatorRequest::default()
            .with_key(if v < 4 { text("fuzz-group") } else { text("") })
            .with_coordinator_keys(if v >= 4 {
                vec![text("fuzz-group"), text("other")]
            } else {
                vec![]
            });
        write("find_coordinator", v, request_frame(v, 1, &r));
    }
    for v in [0, 5, 6, 9] {
        let r = JoinGroupRequest::default()
            .with_group_id(group())
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(if v >= 1 { 10_000 } else { -1 })
            .with_group_instance_id(if v >= 5 { Some(text("pod-0")) } else { None })
            .with_protocol_type(text("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(text("range"))
                    .with_metadata(Bytes::from_static(b"subscription")),
            ]);
        write("join_group", v, request_frame(v, 1, &r));
    }
    for v in [0, 4, 5] {
        let r = SyncGroupRequest::default()
            .with_group_id(group())
            .with_generation_id(1)
            .with_member_id(text("m-1"))
            .with_protocol_type(if v >= 5 { Some(text("consumer")) } else { None })
            .with_protocol_name(if v >= 5 { Some(text("range")) } else { None })
            .with_assignments(vec![
                SyncGroupRequestAssignment::default()
                    .with_member_id(text("m-1"))
                    .with_assignment(Bytes::from_static(b"assignment")),
            ]);
        write("sync_group", v, request_frame(v, 1, &r));
    }
    for v in [0, 4] {
        let r = HeartbeatRequest::default()
            .with_group_id(group())
            .with_generation_id(1)
            .with_member_id(text("m-1"));
        write("heartbeat", v, request_frame(v, 1, &r));
    }
    for v in [0, 3, 5] {
        let r = if v >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(group())
                .with_members(vec![
                    MemberIdentity::default().with_member_id(text("m-1")),
                    MemberIdentity::default()
                        .with_member_id(text(""))
                        .with_group_instance_id(Some(text("pod-0"))),
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(group())
                .with_member_id(text("m-1"))
        };
        write("leave_group", v, request_frame(v, 1, &r));
    }
    for v in [2, 8, 9] {
        let r = OffsetCommitRequest::default()
            .with_group_id(group())
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(name(TOPIC))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(5)
                            .with_committed_metadata(Some(text("m"))),
                    ]),
            ]);
        write("offset_commit", v, request_frame(v, 1, &r));
    }
    for v in [1, 7, 8, 9] {
        let r = if v >= 8 {
            OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(group())
                    .with_topics(Some(vec![
                        OffsetFetchRequestTopics::default()
                            .with_name(name(TOPIC))
                            .with_partition_indexes(vec![0, 1]),
                    ])),
            ])
        } else {
            OffsetFetchRequest::default()
                .with_group_id(group())
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(name(TOPIC))
                        .with_partition_indexes(vec![0, 1]),
                ]))
        };
        write("offset_fetch", v, request_frame(v, 1, &r));
    }
    for v in [0, 4, 5] {
        let mut r = ListGroupsRequest::default();
        if v >= 4 {
            r = r.with_states_filter(vec![text("Stable")]);
        }
        if v >= 5 {
            r = r.with_types_filter(vec![text("classic")]);
        }
        write("list_groups", v, request_frame(v, 1, &r));
    }
    for v in [0, 5, 6] {
        let r = DescribeGroupsRequest::default().with_groups(vec![group()]);
        write("describe_groups", v, request_frame(v, 1, &r));
    }
    for v in [0, 2] {
        let r = DeleteGroupsRequest::default().with_groups_names(vec![group()]);
        write("delete_groups", v, request_frame(v, 1, &r));
    }
}

/// Authorization on, so every request also goes through its ACL check:
/// the fuzz principal may do everything except write to topics starting
/// with `denied`, which exercises the split of requests into allowed and
/// refused parts.
fn fuzz_acls(dir: &std::path::Path) -> AclService {
    use rill_proto::acl::{Acl, Operation, PatternType, Permission, ResourceType};
    let authorizer = Arc::new(Authorizer::new(true, vec![]));
    let acl = |resource_type, name: &str, operation, permission| Acl {
        resource_type,
        pattern: PatternType::Prefixed,
        name: name.to_owned(),
        principal: "User:fuzz".to_owned(),
        host: "*".to_owned(),
        operation,
        permission,
    };
    authorizer.replace(vec![
        acl(ResourceType::Topic, "", Operation::All, Permission::Allow),
        acl(ResourceType::Group, "", Operation::All, Permission::Allow),
        acl(
            ResourceType::TransactionalId,
            "",
            Operation::All,
            Permission::Allow,
        ),
        acl(
            ResourceType::Topic,
            "denied",
            Operation::Write,
            Permission::Deny,
        ),
        Acl {
            pattern: PatternType::Literal,
            ..acl(
                ResourceType::Cluster,
                "kafka-cluster",
                Operation::All,
                Permission::Allow,
            )
        },
    ]);
    AclService::open_local(dir, authorizer).expect("acls")
}
