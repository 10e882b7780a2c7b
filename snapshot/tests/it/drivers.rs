//! Both drivers through the `Snapshotter` trait, with real mounts.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_snapshot::{
    AnySnapshotter, ApplyOptions, Change, ChangeKind, Compression, DriverChoice, LayerWriteOptions,
    OverlaySnapshotter, SnapshotError, SnapshotId, SnapshotKind, Snapshotter, apply_layer, probe,
};

use crate::support::{E, TarBuilder, drivers, mounts_under, need_root, tree};

pub fn id(s: &str) -> SnapshotId {
    SnapshotId::new(s).unwrap()
}

/// Stages `tar` and commits it as `name` on `parent`.
pub fn add_layer(sn: &AnySnapshotter, tar: &[u8], name: &str, parent: Option<&str>) {
    let staged = sn.stage_layer().unwrap();
    apply_layer(tar, &staged.path(), &ApplyOptions::staged()).unwrap();
    sn.commit_staged(staged, &id(name), parent.map(id).as_ref())
        .unwrap();
}

/// The files a committed snapshot shows when mounted.
pub fn view_tree(sn: &AnySnapshotter, name: &str) -> BTreeMap<String, String> {
    let mnt = tempfile::tempdir().unwrap();
    let g = sn.mounts(&id(name)).unwrap().mount_at(mnt.path()).unwrap();
    let t = tree(mnt.path());
    g.unmount().unwrap();
    t
}

fn names(t: &BTreeMap<String, String>) -> Vec<&str> {
    t.keys().map(String::as_str).collect()
}

fn base_and_top() -> (Vec<u8>, Vec<u8>) {
    let base = TarBuilder::new()
        .entry(E::Dir("etc/"))
        .entry(E::File("etc/a", b"a1"))
        .entry(E::File("etc/b", b"b1"))
        .entry(E::Dir("var/"))
        .entry(E::File("var/old", b"o"))
        .build();
    let top = TarBuilder::new()
        .entry(E::Dir("etc/"))
        .entry(E::File("etc/a", b"a2"))
        .entry(E::File("etc/.wh.b", b""))
        .entry(E::Dir("var/"))
        .entry(E::File("var/.wh..wh..opq", b""))
        .entry(E::File("var/new", b"n"))
        .build();
    (base, top)
}

#[test]
fn staged_layers_stack_with_whiteouts_in_both_drivers() {
    if !need_root("staged_layers_stack_with_whiteouts_in_both_drivers") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (base, top) = base_and_top();
    for (name, sn) in drivers(tmp.path()) {
        add_layer(&sn, &base, "base", None);
        add_layer(&sn, &top, "top", Some("base"));
        let t = view_tree(&sn, "top");
        assert_eq!(names(&t), ["etc", "etc/a", "var", "var/new"], "{name}");
        assert_eq!(t["etc/a"], "file:a2", "{name}");
        let info = sn.stat(&id("top")).unwrap();
        assert_eq!(
            (info.kind, info.parent.clone()),
            (SnapshotKind::Committed, Some(id("base")))
        );
        assert!(matches!(
            sn.commit_staged(sn.stage_layer().unwrap(), &id("top"), None),
            Err(SnapshotError::Exists(_))
        ));
        assert!(sn.usage(&id("top")).unwrap().inodes >= 1);
    }
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}

#[test]
fn prepare_write_commit_and_diff_round_trip() {
    if !need_root("prepare_write_commit_and_diff_round_trip") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (base, _) = base_and_top();
    for (name, sn) in drivers(tmp.path()) {
        add_layer(&sn, &base, "base", None);
        let mnt = tempfile::tempdir().unwrap();
        let g = sn
            .prepare(&id("work"), Some(&id("base")))
            .unwrap()
            .mount_at(mnt.path())
            .unwrap();
        std::fs::write(mnt.path().join("etc/a"), b"changed").unwrap();
        std::fs::remove_file(mnt.path().join("etc/b")).unwrap();
        std::fs::remove_dir_all(mnt.path().join("var")).unwrap();
        std::fs::create_dir(mnt.path().join("var")).unwrap();
        std::fs::write(mnt.path().join("var/fresh"), b"f").unwrap();
        g.unmount().unwrap();
        sn.commit(&id("run"), &id("work")).unwrap();
        assert!(matches!(
            sn.stat(&id("work")),
            Err(SnapshotError::NotFound(_))
        ));

        let changes = sn.diff(Some(&id("base")), &id("run")).unwrap();
        let has = |p: &str, k: ChangeKind| {
            changes.contains(&Change {
                path: p.into(),
                kind: k,
            })
        };
        assert!(has("etc/b", ChangeKind::Deleted), "{name}: {changes:?}");
        assert!(
            changes.iter().any(|c| c.path == Path::new("etc/a")),
            "{name}: {changes:?}"
        );
        // var was deleted and recreated: either an opaque dir or a deleted child.
        assert!(
            has("var", ChangeKind::Opaque) || has("var/old", ChangeKind::Deleted),
            "{name}: {changes:?}"
        );

        // diff → tar → apply on base reproduces the upper snapshot.
        for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let mut blob = Vec::new();
            let opts = LayerWriteOptions {
                compression,
                ..Default::default()
            };
            let desc = sn
                .write_diff(Some(&id("base")), &id("run"), &mut blob, &opts)
                .unwrap();
            assert_eq!(desc.digest, cairn_llb::Digest::of_bytes(&blob));
            assert_eq!(desc.size, blob.len() as u64);
            let again = format!("again-{compression:?}").to_lowercase();
            let staged = sn.stage_layer().unwrap();
            let st = apply_layer(&blob[..], &staged.path(), &ApplyOptions::staged()).unwrap();
            assert_eq!(st.diff_id, desc.diff_id, "{name}");
            sn.commit_staged(staged, &id(&again), Some(&id("base")))
                .unwrap();
            assert_eq!(
                view_tree(&sn, &again),
                view_tree(&sn, "run"),
                "{name} {compression:?}"
            );
        }
        // The same diff written twice is byte-identical.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        sn.write_diff(
            Some(&id("base")),
            &id("run"),
            &mut a,
            &LayerWriteOptions::default(),
        )
        .unwrap();
        sn.write_diff(
            Some(&id("base")),
            &id("run"),
            &mut b,
            &LayerWriteOptions::default(),
        )
        .unwrap();
        assert_eq!(a, b);
    }
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}

/// moby/buildkit#2335: a merge whose input is itself a merge with a layer on top that
/// deletes a file from the inner merge's inputs.
#[test]
fn nested_merge_honours_deletions_of_inputs_with_layers_on_top() {
    if !need_root("nested_merge_honours_deletions_of_inputs_with_layers_on_top") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for (name, sn) in drivers(tmp.path()) {
        add_layer(
            &sn,
            &TarBuilder::new()
                .entry(E::File("a", b"a"))
                .entry(E::File("shared", b"1"))
                .build(),
            "A",
            None,
        );
        add_layer(
            &sn,
            &TarBuilder::new().entry(E::File("b", b"b")).build(),
            "B",
            None,
        );
        sn.merge(&id("AB"), &[id("A"), id("B")]).unwrap();
        add_layer(
            &sn,
            &TarBuilder::new()
                .entry(E::File(".wh.a", b""))
                .entry(E::File("c", b"c"))
                .build(),
            "ABc",
            Some("AB"),
        );
        add_layer(
            &sn,
            &TarBuilder::new()
                .entry(E::File("a", b"from-D"))
                .entry(E::File("d", b"d"))
                .build(),
            "D",
            None,
        );
        // D brings `a` back; ABc's deletion of `a` comes after and wins.
        sn.merge(&id("M"), &[id("D"), id("ABc")]).unwrap();
        let t = view_tree(&sn, "M");
        assert_eq!(names(&t), ["b", "c", "d", "shared"], "{name}");
        // The other order: D's `a` wins.
        sn.merge(&id("M2"), &[id("ABc"), id("D")]).unwrap();
        assert_eq!(view_tree(&sn, "M2")["a"], "file:from-D", "{name}");
        // Merging an input with itself is the input (overlay refuses a dir twice).
        sn.merge(&id("AA"), &[id("A"), id("A")]).unwrap();
        assert_eq!(view_tree(&sn, "AA"), view_tree(&sn, "A"), "{name}");
    }
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}

#[test]
fn deep_overlay_stacks_are_flattened() {
    if !need_root("deep_overlay_stacks_are_flattened") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sn = AnySnapshotter::Overlay(
        OverlaySnapshotter::open(tmp.path())
            .unwrap()
            .with_max_lowers(4),
    );
    let mut parent: Option<String> = None;
    for i in 0..9 {
        let name = format!("l{i}");
        let mut t = TarBuilder::new().entry(E::File(&format!("f{i}"), b"x"));
        if i > 0 {
            let prev = format!(".wh.f{}", i - 1);
            t = t.entry(E::File(&prev, b""));
        }
        add_layer(&sn, &t.build(), &name, parent.as_deref());
        let info = sn.stat(&id(&name)).unwrap();
        assert!(info.layers.len() <= 4, "{name}: {:?}", info.layers);
        parent = Some(name);
    }
    assert_eq!(names(&view_tree(&sn, "l8")), ["f8"]);
    // The hidden flat layers belong to their bases: a sweep of snapshots no record names
    // must not see them (children mount them), and they go with their base.
    let listed = sn.list().unwrap();
    assert!(
        tmp.path().join("snapshots/l3.flat").exists()
            && listed.iter().all(|s| !s.as_str().ends_with(".flat")),
        "{listed:?}"
    );
    // A merge deeper than the limit becomes one hard-linked layer.
    sn.merge(&id("m"), &[id("l3"), id("l8")]).unwrap();
    assert_eq!(sn.stat(&id("m")).unwrap().layers, vec![id("m")]);
    assert_eq!(names(&view_tree(&sn, "m")), ["f8"]);
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}

#[test]
fn probe_picks_overlay_here_and_honours_the_override() {
    if !need_root("probe_picks_overlay_here_and_honours_the_override") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (sn, why) = probe(tmp.path(), DriverChoice::Auto).unwrap();
    assert_eq!(sn.name(), "overlayfs", "{why}");
    let (sn, _) = probe(&tmp.path().join("c"), DriverChoice::Copy).unwrap();
    assert_eq!(sn.name(), "native");
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}

#[test]
fn views_are_read_only_and_remove_frees_the_id() {
    if !need_root("views_are_read_only_and_remove_frees_the_id") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (base, _) = base_and_top();
    for (name, sn) in drivers(tmp.path()) {
        add_layer(&sn, &base, "base", None);
        let m = sn.view(&id("v"), Some(&id("base"))).unwrap();
        assert!(m.readonly());
        let mnt = tempfile::tempdir().unwrap();
        let g = m.mount_at(mnt.path()).unwrap();
        assert!(
            std::fs::write(mnt.path().join("x"), b"x").is_err(),
            "{name}"
        );
        assert_eq!(tree(mnt.path())["etc/a"], "file:a1");
        g.unmount().unwrap();
        assert!(matches!(
            sn.commit(&id("nope"), &id("v")),
            Err(SnapshotError::WrongKind { .. })
        ));
        sn.remove(&id("v")).unwrap();
        assert!(sn.view(&id("v"), None).is_ok());
        assert_eq!(sn.list().unwrap(), vec![id("base"), id("v")]);
    }
}

/// 120 layers whose `lowerdir=` string would be ~10 KB, beyond `mount(2)`'s one page:
/// mounted through `fsconfig(lowerdir+)` one layer at a time.
#[test]
fn long_stacks_mount_beyond_the_page_size_option_limit() {
    if !need_root("long_stacks_mount_beyond_the_page_size_option_limit") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let deep = tmp
        .path()
        .join("a-rather-long-state-directory-name-to-make-paths-long");
    let sn = AnySnapshotter::Overlay(OverlaySnapshotter::open(&deep).unwrap());
    let mut parent: Option<String> = None;
    for i in 0..120 {
        let name = format!("layer-with-a-long-identifier-{i:04}");
        add_layer(
            &sn,
            &TarBuilder::new()
                .entry(E::File(&format!("f{i}"), b"x"))
                .build(),
            &name,
            parent.as_deref(),
        );
        parent = Some(name);
    }
    let top = parent.unwrap();
    let m = sn.mounts(&id(&top)).unwrap();
    let (_, _, opts) = m.oci_mount().unwrap();
    assert!(opts[0].len() > 4096, "{}", opts[0].len());
    assert_eq!(view_tree(&sn, &top).len(), 120);
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_cancelled_staged_apply_leaves_nothing_behind() {
    if !need_root("a_cancelled_staged_apply_leaves_nothing_behind") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for (name, sn) in drivers(tmp.path()) {
        let staged = sn.stage_layer().unwrap();
        let tar = TarBuilder::new()
            .entry(E::File("a", b"1"))
            .entry(E::File("b", b"2"))
            .entry(E::File("c", b"3"))
            .build();
        // Cancel after the first entry was looked at.
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let cancel = cairn_snapshot::Cancel::from_fn(move || {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 1
        });
        let err = apply_layer(
            &tar[..],
            &staged.path(),
            &ApplyOptions::staged().with_cancel(cancel),
        )
        .unwrap_err();
        assert!(
            matches!(err, cairn_snapshot::ApplyError::Cancelled { .. }),
            "{name}: {err}"
        );
        assert!(staged.path().join("a").exists() && !staged.path().join("c").exists());
        drop(staged);
        let root = sn.root().join("staging");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "{name}");
        assert!(sn.list().unwrap().is_empty());
    }
}

#[test]
fn usage_counts_hard_links_once() {
    if !need_root("usage_counts_hard_links_once") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sn = AnySnapshotter::Overlay(OverlaySnapshotter::open(tmp.path()).unwrap());
    let data = vec![7u8; 64 * 1024];
    let tar = TarBuilder::new()
        .entry(E::File("big", &data))
        .entry(E::Hardlink("big2", "big"))
        .build();
    add_layer(&sn, &tar, "l", None);
    let u = sn.usage(&id("l")).unwrap();
    // The layer dir itself and one file: the second name is the same inode.
    assert_eq!(u.inodes, 2);
    assert!(u.bytes >= 64 * 1024 && u.bytes < 2 * 64 * 1024, "{u:?}");
}
