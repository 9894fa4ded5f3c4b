//! The group timers: session expiry, lapsed pending members, the end of
//! the join phase (with the initial rebalance delay) and the sync deadline.

use super::*;

impl Group {
    pub(super) fn tick(&mut self, now: i64, limits: &Limits) -> Effects {
        let mut fx = Effects::default();
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline <= now && m.join_waiter.is_none() && m.sync_waiter.is_none()
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            self.remove_member_and_rebalance(now, &id, &mut fx, limits);
        }
        let lapsed: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        if !lapsed.is_empty() {
            for id in lapsed {
                self.pending_members.remove(&id);
            }
            self.try_complete_join(now, &mut fx);
        }
        if self.state == GroupState::PreparingRebalance
            && self.join_deadline.is_some_and(|d| d <= now)
        {
            match self.initial_delay {
                Some(delay) if self.new_member_added && delay.remaining_ms > 0 => {
                    let step = limits.initial_rebalance_delay_ms.min(delay.remaining_ms);
                    self.initial_delay = Some(InitialDelay {
                        remaining_ms: delay.remaining_ms - step,
                    });
                    self.new_member_added = false;
                    self.join_deadline = Some(now + step);
                }
                _ => self.complete_join(now, &mut fx),
            }
        }
        if matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && self.sync_deadline.is_some_and(|d| d <= now)
        {
            self.sync_deadline = None;
            let missing: Vec<String> = std::mem::take(&mut self.pending_sync).into_iter().collect();
            if !missing.is_empty() {
                for id in &missing {
                    self.remove_member(id, &mut fx);
                }
                self.prepare_rebalance(now, &mut fx, limits);
                self.try_complete_join(now, &mut fx);
            }
        }
        fx
    }
}
