//! Writing a change set as a layer blob: a deterministic PAX tar, compressed, with the
//! compressed digest and size and the uncompressed digest (diff_id) computed in one pass.
//!
//! Deterministic means: entries in sorted path order (an opaque marker right after its
//! directory), numeric owners only (no user or group names: the host's `/etc/passwd` is not
//! image content), no atime/ctime, mtimes clamped to `SOURCE_DATE_EPOCH` when given (as
//! BuildKit's `rewrite-timestamp` does), gzip headers without name or time. Hard links
//! inside one layer are kept as tar hard links to the first name written.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use cairn_llb::{Digest, Hasher};

use crate::compression::Compression;
use crate::diff::{Change, ChangeKind, diff_dirs};
use crate::error::SnapshotError;
use crate::fsutil::read_xattrs;
use crate::whiteout::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX};

/// How to write a layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerWriteOptions {
    pub compression: Compression,
    /// gzip 0-9 (default 6) or zstd 1-22 (default 3).
    pub level: Option<i32>,
    /// Clamp every mtime to at most this (seconds since the epoch).
    pub source_date_epoch: Option<i64>,
}

impl Default for LayerWriteOptions {
    fn default() -> Self {
        LayerWriteOptions {
            compression: Compression::Gzip,
            level: None,
            source_date_epoch: None,
        }
    }
}

/// What was written: enough for an OCI descriptor and the config's `rootfs.diff_ids`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDescriptor {
    /// Digest of the bytes written to `out` (the blob).
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    pub compression: Compression,
}

impl LayerDescriptor {
    /// `application/vnd.oci.image.layer.v1.tar[+gzip|+zstd]`.
    pub fn media_type(&self) -> String {
        format!(
            "application/vnd.oci.image.layer.v1.tar{}",
            self.compression.media_type_suffix()
        )
    }
}

struct Tee<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Encoder<W: Write> {
    None(W),
    Gzip(crate::pgzip::ParallelGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
            Encoder::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}

impl<W: Write> Encoder<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(w) => w.finish(),
            Encoder::Zstd(w) => w.finish(),
        }
    }
}

/// Writes every file below `dir` as an all-adds layer (the diff against an empty tree).
pub fn write_dir_as_layer(
    dir: &Path,
    out: &mut dyn Write,
    opts: &LayerWriteOptions,
) -> Result<LayerDescriptor, SnapshotError> {
    let changes = diff_dirs(None, dir)?;
    write_layer(&changes, dir, out, opts)
}

/// Writes `changes` (sorted, as `diff` returns them) as a layer tar, reading added and
/// modified entries from `source`.
pub fn write_layer(
    changes: &[Change],
    source: &Path,
    out: &mut dyn Write,
    opts: &LayerWriteOptions,
) -> Result<LayerDescriptor, SnapshotError> {
    let blob = Tee {
        inner: io::BufWriter::with_capacity(256 * 1024, out),
        hasher: Hasher::new(),
    };
    let werr = |path: &Path| {
        let path = path.to_owned();
        move |source| SnapshotError::WriteLayer { path, source }
    };
    let enc = match opts.compression {
        Compression::None => Encoder::None(blob),
        Compression::Gzip => {
            let level = opts.level.unwrap_or(6).clamp(0, 9) as u32;
            Encoder::Gzip(crate::pgzip::ParallelGzip::new(blob, level))
        }
        Compression::Zstd => Encoder::Zstd(
            zstd::stream::write::Encoder::new(blob, opts.level.unwrap_or(3))
                .map_err(werr(source))?,
        ),
    };
    let tar_out = Tee {
        inner: enc,
        hasher: Hasher::new(),
    };
    let mut builder = tar::Builder::new(tar_out);
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut written: HashSet<PathBuf> = HashSet::new();
    for ch in changes {
        write_parents(
            &mut builder,
            &ch.path,
            source,
            opts,
            &mut links,
            &mut written,
        )
        .map_err(werr(&ch.path))?;
        write_change(&mut builder, ch, source, opts, &mut links).map_err(werr(&ch.path))?;
        if matches!(ch.kind, ChangeKind::Added | ChangeKind::Modified) {
            written.insert(ch.path.clone());
        }
    }
    let tar_out = builder.into_inner().map_err(werr(source))?;
    let uncompressed_size = tar_out.hasher.len();
    let diff_id = tar_out.hasher.finalize();
    let mut blob = tar_out.inner.finish().map_err(werr(source))?;
    blob.flush().map_err(werr(source))?;
    let size = blob.hasher.len();
    let digest = blob.hasher.finalize();
    // An uncompressed blob is its own diff_id; the two hashes agree by construction.
    Ok(LayerDescriptor {
        digest,
        size,
        diff_id,
        uncompressed_size,
        compression: opts.compression,
    })
}

/// Writes the directories above `path` that are not in the layer yet, as they are in
/// `source`. A change set from comparing two trees leaves out a directory whose own
/// metadata did not change (a file edited in `/etc` leaves `/etc`'s times alone), and an
/// unpacker would then make it with its own defaults wherever the layer lands on a base
/// without it (a diff merged elsewhere). containerd's layer writer adds them the same way.
/// Change sets read from an overlay upper dir already hold every parent, so their layers
/// are unchanged by this.
fn write_parents<W: Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    source: &Path,
    opts: &LayerWriteOptions,
    links: &mut HashMap<(u64, u64), Vec<u8>>,
    written: &mut HashSet<PathBuf>,
) -> io::Result<()> {
    let mut missing: Vec<&Path> = path
        .ancestors()
        .skip(1)
        .filter(|a| !a.as_os_str().is_empty())
        .take_while(|a| !written.contains(*a))
        .collect();
    missing.reverse();
    for dir in missing {
        if !std::fs::symlink_metadata(source.join(dir)).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let ch = Change {
            path: dir.to_path_buf(),
            kind: ChangeKind::Modified,
        };
        write_change(b, &ch, source, opts, links)?;
        written.insert(ch.path);
    }
    Ok(())
}

fn tar_name(path: &Path, dir: bool) -> Vec<u8> {
    let mut n = path.as_os_str().as_bytes().to_vec();
    if dir {
        n.push(b'/');
    }
    n
}

fn whiteout_name(path: &Path, base: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    if let Some(p) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        n.extend_from_slice(p.as_os_str().as_bytes());
        n.push(b'/');
    }
    n.extend_from_slice(base);
    n
}

fn write_change<W: Write>(
    b: &mut tar::Builder<W>,
    ch: &Change,
    source: &Path,
    opts: &LayerWriteOptions,
    links: &mut HashMap<(u64, u64), Vec<u8>>,
) -> io::Result<()> {
    let clamp = |t: i64| -> u64 {
        let t = opts.source_date_epoch.map_or(t, |e| t.min(e));
        t.max(0) as u64
    };
    match ch.kind {
        ChangeKind::Deleted => {
            let mut base = WHITEOUT_PREFIX.as_bytes().to_vec();
            base.extend_from_slice(
                ch.path
                    .file_name()
                    .map(|n| n.as_bytes())
                    .unwrap_or_default(),
            );
            return append_empty_file(b, &whiteout_name(&ch.path, &base), clamp(0));
        }
        ChangeKind::Opaque => {
            let mut n = ch.path.as_os_str().as_bytes().to_vec();
            n.push(b'/');
            n.extend_from_slice(OPAQUE_WHITEOUT.as_bytes());
            return append_empty_file(b, &n, clamp(0));
        }
        ChangeKind::Added | ChangeKind::Modified => {}
    }
    let full: PathBuf = source.join(&ch.path);
    let md = std::fs::symlink_metadata(&full)?;
    let ft = md.file_type();
    if ft.is_socket() {
        // Sockets cannot be stored in a tar; like containerd, leave them out.
        return Ok(());
    }
    let mut h = tar::Header::new_ustar();
    h.set_mode(md.mode() & 0o7777);
    h.set_mtime(clamp(md.mtime()));
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    const USTAR_MAX_ID: u64 = 0o7777777;
    if md.uid() as u64 > USTAR_MAX_ID {
        pax.push(("uid".into(), md.uid().to_string().into_bytes()));
    } else {
        h.set_uid(md.uid() as u64);
    }
    if md.gid() as u64 > USTAR_MAX_ID {
        pax.push(("gid".into(), md.gid().to_string().into_bytes()));
    } else {
        h.set_gid(md.gid() as u64);
    }
    let name = tar_name(&ch.path, ft.is_dir());
    let mut link: Option<Vec<u8>> = None;
    let mut size = 0u64;
    if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
    } else if ft.is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        link = Some(std::fs::read_link(&full)?.into_os_string().into_vec());
    } else if ft.is_file() {
        let key = (md.dev(), md.ino());
        if md.nlink() > 1 {
            if let Some(first) = links.get(&key) {
                h.set_entry_type(tar::EntryType::Link);
                link = Some(first.clone());
            } else {
                links.insert(key, name.clone());
            }
        }
        if link.is_none() {
            h.set_entry_type(tar::EntryType::Regular);
            size = md.size();
        }
    } else if ft.is_char_device() || ft.is_block_device() {
        h.set_entry_type(if ft.is_char_device() {
            tar::EntryType::Char
        } else {
            tar::EntryType::Block
        });
        h.set_device_major(rustix::fs::major(md.rdev()))?;
        h.set_device_minor(rustix::fs::minor(md.rdev()))?;
    } else if ft.is_fifo() {
        h.set_entry_type(tar::EntryType::Fifo);
    }
    h.set_size(size);
    for (k, v) in read_xattrs(&full)? {
        pax.push((format!("SCHILY.xattr.{k}"), v));
    }
    set_name(&mut h, &name, &mut pax, "path", |h| {
        &mut h.as_old_mut().name
    });
    if let Some(l) = &link {
        set_name(&mut h, l, &mut pax, "linkpath", |h| {
            &mut h.as_old_mut().linkname
        });
    }
    if !pax.is_empty() {
        b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
    }
    h.set_cksum();
    if size > 0 {
        let f = std::fs::File::open(&full)?;
        // A file that changed size since stat would corrupt the archive; take exactly `size`.
        let mut r = io::Read::take(f, size);
        b.append(&h, &mut r)
    } else {
        b.append(&h, io::empty())
    }
}

/// Stores a name in a 100-byte header field, or in a PAX record when it does not fit.
fn set_name(
    h: &mut tar::Header,
    name: &[u8],
    pax: &mut Vec<(String, Vec<u8>)>,
    key: &str,
    field: impl Fn(&mut tar::Header) -> &mut [u8; 100],
) {
    let f = field(h);
    f.fill(0);
    if name.len() <= 100 {
        f[..name.len()].copy_from_slice(name);
    } else {
        let cut = &name[..100];
        f.copy_from_slice(cut);
        pax.push((key.to_owned(), name.to_vec()));
    }
}

fn append_empty_file<W: Write>(b: &mut tar::Builder<W>, name: &[u8], mtime: u64) -> io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    let mut pax = Vec::new();
    set_name(&mut h, name, &mut pax, "path", |h| &mut h.as_old_mut().name);
    if !pax.is_empty() {
        b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
    }
    h.set_cksum();
    b.append(&h, io::empty())
}
