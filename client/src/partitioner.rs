//! Partition choice like Kafka's default partitioner: [`murmur2`] of the
//! key, made positive, modulo the partition count ([`partition_for_key`]);
//! records without a key stick to one partition per batch and move on
//! round-robin ([`StickyPartitioner`]).

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`),
/// seed 0x9747b28c, as the Java client's default partitioner uses it.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit.
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for a keyed record.
///
/// # Panics
/// When `partitions` is not positive.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    to_positive(murmur2(key)) % partitions
}

/// Partition choice for records without a key: stay on one partition until
/// the current batch is complete ([`StickyPartitioner::batch_done`]), then
/// move to the next one round-robin, so keyless records fill whole batches.
#[derive(Debug, Clone)]
pub struct StickyPartitioner {
    partitions: i32,
    current: i32,
}

impl StickyPartitioner {
    /// Starts on `first % partitions`.
    ///
    /// # Panics
    /// When `partitions` is not positive.
    pub fn new(partitions: i32, first: i32) -> Self {
        assert!(partitions > 0, "a topic has at least one partition");
        Self {
            partitions,
            current: first.rem_euclid(partitions),
        }
    }
    /// The partition for the next keyless record.
    pub fn current(&self) -> i32 {
        self.current
    }
    /// The sticky partition's batch was closed: move on.
    pub fn batch_done(&mut self) {
        self.current = (self.current + 1) % self.partitions;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka_reference_values() {
        // From Kafka's UtilsTest.testMurmur2 and librdkafka's rdmurmur2.c.
        let cases: &[(&str, i32)] = &[
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
            ("1", -1_993_445_489),
            ("12", 126_087_238),
            ("123", -267_702_483),
            ("1234", -1_614_185_708),
            ("12345", -1_188_365_604),
            ("kafka", -798_503_068),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), *expected, "murmur2({input:?})");
        }
    }

    #[test]
    fn given_a_key_partition_is_positive_hash_mod_count() {
        // to_positive(-973932308) = 1173551340; 1173551340 % 7 = 1173551340 - 7*167650191 = 3
        assert_eq!(partition_for_key(b"21", 7), 3);
        for key in ["a", "bb", "ccc", "dddd", "eeeee"] {
            let p = partition_for_key(key.as_bytes(), 3);
            assert!((0..3).contains(&p));
            assert_eq!(p, partition_for_key(key.as_bytes(), 3), "stable");
        }
    }

    #[test]
    fn sticky_partitioner_moves_round_robin_on_batch_done() {
        let mut s = StickyPartitioner::new(3, 5);
        assert_eq!(s.current(), 2);
        s.batch_done();
        assert_eq!(s.current(), 0);
        s.batch_done();
        assert_eq!(s.current(), 1);
    }
}
