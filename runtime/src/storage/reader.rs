//! State shared between a log's writer and its readers, and the read paths.
//!
//! Readers never take the writer's lock: they load the high-water mark, take
//! a snapshot of the segment list and read with `pread` up to each
//! segment's published end. Every record read is checksum-verified.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::config::ReadLimits;
use super::error::ReadError;
use super::lock::Lock;
use super::read_batch::ReadBatch;
use super::record::{Decoded, FrameInfo, decode};
use super::segment::{Segment, read_append};

/// Smallest read-ahead of one read.
const MIN_READ_AHEAD: usize = 64 << 10;
/// Largest read-ahead of one read.
const MAX_READ_AHEAD: usize = 16 << 20;

/// The offsets a log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OffsetBounds {
    /// Offset of the earliest stored record (equals `next` when empty).
    pub earliest: u64,
    /// One past the last acknowledged record: the next offset to be assigned.
    pub next: u64,
}

pub(super) type SegmentList = Arc<Vec<Arc<Segment>>>;

#[derive(Debug)]
pub(super) struct Shared {
    pub dir: PathBuf,
    pub max_frame: usize,
    segments: Mutex<SegmentList>,
    /// High-water mark: offsets below it are acknowledged and readable.
    next: AtomicU64,
    /// Held for the life of the log: one writer per directory.
    _lock: Lock,
}

/// Whether a walk should go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

impl Shared {
    pub(super) fn new(
        dir: PathBuf,
        max_frame: usize,
        segments: Vec<Arc<Segment>>,
        next: u64,
        lock: Lock,
    ) -> Self {
        Self {
            dir,
            max_frame,
            segments: Mutex::new(Arc::new(segments)),
            next: AtomicU64::new(next),
            _lock: lock,
        }
    }

    pub(super) fn snapshot(&self) -> SegmentList {
        self.segments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set_segments(&self, list: Vec<Arc<Segment>>) {
        *self.segments.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(list);
    }

    pub(super) fn next(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    pub(super) fn publish_next(&self, next: u64) {
        self.next.store(next, Ordering::Release);
    }

    pub(super) fn bounds(&self) -> OffsetBounds {
        let next = self.next();
        let segs = self.snapshot();
        let earliest = segs.first().map_or(next, |s| s.base.min(next));
        OffsetBounds { earliest, next }
    }

    pub(super) fn read(&self, from: u64, limits: ReadLimits) -> Result<ReadBatch, ReadError> {
        let next = self.next();
        let segs = self.snapshot();
        let earliest = segs.first().map_or(next, |s| s.base.min(next));
        if from < earliest || from > next {
            return Err(ReadError::OutOfRange {
                requested: from,
                earliest,
                next,
            });
        }
        let mut out = ReadBatch::empty(from);
        if from == next || limits.max_records == 0 {
            return Ok(out);
        }
        let read_ahead = limits
            .max_bytes
            .saturating_add(4096)
            .clamp(MIN_READ_AHEAD, MAX_READ_AHEAD);
        let first = segs.partition_point(|s| s.base <= from).saturating_sub(1);
        for seg in segs.iter().skip(first) {
            if seg.base >= next {
                break;
            }
            let (expected, pos) = if from > seg.base {
                seg.seek(from)
            } else {
                (seg.base, 0)
            };
            let ReadBatch {
                buf,
                entries,
                bytes,
                next: out_next,
            } = &mut out;
            let stopped = walk(
                seg,
                expected,
                pos,
                next,
                self.max_frame,
                read_ahead,
                buf,
                |info, start| {
                    if info.offset < from {
                        return Flow::Continue;
                    }
                    let len = info.len as usize;
                    if entries.len() >= limits.max_records
                        || (!entries.is_empty() && *bytes + len > limits.max_bytes)
                    {
                        return Flow::Stop;
                    }
                    *bytes += len;
                    *out_next = info.offset + 1;
                    entries.push((start, *info));
                    Flow::Continue
                },
            )?;
            if stopped {
                break;
            }
        }
        // Drop read-ahead past the last record.
        if let Some((start, info)) = out.entries.last() {
            let end = start + info.len as usize;
            out.buf.truncate(end);
        }
        Ok(out)
    }

    /// First offset whose record has `timestamp >= ts`, if any.
    pub(super) fn offset_for_timestamp(&self, ts: u64) -> Result<Option<u64>, ReadError> {
        let next = self.next();
        let segs = self.snapshot();
        let mut buf = Vec::new();
        for seg in segs.iter() {
            if seg.base >= next {
                break;
            }
            if seg.is_empty() || seg.max_ts() < ts {
                continue;
            }
            let (expected, pos) = seg.seek_time(ts);
            let mut found = None;
            buf.clear();
            walk(
                seg,
                expected,
                pos,
                next,
                self.max_frame,
                MIN_READ_AHEAD,
                &mut buf,
                |info, _| {
                    if info.timestamp >= ts {
                        found = Some(info.offset);
                        Flow::Stop
                    } else {
                        Flow::Continue
                    }
                },
            )?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }
}

/// Walk the published records of `seg` starting at byte `pos`, whose record
/// must carry offset `expected`, appending the bytes to `buf` and calling
/// `visit(info, start_in_buf)` per record. Returns true when the visitor or
/// the high-water mark `hwm` stopped the walk, false at the segment's end.
#[allow(clippy::too_many_arguments)]
fn walk(
    seg: &Segment,
    mut expected: u64,
    pos: u64,
    hwm: u64,
    max_frame: usize,
    read_ahead: usize,
    buf: &mut Vec<u8>,
    mut visit: impl FnMut(&FrameInfo, usize) -> Flow,
) -> Result<bool, ReadError> {
    let end = seg.end();
    let region = buf.len();
    let mut at = region;
    let corrupt = |position: u64, offset: u64, reason: &'static str| ReadError::Corrupt {
        path: seg.path.clone(),
        position,
        offset,
        reason,
    };
    loop {
        let here = pos + (at - region) as u64;
        if expected >= hwm {
            return Ok(true);
        }
        if here >= end {
            return Ok(false);
        }
        match decode(buf.get(at..).unwrap_or_default(), max_frame) {
            Decoded::Frame(info) => {
                if info.offset < expected || (info.offset != expected && !seg.sparse) {
                    return Err(corrupt(
                        here,
                        expected,
                        "record carries an unexpected offset",
                    ));
                }
                if here + u64::from(info.len) > end {
                    return Err(corrupt(here, expected, "record crosses the published end"));
                }
                if visit(&info, at) == Flow::Stop {
                    return Ok(true);
                }
                at += info.len as usize;
                expected = info.offset + 1;
            }
            Decoded::Incomplete { need } => {
                let have = buf.len() - at;
                let left = end - here;
                if have as u64 >= left {
                    return Err(corrupt(here, expected, "record crosses the published end"));
                }
                let want = (need.max(read_ahead) as u64).min(left) as usize;
                let more = want.saturating_sub(have);
                read_append(&seg.file, buf, here + have as u64, more).map_err(|source| {
                    ReadError::Io {
                        path: seg.path.clone(),
                        source,
                    }
                })?;
            }
            Decoded::Fault(fault) => return Err(corrupt(here, expected, fault.describe())),
        }
    }
}
