//! Builders for layer tars (including hostile ones no well-behaved writer would produce)
//! and helpers to read trees back.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use cairn_snapshot::{AnySnapshotter, CopySnapshotter, OverlaySnapshotter};

/// Overlay and mknod need root. Without it, skip with a reason, unless `CI=true`.
pub fn need_root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs root (overlay mounts, device nodes) and CI=true forbids skipping");
    }
    eprintln!("skipping {test}: needs root");
    false
}

pub enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Fifo(&'a str),
    Char(&'a str, u32, u32),
}

/// A tar with names written raw (the `tar` crate's setters refuse `..` and absolute names).
pub struct TarBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl TarBuilder {
    pub fn new() -> Self {
        TarBuilder {
            b: tar::Builder::new(Vec::new()),
        }
    }

    pub fn entry(mut self, e: E<'_>) -> Self {
        self.entry_with(e, 0o755, 0, 0, 1_600_000_000, &[]);
        self
    }

    pub fn entry_with(
        &mut self,
        e: E<'_>,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
        xattrs: &[(&str, &[u8])],
    ) {
        let mut h = tar::Header::new_ustar();
        let (name, data, link): (&str, &[u8], Option<&str>) = match e {
            E::Dir(n) => {
                h.set_entry_type(tar::EntryType::Directory);
                (n, &[], None)
            }
            E::File(n, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                (n, d, None)
            }
            E::Symlink(n, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                (n, &[], Some(t))
            }
            E::Hardlink(n, t) => {
                h.set_entry_type(tar::EntryType::Link);
                (n, &[], Some(t))
            }
            E::Fifo(n) => {
                h.set_entry_type(tar::EntryType::Fifo);
                (n, &[], None)
            }
            E::Char(n, ma, mi) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_device_major(ma).unwrap();
                h.set_device_minor(mi).unwrap();
                (n, &[], None)
            }
        };
        if !xattrs.is_empty() {
            let recs: Vec<(String, &[u8])> = xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
                .collect();
            self.b
                .append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v)))
                .unwrap();
        }
        let nb = name.as_bytes();
        h.as_old_mut().name[..nb.len()].copy_from_slice(nb);
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
    }

    pub fn build(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// What a tree holds, for comparisons: path → description.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    walk(root)
        .map(|(rel, p, md)| (rel, describe(&p, &md)))
        .collect()
}

/// One entry with the metadata an ID-mapped copy must keep (type, contents, mode, mtime)
/// or shift (owner); `ino` tells hard links apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub desc: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime: i64,
    pub ino: u64,
}

/// [`tree`] with owners, modes, mtimes and inode numbers; the root itself is `""`.
pub fn owned_tree(root: &Path) -> BTreeMap<String, Entry> {
    let md = std::fs::symlink_metadata(root).unwrap();
    let root_entry = (String::new(), root.to_owned(), md);
    std::iter::once(root_entry)
        .chain(walk(root))
        .map(|(rel, p, md)| {
            let e = Entry {
                desc: describe(&p, &md),
                uid: md.uid(),
                gid: md.gid(),
                mode: md.mode(),
                mtime: md.mtime(),
                ino: md.ino(),
            };
            (rel, e)
        })
        .collect()
}

fn walk(root: &Path) -> impl Iterator<Item = (String, std::path::PathBuf, std::fs::Metadata)> + '_ {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .map(move |e| {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            (rel, e.path().to_owned(), md)
        })
}

fn describe(p: &Path, md: &std::fs::Metadata) -> String {
    let ft = md.file_type();
    if ft.is_dir() {
        "dir".to_string()
    } else if ft.is_symlink() {
        format!("symlink:{}", std::fs::read_link(p).unwrap().display())
    } else if ft.is_file() {
        format!(
            "file:{}",
            String::from_utf8_lossy(&std::fs::read(p).unwrap())
        )
    } else if ft.is_char_device() {
        format!("char:{}", md.rdev())
    } else if ft.is_fifo() {
        "fifo".to_string()
    } else {
        "other".to_string()
    }
}

/// Mount points still present below `under` (tests must not leak mounts).
pub fn mounts_under(under: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let u = under.to_string_lossy().into_owned();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&u))
        .map(str::to_owned)
        .collect()
}

pub fn drivers(root: &Path) -> Vec<(&'static str, AnySnapshotter)> {
    vec![
        (
            "overlay",
            AnySnapshotter::Overlay(OverlaySnapshotter::open(&root.join("ov")).unwrap()),
        ),
        (
            "copy",
            AnySnapshotter::Copy(CopySnapshotter::open(&root.join("cp")).unwrap()),
        ),
    ]
}
