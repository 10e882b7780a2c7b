//! Peer benchmark, printed with ratios (no assertions): run as root with
//! `cargo bench -p cairn-snapshot --bench snapshot_bench`. Set `CAIRN_BENCH_DIR` to a
//! directory on the file system to measure (ideally a loop-mounted ext4 without `discard`).
//!
//! 1. Parallel staged extraction of N layers (one thread each) vs sequential GNU `tar -x`.
//! 2. Hard-link merge of those layers vs `cp -a` and `cp -al` of the same trees.
//! 3. Diff of two 5,000-file trees vs `find` walking both.
//! 4. ID-mapped copy of the N-layer stack vs `cp -a` of the same trees, and what a mount of
//!    the copy costs against a mount of its source (ID-mapped lowers need a user namespace).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_snapshot::{
    AnySnapshotter, ApplyOptions, IdMap, OverlaySnapshotter, SnapshotId, Snapshotter, apply_layer,
    diff_dirs,
};

const LAYERS: usize = 4;
const FILES_PER_LAYER: usize = 3_000;

fn sync_and_drop() {
    rustix::fs::sync();
}

fn time(f: impl FnOnce()) -> Duration {
    sync_and_drop();
    let t = Instant::now();
    f();
    t.elapsed()
}

fn run(cmd: &mut Command) {
    let st = cmd.status().expect("spawn");
    assert!(st.success(), "{:?} failed", cmd.get_program());
}

/// A layer tar with `n` files of mixed sizes (mostly small, some 64 KiB) in 50 dirs.
fn make_layer(i: usize, n: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut seed = (i as u64 + 1) * 0x9e37_79b9_7f4a_7c15;
    for d in 0..50 {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, format!("l{i}/d{d:02}/"), std::io::empty())
            .unwrap();
    }
    for f in 0..n {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let size = if seed.is_multiple_of(10) {
            64 * 1024
        } else {
            (seed % 4096) as usize
        };
        let data: Vec<u8> = (0..size).map(|k| (k as u64 ^ seed) as u8).collect();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(size as u64);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, format!("l{i}/d{:02}/f{f:05}", f % 50), &data[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

fn ratio(name: &str, ours: Duration, peer_name: &str, peer: Duration) {
    println!(
        "{name:<44} cairn {:>8.1} ms   {peer_name:<10} {:>8.1} ms   ratio {:.2}x {}",
        ours.as_secs_f64() * 1e3,
        peer.as_secs_f64() * 1e3,
        peer.as_secs_f64() / ours.as_secs_f64(),
        if ours < peer {
            "(cairn faster)"
        } else {
            "(peer faster)"
        }
    );
}

fn main() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("snapshot_bench needs root (overlay, device nodes); nothing measured");
        return;
    }
    let base = std::env::var_os("CAIRN_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::tempdir_in(&base).unwrap();
    let root = tmp.path();
    println!(
        "cairn-snapshot bench in {} ({LAYERS} layers x {FILES_PER_LAYER} files)",
        base.display()
    );

    let tars: Vec<PathBuf> = (0..LAYERS)
        .map(|i| {
            let p = root.join(format!("layer{i}.tar"));
            std::fs::write(&p, make_layer(i, FILES_PER_LAYER)).unwrap();
            p
        })
        .collect();
    let total: u64 = tars
        .iter()
        .map(|t| std::fs::metadata(t).unwrap().len())
        .sum();
    println!(
        "layer tars: {:.1} MiB uncompressed",
        total as f64 / 1048576.0
    );

    // 1. Extraction: the file work alone, then with each side made durable (GNU tar has no
    // fsync, so `sync` after it; cairn's commit is syncfs + rename per layer).
    let gnu = root.join("gnu");
    std::fs::create_dir(&gnu).unwrap();
    let tar_x = |dest: &std::path::Path| {
        std::fs::create_dir(dest).unwrap();
        for (i, t) in tars.iter().enumerate() {
            let d = dest.join(format!("{i}"));
            std::fs::create_dir(&d).unwrap();
            run(Command::new("tar").arg("-xf").arg(t).arg("-C").arg(&d));
        }
    };
    let peer = time(|| tar_x(&gnu.join("a")));
    let peer_durable = time(|| {
        tar_x(&gnu.join("b"));
        rustix::fs::sync();
    });
    let sn = AnySnapshotter::Overlay(
        OverlaySnapshotter::open(&root.join("state"))
            .unwrap()
            .with_max_lowers(2),
    );
    let mut staged = Vec::new();
    let ours = time(|| {
        std::thread::scope(|s| {
            let handles: Vec<_> = tars
                .iter()
                .map(|t| {
                    let sn = &sn;
                    s.spawn(move || {
                        let staged = sn.stage_layer().unwrap();
                        let f = std::fs::File::open(t).unwrap();
                        apply_layer(f, &staged.path(), &ApplyOptions::staged()).unwrap();
                        staged
                    })
                })
                .collect();
            staged = handles.into_iter().map(|h| h.join().unwrap()).collect();
        })
    });
    let commit = time(|| {
        for (i, st) in staged.drain(..).enumerate() {
            sn.commit_staged(st, &SnapshotId::new(format!("l{i}")).unwrap(), None)
                .unwrap();
        }
    });
    ratio(
        "extract: parallel apply_layer vs tar -x",
        ours,
        "tar -x",
        peer,
    );
    ratio(
        "extract + durable commit vs tar -x + sync",
        ours + commit,
        "tar+sync",
        peer_durable,
    );
    let ours_seq = time(|| {
        for (i, t) in tars.iter().enumerate() {
            let d = root.join(format!("seq{i}"));
            std::fs::create_dir(&d).unwrap();
            apply_layer(std::fs::File::open(t).unwrap(), &d, &ApplyOptions::staged()).unwrap();
        }
    });
    ratio(
        "extract: sequential apply_layer vs tar -x",
        ours_seq,
        "tar -x",
        peer,
    );

    // 2. Merge: hard links (4 inputs > max_lowers 2, so a real hard-link merge).
    let inputs: Vec<SnapshotId> = (0..LAYERS)
        .map(|i| SnapshotId::new(format!("l{i}")).unwrap())
        .collect();
    let ours = time(|| {
        sn.merge(&SnapshotId::new("merged").unwrap(), &inputs)
            .unwrap()
    });
    let cp_dest = root.join("cpa");
    std::fs::create_dir(&cp_dest).unwrap();
    let srcs: Vec<PathBuf> = (0..LAYERS).map(|i| gnu.join(format!("a/{i}/."))).collect();
    let cpa = time(|| run(Command::new("cp").arg("-a").args(&srcs).arg(&cp_dest)));
    let cpal_dest = root.join("cpal");
    std::fs::create_dir(&cpal_dest).unwrap();
    let cpal = time(|| run(Command::new("cp").arg("-al").args(&srcs).arg(&cpal_dest)));
    ratio("merge (hard links vs cp -a)", ours, "cp -a", cpa);
    ratio("merge (hard links vs cp -al)", ours, "cp -al", cpal);

    // 3. Diff of two 5,000-file trees (a copy with 1% of files changed) vs find over both.
    let a = root.join("tree-a");
    let b = root.join("tree-b");
    for t in [&a, &b] {
        std::fs::create_dir(t).unwrap();
        for d in 0..50 {
            std::fs::create_dir(t.join(format!("d{d:02}"))).unwrap();
        }
    }
    for f in 0..5_000u32 {
        let rel = format!("d{:02}/f{f:05}", f % 50);
        std::fs::write(a.join(&rel), f.to_string()).unwrap();
        let bytes = if f.is_multiple_of(100) {
            format!("changed {f}")
        } else {
            f.to_string()
        };
        std::fs::write(b.join(&rel), bytes).unwrap();
    }
    // Same mtimes except for the changed files, as in a real copy-on-write snapshot.
    let same = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_700_000_000,
            tv_nsec: 123,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_700_000_000,
            tv_nsec: 123,
        },
    };
    for f in (0..5_000u32).filter(|f| !f.is_multiple_of(100)) {
        let rel = format!("d{:02}/f{f:05}", f % 50);
        for t in [&a, &b] {
            rustix::fs::utimensat(
                rustix::fs::CWD,
                t.join(&rel),
                &same,
                rustix::fs::AtFlags::empty(),
            )
            .unwrap();
        }
    }
    let mut n = 0;
    let ours = time(|| n = diff_dirs(Some(&a), &b).unwrap().len());
    let find = time(|| {
        run(Command::new("find")
            .arg(&a)
            .arg(&b)
            .stdout(std::process::Stdio::null()))
    });
    let find_stat = time(|| {
        run(Command::new("find")
            .arg(&a)
            .arg(&b)
            .args(["-printf", "%s %T@ %m %U %G\n"])
            .stdout(std::process::Stdio::null()))
    });
    ratio(
        &format!("diff 2x5,000 files ({n} changes) vs find"),
        ours,
        "find",
        find,
    );
    ratio(
        "diff vs find -printf (stats every entry)",
        ours,
        "find+stat",
        find_stat,
    );

    // 4. ID-mapped copy of the 4-layer stack (a lowerdir merge: default max_lowers).
    let stacked = OverlaySnapshotter::open(&root.join("state")).unwrap();
    let stack = SnapshotId::new("stack").unwrap();
    stacked.merge(&stack, &inputs).unwrap();
    let shifted = SnapshotId::new("stack-shifted").unwrap();
    let ours = time(|| {
        stacked
            .idmapped_copy(&shifted, &stack, &IdMap::shift(100_000, 65_536))
            .unwrap()
    });
    let cp_dest = root.join("cpa-idmap");
    std::fs::create_dir(&cp_dest).unwrap();
    let cpa = time(|| run(Command::new("cp").arg("-a").args(&srcs).arg(&cp_dest)));
    ratio("idmapped_copy of 4 layers vs cp -a", ours, "cp -a", cpa);
    let mnt = tempfile::tempdir_in(root).unwrap();
    const MOUNTS: u32 = 20;
    let mount_of = |id: &SnapshotId| {
        let m = stacked.mounts(id).unwrap();
        let total = time(|| {
            for _ in 0..MOUNTS {
                m.mount_at(mnt.path()).unwrap().unmount().unwrap();
            }
        });
        total / MOUNTS
    };
    let (plain, mapped) = (mount_of(&stack), mount_of(&shifted));
    ratio(
        "mount+unmount (mean of 20): ID-mapped vs source",
        mapped,
        "source",
        plain,
    );
    drop(sn);
}
