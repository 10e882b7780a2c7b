//! Staging directories: where every snapshot is built before it is renamed into
//! `snapshots/`, so a crash never leaves a half-written snapshot under a real id.
//!
//! Protocol between processes sharing a root: a staging dir `staging/<random>/` holds a
//! `lock` file that its creator keeps `flock`ed exclusively for as long as it works in it.
//! `sweep` (run by `open`) removes a staging dir only when it can take that lock itself,
//! so a live extraction in another process is never swept. The rename into `snapshots/`
//! is the commit point; the lock file is unlinked just after it.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::SnapshotError;
use crate::meta::fsync_dir;
use crate::snapshotter::SnapshotId;

pub(crate) const LOCK_FILE: &str = "lock";

/// A private directory to build one snapshot in. Apply a layer into [`StagedLayer::path`],
/// then hand it to `Snapshotter::commit_staged`. Dropped without commit, it is deleted.
#[derive(Debug)]
pub struct StagedLayer {
    dir: PathBuf,
    _lock: Option<File>,
}

impl StagedLayer {
    pub(crate) fn new(root: &Path) -> Result<StagedLayer, SnapshotError> {
        let staging = root.join("staging");
        let dir = tempfile::Builder::new()
            .prefix("s-")
            .tempdir_in(&staging)
            .map_err(SnapshotError::io("create staging dir", &staging))?
            .keep();
        let lock_path = dir.join(LOCK_FILE);
        let lock =
            File::create(&lock_path).map_err(SnapshotError::io("create lock", &lock_path))?;
        lock.lock().map_err(SnapshotError::io("lock", &lock_path))?;
        let fs = dir.join("fs");
        std::fs::create_dir(&fs).map_err(SnapshotError::io("create dir", &fs))?;
        Ok(StagedLayer {
            dir,
            _lock: Some(lock),
        })
    }

    /// The directory the layer's files go into (the future `fs/`).
    pub fn path(&self) -> PathBuf {
        self.dir.join("fs")
    }

    /// The staging dir itself (holds `fs/`, and `work/` or `meta` once prepared).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Flushes the staged files, renames the dir to `snapshots/<id>` (never replacing one)
    /// and syncs the parent. After this the snapshot exists.
    pub(crate) fn publish(
        mut self,
        root: &Path,
        id: &SnapshotId,
    ) -> Result<PathBuf, SnapshotError> {
        let f = File::open(&self.dir).map_err(SnapshotError::io("open", &self.dir))?;
        rustix::fs::syncfs(&f).map_err(|e| SnapshotError::Io {
            op: "syncfs",
            path: self.dir.clone(),
            source: e.into(),
        })?;
        let snapshots = root.join("snapshots");
        let target = snapshots.join(id.as_str());
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            &self.dir,
            rustix::fs::CWD,
            &target,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY) => {
                return Err(SnapshotError::Exists(id.to_string()));
            }
            Err(e) => {
                return Err(SnapshotError::Io {
                    op: "rename into place",
                    path: target,
                    source: e.into(),
                });
            }
        }
        fsync_dir(&snapshots)?;
        let _ = std::fs::remove_file(target.join(LOCK_FILE));
        self.dir = PathBuf::new();
        self._lock = None;
        Ok(target)
    }
}

impl Drop for StagedLayer {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            let _ = crate::fsutil::remove_tree(&self.dir);
        }
    }
}

/// Removes staging dirs no live process holds. Returns how many were swept.
pub(crate) fn sweep(root: &Path) -> Result<usize, SnapshotError> {
    let staging = root.join("staging");
    let mut n = 0;
    let rd = std::fs::read_dir(&staging).map_err(SnapshotError::io("read dir", &staging))?;
    for e in rd {
        let e = e.map_err(SnapshotError::io("read dir", &staging))?;
        let dir = e.path();
        let held = match File::open(dir.join(LOCK_FILE)) {
            Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
            // A dir is created a moment before its lock file: spare young ones.
            Err(_) => std::fs::symlink_metadata(&dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age < std::time::Duration::from_secs(60)),
        };
        if !held {
            crate::fsutil::remove_tree(&dir)
                .map_err(SnapshotError::io("remove stale staging dir", &dir))?;
            tracing::info!(dir = %dir.display(), "removed incomplete snapshot left by an interrupted run");
            n += 1;
        }
    }
    Ok(n)
}
