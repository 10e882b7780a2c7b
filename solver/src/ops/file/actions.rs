//! The non-copy actions: mkdir, mkfile, rm and symlink, each on one root directory, with
//! BuildKit's semantics (`solver/llbsolver/file/backend.go`).

use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use cairn_llb::pb::{FileActionMkDir, FileActionMkFile, FileActionRm, FileActionSymlink};

use super::error::{FileOpError, io_err};
use super::pattern::{glob_match, has_wildcards};
use super::root::{clean_abs, root_path};
use super::sys;
use super::user::Owner;

/// BuildKit's "-1 means keep" timestamps, as an option.
pub fn timestamp(ts: i64) -> Option<i64> {
    (ts != -1).then_some(ts)
}

pub fn mkdir(root: &Path, a: &FileActionMkDir, owner: Option<Owner>) -> Result<(), FileOpError> {
    let p = root_path(root, &a.path).map_err(io_err("resolve", a.path.clone()))?;
    let mode = (a.mode as u32) & 0o777;
    if a.make_parents {
        mkdir_all(root, &p, mode, owner, timestamp(a.timestamp))?;
        return Ok(());
    }
    match std::fs::create_dir(&p) {
        Ok(()) => {}
        // BuildKit ignores an existing path, whatever its type.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io_err("mkdir", a.path.clone())(e)),
    }
    sys::chmod(&p, mode).map_err(io_err("chmod", a.path.clone()))?;
    if let Some(o) = owner {
        sys::lchown(&p, o).map_err(io_err("chown", a.path.clone()))?;
    }
    sys::utimes(&p, timestamp(a.timestamp)).map_err(io_err("utimes", a.path.clone()))
}

/// `MkdirAll` of fsutil: creates the missing directories of `p` (already resolved inside
/// `root`), each with `mode`, owner and time, and returns the ones it created.
pub fn mkdir_all(
    root: &Path,
    p: &Path,
    mode: u32,
    owner: Option<Owner>,
    ts: Option<i64>,
) -> Result<Vec<PathBuf>, FileOpError> {
    let shown = || display(root, p);
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => return Ok(Vec::new()),
        Ok(_) => return Err(FileOpError::NotADirectory { path: shown() }),
        Err(_) => {}
    }
    let mut missing = Vec::new();
    let mut cur = p.to_path_buf();
    loop {
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => break,
            Ok(m)
                if m.file_type().is_symlink()
                    && std::fs::metadata(&cur).is_ok_and(|m| m.is_dir()) =>
            {
                break;
            }
            Ok(_) => {
                return Err(FileOpError::NotADirectory {
                    path: display(root, &cur),
                });
            }
            Err(_) => missing.push(cur.clone()),
        }
        if !cur.pop() || !cur.starts_with(root) {
            break;
        }
    }
    let mut created = Vec::new();
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists && d.is_dir() => continue,
            Err(e) => return Err(io_err("mkdir", display(root, &d))(e)),
        }
        sys::chmod(&d, mode).map_err(io_err("chmod", display(root, &d)))?;
        if let Some(o) = owner {
            sys::lchown(&d, o).map_err(io_err("chown", display(root, &d)))?;
        }
        created.push(d);
    }
    // Times last, deepest first: creating a child changes its parent's mtime. (BuildKit
    // leaves the parents of `mkdir -p` at the build's time; fixed times are reproducible.)
    for d in created.iter().rev() {
        sys::utimes(d, ts).map_err(io_err("utimes", display(root, d)))?;
    }
    Ok(created)
}

pub fn mkfile(root: &Path, a: &FileActionMkFile, owner: Option<Owner>) -> Result<(), FileOpError> {
    let p = root_path(root, &clean_abs(&a.path)).map_err(io_err("resolve", a.path.clone()))?;
    let mode = (a.mode as u32) & 0o777;
    let existed = p.exists();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&p)
        .map_err(io_err("create", a.path.clone()))?;
    f.write_all(&a.data)
        .map_err(io_err("write", a.path.clone()))?;
    drop(f);
    if !existed {
        // Exactly the requested mode, whatever the process umask.
        sys::chmod(&p, mode).map_err(io_err("chmod", a.path.clone()))?;
    }
    if let Some(o) = owner {
        sys::lchown(&p, o).map_err(io_err("chown", a.path.clone()))?;
    }
    sys::utimes(&p, timestamp(a.timestamp)).map_err(io_err("utimes", a.path.clone()))
}

pub fn symlink(
    root: &Path,
    a: &FileActionSymlink,
    owner: Option<Owner>,
) -> Result<(), FileOpError> {
    let p =
        root_path(root, &clean_abs(&a.newpath)).map_err(io_err("resolve", a.newpath.clone()))?;
    std::os::unix::fs::symlink(&a.oldpath, &p).map_err(io_err("symlink", a.newpath.clone()))?;
    if let Some(o) = owner {
        sys::lchown(&p, o).map_err(io_err("chown", a.newpath.clone()))?;
    }
    sys::utimes(&p, timestamp(a.timestamp)).map_err(io_err("utimes", a.newpath.clone()))
}

pub fn rm(root: &Path, a: &FileActionRm) -> Result<(), FileOpError> {
    if a.allow_wildcard {
        for m in resolve_wildcards(root, &clean_abs(&a.path), false)? {
            rm_path(root, &m, a.allow_not_found)?;
        }
        return Ok(());
    }
    rm_path(root, &a.path, a.allow_not_found)
}

fn rm_path(root: &Path, src: &str, allow_not_found: bool) -> Result<(), FileOpError> {
    let clean = clean_abs(src);
    let (dir, base) = clean.rsplit_once('/').unwrap_or(("", ""));
    if base.is_empty() {
        return Err(FileOpError::InvalidPath {
            path: src.to_owned(),
        });
    }
    let p = root_path(root, dir)
        .map_err(io_err("resolve", src))?
        .join(base);
    // As BuildKit: without allow-not-found, the path must stat, following links (a
    // dangling link fails); links are resolved inside the root, never on the host.
    if !allow_not_found {
        let followed = root_path(root, &clean).map_err(io_err("resolve", src))?;
        if let Err(e) = std::fs::symlink_metadata(&followed)
            && e.kind() == ErrorKind::NotFound
        {
            return Err(FileOpError::NotFound { path: clean });
        }
    }
    match std::fs::symlink_metadata(&p) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return if allow_not_found {
                Ok(())
            } else {
                Err(FileOpError::NotFound { path: clean })
            };
        }
        Err(e) => return Err(io_err("stat", clean)(e)),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p),
        Ok(_) => std::fs::remove_file(&p),
    }
    .map_err(io_err("remove", clean))
}

/// fsutil's `ResolveWildcards`: the part of `src` before the first component with a
/// wildcard is resolved in `root`; the rest is matched against the paths below it
/// (a matched directory is not descended into). Returns in-root paths, sorted.
pub fn resolve_wildcards(
    root: &Path,
    src: &str,
    follow_links: bool,
) -> Result<Vec<String>, FileOpError> {
    let clean = clean_abs(src);
    let comps: Vec<&str> = clean.split('/').filter(|c| !c.is_empty()).collect();
    let Some(first) = comps.iter().position(|c| has_wildcards(c)) else {
        return Ok(vec![clean]);
    };
    let prefix = format!("/{}", comps[..first].join("/"));
    let pattern = comps[first..].join("/");
    let base = if follow_links {
        root_path(root, &prefix)
    } else {
        super::root::root_path_nofollow(root, &prefix)
    }
    .map_err(io_err("resolve", prefix.clone()))?;
    // Validate the pattern once, so a bad one fails even when nothing is below.
    glob_match(&pattern, "")?;
    let mut out = Vec::new();
    let mut walker = walkdir::WalkDir::new(&base)
        .min_depth(1)
        .follow_links(false)
        .follow_root_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walker.next() {
        let entry = entry.map_err(|e| {
            let path = e
                .path()
                .map(|p| display(root, p))
                .unwrap_or_else(|| prefix.clone());
            match e.into_io_error() {
                Some(io) => io_err("walk", path)(io),
                None => FileOpError::InvalidPath { path },
            }
        })?;
        let Ok(rel) = entry.path().strip_prefix(&base) else {
            continue;
        };
        let rel = rel.to_string_lossy();
        if glob_match(&pattern, &rel)? {
            out.push(display(root, entry.path()));
            if entry.file_type().is_dir() {
                walker.skip_current_dir();
            }
        }
    }
    Ok(out)
}

/// `p` (inside `root`) as an absolute in-root path for messages and wildcard results.
pub fn display(root: &Path, p: &Path) -> String {
    match p.strip_prefix(root) {
        Ok(rel) => format!("/{}", rel.to_string_lossy()),
        Err(_) => p.to_string_lossy().into_owned(),
    }
}
