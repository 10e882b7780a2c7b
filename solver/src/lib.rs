//! Turning an LLB definition into work: the vertex graph, cache keys, scheduling with
//! single-flight dedup across concurrent solves, cancellation, progress events, the
//! ancestor walk for cache options, and the op implementations with their executor.
//!
//! Must not know how snapshots are stored on disk: it talks to the cache through refs.
//!
//! Key types: [`VertexGraph`] of [`Vertex`]es, each with an [`Op`] ([`load_llb`] builds
//! one from a validated LLB graph); the [`Solver`] that runs them; [`CacheKeyStorage`]
//! and [`ResultStore`], the seams the cache implements; [`SolveStatus`], the progress
//! events; [`ops::file`], FileOp actions on directories.

pub mod cache_opts;
pub mod engine;
pub mod error;
pub mod executor;
pub mod graph;
pub mod key;
pub mod load;
pub mod op;
pub mod ops;
mod parallel;
pub mod progress;
pub mod result;
pub mod storage;
pub mod worker;

pub use cache_opts::{CacheOpts, desc_handler_key, walk_ancestors};
pub use engine::{SolveOptions, SolveOutput, Solver, SolverConfig, VertexKeys};
pub use error::{OpError, SolveError, StorageError};
pub use graph::{Edge, GraphError, ProgressGroup, Vertex, VertexGraph, VertexId};
pub use key::CacheKey;
pub use load::{LoadError, load_llb};
pub use op::{CacheMap, ComputeDigest, Dep, ExecCtx, Op, OpCtx};
pub use progress::{
    ProgressWriter, SolveStatus, Stream, VertexEvent, VertexLog, VertexStatus, VertexWarning,
};
pub use result::{ResultRef, SolverResult, downcast};
pub use storage::{CacheKeyStorage, CacheRecord, ImportedCache, MemoryCache, ResultStore};

/// What the CLI needs to parse `--output` before a solve: the exporter's own grammar, so the
/// flag and the exporter can never disagree (the CLI may not depend on the cache crate).
pub use cairn_cache::export::{ExportSpec, SpecError};
