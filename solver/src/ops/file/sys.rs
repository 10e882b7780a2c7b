//! Thin wrappers over the metadata system calls the actions need; none follows a
//! symlink in the last component.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

use super::user::Owner;

/// Sets access and modification time of `path` (a link itself, not its target).
pub fn set_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let ts = |(s, n): (i64, i64)| Timespec {
        tv_sec: s,
        tv_nsec: n,
    };
    let times = Timestamps {
        last_access: ts(atime),
        last_modification: ts(mtime),
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)
}

/// Splits unix nanoseconds into seconds and nanoseconds.
pub fn split_nanos(ns: i64) -> (i64, i64) {
    (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000))
}

/// Sets both times to `ns` unix nanoseconds, if given.
pub fn utimes(path: &Path, ns: Option<i64>) -> io::Result<()> {
    match ns {
        Some(ns) => set_times(path, split_nanos(ns), split_nanos(ns)),
        None => Ok(()),
    }
}

/// Copies the access and modification times of `meta` onto `path`.
pub fn copy_times(path: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
    set_times(
        path,
        (meta.atime(), meta.atime_nsec()),
        (meta.mtime(), meta.mtime_nsec()),
    )
}

pub fn lchown(path: &Path, owner: Owner) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(owner.uid), Some(owner.gid))
}

/// Sets permission bits including setuid, setgid and sticky. Not for symlinks.
pub fn chmod(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
}

/// Recreates a device node, FIFO or socket like the one `meta` describes.
pub fn mknod_like(path: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
    let mode = meta.mode();
    rustix::fs::mknodat(
        CWD,
        path,
        FileType::from_raw_mode(mode),
        Mode::from_raw_mode(mode & 0o7777),
        meta.rdev(),
    )
    .map_err(io::Error::from)
}

/// Copies extended attributes. Failures are ignored, as BuildKit logs and ignores them:
/// a destination file system without xattr support must not fail a build.
pub fn copy_xattrs(src: &Path, dst: &Path) {
    let Ok(len) = rustix::fs::llistxattr_query(src) else {
        return;
    };
    if len == 0 {
        return;
    }
    let mut names = vec![0u8; len];
    let Ok(n) = rustix::fs::llistxattr(src, &mut names[..]) else {
        return;
    };
    for name in names[..n.min(len)]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let Ok(name) = std::ffi::CString::new(name) else {
            continue;
        };
        let Ok(vlen) = rustix::fs::lgetxattr_query(src, name.as_c_str()) else {
            continue;
        };
        let mut value = vec![0u8; vlen];
        if let Ok(got) = rustix::fs::lgetxattr(src, name.as_c_str(), &mut value[..]) {
            let _ignored = rustix::fs::lsetxattr(
                dst,
                name.as_c_str(),
                &value[..got.min(vlen)],
                XattrFlags::empty(),
            );
        }
    }
}
