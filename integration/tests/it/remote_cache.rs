//! `--cache-to` / `--cache-from` end to end: a build on one state root exports its cache
//! to the real registry (or a directory), a build on another, empty root imports it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_integration::cli::{cairn, run_ok};
use cairn_integration::skip_unless;
use cairn_llb::Digest;
use serde_json::Value;

use crate::build::{Setup, setup};

const APP: &str = "\
FROM busybox AS build
RUN echo compiled > /out.txt
COPY src/ /src/
RUN cat /src/*.txt > /combined

FROM busybox
COPY --from=build /combined /app/combined
COPY --from=build /out.txt /app/out.txt
RUN echo final > /final
";

impl Setup {
    /// Another state root, empty, configured like the first.
    fn fresh_root(&self, name: &str) -> PathBuf {
        let root = self.out(name);
        fs::create_dir_all(&root).expect("root");
        self.reg
            .write_cairn_toml(&root.join("cairn.toml"))
            .expect("cairn.toml");
        root
    }

    fn build_on(&self, root: &Path, extra: &[&str]) -> Command {
        let mut c = cairn(root);
        c.arg("build").arg("--progress").arg("plain");
        c.env("SOURCE_DATE_EPOCH", "1700000000");
        c.args(extra);
        c.arg(self.context());
        c
    }

    fn app(&self) {
        self.write("Dockerfile", APP);
        self.write("src/a.txt", "a\n");
        self.write("src/b.txt", "b\n");
    }

    /// GETs of any of `digests`' bytes since the registry started.
    fn downloads_of(&self, digests: &[Digest]) -> usize {
        digests.iter().map(|d| self.reg.blob_downloads(d)).sum()
    }
}

/// The plain-progress block of the step whose title contains `title`.
fn step<'a>(stderr: &'a str, title: &str) -> Option<&'a str> {
    stderr.split("\n\n").find(|b| {
        b.lines()
            .next()
            .is_some_and(|l| l.contains(title) && l.starts_with('#'))
    })
}

fn assert_cached(stderr: &str, title: &str) {
    let b = step(stderr, title).unwrap_or_else(|| panic!("no step {title:?} in\n{stderr}"));
    assert!(
        b.contains("CACHED"),
        "{title:?} was not cached:\n{b}\n---\n{stderr}"
    );
}

fn assert_ran(stderr: &str, title: &str) {
    let b = step(stderr, title).unwrap_or_else(|| panic!("no step {title:?} in\n{stderr}"));
    assert!(
        !b.contains("CACHED") && b.contains("DONE"),
        "{title:?} did not run:\n{b}"
    );
}

/// Every RUN or COPY shown is cached.
fn assert_nothing_ran(stderr: &str) {
    for b in stderr.split("\n\n") {
        if b.contains("] RUN ") || b.contains("] COPY ") {
            assert!(b.contains("CACHED"), "{b}\n---\n{stderr}");
        }
    }
}

/// Layer digests of a pushed image, from its manifest.
async fn image_layers(s: &Setup, name: &str) -> Vec<Digest> {
    let reference = cairn_cache::reference::Reference::parse(name).expect("ref");
    let raw = s
        .reg
        .client()
        .fetch_manifest(&reference)
        .await
        .expect("manifest");
    let m: Value = serde_json::from_slice(&raw.bytes).expect("json");
    m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| Digest::parse(l["digest"].as_str().expect("digest")).expect("digest"))
        .collect()
}

fn pushed_digest(meta: &Path) -> String {
    let v: Value = serde_json::from_slice(&fs::read(meta).expect("meta")).expect("json");
    v["containerimage.digest"]
        .as_str()
        .expect("digest")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_cache_makes_an_empty_root_build_everything_cached_without_downloads() {
    let s = skip_unless!(setup().await);
    s.app();
    let host = s.reg.host();
    let cache = format!("{host}/test/cache:app");
    let (meta_a, meta_b) = (s.out("a.json"), s.out("b.json"));
    let root_a = s.fresh_root("root-a");
    let out = run_ok(&mut s.build_on(
        &root_a,
        &[
            "--cache-to",
            &format!("type=registry,ref={cache},mode=max"),
            "-o",
            &format!("type=image,name={host}/test/app:a,push=true"),
            "--metadata-file",
            &meta_a.display().to_string(),
        ],
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exporting cache to registry"), "{stderr}");

    let layers = image_layers(&s, &format!("{host}/test/app:a")).await;
    let cache_layers = image_layers(&s, &cache).await;
    assert!(
        cache_layers.len() > layers.len(),
        "mode=max keeps the build stage's layers too: {cache_layers:?} vs {layers:?}"
    );
    let mut all = layers.clone();
    all.extend(cache_layers.iter().cloned());
    let before = s.downloads_of(&all);

    let root_b = s.fresh_root("root-b");
    let out = run_ok(&mut s.build_on(
        &root_b,
        &[
            "--cache-from",
            &format!("type=registry,ref={cache}"),
            "-o",
            &format!("type=image,name={host}/test/app:b,push=true"),
            "--metadata-file",
            &meta_b.display().to_string(),
        ],
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("importing cache manifest from"), "{stderr}");
    // The output's step hits, so nothing below it is even looked at (as in BuildKit,
    // steps under a hit are not shown).
    assert_cached(&stderr, "RUN echo final");
    assert_nothing_ran(&stderr);
    assert_eq!(
        s.downloads_of(&all),
        before,
        "the build on the empty root downloaded no layer blob"
    );
    assert_eq!(
        pushed_digest(&meta_a),
        pushed_digest(&meta_b),
        "the same image, built once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_context_file_reruns_only_the_steps_after_it() {
    let s = skip_unless!(setup().await);
    s.app();
    let cache = format!("{}/test/cache:change", s.reg.host());
    let root_a = s.fresh_root("root-a");
    run_ok(&mut s.build_on(
        &root_a,
        &["--cache-to", &format!("type=registry,ref={cache},mode=max")],
    ));
    s.write("src/b.txt", "b changed\n");
    let root_b = s.fresh_root("root-b");
    let out = run_ok(&mut s.build_on(
        &root_b,
        &["--cache-from", &format!("type=registry,ref={cache}")],
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_cached(&stderr, "RUN echo compiled");
    assert_ran(&stderr, "COPY src/ /src/");
    assert_ran(&stderr, "RUN cat /src/*.txt");
    assert_ran(&stderr, "COPY --from=build /combined");
    // The file /out.txt did not change: its copy and everything after the changed one
    // that reads only it stays cached... but the final RUN sits on the changed layer.
    assert_ran(&stderr, "RUN echo final");
}

/// Reads a local cache directory's config.
fn local_cache_config(dir: &Path) -> (Value, Value) {
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        fs::read(
            dir.join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let manifest: Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let config: Value =
        serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    (manifest, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_cache_min_exports_the_output_layers_only_and_max_every_step() {
    let s = skip_unless!(setup().await);
    s.app();
    let root_a = s.fresh_root("root-a");
    let (min, max) = (s.out("cache-min"), s.out("cache-max"));
    let image = s.out("image");
    run_ok(&mut s.build_on(
        &root_a,
        &[
            "--cache-to",
            &format!("type=local,dest={}", min.display()),
            "--cache-to",
            &format!("type=local,dest={},mode=max", max.display()),
            "-o",
            &format!("type=oci,dest={},tar=false", image.display()),
        ],
    ));
    let (min_manifest, min_config) = local_cache_config(&min);
    let (max_manifest, max_config) = local_cache_config(&max);
    let idx: Value = serde_json::from_slice(&fs::read(image.join("index.json")).unwrap()).unwrap();
    let img_manifest: Value = serde_json::from_slice(
        &fs::read(
            image.join("blobs/sha256").join(
                idx["manifests"][0]["digest"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:"),
            ),
        )
        .unwrap(),
    )
    .unwrap();
    let digests = |m: &Value| -> Vec<String> {
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned())
            .collect()
    };
    let image_layers = digests(&img_manifest);
    for d in digests(&min_manifest) {
        assert!(
            image_layers.contains(&d),
            "mode=min exported a layer not in the output: {d}"
        );
    }
    assert!(
        digests(&max_manifest).len() > image_layers.len(),
        "{max_manifest}"
    );
    let records = |c: &Value| c["records"].as_array().unwrap().len();
    assert!(
        records(&max_config) > records(&min_config),
        "{min_config}\n{max_config}"
    );

    // min: a fresh root gets the final stage from the cache without building stage one.
    let root_b = s.fresh_root("root-b");
    let out = run_ok(&mut s.build_on(
        &root_b,
        &["--cache-from", &format!("type=local,src={}", min.display())],
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_cached(&stderr, "RUN echo final");
    assert_nothing_ran(&stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_corrupt_cache_is_a_warning_and_the_build_goes_on() {
    let s = skip_unless!(setup().await);
    s.app();
    let host = s.reg.host();
    let bad_dir = s.out("bad-cache");
    fs::create_dir_all(&bad_dir).unwrap();
    fs::write(bad_dir.join("index.json"), "{ this is not json").unwrap();
    let root = s.fresh_root("root");
    let out = run_ok(&mut s.build_on(
        &root,
        &[
            "--cache-from",
            &format!("type=registry,ref={host}/test/nothing:here"),
            "--cache-from",
            &format!("type=local,src={}", bad_dir.display()),
            // An image, not a cache.
            "--cache-from",
            &format!("type=registry,ref={host}/library/busybox:latest"),
        ],
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("test/nothing:here: not found"), "{stderr}");
    assert!(stderr.contains("index.json is not valid"), "{stderr}");
    assert!(
        stderr.contains("without an inline cache, not a cairn cache"),
        "{stderr}"
    );
    assert_ran(&stderr, "RUN echo final");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_cache_travels_in_the_pushed_image() {
    let s = skip_unless!(setup().await);
    s.app();
    let host = s.reg.host();
    let image = format!("{host}/test/inline:1");
    let root_a = s.fresh_root("root-a");
    run_ok(&mut s.build_on(
        &root_a,
        &[
            "--cache-to",
            "type=inline",
            "-o",
            &format!("type=image,name={image},push=true"),
        ],
    ));
    let layers = image_layers(&s, &image).await;
    let before = s.downloads_of(&layers);

    let root_b = s.fresh_root("root-b");
    let out = run_ok(&mut s.build_on(
        &root_b,
        &[
            "--cache-from",
            &image,
            "-o",
            &format!("type=image,name={host}/test/inline:2,push=true"),
        ],
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_cached(&stderr, "RUN echo final");
    assert_nothing_ran(&stderr);
    assert_eq!(
        s.downloads_of(&layers),
        before,
        "no layer downloaded: {stderr}"
    );

    // The cache describes this image only: an image built FROM it does not carry it.
    s.write(
        "Dockerfile",
        &format!("FROM {image}\nRUN echo child > /child\n"),
    );
    let child = format!("{host}/test/inline-child:1");
    run_ok(&mut s.build_on(
        &root_b,
        &["-o", &format!("type=image,name={child},push=true")],
    ));
    let reference = cairn_cache::reference::Reference::parse(&child).unwrap();
    let raw = s.reg.client().fetch_manifest(&reference).await.unwrap();
    let m: Value = serde_json::from_slice(&raw.bytes).unwrap();
    let cfg_desc: cairn_cache::descriptor::Descriptor =
        serde_json::from_value(m["config"].clone()).unwrap();
    let cfg = s
        .reg
        .client()
        .fetch_blob_bytes(&reference, &cfg_desc, 1 << 20)
        .await
        .unwrap();
    let cfg: Value = serde_json::from_slice(&cfg).unwrap();
    assert!(cfg.get("cairn.cache.v1").is_none(), "{cfg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporting_the_same_cache_again_uploads_nothing() {
    let s = skip_unless!(setup().await);
    s.app();
    let cache = format!("{}/test/cache:again", s.reg.host());
    let spec = format!("type=registry,ref={cache},mode=max");
    let root_a = s.fresh_root("root-a");
    run_ok(&mut s.build_on(&root_a, &["--cache-to", &spec]));
    let uploads = s.reg.blob_upload_requests();
    let root_b = s.fresh_root("root-b");
    let out = run_ok(&mut s.build_on(
        &root_b,
        &[
            "--cache-from",
            &spec.replace(",mode=max", ""),
            "--cache-to",
            &spec,
        ],
    ));
    assert_eq!(
        s.reg.blob_upload_requests(),
        uploads,
        "every blob was already there: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
