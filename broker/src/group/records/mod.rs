//! The records of the `__consumer_offsets` topic, in Kafka's own layout so
//! that Kafka tooling that reads this topic understands them.
//!
//! Every record has a key and a value, both starting with an int16
//! version:
//!
//! ```text
//! key v0/v1  OffsetCommitKey    group string, topic string, partition int32
//! key v2     GroupMetadataKey   group string
//! value      OffsetCommitValue  v3: offset int64, leaderEpoch int32,
//!                               metadata string, commitTimestamp int64
//! value      GroupMetadataValue v3: protocolType string, generation int32,
//!                               protocol string?, leader string?,
//!                               currentStateTimestamp int64,
//!                               members [memberId, groupInstanceId?,
//!                               clientId, clientHost, rebalanceTimeout,
//!                               sessionTimeout, subscription bytes,
//!                               assignment bytes]
//! ```
//!
//! Rill writes value version 3 and reads versions 0 to 3. A record with a
//! null value is a tombstone: the offset or the group is gone (compaction
//! keeps only the latest record per key). Strings are int16-length
//! prefixed (-1 for null), bytes int32-length prefixed. Every length is
//! checked against the bytes that are left before anything is allocated.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;
use rill_client::batch::{Batching, EncodeOptions, NewRecord};
use thiserror::Error;

pub mod consumer;
pub mod share;
pub use consumer::{ConsumerKey, ConsumerValue};
pub use share::{ShareKey, ShareStateValue, ShareValue};

/// Key version of offset commits written by Rill.
const OFFSET_KEY_VERSION: i16 = 1;
/// Key version of group metadata.
const GROUP_KEY_VERSION: i16 = 2;
/// Value versions written by Rill.
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

/// A record of the offsets topic that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("record truncated: {needed} bytes needed at position {at}, {len} in the record")]
    Truncated {
        needed: usize,
        at: usize,
        len: usize,
    },
    #[error("negative length {0}")]
    NegativeLength(i64),
    #[error("unsupported {what} version {version}")]
    Version { what: &'static str, version: i16 },
    #[error("string is not UTF-8")]
    NotUtf8,
    #[error("undecodable record batch: {0}")]
    Batch(String),
}

/// What a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordKey {
    /// The committed offset of one partition for one group.
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    /// A group's membership and generation.
    Group { group: String },
    /// A consumer-protocol group's records (KIP-848): see [`consumer`].
    Consumer(ConsumerKey),
    /// A share group's records (KIP-932): see [`share`].
    Share(ShareKey),
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    /// -1 when the client did not say.
    pub leader_epoch: i32,
    pub metadata: String,
    /// When it was committed (ms since the epoch).
    pub commit_timestamp: i64,
}

/// A group's metadata as stored: what survives a coordinator change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// When the group entered its current state (ms since the epoch).
    pub state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

/// One member of a stored group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// One record read back from the log: its offset, key and value (`None`
/// for a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub offset: i64,
    pub key: Bytes,
    pub value: Option<Bytes>,
    /// The producer of a transactional record (written by TxnOffsetCommit):
    /// it counts only once that producer's commit marker follows.
    pub transactional_producer: Option<i64>,
}

/// What a batch of the offsets topic holds, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    Record(LogRecord),
    /// A transaction marker of `producer_id`: commit or abort.
    Marker {
        producer_id: i64,
        commit: bool,
    },
}

// ---- encoding ----

fn put_str(buf: &mut BytesMut, s: &str) {
    // Kafka strings are at most i16::MAX bytes; callers bound their input.
    let len = s.len().min(i16::MAX as usize);
    buf.put_i16(len as i16);
    buf.put_slice(&s.as_bytes()[..len]);
}

fn put_nullable_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

/// Encodes a key.
pub fn encode_key(key: &RecordKey) -> Bytes {
    let mut buf = BytesMut::new();
    match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => {
            buf.put_i16(OFFSET_KEY_VERSION);
            put_str(&mut buf, group);
            put_str(&mut buf, topic);
            buf.put_i32(*partition);
        }
        RecordKey::Group { group } => {
            buf.put_i16(GROUP_KEY_VERSION);
            put_str(&mut buf, group);
        }
        RecordKey::Consumer(key) => consumer::encode_key(&mut buf, key),
        RecordKey::Share(key) => share::encode_key(&mut buf, key),
    }
    buf.freeze()
}

/// Encodes an offset commit value.
pub fn encode_offset(value: &CommittedOffset) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(OFFSET_VALUE_VERSION);
    buf.put_i64(value.offset);
    buf.put_i32(value.leader_epoch);
    put_str(&mut buf, &value.metadata);
    buf.put_i64(value.commit_timestamp);
    buf.freeze()
}

/// Encodes a group metadata value.
pub fn encode_group(value: &GroupValue) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(GROUP_VALUE_VERSION);
    put_str(&mut buf, &value.protocol_type);
    buf.put_i32(value.generation);
    put_nullable_str(&mut buf, value.protocol.as_deref());
    put_nullable_str(&mut buf, value.leader.as_deref());
    buf.put_i64(value.state_timestamp);
    buf.put_i32(value.members.len() as i32);
    for m in &value.members {
        put_str(&mut buf, &m.member_id);
        put_nullable_str(&mut buf, m.instance_id.as_deref());
        put_str(&mut buf, &m.client_id);
        put_str(&mut buf, &m.client_host);
        buf.put_i32(m.rebalance_timeout_ms);
        buf.put_i32(m.session_timeout_ms);
        put_bytes(&mut buf, &m.subscription);
        put_bytes(&mut buf, &m.assignment);
    }
    buf.freeze()
}

/// Encodes keyed records (value `None`: tombstone) stamped with
/// `timestamp`, each in an uncompressed RecordBatch v2 of its own.
pub fn encode_batch(records: &[(Bytes, Option<Bytes>)], timestamp: i64) -> Vec<u8> {
    encode_batch_as(records, timestamp, None)
}

/// Encodes records as one batch of `producer`'s transaction (id, epoch),
/// or as one batch per record without a producer. A transactional batch
/// carries no sequence number (-1): it is not an idempotent produce.
pub fn encode_batch_as(
    records: &[(Bytes, Option<Bytes>)],
    timestamp: i64,
    producer: Option<(i64, i16)>,
) -> Vec<u8> {
    let records: Vec<NewRecord> = records
        .iter()
        .map(|(key, value)| NewRecord {
            key: Some(key.clone()),
            value: value.clone(),
            timestamp,
        })
        .collect();
    let options = match producer {
        None => EncodeOptions {
            batching: Batching::PerRecord,
            ..EncodeOptions::default()
        },
        Some((id, epoch)) => EncodeOptions {
            producer: Some(rill_client::batch::Producer {
                id,
                epoch,
                first_sequence: -1,
            }),
            transactional: true,
            ..EncodeOptions::default()
        },
    };
    rill_client::batch::encode(&records, &options)
        .expect("encoding an uncompressed batch into memory cannot fail")
        .to_vec()
}

// ---- decoding ----

/// A bounds-checked reader over one key or value.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.buf.len() - self.at < n {
            return Err(RecordError::Truncated {
                needed: n,
                at: self.at,
                len: self.buf.len(),
            });
        }
        let out = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn nullable_str(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(RecordError::NegativeLength(len.into()));
        }
        let raw = self.take(len as usize)?;
        std::str::from_utf8(raw)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| RecordError::NotUtf8)
    }

    fn str(&mut self) -> Result<String, RecordError> {
        Ok(self.nullable_str()?.unwrap_or_default())
    }

    fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let len = self.i32()?;
        if len == -1 {
            return Ok(Bytes::new());
        }
        if len < 0 {
            return Err(RecordError::NegativeLength(len.into()));
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }
}

/// Decodes a key.
pub fn decode_key(raw: &[u8]) -> Result<RecordKey, RecordError> {
    let mut r = Reader::new(raw);
    match r.i16()? {
        0 | 1 => Ok(RecordKey::Offset {
            group: r.str()?,
            topic: r.str()?,
            partition: r.i32()?,
        }),
        2 => Ok(RecordKey::Group { group: r.str()? }),
        version @ 3..=8 => consumer::decode_key(version, &mut r).map(RecordKey::Consumer),
        version @ share::SHARE_GROUP_KEY..=share::GROUP_CONFIG_KEY => {
            share::decode_key(version, &mut r).map(RecordKey::Share)
        }
        version => Err(RecordError::Version {
            what: "key",
            version,
        }),
    }
}

/// Decodes an offset commit value (versions 0 to 3).
pub fn decode_offset(raw: &[u8]) -> Result<CommittedOffset, RecordError> {
    let mut r = Reader::new(raw);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::Version {
            what: "offset commit value",
            version,
        });
    }
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.str()?;
    let commit_timestamp = r.i64()?;
    if version == 1 {
        let _expire_timestamp = r.i64()?;
    }
    Ok(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

/// Decodes a group metadata value (versions 0 to 3).
pub fn decode_group(raw: &[u8]) -> Result<GroupValue, RecordError> {
    let mut r = Reader::new(raw);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::Version {
            what: "group metadata value",
            version,
        });
    }
    let protocol_type = r.str()?;
    let generation = r.i32()?;
    let protocol = r.nullable_str()?;
    let leader = r.nullable_str()?;
    let state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    if count < 0 {
        return Err(RecordError::NegativeLength(count.into()));
    }
    // Each member takes at least 24 bytes: bound the allocation by what is left.
    let left = raw.len() - r.at;
    let mut members = Vec::with_capacity((count as usize).min(left / 24));
    for _ in 0..count {
        let member_id = r.str()?;
        let instance_id = if version >= 3 {
            r.nullable_str()?
        } else {
            None
        };
        let client_id = r.str()?;
        let client_host = r.str()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let rebalance_timeout_ms = if rebalance_timeout_ms < 0 {
            session_timeout_ms
        } else {
            rebalance_timeout_ms
        };
        members.push(MemberValue {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp,
        members,
    })
}

/// Decodes stored batches (any compression) into keyed records, in log
/// order. Records without a key are skipped: nothing Rill writes lacks one.
pub fn decode_batches(data: &Bytes) -> Result<Vec<LogRecord>, RecordError> {
    let mut buf = data.clone();
    let sets =
        RecordBatchDecoder::decode_all(&mut buf).map_err(|e| RecordError::Batch(e.to_string()))?;
    Ok(sets
        .into_iter()
        .flat_map(|set| set.records)
        .filter(|r| !r.control)
        .filter_map(|r| {
            r.key.map(|key| LogRecord {
                offset: r.offset,
                key,
                value: r.value,
                transactional_producer: r.transactional.then_some(r.producer_id),
            })
        })
        .collect())
}

/// Like [`decode_batches`], with the transaction markers in place.
pub fn decode_entries(data: &Bytes) -> Result<Vec<LogEntry>, RecordError> {
    let mut buf = data.clone();
    let sets =
        RecordBatchDecoder::decode_all(&mut buf).map_err(|e| RecordError::Batch(e.to_string()))?;
    Ok(sets
        .into_iter()
        .flat_map(|set| set.records)
        .filter_map(|r| {
            if r.control {
                let kind = r
                    .key
                    .as_ref()
                    .filter(|k| k.len() >= 4)
                    .map(|k| i16::from_be_bytes([k[2], k[3]]))?;
                return (kind == 0 || kind == 1).then_some(LogEntry::Marker {
                    producer_id: r.producer_id,
                    commit: kind == 1,
                });
            }
            r.key.map(|key| {
                LogEntry::Record(LogRecord {
                    offset: r.offset,
                    key,
                    value: r.value,
                    transactional_producer: r.transactional.then_some(r.producer_id),
                })
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_value() -> GroupValue {
        GroupValue {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            state_timestamp: 1_700_000_000_000,
            members: vec![
                MemberValue {
                    member_id: "m-1".into(),
                    instance_id: Some("pod-0".into()),
                    client_id: "c".into(),
                    client_host: "/10.0.0.1".into(),
                    rebalance_timeout_ms: 60_000,
                    session_timeout_ms: 10_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"assign"),
                },
                MemberValue {
                    member_id: "m-2".into(),
                    instance_id: None,
                    client_id: "c".into(),
                    client_host: "/10.0.0.2".into(),
                    rebalance_timeout_ms: 30_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::new(),
                    assignment: Bytes::new(),
                },
            ],
        }
    }

    #[test]
    fn given_keys_and_values_when_encoded_should_decode_to_the_same() {
        let keys = [
            RecordKey::Offset {
                group: "g".into(),
                topic: "orders".into(),
                partition: 3,
            },
            RecordKey::Group { group: "g".into() },
        ];
        for k in keys {
            assert_eq!(decode_key(&encode_key(&k)).unwrap(), k);
        }
        let offset = CommittedOffset {
            offset: 42,
            leader_epoch: 5,
            metadata: "m".into(),
            commit_timestamp: 99,
        };
        assert_eq!(decode_offset(&encode_offset(&offset)).unwrap(), offset);
        let group = group_value();
        assert_eq!(decode_group(&encode_group(&group)).unwrap(), group);
    }

    #[test]
    fn given_kafka_byte_layout_when_decoded_should_read_every_field() {
        // OffsetCommitKey v1 "g" / "t" / 2, written by hand.
        let key = [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 2];
        assert_eq!(
            decode_key(&key).unwrap(),
            RecordKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 2
            }
        );
        // OffsetCommitValue v1: offset 5, metadata "", commit 7, expire 9.
        let mut v1 = vec![0, 1];
        v1.extend(5i64.to_be_bytes());
        v1.extend([0, 0]);
        v1.extend(7i64.to_be_bytes());
        v1.extend(9i64.to_be_bytes());
        let o = decode_offset(&v1).unwrap();
        assert_eq!((o.offset, o.leader_epoch, o.commit_timestamp), (5, -1, 7));
    }

    #[test]
    fn given_truncated_or_hostile_bytes_when_decoded_should_fail_without_panicking() {
        let full = encode_group(&group_value());
        for len in 0..full.len() {
            assert!(decode_group(&full[..len]).is_err(), "prefix of {len} bytes");
        }
        // A member count of i32::MAX with nothing behind it.
        let mut hostile = vec![0, 3, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        hostile.extend(0i64.to_be_bytes());
        hostile.extend(i32::MAX.to_be_bytes());
        assert!(matches!(
            decode_group(&hostile),
            Err(RecordError::Truncated { .. })
        ));
        assert!(matches!(
            decode_key(&[0, 9, 0, 0]),
            Err(RecordError::Version { version: 9, .. })
        ));
    }

    #[test]
    fn given_records_and_tombstones_when_batched_should_decode_in_order() {
        let k1 = encode_key(&RecordKey::Group { group: "a".into() });
        let v1 = encode_group(&group_value());
        let k2 = encode_key(&RecordKey::Group { group: "b".into() });
        let batch = encode_batch(&[(k1.clone(), Some(v1.clone())), (k2.clone(), None)], 5);
        crate::log::batch::validate_produced(&batch, 1 << 20).expect("a valid producer batch");
        let records = decode_batches(&Bytes::from(batch)).unwrap();
        assert_eq!(
            records,
            vec![
                LogRecord {
                    offset: 0,
                    key: k1,
                    value: Some(v1),
                    transactional_producer: None,
                },
                LogRecord {
                    offset: 1,
                    key: k2,
                    value: None,
                    transactional_producer: None,
                },
            ]
        );
    }
}
