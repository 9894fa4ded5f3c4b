//! How the [`GroupCoordinator`] reads and writes its offsets partitions:
//! loading a partition's groups when it becomes the leader, and the
//! writer task that appends the state machine's records with acks=all
//! and applies the outcome.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::group::error::GroupError;
use crate::group::placement::OFFSETS_TOPIC;
use crate::group::records::{self, LogEntry, LogRecord, RecordKey};
use crate::group::state::{AfterStore, Effects, GroupTable, Loaded};
use crate::partition::{Acks, Error as PartitionError};

use std::collections::HashMap;

use super::{
    Done, GroupCoordinator, LOAD_CHUNK, LOAD_POLL, LOAD_RETRY, MAX_WRITE_BYTES, PendingTxnOffsets,
    Shard, Status, WriteJob, now_ms,
};

impl GroupCoordinator {
    // ---- loading ----

    pub(super) async fn load(self: Arc<Self>, p: i32, epoch: i32, stop: CancellationToken) {
        loop {
            match self.read_partition(p, &stop).await {
                Ok((records, pending)) => {
                    let count = records.len();
                    let table = GroupTable::load(self.settings.limits.clone(), records, now_ms());
                    self.install(p, epoch, table, count, pending);
                    return;
                }
                Err(e) if stop.is_cancelled() => {
                    debug!(partition = p, error = %e, "load stopped");
                    return;
                }
                Err(e) => {
                    warn!(partition = p, error = %e, "loading groups failed; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(LOAD_RETRY) => {}
                    }
                }
            }
        }
    }

    /// Every record of the partition, once what is in its log is committed:
    /// the records that count (transactional offsets only once their
    /// commit marker follows, in the marker's place), and the transactional
    /// offsets of transactions still open.
    pub(super) async fn read_partition(
        &self,
        p: i32,
        stop: &CancellationToken,
    ) -> Result<(Vec<Loaded>, PendingTxnOffsets), PartitionError> {
        let part = self.manager.partition(OFFSETS_TOPIC, p)?;
        let chunks = part.read_all_committed(stop, LOAD_POLL, LOAD_CHUNK).await?;
        let mut out = Vec::new();
        let mut open: HashMap<i64, Vec<Loaded>> = HashMap::new();
        for data in chunks {
            let decoded = records::decode_entries(&data).map_err(|e| {
                PartitionError::InvalidRequest(format!(
                    "{OFFSETS_TOPIC}-{p} holds an undecodable batch: {e}"
                ))
            })?;
            for entry in decoded {
                match entry {
                    LogEntry::Record(r) => {
                        let producer = r.transactional_producer;
                        let Some(loaded) = decode_record(p, r) else {
                            continue;
                        };
                        match producer {
                            Some(pid) => open.entry(pid).or_default().push(loaded),
                            None => out.push(loaded),
                        }
                    }
                    LogEntry::Marker {
                        producer_id,
                        commit,
                    } => {
                        let done = open.remove(&producer_id).unwrap_or_default();
                        if commit {
                            out.extend(done);
                        }
                    }
                }
            }
        }
        let pending = open
            .into_iter()
            .map(|(pid, loaded)| {
                let offsets = loaded
                    .into_iter()
                    .filter_map(|l| match l {
                        Loaded::Offset {
                            group,
                            topic,
                            partition,
                            value: Some(value),
                        } => Some((group, (topic, partition), value)),
                        _ => None,
                    })
                    .collect();
                (pid, offsets)
            })
            .collect();
        Ok((out, pending))
    }

    pub(super) fn install(
        self: &Arc<Self>,
        p: i32,
        epoch: i32,
        table: GroupTable,
        records: usize,
        pending: PendingTxnOffsets,
    ) {
        let mut shards = self.shards.lock();
        let Some(shard) = shards.get_mut(&p) else {
            return;
        };
        if shard.leader_epoch != epoch || shard.status != Status::Loading {
            return;
        }
        info!(
            partition = p,
            leader_epoch = epoch,
            records,
            groups = table.len(),
            "offsets partition loaded"
        );
        shard.table = table;
        shard.pending_txn = pending;
        shard.status = Status::Active;
        let now = now_ms();
        for (producer_id, commit) in std::mem::take(&mut shard.early_markers) {
            super::apply_marker(shard, producer_id, commit, now);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        shard.writer = Some(tx);
        tokio::spawn(Arc::clone(self).write_loop(p, epoch, rx, shard.stop.clone()));
    }

    // ---- writing ----

    pub(super) async fn write_loop(
        self: Arc<Self>,
        p: i32,
        epoch: i32,
        mut rx: mpsc::UnboundedReceiver<WriteJob>,
        stop: CancellationToken,
    ) {
        loop {
            let first = tokio::select! {
                () = stop.cancelled() => break,
                job = rx.recv() => match job {
                    Some(job) => job,
                    None => break,
                },
            };
            let mut size = first.bytes();
            let mut jobs = vec![first];
            while size < MAX_WRITE_BYTES {
                match rx.try_recv() {
                    Ok(job) => {
                        size += job.bytes();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            let result = self.append(p, epoch, &jobs).await;
            if let Err(e) = &result {
                warn!(partition = p, error = %e, writes = jobs.len(), "write to the offsets topic failed");
            }
            self.complete(p, epoch, jobs, result);
        }
        rx.close();
        let mut left = Vec::new();
        while let Ok(job) = rx.try_recv() {
            left.push(job);
        }
        if !left.is_empty() {
            self.complete(p, epoch, left, Err(GroupError::NotCoordinator));
        }
    }

    pub(super) async fn append(
        &self,
        p: i32,
        epoch: i32,
        jobs: &[WriteJob],
    ) -> Result<(), GroupError> {
        let part = self
            .manager
            .partition(OFFSETS_TOPIC, p)
            .map_err(|e| GroupError::from_write(&e))?;
        let role = part.role_view();
        if !role.is_leader || role.leader_epoch != epoch {
            return Err(GroupError::NotCoordinator);
        }
        let records: Vec<(Bytes, Option<Bytes>)> = jobs
            .iter()
            .flat_map(|j| j.records.iter().cloned())
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        // Transactional offsets go in batches of their own, one per
        // producer; everything else shares one batch per record.
        let mut data = Vec::new();
        let mut plain: Vec<(Bytes, Option<Bytes>)> = Vec::new();
        for job in jobs {
            match &job.done {
                Done::TxnCommit { producer, .. } => {
                    // AddOffsetsToTxn put this partition in the producer's
                    // transaction before the client could send the commit.
                    part.mark_txn_verified(producer.0, producer.1);
                    data.extend(records::encode_batch_as(
                        &job.records,
                        now_ms(),
                        Some(*producer),
                    ));
                }
                _ => plain.extend(job.records.iter().cloned()),
            }
        }
        if !plain.is_empty() {
            data.extend(records::encode_batch(&plain, now_ms()));
        }
        part.produce(data, Acks::All, self.settings.commit_timeout)
            .await
            .map(|_| ())
            .map_err(|e| GroupError::from_write(&e))
    }

    /// Applies the outcome of written jobs to the shard (if it is still the
    /// one that wrote them) and answers whoever waits.
    pub(super) fn complete(
        &self,
        p: i32,
        epoch: i32,
        jobs: Vec<WriteJob>,
        result: Result<(), GroupError>,
    ) {
        let now = now_ms();
        let mut shards = self.shards.lock();
        let mut shard = shards
            .get_mut(&p)
            .filter(|s| s.leader_epoch == epoch && s.status == Status::Active);
        for job in jobs {
            match job.done {
                Done::Commit {
                    group,
                    offsets,
                    reply,
                } => {
                    if let Some(s) = shard.as_deref_mut() {
                        s.table.commit_done(&group, offsets.iter().map(|(k, _)| k));
                    }
                    let outcome = match (&result, shard.as_deref_mut()) {
                        (Ok(()), Some(s)) => {
                            s.table.apply_offsets(now, &group, offsets);
                            Ok(())
                        }
                        (Ok(()), None) => Err(GroupError::NotCoordinator),
                        (Err(e), _) => Err(e.clone()),
                    };
                    let _ = reply.send(outcome);
                }
                Done::Deleted { reply } => {
                    let _ = reply.send(result.clone());
                }
                Done::Share { writes, reply } => {
                    let outcome = match (&result, shard.as_deref_mut()) {
                        (Ok(()), Some(s)) => {
                            s.table.apply_share(now, &writes);
                            Ok(())
                        }
                        (Ok(()), None) => Err(GroupError::NotCoordinator),
                        (Err(e), _) => Err(e.clone()),
                    };
                    let _ = reply.send(outcome);
                }
                Done::TxnCommit {
                    group,
                    producer,
                    offsets,
                    reply,
                } => {
                    let outcome = match (&result, shard.as_deref_mut()) {
                        (Ok(()), Some(s)) => {
                            let list = s.pending_txn.entry(producer.0).or_default();
                            list.extend(offsets.into_iter().map(|(tp, o)| (group.clone(), tp, o)));
                            Ok(())
                        }
                        (Ok(()), None) => Err(GroupError::NotCoordinator),
                        (Err(e), _) => Err(e.clone()),
                    };
                    let _ = reply.send(outcome);
                }
                Done::Expired => {}
                Done::Group { group, after } => {
                    let Some(s) = shard.as_deref_mut() else {
                        continue;
                    };
                    let fx = match after {
                        AfterStore::Nothing => continue,
                        AfterStore::Assignment { generation } => {
                            s.table
                                .assignment_stored(now, &group, generation, result.clone())
                        }
                        AfterStore::StaticMember(replace) => {
                            s.table
                                .static_member_stored(now, &group, *replace, result.clone())
                        }
                    };
                    self.dispatch(s, fx);
                }
            }
        }
    }

    /// Carries out what the state machine asked for: answers parked
    /// requests and queues writes.
    pub(super) fn dispatch(&self, shard: &mut Shard, fx: Effects) {
        if fx.rebalances > 0 {
            self.metrics.group_rebalances.inc_by(fx.rebalances);
        }
        for (id, reply) in fx.replies {
            if let Some(tx) = shard.waiters.remove(&id) {
                let _ = tx.send(reply);
            }
        }
        let mut jobs = Vec::new();
        for store in fx.stores {
            let key = records::encode_key(&RecordKey::Group {
                group: store.group.clone(),
            });
            jobs.push(WriteJob {
                records: vec![(key, Some(records::encode_group(&store.value)))],
                done: Done::Group {
                    group: store.group,
                    after: store.after,
                },
            });
        }
        if !fx.consumer.is_empty() {
            jobs.push(WriteJob {
                records: consumer_records(&fx.consumer),
                done: Done::Expired,
            });
        }
        if !fx.tombstones.is_empty() {
            jobs.push(WriteJob {
                records: fx
                    .tombstones
                    .iter()
                    .map(|k| (records::encode_key(k), None))
                    .collect(),
                done: Done::Expired,
            });
        }
        for job in jobs {
            self.enqueue(shard, job);
        }
    }

    /// Queues a write on the shard's writer. A shard without a running
    /// writer is being dropped: the write fails like a lost leadership.
    pub(super) fn enqueue(&self, shard: &Shard, job: WriteJob) {
        let Some(writer) = &shard.writer else {
            Self::fail_now(job);
            return;
        };
        if let Err(mpsc::error::SendError(job)) = writer.send(job) {
            Self::fail_now(job);
        }
    }

    /// A write that cannot be queued: its waiters hear NOT_COORDINATOR
    /// (parked JoinGroup/SyncGroup requests hear it when the shard is
    /// dropped).
    pub(super) fn fail_now(job: WriteJob) {
        if let Done::Commit { reply, .. }
        | Done::Deleted { reply }
        | Done::Share { reply, .. }
        | Done::TxnCommit { reply, .. } = job.done
        {
            let _ = reply.send(Err(GroupError::NotCoordinator));
        }
    }
}

/// The records of share-group writes (`None`: tombstone).
pub(super) fn share_records(
    writes: &[crate::group::state::ShareWrite],
) -> Vec<(Bytes, Option<Bytes>)> {
    writes
        .iter()
        .map(|(k, v)| {
            (
                records::encode_key(&RecordKey::Share(k.clone())),
                v.as_ref().map(records::share::encode_value),
            )
        })
        .collect()
}

/// The records of consumer-group writes (`None`: tombstone).
pub(super) fn consumer_records(
    writes: &[(records::ConsumerKey, Option<records::ConsumerValue>)],
) -> Vec<(Bytes, Option<Bytes>)> {
    writes
        .iter()
        .map(|(k, v)| {
            (
                records::encode_key(&RecordKey::Consumer(k.clone())),
                v.as_ref().map(records::consumer::encode_value),
            )
        })
        .collect()
}

/// Decodes one record of partition `p`; undecodable ones are logged and
/// skipped (a record Rill does not understand must not stop the load).
fn decode_record(p: i32, r: LogRecord) -> Option<Loaded> {
    let key = match records::decode_key(&r.key) {
        Ok(k) => k,
        Err(e) => {
            warn!(partition = p, offset = r.offset, error = %e, "skipping a record with an unknown key");
            return None;
        }
    };
    let decoded = match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => r
            .value
            .as_deref()
            .map(records::decode_offset)
            .transpose()
            .map(|value| Loaded::Offset {
                group,
                topic,
                partition,
                value,
            }),
        RecordKey::Group { group } => r
            .value
            .as_deref()
            .map(records::decode_group)
            .transpose()
            .map(|value| Loaded::Group { group, value }),
        RecordKey::Consumer(key) => r
            .value
            .as_deref()
            .map(|v| records::consumer::decode_value(&key, v))
            .transpose()
            .map(|value| Loaded::Consumer { key, value }),
        RecordKey::Share(key) => r
            .value
            .as_deref()
            .map(|v| records::share::decode_value(&key, v))
            .transpose()
            .map(|value| Loaded::Share((key, value))),
    };
    decoded
        .map_err(|e| warn!(partition = p, offset = r.offset, error = %e, "skipping an undecodable record"))
        .ok()
}
