//! The overlay driver: every committed snapshot is one layer dir; a mount stacks the
//! snapshot's layer list with overlayfs. Prepare and commit are O(1); diffs of a snapshot
//! against its parent read the layer dir; merges are lowerdir stacks (the concatenation of
//! the inputs' layers, a repeated layer kept only at its topmost place, which overlay
//! requires and which gives the same view), flattened by hard links when the stack would
//! pass the kernel's 500 lowers. ID-mapped copies are children with no layer of their own
//! whose stack is the source's, seen through ID-mapped mounts (see `idmapped`).

mod idmapped;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::apply::WhiteoutMode;
use crate::cancel::Cancel;
use crate::diff::{Change, ChangeKind, diff_dirs, overlay_upper_changes};
use crate::error::SnapshotError;
use crate::idmap::IdMap;
use crate::merge::{MergeStats, apply_changes_linked};
use crate::meta::{LayerEntry, Meta};
use crate::mount::{Lower, Mounts, OVERLAY_MAX_LOWERS, with_mounted};
use crate::snapshotter::{SnapshotId, SnapshotInfo, SnapshotKind, Snapshotter, Usage};
use crate::staging::StagedLayer;
use crate::store::Store;
use crate::tar_writer::{LayerDescriptor, LayerWriteOptions, write_layer};
use crate::whiteout::OVERLAY_OPAQUE_XATTR;

/// Snapshots as overlayfs layers. Needs root (or a user namespace with overlay support)
/// and a file system that allows `trusted.*` xattrs and whiteout device nodes.
#[derive(Debug, Clone)]
pub struct OverlaySnapshotter {
    store: Store,
    max_lowers: usize,
}

fn layers(ids: impl IntoIterator<Item = SnapshotId>) -> Vec<LayerEntry> {
    ids.into_iter().map(LayerEntry::plain).collect()
}

/// Keeps each layer only at its topmost position (overlay refuses a dir twice).
fn dedup_keep_top(ls: Vec<LayerEntry>) -> Vec<LayerEntry> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<LayerEntry> = ls
        .into_iter()
        .rev()
        .filter(|l| seen.insert(l.id.clone()))
        .collect();
    out.reverse();
    out
}

impl OverlaySnapshotter {
    /// Opens (creating) the store at `root` and sweeps leftovers of crashed runs.
    pub fn open(root: &Path) -> Result<OverlaySnapshotter, SnapshotError> {
        Ok(OverlaySnapshotter {
            store: Store::open(root)?,
            max_lowers: OVERLAY_MAX_LOWERS,
        })
    }

    /// Lowers the flattening threshold (tests use it to exercise flattening cheaply).
    pub fn with_max_lowers(mut self, n: usize) -> OverlaySnapshotter {
        self.max_lowers = n.clamp(2, OVERLAY_MAX_LOWERS);
        self
    }

    /// Overlay lowers for a stack (given lowest first), top first as overlay wants them.
    fn lowers(&self, ls: &[LayerEntry]) -> Vec<Lower> {
        ls.iter()
            .rev()
            .map(|l| Lower {
                dir: self.store.fs(&l.id),
                idmap: l.idmap.clone(),
            })
            .collect()
    }

    /// A read-only overlay of `lowers`; it needs two lowers, and the empty dir also hides
    /// whiteouts that a bind mount of a single layer would show as device nodes.
    fn read_only(&self, mut lowers: Vec<Lower>) -> Mounts {
        if lowers.len() < 2 {
            lowers.push(self.store.empty().into());
        }
        Mounts::Overlay {
            lowers,
            upper: None,
            work: None,
        }
    }

    fn mounts_for(&self, id: &SnapshotId, m: &Meta) -> Mounts {
        match m.kind {
            SnapshotKind::Active => {
                let dir = self.store.dir(id);
                if m.layers.is_empty() {
                    Mounts::Bind {
                        source: dir.join("fs"),
                        readonly: false,
                    }
                } else {
                    Mounts::Overlay {
                        lowers: self.lowers(&m.layers),
                        upper: Some(dir.join("fs")),
                        work: Some(dir.join("work")),
                    }
                }
            }
            SnapshotKind::View | SnapshotKind::Committed => self.read_only(self.lowers(&m.layers)),
        }
    }

    /// The layer stack a child of `parent` sits on, flattened if one more layer would not fit.
    fn parent_layers(&self, parent: Option<&SnapshotId>) -> Result<Vec<LayerEntry>, SnapshotError> {
        let Some(p) = parent else {
            return Ok(Vec::new());
        };
        let m = self.store.committed(p)?;
        if m.layers.len() < self.max_lowers {
            return Ok(m.layers);
        }
        Ok(layers([self.flatten(p)?]))
    }

    /// A single-layer copy of a stack, built with hard links, kept as hidden snapshot
    /// `<id>.flat` and reused by every later child.
    fn flatten(&self, id: &SnapshotId) -> Result<SnapshotId, SnapshotError> {
        let flat = SnapshotId::new(flat_name(id.as_str()))?;
        if self.store.dir(&flat).exists() {
            return Ok(flat);
        }
        let staged = self.store.stage()?;
        let mut stats = MergeStats::default();
        self.link_layers(
            &dedup_keep_top(self.store.history(id)?),
            &staged.path(),
            &mut stats,
        )?;
        let meta = Meta {
            kind: SnapshotKind::Committed,
            parent: None,
            inputs: Vec::new(),
            idmap: None,
            layers: layers([flat.clone()]),
        };
        match self.store.publish(staged, &flat, &meta) {
            Ok(()) | Err(SnapshotError::Exists(_)) => Ok(flat),
            Err(e) => Err(e),
        }
    }

    /// Hard-links a stack into one layer dir. The result is mounted over nothing, where a
    /// whiteout would show up in `readdir`, so deletions are carried out, not recorded
    /// (merges still see them: they replay histories, not mount stacks). A layer with an id
    /// map is read through an ID-mapped mount of it; `link(2)` cannot cross mounts, so its
    /// files are copied (reflinked where possible) with the shifted owners.
    fn link_layers(
        &self,
        stack: &[LayerEntry],
        dest: &Path,
        stats: &mut MergeStats,
    ) -> Result<(), SnapshotError> {
        for l in stack {
            self.with_layer(l, |src| {
                let changes = overlay_upper_changes(src, None)?;
                apply_changes_linked(
                    &changes,
                    src,
                    dest,
                    WhiteoutMode::Delete,
                    &Cancel::never(),
                    stats,
                )
            })?;
        }
        Ok(())
    }

    /// Rewrites a new layer's deletions against the stack it is committed on, as applying
    /// the tar onto a mount of that stack would have (containerd's and BuildKit's result):
    /// a whiteout stays only where the stack has something to hide (overlayfs lists
    /// whiteouts in a directory no lower layer has), and an opaque dir becomes one whiteout
    /// per child the stack had. Deletions thereby mean the same in later merges under both
    /// drivers: they remove what this snapshot's own history had, not what another merge
    /// input brings.
    fn normalize_layer(&self, layer: &Path, below: &[LayerEntry]) -> Result<(), SnapshotError> {
        let mut whiteouts = Vec::new();
        let mut opaques = Vec::new();
        for c in overlay_upper_changes(layer, None)? {
            match c.kind {
                ChangeKind::Deleted => whiteouts.push(c.path),
                ChangeKind::Opaque => opaques.push(c.path),
                _ => {}
            }
        }
        if whiteouts.is_empty() && opaques.is_empty() {
            return Ok(());
        }
        let fix = |view: &Path| -> Result<(), SnapshotError> {
            for w in &whiteouts {
                if std::fs::symlink_metadata(view.join(w)).is_err() {
                    let p = layer.join(w);
                    std::fs::remove_file(&p).map_err(SnapshotError::io("remove whiteout", &p))?;
                }
            }
            for o in &opaques {
                let (vd, ld) = (view.join(o), layer.join(o));
                hide_below(&vd, &ld)?;
                rustix::fs::lremovexattr(&ld, OVERLAY_OPAQUE_XATTR).map_err(|e| {
                    SnapshotError::Io {
                        op: "clear opaque mark",
                        path: ld.clone(),
                        source: e.into(),
                    }
                })?;
            }
            Ok(())
        };
        if below.is_empty() {
            return fix(&self.store.empty());
        }
        with_mounted(&self.read_only(self.lowers(below)), &self.store.mnt(), fix)
    }

    fn create(
        &self,
        key: &SnapshotId,
        parent: Option<&SnapshotId>,
        kind: SnapshotKind,
    ) -> Result<Mounts, SnapshotError> {
        self.store.ensure_absent(key)?;
        let layers = self.parent_layers(parent)?;
        let staged = self.store.stage()?;
        let work = staged.dir().join("work");
        std::fs::create_dir(&work).map_err(SnapshotError::io("create dir", &work))?;
        if kind == SnapshotKind::Active {
            self.own_root_like_stack(&staged.path(), &layers)?;
        }
        let meta = Meta {
            kind,
            parent: parent.cloned(),
            inputs: Vec::new(),
            idmap: None,
            layers,
        };
        self.store.publish(staged, key, &meta)?;
        Ok(self.mounts_for(key, &meta))
    }

    /// Runs `f` on a full read-only view of `id` (or an empty dir for `None`).
    fn with_view<T>(
        &self,
        id: Option<&SnapshotId>,
        f: impl FnOnce(&Path) -> Result<T, SnapshotError>,
    ) -> Result<T, SnapshotError> {
        let Some(id) = id else {
            return f(&self.store.empty());
        };
        let m = self.store.meta(id)?;
        let mounts = match m.kind {
            SnapshotKind::Active => {
                let mut lowers = vec![Lower::from(self.store.fs(id))];
                lowers.extend(self.lowers(&m.layers));
                self.read_only(lowers)
            }
            _ => self.mounts_for(id, &m),
        };
        with_mounted(&mounts, &self.store.mnt(), f)
    }

    /// The layer dir of `upper` when it is exactly one layer on top of `lower`.
    fn single_layer_over(
        &self,
        lower: Option<&SnapshotId>,
        upper: &SnapshotId,
    ) -> Result<Option<PathBuf>, SnapshotError> {
        let um = self.store.meta(upper)?;
        let lower_layers = match lower {
            Some(l) => self.store.meta(l)?.layers,
            None => Vec::new(),
        };
        let (own, below) = match um.kind {
            SnapshotKind::Active => (Some(self.store.fs(upper)), um.layers.as_slice()),
            _ => match um.layers.split_last() {
                Some((top, below)) if top.id == *upper => (Some(self.store.fs(upper)), below),
                _ => (None, &[][..]),
            },
        };
        Ok(own.filter(|_| below == lower_layers.as_slice()))
    }
}

/// Whiteouts in `layer_dir` for everything `view_dir` has that the layer does not, and the
/// same below directories both have: what an opaque mark on `layer_dir` meant.
fn hide_below(view_dir: &Path, layer_dir: &Path) -> Result<(), SnapshotError> {
    if !std::fs::symlink_metadata(view_dir).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    for e in std::fs::read_dir(view_dir).map_err(SnapshotError::io("read dir", view_dir))? {
        let e = e.map_err(SnapshotError::io("read dir", view_dir))?;
        let lp = layer_dir.join(e.file_name());
        match std::fs::symlink_metadata(&lp) {
            Err(_) => rustix::fs::mknodat(
                rustix::fs::CWD,
                &lp,
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::empty(),
                0,
            )
            .map_err(|err| SnapshotError::Io {
                op: "create whiteout",
                path: lp.clone(),
                source: err.into(),
            })?,
            Ok(m) if m.is_dir() => hide_below(&e.path(), &lp)?,
            Ok(_) => {}
        }
    }
    Ok(())
}

impl Snapshotter for OverlaySnapshotter {
    fn name(&self) -> &'static str {
        "overlayfs"
    }

    fn root(&self) -> &Path {
        &self.store.root
    }

    fn prepare(
        &self,
        key: &SnapshotId,
        parent: Option<&SnapshotId>,
    ) -> Result<Mounts, SnapshotError> {
        self.create(key, parent, SnapshotKind::Active)
    }

    fn view(&self, key: &SnapshotId, parent: Option<&SnapshotId>) -> Result<Mounts, SnapshotError> {
        self.create(key, parent, SnapshotKind::View)
    }

    fn mounts(&self, key: &SnapshotId) -> Result<Mounts, SnapshotError> {
        let m = self.store.meta(key)?;
        Ok(self.mounts_for(key, &m))
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
        self.normalize_layer(&self.store.fs(key), &m.layers)?;
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
        let mut ls = m.layers;
        ls.push(LayerEntry::plain(name.clone()));
        Meta {
            kind: SnapshotKind::Committed,
            parent: m.parent,
            inputs: Vec::new(),
            idmap: None,
            layers: ls,
        }
        .write(&to)?;
        let _ = crate::fsutil::remove_tree(&to.join("work"));
        Ok(())
    }

    fn remove(&self, key: &SnapshotId) -> Result<(), SnapshotError> {
        self.store.remove(key)?;
        if let Ok(flat) = SnapshotId::new(flat_name(key.as_str()))
            && self.store.dir(&flat).exists()
        {
            self.store.remove(&flat)?;
        }
        Ok(())
    }

    fn stat(&self, key: &SnapshotId) -> Result<SnapshotInfo, SnapshotError> {
        self.store.info(key)
    }

    /// Hidden `<id>.flat` layers are left out while `<id>` exists: they belong to it (its
    /// children's mounts use them, `remove(<id>)` removes them), and a caller sweeping
    /// snapshots no record names must not see them as orphans. One whose base is gone is
    /// listed, so such a sweep removes it.
    fn list(&self) -> Result<Vec<SnapshotId>, SnapshotError> {
        let all = self.store.list()?;
        let owned: std::collections::HashSet<String> =
            all.iter().map(|s| flat_name(s.as_str())).collect();
        Ok(all
            .into_iter()
            .filter(|s| !owned.contains(s.as_str()))
            .collect())
    }

    fn usage(&self, key: &SnapshotId) -> Result<Usage, SnapshotError> {
        self.store.usage(key)
    }

    fn stage_layer(&self) -> Result<StagedLayer, SnapshotError> {
        self.store.stage()
    }

    fn commit_staged(
        &self,
        staged: StagedLayer,
        name: &SnapshotId,
        parent: Option<&SnapshotId>,
    ) -> Result<(), SnapshotError> {
        self.store.ensure_absent(name)?;
        let mut ls = self.parent_layers(parent)?;
        self.normalize_layer(&staged.path(), &ls)?;
        ls.push(LayerEntry::plain(name.clone()));
        self.store.publish(
            staged,
            name,
            &Meta {
                kind: SnapshotKind::Committed,
                parent: parent.cloned(),
                inputs: Vec::new(),
                idmap: None,
                layers: ls,
            },
        )
    }

    fn merge(&self, key: &SnapshotId, inputs: &[SnapshotId]) -> Result<(), SnapshotError> {
        self.store.ensure_absent(key)?;
        // The inputs' histories, not their mount stacks: a flattened input still brings
        // the deletions of every layer it was made of.
        let mut history = Vec::new();
        for i in inputs {
            history.extend(self.store.history(i)?);
        }
        let history = dedup_keep_top(history);
        let staged = self.store.stage()?;
        let stack = if history.len() <= self.max_lowers {
            history
        } else {
            let mut stats = MergeStats::default();
            self.link_layers(&history, &staged.path(), &mut stats)?;
            layers([key.clone()])
        };
        let meta = Meta {
            kind: SnapshotKind::Committed,
            parent: None,
            inputs: inputs.to_vec(),
            idmap: None,
            layers: stack,
        };
        self.store.publish(staged, key, &meta)
    }

    fn diff(
        &self,
        lower: Option<&SnapshotId>,
        upper: &SnapshotId,
    ) -> Result<Vec<Change>, SnapshotError> {
        if let Some(dir) = self.single_layer_over(lower, upper)? {
            return overlay_upper_changes(&dir, None);
        }
        self.with_view(lower, |l| {
            self.with_view(Some(upper), |u| diff_dirs(Some(l), u))
        })
    }

    fn write_diff(
        &self,
        lower: Option<&SnapshotId>,
        upper: &SnapshotId,
        out: &mut dyn Write,
        opts: &LayerWriteOptions,
    ) -> Result<LayerDescriptor, SnapshotError> {
        if let Some(dir) = self.single_layer_over(lower, upper)? {
            let changes = overlay_upper_changes(&dir, None)?;
            return write_layer(&changes, &dir, out, opts);
        }
        self.with_view(lower, |l| {
            self.with_view(Some(upper), |u| {
                let changes = diff_dirs(Some(l), u)?;
                write_layer(&changes, u, out, opts)
            })
        })
    }

    fn idmapped_copy(
        &self,
        key: &SnapshotId,
        source: &SnapshotId,
        map: &IdMap,
    ) -> Result<(), SnapshotError> {
        self.idmapped_child(key, source, map)
    }
}

/// The hidden flattened layer of snapshot `id` (ids are at most 128 bytes, so the base is
/// cut to leave room for the suffix).
fn flat_name(id: &str) -> String {
    format!("{}.flat", &id[..id.len().min(120)])
}
