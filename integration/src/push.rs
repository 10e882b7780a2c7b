//! Pushing test images with cairn's own registry client, so every end-to-end test also
//! exercises the push path.

use cairn_cache::reference::Reference;
use cairn_cache::registry::{BlobData, PushOutcome, RegistryClient, RegistryError};
use cairn_llb::Digest;

use crate::image::{Blob, TestImage, index_of};
use crate::registry::TestRegistry;

/// `127.0.0.1:PORT/<name>` as a reference (`name` like `library/busybox:latest`).
pub fn reference(registry: &TestRegistry, name: &str) -> Reference {
    Reference::parse(&format!("{}/{name}", registry.host()))
        .unwrap_or_else(|e| panic!("test image name {name:?}: {e}"))
}

/// Pushes `image`'s blobs (skipping those present) and its manifest under `name`,
/// returning the manifest digest and what happened to each blob (layers, then config).
pub async fn push_image_with(
    client: &RegistryClient,
    target: &Reference,
    image: &TestImage,
) -> Result<(Digest, Vec<PushOutcome>), RegistryError> {
    let mut outcomes = Vec::new();
    for blob in image.blobs() {
        outcomes.push(push_blob(client, target, blob).await?);
    }
    let digest = client
        .push_manifest(
            target,
            &image.manifest.descriptor.media_type,
            image.manifest.bytes.clone(),
        )
        .await?;
    Ok((digest, outcomes))
}

async fn push_blob(
    client: &RegistryClient,
    target: &Reference,
    blob: &Blob,
) -> Result<PushOutcome, RegistryError> {
    client
        .push_blob(
            target,
            &blob.descriptor,
            BlobData::Bytes(blob.bytes.clone()),
            None,
        )
        .await
}

/// Pushes `image` to `registry` as `name` with the registry's own client; panics (failing
/// the test) on error. Returns the manifest digest.
pub async fn push_image(registry: &TestRegistry, image: &TestImage, name: &str) -> Digest {
    let target = reference(registry, name);
    let (digest, _) = push_image_with(&registry.client(), &target, image)
        .await
        .unwrap_or_else(|e| panic!("pushing {target}: {e}\nregistry log:\n{}", registry.log()));
    digest
}

/// Pushes each image by digest, then an OCI index over them under `name`; returns the
/// index digest.
pub async fn push_index(registry: &TestRegistry, images: &[&TestImage], name: &str) -> Digest {
    let client = registry.client();
    let target = reference(registry, name);
    for image in images {
        let by_digest = target.with_digest(image.digest().clone());
        let untagged = Reference::parse_named(&format!("{}@{}", target.name(), image.digest()))
            .unwrap_or_else(|e| panic!("{by_digest}: {e}"));
        push_image_with(&client, &untagged, image)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "pushing {by_digest}: {e}\nregistry log:\n{}",
                    registry.log()
                )
            });
    }
    let index = index_of(images);
    client
        .push_manifest(&target, &index.descriptor.media_type, index.bytes.clone())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "pushing index {target}: {e}\nregistry log:\n{}",
                registry.log()
            )
        })
}
