//! `RUN` through `cairn build`: cache mounts, their sharing modes, secrets, read-only
//! binds of lazy images, deletions, and a cancelled build that leaves nothing mounted.

use std::fs;
use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_integration::cli::run_ok;
use cairn_integration::skip_unless;

use super::build::{setup, unpack};

fn oci(s: &super::build::Setup, name: &str) -> (String, std::path::PathBuf) {
    let p = s.out(name);
    (format!("type=oci,dest={}", p.display()), p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_mount_keeps_its_files_between_builds() {
    let s = skip_unless!(setup().await);
    s.write(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=cache,target=/cache echo run >> /cache/log && wc -l < /cache/log > /count\n",
    );
    run_ok(&mut s.build(&[]));
    let (spec, archive) = oci(&s, "second.tar");
    run_ok(&mut s.build(&["--no-cache", "-o", &spec]));
    let work = tempfile::tempdir().unwrap();
    let rootfs = skip_unless!(unpack(&archive, work.path()));
    assert_eq!(
        fs::read_to_string(rootfs.join("count")).unwrap().trim(),
        "2"
    );
    assert!(
        fs::read_dir(rootfs.join("cache")).map_or(true, |mut d| d.next().is_none()),
        "the cache mount's files are not in the image"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_sharing_serialises_two_concurrent_steps() {
    let s = skip_unless!(setup().await);
    // Two independent stages take one cache mount; each fails if it sees the other
    // inside. Under `sharing=locked` they must take turns.
    let step = |name: &str| {
        format!(
            "FROM busybox AS {name}\nRUN --mount=type=cache,id=shared,target=/c,sharing=locked \
             mkdir /c/busy && sleep 1 && rmdir /c/busy && echo {name} > /{name}\n"
        )
    };
    s.write(
        "Dockerfile",
        &format!(
            "{}{}FROM busybox\nCOPY --from=one /one /one\nCOPY --from=two /two /two\n",
            step("one"),
            step("two")
        ),
    );
    let started = Instant::now();
    run_ok(&mut s.build(&["--max-parallelism", "4"]));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the two steps ran one after the other"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_readable_in_the_step_and_nowhere_else() {
    let s = skip_unless!(setup().await);
    let secret = "s3cret-token-5f2a";
    fs::write(s.out("token"), secret).unwrap();
    s.write(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=secret,id=tok,required=true wc -c < /run/secrets/tok > /checked\n",
    );
    let (spec, archive) = oci(&s, "image.tar");
    run_ok(&mut s.build(&[
        "--secret",
        &format!("id=tok,src={}", s.out("token").display()),
        "-o",
        &spec,
    ]));
    let work = tempfile::tempdir().unwrap();
    let rootfs = skip_unless!(unpack(&archive, work.path()));
    assert_eq!(
        fs::read_to_string(rootfs.join("checked")).unwrap().trim(),
        secret.len().to_string(),
        "the step read the secret"
    );
    assert!(!rootfs.join("run/secrets/tok").exists());
    // Not in any layer (the archive holds every blob, gzip-compressed: look inside).
    assert!(
        !archive_mentions(&archive, secret),
        "the secret is in the image"
    );
    // Not in the cache's records or keys.
    for entry in walk(&s.root()) {
        if entry
            .extension()
            .is_some_and(|e| e == "db" || e == "db-wal")
        {
            let bytes = fs::read(&entry).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds the secret",
                entry.display()
            );
        }
    }
    // A missing secret is named (when the step has to run: a cached step needs none).
    let out = s.build(&["--no-cache"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("secret \"tok\""), "{err}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Whether any file in the OCI archive, gunzipped when it is gzip, contains `needle`.
fn archive_mentions(archive: &Path, needle: &str) -> bool {
    let mut tar = tar::Archive::new(fs::File::open(archive).unwrap());
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut plain = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut plain)
                .unwrap();
            bytes = plain;
        }
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_of_a_lazy_image_is_read_only() {
    let s = skip_unless!(setup().await);
    s.write(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=bind,from=busybox,target=/mnt touch /mnt/x\n",
    );
    let out = s.build(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Read-only file system"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_of_a_merged_result_is_read_only() {
    let s = skip_unless!(setup().await);
    s.write("a.txt", "a\n");
    // `COPY --link` makes the stage a merge of the lazy base and the copied layer.
    s.write(
        "Dockerfile",
        "FROM busybox AS merged\nCOPY --link a.txt /a.txt\n\
         FROM busybox\nRUN --mount=type=bind,from=merged,target=/mnt \
         cat /mnt/a.txt && touch /mnt/x\n",
    );
    let out = s.build(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Read-only file system"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_is_a_whiteout_in_the_exported_layer() {
    let s = skip_unless!(setup().await);
    s.write("Dockerfile", "FROM busybox\nRUN rm /bin/cat\n");
    let (spec, archive) = oci(&s, "image.tar");
    run_ok(&mut s.build(&["-o", &spec]));
    let work = tempfile::tempdir().unwrap();
    let rootfs = skip_unless!(unpack(&archive, work.path()));
    assert!(!rootfs.join("bin/cat").exists());
    assert!(rootfs.join("bin/ls").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_build_leaves_no_mount_or_container() {
    let s = skip_unless!(setup().await);
    s.write("Dockerfile", "FROM busybox\nRUN echo started && sleep 60\n");
    let mut child = s
        .build(&[])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    // Wait until the step runs (its output shows), then interrupt as Ctrl-C would.
    let deadline = Instant::now() + Duration::from_secs(30);
    let root = s.root();
    while Instant::now() < deadline && !running_container(&root) {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    run_ok(Command::new("kill").arg("-INT").arg(child.id().to_string()));
    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root_s = root.display().to_string();
    assert!(
        !mounts.lines().any(|l| l.contains(&root_s)),
        "mounts left under the state root:\n{mounts}"
    );
    let runs = root.join("executor/runs");
    assert!(
        fs::read_dir(&runs).map_or(true, |mut d| d.next().is_none()),
        "runtime state left in {}",
        runs.display()
    );
}

/// Whether a container of this state root is running (its bundle exists).
fn running_container(root: &Path) -> bool {
    fs::read_dir(root.join("executor/runs")).is_ok_and(|mut d| d.next().is_some())
}

/// The ancestor walk across a merge: a step on a merge of two lazy images gets each
/// image's layers from that image's own repository, each downloaded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_of_two_lazy_images_unlazies_each_from_its_own_source() {
    use cairn_integration::{ImageBuilder, LayerBuilder, push_image};
    use cairn_llb::builder::{image, merge};
    let s = skip_unless!(setup().await);
    let mut extra = LayerBuilder::new("extra");
    extra.file("extra/marker.txt", 0o644, b"from the other image\n");
    let other = ImageBuilder::new().layer(extra.finish()).build();
    push_image(&s.reg, &other, "test/other:1").await;
    let host = s.reg.host();
    let merged = merge(&[
        image(&format!("{host}/library/busybox:latest")),
        image(&format!("{host}/test/other:1")),
    ]);
    let ran = merged
        .run(["/bin/sh", "-c", "cat /extra/marker.txt > /seen"])
        .root();
    let def = s.out("merge.pb");
    fs::write(&def, ran.marshal().to_bytes()).unwrap();
    let dest = s.out("files");
    run_ok(
        cairn_integration::cli::cairn(&s.root())
            .args(["solve", "--progress=plain", "-o"])
            .arg(format!("type=local,dest={}", dest.display()))
            .arg(&def),
    );
    assert_eq!(
        fs::read_to_string(dest.join("seen")).unwrap(),
        "from the other image\n"
    );
    let requests = s.reg.requests();
    for (repo, layer) in [
        ("library/busybox", s.busybox.layers[0].blob.digest()),
        ("test/other", other.layers[0].blob.digest()),
    ] {
        let hits: Vec<_> = requests
            .iter()
            .filter(|e| e.is_blob_download(layer))
            .collect();
        assert_eq!(hits.len(), 1, "{layer}: {hits:?}");
        assert!(
            hits[0].uri.contains(repo),
            "{layer} fetched from {}",
            hits[0].uri
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_mounts_take_owner_mode_and_seed_files() {
    let s = skip_unless!(setup().await);
    s.write(
        "Dockerfile",
        "FROM busybox AS seed\n\
         RUN mkdir -p /seed && echo seeded > /seed/file\n\
         FROM busybox\n\
         RUN --mount=type=cache,id=owned,target=/c,uid=1000,gid=1001,mode=0750 \
         stat -c '%u %g %a' /c > /owner\n\
         RUN --mount=type=cache,id=seeded,target=/s,from=seed,source=/seed \
         cat /s/file > /seen\n",
    );
    let dest = s.out("files");
    run_ok(&mut s.build(&["-o", &format!("type=local,dest={}", dest.display())]));
    assert_eq!(
        fs::read_to_string(dest.join("owner")).unwrap(),
        "1000 1001 750\n"
    );
    assert_eq!(fs::read_to_string(dest.join("seen")).unwrap(), "seeded\n");
}

/// `--root state` from the directory holding it: runc resolves a relative rootfs against
/// the bundle, so a root left relative made every `RUN` fail with "invalid rootfs".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_root_runs_steps() {
    let s = skip_unless!(setup().await);
    s.write("Dockerfile", "FROM busybox\nRUN echo ran > /ran\n");
    let (spec, archive) = oci(&s, "relative.tar");
    let mut c = Command::new(cairn_integration::cli::cairn_bin());
    c.current_dir(s.dir.path())
        .env_remove("CAIRN_ROOT")
        .env_remove("CAIRN_CONFIG")
        .args(["--root", "state", "build", "--progress=plain", "-o", &spec])
        .arg(s.context());
    run_ok(&mut c);
    let work = tempfile::tempdir().unwrap();
    let rootfs = skip_unless!(unpack(&archive, work.path()));
    assert_eq!(fs::read_to_string(rootfs.join("ran")).unwrap(), "ran\n");
}
