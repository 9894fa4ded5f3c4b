//! The consumer protocol state machine: joins, reconciliation without
//! double ownership, fencing, leaving, timers, static members, records.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::*;
use crate::group::records::{ConsumerKey, ConsumerValue};

const G: &str = "g";

fn topic() -> Uuid {
    Uuid::from_u128(42)
}

fn catalog(partitions: i32) -> BTreeMap<String, (Uuid, i32)> {
    BTreeMap::from([("t".to_owned(), (topic(), partitions))])
}

struct Harness {
    table: GroupTable,
    catalog: BTreeMap<String, (Uuid, i32)>,
    now: i64,
    /// Every record written, in order.
    log: Vec<(ConsumerKey, Option<ConsumerValue>)>,
}

impl Harness {
    fn new(partitions: i32) -> Self {
        Self {
            table: GroupTable::new(Limits::default()),
            catalog: catalog(partitions),
            now: 1_000,
            log: Vec::new(),
        }
    }

    fn send(&mut self, req: ConsumerHeartbeat) -> Result<ConsumerHeartbeatReply, GroupError> {
        let (r, fx) = self
            .table
            .consumer_heartbeat(self.now, G, req, &self.catalog);
        self.log.extend(fx.consumer);
        self.check_no_double_ownership();
        r
    }

    fn join(&mut self, id: &str) -> ConsumerHeartbeatReply {
        self.send(ConsumerHeartbeat {
            member_id: id.to_owned(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_names: Some(vec!["t".to_owned()]),
            owned: Some(Partitions::new()),
            ..ConsumerHeartbeat::default()
        })
        .expect("join")
    }

    fn beat(&mut self, id: &str, epoch: i32, owned: Option<&Partitions>) -> ConsumerHeartbeatReply {
        self.send(ConsumerHeartbeat {
            member_id: id.to_owned(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: owned.cloned(),
            ..ConsumerHeartbeat::default()
        })
        .expect("heartbeat")
    }

    fn group(&self) -> &ConsumerGroup {
        self.table.groups[G]
            .consumer
            .as_deref()
            .expect("consumer group")
    }

    fn check_no_double_ownership(&self) {
        let Some(c) = self.table.groups.get(G).and_then(|g| g.consumer.as_deref()) else {
            return;
        };
        let mut seen = BTreeSet::new();
        for m in c.members.values() {
            for tp in pairs(&m.assigned).chain(pairs(&m.pending_revocation)) {
                assert!(seen.insert(tp), "{tp:?} owned twice: {:?}", c.members);
            }
        }
    }

    /// A member heartbeats as a client would: it answers a revocation by
    /// dropping the partitions and reporting what it owns.
    fn settle(&mut self, members: &mut BTreeMap<String, (i32, Partitions)>) {
        for _ in 0..10 {
            let ids: Vec<String> = members.keys().cloned().collect();
            for id in ids {
                let (epoch, owned) = members[&id].clone();
                let r = self.beat(&id, epoch, Some(&owned));
                let owned = r.assignment.unwrap_or(owned);
                members.insert(id, (r.member_epoch, owned));
            }
            if self.group().state_name() == "Stable" {
                return;
            }
        }
        panic!("not stable: {:?}", self.group().members);
    }
}

fn count(p: &Partitions) -> usize {
    p.values().map(BTreeSet::len).sum()
}

#[test]
fn given_a_first_member_when_it_joins_should_get_every_partition_at_epoch_one() {
    let mut h = Harness::new(12);
    let r = h.join("a");
    assert_eq!(r.member_epoch, 1);
    assert_eq!(count(&r.assignment.unwrap()), 12);
    assert_eq!(h.group().state_name(), "Stable");
}

#[test]
fn given_a_member_joining_when_partitions_move_should_never_give_one_to_two_members() {
    let mut h = Harness::new(12);
    let a = h.join("a");
    let a_owned = a.assignment.clone().unwrap();
    let b = h.join("b");
    // b's target is owned by a: it gets nothing yet.
    assert_eq!(b.member_epoch, 2);
    assert_eq!(count(b.assignment.as_ref().unwrap()), 0);
    assert_eq!(h.group().state_name(), "Reconciling");
    assert!(b.heartbeat_interval_ms < Limits::default().consumer_heartbeat_interval_ms);
    // a is told to give up half and keeps its epoch until it has.
    let r = h.beat("a", 1, Some(&a_owned));
    assert_eq!(r.member_epoch, 1);
    let kept = r.assignment.unwrap();
    assert_eq!(count(&kept), 6);
    // b still waits while a has not confirmed.
    let r = h.beat("b", 2, Some(&Partitions::new()));
    assert!(r.assignment.is_none());
    // a confirms; it moves to epoch 2.
    let r = h.beat("a", 1, Some(&kept));
    assert_eq!(r.member_epoch, 2);
    // b gets the released half.
    let r = h.beat("b", 2, Some(&Partitions::new()));
    assert_eq!(count(&r.assignment.unwrap()), 6);
    assert_eq!(h.group().state_name(), "Stable");
}

#[test]
fn given_a_third_member_when_settled_should_balance_four_each() {
    let mut h = Harness::new(12);
    let mut members = BTreeMap::new();
    for id in ["a", "b", "c"] {
        let r = h.join(id);
        members.insert(id.to_owned(), (r.member_epoch, r.assignment.unwrap()));
        h.settle(&mut members);
    }
    for (epoch, owned) in members.values() {
        assert_eq!(*epoch, h.group().epoch);
        assert_eq!(count(owned), 4);
    }
}

#[test]
fn given_a_wrong_epoch_when_heartbeating_should_fence_and_let_the_member_rejoin() {
    let mut h = Harness::new(4);
    let r = h.join("a");
    let err = h
        .send(ConsumerHeartbeat {
            member_id: "a".into(),
            member_epoch: 7,
            rebalance_timeout_ms: -1,
            ..ConsumerHeartbeat::default()
        })
        .unwrap_err();
    assert!(matches!(
        err,
        GroupError::FencedMemberEpoch {
            given: 7,
            current: 1
        }
    ));
    // Unknown members are told so.
    let err = h
        .send(ConsumerHeartbeat {
            member_id: "zz".into(),
            member_epoch: 1,
            rebalance_timeout_ms: -1,
            ..ConsumerHeartbeat::default()
        })
        .unwrap_err();
    assert!(matches!(err, GroupError::UnknownMemberId(_)));
    // Rejoining with epoch 0 gives the partitions back.
    let again = h.join("a");
    assert_eq!(again.assignment, r.assignment);
    assert_eq!(again.member_epoch, 1, "nothing changed in the target");
}

#[test]
fn given_a_lost_answer_when_the_member_heartbeats_with_its_previous_epoch_should_accept_it() {
    let mut h = Harness::new(4);
    let a = h.join("a");
    let owned_a = a.assignment.unwrap();
    h.join("b");
    let r = h.beat("a", 1, Some(&owned_a));
    let kept = r.assignment.unwrap();
    let r = h.beat("a", 1, Some(&kept));
    assert_eq!(r.member_epoch, 2);
    // The answer with epoch 2 was lost: a heartbeats with epoch 1 again.
    let r = h.beat("a", 1, Some(&kept));
    assert_eq!(r.member_epoch, 2);
}

#[test]
fn given_a_member_leaving_when_the_other_heartbeats_should_get_everything() {
    let mut h = Harness::new(6);
    let mut members = BTreeMap::new();
    for id in ["a", "b"] {
        let r = h.join(id);
        members.insert(id.to_owned(), (r.member_epoch, r.assignment.unwrap()));
        h.settle(&mut members);
    }
    let (epoch_b, _) = members["b"].clone();
    let r = h
        .send(ConsumerHeartbeat {
            member_id: "b".into(),
            member_epoch: LEAVE_EPOCH,
            ..ConsumerHeartbeat::default()
        })
        .unwrap();
    assert_eq!(r.member_epoch, LEAVE_EPOCH);
    let (epoch_a, owned_a) = members["a"].clone();
    let r = h.beat("a", epoch_a, Some(&owned_a));
    assert!(r.member_epoch > epoch_b);
    assert_eq!(count(&r.assignment.unwrap()), 6);
    assert!(h.log.iter().any(
        |(k, v)| matches!(k, ConsumerKey::Member { member, .. } if member == "b") && v.is_none()
    ));
}

#[test]
fn given_a_silent_member_when_its_session_expires_should_be_removed() {
    let mut h = Harness::new(2);
    h.join("a");
    h.now += i64::from(Limits::default().consumer_session_timeout_ms) - 1;
    let fx = h.table.tick(h.now);
    assert!(fx.consumer.is_empty());
    h.now += 1;
    let fx = h.table.tick(h.now);
    assert!(!fx.consumer.is_empty());
    assert_eq!(h.group().member_count(), 0);
    assert_eq!(h.table.list()[0].state, "Empty");
}

#[test]
fn given_a_member_that_does_not_revoke_when_its_rebalance_timeout_passes_should_be_removed() {
    let mut h = Harness::new(4);
    let a = h.join("a");
    h.join("b");
    let r = h.beat("a", 1, a.assignment.as_ref());
    assert_eq!(
        h.group().members["a"].state,
        MemberState::UnrevokedPartitions
    );
    assert_eq!(count(&r.assignment.unwrap()), 2);
    h.now += 30_000;
    // b keeps heartbeating; a never confirms.
    h.beat("b", 2, Some(&Partitions::new()));
    h.table.tick(h.now);
    assert!(h.group().member("a").is_none());
}

#[test]
fn given_a_static_member_when_it_restarts_should_get_its_partitions_back_without_a_new_epoch() {
    let mut h = Harness::new(4);
    let join = |id: &str| ConsumerHeartbeat {
        member_id: id.to_owned(),
        member_epoch: 0,
        instance_id: Some("i1".into()),
        rebalance_timeout_ms: 30_000,
        subscribed_names: Some(vec!["t".into()]),
        owned: Some(Partitions::new()),
        ..ConsumerHeartbeat::default()
    };
    let first = h.send(join("a1")).unwrap();
    // Another member with the same instance id while a1 is in: refused.
    assert!(matches!(
        h.send(join("a2")).unwrap_err(),
        GroupError::UnreleasedInstanceId(_)
    ));
    h.send(ConsumerHeartbeat {
        member_id: "a1".into(),
        member_epoch: STATIC_LEAVE_EPOCH,
        instance_id: Some("i1".into()),
        ..ConsumerHeartbeat::default()
    })
    .unwrap();
    let epoch = h.group().epoch;
    let again = h.send(join("a2")).unwrap();
    assert_eq!(again.assignment, first.assignment);
    assert_eq!(again.member_epoch, first.member_epoch);
    assert_eq!(h.group().epoch, epoch);
    assert!(h.group().member("a1").is_none());
}

#[test]
fn given_the_written_records_when_replayed_should_rebuild_the_group() {
    let mut h = Harness::new(12);
    let mut members = BTreeMap::new();
    for id in ["a", "b", "c"] {
        let r = h.join(id);
        members.insert(id.to_owned(), (r.member_epoch, r.assignment.unwrap()));
        h.settle(&mut members);
    }
    let loaded = GroupTable::load(
        Limits::default(),
        h.log.iter().map(|(key, value)| Loaded::Consumer {
            key: key.clone(),
            value: value.clone(),
        }),
        h.now,
    );
    let before = h.group();
    let after = loaded.groups[G].consumer.as_deref().unwrap();
    assert_eq!(after.epoch, before.epoch);
    assert_eq!(after.assignment_epoch, before.assignment_epoch);
    assert_eq!(after.target, before.target);
    assert_eq!(
        after.members.keys().collect::<Vec<_>>(),
        before.members.keys().collect::<Vec<_>>()
    );
    for (id, m) in &before.members {
        let n = &after.members[id];
        assert_eq!(
            (n.epoch, &n.assigned, n.state),
            (m.epoch, &m.assigned, m.state)
        );
    }
    // The members carry on with the new coordinator without a new epoch.
    let mut h2 = Harness {
        table: loaded,
        catalog: catalog(12),
        now: h.now,
        log: Vec::new(),
    };
    let (epoch, owned) = members["a"].clone();
    let r = h2.beat("a", epoch, Some(&owned));
    assert_eq!(r.member_epoch, epoch);
    assert!(r.assignment.is_none() || r.assignment == Some(owned));
}

#[test]
fn given_offset_commits_when_the_epoch_differs_should_be_stale_or_fenced() {
    let mut h = Harness::new(2);
    h.join("a");
    assert!(h.table.validate_commit(h.now, G, "a", None, 1).is_ok());
    assert!(matches!(
        h.table.validate_commit(h.now, G, "a", None, 0),
        Err(GroupError::StaleMemberEpoch { .. })
    ));
    assert!(matches!(
        h.table.validate_commit(h.now, G, "a", None, 2),
        Err(GroupError::FencedMemberEpoch { .. })
    ));
    assert!(matches!(
        h.table.validate_commit(h.now, G, "x", None, 1),
        Err(GroupError::UnknownMemberId(_))
    ));
    // An admin commit while members are in is refused.
    assert!(h.table.validate_commit(h.now, G, "", None, -1).is_err());
}

#[test]
fn given_an_unknown_assignor_or_bad_regex_when_joining_should_be_refused() {
    let mut h = Harness::new(2);
    let err = h
        .send(ConsumerHeartbeat {
            member_id: "a".into(),
            server_assignor: Some("sticky".into()),
            subscribed_names: Some(vec!["t".into()]),
            ..ConsumerHeartbeat::default()
        })
        .unwrap_err();
    assert!(matches!(err, GroupError::UnsupportedAssignor(_)));
    let err = h
        .send(ConsumerHeartbeat {
            member_id: "a".into(),
            subscribed_regex: Some("(".into()),
            ..ConsumerHeartbeat::default()
        })
        .unwrap_err();
    assert!(matches!(err, GroupError::InvalidRegex(_)));
    assert!(
        h.table.groups.is_empty(),
        "a refused join leaves nothing behind"
    );
}

#[test]
fn given_a_regex_subscription_when_topics_match_should_assign_them_but_not_internal_ones() {
    let mut h = Harness::new(2);
    h.catalog.insert("t2".into(), (Uuid::from_u128(43), 3));
    h.catalog
        .insert("__consumer_offsets".into(), (Uuid::from_u128(44), 50));
    let r = h
        .send(ConsumerHeartbeat {
            member_id: "a".into(),
            rebalance_timeout_ms: 1000,
            subscribed_regex: Some("t.*|__.*".into()),
            owned: Some(Partitions::new()),
            ..ConsumerHeartbeat::default()
        })
        .unwrap();
    assert_eq!(count(&r.assignment.unwrap()), 5);
}

#[test]
fn given_range_asked_by_the_members_when_assigning_should_give_contiguous_ranges() {
    let mut h = Harness::new(4);
    for id in ["a", "b"] {
        h.send(ConsumerHeartbeat {
            member_id: id.into(),
            rebalance_timeout_ms: 1000,
            subscribed_names: Some(vec!["t".into()]),
            server_assignor: Some("range".into()),
            owned: Some(Partitions::new()),
            ..ConsumerHeartbeat::default()
        })
        .unwrap();
    }
    let d = h.table.consumer_describe(G).unwrap();
    assert_eq!(d.assignor, "range");
    assert_eq!(d.members[0].target[&topic()], BTreeSet::from([0, 1]));
    assert_eq!(d.members[1].target[&topic()], BTreeSet::from([2, 3]));
}

/// A classic member's JoinGroup with a ConsumerProtocol subscription of
/// `t`, owning `owned`.
fn classic_join(member_id: &str, owned: &[i32]) -> JoinRequest {
    use bytes::BufMut;
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(vec![StrBytes::from_static_str("t")])
        .with_owned_partitions(vec![
            TopicPartition::default()
                .with_topic(kafka_protocol::messages::TopicName(
                    StrBytes::from_static_str("t"),
                ))
                .with_partitions(owned.to_vec()),
        ]);
    let mut buf = bytes::BytesMut::new();
    buf.put_i16(1);
    sub.encode(&mut buf, 1).unwrap();
    JoinRequest {
        member_id: member_id.to_owned(),
        instance_id: None,
        protocol_type: "consumer".into(),
        protocols: vec![Protocol {
            name: "range".into(),
            metadata: buf.freeze(),
        }],
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        client_id: "classic".into(),
        client_host: String::new(),
        require_known_member_id: false,
        supports_skip_assignment: false,
    }
}

/// Sends a classic JoinGroup; its records go to the harness's log.
fn join_classic(h: &mut Harness, request: RequestId, req: JoinRequest) -> JoinReply {
    let fx = h.table.join_in(h.now, request, G, req, &h.catalog);
    h.log.extend(fx.consumer.clone());
    match &fx.replies[0].1 {
        Reply::Join(j) => j.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn given_a_consumer_group_when_a_classic_member_joins_should_share_partitions_through_join_sync_and_heartbeat()
 {
    let mut h = Harness::new(4);
    let a = h.join("a");
    let a_owned = a.assignment.unwrap();
    let j = join_classic(&mut h, 1, classic_join("", &[]));
    assert!(j.error.is_none(), "{j:?}");
    assert!(j.leader.is_empty(), "no client-side assignment");
    assert_eq!(j.protocol.as_deref(), Some("range"));
    let (c, generation) = (j.member_id.clone(), j.generation);
    assert_eq!(generation, h.group().epoch);
    let sync = |h: &mut Harness, generation: i32| {
        let fx = h.table.sync(
            h.now,
            2,
            G,
            SyncRequest {
                member_id: c.clone(),
                instance_id: None,
                generation,
                protocol_type: Some("consumer".into()),
                protocol: Some("range".into()),
                assignments: vec![],
            },
        );
        match &fx.replies[0].1 {
            Reply::Sync(s) => {
                assert!(s.error.is_none(), "{s:?}");
                super::super::consumer_classic::decode_assignment(&s.assignment).unwrap()
            }
            other => panic!("{other:?}"),
        }
    };
    // Everything is still a's: nothing yet, and no reason to rejoin.
    assert_eq!(sync(&mut h, generation), []);
    assert_eq!(h.table.heartbeat(h.now, G, &c, None, generation), Ok(()));
    // a gives up half; the classic member is told to join again.
    let kept = h.beat("a", 1, Some(&a_owned)).assignment.unwrap();
    h.beat("a", 1, Some(&kept));
    assert_eq!(
        h.table.heartbeat(h.now, G, &c, None, generation),
        Err(GroupError::RebalanceInProgress)
    );
    let j = join_classic(&mut h, 3, classic_join(&c, &[]));
    assert_eq!(sync(&mut h, j.generation).len(), 2);
    assert_eq!(h.table.heartbeat(h.now, G, &c, None, j.generation), Ok(()));
    assert_eq!(h.group().state_name(), "Stable");
    assert!(matches!(
        h.table
            .validate_commit(h.now, G, &c, None, j.generation - 1),
        Err(GroupError::IllegalGeneration { .. })
    ));
    let d = h.table.consumer_describe(G).unwrap();
    assert_eq!(d.members.iter().filter(|m| m.classic).count(), 1);
    assert!(matches!(
        h.table.delete(G),
        Err(GroupError::NonEmptyGroup(_))
    ));
    let listed = h.table.list();
    assert_eq!(
        (listed[0].group_type, listed[0].state),
        ("consumer", "Stable")
    );
    assert!(h.table.describe(G).is_none());
    // Its records make it classic again after a failover.
    let loaded = GroupTable::load(
        Limits::default(),
        h.log.iter().map(|(key, value)| Loaded::Consumer {
            key: key.clone(),
            value: value.clone(),
        }),
        h.now,
    );
    let m = loaded.groups[G]
        .consumer
        .as_deref()
        .unwrap()
        .member(&c)
        .unwrap()
        .clone();
    assert_eq!(m.classic.map(|c| c.session_timeout_ms), Some(10_000));
    // Leaving removes it.
    let (results, _) = h.table.leave(
        h.now,
        G,
        &[Leaving {
            member_id: c.clone(),
            instance_id: None,
        }],
    );
    assert_eq!(results, [Ok(())]);
    assert_eq!(h.group().member_count(), 1);
}

#[test]
fn given_a_commit_sent_before_the_epoch_moved_when_validated_should_accept_partitions_owned_since_then()
 {
    let mut h = Harness::new(4);
    let a = h.join("a");
    let owned = a.assignment.unwrap();
    h.join("b");
    // a gives up two partitions and moves to epoch 2, keeping t-0 and t-1.
    let kept = h.beat("a", 1, Some(&owned)).assignment.unwrap();
    assert_eq!(h.beat("a", 1, Some(&kept)).member_epoch, 2);
    let mine: Vec<(String, i32)> = kept[&topic()]
        .iter()
        .map(|p| ("t".to_owned(), *p))
        .collect();
    let gone: Vec<(String, i32)> = owned[&topic()]
        .difference(&kept[&topic()])
        .map(|p| ("t".to_owned(), *p))
        .collect();
    let check = |h: &mut Harness, member: &str, epoch: i32, parts: &[(String, i32)]| {
        h.table
            .validate_commit_of(h.now, G, member, None, epoch, parts)
    };
    assert_eq!(check(&mut h, "a", 1, &mine), Ok(()), "owned since epoch 1");
    assert!(matches!(
        check(&mut h, "a", 1, &gone),
        Err(GroupError::StaleMemberEpoch { .. })
    ));
    assert!(matches!(
        check(&mut h, "a", 1, &[]),
        Err(GroupError::StaleMemberEpoch { .. })
    ));
    // b got its partitions at epoch 2: an epoch-1 commit of them is stale.
    let b = h.beat("b", 2, Some(&Partitions::new())).assignment.unwrap();
    let bs: Vec<(String, i32)> = b[&topic()].iter().map(|p| ("t".to_owned(), *p)).collect();
    assert_eq!(check(&mut h, "b", 2, &bs), Ok(()));
    assert!(check(&mut h, "b", 1, &bs).is_err());
}
