//! Deterministic simulation of the controller with brokers that heartbeat,
//! die, come back (with or without their disk) and change ISRs, on a
//! simulated clock, with no sockets. Pins: leaders come only from the ISR,
//! epochs only grow, a fenced or stale incarnation cannot change anything,
//! a deposed controller cannot persist or be obeyed, and nothing is applied
//! that was not persisted first.

use std::collections::BTreeMap;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use proptest::prelude::*;

use crate::*;

const SESSION_MS: u64 = 1500;
const STEP_MS: u64 = 100;

/// Runs a store future that never waits (the memory store).
fn ready<F: std::future::Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("memory store futures complete at once"),
    }
}

/// What a broker believes: the newest controller epoch it has seen and the
/// partition states it was told about.
#[derive(Debug, Default)]
struct BrokerView {
    controller_epoch: i64,
    partitions: BTreeMap<(String, i32), PartitionState>,
}

impl BrokerView {
    /// Applies a broadcast unless it comes from an older controller.
    fn receive(&mut self, controller_epoch: i64, changes: &[Change]) -> bool {
        if controller_epoch < self.controller_epoch {
            return false;
        }
        self.controller_epoch = controller_epoch;
        for c in changes {
            match c {
                Change::Topic(t) => {
                    for (i, p) in t.partitions.iter().enumerate() {
                        self.partitions
                            .insert((t.name.clone(), i as i32), p.clone());
                    }
                }
                Change::Partition {
                    topic,
                    partition,
                    state,
                } => {
                    self.partitions
                        .insert((topic.clone(), *partition), state.clone());
                }
                _ => {}
            }
        }
        true
    }
}

struct Sim {
    store: MemoryStore,
    ctl: Controller,
    now: u64,
    /// Current incarnation epoch of each broker that is up.
    up: BTreeMap<BrokerId, i64>,
    log_dirs: BTreeMap<BrokerId, String>,
    views: BTreeMap<BrokerId, BrokerView>,
}

impl Sim {
    fn new(brokers: i32) -> Self {
        let store = MemoryStore::default();
        let meta = ready(store.claim()).unwrap();
        let ctl = Controller::new(
            ControllerConfig {
                session_timeout_ms: SESSION_MS,
                ..ControllerConfig::default()
            },
            meta,
            0,
        );
        let mut sim = Self {
            store,
            ctl,
            now: 0,
            up: BTreeMap::new(),
            log_dirs: BTreeMap::new(),
            views: BTreeMap::new(),
        };
        for id in 0..brokers {
            sim.log_dirs.insert(id, format!("dir-{id}-0"));
            sim.start(id);
        }
        sim
    }

    /// Persists then applies a plan and broadcasts it; returns the changes.
    fn run(&mut self, plan: Plan) -> Vec<Change> {
        ready(
            self.store
                .persist(self.ctl.controller_epoch(), &plan.changes),
        )
        .unwrap();
        let changes = self.ctl.apply(plan);
        let epoch = self.ctl.controller_epoch();
        for v in self.views.values_mut() {
            v.receive(epoch, &changes);
        }
        changes
    }

    fn start(&mut self, id: BrokerId) {
        let dir = self.log_dirs[&id].clone();
        let (plan, epoch) = self
            .ctl
            .register(id, &dir, Endpoints::default(), None, self.now)
            .unwrap();
        self.run(plan);
        self.up.insert(id, epoch);
        self.views.entry(id).or_default();
    }

    fn wipe(&mut self, id: BrokerId) {
        let n = self.log_dirs[&id]
            .rsplit('-')
            .next()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            + 1;
        self.log_dirs.insert(id, format!("dir-{id}-{n}"));
    }

    fn kill(&mut self, id: BrokerId) {
        self.up.remove(&id);
    }

    /// Advances the clock; live brokers heartbeat every step; expired
    /// leases are fenced.
    fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += STEP_MS;
            for (&id, &epoch) in &self.up {
                self.ctl.heartbeat(id, epoch, self.now).unwrap();
            }
            let plan = self.ctl.tick(self.now);
            if !plan.is_empty() {
                self.run(plan);
            }
            self.check_invariants();
        }
    }

    fn create(&mut self, name: &str, partitions: i32, rf: i32, config: &[(&str, &str)]) {
        let config = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let plan = self.ctl.create_topic(name, partitions, rf, config).unwrap();
        self.run(plan);
    }

    fn p(&self, topic: &str, partition: usize) -> PartitionState {
        self.ctl.metadata().topics[topic].partitions[partition].clone()
    }

    /// Leader of `topic`-`partition` shrinks or grows its ISR.
    fn alter(
        &mut self,
        topic: &str,
        partition: i32,
        isr: &[BrokerId],
    ) -> Result<(), ControllerError> {
        let p = self.p(topic, partition as usize);
        let epoch = *self.up.get(&p.leader).unwrap_or(&-1);
        let plan = self.ctl.alter_partition(
            p.leader,
            epoch,
            topic,
            partition,
            p.leader_epoch,
            p.partition_epoch,
            isr,
            &self.epochs_of(isr),
        )?;
        self.run(plan);
        Ok(())
    }

    /// The current broker epoch of each of `brokers` that is up.
    fn epochs_of(&self, brokers: &[BrokerId]) -> Vec<(BrokerId, i64)> {
        brokers
            .iter()
            .filter_map(|b| self.up.get(b).map(|e| (*b, *e)))
            .collect()
    }

    fn check_invariants(&self) {
        let meta = self.ctl.metadata();
        assert_eq!(
            &self.store.snapshot(),
            meta,
            "controller state must equal durable state"
        );
        for t in meta.topics.values() {
            for p in &t.partitions {
                assert!(
                    p.isr.iter().all(|r| p.replicas.contains(r)),
                    "ISR within replicas: {p:?}"
                );
                if p.leader != NO_LEADER {
                    assert!(p.isr.contains(&p.leader), "leader in ISR: {p:?}");
                    assert_eq!(
                        self.ctl.liveness(p.leader),
                        Liveness::Active,
                        "leader is live: {p:?}"
                    );
                }
            }
        }
        for v in self.views.values() {
            for ((topic, i), seen) in &v.partitions {
                if let Some(cur) = meta
                    .topics
                    .get(topic)
                    .and_then(|t| t.partitions.get(*i as usize))
                {
                    assert!(seen.leader_epoch <= cur.leader_epoch);
                    assert!(seen.partition_epoch <= cur.partition_epoch);
                }
            }
        }
    }
}

#[test]
fn given_three_brokers_when_topic_created_then_preferred_leaders_and_full_isr() {
    let mut sim = Sim::new(3);
    sim.create("t", 6, 3, &[]);
    let mut leaders = BTreeMap::new();
    for i in 0..6 {
        let p = sim.p("t", i);
        assert_eq!(p.leader, p.replicas[0]);
        assert_eq!(p.isr.len(), 3);
        *leaders.entry(p.leader).or_insert(0) += 1;
    }
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
    // Brokers were told, with the controller epoch.
    assert_eq!(sim.views[&2].partitions.len(), 6);
    assert_eq!(sim.views[&2].controller_epoch, 1);
}

#[test]
fn given_leader_lease_expires_then_isr_member_takes_over_with_higher_epochs() {
    let mut sim = Sim::new(3);
    sim.create("t", 1, 3, &[]);
    let before = sim.p("t", 0);
    let old = before.leader;
    sim.kill(old);
    sim.advance(SESSION_MS - STEP_MS);
    assert_eq!(
        sim.p("t", 0).leader,
        old,
        "not fenced before the session timeout"
    );
    sim.advance(2 * STEP_MS);
    let after = sim.p("t", 0);
    assert_ne!(after.leader, old);
    assert!(after.isr.contains(&after.leader) && !after.isr.contains(&old));
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
    assert_eq!(after.partition_epoch, before.partition_epoch + 1);
    assert_eq!(sim.ctl.liveness(old), Liveness::Fenced);
    // The fenced incarnation can neither heartbeat nor change the ISR.
    let stale = sim.ctl.metadata().brokers[&old].epoch;
    assert_eq!(
        sim.ctl.heartbeat(old, stale, sim.now),
        Err(ControllerError::Fenced(old))
    );
    let err = sim
        .ctl
        .alter_partition(
            old,
            stale,
            "t",
            0,
            before.leader_epoch,
            before.partition_epoch,
            &[old],
            &[],
        )
        .unwrap_err();
    assert_eq!(err, ControllerError::Fenced(old));
}

#[test]
fn given_double_failover_then_last_isr_member_kept_and_no_unclean_election() {
    let mut sim = Sim::new(3);
    sim.create("t", 1, 3, &[]);
    let first = sim.p("t", 0).leader;
    sim.kill(first);
    sim.advance(SESSION_MS + STEP_MS);
    let second = sim.p("t", 0).leader;
    sim.kill(second);
    sim.advance(SESSION_MS + STEP_MS);
    let third = sim.p("t", 0).leader;
    assert!(third != first && third != second && third != NO_LEADER);
    assert_eq!(sim.p("t", 0).isr, vec![third]);
    // The last in-sync replica dies: no leader, ISR keeps it.
    sim.kill(third);
    sim.advance(SESSION_MS + STEP_MS);
    let p = sim.p("t", 0);
    assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![third]));
    // An out-of-sync replica coming back cannot lead.
    sim.start(first);
    sim.advance(STEP_MS);
    assert_eq!(sim.p("t", 0).leader, NO_LEADER);
    // The last in-sync replica coming back (same disk) leads again.
    sim.start(third);
    let p = sim.p("t", 0);
    assert_eq!(p.leader, third);
    assert!(p.leader_epoch >= 4);
}

#[test]
fn given_unclean_election_opt_in_then_out_of_sync_replica_may_lead() {
    let mut sim = Sim::new(2);
    sim.create("t", 1, 2, &[("unclean.leader.election.enable", "true")]);
    let leader = sim.p("t", 0).leader;
    let other = 1 - leader;
    sim.alter("t", 0, &[leader]).unwrap();
    sim.kill(leader);
    sim.advance(SESSION_MS + STEP_MS);
    let p = sim.p("t", 0);
    assert_eq!((p.leader, p.isr), (other, vec![other]));
}

#[test]
fn given_alter_partition_then_epochs_and_membership_are_checked() {
    let mut sim = Sim::new(3);
    sim.create("t", 1, 3, &[]);
    let p = sim.p("t", 0);
    let (leader, epoch) = (p.leader, sim.up[&p.leader]);
    let follower = p.replicas[1];
    let call = |sim: &Sim, who, le, pe, isr: &[BrokerId]| {
        sim.ctl
            .alter_partition(who, sim.up[&who], "t", 0, le, pe, isr, &sim.epochs_of(isr))
    };
    assert!(matches!(
        call(
            &sim,
            follower,
            p.leader_epoch,
            p.partition_epoch,
            &[follower]
        ),
        Err(ControllerError::NotLeader { .. })
    ));
    assert!(matches!(
        call(
            &sim,
            leader,
            p.leader_epoch - 1,
            p.partition_epoch,
            &[leader]
        ),
        Err(ControllerError::FencedLeaderEpoch { .. })
    ));
    assert!(matches!(
        call(
            &sim,
            leader,
            p.leader_epoch,
            p.partition_epoch + 1,
            &[leader]
        ),
        Err(ControllerError::InvalidUpdateVersion { .. })
    ));
    assert!(matches!(
        call(&sim, leader, p.leader_epoch, p.partition_epoch, &[follower]),
        Err(ControllerError::InvalidIsr { .. })
    ));
    assert!(matches!(
        call(
            &sim,
            leader,
            p.leader_epoch,
            p.partition_epoch,
            &[leader, 7]
        ),
        Err(ControllerError::InvalidIsr { .. })
    ));
    assert!(matches!(
        sim.ctl.alter_partition(
            leader,
            epoch - 1,
            "t",
            0,
            p.leader_epoch,
            p.partition_epoch,
            &[leader],
            &[]
        ),
        Err(ControllerError::StaleBrokerEpoch { .. })
    ));
    // Shrink, then a fenced broker cannot be added back, a live one can.
    sim.alter("t", 0, &[leader]).unwrap();
    assert_eq!(sim.p("t", 0).partition_epoch, p.partition_epoch + 1);
    assert_eq!(
        sim.p("t", 0).leader_epoch,
        p.leader_epoch,
        "ISR change keeps the leader epoch"
    );
    sim.kill(follower);
    sim.advance(SESSION_MS + STEP_MS);
    let err = sim.alter("t", 0, &[leader, follower]).unwrap_err();
    assert!(matches!(err, ControllerError::InvalidIsr { .. }), "{err}");
    let third = p.replicas[2];
    // KIP-903: the follower restarts (a new incarnation, say one that lost
    // its unflushed tail). A leader whose view of it comes from the old
    // incarnation's fetches cannot add it back; with the new epoch it can.
    let old_epoch = sim.ctl.metadata().brokers[&follower].epoch;
    sim.start(follower);
    let q = sim.p("t", 0);
    let err = sim
        .ctl
        .alter_partition(
            leader,
            epoch,
            "t",
            0,
            q.leader_epoch,
            q.partition_epoch,
            &[leader, follower],
            &[(follower, old_epoch)],
        )
        .unwrap_err();
    assert!(matches!(err, ControllerError::InvalidIsr { .. }), "{err}");
    sim.alter("t", 0, &[follower, leader]).unwrap();
    sim.alter("t", 0, &[leader]).unwrap();
    sim.alter("t", 0, &[third, leader]).unwrap();
    assert_eq!(
        sim.p("t", 0).isr,
        p.replicas
            .iter()
            .copied()
            .filter(|r| [leader, third].contains(r))
            .collect::<Vec<_>>()
    );
}

#[test]
fn given_a_leader_whose_replica_went_offline_then_it_steps_down_to_another_isr_member() {
    let mut sim = Sim::new(3);
    sim.create("t", 1, 3, &[]);
    let p = sim.p("t", 0);
    let leader = p.leader;
    let plan = sim
        .ctl
        .resign_offline_leader(leader, sim.up[&leader], "t", 0, p.leader_epoch)
        .unwrap();
    sim.run(plan);
    let q = sim.p("t", 0);
    assert_ne!(q.leader, leader);
    assert!(q.isr.contains(&q.leader));
    assert!(!q.isr.contains(&leader), "the offline replica left the ISR");
    assert!(q.leader_epoch > p.leader_epoch);
    // The new leader's replica goes offline too, and the last one: with no
    // other in-sync replica it is refused and the partition stays as is.
    let second = q.leader;
    let plan = sim
        .ctl
        .resign_offline_leader(second, sim.up[&second], "t", 0, q.leader_epoch)
        .unwrap();
    sim.run(plan);
    let r = sim.p("t", 0);
    let err = sim
        .ctl
        .resign_offline_leader(r.leader, sim.up[&r.leader], "t", 0, r.leader_epoch)
        .unwrap_err();
    assert!(matches!(err, ControllerError::InvalidIsr { .. }), "{err}");
    assert_eq!(sim.p("t", 0), r);
}

#[test]
fn given_wiped_disk_then_broker_leaves_every_isr_and_cannot_lead() {
    let mut sim = Sim::new(3);
    sim.create("t", 3, 3, &[]);
    sim.create("solo", 1, 1, &[]);
    let solo_owner = sim.p("solo", 0).leader;
    sim.kill(solo_owner);
    sim.wipe(solo_owner);
    sim.start(solo_owner);
    for i in 0..3 {
        let p = sim.p("t", i);
        assert!(!p.isr.contains(&solo_owner), "{p:?}");
        assert_ne!(p.leader, solo_owner);
    }
    // Its only replica lost the data: offline rather than serving an empty log.
    let p = sim.p("solo", 0);
    assert_eq!((p.leader, p.isr.is_empty()), (NO_LEADER, true));
    // Restarting with the same (non-wiped) disk keeps sole-ISR leadership.
    let mut sim = Sim::new(1);
    sim.create("x", 1, 1, &[]);
    sim.kill(0);
    sim.start(0);
    assert_eq!(sim.p("x", 0).leader, 0);
}

#[test]
fn given_controlled_shutdown_then_leadership_moves_before_stop() {
    let mut sim = Sim::new(3);
    sim.create("t", 6, 3, &[]);
    let b = 0;
    let (plan, remaining) = sim.ctl.controlled_shutdown(b, sim.up[&b]).unwrap();
    assert_eq!(remaining, 0);
    sim.run(plan);
    assert_eq!(sim.ctl.liveness(b), Liveness::ShuttingDown);
    for i in 0..6 {
        let p = sim.p("t", i);
        assert_ne!(p.leader, b);
        assert!(!p.isr.contains(&b));
    }
    // After restart and catching up, the preferred leader is restored.
    sim.kill(b);
    sim.start(b);
    for i in 0..6 {
        let p = sim.p("t", i);
        if p.replicas.contains(&b) && !p.isr.contains(&b) {
            let mut isr = p.isr.clone();
            isr.push(b);
            sim.alter("t", i as i32, &isr).unwrap();
        }
    }
    let plan = sim.ctl.rebalance_preferred_leaders();
    sim.run(plan);
    for i in 0..6 {
        let p = sim.p("t", i);
        assert_eq!(p.leader, p.replicas[0]);
    }
}

#[test]
fn given_new_controller_then_old_one_can_neither_persist_nor_be_obeyed() {
    let mut sim = Sim::new(3);
    sim.create("t", 1, 3, &[]);
    let old_epoch = sim.ctl.controller_epoch();
    // A second controller claims the store (takeover).
    let meta = ready(sim.store.claim()).unwrap();
    let new_ctl = Controller::new(
        ControllerConfig {
            session_timeout_ms: SESSION_MS,
            ..ControllerConfig::default()
        },
        meta,
        sim.now,
    );
    assert_eq!(new_ctl.controller_epoch(), old_epoch + 1);
    // The new controller tells brokers something.
    let plan = new_ctl.rebalance_preferred_leaders();
    assert!(plan.is_empty());
    for v in sim.views.values_mut() {
        assert!(v.receive(new_ctl.controller_epoch(), &[]));
    }
    // The deposed one computes a failover but cannot persist it...
    sim.kill(0);
    sim.now += SESSION_MS + STEP_MS;
    let plan = sim.ctl.tick(sim.now);
    let err = ready(sim.store.persist(old_epoch, &plan.changes)).unwrap_err();
    assert!(
        matches!(err, StoreError::Superseded { ours, current } if ours == old_epoch && current == old_epoch + 1)
    );
    // ...and brokers ignore anything it says.
    for v in sim.views.values_mut() {
        assert!(!v.receive(old_epoch, &plan.changes));
    }
}

#[test]
fn given_store_failure_then_nothing_applied_or_broadcast() {
    let mut sim = Sim::new(3);
    sim.create("t", 1, 3, &[]);
    let before = sim.ctl.metadata().clone();
    sim.kill(0);
    sim.now += SESSION_MS + STEP_MS;
    let plan = sim.ctl.tick(sim.now);
    assert!(!plan.changes.is_empty());
    sim.store.fail_next_persist();
    assert!(ready(sim.store.persist(sim.ctl.controller_epoch(), &plan.changes)).is_err());
    drop(plan);
    assert_eq!(sim.ctl.metadata(), &before);
    // The next tick retries the same failover.
    let plan = sim.ctl.tick(sim.now);
    assert!(!plan.changes.is_empty());
    sim.run(plan);
    sim.check_invariants();
}

#[test]
fn given_controller_restart_then_brokers_get_a_grace_period() {
    let mut sim = Sim::new(3);
    sim.create("t", 3, 3, &[]);
    let meta = ready(sim.store.claim()).unwrap();
    sim.ctl = Controller::new(
        ControllerConfig {
            session_timeout_ms: SESSION_MS,
            ..ControllerConfig::default()
        },
        meta,
        sim.now,
    );
    let leaders: Vec<_> = (0..3).map(|i| sim.p("t", i).leader).collect();
    sim.advance(3 * SESSION_MS);
    let after: Vec<_> = (0..3).map(|i| sim.p("t", i).leader).collect();
    assert_eq!(
        leaders, after,
        "heartbeating brokers keep leadership across a controller restart"
    );
}

#[test]
fn given_new_topic_then_existing_replicas_do_not_move() {
    let mut sim = Sim::new(4);
    sim.create("a", 8, 2, &[]);
    let a = sim.ctl.metadata().topics["a"].clone();
    sim.create("b", 8, 3, &[]);
    assert_eq!(sim.ctl.metadata().topics["a"], a);
    assert!(matches!(
        sim.ctl.create_topic("a", 1, 1, Default::default()),
        Err(ControllerError::TopicExists(_))
    ));
    assert!(matches!(
        sim.ctl.create_topic("c", 1, 5, Default::default()),
        Err(ControllerError::Placement(
            PlacementError::NotEnoughBrokers {
                rf: 5,
                available: 4
            }
        ))
    ));
    let plan = sim.ctl.add_partitions("a", 10).unwrap();
    sim.run(plan);
    assert_eq!(
        &sim.ctl.metadata().topics["a"].partitions[..8],
        &a.partitions[..]
    );
    assert!(
        sim.ctl.add_partitions("a", 9).is_err(),
        "partitions only grow"
    );
}

#[derive(Debug, Clone)]
enum Event {
    Kill(i32),
    Start(i32),
    WipeAndStart(i32),
    Advance(u64),
    Shrink(usize),
    Expand(usize),
    Shutdown(i32),
    Rebalance,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0..4i32).prop_map(Event::Kill),
        (0..4i32).prop_map(Event::Start),
        (0..4i32).prop_map(Event::WipeAndStart),
        (1..40u64).prop_map(|n| Event::Advance(n * STEP_MS)),
        (0..4usize).prop_map(Event::Shrink),
        (0..4usize).prop_map(Event::Expand),
        (0..4i32).prop_map(Event::Shutdown),
        Just(Event::Rebalance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random failures and recoveries keep every invariant.
    #[test]
    fn random_failures_keep_invariants(events in prop::collection::vec(event(), 1..80)) {
        let mut sim = Sim::new(4);
        sim.create("t", 4, 3, &[]);
        let mut epochs: Vec<(i32, i32)> = (0..4).map(|i| (sim.p("t", i).leader_epoch, sim.p("t", i).partition_epoch)).collect();
        for e in events {
            match e {
                Event::Kill(b) => sim.kill(b),
                Event::Start(b) => { sim.kill(b); sim.start(b) }
                Event::WipeAndStart(b) => { sim.kill(b); sim.wipe(b); sim.start(b) }
                Event::Advance(ms) => sim.advance(ms),
                Event::Shrink(i) => {
                    let p = sim.p("t", i);
                    if p.leader != NO_LEADER && sim.up.contains_key(&p.leader) && p.isr.len() > 1 {
                        let isr: Vec<_> = p.isr.iter().copied().filter(|r| *r != p.leader).take(1).chain([p.leader]).collect();
                        let _ = sim.alter("t", i as i32, &isr);
                    }
                }
                Event::Expand(i) => {
                    let p = sim.p("t", i);
                    if p.leader != NO_LEADER && sim.up.contains_key(&p.leader) {
                        let isr: Vec<_> = p.replicas.iter().copied().filter(|r| p.isr.contains(r) || sim.up.contains_key(r)).collect();
                        let _ = sim.alter("t", i as i32, &isr);
                    }
                }
                Event::Shutdown(b) => {
                    if let Some(&epoch) = sim.up.get(&b) {
                        if let Ok((plan, _)) = sim.ctl.controlled_shutdown(b, epoch) {
                            sim.run(plan);
                        }
                    }
                }
                Event::Rebalance => {
                    let plan = sim.ctl.rebalance_preferred_leaders();
                    sim.run(plan);
                }
            }
            sim.check_invariants();
            for (i, e) in epochs.iter_mut().enumerate() {
                let p = sim.p("t", i);
                prop_assert!(p.leader_epoch >= e.0 && p.partition_epoch >= e.1, "epochs never go back");
                *e = (p.leader_epoch, p.partition_epoch);
            }
        }
    }
}
