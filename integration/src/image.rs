//! Real OCI images built from scratch with the project's own types: tar layers (the
//! `tar` crate), gzip (flate2), digests (`cairn_llb::Hasher`), and the manifest and
//! config structs of `cairn_cache::descriptor`. Everything is deterministic: the same
//! call gives byte-identical blobs, so tests can pin digests and compare pushes.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use bytes::Bytes;
use cairn_cache::descriptor::{
    ContainerConfig, Descriptor, History, ImageConfig, Index, Manifest, Platform, RootFs,
    media_types,
};
use cairn_llb::{Digest, Hasher};

use crate::tools::{Skip, require_tool};

/// Fixed timestamp for every entry and the config (`SOURCE_DATE_EPOCH`-style).
pub const EPOCH: u64 = 1_700_000_000;
const CREATED: &str = "2023-11-14T22:13:20Z";

/// A blob and its descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub descriptor: Descriptor,
    pub bytes: Bytes,
}

impl Blob {
    pub fn new(media_type: &str, bytes: impl Into<Bytes>) -> Blob {
        let bytes = bytes.into();
        Blob {
            descriptor: Descriptor::of_bytes(media_type, &bytes),
            bytes,
        }
    }

    pub fn digest(&self) -> &Digest {
        &self.descriptor.digest
    }
}

/// A compressed layer with the digest of its uncompressed tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub blob: Blob,
    pub diff_id: Digest,
    /// What made it, for the config history.
    pub created_by: String,
}

/// Builds one tar layer with normalised headers (root-owned unless told, fixed mtime).
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
    created_by: String,
}

impl LayerBuilder {
    pub fn new(created_by: &str) -> LayerBuilder {
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Deterministic);
        LayerBuilder {
            tar,
            created_by: created_by.to_owned(),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(EPOCH);
        h.set_size(size);
        h
    }

    /// A directory (`path` without a trailing slash).
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.dir_owned(path, mode, 0)
    }

    pub fn dir_owned(&mut self, path: &str, mode: u32, uid: u64) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, uid, 0);
        self.tar
            .append_data(
                &mut h,
                format!("{}/", path.trim_end_matches('/')),
                std::io::empty(),
            )
            .expect("appending to an in-memory tar cannot fail");
        self
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, 0, data.len() as u64);
        self.tar
            .append_data(&mut h, path, data)
            .expect("appending to an in-memory tar cannot fail");
        self
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0, 0);
        self.tar
            .append_link(&mut h, path, target)
            .expect("appending to an in-memory tar cannot fail");
        self
    }

    /// Deletes `path` of a lower layer (`dir/.wh.name`).
    pub fn whiteout(&mut self, path: &str) -> &mut Self {
        let (dir, name) = path.rsplit_once('/').map_or(("", path), |(d, n)| (d, n));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&wh, 0o644, b"")
    }

    /// Hides everything lower layers had in `dir` (`dir/.wh..wh..opq`).
    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.file(
            &format!("{}/.wh..wh..opq", dir.trim_end_matches('/')),
            0o644,
            b"",
        )
    }

    /// Finishes the tar and gzips it (level 1: tests care about speed, not ratio).
    pub fn finish(self) -> Layer {
        let tar = self
            .tar
            .into_inner()
            .expect("finishing an in-memory tar cannot fail");
        let mut h = Hasher::new();
        h.update(&tar);
        let diff_id = h.finalize();
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).expect("gzip into memory cannot fail");
        let gz = gz.finish().expect("gzip into memory cannot fail");
        Layer {
            blob: Blob::new(media_types::OCI_LAYER_GZIP, gz),
            diff_id,
            created_by: self.created_by,
        }
    }
}

/// An image: layers, config and OCI manifest, all as bytes ready to push.
#[derive(Debug, Clone)]
pub struct TestImage {
    pub layers: Vec<Layer>,
    pub config: Blob,
    pub manifest: Blob,
    pub platform: Platform,
}

impl TestImage {
    /// The manifest's digest (what a pushed tag resolves to without an index).
    pub fn digest(&self) -> &Digest {
        self.manifest.digest()
    }

    /// Every blob the manifest references: layers then config.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        self.layers
            .iter()
            .map(|l| &l.blob)
            .chain(std::iter::once(&self.config))
    }

    /// A manifest descriptor carrying the platform, for an index entry.
    pub fn index_entry(&self) -> Descriptor {
        let mut d = self.manifest.descriptor.clone();
        d.platform = Some(self.platform.clone());
        d
    }
}

/// Assembles layers into an image.
pub struct ImageBuilder {
    layers: Vec<Layer>,
    platform: Platform,
    config: ContainerConfig,
    docker: bool,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        ImageBuilder::new()
    }
}

impl ImageBuilder {
    /// An empty image for the host platform with `PATH` set.
    pub fn new() -> ImageBuilder {
        ImageBuilder {
            layers: Vec::new(),
            platform: Platform::host(),
            config: ContainerConfig {
                env: Some(vec![
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ]),
                ..ContainerConfig::default()
            },
            docker: false,
        }
    }

    /// Use Docker schema2 media types (manifest, config, gzip layers) instead of OCI.
    pub fn docker_media_types(mut self) -> Self {
        self.docker = true;
        self
    }

    pub fn layer(mut self, layer: Layer) -> Self {
        self.layers.push(layer);
        self
    }

    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    pub fn cmd(mut self, cmd: &[&str]) -> Self {
        self.config.cmd = Some(cmd.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.config
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
        self
    }

    pub fn build(mut self) -> TestImage {
        if self.docker {
            for l in &mut self.layers {
                l.blob.descriptor.media_type = media_types::DOCKER_LAYER_GZIP.into();
            }
        }
        let config = ImageConfig {
            created: Some(CREATED.into()),
            author: None,
            architecture: self.platform.architecture.clone(),
            os: self.platform.os.clone(),
            variant: self.platform.variant.clone(),
            os_version: None,
            config: Some(self.config),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: self.layers.iter().map(|l| l.diff_id.clone()).collect(),
            },
            history: self
                .layers
                .iter()
                .map(|l| History {
                    created: Some(CREATED.into()),
                    created_by: Some(l.created_by.clone()),
                    ..History::default()
                })
                .collect(),
        };
        let (manifest_type, config_type) = if self.docker {
            (media_types::DOCKER_MANIFEST, media_types::DOCKER_CONFIG)
        } else {
            (media_types::OCI_MANIFEST, media_types::OCI_CONFIG)
        };
        let config = Blob::new(
            config_type,
            serde_json::to_vec(&config).expect("an image config always serialises"),
        );
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(manifest_type.into()),
            config: config.descriptor.clone(),
            layers: self
                .layers
                .iter()
                .map(|l| l.blob.descriptor.clone())
                .collect(),
            subject: None,
            annotations: BTreeMap::new(),
        };
        let manifest = Blob::new(
            manifest_type,
            serde_json::to_vec(&manifest).expect("a manifest always serialises"),
        );
        TestImage {
            layers: self.layers,
            config,
            manifest,
            platform: self.platform,
        }
    }
}

/// An OCI index over `images`, each entry carrying its image's platform; a Docker
/// manifest list when every image uses Docker media types.
pub fn index_of(images: &[&TestImage]) -> Blob {
    let docker = !images.is_empty()
        && images
            .iter()
            .all(|i| i.manifest.descriptor.media_type == media_types::DOCKER_MANIFEST);
    let media_type = if docker {
        media_types::DOCKER_MANIFEST_LIST
    } else {
        media_types::OCI_INDEX
    };
    let index = Index {
        schema_version: 2,
        media_type: Some(media_type.into()),
        manifests: images.iter().map(|i| i.index_entry()).collect(),
        annotations: BTreeMap::new(),
    };
    Blob::new(
        media_type,
        serde_json::to_vec(&index).expect("an index always serialises"),
    )
}

/// The root file system of a busybox image from Debian's `busybox-static`: the binary
/// at `/bin/busybox`, a symlink for every applet, users `root`, `nobody` and `user`
/// (uid 1000), `/tmp` (1777), `/root` and `/home/user`.
pub fn busybox_layer() -> Result<Layer, Skip> {
    let bin = require_tool("busybox", "busybox-static")?;
    let binary = std::fs::read(&bin).unwrap_or_else(|e| panic!("reading {}: {e}", bin.display()));
    let list = std::process::Command::new(&bin)
        .arg("--list-full")
        .output()
        .unwrap_or_else(|e| panic!("running {} --list-full: {e}", bin.display()));
    assert!(
        list.status.success(),
        "{} --list-full failed",
        bin.display()
    );
    let mut applets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_owned())
        .filter(|l| !l.is_empty() && l != "bin/busybox" && !l.contains(".."))
        .collect();
    applets.sort();
    applets.dedup();
    Ok(busybox_layer_from(&binary, &applets))
}

fn busybox_layer_from(binary: &[u8], applets: &[String]) -> Layer {
    let mut l = LayerBuilder::new("busybox-static rootfs");
    for d in ["bin", "etc", "sbin", "usr", "usr/bin", "usr/sbin"] {
        l.dir(d, 0o755);
    }
    l.dir("home", 0o755)
        .dir_owned("home/user", 0o755, 1000)
        .dir("root", 0o700)
        .dir("tmp", 0o1777);
    l.dir("var", 0o755);
    l.file("bin/busybox", 0o755, binary);
    l.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
    );
    l.file(
        "etc/group",
        0o644,
        b"root:x:0:\nnogroup:x:65534:\nuser:x:1000:\n",
    );
    let dirs = ["bin", "sbin", "usr/bin", "usr/sbin"];
    for a in applets {
        let parent = Path::new(a).parent().and_then(Path::to_str).unwrap_or("");
        if dirs.contains(&parent) {
            l.symlink(a, "/bin/busybox");
        }
    }
    l.finish()
}

/// A single-layer busybox image for the host platform, `CMD ["sh"]`.
pub fn busybox_image() -> Result<TestImage, Skip> {
    Ok(ImageBuilder::new()
        .layer(busybox_layer()?)
        .cmd(&["sh"])
        .build())
}

/// Deterministic pseudo-random bytes (xorshift64*): incompressible enough that gzip
/// cannot shrink a "large" layer into a small one.
pub fn prng_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Paths in [`multi_layer_image`] that tests can look for.
pub mod multi_layer {
    /// Number of small files in the first layer.
    pub const SMALL_FILES: usize = 3000;
    /// Size of each large file in the second layer.
    pub const LARGE_FILE_SIZE: usize = 8 << 20;
    /// A file of layer 1 that layer 3 deletes with a whiteout.
    pub const DELETED: &str = "data/d00/e0/f00000.txt";
    /// A directory of layer 1 that layer 3 makes opaque (and puts one new file in).
    pub const OPAQUE_DIR: &str = "data/d01";
    pub const OPAQUE_NEW_FILE: &str = "data/d01/replaced.txt";
}

/// Path of small file `i` in the first layer: `data/dNN/eN/fNNNNN.txt`.
pub fn small_file_path(i: usize) -> String {
    format!("data/d{:02}/e{}/f{i:05}.txt", i / 100, (i / 10) % 10)
}

/// A four-layer image (no shell):
/// 1. 3000 small files in nested directories,
/// 2. three 8 MiB files of seeded pseudo-random data,
/// 3. a whiteout for one file of layer 1 and an opaque directory with a new file,
/// 4. a small marker file.
pub fn multi_layer_image() -> TestImage {
    use multi_layer::*;
    let mut small = LayerBuilder::new("3000 small files");
    small.dir("data", 0o755);
    for i in 0..SMALL_FILES {
        if i % 100 == 0 {
            small.dir(&format!("data/d{:02}", i / 100), 0o755);
        }
        if i % 10 == 0 {
            small.dir(&format!("data/d{:02}/e{}", i / 100, (i / 10) % 10), 0o755);
        }
        small.file(
            &small_file_path(i),
            0o644,
            format!("small file {i}\n").as_bytes(),
        );
    }
    let mut large = LayerBuilder::new("3 large files");
    large.dir("big", 0o755);
    for i in 0..3u64 {
        large.file(
            &format!("big/blob{i}.bin"),
            0o644,
            &prng_bytes(0xC0FFEE + i, LARGE_FILE_SIZE),
        );
    }
    let mut del = LayerBuilder::new("delete and replace");
    del.dir("data", 0o755)
        .dir("data/d00", 0o755)
        .dir("data/d00/e0", 0o755);
    del.whiteout(DELETED);
    del.dir(OPAQUE_DIR, 0o755).opaque(OPAQUE_DIR);
    del.file(OPAQUE_NEW_FILE, 0o644, b"replaced\n");
    let mut last = LayerBuilder::new("marker");
    last.file("marker.txt", 0o644, b"multi-layer test image\n");
    ImageBuilder::new()
        .layer(small.finish())
        .layer(large.finish())
        .layer(del.finish())
        .layer(last.finish())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(layer: &Layer) -> Vec<(String, tar::EntryType, Vec<u8>, Option<String>)> {
        let tar = flate2::read::GzDecoder::new(&layer.blob.bytes[..]);
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let kind = e.header().entry_type();
                let link = e
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned());
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut data).unwrap();
                (path, kind, data, link)
            })
            .collect()
    }

    #[test]
    fn layers_are_deterministic_and_digests_match_bytes() {
        let a = busybox_layer_from(b"binary", &["bin/sh".into(), "usr/bin/awk".into()]);
        let b = busybox_layer_from(b"binary", &["bin/sh".into(), "usr/bin/awk".into()]);
        assert_eq!(a, b);
        assert_eq!(a.blob.descriptor.digest, Digest::of_bytes(&a.blob.bytes));
        let mut raw = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&a.blob.bytes[..]),
            &mut raw,
        )
        .unwrap();
        assert_eq!(a.diff_id, Digest::of_bytes(&raw));
        let e = entries(&a);
        let sh = e.iter().find(|x| x.0 == "bin/sh").unwrap();
        assert_eq!(
            (sh.1, sh.3.as_deref()),
            (tar::EntryType::Symlink, Some("/bin/busybox"))
        );
        assert!(e.iter().any(|x| x.0 == "tmp/"));
        assert!(
            e.iter()
                .any(|x| x.0 == "etc/passwd"
                    && String::from_utf8_lossy(&x.2).contains("user:x:1000"))
        );
    }

    #[test]
    fn image_config_and_manifest_reference_the_layers() {
        let layer = busybox_layer_from(b"bin", &[]);
        let img = ImageBuilder::new()
            .layer(layer.clone())
            .cmd(&["sh"])
            .build();
        let m: Manifest = serde_json::from_slice(&img.manifest.bytes).unwrap();
        assert_eq!(m.layers, vec![layer.blob.descriptor.clone()]);
        assert_eq!(m.config, img.config.descriptor);
        let c: ImageConfig = serde_json::from_slice(&img.config.bytes).unwrap();
        assert_eq!(c.rootfs.diff_ids, vec![layer.diff_id]);
        assert_eq!(c.platform(), Platform::host());
        let idx: Index = serde_json::from_slice(&index_of(&[&img]).bytes).unwrap();
        assert_eq!(idx.manifests[0].digest, *img.digest());
        assert_eq!(idx.manifests[0].platform.as_ref(), Some(&Platform::host()));
    }

    #[test]
    fn multi_layer_image_has_whiteouts_and_large_incompressible_files() {
        let img = multi_layer_image();
        assert_eq!(img.layers.len(), 4);
        let small = entries(&img.layers[0]);
        assert_eq!(
            small
                .iter()
                .filter(|e| e.1 == tar::EntryType::Regular)
                .count(),
            multi_layer::SMALL_FILES
        );
        assert!(small.iter().any(|e| e.0 == multi_layer::DELETED));
        assert!(img.layers[1].blob.bytes.len() > 3 * multi_layer::LARGE_FILE_SIZE * 9 / 10);
        let del = entries(&img.layers[2]);
        assert!(del.iter().any(|e| e.0 == "data/d00/e0/.wh.f00000.txt"));
        assert!(del.iter().any(|e| e.0 == "data/d01/.wh..wh..opq"));
        assert_eq!(prng_bytes(1, 16), prng_bytes(1, 16));
        assert_ne!(prng_bytes(1, 16), prng_bytes(2, 16));
    }
}
