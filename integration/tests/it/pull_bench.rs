//! Benchmark, not a test (ignored by default; no timing is asserted): pull and unpack the
//! multi-layer test image with cairn, and with `skopeo copy` + `umoci unpack` as the peer,
//! against the same local registry in the same run, and print both with their ratio.
//!
//! Run: `cargo nextest run -p cairn-integration --run-ignored only pull_bench:: --no-capture`.
//! Timings include the state root's file system: the root file system here is mounted
//! with `discard`, so for stable numbers point `TMPDIR` at a loop-mounted ext4 without it.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_cache::CacheManager;
use cairn_cache::descriptor::Platform;
use cairn_cache::refs::{layer_blobs, registry_handlers};
use cairn_integration::{
    TestRegistry, multi_layer_image, push_image, reference, require_tool, skip_unless,
};
use cairn_snapshot::{DriverChoice, Snapshotter, probe};

const RUNS: usize = 3;

async fn cairn_pull(reg: &TestRegistry, name: &str, root: &Path) -> Duration {
    let start = Instant::now();
    let (sn, _) = probe(&root.join("snapshots"), DriverChoice::Auto).expect("snapshotter");
    let sn: Arc<dyn Snapshotter> = Arc::new(sn);
    let mgr = CacheManager::open(root, sn).expect("manager");
    let client = reg.client();
    let r = reference(reg, name);
    let resolved = client
        .resolve(&r, &Platform::host())
        .await
        .expect("resolve");
    let blobs = layer_blobs(
        &r.to_string(),
        &resolved.layers,
        &resolved.parsed_config.rootfs.diff_ids,
    )
    .expect("layers");
    let top = mgr
        .get_by_blob(&blobs, Some(&r.to_string()), "bench")
        .expect("refs")
        .expect("layers");
    top.extract(&registry_handlers(&client, &r, &resolved.layers, None))
        .await
        .expect("extract");
    start.elapsed()
}

fn peer_pull(reg: &TestRegistry, name: &str, dir: &Path) -> Duration {
    let layout = dir.join("layout");
    let bundle = dir.join("bundle");
    let start = Instant::now();
    let copy = Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{}/{name}", reg.host()))
        .arg(format!("oci:{}:bench", layout.display()))
        .output()
        .expect("run skopeo");
    assert!(
        copy.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let unpack = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:bench", layout.display()))
        .arg(&bundle)
        .output()
        .expect("run umoci");
    assert!(
        unpack.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&unpack.stderr)
    );
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly, see the module docs"]
async fn pull_and_unpack_multi_layer_image_vs_skopeo_umoci() {
    let reg = skip_unless!(TestRegistry::start());
    skip_unless!(require_tool("skopeo", "skopeo"));
    skip_unless!(require_tool("umoci", "umoci"));
    let image = multi_layer_image();
    let name = "bench/multi:latest";
    push_image(&reg, &image, name).await;
    let bytes: u64 = image.layers.iter().map(|l| l.blob.descriptor.size).sum();

    let (mut ours, mut peer) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let root = tempfile::tempdir().expect("tempdir");
        ours.push(cairn_pull(&reg, name, root.path()).await);
        let dir = tempfile::tempdir().expect("tempdir");
        peer.push(peer_pull(&reg, name, dir.path()));
    }
    let (ours, peer) = (median(ours), median(peer));
    println!(
        "pull+unpack of {} layers ({:.1} MiB compressed), median of {RUNS}:",
        image.layers.len(),
        bytes as f64 / (1 << 20) as f64
    );
    println!(
        "  cairn (resolve, lazy refs, unlazy)  {:>8.0} ms",
        ours.as_secs_f64() * 1e3
    );
    println!(
        "  skopeo copy + umoci unpack          {:>8.0} ms",
        peer.as_secs_f64() * 1e3
    );
    println!(
        "  ratio cairn/peer                    {:>8.2}",
        ours.as_secs_f64() / peer.as_secs_f64()
    );
}
