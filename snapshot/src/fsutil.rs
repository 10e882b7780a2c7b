//! Small file-system helpers shared by the drivers: copying one entry with its metadata
//! (reflink first), copying trees (hard links kept, owners optionally rewritten), reading
//! xattrs, removing trees.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Gid, Mode, Timespec, Timestamps, Uid};

use crate::error::SnapshotError;

/// Removes a path recursively; missing is fine.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Xattrs of `path` (not following symlinks), minus overlayfs's private ones and the host's
/// SELinux label, which are not image content.
pub(crate) fn read_xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut names = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if name.starts_with("trusted.overlay.") || name == "security.selinux" {
            continue;
        }
        let mut val = vec![0u8; 256];
        let len = loop {
            match rustix::fs::lgetxattr(path, name, &mut val[..]) {
                Ok(l) => break l,
                Err(rustix::io::Errno::RANGE) => val.resize(val.len() * 4, 0),
                Err(e) => return Err(e.into()),
            }
        };
        val.truncate(len);
        out.push((name.to_owned(), val));
    }
    out.sort();
    Ok(out)
}

/// Copies one non-directory entry `src` to `dst` (which must not exist) with owner, mode,
/// times and xattrs. Regular files are reflinked when the file system can, else copied.
pub(crate) fn copy_entry(src: &Path, dst: &Path) -> io::Result<()> {
    copy_entry_owned(src, dst, None)
}

/// [`copy_entry`] with the owner replaced by `owner` when given.
fn copy_entry_owned(src: &Path, dst: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    let md = std::fs::symlink_metadata(src)?;
    let ft = FileType::from_raw_mode(md.mode());
    match ft {
        FileType::RegularFile => {
            let from = File::open(src)?;
            let to = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dst)?;
            if rustix::fs::ioctl_ficlone(&to, &from).is_err() {
                let mut from = from;
                let mut to_w = &to;
                io::copy(&mut from, &mut to_w)?;
            }
        }
        FileType::Symlink => {
            let target = std::fs::read_link(src)?;
            std::os::unix::fs::symlink(target, dst)?;
        }
        FileType::Directory => {
            std::fs::create_dir(dst)?;
        }
        FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
            rustix::fs::mknodat(
                CWD,
                dst,
                ft,
                Mode::from_raw_mode(md.mode() & 0o7777),
                md.rdev(),
            )?;
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("cannot copy socket {}", src.display()),
            ));
        }
    }
    copy_metadata(src, dst, &md, owner)
}

/// Applies owner (optionally remapped), mode, xattrs and times of `src` (described by `md`) to `dst`.
pub(crate) fn copy_metadata(
    src: &Path,
    dst: &Path,
    md: &std::fs::Metadata,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    let (uid, gid) = owner.unwrap_or((md.uid(), md.gid()));
    rustix::fs::chownat(
        CWD,
        dst,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    let is_link = md.file_type().is_symlink();
    if !is_link {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
    }
    for (k, v) in read_xattrs(src)? {
        rustix::fs::lsetxattr(dst, k.as_str(), &v, rustix::fs::XattrFlags::empty())?;
    }
    set_times(dst, md)
}

pub(crate) fn set_times(dst: &Path, md: &std::fs::Metadata) -> io::Result<()> {
    let t = Timespec {
        tv_sec: md.mtime(),
        tv_nsec: md.mtime_nsec() as _,
    };
    rustix::fs::utimensat(
        CWD,
        dst,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

/// Copies the contents of `src` into the existing dir `dst` (reflinks where possible),
/// preserving metadata and hard links within the tree.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<(), SnapshotError> {
    copy_tree_owned(src, dst, &|_, md| Ok((md.uid(), md.gid())))
}

/// Chooses a copied entry's `(uid, gid)` from its path relative to the tree and its metadata.
pub(crate) type OwnerFn<'a> =
    dyn Fn(&Path, &std::fs::Metadata) -> Result<(u32, u32), SnapshotError> + 'a;

/// [`copy_tree`] with each entry's owner chosen by `owner` (given the path relative to
/// `src`, `""` for the root, and what the source entry is), e.g. shifted through an id map.
/// Hard links stay hard links: a shared inode is copied once, so one owner serves all names.
pub(crate) fn copy_tree_owned(
    src: &Path,
    dst: &Path,
    owner: &OwnerFn<'_>,
) -> Result<(), SnapshotError> {
    let mut dirs = Vec::new();
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for e in walkdir::WalkDir::new(src).sort_by_file_name() {
        let e = e.map_err(|e| SnapshotError::Io {
            op: "walk",
            path: src.to_owned(),
            source: e.into(),
        })?;
        let rel = e.path().strip_prefix(src).unwrap_or(e.path());
        let d = dst.join(rel);
        let md =
            std::fs::symlink_metadata(e.path()).map_err(SnapshotError::io("stat", e.path()))?;
        let ids = owner(rel, &md)?;
        if md.is_dir() {
            if !rel.as_os_str().is_empty() {
                std::fs::create_dir(&d).map_err(SnapshotError::io("create dir", &d))?;
            }
            dirs.push((e.path().to_owned(), d, md, ids));
            continue;
        }
        if md.nlink() > 1 {
            if let Some(first) = links.get(&(md.dev(), md.ino())) {
                std::fs::hard_link(first, &d).map_err(SnapshotError::io("hard link", &d))?;
                continue;
            }
            links.insert((md.dev(), md.ino()), d.clone());
        }
        copy_entry_owned(e.path(), &d, Some(ids)).map_err(SnapshotError::io("copy", &d))?;
    }
    // Directory metadata last: creating children would bump the mtime again.
    for (s, d, md, ids) in dirs.iter().rev() {
        copy_metadata(s, d, md, Some(*ids)).map_err(SnapshotError::io("set dir metadata", d))?;
    }
    Ok(())
}
