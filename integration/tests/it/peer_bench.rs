//! cairn against `buildah` (and BuildKit when `buildkitd`/`buildctl` are on PATH), side by
//! side on the same Dockerfiles, local registry and busybox image, runs alternating.
//! Prints per scenario the median wall time, peak memory (max RSS) and the ratios.
//!
//! `peer_bench_smoke` runs every scenario once at small sizes (CI: it must work, timings
//! mean nothing). The real run is ignored by default; `bench/run` starts it in release
//! mode. Work happens on a loop-mounted ext4 image without `discard` (see BENCH.md).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_integration::cli::cairn_bin;
use cairn_integration::tools::{Skip, require_tool};
use cairn_integration::{
    ImageBuilder, TestRegistry, busybox_layer, multi_layer_image, push_image, skip_unless,
};
use cairn_llb::builder::{FileActions, MkfileOptions, scratch};

/// Sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    iters: usize,
    context_files: usize,
    tree_files: usize,
    tree_file_bytes: usize,
    llb_steps: usize,
}

const SMOKE: Sizes = Sizes {
    iters: 1,
    context_files: 200,
    tree_files: 100,
    tree_file_bytes: 4096,
    llb_steps: 50,
};

const FULL: Sizes = Sizes {
    iters: 5,
    context_files: 5000,
    tree_files: 4000,
    tree_file_bytes: 16 * 1024,
    llb_steps: 1000,
};

/// One measured run: wall time and the peak resident set of the process (kB).
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: Duration,
    max_rss_kb: u64,
}

/// Runs `cmd` to completion, measuring its wall time and its peak resident set. The peak
/// is the process's own `VmHWM`, read every 10 ms until it exits: `wait4`'s `ru_maxrss`
/// would count the test binary's memory, which the child holds until its `exec`.
fn measure(cmd: &mut Command) -> Sample {
    measure_with(cmd, None)
}

/// [`measure`], adding the peak sampled `VmRSS` of a daemon doing the work for the
/// client (BuildKit's `buildkitd`) to the client's own peak.
fn measure_with(cmd: &mut Command, daemon: Option<u32>) -> Sample {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let pid = child.id();
    let mut stderr = child.stderr.take().expect("stderr piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let status_file = format!("/proc/{pid}/status");
    let mut peak_kb = 0u64;
    let mut daemon_kb = 0u64;
    let status = loop {
        if let Some(kb) = fs::read_to_string(&status_file).ok().and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        }) {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(d) = daemon {
            daemon_kb = daemon_kb.max(proc_kb(d, "VmRSS:").unwrap_or(0));
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    let wall = start.elapsed();
    let err = reader.join().unwrap_or_default();
    assert!(status.success(), "{cmd:?} failed ({status}):\n{err}");
    Sample {
        wall,
        max_rss_kb: peak_kb + daemon_kb,
    }
}

fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn median(v: &mut [Sample]) -> Sample {
    v.sort_by_key(|s| s.wall);
    let mut rss: Vec<u64> = v.iter().map(|s| s.max_rss_kb).collect();
    rss.sort_unstable();
    Sample {
        wall: v[v.len() / 2].wall,
        max_rss_kb: rss[rss.len() / 2],
    }
}

/// A loop-mounted ext4 image without `discard` (the root file system's `discard` stalls
/// file creation after large deletions), or a plain temp dir where that cannot be made.
struct Workspace {
    dir: PathBuf,
    image: Option<PathBuf>,
    note: String,
    _tmp: Option<tempfile::TempDir>,
}

impl Workspace {
    fn new(gib: u64) -> Workspace {
        let base = PathBuf::from("/var/tmp");
        let id = std::process::id();
        let image = base.join(format!("cairn-bench-{id}.img"));
        let dir = base.join(format!("cairn-bench-{id}"));
        let ok = fs::create_dir_all(&dir).is_ok()
            && fs::File::create(&image)
                .and_then(|f| f.set_len(gib << 30))
                .is_ok()
            && Command::new("mkfs.ext4")
                .args(["-q", "-F", "-E", "nodiscard"])
                .arg(&image)
                .status()
                .is_ok_and(|s| s.success())
            && Command::new("mount")
                .args(["-o", "loop,nodiscard"])
                .arg(&image)
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
        if ok {
            return Workspace {
                note: format!("work dir: a {gib} GiB loop-mounted ext4 image without discard"),
                dir,
                image: Some(image),
                _tmp: None,
            };
        }
        let _ = fs::remove_file(&image);
        let _ = fs::remove_dir(&dir);
        let tmp = tempfile::tempdir().expect("tempdir");
        Workspace {
            dir: tmp.path().to_path_buf(),
            image: None,
            note: "work dir: a temp dir (the loop-mounted ext4 image could not be made)".into(),
            _tmp: Some(tmp),
        }
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Some(img) = &self.image {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
            let _ = fs::remove_dir(&self.dir);
            let _ = fs::remove_file(img);
        }
    }
}

/// The tools under comparison, each with its own state under `root`.
struct Tools {
    buildah: PathBuf,
    registry_host: String,
}

impl Tools {
    fn cairn_build(
        &self,
        root: &Path,
        ctx: &Path,
        dockerfile: &str,
        args: &[(&str, &str)],
    ) -> Command {
        if !root.join("cairn.toml").exists() {
            fs::create_dir_all(root).unwrap();
            fs::write(
                root.join("cairn.toml"),
                format!("[registry.\"{}\"]\nhttp = true\n", self.registry_host),
            )
            .unwrap();
        }
        let mut c = Command::new(cairn_bin());
        c.arg("--root")
            .arg(root)
            .arg("build")
            .arg("--progress=quiet");
        c.arg("-f").arg(ctx.join(dockerfile));
        for (k, v) in args {
            c.arg("--build-arg").arg(format!("{k}={v}"));
        }
        // An image export is a superset of what buildah's commit does (layers are also
        // compressed), so cairn is never flattered by skipping work.
        c.arg("-o")
            .arg(format!("type=oci,dest={}", root.join("out.tar").display()));
        c.arg(ctx);
        c
    }

    fn buildah_build(
        &self,
        root: &Path,
        ctx: &Path,
        dockerfile: &str,
        args: &[(&str, &str)],
    ) -> Command {
        let mut c = Command::new(&self.buildah);
        c.arg("--root")
            .arg(root.join("storage"))
            .arg("--runroot")
            .arg(root.join("run"))
            .arg("--storage-driver")
            .arg("overlay")
            .arg("bud")
            .arg("--layers")
            .arg("--quiet")
            .arg("--tls-verify=false")
            .arg("-f")
            .arg(ctx.join(dockerfile));
        for (k, v) in args {
            c.arg("--build-arg").arg(format!("{k}={v}"));
        }
        c.arg("-t").arg("bench:latest").arg(ctx);
        c
    }
}

/// A `buildkitd` the harness starts (only when `buildkitd` and `buildctl` are on PATH) and
/// stops, with its own state and a config that speaks plain HTTP to the test registry.
struct BuildKit {
    child: std::process::Child,
    addr: String,
    buildctl: PathBuf,
    state: PathBuf,
}

impl BuildKit {
    fn start(dir: &Path, registry_host: &str) -> Option<BuildKit> {
        let buildkitd = find_on_path("buildkitd")?;
        let buildctl = find_on_path("buildctl")?;
        let state = dir.join("buildkit");
        fs::create_dir_all(&state).ok()?;
        let config = state.join("buildkitd.toml");
        fs::write(
            &config,
            format!(
                "[worker.oci]\n  enabled = true\n  snapshotter = \"overlayfs\"\n\
                 [worker.containerd]\n  enabled = false\n\
                 [registry.\"{registry_host}\"]\n  http = true\n"
            ),
        )
        .ok()?;
        let addr = format!("unix://{}", state.join("buildkitd.sock").display());
        let child = Command::new(buildkitd)
            .arg("--config")
            .arg(&config)
            .arg("--root")
            .arg(state.join("root"))
            .arg("--addr")
            .arg(&addr)
            .stdout(Stdio::null())
            .stderr(fs::File::create(state.join("buildkitd.log")).ok()?)
            .spawn()
            .ok()?;
        let bk = BuildKit {
            child,
            addr,
            buildctl,
            state,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ok = Command::new(&bk.buildctl)
                .args(["--addr", &bk.addr, "debug", "workers"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Some(bk);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Empties the daemon's cache (a cold start without restarting the daemon).
    fn prune(&self) {
        let ok = Command::new(&self.buildctl)
            .args(["--addr", &self.addr, "prune", "--all"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "buildctl prune failed");
    }

    fn build(&self, ctx: &Path, dockerfile: &str, args: &[(&str, &str)]) -> Command {
        let mut c = Command::new(&self.buildctl);
        c.args(["--addr", &self.addr, "build", "--progress=quiet"])
            .args(["--frontend", "dockerfile.v0"])
            .arg("--local")
            .arg(format!("context={}", ctx.display()))
            .arg("--local")
            .arg(format!("dockerfile={}", ctx.display()))
            .arg("--opt")
            .arg(format!("filename={dockerfile}"));
        for (k, v) in args {
            c.arg("--opt").arg(format!("build-arg:{k}={v}"));
        }
        c.arg("--output").arg(format!(
            "type=oci,dest={}",
            self.state.join("out.tar").display()
        ));
        c
    }
}

impl Drop for BuildKit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Medians of one scenario per tool.
struct Row {
    name: &'static str,
    cairn: Sample,
    peer: Option<Sample>,
    buildkit: Option<Sample>,
    floor: Option<(String, Sample)>,
}

fn write_tree(dir: &Path, files: usize, bytes: usize) {
    for i in 0..files {
        let d = dir.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            fs::create_dir_all(&d).unwrap();
        }
        let mut body = format!("file {i}\n").into_bytes();
        body.resize(bytes.max(body.len()), b'x' ^ (i as u8));
        fs::write(d.join(format!("f{i:05}")), body).unwrap();
    }
}

/// How BuildKit runs a scenario: `cold` empties its cache before each run (the daemon
/// stays up, so its start is never counted).
struct BkRun<'a> {
    daemon: &'a BuildKit,
    cold: bool,
    ctx: &'a Path,
    dockerfile: &'a str,
    args: &'a [(&'a str, &'a str)],
}

fn alternate(
    iters: usize,
    mut prepare: impl FnMut(usize),
    mut cairn: impl FnMut(usize) -> Command,
    mut peer: impl FnMut(usize) -> Command,
    bk: Option<BkRun<'_>>,
) -> (Sample, Sample, Option<Sample>) {
    let (mut a, mut b, mut k) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..iters {
        prepare(i);
        a.push(measure(&mut cairn(i)));
        b.push(measure(&mut peer(i)));
        if let Some(r) = &bk {
            if r.cold {
                r.daemon.prune();
            }
            let mut cmd = r.daemon.build(r.ctx, r.dockerfile, r.args);
            k.push(measure_with(&mut cmd, Some(r.daemon.pid())));
        }
    }
    let k = (!k.is_empty()).then(|| median(&mut k));
    (median(&mut a), median(&mut b), k)
}

const FOUR_STAGES: &str = "\
ARG BASE
FROM $BASE AS a
RUN i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo a$i > /out
FROM $BASE AS b
RUN i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo b$i > /out
FROM $BASE AS c
RUN i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo c$i > /out
FROM $BASE AS d
RUN i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo d$i > /out
FROM $BASE
COPY --from=a /out /a
COPY --from=b /out /b
COPY --from=c /out /c
COPY --from=d /out /d
";

async fn run(sizes: Sizes) -> Result<String, Skip> {
    let buildah = require_tool("buildah", "buildah")?;
    let reg = TestRegistry::start()?;
    let busybox = busybox_layer()?;
    let base_image = ImageBuilder::new()
        .layer(busybox.clone())
        .cmd(&["sh"])
        .build();
    push_image(&reg, &base_image, "library/busybox:latest").await;
    // Busybox plus the multi-layer test image's layers: a pull worth measuring that can
    // still run a shell.
    let mut heavy = ImageBuilder::new().layer(busybox);
    for l in multi_layer_image().layers {
        heavy = heavy.layer(l);
    }
    push_image(&reg, &heavy.cmd(&["sh"]).build(), "bench/heavy:latest").await;
    let base = format!("{}/library/busybox:latest", reg.host());
    let heavy_ref = format!("{}/bench/heavy:latest", reg.host());
    let tools = Tools {
        buildah,
        registry_host: reg.host(),
    };
    let ws = Workspace::new(if sizes.iters == 1 { 4 } else { 20 });
    let w = ws.dir.clone();
    let bk = BuildKit::start(&w, &reg.host());

    let fresh = |name: String| {
        let p = w.join(name);
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        p
    };
    let args = [("BASE", base.as_str())];
    let mut rows = Vec::new();

    // 1. Cold multi-stage build, four independent stages.
    let ctx = fresh("ctx-stages".into());
    fs::write(ctx.join("Dockerfile"), FOUR_STAGES).unwrap();
    let (c, p, k) = alternate(
        sizes.iters,
        |_| {},
        |i| tools.cairn_build(&fresh(format!("cold-c{i}")), &ctx, "Dockerfile", &args),
        |i| tools.buildah_build(&fresh(format!("cold-b{i}")), &ctx, "Dockerfile", &args),
        bk.as_ref().map(|daemon| BkRun {
            daemon,
            cold: true,
            ctx: &ctx,
            dockerfile: "Dockerfile",
            args: &args,
        }),
    );
    rows.push(Row {
        name: "cold build, 4 parallel stages",
        cairn: c,
        peer: Some(p),
        buildkit: k,
        floor: None,
    });

    // 2. Fully cached rebuild of the same.
    let (rc, rb) = (fresh("warm-c".into()), fresh("warm-b".into()));
    measure(&mut tools.cairn_build(&rc, &ctx, "Dockerfile", &args));
    measure(&mut tools.buildah_build(&rb, &ctx, "Dockerfile", &args));
    if let Some(b) = &bk {
        b.prune();
        measure(&mut b.build(&ctx, "Dockerfile", &args));
    }
    let (c, p, k) = alternate(
        sizes.iters,
        |_| {},
        |_| tools.cairn_build(&rc, &ctx, "Dockerfile", &args),
        |_| tools.buildah_build(&rb, &ctx, "Dockerfile", &args),
        bk.as_ref().map(|daemon| BkRun {
            daemon,
            cold: false,
            ctx: &ctx,
            dockerfile: "Dockerfile",
            args: &args,
        }),
    );
    rows.push(Row {
        name: "fully cached rebuild",
        cairn: c,
        peer: Some(p),
        buildkit: k,
        floor: None,
    });

    // 3. One file changed in a large context.
    let ctx = fresh("ctx-big".into());
    write_tree(&ctx.join("src"), sizes.context_files, 256);
    fs::write(
        ctx.join("Dockerfile"),
        "ARG BASE\nFROM $BASE\nCOPY src /src\nRUN find /src -type f | wc -l > /count\n",
    )
    .unwrap();
    let (rc, rb) = (fresh("ctx-c".into()), fresh("ctx-b".into()));
    measure(&mut tools.cairn_build(&rc, &ctx, "Dockerfile", &args));
    measure(&mut tools.buildah_build(&rb, &ctx, "Dockerfile", &args));
    if let Some(b) = &bk {
        b.prune();
        measure(&mut b.build(&ctx, "Dockerfile", &args));
    }
    let changed = ctx.join("src/d000/f00000");
    let (c, p, k) = alternate(
        sizes.iters,
        |i| fs::write(&changed, format!("changed {i}\n")).unwrap(),
        |_| tools.cairn_build(&rc, &ctx, "Dockerfile", &args),
        |_| tools.buildah_build(&rb, &ctx, "Dockerfile", &args),
        bk.as_ref().map(|daemon| BkRun {
            daemon,
            cold: false,
            ctx: &ctx,
            dockerfile: "Dockerfile",
            args: &args,
        }),
    );
    rows.push(Row {
        name: "rebuild, 1 of N context files changed",
        cairn: c,
        peer: Some(p),
        buildkit: k,
        floor: None,
    });

    // 4. A large tree copied onto a base: COPY --link (cairn) vs COPY (both).
    let ctx = fresh("ctx-tree".into());
    write_tree(&ctx.join("tree"), sizes.tree_files, sizes.tree_file_bytes);
    fs::write(
        ctx.join("Dockerfile.link"),
        "ARG BASE\nFROM $BASE\nCOPY --link tree /tree\n",
    )
    .unwrap();
    fs::write(
        ctx.join("Dockerfile.copy"),
        "ARG BASE\nFROM $BASE\nCOPY tree /tree\n",
    )
    .unwrap();
    let (c, p, k) = alternate(
        sizes.iters,
        |_| {},
        |i| tools.cairn_build(&fresh(format!("link-c{i}")), &ctx, "Dockerfile.link", &args),
        |i| tools.buildah_build(&fresh(format!("link-b{i}")), &ctx, "Dockerfile.copy", &args),
        bk.as_ref().map(|daemon| BkRun {
            daemon,
            cold: true,
            ctx: &ctx,
            dockerfile: "Dockerfile.link",
            args: &args,
        }),
    );
    let mut floor = Vec::new();
    for i in 0..sizes.iters {
        let dest = w.join(format!("cp-{i}"));
        floor.push(measure(
            Command::new("cp")
                .arg("-a")
                .arg(ctx.join("tree"))
                .arg(&dest),
        ));
    }
    rows.push(Row {
        name: "COPY --link large tree (buildah: COPY)",
        cairn: c,
        peer: Some(p),
        buildkit: k,
        floor: Some(("cp -a".into(), median(&mut floor))),
    });
    let (c, p, k) = alternate(
        sizes.iters,
        |_| {},
        |i| tools.cairn_build(&fresh(format!("copy-c{i}")), &ctx, "Dockerfile.copy", &args),
        |i| tools.buildah_build(&fresh(format!("copy-b{i}")), &ctx, "Dockerfile.copy", &args),
        bk.as_ref().map(|daemon| BkRun {
            daemon,
            cold: true,
            ctx: &ctx,
            dockerfile: "Dockerfile.copy",
            args: &args,
        }),
    );
    rows.push(Row {
        name: "COPY large tree",
        cairn: c,
        peer: Some(p),
        buildkit: k,
        floor: None,
    });

    // 5. Pull and unpack the multi-layer image (then a trivial RUN, so both must unpack).
    let ctx = fresh("ctx-pull".into());
    fs::write(ctx.join("Dockerfile"), "ARG BASE\nFROM $BASE\nRUN true\n").unwrap();
    let heavy_args = [("BASE", heavy_ref.as_str())];
    let (c, p, k) = alternate(
        sizes.iters,
        |_| {},
        |i| {
            tools.cairn_build(
                &fresh(format!("pull-c{i}")),
                &ctx,
                "Dockerfile",
                &heavy_args,
            )
        },
        |i| {
            tools.buildah_build(
                &fresh(format!("pull-b{i}")),
                &ctx,
                "Dockerfile",
                &heavy_args,
            )
        },
        bk.as_ref().map(|daemon| BkRun {
            daemon,
            cold: true,
            ctx: &ctx,
            dockerfile: "Dockerfile",
            args: &heavy_args,
        }),
    );
    rows.push(Row {
        name: "pull + unpack multi-layer image, RUN true",
        cairn: c,
        peer: Some(p),
        buildkit: k,
        floor: None,
    });

    // 6. A long LLB graph of cheap file ops, cairn only: per-vertex overhead.
    let mut st = scratch();
    for i in 0..sizes.llb_steps {
        st = st.file(FileActions::new().mkfile(
            &format!("/f{i}"),
            0o644,
            format!("{i}").into_bytes(),
            MkfileOptions::default(),
        ));
    }
    let def = w.join("chain.pb");
    fs::write(&def, st.marshal().to_bytes()).unwrap();
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for i in 0..sizes.iters {
        let root = fresh(format!("llb-{i}"));
        let solve = |root: &Path| {
            let mut c = Command::new(cairn_bin());
            c.arg("--root")
                .arg(root)
                .args(["solve", "--progress=quiet"])
                .arg(&def);
            c
        };
        cold.push(measure(&mut solve(&root)));
        warm.push(measure(&mut solve(&root)));
    }
    let (cold, warm) = (median(&mut cold), median(&mut warm));

    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}; {} iteration(s), medians; BuildKit: {}",
        ws.note,
        sizes.iters,
        if bk.is_some() {
            "buildkitd from PATH, cache pruned before cold runs, RSS = buildctl + daemon"
        } else {
            "not on PATH"
        }
    );
    let _ = writeln!(
        out,
        "{:<40} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6}  floor",
        "scenario", "cairn", "buildah", "buildkit", "c/bah", "c/bk", "RSS c", "RSS bah", "RSS bk"
    );
    let secs =
        |s: Option<Sample>| s.map_or("-".to_owned(), |s| format!("{:.2}s", s.wall.as_secs_f64()));
    let ratio = |a: Sample, b: Option<Sample>| {
        b.map_or("-".to_owned(), |b| {
            format!(
                "{:.2}",
                a.wall.as_secs_f64() / b.wall.as_secs_f64().max(1e-9)
            )
        })
    };
    let mb = |s: Option<Sample>| s.map_or("-".to_owned(), |s| format!("{}M", s.max_rss_kb / 1024));
    for r in &rows {
        let _ = writeln!(
            out,
            "{:<40} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6}  {}",
            r.name,
            secs(Some(r.cairn)),
            secs(r.peer),
            secs(r.buildkit),
            ratio(r.cairn, r.peer),
            ratio(r.cairn, r.buildkit),
            mb(Some(r.cairn)),
            mb(r.peer),
            mb(r.buildkit),
            r.floor.as_ref().map_or(String::new(), |(n, s)| format!(
                "{n} {:.2}s",
                s.wall.as_secs_f64()
            )),
        );
    }
    let per = |s: Sample| s.wall.as_secs_f64() * 1e6 / sizes.llb_steps as f64;
    let _ = writeln!(
        out,
        "{}-step LLB chain (cairn only): cold {:.2}s ({:.0} µs/vertex), cached {:.2}s ({:.0} µs/vertex), RSS {}MB",
        sizes.llb_steps,
        cold.wall.as_secs_f64(),
        per(cold),
        warm.wall.as_secs_f64(),
        per(warm),
        cold.max_rss_kb / 1024
    );
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_bench_smoke() {
    let table = skip_unless!(run(SMOKE).await);
    eprintln!("{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with bench/run"]
async fn peer_bench() {
    let mut sizes = FULL;
    if let Some(n) = std::env::var("CAIRN_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        sizes.iters = n;
    }
    let table = skip_unless!(run(sizes).await);
    println!("{table}");
}
