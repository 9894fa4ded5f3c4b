//! Leader-side replication state of one partition: each follower's log end
//! offset (LEO) as shown by its fetches, the high watermark, and ISR shrink
//! and expand decisions. Pure: no I/O, the time is passed in, so a test can
//! drive a leader through any sequence of fetches and clocks.
//!
//! Rules (Kafka's, KIP-497 for the pending state):
//! - HW = min LEO over the *maximal* ISR: the committed ISR plus members of
//!   an AlterPartition still in flight. It never moves backwards.
//! - A follower's LEO is unknown until it fetches in this leader epoch, so
//!   a new leader exposes nothing its ISR has not confirmed in its epoch.
//! - A follower is caught up when a fetch reaches the leader's LEO at that
//!   moment, or reaches the LEO the leader had at its previous fetch.
//!   ISR members not caught up for `replica.lag.time.max.ms` are removed.
//! - A replica outside the ISR is added back once its LEO reaches both the
//!   HW and the offset where this leader epoch began, and it was caught up
//!   within `replica.lag.time.max.ms` (a replica that stopped fetching
//!   while its LEO equalled an idle partition's HW is not proposed: the
//!   controller would refuse it, and the refused expansion would hold the
//!   HW while its outcome is unknown).
//! - One ISR change at a time: none is proposed while one is pending.
//! - A follower's state belongs to one incarnation, named by the broker
//!   epoch in its fetches (KIP-903). A fetch with a newer epoch starts the
//!   follower afresh (a restarted broker may have lost its unflushed tail);
//!   a fetch with an older one is ignored. Expansions carry the epoch the
//!   leader saw, and the controller refuses one that is not current.

use std::collections::BTreeMap;

/// A broker id.
pub type BrokerId = i32;

/// How long a leader waits before proposing an expansion again after the
/// controller refused one.
pub const EXPANSION_RETRY_MS: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Follower {
    /// Broker epoch of the incarnation whose fetches this state records
    /// (-1 until the first fetch).
    broker_epoch: i64,
    /// Fetch offset of the follower's last fetch in this epoch.
    leo: Option<i64>,
    /// Last time the follower was known to have everything.
    last_caught_up_ms: u64,
    /// The leader's LEO at the follower's previous fetch, and when.
    last_fetch_leader_leo: i64,
    last_fetch_ms: u64,
    /// Its log start offset as its last fetch reported it (-1: unknown).
    log_start: i64,
}

/// Replication state of a partition this broker leads.
#[derive(Debug, Clone)]
pub struct LeaderState {
    me: BrokerId,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<BrokerId>,
    /// The ISR the HW waits for: the controller's ISR plus the members of
    /// an expansion whose outcome is unknown (see
    /// [`pending_failed`](Self::pending_failed)).
    isr: Vec<BrokerId>,
    /// The ISR as last committed by the controller: what a proposal
    /// changes, and who is still to join.
    committed: Vec<BrokerId>,
    /// The ISR of an AlterPartition in flight.
    pending: Option<Vec<BrokerId>>,
    followers: BTreeMap<BrokerId, Follower>,
    /// Log end when this epoch began.
    epoch_start_offset: i64,
    /// No expansion is proposed before this time: the controller refused
    /// the last one (a member fenced, shutting down, or of an older
    /// incarnation), which only time or a new incarnation changes.
    no_expansion_until_ms: u64,
    high_watermark: i64,
}

impl LeaderState {
    /// Takes leadership at `leader_epoch`. Followers get one lag period
    /// from now before they can be removed from the ISR.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: BrokerId,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
        epoch_start_offset: i64,
        high_watermark: i64,
        now_ms: u64,
    ) -> Self {
        let followers = replicas
            .iter()
            .filter(|r| **r != me)
            .map(|r| {
                (
                    *r,
                    Follower {
                        broker_epoch: -1,
                        leo: None,
                        last_caught_up_ms: now_ms,
                        last_fetch_leader_leo: i64::MAX,
                        last_fetch_ms: now_ms,
                        log_start: -1,
                    },
                )
            })
            .collect();
        Self {
            me,
            leader_epoch,
            partition_epoch,
            replicas,
            committed: isr.clone(),
            isr,
            pending: None,
            followers,
            epoch_start_offset,
            high_watermark,
            no_expansion_until_ms: 0,
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }
    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }
    pub fn isr(&self) -> &[BrokerId] {
        &self.isr
    }
    pub fn replicas(&self) -> &[BrokerId] {
        &self.replicas
    }
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }
    pub fn pending(&self) -> Option<&[BrokerId]> {
        self.pending.as_deref()
    }
    /// A follower's LEO as last reported in this epoch.
    pub fn follower_leo(&self, id: BrokerId) -> Option<i64> {
        self.followers.get(&id).and_then(|f| f.leo)
    }

    /// The controller committed a new partition state with the same leader
    /// and epoch (an ISR change, ours or not): adopt it. A state older than
    /// the one held is ignored (an AlterPartition answer and a metadata
    /// delta race; the older would narrow the ISR the HW waits for).
    /// Returns whether it was adopted.
    pub fn update(
        &mut self,
        partition_epoch: i32,
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
        now_ms: u64,
    ) -> bool {
        if partition_epoch < self.partition_epoch {
            return false;
        }
        for r in &replicas {
            if *r != self.me {
                self.followers.entry(*r).or_insert(Follower {
                    broker_epoch: -1,
                    leo: None,
                    last_caught_up_ms: now_ms,
                    last_fetch_leader_leo: i64::MAX,
                    last_fetch_ms: now_ms,
                    log_start: -1,
                });
            }
        }
        self.followers.retain(|id, _| replicas.contains(id));
        self.partition_epoch = partition_epoch;
        self.replicas = replicas;
        self.committed = isr.clone();
        self.isr = isr;
        true
    }

    /// The controller answered our AlterPartition with the state it
    /// committed (already adopted through [`update`](Self::update)).
    pub fn pending_done(&mut self) {
        self.pending = None;
    }

    /// Records a fetch at `fetch_offset` by incarnation `broker_epoch` of
    /// `follower` while the leader's LEO is `leader_leo`. Returns the new
    /// HW if it moved.
    pub fn on_fetch(
        &mut self,
        follower: BrokerId,
        broker_epoch: i64,
        fetch_offset: i64,
        leader_leo: i64,
        now_ms: u64,
    ) -> Option<i64> {
        let f = self.followers.get_mut(&follower)?;
        if broker_epoch < f.broker_epoch {
            return None;
        }
        if broker_epoch > f.broker_epoch {
            // A new incarnation: nothing the old one showed holds for it.
            f.broker_epoch = broker_epoch;
            f.leo = None;
            f.last_fetch_leader_leo = i64::MAX;
        }
        f.leo = Some(fetch_offset);
        if fetch_offset >= leader_leo {
            f.last_caught_up_ms = now_ms;
        } else if fetch_offset >= f.last_fetch_leader_leo {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.last_fetch_leader_leo = leader_leo;
        f.last_fetch_ms = now_ms;
        self.advance(leader_leo)
    }

    /// Recomputes the HW after the leader's LEO or the ISR changed.
    /// Returns the new HW if it moved.
    pub fn advance(&mut self, leader_leo: i64) -> Option<i64> {
        let mut members: Vec<BrokerId> = self.isr.clone();
        if let Some(p) = &self.pending {
            members.extend(p.iter().filter(|r| !self.isr.contains(r)));
        }
        let min = members
            .iter()
            .map(|r| {
                if *r == self.me {
                    leader_leo
                } else {
                    self.follower_leo(*r).unwrap_or(-1)
                }
            })
            .min()
            .unwrap_or(leader_leo)
            .min(leader_leo);
        if min > self.high_watermark {
            self.high_watermark = min;
            Some(min)
        } else {
            None
        }
    }

    /// A follower's log start offset, from its fetch.
    pub fn set_follower_log_start(&mut self, follower: BrokerId, log_start: i64) {
        if let Some(f) = self.followers.get_mut(&follower) {
            f.log_start = log_start;
        }
    }

    /// The smallest log start offset of the ISR, this leader's
    /// `own_log_start` included (-1 while a member's is unknown): records
    /// below it are gone from every in-sync replica.
    pub fn low_watermark(&self, own_log_start: i64) -> i64 {
        self.isr
            .iter()
            .filter(|r| **r != self.me)
            .map(|r| self.followers.get(r).map_or(-1, |f| f.log_start))
            .fold(own_log_start, i64::min)
    }

    /// The broker epoch of each member of `isr` that is not in the
    /// committed ISR, as seen in its fetches: what an expansion sends.
    pub fn joining_epochs(&self, isr: &[BrokerId]) -> Vec<(BrokerId, i64)> {
        isr.iter()
            .filter(|r| !self.committed.contains(r))
            .filter_map(|r| self.followers.get(r).map(|f| (*r, f.broker_epoch)))
            .collect()
    }

    /// The ISR change to ask the controller for, if any: members lagging
    /// for more than `lag_max_ms` leave, caught-up replicas join.
    ///
    /// After an expansion failed, the HW still waits for its members while
    /// the controller's ISR lacks them. Then the proposal is made against
    /// the controller's ISR even if it equals the HW's: a member that has
    /// caught up joins again (with the broker epoch of its latest fetches,
    /// e.g. after it registered anew), and one that has not is dropped from
    /// what the HW waits for once the controller answers.
    pub fn proposed_isr(&self, now_ms: u64, lag_max_ms: u64) -> Option<Vec<BrokerId>> {
        if self.pending.is_some() {
            return None;
        }
        let join_at = self.high_watermark.max(self.epoch_start_offset);
        let keep = |r: &BrokerId| {
            *r == self.me
                || self
                    .followers
                    .get(r)
                    .is_some_and(|f| now_ms.saturating_sub(f.last_caught_up_ms) <= lag_max_ms)
        };
        let joins = |r: &BrokerId| {
            self.follower_leo(*r).is_some_and(|leo| leo >= join_at)
                && now_ms >= self.no_expansion_until_ms
                && self
                    .followers
                    .get(r)
                    .is_some_and(|f| now_ms.saturating_sub(f.last_caught_up_ms) <= lag_max_ms)
        };
        let in_next = |r: &BrokerId| {
            if self.committed.contains(r) {
                keep(r)
            } else {
                joins(r)
            }
        };
        // Compared as sets without building them: this runs for every led
        // partition ten times a second, and almost always finds nothing.
        let same =
            |a: &[BrokerId], b: &[BrokerId]| a.len() == b.len() && a.iter().all(|r| b.contains(r));
        let unchanged = self
            .replicas
            .iter()
            .all(|r| in_next(r) == self.committed.contains(r))
            && self.committed.iter().all(|r| self.replicas.contains(r))
            && same(&self.isr, &self.committed);
        if unchanged {
            return None;
        }
        Some(self.replicas.iter().copied().filter(in_next).collect())
    }

    /// An AlterPartition with `isr` was sent.
    pub fn set_pending(&mut self, isr: Vec<BrokerId>) {
        self.pending = Some(isr);
    }

    /// The AlterPartition failed or its answer was lost; a later check
    /// proposes again. A failure does not prove the controller did not
    /// commit it (a lost answer, or a retry refused because the first try
    /// already moved the partition epoch), so members it would have added
    /// stay in this leader's ISR: the HW keeps waiting for them, and the
    /// controller's ISR, from which the next leader is chosen, is never
    /// wider than the one this leader commits writes against. The next
    /// state the controller publishes replaces it.
    /// The controller refused our AlterPartition as an invalid ISR. It
    /// checks the partition epoch first, so the proposal was made against
    /// its current state and nothing was committed since: its ISR is the
    /// committed one this leader holds, and the HW stops waiting for the
    /// proposal's (and any earlier uncertain expansion's) members. No
    /// expansion is proposed again for [`EXPANSION_RETRY_MS`]: the refusal
    /// names a fenced or shutting-down broker, or an older incarnation,
    /// which a retry at once would not change.
    pub fn pending_refused(&mut self, now_ms: u64) {
        if self.pending.take().is_some() {
            self.isr = self.committed.clone();
            self.no_expansion_until_ms = now_ms + EXPANSION_RETRY_MS;
        }
    }

    pub fn pending_failed(&mut self) {
        if let Some(pending) = self.pending.take() {
            let isr = &self.isr;
            let widened: Vec<BrokerId> = self
                .replicas
                .iter()
                .copied()
                .filter(|r| isr.contains(r) || pending.contains(r))
                .collect();
            self.isr = widened;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: u64 = 10_000;

    fn leader() -> LeaderState {
        LeaderState::new(0, 5, 7, vec![0, 1, 2], vec![0, 1, 2], 100, 100, 0)
    }

    #[test]
    fn given_new_leader_then_hw_waits_for_every_isr_member_to_fetch_in_its_epoch() {
        let mut l = leader();
        assert_eq!(
            l.advance(150),
            None,
            "followers have not fetched in this epoch"
        );
        assert_eq!(l.on_fetch(1, 1, 150, 150, 10), None);
        assert_eq!(l.on_fetch(2, 1, 120, 150, 10), Some(120));
        assert_eq!(l.on_fetch(2, 1, 150, 150, 20), Some(150));
        // Never backwards, never past the leader's LEO.
        assert_eq!(l.on_fetch(2, 1, 130, 150, 30), None);
        assert_eq!(l.high_watermark(), 150);
    }

    #[test]
    fn given_a_follower_that_stopped_at_the_hw_when_the_log_grows_then_it_is_not_proposed_to_join()
    {
        let mut l = leader();
        l.on_fetch(1, 1, 100, 100, 0);
        l.on_fetch(2, 1, 100, 100, 0);
        // Follower 2 dies with its LEO at the HW; it leaves the ISR.
        l.on_fetch(1, 1, 100, 100, 11_000);
        let shrink = l.proposed_isr(11_000, LAG).expect("shrink");
        assert_eq!(shrink, vec![0, 1]);
        l.set_pending(shrink.clone());
        assert!(l.update(8, vec![0, 1, 2], shrink, 11_000));
        l.pending_done();
        // A new write, not fetched yet: follower 2's old LEO still equals
        // the HW, but it has not been caught up for longer than the lag
        // time, so it is not proposed (a refused expansion would hold the
        // HW at 100).
        assert_eq!(l.advance(101), None);
        assert_eq!(l.high_watermark(), 100);
        assert_eq!(l.proposed_isr(12_000, LAG), None);
        assert_eq!(l.on_fetch(1, 1, 101, 101, 12_100), Some(101));
    }

    #[test]
    fn given_lagging_follower_then_shrink_proposed_after_lag_time_and_hw_advances_after_commit() {
        let mut l = leader();
        l.on_fetch(1, 1, 100, 100, 0);
        l.on_fetch(2, 1, 100, 100, 0);
        // Follower 2 stops; follower 1 keeps up with a growing log.
        for t in 1..=12u64 {
            let leo = 100 + t as i64 * 10;
            l.on_fetch(1, 1, leo, leo, t * 1000);
            if t * 1000 <= LAG {
                assert_eq!(l.proposed_isr(t * 1000, LAG), None, "t={t}");
            }
        }
        assert_eq!(
            l.high_watermark(),
            100,
            "HW waits for follower 2 while it is in the ISR"
        );
        let proposal = l.proposed_isr(12_000, LAG).unwrap();
        assert_eq!(proposal, vec![0, 1]);
        l.set_pending(proposal.clone());
        assert_eq!(l.proposed_isr(12_000, LAG), None, "one change at a time");
        assert_eq!(
            l.advance(220),
            None,
            "pending shrink still counts the old member"
        );
        assert!(l.update(8, vec![0, 1, 2], proposal, 12_000));
        l.pending_done();
        assert!(
            !l.update(7, vec![0, 1, 2], vec![0, 1, 2], 12_000),
            "an older state is ignored"
        );
        assert_eq!(l.isr(), &[0, 1]);
        assert_eq!(l.advance(220), Some(220));
    }

    #[test]
    fn given_an_expansion_whose_answer_is_lost_then_the_hw_keeps_waiting_for_the_joined_member() {
        // Broker 2 rejoins; the controller commits the expansion, but the
        // answer never arrives (the leader was stopped, the request timed
        // out). The controller may now elect broker 2: this leader must not
        // commit writes broker 2 does not have.
        let mut l = LeaderState::new(0, 5, 7, vec![0, 1, 2], vec![0, 1], 100, 100, 0);
        l.on_fetch(1, 1, 100, 100, 1);
        l.on_fetch(2, 1, 100, 100, 1);
        let proposal = l.proposed_isr(1, LAG).expect("expansion");
        assert_eq!(proposal, vec![0, 1, 2]);
        l.set_pending(proposal);
        l.pending_failed();
        assert_eq!(l.isr(), &[0, 1, 2]);
        l.on_fetch(1, 1, 150, 150, 2);
        assert_eq!(l.advance(150), None, "waits for broker 2");
        l.on_fetch(2, 1, 150, 150, 3);
        assert_eq!(l.high_watermark(), 150);
        // A refused shrink leaves the ISR as it was.
        l.set_pending(vec![0, 1]);
        l.pending_failed();
        assert_eq!(l.isr(), &[0, 1, 2]);
    }

    #[test]
    fn given_follower_fetching_behind_a_growing_log_then_it_counts_as_caught_up_by_previous_leo() {
        let mut l = leader();
        let mut leo = 100;
        for t in 0..50u64 {
            let fetch = leo; // the follower always has what the leader had last time
            leo += 10;
            l.on_fetch(1, 1, fetch, leo, t * 500);
            l.on_fetch(2, 1, fetch, leo, t * 500);
        }
        assert_eq!(l.proposed_isr(25_000, LAG), None);
    }

    #[test]
    fn given_out_of_sync_replica_then_it_joins_once_at_hw_and_epoch_start() {
        let mut l = LeaderState::new(0, 5, 7, vec![0, 1, 2], vec![0, 1], 100, 90, 0);
        l.on_fetch(1, 1, 120, 120, 1);
        assert_eq!(l.high_watermark(), 120);
        l.on_fetch(2, 1, 110, 120, 1);
        assert_eq!(l.proposed_isr(1, LAG), None, "below the HW");
        l.on_fetch(2, 1, 120, 120, 2);
        assert_eq!(l.proposed_isr(2, LAG), Some(vec![0, 1, 2]));
        // Expansion pending: HW now also waits for the joining member.
        l.set_pending(vec![0, 1, 2]);
        l.on_fetch(1, 1, 130, 130, 3);
        assert_eq!(l.high_watermark(), 120);
        l.on_fetch(2, 1, 130, 130, 3);
        assert_eq!(l.high_watermark(), 130);
    }

    #[test]
    fn given_a_follower_that_restarted_then_its_old_incarnations_leo_no_longer_counts() {
        // Follower 2 left the ISR and caught up to 150 in incarnation 1,
        // then crashed and came back as incarnation 2, with its unflushed
        // tail lost. Until incarnation 2 fetches, the leader must not
        // propose it on the old LEO; once it does, its LEO is its own.
        let mut l = LeaderState::new(0, 5, 7, vec![0, 1, 2], vec![0, 1], 100, 100, 0);
        l.on_fetch(1, 1, 150, 150, 1);
        l.on_fetch(2, 1, 150, 150, 1);
        let proposal = l.proposed_isr(1, LAG).expect("expansion");
        assert_eq!(l.joining_epochs(&proposal), vec![(2, 1)]);
        // The new incarnation fetches from 120: it is no longer caught up.
        l.on_fetch(2, 2, 120, 150, 2);
        assert_eq!(l.follower_leo(2), Some(120));
        assert_eq!(l.proposed_isr(2, LAG), None);
        // A late fetch of the old incarnation is ignored.
        assert_eq!(l.on_fetch(2, 1, 150, 150, 3), None);
        assert_eq!(l.follower_leo(2), Some(120));
        l.on_fetch(2, 2, 150, 150, 4);
        let proposal = l.proposed_isr(4, LAG).expect("expansion");
        assert_eq!(l.joining_epochs(&proposal), vec![(2, 2)]);
    }

    #[test]
    fn given_an_expansion_refused_for_a_stale_broker_epoch_then_it_is_proposed_again_with_the_new_one()
     {
        // Broker 2 was stopped past its session, and its first fetches after
        // it resumed still carried its old broker epoch: the controller
        // refused the expansion. Once broker 2 fetches as its new
        // incarnation, the leader asks again, with the new epoch.
        let mut l = LeaderState::new(0, 5, 7, vec![0, 1, 2], vec![0, 1], 100, 100, 0);
        l.on_fetch(1, 1, 100, 100, 1);
        l.on_fetch(2, 1, 100, 100, 1);
        let proposal = l.proposed_isr(1, LAG).expect("expansion");
        assert_eq!(l.joining_epochs(&proposal), vec![(2, 1)]);
        l.set_pending(proposal);
        l.pending_failed();
        l.on_fetch(2, 4, 100, 100, 2);
        let proposal = l
            .proposed_isr(2, LAG)
            .expect("the expansion is proposed again");
        assert_eq!(proposal, vec![0, 1, 2]);
        assert_eq!(l.joining_epochs(&proposal), vec![(2, 4)]);
        l.set_pending(proposal.clone());
        assert!(l.update(8, vec![0, 1, 2], proposal, 3));
        l.pending_done();
        assert_eq!(l.proposed_isr(3, LAG), None, "settled");
    }

    #[test]
    fn given_an_expansion_refused_for_a_shutting_down_broker_then_the_hw_does_not_wait_and_it_is_retried_later()
     {
        // The old leader fetched once in the new epoch on its way out; the
        // controller refuses it into the ISR (it is shutting down).
        let mut l = LeaderState::new(1, 6, 9, vec![0, 1, 2], vec![1, 2], 3, 3, 0);
        l.on_fetch(0, 1, 3, 3, 1);
        l.on_fetch(2, 1, 3, 3, 1);
        let proposal = l.proposed_isr(1, LAG).expect("expansion");
        assert_eq!(proposal, vec![0, 1, 2]);
        l.set_pending(proposal);
        l.pending_refused(1);
        assert_eq!(l.isr(), &[1, 2]);
        assert_eq!(l.proposed_isr(2, LAG), None, "not asked again at once");
        // A write is committed by the members the controller has.
        assert_eq!(l.on_fetch(2, 1, 4, 4, 3), Some(4));
        // Later (broker 0 may be back by then) it is proposed again.
        l.on_fetch(0, 2, 4, 4, 500);
        l.on_fetch(2, 1, 4, 4, 500);
        assert_eq!(l.proposed_isr(500, LAG), None);
        assert_eq!(
            l.proposed_isr(1 + EXPANSION_RETRY_MS, LAG),
            Some(vec![0, 1, 2])
        );
    }

    #[test]
    fn given_a_failed_expansion_whose_member_then_stops_fetching_then_the_hw_stops_waiting_for_it_once_the_controller_answers()
     {
        let mut l = LeaderState::new(0, 5, 7, vec![0, 1, 2], vec![0, 1], 100, 100, 0);
        l.on_fetch(1, 1, 100, 100, 1);
        l.on_fetch(2, 1, 100, 100, 1);
        let proposal = l.proposed_isr(1, LAG).expect("expansion");
        l.set_pending(proposal);
        l.pending_failed();
        assert_eq!(l.isr(), &[0, 1, 2], "the HW waits for broker 2");
        // Broker 2 restarts and is far behind: it does not join, but the
        // leader asks the controller to confirm the ISR without it.
        l.on_fetch(2, 2, 50, 100, 2);
        let proposal = l
            .proposed_isr(2, LAG)
            .expect("the controller's ISR is confirmed");
        assert_eq!(proposal, vec![0, 1]);
        assert_eq!(l.joining_epochs(&proposal), vec![]);
        l.set_pending(proposal.clone());
        assert!(l.update(7, vec![0, 1, 2], proposal, 3));
        l.pending_done();
        assert_eq!(l.isr(), &[0, 1]);
        l.on_fetch(1, 1, 150, 150, 4);
        assert_eq!(l.high_watermark(), 150, "no longer waits for broker 2");
        assert_eq!(l.proposed_isr(4, LAG), None);
    }

    #[test]
    fn given_sole_isr_member_then_hw_is_its_leo() {
        let mut l = LeaderState::new(0, 1, 1, vec![0, 1], vec![0], 0, 0, 0);
        assert_eq!(l.advance(40), Some(40));
        assert_eq!(l.on_fetch(9, 1, 40, 40, 0), None, "unknown replica ignored");
    }
}
