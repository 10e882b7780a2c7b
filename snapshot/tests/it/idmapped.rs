//! ID-mapped copies: one contract for both drivers (what a mount of the copy shows, and
//! that it behaves like any committed snapshot), plus the overlay driver's promise that no
//! data is copied.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use cairn_snapshot::{
    AnySnapshotter, ApplyOptions, Compression, IdMap, LayerWriteOptions, OverlaySnapshotter,
    SnapshotError, Snapshotter, apply_layer,
};

use crate::drivers::{add_layer, id};
use crate::support::{E, Entry, TarBuilder, drivers, mounts_under, need_root, owned_tree};

const SHIFT: u32 = 100_000;

/// A base layer with every kind of entry, owners other than root, a hard link, an xattr and
/// setuid; a top layer that modifies, deletes and makes a dir opaque.
fn source_layers() -> (Vec<u8>, Vec<u8>) {
    let mut base = TarBuilder::new();
    base.entry_with(E::Dir("home/"), 0o755, 1000, 1000, 5, &[]);
    base.entry_with(
        E::File("home/f", b"data"),
        0o4750,
        1000,
        50,
        5,
        &[("user.note", b"kept")],
    );
    base.entry_with(E::Hardlink("home/h", "home/f"), 0o4750, 1000, 50, 5, &[]);
    base.entry_with(E::Symlink("home/l", "f"), 0o777, 7, 8, 5, &[]);
    base.entry_with(E::Dir("dev/"), 0o755, 0, 0, 5, &[]);
    base.entry_with(E::Char("dev/null", 1, 3), 0o666, 0, 0, 5, &[]);
    base.entry_with(E::Fifo("dev/pipe"), 0o600, 3, 4, 5, &[]);
    base.entry_with(E::Dir("etc/"), 0o755, 0, 0, 5, &[]);
    base.entry_with(E::File("etc/a", b"a1"), 0o644, 0, 0, 5, &[]);
    base.entry_with(E::File("etc/gone", b"g"), 0o644, 0, 0, 5, &[]);
    base.entry_with(E::Dir("var/"), 0o755, 0, 0, 5, &[]);
    base.entry_with(E::File("var/old", b"o"), 0o644, 0, 0, 5, &[]);
    let mut top = TarBuilder::new();
    top.entry_with(E::Dir("etc/"), 0o755, 0, 0, 6, &[]);
    top.entry_with(E::File("etc/a", b"a2"), 0o640, 2, 2, 6, &[]);
    top.entry_with(E::File("etc/.wh.gone", b""), 0o644, 0, 0, 6, &[]);
    top.entry_with(E::Dir("var/"), 0o755, 0, 0, 6, &[]);
    top.entry_with(E::File("var/.wh..wh..opq", b""), 0o644, 0, 0, 6, &[]);
    top.entry_with(E::File("var/new", b"n"), 0o644, 9, 9, 6, &[]);
    (base.build(), top.build())
}

/// What a committed snapshot shows when mounted, with owners; inode numbers are replaced
/// by the name of the first entry sharing the inode, so trees from different mounts compare.
fn view(sn: &AnySnapshotter, name: &str) -> BTreeMap<String, Entry> {
    let mnt = tempfile::tempdir().unwrap();
    let g = sn.mounts(&id(name)).unwrap().mount_at(mnt.path()).unwrap();
    let t = owned_tree(mnt.path());
    g.unmount().unwrap();
    let mut first: BTreeMap<u64, usize> = BTreeMap::new();
    t.into_iter()
        .enumerate()
        .map(|(i, (k, mut e))| {
            e.ino = *first.entry(e.ino).or_insert(i) as u64;
            (k, e)
        })
        .collect()
}

/// `t` with every owner shifted through `map`.
fn shifted(t: &BTreeMap<String, Entry>, map: &IdMap) -> BTreeMap<String, Entry> {
    t.iter()
        .map(|(k, e)| {
            let mut e = e.clone();
            e.uid = map.map_uid(e.uid).unwrap();
            e.gid = map.map_gid(e.gid).unwrap();
            (k.clone(), e)
        })
        .collect()
}

/// Every (path, uid, gid) in an uncompressed layer tar.
fn tar_owners(blob: &[u8]) -> BTreeMap<String, (u64, u64)> {
    let mut a = tar::Archive::new(blob);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let p = e
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_owned();
            (p, (e.header().uid().unwrap(), e.header().gid().unwrap()))
        })
        .collect()
}

fn write_diff(sn: &AnySnapshotter, lower: Option<&str>, upper: &str) -> Vec<u8> {
    let mut blob = Vec::new();
    let opts = LayerWriteOptions {
        compression: Compression::None,
        ..Default::default()
    };
    sn.write_diff(lower.map(id).as_ref(), &id(upper), &mut blob, &opts)
        .unwrap();
    blob
}

#[test]
fn idmapped_copy_contract_in_both_drivers() {
    if !need_root("idmapped_copy_contract_in_both_drivers") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let map = IdMap::shift(SHIFT, 65_536);
    let (base, top) = source_layers();
    let mut seen = BTreeMap::new();
    for (name, sn) in drivers(tmp.path()) {
        add_layer(&sn, &base, "base", None);
        add_layer(&sn, &top, "src", Some("base"));
        let before = view(&sn, "src");
        assert!(!before.contains_key("etc/gone") && !before.contains_key("var/old"));
        sn.idmapped_copy(&id("shifted"), &id("src"), &map).unwrap();

        // Every entry shifted, nothing else changed; the hard link is still one inode.
        let after = view(&sn, "shifted");
        assert_eq!(after, shifted(&before, &map), "{name}");
        assert_eq!(after["home/h"].ino, after["home/f"].ino, "{name}");
        assert_eq!(after["home/f"].mode & 0o7777, 0o4750, "{name}");
        assert_eq!(view(&sn, "src"), before, "{name}: the source changed");
        let parent = sn.stat(&id("shifted")).unwrap().parent;
        let expect = (name == "overlay").then(|| id("src"));
        assert_eq!(parent, expect, "{name}");

        // A writable child: the root belongs to the shifted root, copy-up keeps shifted
        // owners, and the committed layer exports them.
        let mnt = tempfile::tempdir().unwrap();
        let g = sn
            .prepare(&id("rw"), Some(&id("shifted")))
            .unwrap()
            .mount_at(mnt.path())
            .unwrap();
        let root = std::fs::metadata(mnt.path()).unwrap();
        assert_eq!((root.uid(), root.gid()), (SHIFT, SHIFT), "{name}");
        let xattr = xattr_of(&mnt.path().join("home/f"));
        assert_eq!(xattr.as_deref(), Some(&b"kept"[..]), "{name}");
        std::fs::write(mnt.path().join("etc/a"), b"a3").unwrap();
        std::fs::remove_file(mnt.path().join("home/l")).unwrap();
        g.unmount().unwrap();
        sn.commit(&id("child"), &id("rw")).unwrap();
        let child = view(&sn, "child");
        assert_eq!(child["etc/a"].desc, "file:a3", "{name}");
        assert_eq!(
            (child["etc/a"].uid, child["etc/a"].gid),
            (SHIFT + 2, SHIFT + 2)
        );
        assert!(!child.contains_key("home/l"), "{name}");
        let changes: Vec<_> = sn
            .diff(Some(&id("shifted")), &id("child"))
            .unwrap()
            .into_iter()
            .map(|c| c.path.to_string_lossy().into_owned())
            .collect();
        // The overlay lists the copied-up parent dirs too; the copy driver only changed ones.
        assert!(changes.contains(&"etc/a".into()) && changes.contains(&"home/l".into()));
        assert!(
            changes
                .iter()
                .all(|c| ["etc", "etc/a", "home", "home/l"].contains(&c.as_str())),
            "{name}: {changes:?}"
        );
        let layer = tar_owners(&write_diff(&sn, Some("shifted"), "child"));
        assert_eq!(layer["etc/a"], (u64::from(SHIFT) + 2, u64::from(SHIFT) + 2));

        // The full export carries the shifted owners and applies back to the same tree.
        let blob = write_diff(&sn, None, "shifted");
        for (path, owner) in tar_owners(&blob) {
            let e = &after[path.trim_start_matches("./")];
            assert_eq!(owner, (u64::from(e.uid), u64::from(e.gid)), "{name} {path}");
        }
        let staged = sn.stage_layer().unwrap();
        apply_layer(&blob[..], &staged.path(), &ApplyOptions::staged()).unwrap();
        sn.commit_staged(staged, &id("reimported"), None).unwrap();
        let back = view(&sn, "reimported");
        assert_eq!(without_root(&back), without_root(&after), "{name}");

        // It merges like any snapshot, and a copy of a copy composes the maps.
        sn.merge(&id("merged"), &[id("shifted")]).unwrap();
        // (The copy driver's merges make their own root dir, with or without id maps.)
        let merged = view(&sn, "merged");
        assert_eq!(without_root(&merged), without_root(&after), "{name}");
        let outer = IdMap::shift(1_000_000, 200_000);
        sn.idmapped_copy(&id("twice"), &id("shifted"), &outer)
            .unwrap();
        let twice = view(&sn, "twice");
        assert_eq!(twice, shifted(&after, &outer), "{name}");
        assert_eq!(twice["home/f"].uid, 1_101_000);

        // An owner outside the map fails, naming it, and creates nothing.
        let small = IdMap::shift(SHIFT, 10);
        assert!(matches!(
            sn.idmapped_copy(&id("bad"), &id("src"), &small),
            Err(SnapshotError::Unmapped { id: 1000, .. })
        ));
        assert!(matches!(
            sn.stat(&id("bad")),
            Err(SnapshotError::NotFound(_))
        ));
        seen.insert(name, (after, child, twice));
    }

    // After a restart the same snapshots show the same trees; then they can be removed.
    for (name, sn) in drivers(tmp.path()) {
        let (after, child, twice) = &seen[name];
        assert_eq!(&view(&sn, "shifted"), after, "{name}");
        assert_eq!(&view(&sn, "child"), child, "{name}");
        assert_eq!(&view(&sn, "twice"), twice, "{name}");
        for r in ["merged", "reimported", "child", "twice", "shifted"] {
            sn.remove(&id(r)).unwrap();
        }
        assert_eq!(sn.list().unwrap(), vec![id("base"), id("src")], "{name}");
        assert_eq!(view(&sn, "src").len(), after.len(), "{name}");
    }
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}

/// A staged layer's or a copy-driver merge's root dir is its own, not its source's:
/// compare the rest.
fn without_root(t: &BTreeMap<String, Entry>) -> BTreeMap<String, Entry> {
    let mut t = t.clone();
    t.remove("");
    t
}

fn xattr_of(p: &Path) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64];
    let n = rustix::fs::lgetxattr(p, "user.note", &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Bytes in use under `root` (st_blocks, hard links once), as `du` counts them.
fn du(root: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap().metadata().unwrap())
        .filter(|md| seen.insert((md.dev(), md.ino())))
        .map(|md| md.blocks() * 512)
        .sum()
}

#[test]
fn overlay_idmapped_copy_writes_no_data() {
    if !need_root("overlay_idmapped_copy_writes_no_data") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sn = AnySnapshotter::Overlay(OverlaySnapshotter::open(tmp.path()).unwrap());
    const BIG: usize = 64 << 20;
    let data: Vec<u8> = (0..BIG)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
        .collect();
    let mut t = TarBuilder::new();
    t.entry_with(E::File("big", &data), 0o644, 5, 5, 5, &[]);
    add_layer(&sn, &t.build(), "base", None);
    add_layer(
        &sn,
        &TarBuilder::new().entry(E::File("small", b"s")).build(),
        "src",
        Some("base"),
    );
    let before = du(tmp.path());
    sn.idmapped_copy(&id("shifted"), &id("src"), &IdMap::shift(SHIFT, 65_536))
        .unwrap();
    let grown = du(tmp.path()) - before;
    assert!(grown < 64 << 10, "the store grew by {grown} bytes");
    let own = sn.usage(&id("shifted")).unwrap();
    assert!(own.bytes < 64 << 10 && own.inodes <= 1, "{own:?}");
    assert_eq!(
        sn.stat(&id("shifted")).unwrap().layers,
        [id("base"), id("src")]
    );

    // The mount shows the source's own inode, shifted, with all its data.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ga = sn.mounts(&id("src")).unwrap().mount_at(a.path()).unwrap();
    let gb = sn
        .mounts(&id("shifted"))
        .unwrap()
        .mount_at(b.path())
        .unwrap();
    let (ma, mb) = (
        std::fs::metadata(a.path().join("big")).unwrap(),
        std::fs::metadata(b.path().join("big")).unwrap(),
    );
    assert_eq!(ma.ino(), mb.ino());
    assert_eq!((ma.uid(), mb.uid(), mb.gid()), (5, SHIFT + 5, SHIFT + 5));
    assert!(mb.blocks() * 512 >= BIG as u64);
    let mut read = Vec::with_capacity(BIG);
    std::fs::File::open(b.path().join("big"))
        .unwrap()
        .read_to_end(&mut read)
        .unwrap();
    assert!(read == data, "contents differ");
    // No `mount(2)` option string can express ID-mapped lowers.
    assert!(sn.mounts(&id("shifted")).unwrap().oci_mount().is_none());
    gb.unmount().unwrap();
    ga.unmount().unwrap();
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}

/// Past the kernel's lower limit a child of an ID-mapped copy is flattened; the flat layer
/// is read through ID-mapped mounts, so it keeps the shifted owners.
#[test]
fn flattening_an_idmapped_stack_keeps_shifted_owners() {
    if !need_root("flattening_an_idmapped_stack_keeps_shifted_owners") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sn = AnySnapshotter::Overlay(
        OverlaySnapshotter::open(tmp.path())
            .unwrap()
            .with_max_lowers(2),
    );
    let mut t = TarBuilder::new();
    t.entry_with(E::File("a", b"a"), 0o644, 1, 1, 5, &[]);
    add_layer(&sn, &t.build(), "l0", None);
    let mut t = TarBuilder::new();
    t.entry_with(E::File("b", b"b"), 0o644, 2, 2, 5, &[]);
    t.entry_with(E::File(".wh.a", b""), 0o644, 0, 0, 5, &[]);
    add_layer(&sn, &t.build(), "l1", Some("l0"));
    sn.idmapped_copy(&id("s"), &id("l1"), &IdMap::shift(SHIFT, 65_536))
        .unwrap();
    add_layer(
        &sn,
        &TarBuilder::new().entry(E::File("c", b"c")).build(),
        "top",
        Some("s"),
    );
    assert_eq!(sn.stat(&id("top")).unwrap().layers.len(), 2);
    let v = view(&sn, "top");
    assert_eq!(v.keys().collect::<Vec<_>>(), ["", "b", "c"]);
    assert_eq!((v["b"].uid, v["c"].uid), (SHIFT + 2, 0));
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}

/// A map the kernel refuses (overlapping ranges) cannot be an ID-mapped mount: the overlay
/// driver falls back to a full copy as one plain layer, with the same owners the copy
/// driver gives (the first range that covers an id wins).
#[test]
fn a_map_the_kernel_refuses_falls_back_to_a_full_copy() {
    if !need_root("a_map_the_kernel_refuses_falls_back_to_a_full_copy") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut map = IdMap::shift(SHIFT, 65_536);
    map.uids.push(cairn_snapshot::IdMapping {
        container: 0,
        host: 300_000,
        size: 10,
    });
    let (base, top) = source_layers();
    for (name, sn) in drivers(tmp.path()) {
        add_layer(&sn, &base, "base", None);
        add_layer(&sn, &top, "src", Some("base"));
        sn.idmapped_copy(&id("shifted"), &id("src"), &map).unwrap();
        let info = sn.stat(&id("shifted")).unwrap();
        assert_eq!(info.parent, None, "{name}");
        assert!(info.layers.len() <= 1, "{name}: {:?}", info.layers);
        assert_eq!(
            view(&sn, "shifted"),
            shifted(&view(&sn, "src"), &map),
            "{name}"
        );
    }
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}
