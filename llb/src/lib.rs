//! The build language of cairn: LLB, wire-compatible with BuildKit.
//!
//! Op types for every LLB op, the protobuf encoding of BuildKit's `pb.Definition`
//! (decoded bytes are kept next to their digest, never re-encoded to digest), validation
//! of untrusted definitions, a builder API in the spirit of BuildKit's `llb.State`, and
//! JSON/DOT dumps.
//!
//! Must not know about files, caches or processes: it describes work, it never does any.

pub mod digest;

pub use digest::{Digest, DigestError, Hasher};
