//! Copying a walked build context into an empty snapshot: the local source's one big cost
//! on a context change, so it is done the way the kernel makes cheap.
//!
//! Directories are made first, in walk order. Then the files, grouped by parent directory,
//! are copied on several threads: each group opens its source and target directory once
//! and every file operation is relative to those (no path walk from `/` per syscall), and
//! a file's owner, mode and times are set on its open descriptor. Directory modes and times
//! come last, deepest first, as writing their entries changed them. Owner goes before mode:
//! a chown clears setuid and setgid bits, which the mode then puts back.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use tokio_util::sync::CancellationToken;

use super::local::Entry;
use super::stat_cache::{ContextHashes, CopiedFile};
use crate::error::OpError;

/// Copies `entries` (parents before children) into `dest`, owned by root, with modes and
/// modification times kept, telling `hashes` about every regular file.
pub(super) fn copy_into(
    entries: &[Entry],
    dest: &Path,
    cancel: &CancellationToken,
    hashes: &mut ContextHashes,
) -> Result<(), OpError> {
    let mut dirs = Vec::new();
    let mut groups: Vec<Group<'_>> = Vec::new();
    for e in entries {
        if cancel.is_cancelled() {
            return Err(OpError::Cancelled);
        }
        if e.meta.is_dir() {
            let target = dest.join(&e.rel);
            match std::fs::create_dir(&target) {
                Ok(()) => {}
                Err(x) if x.kind() == std::io::ErrorKind::AlreadyExists => {}
                // An excluded parent (kept only for a `!` exception below it) is not walked.
                Err(x) if x.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(&target).map_err(|x| failed("mkdir", &target, x))?
                }
                Err(x) => return Err(failed("mkdir", &target, x)),
            }
            dirs.push(e);
            continue;
        }
        let parent = Path::new(&e.rel).parent().unwrap_or(Path::new(""));
        match groups.last_mut() {
            Some(g) if g.parent == parent => g.entries.push(e),
            _ => groups.push(Group {
                parent,
                entries: vec![e],
            }),
        }
    }
    for g in &groups {
        let target = dest.join(g.parent);
        if !g.parent.as_os_str().is_empty() && !target.is_dir() {
            std::fs::create_dir_all(&target).map_err(|x| failed("mkdir", &target, x))?;
        }
    }

    let learnt = copy_groups(&groups, dest, cancel, hashes)?;
    for c in learnt {
        hashes.record(c);
    }

    for e in dirs.iter().rev() {
        let target = dest.join(&e.rel);
        std::fs::set_permissions(
            &target,
            std::fs::Permissions::from_mode(e.meta.mode() & 0o7777),
        )
        .map_err(|x| failed("chmod", &target, x))?;
        set_owner_and_time(rustix::fs::CWD, &target, &e.meta)
            .map_err(|x| failed("set owner/times of", &target, x))?;
        // The owner change cleared any setgid bit a directory had; put it back.
        if e.meta.mode() & 0o6000 != 0 {
            std::fs::set_permissions(
                &target,
                std::fs::Permissions::from_mode(e.meta.mode() & 0o7777),
            )
            .map_err(|x| failed("chmod", &target, x))?;
        }
    }
    Ok(())
}

/// The non-directory entries of one parent directory, in walk order.
struct Group<'a> {
    parent: &'a Path,
    entries: Vec<&'a Entry>,
}

/// Copies the groups on several threads; the first error stops the others.
fn copy_groups(
    groups: &[Group<'_>],
    dest: &Path,
    cancel: &CancellationToken,
    hashes: &ContextHashes,
) -> Result<Vec<CopiedFile>, OpError> {
    crate::parallel::try_for_each(groups, |g, learnt| {
        copy_group(g, dest, cancel, hashes, learnt)
    })
}

fn copy_group(
    g: &Group<'_>,
    dest: &Path,
    cancel: &CancellationToken,
    hashes: &ContextHashes,
    learnt: &mut Vec<CopiedFile>,
) -> Result<(), OpError> {
    let Some(first) = g.entries.first() else {
        return Ok(());
    };
    let src_parent = first.path.parent().unwrap_or(Path::new("/"));
    let dst_parent = dest.join(g.parent);
    let open_dir = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|x| failed("open", p, x.into()))
    };
    let (sdir, ddir) = (open_dir(src_parent)?, open_dir(&dst_parent)?);
    for e in &g.entries {
        if cancel.is_cancelled() {
            return Err(OpError::Cancelled);
        }
        let name = e.path.file_name().unwrap_or(OsStr::new(""));
        let ft = e.meta.file_type();
        if ft.is_symlink() {
            let link = rustix::fs::readlinkat(&sdir, name, Vec::new())
                .map_err(|x| failed("readlink", &e.path, x.into()))?;
            let target = dst_parent.join(name);
            rustix::fs::symlinkat(OsStr::from_bytes(link.as_bytes()), &ddir, name)
                .map_err(|x| failed("symlink", &target, x.into()))?;
            set_owner_and_time(&ddir, name, &e.meta)
                .map_err(|x| failed("set owner/times of", &target, x))?;
        } else if ft.is_file() {
            learnt.push(copy_file(&sdir, &ddir, name, e, &dst_parent, hashes)?);
        }
    }
    Ok(())
}

/// Copies one regular file and sets its owner, mode and times on the open descriptor.
fn copy_file(
    sdir: &rustix::fd::OwnedFd,
    ddir: &rustix::fd::OwnedFd,
    name: &OsStr,
    e: &Entry,
    dst_parent: &Path,
    hashes: &ContextHashes,
) -> Result<CopiedFile, OpError> {
    let target = || dst_parent.join(name);
    let src = rustix::fs::openat(
        sdir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|x| failed("open", &e.path, x.into()))?;
    let dst = rustix::fs::openat(
        ddir,
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|x| failed("create", &target(), x.into()))?;
    let (mut src, mut dst) = (File::from(src), File::from(dst));
    crate::ops::file::sys::copy_bytes(&mut src, &mut dst)
        .map_err(|x| failed("copy", &e.path, x))?;
    let meta = &e.meta;
    rustix::fs::fchown(
        &dst,
        Some(rustix::fs::Uid::ROOT),
        Some(rustix::fs::Gid::ROOT),
    )
    .map_err(|x| failed("chown", &target(), x.into()))?;
    rustix::fs::fchmod(&dst, Mode::from_raw_mode(meta.mode() & 0o7777))
        .map_err(|x| failed("chmod", &target(), x.into()))?;
    rustix::fs::futimens(&dst, &times(meta))
        .map_err(|x| failed("set times of", &target(), x.into()))?;
    let now = src.metadata().map_err(|x| failed("stat", &e.path, x))?;
    hashes
        .hash_copied(&e.rel, meta, &now, &dst)
        .map_err(|x| failed("checksum", &target(), x))
}

fn times(meta: &std::fs::Metadata) -> Timestamps {
    let t = Timespec {
        tv_sec: meta.mtime(),
        tv_nsec: meta.mtime_nsec() as _,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Root as owner and the walked modification time, without following a symlink.
fn set_owner_and_time<Fd: rustix::fd::AsFd, P: rustix::path::Arg + Copy>(
    dir: Fd,
    path: P,
    meta: &std::fs::Metadata,
) -> std::io::Result<()> {
    rustix::fs::chownat(
        &dir,
        path,
        Some(rustix::fs::Uid::ROOT),
        Some(rustix::fs::Gid::ROOT),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    rustix::fs::utimensat(&dir, path, &times(meta), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

fn failed(what: &str, p: &Path, e: std::io::Error) -> OpError {
    OpError::failed(format!("{what} {}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    use std::path::Path;

    use cairn_cache::metadata::MetadataDb;

    use super::*;

    fn walk(root: &Path) -> Vec<Entry> {
        walkdir::WalkDir::new(root)
            .min_depth(1)
            .sort_by_file_name()
            .into_iter()
            .map(|e| {
                let e = e.unwrap();
                Entry {
                    rel: e
                        .path()
                        .strip_prefix(root)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .into(),
                    path: e.path().to_path_buf(),
                    meta: e.metadata().unwrap(),
                }
            })
            .collect()
    }

    /// Every kind of entry the context can hold lands with root as owner and the host's
    /// mode (setuid included, which a chown after the chmod would clear), time and bytes,
    /// across many directories so several threads take part; and each file's hash is
    /// known for the snapshot.
    #[test]
    fn a_context_copy_keeps_modes_times_links_and_bytes() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root to chown");
            return;
        }
        let host = tempfile::tempdir().unwrap();
        let h = host.path();
        for d in 0..20 {
            std::fs::create_dir_all(h.join(format!("d{d}/sub"))).unwrap();
            for f in 0..10 {
                std::fs::write(h.join(format!("d{d}/f{f}")), format!("{d}-{f}")).unwrap();
            }
            std::fs::write(h.join(format!("d{d}/sub/deep")), vec![d as u8; 100_000]).unwrap();
        }
        std::fs::create_dir(h.join("empty")).unwrap();
        std::fs::set_permissions(h.join("empty"), std::fs::Permissions::from_mode(0o750)).unwrap();
        std::fs::set_permissions(h.join("d0/f0"), std::fs::Permissions::from_mode(0o4755)).unwrap();
        std::os::unix::fs::symlink("../d1/f1", h.join("d0/link")).unwrap();
        std::os::unix::fs::chown(h.join("d2/f2"), Some(1000), Some(1000)).unwrap();
        let entries = walk(h);

        let state = tempfile::tempdir().unwrap();
        let db = MetadataDb::open(state.path()).unwrap();
        let mut hashes = ContextHashes::load(&db, h, "spec").unwrap();
        let dest = tempfile::tempdir().unwrap();
        copy_into(
            &entries,
            dest.path(),
            &CancellationToken::new(),
            &mut hashes,
        )
        .unwrap();

        let files = entries.iter().filter(|e| e.meta.is_file()).count();
        assert_eq!(hashes.read, files, "every file was hashed once");
        for e in &entries {
            let got = std::fs::symlink_metadata(dest.path().join(&e.rel)).unwrap();
            assert_eq!((got.uid(), got.gid()), (0, 0), "{}", e.rel);
            assert_eq!(got.mode(), e.meta.mode(), "{}", e.rel);
            assert_eq!(
                (got.mtime(), got.mtime_nsec()),
                (e.meta.mtime(), e.meta.mtime_nsec()),
                "{}",
                e.rel
            );
            if e.meta.is_file() {
                assert_eq!(
                    std::fs::read(dest.path().join(&e.rel)).unwrap(),
                    std::fs::read(&e.path).unwrap()
                );
            }
        }
        assert_eq!(
            std::fs::read_link(dest.path().join("d0/link")).unwrap(),
            Path::new("../d1/f1")
        );
    }

    #[test]
    fn a_file_that_vanished_since_the_walk_names_itself() {
        let host = tempfile::tempdir().unwrap();
        std::fs::create_dir(host.path().join("d")).unwrap();
        std::fs::write(host.path().join("d/gone"), "x").unwrap();
        let entries = walk(host.path());
        std::fs::remove_file(host.path().join("d/gone")).unwrap();
        let state = tempfile::tempdir().unwrap();
        let db = MetadataDb::open(state.path()).unwrap();
        let mut hashes = ContextHashes::load(&db, host.path(), "spec").unwrap();
        let dest = tempfile::tempdir().unwrap();
        let err = copy_into(
            &entries,
            dest.path(),
            &CancellationToken::new(),
            &mut hashes,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("d/gone") && err.contains("No such file"),
            "{err}"
        );
    }
}
