//! Blobs by digest: verified, committed atomically, fetched once across tasks and
//! processes, resumable after a crash.

mod error;
mod ingest;
mod provider;
mod registry_provider;
mod store;

pub use error::{ContentError, ProviderError};
pub use ingest::IngestProgress;
pub use provider::{ByteStream, ContentProvider, LayoutProvider};
pub use registry_provider::RegistryProvider;
pub use store::{BlobInfo, BlobWriter, Committed, ContentStore, SweepReport};

#[cfg(test)]
mod tests;
