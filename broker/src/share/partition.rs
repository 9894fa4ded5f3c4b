//! One share partition (KIP-932) as a pure state machine: which records of
//! a topic partition a share group has in flight, who holds them and until
//! when. No I/O and no clock: every call takes `now` (ms).
//!
//! ```text
//!   start                                   end
//!     |  in flight: Available | Acquired     |  not fetched yet
//! ----+--------------------------------------+---------------------> offsets
//!  done (acknowledged or archived)
//! ```
//!
//! - `start` (the share-partition start offset) is the first offset that
//!   is not done; `end` the first offset never acquired.
//! - Only records in flight are kept, each Available (delivered before and
//!   released, or its lock expired) or Acquired by one member until a
//!   deadline. Offsets in `start..end` that are not kept are done:
//!   accepted, rejected, archived after their last delivery, or gaps of the
//!   log.
//! - Acquiring a record counts one delivery. A record released (by the
//!   member, by its lock expiring or by its member going away) after
//!   `delivery_limit` deliveries is archived instead of coming back.
//! - An acknowledgement names offsets the member holds; each is ACCEPTed or
//!   REJECTed (done), RELEASEd (available again) or a GAP (done: no record
//!   at that offset). Any offset the member does not hold refuses the whole
//!   acknowledgement of the partition, which changes nothing.
//! - [`SharePartition::durable`] is what survives a leader change: the
//!   offsets, and every record in flight as Available with its delivery
//!   count (locks are not kept).

use std::collections::BTreeMap;

/// Kafka's acknowledgement types (ShareFetch and ShareAcknowledge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckType {
    Gap,
    Accept,
    Release,
    Reject,
}

impl AckType {
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            0 => Some(Self::Gap),
            1 => Some(Self::Accept),
            2 => Some(Self::Release),
            3 => Some(Self::Reject),
            _ => None,
        }
    }
}

/// The group's settings a share partition follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `share.record.lock.duration.ms`.
    pub lock_ms: i64,
    /// `share.delivery.count.limit`.
    pub delivery_limit: i16,
    /// `group.share.partition.max.record.locks`: most offsets between
    /// `start` and `end`.
    pub max_in_flight: i64,
}

/// One acknowledgement batch: offsets `first..=last` and their types, one
/// for the whole range or one per offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckBatch {
    pub first: i64,
    pub last: i64,
    pub types: Vec<i8>,
}

impl AckBatch {
    /// The acknowledge type code of `offset` (within `first..=last`).
    pub fn type_at(&self, offset: i64) -> i8 {
        if self.types.len() == 1 {
            self.types[0]
        } else {
            self.types[(offset - self.first) as usize]
        }
    }
}

/// Offsets acquired in one call: `first..=last`, each delivered
/// `delivery_count` times now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub first: i64,
    pub last: i64,
    pub delivery_count: i16,
}

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckError {
    /// A malformed batch (INVALID_REQUEST).
    Invalid(String),
    /// An offset the member does not hold (INVALID_RECORD_STATE).
    NotHeld(String),
}

impl std::fmt::Display for AckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(m) | Self::NotHeld(m) => f.write_str(m),
        }
    }
}

/// What a share partition keeps of a leader change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Durable {
    pub start: i64,
    pub end: i64,
    /// Records in flight: `(first, last, delivery_count)`, in order.
    pub available: Vec<(i64, i64, i16)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Holder {
    Available,
    Acquired { member: String, deadline: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    holder: Holder,
    delivery_count: i16,
}

/// The in-flight records of one share group on one topic partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePartition {
    start: i64,
    end: i64,
    records: BTreeMap<i64, InFlight>,
    /// Bumped by every change; what has been stored is compared with it.
    version: u64,
}

impl SharePartition {
    /// A share partition with nothing in flight, starting at `start`.
    pub fn new(start: i64) -> Self {
        Self {
            start,
            end: start,
            records: BTreeMap::new(),
            version: 0,
        }
    }

    /// The share partition a stored state describes.
    pub fn from_durable(d: &Durable) -> Self {
        let mut p = Self::new(d.start);
        p.end = d.end.max(d.start);
        for &(first, last, count) in &d.available {
            for offset in first.max(p.start)..=last.min(p.end - 1) {
                p.records.insert(
                    offset,
                    InFlight {
                        holder: Holder::Available,
                        delivery_count: count,
                    },
                );
            }
        }
        p.settle();
        p
    }

    /// What survives a leader change: held records become available again
    /// with their delivery counts.
    pub fn durable(&self) -> Durable {
        let mut available: Vec<(i64, i64, i16)> = Vec::new();
        for (&offset, r) in &self.records {
            match available.last_mut() {
                Some((_, last, count)) if *last + 1 == offset && *count == r.delivery_count => {
                    *last = offset;
                }
                _ => available.push((offset, offset, r.delivery_count)),
            }
        }
        Durable {
            start: self.start,
            end: self.end,
            available,
        }
    }

    pub fn start(&self) -> i64 {
        self.start
    }

    pub fn end(&self) -> i64 {
        self.end
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// Records in flight (available or held).
    pub fn in_flight(&self) -> usize {
        self.records.len()
    }

    /// Records not yet done below `high_watermark`: what the group still
    /// has to consume (its lag).
    pub fn lag(&self, high_watermark: i64) -> i64 {
        (high_watermark - self.end).max(0) + self.records.len() as i64
    }

    /// The first offset to read for this member: the first available
    /// record, else `end`.
    pub fn next_to_read(&self) -> i64 {
        self.records
            .iter()
            .find(|(_, r)| r.holder == Holder::Available)
            .map_or(self.end, |(o, _)| *o)
    }

    /// How many offsets past `end` may still be acquired.
    pub fn room(&self, limits: &Limits) -> i64 {
        (limits.max_in_flight - (self.end - self.start)).max(0)
    }

    /// The earliest lock deadline, if any record is held.
    pub fn next_deadline(&self) -> Option<i64> {
        self.records
            .values()
            .filter_map(|r| match &r.holder {
                Holder::Acquired { deadline, .. } => Some(*deadline),
                Holder::Available => None,
            })
            .min()
    }

    /// Records the log no longer has (its start moved to `log_start`) are
    /// done.
    pub fn skip_to(&mut self, log_start: i64) {
        if log_start <= self.start {
            return;
        }
        self.records = self.records.split_off(&log_start);
        self.start = log_start;
        self.end = self.end.max(log_start);
        self.version += 1;
        self.settle();
    }

    /// Acquires records for `member` among the offsets that a read of the
    /// log returned (`batches`: the `(base, last, data)` offsets of its
    /// batches, in order; `data` is false for control batches, which are
    /// never delivered), at most `max_records` of them (whole batches of
    /// new records, at least one). Available records come first, then new
    /// ones from `end` while there is room.
    pub fn acquire(
        &mut self,
        member: &str,
        now: i64,
        batches: &[(i64, i64, bool)],
        max_records: usize,
        limits: &Limits,
    ) -> Vec<Acquired> {
        let mut out: Vec<Acquired> = Vec::new();
        let Some(to) = batches.last().map(|b| b.1) else {
            return out;
        };
        let from = batches[0].0;
        let version = self.version;
        let deadline = now + limits.lock_ms;
        let mut taken = 0usize;
        let take = |out: &mut Vec<Acquired>, offset: i64, count: i16| match out.last_mut() {
            Some(a) if a.last + 1 == offset && a.delivery_count == count => a.last = offset,
            _ => out.push(Acquired {
                first: offset,
                last: offset,
                delivery_count: count,
            }),
        };
        for (&offset, r) in self.records.range_mut(from..=to) {
            if taken >= max_records {
                break;
            }
            if r.holder != Holder::Available {
                continue;
            }
            r.delivery_count = r.delivery_count.saturating_add(1);
            r.holder = Holder::Acquired {
                member: member.to_owned(),
                deadline,
            };
            taken += 1;
            take(&mut out, offset, r.delivery_count);
        }
        let room = self.room(limits);
        let limit_end = self.end + room;
        for &(base, last, data) in batches {
            if last < self.end {
                continue;
            }
            let first = base.max(self.end);
            if first >= limit_end || taken >= max_records && taken > 0 {
                break;
            }
            if !data {
                // A transaction marker: nothing to deliver.
                self.end = last + 1;
                self.version += 1;
                continue;
            }
            // Offsets between `end` and this batch are not in the log.
            for offset in first..=last {
                self.records.insert(
                    offset,
                    InFlight {
                        holder: Holder::Acquired {
                            member: member.to_owned(),
                            deadline,
                        },
                        delivery_count: 1,
                    },
                );
                take(&mut out, offset, 1);
            }
            taken += (last - first + 1) as usize;
            self.end = last + 1;
        }
        if !out.is_empty() || self.version != version {
            self.version = version + 1;
            self.settle();
        }
        out
    }

    /// Applies `member`'s acknowledgements: all of them, or none when one
    /// names an offset the member does not hold.
    pub fn acknowledge(
        &mut self,
        member: &str,
        batches: &[AckBatch],
        limits: &Limits,
    ) -> Result<(), AckError> {
        let mut previous_last = i64::MIN;
        for b in batches {
            if b.first > b.last || b.first <= previous_last {
                return Err(AckError::Invalid(format!(
                    "acknowledgement batches must be ordered ranges that do not overlap; got {}..={} after {previous_last}",
                    b.first, b.last
                )));
            }
            previous_last = b.last;
            let len = b.last - b.first + 1;
            if b.types.len() != 1 && b.types.len() as i64 != len {
                return Err(AckError::Invalid(format!(
                    "offsets {}..={} have {} acknowledge types: one, or one per offset ({len}), are allowed",
                    b.first,
                    b.last,
                    b.types.len()
                )));
            }
            if let Some(t) = b.types.iter().find(|t| AckType::from_code(**t).is_none()) {
                return Err(AckError::Invalid(format!(
                    "unknown acknowledge type {t} (GAP 0, ACCEPT 1, RELEASE 2, REJECT 3)"
                )));
            }
            for offset in b.first..=b.last {
                let held = matches!(
                    self.records.get(&offset),
                    Some(InFlight { holder: Holder::Acquired { member: m, .. }, .. }) if m == member
                );
                if !held {
                    return Err(AckError::NotHeld(format!(
                        "offset {offset} is not held by member {member} (its lock expired, it was acknowledged already, or it was never delivered to it)"
                    )));
                }
            }
        }
        for b in batches {
            for offset in b.first..=b.last {
                match AckType::from_code(b.type_at(offset)) {
                    Some(AckType::Release) => self.release(offset, limits),
                    _ => {
                        self.records.remove(&offset);
                    }
                }
            }
        }
        if !batches.is_empty() {
            self.version += 1;
            self.settle();
        }
        Ok(())
    }

    /// Releases every record whose lock expired by `now`. Returns how many.
    pub fn expire(&mut self, now: i64, limits: &Limits) -> usize {
        self.release_where(
            limits,
            |h| matches!(h, Holder::Acquired { deadline, .. } if *deadline <= now),
        )
    }

    /// Releases every record `member` holds (it left or its session
    /// closed). Returns how many.
    pub fn release_member(&mut self, member: &str, limits: &Limits) -> usize {
        self.release_where(
            limits,
            |h| matches!(h, Holder::Acquired { member: m, .. } if m == member),
        )
    }

    /// Records held by `member`.
    pub fn held_by(&self, member: &str) -> usize {
        self.records
            .values()
            .filter(|r| matches!(&r.holder, Holder::Acquired { member: m, .. } if m == member))
            .count()
    }

    fn release_where(&mut self, limits: &Limits, pick: impl Fn(&Holder) -> bool) -> usize {
        let offsets: Vec<i64> = self
            .records
            .iter()
            .filter(|(_, r)| pick(&r.holder))
            .map(|(o, _)| *o)
            .collect();
        for &offset in &offsets {
            self.release(offset, limits);
        }
        if !offsets.is_empty() {
            self.version += 1;
            self.settle();
        }
        offsets.len()
    }

    /// One held record goes back to available, or is archived after its
    /// last delivery.
    fn release(&mut self, offset: i64, limits: &Limits) {
        let archive = match self.records.get_mut(&offset) {
            Some(r) if r.delivery_count >= limits.delivery_limit => true,
            Some(r) => {
                r.holder = Holder::Available;
                false
            }
            None => false,
        };
        if archive {
            self.records.remove(&offset);
        }
    }

    /// Moves `start` to the first record in flight.
    fn settle(&mut self) {
        self.start = self
            .records
            .keys()
            .next()
            .copied()
            .unwrap_or(self.end)
            .max(self.start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        lock_ms: 1_000,
        delivery_limit: 3,
        max_in_flight: 100,
    };

    fn ack(first: i64, last: i64, t: AckType) -> AckBatch {
        let code = match t {
            AckType::Gap => 0,
            AckType::Accept => 1,
            AckType::Release => 2,
            AckType::Reject => 3,
        };
        AckBatch {
            first,
            last,
            types: vec![code],
        }
    }

    #[test]
    fn given_new_records_when_two_members_fetch_then_each_record_goes_to_one_of_them() {
        let mut p = SharePartition::new(0);
        let a = p.acquire("a", 0, &[(0, 4, true), (5, 9, true)], 5, &LIMITS);
        assert_eq!(
            a,
            vec![Acquired {
                first: 0,
                last: 4,
                delivery_count: 1
            }]
        );
        // The second read starts where nothing is held.
        assert_eq!(p.next_to_read(), 5);
        let b = p.acquire("b", 0, &[(5, 9, true)], 500, &LIMITS);
        assert_eq!(b[0].first, 5);
        assert_eq!(b[0].last, 9);
        assert_eq!(p.acquire("c", 0, &[(0, 4, true)], 500, &LIMITS), vec![]);
        assert_eq!(p.held_by("a"), 5);
        assert_eq!(p.held_by("b"), 5);
    }

    #[test]
    fn given_accepted_records_when_acknowledged_then_start_moves_past_them() {
        let mut p = SharePartition::new(10);
        p.acquire("a", 0, &[(10, 19, true)], 500, &LIMITS);
        p.acknowledge("a", &[ack(10, 14, AckType::Accept)], &LIMITS)
            .unwrap();
        assert_eq!(p.start(), 15);
        assert_eq!(p.lag(20), 5);
        p.acknowledge("a", &[ack(15, 19, AckType::Reject)], &LIMITS)
            .unwrap();
        assert_eq!((p.start(), p.end(), p.lag(20)), (20, 20, 0));
    }

    #[test]
    fn given_another_members_record_when_acknowledged_then_nothing_changes() {
        let mut p = SharePartition::new(0);
        p.acquire("a", 0, &[(0, 9, true)], 500, &LIMITS);
        let before = p.clone();
        let e = p
            .acknowledge(
                "b",
                &[ack(0, 0, AckType::Accept), ack(5, 5, AckType::Accept)],
                &LIMITS,
            )
            .unwrap_err();
        assert!(matches!(e, AckError::NotHeld(_)));
        assert_eq!(p, before);
        // Half valid: refused as a whole too.
        let e = p
            .acknowledge(
                "a",
                &[ack(0, 0, AckType::Accept), ack(12, 12, AckType::Accept)],
                &LIMITS,
            )
            .unwrap_err();
        assert!(matches!(e, AckError::NotHeld(_)));
        assert_eq!(p, before);
    }

    #[test]
    fn given_an_expired_lock_when_fetched_again_then_the_record_returns_with_a_higher_count() {
        let mut p = SharePartition::new(0);
        p.acquire("a", 0, &[(0, 2, true)], 500, &LIMITS);
        assert_eq!(p.next_deadline(), Some(1_000));
        assert_eq!(p.expire(999, &LIMITS), 0);
        assert_eq!(p.expire(1_000, &LIMITS), 3);
        let b = p.acquire("b", 1_000, &[(0, 2, true)], 500, &LIMITS);
        assert_eq!(
            b,
            vec![Acquired {
                first: 0,
                last: 2,
                delivery_count: 2
            }]
        );
        // The late acknowledgement of the first holder is refused.
        assert!(
            p.acknowledge("a", &[ack(0, 2, AckType::Accept)], &LIMITS)
                .is_err()
        );
        p.acknowledge("b", &[ack(0, 2, AckType::Accept)], &LIMITS)
            .unwrap();
        assert_eq!(p.start(), 3);
    }

    #[test]
    fn given_a_record_released_at_every_delivery_then_it_is_archived_after_the_limit() {
        let mut p = SharePartition::new(0);
        for count in 1..=3 {
            let a = p.acquire("a", 0, &[(0, 0, true)], 500, &LIMITS);
            assert_eq!(a[0].delivery_count, count);
            p.acknowledge("a", &[ack(0, 0, AckType::Release)], &LIMITS)
                .unwrap();
        }
        assert_eq!(p.acquire("a", 0, &[(0, 0, true)], 500, &LIMITS), vec![]);
        assert_eq!((p.start(), p.in_flight()), (1, 0));
    }

    #[test]
    fn given_per_offset_types_when_acknowledged_then_each_offset_gets_its_own() {
        let mut p = SharePartition::new(0);
        p.acquire("a", 0, &[(0, 3, true)], 500, &LIMITS);
        p.acknowledge(
            "a",
            &[AckBatch {
                first: 0,
                last: 3,
                types: vec![1, 2, 3, 0],
            }],
            &LIMITS,
        )
        .unwrap();
        assert_eq!((p.start(), p.in_flight()), (1, 1));
        assert_eq!(p.next_to_read(), 1);
    }

    #[test]
    fn given_a_member_gone_when_released_then_its_records_keep_their_counts() {
        let mut p = SharePartition::new(0);
        p.acquire("a", 0, &[(0, 1, true)], 500, &LIMITS);
        p.acquire("b", 0, &[(2, 3, true)], 500, &LIMITS);
        assert_eq!(p.release_member("a", &LIMITS), 2);
        let c = p.acquire("c", 0, &[(0, 1, true)], 500, &LIMITS);
        assert_eq!(c[0].delivery_count, 2);
        assert_eq!(p.held_by("b"), 2);
    }

    #[test]
    fn given_the_in_flight_limit_when_full_then_no_new_records_are_acquired() {
        let limits = Limits {
            max_in_flight: 10,
            ..LIMITS
        };
        let mut p = SharePartition::new(0);
        p.acquire("a", 0, &[(0, 9, true)], 500, &limits);
        assert_eq!(p.room(&limits), 0);
        assert_eq!(p.acquire("b", 0, &[(10, 19, true)], 500, &limits), vec![]);
        p.acknowledge("a", &[ack(0, 4, AckType::Accept)], &limits)
            .unwrap();
        assert_eq!(p.room(&limits), 5);
        // A whole batch is taken even past the room left.
        let b = p.acquire("b", 0, &[(10, 19, true)], 500, &limits);
        assert_eq!((b[0].first, b[0].last), (10, 19));
    }

    #[test]
    fn given_max_records_when_acquiring_then_whole_batches_stop_at_the_limit() {
        let mut p = SharePartition::new(0);
        let a = p.acquire(
            "a",
            0,
            &[(0, 2, true), (3, 5, true), (6, 8, true)],
            4,
            &LIMITS,
        );
        assert_eq!((a[0].first, a[0].last), (0, 5));
        assert_eq!(p.end(), 6);
    }

    #[test]
    fn given_a_durable_state_when_reloaded_then_held_records_are_available_with_their_counts() {
        let mut p = SharePartition::new(0);
        p.acquire("a", 0, &[(0, 9, true)], 500, &LIMITS);
        p.acknowledge("a", &[ack(0, 2, AckType::Accept)], &LIMITS)
            .unwrap();
        p.acknowledge("a", &[ack(5, 5, AckType::Reject)], &LIMITS)
            .unwrap();
        let d = p.durable();
        assert_eq!(d.start, 3);
        assert_eq!(d.end, 10);
        assert_eq!(d.available, vec![(3, 4, 1), (6, 9, 1)]);
        let mut q = SharePartition::from_durable(&d);
        assert_eq!(q.durable(), d);
        let b = q.acquire("b", 0, &[(3, 9, true)], 500, &LIMITS);
        assert_eq!(
            b,
            vec![
                Acquired {
                    first: 3,
                    last: 4,
                    delivery_count: 2
                },
                Acquired {
                    first: 6,
                    last: 9,
                    delivery_count: 2
                }
            ]
        );
    }

    #[test]
    fn given_the_log_start_moved_when_skipped_then_records_before_it_are_done() {
        let mut p = SharePartition::new(0);
        p.acquire("a", 0, &[(0, 9, true)], 500, &LIMITS);
        p.skip_to(5);
        assert_eq!((p.start(), p.in_flight()), (5, 5));
        p.skip_to(50);
        assert_eq!((p.start(), p.end(), p.in_flight()), (50, 50, 0));
    }

    #[test]
    fn given_a_marker_at_the_end_when_read_then_end_moves_past_it() {
        let mut p = SharePartition::new(0);
        let a = p.acquire("a", 0, &[(0, 1, true), (2, 2, false)], 500, &LIMITS);
        assert_eq!((a[0].first, a[0].last), (0, 1));
        assert_eq!(p.end(), 3);
        p.acknowledge("a", &[ack(0, 1, AckType::Accept)], &LIMITS)
            .unwrap();
        assert_eq!((p.start(), p.in_flight()), (3, 0));
        // Only a marker: nothing acquired, but the read moves on.
        assert_eq!(p.acquire("a", 0, &[(3, 3, false)], 500, &LIMITS), vec![]);
        assert_eq!((p.start(), p.end()), (4, 4));
    }

    #[test]
    fn given_bad_batches_when_acknowledged_then_refused_as_invalid() {
        let mut p = SharePartition::new(0);
        p.acquire("a", 0, &[(0, 9, true)], 500, &LIMITS);
        let bad = [
            vec![AckBatch {
                first: 3,
                last: 2,
                types: vec![1],
            }],
            vec![AckBatch {
                first: 0,
                last: 2,
                types: vec![1, 1],
            }],
            vec![AckBatch {
                first: 0,
                last: 0,
                types: vec![9],
            }],
            vec![ack(0, 3, AckType::Accept), ack(2, 4, AckType::Accept)],
        ];
        for b in bad {
            assert!(matches!(
                p.acknowledge("a", &b, &LIMITS),
                Err(AckError::Invalid(_))
            ));
        }
    }
}
