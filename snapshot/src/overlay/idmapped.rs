//! ID-mapped copies in the overlay driver, a child layer like containers/storage's
//! `CreateFromTemplate`, but with no bytes written at all.
//!
//! The copy is a committed child of its source with no layer of its own: its metadata says
//! "the source's layers, seen through this map" (`idmap` on the snapshot and on each layer
//! entry), and every mount of it, or of anything built on it, passes those layers to overlay
//! as kernel ID-mapped mounts (see `idmount`). Files, directories, symlinks, device nodes and
//! hard links are the source's own inodes, shown with shifted owners; data is never read.
//!
//! Why not the alternatives:
//! - overlay `metacopy=on` (chown every entry through a mount, so the upper gets metadata-only
//!   copies): one inode per entry is still written, the upper's files have no data (so a
//!   diff or export must read through a mount, not the layer dir), every later mount needs
//!   `metacopy=on`, which this driver turns off because a layer's data must not live in
//!   whatever lower happens to sit below it once the layer is stacked elsewhere (a merge);
//! - chowned copies in the child's upper: a full copy, what the copy driver does.
//!
//! Writes into a child of the copy copy up with the shifted owner (overlay reads the owner
//! through the lower's ID-mapped mount), so committed children are plain layers; a new
//! upper dir gets the shifted owner of the root it covers. A layer read on its own (when a
//! stack is flattened past 500 lowers) is read through an ID-mapped mount too.
//!
//! Where the kernel, the file system or the map cannot do ID-mapped mounts (a map the kernel
//! refuses, such as overlapping ranges; no user namespaces; Linux < 5.19), the copy falls
//! back to a full copy with shifted owners as one plain layer, as before.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::SnapshotError;
use crate::idmap::{IdMap, check_mapped, copy_shifted};
use crate::meta::{LayerEntry, Meta};
use crate::mount::{with_mount_point, with_mounted};
use crate::snapshotter::{SnapshotId, SnapshotKind};
use crate::staging::StagedLayer;

use super::{OverlaySnapshotter, layers};

impl OverlaySnapshotter {
    pub(super) fn idmapped_child(
        &self,
        key: &SnapshotId,
        source: &SnapshotId,
        map: &IdMap,
    ) -> Result<(), SnapshotError> {
        self.store.ensure_absent(key)?;
        let src = self.store.committed(source)?;
        // Metadata only, but every owner the source shows must have a mapping: an unmapped
        // one would show as the overflow id instead of failing like the copy does.
        self.with_view(Some(source), |view| check_mapped(view, map))?;
        let meta = Meta {
            kind: SnapshotKind::Committed,
            parent: Some(source.clone()),
            inputs: Vec::new(),
            idmap: Some(map.clone()),
            layers: src
                .layers
                .into_iter()
                .map(|l| l.seen_through(map))
                .collect(),
        };
        let staged = self.store.stage()?;
        // One trial mount: whether this kernel, file system and map allow ID-mapped layers.
        match with_mounted(&self.mounts_for(key, &meta), &self.store.mnt(), |_| Ok(())) {
            Ok(()) => self.store.publish(staged, key, &meta),
            Err(why) => {
                tracing::warn!(
                    error = ?why,
                    %source,
                    "ID-mapped mounts unusable; making a full copy with shifted owners"
                );
                self.full_shifted_copy(staged, key, source, map)
            }
        }
    }

    /// The fallback: one plain layer holding a copy of the source's view, owners shifted.
    fn full_shifted_copy(
        &self,
        staged: StagedLayer,
        key: &SnapshotId,
        source: &SnapshotId,
        map: &IdMap,
    ) -> Result<(), SnapshotError> {
        let dest = staged.path();
        self.with_view(Some(source), |view| copy_shifted(view, &dest, map))?;
        self.store.publish(
            staged,
            key,
            &Meta {
                kind: SnapshotKind::Committed,
                parent: None,
                inputs: Vec::new(),
                idmap: None,
                layers: layers([key.clone()]),
            },
        )
    }

    /// Gives a new upper dir the owner of the root its stack shows (the top layer's, through
    /// its id map), as containerd does: overlay shows the upper's own root, so without this
    /// a writable child of an ID-mapped copy would have a `/` owned by host root, which the
    /// user-namespaced process cannot write to.
    pub(super) fn own_root_like_stack(
        &self,
        upper: &Path,
        stack: &[LayerEntry],
    ) -> Result<(), SnapshotError> {
        let Some(top) = stack.last() else {
            return Ok(());
        };
        let dir = self.store.fs(&top.id);
        let md = std::fs::symlink_metadata(&dir).map_err(SnapshotError::io("stat", &dir))?;
        let (uid, gid) = match &top.idmap {
            Some(map) => crate::idmap::shifted_owner(map, Path::new(""), &md)?,
            None => (md.uid(), md.gid()),
        };
        rustix::fs::chown(
            upper,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(|e| SnapshotError::Io {
            op: "set owner",
            path: upper.to_owned(),
            source: e.into(),
        })
    }

    /// Runs `f` on a layer's own dir (whiteouts and opaque marks as stored), seen through
    /// the layer's id map if it has one.
    pub(super) fn with_layer<T>(
        &self,
        l: &LayerEntry,
        f: impl FnOnce(&Path) -> Result<T, SnapshotError>,
    ) -> Result<T, SnapshotError> {
        let dir = self.store.fs(&l.id);
        match &l.idmap {
            None => f(&dir),
            Some(map) => with_mount_point(
                &self.store.mnt(),
                |target| crate::idmount::mount_idmapped(&dir, map, target),
                f,
            ),
        }
    }
}
