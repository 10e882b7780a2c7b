//! `COPY`: fsutil's copier (`copy/copy.go`), which BuildKit's file op uses, rewritten:
//! `cp -a` semantics with include/exclude patterns, owner, mode and time overrides,
//! hardlinks kept, and BuildKit's rules for where a source lands.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use cairn_llb::pb::FileActionCopy;
use tokio_util::sync::CancellationToken;

use super::actions::{display, mkdir_all, resolve_wildcards, timestamp};
use super::copy_jobs::{self, FileJob};
use super::error::{FileOpError, io_err};
use super::mode::ModeSet;
use super::pattern::PatternMatcher;
use super::root::{base, clean_abs, clean_keep_trailing, root_path, root_path_nofollow};
use super::sys;
use super::unpack::unpack;
use super::user::Owner;

const DEFAULT_DIR_MODE: u32 = 0o755;

/// Runs a copy action from `src_root` into `dest_root`.
pub fn copy(
    src_root: &Path,
    dest_root: &Path,
    a: &FileActionCopy,
    owner: Option<Owner>,
    cancel: &CancellationToken,
) -> Result<(), FileOpError> {
    let src_path = clean_keep_trailing(&a.src);
    let dest_path = clean_keep_trailing(&a.dest);
    if !a.create_dest_path {
        let p =
            root_path(dest_root, &clean_abs(&a.dest)).map_err(io_err("resolve", a.dest.clone()))?;
        if let Some(parent) = p.parent() {
            std::fs::symlink_metadata(parent).map_err(io_err("stat", a.dest.clone()))?;
        }
    }
    let sources = if a.allow_wildcard {
        let m = resolve_wildcards(src_root, &src_path, a.follow_symlink)?;
        if m.is_empty() {
            if a.allow_empty_wildcard {
                return Ok(());
            }
            return Err(FileOpError::NotFound { path: src_path });
        }
        m
    } else {
        vec![src_path]
    };
    let mode_set = match a.mode_str.as_str() {
        "" => None,
        s => Some(ModeSet::parse(s)?),
    };
    let mut c = Copier {
        dest_root,
        owner,
        utime: timestamp(a.timestamp),
        mode: (a.mode != -1).then_some(a.mode as u32),
        mode_set,
        include: matcher(&a.include_patterns)?,
        exclude: matcher(&a.exclude_patterns)?,
        always_replace: a.always_replace_existing_dest_paths,
        inodes: HashMap::new(),
        parents: Vec::new(),
        jobs: Vec::new(),
        dir_finish: Vec::new(),
        cancel,
    };
    for s in &sources {
        // `ADD` of a local archive extracts it (BuildKit's docker compatibility).
        if a.attempt_unpack_docker_compatibility
            && unpack(src_root, s, dest_root, &dest_path, owner, c.utime, cancel)?
        {
            continue;
        }
        c.copy_one(
            src_root,
            s,
            &dest_path,
            a.dir_copy_contents,
            a.follow_symlink,
        )?;
    }
    Ok(())
}

fn matcher(patterns: &[String]) -> Result<Option<PatternMatcher>, FileOpError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    Ok(Some(PatternMatcher::new(patterns)?))
}

struct ParentDir {
    src: PathBuf,
    dst: PathBuf,
    copied: bool,
}

struct Copier<'a> {
    dest_root: &'a Path,
    owner: Option<Owner>,
    utime: Option<i64>,
    mode: Option<u32>,
    mode_set: Option<ModeSet>,
    include: Option<PatternMatcher>,
    exclude: Option<PatternMatcher>,
    always_replace: bool,
    /// Source inode → the destination path it was first copied to, to keep hardlinks.
    inodes: HashMap<(u64, u64), PathBuf>,
    /// Directories entered but not yet created (include patterns create them lazily).
    parents: Vec<ParentDir>,
    /// Regular files waiting to be copied in parallel (see `copy_jobs`).
    jobs: Vec<FileJob>,
    /// What is left to do to copied directories once the files in them exist, children
    /// before parents.
    dir_finish: Vec<DirFinish>,
    cancel: &'a CancellationToken,
}

/// A copied directory's metadata, set after its files are written (writing them changes
/// its times).
struct DirFinish {
    src: PathBuf,
    target: PathBuf,
    meta: std::fs::Metadata,
    /// Owner, mode, times and xattrs (a directory this copy made), or only the times back
    /// (one that existed).
    info: bool,
}

/// The queue is run when it grows this long even before the source is done, to bound the
/// memory a huge tree takes.
const MAX_QUEUED_JOBS: usize = 1 << 16;

impl Copier<'_> {
    fn shown(&self, p: &Path) -> String {
        display(self.dest_root, p)
    }

    /// fsutil's `Copy` for one source: ensure the destination's parent, decide where the
    /// source lands, copy, then reset the times of directories created on the way.
    fn copy_one(
        &mut self,
        src_root: &Path,
        src: &str,
        dst: &str,
        dir_contents: bool,
        follow: bool,
    ) -> Result<(), FileOpError> {
        let ensure = match dst.rsplit_once('/') {
            Some((dir, file)) if !file.is_empty() && file != "." => format!("{dir}/"),
            _ => dst.to_owned(),
        };
        let mut created = Vec::new();
        if !ensure.is_empty() {
            let p =
                root_path(self.dest_root, &ensure).map_err(io_err("resolve", ensure.clone()))?;
            created.extend(mkdir_all(
                self.dest_root,
                &p,
                self.mode.unwrap_or(DEFAULT_DIR_MODE),
                self.owner,
                self.utime,
            )?);
        }
        let dst_clean = clean_abs(dst);
        let dst_path =
            root_path(self.dest_root, &dst_clean).map_err(io_err("resolve", dst_clean.clone()))?;
        let src_followed = if follow {
            root_path(src_root, src)
        } else {
            root_path_nofollow(src_root, src)
        }
        .map_err(io_err("resolve", src))?;

        // prepareTargetDir
        let src_meta = std::fs::symlink_metadata(&src_followed).map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                FileOpError::NotFound {
                    path: clean_abs(src),
                }
            } else {
                io_err("stat", clean_abs(src))(e)
            }
        })?;
        let dest_meta = std::fs::metadata(&dst_path).ok();
        let src_is_dir = src_meta.is_dir();
        let mut target_path = dst_path.clone();
        if (!dir_contents && src_is_dir && dest_meta.is_some())
            || (!src_is_dir && dest_meta.as_ref().is_some_and(|m| m.is_dir()))
        {
            target_path = target_path.join(base(src));
            if base(src) == "." || base(src) == "/" {
                target_path = dst_path.clone();
            }
        }
        let mkdir_target = if dir_contents && src_is_dir && dest_meta.is_none() {
            target_path.clone()
        } else {
            target_path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.dest_root.to_path_buf())
        };
        created.extend(mkdir_all(
            self.dest_root,
            &mkdir_target,
            self.mode.unwrap_or(DEFAULT_DIR_MODE),
            self.owner,
            self.utime,
        )?);
        self.copy_entry(&src_followed, "", &target_path, false)?;
        self.finish()?;
        for d in created.iter().rev() {
            sys::utimes(d, self.utime).map_err(io_err("utimes", self.shown(d)))?;
        }
        Ok(())
    }

    fn matches(m: &Option<PatternMatcher>, comps: &str) -> bool {
        m.as_ref().is_some_and(|m| m.matches_or_parent(comps))
    }

    fn copy_entry(
        &mut self,
        src: &Path,
        comps: &str,
        target: &Path,
        overwrite_meta: bool,
    ) -> Result<(), FileOpError> {
        if self.cancel.is_cancelled() {
            return Err(FileOpError::Cancelled);
        }
        let mut include = true;
        let mut excluded = false;
        if !comps.is_empty() {
            include = self.include.is_none() || Self::matches(&self.include, comps);
            if Self::matches(&self.exclude, comps) {
                include = false;
                excluded = true;
            }
            let no_exceptions = self.exclude.as_ref().is_none_or(|m| !m.has_exclusions());
            if !include && self.include.is_none() && no_exceptions {
                return Ok(());
            }
        }
        let meta = std::fs::symlink_metadata(src).map_err(io_err("stat", comps.to_owned()))?;
        if !include && !meta.is_dir() {
            return Ok(());
        }
        let target_meta = match std::fs::symlink_metadata(target) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("stat", self.shown(target))(e)),
        };
        if include {
            if self.always_replace
                && let Some(tm) = &target_meta
                && !(meta.is_dir() && tm.is_dir())
            {
                remove_all(target, tm).map_err(io_err("remove", self.shown(target)))?;
            }
            self.create_parents(overwrite_meta)?;
        }
        let ft = meta.file_type();
        if !meta.is_dir() {
            self.ensure_empty_file_target(target)?;
        }
        let mut copy_info = include;
        let mut restore_time = false;
        if ft.is_dir() {
            let created =
                self.copy_dir(src, comps, target, &meta, overwrite_meta, include, excluded)?;
            if !overwrite_meta {
                copy_info = created;
                restore_time = !created;
            }
        } else if ft.is_file() && meta.nlink() <= 1 {
            // Nothing links to it: copied with the others in parallel, info and all.
            self.jobs.push(FileJob {
                src: src.to_path_buf(),
                target: target.to_path_buf(),
                shown: self.shown(target),
                owner: self.target_owner(&meta),
                mode: self.target_mode(&meta),
                times: self.target_times(&meta),
            });
            if self.jobs.len() >= MAX_QUEUED_JOBS {
                copy_jobs::run(&std::mem::take(&mut self.jobs), self.cancel)?;
            }
            return Ok(());
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            match self.inodes.get(&key).filter(|_| meta.nlink() > 1) {
                Some(first) => {
                    std::fs::hard_link(first, target).map_err(io_err("link", self.shown(target)))?
                }
                None => {
                    copy_file(src, target, meta.mode())
                        .map_err(io_err("copy", self.shown(target)))?;
                    if meta.nlink() > 1 {
                        self.inodes.insert(key, target.to_path_buf());
                    }
                }
            }
        } else if ft.is_symlink() {
            let link = std::fs::read_link(src).map_err(io_err("readlink", comps.to_owned()))?;
            std::os::unix::fs::symlink(&link, target)
                .map_err(io_err("symlink", self.shown(target)))?;
        } else {
            sys::mknod_like(target, &meta).map_err(io_err("mknod", self.shown(target)))?;
        }
        if ft.is_dir() {
            if copy_info || (restore_time && target_meta.is_some()) {
                self.dir_finish.push(DirFinish {
                    src: src.to_path_buf(),
                    target: target.to_path_buf(),
                    meta,
                    info: copy_info,
                });
            }
        } else if copy_info {
            self.copy_file_info(&meta, target)?;
            sys::copy_xattrs(src, target);
        } else if restore_time && target_meta.is_some() {
            self.copy_time(&meta, target)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_dir(
        &mut self,
        src: &Path,
        comps: &str,
        dst: &Path,
        meta: &std::fs::Metadata,
        overwrite_meta: bool,
        include: bool,
        excluded: bool,
    ) -> Result<bool, FileOpError> {
        let mut created = false;
        let mut parent = ParentDir {
            src: src.to_path_buf(),
            dst: dst.to_path_buf(),
            copied: false,
        };
        if include {
            created = self.copy_dir_only(dst, meta, overwrite_meta)?;
            parent.copied = true;
        }
        self.parents.push(parent);
        let result = (|| {
            if excluded && self.exclude.as_ref().is_none_or(|m| !m.has_exclusions()) {
                return Ok(false);
            }
            let mut names: Vec<_> = std::fs::read_dir(src)
                .map_err(io_err("read", comps.to_owned()))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(io_err("read", comps.to_owned()))?;
            names.sort();
            for name in names {
                let child = name.to_string_lossy();
                let child_comps = if comps.is_empty() {
                    child.into_owned()
                } else {
                    format!("{comps}/{child}")
                };
                self.copy_entry(&src.join(&name), &child_comps, &dst.join(&name), true)?;
            }
            Ok(created)
        })();
        self.parents.pop();
        result
    }

    fn copy_dir_only(
        &self,
        dst: &Path,
        meta: &std::fs::Metadata,
        overwrite_meta: bool,
    ) -> Result<bool, FileOpError> {
        match std::fs::symlink_metadata(dst) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                std::fs::create_dir(dst).map_err(io_err("mkdir", self.shown(dst)))?;
                sys::chmod(dst, meta.mode()).map_err(io_err("chmod", self.shown(dst)))?;
                Ok(true)
            }
            Err(e) => Err(io_err("stat", self.shown(dst))(e)),
            Ok(m) if !m.is_dir() => Err(FileOpError::NotADirectory {
                path: self.shown(dst),
            }),
            Ok(_) => {
                if overwrite_meta {
                    sys::chmod(dst, meta.mode()).map_err(io_err("chmod", self.shown(dst)))?;
                }
                Ok(false)
            }
        }
    }

    /// Creates directories entered without being included, now that something inside
    /// them is (include patterns like `a/*/c` must not create `a/b` for nothing).
    fn create_parents(&mut self, overwrite_meta: bool) -> Result<(), FileOpError> {
        for i in 0..self.parents.len() {
            if self.parents[i].copied {
                continue;
            }
            let (src, dst) = (self.parents[i].src.clone(), self.parents[i].dst.clone());
            let meta = std::fs::metadata(&src).map_err(io_err("stat", self.shown(&dst)))?;
            if !meta.is_dir() {
                return Err(FileOpError::NotADirectory {
                    path: self.shown(&dst),
                });
            }
            if self.copy_dir_only(&dst, &meta, overwrite_meta)? {
                self.copy_file_info(&meta, &dst)?;
                sys::copy_xattrs(&src, &dst);
            }
            self.parents[i].copied = true;
        }
        Ok(())
    }

    fn ensure_empty_file_target(&self, dst: &Path) -> Result<(), FileOpError> {
        match std::fs::symlink_metadata(dst) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("stat", self.shown(dst))(e)),
            Ok(m) if m.is_dir() => Err(FileOpError::DirWithFile {
                path: self.shown(dst),
            }),
            Ok(_) => std::fs::remove_file(dst).map_err(io_err("remove", self.shown(dst))),
        }
    }

    /// Copies the queued files, then finishes the directories they went into.
    fn finish(&mut self) -> Result<(), FileOpError> {
        copy_jobs::run(&std::mem::take(&mut self.jobs), self.cancel)?;
        for d in std::mem::take(&mut self.dir_finish) {
            if d.info {
                self.copy_file_info(&d.meta, &d.target)?;
                sys::copy_xattrs(&d.src, &d.target);
            } else {
                self.copy_time(&d.meta, &d.target)?;
            }
        }
        Ok(())
    }

    fn target_owner(&self, meta: &std::fs::Metadata) -> Owner {
        self.owner.unwrap_or(Owner {
            uid: meta.uid(),
            gid: meta.gid(),
        })
    }

    fn target_mode(&self, meta: &std::fs::Metadata) -> u32 {
        if let Some(set) = &self.mode_set {
            set.apply(meta.mode(), meta.is_dir())
        } else if let Some(m) = self.mode {
            m & 0o7777
        } else {
            meta.mode() & 0o7777
        }
    }

    fn target_times(&self, meta: &std::fs::Metadata) -> rustix::fs::Timestamps {
        let ts = |(tv_sec, tv_nsec): (i64, i64)| rustix::fs::Timespec {
            tv_sec,
            tv_nsec: tv_nsec as _,
        };
        match self.utime {
            Some(ns) => rustix::fs::Timestamps {
                last_access: ts(sys::split_nanos(ns)),
                last_modification: ts(sys::split_nanos(ns)),
            },
            None => rustix::fs::Timestamps {
                last_access: ts((meta.atime(), meta.atime_nsec())),
                last_modification: ts((meta.mtime(), meta.mtime_nsec())),
            },
        }
    }

    fn copy_file_info(&self, meta: &std::fs::Metadata, target: &Path) -> Result<(), FileOpError> {
        sys::lchown(target, self.target_owner(meta))
            .map_err(io_err("chown", self.shown(target)))?;
        if !meta.file_type().is_symlink() {
            sys::chmod(target, self.target_mode(meta))
                .map_err(io_err("chmod", self.shown(target)))?;
        }
        self.copy_time(meta, target)
    }

    fn copy_time(&self, meta: &std::fs::Metadata, target: &Path) -> Result<(), FileOpError> {
        match self.utime {
            Some(ns) => sys::utimes(target, Some(ns)),
            None => sys::copy_times(target, meta),
        }
        .map_err(io_err("utimes", self.shown(target)))
    }
}

fn copy_file(src: &Path, dst: &Path, mode: u32) -> std::io::Result<()> {
    let mut from = std::fs::File::open(src)?;
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .open(dst)?;
    std::io::copy(&mut from, &mut to)?;
    Ok(())
}

fn remove_all(p: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    if meta.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    }
}
