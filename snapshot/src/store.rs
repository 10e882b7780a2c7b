//! The on-disk layout both drivers share:
//!
//! ```text
//! <root>/snapshots/<id>/meta   kind, parent, layer stack (see `meta`)
//! <root>/snapshots/<id>/fs     the snapshot's own files (overlay: its layer; copy: a full tree)
//! <root>/snapshots/<id>/work   overlay workdir of an active snapshot
//! <root>/staging/<random>/     snapshots being built (see `staging`)
//! <root>/empty                 an empty dir, the bottom of single-layer overlay views
//! <root>/mnt/<random>/         temporary mount points for diffs and copies
//! ```

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::SnapshotError;
use crate::meta::{LayerEntry, Meta};
use crate::snapshotter::{SnapshotId, SnapshotInfo, SnapshotKind, Usage, snapshot_dir};
use crate::staging::{StagedLayer, sweep};

#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub root: PathBuf,
}

impl Store {
    /// Creates the layout and sweeps staging dirs left by crashed runs.
    pub fn open(root: &Path) -> Result<Store, SnapshotError> {
        for d in ["snapshots", "staging", "empty", "mnt"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(SnapshotError::io("create dir", &p))?;
        }
        let swept = sweep(root)?;
        if swept > 0 {
            tracing::info!(swept, root = %root.display(), "swept incomplete snapshots");
        }
        Ok(Store {
            root: root.to_owned(),
        })
    }

    pub fn dir(&self, id: &SnapshotId) -> PathBuf {
        snapshot_dir(&self.root, id)
    }

    pub fn fs(&self, id: &SnapshotId) -> PathBuf {
        self.dir(id).join("fs")
    }

    /// Where temporary mount points go (never swept: they may be live mounts).
    pub fn mnt(&self) -> PathBuf {
        self.root.join("mnt")
    }

    pub fn empty(&self) -> PathBuf {
        self.root.join("empty")
    }

    pub fn meta(&self, id: &SnapshotId) -> Result<Meta, SnapshotError> {
        let dir = self.dir(id);
        if !dir.exists() {
            return Err(SnapshotError::NotFound(id.to_string()));
        }
        Meta::read(&dir)
    }

    pub fn committed(&self, id: &SnapshotId) -> Result<Meta, SnapshotError> {
        let m = self.meta(id)?;
        if m.kind != SnapshotKind::Committed {
            return Err(SnapshotError::WrongKind {
                id: id.to_string(),
                actual: m.kind.as_str(),
                expected: "committed",
            });
        }
        Ok(m)
    }

    pub fn ensure_absent(&self, id: &SnapshotId) -> Result<(), SnapshotError> {
        if self.dir(id).exists() {
            Err(SnapshotError::Exists(id.to_string()))
        } else {
            Ok(())
        }
    }

    pub fn stage(&self) -> Result<StagedLayer, SnapshotError> {
        StagedLayer::new(&self.root)
    }

    /// Writes `meta` into the staged dir and renames it into place as `id`.
    pub fn publish(
        &self,
        staged: StagedLayer,
        id: &SnapshotId,
        meta: &Meta,
    ) -> Result<(), SnapshotError> {
        meta.write(staged.dir())?;
        staged.publish(&self.root, id)?;
        Ok(())
    }

    /// Every layer the contents of committed `id` came from, lowest first: the parent
    /// chain, with merges expanded into their inputs' histories and an overlay ID-mapped
    /// copy into its source's history seen through its map (it has no layer of its own).
    /// `base` is the snapshot the layer was made on (what to diff it against). Walked
    /// iteratively along parents, so a 10,000-deep chain costs 10,000 small reads and no
    /// deep recursion.
    pub fn history(&self, id: &SnapshotId) -> Result<Vec<LayerEntry>, SnapshotError> {
        let mut chain = Vec::new();
        let mut cur = id.clone();
        loop {
            let m = self.committed(&cur)?;
            let below = match (&m.idmap, &m.parent) {
                (Some(map), Some(source)) => Some(
                    self.history(source)?
                        .into_iter()
                        .map(|l| l.seen_through(map))
                        .collect(),
                ),
                _ if !m.inputs.is_empty() => {
                    let mut h = Vec::new();
                    for i in &m.inputs {
                        h.extend(self.history(i)?);
                    }
                    Some(h)
                }
                _ => None,
            };
            if let Some(mut h) = below {
                chain.reverse();
                h.extend(chain);
                return Ok(h);
            }
            chain.push(LayerEntry {
                id: cur.clone(),
                base: m.parent.clone(),
                idmap: None,
            });
            match m.parent {
                Some(p) => cur = p,
                None => break,
            }
        }
        chain.reverse();
        Ok(chain)
    }

    pub fn info(&self, id: &SnapshotId) -> Result<SnapshotInfo, SnapshotError> {
        let m = self.meta(id)?;
        Ok(SnapshotInfo {
            id: id.clone(),
            kind: m.kind,
            parent: m.parent,
            layers: m.layers.into_iter().map(|l| l.id).collect(),
        })
    }

    /// Metadata goes first (renamed away, so the id is free at once), files after.
    pub fn remove(&self, id: &SnapshotId) -> Result<(), SnapshotError> {
        let dir = self.dir(id);
        if !dir.exists() {
            return Err(SnapshotError::NotFound(id.to_string()));
        }
        let trash = tempfile::Builder::new()
            .prefix("rm-")
            .tempdir_in(self.root.join("staging"))
            .map_err(SnapshotError::io("create dir", self.root.join("staging")))?
            .keep();
        let to = trash.join("x");
        std::fs::rename(&dir, &to).map_err(SnapshotError::io("rename away", &dir))?;
        // No lock file in it: a crash here leaves it for the next sweep.
        crate::fsutil::remove_tree(&trash).map_err(SnapshotError::io("remove", &trash))
    }

    pub fn list(&self) -> Result<Vec<SnapshotId>, SnapshotError> {
        let d = self.root.join("snapshots");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&d).map_err(SnapshotError::io("read dir", &d))? {
            let e = e.map_err(SnapshotError::io("read dir", &d))?;
            if let Some(id) = e.file_name().to_str().and_then(|s| SnapshotId::new(s).ok()) {
                out.push(id);
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn usage(&self, id: &SnapshotId) -> Result<Usage, SnapshotError> {
        self.meta(id)?;
        let fs = self.fs(id);
        let mut seen = HashSet::new();
        let mut u = Usage::default();
        if !fs.exists() {
            return Ok(u);
        }
        for e in walkdir::WalkDir::new(&fs) {
            let e = e.map_err(|e| SnapshotError::Io {
                op: "walk",
                path: fs.clone(),
                source: e.into(),
            })?;
            let md = e.metadata().map_err(|e| SnapshotError::Io {
                op: "stat",
                path: e.path().map(Path::to_owned).unwrap_or_default(),
                source: e.into(),
            })?;
            if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
                continue;
            }
            u.inodes += 1;
            u.bytes += md.blocks() * 512;
        }
        Ok(u)
    }
}
