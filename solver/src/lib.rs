//! Turning an LLB definition into work: the vertex graph, cache keys, scheduling with
//! single-flight dedup across concurrent solves, cancellation, progress events, the
//! ancestor walk for cache options, and the op implementations with their executor.
//!
//! Must not know how snapshots are stored on disk: it talks to the cache through refs.
