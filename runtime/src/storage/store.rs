//! The [`LogStore`] trait and its in-memory implementation [`MemLog`].

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use super::config::{LogConfig, ReadLimits};
use super::error::{AppendError, LogError, ReadError};
use super::file_log::FileLog;
use super::log::{AppendAck, RetentionReport};
use super::read_batch::ReadBatch;
use super::reader::OffsetBounds;
use super::record::{Batch, Decoded, FrameInfo, MAX_FRAME_BYTES, announced_len, decode, seal};

/// The log of one partition, as the log and queue protocols need it.
///
/// Implemented by [`FileLog`] (segment files, group commit), [`MemLog`]
/// (tests and simulation) and, later, a NATS JetStream backend.
///
/// The methods return futures because two of the three backends are
/// naturally asynchronous: an append is acknowledged when a group commit
/// (or a JetStream ack) completes. The futures are `Send` and runtime
/// agnostic (no tokio timers or I/O inside), so protocol cores can be driven
/// by any executor. The file backend's reads complete immediately, reading
/// with `pread` on the calling thread (usually from the page cache). The
/// trait uses return-position `impl Future`, so it is used as a generic
/// bound, not as `dyn LogStore`.
pub trait LogStore: Send + Sync {
    /// The backend's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Append `batch`; resolves with its offsets once durable per the
    /// backend's policy.
    fn append(&self, batch: Batch) -> impl Future<Output = Result<AppendAck, Self::Error>> + Send;

    /// Up to `limits` acknowledged records from offset `from`; empty at the end.
    fn read(
        &self,
        from: u64,
        limits: ReadLimits,
    ) -> impl Future<Output = Result<ReadBatch, Self::Error>> + Send;

    /// Earliest stored and next offsets.
    fn bounds(&self) -> impl Future<Output = Result<OffsetBounds, Self::Error>> + Send;

    /// First offset whose record has `timestamp >= ts`, if any. The default
    /// scans from the earliest record; backends with a time index override it.
    fn offset_for_timestamp(
        &self,
        ts: u64,
    ) -> impl Future<Output = Result<Option<u64>, Self::Error>> + Send {
        async move {
            let bounds = self.bounds().await?;
            let mut from = bounds.earliest;
            // Each pass moves `from` forward by at least one record.
            while from < bounds.next {
                let batch = self.read(from, ReadLimits::default()).await?;
                if batch.is_empty() {
                    break;
                }
                if let Some(r) = batch.iter().find(|r| r.timestamp >= ts) {
                    return Ok(Some(r.offset));
                }
                from = batch.next_offset();
            }
            Ok(None)
        }
    }

    /// Apply the backend's retention as of `now_millis`. Default: nothing.
    fn enforce_retention(
        &self,
        now_millis: u64,
    ) -> impl Future<Output = Result<RetentionReport, Self::Error>> + Send {
        let _ = now_millis;
        async { Ok(RetentionReport::default()) }
    }
}

impl LogStore for FileLog {
    type Error = LogError;

    async fn append(&self, batch: Batch) -> Result<AppendAck, LogError> {
        Ok(Self::append(self, batch).await?)
    }

    async fn read(&self, from: u64, limits: ReadLimits) -> Result<ReadBatch, LogError> {
        Ok(Self::read(self, from, limits)?)
    }

    async fn bounds(&self) -> Result<OffsetBounds, LogError> {
        Ok(Self::bounds(self))
    }

    async fn offset_for_timestamp(&self, ts: u64) -> Result<Option<u64>, LogError> {
        Ok(Self::offset_for_timestamp(self, ts)?)
    }

    async fn enforce_retention(&self, now_millis: u64) -> Result<RetentionReport, LogError> {
        Ok(Self::enforce_retention(self, now_millis).await?)
    }
}

/// An in-memory log for tests and simulation. Appends are acknowledged at
/// once; retention applies per record (not per segment) with the
/// configuration's `retention_bytes` and `retention_ms`. Cheap to clone;
/// clones share the data.
#[derive(Debug, Clone, Default)]
pub struct MemLog {
    inner: Arc<Mutex<MemInner>>,
}

#[derive(Debug, Default)]
struct MemInner {
    config: LogConfig,
    records: VecDeque<(Box<[u8]>, FrameInfo)>,
    bytes: u64,
    next: u64,
}

impl MemLog {
    /// An empty log with the default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty log using `config`'s record size limit and retention.
    pub fn with_config(config: LogConfig) -> Self {
        Self {
            inner: Arc::new(Mutex::new(MemInner {
                config,
                ..MemInner::default()
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Append synchronously.
    ///
    /// # Errors
    /// [`AppendError::RecordTooLarge`]; nothing is appended then.
    pub fn append_now(&self, batch: &Batch) -> Result<AppendAck, AppendError> {
        let mut inner = self.lock();
        let max = (inner.config.max_record_bytes as usize).min(MAX_FRAME_BYTES);
        let frames = batch.frames();
        let mut sealed = Vec::with_capacity(batch.len());
        let mut at = 0;
        let base = inner.next;
        while let Some(rest) = frames.get(at..).filter(|r| !r.is_empty()) {
            let len = announced_len(rest, MAX_FRAME_BYTES).unwrap_or(rest.len());
            let Some(frame) = rest.get(..len).filter(|_| len <= max) else {
                return Err(AppendError::RecordTooLarge { size: len, max });
            };
            let mut owned: Box<[u8]> = frame.into();
            seal(&mut owned, base + sealed.len() as u64);
            let Decoded::Frame(info) = decode(&owned, max) else {
                return Err(AppendError::RecordTooLarge { size: len, max });
            };
            sealed.push((owned, info));
            at += len;
        }
        let count = sealed.len();
        for (frame, info) in sealed {
            inner.bytes += frame.len() as u64;
            inner.records.push_back((frame, info));
        }
        inner.next += count as u64;
        Ok(AppendAck {
            base_offset: base,
            count,
        })
    }

    /// Read synchronously; see [`LogStore::read`].
    ///
    /// # Errors
    /// [`ReadError::OutOfRange`].
    pub fn read_now(&self, from: u64, limits: ReadLimits) -> Result<ReadBatch, ReadError> {
        let inner = self.lock();
        let bounds = inner.bounds();
        if from < bounds.earliest || from > bounds.next {
            return Err(ReadError::OutOfRange {
                requested: from,
                earliest: bounds.earliest,
                next: bounds.next,
            });
        }
        let mut out = ReadBatch::empty(from);
        let skip = (from - bounds.earliest) as usize;
        for (frame, info) in inner.records.iter().skip(skip) {
            if out.len() >= limits.max_records
                || (!out.is_empty() && out.encoded_len() + frame.len() > limits.max_bytes)
            {
                break;
            }
            out.push_copy(frame, *info);
        }
        Ok(out)
    }

    /// Earliest and next offsets.
    pub fn bounds_now(&self) -> OffsetBounds {
        self.lock().bounds()
    }

    /// Drop records per the configured retention, oldest first.
    pub fn retain_now(&self, now_millis: u64) -> RetentionReport {
        let mut inner = self.lock();
        let mut report = RetentionReport::default();
        while let Some((frame, info)) = inner.records.front() {
            let size = frame.len() as u64;
            let by_size = inner
                .config
                .retention_bytes
                .is_some_and(|max| inner.bytes.saturating_sub(size) >= max);
            let by_age = inner
                .config
                .retention_ms
                .is_some_and(|ms| now_millis.saturating_sub(info.timestamp) > ms);
            if !(by_size || by_age) {
                break;
            }
            inner.records.pop_front();
            inner.bytes -= size;
            report.records_deleted += 1;
            report.bytes_deleted += size;
        }
        report
    }
}

impl MemInner {
    fn bounds(&self) -> OffsetBounds {
        let earliest = self.records.front().map_or(self.next, |(_, i)| i.offset);
        OffsetBounds {
            earliest,
            next: self.next,
        }
    }
}

impl LogStore for MemLog {
    type Error = LogError;

    async fn append(&self, batch: Batch) -> Result<AppendAck, LogError> {
        Ok(self.append_now(&batch)?)
    }

    async fn read(&self, from: u64, limits: ReadLimits) -> Result<ReadBatch, LogError> {
        Ok(self.read_now(from, limits)?)
    }

    async fn bounds(&self) -> Result<OffsetBounds, LogError> {
        Ok(self.bounds_now())
    }

    async fn enforce_retention(&self, now_millis: u64) -> Result<RetentionReport, LogError> {
        Ok(self.retain_now(now_millis))
    }
}
