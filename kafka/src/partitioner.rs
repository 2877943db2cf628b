//! Which partition a key belongs to: Kafka's default (Java) partitioner.
//!
//! Every StorePulse producer picks the partition itself with
//! [`partition_for`], and the processors check that each event sits in the
//! partition of its `store_id`. The function is the Java client's
//! `murmur2(key) & 0x7fffffff % partitions` (librdkafka calls it
//! `murmur2_random`), so POS systems that produce with a Java client, or
//! with librdkafka and `partitioner=murmur2_random`, put a store's events
//! where the processors expect them. Events produced with another
//! partitioner are not lost: the processor that finds one in the wrong
//! partition forwards it to the right one (see `process`).

/// Kafka's 32-bit murmur2 (seed `0x9747b28c`), as `Utils.murmur2` in the
/// Java client.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ (data.len() as u32);
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

/// The partition of `key` among `partitions` (which must be > 0).
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of the Java client's `UtilsTest.testMurmur2`.
    #[test]
    fn matches_the_java_client() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), expected, "{:?}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn partitions_are_in_range_and_stable() {
        for n in [1, 3, 12] {
            for store in ["KM-001", "DL-002", "LJ-003"] {
                let p = partition_for(store.as_bytes(), n);
                assert!(p < n);
                assert_eq!(p, partition_for(store.as_bytes(), n));
            }
        }
    }
}
