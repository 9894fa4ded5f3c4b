//! A partition's replication role and everything that depends on it:
//! becoming leader or follower, serving follower fetches as leader
//! (divergence check, follower LEO tracking, HW), appending and truncating
//! as follower, acks=all waits, and ISR change proposals.
//!
//! Lock order everywhere: log, then role, then epochs.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{info, warn};

use super::role::{IsrProposal, ReplicaRead, Role, RoleView};
use super::{Error, Partition};
use crate::log::FlushPolicy;
use crate::log::batch::{BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use crate::replication::leader::LeaderState;

/// Milliseconds on a monotonic clock shared by the broker.
pub fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Partition {
    /// The role, for metadata and metrics.
    pub fn role_view(&self) -> RoleView {
        match &*self.role.lock() {
            Role::Standalone => RoleView {
                leader: None,
                leader_epoch: self.leader_epoch.load(std::sync::atomic::Ordering::Relaxed),
                is_leader: true,
                isr: vec![],
                replicas: vec![],
            },
            Role::Leader(l) => RoleView {
                leader: None,
                leader_epoch: l.leader_epoch(),
                is_leader: true,
                isr: l.isr().to_vec(),
                replicas: l.replicas().to_vec(),
            },
            Role::Follower {
                leader,
                leader_epoch,
            } => RoleView {
                leader: Some(*leader),
                leader_epoch: *leader_epoch,
                is_leader: false,
                isr: vec![],
                replicas: vec![],
            },
            Role::NoLeader { leader_epoch } => RoleView {
                leader: None,
                leader_epoch: *leader_epoch,
                is_leader: false,
                isr: vec![],
                replicas: vec![],
            },
        }
    }

    /// Consumers are served by the leader (or a standalone broker) only.
    pub(super) fn check_serves_clients(&self) -> Result<(), Error> {
        match &*self.role.lock() {
            Role::Standalone | Role::Leader(_) => Ok(()),
            Role::Follower { leader, .. } => Err(self.not_leader(Some(*leader))),
            Role::NoLeader { .. } => Err(self.not_leader(None)),
        }
    }

    /// Wakes everything waiting on the HW (long polls, acks=all writes).
    fn wake_waiters(&self) {
        self.high_watermark.send_modify(|_| {});
    }

    /// Waits until the HW reaches `target` while this broker still leads at
    /// `epoch`, then checks that the ISR the write reached is at least
    /// min.insync.replicas. `Err(None)` means the deadline passed.
    ///
    /// The role is checked before the HW, under the role lock: only a HW
    /// this leader computed in `epoch` proves the write committed. Once the
    /// broker follows, the HW is the new leader's and may cover `target`
    /// after the write itself was truncated and the offset reused.
    ///
    /// The ISR size is checked again here, not only at append: while the
    /// write waited, the ISR may have shrunk to fewer than
    /// min.insync.replicas members and the HW then reached `target` with
    /// those alone. Such a write is on too few replicas to acknowledge.
    pub(super) async fn wait_replicated(
        &self,
        target: i64,
        base_offset: i64,
        epoch: i32,
        deadline: tokio::time::Instant,
    ) -> Result<(), Option<Error>> {
        let min = self.log.read().config().min_insync_replicas;
        let mut hw = self.high_watermark.subscribe();
        loop {
            {
                let role = self.role.lock();
                let leader = match &*role {
                    Role::Leader(l) if l.leader_epoch() == epoch => Some(l),
                    _ => None,
                };
                let Some(leader) = leader.filter(|_| self.check_state().is_ok()) else {
                    return Err(Some(Error::LeadershipLost {
                        topic: self.topic.to_string(),
                        partition: self.id,
                        base_offset,
                    }));
                };
                if *hw.borrow_and_update() >= target {
                    let isr = leader.isr().len();
                    if (isr as u32) < min {
                        return Err(Some(Error::NotEnoughReplicasAfterAppend {
                            topic: self.topic.to_string(),
                            partition: self.id,
                            base_offset,
                            isr,
                            min,
                        }));
                    }
                    return Ok(());
                }
            }
            tokio::select! {
                changed = hw.changed() => {
                    if changed.is_err() {
                        return Err(Some(Error::TopicDeleted(self.topic.to_string())));
                    }
                }
                () = tokio::time::sleep_until(deadline) => return Err(None),
            }
        }
    }

    /// Takes (or keeps) leadership as the controller says. A new epoch is
    /// recorded in the epoch cache at the current log end; followers must
    /// fetch in this epoch before the HW moves past what they confirmed.
    pub fn become_leader(
        &self,
        me: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
    ) -> Result<(), Error> {
        // New leadership, or new replicas: the ISR may have to change.
        self.want_isr_check();
        let now = now_ms();
        let log = self.log.write();
        let mut role = self.role.lock();
        if let Role::Leader(l) = &mut *role {
            if l.leader_epoch() == leader_epoch {
                if !l.update(partition_epoch, replicas, isr, now) {
                    return Ok(());
                }
                let own = self.own_leo(&log);
                if let Some(hw) = l.advance(own) {
                    self.advance_high_watermark(hw);
                }
                return Ok(());
            }
        }
        let leo = log.next_offset();
        // In memory: the next interval flush saves it, before the recovery
        // point passes anything appended in this epoch (replication::epochs).
        self.epochs.lock().assign_unsaved(leader_epoch, leo);
        let hw = self.high_watermark().min(leo);
        let mut state = LeaderState::new(
            me,
            leader_epoch,
            partition_epoch,
            replicas,
            isr,
            leo,
            hw,
            now,
        );
        if let Some(hw) = state.advance(self.own_leo(&log)) {
            self.advance_high_watermark(hw);
        }
        info!(topic = %self.topic, partition = self.id, leader_epoch, log_end = leo, high_watermark = hw, "became leader");
        *role = Role::Leader(state);
        drop(role);
        drop(log);
        self.metrics.leadership_changes.inc();
        self.wake_waiters();
        Ok(())
    }

    /// The leader's own LEO for HW purposes: with flush=fsync only what is
    /// on disk counts.
    pub(super) fn own_leo(&self, log: &crate::log::PartitionLog) -> i64 {
        match log.config().flush {
            FlushPolicy::Fsync => log.flushed_offset(),
            FlushPolicy::Replicated => log.next_offset(),
        }
    }

    /// Follows `leader` at `leader_epoch`. Returns whether anything changed
    /// (the caller then (re)starts fetching).
    pub fn become_follower(&self, leader: i32, leader_epoch: i32) -> bool {
        let _log = self.log.write();
        let mut role = self.role.lock();
        if matches!(&*role, Role::Follower { leader: l, leader_epoch: e } if *l == leader && *e == leader_epoch)
        {
            return false;
        }
        if matches!(&*role, Role::Leader(_)) {
            self.metrics.leadership_changes.inc();
        }
        info!(topic = %self.topic, partition = self.id, leader, leader_epoch, "became follower");
        *role = Role::Follower {
            leader,
            leader_epoch,
        };
        drop(role);
        drop(_log);
        self.wake_waiters();
        true
    }

    /// The partition has no leader (or this broker is no longer assigned).
    pub fn become_leaderless(&self, leader_epoch: i32) {
        let _log = self.log.write();
        *self.role.lock() = Role::NoLeader { leader_epoch };
        drop(_log);
        self.wake_waiters();
    }

    /// What a follower sends: (fetch offset = log end, epoch of its last
    /// batch, the leader epoch it follows). `None` unless following.
    pub fn fetch_position(&self) -> Option<(i64, i32, i32)> {
        // An offline replica stops fetching: the leader then drops it from
        // the ISR once it lags.
        self.check_state().ok()?;
        let log = self.log.read();
        let role = self.role.lock();
        let Role::Follower { leader_epoch, .. } = &*role else {
            return None;
        };
        let last_epoch = self.epochs.lock().latest_epoch();
        Some((log.next_offset(), last_epoch, *leader_epoch))
    }

    /// This replica's log start offset.
    pub fn log_start(&self) -> i64 {
        self.log.read().log_start_offset()
    }

    /// Leader: a follower's log start offset, as its fetch reported it.
    pub fn record_follower_log_start(&self, follower: i32, log_start: i64) {
        if let Role::Leader(l) = &mut *self.role.lock() {
            l.set_follower_log_start(follower, log_start);
        }
    }

    /// Follower: records the leader deleted (DeleteRecords) are deleted
    /// here too, up to this replica's log end.
    pub fn follow_log_start(&self, leader_log_start: i64) -> Result<(), Error> {
        if leader_log_start <= self.log.read().log_start_offset() {
            return Ok(());
        }
        let mut log = self.log.write();
        log.advance_log_start(leader_log_start)
            .map(|_| ())
            .map_err(|e| self.log_error(e))
    }

    /// The smallest log start offset of the in-sync replicas (this one's
    /// when standalone); -1 while a member's is unknown.
    pub fn low_watermark(&self) -> i64 {
        let own = self.log.read().log_start_offset();
        match &*self.role.lock() {
            Role::Leader(l) => l.low_watermark(own),
            _ => own,
        }
    }

    /// Leader side of a follower fetch: checks the epoch and divergence,
    /// records the follower's LEO (which may advance the HW) and reads from
    /// `fetch_offset` up to the log end.
    pub fn replica_fetch(
        &self,
        follower: i32,
        follower_broker_epoch: i64,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        follower_leader_epoch: i32,
        max_bytes: usize,
    ) -> Result<ReplicaRead, Error> {
        self.check_state()?;
        let now = now_ms();
        let log = self.log.read();
        let mut role = self.role.lock();
        let Role::Leader(l) = &mut *role else {
            return Ok(ReplicaRead::NotLeader);
        };
        if follower_leader_epoch < l.leader_epoch() {
            return Ok(ReplicaRead::FencedEpoch);
        }
        if follower_leader_epoch > l.leader_epoch() {
            return Ok(ReplicaRead::UnknownEpoch);
        }
        let leo = log.next_offset();
        let log_start = log.log_start_offset();
        if fetch_offset < log_start {
            return Ok(ReplicaRead::OutOfRange {
                log_start_offset: log_start,
            });
        }
        let diverging = if last_fetched_epoch >= 0 {
            let (epoch, end) = self.epochs.lock().end_offset_for(last_fetched_epoch, leo);
            (epoch != last_fetched_epoch || end < fetch_offset).then_some((epoch, end))
        } else if fetch_offset > leo {
            let epoch = self.epochs.lock().latest_epoch();
            Some((epoch, leo))
        } else {
            None
        };
        if let Some((epoch, end_offset)) = diverging {
            return Ok(ReplicaRead::Diverging {
                epoch,
                end_offset,
                high_watermark: self.high_watermark(),
                log_start_offset: log_start,
            });
        }
        let own = self.own_leo(&log);
        if let Some(hw) = l.on_fetch(follower, follower_broker_epoch, fetch_offset, own, now) {
            self.advance_high_watermark(hw);
        }
        // A follower outside the ISR may have caught up.
        let outside = !l.isr().contains(&follower);
        drop(role);
        if outside {
            self.want_isr_check();
        }
        let read = log
            .read(fetch_offset, max_bytes, leo)
            .map_err(|e| self.log_error(e))?;
        Ok(ReplicaRead::Data {
            records: read.data,
            high_watermark: self.high_watermark(),
            log_start_offset: log_start,
        })
    }

    /// The end offset of `epoch` in this leader's log (OffsetForLeaderEpoch).
    pub fn end_offset_for_epoch(
        &self,
        leader_epoch: i32,
        epoch: i32,
    ) -> Result<(i32, i64), ReplicaRead> {
        let log = self.log.read();
        let role = self.role.lock();
        let Role::Leader(l) = &*role else {
            return Err(ReplicaRead::NotLeader);
        };
        if leader_epoch < l.leader_epoch() {
            return Err(ReplicaRead::FencedEpoch);
        }
        if leader_epoch > l.leader_epoch() {
            return Err(ReplicaRead::UnknownEpoch);
        }
        Ok(self.epochs.lock().end_offset_for(epoch, log.next_offset()))
    }

    /// A receiver that changes whenever the log end moves (leader side
    /// long polls of follower fetches).
    pub fn subscribe_log_end(&self) -> tokio::sync::watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    /// Follower side: stores the leader's batches verbatim, records new
    /// epochs, makes them durable with flush=fsync (so the next fetch
    /// offset reports only what is on disk), and follows the leader's HW.
    /// An fsync failure takes the partition offline, as on a leader.
    pub async fn append_as_follower(
        &self,
        records: Bytes,
        leader_high_watermark: i64,
    ) -> Result<(), Error> {
        self.check_state()?;
        let mut fsync = None;
        if !records.is_empty() {
            let mut log = self.log.write();
            if !matches!(&*self.role.lock(), Role::Follower { .. }) {
                return Ok(());
            }
            let info = log
                .append_replicated(&records)
                .map_err(|e| self.log_error(e))?;
            // The batches are in the log now: everything below is memory
            // only and cannot fail, so the replica's state never lags its
            // log. A new epoch reaches the file at the next flush, before
            // the recovery point passes it (replication::epochs); a write
            // here could fail on a full disk after the append succeeded.
            let mut epochs = self.epochs.lock();
            let mut pos = 0;
            while pos + HEADER_LEN <= records.len() {
                let h = BatchHeader::parse(&records[pos..]).expect("validated by append");
                if h.partition_leader_epoch > epochs.latest_epoch() {
                    epochs.assign_unsaved(h.partition_leader_epoch, h.base_offset);
                }
                pos += LOG_OVERHEAD + h.batch_length as usize;
            }
            drop(epochs);
            if let Some(states) = self.producers.lock().as_mut() {
                super::produce::record_stored(states, &records);
            }
            self.record_txn_batches(log.active_segment_base(), &records, None);
            if log.config().flush == FlushPolicy::Fsync {
                fsync = Some(info.next_offset);
            }
            self.log_end.send_replace(info.next_offset);
            self.metrics
                .bytes_in
                .with_label_values(&[&self.topic])
                .inc_by(info.bytes as u64);
        }
        if let Some(target) = fsync {
            self.make_durable(target, "follower").await?;
        }
        let leo = self.log.read().next_offset();
        self.advance_high_watermark(leader_high_watermark.min(leo));
        Ok(())
    }

    /// Follower side: the leader says our log diverged after `epoch`,
    /// which ends at `end_offset` in its log. Truncate to the end of the
    /// last epoch both logs share; with no common epoch, restart empty at
    /// the leader's log start.
    pub fn truncate_diverging(
        &self,
        epoch: i32,
        end_offset: i64,
        leader_log_start: i64,
    ) -> Result<(), Error> {
        let mut log = self.log.write();
        // The answer was to a fetch made while following; a replica that
        // has led since (the truncation waits for a blocking thread) keeps
        // its log.
        if !matches!(&*self.role.lock(), Role::Follower { .. }) {
            return Ok(());
        }
        let mut epochs = self.epochs.lock();
        let leo = log.next_offset();
        let target = if epoch < 0 {
            None
        } else {
            let (own_epoch, own_end) = epochs.end_offset_for(epoch, leo);
            (own_epoch >= 0).then_some(end_offset.min(own_end))
        };
        // A log holding nothing, already starting where the leader's does,
        // is what a reset would leave: only its epochs go. Every follower
        // that led an empty partition at an older epoch lands here when
        // leadership moves, so this skips thousands of synced rewrites.
        let empty_at_start = leo == log.log_start_offset() && leo == leader_log_start;
        let truncated = match target {
            Some(t) => log.truncate_to(t),
            None if empty_at_start => Ok(()),
            None => log.reset_to(leader_log_start),
        };
        if let Err(e) = truncated {
            // Part of it may be done (segments deleted, the recovery point
            // not yet lowered): the replica's state no longer matches its
            // log, so it stops serving and fetching, as after an fsync
            // error, rather than report a log end it does not have.
            self.take_offline("truncating the follower log failed", &e);
            return Err(self.log_error(e));
        }
        // From here on everything is in memory and cannot fail, so the
        // producer and transaction state always follow the truncated log.
        match target {
            Some(_) => {
                epochs.truncate_from_end(log.next_offset());
            }
            None => epochs.clear(),
        }
        if let Err(e) = epochs.save_if_unsaved() {
            // The next flush saves it; until then a restart drops the
            // entries past the log end itself.
            warn!(topic = %self.topic, partition = self.id, error = %e, "saving the truncated leader epoch cache failed; the next flush retries");
        }
        let new_leo = log.next_offset();
        drop(epochs);
        self.reset_producers();
        warn!(topic = %self.topic, partition = self.id, epoch, end_offset, from = leo, to = new_leo, "follower log diverged from the leader: truncated");
        // The HW never exceeds the log end.
        self.high_watermark.send_if_modified(|hw| {
            let changed = *hw > new_leo;
            *hw = (*hw).min(new_leo);
            changed
        });
        self.log_end.send_replace(new_leo);
        Ok(())
    }

    /// Follower side: the fetch offset is below the leader's log start;
    /// restart empty there.
    pub fn reset_to_leader_start(&self, log_start: i64) -> Result<(), Error> {
        self.truncate_diverging(-1, -1, log_start)
    }

    /// The ISR change this leader should ask for, marked pending.
    pub fn propose_isr(&self, lag_max: Duration) -> Option<IsrProposal> {
        let mut role = self.role.lock();
        let Role::Leader(l) = &mut *role else {
            return None;
        };
        let isr = l.proposed_isr(now_ms(), lag_max.as_millis() as u64)?;
        l.set_pending(isr.clone());
        Some(IsrProposal {
            leader_epoch: l.leader_epoch(),
            partition_epoch: l.partition_epoch(),
            joining_epochs: l.joining_epochs(&isr),
            isr,
        })
    }

    /// The leader epoch of a partition this broker leads but whose replica
    /// went offline (an fsync error): it must hand leadership over.
    pub fn offline_leadership(&self) -> Option<i32> {
        if self.state.load(std::sync::atomic::Ordering::Acquire) != super::OFFLINE {
            return None;
        }
        match &*self.role.lock() {
            Role::Leader(l) => Some(l.leader_epoch()),
            _ => None,
        }
    }

    /// The controller answered an ISR change: adopt the committed state,
    /// or clear the pending change so a later check proposes again.
    pub fn isr_change_done(&self, leader_epoch: i32, committed: Option<(i32, Vec<i32>, Vec<i32>)>) {
        let log = self.log.read();
        let mut role = self.role.lock();
        let Role::Leader(l) = &mut *role else { return };
        if l.leader_epoch() != leader_epoch {
            return;
        }
        match committed {
            Some((partition_epoch, replicas, isr)) => {
                let shrink = isr.len() < l.isr().len();
                l.pending_done();
                // Not adopted: a newer state already came with the metadata.
                if l.update(partition_epoch, replicas, isr, now_ms()) {
                    if shrink {
                        self.metrics.isr_shrinks.inc();
                    } else {
                        self.metrics.isr_expands.inc();
                    }
                    info!(topic = %self.topic, partition = self.id, isr = ?l.isr(), "ISR changed");
                    if let Some(hw) = l.advance(self.own_leo(&log)) {
                        self.advance_high_watermark(hw);
                    }
                }
            }
            None => l.pending_failed(),
        }
        // Proposed again after a failure, or the next change after this one.
        drop(role);
        self.want_isr_check();
    }

    /// The controller refused the ISR change as invalid (definitive, see
    /// [`LeaderState::pending_refused`](crate::replication::leader::LeaderState::pending_refused)):
    /// the HW stops waiting for the refused members; expansions wait a
    /// moment before they are proposed again.
    pub fn isr_change_refused(&self, leader_epoch: i32) {
        let log = self.log.read();
        let mut role = self.role.lock();
        let Role::Leader(l) = &mut *role else { return };
        if l.leader_epoch() != leader_epoch {
            return;
        }
        l.pending_refused(now_ms());
        if let Some(hw) = l.advance(self.own_leo(&log)) {
            self.advance_high_watermark(hw);
        }
        drop(role);
        self.want_isr_check();
    }

    pub(super) fn io_error(&self, what: &str, e: std::io::Error) -> Error {
        self.log_error(crate::log::LogError::io(what.to_owned(), e))
    }
}

#[cfg(test)]
mod tests;
