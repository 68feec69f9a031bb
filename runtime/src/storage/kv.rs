//! [`KvStore`]: a small durable key/value map for committed consumer-group
//! offsets and queue state.
//!
//! One append-only file of checksummed entries; each entry is a batch of
//! puts and deletes applied atomically. Opening replays the file (last
//! write wins), truncates a torn final entry, reports damage before the end
//! as [`KvError::Corrupt`] (or truncates there with
//! [`KvOptions::repair`]), and compacts the file when most of it is
//! overwritten history. Compaction writes a new file, syncs it and renames
//! it over the old one, so a crash leaves either file intact.
//!
//! Entry layout (little-endian):
//!
//! ```text
//! u32 len        bytes after this field
//! u32 crc        CRC32C of the bytes after this field
//! u32 op_count
//! per op: u8 kind (1 = put, 2 = delete), u16 key_len, u32 value_len, key, value
//! ```
//!
//! The whole map lives in memory; the store suits thousands to a few
//! million small entries, not bulk data.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::config::Durability;
use super::error::KvError;
use super::lock::{self, Lock, LockFailure};
use super::record::{read_u16, read_u32};

const PUT: u8 = 1;
const DELETE: u8 = 2;
/// Bytes of an entry before its ops: len, crc, op count.
const ENTRY_HEAD: usize = 12;
/// Bytes of an op before its key: kind, key length, value length.
const OP_HEAD: usize = 7;
const MAX_ENTRY: usize = 1 << 30;

/// One change in a [`KvStore::apply`] batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvOp<'a> {
    /// Set `key` to `value`.
    Put(&'a [u8], &'a [u8]),
    /// Remove `key`.
    Delete(&'a [u8]),
}

/// Settings of a [`KvStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvOptions {
    /// `Fsync`: a write returns after `fdatasync`. `OsBuffer`: after the write.
    pub durability: Durability,
    /// Truncate at the first damaged entry instead of failing with
    /// [`KvError::Corrupt`]; later updates are lost (logged at `warn`).
    pub repair: bool,
    /// Compact once the file is at least this large and more than twice
    /// the size of the live data. Default 1 MiB.
    pub compact_min_bytes: u64,
}

impl Default for KvOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Fsync,
            repair: false,
            compact_min_bytes: 1 << 20,
        }
    }
}

/// A durable key/value map backed by one append-only file. Single owner;
/// wrap it in an actor (or a mutex) to share.
#[derive(Debug)]
pub struct KvStore {
    path: PathBuf,
    file: File,
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Bytes in the file.
    size: u64,
    /// Bytes the file would have after compaction (one entry per live
    /// key), kept as keys change so that no write has to sum the map.
    live: u64,
    options: KvOptions,
    poisoned: bool,
    buf: Vec<u8>,
    _lock: Lock,
}

impl KvStore {
    /// Open (or create) the store at `path`, replaying its entries.
    ///
    /// # Errors
    /// [`KvError::Corrupt`] for damage before the end (unless `repair`);
    /// [`KvError::Locked`] if the store is open elsewhere;
    /// [`KvError::Io`] if the file cannot be read or created.
    pub fn open(path: impl AsRef<Path>, options: KvOptions) -> Result<Self, KvError> {
        let path = path.as_ref().to_path_buf();
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| KvError::Io { path: p, source }
        };
        let lock_path = sibling(&path, "lock");
        let lock = match lock::acquire(&lock_path) {
            Ok(l) => l,
            Err(LockFailure::Held) => return Err(KvError::Locked { path: lock_path }),
            Err(LockFailure::Io(e)) => return Err(io(&lock_path)(e)),
        };
        let tmp = sibling(&path, "compact");
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&tmp)(e)),
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        let bytes = fs::read(&path).map_err(io(&path))?;
        let mut map = BTreeMap::new();
        let replay = replay(&bytes, &mut map);
        if let Some((position, reason)) = replay.stop {
            let torn = !valid_entry_after(&bytes, position);
            if !torn && !options.repair {
                return Err(KvError::Corrupt {
                    path,
                    position: position as u64,
                    reason,
                });
            }
            tracing::warn!(
                path = %path.display(),
                position,
                reason,
                dropped_bytes = bytes.len() - position,
                repair = !torn,
                "truncating store file"
            );
            file.set_len(position as u64).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        let live = map.iter().map(|(k, v)| live_size(k, v)).sum();
        let mut store = Self {
            size: replay.valid_end as u64,
            live,
            path,
            file,
            map,
            options,
            poisoned: false,
            buf: Vec::new(),
            _lock: lock,
        };
        store.maybe_compact()?;
        Ok(store)
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key).map(Vec::as_slice)
    }

    /// All entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.map.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn scan_prefix<'a>(
        &'a self,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.map
            .range(prefix.to_vec()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes in the file (for monitoring compaction).
    pub fn file_len(&self) -> u64 {
        self.size
    }

    /// Set `key` to `value`, durably.
    ///
    /// # Errors
    /// As [`apply`](Self::apply).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.apply(&[KvOp::Put(key, value)])
    }

    /// Remove `key`, durably.
    ///
    /// # Errors
    /// As [`apply`](Self::apply).
    pub fn delete(&mut self, key: &[u8]) -> Result<(), KvError> {
        self.apply(&[KvOp::Delete(key)])
    }

    /// Apply `ops` in order, atomically (after a crash either all or none
    /// are visible) with one write and, under `Fsync`, one `fdatasync`.
    ///
    /// # Errors
    /// [`KvError::TooLarge`] (nothing changed) if a key exceeds 65,535 bytes
    /// or the batch 1 GiB; [`KvError::Io`] if the write or sync failed (the
    /// store is then poisoned); [`KvError::Poisoned`] after that.
    pub fn apply(&mut self, ops: &[KvOp<'_>]) -> Result<(), KvError> {
        if self.poisoned {
            return Err(KvError::Poisoned);
        }
        if ops.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        encode_entry(&mut self.buf, ops)?;
        if let Err(e) = self.write_buf() {
            self.poisoned = true;
            return Err(e);
        }
        for op in ops {
            match *op {
                KvOp::Put(k, v) => {
                    self.live += live_size(k, v);
                    if let Some(old) = self.map.insert(k.to_vec(), v.to_vec()) {
                        self.live -= live_size(k, &old);
                    }
                }
                KvOp::Delete(k) => {
                    if let Some(old) = self.map.remove(k) {
                        self.live -= live_size(k, &old);
                    }
                }
            }
        }
        self.maybe_compact()
    }

    fn write_buf(&mut self) -> Result<(), KvError> {
        let io = |source| KvError::Io {
            path: self.path.clone(),
            source,
        };
        super::segment::write_all_at(&self.file, &self.buf, self.size).map_err(io)?;
        if self.options.durability == Durability::Fsync {
            self.file.sync_data().map_err(io)?;
        }
        self.size += self.buf.len() as u64;
        Ok(())
    }

    fn maybe_compact(&mut self) -> Result<(), KvError> {
        if self.size >= self.options.compact_min_bytes && self.size > 2 * self.live {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrite the file with one entry per live key: write a new file, sync
    /// it, rename it over the old one, sync the directory.
    ///
    /// # Errors
    /// [`KvError::Io`]; the old file stays in use on failure.
    pub fn compact(&mut self) -> Result<(), KvError> {
        let tmp = sibling(&self.path, "compact");
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| KvError::Io { path: p, source }
        };
        let mut out = Vec::new();
        for (k, v) in &self.map {
            encode_entry(&mut out, &[KvOp::Put(k, v)])?;
        }
        let mut f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(&out).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        if let Some(dir) = self.path.parent()
            && cfg!(unix)
        {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
        }
        tracing::debug!(from = self.size, to = out.len(), "compacted store");
        self.file = f;
        self.size = out.len() as u64;
        Ok(())
    }
}

/// The bytes `key` = `value` takes in a compacted file (its own entry).
fn live_size(key: &[u8], value: &[u8]) -> u64 {
    (ENTRY_HEAD + OP_HEAD + key.len() + value.len()) as u64
}

fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(ext);
    path.with_file_name(name)
}

fn encode_entry(out: &mut Vec<u8>, ops: &[KvOp<'_>]) -> Result<(), KvError> {
    let mut size = ENTRY_HEAD;
    for op in ops {
        let (k, v) = match *op {
            KvOp::Put(k, v) => (k, v),
            KvOp::Delete(k) => (k, &[][..]),
        };
        if k.len() > usize::from(u16::MAX) {
            return Err(KvError::TooLarge { size: k.len() });
        }
        size = size
            .saturating_add(OP_HEAD + k.len())
            .saturating_add(v.len());
    }
    if size > MAX_ENTRY {
        return Err(KvError::TooLarge { size });
    }
    let start = out.len();
    // Sizes fit: checked against MAX_ENTRY (< 2^32) and u16::MAX above.
    out.extend_from_slice(&((size - 4) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(ops.len() as u32).to_le_bytes());
    for op in ops {
        let (kind, k, v) = match *op {
            KvOp::Put(k, v) => (PUT, k, v),
            KvOp::Delete(k) => (DELETE, k, &[][..]),
        };
        out.push(kind);
        out.extend_from_slice(&(k.len() as u16).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(v);
    }
    let crc = crc32c::crc32c(out.get(start + 8..).unwrap_or_default());
    if let Some(slot) = out.get_mut(start + 4..start + 8) {
        slot.copy_from_slice(&crc.to_le_bytes());
    }
    Ok(())
}

/// Ops of the valid entry at the start of `b`, with its length.
fn decode_entry(b: &[u8]) -> Result<(usize, Vec<KvOp<'_>>), &'static str> {
    let len = read_u32(b, 0).ok_or("truncated entry")? as usize + 4;
    if !(ENTRY_HEAD..=MAX_ENTRY).contains(&len) {
        return Err("length field out of range");
    }
    let entry = b
        .get(..len)
        .ok_or("entry extends past the end of the file")?;
    if read_u32(entry, 4) != Some(crc32c::crc32c(entry.get(8..).unwrap_or_default())) {
        return Err("checksum mismatch");
    }
    let malformed = "malformed entry";
    let count = read_u32(entry, 8).ok_or(malformed)?;
    let mut ops = Vec::new();
    let mut at = ENTRY_HEAD;
    for _ in 0..count {
        let kind = *entry.get(at).ok_or(malformed)?;
        let k = usize::from(read_u16(entry, at + 1).ok_or(malformed)?);
        let v = read_u32(entry, at + 3).ok_or(malformed)? as usize;
        let key = entry.get(at + OP_HEAD..at + OP_HEAD + k).ok_or(malformed)?;
        let vs = at + OP_HEAD + k;
        let value = entry
            .get(vs..vs.checked_add(v).ok_or(malformed)?)
            .ok_or(malformed)?;
        ops.push(match kind {
            PUT => KvOp::Put(key, value),
            DELETE if v == 0 => KvOp::Delete(key),
            _ => return Err(malformed),
        });
        at = vs + v;
    }
    if at != len {
        return Err(malformed);
    }
    Ok((len, ops))
}

struct Replay {
    valid_end: usize,
    stop: Option<(usize, &'static str)>,
}

fn replay(bytes: &[u8], map: &mut BTreeMap<Vec<u8>, Vec<u8>>) -> Replay {
    let mut at = 0;
    while let Some(rest) = bytes.get(at..).filter(|r| !r.is_empty()) {
        match decode_entry(rest) {
            Ok((len, ops)) => {
                for op in ops {
                    match op {
                        KvOp::Put(k, v) => {
                            map.insert(k.to_vec(), v.to_vec());
                        }
                        KvOp::Delete(k) => {
                            map.remove(k);
                        }
                    }
                }
                at += len;
            }
            Err(reason) => {
                return Replay {
                    valid_end: at,
                    stop: Some((at, reason)),
                };
            }
        }
    }
    Replay {
        valid_end: at,
        stop: None,
    }
}

/// Does a valid entry start anywhere after `position`?
fn valid_entry_after(bytes: &[u8], position: usize) -> bool {
    (position + 1..bytes.len()).any(|p| {
        let rest = bytes.get(p..).unwrap_or_default();
        // cheap filter before the checksum
        read_u32(rest, 0).is_some_and(|l| {
            let l = l as usize + 4;
            (ENTRY_HEAD..=rest.len()).contains(&l)
        }) && decode_entry(rest).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn opts() -> KvOptions {
        KvOptions {
            durability: Durability::OsBuffer,
            compact_min_bytes: 256,
            ..KvOptions::default()
        }
    }

    #[test]
    fn survives_reopen_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offsets.kv");
        {
            let mut kv = KvStore::open(&path, opts()).unwrap();
            for i in 0..200u32 {
                kv.put(b"group/a/0", &i.to_le_bytes()).unwrap();
            }
            kv.apply(&[KvOp::Put(b"group/a/1", b"x"), KvOp::Delete(b"nope")])
                .unwrap();
            assert!(kv.file_len() < 256 * 2, "compacted while writing");
        }
        let kv = KvStore::open(&path, opts()).unwrap();
        assert_eq!(kv.get(b"group/a/0"), Some(&199u32.to_le_bytes()[..]));
        assert_eq!(kv.scan_prefix(b"group/a/").count(), 2);
    }

    #[test]
    fn second_open_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.kv");
        let _kv = KvStore::open(&path, opts()).unwrap();
        assert!(matches!(
            KvStore::open(&path, opts()),
            Err(KvError::Locked { .. })
        ));
    }

    #[test]
    fn torn_tail_truncated_middle_damage_reported_and_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.kv");
        {
            let mut kv = KvStore::open(&path, opts()).unwrap();
            kv.put(b"a", b"1").unwrap();
            kv.put(b"b", b"2").unwrap();
            kv.put(b"c", b"3").unwrap();
        }
        let good = fs::read(&path).unwrap();
        let entry = good.len() / 3;
        // torn tail: cut the last entry short
        fs::write(&path, &good[..good.len() - 2]).unwrap();
        let kv = KvStore::open(&path, opts()).unwrap();
        assert_eq!((kv.get(b"b"), kv.get(b"c")), (Some(&b"2"[..]), None));
        drop(kv);
        // damage in the middle entry
        let mut bad = good.clone();
        bad[entry + 10] ^= 0xff;
        fs::write(&path, &bad).unwrap();
        match KvStore::open(&path, opts()) {
            Err(KvError::Corrupt {
                path: p, position, ..
            }) => {
                assert_eq!((p, position), (path.clone(), entry as u64));
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        let kv = KvStore::open(
            &path,
            KvOptions {
                repair: true,
                ..opts()
            },
        )
        .unwrap();
        assert_eq!((kv.get(b"a"), kv.get(b"b")), (Some(&b"1"[..]), None));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, Vec<u8>),
        Delete(u8),
        Reopen,
        /// Append an entry, then cut the file inside it: it was never acknowledged.
        TornWrite(u8, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..8, vec(any::<u8>(), 0..40)).prop_map(|(k, v)| Op::Put(k, v)),
            1 => (0u8..8).prop_map(Op::Delete),
            1 => Just(Op::Reopen),
            1 => (0u8..8, 1usize..60).prop_map(|(k, c)| Op::TornWrite(k, c)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn matches_btreemap_model(ops in vec(op(), 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("m.kv");
            let mut kv = Some(KvStore::open(&path, opts()).unwrap());
            let mut model = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        kv.as_mut().unwrap().put(&[k], &v).unwrap();
                        model.insert(vec![k], v);
                    }
                    Op::Delete(k) => {
                        kv.as_mut().unwrap().delete(&[k]).unwrap();
                        model.remove(&vec![k]);
                    }
                    Op::Reopen => {
                        drop(kv.take());
                        kv = Some(KvStore::open(&path, opts()).unwrap());
                    }
                    Op::TornWrite(k, cut) => {
                        let mut store = kv.take().unwrap();
                        let before = store.file_len();
                        store.put(&[k], &[0xAB; 50]).unwrap();
                        let after = store.file_len();
                        drop(store);
                        if after > before {
                            let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
                            f.set_len(before + (cut as u64 % (after - before))).unwrap();
                        } else {
                            // the put compacted the file: it is in, and acknowledged
                            model.insert(vec![k], vec![0xAB; 50]);
                        }
                        kv = Some(KvStore::open(&path, opts()).unwrap());
                    }
                }
                let got: BTreeMap<Vec<u8>, Vec<u8>> =
                    kv.as_ref().unwrap().iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
                prop_assert_eq!(&got, &model);
                let store = kv.as_ref().unwrap();
                let live: u64 = store.map.iter().map(|(k, v)| live_size(k, v)).sum();
                prop_assert_eq!(store.live, live, "running live total drifted");
            }
            // The running total is what a compacted file takes.
            let mut store = kv.take().unwrap();
            store.compact().unwrap();
            prop_assert_eq!(store.file_len(), store.live);
        }

        #[test]
        fn replay_never_panics(bytes in vec(any::<u8>(), 0..400)) {
            let mut map = BTreeMap::new();
            let r = replay(&bytes, &mut map);
            prop_assert!(r.valid_end <= bytes.len());
            let _ = valid_entry_after(&bytes, r.valid_end);
        }
    }
}
