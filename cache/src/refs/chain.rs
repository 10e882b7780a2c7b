//! Chain ids: the identity of a stack of layers, by content (`chain_id`, over diff ids, as
//! the OCI image spec defines it) and by blob (`blob_chain_id`, BuildKit's, which also
//! tells compressions apart).

use cairn_llb::Digest;

use crate::descriptor::media_types;
use crate::metadata::LayerBlob;

/// `ChainID(parent|layer) = sha256(parent + " " + layer)`, and a base layer's is its own id.
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => Digest::of_bytes(format!("{p} {diff_id}").as_bytes()),
    }
}

/// BuildKit's `blobChainID = ChainID(parent.blobChainID, ChainID(blob, diffID))`.
pub fn blob_chain_id(parent: Option<&Digest>, blob: &LayerBlob) -> Digest {
    let own = Digest::of_bytes(format!("{} {}", blob.descriptor.digest, blob.diff_id).as_bytes());
    chain_id(parent, &own)
}

/// The annotation containerd and BuildKit put the diff id of a compressed layer under.
pub const UNCOMPRESSED_ANNOTATION: &str = "containerd.io/uncompressed";

/// The diff id of a layer descriptor when it can be told from the descriptor alone: an
/// uncompressed layer is its own diff id; otherwise the `containerd.io/uncompressed`
/// annotation. Images give diff ids in their config (`rootfs.diff_ids`); prefer those.
pub fn diff_id_from_descriptor(desc: &crate::descriptor::Descriptor) -> Option<Digest> {
    if desc.media_type == media_types::OCI_LAYER_TAR
        || desc.media_type == media_types::OCI_LAYER_NONDIST_TAR
    {
        return Some(desc.digest.clone());
    }
    desc.annotations
        .get(UNCOMPRESSED_ANNOTATION)
        .and_then(|s| Digest::parse(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::Descriptor;

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = Digest::of_bytes(b"a");
        let b = Digest::of_bytes(b"b");
        assert_eq!(chain_id(None, &a), a);
        let ab = chain_id(Some(&a), &b);
        assert_eq!(ab, Digest::of_bytes(format!("{a} {b}").as_bytes()));
        assert_ne!(ab, chain_id(Some(&b), &a));
    }

    #[test]
    fn blob_chain_id_tells_compressions_apart() {
        let diff = Digest::of_bytes(b"tar");
        let gz = LayerBlob {
            descriptor: Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, b"gz"),
            diff_id: diff.clone(),
        };
        let zst = LayerBlob {
            descriptor: Descriptor::of_bytes(media_types::OCI_LAYER_ZSTD, b"zst"),
            diff_id: diff,
        };
        assert_ne!(blob_chain_id(None, &gz), blob_chain_id(None, &zst));
    }

    #[test]
    fn diff_id_from_annotation_or_uncompressed_type() {
        let tar = Descriptor::of_bytes(media_types::OCI_LAYER_TAR, b"t");
        assert_eq!(diff_id_from_descriptor(&tar), Some(tar.digest.clone()));
        let mut gz = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, b"g");
        assert_eq!(diff_id_from_descriptor(&gz), None);
        gz.annotations.insert(
            UNCOMPRESSED_ANNOTATION.into(),
            Digest::of_bytes(b"u").to_string(),
        );
        assert_eq!(diff_id_from_descriptor(&gz), Some(Digest::of_bytes(b"u")));
        gz.annotations
            .insert(UNCOMPRESSED_ANNOTATION.into(), "garbage".into());
        assert_eq!(diff_id_from_descriptor(&gz), None);
    }
}
