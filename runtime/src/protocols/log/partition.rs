//! Which partition a record goes to: a stable hash of the key (Kafka's
//! murmur2, so a key lands on the same partition as it would in Kafka with
//! the default partitioner), round-robin for keyless records.

/// Kafka's 32-bit murmur2 of `data` (seed `0x9747b28c`). Stable across runs,
/// platforms and versions: partition placement depends on it.
///
/// # Examples
///
/// ```
/// use plexus_runtime::protocols::log::murmur2;
/// assert_eq!(murmur2(b"21") as i32, -973_932_308);
/// ```
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
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
    h
}

/// The partition of `key` among `partitions` (which must be > 0), as
/// Kafka's default partitioner computes it: `(murmur2(key) & 0x7fffffff) % n`.
///
/// # Examples
///
/// ```
/// use plexus_runtime::protocols::log::partition_for_key;
/// let p = partition_for_key(b"customer-42", 4);
/// assert!(p < 4);
/// assert_eq!(p, partition_for_key(b"customer-42", 4)); // same every run
/// ```
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn matches_kafka() {
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
        for (data, want) in cases {
            assert_eq!(
                murmur2(data) as i32,
                want,
                "{:?}",
                std::str::from_utf8(data)
            );
        }
    }

    #[test]
    fn partition_in_range() {
        for i in 0..1000u32 {
            assert!(partition_for_key(&i.to_le_bytes(), 7) < 7);
        }
        assert_eq!(partition_for_key(b"x", 0), 0);
    }
}
