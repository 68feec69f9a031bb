//! Exclusive ownership of a log directory or store file: an in-process
//! registry plus an advisory file lock (`flock`) against other processes.
//!
//! A file lock belongs to the open file description, which a process
//! spawned by *any* thread shares for a moment between `fork` and `exec`.
//! A lock released just then looks held by a stranger, so a contended
//! `try_lock` is retried for up to about 130 ms before giving up.

use std::collections::HashSet;
use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

static HELD: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// Retries of a contended lock; waits double from 1 ms.
const RETRIES: u32 = 8;

/// Why a lock was not taken.
#[derive(Debug)]
pub(super) enum LockFailure {
    /// Held by this process or another one.
    Held,
    Io(io::Error),
}

/// A held lock; released on drop.
#[derive(Debug)]
pub(super) struct Lock {
    key: PathBuf,
    _file: File,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = held.as_mut() {
            set.remove(&self.key);
        }
    }
}

/// Take the lock file `path` (created if needed; its directory must exist).
pub(super) fn acquire(path: &Path) -> Result<Lock, LockFailure> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let key = fs::canonicalize(parent)
        .map_err(LockFailure::Io)?
        .join(path.file_name().unwrap_or_default());
    {
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        if !held.get_or_insert_with(HashSet::new).insert(key.clone()) {
            return Err(LockFailure::Held);
        }
    }
    let release = |key: &PathBuf| {
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = held.as_mut() {
            set.remove(key);
        }
    };
    let file = match fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => {
            release(&key);
            return Err(LockFailure::Io(e));
        }
    };
    let mut wait = Duration::from_millis(1);
    for attempt in 0..=RETRIES {
        match file.try_lock() {
            Ok(()) => return Ok(Lock { key, _file: file }),
            Err(TryLockError::WouldBlock) if attempt < RETRIES => {
                std::thread::sleep(wait);
                wait *= 2;
            }
            Err(TryLockError::WouldBlock) => break,
            Err(TryLockError::Error(e)) => {
                release(&key);
                return Err(LockFailure::Io(e));
            }
        }
    }
    release(&key);
    Err(LockFailure::Held)
}
