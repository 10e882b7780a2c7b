//! From a resolved image to what the ref API takes: layer blobs paired with their diff ids,
//! and descriptor handlers that fetch from the image's registry.

use std::sync::Arc;

use cairn_llb::Digest;

use super::handlers::{DescHandler, DescHandlers, ProgressSink};
use crate::content::RegistryProvider;
use crate::descriptor::{Descriptor, media_types};
use crate::error::CacheError;
use crate::metadata::LayerBlob;
use crate::reference::Reference;
use crate::registry::RegistryClient;

/// Pairs a manifest's layers with the config's `rootfs.diff_ids`, bottom first. The two
/// lists must be as long as each other, and every layer must be a layer media type.
pub fn layer_blobs(
    image: &str,
    layers: &[Descriptor],
    diff_ids: &[Digest],
) -> Result<Vec<LayerBlob>, CacheError> {
    if layers.len() != diff_ids.len() {
        return Err(CacheError::BadImage {
            image: image.to_owned(),
            reason: format!(
                "the manifest lists {} layers but the config lists {} diff ids",
                layers.len(),
                diff_ids.len()
            ),
        });
    }
    layers
        .iter()
        .zip(diff_ids)
        .map(|(desc, diff_id)| {
            if !media_types::is_layer(&desc.media_type) {
                return Err(CacheError::BadImage {
                    image: image.to_owned(),
                    reason: format!("layer {} has media type {:?}", desc.digest, desc.media_type),
                });
            }
            Ok(LayerBlob {
                descriptor: desc.clone(),
                diff_id: diff_id.clone(),
            })
        })
        .collect()
}

/// One handler per layer, fetching from `reference`'s repository through `client`.
pub fn registry_handlers(
    client: &RegistryClient,
    reference: &Reference,
    layers: &[Descriptor],
    progress: Option<ProgressSink>,
) -> DescHandlers {
    let provider = Arc::new(RegistryProvider::new(client.clone(), reference.clone()));
    layers
        .iter()
        .map(|d| {
            (
                d.digest.clone(),
                DescHandler {
                    provider: provider.clone(),
                    progress: progress.clone(),
                    image_ref: reference.to_string(),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_blobs_pairs_and_checks() {
        let l = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, b"l");
        let d = Digest::of_bytes(b"d");
        let got =
            layer_blobs("img", std::slice::from_ref(&l), std::slice::from_ref(&d)).expect("pairs");
        assert_eq!(got[0].diff_id, d);
        assert!(matches!(
            layer_blobs("img", std::slice::from_ref(&l), &[]),
            Err(CacheError::BadImage { .. })
        ));
        let cfg = Descriptor::of_bytes(media_types::OCI_CONFIG, b"c");
        let err = layer_blobs("img", &[cfg], &[d]).expect_err("not a layer");
        assert!(err.to_string().contains("img"), "{err}");
    }
}
