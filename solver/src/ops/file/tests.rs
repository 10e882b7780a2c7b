//! File actions on real temp directories, against the behaviour BuildKit's file backend
//! and fsutil's copy tests pin down (`copy/copy_test.go`, `solver/llbsolver/file/`).

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink as ln};
use std::path::Path;

use cairn_llb::pb::{
    ChownOpt, FileAction, FileActionCopy, FileActionKind, FileActionMkDir, FileActionMkFile,
    FileActionRm, FileActionSymlink, UserOpt, UserOptKind,
};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use super::*;

/// Tests that chown need root (the test VMs run as root). Without root they skip with a
/// reason, except under `CI=true`, where a skipped test would hide a broken setup.
fn require_root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} needs root to chown (CI=true forbids skipping)"
    );
    eprintln!("skipping {test}: needs root to chown");
    false
}

fn tmp() -> TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn file(root: &Path, p: &str, data: &str, mode: u32) {
    let p = root.join(p);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("parent dirs");
    }
    std::fs::write(&p, data).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn dir(root: &Path, p: &str, mode: u32) {
    let p = root.join(p);
    std::fs::create_dir_all(&p).expect("mkdir");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn read(root: &Path, p: &str) -> String {
    std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("read {p}: {e}"))
}

fn exists(root: &Path, p: &str) -> bool {
    std::fs::symlink_metadata(root.join(p)).is_ok()
}

fn mode_of(root: &Path, p: &str) -> u32 {
    std::fs::symlink_metadata(root.join(p))
        .expect("stat")
        .mode()
        & 0o7777
}

/// Every entry below `root` as `path type mode [content|target]`, sorted: two trees are
/// equal when their listings are.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.expect("walk");
        let rel = e
            .path()
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        let m = std::fs::symlink_metadata(e.path()).expect("stat");
        let extra = if m.is_file() {
            std::fs::read_to_string(e.path()).unwrap_or_default()
        } else if m.file_type().is_symlink() {
            std::fs::read_link(e.path())
                .expect("readlink")
                .to_string_lossy()
                .into_owned()
        } else {
            String::new()
        };
        let kind = if m.is_dir() {
            "d"
        } else if m.file_type().is_symlink() {
            "l"
        } else {
            "f"
        };
        let mode = if m.file_type().is_symlink() {
            0
        } else {
            m.mode() & 0o7777
        };
        out.push(format!("{rel} {kind} {mode:o} {extra}"));
    }
    out
}

fn cp(src: &str, dest: &str) -> FileActionCopy {
    FileActionCopy {
        src: src.into(),
        dest: dest.into(),
        mode: -1,
        timestamp: -1,
        create_dest_path: true,
        ..FileActionCopy::default()
    }
}

fn run_copy(src: &Path, dst: &Path, a: &FileActionCopy) -> Result<(), FileOpError> {
    copy(src, dst, a, None, &CancellationToken::new())
}

#[test]
fn copy_single_file_lands_where_buildkit_puts_it() {
    let t1 = tmp();
    file(t1.path(), "foo.txt", "contents", 0o755);
    let t2 = tmp();
    run_copy(t1.path(), t2.path(), &cp("foo.txt", "/")).expect("copy to /");
    assert_eq!(listing(t1.path()), listing(t2.path()));
    let t3 = tmp();
    run_copy(t1.path(), t3.path(), &cp("foo.txt", "foo2.txt")).expect("rename");
    assert_eq!(read(t3.path(), "foo2.txt"), "contents");
    run_copy(t1.path(), t3.path(), &cp("foo.txt", "a/b/c/foo2.txt")).expect("deep dest");
    assert_eq!(read(t3.path(), "a/b/c/foo2.txt"), "contents");
    assert_eq!(mode_of(t3.path(), "a/b/c"), 0o755);
    // Copying again over an existing file replaces it.
    file(t1.path(), "foo.txt", "new", 0o644);
    run_copy(t1.path(), t3.path(), &cp("foo.txt", "foo2.txt")).expect("overwrite");
    assert_eq!(read(t3.path(), "foo2.txt"), "new");
    assert_eq!(mode_of(t3.path(), "foo2.txt"), 0o644);
    // A trailing slash means "into this directory".
    run_copy(t1.path(), t3.path(), &cp("foo.txt", "newdir/")).expect("into dir");
    assert_eq!(read(t3.path(), "newdir/foo.txt"), "new");
}

#[test]
fn copy_directory_by_name_and_by_contents() {
    let t1 = tmp();
    dir(t1.path(), "foo/bar", 0o755);
    file(t1.path(), "foo/bar/baz.txt", "contents", 0o755);
    let t2 = tmp();
    run_copy(t1.path(), t2.path(), &cp("foo", "foo")).expect("copy dir");
    assert_eq!(listing(t1.path()), listing(t2.path()));
    // Again into the now existing `foo`: without dir-contents it nests.
    run_copy(t1.path(), t2.path(), &cp("foo", "foo")).expect("copy into existing");
    assert!(exists(t2.path(), "foo/foo/bar/baz.txt"));
    let t3 = tmp();
    let mut contents = cp("foo", "foo");
    contents.dir_copy_contents = true;
    run_copy(t1.path(), t3.path(), &contents).expect("contents");
    run_copy(t1.path(), t3.path(), &contents).expect("contents again");
    assert_eq!(listing(t1.path()), listing(t3.path()));
    // `src/.` copies the contents too.
    let t4 = tmp();
    run_copy(t1.path(), t4.path(), &cp("foo/.", "/")).expect("dot");
    assert_eq!(read(t4.path(), "bar/baz.txt"), "contents");
}

#[test]
fn wildcards_need_allow_wildcard_and_can_be_empty() {
    let t1 = tmp();
    file(t1.path(), "foo.txt", "foo-contents", 0o755);
    file(t1.path(), "foo.go", "go-contents", 0o755);
    file(t1.path(), "bar.txt", "bar-contents", 0o755);
    let t2 = tmp();
    let err = run_copy(t1.path(), t2.path(), &cp("foo*", "/")).expect_err("literal name absent");
    assert!(
        matches!(err, FileOpError::NotFound { ref path } if path == "/foo*"),
        "{err}"
    );
    let mut wild = cp("foo*", "/");
    wild.allow_wildcard = true;
    run_copy(t1.path(), t2.path(), &wild).expect("wildcard");
    assert!(exists(t2.path(), "foo.txt") && exists(t2.path(), "foo.go"));
    assert!(!exists(t2.path(), "bar.txt"));
    let t3 = tmp();
    let mut one = cp("bar*", "foo.txt");
    one.allow_wildcard = true;
    run_copy(t1.path(), t3.path(), &one).expect("single match to a file name");
    assert_eq!(read(t3.path(), "foo.txt"), "bar-contents");
    let mut none = cp("nothing*", "/");
    none.allow_wildcard = true;
    let err = run_copy(t1.path(), t3.path(), &none).expect_err("no match");
    assert_eq!(err.to_string(), "/nothing* not found");
    none.allow_empty_wildcard = true;
    run_copy(t1.path(), t3.path(), &none).expect("empty allowed");
}

#[test]
fn existing_destination_dir_keeps_its_metadata_files_are_replaced() {
    if !require_root("existing_destination_dir_keeps_its_metadata_files_are_replaced") {
        return;
    }
    let t1 = tmp();
    dir(t1.path(), "dir", 0o755);
    file(t1.path(), "dir/foo.txt", "foo-contents", 0o644);
    file(t1.path(), "dir/bar.txt", "bar-contents", 0o644);
    let t2 = tmp();
    dir(t2.path(), "dir", 0o700);
    file(t2.path(), "dir/bar.txt", "old-bar-contents", 0o600);
    for x in ["dir", "dir/bar.txt"] {
        std::os::unix::fs::chown(t2.path().join(x), Some(1), Some(1))
            .expect("chown (tests run as root)");
    }
    let mut a = cp("dir", "dir");
    a.dir_copy_contents = true;
    run_copy(t1.path(), t2.path(), &a).expect("copy");
    let st = std::fs::metadata(t2.path().join("dir")).expect("stat");
    assert_eq!((st.mode() & 0o777, st.uid(), st.gid()), (0o700, 1, 1));
    assert!(exists(t2.path(), "dir/foo.txt"));
    let st = std::fs::metadata(t2.path().join("dir/bar.txt")).expect("stat");
    assert_eq!((st.mode() & 0o777, st.uid(), st.gid()), (0o644, 0, 0));
    assert_eq!(read(t2.path(), "dir/bar.txt"), "bar-contents");
}

#[test]
fn symlinks_are_followed_only_when_asked() {
    let t1 = tmp();
    dir(t1.path(), "testdir", 0o755);
    file(t1.path(), "testdir/foo.txt", "foo-contents", 0o644);
    ln("foo.txt", t1.path().join("testdir/link2")).expect("ln");
    ln("/testdir", t1.path().join("link")).expect("ln");
    let t2 = tmp();
    let mut follow = cp("link/link2", "foo");
    follow.follow_symlink = true;
    run_copy(t1.path(), t2.path(), &follow).expect("follow");
    let m = std::fs::symlink_metadata(t2.path().join("foo")).expect("stat");
    assert!(m.is_file());
    assert_eq!(m.mode() & 0o777, 0o644);
    assert_eq!(read(t2.path(), "foo"), "foo-contents");
    let t3 = tmp();
    run_copy(t1.path(), t3.path(), &cp("link/link2", "foo")).expect("no follow");
    assert_eq!(
        std::fs::read_link(t3.path().join("foo"))
            .expect("is a link")
            .to_string_lossy(),
        "foo.txt"
    );
}

#[test]
fn always_replace_existing_dest_paths_matches_fsutil() {
    let dest = tmp();
    let d = dest.path();
    dir(d, "root/overwritedir", 0o755);
    file(d, "root/overwritedir/subfile", "", 0o755);
    file(d, "root/overwritefile", "", 0o755);
    ln("dir", d.join("root/overwritesymlink")).expect("ln");
    dir(d, "root/dir/overwritesubdir", 0o755);
    file(d, "root/dir/dirfile1", "", 0o755);
    file(d, "root/dir/overwritesubfile", "", 0o755);
    ln("dirfile1", d.join("root/dir/overwritesymlink")).expect("ln");
    let src = tmp();
    let s = src.path();
    dir(s, "root", 0o755);
    file(s, "root/overwritedir", "", 0o755);
    dir(s, "root/overwritefile", 0o755);
    file(s, "root/overwritefile/foo", "", 0o755);
    dir(s, "root/overwritesymlink", 0o755);
    dir(s, "root/dir", 0o755);
    file(s, "root/dir/dirfile2", "", 0o755);
    file(s, "root/dir/overwritesubdir", "", 0o755);
    dir(s, "root/dir/overwritesubfile", 0o755);
    dir(s, "root/dir/overwritesymlink", 0o755);
    let expected = tmp();
    let e = expected.path();
    dir(e, "root", 0o755);
    file(e, "root/overwritedir", "", 0o755);
    dir(e, "root/overwritefile", 0o755);
    file(e, "root/overwritefile/foo", "", 0o755);
    dir(e, "root/overwritesymlink", 0o755);
    dir(e, "root/dir", 0o755);
    file(e, "root/dir/dirfile1", "", 0o755);
    file(e, "root/dir/dirfile2", "", 0o755);
    file(e, "root/dir/overwritesubdir", "", 0o755);
    dir(e, "root/dir/overwritesubfile", 0o755);
    dir(e, "root/dir/overwritesymlink", 0o755);
    let mut a = cp("root", "root");
    a.always_replace_existing_dest_paths = true;
    a.dir_copy_contents = true;
    run_copy(s, d, &a).expect("copy");
    assert_eq!(listing(d), listing(e));

    // Without the flag a file cannot replace a directory.
    let dest2 = tmp();
    dir(dest2.path(), "x/sub", 0o755);
    let src2 = tmp();
    file(src2.path(), "x/sub", "file", 0o644);
    let mut b = cp("x", "x");
    b.dir_copy_contents = true;
    let err = run_copy(src2.path(), dest2.path(), &b).expect_err("dir vs file");
    assert_eq!(
        err.to_string(),
        "cannot replace directory /x/sub with a file"
    );
}

#[test]
fn include_and_exclude_patterns_match_fsutil_cases() {
    let t1 = tmp();
    dir(t1.path(), "bar/baz", 0o755);
    file(t1.path(), "bar/foo", "foo-contents", 0o755);
    file(t1.path(), "bar/baz/foo3", "foo3-contents", 0o755);
    file(t1.path(), "foo2", "foo2-contents", 0o755);
    let cases: &[(&[&str], &[&str], &[&str])] = &[
        (
            &["bar"],
            &[],
            &["bar", "bar/foo", "bar/baz", "bar/baz/foo3"],
        ),
        (
            &["*"],
            &[],
            &["bar", "bar/foo", "bar/baz", "bar/baz/foo3", "foo2"],
        ),
        (&["bar/foo"], &[], &["bar", "bar/foo"]),
        (
            &["bar", "!bar/foo"],
            &[],
            &["bar", "bar/baz", "bar/baz/foo3"],
        ),
        (&["bar/foo", "foo*"], &[], &["bar", "bar/foo", "foo2"]),
        (&["b*"], &[], &["bar", "bar/foo", "bar/baz", "bar/baz/foo3"]),
        (&["bar/g*"], &[], &[]),
        (&["b*/f*"], &[], &["bar", "bar/foo"]),
        (
            &["b*/"],
            &[],
            &["bar", "bar/foo", "bar/baz", "bar/baz/foo3"],
        ),
        (&["bar/*/foo3"], &[], &["bar", "bar/baz", "bar/baz/foo3"]),
        (
            &[],
            &["bar*", "!bar/baz"],
            &["bar", "bar/baz", "bar/baz/foo3", "foo2"],
        ),
        (
            &[],
            &["**", "!bar/baz"],
            &["bar", "bar/baz", "bar/baz/foo3"],
        ),
        (
            &[],
            &["**", "!bar/baz", "bar/baz/foo3"],
            &["bar", "bar/baz"],
        ),
        (&["bar"], &["bar/baz"], &["bar", "bar/foo"]),
        (&["**/foo3"], &[], &["bar", "bar/baz", "bar/baz/foo3"]),
        (&["**/baz"], &[], &["bar", "bar/baz", "bar/baz/foo3"]),
        (
            &["**/bar"],
            &[],
            &["bar", "bar/foo", "bar/baz", "bar/baz/foo3"],
        ),
        (&["bar"], &["**/foo3"], &["bar", "bar/foo", "bar/baz"]),
        (&[], &["bar/baz"], &["bar", "bar/foo", "foo2"]),
    ];
    for (inc, exc, want) in cases {
        let t2 = tmp();
        let mut a = cp("/", "/");
        a.include_patterns = inc.iter().map(|s| (*s).to_owned()).collect();
        a.exclude_patterns = exc.iter().map(|s| (*s).to_owned()).collect();
        run_copy(t1.path(), t2.path(), &a).unwrap_or_else(|e| panic!("{inc:?} {exc:?}: {e}"));
        let got: Vec<&str> = ["bar", "bar/foo", "bar/baz", "bar/baz/foo3", "foo2"]
            .into_iter()
            .filter(|p| exists(t2.path(), p))
            .collect();
        assert_eq!(&got, want, "include {inc:?} exclude {exc:?}");
    }
}

#[test]
fn chmod_chown_and_timestamps_apply_to_everything_copied() {
    if !require_root("chmod_chown_and_timestamps_apply_to_everything_copied") {
        return;
    }
    let t1 = tmp();
    dir(t1.path(), "d/sub", 0o700);
    file(t1.path(), "d/sub/run.sh", "#!/bin/sh", 0o640);
    file(t1.path(), "d/data", "x", 0o600);
    let t2 = tmp();
    let mut a = cp("d", "/out");
    a.mode_str = "a=rX".into();
    a.owner = Some(ChownOpt {
        user: Some(UserOpt {
            user: Some(UserOptKind::ById(1000)),
        }),
        group: Some(UserOpt {
            user: Some(UserOptKind::ById(50)),
        }),
    });
    a.timestamp = 1_700_000_000_123_456_789;
    let owner = resolve_owner(a.owner.as_ref(), |_| None).expect("by id");
    copy(t1.path(), t2.path(), &a, owner, &CancellationToken::new()).expect("copy");
    assert_eq!(mode_of(t2.path(), "out"), 0o555);
    assert_eq!(mode_of(t2.path(), "out/sub"), 0o555);
    assert_eq!(mode_of(t2.path(), "out/sub/run.sh"), 0o444);
    for p in ["out", "out/sub", "out/sub/run.sh", "out/data"] {
        let m = std::fs::symlink_metadata(t2.path().join(p)).expect("stat");
        assert_eq!((m.uid(), m.gid()), (1000, 50), "{p}");
        assert_eq!(
            (m.mtime(), m.mtime_nsec()),
            (1_700_000_000, 123_456_789),
            "{p}"
        );
    }
    let t3 = tmp();
    let mut octal = cp("d/data", "/data");
    octal.mode = 0o4755;
    run_copy(t1.path(), t3.path(), &octal).expect("octal");
    assert_eq!(mode_of(t3.path(), "data"), 0o4755);
    let mut bad = cp("d/data", "/data2");
    bad.mode_str = "u+q".into();
    assert!(matches!(
        run_copy(t1.path(), t3.path(), &bad),
        Err(FileOpError::Mode(_))
    ));
}

/// Enough files for the parallel path (`copy_jobs`): every file keeps its bytes, mode
/// (setuid too, which a chown after the chmod would clear), owner and time, and every
/// directory its time although its files were written after it was made.
#[test]
fn a_large_tree_copied_in_parallel_keeps_every_file_and_directory_time() {
    if !require_root("a_large_tree_copied_in_parallel_keeps_every_file_and_directory_time") {
        return;
    }
    let t1 = tmp();
    for d in 0..8 {
        dir(t1.path(), &format!("tree/d{d}"), 0o750);
        for f in 0..40 {
            file(
                t1.path(),
                &format!("tree/d{d}/f{f}"),
                &format!("{d}/{f}").repeat(f + 1),
                0o640,
            );
        }
    }
    std::fs::set_permissions(
        t1.path().join("tree/d0/f0"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .expect("setuid");
    std::os::unix::fs::chown(t1.path().join("tree/d1/f1"), Some(1000), Some(1001)).expect("chown");
    for d in 0..8 {
        let t = 1_600_000_000 + d;
        let p = t1.path().join(format!("tree/d{d}"));
        sys::set_times(&p, (t, 5), (t, 5)).expect("dir time");
    }
    let t2 = tmp();
    run_copy(t1.path(), t2.path(), &cp("tree", "/out")).expect("copy");
    for e in walkdir::WalkDir::new(t1.path().join("tree")).min_depth(1) {
        let e = e.expect("walk");
        let rel = e.path().strip_prefix(t1.path().join("tree")).expect("rel");
        let (want, got) = (
            e.metadata().expect("stat"),
            std::fs::symlink_metadata(t2.path().join("out").join(rel)).expect("copied"),
        );
        assert_eq!(got.mode(), want.mode(), "{rel:?}");
        assert_eq!((got.uid(), got.gid()), (want.uid(), want.gid()), "{rel:?}");
        assert_eq!(
            (got.mtime(), got.mtime_nsec()),
            (want.mtime(), want.mtime_nsec()),
            "{rel:?}"
        );
        if want.is_file() {
            assert_eq!(
                std::fs::read(e.path()).expect("read"),
                std::fs::read(t2.path().join("out").join(rel)).expect("read copy")
            );
        }
    }
}

#[test]
fn hardlinks_inside_a_copy_stay_hardlinks() {
    let t1 = tmp();
    file(t1.path(), "a", "shared", 0o644);
    std::fs::hard_link(t1.path().join("a"), t1.path().join("b")).expect("link");
    let t2 = tmp();
    run_copy(t1.path(), t2.path(), &cp("/", "/")).expect("copy");
    let a = std::fs::metadata(t2.path().join("a")).expect("a");
    let b = std::fs::metadata(t2.path().join("b")).expect("b");
    assert_eq!(a.ino(), b.ino());
}

#[test]
fn mkdir_mkfile_symlink_and_rm() {
    if !require_root("mkdir_mkfile_symlink_and_rm") {
        return;
    }
    let t = tmp();
    let r = t.path();
    mkdir(
        r,
        &FileActionMkDir {
            path: "/a/b/c".into(),
            mode: 0o750,
            make_parents: true,
            owner: None,
            timestamp: 1_000_000_000_000_000_000,
        },
        Some(Owner { uid: 7, gid: 8 }),
    )
    .expect("mkdir -p");
    for p in ["a", "a/b", "a/b/c"] {
        let m = std::fs::metadata(r.join(p)).expect("stat");
        assert_eq!(
            (m.mode() & 0o777, m.uid(), m.gid(), m.mtime()),
            (0o750, 7, 8, 1_000_000_000),
            "{p}"
        );
    }
    let plain = FileActionMkDir {
        path: "/a".into(),
        mode: 0o700,
        make_parents: false,
        owner: None,
        timestamp: -1,
    };
    mkdir(r, &plain, None).expect("existing dir is fine");
    assert_eq!(mode_of(r, "a"), 0o750, "existing dir untouched");
    let err = mkdir(
        r,
        &FileActionMkDir {
            path: "/x/y".into(),
            mode: 0o755,
            make_parents: false,
            owner: None,
            timestamp: -1,
        },
        None,
    )
    .expect_err("no parents");
    assert!(err.to_string().starts_with("mkdir /x/y"), "{err}");

    mkfile(
        r,
        &FileActionMkFile {
            path: "a/f.txt".into(),
            mode: 0o600,
            data: b"hi".to_vec(),
            owner: None,
            timestamp: -1,
        },
        None,
    )
    .expect("mkfile");
    assert_eq!(read(r, "a/f.txt"), "hi");
    assert_eq!(mode_of(r, "a/f.txt"), 0o600);

    symlink(
        r,
        &FileActionSymlink {
            oldpath: "/a/f.txt".into(),
            newpath: "/link".into(),
            owner: None,
            timestamp: -1,
        },
        None,
    )
    .expect("symlink");
    assert_eq!(
        std::fs::read_link(r.join("link"))
            .expect("link")
            .to_string_lossy(),
        "/a/f.txt"
    );

    let err = rm(
        r,
        &FileActionRm {
            path: "/nope".into(),
            allow_not_found: false,
            allow_wildcard: false,
        },
    )
    .expect_err("missing");
    assert_eq!(err.to_string(), "/nope not found");
    rm(
        r,
        &FileActionRm {
            path: "/nope".into(),
            allow_not_found: true,
            allow_wildcard: false,
        },
    )
    .expect("allowed");
    file(r, "a/g1.log", "", 0o644);
    file(r, "a/g2.log", "", 0o644);
    rm(
        r,
        &FileActionRm {
            path: "/a/*.log".into(),
            allow_not_found: false,
            allow_wildcard: true,
        },
    )
    .expect("wildcard rm");
    assert!(!exists(r, "a/g1.log") && !exists(r, "a/g2.log") && exists(r, "a/f.txt"));
    // rm removes the link, not what it points at.
    rm(
        r,
        &FileActionRm {
            path: "/link".into(),
            allow_not_found: false,
            allow_wildcard: false,
        },
    )
    .expect("rm link");
    assert!(!exists(r, "link") && exists(r, "a/f.txt"));
    rm(
        r,
        &FileActionRm {
            path: "/a".into(),
            allow_not_found: false,
            allow_wildcard: false,
        },
    )
    .expect("rm -r");
    assert!(!exists(r, "a"));
    let err = rm(
        r,
        &FileActionRm {
            path: "/".into(),
            allow_not_found: false,
            allow_wildcard: false,
        },
    )
    .expect_err("root");
    assert!(matches!(err, FileOpError::InvalidPath { .. }));
}

#[test]
fn symlinks_cannot_lead_writes_or_reads_outside_the_root() {
    let outside = tmp();
    file(outside.path(), "secret", "host secret", 0o600);
    let t = tmp();
    let r = t.path();
    ln(outside.path(), r.join("escape")).expect("ln");
    ln("../../../..", r.join("up")).expect("ln");
    let pwn = FileActionMkFile {
        path: "/escape/pwned".into(),
        mode: 0o644,
        data: b"x".to_vec(),
        owner: None,
        timestamp: -1,
    };
    let err = mkfile(r, &pwn, None).expect_err("the link's target does not exist inside the root");
    assert!(err.to_string().starts_with("create /escape/pwned"), "{err}");
    assert!(
        !outside.path().join("pwned").exists(),
        "nothing written outside"
    );
    let inside = outside.path().strip_prefix("/").expect("absolute temp dir");
    std::fs::create_dir_all(r.join(inside)).expect("mirror dir inside root");
    mkfile(r, &pwn, None).expect("resolved inside the root");
    assert!(
        !outside.path().join("pwned").exists(),
        "nothing written outside"
    );
    assert_eq!(read(&r.join(inside), "pwned"), "x");
    let dst = tmp();
    let err = run_copy(r, dst.path(), &{
        let mut a = cp("/up/secret", "/stolen");
        a.follow_symlink = true;
        a
    })
    .expect_err("`up` resolves to the root, where there is no `secret`");
    assert!(matches!(err, FileOpError::NotFound { .. }), "{err}");
    let err = run_copy(r, dst.path(), &cp("../../../../etc/passwd", "/p"))
        .expect_err("dotdot clamps at root");
    assert!(matches!(err, FileOpError::NotFound { .. }), "{err}");
    // A destination through a link also stays inside.
    let src = tmp();
    file(src.path(), "f", "data", 0o644);
    run_copy(src.path(), r, &cp("f", "/escape/f")).expect("copy through link");
    assert!(!outside.path().join("f").exists());
}

#[test]
fn cancelled_copy_stops() {
    let t1 = tmp();
    file(t1.path(), "a", "x", 0o644);
    let t2 = tmp();
    let token = CancellationToken::new();
    token.cancel();
    let err = copy(t1.path(), t2.path(), &cp("/", "/"), None, &token).expect_err("cancelled");
    assert!(matches!(err, FileOpError::Cancelled));
}

fn action(input: i64, secondary: i64, output: i64, kind: FileActionKind) -> FileAction {
    FileAction {
        input,
        secondary_input: secondary,
        output,
        action: Some(kind),
    }
}

#[test]
fn action_chain_runs_on_dirs_without_touching_inputs() {
    if !require_root("action_chain_runs_on_dirs_without_touching_inputs") {
        return;
    }
    let base = tmp();
    file(
        base.path(),
        "etc/passwd",
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        0o644,
    );
    file(base.path(), "old.txt", "old", 0o644);
    let ctx = tmp();
    file(ctx.path(), "src/main.c", "int main(){}", 0o644);
    let before = (listing(base.path()), listing(ctx.path()));
    let inputs = vec![base.path().to_path_buf(), ctx.path().to_path_buf()];
    let mut copy_src = cp("src", "/app");
    copy_src.owner = Some(ChownOpt {
        user: Some(UserOpt {
            user: Some(UserOptKind::ByName(cairn_llb::pb::NamedUserOpt {
                name: "app".into(),
                input: 0,
            })),
        }),
        group: None,
    });
    let actions = vec![
        action(
            0,
            -1,
            -1,
            FileActionKind::Mkdir(FileActionMkDir {
                path: "/work".into(),
                mode: 0o755,
                make_parents: true,
                owner: None,
                timestamp: -1,
            }),
        ),
        action(2, 1, -1, FileActionKind::Copy(copy_src)),
        action(
            3,
            -1,
            0,
            FileActionKind::Rm(FileActionRm {
                path: "/old.txt".into(),
                allow_not_found: false,
                allow_wildcard: false,
            }),
        ),
        // A second output built from scratch.
        action(
            -1,
            -1,
            1,
            FileActionKind::Mkfile(FileActionMkFile {
                path: "/only".into(),
                mode: 0o644,
                data: b"1".to_vec(),
                owner: None,
                timestamp: -1,
            }),
        ),
    ];
    let work = tmp();
    let out =
        run_file_actions(&actions, &inputs, work.path(), &CancellationToken::new()).expect("chain");
    assert_eq!(out.len(), 2);
    assert_eq!(read(&out[0], "app/main.c"), "int main(){}");
    assert!(exists(&out[0], "work") && !exists(&out[0], "old.txt"));
    let m = std::fs::metadata(out[0].join("app/main.c")).expect("stat");
    assert_eq!((m.uid(), m.gid()), (1000, 1000));
    assert_eq!(listing(&out[1]), vec!["only f 644 1".to_owned()]);
    assert_eq!(
        (listing(base.path()), listing(ctx.path())),
        before,
        "inputs unchanged"
    );
    // Only the outputs are left in the work dir.
    let mut left: Vec<String> = std::fs::read_dir(work.path())
        .expect("read")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec!["action-2", "action-3"]);
}

#[test]
fn action_chain_rejects_bad_indexes_and_outputs() {
    let work = tmp();
    let rm_root = |input: i64, output: i64| {
        action(
            input,
            -1,
            output,
            FileActionKind::Rm(FileActionRm {
                path: "/x".into(),
                allow_not_found: true,
                allow_wildcard: false,
            }),
        )
    };
    let c = CancellationToken::new();
    let err = run_file_actions(&[rm_root(5, 0)], &[], work.path(), &c).expect_err("forward ref");
    assert!(
        matches!(err, FileOpError::BadIndex { index: 5, .. }),
        "{err}"
    );
    let err = run_file_actions(&[rm_root(0, 0)], &[], work.path(), &c).expect_err("self ref");
    assert!(matches!(err, FileOpError::BadIndex { .. }), "{err}");
    let err = run_file_actions(&[rm_root(-1, 1)], &[], work.path(), &c).expect_err("gap");
    assert!(matches!(err, FileOpError::BadOutputs(_)), "{err}");
    let err =
        run_file_actions(&[rm_root(-1, 0), rm_root(-1, 0)], &[], work.path(), &c).expect_err("dup");
    assert!(matches!(err, FileOpError::BadOutputs(_)), "{err}");
    let none = FileAction {
        input: -1,
        secondary_input: -1,
        output: 0,
        action: None,
    };
    let err = run_file_actions(&[none], &[], work.path(), &c).expect_err("unknown");
    assert!(matches!(err, FileOpError::UnknownAction(0)), "{err}");
}

fn rm_x(input: i64, output: i64) -> FileAction {
    action(
        input,
        -1,
        output,
        FileActionKind::Rm(FileActionRm {
            path: "/x".into(),
            allow_not_found: true,
            allow_wildcard: false,
        }),
    )
}

fn copy_action(input: i64, secondary: i64, output: i64, src: &str, dest: &str) -> FileAction {
    action(
        input,
        secondary,
        output,
        FileActionKind::Copy(cp(src, dest)),
    )
}

#[test]
fn plan_hands_a_linear_chain_on_to_one_directory() {
    // One input; actions are numbered from 1 after it.
    let actions = [rm_x(0, -1), rm_x(1, -1), rm_x(2, 0)];
    let plan = plan_bases(&actions, 1).expect("plan");
    assert_eq!(
        plan.bases,
        vec![
            BasePlan::Fresh(BaseSource::Input(0)),
            BasePlan::HandOn(0),
            BasePlan::HandOn(1),
        ]
    );
    assert_eq!(
        (plan.outputs.clone(), plan.roots.clone()),
        (vec![2], vec![0])
    );
    assert_eq!(plan.root_of(2), 0);
}

#[test]
fn plan_clones_a_result_read_twice_or_exposed() {
    // Action 0 is the base of action 1 and the copy source of action 2.
    let actions = [
        rm_x(-1, -1),
        rm_x(1, 0),
        copy_action(0, 1, 1, "/", "/from0"),
    ];
    let plan = plan_bases(&actions, 1).expect("plan");
    assert_eq!(
        plan.bases,
        vec![
            BasePlan::Fresh(BaseSource::Scratch),
            BasePlan::Fresh(BaseSource::CloneOf(0)),
            BasePlan::Fresh(BaseSource::Input(0)),
        ]
    );
    // An output is never handed on, even to its only reader.
    let plan = plan_bases(&[rm_x(-1, 0), rm_x(0, 1)], 0).expect("plan");
    assert_eq!(
        plan.bases,
        vec![
            BasePlan::Fresh(BaseSource::Scratch),
            BasePlan::Fresh(BaseSource::CloneOf(0)),
        ]
    );
    // Reading a result for a chown by name counts as a reader too.
    let mut by_name = FileActionMkDir {
        path: "/d".into(),
        mode: 0o755,
        make_parents: true,
        owner: None,
        timestamp: -1,
    };
    by_name.owner = Some(ChownOpt {
        user: Some(UserOpt {
            user: Some(UserOptKind::ByName(cairn_llb::pb::NamedUserOpt {
                name: "app".into(),
                input: 0,
            })),
        }),
        group: None,
    });
    let plan = plan_bases(
        &[
            rm_x(-1, -1),
            action(0, -1, 0, FileActionKind::Mkdir(by_name)),
        ],
        0,
    )
    .expect("plan");
    assert_eq!(plan.bases[1], BasePlan::Fresh(BaseSource::CloneOf(0)));
}

#[test]
fn plan_maps_each_output_to_the_directory_holding_it() {
    // Two inputs, so action j is index j + 2. Chain A: 0 -> 1 -> 2 (output 1);
    // chain B: 3 (scratch) -> 4 (output 0); action 5 reads output 1's action as a base.
    let actions = [
        rm_x(1, -1),
        rm_x(2, -1),
        rm_x(3, 1),
        rm_x(-1, -1),
        rm_x(5, 0),
        rm_x(4, 2),
    ];
    let plan = plan_bases(&actions, 2).expect("plan");
    assert_eq!(
        plan.bases,
        vec![
            BasePlan::Fresh(BaseSource::Input(1)),
            BasePlan::HandOn(0),
            BasePlan::HandOn(1),
            BasePlan::Fresh(BaseSource::Scratch),
            BasePlan::HandOn(3),
            BasePlan::Fresh(BaseSource::CloneOf(2)),
        ]
    );
    assert_eq!(plan.outputs, vec![4, 2, 5]);
    assert_eq!(plan.roots, vec![3, 0, 5]);
}

#[test]
fn plan_rejects_bad_indexes_outputs_and_unknown_actions() {
    let bad = |actions: &[FileAction], inputs| plan_bases(actions, inputs).expect_err("bad");
    let err = bad(&[rm_x(5, 0)], 1);
    assert!(
        matches!(
            err,
            FileOpError::BadIndex {
                action: 0,
                what: "input",
                index: 5,
                inputs: 1
            }
        ),
        "{err}"
    );
    // An action cannot read itself or a later one.
    let err = bad(&[rm_x(1, -1), rm_x(-1, 0)], 1);
    assert!(
        matches!(err, FileOpError::BadIndex { index: 1, .. }),
        "{err}"
    );
    let err = bad(&[rm_x(-2, 0)], 0);
    assert!(
        matches!(err, FileOpError::BadIndex { index: -2, .. }),
        "{err}"
    );
    let err = bad(&[copy_action(-1, 3, 0, "/a", "/a")], 1);
    assert!(
        matches!(
            err,
            FileOpError::BadIndex {
                what: "secondary input",
                index: 3,
                ..
            }
        ),
        "{err}"
    );
    let err = bad(&[rm_x(-1, 1)], 0);
    assert!(
        matches!(&err, FileOpError::BadOutputs(o) if o == &[1]),
        "{err}"
    );
    let err = bad(&[rm_x(-1, 0), rm_x(-1, 0)], 0);
    assert!(
        matches!(&err, FileOpError::BadOutputs(o) if o == &[0, 0]),
        "{err}"
    );
    let none = FileAction {
        input: -1,
        secondary_input: -1,
        output: 0,
        action: None,
    };
    let err = bad(&[none], 0);
    assert!(matches!(err, FileOpError::UnknownAction(0)), "{err}");
}

#[test]
fn actions_run_in_place_on_a_prepared_base() {
    // The caller's writable "snapshot" already holds input 0's files; `lower` stands for
    // the read-only input itself.
    let lower = tmp();
    file(lower.path(), "etc/os-release", "ID=test\n", 0o644);
    file(lower.path(), "bin/sh", "#!", 0o755);
    let ctx = tmp();
    file(ctx.path(), "a", "new a", 0o644);
    let work = tmp();
    let base = work.path().join("base");
    clone_tree(lower.path(), &base, &CancellationToken::new()).expect("prepare base");
    let scratch = work.path().join("scratch");
    std::fs::create_dir(&scratch).expect("mkdir scratch");
    let ino = |p: &Path| std::fs::metadata(p).expect("stat").ino();
    let before = (ino(&base.join("etc/os-release")), ino(&base.join("bin/sh")));
    let lower_before = listing(lower.path());

    // `COPY a /a`, then a mkdir on the result (handed on, same directory).
    let actions = [
        copy_action(0, 1, -1, "/a", "/a"),
        action(
            2,
            -1,
            0,
            FileActionKind::Mkdir(FileActionMkDir {
                path: "/made".into(),
                mode: 0o700,
                make_parents: false,
                owner: None,
                timestamp: -1,
            }),
        ),
    ];
    let plan = plan_bases(&actions, 2).expect("plan");
    assert_eq!(plan.roots, vec![0]);
    let inputs = vec![lower.path().to_path_buf(), ctx.path().to_path_buf()];
    let dirs = vec![Some(base.clone()), None];
    run_file_actions_in(
        &actions,
        &plan,
        &inputs,
        &dirs,
        &scratch,
        &CancellationToken::new(),
    )
    .expect("run");

    assert_eq!(
        listing(&base),
        vec![
            "a f 644 new a".to_owned(),
            "bin d 755 ".to_owned(),
            "bin/sh f 755 #!".to_owned(),
            "etc d 755 ".to_owned(),
            "etc/os-release f 644 ID=test\n".to_owned(),
            "made d 700 ".to_owned(),
        ]
    );
    // The base files are the very same files, not copies, and nothing else was made.
    assert_eq!(
        (ino(&base.join("etc/os-release")), ino(&base.join("bin/sh"))),
        before
    );
    let mut left: Vec<String> = std::fs::read_dir(work.path())
        .expect("read")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec!["base", "scratch"]);
    assert!(listing(&scratch).is_empty());
    assert_eq!(listing(lower.path()), lower_before, "input unchanged");
}

#[test]
fn a_cloned_base_is_filled_into_the_given_empty_directory() {
    let work = tmp();
    let (first, second, scratch) = (
        work.path().join("first"),
        work.path().join("second"),
        work.path().join("scratch"),
    );
    for d in [&first, &second, &scratch] {
        std::fs::create_dir(d).expect("mkdir");
    }
    std::fs::set_permissions(&first, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let mkfile = |path: &str| {
        FileActionKind::Mkfile(FileActionMkFile {
            path: path.into(),
            mode: 0o644,
            data: b"x".to_vec(),
            owner: None,
            timestamp: -1,
        })
    };
    // Action 0 is output 0 and the base of action 1, so action 1 works on a copy.
    let actions = [
        action(-1, -1, 0, mkfile("/one")),
        action(0, -1, 1, mkfile("/two")),
    ];
    let plan = plan_bases(&actions, 0).expect("plan");
    assert_eq!(plan.bases[1], BasePlan::Fresh(BaseSource::CloneOf(0)));
    let c = CancellationToken::new();
    // A fresh action without a directory is refused before anything runs.
    let err = run_file_actions_in(
        &actions,
        &plan,
        &[],
        &[Some(first.clone()), None],
        &scratch,
        &c,
    )
    .expect_err("missing dir");
    assert!(
        matches!(err, FileOpError::MissingDir { action: 1 }),
        "{err}"
    );
    assert!(listing(&first).is_empty());
    let err = run_file_actions_in(
        &actions,
        &plan,
        &[work.path().to_path_buf()],
        &[Some(first.clone()), Some(second.clone())],
        &scratch,
        &c,
    )
    .expect_err("other plan");
    assert!(matches!(err, FileOpError::PlanMismatch { .. }), "{err}");

    let dirs = [Some(first.clone()), Some(second.clone())];
    run_file_actions_in(&actions, &plan, &[], &dirs, &scratch, &c).expect("run");
    assert_eq!(listing(&first), vec!["one f 644 x".to_owned()]);
    assert_eq!(
        listing(&second),
        vec!["one f 644 x".to_owned(), "two f 644 x".to_owned()]
    );
    assert_eq!(
        std::fs::metadata(&second).expect("stat").mode() & 0o7777,
        0o750,
        "root metadata copied"
    );
}

mod in_engine {
    //! A FileOp vertex solved by the engine on directory results, cold and cached.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use cairn_llb::definition::LoadedOp;
    use cairn_llb::pb::{self, FileOp, OpKind};
    use futures::FutureExt;
    use futures::future::BoxFuture;

    use super::*;
    use crate::{
        CacheKeyStorage, CacheMap, Edge, ExecCtx, MemoryCache, Op, OpCtx, OpError, ResultRef,
        ResultStore, SolveOptions, Solver, SolverConfig, Vertex, VertexGraph, downcast,
    };

    /// A "build context": a directory with a file, written on exec. When `random`, it is
    /// never cached, like BuildKit's local source.
    struct Context {
        dir: std::path::PathBuf,
        runs: Arc<AtomicUsize>,
        random: bool,
        content: Arc<std::sync::Mutex<String>>,
    }

    impl Op for Context {
        fn cache_map<'a>(&'a self, _ctx: &'a OpCtx) -> BoxFuture<'a, Result<CacheMap, OpError>> {
            async {
                Ok(CacheMap {
                    digest: (!self.random).then(|| cairn_llb::Digest::of_bytes(b"ctx")),
                    ..CacheMap::default()
                })
            }
            .boxed()
        }
        fn exec<'a>(
            &'a self,
            _ctx: &'a ExecCtx,
            _inputs: Vec<ResultRef>,
        ) -> BoxFuture<'a, Result<Vec<ResultRef>, OpError>> {
            async move {
                self.runs.fetch_add(1, Ordering::SeqCst);
                let content = self
                    .content
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                file(&self.dir, "src/app.py", &content, 0o644);
                file(
                    &self.dir,
                    "unrelated.txt",
                    &format!("run {}", self.runs.load(Ordering::SeqCst)),
                    0o644,
                );
                Ok(vec![Arc::new(DirResult::new(self.dir.clone())) as ResultRef])
            }
            .boxed()
        }
    }

    struct Fixture {
        _state: TempDir,
        ctx_dir: std::path::PathBuf,
        work: std::path::PathBuf,
        runs: Arc<AtomicUsize>,
        content: Arc<std::sync::Mutex<String>>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let state = tmp();
            Fixture {
                ctx_dir: state.path().join("context"),
                work: state.path().join("work"),
                _state: state,
                runs: Arc::new(AtomicUsize::new(0)),
                content: Arc::new(std::sync::Mutex::new("print('hi')".into())),
            }
        }

        fn graph(&self, random: bool) -> (Arc<VertexGraph>, Edge) {
            let mut g = VertexGraph::new();
            let src = g
                .add(Vertex {
                    digest: cairn_llb::Digest::of_bytes(b"context-vertex"),
                    op: Arc::new(Context {
                        dir: self.ctx_dir.clone(),
                        runs: Arc::clone(&self.runs),
                        random,
                        content: Arc::clone(&self.content),
                    }),
                    inputs: Vec::new(),
                    name: "[internal] load build context".into(),
                    ignore_cache: false,
                    progress_group: None,
                })
                .expect("add source");
            let file_op = LoadedOp::from_op(pb::Op {
                inputs: vec![pb::Input {
                    digest: "sha256:00".into(),
                    index: 0,
                }],
                op: Some(OpKind::File(FileOp {
                    actions: vec![
                        action(
                            -1,
                            -1,
                            -1,
                            FileActionKind::Mkdir(FileActionMkDir {
                                path: "/app".into(),
                                mode: 0o755,
                                make_parents: true,
                                owner: None,
                                timestamp: -1,
                            }),
                        ),
                        action(1, 0, 0, FileActionKind::Copy(cp("/src", "/app/"))),
                    ],
                })),
                ..pb::Op::default()
            });
            let op = DirFileOp::new(&file_op, self.work.clone()).expect("file op");
            let v = g
                .add(Vertex {
                    digest: file_op.digest().clone(),
                    op: Arc::new(op),
                    inputs: vec![Edge {
                        vertex: src,
                        output: 0,
                    }],
                    name: "[2/2] COPY src /app/".into(),
                    ignore_cache: false,
                    progress_group: None,
                })
                .expect("add file op");
            (
                Arc::new(g),
                Edge {
                    vertex: v,
                    output: 0,
                },
            )
        }
    }

    fn solver() -> Solver {
        let cache = MemoryCache::new();
        Solver::new(
            Arc::clone(&cache) as Arc<dyn CacheKeyStorage>,
            Arc::clone(&cache) as Arc<dyn ResultStore>,
            SolverConfig::default(),
        )
    }

    fn dir_of(r: &ResultRef) -> std::path::PathBuf {
        downcast::<DirResult>(r)
            .expect("a directory")
            .path()
            .to_path_buf()
    }

    #[tokio::test]
    async fn copy_from_a_random_source_is_keyed_by_the_bytes_it_reads() {
        let f = Fixture::new();
        let s = solver();
        let (g, t) = f.graph(true);
        let first = s.solve(g, t, SolveOptions::default()).await.expect("cold");
        // Same bytes under src/ (the unrelated file changed): the source runs again, the
        // copy is a hit.
        let (g, t) = f.graph(true);
        let second = s.solve(g, t, SolveOptions::default()).await.expect("warm");
        assert_eq!(f.runs.load(Ordering::SeqCst), 2);
        assert!(second.cached);
        assert_eq!(dir_of(&second.result), dir_of(&first.result));
        // Changed bytes: the copy runs again and sees them.
        *f.content.lock().unwrap_or_else(|p| p.into_inner()) = "print('bye')".into();
        let (g, t) = f.graph(true);
        let third = s
            .solve(g, t, SolveOptions::default())
            .await
            .expect("changed");
        assert!(!third.cached);
        assert_eq!(
            read(&dir_of(&third.result), "app/src/app.py"),
            "print('bye')"
        );
        assert_ne!(third.key, first.key);
    }

    #[tokio::test]
    async fn file_op_vertex_copies_and_is_cached() {
        let f = Fixture::new();
        let s = solver();
        let (g, t) = f.graph(false);
        let out = s.solve(g, t, SolveOptions::default()).await.expect("cold");
        let dir = dir_of(&out.result);
        assert_eq!(
            listing(&dir),
            [
                "app d 755 ",
                "app/src d 755 ",
                "app/src/app.py f 644 print('hi')"
            ]
        );
        let (g, t) = f.graph(false);
        let again = s.solve(g, t, SolveOptions::default()).await.expect("warm");
        assert!(again.cached);
        assert_eq!(dir_of(&again.result), dir);
        assert_eq!(
            f.runs.load(Ordering::SeqCst),
            1,
            "the context was not loaded again"
        );
    }
}

mod add_archive {
    //! `ADD` of local archives (BuildKit's `attemptUnpackDockerCompatibility`).

    use super::*;

    fn header(name: &[u8], kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        // Written raw: the tar crate refuses `..` in `set_path`, hostile archives do not.
        let gnu = h.as_gnu_mut().expect("gnu header");
        gnu.name[..name.len()].copy_from_slice(name);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(1000);
        h.set_gid(1001);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        h
    }

    fn archive() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        b.append(&header(b"d/", tar::EntryType::Directory, 0o750, 0), &[][..])
            .expect("dir");
        b.append(
            &header(b"d/f.txt", tar::EntryType::Regular, 0o640, 5),
            &b"hello"[..],
        )
        .expect("file");
        let mut link = header(b"d/link", tar::EntryType::Symlink, 0o777, 0);
        link.set_link_name("/etc").expect("link name");
        link.set_cksum();
        b.append(&link, &[][..]).expect("symlink");
        b.append(
            &header(b"d/link/evil", tar::EntryType::Regular, 0o644, 1),
            &b"x"[..],
        )
        .expect("through link");
        b.append(
            &header(b"../../escape.txt", tar::EntryType::Regular, 0o644, 1),
            &b"y"[..],
        )
        .expect("dotdot");
        b.into_inner().expect("tar bytes")
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, data).expect("gzip");
        e.finish().expect("gzip end")
    }

    fn add(src: &str, dest: &str) -> FileActionCopy {
        let mut a = cp(src, dest);
        a.attempt_unpack_docker_compatibility = true;
        a
    }

    #[test]
    fn archives_are_extracted_inside_the_destination() {
        if !require_root("archives_are_extracted_inside_the_destination") {
            return;
        }
        let ctx = tmp();
        std::fs::write(ctx.path().join("a.tar.gz"), gz(&archive())).expect("write archive");
        let out = tmp();
        let outside = out.path().parent().expect("parent").join("escape.txt");
        run_copy(ctx.path(), out.path(), &add("a.tar.gz", "/app")).expect("add");
        let d = out.path().join("app/d");
        let m = std::fs::metadata(&d).expect("dir");
        assert_eq!((m.mode() & 0o777, m.uid(), m.gid()), (0o750, 1000, 1001));
        let f = std::fs::metadata(d.join("f.txt")).expect("file");
        assert_eq!((f.mode() & 0o777, f.mtime()), (0o640, 1_600_000_000));
        assert_eq!(read(&d, "f.txt"), "hello");
        assert_eq!(
            std::fs::read_link(d.join("link"))
                .expect("link")
                .to_string_lossy(),
            "/etc"
        );
        // Through the absolute link: into `<dest>/etc`, not the host's /etc.
        assert_eq!(read(out.path(), "app/etc/evil"), "x");
        assert!(!Path::new("/etc/evil").exists());
        // `..` stops at the destination.
        assert_eq!(read(out.path(), "app/escape.txt"), "y");
        assert!(!outside.exists());
    }

    #[test]
    fn plain_files_are_copied_and_owner_overrides_apply() {
        if !require_root("plain_files_are_copied_and_owner_overrides_apply") {
            return;
        }
        let ctx = tmp();
        file(ctx.path(), "notes.txt", "not an archive", 0o644);
        std::fs::write(
            ctx.path().join("a.tar.zst"),
            zstd::encode_all(&archive()[..], 3).expect("zstd"),
        )
        .expect("write");
        let out = tmp();
        run_copy(ctx.path(), out.path(), &add("notes.txt", "/n.txt")).expect("add file");
        assert_eq!(read(out.path(), "n.txt"), "not an archive");
        let owner = Some(Owner { uid: 5, gid: 6 });
        copy(
            ctx.path(),
            out.path(),
            &add("a.tar.zst", "/z/"),
            owner,
            &CancellationToken::new(),
        )
        .expect("zstd archive");
        let m = std::fs::metadata(out.path().join("z/d/f.txt")).expect("extracted");
        assert_eq!((m.uid(), m.gid()), (5, 6));
    }

    #[test]
    fn unsupported_compression_is_an_error_not_a_silent_copy() {
        let ctx = tmp();
        std::fs::write(ctx.path().join("a.tar.bz2"), b"BZh91AY&SY").expect("write");
        let out = tmp();
        let err = run_copy(ctx.path(), out.path(), &add("a.tar.bz2", "/")).expect_err("bzip2");
        assert!(matches!(err, FileOpError::Unsupported { .. }), "{err}");
        // Without the ADD flag it is just a file.
        run_copy(ctx.path(), out.path(), &cp("a.tar.bz2", "/")).expect("copy");
        assert!(exists(out.path(), "a.tar.bz2"));
    }
}

/// procfs reports a size of 0 and `copy_file_range` copies nothing from it; the copy must
/// still hold the file's text (std's `fs::copy` did, the kernel copy must too).
#[test]
fn a_file_whose_file_system_copies_nothing_in_the_kernel_is_still_copied() {
    let dir = tmp();
    let target = dir.path().join("status");
    let mut src = std::fs::File::open("/proc/self/status").expect("procfs");
    let mut dst = std::fs::File::create(&target).expect("create");
    sys::copy_bytes(&mut src, &mut dst).expect("copy");
    let text = std::fs::read_to_string(&target).expect("read");
    assert!(text.contains("Name:"), "{text:?}");
}
