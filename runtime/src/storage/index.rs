//! Sparse offset and time indexes of one segment. Pure logic: the rule that
//! decides where entries go (shared by the writer and by recovery, so a
//! rebuilt index equals the written one), the file encodings and lookups.
//!
//! `.index` file: repeated `[u64 offset, u64 position]`.
//! `.timeindex` file: repeated `[u64 max_timestamp_before, u64 offset]`, where
//! `max_timestamp_before` is the largest timestamp of the segment's records
//! *before* `offset`. Both little-endian, one entry per line of the other.

use super::record::read_u64;

/// Size of one entry in either index file.
pub(super) const ENTRY_BYTES: usize = 16;

/// One sparse index point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IndexEntry {
    /// Offset of the record at `position`.
    pub offset: u64,
    /// Byte position of that record in the segment file.
    pub position: u64,
    /// Largest timestamp of the segment's records before `offset`.
    pub max_ts_before: u64,
}

/// Running state of the indexing rule over a segment's records in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct IndexCursor {
    /// Position of the last entry (0 = segment start).
    pub last_entry_pos: u64,
    /// Largest timestamp seen so far, if any record was seen.
    pub max_ts: Option<u64>,
    /// Timestamp of the first record, if any.
    pub first_ts: Option<u64>,
}

impl IndexCursor {
    /// Account for the record `(offset, timestamp)` at `position`; returns the
    /// index entry it gets, if any.
    pub(super) fn observe(
        &mut self,
        offset: u64,
        position: u64,
        timestamp: u64,
        interval: u32,
    ) -> Option<IndexEntry> {
        let entry = match self.max_ts {
            Some(max) if position.saturating_sub(self.last_entry_pos) >= u64::from(interval) => {
                self.last_entry_pos = position;
                Some(IndexEntry {
                    offset,
                    position,
                    max_ts_before: max,
                })
            }
            _ => None,
        };
        self.max_ts = Some(self.max_ts.map_or(timestamp, |m| m.max(timestamp)));
        self.first_ts.get_or_insert(timestamp);
        entry
    }

    /// Resume the rule after `entry` (used when scanning from an index point).
    pub(super) fn resume(entry: &IndexEntry) -> Self {
        Self {
            last_entry_pos: entry.position,
            max_ts: Some(entry.max_ts_before),
            first_ts: None,
        }
    }
}

/// Append the file encodings of `entries` to the two buffers.
pub(super) fn encode(entries: &[IndexEntry], offsets: &mut Vec<u8>, times: &mut Vec<u8>) {
    for e in entries {
        offsets.extend_from_slice(&e.offset.to_le_bytes());
        offsets.extend_from_slice(&e.position.to_le_bytes());
        times.extend_from_slice(&e.max_ts_before.to_le_bytes());
        times.extend_from_slice(&e.offset.to_le_bytes());
    }
}

/// Decode and sanity-check index files of a segment with base offset `base`
/// and `file_len` bytes. `None` = missing, stale or inconsistent: rebuild.
pub(super) fn decode(
    offsets: &[u8],
    times: &[u8],
    base: u64,
    file_len: u64,
) -> Option<Vec<IndexEntry>> {
    if offsets.len() != times.len() || !offsets.len().is_multiple_of(ENTRY_BYTES) {
        return None;
    }
    let n = offsets.len() / ENTRY_BYTES;
    let mut out = Vec::with_capacity(n);
    let mut prev: Option<IndexEntry> = None;
    for i in 0..n {
        let at = i * ENTRY_BYTES;
        let e = IndexEntry {
            offset: read_u64(offsets, at)?,
            position: read_u64(offsets, at + 8)?,
            max_ts_before: read_u64(times, at)?,
        };
        let same_offset = read_u64(times, at + 8)? == e.offset;
        let ordered = match prev {
            None => e.offset > base && e.position > 0,
            Some(p) => {
                e.offset > p.offset && e.position > p.position && e.max_ts_before >= p.max_ts_before
            }
        };
        if !same_offset || !ordered || e.position >= file_len {
            return None;
        }
        prev = Some(e);
        out.push(e);
    }
    Some(out)
}

/// Last entry with `offset <= target`.
pub(super) fn floor_offset(entries: &[IndexEntry], target: u64) -> Option<IndexEntry> {
    let i = entries.partition_point(|e| e.offset <= target);
    i.checked_sub(1).and_then(|i| entries.get(i)).copied()
}

/// Last entry before which every record is older than `ts`: the scan for
/// the first record with `timestamp >= ts` may start there.
pub(super) fn floor_time(entries: &[IndexEntry], ts: u64) -> Option<IndexEntry> {
    let i = entries.partition_point(|e| e.max_ts_before < ts);
    i.checked_sub(1).and_then(|i| entries.get(i)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_is_sparse_and_round_trips() {
        let mut c = IndexCursor::default();
        let mut entries = Vec::new();
        for i in 0..100u64 {
            entries.extend(c.observe(10 + i, i * 100, 1000 - i, 1000));
        }
        assert_eq!(entries.len(), 9);
        assert_eq!(entries[0].position, 1000);
        assert_eq!(entries[0].max_ts_before, 1000);
        let (mut o, mut t) = (Vec::new(), Vec::new());
        encode(&entries, &mut o, &mut t);
        assert_eq!(decode(&o, &t, 10, 10_000), Some(entries.clone()));
        assert_eq!(decode(&o[..o.len() - 1], &t, 10, 10_000), None);
        assert_eq!(decode(&o, &t, 10, 5_000), None, "points past the file");
        assert_eq!(floor_offset(&entries, 5), None);
        assert_eq!(floor_offset(&entries, 25), Some(entries[0]));
        assert_eq!(floor_time(&entries, 1000), None);
        assert_eq!(floor_time(&entries, 1001), Some(entries[8]));
    }
}
