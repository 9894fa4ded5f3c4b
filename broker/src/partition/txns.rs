//! Transactions as one partition replica sees them: which producers have a
//! transaction open here, where each open transaction starts, and which
//! transactions ended with an abort marker.
//!
//! A transactional producer's batches carry the transactional attribute;
//! its transaction in this partition starts at the first such batch after
//! its previous marker and ends with a marker (a control batch, commit or
//! abort) that the transaction coordinator writes. From that:
//!
//! - the **last stable offset** (LSO) is the first offset of the oldest
//!   transaction that is still open, or whose marker is not yet below the
//!   high watermark (a marker a new leader might truncate decides nothing);
//!   without such a transaction it is the high watermark. read_committed
//!   consumers read only below it.
//! - the **aborted-transaction index** lists, per aborted transaction, the
//!   producer, its first offset and its marker's offset. A read_committed
//!   fetch returns the entries overlapping what it returns, and the
//!   consumer drops that producer's records between the two.
//!
//! The state is a pure function of the log ([`PartitionTxns::rebuild`] over
//! the transactional and control batches, which each segment keeps in its
//! transaction index, `crate::log::txnindex`, saved as `.txnindex` when the
//! segment is sealed and rebuilt by recovery), kept current on every
//! append, leader and follower alike, and dropped when the log is
//! truncated, like the idempotent producer state. The aborted index is kept
//! per segment (by the base offset of the segment holding the marker), so
//! retention that deletes a segment drops its entries with it.

use std::collections::{BTreeMap, HashMap};

use rill_client::batch::ControlType;

pub use crate::log::cleaner::AbortedTxn;
pub use crate::log::txnindex::TxnBatch;

/// A transaction open in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenTxn {
    pub producer_epoch: i16,
    pub first_offset: i64,
    /// Offset of the last batch seen in it.
    pub last_offset: i64,
}

/// A transaction whose marker is in the log, above the high watermark
/// when it was written: it holds the LSO until the HW passes the marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ending {
    first_offset: i64,
    marker_offset: i64,
}

/// The transactions of one partition replica.
#[derive(Debug, Clone, Default)]
pub struct PartitionTxns {
    open: HashMap<i64, OpenTxn>,
    ending: Vec<Ending>,
    /// Aborted transactions by the base offset of the segment holding
    /// their marker, each list in marker order.
    aborted: BTreeMap<i64, Vec<AbortedTxn>>,
}

impl PartitionTxns {
    /// Computes the state from the transactional batches of the log, oldest
    /// first, each with the base offset of its segment. Markers are taken
    /// as below the HW (the caller adds the HW check through
    /// [`Self::last_stable_offset`] only for what it appends later).
    pub fn rebuild(
        batches: impl IntoIterator<Item = (i64, TxnBatch)>,
        high_watermark: i64,
    ) -> Self {
        let mut state = Self::default();
        for (segment, b) in batches {
            state.apply(segment, b);
        }
        state.settle(high_watermark);
        state
    }

    /// Applies one appended batch stored in the segment based at `segment`.
    pub fn apply(&mut self, segment: i64, b: TxnBatch) {
        match b.control {
            None => {
                self.open
                    .entry(b.producer_id)
                    .and_modify(|t| {
                        t.last_offset = b.last_offset;
                        t.producer_epoch = t.producer_epoch.max(b.producer_epoch);
                    })
                    .or_insert(OpenTxn {
                        producer_epoch: b.producer_epoch,
                        first_offset: b.base_offset,
                        last_offset: b.last_offset,
                    });
            }
            Some(kind) => {
                // A marker without an open transaction (a retried marker,
                // or one for a partition the producer never wrote to)
                // ends nothing.
                let Some(open) = self.open.remove(&b.producer_id) else {
                    return;
                };
                self.ending.push(Ending {
                    first_offset: open.first_offset,
                    marker_offset: b.base_offset,
                });
                if kind == ControlType::Abort {
                    self.aborted.entry(segment).or_default().push(AbortedTxn {
                        producer_id: b.producer_id,
                        first_offset: open.first_offset,
                        last_offset: b.base_offset,
                    });
                }
            }
        }
    }

    /// Forgets the endings the high watermark has passed.
    fn settle(&mut self, high_watermark: i64) {
        self.ending.retain(|e| e.marker_offset >= high_watermark);
    }

    /// The LSO under `high_watermark` (see the module doc).
    pub fn last_stable_offset(&mut self, high_watermark: i64) -> i64 {
        self.settle(high_watermark);
        self.open
            .values()
            .map(|t| t.first_offset)
            .chain(self.ending.iter().map(|e| e.first_offset))
            .fold(high_watermark, i64::min)
    }

    /// The transaction `producer_id` has open here.
    pub fn open_txn(&self, producer_id: i64) -> Option<OpenTxn> {
        self.open.get(&producer_id).copied()
    }

    /// Every open transaction, by producer id.
    pub fn open_txns(&self) -> impl Iterator<Item = (i64, OpenTxn)> + '_ {
        self.open.iter().map(|(p, t)| (*p, *t))
    }

    /// The aborted transactions a read_committed fetch of `[from, to)`
    /// must return: those whose marker is at or after `from` and that
    /// start before `to`.
    pub fn aborted_overlapping(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let first_segment = self
            .aborted
            .range(..=from)
            .next_back()
            .map_or(i64::MIN, |(base, _)| *base);
        self.aborted
            .range(first_segment..)
            .flat_map(|(_, list)| list)
            .filter(|a| a.last_offset >= from && a.first_offset < to)
            .copied()
            .collect()
    }

    /// Drops the aborted entries of segments wholly below `log_start`
    /// (retention deleted them).
    pub fn forget_below(&mut self, log_start: i64) {
        let keep_from = self
            .aborted
            .range(..=log_start)
            .next_back()
            .map(|(base, _)| *base);
        if let Some(base) = keep_from {
            self.aborted = self.aborted.split_off(&base);
        }
    }

    /// Aborted transactions known, for tests and metrics.
    pub fn aborted_count(&self) -> usize {
        self.aborted.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::txnindex::test_util::{data, marker};

    #[test]
    fn given_open_transactions_when_asked_then_the_lso_is_the_oldest_first_offset() {
        let mut t = PartitionTxns::default();
        assert_eq!(t.last_stable_offset(10), 10);
        t.apply(0, data(1, 10, 12));
        t.apply(0, data(2, 13, 13));
        t.apply(0, data(1, 14, 15));
        assert_eq!(t.last_stable_offset(16), 10);
        t.apply(0, marker(1, 16, ControlType::Commit));
        // The marker is not below the HW yet: producer 1 still holds it.
        assert_eq!(t.last_stable_offset(16), 10);
        assert_eq!(t.last_stable_offset(17), 13);
        t.apply(0, marker(2, 17, ControlType::Commit));
        assert_eq!(t.last_stable_offset(18), 18);
        assert_eq!(t.aborted_count(), 0);
    }

    #[test]
    fn given_aborts_when_fetching_then_the_overlapping_ones_are_returned() {
        let mut t = PartitionTxns::default();
        t.apply(0, data(1, 0, 4));
        t.apply(0, marker(1, 5, ControlType::Abort));
        t.apply(100, data(2, 100, 109));
        t.apply(100, marker(2, 110, ControlType::Abort));
        t.apply(100, data(1, 111, 111));
        t.apply(100, marker(1, 112, ControlType::Commit));
        let all = t.aborted_overlapping(0, 200);
        assert_eq!(
            all,
            vec![
                AbortedTxn {
                    producer_id: 1,
                    first_offset: 0,
                    last_offset: 5
                },
                AbortedTxn {
                    producer_id: 2,
                    first_offset: 100,
                    last_offset: 110
                }
            ]
        );
        assert_eq!(t.aborted_overlapping(6, 100), vec![]);
        assert_eq!(t.aborted_overlapping(6, 101).len(), 1);
        assert_eq!(t.aborted_overlapping(3, 4).len(), 1);
        t.forget_below(100);
        assert_eq!(t.aborted_overlapping(0, 200).len(), 1);
    }

    #[test]
    fn given_a_marker_without_an_open_transaction_then_nothing_changes() {
        let mut t = PartitionTxns::default();
        t.apply(0, marker(7, 0, ControlType::Abort));
        assert_eq!(t.aborted_count(), 0);
        assert_eq!(t.last_stable_offset(1), 1);
    }

    #[test]
    fn given_a_rebuild_when_compared_with_live_updates_then_they_agree() {
        let batches = [
            (0, data(1, 0, 1)),
            (0, data(2, 2, 2)),
            (0, marker(1, 3, ControlType::Abort)),
            (0, data(1, 4, 4)),
        ];
        let mut live = PartitionTxns::default();
        for (s, b) in batches {
            live.apply(s, b);
        }
        let mut rebuilt = PartitionTxns::rebuild(batches, 5);
        assert_eq!(rebuilt.last_stable_offset(5), live.last_stable_offset(5));
        assert_eq!(rebuilt.last_stable_offset(5), 2);
        assert_eq!(
            rebuilt.aborted_overlapping(0, 5),
            live.aborted_overlapping(0, 5)
        );
        assert_eq!(rebuilt.open_txn(1).map(|t| t.first_offset), Some(4));
    }
}
