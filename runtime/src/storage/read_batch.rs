//! [`ReadBatch`]: records returned by a read, in one buffer.

use super::record::{FrameInfo, RecordRef};

/// Records returned by one read: one buffer plus the position of each
/// validated record in it. Iterate to borrow [`RecordRef`]s.
#[derive(Debug, Clone, Default)]
pub struct ReadBatch {
    pub(super) buf: Vec<u8>,
    pub(super) entries: Vec<(usize, FrameInfo)>,
    pub(super) bytes: usize,
    pub(super) next: u64,
}

impl ReadBatch {
    /// An empty batch whose [`next_offset`](Self::next_offset) is `next`.
    pub(super) fn empty(next: u64) -> Self {
        Self {
            next,
            ..Self::default()
        }
    }

    /// Record the frame at `buf[start..]` (already validated).
    pub(super) fn push(&mut self, start: usize, info: FrameInfo) {
        self.bytes += info.len as usize;
        self.next = info.offset + 1;
        self.entries.push((start, info));
    }

    /// Copy a validated frame in.
    pub(super) fn push_copy(&mut self, frame: &[u8], info: FrameInfo) {
        let start = self.buf.len();
        self.buf.extend_from_slice(frame);
        self.push(start, info);
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no record was returned (the reader is at the end).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of the encoded sizes of the records.
    pub fn encoded_len(&self) -> usize {
        self.bytes
    }

    /// The offset to read from next: one past the last record, or the
    /// requested offset when empty.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// The `i`-th record.
    pub fn get(&self, i: usize) -> Option<RecordRef<'_>> {
        let (start, info) = self.entries.get(i)?;
        let frame = self.buf.get(*start..start + info.len as usize)?;
        Some(RecordRef::from_frame(frame, info))
    }

    /// The records in offset order.
    pub fn iter(&self) -> ReadBatchIter<'_> {
        ReadBatchIter {
            batch: self,
            next: 0,
        }
    }
}

impl<'a> IntoIterator for &'a ReadBatch {
    type Item = RecordRef<'a>;
    type IntoIter = ReadBatchIter<'a>;
    fn into_iter(self) -> ReadBatchIter<'a> {
        self.iter()
    }
}

/// Iterator over the records of a [`ReadBatch`].
#[derive(Debug, Clone)]
pub struct ReadBatchIter<'a> {
    batch: &'a ReadBatch,
    next: usize,
}

impl<'a> Iterator for ReadBatchIter<'a> {
    type Item = RecordRef<'a>;

    fn next(&mut self) -> Option<RecordRef<'a>> {
        let r = self.batch.get(self.next)?;
        self.next += 1;
        Some(r)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.batch.len().saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for ReadBatchIter<'_> {}
