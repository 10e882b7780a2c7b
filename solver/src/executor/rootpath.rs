//! File operations inside a container's rootfs that can never leave it.
//!
//! The rootfs comes from an image, so any path in it may be a symlink to `/` or to
//! `../../..`. Every lookup goes through `openat2(RESOLVE_IN_ROOT)`, which makes the
//! kernel treat the rootfs as `/` while resolving, the same guarantee BuildKit gets from
//! `fs.RootPath` but without a time-of-check race.

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Timestamps};

/// An open handle on a rootfs directory.
pub(crate) struct Root {
    fd: OwnedFd,
}

/// Splits an absolute or relative in-root path into its components, dropping `.` and
/// empty parts; `..` stays and is clamped at the root by the kernel.
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

fn lookup_flags() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

impl Root {
    pub(crate) fn open(rootfs: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(
            rootfs,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { fd })
    }

    fn open_in(&self, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        let rel = if components(rel).next().is_none() {
            ".".to_owned()
        } else {
            components(rel).collect::<Vec<_>>().join("/")
        };
        Ok(rustix::fs::openat2(
            &self.fd,
            rel.as_str(),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            lookup_flags(),
        )?)
    }

    /// Reads a regular file of at most `limit` bytes; `Ok(None)` when it does not exist.
    pub(crate) fn read_file(&self, rel: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
        let fd = match self.open_in(rel, OFlags::RDONLY) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let file = std::fs::File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a regular file",
            ));
        }
        let mut buf = Vec::new();
        file.take(limit + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than {limit} bytes"),
            ));
        }
        Ok(Some(buf))
    }

    /// Whether `rel` exists (following symlinks inside the root).
    pub(crate) fn exists(&self, rel: &str) -> io::Result<bool> {
        match self.open_in(rel, OFlags::PATH) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates `rel` and any missing parents as directories (mode 0755) owned by
    /// `uid:gid`; existing components are left as they are.
    pub(crate) fn mkdir_all(&self, rel: &str, uid: u32, gid: u32) -> io::Result<()> {
        let mut prefix: Vec<&str> = Vec::new();
        for comp in components(rel) {
            let parent = prefix.join("/");
            prefix.push(comp);
            if self.exists(&prefix.join("/"))? {
                continue;
            }
            let pfd = self.open_in(&parent, OFlags::PATH | OFlags::DIRECTORY)?;
            match rustix::fs::mkdirat(&pfd, comp, Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
            rustix::fs::chownat(
                &pfd,
                comp,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        Ok(())
    }

    /// The components of `rel` that do not exist yet, outermost first, each as a full
    /// in-root path; empty when `rel` exists.
    pub(crate) fn missing(&self, rel: &str) -> io::Result<Vec<String>> {
        let mut prefix: Vec<&str> = Vec::new();
        let mut out = Vec::new();
        for comp in components(rel) {
            prefix.push(comp);
            let p = prefix.join("/");
            if !out.is_empty() || !self.exists(&p)? {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// The access and modification times of the directory holding `rel`.
    pub(crate) fn parent_times(&self, rel: &str) -> io::Result<Timestamps> {
        let (parent, _) = split_parent(rel);
        let st = rustix::fs::statat(
            &self.open_in(parent, OFlags::PATH)?,
            "",
            AtFlags::EMPTY_PATH,
        )?;
        Ok(Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: st.st_atime,
                tv_nsec: st.st_atime_nsec as _,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec as _,
            },
        })
    }

    /// Removes `rel` if it is an empty directory or an empty regular file, the shapes a
    /// runtime leaves as mount points; anything else is kept. Returns whether it was removed.
    pub(crate) fn remove_stub(&self, rel: &str) -> io::Result<bool> {
        let (parent, name) = split_parent(rel);
        if name.is_empty() || name == ".." {
            return Ok(false);
        }
        let pfd = match self.open_in(parent, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let st = match rustix::fs::statat(&pfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
        let res = match kind {
            rustix::fs::FileType::Directory => rustix::fs::unlinkat(&pfd, name, AtFlags::REMOVEDIR),
            rustix::fs::FileType::RegularFile if st.st_size == 0 => {
                rustix::fs::unlinkat(&pfd, name, AtFlags::empty())
            }
            _ => return Ok(false),
        };
        match res {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOTEMPTY | rustix::io::Errno::BUSY) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets the times of the directory holding `rel` back to `times`.
    pub(crate) fn restore_parent_times(&self, rel: &str, times: &Timestamps) -> io::Result<()> {
        let (parent, _) = split_parent(rel);
        let fd = self.open_in(parent, OFlags::PATH)?;
        rustix::fs::utimensat(&fd, "", times, AtFlags::EMPTY_PATH)?;
        Ok(())
    }
}

/// `a/b/c` → (`a/b`, `c`); `c` → (`.`, `c`).
fn split_parent(rel: &str) -> (&str, &str) {
    let rel = rel.trim_end_matches('/');
    match rel.rsplit_once('/') {
        Some((p, n)) if !p.is_empty() => (p, n),
        Some((_, n)) => (".", n),
        None => (".", rel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_cannot_escape_the_root() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(outer.path().join("secret"), b"host").unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        std::os::unix::fs::symlink("/", root.join("abs")).unwrap();
        let r = Root::open(&root).unwrap();
        assert_eq!(r.read_file("up/secret", 100).unwrap(), None);
        assert_eq!(r.read_file("abs/secret", 100).unwrap(), None);
        r.mkdir_all("/up/made/here", 1000, 1000).unwrap();
        let made = root.join("made/here");
        assert!(
            made.is_dir(),
            "mkdir through an escaping symlink stays inside"
        );
        assert!(!outer.path().join("made").exists());
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&made).unwrap().uid(), 1000);
    }

    #[test]
    fn missing_and_stub_removal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        let r = Root::open(dir.path()).unwrap();
        assert_eq!(r.missing("/etc/a/b").unwrap(), vec!["etc/a", "etc/a/b"]);
        assert!(r.missing("/etc").unwrap().is_empty());
        std::fs::create_dir_all(dir.path().join("etc/a/b")).unwrap();
        std::fs::write(dir.path().join("etc/full"), b"x").unwrap();
        assert!(!r.remove_stub("etc/full").unwrap(), "non-empty files stay");
        assert!(!r.remove_stub("etc/a").unwrap(), "non-empty dirs stay");
        assert!(r.remove_stub("etc/a/b").unwrap());
        assert!(r.remove_stub("etc/a").unwrap());
        assert!(!dir.path().join("etc/a").exists());
        assert!(r.read_file("etc/full", 0).is_err(), "limit is enforced");
    }
}
