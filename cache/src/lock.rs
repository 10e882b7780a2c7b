//! Every file lock cairn takes goes through this module (`cache/clippy.toml` forbids
//! `File::lock` and friends elsewhere), so the multi-process protocol lives in one place.
//!
//! Several `cairn` processes may share one state root with no daemon. They coordinate
//! through the SQLite database (short transactions, WAL, `busy_timeout`) and through these
//! advisory `flock` locks, which the kernel drops when a process dies, so a crash never
//! leaves a lock held.
//!
//! | lock file | mode | held by | protects |
//! |---|---|---|---|
//! | `<root>/cairn.lock` | shared | every open `CacheManager`, for its lifetime | the root against an exclusive user |
//! | `<root>/cairn.lock` | exclusive | reserved for maintenance that needs the root alone (no caller yet: prune and sweep work beside live processes) | everything |
//! | `<root>/locks/owners/<owner>.lock` | exclusive | the process whose leases and in-progress records carry `<owner>`, for its lifetime | liveness: a lock that can be taken means its owner is dead, so its leases and unfinished records are swept |
//! | `<root>/locks/snapshots/<id>.lock` | exclusive | whoever extracts, publishes or removes snapshot `<id>` | the rename of a snapshot into place together with its row update ("fetch and extract once across processes") |
//! | `<root>/content/ingest/<hex>.lock` | exclusive | the one process fetching blob `<hex>` | the partial file `<hex>.partial`, and "download once across processes" |
//!
//! **Order.** Locks are taken in the order of the table (root, owner, snapshot, ingest) and
//! a holder never waits for a lock earlier in the order. Among snapshot locks, the holder
//! of a layer's lock may wait for its *parent* layer's lock (unlazy waits for the layer
//! below), never for a child's; parent links form no cycles, so neither can the waits.
//!
//! **Waiting.** Blocking waits poll `try_lock` with a short sleep instead of parking a thread
//! in `flock`, so dropping the waiting future cancels the wait.
//!
//! **Removing lock files.** A holder may unlink its lock file before releasing it
//! ([`FileLock::remove_and_release`]). Whoever locks a file therefore checks afterwards that
//! the path still names the inode it locked, and retries if not; otherwise two processes
//! could each hold a lock on a different inode of the same name.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once; excludes `Exclusive`.
    Shared,
    /// One holder; excludes everything else.
    Exclusive,
}

/// A lock file could not be opened or locked.
#[derive(Debug, thiserror::Error)]
#[error("locking {path} ({mode:?})")]
pub struct LockError {
    pub path: PathBuf,
    pub mode: LockMode,
    #[source]
    pub source: io::Error,
}

/// A held advisory lock; dropping it releases the lock (the file stays).
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
    mode: LockMode,
}

/// How long a waiter sleeps between attempts. Short, because the locks guard downloads and
/// renames that other waiters want to see finish promptly.
const POLL: Duration = Duration::from_millis(25);

impl FileLock {
    /// Takes the lock if nobody conflicting holds it; `Ok(None)` if someone does. Creates the
    /// file (and its directory) if missing.
    #[allow(clippy::disallowed_methods)] // the one place locks are taken
    pub fn try_acquire(path: &Path, mode: LockMode) -> Result<Option<FileLock>, LockError> {
        let err = |source| LockError {
            path: path.to_owned(),
            mode,
            source,
        };
        loop {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(err)?;
            let locked = match mode {
                LockMode::Shared => file.try_lock_shared(),
                LockMode::Exclusive => file.try_lock(),
            };
            match locked {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(err(e)),
            }
            // The previous holder may have unlinked the file between our open and lock.
            let held = file.metadata().map_err(err)?;
            match std::fs::metadata(path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(Some(FileLock {
                        file,
                        path: path.to_owned(),
                        mode,
                    }));
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(err(e)),
            }
        }
    }

    /// Waits until the lock is free and takes it. Dropping the future stops waiting.
    pub async fn acquire(path: &Path, mode: LockMode) -> Result<FileLock, LockError> {
        loop {
            if let Some(lock) = FileLock::try_acquire(path, mode)? {
                return Ok(lock);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Blocking form of [`FileLock::acquire`] for code already on a blocking thread.
    pub fn acquire_blocking(path: &Path, mode: LockMode) -> Result<FileLock, LockError> {
        loop {
            if let Some(lock) = FileLock::try_acquire(path, mode)? {
                return Ok(lock);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Locks an already open file (a temp file being written, say) without any inode check:
    /// the caller has the file open and knows nobody unlinks it under them. `Ok(None)` if
    /// someone else holds it.
    #[allow(clippy::disallowed_methods)] // the one place locks are taken
    pub fn try_acquire_open(
        file: File,
        path: &Path,
        mode: LockMode,
    ) -> Result<Option<FileLock>, LockError> {
        let locked = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match locked {
            Ok(()) => Ok(Some(FileLock {
                file,
                path: path.to_owned(),
                mode,
            })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(source)) => Err(LockError {
                path: path.to_owned(),
                mode,
                source,
            }),
        }
    }

    /// The locked file, for holders that also read or write it.
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Unlinks the lock file while still holding it, then releases. Only an exclusive holder
    /// may do this (a shared holder would pull the file from under the others).
    pub fn remove_and_release(self) -> Result<(), LockError> {
        if self.mode == LockMode::Exclusive {
            match std::fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(LockError {
                        path: self.path.clone(),
                        mode: self.mode,
                        source,
                    });
                }
            }
        }
        drop(self.file);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_shared_shares() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/x.lock");
        let a = FileLock::try_acquire(&path, LockMode::Shared)
            .expect("lock")
            .expect("free");
        let b = FileLock::try_acquire(&path, LockMode::Shared)
            .expect("lock")
            .expect("shared twice");
        assert!(
            FileLock::try_acquire(&path, LockMode::Exclusive)
                .expect("lock")
                .is_none()
        );
        drop((a, b));
        let x = FileLock::try_acquire(&path, LockMode::Exclusive)
            .expect("lock")
            .expect("free again");
        assert!(
            FileLock::try_acquire(&path, LockMode::Shared)
                .expect("lock")
                .is_none()
        );
        assert_eq!(x.mode(), LockMode::Exclusive);
    }

    #[test]
    fn removed_lock_file_is_not_shared_by_two_holders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.lock");
        let first = FileLock::try_acquire(&path, LockMode::Exclusive)
            .expect("lock")
            .expect("free");
        // A waiter opens the old inode before the holder unlinks it.
        let stale = File::open(&path).expect("open");
        first.remove_and_release().expect("remove");
        assert!(!path.exists());
        drop(stale);
        let second = FileLock::try_acquire(&path, LockMode::Exclusive)
            .expect("lock")
            .expect("fresh file");
        assert!(path.exists());
        assert!(
            FileLock::try_acquire(&path, LockMode::Exclusive)
                .expect("lock")
                .is_none(),
            "the new file is really locked"
        );
        drop(second);
    }

    #[tokio::test]
    async fn acquire_waits_for_release() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.lock");
        let held = FileLock::try_acquire(&path, LockMode::Exclusive)
            .expect("lock")
            .expect("free");
        let p2 = path.clone();
        let waiter = tokio::spawn(async move { FileLock::acquire(&p2, LockMode::Exclusive).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished());
        drop(held);
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("no timeout")
            .expect("join")
            .expect("locked");
        assert_eq!(got.path(), path);
    }
}
