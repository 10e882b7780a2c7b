//! `ADD` of a local archive: BuildKit's `unpack` (`solver/llbsolver/file/unpack.go`).
//! A regular file whose (decompressed) start is a tar header is extracted into the
//! destination directory instead of copied. Entries are resolved with the destination
//! as their root, as BuildKit's chrooted untar does: no `..` and no symlink in the
//! archive can place a file outside it.

use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::Path;

use super::actions::{display, mkdir_all};
use super::error::{FileOpError, io_err};
use super::root::{clean_abs, root_path, root_path_nofollow};
use super::sys;
use super::user::Owner;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Xz
    } else {
        Compression::None
    }
}

/// The decompressed stream of `path`, or `None` when it cannot be read as one.
fn open(path: &Path) -> Result<Option<Box<dyn Read>>, FileOpError> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(_) => return Ok(None),
    };
    let mut r = BufReader::new(f);
    let head = r.fill_buf().map(<[u8]>::to_vec).unwrap_or_default();
    Ok(Some(match sniff(&head) {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(r) {
            Ok(d) => Box::new(d),
            Err(_) => return Ok(None),
        },
        Compression::Bzip2 | Compression::Xz => {
            return Err(FileOpError::Unsupported {
                action: 0,
                feature: "extracting bzip2 or xz archives with ADD",
            });
        }
    }))
}

/// BuildKit's `isArchivePath`: a regular file whose first tar header parses.
fn is_archive(path: &Path) -> Result<bool, FileOpError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => {}
        _ => return Ok(false),
    }
    let Some(r) = open(path)? else {
        return Ok(false);
    };
    let mut archive = tar::Archive::new(r);
    let first = match archive.entries() {
        Ok(mut entries) => entries.next(),
        Err(_) => return Ok(false),
    };
    Ok(matches!(first, Some(Ok(_))))
}

/// Extracts `src` (in `src_root`) into `dest` (in `dest_root`) if it is an archive.
/// Returns whether it was one; when not, the caller copies it as a file.
pub fn unpack(
    src_root: &Path,
    src: &str,
    dest_root: &Path,
    dest: &str,
    owner: Option<Owner>,
    timestamp: Option<i64>,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<bool, FileOpError> {
    let src_path = root_path(src_root, src).map_err(io_err("resolve", src))?;
    if !is_archive(&src_path)? {
        return Ok(false);
    }
    let dest_dir = root_path(dest_root, dest).map_err(io_err("resolve", dest))?;
    mkdir_all(dest_root, &dest_dir, 0o755, owner, timestamp)?;
    let Some(r) = open(&src_path)? else {
        return Ok(false);
    };
    let mut archive = tar::Archive::new(r);
    let entries = archive.entries().map_err(io_err("read archive", src))?;
    for entry in entries {
        if cancel.is_cancelled() {
            return Err(FileOpError::Cancelled);
        }
        let mut entry = entry.map_err(io_err("read archive", src))?;
        extract(&dest_dir, &mut entry, owner).map_err(|e| match e {
            FileOpError::Io { op, path, source } => FileOpError::Io {
                op,
                path: format!("{src}: {path}"),
                source,
            },
            other => other,
        })?;
    }
    Ok(true)
}

fn extract<R: Read>(
    root: &Path,
    entry: &mut tar::Entry<'_, R>,
    owner: Option<Owner>,
) -> Result<(), FileOpError> {
    let raw = entry.path_bytes().into_owned();
    let name = clean_abs(&String::from_utf8_lossy(&raw));
    if name == "/" {
        return Ok(());
    }
    let target = root_path_nofollow(root, &name).map_err(io_err("resolve", name.clone()))?;
    let shown = || display(root, &target);
    let header = entry.header().clone();
    let mode = header
        .mode()
        .map_err(io_err("read mode of", name.clone()))?
        & 0o7777;
    let kind = header.entry_type();
    if let Some(parent) = target.parent() {
        mkdir_all(root, parent, 0o755, None, None)?;
    }
    let existing = std::fs::symlink_metadata(&target).ok();
    if let Some(m) = &existing
        && !(m.is_dir() && kind.is_dir())
    {
        if m.is_dir() {
            std::fs::remove_dir_all(&target)
        } else {
            std::fs::remove_file(&target)
        }
        .map_err(io_err("replace", shown()))?;
    }
    match kind {
        tar::EntryType::Directory => {
            if existing.as_ref().is_none_or(|m| !m.is_dir()) {
                std::fs::create_dir(&target).map_err(io_err("mkdir", shown()))?;
            }
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let mut f = std::fs::File::create_new(&target).map_err(io_err("create", shown()))?;
            std::io::copy(entry, &mut f).map_err(io_err("write", shown()))?;
        }
        tar::EntryType::Symlink => {
            let link = entry
                .link_name()
                .map_err(io_err("read link of", name.clone()))?
                .ok_or_else(|| FileOpError::InvalidPath { path: name.clone() })?;
            std::os::unix::fs::symlink(&link, &target).map_err(io_err("symlink", shown()))?;
        }
        tar::EntryType::Link => {
            let link = entry
                .link_name_bytes()
                .ok_or_else(|| FileOpError::InvalidPath { path: name.clone() })?;
            let to = root_path_nofollow(root, &clean_abs(&String::from_utf8_lossy(&link)))
                .map_err(io_err("resolve", name.clone()))?;
            std::fs::hard_link(&to, &target).map_err(io_err("link", shown()))?;
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let ft = match kind {
                tar::EntryType::Char => rustix::fs::FileType::CharacterDevice,
                tar::EntryType::Block => rustix::fs::FileType::BlockDevice,
                _ => rustix::fs::FileType::Fifo,
            };
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &target,
                ft,
                rustix::fs::Mode::from_raw_mode(mode),
                rustix::fs::makedev(major, minor),
            )
            .map_err(|e| io_err("mknod", shown())(e.into()))?;
        }
        // PAX and GNU metadata entries are consumed by the reader; others are skipped,
        // as an untar does with types it does not know.
        _ => return Ok(()),
    }
    let owner = owner.unwrap_or(Owner {
        uid: u32::try_from(header.uid().unwrap_or(0)).unwrap_or(0),
        gid: u32::try_from(header.gid().unwrap_or(0)).unwrap_or(0),
    });
    sys::lchown(&target, owner).map_err(io_err("chown", shown()))?;
    if kind != tar::EntryType::Symlink {
        sys::chmod(&target, mode).map_err(io_err("chmod", shown()))?;
    }
    let mtime = i64::try_from(header.mtime().unwrap_or(0)).unwrap_or(0);
    match sys::set_times(&target, (mtime, 0), (mtime, 0)) {
        Err(e) if e.kind() == ErrorKind::Unsupported => Ok(()),
        other => other.map_err(io_err("utimes", shown())),
    }
}
