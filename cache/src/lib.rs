//! Results and their bytes: the content store, the metadata database, immutable and
//! mutable refs with leases, lazy refs backed by remote blobs and the descriptor handlers
//! that unlazy them, layer blobs, the registry client, and garbage collection.
//!
//! Must not know about build graphs or Dockerfiles: it is asked for refs by digest and
//! descriptor, and answers with refs or a typed "needs remote providers" error.
//!
//! # Key types
//!
//! - [`CacheManager`] (one per process and state root): opens everything below, sweeps
//!   what dead processes left, hands out refs, prunes.
//! - [`ImmutableRef`] / [`MutableRef`]: leased handles on records. A lazy immutable ref
//!   knows its layers by descriptor only; [`ImmutableRef::extract`] with
//!   [`DescHandlers`] fetches, verifies and extracts them, once across tasks and processes.
//! - [`content::ContentStore`] with the [`content::ContentProvider`] seam: verified blobs.
//! - [`metadata::MetadataDb`]: records, leases, cache keys (SQLite, shared by processes).
//! - [`flight::Flight`]: single-flight that cancels only when nobody waits.
//! - [`lock`]: every file lock, and the multi-process protocol written down.
//!
//! # Crash safety
//!
//! Files are built aside, fsynced and renamed into place before the row naming them
//! commits; on delete the row goes first and the files after. Start-up sweeps what an
//! interrupted run left: partial downloads are kept and resumed, everything else that no
//! row names (and no live process holds a lock on) is removed.
pub mod content;
pub mod error;
pub mod flight;
pub mod lock;
pub mod metadata;
pub mod refs;

pub mod descriptor;
pub mod export;
pub mod reference;
pub mod registry;
pub mod remote;

/// The snapshotter the cache is built on, for callers that mount what refs give them.
pub use cairn_snapshot as snapshot;
pub use error::CacheError;
pub use refs::{CacheManager, DescHandler, DescHandlers, ImmutableRef, MutableRef};
