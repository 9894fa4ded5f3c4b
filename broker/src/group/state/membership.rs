//! A joined member's requests: SyncGroup (and the stored assignment that
//! answers it), heartbeats, leaving, and the checks of an offset commit.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::*;
use crate::group::error::GroupError;

impl Group {
    pub(super) fn sync(&mut self, now: i64, request: RequestId, req: SyncRequest) -> Effects {
        let mut fx = Effects::default();
        let error = if self.is_fenced(req.instance_id.as_deref(), &req.member_id) {
            Some(GroupError::FencedInstanceId(
                req.instance_id.clone().unwrap_or_default(),
            ))
        } else if !self.members.contains_key(&req.member_id) {
            Some(GroupError::UnknownMemberId(req.member_id.clone()))
        } else if req.generation != self.generation {
            Some(GroupError::IllegalGeneration {
                given: req.generation,
                current: self.generation,
            })
        } else if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| self.protocol_type.as_ref() != Some(t))
            || req
                .protocol
                .as_ref()
                .is_some_and(|p| self.protocol.as_ref() != Some(p))
        {
            Some(GroupError::InconsistentGroupProtocol)
        } else {
            match self.state {
                GroupState::Empty => Some(GroupError::UnknownMemberId(req.member_id.clone())),
                GroupState::PreparingRebalance => Some(GroupError::RebalanceInProgress),
                GroupState::Dead => Some(GroupError::CoordinatorNotAvailable(
                    "the group is being removed".to_owned(),
                )),
                GroupState::CompletingRebalance | GroupState::Stable => None,
            }
        };
        if let Some(e) = error {
            fx.sync_error(request, e);
            return fx;
        }
        self.pending_sync.remove(&req.member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        let member = self.members.get_mut(&req.member_id).expect("checked");
        member.touch(now);
        if self.state == GroupState::Stable {
            let reply = SyncReply {
                error: None,
                protocol_type: self.protocol_type.clone(),
                protocol: self.protocol.clone(),
                assignment: member.assignment.clone(),
            };
            fx.reply(request, Reply::Sync(reply));
            return fx;
        }
        if let Some(old) = member.sync_waiter.replace(request) {
            fx.sync_error(old, GroupError::RebalanceInProgress);
        }
        if is_leader && self.pending_assignment.is_none() {
            let given: HashMap<String, Bytes> = req.assignments.into_iter().collect();
            let assignment: BTreeMap<String, Bytes> = self
                .members
                .keys()
                .map(|id| (id.clone(), given.get(id).cloned().unwrap_or_default()))
                .collect();
            fx.stores.push(Store {
                group: self.id.clone(),
                value: self.value(Some(&assignment)),
                after: AfterStore::Assignment {
                    generation: self.generation,
                },
            });
            self.pending_assignment = Some(assignment);
        }
        fx
    }

    pub(super) fn assignment_stored(
        &mut self,
        now: i64,
        generation: i32,
        result: Result<(), GroupError>,
        limits: &Limits,
    ) -> Effects {
        let mut fx = Effects::default();
        if self.state != GroupState::CompletingRebalance || self.generation != generation {
            return fx;
        }
        let Some(assignment) = self.pending_assignment.take() else {
            return fx;
        };
        match result {
            Ok(()) => {
                for (id, m) in &mut self.members {
                    m.assignment = assignment.get(id).cloned().unwrap_or_default();
                    if let Some(w) = m.sync_waiter.take() {
                        m.touch(now);
                        fx.reply(
                            w,
                            Reply::Sync(SyncReply {
                                error: None,
                                protocol_type: self.protocol_type.clone(),
                                protocol: self.protocol.clone(),
                                assignment: m.assignment.clone(),
                            }),
                        );
                    }
                }
                self.transition(GroupState::Stable, now);
            }
            Err(e) => {
                self.reset_assignment(&mut fx, e);
                self.maybe_prepare_rebalance(now, &mut fx, limits);
                self.try_complete_join(now, &mut fx);
            }
        }
        fx
    }

    pub(super) fn heartbeat(
        &mut self,
        now: i64,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.check_fenced(instance_id, member_id)?;
        if self.state == GroupState::Empty {
            return Err(GroupError::UnknownMemberId(member_id.to_owned()));
        }
        self.touch_member(now, member_id, generation)?;
        match self.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    pub(super) fn leave(
        &mut self,
        now: i64,
        leaving: &Leaving,
        fx: &mut Effects,
        limits: &Limits,
    ) -> Result<(), GroupError> {
        let id = if leaving.member_id.is_empty() {
            let Some(instance) = &leaving.instance_id else {
                return Err(GroupError::UnknownMemberId(String::new()));
            };
            match self.static_members.get(instance) {
                Some(id) => id.clone(),
                None => return Err(GroupError::UnknownMemberId(String::new())),
            }
        } else {
            leaving.member_id.clone()
        };
        if self.pending_members.remove(&id).is_some() {
            self.try_complete_join(now, fx);
            return Ok(());
        }
        self.check_fenced(leaving.instance_id.as_deref(), &id)?;
        if !self.members.contains_key(&id) {
            return Err(GroupError::UnknownMemberId(id));
        }
        self.remove_member_and_rebalance(now, &id, fx, limits);
        Ok(())
    }

    pub(super) fn validate_commit(
        &mut self,
        now: i64,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.check_fenced(instance_id, member_id)?;
        if generation < 0 && self.state == GroupState::Empty {
            // Offsets only: a standalone consumer or an admin tool.
            return Ok(());
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        self.touch_member(now, member_id, generation)
    }

    /// Checks that `member_id` is a member of the current `generation` and
    /// renews its session.
    fn touch_member(
        &mut self,
        now: i64,
        member_id: &str,
        generation: i32,
    ) -> Result<(), GroupError> {
        let current = self.generation;
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(GroupError::UnknownMemberId(member_id.to_owned()));
        };
        if generation != current {
            return Err(GroupError::IllegalGeneration {
                given: generation,
                current,
            });
        }
        member.touch(now);
        Ok(())
    }
}
