//! Dockerfile semantics end to end: each case is built with the real busybox image and
//! exported as a directory, and the files say whether the instruction did what Docker does.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};
use std::path::PathBuf;

use cairn_integration::cli::run_ok;
use cairn_integration::skip_unless;

use super::build::{Setup, setup};

/// Builds the context's Dockerfile with `extra` flags into a fresh directory.
fn build_files(s: &Setup, name: &str, extra: &[&str]) -> PathBuf {
    let dest = s.out(name);
    let spec = format!("type=local,dest={}", dest.display());
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["-o", &spec]);
    run_ok(&mut s.build(&args));
    dest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_follows_docker_semantics() {
    let s = skip_unless!(setup().await);
    s.write("dir/a.txt", "A\n");
    s.write("dir/b.md", "B\n");
    s.write("dir/sub/c.txt", "C\n");
    symlink("a.txt", s.context().join("dir/link")).unwrap();
    s.write(
        "Dockerfile",
        "FROM scratch\n\
         COPY dir /d1\n\
         COPY dir/*.txt /d2/\n\
         COPY dir/a.txt /d3\n\
         COPY dir/a.txt /d4/\n\
         COPY --chown=1000:1001 --chmod=640 dir/a.txt /d5/a.txt\n\
         COPY dir/link /d6\n\
         COPY dir/sub/ /d7/\n",
    );
    let out = build_files(&s, "copy", &[]);
    // A directory source copies its contents.
    assert_eq!(fs::read_to_string(out.join("d1/a.txt")).unwrap(), "A\n");
    assert_eq!(fs::read_to_string(out.join("d1/sub/c.txt")).unwrap(), "C\n");
    assert!(!out.join("d1/dir").exists());
    // Wildcards match only what they name.
    assert!(out.join("d2/a.txt").is_file());
    assert!(!out.join("d2/b.md").exists());
    // A file onto a new name is that file; onto a trailing slash, a file inside it.
    assert!(out.join("d3").is_file());
    assert!(out.join("d4/a.txt").is_file());
    // --chown and --chmod.
    let m = fs::metadata(out.join("d5/a.txt")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 1001));
    assert_eq!(m.permissions().mode() & 0o7777, 0o640);
    // A symlink named as the source is followed.
    let d6 = fs::symlink_metadata(out.join("d6")).unwrap();
    assert!(d6.is_file(), "{d6:?}");
    assert_eq!(fs::read_to_string(out.join("d6")).unwrap(), "A\n");
    // A symlink inside a copied directory stays a symlink.
    assert_eq!(
        fs::read_link(out.join("d1/link")).unwrap(),
        PathBuf::from("a.txt")
    );
    assert_eq!(fs::read_to_string(out.join("d7/c.txt")).unwrap(), "C\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_and_build_args_pick_the_stage_and_the_values() {
    let s = skip_unless!(setup().await);
    s.write(
        "Dockerfile",
        "FROM busybox AS one\n\
         ARG MSG=default\n\
         RUN echo \"$MSG\" > /msg\n\
         FROM busybox AS two\n\
         RUN echo two > /two\n",
    );
    let out = build_files(&s, "target", &["--target", "one", "--build-arg", "MSG=hello"]);
    assert_eq!(fs::read_to_string(out.join("msg")).unwrap(), "hello\n");
    assert!(!out.join("two").exists());
    let out = build_files(&s, "default", &["--target", "one"]);
    assert_eq!(fs::read_to_string(out.join("msg")).unwrap(), "default\n");
    // An unknown target is a usage error naming the near stage.
    let bad = s.build(&["--target", "on"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("one"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_carry_across_stages_and_env_workdir_user_apply_to_run() {
    let s = skip_unless!(setup().await);
    s.write(
        "Dockerfile",
        "FROM busybox AS base\n\
         RUN rm /bin/cat\n\
         FROM base\n\
         ENV GREETING=hi\n\
         WORKDIR /work\n\
         RUN test ! -e /bin/cat && echo \"$GREETING\" > seen && pwd > where\n\
         USER 1000:1000\n\
         RUN id -u > /tmp/uid\n\
         RUN <<EOF\n\
         echo from-heredoc > /tmp/heredoc\n\
         EOF\n",
    );
    let out = build_files(&s, "stages", &[]);
    assert!(!out.join("bin/cat").exists(), "the deletion survives into the next stage");
    assert!(out.join("bin/ls").exists());
    assert_eq!(fs::read_to_string(out.join("work/seen")).unwrap(), "hi\n");
    assert_eq!(fs::read_to_string(out.join("work/where")).unwrap(), "/work\n");
    assert_eq!(fs::read_to_string(out.join("tmp/uid")).unwrap(), "1000\n");
    assert_eq!(
        fs::read_to_string(out.join("tmp/heredoc")).unwrap(),
        "from-heredoc\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerignore_keeps_files_out_of_the_context() {
    let s = skip_unless!(setup().await);
    s.write(".dockerignore", "secret*\n!secret-ok.txt\nbuild/\n");
    s.write("keep.txt", "k\n");
    s.write("secret.txt", "s\n");
    s.write("secret-ok.txt", "ok\n");
    s.write("build/out.o", "o\n");
    s.write("Dockerfile", "FROM scratch\nCOPY . /ctx/\n");
    let out = build_files(&s, "ignored", &[]);
    assert!(out.join("ctx/keep.txt").exists());
    assert!(out.join("ctx/secret-ok.txt").exists(), "the ! exception");
    assert!(!out.join("ctx/secret.txt").exists());
    assert!(!out.join("ctx/build").exists());
}
