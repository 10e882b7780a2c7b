//! How a snapshot is mounted. Overlay mounts go through the new mount API (`fsopen` +
//! `fsconfig("lowerdir+")`, Linux ≥ 6.8), which takes one lower per call, so a stack is
//! never limited by the one-page `mount(2)` option string (containerd's
//! `compactLowerdirOption` problem). Older kernels fall back to `mount(2)` when the options
//! fit in a page. A lower with an id map (a layer of an overlay ID-mapped copy) is passed as
//! the fd of an ID-mapped clone of its dir (see `idmount`); such a stack has no `mount(2)`
//! form.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
    fsconfig_create, fsconfig_set_fd, fsconfig_set_string, fsmount, fsopen, mount, mount_bind,
    mount_remount, move_mount, unmount,
};

use crate::error::SnapshotError;
use crate::idmap::IdMap;

/// The kernel's hard cap on overlay lower layers (`OVL_MAX_STACK`); deeper stacks are
/// flattened by the overlay driver.
pub const OVERLAY_MAX_LOWERS: usize = 500;

/// Keeps every upper dir a self-contained layer whatever the kernel's defaults: no
/// redirects (a renamed dir would point into lowers by path, wrong once the layer is
/// stacked in a merge), no metadata-only copy-ups (data left in a lower), no index.
const LAYER_SAFE_OPTIONS: [(&str, &str); 3] = [
    ("redirect_dir", "off"),
    ("metacopy", "off"),
    ("index", "off"),
];

/// One overlay lower layer: a directory, seen through `idmap` when it has one (every owner
/// shifted, by an ID-mapped mount; nothing on disk changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lower {
    pub dir: PathBuf,
    pub idmap: Option<IdMap>,
}

impl From<PathBuf> for Lower {
    fn from(dir: PathBuf) -> Lower {
        Lower { dir, idmap: None }
    }
}

/// How to mount one snapshot; pure data until [`Mounts::mount_at`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mounts {
    /// A bind mount of a plain directory (copy driver, or an overlay snapshot with no parent).
    Bind { source: PathBuf, readonly: bool },
    /// An overlay. `lowers` are listed top first, as overlay's `lowerdir=` wants them. With
    /// no `upper` the mount is read-only.
    Overlay {
        lowers: Vec<Lower>,
        upper: Option<PathBuf>,
        work: Option<PathBuf>,
    },
}

impl Mounts {
    pub fn readonly(&self) -> bool {
        match self {
            Mounts::Bind { readonly, .. } => *readonly,
            Mounts::Overlay { upper, .. } => upper.is_none(),
        }
    }

    /// Whether a lower is ID-mapped (then only [`Mounts::mount_at`] can mount it).
    pub fn idmapped(&self) -> bool {
        matches!(self, Mounts::Overlay { lowers, .. } if lowers.iter().any(|l| l.idmap.is_some()))
    }

    /// The `mount(2)` shape (`type`, `source`, `options`) for an OCI runtime's `config.json`;
    /// `None` for ID-mapped lowers, which `mount(2)` options cannot express. Long overlay
    /// stacks may exceed what `mount(2)` accepts; in both cases mount with
    /// [`Mounts::mount_at`] and hand the runtime the path instead.
    pub fn oci_mount(&self) -> Option<(&'static str, PathBuf, Vec<String>)> {
        match self {
            Mounts::Bind { source, readonly } => {
                let mut o = vec!["rbind".to_owned()];
                o.push(if *readonly { "ro" } else { "rw" }.to_owned());
                Some(("bind", source.clone(), o))
            }
            Mounts::Overlay { .. } if self.idmapped() => None,
            Mounts::Overlay { .. } => Some((
                "overlay",
                PathBuf::from("overlay"),
                vec![self.overlay_options()],
            )),
        }
    }

    fn overlay_options(&self) -> String {
        let Mounts::Overlay {
            lowers,
            upper,
            work,
        } = self
        else {
            return String::new();
        };
        let lowers: Vec<String> = lowers
            .iter()
            .map(|l| l.dir.to_string_lossy().into_owned())
            .collect();
        let mut s = format!("lowerdir={}", lowers.join(":"));
        for (k, v) in LAYER_SAFE_OPTIONS {
            s.push_str(&format!(",{k}={v}"));
        }
        if let (Some(u), Some(w)) = (upper, work) {
            s.push_str(&format!(
                ",upperdir={},workdir={}",
                u.display(),
                w.display()
            ));
        }
        s
    }

    /// Mounts at `target` (an existing directory). The guard unmounts when dropped.
    pub fn mount_at(&self, target: &Path) -> Result<MountGuard, SnapshotError> {
        match self {
            Mounts::Bind { source, readonly } => {
                let err = |source| SnapshotError::Mount {
                    fstype: "bind",
                    target: target.to_owned(),
                    source,
                };
                mount_bind(source, target).map_err(|e| err(e.into()))?;
                let guard = MountGuard::attached(target);
                if *readonly {
                    mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "")
                        .map_err(|e| err(e.into()))?;
                }
                Ok(guard)
            }
            Mounts::Overlay {
                lowers,
                upper,
                work,
            } => {
                let idmapped = crate::idmount::clone_lowers(lowers)?;
                mount_overlay(lowers, &idmapped, upper.as_deref(), work.as_deref(), target)
                    .or_else(|e| {
                        // Old kernels have no `lowerdir+`; `mount(2)` works when the options fit.
                        let opts = self.overlay_options();
                        if opts.len() < 4096 - 512 && !self.idmapped() {
                            let c = std::ffi::CString::new(opts)
                                .map_err(|_| rustix::io::Errno::INVAL)?;
                            mount(
                                "overlay",
                                target,
                                "overlay",
                                MountFlags::empty(),
                                Some(c.as_c_str()),
                            )
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|e| SnapshotError::Mount {
                        fstype: "overlay",
                        target: target.to_owned(),
                        source: e.into(),
                    })?;
                Ok(MountGuard::attached(target))
            }
        }
    }
}

/// `idmapped[i]`, when set, is the ID-mapped clone to use for `lowers[i]`; the clones must
/// stay open until the overlay is created (it takes its own private copies of its layers).
fn mount_overlay(
    lowers: &[Lower],
    idmapped: &[Option<OwnedFd>],
    upper: Option<&Path>,
    work: Option<&Path>,
    target: &Path,
) -> rustix::io::Result<()> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for (l, clone) in lowers.iter().zip(idmapped) {
        match clone {
            Some(fd) => fsconfig_set_fd(&fs, "lowerdir+", fd)?,
            None => fsconfig_set_string(&fs, "lowerdir+", l.dir.as_path())?,
        }
    }
    for (k, v) in LAYER_SAFE_OPTIONS {
        fsconfig_set_string(&fs, k, v)?;
    }
    if let (Some(u), Some(w)) = (upper, work) {
        fsconfig_set_string(&fs, "upperdir", u)?;
        fsconfig_set_string(&fs, "workdir", w)?;
    }
    fsconfig_create(&fs)?;
    let attrs = if upper.is_none() {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
}

/// How long [`MountGuard::unmount`] waits for a mount that is busy only for a moment.
const MAX_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A live mount. Dropping it unmounts (lazily if the mount is busy); call
/// [`MountGuard::unmount`] to see the error instead.
#[derive(Debug)]
pub struct MountGuard {
    target: PathBuf,
    armed: bool,
}

impl MountGuard {
    /// Takes charge of the mount now at `target`.
    pub(crate) fn attached(target: &Path) -> MountGuard {
        MountGuard {
            target: target.to_owned(),
            armed: true,
        }
    }

    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Unmounts, waiting out a short `EBUSY`: a container started at the same moment
    /// copies every host mount into its new mount namespace, and until its runtime has
    /// pivoted and detached the old root, that copy (a peer under shared propagation) keeps
    /// this mount busy. It is released within milliseconds; waiting up to two seconds turns
    /// that race into a pause instead of a failed step.
    pub fn unmount(mut self) -> Result<(), SnapshotError> {
        self.armed = false;
        let mut delay = std::time::Duration::from_millis(5);
        let mut waited = std::time::Duration::ZERO;
        loop {
            match unmount(&self.target, UnmountFlags::empty()) {
                Ok(()) => return Ok(()),
                Err(e) if e == rustix::io::Errno::BUSY && waited < MAX_BUSY_WAIT => {
                    std::thread::sleep(delay);
                    waited += delay;
                    delay = (delay * 2).min(std::time::Duration::from_millis(200));
                }
                Err(e) => {
                    // Still reported, but nothing stays mounted behind the error.
                    let _ = unmount(&self.target, UnmountFlags::DETACH);
                    return Err(SnapshotError::Unmount {
                        target: self.target.clone(),
                        source: e.into(),
                    });
                }
            }
        }
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if self.armed && unmount(&self.target, UnmountFlags::empty()).is_err() {
            let _ = unmount(&self.target, UnmountFlags::DETACH);
        }
    }
}

/// Mounts `mounts` on a fresh temp dir under `scratch`, runs `f` on the mounted path, and
/// unmounts. Used for diffs and merges that need a full view of an overlay stack.
pub(crate) fn with_mounted<T>(
    mounts: &Mounts,
    scratch: &Path,
    f: impl FnOnce(&Path) -> Result<T, SnapshotError>,
) -> Result<T, SnapshotError> {
    if let Mounts::Bind { source, .. } = mounts {
        return f(source);
    }
    with_mount_point(scratch, |dir| mounts.mount_at(dir), f)
}

/// Runs `mount` on a fresh temp dir under `scratch`, `f` on the mounted dir, then unmounts
/// (and removes the dir) whatever `f` returned.
pub(crate) fn with_mount_point<T>(
    scratch: &Path,
    mount: impl FnOnce(&Path) -> Result<MountGuard, SnapshotError>,
    f: impl FnOnce(&Path) -> Result<T, SnapshotError>,
) -> Result<T, SnapshotError> {
    let dir = tempfile::Builder::new()
        .prefix("mnt-")
        .tempdir_in(scratch)
        .map_err(SnapshotError::io("create mount point", scratch))?;
    let guard = mount(dir.path())?;
    let out = f(dir.path());
    guard.unmount()?;
    out
}
