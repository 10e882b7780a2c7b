//! Changes between two trees, as a layer tar needs them.
//!
//! Two ways to find them: when the upper snapshot is an overlay layer directly on the
//! lower one, its layer dir *is* the change set (cost ∝ changes; overlay whiteouts become
//! deletions, opaque dirs stay opaque). Otherwise both trees are walked side by side in
//! sorted order, comparing type, mode, owner, mtime, size, link target, device and xattrs,
//! and contents only when size and a zero-nanosecond mtime leave it open (containerd's rule).
//! Xattrs are compared in full on directories, and only `security.capability` on files
//! whose size and mtime match (containerd's rule too; an xattr-only change with an
//! unchanged mtime is missed by the double walk, not by the overlay path).

use std::cmp::Ordering;
use std::ffi::OsString;
use std::fs::Metadata;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::SnapshotError;
use crate::fsutil::read_xattrs;
use crate::whiteout::OVERLAY_OPAQUE_XATTR;

/// What happened to a path (relative, no leading `/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    /// The directory hides everything lower layers had below it (`.wh..wh..opq`). Always
    /// follows an `Added`/`Modified` change of the same directory.
    Opaque,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    pub path: PathBuf,
    pub kind: ChangeKind,
}

fn sorted_children(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut v: Vec<OsString> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    v.sort();
    Ok(v)
}

/// The changes recorded in an overlay layer dir `upper`; `lower` (a full view of what is
/// below, if at hand) only decides `Added` vs `Modified`.
pub fn overlay_upper_changes(
    upper: &Path,
    lower: Option<&Path>,
) -> Result<Vec<Change>, SnapshotError> {
    let mut out = Vec::new();
    walk_upper(upper, Path::new(""), lower, &mut out)?;
    Ok(out)
}

fn walk_upper(
    upper: &Path,
    rel: &Path,
    lower: Option<&Path>,
    out: &mut Vec<Change>,
) -> Result<(), SnapshotError> {
    let dir = upper.join(rel);
    for name in sorted_children(&dir).map_err(SnapshotError::io("read dir", &dir))? {
        let r = rel.join(&name);
        let p = upper.join(&r);
        let md = std::fs::symlink_metadata(&p).map_err(SnapshotError::io("stat", &p))?;
        if md.file_type().is_char_device() && md.rdev() == 0 {
            out.push(Change {
                path: r,
                kind: ChangeKind::Deleted,
            });
            continue;
        }
        let exists_below = lower.is_some_and(|l| std::fs::symlink_metadata(l.join(&r)).is_ok());
        let kind = if exists_below {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        out.push(Change {
            path: r.clone(),
            kind,
        });
        if md.is_dir() {
            let mut buf = [0u8; 4];
            if matches!(rustix::fs::lgetxattr(&p, OVERLAY_OPAQUE_XATTR, &mut buf[..]), Ok(1) if buf[0] == b'y')
            {
                out.push(Change {
                    path: r.clone(),
                    kind: ChangeKind::Opaque,
                });
            }
            walk_upper(upper, &r, lower, out)?;
        }
    }
    Ok(())
}

/// Changes turning `lower` (or an empty tree) into `upper`, both full trees, by a sorted
/// double walk.
pub fn diff_dirs(lower: Option<&Path>, upper: &Path) -> Result<Vec<Change>, SnapshotError> {
    let mut out = Vec::new();
    match lower {
        Some(l) => walk_both(l, upper, Path::new(""), &mut out)?,
        None => add_all(upper, Path::new(""), &mut out)?,
    }
    Ok(out)
}

fn add_all(upper: &Path, rel: &Path, out: &mut Vec<Change>) -> Result<(), SnapshotError> {
    let dir = upper.join(rel);
    for name in sorted_children(&dir).map_err(SnapshotError::io("read dir", &dir))? {
        let r = rel.join(&name);
        let p = upper.join(&r);
        let md = std::fs::symlink_metadata(&p).map_err(SnapshotError::io("stat", &p))?;
        out.push(Change {
            path: r.clone(),
            kind: ChangeKind::Added,
        });
        if md.is_dir() {
            add_all(upper, &r, out)?;
        }
    }
    Ok(())
}

fn walk_both(
    lower: &Path,
    upper: &Path,
    rel: &Path,
    out: &mut Vec<Change>,
) -> Result<(), SnapshotError> {
    let (ld, ud) = (lower.join(rel), upper.join(rel));
    let lnames = sorted_children(&ld).map_err(SnapshotError::io("read dir", &ld))?;
    let unames = sorted_children(&ud).map_err(SnapshotError::io("read dir", &ud))?;
    let (mut i, mut j) = (0, 0);
    while i < lnames.len() || j < unames.len() {
        let ord = match (lnames.get(i), unames.get(j)) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match ord {
            Ordering::Less => {
                out.push(Change {
                    path: rel.join(&lnames[i]),
                    kind: ChangeKind::Deleted,
                });
                i += 1;
            }
            Ordering::Greater => {
                let r = rel.join(&unames[j]);
                let p = upper.join(&r);
                let md = std::fs::symlink_metadata(&p).map_err(SnapshotError::io("stat", &p))?;
                out.push(Change {
                    path: r.clone(),
                    kind: ChangeKind::Added,
                });
                if md.is_dir() {
                    add_all(upper, &r, out)?;
                }
                j += 1;
            }
            Ordering::Equal => {
                let r = rel.join(&unames[j]);
                let (lp, up) = (lower.join(&r), upper.join(&r));
                let lm = std::fs::symlink_metadata(&lp).map_err(SnapshotError::io("stat", &lp))?;
                let um = std::fs::symlink_metadata(&up).map_err(SnapshotError::io("stat", &up))?;
                let both_dirs = lm.is_dir() && um.is_dir();
                if !same_entry(&lp, &lm, &up, &um).map_err(SnapshotError::io("compare", &up))? {
                    out.push(Change {
                        path: r.clone(),
                        kind: ChangeKind::Modified,
                    });
                }
                if both_dirs {
                    walk_both(lower, upper, &r, out)?;
                } else if um.is_dir() {
                    add_all(upper, &r, out)?;
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

fn same_entry(lp: &Path, lm: &Metadata, up: &Path, um: &Metadata) -> io::Result<bool> {
    if lm.mode() != um.mode() || lm.uid() != um.uid() || lm.gid() != um.gid() {
        return Ok(false);
    }
    if lm.dev() == um.dev() && lm.ino() == um.ino() {
        return Ok(true);
    }
    let ft = um.file_type();
    if ft.is_dir() {
        // A dir's mtime moves with its children, which are compared on their own.
        return Ok(read_xattrs(lp)? == read_xattrs(up)?);
    }
    if lm.mtime() != um.mtime()
        || lm.mtime_nsec() != um.mtime_nsec()
        || lm.size() != um.size()
        || lm.rdev() != um.rdev()
    {
        return Ok(false);
    }
    if ft.is_symlink() {
        return Ok(std::fs::read_link(lp)? == std::fs::read_link(up)?);
    }
    // Like containerd, only file capabilities are compared for files with equal size and
    // mtime: listing every xattr of every file on both sides would cost more than the walk.
    if capability(lp) != capability(up) {
        return Ok(false);
    }
    if ft.is_file() && um.mtime_nsec() == 0 {
        // Second-resolution mtimes (from tars) cannot tell same-second edits apart.
        return same_content(lp, up);
    }
    Ok(true)
}

fn capability(p: &Path) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64];
    let n = rustix::fs::lgetxattr(p, "security.capability", &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    let mut fa = std::fs::File::open(a)?;
    let mut fb = std::fs::File::open(b)?;
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let r = f.read(&mut buf[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    Ok(n)
}
