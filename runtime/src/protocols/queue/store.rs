//! The queue on disk: a directory per queue holding generations of an
//! append-only event log (`gen-<20 digits>/`, each a [`FileLog`]).
//!
//! - Every state change is an [`Event`]; events are packed into log records
//!   (many per record, one group commit for many records).
//! - Opening replays the newest *complete* generation: one that holds a
//!   [`Event::Checkpoint`]. A fresh generation starts with one; a
//!   compaction writes a snapshot of the live state ending with one.
//!   Incomplete generations (a crash during compaction) and older ones
//!   are deleted.
//! - Compaction writes generation `n + 1` from a snapshot, syncs it and the
//!   directory, then deletes generation `n`; a crash at any point leaves
//!   one complete generation to open.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::codec::{self, TimeMap};
use super::core::{Event, QueueCore};
use super::error::OpenError;
use super::types::QueueConfig;
use crate::storage::{Batch, FileLog, LogConfig, OpenOptions, ReadLimits, RecordError};

/// Events are packed into records of about this many bytes.
const RECORD_TARGET: usize = 256 << 10;
/// Bytes of record overhead counted per record (storage frame header).
const RECORD_OVERHEAD: u64 = 32;

/// Check a queue name: `[A-Za-z0-9._-]{1,128}`, not starting with a dot.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(crate) fn log_config(config: &QueueConfig) -> LogConfig {
    LogConfig {
        durability: config.durability,
        segment_bytes: config.segment_bytes,
        max_record_bytes: u32::try_from(
            (config.max_message_bytes + (512 << 10)).min(crate::storage::MAX_FRAME_BYTES),
        )
        .unwrap_or(u32::MAX),
        ..LogConfig::default()
    }
}

pub(crate) fn gen_dir(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("gen-{generation:020}"))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn generations(dir: &Path) -> Result<Vec<u64>, OpenError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|s| s.strip_prefix("gen-"))
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Make a directory's entries durable (a created or removed child).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// A queue read back from disk.
#[derive(Debug)]
pub(crate) struct Opened {
    pub core: QueueCore,
    pub log: FileLog,
    pub generation: u64,
    /// Bytes in the open generation's log.
    pub log_bytes: u64,
}

/// Open (or create) the queue in `dir`; see the module docs.
pub(crate) async fn open(
    dir: &Path,
    config: &QueueConfig,
    map: TimeMap,
) -> Result<Opened, OpenError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let gens = generations(dir)?;
    let mut chosen: Option<Opened> = None;
    for &g in gens.iter().rev() {
        let path = gen_dir(dir, g);
        let log = FileLog::open(&path, log_config(config), OpenOptions::default())?;
        let mut core = QueueCore::new(config.clone());
        let (complete, log_bytes) = replay(&log, &path, &mut core, map)?;
        if complete {
            chosen = Some(Opened {
                core,
                log,
                generation: g,
                log_bytes,
            });
            break;
        }
        drop(log);
        tracing::warn!(path = %path.display(), "removing an incomplete queue generation");
        fs::remove_dir_all(&path).map_err(io_err(&path))?;
    }
    let mut opened = match chosen {
        Some(o) => o,
        None => {
            let generation = gens.last().map_or(0, |g| g + 1);
            let checkpoint = [Event::Checkpoint { next_id: 0 }];
            let (log, log_bytes) =
                write_generation(dir, generation, &checkpoint, config, &map, map.wall_ms)
                    .await
                    .map_err(|e| match e {
                        GenerationError::Open(e) => e,
                        GenerationError::Append(e) => OpenError::Append(e),
                        GenerationError::Record(_) => {
                            OpenError::InvalidConfig("checkpoint record too large")
                        }
                    })?;
            Opened {
                core: QueueCore::new(config.clone()),
                log,
                generation,
                log_bytes,
            }
        }
    };
    for &g in &gens {
        if g < opened.generation {
            let path = gen_dir(dir, g);
            fs::remove_dir_all(&path).map_err(io_err(&path))?;
        }
    }
    opened.core.finish_replay(map.now);
    Ok(opened)
}

/// Replay one generation into `core`; returns whether it is complete and
/// its size in bytes.
fn replay(
    log: &FileLog,
    path: &Path,
    core: &mut QueueCore,
    map: TimeMap,
) -> Result<(bool, u64), OpenError> {
    let mut from = log.bounds().earliest;
    let mut complete = false;
    let mut bytes = 0u64;
    loop {
        let batch = log.read(from, ReadLimits::default())?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            bytes += r.value.len() as u64 + RECORD_OVERHEAD;
            let events = codec::decode_all(r.value, &map).map_err(|reason| OpenError::Corrupt {
                path: path.to_path_buf(),
                offset: r.offset,
                reason,
            })?;
            for e in events {
                complete |= matches!(e, Event::Checkpoint { .. });
                core.replay(e, map.now);
            }
        }
        from = batch.next_offset();
    }
    Ok((complete, bytes))
}

/// Why writing a generation failed.
#[derive(Debug)]
pub(crate) enum GenerationError {
    Open(OpenError),
    Append(crate::storage::AppendError),
    Record(RecordError),
}

impl std::fmt::Display for GenerationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Open(e) => write!(f, "{e}"),
            Self::Append(e) => write!(f, "{e}"),
            Self::Record(e) => write!(f, "{e}"),
        }
    }
}

/// Write a new generation holding `events` (which must end with a
/// checkpoint) and make it and its directory entry durable.
pub(crate) async fn write_generation(
    dir: &Path,
    generation: u64,
    events: &[Event],
    config: &QueueConfig,
    map: &TimeMap,
    ts: u64,
) -> Result<(FileLog, u64), GenerationError> {
    let path = gen_dir(dir, generation);
    if path.exists() {
        fs::remove_dir_all(&path).map_err(|e| GenerationError::Open(io_err(&path)(e)))?;
    }
    let log = FileLog::open(&path, log_config(config), OpenOptions::default())
        .map_err(|e| GenerationError::Open(e.into()))?;
    let mut w = EventWriter::default();
    for e in events {
        w.push(e, map, ts).map_err(GenerationError::Record)?;
    }
    let batch = w.take(ts).map_err(GenerationError::Record)?;
    let bytes = batch.encoded_len() as u64;
    log.append(batch).await.map_err(GenerationError::Append)?;
    sync_dir(dir).map_err(|e| GenerationError::Open(io_err(dir)(e)))?;
    Ok((log, bytes))
}

/// Packs events into log records.
#[derive(Debug, Default)]
pub(crate) struct EventWriter {
    batch: Batch,
    value: Vec<u8>,
}

impl EventWriter {
    /// Add one event (timestamp `ts` for a record it completes).
    pub(crate) fn push(&mut self, e: &Event, map: &TimeMap, ts: u64) -> Result<(), RecordError> {
        // A big message gets a record of its own, so records stay within
        // the log's limit (max message size + slack).
        if let Event::Enqueued { body, .. } = e
            && !self.value.is_empty()
            && self.value.len() + body.payload.len() > RECORD_TARGET
        {
            self.seal(ts)?;
        }
        codec::encode(e, map, &mut self.value);
        if self.value.len() >= RECORD_TARGET {
            self.seal(ts)?;
        }
        Ok(())
    }

    fn seal(&mut self, ts: u64) -> Result<(), RecordError> {
        if !self.value.is_empty() {
            self.batch.push(ts, None, &self.value)?;
            self.value.clear();
        }
        Ok(())
    }

    /// Bytes waiting.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.batch.encoded_len() + self.value.len()
    }

    /// Everything pushed so far, as one batch.
    pub(crate) fn take(&mut self, ts: u64) -> Result<Batch, RecordError> {
        self.seal(ts)?;
        Ok(std::mem::take(&mut self.batch))
    }
}

/// Remove an old generation after a newer one is durable.
pub(crate) fn remove_generation(dir: &Path, generation: u64) -> io::Result<()> {
    fs::remove_dir_all(gen_dir(dir, generation))?;
    sync_dir(dir)
}

/// `now` for replays and snapshots.
pub(crate) fn time_map(now: Instant, wall: std::time::SystemTime) -> TimeMap {
    let wall_ms = wall
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    TimeMap { now, wall_ms }
}
