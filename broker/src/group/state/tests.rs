//! The group state machine under a fake clock: join/sync/heartbeat/leave,
//! the initial rebalance delay, session, rebalance and sync timeouts,
//! static membership, generation fencing of heartbeats and commits, and
//! the persistence round trip (records written, reloaded, same state).

use std::collections::HashMap;

use bytes::Bytes;

use super::*;
use crate::group::error::GroupError;
use crate::group::records::{self, CommittedOffset, LogRecord, RecordKey};

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;
const DELAY_MS: i64 = 3_000;
const GROUP: &str = "g";
const START: i64 = 1_000_000;

fn limits() -> Limits {
    Limits {
        initial_rebalance_delay_ms: DELAY_MS,
        min_session_timeout_ms: 1_000,
        max_session_timeout_ms: 60_000,
        ..Limits::default()
    }
}

fn protocols(names: &[&str]) -> Vec<Protocol> {
    names
        .iter()
        .map(|n| Protocol {
            name: (*n).to_owned(),
            metadata: Bytes::from(format!("meta-{n}")),
        })
        .collect()
}

/// A table, a fake clock, and everything the state machine asked for.
struct Harness {
    table: GroupTable,
    now: i64,
    next: RequestId,
    replies: HashMap<RequestId, Reply>,
    /// Stores not yet acknowledged, oldest first.
    stores: Vec<Store>,
    /// Every group record written, in order (for the round trip).
    log: Vec<(RecordKey, Option<Bytes>)>,
    rebalances: u64,
}

impl Harness {
    fn new() -> Self {
        Self {
            table: GroupTable::new(limits()),
            now: START,
            next: 1,
            replies: HashMap::new(),
            stores: Vec::new(),
            log: Vec::new(),
            rebalances: 0,
        }
    }

    fn apply(&mut self, fx: Effects) {
        for (id, r) in fx.replies {
            assert!(
                self.replies.insert(id, r).is_none(),
                "request {id} answered twice"
            );
        }
        for s in &fx.stores {
            self.log.push((
                RecordKey::Group {
                    group: s.group.clone(),
                },
                Some(records::encode_group(&s.value)),
            ));
        }
        for k in &fx.tombstones {
            self.log.push((k.clone(), None));
        }
        self.stores.extend(fx.stores);
        self.rebalances += fx.rebalances;
    }

    fn request(&mut self) -> RequestId {
        self.next += 1;
        self.next
    }

    fn join_req(&self, member_id: &str, instance: Option<&str>, names: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_owned(),
            instance_id: instance.map(str::to_owned),
            protocol_type: "consumer".to_owned(),
            protocols: protocols(names),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            client_id: "client".to_owned(),
            client_host: "/127.0.0.1".to_owned(),
            require_known_member_id: true,
            supports_skip_assignment: true,
        }
    }

    fn join_with(&mut self, req: JoinRequest) -> RequestId {
        let id = self.request();
        let fx = self.table.join(self.now, id, GROUP, req);
        self.apply(fx);
        id
    }

    fn join(&mut self, member_id: &str) -> RequestId {
        let req = self.join_req(member_id, None, &["range"]);
        self.join_with(req)
    }

    /// A new dynamic member: MEMBER_ID_REQUIRED, then the real join.
    /// Returns (member id, parked join request).
    fn join_new(&mut self) -> (String, RequestId) {
        let first = self.join("");
        let r = self.join_reply(first);
        assert_eq!(r.error, Some(GroupError::MemberIdRequired));
        assert!(r.member_id.starts_with("client-"), "{}", r.member_id);
        let id = self.join(&r.member_id);
        (r.member_id, id)
    }

    fn join_reply(&mut self, id: RequestId) -> JoinReply {
        match self.replies.remove(&id) {
            Some(Reply::Join(r)) => r,
            other => panic!("request {id}: expected a join answer, got {other:?}"),
        }
    }

    fn sync_reply(&mut self, id: RequestId) -> SyncReply {
        match self.replies.remove(&id) {
            Some(Reply::Sync(r)) => r,
            other => panic!("request {id}: expected a sync answer, got {other:?}"),
        }
    }

    fn parked(&self, id: RequestId) -> bool {
        !self.replies.contains_key(&id)
    }

    fn sync(&mut self, member: &str, generation: i32, assignments: &[(&str, &str)]) -> RequestId {
        self.sync_as("consumer", member, generation, assignments)
    }

    fn sync_as(
        &mut self,
        protocol_type: &str,
        member: &str,
        generation: i32,
        assignments: &[(&str, &str)],
    ) -> RequestId {
        let id = self.request();
        let req = SyncRequest {
            member_id: member.to_owned(),
            instance_id: None,
            generation,
            protocol_type: Some(protocol_type.to_owned()),
            protocol: Some("range".to_owned()),
            assignments: assignments
                .iter()
                .map(|(m, a)| ((*m).to_owned(), Bytes::from(a.to_string())))
                .collect(),
        };
        let fx = self.table.sync(self.now, id, GROUP, req);
        self.apply(fx);
        id
    }

    fn heartbeat(&mut self, member: &str, generation: i32) -> Result<(), GroupError> {
        self.table
            .heartbeat(self.now, GROUP, member, None, generation)
    }

    /// Lets the initial rebalance delay of a new group run out: members
    /// that arrived during the first delay extend it once.
    fn end_initial_delay(&mut self) {
        self.advance(DELAY_MS);
        self.advance(DELAY_MS);
    }

    fn advance(&mut self, ms: i64) {
        self.now += ms;
        let fx = self.table.tick(self.now);
        self.apply(fx);
    }

    /// Acknowledges (or fails) every pending store, in order.
    fn complete_stores(&mut self, result: Result<(), GroupError>) {
        for s in std::mem::take(&mut self.stores) {
            let fx = match s.after {
                AfterStore::Nothing => continue,
                AfterStore::Assignment { generation } => {
                    self.table
                        .assignment_stored(self.now, &s.group, generation, result.clone())
                }
                AfterStore::StaticMember(r) => {
                    self.table
                        .static_member_stored(self.now, &s.group, *r, result.clone())
                }
            };
            self.apply(fx);
        }
    }

    fn group(&self) -> &Group {
        self.table.group(GROUP).expect("group exists")
    }

    fn state(&self) -> GroupState {
        self.group().state()
    }

    /// Three members joined and synced: generation 1, Stable. Returns the
    /// member ids (leader first).
    fn stable_group_of_three(&mut self) -> Vec<String> {
        let (a, ja) = self.join_new();
        let (b, jb) = self.join_new();
        let (c, jc) = self.join_new();
        self.end_initial_delay();
        let ra = self.join_reply(ja);
        let leader = ra.leader.clone();
        assert_eq!(leader, a, "the first member leads");
        self.join_reply(jb);
        self.join_reply(jc);
        let s1 = self.sync(&a, 1, &[(&a, "pa"), (&b, "pb"), (&c, "pc")]);
        let s2 = self.sync(&b, 1, &[]);
        let s3 = self.sync(&c, 1, &[]);
        self.complete_stores(Ok(()));
        for s in [s1, s2, s3] {
            assert_eq!(self.sync_reply(s).error, None);
        }
        assert_eq!(self.state(), GroupState::Stable);
        vec![a, b, c]
    }
}

#[test]
fn given_new_members_when_they_join_should_get_ids_then_one_generation_with_the_leader_assigning() {
    let mut h = Harness::new();
    let (a, ja) = h.join_new();
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let (b, jb) = h.join_new();
    // Parked until the initial delay passes, even though all have joined;
    // b arrived during the first delay, so it runs once more.
    h.advance(DELAY_MS - 1);
    assert!(h.parked(ja) && h.parked(jb));
    h.advance(1);
    assert!(h.parked(ja) && h.parked(jb), "extended for the new member");
    h.advance(DELAY_MS);
    let ra = h.join_reply(ja);
    let rb = h.join_reply(jb);
    assert_eq!(ra.error, None);
    assert_eq!((ra.generation, rb.generation), (1, 1));
    assert_eq!(ra.protocol.as_deref(), Some("range"));
    assert_eq!(ra.leader, a);
    assert_eq!(rb.leader, a);
    let mut listed: Vec<&str> = ra.members.iter().map(|m| m.member_id.as_str()).collect();
    listed.sort_unstable();
    let mut expected = vec![a.as_str(), b.as_str()];
    expected.sort_unstable();
    assert_eq!(listed, expected, "the leader gets every member");
    assert!(rb.members.is_empty(), "followers get no member list");
    assert_eq!(h.state(), GroupState::CompletingRebalance);

    // The follower syncs first and waits; the leader's assignment is
    // stored, and only then does anyone get an answer.
    let sb = h.sync(&b, 1, &[]);
    let sa = h.sync(&a, 1, &[(&a, "pa"), (&b, "pb")]);
    assert!(h.parked(sa) && h.parked(sb));
    assert_eq!(h.stores.len(), 1);
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    h.complete_stores(Ok(()));
    assert_eq!(h.sync_reply(sa).assignment, Bytes::from("pa"));
    assert_eq!(h.sync_reply(sb).assignment, Bytes::from("pb"));
    assert_eq!(h.state(), GroupState::Stable);
    assert_eq!(h.rebalances, 1);
    assert_eq!(h.heartbeat(&a, 1), Ok(()));
}

#[test]
fn given_members_keep_arriving_when_the_initial_delay_ends_should_extend_up_to_the_rebalance_timeout()
 {
    let mut h = Harness::new();
    let (_, ja) = h.join_new();
    let mut parked = vec![ja];
    // A new member every delay period: each one extends the wait.
    for _ in 0..3 {
        h.advance(DELAY_MS - 1);
        let (_, j) = h.join_new();
        parked.push(j);
        h.advance(1);
        assert!(parked.iter().all(|j| h.parked(*j)), "still delayed");
    }
    // Nobody new: the next delay ends the join phase.
    h.advance(DELAY_MS);
    for j in parked {
        assert_eq!(h.join_reply(j).generation, 1);
    }
    // Never past the rebalance timeout, however many arrive.
    let mut h = Harness::new();
    let (_, first) = h.join_new();
    let mut waited = 0;
    while h.parked(first) {
        h.join_new();
        h.advance(DELAY_MS);
        waited += DELAY_MS;
        assert!(waited <= i64::from(REBALANCE_MS), "waited {waited} ms");
    }
}

#[test]
fn given_a_stable_group_when_a_member_leaves_should_rebalance_the_others_into_a_new_generation() {
    let mut h = Harness::new();
    let ids = h.stable_group_of_three();
    let (results, fx) = h.table.leave(
        h.now,
        GROUP,
        &[Leaving {
            member_id: ids[2].clone(),
            instance_id: None,
        }],
    );
    h.apply(fx);
    assert_eq!(results, vec![Ok(())]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    // The others learn it from their heartbeat and rejoin.
    assert_eq!(
        h.heartbeat(&ids[0], 1),
        Err(GroupError::RebalanceInProgress)
    );
    assert!(matches!(
        h.heartbeat(&ids[2], 1),
        Err(GroupError::UnknownMemberId(_))
    ));
    let j0 = h.join(&ids[0]);
    assert!(h.parked(j0));
    // Rejoining members do not wait for the initial delay: the group was
    // not Empty. The last rejoin completes the phase.
    let j1 = h.join(&ids[1]);
    let r0 = h.join_reply(j0);
    let r1 = h.join_reply(j1);
    assert_eq!((r0.generation, r1.generation), (2, 2));
    assert_eq!(r0.members.len(), 2);
    assert!(matches!(
        h.heartbeat(&ids[0], 1),
        Err(GroupError::IllegalGeneration {
            given: 1,
            current: 2
        })
    ));
    assert_eq!(
        h.heartbeat(&ids[0], 2),
        Ok(()),
        "CompletingRebalance accepts heartbeats"
    );
}

#[test]
fn given_a_silent_member_when_its_session_expires_should_be_removed_and_the_group_rebalance() {
    let mut h = Harness::new();
    let ids = h.stable_group_of_three();
    // Two keep heartbeating, the third is silent.
    for _ in 0..4 {
        h.advance(i64::from(SESSION_MS) / 4);
        if h.state() == GroupState::Stable {
            h.heartbeat(&ids[0], 1).unwrap();
            h.heartbeat(&ids[1], 1).unwrap();
        }
    }
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert!(h.group().members().all(|m| m.id != ids[2]));
    assert_eq!(h.group().members().count(), 2);
}

#[test]
fn given_a_member_that_does_not_rejoin_when_the_rebalance_timeout_passes_should_complete_without_it()
 {
    let mut h = Harness::new();
    let ids = h.stable_group_of_three();
    let (results, fx) = h.table.leave(
        h.now,
        GROUP,
        &[Leaving {
            member_id: ids[0].clone(),
            instance_id: None,
        }],
    );
    h.apply(fx);
    assert_eq!(results, vec![Ok(())]);
    let j1 = h.join(&ids[1]);
    // ids[2] keeps heartbeating but never rejoins: the rebalance timeout
    // removes it.
    let step = 5_000;
    let mut waited = 0;
    while waited < i64::from(REBALANCE_MS) - step {
        h.advance(step);
        waited += step;
        assert_eq!(
            h.heartbeat(&ids[2], 1),
            Err(GroupError::RebalanceInProgress)
        );
        assert!(h.parked(j1), "members waiting to join are not expired");
    }
    h.advance(i64::from(REBALANCE_MS) - waited);
    let r = h.join_reply(j1);
    assert_eq!(r.generation, 2);
    assert_eq!(
        r.leader, ids[1],
        "leadership moves to a member that rejoined"
    );
    assert_eq!(r.members.len(), 1);
}

#[test]
fn given_a_member_that_never_syncs_when_the_sync_deadline_passes_should_be_removed() {
    let mut h = Harness::new();
    let (a, ja) = h.join_new();
    let (b, jb) = h.join_new();
    h.end_initial_delay();
    h.join_reply(ja);
    h.join_reply(jb);
    // The leader syncs and the assignment is stored; b never syncs but
    // keeps heartbeating.
    let sa = h.sync(&a, 1, &[(&a, "pa"), (&b, "pb")]);
    h.complete_stores(Ok(()));
    assert_eq!(h.sync_reply(sa).error, None);
    let mut waited = 0;
    while h.state() == GroupState::Stable {
        h.heartbeat(&a, 1).unwrap();
        h.heartbeat(&b, 1).unwrap();
        h.advance(1_000);
        waited += 1_000;
        assert!(waited <= i64::from(REBALANCE_MS), "sync deadline ignored");
    }
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert!(h.group().members().all(|m| m.id != b));
}

#[test]
fn given_a_failed_assignment_write_when_stored_should_answer_the_error_and_rebalance() {
    let mut h = Harness::new();
    let (a, ja) = h.join_new();
    let (b, jb) = h.join_new();
    h.end_initial_delay();
    h.join_reply(ja);
    h.join_reply(jb);
    let sb = h.sync(&b, 1, &[]);
    let sa = h.sync(&a, 1, &[(&a, "pa"), (&b, "pb")]);
    h.complete_stores(Err(GroupError::NotCoordinator));
    assert_eq!(h.sync_reply(sa).error, Some(GroupError::NotCoordinator));
    assert_eq!(h.sync_reply(sb).error, Some(GroupError::NotCoordinator));
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn given_wrong_member_or_generation_when_syncing_or_heartbeating_should_be_refused() {
    let mut h = Harness::new();
    let ids = h.stable_group_of_three();
    assert!(matches!(
        h.heartbeat("nobody", 1),
        Err(GroupError::UnknownMemberId(_))
    ));
    assert!(matches!(
        h.heartbeat(&ids[1], 0),
        Err(GroupError::IllegalGeneration { .. })
    ));
    let s = h.sync(&ids[1], 7, &[]);
    assert!(matches!(
        h.sync_reply(s).error,
        Some(GroupError::IllegalGeneration { .. })
    ));
    // A member that re-sends its SyncGroup in Stable gets its assignment.
    let s = h.sync(&ids[1], 1, &[]);
    assert_eq!(h.sync_reply(s).assignment, Bytes::from("pb"));
    // Unknown group: unknown member.
    assert!(matches!(
        h.table.heartbeat(h.now, "other", "m", None, 1),
        Err(GroupError::UnknownMemberId(_))
    ));
    // A member id unknown to an existing group cannot join with it.
    let j = h.join("made-up");
    assert!(matches!(
        h.join_reply(j).error,
        Some(GroupError::UnknownMemberId(_))
    ));
}

#[test]
fn given_incompatible_protocols_or_bad_timeouts_when_joining_should_be_refused() {
    let mut h = Harness::new();
    let (_, j) = h.join_new();
    let mut req = h.join_req("", None, &["roundrobin"]);
    req.require_known_member_id = false;
    let j2 = h.join_with(req);
    assert_eq!(
        h.join_reply(j2).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    let mut req = h.join_req("", None, &["range"]);
    req.session_timeout_ms = 100;
    let j3 = h.join_with(req);
    assert!(matches!(
        h.join_reply(j3).error,
        Some(GroupError::InvalidSessionTimeout { given: 100, .. })
    ));
    let mut req = h.join_req("", None, &["range"]);
    req.protocol_type = "connect".into();
    let j4 = h.join_with(req);
    assert_eq!(
        h.join_reply(j4).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    assert!(h.parked(j));
    // An empty group id is invalid; nothing is created for it.
    let id = h.request();
    let fx = h
        .table
        .join(h.now, id, "", h.join_req("", None, &["range"]));
    h.apply(fx);
    assert!(matches!(
        h.join_reply(id).error,
        Some(GroupError::InvalidGroupId(_))
    ));
    assert!(h.table.group("").is_none());
}

#[test]
fn given_members_with_several_protocols_when_the_join_completes_should_pick_the_common_favourite() {
    let mut h = Harness::new();
    let mut ids = Vec::new();
    for names in [
        &["sticky", "range"][..],
        &["range", "sticky"][..],
        &["range", "roundrobin", "sticky"][..],
    ] {
        let mut req = h.join_req("", None, names);
        req.require_known_member_id = false;
        ids.push(h.join_with(req));
    }
    h.end_initial_delay();
    let r = h.join_reply(ids[0]);
    assert_eq!(
        r.protocol.as_deref(),
        Some("range"),
        "two of three prefer range"
    );
    let m = &r.members[0];
    assert!(
        m.metadata.starts_with(b"meta-range"),
        "metadata of the selected protocol"
    );
}

#[test]
fn given_a_static_member_when_it_rejoins_with_a_new_member_id_should_take_its_place_without_rebalance()
 {
    let mut h = Harness::new();
    let static_join = |h: &mut Harness, instance: &str| {
        let req = h.join_req("", Some(instance), &["range"]);
        h.join_with(req)
    };
    let j0 = static_join(&mut h, "pod-0");
    let j1 = static_join(&mut h, "pod-1");
    h.end_initial_delay();
    let r0 = h.join_reply(j0);
    let r1 = h.join_reply(j1);
    assert!(r0.member_id.starts_with("pod-0-"), "{}", r0.member_id);
    let (old0, old1) = (r0.member_id, r1.member_id);
    let s0 = h.sync(&old0, 1, &[(&old0, "p0"), (&old1, "p1")]);
    let s1 = h.sync(&old1, 1, &[]);
    h.complete_stores(Ok(()));
    h.sync_reply(s0);
    h.sync_reply(s1);
    assert_eq!(h.state(), GroupState::Stable);

    // pod-1 restarts: same instance id, no member id.
    let j = static_join(&mut h, "pod-1");
    assert!(h.parked(j), "answered once the new member id is stored");
    assert_eq!(h.stores.len(), 1);
    h.complete_stores(Ok(()));
    let r = h.join_reply(j);
    assert_eq!(r.error, None);
    assert_ne!(r.member_id, old1);
    assert_eq!(r.generation, 1, "no rebalance");
    assert_eq!(h.state(), GroupState::Stable);
    assert!(r.members.is_empty());
    assert!(!r.skip_assignment);
    // Its assignment carried over; the old id is fenced.
    let s = h.sync(&r.member_id, 1, &[]);
    assert_eq!(h.sync_reply(s).assignment, Bytes::from("p1"));
    assert_eq!(
        h.table.heartbeat(h.now, GROUP, &old1, Some("pod-1"), 1),
        Err(GroupError::FencedInstanceId("pod-1".into()))
    );
    assert_eq!(
        h.table
            .heartbeat(h.now, GROUP, &r.member_id, Some("pod-1"), 1),
        Ok(())
    );

    // The static leader restarts: with JoinGroup v9 it is told it leads
    // but must skip the assignment.
    let j = static_join(&mut h, "pod-0");
    h.complete_stores(Ok(()));
    let r = h.join_reply(j);
    assert_eq!(r.leader, r.member_id);
    assert!(r.skip_assignment);
    assert_eq!(r.members.len(), 2);
    assert_eq!(h.group().generation(), 1);

    // Older clients: the leader is told the previous leader id (not its
    // own), so it does not assign.
    let mut req = h.join_req("", Some("pod-0"), &["range"]);
    req.supports_skip_assignment = false;
    let before = h.group().leader().unwrap().to_owned();
    let j = h.join_with(req);
    h.complete_stores(Ok(()));
    let r = h.join_reply(j);
    assert_eq!(r.leader, before);
    assert_ne!(r.leader, r.member_id);
    assert_eq!(h.rebalances, 1);
}

#[test]
fn given_a_static_member_replacement_whose_write_fails_should_restore_the_old_member_id() {
    let mut h = Harness::new();
    let req = h.join_req("", Some("pod-0"), &["range"]);
    let j = h.join_with(req);
    h.advance(DELAY_MS);
    let old = h.join_reply(j).member_id;
    let s = h.sync(&old, 1, &[(&old, "p0")]);
    h.complete_stores(Ok(()));
    h.sync_reply(s);
    let req = h.join_req("", Some("pod-0"), &["range"]);
    let j = h.join_with(req);
    h.complete_stores(Err(GroupError::Timeout));
    assert_eq!(h.join_reply(j).error, Some(GroupError::Timeout));
    assert_eq!(
        h.table.heartbeat(h.now, GROUP, &old, Some("pod-0"), 1),
        Ok(())
    );
}

#[test]
fn given_a_static_member_with_changed_protocols_when_it_rejoins_should_rebalance() {
    let mut h = Harness::new();
    let req = h.join_req("", Some("pod-0"), &["range"]);
    let j = h.join_with(req);
    h.advance(DELAY_MS);
    let old = h.join_reply(j).member_id;
    let s = h.sync(&old, 1, &[(&old, "p0")]);
    h.complete_stores(Ok(()));
    h.sync_reply(s);
    let req = h.join_req("", Some("pod-0"), &["roundrobin", "range"]);
    let j = h.join_with(req);
    // Only member: the rebalance completes at once with the new favourite.
    let r = h.join_reply(j);
    assert_eq!(r.generation, 2);
    assert_eq!(r.protocol.as_deref(), Some("roundrobin"));
}

#[test]
fn given_a_static_member_when_removed_by_instance_id_should_leave() {
    let mut h = Harness::new();
    let req = h.join_req("", Some("pod-0"), &["range"]);
    let j = h.join_with(req);
    h.advance(DELAY_MS);
    h.join_reply(j);
    let (results, fx) = h.table.leave(
        h.now,
        GROUP,
        &[
            Leaving {
                member_id: String::new(),
                instance_id: Some("pod-0".into()),
            },
            Leaving {
                member_id: String::new(),
                instance_id: Some("pod-9".into()),
            },
        ],
    );
    h.apply(fx);
    assert_eq!(results[0], Ok(()));
    assert!(matches!(results[1], Err(GroupError::UnknownMemberId(_))));
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(h.group().generation(), 2);
}

#[test]
fn given_generations_when_committing_offsets_should_fence_stale_members_and_allow_simple_commits() {
    let mut h = Harness::new();
    // A group that does not exist: only generation -1 commits (and creates it).
    assert!(matches!(
        h.table.validate_commit(h.now, "standalone", "", None, 0),
        Err(GroupError::IllegalGeneration { .. })
    ));
    assert_eq!(
        h.table.validate_commit(h.now, "standalone", "", None, -1),
        Ok(())
    );
    assert!(h.table.group("standalone").is_some());

    let (a, ja) = h.join_new();
    let (b, jb) = h.join_new();
    h.end_initial_delay();
    h.join_reply(ja);
    h.join_reply(jb);
    assert_eq!(
        h.table.validate_commit(h.now, GROUP, &a, None, 1),
        Err(GroupError::RebalanceInProgress),
        "no commits between join and sync"
    );
    let s = h.sync(&a, 1, &[(&a, "pa"), (&b, "pb")]);
    h.complete_stores(Ok(()));
    h.sync_reply(s);
    assert_eq!(h.table.validate_commit(h.now, GROUP, &a, None, 1), Ok(()));
    assert!(matches!(
        h.table.validate_commit(h.now, GROUP, &a, None, 0),
        Err(GroupError::IllegalGeneration {
            given: 0,
            current: 1
        })
    ));
    assert!(matches!(
        h.table.validate_commit(h.now, GROUP, "zombie", None, 1),
        Err(GroupError::UnknownMemberId(_))
    ));
    // An admin reset (generation -1) is refused while the group has members.
    assert!(matches!(
        h.table.validate_commit(h.now, GROUP, "", None, -1),
        Err(GroupError::UnknownMemberId(_))
    ));
    // During a rebalance, the previous generation may still commit (the
    // revocation callback of consumers does).
    let (results, fx) = h.table.leave(
        h.now,
        GROUP,
        &[Leaving {
            member_id: b.clone(),
            instance_id: None,
        }],
    );
    h.apply(fx);
    assert_eq!(results, vec![Ok(())]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.table.validate_commit(h.now, GROUP, &a, None, 1), Ok(()));
    // Once Empty, admin tools may reset offsets.
    let (_, fx) = h.table.leave(
        h.now,
        GROUP,
        &[Leaving {
            member_id: a.clone(),
            instance_id: None,
        }],
    );
    h.apply(fx);
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(h.table.validate_commit(h.now, GROUP, "", None, -1), Ok(()));
}

#[test]
fn given_a_pending_member_id_that_is_never_used_when_the_session_passes_should_lapse() {
    let mut h = Harness::new();
    let (_, ja) = h.join_new();
    // A second member gets an id but never joins with it.
    let j = h.join("");
    assert_eq!(h.join_reply(j).error, Some(GroupError::MemberIdRequired));
    h.advance(DELAY_MS);
    assert_eq!(
        h.join_reply(ja).generation,
        1,
        "the delay completes the join"
    );
    // Later rebalances are not held up by it once its session passed.
    h.advance(i64::from(SESSION_MS));
    assert!(h.group().pending_members.is_empty());
}

#[test]
fn given_a_commit_in_flight_when_offsets_expire_should_not_tombstone_its_partitions() {
    // The group's offset of t-0 is past retention. A new commit of t-0 is
    // queued for the log; expiry runs before it is applied. A tombstone
    // now would be written after the commit and erase it on reload.
    let mut h = Harness::new();
    let offset = |o: i64, ts: i64| CommittedOffset {
        offset: o,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: ts,
    };
    h.table
        .validate_commit(h.now, "simple", "", None, -1)
        .unwrap();
    let key = ("t".to_owned(), 0);
    h.table
        .apply_offsets(h.now, "simple", [(key.clone(), offset(5, h.now - 10_000))]);
    h.table.commit_pending("simple", [&key]);
    assert_eq!(h.table.expire_offsets(h.now, 5_000), vec![]);
    assert!(h.table.group("simple").is_some(), "the group stays too");
    h.table.commit_done("simple", [&key]);
    h.table
        .apply_offsets(h.now, "simple", [(key.clone(), offset(7, h.now))]);
    assert_eq!(h.table.expire_offsets(h.now, 5_000), vec![]);
    assert_eq!(
        h.table.expire_offsets(h.now + 5_000, 5_000).len(),
        2,
        "expires normally once applied"
    );
}

#[test]
fn given_an_empty_group_when_deleted_or_expired_should_yield_tombstones() {
    let mut h = Harness::new();
    let offset = |o: i64, ts: i64| CommittedOffset {
        offset: o,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: ts,
    };
    h.table
        .validate_commit(h.now, "simple", "", None, -1)
        .unwrap();
    h.table.apply_offsets(
        h.now,
        "simple",
        [
            (("t".to_owned(), 0), offset(5, h.now - 10_000)),
            (("t".to_owned(), 1), offset(9, h.now)),
        ],
    );
    // Offsets of a group without members expire one by one.
    let gone = h.table.expire_offsets(h.now, 5_000);
    assert_eq!(
        gone,
        vec![RecordKey::Offset {
            group: "simple".into(),
            topic: "t".into(),
            partition: 0
        }]
    );
    let gone = h.table.expire_offsets(h.now + 5_000, 5_000);
    assert_eq!(gone.len(), 2, "last offset and the group itself");
    assert!(h.table.group("simple").is_none());

    let ids = h.stable_group_of_three();
    h.table
        .apply_offsets(h.now, GROUP, [(("t".to_owned(), 0), offset(1, h.now))]);
    assert!(matches!(
        h.table.delete(GROUP),
        Err(GroupError::NonEmptyGroup(_))
    ));
    let leaving: Vec<Leaving> = ids
        .iter()
        .map(|m| Leaving {
            member_id: m.clone(),
            instance_id: None,
        })
        .collect();
    let (_, fx) = h.table.leave(h.now, GROUP, &leaving);
    h.apply(fx);
    assert_eq!(h.state(), GroupState::Empty);
    let keys = h.table.delete(GROUP).unwrap();
    assert_eq!(keys.len(), 2);
    assert!(h.table.group(GROUP).is_none());
    assert!(matches!(
        h.table.delete(GROUP),
        Err(GroupError::GroupIdNotFound(_))
    ));
}

/// The records the harness logged plus offsets, as the partition would
/// hold them: encoded, batched, decoded, replayed.
fn reload(h: &Harness, offsets: &[(&str, &str, i32, CommittedOffset)], now: i64) -> GroupTable {
    let mut raw: Vec<(Bytes, Option<Bytes>)> = h
        .log
        .iter()
        .map(|(k, v)| (records::encode_key(k), v.clone()))
        .collect();
    for (g, t, p, o) in offsets {
        raw.push((
            records::encode_key(&RecordKey::Offset {
                group: (*g).to_owned(),
                topic: (*t).to_owned(),
                partition: *p,
            }),
            Some(records::encode_offset(o)),
        ));
    }
    let batch = Bytes::from(records::encode_batch(&raw, now));
    let decoded: Vec<LogRecord> = records::decode_batches(&batch).unwrap();
    let loaded = decoded
        .into_iter()
        .map(|r| match records::decode_key(&r.key).unwrap() {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => Loaded::Offset {
                group,
                topic,
                partition,
                value: r.value.map(|v| records::decode_offset(&v).unwrap()),
            },
            RecordKey::Group { group } => Loaded::Group {
                group,
                value: r.value.map(|v| records::decode_group(&v).unwrap()),
            },
            RecordKey::Consumer(key) => Loaded::Consumer {
                value: r
                    .value
                    .map(|v| records::consumer::decode_value(&key, &v).unwrap()),
                key,
            },
            RecordKey::Share(key) => {
                let value = r
                    .value
                    .map(|v| records::share::decode_value(&key, &v).unwrap());
                Loaded::Share((key, value))
            }
        });
    GroupTable::load(limits(), loaded, now)
}

#[test]
fn given_a_stable_group_with_offsets_when_its_records_are_reloaded_should_have_the_same_state() {
    let mut h = Harness::new();
    let ids = h.stable_group_of_three();
    let committed = CommittedOffset {
        offset: 42,
        leader_epoch: 3,
        metadata: "m".into(),
        commit_timestamp: h.now,
    };
    let dropped = CommittedOffset {
        offset: 7,
        ..committed.clone()
    };
    let mut table = reload(
        &h,
        &[
            (GROUP, "orders", 0, committed.clone()),
            (GROUP, "orders", 1, dropped.clone()),
        ],
        h.now + 1,
    );
    let before = h.group();
    let after = table.group(GROUP).expect("reloaded");
    assert_eq!(after.state(), GroupState::Stable);
    assert_eq!(after.generation(), before.generation());
    assert_eq!(after.leader(), before.leader());
    assert_eq!(after.protocol(), before.protocol());
    assert_eq!(
        after.value(None),
        before.value(None),
        "members and assignments"
    );
    assert_eq!(
        after.offsets().get(&("orders".to_owned(), 0)),
        Some(&committed)
    );
    // Members carry on with the same generation at the new coordinator.
    for m in &ids {
        assert_eq!(table.heartbeat(h.now + 2, GROUP, m, None, 1), Ok(()));
    }
    let fx = table.sync(
        h.now + 2,
        99,
        GROUP,
        SyncRequest {
            member_id: ids[1].clone(),
            instance_id: None,
            generation: 1,
            protocol_type: None,
            protocol: None,
            assignments: vec![],
        },
    );
    assert_eq!(
        fx.replies,
        vec![(
            99,
            Reply::Sync(SyncReply {
                error: None,
                protocol_type: Some("consumer".into()),
                protocol: Some("range".into()),
                assignment: Bytes::from("pb")
            })
        )]
    );

    // Then everyone leaves: the Empty group is logged; a tombstone of
    // its metadata and offsets (DeleteGroups) removes everything.
    let leaving: Vec<Leaving> = ids
        .iter()
        .map(|m| Leaving {
            member_id: m.clone(),
            instance_id: None,
        })
        .collect();
    let (_, fx) = h.table.leave(h.now, GROUP, &leaving);
    h.apply(fx);
    let table = reload(&h, &[(GROUP, "orders", 0, committed.clone())], h.now + 3);
    let g = table.group(GROUP).unwrap();
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.generation(), 2);
    h.apply_offsets_and_delete();
    let table = reload(&h, &[], h.now + 4);
    assert!(table.group(GROUP).is_none(), "tombstones delete the group");
}

impl Harness {
    /// Commits one offset, then deletes the group, logging both.
    fn apply_offsets_and_delete(&mut self) {
        let key = RecordKey::Offset {
            group: GROUP.into(),
            topic: "orders".into(),
            partition: 0,
        };
        let o = CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: self.now,
        };
        self.table
            .apply_offsets(self.now, GROUP, [(("orders".to_owned(), 0), o.clone())]);
        self.log.push((key, Some(records::encode_offset(&o))));
        let keys = self.table.delete(GROUP).unwrap();
        self.apply(Effects {
            tombstones: keys,
            ..Effects::default()
        });
    }
}

/// A ConsumerProtocol subscription to `topics`, as Kafka's consumers send
/// it in their JoinGroup metadata.
fn subscription(topics: &[&str]) -> Bytes {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let s = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|t| StrBytes::from_string((*t).to_owned()))
            .collect(),
    );
    let mut buf = bytes::BytesMut::new();
    buf.extend_from_slice(&1i16.to_be_bytes());
    s.encode(&mut buf, 1).unwrap();
    buf.freeze()
}

/// Two members of `protocol_type` with `metadata`, joined and synced.
fn stable_group_of_two(h: &mut Harness, protocol_type: &str, metadata: Bytes) {
    let mut parked = Vec::new();
    for _ in 0..2 {
        let mut req = h.join_req("", None, &["range"]);
        req.protocol_type = protocol_type.to_owned();
        req.protocols[0].metadata = metadata.clone();
        let first = h.join_with(req.clone());
        req.member_id = h.join_reply(first).member_id;
        parked.push((req.member_id.clone(), h.join_with(req)));
    }
    h.end_initial_delay();
    for (_, j) in &parked {
        h.join_reply(*j);
    }
    let (a, b) = (parked[0].0.clone(), parked[1].0.clone());
    let syncs = [
        h.sync_as(protocol_type, &a, 1, &[(&a, "pa"), (&b, "pb")]),
        h.sync_as(protocol_type, &b, 1, &[]),
    ];
    h.complete_stores(Ok(()));
    for s in syncs {
        assert_eq!(h.sync_reply(s).error, None);
    }
    assert_eq!(h.state(), GroupState::Stable);
}

#[test]
fn given_offset_deletes_when_members_subscribe_or_not_should_keep_subscribed_topics_only() {
    let committed = |o: i64| CommittedOffset {
        offset: o,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: START,
    };
    let offset_key = |t: &str, p: i32| RecordKey::Offset {
        group: GROUP.into(),
        topic: t.into(),
        partition: p,
    };
    assert!(matches!(
        Harness::new()
            .table
            .delete_offsets("nobody", &[("t".into(), 0)]),
        Err(GroupError::GroupIdNotFound(_))
    ));

    // Consumers subscribed to "t": its offsets stay, "u"'s may go.
    let mut h = Harness::new();
    stable_group_of_two(&mut h, "consumer", subscription(&["t"]));
    h.table.apply_offsets(
        h.now,
        GROUP,
        [
            (("t".to_owned(), 0), committed(3)),
            (("u".to_owned(), 0), committed(4)),
        ],
    );
    let (results, keys) = h
        .table
        .delete_offsets(GROUP, &[("t".into(), 0), ("u".into(), 0), ("u".into(), 1)])
        .unwrap();
    assert_eq!(
        results,
        vec![Some(GroupError::SubscribedToTopic("t".into())), None, None]
    );
    assert_eq!(keys, vec![offset_key("u", 0)], "u-1 had no offset to drop");
    let offsets: Vec<_> = h.group().offsets.keys().cloned().collect();
    assert_eq!(offsets, vec![("t".to_owned(), 0)]);

    // Subscriptions that cannot be read: every topic counts as subscribed.
    let mut h = Harness::new();
    stable_group_of_two(
        &mut h,
        "consumer",
        Bytes::from_static(b"not a subscription"),
    );
    h.table
        .apply_offsets(h.now, GROUP, [(("u".to_owned(), 0), committed(4))]);
    let (results, keys) = h.table.delete_offsets(GROUP, &[("u".into(), 0)]).unwrap();
    assert_eq!(
        results,
        vec![Some(GroupError::SubscribedToTopic("u".into()))]
    );
    assert!(keys.is_empty());

    // Another protocol type with members: the whole request is refused.
    let mut h = Harness::new();
    stable_group_of_two(&mut h, "connect", Bytes::from_static(b"worker"));
    assert!(matches!(
        h.table.delete_offsets(GROUP, &[("u".into(), 0)]),
        Err(GroupError::NonEmptyGroup(_))
    ));
}
