//! Consumer groups over the Kafka protocol (real TCP, requests encoded
//! with `kafka-protocol`) against a controller and three brokers in one
//! process. Pins: FindCoordinator creates `__consumer_offsets` and names
//! the leader of the group's partition; three members join one
//! generation, the leader's assignment reaches every member; a member
//! leaves and the others rebalance into the next generation; committed
//! offsets read back; when the coordinator's broker goes away, another
//! broker becomes coordinator and still has the offsets, the generation,
//! the members and their assignments (members keep heartbeating without
//! rejoining). Twice: with the coordinator's broker shut down in-process,
//! and with the coordinator's broker process SIGKILLed (real processes:
//! the controller fences it when its lease expires). And the consumer
//! protocol (KIP-848): two members reconcile to a split, commit with their
//! member epochs, and carry on at the same epochs with the same assignments
//! and offsets after the coordinator's broker shuts down.

mod broker_process;
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rill_broker::BrokerHandle;
use rill_proto::client::CreateTopicRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest the cluster may take to agree on leaders, or a coordinator to
/// appear after a failover.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one Kafka request may take (JoinGroup waits for the rebalance).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between polls of a condition.
const POLL: Duration = Duration::from_millis(50);
const GROUP: &str = "billing";
const TOPIC: &str = "invoices";
/// Members' session timeout: long enough to ride out the failover.
const SESSION_MS: i32 = 20_000;
const REBALANCE_MS: i32 = 20_000;

/// Kafka error codes the test expects.
const NONE: i16 = 0;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;

/// Group flags for test brokers: a small offsets topic, a short initial
/// rebalance delay.
const GROUP_FLAGS: [&str; 6] = [
    "--offsets-topic-partitions",
    "3",
    "--group-initial-rebalance-delay-ms",
    "200",
    "--group-min-session-timeout-ms",
    "1000",
];

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// One Kafka connection, one request at a time.
struct KafkaConn {
    stream: TcpStream,
    correlation: i32,
}

impl KafkaConn {
    async fn connect(address: &str) -> Self {
        let stream = TcpStream::connect(address)
            .await
            .unwrap_or_else(|e| panic!("connect to {address}: {e}"));
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            correlation: 0,
        }
    }

    async fn send<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(s("kafka-groups-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, api.request_header_version(version))
            .unwrap();
        request.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        let exchange = async {
            self.stream.write_all(&frame).await?;
            let len = self.stream.read_i32().await?;
            let mut buf = vec![0u8; len as usize];
            self.stream.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(Bytes::from(buf))
        };
        let mut buf = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| panic!("{api:?} v{version} got no answer"))
            .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
        let response_header =
            ResponseHeader::decode(&mut buf, api.response_header_version(version)).unwrap();
        assert_eq!(response_header.correlation_id, self.correlation);
        let response = Resp::decode(&mut buf, version).unwrap();
        assert!(!buf.has_remaining(), "{api:?} v{version}: trailing bytes");
        response
    }
}

async fn start_controller(dir: &Path) -> rill_controller::ControllerHandle {
    let config =
        rill_controller::config::ServerConfig::ephemeral(dir.join("controller/metadata.json"));
    rill_controller::start(config)
        .await
        .expect("controller starts")
}

async fn start_broker(dir: &Path, id: i32, controller: &str) -> BrokerHandle {
    common::start(&dir.join(format!("broker-{id}")), |c| {
        c.broker_id = id;
        c.controller_addr = vec![controller.to_owned()];
        c.offsets_topic_partitions = 3;
        c.group_initial_rebalance_delay_ms = 200;
        c.group_min_session_timeout_ms = 1_000;
    })
    .await
}

/// FindCoordinator (v4, batched keys) asked at the Kafka address `via`
/// until it names a broker in `alive`: (node id, host:port).
async fn find_coordinator(via: &str, alive: &[i32]) -> (i32, String) {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    let mut conn = KafkaConn::connect(via).await;
    loop {
        let r: FindCoordinatorResponse = conn
            .send(
                ApiKey::FindCoordinator,
                4,
                &FindCoordinatorRequest::default().with_coordinator_keys(vec![s(GROUP)]),
            )
            .await;
        let c = &r.coordinators[0];
        if c.error_code == NONE && alive.contains(&c.node_id.0) {
            return (c.node_id.0, format!("{}:{}", c.host, c.port));
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no coordinator among {alive:?}: {c:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the coordinator answers group requests (its partition is
/// loaded): a heartbeat of an unknown member says UNKNOWN_MEMBER_ID
/// rather than NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS.
async fn wait_loaded(address: &str) {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    let mut conn = KafkaConn::connect(address).await;
    loop {
        let r: HeartbeatResponse = conn
            .send(
                ApiKey::Heartbeat,
                4,
                &HeartbeatRequest::default()
                    .with_group_id(GroupId(s(GROUP)))
                    .with_member_id(s("probe")),
            )
            .await;
        if r.error_code != 14 && r.error_code != 16 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "coordinator at {address} never loaded (error {})",
            r.error_code
        );
        tokio::time::sleep(POLL).await;
    }
}

fn join_request(member_id: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(REBALANCE_MS)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from(format!("subscription:{TOPIC}"))),
        ])
}

/// A group member with its own connection to the coordinator.
struct Member {
    conn: KafkaConn,
    id: String,
    generation: i32,
}

impl Member {
    /// Joins from scratch (JoinGroup v7: the first answer hands out the
    /// member id).
    async fn join_new(address: &str) -> (Self, JoinGroupResponse) {
        let mut conn = KafkaConn::connect(address).await;
        let first: JoinGroupResponse = conn.send(ApiKey::JoinGroup, 7, &join_request("")).await;
        assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
        let mut m = Self {
            conn,
            id: first.member_id.to_string(),
            generation: -1,
        };
        let r = m.rejoin().await;
        (m, r)
    }

    async fn rejoin(&mut self) -> JoinGroupResponse {
        let r: JoinGroupResponse = self
            .conn
            .send(ApiKey::JoinGroup, 7, &join_request(&self.id))
            .await;
        assert_eq!(r.error_code, NONE, "{r:?}");
        self.generation = r.generation_id;
        r
    }

    async fn sync(&mut self, assignments: &BTreeMap<String, Bytes>) -> SyncGroupResponse {
        let r: SyncGroupResponse = self
            .conn
            .send(
                ApiKey::SyncGroup,
                5,
                &SyncGroupRequest::default()
                    .with_group_id(GroupId(s(GROUP)))
                    .with_generation_id(self.generation)
                    .with_member_id(s(&self.id))
                    .with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("range")))
                    .with_assignments(
                        assignments
                            .iter()
                            .map(|(m, a)| {
                                SyncGroupRequestAssignment::default()
                                    .with_member_id(s(m))
                                    .with_assignment(a.clone())
                            })
                            .collect(),
                    ),
            )
            .await;
        assert_eq!(r.error_code, NONE, "{r:?}");
        r
    }

    async fn heartbeat(&mut self) -> i16 {
        let r: HeartbeatResponse = self
            .conn
            .send(
                ApiKey::Heartbeat,
                4,
                &HeartbeatRequest::default()
                    .with_group_id(GroupId(s(GROUP)))
                    .with_generation_id(self.generation)
                    .with_member_id(s(&self.id)),
            )
            .await;
        r.error_code
    }
}

/// The assignment the leader hands each member: its own tag.
fn assignment_for(members: &[String]) -> BTreeMap<String, Bytes> {
    // (Tags, not real consumer assignments: the coordinator never looks
    // inside them.)
    members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), Bytes::from(format!("partition-{i}"))))
        .collect()
}

async fn fetch_offsets(conn: &mut KafkaConn) -> Vec<(i32, i64)> {
    let r: OffsetFetchResponse = conn
        .send(
            ApiKey::OffsetFetch,
            8,
            &OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s(GROUP)))
                    .with_topics(Some(vec![
                        OffsetFetchRequestTopics::default()
                            .with_name(TopicName(s(TOPIC)))
                            .with_partition_indexes(vec![0, 1, 2]),
                    ])),
            ]),
        )
        .await;
    assert_eq!(r.groups[0].error_code, NONE, "{r:?}");
    r.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, NONE);
            (p.partition_index, p.committed_offset)
        })
        .collect()
}

async fn describe(conn: &mut KafkaConn) -> describe_groups_response::DescribedGroup {
    let r: DescribeGroupsResponse = conn
        .send(
            ApiKey::DescribeGroups,
            5,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(GROUP))]),
        )
        .await;
    r.groups.into_iter().next().expect("one group")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_three_members_when_one_leaves_and_the_coordinator_goes_away_should_keep_offsets_and_group()
 {
    let dir = tempfile::tempdir().unwrap();
    let controller = start_controller(dir.path()).await;
    let addr = controller.grpc_addr.to_string();
    let mut brokers = BTreeMap::new();
    for id in 0..3 {
        brokers.insert(id, start_broker(dir.path(), id, &addr).await);
    }
    let mut admin = common::connect(&brokers[&0]).await;
    admin
        .create_topic(CreateTopicRequest {
            name: TOPIC.into(),
            partitions: 3,
            replication_factor: 3,
            config: Default::default(),
        })
        .await
        .expect("topic created");

    // The first FindCoordinator creates __consumer_offsets (RF 3).
    let (coordinator, address) =
        find_coordinator(&brokers[&0].kafka_addr.to_string(), &[0, 1, 2]).await;
    assert_eq!(address, brokers[&coordinator].kafka_advertised);
    wait_loaded(&address).await;

    // Three members join at once: one generation, the first to join leads.
    let ((a, ja), (b, jb), (c, jc)) = tokio::join!(
        Member::join_new(&address),
        Member::join_new(&address),
        Member::join_new(&address)
    );
    let mut members = vec![a, b, c];
    let joins = [ja, jb, jc];
    assert!(joins.iter().all(|j| j.generation_id == 1), "{joins:?}");
    let leader_id = joins[0].leader.to_string();
    assert!(joins.iter().all(|j| j.leader == joins[0].leader));
    let leader_join = joins
        .iter()
        .find(|j| j.member_id == j.leader)
        .expect("one member leads");
    assert_eq!(leader_join.members.len(), 3);
    assert!(
        leader_join
            .members
            .iter()
            .all(|m| m.metadata == format!("subscription:{TOPIC}").as_bytes())
    );
    let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    let plan = assignment_for(&ids);
    let none = BTreeMap::new();
    let syncs = {
        let [m0, m1, m2] = &mut members[..] else {
            unreachable!()
        };
        let pick = |m: &Member| if m.id == leader_id { &plan } else { &none };
        let (p0, p1, p2) = (pick(m0), pick(m1), pick(m2));
        tokio::join!(m0.sync(p0), m1.sync(p1), m2.sync(p2))
    };
    for (m, r) in members.iter().zip([syncs.0, syncs.1, syncs.2]) {
        assert_eq!(r.assignment, plan[&m.id], "every member gets its share");
    }
    for m in &mut members {
        assert_eq!(m.heartbeat().await, NONE);
    }

    // One member (not the leader) leaves: the others rebalance.
    let gone = members
        .iter()
        .position(|m| m.id != leader_id)
        .expect("a follower");
    let mut leaving = members.remove(gone);
    let r: LeaveGroupResponse = leaving
        .conn
        .send(
            ApiKey::LeaveGroup,
            4,
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(s(GROUP)))
                .with_members(vec![
                    MemberIdentity::default().with_member_id(s(&leaving.id)),
                ]),
        )
        .await;
    assert_eq!(r.error_code, NONE);
    assert_eq!(r.members[0].error_code, NONE);
    for m in &mut members {
        assert_eq!(m.heartbeat().await, REBALANCE_IN_PROGRESS);
    }
    let rejoined = {
        let [m0, m1] = &mut members[..] else {
            unreachable!()
        };
        tokio::join!(m0.rejoin(), m1.rejoin())
    };
    assert_eq!((rejoined.0.generation_id, rejoined.1.generation_id), (2, 2));
    let leader2 = rejoined.0.leader.to_string();
    let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    let plan2 = assignment_for(&ids);
    let syncs = {
        let [m0, m1] = &mut members[..] else {
            unreachable!()
        };
        let pick = |m: &Member| if m.id == leader2 { &plan2 } else { &none };
        let (p0, p1) = (pick(m0), pick(m1));
        tokio::join!(m0.sync(p0), m1.sync(p1))
    };
    assert_eq!(syncs.0.assignment, plan2[&members[0].id]);
    assert_eq!(syncs.1.assignment, plan2[&members[1].id]);

    // Commits of generation 2; a stale generation is refused.
    let commit = |member: &Member, generation: i32, offsets: &[(i32, i64)]| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(s(&member.id))
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(TOPIC)))
                    .with_partitions(
                        offsets
                            .iter()
                            .map(|(p, o)| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(*o)
                            })
                            .collect(),
                    ),
            ])
    };
    let request = commit(&members[0], 2, &[(0, 100), (1, 200), (2, 300)]);
    let r: OffsetCommitResponse = members[0]
        .conn
        .send(ApiKey::OffsetCommit, 8, &request)
        .await;
    assert!(
        r.topics[0].partitions.iter().all(|p| p.error_code == NONE),
        "{r:?}"
    );
    let request = commit(&members[1], 1, &[(0, 999)]);
    let r: OffsetCommitResponse = members[1]
        .conn
        .send(ApiKey::OffsetCommit, 8, &request)
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code, 22,
        "ILLEGAL_GENERATION"
    );
    assert_eq!(
        fetch_offsets(&mut members[0].conn).await,
        vec![(0, 100), (1, 200), (2, 300)]
    );
    let before = describe(&mut members[0].conn).await;
    assert_eq!(before.group_state.as_str(), "Stable");
    assert_eq!(before.members.len(), 2);
    let r: ListGroupsResponse = members[0]
        .conn
        .send(ApiKey::ListGroups, 4, &ListGroupsRequest::default())
        .await;
    assert!(r.groups.iter().any(|g| g.group_id.0.as_str() == GROUP));

    // The coordinator's broker goes away: leadership of the offsets
    // partition moves, another broker loads the group from the log.
    brokers
        .remove(&coordinator)
        .unwrap()
        .shutdown()
        .await
        .expect("clean shutdown");
    let alive: Vec<i32> = brokers.keys().copied().collect();
    let (new_coordinator, new_address) =
        find_coordinator(&brokers[&alive[0]].kafka_addr.to_string(), &alive).await;
    assert_ne!(new_coordinator, coordinator);
    wait_loaded(&new_address).await;
    let mut fresh = KafkaConn::connect(&new_address).await;
    assert_eq!(
        fetch_offsets(&mut fresh).await,
        vec![(0, 100), (1, 200), (2, 300)],
        "committed offsets survive the coordinator"
    );
    let after = describe(&mut fresh).await;
    assert_eq!(after.group_state.as_str(), "Stable");
    assert_eq!(after.protocol_data.as_str(), "range");
    let mut described: Vec<(String, Bytes)> = after
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.member_assignment.clone()))
        .collect();
    described.sort();
    let mut expected: Vec<(String, Bytes)> = plan2.clone().into_iter().collect();
    expected.sort();
    assert_eq!(described, expected, "members and assignments survive");
    // The members carry on at the new coordinator in generation 2.
    for m in &mut members {
        m.conn = KafkaConn::connect(&new_address).await;
        assert_eq!(m.heartbeat().await, NONE, "generation 2 is still current");
    }
    let request = commit(&members[1], 2, &[(1, 250)]);
    let r: OffsetCommitResponse = members[1]
        .conn
        .send(ApiKey::OffsetCommit, 8, &request)
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, NONE);
    assert_eq!(
        fetch_offsets(&mut fresh).await,
        vec![(0, 100), (1, 250), (2, 300)]
    );

    for (_, b) in brokers {
        b.shutdown().await.expect("clean shutdown");
    }
    controller.shutdown().await.expect("controller stops");
}

fn commit_request(member: &Member, offsets: &[(i32, i64)]) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_generation_id_or_member_epoch(member.generation)
        .with_member_id(s(&member.id))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|(p, o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*o)
                        })
                        .collect(),
                ),
        ])
}

/// Processes of a controller and three brokers; dropping it kills them.
struct Processes {
    controller: broker_process::ControllerProcess,
    brokers: BTreeMap<i32, broker_process::BrokerProcess>,
    dir: tempfile::TempDir,
}

impl Processes {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (metadata, log) = (
            dir.path().join("metadata.json"),
            dir.path().join("controller.log"),
        );
        let controller = tokio::task::spawn_blocking(move || {
            broker_process::ControllerProcess::start(&metadata, "127.0.0.1:0", &log, &[])
        })
        .await
        .unwrap();
        let mut brokers = BTreeMap::new();
        for id in 0..3 {
            let (data, log) = (
                dir.path().join(format!("broker-{id}")),
                dir.path().join(format!("broker-{id}.log")),
            );
            let mut args = vec![
                "--broker-id".to_owned(),
                id.to_string(),
                "--replication-addr".to_owned(),
                "127.0.0.1:0".to_owned(),
                "--controller-addr".to_owned(),
                controller.addr.clone(),
            ];
            args.extend(GROUP_FLAGS.iter().map(|f| (*f).to_owned()));
            let broker = tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                broker_process::BrokerProcess::start(&data, &log, &args)
            })
            .await
            .unwrap();
            brokers.insert(id, broker);
        }
        Self {
            controller,
            brokers,
            dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_stable_group_when_the_coordinator_process_is_killed_should_resume_elsewhere_with_offsets_and_generation()
 {
    let mut cluster = Processes::start().await;
    let mut admin = rill_proto::client::client_client::ClientClient::connect(format!(
        "http://{}",
        cluster.brokers[&0].client_addr
    ))
    .await
    .expect("gRPC connect");
    admin
        .create_topic(CreateTopicRequest {
            name: TOPIC.into(),
            partitions: 3,
            replication_factor: 3,
            config: Default::default(),
        })
        .await
        .expect("topic created");
    let (coordinator, address) =
        find_coordinator(&cluster.brokers[&0].kafka_addr, &[0, 1, 2]).await;
    assert_eq!(address, cluster.brokers[&coordinator].kafka_addr);
    wait_loaded(&address).await;

    let ((a, ja), (b, jb)) = tokio::join!(Member::join_new(&address), Member::join_new(&address));
    let mut members = [a, b];
    assert_eq!((ja.generation_id, jb.generation_id), (1, 1));
    let leader = ja.leader.to_string();
    let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    let plan = assignment_for(&ids);
    let none = BTreeMap::new();
    let [m0, m1] = &mut members;
    let (p0, p1) = (
        if m0.id == leader { &plan } else { &none },
        if m1.id == leader { &plan } else { &none },
    );
    let (s0, s1) = tokio::join!(m0.sync(p0), m1.sync(p1));
    assert_eq!(s0.assignment, plan[&m0.id]);
    assert_eq!(s1.assignment, plan[&m1.id]);
    let request = commit_request(m0, &[(0, 10), (1, 20), (2, 30)]);
    let r: OffsetCommitResponse = m0.conn.send(ApiKey::OffsetCommit, 8, &request).await;
    assert!(
        r.topics[0].partitions.iter().all(|p| p.error_code == NONE),
        "{r:?}"
    );

    // SIGKILL the coordinator: its lease expires, leadership of the
    // offsets partition moves to an in-sync replica, which loads the group.
    let killed = cluster.brokers.remove(&coordinator).unwrap();
    tokio::task::spawn_blocking(move || killed.kill9())
        .await
        .unwrap();
    let alive: Vec<i32> = cluster.brokers.keys().copied().collect();
    let (new_coordinator, new_address) =
        find_coordinator(&cluster.brokers[&alive[0]].kafka_addr, &alive).await;
    assert_ne!(new_coordinator, coordinator);
    wait_loaded(&new_address).await;
    let mut fresh = KafkaConn::connect(&new_address).await;
    assert_eq!(
        fetch_offsets(&mut fresh).await,
        vec![(0, 10), (1, 20), (2, 30)],
        "acknowledged commits survive a SIGKILL of the coordinator"
    );
    let after = describe(&mut fresh).await;
    assert_eq!(after.group_state.as_str(), "Stable");
    assert_eq!(after.members.len(), 2);
    for m in &mut members {
        m.conn = KafkaConn::connect(&new_address).await;
        assert_eq!(m.heartbeat().await, NONE, "generation 1 is still current");
        let again = m.sync(&BTreeMap::new()).await;
        assert_eq!(again.assignment, plan[&m.id], "assignment kept");
    }
    let request = commit_request(&members[1], &[(2, 31)]);
    let r: OffsetCommitResponse = members[1]
        .conn
        .send(ApiKey::OffsetCommit, 8, &request)
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, NONE);
    assert_eq!(
        fetch_offsets(&mut fresh).await,
        vec![(0, 10), (1, 20), (2, 31)]
    );
    // Keep the controller and the temporary directory alive to the end.
    let _ = (&cluster.controller, cluster.dir.path());
}

/// A ConsumerGroupHeartbeat (v1) of `member` at `epoch`, owning `owned`
/// partitions of the topic (id `topic_id`); a join (epoch 0) subscribes.
fn consumer_heartbeat(
    member: &str,
    epoch: i32,
    topic_id: uuid::Uuid,
    owned: &[i32],
) -> ConsumerGroupHeartbeatRequest {
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    let mut r = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(REBALANCE_MS)
        .with_topic_partitions(Some(vec![
            TopicPartitions::default()
                .with_topic_id(topic_id)
                .with_partitions(owned.to_vec()),
        ]));
    if epoch == 0 {
        r = r.with_subscribed_topic_names(Some(vec![TopicName(s(TOPIC))]));
    }
    r
}

fn owned_of(r: &ConsumerGroupHeartbeatResponse) -> Option<Vec<i32>> {
    r.assignment.as_ref().map(|a| {
        let mut ps: Vec<i32> = a
            .topic_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().copied())
            .collect();
        ps.sort_unstable();
        ps
    })
}

async fn consumer_describe(
    conn: &mut KafkaConn,
) -> consumer_group_describe_response::DescribedGroup {
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(GROUP))]);
    let r: ConsumerGroupDescribeResponse =
        conn.send(ApiKey::ConsumerGroupDescribe, 1, &request).await;
    r.groups.into_iter().next().expect("one group")
}

/// The consumer protocol (KIP-848) across a coordinator failover: two
/// members reconcile to a disjoint split of 3 partitions, commit with their
/// member epochs; the coordinator's broker shuts down; the new coordinator
/// rebuilt the group from `__consumer_offsets`, so both members carry on
/// with the same epochs and assignments (no FENCED_MEMBER_EPOCH, no new
/// assignment), ConsumerGroupDescribe shows the same group, and the
/// offsets are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_consumer_protocol_group_when_the_coordinator_goes_away_should_keep_epochs_assignments_and_offsets()
 {
    let dir = tempfile::tempdir().unwrap();
    let controller = start_controller(dir.path()).await;
    let addr = controller.grpc_addr.to_string();
    let mut brokers = BTreeMap::new();
    for id in 0..3 {
        brokers.insert(id, start_broker(dir.path(), id, &addr).await);
    }
    let mut admin = common::connect(&brokers[&0]).await;
    admin
        .create_topic(CreateTopicRequest {
            name: TOPIC.into(),
            partitions: 3,
            replication_factor: 3,
            config: Default::default(),
        })
        .await
        .expect("topic created");
    let (coordinator, address) =
        find_coordinator(&brokers[&0].kafka_addr.to_string(), &[0, 1, 2]).await;
    wait_loaded(&address).await;
    let mut conn = KafkaConn::connect(&address).await;
    let md: MetadataResponse = conn
        .send(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(s(TOPIC)))),
            ])),
        )
        .await;
    let topic_id = md.topics[0].topic_id;
    assert!(!topic_id.is_nil());

    // Both join; they heartbeat as clients do until each owns a disjoint,
    // complete share at the same epoch.
    let mut state: BTreeMap<String, (i32, Vec<i32>)> = BTreeMap::new();
    for m in ["m-a", "m-b"] {
        let r: ConsumerGroupHeartbeatResponse = conn
            .send(
                ApiKey::ConsumerGroupHeartbeat,
                1,
                &consumer_heartbeat(m, 0, topic_id, &[]),
            )
            .await;
        assert_eq!(r.error_code, NONE, "{r:?}");
        state.insert(
            m.to_owned(),
            (r.member_epoch, owned_of(&r).unwrap_or_default()),
        );
    }
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        for (m, (epoch, owned)) in state.iter_mut() {
            let r: ConsumerGroupHeartbeatResponse = conn
                .send(
                    ApiKey::ConsumerGroupHeartbeat,
                    1,
                    &consumer_heartbeat(m, *epoch, topic_id, owned),
                )
                .await;
            assert_eq!(r.error_code, NONE, "{m}: {r:?}");
            *epoch = r.member_epoch;
            if let Some(o) = owned_of(&r) {
                *owned = o;
            }
        }
        let (ea, oa) = &state["m-a"];
        let (eb, ob) = &state["m-b"];
        let mut all: Vec<i32> = oa.iter().chain(ob).copied().collect();
        all.sort_unstable();
        if ea == eb && all == [0, 1, 2] && !oa.is_empty() && !ob.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never settled: {state:?}"
        );
        tokio::time::sleep(POLL).await;
    }

    // Each commits its partitions with its member epoch (OffsetCommit v9).
    for (m, (epoch, owned)) in &state {
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_generation_id_or_member_epoch(*epoch)
            .with_member_id(s(m))
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(TOPIC)))
                    .with_partitions(
                        owned
                            .iter()
                            .map(|p| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(i64::from(*p) * 10 + 7)
                            })
                            .collect(),
                    ),
            ]);
        let r: OffsetCommitResponse = conn.send(ApiKey::OffsetCommit, 9, &request).await;
        assert!(
            r.topics[0].partitions.iter().all(|p| p.error_code == NONE),
            "{r:?}"
        );
    }
    let before = consumer_describe(&mut conn).await;
    assert_eq!(
        (before.error_code, before.group_state.as_str()),
        (NONE, "Stable")
    );

    brokers
        .remove(&coordinator)
        .unwrap()
        .shutdown()
        .await
        .expect("clean shutdown");
    let alive: Vec<i32> = brokers.keys().copied().collect();
    let (new_coordinator, new_address) =
        find_coordinator(&brokers[&alive[0]].kafka_addr.to_string(), &alive).await;
    assert_ne!(new_coordinator, coordinator);
    wait_loaded(&new_address).await;
    let mut conn = KafkaConn::connect(&new_address).await;
    let after = consumer_describe(&mut conn).await;
    assert_eq!(after.error_code, NONE, "{after:?}");
    assert_eq!(after.group_epoch, before.group_epoch);
    assert_eq!(after.assignment_epoch, before.assignment_epoch);
    let members = |g: &consumer_group_describe_response::DescribedGroup| {
        let mut v: Vec<(String, i32, Vec<i32>)> = g
            .members
            .iter()
            .map(|m| {
                let mut ps: Vec<i32> = m
                    .assignment
                    .topic_partitions
                    .iter()
                    .flat_map(|t| t.partitions.iter().copied())
                    .collect();
                ps.sort_unstable();
                (m.member_id.to_string(), m.member_epoch, ps)
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        members(&after),
        members(&before),
        "members, epochs, assignments survive"
    );
    // The members carry on: same epoch, no new assignment.
    for (m, (epoch, owned)) in &state {
        let r: ConsumerGroupHeartbeatResponse = conn
            .send(
                ApiKey::ConsumerGroupHeartbeat,
                1,
                &consumer_heartbeat(m, *epoch, topic_id, owned),
            )
            .await;
        assert_eq!((r.error_code, r.member_epoch), (NONE, *epoch), "{m}: {r:?}");
        assert!(
            owned_of(&r).is_none_or(|o| &o == owned),
            "{m} keeps its partitions: {r:?}"
        );
    }
    assert_eq!(
        fetch_offsets(&mut conn).await,
        vec![(0, 7), (1, 17), (2, 27)],
        "offsets committed with member epochs survive"
    );

    for (_, b) in brokers {
        b.shutdown().await.expect("clean shutdown");
    }
    controller.shutdown().await.expect("controller stops");
}
