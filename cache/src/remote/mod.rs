//! Remote build caches (`--cache-to` / `--cache-from`): the solver's cache keys and the
//! layer chains of their results, published as one OCI artifact in a registry or an OCI
//! layout directory, so an empty machine can find a step's result by its key and use the
//! layers lazily.
//!
//! This module owns the format ([`format`], documented in `docs/remote-cache.md`) and the
//! two transports; which keys and results go in is the solver's business.

pub mod error;
pub mod format;
mod transport;

pub use error::RemoteCacheError;
pub use format::{
    CONFIG_MEDIA_TYPE, CacheConfig, CacheEntry, CacheResult, FORMAT_VERSION, INLINE_FIELD,
};
pub use transport::{CacheArtifact, CacheLocation, LoadedCache, fetch_cache, publish_cache};
