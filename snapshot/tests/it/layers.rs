//! Layer tars written by cairn: deterministic, readable by GNU tar (the reference), PAX for
//! long names and xattrs, mtimes clamped to SOURCE_DATE_EPOCH.

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use cairn_snapshot::{
    ApplyOptions, Compression, LayerWriteOptions, apply_layer, diff_dirs, write_dir_as_layer,
    write_layer,
};

use crate::support::tree;

fn sample_tree(root: &std::path::Path) -> String {
    let long = format!("{}/{}", "d".repeat(80), "f".repeat(90));
    std::fs::create_dir_all(root.join("d".repeat(80))).unwrap();
    std::fs::write(root.join(&long), b"long").unwrap();
    std::fs::create_dir(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/conf"), b"c").unwrap();
    std::fs::hard_link(root.join("etc/conf"), root.join("etc/conf-link")).unwrap();
    std::os::unix::fs::symlink("conf", root.join("etc/sym")).unwrap();
    rustix::fs::lsetxattr(
        root.join("etc/conf"),
        "user.k",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    long
}

#[test]
fn layers_are_deterministic_and_clamped() {
    let src = tempfile::tempdir().unwrap();
    let long = sample_tree(src.path());
    let opts = LayerWriteOptions {
        compression: Compression::Gzip,
        level: Some(1),
        source_date_epoch: Some(1_000),
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let da = write_dir_as_layer(src.path(), &mut a, &opts).unwrap();
    let db = write_dir_as_layer(src.path(), &mut b, &opts).unwrap();
    assert_eq!(a, b);
    assert_eq!(da, db);
    assert_eq!(
        da.media_type(),
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    let dest = tempfile::tempdir().unwrap();
    let st = apply_layer(&a[..], dest.path(), &ApplyOptions::onto_tree()).unwrap();
    assert_eq!(st.diff_id, da.diff_id);
    assert_eq!(tree(dest.path()), tree(src.path()));
    let m = std::fs::symlink_metadata(dest.path().join(&long)).unwrap();
    assert_eq!(m.mtime(), 1_000);
    let c = std::fs::metadata(dest.path().join("etc/conf")).unwrap();
    assert_eq!(
        c.ino(),
        std::fs::metadata(dest.path().join("etc/conf-link"))
            .unwrap()
            .ino()
    );
    let mut buf = [0u8; 4];
    let n = rustix::fs::lgetxattr(dest.path().join("etc/conf"), "user.k", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"v");
}

#[test]
fn gnu_tar_reads_our_layers() {
    if Command::new("tar").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "GNU tar missing and CI=true"
        );
        eprintln!("skipping: no GNU tar");
        return;
    }
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    let mut blob = Vec::new();
    let opts = LayerWriteOptions {
        compression: Compression::None,
        ..Default::default()
    };
    write_dir_as_layer(src.path(), &mut blob, &opts).unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("l.tar"), &blob).unwrap();
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let st = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "-xpf"])
        .arg(work.path().join("l.tar"))
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(tree(&out), tree(src.path()));
    let mut buf = [0u8; 4];
    let n = rustix::fs::lgetxattr(out.join("etc/conf"), "user.k", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"v");
}

/// Editing a file leaves its directory's times alone, so a compared diff holds only the
/// file; the layer must still carry the directory (its mode and owner), or an unpacker puts
/// the file under a directory of its own making wherever the layer lands without one.
#[test]
fn a_compared_diff_carries_the_unchanged_parents_of_what_changed() {
    let lower = tempfile::tempdir().unwrap();
    let upper = tempfile::tempdir().unwrap();
    for root in [lower.path(), upper.path()] {
        std::fs::create_dir_all(root.join("etc/app")).unwrap();
        std::fs::write(root.join("etc/app/conf"), b"old").unwrap();
        std::fs::write(root.join("etc/app/gone"), b"x").unwrap();
        std::fs::set_permissions(
            root.join("etc/app"),
            std::os::unix::fs::PermissionsExt::from_mode(0o750),
        )
        .unwrap();
    }
    std::fs::write(upper.path().join("etc/app/conf"), b"new!").unwrap();
    std::fs::remove_file(upper.path().join("etc/app/gone")).unwrap();
    // The edits moved the directory's times; put them back as an in-place edit leaves them.
    for d in ["etc", "etc/app"] {
        let m = std::fs::metadata(lower.path().join(d)).unwrap();
        let t = rustix::fs::Timespec {
            tv_sec: m.mtime(),
            tv_nsec: m.mtime_nsec() as _,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            upper.path().join(d),
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
    }
    let changes = diff_dirs(Some(lower.path()), upper.path()).unwrap();
    assert!(
        changes.iter().all(|c| c.path.starts_with("etc/app/")),
        "the directories themselves did not change: {changes:?}"
    );

    let mut blob = Vec::new();
    let opts = LayerWriteOptions {
        compression: Compression::None,
        ..Default::default()
    };
    write_layer(&changes, upper.path(), &mut blob, &opts).unwrap();
    let names: Vec<String> = tar::Archive::new(&blob[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        ["etc/", "etc/app/", "etc/app/conf", "etc/app/.wh.gone"],
        "parents first, once each"
    );

    let dest = tempfile::tempdir().unwrap();
    apply_layer(&blob[..], dest.path(), &ApplyOptions::onto_tree()).unwrap();
    let app = std::fs::metadata(dest.path().join("etc/app")).unwrap();
    assert_eq!(app.mode() & 0o7777, 0o750);
    assert_eq!(
        std::fs::read(dest.path().join("etc/app/conf")).unwrap(),
        b"new!"
    );
}
