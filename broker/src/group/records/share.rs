//! The records of share groups (KIP-932) in the offsets topic. Kafka keeps
//! share-partition state in a topic of its own (`__share_group_state`) and
//! group configs in its metadata log; Rill keeps both with the group, in
//! the group's offsets partition, so one coordinator owns everything of a
//! group and one load recovers it. The key versions are Rill's own, above
//! any Kafka uses in this topic:
//!
//! ```text
//! key 1000  ShareGroup       group          value v0: createdMs int64
//! key 1001  ShareState       group, topicId uuid, partition int32
//!           value v0: stateEpoch int32, leaderEpoch int32,
//!                     startOffset int64, endOffset int64,
//!                     available [firstOffset int64, lastOffset int64,
//!                                deliveryCount int16]
//! key 1002  GroupConfig      group
//!           value v0: configs [name string, value string]
//! ```
//!
//! A share partition's records in flight are stored as available with
//! their delivery counts: locks do not survive a leader change. Arrays are
//! int32-counted; every count is checked against the bytes left before
//! anything is allocated.

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::{Reader, RecordError, put_str};

pub const SHARE_GROUP_KEY: i16 = 1000;
pub const SHARE_STATE_KEY: i16 = 1001;
pub const GROUP_CONFIG_KEY: i16 = 1002;
const VALUE_VERSION: i16 = 0;

/// What a share-group record is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ShareKey {
    /// The group exists (as a share group).
    Group { group: String },
    /// The state of one share partition.
    State {
        group: String,
        topic_id: Uuid,
        partition: i32,
    },
    /// The group's dynamic configs (`kafka-configs --entity-type groups`).
    Config { group: String },
}

impl ShareKey {
    pub fn group(&self) -> &str {
        match self {
            Self::Group { group } | Self::State { group, .. } | Self::Config { group } => group,
        }
    }
}

/// The stored state of one share partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShareStateValue {
    /// Bumped when an admin resets or deletes the start offset: a leader
    /// still writing an older epoch is fenced.
    pub state_epoch: i32,
    /// The leader epoch of the topic partition whose leader wrote it.
    pub leader_epoch: i32,
    pub start: i64,
    pub end: i64,
    pub available: Vec<(i64, i64, i16)>,
}

/// A decoded share-group value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareValue {
    Group { created_ms: i64 },
    State(ShareStateValue),
    Config(Vec<(String, String)>),
}

pub(super) fn encode_key(buf: &mut BytesMut, key: &ShareKey) {
    match key {
        ShareKey::Group { group } => {
            buf.put_i16(SHARE_GROUP_KEY);
            put_str(buf, group);
        }
        ShareKey::State {
            group,
            topic_id,
            partition,
        } => {
            buf.put_i16(SHARE_STATE_KEY);
            put_str(buf, group);
            buf.put_slice(topic_id.as_bytes());
            buf.put_i32(*partition);
        }
        ShareKey::Config { group } => {
            buf.put_i16(GROUP_CONFIG_KEY);
            put_str(buf, group);
        }
    }
}

pub(super) fn decode_key(version: i16, r: &mut Reader<'_>) -> Result<ShareKey, RecordError> {
    let group = r.str()?;
    match version {
        SHARE_GROUP_KEY => Ok(ShareKey::Group { group }),
        SHARE_STATE_KEY => Ok(ShareKey::State {
            group,
            topic_id: Uuid::from_slice(r.take(16)?).expect("16 bytes"),
            partition: r.i32()?,
        }),
        GROUP_CONFIG_KEY => Ok(ShareKey::Config { group }),
        version => Err(RecordError::Version {
            what: "key",
            version,
        }),
    }
}

pub fn encode_value(value: &ShareValue) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(VALUE_VERSION);
    match value {
        ShareValue::Group { created_ms } => buf.put_i64(*created_ms),
        ShareValue::State(s) => {
            buf.put_i32(s.state_epoch);
            buf.put_i32(s.leader_epoch);
            buf.put_i64(s.start);
            buf.put_i64(s.end);
            buf.put_i32(s.available.len() as i32);
            for (first, last, count) in &s.available {
                buf.put_i64(*first);
                buf.put_i64(*last);
                buf.put_i16(*count);
            }
        }
        ShareValue::Config(entries) => {
            buf.put_i32(entries.len() as i32);
            for (k, v) in entries {
                put_str(&mut buf, k);
                put_str(&mut buf, v);
            }
        }
    }
    buf.freeze()
}

/// A count of items of at least `item` bytes each, checked against what
/// is left.
fn count(r: &mut Reader<'_>, item: usize) -> Result<usize, RecordError> {
    let n = r.i32()?;
    if n < 0 {
        return Err(RecordError::NegativeLength(n.into()));
    }
    let n = n as usize;
    let left = r.buf.len() - r.at;
    if n.saturating_mul(item) > left {
        return Err(RecordError::Truncated {
            needed: n.saturating_mul(item),
            at: r.at,
            len: r.buf.len(),
        });
    }
    Ok(n)
}

pub fn decode_value(key: &ShareKey, raw: &[u8]) -> Result<ShareValue, RecordError> {
    let mut r = Reader::new(raw);
    let version = r.i16()?;
    if version != VALUE_VERSION {
        return Err(RecordError::Version {
            what: "share value",
            version,
        });
    }
    Ok(match key {
        ShareKey::Group { .. } => ShareValue::Group {
            created_ms: r.i64()?,
        },
        ShareKey::State { .. } => {
            let state_epoch = r.i32()?;
            let leader_epoch = r.i32()?;
            let start = r.i64()?;
            let end = r.i64()?;
            let n = count(&mut r, 18)?;
            let mut available = Vec::with_capacity(n);
            for _ in 0..n {
                available.push((r.i64()?, r.i64()?, r.i16()?));
            }
            ShareValue::State(ShareStateValue {
                state_epoch,
                leader_epoch,
                start,
                end,
                available,
            })
        }
        ShareKey::Config { .. } => {
            let n = count(&mut r, 4)?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push((r.str()?, r.str()?));
            }
            ShareValue::Config(entries)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::records::{self, RecordKey};

    #[test]
    fn given_share_records_when_encoded_then_they_decode_to_the_same() {
        let keys = [
            ShareKey::Group { group: "g".into() },
            ShareKey::State {
                group: "g".into(),
                topic_id: Uuid::from_u128(9),
                partition: 3,
            },
            ShareKey::Config { group: "g".into() },
        ];
        let values = [
            ShareValue::Group { created_ms: 5 },
            ShareValue::State(ShareStateValue {
                state_epoch: 2,
                leader_epoch: 7,
                start: 10,
                end: 20,
                available: vec![(11, 12, 3), (15, 15, 1)],
            }),
            ShareValue::Config(vec![("share.delivery.count.limit".into(), "3".into())]),
        ];
        for (k, v) in keys.iter().zip(&values) {
            let raw = records::encode_key(&RecordKey::Share(k.clone()));
            assert_eq!(
                records::decode_key(&raw).unwrap(),
                RecordKey::Share(k.clone())
            );
            assert_eq!(&decode_value(k, &encode_value(v)).unwrap(), v);
        }
    }

    #[test]
    fn given_a_count_larger_than_the_record_when_decoded_then_refused_before_allocating() {
        let key = ShareKey::Config { group: "g".into() };
        let mut raw = BytesMut::new();
        raw.put_i16(0);
        raw.put_i32(i32::MAX);
        assert!(matches!(
            decode_value(&key, &raw),
            Err(RecordError::Truncated { .. })
        ));
    }
}
