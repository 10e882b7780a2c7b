//! Exporting the result's files: copied into a directory (`type=local`) or written as one
//! deterministic tar stream (`type=tar`).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use cairn_snapshot::{Compression, LayerWriteOptions, write_dir_as_layer};

use super::archive::{parent_dir, sync_dir};
use super::error::ExportError;
use super::spec::Dest;

/// Copies the tree at `src` (a mounted result) to `dest`, keeping modes, owners (when
/// running as root), mtimes, symlinks and hard links within the tree.
///
/// When `dest` does not exist, or is an empty directory, the tree is built in a temp
/// directory beside it and renamed into place, so `dest` appears complete or not at all.
/// An existing non-empty `dest` is written into as buildx does (files not in the result
/// stay), each file through a temp name and a rename.
pub async fn export_local(src: &Path, dest: &Path) -> Result<(), ExportError> {
    let src = src.to_path_buf();
    let dest = dest.to_path_buf();
    tokio::task::spawn_blocking(move || export_local_blocking(&src, &dest))
        .await
        .map_err(ExportError::Join)?
}

fn export_local_blocking(src: &Path, dest: &Path) -> Result<(), ExportError> {
    let empty_or_missing = match fs::read_dir(dest) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(ExportError::io("reading", dest)(e)),
    };
    if empty_or_missing {
        let parent = parent_dir(dest);
        fs::create_dir_all(&parent).map_err(ExportError::io("creating", &parent))?;
        let stage = tempfile::Builder::new()
            .prefix(".cairn-export-")
            .tempdir_in(&parent)
            .map_err(ExportError::io("creating temp dir in", &parent))?;
        copy_tree(src, stage.path(), false)?;
        if dest.exists() {
            fs::remove_dir(dest).map_err(ExportError::io("replacing empty directory", dest))?;
        }
        let staged = stage.keep();
        fs::rename(&staged, dest)
            .map_err(ExportError::io("renaming export into place at", dest))?;
        sync_dir(&parent);
        Ok(())
    } else {
        copy_tree(src, dest, true)
    }
}

/// Copies `src`'s contents into `dst` (which exists). `replace`: entries may already exist
/// and are replaced through a temp name.
fn copy_tree(src: &Path, dst: &Path, replace: bool) -> Result<(), ExportError> {
    let root = is_root();
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut dirs: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    for entry in walkdir::WalkDir::new(src).min_depth(0).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            let path = e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| src.to_path_buf());
            ExportError::io("walking", path)(e.into())
        })?;
        let rel = entry.path().strip_prefix(src).unwrap_or(Path::new(""));
        let to = dst.join(rel);
        let meta = entry
            .path()
            .symlink_metadata()
            .map_err(ExportError::io("inspecting", entry.path()))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            if !rel.as_os_str().is_empty() {
                match fs::create_dir(&to) {
                    Ok(()) => {}
                    Err(e)
                        if replace
                            && e.kind() == std::io::ErrorKind::AlreadyExists
                            && to.is_dir() => {}
                    Err(e) => return Err(ExportError::io("creating directory", &to)(e)),
                }
            }
            dirs.push((to, meta));
            continue;
        }
        let tmp = if replace {
            temp_sibling(&to)
        } else {
            to.clone()
        };
        if meta.nlink() > 1 && !ft.is_dir() {
            if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                fs::hard_link(first, &tmp).map_err(ExportError::io("hard-linking", &tmp))?;
                finish_entry(&tmp, &to, replace)?;
                continue;
            }
            links.insert((meta.dev(), meta.ino()), to.clone());
        }
        if ft.is_symlink() {
            let target = fs::read_link(entry.path())
                .map_err(ExportError::io("reading link", entry.path()))?;
            std::os::unix::fs::symlink(&target, &tmp)
                .map_err(ExportError::io("creating symlink", &tmp))?;
            if root {
                std::os::unix::fs::lchown(&tmp, Some(meta.uid()), Some(meta.gid()))
                    .map_err(ExportError::io("chown", &tmp))?;
            }
            set_mtime(&tmp, &meta)?;
        } else if ft.is_file() {
            fs::copy(entry.path(), &tmp).map_err(ExportError::io("copying to", &tmp))?;
            set_meta(&tmp, &meta, root)?;
        } else {
            make_special(entry.path(), &tmp, &meta)?;
            set_meta(&tmp, &meta, root)?;
        }
        finish_entry(&tmp, &to, replace)?;
    }
    // Directory metadata last (deepest first), so writing children did not change mtimes
    // and a read-only directory did not block its own contents.
    for (dir, meta) in dirs.into_iter().rev() {
        set_meta(&dir, &meta, root)?;
    }
    Ok(())
}

fn temp_sibling(to: &Path) -> PathBuf {
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    to.with_file_name(format!(".{name}.cairn-tmp"))
}

fn finish_entry(tmp: &Path, to: &Path, replace: bool) -> Result<(), ExportError> {
    if replace {
        if to.is_dir() && !to.is_symlink() {
            fs::remove_dir_all(to).map_err(ExportError::io("replacing directory", to))?;
        }
        fs::rename(tmp, to).map_err(ExportError::io("renaming into place at", to))?;
    }
    Ok(())
}

fn set_meta(path: &Path, meta: &fs::Metadata, root: bool) -> Result<(), ExportError> {
    if root {
        std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid()))
            .map_err(ExportError::io("chown", path))?;
    }
    // After chown, which clears setuid/setgid bits.
    fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(ExportError::io("chmod", path))?;
    set_mtime(path, meta)
}

/// Sets atime and mtime to `meta`'s mtime, on the link itself for symlinks.
fn set_mtime(path: &Path, meta: &fs::Metadata) -> Result<(), ExportError> {
    let ts = rustix::fs::Timespec {
        tv_sec: meta.mtime(),
        tv_nsec: meta.mtime_nsec() as _,
    };
    let times = rustix::fs::Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| ExportError::io("setting mtime of", path)(e.into()))
}

fn make_special(src: &Path, to: &Path, meta: &fs::Metadata) -> Result<(), ExportError> {
    use std::os::unix::fs::FileTypeExt as _;
    let ft = meta.file_type();
    let kind = if ft.is_fifo() {
        rustix::fs::FileType::Fifo
    } else if ft.is_char_device() {
        rustix::fs::FileType::CharacterDevice
    } else if ft.is_block_device() {
        rustix::fs::FileType::BlockDevice
    } else {
        return Err(ExportError::Unsupported {
            path: src.to_path_buf(),
            kind: "socket",
        });
    };
    rustix::fs::mknodat(
        rustix::fs::CWD,
        to,
        kind,
        rustix::fs::Mode::from_raw_mode(meta.mode() & 0o7777),
        meta.rdev(),
    )
    .map_err(|e| ExportError::io("creating special file", to)(e.into()))
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Writes the tree at `src` as one uncompressed, deterministic tar to `out` (sorted
/// entries, mtimes clamped to `source_date_epoch` when given).
pub fn export_tar(
    src: &Path,
    out: &mut dyn Write,
    source_date_epoch: Option<i64>,
) -> Result<(), ExportError> {
    let opts = LayerWriteOptions {
        compression: Compression::None,
        level: None,
        source_date_epoch,
    };
    write_dir_as_layer(src, out, &opts).map_err(|source| ExportError::TarFiles {
        src: src.to_path_buf(),
        source: Box::new(source),
    })?;
    Ok(())
}

/// [`export_tar`] to stdout or, atomically, to a file.
pub async fn export_tar_to(
    src: &Path,
    dest: &Dest,
    source_date_epoch: Option<i64>,
) -> Result<(), ExportError> {
    let src = src.to_path_buf();
    let dest = dest.clone();
    tokio::task::spawn_blocking(move || match &dest {
        Dest::Stdout => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            export_tar(&src, &mut lock, source_date_epoch)?;
            lock.flush().map_err(|source| ExportError::Output {
                what: "tar to stdout".into(),
                source,
            })
        }
        Dest::Path(path) => {
            if let Some(mut file) = super::archive::open_special(path)? {
                return export_tar(&src, &mut file, source_date_epoch);
            }
            let dir = parent_dir(path);
            std::fs::create_dir_all(&dir).map_err(ExportError::io("creating", &dir))?;
            let mut tmp = tempfile::Builder::new()
                .prefix(".cairn-export-")
                .tempfile_in(&dir)
                .map_err(ExportError::io("creating temp file in", &dir))?;
            export_tar(&src, tmp.as_file_mut(), source_date_epoch)?;
            tmp.as_file()
                .sync_all()
                .map_err(ExportError::io("syncing", tmp.path().to_path_buf()))?;
            tmp.persist(path)
                .map_err(|e| ExportError::io("renaming export into place at", path)(e.error))?;
            sync_dir(&dir);
            Ok(())
        }
    })
    .await
    .map_err(ExportError::Join)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree(root: &Path) {
        fs::create_dir_all(root.join("etc/sub")).unwrap();
        fs::write(root.join("etc/conf"), b"conf").unwrap();
        fs::set_permissions(root.join("etc/conf"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(root.join("bin"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(root.join("bin"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::hard_link(root.join("bin"), root.join("bin2")).unwrap();
        symlink("etc/conf", root.join("link")).unwrap();
        if is_root() {
            std::os::unix::fs::lchown(root.join("etc/conf"), Some(1234), Some(5678)).unwrap();
            std::os::unix::fs::lchown(root.join("link"), Some(4321), Some(8765)).unwrap();
        }
        fs::set_permissions(root.join("etc/sub"), fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[tokio::test]
    async fn local_export_copies_modes_links_and_symlinks_atomically() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        tree(&src);
        let dest = t.path().join("out/dest");
        export_local(&src, &dest).await.unwrap();
        assert_eq!(fs::read(dest.join("etc/conf")).unwrap(), b"conf");
        assert_eq!(
            fs::metadata(dest.join("etc/conf")).unwrap().mode() & 0o7777,
            0o600
        );
        assert_eq!(
            fs::metadata(dest.join("bin")).unwrap().mode() & 0o7777,
            0o755
        );
        assert_eq!(
            fs::metadata(dest.join("etc/sub")).unwrap().mode() & 0o7777,
            0o700
        );
        assert_eq!(
            fs::read_link(dest.join("link")).unwrap(),
            Path::new("etc/conf")
        );
        assert_eq!(
            fs::metadata(dest.join("bin")).unwrap().ino(),
            fs::metadata(dest.join("bin2")).unwrap().ino()
        );
        assert_eq!(
            fs::metadata(dest.join("etc/conf"))
                .unwrap()
                .modified()
                .unwrap(),
            fs::metadata(src.join("etc/conf"))
                .unwrap()
                .modified()
                .unwrap()
        );
        let leftovers: Vec<_> = fs::read_dir(t.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["dest"], "no temp dirs left beside dest");
    }

    #[tokio::test]
    async fn local_export_into_existing_dir_replaces_and_keeps_others() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        tree(&src);
        let dest = t.path().join("dest");
        fs::create_dir_all(dest.join("etc")).unwrap();
        fs::write(dest.join("etc/conf"), b"old").unwrap();
        fs::write(dest.join("mine"), b"kept").unwrap();
        export_local(&src, &dest).await.unwrap();
        assert_eq!(fs::read(dest.join("etc/conf")).unwrap(), b"conf");
        assert_eq!(fs::read(dest.join("mine")).unwrap(), b"kept");
        let names: Vec<String> = fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains("cairn-tmp")), "{names:?}");
    }

    #[tokio::test]
    async fn tar_export_is_deterministic_and_lists_the_tree() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        tree(&src);
        let a = t.path().join("a.tar");
        let b = t.path().join("new/dir/b.tar");
        export_tar_to(&src, &Dest::Path(a.clone()), Some(0))
            .await
            .unwrap();
        export_tar_to(&src, &Dest::Path(b.clone()), Some(0))
            .await
            .unwrap();
        let (a, b) = (fs::read(a).unwrap(), fs::read(b).unwrap());
        assert_eq!(a, b);
        let mut ar = tar::Archive::new(&a[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        for want in ["etc/conf", "bin", "link"] {
            assert!(
                names.iter().any(|n| n.trim_end_matches('/') == want),
                "{want} missing from {names:?}"
            );
        }
    }
}
