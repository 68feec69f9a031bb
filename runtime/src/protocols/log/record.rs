//! What producers send and what a produce returns.

use crate::storage::Header;

/// A record to append. The topic chooses its partition (by key, or
/// round-robin) unless [`partition`](Self::partition) is set, and stamps it
/// with the node's wall clock unless [`timestamp`](Self::timestamp) is set.
///
/// # Examples
///
/// ```
/// use plexus_runtime::protocols::log::ProducerRecord;
/// let r = ProducerRecord::keyed("order-7", "{\"qty\":2}").header("source", "web");
/// assert_eq!(r.key.as_deref(), Some(&b"order-7"[..]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerRecord {
    /// Key: chooses the partition and, in a compacted topic, identifies the
    /// entity whose latest value survives.
    pub key: Option<Vec<u8>>,
    /// Payload.
    pub value: Vec<u8>,
    /// Headers, in order. The name `plexus.producer` is reserved.
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch; `None` = the node clock's wall time.
    pub timestamp: Option<u64>,
    /// Force a partition instead of hashing the key.
    pub partition: Option<u32>,
}

impl ProducerRecord {
    /// A keyless record (partitions chosen round-robin).
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Self {
            value: value.into(),
            ..Self::default()
        }
    }

    /// A keyed record.
    pub fn keyed(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: Some(key.into()),
            value: value.into(),
            ..Self::default()
        }
    }

    /// A tombstone: in a compacted topic, deletes `key` (compaction later
    /// removes the key's older records and, after
    /// [`tombstone_retention_ms`](super::TopicConfig::tombstone_retention_ms),
    /// the tombstone itself).
    pub fn tombstone(key: impl Into<Vec<u8>>) -> Self {
        Self::keyed(key, Vec::new()).header(crate::storage::TOMBSTONE_HEADER, Vec::new())
    }

    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// Set the timestamp (milliseconds since the Unix epoch).
    pub fn at(mut self, timestamp: u64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Send to this partition, whatever the key.
    pub fn to_partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }
}

/// Where an appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordPosition {
    /// Partition.
    pub partition: u32,
    /// Offset within the partition.
    pub offset: u64,
}

/// Where a reader starts in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// The earliest record still stored.
    #[default]
    Earliest,
    /// After the last record: only new records.
    Latest,
    /// This offset (clamped into the stored range).
    Offset(u64),
    /// The first record with `timestamp >= ms` (the end if none).
    Timestamp(u64),
}
