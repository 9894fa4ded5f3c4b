//! Property test: random sequences of append, read, truncate, segment roll
//! (small `segment.bytes`), clean restart and torn-write crash against a
//! plain in-memory model (a vector of values and batch boundaries). After
//! every step the log must agree with the model.

use std::fs::OpenOptions;

use kafka_protocol::records::Compression;
use proptest::prelude::*;

use super::batch::test_util::{Rec, decode, encode};
use super::segment::Segment;
use super::*;

#[derive(Debug, Clone)]
enum Op {
    /// Append one batch with values of these sizes.
    Append(Vec<usize>),
    /// Read from offset (index mod len+1) with this max_bytes.
    Read(u16, u16),
    /// Truncate to offset (index mod len+1).
    Truncate(u16),
    /// Close and reopen.
    Restart,
    /// Append a batch, then crash with only `cut` bytes of it on disk.
    TornAppend(Vec<usize>, u16),
}

fn op() -> impl Strategy<Value = Op> {
    let sizes = prop::collection::vec(0usize..300, 1..6);
    prop_oneof![
        6 => sizes.clone().prop_map(Op::Append),
        4 => (any::<u16>(), 1u16..3000).prop_map(|(o, m)| Op::Read(o, m)),
        1 => any::<u16>().prop_map(Op::Truncate),
        1 => Just(Op::Restart),
        1 => (sizes, any::<u16>()).prop_map(|(s, c)| Op::TornAppend(s, c)),
    ]
}

/// The model: every value by offset, and where batches start.
#[derive(Debug, Default)]
struct Model {
    values: Vec<Vec<u8>>,
    batch_starts: Vec<i64>,
}

impl Model {
    fn append(&mut self, values: Vec<Vec<u8>>) {
        self.batch_starts.push(self.values.len() as i64);
        self.values.extend(values);
    }
    fn batch_start_of(&self, offset: i64) -> i64 {
        *self
            .batch_starts
            .iter()
            .rev()
            .find(|&&s| s <= offset)
            .expect("offset 0 starts a batch")
    }
    fn truncate(&mut self, offset: i64) {
        if offset >= self.values.len() as i64 {
            return;
        }
        let start = self.batch_start_of(offset);
        self.values.truncate(start as usize);
        self.batch_starts.retain(|&s| s < start);
    }
}

fn values_for(sizes: &[usize], seed: usize) -> Vec<Vec<u8>> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            (0..n)
                .map(|j| ((seed * 31 + i * 7 + j) % 251) as u8)
                .collect()
        })
        .collect()
}

fn append(log: &mut PartitionLog, values: &[Vec<u8>]) -> Result<(AppendInfo, usize), LogError> {
    let recs: Vec<Rec<'_>> = values.iter().map(|v| (None, v.as_slice(), 7)).collect();
    let data = encode(&recs, Compression::None);
    let len = data.len();
    log.append(&data, 1).map(|info| (info, len))
}

fn check_full(log: &PartitionLog, model: &Model) {
    assert_eq!(log.next_offset(), model.values.len() as i64);
    let mut offset = 0;
    let mut seen = Vec::new();
    while offset < log.next_offset() {
        let r = log.read(offset, 1 << 16, i64::MAX).unwrap();
        assert!(!r.data.is_empty(), "no data at {offset}");
        for (o, _, v, _) in decode(&r.data) {
            if o >= offset {
                seen.push(v.to_vec());
            }
        }
        offset = r.next_offset;
    }
    assert_eq!(seen, model.values);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(segment_bytes in 200u64..2500, ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes, index_interval_bytes: 128, ..LogConfig::default() };
        let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        let mut model = Model::default();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append(sizes) => {
                    let values = values_for(&sizes, step);
                    let (info, _) = append(&mut log, &values).unwrap();
                    prop_assert_eq!(info.base_offset, model.values.len() as i64);
                    model.append(values);
                }
                Op::Read(o, max_bytes) => {
                    let len = model.values.len() as i64;
                    let offset = i64::from(o) % (len + 1);
                    let r = log.read(offset, usize::from(max_bytes), i64::MAX).unwrap();
                    if offset == len {
                        prop_assert!(r.data.is_empty());
                        continue;
                    }
                    let recs = decode(&r.data);
                    let start = model.batch_start_of(offset);
                    prop_assert_eq!(recs[0].0, start);
                    for (o, _, v, _) in &recs {
                        prop_assert_eq!(v.as_ref(), model.values[*o as usize].as_slice());
                    }
                    let last = recs.last().unwrap().0;
                    prop_assert_eq!(r.next_offset, last + 1);
                    // More than max_bytes only when a single batch is larger.
                    if r.data.len() > usize::from(max_bytes) {
                        let h = batch::BatchHeader::parse(&r.data).unwrap();
                        prop_assert_eq!(h.total_len(), r.data.len());
                    }
                }
                Op::Truncate(o) => {
                    let offset = i64::from(o) % (model.values.len() as i64 + 1);
                    log.truncate_to(offset).unwrap();
                    model.truncate(offset);
                    prop_assert_eq!(log.next_offset(), model.values.len() as i64);
                }
                Op::Restart => {
                    drop(log);
                    log = PartitionLog::open(dir.path(), config.clone()).unwrap();
                    check_full(&log, &model);
                }
                Op::TornAppend(sizes, cut) => {
                    let values = values_for(&sizes, step);
                    let (_, batch_len) = append(&mut log, &values).unwrap();
                    let active = *log.segment_bases().last().unwrap();
                    drop(log);
                    let path = Segment::log_path(dir.path(), active);
                    let file = OpenOptions::new().write(true).open(&path).unwrap();
                    let len = file.metadata().unwrap().len();
                    let keep = usize::from(cut) % (batch_len + 1);
                    file.set_len(len - batch_len as u64 + keep as u64).unwrap();
                    drop(file);
                    log = PartitionLog::open(dir.path(), config.clone()).unwrap();
                    if keep == batch_len {
                        model.append(values);
                    }
                    check_full(&log, &model);
                }
            }
        }
        check_full(&log, &model);
    }
}
