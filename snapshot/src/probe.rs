//! Choosing the driver: one place, by trying what the host can do.
//!
//! `auto` tries a real overlay mount (with a whiteout and an opaque dir, the features layers
//! need) inside the state root, because "overlay is in /proc/filesystems" is not the same as
//! "overlay works on this file system as this user". The reason for the choice is kept so
//! the CLI can say which backend it picked and why (BuildKit's silent fallback to `native`
//! is a known complaint).

use std::io::Write;
use std::path::Path;

use crate::copy_driver::CopySnapshotter;
use crate::diff::Change;
use crate::error::SnapshotError;
use crate::idmap::IdMap;
use crate::mount::Mounts;
use crate::overlay::OverlaySnapshotter;
use crate::snapshotter::{SnapshotId, SnapshotInfo, Snapshotter, Usage};
use crate::staging::StagedLayer;
use crate::tar_writer::{LayerDescriptor, LayerWriteOptions};

/// What the configuration asks for (`snapshotter = "auto" | "overlayfs" | "native"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriverChoice {
    #[default]
    Auto,
    Overlay,
    Copy,
}

impl std::str::FromStr for DriverChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(DriverChoice::Auto),
            "overlay" | "overlayfs" => Ok(DriverChoice::Overlay),
            "copy" | "native" => Ok(DriverChoice::Copy),
            s => Err(format!(
                "unknown snapshotter {s:?} (expected auto, overlayfs or native)"
            )),
        }
    }
}

/// The driver in use; dispatch by `match`, no boxing.
#[derive(Debug, Clone)]
pub enum AnySnapshotter {
    Overlay(OverlaySnapshotter),
    Copy(CopySnapshotter),
}

/// Opens the snapshotter at `root` as `choice` says. For `Auto` the second value explains
/// the pick (e.g. why overlay was not usable).
pub fn probe(root: &Path, choice: DriverChoice) -> Result<(AnySnapshotter, String), SnapshotError> {
    std::fs::create_dir_all(root).map_err(SnapshotError::io("create state root", root))?;
    match choice {
        DriverChoice::Overlay => Ok((
            AnySnapshotter::Overlay(OverlaySnapshotter::open(root)?),
            "overlayfs (configured)".into(),
        )),
        DriverChoice::Copy => Ok((
            AnySnapshotter::Copy(CopySnapshotter::open(root)?),
            "native (configured)".into(),
        )),
        DriverChoice::Auto => match overlay_works(root) {
            Ok(()) => Ok((
                AnySnapshotter::Overlay(OverlaySnapshotter::open(root)?),
                "overlayfs (test mount succeeded)".into(),
            )),
            Err(why) => {
                tracing::warn!(%why, "overlayfs unusable, falling back to the copy snapshotter");
                Ok((
                    AnySnapshotter::Copy(CopySnapshotter::open(root)?),
                    format!("native (overlayfs unusable: {why})"),
                ))
            }
        },
    }
}

/// Mounts a two-layer overlay with a whiteout and an opaque dir under `root` and checks
/// what it shows.
pub fn overlay_works(root: &Path) -> Result<(), String> {
    let t = tempfile::Builder::new()
        .prefix("probe-")
        .tempdir_in(root)
        .map_err(|e| format!("temp dir: {e}"))?;
    let p = t.path();
    let step = |what: &str, r: std::io::Result<()>| r.map_err(|e| format!("{what}: {e}"));
    for d in ["l1", "l2", "u", "w", "m", "l1/d", "l2/d"] {
        step("mkdir", std::fs::create_dir(p.join(d)))?;
    }
    step("write", std::fs::write(p.join("l1/gone"), b"x"))?;
    step("write", std::fs::write(p.join("l1/d/hidden"), b"x"))?;
    let l2 = rustix::fs::open(
        p.join("l2"),
        rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| format!("open: {e}"))?;
    step(
        "whiteout",
        crate::whiteout::make_overlay_whiteout(&l2, std::ffi::OsStr::new("gone"))
            .map_err(Into::into),
    )?;
    step(
        "opaque xattr",
        rustix::fs::lsetxattr(
            p.join("l2/d"),
            crate::whiteout::OVERLAY_OPAQUE_XATTR,
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(Into::into),
    )?;
    let m = Mounts::Overlay {
        lowers: vec![p.join("l2").into(), p.join("l1").into()],
        upper: Some(p.join("u")),
        work: Some(p.join("w")),
    };
    let guard = m.mount_at(&p.join("m")).map_err(|e| {
        format!(
            "{e}: {}",
            std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default()
        )
    })?;
    let ok = !p.join("m/gone").exists() && !p.join("m/d/hidden").exists() && p.join("m/d").is_dir();
    let written = std::fs::write(p.join("m/new"), b"y").is_ok();
    guard.unmount().map_err(|e| e.to_string())?;
    if !ok {
        return Err("whiteouts or opaque dirs are not honoured".into());
    }
    if !written {
        return Err("the overlay is not writable".into());
    }
    Ok(())
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnySnapshotter::Overlay($s) => $e,
            AnySnapshotter::Copy($s) => $e,
        }
    };
}

impl Snapshotter for AnySnapshotter {
    fn name(&self) -> &'static str {
        dispatch!(self, s => s.name())
    }
    fn root(&self) -> &Path {
        dispatch!(self, s => s.root())
    }
    fn prepare(
        &self,
        key: &SnapshotId,
        parent: Option<&SnapshotId>,
    ) -> Result<Mounts, SnapshotError> {
        dispatch!(self, s => s.prepare(key, parent))
    }
    fn view(&self, key: &SnapshotId, parent: Option<&SnapshotId>) -> Result<Mounts, SnapshotError> {
        dispatch!(self, s => s.view(key, parent))
    }
    fn mounts(&self, key: &SnapshotId) -> Result<Mounts, SnapshotError> {
        dispatch!(self, s => s.mounts(key))
    }
    fn commit(&self, name: &SnapshotId, key: &SnapshotId) -> Result<(), SnapshotError> {
        dispatch!(self, s => s.commit(name, key))
    }
    fn remove(&self, key: &SnapshotId) -> Result<(), SnapshotError> {
        dispatch!(self, s => s.remove(key))
    }
    fn stat(&self, key: &SnapshotId) -> Result<SnapshotInfo, SnapshotError> {
        dispatch!(self, s => s.stat(key))
    }
    fn list(&self) -> Result<Vec<SnapshotId>, SnapshotError> {
        dispatch!(self, s => s.list())
    }
    fn usage(&self, key: &SnapshotId) -> Result<Usage, SnapshotError> {
        dispatch!(self, s => s.usage(key))
    }
    fn stage_layer(&self) -> Result<StagedLayer, SnapshotError> {
        dispatch!(self, s => s.stage_layer())
    }
    fn commit_staged(
        &self,
        staged: StagedLayer,
        name: &SnapshotId,
        parent: Option<&SnapshotId>,
    ) -> Result<(), SnapshotError> {
        dispatch!(self, s => s.commit_staged(staged, name, parent))
    }
    fn merge(&self, key: &SnapshotId, inputs: &[SnapshotId]) -> Result<(), SnapshotError> {
        dispatch!(self, s => s.merge(key, inputs))
    }
    fn diff(
        &self,
        lower: Option<&SnapshotId>,
        upper: &SnapshotId,
    ) -> Result<Vec<Change>, SnapshotError> {
        dispatch!(self, s => s.diff(lower, upper))
    }
    fn write_diff(
        &self,
        lower: Option<&SnapshotId>,
        upper: &SnapshotId,
        out: &mut dyn Write,
        opts: &LayerWriteOptions,
    ) -> Result<LayerDescriptor, SnapshotError> {
        dispatch!(self, s => s.write_diff(lower, upper, out, opts))
    }
    fn idmapped_copy(
        &self,
        key: &SnapshotId,
        source: &SnapshotId,
        map: &IdMap,
    ) -> Result<(), SnapshotError> {
        dispatch!(self, s => s.idmapped_copy(key, source, map))
    }
}
