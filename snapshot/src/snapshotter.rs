//! The `Snapshotter` seam: the one trait the cache and the solver use to get file systems.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::diff::Change;
use crate::error::SnapshotError;
use crate::idmap::IdMap;
use crate::mount::Mounts;
use crate::staging::StagedLayer;
use crate::tar_writer::{LayerDescriptor, LayerWriteOptions};

/// A snapshot's name, chosen by the caller (the cache uses its record ids). Validated so it
/// is always a safe single path component.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId(String);

impl SnapshotId {
    /// 1-128 characters of `[A-Za-z0-9._-]`, not starting with `.`.
    pub fn new(s: impl Into<String>) -> Result<SnapshotId, SnapshotError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 128
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(SnapshotId(s))
        } else {
            Err(SnapshotError::BadId(s))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotId({})", self.0)
    }
}

/// The lifecycle state of a snapshot, as in containerd: `Active` (writable, from `prepare`)
/// → `Committed` (immutable); `View` is a read-only active snapshot that cannot be committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    Active,
    View,
    Committed,
}

impl SnapshotKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Active => "active",
            SnapshotKind::View => "view",
            SnapshotKind::Committed => "committed",
        }
    }
}

/// What `stat` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub id: SnapshotId,
    pub kind: SnapshotKind,
    /// The snapshot this one was prepared or staged on; `None` for a base or a merge.
    pub parent: Option<SnapshotId>,
    /// Overlay driver: the layer dirs a mount stacks, lowest first (including this
    /// snapshot's own for committed ones; for a merge, the inputs' layers; at most 500, a
    /// deeper stack is flattened). Copy driver: empty, every snapshot is one full tree.
    pub layers: Vec<SnapshotId>,
}

/// Disk use of the snapshot's own data (not its parents'), hardlinks counted once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub inodes: u64,
}

/// File systems for the cache and the solver.
///
/// **Who calls it.** The cache owns the authoritative records and is the only caller that
/// creates or removes snapshots; the solver gets `Mounts` through cache refs. All methods
/// block (file-system work): call them from `spawn_blocking`, one task per layer.
///
/// **Contract.**
/// 1. Ids are chosen by the caller and unique per root. Creating an existing id fails with
///    `Exists`; naming a missing one fails with `NotFound`. Nothing is half-created: every
///    creating method builds under `staging/` and renames into `snapshots/` as its last
///    step, so after a crash a snapshot either exists complete or not at all.
/// 2. `prepare` gives a writable `Active` snapshot over an optional committed parent;
///    `view` a read-only one. `commit(name, key)` turns an active snapshot into an immutable
///    one named `name` (the active `key` is gone afterwards). The caller must unmount
///    everything it mounted from `key` before `commit` or `remove`.
/// 3. Committed snapshots never change, so they may be mounted, diffed and merged by any
///    number of threads and processes at once. An active snapshot has one writer at a time
///    (the caller's job).
/// 4. `stage_layer` / `commit_staged` let layers of one image be extracted in parallel
///    without any store lock: the stage dir belongs to its `StagedLayer`, and only the
///    final rename is serialised. The parent need not exist until `commit_staged`.
/// 5. `remove` does not check for dependants: overlay snapshots mount their parents' and
///    merge inputs' layer dirs, and copy-driver merges diff against parents, so the cache
///    (which holds the references) removes children and merges before what they use.
/// 6. **Cancellation** leaves the store as it was: a cancelled or crashed stage/merge
///    leaves a locked dir under `staging/`, which `open` sweeps once no process holds its
///    lock.
/// 7. Several processes may share one root: ids are the caller's to keep unique (the cache
///    DB serialises that), staging dirs are private per `flock`, renames are atomic.
pub trait Snapshotter: Send + Sync {
    /// `"overlayfs"` or `"native"` (BuildKit's names, shown by `cairn du`).
    fn name(&self) -> &'static str;

    /// The state directory this snapshotter owns.
    fn root(&self) -> &Path;

    /// Creates a writable snapshot `key` over `parent` (committed) and returns how to mount it.
    fn prepare(
        &self,
        key: &SnapshotId,
        parent: Option<&SnapshotId>,
    ) -> Result<Mounts, SnapshotError>;

    /// Creates a read-only snapshot `key` over `parent`.
    fn view(&self, key: &SnapshotId, parent: Option<&SnapshotId>) -> Result<Mounts, SnapshotError>;

    /// How to mount an existing snapshot: rw for active, ro for views and committed ones.
    fn mounts(&self, key: &SnapshotId) -> Result<Mounts, SnapshotError>;

    /// Makes the active snapshot `key` immutable under the new id `name`.
    fn commit(&self, name: &SnapshotId, key: &SnapshotId) -> Result<(), SnapshotError>;

    /// Deletes a snapshot (metadata first, then files). Missing ids are `NotFound`.
    fn remove(&self, key: &SnapshotId) -> Result<(), SnapshotError>;

    fn stat(&self, key: &SnapshotId) -> Result<SnapshotInfo, SnapshotError>;

    /// All snapshot ids, sorted.
    fn list(&self) -> Result<Vec<SnapshotId>, SnapshotError>;

    /// Bytes and inodes of the snapshot's own data.
    fn usage(&self, key: &SnapshotId) -> Result<Usage, SnapshotError>;

    /// A fresh private directory to apply one layer tar into with
    /// [`crate::ApplyOptions::staged`] (overlay-style whiteouts). No lock is taken.
    fn stage_layer(&self) -> Result<StagedLayer, SnapshotError>;

    /// Publishes a staged layer as committed snapshot `name` on `parent`. The rename into
    /// place is the commit point.
    fn commit_staged(
        &self,
        staged: StagedLayer,
        name: &SnapshotId,
        parent: Option<&SnapshotId>,
    ) -> Result<(), SnapshotError>;

    /// Creates committed snapshot `key` as the merge of `inputs` in order (BuildKit MergeOp:
    /// each input rebased on the previous, deletions in inputs' histories honoured).
    fn merge(&self, key: &SnapshotId, inputs: &[SnapshotId]) -> Result<(), SnapshotError>;

    /// The changes that turn `lower` (or empty) into `upper`, sorted by path.
    fn diff(
        &self,
        lower: Option<&SnapshotId>,
        upper: &SnapshotId,
    ) -> Result<Vec<Change>, SnapshotError>;

    /// Writes the diff `lower`→`upper` as a layer tar (compressed per `opts`) into `out`.
    fn write_diff(
        &self,
        lower: Option<&SnapshotId>,
        upper: &SnapshotId,
        out: &mut dyn Write,
        opts: &LayerWriteOptions,
    ) -> Result<LayerDescriptor, SnapshotError>;

    /// Creates committed snapshot `key` with the contents of `source` and every owner
    /// shifted through `map` (for user-namespaced execs: the process's root, container uid 0,
    /// is a host uid, and must own what the image's root owned).
    ///
    /// Both drivers: every entry (files, dirs, symlinks, device nodes, FIFOs) keeps its type,
    /// mode, times, xattrs and contents; hard links stay hard links; `source` is unchanged;
    /// an owner `map` lacks fails with `Unmapped` naming the entry, and nothing is created.
    /// The result behaves like any committed snapshot: `prepare` on it, `commit`, `diff`,
    /// `write_diff` (the tar carries the shifted owners), `merge`, `remove`, reopen.
    ///
    /// - **Overlay:** a child of `source` (`stat().parent == Some(source)`) with no layer of
    ///   its own: its `layers` are `source`'s, mounted through kernel ID-mapped mounts, so
    ///   no data is copied and no inode written, whatever the size. As for any child,
    ///   `source` must outlive it (rule 5). `Mounts::oci_mount` has no form for it: mount
    ///   with `mount_at`. Where the kernel or file system cannot do ID-mapped mounts, or
    ///   refuses `map` (overlapping ranges), it falls back to the copy driver's result.
    /// - **Copy:** a full copy (reflinked where the file system can) with `parent == None`,
    ///   independent of `source`.
    fn idmapped_copy(
        &self,
        key: &SnapshotId,
        source: &SnapshotId,
        map: &IdMap,
    ) -> Result<(), SnapshotError>;
}

/// Where a snapshot's directories live, shared by both drivers.
pub(crate) fn snapshot_dir(root: &Path, id: &SnapshotId) -> PathBuf {
    root.join("snapshots").join(id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_single_safe_components() {
        for ok in ["a", "sha256-abc", "x.y_z-1"] {
            assert!(SnapshotId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", &"x".repeat(129)] {
            assert!(SnapshotId::new(bad).is_err(), "{bad}");
        }
    }
}
