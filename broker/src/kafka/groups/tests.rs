//! The group APIs over a coordinator on a standalone broker's replica
//! manager (real partition logs in a temporary directory, no sockets): the
//! offsets topic is created on first FindCoordinator, members join, sync,
//! commit and fetch offsets through the Kafka API functions, and a second coordinator
//! started on the same logs (what a new coordinator does after a failover)
//! finds the same groups and offsets. Also: every response encodes at
//! every advertised version.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::group::state::Limits;
use crate::group::{ClientInfo, GroupCoordinator, GroupSettings};
use crate::kafka::dispatch::codec_versions;
use crate::log::LogConfig;
use crate::log::batch::test_util::batch;
use crate::metrics::Metrics;
use crate::partition::Acks;
use crate::partition::manager::{BrokerInfo, CreateTopic, ReplicaManager, Settings};
use crate::partition::store::TopicStore;

/// Longest any condition of these tests may take to hold.
const WAIT: Duration = Duration::from_secs(20);
const GROUP: &str = "orders-app";
const TOPIC: &str = "orders";
/// Kafka error codes the tests expect.
const NONE: i16 = 0;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const MEMBER_ID_REQUIRED: i16 = 79;
const ILLEGAL_GENERATION: i16 = 22;

fn manager(dir: &std::path::Path) -> Arc<ReplicaManager> {
    let settings = Settings {
        broker: BrokerInfo {
            id: 0,
            address: "127.0.0.1:9093".into(),
            kafka_address: "127.0.0.1:9092".into(),
            kafka_listeners: Default::default(),
            rack: None,
            fenced: false,
        },
        log_defaults: LogConfig::default(),
        auto_create_partitions: None,
        default_replication_factor: 1,
        max_request_bytes: 1 << 20,
    };
    let store = TopicStore::open(dir).expect("store");
    Arc::new(ReplicaManager::open(store, settings, Arc::new(Metrics::new())).expect("open"))
}

fn settings() -> GroupSettings {
    GroupSettings {
        offsets_topic_partitions: 3,
        limits: Limits {
            initial_rebalance_delay_ms: 50,
            min_session_timeout_ms: 100,
            ..Limits::default()
        },
        tick_interval: Duration::from_millis(10),
        ..GroupSettings::default()
    }
}

fn start(manager: &Arc<ReplicaManager>, stop: &CancellationToken) -> Arc<GroupCoordinator> {
    let c = GroupCoordinator::new(Arc::clone(manager), settings(), Arc::new(Metrics::new()));
    c.start(stop.child_token());
    c
}

fn client() -> ClientInfo {
    ClientInfo {
        client_id: "test-client".into(),
        client_host: "/127.0.0.1".into(),
        listener: None,
    }
}

fn coordinators(c: &GroupCoordinator) -> Coordinators<'_> {
    Coordinators {
        manager: c.manager(),
        groups: Some(c),
        txns: None,
        listener: None,
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

async fn wait_for<F: FnMut() -> bool>(what: &str, mut cond: F) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// FindCoordinator until it names this broker, then waits for the load.
async fn find_and_load(c: &Arc<GroupCoordinator>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = find_coordinator_in(
            &coordinators(c),
            3,
            FindCoordinatorRequest::default().with_key(s(GROUP)),
        );
        if r.error_code == NONE {
            assert_eq!(
                (r.node_id.0, r.host.as_str(), r.port),
                (0, "127.0.0.1", 9092)
            );
            break;
        }
        assert_eq!(r.error_code, COORDINATOR_NOT_AVAILABLE, "{r:?}");
        assert!(tokio::time::Instant::now() < deadline, "no coordinator");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let p = c.partition_of(GROUP).expect("offsets topic exists");
    wait_for("the group's partition to load", || c.is_active(p)).await;
}

fn join_request(member_id: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"subscription")),
        ])
}

/// A member joining from scratch at JoinGroup v5 (member id required).
async fn join(c: Arc<GroupCoordinator>) -> JoinGroupResponse {
    let first = join_group(&c, 5, join_request(""), &client()).await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    join_group(&c, 5, join_request(&first.member_id), &client()).await
}

fn commit(member: &str, generation: i32, offsets: &[(i32, i64)]) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
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
                                .with_committed_metadata(Some(s("m")))
                        })
                        .collect(),
                ),
        ])
}

async fn fetch_v8(c: &GroupCoordinator) -> Vec<(i32, i64, i16)> {
    let r = offset_fetch(
        c,
        8,
        OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(GROUP)))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(TopicName(s(TOPIC)))
                        .with_partition_indexes(vec![0, 1]),
                ])),
        ]),
        &client(),
    )
    .await;
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].error_code, NONE);
    r.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset, p.error_code))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_standalone_broker_when_members_join_commit_and_the_coordinator_restarts_should_keep_offsets_and_group()
 {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_topic(CreateTopic {
        name: TOPIC.into(),
        partitions: 2,
        replication_factor: 1,
        config: Default::default(),
    })
    .await
    .unwrap();
    let stop = CancellationToken::new();
    let first_stop = stop.child_token();
    let c = start(&m, &first_stop);
    find_and_load(&c).await;

    // Two members join at once; one generation; the leader assigns.
    let (ja, jb) = tokio::join!(join(Arc::clone(&c)), join(Arc::clone(&c)));
    assert_eq!((ja.error_code, jb.error_code), (NONE, NONE));
    assert_eq!((ja.generation_id, jb.generation_id), (1, 1));
    let (leader, follower) = if ja.leader == ja.member_id {
        (ja, jb)
    } else {
        (jb, ja)
    };
    assert_eq!(leader.members.len(), 2);
    let sync = |member: &JoinGroupResponse, assignments: Vec<SyncGroupRequestAssignment>| {
        SyncGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_generation_id(member.generation_id)
            .with_member_id(member.member_id.clone())
            .with_assignments(assignments)
    };
    let assignments = vec![
        SyncGroupRequestAssignment::default()
            .with_member_id(leader.member_id.clone())
            .with_assignment(Bytes::from_static(b"p0")),
        SyncGroupRequestAssignment::default()
            .with_member_id(follower.member_id.clone())
            .with_assignment(Bytes::from_static(b"p1")),
    ];
    let who = client();
    let (sl, sf) = tokio::join!(
        sync_group(&c, 3, sync(&leader, assignments), &who),
        sync_group(&c, 3, sync(&follower, vec![]), &who)
    );
    assert_eq!((sl.error_code, sf.error_code), (NONE, NONE));
    assert_eq!(sl.assignment, Bytes::from_static(b"p0"));
    assert_eq!(sf.assignment, Bytes::from_static(b"p1"));

    // Commits: members of the generation; a stale generation is fenced.
    let r = offset_commit(&c, 8, commit(&leader.member_id, 1, &[(0, 17)]), &client()).await;
    assert_eq!(r.topics[0].partitions[0].error_code, NONE);
    let r = offset_commit(&c, 8, commit(&follower.member_id, 1, &[(1, 23)]), &client()).await;
    assert_eq!(r.topics[0].partitions[0].error_code, NONE);
    let r = offset_commit(&c, 8, commit(&follower.member_id, 0, &[(1, 99)]), &client()).await;
    assert_eq!(r.topics[0].partitions[0].error_code, ILLEGAL_GENERATION);
    assert_eq!(fetch_v8(&c).await, vec![(0, 17, NONE), (1, 23, NONE)]);

    // Metrics: one Stable group, one rebalance, lag = HW - committed.
    let values: Vec<&[u8]> = vec![b"r"; 20];
    m.produce(TOPIC, 0, batch(&values), Acks::All, 0)
        .await
        .unwrap();
    c.refresh_gauges();
    let text = c.metrics().encode();
    for line in [
        "rill_consumer_groups{state=\"Stable\"} 1",
        "rill_group_rebalances_total 1",
        "rill_group_offset_commits_total 2",
        "rill_group_coordinator_partitions{status=\"active\"} 3",
        "rill_consumer_group_lag{group=\"orders-app\",partition=\"0\",topic=\"orders\"} 3",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }

    // The old OffsetFetch shape (v5) reads the same.
    let r = offset_fetch(
        &c,
        5,
        OffsetFetchRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(TOPIC)))
                    .with_partition_indexes(vec![1]),
            ])),
        &client(),
    )
    .await;
    assert_eq!(r.error_code, NONE);
    assert_eq!(r.topics[0].partitions[0].committed_offset, 23);
    assert_eq!(r.topics[0].partitions[0].metadata.as_deref(), Some("m"));

    let d = describe_groups(
        &c,
        5,
        DescribeGroupsRequest::default().with_groups(vec![GroupId(s(GROUP))]),
        &client(),
    )
    .await;
    assert_eq!(d.groups[0].group_state.as_str(), "Stable");
    assert_eq!(d.groups[0].protocol_data.as_str(), "range");
    assert_eq!(d.groups[0].members.len(), 2);
    assert_eq!(d.groups[0].members[0].client_id.as_str(), "test-client");

    // A new coordinator on the same logs (the old one stopped): same
    // generation, members, assignments and offsets.
    first_stop.cancel();
    let c2 = start(&m, &stop);
    find_and_load(&c2).await;
    assert_eq!(fetch_v8(&c2).await, vec![(0, 17, NONE), (1, 23, NONE)]);
    let hb = heartbeat(
        &c2,
        3,
        HeartbeatRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_generation_id(1)
            .with_member_id(follower.member_id.clone()),
        &client(),
    )
    .await;
    assert_eq!(hb.error_code, NONE);
    let again = sync_group(&c2, 3, sync(&follower, vec![]), &client()).await;
    assert_eq!(again.assignment, Bytes::from_static(b"p1"));
    let listed = list_groups(
        &c2,
        4,
        ListGroupsRequest::default().with_states_filter(vec![s("stable")]),
        &client(),
    )
    .await;
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].group_id.0.as_str(), GROUP);

    // Both leave (v3+ batch): Empty; then the group can be deleted.
    let leave = leave_group(
        &c2,
        4,
        LeaveGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_members(vec![
                MemberIdentity::default().with_member_id(leader.member_id.clone()),
                MemberIdentity::default().with_member_id(follower.member_id.clone()),
            ]),
        &client(),
    )
    .await;
    assert!(
        leave.members.iter().all(|m| m.error_code == NONE),
        "{leave:?}"
    );
    let del = delete_groups(
        &c2,
        2,
        DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(GROUP))]),
        &client(),
    )
    .await;
    assert_eq!(del.results[0].error_code, NONE);
    let after = describe_groups(
        &c2,
        6,
        DescribeGroupsRequest::default().with_groups(vec![GroupId(s(GROUP))]),
        &client(),
    )
    .await;
    assert_eq!(after.groups[0].error_code, 69, "GROUP_ID_NOT_FOUND");
    stop.cancel();
}

fn encodes<T: Encodable>(what: &str, message: &T, version: i16) {
    let mut buf = BytesMut::new();
    if let Err(e) = message.encode(&mut buf, version) {
        panic!("{what} v{version} does not encode: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_every_advertised_version_when_answering_should_encode() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let stop = CancellationToken::new();
    let c = start(&m, &stop);
    find_and_load(&c).await;
    let range = |key: ApiKey| {
        let served = codec_versions(key).expect("listed");
        served.min..=served.max
    };
    for v in range(ApiKey::FindCoordinator) {
        let req = FindCoordinatorRequest::default()
            .with_key(s(GROUP))
            .with_coordinator_keys(vec![s(GROUP), s("other")]);
        encodes(
            "FindCoordinator",
            &find_coordinator_in(&coordinators(&c), v, req),
            v,
        );
    }
    for v in range(ApiKey::JoinGroup) {
        // Errors and successes: an unknown member, then a real join.
        let r = join_group(&c, v, join_request("nobody"), &client()).await;
        encodes("JoinGroup", &r, v);
        let mut r = join_group(&c, v, join_request(""), &client()).await;
        if r.error_code == MEMBER_ID_REQUIRED {
            encodes("JoinGroup", &r, v);
            r = join_group(&c, v, join_request(&r.member_id), &client()).await;
        }
        encodes("JoinGroup", &r, v);
        let sync = SyncGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_generation_id(r.generation_id)
            .with_member_id(r.member_id.clone());
        let sv = v.min(5);
        encodes("SyncGroup", &sync_group(&c, sv, sync, &client()).await, sv);
        let leave = LeaveGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_member_id(if v.min(5) < 3 {
                r.member_id.clone()
            } else {
                StrBytes::default()
            })
            .with_members(vec![
                MemberIdentity::default().with_member_id(r.member_id.clone()),
            ]);
        let lv = v.min(5);
        encodes(
            "LeaveGroup",
            &leave_group(&c, lv, leave, &client()).await,
            lv,
        );
    }
    for v in range(ApiKey::Heartbeat) {
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_member_id(s("nobody"));
        encodes("Heartbeat", &heartbeat(&c, v, req, &client()).await, v);
    }
    for v in range(ApiKey::OffsetCommit) {
        let r = offset_commit(&c, v, commit("", -1, &[(0, 1)]), &client()).await;
        encodes("OffsetCommit", &r, v);
    }
    for v in range(ApiKey::OffsetFetch) {
        let req = OffsetFetchRequest::default()
            .with_group_id(if v < 8 {
                GroupId(s(GROUP))
            } else {
                GroupId::default()
            })
            .with_topics(if v < 8 {
                Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s(TOPIC)))
                        .with_partition_indexes(vec![0]),
                ])
            } else {
                None
            })
            .with_groups(if v >= 8 {
                vec![OffsetFetchRequestGroup::default().with_group_id(GroupId(s(GROUP)))]
            } else {
                vec![]
            });
        encodes("OffsetFetch", &offset_fetch(&c, v, req, &client()).await, v);
    }
    for v in range(ApiKey::ListGroups) {
        encodes(
            "ListGroups",
            &list_groups(&c, v, ListGroupsRequest::default(), &client()).await,
            v,
        );
    }
    for v in range(ApiKey::DescribeGroups) {
        let req = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(s(GROUP)), GroupId(s("unknown"))]);
        encodes(
            "DescribeGroups",
            &describe_groups(&c, v, req, &client()).await,
            v,
        );
    }
    for v in range(ApiKey::DeleteGroups) {
        let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("unknown"))]);
        encodes(
            "DeleteGroups",
            &delete_groups(&c, v, req, &client()).await,
            v,
        );
    }
    stop.cancel();
}
