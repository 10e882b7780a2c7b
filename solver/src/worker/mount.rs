//! Mount points the ops use: private directories under the state root with a ref's
//! snapshot mounted on them, unmounted and removed on every way out.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_cache::snapshot::{MountGuard, Mounts};

use crate::error::OpError;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A directory under `root` with a name no other process or task uses.
pub(crate) fn fresh_dir(root: &Path, what: &str) -> Result<PathBuf, OpError> {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = root.join(format!("{what}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| OpError::failed(format!("creating mount point {}: {e}", dir.display())))?;
    Ok(dir)
}

/// A mounted snapshot (or a plain empty directory for scratch).
#[derive(Debug)]
pub(crate) struct Mounted {
    path: PathBuf,
    guard: Option<MountGuard>,
}

impl Mounted {
    /// Mounts `mounts` on a fresh directory under `root`.
    pub(crate) fn new(root: &Path, what: &str, mounts: &Mounts) -> Result<Mounted, OpError> {
        let path = fresh_dir(root, what)?;
        match mounts.mount_at(&path) {
            Ok(guard) => Ok(Mounted {
                path,
                guard: Some(guard),
            }),
            Err(e) => {
                let _ = std::fs::remove_dir(&path);
                Err(OpError::other(e))
            }
        }
    }

    /// An empty directory standing for a scratch input.
    pub(crate) fn empty(root: &Path, what: &str) -> Result<Mounted, OpError> {
        Ok(Mounted {
            path: fresh_dir(root, what)?,
            guard: None,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts now, reporting failure (a writable snapshot must be unmounted before
    /// its commit).
    pub(crate) fn unmount(mut self) -> Result<(), OpError> {
        if let Some(g) = self.guard.take() {
            g.unmount().map_err(OpError::other)?;
        }
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // The guard unmounts (lazily if it must) when dropped. Only an empty directory is
        // removed: never recurse into a path that might still have a snapshot on it.
        drop(self.guard.take());
        if let Err(e) = std::fs::remove_dir(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "removing mount point");
        }
    }
}
