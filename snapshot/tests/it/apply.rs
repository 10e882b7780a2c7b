//! Layer apply: every entry type, compression, whiteouts in both modes, hostile tars.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use cairn_llb::Digest;
use cairn_snapshot::{ApplyError, ApplyOptions, Cancel, Compression, apply_layer};

use crate::support::{E, TarBuilder, need_root, tree};

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    g.write_all(b).unwrap();
    g.finish().unwrap()
}

#[test]
fn applies_every_entry_type_with_metadata() {
    if !need_root("applies_every_entry_type_with_metadata") {
        return;
    }
    let mut t = TarBuilder::new();
    t.entry_with(E::Dir("etc/"), 0o555, 0, 0, 1_000, &[]);
    t.entry_with(
        E::File("etc/passwd", b"root:x:0:0"),
        0o4755,
        1000,
        2000,
        1_234,
        &[("user.note", b"hi")],
    );
    t.entry_with(E::Symlink("etc/link", "passwd"), 0o777, 7, 8, 1_500, &[]);
    t.entry_with(
        E::Hardlink("etc/hard", "etc/passwd"),
        0o644,
        0,
        0,
        1_500,
        &[],
    );
    t.entry_with(E::Fifo("fifo"), 0o600, 0, 0, 1_500, &[]);
    t.entry_with(E::Char("null", 1, 3), 0o666, 0, 0, 1_500, &[]);
    // No dir entry for `deep/er`: parents are created.
    t.entry_with(E::File("deep/er/f", b"x"), 0o644, 0, 0, 1_500, &[]);
    let tar = t.build();
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path();
    let stats = apply_layer(&tar[..], dest, &ApplyOptions::onto_tree()).unwrap();
    assert_eq!(stats.diff_id, Digest::of_bytes(&tar));
    assert_eq!(stats.uncompressed_size, tar.len() as u64);
    assert_eq!(stats.compression, Compression::None);
    let p = std::fs::symlink_metadata(dest.join("etc/passwd")).unwrap();
    assert_eq!(
        (p.mode() & 0o7777, p.uid(), p.gid(), p.mtime()),
        (0o4755, 1000, 2000, 1_234)
    );
    assert_eq!(
        std::fs::read(dest.join("etc/passwd")).unwrap(),
        b"root:x:0:0"
    );
    let mut buf = [0u8; 8];
    let n = rustix::fs::lgetxattr(dest.join("etc/passwd"), "user.note", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"hi");
    let l = std::fs::symlink_metadata(dest.join("etc/link")).unwrap();
    assert_eq!((l.uid(), l.gid(), l.mtime()), (7, 8, 1_500));
    assert_eq!(
        std::fs::read_link(dest.join("etc/link")).unwrap(),
        Path::new("passwd")
    );
    assert_eq!(
        std::fs::metadata(dest.join("etc/hard")).unwrap().ino(),
        p.ino()
    );
    assert!(
        std::fs::symlink_metadata(dest.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let n = std::fs::symlink_metadata(dest.join("null")).unwrap();
    assert!(n.file_type().is_char_device());
    assert_eq!(n.rdev(), rustix::fs::makedev(1, 3));
    // Directory metadata lands after its children were written.
    let etc = std::fs::metadata(dest.join("etc")).unwrap();
    assert_eq!((etc.mode() & 0o7777, etc.mtime()), (0o555, 1_000));
    assert_eq!(std::fs::read(dest.join("deep/er/f")).unwrap(), b"x");
}

#[test]
fn compressed_streams_give_the_same_diff_id() {
    let tar = TarBuilder::new()
        .entry(E::Dir("a/"))
        .entry(E::File("a/b", &b"data".repeat(1000)))
        .build();
    let want = Digest::of_bytes(&tar);
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    for (blob, kind) in [
        (tar.clone(), Compression::None),
        (gzip(&tar), Compression::Gzip),
        (zst, Compression::Zstd),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let s = apply_layer(&blob[..], tmp.path(), &ApplyOptions::onto_tree()).unwrap();
        assert_eq!((s.diff_id.clone(), s.compression), (want.clone(), kind));
        assert_eq!(std::fs::read(tmp.path().join("a/b")).unwrap().len(), 4000);
    }
}

#[test]
fn overlay_mode_writes_overlay_whiteouts() {
    if !need_root("overlay_mode_writes_overlay_whiteouts") {
        return;
    }
    let tar = TarBuilder::new()
        .entry(E::Dir("d/"))
        .entry(E::File("d/.wh..wh..opq", b""))
        .entry(E::File("d/kept", b"k"))
        .entry(E::File(".wh.gone", b""))
        .build();
    let tmp = tempfile::tempdir().unwrap();
    apply_layer(&tar[..], tmp.path(), &ApplyOptions::staged()).unwrap();
    let w = std::fs::symlink_metadata(tmp.path().join("gone")).unwrap();
    assert!(w.file_type().is_char_device() && w.rdev() == 0);
    let mut buf = [0u8; 2];
    let n = rustix::fs::lgetxattr(tmp.path().join("d"), "trusted.overlay.opaque", &mut buf[..])
        .unwrap();
    assert_eq!(&buf[..n], b"y");
    assert!(tmp.path().join("d/kept").exists());
}

#[test]
fn delete_mode_removes_lower_files_and_keeps_this_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let lower = TarBuilder::new()
        .entry(E::Dir("d/"))
        .entry(E::File("d/old", b"o"))
        .entry(E::Dir("d/sub/"))
        .entry(E::File("d/sub/old2", b"o"))
        .entry(E::File("gone", b"g"))
        .entry(E::Dir("gonedir/"))
        .entry(E::File("gonedir/x", b"x"))
        .build();
    apply_layer(&lower[..], d, &ApplyOptions::onto_tree()).unwrap();
    // The opaque marker comes after this layer's own entries, which must survive it.
    let upper = TarBuilder::new()
        .entry(E::Dir("d/"))
        .entry(E::Dir("d/sub/"))
        .entry(E::File("d/sub/new", b"n"))
        .entry(E::File("d/.wh..wh..opq", b""))
        .entry(E::File(".wh.gone", b""))
        .entry(E::File(".wh.gonedir", b""))
        .build();
    apply_layer(&upper[..], d, &ApplyOptions::onto_tree()).unwrap();
    let t = tree(d);
    let names: Vec<&str> = t.keys().map(String::as_str).collect();
    assert_eq!(names, ["d", "d/sub", "d/sub/new"]);
}

#[test]
fn cancellation_stops_between_entries() {
    let tar = TarBuilder::new()
        .entry(E::File("a", b"1"))
        .entry(E::File("b", b"2"))
        .build();
    let tmp = tempfile::tempdir().unwrap();
    let flag = Arc::new(AtomicBool::new(true));
    let opts = ApplyOptions::onto_tree().with_cancel(Cancel::from_flag(flag));
    let err = apply_layer(&tar[..], tmp.path(), &opts).unwrap_err();
    assert!(matches!(err, ApplyError::Cancelled { .. }), "{err}");
    assert!(!tmp.path().join("a").exists());
}

/// Applies `tar` into `<tmp>/dest` and checks that nothing appeared beside `dest`.
fn apply_hostile(tar: &[u8]) -> (Result<(), ApplyError>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(tmp.path().join("secret"), b"s").unwrap();
    let r = apply_layer(tar, &dest, &ApplyOptions::onto_tree()).map(|_| ());
    let outside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside.len(), 2, "wrote outside dest: {outside:?}");
    assert_eq!(std::fs::read(tmp.path().join("secret")).unwrap(), b"s");
    (r, tmp)
}

#[test]
fn refuses_dotdot_names() {
    let tar = TarBuilder::new()
        .entry(E::File("a/../../evil", b"x"))
        .build();
    let (r, _t) = apply_hostile(&tar);
    let e = r.unwrap_err();
    assert!(
        matches!(&e, ApplyError::DotDot { entry } if entry == "a/../../evil"),
        "{e}"
    );
}

#[test]
fn absolute_names_land_inside_dest() {
    let tar = TarBuilder::new()
        .entry(E::File("/etc/inside", b"x"))
        .build();
    let (r, t) = apply_hostile(&tar);
    r.unwrap();
    assert_eq!(
        std::fs::read(t.path().join("dest/etc/inside")).unwrap(),
        b"x"
    );
}

#[test]
fn refuses_writes_through_escaping_symlinks() {
    for target in ["/", "..", "../..", "./../x"] {
        let tar = TarBuilder::new()
            .entry(E::Symlink("link", target))
            .entry(E::File("link/secret", b"pwned"))
            .build();
        let (r, _t) = apply_hostile(&tar);
        let e = r.unwrap_err();
        assert!(
            matches!(&e, ApplyError::Escapes { entry } if entry == "link/secret"),
            "{target}: {e}"
        );
    }
    // A symlink through a missing dir: the kernel resolves `sub/..` only if `sub` exists.
    let tar = TarBuilder::new()
        .entry(E::Symlink("link", "sub/../.."))
        .entry(E::File("link/secret", b"pwned"))
        .build();
    assert!(apply_hostile(&tar).0.is_err());
}

#[test]
fn refuses_a_parent_replaced_by_a_symlink() {
    let tar = TarBuilder::new()
        .entry(E::Dir("d/"))
        .entry(E::File("d/f", b"1"))
        .entry(E::Symlink("d", "/tmp"))
        .entry(E::File("d/f2", b"2"))
        .build();
    let (r, _t) = apply_hostile(&tar);
    assert!(matches!(r.unwrap_err(), ApplyError::Escapes { .. }));
}

#[test]
fn follows_symlinked_parents_that_stay_inside() {
    let tar = TarBuilder::new()
        .entry(E::Dir("usr/lib/"))
        .entry(E::Symlink("lib", "usr/lib"))
        .entry(E::File("lib/libc.so", b"elf"))
        .build();
    let (r, t) = apply_hostile(&tar);
    r.unwrap();
    assert_eq!(
        std::fs::read(t.path().join("dest/usr/lib/libc.so")).unwrap(),
        b"elf"
    );
}

#[test]
fn refuses_escaping_hardlinks() {
    for target in ["../secret", "/../secret", "missing", "a/../../secret"] {
        let tar = TarBuilder::new().entry(E::Hardlink("h", target)).build();
        let (r, _t) = apply_hostile(&tar);
        let e = r.unwrap_err();
        assert!(
            matches!(&e, ApplyError::BadHardlink { entry, .. } if entry == "h"),
            "{target}: {e}"
        );
    }
    // Through a symlinked directory that leads out.
    let tar = TarBuilder::new()
        .entry(E::Symlink("up", ".."))
        .entry(E::Hardlink("h", "up/secret"))
        .build();
    let (r, _t) = apply_hostile(&tar);
    assert!(matches!(r.unwrap_err(), ApplyError::BadHardlink { .. }));
}

#[test]
fn refuses_bad_whiteout_targets() {
    for name in [".wh..", "d/.wh.."] {
        let tar = TarBuilder::new()
            .entry(E::Dir("d/"))
            .entry(E::File(name, b""))
            .build();
        let (r, _t) = apply_hostile(&tar);
        assert!(r.is_err(), "{name}");
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let mut junk = vec![0x1f, 0x8b];
    junk.extend_from_slice(&[0xff; 100]);
    assert!(apply_layer(&junk[..], tmp.path(), &ApplyOptions::onto_tree()).is_err());
    let mut tar = TarBuilder::new().entry(E::File("a", &[7u8; 2000])).build();
    tar.truncate(700);
    assert!(apply_layer(&tar[..], tmp.path(), &ApplyOptions::onto_tree()).is_err());
}

#[test]
fn blank_numeric_fields_read_as_zero() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o640);
    h.set_size(1);
    b.append_data(&mut h, "f", &b"x"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    apply_layer(&tar[..], tmp.path(), &ApplyOptions::onto_tree()).unwrap();
    let m = std::fs::metadata(tmp.path().join("f")).unwrap();
    assert_eq!((m.mode() & 0o777, m.mtime()), (0o640, 0));
}
