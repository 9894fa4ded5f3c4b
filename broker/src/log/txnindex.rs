//! The transaction index of a segment (`.txnindex`): the segment's
//! transactional data batches and markers, with each producer's
//! consecutive data batches (no marker between them) merged into one entry.
//! It is all the partition's transaction state needs from the segment (the
//! open transactions, the last stable offset and the aborted-transaction
//! index are a function of these entries over every segment, oldest first),
//! so a partition builds that state from the indexes instead of reading
//! every batch header of its log.
//!
//! A segment keeps its index in memory from creation, appends and
//! recovery, and saves it with its other indexes when it is sealed. A
//! trusted segment loads it on start; a segment that is recovered
//! rebuilds it while it validates its batches. A segment whose file is
//! missing or damaged (written before Rill kept it) has none, and its
//! batch headers are read instead.
//!
//! File layout: the magic `RTXI`, a version byte (1), the entry count
//! (u32), the entries (producer id i64, epoch i16, base offset i64, last
//! offset i64, kind u8: 0 data, 1 abort marker, 2 commit marker), then the
//! CRC-32C of everything before it; integers big-endian.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use rill_client::batch::ControlType;

use super::batch::BatchHeader;
use super::index::{read_if_exists, write_atomically};

const MAGIC: &[u8; 4] = b"RTXI";
const VERSION: u8 = 1;
const ENTRY_LEN: usize = 8 + 2 + 8 + 8 + 1;
const HEAD_LEN: usize = 4 + 1 + 4;

/// A transactional data batch (or a run of one producer's batches) or a
/// marker, as transaction state needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_offset: i64,
    pub last_offset: i64,
    /// `Some` for a marker.
    pub control: Option<ControlType>,
}

impl TxnBatch {
    /// The batch if it matters to transactions: a transactional data batch
    /// or a marker (`control` is the marker's type, read from its record).
    pub fn from_header(h: &BatchHeader, control: Option<ControlType>) -> Option<Self> {
        if h.producer_id < 0 || !(h.is_transactional() || h.is_control()) {
            return None;
        }
        if h.is_control() && control.is_none() {
            // A control record of a kind Rill does not know: it ends
            // nothing.
            return None;
        }
        Some(Self {
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            control: if h.is_control() { control } else { None },
        })
    }
}

/// Whether a batch with this header may matter to transactions (its
/// control record must be read to know).
pub fn is_txn_header(h: &BatchHeader) -> bool {
    h.producer_id >= 0 && (h.is_transactional() || h.is_control())
}

/// The transaction index of one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnIndex {
    entries: Vec<TxnBatch>,
    /// Per producer, its data entry not yet followed by a marker.
    open: HashMap<i64, usize>,
}

impl TxnIndex {
    /// Adds a batch appended to the segment (in log order).
    pub fn record(&mut self, b: TxnBatch) {
        match b.control {
            None => match self.open.get(&b.producer_id) {
                Some(&i) => {
                    let e = &mut self.entries[i];
                    e.last_offset = b.last_offset;
                    e.producer_epoch = e.producer_epoch.max(b.producer_epoch);
                }
                None => {
                    self.open.insert(b.producer_id, self.entries.len());
                    self.entries.push(b);
                }
            },
            Some(_) => {
                self.open.remove(&b.producer_id);
                self.entries.push(b);
            }
        }
    }

    pub fn entries(&self) -> &[TxnBatch] {
        &self.entries
    }

    pub fn save(&self, path: &Path) -> io::Result<()> {
        let mut buf = Vec::with_capacity(HEAD_LEN + self.entries.len() * ENTRY_LEN + 4);
        buf.extend_from_slice(MAGIC);
        buf.push(VERSION);
        buf.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for e in &self.entries {
            buf.extend_from_slice(&e.producer_id.to_be_bytes());
            buf.extend_from_slice(&e.producer_epoch.to_be_bytes());
            buf.extend_from_slice(&e.base_offset.to_be_bytes());
            buf.extend_from_slice(&e.last_offset.to_be_bytes());
            buf.push(match e.control {
                None => 0,
                Some(ControlType::Abort) => 1,
                Some(ControlType::Commit) => 2,
            });
        }
        let crc = crc32c::crc32c(&buf);
        buf.extend_from_slice(&crc.to_be_bytes());
        write_atomically(path, &buf)
    }

    /// Loads an index file, `None` when it is missing, damaged, or names
    /// offsets outside `[base_offset, next_offset)` or out of order.
    pub fn load(path: &Path, base_offset: i64, next_offset: i64) -> io::Result<Option<Self>> {
        let Some(buf) = read_if_exists(path)? else {
            return Ok(None);
        };
        Ok(Self::decode(&buf, base_offset, next_offset))
    }

    fn decode(buf: &[u8], base_offset: i64, next_offset: i64) -> Option<Self> {
        if buf.len() < HEAD_LEN + 4 || &buf[..4] != MAGIC || buf[4] != VERSION {
            return None;
        }
        let (body, crc) = buf.split_at(buf.len() - 4);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let count = u32::from_be_bytes(body[5..9].try_into().ok()?) as usize;
        let entries = &body[HEAD_LEN..];
        if entries.len() != count.checked_mul(ENTRY_LEN)? {
            return None;
        }
        let mut index = Self::default();
        let mut previous = base_offset - 1;
        for e in entries.chunks_exact(ENTRY_LEN) {
            let i64_at = |at: usize| i64::from_be_bytes(e[at..at + 8].try_into().expect("8"));
            let b = TxnBatch {
                producer_id: i64_at(0),
                producer_epoch: i16::from_be_bytes(e[8..10].try_into().expect("2")),
                base_offset: i64_at(10),
                last_offset: i64_at(18),
                control: match e[26] {
                    0 => None,
                    1 => Some(ControlType::Abort),
                    2 => Some(ControlType::Commit),
                    _ => return None,
                },
            };
            // Entries are in log order by their first batch; a merged data
            // entry may end after later entries begin.
            let sane = b.producer_id >= 0
                && b.base_offset > previous
                && b.base_offset <= b.last_offset
                && b.last_offset < next_offset;
            if !sane {
                return None;
            }
            previous = b.base_offset;
            index.record(b);
        }
        Some(index)
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// A data batch (or run) of producer `pid` at epoch 0.
    pub fn data(pid: i64, base: i64, last: i64) -> TxnBatch {
        TxnBatch {
            producer_id: pid,
            producer_epoch: 0,
            base_offset: base,
            last_offset: last,
            control: None,
        }
    }

    /// A marker of producer `pid` at offset `at`.
    pub fn marker(pid: i64, at: i64, kind: ControlType) -> TxnBatch {
        TxnBatch {
            control: Some(kind),
            ..data(pid, at, at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::{data, marker};
    use super::*;

    #[test]
    fn given_batches_when_recorded_then_runs_merge_until_a_marker() {
        let mut index = TxnIndex::default();
        for b in [
            data(1, 10, 12),
            data(2, 13, 13),
            data(1, 14, 20),
            marker(1, 21, ControlType::Commit),
            data(1, 22, 22),
            marker(2, 23, ControlType::Abort),
        ] {
            index.record(b);
        }
        assert_eq!(
            index.entries(),
            [
                data(1, 10, 20),
                data(2, 13, 13),
                marker(1, 21, ControlType::Commit),
                data(1, 22, 22),
                marker(2, 23, ControlType::Abort),
            ]
        );
    }

    #[test]
    fn given_a_saved_index_when_loaded_then_it_is_the_same_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.txnindex");
        let mut index = TxnIndex::default();
        index.record(data(7, 3, 5));
        index.record(marker(7, 6, ControlType::Abort));
        index.record(data(9, 7, 8));
        index.save(&path).unwrap();
        let loaded = TxnIndex::load(&path, 0, 9).unwrap().expect("valid");
        assert_eq!(loaded, index);
        // Offsets beyond the segment's end: not this segment's index.
        assert_eq!(TxnIndex::load(&path, 0, 8).unwrap(), None);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[12] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(TxnIndex::load(&path, 0, 9).unwrap(), None);
        assert_eq!(
            TxnIndex::load(&dir.path().join("1.txnindex"), 0, 9).unwrap(),
            None
        );
    }
}
