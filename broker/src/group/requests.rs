//! What the [`GroupCoordinator`] answers, in Rill's own types: locating a
//! group's coordinator, joining, syncing, heartbeats, leaving, committing
//! and reading offsets, listing, describing and deleting groups.
//!
//! These take requests whose protocol versions were already resolved by
//! the caller (the Kafka listener, `crate::kafka::groups`) and return
//! replies and [`GroupError`]s; nothing here knows a wire format.

use super::coordinator::{Catalog, GroupCoordinator, now_ms};
use super::error::GroupError;
use super::placement::{self, OFFSETS_TOPIC};
use super::records::CommittedOffset;
use super::state::{
    ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatReply, GroupDescription,
    GroupListing, JoinReply, JoinRequest, Leaving, Reply, SyncReply, SyncRequest, TopicOffsets,
};

/// One partition's offset to commit (OffsetCommit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// -1 when the client did not say.
    pub leader_epoch: i32,
    pub metadata: String,
}

impl GroupCoordinator {
    /// The broker coordinating `group_id`: the leader of the group's offsets
    /// partition. The offsets topic is created on first use; until it has a
    /// leader the answer is [`GroupError::CoordinatorNotAvailable`].
    pub fn locate(&self, group_id: &str) -> Result<i32, GroupError> {
        let Some(partitions) = self.manager().topic_partitions(OFFSETS_TOPIC) else {
            self.ensure_offsets_topic();
            return Err(GroupError::CoordinatorNotAvailable(format!(
                "the offsets topic {OFFSETS_TOPIC} is being created"
            )));
        };
        let p = placement::partition_for(group_id, partitions);
        self.manager().leader_of(OFFSETS_TOPIC, p).ok_or_else(|| {
            GroupError::CoordinatorNotAvailable(format!("{OFFSETS_TOPIC}-{p} has no leader"))
        })
    }

    /// JoinGroup: answered when the rebalance completes (or at once for
    /// errors and for members that only re-read the current generation).
    pub async fn join(&self, group_id: &str, request: JoinRequest) -> JoinReply {
        let member_id = request.member_id.clone();
        let catalog = Catalog(self.manager());
        match self
            .park(group_id, |t, now, id| {
                t.join_in(now, id, group_id, request, &catalog)
            })
            .await
        {
            Ok(Some(Reply::Join(r))) => r,
            Ok(Some(Reply::Sync(_))) | Ok(None) => {
                JoinReply::error(GroupError::NotCoordinator, member_id)
            }
            Err(e) => JoinReply::error(e, member_id),
        }
    }

    /// SyncGroup: the leader's assignment is stored first; every member is
    /// answered with its share once it is.
    pub async fn sync(&self, group_id: &str, request: SyncRequest) -> SyncReply {
        match self
            .park(group_id, |t, now, id| t.sync(now, id, group_id, request))
            .await
        {
            Ok(Some(Reply::Sync(r))) => r,
            Ok(Some(Reply::Join(_))) | Ok(None) => SyncReply::error(GroupError::NotCoordinator),
            Err(e) => SyncReply::error(e),
        }
    }

    /// Heartbeat of a member in `generation`.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.with_table(group_id, |t, now| {
            let r = t.heartbeat(now, group_id, member_id, instance_id, generation);
            (r, Default::default())
        })
        .and_then(|r| r)
    }

    /// ConsumerGroupHeartbeat (KIP-848): answered once what it changed of
    /// the group is written with acks=all.
    pub async fn consumer_heartbeat(
        &self,
        group_id: &str,
        request: ConsumerHeartbeat,
    ) -> Result<ConsumerHeartbeatReply, GroupError> {
        let catalog = Catalog(self.manager());
        let (reply, written) = self.consumer_heartbeat_of(group_id, request, &catalog)?;
        if let Some(written) = written {
            written.await.unwrap_or(Err(GroupError::NotCoordinator))?;
        }
        let mut reply = reply?;
        self.metrics().group_consumer_heartbeats.inc();
        if reply.heartbeat_interval_ms >= self.settings().limits.consumer_heartbeat_interval_ms {
            reply.heartbeat_interval_ms = self.stable_heartbeat_interval();
        }
        Ok(reply)
    }

    /// ConsumerGroupDescribe of one group.
    pub fn consumer_describe(
        &self,
        group_id: &str,
    ) -> Result<ConsumerGroupDescription, GroupError> {
        self.with_table(group_id, |t, _| {
            (t.consumer_describe(group_id), Default::default())
        })?
    }

    /// LeaveGroup: what became of each of `leaving`, in order.
    pub fn leave(
        &self,
        group_id: &str,
        leaving: &[Leaving],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId(
                "the group id must not be empty".to_owned(),
            ));
        }
        self.with_table(group_id, |t, now| t.leave(now, group_id, leaving))
    }

    /// OffsetCommit: checked against the group (generation, member; a
    /// negative generation commits for groups without members), written
    /// with acks=all, then visible to [`GroupCoordinator::committed`].
    /// Returns what became of each offset, in order: unknown partitions and
    /// too large metadata fail alone, the rest are written together.
    pub async fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        offsets: Vec<OffsetToCommit>,
    ) -> Vec<Result<(), GroupError>> {
        let (checks, to_write) = self.check_offsets(offsets);
        let written = if to_write.is_empty() {
            Ok(())
        } else {
            match self.commit_offsets(group_id, member_id, instance_id, generation, to_write) {
                Ok(rx) => rx.await.unwrap_or(Err(GroupError::NotCoordinator)),
                Err(e) => Err(e),
            }
        };
        if written.is_ok() {
            self.metrics().group_offset_commits.inc();
        }
        checks
            .into_iter()
            .map(|check| check.and_then(|()| written.clone()))
            .collect()
    }

    /// TxnOffsetCommit: like [`Self::commit`], but the offsets are written
    /// in a batch of `producer`'s transaction (id, epoch) and become
    /// visible only with its commit marker. The member is checked when
    /// named (v3+).
    pub async fn commit_in_transaction(
        &self,
        group_id: &str,
        producer: (i64, i16),
        member: Option<(&str, Option<&str>, i32)>,
        offsets: Vec<OffsetToCommit>,
    ) -> Vec<Result<(), GroupError>> {
        let (checks, to_write) = self.check_offsets(offsets);
        let written = if to_write.is_empty() {
            Ok(())
        } else {
            match self.commit_txn_offsets(group_id, producer, member, to_write) {
                Ok(rx) => rx.await.unwrap_or(Err(GroupError::NotCoordinator)),
                Err(e) => Err(e),
            }
        };
        checks
            .into_iter()
            .map(|check| check.and_then(|()| written.clone()))
            .collect()
    }

    /// Per offset, an error decided before writing (unknown partition, too
    /// large metadata); and the offsets to write.
    #[allow(clippy::type_complexity)]
    fn check_offsets(
        &self,
        offsets: Vec<OffsetToCommit>,
    ) -> (
        Vec<Result<(), GroupError>>,
        Vec<((String, i32), CommittedOffset)>,
    ) {
        let now = now_ms();
        let max_metadata = self.settings().limits.max_metadata_bytes;

        // Per partition: an error decided before writing, or the offset to write.
        let mut checks = Vec::with_capacity(offsets.len());
        let mut to_write: Vec<((String, i32), CommittedOffset)> = Vec::new();
        // Partition counts are looked up once per run of the same topic.
        let mut known: Option<(String, Option<i32>)> = None;
        for o in offsets {
            let known = match &known {
                Some((topic, n)) if *topic == o.topic => *n,
                _ => {
                    let n = self.manager().topic_partitions(&o.topic);
                    known = Some((o.topic.clone(), n));
                    n
                }
            };
            let check = if known.is_none_or(|n| o.partition < 0 || o.partition >= n) {
                Err(GroupError::UnknownTopicOrPartition(format!(
                    "{}-{}",
                    o.topic, o.partition
                )))
            } else if o.metadata.len() > max_metadata {
                Err(GroupError::OffsetMetadataTooLarge {
                    size: o.metadata.len(),
                    max: max_metadata,
                })
            } else {
                to_write.push((
                    (o.topic, o.partition),
                    CommittedOffset {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata,
                        commit_timestamp: now,
                    },
                ));
                Ok(())
            };
            checks.push(check);
        }
        (checks, to_write)
    }

    /// OffsetFetch of one group: the committed offsets of the `wanted`
    /// partitions by topic, or of every committed partition when `None`.
    /// Offsets not committed read as `None`.
    pub fn committed(
        &self,
        group_id: &str,
        wanted: Option<&[(String, Vec<i32>)]>,
    ) -> Result<TopicOffsets, GroupError> {
        self.with_table(group_id, |t, _| {
            (t.committed(group_id, wanted), Default::default())
        })
    }

    /// ListGroups: every group of every loaded partition, and whether some
    /// partition is still loading.
    pub fn list(&self) -> (Vec<GroupListing>, bool) {
        self.list_all()
    }

    /// DescribeGroups of one group; `None` when it does not exist.
    pub fn describe(&self, group_id: &str) -> Result<Option<GroupDescription>, GroupError> {
        self.with_table(group_id, |t, _| (t.describe(group_id), Default::default()))
    }

    /// OffsetDelete of one group: per partition, `None` when its committed
    /// offset is gone (or there was none), else why it was kept (a topic
    /// that does not exist: UNKNOWN_TOPIC_OR_PARTITION, as Kafka). An error
    /// of the whole group (unknown, not Empty, a failed write) comes alone.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<GroupError>>, GroupError> {
        let exists: Vec<bool> = partitions
            .iter()
            .map(|(topic, _)| self.manager().topic_partitions(topic).is_some())
            .collect();
        let known: Vec<(String, i32)> = partitions
            .iter()
            .zip(&exists)
            .filter(|(_, e)| **e)
            .map(|(p, _)| p.clone())
            .collect();
        let (results, written) = self.delete_offsets_of(group_id, &known)?;
        written.await.unwrap_or(Err(GroupError::NotCoordinator))?;
        let mut results = results.into_iter();
        Ok(partitions
            .iter()
            .zip(exists)
            .map(|((topic, partition), exists)| match exists {
                true => results.next().flatten(),
                false => Some(GroupError::UnknownTopicOrPartition(format!(
                    "{topic}-{partition}"
                ))),
            })
            .collect())
    }

    /// DeleteGroups of one group: removes it if Empty, with its offsets
    /// (tombstones written with acks=all).
    pub async fn delete(&self, group_id: &str) -> Result<(), GroupError> {
        match self.delete_group(group_id) {
            Ok(rx) => rx.await.unwrap_or(Err(GroupError::NotCoordinator)),
            Err(e) => Err(e),
        }
    }
}
