//! `force-compression`: an existing layer whose compression differs from the one asked for
//! is converted (decompressed, recompressed) into a new blob. Without the option, existing
//! blobs are always used as they are.

use std::io::{self, BufReader, Read, Write};
use std::sync::Arc;

use cairn_llb::Hasher;
use cairn_snapshot::Compression;

use super::error::ExportError;
use super::layer::UNCOMPRESSED_ANNOTATION;
use super::options::ImageOptions;
use crate::content::{ContentProvider, ContentStore};
use crate::descriptor::{Descriptor, media_types as mt};
use crate::metadata::LayerBlob;

/// The compression a layer media type declares, `None` when it is not a layer type.
pub fn compression_of(media_type: &str) -> Option<Compression> {
    match media_type {
        mt::OCI_LAYER_GZIP
        | mt::OCI_LAYER_NONDIST_GZIP
        | mt::DOCKER_LAYER_GZIP
        | mt::DOCKER_LAYER_FOREIGN => Some(Compression::Gzip),
        mt::OCI_LAYER_ZSTD => Some(Compression::Zstd),
        mt::OCI_LAYER_TAR | mt::OCI_LAYER_NONDIST_TAR | super::assemble::DOCKER_LAYER_TAR => {
            Some(Compression::None)
        }
        _ => None,
    }
}

/// `layer` as `options` want it: unchanged unless `force_compression` is set and its
/// compression differs, else converted into a new blob in `store` (the original is
/// fetched from `provider` first if the store lacks it). The diff id is checked against
/// the decompressed bytes, so a blob that does not match its declared diff id is refused.
pub async fn ensure_compression(
    store: &ContentStore,
    provider: Arc<dyn ContentProvider>,
    layer: &LayerBlob,
    options: &ImageOptions,
) -> Result<LayerBlob, ExportError> {
    let current = compression_of(&layer.descriptor.media_type);
    if !options.force_compression || current == Some(options.compression) {
        return Ok(layer.clone());
    }
    if mt::is_non_distributable(&layer.descriptor.media_type) {
        return Ok(layer.clone());
    }
    store.fetch(&layer.descriptor, provider, |_| {}).await?;
    let store = store.clone();
    let layer = layer.clone();
    let options = *options;
    tokio::task::spawn_blocking(move || convert(&store, &layer, &options))
        .await
        .map_err(ExportError::Join)?
}

fn convert(
    store: &ContentStore,
    layer: &LayerBlob,
    options: &ImageOptions,
) -> Result<LayerBlob, ExportError> {
    let src = &layer.descriptor;
    let path = store.blob_path(&src.digest);
    let file = store.open_blob(&src.digest)?;
    let rerr = |source| ExportError::Io {
        op: "decompressing layer",
        path: path.clone(),
        source,
    };
    let mut reader: Box<dyn Read> = match compression_of(&src.media_type) {
        Some(Compression::Gzip) => {
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
        }
        Some(Compression::Zstd) => Box::new(zstd::stream::read::Decoder::new(file).map_err(rerr)?),
        Some(Compression::None) => Box::new(BufReader::new(file)),
        None => {
            return Err(ExportError::NotALayer {
                index: 0,
                digest: src.digest.clone(),
                media_type: src.media_type.clone(),
            });
        }
    };
    let mut writer = store.writer()?;
    let mut diff = Hasher::new();
    let werr = |source| ExportError::Io {
        op: "recompressing layer",
        path: path.clone(),
        source,
    };
    {
        let mut enc = Encoder::new(&mut writer, options).map_err(werr)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf).map_err(rerr)?;
            if n == 0 {
                break;
            }
            diff.update(&buf[..n]);
            enc.write_all(&buf[..n]).map_err(werr)?;
        }
        enc.finish().map_err(werr)?;
    }
    let diff_id = diff.finalize();
    if diff_id != layer.diff_id {
        return Err(ExportError::DiffIdMismatch {
            digest: src.digest.clone(),
            declared: layer.diff_id.clone(),
            actual: diff_id,
        });
    }
    let committed = writer.commit(None)?;
    let media_type = format!(
        "{}{}",
        mt::OCI_LAYER_TAR,
        options.compression.media_type_suffix()
    );
    let mut descriptor = Descriptor::new(media_type, committed.digest, committed.size);
    descriptor
        .annotations
        .insert(UNCOMPRESSED_ANNOTATION.into(), diff_id.to_string());
    Ok(LayerBlob {
        descriptor,
        diff_id,
    })
}

enum Encoder<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    fn new(out: W, o: &ImageOptions) -> io::Result<Encoder<W>> {
        Ok(match o.compression {
            Compression::None => Encoder::None(out),
            Compression::Gzip => {
                let level = o
                    .compression_level
                    .and_then(|l| u32::try_from(l).ok())
                    .unwrap_or(6)
                    .min(9);
                Encoder::Gzip(flate2::write::GzEncoder::new(
                    out,
                    flate2::Compression::new(level),
                ))
            }
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(
                out,
                o.compression_level.unwrap_or(3),
            )?),
        })
    }

    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.write_all(b),
            Encoder::Gzip(w) => w.write_all(b),
            Encoder::Zstd(w) => w.write_all(b),
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            Encoder::None(mut w) => w.flush(),
            Encoder::Gzip(w) => w.finish().and_then(|mut w| w.flush()),
            Encoder::Zstd(w) => w.finish().and_then(|mut w| w.flush()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::compute_layer;

    async fn gzip_layer(store: &ContentStore) -> (tempfile::TempDir, LayerBlob) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("tree");
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::write(dir.join("a/file"), vec![7u8; 10_000]).unwrap();
        let layer = compute_layer(store, None, &dir, &ImageOptions::default(), Some(0))
            .await
            .unwrap();
        (t, layer)
    }

    #[tokio::test]
    async fn converts_only_when_forced_and_keeps_the_diff_id() {
        let root = tempfile::tempdir().unwrap();
        let store = ContentStore::open(root.path()).unwrap();
        let (_t, gz) = gzip_layer(&store).await;
        assert_eq!(gz.descriptor.media_type, mt::OCI_LAYER_GZIP);
        let provider: Arc<dyn ContentProvider> = Arc::new(store.provider());

        let zstd_unforced = ImageOptions {
            compression: Compression::Zstd,
            ..ImageOptions::default()
        };
        assert_eq!(
            ensure_compression(&store, provider.clone(), &gz, &zstd_unforced)
                .await
                .unwrap(),
            gz
        );

        let forced = ImageOptions {
            force_compression: true,
            ..zstd_unforced
        };
        let zst = ensure_compression(&store, provider.clone(), &gz, &forced)
            .await
            .unwrap();
        assert_eq!(zst.descriptor.media_type, mt::OCI_LAYER_ZSTD);
        assert_eq!(zst.diff_id, gz.diff_id);
        assert_ne!(zst.descriptor.digest, gz.descriptor.digest);
        let bytes = store.read(&zst.descriptor.digest).unwrap();
        assert_eq!(Compression::detect(&bytes), Compression::Zstd);

        let back = ImageOptions {
            compression: Compression::None,
            force_compression: true,
            ..ImageOptions::default()
        };
        let tar = ensure_compression(&store, provider, &zst, &back)
            .await
            .unwrap();
        assert_eq!(
            tar.descriptor.digest, gz.diff_id,
            "an uncompressed layer is its own diff id"
        );
    }

    #[tokio::test]
    async fn a_blob_not_matching_its_diff_id_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let store = ContentStore::open(root.path()).unwrap();
        let (_t, mut gz) = gzip_layer(&store).await;
        gz.diff_id = cairn_llb::Digest::of_bytes(b"something else");
        let forced = ImageOptions {
            compression: Compression::Zstd,
            force_compression: true,
            ..ImageOptions::default()
        };
        let e = ensure_compression(&store, Arc::new(store.provider()), &gz, &forced)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("declared diff id"), "{e}");
        assert_eq!(compression_of(mt::OCI_CONFIG), None);
    }
}
