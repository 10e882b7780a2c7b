//! Fd-relative path handling that cannot leave a directory tree.
//!
//! Every lookup below a root goes through `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`:
//! the kernel refuses `..` above the root, absolute symlinks and symlinks that lead out,
//! so a tar that first plants `a -> /etc` and then writes `a/passwd` gets an error instead of
//! a write outside the layer. String checks on names (no `..`, leading `/` stripped) come
//! first only to give a clearer error.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, mkdirat, openat2, statat, unlinkat,
};
use rustix::io::Errno;

pub(crate) const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

/// Why a name could not be made relative and clean.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NameError {
    DotDot,
}

/// Splits a tar name into clean components: leading `/` and `.` components are dropped (as
/// containerd and GNU tar do for absolute member names), empty components collapse, and any
/// `..` is refused outright rather than resolved lexically.
pub(crate) fn clean_components(name: &[u8]) -> Result<Vec<&[u8]>, NameError> {
    let mut out = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(NameError::DotDot),
            c => out.push(c),
        }
    }
    Ok(out)
}

pub(crate) fn join_components(comps: &[&[u8]]) -> PathBuf {
    let mut p = PathBuf::new();
    for c in comps {
        p.push(OsStr::from_bytes(c));
    }
    p
}

/// Opens directory `rel` beneath `root` (`.` when `rel` is empty).
pub(crate) fn open_dir_beneath(root: impl AsFd, rel: &Path) -> rustix::io::Result<OwnedFd> {
    let rel: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    openat2(
        root,
        rel,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        BENEATH,
    )
}

/// Opens directory `comps` beneath `root`, creating missing components with mode 0755
/// (tars may omit parent directory entries). Symlinked components are followed only while
/// they stay beneath `root`.
pub(crate) fn mkdir_all_beneath(root: &OwnedFd, comps: &[&[u8]]) -> rustix::io::Result<OwnedFd> {
    let rel = join_components(comps);
    match open_dir_beneath(root, &rel) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(e),
    }
    let mut cur = open_dir_beneath(root, Path::new(""))?;
    let mut sofar = PathBuf::new();
    for c in comps {
        sofar.push(OsStr::from_bytes(c));
        match mkdirat(&cur, OsStr::from_bytes(c), Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e),
        }
        // Re-resolve from the root so a component that is a symlink is checked as a whole.
        cur = open_dir_beneath(root, &sofar)?;
    }
    Ok(cur)
}

/// Removes `name` in `dir`, recursively if it is a directory. Missing is fine.
pub(crate) fn remove_all_at(dir: impl AsFd, name: &OsStr) -> rustix::io::Result<()> {
    let dir = dir.as_fd();
    let st = match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = openat2(
            dir,
            name,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            BENEATH,
        )?;
        for child in list_dir(&sub)? {
            remove_all_at(&sub, &child)?;
        }
        unlinkat(dir, name, AtFlags::REMOVEDIR)
    } else {
        unlinkat(dir, name, AtFlags::empty())
    }
}

/// Names in a directory (without `.` and `..`), unsorted.
pub(crate) fn list_dir(dir: impl AsFd) -> rustix::io::Result<Vec<std::ffi::OsString>> {
    let mut d = Dir::read_from(dir)?;
    let mut out = Vec::new();
    while let Some(e) = d.read() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsStr::from_bytes(n).to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_names_and_refuses_dotdot() {
        assert_eq!(
            clean_components(b"/a//b/./c/").unwrap(),
            vec![&b"a"[..], b"b", b"c"]
        );
        assert_eq!(clean_components(b"./").unwrap(), Vec::<&[u8]>::new());
        assert_eq!(clean_components(b"a/../b"), Err(NameError::DotDot));
        assert_eq!(clean_components(b"../x"), Err(NameError::DotDot));
    }

    #[test]
    fn open_beneath_refuses_escaping_symlinks() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::os::unix::fs::symlink("/etc", t.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("../..", t.path().join("d/up")).unwrap();
        std::os::unix::fs::symlink("d", t.path().join("rel")).unwrap();
        let root =
            rustix::fs::open(t.path(), OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
        assert!(open_dir_beneath(&root, Path::new("abs")).is_err());
        assert!(open_dir_beneath(&root, Path::new("d/up")).is_err());
        assert!(open_dir_beneath(&root, Path::new("rel")).is_ok());
        assert!(mkdir_all_beneath(&root, &[b"abs", b"x"]).is_err());
        assert!(mkdir_all_beneath(&root, &[b"rel", b"x", b"y"]).is_ok());
        assert!(t.path().join("d/x/y").is_dir());
    }
}
