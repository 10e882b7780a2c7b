//! Resolving user-supplied paths inside a root directory, never outside it.
//!
//! Same rules as containerd continuity's `fs.RootPath`, which BuildKit's file ops use:
//! the path is taken as absolute inside `root`; `..` stops at the root; symlinks met on
//! the way are followed, an absolute target restarting at the root and a relative one
//! resolving from the link's directory, so no link can lead outside `root`. Components
//! that do not exist are kept as they are (the caller may be about to create them).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How many symlinks one resolution may follow before giving up (as the kernel's ELOOP).
const MAX_LINKS: usize = 255;

/// Resolves `unsafe_path` inside `root`, following every symlink including the last
/// component.
pub fn root_path(root: &Path, unsafe_path: &str) -> io::Result<PathBuf> {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: VecDeque<OsString> = components(unsafe_path.as_bytes()).collect();
    let mut links = 0;
    let mut current = root.to_path_buf();
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            if resolved.pop().is_some() {
                current.pop();
            }
            continue;
        }
        let candidate = current.join(&c);
        let is_link =
            std::fs::symlink_metadata(&candidate).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            resolved.push(c);
            current = candidate;
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "too many symlinks resolving {unsafe_path:?} in {}",
                    root.display()
                ),
            ));
        }
        let target = std::fs::read_link(&candidate)?;
        let target = target.as_os_str().as_bytes();
        if target.first() == Some(&b'/') {
            resolved.clear();
            current = root.to_path_buf();
        }
        let mut next: VecDeque<OsString> = components(target).collect();
        next.extend(pending);
        pending = next;
    }
    Ok(current)
}

/// Like [`root_path`], but a symlink in the last component is not followed: the result
/// names the link itself (for `rm`, for copying a link as a link).
pub fn root_path_nofollow(root: &Path, unsafe_path: &str) -> io::Result<PathBuf> {
    let clean = clean_abs(unsafe_path);
    match clean.rsplit_once('/') {
        Some((dir, base)) if !base.is_empty() => Ok(root_path(root, dir)?.join(base)),
        _ => Ok(root.to_path_buf()),
    }
}

/// Go's `filepath.Join("/", p)`: absolute, `.` and `..` removed lexically, no trailing
/// slash except for `/` itself.
pub fn clean_abs(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// BuildKit's `cleanPath`: like [`clean_abs`] but keeps a trailing `/` or `/.`, which
/// change what a copy does ("into the directory", "the directory's contents").
pub fn clean_keep_trailing(s: &str) -> String {
    let mut out = clean_abs(s);
    if s.ends_with("/.") {
        if out != "/" {
            out.push('/');
        }
        out.push('.');
    } else if s.ends_with('/') && out != "/" {
        out.push('/');
    }
    out
}

/// Go's `filepath.Base`.
pub fn base(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return if p.is_empty() { "." } else { "/" };
    }
    t.rsplit('/').next().unwrap_or(t)
}

fn components(p: &[u8]) -> impl Iterator<Item = OsString> + '_ {
    p.split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsStr::from_bytes(c).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn dotdot_and_absolute_links_stay_inside() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path();
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        symlink("/etc", root.join("a/abs")).expect("symlink");
        symlink("../../../../..", root.join("a/b/up")).expect("symlink");
        symlink("b", root.join("a/rel")).expect("symlink");
        assert_eq!(
            root_path(root, "../../etc/passwd").expect("resolve"),
            root.join("etc/passwd")
        );
        assert_eq!(
            root_path(root, "/a/abs/passwd").expect("resolve"),
            root.join("etc/passwd")
        );
        assert_eq!(
            root_path(root, "a/b/up/x").expect("resolve"),
            root.join("x")
        );
        assert_eq!(
            root_path(root, "a/rel/c").expect("resolve"),
            root.join("a/b/c")
        );
        assert_eq!(root_path(root, "").expect("resolve"), root.to_path_buf());
        assert_eq!(
            root_path_nofollow(root, "/a/rel").expect("resolve"),
            root.join("a/rel")
        );
        assert_eq!(
            root_path_nofollow(root, "/a/rel/../abs").expect("resolve"),
            root.join("a/abs")
        );
    }

    #[test]
    fn link_loops_fail_instead_of_spinning() {
        let t = tempfile::tempdir().expect("tempdir");
        symlink("loop2", t.path().join("loop1")).expect("symlink");
        symlink("loop1", t.path().join("loop2")).expect("symlink");
        let err = root_path(t.path(), "loop1/x").expect_err("loop");
        assert!(err.to_string().contains("too many symlinks"), "{err}");
    }

    #[test]
    fn cleaning_matches_go() {
        assert_eq!(clean_abs("a/../../b/./c/"), "/b/c");
        assert_eq!(clean_abs(""), "/");
        assert_eq!(clean_keep_trailing("src/"), "/src/");
        assert_eq!(clean_keep_trailing("src/."), "/src/.");
        assert_eq!(clean_keep_trailing("/."), "/.");
        assert_eq!(clean_keep_trailing("/"), "/");
        assert_eq!(base("/foo/."), ".");
        assert_eq!(base("/foo/bar/"), "bar");
        assert_eq!(base("/"), "/");
    }
}
