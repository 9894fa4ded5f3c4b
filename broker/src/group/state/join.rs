//! Joining a group and rebalancing it: new, known and static members,
//! preparing and completing a rebalance, removing members.

use bytes::Bytes;

use super::*;
use crate::group::error::GroupError;

impl Group {
    pub(super) fn join(
        &mut self,
        now: i64,
        request: RequestId,
        req: JoinRequest,
        limits: &Limits,
    ) -> Effects {
        let mut fx = Effects::default();
        let unknown = req.member_id.is_empty();
        if unknown && self.members.len() + self.pending_members.len() >= limits.max_size {
            fx.join_error(
                request,
                GroupError::GroupMaxSizeReached(limits.max_size),
                &req.member_id,
            );
            return fx;
        }
        if !self.supports(&req.protocol_type, &req.protocols) {
            fx.join_error(
                request,
                GroupError::InconsistentGroupProtocol,
                &req.member_id,
            );
            return fx;
        }
        if unknown {
            self.join_new_member(now, request, req, &mut fx, limits);
        } else {
            self.join_known_member(now, request, req, &mut fx, limits);
        }
        fx
    }

    pub(super) fn join_new_member(
        &mut self,
        now: i64,
        request: RequestId,
        req: JoinRequest,
        fx: &mut Effects,
        limits: &Limits,
    ) {
        if let Some(instance) = req.instance_id.clone() {
            let new_id = new_member_id(&instance);
            match self.static_members.get(&instance).cloned() {
                Some(old_id) => {
                    self.replace_static_member(now, request, &old_id, new_id, req, fx, limits)
                }
                None => self.add_member_and_rebalance(now, request, new_id, req, fx, limits),
            }
        } else if req.require_known_member_id {
            let new_id = new_member_id(&req.client_id);
            self.pending_members
                .insert(new_id.clone(), now + i64::from(req.session_timeout_ms));
            fx.join_error(request, GroupError::MemberIdRequired, &new_id);
        } else {
            let new_id = new_member_id(&req.client_id);
            self.add_member_and_rebalance(now, request, new_id, req, fx, limits);
        }
    }

    pub(super) fn join_known_member(
        &mut self,
        now: i64,
        request: RequestId,
        req: JoinRequest,
        fx: &mut Effects,
        limits: &Limits,
    ) {
        let id = req.member_id.clone();
        if self.pending_members.remove(&id).is_some() {
            self.add_member_and_rebalance(now, request, id, req, fx, limits);
            return;
        }
        if self.is_fenced(req.instance_id.as_deref(), &id) {
            fx.join_error(
                request,
                GroupError::FencedInstanceId(req.instance_id.unwrap_or_default()),
                &id,
            );
            return;
        }
        let Some(member) = self.members.get(&id) else {
            fx.join_error(request, GroupError::UnknownMemberId(id.clone()), &id);
            return;
        };
        let unchanged = member.protocols == req.protocols;
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(now, request, req, fx, limits)
            }
            GroupState::CompletingRebalance if unchanged => {
                // The member lost the answer: send it again.
                let reply = self.current_join_reply(&id, is_leader);
                fx.reply(request, Reply::Join(reply));
            }
            GroupState::Stable if unchanged && !is_leader => {
                let reply = self.current_join_reply(&id, false);
                fx.reply(request, Reply::Join(reply));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(now, request, req, fx, limits)
            }
            GroupState::Empty | GroupState::Dead => {
                fx.join_error(request, GroupError::UnknownMemberId(id.clone()), &id)
            }
        }
    }

    pub(super) fn add_member_and_rebalance(
        &mut self,
        now: i64,
        request: RequestId,
        id: String,
        req: JoinRequest,
        fx: &mut Effects,
        limits: &Limits,
    ) {
        if self.state == GroupState::PreparingRebalance && self.generation == 0 {
            self.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        if let Some(instance) = &req.instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        let mut member = Member {
            id: id.clone(),
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            join_waiter: Some(request),
            sync_waiter: None,
            session_deadline: 0,
        };
        member.touch(now);
        self.members.insert(id, member);
        self.maybe_prepare_rebalance(now, fx, limits);
        self.try_complete_join(now, fx);
    }

    pub(super) fn update_member_and_rebalance(
        &mut self,
        now: i64,
        request: RequestId,
        req: JoinRequest,
        fx: &mut Effects,
        limits: &Limits,
    ) {
        let member = self
            .members
            .get_mut(&req.member_id)
            .expect("caller checked the member exists");
        member.protocols = req.protocols;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        if let Some(old) = member.join_waiter.replace(request) {
            // The client gave up on its earlier JoinGroup and sent another.
            fx.join_error(old, GroupError::RebalanceInProgress, &req.member_id);
        }
        self.maybe_prepare_rebalance(now, fx, limits);
        self.try_complete_join(now, fx);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn replace_static_member(
        &mut self,
        now: i64,
        request: RequestId,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
        fx: &mut Effects,
        limits: &Limits,
    ) {
        let instance = req.instance_id.clone().expect("static member");
        let old_leader = self.leader.clone().unwrap_or_default();
        let old = self.swap_member_id(old_id, &new_id, fx);
        let member = self.members.get_mut(&new_id).expect("just inserted");
        member.protocols = req.protocols;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.touch(now);
        match self.state {
            GroupState::Stable if self.select_protocol() == self.protocol => {
                let is_leader = self.leader.as_deref() == Some(new_id.as_str());
                let reply = if req.supports_skip_assignment {
                    JoinReply {
                        skip_assignment: is_leader,
                        ..self.current_join_reply(&new_id, is_leader)
                    }
                } else {
                    // Older clients must not assign in a stable group: they
                    // are told the old leader id, which is not theirs.
                    JoinReply {
                        leader: old_leader,
                        ..self.current_join_reply(&new_id, false)
                    }
                };
                let replace = StaticReplace {
                    request,
                    reply,
                    instance_id: instance,
                    old_member_id: old_id.to_owned(),
                    new_member_id: new_id,
                    old_protocols: old.protocols,
                    old_session_timeout_ms: old.session_timeout_ms,
                    old_rebalance_timeout_ms: old.rebalance_timeout_ms,
                };
                self.store(fx, AfterStore::StaticMember(Box::new(replace)));
            }
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.members.get_mut(&new_id).expect("present").join_waiter = Some(request);
                self.prepare_rebalance(now, fx, limits);
                self.try_complete_join(now, fx);
            }
            GroupState::PreparingRebalance => {
                self.members.get_mut(&new_id).expect("present").join_waiter = Some(request);
                self.try_complete_join(now, fx);
            }
            GroupState::Empty | GroupState::Dead => {
                // A group without members has no static member to replace.
                fx.join_error(
                    request,
                    GroupError::UnknownMemberId(new_id.clone()),
                    &new_id,
                );
            }
        }
    }

    /// Moves a member to another id (static member replacement). Parked
    /// requests of the old id are answered FENCED_INSTANCE_ID. Returns the
    /// member as it was.
    pub(super) fn swap_member_id(
        &mut self,
        old_id: &str,
        new_id: &str,
        fx: &mut Effects,
    ) -> Member {
        let mut member = self.members.remove(old_id).expect("static member present");
        let before = member.clone();
        let instance = member.instance_id.clone().unwrap_or_default();
        if let Some(w) = member.join_waiter.take() {
            fx.join_error(w, GroupError::FencedInstanceId(instance.clone()), old_id);
        }
        if let Some(w) = member.sync_waiter.take() {
            fx.sync_error(w, GroupError::FencedInstanceId(instance.clone()));
        }
        member.id = new_id.to_owned();
        self.members.insert(new_id.to_owned(), member);
        self.static_members.insert(instance, new_id.to_owned());
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.to_owned());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_owned());
        }
        before
    }

    pub(super) fn maybe_prepare_rebalance(&mut self, now: i64, fx: &mut Effects, limits: &Limits) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(now, fx, limits);
        }
    }

    pub(super) fn prepare_rebalance(&mut self, now: i64, fx: &mut Effects, limits: &Limits) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_assignment(fx, GroupError::RebalanceInProgress);
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let timeout = self.rebalance_timeout();
        if self.state == GroupState::Empty && limits.initial_rebalance_delay_ms > 0 {
            let delay = limits.initial_rebalance_delay_ms.min(timeout);
            self.join_deadline = Some(now + delay);
            self.initial_delay = Some(InitialDelay {
                remaining_ms: (timeout - delay).max(0),
            });
            self.new_member_added = false;
        } else {
            self.join_deadline = Some(now + timeout);
            self.initial_delay = None;
        }
        self.transition(GroupState::PreparingRebalance, now);
    }

    /// Drops the assignment of a rebalance that will not complete and
    /// answers parked SyncGroups with `error`.
    pub(super) fn reset_assignment(&mut self, fx: &mut Effects, error: GroupError) {
        self.pending_assignment = None;
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(w) = m.sync_waiter.take() {
                fx.sync_error(w, error.clone());
            }
        }
    }

    pub(super) fn try_complete_join(&mut self, now: i64, fx: &mut Effects) {
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay.is_none()
            && self.all_joined()
        {
            self.complete_join(now, fx);
        }
    }

    pub(super) fn complete_join(&mut self, now: i64, fx: &mut Effects) {
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in not_rejoined {
            self.remove_member(&id, fx);
        }
        self.initial_delay = None;
        self.new_member_added = false;
        if self.members.is_empty() {
            self.join_deadline = None;
            self.generation += 1;
            self.protocol = None;
            self.leader = None;
            self.transition(GroupState::Empty, now);
            fx.rebalances += 1;
            self.store(fx, AfterStore::Nothing);
            return;
        }
        let leader_joined = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .is_some_and(|m| m.join_waiter.is_some());
        if !leader_joined {
            match self.members.values().find(|m| m.join_waiter.is_some()) {
                Some(m) => self.leader = Some(m.id.clone()),
                None => {
                    // Only static members that have not rejoined are left:
                    // wait another round; their sessions expire meanwhile.
                    self.join_deadline = Some(now + self.rebalance_timeout());
                    return;
                }
            }
        }
        self.join_deadline = None;
        self.generation += 1;
        self.protocol = self.select_protocol();
        self.transition(GroupState::CompletingRebalance, now);
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline = Some(now + self.rebalance_timeout());
        self.pending_assignment = None;
        fx.rebalances += 1;
        let leader = self.leader.clone().unwrap_or_default();
        let everyone = self.joined_members();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let base = self.current_join_reply(&id, false);
            let m = self.members.get_mut(&id).expect("listed");
            if let Some(w) = m.join_waiter.take() {
                m.touch(now);
                let reply = JoinReply {
                    members: if id == leader {
                        everyone.clone()
                    } else {
                        Vec::new()
                    },
                    ..base
                };
                fx.reply(w, Reply::Join(reply));
            }
        }
    }

    /// Removes a member and answers its parked requests with
    /// UNKNOWN_MEMBER_ID; no state change.
    pub(super) fn remove_member(&mut self, id: &str, fx: &mut Effects) {
        let Some(mut m) = self.members.remove(id) else {
            return;
        };
        if let Some(w) = m.join_waiter.take() {
            fx.join_error(w, GroupError::UnknownMemberId(id.to_owned()), id);
        }
        if let Some(w) = m.sync_waiter.take() {
            fx.sync_error(w, GroupError::UnknownMemberId(id.to_owned()));
        }
        if let Some(instance) = &m.instance_id {
            if self.static_members.get(instance).is_some_and(|c| c == id) {
                self.static_members.remove(instance);
            }
        }
        self.pending_sync.remove(id);
        if self.leader.as_deref() == Some(id) {
            self.leader = self
                .members
                .values()
                .find(|m| m.join_waiter.is_some())
                .or_else(|| self.members.values().next())
                .map(|m| m.id.clone());
        }
    }

    /// Removes a member (left, expired) and rebalances what remains.
    pub(super) fn remove_member_and_rebalance(
        &mut self,
        now: i64,
        id: &str,
        fx: &mut Effects,
        limits: &Limits,
    ) {
        self.remove_member(id, fx);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(now, fx, limits);
                self.try_complete_join(now, fx);
            }
            GroupState::PreparingRebalance => self.try_complete_join(now, fx),
            GroupState::Empty | GroupState::Dead => {}
        }
    }
}
