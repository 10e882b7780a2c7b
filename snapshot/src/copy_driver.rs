//! The copy driver (BuildKit's `native`): every snapshot is a full directory tree, mounted
//! with a bind mount. Works on any file system and without overlayfs; `prepare` copies the
//! parent (reflinked on XFS/btrfs, so O(metadata) there, O(bytes) elsewhere); committed
//! snapshots (staged layers, merges) share unchanged files by hard links. Each committed
//! snapshot remembers the snapshot it was made from, so a merge can replay every input's
//! history as changes (double-walk diffs) and keep deletions as entities.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::apply::WhiteoutMode;
use crate::cancel::Cancel;
use crate::diff::{Change, diff_dirs, overlay_upper_changes};
use crate::error::SnapshotError;
use crate::idmap::IdMap;
use crate::merge::{MergeStats, apply_changes_linked};
use crate::meta::Meta;
use crate::mount::Mounts;
use crate::snapshotter::{SnapshotId, SnapshotInfo, SnapshotKind, Snapshotter, Usage};
use crate::staging::StagedLayer;
use crate::store::Store;
use crate::tar_writer::{LayerDescriptor, LayerWriteOptions, write_layer};

#[derive(Debug, Clone)]
pub struct CopySnapshotter {
    store: Store,
}

impl CopySnapshotter {
    pub fn open(root: &Path) -> Result<CopySnapshotter, SnapshotError> {
        Ok(CopySnapshotter {
            store: Store::open(root)?,
        })
    }

    /// The full tree of a snapshot (a view shows its parent's).
    fn tree(&self, id: &SnapshotId) -> Result<PathBuf, SnapshotError> {
        let m = self.store.meta(id)?;
        match (m.kind, &m.parent) {
            (SnapshotKind::View, Some(p)) => Ok(self.store.fs(p)),
            (SnapshotKind::View, None) => Ok(self.store.empty()),
            _ => Ok(self.store.fs(id)),
        }
    }

    fn tree_opt(&self, id: Option<&SnapshotId>) -> Result<PathBuf, SnapshotError> {
        match id {
            Some(id) => self.tree(id),
            None => Ok(self.store.empty()),
        }
    }

    fn check_parent(&self, parent: Option<&SnapshotId>) -> Result<(), SnapshotError> {
        if let Some(p) = parent {
            self.store.committed(p)?;
        }
        Ok(())
    }

    fn meta(kind: SnapshotKind, parent: Option<&SnapshotId>) -> Meta {
        Meta {
            kind,
            parent: parent.cloned(),
            inputs: Vec::new(),
            idmap: None,
            layers: Vec::new(),
        }
    }

    fn copy_parent(&self, parent: Option<&SnapshotId>, dest: &Path) -> Result<(), SnapshotError> {
        if let Some(p) = parent {
            let src = self.store.fs(p);
            crate::fsutil::copy_tree(&src, dest)?;
        }
        Ok(())
    }
}

impl Snapshotter for CopySnapshotter {
    fn name(&self) -> &'static str {
        "native"
    }

    fn root(&self) -> &Path {
        &self.store.root
    }

    fn prepare(
        &self,
        key: &SnapshotId,
        parent: Option<&SnapshotId>,
    ) -> Result<Mounts, SnapshotError> {
        self.store.ensure_absent(key)?;
        self.check_parent(parent)?;
        let staged = self.store.stage()?;
        self.copy_parent(parent, &staged.path())?;
        self.store
            .publish(staged, key, &Self::meta(SnapshotKind::Active, parent))?;
        self.mounts(key)
    }

    fn view(&self, key: &SnapshotId, parent: Option<&SnapshotId>) -> Result<Mounts, SnapshotError> {
        self.store.ensure_absent(key)?;
        self.check_parent(parent)?;
        let staged = self.store.stage()?;
        self.store
            .publish(staged, key, &Self::meta(SnapshotKind::View, parent))?;
        self.mounts(key)
    }

    fn mounts(&self, key: &SnapshotId) -> Result<Mounts, SnapshotError> {
        let m = self.store.meta(key)?;
        Ok(Mounts::Bind {
            source: self.tree(key)?,
            readonly: m.kind != SnapshotKind::Active,
        })
    }

    fn commit(&self, name: &SnapshotId, key: &SnapshotId) -> Result<(), SnapshotError> {
        let m = self.store.meta(key)?;
        if m.kind != SnapshotKind::Active {
            return Err(SnapshotError::WrongKind {
                id: key.to_string(),
                actual: m.kind.as_str(),
                expected: "active",
            });
        }
        self.store.ensure_absent(name)?;
        let (from, to) = (self.store.dir(key), self.store.dir(name));
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &from,
            rustix::fs::CWD,
            &to,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| SnapshotError::Io {
            op: "rename",
            path: from.clone(),
            source: e.into(),
        })?;
        Self::meta(SnapshotKind::Committed, m.parent.as_ref()).write(&to)
    }

    fn remove(&self, key: &SnapshotId) -> Result<(), SnapshotError> {
        self.store.remove(key)
    }

    fn stat(&self, key: &SnapshotId) -> Result<SnapshotInfo, SnapshotError> {
        self.store.info(key)
    }

    fn list(&self) -> Result<Vec<SnapshotId>, SnapshotError> {
        self.store.list()
    }

    fn usage(&self, key: &SnapshotId) -> Result<Usage, SnapshotError> {
        self.store.usage(key)
    }

    fn stage_layer(&self) -> Result<StagedLayer, SnapshotError> {
        self.store.stage()
    }

    /// The staged dir holds an overlay-style layer; the snapshot is a copy of the parent
    /// with those changes applied (files hard-linked out of the parent and the staged dir).
    fn commit_staged(
        &self,
        staged: StagedLayer,
        name: &SnapshotId,
        parent: Option<&SnapshotId>,
    ) -> Result<(), SnapshotError> {
        self.store.ensure_absent(name)?;
        self.check_parent(parent)?;
        let target = self.store.stage()?;
        let mut stats = MergeStats::default();
        if let Some(p) = parent {
            // Both sides are immutable, so the parent's files are shared by hard links;
            // only `prepare` (writable) needs real copies.
            let src = self.store.fs(p);
            let all = diff_dirs(None, &src)?;
            apply_changes_linked(
                &all,
                &src,
                &target.path(),
                WhiteoutMode::Delete,
                &Cancel::never(),
                &mut stats,
            )?;
        }
        let changes = overlay_upper_changes(&staged.path(), None)?;
        apply_changes_linked(
            &changes,
            &staged.path(),
            &target.path(),
            WhiteoutMode::Delete,
            &Cancel::never(),
            &mut stats,
        )?;
        drop(staged);
        self.store
            .publish(target, name, &Self::meta(SnapshotKind::Committed, parent))
    }

    fn merge(&self, key: &SnapshotId, inputs: &[SnapshotId]) -> Result<(), SnapshotError> {
        self.store.ensure_absent(key)?;
        let mut stack = Vec::new();
        for i in inputs {
            stack.extend(self.store.history(i)?);
        }
        let staged = self.store.stage()?;
        let mut stats = MergeStats::default();
        for l in &stack {
            let lower = self.tree_opt(l.base.as_ref())?;
            let upper = self.store.fs(&l.id);
            let changes = diff_dirs(Some(&lower), &upper)?;
            apply_changes_linked(
                &changes,
                &upper,
                &staged.path(),
                WhiteoutMode::Delete,
                &Cancel::never(),
                &mut stats,
            )?;
        }
        let meta = Meta {
            kind: SnapshotKind::Committed,
            parent: None,
            inputs: inputs.to_vec(),
            idmap: None,
            layers: Vec::new(),
        };
        self.store.publish(staged, key, &meta)
    }

    fn diff(
        &self,
        lower: Option<&SnapshotId>,
        upper: &SnapshotId,
    ) -> Result<Vec<Change>, SnapshotError> {
        diff_dirs(Some(&self.tree_opt(lower)?), &self.tree(upper)?)
    }

    fn write_diff(
        &self,
        lower: Option<&SnapshotId>,
        upper: &SnapshotId,
        out: &mut dyn Write,
        opts: &LayerWriteOptions,
    ) -> Result<LayerDescriptor, SnapshotError> {
        let u = self.tree(upper)?;
        let changes = diff_dirs(Some(&self.tree_opt(lower)?), &u)?;
        write_layer(&changes, &u, out, opts)
    }

    fn idmapped_copy(
        &self,
        key: &SnapshotId,
        source: &SnapshotId,
        map: &IdMap,
    ) -> Result<(), SnapshotError> {
        self.store.ensure_absent(key)?;
        self.store.committed(source)?;
        let staged = self.store.stage()?;
        crate::idmap::copy_shifted(&self.store.fs(source), &staged.path(), map)?;
        self.store
            .publish(staged, key, &Self::meta(SnapshotKind::Committed, None))
    }
}
