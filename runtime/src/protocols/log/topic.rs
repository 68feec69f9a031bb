//! [`Topic`]: N partition logs in one directory, with keyed partitioning,
//! batched and idempotent appends, reads and maintenance.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::UNIX_EPOCH;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::storage::{
    AppendAck, Batch, FileLog, LogConfig, OffsetBounds, OpenOptions, ReadBatch, ReadLimits,
    RetentionReport,
};

use super::batch::{PendingProduce, TopicBatch};
use super::error::{FetchError, MaintenanceError, ProduceError, TopicError};
use super::idempotence::{PRODUCER_HEADER, ProducerId, ProducerTable, decode_stamp};
use super::record::{ProducerRecord, RecordPosition, StartAt};

const META_FILE: &str = "topic.meta";

/// Settings of a topic: plain struct with `Default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// Number of partitions of a new topic. An existing topic keeps its
    /// count; `0` accepts whatever is stored. Default 1.
    pub partitions: u32,
    /// Settings of each partition's log: durability, segment size, group
    /// commit, retention by size and age.
    pub log: LogConfig,
    /// Keyed topic whose history may be compacted: [`Topic::compact`] keeps
    /// the latest record per key. Default false.
    pub compacted: bool,
    /// In a compacted topic, tombstones stay this long (by their timestamp)
    /// so that slow readers still see the deletion. Default 24 h.
    pub tombstone_retention_ms: u64,
    /// Batches remembered per idempotent producer for answering retries.
    /// Default 64.
    pub producer_window: usize,
    /// How a partition's log is opened (repair, full verification).
    pub open: OpenOptions,
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self {
            partitions: 1,
            log: LogConfig::default(),
            compacted: false,
            tombstone_retention_ms: 24 * 3600 * 1000,
            producer_window: super::idempotence::DEFAULT_WINDOW,
            open: OpenOptions::default(),
        }
    }
}

/// A durable, partitioned topic: one crash-safe [`FileLog`] per partition
/// under `dir/partition-<n>`. Cheap to clone; clones share the logs. Safe to
/// use from many tasks and threads at once.
///
/// # Examples
///
/// ```
/// # use std::sync::Arc;
/// # use plexus_runtime::clock::SystemClock;
/// use plexus_runtime::protocols::log::{ProducerRecord, StartAt, Topic, TopicConfig};
/// use plexus_runtime::storage::ReadLimits;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// let config = TopicConfig { partitions: 4, ..TopicConfig::default() };
/// let topic = Topic::open(tmp.path().join("orders"), config, Arc::new(SystemClock))?;
/// let at = topic.append(ProducerRecord::keyed("customer-1", "order 1")).await?;
/// let from = topic.resolve(at.partition, StartAt::Earliest)?;
/// let batch = topic.read(at.partition, from, ReadLimits::default())?;
/// assert_eq!(batch.iter().next().map(|r| r.value), Some(&b"order 1"[..]));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Topic {
    pub(super) inner: Arc<TopicInner>,
}

#[derive(Debug)]
pub(super) struct TopicInner {
    pub(super) name: Arc<str>,
    pub(super) dir: PathBuf,
    pub(super) config: TopicConfig,
    pub(super) logs: Vec<FileLog>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) round_robin: AtomicU64,
    pub(super) producers: Arc<Mutex<ProducerTable>>,
}

impl Topic {
    /// Open (or create) the topic stored in `dir`; its name is the
    /// directory's last component. Opening recovers every partition (see
    /// [`storage`](crate::storage)) and rebuilds the idempotent-producer
    /// table by reading the partitions once.
    ///
    /// # Errors
    /// See [`TopicError`].
    pub fn open(
        dir: impl AsRef<Path>,
        config: TopicConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, TopicError> {
        let dir = dir.as_ref().to_path_buf();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TopicError::Io { path, source }
        };
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let meta = dir.join(META_FILE);
        let partitions = match fs::read_to_string(&meta) {
            Ok(text) => {
                let existing = text
                    .trim()
                    .strip_prefix("partitions=")
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| TopicError::BadMetadata { path: meta.clone() })?;
                if config.partitions != 0 && config.partitions != existing {
                    return Err(TopicError::PartitionMismatch {
                        existing,
                        requested: config.partitions,
                    });
                }
                existing
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if config.partitions == 0 {
                    return Err(TopicError::NoPartitions);
                }
                let tmp = dir.join("topic.meta.tmp");
                fs::write(&tmp, format!("partitions={}\n", config.partitions))
                    .and_then(|()| fs::File::open(&tmp)?.sync_all())
                    .and_then(|()| fs::rename(&tmp, &meta))
                    .map_err(io(&meta))?;
                config.partitions
            }
            Err(e) => return Err(io(&meta)(e)),
        };
        let mut logs = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            let log = FileLog::open(partition_dir(&dir, p), config.log.clone(), config.open)
                .map_err(|source| TopicError::Partition {
                    partition: p,
                    source,
                })?;
            logs.push(log);
        }
        let mut table = ProducerTable::new(config.producer_window);
        for (p, log) in (0u32..).zip(&logs) {
            restore_producers(log, p, &mut table).map_err(|source| TopicError::Recovery {
                partition: p,
                source,
            })?;
        }
        let name: Arc<str> = Arc::from(
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        Ok(Self {
            inner: Arc::new(TopicInner {
                name,
                dir,
                config: TopicConfig {
                    partitions,
                    ..config
                },
                logs,
                clock,
                round_robin: AtomicU64::new(0),
                producers: Arc::new(Mutex::new(table)),
            }),
        })
    }

    /// The topic's name (its directory's name).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The topic's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.inner.config.partitions
    }

    /// The configuration in force.
    pub fn config(&self) -> &TopicConfig {
        &self.inner.config
    }

    /// The node clock's wall time in milliseconds since the Unix epoch:
    /// the default record timestamp and the `now` of retention.
    pub fn now_millis(&self) -> u64 {
        self.inner
            .clock
            .wall()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// An empty batch; keyless records go round-robin.
    pub fn batch(&self) -> TopicBatch {
        TopicBatch::new(self, 0, None, self.now_millis())
    }

    /// An empty idempotent batch: batch `sequence` of `producer` (0, 1, 2, …
    /// per producer). Keyless records are placed round-robin starting at
    /// `sequence`, so a rebuilt retry lands on the same partitions. Send it
    /// with [`send`](Self::send); sending it again (after a timeout, an
    /// error or a restart) returns the original offsets and appends nothing.
    pub fn idempotent_batch(&self, producer: ProducerId, sequence: u64) -> TopicBatch {
        TopicBatch::new(
            self,
            sequence,
            Some((producer, sequence)),
            self.now_millis(),
        )
    }

    /// The sequence `producer` should use next, as the topic knows it
    /// (restored from the log on open).
    pub fn next_sequence(&self, producer: ProducerId) -> u64 {
        self.table().next_sequence(producer)
    }

    /// Append one record; resolves once durable (per the log's
    /// [`Durability`](crate::storage::Durability)).
    ///
    /// # Errors
    /// See [`ProduceError`].
    ///
    /// # Cancel safety
    /// Dropping the future may or may not append the record.
    pub async fn append(&self, record: ProducerRecord) -> Result<RecordPosition, ProduceError> {
        let mut batch = self.batch();
        batch.push(record)?;
        let positions = self.send(batch).await?;
        positions
            .into_iter()
            .next()
            .ok_or(ProduceError::UnknownPartition {
                partition: 0,
                partitions: self.partitions(),
            })
    }

    /// Append a batch; resolves with each record's position, in push order,
    /// once all are durable. Records of one partition are appended
    /// atomically with respect to other producers (contiguous offsets).
    ///
    /// # Errors
    /// See [`ProduceError`]. A plain batch may be partly appended on error;
    /// an idempotent one can simply be sent again.
    ///
    /// # Cancel safety
    /// Dropping the future may or may not append the batch. An idempotent
    /// batch's outcome is still recorded, so a retry is answered correctly.
    pub async fn send(&self, batch: TopicBatch) -> Result<Vec<RecordPosition>, ProduceError> {
        self.enqueue(batch).await?.wait().await
    }

    /// Hand a batch to the partition logs, waiting only for room in their
    /// queues, and return the pending acknowledgement: lets one task keep
    /// many batches in flight.
    ///
    /// # Errors
    /// See [`ProduceError`].
    ///
    /// # Cancel safety
    /// If dropped while waiting for room, some partitions' parts may be
    /// queued and others not.
    pub async fn enqueue(&self, batch: TopicBatch) -> Result<PendingProduce, ProduceError> {
        super::batch::enqueue(self, batch).await
    }

    /// Records of `partition` from offset `from`, within `limits`. In a
    /// compacted topic offsets may have gaps; `from` inside a gap starts at
    /// the next stored record.
    ///
    /// # Errors
    /// [`FetchError::UnknownPartition`]; [`FetchError::Read`] (an
    /// `OutOfRange` offset was deleted by retention or is in the future).
    pub fn read(
        &self,
        partition: u32,
        from: u64,
        limits: ReadLimits,
    ) -> Result<ReadBatch, FetchError> {
        Ok(self.log(partition)?.read(from, limits)?)
    }

    /// Earliest stored and next offsets of `partition`.
    ///
    /// # Errors
    /// [`FetchError::UnknownPartition`].
    pub fn bounds(&self, partition: u32) -> Result<OffsetBounds, FetchError> {
        Ok(self.log(partition)?.bounds())
    }

    /// The offset where a reader of `partition` starting at `at` begins.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn resolve(&self, partition: u32, at: StartAt) -> Result<u64, FetchError> {
        let log = self.log(partition)?;
        let b = log.bounds();
        Ok(match at {
            StartAt::Earliest => b.earliest,
            StartAt::Latest => b.next,
            StartAt::Offset(o) => o.clamp(b.earliest, b.next),
            StartAt::Timestamp(ts) => log.offset_for_timestamp(ts)?.unwrap_or(b.next),
        })
    }

    /// A receiver of `partition`'s high-water mark, changed after every
    /// commit: wait on it instead of polling for new records.
    ///
    /// # Errors
    /// [`FetchError::UnknownPartition`].
    pub fn watch(&self, partition: u32) -> Result<watch::Receiver<u64>, FetchError> {
        Ok(self.log(partition)?.watch_commits())
    }

    /// Apply retention (by size and age, whole segments, see
    /// [`LogConfig`]) to every partition, as of the node clock's wall time.
    ///
    /// # Errors
    /// See [`MaintenanceError`].
    pub async fn enforce_retention(&self) -> Result<RetentionReport, MaintenanceError> {
        let now = self.now_millis();
        let mut total = RetentionReport::default();
        for (p, log) in (0u32..).zip(&self.inner.logs) {
            let r =
                log.enforce_retention(now)
                    .await
                    .map_err(|source| MaintenanceError::Retention {
                        partition: p,
                        source,
                    })?;
            total.segments_deleted += r.segments_deleted;
            total.bytes_deleted += r.bytes_deleted;
            total.records_deleted += r.records_deleted;
        }
        Ok(total)
    }

    /// Run [`enforce_retention`](Self::enforce_retention) and then
    /// [`compact`](Self::compact) every `every` on the topic's clock, in a
    /// task, until the returned [`Maintenance`](super::Maintenance) is
    /// dropped. A failed pass is logged and kept as
    /// [`Maintenance::last`](super::Maintenance::last); the next pass runs
    /// as scheduled. Kafka's default retention check is every 5 minutes.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::{sync::Arc, time::Duration};
    /// # use plexus_runtime::clock::ManualClock;
    /// # use plexus_runtime::protocols::log::{Topic, TopicConfig};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let tmp = tempfile::tempdir()?;
    /// let clock = ManualClock::new();
    /// let topic = Topic::open(tmp.path().join("t"), TopicConfig::default(), Arc::new(clock.clone()))?;
    /// let maintenance = topic.maintain_every(Duration::from_secs(300));
    /// clock.advance(Duration::from_secs(300));
    /// maintenance.wait_for_pass(1).await;
    /// assert!(matches!(maintenance.last(), Some(Ok(_))));
    /// # Ok(()) }
    /// ```
    pub fn maintain_every(&self, every: std::time::Duration) -> super::Maintenance {
        super::Maintenance::start(self.clone(), every)
    }

    /// Compact every partition (a no-op unless
    /// [`compacted`](TopicConfig::compacted)): in the sealed segments, only
    /// the latest record of each key survives; keyless records stay;
    /// tombstones older than
    /// [`tombstone_retention_ms`](TopicConfig::tombstone_retention_ms) go.
    /// Offsets never change.
    ///
    /// # Errors
    /// See [`MaintenanceError`].
    pub async fn compact(&self) -> Result<crate::storage::CompactionReport, MaintenanceError> {
        let mut total = crate::storage::CompactionReport::default();
        if !self.inner.config.compacted {
            return Ok(total);
        }
        let now = self.now_millis();
        let keep_tombstones_after = now.saturating_sub(self.inner.config.tombstone_retention_ms);
        for (p, log) in (0u32..).zip(&self.inner.logs) {
            let r = log.compact(keep_tombstones_after).await.map_err(|source| {
                MaintenanceError::Compaction {
                    partition: p,
                    source,
                }
            })?;
            total.segments_rewritten += r.segments_rewritten;
            total.records_removed += r.records_removed;
            total.bytes_removed += r.bytes_removed;
        }
        Ok(total)
    }

    pub(super) fn log(&self, partition: u32) -> Result<&FileLog, FetchError> {
        self.inner
            .logs
            .get(partition as usize)
            .ok_or(FetchError::UnknownPartition {
                partition,
                partitions: self.partitions(),
            })
    }

    pub(super) fn table(&self) -> std::sync::MutexGuard<'_, ProducerTable> {
        self.inner
            .producers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn partition_dir(dir: &Path, p: u32) -> PathBuf {
    dir.join(format!("partition-{p}"))
}

/// Rebuild the producer table from the stamps in one partition. A stamped
/// sub-batch counts only if all its records are there (a crash can leave
/// the unacknowledged tail of one partly written).
fn restore_producers(
    log: &FileLog,
    partition: u32,
    table: &mut ProducerTable,
) -> Result<(), crate::storage::ReadError> {
    let mut from = log.bounds().earliest;
    // (producer, sequence, base, count, seen)
    let mut open: Option<(ProducerId, u64, u64, u32, u32)> = None;
    loop {
        let batch = log.read(
            from,
            ReadLimits {
                max_records: 65_536,
                max_bytes: 16 << 20,
            },
        )?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            let stamp = r
                .headers
                .iter()
                .find(|(n, _)| *n == PRODUCER_HEADER)
                .and_then(|(_, v)| decode_stamp(v));
            let Some((pid, seq, index, count)) = stamp else {
                open = None;
                continue;
            };
            open = match open {
                Some((p, s, base, c, seen)) if p == pid && s == seq && index == seen => {
                    Some((p, s, base, c, seen + 1))
                }
                _ if index == 0 => Some((pid, seq, r.offset, count, 1)),
                _ => None,
            };
            if let Some((p, s, base, c, seen)) = open
                && seen == c
            {
                let ack = AppendAck {
                    base_offset: base,
                    count: c as usize,
                };
                table.restore(p, s, partition, ack);
                open = None;
            }
        }
        from = batch.next_offset();
    }
    Ok(())
}

/// Encode a stamped or plain record into `batch`.
pub(super) fn encode_into(
    batch: &mut Batch,
    record: &ProducerRecord,
    default_ts: u64,
    stamp: Option<[u8; 24]>,
) -> Result<(), crate::storage::RecordError> {
    let mut headers: Vec<(&str, &[u8])> = record
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_slice()))
        .collect();
    if let Some(s) = &stamp {
        headers.push((PRODUCER_HEADER, s));
    }
    batch.push_with_headers(
        record.timestamp.unwrap_or(default_ts),
        record.key.as_deref(),
        &headers,
        &record.value,
    )
}
