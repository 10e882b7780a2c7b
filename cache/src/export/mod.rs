//! Exporting a build result: assembling the image (config, manifest) from a base config,
//! the frontend's config changes and the result's layer chain; writing it as an OCI layout
//! (tar or directory) or a `docker save`-style archive; pushing it to a registry; and
//! exporting the result's files as a directory or one tar stream.
//!
//! Rules every writer here keeps:
//! - Digests are over the exact bytes written: config and manifest are serialised once,
//!   canonically (sorted keys, no insignificant whitespace), and those bytes travel with
//!   their descriptors ([`AssembledImage`]).
//! - Layer blobs that already exist are used as they are; only layers without a blob are
//!   computed ([`compute_layer`]). Blob bytes are streamed from a
//!   [`ContentProvider`](crate::content::ContentProvider) and verified on the way, so an
//!   export that needs no bytes (a push of blobs the registry has, a cross-repo mount)
//!   reads none.
//! - Outputs are written under temporary names beside the destination and renamed into
//!   place; a failed export leaves no half-written destination.
//!
//! The flow a caller (the CLI) follows:
//! 1. `ExportSpec::parse(--output)`; its [`ExportSpec::image_options`] say how to encode.
//! 2. The result's layer chain: existing blobs as they are, [`compute_layers`] for the
//!    rest, [`ensure_compression`] only under `force-compression`.
//! 3. [`assemble`] with the base config, the frontend's [`ConfigChanges`] and history,
//!    and [`source_date_epoch_from_env`].
//! 4. [`export_image`] (OCI / docker archive, OCI directory, push), or for `local` /
//!    `tar` outputs [`export_local`] / [`export_tar_to`] on the mounted result.
//! 5. [`write_metadata_file`] with the response's metadata for `--metadata-file`.

mod archive;
mod assemble;
mod config;
mod dispatch;
mod error;
mod json;
mod layer;
mod local;
mod metadata_file;
mod options;
mod push;
mod recompress;
mod spec;
mod time;

pub use archive::{
    ImageNames, write_docker_archive, write_docker_archive_to, write_oci_archive,
    write_oci_archive_to, write_oci_dir,
};
pub use assemble::{
    AssembleInput, AssembledImage, BaseConfig, DOCKER_LAYER_TAR, HistoryEntry, assemble,
};
pub use config::{ConfigChanges, Healthcheck};
pub use dispatch::{ExportContext, ExportResponse, export_image};
pub use error::{ExportError, SpecError};
pub use json::canonical_json;
pub use layer::{
    LayerDiff, UNCOMPRESSED_ANNOTATION, compute_layer, compute_layers, distribution_source_key,
};
pub use local::{export_local, export_tar, export_tar_to};
pub use metadata_file::{metadata_json, write_metadata_file};
pub use options::{CompressionKind, ImageOptions};
pub use push::{BlobPush, PushReport, push_image};
pub use recompress::{compression_of, ensure_compression};
pub use spec::{Dest, ExportSpec};
pub use time::{rfc3339, source_date_epoch_from_env};
