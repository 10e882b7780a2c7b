//! Test support for cairn's end-to-end tests: real parts, started and torn down per test.
//!
//! A `docker-registry` on a free loopback port, busybox and multi-layer images built from
//! Debian's `busybox-static` as real OCI blobs, and helpers to push them.
//!
//! Helpers that need a host tool return `Result<_, Skip>`: under `CI=true` a missing
//! tool panics instead (the test fails), elsewhere tests print the reason and return,
//! usually through [`skip_unless!`].
//!
//! A typical test:
//!
//! ```text
//! #[tokio::test]
//! async fn pulls_busybox() {
//!     let reg = skip_unless!(TestRegistry::start());        // own registry, own storage
//!     let image = skip_unless!(busybox_image());             // real blobs, deterministic
//!     push_image(&reg, &image, "library/busybox:latest").await;
//!     reg.write_cairn_toml(&root.join("cairn.toml"))?;       // docker.io -> this registry
//!     // ... build `FROM busybox` ...
//!     assert_eq!(reg.blob_downloads(image.layers[0].blob.digest()), 1);
//! }
//! ```
//!
//! Beyond the plain registry: [`RegistryOptions`] adds htpasswd Basic auth, HTTPS with
//! a self-signed certificate, or (with [`TokenServer`]) bearer-token auth verified by the
//! registry itself; [`FlakyProxy`] injects `5xx`/`429` answers in front of a registry.

pub mod cli;
pub mod image;
pub mod proxy;
pub mod push;
pub mod registry;
pub mod token;
pub mod tools;

pub use image::{
    Blob, ImageBuilder, Layer, LayerBuilder, TestImage, busybox_image, busybox_layer, index_of,
    multi_layer_image,
};
pub use proxy::FlakyProxy;
pub use push::{push_image, push_image_with, push_index, reference};
pub use registry::{AccessEntry, RegistryOptions, TestRegistry};
pub use token::{TokenRequest, TokenServer};
pub use tools::{Skip, in_ci, require_tool};
