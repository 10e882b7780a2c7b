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
    let out = build_files(
        &s,
        "target",
        &["--target", "one", "--build-arg", "MSG=hello"],
    );
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
    assert!(
        !out.join("bin/cat").exists(),
        "the deletion survives into the next stage"
    );
    assert!(out.join("bin/ls").exists());
    assert_eq!(fs::read_to_string(out.join("work/seen")).unwrap(), "hi\n");
    assert_eq!(
        fs::read_to_string(out.join("work/where")).unwrap(),
        "/work\n"
    );
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

/// The image config of an OCI archive, read straight from the layout inside it.
fn oci_config(archive: &std::path::Path) -> serde_json::Value {
    use std::collections::HashMap;
    use std::io::Read as _;
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut tar = tar::Archive::new(fs::File::open(archive).unwrap());
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut b = Vec::new();
        e.read_to_end(&mut b).unwrap();
        files.insert(name, b);
    }
    let blob = |digest: &str| {
        let hex = digest.trim_start_matches("sha256:");
        let b = files
            .get(&format!("blobs/sha256/{hex}"))
            .unwrap_or_else(|| panic!("blob {digest}"));
        serde_json::from_slice::<serde_json::Value>(b).unwrap()
    };
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
    blob(manifest["config"]["digest"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_instructions_add_tar_and_the_remaining_flags() {
    let s = skip_unless!(setup().await);
    // A tar for ADD to unpack.
    let payload = s.out("payload");
    fs::create_dir_all(payload.join("inner")).unwrap();
    fs::write(payload.join("inner/file.txt"), "from the tar\n").unwrap();
    let ok = std::process::Command::new("tar")
        .arg("-czf")
        .arg(s.context().join("payload.tar.gz"))
        .arg("-C")
        .arg(&payload)
        .arg("inner")
        .status()
        .unwrap();
    assert!(ok.success());
    s.write("src/a/keep.txt", "keep\n");
    s.write("src/a/skip.log", "skip\n");
    s.write("src/b/deep/x.txt", "x\n");
    s.write(
        "Dockerfile",
        "ARG BASE=busybox\n\
         FROM --platform=$BUILDPLATFORM $BASE\n\
         RUN echo stage0 > /zero\n\
         FROM $BASE\n\
         MAINTAINER someone@example.com\n\
         LABEL org.example.name=\"cairn test\" org.example.n=1\n\
         EXPOSE 8080/tcp 53/udp\n\
         VOLUME /data\n\
         STOPSIGNAL SIGTERM\n\
         HEALTHCHECK --interval=30s --timeout=3s CMD [\"true\"]\n\
         SHELL [\"/bin/sh\", \"-e\", \"-c\"]\n\
         ONBUILD RUN echo later\n\
         COPY --from=0 /zero /zero\n\
         ADD payload.tar.gz /unpacked/\n\
         COPY --exclude=*.log src/a /a/\n\
         COPY --parents src/b/deep/x.txt /p/\n\
         RUN --mount=type=tmpfs,target=/scratch touch /scratch/t && ! test -e /scratch/missing\n\
         RUN --network=none ! wget -q -T 1 http://127.0.0.1:1/ 2>/dev/null; echo isolated > /net\n\
         ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
         CMD [\"echo hi\"]\n",
    );
    let archive = s.out("cfg.tar");
    let spec = format!("type=oci,dest={}", archive.display());
    run_ok(&mut s.build(&["-o", &spec]));
    let cfg = oci_config(&archive);
    let c = &cfg["config"];
    assert_eq!(c["Labels"]["org.example.name"], "cairn test", "{cfg}");
    assert_eq!(c["Labels"]["org.example.n"], "1");
    assert!(c["ExposedPorts"].get("8080/tcp").is_some(), "{cfg}");
    assert!(c["ExposedPorts"].get("53/udp").is_some());
    assert!(c["Volumes"].get("/data").is_some());
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(c["Healthcheck"]["Test"][0], "CMD");
    assert_eq!(c["Healthcheck"]["Interval"], 30_000_000_000u64);
    assert_eq!(c["Shell"][1], "-e");
    assert_eq!(c["OnBuild"][0], "RUN echo later");
    assert_eq!(c["Entrypoint"][0], "/bin/sh");
    assert_eq!(c["Cmd"][0], "echo hi");
    assert_eq!(cfg["author"], "someone@example.com");

    let work = tempfile::tempdir().unwrap();
    let rootfs = skip_unless!(super::build::unpack(&archive, work.path()));
    assert_eq!(fs::read_to_string(rootfs.join("zero")).unwrap(), "stage0\n");
    assert_eq!(
        fs::read_to_string(rootfs.join("unpacked/inner/file.txt")).unwrap(),
        "from the tar\n"
    );
    assert!(rootfs.join("a/keep.txt").exists());
    assert!(!rootfs.join("a/skip.log").exists(), "--exclude");
    assert!(
        rootfs.join("p/src/b/deep/x.txt").exists(),
        "--parents keeps the path"
    );
    assert!(
        !rootfs.join("scratch/t").exists(),
        "tmpfs writes are not in the layer"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("net")).unwrap(),
        "isolated\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_heredocs_and_several_per_line() {
    let s = skip_unless!(setup().await);
    s.write(
        "Dockerfile",
        "FROM busybox\n\
         COPY <<one <<two /docs/\n\
         first\n\
         one\n\
         second\n\
         two\n\
         COPY --chmod=755 <<EOF /run.sh\n\
         #!/bin/sh\n\
         echo ran\n\
         EOF\n\
         RUN /run.sh > /out\n",
    );
    let dest = s.out("files");
    run_ok(&mut s.build(&["-o", &format!("type=local,dest={}", dest.display())]));
    assert_eq!(
        fs::read_to_string(dest.join("docs/one")).unwrap(),
        "first\n"
    );
    assert_eq!(
        fs::read_to_string(dest.join("docs/two")).unwrap(),
        "second\n"
    );
    assert_eq!(
        fs::metadata(dest.join("run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(fs::read_to_string(dest.join("out")).unwrap(), "ran\n");
}
