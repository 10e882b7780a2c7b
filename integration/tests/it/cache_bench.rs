//! The remote cache's worth, measured: the same multi-stage build cold (empty state root,
//! no cache), warm-local (same root again) and warm-remote (an empty root importing the
//! registry cache the cold build exported), each pushing its image to the same registry.
//! Prints medians side by side. `cache_bench_smoke` runs once at small sizes in CI; the
//! real run is ignored by default (`bench/run`).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_integration::cli::cairn_bin;
use cairn_integration::tools::Skip;
use cairn_integration::{TestRegistry, busybox_image, push_image, skip_unless};

const STAGES: &str = "\
FROM busybox AS deps
RUN i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; mkdir -p /deps && echo $i > /deps/n
FROM busybox AS build
COPY --from=deps /deps /deps
COPY src/ /src/
RUN cat /src/*/* | wc -c > /size && tar -cf /app.tar /src
FROM busybox
COPY --from=build /app.tar /size /app/
RUN echo done > /app/ok
";

fn write_context(dir: &Path, files: usize) {
    for i in 0..files {
        let p = dir.join(format!("src/d{:02}/f{i:05}", i % 16));
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, format!("file {i}\n").repeat(16)).expect("write");
    }
    fs::write(dir.join("Dockerfile"), STAGES).expect("Dockerfile");
}

fn build(root: &Path, ctx: &Path, registry: &str, extra: &[String]) -> Duration {
    if !root.join("cairn.toml").exists() {
        fs::create_dir_all(root).expect("root");
        fs::write(
            root.join("cairn.toml"),
            format!(
                "[registry.\"docker.io\"]\nmirrors = [\"{registry}\"]\n[registry.\"{registry}\"]\nhttp = true\n"
            ),
        )
        .expect("cairn.toml");
    }
    let start = Instant::now();
    let out = Command::new(cairn_bin())
        .arg("--root")
        .arg(root)
        .args(["build", "--progress=quiet"])
        .args(extra)
        .arg("-o")
        .arg(format!("type=image,name={registry}/bench/app:1,push=true"))
        .arg(ctx)
        .stdout(Stdio::null())
        .output()
        .expect("cairn runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn run(iters: usize, files: usize) -> Result<String, Skip> {
    let reg = TestRegistry::start()?;
    push_image(&reg, &busybox_image()?, "library/busybox:latest").await;
    let host = reg.host();
    let tmp = tempfile::tempdir().expect("tempdir");
    let ctx = tmp.path().join("ctx");
    write_context(&ctx, files);
    let cache = format!("{host}/bench/cache:app");
    let to = vec![
        "--cache-to".to_owned(),
        format!("type=registry,ref={cache},mode=max"),
    ];
    let from = vec![
        "--cache-from".to_owned(),
        format!("type=registry,ref={cache}"),
    ];
    let (mut cold, mut local, mut remote) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..iters {
        let a = tmp.path().join(format!("a{i}"));
        cold.push(build(&a, &ctx, &host, &to));
        local.push(build(&a, &ctx, &host, &[]));
        let b = tmp.path().join(format!("b{i}"));
        remote.push(build(&b, &ctx, &host, &from));
    }
    let (cold, local, remote) = (median(cold), median(local), median(remote));
    let ratio = |d: Duration| d.as_secs_f64() / cold.as_secs_f64();
    let mut out = String::new();
    writeln!(
        out,
        "multi-stage build ({files} context files), push to the registry, median of {iters}:"
    )
    .ok();
    writeln!(out, "{:<44} {:>9} {:>9}", "", "time", "vs cold").ok();
    for (name, d) in [
        ("cold (empty root, exports the cache)", cold),
        ("warm-local (same root)", local),
        ("warm-remote (empty root, --cache-from)", remote),
    ] {
        writeln!(
            out,
            "{name:<44} {:>8.2}s {:>8.2}x",
            d.as_secs_f64(),
            ratio(d)
        )
        .ok();
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_bench_smoke() {
    let table = skip_unless!(run(1, 50).await);
    println!("{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with bench/run"]
async fn cache_bench() {
    let iters = std::env::var("CAIRN_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let table = skip_unless!(run(iters, 2000).await);
    println!("{table}");
}
