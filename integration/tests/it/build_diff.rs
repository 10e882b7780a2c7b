//! DiffOp through `cairn solve`: the diff/merge definition BuildKit's own Go client made
//! (`shared/testdata/llb/diffmerge.pb`), run against a real registry and runc, and a diff
//! of two lazy images sharing a base, exported without downloading the base.

use std::fs;
use std::path::Path;

use cairn_integration::cli::{cairn, run_ok};
use cairn_integration::{ImageBuilder, LayerBuilder, TestImage, push_image, skip_unless};
use serde_json::Value;

use super::build::{Setup, setup};

/// Busybox plus one layer holding `/extra/one`.
fn layered(s: &Setup) -> TestImage {
    let mut extra = LayerBuilder::new("extra");
    extra.dir("extra", 0o755);
    extra.file("extra/one", 0o644, b"one\n");
    ImageBuilder::new()
        .layer(s.busybox.layers[0].clone())
        .layer(extra.finish())
        .build()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).expect("read")).expect("json")
}

/// The layer digests of the one image in an OCI layout directory.
fn oci_layers(layout: &Path) -> Vec<String> {
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").expect("sha256"))
    };
    let index = read_json(&layout.join("index.json"));
    let manifest = read_json(&blob(
        index["manifests"][0]["digest"].as_str().expect("digest"),
    ));
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buildkits_diffmerge_definition_solves() {
    let s = skip_unless!(setup().await);
    push_image(&s.reg, &layered(&s), "library/layered:latest").await;
    // The definition names `127.0.0.1:5000`; pull what it names from the test registry.
    let toml = s.root().join("cairn.toml");
    let mut config = fs::read_to_string(&toml).expect("cairn.toml");
    config.push_str(&format!(
        "\n[registry.\"127.0.0.1:5000\"]\nmirrors = [\"{}\"]\n",
        s.reg.host()
    ));
    fs::write(&toml, config).expect("cairn.toml");
    let def = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/llb/diffmerge.pb"
    );
    let dest = s.out("files");
    let out = run_ok(
        cairn(&s.root())
            .args(["solve", "--progress=plain", "-o"])
            .arg(format!("type=local,dest={}", dest.display()))
            .arg(def),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("diff a"), "{stderr}");
    // merge([diff(busybox, busybox + /a - /bin/vi), files, layered]): the diff brings
    // only `/a`; layered (busybox again) is on top, so its `/bin/vi` is there.
    assert_eq!(fs::read_to_string(dest.join("a")).expect("/a"), "a\n");
    assert_eq!(fs::read_to_string(dest.join("dir/f")).expect("/dir/f"), "x");
    assert_eq!(
        fs::read_to_string(dest.join("extra/one")).expect("/extra/one"),
        "one\n"
    );
    assert!(dest.join("bin/busybox").is_file());
    assert!(fs::symlink_metadata(dest.join("bin/vi")).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_of_an_image_on_its_base_is_its_top_layer_and_downloads_no_base() {
    use cairn_llb::builder::{diff, image};
    let s = skip_unless!(setup().await);
    let top = layered(&s);
    push_image(&s.reg, &top, "test/layered:1").await;
    let host = s.reg.host();
    let d = diff(
        &image(&format!("{host}/library/busybox:latest")),
        &image(&format!("{host}/test/layered:1")),
    );
    let def = s.out("diff.pb");
    fs::write(&def, d.marshal().to_bytes()).expect("write definition");
    let layout = s.out("oci");
    run_ok(
        cairn(&s.root())
            .args(["solve", "--progress=plain", "-o"])
            .arg(format!("type=oci,dest={},tar=false", layout.display()))
            .arg(&def),
    );
    assert_eq!(
        oci_layers(&layout),
        vec![top.layers[1].blob.digest().to_string()],
        "the upper image's own top layer blob"
    );
    assert_eq!(
        s.reg.blob_downloads(s.busybox.layers[0].blob.digest()),
        0,
        "the shared base is never downloaded"
    );
}
