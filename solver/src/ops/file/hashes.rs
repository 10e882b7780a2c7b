//! The seam through which a content checksum reuses file hashes it computed before (the
//! worker's stat cache, kept in the cache database). Only a regular file's content hash
//! is ever reused: names, modes, owners and link targets are read on every walk.

use std::fs::Metadata;
use std::path::Path;

/// Content hashes remembered by file metadata.
///
/// Contract: `get` returns a hash only for a file that had exactly the metadata it was
/// `put` with (the implementation decides which fields identify a version of a file, and
/// must include everything a rewrite of the file changes); `put` is called after the bytes
/// were read, with the metadata read *before* reading them, so a file that changes while
/// it is read is stored under metadata it no longer has and never hits.
pub trait FileHashes {
    /// The sha256 of the contents of `rel` (relative to the checksummed root).
    fn get(&self, rel: &Path, meta: &Metadata) -> Option<[u8; 32]>;
    fn put(&mut self, rel: &Path, meta: &Metadata, sha256: [u8; 32]);
}

/// Remembers nothing: every file is read.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHashes;

impl FileHashes for NoHashes {
    fn get(&self, _rel: &Path, _meta: &Metadata) -> Option<[u8; 32]> {
        None
    }

    fn put(&mut self, _rel: &Path, _meta: &Metadata, _sha256: [u8; 32]) {}
}
