//! The records of consumer-protocol groups (KIP-848) in the offsets topic,
//! in the layout of Kafka's records of the same key versions:
//!
//! ```text
//! key 3  ConsumerGroupMetadata            group       value v0: epoch int32
//! key 5  ConsumerGroupMemberMetadata      group, member
//!        value v0: instanceId?, rackId?, clientId, clientHost,
//!                  subscribedTopicNames [string], subscribedTopicRegex?,
//!                  serverAssignor?, rebalanceTimeoutMs int32
//! key 6  ConsumerGroupTargetAssignmentMetadata  group
//!        value v0: assignmentEpoch int32
//! key 7  ConsumerGroupTargetAssignmentMember    group, member
//!        value v0: topicPartitions [topicId uuid, partitions [int32]]
//! key 8  ConsumerGroupCurrentMemberAssignment   group, member
//!        value v0: memberEpoch int32, previousMemberEpoch int32,
//!                  state int8, assignedPartitions [..],
//!                  partitionsPendingRevocation [..]
//! ```
//!
//! Keys use Kafka's classic encoding (int16-prefixed strings); values are
//! "flexible": compact strings and arrays (unsigned varint length + 1, 0
//! for null) and an empty tagged-field section after every struct. Tagged
//! fields written by others are skipped when read. A tombstone deletes the
//! record.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, BytesMut};
use uuid::Uuid;

use super::{Reader, RecordError, put_str};

/// Partitions by topic id.
pub type Partitions = BTreeMap<Uuid, BTreeSet<i32>>;

/// What a consumer-group record is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsumerKey {
    /// The group epoch (key 3).
    Epoch { group: String },
    /// A member's subscription and client (key 5).
    Member { group: String, member: String },
    /// The epoch of the target assignment (key 6).
    TargetEpoch { group: String },
    /// A member's target assignment (key 7).
    Target { group: String, member: String },
    /// A member's current assignment and epoch (key 8).
    Assignment { group: String, member: String },
}

impl ConsumerKey {
    pub fn group(&self) -> &str {
        match self {
            Self::Epoch { group }
            | Self::Member { group, .. }
            | Self::TargetEpoch { group }
            | Self::Target { group, .. }
            | Self::Assignment { group, .. } => group,
        }
    }
}

/// A member as stored (key 5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_names: Vec<String>,
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout_ms: i32,
    /// Set for a member of the classic protocol (tagged field 0).
    pub classic: Option<ClassicMetadata>,
}

/// A classic member's session timeout and protocols (Kafka's
/// ClassicMemberMetadata, tagged field 0 of key 5's value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassicMetadata {
    pub session_timeout_ms: i32,
    /// (name, metadata) in preference order.
    pub protocols: Vec<(String, bytes::Bytes)>,
}

/// A member's current assignment as stored (key 8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberAssignment {
    pub epoch: i32,
    pub previous_epoch: i32,
    /// Kafka's member state codes: 0 stable, 1 unrevoked partitions, 2
    /// unreleased partitions.
    pub state: i8,
    pub assigned: Partitions,
    pub pending_revocation: Partitions,
}

/// The value of a consumer-group record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerValue {
    Epoch(i32),
    Member(MemberMetadata),
    TargetEpoch(i32),
    Target(Partitions),
    Assignment(MemberAssignment),
}

pub(super) fn encode_key(buf: &mut BytesMut, key: &ConsumerKey) {
    match key {
        ConsumerKey::Epoch { group } => {
            buf.put_i16(3);
            put_str(buf, group);
        }
        ConsumerKey::Member { group, member } => {
            buf.put_i16(5);
            put_str(buf, group);
            put_str(buf, member);
        }
        ConsumerKey::TargetEpoch { group } => {
            buf.put_i16(6);
            put_str(buf, group);
        }
        ConsumerKey::Target { group, member } => {
            buf.put_i16(7);
            put_str(buf, group);
            put_str(buf, member);
        }
        ConsumerKey::Assignment { group, member } => {
            buf.put_i16(8);
            put_str(buf, group);
            put_str(buf, member);
        }
    }
}

pub(super) fn decode_key(version: i16, r: &mut Reader<'_>) -> Result<ConsumerKey, RecordError> {
    let group = r.str()?;
    Ok(match version {
        3 => ConsumerKey::Epoch { group },
        5 => ConsumerKey::Member {
            group,
            member: r.str()?,
        },
        6 => ConsumerKey::TargetEpoch { group },
        7 => ConsumerKey::Target {
            group,
            member: r.str()?,
        },
        8 => ConsumerKey::Assignment {
            group,
            member: r.str()?,
        },
        version => {
            // Key 4 (subscription metadata) is not used: Rill reads the
            // subscribed topics from the cluster's metadata.
            return Err(RecordError::Version {
                what: "key",
                version,
            });
        }
    })
}

// ---- flexible encoding ----

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_compact_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        None => put_uvarint(buf, 0),
        Some(s) => {
            put_uvarint(buf, s.len() as u64 + 1);
            buf.put_slice(s.as_bytes());
        }
    }
}

fn put_no_tags(buf: &mut BytesMut) {
    put_uvarint(buf, 0);
}

fn put_partitions(buf: &mut BytesMut, p: &Partitions) {
    put_uvarint(buf, p.len() as u64 + 1);
    for (topic, parts) in p {
        buf.put_slice(topic.as_bytes());
        put_uvarint(buf, parts.len() as u64 + 1);
        for part in parts {
            buf.put_i32(*part);
        }
        put_no_tags(buf);
    }
}

/// Encodes a value; every value is version 0.
pub fn encode_value(value: &ConsumerValue) -> bytes::Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    match value {
        ConsumerValue::Epoch(e) | ConsumerValue::TargetEpoch(e) => buf.put_i32(*e),
        ConsumerValue::Member(m) => {
            put_compact_str(&mut buf, m.instance_id.as_deref());
            put_compact_str(&mut buf, m.rack_id.as_deref());
            put_compact_str(&mut buf, Some(&m.client_id));
            put_compact_str(&mut buf, Some(&m.client_host));
            put_uvarint(&mut buf, m.subscribed_names.len() as u64 + 1);
            for n in &m.subscribed_names {
                put_compact_str(&mut buf, Some(n));
            }
            put_compact_str(&mut buf, m.subscribed_regex.as_deref());
            put_compact_str(&mut buf, m.server_assignor.as_deref());
            buf.put_i32(m.rebalance_timeout_ms);
            if let Some(c) = &m.classic {
                let mut field = BytesMut::new();
                field.put_i32(c.session_timeout_ms);
                put_uvarint(&mut field, c.protocols.len() as u64 + 1);
                for (name, metadata) in &c.protocols {
                    put_compact_str(&mut field, Some(name));
                    put_uvarint(&mut field, metadata.len() as u64 + 1);
                    field.put_slice(metadata);
                    put_no_tags(&mut field);
                }
                put_no_tags(&mut field);
                // One tagged field: tag 0, its size, then the struct.
                put_uvarint(&mut buf, 1);
                put_uvarint(&mut buf, 0);
                put_uvarint(&mut buf, field.len() as u64);
                buf.put_slice(&field);
                return buf.freeze();
            }
        }
        ConsumerValue::Target(p) => put_partitions(&mut buf, p),
        ConsumerValue::Assignment(a) => {
            buf.put_i32(a.epoch);
            buf.put_i32(a.previous_epoch);
            buf.put_i8(a.state);
            put_partitions(&mut buf, &a.assigned);
            put_partitions(&mut buf, &a.pending_revocation);
        }
    }
    put_no_tags(&mut buf);
    buf.freeze()
}

impl Reader<'_> {
    fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordError::NegativeLength(-1))
    }

    /// A compact length: `None` for null.
    fn compact_len(&mut self) -> Result<Option<usize>, RecordError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        let len = usize::try_from(n - 1).map_err(|_| RecordError::NegativeLength(-1))?;
        // Every element takes at least a byte: refuse lengths the record
        // cannot hold before allocating.
        if len > self.buf.len() - self.at {
            return Err(RecordError::Truncated {
                needed: len,
                at: self.at,
                len: self.buf.len(),
            });
        }
        Ok(Some(len))
    }

    fn compact_str(&mut self) -> Result<Option<String>, RecordError> {
        let Some(len) = self.compact_len()? else {
            return Ok(None);
        };
        let raw = self.take(len)?;
        std::str::from_utf8(raw)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| RecordError::NotUtf8)
    }

    fn skip_tags(&mut self) -> Result<(), RecordError> {
        let n = self.uvarint()?;
        for _ in 0..n {
            self.uvarint()?;
            let size = self.uvarint()?;
            self.take(usize::try_from(size).map_err(|_| RecordError::NegativeLength(-1))?)?;
        }
        Ok(())
    }

    /// The tagged fields after a member value: ClassicMemberMetadata
    /// (tag 0) if there, others skipped.
    fn classic_tag(&mut self) -> Result<Option<ClassicMetadata>, RecordError> {
        let n = self.uvarint()?;
        let mut classic = None;
        for _ in 0..n {
            let tag = self.uvarint()?;
            let size =
                usize::try_from(self.uvarint()?).map_err(|_| RecordError::NegativeLength(-1))?;
            let raw = self.take(size)?;
            if tag != 0 {
                continue;
            }
            let mut f = Reader::new(raw);
            let session_timeout_ms = f.i32()?;
            let count = f.compact_len()?.unwrap_or(0);
            let mut protocols = Vec::with_capacity(count.min(64));
            for _ in 0..count {
                let name = f.compact_str()?.unwrap_or_default();
                let len = f.compact_len()?.unwrap_or(0);
                let metadata = bytes::Bytes::copy_from_slice(f.take(len)?);
                f.skip_tags()?;
                protocols.push((name, metadata));
            }
            f.skip_tags()?;
            classic = Some(ClassicMetadata {
                session_timeout_ms,
                protocols,
            });
        }
        Ok(classic)
    }

    fn partitions(&mut self) -> Result<Partitions, RecordError> {
        let mut out = Partitions::new();
        let n = self.compact_len()?.unwrap_or(0);
        for _ in 0..n {
            let id = Uuid::from_slice(self.take(16)?).expect("16 bytes");
            let count = self.compact_len()?.unwrap_or(0);
            let set = out.entry(id).or_default();
            for _ in 0..count {
                set.insert(self.i32()?);
            }
            self.skip_tags()?;
        }
        Ok(out)
    }
}

/// Decodes the value of a record with `key`.
pub fn decode_value(key: &ConsumerKey, raw: &[u8]) -> Result<ConsumerValue, RecordError> {
    let mut r = Reader::new(raw);
    let version = r.i16()?;
    if version != 0 {
        return Err(RecordError::Version {
            what: "consumer group value",
            version,
        });
    }
    let value = match key {
        ConsumerKey::Epoch { .. } => ConsumerValue::Epoch(r.i32()?),
        ConsumerKey::TargetEpoch { .. } => ConsumerValue::TargetEpoch(r.i32()?),
        ConsumerKey::Member { .. } => {
            let instance_id = r.compact_str()?;
            let rack_id = r.compact_str()?;
            let client_id = r.compact_str()?.unwrap_or_default();
            let client_host = r.compact_str()?.unwrap_or_default();
            let n = r.compact_len()?.unwrap_or(0);
            let mut subscribed_names = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                subscribed_names.push(r.compact_str()?.unwrap_or_default());
            }
            let subscribed_regex = r.compact_str()?;
            let server_assignor = r.compact_str()?;
            let rebalance_timeout_ms = r.i32()?;
            let classic = r.classic_tag()?;
            return Ok(ConsumerValue::Member(MemberMetadata {
                instance_id,
                rack_id,
                client_id,
                client_host,
                subscribed_names,
                subscribed_regex,
                server_assignor,
                rebalance_timeout_ms,
                classic,
            }));
        }
        ConsumerKey::Target { .. } => ConsumerValue::Target(r.partitions()?),
        ConsumerKey::Assignment { .. } => ConsumerValue::Assignment(MemberAssignment {
            epoch: r.i32()?,
            previous_epoch: r.i32()?,
            state: r.take(1)?[0] as i8,
            assigned: r.partitions()?,
            pending_revocation: r.partitions()?,
        }),
    };
    r.skip_tags()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::records::{RecordKey, decode_key, encode_key};

    #[test]
    fn given_every_consumer_record_when_encoded_should_decode_to_the_same() {
        let topic = Uuid::from_u128(7);
        let parts = Partitions::from([(topic, BTreeSet::from([0, 3, 11]))]);
        let cases = [
            (
                ConsumerKey::Epoch { group: "g".into() },
                ConsumerValue::Epoch(4),
            ),
            (
                ConsumerKey::Member {
                    group: "g".into(),
                    member: "m".into(),
                },
                ConsumerValue::Member(MemberMetadata {
                    instance_id: Some("i".into()),
                    rack_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    subscribed_names: vec!["a".into(), "b".into()],
                    subscribed_regex: Some("x.*".into()),
                    server_assignor: Some("range".into()),
                    rebalance_timeout_ms: 300_000,
                    classic: None,
                }),
            ),
            (
                ConsumerKey::Member {
                    group: "g".into(),
                    member: "c".into(),
                },
                ConsumerValue::Member(MemberMetadata {
                    client_id: "c".into(),
                    subscribed_names: vec!["a".into()],
                    rebalance_timeout_ms: 300_000,
                    classic: Some(ClassicMetadata {
                        session_timeout_ms: 45_000,
                        protocols: vec![("range".into(), bytes::Bytes::from_static(b"\0\x01x"))],
                    }),
                    ..MemberMetadata::default()
                }),
            ),
            (
                ConsumerKey::TargetEpoch { group: "g".into() },
                ConsumerValue::TargetEpoch(4),
            ),
            (
                ConsumerKey::Target {
                    group: "g".into(),
                    member: "m".into(),
                },
                ConsumerValue::Target(parts.clone()),
            ),
            (
                ConsumerKey::Assignment {
                    group: "g".into(),
                    member: "m".into(),
                },
                ConsumerValue::Assignment(MemberAssignment {
                    epoch: 4,
                    previous_epoch: 3,
                    state: 1,
                    assigned: parts.clone(),
                    pending_revocation: Partitions::new(),
                }),
            ),
        ];
        for (key, value) in cases {
            let raw_key = encode_key(&RecordKey::Consumer(key.clone()));
            assert_eq!(
                decode_key(&raw_key).unwrap(),
                RecordKey::Consumer(key.clone())
            );
            let raw = encode_value(&value);
            assert_eq!(decode_value(&key, &raw).unwrap(), value);
            for cut in 0..raw.len() {
                assert!(
                    decode_value(&key, &raw[..cut]).is_err(),
                    "{key:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn given_a_hostile_length_when_decoded_should_fail_without_allocating() {
        let key = ConsumerKey::Target {
            group: "g".into(),
            member: "m".into(),
        };
        // version 0, then an array claiming 2^62 entries.
        let raw = [0u8, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f];
        assert!(decode_value(&key, &raw).is_err());
    }
}
