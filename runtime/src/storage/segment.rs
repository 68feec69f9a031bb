//! One segment: its files, the state readers share with the writer, and the
//! scan that validates records and rebuilds the index.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use super::index::{IndexCursor, IndexEntry};
use super::record::{Decoded, MIN_FRAME, announced_len, decode, read_u64};

/// Bytes read per I/O while scanning.
const SCAN_CHUNK: usize = 1 << 20;

/// File name of a segment's log file.
pub(super) fn log_name(base: u64) -> String {
    format!("{base:020}.log")
}

pub(super) fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}

pub(super) fn time_index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.timeindex"))
}

/// Marker of a compacted segment: holds the segment's end offset (one past
/// its last offset before compaction), so gaps are known to be intended.
pub(super) fn compacted_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.compacted"))
}

/// Kind and base offset of a file in a log directory, from its name.
pub(super) fn parse_name(name: &str) -> Option<(u64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let base = stem.parse().ok()?;
    matches!(ext, "log" | "index" | "timeindex" | "compacted").then_some((base, ext))
}

/// Positional read that fills `buf` (`pread`), shared by concurrent readers.
pub(super) fn read_exact_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, pos)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            let rest = buf.get_mut(done..).unwrap_or_default();
            let n = std::os::windows::fs::FileExt::seek_read(file, rest, pos + done as u64)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }
}

/// Positional write of all of `buf` (`pwrite`).
pub(super) fn write_all_at(file: &File, buf: &[u8], pos: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, pos)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            let rest = buf.get(done..).unwrap_or_default();
            let n = std::os::windows::fs::FileExt::seek_write(file, rest, pos + done as u64)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            done += n;
        }
        Ok(())
    }
}

/// Append `len` bytes of `file` at `pos` to `buf`.
pub(super) fn read_append(file: &File, buf: &mut Vec<u8>, pos: u64, len: usize) -> io::Result<()> {
    let start = buf.len();
    buf.resize(start + len, 0);
    let res = read_exact_at(file, buf.get_mut(start..).unwrap_or_default(), pos);
    if res.is_err() {
        buf.truncate(start);
    }
    res
}

/// A segment as readers see it. The writer publishes appended bytes by
/// raising `end` after they are written (and synced, under `Fsync`).
#[derive(Debug)]
pub(super) struct Segment {
    pub base: u64,
    pub path: PathBuf,
    pub file: File,
    /// Compacted: offsets increase but may have gaps.
    pub sparse: bool,
    /// Bytes readers may read: only whole, acknowledged records.
    end: AtomicU64,
    /// One past the offset of the last published record.
    next: AtomicU64,
    /// Largest published timestamp (0 when empty).
    max_ts: AtomicU64,
    index: RwLock<Vec<IndexEntry>>,
}

impl Segment {
    pub(super) fn new(
        base: u64,
        path: PathBuf,
        file: File,
        end: u64,
        next: u64,
        max_ts: u64,
        index: Vec<IndexEntry>,
    ) -> Self {
        Self {
            base,
            path,
            file,
            sparse: false,
            end: AtomicU64::new(end),
            next: AtomicU64::new(next),
            max_ts: AtomicU64::new(max_ts),
            index: RwLock::new(index),
        }
    }

    pub(super) fn end(&self) -> u64 {
        self.end.load(Ordering::Acquire)
    }

    pub(super) fn next_offset(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    pub(super) fn max_ts(&self) -> u64 {
        self.max_ts.load(Ordering::Acquire)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.next_offset() == self.base
    }

    /// Publish newly written records (writer only). Index entries go in
    /// first, so a reader never sees an entry past `end`.
    pub(super) fn publish(&self, entries: &[IndexEntry], end: u64, next: u64, max_ts: u64) {
        if !entries.is_empty() {
            self.index
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(entries);
        }
        self.max_ts.fetch_max(max_ts, Ordering::AcqRel);
        self.next.store(next, Ordering::Release);
        self.end.store(end, Ordering::Release);
    }

    /// Where to start reading for `offset`: `(offset, position)` of the index
    /// point at or before it.
    pub(super) fn seek(&self, offset: u64) -> (u64, u64) {
        let idx = self.index.read().unwrap_or_else(PoisonError::into_inner);
        super::index::floor_offset(&idx, offset).map_or((self.base, 0), |e| (e.offset, e.position))
    }

    /// Where to start scanning for the first record with `timestamp >= ts`.
    pub(super) fn seek_time(&self, ts: u64) -> (u64, u64) {
        let idx = self.index.read().unwrap_or_else(PoisonError::into_inner);
        super::index::floor_time(&idx, ts).map_or((self.base, 0), |e| (e.offset, e.position))
    }

    pub(super) fn index_snapshot(&self) -> Vec<IndexEntry> {
        self.index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Where and why a scan stopped before the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ScanStop {
    pub position: u64,
    pub offset: u64,
    pub reason: &'static str,
}

/// What a scan of `[start, file_len)` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Scan {
    /// End of the last valid record.
    pub valid_end: u64,
    /// Offset after the last valid record.
    pub next: u64,
    /// Indexing state after the last valid record.
    pub cursor: IndexCursor,
    /// Index entries produced by the scanned records.
    pub entries: Vec<IndexEntry>,
    /// Set when an invalid or incomplete record stopped the scan.
    pub stop: Option<ScanStop>,
}

/// Validate records from `start` (whose record must carry offset `first`,
/// or, in a `sparse` segment, at least `first`) to `file_len`, extending the
/// index with `cursor`'s rule.
#[allow(clippy::too_many_arguments)]
pub(super) fn scan(
    file: &File,
    start: u64,
    first: u64,
    file_len: u64,
    mut cursor: IndexCursor,
    interval: u32,
    max_frame: usize,
    sparse: bool,
) -> io::Result<Scan> {
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_pos = start; // file position of buf[0]
    let mut at = 0usize; // parse position in buf
    let mut next = first;
    let mut entries = Vec::new();
    let stop = loop {
        let pos = buf_pos + at as u64;
        if pos >= file_len {
            break None;
        }
        let rest = buf.get(at..).unwrap_or_default();
        match decode(rest, max_frame) {
            Decoded::Frame(info) => {
                if info.offset < next || (info.offset != next && !sparse) {
                    break Some(ScanStop {
                        position: pos,
                        offset: next,
                        reason: "record carries an unexpected offset",
                    });
                }
                entries.extend(cursor.observe(info.offset, pos, info.timestamp, interval));
                next = info.offset + 1;
                at += info.len as usize;
            }
            Decoded::Incomplete { need } => {
                let have = (buf.len() - at) as u64;
                let left = file_len - pos;
                if have >= left {
                    break Some(ScanStop {
                        position: pos,
                        offset: next,
                        reason: "record extends past the end of the file",
                    });
                }
                buf.drain(..at);
                buf_pos = pos;
                at = 0;
                let want = (need.max(SCAN_CHUNK) as u64).min(left) as usize;
                let more = want.saturating_sub(buf.len());
                let at_file = buf_pos + buf.len() as u64;
                read_append(file, &mut buf, at_file, more)?;
            }
            Decoded::Fault(fault) => {
                break Some(ScanStop {
                    position: pos,
                    offset: next,
                    reason: fault.describe(),
                });
            }
        }
    };
    let valid_end = stop.map_or(file_len, |s| s.position);
    Ok(Scan {
        valid_end,
        next,
        cursor,
        entries,
        stop,
    })
}

/// Is there a valid record with an offset at or after `expected` anywhere in
/// `(from, file_len)`? Distinguishes a torn tail (no) from damage in the
/// middle (yes). Byte-by-byte resynchronisation, cheap checks first.
pub(super) fn valid_record_after(
    file: &File,
    from: u64,
    file_len: u64,
    expected: u64,
    max_frame: usize,
) -> io::Result<bool> {
    // An offset further than this cannot fit in the remaining bytes.
    let span = (file_len.saturating_sub(from) / MIN_FRAME as u64) + 1;
    let mut window: Vec<u8> = Vec::new();
    let mut w = from + 1;
    while w + (MIN_FRAME as u64) <= file_len {
        let n = (SCAN_CHUNK as u64 + 16).min(file_len - w) as usize;
        window.clear();
        read_append(file, &mut window, w, n)?;
        let last = n.min(SCAN_CHUNK);
        for i in 0..last {
            let p = w + i as u64;
            let head = window.get(i..).unwrap_or_default();
            let Some(len) = announced_len(head, max_frame) else {
                continue;
            };
            if p + len as u64 > file_len {
                continue;
            }
            let Some(offset) = read_u64(head, 8) else {
                continue;
            };
            if offset < expected || offset - expected > span {
                continue;
            }
            let frame_ok = if head.len() >= len {
                matches!(decode(head, max_frame), Decoded::Frame(_))
            } else {
                let mut frame = Vec::new();
                read_append(file, &mut frame, p, len)?;
                matches!(decode(&frame, max_frame), Decoded::Frame(_))
            };
            if frame_ok {
                return Ok(true);
            }
        }
        w += last as u64;
    }
    Ok(false)
}
