//! Which partition of `__consumer_offsets` holds a group, and how that
//! topic is created; which partitions of a coordinator's state topic this
//! broker leads (the group and transaction coordinators keep one shard per
//! partition they lead).

use std::collections::BTreeMap;

use crate::partition::manager::ReplicaManager;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Segment size of the offsets topic (Kafka's `offsets.topic.segment.bytes`):
/// small segments let compaction reclaim space early.
const OFFSETS_SEGMENT_BYTES: u64 = 100 << 20;

/// Java's `String.hashCode`: 31 * h + c over UTF-16 code units, wrapping.
pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The offsets partition of `group` among `partitions` (> 0), as Kafka
/// computes it, so that a group keeps its partition when moving between
/// Kafka and Rill tooling.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = java_hash(group);
    // Kafka's Utils.abs: i32::MIN maps to 0.
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// The replication factor to create the offsets topic with: the configured
/// one, capped by the brokers alive now (at least 1).
pub fn replication_factor(configured: i32, live_brokers: Option<usize>) -> i32 {
    match live_brokers {
        Some(n) => configured.min(n as i32).max(1),
        None => 1,
    }
}

/// Topic config of the offsets topic: compacted; with three or more
/// replicas a write needs two in-sync copies, so an acknowledged commit
/// survives the loss of the coordinator, while one broker down still
/// leaves the offsets writable.
pub fn topic_config(replication_factor: i32) -> BTreeMap<String, String> {
    let min_isr = if replication_factor >= 3 { 2 } else { 1 };
    BTreeMap::from([
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        ("min.insync.replicas".to_owned(), min_isr.to_string()),
        (
            "segment.bytes".to_owned(),
            OFFSETS_SEGMENT_BYTES.to_string(),
        ),
    ])
}

/// How many partitions `topic` has (-1 while unknown), and those this
/// broker leads, with their leader epochs.
pub fn led_partitions(manager: &ReplicaManager, topic: &str) -> (i32, BTreeMap<i32, i32>) {
    let count = manager.topic_partitions(topic).unwrap_or(-1);
    let mut led = BTreeMap::new();
    for p in 0..count.max(0) {
        if let Ok(part) = manager.partition(topic, p) {
            let role = part.role_view();
            if role.is_leader {
                led.insert(p, role.leader_epoch);
            }
        }
    }
    (count, led)
}

/// A coordinator's shards against the partitions it leads now: the shards
/// to drop (no longer led, or led in another epoch) and the partitions to
/// load, with their epochs.
pub fn shard_changes(
    held: impl Iterator<Item = (i32, i32)>,
    led: &BTreeMap<i32, i32>,
) -> (Vec<i32>, Vec<(i32, i32)>) {
    let held: BTreeMap<i32, i32> = held.collect();
    let stale = held
        .iter()
        .filter(|(p, epoch)| led.get(p) != Some(epoch))
        .map(|(p, _)| *p)
        .collect();
    let fresh = led
        .iter()
        .filter(|(p, epoch)| held.get(p) != Some(epoch))
        .map(|(p, epoch)| (*p, *epoch))
        .collect();
    (stale, fresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_strings_when_hashed_should_match_java_string_hashcode() {
        // Expected values worked out independently (Python, Java's formula
        // over UTF-16 code units).
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("group"), 98_629_247);
        assert_eq!(java_hash("my-consumer-group"), 1_513_705_513);
        // Code units, not bytes: one char beyond the BMP is two units.
        assert_eq!(java_hash("é"), 233);
        assert_eq!(java_hash("😀"), 1_772_899);
    }

    #[test]
    fn given_shards_and_led_partitions_then_moved_epochs_are_reloaded() {
        let led = BTreeMap::from([(0, 3), (1, 5), (4, 1)]);
        let (stale, fresh) = shard_changes([(0, 3), (1, 4), (2, 7)].into_iter(), &led);
        assert_eq!(stale, vec![1, 2]);
        assert_eq!(fresh, vec![(1, 5), (4, 1)]);
    }

    #[test]
    fn given_group_ids_when_placed_should_use_kafkas_abs_modulo() {
        assert_eq!(partition_for("group", 50), 98_629_247 % 50);
        assert_eq!(partition_for("my-consumer-group", 50), 1_513_705_513 % 50);
        // "polygenelubricants" hashes to i32::MIN: Kafka's abs gives 0.
        assert_eq!(java_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 7), 0);
    }

    #[test]
    fn given_brokers_alive_when_sizing_should_cap_replication_and_pick_min_isr() {
        assert_eq!(replication_factor(3, Some(5)), 3);
        assert_eq!(replication_factor(3, Some(2)), 2);
        assert_eq!(replication_factor(3, Some(0)), 1);
        assert_eq!(replication_factor(3, None), 1);
        assert_eq!(topic_config(3)["min.insync.replicas"], "2");
        assert_eq!(topic_config(2)["min.insync.replicas"], "1");
        assert_eq!(topic_config(1)["cleanup.policy"], "compact");
    }
}
