//! Share groups (KIP-932) at their coordinator: membership, the stored
//! share-partition states and group configs (see
//! `crate::group::state`'s share part). Writes go through the shard's
//! writer like every other record of the offsets topic and are applied
//! to the table once they are in the log.

use std::collections::{BTreeMap, BTreeSet};

use tokio::sync::oneshot;
use uuid::Uuid;

use super::{Catalog, Done, GroupCoordinator, Shard, WriteJob, storage};
use crate::group::error::GroupError;
use crate::group::records::ShareStateValue;
use crate::group::state::{
    ShareConfig, ShareGroupDescription, ShareHeartbeat, ShareHeartbeatReply, ShareWrite,
};

impl GroupCoordinator {
    /// Queues share-group records; resolves once they are written and
    /// applied (at once when there are none).
    fn write_share(&self, shard: &mut Shard, writes: Vec<ShareWrite>) -> super::Written {
        let (tx, rx) = oneshot::channel();
        if writes.is_empty() {
            let _ = tx.send(Ok(()));
            return rx;
        }
        let records = storage::share_records(&writes);
        self.enqueue(
            shard,
            WriteJob {
                records,
                done: Done::Share { writes, reply: tx },
            },
        );
        rx
    }

    async fn written(rx: super::Written) -> Result<(), GroupError> {
        rx.await.unwrap_or(Err(GroupError::NotCoordinator))
    }

    /// ShareGroupHeartbeat: answered once a new group is stored.
    pub async fn share_heartbeat(
        &self,
        group_id: &str,
        request: ShareHeartbeat,
    ) -> Result<ShareHeartbeatReply, GroupError> {
        let catalog = Catalog(self.manager());
        let (reply, written) = self.with_shard(group_id, |shard, now| {
            let (reply, writes) = shard
                .table
                .share_heartbeat(now, group_id, request, &catalog);
            Ok((reply, self.write_share(shard, writes)))
        })?;
        Self::written(written).await?;
        reply
    }

    /// ShareGroupDescribe of one group.
    pub fn share_describe(&self, group_id: &str) -> Result<ShareGroupDescription, GroupError> {
        self.with_shard(group_id, |shard, _| shard.table.share_describe(group_id))
    }

    /// The stored state of one share partition and the group's configs
    /// (for the partition's leader).
    pub fn share_state(
        &self,
        group_id: &str,
        topic_id: Uuid,
        partition: i32,
    ) -> Result<(Option<ShareStateValue>, ShareConfig), GroupError> {
        self.with_shard(group_id, |shard, _| {
            shard.table.share_state(group_id, topic_id, partition)
        })
    }

    /// Stores a share partition's state for its leader; returns the
    /// group's configs as they are now.
    pub async fn write_share_state(
        &self,
        group_id: &str,
        topic_id: Uuid,
        partition: i32,
        value: ShareStateValue,
    ) -> Result<ShareConfig, GroupError> {
        let (config, written) = self.with_shard(group_id, |shard, _| {
            let w = shard
                .table
                .check_share_state(group_id, topic_id, partition, value)?;
            Ok((
                shard.table.share_config(group_id),
                self.write_share(shard, vec![w]),
            ))
        })?;
        Self::written(written).await?;
        Ok(config)
    }

    /// Every stored share-partition state of a group
    /// (DescribeShareGroupOffsets).
    pub fn share_states(
        &self,
        group_id: &str,
    ) -> Result<BTreeMap<(Uuid, i32), ShareStateValue>, GroupError> {
        self.with_shard(group_id, |shard, _| shard.table.share_states(group_id))
    }

    /// AlterShareGroupOffsets of an empty share group.
    pub async fn alter_share_offsets(
        &self,
        group_id: &str,
        starts: &[(Uuid, i32, i64)],
    ) -> Result<(), GroupError> {
        let written = self.with_shard(group_id, |shard, _| {
            let writes = shard.table.alter_share_offsets(group_id, starts)?;
            Ok(self.write_share(shard, writes))
        })?;
        Self::written(written).await
    }

    /// DeleteShareGroupOffsets of an empty share group.
    pub async fn delete_share_offsets(
        &self,
        group_id: &str,
        topics: &BTreeSet<Uuid>,
    ) -> Result<(), GroupError> {
        let written = self.with_shard(group_id, |shard, _| {
            let writes = shard.table.delete_share_offsets(group_id, topics)?;
            Ok(self.write_share(shard, writes))
        })?;
        Self::written(written).await
    }

    /// The config overrides of a group.
    pub fn group_config(&self, group_id: &str) -> Result<BTreeMap<String, String>, GroupError> {
        self.with_shard(group_id, |shard, _| Ok(shard.table.group_config(group_id)))
    }

    /// Replaces the config overrides of a group (checked first; nothing is
    /// written with `validate_only`).
    pub async fn set_group_config(
        &self,
        group_id: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), GroupError> {
        let written = self.with_shard(group_id, |shard, _| {
            let w = shard.table.set_group_config(group_id, overrides)?;
            Ok((!validate_only).then(|| self.write_share(shard, vec![w])))
        })?;
        match written {
            Some(rx) => Self::written(rx).await,
            None => Ok(()),
        }
    }
}
