//! Thin wrappers over the metadata system calls the actions need; none follows a
//! symlink in the last component.

use std::ffi::{CStr, CString};
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

/// Copies all of `src` into `dst` in the kernel (`copy_file_range`), to the end of the
/// file. Falls back to `io::copy` (a read/write copy where it must) when the file systems
/// cannot, and when the first call answers "end of file": an empty file, or procfs and
/// some FUSE file systems, which report no data to this call for files that have some.
pub(crate) fn copy_bytes(src: &mut std::fs::File, dst: &mut std::fs::File) -> io::Result<()> {
    let mut copied = 0u64;
    loop {
        match rustix::fs::copy_file_range(&*src, None, &*dst, None, 1 << 30) {
            Ok(0) if copied == 0 => {
                io::copy(src, dst)?;
                return Ok(());
            }
            Ok(0) => return Ok(()),
            Ok(n) => copied += n as u64,
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::OPNOTSUPP
                | rustix::io::Errno::INVAL,
            ) if copied == 0 => {
                io::copy(src, dst)?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Copies extended attributes. Failures are ignored, as BuildKit logs and ignores them:
/// a destination file system without xattr support must not fail a build.
pub fn copy_xattrs(src: &Path, dst: &Path) {
    copy_xattrs_between(src, dst)
}

/// [`copy_xattrs`] between open files.
pub fn copy_xattrs_fd(src: &std::fs::File, dst: &std::fs::File) {
    copy_xattrs_between(src, dst)
}

/// Where extended attributes are read and written: a path (the link itself, never its
/// target) or an open file. An empty buffer asks for the size needed.
trait Xattrs {
    fn list(&self, buf: &mut [u8]) -> rustix::io::Result<usize>;
    fn get(&self, name: &CStr, buf: &mut [u8]) -> rustix::io::Result<usize>;
    fn set(&self, name: &CStr, value: &[u8]) -> rustix::io::Result<()>;
}

impl Xattrs for &Path {
    fn list(&self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        rustix::fs::llistxattr(*self, buf)
    }
    fn get(&self, name: &CStr, buf: &mut [u8]) -> rustix::io::Result<usize> {
        rustix::fs::lgetxattr(*self, name, buf)
    }
    fn set(&self, name: &CStr, value: &[u8]) -> rustix::io::Result<()> {
        rustix::fs::lsetxattr(*self, name, value, XattrFlags::empty())
    }
}

impl Xattrs for &std::fs::File {
    fn list(&self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        rustix::fs::flistxattr(*self, buf)
    }
    fn get(&self, name: &CStr, buf: &mut [u8]) -> rustix::io::Result<usize> {
        rustix::fs::fgetxattr(*self, name, buf)
    }
    fn set(&self, name: &CStr, value: &[u8]) -> rustix::io::Result<()> {
        rustix::fs::fsetxattr(*self, name, value, XattrFlags::empty())
    }
}

fn copy_xattrs_between(src: impl Xattrs, dst: impl Xattrs) {
    let Ok(len) = src.list(&mut []) else {
        return;
    };
    if len == 0 {
        return;
    }
    let mut names = vec![0u8; len];
    let Ok(n) = src.list(&mut names[..]) else {
        return;
    };
    for name in names[..n.min(len)]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let Ok(name) = CString::new(name) else {
            continue;
        };
        let Ok(vlen) = src.get(&name, &mut []) else {
            continue;
        };
        let mut value = vec![0u8; vlen];
        if let Ok(got) = src.get(&name, &mut value[..]) {
            let _ignored = dst.set(&name, &value[..got.min(vlen)]);
        }
    }
}
