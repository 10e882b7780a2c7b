//! File systems for cairn: the `Snapshotter` trait with its overlay and copy drivers,
//! layer tars applied with OCI whiteouts (staged, in parallel, refusing hostile entries),
//! merge of snapshots (overlay lowerdirs, hardlinks, copy as the fallback), diff of two
//! snapshots into a deterministic, compressed layer tar, and ID-mapped copies.
//!
//! Must not know about registries, blobs' origins or build graphs: it is handed
//! directories and byte streams.
