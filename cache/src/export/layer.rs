//! Layer blobs for export: computing the ones that do not exist yet, and the descriptor
//! annotations that carry a blob's diff id and its registry of origin.

use std::path::{Path, PathBuf};

use cairn_snapshot::{LayerWriteOptions, diff_dirs, write_layer};

use super::error::ExportError;
use super::options::ImageOptions;
use crate::content::ContentStore;
use crate::metadata::LayerBlob;

/// The annotation containerd and BuildKit put a compressed layer's diff id under.
pub const UNCOMPRESSED_ANNOTATION: &str = "containerd.io/uncompressed";

/// The annotation key naming the repositories (comma-separated) of registry `host` that
/// already hold a blob, as containerd writes it: a push to that host mounts the blob from
/// there instead of reading it.
pub fn distribution_source_key(host: &str) -> String {
    format!("containerd.io/distribution.source.{host}")
}

/// Computes the layer that turns `lower` (or nothing) into `upper`, compressed as
/// `options` say, and commits it to `store`. Whiteouts are written for what `upper`
/// lacks. Runs the walk and compression in one blocking task.
pub async fn compute_layer(
    store: &ContentStore,
    lower: Option<&Path>,
    upper: &Path,
    options: &ImageOptions,
    source_date_epoch: Option<i64>,
) -> Result<LayerBlob, ExportError> {
    let store = store.clone();
    let lower: Option<PathBuf> = lower.map(Path::to_path_buf);
    let upper = upper.to_path_buf();
    let opts = LayerWriteOptions {
        compression: options.compression,
        level: options.compression_level,
        source_date_epoch,
    };
    tokio::task::spawn_blocking(move || {
        let layer_err = |source| ExportError::Layer {
            upper: upper.clone(),
            source: Box::new(source),
        };
        let changes = diff_dirs(lower.as_deref(), &upper).map_err(layer_err)?;
        let mut writer = store.writer()?;
        let written = write_layer(&changes, &upper, &mut writer, &opts).map_err(layer_err)?;
        let committed = writer.commit(None)?;
        Ok(LayerBlob::written(&written, committed))
    })
    .await
    .map_err(ExportError::Join)?
}

/// A layer to compute: the snapshot below (`None` for a base layer) and the one on top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDiff {
    pub lower: Option<PathBuf>,
    pub upper: PathBuf,
}

/// Computes several layers at once, one blocking task each (compression is the slow part
/// of an export and runs on one core per layer), returning them in input order.
pub async fn compute_layers(
    store: &ContentStore,
    diffs: &[LayerDiff],
    options: &ImageOptions,
    source_date_epoch: Option<i64>,
) -> Result<Vec<LayerBlob>, ExportError> {
    futures::future::try_join_all(diffs.iter().map(|d| {
        compute_layer(
            store,
            d.lower.as_deref(),
            &d.upper,
            options,
            source_date_epoch,
        )
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn computes_layers_in_order_with_whiteouts_and_annotations() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(a.join("keep"), b"k").unwrap();
        std::fs::write(a.join("drop"), b"d").unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("keep"), b"k").unwrap();
        // The diff compares mtimes as containerd does: an unchanged file must keep its time,
        // or whether the two writes land on one clock tick decides the result.
        let when = std::fs::metadata(a.join("keep"))
            .unwrap()
            .modified()
            .unwrap();
        std::fs::File::options()
            .write(true)
            .open(b.join("keep"))
            .unwrap()
            .set_modified(when)
            .unwrap();
        let store = ContentStore::open(&t.path().join("state")).unwrap();
        let diffs = [
            LayerDiff {
                lower: None,
                upper: a.clone(),
            },
            LayerDiff {
                lower: Some(a.clone()),
                upper: b.clone(),
            },
        ];
        let layers = compute_layers(&store, &diffs, &ImageOptions::default(), Some(0))
            .await
            .unwrap();
        assert_eq!(layers.len(), 2);
        for l in &layers {
            assert!(store.contains(&l.descriptor.digest));
            assert_eq!(
                l.descriptor.annotations[UNCOMPRESSED_ANNOTATION],
                l.diff_id.to_string()
            );
        }
        let top = store.read(&layers[1].descriptor.digest).unwrap();
        let mut ar = tar::Archive::new(flate2::read::MultiGzDecoder::new(&top[..]));
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [".wh.drop"], "the second layer only deletes");
        let again = compute_layers(&store, &diffs, &ImageOptions::default(), Some(0))
            .await
            .unwrap();
        assert_eq!(again, layers, "deterministic");
        let e = compute_layer(
            &store,
            None,
            &t.path().join("missing"),
            &ImageOptions::default(),
            None,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, ExportError::Layer { .. }), "{e}");
    }
}
