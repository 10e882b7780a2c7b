//! `cairn build` end to end: the real binary, a Dockerfile `FROM busybox` pulled from a
//! real registry (as the Docker Hub mirror), `RUN` in a real container, `COPY` and
//! `COPY --link` from the context, exported as archives other tools read or pushed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_integration::cli::{cairn, run_ok};
use cairn_integration::tools::{Skip, require_tool};
use cairn_integration::{TestImage, TestRegistry, busybox_image, push_image, skip_unless};
use serde_json::Value;

/// A registry serving busybox as `docker.io/library/busybox`, a state root whose
/// `cairn.toml` points Docker Hub at it, and a context directory.
pub(crate) struct Setup {
    pub(crate) reg: TestRegistry,
    pub(crate) busybox: TestImage,
    pub(crate) dir: tempfile::TempDir,
}

impl Setup {
    pub(crate) fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub(crate) fn context(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    pub(crate) fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn write(&self, rel: &str, text: &str) {
        let p = self.context().join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, text).expect("write");
    }

    pub(crate) fn build(&self, extra: &[&str]) -> Command {
        let mut c = cairn(&self.root());
        c.arg("build").arg("--progress").arg("plain");
        c.args(extra);
        c.arg(self.context());
        c
    }

    fn base_layer_downloads(&self) -> usize {
        self.reg
            .blob_downloads(self.busybox.layers[0].blob.digest())
    }
}

pub(crate) async fn setup() -> Result<Setup, Skip> {
    let reg = TestRegistry::start()?;
    let busybox = busybox_image()?;
    push_image(&reg, &busybox, "library/busybox:latest").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Setup { reg, busybox, dir };
    fs::create_dir_all(s.root()).expect("root");
    s.reg
        .write_cairn_toml(&s.root().join("cairn.toml"))
        .expect("cairn.toml");
    fs::create_dir_all(s.context()).expect("ctx");
    Ok(s)
}

fn json_of(cmd: &mut Command) -> Value {
    let out = run_ok(cmd);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Unpacks an OCI archive with skopeo + umoci and returns the rootfs.
pub(crate) fn unpack(archive: &Path, work: &Path) -> Result<PathBuf, Skip> {
    let skopeo = require_tool("skopeo", "skopeo")?;
    let umoci = require_tool("umoci", "umoci")?;
    let layout = work.join("layout");
    run_ok(
        Command::new(&skopeo)
            .arg("copy")
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("oci:{}:t", layout.display())),
    );
    let bundle = work.join("bundle");
    run_ok(
        Command::new(&umoci)
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:t", layout.display()))
            .arg(&bundle),
    );
    Ok(bundle.join("rootfs"))
}

const APP: &str = "\
FROM busybox
RUN echo built-by-run > /ran && mkdir -p /app
COPY hello.txt /app/hello.txt
COPY --link data/ /data/
ENV GREETING=hi
CMD [\"cat\", \"/app/hello.txt\"]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerfile_build_exports_an_oci_archive_that_skopeo_and_umoci_read() {
    let s = skip_unless!(setup().await);
    s.write("Dockerfile", APP);
    s.write("hello.txt", "hello from the context\n");
    s.write("data/a.txt", "a\n");
    s.write("data/sub/b.txt", "b\n");
    let archive = s.out("image.tar");
    let out = run_ok(&mut s.build(&[
        "-t",
        "example.com/app:1",
        "-o",
        &format!("type=oci,dest={}", archive.display()),
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("RUN echo built-by-run"), "{stderr}");

    let skopeo = skip_unless!(require_tool("skopeo", "skopeo"));
    let inspect = json_of(
        Command::new(&skopeo)
            .arg("inspect")
            .arg(format!("oci-archive:{}", archive.display())),
    );
    let layers = inspect["Layers"].as_array().expect("layers");
    assert_eq!(
        layers.len(),
        4,
        "busybox + RUN + COPY + COPY --link: {inspect}"
    );
    assert_eq!(
        layers[0].as_str(),
        Some(s.busybox.layers[0].blob.digest().as_str()),
        "the base layer is exported as pulled"
    );
    let env: Vec<&str> = inspect["Env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(env.contains(&"GREETING=hi"), "{env:?}");

    let work = tempfile::tempdir().expect("tempdir");
    let rootfs = skip_unless!(unpack(&archive, work.path()));
    assert_eq!(
        fs::read_to_string(rootfs.join("ran")).unwrap(),
        "built-by-run\n"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("app/hello.txt")).unwrap(),
        "hello from the context\n"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("data/sub/b.txt")).unwrap(),
        "b\n"
    );
    assert!(
        rootfs.join("bin/busybox").exists(),
        "the base image is there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_rebuilds_from_the_cache_and_downloads_nothing() {
    let s = skip_unless!(setup().await);
    s.write("Dockerfile", APP);
    s.write("hello.txt", "hello\n");
    s.write("data/a.txt", "a\n");
    let first = s.out("first.tar");
    run_ok(&mut s.build(&["-o", &format!("type=oci,dest={}", first.display())]));
    assert_eq!(
        s.base_layer_downloads(),
        1,
        "RUN needed the base layer once"
    );

    let second = s.out("second.tar");
    let out = run_ok(&mut s.build(&["-o", &format!("type=oci,dest={}", second.display())]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_nothing_ran(&stderr);
    assert!(!stderr.contains("extracting"), "{stderr}");
    assert!(stderr.contains(", 0B pulled"), "{stderr}");
    assert_eq!(s.base_layer_downloads(), 1, "nothing downloaded again");

    // A change elsewhere in the context leaves the COPY of hello.txt cached.
    s.write("unrelated.txt", "new\n");
    let out = run_ok(&mut s.build(&[]));
    assert_nothing_ran(&String::from_utf8_lossy(&out.stderr));
}

/// A hit at the output computes nothing below it: no RUN or COPY runs (those shown are
/// cached), and the sources only resolve.
fn assert_nothing_ran(stderr: &str) {
    for block in stderr.split("\n\n") {
        if block.contains("] RUN ") || block.contains("] COPY ") || block.contains("LINK COPY") {
            assert!(block.contains("CACHED"), "{block}\n---\n{stderr}");
        }
    }
    assert!(stderr.contains("CACHED"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_and_copy_link_push_downloads_no_base_layer() {
    let s = skip_unless!(setup().await);
    s.write("Dockerfile", "FROM busybox\nCOPY --link app.txt /app.txt\n");
    s.write("app.txt", "app\n");
    let target = format!("{}/test/linked:1", s.reg.host());
    let meta_file = s.out("meta.json");
    run_ok(&mut s.build(&[
        "-o",
        &format!("type=image,name={target},push=true"),
        "--metadata-file",
        &meta_file.display().to_string(),
    ]));
    assert_eq!(
        s.base_layer_downloads(),
        0,
        "the base layer was never downloaded"
    );
    let meta: Value = serde_json::from_slice(&fs::read(&meta_file).unwrap()).unwrap();
    let digest = meta["containerimage.digest"]
        .as_str()
        .expect("digest")
        .to_owned();

    let skopeo = skip_unless!(require_tool("skopeo", "skopeo"));
    let inspect = json_of(
        Command::new(&skopeo)
            .arg("inspect")
            .arg("--tls-verify=false")
            .arg(format!("docker://{target}")),
    );
    assert_eq!(inspect["Digest"].as_str(), Some(digest.as_str()));
    let layers = inspect["Layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 2, "{inspect}");
    assert_eq!(
        layers[0].as_str(),
        Some(s.busybox.layers[0].blob.digest().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_names_the_step_shows_its_output_and_exits_1() {
    let s = skip_unless!(setup().await);
    s.write(
        "Dockerfile",
        "FROM busybox\nRUN echo about to fail && exit 3\n",
    );
    let out = s.build(&[]).output().expect("cairn runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[2/2] RUN echo about to fail && exit 3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("about to fail"),
        "the output is shown: {stderr}"
    );
    assert!(stderr.contains("exit code: 3"), "{stderr}");
    assert!(
        stderr.contains("Dockerfile:2"),
        "the line is shown: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_date_epoch_makes_two_fresh_builds_identical() {
    let s = skip_unless!(setup().await);
    s.write(
        "Dockerfile",
        "FROM busybox\nRUN echo x > /x\nCOPY a.txt /a.txt\n",
    );
    s.write("a.txt", "a\n");
    let mut digests = Vec::new();
    for i in 0..2 {
        // Separate state roots: nothing is shared but the inputs.
        let root = s.out(&format!("root{i}"));
        fs::create_dir_all(&root).unwrap();
        s.reg.write_cairn_toml(&root.join("cairn.toml")).unwrap();
        let archive = s.out(&format!("epoch{i}.tar"));
        let meta = s.out(&format!("meta{i}.json"));
        run_ok(
            cairn(&root)
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .arg("build")
                .arg("--progress=plain")
                .arg("-o")
                .arg(format!("type=oci,dest={}", archive.display()))
                .arg("--metadata-file")
                .arg(&meta)
                .arg(s.context()),
        );
        let m: Value = serde_json::from_slice(&fs::read(&meta).unwrap()).unwrap();
        digests.push(m["containerimage.digest"].as_str().unwrap().to_owned());
        // Files written by RUN get new times on every run; the epoch clamps them.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(digests[0], digests[1]);
    assert_eq!(
        fs::read(s.out("epoch0.tar")).unwrap(),
        fs::read(s.out("epoch1.tar")).unwrap(),
        "byte-identical archives"
    );
}

fn tree_bytes(dir: &Path) -> u64 {
    let out = Command::new("du")
        .arg("-sb")
        .arg(dir)
        .output()
        .expect("du runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn du_and_prune_report_and_free_the_cache() {
    let s = skip_unless!(setup().await);
    s.write(
        "Dockerfile",
        "FROM busybox\nRUN head -c 3000000 /dev/urandom > /big\nCOPY a.txt /a\n",
    );
    s.write("a.txt", "a\n");
    let digest =
        String::from_utf8(run_ok(&mut s.build(&["-o", "type=oci,dest=/dev/null"])).stdout).unwrap();
    assert!(
        digest.trim().starts_with("sha256:"),
        "build prints the digest: {digest:?}"
    );
    use std::os::unix::fs::FileTypeExt as _;
    assert!(
        fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device(),
        "an export to a device writes into it, never renames over it"
    );

    let du = String::from_utf8(run_ok(cairn(&s.root()).arg("du")).stdout).unwrap();
    assert!(du.contains("RUN head -c 3000000"), "{du}");
    assert!(du.contains("lazy") || du.contains("local"), "{du}");
    assert!(du.contains("Reclaimable:"), "{du}");

    // Recent records survive an age filter.
    let kept =
        String::from_utf8(run_ok(cairn(&s.root()).args(["prune", "--filter", "until=24h"])).stdout)
            .unwrap();
    assert!(kept.starts_with("Removed 0 records"), "{kept}");

    let before = tree_bytes(&s.root().join("snapshots"));
    let pruned =
        String::from_utf8(run_ok(cairn(&s.root()).args(["prune", "--all"])).stdout).unwrap();
    let after = tree_bytes(&s.root().join("snapshots"));
    assert!(!pruned.starts_with("Removed 0 records"), "{pruned}");
    assert!(
        before - after >= 3_000_000,
        "the 3MB layer is gone: {before} -> {after} ({pruned})"
    );
    let du = String::from_utf8(run_ok(cairn(&s.root()).arg("du")).stdout).unwrap();
    assert!(!du.contains("RUN head"), "{du}");

    let bad = cairn(&s.root())
        .args(["prune", "--filter", "unitl=1h"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("until"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// The README's example builds, and its image holds what the Dockerfile says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hello_example_builds() {
    let s = skip_unless!(setup().await);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello");
    let archive = s.out("hello.tar");
    let out = run_ok(
        cairn(&s.root())
            .args(["build", "--progress=plain", "-t", "hello:latest", "-o"])
            .arg(format!("type=oci,dest={}", archive.display()))
            .arg(&example),
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sha256:"));
    let work = tempfile::tempdir().unwrap();
    let rootfs = skip_unless!(unpack(&archive, work.path()));
    assert_eq!(
        fs::read_to_string(rootfs.join("srv/greeting.txt")).unwrap(),
        "hello, cairn\n"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("srv/size")).unwrap().trim(),
        "13"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/motd")).unwrap(),
        "Built by cairn.\n"
    );
    assert!(
        fs::read_to_string(rootfs.join("etc/passwd"))
            .unwrap()
            .contains("app:x:1000")
    );
}

/// The file outputs and the docker archive, through a real build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_tar_stdout_and_docker_outputs() {
    let s = skip_unless!(setup().await);
    s.write("Dockerfile", "FROM scratch\nCOPY a.txt /dir/a.txt\n");
    s.write("a.txt", "A\n");
    let dir = s.out("files");
    let docker = s.out("docker.tar");
    let out = run_ok(&mut s.build(&[
        "-o",
        &format!("type=local,dest={}", dir.display()),
        "-o",
        "type=tar,dest=-",
        "-o",
        &format!(
            "type=docker,dest={},name=example.com/files:1",
            docker.display()
        ),
    ]));
    assert_eq!(fs::read_to_string(dir.join("dir/a.txt")).unwrap(), "A\n");
    let mut tar = tar::Archive::new(&out.stdout[..]);
    let names: Vec<String> = tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n.trim_end_matches('/') == "dir/a.txt"),
        "{names:?}"
    );
    let skopeo = skip_unless!(require_tool("skopeo", "skopeo"));
    let inspect = json_of(
        Command::new(&skopeo)
            .arg("inspect")
            .arg(format!("docker-archive:{}", docker.display())),
    );
    assert_eq!(
        inspect["Layers"].as_array().map(Vec::len),
        Some(1),
        "{inspect}"
    );
}

/// Layers are gzipped in parallel as several gzip members (1 MiB of tar each); other
/// tools must read them as one stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_of_several_gzip_members_unpacks_in_umoci() {
    let s = skip_unless!(setup().await);
    s.write("Dockerfile", "FROM busybox\nCOPY big.bin /big.bin\n");
    let big: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(s.context().join("big.bin"), &big).unwrap();
    let archive = s.out("image.tar");
    run_ok(&mut s.build(&["-o", &format!("type=oci,dest={}", archive.display())]));
    fs::create_dir_all(s.out("work")).unwrap();
    let rootfs = skip_unless!(unpack(&archive, &s.out("work")));
    assert!(
        fs::read(rootfs.join("big.bin")).unwrap() == big,
        "the file survived"
    );
}
