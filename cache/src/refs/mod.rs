//! Refs: leased handles on cache records. Immutable refs (possibly lazy: layers known by
//! descriptor whose files are fetched and extracted on first use), mutable refs (scratch
//! snapshots), and the manager that hands them out, sweeps and prunes.

mod blobs;
mod chain;
mod diff;
mod diff_snapshot;
mod handlers;
mod image;
mod immutable;
mod manager;
mod mutable;
mod remote;
mod unlazy;

pub use chain::{UNCOMPRESSED_ANNOTATION, blob_chain_id, chain_id, diff_id_from_descriptor};
pub use handlers::{DescHandler, DescHandlers, LayerPhase, LayerProgress, ProgressSink};
pub use image::{layer_blobs, registry_handlers};
pub use immutable::ImmutableRef;
pub use manager::{CacheManager, DiskUsage, PruneReport, SweepReport};
pub use mutable::MutableRef;
pub use remote::{DISTRIBUTION_SOURCE_PREFIX, Remote};

#[cfg(test)]
mod diff_tests;
#[cfg(test)]
mod tests;
