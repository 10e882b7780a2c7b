//! Applying one layer tar to a directory: the hot path of every image pull.
//!
//! One call is one blocking job; run layers of an image on separate threads. The stream is
//! decompressed (kind found by magic bytes), digested (the diff_id) and unpacked in one
//! pass. Every write is fd-relative below the destination (see `safe_path`), so hostile
//! entries are refused with an error naming them and nothing is written outside `dest`.
//!
//! Names: a leading `/` is stripped (containerd and GNU tar treat absolute member names as
//! relative to the root); a `..` component is refused instead of being resolved lexically as
//! containerd does, because no legitimate layer writer emits one. Parent directories may be
//! symlinks only if they stay inside `dest` (relative, like Debian's `lib -> usr/lib`).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cairn_llb::{Digest, Hasher};
use rustix::fs::{
    AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, chownat, fchmod, fchown,
    fsetxattr, futimens, linkat, mkdirat, mknodat, openat, symlinkat, utimensat,
};
use rustix::io::Errno;

use crate::cancel::Cancel;
use crate::compression::{Compression, decompress};
use crate::error::ApplyError;
use crate::safe_path::{
    BENEATH, NameError, clean_components, join_components, list_dir, mkdir_all_beneath,
    open_dir_beneath, remove_all_at,
};
use crate::whiteout::{OVERLAY_OPAQUE_XATTR, TarWhiteout, classify, make_overlay_whiteout};

/// What a tar whiteout becomes on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Overlay whiteouts (char device 0/0, `trusted.overlay.opaque=y`): for a layer dir that
    /// overlayfs will stack, e.g. a staged layer.
    Overlay,
    /// Real deletions: for applying a layer onto a full copy of its parent (copy driver).
    Delete,
}

/// How to apply a layer.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub whiteouts: WhiteoutMode,
    /// Checked between entries; a cancelled apply returns `ApplyError::Cancelled` and leaves
    /// a partial tree that the caller discards (a staged dir is swept).
    pub cancel: Cancel,
    /// Set owners from the tar (needs root). Off, files belong to the caller.
    pub same_owner: bool,
}

impl ApplyOptions {
    /// For a [`crate::StagedLayer`] dir: overlay whiteouts, owners kept.
    pub fn staged() -> ApplyOptions {
        ApplyOptions {
            whiteouts: WhiteoutMode::Overlay,
            cancel: Cancel::never(),
            same_owner: is_root(),
        }
    }

    /// For applying onto a full tree: whiteouts delete.
    pub fn onto_tree() -> ApplyOptions {
        ApplyOptions {
            whiteouts: WhiteoutMode::Delete,
            cancel: Cancel::never(),
            same_owner: is_root(),
        }
    }

    pub fn with_cancel(mut self, cancel: Cancel) -> ApplyOptions {
        self.cancel = cancel;
        self
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// What applying a layer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    /// sha256 of the whole uncompressed stream (including tar padding): the OCI diff_id.
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    pub compression: Compression,
    /// Tar entries processed (whiteouts included).
    pub entries: u64,
}

/// A reader that digests what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Applies the (possibly compressed) layer tar read from `reader` onto `dest`, which must
/// exist. See the module doc for the name and safety rules.
pub fn apply_layer<R: Read>(
    reader: R,
    dest: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats, ApplyError> {
    let root = rustix::fs::open(
        dest,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ApplyError::Dest {
        dest: dest.to_owned(),
        source: e.into(),
    })?;
    let (compression, plain) =
        decompress(BufReader::with_capacity(256 * 1024, reader)).map_err(ApplyError::Read)?;
    let mut archive = tar::Archive::new(HashingReader {
        inner: plain,
        hasher: Hasher::new(),
    });
    let mut state = Applier {
        root,
        dest: dest.to_owned(),
        opts,
        parent_cache: None,
        dirs: BTreeMap::new(),
        written: BTreeSet::new(),
        buf: vec![0u8; 128 * 1024],
    };
    let mut entries_n = 0u64;
    {
        let entries = archive.entries().map_err(ApplyError::Read)?;
        for entry in entries {
            if opts.cancel.is_cancelled() {
                return Err(ApplyError::Cancelled {
                    dest: dest.to_owned(),
                });
            }
            let entry = entry.map_err(ApplyError::Read)?;
            entries_n += 1;
            state.apply_entry(entry)?;
        }
    }
    state.finish_dirs()?;
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(ApplyError::Read)?;
    let size = rest.hasher.len();
    Ok(ApplyStats {
        diff_id: rest.hasher.finalize(),
        uncompressed_size: size,
        compression,
        entries: entries_n,
    })
}

/// Metadata of a directory, applied after all entries so children can still be created and
/// the mtime is not bumped by them.
struct DirMeta {
    mode: u32,
    mtime: Timespec,
}

struct Applier<'o> {
    root: OwnedFd,
    dest: PathBuf,
    opts: &'o ApplyOptions,
    /// The last parent dir opened, with its clean relative path. Dropped whenever an entry
    /// could change what a path resolves to (anything but a regular file or hard link).
    parent_cache: Option<(Vec<u8>, OwnedFd)>,
    dirs: BTreeMap<PathBuf, DirMeta>,
    /// Paths this layer wrote (Delete mode only): an opaque marker must keep them.
    written: BTreeSet<Vec<u8>>,
    buf: Vec<u8>,
}

/// Owner, mode, times and xattrs of one entry, read from the header and PAX records.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: Timespec,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn parse_pax_time(v: &str) -> Option<Timespec> {
    let (s, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = s.parse().ok()?;
    let mut nanos = 0i64;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        let n: i64 = digits.parse().ok()?;
        nanos = n * 10i64.pow(9 - digits.len() as u32);
        if secs < 0 {
            nanos = -nanos;
        }
    }
    Some(Timespec {
        tv_sec: secs,
        tv_nsec: nanos as _,
    })
}

impl Applier<'_> {
    fn apply_entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), ApplyError> {
        let raw_name = entry.path_bytes().into_owned();
        let entry_name = String::from_utf8_lossy(&raw_name).into_owned();
        let comps = match clean_components(&raw_name) {
            Ok(c) => c,
            Err(NameError::DotDot) => return Err(ApplyError::DotDot { entry: entry_name }),
        };
        let Some((base, parent)) = comps.split_last() else {
            // The root itself ("./"): its metadata belongs to the parent snapshot.
            return Ok(());
        };
        let kind = entry.header().entry_type();
        let meta = self.read_meta(&mut entry, &entry_name)?;
        let werr = |e: Errno, entry: &str, dest: &Path| ApplyError::Write {
            entry: entry.to_owned(),
            dest: dest.to_owned(),
            source: e.into(),
        };

        let whiteout = classify(base);
        let cacheable = matches!(whiteout, TarWhiteout::None)
            && matches!(
                kind,
                tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Link
            );
        if !cacheable {
            self.parent_cache = None;
        }
        let parent_fd = self.parent(parent, &entry_name)?;
        let parent_fd = parent_fd.as_fd();
        let name = OsStr::from_bytes(base);

        match whiteout {
            TarWhiteout::Opaque => {
                match self.opts.whiteouts {
                    WhiteoutMode::Overlay => fsetxattr(
                        parent_fd,
                        OVERLAY_OPAQUE_XATTR,
                        b"y",
                        rustix::fs::XattrFlags::empty(),
                    )
                    .map_err(|e| werr(e, &entry_name, &self.dest))?,
                    WhiteoutMode::Delete => {
                        let prefix = join_bytes(parent);
                        self.prune_unwritten(parent_fd, &prefix)
                            .map_err(|e| werr(e, &entry_name, &self.dest))?;
                    }
                }
                return Ok(());
            }
            TarWhiteout::Delete(target) => {
                if matches!(target, b"" | b"." | b"..") || target.contains(&b'/') {
                    return Err(ApplyError::Escapes { entry: entry_name });
                }
                let target = OsStr::from_bytes(target);
                remove_all_at(parent_fd, target).map_err(|e| werr(e, &entry_name, &self.dest))?;
                if self.opts.whiteouts == WhiteoutMode::Overlay {
                    make_overlay_whiteout(parent_fd, target)
                        .map_err(|e| werr(e, &entry_name, &self.dest))?;
                }
                return Ok(());
            }
            TarWhiteout::None => {}
        }

        if self.opts.whiteouts == WhiteoutMode::Delete {
            self.written.insert(join_bytes(&comps));
        }
        let times = Timestamps {
            last_access: meta.mtime,
            last_modification: meta.mtime,
        };
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = create_retrying(parent_fd, name, || {
                    openat(
                        parent_fd,
                        name,
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o600),
                    )
                })
                .map_err(|e| werr(e, &entry_name, &self.dest))?;
                let mut file = File::from(fd);
                loop {
                    let n = entry
                        .read(&mut self.buf)
                        .map_err(|e| ApplyError::BadEntry {
                            entry: entry_name.clone(),
                            source: e,
                        })?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&self.buf[..n])
                        .map_err(|e| ApplyError::Write {
                            entry: entry_name.clone(),
                            dest: self.dest.clone(),
                            source: e,
                        })?;
                }
                self.set_fd_meta(file.as_fd(), &meta)
                    .map_err(|e| werr(e, &entry_name, &self.dest))?;
                futimens(&file, &times).map_err(|e| werr(e, &entry_name, &self.dest))?;
            }
            tar::EntryType::Directory => {
                match mkdirat(parent_fd, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        let st = rustix::fs::statat(parent_fd, name, AtFlags::SYMLINK_NOFOLLOW)
                            .map_err(|e| werr(e, &entry_name, &self.dest))?;
                        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                            remove_all_at(parent_fd, name)
                                .map_err(|e| werr(e, &entry_name, &self.dest))?;
                            mkdirat(parent_fd, name, Mode::from_raw_mode(0o700))
                                .map_err(|e| werr(e, &entry_name, &self.dest))?;
                        }
                    }
                    Err(e) => return Err(werr(e, &entry_name, &self.dest)),
                }
                let dfd = rustix::fs::openat2(
                    parent_fd,
                    name,
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                    Mode::empty(),
                    BENEATH,
                )
                .map_err(|e| werr(e, &entry_name, &self.dest))?;
                // Mode is deferred: a 0555 dir must still accept its children.
                let owner_only = Meta {
                    mode: 0o700,
                    xattrs: meta.xattrs.clone(),
                    ..meta
                };
                self.set_fd_meta(dfd.as_fd(), &owner_only)
                    .map_err(|e| werr(e, &entry_name, &self.dest))?;
                self.dirs.insert(
                    join_components(&comps),
                    DirMeta {
                        mode: meta.mode,
                        mtime: meta.mtime,
                    },
                );
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| ApplyError::BadEntry {
                        entry: entry_name.clone(),
                        source: io::Error::new(
                            io::ErrorKind::InvalidData,
                            "symlink without a target",
                        ),
                    })?
                    .into_owned();
                create_retrying(parent_fd, name, || {
                    symlinkat(OsStr::from_bytes(&target), parent_fd, name)
                })
                .map_err(|e| werr(e, &entry_name, &self.dest))?;
                self.set_at_meta(parent_fd, name, &meta, false)
                    .map_err(|e| werr(e, &entry_name, &self.dest))?;
                utimensat(parent_fd, name, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| werr(e, &entry_name, &self.dest))?;
            }
            tar::EntryType::Link => {
                let target_raw = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let target_name = String::from_utf8_lossy(&target_raw).into_owned();
                let bad = || ApplyError::BadHardlink {
                    entry: entry_name.clone(),
                    target: target_name.clone(),
                };
                let tcomps = clean_components(&target_raw).map_err(|_| bad())?;
                let Some((tbase, tparent)) = tcomps.split_last() else {
                    return Err(bad());
                };
                let tdir =
                    open_dir_beneath(&self.root, &join_components(tparent)).map_err(|_| bad())?;
                let tname = OsStr::from_bytes(tbase);
                let st = rustix::fs::statat(&tdir, tname, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|_| bad())?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    return Err(bad());
                }
                if tparent == parent && tbase == base {
                    return Ok(());
                }
                create_retrying(parent_fd, name, || {
                    linkat(&tdir, tname, parent_fd, name, AtFlags::empty())
                })
                .map_err(|e| werr(e, &entry_name, &self.dest))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let hdr = entry.header();
                let major = hdr.device_major().ok().flatten().unwrap_or(0);
                let minor = hdr.device_minor().ok().flatten().unwrap_or(0);
                let dev = rustix::fs::makedev(major, minor);
                create_retrying(parent_fd, name, || {
                    mknodat(
                        parent_fd,
                        name,
                        ft,
                        Mode::from_raw_mode(meta.mode & 0o7777),
                        dev,
                    )
                })
                .map_err(|e| werr(e, &entry_name, &self.dest))?;
                self.set_at_meta(parent_fd, name, &meta, true)
                    .map_err(|e| werr(e, &entry_name, &self.dest))?;
                utimensat(parent_fd, name, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| werr(e, &entry_name, &self.dest))?;
            }
            // Metadata-only records the tar crate already folded into the next entry.
            tar::EntryType::XHeader
            | tar::EntryType::XGlobalHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {}
            other => {
                return Err(ApplyError::UnsupportedType {
                    entry: entry_name,
                    kind: format!("{other:?}"),
                });
            }
        }
        Ok(())
    }

    fn read_meta<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        entry_name: &str,
    ) -> Result<Meta, ApplyError> {
        let bad = |e: io::Error| ApplyError::BadEntry {
            entry: entry_name.to_owned(),
            source: e,
        };
        let hdr = entry.header();
        let old = hdr.as_old();
        let mut meta = Meta {
            uid: numeric(&old.uid, hdr.uid()).map_err(bad)? as u32,
            gid: numeric(&old.gid, hdr.gid()).map_err(bad)? as u32,
            mode: numeric(&old.mode, hdr.mode().map(u64::from)).map_err(bad)? as u32,
            mtime: Timespec {
                tv_sec: numeric(&old.mtime, hdr.mtime()).map_err(bad)? as i64,
                tv_nsec: 0,
            },
            xattrs: Vec::new(),
        };
        if let Some(pax) = entry.pax_extensions().map_err(bad)? {
            for ext in pax {
                let ext = ext.map_err(bad)?;
                let Ok(key) = ext.key() else { continue };
                let value = ext.value_bytes();
                let num = || {
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.trim().parse::<u32>().ok())
                };
                match key {
                    "uid" => meta.uid = num().unwrap_or(meta.uid),
                    "gid" => meta.gid = num().unwrap_or(meta.gid),
                    "mtime" => {
                        if let Some(t) = std::str::from_utf8(value).ok().and_then(parse_pax_time) {
                            meta.mtime = t;
                        }
                    }
                    k => {
                        if let Some(x) = k.strip_prefix("SCHILY.xattr.") {
                            // Overlay's own xattrs would let a layer forge redirects or
                            // opaque marks; opaque dirs come from `.wh..wh..opq` only.
                            if !x.starts_with("trusted.overlay.") {
                                meta.xattrs.push((x.to_owned(), value.to_vec()));
                            }
                        }
                    }
                }
            }
        }
        Ok(meta)
    }

    /// The parent directory of an entry, created when the tar omitted it.
    fn parent(&mut self, comps: &[&[u8]], entry_name: &str) -> Result<OwnedFd, ApplyError> {
        let key = join_bytes(comps);
        if let Some((k, fd)) = &self.parent_cache
            && *k == key
        {
            return fd.try_clone().map_err(|e| ApplyError::Write {
                entry: entry_name.to_owned(),
                dest: self.dest.clone(),
                source: e,
            });
        }
        let fd = mkdir_all_beneath(&self.root, comps).map_err(|e| match e {
            Errno::XDEV | Errno::LOOP | Errno::NOTDIR => ApplyError::Escapes {
                entry: entry_name.to_owned(),
            },
            e => ApplyError::Write {
                entry: entry_name.to_owned(),
                dest: self.dest.clone(),
                source: e.into(),
            },
        })?;
        let out = fd.try_clone().map_err(|e| ApplyError::Write {
            entry: entry_name.to_owned(),
            dest: self.dest.clone(),
            source: e,
        })?;
        self.parent_cache = Some((key, fd));
        Ok(out)
    }

    fn set_fd_meta(&self, fd: std::os::fd::BorrowedFd<'_>, meta: &Meta) -> rustix::io::Result<()> {
        if self.opts.same_owner {
            fchown(
                fd,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            )?;
        }
        // After chown, which clears set-id bits.
        fchmod(fd, Mode::from_raw_mode(meta.mode & 0o7777))?;
        for (k, v) in &meta.xattrs {
            fsetxattr(fd, k.as_str(), v, rustix::fs::XattrFlags::empty())?;
        }
        Ok(())
    }

    fn set_at_meta(
        &self,
        dir: std::os::fd::BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
        chmod: bool,
    ) -> rustix::io::Result<()> {
        if self.opts.same_owner {
            chownat(
                dir,
                name,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        if chmod {
            rustix::fs::chmodat(
                dir,
                name,
                Mode::from_raw_mode(meta.mode & 0o7777),
                AtFlags::empty(),
            )?;
        }
        if !meta.xattrs.is_empty() {
            // No fd-based call sets xattrs on a symlink or device node; go through this
            // process's own handle to `dir`, which cannot be swapped underneath us.
            let path = PathBuf::from(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&dir)
            ))
            .join(name);
            for (k, v) in &meta.xattrs {
                rustix::fs::lsetxattr(&path, k.as_str(), v, rustix::fs::XattrFlags::empty())?;
            }
        }
        Ok(())
    }

    /// Delete mode `.wh..wh..opq`: removes everything under `dir` this layer did not write.
    fn prune_unwritten(
        &self,
        dir: std::os::fd::BorrowedFd<'_>,
        prefix: &[u8],
    ) -> rustix::io::Result<()> {
        for child in list_dir(dir)? {
            let mut p = prefix.to_vec();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(child.as_bytes());
            let written = self.written.contains(&p);
            let mut under = p.clone();
            under.push(b'/');
            let has_written_children = self
                .written
                .range(under.clone()..)
                .next()
                .is_some_and(|w| w.starts_with(&under));
            if has_written_children {
                let sub = rustix::fs::openat2(
                    dir,
                    &child,
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                    BENEATH,
                )?;
                self.prune_unwritten(sub.as_fd(), &p)?;
            } else if !written {
                remove_all_at(dir, &child)?;
            } else {
                // Written as a leaf (or an empty dir) by this layer: its lower contents go.
                let st = rustix::fs::statat(dir, &child, AtFlags::SYMLINK_NOFOLLOW)?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    let sub = rustix::fs::openat2(
                        dir,
                        &child,
                        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                        BENEATH,
                    )?;
                    self.prune_unwritten(sub.as_fd(), &p)?;
                }
            }
        }
        Ok(())
    }

    /// Sets directory modes and mtimes, deepest first, after every child exists.
    fn finish_dirs(&mut self) -> Result<(), ApplyError> {
        for (path, meta) in self.dirs.iter().rev() {
            let err = |e: Errno| ApplyError::Write {
                entry: path.display().to_string(),
                dest: self.dest.clone(),
                source: e.into(),
            };
            let fd = match open_dir_beneath(&self.root, path) {
                Ok(fd) => fd,
                // Deleted or replaced later in the same layer.
                Err(Errno::NOENT | Errno::NOTDIR) => continue,
                Err(e) => return Err(err(e)),
            };
            fchmod(&fd, Mode::from_raw_mode(meta.mode & 0o7777)).map_err(err)?;
            futimens(
                &fd,
                &Timestamps {
                    last_access: meta.mtime,
                    last_modification: meta.mtime,
                },
            )
            .map_err(err)?;
        }
        Ok(())
    }
}

/// A numeric header field; an all-blank one reads as 0, as Go's `archive/tar` and GNU tar
/// read it (some writers leave owner fields empty).
fn numeric(raw: &[u8], parsed: io::Result<u64>) -> io::Result<u64> {
    if raw.iter().all(|b| matches!(b, 0 | b' ')) {
        Ok(0)
    } else {
        parsed
    }
}

fn join_bytes(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

/// Runs `create`; if the name is taken (an entry replacing a lower or earlier one), removes
/// what is there and tries once more.
fn create_retrying<T>(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &OsStr,
    mut create: impl FnMut() -> rustix::io::Result<T>,
) -> rustix::io::Result<T> {
    match create() {
        Err(Errno::EXIST) => {
            remove_all_at(dir, name)?;
            create()
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_parse_with_fractions() {
        assert_eq!(
            parse_pax_time("12").map(|t| (t.tv_sec, t.tv_nsec)),
            Some((12, 0))
        );
        assert_eq!(
            parse_pax_time("12.5").map(|t| (t.tv_sec, t.tv_nsec)),
            Some((12, 500_000_000))
        );
        assert!(parse_pax_time("x").is_none());
    }
}
